/*
 * bech32_write.h — appends a bech32 checksum (BIP-173) to a human-readable
 * part and data words, so that tests and fuzz targets can build invoices
 * that get past the checksum and reach the parsing behind it.
 *
 * Test code only: static functions, no allocation, the caller's buffer.
 */
#ifndef CN2_TESTS_BECH32_WRITE_H
#define CN2_TESTS_BECH32_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char bech32w_charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t
bech32w_polymod(uint32_t chk, unsigned v)
{
	static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
	uint32_t top = chk >> 25;

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

static unsigned char
bech32w_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * Write "<hrp>1<data><checksum>" into out[0..cap), NUL-terminated. hrp is
 * any text, data bech32 letters of either case (the checksum is computed
 * on lower case, as readers do, and written in lower case). Returns 0, or
 * -1 if data has another character or out is too small.
 */
static int
bech32_write(const char *hrp, size_t hlen, const char *data, size_t dlen, char *out, size_t cap)
{
	uint32_t chk = 1;
	const char *c;

	if (hlen + dlen + 8 > cap)
		return -1;
	for (size_t i = 0; i < hlen; i++)
		chk = bech32w_polymod(chk, bech32w_lower((unsigned char)hrp[i]) >> 5);
	chk = bech32w_polymod(chk, 0);
	for (size_t i = 0; i < hlen; i++)
		chk = bech32w_polymod(chk, bech32w_lower((unsigned char)hrp[i]) & 31);
	for (size_t i = 0; i < dlen; i++) {
		unsigned char ch = bech32w_lower((unsigned char)data[i]);

		if (ch == '\0' || (c = strchr(bech32w_charset, ch)) == NULL)
			return -1;
		chk = bech32w_polymod(chk, (unsigned)(c - bech32w_charset));
	}
	for (int i = 0; i < 6; i++)
		chk = bech32w_polymod(chk, 0);
	chk ^= 1;
	memcpy(out, hrp, hlen);
	out[hlen] = '1';
	memcpy(out + hlen + 1, data, dlen);
	for (int i = 0; i < 6; i++)
		out[hlen + 1 + dlen + (size_t)i] = bech32w_charset[(chk >> (5 * (5 - i))) & 31];
	out[hlen + dlen + 7] = '\0';
	return 0;
}

#endif
