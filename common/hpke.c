/*
 * hpke.c — RFC 9180 base mode on mbedTLS 2.28 (see hpke.h).
 *
 * The RFC's functions map one to one: LabeledExtract / LabeledExpand
 * (section 4), DHKEM's DeriveKeyPair, Encap and Decap with
 * ExtractAndExpand (sections 4.1, 7.1.3), KeySchedule for mode_base
 * (section 5.1), ComputeNonce, Seal, Open and Export (sections 5.2, 5.3).
 *
 * X25519 is mbedTLS's Curve25519 (MBEDTLS_ECP_DP_CURVE25519): scalars are
 * little-endian and clamped here before use (mbedTLS requires the clamped
 * form), u-coordinates little-endian with the top bit masked by
 * mbedtls_ecp_point_read_binary. mbedtls_ecp_mul refuses the low-order
 * points it knows; the all-zero check below refuses every one of them
 * whatever mbedTLS does, since X25519 with a clamped scalar maps each
 * low-order point to zero.
 *
 * Security stance: see hpke.h. Every stack buffer that held a secret is
 * wiped on every path out; failure codes carry no detail an attacker could
 * use to tell one bad input from another.
 */
#include "common/hpke.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/ecp.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#define LABEL_MAX 16
#define KEM_SUITE_LEN 5
#define HPKE_SUITE_LEN 10
#define SUITE_MAX HPKE_SUITE_LEN
/* "HPKE-v1" || suite_id || label || ikm, and I2OSP(L, 2) in front for Expand. */
#define LABELED_MAX (2 + 7 + SUITE_MAX + LABEL_MAX + HPKE_INFO_MAX)

struct suite {
	uint8_t id[SUITE_MAX];
	size_t len;
};

static void
kem_suite(struct suite *s)
{
	memcpy(s->id, "KEM", 3);
	s->id[3] = HPKE_KEM_X25519_SHA256 >> 8;
	s->id[4] = HPKE_KEM_X25519_SHA256 & 0xff;
	s->len = KEM_SUITE_LEN;
}

static void
hpke_suite(struct suite *s, enum hpke_aead aead)
{
	memcpy(s->id, "HPKE", 4);
	s->id[4] = HPKE_KEM_X25519_SHA256 >> 8;
	s->id[5] = HPKE_KEM_X25519_SHA256 & 0xff;
	s->id[6] = HPKE_KDF_HKDF_SHA256 >> 8;
	s->id[7] = HPKE_KDF_HKDF_SHA256 & 0xff;
	s->id[8] = (uint8_t)((unsigned)aead >> 8);
	s->id[9] = (uint8_t)((unsigned)aead & 0xff);
	s->len = HPKE_SUITE_LEN;
}

static int
aead_keylen(enum hpke_aead aead)
{
	switch (aead) {
	case HPKE_AES_128_GCM:
		return 16;
	case HPKE_AES_256_GCM:
		return 32;
	default:
		return -1;
	}
}

