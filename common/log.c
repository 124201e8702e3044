/*
 * log.c — "<N>ident: function: message" lines on stderr.
 *
 * One write(2) per line so lines from concurrent processes sharing a pipe
 * never interleave. Control characters in messages are replaced, so a peer
 * or client cannot forge log lines through a string we echo.
 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int log_max = LOG_LVL_INFO;
static const char *log_ident = "cn2";

void
log_set_level(int level)
{
	log_max = level;
}

void
log_set_ident(const char *ident)
{
	log_ident = ident;
}

int
log_level_parse(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
	    {"err", LOG_LVL_ERR},   {"warning", LOG_LVL_WARNING}, {"notice", LOG_LVL_NOTICE},
	    {"info", LOG_LVL_INFO}, {"debug", LOG_LVL_DEBUG},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0)
			return names[i].level;
	return -1;
}

static void log_vemit(int level, const char *func, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void
log_vemit(int level, const char *func, int errnum, const char *fmt, va_list ap)
{
	char line[1024];
	int n, m;

	n = snprintf(line, sizeof(line), "<%d>%s: %s: ", level, log_ident, func);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n = (size_t)(n + m) >= sizeof(line) - 1 ? (int)sizeof(line) - 2 : n + m;
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	if (errnum != 0)
		n += snprintf(line + n, sizeof(line) - 1 - (size_t)n, ": %s", strerror(errnum));
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

void
log_emit(int level, const char *func, int with_errno, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	log_vemit(level, func, with_errno ? saved : 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal_at(const char *func, int with_errno, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERR, func, with_errno ? saved : 0, fmt, ap);
	va_end(ap);
	exit(1);
}
