/*
 * tls.c — the edge's TLS 1.2 server engine over in-memory buffers.
 *
 * mbedTLS is given our own BIO callbacks: "receive" hands out ciphertext the
 * caller fed into a bounded buffer, and "send" passes ciphertext straight to
 * the caller's write_out, which queues it on the socket. So mbedTLS never
 * blocks and never sees a file descriptor; running out of input surfaces as
 * TLS_WANT.
 *
 * Security stance: the configuration is fixed here, not by the operator:
 * TLS 1.2 only, ECDHE with AES-GCM or ChaCha20-Poly1305 only, curves x25519,
 * P-256 and P-384, renegotiation off, no session cache and no tickets (each
 * connection pays a full handshake, but no resumption secret outlives a
 * connection). The server name a client asks for must be one the
 * certificate covers, so a misdirected client learns nothing but an
 * unrecognized_name alert. The private key lives in the tls_config, is
 * never copied, and is wiped by mbedtls_pk_free(); connection buffers are
 * wiped before they are freed. Peer input is bounded (TLS_IN_MAX) and every
 * mbedTLS error ends the connection.
 */
#include "edge/tls.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "common/log.h"

#define TLS_NAME_MAX 253   /* longest DNS name, without the trailing dot */
#define TLS_NAMES_MAX 256  /* certificate names we are willing to index */
#define TLS_ERR_MAX 160

struct tls_config {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt chain;
	mbedtls_pk_context key;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	char **names; /* lower-case DNS names and "*." patterns the leaf covers */
	size_t n_names;
};

/* The mbedTLS context comes first so the SNI callback can find its conn. */
struct tls_conn {
	mbedtls_ssl_context ssl;
	struct tls_config *cfg;
	int (*write_out)(void *, const unsigned char *, size_t);
	void *arg;
	unsigned char *in; /* fed ciphertext; [in_off, in_len) not yet consumed */
	size_t in_cap;
	size_t in_len;
	size_t in_off;
	int established;
	int failed;
	int peer_closed;
	int closed;
	int sni_refused;
	int has_sni;
	char sni[TLS_NAME_MAX + 1];
	char err[TLS_ERR_MAX];
};

/*
 * Only forward secret, authenticated-encryption suites. Both key types are
 * listed; mbedTLS skips those that do not match the certificate's key.
 */
static const int tls_suites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0,
};

static const mbedtls_ecp_group_id tls_curves[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_NONE,
};

static const char tls_pers[] = "cn2-edge-tls";

/* "what: mbedTLS's description (-0xNNNN)"; the descriptions are static text. */
static void
tls_errf(char *err, size_t errlen, const char *what, int ret)
{
	char desc[100];

	if (err == NULL || errlen == 0)
		return;
	mbedtls_strerror(ret, desc, sizeof(desc));
	snprintf(err, errlen, "%s: %s (-0x%04x)", what, desc,
	    (unsigned int)-ret);
}

/*
 * Is s[0..len) a DNS host name we accept from a peer: letters, digits and
 * hyphens in non-empty labels of at most 63 bytes, no trailing dot?
 */
static int
tls_host_valid(const unsigned char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > TLS_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(s[i]) && s[i] != '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/*
 * Does a certificate name cover host? Both are lower case. A "*." pattern
 * covers exactly one extra, non-empty leftmost label.
 */
static int
tls_name_covers(const char *pattern, const char *host)
{
	const char *dot;

	if (pattern[0] == '*' && pattern[1] == '.') {
		dot = strchr(host, '.');
		if (dot == NULL || dot == host)
			return 0;
		return strcmp(dot + 1, pattern + 2) == 0;
	}
	return strcmp(pattern, host) == 0;
}

/* Add one certificate name, lower-cased; names we could never match are skipped. */
static int
tls_config_add_name(struct tls_config *cfg, const unsigned char *s, size_t len)
{
	char *name;
	size_t i;

	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		if (!tls_host_valid(s + 2, len - 2))
			return 0;
	} else if (!tls_host_valid(s, len))
		return 0;
	if (cfg->n_names == TLS_NAMES_MAX)
		return -1;
	if ((name = malloc(len + 1)) == NULL)
		return -1;
	for (i = 0; i < len; i++)
		name[i] = (char)tolower(s[i]);
	name[len] = '\0';
	cfg->names[cfg->n_names++] = name;
	return 0;
}

