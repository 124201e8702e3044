/*
 * dispute.c — disputes against captured payments, always by new transfers.
 *
 * Opening dispute D against payment P (the receipt's reference) records one
 * transfer, id D, kind "dispute", naming P's post: it takes the seller's
 * share of P from seller:<id> and the rest of what the buyer paid (the fee
 * and any premium) from platform:refunds, and holds the whole amount in
 * reserve:disputes. Resolving it records one more transfer: "D:return"
 * (kind dispute_return) gives both parts back where they came from, or
 * "D:refund" (kind refund) pays the whole amount back to the buyer's
 * clearing:<method> account, the platform's part staying in platform:refunds
 * as the cost of the refund. A payment is disputed at most once, a dispute
 * resolved at most once; schema.c enforces both, and the exact legs, again.
 *
 * The seller's earnings may go below zero when a dispute takes a share
 * already paid out: the debt stays on the books, and later earnings cover it
 * before a payout can (earnings.c).
 *
 * Security stance: the request comes from platform-api, which answers the
 * outside world; ids and references are checked as tokens before anything
 * is looked up, and every retry with the same fields is answered with the
 * dispute as recorded, every conflicting one refused and logged.
 */
#include "ledger/ledger.h"

#include <inttypes.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

#define RESERVE "reserve:disputes"
#define REFUNDS "platform:refunds"

/* dsp_ and a token without ':' or '/', short enough for ":return". */
static int
dispute_id_ok(const char *s)
{
	return journal_token_ok(s, IPC_ID_MAX) && strncmp(s, "dsp_", 4) == 0 && s[4] != '\0' &&
	    strpbrk(s, ":/") == NULL;
}

/* The first column of a one-row query on one text parameter, as text. 1, 0 none, -1. */
static int
lookup(sqlite3 *db, const char *sql, const char *arg, char *out, size_t cap)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	const unsigned char *t;
	int rc;

	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
dispute_get(sqlite3 *db, const char *dispute_id, struct ipc_dispute_rep *rep)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT d.payment_ref, substr(d.debit, 8), substr(pe.debit, 10), d.amount, d.legs,"
	    " d.debit, d.created, r.kind, coalesce(r.created, 0)"
	    " FROM transfers AS d JOIN transfers AS po ON po.id = d.pending_id"
	    " JOIN transfers AS pe ON pe.id = po.pending_id"
	    " LEFT JOIN transfers AS r ON r.pending_id = d.id AND r.kind IN ('dispute_return', 'refund')"
	    " WHERE d.id = ?1 AND d.kind = 'dispute'");
	char legs[LEDGER_LEGS_MAX], debit[LEDGER_NAME_MAX + 1], end[16];
	int rc;

	memset(rep, 0, sizeof(*rep));
	sqlite3_bind_text(st, 1, dispute_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(rep->dispute_id, sizeof(rep->dispute_id), "%s", dispute_id);
		journal_col_text(st, 0, rep->payment_ref, sizeof(rep->payment_ref));
		journal_col_text(st, 1, rep->seller_id, sizeof(rep->seller_id));
		journal_col_text(st, 2, rep->pay_method, sizeof(rep->pay_method));
		rep->amount = sqlite3_column_int64(st, 3);
		journal_col_text(st, 4, legs, sizeof(legs));
		journal_col_text(st, 5, debit, sizeof(debit));
		rep->seller_amount = -journal_leg_amount(legs, debit);
		rep->opened = sqlite3_column_int64(st, 6);
		journal_col_text(st, 7, end, sizeof(end));
		rep->resolved = sqlite3_column_int64(st, 8);
		rep->state = end[0] == '\0' ? DISPUTE_OPEN :
		    strcmp(end, "refund") == 0 ? DISPUTE_REFUNDED : DISPUTE_RETURNED;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The dispute as recorded, for the answer; a failure to read it back fails the write. */
static int
answer(struct journal *j, const char *id, struct journal_result *r, struct ipc_dispute_rep *rep)
{
	if (dispute_get(journal_db(j), id, rep) != 1)
		return journal_fail(j, r, "dispute", id);
	return 0;
}

/* The dispute transfer of post p: seller share and platform share into the reserve. */
static int
open_insert(struct journal *j, const char *id, const struct journal_row *post,
    const char *post_id, int64_t now_ms)
{
	struct ledger_xfer x;
	int64_t share = journal_leg_amount(post->legs, post->credit);

	journal_xfer_init(&x, "dispute", now_ms);
	snprintf(x.id, sizeof(x.id), "%s", id);
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", post_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", post->payment_ref);
	snprintf(x.debit, sizeof(x.debit), "%s", post->credit);
	snprintf(x.credit, sizeof(x.credit), RESERVE);
	x.amount = post->amount;
	if (journal_legs(x.legs, sizeof(x.legs),
		(const struct journal_leg[]){{x.debit, -share}, {REFUNDS, share - x.amount},
		    {x.credit, x.amount}},
		3) != 0)
		return -1;
	return journal_account(j, RESERVE, "reserve", now_ms) != 0 ||
		    (share < x.amount && journal_account(j, REFUNDS, "refunds", now_ms) != 0) ||
		    journal_insert(j, &x) != 0 ?
	    -1 :
	    0;
}

int
dispute_open(struct journal *j, const struct ipc_dispute_open *m, int64_t now_ms,
    struct journal_result *r, struct ipc_dispute_rep *rep)
{
	struct journal_row d, post;
	char post_id[LEDGER_ID_MAX + 1], other[LEDGER_ID_MAX + 1];
	int rc;

