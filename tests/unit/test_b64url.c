/*
 * test_b64url.c — base64url and UTF-8 validation against the MPP
 * conformance vectors (read from the shared tree at run time) and a table
 * of edge cases: every length class, padding, alphabets, trailing bits.
 *
 * The vectors live in $CN2_SHARED/mpp/vectors/base64url.json, CN2_SHARED
 * defaulting to "../shared" relative to the project root (the working
 * directory of tests). A missing file fails the test; it never skips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "common/b64url.h"
#include "common/utf8.h"

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

/* Decode strictly and compare with want[0..wantlen); 1 on a match. */
static int
decodes_to(const char *enc, const uint8_t *want, size_t wantlen)
{
	uint8_t out[512];
	size_t outlen;

	if (b64url_decode(enc, strlen(enc), out, sizeof(out), &outlen, 0) == -1)
		return 0;
	return outlen == wantlen && memcmp(out, want, wantlen) == 0;
}

static int
encodes_to(const uint8_t *in, size_t n, const char *want)
{
	char out[512];
	int len;

	len = b64url_encode(in, n, out, sizeof(out));
	return len >= 0 && (size_t)len == strlen(want) && strcmp(out, want) == 0;
}

static int
roundtrips(const uint8_t *in, size_t n)
{
	uint8_t back[512];
	char enc[512];
	size_t backlen;
	int len;

	if ((len = b64url_encode(in, n, enc, sizeof(enc))) < 0)
		return 0;
	if (b64url_decode(enc, (size_t)len, back, sizeof(back), &backlen, 0) == -1)
		return 0;
	return backlen == n && memcmp(back, in, n) == 0;
}

/*
 * An encoding_error: the input is outside the alphabet (decoding fails) or
 * the bytes are not text (UTF-8 validation fails).
 */
static int
is_encoding_error(const char *enc)
{
	uint8_t out[512];
	size_t outlen;

	if (b64url_decode(enc, strlen(enc), out, sizeof(out), &outlen, 0) == -1)
		return 1;
	return !utf8_valid(out, outlen);
}

static int
vector_check(const cJSON *sc, const cJSON *kind)
{
	const cJSON *dec = cJSON_GetObjectItemCaseSensitive(sc, "decoded");
	const cJSON *enc = cJSON_GetObjectItemCaseSensitive(sc, "encoded");
	const cJSON *et = cJSON_GetObjectItemCaseSensitive(kind, "error_type");
	const char *k = kind->string;

	if (!cJSON_IsString(enc))
		return 0;
	if (cJSON_IsTrue(kind)) {
		const uint8_t *d;

		if (!cJSON_IsString(dec))
			return 0;
		d = (const uint8_t *)dec->valuestring;
		if (strcmp(k, "parse") == 0)
			return decodes_to(enc->valuestring, d, strlen(dec->valuestring)) &&
			    utf8_valid(d, strlen(dec->valuestring));
		if (strcmp(k, "format") == 0)
			return encodes_to(d, strlen(dec->valuestring), enc->valuestring);
		if (strcmp(k, "roundtrip") == 0)
			return roundtrips(d, strlen(dec->valuestring));
		return 0;
	}
	/* Only the failure kind the vectors use is understood; others fail. */
	return strcmp(k, "parse") == 0 && cJSON_IsString(et) &&
	    strcmp(et->valuestring, "encoding_error") == 0 && is_encoding_error(enc->valuestring);
}

static void
test_vectors(void **state)
{
	const cJSON *sc, *kind, *name;
	cJSON *doc = load_vectors("base64url.json");
	int bad = 0, checks = 0, errors = 0;

	(void)state;
	if (doc == NULL)
		fail_msg("base64url.json vectors missing");
	cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(doc, "scenarios"))
	{
		name = cJSON_GetObjectItemCaseSensitive(sc, "name");
		cJSON_ArrayForEach(kind, cJSON_GetObjectItemCaseSensitive(sc, "tests"))
		{
			EXPECT(bad, vector_check(sc, kind), "scenario %s, test %s failed",
			    cJSON_IsString(name) ? name->valuestring : "?", kind->string);
			checks++;
			errors += !cJSON_IsTrue(kind);
		}
	}
	cJSON_Delete(doc);
	/* The file holds 30 happy checks and 2 error cases; a truncated copy fails. */
	assert_true(checks >= 30);
	assert_true(errors >= 2);
	assert_int_equal(bad, 0);
}

