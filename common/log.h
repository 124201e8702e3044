/*
 * log.h — one logging interface for every cn2 process.
 *
 * Lines go to stderr, each starting with the syslog priority prefix "<N>" so
 * journald files them at the right level, then the function name, then the
 * message. Nothing here knows what a secret is: callers must never pass a key,
 * a credential, a receipt secret, a JWT or a request/response body.
 */
#ifndef CN2_LOG_H
#define CN2_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* Messages above this priority number are dropped. Default LOG_LVL_INFO. */
void log_set_level(int level);
int log_level_parse(const char *name); /* "debug".."err" → level, -1 if unknown */
/* Prefix every line with this process name (not copied; must outlive logging). */
void log_set_ident(const char *ident);

void log_emit(int level, const char *func, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_emit(LOG_LVL_DEBUG, __func__, 0, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LVL_INFO, __func__, 0, __VA_ARGS__)
#define log_notice(...) log_emit(LOG_LVL_NOTICE, __func__, 0, __VA_ARGS__)
/* log_warn appends strerror(errno); log_warnx does not. */
#define log_warn(...) log_emit(LOG_LVL_WARNING, __func__, 1, __VA_ARGS__)
#define log_warnx(...) log_emit(LOG_LVL_WARNING, __func__, 0, __VA_ARGS__)
#define log_err(...) log_emit(LOG_LVL_ERR, __func__, 0, __VA_ARGS__)

/* fatal: broken own state. Logs at LOG_ERR and exits 1 (systemd restarts us). */
void fatal_at(const char *func, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define fatal(...) fatal_at(__func__, 1, __VA_ARGS__)
#define fatalx(...) fatal_at(__func__, 0, __VA_ARGS__)

#endif
