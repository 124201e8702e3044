/*
 * grant.c — QUOTE: what a route costs now; ASSIGN: a paid ticket in, a grant
 * for one key out.
 *
 * Both apply select.c's one rule to the route (provider, method, path, pool,
 * region). ASSIGN then reserves the key's limits (a token of each bucket and
 * the price from the daily budget) before the grant is recorded and sent,
 * so concurrent requests cannot overshoot a limit: the loop runs one handler
 * at a time, and the reservation is in memory at once and in router.db with
 * the assignment. A reservation whose grant could not be recorded is given
 * back; the grant holds the rest until its OUTCOME or its expiry (hold.c,
 * release.c). With X-CN2-Session (ASSIGN's session), the key that served the
 * session last is taken again while it is eligible and has not failed since;
 * otherwise the rule picks, and the session follows the new key. The
 * session's key is written with the assignment, in the same commit, so
 * affinity survives a restart at no extra cost (session.c).
 *
 * Security stance: the ticket is the only proof that someone paid, and the
 * edge that carries it may be compromised. So the ticket's MAC (under the
 * secret payments and router share) is checked in constant time before
 * anything else, an expired ticket is refused, the key chosen must cost no
 * more than the ticket paid in the ticket's pool and region, and one
 * payment obtains at most max_grants grants in all (first try and
 * failovers): a replayed ticket cannot buy more upstream calls than that.
 * Each grant is recorded before it is sent. The grant's MAC is under a
 * secret only router and vault share; the award MAC, under the ticket
 * secret, tells payments what the seller earns, so the edge can forge
 * neither. The region and pool come from the MAC'd ticket, never from the
 * edge's word alone.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/capab.h"
#include "common/log.h"
#include "common/randid.h"

int
grant_sel_req(const struct ipc_route *rt, struct sel_req *rq)
{
	if (rt->region[0] != '\0' && strcmp(rt->region, "eu") != 0)
		return -1;
	memset(rq, 0, sizeof(*rq));
	rq->provider = rt->provider;
	rq->method = rt->method;
	rq->path = rt->path;
	rq->pool = rt->pool;
	rq->eu = rt->region[0] != '\0';
	rq->ceiling = INT64_MAX;
	rq->exclude = "";
	return 0;
}

void
grant_quote(struct router *r, const struct ipc_req *req, const struct ipc_quote *m)
{
	struct ipc_quote_rep rep = {0, 0};
	struct sel_req rq;

	if (grant_sel_req(&m->route, &rq) != 0) {
		router_problem(r, req, 400, "invalid-region", "the only routing region is \"eu\"");
		return;
	}
	if (select_quote(&r->pool, &rq, r->cfg->fee_bps, router_now_ms(), &rep.amount,
	    &rep.keys) != 0)
		router_no_key(r, req, &m->route);
	else
		ipc_reply(r->d->ipc, req, IPC_QUOTE_REP, &rep);
}

struct assign_op {
	struct router *r;
	struct ipc_req req;
	struct ipc_grant g;
	uint8_t mac[IPC_MAC_LEN];
	uint8_t award[IPC_MAC_LEN];
	int64_t amount; /* what the ticket paid */
	int64_t now_ms;
	struct state_row state; /* the key's state with this reservation in it */
	int exhausted;		/* the payment has had all its grants */
	int has_session;	/* write the session's key too */
	uint8_t sid[SESS_ID_LEN];
	uint32_t epoch; /* of the key, for the session */
};

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

/* The session's key, if it may serve this request too; NULL otherwise. */
static struct lkey *
session_key(struct router *r, const uint8_t sid[SESS_ID_LEN], const struct sel_req *rq,
    int64_t now)
{
	const char *id;
	struct lkey *k;
	uint32_t epoch;

	if ((id = sessions_get_id(&r->sessions, sid, now, &epoch)) == NULL ||
	    (k = pool_find(&r->pool, id)) == NULL)
		return NULL;
	if (k->fail_epoch != epoch || strcmp(ppool_name(k->pp), rq->provider) != 0 ||
	    !select_eligible(&r->pool, k, rq, r->cfg->fee_bps, now, NULL))
		return NULL;
	return k;
}

/* The key for this request; with a session, op learns what to write for it. */
static struct lkey *
assign_choose(struct router *r, struct assign_op *op, const struct ipc_assign *m,
    const struct sel_req *rq, int64_t now)
{
	int with = m->session[0] != '\0' && r->sessions.max > 0 &&
	    sessions_id(m->session, op->sid) == 0;
	struct lkey *k = with ? session_key(r, op->sid, rq, now) : NULL;

	if (k == NULL)
		k = select_pick(&r->pool, rq, r->cfg->fee_bps, now);
	if (k == NULL || !with)
		return k;
	if (sessions_set_id(&r->sessions, op->sid, k->key_id, k->fail_epoch, now) != 0)
		log_warnx("out of memory: a session loses its affinity");
	op->has_session = 1;
	op->epoch = k->fail_epoch;
	return k;
}

