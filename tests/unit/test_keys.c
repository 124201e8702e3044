/*
 * test_keys.c — the POST /api/keys and rotate body parsers of cn2-platform,
 * as tables: what a seller's client may send (a key sealed with HPKE, as
 * {"kid", "enc", "ct"}), every way the body can be wrong, and a key sent in
 * clear, refused with its own answer whatever else the body holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/b64url.h"
#include "platform-api/platform.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* 32 bytes (enc) and 24 bytes (the shortest ciphertext), base64url. */
#define ENC "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define CT "Y2lwaGVydGV4dC1hbmQtMTYtYnl0ZS10"
#define SEALED "{\"kid\":\"vk_abc\",\"enc\":\"" ENC "\",\"ct\":\"" CT "\"}"
#define SEALED_AS(kid, enc, ct) "{\"kid\":\"" kid "\",\"enc\":\"" enc "\",\"ct\":\"" ct "\"}"

struct kcase {
	const char *body;
	int want;
	const char *provider;
	int64_t price;
};

static const struct kcase cases[] = {
    {"{\"provider\":\"demo\",\"price_usd\":\"0.002\",\"sealed_key\":" SEALED "}", 0, "demo", 2000},
    {"{\"sealed_key\":" SEALED ",\"price_micros\":1,\"provider\":\"open-ai2\"}", 0, "open-ai2", 1},
    {" {\"provider\":\"demo\",\"price_usd\":\"1000\",\"sealed_key\":" SEALED "}\r\n", 0, "demo",
	1000000000},
    /* A key in clear: refused as such, even beside a sealed one. */
    {"{\"provider\":\"demo\",\"key\":\"sk-abcdefgh\",\"price_usd\":\"0.002\"}", KEYS_PLAINTEXT,
	0, 0},
    {"{\"provider\":\"demo\",\"price_usd\":\"0.002\",\"sealed_key\":" SEALED
     ",\"key\":\"sk-abcdefgh\"}",
	KEYS_PLAINTEXT, 0, 0},
    {"{\"key\":12345678}", KEYS_PLAINTEXT, 0, 0},
    /* The sealed key itself. */
    {"{\"provider\":\"demo\",\"price_micros\":2}", KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":\"" CT "\"}", KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":" SEALED_AS("", ENC, CT) "}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":" SEALED_AS("vk/1", ENC, CT) "}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":"
     SEALED_AS("vk_abc", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg", CT) "}",
	KEYS_INVALID, 0, 0}, /* enc of 31 bytes */
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":"
     SEALED_AS("vk_abc", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", CT) "}",
	KEYS_INVALID, 0, 0}, /* padding */
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":"
     SEALED_AS("vk_abc", ENC, "Y2lwaGVydGV4dC1hbmQtMTYtYnl0ZS0") "}",
	KEYS_INVALID, 0, 0}, /* ct of 23 bytes: shorter than any key and its tag */
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":"
     SEALED_AS("vk_abc", ENC, "Y2lwaGVydGV4dC1hbmQtMTYtYnl0ZS1+") "}",
	KEYS_INVALID, 0, 0}, /* not base64url */
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":{\"kid\":\"vk_abc\",\"enc\":\"" ENC
     "\",\"ct\":\"" CT "\",\"x\":1}}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":{\"kid\":\"vk_abc\",\"enc\":\"" ENC
     "\"}}",
	KEYS_INVALID, 0, 0},
    /* The rest of the body. */
    {"{\"provider\":\"demo\",\"price_micros\":1000000001,\"sealed_key\":" SEALED "}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_usd\":\"0.0000001\",\"sealed_key\":" SEALED "}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_usd\":\"1e3\",\"sealed_key\":" SEALED "}", KEYS_INVALID, 0,
	0},
    {"{\"provider\":\"demo\",\"price_micros\":2.5,\"sealed_key\":" SEALED "}", KEYS_INVALID, 0,
	0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"price_usd\":\"2\",\"sealed_key\":" SEALED "}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"sealed_key\":" SEALED "}", KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo_x\",\"price_micros\":2,\"sealed_key\":" SEALED "}", KEYS_INVALID, 0,
	0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":" SEALED ",\"x\":1}", KEYS_INVALID,
	0, 0},
    {"{\"provider\":\"demo\",\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":" SEALED "}",
	KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":" SEALED "}x", KEYS_INVALID, 0, 0},
    {"{\"provider\":\"demo\",\"price_micros\":2,\"sealed_key\":" SEALED, KEYS_INVALID, 0, 0},
    {"{\"provider\":\"de\\u0000mo\",\"price_micros\":2,\"sealed_key\":" SEALED "}", KEYS_INVALID,
	0, 0},
    {"[1]", KEYS_INVALID, 0, 0},
    {"", KEYS_INVALID, 0, 0},
    {"{\"provider\":\"d\xff\",\"price_micros\":2,\"sealed_key\":" SEALED "}", KEYS_INVALID, 0, 0},
};

