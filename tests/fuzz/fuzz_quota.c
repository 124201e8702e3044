/*
 * fuzz_quota.c — libFuzzer target for quota_classify, the vault's reading
 * of the first bytes of an upstream's error body (hostile input: any
 * upstream, and through it whatever a buyer got the upstream to echo).
 *
 * Beyond "no crash": the answer is one of the two classes, and a body cut
 * short before its first quote ('"') is never quota: every marker is a
 * JSON member.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/ipc_msg.h"
#include "vault/quota.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t c = quota_classify(data, size);

	if (c != ECLASS_NONE && c != ECLASS_QUOTA)
		abort();
	for (size_t i = 0; i < size && data[i] != '"'; i++)
		if (i + 1 == size && c != ECLASS_NONE)
			abort();
	return 0;
}
