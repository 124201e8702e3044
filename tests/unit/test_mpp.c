/*
 * test_mpp.c — the MPP wire codec (common/mpp.c) against every scenario of
 * the tempoxyz/mpp-tools conformance vectors — challenge-id.json,
 * www-authenticate.json and authorization.json: parse, format and
 * roundtrip, success and error cases, the weak secret and the
 * Payment-Authorization binding — plus tables of our own edge cases:
 * several challenges in one header, other schemes, escapes, lenient
 * base64 in credentials, duplicate keys, receipts and test proofs.
 *
 * The vectors are read at run time from $CN2_SHARED/mpp/vectors/
 * (CN2_SHARED defaults to "../shared", relative to the project root, the
 * working directory of tests). A missing or unreadable file fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <mbedtls/md.h>

#include "common/b64url.h"
#include "common/mpp.h"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                        \
	do {                                          \
		if (!(cond)) {                        \
			print_error(__VA_ARGS__);     \
			print_error("\n");            \
			(bad)++;                      \
		}                                     \
	} while (0)

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const opt_fields[] = {"expires", "digest", "opaque", "description", "header"};

static cJSON *
load_vectors(const char *file)
{
	const char *base = getenv("CN2_SHARED");
	char path[4096], *text = NULL;
	cJSON *doc = NULL;
	size_t got = 0;
	long len;
	FILE *f;

	if (base == NULL || *base == '\0')
		base = "../shared";
	snprintf(path, sizeof(path), "%s/mpp/vectors/%s", base, file);
	if ((f = fopen(path, "rb")) == NULL) {
		print_error("cannot open %s (set CN2_SHARED to the shared tree)\n", path);
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && len < (1L << 22) &&
	    fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)len)) != NULL)
		got = fread(text, 1, (size_t)len, f);
	fclose(f);
	if (text != NULL && got > 0)
		doc = cJSON_ParseWithLength(text, got);
	free(text);
	if (doc == NULL)
		print_error("cannot read %s as JSON\n", path);
	return doc;
}

static const cJSON *
scenarios(const cJSON *doc)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(doc, "scenarios");

	assert_true(cJSON_IsArray(s));
	assert_true(cJSON_GetArraySize(s) > 0);
	return s;
}

static const char *
str_of(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

/* tests.<kind>: 1 must succeed, 0 must fail, -1 not asked for. */
static int
wants(const cJSON *scenario, const char *kind)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(scenario, "tests"), kind);

	if (t == NULL)
		return -1;
	if (cJSON_IsTrue(t))
		return 1;
	return cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(t, "success")) ? 0 : -1;
}

/* The wire value: a string, or {prefix, repeat, count} spelled out. Caller frees. */
static char *
wire_of(const cJSON *scenario)
{
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(scenario, "wire");
	const char *prefix, *rep;
	size_t plen, rlen, count;
	char *out;

	if (cJSON_IsString(w))
		return strdup(w->valuestring);
	prefix = str_of(w, "prefix");
	rep = str_of(w, "repeat");
	if (prefix == NULL || rep == NULL || !cJSON_IsNumber(cJSON_GetObjectItem(w, "count")))
		return NULL;
	count = (size_t)cJSON_GetObjectItem(w, "count")->valuedouble;
	plen = strlen(prefix);
	rlen = strlen(rep);
	if ((out = malloc(plen + rlen * count + 1)) == NULL)
		return NULL;
	memcpy(out, prefix, plen);
	for (size_t i = 0; i < count; i++)
		memcpy(out + plen + i * rlen, rep, rlen);
	out[plen + rlen * count] = '\0';
	return out;
}