/*
 * Index the names the leaf covers: its subjectAltName dNSNames, or, for a
 * certificate without any, its common name, as clients did before SANs.
 */
static int
tls_config_names(struct tls_config *cfg, char *err, size_t errlen)
{
	const mbedtls_x509_sequence *san;
	const mbedtls_x509_name *dn;
	const unsigned char dns_tag =
	    MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME;

	if ((cfg->names = calloc(TLS_NAMES_MAX, sizeof(char *))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (san = &cfg->chain.subject_alt_names; san != NULL; san = san->next) {
		if (san->buf.p == NULL || san->buf.tag != dns_tag)
			continue;
		if (tls_config_add_name(cfg, san->buf.p, san->buf.len) != 0)
			goto toomany;
	}
	for (dn = &cfg->chain.subject; cfg->n_names == 0 && dn != NULL;
	    dn = dn->next) {
		if (dn->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid))
			continue;
		if (tls_config_add_name(cfg, dn->val.p, dn->val.len) != 0)
			goto toomany;
	}
	if (cfg->n_names == 0) {
		snprintf(err, errlen, "certificate names no DNS host");
		return -1;
	}
	return 0;
toomany:
	snprintf(err, errlen, "certificate names more than %d hosts, or out "
	    "of memory", TLS_NAMES_MAX);
	return -1;
}

/* Certificate chain, key, and a check that they belong together. */
static int
tls_config_load(struct tls_config *cfg, const char *cert_path,
    const char *key_path, char *err, size_t errlen)
{
	const mbedtls_ecp_keypair *ec;
	int ret;

	if ((ret = mbedtls_x509_crt_parse_file(&cfg->chain, cert_path)) != 0) {
		if (ret > 0)
			snprintf(err, errlen, "%s: %d certificates could not "
			    "be parsed", cert_path, ret);
		else
			tls_errf(err, errlen, cert_path, ret);
		return -1;
	}
	if ((ret = mbedtls_pk_parse_keyfile(&cfg->key, key_path, NULL)) != 0) {
		tls_errf(err, errlen, key_path, ret);
		return -1;
	}
	switch (mbedtls_pk_get_type(&cfg->key)) {
	case MBEDTLS_PK_ECKEY:
		ec = mbedtls_pk_ec(cfg->key);
		if (ec == NULL || (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1 &&
		    ec->grp.id != MBEDTLS_ECP_DP_SECP384R1)) {
			snprintf(err, errlen, "%s: EC key is not on P-256 or "
			    "P-384", key_path);
			return -1;
		}
		break;
	case MBEDTLS_PK_RSA:
		if (mbedtls_pk_get_bitlen(&cfg->key) < 2048) {
			snprintf(err, errlen, "%s: RSA key shorter than 2048 "
			    "bits", key_path);
			return -1;
		}
		break;
	default:
		snprintf(err, errlen, "%s: not an EC or RSA key", key_path);
		return -1;
	}
	if ((ret = mbedtls_pk_check_pair(&cfg->chain.pk, &cfg->key)) != 0) {
		snprintf(err, errlen, "%s does not match the certificate in %s",
		    key_path, cert_path);
		return -1;
	}
	if (mbedtls_x509_time_is_past(&cfg->chain.valid_to))
		log_warnx("certificate %s has expired", cert_path);
	return 0;
}

/*
 * SNI: accept any name the leaf covers and remember it; refuse the rest,
 * which makes mbedTLS answer with an unrecognized_name alert. The same
 * certificate serves every accepted name.
 */
static int
tls_sni_cb(void *arg, mbedtls_ssl_context *ssl, const unsigned char *name,
    size_t len)
{
	struct tls_config *cfg = arg;
	struct tls_conn *c;
	size_t i;

	c = (struct tls_conn *)(void *)((char *)ssl -
	    offsetof(struct tls_conn, ssl));
	if (!tls_host_valid(name, len)) {
		c->sni_refused = 1;
		return MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO;
	}
	for (i = 0; i < len; i++)
		c->sni[i] = (char)tolower(name[i]);
	c->sni[len] = '\0';
	for (i = 0; i < cfg->n_names; i++) {
		if (tls_name_covers(cfg->names[i], c->sni)) {
			c->has_sni = 1;
			return 0;
		}
	}
	c->sni[0] = '\0';
	c->sni_refused = 1;
	return MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO;
}

static int
tls_config_ssl(struct tls_config *cfg, char *err, size_t errlen)
{
	mbedtls_ssl_config *conf = &cfg->conf;
	int ret;

	ret = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0) {
		tls_errf(err, errlen, "ssl defaults", ret);
		return -1;
	}
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &cfg->drbg);
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(conf, tls_suites);
	mbedtls_ssl_conf_curves(conf, tls_curves);
	mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	mbedtls_ssl_conf_legacy_renegotiation(conf,
	    MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
	mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_sni(conf, tls_sni_cb, cfg);
	if ((ret = mbedtls_ssl_conf_own_cert(conf, &cfg->chain, &cfg->key)) != 0) {
		tls_errf(err, errlen, "own certificate", ret);
		return -1;
	}
	return 0;
}

