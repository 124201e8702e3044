/*
 * test_money.c — µUSD arithmetic, rounding and parsing, table-driven, with
 * the overflow boundaries at INT64_MAX and INT64_MIN in every table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/money.h"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct op_case {
	int64_t a, b;
	bool ok;
	int64_t want;
};

static const struct op_case add_cases[] = {
    {1, 2, true, 3},
    {-5, 3, true, -2},
    {INT64_MAX, 0, true, INT64_MAX},
    {INT64_MAX, 1, false, 0},
    {1, INT64_MAX, false, 0},
    {INT64_MIN, -1, false, 0},
    {INT64_MIN, 0, true, INT64_MIN},
    {INT64_MIN, INT64_MAX, true, -1},
    {INT64_MAX - 5, 5, true, INT64_MAX},
    {INT64_MIN, INT64_MIN, false, 0},
};

static const struct op_case sub_cases[] = {
    {5, 7, true, -2},
    {INT64_MIN, 1, false, 0},
    {INT64_MIN, 0, true, INT64_MIN},
    {0, INT64_MIN, false, 0},
    {-1, INT64_MIN, true, INT64_MAX},
    {INT64_MAX, -1, false, 0},
    {INT64_MAX, INT64_MAX, true, 0},
    {0, INT64_MAX, true, INT64_MIN + 1},
};

static const struct op_case mul_cases[] = {
    {6, 7, true, 42},
    {INT64_MAX, 1, true, INT64_MAX},
    {INT64_MIN, 1, true, INT64_MIN},
    {INT64_MIN, -1, false, 0},
    {-1, INT64_MIN, false, 0},
    {-1, INT64_MAX, true, INT64_MIN + 1},
    {0, INT64_MIN, true, 0},
    {3037000499, 3037000499, true, 9223372030926249001},
    {3037000500, 3037000500, false, 0},
    {2, 4611686018427387904, false, 0},
    {-2, 4611686018427387904, true, INT64_MIN},
    {INT64_MAX, 2, false, 0},
};

static int
run_ops(const char *name, bool (*fn)(int64_t, int64_t, int64_t *), const struct op_case *c,
    size_t n)
{
	int64_t got;
	bool ok;
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		got = 777;
		ok = fn(c[i].a, c[i].b, &got);
		EXPECT(bad, ok == c[i].ok, "%s(%lld, %lld): ok %d", name, (long long)c[i].a,
		    (long long)c[i].b, ok);
		EXPECT(bad, got == (c[i].ok ? c[i].want : 777), "%s(%lld, %lld): got %lld", name,
		    (long long)c[i].a, (long long)c[i].b, (long long)got);
	}
	return bad;
}

static void
test_add_sub_mul(void **state)
{
	int bad = 0;

	(void)state;
	bad += run_ops("add", money_add, add_cases, NELEM(add_cases));
	bad += run_ops("sub", money_sub, sub_cases, NELEM(sub_cases));
	bad += run_ops("mul", money_mul, mul_cases, NELEM(mul_cases));
	assert_int_equal(bad, 0);
}

static const struct {
	int64_t amount, num, den;
	bool ok;
	int64_t want;
} ratio_cases[] = {
    /* Fees in basis points. */
    {1000000, 250, 10000, true, 25000},
    {1, 250, 10000, true, 1},
    {39, 250, 10000, true, 1},
    {41, 250, 10000, true, 2},
    {0, 250, 10000, true, 0},
    {1000000, 0, 10000, true, 0},
    /* Premium pool, x1.25. */
    {1000, 5, 4, true, 1250},
    {1001, 5, 4, true, 1252},
    {1, 5, 4, true, 2},
    /* µUSD to cents (1 cent = 10000 µUSD), rounded up. */
    {1, 1, 10000, true, 1},
    {10000, 1, 10000, true, 1},
    {10001, 1, 10000, true, 2},
    /* The product overflows 64 bits but the result fits. */
    {INT64_MAX, 10000, 10000, true, INT64_MAX},
    {INT64_MAX, INT64_MAX, INT64_MAX, true, INT64_MAX},
    {INT64_MAX, INT64_MAX - 1, INT64_MAX, true, INT64_MAX - 1},
    {INT64_MAX, 2, 3, true, 6148914691236517205},
    {INT64_MAX, 1, 1, true, INT64_MAX},
    {INT64_MAX, 5, 4, false, 0},
    {INT64_MAX, INT64_MAX, 1, false, 0},
    {INT64_MAX, 10001, 10000, false, 0},
    /* Refused inputs. */
    {-1, 1, 1, false, 0},
    {INT64_MIN, 1, 1, false, 0},
    {1, -1, 1, false, 0},
    {1, 1, 0, false, 0},
    {1, 1, -1, false, 0},
    {1, 1, INT64_MIN, false, 0},
};