/* Fill and sign the grant and the award for the chosen key. 0, or -1. */
static int
assign_build(struct assign_op *op, const struct ipc_assign *m, const struct lkey *k)
{
	struct router *r = op->r;
	struct ipc_grant *g = &op->g;

	if (randid_make("g_", g->grant_id, sizeof(g->grant_id)) != 0)
		return -1;
	snprintf(g->key_id, sizeof(g->key_id), "%s", k->key_id);
	snprintf(g->payment_id, sizeof(g->payment_id), "%s", m->ticket.payment_id);
	g->route = m->ticket.route;
	g->expires = op->now_ms / 1000 + r->cfg->grant_ttl_s;
	snprintf(g->seller_id, sizeof(g->seller_id), "%s", k->seller_id);
	g->seller_price = k->price;
	snprintf(g->region, sizeof(g->region), "%s", k->region);
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

/*
 * Inside the batch: count this payment's grants, then record this one (as
 * holding its reservation), the key's state and the session's key.
 */
static int
assign_apply(sqlite3 *db, void *arg)
{
	struct assign_op *op = arg;
	struct router *r = op->r;
	sqlite3_stmt *st = store_stmt(r, ST_GRANTS_OF_PAYMENT);
	int rc;

	sqlite3_bind_text(st, 1, op->g.payment_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	op->exhausted = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) >= r->cfg->max_grants;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW || op->exhausted)
		return -1;
	st = store_stmt(r, ST_ASSIGNMENT_ADD);
	sqlite3_bind_text(st, 1, op->g.grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->g.payment_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->g.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, op->g.seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, op->g.seller_price);
	sqlite3_bind_int64(st, 6, op->amount);
	sqlite3_bind_int64(st, 7, op->now_ms / 1000);
	sqlite3_bind_text(st, 8, op->g.region, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, op->g.route.pool);
	sqlite3_bind_int64(st, 10, op->g.expires);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_warnx("grant for %s: %s", op->g.payment_id, sqlite3_errmsg(db));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE || store_state_save(r, &op->state) != 0)
		return -1;
	/* Affinity is a convenience: losing it must not cost the buyer the grant they paid for. */
	if (op->has_session &&
	    sessions_save(db, op->sid, op->g.key_id, op->epoch, op->now_ms) != 0)
		log_warnx("grant %s: the session's key is not saved; it holds until a restart",
		    op->g.grant_id);
	return 0;
}

/* The grant was not recorded: it holds nothing, and its reservation goes back. */
static void
assign_refund(struct router *r, const struct assign_op *op)
{
	struct lkey *k = pool_find(&r->pool, op->g.key_id);
	struct hold *x = holds_find(&r->holds, op->g.grant_id);
	int64_t now = router_now_ms();

	if (x != NULL)
		holds_del(&r->holds, x);
	if (k == NULL)
		return;
	limits_give(&k->lim, &k->caps, op->g.seller_price, op->now_ms, now);
	pool_place(&r->pool, k, now);
}

static void
assign_done(void *arg, int status)
{
	struct assign_op *op = arg;
	struct router *r = op->r;

	if (status == 0) {
		r->assigned++;
		log_debug("payment %s: grant %s for key %s", op->g.payment_id, op->g.grant_id,
		    op->g.key_id);
		ipc_reply(r->d->ipc, &op->req, IPC_GRANT, &op->g);
		free(op);
		return;
	}
	assign_refund(r, op);
	if (op->exhausted) {
		router_problem(r, &op->req, 503, "attempts-exhausted",
		    "this payment has used all of its %lld attempts", (long long)r->cfg->max_grants);
	} else {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, &op->req, IPC_ERR_INTERNAL, "grant not recorded");
	}
	free(op);
}

/* Take the key's limits for this request, and queue the grant. 0, or -1 (nothing taken). */
static int
assign_reserve(struct router *r, struct assign_op *op, const struct ipc_assign *m,
    struct lkey *k, int64_t now)
{
	struct hold *x;

	if (assign_build(op, m, k) != 0)
		return -1;
	x = holds_add(&r->holds, op->g.grant_id, k->key_id, k->price, now, op->g.expires);
	if (x == NULL)
		return -1;
	limits_take(&k->lim, &k->caps, k->price, now);
	store_state_of(k, &op->state);
	if (dbq_push(r->q, assign_apply, assign_done, op) != 0) {
		holds_del(&r->holds, x);
		limits_give(&k->lim, &k->caps, k->price, now, now);
		return -1;
	}
	/* Used up a limit: out of the index until it refills. */
	pool_place(&r->pool, k, now);
	return 0;
}

void
grant_assign(struct router *r, const struct ipc_req *req, const struct ipc_assign *m)
{
	int64_t now = router_now_ms();
	struct assign_op *op;
	struct sel_req rq;
	struct lkey *k;
	const char *why;

	if (!ticket_ok(r, &m->ticket, now / 1000, &why)) {
		log_warnx("%s refused for payment %s: %s", ipc_role_name(req->from),
		    m->ticket.payment_id, why);
		router_problem(r, req, 403, "invalid-ticket", "%s", why);
		return;
	}
	if (grant_sel_req(&m->ticket.route, &rq) != 0) {
		router_problem(r, req, 400, "invalid-region", "the only routing region is \"eu\"");
		return;
	}
	rq.ceiling = m->ticket.amount;
	rq.exclude = m->exclude;
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	if ((k = assign_choose(r, op, m, &rq, now)) == NULL) {
		router_no_key(r, req, &m->ticket.route);
		free(op);
		return;
	}
	op->r = r;
	op->req = *req;
	op->now_ms = now;
	if (assign_reserve(r, op, m, k, now) != 0) {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "cannot issue a grant");
		free(op);
	}
}
