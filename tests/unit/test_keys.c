/*
 * test_keys.c — the POST /api/keys body parser of cn2-platform, as a table:
 * what a seller may send, and every way the body can be wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "platform-api/platform.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct kcase {
	const char *body;
	int want;
	const char *provider, *key;
	int64_t price;
};

static const struct kcase cases[] = {
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_usd\":\"0.002\"}", 0, "demo",
	"sk-abcdefgh", 2000},
    {"{\"key\":\"sk-abcdefgh\",\"price_micros\":1,\"provider\":\"open-ai2\"}", 0, "open-ai2",
	"sk-abcdefgh", 1},
    {" {\"provider\":\"demo\",\"key\":\"~!@#$%^&*()\",\"price_usd\":\"1000\"}\r\n", 0, "demo",
	"~!@#$%^&*()", 1000000000},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":1000000000}", 0, "demo",
	"sk-abcdefgh", 1000000000},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":1000000001}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_usd\":\"1000.000001\"}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_usd\":\"0.0000001\"}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_usd\":\"0.000000\"}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_usd\":\"1e3\"}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":-5}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":2.5}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":true}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":2,\"price_usd\":\"2\"}", -1,
	0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\"}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcd\",\"price_micros\":2}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcde\",\"price_micros\":2}", 0, "demo", "sk-abcde", 2},
    {"{\"provider\":\"demo\",\"key\":\"sk-abc\\tdefgh\",\"price_micros\":2}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abc\\u0000defgh\",\"price_micros\":2}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdéfgh\",\"price_micros\":2}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":12345678,\"price_micros\":2}", -1, 0, 0, 0},
    {"{\"provider\":\"demo_x\",\"key\":\"sk-abcdefgh\",\"price_micros\":2}", -1, 0, 0, 0},
    {"{\"provider\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"key\":\"sk-abcdefgh\",\"price_micros\":2}",
	-1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":2,\"x\":1}", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"key\":\"sk-other123\",\"price_micros\":2}",
	-1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":2}x", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_micros\":2", -1, 0, 0, 0},
    {"[1]", -1, 0, 0, 0},
    {"\"demo\"", -1, 0, 0, 0},
    {"", -1, 0, 0, 0},
    {"{\"provider\":\"demo\",\"key\":\"sk-abc\xff" "defgh\",\"price_micros\":2}", -1, 0, 0, 0},
};

static void
test_parse_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct kcase *c = &cases[i];
		struct key_input in;
		const char *why = NULL;
		int rc = keys_parse((const uint8_t *)c->body, strlen(c->body), &in, &why);

		if (rc != c->want || (rc != 0 && why == NULL)) {
			print_error("case %zu: rc %d\n", i, rc);
			bad++;
		} else if (rc == 0 && (strcmp(in.provider, c->provider) != 0 ||
		    strcmp(in.key, c->key) != 0 || in.keylen != strlen(c->key) ||
		    in.price != c->price)) {
			print_error("case %zu: parsed wrong\n", i);
			bad++;
		} else if (rc != 0 && in.key[0] != '\0') {
			print_error("case %zu: a refused key was kept\n", i);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Keys at the length bounds, and a body over the size limit. */
static void
test_bounds(void **state)
{
	static char body[KEY_BODY_MAX + 200], key[KEY_SECRET_MAX + 2];
	struct key_input in;
	const char *why;

	(void)state;
	memset(key, 'k', KEY_SECRET_MAX);
	key[KEY_SECRET_MAX] = '\0';
	snprintf(body, sizeof(body), "{\"provider\":\"p\",\"key\":\"%s\",\"price_micros\":7}", key);
	assert_int_equal(keys_parse((const uint8_t *)body, strlen(body), &in, &why), 0);
	assert_int_equal(in.keylen, KEY_SECRET_MAX);
	key[KEY_SECRET_MAX] = 'k';
	key[KEY_SECRET_MAX + 1] = '\0';
	snprintf(body, sizeof(body), "{\"provider\":\"p\",\"key\":\"%s\",\"price_micros\":7}", key);
	assert_int_equal(keys_parse((const uint8_t *)body, strlen(body), &in, &why), -1);
	memset(body, ' ', sizeof(body));
	memcpy(body, "{\"provider\":\"p\",\"key\":\"12345678\",\"price_micros\":7}", 50);
	assert_int_equal(keys_parse((const uint8_t *)body, KEY_BODY_MAX, &in, &why), 0);
	assert_int_equal(keys_parse((const uint8_t *)body, KEY_BODY_MAX + 1, &in, &why), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
