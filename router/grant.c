/*
 * grant.c — ASSIGN: a paid ticket in, a grant for one key out; OUTCOME: what
 * happened with it, kept as request metadata.
 *
 * Security stance: the ticket is the only proof that someone paid, and the
 * edge that carries it may be compromised. So the ticket's MAC (under the
 * secret payments and router share) is checked in constant time before
 * anything else, an expired ticket is refused, the key chosen must cost no
 * more than the ticket paid, and one payment obtains at most max_grants
 * grants in all (first try and failovers): a replayed ticket cannot buy more
 * upstream calls than that. Each grant is recorded before it is sent. The
 * grant's MAC is under a secret only router and vault share; the award MAC,
 * under the ticket secret, tells payments what the seller earns, so the edge
 * can forge neither. Request metadata is provider, route, status, timing and
 * amount: never a body, a header or an address.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/capab.h"
#include "common/db.h"
#include "common/log.h"
#include "common/randid.h"

struct assign_op {
	struct router *r;
	struct ipc_req req;
	struct ipc_grant g;
	uint8_t mac[IPC_MAC_LEN];
	uint8_t award[IPC_MAC_LEN];
	int64_t amount; /* what the ticket paid */
	int64_t now;
	int exhausted;	/* the payment has had all its grants */
};

/* Row buffers for one choice: the loop is single-threaded, so one set serves all. */
static struct cand_row rows[ROUTER_CANDIDATES_MAX];
static struct sel_cand cands[ROUTER_CANDIDATES_MAX];

static int
ticket_ok(struct router *r, const struct ipc_ticket *t, int64_t now, const char **why)
{
	uint8_t want[IPC_MAC_LEN];

	if (capab_ticket_mac(r->ticket_key, r->ticket_keylen, t, want) != 0 ||
	    capab_equal(&t->mac, want) != 0)
		*why = "the ticket's MAC does not verify";
	else if (t->expires <= now)
		*why = "the ticket has expired";
	else
		return 1;
	return 0;
}

/* The cheapest eligible key: its row, or NULL (-1 in *err on a database error). */
static const struct cand_row *
assign_choose(struct router *r, const struct ipc_assign *m, int *err)
{
	int n = listings_candidates(r, m->ticket.route.provider, rows, ROUTER_CANDIDATES_MAX);
	int i;

	*err = n < 0;
	for (i = 0; i < n; i++) {
		cands[i].key_id = rows[i].key_id;
		cands[i].price = rows[i].price;
	}
	if (n <= 0)
		return NULL;
	i = select_pick(cands, (size_t)n, r->cfg->fee_bps, m->ticket.amount, m->exclude,
	    r->spread++);
	return i < 0 ? NULL : &rows[i];
}

/* Fill and sign the grant and the award for the chosen key. 0, or -1. */
static int
assign_build(struct assign_op *op, const struct ipc_assign *m, const struct cand_row *k)
{
	struct router *r = op->r;
	struct ipc_grant *g = &op->g;

	if (randid_make("g_", g->grant_id, sizeof(g->grant_id)) != 0)
		return -1;
	snprintf(g->key_id, sizeof(g->key_id), "%s", k->key_id);
	snprintf(g->payment_id, sizeof(g->payment_id), "%s", m->ticket.payment_id);
	g->route = m->ticket.route;
	g->expires = op->now + r->cfg->grant_ttl_s;
	snprintf(g->seller_id, sizeof(g->seller_id), "%s", k->seller_id);
	g->seller_price = k->price;
	if (capab_grant_mac(r->grant_key, r->grant_keylen, g, op->mac) != 0 ||
	    capab_award_mac(r->ticket_key, r->ticket_keylen, g->payment_id, g->key_id,
	    g->seller_id, g->seller_price, op->award) != 0)
		return -1;
	g->mac.p = op->mac;
	g->mac.len = IPC_MAC_LEN;
	g->award_mac.p = op->award;
	g->award_mac.len = IPC_MAC_LEN;
	op->amount = m->ticket.amount;
	return 0;
}