/* Does the challenge c mean the vector object obj (request compared decoded)? */
static int
challenge_matches(const struct mpp_challenge *c, const cJSON *obj, const char *name)
{
	static const char *const req_fields[] = {"id", "realm", "method", "intent"};
	const char *got[] = {c->id, c->realm, c->method, c->intent};
	const char *opt[] = {c->expires, c->digest, c->opaque, c->description, c->header};
	cJSON *req = mpp_request_decode(c->request);
	int ok = req != NULL &&
	    cJSON_Compare(req, cJSON_GetObjectItemCaseSensitive(obj, "request"), 1);

	if (!ok)
		print_error("%s: request differs\n", name);
	for (size_t i = 0; i < NF(req_fields); i++)
		if (got[i] == NULL || str_of(obj, req_fields[i]) == NULL ||
		    strcmp(got[i], str_of(obj, req_fields[i])) != 0) {
			print_error("%s: %s is \"%s\"\n", name, req_fields[i], got[i] ? got[i] : "(null)");
			ok = 0;
		}
	for (size_t i = 0; i < NF(opt_fields); i++) {
		const char *want = str_of(obj, opt_fields[i]);

		if ((want == NULL) != (opt[i] == NULL) ||
		    (want != NULL && strcmp(want, opt[i]) != 0)) {
			print_error("%s: %s is \"%s\"\n", name, opt_fields[i], opt[i] ? opt[i] : "(null)");
			ok = 0;
		}
	}
	cJSON_Delete(req);
	return ok;
}

/*
 * Fill c from a vector object, encoding its request canonically into
 * *reqb64 (caller frees). 0, or -1 if the request cannot be encoded.
 */
static int
challenge_from(const cJSON *obj, struct mpp_challenge *c, char **reqb64)
{
	memset(c, 0, sizeof(*c));
	c->id = str_of(obj, "id");
	c->realm = str_of(obj, "realm");
	c->method = str_of(obj, "method");
	c->intent = str_of(obj, "intent");
	c->expires = str_of(obj, "expires");
	c->digest = str_of(obj, "digest");
	c->opaque = str_of(obj, "opaque");
	c->description = str_of(obj, "description");
	c->header = str_of(obj, "header");
	*reqb64 = mpp_request_encode(cJSON_GetObjectItemCaseSensitive(obj, "request"));
	c->request = *reqb64;
	return *reqb64 != NULL ? 0 : -1;
}

/* challenge-id.json */

static void
test_vectors_challenge_id(void **state)
{
	cJSON *doc = load_vectors("challenge-id.json");
	const cJSON *sc;
	int bad = 0, ran = 0;

	(void)state;
	assert_non_null(doc);
	cJSON_ArrayForEach(sc, scenarios(doc))
	{
		const char *name = str_of(sc, "name"), *expected = str_of(sc, "expected");
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(sc, "input");
		const char *key = str_of(in, "secretKey");
		struct mpp_challenge c;
		char id[MPP_ID_BUFSZ], *req;
		int rc;

		assert_non_null(key);
		EXPECT(bad, challenge_from(in, &c, &req) == 0, "%s: cannot encode request", name);
		rc = mpp_challenge_id((const uint8_t *)key, strlen(key), &c, id);
		if (expected != NULL) {
			EXPECT(bad, rc == 0 && strcmp(id, expected) == 0, "%s: got %s, want %s", name,
			    rc == 0 ? id : "(error)", expected);
			/* The id checks against its own challenge and not against a changed one. */
			c.id = expected;
			EXPECT(bad, mpp_challenge_check_id((const uint8_t *)key, strlen(key), &c) == 0,
			    "%s: check_id refused its own id", name);
			c.realm = "evil.example.com";
			EXPECT(bad, mpp_challenge_check_id((const uint8_t *)key, strlen(key), &c) != 0,
			    "%s: check_id accepted a changed realm", name);
		} else {
			EXPECT(bad, wants(sc, "generate") == 0, "%s: no expected and no failure", name);
			EXPECT(bad, rc != 0, "%s: weak secret accepted", name);
		}
		free(req);
		ran++;
	}
	cJSON_Delete(doc);
	assert_int_equal(ran, 29);
	assert_int_equal(bad, 0);
}

/* www-authenticate.json */

