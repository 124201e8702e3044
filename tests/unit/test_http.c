/*
 * test_http.c — the strict HTTP/1.1 parsers and writers in common/http.c.
 *
 * The request, response and chunked cases are tables; every row is also fed
 * in growing prefixes (or byte by byte) to check the incremental contract:
 * no prefix of a message may parse as complete, and an error found early is
 * the error the whole message gets. The smuggling classics are rows here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http.h"

#define RAW(s) s, sizeof(s) - 1
#define MAX_HEAD 16384

/* Expected values of a request that parses; the rest of a row is its input. */
#define OKR(m, t, h, mi, c, ch, k, e)                                                    \
	.want = HTTP_OK, .method = (m), .target = (t), .host = (h), .minor = (mi), .cl = (c), \
	.chunked = (ch), .ka = (k), .expect = (e)

struct req_case {
	const char *name;
	const char *raw;
	size_t len;
	size_t tail; /* bytes after the head (a body) */
	int want;
	const char *method, *target, *host;
	int minor;
	int64_t cl;
	int chunked, ka, expect;
};

static const struct req_case req_cases[] = {
    /* valid heads */
    {"basic GET", RAW("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
	OKR("GET", "/", "example.com", 1, -1, 0, 1, 0)},
    {"POST with length and body", RAW("POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
				      "Host: openai.example:8443\r\nContent-Length: 5\r\n\r\nhello"),
	5, OKR("POST", "/v1/chat/completions?x=1", "openai.example:8443", 1, 5, 0, 1, 0)},
    {"chunked", RAW("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 0,
	OKR("POST", "/up", "a", 1, -1, 1, 1, 0)},
    {"chunked upper case", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
	0, OKR("POST", "/", "a", 1, -1, 1, 1, 0)},
    {"chunked with OWS", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t chunked \t\r\n\r\n"),
	0, OKR("POST", "/", "a", 1, -1, 1, 1, 0)},
    {"HTTP/1.0 without Host", RAW("GET / HTTP/1.0\r\n\r\n"), 0,
	OKR("GET", "/", NULL, 0, -1, 0, 0, 0)},
    {"HTTP/1.0 keep-alive", RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0,
	OKR("GET", "/", NULL, 0, -1, 0, 1, 0)},
    {"HTTP/1.0 keep-alive and close", RAW("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"),
	0, OKR("GET", "/", NULL, 0, -1, 0, 0, 0)},
    {"Connection close", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0,
	OKR("GET", "/", "a", 1, -1, 0, 0, 0)},
    {"Connection list with close", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade,, CLOSE \r\n\r\n"),
	0, OKR("GET", "/", "a", 1, -1, 0, 0, 0)},
    {"Connection closed is not close", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n"),
	0, OKR("GET", "/", "a", 1, -1, 0, 1, 0)},
    {"one leading empty line", RAW("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0,
	OKR("GET", "/", "a", 1, -1, 0, 1, 0)},
    {"OPTIONS *", RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0,
	OKR("OPTIONS", "*", "a", 1, -1, 0, 1, 0)},
    {"absolute-form", RAW("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
	OKR("GET", "http://example.com/x", "example.com", 1, -1, 0, 1, 0)},
    {"absolute-form https port query", RAW("GET HTTPS://example.com:443?q HTTP/1.1\r\nHost: b\r\n\r\n"),
	0, OKR("GET", "HTTPS://example.com:443?q", "b", 1, -1, 0, 1, 0)},
    {"Host IPv6 with port", RAW("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0,
	OKR("GET", "/", "[::1]:8080", 1, -1, 0, 1, 0)},
    {"Host IPv4", RAW("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 0,
	OKR("GET", "/", "127.0.0.1", 1, -1, 0, 1, 0)},
    {"Host lower case name", RAW("GET / HTTP/1.1\r\nhOST:x.y\r\n\r\n"), 0,
	OKR("GET", "/", "x.y", 1, -1, 0, 1, 0)},
    {"Expect 100-continue", RAW("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n"),
	0, OKR("PUT", "/", "a", 1, 3, 0, 1, 1)},
    {"Expect ignored on 1.0", RAW("PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
	0, OKR("PUT", "/", NULL, 0, 3, 0, 0, 0)},
    {"Content-Length 0", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), 0,
	OKR("POST", "/", "a", 1, 0, 0, 1, 0)},
    {"Content-Length 2^53", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740992\r\n\r\n"),
	0, OKR("POST", "/", "a", 1, INT64_C(9007199254740992), 0, 1, 0)},
    {"Content-Length with OWS", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  7 \r\n\r\n"), 0,
	OKR("POST", "/", "a", 1, 7, 0, 1, 0)},
    {"lower-case method is a token", RAW("get /%41%2f HTTP/1.1\r\nHost: a\r\n\r\n"), 0,
	OKR("get", "/%41%2f", "a", 1, -1, 0, 1, 0)},
    {"tchar header name, obs-text value",
	RAW("GET / HTTP/1.1\r\nHost: a\r\nX-Good_Name.~!#$%&'*+^`|: caf\xc3\xa9 \"q\"\r\n\r\n"), 0,
	OKR("GET", "/", "a", 1, -1, 0, 1, 0)},
    {"empty field value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n"), 0,
	OKR("GET", "/", "a", 1, -1, 0, 1, 0)},

    /* request smuggling classics */
    {"CL and TE", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
	0, .want = 400},
    {"TE and CL", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"),
	0, .want = 400},
    {"TE chunked, identity", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
	0, .want = 501},
    {"TE identity", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), 0, .want = 501},
    {"TE gzip, chunked", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	0, .want = 501},
    {"TE chunked twice in a list", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked , chunked\r\n\r\n"),
	0, .want = 501},
    {"TE chunkedx", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"), 0, .want = 501},
    {"TE empty", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), 0, .want = 501},
    {"TE with vertical tab", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0b" "chunked\r\n\r\n"),
	0, .want = 400},
    {"TE with NUL", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n"), 0, .want = 400},
    {"two TE fields", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n"), 0, .want = 400},
    {"space before colon", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
	0, .want = 400},
    {"tab before colon", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 4\r\n\r\n"), 0, .want = 400},
    {"indented first field", RAW("POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n"),
	0, .want = 400},
    {"TE on HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, .want = 400},
    {"two CL differing", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
	0, .want = 400},
    {"two CL identical", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n"),
	0, .want = 400},
    {"CL list identical", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n"), 0, .want = 400},
    {"CL list differing", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\n"), 0, .want = 400},
    {"CL plus sign", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n"), 0, .want = 400},
    {"CL minus sign", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -4\r\n\r\n"), 0, .want = 400},
    {"CL hex", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), 0, .want = 400},
    {"CL exponent", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n"), 0, .want = 400},
    {"CL inner space", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), 0, .want = 400},
    {"CL empty", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 0, .want = 400},
    {"CL over 2^53", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740993\r\n\r\n"),
	0, .want = 400},
    {"CL 20 digits", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n"),
	0, .want = 400},
    {"obs-fold", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"), 0, .want = 400},
    {"obs-fold with tab", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n"), 0, .want = 400},
    {"bare LF everywhere", RAW("GET / HTTP/1.1\nHost: a\n\n"), 0, .want = 400},
    {"bare LF after field", RAW("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 0, .want = 400},
    {"bare LF ending head", RAW("GET / HTTP/1.1\r\nHost: a\r\n\n"), 0, .want = 400},
    {"bare CR in field", RAW("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 0, .want = 400},
    {"bare CR in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 0, .want = 400},
    {"NUL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 0, .want = 400},
    {"DEL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), 0, .want = 400},
    {"NUL in target", RAW("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"missing Host on 1.1", RAW("GET / HTTP/1.1\r\nX: a\r\n\r\n"), 0, .want = 400},
    {"two Hosts", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 0, .want = 400},
    {"two identical Hosts", RAW("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 0, .want = 400},
    {"two Hosts on 1.0", RAW("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 0, .want = 400},
    {"empty Host", RAW("GET / HTTP/1.1\r\nHost: \r\n\r\n"), 0, .want = 400},
    {"Host with space", RAW("GET / HTTP/1.1\r\nHost: exa mple\r\n\r\n"), 0, .want = 400},
    {"Host with userinfo", RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 0, .want = 400},
    {"Host with path", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 0, .want = 400},
    {"Host port too big", RAW("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"), 0, .want = 400},
    {"Host empty port", RAW("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), 0, .want = 400},
    {"Host empty brackets", RAW("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), 0, .want = 400},
    {"Host unclosed bracket", RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 0, .want = 400},
    {"Host percent", RAW("GET / HTTP/1.1\r\nHost: a%41\r\n\r\n"), 0, .want = 400},
    {"Expect other", RAW("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"), 0, .want = 417},

    /* request-line */
    {"two leading empty lines", RAW("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"asterisk for GET", RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"authority-form", RAW("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"CONNECT", RAW("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0, .want = 501},
    {"absolute-form empty authority", RAW("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"absolute-form userinfo", RAW("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"absolute-form ftp", RAW("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"HTTP/1.2", RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 0, .want = 505},
    {"HTTP/2.0", RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 0, .want = 505},
    {"HTTP/0.9 version", RAW("GET / HTTP/0.9\r\n\r\n"), 0, .want = 505},
    {"lower-case version", RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"version 1.10", RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"version 11", RAW("GET / HTTP/11\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"no version", RAW("GET /\r\n\r\n"), 0, .want = 400},
    {"double space", RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"trailing space", RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"tab separator", RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"leading space", RAW(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"space in target", RAW("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"method not a token", RAW("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"fragment in target", RAW("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"bad escape in target", RAW("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"short escape in target", RAW("GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"obs-text in target", RAW("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, .want = 400},
    {"empty field name", RAW("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"), 0, .want = 400},
    {"field name with @", RAW("GET / HTTP/1.1\r\nHost: a\r\nX@: v\r\n\r\n"), 0, .want = 400},
    {"field without colon", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-NoColon\r\n\r\n"), 0, .want = 400},
    {"empty request", RAW("\r\n\r\n"), 0, .want = 400},

    /* incomplete heads */
    {"nothing", RAW(""), 0, .want = HTTP_INCOMPLETE},
    {"no empty line", RAW("GET / HTTP/1.1\r\nHost: a\r\n"), 0, .want = HTTP_INCOMPLETE},
    {"last LF missing", RAW("GET / HTTP/1.1\r\nHost: a\r\n\r"), 0, .want = HTTP_INCOMPLETE},
    {"early error", RAW("GET / HTTP/1.1\r\nBad Header: x\r\n"), 0, .want = 400},
};

static void
check_span(const char *row, const char *what, const char *got, size_t got_len, const char *want)
{
	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || got_len != strlen(want) || memcmp(got, want, got_len) != 0)
		fail_msg("%s: %s is \"%.*s\", want \"%s\"", row, what, got == NULL ? 6 : (int)got_len,
		    got == NULL ? "(null)" : got, want == NULL ? "(null)" : want);
}

static void
check_request_fields(const struct req_case *c, const struct http_request *req, size_t head_len)
{
	check_span(c->name, "method", req->method, req->method_len, c->method);
	check_span(c->name, "target", req->target, req->target_len, c->target);
	check_span(c->name, "host", req->host, req->host_len, c->host);
	if (head_len != c->len - c->tail)
		fail_msg("%s: head_len %zu, want %zu", c->name, head_len, c->len - c->tail);
	if (req->minor != c->minor || req->content_length != c->cl || req->chunked != c->chunked ||
	    req->keep_alive != c->ka || req->expect_continue != c->expect)
		fail_msg("%s: minor %d cl %lld chunked %d ka %d expect %d", c->name, req->minor,
		    (long long)req->content_length, req->chunked, req->keep_alive,
		    req->expect_continue);
}

/*
 * Every proper prefix must be incomplete, or fail with the final answer (an
 * error seen early); the copy is exactly as long as the prefix, so a read
 * past it is caught under ASan.
 */
static void
check_request_prefixes(const struct req_case *c)
{
	struct http_request req;
	size_t head_len;
	int rc;

	for (size_t n = 0; n < c->len - c->tail; n++) {
		char *p = malloc(n + 1);

		assert_non_null(p);
		memcpy(p, c->raw, n);
		rc = http_parse_request(p, n, MAX_HEAD, &req, &head_len);
		free(p);
		if (rc != HTTP_INCOMPLETE && rc != c->want)
			fail_msg("%s: prefix of %zu bytes gives %d, want %d or incomplete", c->name, n,
			    rc, c->want);
	}
}

static void
test_request_table(void **state)
{
	struct http_request req;
	size_t head_len;
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];

		head_len = 0;
		rc = http_parse_request(c->raw, c->len, MAX_HEAD, &req, &head_len);
		if (rc != c->want)
			fail_msg("%s: got %d, want %d", c->name, rc, c->want);
		if (rc == HTTP_OK)
			check_request_fields(c, &req, head_len);
		check_request_prefixes(c);
	}
}

/* Values are trimmed of OWS; lookups are case-insensitive and find the first. */
static void
test_request_header_get(void **state)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Val: \t two words \t\r\n"
				  "x-val: second\r\nX-Empty:   \r\n\r\n";
	const struct http_header *h;
	struct http_request req;
	size_t head_len;

	(void)state;
	assert_int_equal(http_parse_request(raw, sizeof(raw) - 1, MAX_HEAD, &req, &head_len), HTTP_OK);
	assert_int_equal(req.nheaders, 4);
	h = http_header_get(&req, "X-VAL");
	assert_non_null(h);
	check_span("X-Val", "value", h->value, h->value_len, "two words");
	check_span("X-Val", "name", h->name, h->name_len, "X-Val");
	h = http_header_get(&req, "x-empty");
	assert_non_null(h);
	assert_int_equal(h->value_len, 0);
	assert_null(http_header_get(&req, "X-Missing"));
	assert_null(http_header_get(&req, "X-Va"));
	assert_ptr_equal(http_header_find(req.headers, req.nheaders, "host"), &req.headers[0]);
}

/* Build "GET <target> HTTP/1.1\r\nHost: a\r\n\r\n" with a target of n bytes. */
static char *
long_target_request(size_t n, size_t *len)
{
	char *p = malloc(n + 64);
	int k;

	assert_non_null(p);
	memcpy(p, "GET /", 5);
	memset(p + 5, 'a', n - 1);
	k = snprintf(p + 4 + n, 60, " HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_true(k > 0);
	*len = 4 + n + (size_t)k;
	return p;
}

static void
test_request_long_target(void **state)
{
	struct http_request req;
	size_t len, head_len;
	char *p;

	(void)state;
	p = long_target_request(HTTP_MAX_TARGET, &len);
	assert_int_equal(http_parse_request(p, len, MAX_HEAD, &req, &head_len), HTTP_OK);
	assert_int_equal(req.target_len, HTTP_MAX_TARGET);
	free(p);
	p = long_target_request(HTTP_MAX_TARGET + 1, &len);
	assert_int_equal(http_parse_request(p, len, MAX_HEAD, &req, &head_len), 414);
	/* Known as soon as the target outgrows the limit, line unfinished. */
	assert_int_equal(http_parse_request(p, 4 + HTTP_MAX_TARGET + 1, MAX_HEAD, &req, &head_len), 414);
	assert_int_equal(http_parse_request(p, 4 + HTTP_MAX_TARGET, MAX_HEAD, &req, &head_len),
	    HTTP_INCOMPLETE);
	/* A head limit below the target limit is reached first. */
	assert_int_equal(http_parse_request(p, len, 4096, &req, &head_len), 431);
	free(p);
}

/* A request with nfields fields: Host and nfields - 1 others. */
static char *
many_fields_request(size_t nfields, size_t *len)
{
	size_t cap = 64 + nfields * 16, n;
	char *p = malloc(cap);

	assert_non_null(p);
	n = (size_t)snprintf(p, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (size_t i = 1; i < nfields; i++)
		n += (size_t)snprintf(p + n, cap - n, "X-%zu: v\r\n", i);
	n += (size_t)snprintf(p + n, cap - n, "\r\n");
	*len = n;
	return p;
}

static void
test_request_too_many_fields(void **state)
{
	struct http_request req;
	size_t len, head_len;
	char *p;

	(void)state;
	p = many_fields_request(HTTP_MAX_HEADERS, &len);
	assert_int_equal(http_parse_request(p, len, MAX_HEAD, &req, &head_len), HTTP_OK);
	assert_int_equal(req.nheaders, HTTP_MAX_HEADERS);
	free(p);
	p = many_fields_request(HTTP_MAX_HEADERS + 1, &len);
	assert_int_equal(http_parse_request(p, len, MAX_HEAD, &req, &head_len), 431);
	free(p);
}

static void
test_request_max_head(void **state)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
	size_t len = sizeof(raw) - 1, head_len;
	struct http_request req;

	(void)state;
	assert_int_equal(http_parse_request(raw, len, len, &req, &head_len), HTTP_OK);
	assert_int_equal(head_len, len);
	assert_int_equal(http_parse_request(raw, len, len - 1, &req, &head_len), 431);
	assert_int_equal(http_parse_request(raw, len - 1, len - 1, &req, &head_len), 431);
	assert_int_equal(http_parse_request(raw, len - 2, len - 1, &req, &head_len), HTTP_INCOMPLETE);
	assert_int_equal(http_parse_request(raw, len, 10, &req, &head_len), 431);
	assert_int_equal(http_parse_request(raw, 0, 0, &req, &head_len), 431);
}

/* Byte by byte into one growing buffer, as a server reading slowly would. */
static void
test_request_byte_by_byte(void **state)
{
	static const char raw[] = "POST /v1/x HTTP/1.1\r\nHost: api.example\r\n"
				  "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}";
	size_t head = sizeof(raw) - 3, head_len = 0;
	struct http_request req;
	int rc;

	(void)state;
	for (size_t n = 0; n <= sizeof(raw) - 1; n++) {
		rc = http_parse_request(raw, n, MAX_HEAD, &req, &head_len);
		assert_int_equal(rc, n < head ? HTTP_INCOMPLETE : HTTP_OK);
	}
	assert_int_equal(head_len, head);
	assert_int_equal(req.content_length, 2);
}

/*
 * Each byte value as a field-name character and as a field-value character,
 * against the grammar written out independently here.
 */
static int
ref_tchar(int ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int
ref_value_char(int ch)
{
	return ch == '\t' || ch == ' ' || (ch >= 0x21 && ch <= 0x7e) || ch >= 0x80;
}

static void
test_request_char_classes(void **state)
{
	struct http_request req;
	size_t head_len;
	char buf[64];
	int n, rc;

	(void)state;
	for (int ch = 0; ch < 256; ch++) {
		n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nXX: v\r\n\r\n");
		buf[25] = (char)ch;
		rc = http_parse_request(buf, (size_t)n, MAX_HEAD, &req, &head_len);
		if ((rc == HTTP_OK) != ref_tchar(ch))
			fail_msg("name byte 0x%02x: got %d", ch, rc);
		buf[25] = 'X';
		buf[29] = (char)ch;
		rc = http_parse_request(buf, (size_t)n, MAX_HEAD, &req, &head_len);
		if ((rc == HTTP_OK) != ref_value_char(ch))
			fail_msg("value byte 0x%02x: got %d", ch, rc);
	}
}

#define OKS(st, rs, mi, c, ch, k)                                                          \
	.want = HTTP_OK, .status = (st), .reason = (rs), .minor = (mi), .cl = (c), .chunked = (ch), \
	.ka = (k)

struct resp_case {
	const char *name;
	const char *raw;
	size_t len;
	int want;
	int status;
	const char *reason;
	int minor;
	int64_t cl;
	int chunked, ka;
};

static const struct resp_case resp_cases[] = {
    {"200 with length", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), OKS(200, "OK", 1, 5, 0, 1)},
    {"empty reason", RAW("HTTP/1.1 204 \r\nServer: x\r\n\r\n"), OKS(204, "", 1, -1, 0, 1)},
    {"reason with spaces and tab", RAW("HTTP/1.1 404 Not\tFound here\r\n\r\n"),
	OKS(404, "Not\tFound here", 1, -1, 0, 1)},
    {"1.0 closes", RAW("HTTP/1.0 200 OK\r\n\r\n"), OKS(200, "OK", 0, -1, 0, 0)},
    {"1.0 keep-alive", RAW("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
	OKS(200, "OK", 0, 0, 0, 1)},
    {"1.1 close", RAW("HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n"), OKS(500, "Oops", 1, -1, 0, 0)},
    {"chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), OKS(200, "OK", 1, -1, 1, 1)},
    {"interim", RAW("HTTP/1.1 100 Continue\r\n\r\n"), OKS(100, "Continue", 1, -1, 0, 1)},
    {"599", RAW("HTTP/1.1 599 x\r\n\r\n"), OKS(599, "x", 1, -1, 0, 1)},
    {"no SP after status", RAW("HTTP/1.1 200\r\n\r\n"), .want = 400},
    {"status 99", RAW("HTTP/1.1 099 x\r\n\r\n"), .want = 400},
    {"status 600", RAW("HTTP/1.1 600 x\r\n\r\n"), .want = 400},
    {"status four digits", RAW("HTTP/1.1 2000 OK\r\n\r\n"), .want = 400},
    {"status letters", RAW("HTTP/1.1 2x0 OK\r\n\r\n"), .want = 400},
    {"HTTP/2", RAW("HTTP/2 200 OK\r\n\r\n"), .want = 400},
    {"HTTP/2.0", RAW("HTTP/2.0 200 OK\r\n\r\n"), .want = 505},
    {"CL and TE", RAW("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
	.want = 400},
    {"TE gzip", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), .want = 501},
    {"TE on 1.0", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .want = 400},
    {"two CL", RAW("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), .want = 400},
    {"bare LF", RAW("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), .want = 400},
    {"obs-fold", RAW("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), .want = 400},
    {"NUL in reason", RAW("HTTP/1.1 200 O\0K\r\n\r\n"), .want = 400},
    {"space before colon", RAW("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n"), .want = 400},
    {"leading empty line", RAW("\r\nHTTP/1.1 200 OK\r\n\r\n"), .want = 400},
    {"incomplete", RAW("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"), .want = HTTP_INCOMPLETE},
};

static void
check_response_prefixes(const struct resp_case *c)
{
	struct http_response resp;
	size_t head_len;
	int rc;

	for (size_t n = 0; n < c->len; n++) {
		rc = http_parse_response(c->raw, n, MAX_HEAD, &resp, &head_len);
		if (rc != HTTP_INCOMPLETE && rc != c->want)
			fail_msg("%s: prefix of %zu bytes gives %d", c->name, n, rc);
	}
}

static void
test_response_table(void **state)
{
	struct http_response resp;
	size_t head_len;
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];

		rc = http_parse_response(c->raw, c->len, MAX_HEAD, &resp, &head_len);
		if (rc != c->want)
			fail_msg("%s: got %d, want %d", c->name, rc, c->want);
		check_response_prefixes(c);
		if (rc != HTTP_OK)
			continue;
		check_span(c->name, "reason", resp.reason, resp.reason_len, c->reason);
		if (head_len != c->len || resp.status != c->status || resp.minor != c->minor ||
		    resp.content_length != c->cl || resp.chunked != c->chunked || resp.keep_alive != c->ka)
			fail_msg("%s: status %d minor %d cl %lld chunked %d ka %d", c->name, resp.status,
			    resp.minor, (long long)resp.content_length, resp.chunked, resp.keep_alive);
	}
}

struct chunk_case {
	const char *name;
	const char *raw;
	size_t len;
	int want;
	const char *out; /* decoded data expected so far */
	size_t out_len;
	size_t tail; /* bytes after the body, for HTTP_OK */
};

#define DATA(s) s, sizeof(s) - 1

static const struct chunk_case chunk_cases[] = {
    {"one chunk", RAW("5\r\nhello\r\n0\r\n\r\n"), HTTP_OK, DATA("hello"), 0},
    {"two chunks", RAW("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), HTTP_OK, DATA("hello world"), 0},
    {"empty body", RAW("0\r\n\r\n"), HTTP_OK, DATA(""), 0},
    {"upper hex", RAW("A\r\n0123456789\r\n0\r\n\r\n"), HTTP_OK, DATA("0123456789"), 0},
    {"lower hex", RAW("a\r\n0123456789\r\n0\r\n\r\n"), HTTP_OK, DATA("0123456789"), 0},
    {"leading zeros", RAW("0005\r\nhello\r\n000\r\n\r\n"), HTTP_OK, DATA("hello"), 0},
    {"CRLF inside data", RAW("4\r\n\r\n\r\n\r\n0\r\n\r\n"), HTTP_OK, DATA("\r\n\r\n"), 0},
    {"NUL inside data", RAW("3\r\na\0b\r\n0\r\n\r\n"), HTTP_OK, DATA("a\0b"), 0},
    {"extension", RAW("5;foo=bar\r\nhello\r\n0;last\r\n\r\n"), HTTP_OK, DATA("hello"), 0},
    {"extensions with BWS", RAW("5 ; foo = bar ;baz\t;q=\"a \\\" ; b\"\r\nhello\r\n0\r\n\r\n"), HTTP_OK,
	DATA("hello"), 0},
    {"extension name only", RAW("5;a\r\nhello\r\n0\r\n\r\n"), HTTP_OK, DATA("hello"), 0},
    {"trailers", RAW("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n"), HTTP_OK, DATA("hello"), 0},
    {"next request follows", RAW("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), HTTP_OK, DATA("hi"), 16},
    {"15 hex digits", RAW("fffffffffffffff\r\nabc"), HTTP_INCOMPLETE, DATA("abc"), 0},
    {"unfinished data", RAW("5\r\nhel"), HTTP_INCOMPLETE, DATA("hel"), 0},
    {"no last chunk", RAW("5\r\nhello\r\n"), HTTP_INCOMPLETE, DATA("hello"), 0},
    {"no final CRLF", RAW("0\r\nX: y\r\n"), HTTP_INCOMPLETE, DATA(""), 0},
    {"nothing", RAW(""), HTTP_INCOMPLETE, DATA(""), 0},
    {"bad hex", RAW("g\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"hex prefix", RAW("0x5\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"negative", RAW("-5\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"leading space", RAW(" 5\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"trailing space", RAW("5 \r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"empty size", RAW("\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"16 hex digits", RAW("1000000000000000\r\n"), 400, DATA(""), 0},
    {"overflow size", RAW("ffffffffffffffffff\r\n"), 400, DATA(""), 0},
    {"data too long", RAW("5\r\nhelloX\r\n0\r\n\r\n"), 400, DATA("hello"), 0},
    {"no CRLF after data", RAW("5\r\nhello0\r\n\r\n"), 400, DATA("hello"), 0},
    {"LF only after data", RAW("5\r\nhello\n0\r\n\r\n"), 400, DATA("hello"), 0},
    {"CR only after data", RAW("5\r\nhello\r0\r\n\r\n"), 400, DATA("hello"), 0},
    {"bare LF after size", RAW("5\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"bare CR after size", RAW("5\rhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"bare LF at end", RAW("5\r\nhello\r\n0\r\n\n"), 400, DATA("hello"), 0},
    {"bare LF in trailer", RAW("0\r\nX: a\n\r\n"), 400, DATA(""), 0},
    {"trailer obs-fold", RAW("0\r\nX: a\r\n b\r\n\r\n"), 400, DATA(""), 0},
    {"trailer space before colon", RAW("0\r\nX : a\r\n\r\n"), 400, DATA(""), 0},
    {"trailer NUL", RAW("0\r\nX: a\0\r\n\r\n"), 400, DATA(""), 0},
    {"trailer without colon", RAW("0\r\nXa\r\n\r\n"), 400, DATA(""), 0},
    {"empty extension", RAW("5;\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension without name", RAW("5;=x\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension without value", RAW("5;a=\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension unterminated quote", RAW("5;a=\"x\r\nhello\"\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension two values", RAW("5;a=b c\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension trailing BWS", RAW("5;a \r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension bare LF", RAW("5;a=b\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
    {"extension NUL in quotes", RAW("5;a=\"\0\"\r\nhello\r\n0\r\n\r\n"), 400, DATA(""), 0},
};

/*
 * Decode raw feeding at most in_step input bytes and offering at most
 * out_step output bytes per call. Returns the last result, or -1 if a call
 * made no progress although it could have.
 */
static int
chunk_run(const char *raw, size_t len, size_t in_step, size_t out_step, char *out, size_t outsz,
    size_t *outlen, size_t *used)
{
	struct http_chunked c;
	size_t off = 0, o = 0, cons, w, in_n, cap;
	int rc = HTTP_INCOMPLETE;

	http_chunked_init(&c);
	while (off < len) {
		in_n = len - off < in_step ? len - off : in_step;
		cap = outsz - o < out_step ? outsz - o : out_step;
		rc = http_chunked_decode(&c, raw + off, in_n, &cons, out + o, cap, &w);
		if (cons > in_n || w > cap)
			return -1;
		off += cons;
		o += w;
		if (rc != HTTP_INCOMPLETE)
			break;
		if (cons == 0 && w == 0)
			return -1;
	}
	*outlen = o;
	*used = off;
	return rc;
}

static void
check_chunk_mode(const struct chunk_case *c, const char *mode, size_t in_step, size_t out_step)
{
	char out[256];
	size_t outlen = 0, used = 0;
	int rc;

	rc = chunk_run(c->raw, c->len, in_step, out_step, out, sizeof(out), &outlen, &used);
	if (rc != c->want)
		fail_msg("%s (%s): got %d, want %d", c->name, mode, rc, c->want);
	if (rc == HTTP_BAD)
		return;
	if (outlen != c->out_len || memcmp(out, c->out, outlen) != 0)
		fail_msg("%s (%s): output of %zu bytes differs", c->name, mode, outlen);
	if (rc == HTTP_OK && used != c->len - c->tail)
		fail_msg("%s (%s): consumed %zu, want %zu", c->name, mode, used, c->len - c->tail);
}

/* In place: the output overwrites the input it came from. */
static void
check_chunk_in_place(const struct chunk_case *c)
{
	struct http_chunked ch;
	size_t used, outlen;
	char *buf = malloc(c->len + 1);
	int rc;

	assert_non_null(buf);
	memcpy(buf, c->raw, c->len);
	http_chunked_init(&ch);
	rc = http_chunked_decode(&ch, buf, c->len, &used, buf, c->len, &outlen);
	if (rc != c->want)
		fail_msg("%s (in place): got %d", c->name, rc);
	if (rc != HTTP_BAD && (outlen != c->out_len || memcmp(buf, c->out, outlen) != 0))
		fail_msg("%s (in place): output differs", c->name);
	free(buf);
}

static void
test_chunked_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *c = &chunk_cases[i];

		check_chunk_mode(c, "one go", SIZE_MAX, SIZE_MAX);
		check_chunk_mode(c, "byte by byte", 1, SIZE_MAX);
		check_chunk_mode(c, "one output byte", SIZE_MAX, 1);
		check_chunk_mode(c, "3 in, 2 out", 3, 2);
		check_chunk_in_place(c);
	}
}

/* The decoder stays failed, and reports nothing more once done. */
static void
test_chunked_sticky(void **state)
{
	struct http_chunked c;
	size_t used, outlen;
	char out[16];

	(void)state;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "z", 1, &used, out, sizeof(out), &outlen), 400);
	assert_int_equal(http_chunked_decode(&c, "0\r\n\r\n", 5, &used, out, sizeof(out), &outlen), 400);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "0\r\n\r\n", 5, &used, out, sizeof(out), &outlen), HTTP_OK);
	assert_int_equal(http_chunked_decode(&c, "5\r\n", 3, &used, out, sizeof(out), &outlen), HTTP_OK);
	assert_int_equal(used, 0);
	assert_int_equal(outlen, 0);
	/* No room for data: nothing is consumed past the chunk line. */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "2\r\nab", 5, &used, out, 0, &outlen), HTTP_INCOMPLETE);
	assert_int_equal(used, 3);
}

/* Chunk lines of exactly the limit pass; one byte more fails. */
static void
test_chunked_limits(void **state)
{
	size_t n = HTTP_MAX_CHUNK_LINE + HTTP_MAX_TRAILERS + 64, outlen, used;
	char *raw = malloc(n), out[8];

	(void)state;
	assert_non_null(raw);
	/* "1;" + name + "\r\n" is the line; then "x\r\n0\r\n\r\n". */
	for (size_t extra = 0; extra < 2; extra++) {
		size_t line = HTTP_MAX_CHUNK_LINE + extra, k = 0;

		raw[k++] = '1';
		raw[k++] = ';';
		memset(raw + k, 'e', line - 4);
		k += line - 4;
		memcpy(raw + k, "\r\nx\r\n0\r\n\r\n", 10);
		k += 10;
		assert_int_equal(chunk_run(raw, k, 7, 8, out, sizeof(out), &outlen, &used),
		    extra == 0 ? HTTP_OK : HTTP_BAD);
	}
	/* The trailer section, final CRLF included, may be HTTP_MAX_TRAILERS bytes. */
	for (size_t extra = 0; extra < 2; extra++) {
		size_t k = 0, tr = HTTP_MAX_TRAILERS + extra;

		memcpy(raw, "0\r\nX:", 5);
		k = 5;
		memset(raw + k, 'v', tr - 6);
		k += tr - 6;
		memcpy(raw + k, "\r\n\r\n", 4);
		k += 4;
		assert_int_equal(chunk_run(raw, k, 100, 8, out, sizeof(out), &outlen, &used),
		    extra == 0 ? HTTP_OK : HTTP_BAD);
	}
	free(raw);
}

/* http_chunk_write_head output decodes back to the data. */
static void
test_chunk_write_round_trip(void **state)
{
	static const char *parts[] = {"a", "0123456789abcdef!", "", "xyz"};
	char enc[256], out[256];
	size_t n = 0, outlen, used, want = 0;
	int k;

	(void)state;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t len = strlen(parts[i]);

		if (len == 0)
			continue;
		k = http_chunk_write_head(enc + n, sizeof(enc) - n, len);
		assert_true(k > 0);
		n += (size_t)k;
		memcpy(enc + n, parts[i], len);
		n += len;
		memcpy(enc + n, "\r\n", 2);
		n += 2;
		want += len;
	}
	k = http_chunk_write_head(enc + n, sizeof(enc) - n, 0);
	assert_int_equal(k, 3);
	n += 3;
	memcpy(enc + n, "\r\n", 2);
	n += 2;
	assert_int_equal(chunk_run(enc, n, SIZE_MAX, SIZE_MAX, out, sizeof(out), &outlen, &used), HTTP_OK);
	assert_int_equal(outlen, want);
	assert_memory_equal(out, "a0123456789abcdef!xyz", want);
	assert_int_equal(http_chunk_write_head(enc, sizeof(enc), 255), 4);
	assert_memory_equal(enc, "ff\r\n", 4);
	assert_int_equal(http_chunk_write_head(enc, 3, 255), -1);
	assert_int_equal(http_chunk_write_head(enc, sizeof(enc), SIZE_MAX), (int)(sizeof(size_t) * 2 + 2));
}

struct list_case {
	const char *list;
	const char *token;
	int want;
};

static void
test_token_list(void **state)
{
	static const struct list_case cases[] = {
	    {"close", "close", 1},
	    {" Close\t", "close", 1},
	    {"keep-alive, close", "close", 1},
	    {",,close,,", "close", 1},
	    {"keep-alive ,CLOSE", "close", 1},
	    {"closed", "close", 0},
	    {"clos", "close", 0},
	    {"", "close", 0},
	    {"clo se", "close", 0},
	    {"keep-alive", "close", 0},
	    {"a, b", "b", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_token_list_has(cases[i].list, strlen(cases[i].list), cases[i].token) !=
		    cases[i].want)
			fail_msg("\"%s\" has \"%s\": want %d", cases[i].list, cases[i].token, cases[i].want);
}

static void
test_reason(void **state)
{
	(void)state;
	assert_string_equal(http_reason(200), "OK");
	assert_string_equal(http_reason(402), "Payment Required");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(999), "Unknown");
}

/* Parse a written head back with our strict client side. */
static void
parse_written(const char *buf, int n, struct http_response *resp, size_t *head_len)
{
	assert_true(n > 0);
	assert_int_equal(http_parse_response(buf, (size_t)n, (size_t)n, resp, head_len), HTTP_OK);
}

static void
test_write_head(void **state)
{
	const struct http_header *h;
	struct http_response resp;
	size_t head_len;
	char buf[512];
	int n;

	(void)state;
	n = http_write_head(buf, sizeof(buf), 200, "X-A: b\r\nX-C: d e\r\n", "text/plain; charset=utf-8", 42, 1);
	parse_written(buf, n, &resp, &head_len);
	assert_int_equal(head_len, (size_t)n);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.content_length, 42);
	assert_int_equal(resp.keep_alive, 1);
	assert_non_null(http_header_find(resp.headers, resp.nheaders, "date"));
	h = http_header_find(resp.headers, resp.nheaders, "x-c");
	assert_non_null(h);
	check_span("head", "X-C", h->value, h->value_len, "d e");
	n = http_write_head(buf, sizeof(buf), 402, NULL, NULL, -1, 0);
	parse_written(buf, n, &resp, &head_len);
	check_span("head", "reason", resp.reason, resp.reason_len, "Payment Required");
	assert_int_equal(resp.chunked, 1);
	assert_int_equal(resp.keep_alive, 0);
	n = http_write_head(buf, sizeof(buf), 204, NULL, NULL, 0, 1);
	parse_written(buf, n, &resp, &head_len);
	assert_int_equal(resp.content_length, -1);
	assert_int_equal(resp.chunked, 0);
}

/* Whatever would let a caller's string add a line or reframe the response fails. */
static void
test_write_head_rejects(void **state)
{
	static const char *bad_extra[] = {
	    "X-A: b\r\nX-B: c", "X-A: b\nX-B: c\r\n", "X-A: b\r\n\r\nbody", "X-A: b\rc\r\n",
	    "Content-Length: 1\r\n", "transfer-encoding: chunked\r\n", "Date: x\r\n", " X: a\r\n",
	    "X : a\r\n", "X: \x01\r\n",
	};
	char buf[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_extra) / sizeof(bad_extra[0]); i++)
		if (http_write_head(buf, sizeof(buf), 200, bad_extra[i], NULL, 0, 1) != -1)
			fail_msg("extra header %zu accepted", i);
	assert_int_equal(http_write_head(buf, sizeof(buf), 200, NULL, "text/plain\r\nX: y", 0, 1), -1);
	assert_int_equal(http_write_head(buf, sizeof(buf), 200, NULL, "", 0, 1), -1);
	assert_int_equal(http_write_head(buf, sizeof(buf), 600, NULL, NULL, 0, 1), -1);
	assert_int_equal(http_write_head(buf, sizeof(buf), 99, NULL, NULL, 0, 1), -1);
	assert_true(http_write_head(buf, sizeof(buf), 200, "", NULL, 0, 1) > 0);
}

/* Every buffer too small fails, and nothing is written past cap. */
static void
test_write_head_small(void **state)
{
	char buf[512];
	int full, n;

	(void)state;
	full = http_write_problem(buf, sizeof(buf), 503, NULL, NULL, "try later", NULL, 1);
	assert_true(full > 0);
	for (int cap = 0; cap < full; cap++) {
		memset(buf, '#', sizeof(buf));
		n = http_write_problem(buf, (size_t)cap, 503, NULL, NULL, "try later", NULL, 1);
		assert_int_equal(n, -1);
		for (size_t i = (size_t)cap; i < sizeof(buf); i++)
			if (buf[i] != '#')
				fail_msg("cap %d: byte %zu written", cap, i);
	}
	assert_int_equal(http_write_problem(buf, (size_t)full, 503, NULL, NULL, "try later", NULL, 1), full);
}

static const char *
json_get_string(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Write a problem, parse it as a client would, return the parsed JSON body. */
static cJSON *
problem_round_trip(int status, const char *type, const char *title, const char *detail)
{
	struct http_response resp;
	const struct http_header *ct;
	const cJSON *st;
	size_t head_len;
	char buf[2048];
	cJSON *json;
	int n;

	n = http_write_problem(buf, sizeof(buf), status, type, title, detail, "X-Req: 1\r\n", 0);
	parse_written(buf, n, &resp, &head_len);
	assert_int_equal(resp.status, status);
	assert_int_equal(resp.keep_alive, 0);
	ct = http_header_find(resp.headers, resp.nheaders, "content-type");
	assert_non_null(ct);
	check_span("problem", "content-type", ct->value, ct->value_len, "application/problem+json");
	assert_int_equal(resp.content_length, (int64_t)((size_t)n - head_len));
	json = cJSON_ParseWithLength(buf + head_len, (size_t)n - head_len);
	assert_non_null(json);
	st = cJSON_GetObjectItemCaseSensitive(json, "status");
	assert_true(cJSON_IsNumber(st));
	assert_int_equal(st->valueint, status);
	return json;
}

static void
test_write_problem(void **state)
{
	static const char detail[] = "said \"no\"\nback\\slash\ttab\x01 caf\xc3\xa9 bad\xff end";
	static const char detail_want[] = "said \"no\"\nback\\slash\ttab\x01 caf\xc3\xa9 bad\xef\xbf\xbd end";
	cJSON *json;
	char buf[64];

	(void)state;
	json = problem_round_trip(402, "https://cn2.example/problems/payment-required", "Pay first", detail);
	assert_string_equal(json_get_string(json, "type"), "https://cn2.example/problems/payment-required");
	assert_string_equal(json_get_string(json, "title"), "Pay first");
	assert_string_equal(json_get_string(json, "detail"), detail_want);
	cJSON_Delete(json);
	json = problem_round_trip(503, NULL, NULL, NULL);
	assert_string_equal(json_get_string(json, "type"), "about:blank");
	assert_string_equal(json_get_string(json, "title"), "Service Unavailable");
	assert_null(cJSON_GetObjectItemCaseSensitive(json, "detail"));
	cJSON_Delete(json);
	json = problem_round_trip(400, "t", "\"}{\"injected\":true", "\xe0\x80\x80\xed\xa0\x80");
	assert_string_equal(json_get_string(json, "title"), "\"}{\"injected\":true");
	assert_null(cJSON_GetObjectItemCaseSensitive(json, "injected"));
	assert_string_equal(json_get_string(json, "detail"),
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	cJSON_Delete(json);
	assert_int_equal(http_write_problem(buf, sizeof(buf), 200, NULL, NULL, NULL, NULL, 1), -1);
	assert_int_equal(http_write_problem(buf, sizeof(buf), 402, NULL, NULL, NULL, "Bad\r\n", 1), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_table),
	    cmocka_unit_test(test_request_header_get),
	    cmocka_unit_test(test_request_long_target),
	    cmocka_unit_test(test_request_too_many_fields),
	    cmocka_unit_test(test_request_max_head),
	    cmocka_unit_test(test_request_byte_by_byte),
	    cmocka_unit_test(test_request_char_classes),
	    cmocka_unit_test(test_response_table),
	    cmocka_unit_test(test_chunked_table),
	    cmocka_unit_test(test_chunked_sticky),
	    cmocka_unit_test(test_chunked_limits),
	    cmocka_unit_test(test_chunk_write_round_trip),
	    cmocka_unit_test(test_token_list),
	    cmocka_unit_test(test_reason),
	    cmocka_unit_test(test_write_head),
	    cmocka_unit_test(test_write_head_rejects),
	    cmocka_unit_test(test_write_head_small),
	    cmocka_unit_test(test_write_problem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
