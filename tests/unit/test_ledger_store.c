/*
 * test_ledger_store.c — ledger.db through journal.c on real files in a
 * temporary directory: pending, post and void with idempotent and conflicting
 * retries (a table of steps); thousands of seeded random operations checked
 * against a model (the trial balance stays zero, each seller earns the sum of
 * the shares posted to it); the hash chain and its v_chain view; the schema's
 * guarantees as an auditor meets them with the sqlite3 shell (foreign keys
 * off): no UPDATE, no DELETE, no unbalanced transfer, no second resolution,
 * also through the real `sqlite3` binary; and the trial balance report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "tests/unit/ledger_fixture.h"

/* Operations, as payments would send them. */

enum op { PEND, POST, VOID };

struct step {
	enum op op;
	const char *id;
	const char *a; /* PEND: payment_ref; POST: seller_id */
	const char *b; /* PEND: pay_method */
	int64_t amount; /* PEND: amount; POST: seller_amount */
	enum journal_status want;
	const char *detail; /* a part of the refusal's detail, or NULL */
};

static int
run_op(struct journal *j, const struct step *s, int64_t now, struct journal_result *r)
{
	struct ipc_ledger_pending p;
	struct ipc_ledger_post po;
	struct ipc_ledger_void v;

	memset(&p, 0, sizeof(p));
	memset(&po, 0, sizeof(po));
	memset(&v, 0, sizeof(v));
	switch (s->op) {
	case PEND:
		snprintf(p.xfer_id, sizeof(p.xfer_id), "%s", s->id);
		snprintf(p.payment_ref, sizeof(p.payment_ref), "%s", s->a);
		snprintf(p.pay_method, sizeof(p.pay_method), "%s", s->b);
		p.amount = s->amount;
		return journal_pending(j, &p, now, r);
	case POST:
		snprintf(po.xfer_id, sizeof(po.xfer_id), "%s", s->id);
		snprintf(po.seller_id, sizeof(po.seller_id), "%s", s->a);
		po.seller_amount = s->amount;
		return journal_post(j, &po, now, r);
	default:
		snprintf(v.xfer_id, sizeof(v.xfer_id), "%s", s->id);
		return journal_void(j, &v, now, r);
	}
}

/* One operation in its own transaction, as one dbq write would commit. */
static enum journal_status
apply(struct fx *fx, const struct step *s, struct journal_result *r)
{
	assert_int_equal(db_begin(fx->db), SQLITE_OK);
	if (run_op(fx->j, s, 1700000000123, r) == 0)
		assert_int_equal(db_commit(fx->db), SQLITE_OK);
	else
		assert_int_equal(db_rollback(fx->db), SQLITE_OK);
	return r->status;
}

static const char *const status_name[] = {"DONE", "SAME", "REFUSED", "FAILED"};

