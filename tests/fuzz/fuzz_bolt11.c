/*
 * fuzz_bolt11.c — libFuzzer target for the BOLT #11 invoice reader in
 * payments/bolt11.c, which reads invoices LND writes and buyers quote.
 *
 * Each input is decoded twice: as it is, and with a valid bech32 checksum
 * put after it (the text before its last '1' as the prefix, the rest as
 * data words), since a random change almost never keeps a checksum and
 * would stop the reader before the fields. Seeds are invoices without
 * their checksum.
 *
 * Beyond not crashing: whatever is accepted keeps the header's promises
 * (a known network, an amount within INT64_MAX, a 35-bit timestamp, a
 * UTF-8 description, a compressed payee), decodes the same in upper case,
 * and is refused once its case is mixed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "payments/bolt11.h"
#include "tests/unit/bech32_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const networks[] = {"bc", "tb", "bcrt", "tbs", "sb"};

static void
check_fields(const struct bolt11 *b)
{
	size_t dlen = strnlen(b->description, sizeof(b->description)), i;

	for (i = 0; i < sizeof(networks) / sizeof(networks[0]); i++)
		if (strcmp(b->network, networks[i]) == 0)
			break;
	if (i == sizeof(networks) / sizeof(networks[0]))
		abort();
	if (b->amount_msat > (uint64_t)INT64_MAX || (!b->has_amount && b->amount_msat != 0))
		abort();
	if (b->timestamp >> 35 != 0 || dlen == sizeof(b->description) ||
	    !utf8_valid((const uint8_t *)b->description, dlen))
		abort();
	if (b->has_description_hash && dlen != 0)
		abort();
	if (b->has_payee && b->payee[0] != 2 && b->payee[0] != 3)
		abort();
}

/* An accepted invoice reads the same in upper case, and not at all in mixed case. */
static void
check_case(const char *s, const struct bolt11 *b)
{
	size_t len = strlen(s);
	char *up = malloc(len + 1);
	struct bolt11 again;

	if (up == NULL)
		return;
	for (size_t i = 0; i <= len; i++)
		up[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
	if (bolt11_decode(up, &again, NULL) != 0 || memcmp(b, &again, sizeof(again)) != 0)
		abort();
	/* Lower the first letter only: "ln" guarantees a second one stays upper. */
	for (size_t i = 0; i < len; i++)
		if (up[i] >= 'A' && up[i] <= 'Z') {
			up[i] = (char)(up[i] - 'A' + 'a');
			break;
		}
	if (bolt11_decode(up, &again, NULL) == 0)
		abort();
	free(up);
}

static void
decode_one(const char *s)
{
	struct bolt11 b;
	const char *why = NULL;

	if (bolt11_decode(s, &b, &why) != 0) {
		if (why == NULL)
			abort();
		return;
	}
	check_fields(&b);
	check_case(s, &b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[BOLT11_MAX + 16], out[BOLT11_MAX + 32];
	const char *one;

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	decode_one(in);
	size = strlen(in);
	if ((one = memrchr(in, '1', size)) != NULL &&
	    bech32_write(in, (size_t)(one - in), one + 1, size - (size_t)(one - in) - 1, out,
	        sizeof(out)) == 0)
		decode_one(out);
	return 0;
}
