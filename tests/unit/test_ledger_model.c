/*
 * test_ledger_model.c — the whole account model through journal.c,
 * dispute.c, payout.c and earnings.c on real files: a capture with the
 * premium surcharge; disputes opened, returned and refunded, with their
 * retries, conflicts and refusals; earnings pending within the hold period
 * and available after it; payout batches (threshold, one linked group, the
 * batch id as idempotency key, reversal by a new transfer, a seller in debt
 * after a dispute); and the schema's rules for linked groups. After each,
 * verify_books must find the books intact: the model and the auditor's
 * check agree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>

#include "tests/unit/ledger_fixture.h"

#define T0 INT64_C(1760000000000) /* unix ms: every write's time unless a test says */

static void
books_intact(struct fx *fx)
{
	struct verify_result v;

	if (verify_books(fx->db, 0, NULL, &v) != 0)
		fail_msg("verify: seq %" PRId64 ": %s", v.broken_seq, v.why);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_balance_check"), 0);
	assert_int_equal(query_int(fx->db, "SELECT sum(balance) FROM v_balances"), 0);
}

static enum journal_status
post(struct fx *fx, const char *id, const char *seller, int64_t share, int64_t premium)
{
	return lf_apply(fx, LF_POST, &(struct lf_args){id, seller, NULL, share, premium}, T0, NULL);
}

static void
test_premium(void **state)
{
	struct fx *fx = *state;

	/* 0.001 USD to the seller, 10 % fee, the premium pool's 25 % on top: 1375 µUSD. */
	assert_int_equal(lf_apply(fx, LF_PEND, &(struct lf_args){"p1", "ref1", "test", 1375, 0}, T0,
			     NULL),
	    JOURNAL_DONE);
	assert_int_equal(post(fx, "p1", "s1", 1001, 375), JOURNAL_REFUSED);
	assert_int_equal(post(fx, "p1", "s1", 1000, 275), JOURNAL_DONE);
	assert_int_equal(post(fx, "p1", "s1", 1000, 275), JOURNAL_SAME);
	assert_int_equal(post(fx, "p1", "s1", 1000, 0), JOURNAL_REFUSED);
	assert_int_equal(post(fx, "p1", "s1", 1000, 274), JOURNAL_REFUSED);
	assert_int_equal(balance(fx->db, "seller:s1"), 1000);
	assert_int_equal(balance(fx->db, "platform:fees"), 100);
	assert_int_equal(balance(fx->db, "platform:premium"), 275);
	assert_int_equal(balance(fx->db, "escrow"), 0);
	/* No fee at all: seller and premium only; legs keep their order. */
	lf_apply(fx, LF_PEND, &(struct lf_args){"p2", "ref2", "test", 500, 0}, T0, NULL);
	assert_int_equal(post(fx, "p2", "s2", 400, 100), JOURNAL_DONE);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM transfers WHERE id = 'p2:post' AND"
					   " legs = '[[\"escrow\",-500],[\"seller:s2\",400],"
					   "[\"platform:premium\",100]]'"),
	    1);
	/* A payment is captured once, whatever its attempt. */
	lf_apply(fx, LF_PEND, &(struct lf_args){"p3", "ref1", "test", 1375, 0}, T0, NULL);
	assert_int_equal(post(fx, "p3", "s1", 1000, 0), JOURNAL_REFUSED);
	books_intact(fx);
}

static enum journal_status
open_dispute(struct fx *fx, const char *id, const char *ref, struct ipc_dispute_rep *rep)
{
	return lf_apply(fx, LF_OPEN, &(struct lf_args){id, ref, NULL, 0, 0}, T0 + 1000, rep);
}

static enum journal_status
resolve(struct fx *fx, const char *id, int outcome, struct ipc_dispute_rep *rep)
{
	return lf_apply(fx, LF_RESOLVE, &(struct lf_args){id, NULL, NULL, outcome, 0}, T0 + 2000,
	    rep);
}

