/*
 * ledger_model.c — see ledger_model.h.
 */
#include "tests/scenario/ledger_model.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
lm_init(struct lm *m, uint64_t seed, size_t maxpay, size_t maxev)
{
	memset(m, 0, sizeof(*m));
	m->rng = seed != 0 ? seed : 1;
	m->maxpay = maxpay;
	m->maxev = maxev;
	m->pay = calloc(maxpay, sizeof(*m->pay));
	m->ev = calloc(maxev, sizeof(*m->ev));
	return m->pay != NULL && m->ev != NULL ? 0 : -1;
}

void
lm_free(struct lm *m)
{
	free(m->pay);
	free(m->ev);
	memset(m, 0, sizeof(*m));
}

uint64_t
lm_rand(struct lm *m)
{
	/* xorshift64*: small, and the same sequence for a seed on every machine. */
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return m->rng * UINT64_C(2685821657736338717);
}

int64_t
lm_range(struct lm *m, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(lm_rand(m) % (uint64_t)(hi - lo + 1));
}

static int64_t *
acct_slot(struct lm *m, const char *name)
{
	for (size_t i = 0; i < m->nacct; i++)
		if (strcmp(m->acct[i], name) == 0)
			return &m->bal[i];
	if (m->nacct == LM_ACCOUNTS)
		abort();
	m->acct[m->nacct] = name;
	return &m->bal[m->nacct++];
}

void
lm_move(struct lm *m, const char *account, int64_t amount)
{
	static const char *const names[] = {"clearing:test", "clearing:tempo", "escrow",
	    "platform:fees", "platform:premium", "platform:refunds", "reserve:disputes",
	    "payouts:bank", "seller:s0", "seller:s1", "seller:s2", "seller:s3", "seller:s4"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i], account) == 0) {
			*acct_slot(m, names[i]) += amount;
			return;
		}
	abort();
}

int64_t
lm_balance(const struct lm *m, const char *account)
{
	for (size_t i = 0; i < m->nacct; i++)
		if (strcmp(m->acct[i], account) == 0)
			return m->bal[i];
	return 0;
}

static const char *
seller_acct(int s)
{
	static const char *const n[LM_SELLERS] = {"seller:s0", "seller:s1", "seller:s2",
	    "seller:s3", "seller:s4"};

	return n[s];
}

/* The seller id inside the account name, after "seller:". */
static const char *
seller_id(int s)
{
	return seller_acct(s) + strlen("seller:");
}

static const char *
clearing_acct(const struct lm_pay *p)
{
	return strcmp(p->method, "test") == 0 ? "clearing:test" : "clearing:tempo";
}

/* What the event moves, in the model. */
static void
apply(struct lm *m, const struct lm_event *e)
{
	const struct lm_pay *p = &m->pay[e->pay];
	int64_t a = p->amount, s = p->share;

	switch (e->kind) {
	case LM_PENDING:
		lm_move(m, clearing_acct(p), -a);
		lm_move(m, "escrow", a);
		break;
	case LM_POST:
		lm_move(m, "escrow", -a);
		lm_move(m, seller_acct(p->seller), s);
		lm_move(m, "platform:fees", a - s - p->premium);
		lm_move(m, "platform:premium", p->premium);
		break;
	case LM_VOID:
		lm_move(m, "escrow", -a);
		lm_move(m, clearing_acct(p), a);
		break;
	case LM_DISPUTE:
	case LM_RETURN: {
		int64_t sign = e->kind == LM_DISPUTE ? 1 : -1;

		lm_move(m, seller_acct(p->seller), -sign * s);
		lm_move(m, "platform:refunds", -sign * (a - s));
		lm_move(m, "reserve:disputes", sign * a);
		break;
	}
	default:
		lm_move(m, "reserve:disputes", -a);
		lm_move(m, clearing_acct(p), a);
		break;
	}
	m->transfers++;
}

