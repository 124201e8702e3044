/*
 * deliver.c — seller events, from the router to the sellers' webhook
 * endpoints, signed the Standard Webhooks way.
 *
 * Every webhook_poll_ms, two steps on the loop:
 *
 *   pull   EVENTS_PULL{after the cursor} from the router (router/events.c):
 *          each event becomes one delivery row per enabled endpoint of its
 *          seller that takes its kind, and the cursor moves past it, in one
 *          transaction; so an event is queued for every endpoint exactly once,
 *          and a crash before the commit only pulls it again.
 *   send   up to DELIVER_PARALLEL due deliveries are POSTed (common/httpc.c)
 *          with the headers of the Standard Webhooks specification:
 *          webhook-id "evt_<event id>" (the same on every retry, for the
 *          receiver's deduplication), webhook-timestamp (unix seconds), and
 *          webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>"
 *          under the endpoint's secret (webhooks.c). A 2xx answer ends it;
 *          anything else is retried after 5 s, 30 s, 2 min, 10 min, 1 h, 6 h,
 *          12 h, and then marked failed. The body is stored with the row, so
 *          every attempt sends the same bytes:
 *            {"type":"key.quarantined","timestamp":"<RFC 3339>",
 *             "data":{"event_id":"evt_…","key_id":"…","detail":"…"}}
 *
 * Records of finished deliveries are kept webhook_keep_days.
 *
 * Security stance: a seller chooses where cn2 connects, so every address
 * libcurl is about to connect to is checked after DNS (httpc_public_only):
 * nothing on loopback, private, link-local or other internal ranges, unless
 * webhook_allow_private is set for a local setup. Redirects are not
 * followed. Bodies carry event details only (no key, no request data); no
 * URL, secret or body is logged; the answer's body is ignored.
 */
#include "platform-api/platform.h"

#include <inttypes.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/utf8.h"

#define DELIVER_PARALLEL 16
#define DELIVER_PULL_MAX 64
#define DELIVER_TRIES 8

static const int64_t backoff_s[DELIVER_TRIES] = {5, 30, 120, 600, 3600, 21600, 43200, 0};

struct deliverer {
	struct platform *p;
	uv_timer_t timer;
	struct httpc *http;
	int64_t cursor;
	int pulling;
	int64_t in_flight[DELIVER_PARALLEL]; /* delivery ids being sent; 0: free slot */
	uint64_t pulled, sent, refused;
};

struct pull_op {
	struct platform *p;
	size_t n;
	struct ipc_seller_event ev[DELIVER_PULL_MAX];
};

struct send_op {
	struct platform *p;
	int64_t id;
	int attempts;
	long status;
	int ok;
};

/* Pull. */

/*
 * The router cuts a detail to its field's length, possibly inside a UTF-8
 * character: cut it back to whole characters (JSON must be UTF-8).
 */
static void
utf8_trim(char *s)
{
	size_t n = strlen(s);

	for (int i = 0; i < 4 && n > 0 && !utf8_valid((const uint8_t *)s, n); i++)
		s[--n] = '\0';
	if (!utf8_valid((const uint8_t *)s, n))
		s[0] = '\0';
}