static int
www_parse_case(const cJSON *sc, const char *name)
{
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(sc, "object");
	struct mpp_challenge c;
	char *wire = wire_of(sc), err[256];
	clock_t t0 = clock();
	int rc, bad = 0;

	if (wire == NULL) {
		print_error("%s: no wire\n", name);
		return 1;
	}
	rc = mpp_challenge_parse(wire, strlen(wire), &c, err, sizeof(err));
	/* The adversarial case must take linear time: far under its 5 s budget. */
	EXPECT(bad, (double)(clock() - t0) / CLOCKS_PER_SEC < 0.5, "%s: parse too slow", name);
	if (wants(sc, "parse") == 1) {
		EXPECT(bad, rc == 0, "%s: parse failed: %s", name, err);
		if (rc == 0)
			EXPECT(bad, challenge_matches(&c, obj, name), "%s: parsed wrong", name);
	} else {
		EXPECT(bad, rc != 0, "%s: parse should have failed", name);
		EXPECT(bad, c.mem == NULL && c.id == NULL, "%s: failed parse left fields", name);
	}
	mpp_challenge_free(&c);
	free(wire);
	return bad;
}

/* format (and roundtrip): format(object) reads back as object, and means what wire means. */
static int
www_format_case(const cJSON *sc, const char *name)
{
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(sc, "object");
	struct mpp_challenge c, back;
	char *req, *out, err[256];
	int bad = 0;

	if (challenge_from(obj, &c, &req) != 0) {
		free(req);
		print_error("%s: cannot encode request\n", name);
		return 1;
	}
	out = mpp_challenge_format(&c);
	if (wants(sc, "format") == 0) {
		EXPECT(bad, out == NULL, "%s: format should have failed", name);
	} else if (out == NULL) {
		print_error("%s: format failed\n", name);
		bad++;
	} else {
		EXPECT(bad, strchr(out, '\r') == NULL && strchr(out, '\n') == NULL, "%s: CR/LF", name);
		EXPECT(bad, mpp_challenge_parse(out, strlen(out), &back, err, sizeof(err)) == 0,
		    "%s: formatted value does not parse: %s", name, err);
		if (back.mem != NULL)
			EXPECT(bad, challenge_matches(&back, obj, name), "%s: roundtrip differs", name);
		mpp_challenge_free(&back);
	}
	free(out);
	free(req);
	return bad;
}

static void
test_vectors_www_authenticate(void **state)
{
	cJSON *doc = load_vectors("www-authenticate.json");
	const cJSON *sc;
	int bad = 0, ran = 0;

	(void)state;
	assert_non_null(doc);
	cJSON_ArrayForEach(sc, scenarios(doc))
	{
		const char *name = str_of(sc, "name");
		int asked = 0;

		if (wants(sc, "parse") >= 0) {
			bad += www_parse_case(sc, name);
			asked++;
		}
		if (wants(sc, "format") >= 0 || wants(sc, "roundtrip") >= 0) {
			bad += www_format_case(sc, name);
			asked++;
		}
		EXPECT(bad, asked > 0, "%s: no test kind this file knows", name);
		ran++;
	}
	cJSON_Delete(doc);
	assert_int_equal(ran, 27);
	assert_int_equal(bad, 0);
}

/*
 * Every parseable vector wire joined into one header with ", ", in order:
 * the multi-challenge parser must find each one, equal to its object. Then
 * the adversarial unclosed one is appended (it swallows what follows it, so
 * it goes last) and must come out as one more challenge.
 */
static int
joined_parse(const char *joined, size_t len, const cJSON *const *objs, size_t n)
{
	struct mpp_challenge got[64];
	size_t count = 0;
	char err[256];
	int bad = 0;

	if (mpp_challenges_parse(joined, len, got, NF(got), &count, err, sizeof(err)) != 0) {
		print_error("joined: %s\n", err);
		return 1;
	}
	EXPECT(bad, count == n, "joined: %zu challenges, want %zu", count, n);
	for (size_t i = 0; i < count; i++) {
		if (i < n)
			EXPECT(bad, challenge_matches(&got[i], objs[i], "joined"), "joined #%zu", i);
		mpp_challenge_free(&got[i]);
	}
	return bad;
}

