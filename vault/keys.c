/*
 * keys.c — sellers' keys coming in: VAULT_PUBKEY (the public key to seal
 * to) and KEY_PUT (a key sealed to it, new or rotated).
 *
 * A KEY_PUT carries an HPKE ciphertext (common/hpke.h) that the seller's
 * client made: platform-api only passed it on. The vault finds the key
 * pair it names (kid), opens it with the binding of seller id and provider
 * as info and associated data (so a ciphertext sealed for one seller or
 * provider does not open for another), checks the key, seals it again
 * under the master key (seal.c) and stores it (store.c). ACK comes only
 * once it is on disk.
 *
 *   create (rotate = 0): the key id must be new (409 key-id-taken);
 *   rotate (rotate = 1): the key must exist for this seller and provider
 *     (404 key-not-found); it gets the new secret and generation + 1. New
 *     calls read the new row at once. Calls already running keep the old
 *     secret they opened (in their locked buffers) until they end; when the
 *     last one has ended the old secret is gone from memory, and the vault
 *     checkpoints vault.db so no page of the old ciphertext stays in the WAL
 *     (secure_delete already overwrote it in the database file).
 *
 * Security stance: the opened key lives only in locked memory (secmem.c),
 * for as long as it takes to seal it again, and is wiped. Refusals say what
 * is wrong without echoing anything; nothing here logs a key.
 */
#include "vault/vault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "common/db.h"
#include "common/dbq.h"
#include "common/log.h"

struct key_job {
	struct vault *v;
	struct ipc_req req;
	struct store_key_put row;
};

/* A rotated key whose previous secret calls in progress still hold. */
struct retiring {
	struct retiring *next;
	char key_id[IPC_KEY_ID_MAX + 1];
	int64_t generation; /* the newest generation that is retiring */
};

static void
keys_problem(struct vault *v, const struct ipc_req *req, uint16_t status, const char *name,
    const char *detail)
{
	v->d->errors++;
	ipc_reply_problem(v->d->ipc, req, status, name, detail);
}

void
keys_pubkey(struct vault *v, const struct ipc_req *req)
{
	const struct kem_key *k = kem_current(&v->kem);
	struct ipc_vault_pubkey_rep rep;

	if (k == NULL) {
		ipc_reply_error(v->d->ipc, req, IPC_ERR_INTERNAL, "no intake key");
		return;
	}
	memset(&rep, 0, sizeof(rep));
	memcpy(rep.kid, k->kid, sizeof(rep.kid));
	rep.public_key.p = k->pk;
	rep.public_key.len = HPKE_NPK;
	rep.created = k->created;
	ipc_reply(v->d->ipc, req, IPC_VAULT_PUBKEY_REP, &rep);
}

/* The old secret of a rotated key is used by no call: wipe what is left of it. */
static void
keys_retired(struct vault *v, const char *key_id, int64_t generation)
{
	int busy = 0, log_frames = 0, done = 0;

	v->wiped++;
	if (sqlite3_wal_checkpoint_v2(v->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
		&done) != SQLITE_OK)
		busy = 1;
	log_info("key %s: no call uses generation %lld any more; its secret is wiped%s", key_id,
	    (long long)generation, busy ? " (the WAL checkpoint must wait)" : "");
}

static void
keys_retire(struct vault *v, const char *key_id, int64_t old_generation)
{
	struct retiring *r;

	if (forward_count(v, key_id, old_generation) == 0) {
		keys_retired(v, key_id, old_generation);
		return;
	}
	for (r = v->retiring; r != NULL; r = r->next)
		if (strcmp(r->key_id, key_id) == 0)
			break;
	if (r == NULL && (r = calloc(1, sizeof(*r))) != NULL) {
		snprintf(r->key_id, sizeof(r->key_id), "%s", key_id);
		r->next = v->retiring;
		v->retiring = r;
	}
	if (r != NULL)
		r->generation = old_generation;
	log_info("key %s rotated; calls in progress finish with generation %lld", key_id,
	    (long long)old_generation);
}

void
keys_call_ended(struct vault *v, const char *key_id)
{
	struct retiring **rp, *r;

	for (rp = &v->retiring; (r = *rp) != NULL; rp = &r->next)
		if (strcmp(r->key_id, key_id) == 0)
			break;
	if (r == NULL || forward_count(v, key_id, r->generation) > 0)
		return;
	*rp = r->next;
	keys_retired(v, r->key_id, r->generation);
	free(r);
}

void
keys_free_retiring(struct vault *v)
{
	while (v->retiring != NULL) {
		struct retiring *r = v->retiring;

		v->retiring = r->next;
		free(r);
	}
}

static int
keys_apply(sqlite3 *db, void *arg)
{
	return store_key_put(db, &((struct key_job *)arg)->row);
}

