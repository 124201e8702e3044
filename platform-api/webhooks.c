/*
 * webhooks.c — a seller's webhook endpoints: /api/webhooks.
 *
 *   GET    /api/webhooks        the seller's endpoints
 *   POST   /api/webhooks        a new one (201, with its signing secret)
 *   GET    /api/webhooks/:id    one, with its secret and its last deliveries
 *   PATCH  /api/webhooks/:id    change url, events, description, enabled
 *   DELETE /api/webhooks/:id    remove it and its deliveries
 *
 * Each endpoint has its own signing secret, derived, never stored:
 * HMAC-SHA256(webhook master secret, "cn2 webhook v1|" id), shown as
 * "whsec_" and its base64, as Standard Webhooks writes secrets. So
 * platform.db holds no secret, and the seller can read it again (GET) from
 * where they manage the endpoint. What is sent to it, and how, is
 * deliver.c.
 *
 * Security stance: every route needs the seller's bearer token and sees
 * only that seller's rows (every statement names the seller). A seller has
 * at most HOOK_PER_SELLER endpoints. Bodies are parsed by hookparse.c;
 * nothing logs a URL (it may carry a token of the seller's), a secret or a
 * body.
 */
#include "platform-api/platform.h"

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"
#include "common/randid.h"
#include "common/timefmt.h"

#define HOOK_PER_SELLER 20
#define HOOK_RECENT 20 /* deliveries shown with one endpoint */

enum hook_kind { HOP_CREATE, HOP_PATCH, HOP_DELETE };

struct hook_op {
	struct platform *p;
	struct ipc_req req;
	enum hook_kind kind;
	char seller[IPC_ID_MAX + 1];
	char id[HOOK_ID_MAX + 1];
	struct hook_input in;
	int found; /* the write touched a row of this seller */
	int full;  /* create: the seller has HOOK_PER_SELLER already */
};

int
hook_secret_raw(const struct platform *p, const char *id, uint8_t out[32])
{
	char input[HOOK_ID_MAX + 32];

	snprintf(input, sizeof(input), "cn2 webhook v1|%s", id);
	if (p->webhook_keylen == 0)
		return -1;
	return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), p->webhook_key,
		   p->webhook_keylen, (const uint8_t *)input, strlen(input), out) == 0 ?
	    0 :
	    -1;
}

int
hook_secret(const struct platform *p, const char *id, char *out, size_t cap)
{
	uint8_t mac[32];
	size_t n = 0;
	int rc = hook_secret_raw(p, id, mac);

	if (rc == 0 && cap > 6) {
		memcpy(out, "whsec_", 6);
		rc = mbedtls_base64_encode((uint8_t *)out + 6, cap - 6, &n, mac, sizeof(mac));
	}
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return rc == 0 && cap > 6 ? 0 : -1;
}

