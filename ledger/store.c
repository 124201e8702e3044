/*
 * store.c — ledger.db: its schema, opening it, and the daemon's start and stop.
 *
 * Security stance: the schema, not only this program, keeps the books honest,
 * so that an auditor with the sqlite3 shell (where foreign keys are off by
 * default) can trust what it reads. Triggers refuse any UPDATE or DELETE of
 * accounts, transfers and entries; a transfer row carries its legs as
 * canonical JSON, is refused unless they balance and fit its kind, and writes
 * its entries itself, so entries cannot be added, changed or orphaned; a
 * pending transfer is posted or voided at most once. Uniqueness is checked in
 * triggers before SQLite's own constraints, so INSERT OR REPLACE can never
 * delete a row behind the no-DELETE triggers' back. What SQL cannot check,
 * the SHA-256 of each row chained to the previous one, is computed in C
 * (chain.c); the schema checks that each row links to the one before.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 * Account kinds and transfer kinds are checked in triggers rather than CHECK
 * constraints so that a later migration can add kinds (payouts, disputes) by
 * replacing one trigger instead of rebuilding a table others point into.
 */
#include "ledger/ledger.h"

#include <stdio.h>
#include <string.h>

#include "common/db.h"
#include "common/dbq.h"
#include "common/log.h"

/* The first schema version the tools can read (accounts, transfers, views). */
#define LEDGER_SCHEMA_BOOKS 2

#define NL "\n"
#define CHARSET(c) "(" c " NOT GLOB '*[^!-~]*')"