struct tls_config *
tls_config_new(const char *cert_pem_path, const char *key_pem_path, char *err,
    size_t errlen)
{
	struct tls_config *cfg;
	int ret;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->chain);
	mbedtls_pk_init(&cfg->key);
	mbedtls_entropy_init(&cfg->entropy);
	mbedtls_ctr_drbg_init(&cfg->drbg);
	ret = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func,
	    &cfg->entropy, (const unsigned char *)tls_pers, sizeof(tls_pers) - 1);
	if (ret != 0) {
		tls_errf(err, errlen, "seeding the random generator", ret);
		goto fail;
	}
	if (tls_config_load(cfg, cert_pem_path, key_pem_path, err, errlen) != 0 ||
	    tls_config_names(cfg, err, errlen) != 0 ||
	    tls_config_ssl(cfg, err, errlen) != 0)
		goto fail;
	return cfg;
fail:
	tls_config_free(cfg);
	return NULL;
}

void
tls_config_free(struct tls_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_names; i++)
		free(cfg->names[i]);
	free(cfg->names);
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->chain);
	mbedtls_pk_free(&cfg->key);
	mbedtls_ctr_drbg_free(&cfg->drbg);
	mbedtls_entropy_free(&cfg->entropy);
	free(cfg);
}

/* Wipe and release the input buffer; fed ciphertext is no one's business. */
static void
tls_in_release(struct tls_conn *c)
{
	if (c->in != NULL) {
		mbedtls_platform_zeroize(c->in, c->in_cap);
		free(c->in);
	}
	c->in = NULL;
	c->in_cap = c->in_len = c->in_off = 0;
}

/* mbedTLS's receive callback: hand out fed ciphertext, or "would block". */
static int
tls_bio_recv(void *arg, unsigned char *buf, size_t len)
{
	struct tls_conn *c = arg;
	size_t n = c->in_len - c->in_off;

	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (n > len)
		n = len;
	if (n > INT_MAX)
		n = INT_MAX;
	memcpy(buf, c->in + c->in_off, n);
	c->in_off += n;
	if (c->in_off == c->in_len)
		tls_in_release(c);
	return (int)n;
}

/* mbedTLS's send callback: the caller queues everything or fails. */
static int
tls_bio_send(void *arg, const unsigned char *buf, size_t len)
{
	struct tls_conn *c = arg;

	if (len > INT_MAX)
		len = INT_MAX;
	if (c->write_out(c->arg, buf, len) != 0)
		return MBEDTLS_ERR_NET_SEND_FAILED;
	return (int)len;
}

struct tls_conn *
tls_conn_new(struct tls_config *cfg,
    int (*write_out)(void *arg, const unsigned char *buf, size_t len),
    void *arg)
{
	struct tls_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, &cfg->conf) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return NULL;
	}
	c->cfg = cfg;
	c->write_out = write_out;
	c->arg = arg;
	mbedtls_ssl_set_bio(&c->ssl, c, tls_bio_send, tls_bio_recv, NULL);
	return c;
}