/* An endpoint row as JSON; with its secret when asked. NULL when memory runs out. */
static cJSON *
hook_json(struct platform *p, sqlite3_stmt *st, int with_secret)
{
	cJSON *o = cJSON_CreateObject(), *events = NULL;
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *ev = (const char *)sqlite3_column_text(st, 2);
	char created[RFC3339_BUFSZ], updated[RFC3339_BUFSZ], secret[64], one[32];

	if (o == NULL || id == NULL || ev == NULL ||
	    rfc3339_format(sqlite3_column_int64(st, 5), created, sizeof(created)) < 0 ||
	    rfc3339_format(sqlite3_column_int64(st, 6), updated, sizeof(updated)) < 0 ||
	    cJSON_AddStringToObject(o, "id", id) == NULL ||
	    cJSON_AddStringToObject(o, "url", (const char *)sqlite3_column_text(st, 1)) == NULL ||
	    (events = cJSON_AddArrayToObject(o, "events")) == NULL ||
	    cJSON_AddStringToObject(o, "description", (const char *)sqlite3_column_text(st, 3)) ==
		NULL ||
	    cJSON_AddBoolToObject(o, "enabled", sqlite3_column_int(st, 4)) == NULL ||
	    cJSON_AddStringToObject(o, "created", created) == NULL ||
	    cJSON_AddStringToObject(o, "updated", updated) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	for (const char *s = ev; *s != '\0'; s += strcspn(s, ",") + (s[strcspn(s, ",")] == ',')) {
		snprintf(one, sizeof(one), "%.*s", (int)strcspn(s, ","), s);
		cJSON_AddItemToArray(events, cJSON_CreateString(one));
	}
	if (with_secret && (hook_secret(p, id, secret, sizeof(secret)) != 0 ||
			       cJSON_AddStringToObject(o, "secret", secret) == NULL)) {
		cJSON_Delete(o);
		o = NULL;
	}
	mbedtls_platform_zeroize(secret, sizeof(secret));
	return o;
}

#define HOOK_COLS "id, url, events, description, enabled, created, updated"

/* The seller's endpoint id (or all of them when id is NULL) as JSON. NULL: none or error. */
static cJSON *
hooks_read(struct platform *p, const char *seller, const char *id, int with_secret)
{
	sqlite3_stmt *st = db_prepare(p->db,
	    id != NULL ? "SELECT " HOOK_COLS " FROM webhooks WHERE seller_id = ?1 AND id = ?2" :
			 "SELECT " HOOK_COLS " FROM webhooks WHERE seller_id = ?1 ORDER BY created, id");
	cJSON *list = id == NULL ? cJSON_CreateArray() : NULL, *one = NULL;
	int rc;

	sqlite3_bind_text(st, 1, seller, -1, SQLITE_STATIC);
	if (id != NULL)
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *o = hook_json(p, st, with_secret);

		if (o == NULL || id != NULL) {
			one = o;
			break;
		}
		cJSON_AddItemToArray(list, o);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_warnx("reading webhooks: %s", sqlite3_errmsg(p->db));
	sqlite3_finalize(st);
	return id != NULL ? one : list;
}

/* The last deliveries to endpoint id, newest first. */
static cJSON *
recent_deliveries(struct platform *p, const char *id)
{
	sqlite3_stmt *st = db_prepare(p->db,
	    "SELECT event_id, kind, state, attempts, last_status, updated FROM deliveries"
	    " WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2");
	cJSON *list = cJSON_CreateArray();
	char when[RFC3339_BUFSZ];

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, HOOK_RECENT);
	while (list != NULL && sqlite3_step(st) == SQLITE_ROW) {
		cJSON *d = cJSON_CreateObject();
		char ev[32];

		snprintf(ev, sizeof(ev), "evt_%lld", (long long)sqlite3_column_int64(st, 0));
		if (d == NULL || rfc3339_format(sqlite3_column_int64(st, 5), when, sizeof(when)) < 0 ||
		    cJSON_AddStringToObject(d, "event", ev) == NULL ||
		    cJSON_AddStringToObject(d, "type", (const char *)sqlite3_column_text(st, 1)) ==
			NULL ||
		    cJSON_AddStringToObject(d, "state", (const char *)sqlite3_column_text(st, 2)) ==
			NULL ||
		    cJSON_AddNumberToObject(d, "attempts", sqlite3_column_int(st, 3)) == NULL ||
		    cJSON_AddNumberToObject(d, "last_status", sqlite3_column_int(st, 4)) == NULL ||
		    cJSON_AddStringToObject(d, "updated", when) == NULL) {
			cJSON_Delete(d);
			break;
		}
		cJSON_AddItemToArray(list, d);
	}
	sqlite3_finalize(st);
	return list;
}

/* Writes, in a dbq batch. */

