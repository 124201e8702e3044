/*
 * test_paid.c — a paid request end to end through the six real daemons and
 * the demo upstream: 402 → pay → proxied response with a receipt, money in
 * the ledger; every credential error of the test method; streaming; an
 * upstream failure that captures nothing; and no secret anywhere in clear.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/b64url.h"
#include "common/mpp.h"
#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
#define CHAT_STREAM \
	"{\"model\":\"demo-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define SELLER_PRICE 1000 /* µUSD: the demo key is listed at 0.001 USD */

static struct h_env env;
static int paid_ok; /* successful paid requests so far: the seller earned this many prices */

static char *
url_of(const char *host, const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "https://%s:%d%s", host, env.https_port, path);
	return buf;
}

/* Run argv, capturing stdout and stderr; returns the exit status. */
static int
run(char *const argv[], char **out, char **err)
{
	int o[2], e[2], status;
	pid_t pid;
	char buf[4096];
	size_t olen = 0, elen = 0;
	ssize_t n;

	if (pipe(o) != 0 || pipe(e) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	*out = calloc(1, 1);
	*err = calloc(1, 1);
	while ((n = read(o[0], buf, sizeof(buf))) > 0) {
		*out = realloc(*out, olen + (size_t)n + 1);
		memcpy(*out + olen, buf, (size_t)n);
		(*out)[olen += (size_t)n] = '\0';
	}
	while ((n = read(e[0], buf, sizeof(buf))) > 0) {
		*err = realloc(*err, elen + (size_t)n + 1);
		memcpy(*err + elen, buf, (size_t)n);
		(*err)[elen += (size_t)n] = '\0';
	}
	close(o[0]);
	close(e[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
group_setup(void **state)
{
	char cn2[400], key[400], url[128];
	char a_keys[] = "keys", a_add[] = "add", a_dir[] = "--dir", a_url[] = "--url";
	char a_p[] = "--provider", a_demo[] = "demo", a_k[] = "--key-file", a_pr[] = "--price";
	char a_price[] = "0.001", a_as[] = "--as", a_seller[] = "demo-seller";
	char *out, *err;
	int rc;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (h_init(&env, NULL) != 0 || h_start_demo(&env) != 0 || h_up(&env) != 0)
		return -1;
	snprintf(cn2, sizeof(cn2), "%s/cn2", env.bindir);
	snprintf(key, sizeof(key), "%s/secrets/demo.key", env.dir);
	snprintf(url, sizeof(url), "https://localhost:%d", env.https_port);
	{
		char *argv[] = {cn2, a_keys, a_add, a_dir, env.dir, a_url, url, a_p, a_demo, a_k, key,
		    a_pr, a_price, a_as, a_seller, NULL};

		rc = run(argv, &out, &err);
	}
	if (rc != 0)
		fprintf(stderr, "cn2 keys add: %s%s\n", out, err);
	free(out);
	free(err);
	return rc == 0 ? 0 : -1;
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

/* A fresh challenge for the demo chat route: the 402's first test challenge. */
static void
get_challenge(struct mpp_challenge *c, struct h_resp *r)
{
	const char *hs[] = {"Content-Type: application/json", NULL};
	char *line, *end;

	assert_int_equal(h_http(&env, "POST", url_of("demo.localhost", "/v1/chat/completions"), hs,
			     CHAT, strlen(CHAT), r),
	    0);
	assert_int_equal(r->status, 402);
	line = strcasestr(r->headers, "WWW-Authenticate: ");
	assert_non_null(line);
	line += 18;
	end = strstr(line, "\r\n");
	assert_non_null(end);
	assert_int_equal(mpp_challenge_parse(line, (size_t)(end - line), c, NULL, 0), 0);
	assert_string_equal(c->method, "test");
}

/* "Authorization: Payment …" for c with a correct test proof. Caller frees. */
static char *
credential_for(const struct mpp_challenge *c, const char *header)
{
	size_t len;
	char *secret = h_read(&env, "secrets/test.key", &len), proof[MPP_ID_BUFSZ], *cred, *line;
	cJSON *payload = cJSON_CreateObject();

	assert_non_null(secret);
	assert_int_equal(mpp_test_proof((const uint8_t *)secret, len, c->id, proof), 0);
	cJSON_AddStringToObject(payload, "proof", proof);
	cred = mpp_credential_format(c, payload, NULL);
	assert_non_null(cred);
	assert_true(asprintf(&line, "%s: %s", header, cred) > 0);
	free(cred);
	free(secret);
	cJSON_Delete(payload);
	return line;
}

static void
post_chat(const char *auth, const char *auth2, const char *body, struct h_resp *r)
{
	const char *hs[] = {"Content-Type: application/json", auth, auth2, NULL};

	assert_int_equal(h_http(&env, "POST", url_of("demo.localhost", "/v1/chat/completions"), hs,
			     body, strlen(body), r),
	    0);
}

/* The problem type name of a problem+json body ("invalid-challenge"). */
static const char *
problem_name(const struct h_resp *r)
{
	static char name[64];
	cJSON *j = cJSON_Parse(r->body);
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
	const char *slash = t != NULL ? strrchr(t, '/') : NULL;

	snprintf(name, sizeof(name), "%s", slash != NULL ? slash + 1 : "");
	cJSON_Delete(j);
	return name;
}

static void
test_402_challenge(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	cJSON *req, *body;

	(void)state;
	get_challenge(&c, &r);
	assert_non_null(strcasestr(r.headers, "Cache-Control: no-store"));
	assert_non_null(strcasestr(r.headers, "Content-Type: application/problem+json"));
	assert_string_equal(problem_name(&r), "payment-required");
	body = cJSON_Parse(r.body);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(body, "challengeId")), c.id);
	cJSON_Delete(body);
	assert_non_null(c.expires);
	assert_string_equal(c.realm, "demo.localhost");
	req = mpp_request_decode(c.request);
	assert_non_null(req);
	/* The seller's 0.001 USD plus the default 10 % platform fee. */
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")), "1100");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "currency")), "usdc");
	cJSON_Delete(req);
	mpp_challenge_free(&c);
	h_resp_free(&r);
}

static void
test_cn2_pay(void **state)
{
	char cn2[400], body[] = CHAT, a_pay[] = "pay", a_dir[] = "--dir", a_h[] = "-H";
	char a_ct[] = "Content-Type: application/json", a_d[] = "-d";
	char *out, *err;
	int rc;

	(void)state;
	snprintf(cn2, sizeof(cn2), "%s/cn2", env.bindir);
	{
		char *argv[] = {cn2, a_pay, a_dir, env.dir, a_h, a_ct, a_d, body,
		    url_of("demo.localhost", "/v1/chat/completions"), NULL};

		rc = run(argv, &out, &err);
	}
	if (rc != 0)
		fail_msg("cn2 pay exited %d: %s", rc, err);
	assert_non_null(strstr(out, "chat.completion"));
	assert_non_null(strstr(err, "receipt: "));
	assert_non_null(strstr(err, "\"status\":\"success\""));
	assert_non_null(strstr(err, "\"method\":\"test\""));
	paid_ok++;
	free(out);
	free(err);
}

static void
test_paid_then_replayed(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	char *auth, *receipt;

	(void)state;
	get_challenge(&c, &r);
	h_resp_free(&r);
	auth = credential_for(&c, "Authorization");
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 200);
	receipt = strcasestr(r.headers, "Payment-Receipt: ");
	assert_non_null(receipt);
	assert_non_null(strcasestr(r.headers, "Cache-Control: private"));
	assert_non_null(strstr(r.body, "chat.completion"));
	paid_ok++;
	h_resp_free(&r);
	/* The same credential again: captured, so refused with a fresh challenge. */
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 402);
	assert_string_equal(problem_name(&r), "invalid-challenge");
	assert_non_null(strcasestr(r.headers, "WWW-Authenticate: Payment"));
	assert_null(strcasestr(r.headers, "Payment-Receipt"));
	h_resp_free(&r);
	free(auth);
	mpp_challenge_free(&c);
}

/* Change the echoed amount: the id no longer matches the fields. */
static void
test_tampered_amount(void **state)
{
	struct mpp_challenge c, t;
	struct h_resp r;
	cJSON *req;
	char *auth, *req64;

	(void)state;
	get_challenge(&c, &r);
	h_resp_free(&r);
	req = mpp_request_decode(c.request);
	cJSON_ReplaceItemInObject(req, "amount", cJSON_CreateString("1"));
	req64 = mpp_request_encode(req);
	t = c;
	t.request = req64;
	auth = credential_for(&t, "Authorization");
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 402);
	assert_string_equal(problem_name(&r), "invalid-challenge");
	h_resp_free(&r);
	free(auth);
	free(req64);
	cJSON_Delete(req);
	mpp_challenge_free(&c);
}

