/*
 * journal.c — recording two-phase transfers: pending, post, void.
 *
 * Security stance: every field comes from payments over IPC, and payments
 * retries, so each write is idempotent on its id: the same request again is
 * answered "same" without a new row, and a request that differs from what is
 * recorded under its id is refused and logged, never applied. Identifiers
 * become account names and lines of the hashed canonical text, so only
 * printable ASCII without blanks, quotes or backslashes is accepted. Amounts
 * are bounded (LEDGER_AMOUNT_MAX) so no balance can overflow. The checks here
 * give clear answers; the schema's triggers enforce the same rules again for
 * anything that reaches the database another way.
 *
 * The functions run inside a transaction their caller owns (a dbq batch in
 * the daemon), read what they need inside it, and never commit.
 */
#include "ledger/ledger.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

enum {
	S_ACCOUNT_GET,
	S_ACCOUNT_ADD,
	S_XFER_GET,
	S_RESOLUTION,
	S_HEAD,
	S_INSERT,
	S_MAX,
};

static const char *const sql[S_MAX] = {
    [S_ACCOUNT_GET] = "SELECT kind FROM accounts WHERE name = ?1",
    [S_ACCOUNT_ADD] = "INSERT INTO accounts (name, kind, created) VALUES (?1, ?2, ?3)",
    [S_XFER_GET] = "SELECT kind, payment_ref, debit, credit, amount FROM transfers WHERE id = ?1",
    /* What a resolution recorded: its kind, the seller, and the seller's share (0 if no leg). */
    [S_RESOLUTION] = "SELECT t.kind, t.credit, coalesce((SELECT e.amount FROM entries AS e"
		     " JOIN accounts AS a ON a.id = e.account"
		     " WHERE e.transfer = t.seq AND a.name = t.credit), 0)"
		     " FROM transfers AS t WHERE t.pending_id = ?1 AND t.kind IN ('post', 'void')",
    [S_HEAD] = "SELECT seq, hash FROM transfers ORDER BY seq DESC LIMIT 1",
    [S_INSERT] = "INSERT INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit,"
		 " amount, legs, created, prev_hash, hash)"
		 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
};

struct journal {
	sqlite3 *db;
	sqlite3_stmt *st[S_MAX];
};

/* A transfer as read back: what idempotency and resolution compare against. */
struct found {
	char kind[16];
	char payment_ref[LEDGER_ID_MAX + 1];
	char debit[LEDGER_NAME_MAX + 1];
	char credit[LEDGER_NAME_MAX + 1];
	int64_t amount;
};

struct leg {
	const char *account;
	int64_t amount;
};

#define SUFFIX_LEN 5 /* ":post", ":void" */

struct journal *
journal_new(sqlite3 *db)
{
	struct journal *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->db = db;
	for (int i = 0; i < S_MAX; i++)
		j->st[i] = db_prepare(db, sql[i]);
	return j;
}

void
journal_free(struct journal *j)
{
	if (j == NULL)
		return;
	for (int i = 0; i < S_MAX; i++)
		sqlite3_finalize(j->st[i]);
	free(j);
}

/* A statement ready to bind: reset from its last use, bindings cleared. */
static sqlite3_stmt *
stmt(struct journal *j, int i)
{
	sqlite3_reset(j->st[i]);
	sqlite3_clear_bindings(j->st[i]);
	return j->st[i];
}

