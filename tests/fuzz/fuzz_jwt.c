/*
 * fuzz_jwt.c — libFuzzer target for jwt_verify.
 *
 * Two modes, by the first input byte. Even: the rest is a token as a client
 * would send it (the fuzzer will rarely forge the MAC, so this exercises the
 * splitting, base64url and header checks). Odd: the rest is "header JSON"
 * NUL "payload JSON", which this target encodes and signs correctly, so the
 * claim checks behind the MAC get fuzzed too. Beyond "no crash", an
 * accepted token must have given a well-formed sub and an exp that is not
 * past the leeway.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md.h>

#include "common/b64url.h"
#include "common/jwt.h"

#define NOW 1750000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

/* Encode and sign header.payload; NULL if it does not fit. Caller frees. */
static char *
fuzz_token(const uint8_t *h, size_t hn, const uint8_t *p, size_t pn)
{
	size_t cap = b64url_encoded_len(hn) + b64url_encoded_len(pn) + 64;
	char *t = malloc(cap);
	uint8_t mac[32];
	int a, b, c;

	if (t == NULL || (a = b64url_encode(h, hn, t, cap)) < 0)
		goto fail;
	t[a] = '.';
	if ((b = b64url_encode(p, pn, t + a + 1, cap - (size_t)a - 1)) < 0)
		goto fail;
	if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), secret,
	    sizeof(secret) - 1, (const uint8_t *)t, (size_t)(a + 1 + b), mac) != 0)
		goto fail;
	t[a + 1 + b] = '.';
	c = b64url_encode(mac, sizeof(mac), t + a + b + 2, cap - (size_t)(a + b + 2));
	if (c < 0)
		goto fail;
	return t;
fail:
	free(t);
	return NULL;
}

static void
fuzz_check(const char *token)
{
	struct jwt_claims c;
	char err[128];
	size_t n;

	if (jwt_verify(token, secret, sizeof(secret) - 1, "authenticated", NOW, &c, err,
	    sizeof(err)) != 0)
		return;
	n = strnlen(c.sub, sizeof(c.sub));
	if (n == 0 || n >= sizeof(c.sub) || NOW >= c.exp + JWT_LEEWAY_S ||
	    strcmp(c.aud, "authenticated") != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul;
	char *t;

	if (size == 0 || size > JWT_MAX_LEN)
		return 0;
	if ((data[0] & 1) == 0) {
		if ((t = malloc(size)) == NULL)
			return 0;
		memcpy(t, data + 1, size - 1);
		t[size - 1] = '\0';
	} else {
		if ((nul = memchr(data + 1, '\0', size - 1)) == NULL)
			return 0;
		t = fuzz_token(data + 1, (size_t)(nul - data - 1), nul + 1,
		    size - (size_t)(nul - data) - 1);
		if (t == NULL)
			return 0;
	}
	fuzz_check(t);
	free(t);
	return 0;
}
