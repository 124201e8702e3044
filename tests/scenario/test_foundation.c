/*
 * test_foundation.c — the six daemons running together: readiness, /healthz,
 * TLS with the generated certificate, strict HTTP framing at the edge, a
 * malformed IPC frame closing only its own connection, a killed daemon
 * reported unhealthy and healthy again after a restart, configuration
 * checking, and a clean stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <nng/nng.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/scenario/harness.h"

static struct h_env env;

static int
group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (h_init(&env, "header_timeout_ms = 700\nidle_timeout_ms = 1500\n") != 0)
		return -1;
	return h_up(&env);
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	down = h_down(&env);
	curl_global_cleanup();
	return down;
}

static cJSON *
get_health(long *status)
{
	struct h_resp r;
	cJSON *j;

	assert_int_equal(h_http(&env, "GET", "/healthz", NULL, NULL, 0, &r), 0);
	*status = r.status;
	assert_non_null(strstr(r.headers, "Content-Type: application/json"));
	j = cJSON_Parse(r.body);
	h_resp_free(&r);
	assert_non_null(j);
	return j;
}

static int
daemon_ready(cJSON *health, const char *name)
{
	cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(health, "daemons"), name);

	return d != NULL && cJSON_IsTrue(cJSON_GetObjectItem(d, "ready"));
}

static void
test_health_all_ready(void **state)
{
	long status;
	cJSON *j = get_health(&status);

	(void)state;
	assert_int_equal(status, 200);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "ok");
	for (size_t i = 0; i < h_ndaemons; i++)
		assert_true(daemon_ready(j, h_daemons[i]));
	/* Each daemon reports its own pid: they really are separate processes. */
	for (size_t i = 0; i < h_ndaemons; i++) {
		cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "daemons"), h_daemons[i]);
		cJSON *pid = cJSON_GetObjectItem(d, "pid");

		if (strcmp(h_daemons[i], "ledger") == 0)
			continue; /* reported through payments and platform */
		assert_non_null(pid);
		assert_int_equal((pid_t)pid->valuedouble, h_pid(&env, h_daemons[i]));
	}
	cJSON_Delete(j);
}

