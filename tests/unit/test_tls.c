/*
 * test_tls.c — edge/tls.c's server engine against an in-process mbedTLS
 * client, over memory queues, with certificates from cli/cert.c.
 *
 * The client trusts only the generated certificate, requires verification
 * and checks the host name, so a handshake that completes proves the whole
 * chain: generation, loading, SNI, suites and version. Server names, cipher
 * suites, protocol versions and garbage inputs are tables.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include "cli/cert.h"
#include "edge/tls.h"

#define BIG (100 * 1024)

struct fixture {
	char dir[64];
	char cert[128];
	char key[128];
	struct tls_config *cfg;
	mbedtls_x509_crt ca;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

/* A growable byte queue standing in for one direction of a socket. */
struct queue {
	unsigned char *p;
	size_t len;
	size_t off;
};

/* One client (mbedTLS) and one server (tls_conn) joined by two queues. */
struct pair {
	mbedtls_ssl_context ssl;
	mbedtls_ssl_config conf;
	struct tls_conn *srv;
	struct queue c2s;
	struct queue s2c;
	int refuse_out;
};

struct client_opts {
	const char *sni;
	int min_minor; /* 0: library default */
	int max_minor;
	int suite;     /* 0: library default list */
	mbedtls_x509_crt *ca;
};

static int
queue_put(struct queue *q, const unsigned char *b, size_t n)
{
	unsigned char *p;

	if ((p = realloc(q->p, q->len + n + 1)) == NULL)
		return -1;
	q->p = p;
	memcpy(q->p + q->len, b, n);
	q->len += n;
	return 0;
}

static size_t
queue_take(struct queue *q, unsigned char *b, size_t n)
{
	if (n > q->len - q->off)
		n = q->len - q->off;
	if (n == 0)
		return 0;
	memcpy(b, q->p + q->off, n);
	q->off += n;
	return n;
}

static void
queue_free(struct queue *q)
{
	free(q->p);
	memset(q, 0, sizeof(*q));
}

static int
srv_write_out(void *arg, const unsigned char *b, size_t n)
{
	struct pair *p = arg;

	if (p->refuse_out)
		return -1;
	return queue_put(&p->s2c, b, n);
}

static int
cli_send(void *arg, const unsigned char *b, size_t n)
{
	struct pair *p = arg;

	if (queue_put(&p->c2s, b, n) != 0)
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	return (int)n;
}

static int
cli_recv(void *arg, unsigned char *b, size_t n)
{
	struct pair *p = arg;
	size_t k = queue_take(&p->s2c, b, n);

	return k > 0 ? (int)k : MBEDTLS_ERR_SSL_WANT_READ;
}

/* Move what the client sent into the server, as far as it will take it. */
static void
pump_to_server(struct pair *p)
{
	size_t n;

	while (p->c2s.off < p->c2s.len) {
		n = p->c2s.len - p->c2s.off;
		if (n > 16384)
			n = 16384;
		if (tls_conn_feed(p->srv, p->c2s.p + p->c2s.off, n) != 0)
			return;
		p->c2s.off += n;
	}
}

static void
pair_init(struct pair *p, struct fixture *fx, struct tls_config *cfg,
    const struct client_opts *o)
{
	static int one_suite[2]; /* the config keeps the pointer */

	memset(p, 0, sizeof(*p));
	mbedtls_ssl_init(&p->ssl);
	mbedtls_ssl_config_init(&p->conf);
	assert_int_equal(mbedtls_ssl_config_defaults(&p->conf,
	    MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
	    MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&p->conf, mbedtls_ctr_drbg_random, &fx->drbg);
	mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&p->conf, o->ca ? o->ca : &fx->ca, NULL);
	if (o->min_minor)
		mbedtls_ssl_conf_min_version(&p->conf,
		    MBEDTLS_SSL_MAJOR_VERSION_3, o->min_minor);
	if (o->max_minor)
		mbedtls_ssl_conf_max_version(&p->conf,
		    MBEDTLS_SSL_MAJOR_VERSION_3, o->max_minor);
	if (o->suite) {
		one_suite[0] = o->suite;
		one_suite[1] = 0;
		mbedtls_ssl_conf_ciphersuites(&p->conf, one_suite);
	}
	assert_int_equal(mbedtls_ssl_setup(&p->ssl, &p->conf), 0);
	if (o->sni)
		assert_int_equal(mbedtls_ssl_set_hostname(&p->ssl, o->sni), 0);
	mbedtls_ssl_set_bio(&p->ssl, p, cli_send, cli_recv, NULL);
	p->srv = tls_conn_new(cfg, srv_write_out, p);
	assert_non_null(p->srv);
}

