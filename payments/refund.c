/*
 * refund.c — money taken for a request that was never served goes back.
 *
 * A Stripe credential is charged when it is verified (the PaymentIntent
 * succeeds before the upstream is called). If every upstream attempt then
 * fails, the reservation is released and the buyer may present the same
 * credential again — Stripe's idempotency key makes that free — until the
 * challenge expires. A buyer who never comes back has paid for nothing. So
 * once such a payment is released for good (its challenge expired more than
 * REFUND_GRACE_S ago, after which no VERIFY can reserve it again, and
 * pay_store_reserve refuses one that has a refund row in any case), the
 * sweep records a refund as due in the same transaction that finds it, and
 * then asks Stripe: POST /v1/refunds {payment_intent} with Idempotency-Key
 * "refund_<PaymentIntent id>", so a crash or a retry never refunds twice.
 * Stripe's answer (the refund id, or "already refunded") marks it done; a
 * transport failure leaves it due for the next sweep; a refusal counts a
 * try, and after REFUND_MAX_TRIES it is left as failed for an operator,
 * with an error in the log.
 *
 * Lightning and tempo payments cannot be sent back automatically (neither
 * names a place to send money to); their released, expired payments stay
 * visible in payments.db for an operator. The ledger is not involved: a
 * released payment's pending transfer was voided, so the books never
 * counted this money as earned.
 *
 * Security stance: only the PaymentIntent id and amounts travel or are
 * logged; the secret key is in a header built in stripe.c and wiped.
 */
#include "payments/payments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"
#include "common/timefmt.h"

/*
 * Past a challenge's expiry, a margin before it is refunded. No VERIFY
 * passes its checks after the expiry, and one that passed just before
 * reserves in the same writer the sweep uses: whichever runs first wins
 * (a reserved payment is not refunded; a refunded one cannot be reserved).
 * The margin only keeps the two apart in time as well.
 */
#define REFUND_GRACE_S 5
#define REFUND_MAX_TRIES 10
#define REFUND_BATCH 16

struct refund_op {
	struct payments *s;
	struct pay_refund_row row;
	int outcome; /* 1 done, 0 refused (a try), -1 not asked or no answer */
	char refund_id[96];
};

int
pay_refunds_queue(sqlite3 *db, int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT OR IGNORE INTO refunds (payment_id, method, reference, amount, state, created,"
	    " updated) SELECT id, method, reference, amount, 'due', ?1, ?1 FROM payments"
	    " WHERE method = 'stripe' AND state = 'released' AND reference IS NOT NULL"
	    " AND expires < ?2");

	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, now - REFUND_GRACE_S);
	return pay_db_step(db, st);
}

int
pay_refunds_due(sqlite3 *db, struct pay_refund_row *rows, int max)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT payment_id, reference, amount FROM refunds WHERE state = 'due'"
	    " ORDER BY created LIMIT ?");
	int rc = SQLITE_DONE, n = 0;

	sqlite3_bind_int(st, 1, max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(st, 0), *ref = sqlite3_column_text(st, 1);

		memset(&rows[n], 0, sizeof(rows[n]));
		snprintf(rows[n].payment_id, sizeof(rows[n].payment_id), "%s",
		    id != NULL ? (const char *)id : "");
		snprintf(rows[n].reference, sizeof(rows[n].reference), "%s",
		    ref != NULL ? (const char *)ref : "");
		rows[n].amount = sqlite3_column_int64(st, 2);
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		log_warnx("%s", sqlite3_errmsg(db));
		n = -1;
	}
	sqlite3_reset(st);
	return n;
}

/* Record what Stripe said: ?1 the refund id (done) or the try limit (refused), ?2 now, ?3 id. */
static int
refund_apply(sqlite3 *db, void *arg)
{
	struct refund_op *op = arg;
	sqlite3_stmt *st;

	if (op->outcome == 1) {
		st = db_stmt(db, "UPDATE refunds SET state = 'done', refund_id = ?1, updated = ?2"
				 " WHERE payment_id = ?3 AND state = 'due'");
		sqlite3_bind_text(st, 1, op->refund_id, -1, SQLITE_STATIC);
	} else {
		st = db_stmt(db,
		    "UPDATE refunds SET tries = tries + 1, updated = ?2,"
		    " state = CASE WHEN tries + 1 >= ?1 THEN 'failed' ELSE state END"
		    " WHERE payment_id = ?3 AND state = 'due'");
		sqlite3_bind_int(st, 1, REFUND_MAX_TRIES);
	}
	sqlite3_bind_int64(st, 2, time_now_ms() / 1000);
	sqlite3_bind_text(st, 3, op->row.payment_id, -1, SQLITE_STATIC);
	return pay_db_step(db, st);
}

static void
refund_written(void *arg, int status)
{
	struct refund_op *op = arg;

	if (status != 0)
		log_warnx("payment %s: cannot record its refund; the next sweep asks again (Stripe "
			  "answers the same refund)",
		    op->row.payment_id);
	else if (op->outcome == 1)
		log_info("payment %s: refunded (%s)", op->row.payment_id, op->refund_id);
	op->s->refunds_open--;
	free(op);
}

static void
refund_on_answer(void *arg, int outcome, const char *refund_id)
{
	struct refund_op *op = arg;

	op->outcome = outcome;
	if (refund_id != NULL)
		snprintf(op->refund_id, sizeof(op->refund_id), "%s", refund_id);
	if (outcome == 0)
		log_err("payment %s: Stripe refused to refund %s; it is retried, then left for an "
			"operator",
		    op->row.payment_id, op->row.reference);
	if (outcome < 0 || op->s->stopping ||
	    pay_write(op->s, refund_apply, refund_written, op) != 0) {
		op->s->refunds_open--;
		free(op);
	}
}

void
pay_refunds_send(struct payments *s)
{
	struct pay_refund_row rows[REFUND_BATCH];
	struct refund_op *op;
	int n;

	/* One batch at a time; what fails now is still due at the next sweep. */
	if (s->stopping || s->refunds_open > 0 || !pay_stripe_enabled(&s->keys) ||
	    (n = pay_refunds_due(s->db, rows, REFUND_BATCH)) <= 0)
		return;
	for (int i = 0; i < n; i++) {
		if ((op = calloc(1, sizeof(*op))) == NULL)
			return;
		op->s = s;
		op->row = rows[i];
		s->refunds_open++;
		if (pay_stripe_refund(s, &op->row, refund_on_answer, op) != 0) {
			s->refunds_open--;
			free(op);
		}
	}
}