static const struct step steps[] = {
    {PEND, "x1", "r1", "test", 1000000, JOURNAL_DONE, NULL},
    {PEND, "x1", "r1", "test", 1000000, JOURNAL_SAME, NULL},
    {PEND, "x1", "r1", "test", 999, JOURNAL_REFUSED, "conflicts"},
    {PEND, "x1", "r2", "test", 1000000, JOURNAL_REFUSED, "conflicts"},
    {PEND, "x1", "r1", "tempo", 1000000, JOURNAL_REFUSED, "conflicts"},
    {POST, "x1", "s1", NULL, 900000, JOURNAL_DONE, NULL},
    {POST, "x1", "s1", NULL, 900000, JOURNAL_SAME, NULL},
    {POST, "x1", "s2", NULL, 900000, JOURNAL_REFUSED, "conflicts"},
    {POST, "x1", "s1", NULL, 800000, JOURNAL_REFUSED, "conflicts"},
    {VOID, "x1", NULL, NULL, 0, JOURNAL_REFUSED, "was posted"},
    {PEND, "x1", "r1", "test", 1000000, JOURNAL_SAME, NULL},
    {PEND, "x2", "r2", "tempo", 500, JOURNAL_DONE, NULL},
    {VOID, "x2", NULL, NULL, 0, JOURNAL_DONE, NULL},
    {VOID, "x2", NULL, NULL, 0, JOURNAL_SAME, NULL},
    {POST, "x2", "s1", NULL, 100, JOURNAL_REFUSED, "was voided"},
    {POST, "nope", "s1", NULL, 1, JOURNAL_REFUSED, "no pending transfer"},
    {VOID, "nope", NULL, NULL, 0, JOURNAL_REFUSED, "no pending transfer"},
    {POST, "x1:post", "s1", NULL, 1, JOURNAL_REFUSED, "no pending transfer"},
    {PEND, "x3", "r3", "test", 700, JOURNAL_DONE, NULL},
    {POST, "x3", "s2", NULL, 701, JOURNAL_REFUSED, "exceeds"},
    /* All of it to the platform: no seller leg, yet the seller is remembered. */
    {POST, "x3", "s2", NULL, 0, JOURNAL_DONE, NULL},
    {POST, "x3", "s3", NULL, 0, JOURNAL_REFUSED, "conflicts"},
    {POST, "x3", "s2", NULL, 0, JOURNAL_SAME, NULL},
    /* All of it to the seller: no fee leg. */
    {PEND, "x4", "r4", "test", 300, JOURNAL_DONE, NULL},
    {POST, "x4", "s2", NULL, 300, JOURNAL_DONE, NULL},
    /* Invalid fields are refused before anything is looked up. */
    {PEND, "a b", "r5", "test", 1, JOURNAL_REFUSED, "invalid xfer_id"},
    {PEND, "", "r5", "test", 1, JOURNAL_REFUSED, "invalid xfer_id"},
    {PEND, "x5:post", "r5", "test", 1, JOURNAL_REFUSED, "invalid xfer_id"},
    {PEND, "x5:void", "r5", "test", 1, JOURNAL_REFUSED, "invalid xfer_id"},
    {PEND, "x5\n", "r5", "test", 1, JOURNAL_REFUSED, "invalid xfer_id"},
    {PEND, "x5", "r\"5", "test", 1, JOURNAL_REFUSED, "invalid payment_ref"},
    {PEND, "x5", "r5", "Test", 1, JOURNAL_REFUSED, "invalid pay_method"},
    {PEND, "x5", "r5", "te st", 1, JOURNAL_REFUSED, "invalid pay_method"},
    {PEND, "x5", "r5", "", 1, JOURNAL_REFUSED, "invalid pay_method"},
    {PEND, "x5", "r5", "test", 0, JOURNAL_REFUSED, "amount out of range"},
    {PEND, "x5", "r5", "test", -1, JOURNAL_REFUSED, "amount out of range"},
    {PEND, "x5", "r5", "test", LEDGER_AMOUNT_MAX + 1, JOURNAL_REFUSED, "amount out of range"},
    {POST, "x4", "s 2", NULL, 1, JOURNAL_REFUSED, "invalid seller_id"},
    {POST, "x4", "s\\2", NULL, 1, JOURNAL_REFUSED, "invalid seller_id"},
    {POST, "x4", "s2", NULL, -1, JOURNAL_REFUSED, "out of range"},
    {PEND, "x5", "r5", "test", LEDGER_AMOUNT_MAX, JOURNAL_DONE, NULL},
};

static void
test_steps(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *account;
		int64_t balance;
	} want[] = {
	    {"clearing:tempo", 0},
	    {"clearing:test", -1001000 - LEDGER_AMOUNT_MAX},
	    {"escrow", LEDGER_AMOUNT_MAX},
	    {"platform:fees", 100000 + 700},
	    {"seller:s1", 900000},
	    {"seller:s2", 300},
	};
	struct journal_result r;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		enum journal_status got = apply(fx, &steps[i], &r);

		if (got != steps[i].want)
			fail_msg("step %zu (%s): got %s, want %s (%s)", i, steps[i].id,
			    status_name[got], status_name[steps[i].want], r.detail);
		if (steps[i].detail != NULL && strstr(r.detail, steps[i].detail) == NULL)
			fail_msg("step %zu: detail \"%s\" lacks \"%s\"", i, r.detail,
			    steps[i].detail);
	}
	/* Exactly these accounts, with these balances; s3 was refused and never created. */
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_balances"),
	    sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (balance(fx->db, want[i].account) != want[i].balance)
			fail_msg("%s: %" PRId64 ", want %" PRId64, want[i].account,
			    balance(fx->db, want[i].account), want[i].balance);
	assert_int_equal(query_int(fx->db, "SELECT sum(balance) FROM v_balances"), 0);
	/* x1, x2, x3, x4, x5 pending; x1, x3, x4 posted; x2 voided. */
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM transfers"), 9);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM v_transfers WHERE state = 'open'"), 1);
	assert_int_equal(query_int(fx->db, "SELECT count(*) FROM entries WHERE transfer IN"
					   " (SELECT seq FROM transfers WHERE id = 'x3:post')"),
	    2);
}

