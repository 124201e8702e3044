/*
 * listings.c — the key listings: what sellers offer (LISTING_PUT and
 * LISTING_LIST from platform-api), what the edge is quoted (QUOTE), and the
 * candidate rows a choice is made from.
 *
 * Security stance: a listing carries no key, only its id, owner, provider,
 * price and status. Each field is checked against a narrow charset before it
 * is stored, since ids end up in logs and in the grant the vault trusts. A
 * listing cannot change owner or provider once written: an update naming
 * another seller is refused, so a key id can never be taken over.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/log.h"

/* Highest price a listing may carry: $1,000,000 per request keeps all arithmetic far from overflow. */
#define LISTING_PRICE_MAX INT64_C(1000000000000)

static const char *const statuses[] = {"active", "paused", "quarantined", "rotating", "removed"};

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

int
listing_valid(const struct ipc_listing *l, const char **why)
{
	size_t i;

	if (!charset_ok(l->key_id, IPC_KEY_ID_MAX, 1, "_-"))
		*why = "key_id must be 1..47 of [A-Za-z0-9_-]";
	else if (!charset_ok(l->seller_id, IPC_ID_MAX, 1, "_.@:-"))
		*why = "seller_id must be 1..63 of [A-Za-z0-9_.@:-]";
	else if (!charset_ok(l->provider, IPC_PROVIDER_MAX, 0, "-"))
		*why = "provider must be 1..31 of [a-z0-9-]";
	else if (l->price <= 0 || l->price > LISTING_PRICE_MAX)
		*why = "price must be between 1 and 10^12 µUSD";
	else {
		for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
			if (strcmp(l->status, statuses[i]) == 0)
				return 0;
		*why = "status must be active, paused, quarantined, rotating or removed";
	}
	return -1;
}

static void
copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

int
listings_candidates(struct router *r, const char *provider, struct cand_row *rows, size_t max)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT key_id, seller_id, price FROM listings"
	    " WHERE provider = ?1 AND status = 'active' ORDER BY price, key_id LIMIT ?2");
	size_t n = 0;
	int rc = SQLITE_DONE;

	sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		copy_text(rows[n].key_id, sizeof(rows[n].key_id), st, 0);
		copy_text(rows[n].seller_id, sizeof(rows[n].seller_id), st, 1);
		rows[n].price = sqlite3_column_int64(st, 2);
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		log_warnx("listings of %s: %s", provider, sqlite3_errmsg(r->db));
		n = SIZE_MAX;
	}
	sqlite3_finalize(st);
	return n == SIZE_MAX ? -1 : (int)n;
}

/*
 * The quote is the buyer price of the cheapest active listing, and how many
 * listings share that price. The count is exact (SQL counts them all);
 * selection looks at the cheapest ROUTER_CANDIDATES_MAX only.
 */
void
listings_quote(struct router *r, const struct ipc_req *req, const struct ipc_quote *m)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT price, count(*) FROM listings WHERE provider = ?1 AND status = 'active'"
	    " GROUP BY price ORDER BY price LIMIT 1");
	struct ipc_quote_rep rep = {0, 0};
	int rc;

	sqlite3_bind_text(st, 1, m->route.provider, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = select_buyer_price(sqlite3_column_int64(st, 0), r->cfg->fee_bps, &rep.amount);
		rep.keys = (uint32_t)sqlite3_column_int64(st, 1);
		rc = rc == 0 ? SQLITE_ROW : SQLITE_RANGE;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_warnx("quote for %s failed: %s", m->route.provider,
		    rc == SQLITE_RANGE ? "price overflows" : sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		ipc_reply(r->d->ipc, req, IPC_QUOTE_REP, &rep);
	else if (rc == SQLITE_DONE)
		router_problem(r, req, 503, "no-key-available",
		    "no seller key is available for %s right now", m->route.provider);
	else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "quote failed");
	}
}

/* LISTING_PUT: one write through the queue, answered once it is durable. */
struct put_op {
	struct router *r;
	struct ipc_req req;
	struct ipc_listing l;
	int64_t now;
	int conflict;
};

static int
put_apply(sqlite3 *db, void *arg)
{
	struct put_op *op = arg;
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO listings (key_id, seller_id, provider, price, status, created, updated)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
	    " ON CONFLICT (key_id) DO UPDATE SET price = excluded.price,"
	    "  status = excluded.status, updated = excluded.updated"
	    " WHERE listings.seller_id = excluded.seller_id"
	    "  AND listings.provider = excluded.provider");
	int rc;

	sqlite3_bind_text(st, 1, op->l.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->l.seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->l.provider, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, op->l.price);
	sqlite3_bind_text(st, 5, op->l.status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, op->now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("listing %s: %s", op->l.key_id, sqlite3_errmsg(db));
		return -1;
	}
	/* No row changed: the key id exists under another seller or provider. */
	op->conflict = sqlite3_changes(db) == 0;
	return op->conflict ? -1 : 0;
}

static void
put_done(void *arg, int status)
{
	struct put_op *op = arg;
	struct router *r = op->r;

	store_full_end(r);
	if (status == 0) {
		log_info("listing %s of seller %s: %s at %lld µUSD", op->l.key_id, op->l.seller_id,
		    op->l.status, (long long)op->l.price);
		ipc_reply(r->d->ipc, &op->req, IPC_ACK, NULL);
	} else if (op->conflict) {
		router_problem(r, &op->req, 409, "listing-conflict",
		    "key %s is listed by another seller or for another provider", op->l.key_id);
	} else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, &op->req, IPC_ERR_INTERNAL, "listing not stored");
	}
	free(op);
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
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->r = r;
	op->req = *req;
	op->l = *m;
	op->now = (int64_t)time(NULL);
	store_full_begin(r);
	if (dbq_push(r->q, put_apply, put_done, op) != 0) {
		store_full_end(r);
		free(op);
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
	}
}

/* LISTING_LIST: one LISTING per key of the seller, oldest first, then ACK. */
void
listings_list(struct router *r, const struct ipc_req *req, const struct ipc_listing_list *m)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT key_id, seller_id, provider, price, status, created FROM listings"
	    " WHERE seller_id = ?1 ORDER BY created, key_id");
	struct ipc_listing l;
	int rc;

	sqlite3_bind_text(st, 1, m->seller_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		copy_text(l.key_id, sizeof(l.key_id), st, 0);
		copy_text(l.seller_id, sizeof(l.seller_id), st, 1);
		copy_text(l.provider, sizeof(l.provider), st, 2);
		l.price = sqlite3_column_int64(st, 3);
		copy_text(l.status, sizeof(l.status), st, 4);
		l.created = sqlite3_column_int64(st, 5);
		if (ipc_reply(r->d->ipc, req, IPC_LISTING, &l) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_warnx("listings of seller %s: %s", m->seller_id, sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		ipc_reply(r->d->ipc, req, IPC_ACK, NULL);
	else if (rc != SQLITE_ROW) {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "listing failed");
	}
}
