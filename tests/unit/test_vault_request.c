/*
 * test_vault_request.c — vault/request.c: which targets and header lines a
 * FORWARD may carry, the upstream URL (key as a query parameter, a buyer's
 * copy of it dropped), the upstream header list (buyer credentials and the
 * provider's own names dropped, fixed headers and the key added), the
 * response head filter, and the KEY_PUT checks; and for every provider of
 * the shipped catalogue (vault/providers.json, as embedded in cn2), that its
 * key is injected as its entry says and every credential a buyer sent is
 * stripped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "tests/catalogue_cases.h"
#include "vault/vault.h"

static const char catalogue[] =
    "{\"version\": 1, \"providers\": {"
    " \"hdr\": {\"upstream\": \"https://api.example.com/base\","
    "  \"auth\": {\"header\": \"x-api-key\", \"prefix\": \"\"},"
    "  \"headers\": {\"api-version\": \"2023-06-01\"},"
    "  \"routes\": [\"POST /v1/messages\"]},"
    " \"bearer\": {\"upstream\": \"http://127.0.0.1:8090\","
    "  \"auth\": {\"header\": \"Authorization\", \"prefix\": \"Bearer \"},"
    "  \"routes\": [\"GET /v1/models\"]},"
    " \"query\": {\"upstream\": \"https://gen.example.com\","
    "  \"auth\": {\"query\": \"key\"},"
    "  \"routes\": [\"POST /v1/generate\"]}}}";

static struct providers cat;

static int
group_setup(void **state)
{
	char err[256];

	(void)state;
	return providers_parse(catalogue, strlen(catalogue), &cat, err, sizeof(err));
}

static int
group_teardown(void **state)
{
	(void)state;
	providers_free(&cat);
	return 0;
}

static const struct provider *
prov(const char *name)
{
	const struct provider *p = providers_find(&cat, name, strlen(name));

	assert_non_null(p);
	return p;
}

static const struct {
	const char *target;
	const char *headers;
	int ok;
} check_cases[] = {
    {"/v1/messages", "", 1},
    {"/v1/messages?a=b&c=%20", "Content-Type: application/json\r\nAccept: */*\r\n", 1},
    {"/v1/messages", "X-Empty:\r\nX-Tab: a\tb\r\n", 1},
    {"v1/messages", "", 0},
    {"http://evil/v1", "", 0},
    {"/v1/mess ages", "", 0},
    {"/v1/messages#frag", "", 0},
    {"/v1/\x7f", "", 0},
    {"/v1/messages", "Content-Type: a\r\n", 1},
    {"/v1/messages", "Content-Type: a", 0},	       /* no CRLF */
    {"/v1/messages", "Content-Type: a\n", 0},	       /* bare LF */
    {"/v1/messages", "Content-Type: a\rb\r\n", 0},     /* bare CR */
    {"/v1/messages", "Bad Name: a\r\n", 0},
    {"/v1/messages", "Name : a\r\n", 0},
    {"/v1/messages", ": a\r\n", 0},
    {"/v1/messages", "NoColon\r\n", 0},
    {"/v1/messages", "X: a\x01\r\n", 0},
    {"/v1/messages", "X: a\r\n\r\n", 0},	       /* an empty line */
};

static void
test_check(void **state)
{
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
		const char *h = check_cases[i].headers;
		int rc = request_check(check_cases[i].target, (const uint8_t *)h, strlen(h), &why);

		if (rc != (check_cases[i].ok ? 0 : -1))
			fail_msg("case %zu (%s): got %d", i, check_cases[i].target, rc);
	}
}

static void
test_check_bounds(void **state)
{
	size_t n = 200 * 8;
	char *h = malloc(n + 1);
	const char *why;

	(void)state;
	for (size_t i = 0; i < 200; i++)
		memcpy(h + 8 * i, "X-A: b\r\n", 8);
	h[n] = '\0';
	assert_int_equal(request_check("/x", (const uint8_t *)h, n, &why), -1);
	assert_int_equal(request_check("/x", (const uint8_t *)h, 8 * 100, &why), 0);
	free(h);
}