/* Inside the batch: count this payment's grants, then record this one. */
static int
assign_apply(sqlite3 *db, void *arg)
{
	struct assign_op *op = arg;
	sqlite3_stmt *st = db_prepare(db, "SELECT count(*) FROM assignments WHERE payment_id = ?1");
	int rc;

	sqlite3_bind_text(st, 1, op->g.payment_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	op->exhausted = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) >= op->r->cfg->max_grants;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW || op->exhausted)
		return -1;
	st = db_prepare(db,
	    "INSERT INTO assignments (grant_id, payment_id, key_id, seller_id, seller_price,"
	    " amount, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	sqlite3_bind_text(st, 1, op->g.grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->g.payment_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->g.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, op->g.seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, op->g.seller_price);
	sqlite3_bind_int64(st, 6, op->amount);
	sqlite3_bind_int64(st, 7, op->now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		log_warnx("grant for %s: %s", op->g.payment_id, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
assign_done(void *arg, int status)
{
	struct assign_op *op = arg;
	struct router *r = op->r;

	if (status == 0) {
		log_debug("payment %s: grant %s for key %s", op->g.payment_id, op->g.grant_id,
		    op->g.key_id);
		ipc_reply(r->d->ipc, &op->req, IPC_GRANT, &op->g);
	} else if (op->exhausted) {
		router_problem(r, &op->req, 503, "attempts-exhausted",
		    "this payment has used all of its %lld attempts", (long long)r->cfg->max_grants);
	} else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, &op->req, IPC_ERR_INTERNAL, "grant not recorded");
	}
	free(op);
}

void
grant_assign(struct router *r, const struct ipc_req *req, const struct ipc_assign *m)
{
	int64_t now = (int64_t)time(NULL);
	const struct cand_row *k;
	struct assign_op *op;
	const char *why;
	int err;

	if (!ticket_ok(r, &m->ticket, now, &why)) {
		log_warnx("%s refused for payment %s: %s", ipc_role_name(req->from),
		    m->ticket.payment_id, why);
		router_problem(r, req, 403, "invalid-ticket", "%s", why);
		return;
	}
	if ((k = assign_choose(r, m, &err)) == NULL) {
		if (err) {
			r->d->errors++;
			ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "listings unreadable");
		} else
			router_problem(r, req, 503, "no-key-available",
			    "no seller key is available for %s right now", m->ticket.route.provider);
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->r = r;
	op->req = *req;
	op->now = now;
	if (assign_build(op, m, k) != 0 || dbq_push(r->q, assign_apply, assign_done, op) != 0) {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "cannot issue a grant");
		free(op);
	}
}

/* OUTCOME: one metadata row, with the amount paid looked up from the grant. */
struct outcome_op {
	struct router *r;
	struct ipc_req req;
	struct ipc_outcome o;
	int64_t now;
};

static int
outcome_apply(sqlite3 *db, void *arg)
{
	struct outcome_op *op = arg;
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO requests (time, provider, method, path, status, latency_ms, failure,"
	    " amount, key_id, grant_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	    " (SELECT amount FROM assignments WHERE grant_id = ?9), ?8, ?9)");
	int rc;

	sqlite3_bind_int64(st, 1, op->now);
	sqlite3_bind_text(st, 2, op->o.route.provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->o.route.method, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, op->o.route.path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, op->o.status);
	sqlite3_bind_int64(st, 6, op->o.latency_ms);
	sqlite3_bind_int(st, 7, op->o.failure);
	sqlite3_bind_text(st, 8, op->o.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, op->o.grant_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		log_warnx("outcome of grant %s: %s", op->o.grant_id, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
outcome_done(void *arg, int status)
{
	struct outcome_op *op = arg;
	struct router *r = op->r;

	if (status == 0)
		ipc_reply(r->d->ipc, &op->req, IPC_ACK, NULL);
	else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, &op->req, IPC_ERR_INTERNAL, "outcome not recorded");
	}
	free(op);
}

void
grant_outcome(struct router *r, const struct ipc_req *req, const struct ipc_outcome *m)
{
	struct outcome_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->r = r;
	op->req = *req;
	op->o = *m;
	op->now = (int64_t)time(NULL);
	if (dbq_push(r->q, outcome_apply, outcome_done, op) != 0) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		free(op);
	}
}
