/*
 * test_ledger_audit.c — the auditor's side of ledger.db: verify_books on
 * intact books, on books where one byte of one stored row was flipped in
 * the file (it must name that row, whichever row it is), on a cached balance
 * changed behind the triggers' back, and against anchors; the CSV export,
 * from which the whole chain is recomputed with nothing but the file; and
 * the seven-year retention sweep: what it deletes, what it must keep (open,
 * referred to, younger), balances that do not move, a chain that verifies
 * and grows on from its checkpoint.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>

#include "common/timefmt.h"
#include "tests/unit/ledger_fixture.h"

#define T0 INT64_C(1760000000000)
#define YEAR_MS INT64_C(31557600000) /* 365.25 days */

/* Forty transfers of every kind, each pending with an amount no other row has. */
static void
populate(struct fx *fx, int64_t now)
{
	struct payout_batch b;
	char id[16];

	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "p%02d", i);
		lf_paid(fx, id, i % 2 ? "s1" : "s2", 1000003 + 7919 * i, 1000000 + 7000 * i, now + i);
	}
	lf_apply(fx, LF_PEND, &(struct lf_args){"v1", "ref-v1", "tempo", 777001, 0}, now, NULL);
	lf_apply(fx, LF_VOID, &(struct lf_args){"v1", NULL, NULL, 0, 0}, now, NULL);
	lf_apply(fx, LF_OPEN, &(struct lf_args){"dsp_1", "ref-p03", NULL, 0, 0}, now + 20, NULL);
	lf_apply(fx, LF_RESOLVE, &(struct lf_args){"dsp_1", NULL, NULL, DISPUTE_FOR_BUYER, 0},
	    now + 21, NULL);
	memset(&b, 0, sizeof(b));
	snprintf(b.batch, sizeof(b.batch), "b1");
	snprintf(b.method, sizeof(b.method), "bank");
	b.threshold = 1;
	assert_int_equal(lf_payout(fx, &b, now + 30), JOURNAL_DONE);
	assert_int_equal(b.count, 2);
	lf_apply(fx, LF_PEND, &(struct lf_args){"open", "ref-open", "test", 555001, 0}, now + 40,
	    NULL);
}

static void auditor_queries(sqlite3 *db);

static struct verify_result
verify(sqlite3 *db, int want)
{
	struct verify_result v;
	int rc = verify_books(db, 0, NULL, &v);

	if (rc != want)
		fail_msg("verify_books: %d, want %d: seq %" PRId64 ": %s", rc, want, v.broken_seq,
		    v.why);
	return v;
}