static void
test_encode_lengths(void **state)
{
	static const uint8_t src[5] = {0xfb, 0xff, 0xbe, 0x00, 0x01};
	static const char *const want[6] = {"", "-w", "-_8", "-_--", "-_--AA", "-_--AAE"};
	char out[16];
	int bad = 0;

	(void)state;
	for (size_t n = 0; n <= 5; n++) {
		EXPECT(bad, b64url_encoded_len(n) == strlen(want[n]), "encoded_len(%zu)", n);
		EXPECT(bad, encodes_to(src, n, want[n]), "encode of %zu bytes", n);
		EXPECT(bad, decodes_to(want[n], src, n), "decode of %s", want[n]);
		EXPECT(bad, roundtrips(src, n), "roundtrip of %zu bytes", n);
		/* Exactly room for the text and its NUL works; one byte less does not. */
		EXPECT(bad, b64url_encode(src, n, out, strlen(want[n]) + 1) == (int)strlen(want[n]),
		    "encode into exact buffer, n=%zu", n);
		EXPECT(bad, b64url_encode(src, n, out, strlen(want[n])) == -1,
		    "encode into short buffer, n=%zu", n);
	}
	EXPECT(bad, b64url_encoded_len(SIZE_MAX) == SIZE_MAX, "encoded_len overflow");
	assert_int_equal(bad, 0);
}

struct dec_case {
	const char *in;
	int flags;
	int ok;
	const char *hex; /* expected bytes as lowercase hex when ok */
};

static const struct dec_case dec_cases[] = {
    {"", 0, 1, ""},
    {"A", 0, 0, NULL},
    {"AA", 0, 1, "00"},
    {"AAA", 0, 1, "0000"},
    {"AAAA", 0, 1, "000000"},
    {"AAAAA", 0, 0, NULL},
    {"AAAAAA", 0, 1, "00000000"},
    {"-_--AAE", 0, 1, "fbffbe0001"},
    /* Non-zero unused bits make a second spelling of the same bytes. */
    {"AQ", 0, 1, "01"},
    {"AB", 0, 0, NULL},
    {"AR", 0, 0, NULL},
    {"AAE", 0, 1, "0001"},
    {"AAF", 0, 0, NULL},
    {"AAB", 0, 0, NULL},
    {"AB", B64_LENIENT, 0, NULL},
    {"AB==", B64_LENIENT, 0, NULL},
    {"_w", 0, 1, "ff"},
    {"_x", 0, 0, NULL},
    /* Padding: rejected when strict, exactly right when lenient. */
    {"YQ==", 0, 0, NULL},
    {"YWI=", 0, 0, NULL},
    {"YQ==", B64_LENIENT, 1, "61"},
    {"YWI=", B64_LENIENT, 1, "6162"},
    {"YWJj", B64_LENIENT, 1, "616263"},
    {"YQ", B64_LENIENT, 1, "61"},
    {"YQ=", B64_LENIENT, 0, NULL},
    {"YQ===", B64_LENIENT, 0, NULL},
    {"YWI==", B64_LENIENT, 0, NULL},
    {"YWJj=", B64_LENIENT, 0, NULL},
    {"YWJj====", B64_LENIENT, 0, NULL},
    {"Y===", B64_LENIENT, 0, NULL},
    {"Y=Q=", B64_LENIENT, 0, NULL},
    {"YQ==YQ==", B64_LENIENT, 0, NULL},
    {"=", B64_LENIENT, 0, NULL},
    {"==", B64_LENIENT, 0, NULL},
    {"====", B64_LENIENT, 0, NULL},
    /* Standard alphabet: only when lenient. */
    {"Pj4+Pz8/", 0, 0, NULL},
    {"Pj4+Pz8/", B64_LENIENT, 1, "3e3e3e3f3f3f"},
    {"Pj4-Pz8_", 0, 1, "3e3e3e3f3f3f"},
    {"Pj4-Pz8_", B64_LENIENT, 1, "3e3e3e3f3f3f"},
    {"+w==", B64_LENIENT, 1, "fb"},
    /* Whitespace and other bytes are never skipped. */
    {"YQ\n", 0, 0, NULL},
    {" YQ", 0, 0, NULL},
    {"YW Jj", 0, 0, NULL},
    {"YWJj\r\n", B64_LENIENT, 0, NULL},
    {"YW.j", 0, 0, NULL},
    {"YW\xc3\xa9", 0, 0, NULL},
    {"not-valid!!!", 0, 0, NULL},
    /* Unknown flags are refused rather than ignored. */
    {"YQ", 0x2, 0, NULL},
};

