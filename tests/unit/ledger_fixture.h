/*
 * ledger_fixture.h — what the ledger's unit tests share: a temporary
 * directory, a fresh ledger.db per test with its journal, reading numbers
 * back, and each write applied in its own transaction as one group-commit
 * item would be. Header-only (static inline) so each test program takes
 * what it uses; include it after cmocka.h.
 */
#ifndef CN2_TEST_LEDGER_FIXTURE_H
#define CN2_TEST_LEDGER_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/db.h"
#include "common/log.h"
#include "ledger/ledger.h"

static char lf_tmpdir[64];
static uint64_t lf_rng = 88172645463325252u; /* tests may seed it */

/* xorshift64: the same sequence for a seed everywhere. */
static inline uint64_t
lf_rnd(void)
{
	lf_rng ^= lf_rng << 13;
	lf_rng ^= lf_rng >> 7;
	lf_rng ^= lf_rng << 17;
	return lf_rng;
}

struct fx {
	char path[256];
	sqlite3 *db;
	struct journal *j;
};

static inline int
lf_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Refusals are logged as warnings; thousands of them would drown the output. */
static inline int
lf_group_setup(void **state)
{
	(void)state;
	log_set_level(LOG_LVL_ERR);
	strcpy(lf_tmpdir, "/tmp/cn2-test-ledger-XXXXXX");
	return mkdtemp(lf_tmpdir) == NULL ? -1 : 0;
}

static inline int
lf_group_teardown(void **state)
{
	(void)state;
	return nftw(lf_tmpdir, lf_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Open (creating) path with a journal on it. 0, or -1. */
static inline int
lf_open(struct fx *fx)
{
	char err[512];

	if ((fx->db = ledger_db_open(fx->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ledger_db_open: %s\n", err);
		return -1;
	}
	return (fx->j = journal_new(fx->db)) != NULL ? 0 : -1;
}

static inline void
lf_close(struct fx *fx)
{
	journal_free(fx->j);
	db_close(fx->db);
	fx->j = NULL;
	fx->db = NULL;
}

/* A test on its own fresh ledger.db, and the group that runs them. */
#define LF_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)
#define LF_RUN(tests) cmocka_run_group_tests(tests, lf_group_setup, lf_group_teardown)

/* Each test gets its own fresh ledger.db. */
static inline int
fx_setup(void **state)
{
	static int n;
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/ledger%d.db", lf_tmpdir, ++n);
	*state = fx;
	return lf_open(fx);
}

static inline int
fx_teardown(void **state)
{
	struct fx *fx = *state;

	lf_close(fx);
	free(fx);
	return 0;
}

static inline int64_t
query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int64_t v;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	return v;
}

/* The balance of one account from v_balances; absent accounts read as INT64_MIN. */
static inline int64_t
balance(sqlite3 *db, const char *account)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT balance FROM v_balances WHERE account = ?1");
	int64_t v = INT64_MIN;

	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* One write in its own transaction, as one dbq item commits. */
enum lf_op { LF_PEND, LF_POST, LF_VOID, LF_OPEN, LF_RESOLVE, LF_REVERSE };

struct lf_args {
	const char *id;	 /* xfer, dispute or payout id */
	const char *a;	 /* PEND: payment_ref; POST: seller; OPEN: payment_ref */
	const char *b;	 /* PEND: pay_method */
	int64_t amount;	 /* PEND: amount; POST: seller share; RESOLVE: outcome */
	int64_t premium; /* POST */
};

static inline int
lf_run(struct fx *fx, enum lf_op op, const struct lf_args *x, int64_t now,
    struct journal_result *r, struct ipc_dispute_rep *rep)
{
	union ipc_any m;

	memset(&m, 0, sizeof(m));
	switch (op) {
	case LF_PEND:
		snprintf(m.ledger_pending.xfer_id, sizeof(m.ledger_pending.xfer_id), "%s", x->id);
		snprintf(m.ledger_pending.payment_ref, sizeof(m.ledger_pending.payment_ref), "%s", x->a);
		snprintf(m.ledger_pending.pay_method, sizeof(m.ledger_pending.pay_method), "%s", x->b);
		m.ledger_pending.amount = x->amount;
		return journal_pending(fx->j, &m.ledger_pending, now, r);
	case LF_POST:
		snprintf(m.ledger_post_split.xfer_id, sizeof(m.ledger_post_split.xfer_id), "%s", x->id);
		snprintf(m.ledger_post_split.seller_id, sizeof(m.ledger_post_split.seller_id), "%s",
		    x->a);
		m.ledger_post_split.seller_amount = x->amount;
		m.ledger_post_split.premium_amount = x->premium;
		return journal_post_split(fx->j, &m.ledger_post_split, now, r);
	case LF_VOID:
		snprintf(m.ledger_void.xfer_id, sizeof(m.ledger_void.xfer_id), "%s", x->id);
		return journal_void(fx->j, &m.ledger_void, now, r);
	case LF_OPEN:
		snprintf(m.dispute_open.dispute_id, sizeof(m.dispute_open.dispute_id), "%s", x->id);
		snprintf(m.dispute_open.payment_ref, sizeof(m.dispute_open.payment_ref), "%s", x->a);
		return dispute_open(fx->j, &m.dispute_open, now, r, rep);
	case LF_RESOLVE:
		snprintf(m.dispute_resolve.dispute_id, sizeof(m.dispute_resolve.dispute_id), "%s",
		    x->id);
		m.dispute_resolve.outcome = (uint8_t)x->amount;
		return dispute_resolve(fx->j, &m.dispute_resolve, now, r, rep);
	default:
		return payout_reverse(fx->j, x->id, now, r);
	}
}

static inline enum journal_status
lf_apply(struct fx *fx, enum lf_op op, const struct lf_args *x, int64_t now,
    struct ipc_dispute_rep *rep)
{
	struct journal_result r;
	struct ipc_dispute_rep unused;

	assert_int_equal(db_begin(fx->db), SQLITE_OK);
	if (lf_run(fx, op, x, now, &r, rep != NULL ? rep : &unused) == 0)
		assert_int_equal(db_commit(fx->db), SQLITE_OK);
	else
		assert_int_equal(db_rollback(fx->db), SQLITE_OK);
	return r.status;
}

/* A captured payment: pending, then post. */
static inline void
lf_paid(struct fx *fx, const char *id, const char *seller, int64_t amount, int64_t share,
    int64_t now)
{
	char ref[64];

	snprintf(ref, sizeof(ref), "ref-%s", id);
	assert_int_equal(lf_apply(fx, LF_PEND, &(struct lf_args){id, ref, "test", amount, 0}, now,
			     NULL),
	    JOURNAL_DONE);
	assert_int_equal(lf_apply(fx, LF_POST, &(struct lf_args){id, seller, NULL, share, 0}, now,
			     NULL),
	    JOURNAL_DONE);
}

/* A payout batch in its own transaction. */
static inline enum journal_status
lf_payout(struct fx *fx, struct payout_batch *b, int64_t now)
{
	struct journal_result r;

	assert_int_equal(db_begin(fx->db), SQLITE_OK);
	if (payout_record(fx->j, b, now, &r, NULL) == 0)
		assert_int_equal(db_commit(fx->db), SQLITE_OK);
	else
		assert_int_equal(db_rollback(fx->db), SQLITE_OK);
	return r.status;
}

#endif