static struct lm_event *
event_add(struct lm *m, enum lm_kind kind, int pay)
{
	struct lm_event *e;

	if (m->nev == m->maxev)
		abort();
	e = &m->ev[m->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->pay = pay;
	return e;
}

static void
ev_pending(struct lm *m)
{
	struct lm_pay *p = &m->pay[m->npay];
	struct lm_event *e;

	snprintf(p->id, sizeof(p->id), "x%05zu", m->npay);
	snprintf(p->ref, sizeof(p->ref), "ref-%05zu", m->npay);
	p->method = lm_range(m, 0, 1) ? "test" : "tempo";
	p->amount = lm_range(m, 1000, 2000000);
	p->seller = (int)lm_range(m, 0, LM_SELLERS - 1);
	p->state = 1;
	e = event_add(m, LM_PENDING, (int)m->npay++);
	e->type = IPC_LEDGER_PENDING;
	snprintf(e->xfer, sizeof(e->xfer), "%s", p->id);
	lp_pending_msg(&e->msg.ledger_pending, p->id, p->ref, p->method, p->amount);
	apply(m, e);
}

static void
ev_settle(struct lm *m, int i)
{
	struct lm_pay *p = &m->pay[i];
	struct lm_event *e;
	int post = lm_range(m, 0, 3) != 0;

	e = event_add(m, post ? LM_POST : LM_VOID, i);
	snprintf(e->xfer, sizeof(e->xfer), "%s:%s", p->id, post ? "post" : "void");
	if (post) {
		p->premium = lm_range(m, 0, 2) == 0 ? p->amount / 5 : 0;
		p->share = (p->amount - p->premium) * 10 / 11;
		p->state = 2;
		p->post_ev = m->nev - 1;
		e->type = IPC_LEDGER_POST_SPLIT;
		lp_post_msg(&e->msg.ledger_post_split, p->id, seller_id(p->seller), p->share,
		    p->premium);
	} else {
		p->state = 3;
		e->type = IPC_LEDGER_VOID;
		lp_void_msg(&e->msg.ledger_void, p->id);
	}
	apply(m, e);
}

static void
ev_dispute(struct lm *m, int i)
{
	struct lm_pay *p = &m->pay[i];
	struct lm_event *e = event_add(m, LM_DISPUTE, i);

	snprintf(p->dispute, sizeof(p->dispute), "dsp_%s", p->id);
	p->dispute_state = 1;
	p->dispute_ev = m->nev - 1;
	e->type = IPC_DISPUTE_OPEN;
	e->platform = 1;
	snprintf(e->xfer, sizeof(e->xfer), "%s", p->dispute);
	lp_open_msg(&e->msg.dispute_open, p->dispute, p->ref);
	apply(m, e);
}

static void
ev_resolve(struct lm *m, int i)
{
	struct lm_pay *p = &m->pay[i];
	int buyer = lm_range(m, 0, 1) != 0;
	struct lm_event *e = event_add(m, buyer ? LM_REFUND : LM_RETURN, i);

	p->dispute_state = buyer ? 3 : 2;
	e->type = IPC_DISPUTE_RESOLVE;
	e->platform = 1;
	snprintf(e->xfer, sizeof(e->xfer), "%s:%s", p->dispute, buyer ? "refund" : "return");
	lp_resolve_msg(&e->msg.dispute_resolve, p->dispute,
	    buyer ? DISPUTE_FOR_BUYER : DISPUTE_FOR_SELLER);
	apply(m, e);
}

/* A payment in the wanted state, from a random place on: its index, or -1. */
static int
find(struct lm *m, int state, int dispute_state, size_t settled)
{
	size_t start;

	if (m->npay == 0)
		return -1;
	start = (size_t)lm_range(m, 0, (int64_t)m->npay - 1);
	for (size_t k = 0; k < m->npay; k++) {
		size_t i = (start + k) % m->npay;
		struct lm_pay *p = &m->pay[i];

		if (p->state != state || p->dispute_state != dispute_state)
			continue;
		if (state == 2 && dispute_state == 0 && p->post_ev >= settled)
			continue;
		if (dispute_state == 1 && p->dispute_ev >= settled)
			continue;
		return (int)i;
	}
	return -1;
}

int
lm_next(struct lm *m, size_t settled)
{
	int i;

	for (int tries = 0; tries < 8; tries++) {
		int64_t k = lm_range(m, 0, 11);

		if (k < 4 && m->npay < m->maxpay) {
			ev_pending(m);
			return (int)m->nev - 1;
		}
		if (k < 8 && (i = find(m, 1, 0, settled)) >= 0) {
			ev_settle(m, i);
			return (int)m->nev - 1;
		}
		if (k < 10 && (i = find(m, 2, 0, settled)) >= 0) {
			ev_dispute(m, i);
			return (int)m->nev - 1;
		}
		if ((i = find(m, 2, 1, settled)) >= 0) {
			ev_resolve(m, i);
			return (int)m->nev - 1;
		}
	}
	/* The random picks found nothing to do: take the first kind that applies. */
	if (m->npay < m->maxpay) {
		ev_pending(m);
		return (int)m->nev - 1;
	}
	if ((i = find(m, 1, 0, settled)) >= 0) {
		ev_settle(m, i);
		return (int)m->nev - 1;
	}
	if ((i = find(m, 2, 1, settled)) >= 0) {
		ev_resolve(m, i);
		return (int)m->nev - 1;
	}
	return -1;
}

void
lm_quiesce(struct lm *m)
{
	for (size_t i = 0; i < m->npay; i++) {
		if (m->pay[i].state == 1)
			ev_settle(m, (int)i);
		if (m->pay[i].state == 2 && m->pay[i].dispute_state == 1)
			ev_resolve(m, (int)i);
	}
}

static sqlite3 *
books_open(struct h_env *e)
{
	char path[400];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/db/ledger.db", e->dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* Is account in the ledger's books at all? */
static int
books_has(sqlite3 *db, const char *account)
{
	sqlite3_stmt *st = NULL;
	int found = 0;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM accounts WHERE name = ?1", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return found;
}

int
lm_check(const struct lm *m, struct h_env *e)
{
	sqlite3 *db = books_open(e);
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (db == NULL ||
	    sqlite3_prepare_v2(db, "SELECT account, balance FROM v_balances", -1, &st, NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int64_t got = sqlite3_column_int64(st, 1), want = lm_balance(m, name);

		if (got != want) {
			fprintf(stderr, "lm_check: %s holds %" PRId64 ", the model %" PRId64 "\n", name,
			    got, want);
			goto out;
		}
	}
	for (size_t i = 0; i < m->nacct; i++)
		if (m->bal[i] != 0 && !books_has(db, m->acct[i])) {
			fprintf(stderr, "lm_check: the ledger has no account %s\n", m->acct[i]);
			goto out;
		}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

char *
lm_books(struct h_env *e)
{
	sqlite3 *db = books_open(e);
	sqlite3_stmt *st = NULL;
	char *s = NULL;

	if (db != NULL && sqlite3_prepare_v2(db,
			      "SELECT group_concat(account || '=' || balance, ';') FROM v_balances",
			      -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return s;
}
