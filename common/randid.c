/*
 * randid.c — unguessable identifiers. See randid.h.
 */
#include "common/randid.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "common/b64url.h"

int
randid_make(const char *prefix, char *buf, size_t cap)
{
	uint8_t raw[16];
	size_t plen = strlen(prefix);
	ssize_t n;

	if (cap > 0)
		buf[0] = '\0';
	if (plen + RANDID_CHARS + 1 > cap)
		return -1;
	do
		n = getrandom(raw, sizeof(raw), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(raw))
		return -1;
	memcpy(buf, prefix, plen);
	if (b64url_encode(raw, sizeof(raw), buf + plen, cap - plen) != RANDID_CHARS) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}
