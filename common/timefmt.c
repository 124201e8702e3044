/*
 * timefmt.c — clocks and RFC 3339 timestamps.
 *
 * Security stance: the parser walks a fixed grammar with explicit bounds and
 * validates every field range before any arithmetic; the calendar code is
 * pure integer math on the proleptic Gregorian calendar, so neither TZ nor
 * timegm(3) can change what a timestamp means.
 */
#include "common/timefmt.h"

#include <stdio.h>
#include <time.h>

#include "common/log.h"

/* Days from 0000-01-01 to 1970-01-01 in the proleptic Gregorian calendar. */
#define DAYS_0000_TO_1970 719528
#define SECS_PER_DAY 86400

/* Days before the first of each month in a common year. */
static const int month_start[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	/* Only an invalid clock id makes this fail: that is our bug, not input. */
	if (clock_gettime(id, &ts) == -1)
		fatal("clock_gettime");
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
time_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t
time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int64_t y, int m)
{
	static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Leap years in [0, y), for y >= 0 (year 0 is a leap year). */
static int64_t
leaps_before(int64_t y)
{
	return (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400;
}

/* Days from 0000-01-01 to y-m-d; y >= 0, m and d already validated. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t days = 365 * y + leaps_before(y) + month_start[m - 1] + d - 1;

	if (m > 2 && is_leap(y))
		days++;
	return days;
}

/* Inverse of days_from_civil for z >= 0. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t doy;
	int mon;

	/* 146097 days per 400 years gives a guess that is at most one off. */
	*y = z * 400 / 146097;
	while (days_from_civil(*y + 1, 1, 1) <= z)
		(*y)++;
	while (days_from_civil(*y, 1, 1) > z)
		(*y)--;
	doy = z - days_from_civil(*y, 1, 1);
	for (mon = 12; mon > 1; mon--)
		if (doy >= month_start[mon - 1] + (mon > 2 && is_leap(*y)))
			break;
	*m = mon;
	*d = (int)(doy - month_start[mon - 1] - (mon > 2 && is_leap(*y))) + 1;
}

int
rfc3339_format(int64_t unix_s, char *buf, size_t cap)
{
	const int64_t lo = -(int64_t)DAYS_0000_TO_1970 * SECS_PER_DAY;
	const int64_t hi = (days_from_civil(10000, 1, 1) - DAYS_0000_TO_1970) * SECS_PER_DAY;
	int64_t days, rem, y;
	int m, d, n;

	if (unix_s < lo || unix_s >= hi || cap < RFC3339_BUFSZ)
		return -1;
	days = unix_s / SECS_PER_DAY;
	rem = unix_s % SECS_PER_DAY;
	if (rem < 0) {
		rem += SECS_PER_DAY;
		days--;
	}
	civil_from_days(days + DAYS_0000_TO_1970, &y, &m, &d);
	n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, m, d,
	    (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

/* Read exactly width decimal digits at s[*i], advancing *i. */
static int
read_digits(const char *s, size_t n, size_t *i, int width, int *out)
{
	int v = 0;

	if (n - *i < (size_t)width)
		return -1;
	for (int k = 0; k < width; k++) {
		char c = s[*i + (size_t)k];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*i += (size_t)width;
	*out = v;
	return 0;
}

/* Expect the byte c at s[*i], advancing *i. */
static int
read_char(const char *s, size_t n, size_t *i, char c)
{
	if (*i >= n || s[*i] != c)
		return -1;
	(*i)++;
	return 0;
}

/* "YYYY-MM-DD", ranges checked, as days since 0000-01-01. */
static int
parse_date(const char *s, size_t n, size_t *i, int64_t *days)
{
	int y, m, d;

	if (read_digits(s, n, i, 4, &y) == -1 || read_char(s, n, i, '-') == -1 ||
	    read_digits(s, n, i, 2, &m) == -1 || read_char(s, n, i, '-') == -1 ||
	    read_digits(s, n, i, 2, &d) == -1)
		return -1;
	if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -1;
	*days = days_from_civil(y, m, d);
	return 0;
}

/* "HH:MM:SS[.frac]" as seconds into the day; a leap second counts as :59. */
static int
parse_time(const char *s, size_t n, size_t *i, int64_t *secs)
{
	int h, mi, sec;
	size_t start;

	if (read_digits(s, n, i, 2, &h) == -1 || read_char(s, n, i, ':') == -1 ||
	    read_digits(s, n, i, 2, &mi) == -1 || read_char(s, n, i, ':') == -1 ||
	    read_digits(s, n, i, 2, &sec) == -1)
		return -1;
	if (h > 23 || mi > 59 || sec > 60)
		return -1;
	if (sec == 60)
		sec = 59;
	if (*i < n && s[*i] == '.') {
		start = ++(*i);
		while (*i < n && s[*i] >= '0' && s[*i] <= '9')
			(*i)++;
		if (*i == start)
			return -1;
	}
	*secs = (int64_t)h * 3600 + mi * 60 + sec;
	return 0;
}

/* "Z", "z" or "+HH:MM" / "-HH:MM" as seconds east of UTC. */
static int
parse_offset(const char *s, size_t n, size_t *i, int64_t *off)
{
	int h, m, sign;

	if (*i >= n)
		return -1;
	if (s[*i] == 'Z' || s[*i] == 'z') {
		(*i)++;
		*off = 0;
		return 0;
	}
	if (s[*i] != '+' && s[*i] != '-')
		return -1;
	sign = s[*i] == '-' ? -1 : 1;
	(*i)++;
	if (read_digits(s, n, i, 2, &h) == -1 || read_char(s, n, i, ':') == -1 ||
	    read_digits(s, n, i, 2, &m) == -1)
		return -1;
	if (h > 23 || m > 59)
		return -1;
	*off = sign * ((int64_t)h * 3600 + m * 60);
	return 0;
}

int
rfc3339_parse(const char *s, size_t n, int64_t *unix_s)
{
	int64_t days, secs, off;
	size_t i = 0;

	if (s == NULL)
		return -1;
	if (parse_date(s, n, &i, &days) == -1)
		return -1;
	if (i >= n || (s[i] != 'T' && s[i] != 't'))
		return -1;
	i++;
	if (parse_time(s, n, &i, &secs) == -1 || parse_offset(s, n, &i, &off) == -1)
		return -1;
	if (i != n)
		return -1;
	*unix_s = (days - DAYS_0000_TO_1970) * SECS_PER_DAY + secs - off;
	return 0;
}