static int
hook_insert(sqlite3 *db, struct hook_op *op, int64_t now)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT count(*) FROM webhooks WHERE seller_id = ?1");
	int n = -1;

	sqlite3_bind_text(st, 1, op->seller, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (n < 0)
		return -1;
	if ((op->full = n >= HOOK_PER_SELLER) != 0)
		return 0;
	st = db_prepare(db, "INSERT INTO webhooks (id, seller_id, url, events, description,"
			    " enabled, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)");
	sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->seller, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->in.url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, op->in.events, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, op->in.description, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, op->in.enabled);
	sqlite3_bind_int64(st, 7, now);
	if (store_step_done(db, st, "webhook") != 0)
		return -1;
	op->found = 1;
	return 0;
}

static int
hook_update(sqlite3 *db, struct hook_op *op, int64_t now)
{
	const struct hook_input *in = &op->in;
	sqlite3_stmt *st = db_prepare(db,
	    "UPDATE webhooks SET url = CASE WHEN ?3 THEN ?4 ELSE url END,"
	    " events = CASE WHEN ?5 THEN ?6 ELSE events END,"
	    " description = CASE WHEN ?7 THEN ?8 ELSE description END,"
	    " enabled = CASE WHEN ?9 THEN ?10 ELSE enabled END, updated = ?11"
	    " WHERE id = ?1 AND seller_id = ?2");

	sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->seller, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (in->have & HOOK_URL) != 0);
	sqlite3_bind_text(st, 4, in->url, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, (in->have & HOOK_EVENTS) != 0);
	sqlite3_bind_text(st, 6, in->events, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, (in->have & HOOK_DESC) != 0);
	sqlite3_bind_text(st, 8, in->description, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, (in->have & HOOK_ENABLED) != 0);
	sqlite3_bind_int(st, 10, in->enabled);
	sqlite3_bind_int64(st, 11, now);
	if (store_step_done(db, st, "webhook") != 0)
		return -1;
	op->found = sqlite3_changes(db) == 1;
	return 0;
}

static int
hook_delete(sqlite3 *db, struct hook_op *op)
{
	sqlite3_stmt *st = db_prepare(db, "DELETE FROM webhooks WHERE id = ?1 AND seller_id = ?2");

	sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->seller, -1, SQLITE_STATIC);
	if (store_step_done(db, st, "webhook") != 0)
		return -1;
	if ((op->found = sqlite3_changes(db) == 1) == 0)
		return 0;
	st = db_prepare(db, "DELETE FROM deliveries WHERE webhook_id = ?1");
	sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
	return store_step_done(db, st, "deliveries");
}

static int
hook_apply(sqlite3 *db, void *arg)
{
	struct hook_op *op = arg;
	int64_t now = time_now_ms() / 1000;

	switch (op->kind) {
	case HOP_CREATE:
		return hook_insert(db, op, now);
	case HOP_PATCH:
		return hook_update(db, op, now);
	case HOP_DELETE:
		return hook_delete(db, op);
	}
	return -1;
}

static void
hook_done(void *arg, int status)
{
	struct hook_op *op = arg;
	struct platform *p = op->p;
	cJSON *o;

	if (status != 0) {
		p->d->errors++;
		api_reply_problem(p, &op->req, 500, "internal-error", "the webhook was not recorded");
	} else if (op->full) {
		api_reply_problem(p, &op->req, 409, "too-many-webhooks",
		    "a seller has at most 20 webhook endpoints; delete one first");
	} else if (!op->found) {
		api_reply_problem(p, &op->req, 404, "not-found", "you have no webhook with this id");
	} else if (op->kind == HOP_DELETE) {
		api_reply_json(p, &op->req, 200, cJSON_Parse("{\"deleted\":true}"));
	} else if ((o = hooks_read(p, op->seller, op->id, op->kind == HOP_CREATE)) == NULL) {
		api_reply_problem(p, &op->req, 500, "internal-error", "the webhook cannot be read");
	} else {
		if (op->kind == HOP_CREATE)
			log_info("seller %s added webhook %s", op->seller, op->id);
		api_reply_json(p, &op->req, op->kind == HOP_CREATE ? 201 : 200, o);
	}
	mbedtls_platform_zeroize(op, sizeof(*op));
	free(op);
}

