/*
 * listings.c — the key listings, as sellers set them through platform-api:
 * LISTING_PUT (create or change one), LISTING_LIST (a seller's keys),
 * LISTING_GET (one of them); and loading them all into the pool at start.
 *
 * A listing is a key id, its seller and provider, a price per request, a
 * status (active, paused, quarantined, rotating, removed), a region tag
 * ("", "eu", "us"), the premium opt-in, the routes it may serve ("" for all
 * that the provider catalogue proxies), requests per minute and per day and
 * a daily budget (0: none). A change is written durably (synchronous=FULL
 * for that commit), then applied to the pool, then acknowledged: the next
 * quote after the ACK sees it. Only the seller reinstates a quarantined key:
 * a LISTING_PUT with status active (the seller updated or rotated it) gives
 * it a fresh score; any other change keeps it quarantined. A removed listing
 * stays removed.
 *
 * Security stance: a listing carries no key, only its id, owner, provider
 * and terms. Each field is checked against a narrow charset or range before
 * it is stored, since ids end up in logs and in the grant the vault trusts.
 * A listing cannot change owner or provider once written: an update naming
 * another seller or provider is refused, so a key id can never be taken over.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/log.h"

/* s is 1..max characters, each a letter, a digit or one of extra. */
static int
charset_ok(const char *s, size_t max, int upper, const char *extra)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (upper && c >= 'A' && c <= 'Z') || (c != '\0' && strchr(extra, c) != NULL))
			continue;
		return 0;
	}
	return 1;
}

/* The terms: region, limits and budget. */
static int
terms_valid(const struct ipc_listing *l, const char **why)
{
	if (strcmp(l->region, "") != 0 && strcmp(l->region, "eu") != 0 &&
	    strcmp(l->region, "us") != 0)
		*why = "region must be \"eu\", \"us\" or empty";
	else if (l->premium > 1)
		*why = "premium must be 0 or 1";
	else if (l->rpm > LISTING_RPM_MAX)
		*why = "rpm must be at most 1000000";
	else if (l->rpd > LISTING_RPD_MAX)
		*why = "rpd must be at most 10000000";
	else if (l->daily_budget < 0 || l->daily_budget > LISTING_BUDGET_MAX)
		*why = "daily_budget must be between 0 and 10^15 µUSD";
	else if (l->daily_budget > 0 && l->daily_budget < l->price)
		*why = "daily_budget is less than the price of one request";
	else
		return select_routes_valid(l->routes, why);
	return -1;
}

int
listing_valid(const struct ipc_listing *l, const char **why)
{
	if (!charset_ok(l->key_id, IPC_KEY_ID_MAX, 1, "_-"))
		*why = "key_id must be 1..47 of [A-Za-z0-9_-]";
	else if (!charset_ok(l->seller_id, IPC_ID_MAX, 1, "_.@:-"))
		*why = "seller_id must be 1..63 of [A-Za-z0-9_.@:-]";
	else if (!charset_ok(l->provider, IPC_PROVIDER_MAX, 0, "-"))
		*why = "provider must be 1..31 of [a-z0-9-]";
	else if (l->price <= 0 || l->price > LISTING_PRICE_MAX)
		*why = "price must be between 1 and 10^12 µUSD";
	else if (lstatus_parse(l->status) < 0)
		*why = "status must be active, paused, quarantined, rotating or removed";
	else
		return terms_valid(l, why);
	return -1;
}

/* LISTING_PUT: one write through the queue, applied and answered once it is durable. */
struct put_op {
	struct router *r;
	struct ipc_req req;
	struct ipc_listing l;
	int conflict;
};

