/*
 * seal.c — seller keys at rest: AES-256-GCM under the master key.
 *
 * Each key is sealed under a fresh random 96-bit nonce from a CTR-DRBG
 * seeded by the system's entropy, with associated data
 * "cn2 key v1|<key id>|<master version>": a ciphertext copied to another
 * key id's row, or kept across a master key change, does not open.
 *
 * Security stance: the master key lives only inside the GCM context (its
 * key schedule) and in the caller's buffer until seal_init returns; it is
 * never logged, and every buffer that held it or a plaintext is wiped with
 * mbedtls_platform_zeroize. The master key file must be readable by its
 * owner only and hold exactly 64 hex digits: anything else stops the vault
 * at start rather than sealing keys under a guessable or truncated key.
 */
#include "vault/vault.h"

#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"

#define SEAL_AD_MAX (16 + IPC_KEY_ID_MAX + 1 + 10)

static int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
seal_load_master(const char *path, uint8_t key[SEAL_KEY_LEN], char *err, size_t errlen)
{
	uint8_t hex[2 * SEAL_KEY_LEN];
	int n, rc = 0;

	n = cfg_read_secret(path, hex, 1, sizeof(hex), err, errlen);
	if (n < 0)
		return -1;
	if (n != 2 * SEAL_KEY_LEN) {
		snprintf(err, errlen, "%s: the master key must be exactly %d hex digits", path,
		    2 * SEAL_KEY_LEN);
		rc = -1;
	}
	for (int i = 0; rc == 0 && i < SEAL_KEY_LEN; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			snprintf(err, errlen, "%s: the master key must be hex digits only", path);
			rc = -1;
		} else
			key[i] = (uint8_t)(hi << 4 | lo);
	}
	mbedtls_platform_zeroize(hex, sizeof(hex));
	if (rc != 0)
		mbedtls_platform_zeroize(key, SEAL_KEY_LEN);
	return rc;
}

int
seal_init(struct seal *s, const uint8_t key[SEAL_KEY_LEN], uint32_t version, char *err,
    size_t errlen)
{
	static const char pers[] = "cn2 vault seal";
	int rc;

	memset(s, 0, sizeof(*s));
	mbedtls_gcm_init(&s->gcm);
	mbedtls_entropy_init(&s->entropy);
	mbedtls_ctr_drbg_init(&s->drbg);
	s->version = version;
	s->ready = 1;
	if ((rc = mbedtls_gcm_setkey(&s->gcm, MBEDTLS_CIPHER_ID_AES, key, 8 * SEAL_KEY_LEN)) != 0 ||
	    (rc = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
		 (const unsigned char *)pers, sizeof(pers) - 1)) != 0) {
		snprintf(err, errlen, "cannot set up AES-GCM and its random generator (mbedTLS -0x%04x)",
		    (unsigned)-rc);
		seal_free(s);
		return -1;
	}
	return 0;
}

void
seal_free(struct seal *s)
{
	if (!s->ready)
		return;
	mbedtls_gcm_free(&s->gcm);
	mbedtls_ctr_drbg_free(&s->drbg);
	mbedtls_entropy_free(&s->entropy);
	s->ready = 0;
}

/* The associated data: binds a ciphertext to its key id and master version. */
static size_t
seal_ad(char *buf, size_t cap, const char *key_id, uint32_t version)
{
	int n = snprintf(buf, cap, "cn2 key v1|%s|%u", key_id, (unsigned)version);

	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int
seal_seal(struct seal *s, const char *key_id, const uint8_t *pt, size_t len,
    uint8_t nonce[SEAL_NONCE_LEN], uint8_t *ct)
{
	char ad[SEAL_AD_MAX];
	size_t adlen = seal_ad(ad, sizeof(ad), key_id, s->version);

	if (!s->ready || adlen == 0 || mbedtls_ctr_drbg_random(&s->drbg, nonce, SEAL_NONCE_LEN) != 0)
		return -1;
	if (mbedtls_gcm_crypt_and_tag(&s->gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, SEAL_NONCE_LEN,
		(const unsigned char *)ad, adlen, pt, ct, SEAL_TAG_LEN, ct + len) != 0) {
		mbedtls_platform_zeroize(ct, len + SEAL_TAG_LEN);
		return -1;
	}
	return 0;
}

int
seal_open(struct seal *s, const char *key_id, uint32_t version,
    const uint8_t nonce[SEAL_NONCE_LEN], const uint8_t *ct, size_t ctlen, uint8_t *pt)
{
	char ad[SEAL_AD_MAX];
	size_t adlen = seal_ad(ad, sizeof(ad), key_id, version);
	size_t len;

	if (!s->ready || adlen == 0 || ctlen < SEAL_TAG_LEN)
		return -1;
	len = ctlen - SEAL_TAG_LEN;
	if (mbedtls_gcm_auth_decrypt(&s->gcm, len, nonce, SEAL_NONCE_LEN,
		(const unsigned char *)ad, adlen, ct + len, SEAL_TAG_LEN, ct, pt) != 0) {
		mbedtls_platform_zeroize(pt, len);
		return -1;
	}
	return 0;
}