static void
test_disputes(void **state)
{
	struct fx *fx = *state;
	struct ipc_dispute_rep rep;

	lf_paid(fx, "a", "s1", 1100, 1000, T0);
	lf_paid(fx, "b", "s1", 2200, 2000, T0);
	lf_paid(fx, "c", "s2", 300, 0, T0); /* all of it the platform's */
	lf_apply(fx, LF_PEND, &(struct lf_args){"v", "ref-v", "test", 50, 0}, T0, NULL);
	lf_apply(fx, LF_VOID, &(struct lf_args){"v", NULL, NULL, 0, 0}, T0, NULL);

	assert_int_equal(open_dispute(fx, "dsp_a", "ref-a", &rep), JOURNAL_DONE);
	assert_string_equal(rep.dispute_id, "dsp_a");
	assert_string_equal(rep.seller_id, "s1");
	assert_string_equal(rep.pay_method, "test");
	assert_int_equal(rep.amount, 1100);
	assert_int_equal(rep.seller_amount, 1000);
	assert_int_equal(rep.state, DISPUTE_OPEN);
	assert_int_equal(rep.opened, T0 + 1000);
	assert_int_equal(balance(fx->db, "seller:s1"), 2000);
	assert_int_equal(balance(fx->db, "reserve:disputes"), 1100);
	assert_int_equal(balance(fx->db, "platform:refunds"), -100);
	/* Retries and conflicts. */
	assert_int_equal(open_dispute(fx, "dsp_a", "ref-a", &rep), JOURNAL_SAME);
	assert_int_equal(rep.amount, 1100);
	assert_int_equal(open_dispute(fx, "dsp_a2", "ref-a", &rep), JOURNAL_REFUSED);
	assert_int_equal(open_dispute(fx, "dsp_a", "ref-b", &rep), JOURNAL_REFUSED);
	assert_int_equal(open_dispute(fx, "dsp_x", "ref-nope", &rep), JOURNAL_REFUSED);
	assert_int_equal(open_dispute(fx, "dsp_v", "ref-v", &rep), JOURNAL_REFUSED);
	assert_int_equal(open_dispute(fx, "a", "ref-b", &rep), JOURNAL_REFUSED);
	assert_int_equal(open_dispute(fx, "dsp_b:x", "ref-b", &rep), JOURNAL_REFUSED);
	assert_int_equal(resolve(fx, "dsp_nope", DISPUTE_FOR_BUYER, &rep), JOURNAL_REFUSED);
	assert_int_equal(dispute_get(fx->db, "dsp_nope", &rep), 0);

	/* Refund: the buyer's clearing account gets the whole payment back. */
	assert_int_equal(resolve(fx, "dsp_a", DISPUTE_FOR_BUYER, &rep), JOURNAL_DONE);
	assert_int_equal(rep.state, DISPUTE_REFUNDED);
	assert_int_equal(rep.resolved, T0 + 2000);
	assert_int_equal(resolve(fx, "dsp_a", DISPUTE_FOR_BUYER, &rep), JOURNAL_SAME);
	assert_int_equal(resolve(fx, "dsp_a", DISPUTE_FOR_SELLER, &rep), JOURNAL_REFUSED);
	assert_int_equal(balance(fx->db, "reserve:disputes"), 0);
	assert_int_equal(balance(fx->db, "clearing:test"), -(2200 + 300));
	assert_int_equal(balance(fx->db, "platform:refunds"), -100);
	assert_int_equal(balance(fx->db, "platform:fees"), 100 + 200 + 300);

	/* Return: both parts back where they came from. */
	assert_int_equal(open_dispute(fx, "dsp_b", "ref-b", &rep), JOURNAL_DONE);
	assert_int_equal(balance(fx->db, "seller:s1"), 0);
	assert_int_equal(resolve(fx, "dsp_b", DISPUTE_FOR_SELLER, &rep), JOURNAL_DONE);
	assert_int_equal(rep.state, DISPUTE_RETURNED);
	assert_int_equal(balance(fx->db, "seller:s1"), 2000);
	assert_int_equal(balance(fx->db, "platform:refunds"), -100);

	/* A payment with no seller share: the platform's part alone is held. */
	assert_int_equal(open_dispute(fx, "dsp_c", "ref-c", &rep), JOURNAL_DONE);
	assert_int_equal(rep.seller_amount, 0);
	assert_int_equal(balance(fx->db, "platform:refunds"), -400);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_disputes WHERE state = 'open'"), 1);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_transfers WHERE kind = 'dispute'"
					   " AND state IN ('refunded', 'returned')"),
	    2);
	books_intact(fx);
}

static struct ipc_earnings_rep
earnings(struct fx *fx, const char *seller, int64_t hold_s, int64_t now)
{
	struct ipc_earnings_rep e;

	assert_int_equal(earnings_get(fx->db, seller, hold_s, now, &e), 0);
	return e;
}