static void
hook_write(struct platform *p, const struct ipc_req *req, enum hook_kind kind,
    const char *seller, const char *id, const struct hook_input *in)
{
	struct hook_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	*op = (struct hook_op){.p = p, .req = *req, .kind = kind};
	snprintf(op->seller, sizeof(op->seller), "%s", seller);
	if (id != NULL)
		snprintf(op->id, sizeof(op->id), "%s", id);
	else if (randid_make("wh_", op->id, sizeof(op->id)) != 0) {
		free(op);
		api_reply_problem(p, req, 500, "internal-error", "no randomness for an id");
		return;
	}
	if (in != NULL)
		op->in = *in;
	if (dbq_push(p->q, hook_apply, hook_done, op) != 0) {
		free(op);
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
	}
}

/* /api/webhooks: GET the list, POST a new one. */
static void
hooks_collection(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *seller)
{
	struct hook_input in;
	const char *why;
	cJSON *list, *o;

	if (strcmp(m->method, "GET") == 0) {
		if ((list = hooks_read(p, seller, NULL, 0)) == NULL || (o = cJSON_CreateObject()) == NULL ||
		    !cJSON_AddItemToObject(o, "webhooks", list)) {
			api_reply_problem(p, req, 500, "internal-error", "the webhooks cannot be read");
			return;
		}
		api_reply_json(p, req, 200, o);
	} else if (strcmp(m->method, "POST") != 0) {
		api_reply_problem(p, req, 405, "method-not-allowed", "/api/webhooks accepts GET and POST");
	} else if (hook_parse(m->body.p, m->body.len, 1, p->cfg->webhook_allow_private, &in, &why) !=
	    0) {
		api_reply_problem(p, req, 400, "invalid-webhook", why);
	} else {
		hook_write(p, req, HOP_CREATE, seller, NULL, &in);
	}
}

/* /api/webhooks/<id>: GET, PATCH, DELETE. */
static void
hooks_item(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *seller, const char *id)
{
	struct hook_input in;
	const char *why;
	cJSON *o;

	if (strcmp(m->method, "GET") == 0) {
		if ((o = hooks_read(p, seller, id, 1)) == NULL) {
			api_reply_problem(p, req, 404, "not-found", "you have no webhook with this id");
			return;
		}
		cJSON_AddItemToObject(o, "deliveries", recent_deliveries(p, id));
		api_reply_json(p, req, 200, o);
	} else if (strcmp(m->method, "DELETE") == 0) {
		hook_write(p, req, HOP_DELETE, seller, id, NULL);
	} else if (strcmp(m->method, "PATCH") != 0) {
		api_reply_problem(p, req, 405, "method-not-allowed",
		    "/api/webhooks/<id> accepts GET, PATCH and DELETE");
	} else if (hook_parse(m->body.p, m->body.len, 0, p->cfg->webhook_allow_private, &in, &why) !=
	    0) {
		api_reply_problem(p, req, 400, "invalid-webhook", why);
	} else {
		hook_write(p, req, HOP_PATCH, seller, id, &in);
	}
}

void
webhooks_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *path)
{
	const char *id = path[13] == '/' ? path + 14 : NULL, *why;
	struct jwt_claims c;
	size_t n = id != NULL ? strlen(id) : 0;

	if (auth_bearer(p, m->authorization, &c, &why) != 0)
		api_reply_problem(p, req, 401, "unauthorized", why);
	else if (p->webhook_keylen == 0)
		api_reply_problem(p, req, 503, "webhooks-not-configured",
		    "this server delivers no webhooks (webhook_secret_file is not set)");
	else if (id == NULL)
		hooks_collection(p, req, m, c.sub);
	else if (n == 0 || n > HOOK_ID_MAX ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
		api_reply_problem(p, req, 404, "not-found", "you have no webhook with this id");
	else
		hooks_item(p, req, m, c.sub, id);
}