static int
put_apply(sqlite3 *db, void *arg)
{
	struct put_op *op = arg;
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO listings (key_id, seller_id, provider, price, status, created, updated,"
	    " region, premium, routes, rpm, rpd, daily_budget, reason)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
	    " ON CONFLICT (key_id) DO UPDATE SET price = excluded.price,"
	    "  status = excluded.status, updated = excluded.updated, region = excluded.region,"
	    "  premium = excluded.premium, routes = excluded.routes, rpm = excluded.rpm,"
	    "  rpd = excluded.rpd, daily_budget = excluded.daily_budget,"
	    "  reason = CASE WHEN excluded.status != 'quarantined' THEN ''"
	    "   WHEN listings.status = 'quarantined' THEN listings.reason ELSE excluded.reason END"
	    " WHERE listings.seller_id = excluded.seller_id"
	    "  AND listings.provider = excluded.provider AND listings.status != 'removed'");
	int rc;

	sqlite3_bind_text(st, 1, op->l.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->l.seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->l.provider, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, op->l.price);
	sqlite3_bind_text(st, 5, op->l.status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, op->l.updated);
	sqlite3_bind_text(st, 7, op->l.region, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 8, op->l.premium);
	sqlite3_bind_text(st, 9, op->l.routes, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, op->l.rpm);
	sqlite3_bind_int64(st, 11, op->l.rpd);
	sqlite3_bind_int64(st, 12, op->l.daily_budget);
	sqlite3_bind_text(st, 13, op->l.reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("listing %s: %s", op->l.key_id, sqlite3_errmsg(db));
		return -1;
	}
	/* No row changed: the key id exists under another seller or provider, or was removed. */
	op->conflict = sqlite3_changes(db) == 0;
	return op->conflict ? -1 : 0;
}

static void
put_done(void *arg, int status)
{
	struct put_op *op = arg;
	struct router *r = op->r;
	struct lkey *k;

	store_full_end(r);
	if (status == 0) {
		/* Keep the first creation time: the row does (created is only set by INSERT). */
		if ((k = pool_find(&r->pool, op->l.key_id)) != NULL)
			op->l.created = k->created;
		if (pool_put(&r->pool, &op->l, router_now_ms()) == NULL)
			log_warnx("out of memory: listing %s applies after a restart", op->l.key_id);
		log_info("listing %s of seller %s: %s at %lld µUSD", op->l.key_id, op->l.seller_id,
		    op->l.status, (long long)op->l.price);
		ipc_reply(r->d->ipc, &op->req, IPC_ACK, NULL);
	} else if (op->conflict) {
		router_problem(r, &op->req, 409, "listing-conflict",
		    "key %s is listed by another seller or for another provider, or was removed",
		    op->l.key_id);
	} else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, &op->req, IPC_ERR_INTERNAL, "listing not stored");
	}
	free(op);
}

/* Refused at once if the pool already knows the key id as someone else's, or removed. */
static int
put_conflict(struct router *r, const struct ipc_req *req, const struct ipc_listing *m)
{
	const struct lkey *k = pool_find(&r->pool, m->key_id);

	if (k == NULL)
		return 0;
	if (strcmp(k->seller_id, m->seller_id) != 0 || strcmp(ppool_name(k->pp), m->provider) != 0)
		router_problem(r, req, 409, "listing-conflict",
		    "key %s is listed by another seller or for another provider", m->key_id);
	else if (k->status == LS_REMOVED)
		router_problem(r, req, 409, "listing-removed",
		    "key %s was removed; list the key again under a new id", m->key_id);
	else
		return 0;
	return 1;
}

void
listings_put(struct router *r, const struct ipc_req *req, const struct ipc_listing *m)
{
	struct put_op *op;
	const char *why;

	if (listing_valid(m, &why) != 0) {
		router_problem(r, req, 400, "invalid-listing", "%s", why);
		return;
	}
	if (put_conflict(r, req, m))
		return;
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->r = r;
	op->req = *req;
	op->l = *m;
	op->l.updated = (int64_t)time(NULL);
	op->l.created = op->l.updated;
	op->l.score = 0;
	store_full_begin(r);
	if (dbq_push(r->q, put_apply, put_done, op) != 0) {
		store_full_end(r);
		free(op);
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
	}
}

static void
copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/*
 * LISTING_LIST: one LISTING per key of the seller that is not removed,
 * oldest first, then ACK. The ids come from the database (its seller index
 * keeps the order); the terms and the score from the pool.
 */
void
listings_list(struct router *r, const struct ipc_req *req, const struct ipc_listing_list *m)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT key_id FROM listings WHERE seller_id = ?1 AND status != 'removed'"
	    " ORDER BY created, key_id");
	int64_t now = router_now_ms();
	char id[IPC_KEY_ID_MAX + 1];
	struct ipc_listing l;
	const struct lkey *k;
	int rc;

	sqlite3_bind_text(st, 1, m->seller_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		copy_text(id, sizeof(id), st, 0);
		if ((k = pool_find(&r->pool, id)) == NULL)
			continue;
		pool_listing(&r->pool, k, now, &l);
		if (ipc_reply(r->d->ipc, req, IPC_LISTING, &l) != 0)
			break;
	}
	router_stream_end(r, req, st, rc, "listings");
}