static void
test_garbage_unknown_method_two_credentials(void **state)
{
	struct mpp_challenge c, t;
	struct h_resp r;
	char *auth, *auth2;

	(void)state;
	post_chat("Authorization: Payment !!!not-base64!!!", NULL, CHAT, &r);
	assert_int_equal(r.status, 402);
	assert_string_equal(problem_name(&r), "malformed-credential");
	h_resp_free(&r);

	get_challenge(&c, &r);
	h_resp_free(&r);
	t = c;
	t.method = "bogus";
	auth = credential_for(&t, "Authorization");
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(problem_name(&r), "method-unsupported");
	h_resp_free(&r);
	free(auth);

	auth = credential_for(&c, "Authorization");
	auth2 = credential_for(&c, "Payment-Authorization");
	post_chat(auth, auth2, CHAT, &r);
	assert_int_equal(r.status, 400);
	h_resp_free(&r);
	free(auth);
	free(auth2);
	mpp_challenge_free(&c);
}

/* Restart payments with a one-second challenge lifetime, pay too late, restore. */
static void
test_expired(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	char path[400], *orig, *auth;
	size_t len;
	FILE *fp;

	(void)state;
	orig = h_read(&env, "etc/payments.conf", &len);
	assert_non_null(orig);
	snprintf(path, sizeof(path), "%s/etc/payments.conf", env.dir);
	fp = fopen(path, "a");
	fputs("challenge_ttl_s = 1\n", fp);
	fclose(fp);
	assert_int_equal(h_signal(&env, "payments", SIGTERM), 0);
	assert_int_equal(h_start(&env, "payments"), 0);
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);
	get_challenge(&c, &r);
	h_resp_free(&r);
	auth = credential_for(&c, "Authorization");
	sleep(2);
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 402);
	assert_string_equal(problem_name(&r), "payment-expired");
	h_resp_free(&r);
	free(auth);
	mpp_challenge_free(&c);
	fp = fopen(path, "w");
	fwrite(orig, 1, len, fp);
	fclose(fp);
	free(orig);
	assert_int_equal(h_signal(&env, "payments", SIGTERM), 0);
	assert_int_equal(h_start(&env, "payments"), 0);
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);
}

