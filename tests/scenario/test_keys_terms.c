/*
 * test_keys_terms.c — the command-line binaries a seller and an operator
 * run, against the six real daemons:
 *
 *   `cn2 keys add` with the listing's terms (--region, --premium, --route
 *   repeated, --rpm, --rpd, --daily-budget): the key is listed with them,
 *   in the API's answer, in `cn2 keys list` and in the router's listing; a
 *   bad option is refused with a clear message (exit 2) before anything is
 *   sent; terms the router refuses come back as the platform's problem
 *   (exit 1); the options are in --help.
 *
 *   `cn2-edge -n` on a file whose trusted_proxies is wrong: it fails with
 *   the same reason the daemon gives when it refuses to start, and passes
 *   on a good one.
 */
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
#include <cjson/cJSON.h>

#include "tests/scenario/harness.h"

#define OUT_MAX 65536

static struct h_env env;
static char out[OUT_MAX];

static int
group_setup(void **state)
{
	(void)state;
	if (h_init(&env, NULL) != 0 || h_start_demo(&env) != 0 || h_up(&env) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return h_down(&env);
}

/* Run argv (argv[0] a path) with stdout and stderr into out; the exit status. */
static int
run(const char *const argv[])
{
	int fds[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = '\0';
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `cn2 keys <verb> …` as seller-t, with the extra arguments (NULL-terminated). */
static int
cn2_keys(const char *verb, const char *const *extra)
{
	static char cn2[400], url[128], keyfile[400];
	const char *argv[40];
	size_t n = 0;

	snprintf(cn2, sizeof(cn2), "%s/cn2", env.bindir);
	snprintf(url, sizeof(url), "https://localhost:%d", env.https_port);
	snprintf(keyfile, sizeof(keyfile), "%s/secrets/demo.key", env.dir);
	argv[n++] = cn2;
	argv[n++] = "keys";
	argv[n++] = verb;
	argv[n++] = "--dir";
	argv[n++] = env.dir;
	argv[n++] = "--url";
	argv[n++] = url;
	argv[n++] = "--as";
	argv[n++] = "seller-t";
	if (strcmp(verb, "add") == 0) {
		argv[n++] = "--provider";
		argv[n++] = "demo";
		argv[n++] = "--price";
		argv[n++] = "0.001";
		argv[n++] = "--key-file";
		argv[n++] = keyfile;
	}
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < 40; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	return run(argv);
}

static long long
listings(void)
{
	return h_db_int(&env, "router", "SELECT count(*) FROM listings WHERE seller_id = 'seller-t'");
}

/* The terms of one key as the platform API shows them. */
static void
check_terms(const cJSON *k)
{
	const cJSON *routes = cJSON_GetObjectItem(k, "routes");

	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(k, "region")), "eu");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(k, "premium")));
	assert_int_equal(cJSON_GetArraySize(routes), 2);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(routes, 0)),
	    "POST /v1/chat/completions");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(routes, 1)), "GET /v1/models");
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(k, "rpm")), 60);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(k, "rpd")), 5000);
	assert_int_equal((long)cJSON_GetNumberValue(cJSON_GetObjectItem(k, "daily_budget_micros")),
	    2500000);
}

static void
test_add_with_terms(void **state)
{
	static const char *const terms[] = {"--region", "eu", "--premium", "--route",
	    "POST /v1/chat/completions", "--route", "GET /v1/models", "--rpm", "60", "--rpd", "5000",
	    "--daily-budget", "2.50", NULL};
	cJSON *j, *k;
	char id[64];

	(void)state;
	assert_int_equal(cn2_keys("add", terms), 0);
	assert_non_null(j = cJSON_Parse(out));
	check_terms(j);
	snprintf(id, sizeof(id), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	cJSON_Delete(j);
	/* The list shows them too. */
	assert_int_equal(cn2_keys("list", NULL), 0);
	assert_non_null(j = cJSON_Parse(out));
	k = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(k, "id")), id);
	check_terms(k);
	cJSON_Delete(j);
	/* And the router holds them: it is the router that enforces them. */
	assert_int_equal(h_db_int(&env, "router",
			     "SELECT count(*) FROM listings WHERE seller_id = 'seller-t'"
			     " AND region = 'eu' AND premium = 1 AND rpm = 60 AND rpd = 5000"
			     " AND daily_budget = 2500000"
			     " AND routes LIKE 'POST /v1/chat/completions%GET /v1/models'"),
	    1);
}

