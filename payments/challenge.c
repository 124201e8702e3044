/*
 * challenge.c — CHALLENGE, and every PAY_REQUIRED answer: fresh challenges
 * for a route's price and an RFC 9457 problem body.
 *
 * A challenge is stateless: its id is an HMAC under the challenge secret
 * over everything it says (realm, method, intent, the canonical request
 * {"amount","currency","recipient"}, expires, opaque), so VERIFY can tell an
 * id we issued from a forged or edited one without storing anything. The
 * opaque parameter carries a random nonce (base64url of JCS {"nonce": …}),
 * because two buyers asking for the same route in the same second would
 * otherwise get the same id — and an id is single use.
 *
 * When the buyer's Accept-Payment takes none of our offers, the answer is
 * 400 method-unsupported, still carrying every challenge we offer (the
 * buyer can see what would do). When no method is enabled at all, it is
 * 503 no-payment-method without a challenge.
 *
 * Security stance: realm comes from the edge and the buyer's Host; it only
 * ever lands in a quoted header value (escaped; CR/LF refused by
 * mpp_challenge_format) and in JSON. Problem details are fixed text.
 */
#include "payments/payments.h"

#include <inttypes.h>
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
} problems[PP_MAX] = {
    [PP_NONE] = {500, CN2_PROBLEM("internal"), "Internal Error"},
    [PP_PAYMENT_REQUIRED] = {402, MPP_PROBLEM("payment-required"), "Payment Required"},
    [PP_MALFORMED_CREDENTIAL] = {402, MPP_PROBLEM("malformed-credential"),
	"Malformed Credential"},
    [PP_INVALID_CHALLENGE] = {402, MPP_PROBLEM("invalid-challenge"), "Invalid Challenge"},
    [PP_VERIFICATION_FAILED] = {402, MPP_PROBLEM("verification-failed"),
	"Verification Failed"},
    [PP_PAYMENT_INSUFFICIENT] = {402, MPP_PROBLEM("payment-insufficient"),
	"Payment Insufficient"},
    [PP_PAYMENT_EXPIRED] = {402, MPP_PROBLEM("payment-expired"), "Payment Expired"},
    [PP_INVALID_PAYLOAD] = {402, MPP_PROBLEM("invalid-payload"), "Invalid Payload"},
    [PP_METHOD_UNSUPPORTED] = {400, MPP_PROBLEM("method-unsupported"), "Method Unsupported"},
    [PP_MULTIPLE_CREDENTIALS] = {400, CN2_PROBLEM("multiple-credentials"),
	"Multiple Credentials"},
    [PP_PAYMENT_IN_FLIGHT] = {409, CN2_PROBLEM("payment-in-flight"), "Payment In Flight"},
    [PP_LEDGER_UNAVAILABLE] = {503, CN2_PROBLEM("ledger-unavailable"), "Payments Unavailable"},
    [PP_NO_PAYMENT_METHOD] = {503, CN2_PROBLEM("no-payment-method"), "No Payment Method"},
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

/* base64url(JCS(obj)) of a one-member string object; caller frees. */
static char *
encode_pair(const char *k1, const char *v1)
{
	cJSON *o = cJSON_CreateObject();
	char *out = NULL;

	if (o != NULL && cJSON_AddStringToObject(o, k1, v1) != NULL)
		out = mpp_request_encode(o);
	cJSON_Delete(o);
	return out;
}

/* The request of method m for amount µUSD paid to realm; caller frees. */
static char *
encode_request(const struct pay_method *m, const char *realm, int64_t amount)
{
	cJSON *o = cJSON_CreateObject();
	char amt[24], *out = NULL;

	snprintf(amt, sizeof(amt), "%" PRId64, amount);
	if (o != NULL && cJSON_AddStringToObject(o, "amount", amt) != NULL &&
	    cJSON_AddStringToObject(o, "currency", m->currency) != NULL &&
	    cJSON_AddStringToObject(o, "recipient", realm) != NULL)
		out = mpp_request_encode(o);
	cJSON_Delete(o);
	return out;
}

/* One WWW-Authenticate value for method m; its id in id. Caller frees. */
static char *
challenge_line(struct payments *s, const struct pay_method *m, const char *realm,
    int64_t amount, int64_t now, char id[MPP_ID_BUFSZ])
{
	char expires[RFC3339_BUFSZ], nonce[RANDID_CHARS + 1], *request, *opaque, *line = NULL;
	struct mpp_challenge c;

	if (rfc3339_format(now + s->cfg->challenge_ttl_s, expires, sizeof(expires)) < 0 ||
	    randid_make("", nonce, sizeof(nonce)) != 0)
		return NULL;
	request = encode_request(m, realm, amount);
	opaque = encode_pair("nonce", nonce);
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

int
pay_challenges(struct payments *s, const char *realm, int64_t amount, const char *accept,
    int64_t now, char **www, char id[MPP_ID_BUFSZ], int *acceptable)
{
	const struct pay_method *m[PAY_MAX_METHODS];
	const char *names[PAY_MAX_METHODS], *intents[PAY_MAX_METHODS];
	size_t n, k, order[PAY_MAX_METHODS], len = 0;
	char lid[MPP_ID_BUFSZ], *line;

	*www = NULL;
	if ((n = enabled_methods(&s->keys, m, names, intents)) == 0)
		return -1;
	k = pay_accept_order(accept, names, intents, n, order);
	if ((*acceptable = k > 0) == 0)
		for (k = 0; k < n; k++)
			order[k] = k;
	for (size_t i = 0; i < k; i++) {
		if ((line = challenge_line(s, m[order[i]], realm, amount, now, lid)) == NULL ||
		    append_line(www, &len, line) != 0) {
			free(line);
			free(*www);
			*www = NULL;
			return -1;
		}
		free(line);
		if (i == 0)
			memcpy(id, lid, sizeof(lid));
	}
	return 0;
}

/* The problem+json body; caller frees. */
static char *
problem_body(enum pay_problem p, const char *detail, const char *id)
{
	cJSON *o = cJSON_CreateObject();
	char *out = NULL;

	if (o != NULL && cJSON_AddStringToObject(o, "type", pay_problem_type(p)) != NULL &&
	    cJSON_AddStringToObject(o, "title", pay_problem_title(p)) != NULL &&
	    cJSON_AddNumberToObject(o, "status", pay_problem_status(p)) != NULL &&
	    cJSON_AddStringToObject(o, "detail", detail) != NULL &&
	    (*id == '\0' || cJSON_AddStringToObject(o, "challengeId", id) != NULL))
		out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

void
pay_reply_problem(struct payments *s, const struct ipc_req *req, enum pay_problem p,
    const char *detail, const char *realm, int64_t amount, const char *accept)
{
	const struct pay_method *m[PAY_MAX_METHODS];
	const char *names[PAY_MAX_METHODS], *intents[PAY_MAX_METHODS];
	struct ipc_pay_required r;
	char id[MPP_ID_BUFSZ] = "", *www = NULL, *body;
	int acceptable = 1;

	memset(&r, 0, sizeof(r));
	if (enabled_methods(&s->keys, m, names, intents) == 0) {
		p = PP_NO_PAYMENT_METHOD;
		detail = "no payment method is enabled on this server";
	}
	if (p != PP_LEDGER_UNAVAILABLE && p != PP_NO_PAYMENT_METHOD &&
	    pay_challenges(s, realm, amount, accept, time_now_ms() / 1000, &www, id,
		&acceptable) != 0) {
		log_warnx("cannot build a challenge for realm of %zu bytes", strlen(realm));
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "cannot build a challenge");
		s->d->errors++;
		return;
	}
	if ((body = problem_body(p, detail, id)) == NULL) {
		free(www);
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		s->d->errors++;
		return;
	}
	r.status = (uint16_t)pay_problem_status(p);
	snprintf(r.challenge_id, sizeof(r.challenge_id), "%s", id);
	r.www_auth.p = (const uint8_t *)www;
	r.www_auth.len = www != NULL ? (uint32_t)strlen(www) : 0;
	r.body.p = (const uint8_t *)body;
	r.body.len = (uint32_t)strlen(body);
	if (ipc_reply(s->d->ipc, req, IPC_PAY_REQUIRED, &r) != 0)
		log_warnx("cannot answer %s %d (connection gone or answer too large)",
		    ipc_role_name(req->from), r.status);
	free(www);
	free(body);
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
		pay_reply_problem(s, req, PP_METHOD_UNSUPPORTED,
		    "none of the payment methods in Accept-Payment is offered here", m->realm,
		    m->amount, m->accept);
		return;
	}
	money_format_usd(m->amount, usd, sizeof(usd));
	snprintf(detail, sizeof(detail), "this request costs %s USD", usd);
	pay_reply_problem(s, req, PP_PAYMENT_REQUIRED, detail, m->realm, m->amount, m->accept);
}