static void
pair_free(struct pair *p)
{
	tls_conn_free(p->srv);
	mbedtls_ssl_free(&p->ssl);
	mbedtls_ssl_config_free(&p->conf);
	queue_free(&p->c2s);
	queue_free(&p->s2c);
}

/*
 * Step both sides until both finish or one fails. Returns 0 when both are
 * done; the last results are left in *cret and *sret.
 */
static int
pair_handshake(struct pair *p, int *cret, int *sret)
{
	int i;

	*cret = MBEDTLS_ERR_SSL_WANT_READ;
	*sret = TLS_WANT;
	for (i = 0; i < 50; i++) {
		if (*cret == MBEDTLS_ERR_SSL_WANT_READ)
			*cret = mbedtls_ssl_handshake(&p->ssl);
		pump_to_server(p);
		if (*sret == TLS_WANT)
			*sret = tls_conn_handshake(p->srv);
		if (*cret == 0 && *sret == TLS_DONE)
			return 0;
		if ((*cret != 0 && *cret != MBEDTLS_ERR_SSL_WANT_READ) ||
		    *sret == TLS_ERROR)
			return -1;
	}
	return -1;
}

static int
rm_tree(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(dir);
}

static int
group_teardown(void **state)
{
	struct fixture *fx = *state;

	tls_config_free(fx->cfg);
	mbedtls_x509_crt_free(&fx->ca);
	mbedtls_ctr_drbg_free(&fx->drbg);
	mbedtls_entropy_free(&fx->entropy);
	return rm_tree(fx->dir);
}

