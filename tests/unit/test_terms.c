/*
 * test_terms.c — a listing's terms in the seller API (platform-api/terms.c),
 * as tables: what PATCH and POST bodies may set and what they may not, how a
 * key shows its terms, and POST /api/keys carrying them (keyparse.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "platform-api/platform.h"

/* Refused rows give only what they are about; the rest are zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct terms_case {
	const char *body;
	int flags;
	int ok;
	/* when ok: what the listing holds after (starting from the base below) */
	int64_t price;
	const char *status, *region;
	uint8_t premium;
	const char *routes;
	uint32_t rpm, rpd;
	int64_t budget;
};

#define ALL (LT_PRICE | LT_STATUS)
/* The listing every case starts from. */
#define BASE_PRICE 500
#define BASE_ROUTES "GET /v1/models"

static const struct terms_case cases[] = {
    {"{}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"price_usd\":\"0.002\"}", ALL, 1, 2000, "active", "us", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"price_micros\":7}", ALL, 1, 7, "active", "us", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"price_micros\":0}", ALL, 0},
    {"{\"price_micros\":1.5}", ALL, 0},
    {"{\"price_usd\":\"1\",\"price_micros\":5}", ALL, 0},
    {"{\"price_usd\":\"0.002\"}", 0, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"status\":\"paused\"}", ALL, 1, BASE_PRICE, "paused", "us", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"status\":\"removed\"}", ALL, 0},
    {"{\"status\":\"quarantined\"}", ALL, 0},
    {"{\"status\":\"paused\"}", LT_PRICE, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 10, 20,
	0},
    {"{\"region\":\"eu\"}", ALL, 1, BASE_PRICE, "active", "eu", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"region\":null}", ALL, 1, BASE_PRICE, "active", "", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"region\":\"\"}", ALL, 1, BASE_PRICE, "active", "", 0, BASE_ROUTES, 10, 20, 0},
    {"{\"region\":\"EU\"}", ALL, 0},
    {"{\"region\":\"de\"}", ALL, 0},
    {"{\"region\":1}", ALL, 0},
    {"{\"premium\":true}", ALL, 1, BASE_PRICE, "active", "us", 1, BASE_ROUTES, 10, 20, 0},
    {"{\"premium\":1}", ALL, 0},
    {"{\"routes\":[]}", ALL, 1, BASE_PRICE, "active", "us", 0, "", 10, 20, 0},
    {"{\"routes\":null}", ALL, 1, BASE_PRICE, "active", "us", 0, "", 10, 20, 0},
    {"{\"routes\":[\"POST /v1/chat/completions\",\"GET /v1/models/*\"]}", ALL, 1, BASE_PRICE,
	"active", "us", 0, "POST /v1/chat/completions, GET /v1/models/*", 10, 20, 0},
    {"{\"routes\":[\"POST /a,GET /b\"]}", ALL, 0},
    {"{\"routes\":[\"\"]}", ALL, 0},
    {"{\"routes\":\"POST /a\"}", ALL, 0},
    {"{\"routes\":[1]}", ALL, 0},
    {"{\"routes\":[\"A /1\",\"A /2\",\"A /3\",\"A /4\",\"A /5\",\"A /6\",\"A /7\",\"A /8\","
     "\"A /9\",\"A /10\",\"A /11\",\"A /12\",\"A /13\",\"A /14\",\"A /15\",\"A /16\",\"A /17\"]}",
	ALL, 0},
    {"{\"rpm\":60,\"rpd\":1000}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 60, 1000, 0},
    {"{\"rpm\":null,\"rpd\":0}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 0, 0, 0},
    {"{\"rpm\":1000000}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 1000000, 20, 0},
    {"{\"rpm\":1000001}", ALL, 0},
    {"{\"rpm\":-1}", ALL, 0},
    {"{\"rpm\":2.5}", ALL, 0},
    {"{\"rpd\":10000001}", ALL, 0},
    {"{\"daily_budget_usd\":\"5\"}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 10, 20,
	5000000},
    {"{\"daily_budget_micros\":0}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 10, 20,
	0},
    {"{\"daily_budget_usd\":null}", ALL, 1, BASE_PRICE, "active", "us", 0, BASE_ROUTES, 10, 20,
	0},
    {"{\"daily_budget_usd\":\"-1\"}", ALL, 0},
    {"{\"daily_budget_usd\":\"1\",\"daily_budget_micros\":1}", ALL, 0},
};

static void
test_terms_parse(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct terms_case *c = &cases[i];
		cJSON *o = cJSON_Parse(c->body);
		struct ipc_listing l;
		const char *why = NULL;
		int ok;

		assert_non_null(o);
		memset(&l, 0, sizeof(l));
		l.price = BASE_PRICE;
		snprintf(l.status, sizeof(l.status), "active");
		snprintf(l.region, sizeof(l.region), "us");
		snprintf(l.routes, sizeof(l.routes), BASE_ROUTES);
		l.rpm = 10;
		l.rpd = 20;
		ok = listing_terms_parse(o, &l, c->flags, &why) == 0;
		if (ok != c->ok || (!ok && why == NULL) ||
		    (ok && (l.price != c->price || strcmp(l.status, c->status) != 0 ||
		    strcmp(l.region, c->region) != 0 || l.premium != c->premium ||
		    strcmp(l.routes, c->routes) != 0 || l.rpm != c->rpm || l.rpd != c->rpd ||
		    l.daily_budget != c->budget))) {
			print_error("%s: ok %d\n", c->body, ok);
			bad++;
		}
		cJSON_Delete(o);
	}
	assert_int_equal(bad, 0);
}

static void
test_members(void **state)
{
	(void)state;
	assert_true(listing_term_member("region", 0));
	assert_true(listing_term_member("daily_budget_micros", 0));
	assert_false(listing_term_member("price_usd", 0));
	assert_false(listing_term_member("status", LT_PRICE));
	assert_true(listing_term_member("price_usd", LT_PRICE));
	assert_true(listing_term_member("status", LT_STATUS));
	assert_false(listing_term_member("provider", LT_PRICE | LT_STATUS));
	assert_false(listing_term_member("score", LT_PRICE | LT_STATUS));
}

static void
test_terms_json(void **state)
{
	struct ipc_listing l;
	cJSON *o = cJSON_CreateObject(), *r;

	(void)state;
	memset(&l, 0, sizeof(l));
	snprintf(l.region, sizeof(l.region), "eu");
	l.premium = 1;
	snprintf(l.routes, sizeof(l.routes), "POST /v1/chat/completions, GET /v1/models/*");
	l.rpm = 60;
	l.daily_budget = 2500000;
	l.score = 875000;
	snprintf(l.reason, sizeof(l.reason), "the upstream answered 401");
	l.updated = 1760000000;
	assert_int_equal(listing_terms_json(o, &l), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "region")), "eu");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "premium")));
	r = cJSON_GetObjectItem(o, "routes");
	assert_int_equal(cJSON_GetArraySize(r), 2);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(r, 1)), "GET /v1/models/*");
	assert_int_equal((int)cJSON_GetObjectItem(o, "rpm")->valuedouble, 60);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "rpd")));
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "daily_budget_usd")),
	    "2.500000");
	assert_true(cJSON_GetObjectItem(o, "score")->valuedouble == 0.875);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status_reason")),
	    "the upstream answered 401");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "updated")),
	    "2025-10-09T08:53:20Z");
	cJSON_Delete(o);
	/* No terms: nulls and an empty list. */
	o = cJSON_CreateObject();
	memset(&l, 0, sizeof(l));
	assert_int_equal(listing_terms_json(o, &l), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "region")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "routes")), 0);
	assert_null(cJSON_GetObjectItem(o, "status_reason"));
	cJSON_Delete(o);
}

