/*
 * fuzz_hpke.c — libFuzzer target for common/hpke.c's recipient side, which
 * opens what sellers' clients (anyone on the internet) sealed to the vault:
 * the input is split into enc, info, aad and ciphertext.
 *
 * Checks: no crash; a failed open leaves the output zero; a successful one
 * is only possible for an input sealed to this key pair, so the target also
 * seals the input's tail itself and requires that to open to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hpke.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t sk[HPKE_NSK], pk[HPKE_NPK];
static int ready;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pt[4096 + HPKE_NT], ct[4096 + HPKE_NT], zero[4096 + HPKE_NT];
	size_t infolen, aadlen, ctlen;
	uint8_t enc[HPKE_NENC];

	if (!ready && hpke_keypair_generate(sk, pk) != 0)
		abort();
	ready = 1;
	if (size < HPKE_NENC + 2 || size > HPKE_NENC + 2 + 4096)
		return 0;
	infolen = data[HPKE_NENC] % 64;
	aadlen = data[HPKE_NENC + 1] % 64;
	if (HPKE_NENC + 2 + infolen + aadlen > size)
		return 0;
	ctlen = size - HPKE_NENC - 2 - infolen - aadlen;
	if (ctlen >= HPKE_NT &&
	    hpke_open(HPKE_AES_256_GCM, sk, pk, data, data + HPKE_NENC + 2, infolen,
		data + HPKE_NENC + 2 + infolen, aadlen, data + size - ctlen, ctlen, pt) != 0 &&
	    memcmp(pt, zero, ctlen - HPKE_NT) != 0)
		abort();
	/* The tail as a plaintext: sealed and opened with the same info and aad. */
	if (hpke_seal(HPKE_AES_256_GCM, pk, data + HPKE_NENC + 2, infolen,
		data + HPKE_NENC + 2 + infolen, aadlen, data + size - ctlen, ctlen, enc, ct) != 0 ||
	    hpke_open(HPKE_AES_256_GCM, sk, pk, enc, data + HPKE_NENC + 2, infolen,
		data + HPKE_NENC + 2 + infolen, aadlen, ct, ctlen + HPKE_NT, pt) != 0 ||
	    memcmp(pt, data + size - ctlen, ctlen) != 0)
		abort();
	return 0;
}