static void
test_vectors_www_joined(void **state)
{
	cJSON *doc = load_vectors("www-authenticate.json");
	const cJSON *sc, *objs[64], *last_obj = NULL;
	size_t n = 0, len = 0;
	char *joined = calloc(1, 1 << 16), *wire, *last = NULL;

	(void)state;
	assert_non_null(doc);
	assert_non_null(joined);
	cJSON_ArrayForEach(sc, scenarios(doc))
	{
		if (wants(sc, "parse") != 1 || (wire = wire_of(sc)) == NULL)
			continue;
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sc, "wire"))) {
			free(last);
			last = wire;
			last_obj = cJSON_GetObjectItemCaseSensitive(sc, "object");
			continue;
		}
		assert_true(n < NF(objs) - 1 && len + strlen(wire) + 2 < (1 << 15));
		objs[n++] = cJSON_GetObjectItemCaseSensitive(sc, "object");
		len += (size_t)sprintf(joined + len, "%s%s", len ? ", " : "", wire);
		free(wire);
	}
	assert_true(n >= 10);
	assert_true(len <= MPP_HEADER_MAX);
	assert_int_equal(joined_parse(joined, len, objs, n), 0);
	assert_non_null(last);
	if (len + 2 + strlen(last) <= MPP_HEADER_MAX && len + 2 + strlen(last) < (1 << 16)) {
		len += (size_t)sprintf(joined + len, ", %s", last);
		objs[n++] = last_obj;
		assert_int_equal(joined_parse(joined, len, objs, n), 0);
	}
	free(last);
	free(joined);
	cJSON_Delete(doc);
}

/* authorization.json */

static int
credential_matches(const struct mpp_credential *cr, const cJSON *obj, const char *name)
{
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(obj, "source");
	int ok = challenge_matches(&cr->challenge,
	    cJSON_GetObjectItemCaseSensitive(obj, "challenge"), name);

	if (!cJSON_Compare(cr->payload, cJSON_GetObjectItemCaseSensitive(obj, "payload"), 1)) {
		print_error("%s: payload differs\n", name);
		ok = 0;
	}
	if ((src == NULL) != (cr->source == NULL) ||
	    (src != NULL && strcmp(src->valuestring, cr->source) != 0)) {
		print_error("%s: source differs\n", name);
		ok = 0;
	}
	return ok;
}

static int
auth_parse_case(const cJSON *sc, const char *name)
{
	struct mpp_credential cr;
	const char *wire = str_of(sc, "wire");
	char err[256];
	int rc, bad = 0;

	assert_non_null(wire);
	rc = mpp_credential_parse(wire, strlen(wire), &cr, err, sizeof(err));
	if (wants(sc, "parse") == 1) {
		EXPECT(bad, rc == 0, "%s: parse failed: %s", name, err);
		if (rc == 0)
			EXPECT(bad, credential_matches(&cr, cJSON_GetObjectItem(sc, "object"), name),
			    "%s: parsed wrong", name);
	} else {
		EXPECT(bad, rc != 0, "%s: parse should have failed", name);
		EXPECT(bad, cr.payload == NULL && cr.challenge.mem == NULL, "%s: left state", name);
	}
	mpp_credential_free(&cr);
	return bad;
}

static int
auth_format_case(const cJSON *sc, const char *name)
{
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(sc, "object");
	struct mpp_credential back;
	struct mpp_challenge c;
	char *req, *out, err[256];
	int bad = 0;

	EXPECT(bad, challenge_from(cJSON_GetObjectItem(obj, "challenge"), &c, &req) == 0,
	    "%s: cannot encode request", name);
	out = mpp_credential_format(&c, cJSON_GetObjectItemCaseSensitive(obj, "payload"),
	    str_of(obj, "source"));
	EXPECT(bad, out != NULL && strncmp(out, "Payment ", 8) == 0, "%s: format failed", name);
	if (out != NULL) {
		EXPECT(bad, mpp_credential_parse(out, strlen(out), &back, err, sizeof(err)) == 0,
		    "%s: formatted credential does not parse: %s", name, err);
		if (back.payload != NULL)
			EXPECT(bad, credential_matches(&back, obj, name), "%s: roundtrip", name);
		mpp_credential_free(&back);
	}
	free(out);
	free(req);
	return bad;
}

