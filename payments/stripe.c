/*
 * stripe.c — the "stripe" charge method (draft-stripe-charge-00): the
 * buyer grants cn2 a Shared Payment Token, cn2 charges it with a
 * PaymentIntent.
 *
 *   challenge: {"amount": "<cents>", "currency": "usd", "methodDetails":
 *               {"networkId", "paymentMethodTypes"}}; cents =
 *               max(ceil(µUSD / 10000), stripe_min_cents).
 *   payload:   {"spt": "spt_…"} (and an optional "externalId").
 *   verify:    after the reservation, POST <stripe_api_url>/v1/payment_intents
 *              (form-encoded: amount, currency, confirm=true,
 *              shared_payment_granted_token, automatic_payment_methods
 *              without redirects, metadata[challenge_id]) with
 *              Idempotency-Key "mpp_<challenge id>_<spt>", exactly as the
 *              reference SDK (mppx) does. Only "succeeded" pays;
 *              "requires_action" answers payment-action-required; a card
 *              refusal verification-failed; Stripe down, slow, rate
 *              limiting or refusing our key: 503 with Retry-After, and the
 *              reservation is released.
 *   receipt:   reference = the PaymentIntent id.
 *
 * A credential presented again after a release (its upstream call failed)
 * reaches Stripe with the same idempotency key, so Stripe answers with the
 * same PaymentIntent and charges nothing twice; unlike mppx, cn2 accepts
 * such a replay (Idempotent-Replayed: true), because its own reservation
 * state machine already guarantees one capture per challenge.
 *
 * Security stance: the secret key travels only in the Authorization header
 * built here; the token is a bearer secret and is never logged; Stripe's
 * answer is bounded JSON, checked for the amount and currency we asked.
 */
#include "payments/payments.h"

#include <inttypes.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64url.h"
#include "common/log.h"
#include "common/money.h"

#define SPT_MAX 255
#define STRIPE_VERSION "2026-07-29.preview"

struct stripe_call {
	pay_proof_fn done;
	void *arg;
	int64_t cents;
};

int
pay_stripe_enabled(const struct pay_keys *k)
{
	return k->cfg != NULL && k->stripe.len > 0 && k->cfg->stripe_network_id[0] != '\0';
}

static int64_t
stripe_cents(const struct payments_cfg *cfg, int64_t amount)
{
	int64_t cents;

	if (!money_div_ceil(amount, 10000, &cents))
		return -1;
	return cents < cfg->stripe_min_cents ? cfg->stripe_min_cents : cents;
}

/* The configured method types ("card,link") as a JSON array; NULL on failure. */
static cJSON *
stripe_types(const char *list)
{
	cJSON *a = cJSON_CreateArray();
	char buf[128], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", list);
	for (t = strtok_r(buf, ", ", &save); a != NULL && t != NULL; t = strtok_r(NULL, ", ", &save))
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(t))) {
			cJSON_Delete(a);
			return NULL;
		}
	return a;
}

int
pay_stripe_offer(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
    pay_offer_fn done, void *arg)
{
	int64_t cents = stripe_cents(s->cfg, amount);
	cJSON *md = cJSON_CreateObject(), *types = stripe_types(s->cfg->stripe_payment_method_types);

	(void)realm;
	(void)done;
	(void)arg;
	if (cents < 1 || md == NULL || types == NULL || (o->request = cJSON_CreateObject()) == NULL ||
	    !cJSON_AddItemToObject(md, "paymentMethodTypes", types)) {
		cJSON_Delete(md);
		cJSON_Delete(types);
		return -1;
	}
	if (!cJSON_AddItemToObject(o->request, "methodDetails", md)) {
		cJSON_Delete(md);
		return -1;
	}
	if (pay_json_amount(o->request, "amount", cents) != 0 ||
	    cJSON_AddStringToObject(o->request, "currency", "usd") == NULL ||
	    cJSON_AddStringToObject(md, "networkId", s->cfg->stripe_network_id) == NULL)
		return -1;
	return 0;
}

enum pay_problem
pay_stripe_economics(const struct pay_keys *k, const cJSON *req, const char *realm,
    int64_t *paid, struct pay_claim *claim)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(req, "methodDetails");
	const char *cur = pay_json_str(req, "currency", 8), *net = pay_json_str(md, "networkId", 127);
	int64_t cents = pay_json_units(req, "amount");

	(void)realm;
	if (cents < 1 || cur == NULL || strcmp(cur, "usd") != 0 || net == NULL ||
	    strcmp(net, k->cfg->stripe_network_id) != 0 || !money_mul(cents, 10000, paid))
		return PP_INVALID_CHALLENGE;
	claim->units = cents;
	return PP_NONE;
}

static int
spt_ok(const char *t)
{
	if (t == NULL || strncmp(t, "spt_", 4) != 0)
		return 0;
	for (; *t != '\0'; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
			*t == '_'))
			return 0;
	return 1;
}

