/*
 * disputes.c — disputes against captured payments, for the platform's
 * operators until the buyer-facing workflow exists.
 *
 *   POST /api/disputes              {"receipt":"<Payment-Receipt value>"}
 *                                   or {"reference":"<payment id>"}      → 201
 *   GET  /api/disputes/<id>                                              → 200
 *   POST /api/disputes/<id>/resolve {"outcome":"seller"|"buyer"}         → 200
 *
 * each answering {"id","payment","seller","method","amount_micros",
 * "amount_usd","seller_amount_micros","state":"open"|"returned"|"refunded",
 * "opened","resolved"}. The ledger records everything (DISPUTE_OPEN,
 * _RESOLVE, _GET); this file only checks who asks and what they sent.
 * Opening holds the whole payment in the ledger's dispute reserve, the
 * seller's share taken from their available earnings; "seller" returns it,
 * "buyer" refunds it to the buyer's clearing account.
 *
 * Errors: 401 (token), 403 (not an operator), 400 invalid-request (body),
 * 404 unknown-payment / not-found, 409 already-disputed / already-resolved,
 * 503 when the ledger is down.
 *
 * Security stance: a buyer has no account, and a receipt carries no secret
 * (its reference is the challenge id), so possession of one proves nothing;
 * until the buyer workflow adds a proof of payment, only a bearer token
 * with the operator role (Supabase's "service_role") may open or resolve a
 * dispute. Bodies are parsed strictly and bounded (disputeparse.c, fuzzed),
 * and nothing from them is logged but the payment reference, which is public.
 */
#include "platform-api/platform.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/money.h"
#include "common/randid.h"
#include "common/timefmt.h"

#define OPERATOR_ROLE "service_role"

struct dispute_op {
	struct platform *p;
	struct ipc_req req;
	uint16_t created; /* the status of a success: 201 for a new dispute, else 200 */
};

static const char *
state_name(uint8_t s)
{
	return s == DISPUTE_OPEN ? "open" : s == DISPUTE_RETURNED ? "returned" : "refunded";
}

