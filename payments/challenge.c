/*
 * challenge.c — CHALLENGE, and every answer that is not a ticket: fresh
 * challenges for a route's price and an RFC 9457 problem body.
 *
 * A challenge's id is an HMAC under the challenge secret over everything
 * it says (realm, method, intent, the canonical request, expires, opaque),
 * so VERIFY can tell an id we issued from a forged or edited one. The
 * opaque parameter carries a random nonce (base64url of JCS {"nonce": …}),
 * because two buyers asking for the same route in the same second would
 * otherwise get the same id — and an id is single use. Only lightning's
 * challenges leave a record: the invoice, stored (durably) before the 402
 * that carries it is sent, as the Lightning draft asks.
 *
 * Offers are built for every enabled method the buyer's Accept-Payment
 * takes, in its order (then ours). A method whose processor fails to help
 * (LND down or slow) is left out of the answer; when that leaves nothing,
 * the answer is 503 payment-method-unavailable with Retry-After. When the
 * buyer accepts none of our methods the answer is 400 method-unsupported,
 * carrying every offer (so the buyer can see what would do); with no
 * method enabled at all it is 503 no-payment-method.
 *
 * Which answers carry challenges: every 402 (PROTOCOL.md) and the 400s;
 * never a 409, 422 or 5xx, which are about this request, not a new payment.
 * An answer with a Retry-After travels as PAY_PROBLEM, the others as
 * PAY_REQUIRED.
 *
 * Security stance: realm comes from the edge and the buyer's Host; it only
 * ever lands in a quoted header value (escaped; CR/LF refused by
 * mpp_challenge_format) and in JSON. Problem details are fixed text.
 */
#include "payments/payments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/money.h"
#include "common/randid.h"
#include "common/timefmt.h"

#define MPP_PROBLEM(n) "https://paymentauth.org/problems/" n
#define CN2_PROBLEM(n) "https://cn2.ai/problems/" n

static const struct {
	int status;
	const char *type;
	const char *title;
	uint32_t retry; /* Retry-After seconds, 0: none */
} problems[PP_MAX] = {
    [PP_NONE] = {500, CN2_PROBLEM("internal"), "Internal Error", 0},
    [PP_PAYMENT_REQUIRED] = {402, MPP_PROBLEM("payment-required"), "Payment Required", 0},
    [PP_MALFORMED_CREDENTIAL] = {402, MPP_PROBLEM("malformed-credential"),
	"Malformed Credential", 0},
    [PP_INVALID_CHALLENGE] = {402, MPP_PROBLEM("invalid-challenge"), "Invalid Challenge", 0},
    [PP_VERIFICATION_FAILED] = {402, MPP_PROBLEM("verification-failed"),
	"Verification Failed", 0},
    [PP_PAYMENT_INSUFFICIENT] = {402, MPP_PROBLEM("payment-insufficient"),
	"Payment Insufficient", 0},
    [PP_PAYMENT_EXPIRED] = {402, MPP_PROBLEM("payment-expired"), "Payment Expired", 0},
    [PP_INVALID_PAYLOAD] = {402, MPP_PROBLEM("invalid-payload"), "Invalid Payload", 0},
    [PP_METHOD_UNSUPPORTED] = {400, MPP_PROBLEM("method-unsupported"), "Method Unsupported", 0},
    [PP_MULTIPLE_CREDENTIALS] = {400, CN2_PROBLEM("multiple-credentials"),
	"Multiple Credentials", 0},
    [PP_PAYMENT_IN_FLIGHT] = {409, CN2_PROBLEM("payment-in-flight"), "Payment In Flight", 1},
    [PP_LEDGER_UNAVAILABLE] = {503, CN2_PROBLEM("ledger-unavailable"), "Payments Unavailable",
	2},
    [PP_NO_PAYMENT_METHOD] = {503, CN2_PROBLEM("no-payment-method"), "No Payment Method", 0},
    [PP_ACTION_REQUIRED] = {402, MPP_PROBLEM("payment-action-required"),
	"Payment Action Required", 0},
    [PP_METHOD_UNAVAILABLE] = {503, CN2_PROBLEM("payment-method-unavailable"),
	"Payment Method Unavailable", 5},
    [PP_IDEMPOTENT_REPLAY] = {409, CN2_PROBLEM("idempotent-replay"), "Already Answered", 0},
    [PP_IDEMPOTENCY_MISMATCH] = {422, CN2_PROBLEM("idempotency-key-mismatch"),
	"Idempotency Key Reused", 0},
    [PP_BUYER_CEILING] = {402, MPP_PROBLEM("payment-insufficient"), "Payment Insufficient", 0},
    [PP_REFUSED_BY_POLICY] = {403, CN2_PROBLEM("payment-refused-by-policy"), "Refused by Policy",
	0},
};