/* The delivery body of event e; caller frees. NULL when memory runs out. */
static char *
event_payload(const struct ipc_seller_event *e)
{
	cJSON *o = cJSON_CreateObject(), *data = NULL;
	char when[RFC3339_BUFSZ], id[32], detail[sizeof(e->detail)], *s = NULL;

	memcpy(detail, e->detail, sizeof(detail));
	detail[sizeof(detail) - 1] = '\0';
	utf8_trim(detail);

	snprintf(id, sizeof(id), "evt_%" PRId64, e->id);
	if (o != NULL && rfc3339_format(e->created, when, sizeof(when)) >= 0 &&
	    cJSON_AddStringToObject(o, "type", e->kind) != NULL &&
	    cJSON_AddStringToObject(o, "timestamp", when) != NULL &&
	    (data = cJSON_AddObjectToObject(o, "data")) != NULL &&
	    cJSON_AddStringToObject(data, "event_id", id) != NULL &&
	    cJSON_AddStringToObject(data, "key_id", e->key_id) != NULL &&
	    cJSON_AddStringToObject(data, "detail", detail) != NULL)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* One event: a due delivery for each endpoint of its seller that takes its kind. */
static int
fanout_one(sqlite3 *db, const struct ipc_seller_event *e, int64_t now)
{
	sqlite3_stmt *st;
	char *payload = event_payload(e);
	int rc;

	if (payload == NULL)
		return -1;
	st = db_prepare(db,
	    "INSERT INTO deliveries (webhook_id, event_id, kind, payload, state, next_at, created,"
	    " updated) SELECT id, ?1, ?2, ?3, 'due', ?4, ?4, ?4 FROM webhooks"
	    " WHERE seller_id = ?5 AND enabled = 1"
	    " AND (events = '*' OR instr(',' || events || ',', ',' || ?2 || ',') > 0)"
	    " ON CONFLICT (webhook_id, event_id) DO NOTHING");
	sqlite3_bind_int64(st, 1, e->id);
	sqlite3_bind_text(st, 2, e->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, payload, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_text(st, 5, e->seller_id, -1, SQLITE_STATIC);
	rc = store_step_done(db, st, "deliveries");
	cJSON_free(payload);
	return rc;
}

static int
fanout_apply(sqlite3 *db, void *arg)
{
	struct pull_op *op = arg;
	int64_t now = time_now_ms() / 1000;
	sqlite3_stmt *st;
	char cursor[32];

	for (size_t i = 0; i < op->n; i++)
		if (fanout_one(db, &op->ev[i], now) != 0)
			return -1;
	snprintf(cursor, sizeof(cursor), "%" PRId64, op->ev[op->n - 1].id);
	st = db_prepare(db, "UPDATE meta SET value = ?1 WHERE key = 'events_cursor'");
	sqlite3_bind_text(st, 1, cursor, -1, SQLITE_STATIC);
	if (store_step_done(db, st, "events cursor") != 0)
		return -1;
	st = db_prepare(db, "DELETE FROM deliveries WHERE state <> 'due' AND updated < ?1");
	sqlite3_bind_int64(st, 1, now - op->p->cfg->webhook_keep_days * 86400);
	return store_step_done(db, st, "old deliveries");
}

static void pull_start(struct platform *p);

static void
fanout_done(void *arg, int status)
{
	struct pull_op *op = arg;
	struct deliverer *dv = op->p->deliver;
	int again = 0;

	if (dv != NULL && !op->p->stopping) {
		dv->pulling = 0;
		if (status == 0) {
			dv->cursor = op->ev[op->n - 1].id;
			dv->pulled += op->n;
			again = op->n == DELIVER_PULL_MAX;
		} else {
			log_warnx("cannot queue %zu seller event(s); they are pulled again", op->n);
		}
	}
	free(op);
	if (again)
		pull_start(dv->p);
}

/* SELLER_EVENT… then ACK from the router. */
static void
pull_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pull_op *op = arg;
	struct deliverer *dv = op->p->deliver;

	if (op->p->stopping || dv == NULL) {
		if (status != 0 || (ipc_type_flags(type) & IPC_MF_FINAL))
			free(op);
		return;
	}
	if (status == 0 && type == IPC_SELLER_EVENT) {
		if (op->n < DELIVER_PULL_MAX && msg->seller_event.id > dv->cursor)
			op->ev[op->n++] = msg->seller_event;
		return;
	}
	if (status != 0 || type != IPC_ACK || op->n == 0 ||
	    dbq_push(op->p->q, fanout_apply, fanout_done, op) != 0) {
		dv->pulling = 0;
		free(op);
	}
}

static void
pull_start(struct platform *p)
{
	struct deliverer *dv = p->deliver;
	struct ipc_events_pull m = {dv->cursor, DELIVER_PULL_MAX};
	struct pull_op *op;

	if (dv->pulling || !ipc_link_up(p->d->ipc, ROLE_ROUTER) ||
	    (op = calloc(1, sizeof(*op))) == NULL)
		return;
	op->p = p;
	dv->pulling = 1;
	if (ipc_request(p->d->ipc, ROLE_ROUTER, IPC_EVENTS_PULL, &m, PLATFORM_PEER_TIMEOUT_MS,
		pull_on_reply, op) == 0) {
		dv->pulling = 0;
		free(op);
	}
}

/* Send. */

/* "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>" into out; 0 or -1. */
static int
sign(const struct platform *p, const char *webhook_id, const char *msg_id, int64_t ts,
    const char *body, char *out, size_t cap)
{
	uint8_t key[32], mac[32];
	char stamp[24];
	mbedtls_md_context_t md;
	size_t n = 0;
	int rc;

	snprintf(stamp, sizeof(stamp), "%" PRId64, ts);
	mbedtls_md_init(&md);
	rc = hook_secret_raw(p, webhook_id, key) != 0 ||
	    mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) != 0 ||
	    mbedtls_md_hmac_starts(&md, key, sizeof(key)) != 0 ||
	    mbedtls_md_hmac_update(&md, (const uint8_t *)msg_id, strlen(msg_id)) != 0 ||
	    mbedtls_md_hmac_update(&md, (const uint8_t *)".", 1) != 0 ||
	    mbedtls_md_hmac_update(&md, (const uint8_t *)stamp, strlen(stamp)) != 0 ||
	    mbedtls_md_hmac_update(&md, (const uint8_t *)".", 1) != 0 ||
	    mbedtls_md_hmac_update(&md, (const uint8_t *)body, strlen(body)) != 0 ||
	    mbedtls_md_hmac_finish(&md, mac) != 0 || cap < 4;
	mbedtls_md_free(&md);
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc != 0)
		return -1;
	memcpy(out, "v1,", 3);
	return mbedtls_base64_encode((uint8_t *)out + 3, cap - 3, &n, mac, sizeof(mac)) == 0 ? 0 :
													 -1;
}