static void
test_vectors_authorization(void **state)
{
	cJSON *doc = load_vectors("authorization.json");
	const cJSON *sc;
	int bad = 0, ran = 0;

	(void)state;
	assert_non_null(doc);
	cJSON_ArrayForEach(sc, scenarios(doc))
	{
		const char *name = str_of(sc, "name");
		int asked = 0;

		if (wants(sc, "parse") >= 0) {
			bad += auth_parse_case(sc, name);
			asked++;
		}
		if (wants(sc, "format") == 1 || wants(sc, "roundtrip") == 1) {
			bad += auth_format_case(sc, name);
			asked++;
		}
		EXPECT(bad, asked > 0, "%s: no test kind this file knows", name);
		ran++;
	}
	cJSON_Delete(doc);
	assert_int_equal(ran, 9);
	assert_int_equal(bad, 0);
}

/* Our own tables. */

static void
test_challenge_parse_table(void **state)
{
	static const struct {
		const char *wire;
		int ok;
		const char *id, *desc;
	} rows[] = {
	    {"Payment id=abc, realm=api, method=test, intent=charge, request=e30", 1, "abc", NULL},
	    {"PAYMENT ID=\"a\", Realm=\"r\", METHOD=\"m\", Intent=\"c\", REQUEST=\"e30\"", 1, "a",
		NULL},
	    {"Payment id=\"a\", ID=\"b\", realm=r, method=m, intent=c, request=e30", 0, NULL, NULL},
	    {"Payment id=\"a\", realm=r, method=m, intent=c, request=e30, description=\"x\\\\y\\\"z\"",
		1, "a", "x\\y\"z"},
	    {"Payment id=\"a\", realm=r, method=m, intent=c, request=e30, description=\"open", 0,
		NULL, NULL},
	    {"Payment id=\"a\r\n\", realm=r, method=m, intent=c, request=e30", 0, NULL, NULL},
	    {"Payment id=\"a\", realm=r, method=m, intent=c, request=W10", 0, NULL, NULL},
	    {"Payment id=\"a\", realm=r, method=m, intent=c, request=\"e30=\"", 0, NULL, NULL},
	    {"Payment id=\"a\", realm=r, method=m, intent=c, request=e30, Basic abc", 0, NULL, NULL},
	    {"Payment=x", 0, NULL, NULL},
	    {"Payment id=, realm=r, method=m, intent=c, request=e30", 0, NULL, NULL},
	    {"  Payment id=a,,, realm=r ,method=m,intent=c,request=e30 ,  ", 1, "a", NULL},
	    {"Payment id=\"a\", realm=r, method=m, intent=c, request=e30, description=\"\xff\"", 0,
		NULL, NULL},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		struct mpp_challenge c;
		char err[256] = "";
		int rc = mpp_challenge_parse(rows[i].wire, strlen(rows[i].wire), &c, err,
		    sizeof(err));

		EXPECT(bad, (rc == 0) == rows[i].ok, "row %zu: rc %d (%s)", i, rc, err);
		if (rc == 0 && rows[i].id != NULL)
			EXPECT(bad, strcmp(c.id, rows[i].id) == 0, "row %zu: id %s", i, c.id);
		if (rc == 0 && rows[i].desc != NULL)
			EXPECT(bad, c.description && strcmp(c.description, rows[i].desc) == 0,
			    "row %zu: description", i);
		if (rc != 0)
			EXPECT(bad, err[0] != '\0', "row %zu: no reason given", i);
		mpp_challenge_free(&c);
	}
	assert_int_equal(bad, 0);
}

static void
test_challenges_other_schemes(void **state)
{
	static const char wire[] =
	    "Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Bearer realm=\"x, Payment id=q\", error=bad, "
	    "Payment id=\"one\", realm=\"a\", method=\"test\", intent=\"charge\", request=\"e30\", "
	    "Negotiate, payment id=two, realm=a, method=lightning, intent=charge, request=e30";
	static const char none[] = "Basic abc, Bearer realm=\"x\"";
	struct mpp_challenge c[4];
	size_t n = 99;
	char err[256];

	(void)state;
	assert_int_equal(mpp_challenges_parse(wire, strlen(wire), c, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].id, "one");
	assert_string_equal(c[1].id, "two");
	assert_string_equal(c[1].method, "lightning");
	mpp_challenge_free(&c[0]);
	mpp_challenge_free(&c[1]);
	/* Too many for the caller's array: refused, nothing left allocated. */
	assert_int_equal(mpp_challenges_parse(wire, strlen(wire), c, 1, &n, err, sizeof(err)), -1);
	assert_int_equal(n, 0);
	assert_int_equal(mpp_challenges_parse(none, strlen(none), c, 4, &n, err, sizeof(err)), -1);
	/* The single parser refuses two challenges and other schemes. */
	assert_int_equal(mpp_challenge_parse(wire, strlen(wire), c, err, sizeof(err)), -1);
}