int
tls_conn_feed(struct tls_conn *c, const unsigned char *cipher, size_t n)
{
	size_t held = c->in_len - c->in_off, cap;
	unsigned char *in;

	if (n > TLS_IN_MAX - held)
		return -1;
	if (held + n > c->in_cap) {
		cap = c->in_cap * 2 > held + n ? c->in_cap * 2 : held + n;
		if (cap > TLS_IN_MAX)
			cap = TLS_IN_MAX;
		if ((in = malloc(cap)) == NULL)
			return -1;
		if (held > 0)
			memcpy(in, c->in + c->in_off, held);
		tls_in_release(c);
		c->in = in;
		c->in_cap = cap;
	} else if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, held);
	}
	c->in_off = 0;
	if (n > 0)
		memcpy(c->in + held, cipher, n);
	c->in_len = held + n;
	return 0;
}

/* Record why the connection failed; every failure is final. */
static void
tls_conn_fail(struct tls_conn *c, const char *what, int ret)
{
	c->failed = 1;
	if (c->sni_refused)
		snprintf(c->err, sizeof(c->err), "client asked for a server "
		    "name the certificate does not cover");
	else if (ret == MBEDTLS_ERR_NET_SEND_FAILED)
		snprintf(c->err, sizeof(c->err), "%s: output refused", what);
	else
		tls_errf(c->err, sizeof(c->err), what, ret);
}

int
tls_conn_handshake(struct tls_conn *c)
{
	int ret;

	if (c->failed)
		return TLS_ERROR;
	if (c->established)
		return TLS_DONE;
	ret = mbedtls_ssl_handshake(&c->ssl);
	if (ret == 0) {
		c->established = 1;
		return TLS_DONE;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_WANT;
	tls_conn_fail(c, "handshake", ret);
	return TLS_ERROR;
}

ssize_t
tls_conn_read(struct tls_conn *c, unsigned char *buf, size_t cap)
{
	int ret;

	if (c->failed || !c->established || cap == 0)
		return TLS_ERROR;
	if (c->peer_closed)
		return 0;
	ret = mbedtls_ssl_read(&c->ssl, buf, cap > INT_MAX ? INT_MAX : cap);
	if (ret > 0)
		return ret;
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_WANT;
	/* Our receive callback never reports end of file, so 0 means close too. */
	if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == 0) {
		c->peer_closed = 1;
		return 0;
	}
	tls_conn_fail(c, "read", ret);
	return TLS_ERROR;
}

int
tls_conn_write(struct tls_conn *c, const unsigned char *buf, size_t n)
{
	size_t off = 0;
	int ret;

	if (c->failed || !c->established || c->closed)
		return TLS_ERROR;
	while (off < n) {
		ret = mbedtls_ssl_write(&c->ssl, buf + off, n - off);
		if (ret <= 0) {
			tls_conn_fail(c, "write", ret == 0 ?
			    MBEDTLS_ERR_SSL_INTERNAL_ERROR : ret);
			return TLS_ERROR;
		}
		off += (size_t)ret;
	}
	return 0;
}

int
tls_conn_close_notify(struct tls_conn *c)
{
	int ret;

	if (c->failed || !c->established)
		return TLS_ERROR;
	if (c->closed)
		return 0;
	if ((ret = mbedtls_ssl_close_notify(&c->ssl)) != 0) {
		tls_conn_fail(c, "close_notify", ret);
		return TLS_ERROR;
	}
	c->closed = 1;
	return 0;
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	/* mbedtls_ssl_free() wipes its record buffers and keys itself. */
	mbedtls_ssl_free(&c->ssl);
	tls_in_release(c);
	mbedtls_platform_zeroize(c, sizeof(*c));
	free(c);
}

const char *
tls_conn_error(struct tls_conn *c)
{
	return c->err;
}

const char *
tls_conn_sni(struct tls_conn *c)
{
	return c->has_sni ? c->sni : NULL;
}

const char *
tls_conn_suite(struct tls_conn *c)
{
	return c->established ? mbedtls_ssl_get_ciphersuite(&c->ssl) : NULL;
}

const char *
tls_conn_version(struct tls_conn *c)
{
	return c->established ? mbedtls_ssl_get_version(&c->ssl) : NULL;
}
