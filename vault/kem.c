/*
 * kem.c — the vault's X25519 key pairs for sealed intake (HPKE, RFC 9180).
 *
 * Sellers' clients seal their API keys to the newest public key, which the
 * platform API publishes with its key id (GET /api/vault/public-key → the
 * vault's VAULT_PUBKEY). The first start creates a key pair; older ones stay
 * loaded so a key sealed just before a new pair appeared still opens. The
 * key id is "vk_" and the first 96 bits of SHA-256("cn2 vault key v1" ||
 * public key) in base64url: it names the public key and nothing else.
 *
 * Security stance: a private half exists in clear only in locked memory
 * (secmem.c) while the vault runs; at rest it is sealed under the master key
 * like a seller's key (seal.c), with its key id and master version as
 * associated data, in vault.db's intake_keys table, and `cn2-vault rewrap`
 * re-seals it with the keys. A row that does not open stops the vault at
 * start: it would mean a tampered database or a wrong master key.
 */
#include "vault/vault.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "common/b64url.h"
#include "common/log.h"

void
kem_kid(const uint8_t pk[HPKE_NPK], char kid[IPC_KID_MAX + 1])
{
	static const char label[] = "cn2 vault key v1";
	uint8_t in[sizeof(label) - 1 + HPKE_NPK], h[32];

	memcpy(in, label, sizeof(label) - 1);
	memcpy(in + sizeof(label) - 1, pk, HPKE_NPK);
	if (mbedtls_sha256_ret(in, sizeof(in), h, 0) != 0)
		memset(h, 0, sizeof(h));
	memcpy(kid, "vk_", 3);
	if (b64url_encode(h, 12, kid + 3, IPC_KID_MAX + 1 - 3) < 0)
		kid[3] = '\0';
}

/* Open one stored pair into k->v[k->n]. 0, or -1 with err. */
static int
kem_load_one(struct kem *k, const struct store_kem *row, const struct keyring *kr, char *err,
    size_t errlen)
{
	struct kem_key *kk = &k->v[k->n];
	struct seal *s = keyring_for(kr, row->master_version);
	uint8_t pk[HPKE_NPK];
	char kid[IPC_KID_MAX + 1];

	kem_kid(row->pk, kid);
	if (strcmp(kid, row->kid) != 0) {
		snprintf(err, errlen, "intake key %s: its id does not name its public key", row->kid);
		return -1;
	}
	if (s == NULL || (kk->sk = secmem_alloc(HPKE_NSK)) == NULL ||
	    seal_open(s, row->kid, row->master_version, row->nonce, row->sealed,
		sizeof(row->sealed), kk->sk) != 0 ||
	    hpke_public(kk->sk, pk) != 0 || memcmp(pk, row->pk, HPKE_NPK) != 0) {
		secmem_free(kk->sk);
		kk->sk = NULL;
		snprintf(err, errlen, "intake key %s does not open under master key version %u",
		    row->kid, (unsigned)row->master_version);
		return -1;
	}
	memcpy(kk->kid, row->kid, sizeof(kk->kid));
	memcpy(kk->pk, row->pk, HPKE_NPK);
	kk->created = row->created;
	k->n++;
	return 0;
}

/* A new pair, sealed and committed before it is used. */
static int
kem_create(struct kem *k, sqlite3 *db, const struct keyring *kr, char *err, size_t errlen)
{
	struct store_kem row;
	uint8_t *sk = secmem_alloc(HPKE_NSK);
	int rc = -1;

	memset(&row, 0, sizeof(row));
	if (sk != NULL && hpke_keypair_generate(sk, row.pk) == 0) {
		kem_kid(row.pk, row.kid);
		row.master_version = kr->cur->version;
		row.created = (int64_t)time(NULL);
		if (seal_seal(kr->cur, row.kid, sk, HPKE_NSK, row.nonce, row.sealed) == 0 &&
		    store_kem_add(db, &row) == 0)
			rc = 0;
	}
	if (rc != 0) {
		secmem_free(sk);
		snprintf(err, errlen, "cannot create the vault's intake key pair");
		return -1;
	}
	k->v[k->n].sk = sk;
	memcpy(k->v[k->n].kid, row.kid, sizeof(row.kid));
	memcpy(k->v[k->n].pk, row.pk, HPKE_NPK);
	k->v[k->n].created = row.created;
	k->n++;
	log_info("new intake key pair %s", row.kid);
	return 0;
}

int
kem_open(struct kem *k, sqlite3 *db, const struct keyring *kr, char *err, size_t errlen)
{
	struct store_kem rows[KEM_KEYS_MAX];
	int n;

	memset(k, 0, sizeof(*k));
	if ((n = store_kem_list(db, rows, KEM_KEYS_MAX)) < 0) {
		snprintf(err, errlen, "cannot read the intake key pairs of vault.db (at most %d)",
		    KEM_KEYS_MAX);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (kem_load_one(k, &rows[i], kr, err, errlen) != 0) {
			kem_close(k);
			return -1;
		}
	if (k->n == 0 && kem_create(k, db, kr, err, errlen) != 0)
		return -1;
	return 0;
}

const struct kem_key *
kem_current(const struct kem *k)
{
	return k->n > 0 ? &k->v[k->n - 1] : NULL;
}

const struct kem_key *
kem_find(const struct kem *k, const char *kid)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->v[i].kid, kid) == 0)
			return &k->v[i];
	return NULL;
}

void
kem_close(struct kem *k)
{
	for (size_t i = 0; i < k->n; i++)
		secmem_free(k->v[i].sk);
	mbedtls_platform_zeroize(k, sizeof(*k));
}