static void
test_intact(void **state)
{
	struct fx *fx = *state;
	struct verify_result v;
	uint8_t h[LEDGER_HASH_LEN];
	sqlite3_stmt *st;
	int64_t last;

	populate(fx, T0);
	v = verify(fx->db, 0);
	assert_int_equal(v.first, 1);
	assert_int_equal(v.last, query_int(fx->db, "SELECT max(seq) FROM transfers"));
	assert_int_equal(v.open_pending, 555001);
	st = db_prepare(fx->db, "SELECT hash FROM transfers ORDER BY seq DESC LIMIT 1");
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_memory_equal(v.head, sqlite3_column_blob(st, 0), LEDGER_HASH_LEN);
	memcpy(h, v.head, sizeof(h));
	sqlite3_finalize(st);
	/* Anchors: the head itself, a wrong hash, a row that is not there. */
	last = v.last;
	assert_int_equal(verify_books(fx->db, last, h, &v), 0);
	h[5] ^= 1;
	assert_int_equal(verify_books(fx->db, last, h, &v), 1);
	assert_int_equal(v.broken_seq, last);
	assert_int_equal(verify_books(fx->db, 9999, h, &v), 1);
	assert_non_null(strstr(v.why, "anchor"));
	auditor_queries(fx->db);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void
spill(const char *path, const uint8_t *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Change one digit of every copy of needle in buf; the count of copies. */
static int
flip_digit(uint8_t *buf, size_t len, const char *needle, size_t at)
{
	size_t n = strlen(needle);
	int copies = 0;

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(buf + i, needle, n) == 0) {
			buf[i + at] = buf[i + at] == '9' ? '8' : (uint8_t)(buf[i + at] + 1);
			copies++;
		}
	return copies;
}

/*
 * Flip one byte of one stored row, in the file, for rows picked at random:
 * the digit of an amount inside the row's legs, a column only that row has.
 */
static void
test_flipped_byte(void **state)
{
	struct fx *fx = *state;
	char copy[300], legs[LEDGER_LEGS_MAX], err[256];
	int64_t rows;
	uint8_t *orig;
	size_t len;

	populate(fx, T0);
	rows = query_int(fx->db, "SELECT max(seq) FROM transfers");
	/* Closing the only connection checkpoints the WAL into the file. */
	lf_close(fx);
	orig = slurp(fx->path, &len);
	assert_int_equal(lf_open(fx), 0);
	for (int round = 0; round < 12; round++) {
		int64_t k = 1 + (int64_t)(lf_rnd() % (uint64_t)rows);
		sqlite3_stmt *st = db_prepare(fx->db, "SELECT legs FROM transfers WHERE seq = ?1");
		uint8_t *buf = malloc(len);
		struct verify_result v;
		sqlite3 *ro;
		char *digit;

		sqlite3_bind_int64(st, 1, k);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		snprintf(legs, sizeof(legs), "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		assert_non_null(buf);
		memcpy(buf, orig, len);
		digit = strpbrk(legs, "123456789");
		assert_non_null(digit);
		if (flip_digit(buf, len, legs, (size_t)(digit - legs)) < 1)
			fail_msg("row %" PRId64 ": legs not found in the file", k);
		snprintf(copy, sizeof(copy), "%s.flip%d", fx->path, round);
		spill(copy, buf, len);
		free(buf);
		assert_non_null(ro = ledger_db_open_readonly(copy, err, sizeof(err)));
		assert_int_equal(verify_books(ro, 0, NULL, &v), 1);
		if (v.broken_seq != k)
			fail_msg("flipped row %" PRId64 ", verify named %" PRId64 ": %s", k,
			    v.broken_seq, v.why);
		sqlite3_close(ro);
		remove(copy);
	}
	free(orig);
}

/* A cached balance changed with the guard trigger dropped: verify names the account. */
static void
test_cache_tampered(void **state)
{
	struct fx *fx = *state;
	struct verify_result v;

	populate(fx, T0);
	assert_int_equal(sqlite3_exec(fx->db,
			     "DROP TRIGGER balances_update; UPDATE balances SET balance = balance + 1"
			     " WHERE account = (SELECT id FROM accounts WHERE name = 'seller:s1')",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(verify_books(fx->db, 0, NULL, &v), 1);
	assert_int_equal(v.broken_seq, 0);
	assert_non_null(strstr(v.why, "seller:s1"));
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_balance_check"), 1);
}

/* Split one CSV line (RFC 4180, CRLF-terminated) into fields. The count. */
static int
csv_split(char *line, char **f, int max)
{
	int n = 0;
	char *w = line, *r = line;

	while (n < max) {
		f[n++] = w;
		if (*r == '"') {
			for (r++; *r != '\0'; r++) {
				if (*r == '"' && r[1] == '"')
					*w++ = *r++;
				else if (*r == '"')
					break;
				else
					*w++ = *r;
			}
			r++;
		} else
			while (*r != ',' && *r != '\r' && *r != '\0')
				*w++ = *r++;
		if (*r != ',') {
			*w = '\0';
			return n;
		}
		*w++ = '\0';
		r++;
	}
	return n;
}

static void
unhex(const char *s, uint8_t *out)
{
	for (int i = 0; i < LEDGER_HASH_LEN; i++) {
		unsigned int b;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
}

/* Recompute every hash of an export from its fields alone. The rows read. */
static int
csv_rechain(FILE *fp)
{
	char line[2048], *f[16], kind[32];
	uint8_t want[LEDGER_HASH_LEN];
	int rows = 0;

	assert_non_null(fgets(line, sizeof(line), fp));
	assert_string_equal(line, "seq,id,kind,pending_id,payment_ref,debit,credit,amount,legs,"
				  "created_ms,created,link,link_len,prev_hash,hash\r\n");
	while (fgets(line, sizeof(line), fp) != NULL) {
		struct ledger_xfer x;

		assert_int_equal(csv_split(line, f, 16), 15);
		memset(&x, 0, sizeof(x));
		x.seq = strtoll(f[0], NULL, 10);
		snprintf(x.id, sizeof(x.id), "%s", f[1]);
		snprintf(kind, sizeof(kind), "%s", f[2]);
		x.kind = kind;
		snprintf(x.pending_id, sizeof(x.pending_id), "%s", f[3]);
		snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", f[4]);
		snprintf(x.debit, sizeof(x.debit), "%s", f[5]);
		snprintf(x.credit, sizeof(x.credit), "%s", f[6]);
		x.amount = strtoll(f[7], NULL, 10);
		snprintf(x.legs, sizeof(x.legs), "%s", f[8]);
		x.created = strtoll(f[9], NULL, 10);
		snprintf(x.link, sizeof(x.link), "%s", f[11]);
		x.link_len = strtoll(f[12], NULL, 10);
		unhex(f[13], x.prev_hash);
		unhex(f[14], want);
		assert_int_equal(chain_hash(&x), 0);
		assert_memory_equal(x.hash, want, LEDGER_HASH_LEN);
		rows++;
	}
	return rows;
}

static void
test_export(void **state)
{
	struct fx *fx = *state;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	populate(fx, T0);
	assert_non_null(out = open_memstream(&buf, &len));
	assert_int_equal(export_csv(fx->db, 0, INT64_MAX, INT64_MAX, out), 0);
	fclose(out);
	assert_non_null(out = fmemopen(buf, len, "r"));
	assert_int_equal(csv_rechain(out), query_int(fx->db, "SELECT count(*) FROM transfers"));
	fclose(out);
	free(buf);
	/* [T0 + 2, T0 + 11): the pending and post of p02 … p10. */
	buf = NULL;
	assert_non_null(out = open_memstream(&buf, &len));
	assert_int_equal(export_csv(fx->db, T0 + 2, T0 + 11, INT64_MAX, out), 0);
	fclose(out);
	assert_non_null(out = fmemopen(buf, len, "r"));
	assert_int_equal(csv_rechain(out), 18);
	fclose(out);
	free(buf);
}

/* Everything in the books, to compare before and after a sweep. */
static char *
balances_text(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT group_concat(account || '=' || balance, ';')"
					  " FROM v_balances");
	char *s;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return s;
}

/* docs/ledger.md's trial balance from the hashed legs alone, as balances_text prints it. */
static char *
legs_text(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT group_concat(account || '=' || balance, ';') FROM ("
	    "SELECT account, sum(amount) AS balance FROM ("
	    "  SELECT json_extract(j.value, '$[0]') AS account, json_extract(j.value, '$[1]') AS amount"
	    "    FROM transfers AS t, json_each(t.legs) AS j"
	    "  UNION ALL"
	    "  SELECT a.name, o.balance FROM opening AS o JOIN accounts AS a ON a.id = o.account)"
	    "GROUP BY account ORDER BY account)");
	char *s;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return s;
}

/* The documented checks an auditor runs with sqlite3 alone. */
static void
auditor_queries(sqlite3 *db)
{
	char *a = balances_text(db), *b = legs_text(db);

	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_int_equal(query_int(db, "SELECT count(*) FROM v_balance_check"), 0);
	assert_int_equal(query_int(db, "SELECT (SELECT balance FROM v_balances WHERE account ="
				       " 'escrow') = (SELECT coalesce(sum(amount), 0) FROM v_transfers"
				       " WHERE kind = 'pending' AND state = 'open')"),
	    1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM transfers AS a JOIN transfers AS b"
				       " ON b.seq = a.seq - 1 WHERE a.prev_hash IS NOT b.hash"),
	    0);
	assert_int_equal(query_int(db, "SELECT max(seq) - min(seq) + 1 = count(*) FROM transfers"),
	    1);
}

static int64_t
sweep(struct fx *fx, int64_t cutoff, const char *archive, int want)
{
	char err[256];
	int64_t swept = -1;
	FILE *fp = fopen(archive, "w");
	int rc;

	assert_non_null(fp);
	rc = prune_books(fx->db, cutoff, fp, time_now_ms(), &swept, err, sizeof(err));
	fclose(fp);
	if (rc != want)
		fail_msg("prune_books: %d, want %d: %s", rc, want, err);
	return swept;
}

static void
test_retention(void **state)
{
	struct fx *fx = *state;
	int64_t now = time_now_ms(), old = now - 8 * YEAR_MS, floor = prune_floor(fx->db);
	char archive[300], *before, *after;
	FILE *fp;

	assert_true(floor > now - 7 * YEAR_MS - 3 * 86400000 && floor < now - 7 * YEAR_MS + 86400000);
	populate(fx, old); /* seq 1 … 31, the last one open */
	lf_paid(fx, "mid", "s1", 5000, 4000, now - 6 * YEAR_MS); /* seq 32, 33 */
	before = balances_text(fx->db);
	snprintf(archive, sizeof(archive), "%s.archive", fx->path);
	/* Not before seven years. */
	sweep(fx, now - 6 * YEAR_MS, archive, -1);
	/* Everything up to the open pending transfer goes: 30 rows. */
	assert_int_equal(sweep(fx, floor, archive, 0), 30);
	assert_int_equal(query_int(fx->db, "SELECT min(seq) FROM transfers"), 31);
	assert_int_equal(query_int(fx->db, "SELECT seq FROM checkpoint"), 30);
	after = balances_text(fx->db);
	assert_string_equal(after, before);
	free(after);
	assert_non_null(fp = fopen(archive, "r"));
	assert_int_equal(csv_rechain(fp), 30);
	fclose(fp);
	verify(fx->db, 0);
	/* Younger rows are the database's to keep, whoever asks. */
	assert_int_not_equal(sqlite3_exec(fx->db, "DELETE FROM entries WHERE transfer = 32", NULL,
				 NULL, NULL),
	    SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(fx->db, "DELETE FROM transfers WHERE seq >= 31", NULL, NULL,
				 NULL),
	    SQLITE_OK);
	/* The open one is voided now: a row of today refers to it, so it stays. */
	assert_int_equal(lf_apply(fx, LF_VOID, &(struct lf_args){"open", NULL, NULL, 0, 0}, now, NULL),
	    JOURNAL_DONE);
	assert_int_equal(sweep(fx, floor, archive, 0), 0);
	/* The chain goes on from the checkpoint; verify walks it from there. */
	lf_paid(fx, "new", "s2", 1000, 900, now);
	assert_int_equal(verify(fx->db, 0).first, 31);
	after = balances_text(fx->db);
	assert_string_not_equal(after, before);
	free(after);
	free(before);
	assert_true(query_int(fx->db, "SELECT count(*) FROM v_trial_balance WHERE opening <> 0") > 3);
	auditor_queries(fx->db);
}

/* Books all older than seven years and closed: all of them go, and the chain goes on. */
static void
test_retention_all(void **state)
{
	struct fx *fx = *state;
	int64_t now = time_now_ms(), old = now - 9 * YEAR_MS;
	char archive[300];
	struct verify_result v;

	lf_paid(fx, "a", "s1", 1000, 900, old);
	lf_paid(fx, "b", "s2", 2000, 1800, old + 1);
	snprintf(archive, sizeof(archive), "%s.archive", fx->path);
	assert_int_equal(sweep(fx, prune_floor(fx->db), archive, 0), 4);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM transfers"), 0);
	assert_int_equal(balance(fx->db, "seller:s2"), 1800);
	v = verify(fx->db, 0);
	assert_int_equal(v.first, 5);
	lf_paid(fx, "c", "s1", 3000, 2700, now);
	assert_int_equal(query_int(fx->db, "SELECT min(seq) FROM transfers"), 5);
	assert_int_equal(balance(fx->db, "seller:s1"), 3600);
	v = verify(fx->db, 0);
	assert_int_equal(v.last, 6);
	remove(archive);
}

/* A row of a schema version 2 ledger, written as that version's code wrote it. */
static void
v2_row(sqlite3 *db, int64_t seq, const char *id, const char *kind, const char *pending,
    const char *debit, const char *credit, int64_t amount, const char *legs, uint8_t prev[32])
{
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit, amount,"
	    " legs, created, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, 'ref-old', ?5, ?6, ?7, ?8,"
	    " 1700000000000, ?9, ?10)");
	struct ledger_xfer x;

	memset(&x, 0, sizeof(x));
	x.seq = seq;
	snprintf(x.id, sizeof(x.id), "%s", id);
	x.kind = kind;
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", pending != NULL ? pending : "");
	snprintf(x.payment_ref, sizeof(x.payment_ref), "ref-old");
	snprintf(x.debit, sizeof(x.debit), "%s", debit);
	snprintf(x.credit, sizeof(x.credit), "%s", credit);
	x.amount = amount;
	snprintf(x.legs, sizeof(x.legs), "%s", legs);
	x.created = 1700000000000;
	memcpy(x.prev_hash, prev, 32);
	assert_int_equal(chain_hash(&x), 0);
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	if (pending != NULL)
		sqlite3_bind_text(st, 4, pending, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, debit, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, credit, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, amount);
	sqlite3_bind_text(st, 8, legs, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, prev, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 10, x.hash, 32, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	memcpy(prev, x.hash, 32);
}

/* Books written by schema version 2 migrate to 3: hashes, balances and the cache agree. */
static void
test_migrate_v2(void **state)
{
	struct fx *fx = *state;
	size_t n;
	const char *const *m = ledger_migrations(&n);
	uint8_t prev[32];
	char err[256], path[sizeof(fx->path)];
	sqlite3 *db;

	(void)n;
	lf_close(fx);
	if (snprintf(path, sizeof(path), "%.240s.v2", fx->path) >= (int)sizeof(path))
		fail();
	assert_non_null(db = db_open(path, DB_SYNC_FULL, m, 2, err, sizeof(err)));
	assert_int_equal(sqlite3_exec(db,
			     "INSERT INTO accounts (name, kind, created) VALUES ('clearing:test',"
			     " 'clearing', 0), ('escrow', 'escrow', 0), ('seller:old', 'earnings', 0),"
			     " ('platform:fees', 'fees', 0)",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	memset(prev, 0, sizeof(prev));
	v2_row(db, 1, "old1", "pending", NULL, "clearing:test", "escrow", 1100,
	    "[[\"clearing:test\",-1100],[\"escrow\",1100]]", prev);
	v2_row(db, 2, "old1:post", "post", "old1", "escrow", "seller:old", 1100,
	    "[[\"escrow\",-1100],[\"seller:old\",1000],[\"platform:fees\",100]]", prev);
	db_close(db);
	snprintf(fx->path, sizeof(fx->path), "%s", path);
	assert_int_equal(lf_open(fx), 0);
	assert_int_equal(query_int(fx->db, "PRAGMA user_version"), 3);
	assert_int_equal(query_int(fx->db, "SELECT balance FROM balances WHERE account ="
					   " (SELECT id FROM accounts WHERE name = 'seller:old')"),
	    1000);
	verify(fx->db, 0);
	/* And the books go on: a dispute of the old payment, a new one. */
	assert_int_equal(lf_apply(fx, LF_OPEN, &(struct lf_args){"dsp_old", "ref-old", NULL, 0, 0},
			     T0, NULL),
	    JOURNAL_DONE);
	lf_paid(fx, "new", "s1", 2200, 2000, T0);
	assert_int_equal(verify(fx->db, 0).last, 5);
	auditor_queries(fx->db);
}

/* The daemon's handle: WAL, and a commit is durable when it returns. */
static void
test_durable_settings(void **state)
{
	struct fx *fx = *state;
	sqlite3_stmt *st = db_prepare(fx->db, "PRAGMA journal_mode");

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(query_int(fx->db, "PRAGMA synchronous"), 2); /* FULL */
	assert_int_equal(query_int(fx->db, "PRAGMA foreign_keys"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    LF_TEST(test_intact),
	    LF_TEST(test_flipped_byte),
	    LF_TEST(test_cache_tampered),
	    LF_TEST(test_export),
	    LF_TEST(test_retention),
	    LF_TEST(test_retention_all),
	    LF_TEST(test_migrate_v2),
	    LF_TEST(test_durable_settings),
	};

	return LF_RUN(tests);
}