/* Random operations against a model of what each id's state must be. */

#define NIDS 48
#define NSELLERS 5
#define NRANDOM 4000

enum mstate { M_NONE, M_PENDING, M_POSTED, M_VOIDED };

struct mx {
	enum mstate state;
	char ref[16];
	const char *method;
	int64_t amount;
	int seller;
	int64_t seller_amount;
};

static int64_t
rnd_range(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(lf_rnd() % (uint64_t)(hi - lo + 1));
}

static const char *const methods[] = {"test", "tempo", "stripe"};

/* The request to make for id i, and the status the model expects. */
static enum journal_status
random_step(struct mx *m, int i, struct step *s, char *seller, size_t sellercap)
{
	static char id[16], ref[16];
	int k = (int)rnd_range(0, 2), sel = (int)rnd_range(0, NSELLERS - 1);

	snprintf(id, sizeof(id), "id%d", i);
	memset(s, 0, sizeof(*s));
	s->id = id;
	if (k == 0) {
		int same = m->state == M_NONE || rnd_range(0, 3) != 0;

		snprintf(ref, sizeof(ref), "ref%d%s", i, same ? "" : "x");
		s->op = PEND;
		s->a = ref;
		s->b = m->state != M_NONE && same ? m->method : methods[rnd_range(0, 2)];
		s->amount = m->state != M_NONE && same ? m->amount : rnd_range(1, 5000000);
		if (m->state == M_NONE)
			return JOURNAL_DONE;
		return strcmp(ref, m->ref) == 0 && strcmp(s->b, m->method) == 0 &&
			    s->amount == m->amount ?
			JOURNAL_SAME :
			JOURNAL_REFUSED;
	}
	if (k == 1) {
		if (m->state == M_POSTED && rnd_range(0, 1) == 0)
			sel = m->seller;
		snprintf(seller, sellercap, "s%d", sel);
		s->op = POST;
		s->a = seller;
		s->amount = m->state == M_POSTED && sel == m->seller && rnd_range(0, 1) == 0 ?
		    m->seller_amount :
		    rnd_range(0, m->amount + 10);
		if (m->state == M_NONE || m->state == M_VOIDED)
			return JOURNAL_REFUSED;
		if (m->state == M_POSTED)
			return sel == m->seller && s->amount == m->seller_amount ? JOURNAL_SAME :
										   JOURNAL_REFUSED;
		return s->amount <= m->amount ? JOURNAL_DONE : JOURNAL_REFUSED;
	}
	s->op = VOID;
	if (m->state == M_NONE || m->state == M_POSTED)
		return JOURNAL_REFUSED;
	return m->state == M_VOIDED ? JOURNAL_SAME : JOURNAL_DONE;
}

static void
model_apply(struct mx *m, const struct step *s)
{
	if (s->op == PEND) {
		m->state = M_PENDING;
		snprintf(m->ref, sizeof(m->ref), "%s", s->a);
		m->method = s->b;
		m->amount = s->amount;
	} else if (s->op == POST) {
		m->state = M_POSTED;
		m->seller = s->a[1] - '0';
		m->seller_amount = s->amount;
	} else
		m->state = M_VOIDED;
}

static void
check_model(sqlite3 *db, const struct mx *m)
{
	int64_t clearing[3] = {0, 0, 0}, sellers[NSELLERS] = {0}, escrow = 0, fees = 0;
	char name[32];

	for (int i = 0; i < NIDS; i++) {
		int meth = 0;

		if (m[i].state == M_NONE)
			continue;
		while (strcmp(methods[meth], m[i].method) != 0)
			meth++;
		if (m[i].state != M_VOIDED)
			clearing[meth] -= m[i].amount;
		if (m[i].state == M_PENDING)
			escrow += m[i].amount;
		if (m[i].state == M_POSTED) {
			sellers[m[i].seller] += m[i].seller_amount;
			fees += m[i].amount - m[i].seller_amount;
		}
	}
	for (int k = 0; k < 3; k++) {
		snprintf(name, sizeof(name), "clearing:%s", methods[k]);
		if (balance(db, name) != INT64_MIN)
			assert_int_equal(balance(db, name), clearing[k]);
	}
	for (int k = 0; k < NSELLERS; k++) {
		snprintf(name, sizeof(name), "seller:s%d", k);
		if (balance(db, name) != INT64_MIN || sellers[k] != 0)
			assert_int_equal(balance(db, name), sellers[k]);
	}
	assert_int_equal(balance(db, "escrow"), escrow);
	if (fees != 0)
		assert_int_equal(balance(db, "platform:fees"), fees);
	assert_int_equal(query_int(db, "SELECT sum(balance) FROM v_balances"), 0);
}

