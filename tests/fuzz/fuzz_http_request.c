/*
 * fuzz_http_request.c — libFuzzer target for http_parse_request.
 *
 * Beyond "no crash, no out-of-bounds read", it checks what a caller relies
 * on: an accepted head ends in CRLF CRLF within the input, every parsed
 * field points inside the head, the framing facts are consistent, the
 * result does not change when max_head is exactly the head, and no prefix
 * of the input gets an answer other than "incomplete" or the final one.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http.h"

#define FUZZ_MAX_HEAD 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* p[0..n) lies inside buf[0..len); NULL only with n == 0. */
static void
fuzz_span(const char *p, size_t n, const char *buf, size_t len)
{
	if (p == NULL) {
		if (n != 0)
			abort();
		return;
	}
	if ((uintptr_t)p < (uintptr_t)buf || n > len ||
	    (uintptr_t)p - (uintptr_t)buf > len - n)
		abort();
}

static void
fuzz_check_ok(const char *buf, size_t head_len, const struct http_request *req)
{
	const struct http_header *h;

	if (head_len < 4 || memcmp(buf + head_len - 4, "\r\n\r\n", 4) != 0)
		abort();
	fuzz_span(req->method, req->method_len, buf, head_len);
	fuzz_span(req->target, req->target_len, buf, head_len);
	fuzz_span(req->host, req->host_len, buf, head_len);
	if (req->method_len == 0 || req->target_len == 0 || req->target_len > HTTP_MAX_TARGET)
		abort();
	if ((req->minor != 0 && req->minor != 1) || req->nheaders > HTTP_MAX_HEADERS)
		abort();
	if (req->content_length > HTTP_MAX_CONTENT_LENGTH || (req->chunked && req->content_length >= 0))
		abort();
	if (req->minor == 1 && req->host == NULL)
		abort();
	for (size_t i = 0; i < req->nheaders; i++) {
		fuzz_span(req->headers[i].name, req->headers[i].name_len, buf, head_len);
		fuzz_span(req->headers[i].value, req->headers[i].value_len, buf, head_len);
		if (req->headers[i].name_len == 0)
			abort();
	}
	h = http_header_get(req, "host");
	if ((h == NULL) != (req->host == NULL) || (h != NULL && h->value != req->host))
		abort();
}

static int
fuzz_known_result(int rc)
{
	switch (rc) {
	case HTTP_OK:
	case HTTP_INCOMPLETE:
	case HTTP_BAD:
	case HTTP_URI_TOO_LONG:
	case HTTP_EXPECTATION_FAILED:
	case HTTP_HEADERS_TOO_LARGE:
	case HTTP_NOT_IMPLEMENTED:
	case HTTP_VERSION_NOT_SUPPORTED:
		return 1;
	default:
		return 0;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request req, again;
	const char *buf = (const char *)data;
	size_t head_len = 0, ignored;
	int rc, rc2;

	rc = http_parse_request(buf, size, FUZZ_MAX_HEAD, &req, &head_len);
	if (!fuzz_known_result(rc))
		abort();
	rc2 = http_parse_request(buf, size / 2, FUZZ_MAX_HEAD, &again, &ignored);
	if (rc2 != HTTP_INCOMPLETE && rc2 != rc)
		abort();
	if (rc != HTTP_OK)
		return 0;
	if (head_len > size)
		abort();
	fuzz_check_ok(buf, head_len, &req);
	if (http_parse_request(buf, size, head_len, &again, &ignored) != HTTP_OK ||
	    http_parse_request(buf, size, head_len - 1, &again, &ignored) != HTTP_HEADERS_TOO_LARGE ||
	    http_parse_request(buf, head_len - 1, FUZZ_MAX_HEAD, &again, &ignored) != HTTP_INCOMPLETE)
		abort();
	return 0;
}