static int refuse(struct journal_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
refuse(struct journal_result *r, const char *fmt, ...)
{
	va_list ap;

	r->status = JOURNAL_REFUSED;
	va_start(ap, fmt);
	(void)vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	return 0;
}

/* Another request under the same id: refuse it, and tell the operator. */
static int
conflict(struct journal_result *r, const char *what, const char *id)
{
	log_warnx("%s %s conflicts with the transfer recorded under that id", what, id);
	return refuse(r, "%s %s conflicts with the transfer recorded under that id", what, id);
}

static int
fail(struct journal *j, struct journal_result *r, const char *what, const char *id)
{
	log_warnx("%s %s: %s", what, id, sqlite3_errmsg(j->db));
	r->status = JOURNAL_FAILED;
	snprintf(r->detail, sizeof(r->detail), "%s %s not recorded", what, id);
	return -1;
}

/* Printable ASCII without blanks, quotes or backslashes, 1..max bytes. */
static int
token_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

/* MPP method names are lowercase: [a-z0-9][a-z0-9_-]*. */
static int
method_ok(const char *s)
{
	size_t n = strnlen(s, IPC_METHOD_MAX + 1);

	if (n == 0 || n > IPC_METHOD_MAX || s[0] == '-' || s[0] == '_')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
			s[i] == '_'))
			return 0;
	return 1;
}

/* A pending id ending like a resolution's id would make ids ambiguous. */
static int
xfer_id_ok(const char *s)
{
	size_t n = strnlen(s, LEDGER_ID_MAX + 1);

	if (!token_ok(s, LEDGER_ID_MAX - SUFFIX_LEN))
		return 0;
	return n < SUFFIX_LEN ||
	    (strcmp(s + n - SUFFIX_LEN, ":post") != 0 && strcmp(s + n - SUFFIX_LEN, ":void") != 0);
}