static int
group_setup(void **state)
{
	static struct fixture fx;
	char err[256];

	memset(&fx, 0, sizeof(fx));
	strcpy(fx.dir, "/tmp/cn2-test-tls.XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	snprintf(fx.cert, sizeof(fx.cert), "%s/cert.pem", fx.dir);
	snprintf(fx.key, sizeof(fx.key), "%s/key.pem", fx.dir);
	mbedtls_x509_crt_init(&fx.ca);
	mbedtls_entropy_init(&fx.entropy);
	mbedtls_ctr_drbg_init(&fx.drbg);
	*state = &fx;
	if (cert_generate(fx.cert, fx.key, cert_local_names,
	    cert_local_names_n, 30, err, sizeof(err)) != 0) {
		fprintf(stderr, "cert_generate: %s\n", err);
		goto fail;
	}
	if ((fx.cfg = tls_config_new(fx.cert, fx.key, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tls_config_new: %s\n", err);
		goto fail;
	}
	if (mbedtls_x509_crt_parse_file(&fx.ca, fx.cert) != 0 ||
	    mbedtls_ctr_drbg_seed(&fx.drbg, mbedtls_entropy_func, &fx.entropy,
	    NULL, 0) != 0)
		goto fail;
	return 0;
fail:
	group_teardown(state);
	return -1;
}

static void
test_cert_files(void **state)
{
	struct fixture *fx = *state;
	struct stat st;

	assert_int_equal(stat(fx->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(fx->cert, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
}

/* Is the dNSName list of crt exactly names, in order? */
static void
assert_sans(const mbedtls_x509_crt *crt, const char *const *names, size_t n)
{
	const mbedtls_x509_sequence *san;
	size_t i = 0;

	for (san = &crt->subject_alt_names; san != NULL && san->buf.p != NULL;
	    san = san->next, i++) {
		assert_true(i < n);
		assert_int_equal(san->buf.tag,
		    MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME);
		assert_int_equal(san->buf.len, strlen(names[i]));
		assert_memory_equal(san->buf.p, names[i], san->buf.len);
	}
	assert_int_equal(i, n);
}

static time_t
x509_time_epoch(const mbedtls_x509_time *t)
{
	struct tm tm = {
		.tm_year = t->year - 1900, .tm_mon = t->mon - 1,
		.tm_mday = t->day, .tm_hour = t->hour, .tm_min = t->min,
		.tm_sec = t->sec,
	};

	return timegm(&tm);
}

static void
test_cert_contents(void **state)
{
	struct fixture *fx = *state;
	const mbedtls_x509_crt *crt = &fx->ca;
	const mbedtls_ecp_keypair *ec;
	char cn[64];
	time_t now = time(NULL);

	assert_int_equal(crt->version, 3);
	assert_int_equal(crt->serial.len, 16);
	assert_true(mbedtls_x509_dn_gets(cn, sizeof(cn), &crt->subject) > 0);
	assert_string_equal(cn, "CN=localhost");
	assert_sans(crt, cert_local_names, cert_local_names_n);
	assert_int_equal(mbedtls_pk_get_type(&crt->pk), MBEDTLS_PK_ECKEY);
	ec = mbedtls_pk_ec(crt->pk);
	assert_int_equal(ec != NULL ? ec->grp.id : MBEDTLS_ECP_DP_NONE,
	    MBEDTLS_ECP_DP_SECP256R1);
	assert_true(crt->ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS);
	assert_int_equal(crt->ca_istrue, 0);
	assert_int_equal(mbedtls_x509_crt_check_key_usage(crt,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(crt,
	    MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
	    0);
	assert_true(llabs((long long)(x509_time_epoch(&crt->valid_from) -
	    (now - 3600))) < 120);
	assert_true(llabs((long long)(x509_time_epoch(&crt->valid_to) -
	    (now + 30 * 86400))) < 120);
}

static void
test_cert_regenerate(void **state)
{
	struct fixture *fx = *state;
	const char *names[] = { "edge.example", "*.api.example" };
	char cert[160], key[160], err[256];
	mbedtls_x509_crt a, b;
	struct tls_config *cfg;

	snprintf(cert, sizeof(cert), "%s/regen.pem", fx->dir);
	snprintf(key, sizeof(key), "%s/regen.key", fx->dir);
	mbedtls_x509_crt_init(&a);
	mbedtls_x509_crt_init(&b);
	assert_int_equal(cert_generate(cert, key, names, 2, 1, err,
	    sizeof(err)), 0);
	assert_int_equal(mbedtls_x509_crt_parse_file(&a, cert), 0);
	assert_int_equal(cert_generate(cert, key, names, 2, 1, err,
	    sizeof(err)), 0);
	assert_int_equal(mbedtls_x509_crt_parse_file(&b, cert), 0);
	assert_sans(&b, names, 2);
	/* A fresh key and serial each time. */
	assert_int_not_equal(a.serial.len == b.serial.len &&
	    memcmp(a.serial.p, b.serial.p, a.serial.len) == 0, 1);
	assert_int_not_equal(mbedtls_pk_check_pair(&a.pk, &b.pk) == 0, 1);
	cfg = tls_config_new(cert, key, err, sizeof(err));
	assert_non_null(cfg);
	tls_config_free(cfg);
	mbedtls_x509_crt_free(&a);
	mbedtls_x509_crt_free(&b);
}

static void
test_cert_many_names(void **state)
{
	struct fixture *fx = *state;
	char cert[160], key[160], err[256], store[64][64];
	const char *names[64];
	mbedtls_x509_crt crt;
	struct tls_config *cfg;
	size_t i;

	for (i = 0; i < 64; i++) {
		snprintf(store[i], sizeof(store[i]),
		    "host-%02zu.a-rather-long-domain-label-for-size.example", i);
		names[i] = store[i];
	}
	snprintf(cert, sizeof(cert), "%s/many.pem", fx->dir);
	snprintf(key, sizeof(key), "%s/many.key", fx->dir);
	assert_int_equal(cert_generate(cert, key, names, 64, 7, err,
	    sizeof(err)), 0);
	mbedtls_x509_crt_init(&crt);
	assert_int_equal(mbedtls_x509_crt_parse_file(&crt, cert), 0);
	assert_sans(&crt, names, 64);
	mbedtls_x509_crt_free(&crt);
	cfg = tls_config_new(cert, key, err, sizeof(err));
	assert_non_null(cfg);
	tls_config_free(cfg);
}

static void
test_cert_bad_args(void **state)
{
	static const struct {
		const char *name;
		int days;
		size_t n;
	} rows[] = {
		{ "localhost", 0, 1 },
		{ "localhost", 3651, 1 },
		{ "localhost", 1, 0 },
		{ "", 1, 1 },
		{ "exa mple", 1, 1 },
		{ "a..b", 1, 1 },
		{ ".localhost", 1, 1 },
		{ "localhost.", 1, 1 },
		{ "a,CN=evil", 1, 1 },
		{ "*.*.localhost", 1, 1 },
		{ "f*.localhost", 1, 1 },
		{ "*.", 1, 1 },
		{ "under_score", 1, 1 },
		{ "a123456789012345678901234567890123456789012345678901234567890123"
		  ".x", 1, 1 },
	};
	struct fixture *fx = *state;
	char cert[160], key[160], err[256];
	struct stat st;
	size_t i;

	snprintf(cert, sizeof(cert), "%s/bad.pem", fx->dir);
	snprintf(key, sizeof(key), "%s/bad.key", fx->dir);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		err[0] = '\0';
		assert_int_equal(cert_generate(cert, key, &rows[i].name,
		    rows[i].n, rows[i].days, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_int_equal(stat(key, &st), -1);
		assert_int_equal(stat(cert, &st), -1);
	}
}

static void
test_config_errors(void **state)
{
	struct fixture *fx = *state;
	char other_cert[160], other_key[160], junk[160], err[256];
	const char *names[] = { "localhost" };
	FILE *f;

	snprintf(other_cert, sizeof(other_cert), "%s/other.pem", fx->dir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", fx->dir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", fx->dir);
	assert_int_equal(cert_generate(other_cert, other_key, names, 1, 1, err,
	    sizeof(err)), 0);
	assert_non_null(f = fopen(junk, "w"));
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
	    "-----END CERTIFICATE-----\n", f);
	fclose(f);

	err[0] = '\0';
	assert_null(tls_config_new("/nonexistent/cert.pem", fx->key, err,
	    sizeof(err)));
	assert_true(err[0] != '\0');
	err[0] = '\0';
	assert_null(tls_config_new(fx->cert, "/nonexistent/key.pem", err,
	    sizeof(err)));
	assert_true(err[0] != '\0');
	err[0] = '\0';
	assert_null(tls_config_new(junk, fx->key, err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(tls_config_new(fx->cert, junk, err, sizeof(err)));
	assert_null(tls_config_new(fx->cert, other_key, err, sizeof(err)));
	assert_non_null(strstr(err, "does not match"));
}

/*
 * Server names: the certificate covers localhost and exactly one label
 * under it; anything else is refused by the server itself, with an
 * unrecognized_name (112) alert, before the client could object.
 */
static void
test_sni(void **state)
{
	static const struct {
		const char *sni;
		int ok;
		const char *seen;
	} rows[] = {
		{ "localhost", 1, "localhost" },
		{ "api.localhost", 1, "api.localhost" },
		{ "LOCALHOST", 1, "localhost" },
		{ "Api.LocalHost", 1, "api.localhost" },
		{ NULL, 1, NULL },
		{ "example.com", 0, NULL },
		{ "a.b.localhost", 0, NULL },
		{ "localhost.example", 0, NULL },
		{ "xlocalhost", 0, NULL },
		{ "localhost.", 0, NULL },
		{ "local_host", 0, NULL },
	};
	struct fixture *fx = *state;
	struct pair p;
	size_t i;
	int c, s;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct client_opts o = { .sni = rows[i].sni };

		pair_init(&p, fx, fx->cfg, &o);
		if (rows[i].ok) {
			assert_int_equal(pair_handshake(&p, &c, &s), 0);
			if (rows[i].seen == NULL)
				assert_null(tls_conn_sni(p.srv));
			else
				assert_string_equal(tls_conn_sni(p.srv),
				    rows[i].seen);
			assert_string_equal(tls_conn_error(p.srv), "");
		} else {
			assert_int_equal(pair_handshake(&p, &c, &s), -1);
			assert_int_equal(s, TLS_ERROR);
			assert_non_null(strstr(tls_conn_error(p.srv),
			    "server name"));
			assert_null(tls_conn_sni(p.srv));
			assert_true(p.s2c.len == 7);
			assert_int_equal(p.s2c.p[0], 0x15);
			assert_int_equal(p.s2c.p[5], MBEDTLS_SSL_ALERT_LEVEL_FATAL);
			assert_int_equal(p.s2c.p[6],
			    MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME);
			assert_int_equal(mbedtls_ssl_handshake(&p.ssl),
			    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
		}
		pair_free(&p);
	}
}

/* One suite offered at a time: only ECDHE with AEAD may be negotiated. */
static void
run_suites(struct fixture *fx, struct tls_config *cfg, mbedtls_x509_crt *ca,
    const int *suites, const int *ok, size_t n)
{
	struct pair p;
	size_t i;
	int c, s;

	for (i = 0; i < n; i++) {
		struct client_opts o = {
			.sni = "localhost", .suite = suites[i], .ca = ca,
		};

		pair_init(&p, fx, cfg, &o);
		if (ok[i]) {
			assert_int_equal(pair_handshake(&p, &c, &s), 0);
			assert_string_equal(tls_conn_suite(p.srv),
			    mbedtls_ssl_get_ciphersuite_name(suites[i]));
			assert_string_equal(mbedtls_ssl_get_ciphersuite(&p.ssl),
			    tls_conn_suite(p.srv));
			assert_string_equal(tls_conn_version(p.srv), "TLSv1.2");
			assert_string_equal(mbedtls_ssl_get_version(&p.ssl),
			    "TLSv1.2");
		} else {
			assert_int_equal(pair_handshake(&p, &c, &s), -1);
			assert_int_equal(s, TLS_ERROR);
			assert_null(tls_conn_suite(p.srv));
		}
		pair_free(&p);
	}
}

static void
test_suites_ecdsa(void **state)
{
	static const int suites[] = {
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
		MBEDTLS_TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256,
		MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	};
	static const int ok[] = { 1, 1, 1, 0, 0, 0, 0, 0, 0 };
	struct fixture *fx = *state;

	run_suites(fx, fx->cfg, NULL, suites, ok, 9);
}

/* Default client suites: whatever is chosen is ECDHE with AEAD. */
static void
test_default_client(void **state)
{
	struct fixture *fx = *state;
	struct client_opts o = { .sni = "localhost" };
	struct pair p;
	const char *suite;
	int c, s;

	pair_init(&p, fx, fx->cfg, &o);
	assert_int_equal(pair_handshake(&p, &c, &s), 0);
	suite = tls_conn_suite(p.srv);
	assert_non_null(strstr(suite, "-ECDHE-"));
	assert_true(strstr(suite, "-GCM-") != NULL ||
	    strstr(suite, "CHACHA20-POLY1305") != NULL);
	assert_string_equal(tls_conn_version(p.srv), "TLSv1.2");
	pair_free(&p);
}

static void
test_versions(void **state)
{
	static const struct {
		int min_minor;
		int max_minor;
		int ok;
	} rows[] = {
		{ MBEDTLS_SSL_MINOR_VERSION_1, MBEDTLS_SSL_MINOR_VERSION_1, 0 },
		{ MBEDTLS_SSL_MINOR_VERSION_2, MBEDTLS_SSL_MINOR_VERSION_2, 0 },
		{ MBEDTLS_SSL_MINOR_VERSION_1, MBEDTLS_SSL_MINOR_VERSION_3, 1 },
		{ MBEDTLS_SSL_MINOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3, 1 },
	};
	struct fixture *fx = *state;
	struct pair p;
	char code[16];
	size_t i;
	int c, s;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct client_opts o = {
			.sni = "localhost", .min_minor = rows[i].min_minor,
			.max_minor = rows[i].max_minor,
		};

		pair_init(&p, fx, fx->cfg, &o);
		if (rows[i].ok) {
			assert_int_equal(pair_handshake(&p, &c, &s), 0);
			assert_string_equal(mbedtls_ssl_get_version(&p.ssl),
			    "TLSv1.2");
		} else {
			assert_int_equal(pair_handshake(&p, &c, &s), -1);
			assert_int_equal(s, TLS_ERROR);
			/* Refused for its version, not for lack of a suite. */
			snprintf(code, sizeof(code), "(-0x%04x)",
			    -MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION);
			assert_non_null(strstr(tls_conn_error(p.srv), code));
		}
		pair_free(&p);
	}
}

/*
 * An RSA-2048 certificate with no subjectAltName: the server must fall back
 * to the subject CN for SNI, and serve the ECDHE-RSA AEAD suites only.
 */
static void
write_rsa_cert(struct fixture *fx, const char *cert, const char *key)
{
	unsigned char buf[8192];
	mbedtls_x509write_cert w;
	mbedtls_pk_context pk;
	mbedtls_mpi serial;
	FILE *f;

	mbedtls_pk_init(&pk);
	mbedtls_mpi_init(&serial);
	mbedtls_x509write_crt_init(&w);
	assert_int_equal(mbedtls_pk_setup(&pk,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
	assert_int_equal(mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk),
	    mbedtls_ctr_drbg_random, &fx->drbg, 2048, 65537), 0);
	assert_int_equal(mbedtls_mpi_lset(&serial, 7), 0);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &pk);
	mbedtls_x509write_crt_set_issuer_key(&w, &pk);
	assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w,
	    "CN=localhost"), 0);
	assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w,
	    "CN=localhost"), 0);
	assert_int_equal(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
	assert_int_equal(mbedtls_x509write_crt_set_validity(&w,
	    "20200101000000", "20491231235959"), 0);
	assert_int_equal(mbedtls_x509write_crt_pem(&w, buf, sizeof(buf),
	    mbedtls_ctr_drbg_random, &fx->drbg), 0);
	assert_non_null(f = fopen(cert, "w"));
	fputs((const char *)buf, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(mbedtls_pk_write_key_pem(&pk, buf, sizeof(buf)), 0);
	assert_non_null(f = fopen(key, "w"));
	fputs((const char *)buf, f);
	assert_int_equal(fclose(f), 0);
	mbedtls_x509write_crt_free(&w);
	mbedtls_mpi_free(&serial);
	mbedtls_pk_free(&pk);
}

static void
test_suites_rsa(void **state)
{
	static const int suites[] = {
		MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256,
		MBEDTLS_TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	};
	static const int ok[] = { 1, 1, 1, 0, 0, 0, 0 };
	struct fixture *fx = *state;
	char cert[160], key[160], err[256];
	struct tls_config *cfg;
	mbedtls_x509_crt ca;
	struct pair p;
	int c, s;

	snprintf(cert, sizeof(cert), "%s/rsa.pem", fx->dir);
	snprintf(key, sizeof(key), "%s/rsa.key", fx->dir);
	write_rsa_cert(fx, cert, key);
	cfg = tls_config_new(cert, key, err, sizeof(err));
	assert_non_null(cfg);
	mbedtls_x509_crt_init(&ca);
	assert_int_equal(mbedtls_x509_crt_parse_file(&ca, cert), 0);
	run_suites(fx, cfg, &ca, suites, ok, 7);

	/* The CN is the only name: a subdomain is refused. */
	{
		struct client_opts o = { .sni = "api.localhost", .ca = &ca };

		pair_init(&p, fx, cfg, &o);
		assert_int_equal(pair_handshake(&p, &c, &s), -1);
		assert_non_null(strstr(tls_conn_error(p.srv), "server name"));
		pair_free(&p);
	}
	mbedtls_x509_crt_free(&ca);
	tls_config_free(cfg);
}

static void
fill(unsigned char *b, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)((i * 31 + seed) ^ (i >> 8));
}

/* Read exactly n bytes of plaintext on the client side. */
static void
client_read_all(struct pair *p, unsigned char *b, size_t n)
{
	size_t got = 0;
	int r;

	while (got < n) {
		r = mbedtls_ssl_read(&p->ssl, b + got, n - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* Feed and read on the server until n bytes of plaintext came out. */
static void
server_read_all(struct pair *p, unsigned char *b, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		pump_to_server(p);
		if ((r = tls_conn_read(p->srv, b + got, n - got)) > 0) {
			got += (size_t)r;
			continue;
		}
		/* Out of whole records: there must be more to feed. */
		assert_int_equal(r, TLS_WANT);
		assert_true(p->c2s.off < p->c2s.len);
	}
}

static void
established(struct fixture *fx, struct pair *p)
{
	struct client_opts o = { .sni = "localhost" };
	int c, s;

	pair_init(p, fx, fx->cfg, &o);
	assert_int_equal(pair_handshake(p, &c, &s), 0);
}

static void
test_data(void **state)
{
	struct fixture *fx = *state;
	unsigned char *out, *in;
	struct pair p;
	size_t off;
	int r;

	out = malloc(BIG);
	in = malloc(BIG);
	assert_non_null(out);
	assert_non_null(in);
	established(fx, &p);

	assert_int_equal(tls_conn_read(p.srv, in, BIG), TLS_WANT);
	assert_int_equal(mbedtls_ssl_write(&p.ssl, (const unsigned char *)
	    "ping", 4), 4);
	server_read_all(&p, in, 4);
	assert_memory_equal(in, "ping", 4);

	fill(out, BIG, 1);
	assert_int_equal(tls_conn_write(p.srv, out, BIG), 0);
	memset(in, 0, BIG);
	client_read_all(&p, in, BIG);
	assert_memory_equal(in, out, BIG);

	fill(out, BIG, 2);
	for (off = 0; off < BIG; off += (size_t)r) {
		r = mbedtls_ssl_write(&p.ssl, out + off, BIG - off);
		assert_true(r > 0);
	}
	memset(in, 0, BIG);
	server_read_all(&p, in, BIG);
	assert_memory_equal(in, out, BIG);

	/* Closing: each side sees the other's close_notify. */
	assert_int_equal(tls_conn_close_notify(p.srv), 0);
	assert_int_equal(mbedtls_ssl_read(&p.ssl, in, 16),
	    MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	assert_int_equal(tls_conn_write(p.srv, out, 1), TLS_ERROR);
	assert_int_equal(mbedtls_ssl_close_notify(&p.ssl), 0);
	pump_to_server(&p);
	assert_int_equal(tls_conn_read(p.srv, in, 16), 0);
	assert_int_equal(tls_conn_read(p.srv, in, 16), 0);
	pair_free(&p);
	free(out);
	free(in);
}

/* One feed carrying several records: read returns them all before TLS_WANT. */
static void
test_data_records(void **state)
{
	static const char *const parts[] = { "one", "two", "three" };
	struct fixture *fx = *state;
	unsigned char in[64];
	struct pair p;
	size_t i, got = 0;
	ssize_t r;

	established(fx, &p);
	for (i = 0; i < 3; i++)
		assert_int_equal(mbedtls_ssl_write(&p.ssl, (const unsigned char *)
		    parts[i], strlen(parts[i])), (int)strlen(parts[i]));
	pump_to_server(&p);
	assert_int_equal(p.c2s.off, p.c2s.len);
	while ((r = tls_conn_read(p.srv, in + got, sizeof(in) - got)) > 0)
		got += (size_t)r;
	assert_int_equal(r, TLS_WANT);
	assert_int_equal(got, 11);
	assert_memory_equal(in, "onetwothree", 11);
	pair_free(&p);
}

static void
test_feed_bound(void **state)
{
	struct fixture *fx = *state;
	unsigned char *junk;
	struct pair p;

	junk = calloc(1, TLS_IN_MAX + 1);
	assert_non_null(junk);
	established(fx, &p);
	assert_int_equal(tls_conn_feed(p.srv, junk, TLS_IN_MAX + 1), -1);
	assert_int_equal(tls_conn_feed(p.srv, junk, TLS_IN_MAX - 10), 0);
	assert_int_equal(tls_conn_feed(p.srv, junk, 11), -1);
	assert_int_equal(tls_conn_feed(p.srv, junk, 10), 0);
	assert_int_equal(tls_conn_feed(p.srv, junk, 1), -1);
	/* All zero bytes are not a record: the connection fails for good. */
	assert_int_equal(tls_conn_read(p.srv, junk, 64), TLS_ERROR);
	assert_true(tls_conn_error(p.srv)[0] != '\0');
	assert_int_equal(tls_conn_read(p.srv, junk, 64), TLS_ERROR);
	assert_int_equal(tls_conn_write(p.srv, junk, 1), TLS_ERROR);
	pair_free(&p);
	free(junk);
}

static int
discard_out(void *arg, const unsigned char *b, size_t n)
{
	size_t *total = arg;

	*total += n;
	return 0;
}

/* Whatever arrives, a fresh server fails cleanly, fed whole or bytewise. */
static void
test_garbage(void **state)
{
	static const unsigned char huge[] = { 0x16, 0x03, 0x03, 0xff, 0xff };
	static const unsigned char appdata[] = {
		0x17, 0x03, 0x03, 0x00, 0x04, 'a', 'b', 'c', 'd',
	};
	static const unsigned char bad_hello[] = {
		0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04,
		0x03, 0x03, 0x00, 0x00,
	};
	static const unsigned char sslv2[] = {
		0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00,
		0x10,
	};
	unsigned char zeros[64] = { 0 }, noise[4096];
	const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	const struct {
		const unsigned char *p;
		size_t n;
	} rows[] = {
		{ (const unsigned char *)http, strlen(http) },
		{ huge, sizeof(huge) },
		{ appdata, sizeof(appdata) },
		{ bad_hello, sizeof(bad_hello) },
		{ sslv2, sizeof(sslv2) },
		{ zeros, sizeof(zeros) },
		{ noise, sizeof(noise) },
	};
	struct fixture *fx = *state;
	struct tls_conn *c;
	unsigned char buf[16];
	size_t i, j, total = 0;
	uint32_t x = 2463534242u;
	int r;

	for (i = 0; i < sizeof(noise); i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		noise[i] = (unsigned char)x;
	}
	noise[0] = 0x42;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		c = tls_conn_new(fx->cfg, discard_out, &total);
		assert_non_null(c);
		assert_int_equal(tls_conn_feed(c, rows[i].p, rows[i].n), 0);
		assert_int_equal(tls_conn_handshake(c), TLS_ERROR);
		assert_int_equal(tls_conn_handshake(c), TLS_ERROR);
		assert_true(tls_conn_error(c)[0] != '\0');
		assert_null(tls_conn_suite(c));
		assert_int_equal(tls_conn_read(c, buf, sizeof(buf)), TLS_ERROR);
		assert_int_equal(tls_conn_write(c, buf, 1), TLS_ERROR);
		tls_conn_free(c);

		c = tls_conn_new(fx->cfg, discard_out, &total);
		assert_non_null(c);
		r = TLS_WANT;
		for (j = 0; j < rows[i].n && r == TLS_WANT; j++) {
			assert_int_equal(tls_conn_feed(c, rows[i].p + j, 1), 0);
			r = tls_conn_handshake(c);
		}
		assert_int_equal(r, TLS_ERROR);
		tls_conn_free(c);
	}
}

static void
test_write_out_refused(void **state)
{
	struct fixture *fx = *state;
	struct client_opts o = { .sni = "localhost" };
	struct pair p;
	int c, s;

	pair_init(&p, fx, fx->cfg, &o);
	p.refuse_out = 1;
	assert_int_equal(pair_handshake(&p, &c, &s), -1);
	assert_int_equal(s, TLS_ERROR);
	assert_non_null(strstr(tls_conn_error(p.srv), "output refused"));
	pair_free(&p);

	established(fx, &p);
	p.refuse_out = 1;
	assert_int_equal(tls_conn_write(p.srv, (const unsigned char *)"x", 1),
	    TLS_ERROR);
	assert_int_equal(tls_conn_close_notify(p.srv), TLS_ERROR);
	pair_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cert_files),
		cmocka_unit_test(test_cert_contents),
		cmocka_unit_test(test_cert_regenerate),
		cmocka_unit_test(test_cert_many_names),
		cmocka_unit_test(test_cert_bad_args),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_suites_ecdsa),
		cmocka_unit_test(test_default_client),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_suites_rsa),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_data_records),
		cmocka_unit_test(test_feed_bound),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_write_out_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
