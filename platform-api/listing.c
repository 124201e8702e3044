/*
 * listing.c — a key's listing terms over the seller API, and one key at a
 * time:
 *
 *   GET    /api/keys/:id   the key with its terms, status, score (LISTING_GET)
 *   PATCH  /api/keys/:id   change terms, pause or resume: the router's
 *                          listing is read, the body merged into it, and the
 *                          whole written back (LISTING_PUT); the answer is
 *                          the listing as the router then holds it
 *   DELETE /api/keys/:id   withdraw the key for good (status removed)
 *
 * The terms and how they read in JSON: terms.c.
 *
 * A change is effective when the answer comes: the router applies it once
 * it is durable and before it acknowledges. The router validates every
 * listing again (400 invalid-listing with its reason).
 *
 * Security stance: bodies come from the internet: one JSON object in
 * UTF-8, at most LISTING_BODY_MAX bytes, known members once each, values
 * in bounds; nothing here logs a body. A seller reaches only their own keys
 * (the router answers 404 for another seller's id). No key secret passes
 * here.
 */
#include "platform-api/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/utf8.h"

#define LISTING_BODY_MAX 8192

/* One key's request, through the router: read, then (PATCH, DELETE) write and read again. */
enum lop_kind { LOP_GET, LOP_PATCH, LOP_DELETE, LOP_REINSTATE };

struct lop {
	struct platform *p;
	struct ipc_req req;
	enum lop_kind kind;
	int written; /* LISTING_PUT acknowledged: the next read is the answer */
	int have;    /* a LISTING came */
	struct ipc_listing l;
	cJSON *body; /* PATCH: merged into the listing once it is read */
};

static void lop_read(struct lop *op);

static struct lop *
lop_new(struct platform *p, enum lop_kind kind, const char *seller, const char *key_id)
{
	struct lop *op = calloc(1, sizeof(*op));

	if (op != NULL) {
		op->p = p;
		op->kind = kind;
		snprintf(op->l.seller_id, sizeof(op->l.seller_id), "%s", seller);
		snprintf(op->l.key_id, sizeof(op->l.key_id), "%s", key_id);
	}
	return op;
}

static void
lop_free(struct lop *op)
{
	cJSON_Delete(op->body);
	free(op);
}

/* A peer's answer that is not the expected one, as an HTTP problem. */
static void
lop_failed(struct lop *op, int status, uint16_t type, const union ipc_any *msg)
{
	if (op->kind == LOP_REINSTATE)
		log_warnx("key %s: not reinstated after its rotation (%s)", op->l.key_id,
		    status == 0 && type == IPC_PROBLEM ? msg->problem.name : "router unavailable");
	else if (status == 0 && type == IPC_PROBLEM)
		api_reply_problem(op->p, &op->req, msg->problem.status, msg->problem.name,
		    msg->problem.detail);
	else if (status != 0 || type == IPC_ERROR)
		api_reply_problem(op->p, &op->req, 503, "service-unavailable",
		    "the router service is unavailable; try again");
	else
		api_reply_problem(op->p, &op->req, 500, "internal-error", "the router answered oddly");
}

static void
lop_answer(struct lop *op)
{
	cJSON *o;

	if (op->kind == LOP_REINSTATE)
		return;
	if ((o = keys_json(&op->l)) == NULL)
		api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
	else
		api_reply_json(op->p, &op->req, 200, o);
}

static void
on_put(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct lop *op = arg;

	if (op->p->stopping) {
		lop_free(op);
		return;
	}
	if (status != 0 || type != IPC_ACK) {
		lop_failed(op, status, type, msg);
		lop_free(op);
		return;
	}
	log_info("seller %s %s key %s", op->l.seller_id,
	    op->kind == LOP_DELETE ? "removed" : op->kind == LOP_REINSTATE ?
	    "rotated, and so reinstated," : "changed the terms of", op->l.key_id);
	op->written = 1;
	lop_read(op);
}

/* The listing as read, changed by the request, goes back to the router. */
static void
lop_write(struct lop *op)
{
	const char *why;

	if (op->kind == LOP_DELETE || op->kind == LOP_REINSTATE)
		snprintf(op->l.status, sizeof(op->l.status), "%s",
		    op->kind == LOP_DELETE ? "removed" : "active");
	else if (listing_terms_parse(op->body, &op->l, LT_PRICE | LT_STATUS, &why) != 0) {
		api_reply_problem(op->p, &op->req, 400, "invalid-request", why);
		lop_free(op);
		return;
	}
	op->l.created = op->l.updated = 0;
	op->l.score = 0;
	op->l.reason[0] = '\0';
	if (ipc_request(op->p->d->ipc, ROLE_ROUTER, IPC_LISTING_PUT, &op->l,
	    PLATFORM_PEER_TIMEOUT_MS, on_put, op) == 0) {
		lop_failed(op, IPC_ERR_UNAVAILABLE, 0, NULL);
		lop_free(op);
	}
}