	journal_result_init(r);
	if (!dispute_id_ok(m->dispute_id))
		return journal_refuse(r, "invalid dispute_id");
	if (!journal_token_ok(m->payment_ref, IPC_ID_MAX))
		return journal_refuse(r, "invalid payment_ref");
	if ((rc = journal_find(j, m->dispute_id, &d)) < 0)
		return journal_fail(j, r, "dispute", m->dispute_id);
	if (rc > 0) {
		if (strcmp(d.kind, "dispute") != 0 || strcmp(d.payment_ref, m->payment_ref) != 0)
			return journal_conflict(r, "dispute", m->dispute_id);
		journal_same(r);
		return answer(j, m->dispute_id, r, rep);
	}
	rc = lookup(journal_db(j), "SELECT id FROM transfers WHERE payment_ref = ?1 AND kind = 'post'",
	    m->payment_ref, post_id, sizeof(post_id));
	if (rc < 0 || (rc > 0 && journal_find(j, post_id, &post) != 1))
		return journal_fail(j, r, "dispute", m->dispute_id);
	if (rc == 0)
		return journal_refuse(r, "no captured payment %s", m->payment_ref);
	rc = lookup(journal_db(j), "SELECT id FROM transfers WHERE pending_id = ?1 AND kind = 'dispute'",
	    post_id, other, sizeof(other));
	if (rc < 0)
		return journal_fail(j, r, "dispute", m->dispute_id);
	if (rc > 0)
		return journal_refuse(r, "payment %s is disputed already by %s", m->payment_ref, other);
	if (open_insert(j, m->dispute_id, &post, post_id, now_ms) != 0)
		return journal_fail(j, r, "dispute", m->dispute_id);
	log_info("dispute %s opened on payment %s: %" PRId64 " µUSD held", m->dispute_id,
	    m->payment_ref, post.amount);
	return answer(j, m->dispute_id, r, rep);
}

/* The resolving transfer of dispute d: back where it came from, or to the buyer. */
static int
resolve_insert(struct journal *j, const char *id, const struct journal_row *d, int for_buyer,
    const char *clearing, int64_t now_ms)
{
	struct ledger_xfer x;
	int64_t share = -journal_leg_amount(d->legs, d->debit);
	int rc;

	journal_xfer_init(&x, for_buyer ? "refund" : "dispute_return", now_ms);
	snprintf(x.id, sizeof(x.id), "%s:%s", id, for_buyer ? "refund" : "return");
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", d->payment_ref);
	snprintf(x.debit, sizeof(x.debit), RESERVE);
	snprintf(x.credit, sizeof(x.credit), "%s", for_buyer ? clearing : d->debit);
	x.amount = d->amount;
	if (for_buyer)
		return journal_insert_pair(j, &x);
	rc = journal_legs(x.legs, sizeof(x.legs),
	    (const struct journal_leg[]){{x.debit, -x.amount}, {x.credit, share},
		{REFUNDS, x.amount - share}},
	    3);
	return rc != 0 ? -1 : journal_insert(j, &x);
}

/* The buyer's clearing account of dispute id's payment. 1, 0 none, -1. */
static int
dispute_clearing(struct journal *j, const char *id, char *out, size_t cap)
{
	return lookup(journal_db(j),
	    "SELECT pe.debit FROM transfers AS d JOIN transfers AS po ON po.id = d.pending_id"
	    " JOIN transfers AS pe ON pe.id = po.pending_id WHERE d.id = ?1",
	    id, out, cap);
}

int
dispute_resolve(struct journal *j, const struct ipc_dispute_resolve *m, int64_t now_ms,
    struct journal_result *r, struct ipc_dispute_rep *rep)
{
	struct journal_row d;
	char end[16], clearing[LEDGER_NAME_MAX + 1] = "";
	int rc, for_buyer = m->outcome == DISPUTE_FOR_BUYER;

	journal_result_init(r);
	if (!dispute_id_ok(m->dispute_id))
		return journal_refuse(r, "invalid dispute_id");
	if (m->outcome != DISPUTE_FOR_SELLER && m->outcome != DISPUTE_FOR_BUYER)
		return journal_refuse(r, "invalid outcome");
	if ((rc = journal_find(j, m->dispute_id, &d)) < 0)
		return journal_fail(j, r, "resolution of", m->dispute_id);
	if (rc == 0 || strcmp(d.kind, "dispute") != 0)
		return journal_refuse(r, "no dispute %s", m->dispute_id);
	rc = lookup(journal_db(j),
	    "SELECT kind FROM transfers WHERE pending_id = ?1 AND kind IN ('dispute_return', 'refund')",
	    m->dispute_id, end, sizeof(end));
	if (rc < 0)
		return journal_fail(j, r, "resolution of", m->dispute_id);
	if (rc > 0) {
		if ((strcmp(end, "refund") == 0) != for_buyer)
			return journal_conflict(r, "resolution of", m->dispute_id);
		journal_same(r);
		return answer(j, m->dispute_id, r, rep);
	}
	if ((for_buyer && dispute_clearing(j, m->dispute_id, clearing, sizeof(clearing)) != 1) ||
	    resolve_insert(j, m->dispute_id, &d, for_buyer, clearing, now_ms) != 0)
		return journal_fail(j, r, "resolution of", m->dispute_id);
	log_info("dispute %s resolved: %" PRId64 " µUSD %s", m->dispute_id, d.amount,
	    for_buyer ? "refunded to the buyer" : "returned to the seller and the platform");
	return answer(j, m->dispute_id, r, rep);
}