static void
test_challenge_format_refusals(void **state)
{
	static const char *const bad_values[] = {"a\rb", "a\nb", "a\x01", "\x7f"};
	struct mpp_challenge c = {.id = "x", .realm = "r", .method = "test", .intent = "charge",
	    .request = "e30"};
	char *out;

	(void)state;
	out = mpp_challenge_format(&c);
	assert_non_null(out);
	assert_string_equal(out,
	    "Payment id=\"x\", realm=\"r\", method=\"test\", intent=\"charge\", request=\"e30\"");
	free(out);
	for (size_t i = 0; i < NF(bad_values); i++) {
		c.realm = bad_values[i];
		assert_null(mpp_challenge_format(&c));
		c.realm = "r";
		c.description = bad_values[i];
		assert_null(mpp_challenge_format(&c));
		c.description = NULL;
	}
	c.request = "";
	assert_null(mpp_challenge_format(&c));
	c.request = "e30";
	c.id = NULL;
	assert_null(mpp_challenge_format(&c));
}

static void
test_challenge_id_secret_and_header(void **state)
{
	static const uint8_t secret[40] = "0123456789abcdef0123456789abcdef0123456";
	struct mpp_challenge c = {.realm = "r", .method = "test", .intent = "charge",
	    .request = "e30", .expires = "2030-01-01T00:00:00Z"};
	char plain[MPP_ID_BUFSZ], bound[MPP_ID_BUFSZ], desc[MPP_ID_BUFSZ];

	(void)state;
	assert_int_equal(mpp_challenge_id(secret, 31, &c, plain), -1);
	assert_int_equal(mpp_challenge_id(secret, 32, &c, plain), 0);
	assert_int_equal(strlen(plain), MPP_ID_BUFSZ - 1);
	c.description = "not bound";
	assert_int_equal(mpp_challenge_id(secret, 32, &c, desc), 0);
	assert_string_equal(plain, desc);
	c.header = MPP_HEADER_PAYMENT_AUTH;
	assert_int_equal(mpp_challenge_id(secret, 32, &c, bound), 0);
	assert_string_not_equal(plain, bound);
	/* An id issued for Payment-Authorization does not check without the header, nor back. */
	c.id = bound;
	assert_int_equal(mpp_challenge_check_id(secret, 32, &c), 0);
	c.header = NULL;
	assert_int_equal(mpp_challenge_check_id(secret, 32, &c), -1);
	c.header = "Authorization";
	c.id = plain;
	assert_int_equal(mpp_challenge_check_id(secret, 32, &c), 0);
	/* Truncated, extended or case-changed ids fail. */
	c.id = "short";
	assert_int_equal(mpp_challenge_check_id(secret, 32, &c), -1);
	assert_int_equal(mpp_challenge_check_id(secret, 31, &c), -1);
}

/* Re-encode a base64url token as padded standard base64. Caller frees. */
static char *
to_std_b64(const char *tok)
{
	size_t n = strlen(tok);
	char *out = malloc(n + 4);

	for (size_t i = 0; i < n; i++)
		out[i] = tok[i] == '-' ? '+' : tok[i] == '_' ? '/' : tok[i];
	while (n % 4 != 0)
		out[n++] = '=';
	out[n] = '\0';
	return out;
}

/* base64url of a literal JSON text, as "Payment <token>". Caller frees. */
static char *
credential_of_json(const char *json)
{
	size_t len = strlen(json);
	char *out = malloc(len * 2 + 16);

	strcpy(out, "Payment ");
	assert_true(b64url_encode((const uint8_t *)json, len, out + 8, len * 2 + 8) > 0);
	return out;
}