static int
result_apply(sqlite3 *db, void *arg)
{
	struct send_op *op = arg;
	int64_t now = time_now_ms() / 1000;
	int tries = op->attempts + 1;
	sqlite3_stmt *st = db_prepare(db,
	    "UPDATE deliveries SET attempts = ?2, last_status = ?3, updated = ?4, next_at = ?5,"
	    " state = ?6 WHERE id = ?1 AND state = 'due'");

	sqlite3_bind_int64(st, 1, op->id);
	sqlite3_bind_int(st, 2, tries);
	sqlite3_bind_int(st, 3, (int)op->status);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, op->ok || tries >= DELIVER_TRIES ? now : now + backoff_s[tries - 1]);
	sqlite3_bind_text(st, 6, op->ok ? "done" : tries >= DELIVER_TRIES ? "failed" : "due", -1,
	    SQLITE_STATIC);
	return store_step_done(db, st, "delivery");
}

static void
slot_free(struct deliverer *dv, int64_t id)
{
	for (size_t i = 0; i < DELIVER_PARALLEL; i++)
		if (dv->in_flight[i] == id)
			dv->in_flight[i] = 0;
}

static void
result_done(void *arg, int status)
{
	struct send_op *op = arg;

	if (status != 0)
		log_warnx("delivery %" PRId64 ": its outcome was not recorded; it is sent again",
		    op->id);
	if (!op->p->stopping && op->p->deliver != NULL)
		slot_free(op->p->deliver, op->id);
	free(op);
}

static void
send_on_answer(void *arg, const struct httpc_result *r)
{
	struct send_op *op = arg;
	struct deliverer *dv = op->p->deliver;

	op->status = r->error == HTTPC_OK ? r->status : 0;
	op->ok = r->error == HTTPC_OK && r->status >= 200 && r->status < 300;
	if (op->p->stopping || dv == NULL) {
		free(op);
		return;
	}
	if (op->ok)
		dv->sent++;
	else
		dv->refused++;
	log_info("delivery %" PRId64 ": %s (status %ld, attempt %d)", op->id,
	    op->ok ? "delivered" : r->error == HTTPC_TIMEOUT ? "timed out" : "not accepted",
	    op->status, op->attempts + 1);
	if (dbq_push(op->p->q, result_apply, result_done, op) != 0) {
		slot_free(dv, op->id);
		free(op);
	}
}