static const char *const migrations[] = {
    /* 1: bookkeeping of the database itself. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('created', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));",

    /* 2: accounts, two-phase transfers, their entries, and the auditor's views. */
    "CREATE TABLE accounts (" NL
    "  id INTEGER PRIMARY KEY," NL
    "  -- clearing:<pay method>, escrow, seller:<seller id>, platform:fees" NL
    "  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 80" NL
    "    AND " CHARSET("name") " AND name NOT GLOB '*[\"\\]*')," NL
    "  kind TEXT NOT NULL, -- clearing, escrow, earnings, fees (trigger accounts_insert)" NL
    "  created INTEGER NOT NULL CHECK (created >= 0) -- unix milliseconds" NL
    ") STRICT;" NL
    "CREATE TRIGGER accounts_insert BEFORE INSERT ON accounts BEGIN" NL
    "  SELECT RAISE(ABORT, 'accounts: name exists')" NL
    "    WHERE EXISTS (SELECT 1 FROM accounts WHERE name = NEW.name);" NL
    "  SELECT RAISE(ABORT, 'accounts: kind and name do not match')" NL
    "    WHERE NOT (CASE NEW.kind WHEN 'clearing' THEN NEW.name GLOB 'clearing:?*'" NL
    "      WHEN 'escrow' THEN NEW.name = 'escrow' WHEN 'earnings' THEN NEW.name GLOB 'seller:?*'" NL
    "      WHEN 'fees' THEN NEW.name = 'platform:fees' ELSE 0 END);" NL
    "END;" NL
    "CREATE TRIGGER accounts_no_update BEFORE UPDATE ON accounts BEGIN" NL
    "  SELECT RAISE(ABORT, 'accounts are append-only'); END;" NL
    "CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts BEGIN" NL
    "  SELECT RAISE(ABORT, 'accounts are append-only'); END;" NL

    "CREATE TABLE transfers (" NL
    "  seq INTEGER PRIMARY KEY, -- 1, 2, 3, … without gaps: the order of the hash chain" NL
    "  -- idempotency key: the xfer_id for pending, <xfer_id>:post or <xfer_id>:void" NL
    "  id TEXT NOT NULL UNIQUE CHECK (length(id) BETWEEN 1 AND 80 AND " CHARSET("id") ")," NL
    "  kind TEXT NOT NULL, -- pending, post, void (trigger transfers_kind)" NL
    "  pending_id TEXT REFERENCES transfers (id), -- post and void: the pending transfer" NL
    "  payment_ref TEXT NOT NULL CHECK (length(payment_ref) BETWEEN 1 AND 80" NL
    "    AND " CHARSET("payment_ref") ")," NL
    "  debit TEXT NOT NULL REFERENCES accounts (name), -- where the money comes from" NL
    "  credit TEXT NOT NULL REFERENCES accounts (name), -- where it goes (post: the seller)" NL
    "  amount INTEGER NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000000), -- µUSD" NL
    "  -- the entries as canonical JSON, [[account, µUSD], …]; the row writes them" NL
    "  legs TEXT NOT NULL," NL
    "  created INTEGER NOT NULL CHECK (created >= 0), -- unix milliseconds" NL
    "  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32), -- hash of seq - 1, or zeros" NL
    "  -- SHA-256(prev_hash || canonical text of the row, see v_chain)" NL
    "  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)" NL
    ") STRICT;" NL
    "CREATE UNIQUE INDEX transfers_resolution ON transfers (pending_id)" NL
    "  WHERE kind IN ('post', 'void');" NL

    "CREATE TABLE entries (" NL
    "  transfer INTEGER NOT NULL REFERENCES transfers (seq)," NL
    "  leg INTEGER NOT NULL CHECK (leg BETWEEN 1 AND 8)," NL
    "  account INTEGER NOT NULL REFERENCES accounts (id)," NL
    "  amount INTEGER NOT NULL CHECK (amount <> 0), -- µUSD gained: credit > 0, debit < 0" NL
    "  PRIMARY KEY (transfer, leg)," NL
    "  UNIQUE (transfer, account)" NL
    ") STRICT, WITHOUT ROWID;" NL
    "CREATE INDEX entries_account ON entries (account, amount);" NL

    "CREATE TRIGGER transfers_chain BEFORE INSERT ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: seq must be the next in the chain')" NL
    "    WHERE NEW.seq IS NOT coalesce((SELECT max(seq) FROM transfers), 0) + 1;" NL
    "  SELECT RAISE(ABORT, 'transfers: prev_hash must be the hash of the previous transfer')" NL
    "    WHERE NEW.prev_hash IS NOT coalesce((SELECT hash FROM transfers WHERE seq = NEW.seq - 1)," NL
    "      zeroblob(32));" NL
    "  SELECT RAISE(ABORT, 'transfers: id exists')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE id = NEW.id);" NL
    "  SELECT RAISE(ABORT, 'transfers: hash exists')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE hash = NEW.hash);" NL
    "END;" NL
    "CREATE TRIGGER transfers_legs BEFORE INSERT ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: legs must be a canonical JSON array of 2 to 8 legs')" NL
    "    WHERE NOT (json_valid(NEW.legs) AND NEW.legs = json(NEW.legs)" NL
    "      AND json_type(NEW.legs) = 'array' AND json_array_length(NEW.legs) BETWEEN 2 AND 8);" NL
    "  SELECT RAISE(ABORT, 'transfers: a leg is not [existing account, non-zero integer]')" NL
    "    WHERE EXISTS (SELECT 1 FROM json_each(NEW.legs) AS j WHERE j.type IS NOT 'array'" NL
    "      OR json_array_length(j.value) <> 2 OR json_type(j.value, '$[0]') IS NOT 'text'" NL
    "      OR json_type(j.value, '$[1]') IS NOT 'integer' OR json_extract(j.value, '$[1]') = 0" NL
    "      OR NOT EXISTS (SELECT 1 FROM accounts WHERE name = json_extract(j.value, '$[0]')));" NL
    "  SELECT RAISE(ABORT, 'transfers: an account appears in two legs')" NL
    "    WHERE (SELECT count(DISTINCT json_extract(value, '$[0]')) FROM json_each(NEW.legs))" NL
    "      <> json_array_length(NEW.legs);" NL
    "  SELECT RAISE(ABORT, 'transfers: unbalanced: the legs do not sum to zero')" NL
    "    WHERE (SELECT sum(json_extract(value, '$[1]')) FROM json_each(NEW.legs)) <> 0;" NL
    "  SELECT RAISE(ABORT, 'transfers: amount is not the sum of the debit legs')" NL
    "    WHERE (SELECT -sum(json_extract(value, '$[1]')) FROM json_each(NEW.legs)" NL
    "      WHERE json_extract(value, '$[1]') < 0) IS NOT NEW.amount;" NL
    "END;" NL
    "CREATE TRIGGER transfers_kind BEFORE INSERT ON transfers" NL
    "  WHEN NEW.kind NOT IN ('pending', 'post', 'void') BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: kind must be pending, post or void'); END;" NL
    "CREATE TRIGGER transfers_pending BEFORE INSERT ON transfers WHEN NEW.kind = 'pending' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a pending transfer has no pending_id')" NL
    "    WHERE NEW.pending_id IS NOT NULL;" NL
    "  SELECT RAISE(ABORT, 'transfers: a pending id may not end in :post or :void')" NL
    "    WHERE NEW.id GLOB '*:post' OR NEW.id GLOB '*:void';" NL
    "  SELECT RAISE(ABORT, 'transfers: a pending transfer moves a clearing account to escrow')" NL
    "    WHERE NEW.credit IS NOT 'escrow'" NL
    "      OR (SELECT kind FROM accounts WHERE name = NEW.debit) IS NOT 'clearing';" NL
    "  SELECT RAISE(ABORT, 'transfers: pending legs must be [debit, -amount], [credit, amount]')" NL
    "    WHERE NEW.legs IS NOT json_array(json_array(NEW.debit, -NEW.amount)," NL
    "      json_array(NEW.credit, NEW.amount));" NL
    "END;" NL
    "CREATE TRIGGER transfers_resolve BEFORE INSERT ON transfers" NL
    "  WHEN NEW.kind IN ('post', 'void') BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: pending_id names no pending transfer')" NL
    "    WHERE NOT EXISTS (SELECT 1 FROM transfers WHERE id = NEW.pending_id AND kind = 'pending');" NL
    "  SELECT RAISE(ABORT, 'transfers: the pending transfer is already posted or voided')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE pending_id = NEW.pending_id" NL
    "      AND kind IN ('post', 'void'));" NL
    "  SELECT RAISE(ABORT, 'transfers: id must be <pending_id>:post or <pending_id>:void')" NL
    "    WHERE NEW.id IS NOT NEW.pending_id || ':' || NEW.kind;" NL
    "  SELECT RAISE(ABORT, 'transfers: payment_ref, amount and debit must match the pending transfer')" NL
    "    WHERE NOT EXISTS (SELECT 1 FROM transfers AS p WHERE p.id = NEW.pending_id" NL
    "      AND p.payment_ref = NEW.payment_ref AND p.amount = NEW.amount AND p.credit = NEW.debit);" NL
    "END;" NL
    "CREATE TRIGGER transfers_post BEFORE INSERT ON transfers WHEN NEW.kind = 'post' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a post credits a seller earnings account')" NL
    "    WHERE (SELECT kind FROM accounts WHERE name = NEW.credit) IS NOT 'earnings';" NL
    "  SELECT RAISE(ABORT, 'transfers: post legs must be [debit, -amount], [credit, seller share],"
    " [platform:fees, the rest], a zero leg left out')" NL
    "    WHERE NEW.legs NOT IN (" NL
    "      json_array(json_array(NEW.debit, -NEW.amount), json_array(NEW.credit, NEW.amount))," NL
    "      json_array(json_array(NEW.debit, -NEW.amount), json_array('platform:fees', NEW.amount))," NL
    "      json_array(json_array(NEW.debit, -NEW.amount)," NL
    "        json_array(NEW.credit, json_extract(NEW.legs, '$[1][1]'))," NL
    "        json_array('platform:fees', NEW.amount - json_extract(NEW.legs, '$[1][1]'))));" NL
    "END;" NL
    "CREATE TRIGGER transfers_void BEFORE INSERT ON transfers WHEN NEW.kind = 'void' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a void returns the amount to the pending clearing account')" NL
    "    WHERE NEW.credit IS NOT (SELECT debit FROM transfers WHERE id = NEW.pending_id)" NL
    "      OR NEW.legs IS NOT json_array(json_array(NEW.debit, -NEW.amount)," NL
    "        json_array(NEW.credit, NEW.amount));" NL
    "END;" NL
    "CREATE TRIGGER transfers_entries AFTER INSERT ON transfers BEGIN" NL
    "  INSERT INTO entries (transfer, leg, account, amount)" NL
    "    SELECT NEW.seq, j.key + 1, a.id, json_extract(j.value, '$[1]')" NL
    "    FROM json_each(NEW.legs) AS j JOIN accounts AS a ON a.name = json_extract(j.value, '$[0]');" NL
    "END;" NL
    "CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers are append-only'); END;" NL
    "CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers are append-only'); END;" NL
    "CREATE TRIGGER entries_insert BEFORE INSERT ON entries BEGIN" NL
    "  SELECT RAISE(ABORT, 'entries: only a transfer writes its entries, once')" NL
    "    WHERE EXISTS (SELECT 1 FROM entries WHERE transfer = NEW.transfer" NL
    "      AND (leg = NEW.leg OR account = NEW.account))" NL
    "    OR NOT EXISTS (SELECT 1 FROM transfers AS t, json_each(t.legs) AS j, accounts AS a" NL
    "      WHERE t.seq = NEW.transfer AND j.key = NEW.leg - 1 AND a.id = NEW.account" NL
    "      AND a.name = json_extract(j.value, '$[0]') AND json_extract(j.value, '$[1]') = NEW.amount);" NL
    "END;" NL
    "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN" NL
    "  SELECT RAISE(ABORT, 'entries are append-only'); END;" NL
    "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN" NL
    "  SELECT RAISE(ABORT, 'entries are append-only'); END;" NL

    "CREATE VIEW v_balances (account, balance) AS" NL
    "  SELECT a.name, coalesce(sum(e.amount), 0) FROM accounts AS a" NL
    "  LEFT JOIN entries AS e ON e.account = a.id GROUP BY a.id ORDER BY a.name;" NL
    "CREATE VIEW v_transfers (seq, id, kind, pending_id, state, payment_ref, debit, credit," NL
    "    amount, legs, created, hash) AS" NL
    "  SELECT t.seq, t.id, t.kind, t.pending_id," NL
    "    CASE WHEN t.kind <> 'pending' THEN NULL" NL
    "      ELSE coalesce((SELECT CASE r.kind WHEN 'post' THEN 'posted' ELSE 'voided' END" NL
    "        FROM transfers AS r WHERE r.pending_id = t.id AND r.kind IN ('post', 'void'))," NL
    "        'open') END," NL
    "    t.payment_ref, t.debit, t.credit, t.amount, t.legs," NL
    "    strftime('%Y-%m-%dT%H:%M:%S', t.created / 1000, 'unixepoch')" NL
    "      || printf('.%03dZ', t.created % 1000)," NL
    "    lower(hex(t.hash))" NL
    "  FROM transfers AS t ORDER BY t.seq;" NL
    "CREATE VIEW v_chain (seq, prev_hash, canonical, hash) AS" NL
    "  SELECT seq, prev_hash, seq || char(10) || id || char(10) || kind || char(10)" NL
    "    || coalesce(pending_id, '') || char(10) || payment_ref || char(10) || debit || char(10)" NL
    "    || credit || char(10) || amount || char(10) || legs || char(10) || created || char(10)," NL
    "    hash" NL
    "  FROM transfers ORDER BY seq;" NL,
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

sqlite3 *
ledger_db_open(const char *path, char *err, size_t errlen)
{
	return db_open(path, DB_SYNC_FULL, migrations, NMIGRATIONS, err, errlen);
}

static int
schema_version(sqlite3 *db, int64_t *version)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

sqlite3 *
ledger_db_open_readonly(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int64_t version = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
		SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK || schema_version(db, &version) != 0) {
		snprintf(err, errlen, "%s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return NULL;
	}
	if (version < LEDGER_SCHEMA_BOOKS || (uint64_t)version > NMIGRATIONS) {
		snprintf(err, errlen, "%s: schema version %lld, this program reads %d to %zu%s", path,
		    (long long)version, LEDGER_SCHEMA_BOOKS, NMIGRATIONS,
		    version < LEDGER_SCHEMA_BOOKS ? " (start cn2-ledger once to migrate it)" : "");
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

int
ledger_start(struct ledger *s, struct daemon *d, const struct ledger_cfg *cfg, char *err,
    size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->d = d;
	if ((s->db = ledger_db_open(cfg->database, err, errlen)) == NULL)
		return -1;
	if ((s->j = journal_new(s->db)) == NULL || (s->q = dbq_new(d->loop, s->db)) == NULL) {
		snprintf(err, errlen, "out of memory");
		ledger_stop(s);
		return -1;
	}
	return 0;
}

/* Commit and answer what is queued before the database closes. */
void
ledger_stop(struct ledger *s)
{
	dbq_free(s->q);
	s->q = NULL;
	journal_free(s->j);
	s->j = NULL;
	db_close(s->db);
	s->db = NULL;
}

void
ledger_health(struct ledger *s, struct ipc_health_rep *rep)
{
	if (s->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
		return;
	}
	snprintf(rep->detail, sizeof(rep->detail), "ok: %llu writes in %llu commits",
	    dbq_writes(s->q), dbq_batches(s->q));
}