static void
hex_of(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

static void
test_decode_table(void **state)
{
	uint8_t out[64];
	char hex[160];
	size_t outlen;
	int bad = 0, rc;

	(void)state;
	for (size_t i = 0; i < sizeof(dec_cases) / sizeof(dec_cases[0]); i++) {
		const struct dec_case *c = &dec_cases[i];

		outlen = 999;
		rc = b64url_decode(c->in, strlen(c->in), out, sizeof(out), &outlen, c->flags);
		EXPECT(bad, rc == (c->ok ? 0 : -1), "decode \"%s\" flags %d: rc %d", c->in,
		    c->flags, rc);
		if (rc == 0 && c->ok) {
			hex_of(out, outlen, hex);
			EXPECT(bad, strcmp(hex, c->hex) == 0, "decode \"%s\": got %s want %s",
			    c->in, hex, c->hex);
			EXPECT(bad, outlen <= b64url_decoded_max(strlen(c->in)), "max for \"%s\"",
			    c->in);
		}
		if (rc == -1)
			EXPECT(bad, outlen == 999, "decode \"%s\" touched outlen on error", c->in);
	}
	assert_int_equal(bad, 0);
}

static void
test_decode_bounds(void **state)
{
	uint8_t out[8];
	size_t outlen;

	(void)state;
	/* The output must fit, checked before writing. */
	assert_int_equal(b64url_decode("YWJj", 4, out, 2, &outlen, 0), -1);
	assert_int_equal(b64url_decode("YWJj", 4, out, 3, &outlen, 0), 0);
	assert_int_equal(outlen, 3);
	assert_int_equal(b64url_decode("YWI=", 4, out, 2, &outlen, B64_LENIENT), 0);
	assert_int_equal(outlen, 2);
	/* Only n bytes are read: an embedded NUL is a bad character. */
	assert_int_equal(b64url_decode("YQ\0A", 4, out, sizeof(out), &outlen, 0), -1);
	assert_int_equal(b64url_decode("YWJjZGVm", 4, out, sizeof(out), &outlen, 0), 0);
	assert_int_equal(outlen, 3);
	assert_int_equal(b64url_decode(NULL, 0, NULL, 0, &outlen, 0), 0);
	assert_int_equal(outlen, 0);
	assert_int_equal(b64url_decoded_max(0), 0);
	assert_int_equal(b64url_decoded_max(5), 3);
	assert_int_equal(b64url_decoded_max(7), 5);
}

static void
test_all_bytes(void **state)
{
	uint8_t all[256];

	(void)state;
	/* Every byte value in every position class survives a roundtrip. */
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	for (size_t off = 0; off < 3; off++)
		assert_true(roundtrips(all + off, sizeof(all) - off));
}

struct utf8_case {
	const char *s;
	size_t n;
	int valid;
};

#define U(lit, v) {lit, sizeof(lit) - 1, v}

static const struct utf8_case utf8_cases[] = {
    U("", 1),
    U("plain ascii", 1),
    U("caf\xc3\xa9 \xe2\x98\x95", 1),
    U("\x7f", 1),
    U("\xc2\x80", 1),
    U("\xdf\xbf", 1),
    U("\xe0\xa0\x80", 1),
    U("\xed\x9f\xbf", 1),         /* U+D7FF, just below the surrogates */
    U("\xee\x80\x80", 1),         /* U+E000, just above them */
    U("\xef\xbf\xbf", 1),
    U("\xf0\x90\x80\x80", 1),
    U("\xf4\x8f\xbf\xbf", 1),     /* U+10FFFF */
    U("\x00", 1),
    U("\x80", 0),                 /* lone continuation byte */
    U("\xbf", 0),
    U("\xff", 0),
    U("\xfe", 0),
    U("\xc0\x80", 0),             /* overlong NUL */
    U("\xc1\xbf", 0),
    U("\xe0\x80\x80", 0),
    U("\xe0\x9f\xbf", 0),
    U("\xf0\x8f\xbf\xbf", 0),
    U("\xed\xa0\x80", 0),         /* U+D800 */
    U("\xed\xbf\xbf", 0),         /* U+DFFF */
    U("\xed\xa0\xbd\xed\xb8\x80", 0), /* CESU-8 pair */
    U("\xf4\x90\x80\x80", 0),     /* U+110000 */
    U("\xf5\x80\x80\x80", 0),
    U("\xf8\x88\x80\x80\x80", 0), /* old five-byte form */
    U("\xc3", 0),                 /* truncated at the end */
    U("\xe2\x98", 0),
    U("\xf0\x9f\x98", 0),
    U("\xc3\x41", 0),
    U("ok\xe2\x98\x95\xe2\x98", 0),
};

static void
test_utf8(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		const struct utf8_case *c = &utf8_cases[i];

		EXPECT(bad, utf8_valid((const uint8_t *)c->s, c->n) == c->valid,
		    "utf8 case %zu: want %d", i, c->valid);
	}
	assert_int_equal(utf8_valid(NULL, 0), 1);
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_encode_lengths),
	    cmocka_unit_test(test_decode_table),
	    cmocka_unit_test(test_decode_bounds),
	    cmocka_unit_test(test_all_bytes),
	    cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