enum pay_problem
pay_stripe_payload(const struct pay_keys *k, const cJSON *payload, const cJSON *req,
    const char *id, struct pay_claim *claim)
{
	const char *spt = pay_json_str(payload, "spt", SPT_MAX);
	const cJSON *ext = cJSON_GetObjectItemCaseSensitive(payload, "externalId");
	int n = cJSON_GetArraySize(payload);

	(void)k;
	(void)req;
	(void)id;
	if (!spt_ok(spt) || n > 2 || (n == 2 && pay_json_str(payload, "externalId", 128) == NULL) ||
	    (n == 1 && ext != NULL))
		return PP_INVALID_PAYLOAD;
	snprintf(claim->payload_a, sizeof(claim->payload_a), "%s", spt);
	return PP_NONE;
}

void
pay_stripe_judge(long status, const char *body, size_t len, int64_t cents, struct pay_proof *out)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	const char *st = pay_json_str(j, "status", 64), *id = pay_json_str(j, "id", 80);
	const char *cur = pay_json_str(j, "currency", 8);
	const cJSON *amt = cJSON_GetObjectItemCaseSensitive(j, "amount");

	memset(out, 0, sizeof(*out));
	out->problem = PP_VERIFICATION_FAILED;
	out->detail = "the card payment was refused";
	if (status == 401 || status == 403 || status == 429 || status >= 500) {
		out->problem = PP_METHOD_UNAVAILABLE;
		out->detail = "the card processor cannot take payments right now";
	} else if (status == 200 && st != NULL && strcmp(st, "requires_action") == 0) {
		out->problem = PP_ACTION_REQUIRED;
		out->detail = "the card payment requires an action by the buyer";
	} else if (status == 200 && st != NULL && strcmp(st, "succeeded") == 0 && id != NULL &&
	    strncmp(id, "pi_", 3) == 0 && cur != NULL && strcmp(cur, "usd") == 0 &&
	    cJSON_IsNumber(amt) && amt->valuedouble >= 0 && amt->valuedouble < 9.0e15 &&
	    (int64_t)amt->valuedouble == cents) {
		out->problem = PP_NONE;
		out->detail = NULL;
		snprintf(out->reference, sizeof(out->reference), "%s", id);
	} else if (status == 200) {
		out->detail = "the card payment did not succeed";
	}
	if (out->problem == PP_METHOD_UNAVAILABLE)
		out->retry_after = pay_problem_retry(PP_METHOD_UNAVAILABLE);
	cJSON_Delete(j);
}

static void
stripe_on_reply(void *arg, const struct httpc_result *r)
{
	struct stripe_call *sc = arg;
	struct pay_proof p;

	if (r->error != HTTPC_OK) {
		memset(&p, 0, sizeof(p));
		p.problem = PP_METHOD_UNAVAILABLE;
		p.detail = r->error == HTTPC_TIMEOUT ? "the card processor did not answer in time"
							: "the card processor cannot be reached";
		p.retry_after = pay_problem_retry(PP_METHOD_UNAVAILABLE);
	} else {
		pay_stripe_judge(r->status, r->body, r->bodylen, sc->cents, &p);
		if (r->status >= 500 || r->status == 401 || r->status == 403)
			log_warnx("Stripe answered %ld to a PaymentIntent", r->status);
	}
	sc->done(sc->arg, &p);
	free(sc);
}

/* "Basic base64(key:)" into out; 0 or -1. */
static int
stripe_auth(const struct pay_cred *key, char *out, size_t cap)
{
	char user[PAY_CRED_MAX + 2];
	size_t n = (size_t)snprintf(user, sizeof(user), "%s:", key->text);
	int rc;

	rc = snprintf(out, cap, "Authorization: Basic ") < 0 ? -1 : 0;
	if (rc == 0 && b64url_encode((const uint8_t *)user, n, out + 21, cap - 21) < 0)
		rc = -1;
	mbedtls_platform_zeroize(user, sizeof(user));
	/* HTTP Basic uses the standard alphabet, with padding. */
	for (char *p = out + 21; rc == 0 && *p != '\0'; p++)
		*p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
	while (rc == 0 && (strlen(out + 21) % 4) != 0 && strlen(out) + 1 < cap)
		strcat(out, "=");
	return rc;
}

