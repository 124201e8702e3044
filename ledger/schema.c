/*
 * schema.c — ledger.db's schema: every migration, oldest first.
 *
 * Security stance: the schema, not only this program, keeps the books honest,
 * so that an auditor with the sqlite3 shell (where foreign keys are off by
 * default) can trust what it reads. Triggers refuse any UPDATE of accounts,
 * transfers, entries and cached balances, and any DELETE but the retention
 * sweep's of transfers older than seven years; a transfer row carries its legs
 * as canonical JSON, is refused unless they balance and fit its kind, and
 * writes its entries itself, so entries cannot be added, changed or orphaned;
 * a pending transfer is posted or voided at most once, a dispute resolved at
 * most once, a payout reversed at most once; the cached balance of an account
 * moves only by the entry just written. Uniqueness is checked in triggers
 * before SQLite's own constraints, so INSERT OR REPLACE can never delete a row
 * behind the triggers' back. What SQL cannot check, the SHA-256 of each row
 * chained to the previous one, is computed in C (chain.c); the schema checks
 * that each row links to the one before.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 * Account kinds and transfer kinds are checked in triggers rather than CHECK
 * constraints so that a migration can add kinds by replacing one trigger
 * instead of rebuilding a table others point into (migration 3 did).
 *
 * SQLite has no common table expressions inside triggers, so a value a
 * trigger needs in several places (the seller's share of a capture, say) is
 * spelled out as the same scalar subquery each time.
 */
#include "ledger/ledger.h"

#define NL "\n"
#define CHARSET(c) "(" c " NOT GLOB '*[^!-~]*')"


/*
 * The retention floor in unix milliseconds, as SQLite computes it in a
 * trigger: seven calendar years before now.
 */
#define RETAIN "(CAST(strftime('%s', 'now', '-7 years') AS INTEGER) * 1000)"
/* The seller's share of the post that NEW.pending_id names (0 if it has no seller leg). */
#define POST_SHARE                                                                         \
	"coalesce((SELECT json_extract(j.value, '$[1]') FROM transfers AS p, json_each(p.legs)" \
	" AS j WHERE p.id = NEW.pending_id AND j.key >= 1"                                      \
	" AND json_extract(j.value, '$[0]') = p.credit), 0)"
/* The seller's share the dispute NEW.pending_id holds (0 if it has no seller leg). */
#define HELD_SHARE                                                                          \
	"coalesce((SELECT -json_extract(j.value, '$[1]') FROM transfers AS d, json_each(d.legs)" \
	" AS j WHERE d.id = NEW.pending_id AND json_extract(j.value, '$[0]') = d.debit), 0)"

/*
 * Trigger heads that a later migration's new version of a trigger starts
 * with too: the SQL of the older migration is byte for byte what it was.
 */
#define ACCOUNTS_INSERT_HEAD                                                                   \
	"CREATE TRIGGER accounts_insert BEFORE INSERT ON accounts BEGIN" NL                        \
	"  SELECT RAISE(ABORT, 'accounts: name exists')" NL                                         \
	"    WHERE EXISTS (SELECT 1 FROM accounts WHERE name = NEW.name);" NL                       \
	"  SELECT RAISE(ABORT, 'accounts: kind and name do not match')" NL                          \
	"    WHERE NOT (CASE NEW.kind WHEN 'clearing' THEN NEW.name GLOB 'clearing:?*'" NL          \
	"      WHEN 'escrow' THEN NEW.name = 'escrow' WHEN 'earnings' THEN NEW.name GLOB 'seller:?*'" NL
#define LEGS_CANONICAL                                                                         \
	"CREATE TRIGGER transfers_legs BEFORE INSERT ON transfers BEGIN" NL                         \
	"  SELECT RAISE(ABORT, 'transfers: legs must be a canonical JSON array of 2 to 8 legs')" NL \
	"    WHERE NOT (json_valid(NEW.legs) AND NEW.legs = json(NEW.legs)" NL                      \
	"      AND json_type(NEW.legs) = 'array' AND json_array_length(NEW.legs) BETWEEN 2 AND 8);" NL

/*
 * The amount of the leg of account a at position i (0 if the leg there is
 * another account's), and the same at any position from 1 to n: the legs of
 * a post are read by position, which is cheaper than walking them.
 */
#define LEG_AT(a, i)                                                                   \
	"(CASE WHEN json_extract(NEW.legs, '$[" #i "][0]') = " a                          \
	" THEN json_extract(NEW.legs, '$[" #i "][1]') ELSE 0 END)"