/* POST /api/keys takes the terms beside provider, price and the sealed key. */
#define SEALED "\"sealed_key\":{\"kid\":\"v1\",\"enc\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"," \
	       "\"ct\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"

static void
test_post_terms(void **state)
{
	static const struct {
		const char *body;
		int ok;
	} posts[] = {
	    {"{\"provider\":\"demo\",\"price_usd\":\"0.001\"," SEALED "}", 1},
	    {"{\"provider\":\"demo\",\"price_usd\":\"0.001\"," SEALED ",\"region\":\"eu\","
	     "\"premium\":true,\"routes\":[\"POST /v1/chat/completions\"],\"rpm\":5,\"rpd\":50,"
	     "\"daily_budget_usd\":\"1\"}", 1},
	    {"{\"provider\":\"demo\",\"price_usd\":\"0.001\"," SEALED ",\"region\":\"mars\"}", 0},
	    {"{\"provider\":\"demo\",\"price_usd\":\"0.001\"," SEALED ",\"status\":\"paused\"}", 0},
	    {"{\"provider\":\"demo\",\"price_usd\":\"0.001\"," SEALED ",\"score\":1}", 0},
	};
	static struct key_input in;
	const char *why;

	(void)state;
	for (size_t i = 0; i < NELEM(posts); i++) {
		int rc = keys_parse((const uint8_t *)posts[i].body, strlen(posts[i].body), &in, &why);

		if ((rc == 0) != posts[i].ok)
			fail_msg("%s: rc %d (%s)", posts[i].body, rc, rc != 0 ? why : "");
	}
	assert_int_equal(keys_parse((const uint8_t *)posts[1].body, strlen(posts[1].body), &in,
			     &why), 0);
	assert_string_equal(in.terms.region, "eu");
	assert_int_equal(in.terms.premium, 1);
	assert_string_equal(in.terms.routes, "POST /v1/chat/completions");
	assert_int_equal(in.terms.rpm, 5);
	assert_int_equal(in.terms.rpd, 50);
	assert_int_equal(in.terms.daily_budget, 1000000);
	assert_int_equal(in.price, 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terms_parse),
	    cmocka_unit_test(test_members),
	    cmocka_unit_test(test_terms_json),
	    cmocka_unit_test(test_post_terms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
