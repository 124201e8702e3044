/*
 * outcome.c — OUTCOME: what happened with a grant, as the vault saw it.
 *
 * The router learns three things from it, at once in memory and durably in
 * the same batch as the metadata row:
 *
 *   the score      success, error or nothing (score.c's score_classify);
 *   the key's fate 401/403 (refused) and 402 (credit exhausted) quarantine the
 *                  key, and so does a 4xx whose body the vault read as the
 *                  key's credit or quota being gone (the OUTCOME's
 *                  error_class: OpenAI's 429 insufficient_quota): out of the
 *                  pool until its seller updates or rotates it (a
 *                  LISTING_PUT with status active), never probed with a
 *                  buyer's money, the reason on the listing, and a
 *                  'key.quarantined' row in seller_events for platform-api
 *                  to deliver to the seller; any other 429 cools it down for
 *                  the upstream's Retry-After (capped; retry_after_default_s
 *                  when there is none);
 *   the limits     reserved at ASSIGN and held by the grant (hold.c); the
 *                  OUTCOME settles that once: a call that never reached the
 *                  upstream (refused connection, status 0) gets it back, any
 *                  other keeps it. A grant that expired before its OUTCOME
 *                  came has had its reservation returned (release.c); if
 *                  its call reached the upstream anyway (a stream that
 *                  outlived the grant), the reservation is charged again.
 *
 * Any failure also bumps the key's fail epoch, which ends conversation
 * affinity to it. The metadata row (requests) and its hour's aggregate
 * (requests_hourly) hold provider, route, method, time, latency, status,
 * amount, region, pool and key id: never a body, a header or an address.
 *
 * Security stance: only the vault may send OUTCOME (the peer table), and
 * it describes a call it made with a grant this router issued; the amount is
 * taken from that grant's assignment row, not from the message.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct outcome_op {
	struct router *r;
	struct ipc_req req;
	struct ipc_outcome o;
	int64_t now_s;
	enum outcome_class cls;
	char region[IPC_REGION_MAX + 1]; /* of the key */
	char seller_id[IPC_ID_MAX + 1];
	int have_key;
	struct state_row state;
	int quarantined; /* this outcome quarantined the key */
	char reason[128];
	int hold;     /* the assignment row's held to settle: 1, 2 (late), 0 (none) */
	int recharge; /* the row was returned at expiry: charge it again, as read back */
	char late_key[IPC_KEY_ID_MAX + 1];
	int64_t late_price;
	int64_t late_taken; /* unix ms */
};

/*
 * Why a key was quarantined, for the seller's event and the listing: a
 * word first ("auth", "quota"), then what happened.
 */
static void
quarantine_reason(const struct ipc_outcome *o, enum outcome_class cls, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s: the upstream answered %u to %s %.40s (%s)",
	    cls == OC_QUOTA ? "quota" : "auth", (unsigned)o->status, o->route.method,
	    o->route.path, cls == OC_QUOTA ? "credit or quota exhausted" : "the key was refused");
}

/*
 * The grant's reservation, on the key the grant named: settled here if it
 * still holds one (given back when the call never reached the upstream); if
 * it expired first and the call did reach the upstream, the batch looks for
 * its returned row. Any other OUTCOME (a repeated one) changes no limit.
 */
static void
outcome_settle(struct router *r, struct outcome_op *op, int64_t now)
{
	struct hold *x = holds_find(&r->holds, op->o.grant_id);
	int reached = !(op->o.status == 0 && op->o.failure == FAIL_CONNECT);
	struct lkey *k;

	if (x == NULL) {
		op->hold = reached ? 2 : 0;
		return;
	}
	op->hold = 1;
	if (!reached && (k = pool_find(&r->pool, x->key_id)) != NULL) {
		limits_give(&k->lim, &k->caps, x->price, x->taken, now);
		pool_place(&r->pool, k, now);
	}
	holds_del(&r->holds, x);
}

static int64_t
cool_down_ms(const struct router *r, uint32_t retry_after_s)
{
	int64_t s = retry_after_s > 0 ? retry_after_s : r->cfg->retry_after_default_s;

	return (s < r->cfg->retry_after_max_s ? s : r->cfg->retry_after_max_s) * 1000;
}

/* Apply the outcome to the key in memory; op gets what the batch must write. */
static void
outcome_learn(struct router *r, struct lkey *k, struct outcome_op *op, int64_t now)
{
	const struct ipc_outcome *o = &op->o;

	score_record(&k->score, score_event_of(op->cls), now, r->pool.par.half_life_ms);
	if (op->cls != OC_OK && op->cls != OC_NEUTRAL)
		k->fail_epoch++;
	if (op->cls == OC_RATE && now + cool_down_ms(r, o->retry_after_s) > k->cool_until)
		k->cool_until = now + cool_down_ms(r, o->retry_after_s);
	if ((op->cls == OC_AUTH || op->cls == OC_QUOTA) && k->status != LS_QUARANTINED &&
	    k->status != LS_REMOVED) {
		k->status = LS_QUARANTINED;
		quarantine_reason(o, op->cls, k->reason, sizeof(k->reason));
		snprintf(op->reason, sizeof(op->reason), "%s", k->reason);
		k->updated = now / 1000;
		op->quarantined = 1;
		r->quarantined++;
		log_warnx("key %s of seller %s quarantined: %s", k->key_id, k->seller_id, k->reason);
	}
	pool_place(&r->pool, k, now);
	snprintf(op->region, sizeof(op->region), "%s", k->region);
	snprintf(op->seller_id, sizeof(op->seller_id), "%s", k->seller_id);
	store_state_of(k, &op->state);
	op->have_key = 1;
}

