/*
 * retry.c — the upstream's Retry-After, for the router: a 429 (or 503)
 * names how long the key should rest, and the OUTCOME carries it
 * (retry_after_s) so the router cools the key down that long and no longer.
 *
 * RFC 9110 §10.2.3: delay-seconds, or an HTTP-date (IMF-fixdate, the only
 * form senders may generate). Anything else counts as no Retry-After.
 *
 * Security stance: the head comes from an upstream, so it is read as
 * hostile: bounded lines, digits only, at most a day (OUTCOME's bound);
 * nothing is logged.
 */
#include "vault/vault.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#define RETRY_MAX 86400

/* delay-seconds: 1*DIGIT. */
static int64_t
delay_seconds(const char *v, size_t n)
{
	int64_t s = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		s = s * 10 + (v[i] - '0');
		if (s > RETRY_MAX)
			s = RETRY_MAX + 1; /* stays bounded however long the digits run */
	}
	return s;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", in seconds from now. */
static int64_t
http_date_delay(const char *v, size_t n, int64_t now)
{
	char buf[40], *end;
	struct tm tm;

	if (n != 29 || n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm)) == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm) - now;
}

uint32_t
vault_retry_after(const char *head, size_t len, int64_t now)
{
	const char *p = head, *end = head + len;

	while (p != NULL && p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		size_t n = (size_t)((eol != NULL ? eol : end) - p);

		if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
			const char *v = p + 12, *ve = p + n;
			int64_t s;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if ((s = delay_seconds(v, (size_t)(ve - v))) < 0)
				s = http_date_delay(v, (size_t)(ve - v), now);
			return s <= 0 ? 0 : s > RETRY_MAX ? RETRY_MAX : (uint32_t)s;
		}
		p = eol != NULL ? eol + 2 : NULL;
	}
	return 0;
}
