/*
 * store.c — payments.db: its schema and every read and write of its rows.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 *
 * A payment row is keyed by its challenge id and moves reserved → captured
 * or reserved → released (→ reserved again: the same credential may be
 * presented again until it expires). Captured is final, and a trigger makes
 * the database itself refuse to move it. No credential, proof, receipt or
 * buyer identity is stored: the id, amounts and times are enough to answer
 * a replay, rebuild a receipt and reconcile with the ledger.
 *
 * The ledger_outbox table holds the postings the ledger still has to
 * acknowledge, written in the same transaction as the state change they
 * follow, so a crash or a ledger outage can delay a posting but never lose
 * it. Every function here runs inside the caller's transaction (a dbq
 * batch) or is a plain read; each returns -1 on any SQLite error. Their
 * statements come from db_stmt, prepared once per connection: compiling
 * SQL on every request was most of this daemon's CPU.
 */
#include "payments/payments.h"

#include <inttypes.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

static const char *const migrations[] = {
    /* 1: bookkeeping of the database itself. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('created', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));",
    /* 2: payments (times in unix seconds, amounts in µUSD) and the ledger outbox. */
    "CREATE TABLE payments ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " method TEXT NOT NULL,"
    " amount INTEGER NOT NULL CHECK (amount > 0),"
    " state TEXT NOT NULL CHECK (state IN ('reserved', 'captured', 'released')),"
    " realm TEXT NOT NULL,"
    " provider TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " expires INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL CHECK (attempt >= 1),"
    " xfer_id TEXT NOT NULL UNIQUE,"
    " key_id TEXT,"
    " seller_id TEXT,"
    " seller_amount INTEGER CHECK (seller_amount BETWEEN 0 AND amount),"
    " receipt_ts INTEGER,"
    " CHECK (state <> 'captured' OR"
    "  (seller_id IS NOT NULL AND seller_amount IS NOT NULL AND receipt_ts IS NOT NULL))"
    ") STRICT;"
    "CREATE INDEX payments_reserved ON payments (updated) WHERE state = 'reserved';"
    "CREATE TRIGGER payments_captured_is_final BEFORE UPDATE ON payments"
    " WHEN OLD.state = 'captured'"
    " BEGIN SELECT RAISE(ABORT, 'a captured payment is final'); END;"
    "CREATE TRIGGER payments_never_deleted BEFORE DELETE ON payments"
    " BEGIN SELECT RAISE(ABORT, 'payments are never deleted'); END;"
    "CREATE TABLE ledger_outbox ("
    " xfer_id TEXT PRIMARY KEY NOT NULL,"
    " op TEXT NOT NULL CHECK (op IN ('post', 'void')),"
    " payment_id TEXT NOT NULL,"
    " seller_id TEXT,"
    " seller_amount INTEGER,"
    " created INTEGER NOT NULL,"
    " tries INTEGER NOT NULL DEFAULT 0"
    ") STRICT;",
    /*
     * 3: the receipt's reference (a processor's id) on each payment; what
     * the methods and buyers need (extras.c, buyer.c, idem.c).
     */
    "ALTER TABLE payments ADD COLUMN reference TEXT;"
    "CREATE TABLE lightning_invoices ("
    " payment_hash TEXT PRIMARY KEY NOT NULL,"
    " challenge_id TEXT NOT NULL UNIQUE,"
    " sats INTEGER NOT NULL CHECK (sats > 0),"
    " amount INTEGER NOT NULL CHECK (amount > 0),"
    " expires INTEGER NOT NULL,"
    " created INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE tx_hashes ("
    " hash TEXT PRIMARY KEY NOT NULL,"
    " payment_id TEXT NOT NULL,"
    " created INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TRIGGER tx_hashes_never_deleted BEFORE DELETE ON tx_hashes"
    " BEGIN SELECT RAISE(ABORT, 'a transaction hash is used once, ever'); END;"
    "CREATE TABLE buyer_spend ("
    " buyer TEXT NOT NULL,"
    " day INTEGER NOT NULL,"
    " amount INTEGER NOT NULL CHECK (amount >= 0),"
    " PRIMARY KEY (buyer, day)"
    ") STRICT;"
    "CREATE TABLE payment_buyers ("
    " payment_id TEXT PRIMARY KEY NOT NULL,"
    " buyer TEXT NOT NULL,"
    " day INTEGER NOT NULL,"
    " amount INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE idempotency ("
    " idem_key TEXT NOT NULL,"
    " payment_id TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " expires INTEGER NOT NULL,"
    " created INTEGER NOT NULL,"
    " PRIMARY KEY (idem_key, payment_id)"
    ") STRICT;",
    /* 4: the region of the key that served a captured payment (the router's), for its receipt. */
    "ALTER TABLE payments ADD COLUMN region TEXT NOT NULL DEFAULT '';",
    /*
     * 5: the pool an attempt was paid for, and at capture the premium
     * surcharge the ledger books to platform:premium (0 in the standard pool).
     */
    "ALTER TABLE payments ADD COLUMN pool INTEGER NOT NULL DEFAULT 0 CHECK (pool IN (0, 1));"
    "ALTER TABLE payments ADD COLUMN premium_amount INTEGER NOT NULL DEFAULT 0"
    " CHECK (premium_amount >= 0 AND premium_amount + coalesce(seller_amount, 0) <= amount);"
    "ALTER TABLE ledger_outbox ADD COLUMN premium_amount INTEGER NOT NULL DEFAULT 0;",
    /* 6: refunds of charges for requests never served (refund.c). */
    "CREATE TABLE refunds ("
    " payment_id TEXT PRIMARY KEY NOT NULL,"
    " method TEXT NOT NULL,"
    " reference TEXT NOT NULL,"
    " amount INTEGER NOT NULL CHECK (amount > 0),"
    " state TEXT NOT NULL CHECK (state IN ('due', 'done', 'failed')),"
    " tries INTEGER NOT NULL DEFAULT 0,"
    " refund_id TEXT,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TRIGGER refunds_never_deleted BEFORE DELETE ON refunds"
    " BEGIN SELECT RAISE(ABORT, 'refunds are never deleted'); END;",
};

