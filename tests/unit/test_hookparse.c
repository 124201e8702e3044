/*
 * test_hookparse.c — the webhook body reader (platform-api/hookparse.c):
 * URLs, events, descriptions, what a create and a patch need.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "platform-api/platform.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static void
test_urls(void **state)
{
	static const struct {
		const char *url;
		int allow_http, ok;
	} rows[] = {
	    {"https://hooks.example.com/cn2", 0, 1},
	    {"https://hooks.example.com", 0, 1},
	    {"https://hooks.example.com:8443/a/b?c=d&e=f", 0, 1},
	    {"https://10.1.2.3/x", 0, 1}, /* the form is fine; the address check is at connect */
	    {"https://[2001:db8::1]:443/x", 0, 1},
	    {"http://hooks.example.com/cn2", 0, 0},
	    {"http://127.0.0.1:9000/cn2", 1, 1},
	    {"HTTPS://hooks.example.com/", 0, 0},
	    {"ftp://hooks.example.com/", 1, 0},
	    {"https://user:pw@hooks.example.com/", 0, 0},
	    {"https://hooks.example.com/#frag", 0, 0},
	    {"https://hooks.example.com/a b", 0, 0},
	    {"https://hooks.example.com\\@evil/", 0, 0},
	    {"https://", 0, 0},
	    {"https:///path", 0, 0},
	    {"https://-bad.example/", 0, 0},
	    {"https://hooks.example.com:0/", 0, 0},
	    {"https://hooks.example.com:65536/", 0, 0},
	    {"https://hooks.example.com:/", 0, 0},
	    {"https://hooks.example.com:08/", 0, 0},
	    {"https://[::1/", 0, 0},
	    {"https://[]/", 0, 0},
	    {"https://h\xc3\xa9.example/", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < NF(rows); i++)
		if ((hook_url_ok(rows[i].url, rows[i].allow_http) == 0) != rows[i].ok)
			fail_msg("row %zu: %s", i, rows[i].url);
}

static void
test_bodies(void **state)
{
	static const struct {
		const char *body;
		int create, rc;
		unsigned have;
		const char *events, *why; /* part of the reason */
	} rows[] = {
	    {"{\"url\":\"https://a.example/h\"}", 1, 0, HOOK_URL, "*", NULL},
	    {"{\"url\":\"https://a.example/h\",\"events\":[\"key.quarantined\"],\"description\":\"ops\","
	     "\"enabled\":false}",
		1, 0, HOOK_URL | HOOK_EVENTS | HOOK_DESC | HOOK_ENABLED, "key.quarantined", NULL},
	    {"{\"events\":[\"*\"]}", 1, -1, 0, "", "needs a \"url\""},
	    {"{\"events\":[\"*\"]}", 0, 0, HOOK_EVENTS, "*", NULL},
	    {"{}", 0, -1, 0, "", "nothing to change"},
	    {"{\"enabled\":1}", 0, -1, 0, "", "true or false"},
	    {"{\"events\":[]}", 0, -1, 0, "", "events"},
	    {"{\"events\":[\"*\",\"key.quarantined\"]}", 0, -1, 0, "", "events"},
	    {"{\"events\":[\"key.stolen\"]}", 0, -1, 0, "", "events"},
	    {"{\"events\":\"*\"}", 0, -1, 0, "", "events"},
	    {"{\"description\":\"a\\u0001b\"}", 0, -1, 0, "", "control"},
	    {"{\"url\":\"https://a.example/h\",\"url\":\"https://b.example/h\"}", 1, -1, 0, "",
		"repeated"},
	    {"{\"url\":\"https://a.example/h\",\"secret\":\"x\"}", 1, -1, 0, "", "unknown member"},
	    {"[\"url\"]", 1, -1, 0, "", "JSON object"},
	    {"not json", 1, -1, 0, "", "JSON object"},
	    {"", 1, -1, 0, "", "JSON object"},
	};
	struct hook_input in;
	const char *why;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		int rc;

		why = NULL;
		rc = hook_parse((const uint8_t *)rows[i].body, strlen(rows[i].body), rows[i].create, 0,
		    &in, &why);
		if (rc != rows[i].rc || in.have != rows[i].have ||
		    strcmp(in.events, rows[i].events) != 0 ||
		    (rows[i].why != NULL && (why == NULL || strstr(why, rows[i].why) == NULL)))
			fail_msg("row %zu: rc %d have %u events \"%s\" why %s", i, rc, in.have, in.events,
			    why != NULL ? why : "-");
	}
	/* A create's defaults: every kind, enabled. */
	{
		const char *b = "{\"url\":\"https://a.example/\"}";

		assert_int_equal(hook_parse((const uint8_t *)b, strlen(b), 1, 0, &in, &why), 0);
	}
	assert_int_equal(in.enabled, 1);
	assert_string_equal(in.url, "https://a.example/");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_urls),
	    cmocka_unit_test(test_bodies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
