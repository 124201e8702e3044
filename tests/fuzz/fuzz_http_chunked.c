/*
 * fuzz_http_chunked.c — libFuzzer target for http_chunked_decode.
 *
 * The first input byte picks how the rest is fed: at most 1..16 input bytes
 * and 1..16 output bytes per call. Decoding in those steps, in one call, and
 * in place must agree exactly on the result, the bytes consumed and the data
 * produced; a split in the input must never change the answer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_run {
	int rc;
	size_t used;
	size_t outlen;
};

static struct fuzz_run
fuzz_decode(const char *in, size_t len, size_t in_step, size_t out_step, char *out)
{
	struct fuzz_run r = {HTTP_INCOMPLETE, 0, 0};
	struct http_chunked c;
	size_t cons, w, in_n, cap;

	http_chunked_init(&c);
	while (r.used < len) {
		in_n = len - r.used < in_step ? len - r.used : in_step;
		cap = len - r.outlen < out_step ? len - r.outlen : out_step;
		r.rc = http_chunked_decode(&c, in + r.used, in_n, &cons, out + r.outlen, cap, &w);
		if (cons > in_n || w > cap)
			abort();
		r.used += cons;
		r.outlen += w;
		if (r.rc != HTTP_INCOMPLETE)
			break;
		if (cons == 0 && w == 0)
			abort();
	}
	if (r.rc != HTTP_OK && r.rc != HTTP_INCOMPLETE && r.rc != HTTP_BAD)
		abort();
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, stepped;
	struct http_chunked c;
	size_t in_step, out_step, len, used, outlen;
	const char *in;
	char *a, *b;
	int rc;

	if (size == 0)
		return 0;
	in_step = 1 + (data[0] & 15);
	out_step = 1 + (data[0] >> 4);
	in = (const char *)(data + 1);
	len = size - 1;
	a = malloc(len + 1);
	b = malloc(len + 1);
	if (a == NULL || b == NULL)
		abort();
	whole = fuzz_decode(in, len, len + 1, len + 1, a);
	stepped = fuzz_decode(in, len, in_step, out_step, b);
	if (whole.rc != stepped.rc || whole.used != stepped.used || whole.outlen != stepped.outlen ||
	    memcmp(a, b, whole.outlen) != 0)
		abort();
	memcpy(b, in, len);
	http_chunked_init(&c);
	rc = http_chunked_decode(&c, b, len, &used, b, len, &outlen);
	if (rc != whole.rc || used != whole.used || outlen != whole.outlen ||
	    memcmp(a, b, outlen) != 0)
		abort();
	free(a);
	free(b);
	return 0;
}