/* The outbox gives up on a posting the ledger refused this many times (an operator must look). */
#define OUTBOX_MAX_TRIES 10

sqlite3 *
pay_store_open(const char *path, char *err, size_t errlen)
{
	return db_open(path, DB_SYNC_FULL, migrations, sizeof(migrations) / sizeof(migrations[0]),
	    err, errlen);
}

int
pay_db_step(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		log_warnx("%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
col_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

void
pay_xfer_id(const char *id, int64_t attempt, char out[72])
{
	char input[160];
	uint8_t h[32];
	int n = snprintf(input, sizeof(input), "cn2 ledger transfer v1|%s|%" PRId64, id, attempt);

	/* SHA-256 of our own bounded text cannot fail; a failure would be a broken library. */
	if (n < 0 || (size_t)n >= sizeof(input) ||
	    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)input,
		(size_t)n, h) != 0)
		fatalx("cannot derive a transfer id");
	memcpy(out, "pay_", 4);
	pay_hex(h, 16, out + 4);
}

/* The state and attempt of payment id: 1 found, 0 absent, -1 error. */
static int
state_of(sqlite3 *db, const char *id, enum pay_state *state, int64_t *attempt)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT state, attempt FROM payments WHERE id = ?");
	const unsigned char *t;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		*state = t == NULL ? PAY_RELEASED :
		    strcmp((const char *)t, "reserved") == 0 ? PAY_RESERVED :
		    strcmp((const char *)t, "captured") == 0 ? PAY_CAPTURED : PAY_RELEASED;
		*attempt = sqlite3_column_int64(st, 1);
	} else if (rc != SQLITE_DONE) {
		log_warnx("%s", sqlite3_errmsg(db));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
reserve_new(sqlite3 *db, const struct pay_reservation *r, int64_t now, const char *xfer_id)
{
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT INTO payments (id, method, amount, state, realm, provider, created, updated,"
	    " expires, attempt, xfer_id, pool) VALUES (?, ?, ?, 'reserved', ?, ?, ?, ?, ?, 1, ?, ?)");

	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->method, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->amount);
	sqlite3_bind_text(st, 4, r->realm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->provider, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, r->expires);
	sqlite3_bind_text(st, 9, xfer_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 10, r->pool);
	return pay_db_step(db, st);
}