static void
test_parse_table(void **state)
{
	static const uint8_t want_enc[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
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
		    in.price != c->price || strcmp(in.sealed.kid, "vk_abc") != 0 ||
		    memcmp(in.sealed.enc, want_enc, 32) != 0 || in.sealed.ctlen != 24 ||
		    memcmp(in.sealed.ct, "ciphertext-and-16-byte-tag", 24) != 0)) {
			print_error("case %zu: parsed wrong\n", i);
			bad++;
		} else if (rc != 0 && (in.sealed.ctlen != 0 || in.provider[0] != '\0')) {
			print_error("case %zu: a refused body left data behind\n", i);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_rotate(void **state)
{
	static const struct {
		const char *body;
		int want;
	} rows[] = {
	    {"{\"sealed_key\":" SEALED "}", 0},
	    {"{\"sealed_key\":" SEALED ",\"provider\":\"demo\"}", KEYS_INVALID},
	    {"{\"key\":\"sk-abcdefgh\"}", KEYS_PLAINTEXT},
	    {"{\"sealed_key\":" SEALED ",\"key\":\"sk-abcdefgh\"}", KEYS_PLAINTEXT},
	    {"{}", KEYS_INVALID},
	    {"{\"sealed_key\":{}}", KEYS_INVALID},
	};
	struct sealed_key k;
	const char *why;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc = keys_parse_rotate((const uint8_t *)rows[i].body, strlen(rows[i].body), &k,
		    &why);

		if (rc != rows[i].want)
			fail_msg("rotate case %zu: rc %d", i, rc);
	}
}

/* The longest sealed key goes through; one byte more does not; and the body limit. */
static void
test_bounds(void **state)
{
	static char body[KEY_BODY_MAX + 200], ct64[6000];
	static uint8_t ct[IPC_SEALED_MAX + 1];
	struct key_input in;
	const char *why;

	(void)state;
	memset(ct, 'c', sizeof(ct));
	assert_true(b64url_encode(ct, IPC_SEALED_MAX, ct64, sizeof(ct64)) > 0);
	snprintf(body, sizeof(body),
	    "{\"provider\":\"p\",\"price_micros\":7,\"sealed_key\":" SEALED_AS("vk_1", ENC, "%s") "}",
	    ct64);
	assert_int_equal(keys_parse((const uint8_t *)body, strlen(body), &in, &why), 0);
	assert_int_equal(in.sealed.ctlen, IPC_SEALED_MAX);
	assert_true(b64url_encode(ct, IPC_SEALED_MAX + 1, ct64, sizeof(ct64)) > 0);
	snprintf(body, sizeof(body),
	    "{\"provider\":\"p\",\"price_micros\":7,\"sealed_key\":" SEALED_AS("vk_1", ENC, "%s") "}",
	    ct64);
	assert_int_equal(keys_parse((const uint8_t *)body, strlen(body), &in, &why), KEYS_INVALID);
	memset(body, ' ', sizeof(body));
	memcpy(body, "{\"provider\":\"p\",\"price_micros\":7,\"sealed_key\":" SEALED "}",
	    strlen("{\"provider\":\"p\",\"price_micros\":7,\"sealed_key\":" SEALED "}"));
	assert_int_equal(keys_parse((const uint8_t *)body, KEY_BODY_MAX, &in, &why), 0);
	assert_int_equal(keys_parse((const uint8_t *)body, KEY_BODY_MAX + 1, &in, &why),
	    KEYS_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_rotate),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
