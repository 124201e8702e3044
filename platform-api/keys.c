/*
 * keys.c — a seller's keys: POST /api/keys lists one for sale, GET
 * /api/keys shows them, POST /api/keys/:id/rotate gives one a new secret;
 * GET /api/vault/public-key is the vault's key sellers seal theirs to.
 *
 * A key arrives sealed (HPKE, common/hpke.h) by the seller's client to the
 * vault's public key, bound to the seller id and provider: this daemon
 * carries the ciphertext and can read nothing of it. A body with a key in
 * clear is refused (400 plaintext-key-refused) before it goes anywhere.
 *
 * Listing a key takes three steps, each only after the one before it said
 * yes: KEY_PUT to the vault (which opens the sealed key, checks it and the
 * provider, and seals it again under its master key), LISTING_PUT to the
 * router (price and status), and the ownership row in platform.db; the
 * seller gets 201 once that row is durable. A failure part-way leaves at
 * worst a sealed key no listing points to, which nothing can spend. The
 * listing itself lives in the router, so GET asks the router (LISTING_LIST).
 * A rotation checks ownership here (platform.db), then sends KEY_PUT with
 * rotate = 1; the vault switches new calls to the new secret at once.
 *
 * Security stance: no plaintext key ever passes through here; the sealed one
 * is never stored, logged or put in a reply either.
 */
#include "platform-api/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/b64url.h"
#include "common/hpke.h"
#include "common/log.h"
#include "common/money.h"
#include "common/randid.h"
#include "common/timefmt.h"

/* A request in flight to the vault or router. */
struct key_op {
	struct platform *p;
	struct ipc_req req;
	struct ipc_listing l; /* the listing being created; l.created is "now" */
	cJSON *keys;	      /* GET: the array being filled */
};

static struct key_op *
op_new(struct platform *p, const struct ipc_req *req)
{
	struct key_op *op = calloc(1, sizeof(*op));

	if (op != NULL) {
		op->p = p;
		op->req = *req;
	}
	return op;
}

static void
op_free(struct key_op *op)
{
	cJSON_Delete(op->keys);
	free(op);
}

/* Replies. */