/* Another attempt with the same credential, maybe in the other pool (the amount covers it). */
static int
reserve_again(sqlite3 *db, const struct pay_reservation *r, int64_t attempt, int64_t now,
    const char *xfer_id)
{
	sqlite3_stmt *st = db_stmt(db,
	    "UPDATE payments SET state = 'reserved', attempt = ?, xfer_id = ?, updated = ?, pool = ?"
	    " WHERE id = ? AND state = 'released'"
	    " AND NOT EXISTS (SELECT 1 FROM refunds WHERE payment_id = payments.id)");

	sqlite3_bind_int64(st, 1, attempt);
	sqlite3_bind_text(st, 2, xfer_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int(st, 4, r->pool);
	sqlite3_bind_text(st, 5, r->id, -1, SQLITE_STATIC);
	if (pay_db_step(db, st) != 0)
		return -1;
	return sqlite3_changes(db) == 1 ? 0 : -1;
}

int
pay_store_reserve(sqlite3 *db, const struct pay_reservation *r, int64_t now,
    enum pay_reserve *res, char xfer_id[72])
{
	enum pay_state state = PAY_RELEASED;
	int64_t attempt = 0;
	int found = state_of(db, r->id, &state, &attempt);

	if (found < 0)
		return -1;
	if (found && state == PAY_RESERVED) {
		*res = RES_IN_FLIGHT;
		return 0;
	}
	if (found && state == PAY_CAPTURED) {
		*res = RES_USED;
		return 0;
	}
	/* A new attempt gets its own ledger transfer: the last one may have been voided. */
	pay_xfer_id(r->id, attempt + 1, xfer_id);
	*res = found ? RES_AGAIN : RES_NEW;
	return found ? reserve_again(db, r, attempt + 1, now, xfer_id) :
		       reserve_new(db, r, now, xfer_id);
}

int
pay_store_get(sqlite3 *db, const char *id, struct pay_row *row)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT state, method, amount, xfer_id, key_id, seller_id, seller_amount, receipt_ts,"
	    " coalesce(reference, id), region, pool, premium_amount FROM payments WHERE id = ?");
	char state[16];
	int rc;

	memset(row, 0, sizeof(*row));
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col_text(st, 0, state, sizeof(state));
		row->state = strcmp(state, "reserved") == 0 ? PAY_RESERVED :
		    strcmp(state, "captured") == 0	    ? PAY_CAPTURED :
							      PAY_RELEASED;
		col_text(st, 1, row->method, sizeof(row->method));
		row->amount = sqlite3_column_int64(st, 2);
		col_text(st, 3, row->xfer_id, sizeof(row->xfer_id));
		col_text(st, 4, row->key_id, sizeof(row->key_id));
		col_text(st, 5, row->seller_id, sizeof(row->seller_id));
		row->seller_amount = sqlite3_column_int64(st, 6);
		row->receipt_ts = sqlite3_column_int64(st, 7);
		col_text(st, 8, row->reference, sizeof(row->reference));
		col_text(st, 9, row->region, sizeof(row->region));
		row->pool = (uint8_t)sqlite3_column_int(st, 10);
		row->premium_amount = sqlite3_column_int64(st, 11);
	} else if (rc != SQLITE_DONE) {
		log_warnx("%s", sqlite3_errmsg(db));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
pay_store_set_reference(sqlite3 *db, const char *id, const char *reference)
{
	sqlite3_stmt *st = db_stmt(db,
	    "UPDATE payments SET reference = ? WHERE id = ? AND state = 'reserved'");

	sqlite3_bind_text(st, 1, reference, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (pay_db_step(db, st) != 0)
		return -1;
	return sqlite3_changes(db) == 1 ? 0 : -1;
}

/* Owe the ledger a posting for payment id's current transfer. */
static int
outbox_add(sqlite3 *db, const char *id, const char *op, int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT OR IGNORE INTO ledger_outbox (xfer_id, op, payment_id, seller_id,"
	    " seller_amount, premium_amount, created) SELECT xfer_id, ?, id, seller_id,"
	    " seller_amount, premium_amount, ? FROM payments WHERE id = ?");

	sqlite3_bind_text(st, 1, op, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	return pay_db_step(db, st);
}

int
pay_store_capture(sqlite3 *db, const char *id, const struct ipc_settle *m, int64_t premium,
    int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "UPDATE payments SET state = 'captured', key_id = ?, seller_id = ?, seller_amount = ?,"
	    " receipt_ts = ?, updated = ?, region = ?, premium_amount = ?"
	    " WHERE id = ? AND state = 'reserved'");

	sqlite3_bind_text(st, 1, m->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, m->seller_price);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_text(st, 6, m->region, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, premium);
	sqlite3_bind_text(st, 8, id, -1, SQLITE_STATIC);
	if (pay_db_step(db, st) != 0 || sqlite3_changes(db) != 1 || pay_buyer_settle(db, id, 1) != 0)
		return -1;
	return outbox_add(db, id, "post", now);
}

int
pay_store_release(sqlite3 *db, const char *id, int void_due, int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "UPDATE payments SET state = 'released', updated = ? WHERE id = ? AND state = 'reserved'");

	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (pay_db_step(db, st) != 0 || sqlite3_changes(db) != 1 || pay_buyer_settle(db, id, 0) != 0)
		return -1;
	return void_due ? outbox_add(db, id, "void", now) : 0;
}

int
pay_store_release_stale(sqlite3 *db, int64_t cutoff, int64_t now, int limit, int *n)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT id FROM payments WHERE state = 'reserved' AND updated < ? ORDER BY updated"
	    " LIMIT ?");
	char ids[64][IPC_ID_MAX + 1];
	int rc, count = 0;

	if (limit > 64)
		limit = 64;
	sqlite3_bind_int64(st, 1, cutoff);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < limit)
		col_text(st, 0, ids[count++], sizeof(ids[0]));
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_warnx("%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	/* The edge never settled these: the ledger may hold their pending transfer. */
	for (int i = 0; i < count; i++)
		if (pay_store_release(db, ids[i], 1, now) != 0)
			return -1;
	*n = count;
	return 0;
}

