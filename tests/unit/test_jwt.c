/*
 * test_jwt.c — HS256 JWT verification as a table of tokens built here from
 * their JSON (valid ones, and each way a token can be wrong), plus round
 * trips through jwt_sign and the token shapes that never reach the JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/md.h>

#include "common/b64url.h"
#include "common/jwt.h"

#define NOW 1750000000
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const uint8_t other[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
#define SECRET_LEN 64

enum sig { SIG_OK, SIG_OTHER_KEY, SIG_EMPTY, SIG_SHORT };

struct tcase {
	const char *name;
	const char *header;
	const char *payload;
	enum sig sig;
	int want; /* 0 accepted, -1 refused */
	const char *sub;
};

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD_CLAIMS "\"aud\":\"authenticated\",\"exp\":1750003600,\"iat\":1749999000"

static const struct tcase cases[] = {
    {"valid", HS256, "{\"sub\":\"8f3a2c1e-0b7d-4e5f-9a6b-1c2d3e4f5a6b\"," GOOD_CLAIMS
	",\"role\":\"authenticated\",\"email\":\"s@example.com\"}", SIG_OK, 0,
	"8f3a2c1e-0b7d-4e5f-9a6b-1c2d3e4f5a6b"},
    {"valid, no typ", "{\"alg\":\"HS256\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, 0, "u1"},
    {"valid, aud array", HS256,
	"{\"sub\":\"u1\",\"aud\":[\"x\",\"authenticated\"],\"exp\":1750003600}", SIG_OK, 0, "u1"},
    {"valid, within leeway", HS256, "{\"sub\":\"u1\",\"aud\":\"authenticated\",\"exp\":1749999990}",
	SIG_OK, 0, "u1"},
    {"valid, nbf past", HS256, "{\"sub\":\"a.b@c:d_e-f\"," GOOD_CLAIMS ",\"nbf\":1749990000}",
	SIG_OK, 0, "a.b@c:d_e-f"},
    {"expired", HS256, "{\"sub\":\"u1\",\"aud\":\"authenticated\",\"exp\":1749999900}", SIG_OK, -1,
	NULL},
    {"expired at leeway edge", HS256,
	"{\"sub\":\"u1\",\"aud\":\"authenticated\",\"exp\":1749999970}", SIG_OK, -1, NULL},
    {"no exp", HS256, "{\"sub\":\"u1\",\"aud\":\"authenticated\"}", SIG_OK, -1, NULL},
    {"exp a string", HS256, "{\"sub\":\"u1\",\"aud\":\"authenticated\",\"exp\":\"1750003600\"}",
	SIG_OK, -1, NULL},
    {"exp negative", HS256, "{\"sub\":\"u1\",\"aud\":\"authenticated\",\"exp\":-1}", SIG_OK, -1,
	NULL},
    {"nbf future", HS256, "{\"sub\":\"u1\"," GOOD_CLAIMS ",\"nbf\":1750000100}", SIG_OK, -1, NULL},
    {"wrong aud", HS256, "{\"sub\":\"u1\",\"aud\":\"anon\",\"exp\":1750003600}", SIG_OK, -1, NULL},
    {"aud array without ours", HS256, "{\"sub\":\"u1\",\"aud\":[\"anon\"],\"exp\":1750003600}",
	SIG_OK, -1, NULL},
    {"no aud", HS256, "{\"sub\":\"u1\",\"exp\":1750003600}", SIG_OK, -1, NULL},
    {"aud differs in case", HS256, "{\"sub\":\"u1\",\"aud\":\"Authenticated\",\"exp\":1750003600}",
	SIG_OK, -1, NULL},
    {"alg none, no signature", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}",
	SIG_EMPTY, -1, NULL},
    {"alg none, valid HMAC", "{\"alg\":\"none\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1,
	NULL},
    {"alg HS512", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK,
	-1, NULL},
    {"alg hs256 lowercase", "{\"alg\":\"hs256\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1,
	NULL},
    {"alg RS256", "{\"alg\":\"RS256\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"no alg", "{\"typ\":\"JWT\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"alg twice", "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK,
	-1, NULL},
    {"typ not JWT", "{\"alg\":\"HS256\",\"typ\":\"JWE\"}", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK,
	-1, NULL},
    {"crit", "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}",
	"{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"header not JSON", "alg=HS256", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"header an array", "[\"HS256\"]", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"header trailing bytes", HS256 "x", "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"bad signature", HS256, "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OTHER_KEY, -1, NULL},
    {"short signature", HS256, "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_SHORT, -1, NULL},
    {"empty signature", HS256, "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_EMPTY, -1, NULL},
    {"missing sub", HS256, "{" GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"empty sub", HS256, "{\"sub\":\"\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"sub a number", HS256, "{\"sub\":42," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"sub with a slash", HS256, "{\"sub\":\"a/b\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"sub with a space", HS256, "{\"sub\":\"a b\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"sub 64 chars", HS256,
	"{\"sub\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"," GOOD_CLAIMS
	"}", SIG_OK, -1, NULL},
    {"sub 63 chars", HS256,
	"{\"sub\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"," GOOD_CLAIMS
	"}", SIG_OK, 0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
    {"sub twice", HS256, "{\"sub\":\"u1\",\"sub\":\"admin\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"payload not JSON", HS256, "sub=u1", SIG_OK, -1, NULL},
    {"payload not UTF-8", HS256, "{\"sub\":\"u1\",\"x\":\"\xff\"," GOOD_CLAIMS "}", SIG_OK, -1, NULL},
    {"email too long", HS256,
	"{\"sub\":\"u1\"," GOOD_CLAIMS ",\"email\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x\"}",
	SIG_OK, -1, NULL},
};

static void
b64(const void *in, size_t n, char *out, size_t cap)
{
	assert_true(b64url_encode(in, n, out, cap) >= 0);
}

/* header.payload.signature, signed as the case says. Caller frees. */
static char *
make_token(const char *header, const char *payload, enum sig sig)
{
	char *t = malloc(4096);
	uint8_t mac[32];
	size_t len;

	assert_non_null(t);
	b64(header, strlen(header), t, 4096);
	len = strlen(t);
	t[len++] = '.';
	b64(payload, strlen(payload), t + len, 4096 - len);
	len = strlen(t);
	assert_int_equal(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
	    sig == SIG_OTHER_KEY ? other : secret, SECRET_LEN, (const uint8_t *)t, len, mac), 0);
	t[len++] = '.';
	t[len] = '\0';
	if (sig == SIG_OK || sig == SIG_OTHER_KEY)
		b64(mac, sizeof(mac), t + len, 4096 - len);
	else if (sig == SIG_SHORT)
		b64(mac, 16, t + len, 4096 - len);
	return t;
}

static void
test_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct tcase *c = &cases[i];
		char *t = make_token(c->header, c->payload, c->sig), err[128] = "";
		struct jwt_claims cl;
		int rc = jwt_verify(t, secret, SECRET_LEN, "authenticated", NOW, &cl, err, sizeof(err));

		if (rc != c->want) {
			print_error("case \"%s\": got %d (%s), want %d\n", c->name, rc, err, c->want);
			bad++;
		} else if (rc == 0 && strcmp(cl.sub, c->sub) != 0) {
			print_error("case \"%s\": sub \"%s\"\n", c->name, cl.sub);
			bad++;
		} else if (rc != 0 && (err[0] == '\0' || strstr(err, t) != NULL)) {
			print_error("case \"%s\": no reason, or the token in it\n", c->name);
			bad++;
		}
		free(t);
	}
	assert_int_equal(bad, 0);
}

/* Token shapes: segments, base64url strictness, tampering after signing. */
static void
test_shapes(void **state)
{
	char *good = make_token(HS256, "{\"sub\":\"u1\"," GOOD_CLAIMS "}", SIG_OK);
	char *other_payload = make_token(HS256, "{\"sub\":\"admin\"," GOOD_CLAIMS "}", SIG_OK);
	char buf[4200], err[128];
	struct jwt_claims cl;
	const char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
	const char *odot1 = strchr(other_payload, '.'), *odot2 = strrchr(other_payload, '.');

	(void)state;
	assert_int_equal(jwt_verify(good, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), 0);
	/* Tampered payload: another payload under the first token's signature. */
	snprintf(buf, sizeof(buf), "%.*s%.*s%s", (int)(dot1 - good), good,
	    (int)(odot2 - odot1), odot1, dot2);
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	/* Extra segments, missing segments, empty segments. */
	snprintf(buf, sizeof(buf), "%s.AAAA", good);
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	snprintf(buf, sizeof(buf), "%.*s", (int)(dot2 - good), good);
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	snprintf(buf, sizeof(buf), ".%s", dot1 + 1);
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	/* Padding and the standard alphabet are refused. */
	snprintf(buf, sizeof(buf), "%s=", good);
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	snprintf(buf, sizeof(buf), "%s", good);
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '-' || *p == '_')
			*p = *p == '-' ? '+' : '/';
	if (strcmp(buf, good) != 0)
		assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
		    sizeof(err)), -1);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[2] = '*';
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	/* Whitespace around the token is not trimmed here. */
	snprintf(buf, sizeof(buf), " %s", good);
	assert_int_equal(jwt_verify(buf, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	assert_int_equal(jwt_verify("", secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	assert_int_equal(jwt_verify("..", secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	/* The wrong secret, and no audience configured. */
	assert_int_equal(jwt_verify(good, other, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	assert_int_equal(jwt_verify(good, secret, SECRET_LEN, "", NOW, &cl, err, sizeof(err)), -1);
	free(good);
	free(other_payload);
}

/* A token longer than JWT_MAX_LEN is refused before anything is decoded. */
static void
test_too_long(void **state)
{
	char *big = malloc(JWT_MAX_LEN + 2), err[128];
	struct jwt_claims cl;

	(void)state;
	assert_non_null(big);
	memset(big, 'A', JWT_MAX_LEN + 1);
	big[10] = '.';
	big[20] = '.';
	big[JWT_MAX_LEN + 1] = '\0';
	assert_int_equal(jwt_verify(big, secret, SECRET_LEN, "authenticated", NOW, &cl, err,
	    sizeof(err)), -1);
	free(big);
}

static void
test_sign_round_trip(void **state)
{
	struct jwt_claims in, out;
	char err[128], *t;

	(void)state;
	memset(&in, 0, sizeof(in));
	snprintf(in.sub, sizeof(in.sub), "seller-1@example.com");
	snprintf(in.aud, sizeof(in.aud), "authenticated");
	in.exp = NOW + 3600;
	in.iat = NOW;
	snprintf(in.role, sizeof(in.role), "authenticated");
	snprintf(in.email, sizeof(in.email), "seller \"one\" <s@example.com>");
	t = jwt_sign(&in, secret, SECRET_LEN);
	assert_non_null(t);
	assert_int_equal(jwt_verify(t, secret, SECRET_LEN, "authenticated", NOW, &out, err,
	    sizeof(err)), 0);
	assert_string_equal(out.sub, in.sub);
	assert_string_equal(out.aud, in.aud);
	assert_int_equal(out.exp, in.exp);
	assert_int_equal(out.iat, in.iat);
	assert_string_equal(out.role, in.role);
	assert_string_equal(out.email, in.email);
	/* The same token, later: expired. Another audience: refused. */
	assert_int_equal(jwt_verify(t, secret, SECRET_LEN, "authenticated", NOW + 3600 + 30, &out,
	    err, sizeof(err)), -1);
	assert_int_equal(jwt_verify(t, secret, SECRET_LEN, "service_role", NOW, &out, err,
	    sizeof(err)), -1);
	free(t);
	/* jwt_sign refuses claims the verifier would refuse. */
	snprintf(in.sub, sizeof(in.sub), "bad sub");
	assert_null(jwt_sign(&in, secret, SECRET_LEN));
	snprintf(in.sub, sizeof(in.sub), "ok");
	in.exp = 0;
	assert_null(jwt_sign(&in, secret, SECRET_LEN));
	in.exp = NOW;
	in.aud[0] = '\0';
	assert_null(jwt_sign(&in, secret, SECRET_LEN));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_shapes),
	    cmocka_unit_test(test_too_long),
	    cmocka_unit_test(test_sign_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
