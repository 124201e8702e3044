/*
 * test_jcs.c — RFC 8785 canonical JSON: the RFC's own examples (number
 * table of appendix B, the section 3.2.2 and 3.2.3 samples), key ordering
 * by UTF-16 code units, refusals (duplicates, bad UTF-8, non-finite
 * numbers, depth), and the MPP challenge-id vectors: each expected id is
 * recomputed as HMAC-SHA256 over an input that embeds
 * base64url(jcs(request)), which proves JCS and base64url together against
 * golden data.
 *
 * The vectors are read at run time from
 * $CN2_SHARED/mpp/vectors/challenge-id.json (CN2_SHARED defaults to
 * "../shared", relative to the project root). A missing file fails.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <mbedtls/md.h>

#include "common/b64url.h"
#include "common/jcs.h"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

/* Read a vector file; NULL (after saying why) if it is missing or bad. */
static cJSON *
load_vectors(const char *file)
{
	const char *base = getenv("CN2_SHARED");
	char path[4096], *text;
	cJSON *doc = NULL;
	long len = 0;
	FILE *f;

	if (base == NULL || *base == '\0')
		base = "../shared";
	if (snprintf(path, sizeof(path), "%s/mpp/vectors/%s", base, file) >= (int)sizeof(path))
		return NULL;
	if ((f = fopen(path, "rb")) == NULL) {
		print_error("cannot open %s (set CN2_SHARED to the shared tree)\n", path);
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len <= (1L << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)len + 1)) != NULL) {
		if (fread(text, 1, (size_t)len, f) == (size_t)len)
			doc = cJSON_ParseWithLength(text, (size_t)len);
		free(text);
	}
	fclose(f);
	if (doc == NULL)
		print_error("cannot read %s as JSON\n", path);
	return doc;
}

/* jcs of one number; 1 if it matches want (NULL: must be refused). */
static int
number_is(double d, const char *want)
{
	cJSON *n = cJSON_CreateNumber(d);
	char *got;
	int ok;

	if (n == NULL)
		return 0;
	got = jcs_serialize(n);
	ok = want == NULL ? got == NULL : got != NULL && strcmp(got, want) == 0;
	if (!ok)
		print_error("number %.17g: got %s, want %s\n", d, got ? got : "(null)",
		    want ? want : "(null)");
	free(got);
	cJSON_Delete(n);
	return ok;
}