static void
test_random(void **state)
{
	struct fx *fx = *state;
	struct mx model[NIDS];
	struct journal_result r;
	const char *env = getenv("CN2_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : 20240601;
	char seller[16];
	size_t counts[4] = {0, 0, 0, 0};

	lf_rng = seed != 0 ? seed : 1;
	memset(model, 0, sizeof(model));
	assert_int_equal(db_begin(fx->db), SQLITE_OK);
	for (int n = 0; n < NRANDOM; n++) {
		int i = (int)rnd_range(0, NIDS - 1);
		struct step s;
		enum journal_status want = random_step(&model[i], i, &s, seller, sizeof(seller));

		assert_int_equal(run_op(fx->j, &s, 1700000000000 + n, &r), 0);
		if (r.status != want)
			fail_msg("seed %" PRIu64 ", op %d on %s: got %s, want %s (%s)", seed, n, s.id,
			    status_name[r.status], status_name[want], r.detail);
		counts[want]++;
		if (want == JOURNAL_DONE)
			model_apply(&model[i], &s);
		/* Commit in batches, as the daemon's group commit does. */
		if (n % 200 == 199) {
			assert_int_equal(db_commit(fx->db), SQLITE_OK);
			check_model(fx->db, model);
			assert_int_equal(db_begin(fx->db), SQLITE_OK);
		}
	}
	assert_int_equal(db_commit(fx->db), SQLITE_OK);
	check_model(fx->db, model);
	/* The mix exercised every answer. */
	assert_true(counts[JOURNAL_DONE] > 50 && counts[JOURNAL_SAME] > 50 &&
		    counts[JOURNAL_REFUSED] > 50);
}

/* The chain: recompute every hash from v_chain, and the canonical text from the columns. */

static void
populate(struct fx *fx)
{
	struct journal_result r;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		apply(fx, &steps[i], &r);
}

static void
row_to_xfer(sqlite3_stmt *st, struct ledger_xfer *x)
{
	memset(x, 0, sizeof(*x));
	x->seq = sqlite3_column_int64(st, 0);
	snprintf(x->id, sizeof(x->id), "%s", (const char *)sqlite3_column_text(st, 1));
	x->kind = (const char *)sqlite3_column_text(st, 2);
	if (sqlite3_column_type(st, 3) != SQLITE_NULL)
		snprintf(x->pending_id, sizeof(x->pending_id), "%s",
		    (const char *)sqlite3_column_text(st, 3));
	snprintf(x->payment_ref, sizeof(x->payment_ref), "%s",
	    (const char *)sqlite3_column_text(st, 4));
	snprintf(x->debit, sizeof(x->debit), "%s", (const char *)sqlite3_column_text(st, 5));
	snprintf(x->credit, sizeof(x->credit), "%s", (const char *)sqlite3_column_text(st, 6));
	x->amount = sqlite3_column_int64(st, 7);
	snprintf(x->legs, sizeof(x->legs), "%s", (const char *)sqlite3_column_text(st, 8));
	x->created = sqlite3_column_int64(st, 9);
	memcpy(x->prev_hash, sqlite3_column_blob(st, 10), LEDGER_HASH_LEN);
}

static void
test_chain(void **state)
{
	struct fx *fx = *state;
	sqlite3_stmt *st;
	uint8_t prev[LEDGER_HASH_LEN], h[LEDGER_HASH_LEN];
	char canon[CHAIN_CANON_MAX];
	int64_t rows = 0;

	populate(fx);
	memset(prev, 0, sizeof(prev));
	st = db_prepare(fx->db, "SELECT t.seq, t.id, t.kind, t.pending_id, t.payment_ref, t.debit,"
				" t.credit, t.amount, t.legs, t.created, t.prev_hash, t.hash, c.canonical"
				" FROM transfers AS t JOIN v_chain AS c USING (seq) ORDER BY t.seq");
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct ledger_xfer x;
		int n;

		rows++;
		assert_int_equal(sqlite3_column_int64(st, 0), rows);
		assert_int_equal(sqlite3_column_bytes(st, 10), LEDGER_HASH_LEN);
		assert_int_equal(sqlite3_column_bytes(st, 11), LEDGER_HASH_LEN);
		assert_memory_equal(sqlite3_column_blob(st, 10), prev, LEDGER_HASH_LEN);
		/* SHA-256(prev_hash || canonical) from the view alone, as an auditor would. */
		{
			size_t clen = (size_t)sqlite3_column_bytes(st, 12);
			uint8_t *buf = malloc(LEDGER_HASH_LEN + clen);

			assert_non_null(buf);
			memcpy(buf, prev, LEDGER_HASH_LEN);
			memcpy(buf + LEDGER_HASH_LEN, sqlite3_column_text(st, 12), clen);
			assert_int_equal(mbedtls_sha256_ret(buf, LEDGER_HASH_LEN + clen, h, 0), 0);
			free(buf);
		}
		assert_memory_equal(h, sqlite3_column_blob(st, 11), LEDGER_HASH_LEN);
		/* chain.c's canonical text is the view's, byte for byte, and hashes the same. */
		row_to_xfer(st, &x);
		n = chain_canonical(&x, canon, sizeof(canon));
		assert_int_equal(n, sqlite3_column_bytes(st, 12));
		assert_memory_equal(canon, sqlite3_column_text(st, 12), (size_t)n);
		assert_int_equal(chain_hash(&x), 0);
		assert_memory_equal(x.hash, h, LEDGER_HASH_LEN);
		memcpy(prev, h, LEDGER_HASH_LEN);
	}
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_int_equal(rows, 9);
	/* The first row's canonical text, spelled out. */
	st = db_prepare(fx->db, "SELECT canonical FROM v_chain WHERE seq = 1");
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0),
	    "1\nx1\npending\n\nr1\nclearing:test\nescrow\n1000000\n"
	    "[[\"clearing:test\",-1000000],[\"escrow\",1000000]]\n1700000000123\n");
	sqlite3_finalize(st);
}

