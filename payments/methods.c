/*
 * methods.c — the payment methods cn2-payments can take, and their proofs.
 *
 * Only "test" exists so far: cn2's own method, like a processor's test
 * mode. Its proof is base64url(HMAC-SHA256(test_secret, challenge id)), so
 * whoever holds the test secret can pay; it is on only when
 * test_secret_file is configured (the local default), never by accident.
 *
 * Security stance: a payload is outside input. Its shape is checked exactly
 * (one member, a string of the right length) before any MAC is computed,
 * and the proof is compared in constant time.
 */
#include "payments/payments.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <string.h>

static int
test_enabled(const struct pay_keys *k)
{
	return k->test.len >= MPP_SECRET_MIN;
}

/* {"proof": "<43 base64url chars>"} and nothing else. */
static enum pay_problem
test_verify(const struct pay_keys *k, const cJSON *payload, const char *id)
{
	const cJSON *proof = cJSON_GetObjectItemCaseSensitive(payload, "proof");
	char want[MPP_ID_BUFSZ];
	int ok;

	if (!cJSON_IsObject(payload) || cJSON_GetArraySize(payload) != 1 ||
	    !cJSON_IsString(proof) || strlen(proof->valuestring) != MPP_ID_BUFSZ - 1)
		return PP_INVALID_PAYLOAD;
	if (mpp_test_proof(k->test.key, k->test.len, id, want) != 0)
		return PP_VERIFICATION_FAILED;
	ok = mbedtls_ct_memcmp(proof->valuestring, want, MPP_ID_BUFSZ - 1) == 0;
	mbedtls_platform_zeroize(want, sizeof(want));
	return ok ? PP_NONE : PP_VERIFICATION_FAILED;
}

const struct pay_method pay_methods[] = {
    {"test", "charge", "usdc", test_enabled, test_verify},
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
