/*
 * cert.c — generate a self-signed certificate and key for local TLS.
 *
 * mbedTLS 2.28 writes X.509 v3 certificates but has no setter for
 * subjectAltName or extendedKeyUsage, so both extensions are encoded here
 * with asn1write and attached as raw extensions.
 *
 * Security stance: the key comes from a CTR_DRBG seeded by the system's
 * entropy source and never leaves this process except into key_path, which
 * is created with mode 0600 (mkostemp) before a single byte is written and
 * then renamed into place, so no other user can ever open it. Its PEM text
 * and the key itself are wiped from memory before returning. The names are
 * validated as DNS host names, so nothing a caller passes can smuggle extra
 * attributes into the subject.
 */
#include "cli/cert.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#define CERT_NAME_MAX 253
#define CERT_NAMES_MAX 64
#define CERT_DAYS_MAX 3650
/* Each GeneralName is a tag, up to three length bytes and the name. */
#define CERT_SAN_MAX (CERT_NAMES_MAX * (CERT_NAME_MAX + 4) + 8)
/* The certificate: the names twice over (subject too), base64, plus slack. */
#define CERT_PEM_MAX (2 * CERT_SAN_MAX + 4096)
#define CERT_KEY_PEM_MAX 1024

const char *const cert_local_names[] = { "localhost", "*.localhost" };
const size_t cert_local_names_n =
    sizeof(cert_local_names) / sizeof(cert_local_names[0]);

static const char cert_pers[] = "cn2-cert-generate";

struct cert_gen {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context key;
	mbedtls_x509write_cert crt;
	mbedtls_mpi serial;
};

static void
cert_errf(char *err, size_t errlen, const char *what, int ret)
{
	char desc[100];

	mbedtls_strerror(ret, desc, sizeof(desc));
	snprintf(err, errlen, "%s: %s (-0x%04x)", what, desc,
	    (unsigned int)-ret);
}

/* A host name, optionally "*." followed by one: LDH labels of 1..63 bytes. */
static int
cert_name_valid(const char *name)
{
	size_t len, i, label = 0;

	if (name[0] == '*' && name[1] == '.')
		name += 2;
	len = strlen(name);
	if (len == 0 || len > CERT_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((!isalnum((unsigned char)name[i]) && name[i] != '-') ||
		    ++label > 63)
			return 0;
	}
	return label > 0;
}

/*
 * SubjectAltName ::= GeneralNames ::= SEQUENCE OF GeneralName, each a
 * dNSName [2] IA5String. asn1write fills buf from its end backwards, so the
 * names go in last to first; *der points at the result. Returns its length
 * or a negative mbedTLS error.
 */
static int
cert_san_der(const char *const *names, size_t n, unsigned char *buf,
    size_t size, unsigned char **der)
{
	unsigned char *p = buf + size;
	size_t len = 0, i, nl;
	int ret;

	for (i = n; i-- > 0;) {
		nl = strlen(names[i]);
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(&p, buf,
		    (const unsigned char *)names[i], nl));
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, nl));
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf,
		    MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME));
	}
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf,
	    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	*der = p;
	return (int)len;
}

/* ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId: just id-kp-serverAuth. */
static int
cert_eku_der(unsigned char *buf, size_t size, unsigned char **der)
{
	unsigned char *p = buf + size;
	size_t len = 0;
	int ret;

	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf,
	    MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf,
	    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	*der = p;
	return (int)len;
}

/* "YYYYMMDDhhmmss" in UTC, as mbedtls_x509write_crt_set_validity wants. */
static int
cert_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	return strftime(buf, size, "%Y%m%d%H%M%S", &tm) == 14 ? 0 : -1;
}

