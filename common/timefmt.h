/*
 * timefmt.h — clocks and RFC 3339 timestamps.
 *
 * Security stance: rfc3339_parse reads outside input (challenge "expires",
 * webhook payloads). It accepts only the full RFC 3339 date-time grammar,
 * reads no byte past n, and never consults the TZ environment or the C
 * library's time zone state: the calendar arithmetic is done here, in UTC.
 * Years are limited to 0000..9999, the four digits RFC 3339 allows.
 */
#ifndef CN2_TIMEFMT_H
#define CN2_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t time_now_ms(void);

/* Milliseconds on CLOCK_MONOTONIC: only differences are meaningful. */
int64_t time_mono_ms(void);

/* Longest string rfc3339_format writes, NUL included. */
#define RFC3339_BUFSZ 21

/*
 * Write unix_s as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into buf, NUL-terminated.
 * Returns the length (20), or -1 if cap is too small or the year would fall
 * outside 0000..9999.
 */
int rfc3339_format(int64_t unix_s, char *buf, size_t cap);

/*
 * Parse an RFC 3339 date-time from s[0..n) (no NUL needed) into seconds
 * since the epoch. Accepts 'T' or 't', an optional fraction of any length
 * (truncated), 'Z', 'z' or a +HH:MM / -HH:MM offset. A leap second (:60) is
 * read as :59. Returns 0, or -1 on anything else, including surrounding
 * whitespace and trailing bytes; *unix_s is untouched on error.
 */
int rfc3339_parse(const char *s, size_t n, int64_t *unix_s);

#endif
