/*
 * fuzz_disputes.c — libFuzzer target for disputes_parse_open and
 * disputes_parse_resolve, cn2-platform's readers of POST /api/disputes and
 * POST /api/disputes/<id>/resolve bodies (outside input).
 *
 * Beyond "no crash": an accepted open body gave a payment reference of
 * [A-Za-z0-9_-]{1,63}; an accepted resolve body an outcome that is seller or
 * buyer; every refusal a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform-api/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ref[IPC_ID_MAX + 1];
	const char *why = NULL;
	int outcome = -1;

	memset(ref, 0, sizeof(ref));
	if (disputes_parse_open(data, size, ref, sizeof(ref), &why) == 0) {
		if (!disputes_token_ok(ref))
			abort();
	} else if (why == NULL)
		abort();
	why = NULL;
	if (disputes_parse_resolve(data, size, &outcome, &why) == 0) {
		if (outcome != DISPUTE_FOR_SELLER && outcome != DISPUTE_FOR_BUYER)
			abort();
	} else if (why == NULL)
		abort();
	return 0;
}