static const struct {
	const char *prov, *target, *key, *want;
} url_cases[] = {
    {"hdr", "/v1/messages", "k", "https://api.example.com/base/v1/messages"},
    {"hdr", "/v1/messages?x=1", "k", "https://api.example.com/base/v1/messages?x=1"},
    {"query", "/v1/generate", "abc", "https://gen.example.com/v1/generate?key=abc"},
    {"query", "/v1/generate?alt=sse", "a+b/c=", "https://gen.example.com/v1/generate?alt=sse&key=a%2Bb%2Fc%3D"},
    {"query", "/v1/generate?key=buyer&alt=sse", "real", "https://gen.example.com/v1/generate?alt=sse&key=real"},
    {"query", "/v1/generate?alt=sse&key=buyer&key", "real", "https://gen.example.com/v1/generate?alt=sse&key=real"},
    {"query", "/v1/generate?keys=1", "real", "https://gen.example.com/v1/generate?keys=1&key=real"},
    {"query", "/v1/generate?", "k~-._", "https://gen.example.com/v1/generate?key=k~-._"},
};

static void
test_url(void **state)
{
	char buf[512];

	(void)state;
	for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		const char *k = url_cases[i].key;

		assert_int_equal(request_url(prov(url_cases[i].prov), url_cases[i].target,
				     (const uint8_t *)k, strlen(k), buf, sizeof(buf)), 0);
		assert_string_equal(buf, url_cases[i].want);
	}
	/* Too small a buffer is an error, never a truncated URL. */
	assert_int_equal(request_url(prov("query"), "/v1/generate", (const uint8_t *)"abc", 3, buf,
			     30), -1);
}

/* The header list as one string, "line\n" each. */
static char *
slist_text(struct curl_slist *l)
{
	size_t n = 1;
	char *s;

	for (struct curl_slist *p = l; p != NULL; p = p->next)
		n += strlen(p->data) + 1;
	s = calloc(1, n);
	for (; l != NULL; l = l->next) {
		strcat(s, l->data);
		strcat(s, "\n");
	}
	return s;
}