/* getrandom(2) as an mbedTLS random callback. */
static int
hpke_random(void *ctx, unsigned char *buf, size_t len)
{
	(void)ctx;
	while (len > 0) {
		ssize_t n = getrandom(buf, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* "HPKE-v1" || suite || label || ikm into buf at *off. -1 if it does not fit. */
static int
labeled(uint8_t *buf, size_t *off, const struct suite *s, const char *label,
    const uint8_t *ikm, size_t ikmlen)
{
	size_t ll = strlen(label);

	if (ll > LABEL_MAX || ikmlen > HPKE_INFO_MAX || *off + 7 + s->len + ll + ikmlen > LABELED_MAX)
		return -1;
	memcpy(buf + *off, "HPKE-v1", 7);
	memcpy(buf + *off + 7, s->id, s->len);
	memcpy(buf + *off + 7 + s->len, label, ll);
	if (ikmlen > 0)
		memcpy(buf + *off + 7 + s->len + ll, ikm, ikmlen);
	*off += 7 + s->len + ll + ikmlen;
	return 0;
}

static int
labeled_extract(const struct suite *s, const uint8_t *salt, size_t saltlen, const char *label,
    const uint8_t *ikm, size_t ikmlen, uint8_t prk[HPKE_NH])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	uint8_t buf[LABELED_MAX];
	size_t n = 0;
	int rc = -1;

	if (md != NULL && labeled(buf, &n, s, label, ikm, ikmlen) == 0 &&
	    mbedtls_hkdf_extract(md, salt, saltlen, buf, n, prk) == 0)
		rc = 0;
	mbedtls_platform_zeroize(buf, sizeof(buf));
	return rc;
}

static int
labeled_expand(const struct suite *s, const uint8_t prk[HPKE_NH], const char *label,
    const uint8_t *info, size_t infolen, uint8_t *out, size_t L)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	uint8_t buf[LABELED_MAX];
	size_t n = 2;
	int rc = -1;

	if (L == 0 || L > HPKE_EXPORT_MAX)
		return -1;
	buf[0] = (uint8_t)(L >> 8);
	buf[1] = (uint8_t)(L & 0xff);
	if (md != NULL && labeled(buf, &n, s, label, info, infolen) == 0 &&
	    mbedtls_hkdf_expand(md, prk, HPKE_NH, buf, n, out, L) == 0)
		rc = 0;
	mbedtls_platform_zeroize(buf, sizeof(buf));
	return rc;
}

static int
all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * X25519(scalar, u): u NULL means the base point. 0, or -1 for a point
 * mbedTLS refuses or an all-zero result (out is then zero).
 */
static int
x25519(const uint8_t scalar[HPKE_NSK], const uint8_t *u, uint8_t out[32])
{
	mbedtls_ecp_group grp;
	mbedtls_ecp_point P, R;
	mbedtls_mpi d;
	uint8_t k[32];
	int rc;

	memcpy(k, scalar, sizeof(k));
	k[0] &= 248;
	k[31] &= 127;
	k[31] |= 64;
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&P);
	mbedtls_ecp_point_init(&R);
	mbedtls_mpi_init(&d);
	rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519);
	if (rc == 0)
		rc = mbedtls_mpi_read_binary_le(&d, k, sizeof(k));
	if (rc == 0)
		rc = u != NULL ? mbedtls_ecp_point_read_binary(&grp, &P, u, 32)
			       : mbedtls_ecp_copy(&P, &grp.G);
	if (rc == 0)
		rc = mbedtls_ecp_mul(&grp, &R, &d, &P, hpke_random, NULL);
	if (rc == 0)
		rc = mbedtls_mpi_write_binary_le(&R.X, out, 32);
	if (rc == 0 && all_zero(out, 32))
		rc = -1;
	if (rc != 0)
		mbedtls_platform_zeroize(out, 32);
	mbedtls_platform_zeroize(k, sizeof(k));
	mbedtls_mpi_free(&d);
	mbedtls_ecp_point_free(&R);
	mbedtls_ecp_point_free(&P);
	mbedtls_ecp_group_free(&grp);
	return rc == 0 ? 0 : -1;
}

int
hpke_public(const uint8_t sk[HPKE_NSK], uint8_t pk[HPKE_NPK])
{
	return x25519(sk, NULL, pk);
}

int
hpke_keypair_derive(const uint8_t *ikm, size_t len, uint8_t sk[HPKE_NSK], uint8_t pk[HPKE_NPK])
{
	struct suite s;
	uint8_t prk[HPKE_NH];
	int rc = -1;

	kem_suite(&s);
	if (len >= HPKE_NSK && labeled_extract(&s, NULL, 0, "dkp_prk", ikm, len, prk) == 0 &&
	    labeled_expand(&s, prk, "sk", NULL, 0, sk, HPKE_NSK) == 0 && hpke_public(sk, pk) == 0)
		rc = 0;
	mbedtls_platform_zeroize(prk, sizeof(prk));
	if (rc != 0)
		mbedtls_platform_zeroize(sk, HPKE_NSK);
	return rc;
}

int
hpke_keypair_generate(uint8_t sk[HPKE_NSK], uint8_t pk[HPKE_NPK])
{
	uint8_t ikm[HPKE_NSK];
	int rc = -1;

	if (hpke_random(NULL, ikm, sizeof(ikm)) == 0)
		rc = hpke_keypair_derive(ikm, sizeof(ikm), sk, pk);
	mbedtls_platform_zeroize(ikm, sizeof(ikm));
	return rc;
}

/* ExtractAndExpand(dh, enc || pkR): the KEM's shared secret. */
static int
kem_shared(const uint8_t dh[32], const uint8_t enc[HPKE_NENC], const uint8_t pkR[HPKE_NPK],
    uint8_t shared[HPKE_NH])
{
	struct suite s;
	uint8_t prk[HPKE_NH], ctx[HPKE_NENC + HPKE_NPK];
	int rc = -1;

	kem_suite(&s);
	memcpy(ctx, enc, HPKE_NENC);
	memcpy(ctx + HPKE_NENC, pkR, HPKE_NPK);
	if (labeled_extract(&s, NULL, 0, "eae_prk", dh, 32, prk) == 0 &&
	    labeled_expand(&s, prk, "shared_secret", ctx, sizeof(ctx), shared, HPKE_NH) == 0)
		rc = 0;
	mbedtls_platform_zeroize(prk, sizeof(prk));
	return rc;
}