/* Refused here, with the option named, before anything is sealed or sent. */
static void
test_bad_options(void **state)
{
	static const struct {
		const char *args[4];
		const char *says;
	} cases[] = {
	    {{"--region", "de", NULL}, "--region must be eu or us"},
	    {{"--route", "post /v1/chat/completions", NULL}, "--route \"post /v1/chat/completions\""},
	    {{"--route", "POST v1/chat", NULL}, "a route is \"METHOD /path\""},
	    {{"--route", "POST /a,GET /b", NULL}, "a route is"},
	    {{"--rpm", "-1", NULL}, "--rpm must be a whole number"},
	    {{"--rpm", "1000001", NULL}, "to 1000000"},
	    {{"--rpd", "ten", NULL}, "--rpd must be a whole number"},
	    {{"--daily-budget", "5 USD", NULL}, "--daily-budget must be an amount in USD"},
	    {{"--daily-budget", "-5", NULL}, "--daily-budget must be"},
	};
	long long before = listings();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = cn2_keys("add", cases[i].args);

		if (rc != 2 || strstr(out, cases[i].says) == NULL)
			fail_msg("%s %s: exit %d, \"%s\"", cases[i].args[0], cases[i].args[1], rc, out);
	}
	/* Terms are for add only. */
	{
		static const char *const list_rpm[] = {"--rpm", "5", NULL};

		assert_int_equal(cn2_keys("list", list_rpm), 2);
		assert_non_null(strstr(out, "are for keys add"));
	}
	assert_int_equal(listings(), before);
}

/* Well-formed terms the router refuses: the platform's problem, exit 1, nothing listed. */
static void
test_refused_terms(void **state)
{
	static const char *const small[] = {"--daily-budget", "0.0001", NULL};
	long long before = listings();

	(void)state;
	assert_int_equal(cn2_keys("add", small), 1);
	assert_non_null(strstr(out, "daily_budget is less than the price of one request"));
	assert_non_null(strstr(out, "answered 400"));
	assert_int_equal(listings(), before);
}

static void
test_help_shows_terms(void **state)
{
	static const char *const help[] = {"--help", NULL};
	static const char *const opts[] = {"--region", "--premium", "--route", "--rpm", "--rpd",
	    "--daily-budget"};

	(void)state;
	assert_int_equal(cn2_keys("add", help), 0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		assert_non_null(strstr(out, opts[i]));
}

/* etc/<name>: the edge's configuration with trusted_proxies set to value. */
static void
edge_conf(const char *name, const char *value, char *path, size_t cap)
{
	size_t len;
	char *conf = h_read(&env, "etc/edge.conf", &len), *line, *save = NULL;
	FILE *fp;

	assert_non_null(conf);
	snprintf(path, cap, "%s/etc/%s", env.dir, name);
	assert_non_null(fp = fopen(path, "w"));
	for (line = strtok_r(conf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "trusted_proxies", 15) != 0)
			fprintf(fp, "%s\n", line);
	fprintf(fp, "trusted_proxies = %s\n", value);
	assert_int_equal(fclose(fp), 0);
	free(conf);
}

/* The reason after "trusted_proxies: " in out, to the end of its line. */
static void
proxies_reason(char *buf, size_t cap)
{
	const char *p = strstr(out, "trusted_proxies: ");

	assert_non_null(p);
	snprintf(buf, cap, "%.*s", (int)strcspn(p, "\r\n"), p);
}

static void
test_edge_check_proxies(void **state)
{
	char exe[400], bad[400], good[400], at_start[300], at_check[300];

	(void)state;
	snprintf(exe, sizeof(exe), "%s/cn2-edge", env.bindir);
	edge_conf("edge-bad.conf", "10.0.0.0/8, 192.0.2.300", bad, sizeof(bad));
	edge_conf("edge-good.conf", "10.0.0.0/8, ::1", good, sizeof(good));
	{
		/* Started on it, the edge refuses (before it listens: the running edge is untouched). */
		const char *argv[] = {exe, "-f", bad, NULL};

		assert_int_equal(run(argv), 1);
		proxies_reason(at_start, sizeof(at_start));
		assert_non_null(strstr(out, "cannot start"));
	}
	{
		const char *argv[] = {exe, "-n", "-f", bad, NULL};

		assert_int_equal(run(argv), 1);
		proxies_reason(at_check, sizeof(at_check));
		assert_string_equal(at_check, at_start);
		assert_non_null(strstr(at_check, "\"192.0.2.300\" is not an address or CIDR"));
		assert_null(strstr(out, "configuration OK"));
	}
	{
		const char *argv[] = {exe, "-n", "-f", good, NULL};

		assert_int_equal(run(argv), 0);
		assert_non_null(strstr(out, "configuration OK"));
	}
	assert_int_equal(unlink(bad), 0);
	assert_int_equal(unlink(good), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_with_terms),
	    cmocka_unit_test(test_bad_options),
	    cmocka_unit_test(test_refused_terms),
	    cmocka_unit_test(test_help_shows_terms),
	    cmocka_unit_test(test_edge_check_proxies),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
