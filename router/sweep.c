/*
 * sweep.c — the router's periodic work, on two timers of its loop:
 *
 *   tick   (every 500 ms) keys whose cool-down, limit or bench has ended go
 *          back into the indexes, and recovering scores move up their bands
 *          (pool_tick); grants that expired unused give their reservations
 *          back (release.c);
 *   sweep  (at start, then every sweep_interval_s) the retention windows of
 *          DESIGN.md §6: request metadata rows, assignments and seller
 *          events older than raw_retention_days (30) are deleted, and hourly
 *          aggregates older than hourly_retention_days (365); conversation
 *          affinity rows past session_ttl_s, or beyond sessions_max, too.
 *
 * The aggregates are kept current by every OUTCOME (outcome.c), so deleting
 * raw rows loses no figure a year of statistics needs.
 *
 * Security stance: deletes by time only, through the same write queue as
 * everything else; nothing here reads outside input.
 */
#include "router/router.h"

#include <stdlib.h>

#include "common/db.h"
#include "common/log.h"

#define TICK_MS 500
#define SWEEP_FIRST_MS 1000

struct sweep_op {
	struct router *r;
	int64_t now_s;
};

static int
delete_before(sqlite3 *db, const char *sql, int64_t t, long long *n)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int rc;

	sqlite3_bind_int64(st, 1, t);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("retention sweep: %s", sqlite3_errmsg(db));
		return -1;
	}
	*n += sqlite3_changes(db);
	return 0;
}

int
sweep_apply(sqlite3 *db, int64_t now_s, int64_t raw_days, int64_t hourly_days)
{
	int64_t raw = now_s - raw_days * 86400, hourly = now_s - hourly_days * 86400;
	long long n = 0;

	if (delete_before(db, "DELETE FROM requests WHERE time < ?1", raw, &n) != 0 ||
	    delete_before(db, "DELETE FROM assignments WHERE created < ?1", raw, &n) != 0 ||
	    delete_before(db, "DELETE FROM seller_events WHERE created < ?1", raw, &n) != 0 ||
	    delete_before(db, "DELETE FROM requests_hourly WHERE hour < ?1", hourly, &n) != 0)
		return -1;
	if (n > 0)
		log_info("retention sweep: %lld rows past their window deleted", n);
	return 0;
}

static int
sweep_batch(sqlite3 *db, void *arg)
{
	struct sweep_op *op = arg;
	const struct router_cfg *cfg = op->r->cfg;

	if (sweep_apply(db, op->now_s, cfg->raw_retention_days, cfg->hourly_retention_days) != 0)
		return -1;
	return sessions_prune(db, op->now_s * 1000, cfg->session_ttl_s * 1000, cfg->sessions_max);
}

static void
sweep_done(void *arg, int status)
{
	if (status != 0)
		log_warnx("the retention sweep failed; it runs again later");
	free(arg);
}

static void
on_sweep(uv_timer_t *t)
{
	struct router *r = t->data;
	struct sweep_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return;
	op->r = r;
	op->now_s = router_now_ms() / 1000;
	if (dbq_push(r->q, sweep_batch, sweep_done, op) != 0)
		free(op);
}

static void
on_tick(uv_timer_t *t)
{
	struct router *r = t->data;
	int64_t now = router_now_ms();

	pool_tick(&r->pool, now);
	release_expired(r, now);
}

int
sweep_start(struct router *r)
{
	uint64_t every = (uint64_t)r->cfg->sweep_interval_s * 1000;

	if (uv_timer_init(r->d->loop, &r->tick) != 0)
		return -1;
	r->timers++;
	if (uv_timer_init(r->d->loop, &r->sweep) != 0)
		return -1;
	r->timers++;
	r->tick.data = r->sweep.data = r;
	if (uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS) != 0 ||
	    uv_timer_start(&r->sweep, on_sweep, SWEEP_FIRST_MS, every) != 0)
		return -1;
	return 0;
}

void
sweep_stop(struct router *r)
{
	if (r->timers > 0) {
		uv_timer_stop(&r->tick);
		uv_close((uv_handle_t *)&r->tick, NULL);
	}
	if (r->timers > 1) {
		uv_timer_stop(&r->sweep);
		uv_close((uv_handle_t *)&r->sweep, NULL);
	}
	r->timers = 0;
}