static void
copy_col(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* 1 and *f when a transfer has this id, 0 when none, -1 on a database error. */
static int
xfer_get(struct journal *j, const char *id, struct found *f)
{
	sqlite3_stmt *st = stmt(j, S_XFER_GET);
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		copy_col(st, 0, f->kind, sizeof(f->kind));
		copy_col(st, 1, f->payment_ref, sizeof(f->payment_ref));
		copy_col(st, 2, f->debit, sizeof(f->debit));
		copy_col(st, 3, f->credit, sizeof(f->credit));
		f->amount = sqlite3_column_int64(st, 4);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The post or void of pending_id: 1 with its kind, credit and credit leg; 0; -1. */
static int
resolution_get(struct journal *j, const char *pending_id, struct found *f)
{
	sqlite3_stmt *st = stmt(j, S_RESOLUTION);
	int rc;

	sqlite3_bind_text(st, 1, pending_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		copy_col(st, 0, f->kind, sizeof(f->kind));
		copy_col(st, 1, f->credit, sizeof(f->credit));
		f->amount = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Create the account on first use. 0, or -1 on a database error. */
static int
account_ensure(struct journal *j, const char *name, const char *kind, int64_t now_ms)
{
	sqlite3_stmt *st = stmt(j, S_ACCOUNT_GET);
	int rc;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return -1;
	st = stmt(j, S_ACCOUNT_ADD);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The legs as canonical JSON, zero legs left out. 0, or -1 if they do not fit. */
static int
legs_format(char *buf, size_t cap, const struct leg *legs, size_t n)
{
	size_t len = 0;
	int w;

	for (size_t i = 0; i < n; i++) {
		if (legs[i].amount == 0)
			continue;
		w = snprintf(buf + len, cap - len, "%s[\"%s\",%" PRId64 "]", len == 0 ? "[" : ",",
		    legs[i].account, legs[i].amount);
		if (w < 0 || (size_t)w >= cap - len)
			return -1;
		len += (size_t)w;
	}
	if (len == 0 || len + 2 > cap)
		return -1;
	memcpy(buf + len, "]", 2);
	return 0;
}

/* Read the chain's head, link x to it, hash it, insert it. 0 or -1. */
static int
xfer_insert(struct journal *j, struct ledger_xfer *x)
{
	sqlite3_stmt *st = stmt(j, S_HEAD);
	int rc;

	x->seq = 1;
	memset(x->prev_hash, 0, sizeof(x->prev_hash));
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		x->seq = sqlite3_column_int64(st, 0) + 1;
		if (sqlite3_column_bytes(st, 1) != LEDGER_HASH_LEN)
			rc = SQLITE_CORRUPT;
		else
			memcpy(x->prev_hash, sqlite3_column_blob(st, 1), LEDGER_HASH_LEN);
	}
	sqlite3_reset(st);
	if ((rc != SQLITE_ROW && rc != SQLITE_DONE) || chain_hash(x) != 0)
		return -1;
	st = stmt(j, S_INSERT);
	sqlite3_bind_int64(st, 1, x->seq);
	sqlite3_bind_text(st, 2, x->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, x->kind, -1, SQLITE_STATIC);
	if (x->pending_id[0] != '\0')
		sqlite3_bind_text(st, 4, x->pending_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, x->payment_ref, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, x->debit, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, x->credit, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, x->amount);
	sqlite3_bind_text(st, 9, x->legs, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, x->created);
	sqlite3_bind_blob(st, 11, x->prev_hash, LEDGER_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 12, x->hash, LEDGER_HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
xfer_init(struct ledger_xfer *x, const char *kind, int64_t now_ms)
{
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->created = now_ms;
}

static void
result_init(struct journal_result *r)
{
	r->status = JOURNAL_DONE;
	r->detail[0] = '\0';
}

/* Why a pending request cannot be recorded, or NULL. */
static const char *
pending_invalid(const struct ipc_ledger_pending *m)
{
	if (!xfer_id_ok(m->xfer_id))
		return "invalid xfer_id";
	if (!token_ok(m->payment_ref, IPC_ID_MAX))
		return "invalid payment_ref";
	if (!method_ok(m->pay_method))
		return "invalid pay_method";
	if (m->amount <= 0 || m->amount > LEDGER_AMOUNT_MAX)
		return "amount out of range";
	return NULL;
}

/* The request was recorded before, exactly so: answer as if done now. */
static int
same(struct journal_result *r)
{
	r->status = JOURNAL_SAME;
	return 0;
}

int
journal_pending(struct journal *j, const struct ipc_ledger_pending *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ledger_xfer x;
	struct found f;
	const char *why;
	int rc;

	result_init(r);
	if ((why = pending_invalid(m)) != NULL)
		return refuse(r, "%s", why);
	xfer_init(&x, "pending", now_ms);
	snprintf(x.id, sizeof(x.id), "%s", m->xfer_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", m->payment_ref);
	snprintf(x.debit, sizeof(x.debit), "clearing:%s", m->pay_method);
	snprintf(x.credit, sizeof(x.credit), "escrow");
	x.amount = m->amount;
	if ((rc = xfer_get(j, x.id, &f)) < 0)
		return fail(j, r, "pending", x.id);
	if (rc > 0) {
		if (strcmp(f.kind, "pending") == 0 && strcmp(f.payment_ref, x.payment_ref) == 0 &&
		    strcmp(f.debit, x.debit) == 0 && f.amount == x.amount)
			return same(r);
		return conflict(r, "pending", x.id);
	}
	if (legs_format(x.legs, sizeof(x.legs),
		(const struct leg[]){{x.debit, -x.amount}, {x.credit, x.amount}}, 2) != 0 ||
	    account_ensure(j, x.debit, "clearing", now_ms) != 0 ||
	    account_ensure(j, x.credit, "escrow", now_ms) != 0 || xfer_insert(j, &x) != 0)
		return fail(j, r, "pending", x.id);
	log_debug("pending %s: %" PRId64 " µUSD from %s", x.id, x.amount, x.debit);
	return 0;
}

/*
 * The pending transfer id names, and whether it is already resolved. 1 with
 * *p (and *res when resolved, else res->kind ""), 0 after refusing, -1 failed.
 */
static int
pending_lookup(struct journal *j, const char *what, const char *id, struct found *p,
    struct found *res, struct journal_result *r)
{
	int rc;

	if (!token_ok(id, LEDGER_ID_MAX - SUFFIX_LEN))
		return refuse(r, "invalid xfer_id");
	if ((rc = xfer_get(j, id, p)) < 0)
		return fail(j, r, what, id);
	if (rc == 0 || strcmp(p->kind, "pending") != 0)
		return refuse(r, "no pending transfer %s", id);
	res->kind[0] = '\0';
	if ((rc = resolution_get(j, id, res)) < 0)
		return fail(j, r, what, id);
	return 1;
}

int
journal_post(struct journal *j, const struct ipc_ledger_post *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ledger_xfer x;
	struct found p, res;
	int rc;

	result_init(r);
	if (!token_ok(m->seller_id, IPC_ID_MAX))
		return refuse(r, "invalid seller_id");
	if (m->seller_amount < 0 || m->seller_amount > LEDGER_AMOUNT_MAX)
		return refuse(r, "seller_amount out of range");
	if ((rc = pending_lookup(j, "post", m->xfer_id, &p, &res, r)) <= 0)
		return rc;
	xfer_init(&x, "post", now_ms);
	snprintf(x.credit, sizeof(x.credit), "seller:%s", m->seller_id);
	if (strcmp(res.kind, "void") == 0)
		return refuse(r, "pending transfer %s was voided", m->xfer_id);
	if (strcmp(res.kind, "post") == 0) {
		if (strcmp(res.credit, x.credit) == 0 && res.amount == m->seller_amount)
			return same(r);
		return conflict(r, "post", m->xfer_id);
	}
	if (m->seller_amount > p.amount)
		return refuse(r, "seller_amount exceeds the pending amount of %s", m->xfer_id);
	snprintf(x.id, sizeof(x.id), "%s:post", m->xfer_id);
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", m->xfer_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", p.payment_ref);
	snprintf(x.debit, sizeof(x.debit), "%s", p.credit);
	x.amount = p.amount;
	if (legs_format(x.legs, sizeof(x.legs),
		(const struct leg[]){{x.debit, -x.amount}, {x.credit, m->seller_amount},
		    {"platform:fees", x.amount - m->seller_amount}},
		3) != 0 ||
	    account_ensure(j, x.credit, "earnings", now_ms) != 0 ||
	    (m->seller_amount < x.amount &&
		account_ensure(j, "platform:fees", "fees", now_ms) != 0) ||
	    xfer_insert(j, &x) != 0)
		return fail(j, r, "post", x.id);
	log_debug("posted %s: %" PRId64 " µUSD to %s of %" PRId64, x.pending_id, m->seller_amount,
	    x.credit, x.amount);
	return 0;
}

int
journal_void(struct journal *j, const struct ipc_ledger_void *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ledger_xfer x;
	struct found p, res;
	int rc;

	result_init(r);
	if ((rc = pending_lookup(j, "void", m->xfer_id, &p, &res, r)) <= 0)
		return rc;
	if (strcmp(res.kind, "void") == 0)
		return same(r);
	if (strcmp(res.kind, "post") == 0)
		return refuse(r, "pending transfer %s was posted", m->xfer_id);
	xfer_init(&x, "void", now_ms);
	snprintf(x.id, sizeof(x.id), "%s:void", m->xfer_id);
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", m->xfer_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", p.payment_ref);
	snprintf(x.debit, sizeof(x.debit), "%s", p.credit);
	snprintf(x.credit, sizeof(x.credit), "%s", p.debit);
	x.amount = p.amount;
	if (legs_format(x.legs, sizeof(x.legs),
		(const struct leg[]){{x.debit, -x.amount}, {x.credit, x.amount}}, 2) != 0 ||
	    xfer_insert(j, &x) != 0)
		return fail(j, r, "void", x.id);
	log_debug("voided %s: %" PRId64 " µUSD back to %s", x.pending_id, x.amount, x.credit);
	return 0;
}
