/*
 * fuzz_vault_headers.c — libFuzzer target for the vault's header handling
 * (vault/request.c): the FORWARD check of a target and header lines from the
 * edge, the upstream header list built from lines that passed it, and the
 * filter of an upstream response head for the edge.
 *
 * Checks: a header block that passes request_check also builds a header
 * list, and every line in it is one "Name: value" line with no CR, LF or NUL
 * (nothing can split the upstream request) and no buyer credential header
 * is in it; the response filter's output
 * fits in a quarter more than its input, is itself whole lines, and
 * filtering it again changes nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct provider fuzz_provider = {
    .name = "fuzz",
    .upstream = "https://api.example.com",
    .auth_header = "Authorization",
    .auth_prefix = "Bearer ",
    .headers = {{"anthropic-version", "2023-06-01"}},
    .nheaders = 1,
};

static void
fuzz_request(const uint8_t *data, size_t size)
{
	struct curl_slist *list = NULL, node;
	const char *why;
	char line[70000];

	if (request_check("/v1/x", data, size, &why) != 0)
		return;
	if (request_headers(&fuzz_provider, data, size, (const uint8_t *)"sk-fuzz-key", 11, line,
		sizeof(line), &node, &list) != 0)
		abort();
	for (struct curl_slist *l = list; l != NULL; l = l->next) {
		const char *colon = strchr(l->data, ':');

		if (strpbrk(l->data, "\r\n") != NULL || colon == NULL)
			abort();
		if (l != &node && request_is_credential(l->data, (size_t)(colon - l->data)))
			abort();
	}
	request_slist_free(list, &node);
}

static void
fuzz_response(const uint8_t *data, size_t size)
{
	size_t cap = size + size / 4 + 1;
	char *out = malloc(cap), *again = malloc(cap);
	long n, m;

	if (out == NULL || again == NULL)
		abort();
	n = request_filter_response((const char *)data, size, out, cap);
	if (n < 0 || (n > 0 && (n < 4 || out[n - 2] != '\r' || out[n - 1] != '\n')))
		abort();
	m = request_filter_response(out, (size_t)n, again, cap);
	if (m != n || memcmp(out, again, (size_t)n) != 0)
		abort();
	free(out);
	free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	fuzz_request(data, size);
	fuzz_response(data, size);
	return 0;
}