static double
from_bits(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* RFC 8785 appendix B, by IEEE 754 bit pattern. */
static const struct {
	uint64_t bits;
	const char *want;
} rfc_numbers[] = {
    {0x0000000000000000, "0"},
    {0x8000000000000000, "0"},
    {0x0000000000000001, "5e-324"},
    {0x8000000000000001, "-5e-324"},
    {0x7fefffffffffffff, "1.7976931348623157e+308"},
    {0xffefffffffffffff, "-1.7976931348623157e+308"},
    {0x4340000000000000, "9007199254740992"},
    {0xc340000000000000, "-9007199254740992"},
    {0x4430000000000000, "295147905179352830000"},
    {0x7fffffffffffffff, NULL},
    {0x7ff0000000000000, NULL},
    {0xfff0000000000000, NULL},
    {0x44b52d02c7e14af5, "9.999999999999997e+22"},
    {0x44b52d02c7e14af6, "1e+23"},
    {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
    {0x444b1ae4d6e2ef4e, "999999999999999700000"},
    {0x444b1ae4d6e2ef4f, "999999999999999900000"},
    {0x444b1ae4d6e2ef50, "1e+21"},
    {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
    {0x3eb0c6f7a0b5ed8d, "0.000001"},
    {0x41b3de4355555553, "333333333.3333332"},
    {0x41b3de4355555554, "333333333.33333325"},
    {0x41b3de4355555555, "333333333.3333333"},
    {0x41b3de4355555556, "333333333.3333334"},
    {0x41b3de4355555557, "333333333.33333343"},
    {0xbecbf647612f3696, "-0.0000033333333333333333"},
    {0x43143ff3c1cb0959, "1424953923781206.2"},
    /*
     * Powers of two where the correctly rounded 16-digit decimal does not
     * read back but its neighbour above does (the rounding interval is
     * lopsided there); ECMAScript prints the neighbour, not 17 digits.
     */
    {0x0060000000000000, "7.120236347223045e-307"},
    {0x0010000000000000, "2.2250738585072014e-308"},
    {0x000fffffffffffff, "2.225073858507201e-308"},
};

static const struct {
	double d;
	const char *want;
} plain_numbers[] = {
    {1e21, "1e+21"},
    {1e20, "100000000000000000000"},
    {1e-7, "1e-7"},
    {0.000001, "0.000001"},
    {123456789012345680000.0, "123456789012345680000"},
    {4.5, "4.5"},
    {2e-3, "0.002"},
    {5e-324, "5e-324"},
    {1.7976931348623157e308, "1.7976931348623157e+308"},
    {1e30, "1e+30"},
    {1.23e-18, "1.23e-18"},
    {9.5367431640625e-7, "9.5367431640625e-7"},
    {0.1, "0.1"},
    {100, "100"},
    {42431, "42431"},
    {-1.5, "-1.5"},
    {-0.0, "0"},
    {1.5e300, "1.5e+300"},
    {-2.5e-10, "-2.5e-10"},
};

static void
test_numbers(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rfc_numbers) / sizeof(rfc_numbers[0]); i++)
		bad += !number_is(from_bits(rfc_numbers[i].bits), rfc_numbers[i].want);
	for (size_t i = 0; i < sizeof(plain_numbers) / sizeof(plain_numbers[0]); i++)
		bad += !number_is(plain_numbers[i].d, plain_numbers[i].want);
	bad += !number_is(NAN, NULL);
	bad += !number_is(INFINITY, NULL);
	bad += !number_is(-INFINITY, NULL);
	assert_int_equal(bad, 0);
}

static void
test_numbers_roundtrip(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15;
	int bad = 0;

	(void)state;
	/* Whatever the digits, they must read back as the same double. */
	for (int i = 0; i < 20000; i++) {
		cJSON *n;
		char *s;
		double d;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		d = from_bits(x);
		if (!isfinite(d))
			continue;
		n = cJSON_CreateNumber(d);
		assert_non_null(n);
		s = jcs_serialize(n);
		assert_non_null(s);
		EXPECT(bad, strtod(s, NULL) == d || (d == 0 && strcmp(s, "0") == 0),
		    "%s does not read back as %a", s, d);
		free(s);
		cJSON_Delete(n);
	}
	assert_int_equal(bad, 0);
}

/* Parsed JSON text → canonical text (NULL: jcs must refuse it). */
static const struct {
	const char *in;
	const char *want;
} docs[] = {
    /* RFC 8785 section 3.2.2 sample. */
    {"{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
     "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
     "  \"literals\": [null, true, false]\n}",
     "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
     "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"},
    /* RFC 8785 section 3.2.3 sample: UTF-16 order puts U+1F600 before U+FB33. */
    {"{\"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\",\n"
     "\"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\", \"1\": \"One\",\n"
     "\"\\ud83d\\ude00\": \"Emoji: Grinning Face\", \"\\u0080\": \"Control\",\n"
     "\"\\u00f6\": \"Latin Small Letter O With Diaeresis\"}",
     "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
     "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
     "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
     "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}"},
    /* U+E000 sorts after U+1F600 in UTF-16, before it in UTF-8 bytes. */
    {"{\"\\ue000\":1,\"\\ud83d\\ude00\":2,\"\\uffff\":3,\"\\ud7ff\":4}",
     "{\"\xed\x9f\xbf\":4,\"\xf0\x9f\x98\x80\":2,\"\xee\x80\x80\":1,\"\xef\xbf\xbf\":3}"},
    {"{\"b\":1,\"a\":2,\"\":3,\"ab\":4,\"B\":5,\"aa\":6}",
     "{\"\":3,\"B\":5,\"a\":2,\"aa\":6,\"ab\":4,\"b\":1}"},
    {"{ \"b\" : [ 1 , 2 , { \"d\" : true , \"c\" : null } ] ,\t\"a\" : \"x\" }",
     "{\"a\":\"x\",\"b\":[1,2,{\"c\":null,\"d\":true}]}"},
    {"{}", "{}"},
    {"[]", "[]"},
    {"[[],{},[{}]]", "[[],{},[{}]]"},
    {"  7 ", "7"},
    {"null", "null"},
    {"\"x\"", "\"x\""},
    {"-0", "0"},
    {"[1.0, 10, 1e2, 0.5e1, -0.0]", "[1,10,100,5,0]"},
    /* Escapes: only the required ones, lowercase hex, no HTML or '/' escaping. */
    {"\"\\u0001\\u001f\\u007f\\b\\f\\n\\r\\t\"", "\"\\u0001\\u001f\x7f\\b\\f\\n\\r\\t\""},
    {"\"</script> & <b>\\/\"", "\"</script> & <b>/\""},
    {"\"caf\\u00e9 \\u2615\"", "\"caf\xc3\xa9 \xe2\x98\x95\""},
    /* Refusals. */
    {"{\"a\":1,\"a\":2}", NULL},
    {"{\"a\":1,\"b\":2,\"a\":1}", NULL},
    {"[{\"x\":{\"k\":1,\"k\":1}}]", NULL},
    {"1e400", NULL},
    {"[1, -1e999]", NULL},
    {"\"\xff\"", NULL},
    {"{\"\xc0\x80\":1}", NULL},
    {"[\"ok\", \"\xed\xa0\x80\"]", NULL},
};

static void
test_documents(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		cJSON *v = cJSON_Parse(docs[i].in);
		char *got;

		EXPECT(bad, v != NULL, "doc %zu does not parse", i);
		if (v == NULL)
			continue;
		got = jcs_serialize(v);
		if (docs[i].want == NULL)
			EXPECT(bad, got == NULL, "doc %zu: want refusal, got %s", i, got);
		else
			EXPECT(bad, got != NULL && strcmp(got, docs[i].want) == 0,
			    "doc %zu: got %s\n  want %s", i, got ? got : "(null)", docs[i].want);
		free(got);
		cJSON_Delete(v);
	}
	assert_int_equal(bad, 0);
}