#define LEG_UPTO(a, n)                                                                 \
	"(CASE WHEN json_extract(NEW.legs, '$[1][0]') = " a " THEN json_extract(NEW.legs, '$[1][1]')" \
	" WHEN " #n " >= 2 AND json_extract(NEW.legs, '$[2][0]') = " a                     \
	" THEN json_extract(NEW.legs, '$[2][1]')"                                         \
	" WHEN " #n " >= 3 AND json_extract(NEW.legs, '$[3][0]') = " a                     \
	" THEN json_extract(NEW.legs, '$[3][1]') ELSE 0 END)"

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
    ACCOUNTS_INSERT_HEAD
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
    LEGS_CANONICAL
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

    /*
     * 3: the whole account model (premium surcharge, refunds, dispute
     * reserve, payouts), disputes and payouts as transfer kinds, linked
     * transfers, cached balances checked by the schema, and retention: a
     * checkpoint and opening balances so that transfers older than seven
     * years can be archived and deleted, and nothing younger ever can.
     */
    "CREATE TABLE checkpoint (" NL
    "  id INTEGER PRIMARY KEY CHECK (id = 1)," NL
    "  seq INTEGER NOT NULL CHECK (seq >= 1), -- the last transfer deleted by the retention sweep" NL
    "  hash BLOB NOT NULL CHECK (length(hash) = 32), -- its hash: the prev_hash of seq + 1" NL
    "  created INTEGER NOT NULL, -- its time, unix milliseconds" NL
    "  swept INTEGER NOT NULL -- when the sweep ran, unix milliseconds" NL
    ") STRICT;" NL
    "CREATE TABLE opening (" NL
    "  account INTEGER PRIMARY KEY REFERENCES accounts (id)," NL
    "  balance INTEGER NOT NULL, -- the sum of the entries deleted with their transfers" NL
    "  through INTEGER NOT NULL -- the checkpoint's seq when it was carried forward" NL
    ") STRICT;" NL
    "CREATE TRIGGER checkpoint_insert BEFORE INSERT ON checkpoint BEGIN" NL
    "  SELECT RAISE(ABORT, 'checkpoint: one row, naming by its hash a transfer older than 7 years')" NL
    "    WHERE EXISTS (SELECT 1 FROM checkpoint) OR NOT EXISTS (SELECT 1 FROM transfers" NL
    "      WHERE seq = NEW.seq AND hash = NEW.hash AND created = NEW.created AND created < " RETAIN ");" NL
    "END;" NL
    "CREATE TRIGGER checkpoint_update BEFORE UPDATE ON checkpoint BEGIN" NL
    "  SELECT RAISE(ABORT, 'checkpoint: moves forward only, to a transfer older than 7 years')" NL
    "    WHERE NEW.id IS NOT OLD.id OR NEW.seq <= OLD.seq OR NOT EXISTS (SELECT 1 FROM transfers" NL
    "      WHERE seq = NEW.seq AND hash = NEW.hash AND created = NEW.created AND created < " RETAIN ");" NL
    "END;" NL
    "CREATE TRIGGER checkpoint_no_delete BEFORE DELETE ON checkpoint BEGIN" NL
    "  SELECT RAISE(ABORT, 'the checkpoint is never deleted'); END;" NL
    "CREATE TRIGGER opening_insert BEFORE INSERT ON opening BEGIN" NL
    "  SELECT RAISE(ABORT, 'opening: a balance carried forward is the sum of the entries it replaces')" NL
    "    WHERE EXISTS (SELECT 1 FROM opening WHERE account = NEW.account)" NL
    "      OR NEW.through IS NOT (SELECT seq FROM checkpoint)" NL
    "      OR NEW.balance IS NOT (SELECT coalesce(sum(amount), 0) FROM entries" NL
    "        WHERE account = NEW.account AND transfer <= NEW.through);" NL
    "END;" NL
    "CREATE TRIGGER opening_update BEFORE UPDATE ON opening BEGIN" NL
    "  SELECT RAISE(ABORT, 'opening: a balance carried forward is the sum of the entries it replaces')" NL
    "    WHERE NEW.account IS NOT OLD.account OR NEW.through <= OLD.through" NL
    "      OR NEW.through IS NOT (SELECT seq FROM checkpoint)" NL
    "      OR NEW.balance IS NOT OLD.balance + (SELECT coalesce(sum(amount), 0) FROM entries" NL
    "        WHERE account = OLD.account AND transfer > OLD.through AND transfer <= NEW.through);" NL
    "END;" NL
    "CREATE TRIGGER opening_no_delete BEFORE DELETE ON opening BEGIN" NL
    "  SELECT RAISE(ABORT, 'opening balances are never deleted'); END;" NL

    /* New account kinds. */
    "DROP TRIGGER accounts_insert;" NL
    ACCOUNTS_INSERT_HEAD
    "      WHEN 'fees' THEN NEW.name = 'platform:fees'" NL
    "      WHEN 'premium' THEN NEW.name = 'platform:premium'" NL
    "      WHEN 'refunds' THEN NEW.name = 'platform:refunds'" NL
    "      WHEN 'reserve' THEN NEW.name = 'reserve:disputes'" NL
    "      WHEN 'payouts' THEN NEW.name GLOB 'payouts:?*' ELSE 0 END);" NL
    "END;" NL

    /* Cached balances: filled from the entries, then moved only by new entries. */
    "CREATE TABLE balances (" NL
    "  account INTEGER PRIMARY KEY REFERENCES accounts (id)," NL
    "  balance INTEGER NOT NULL, -- opening balance + the sum of the account's entries, µUSD" NL
    "  last_seq INTEGER NOT NULL -- the last transfer that moved it (0: none)" NL
    ") STRICT;" NL
    "INSERT INTO balances (account, balance, last_seq)" NL
    "  SELECT a.id, coalesce(sum(e.amount), 0), coalesce(max(e.transfer), 0)" NL
    "  FROM accounts AS a LEFT JOIN entries AS e ON e.account = a.id GROUP BY a.id;" NL
    "CREATE TRIGGER accounts_balance AFTER INSERT ON accounts BEGIN" NL
    "  INSERT INTO balances (account, balance, last_seq) VALUES (NEW.id, 0, 0); END;" NL
    "CREATE TRIGGER balances_insert BEFORE INSERT ON balances BEGIN" NL
    "  SELECT RAISE(ABORT, 'balances: only a new account adds its row, at zero')" NL
    "    WHERE NEW.balance IS NOT 0 OR NEW.last_seq IS NOT 0" NL
    "      OR NOT EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account)" NL
    "      OR EXISTS (SELECT 1 FROM balances WHERE account = NEW.account);" NL
    "END;" NL
    "CREATE TRIGGER entries_balance AFTER INSERT ON entries BEGIN" NL
    "  UPDATE balances SET balance = balance + NEW.amount, last_seq = NEW.transfer" NL
    "    WHERE account = NEW.account;" NL
    "END;" NL
    "CREATE TRIGGER balances_update BEFORE UPDATE ON balances BEGIN" NL
    "  SELECT RAISE(ABORT, 'balances: only the entry just written moves a balance')" NL
    "    WHERE NEW.account IS NOT OLD.account OR NEW.last_seq <= OLD.last_seq" NL
    "      OR NEW.last_seq IS NOT (SELECT max(seq) FROM transfers)" NL
    "      OR NEW.balance IS NOT OLD.balance + (SELECT amount FROM entries" NL
    "        WHERE transfer = NEW.last_seq AND account = OLD.account);" NL
    "END;" NL
    "CREATE TRIGGER balances_no_delete BEFORE DELETE ON balances BEGIN" NL
    "  SELECT RAISE(ABORT, 'balances are never deleted'); END;" NL

    /* Linked transfers: a group of link_len consecutive rows, all or none. */
    "ALTER TABLE transfers ADD COLUMN link TEXT CHECK (link IS NULL" NL
    "  OR (length(link) BETWEEN 1 AND 80 AND " CHARSET("link") "));" NL
    "ALTER TABLE transfers ADD COLUMN link_len INTEGER CHECK (link_len IS NULL" NL
    "  OR link_len BETWEEN 2 AND 1000000);" NL
    "CREATE INDEX transfers_link ON transfers (link, seq) WHERE link IS NOT NULL;" NL
    "CREATE TRIGGER transfers_link BEFORE INSERT ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: link and link_len go together')" NL
    "    WHERE (NEW.link IS NULL) <> (NEW.link_len IS NULL);" NL
    "  SELECT RAISE(ABORT, 'transfers: a linked group is consecutive rows, no more than link_len')" NL
    "    WHERE NEW.link IS NOT NULL AND EXISTS (SELECT 1 FROM transfers WHERE link = NEW.link)" NL
    "      AND ((SELECT link FROM transfers WHERE seq = NEW.seq - 1) IS NOT NEW.link" NL
    "        OR (SELECT link_len FROM transfers WHERE seq = NEW.seq - 1) IS NOT NEW.link_len" NL
    "        OR NEW.seq - (SELECT min(seq) FROM transfers WHERE link = NEW.link) >= NEW.link_len);" NL
    "  SELECT RAISE(ABORT, 'transfers: the linked group before this row is incomplete')" NL
    "    WHERE (SELECT link FROM transfers WHERE seq = NEW.seq - 1) IS NOT NULL" NL
    "      AND (SELECT link FROM transfers WHERE seq = NEW.seq - 1) IS NOT NEW.link" NL
    "      AND NEW.seq - (SELECT min(t.seq) FROM transfers AS t WHERE t.link =" NL
    "        (SELECT link FROM transfers WHERE seq = NEW.seq - 1))" NL
    "        < (SELECT link_len FROM transfers WHERE seq = NEW.seq - 1);" NL
    "END;" NL

    /* The chain continues from the checkpoint once the oldest rows are swept. */
    "DROP TRIGGER transfers_chain;" NL
    "CREATE TRIGGER transfers_chain BEFORE INSERT ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: seq must be the next in the chain')" NL
    "    WHERE NEW.seq IS NOT coalesce((SELECT max(seq) FROM transfers)," NL
    "      (SELECT seq FROM checkpoint), 0) + 1;" NL
    "  SELECT RAISE(ABORT, 'transfers: prev_hash must be the hash of the previous transfer')" NL
    "    WHERE NEW.prev_hash IS NOT coalesce((SELECT hash FROM transfers WHERE seq = NEW.seq - 1)," NL
    "      (SELECT hash FROM checkpoint WHERE seq = NEW.seq - 1), zeroblob(32));" NL
    "  SELECT RAISE(ABORT, 'transfers: id exists')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE id = NEW.id);" NL
    "  SELECT RAISE(ABORT, 'transfers: hash exists')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE hash = NEW.hash);" NL
    "END;" NL

    /*
     * The checks every row pays for, again, cheaper: the legs read in one
     * pass, an entry checked against its own leg by position. "Each account
     * once" is "no two legs name the same account" rather than a count of
     * distinct names, which would make SQLite build and free a temporary
     * b-tree for every row; for legs that pass the per-leg checks the two
     * say the same, and a leg that does not already makes the count differ.
     */
    "DROP TRIGGER transfers_legs;" NL
    LEGS_CANONICAL
    "  SELECT RAISE(ABORT, 'transfers: every leg must be [existing account, non-zero integer],"
    " each account once, the legs summing to zero and their debits to the amount')" NL
    "    WHERE (SELECT count(*) <> json_array_length(NEW.legs)" NL
    "        OR sum(v) <> 0 OR -sum(CASE WHEN v < 0 THEN v END) IS NOT NEW.amount" NL
    "      FROM (SELECT json_extract(j.value, '$[1]') AS v" NL
    "        FROM json_each(NEW.legs) AS j WHERE j.type = 'array' AND json_array_length(j.value) = 2" NL
    "          AND json_type(j.value, '$[0]') = 'text' AND json_type(j.value, '$[1]') = 'integer'" NL
    "          AND json_extract(j.value, '$[1]') <> 0" NL
    "          AND EXISTS (SELECT 1 FROM accounts WHERE name = json_extract(j.value, '$[0]'))))" NL
    "      OR EXISTS (SELECT 1 FROM json_each(NEW.legs) AS x, json_each(NEW.legs) AS y" NL
    "        WHERE y.key > x.key" NL
    "          AND json_extract(y.value, '$[0]') = json_extract(x.value, '$[0]'));" NL
    "END;" NL
    "DROP TRIGGER entries_insert;" NL
    "CREATE TRIGGER entries_insert BEFORE INSERT ON entries BEGIN" NL
    "  SELECT RAISE(ABORT, 'entries: only a transfer writes its entries, once')" NL
    "    WHERE EXISTS (SELECT 1 FROM entries WHERE transfer = NEW.transfer AND leg = NEW.leg)" NL
    "    OR EXISTS (SELECT 1 FROM entries WHERE transfer = NEW.transfer AND account = NEW.account)" NL
    "    OR NOT EXISTS (SELECT 1 FROM transfers AS t, accounts AS a WHERE t.seq = NEW.transfer" NL
    "      AND a.id = NEW.account AND NEW.leg BETWEEN 1 AND json_array_length(t.legs)" NL
    "      AND a.name = json_extract(t.legs, '$[' || (NEW.leg - 1) || '][0]')" NL
    "      AND json_extract(t.legs, '$[' || (NEW.leg - 1) || '][1]') = NEW.amount);" NL
    "END;" NL

    /*
     * Transfer kinds, and the rules of the new ones. The kind check is a
     * chain of <>, which answers as NOT IN would for every value (NULL
     * included) without the temporary b-tree SQLite builds, on every row,
     * for a NOT IN list of three or more.
     */
    "DROP TRIGGER transfers_kind;" NL
    "CREATE TRIGGER transfers_kind BEFORE INSERT ON transfers WHEN NEW.kind <> 'pending'" NL
    "  AND NEW.kind <> 'post' AND NEW.kind <> 'void' AND NEW.kind <> 'dispute'" NL
    "  AND NEW.kind <> 'dispute_return' AND NEW.kind <> 'refund' AND NEW.kind <> 'payout'" NL
    "  AND NEW.kind <> 'payout_reversal' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: kind must be pending, post, void, dispute, dispute_return,"
    " refund, payout or payout_reversal'); END;" NL
    "CREATE UNIQUE INDEX transfers_captured ON transfers (payment_ref) WHERE kind = 'post';" NL
    "CREATE UNIQUE INDEX transfers_disputed ON transfers (pending_id) WHERE kind = 'dispute';" NL
    "CREATE UNIQUE INDEX transfers_dispute_end ON transfers (pending_id)" NL
    "  WHERE kind IN ('dispute_return', 'refund');" NL
    "CREATE UNIQUE INDEX transfers_reversed ON transfers (pending_id) WHERE kind = 'payout_reversal';" NL
    "CREATE INDEX transfers_earned ON transfers (credit, created) WHERE kind = 'post';" NL

    "DROP TRIGGER transfers_post;" NL
    "CREATE TRIGGER transfers_post BEFORE INSERT ON transfers WHEN NEW.kind = 'post' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a post credits a seller earnings account')" NL
    "    WHERE (SELECT kind FROM accounts WHERE name = NEW.credit) IS NOT 'earnings';" NL
    "  SELECT RAISE(ABORT, 'transfers: the payment is captured already')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE payment_ref = NEW.payment_ref AND kind = 'post');" NL
    "  SELECT RAISE(ABORT, 'transfers: post legs must be [debit, -amount], then the seller share,"
    " platform:fees and platform:premium in that order, zero legs left out')" NL
    "    WHERE NEW.legs IS NOT '[' || json_array(NEW.debit, -NEW.amount)" NL
    "      || CASE WHEN " LEG_AT("NEW.credit", 1) " > 0" NL
    "        THEN ',' || json_array(NEW.credit, " LEG_AT("NEW.credit", 1) ") ELSE '' END" NL
    "      || CASE WHEN " LEG_UPTO("'platform:fees'", 2) " > 0" NL
    "        THEN ',' || json_array('platform:fees', " LEG_UPTO("'platform:fees'", 2) ") ELSE '' END" NL
    "      || CASE WHEN " LEG_UPTO("'platform:premium'", 3) " > 0" NL
    "        THEN ',' || json_array('platform:premium', " LEG_UPTO("'platform:premium'", 3) ")"
    " ELSE '' END || ']';" NL
    "END;" NL

    "CREATE TRIGGER transfers_dispute BEFORE INSERT ON transfers WHEN NEW.kind = 'dispute' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a dispute id is dsp_ and a token without : or /')" NL
    "    WHERE NEW.id NOT GLOB 'dsp_?*' OR NEW.id GLOB '*[:/]*';" NL
    "  SELECT RAISE(ABORT, 'transfers: a dispute names a captured payment: its post, amount and seller')" NL
    "    WHERE NOT EXISTS (SELECT 1 FROM transfers AS p WHERE p.id = NEW.pending_id" NL
    "      AND p.kind = 'post' AND p.payment_ref = NEW.payment_ref AND p.amount = NEW.amount" NL
    "      AND p.credit = NEW.debit);" NL
    "  SELECT RAISE(ABORT, 'transfers: the payment is disputed already')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE pending_id = NEW.pending_id AND kind = 'dispute');" NL
    "  SELECT RAISE(ABORT, 'transfers: a dispute moves the seller share and the platform share"
    " of the payment to reserve:disputes')" NL
    "    WHERE NEW.credit IS NOT 'reserve:disputes' OR NEW.legs IS NOT '['" NL
    "      || CASE WHEN " POST_SHARE " > 0" NL
    "        THEN json_array(NEW.debit, -" POST_SHARE ") || ',' ELSE '' END" NL
    "      || CASE WHEN NEW.amount > " POST_SHARE NL
    "        THEN json_array('platform:refunds', " POST_SHARE " - NEW.amount) || ',' ELSE '' END" NL
    "      || json_array(NEW.credit, NEW.amount) || ']';" NL
    "END;" NL
    "CREATE TRIGGER transfers_dispute_end BEFORE INSERT ON transfers" NL
    "  WHEN NEW.kind IN ('dispute_return', 'refund') BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: id must be <dispute id>:return or <dispute id>:refund')" NL
    "    WHERE NEW.id IS NOT NEW.pending_id || CASE NEW.kind WHEN 'refund' THEN ':refund'" NL
    "      ELSE ':return' END;" NL
    "  SELECT RAISE(ABORT, 'transfers: pending_id names no dispute of this payment and amount')" NL
    "    WHERE NOT EXISTS (SELECT 1 FROM transfers AS d WHERE d.id = NEW.pending_id" NL
    "      AND d.kind = 'dispute' AND d.payment_ref = NEW.payment_ref AND d.amount = NEW.amount" NL
    "      AND d.credit = NEW.debit);" NL
    "  SELECT RAISE(ABORT, 'transfers: the dispute is resolved already')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE pending_id = NEW.pending_id" NL
    "      AND kind IN ('dispute_return', 'refund'));" NL
    "  SELECT RAISE(ABORT, 'transfers: a return gives back exactly what the dispute held')" NL
    "    WHERE NEW.kind = 'dispute_return' AND (NEW.credit IS NOT" NL
    "      (SELECT debit FROM transfers WHERE id = NEW.pending_id) OR NEW.legs IS NOT '['" NL
    "      || json_array(NEW.debit, -NEW.amount)" NL
    "      || CASE WHEN " HELD_SHARE " > 0" NL
    "        THEN ',' || json_array(NEW.credit, " HELD_SHARE ") ELSE '' END" NL
    "      || CASE WHEN NEW.amount > " HELD_SHARE NL
    "        THEN ',' || json_array('platform:refunds', NEW.amount - " HELD_SHARE ") ELSE '' END" NL
    "      || ']');" NL
    "  SELECT RAISE(ABORT, 'transfers: a refund returns the whole payment to the buyer clearing account')" NL
    "    WHERE NEW.kind = 'refund' AND (NEW.credit IS NOT (SELECT pe.debit FROM transfers AS d" NL
    "      JOIN transfers AS po ON po.id = d.pending_id JOIN transfers AS pe ON pe.id = po.pending_id" NL
    "      WHERE d.id = NEW.pending_id) OR NEW.legs IS NOT json_array(json_array(NEW.debit," NL
    "        -NEW.amount), json_array(NEW.credit, NEW.amount)));" NL
    "END;" NL
    "CREATE TRIGGER transfers_payout BEFORE INSERT ON transfers WHEN NEW.kind = 'payout' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a payout is po/<batch>/<seller>, moving earnings whole to"
    " a payouts account')" NL
    "    WHERE NEW.pending_id IS NOT NULL" NL
    "      OR NEW.id IS NOT 'po/' || NEW.payment_ref || '/' || substr(NEW.debit, 8)" NL
    "      OR NEW.payment_ref GLOB '*[^A-Za-z0-9_-]*'" NL
    "      OR (SELECT kind FROM accounts WHERE name = NEW.debit) IS NOT 'earnings'" NL
    "      OR (SELECT kind FROM accounts WHERE name = NEW.credit) IS NOT 'payouts'" NL
    "      OR NEW.legs IS NOT json_array(json_array(NEW.debit, -NEW.amount)," NL
    "        json_array(NEW.credit, NEW.amount));" NL
    "END;" NL
    "CREATE TRIGGER transfers_reversal BEFORE INSERT ON transfers" NL
    "  WHEN NEW.kind = 'payout_reversal' BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers: a reversal is rv/<batch>/<seller> and gives a payout back whole')" NL
    "    WHERE NEW.id IS NOT 'rv/' || substr(NEW.pending_id, 4)" NL
    "      OR NOT EXISTS (SELECT 1 FROM transfers AS p WHERE p.id = NEW.pending_id" NL
    "        AND p.kind = 'payout' AND p.payment_ref = NEW.payment_ref AND p.amount = NEW.amount" NL
    "        AND p.debit = NEW.credit AND p.credit = NEW.debit)" NL
    "      OR NEW.legs IS NOT json_array(json_array(NEW.debit, -NEW.amount)," NL
    "        json_array(NEW.credit, NEW.amount));" NL
    "  SELECT RAISE(ABORT, 'transfers: the payout is reversed already')" NL
    "    WHERE EXISTS (SELECT 1 FROM transfers WHERE pending_id = NEW.pending_id" NL
    "      AND kind = 'payout_reversal');" NL
    "END;" NL

    /* Retention: only rows behind the checkpoint and older than 7 years may go. */
    "DROP TRIGGER transfers_no_delete;" NL
    "CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers BEGIN" NL
    "  SELECT RAISE(ABORT, 'transfers are append-only: only the retention sweep deletes, and only"
    " transfers older than 7 years behind the checkpoint')" NL
    "    WHERE OLD.seq > coalesce((SELECT seq FROM checkpoint), 0) OR OLD.created >= " RETAIN NL
    "      OR EXISTS (SELECT 1 FROM entries WHERE transfer = OLD.seq);" NL
    "END;" NL
    "DROP TRIGGER entries_no_delete;" NL
    "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN" NL
    "  SELECT RAISE(ABORT, 'entries are append-only: only the retention sweep deletes, and only"
    " entries carried into an opening balance')" NL
    "    WHERE OLD.transfer > coalesce((SELECT seq FROM checkpoint), 0)" NL
    "      OR (SELECT created FROM transfers WHERE seq = OLD.transfer) >= " RETAIN NL
    "      OR (SELECT through FROM opening WHERE account = OLD.account)" NL
    "        IS NOT (SELECT seq FROM checkpoint);" NL
    "END;" NL

    /* The auditor's views, again, and new ones. */
    "DROP VIEW v_balances;" NL
    "CREATE VIEW v_balances (account, balance) AS" NL
    "  SELECT a.name, coalesce((SELECT o.balance FROM opening AS o WHERE o.account = a.id), 0)" NL
    "    + coalesce(sum(e.amount), 0)" NL
    "  FROM accounts AS a LEFT JOIN entries AS e ON e.account = a.id GROUP BY a.id ORDER BY a.name;" NL
    "CREATE VIEW v_trial_balance (account, kind, opening, debits, credits, balance) AS" NL
    "  SELECT a.name, a.kind, coalesce(o.balance, 0)," NL
    "    coalesce((SELECT -sum(e.amount) FROM entries AS e WHERE e.account = a.id AND e.amount < 0), 0)," NL
    "    coalesce((SELECT sum(e.amount) FROM entries AS e WHERE e.account = a.id AND e.amount > 0), 0)," NL
    "    coalesce(o.balance, 0) + coalesce((SELECT sum(e.amount) FROM entries AS e" NL
    "      WHERE e.account = a.id), 0)" NL
    "  FROM accounts AS a LEFT JOIN opening AS o ON o.account = a.id ORDER BY a.name;" NL
    "CREATE VIEW v_balance_check (account, cached, derived) AS" NL
    "  SELECT v.account, b.balance, v.balance FROM v_balances AS v" NL
    "  JOIN accounts AS a ON a.name = v.account LEFT JOIN balances AS b ON b.account = a.id" NL
    "  WHERE b.balance IS NOT v.balance;" NL
    "DROP VIEW v_transfers;" NL
    "CREATE VIEW v_transfers (seq, id, kind, pending_id, state, payment_ref, debit, credit," NL
    "    amount, legs, created, hash, link, link_len) AS" NL
    "  SELECT t.seq, t.id, t.kind, t.pending_id," NL
    "    CASE t.kind" NL
    "      WHEN 'pending' THEN coalesce((SELECT CASE r.kind WHEN 'post' THEN 'posted' ELSE 'voided' END" NL
    "        FROM transfers AS r WHERE r.pending_id = t.id AND r.kind IN ('post', 'void')), 'open')" NL
    "      WHEN 'dispute' THEN coalesce((SELECT CASE r.kind WHEN 'refund' THEN 'refunded'" NL
    "        ELSE 'returned' END FROM transfers AS r WHERE r.pending_id = t.id" NL
    "        AND r.kind IN ('dispute_return', 'refund')), 'open')" NL
    "      WHEN 'payout' THEN CASE WHEN EXISTS (SELECT 1 FROM transfers AS r" NL
    "        WHERE r.pending_id = t.id AND r.kind = 'payout_reversal') THEN 'reversed' ELSE 'paid' END" NL
    "      ELSE NULL END," NL
    "    t.payment_ref, t.debit, t.credit, t.amount, t.legs," NL
    "    strftime('%Y-%m-%dT%H:%M:%S', t.created / 1000, 'unixepoch')" NL
    "      || printf('.%03dZ', t.created % 1000)," NL
    "    lower(hex(t.hash)), t.link, t.link_len" NL
    "  FROM transfers AS t ORDER BY t.seq;" NL
    "DROP VIEW v_chain;" NL
    "CREATE VIEW v_chain (seq, prev_hash, canonical, hash) AS" NL
    "  SELECT seq, prev_hash, seq || char(10) || id || char(10) || kind || char(10)" NL
    "    || coalesce(pending_id, '') || char(10) || payment_ref || char(10) || debit || char(10)" NL
    "    || credit || char(10) || amount || char(10) || legs || char(10) || created || char(10)" NL
    "    || CASE WHEN link IS NULL THEN '' ELSE link || char(10) || link_len || char(10) END," NL
    "    hash" NL
    "  FROM transfers ORDER BY seq;" NL
    "CREATE VIEW v_disputes (dispute_id, payment_ref, seller, amount, seller_amount, state," NL
    "    opened, resolved) AS" NL
    "  SELECT d.id, d.payment_ref, substr(d.debit, 8), d.amount," NL
    "    coalesce((SELECT -json_extract(j.value, '$[1]') FROM json_each(d.legs) AS j" NL
    "      WHERE json_extract(j.value, '$[0]') = d.debit), 0)," NL
    "    coalesce((SELECT CASE r.kind WHEN 'refund' THEN 'refunded' ELSE 'returned' END" NL
    "      FROM transfers AS r WHERE r.pending_id = d.id AND r.kind IN ('dispute_return', 'refund'))," NL
    "      'open')," NL
    "    d.created, (SELECT r.created FROM transfers AS r WHERE r.pending_id = d.id" NL
    "      AND r.kind IN ('dispute_return', 'refund'))" NL
    "  FROM transfers AS d WHERE d.kind = 'dispute' ORDER BY d.seq;" NL
    "CREATE VIEW v_payouts (id, batch, seller, account, amount, created, state) AS" NL
    "  SELECT p.id, p.payment_ref, substr(p.debit, 8), p.credit, p.amount, p.created," NL
    "    CASE WHEN EXISTS (SELECT 1 FROM transfers AS r WHERE r.pending_id = p.id" NL
    "      AND r.kind = 'payout_reversal') THEN 'reversed' ELSE 'paid' END" NL
    "  FROM transfers AS p WHERE p.kind = 'payout' ORDER BY p.seq;" NL
    "CREATE VIEW v_earnings (seller, balance, earned, in_dispute, paid_out) AS" NL
    "  SELECT substr(a.name, 8), b.balance," NL
    "    coalesce((SELECT sum(e.amount) FROM entries AS e JOIN transfers AS t ON t.seq = e.transfer" NL
    "      WHERE e.account = a.id AND t.kind = 'post'), 0)," NL
    "    coalesce((SELECT sum(d.seller_amount) FROM v_disputes AS d" NL
    "      WHERE d.seller = substr(a.name, 8) AND d.state = 'open'), 0)," NL
    "    coalesce((SELECT -sum(e.amount) FROM entries AS e JOIN transfers AS t ON t.seq = e.transfer" NL
    "      WHERE e.account = a.id AND t.kind IN ('payout', 'payout_reversal')), 0)" NL
    "  FROM accounts AS a JOIN v_balances AS b ON b.account = a.name" NL
    "  WHERE a.kind = 'earnings' ORDER BY a.name;" NL,
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

const char *const *
ledger_migrations(size_t *n)
{
	*n = NMIGRATIONS;
	return migrations;
}