/* A random positive 128-bit serial, as CAs use to make serials unguessable. */
static int
cert_serial(struct cert_gen *g)
{
	unsigned char raw[16];
	int ret;

	if ((ret = mbedtls_ctr_drbg_random(&g->drbg, raw, sizeof(raw))) != 0)
		return ret;
	raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
	ret = mbedtls_mpi_read_binary(&g->serial, raw, sizeof(raw));
	if (ret == 0)
		ret = mbedtls_x509write_crt_set_serial(&g->crt, &g->serial);
	return ret;
}

static int
cert_validity(struct cert_gen *g, int days)
{
	char nb[16], na[16];
	time_t now = time(NULL);

	if (now == (time_t)-1 || cert_time(now - 3600, nb, sizeof(nb)) != 0 ||
	    cert_time(now + (time_t)days * 86400, na, sizeof(na)) != 0)
		return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
	return mbedtls_x509write_crt_set_validity(&g->crt, nb, na);
}

/*
 * The extensions. basicConstraints says CA:FALSE: the certificate is a leaf
 * that clients trust by pinning it, and OpenSSL (curl, Node) and mbedTLS
 * accept a self-signed leaf found in their trust store as is.
 */
static int
cert_extensions(struct cert_gen *g, const char *const *names, size_t n)
{
	unsigned char san[CERT_SAN_MAX], eku[32], *der;
	int len, ret;

	if ((ret = mbedtls_x509write_crt_set_basic_constraints(&g->crt, 0, -1)) ||
	    (ret = mbedtls_x509write_crt_set_key_usage(&g->crt,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) ||
	    (ret = mbedtls_x509write_crt_set_subject_key_identifier(&g->crt)) ||
	    (ret = mbedtls_x509write_crt_set_authority_key_identifier(&g->crt)))
		return ret;
	if ((len = cert_san_der(names, n, san, sizeof(san), &der)) < 0)
		return len;
	ret = mbedtls_x509write_crt_set_extension(&g->crt,
	    MBEDTLS_OID_SUBJECT_ALT_NAME,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, der, (size_t)len);
	if (ret != 0)
		return ret;
	if ((len = cert_eku_der(eku, sizeof(eku), &der)) < 0)
		return len;
	return mbedtls_x509write_crt_set_extension(&g->crt,
	    MBEDTLS_OID_EXTENDED_KEY_USAGE,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, der,
	    (size_t)len);
}

/* Key pair, then the certificate around it, signed by itself. */
static int
cert_build(struct cert_gen *g, const char *const *names, size_t n, int days,
    unsigned char *pem, size_t pem_size, const char **what)
{
	char subject[CERT_NAME_MAX + 4];
	int ret;

	*what = "seeding the random generator";
	if ((ret = mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func,
	    &g->entropy, (const unsigned char *)cert_pers,
	    sizeof(cert_pers) - 1)) != 0)
		return ret;
	*what = "generating the key";
	if ((ret = mbedtls_pk_setup(&g->key,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
	    (ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
	    mbedtls_pk_ec(g->key), mbedtls_ctr_drbg_random, &g->drbg)) != 0)
		return ret;
	*what = "building the certificate";
	snprintf(subject, sizeof(subject), "CN=%s", names[0]);
	mbedtls_x509write_crt_set_version(&g->crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&g->crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&g->crt, &g->key);
	mbedtls_x509write_crt_set_issuer_key(&g->crt, &g->key);
	if ((ret = mbedtls_x509write_crt_set_subject_name(&g->crt, subject)) ||
	    (ret = mbedtls_x509write_crt_set_issuer_name(&g->crt, subject)) ||
	    (ret = cert_serial(g)) || (ret = cert_validity(g, days)) ||
	    (ret = cert_extensions(g, names, n)))
		return ret;
	*what = "signing the certificate";
	return mbedtls_x509write_crt_pem(&g->crt, pem, pem_size,
	    mbedtls_ctr_drbg_random, &g->drbg);
}

/*
 * Write data to a new temporary file beside path, created 0600 by
 * mkostemp and then given mode; tmp receives its name. The caller renames
 * it into place or unlinks it.
 */
static int
cert_write_temp(const char *path, const unsigned char *data, size_t len,
    mode_t mode, char *tmp, size_t tmpsz, char *err, size_t errlen)
{
	size_t off = 0;
	ssize_t w;
	int fd;

	if ((size_t)snprintf(tmp, tmpsz, "%s.XXXXXX", path) >= tmpsz) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1)
		goto fail;
	while (off < len) {
		if ((w = write(fd, data + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Both files to temporaries first, so a failure replaces neither. */
static int
cert_install(const char *cert_path, const char *key_path,
    const unsigned char *cert_pem, const unsigned char *key_pem, char *err,
    size_t errlen)
{
	char ktmp[4096], ctmp[4096];

	if (cert_write_temp(key_path, key_pem, strlen((const char *)key_pem),
	    0600, ktmp, sizeof(ktmp), err, errlen) != 0)
		return -1;
	if (cert_write_temp(cert_path, cert_pem, strlen((const char *)cert_pem),
	    0644, ctmp, sizeof(ctmp), err, errlen) != 0) {
		unlink(ktmp);
		return -1;
	}
	if (rename(ktmp, key_path) == -1) {
		snprintf(err, errlen, "%s: %s", key_path, strerror(errno));
		unlink(ktmp);
		unlink(ctmp);
		return -1;
	}
	if (rename(ctmp, cert_path) == -1) {
		snprintf(err, errlen, "%s: %s", cert_path, strerror(errno));
		unlink(ctmp);
		return -1;
	}
	return 0;
}

static int
cert_args_valid(const char *const *names, size_t n, int days, char *err,
    size_t errlen)
{
	size_t i;

	if (n == 0 || n > CERT_NAMES_MAX) {
		snprintf(err, errlen, "need 1 to %d names", CERT_NAMES_MAX);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || !cert_name_valid(names[i])) {
			snprintf(err, errlen, "name %zu is not a DNS host name",
			    i + 1);
			return 0;
		}
	}
	if (days < 1 || days > CERT_DAYS_MAX) {
		snprintf(err, errlen, "validity must be 1 to %d days",
		    CERT_DAYS_MAX);
		return 0;
	}
	return 1;
}

int
cert_generate(const char *cert_path, const char *key_path,
    const char *const *dns_names, size_t n, int days, char *err,
    size_t errlen)
{
	unsigned char *cert_pem, key_pem[CERT_KEY_PEM_MAX];
	struct cert_gen g;
	const char *what = "";
	int ret, rc = -1;

	if (!cert_args_valid(dns_names, n, days, err, errlen))
		return -1;
	if ((cert_pem = malloc(CERT_PEM_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mbedtls_entropy_init(&g.entropy);
	mbedtls_ctr_drbg_init(&g.drbg);
	mbedtls_pk_init(&g.key);
	mbedtls_x509write_crt_init(&g.crt);
	mbedtls_mpi_init(&g.serial);
	memset(key_pem, 0, sizeof(key_pem));
	if ((ret = cert_build(&g, dns_names, n, days, cert_pem,
	    CERT_PEM_MAX, &what)) != 0)
		cert_errf(err, errlen, what, ret);
	else if ((ret = mbedtls_pk_write_key_pem(&g.key, key_pem,
	    sizeof(key_pem))) != 0)
		cert_errf(err, errlen, "encoding the key", ret);
	else
		rc = cert_install(cert_path, key_path, cert_pem, key_pem, err,
		    errlen);
	mbedtls_platform_zeroize(key_pem, sizeof(key_pem));
	mbedtls_mpi_free(&g.serial);
	mbedtls_x509write_crt_free(&g.crt);
	mbedtls_pk_free(&g.key);
	mbedtls_ctr_drbg_free(&g.drbg);
	mbedtls_entropy_free(&g.entropy);
	free(cert_pem);
	return rc;
}