static void
test_credential_table(void **state)
{
	static const struct {
		const char *json;
		int ok;
	} rows[] = {
	    {"{\"payload\":{\"proof\":\"x\"},\"challenge\":{\"request\":\"e30\",\"intent\":\"c\","
	     "\"method\":\"m\",\"realm\":\"r\",\"id\":\"i\"},\"source\":\"s\"}", 1},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\",\"future\":[1,2]},\"payload\":{}}", 1},
	    {"{\"challenge\":{\"id\":\"i\",\"id\":\"j\",\"realm\":\"r\",\"method\":\"m\","
	     "\"intent\":\"c\",\"request\":\"e30\"},\"payload\":{}}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"},\"payload\":{},\"payload\":{}}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"}}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"},\"payload\":[]}", 0},
	    {"{\"challenge\":{\"id\":7,\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"},\"payload\":{}}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\",\"expires\":1},\"payload\":{}}", 0},
	    {"{\"challenge\":{\"id\":\"\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"},\"payload\":{}}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"bm90IGpzb24\"},\"payload\":{}}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"},\"payload\":{},\"source\":5}", 0},
	    {"{\"challenge\":{\"id\":\"i\",\"realm\":\"r\",\"method\":\"m\",\"intent\":\"c\","
	     "\"request\":\"e30\"},\"payload\":{}} x", 0},
	    {"\"just a string\"", 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		struct mpp_credential cr;
		char *wire = credential_of_json(rows[i].json), *std, err[256] = "";
		int rc = mpp_credential_parse(wire, strlen(wire), &cr, err, sizeof(err));

		EXPECT(bad, (rc == 0) == rows[i].ok, "row %zu: rc %d (%s)", i, rc, err);
		mpp_credential_free(&cr);
		/* Padded standard base64 reads the same. */
		std = to_std_b64(wire + 8);
		memcpy(wire + 8, std, strlen(std) + 1);
		rc = mpp_credential_parse(wire, strlen(wire), &cr, err, sizeof(err));
		EXPECT(bad, (rc == 0) == rows[i].ok, "row %zu (std b64): rc %d (%s)", i, rc, err);
		mpp_credential_free(&cr);
		free(std);
		free(wire);
	}
	assert_int_equal(bad, 0);
}

static void
test_credential_framing(void **state)
{
	static const char *const refused[] = {
	    "", "Payment", "Payment ", "Payment\te30 x", "Paymente30", "Bearer e30",
	    "Payment e30,", "Payment e3 0",
	};
	struct mpp_challenge c = {.id = "i", .realm = "r", .method = "test", .intent = "charge",
	    .request = "e30", .expires = "2030-01-01T00:00:00Z"};
	cJSON *payload = cJSON_Parse("{\"proof\":\"abc\"}");
	struct mpp_credential cr;
	char *wire, *spaced, err[256];

	(void)state;
	for (size_t i = 0; i < NF(refused); i++)
		assert_int_equal(mpp_credential_parse(refused[i], strlen(refused[i]), &cr, err,
				     sizeof(err)),
		    -1);
	wire = mpp_credential_format(&c, payload, NULL);
	assert_non_null(wire);
	assert_null(strchr(wire + 8, '='));
	/* Scheme in any case, surrounding blanks tolerated. */
	spaced = malloc(strlen(wire) + 8);
	sprintf(spaced, " pAYMENT  %s \t", wire + 8);
	assert_int_equal(mpp_credential_parse(spaced, strlen(spaced), &cr, err, sizeof(err)), 0);
	assert_string_equal(cr.challenge.expires, "2030-01-01T00:00:00Z");
	assert_null(cr.source);
	assert_true(cJSON_Compare(cr.payload, payload, 1));
	mpp_credential_free(&cr);
	/* A payload that is not an object, or a challenge without its fields, cannot be built. */
	assert_null(mpp_credential_format(&c, cJSON_GetObjectItem(payload, "proof"), NULL));
	c.intent = NULL;
	assert_null(mpp_credential_format(&c, payload, NULL));
	free(spaced);
	free(wire);
	cJSON_Delete(payload);
}

