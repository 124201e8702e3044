/*
 * test_daemon.c — the daemon skeleton in a child process: READY=1 on start,
 * WATCHDOG=1 from the loop when WATCHDOG_USEC asks, SIGHUP calling the
 * reload hook, SIGTERM calling the stop hook and STOPPING=1 with exit 0,
 * -n checking the configuration, and a bad configuration refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/notify.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

struct tcfg {
	int64_t answer;
};

static struct tcfg tcfg;
static const struct cfg_key tkeys[] = {
    {"answer", CFG_INT, offsetof(struct tcfg, answer), 0, 0, 100, "42", "a number"},
    CFG_END,
};
static const uint16_t ctl_types[] = {IPC_HEALTH};
static const struct ipc_peer_rule tpeers[] = {{ROLE_CTL, ctl_types, NF(ctl_types)}};
static int notify_fd = -1;

/* Hooks report through the notify socket, so the parent sees them in order. */
static void
say(const char *what)
{
	notify_send(what);
}

static int
t_reload(struct daemon *d, char *err, size_t errlen)
{
	(void)d;
	(void)err;
	(void)errlen;
	say("TEST=reload");
	return 0;
}

static void
t_stop(struct daemon *d)
{
	(void)d;
	say(tcfg.answer == 7 ? "TEST=stop-7" : "TEST=stop");
}

static const struct daemon_spec tspec = {
    .name = "testd",
    .role = ROLE_ROUTER,
    .summary = "a test daemon",
    .keys = tkeys,
    .cfg = &tcfg,
    .accept = tpeers,
    .naccept = NF(tpeers),
    .reload = t_reload,
    .stop = t_stop,
};

static char dir[64], sock[128], conf[128];

static int
setup(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	FILE *fp;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cn2-daemon-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock, sizeof(sock), "%s/notify", dir);
	snprintf(conf, sizeof(conf), "%s/testd.conf", dir);
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock) >= (int)sizeof(sa.sun_path))
		return -1;
	notify_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	if ((fp = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(fp, "runtime_dir = %s/run\nanswer = 7\nlog_level = warning\n", dir);
	return fclose(fp);
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	close(notify_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static pid_t
spawn(char **argv, int argc, const char *watchdog)
{
	pid_t pid = fork();

	if (pid == 0) {
		setenv("NOTIFY_SOCKET", sock, 1);
		if (watchdog != NULL)
			setenv("WATCHDOG_USEC", watchdog, 1);
		_exit(daemon_main(argc, argv, &tspec));
	}
	return pid;
}

/* The next datagram, or "" after 3 s. */
static const char *
next_note(void)
{
	static char buf[128];
	struct pollfd p = {notify_fd, POLLIN, 0};
	ssize_t n;

	buf[0] = '\0';
	if (poll(&p, 1, 3000) == 1 && (n = recv(notify_fd, buf, sizeof(buf) - 1, 0)) > 0)
		buf[n] = '\0';
	return buf;
}

static void
test_lifecycle(void **state)
{
	char a0[] = "cn2-testd", a1[] = "-f";
	char *argv[] = {a0, a1, conf, NULL};
	int status, watchdogs = 0;
	pid_t pid;

	(void)state;
	optind = 1;
	pid = spawn(argv, 3, "100000"); /* a 100 ms watchdog: pings every 50 ms */
	assert_true(pid > 0);
	assert_string_equal(next_note(), "READY=1");
	for (int i = 0; i < 3; i++)
		watchdogs += strcmp(next_note(), "WATCHDOG=1") == 0;
	assert_int_equal(watchdogs, 3);
	kill(pid, SIGHUP);
	/* Watchdog pings may come between: look for the reload sequence. */
	{
		int reloading = 0, reloaded = 0, ready = 0;

		for (int i = 0; i < 20 && !ready; i++) {
			const char *n = next_note();

			reloading |= strcmp(n, "RELOADING=1") == 0;
			reloaded |= reloading && strcmp(n, "TEST=reload") == 0;
			ready = reloaded && strcmp(n, "READY=1") == 0;
		}
		assert_true(ready);
	}
	kill(pid, SIGTERM);
	{
		int stopping = 0, stopped = 0;

		for (int i = 0; i < 20 && !stopped; i++) {
			const char *n = next_note();

			stopping |= strcmp(n, "STOPPING=1") == 0;
			/* The hook saw the configuration value from the file. */
			stopped = stopping && strcmp(n, "TEST=stop-7") == 0;
		}
		assert_true(stopped);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int
run_status(char **argv, int argc)
{
	int status;
	pid_t pid;

	optind = 1;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		_exit(daemon_main(argc, argv, &tspec));
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_check_only_and_bad_config(void **state)
{
	char a0[] = "cn2-testd", a1[] = "-n", a2[] = "-f", a4[] = "--help", a5[] = "-x";
	char bad[160];
	char *check[] = {a0, a1, a2, conf, NULL};
	char *badv[] = {a0, a1, a2, bad, NULL};
	char *help[] = {a0, a4, NULL};
	char *unknown[] = {a0, a5, NULL};
	FILE *fp;

	(void)state;
	assert_int_equal(run_status(check, 4), 0);
	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	fp = fopen(bad, "w");
	assert_non_null(fp);
	fputs("answer = 101\n", fp); /* above its bound */
	fclose(fp);
	assert_int_equal(run_status(badv, 4), 1);
	assert_int_equal(run_status(help, 2), 0);
	assert_int_equal(run_status(unknown, 2), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lifecycle),
	    cmocka_unit_test(test_check_only_and_bad_config),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