/* KeySchedule for mode_base: no PSK, so psk and psk_id are empty. */
static int
key_schedule(struct hpke_ctx *c, enum hpke_aead aead, const uint8_t shared[HPKE_NH],
    const uint8_t *info, size_t infolen)
{
	struct suite s;
	uint8_t ksc[1 + 2 * HPKE_NH], secret[HPKE_NH];
	int nk = aead_keylen(aead), rc = -1;

	memset(c, 0, sizeof(*c));
	hpke_suite(&s, aead);
	ksc[0] = 0x00; /* mode_base */
	if (nk > 0 && labeled_extract(&s, NULL, 0, "psk_id_hash", NULL, 0, ksc + 1) == 0 &&
	    labeled_extract(&s, NULL, 0, "info_hash", info, infolen, ksc + 1 + HPKE_NH) == 0 &&
	    labeled_extract(&s, shared, HPKE_NH, "secret", NULL, 0, secret) == 0 &&
	    labeled_expand(&s, secret, "key", ksc, sizeof(ksc), c->key, (size_t)nk) == 0 &&
	    labeled_expand(&s, secret, "base_nonce", ksc, sizeof(ksc), c->base_nonce, HPKE_NN) ==
		0 &&
	    labeled_expand(&s, secret, "exp", ksc, sizeof(ksc), c->exporter, HPKE_NH) == 0) {
		c->aead = aead;
		c->keylen = (size_t)nk;
		rc = 0;
	}
	mbedtls_platform_zeroize(secret, sizeof(secret));
	mbedtls_platform_zeroize(ksc, sizeof(ksc));
	if (rc != 0)
		hpke_ctx_wipe(c);
	return rc;
}

int
hpke_setup_s(struct hpke_ctx *c, enum hpke_aead aead, const uint8_t pkR[HPKE_NPK],
    const uint8_t *info, size_t infolen, const uint8_t *skE, uint8_t enc[HPKE_NENC])
{
	uint8_t sk[HPKE_NSK], dh[32], shared[HPKE_NH];
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (infolen > HPKE_INFO_MAX || aead_keylen(aead) < 0)
		return -1;
	if (skE != NULL)
		memcpy(sk, skE, HPKE_NSK);
	if ((skE != NULL ? hpke_public(sk, enc) : hpke_keypair_generate(sk, enc)) == 0 &&
	    x25519(sk, pkR, dh) == 0 && kem_shared(dh, enc, pkR, shared) == 0 &&
	    key_schedule(c, aead, shared, info, infolen) == 0)
		rc = 0;
	mbedtls_platform_zeroize(sk, sizeof(sk));
	mbedtls_platform_zeroize(dh, sizeof(dh));
	mbedtls_platform_zeroize(shared, sizeof(shared));
	return rc;
}

int
hpke_setup_r(struct hpke_ctx *c, enum hpke_aead aead, const uint8_t skR[HPKE_NSK],
    const uint8_t *pkR, const uint8_t enc[HPKE_NENC], const uint8_t *info, size_t infolen)
{
	uint8_t pk[HPKE_NPK], dh[32], shared[HPKE_NH];
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (infolen > HPKE_INFO_MAX || aead_keylen(aead) < 0)
		return -1;
	if (pkR != NULL)
		memcpy(pk, pkR, HPKE_NPK);
	if (x25519(skR, enc, dh) == 0 && (pkR != NULL || hpke_public(skR, pk) == 0) &&
	    kem_shared(dh, enc, pk, shared) == 0 &&
	    key_schedule(c, aead, shared, info, infolen) == 0)
		rc = 0;
	mbedtls_platform_zeroize(dh, sizeof(dh));
	mbedtls_platform_zeroize(shared, sizeof(shared));
	return rc;
}

/* ComputeNonce: base_nonce XOR I2OSP(seq, Nn). */
static void
ctx_nonce(const struct hpke_ctx *c, uint8_t nonce[HPKE_NN])
{
	memcpy(nonce, c->base_nonce, HPKE_NN);
	for (int i = 0; i < 8; i++)
		nonce[HPKE_NN - 1 - i] ^= (uint8_t)(c->seq >> (8 * i));
}