static int
step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, const char *id)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		log_warnx("%s of grant %s: %s", what, id, sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
metadata_add(sqlite3 *db, struct outcome_op *op)
{
	sqlite3_stmt *st = store_stmt(op->r, ST_REQUEST_ADD);
	const struct ipc_outcome *o = &op->o;

	sqlite3_bind_int64(st, 1, op->now_s);
	sqlite3_bind_text(st, 2, o->route.provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, o->route.method, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, o->route.path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, o->status);
	sqlite3_bind_int64(st, 6, o->latency_ms);
	sqlite3_bind_int(st, 7, o->failure);
	sqlite3_bind_text(st, 8, o->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, o->grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, op->region, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 11, o->route.pool);
	return step_done(db, st, "metadata", o->grant_id);
}

static int
hourly_add(sqlite3 *db, struct outcome_op *op)
{
	sqlite3_stmt *st = store_stmt(op->r, ST_HOURLY_ADD);
	const struct ipc_outcome *o = &op->o;
	int ok = op->cls == OC_OK, failed = op->cls != OC_OK && op->cls != OC_NEUTRAL;

	sqlite3_bind_int64(st, 1, op->now_s - op->now_s % 3600);
	sqlite3_bind_text(st, 2, o->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, o->route.provider, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, ok);
	sqlite3_bind_int(st, 5, failed);
	sqlite3_bind_int64(st, 6, ok ? o->latency_ms : 0);
	sqlite3_bind_int(st, 7, strcmp(op->region, "eu") == 0);
	sqlite3_bind_int(st, 8, o->route.pool == POOL_PREMIUM);
	sqlite3_bind_text(st, 9, o->grant_id, -1, SQLITE_STATIC);
	return step_done(db, st, "hourly aggregate", o->grant_id);
}

/* The listing's new status and the seller's event, in the same commit. */
static int
quarantine_write(sqlite3 *db, struct outcome_op *op)
{
	sqlite3_stmt *st = store_stmt(op->r, ST_QUARANTINE);

	sqlite3_bind_text(st, 1, op->o.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, op->now_s);
	if (step_done(db, st, "quarantine", op->o.grant_id) != 0)
		return -1;
	st = store_stmt(op->r, ST_EVENT_ADD);
	sqlite3_bind_text(st, 1, op->seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->o.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, "key.quarantined", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, op->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, op->now_s);
	return step_done(db, st, "seller event", op->o.grant_id);
}

/* The assignment row no longer holds a reservation; a returned one's terms come back. */
static int
hold_end(sqlite3 *db, struct outcome_op *op)
{
	sqlite3_stmt *st = store_stmt(op->r, ST_HOLD_END);
	int rc;

	sqlite3_bind_text(st, 1, op->o.grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, op->hold);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *key = sqlite3_column_text(st, 2);

		op->recharge = op->hold == 2 && key != NULL;
		snprintf(op->late_key, sizeof(op->late_key), "%s",
		    key != NULL ? (const char *)key : "");
		op->late_price = sqlite3_column_int64(st, 0);
		op->late_taken = sqlite3_column_int64(st, 1) * 1000;
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		log_warnx("reservation of grant %s: %s", op->o.grant_id, sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
outcome_apply(sqlite3 *db, void *arg)
{
	struct outcome_op *op = arg;

	if (metadata_add(db, op) != 0 || hourly_add(db, op) != 0 ||
	    (op->hold != 0 && hold_end(db, op) != 0))
		return -1;
	if (op->have_key && store_state_save(op->r, &op->state) != 0)
		return -1;
	return op->quarantined ? quarantine_write(db, op) : 0;
}

/* A call outlived its grant and reached the upstream: its returned reservation is taken again. */
static void
outcome_recharge(struct router *r, const struct outcome_op *op)
{
	struct lkey *k = pool_find(&r->pool, op->late_key);
	int64_t now = router_now_ms();

	if (k == NULL)
		return;
	limits_charge(&k->lim, &k->caps, op->late_price, op->late_taken, now);
	pool_place(&r->pool, k, now);
	log_info("grant %s: the call outlived its grant; its reservation is charged again",
	    op->o.grant_id);
	if (store_state_push(r, k) != 0)
		log_warnx("out of memory: key %s's state is saved with its next change", k->key_id);
}

static void
outcome_done(void *arg, int status)
{
	struct outcome_op *op = arg;
	struct router *r = op->r;

	if (status == 0 && op->recharge)
		outcome_recharge(r, op);
	if (status == 0)
		ipc_reply(r->d->ipc, &op->req, IPC_ACK, NULL);
	else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, &op->req, IPC_ERR_INTERNAL, "outcome not recorded");
	}
	free(op);
}

void
outcome_record(struct router *r, const struct ipc_req *req, const struct ipc_outcome *m)
{
	struct outcome_op *op = calloc(1, sizeof(*op));
	int64_t now = router_now_ms();
	struct lkey *k;

	if (op == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->r = r;
	op->req = *req;
	op->o = *m;
	op->now_s = now / 1000;
	op->cls = score_classify(m->status, m->failure, m->error_class);
	outcome_settle(r, op, now);
	if ((k = pool_find(&r->pool, m->key_id)) != NULL)
		outcome_learn(r, k, op, now);
	if (dbq_push(r->q, outcome_apply, outcome_done, op) != 0) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		free(op);
	}
}
