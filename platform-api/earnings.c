/*
 * earnings.c — GET /api/earnings: the seller's earnings, from the ledger.
 *
 *   200 {"seller":"…","currency":"USD",
 *        "available_micros":…, "available_usd":"…",   what the next payout may take
 *        "pending_micros":…,   "pending_usd":"…",     earned within the hold period
 *        "in_dispute_micros":…,"in_dispute_usd":"…",  held for open disputes
 *        "paid_out_micros":…,  "paid_out_usd":"…",    payouts less reversals
 *        "earned_micros":…,    "earned_usd":"…",      every capture's seller share
 *        "hold_seconds":…, "as_of":"<RFC 3339>"}
 *
 * The numbers are the ledger's (EARNINGS → EARNINGS_REP, answered after
 * every write queued before it is durable); nothing is computed or kept
 * here. Amounts are integer µUSD, and the same as decimal strings.
 *
 * Security stance: the seller is the bearer token's subject and nobody
 * else; the token is checked before the ledger is asked anything.
 */
#include "platform-api/platform.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/money.h"
#include "common/timefmt.h"

struct earnings_op {
	struct platform *p;
	struct ipc_req req;
};

/* Add "<name>_micros" and "<name>_usd". 0, or -1 when memory runs out. */
static int
add_amount(cJSON *o, const char *name, int64_t micros)
{
	char key[48], usd[MONEY_USD_BUFSZ];

	snprintf(key, sizeof(key), "%s_micros", name);
	if (cJSON_AddNumberToObject(o, key, (double)micros) == NULL ||
	    money_format_usd(micros, usd, sizeof(usd)) < 0)
		return -1;
	snprintf(key, sizeof(key), "%s_usd", name);
	return cJSON_AddStringToObject(o, key, usd) != NULL ? 0 : -1;
}

/* The reply body; NULL when memory runs out. */
static cJSON *
earnings_json(const struct ipc_earnings_rep *e)
{
	cJSON *o = cJSON_CreateObject();
	char when[RFC3339_BUFSZ];

	if (o == NULL || rfc3339_format(e->as_of / 1000, when, sizeof(when)) < 0 ||
	    cJSON_AddStringToObject(o, "seller", e->seller_id) == NULL ||
	    cJSON_AddStringToObject(o, "currency", "USD") == NULL ||
	    add_amount(o, "available", e->available) != 0 ||
	    add_amount(o, "pending", e->pending) != 0 ||
	    add_amount(o, "in_dispute", e->in_dispute) != 0 ||
	    add_amount(o, "paid_out", e->paid_out) != 0 || add_amount(o, "earned", e->earned) != 0 ||
	    cJSON_AddNumberToObject(o, "hold_seconds", (double)e->hold_s) == NULL ||
	    cJSON_AddStringToObject(o, "as_of", when) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
on_earnings(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct earnings_op *op = arg;
	cJSON *body;

	if (op->p->stopping) {
		free(op);
		return;
	}
	if (status == 0 && type == IPC_EARNINGS_REP) {
		if ((body = earnings_json(&msg->earnings_rep)) != NULL)
			api_reply_json(op->p, &op->req, 200, body);
		else
			api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
	} else if (status != 0 || (type == IPC_ERROR && msg->error.code != IPC_ERR_REFUSED))
		api_reply_problem(op->p, &op->req, 503, "service-unavailable",
		    "the ledger service is unavailable; try again");
	else {
		log_warnx("the ledger answered %s to EARNINGS", ipc_type_name(type));
		op->p->d->errors++;
		api_reply_problem(op->p, &op->req, 500, "internal-error", "the ledger service failed");
	}
	free(op);
}

void
earnings_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m)
{
	struct ipc_earnings e;
	struct earnings_op *op;
	struct jwt_claims c;
	const char *why;

	if (strcmp(m->method, "GET") != 0) {
		api_reply_problem(p, req, 405, "method-not-allowed", "/api/earnings accepts GET");
		return;
	}
	if (auth_bearer(p, m->authorization, &c, &why) != 0) {
		api_reply_problem(p, req, 401, "unauthorized", why);
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	op->p = p;
	op->req = *req;
	memset(&e, 0, sizeof(e));
	snprintf(e.seller_id, sizeof(e.seller_id), "%s", c.sub);
	if (ipc_request(p->d->ipc, ROLE_LEDGER, IPC_EARNINGS, &e, PLATFORM_PEER_TIMEOUT_MS,
		on_earnings, op) == 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the ledger service is unavailable; try again");
		free(op);
	}
}