/* An AES-GCM context keyed for c. 0 or -1 (g is then freed). */
static int
ctx_gcm(const struct hpke_ctx *c, mbedtls_gcm_context *g)
{
	mbedtls_gcm_init(g);
	if (c->keylen == 0 ||
	    mbedtls_gcm_setkey(g, MBEDTLS_CIPHER_ID_AES, c->key, (unsigned)(8 * c->keylen)) != 0) {
		mbedtls_gcm_free(g);
		return -1;
	}
	return 0;
}

int
hpke_ctx_seal(struct hpke_ctx *c, const uint8_t *aad, size_t aadlen, const uint8_t *pt,
    size_t len, uint8_t *ct)
{
	mbedtls_gcm_context g;
	uint8_t nonce[HPKE_NN];
	int rc;

	if (c->seq == UINT64_MAX || ctx_gcm(c, &g) != 0)
		return -1;
	ctx_nonce(c, nonce);
	rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, len, nonce, HPKE_NN, aad, aadlen,
	    pt, ct, HPKE_NT, ct + len);
	mbedtls_gcm_free(&g);
	if (rc != 0) {
		mbedtls_platform_zeroize(ct, len + HPKE_NT);
		return -1;
	}
	c->seq++;
	return 0;
}

int
hpke_ctx_open(struct hpke_ctx *c, const uint8_t *aad, size_t aadlen, const uint8_t *ct,
    size_t ctlen, uint8_t *pt)
{
	mbedtls_gcm_context g;
	uint8_t nonce[HPKE_NN];
	size_t len;
	int rc;

	if (ctlen < HPKE_NT || c->seq == UINT64_MAX || ctx_gcm(c, &g) != 0)
		return -1;
	len = ctlen - HPKE_NT;
	ctx_nonce(c, nonce);
	rc = mbedtls_gcm_auth_decrypt(&g, len, nonce, HPKE_NN, aad, aadlen, ct + len, HPKE_NT, ct,
	    pt);
	mbedtls_gcm_free(&g);
	if (rc != 0) {
		mbedtls_platform_zeroize(pt, len);
		return -1;
	}
	c->seq++;
	return 0;
}

int
hpke_ctx_export(const struct hpke_ctx *c, const uint8_t *ctx, size_t len, uint8_t *out,
    size_t L)
{
	struct suite s;

	if (c->keylen == 0)
		return -1;
	hpke_suite(&s, c->aead);
	return labeled_expand(&s, c->exporter, "sec", ctx, len, out, L);
}

void
hpke_ctx_wipe(struct hpke_ctx *c)
{
	mbedtls_platform_zeroize(c, sizeof(*c));
}

int
hpke_seal(enum hpke_aead aead, const uint8_t pkR[HPKE_NPK], const uint8_t *info,
    size_t infolen, const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t len,
    uint8_t enc[HPKE_NENC], uint8_t *ct)
{
	struct hpke_ctx c;
	int rc = -1;

	if (hpke_setup_s(&c, aead, pkR, info, infolen, NULL, enc) == 0)
		rc = hpke_ctx_seal(&c, aad, aadlen, pt, len, ct);
	hpke_ctx_wipe(&c);
	return rc;
}

int
hpke_open(enum hpke_aead aead, const uint8_t skR[HPKE_NSK], const uint8_t *pkR,
    const uint8_t enc[HPKE_NENC],
    const uint8_t *info, size_t infolen, const uint8_t *aad, size_t aadlen, const uint8_t *ct,
    size_t ctlen, uint8_t *pt)
{
	struct hpke_ctx c;
	int rc = -1;

	if (ctlen < HPKE_NT)
		return -1;
	if (hpke_setup_r(&c, aead, skR, pkR, enc, info, infolen) == 0)
		rc = hpke_ctx_open(&c, aad, aadlen, ct, ctlen, pt);
	else
		mbedtls_platform_zeroize(pt, ctlen - HPKE_NT);
	hpke_ctx_wipe(&c);
	return rc;
}

int
hpke_cn2_binding(char *buf, size_t cap, const char *seller, const char *provider)
{
	int n;

	if (*seller == '\0' || *provider == '\0' || strchr(seller, '|') != NULL ||
	    strchr(provider, '|') != NULL)
		return -1;
	n = snprintf(buf, cap, "cn2 seller key v1|%s|%s", seller, provider);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}