static void
test_mul_ratio_ceil(void **state)
{
	int64_t got;
	bool ok;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(ratio_cases); i++) {
		got = 777;
		ok = money_mul_ratio_ceil(ratio_cases[i].amount, ratio_cases[i].num,
		    ratio_cases[i].den, &got);
		EXPECT(bad, ok == ratio_cases[i].ok && got == (ok ? ratio_cases[i].want : 777),
		    "ratio(%lld * %lld / %lld): ok %d got %lld", (long long)ratio_cases[i].amount,
		    (long long)ratio_cases[i].num, (long long)ratio_cases[i].den, ok,
		    (long long)got);
	}
	assert_int_equal(bad, 0);
}

static const struct op_case div_cases[] = {
    {0, 1, true, 0},
    {1, 1, true, 1},
    {7, 2, true, 4},
    {8, 2, true, 4},
    {1, 3, true, 1},
    {INT64_MAX, 1, true, INT64_MAX},
    {INT64_MAX, 2, true, 4611686018427387904},
    {INT64_MAX, INT64_MAX, true, 1},
    {INT64_MAX - 1, INT64_MAX, true, 1},
    {-1, 1, false, 0},
    {1, 0, false, 0},
    {1, -1, false, 0},
    {INT64_MIN, -1, false, 0},
};

static void
test_div_ceil(void **state)
{
	(void)state;
	assert_int_equal(run_ops("div_ceil", money_div_ceil, div_cases, NELEM(div_cases)), 0);
}

static const struct {
	int64_t paid;
	bool ok;
	int64_t want;
} premium_cases[] = {
    {1250, true, 250},		      /* exactly 1000 × 5/4 */
    {1252, true, 251},		      /* ceil(1001 × 5/4): 1001 standard + 251 */
    {1251, true, 251},		      /* overpaid by one: 1000 standard still covered */
    {2, true, 1},		      /* ceil(1 × 5/4) */
    {5, true, 1},
    {4, true, 1},
    {1, true, 1},
    {0, true, 0},
    {INT64_MAX, true, 1844674407370955162}, /* ceil(INT64_MAX / 5), no overflow */
    {-1, false, 0},
    {INT64_MIN, false, 0},
};

/*
 * The surcharge is ceil(paid / 5), and splitting a quoted premium price
 * gives back exactly the standard price it was computed from: for every
 * standard price s in a range, paid = ceil(s × 5/4) splits into s + (paid − s).
 */
static void
test_premium_part(void **state)
{
	int64_t got, paid;
	bool ok;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(premium_cases); i++) {
		got = 777;
		ok = money_premium_part(premium_cases[i].paid, &got);
		EXPECT(bad, ok == premium_cases[i].ok && got == (ok ? premium_cases[i].want : 777),
		    "premium_part(%lld): ok %d got %lld", (long long)premium_cases[i].paid, ok,
		    (long long)got);
	}
	for (int64_t std = 1; std <= 100000; std++) {
		assert_true(money_mul_ratio_ceil(std, MONEY_PREMIUM_NUM, MONEY_PREMIUM_DEN, &paid));
		assert_true(money_premium_part(paid, &got));
		EXPECT(bad, paid - got == std,
		    "standard %lld, paid %lld: surcharge %lld", (long long)std, (long long)paid,
		    (long long)got);
	}
	assert_int_equal(bad, 0);
}

static const struct {
	const char *s;
	int rc;
	int64_t want;
} usd_cases[] = {
    {"0", 0, 0},
    {"3", 0, 3000000},
    {"1.25", 0, 1250000},
    {"0.000125", 0, 125},
    {"0.000001", 0, 1},
    {"0.5", 0, 500000},
    {"10.05", 0, 10050000},
    {"1.000000", 0, 1000000},
    {"0.0", 0, 0},
    {"9223372036854", 0, 9223372036854000000},
    {"9223372036854.775807", 0, INT64_MAX},
    {"9223372036854.775808", -1, 0},
    {"9223372036855", -1, 0},
    {"99999999999999999999", -1, 0},
    {"999999999999999999999999.5", -1, 0},
    {"1.0000001", -1, 0},
    {"0.0000001", -1, 0},
    {"", -1, 0},
    {".", -1, 0},
    {"1.", -1, 0},
    {".5", -1, 0},
    {"-1", -1, 0},
    {"+1", -1, 0},
    {"1e3", -1, 0},
    {"1E3", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"01", -1, 0},
    {"00", -1, 0},
    {"00.5", -1, 0},
    {"1,5", -1, 0},
    {"1..2", -1, 0},
    {"1.2.3", -1, 0},
    {"1.-5", -1, 0},
    {"0x10", -1, 0},
    {"inf", -1, 0},
    {"\xef\xbc\x91", -1, 0},
};