/* LISTING_GET: the seller's own listing (removed ones too), then ACK; else 404. */
void
listings_get(struct router *r, const struct ipc_req *req, const struct ipc_listing_get *m)
{
	const struct lkey *k = pool_find(&r->pool, m->key_id);
	struct ipc_listing l;

	if (k == NULL || strcmp(k->seller_id, m->seller_id) != 0) {
		router_problem(r, req, 404, "not-found", "this seller has no key with that id");
		return;
	}
	pool_listing(&r->pool, k, router_now_ms(), &l);
	if (ipc_reply(r->d->ipc, req, IPC_LISTING, &l) == 0)
		ipc_reply(r->d->ipc, req, IPC_ACK, NULL);
}

/* One row of the load query into a listing and a saved state (has_state 0 if none). */
static void
load_row(sqlite3_stmt *st, struct ipc_listing *l, struct state_row *s, int *has_state)
{
	memset(l, 0, sizeof(*l));
	copy_text(l->key_id, sizeof(l->key_id), st, 0);
	copy_text(l->seller_id, sizeof(l->seller_id), st, 1);
	copy_text(l->provider, sizeof(l->provider), st, 2);
	l->price = sqlite3_column_int64(st, 3);
	copy_text(l->status, sizeof(l->status), st, 4);
	l->created = sqlite3_column_int64(st, 5);
	l->updated = sqlite3_column_int64(st, 6);
	copy_text(l->region, sizeof(l->region), st, 7);
	l->premium = (uint8_t)sqlite3_column_int(st, 8);
	copy_text(l->routes, sizeof(l->routes), st, 9);
	l->rpm = (uint32_t)sqlite3_column_int64(st, 10);
	l->rpd = (uint32_t)sqlite3_column_int64(st, 11);
	l->daily_budget = sqlite3_column_int64(st, 12);
	copy_text(l->reason, sizeof(l->reason), st, 13);
	*has_state = sqlite3_column_type(st, 14) != SQLITE_NULL;
	s->score.v = sqlite3_column_double(st, 14);
	s->score.at_ms = sqlite3_column_int64(st, 15);
	s->lim.rpm.milli = sqlite3_column_int64(st, 16);
	s->lim.rpm.at_ms = sqlite3_column_int64(st, 17);
	s->lim.rpd.milli = sqlite3_column_int64(st, 18);
	s->lim.rpd.at_ms = sqlite3_column_int64(st, 19);
	s->lim.day = sqlite3_column_int64(st, 20);
	s->lim.spent = sqlite3_column_int64(st, 21);
	s->cool_until = sqlite3_column_int64(st, 22);
	s->fail_epoch = (uint32_t)sqlite3_column_int64(st, 23);
}

/* Put one loaded listing in the pool with what it had learned. 0, or -1. */
static int
load_one(struct router *r, const struct ipc_listing *l, const struct state_row *s, int has_state,
    int64_t now)
{
	const char *why;
	struct lkey *k;

	if (listing_valid(l, &why) != 0) {
		log_warnx("listing %s in the database is invalid (%s): left out", l->key_id, why);
		return 0;
	}
	if ((k = pool_put(&r->pool, l, now)) == NULL)
		return -1;
	if (has_state && s->score.v >= 0 && s->score.v <= 1) {
		k->score = s->score;
		k->lim = s->lim;
		k->cool_until = s->cool_until;
		k->fail_epoch = s->fail_epoch;
		pool_place(&r->pool, k, now);
	}
	return 0;
}

int
listings_load(struct router *r, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT l.key_id, seller_id, provider, price, status, created, updated, region,"
	    " premium, routes, rpm, rpd, daily_budget, reason, s.score, s.score_at, s.rpm_milli,"
	    " s.rpm_at, s.rpd_milli, s.rpd_at, s.day, s.spent, s.cool_until, s.fail_epoch"
	    " FROM listings l LEFT JOIN key_state s USING (key_id)");
	int64_t now = router_now_ms();
	struct ipc_listing l;
	struct state_row s;
	int rc, has_state;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		load_row(st, &l, &s, &has_state);
		if (load_one(r, &l, &s, has_state, now) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "loading the listings: %s",
		    rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		log_info("%zu listings loaded, %zu waiting to serve again", r->pool.nkeys,
		    r->pool.nheap);
	return rc == SQLITE_DONE ? 0 : -1;
}