static void
test_headers(void **state)
{
	static const char in[] =
	    "Content-Type: application/json\r\n"
	    "Accept: text/event-stream\r\n"
	    "Host: evil.example\r\n"
	    "Authorization: Bearer buyer\r\n"
	    "Payment-Authorization: Payment xyz\r\n"
	    "X-API-Key: buyer-key\r\n"
	    "Api-Version: 1999\r\n"
	    "Proxy-Authorization: Basic x\r\n"
	    "Connection: close\r\n"
	    "Content-Length: 12\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\n"
	    "X-Custom:   spaced value  \r\n";
	struct curl_slist *l = NULL, node;
	char line[256], *text;

	(void)state;
	assert_int_equal(request_headers(prov("hdr"), (const uint8_t *)in, strlen(in),
			     (const uint8_t *)"sk-seller", 9, line, sizeof(line), &node, &l), 0);
	text = slist_text(l);
	assert_string_equal(text,
	    "Content-Type: application/json\n"
	    "Accept: text/event-stream\n"
	    "X-Custom: spaced value\n"
	    "Expect:\n"
	    "api-version: 2023-06-01\n"
	    "x-api-key: sk-seller\n");
	/* The key's line is the caller's buffer, linked through the caller's node, last. */
	assert_ptr_equal(node.data, line);
	assert_null(node.next);
	assert_string_equal(line, "x-api-key: sk-seller");
	free(text);
	request_slist_free(l, &node);
	/* Freeing the list left the caller's line alone. */
	assert_string_equal(line, "x-api-key: sk-seller");

	l = NULL;
	assert_int_equal(request_headers(prov("bearer"), (const uint8_t *)"", 0,
			     (const uint8_t *)"sk-demo", 7, line, sizeof(line), &node, &l), 0);
	text = slist_text(l);
	assert_string_equal(text, "Expect:\nContent-Type:\nAuthorization: Bearer sk-demo\n");
	free(text);
	request_slist_free(l, &node);

	l = NULL;
	assert_int_equal(request_headers(prov("query"), (const uint8_t *)"Key: x\r\n", 8,
			     (const uint8_t *)"sk-q", 4, line, sizeof(line), &node, &l), 0);
	text = slist_text(l);
	/* A query-key provider takes no key header; the buyer's "Key" header is not the parameter. */
	assert_string_equal(text, "Key: x\nExpect:\nContent-Type:\n");
	free(text);
	request_slist_free(l, NULL);
	/* Too small a line for the key's header is an error. */
	l = NULL;
	assert_int_equal(request_headers(prov("bearer"), (const uint8_t *)"", 0,
			     (const uint8_t *)"sk-demo", 7, line, 20, &node, &l), -1);
	request_slist_free(l, &node);
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
check_injection(const struct provider *pv)
{
	static const char key[] = "sk-CANARY-0123456789";
	char headers[2048], path[300], target[400], url[1024], line[4096], want[256], *text;
	struct curl_slist *l = NULL, node;
	const char *why;
	size_t n = catalogue_buyer_headers(pv, headers, sizeof(headers));

	assert_true(n < sizeof(headers));
	catalogue_sample_path(pv, path, sizeof(path));
	snprintf(target, sizeof(target), "%s?key=buyer&alt=sse", path);
	assert_int_equal(request_check(target, (const uint8_t *)headers, n, &why), 0);
	assert_int_equal(request_url(pv, target, (const uint8_t *)key, strlen(key), url,
			     sizeof(url)), 0);
	assert_int_equal(request_headers(pv, (const uint8_t *)headers, n, (const uint8_t *)key,
			     strlen(key), line, sizeof(line), &node, &l), 0);
	text = slist_text(l);
	if (count(text, "buyer") != 0 || (pv->auth_query[0] != '\0' && strstr(url, "buyer")))
		fail_msg("%s: a buyer credential passes: %s %s", pv->name, url, text);
	if (pv->auth_header[0] != '\0') {
		snprintf(want, sizeof(want), "%s: %s%s\n", pv->auth_header, pv->auth_prefix, key);
		if (count(text, key) != 1 || strstr(text, want) == NULL || strstr(url, key) != NULL)
			fail_msg("%s: the key is not injected as \"%s\": %s", pv->name, want, text);
	} else {
		snprintf(want, sizeof(want), "%s=%s", pv->auth_query, key);
		if (count(url, want) != 1 || strstr(text, key) != NULL)
			fail_msg("%s: the key is not the query parameter %s: %s", pv->name,
			    pv->auth_query, url);
	}
	for (size_t i = 0; i < pv->nheaders; i++) {
		snprintf(want, sizeof(want), "%s: %s\n", pv->headers[i].name, pv->headers[i].value);
		if (count(text, want) != 1)
			fail_msg("%s: fixed header %s missing", pv->name, pv->headers[i].name);
	}
	assert_int_equal(strncmp(url, pv->upstream, strlen(pv->upstream)), 0);
	assert_non_null(strstr(text, "Content-Type: application/json\n"));
	free(text);
	request_slist_free(l, &node);
}

/* The shipped catalogue: at least 20 real providers, each checked against its docs. */
static void
test_catalogue_injection(void **state)
{
	struct providers shipped;
	cJSON *root = cJSON_Parse(cli_catalogue), *p;
	char err[256];
	size_t real = 0;

	(void)state;
	assert_non_null(root);
	assert_int_equal(providers_parse(cli_catalogue, strlen(cli_catalogue), &shipped, err,
			     sizeof(err)), 0);
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(root, "providers")) {
		const char *docs = cJSON_GetStringValue(cJSON_GetObjectItem(p, "docs"));

		if (strcmp(p->string, "demo") == 0)
			continue;
		real++;
		if (docs == NULL || strncmp(docs, "https://", 8) != 0)
			fail_msg("%s: no docs address it was checked against", p->string);
		if (strncmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "upstream")), "https://", 8))
			fail_msg("%s: a real provider's upstream must be https", p->string);
	}
	assert_true(real >= 20);
	for (size_t i = 0; i < shipped.n; i++)
		check_injection(&shipped.v[i]);
	/* A few entries as their providers document them. */
	assert_string_equal(providers_find(&shipped, "gemini", 6)->auth_query, "key");
	assert_string_equal(providers_find(&shipped, "elevenlabs", 10)->auth_header, "xi-api-key");
	assert_string_equal(providers_find(&shipped, "deepgram", 8)->auth_prefix, "Token ");
	assert_string_equal(providers_find(&shipped, "assemblyai", 10)->auth_prefix, "");
	assert_string_equal(providers_find(&shipped, "anthropic", 9)->headers[0].name,
	    "anthropic-version");
	assert_true(provider_route_allowed(providers_find(&shipped, "gemini", 6), "POST", 4,
	    "/v1beta/models/gemini-2.0-flash:streamGenerateContent", 53));
	assert_false(provider_route_allowed(providers_find(&shipped, "gemini", 6), "POST", 4,
	    "/v1beta/models/:generateContent", 31));
	providers_free(&shipped);
	cJSON_Delete(root);
}

