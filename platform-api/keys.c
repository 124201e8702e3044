/*
 * keys.c — a seller's keys: POST /api/keys lists one for sale, GET
 * /api/keys shows them.
 *
 * Listing a key takes three steps, each only after the one before it said
 * yes: KEY_PUT to the vault (which seals the key and checks the provider
 * against its catalogue), LISTING_PUT to the router (price and status), and
 * the ownership row in platform.db; the seller gets 201 once that row is
 * durable. A failure part-way leaves at worst a sealed key no listing points
 * to, which nothing can spend. The listing itself lives in the router, so
 * GET asks the router (LISTING_LIST).
 *
 * Security stance: the seller's API key is the most sensitive thing that
 * passes through this daemon. keys_parse (keyparse.c) copies it once out of
 * the request body; it is sent to the vault and wiped, and never stored,
 * logged, or put in any reply.
 */
#include "platform-api/platform.h"

#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
	    cJSON_AddStringToObject(o, "created", created) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
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

	if (op->p->stopping) {
		op_free(op);
		return;
	}
	if (status != 0 || type != IPC_ACK) {
		peer_failed(op, "router", status, type, msg);
		op_free(op);
		return;
	}
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

	if (op->p->stopping) {
		op_free(op);
		return;
	}
	if (status != 0 || type != IPC_ACK) {
		peer_failed(op, "vault", status, type, msg);
		op_free(op);
		return;
	}
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

/* Send the sealed-key request; the key is wiped whatever happens. 0, or -1 (vault down). */
static int
create_send(struct key_op *op, struct key_input *in)
{
	struct ipc_key_put kp;
	uint64_t id;

	memset(&kp, 0, sizeof(kp));
	memcpy(kp.key_id, op->l.key_id, sizeof(kp.key_id));
	memcpy(kp.seller_id, op->l.seller_id, sizeof(kp.seller_id));
	memcpy(kp.provider, op->l.provider, sizeof(kp.provider));
	kp.secret.p = (const uint8_t *)in->key;
	kp.secret.len = (uint32_t)in->keylen;
	id = ipc_request(op->p->d->ipc, ROLE_VAULT, IPC_KEY_PUT, &kp, PLATFORM_PEER_TIMEOUT_MS,
	    on_vault, op);
	mbedtls_platform_zeroize(in, sizeof(*in));
	return id != 0 ? 0 : -1;
}

void
keys_create(struct platform *p, const struct ipc_req *req, const char *seller,
    const struct ipc_api *m)
{
	static struct key_input in; /* 4 KiB: kept off the stack, wiped after each use */
	struct key_op *op;
	const char *why;

	if (!json_type(m->content_type)) {
		api_reply_problem(p, req, 415, "unsupported-media-type",
		    "send the key as Content-Type: application/json");
		return;
	}
	if (keys_parse(m->body.p, m->body.len, &in, &why) != 0) {
		api_reply_problem(p, req, 400, "invalid-request", why);
		return;
	}
	if ((op = op_new(p, req)) == NULL || randid_make("k_", op->l.key_id,
	    sizeof(op->l.key_id)) != 0) {
		mbedtls_platform_zeroize(&in, sizeof(in));
		api_reply_problem(p, req, 500, "internal-error", "cannot create a key id");
		free(op);
		return;
	}
	snprintf(op->l.seller_id, sizeof(op->l.seller_id), "%s", seller);
	memcpy(op->l.provider, in.provider, sizeof(op->l.provider));
	op->l.price = in.price;
	snprintf(op->l.status, sizeof(op->l.status), "active");
	op->l.created = (int64_t)time(NULL);
	if (create_send(op, &in) != 0) {
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