static void
test_tls_with_generated_cert(void **state)
{
	char url[128];
	struct h_resp r;

	(void)state;
	snprintf(url, sizeof(url), "https://localhost:%d/healthz", env.https_port);
	assert_int_equal(h_http(&env, "GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	snprintf(url, sizeof(url), "https://openai.localhost:%d/healthz", env.https_port);
	assert_int_equal(h_http(&env, "GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

/* Only TLS 1.2 is offered: a TLS 1.3-only client must fail the handshake. */
static void
test_tls13_only_client_refused(void **state)
{
	char url[128], cert[400];
	CURL *c = curl_easy_init();
	CURLcode rc;

	(void)state;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", env.https_port);
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", env.dir);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	rc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	assert_int_not_equal(rc, CURLE_OK);
	/* The refusal closed only that connection. */
	assert_int_equal(h_wait_health(&env, 200, 2000), 0);
}

static void
test_unknown_path_is_problem(void **state)
{
	struct h_resp r;
	cJSON *j;

	(void)state;
	assert_int_equal(h_http(&env, "GET", "/no/such/thing", NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.headers, "application/problem+json"));
	j = cJSON_Parse(r.body);
	assert_non_null(j);
	/* The plain port's Host is 127.0.0.1: no provider or API is served there. */
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type")),
	    "https://cn2.ai/problems/unknown-host");
	assert_int_equal(cJSON_GetObjectItem(j, "status")->valueint, 404);
	cJSON_Delete(j);
	h_resp_free(&r);
}

/* Request smuggling and framing errors get 400 and a closed connection. */
static void
test_bad_framing_rejected(void **state)
{
	static const struct {
		const char *req;
		const char *want;
	} cases[] = {
	    {"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400 "},
	    {"GET /healthz HTTP/1.1\nHost: a\n\n", "HTTP/1.1 400 "},
	    {"GET /healthz HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "HTTP/1.1 400 "},
	    {"GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
	    {"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505 "},
	    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", "HTTP/1.1 413 "},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n;
		char *out = h_raw(&env, cases[i].req, strlen(cases[i].req), &n);

		assert_non_null(out);
		if (strncmp(out, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: got \"%.40s\"", i, out);
		assert_non_null(strstr(out, "Connection: close"));
		free(out);
	}
}

/* Two pipelined requests on one connection get two responses in order. */
static void
test_pipelining(void **state)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
				  "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	size_t n;
	char *out = h_raw(&env, req, sizeof(req) - 1, &n), *second;

	(void)state;
	assert_non_null(out);
	assert_true(strncmp(out, "HTTP/1.1 200 ", 13) == 0);
	second = strstr(out + 1, "HTTP/1.1 404 ");
	assert_non_null(second);
	free(out);
}

/* A head that never completes is answered 408 after header_timeout_ms. */
static void
test_slow_head_times_out(void **state)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n";
	size_t n;
	char *out = h_raw(&env, req, sizeof(req) - 1, &n);

	(void)state;
	assert_non_null(out);
	assert_true(strncmp(out, "HTTP/1.1 408 ", 13) == 0);
	free(out);
}

/* Connect to a daemon's IPC socket as a stranger and send garbage. */
static int
ipc_send_garbage(const char *daemon, const void *bytes, size_t len)
{
	nng_stream_dialer *d = NULL;
	nng_stream *s = NULL;
	nng_aio *aio = NULL;
	char url[400], buf[64];
	nng_iov iov;
	int rv;

	snprintf(url, sizeof(url), "ipc://%s/run/%s.sock", env.dir, daemon);
	if ((rv = nng_stream_dialer_alloc(&d, url)) != 0 || (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0)
		goto out;
	nng_aio_set_timeout(aio, 3000);
	nng_stream_dialer_dial(d, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0)
		goto out;
	s = nng_aio_get_output(aio, 0);
	iov.iov_buf = (void *)(uintptr_t)bytes;
	iov.iov_len = len;
	nng_aio_set_iov(aio, 1, &iov);
	nng_stream_send(s, aio);
	nng_aio_wait(aio);
	/* The daemon must close the connection: a receive ends in an error. */
	iov.iov_buf = buf;
	iov.iov_len = sizeof(buf);
	nng_aio_set_iov(aio, 1, &iov);
	nng_stream_recv(s, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio) != 0 ? 0 : -1;
out:
	if (s != NULL)
		nng_stream_free(s);
	if (aio != NULL)
		nng_aio_free(aio);
	if (d != NULL)
		nng_stream_dialer_free(d);
	return rv;
}

static void
test_malformed_ipc_closes_only_that_pipe(void **state)
{
	static const uint8_t garbage[] = {0x10, 0, 0, 0, 0x99, 0x99, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
	static const char text[] = "GET / HTTP/1.1\r\n\r\n";
	const char *targets[] = {"router", "payments", "vault", "ledger", "platform"};

	(void)state;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		assert_int_equal(ipc_send_garbage(targets[i], garbage, sizeof(garbage)), 0);
		assert_int_equal(ipc_send_garbage(targets[i], text, sizeof(text) - 1), 0);
	}
	/* Every daemon still runs and every real link is still up. */
	for (size_t i = 0; i < h_ndaemons; i++)
		assert_int_equal(kill(h_pid(&env, h_daemons[i]), 0), 0);
	assert_int_equal(h_wait_health(&env, 200, 1000), 0);
	assert_true(h_log_contains(&env, "first message is not HELLO") ||
	    h_log_contains(&env, "invalid frame header"));
}

static void
test_killed_daemon_unhealthy_then_back(void **state)
{
	long status;
	cJSON *j;

	(void)state;
	assert_int_equal(h_signal(&env, "router", SIGKILL), 0);
	assert_int_equal(h_wait_health(&env, 503, 3000), 0);
	j = get_health(&status);
	assert_int_equal(status, 503);
	assert_false(daemon_ready(j, "router"));
	assert_true(daemon_ready(j, "vault"));
	cJSON_Delete(j);
	assert_int_equal(h_start(&env, "router"), 0);
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);

	/* The ledger is not dialled by the edge: it shows through payments/platform. */
	assert_int_equal(h_signal(&env, "ledger", SIGKILL), 0);
	assert_int_equal(h_wait_health(&env, 503, 3000), 0);
	j = get_health(&status);
	assert_false(daemon_ready(j, "ledger"));
	cJSON_Delete(j);
	assert_int_equal(h_start(&env, "ledger"), 0);
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);
}

/* Run a binary with args and return its exit status, output in buf. */
static int
run_capture(const char *const argv[], char *buf, size_t cap)
{
	int fds[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_config_checking(void **state)
{
	char exe[400], conf[400], bad[400], out[8192];
	FILE *fp;

	(void)state;
	snprintf(exe, sizeof(exe), "%s/cn2-router", env.bindir);
	snprintf(conf, sizeof(conf), "%s/etc/router.conf", env.dir);
	snprintf(bad, sizeof(bad), "%s/etc/bad.conf", env.dir);
	{
		const char *argv[] = {exe, "-n", "-f", conf, NULL};

		assert_int_equal(run_capture(argv, out, sizeof(out)), 0);
		assert_non_null(strstr(out, "configuration OK"));
	}
	fp = fopen(bad, "w");
	assert_non_null(fp);
	fputs("database = /tmp/x.db\nno_such_key = 1\n", fp);
	fclose(fp);
	{
		const char *argv[] = {exe, "-n", "-f", bad, NULL};

		assert_int_equal(run_capture(argv, out, sizeof(out)), 1);
		assert_non_null(strstr(out, "no_such_key"));
		assert_non_null(strstr(out, ":2"));
	}
	{
		const char *argv[] = {exe, "--help", NULL};

		assert_int_equal(run_capture(argv, out, sizeof(out)), 0);
		assert_non_null(strstr(out, "usage: cn2-router"));
		assert_non_null(strstr(out, "database"));
	}
}

/* SIGTERM stops a daemon cleanly (exit 0) and it says so. */
static void
test_clean_stop(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	pid = h_pid(&env, "platform");
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	env.pid[5] = 0;
	assert_true(h_log_contains(&env, "cn2-platform: daemon_main: stopped"));
	assert_int_equal(h_start(&env, "platform"), 0);
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health_all_ready),
	    cmocka_unit_test(test_tls_with_generated_cert),
	    cmocka_unit_test(test_tls13_only_client_refused),
	    cmocka_unit_test(test_unknown_path_is_problem),
	    cmocka_unit_test(test_bad_framing_rejected),
	    cmocka_unit_test(test_pipelining),
	    cmocka_unit_test(test_slow_head_times_out),
	    cmocka_unit_test(test_malformed_ipc_closes_only_that_pipe),
	    cmocka_unit_test(test_killed_daemon_unhealthy_then_back),
	    cmocka_unit_test(test_config_checking),
	    cmocka_unit_test(test_clean_stop),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
