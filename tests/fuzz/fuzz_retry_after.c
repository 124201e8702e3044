/*
 * fuzz_retry_after.c — libFuzzer target for vault_retry_after, the vault's
 * reading of an upstream's response header lines (hostile input: any
 * upstream) for Retry-After.
 *
 * Beyond "no crash": the answer is a number of seconds from 0 to a day.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vault/vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (vault_retry_after((const char *)data, size, INT64_C(1760000000)) > 86400)
		abort();
	return 0;
}