static void
test_request_codec(void **state)
{
	cJSON *req = cJSON_Parse("{\"recipient\":\"r\",\"amount\":\"10\",\"currency\":\"usdc\"}");
	char *b64 = mpp_request_encode(req), *txt;
	cJSON *back;
	uint8_t raw[256];
	size_t len;

	(void)state;
	assert_non_null(b64);
	assert_int_equal(b64url_decode(b64, strlen(b64), raw, sizeof(raw) - 1, &len, 0), 0);
	raw[len] = '\0';
	assert_string_equal((char *)raw, "{\"amount\":\"10\",\"currency\":\"usdc\",\"recipient\":\"r\"}");
	back = mpp_request_decode(b64);
	assert_true(cJSON_Compare(back, req, 1));
	cJSON_Delete(back);
	/* Not an object, duplicate keys, padding or standard alphabet: refused. */
	assert_null(mpp_request_decode("W10"));
	txt = credential_of_json("{\"a\":1,\"a\":2}");
	assert_null(mpp_request_decode(txt + 8));
	free(txt);
	assert_null(mpp_request_decode("e30="));
	assert_null(mpp_request_decode(""));
	assert_null(mpp_request_encode(cJSON_GetObjectItem(req, "amount")));
	free(b64);
	cJSON_Delete(req);
}

static void
test_receipt_and_proof(void **state)
{
	static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
	char out[512], proof[MPP_ID_BUFSZ], want[MPP_ID_BUFSZ];
	uint8_t raw[512], mac[32];
	size_t len;
	cJSON *r;
	int n;

	(void)state;
	n = mpp_receipt_encode("test", "ch_1", 1700000000, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(b64url_decode(out, (size_t)n, raw, sizeof(raw) - 1, &len, 0), 0);
	raw[len] = '\0';
	assert_string_equal((char *)raw, "{\"method\":\"test\",\"reference\":\"ch_1\","
					 "\"status\":\"success\",\"timestamp\":\"2023-11-14T22:13:20Z\"}");
	assert_int_equal(mpp_receipt_encode("test", "ch_1", 1700000000, out, 10), -1);
	r = cJSON_Parse((char *)raw);
	assert_non_null(r);
	cJSON_Delete(r);

	assert_int_equal(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), secret, 32,
			     (const uint8_t *)"ch_1", 4, mac),
	    0);
	assert_true(b64url_encode(mac, 32, want, sizeof(want)) > 0);
	assert_int_equal(mpp_test_proof(secret, 32, "ch_1", proof), 0);
	assert_string_equal(proof, want);
	assert_int_equal(mpp_test_proof(secret, 31, "ch_1", proof), -1);
}

static void
test_oversized_input(void **state)
{
	size_t n = MPP_HEADER_MAX + 1;
	char *big = malloc(n + 1);
	struct mpp_challenge c;
	struct mpp_credential cr;
	size_t count;

	(void)state;
	memset(big, 'A', n);
	memcpy(big, "Payment ", 8);
	big[n] = '\0';
	assert_int_equal(mpp_challenge_parse(big, n, &c, NULL, 0), -1);
	assert_int_equal(mpp_challenges_parse(big, n, &c, 1, &count, NULL, 0), -1);
	assert_int_equal(mpp_credential_parse(big, n, &cr, NULL, 0), -1);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors_challenge_id),
	    cmocka_unit_test(test_vectors_www_authenticate),
	    cmocka_unit_test(test_vectors_www_joined),
	    cmocka_unit_test(test_vectors_authorization),
	    cmocka_unit_test(test_challenge_parse_table),
	    cmocka_unit_test(test_challenges_other_schemes),
	    cmocka_unit_test(test_challenge_format_refusals),
	    cmocka_unit_test(test_challenge_id_secret_and_header),
	    cmocka_unit_test(test_credential_table),
	    cmocka_unit_test(test_credential_framing),
	    cmocka_unit_test(test_request_codec),
	    cmocka_unit_test(test_receipt_and_proof),
	    cmocka_unit_test(test_oversized_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