int
pay_problem_status(enum pay_problem p)
{
	return p > PP_NONE && p < PP_MAX ? problems[p].status : 500;
}

const char *
pay_problem_type(enum pay_problem p)
{
	return p > PP_NONE && p < PP_MAX ? problems[p].type : problems[PP_NONE].type;
}

const char *
pay_problem_title(enum pay_problem p)
{
	return p > PP_NONE && p < PP_MAX ? problems[p].title : problems[PP_NONE].title;
}

uint32_t
pay_problem_retry(enum pay_problem p)
{
	return p > PP_NONE && p < PP_MAX ? problems[p].retry : 0;
}

/* One answer being built. */
struct answer_op;
struct offer_slot {
	struct answer_op *op;
	size_t i;
};

struct answer_op {
	struct payments *s;
	struct ipc_req req;
	enum pay_problem p;
	char detail[256];
	char receipt[1024]; /* an idempotent replay's receipt, or "" */
	char realm[128];
	int64_t amount;
	uint32_t retry_after;
	size_t n, pending;
	const struct pay_method *m[PAY_MAX_METHODS];
	struct pay_offer offers[PAY_MAX_METHODS];
	int ok[PAY_MAX_METHODS];
	struct offer_slot slots[PAY_MAX_METHODS];
	char *www;
	char id[MPP_ID_BUFSZ];
};

static void
op_free(struct answer_op *op)
{
	for (size_t i = 0; i < op->n; i++)
		cJSON_Delete(op->offers[i].request);
	free(op->www);
	free(op);
}

/* base64url(JCS({"nonce": random})): the opaque parameter. Caller frees. */
static char *
nonce_opaque(void)
{
	char nonce[RANDID_CHARS + 1], *out = NULL;
	cJSON *o = cJSON_CreateObject();

	if (o != NULL && randid_make("", nonce, sizeof(nonce)) == 0 &&
	    cJSON_AddStringToObject(o, "nonce", nonce) != NULL)
		out = mpp_request_encode(o);
	cJSON_Delete(o);
	return out;
}

/* One WWW-Authenticate value for method m's offer o; its id in id. Caller frees. */
static char *
challenge_line(struct payments *s, const struct pay_method *m, const struct pay_offer *o,
    const char *realm, char id[MPP_ID_BUFSZ])
{
	char expires[RFC3339_BUFSZ], *request, *opaque, *line = NULL;
	struct mpp_challenge c;

	if (rfc3339_format(o->expires, expires, sizeof(expires)) < 0)
		return NULL;
	request = mpp_request_encode(o->request);
	opaque = nonce_opaque();
	memset(&c, 0, sizeof(c));
	c.realm = realm;
	c.method = m->name;
	c.intent = m->intent;
	c.request = request;
	c.expires = expires;
	c.opaque = opaque;
	if (request != NULL && opaque != NULL &&
	    mpp_challenge_id(s->keys.challenge.key, s->keys.challenge.len, &c, id) == 0) {
		c.id = id;
		line = mpp_challenge_format(&c);
	}
	free(request);
	free(opaque);
	return line;
}

/* Append line to *buf (growing it), separated by '\n'. 0 or -1. */
static int
append_line(char **buf, size_t *len, const char *line)
{
	size_t add = strlen(line) + (*len > 0);
	char *p = realloc(*buf, *len + add + 1);

	if (p == NULL)
		return -1;
	if (*len > 0)
		p[(*len)++] = '\n';
	memcpy(p + *len, line, strlen(line) + 1);
	*len += strlen(line);
	*buf = p;
	return 0;
}

/* The methods enabled here, with their names and intents for pay_accept_order. */
static size_t
enabled_methods(const struct pay_keys *k, const struct pay_method **m, const char **names,
    const char **intents)
{
	size_t n = 0;

	for (size_t i = 0; i < pay_nmethods && n < PAY_MAX_METHODS; i++)
		if (pay_methods[i].enabled(k)) {
			m[n] = &pay_methods[i];
			names[n] = pay_methods[i].name;
			intents[n++] = pay_methods[i].intent;
		}
	return n;
}