static void
keys_on_stored(void *arg, int status)
{
	struct key_job *j = arg;
	struct vault *v = j->v;

	if (status == 0) {
		log_info("key %s of seller %s (%s) %s, generation %lld", j->row.key_id,
		    j->row.seller_id, j->row.provider, j->row.rotate ? "rotated" : "stored",
		    (long long)j->row.generation);
		ipc_reply(v->d->ipc, &j->req, IPC_ACK, NULL);
		if (j->row.rotate) {
			v->rotations++;
			keys_retire(v, j->row.key_id, j->row.generation - 1);
		}
	} else if (j->row.taken) {
		log_info("key %s refused: the id is taken", j->row.key_id);
		keys_problem(v, &j->req, 409, "key-id-taken", "this key id is taken");
	} else if (j->row.missing) {
		log_info("rotation of key %s refused: no such key of this seller", j->row.key_id);
		keys_problem(v, &j->req, 404, "key-not-found",
		    "the vault holds no such key of this seller and provider");
	} else {
		v->d->errors++;
		ipc_reply_error(v->d->ipc, &j->req, IPC_ERR_INTERNAL, "cannot store the key");
	}
	free(j->row.ct);
	free(j);
}

/* A seller id is platform-api's (a token's subject): visible ASCII, no '|'. */
static int
seller_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '|')
			return 0;
	return 1;
}

/* What is wrong with a KEY_PUT's ids, or NULL. */
static const char *
keys_check(struct vault *v, const struct ipc_key_put *kp)
{
	if (!request_id_valid(kp->key_id))
		return "the key id may hold only letters, digits and . _ : -";
	if (!seller_valid(kp->seller_id))
		return "the seller id must be visible ASCII without '|'";
	if (providers_find(&v->cat, kp->provider, strlen(kp->provider)) == NULL)
		return "the provider is not in the catalogue";
	return NULL;
}

/*
 * Open the sealed key into locked memory. Returns it (secmem_free it) with
 * *len, or NULL with the problem to send in *status, *name, *why.
 */
static uint8_t *
keys_open(struct vault *v, const struct ipc_key_put *kp, size_t *len, uint16_t *status,
    const char **name, const char **why)
{
	const struct kem_key *k = kem_find(&v->kem, kp->kid);
	char binding[HPKE_CN2_BINDING_MAX];
	int blen = hpke_cn2_binding(binding, sizeof(binding), kp->seller_id, kp->provider);
	size_t n = kp->sealed.len - HPKE_NT;
	uint8_t *pt;

	*status = 400;
	if (k == NULL) {
		*name = "unknown-vault-key";
		*why = "the key is sealed to a vault key this vault does not hold: fetch "
		       "/api/vault/public-key and seal it again";
		return NULL;
	}
	if (blen < 0 || (pt = secmem_alloc(n + 1)) == NULL) {
		*status = 503;
		*name = "service-unavailable";
		*why = "the vault cannot take the key now";
		return NULL;
	}
	if (hpke_open(HPKE_CN2_AEAD, k->sk, k->pk, kp->enc.p, (const uint8_t *)binding,
		(size_t)blen, (const uint8_t *)binding, (size_t)blen, kp->sealed.p, kp->sealed.len,
		pt) != 0) {
		secmem_free(pt);
		*name = "invalid-sealed-key";
		*why = "the sealed key does not open: seal it with HPKE to the vault's public key, "
		       "for this seller and provider";
		return NULL;
	}
	*len = n;
	return pt;
}

static struct key_job *
keys_job(struct vault *v, const struct ipc_req *req, const struct ipc_key_put *kp, size_t len)
{
	struct key_job *j = calloc(1, sizeof(*j));

	if (j == NULL || (j->row.ct = malloc(len + SEAL_TAG_LEN)) == NULL) {
		free(j);
		return NULL;
	}
	j->v = v;
	j->req = *req;
	snprintf(j->row.key_id, sizeof(j->row.key_id), "%s", kp->key_id);
	snprintf(j->row.seller_id, sizeof(j->row.seller_id), "%s", kp->seller_id);
	snprintf(j->row.provider, sizeof(j->row.provider), "%s", kp->provider);
	j->row.ctlen = len + SEAL_TAG_LEN;
	j->row.master_version = v->keys.cur->version;
	j->row.now = (int64_t)time(NULL);
	j->row.rotate = kp->rotate;
	return j;
}

void
keys_put(struct vault *v, const struct ipc_req *req, const struct ipc_key_put *kp)
{
	const char *why = keys_check(v, kp), *name = "invalid-key";
	uint16_t status = 400;
	struct key_job *j = NULL;
	uint8_t *pt = NULL;
	size_t len = 0;

	if (why == NULL && (pt = keys_open(v, kp, &len, &status, &name, &why)) != NULL &&
	    !request_secret_valid(pt, len))
		why = "the key must be 8 to 4096 visible ASCII characters without spaces";
	if (why != NULL) {
		log_info("key %s refused: %s", kp->key_id, name);
		secmem_free(pt);
		keys_problem(v, req, status, name, why);
		return;
	}
	if ((j = keys_job(v, req, kp, len)) == NULL ||
	    seal_seal(v->keys.cur, j->row.key_id, pt, len, j->row.nonce, j->row.ct) != 0 ||
	    dbq_push(v->q, keys_apply, keys_on_stored, j) != 0) {
		log_warnx("key %s: cannot seal or queue it", kp->key_id);
		if (j != NULL)
			free(j->row.ct);
		free(j);
		v->d->errors++;
		ipc_reply_error(v->d->ipc, req, IPC_ERR_INTERNAL, "cannot seal the key");
	}
	secmem_free(pt);
}