static const struct {
	const char *in, *want;
} filter_cases[] = {
    {"Content-Type: application/json\r\nContent-Length: 10\r\n",
	"Content-Type: application/json\r\nContent-Length: 10\r\n"},
    {"Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-End: 2\r\n",
	"X-End: 2\r\n"},
    {"Transfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n"
     "Proxy-Authenticate: Basic\r\nProxy-Connection: close\r\nSet-Cookie: a=b\r\n",
	"Set-Cookie: a=b\r\n"},
    {"bad line\r\nX-Ok: yes\r\nX-Ctl: a\x01\r\n", "X-Ok: yes\r\n"},
    {"x-request-id:  abc \r\n", "x-request-id: abc\r\n"},
    {"A:b\r\nC:\r\n", "A: b\r\nC: \r\n"}, /* the one space may make a line longer */
    {"", ""},
};

static void
test_filter_response(void **state)
{
	char out[512];
	long n;

	(void)state;
	for (size_t i = 0; i < sizeof(filter_cases) / sizeof(filter_cases[0]); i++) {
		n = request_filter_response(filter_cases[i].in, strlen(filter_cases[i].in), out,
		    sizeof(out));
		assert_true(n >= 0);
		out[n] = '\0';
		assert_string_equal(out, filter_cases[i].want);
	}
	assert_int_equal(request_filter_response("X-A: 1234567890\r\n", 17, out, 8), -1);
}

static void
test_secret_and_ids(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} secrets[] = {
	    {"sk-12345", 1}, {"sk-1234", 0}, {"sk 12345678", 0}, {"sk-12345678\n", 0},
	    {"sk-1234\r5678", 0}, {"sk-\t12345678", 0}, {"sk-12345678\x7f", 0},
	    {"sk-\xc3\xa9" "12345678", 0}, {"!~#$%&'()*+,-./:;<=>?@[]^_`{|}", 1},
	};
	static const struct {
		const char *s;
		int ok;
	} ids[] = {
	    {"key_1", 1}, {"k.e-y:2", 1}, {"", 0}, {"a|b", 0}, {"a b", 0}, {"a/b", 0},
	};
	char *big = malloc(4098);

	(void)state;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		assert_int_equal(request_secret_valid((const uint8_t *)secrets[i].s,
				     strlen(secrets[i].s)), secrets[i].ok);
	memset(big, 'a', 4097);
	assert_int_equal(request_secret_valid((const uint8_t *)big, 4096), 1);
	assert_int_equal(request_secret_valid((const uint8_t *)big, 4097), 0);
	free(big);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		assert_int_equal(request_id_valid(ids[i].s), ids[i].ok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_check_bounds),
	    cmocka_unit_test(test_url),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_catalogue_injection),
	    cmocka_unit_test(test_filter_response),
	    cmocka_unit_test(test_secret_and_ids),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