static void
test_earnings(void **state)
{
	struct fx *fx = *state;
	struct ipc_dispute_rep rep;
	struct ipc_earnings_rep e;

	lf_paid(fx, "old", "s1", 1100, 1000, T0);
	lf_paid(fx, "new", "s1", 2200, 2000, T0 + 50000);
	lf_paid(fx, "new2", "s1", 330, 300, T0 + 60000);
	/* At T0 + 100 s with a 60 s hold: "old" is available, "new" pending, "new2" pending. */
	e = earnings(fx, "s1", 60, T0 + 100000);
	assert_int_equal(e.earned, 3300);
	assert_int_equal(e.pending, 2300);
	assert_int_equal(e.available, 1000);
	assert_int_equal(e.in_dispute, 0);
	assert_int_equal(e.paid_out, 0);
	assert_int_equal(e.hold_s, 60);
	/* A dispute on a pending capture takes it out of pending and out of the balance. */
	assert_int_equal(open_dispute(fx, "dsp_n", "ref-new", &rep), JOURNAL_DONE);
	e = earnings(fx, "s1", 60, T0 + 100000);
	assert_int_equal(e.pending, 300);
	assert_int_equal(e.available, 1000);
	assert_int_equal(e.in_dispute, 2000);
	/* Returned: pending again. */
	assert_int_equal(resolve(fx, "dsp_n", DISPUTE_FOR_SELLER, &rep), JOURNAL_DONE);
	e = earnings(fx, "s1", 60, T0 + 100000);
	assert_int_equal(e.pending, 2300);
	assert_int_equal(e.in_dispute, 0);
	/* Later, all of it is available; an unknown seller has nothing. */
	e = earnings(fx, "s1", 60, T0 + 200000);
	assert_int_equal(e.available, 3300);
	assert_int_equal(e.pending, 0);
	e = earnings(fx, "nobody", 60, T0);
	assert_int_equal(e.earned + e.available + e.pending, 0);
	assert_string_equal(e.seller_id, "nobody");
	books_intact(fx);
}

static void
batch_init(struct payout_batch *b, const char *id, int64_t threshold)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->batch, sizeof(b->batch), "%s", id);
	snprintf(b->method, sizeof(b->method), "bank");
	b->threshold = threshold;
	b->hold_s = 60;
}

