/*
 * outcome.c — OUTCOME: what happened with a grant, as the vault saw it.
 *
 * The router learns three things from it, at once in memory and durably in
 * the same batch as the metadata row:
 *
 *   the score      success, error or nothing (score.c's score_classify);
 *   the key's fate 401/403 (refused) and 402 (credit exhausted) quarantine the
 *                  key: out of the pool until its seller updates or rotates
 *                  it (a LISTING_PUT with status active), never probed with
 *                  a buyer's money, and a 'key.quarantined' row in
 *                  seller_events for platform-api to deliver to the seller;
 *                  429 cools it down for the upstream's Retry-After (capped;
 *                  retry_after_default_s when there is none);
 *   the limits     reserved at ASSIGN; a call that never reached the upstream
 *                  (refused connection, status 0) gets its reservation back.
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
};

/* What a status says, for the seller's event and the listing's reason. */
static void
quarantine_reason(const struct ipc_outcome *o, char *buf, size_t cap)
{
	snprintf(buf, cap, "the upstream answered %u to %s %.40s (%s)", (unsigned)o->status,
	    o->route.method, o->route.path,
	    o->status == 402 ? "credit or quota exhausted" : "the key was refused");
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
		quarantine_reason(o, k->reason, sizeof(k->reason));
		snprintf(op->reason, sizeof(op->reason), "%s", k->reason);
		k->updated = now / 1000;
		op->quarantined = 1;
		r->quarantined++;
		log_warnx("key %s of seller %s quarantined: %s", k->key_id, k->seller_id, k->reason);
	}
	if (o->status == 0 && o->failure == FAIL_CONNECT)
		limits_give(&k->lim, &k->caps, k->price, now);
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

static int
outcome_apply(sqlite3 *db, void *arg)
{
	struct outcome_op *op = arg;

	if (metadata_add(db, op) != 0 || hourly_add(db, op) != 0)
		return -1;
	if (op->have_key && store_state_save(op->r, &op->state) != 0)
		return -1;
	return op->quarantined ? quarantine_write(db, op) : 0;
}

static void
outcome_done(void *arg, int status)
{
	struct outcome_op *op = arg;
	struct router *r = op->r;

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
	op->cls = score_classify(m->status, m->failure);
	if ((k = pool_find(&r->pool, m->key_id)) != NULL)
		outcome_learn(r, k, op, now);
	if (dbq_push(r->q, outcome_apply, outcome_done, op) != 0) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		free(op);
	}
}
