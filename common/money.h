/*
 * money.h — amounts as integer micro-US-dollars (int64_t, 1 µUSD = 1e-6 USD).
 *
 * Security stance: money is never a float. Every operation reports overflow
 * instead of wrapping, and every rounding helper rounds up, in the
 * platform's favour, so a sum of fees can never come out short. The parsers
 * read prices and MPP amounts from outside and accept one spelling per
 * value: no sign, no exponent, no spaces, no superfluous leading zeros.
 * Nothing here allocates.
 */
#ifndef CN2_MONEY_H
#define CN2_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MONEY_MICRO_PER_USD 1000000

/* *out = a + b, a - b, a * b. False on overflow (then *out is untouched). */
bool money_add(int64_t a, int64_t b, int64_t *out);
bool money_sub(int64_t a, int64_t b, int64_t *out);
bool money_mul(int64_t a, int64_t b, int64_t *out);

/*
 * *out = ceil(amount * num / den), computed exactly in 128 bits so only the
 * result has to fit. For fees in basis points (num = bps, den = 10000), the
 * premium factor (5/4) and conversions to cents or sats. False if amount or
 * num is negative, den <= 0, or the result exceeds INT64_MAX.
 */
bool money_mul_ratio_ceil(int64_t amount, int64_t num, int64_t den, int64_t *out);

/*
 * The premium pool's factor: a premium price is ceil(standard × 5/4). The
 * router prices with it; payments splits a premium payment back with
 * money_premium_part.
 */
#define MONEY_PREMIUM_NUM 5
#define MONEY_PREMIUM_DEN 4

/*
 * The surcharge inside a premium-pool payment of paid µUSD: paid minus the
 * largest standard price it covers, paid - floor(paid × 4/5) = ceil(paid / 5),
 * rounded in the platform's favour like every fee. Whatever the router
 * quoted, standard + surcharge <= paid. False if paid < 0.
 */
bool money_premium_part(int64_t paid, int64_t *out);

/* *out = ceil(a / b) for a >= 0, b > 0; false otherwise. */
bool money_div_ceil(int64_t a, int64_t b, int64_t *out);

/*
 * Parse a US dollar decimal ("3", "1.25", "0.000125") into µUSD. Grammar:
 * ("0" | [1-9][0-9]*) ["." [0-9]{1,6}]. Returns 0, or -1 on anything else or
 * on overflow; *out is untouched on error.
 */
int money_parse_usd(const char *s, int64_t *out);

/*
 * Longest string money_format_usd writes, NUL included:
 * "-9223372036854.775808".
 */
#define MONEY_USD_BUFSZ 22

/*
 * Write micro as dollars with exactly six decimals ("0.001250", "-1.500000")
 * into buf, NUL-terminated. Returns the length, or -1 if cap is too small.
 */
int money_format_usd(int64_t micro, char *buf, size_t cap);

/*
 * Parse an MPP amount: a decimal integer in base units ("1250"), "0" or
 * [1-9][0-9]*, at most INT64_MAX. Returns 0 or -1; *out untouched on error.
 */
int money_parse_units(const char *s, int64_t *out);

#endif