int
pay_outbox_done(sqlite3 *db, const char *xfer_id)
{
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM ledger_outbox WHERE xfer_id = ?");

	sqlite3_bind_text(st, 1, xfer_id, -1, SQLITE_STATIC);
	return pay_db_step(db, st);
}

int
pay_outbox_failed(sqlite3 *db, const char *xfer_id)
{
	sqlite3_stmt *st = db_stmt(db,
	    "UPDATE ledger_outbox SET tries = tries + 1 WHERE xfer_id = ?");

	sqlite3_bind_text(st, 1, xfer_id, -1, SQLITE_STATIC);
	return pay_db_step(db, st);
}

int
pay_outbox_list(sqlite3 *db, struct pay_outbox_row *rows, int max)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT xfer_id, op, seller_id, seller_amount, premium_amount FROM ledger_outbox"
	    " WHERE tries < ?"
	    " ORDER BY created LIMIT ?");
	char op[8];
	int rc = SQLITE_DONE, n = 0;

	sqlite3_bind_int(st, 1, OUTBOX_MAX_TRIES);
	sqlite3_bind_int(st, 2, max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&rows[n], 0, sizeof(rows[n]));
		col_text(st, 0, rows[n].xfer_id, sizeof(rows[n].xfer_id));
		col_text(st, 1, op, sizeof(op));
		rows[n].op = strcmp(op, "post") == 0 ? OB_POST : OB_VOID;
		col_text(st, 2, rows[n].seller_id, sizeof(rows[n].seller_id));
		rows[n].seller_amount = sqlite3_column_int64(st, 3);
		rows[n].premium_amount = sqlite3_column_int64(st, 4);
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		log_warnx("%s", sqlite3_errmsg(db));
		n = -1;
	}
	sqlite3_reset(st);
	return n;
}
