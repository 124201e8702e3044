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
 * the daemon, the tool's own for payouts), read what they need inside it,
 * and never commit. The helpers after the statements are shared with
 * dispute.c and payout.c (ledger.h).
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
	S_CAPTURED,
	S_HEAD,
	S_CHECKPOINT,
	S_INSERT,
	S_MAX,
};

static const char *const sql[S_MAX] = {
    [S_ACCOUNT_GET] = "SELECT kind FROM accounts WHERE name = ?1",
    [S_ACCOUNT_ADD] = "INSERT INTO accounts (name, kind, created) VALUES (?1, ?2, ?3)",
    [S_XFER_GET] = "SELECT seq, kind, coalesce(pending_id, ''), payment_ref, debit, credit, amount,"
		   " legs, created FROM transfers WHERE id = ?1",
    /* What a resolution recorded: its kind, the seller, and its legs. */
    [S_RESOLUTION] = "SELECT kind, credit, legs FROM transfers"
		     " WHERE pending_id = ?1 AND kind IN ('post', 'void')",
    /* The post of a payment reference, whichever attempt it posted. */
    [S_CAPTURED] = "SELECT id FROM transfers WHERE payment_ref = ?1 AND kind = 'post'",
    [S_HEAD] = "SELECT seq, hash FROM transfers ORDER BY seq DESC LIMIT 1",
    /* Where the chain goes on from when the retention sweep has deleted every row. */
    [S_CHECKPOINT] = "SELECT seq, hash FROM checkpoint",
    [S_INSERT] = "INSERT INTO transfers (seq, id, kind, pending_id, payment_ref, debit, credit,"
		 " amount, legs, created, prev_hash, hash, link, link_len)"
		 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
};

struct journal {
	sqlite3 *db;
	sqlite3_stmt *st[S_MAX];
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

sqlite3 *
journal_db(struct journal *j)
{
	return j->db;
}

/* A statement ready to bind: reset from its last use, bindings cleared. */
static sqlite3_stmt *
stmt(struct journal *j, int i)
{
	sqlite3_reset(j->st[i]);
	sqlite3_clear_bindings(j->st[i]);
	return j->st[i];
}

int
journal_refuse(struct journal_result *r, const char *fmt, ...)
{
	va_list ap;

	r->status = JOURNAL_REFUSED;
	va_start(ap, fmt);
	(void)vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	return 0;
}

int
journal_conflict(struct journal_result *r, const char *what, const char *id)
{
	log_warnx("%s %s conflicts with the transfer recorded under that id", what, id);
	return journal_refuse(r, "%s %s conflicts with the transfer recorded under that id", what,
	    id);
}

int
journal_fail(struct journal *j, struct journal_result *r, const char *what, const char *id)
{
	log_warnx("%s %s: %s", what, id, sqlite3_errmsg(j->db));
	r->status = JOURNAL_FAILED;
	snprintf(r->detail, sizeof(r->detail), "%s %s not recorded", what, id);
	return -1;
}

int
journal_same(struct journal_result *r)
{
	r->status = JOURNAL_SAME;
	return 0;
}

void
journal_result_init(struct journal_result *r)
{
	r->status = JOURNAL_DONE;
	r->detail[0] = '\0';
}

int
journal_token_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

int
journal_method_ok(const char *s)
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

	if (!journal_token_ok(s, LEDGER_ID_MAX - SUFFIX_LEN))
		return 0;
	return n < SUFFIX_LEN ||
	    (strcmp(s + n - SUFFIX_LEN, ":post") != 0 && strcmp(s + n - SUFFIX_LEN, ":void") != 0);
}

void
journal_col_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

