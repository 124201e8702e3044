/*
 * release.c — a grant that expires without an OUTCOME gives its key's limit
 * reservation back.
 *
 * ASSIGN reserves a token of each bucket and the price from the day's
 * budget before the grant is sent (grant.c). The vault's OUTCOME settles
 * that (outcome.c); but a grant may never be used at all: the edge died
 * between ASSIGN and FORWARD, the buyer went away, the vault was down. Such
 * a grant can do nothing once it has expired (the vault refuses it), so
 * from then on its reservation is returned: the tick (sweep.c) looks at the
 * soonest expiry among the grants still holding one (hold.c), and gives
 * back what each expired one holds.
 *
 * Exactly once, across restarts: the return is in memory at once, and in
 * router.db in one transaction that marks the assignment row returned
 * (held = 2) and saves the key's state with the reservation given back, so
 * the two cannot part. A router stopped before that commit finds the row
 * still held at start (release_load) and returns it then; one stopped after
 * it finds the row returned and the key's state already without it. A
 * batch that fails takes the reservations again in memory and keeps the
 * grants held, so the next tick tries again.
 *
 * A call can outlive its grant: the vault checks the expiry when the call
 * starts, and a long stream ends later. Its OUTCOME then finds the
 * reservation returned, and charges it again if the call reached the
 * upstream (outcome.c).
 *
 * Security stance: nothing here reads outside input; grant ids and prices
 * come from router.db and this router's own grants.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

/* Grants released per tick at most: one tick's batch stays short; the rest wait 500 ms. */
#define RELEASE_MAX 512

struct released {
	char grant_id[IPC_KEY_ID_MAX + 1];
	char key_id[IPC_KEY_ID_MAX + 1];
	int64_t price, taken, expires;
	int has_key;            /* the key is in the pool: its state is saved */
	struct state_row state; /* the key's state once this batch's reservations went back */
};

struct release_op {
	struct router *r;
	size_t n;
	struct released g[];
};

int
release_load(struct router *r, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT grant_id, key_id, seller_price, created, expires FROM assignments"
	    " WHERE held = 1 ORDER BY expires");
	const unsigned char *g, *k;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		g = sqlite3_column_text(st, 0);
		k = sqlite3_column_text(st, 1);
		if (g == NULL || k == NULL ||
		    holds_add(&r->holds, (const char *)g, (const char *)k,
		        sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3) * 1000,
		        sqlite3_column_int64(st, 4)) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "loading the grants that hold reservations: %s",
		    rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE && r->holds.n > 0)
		log_info("%zu grants hold limit reservations", r->holds.n);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Take x's reservation off its key into op, and forget x. */
static void
release_one(struct router *r, struct release_op *op, struct hold *x, int64_t now)
{
	struct released *g = &op->g[op->n++];
	struct lkey *k = pool_find(&r->pool, x->key_id);

	snprintf(g->grant_id, sizeof(g->grant_id), "%s", x->grant_id);
	snprintf(g->key_id, sizeof(g->key_id), "%s", x->key_id);
	g->price = x->price;
	g->taken = x->taken;
	g->expires = x->expires;
	if (k != NULL) {
		limits_give(&k->lim, &k->caps, x->price, x->taken, now);
		pool_place(&r->pool, k, now);
	}
	holds_del(&r->holds, x);
}

/* The batch failed: the reservations are taken again and the grants held again. */
static void
release_undo(struct router *r, struct release_op *op, int64_t now)
{
	for (size_t i = 0; i < op->n; i++) {
		struct released *g = &op->g[i];
		struct lkey *k = pool_find(&r->pool, g->key_id);

		if (k != NULL) {
			limits_charge(&k->lim, &k->caps, g->price, g->taken, now);
			pool_place(&r->pool, k, now);
		}
		if (holds_add(&r->holds, g->grant_id, g->key_id, g->price, g->taken, g->expires) ==
		    NULL)
			log_warnx(
			    "out of memory: grant %s is released at the next start", g->grant_id);
	}
}

static int
release_apply(sqlite3 *db, void *arg)
{
	struct release_op *op = arg;

	for (size_t i = 0; i < op->n; i++) {
		sqlite3_stmt *st = store_stmt(op->r, ST_HOLD_EXPIRE);
		int rc;

		sqlite3_bind_text(st, 1, op->g[i].grant_id, -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			log_warnx("release of grant %s: %s", op->g[i].grant_id, sqlite3_errmsg(db));
		sqlite3_reset(st);
		if (rc != SQLITE_DONE ||
		    (op->g[i].has_key && store_state_save(op->r, &op->g[i].state) != 0))
			return -1;
	}
	return 0;
}

static void
release_done(void *arg, int status)
{
	struct release_op *op = arg;

	if (status == 0)
		log_debug("%zu grants expired unused: their reservations went back", op->n);
	else {
		op->r->d->errors++;
		log_warnx(
		    "%zu expired grants not recorded as released; the next tick retries", op->n);
		release_undo(op->r, op, router_now_ms());
	}
	free(op);
}

void
release_expired(struct router *r, int64_t now)
{
	struct release_op *op;
	struct hold *x;
	size_t n = 0;

	for (x = r->holds.first; x != NULL && n < RELEASE_MAX && x->expires * 1000 <= now;
	     x = x->next)
		n++;
	if (n == 0 || (op = calloc(1, sizeof(*op) + n * sizeof(op->g[0]))) == NULL)
		return;
	op->r = r;
	while (op->n < n)
		release_one(r, op, r->holds.first, now);
	/* Each key's state after all of this batch's returns: whichever copy is saved last is right. */
	for (size_t i = 0; i < n; i++) {
		const struct lkey *k = pool_find(&r->pool, op->g[i].key_id);

		if ((op->g[i].has_key = k != NULL))
			store_state_of(k, &op->g[i].state);
	}
	if (dbq_push(r->q, release_apply, release_done, op) != 0) {
		release_undo(r, op, now);
		free(op);
	}
}