static void
test_payouts(void **state)
{
	struct fx *fx = *state;
	struct payout_batch b;
	struct ipc_dispute_rep rep;
	struct journal_result r;
	int64_t later = T0 + 3600000;

	lf_paid(fx, "a", "s1", 11000, 10000, T0);
	lf_paid(fx, "b", "s2", 22000, 20000, T0);
	lf_paid(fx, "c", "s3", 550, 500, T0);	       /* under the threshold */
	lf_paid(fx, "d", "s1", 1100, 1000, later - 1); /* still pending at "later" */
	batch_init(&b, "2025-1", 5000);
	assert_int_equal(lf_payout(fx, &b, later), JOURNAL_DONE);
	assert_int_equal(b.count, 2);
	assert_int_equal(b.total, 30000);
	assert_int_equal(balance(fx->db, "seller:s1"), 1000);
	assert_int_equal(balance(fx->db, "seller:s2"), 0);
	assert_int_equal(balance(fx->db, "seller:s3"), 500);
	assert_int_equal(balance(fx->db, "payouts:bank"), 30000);
	/* One linked group of two. */
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM transfers WHERE link = 'po/2025-1'"
					   " AND link_len = 2 AND kind = 'payout'"),
	    2);
	/* The batch id is the idempotency key: again, nothing new, the same figures. */
	batch_init(&b, "2025-1", 1);
	assert_int_equal(lf_payout(fx, &b, later + 999999), JOURNAL_SAME);
	assert_int_equal(b.count, 2);
	assert_int_equal(b.total, 30000);
	snprintf(b.method, sizeof(b.method), "card");
	assert_int_equal(lf_payout(fx, &b, later), JOURNAL_REFUSED);
	batch_init(&b, "bad batch", 1);
	assert_int_equal(lf_payout(fx, &b, later), JOURNAL_REFUSED);
	batch_init(&b, "2025-x", 1);
	snprintf(b.method, sizeof(b.method), "Bank");
	assert_int_equal(lf_payout(fx, &b, later), JOURNAL_REFUSED);
	/* Nothing due: nothing recorded. */
	batch_init(&b, "2025-2", 5000);
	assert_int_equal(lf_payout(fx, &b, later), JOURNAL_DONE);
	assert_int_equal(b.count, 0);

	/* Reversal: a new transfer, once. */
	assert_int_equal(lf_apply(fx, LF_REVERSE, &(struct lf_args){"po/2025-1/s2", NULL, NULL, 0, 0},
			     later, NULL),
	    JOURNAL_DONE);
	assert_int_equal(lf_apply(fx, LF_REVERSE, &(struct lf_args){"po/2025-1/s2", NULL, NULL, 0, 0},
			     later, NULL),
	    JOURNAL_SAME);
	assert_int_equal(lf_apply(fx, LF_REVERSE, &(struct lf_args){"po/2025-1/s9", NULL, NULL, 0, 0},
			     later, NULL),
	    JOURNAL_REFUSED);
	assert_int_equal(balance(fx->db, "seller:s2"), 20000);
	assert_int_equal(earnings(fx, "s2", 60, later).paid_out, 0);
	assert_int_equal(earnings(fx, "s1", 60, later).paid_out, 10000);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_payouts WHERE state = 'reversed'"), 1);

	/* A dispute on a capture already paid out leaves the seller owing it. */
	assert_int_equal(open_dispute(fx, "dsp_a", "ref-a", &rep), JOURNAL_DONE);
	assert_int_equal(earnings(fx, "s1", 60, later + 120000).available, 1000 - 10000);
	batch_init(&b, "2025-3", 1);
	assert_int_equal(lf_payout(fx, &b, later + 120000), JOURNAL_DONE);
	assert_int_equal(b.count, 2); /* s2 (reversed) and s3, not s1 */
	assert_int_equal(b.total, 20500);
	assert_int_equal(query_int(fx->db, "SELECT link_len FROM transfers WHERE id = 'po/2025-3/s3'"),
	    2);
	/* Reversal of a reversal is not a thing. */
	assert_int_equal(payout_reverse(fx->j, "rv/2025-1/s2", later, &r), 0);
	assert_int_equal(r.status, JOURNAL_REFUSED);
	books_intact(fx);
}

/* The schema keeps linked groups consecutive and whole, whoever writes them. */
static void
test_linked_groups(void **state)
{
	struct fx *fx = *state;
	struct ledger_xfer x;
	struct journal_result r;
	int rc;

	lf_paid(fx, "a", "s1", 1000, 1000, T0);
	lf_paid(fx, "b", "s2", 1000, 1000, T0);
	lf_paid(fx, "c", "s3", 1000, 1000, T0);
	assert_int_equal(journal_account(fx->j, "payouts:bank", "payouts", T0), 0);
	/* Two of a group of three, then something else: refused. */
	for (int i = 1; i <= 4; i++) {
		journal_result_init(&r);
		journal_xfer_init(&x, "payout", T0);
		snprintf(x.id, sizeof(x.id), "po/g/s%d", i <= 2 ? i : 3);
		snprintf(x.payment_ref, sizeof(x.payment_ref), "g");
		snprintf(x.debit, sizeof(x.debit), "seller:s%d", i <= 2 ? i : 3);
		snprintf(x.credit, sizeof(x.credit), "payouts:bank");
		x.amount = 1000;
		snprintf(x.legs, sizeof(x.legs), "[[\"%s\",-1000],[\"payouts:bank\",1000]]", x.debit);
		if (i <= 3) {
			snprintf(x.link, sizeof(x.link), "po/g");
			x.link_len = i == 3 ? 2 : 3; /* the third claims another length */
		}
		rc = journal_insert(fx->j, &x);
		assert_int_equal(rc, i <= 2 ? 0 : -1);
		if (rc != 0)
			assert_non_null(strstr(sqlite3_errmsg(fx->db), i == 3 ? "linked group is" :
									    "incomplete"));
	}
	/* verify names the group, at its last row. */
	{
		struct verify_result v;

		assert_int_equal(verify_books(fx->db, 0, NULL, &v), 1);
		assert_int_equal(v.broken_seq, 8);
		assert_non_null(strstr(v.why, "incomplete"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    LF_TEST(test_premium),
	    LF_TEST(test_disputes),
	    LF_TEST(test_earnings),
	    LF_TEST(test_payouts),
	    LF_TEST(test_linked_groups),
	};

	return LF_RUN(tests);
}
