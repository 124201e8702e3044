/*
 * earnings.c — what a seller has earned, and what of it a payout may take.
 *
 * balance     seller:<id>'s balance (the cached one; verify checks it against
 *             the transfers): every capture's seller share, less disputes
 *             held or refunded and payouts, plus returns and reversals
 * pending     seller shares of captures younger than the hold period
 *             (earnings_hold_s), unless a dispute holds or refunded them
 * available   balance - pending: what the next payout may take; below zero
 *             when a dispute took a share already paid out
 * in_dispute  the seller's part of open disputes
 * paid_out    payouts less reversals
 * earned      every capture's seller share
 *
 * The counts after the balance come from one pass over the seller's entries
 * (the entries_account index), so they cover the transfers still in the books:
 * after the retention sweep, earned and paid_out start at the checkpoint,
 * while the balance carries the opening balance forward.
 *
 * Security stance: a read. seller ids come from platform-api's bearer token
 * or the payout tool; they are bound as parameters, never spliced into SQL.
 */
#include "ledger/ledger.h"

#include <string.h>

#include "common/db.h"

static int
seller_balance(sqlite3 *db, const char *account, int64_t *id, int64_t *balance)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT a.id, b.balance FROM accounts AS a JOIN balances AS b ON b.account = a.id"
	    " WHERE a.name = ?1 AND a.kind = 'earnings'");
	int rc;

	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*balance = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A dispute "holds" a capture while it is open or after a refund; a return lets go. */
#define HELD_BY_DISPUTE                                                                    \
	"EXISTS (SELECT 1 FROM transfers AS d WHERE d.kind = 'dispute' AND d.pending_id = t.id" \
	" AND NOT EXISTS (SELECT 1 FROM transfers AS r WHERE r.pending_id = d.id"             \
	" AND r.kind = 'dispute_return'))"

static int
seller_sums(sqlite3 *db, int64_t account, int64_t since_ms, struct ipc_earnings_rep *rep)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT coalesce(sum(CASE WHEN t.kind = 'post' THEN e.amount END), 0),"
	    " coalesce(sum(CASE WHEN t.kind = 'post' AND t.created >= ?2 AND NOT " HELD_BY_DISPUTE
	    " THEN e.amount END), 0),"
	    " coalesce(sum(CASE WHEN t.kind = 'dispute' AND NOT EXISTS (SELECT 1 FROM transfers AS r"
	    " WHERE r.pending_id = t.id AND r.kind IN ('dispute_return', 'refund'))"
	    " THEN -e.amount END), 0),"
	    " coalesce(sum(CASE WHEN t.kind IN ('payout', 'payout_reversal') THEN -e.amount END), 0)"
	    " FROM entries AS e JOIN transfers AS t ON t.seq = e.transfer WHERE e.account = ?1");
	int rc;

	sqlite3_bind_int64(st, 1, account);
	sqlite3_bind_int64(st, 2, since_ms);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rep->earned = sqlite3_column_int64(st, 0);
		rep->pending = sqlite3_column_int64(st, 1);
		rep->in_dispute = sqlite3_column_int64(st, 2);
		rep->paid_out = sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int
earnings_get(sqlite3 *db, const char *seller_id, int64_t hold_s, int64_t now_ms,
    struct ipc_earnings_rep *rep)
{
	char account[LEDGER_NAME_MAX + 1];
	int64_t id = 0, balance = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	snprintf(rep->seller_id, sizeof(rep->seller_id), "%s", seller_id);
	rep->hold_s = hold_s;
	rep->as_of = now_ms;
	if (snprintf(account, sizeof(account), "seller:%s", seller_id) >= (int)sizeof(account))
		return 0;
	if ((rc = seller_balance(db, account, &id, &balance)) <= 0)
		return rc;
	if (seller_sums(db, id, now_ms - hold_s * 1000, rep) != 0)
		return -1;
	rep->available = balance - rep->pending;
	return 0;
}