/* The schema's guarantees, through a connection set up as the sqlite3 shell's is. */

static sqlite3 *
open_as_shell(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL), SQLITE_OK);
	return db;
}

/* A fingerprint of everything in the books. */
static char *
books(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT (SELECT count(*) FROM accounts) || '/' || (SELECT count(*) FROM entries) || '/'"
	    " || (SELECT group_concat(hex(hash), '') FROM transfers) || '/'"
	    " || (SELECT group_concat(transfer || ',' || leg || ',' || account || ',' || amount, ';')"
	    "     FROM entries) || '/'"
	    " || (SELECT group_concat(account || ',' || balance || ',' || last_seq, ';') FROM balances)"
	    " || '/' || (SELECT count(*) FROM checkpoint) || (SELECT count(*) FROM opening)");
	char *s;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_non_null(s);
	return s;
}

/* Values that chain correctly onto the last row, so only the rule under test can refuse. */
#define NEXT "(SELECT max(seq) + 1 FROM transfers)"
#define PREV "(SELECT hash FROM transfers ORDER BY seq DESC LIMIT 1)"
#define COLS "INSERT INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit," \
	     " amount, legs, created, prev_hash, hash) VALUES "

static const struct {
	const char *sql;
	const char *error;
} attacks[] = {
    {"UPDATE transfers SET amount = amount + 1 WHERE id = 'x1:post'", "append-only"},
    {"UPDATE transfers SET credit = 'seller:s2' WHERE kind = 'post'", "append-only"},
    {"DELETE FROM transfers WHERE id = 'x1:post'", "append-only"},
    {"DELETE FROM transfers", "append-only"},
    {"UPDATE entries SET amount = amount * 2", "append-only"},
    {"DELETE FROM entries WHERE amount < 0", "append-only"},
    {"UPDATE accounts SET name = 'seller:evil' WHERE name = 'seller:s1'", "append-only"},
    {"DELETE FROM accounts", "append-only"},
    {"INSERT OR REPLACE INTO accounts (id, name, kind, created) VALUES (99, 'escrow', 'escrow', 0)",
	"name exists"},
    {"INSERT INTO accounts (name, kind, created) VALUES ('seller:x', 'fees', 0)", "do not match"},
    /* An unbalanced pending transfer, and one of a negative amount. */
    {COLS "(" NEXT ", 'e1', 'pending', NULL, 'r', 'clearing:test', 'escrow', 100,"
	  " '[[\"clearing:test\",-100],[\"escrow\",99]]', 0, " PREV ", randomblob(32))",
	"transfers: "},
    {COLS "(" NEXT ", 'e1', 'pending', NULL, 'r', 'clearing:test', 'escrow', 100,"
	  " '[[\"clearing:test\",-100],[\"escrow\",100],[\"seller:s1\",5]]', 0, " PREV
	  ", randomblob(32))",
	"transfers: "},
    {COLS "(" NEXT ", 'e1', 'pending', NULL, 'r', 'clearing:test', 'escrow', -100,"
	  " '[[\"clearing:test\",100],[\"escrow\",-100]]', 0, " PREV ", randomblob(32))",
	"transfers: "},
    /* A post of x5 that pays a seller more than escrow holds, unbalanced. */
    {COLS "(" NEXT ", 'x5:post', 'post', 'x5', 'r5', 'escrow', 'seller:s1', 1000000000000000,"
	  " '[[\"escrow\",-1000000000000000],[\"seller:s1\",1000000000000001]]', 0, " PREV
	  ", randomblob(32))",
	"transfers: "},
    /* A post that balances but takes money from a seller. */
    {COLS "(" NEXT ", 'x5:post', 'post', 'x5', 'r5', 'escrow', 'seller:s1', 1000000000000000,"
	  " '[[\"escrow\",-1000000000000000],[\"seller:s2\",-5],[\"seller:s1\",1000000000000005]]', 0, " PREV
	  ", randomblob(32))",
	"transfers: "},
    /* A second post of x1, plainly and as INSERT OR REPLACE, and a void of it. */
    {COLS "(" NEXT ", 'x1:post', 'post', 'x1', 'r1', 'escrow', 'seller:s2', 1000000,"
	  " '[[\"escrow\",-1000000],[\"seller:s2\",1000000]]', 0, " PREV ", randomblob(32))",
	"transfers: "},
    {"INSERT OR REPLACE INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit,"
     " amount, legs, created, prev_hash, hash) VALUES (" NEXT ", 'x1:post', 'post', 'x1', 'r1',"
     " 'escrow', 'seller:s2', 1000000, '[[\"escrow\",-1000000],[\"seller:s2\",1000000]]', 0, " PREV
     ", randomblob(32))",
	"transfers: "},
    {COLS "(" NEXT ", 'x1:void', 'void', 'x1', 'r1', 'escrow', 'clearing:test', 1000000,"
	  " '[[\"escrow\",-1000000],[\"clearing:test\",1000000]]', 0, " PREV ", randomblob(32))",
	"already posted or voided"},
    /* A post of something that is not pending. */
    {COLS "(" NEXT ", 'x1:post:post', 'post', 'x1:post', 'r1', 'escrow', 'seller:s2', 900000,"
	  " '[[\"escrow\",-900000],[\"seller:s2\",900000]]', 0, " PREV ", randomblob(32))",
	"transfers: "},
    /* Breaking the chain: a wrong prev_hash, a gap in seq, a row in the middle. */
    {COLS "(" NEXT ", 'e2', 'pending', NULL, 'r', 'clearing:test', 'escrow', 100,"
	  " '[[\"clearing:test\",-100],[\"escrow\",100]]', 0, randomblob(32), randomblob(32))",
	"prev_hash"},
    {COLS "((SELECT max(seq) + 2 FROM transfers), 'e2', 'pending', NULL, 'r', 'clearing:test',"
	  " 'escrow', 100, '[[\"clearing:test\",-100],[\"escrow\",100]]', 0, " PREV ", randomblob(32))",
	"seq must be the next"},
    {"INSERT OR REPLACE INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit,"
     " amount, legs, created, prev_hash, hash) VALUES (2, 'e2', 'pending', NULL, 'r',"
     " 'clearing:test', 'escrow', 100, '[[\"clearing:test\",-100],[\"escrow\",100]]', 0,"
     " (SELECT hash FROM transfers WHERE seq = 1), randomblob(32))",
	"seq must be the next"},
    /* The cached balances move only with the entry just written. */
    {"UPDATE balances SET balance = balance + 1", "balances: only the entry"},
    {"UPDATE balances SET balance = 0, last_seq = last_seq + 1000", "balances: only the entry"},
    {"DELETE FROM balances", "never deleted"},
    {"INSERT INTO balances (account, balance, last_seq) VALUES (99, 5, 0)", "balances: "},
    {"INSERT OR REPLACE INTO balances (account, balance, last_seq) VALUES (1, 0, 0)", "balances: "},
    /* Retention: nothing younger than seven years goes, not even behind a checkpoint. */
    {"INSERT INTO checkpoint (id, seq, hash, created, swept) SELECT 1, seq, hash, created, 0"
     " FROM transfers WHERE seq = 1",
	"checkpoint: "},
    {"INSERT INTO opening (account, balance, through) VALUES (1, 0, 1)", "opening: "},
    {"DELETE FROM transfers WHERE seq = 1", "append-only"},
    {"DELETE FROM entries WHERE transfer = 1", "append-only"},
    /* A linked row needs its group's length, and a group its rows in a row. */
    {"INSERT INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit, amount, legs,"
     " created, prev_hash, hash, link) VALUES (" NEXT ", 'e3', 'pending', NULL, 'r',"
     " 'clearing:test', 'escrow', 100, '[[\"clearing:test\",-100],[\"escrow\",100]]', 0, " PREV
     ", randomblob(32), 'g1')",
	"link and link_len"},
    /* A dispute of a payment that was voided, and a payout of another's earnings. */
    {COLS "(" NEXT ", 'dsp_1', 'dispute', 'x2:void', 'r2', 'escrow', 'reserve:disputes', 500,"
	  " '[[\"escrow\",-500],[\"reserve:disputes\",500]]', 0, " PREV ", randomblob(32))",
	"transfers: "},
    {COLS "(" NEXT ", 'po/b1/s2', 'payout', NULL, 'b1', 'seller:s1', 'payouts:bank', 5,"
	  " '[[\"seller:s1\",-5],[\"payouts:bank\",5]]', 0, " PREV ", randomblob(32))",
	"transfers: "},
    /* Entries only come from their transfer's legs. */
    {"INSERT INTO entries (transfer, leg, account, amount) VALUES (1, 3, 1, 5)", "entries: "},
    {"INSERT INTO entries (transfer, leg, account, amount) VALUES (99, 1, 1, 5)", "entries: "},
    {"INSERT OR REPLACE INTO entries (transfer, leg, account, amount)"
     " SELECT transfer, leg, account, amount + 1 FROM entries WHERE transfer = 1 AND leg = 1",
	"entries: "},
    {"INSERT OR REPLACE INTO entries (transfer, leg, account, amount)"
     " SELECT transfer, leg, account, amount FROM entries WHERE transfer = 1 AND leg = 1",
	"entries: "},
};