/* Streaming: the first event reaches the buyer before the upstream sends the last. */
struct timing {
	double start, first, last;
	size_t bytes;
	char head[8];
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
on_stream(char *data, size_t size, size_t n, void *arg)
{
	struct timing *t = arg;

	if (t->bytes == 0) {
		t->first = now_s();
		memcpy(t->head, data, size * n < 6 ? size * n : 6);
	}
	t->bytes += size * n;
	t->last = now_s();
	return size * n;
}

static void
test_streaming(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	struct timing t = {0, 0, 0, 0, ""};
	struct curl_slist *hl = NULL, *res = NULL;
	char *auth, cert[400], resolve[128];
	CURL *curl = curl_easy_init();
	long status;

	(void)state;
	get_challenge(&c, &r);
	h_resp_free(&r);
	auth = credential_for(&c, "Authorization");
	hl = curl_slist_append(hl, auth);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", env.dir);
	snprintf(resolve, sizeof(resolve), "demo.localhost:%d:127.0.0.1", env.https_port);
	res = curl_slist_append(res, resolve);
	curl_easy_setopt(curl, CURLOPT_URL, url_of("demo.localhost", "/v1/chat/completions"));
	curl_easy_setopt(curl, CURLOPT_RESOLVE, res);
	curl_easy_setopt(curl, CURLOPT_CAINFO, cert);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, CHAT_STREAM);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
	t.start = now_s();
	assert_int_equal(curl_easy_perform(curl), CURLE_OK);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 200);
	assert_memory_equal(t.head, "data: ", 6);
	/* The demo upstream spaces 5 events 100 ms apart: the first is not held back. */
	assert_true(t.last - t.first >= 0.3);
	paid_ok++;
	curl_slist_free_all(hl);
	curl_slist_free_all(res);
	curl_easy_cleanup(curl);
	free(auth);
	mpp_challenge_free(&c);
}

