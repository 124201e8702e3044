/*
 * sweep.c — nothing stays reserved forever.
 *
 * Every sweep_interval_s, reservations the edge has not settled for
 * reservation_timeout_s are released (the edge crashed, or lost its
 * connection before SETTLE), each owing the ledger a void of its pending
 * transfer; then whatever the outbox still holds is sent to the ledger.
 * The same write enforces retention: expired lightning invoices and
 * Idempotency-Key records go, and buyer spend older than
 * buyer_retention_days (90 by default). Stripe charges for requests never
 * served are found and refunded here too (refund.c).
 *
 * A reservation released here can be reserved again by presenting the same
 * credential until the challenge expires; a SETTLE that arrives after the
 * sweep finds the payment released and is refused, so reservation_timeout_s
 * must stay well above the longest upstream call (default 10 minutes).
 *
 * Security stance: the sweep only ever moves reserved → released, never
 * touches a captured payment (the database refuses that too), and works in
 * bounded batches so one sweep cannot stall the loop.
 */
#include "payments/payments.h"

#include <stdlib.h>

#include "common/log.h"
#include "common/timefmt.h"

#define SWEEP_BATCH 64

struct sweep_op {
	struct payments *s;
	int released;
};

static int
sweep_apply(sqlite3 *db, void *arg)
{
	struct sweep_op *op = arg;
	int64_t now = time_now_ms() / 1000;

	if (pay_store_release_stale(db, now - op->s->cfg->reservation_timeout_s, now, SWEEP_BATCH,
		&op->released) != 0 ||
	    pay_refunds_queue(db, now) != 0)
		return -1;
	return pay_extras_expire(db, now, op->s->cfg->buyer_retention_days);
}

static void
sweep_done(void *arg, int status)
{
	struct sweep_op *op = arg;

	if (status != 0)
		log_warnx("releasing stale reservations failed; next sweep retries");
	else if (op->released > 0)
		log_info("released %d reservation(s) never settled", op->released);
	pay_outbox_flush(op->s);
	pay_refunds_send(op->s);
	free(op);
}

static void
sweep_on_timer(uv_timer_t *t)
{
	struct payments *s = t->data;
	struct sweep_op *op;

	if (s->stopping || (op = calloc(1, sizeof(*op))) == NULL)
		return;
	op->s = s;
	if (pay_write(s, sweep_apply, sweep_done, op) != 0)
		free(op);
}

void
pay_sweep_start(struct payments *s)
{
	uint64_t ms = (uint64_t)s->cfg->sweep_interval_s * 1000;

	uv_timer_init(s->d->loop, &s->sweep);
	s->sweep.data = s;
	uv_timer_start(&s->sweep, sweep_on_timer, ms, ms);
}

void
pay_sweep_stop(struct payments *s)
{
	uv_timer_stop(&s->sweep);
	uv_close((uv_handle_t *)&s->sweep, NULL);
}
