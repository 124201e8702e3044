/*
 * fuzz_http_response.c — libFuzzer target for http_parse_response, and for
 * the writers fed with the same bytes as a problem "detail".
 *
 * Checks: accepted heads end in CRLF CRLF inside the input with every field
 * inside the head; prefixes never disagree with the whole; whatever bytes
 * the detail holds, http_write_problem produces a response our own parser
 * accepts and a body cJSON parses, with the status it was given.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/http.h"

#define FUZZ_MAX_HEAD 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_span(const char *p, size_t n, const char *buf, size_t len)
{
	if ((uintptr_t)p < (uintptr_t)buf || n > len || (uintptr_t)p - (uintptr_t)buf > len - n)
		abort();
}

static void
fuzz_parse(const char *buf, size_t size)
{
	static struct http_response resp, again;
	size_t head_len = 0, ignored;
	int rc, rc2;

	rc = http_parse_response(buf, size, FUZZ_MAX_HEAD, &resp, &head_len);
	rc2 = http_parse_response(buf, size / 2, FUZZ_MAX_HEAD, &again, &ignored);
	if (rc2 != HTTP_INCOMPLETE && rc2 != rc)
		abort();
	if (rc != HTTP_OK)
		return;
	if (head_len < 4 || head_len > size || memcmp(buf + head_len - 4, "\r\n\r\n", 4) != 0)
		abort();
	if (resp.status < 100 || resp.status > 599 || resp.nheaders > HTTP_MAX_HEADERS)
		abort();
	if (resp.chunked && resp.content_length >= 0)
		abort();
	fuzz_span(resp.reason, resp.reason_len, buf, head_len);
	for (size_t i = 0; i < resp.nheaders; i++) {
		fuzz_span(resp.headers[i].name, resp.headers[i].name_len, buf, head_len);
		fuzz_span(resp.headers[i].value, resp.headers[i].value_len, buf, head_len);
	}
}

/* The input, up to its first NUL, as the detail of a problem response. */
static void
fuzz_problem(const uint8_t *data, size_t size)
{
	/* Room for title and detail at six bytes per input byte (\u00XX), and a head. */
	static char out[2 * 6 * 8192 + 1024];
	static struct http_response resp;
	size_t n = size < 8192 ? size : 8192, head_len;
	char *detail = malloc(n + 1);
	const cJSON *st;
	cJSON *json;
	int len;

	if (detail == NULL)
		return;
	memcpy(detail, data, n);
	detail[n] = '\0';
	len = http_write_problem(out, sizeof(out), 400 + (int)(n % 200), NULL, detail, detail,
	    NULL, 1);
	free(detail);
	if (len <= 0 || http_parse_response(out, (size_t)len, (size_t)len, &resp, &head_len) != HTTP_OK)
		abort();
	if (resp.content_length != (int64_t)((size_t)len - head_len))
		abort();
	json = cJSON_ParseWithLength(out + head_len, (size_t)len - head_len);
	if (json == NULL)
		abort();
	st = cJSON_GetObjectItemCaseSensitive(json, "status");
	if (!cJSON_IsNumber(st) || st->valueint != resp.status)
		abort();
	cJSON_Delete(json);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parse((const char *)data, size);
	fuzz_problem(data, size);
	return 0;
}