/* depth nested arrays around "1" (with an object every third level). */
static cJSON *
nested(int depth)
{
	cJSON *v = cJSON_CreateNumber(1), *c;

	for (int i = 0; i < depth && v != NULL; i++) {
		c = i % 3 == 2 ? cJSON_CreateObject() : cJSON_CreateArray();
		if (c == NULL || (i % 3 == 2 ? !cJSON_AddItemToObject(c, "k", v)
					     : !cJSON_AddItemToArray(c, v))) {
			cJSON_Delete(c);
			cJSON_Delete(v);
			return NULL;
		}
		v = c;
	}
	return v;
}

static void
test_refusals(void **state)
{
	cJSON *v;
	char *s;

	(void)state;
	assert_null(jcs_serialize(NULL));
	v = nested(JCS_MAX_DEPTH);
	assert_non_null(v);
	s = jcs_serialize(v);
	assert_non_null(s);
	assert_int_equal(strlen(s), 1 + 2 * JCS_MAX_DEPTH + 4 * (JCS_MAX_DEPTH / 3));
	free(s);
	cJSON_Delete(v);
	v = nested(JCS_MAX_DEPTH + 1);
	assert_non_null(v);
	assert_null(jcs_serialize(v));
	cJSON_Delete(v);
	/* Raw items carry text jcs cannot vouch for. */
	v = cJSON_CreateArray();
	assert_non_null(v);
	assert_true(cJSON_AddItemToArray(v, cJSON_CreateRaw("1")));
	assert_null(jcs_serialize(v));
	cJSON_Delete(v);
	/* Built trees get the same checks as parsed ones. */
	v = cJSON_CreateObject();
	assert_non_null(v);
	assert_non_null(cJSON_AddStringToObject(v, "k", "\xed\xbf\xbf"));
	assert_null(jcs_serialize(v));
	cJSON_Delete(v);
	v = cJSON_CreateObject();
	assert_non_null(v);
	assert_non_null(cJSON_AddNumberToObject(v, "n", NAN));
	assert_null(jcs_serialize(v));
	cJSON_Delete(v);
}

static void
test_large(void **state)
{
	cJSON *v = cJSON_CreateObject();
	char key[16], *s;

	(void)state;
	/* Enough members to make the buffer grow many times; order reversed. */
	assert_non_null(v);
	for (int i = 4999; i >= 0; i--) {
		snprintf(key, sizeof(key), "k%05d", i);
		assert_non_null(cJSON_AddNumberToObject(v, key, i));
	}
	s = jcs_serialize(v);
	assert_non_null(s);
	assert_int_equal(strncmp(s, "{\"k00000\":0,\"k00001\":1,", 23), 0);
	assert_non_null(strstr(s, ",\"k04999\":4999}"));
	free(s);
	cJSON_Delete(v);
}

static const char *
field(const cJSON *in, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(in, name);

	return cJSON_IsString(f) ? f->valuestring : "";
}