/* One key as the API shows it. NULL when memory runs out. */
static cJSON *
key_json(const struct ipc_listing *l)
{
	char usd[MONEY_USD_BUFSZ], created[RFC3339_BUFSZ];
	cJSON *o = cJSON_CreateObject();

	if (o == NULL || money_format_usd(l->price, usd, sizeof(usd)) < 0 ||
	    rfc3339_format(l->created, created, sizeof(created)) < 0 ||
	    cJSON_AddStringToObject(o, "id", l->key_id) == NULL ||
	    cJSON_AddStringToObject(o, "provider", l->provider) == NULL ||
	    cJSON_AddNumberToObject(o, "price_micros", (double)l->price) == NULL ||
	    cJSON_AddStringToObject(o, "price_usd", usd) == NULL ||
	    cJSON_AddStringToObject(o, "status", l->status) == NULL ||
	    cJSON_AddStringToObject(o, "created", created) == NULL || listing_terms_json(o, l) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *
keys_json(const struct ipc_listing *l)
{
	return key_json(l);
}

/* A reply from vault or router that is not the one hoped for, as an HTTP problem. */
static void
peer_failed(struct key_op *op, const char *peer, int status, uint16_t type,
    const union ipc_any *msg)
{
	char detail[128];

	if (status == 0 && type == IPC_PROBLEM) {
		api_reply_problem(op->p, &op->req, msg->problem.status, msg->problem.name,
		    msg->problem.detail);
		return;
	}
	if (status != 0 || (type == IPC_ERROR && msg->error.code == IPC_ERR_UNAVAILABLE)) {
		snprintf(detail, sizeof(detail), "the %s service is unavailable; try again", peer);
		api_reply_problem(op->p, &op->req, 503, "service-unavailable", detail);
		return;
	}
	log_warnx("%s answered %s", peer, ipc_type_name(type));
	op->p->d->errors++;
	snprintf(detail, sizeof(detail), "the %s service failed", peer);
	api_reply_problem(op->p, &op->req, 500, "internal-error", detail);
}

/*
 * A peer's reply to op: 1 if it is the one wanted (go on), else 0 once the
 * seller has the problem and op is freed (or the daemon is stopping).
 */
static int
op_answered(struct key_op *op, const char *peer, int status, uint16_t type, uint16_t want,
    const union ipc_any *msg)
{
	if (!op->p->stopping && status == 0 && type == want)
		return 1;
	if (!op->p->stopping)
		peer_failed(op, peer, status, type, msg);
	op_free(op);
	return 0;
}

/* POST, step 3: the ownership row is durable. */
static int
create_apply(sqlite3 *db, void *arg)
{
	struct key_op *op = arg;

	return store_key_add(db, op->l.key_id, op->l.seller_id, op->l.provider, op->l.created);
}

static void
create_done(void *arg, int status)
{
	struct key_op *op = arg;

	if (status == 0) {
		log_info("seller %s listed key %s (%s) at %lld µUSD", op->l.seller_id, op->l.key_id,
		    op->l.provider, (long long)op->l.price);
		api_reply_json(op->p, &op->req, 201, key_json(&op->l));
	} else {
		op->p->d->errors++;
		api_reply_problem(op->p, &op->req, 500, "internal-error",
		    "the key could not be recorded");
	}
	op_free(op);
}

/* POST, step 2 done: the router listed it. */
static void
on_router(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct key_op *op = arg;

	if (!op_answered(op, "router", status, type, IPC_ACK, msg))
		return;
	if (dbq_push(op->p->q, create_apply, create_done, op) != 0) {
		api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
		op_free(op);
	}
}

/* POST, step 1 done: the vault holds the sealed key. */
static void
on_vault(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct key_op *op = arg;

	if (!op_answered(op, "vault", status, type, IPC_ACK, msg))
		return;
	if (ipc_request(op->p->d->ipc, ROLE_ROUTER, IPC_LISTING_PUT, &op->l,
	    PLATFORM_PEER_TIMEOUT_MS, on_router, op) == 0) {
		api_reply_problem(op->p, &op->req, 503, "service-unavailable",
		    "the router service is unavailable; try again");
		op_free(op);
	}
}

static int
json_type(const char *ct)
{
	size_t n = strcspn(ct, "; \t");

	return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* Send the sealed key to the vault. 0, or -1 (vault down). */
static int
vault_send(struct key_op *op, const struct sealed_key *k, int rotate, ipc_reply_fn cb)
{
	struct ipc_key_put kp;

	memset(&kp, 0, sizeof(kp));
	memcpy(kp.key_id, op->l.key_id, sizeof(kp.key_id));
	memcpy(kp.seller_id, op->l.seller_id, sizeof(kp.seller_id));
	memcpy(kp.provider, op->l.provider, sizeof(kp.provider));
	kp.rotate = (uint8_t)rotate;
	memcpy(kp.kid, k->kid, sizeof(kp.kid));
	kp.enc.p = k->enc;
	kp.enc.len = sizeof(k->enc);
	kp.sealed.p = k->ct;
	kp.sealed.len = (uint32_t)k->ctlen;
	return ipc_request(op->p->d->ipc, ROLE_VAULT, IPC_KEY_PUT, &kp, PLATFORM_PEER_TIMEOUT_MS,
		   cb, op) != 0 ? 0 : -1;
}

/* A body must be JSON: 0, or -1 once the seller has the 415. */
static int
json_body(struct platform *p, const struct ipc_req *req, const struct ipc_api *m)
{
	if (json_type(m->content_type))
		return 0;
	api_reply_problem(p, req, 415, "unsupported-media-type",
	    "send the key as Content-Type: application/json");
	return -1;
}

/* A refused body: 400, with its own name when the key came in clear. */
static void
body_refused(struct platform *p, const struct ipc_req *req, int rc, const char *why)
{
	if (rc == KEYS_PLAINTEXT) {
		log_info("a key in clear was refused");
		api_reply_problem(p, req, 400, "plaintext-key-refused", why);
	} else
		api_reply_problem(p, req, 400, "invalid-request", why);
}

void
keys_create(struct platform *p, const struct ipc_req *req, const char *seller,
    const struct ipc_api *m)
{
	static struct key_input in; /* 4 KiB: kept off the stack */
	struct key_op *op;
	const char *why;
	int rc;

	if (json_body(p, req, m) != 0)
		return;
	if ((rc = keys_parse(m->body.p, m->body.len, &in, &why)) != 0) {
		body_refused(p, req, rc, why);
		return;
	}
	if ((op = op_new(p, req)) == NULL || randid_make("k_", op->l.key_id,
	    sizeof(op->l.key_id)) != 0) {
		api_reply_problem(p, req, 500, "internal-error", "cannot create a key id");
		free(op);
		return;
	}
	snprintf(op->l.seller_id, sizeof(op->l.seller_id), "%s", seller);
	memcpy(op->l.provider, in.provider, sizeof(op->l.provider));
	op->l.price = in.price;
	listing_terms_copy(&op->l, &in.terms);
	snprintf(op->l.status, sizeof(op->l.status), "active");
	op->l.created = (int64_t)time(NULL);
	if (vault_send(op, &in.sealed, 0, on_vault) != 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the vault service is unavailable; try again");
		op_free(op);
	}
}

/* GET: LISTING… then ACK from the router. */
static void
on_list(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct key_op *op = arg;
	cJSON *o = NULL, *body;

	if (op->p->stopping) {
		op_free(op);
		return;
	}
	if (status == 0 && type == IPC_LISTING) {
		/* Not final: more follow. A key that cannot be shown fails the whole list. */
		if (op->keys != NULL && ((o = key_json(&msg->listing)) == NULL ||
		    !cJSON_AddItemToArray(op->keys, o))) {
			cJSON_Delete(o);
			cJSON_Delete(op->keys);
			op->keys = NULL;
		}
		return;
	}
	if (status != 0 || type != IPC_ACK)
		peer_failed(op, "router", status, type, msg);
	else if (op->keys == NULL || (body = cJSON_CreateObject()) == NULL)
		api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
	else if (!cJSON_AddItemToObject(body, "keys", op->keys)) {
		cJSON_Delete(body);
		api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
	} else {
		op->keys = NULL;
		api_reply_json(op->p, &op->req, 200, body);
	}
	op_free(op);
}

void
keys_list(struct platform *p, const struct ipc_req *req, const char *seller)
{
	struct ipc_listing_list ll;
	struct key_op *op = op_new(p, req);

	if (op == NULL || (op->keys = cJSON_CreateArray()) == NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		free(op);
		return;
	}
	memset(&ll, 0, sizeof(ll));
	snprintf(ll.seller_id, sizeof(ll.seller_id), "%s", seller);
	if (ipc_request(p->d->ipc, ROLE_ROUTER, IPC_LISTING_LIST, &ll, PLATFORM_PEER_TIMEOUT_MS,
	    on_list, op) == 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the router service is unavailable; try again");
		op_free(op);
	}
}

/* Rotation done at the vault: new calls use the new secret. */
static void
on_rotated(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct key_op *op = arg;
	char when[RFC3339_BUFSZ];
	cJSON *o;

	if (!op_answered(op, "vault", status, type, IPC_ACK, msg))
		return;
	log_info("seller %s rotated key %s", op->l.seller_id, op->l.key_id);
	listing_reinstate(op->p, op->l.seller_id, op->l.key_id);
	o = cJSON_CreateObject();
	if (o == NULL || rfc3339_format((int64_t)time(NULL), when, sizeof(when)) < 0 ||
	    cJSON_AddStringToObject(o, "id", op->l.key_id) == NULL ||
	    cJSON_AddStringToObject(o, "provider", op->l.provider) == NULL ||
	    cJSON_AddStringToObject(o, "rotated", when) == NULL) {
		cJSON_Delete(o);
		o = NULL;
	}
	api_reply_json(op->p, &op->req, 200, o);
	op_free(op);
}

void
keys_rotate(struct platform *p, const struct ipc_req *req, const char *seller,
    const char *key_id, const struct ipc_api *m)
{
	static struct sealed_key k;
	struct key_op *op;
	const char *why;
	int rc;

	if (json_body(p, req, m) != 0)
		return;
	if ((rc = keys_parse_rotate(m->body.p, m->body.len, &k, &why)) != 0) {
		body_refused(p, req, rc, why);
		return;
	}
	if ((op = op_new(p, req)) == NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	snprintf(op->l.key_id, sizeof(op->l.key_id), "%s", key_id);
	snprintf(op->l.seller_id, sizeof(op->l.seller_id), "%s", seller);
	if ((rc = store_key_owner(p->db, key_id, seller, op->l.provider)) != 1) {
		if (rc == 0)
			api_reply_problem(p, req, 404, "not-found", "you have no key with this id");
		else
			api_reply_problem(p, req, 500, "internal-error", "cannot read the key");
		op_free(op);
		return;
	}
	if (vault_send(op, &k, 1, on_rotated) != 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the vault service is unavailable; try again");
		op_free(op);
	}
}

static void
on_pubkey(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct key_op *op = arg;
	const struct ipc_vault_pubkey_rep *r = &msg->vault_pubkey_rep;
	char pk[64], created[RFC3339_BUFSZ];
	cJSON *o;

	if (!op_answered(op, "vault", status, type, IPC_VAULT_PUBKEY_REP, msg))
		return;
	o = cJSON_CreateObject();
	if (o == NULL || b64url_encode(r->public_key.p, r->public_key.len, pk, sizeof(pk)) < 0 ||
	    rfc3339_format(r->created, created, sizeof(created)) < 0 ||
	    cJSON_AddStringToObject(o, "kid", r->kid) == NULL ||
	    cJSON_AddStringToObject(o, "kem", "DHKEM(X25519, HKDF-SHA256)") == NULL ||
	    cJSON_AddStringToObject(o, "kdf", "HKDF-SHA256") == NULL ||
	    cJSON_AddStringToObject(o, "aead", "AES-256-GCM") == NULL ||
	    cJSON_AddNumberToObject(o, "kem_id", HPKE_KEM_X25519_SHA256) == NULL ||
	    cJSON_AddNumberToObject(o, "kdf_id", HPKE_KDF_HKDF_SHA256) == NULL ||
	    cJSON_AddNumberToObject(o, "aead_id", HPKE_CN2_AEAD) == NULL ||
	    cJSON_AddStringToObject(o, "public_key", pk) == NULL ||
	    cJSON_AddStringToObject(o, "info", "cn2 seller key v1|<seller id>|<provider>") ==
		NULL ||
	    cJSON_AddStringToObject(o, "created", created) == NULL) {
		cJSON_Delete(o);
		o = NULL;
	}
	api_reply_json(op->p, &op->req, 200, o);
	op_free(op);
}

void
keys_vault_pubkey(struct platform *p, const struct ipc_req *req)
{
	struct key_op *op = op_new(p, req);

	if (op == NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	if (ipc_request(p->d->ipc, ROLE_VAULT, IPC_VAULT_PUBKEY, NULL, PLATFORM_PEER_TIMEOUT_MS,
		on_pubkey, op) == 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the vault service is unavailable; try again");
		op_free(op);
	}
}