static void
test_schema_refuses(void **state)
{
	struct fx *fx = *state;
	sqlite3 *db;
	char *before, *after;

	populate(fx);
	db = open_as_shell(fx->path);
	before = books(db);
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		char *msg = NULL;
		int rc = sqlite3_exec(db, attacks[i].sql, NULL, NULL, &msg);

		if (rc == SQLITE_OK)
			fail_msg("attack %zu succeeded: %s", i, attacks[i].sql);
		if (msg == NULL || strstr(msg, attacks[i].error) == NULL)
			fail_msg("attack %zu: error \"%s\" lacks \"%s\"", i, msg ? msg : "",
			    attacks[i].error);
		sqlite3_free(msg);
	}
	after = books(db);
	assert_string_equal(after, before);
	free(before);
	free(after);
	/* The same connection can still write what the rules allow: a valid void of x5. */
	assert_int_equal(sqlite3_exec(db,
			     COLS "(" NEXT ", 'x5:void', 'void', 'x5', 'r5', 'escrow', 'clearing:test',"
				  " 1000000000000000, '[[\"escrow\",-1000000000000000],"
				  "[\"clearing:test\",1000000000000000]]', 0, " PREV ", randomblob(32))",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM entries WHERE transfer ="
				       " (SELECT seq FROM transfers WHERE id = 'x5:void')"),
	    2);
	assert_int_equal(query_int(db, "SELECT sum(balance) FROM v_balances"), 0);
	assert_int_equal(query_int(db, "SELECT balance FROM v_balances WHERE account = 'escrow'"), 0);
	sqlite3_close(db);
}