static void
on_read(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct lop *op = arg;

	if (status == 0 && type == IPC_LISTING) {
		op->l = msg->listing; /* not final: the ACK follows */
		op->have = 1;
		return;
	}
	if (op->p->stopping) {
		lop_free(op);
		return;
	}
	if (status != 0 || type != IPC_ACK || !op->have)
		lop_failed(op, status, type, msg);
	else if (op->kind == LOP_GET || op->written)
		lop_answer(op);
	else if (op->kind != LOP_REINSTATE || strcmp(op->l.status, "quarantined") == 0) {
		/* Write it back: changed, removed, or a quarantined key reinstated. */
		op->have = 0;
		lop_write(op);
		return;
	}
	lop_free(op);
}

static void
lop_read(struct lop *op)
{
	struct ipc_listing_get g;

	memset(&g, 0, sizeof(g));
	snprintf(g.seller_id, sizeof(g.seller_id), "%s", op->l.seller_id);
	snprintf(g.key_id, sizeof(g.key_id), "%s", op->l.key_id);
	op->have = 0;
	if (ipc_request(op->p->d->ipc, ROLE_ROUTER, IPC_LISTING_GET, &g, PLATFORM_PEER_TIMEOUT_MS,
	    on_read, op) == 0) {
		lop_failed(op, IPC_ERR_UNAVAILABLE, 0, NULL);
		lop_free(op);
	}
}

/* The PATCH body: one JSON object of known members, each once. NULL with a reason. */
static cJSON *
patch_body(const struct ipc_api *m, const char **why)
{
	const char *b = (const char *)m->body.p, *end = NULL;
	cJSON *o = NULL;

	*why = "the body must be one JSON object in UTF-8 of terms (price_usd, region, premium, "
	       "routes, rpm, rpd, daily_budget_usd, status), each once";
	if (m->body.len > 0 && m->body.len <= LISTING_BODY_MAX &&
	    utf8_valid(m->body.p, m->body.len) && memchr(b, '\0', m->body.len) == NULL &&
	    memmem(b, m->body.len, "\\u0000", 6) == NULL)
		o = cJSON_ParseWithLengthOpts(b, m->body.len, &end, 0);
	for (; o != NULL && end < b + m->body.len; end++)
		if (strchr(" \t\r\n", *end) == NULL)
			break;
	if (o == NULL || end != b + m->body.len || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	for (const cJSON *a = o->child; a != NULL; a = a->next) {
		if (!listing_term_member(a->string, LT_PRICE | LT_STATUS) ||
		    cJSON_GetObjectItemCaseSensitive(o, a->string) != a) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

/*
 * A rotated key gets a fresh chance: a quarantined listing goes back to
 * active (DESIGN.md §5: a quarantined key returns when the seller updates or
 * rotates it). Nobody waits for the answer; a failure is logged.
 */
void
listing_reinstate(struct platform *p, const char *seller, const char *key_id)
{
	struct lop *op = lop_new(p, LOP_REINSTATE, seller, key_id);

	if (op == NULL)
		log_warnx("out of memory: key %s is not reinstated after its rotation", key_id);
	else
		lop_read(op);
}

void
listing_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *seller, const char *key_id)
{
	int get = strcmp(m->method, "GET") == 0, patch = strcmp(m->method, "PATCH") == 0;
	struct lop *op;
	const char *why;

	if (!get && !patch && strcmp(m->method, "DELETE") != 0) {
		api_reply_problem(p, req, 405, "method-not-allowed",
		    "/api/keys/<id> accepts GET, PATCH and DELETE");
		return;
	}
	if ((op = lop_new(p, get ? LOP_GET : patch ? LOP_PATCH : LOP_DELETE, seller, key_id)) ==
	    NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	op->req = *req;
	if (patch && (op->body = patch_body(m, &why)) == NULL) {
		api_reply_problem(p, req, 400, "invalid-request", why);
		lop_free(op);
		return;
	}
	lop_read(op);
}
