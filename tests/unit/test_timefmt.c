/*
 * test_timefmt.c — RFC 3339 parsing and formatting, table-driven, plus a
 * sweep that checks the calendar arithmetic against the C library's
 * gmtime_r over the whole 0000..9999 range, and sanity checks of the clocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/timefmt.h"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

static const struct {
	const char *s;
	int64_t want;
} valid[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"1969-12-31T23:59:59Z", -1},
    {"2026-11-21T12:05:00Z", 1795262700},
    {"2025-01-06T12:00:00Z", 1736164800},
    {"0000-01-01T00:00:00Z", -62167219200},
    {"0001-01-01T00:00:00Z", -62135596800},
    {"9999-12-31T23:59:59Z", 253402300799},
    {"2000-02-29T00:00:00Z", 951782400},
    {"1600-02-29T23:59:59Z", -11670912001},
    {"2024-02-29T12:00:00z", 1709208000},
    {"2100-03-01T00:00:00Z", 4107542400},
    {"1900-03-01T00:00:00Z", -2203891200},
    {"2026-02-01T00:00:00Z", 1769904000},
    {"2026-11-21t12:05:00Z", 1795262700},
    {"2026-11-21T12:05:00.1Z", 1795262700},
    {"2026-11-21T12:05:00.999999999999999999999Z", 1795262700},
    {"1969-12-31T23:59:59.5+00:00", -1},
    {"2026-11-21T12:05:00+01:00", 1795259100},
    {"2026-11-21T12:05:00-05:30", 1795282500},
    {"2026-11-21T00:30:00+01:00", 1795217400},
    {"2026-11-21T12:05:00-00:00", 1795262700},
    {"2026-11-21T12:05:00.25+00:00", 1795262700},
    {"2026-11-21T12:05:00+23:59", 1795262700 - 86340},
    /* RFC 3339 section 5.8 examples; leap seconds read as :59. */
    {"1985-04-12T23:20:50.52Z", 482196050},
    {"1996-12-19T16:39:57-08:00", 851042397},
    {"1990-12-31T23:59:60Z", 662687999},
    {"1990-12-31T15:59:60-08:00", 662687999},
    {"1937-01-01T12:00:27.87+00:20", -1041337173},
    {"2016-12-31T23:59:60Z", 1483228799},
};

static const char *const invalid[] = {
    "",
    "2026",
    "2026-11-21",
    "2026-11-21T",
    "2026-11-21T12:05Z",
    "2026-11-21T12:05:00",
    "2026-11-21T12:05:00.5",
    "2026-11-21 12:05:00Z",
    " 2026-11-21T12:05:00Z",
    "2026-11-21T12:05:00Z ",
    "2026-11-21T12:05:00Z\n",
    "2026-11-21T12:05:00Zx",
    "2026-11-21T12:05:00ZZ",
    "2026-11-21T12:05:00.Z",
    "2026-11-21T12:05:00,5Z",
    "2026-11-21T12:05:00.5.5Z",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2026-01-32T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-11-21T24:00:00Z",
    "2026-11-21T12:60:00Z",
    "2026-11-21T12:05:61Z",
    "2026-11-21T12:05:00+24:00",
    "2026-11-21T12:05:00+01:60",
    "2026-11-21T12:05:00+0100",
    "2026-11-21T12:05:00+01",
    "2026-11-21T12:05:00+1:00",
    "2026-11-21T12:05:00 +01:00",
    "2026-1-21T12:05:00Z",
    "2026-11-21T1:05:00Z",
    "20261121T120500Z",
    "+2026-11-21T12:05:00Z",
    "-0001-11-21T12:05:00Z",
    "12026-11-21T12:05:00Z",
    "2026-11-21T12:05:00UTC",
    "2026/11/21T12:05:00Z",
    "2026-11-21T12-05-00Z",
    "2O26-11-21T12:05:00Z",
    "2026-11-21T12:05:0aZ",
};

static void
test_parse_valid(void **state)
{
	int64_t got;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		got = 12345;
		EXPECT(bad, rfc3339_parse(valid[i].s, strlen(valid[i].s), &got) == 0,
		    "rejected %s", valid[i].s);
		EXPECT(bad, got == valid[i].want, "%s: got %lld want %lld", valid[i].s,
		    (long long)got, (long long)valid[i].want);
	}
	assert_int_equal(bad, 0);
}