/* The same through the real sqlite3 shell, if it is installed. */

static int
shell(const char *path, const char *sql, char *out, size_t cap)
{
	char cmd[2048];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"%s\" 2>&1", path, sql);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	return pclose(p);
}

static void
test_sqlite3_shell(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *sql;
		const char *error;
	} cases[] = {
	    {"UPDATE transfers SET amount = 1 WHERE id = 'x1:post'", "append-only"},
	    {"DELETE FROM transfers WHERE id = 'x1:post'", "append-only"},
	    {"INSERT INTO transfers VALUES ((SELECT max(seq) + 1 FROM transfers), 'e1', 'pending',"
	     " NULL, 'r', 'clearing:test', 'escrow', 100,"
	     " '[[\\\"clearing:test\\\",-100],[\\\"escrow\\\",99]]', 0,"
	     " (SELECT hash FROM transfers ORDER BY seq DESC LIMIT 1), randomblob(32), NULL, NULL)",
		"transfers: "},
	    {"INSERT INTO transfers VALUES ((SELECT max(seq) + 1 FROM transfers), 'x1:post', 'post',"
	     " 'x1', 'r1', 'escrow', 'seller:s2', 1000000,"
	     " '[[\\\"escrow\\\",-1000000],[\\\"seller:s2\\\",1000000]]', 0,"
	     " (SELECT hash FROM transfers ORDER BY seq DESC LIMIT 1), randomblob(32), NULL, NULL)",
		"transfers: "},
	};
	char out[4096], *before, *after;
	int st;

	if (system("command -v sqlite3 >/dev/null 2>&1") != 0)
		skip();
	populate(fx);
	before = books(fx->db);
	/* The shell works here: a read answers. */
	st = shell(fx->path, "SELECT count(*) FROM transfers", out, sizeof(out));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_string_equal(out, "9\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		st = shell(fx->path, cases[i].sql, out, sizeof(out));
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			fail_msg("sqlite3 case %zu succeeded: %s", i, cases[i].sql);
		if (strstr(out, cases[i].error) == NULL)
			fail_msg("sqlite3 case %zu: \"%s\" lacks \"%s\"", i, out, cases[i].error);
	}
	after = books(fx->db);
	assert_string_equal(after, before);
	free(before);
	free(after);
}