/* The problem+json body; caller frees. */
static char *
problem_body(const struct answer_op *op)
{
	cJSON *o = cJSON_CreateObject();
	char *out = NULL;
	int ok = o != NULL &&
	    cJSON_AddStringToObject(o, "type", pay_problem_type(op->p)) != NULL &&
	    cJSON_AddStringToObject(o, "title", pay_problem_title(op->p)) != NULL &&
	    cJSON_AddNumberToObject(o, "status", pay_problem_status(op->p)) != NULL &&
	    cJSON_AddStringToObject(o, "detail", op->detail) != NULL;

	if (ok && op->id[0] != '\0')
		ok = cJSON_AddStringToObject(o, "challengeId", op->id) != NULL;
	if (ok && op->receipt[0] != '\0')
		ok = cJSON_AddStringToObject(o, "receipt", op->receipt) != NULL;
	if (ok)
		out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

static void
answer_send(struct answer_op *op)
{
	struct ipc_pay_problem r;
	struct ipc_pay_required pr;
	char *body = problem_body(op);
	int rc;

	if (body == NULL) {
		ipc_reply_error(op->s->d->ipc, &op->req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	memset(&r, 0, sizeof(r));
	r.status = (uint16_t)pay_problem_status(op->p);
	r.retry_after = op->retry_after;
	memcpy(r.challenge_id, op->id, sizeof(op->id));
	r.www_auth.p = (const uint8_t *)op->www;
	r.www_auth.len = op->www != NULL ? (uint32_t)strlen(op->www) : 0;
	r.body.p = (const uint8_t *)body;
	r.body.len = (uint32_t)strlen(body);
	/* PAY_PROBLEM only when there is a Retry-After to carry. */
	if (r.retry_after > 0) {
		rc = ipc_reply(op->s->d->ipc, &op->req, IPC_PAY_PROBLEM, &r);
	} else {
		memset(&pr, 0, sizeof(pr));
		pr.status = r.status;
		memcpy(pr.challenge_id, op->id, sizeof(op->id));
		pr.www_auth = r.www_auth;
		pr.body = r.body;
		rc = ipc_reply(op->s->d->ipc, &op->req, IPC_PAY_REQUIRED, &pr);
	}
	if (rc != 0)
		log_warnx("cannot answer %s %d (connection gone or answer too large)",
		    ipc_role_name(op->req.from), r.status);
	free(body);
}

static void
invoices_done(void *arg, int status)
{
	struct answer_op *op = arg;

	if (status != 0) {
		log_warnx("cannot record lightning invoices; answering without a challenge");
		ipc_reply_error(op->s->d->ipc, &op->req, IPC_ERR_INTERNAL, "cannot record invoices");
		op->s->d->errors++;
	} else {
		answer_send(op);
	}
	op_free(op);
}

static int
invoices_apply(sqlite3 *db, void *arg)
{
	struct answer_op *op = arg;
	int64_t now = time_now_ms() / 1000;

	for (size_t i = 0; i < op->n; i++)
		if (op->ok[i] && op->offers[i].has_invoice &&
		    pay_invoice_put(db, &op->offers[i].invoice, now) != 0)
			return -1;
	return 0;
}

/* Every offer is in: the lines, then (lightning) the invoices, then the answer. */
static void
answer_assemble(struct answer_op *op)
{
	size_t len = 0, built = 0, invoices = 0;
	char lid[MPP_ID_BUFSZ], *line;

	for (size_t i = 0; i < op->n; i++) {
		if (!op->ok[i] || op->s->stopping)
			continue;
		if ((line = challenge_line(op->s, op->m[i], &op->offers[i], op->realm, lid)) == NULL ||
		    append_line(&op->www, &len, line) != 0) {
			free(line);
			continue;
		}
		free(line);
		if (built++ == 0)
			memcpy(op->id, lid, sizeof(lid));
		if (op->offers[i].has_invoice) {
			memcpy(op->offers[i].invoice.challenge_id, lid, sizeof(lid));
			invoices++;
		}
	}
	if (built == 0 && op->n > 0) {
		/* Every method that could have been offered failed to help. */
		op->p = PP_METHOD_UNAVAILABLE;
		op->retry_after = pay_problem_retry(op->p);
		snprintf(op->detail, sizeof(op->detail),
		    "no payment method can take a payment right now; nothing was charged");
	}
	if (invoices > 0 && pay_write(op->s, invoices_apply, invoices_done, op) == 0)
		return;
	if (invoices > 0) {
		ipc_reply_error(op->s->d->ipc, &op->req, IPC_ERR_INTERNAL, "out of memory");
		op_free(op);
		return;
	}
	answer_send(op);
	op_free(op);
}

/* One offer fewer to wait for; the last one assembles the answer. */
static void
offers_release(struct answer_op *op)
{
	if (--op->pending == 0)
		answer_assemble(op);
}

static void
offer_done(void *arg, int ok)
{
	struct offer_slot *slot = arg;

	slot->op->ok[slot->i] = ok;
	offers_release(slot->op);
}

/* Start the offers of the methods the buyer takes (all of them when it takes none). */
static void
answer_offers(struct answer_op *op, const char *accept)
{
	const struct pay_method *m[PAY_MAX_METHODS];
	const char *names[PAY_MAX_METHODS], *intents[PAY_MAX_METHODS];
	size_t n = enabled_methods(&op->s->keys, m, names, intents), order[PAY_MAX_METHODS], k;
	int64_t now = time_now_ms() / 1000;

	if ((k = pay_accept_order(accept, names, intents, n, order)) == 0)
		for (k = 0; k < n; k++)
			order[k] = k;
	op->pending = 1; /* held until every offer has started */
	for (size_t i = 0; i < k; i++) {
		int rc;

		op->m[i] = m[order[i]];
		op->offers[i].expires = now + op->s->cfg->challenge_ttl_s;
		op->slots[i] = (struct offer_slot){op, i};
		op->n = i + 1;
		op->pending++;
		rc = op->m[i]->offer(op->s, op->realm, op->amount, &op->offers[i], offer_done,
		    &op->slots[i]);
		if (rc != 1) {
			op->ok[i] = rc == 0;
			op->pending--;
		}
	}
	offers_release(op);
}

static int
carries_challenges(enum pay_problem p)
{
	int st = pay_problem_status(p);

	return st == 402 || st == 400;
}

/* A new answer to req for p with detail; NULL (ERROR sent) when out of memory. */
static struct answer_op *
answer_new(struct payments *s, const struct ipc_req *req, enum pay_problem p, const char *detail)
{
	struct answer_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	op->s = s;
	op->req = *req;
	op->p = p;
	snprintf(op->detail, sizeof(op->detail), "%s", detail);
	return op;
}

void
pay_answer(struct payments *s, const struct ipc_req *req, enum pay_problem p,
    const char *detail, const char *realm, int64_t amount, const char *accept,
    uint32_t retry_after)
{
	const struct pay_method *m[PAY_MAX_METHODS];
	const char *names[PAY_MAX_METHODS], *intents[PAY_MAX_METHODS];
	struct answer_op *op = answer_new(s, req, p, detail);

	if (op == NULL)
		return;
	op->retry_after = retry_after > 0 ? retry_after : pay_problem_retry(p);
	snprintf(op->realm, sizeof(op->realm), "%s", realm);
	op->amount = amount;
	if (enabled_methods(&s->keys, m, names, intents) == 0) {
		op->p = PP_NO_PAYMENT_METHOD;
		snprintf(op->detail, sizeof(op->detail), "no payment method is enabled on this server");
	}
	if (!carries_challenges(op->p) || amount < 1) {
		answer_send(op);
		op_free(op);
		return;
	}
	answer_offers(op, accept);
}

void
pay_answer_replay(struct payments *s, const struct ipc_req *req, const char *receipt)
{
	struct answer_op *op = answer_new(s, req, PP_IDEMPOTENT_REPLAY,
	    "this request was paid and answered already; cn2 keeps no response bodies, so it "
	    "cannot be sent again, and nothing was charged now (the receipt is attached)");

	if (op == NULL)
		return;
	snprintf(op->receipt, sizeof(op->receipt), "%s", receipt);
	answer_send(op);
	op_free(op);
}

void
pay_on_challenge(struct payments *s, const struct ipc_req *req, const struct ipc_challenge *m)
{
	const struct pay_method *ms[PAY_MAX_METHODS];
	const char *names[PAY_MAX_METHODS], *intents[PAY_MAX_METHODS];
	size_t n = enabled_methods(&s->keys, ms, names, intents), order[PAY_MAX_METHODS];
	char usd[MONEY_USD_BUFSZ], detail[128];

	if (m->amount < 1) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_REFUSED, "amount must be positive");
		return;
	}
	if (n > 0 && pay_accept_order(m->accept, names, intents, n, order) == 0) {
		pay_answer(s, req, PP_METHOD_UNSUPPORTED,
		    "none of the payment methods in Accept-Payment is offered here", m->realm,
		    m->amount, m->accept, 0);
		return;
	}
	money_format_usd(m->amount, usd, sizeof(usd));
	snprintf(detail, sizeof(detail), "this request costs %s USD", usd);
	pay_answer(s, req, PP_PAYMENT_REQUIRED, detail, m->realm, m->amount, m->accept, 0);
}
