/*
 * utf8.c — strict UTF-8 validation and decoding (RFC 3629).
 *
 * Security stance: a sequence is accepted only in its one shortest form, never
 * as a surrogate half and never above U+10FFFF, so canonical forms built on
 * top of it (JCS, challenge ids) cannot be forked by alternative encodings.
 * Every read is bounded by the length the caller gave.
 */
#include "common/utf8.h"

/* Sequence length announced by a lead byte, 0 for a byte that cannot lead. */
static size_t
utf8_lead_len(uint8_t b, uint32_t *bits)
{
	if (b < 0x80) {
		*bits = b;
		return 1;
	}
	if ((b & 0xe0) == 0xc0) {
		*bits = b & 0x1f;
		return 2;
	}
	if ((b & 0xf0) == 0xe0) {
		*bits = b & 0x0f;
		return 3;
	}
	if ((b & 0xf8) == 0xf0) {
		*bits = b & 0x07;
		return 4;
	}
	return 0;
}

size_t
utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
	/* The smallest code point each length may encode: below it is overlong. */
	static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
	uint32_t c;
	size_t len, i;

	if (n == 0)
		return 0;
	len = utf8_lead_len(s[0], &c);
	if (len == 0 || len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min_cp[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

int
utf8_valid(const uint8_t *s, size_t n)
{
	uint32_t cp;
	size_t used;

	while (n > 0) {
		/* ASCII runs are the common case; skip the decoder for them. */
		if (s[0] < 0x80) {
			s++;
			n--;
			continue;
		}
		used = utf8_next(s, n, &cp);
		if (used == 0)
			return 0;
		s += used;
		n -= used;
	}
	return 1;
}
