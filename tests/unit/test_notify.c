/*
 * test_notify.c — sd_notify without libsystemd: a datagram socket bound at a
 * temporary path (and at an abstract name) stands in for systemd, and the
 * tests check what arrives, byte for byte; addresses notify_send must refuse;
 * and the $WATCHDOG_USEC / $WATCHDOG_PID table.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/notify.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

struct fx {
	char dir[64];
	char path[128];
	int fd; /* the "systemd" end */
};

/* A datagram socket at sa (addrlen bytes of it); the fd, or -1. */
static int
dgram_bind(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && bind(fd, (const struct sockaddr *)sa, len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One datagram within timeout_ms: its length, or -1 if none came. */
static ssize_t
dgram_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return recv(fd, buf, cap, MSG_DONTWAIT);
}

static int
fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cn2-test-notify-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/notify", fx->dir);
	if (strlen(fx->path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, fx->path, strlen(fx->path) + 1);
	if ((fx->fd = dgram_bind(&sa, sizeof(sa))) < 0)
		return -1;
	unsetenv("NOTIFY_SOCKET");
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;

	close(fx->fd);
	if (unlink(fx->path) != 0 || rmdir(fx->dir) != 0)
		rc = -1;
	free(fx);
	unsetenv("NOTIFY_SOCKET");
	return rc;
}

static const char *const states[] = {
    "READY=1",
    "WATCHDOG=1",
    "STATUS=serving 3 peers",
    "STOPPING=1",
    "READY=1\nSTATUS=two assignments",
};

/* Each state arrives as one datagram holding exactly its bytes. */
static int
states_arrive(int fd)
{
	char buf[256];
	int bad = 0;

	for (size_t i = 0; i < NELEM(states); i++) {
		ssize_t n;

		EXPECT(bad, notify_send(states[i]) == 0, "send \"%s\"", states[i]);
		n = dgram_recv(fd, buf, sizeof(buf), 1000);
		EXPECT(bad, n == (ssize_t)strlen(states[i]) && memcmp(buf, states[i], (size_t)n) == 0,
		    "\"%s\" arrived as %zd bytes", states[i], n);
	}
	EXPECT(bad, dgram_recv(fd, buf, sizeof(buf), 0) == -1, "an extra datagram arrived");
	return bad;
}

static void
test_path(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(setenv("NOTIFY_SOCKET", fx->path, 1), 0);
	assert_int_equal(states_arrive(fx->fd), 0);
}

static void
test_abstract(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char name[96];
	int fd;

	/* Unique per run: the temporary directory's random suffix and our pid. */
	snprintf(name, sizeof(name), "@cn2-test-%ld-%s", (long)getpid(), fx->dir + 5);
	memcpy(sa.sun_path, name, strlen(name));
	sa.sun_path[0] = '\0';
	fd = dgram_bind(&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
	assert_true(fd >= 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	assert_int_equal(states_arrive(fd), 0);
	close(fd);
}

/* Not under systemd: success, and nothing sent. */
static void
test_unset(void **state)
{
	struct fx *fx = *state;
	char buf[64];

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_send("READY=1"), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
	assert_int_equal(notify_send("READY=1"), 0);
	assert_int_equal(dgram_recv(fx->fd, buf, sizeof(buf), 100), -1);
}

static void
test_bad_address(void **state)
{
	static const char *const rows[] = {
	    "notify",
	    "./notify",
	    "run/systemd/notify",
	    "x@abstract",
	    "/nonexistent-cn2-dir/notify",
	};
	struct fx *fx = *state;
	char longpath[200], buf[64];
	int bad = 0, cwd;

	/* From inside the directory, the relative names do reach our socket. */
	assert_true((cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
	assert_int_equal(chdir(fx->dir), 0);
	for (size_t i = 0; i < NELEM(rows); i++) {
		assert_int_equal(setenv("NOTIFY_SOCKET", rows[i], 1), 0);
		EXPECT(bad, notify_send("READY=1") == -1, "\"%s\" accepted", rows[i]);
	}
	assert_int_equal(fchdir(cwd), 0);
	close(cwd);
	/* sun_path holds 108 bytes: a 108-byte path does not fit. */
	memset(longpath, 'a', sizeof(longpath));
	longpath[0] = '/';
	longpath[sizeof(((struct sockaddr_un *)0)->sun_path)] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	EXPECT(bad, notify_send("READY=1") == -1, "108-byte path accepted");
	longpath[0] = '@';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	EXPECT(bad, notify_send("READY=1") == -1, "108-byte abstract name accepted");
	EXPECT(bad, dgram_recv(fx->fd, buf, sizeof(buf), 100) == -1, "a datagram arrived");
	assert_int_equal(bad, 0);
}

enum { PID_UNSET, PID_OWN, PID_OTHER, PID_TEXT };

static void
test_watchdog(void **state)
{
	static const struct {
		const char *usec; /* NULL: unset */
		int pid;
		uint64_t want;
	} rows[] = {
	    {NULL, PID_UNSET, 0},
	    {NULL, PID_OWN, 0},
	    {"5000000", PID_UNSET, 5000000},
	    {"5000000", PID_OWN, 5000000},
	    {"5000000", PID_OTHER, 0},
	    {"5000000", PID_TEXT, 0},
	    {"1", PID_UNSET, 1},
	    {"18446744073709551615", PID_OWN, UINT64_MAX},
	    {"18446744073709551616", PID_UNSET, 0},
	    {"0", PID_UNSET, 0},
	    {"0", PID_OWN, 0},
	    {"", PID_UNSET, 0},
	    {"abc", PID_UNSET, 0},
	    {"12abc", PID_OWN, 0},
	    {"5000000 ", PID_UNSET, 0},
	};
	char pid[32];
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		uint64_t got;

		if (rows[i].usec != NULL)
			setenv("WATCHDOG_USEC", rows[i].usec, 1);
		else
			unsetenv("WATCHDOG_USEC");
		snprintf(pid, sizeof(pid), "%ld",
		    (long)getpid() + (rows[i].pid == PID_OTHER ? 1 : 0));
		if (rows[i].pid == PID_UNSET)
			unsetenv("WATCHDOG_PID");
		else
			setenv("WATCHDOG_PID", rows[i].pid == PID_TEXT ? "init" : pid, 1);
		got = notify_watchdog_usec();
		EXPECT(bad, got == rows[i].want, "row %zu (\"%s\"): got %llu", i,
		    rows[i].usec ? rows[i].usec : "unset", (unsigned long long)got);
	}
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_path, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_abstract, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unset, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_address, fx_setup, fx_teardown),
	    cmocka_unit_test(test_watchdog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