/* The upstream is down: nothing is captured, and the same credential works later. */
static void
test_upstream_down_then_up(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	char *auth;

	(void)state;
	kill(env.demo_pid, SIGKILL);
	waitpid(env.demo_pid, NULL, 0);
	env.demo_pid = 0;
	get_challenge(&c, &r);
	h_resp_free(&r);
	auth = credential_for(&c, "Authorization");
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 502);
	assert_non_null(strstr(r.body, "not captured"));
	assert_null(strcasestr(r.headers, "Payment-Receipt"));
	h_resp_free(&r);
	assert_int_equal(h_start_demo(&env), 0);
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strcasestr(r.headers, "Payment-Receipt: "));
	paid_ok++;
	h_resp_free(&r);
	free(auth);
	mpp_challenge_free(&c);
}

static void
test_no_key_is_503_not_402(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_http(&env, "GET", url_of("openai.localhost", "/v1/models"), NULL, NULL, 0,
			     &r),
	    0);
	assert_int_equal(r.status, 503);
	assert_string_equal(problem_name(&r), "no-key-available");
	assert_null(strcasestr(r.headers, "WWW-Authenticate"));
	assert_non_null(strcasestr(r.headers, "\nRetry-After: 5\r\n"));
	h_resp_free(&r);
}

static int64_t
query_int(const char *db, const char *sql)
{
	char path[400];
	sqlite3 *h;
	sqlite3_stmt *st;
	int64_t v = -1;

	snprintf(path, sizeof(path), "%s/db/%s", env.dir, db);
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* Trial balance zero; the seller earned exactly its price per paid request. */
static void
test_ledger_balances(void **state)
{
	char exe[400], conf[400], a_bal[] = "balances", a_f[] = "-f";
	char *out, *err;
	int rc;

	(void)state;
	snprintf(exe, sizeof(exe), "%s/cn2-ledger", env.bindir);
	snprintf(conf, sizeof(conf), "%s/etc/ledger.conf", env.dir);
	{
		char *argv[] = {exe, a_bal, a_f, conf, NULL};

		rc = run(argv, &out, &err);
	}
	if (rc != 0)
		fail_msg("cn2-ledger balances exited %d: %s%s", rc, out, err);
	assert_non_null(strstr(out, "seller:demo-seller"));
	free(out);
	free(err);
	assert_int_equal(query_int("ledger.db", "SELECT balance FROM v_balances WHERE account = "
						"'seller:demo-seller'"),
	    (int64_t)paid_ok * SELLER_PRICE);
	assert_int_equal(query_int("ledger.db", "SELECT sum(balance) FROM v_balances"), 0);
}

/* Does any file under the directory contain needle (bytes)? */
static int
dir_contains(const char *needle)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	    "grep -rl --exclude-dir=secrets --exclude=*.pem -F -- '%s' '%s' >/dev/null 2>&1", needle,
	    env.dir);
	return system(cmd) == 0;
}

static void
test_no_secret_in_clear(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	char *demo, *test, *auth;
	size_t len;

	(void)state;
	demo = h_read(&env, "secrets/demo.key", &len);
	test = h_read(&env, "secrets/test.key", &len);
	get_challenge(&c, &r);
	h_resp_free(&r);
	auth = credential_for(&c, "Authorization");
	post_chat(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 200);
	paid_ok++;
	h_resp_free(&r);
	/* Logs and every database (with its WAL) under the state directory. */
	assert_false(dir_contains(demo));
	assert_false(dir_contains(test));
	assert_false(dir_contains(strchr(auth, ' ') + 1 + 8)); /* the credential's base64 */
	free(demo);
	free(test);
	free(auth);
	mpp_challenge_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_402_challenge),
	    cmocka_unit_test(test_cn2_pay),
	    cmocka_unit_test(test_paid_then_replayed),
	    cmocka_unit_test(test_tampered_amount),
	    cmocka_unit_test(test_garbage_unknown_method_two_credentials),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_streaming),
	    cmocka_unit_test(test_upstream_down_then_up),
	    cmocka_unit_test(test_no_key_is_503_not_402),
	    cmocka_unit_test(test_no_secret_in_clear),
	    cmocka_unit_test(test_ledger_balances),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
