/*
 * fuzz_mpp.c — libFuzzer target for the MPP readers in common/mpp.c: the
 * WWW-Authenticate parsers (one challenge, several joined) and the
 * credential parser, which read text from the internet.
 *
 * Beyond not crashing: a rejected input leaves nothing allocated behind
 * (ASan's leak check), and whatever is accepted survives a round trip —
 * formatting a parsed challenge or credential and parsing that again gives
 * back the same fields, so the writer and the reader agree.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
same_challenge(const struct mpp_challenge *a, const struct mpp_challenge *b)
{
	return same(a->id, b->id) && same(a->realm, b->realm) && same(a->method, b->method) &&
	    same(a->intent, b->intent) && same(a->request, b->request) &&
	    same(a->expires, b->expires) && same(a->digest, b->digest) &&
	    same(a->opaque, b->opaque) && same(a->description, b->description) &&
	    same(a->header, b->header);
}

static void
challenge_roundtrip(const struct mpp_challenge *c)
{
	struct mpp_challenge back;
	char *out = mpp_challenge_format(c);

	/* A parsed value may hold a tab, which formats; CR/LF never parse. */
	if (out == NULL)
		return;
	if (mpp_challenge_parse(out, strlen(out), &back, NULL, 0) != 0 ||
	    !same_challenge(c, &back))
		abort();
	mpp_challenge_free(&back);
	free(out);
}

static void
credential_roundtrip(const struct mpp_credential *cr)
{
	struct mpp_credential back;
	char *out = mpp_credential_format(&cr->challenge, cr->payload, cr->source);

	if (out == NULL)
		abort();
	if (mpp_credential_parse(out, strlen(out), &back, NULL, 0) != 0 ||
	    !same_challenge(&cr->challenge, &back.challenge) || !same(cr->source, back.source) ||
	    !cJSON_Compare(cr->payload, back.payload, 1))
		abort();
	mpp_credential_free(&back);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct mpp_challenge c, many[4];
	struct mpp_credential cr;
	size_t n;

	if (mpp_challenge_parse(s, size, &c, NULL, 0) == 0) {
		challenge_roundtrip(&c);
		mpp_challenge_free(&c);
	}
	if (mpp_challenges_parse(s, size, many, 4, &n, NULL, 0) == 0) {
		if (n == 0 || n > 4)
			abort();
		while (n > 0)
			mpp_challenge_free(&many[--n]);
	}
	if (mpp_credential_parse(s, size, &cr, NULL, 0) == 0) {
		credential_roundtrip(&cr);
		mpp_credential_free(&cr);
	}
	return 0;
}
