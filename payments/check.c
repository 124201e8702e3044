/*
 * check.c — the checks VERIFY makes on a credential before it touches any
 * state, in the order PROTOCOL.md gives, and nothing else: a pure function
 * of the keys, the message and the clock, so the unit tests can walk every
 * branch and its order.
 *
 *   1. more than one credential              400 (cn2 multiple-credentials)
 *   2. decode "Payment <b64url JSON>"        402 malformed-credential
 *   3. method offered here                   400 method-unsupported
 *   4. HMAC id over the echoed fields        402 invalid-challenge
 *      (under the challenge secret, or the previous one for challenges
 *      issued before a rotation), the header it came in, realm, intent
 *   5. request: the method's economics       402 invalid-challenge
 *      (currency, recipient, details)
 *      amount >= the current price           402 payment-insufficient
 *   6. expires present and parseable         402 invalid-challenge
 *      and in the future                     402 payment-expired
 *   7. payload shape                         402 invalid-payload
 *   8. method proof, where it needs no       402 verification-failed
 *      processor (test, lightning); stripe and tempo prove after the
 *      reservation (verify.c)
 *
 * "Method offered" comes before the HMAC: a method we do not offer cannot
 * carry a valid id of ours (or it was switched off since), and 400 tells
 * the client something it can act on. Reserving the id comes after all of
 * these, in verify.c.
 *
 * Security stance: the credential is hostile. Ids and proofs are compared
 * in constant time; the details returned are fixed text that echoes
 * nothing from the credential; the parsed credential is freed here and
 * never logged.
 */
#include "payments/payments.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/timefmt.h"

/* Record problem p in out, and return it. */
static enum pay_problem
refuse(struct pay_verdict *out, enum pay_problem p, const char *detail)
{
	out->problem = p;
	out->detail = detail;
	return p;
}

/* Did the credential come in the header its challenge named? */
static int
header_matches(const struct mpp_challenge *c, int from_payment_authorization)
{
	int asked = c->header != NULL && strcasecmp(c->header, MPP_HEADER_PAYMENT_AUTH) == 0;

	return asked == (from_payment_authorization != 0);
}

/*
 * Step 4's id: ours under the current secret, or under the previous one for
 * a challenge that expires no later than the rotation's window.
 */
static int
id_is_ours(const struct pay_keys *k, const struct mpp_challenge *c)
{
	int64_t exp;

	if (mpp_challenge_check_id(k->challenge.key, k->challenge.len, c) == 0)
		return 1;
	if (k->challenge_prev.len == 0 || c->expires == NULL ||
	    rfc3339_parse(c->expires, strlen(c->expires), &exp) != 0 || exp > k->prev_until)
		return 0;
	return mpp_challenge_check_id(k->challenge_prev.key, k->challenge_prev.len, c) == 0;
}

/* Step 5: the echoed request is what this route charges now. */
static enum pay_problem
check_request(const struct pay_keys *k, const struct pay_method *m, const cJSON *req,
    const struct ipc_verify *v, struct pay_verdict *out)
{
	if (req == NULL || m->economics(k, req, v->realm, &out->paid, &out->claim) != PP_NONE ||
	    out->paid < 1)
		return refuse(out, PP_INVALID_CHALLENGE,
		    "the challenge's request is not what this route charges");
	if (out->paid < v->amount)
		return refuse(out, PP_PAYMENT_INSUFFICIENT, "the amount paid is below the current price");
	return PP_NONE;
}

/* Steps 6 to 8. */
static enum pay_problem
check_expiry_and_proof(const struct pay_keys *k, const struct pay_method *m,
    const struct mpp_credential *cr, const cJSON *req, int64_t now, struct pay_verdict *out)
{
	const struct mpp_challenge *c = &cr->challenge;
	enum pay_problem p;

	if (c->expires == NULL || rfc3339_parse(c->expires, strlen(c->expires), &out->expires) != 0)
		return refuse(out, PP_INVALID_CHALLENGE, "the challenge has no valid expiry");
	if (out->expires <= now)
		return refuse(out, PP_PAYMENT_EXPIRED, "the challenge has expired");
	if (!cJSON_IsObject(cr->payload))
		return refuse(out, PP_INVALID_PAYLOAD, "the payload is not an object");
	if ((p = m->payload(k, cr->payload, req, c->id, &out->claim)) != PP_NONE)
		return refuse(out, p, p == PP_INVALID_PAYLOAD ?
			"the payload does not have the shape this method requires" :
			"the payment proof was rejected");
	return PP_NONE;
}

/* Steps 3 to 8 on a decoded credential: PP_NONE, or the problem with *detail. */
static enum pay_problem
check_credential(const struct pay_keys *k, const struct ipc_verify *v,
    const struct mpp_credential *cr, int64_t now, struct pay_verdict *out)
{
	const struct mpp_challenge *c = &cr->challenge;
	const struct pay_method *m = pay_method_offered(k, c->method);
	enum pay_problem p;
	cJSON *req;

	if (m == NULL)
		return refuse(out, PP_METHOD_UNSUPPORTED, "this payment method is not offered here");
	if (!id_is_ours(k, c))
		return refuse(out, PP_INVALID_CHALLENGE,
		    "the challenge was not issued here, or was changed");
	if (!header_matches(c, v->header))
		return refuse(out, PP_INVALID_CHALLENGE,
		    "the credential did not come in the header its challenge named");
	if (strcmp(c->realm, v->realm) != 0)
		return refuse(out, PP_INVALID_CHALLENGE, "the challenge was issued for another realm");
	if (strcmp(c->intent, m->intent) != 0)
		return refuse(out, PP_INVALID_CHALLENGE, "the challenge is for another intent");
	snprintf(out->claim.id, sizeof(out->claim.id), "%s", c->id);
	req = mpp_request_decode(c->request);
	p = check_request(k, m, req, v, out);
	if (p == PP_NONE)
		p = check_expiry_and_proof(k, m, cr, req, now, out);
	cJSON_Delete(req);
	if (p != PP_NONE)
		return p;
	snprintf(out->id, sizeof(out->id), "%s", c->id);
	snprintf(out->method, sizeof(out->method), "%s", m->name);
	if (cr->source != NULL && *cr->source != '\0')
		pay_buyer_id(cr->source, out->buyer);
	return PP_NONE;
}

void
pay_check(const struct pay_keys *k, const struct ipc_verify *v, int64_t now,
    struct pay_verdict *out)
{
	struct mpp_credential cr;

	memset(out, 0, sizeof(*out));
	if (v->ncredentials > 1) {
		refuse(out, PP_MULTIPLE_CREDENTIALS,
		    "the request carried more than one payment credential");
		return;
	}
	if (v->credential.p == NULL ||
	    mpp_credential_parse((const char *)v->credential.p, v->credential.len, &cr, NULL,
		0) != 0) {
		refuse(out, PP_MALFORMED_CREDENTIAL, "the credential could not be decoded");
		return;
	}
	check_credential(k, v, &cr, now, out);
	mpp_credential_free(&cr);
}
