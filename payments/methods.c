/*
 * methods.c — the payment methods cn2-payments can take, and the test method.
 *
 * Each method is a row of pay_methods: whether it is on (by configuration),
 * how it builds a challenge's request, how it checks the echoed request's
 * economics and the payload's shape, and, for methods whose proof needs
 * the processor (stripe, tempo), the call made after the reservation.
 * Every method is off unless configured: the test method needs
 * test_secret_file, lightning lnd_url, stripe stripe_secret_key_file and
 * tempo tempo_rpc_url.
 *
 * "test" is cn2's own method, like a processor's test mode: its proof is
 * base64url(HMAC-SHA256(test_secret, challenge id)), so whoever holds the
 * test secret can pay. Its request is {"amount" (µUSD), "currency":"usdc",
 * "recipient": realm}.
 *
 * Security stance: a payload is outside input. Its shape is checked
 * exactly (the members a method defines, strings of the right length)
 * before any MAC is computed, and proofs are compared in constant time.
 */
#include "payments/payments.h"

#include <inttypes.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <string.h>

#include "common/money.h"

int
pay_json_amount(cJSON *o, const char *key, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cJSON_AddStringToObject(o, key, buf) != NULL ? 0 : -1;
}

const char *
pay_json_str(const cJSON *o, const char *key, size_t max)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

	if (v == NULL || *v == '\0' || strnlen(v, max + 1) > max)
		return NULL;
	return v;
}

int64_t
pay_json_units(const cJSON *o, const char *key)
{
	const char *v = pay_json_str(o, key, 20);
	int64_t n;

	return v != NULL && money_parse_units(v, &n) == 0 ? n : -1;
}

void
pay_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
pay_is_hex(const char *s, size_t n, int lower)
{
	if (s == NULL || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			(!lower && c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

static int
test_enabled(const struct pay_keys *k)
{
	return k->test.len >= MPP_SECRET_MIN;
}

static int
test_offer(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
    pay_offer_fn done, void *arg)
{
	(void)s;
	(void)done;
	(void)arg;
	if ((o->request = cJSON_CreateObject()) == NULL ||
	    pay_json_amount(o->request, "amount", amount) != 0 ||
	    cJSON_AddStringToObject(o->request, "currency", "usdc") == NULL ||
	    cJSON_AddStringToObject(o->request, "recipient", realm) == NULL)
		return -1;
	return 0;
}

static enum pay_problem
test_economics(const struct pay_keys *k, const cJSON *req, const char *realm, int64_t *paid,
    struct pay_claim *claim)
{
	const char *cur = pay_json_str(req, "currency", 16), *to = pay_json_str(req, "recipient", 255);

	(void)k;
	if ((*paid = pay_json_units(req, "amount")) < 1)
		return PP_INVALID_CHALLENGE;
	if (cur == NULL || strcmp(cur, "usdc") != 0 || to == NULL || strcmp(to, realm) != 0)
		return PP_INVALID_CHALLENGE;
	claim->units = *paid;
	return PP_NONE;
}

/* {"proof": "<43 base64url chars>"} and nothing else. */
static enum pay_problem
test_payload(const struct pay_keys *k, const cJSON *payload, const cJSON *req, const char *id,
    struct pay_claim *claim)
{
	const cJSON *proof = cJSON_GetObjectItemCaseSensitive(payload, "proof");
	char want[MPP_ID_BUFSZ];
	int ok;

	(void)req;
	(void)claim;
	if (!cJSON_IsObject(payload) || cJSON_GetArraySize(payload) != 1 ||
	    !cJSON_IsString(proof) || strlen(proof->valuestring) != MPP_ID_BUFSZ - 1)
		return PP_INVALID_PAYLOAD;
	if (mpp_test_proof(k->test.key, k->test.len, id, want) != 0)
		return PP_VERIFICATION_FAILED;
	ok = mbedtls_ct_memcmp(proof->valuestring, want, MPP_ID_BUFSZ - 1) == 0;
	mbedtls_platform_zeroize(want, sizeof(want));
	return ok ? PP_NONE : PP_VERIFICATION_FAILED;
}

/* Our preference order when the buyer expresses none. */
const struct pay_method pay_methods[] = {
    {"test", "charge", test_enabled, test_offer, test_economics, test_payload, NULL},
    {"lightning", "charge", pay_lightning_enabled, pay_lightning_offer, pay_lightning_economics,
	pay_lightning_payload, NULL},
    {"tempo", "charge", pay_tempo_enabled, pay_tempo_offer, pay_tempo_economics,
	pay_tempo_payload, pay_tempo_prove},
    {"stripe", "charge", pay_stripe_enabled, pay_stripe_offer, pay_stripe_economics,
	pay_stripe_payload, pay_stripe_prove},
};
const size_t pay_nmethods = sizeof(pay_methods) / sizeof(pay_methods[0]);

const struct pay_method *
pay_method_offered(const struct pay_keys *k, const char *name)
{
	for (size_t i = 0; i < pay_nmethods; i++)
		if (strcmp(pay_methods[i].name, name) == 0 && pay_methods[i].enabled(k))
			return &pay_methods[i];
	return NULL;
}
