/*
 * fuzz_keys.c — libFuzzer target for keys_parse, cn2-platform's reader of
 * POST /api/keys bodies (seller input from the internet).
 *
 * Beyond "no crash", an accepted body must have given a provider of
 * [a-z0-9-]{1,31}, a key of visible ASCII within the length bounds whose
 * length matches keylen, and a price in (0, $1000].
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
	static struct key_input in;
	const char *why;
	size_t n;

	if (keys_parse(data, size, &in, &why) != 0) {
		if (why == NULL || in.key[0] != '\0')
			abort();
		return 0;
	}
	n = strlen(in.provider);
	if (n == 0 || n > IPC_PROVIDER_MAX ||
	    strspn(in.provider, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		abort();
	if (in.keylen != strlen(in.key) || in.keylen < KEY_SECRET_MIN || in.keylen > KEY_SECRET_MAX)
		abort();
	for (size_t i = 0; i < in.keylen; i++)
		if (in.key[i] < 0x21 || in.key[i] > 0x7e)
			abort();
	if (in.price <= 0 || in.price > KEY_PRICE_MAX)
		abort();
	return 0;
}
