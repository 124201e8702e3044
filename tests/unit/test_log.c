/*
 * test_log.c — the log line format, level filtering, control-character
 * replacement, errno suffixes, long lines, level names, and fatal().
 *
 * stderr is pointed at a temporary file while a log call runs and put back
 * before anything is asserted, so a failing assertion never loses its own
 * message. fatal() runs in a forked child; stdio is flushed before each fork
 * so the child cannot print the parent's buffered test output again.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define IDENT "cn2-test"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

static int saved_stderr = -1;
static int capture_fd = -1;

/* Point stderr at a fresh temporary file. */
static void
capture_start(void)
{
	char path[] = "/tmp/cn2-test-log-XXXXXX";

	assert_true((capture_fd = mkstemp(path)) >= 0);
	unlink(path);
	assert_true((saved_stderr = dup(STDERR_FILENO)) >= 0);
	assert_true(dup2(capture_fd, STDERR_FILENO) >= 0);
}

/* Put stderr back and return what was written (NUL-terminated) and its length. */
static size_t
capture_end(char *out, size_t cap)
{
	ssize_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	n = pread(capture_fd, out, cap - 1, 0);
	close(capture_fd);
	assert_true(n >= 0);
	out[n] = '\0';
	return (size_t)n;
}

static int
group_setup(void **state)
{
	(void)state;
	log_set_ident(IDENT);
	return 0;
}

static int
reset_level(void **state)
{
	(void)state;
	log_set_level(LOG_LVL_INFO);
	return 0;
}

/* Runs first, before anything changes the level: info passes, debug does not. */
static void
test_default_level(void **state)
{
	char out[2048], want[256];

	(void)state;
	capture_start();
	log_debug("not shown");
	log_info("shown");
	capture_end(out, sizeof(out));
	snprintf(want, sizeof(want), "<6>" IDENT ": %s: shown\n", __func__);
	assert_string_equal(out, want);
}

static void
test_format(void **state)
{
	char out[2048], want[1024];

	(void)state;
	log_set_level(LOG_LVL_DEBUG);
	capture_start();
	log_err("e %d", 3);
	log_warnx("w %s", "x");
	log_notice("n");
	log_info("hello %s %d", "world", 42);
	log_debug("d%c", '!');
	capture_end(out, sizeof(out));
	snprintf(want, sizeof(want),
	    "<3>" IDENT ": %s: e 3\n<4>" IDENT ": %s: w x\n<5>" IDENT ": %s: n\n"
	    "<6>" IDENT ": %s: hello world 42\n<7>" IDENT ": %s: d!\n",
	    __func__, __func__, __func__, __func__, __func__);
	assert_string_equal(out, want);
}

