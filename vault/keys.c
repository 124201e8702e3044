/*
 * keys.c — KEY_PUT: a seller's key arrives from platform-api, is checked,
 * sealed under the master key (seal.c) and stored (store.c).
 *
 * The reply (ACK) is sent only once the sealed key is on disk. A key id
 * already held for another seller is refused (409), never overwritten; the
 * same seller may replace their key under the same id.
 *
 * Security stance: the plaintext is sealed straight from the received
 * message, so the vault makes no copy of it. The IPC receive buffer that
 * holds it belongs to common/ipc.c and is reused for the next frames rather
 * than wiped; the platform → vault hop carries the plaintext until issue 6
 * replaces it by HPKE sealed to the vault's key. Nothing here logs the key.
 */
#include "vault/vault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dbq.h"
#include "common/log.h"

struct key_job {
	struct vault *v;
	struct ipc_req req;
	struct store_key_put row;
};

static void
keys_problem(struct vault *v, const struct ipc_req *req, uint16_t status, const char *name,
    const char *detail)
{
	struct ipc_problem p;

	memset(&p, 0, sizeof(p));
	p.status = status;
	snprintf(p.name, sizeof(p.name), "%s", name);
	snprintf(p.detail, sizeof(p.detail), "%s", detail);
	v->d->errors++;
	ipc_reply(v->d->ipc, req, IPC_PROBLEM, &p);
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
		log_info("key %s of seller %s (%s) stored", j->row.key_id, j->row.seller_id,
		    j->row.provider);
		ipc_reply(v->d->ipc, &j->req, IPC_ACK, NULL);
	} else if (j->row.taken) {
		log_info("key %s refused: the id belongs to another seller", j->row.key_id);
		keys_problem(v, &j->req, 409, "key-id-taken", "this key id belongs to another seller");
	} else {
		v->d->errors++;
		ipc_reply_error(v->d->ipc, &j->req, IPC_ERR_INTERNAL, "cannot store the key");
	}
	free(j->row.ct);
	free(j);
}

/* A seller id is platform-api's (a token's subject): any visible ASCII. */
static int
seller_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* What is wrong with a KEY_PUT, or NULL. */
static const char *
keys_check(struct vault *v, const struct ipc_key_put *kp)
{
	if (!request_id_valid(kp->key_id))
		return "the key id may hold only letters, digits and . _ : -";
	if (!seller_valid(kp->seller_id))
		return "the seller id must be visible ASCII";
	if (providers_find(&v->cat, kp->provider, strlen(kp->provider)) == NULL)
		return "the provider is not in the catalogue";
	if (!request_secret_valid(kp->secret.p, kp->secret.len))
		return "the key must be 8 to 4096 visible ASCII characters without spaces";
	return NULL;
}

void
keys_put(struct vault *v, const struct ipc_req *req, const struct ipc_key_put *kp)
{
	const char *why = keys_check(v, kp);
	struct key_job *j;

	if (why != NULL) {
		log_info("key %s refused: %s", kp->key_id, why);
		keys_problem(v, req, 400, "invalid-key", why);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->row.ct = malloc(kp->secret.len + SEAL_TAG_LEN)) == NULL) {
		free(j);
		v->d->errors++;
		ipc_reply_error(v->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	j->v = v;
	j->req = *req;
	snprintf(j->row.key_id, sizeof(j->row.key_id), "%s", kp->key_id);
	snprintf(j->row.seller_id, sizeof(j->row.seller_id), "%s", kp->seller_id);
	snprintf(j->row.provider, sizeof(j->row.provider), "%s", kp->provider);
	j->row.ctlen = kp->secret.len + SEAL_TAG_LEN;
	j->row.master_version = v->seal.version;
	j->row.now = (int64_t)time(NULL);
	if (seal_seal(&v->seal, j->row.key_id, kp->secret.p, kp->secret.len, j->row.nonce,
		j->row.ct) != 0 ||
	    dbq_push(v->q, keys_apply, keys_on_stored, j) != 0) {
		log_warnx("key %s: cannot seal or queue it", kp->key_id);
		free(j->row.ct);
		free(j);
		v->d->errors++;
		ipc_reply_error(v->d->ipc, req, IPC_ERR_INTERNAL, "cannot seal the key");
	}
}