static void
test_parse_usd(void **state)
{
	int64_t got;
	int bad = 0, rc;

	(void)state;
	for (size_t i = 0; i < NELEM(usd_cases); i++) {
		got = 777;
		rc = money_parse_usd(usd_cases[i].s, &got);
		EXPECT(bad, rc == usd_cases[i].rc, "parse_usd(\"%s\"): rc %d", usd_cases[i].s, rc);
		EXPECT(bad, got == (rc == 0 ? usd_cases[i].want : 777),
		    "parse_usd(\"%s\"): got %lld", usd_cases[i].s, (long long)got);
	}
	assert_int_equal(money_parse_usd(NULL, &got), -1);
	assert_int_equal(bad, 0);
}

static const struct {
	int64_t v;
	const char *want;
} fmt_cases[] = {
    {0, "0.000000"},
    {1, "0.000001"},
    {-1, "-0.000001"},
    {1250, "0.001250"},
    {1000000, "1.000000"},
    {-1500000, "-1.500000"},
    {123456789, "123.456789"},
    {INT64_MAX, "9223372036854.775807"},
    {INT64_MIN + 1, "-9223372036854.775807"},
    {INT64_MIN, "-9223372036854.775808"},
};

static void
test_format_usd(void **state)
{
	char buf[MONEY_USD_BUFSZ];
	int64_t back;
	int bad = 0, n;
	size_t len;

	(void)state;
	for (size_t i = 0; i < NELEM(fmt_cases); i++) {
		len = strlen(fmt_cases[i].want);
		n = money_format_usd(fmt_cases[i].v, buf, sizeof(buf));
		EXPECT(bad, n == (int)len && strcmp(buf, fmt_cases[i].want) == 0,
		    "format(%lld): got %d \"%s\"", (long long)fmt_cases[i].v, n, n < 0 ? "" : buf);
		/* Room for the text and the NUL is enough; one byte less is not. */
		EXPECT(bad, money_format_usd(fmt_cases[i].v, buf, len + 1) == (int)len,
		    "format(%lld) into exact buffer", (long long)fmt_cases[i].v);
		EXPECT(bad, money_format_usd(fmt_cases[i].v, buf, len) == -1,
		    "format(%lld) into short buffer", (long long)fmt_cases[i].v);
		/* Non-negative amounts read back through the parser. */
		if (fmt_cases[i].v >= 0)
			EXPECT(bad, money_format_usd(fmt_cases[i].v, buf, sizeof(buf)) > 0 &&
				money_parse_usd(buf, &back) == 0 && back == fmt_cases[i].v,
			    "roundtrip of %s", fmt_cases[i].want);
	}
	assert_int_equal(bad, 0);
}

static const struct {
	const char *s;
	int rc;
	int64_t want;
} unit_cases[] = {
    {"0", 0, 0},
    {"1", 0, 1},
    {"1250", 0, 1250},
    {"1000000", 0, 1000000},
    {"9223372036854775807", 0, INT64_MAX},
    {"9223372036854775808", -1, 0},
    {"9999999999999999999", -1, 0},
    {"18446744073709551616", -1, 0},
    {"99999999999999999999999999", -1, 0},
    {"", -1, 0},
    {"00", -1, 0},
    {"01", -1, 0},
    {"+1", -1, 0},
    {"-1", -1, 0},
    {"1.0", -1, 0},
    {"1e3", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"12a", -1, 0},
    {"0x1", -1, 0},
};

static void
test_parse_units(void **state)
{
	int64_t got;
	int bad = 0, rc;

	(void)state;
	for (size_t i = 0; i < NELEM(unit_cases); i++) {
		got = 777;
		rc = money_parse_units(unit_cases[i].s, &got);
		EXPECT(bad, rc == unit_cases[i].rc, "parse_units(\"%s\"): rc %d", unit_cases[i].s,
		    rc);
		EXPECT(bad, got == (rc == 0 ? unit_cases[i].want : 777),
		    "parse_units(\"%s\"): got %lld", unit_cases[i].s, (long long)got);
	}
	assert_int_equal(money_parse_units(NULL, &got), -1);
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_sub_mul),
	    cmocka_unit_test(test_mul_ratio_ceil),
	    cmocka_unit_test(test_div_ceil),
	    cmocka_unit_test(test_premium_part),
	    cmocka_unit_test(test_parse_usd),
	    cmocka_unit_test(test_format_usd),
	    cmocka_unit_test(test_parse_units),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