int
journal_find(struct journal *j, const char *id, struct journal_row *row)
{
	sqlite3_stmt *st = stmt(j, S_XFER_GET);
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row->seq = sqlite3_column_int64(st, 0);
		journal_col_text(st, 1, row->kind, sizeof(row->kind));
		journal_col_text(st, 2, row->pending_id, sizeof(row->pending_id));
		journal_col_text(st, 3, row->payment_ref, sizeof(row->payment_ref));
		journal_col_text(st, 4, row->debit, sizeof(row->debit));
		journal_col_text(st, 5, row->credit, sizeof(row->credit));
		row->amount = sqlite3_column_int64(st, 6);
		journal_col_text(st, 7, row->legs, sizeof(row->legs));
		row->created = sqlite3_column_int64(st, 8);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int64_t
journal_leg_amount(const char *legs, const char *account)
{
	char key[LEDGER_NAME_MAX + 4];
	const char *p;

	/* Canonical legs: [["name",amount],…]; names hold no quote, so ["name", is unique. */
	if (snprintf(key, sizeof(key), "[\"%s\",", account) >= (int)sizeof(key) ||
	    (p = strstr(legs, key)) == NULL)
		return 0;
	return strtoll(p + strlen(key), NULL, 10);
}

/* The post or void of pending_id: 1 with its kind, credit and legs; 0; -1. */
static int
resolution_get(struct journal *j, const char *pending_id, struct journal_row *f)
{
	sqlite3_stmt *st = stmt(j, S_RESOLUTION);
	int rc;

	sqlite3_bind_text(st, 1, pending_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		journal_col_text(st, 0, f->kind, sizeof(f->kind));
		journal_col_text(st, 1, f->credit, sizeof(f->credit));
		journal_col_text(st, 2, f->legs, sizeof(f->legs));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
journal_account(struct journal *j, const char *name, const char *kind, int64_t now_ms)
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

int
journal_legs(char *buf, size_t cap, const struct journal_leg *legs, size_t n)
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

/* The chain's head: the last row, or the checkpoint, or nothing (seq 0, zero hash). */
static int
chain_head(struct journal *j, int64_t *seq, uint8_t hash[LEDGER_HASH_LEN])
{
	sqlite3_stmt *st = stmt(j, S_HEAD);
	int rc;

	*seq = 0;
	memset(hash, 0, LEDGER_HASH_LEN);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		sqlite3_reset(st);
		st = stmt(j, S_CHECKPOINT);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) != LEDGER_HASH_LEN)
			rc = SQLITE_CORRUPT;
		else
			memcpy(hash, sqlite3_column_blob(st, 1), LEDGER_HASH_LEN);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
journal_insert(struct journal *j, struct ledger_xfer *x)
{
	sqlite3_stmt *st;
	int rc;

	if (chain_head(j, &x->seq, x->prev_hash) != 0)
		return -1;
	x->seq++;
	if (chain_hash(x) != 0)
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
	if (x->link[0] != '\0') {
		sqlite3_bind_text(st, 13, x->link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 14, x->link_len);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
journal_insert_pair(struct journal *j, struct ledger_xfer *x)
{
	if (journal_legs(x->legs, sizeof(x->legs),
		(const struct journal_leg[]){{x->debit, -x->amount}, {x->credit, x->amount}}, 2) != 0)
		return -1;
	return journal_insert(j, x);
}

void
journal_xfer_init(struct ledger_xfer *x, const char *kind, int64_t now_ms)
{
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->created = now_ms;
}

/* Why a pending request cannot be recorded, or NULL. */
static const char *
pending_invalid(const struct ipc_ledger_pending *m)
{
	if (!xfer_id_ok(m->xfer_id))
		return "invalid xfer_id";
	if (!journal_token_ok(m->payment_ref, IPC_ID_MAX))
		return "invalid payment_ref";
	if (!journal_method_ok(m->pay_method))
		return "invalid pay_method";
	if (m->amount <= 0 || m->amount > LEDGER_AMOUNT_MAX)
		return "amount out of range";
	return NULL;
}

int
journal_pending(struct journal *j, const struct ipc_ledger_pending *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ledger_xfer x;
	struct journal_row f;
	const char *why;
	int rc;

	journal_result_init(r);
	if ((why = pending_invalid(m)) != NULL)
		return journal_refuse(r, "%s", why);
	journal_xfer_init(&x, "pending", now_ms);
	snprintf(x.id, sizeof(x.id), "%s", m->xfer_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", m->payment_ref);
	snprintf(x.debit, sizeof(x.debit), "clearing:%s", m->pay_method);
	snprintf(x.credit, sizeof(x.credit), "escrow");
	x.amount = m->amount;
	if ((rc = journal_find(j, x.id, &f)) < 0)
		return journal_fail(j, r, "pending", x.id);
	if (rc > 0) {
		if (strcmp(f.kind, "pending") == 0 && strcmp(f.payment_ref, x.payment_ref) == 0 &&
		    strcmp(f.debit, x.debit) == 0 && f.amount == x.amount)
			return journal_same(r);
		return journal_conflict(r, "pending", x.id);
	}
	if (journal_account(j, x.debit, "clearing", now_ms) != 0 ||
	    journal_account(j, x.credit, "escrow", now_ms) != 0 || journal_insert_pair(j, &x) != 0)
		return journal_fail(j, r, "pending", x.id);
	log_debug("pending %s: %" PRId64 " µUSD from %s", x.id, x.amount, x.debit);
	return 0;
}

/*
 * The pending transfer id names, and whether it is already resolved. 1 with
 * *p (and *res when resolved, else res->kind ""), 0 after refusing, -1 failed.
 */
static int
pending_lookup(struct journal *j, const char *what, const char *id, struct journal_row *p,
    struct journal_row *res, struct journal_result *r)
{
	int rc;

	if (!journal_token_ok(id, LEDGER_ID_MAX - SUFFIX_LEN))
		return journal_refuse(r, "invalid xfer_id");
	if ((rc = journal_find(j, id, p)) < 0)
		return journal_fail(j, r, what, id);
	if (rc == 0 || strcmp(p->kind, "pending") != 0)
		return journal_refuse(r, "no pending transfer %s", id);
	res->kind[0] = '\0';
	if ((rc = resolution_get(j, id, res)) < 0)
		return journal_fail(j, r, what, id);
	return 1;
}

/* Has another attempt of this payment been posted? 1, 0, or -1. */
static int
captured(struct journal *j, const char *payment_ref)
{
	sqlite3_stmt *st = stmt(j, S_CAPTURED);
	int rc;

	sqlite3_bind_text(st, 1, payment_ref, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The post's accounts exist, and the row goes in. 0, or -1. */
static int
post_insert(struct journal *j, struct ledger_xfer *x, int64_t seller, int64_t premium,
    int64_t now_ms)
{
	int64_t fee = x->amount - seller - premium;

	if (journal_legs(x->legs, sizeof(x->legs),
		(const struct journal_leg[]){{x->debit, -x->amount}, {x->credit, seller},
		    {"platform:fees", fee}, {"platform:premium", premium}},
		4) != 0)
		return -1;
	return journal_account(j, x->credit, "earnings", now_ms) != 0 ||
		    (fee > 0 && journal_account(j, "platform:fees", "fees", now_ms) != 0) ||
		    (premium > 0 && journal_account(j, "platform:premium", "premium", now_ms) != 0) ||
		    journal_insert(j, x) != 0 ?
	    -1 :
	    0;
}

int
journal_post_split(struct journal *j, const struct ipc_ledger_post_split *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ledger_xfer x;
	struct journal_row p, res;
	int rc;

	journal_result_init(r);
	if (!journal_token_ok(m->seller_id, IPC_ID_MAX))
		return journal_refuse(r, "invalid seller_id");
	if (m->seller_amount < 0 || m->seller_amount > LEDGER_AMOUNT_MAX ||
	    m->premium_amount < 0 || m->premium_amount > LEDGER_AMOUNT_MAX)
		return journal_refuse(r, "seller_amount or premium_amount out of range");
	if ((rc = pending_lookup(j, "post", m->xfer_id, &p, &res, r)) <= 0)
		return rc;
	journal_xfer_init(&x, "post", now_ms);
	snprintf(x.credit, sizeof(x.credit), "seller:%s", m->seller_id);
	if (strcmp(res.kind, "void") == 0)
		return journal_refuse(r, "pending transfer %s was voided", m->xfer_id);
	if (strcmp(res.kind, "post") == 0) {
		if (strcmp(res.credit, x.credit) == 0 &&
		    journal_leg_amount(res.legs, x.credit) == m->seller_amount &&
		    journal_leg_amount(res.legs, "platform:premium") == m->premium_amount)
			return journal_same(r);
		return journal_conflict(r, "post", m->xfer_id);
	}
	if (m->seller_amount + m->premium_amount > p.amount)
		return journal_refuse(r, "seller_amount + premium_amount exceeds the pending amount of %s",
		    m->xfer_id);
	if ((rc = captured(j, p.payment_ref)) != 0)
		return rc < 0 ? journal_fail(j, r, "post", m->xfer_id) :
				journal_refuse(r, "payment %s is captured already", p.payment_ref);
	snprintf(x.id, sizeof(x.id), "%s:post", m->xfer_id);
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", m->xfer_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", p.payment_ref);
	snprintf(x.debit, sizeof(x.debit), "%s", p.credit);
	x.amount = p.amount;
	if (post_insert(j, &x, m->seller_amount, m->premium_amount, now_ms) != 0)
		return journal_fail(j, r, "post", x.id);
	log_debug("posted %s: %" PRId64 " µUSD to %s, %" PRId64 " premium, of %" PRId64,
	    x.pending_id, m->seller_amount, x.credit, m->premium_amount, x.amount);
	return 0;
}

int
journal_post(struct journal *j, const struct ipc_ledger_post *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ipc_ledger_post_split s;

	memset(&s, 0, sizeof(s));
	memcpy(s.xfer_id, m->xfer_id, sizeof(s.xfer_id));
	memcpy(s.seller_id, m->seller_id, sizeof(s.seller_id));
	s.seller_amount = m->seller_amount;
	return journal_post_split(j, &s, now_ms, r);
}

int
journal_void(struct journal *j, const struct ipc_ledger_void *m, int64_t now_ms,
    struct journal_result *r)
{
	struct ledger_xfer x;
	struct journal_row p, res;
	int rc;

	journal_result_init(r);
	if ((rc = pending_lookup(j, "void", m->xfer_id, &p, &res, r)) <= 0)
		return rc;
	if (strcmp(res.kind, "void") == 0)
		return journal_same(r);
	if (strcmp(res.kind, "post") == 0)
		return journal_refuse(r, "pending transfer %s was posted", m->xfer_id);
	journal_xfer_init(&x, "void", now_ms);
	snprintf(x.id, sizeof(x.id), "%s:void", m->xfer_id);
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", m->xfer_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", p.payment_ref);
	snprintf(x.debit, sizeof(x.debit), "%s", p.credit);
	snprintf(x.credit, sizeof(x.credit), "%s", p.debit);
	x.amount = p.amount;
	if (journal_insert_pair(j, &x) != 0)
		return journal_fail(j, r, "void", x.id);
	log_debug("voided %s: %" PRId64 " µUSD back to %s", x.pending_id, x.amount, x.credit);
	return 0;
}