int
pay_stripe_prove(struct payments *s, const struct pay_claim *c, pay_proof_fn done, void *arg)
{
	char url[300], body[768], auth[3 * PAY_CRED_MAX / 2 + 64], idem[400];
	const char *hs[] = {auth, idem, "Content-Type: application/x-www-form-urlencoded",
	    "Stripe-Version: " STRIPE_VERSION, NULL};
	struct httpc_req hr = {.url = url, .headers = hs, .body = body,
	    .timeout_ms = (long)s->cfg->method_timeout_ms};
	struct stripe_call *sc = calloc(1, sizeof(*sc));
	int rc = -1;

	if (sc == NULL)
		return -1;
	*sc = (struct stripe_call){done, arg, c->units};
	snprintf(url, sizeof(url), "%s/v1/payment_intents", s->cfg->stripe_api_url);
	snprintf(idem, sizeof(idem), "Idempotency-Key: mpp_%s_%s", c->id, c->payload_a);
	/* The id and token are base64url and [A-Za-z0-9_]: nothing to escape. */
	snprintf(body, sizeof(body),
	    "amount=%" PRId64 "&currency=usd&confirm=true&shared_payment_granted_token=%s"
	    "&automatic_payment_methods%%5Benabled%%5D=true"
	    "&automatic_payment_methods%%5Ballow_redirects%%5D=never"
	    "&metadata%%5Bchallenge_id%%5D=%s",
	    c->units, c->payload_a, c->id);
	if (stripe_auth(&s->keys.stripe, auth, sizeof(auth)) == 0)
		rc = httpc_post(s->http, &hr, stripe_on_reply, sc);
	mbedtls_platform_zeroize(auth, sizeof(auth));
	mbedtls_platform_zeroize(body, sizeof(body));
	mbedtls_platform_zeroize(idem, sizeof(idem));
	if (rc != 0)
		free(sc);
	return rc;
}

/* Refunds (refund.c). */

struct refund_call {
	pay_refund_fn done;
	void *arg;
};

/*
 * Stripe's word on a refund: 1 with its id when it succeeded or is pending
 * (a card refund settles later, and cannot fail back to us), 1 with no id
 * when the charge was refunded already, 0 for any other answer.
 */
int
pay_stripe_refund_judge(long status, const char *body, size_t len, char *id, size_t cap)
{
	cJSON *j = cJSON_ParseWithLength(body, len), *err;
	const char *st = pay_json_str(j, "status", 32), *rid = pay_json_str(j, "id", 90), *code;
	int ok = 0;

	*id = '\0';
	if (status == 200 && rid != NULL && strncmp(rid, "re_", 3) == 0 && st != NULL &&
	    (strcmp(st, "succeeded") == 0 || strcmp(st, "pending") == 0)) {
		snprintf(id, cap, "%s", rid);
		ok = 1;
	} else if (status == 400 && (err = cJSON_GetObjectItemCaseSensitive(j, "error")) != NULL &&
	    (code = pay_json_str(err, "code", 64)) != NULL &&
	    strcmp(code, "charge_already_refunded") == 0) {
		ok = 1;
	}
	cJSON_Delete(j);
	return ok;
}

static void
refund_on_reply(void *arg, const struct httpc_result *r)
{
	struct refund_call *rc = arg;
	char id[96];
	int ok;

	if (r->error != HTTPC_OK) {
		rc->done(rc->arg, -1, NULL);
	} else {
		ok = pay_stripe_refund_judge(r->status, r->body, r->bodylen, id, sizeof(id));
		if (!ok)
			log_warnx("Stripe answered %ld to a refund", r->status);
		rc->done(rc->arg, ok, ok && id[0] != '\0' ? id : NULL);
	}
	free(rc);
}

int
pay_stripe_refund(struct payments *s, const struct pay_refund_row *row, pay_refund_fn done,
    void *arg)
{
	char url[300], body[256], auth[3 * PAY_CRED_MAX / 2 + 64], idem[160];
	const char *hs[] = {auth, idem, "Content-Type: application/x-www-form-urlencoded",
	    "Stripe-Version: " STRIPE_VERSION, NULL};
	struct httpc_req hr = {.url = url, .headers = hs, .body = body,
	    .timeout_ms = (long)s->cfg->method_timeout_ms};
	struct refund_call *rc;
	int r = -1;

	/* A PaymentIntent id is pi_ and [A-Za-z0-9]: nothing to escape, nothing else accepted. */
	if (strncmp(row->reference, "pi_", 3) != 0 ||
	    strspn(row->reference + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") !=
		strlen(row->reference + 3) ||
	    (rc = calloc(1, sizeof(*rc))) == NULL)
		return -1;
	*rc = (struct refund_call){done, arg};
	snprintf(url, sizeof(url), "%s/v1/refunds", s->cfg->stripe_api_url);
	snprintf(idem, sizeof(idem), "Idempotency-Key: refund_%s", row->reference);
	snprintf(body, sizeof(body), "payment_intent=%s&metadata%%5Bchallenge_id%%5D=%s",
	    row->reference, row->payment_id);
	if (stripe_auth(&s->keys.stripe, auth, sizeof(auth)) == 0)
		r = httpc_post(s->http, &hr, refund_on_reply, rc);
	mbedtls_platform_zeroize(auth, sizeof(auth));
	if (r != 0)
		free(rc);
	return r;
}