static void
test_levels(void **state)
{
	char out[2048];
	int bad = 0;

	(void)state;
	for (int set = LOG_LVL_ERR; set <= LOG_LVL_DEBUG; set++) {
		for (int lvl = LOG_LVL_ERR; lvl <= LOG_LVL_DEBUG; lvl++) {
			char want[64];

			log_set_level(set);
			capture_start();
			log_emit(lvl, "fn", 0, "at %d", lvl);
			capture_end(out, sizeof(out));
			if (lvl <= set)
				snprintf(want, sizeof(want), "<%d>" IDENT ": fn: at %d\n", lvl, lvl);
			else
				want[0] = '\0';
			EXPECT(bad, strcmp(out, want) == 0, "level %d, message at %d: \"%s\"", set,
			    lvl, out);
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_control_chars(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} rows[] = {
	    {"a\nb", "a?b"},
	    /* Split so that "??<" is not read as a trigraph. */
	    {"line\r\n<3>cn2: forged: entry", "line?" "?<3>cn2: forged: entry"},
	    {"\x1b[31mred\x1b[0m", "?[31mred?[0m"},
	    {"tab\there", "tab?here"},
	    {"bell\a del\x7f", "bell? del?"},
	    {"\x01\x02\x1f", "???"},
	    {"caf\xc3\xa9 ok", "caf\xc3\xa9 ok"}, /* bytes of UTF-8 are not control characters */
	    {"plain", "plain"},
	};
	char out[2048], want[512];
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		capture_start();
		log_info("peer said %s.", rows[i].in);
		capture_end(out, sizeof(out));
		snprintf(want, sizeof(want), "<6>" IDENT ": %s: peer said %s.\n", __func__,
		    rows[i].out);
		EXPECT(bad, strcmp(out, want) == 0, "row %zu: got \"%s\"", i, out);
	}
	/* The format string itself is cleaned the same way. */
	capture_start();
	log_warnx("two\nlines");
	capture_end(out, sizeof(out));
	snprintf(want, sizeof(want), "<4>" IDENT ": %s: two?lines\n", __func__);
	EXPECT(bad, strcmp(out, want) == 0, "format string: got \"%s\"", out);
	assert_int_equal(bad, 0);
}

static void
test_errno(void **state)
{
	char out[2048], want[1024];
	int after_warn, after_warnx;

	(void)state;
	capture_start();
	errno = ENOENT;
	log_warn("open %s", "x.db");
	after_warn = errno;
	errno = EACCES;
	log_warnx("no suffix");
	after_warnx = errno;
	errno = EIO;
	log_info("no suffix either");
	capture_end(out, sizeof(out));
	snprintf(want, sizeof(want),
	    "<4>" IDENT ": %s: open x.db: %s\n<4>" IDENT ": %s: no suffix\n"
	    "<6>" IDENT ": %s: no suffix either\n",
	    __func__, strerror(ENOENT), __func__, __func__);
	assert_string_equal(out, want);
	/* Logging must not disturb the errno the caller is about to use. */
	assert_int_equal(after_warn, ENOENT);
	assert_int_equal(after_warnx, EACCES);

	/* Not even when the write itself fails (stderr closed: EBADF). */
	assert_true((saved_stderr = dup(STDERR_FILENO)) >= 0);
	close(STDERR_FILENO);
	errno = ENOENT;
	log_warnx("lost");
	after_warnx = errno;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	assert_int_equal(after_warnx, ENOENT);
}

/* A message longer than a line: cut, one newline at the very end, no NUL. */
static void
test_long_line(void **state)
{
	char big[5000], out[8192], prefix[128];
	size_t n, plen;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	plen = (size_t)snprintf(prefix, sizeof(prefix), "<4>" IDENT ": %s: ", __func__);
	for (int with_errno = 0; with_errno < 2; with_errno++) {
		capture_start();
		errno = ENOENT;
		if (with_errno)
			log_warn("%s", big);
		else
			log_warnx("%s", big);
		n = capture_end(out, sizeof(out));
		assert_int_equal(n, 1023);
		assert_memory_equal(out, prefix, plen);
		assert_int_equal(out[n - 1], '\n');
		assert_null(memchr(out, '\n', n - 1));
		assert_int_equal(strlen(out), n);
		assert_int_equal(strspn(out + plen, "x"), n - 1 - plen);
	}
}

static void
test_level_parse(void **state)
{
	static const struct {
		const char *name;
		int level;
	} rows[] = {
	    {"err", LOG_LVL_ERR},
	    {"warning", LOG_LVL_WARNING},
	    {"notice", LOG_LVL_NOTICE},
	    {"info", LOG_LVL_INFO},
	    {"debug", LOG_LVL_DEBUG},
	    {"", -1},
	    {"warn", -1},
	    {"error", -1},
	    {"INFO", -1},
	    {"debug ", -1},
	    {" info", -1},
	    {"6", -1},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT(bad, log_level_parse(rows[i].name) == rows[i].level, "\"%s\"", rows[i].name);
	assert_int_equal(bad, 0);
}

/* Run fatal or fatalx in a child; its exit status and what it wrote. */
static int
run_fatal(int with_errno, char *out, size_t cap)
{
	char path[] = "/tmp/cn2-test-log-XXXXXX";
	int fd, status;
	pid_t pid;
	ssize_t n;

	assert_true((fd = mkstemp(path)) >= 0);
	unlink(path);
	fflush(stdout);
	fflush(stderr);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		errno = EACCES;
		if (with_errno)
			fatal("cannot %s", "open");
		fatalx("broken %d", 7);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	n = pread(fd, out, cap - 1, 0);
	close(fd);
	assert_true(n >= 0);
	out[n] = '\0';
	return status;
}

static void
test_fatal(void **state)
{
	char out[2048], want[512];
	int status;

	(void)state;
	status = run_fatal(1, out, sizeof(out));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	snprintf(want, sizeof(want), "<3>" IDENT ": run_fatal: cannot open: %s\n",
	    strerror(EACCES));
	assert_string_equal(out, want);

	status = run_fatal(0, out, sizeof(out));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_string_equal(out, "<3>" IDENT ": run_fatal: broken 7\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_level),
	    cmocka_unit_test_setup(test_format, reset_level),
	    cmocka_unit_test_setup(test_levels, reset_level),
	    cmocka_unit_test_setup(test_control_chars, reset_level),
	    cmocka_unit_test_setup(test_errno, reset_level),
	    cmocka_unit_test_setup(test_long_line, reset_level),
	    cmocka_unit_test_setup(test_level_parse, reset_level),
	    cmocka_unit_test_setup(test_fatal, reset_level),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