/* The trial balance report, on good books and on books tampered with past the triggers. */

static char *
report(sqlite3 *db, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len), *err = fopen("/dev/null", "w");

	assert_non_null(out);
	assert_non_null(err);
	*rc = balances_report(db, out, err);
	fclose(out);
	fclose(err);
	return buf;
}

static void
test_report(void **state)
{
	struct fx *fx = *state;
	char tampered[300], sql[400], *text, err[256];
	sqlite3 *ro, *t;
	int rc;

	populate(fx);
	assert_non_null(ro = ledger_db_open_readonly(fx->path, err, sizeof(err)));
	text = report(ro, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "seller:s1"));
	assert_non_null(strstr(text, "900000              0.900000\n"));
	assert_non_null(strstr(text, "-1000000001001000"));
	assert_non_null(strstr(text, "-1000000001.001000\n"));
	assert_non_null(strstr(text, "\ntotal "));
	assert_non_null(strstr(text, " 0              0.000000\n"));
	free(text);
	/* A read-only handle cannot write. */
	assert_int_not_equal(sqlite3_exec(ro, "CREATE TABLE x (a)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(ro);

	/* Someone with write access drops a trigger and adds an entry: the report says so. */
	snprintf(tampered, sizeof(tampered), "%s/tampered.db", lf_tmpdir);
	snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", tampered);
	assert_int_equal(db_exec(fx->db, sql), SQLITE_OK);
	t = open_as_shell(tampered);
	assert_int_equal(sqlite3_exec(t,
			     "DROP TRIGGER entries_insert; DROP TRIGGER entries_balance;"
			     "INSERT INTO entries VALUES (1, 3, (SELECT id FROM accounts WHERE name ="
			     " 'seller:s2'), 5)",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	text = report(t, &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(text, "\ntotal "));
	assert_non_null(strstr(text, " 5              0.000005\n"));
	free(text);
	sqlite3_close(t);

	/* Files that are not this ledger's books are refused. */
	assert_null(ledger_db_open_readonly("/nonexistent/ledger.db", err, sizeof(err)));
	snprintf(tampered, sizeof(tampered), "%s/old.db", lf_tmpdir);
	t = open_as_shell(tampered);
	assert_int_equal(sqlite3_exec(t, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(t);
	assert_null(ledger_db_open_readonly(tampered, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    LF_TEST(test_steps),
	    LF_TEST(test_random),
	    LF_TEST(test_chain),
	    LF_TEST(test_schema_refuses),
	    LF_TEST(test_sqlite3_shell),
	    LF_TEST(test_report),
	};

	return LF_RUN(tests);
}