/*
 * Append one part of the HMAC input and the '|' after it; opaque is the
 * last part and has none. An object-valued opaque would be sent as
 * base64url(JCS(object)); the vectors give it as a string, used as is.
 */
static int
put_part(char *buf, size_t cap, size_t *len, const char *part, int last)
{
	int n = snprintf(buf + *len, cap - *len, "%s%s", part, last ? "" : "|");

	if (n < 0 || (size_t)n >= cap - *len)
		return -1;
	*len += (size_t)n;
	return 0;
}

static char *
b64url_jcs(const cJSON *v)
{
	char *canon, *out;
	size_t cap;

	if ((canon = jcs_serialize(v)) == NULL)
		return NULL;
	cap = b64url_encoded_len(strlen(canon)) + 1;
	if ((out = malloc(cap)) != NULL &&
	    b64url_encode((const uint8_t *)canon, strlen(canon), out, cap) < 0) {
		free(out);
		out = NULL;
	}
	free(canon);
	return out;
}

/* The challenge id of one vector input, as base64url into id[64]. */
static int
challenge_id(const cJSON *in, char id[64])
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(in, "opaque");
	const char *key = field(in, "secretKey"), *hdr = field(in, "header");
	char msg[4096], *r, *opaque = NULL;
	uint8_t mac[32];
	size_t len = 0;
	int rc = -1;

	if ((r = b64url_jcs(cJSON_GetObjectItemCaseSensitive(in, "request"))) == NULL)
		return -1;
	if (cJSON_IsObject(op) && (opaque = b64url_jcs(op)) == NULL)
		goto out;
	if (put_part(msg, sizeof(msg), &len, field(in, "realm"), 0) == -1 ||
	    put_part(msg, sizeof(msg), &len, field(in, "method"), 0) == -1 ||
	    put_part(msg, sizeof(msg), &len, field(in, "intent"), 0) == -1 ||
	    put_part(msg, sizeof(msg), &len, r, 0) == -1 ||
	    put_part(msg, sizeof(msg), &len, field(in, "expires"), 0) == -1 ||
	    put_part(msg, sizeof(msg), &len, field(in, "digest"), 0) == -1)
		goto out;
	/* The default credential header is implicit and not bound. */
	if (*hdr != '\0' && strcmp(hdr, "Authorization") != 0 &&
	    put_part(msg, sizeof(msg), &len, hdr, 0) == -1)
		goto out;
	if (put_part(msg, sizeof(msg), &len, opaque ? opaque : field(in, "opaque"), 1) == -1)
		goto out;
	if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)key,
		strlen(key), (const uint8_t *)msg, len, mac) != 0)
		goto out;
	if (b64url_encode(mac, sizeof(mac), id, 64) == 43)
		rc = 0;
out:
	free(opaque);
	free(r);
	return rc;
}

static void
test_challenge_ids(void **state)
{
	cJSON *doc = load_vectors("challenge-id.json");
	const cJSON *sc, *in, *exp, *gen;
	int bad = 0, matched = 0, weak = 0;
	char id[64];

	(void)state;
	if (doc == NULL)
		fail_msg("challenge-id.json vectors missing");
	cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(doc, "scenarios"))
	{
		const char *name = field(sc, "name");

		in = cJSON_GetObjectItemCaseSensitive(sc, "input");
		exp = cJSON_GetObjectItemCaseSensitive(sc, "expected");
		if (!cJSON_IsString(exp)) {
			/* Only the weak-secret case has no id: its key must be short. */
			gen = cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(sc, "tests"), "generate");
			EXPECT(bad, strcmp(field(gen, "error_type"), "generation_error") == 0,
			    "%s: no expected id and no generation_error", name);
			EXPECT(bad, strlen(field(in, "secretKey")) < 32, "%s: secret not weak",
			    name);
			weak++;
			continue;
		}
		EXPECT(bad, strlen(field(in, "secretKey")) >= 32, "%s: secret too short", name);
		if (challenge_id(in, id) == -1) {
			EXPECT(bad, 0, "%s: cannot compute id", name);
			continue;
		}
		EXPECT(bad, strcmp(id, exp->valuestring) == 0, "%s: got %s want %s", name, id,
		    exp->valuestring);
		matched++;
	}
	cJSON_Delete(doc);
	/* The file holds 28 ids and one weak-secret case; fewer means a bad copy. */
	assert_true(matched >= 28);
	assert_int_equal(weak, 1);
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_numbers_roundtrip),
	    cmocka_unit_test(test_documents),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_large),
	    cmocka_unit_test(test_challenge_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