/* POST one delivery: its row's columns are id, url, payload, attempts, event_id, webhook_id. */
static int
send_one(struct platform *p, sqlite3_stmt *st)
{
	struct deliverer *dv = p->deliver;
	const char *url = (const char *)sqlite3_column_text(st, 1);
	const char *body = (const char *)sqlite3_column_text(st, 2);
	const char *hook = (const char *)sqlite3_column_text(st, 5);
	int64_t now = time_now_ms() / 1000;
	char msg_id[32], h_id[48], h_ts[48], h_sig[112], sig[80];
	const char *hs[] = {"Content-Type: application/json", "User-Agent: cn2-webhooks/1", h_id,
	    h_ts, h_sig, NULL};
	struct httpc_req req = {url, hs, body, NULL, (long)p->cfg->webhook_timeout_ms,
	    p->cfg->webhook_allow_private ? NULL : httpc_public_only, NULL};
	struct send_op *op;

	snprintf(msg_id, sizeof(msg_id), "evt_%lld", (long long)sqlite3_column_int64(st, 4));
	if (url == NULL || body == NULL || hook == NULL ||
	    sign(p, hook, msg_id, now, body, sig, sizeof(sig)) != 0 ||
	    (op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	snprintf(h_id, sizeof(h_id), "webhook-id: %s", msg_id);
	snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %" PRId64, now);
	snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
	*op = (struct send_op){p, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 3), 0, 0};
	if (httpc_post(dv->http, &req, send_on_answer, op) != 0) {
		free(op);
		return -1;
	}
	return 0;
}

static int
slot_take(struct deliverer *dv, int64_t id)
{
	size_t free_at = DELIVER_PARALLEL;

	for (size_t i = 0; i < DELIVER_PARALLEL; i++) {
		if (dv->in_flight[i] == id)
			return 0;
		if (dv->in_flight[i] == 0 && free_at == DELIVER_PARALLEL)
			free_at = i;
	}
	if (free_at == DELIVER_PARALLEL)
		return 0;
	dv->in_flight[free_at] = id;
	return 1;
}

static void
send_due(struct platform *p)
{
	struct deliverer *dv = p->deliver;
	sqlite3_stmt *st = db_prepare(p->db,
	    "SELECT d.id, w.url, d.payload, d.attempts, d.event_id, d.webhook_id"
	    " FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
	    " WHERE d.state = 'due' AND d.next_at <= ?1 AND w.enabled = 1"
	    " ORDER BY d.next_at, d.id LIMIT ?2");

	sqlite3_bind_int64(st, 1, time_now_ms() / 1000);
	sqlite3_bind_int(st, 2, 2 * DELIVER_PARALLEL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);

		if (!slot_take(dv, id))
			continue;
		if (send_one(p, st) != 0)
			slot_free(dv, id);
	}
	sqlite3_finalize(st);
}

static void
on_tick(uv_timer_t *t)
{
	struct platform *p = t->data;

	if (p->stopping)
		return;
	pull_start(p);
	send_due(p);
}

/* The cursor as committed, or 0 before the first pull. */
static int64_t
cursor_read(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT value FROM meta WHERE key = 'events_cursor'");
	int64_t v = 0;

	if (sqlite3_step(st) == SQLITE_ROW)
		v = strtoll((const char *)sqlite3_column_text(st, 0), NULL, 10);
	sqlite3_finalize(st);
	return v;
}

int
deliver_start(struct platform *p, char *err, size_t errlen)
{
	struct deliverer *dv = calloc(1, sizeof(*dv));
	uint64_t ms = (uint64_t)p->cfg->webhook_poll_ms;

	if (dv == NULL || (dv->http = httpc_new(p->d->loop, err, errlen)) == NULL) {
		free(dv);
		if (dv == NULL)
			snprintf(err, errlen, "out of memory");
		return -1;
	}
	dv->p = p;
	dv->cursor = cursor_read(p->db);
	uv_timer_init(p->d->loop, &dv->timer);
	dv->timer.data = p;
	uv_timer_start(&dv->timer, on_tick, ms, ms);
	p->deliver = dv;
	return 0;
}

static void
timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void
deliver_stop(struct platform *p)
{
	struct deliverer *dv = p->deliver;

	if (dv == NULL)
		return;
	p->deliver = NULL;
	uv_timer_stop(&dv->timer);
	httpc_free(dv->http);
	dv->timer.data = dv;
	uv_close((uv_handle_t *)&dv->timer, timer_closed);
}

void
deliver_health(struct platform *p, char *out, size_t cap)
{
	const struct deliverer *dv = p->deliver;

	if (dv != NULL)
		snprintf(out, cap, "webhooks: %" PRIu64 " events pulled, %" PRIu64 " delivered, %" PRIu64
				   " attempts refused",
		    dv->pulled, dv->sent, dv->refused);
}
