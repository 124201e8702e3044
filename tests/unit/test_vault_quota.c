/*
 * test_vault_quota.c — the vault's reading of an upstream's error body
 * (vault/quota.c), as a table: the providers' real out-of-credit bodies are
 * quota, rate limits and other errors are not, markers only count as JSON
 * members (a buyer's text quoted in a message never does), and nothing is
 * read past the length given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ipc_msg.h"
#include "vault/quota.h"

static void
test_classify(void **state)
{
	static const struct {
		const char *body;
		uint8_t want;
	} cases[] = {
	    /* OpenAI's 429 when the credit or quota is gone, as it sends it. */
	    {"{\n    \"error\": {\n        \"message\": \"You exceeded your current quota, please "
	     "check your plan and billing details.\",\n        \"type\": \"insufficient_quota\",\n"
	     "        \"param\": null,\n        \"code\": \"insufficient_quota\"\n    }\n}\n",
		ECLASS_QUOTA},
	    {"{\"error\":{\"message\":\"x\",\"type\":\"insufficient_quota\",\"param\":null,"
	     "\"code\":null}}",
		ECLASS_QUOTA},
	    {"{\"error\":{\"type\":\"insufficient_quota\",\"code\":\"credit_balance_exhausted\"}}",
		ECLASS_QUOTA},
	    /* Anthropic: 400 with the credit message, and billing_error. */
	    {"{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Your "
	     "credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
	     "to upgrade or purchase credits.\"}}",
		ECLASS_QUOTA},
	    {"{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"Billing error\"}}",
		ECLASS_QUOTA},
	    {"{ \"type\" :\t\"billing_error\" }", ECLASS_QUOTA},
	    /* A rate limit, and other errors: not quota. */
	    {"{\"error\":{\"message\":\"Rate limit reached for gpt-4o on requests per min (RPM)\","
	     "\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}",
		ECLASS_NONE},
	    {"{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"x\"}}",
		ECLASS_NONE},
	    {"{\"error\":{\"message\":\"injected failure\",\"type\":\"server_error\",\"code\":null}}",
		ECLASS_NONE},
	    {"", ECLASS_NONE},
	    {"insufficient_quota", ECLASS_NONE},
	    {"\"insufficient_quota\"", ECLASS_NONE},
	    /* The buyer's text quoted in a message: escaped quotes are no member. */
	    {"{\"error\":{\"message\":\"The model `\\\"type\\\": \\\"insufficient_quota\\\"` does "
	     "not exist\",\"type\":\"invalid_request_error\",\"code\":\"model_not_found\"}}",
		ECLASS_NONE},
	    {"{\"error\":{\"message\":\"bad value \\\\\\\"code\\\\\\\":\\\"insufficient_quota\\\"\","
	     "\"type\":\"invalid_request_error\"}}",
		ECLASS_NONE},
	    {"{\"error\":{\"message\":\"echo: Your credit balance is too low\","
	     "\"type\":\"invalid_request_error\"}}",
		ECLASS_NONE},
	    /* Near misses. */
	    {"{\"type\":\"insufficient_quota_soon\"}", ECLASS_NONE},
	    {"{\"kind\":\"insufficient_quota\"}", ECLASS_NONE},
	    {"{\"type\":insufficient_quota}", ECLASS_NONE},
	    {"{\"type\" \"insufficient_quota\"}", ECLASS_NONE},
	    {"{\"message\":\"your credit balance is too low\"}", ECLASS_NONE},
	    /* A backslash that escapes a backslash leaves the quote real. */
	    {"{\"a\":\"\\\\\",\"type\":\"insufficient_quota\"}", ECLASS_QUOTA},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].body);
		uint8_t *p = malloc(len + 1); /* exactly the body: a sanitizer sees any overread */
		uint8_t got;

		assert_non_null(p);
		memcpy(p, cases[i].body, len);
		got = quota_classify(p, len);
		if (got != cases[i].want) {
			print_error("case %zu \"%.60s…\": %u, want %u\n", i, cases[i].body, got,
			    cases[i].want);
			bad++;
		}
		free(p);
	}
	assert_int_equal(bad, 0);
}

/* A marker cut short by the length given is not there; every cut of a real body is safe. */
static void
test_bounds(void **state)
{
	static const char body[] = "{\"error\":{\"type\":\"insufficient_quota\"}}";
	size_t len = strlen(body), full = strstr(body, "quota\"") - body + 6;

	(void)state;
	for (size_t n = 0; n <= len; n++) {
		uint8_t *p = malloc(n + 1);

		assert_non_null(p);
		memcpy(p, body, n);
		assert_int_equal(quota_classify(p, n), n >= full ? ECLASS_QUOTA : ECLASS_NONE);
		free(p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
