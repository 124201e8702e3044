/*
 * fuzz_keys.c — libFuzzer target for keys_parse and keys_parse_rotate,
 * cn2-platform's readers of POST /api/keys and POST /api/keys/:id/rotate
 * bodies (seller input from the internet).
 *
 * Beyond "no crash": an accepted body gave a provider of [a-z0-9-]{1,31}, a
 * price in (0, $1000] and a sealed key whose kid, enc and ciphertext are in
 * bounds; a refused one gave a reason and left nothing behind; and a body
 * with a "key" member (a key in clear) is never accepted.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform-api/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
sealed_ok(const struct sealed_key *k)
{
	size_t n = strlen(k->kid);

	return n > 0 && n <= IPC_KID_MAX && k->ctlen >= IPC_SEALED_MIN &&
	    k->ctlen <= IPC_SEALED_MAX;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct key_input in;
	static struct sealed_key k;
	static const uint8_t zero[sizeof(in)];
	const char *why = NULL;
	size_t n;
	int rc = keys_parse(data, size, &in, &why);

	if (rc != 0) {
		if (why == NULL || (rc != KEYS_INVALID && rc != KEYS_PLAINTEXT) ||
		    memcmp(&in, zero, sizeof(in)) != 0)
			abort();
	} else {
		n = strlen(in.provider);
		if (n == 0 || n > IPC_PROVIDER_MAX ||
		    strspn(in.provider, "abcdefghijklmnopqrstuvwxyz0123456789-") != n ||
		    in.price <= 0 || in.price > KEY_PRICE_MAX || !sealed_ok(&in.sealed) ||
		    memmem(data, size, "\"key\"", 5) != NULL)
			abort();
	}
	why = NULL;
	rc = keys_parse_rotate(data, size, &k, &why);
	if ((rc != 0 && why == NULL) || (rc == 0 && !sealed_ok(&k)))
		abort();
	return 0;
}