static void
test_parse_invalid(void **state)
{
	int64_t got;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		got = 12345;
		EXPECT(bad, rfc3339_parse(invalid[i], strlen(invalid[i]), &got) == -1,
		    "accepted \"%s\"", invalid[i]);
		EXPECT(bad, got == 12345, "\"%s\": output touched on error", invalid[i]);
	}
	assert_int_equal(bad, 0);
}

static void
test_parse_bounds(void **state)
{
	static const char s[] = "2026-11-21T12:05:00Zjunk";
	int64_t got;

	(void)state;
	/* Only n bytes are read: a prefix parses, a cut-short one does not. */
	assert_int_equal(rfc3339_parse(s, 20, &got), 0);
	assert_int_equal(got, 1795262700);
	for (size_t n = 0; n < 20; n++)
		assert_int_equal(rfc3339_parse(s, n, &got), -1);
	assert_int_equal(rfc3339_parse(s, 21, &got), -1);
	/* An embedded NUL is a byte like any other. */
	assert_int_equal(rfc3339_parse("2026-11-21T12:05:00Z", 21, &got), -1);
	assert_int_equal(rfc3339_parse("2026-11-21T12:05:00.\0Z", 22, &got), -1);
	assert_int_equal(rfc3339_parse(NULL, 0, &got), -1);
}

static const struct {
	int64_t t;
	const char *want; /* NULL: out of range */
} formats[] = {
    {0, "1970-01-01T00:00:00Z"},
    {-1, "1969-12-31T23:59:59Z"},
    {1795262700, "2026-11-21T12:05:00Z"},
    {951782400, "2000-02-29T00:00:00Z"},
    {951868799, "2000-02-29T23:59:59Z"},
    {4107542399, "2100-02-28T23:59:59Z"},
    {-11670912001, "1600-02-29T23:59:59Z"},
    {-62167219200, "0000-01-01T00:00:00Z"},
    {253402300799, "9999-12-31T23:59:59Z"},
    {253402300800, NULL},
    {-62167219201, NULL},
    {INT64_MAX, NULL},
    {INT64_MIN, NULL},
};

static void
test_format(void **state)
{
	char buf[RFC3339_BUFSZ + 8];
	int bad = 0, n;

	(void)state;
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		n = rfc3339_format(formats[i].t, buf, sizeof(buf));
		if (formats[i].want == NULL)
			EXPECT(bad, n == -1, "%lld formatted", (long long)formats[i].t);
		else
			EXPECT(bad, n == 20 && strcmp(buf, formats[i].want) == 0,
			    "%lld: got %d \"%.20s\" want %s", (long long)formats[i].t, n, buf,
			    formats[i].want);
	}
	assert_int_equal(rfc3339_format(0, buf, RFC3339_BUFSZ), 20);
	assert_int_equal(rfc3339_format(0, buf, RFC3339_BUFSZ - 1), -1);
	assert_int_equal(rfc3339_format(0, buf, 0), -1);
	assert_int_equal(bad, 0);
}

static void
test_sweep(void **state)
{
	const int64_t lo = -62167219200, hi = 253402300799;
	char buf[RFC3339_BUFSZ], want[64];
	int64_t t, back;
	struct tm tm;
	int bad = 0;

	(void)state;
	/*
	 * A prime stride visits every month, leap day and time of day across
	 * the range; gmtime_r is an independent oracle for the calendar.
	 */
	for (t = lo; t <= hi && bad < 10; t += 7777777) {
		assert_non_null(gmtime_r(&(time_t){(time_t)t}, &tm));
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		EXPECT(bad, rfc3339_format(t, buf, sizeof(buf)) == 20 && strcmp(buf, want) == 0,
		    "%lld: got %s want %s", (long long)t, buf, want);
		EXPECT(bad, rfc3339_parse(want, strlen(want), &back) == 0 && back == t,
		    "%s parsed to %lld, want %lld", want, (long long)back, (long long)t);
	}
	assert_int_equal(bad, 0);
}

static void
test_clocks(void **state)
{
	int64_t now, m1, m2;

	(void)state;
	now = time_now_ms();
	/* Between 2023 and 2100, and in step with time(2). */
	assert_true(now > 1672531200000LL && now < 4102444800000LL);
	assert_true(now / 1000 - (int64_t)time(NULL) <= 2 && (int64_t)time(NULL) - now / 1000 <= 2);
	m1 = time_mono_ms();
	m2 = time_mono_ms();
	assert_true(m2 >= m1);
	assert_true(m1 >= 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid),
	    cmocka_unit_test(test_parse_invalid),
	    cmocka_unit_test(test_parse_bounds),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_sweep),
	    cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