static cJSON *
dispute_json(const struct ipc_dispute_rep *d)
{
	cJSON *o = cJSON_CreateObject();
	char usd[MONEY_USD_BUFSZ], opened[RFC3339_BUFSZ], resolved[RFC3339_BUFSZ];

	if (o == NULL || money_format_usd(d->amount, usd, sizeof(usd)) < 0 ||
	    rfc3339_format(d->opened / 1000, opened, sizeof(opened)) < 0 ||
	    rfc3339_format(d->resolved / 1000, resolved, sizeof(resolved)) < 0 ||
	    cJSON_AddStringToObject(o, "id", d->dispute_id) == NULL ||
	    cJSON_AddStringToObject(o, "payment", d->payment_ref) == NULL ||
	    cJSON_AddStringToObject(o, "seller", d->seller_id) == NULL ||
	    cJSON_AddStringToObject(o, "method", d->pay_method) == NULL ||
	    cJSON_AddNumberToObject(o, "amount_micros", (double)d->amount) == NULL ||
	    cJSON_AddStringToObject(o, "amount_usd", usd) == NULL ||
	    cJSON_AddNumberToObject(o, "seller_amount_micros", (double)d->seller_amount) == NULL ||
	    cJSON_AddStringToObject(o, "state", state_name(d->state)) == NULL ||
	    cJSON_AddStringToObject(o, "opened", opened) == NULL ||
	    (d->resolved > 0 ? cJSON_AddStringToObject(o, "resolved", resolved) :
			       cJSON_AddNullToObject(o, "resolved")) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* The ledger's refusal, as the problem it is for the caller. */
static void
refused(struct dispute_op *op, const char *detail)
{
	if (strncmp(detail, "no captured payment", 19) == 0)
		api_reply_problem(op->p, &op->req, 404, "unknown-payment", detail);
	else if (strncmp(detail, "no dispute", 10) == 0)
		api_reply_problem(op->p, &op->req, 404, "not-found", detail);
	else if (strstr(detail, "disputed already") != NULL)
		api_reply_problem(op->p, &op->req, 409, "already-disputed", detail);
	else if (strstr(detail, "conflicts") != NULL)
		api_reply_problem(op->p, &op->req, 409, "already-resolved",
		    "the dispute was resolved the other way");
	else
		api_reply_problem(op->p, &op->req, 400, "invalid-request", detail);
}

static void
on_dispute(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct dispute_op *op = arg;
	cJSON *body;

	if (op->p->stopping) {
		free(op);
		return;
	}
	if (status == 0 && type == IPC_DISPUTE_REP) {
		if ((body = dispute_json(&msg->dispute_rep)) != NULL)
			api_reply_json(op->p, &op->req, op->created, body);
		else
			api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
	} else if (status == 0 && type == IPC_ERROR && msg->error.code == IPC_ERR_REFUSED)
		refused(op, msg->error.detail);
	else
		api_reply_problem(op->p, &op->req, 503, "service-unavailable",
		    "the ledger service is unavailable; try again");
	free(op);
}

static void
ledger_send(struct platform *p, const struct ipc_req *req, uint16_t type, const void *msg,
    uint16_t created)
{
	struct dispute_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	op->p = p;
	op->req = *req;
	op->created = created;
	if (ipc_request(p->d->ipc, ROLE_LEDGER, type, msg, PLATFORM_PEER_TIMEOUT_MS, on_dispute,
		op) == 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the ledger service is unavailable; try again");
		free(op);
	}
}

static void
dispute_open_api(struct platform *p, const struct ipc_req *req, const struct ipc_api *m)
{
	struct ipc_dispute_open o;
	const char *why;

	memset(&o, 0, sizeof(o));
	if (disputes_parse_open(m->body.p, m->body.len, o.payment_ref, sizeof(o.payment_ref),
		&why) != 0) {
		api_reply_problem(p, req, 400, "invalid-request", why);
		return;
	}
	if (randid_make("dsp_", o.dispute_id, sizeof(o.dispute_id)) != 0) {
		api_reply_problem(p, req, 500, "internal-error", "cannot create a dispute id");
		return;
	}
	log_info("dispute %s requested on payment %s", o.dispute_id, o.payment_ref);
	ledger_send(p, req, IPC_DISPUTE_OPEN, &o, 201);
}

/* "<id>" or "<id>/resolve" after "/api/disputes/"; the id is copied out. */
static int
id_of(const char *rest, char *id, size_t cap, int *resolve)
{
	size_t n = strcspn(rest, "/");

	*resolve = strcmp(rest + n, "/resolve") == 0;
	if (n == 0 || n >= cap || (rest[n] != '\0' && !*resolve))
		return -1;
	memcpy(id, rest, n);
	id[n] = '\0';
	return strncmp(id, "dsp_", 4) == 0 && disputes_token_ok(id) ? 0 : -1;
}

static void
dispute_one(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *rest)
{
	struct ipc_dispute_resolve r;
	struct ipc_dispute_get g;
	const char *why;
	int resolve, outcome;

	memset(&r, 0, sizeof(r));
	if (id_of(rest, r.dispute_id, sizeof(r.dispute_id), &resolve) != 0) {
		api_reply_problem(p, req, 404, "not-found", "there is no such dispute");
		return;
	}
	if (strcmp(m->method, resolve ? "POST" : "GET") != 0) {
		api_reply_problem(p, req, 405, "method-not-allowed",
		    resolve ? "resolving a dispute is a POST" : "a dispute is read with GET");
		return;
	}
	if (!resolve) {
		memset(&g, 0, sizeof(g));
		memcpy(g.dispute_id, r.dispute_id, sizeof(g.dispute_id));
		ledger_send(p, req, IPC_DISPUTE_GET, &g, 200);
		return;
	}
	if (disputes_parse_resolve(m->body.p, m->body.len, &outcome, &why) != 0) {
		api_reply_problem(p, req, 400, "invalid-request", why);
		return;
	}
	r.outcome = (uint8_t)outcome;
	ledger_send(p, req, IPC_DISPUTE_RESOLVE, &r, 200);
}

void
disputes_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *path)
{
	struct jwt_claims c;
	const char *why;

	if (auth_bearer(p, m->authorization, &c, &why) != 0) {
		api_reply_problem(p, req, 401, "unauthorized", why);
		return;
	}
	if (strcmp(c.role, OPERATOR_ROLE) != 0) {
		api_reply_problem(p, req, 403, "forbidden",
		    "disputes are handled by the platform's operators");
		return;
	}
	if (strcmp(path, "/api/disputes") == 0) {
		if (strcmp(m->method, "POST") != 0)
			api_reply_problem(p, req, 405, "method-not-allowed",
			    "/api/disputes accepts POST");
		else
			dispute_open_api(p, req, m);
	} else if (strncmp(path, "/api/disputes/", 14) == 0)
		dispute_one(p, req, m, path + 14);
	else
		api_reply_problem(p, req, 404, "not-found", "there is no such API resource");
}
