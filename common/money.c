/*
 * money.c — integer micro-US-dollar arithmetic, parsing and formatting.
 *
 * Security stance: all arithmetic goes through the compiler's checked
 * builtins or exact 128-bit intermediates; an overflow is an error the
 * caller must handle, never a wrapped balance. Parsers walk the string once,
 * reject any byte outside their grammar and check for overflow per digit.
 */
#include "common/money.h"

#include <inttypes.h>
#include <stdio.h>

bool
money_add(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return false;
	*out = r;
	return true;
}

bool
money_sub(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return false;
	*out = r;
	return true;
}

bool
money_mul(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_mul_overflow(a, b, &r))
		return false;
	*out = r;
	return true;
}

bool
money_mul_ratio_ceil(int64_t amount, int64_t num, int64_t den, int64_t *out)
{
	__int128 p, q;

	if (amount < 0 || num < 0 || den <= 0)
		return false;
	/* Both factors are below 2^63, so the product fits in 126 bits. */
	p = (__int128)amount * num;
	q = p / den + (p % den != 0);
	if (q > INT64_MAX)
		return false;
	*out = (int64_t)q;
	return true;
}

bool
money_premium_part(int64_t paid, int64_t *out)
{
	if (paid < 0)
		return false;
	*out = paid - paid / MONEY_PREMIUM_NUM * MONEY_PREMIUM_DEN -
	    (paid % MONEY_PREMIUM_NUM * MONEY_PREMIUM_DEN) / MONEY_PREMIUM_NUM;
	return true;
}

bool
money_div_ceil(int64_t a, int64_t b, int64_t *out)
{
	if (a < 0 || b <= 0)
		return false;
	*out = a / b + (a % b != 0);
	return true;
}

/*
 * Parse s[0..len) as "0" or [1-9][0-9]* into *out, rejecting the empty
 * string and anything above INT64_MAX.
 */
static int
money_parse_digits(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || (s[0] == '0' && len > 1))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
			return -1;
	}
	*out = v;
	return 0;
}

int
money_parse_units(const char *s, int64_t *out)
{
	size_t len = 0;

	if (s == NULL)
		return -1;
	/* An amount longer than INT64_MAX's 19 digits is rejected unread. */
	while (len < 20 && s[len] != '\0')
		len++;
	if (len == 20)
		return -1;
	return money_parse_digits(s, len, out);
}

/* Parse 1..6 fraction digits (leading zeros allowed) as µUSD. */
static int
money_parse_fraction(const char *f, int64_t *out)
{
	int64_t v = 0;
	size_t k;

	for (k = 0; f[k] != '\0'; k++) {
		if (k == 6 || f[k] < '0' || f[k] > '9')
			return -1;
		v = v * 10 + (f[k] - '0');
	}
	if (k == 0)
		return -1;
	for (; k < 6; k++)
		v *= 10;
	*out = v;
	return 0;
}

int
money_parse_usd(const char *s, int64_t *out)
{
	int64_t whole, frac = 0, v;
	size_t ilen = 0;

	if (s == NULL)
		return -1;
	while (ilen < 20 && s[ilen] != '\0' && s[ilen] != '.')
		ilen++;
	if (ilen == 20 || money_parse_digits(s, ilen, &whole) == -1)
		return -1;
	if (s[ilen] == '.' && money_parse_fraction(s + ilen + 1, &frac) == -1)
		return -1;
	if (!money_mul(whole, MONEY_MICRO_PER_USD, &v) || !money_add(v, frac, &v))
		return -1;
	*out = v;
	return 0;
}

int
money_format_usd(int64_t micro, char *buf, size_t cap)
{
	uint64_t mag;
	int n;

	/* Negate in unsigned arithmetic so INT64_MIN has a magnitude too. */
	mag = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
	n = snprintf(buf, cap, "%s%" PRIu64 ".%06" PRIu64, micro < 0 ? "-" : "",
	    mag / MONEY_MICRO_PER_USD, mag % MONEY_MICRO_PER_USD);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}
