/*
 * test_webhooks.c — sellers' webhooks end to end: the six real daemons, the
 * demo upstream with three keys (seller A lists two, seller B one), and a
 * seller's endpoint (tests/fakes/hooks.mjs) that checks every delivery with
 * the Standard Webhooks reference library.
 *
 *   api       /api/webhooks: create (with its whsec_ secret), list, read,
 *             change, refuse bad bodies, other sellers' ids and no token
 *   deliver   a key that meets a 401 is quarantined (the buyer is served by
 *             the seller's other key); its seller's endpoint gets
 *             key.quarantined, signed so the library accepts it
 *   retry     an endpoint that answers 500 once gets the same event again
 *             (same webhook-id) a few seconds later, and the row says 2 tries
 *   ssrf      with webhook_allow_private off, http:// is refused, and an
 *             endpoint on 127.0.0.1 is never connected to
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static struct {
	struct h_env env;
	int port; /* the endpoint's */
	pid_t hooks;
	char auth_a[2048], auth_b[2048];
	char key_a[2][IPC_KEY_ID_MAX + 1];
	char hook_id[64], secret[128];
	char first[IPC_KEY_ID_MAX + 1]; /* the key test_deliver saw quarantined */
} T;

static char *
url_of(const char *host, const char *path)
{
	static char buf[2][300];
	static int n;

	n ^= 1;
	snprintf(buf[n], sizeof(buf[n]), "https://%s:%d%s", host, T.env.https_port, path);
	return buf[n];
}

/* An API call as a seller (auth NULL: none); the parsed body (caller deletes), status in *st. */
static cJSON *
api(const char *method, const char *path, const char *auth, const char *body, long *st)
{
	const char *hs[] = {"Content-Type: application/json", auth, NULL};
	struct h_resp r;
	cJSON *j;

	assert_int_equal(h_http(&T.env, method, url_of("localhost", path), hs, body,
			     body != NULL ? strlen(body) : 0, &r),
	    0);
	*st = r.status;
	j = cJSON_Parse(r.body);
	h_resp_free(&r);
	return j;
}

static void
expect(const char *method, const char *path, const char *auth, const char *body, long want)
{
	long st;
	cJSON *j = api(method, path, auth, body, &st);

	if (st != want)
		fail_msg("%s %s: %ld, want %ld", method, path, st, want);
	cJSON_Delete(j);
}

/* The endpoint fake: POST json to path, or GET its stats (json NULL); parsed, caller deletes. */
static cJSON *
hooks_call(const char *path, const char *json)
{
	char url[128];
	const char *hs[] = {"Content-Type: application/json", NULL};
	struct h_resp r;
	cJSON *j;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", T.port, path);
	assert_int_equal(h_http(&T.env, json != NULL ? "POST" : "GET", url, hs, json,
			     json != NULL ? strlen(json) : 0, &r),
	    0);
	assert_int_equal(r.status, 200);
	j = cJSON_Parse(r.body);
	h_resp_free(&r);
	assert_non_null(j);
	return j;
}

static int
hooks_stat(const char *name)
{
	cJSON *j = hooks_call("/_fake/stats", NULL);
	int n = cJSON_GetObjectItem(j, name)->valueint;

	cJSON_Delete(j);
	return n;
}

/* The ids of a seller's keys, from GET /api/keys, in listing order. */
static int
key_ids(const char *auth, char ids[][IPC_KEY_ID_MAX + 1], int max)
{
	long st;
	cJSON *j = api("GET", "/api/keys", auth, NULL, &st), *k;
	int n = 0;

	cJSON_ArrayForEach(k, cJSON_GetObjectItem(j, "keys"))
		if (n < max)
			snprintf(ids[n++], IPC_KEY_ID_MAX + 1, "%s",
			    cJSON_GetStringValue(cJSON_GetObjectItem(k, "id")));
	cJSON_Delete(j);
	return st == 200 ? n : -1;
}

static int
group_setup(void **state)
{
	char k0[400], k1[400], k2[400];

	(void)state;
	memset(&T, 0, sizeof(T));
	if (h_init(&T.env, NULL) != 0 ||
	    h_conf_append(&T.env, "platform", "webhook_poll_ms = 100\n") != 0 ||
	    h_start_demo_keys(&T.env, 3) != 0 || h_up(&T.env) != 0)
		return -1;
	T.port = h_free_port();
	if ((T.hooks = h_start_node_fake(&T.env, "hooks.mjs", T.port, NULL)) < 0)
		return -1;
	snprintf(k0, sizeof(k0), "%s/secrets/demo.key", T.env.dir);
	snprintf(k1, sizeof(k1), "%s/secrets/demo1.key", T.env.dir);
	snprintf(k2, sizeof(k2), "%s/secrets/demo2.key", T.env.dir);
	/* A's keys are the cheapest, so they serve first; B's takes over when they fail. */
	if (h_keys_add(&T.env, "seller-a", "demo", k0, "0.001") != 0 ||
	    h_keys_add(&T.env, "seller-a", "demo", k1, "0.001") != 0 ||
	    h_keys_add(&T.env, "seller-b", "demo", k2, "0.002") != 0 ||
	    h_bearer(&T.env, "seller-a", T.auth_a, sizeof(T.auth_a)) != 0 ||
	    h_bearer(&T.env, "seller-b", T.auth_b, sizeof(T.auth_b)) != 0)
		return -1;
	return key_ids(T.auth_a, T.key_a, 2) == 2 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	h_stop_fake(T.hooks);
	return h_down(&T.env);
}

static void
test_api(void **state)
{
	char body[300], path[128], id_path[128];
	const char *id, *secret;
	long st;
	cJSON *j, *list, *again;

	(void)state;
	snprintf(body, sizeof(body),
	    "{\"url\":\"http://127.0.0.1:%d/hooks/cn2\",\"events\":[\"key.quarantined\"],"
	    "\"description\":\"ops\"}",
	    T.port);
	expect("POST", "/api/webhooks", NULL, body, 401);
	expect("POST", "/api/webhooks", T.auth_a, "{\"url\":\"ftp://127.0.0.1/x\"}", 400);
	expect("POST", "/api/webhooks", T.auth_a, "{\"url\":\"http://u:p@127.0.0.1/x\"}", 400);
	expect("POST", "/api/webhooks", T.auth_a,
	    "{\"url\":\"http://127.0.0.1/x\",\"events\":[\"key.stolen\"]}", 400);
	expect("POST", "/api/webhooks", T.auth_a, "{\"url\":\"http://127.0.0.1/x\",\"x\":1}", 400);
	expect("POST", "/api/webhooks", T.auth_a, "{\"events\":[\"*\"]}", 400);
	j = api("POST", "/api/webhooks", T.auth_a, body, &st);
	assert_int_equal(st, 201);
	assert_non_null(id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	assert_non_null(secret = cJSON_GetStringValue(cJSON_GetObjectItem(j, "secret")));
	assert_int_equal(strncmp(secret, "whsec_", 6), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "enabled")));
	snprintf(T.hook_id, sizeof(T.hook_id), "%s", id);
	snprintf(T.secret, sizeof(T.secret), "%s", secret);
	cJSON_Delete(j);
	/* The list shows it without its secret; the item with the same secret. */
	list = api("GET", "/api/webhooks", T.auth_a, NULL, &st);
	assert_int_equal(st, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "webhooks")), 1);
	assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "webhooks"), 0),
	    "secret"));
	cJSON_Delete(list);
	snprintf(id_path, sizeof(id_path), "/api/webhooks/%s", T.hook_id);
	again = api("GET", id_path, T.auth_a, NULL, &st);
	assert_int_equal(st, 200);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(again, "secret")), T.secret);
	cJSON_Delete(again);
	/* Another seller sees nothing of it. */
	expect("GET", id_path, T.auth_b, NULL, 404);
	expect("PATCH", id_path, T.auth_b, "{\"enabled\":false}", 404);
	expect("DELETE", id_path, T.auth_b, NULL, 404);
	list = api("GET", "/api/webhooks", T.auth_b, NULL, &st);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "webhooks")), 0);
	cJSON_Delete(list);
	/* Changes. */
	expect("PATCH", id_path, T.auth_a, "{}", 400);
	j = api("PATCH", id_path, T.auth_a, "{\"description\":\"ops team\"}", &st);
	assert_int_equal(st, 200);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "description")), "ops team");
	assert_null(cJSON_GetObjectItem(j, "secret"));
	cJSON_Delete(j);
	snprintf(path, sizeof(path), "/api/webhooks/%s", "wh_nosuch");
	expect("DELETE", path, T.auth_a, NULL, 404);
	expect("PUT", id_path, T.auth_a, "{}", 405);
	/* The endpoint learns its secret, as its owner would configure it. */
	snprintf(body, sizeof(body), "{\"secret\":\"%s\"}", T.secret);
	cJSON_Delete(hooks_call("/_fake/secret", body));
}

/* A paid request; the buyer is served (by another key when one fails). */
static void
paid(long want)
{
	char auth[16384];
	const char *pay[] = {NULL};
	const char *hs[] = {"Content-Type: application/json", auth, NULL};
	struct h_resp r;

	assert_int_equal(h_pay_header(&T.env, url_of("demo.localhost", "/v1/chat/completions"), pay,
			     CHAT, auth, sizeof(auth)),
	    0);
	assert_int_equal(h_http(&T.env, "POST", url_of("demo.localhost", "/v1/chat/completions"),
			     hs, CHAT, strlen(CHAT), &r),
	    0);
	if (want != 0 && r.status != want)
		fail_msg("paid request: %ld, want %ld: %s", r.status, want, r.body);
	h_resp_free(&r);
}

/* Wait up to ms for the endpoint's counter name to reach n. */
static int
wait_stat(const char *name, int n, int ms)
{
	for (int64_t end = h_now_ms() + ms; h_now_ms() < end; usleep(100000))
		if (hooks_stat(name) >= n)
			return 0;
	return -1;
}

/* Quarantine demo key `index` (a 401 on its next call) with a paid request. */
static void
quarantine(int index, long want)
{
	char ctl[96];

	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"fail_status\":401,\"fail_count\":1}", index);
	assert_int_equal(h_demo_control(&T.env, ctl), 0);
	paid(want);
}

static void
test_deliver(void **state)
{
	cJSON *st, *d;
	char sql[256];

	(void)state;
	quarantine(0, 200);
	if (wait_stat("verified", 1, 10000) != 0)
		fail_msg("no verified delivery");
	st = hooks_call("/_fake/stats", NULL);
	assert_int_equal(cJSON_GetObjectItem(st, "invalid")->valueint, 0);
	d = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "deliveries"), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "type")), "key.quarantined");
	/* One of A's two keys (which demo key is which listing is the router's business). */
	snprintf(T.first, sizeof(T.first), "%s",
	    cJSON_GetStringValue(cJSON_GetObjectItem(d, "key_id")));
	assert_true(strcmp(T.first, T.key_a[0]) == 0 || strcmp(T.first, T.key_a[1]) == 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "id")),
	    cJSON_GetStringValue(cJSON_GetObjectItem(d, "event_id")));
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(d, "detail")), "401"));
	cJSON_Delete(st);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = '%s'"
	    " AND state = 'done' AND attempts = 1 AND last_status = 204", T.hook_id);
	for (int i = 0; i < 50 && h_db_int(&T.env, "platform", sql) != 1; i++)
		usleep(100000);
	assert_int_equal(h_db_int(&T.env, "platform", sql), 1);
}

static void
test_retry(void **state)
{
	cJSON *st;
	char sql[256];
	int before = hooks_stat("verified");

	(void)state;
	cJSON_Delete(hooks_call("/_fake/control", "{\"fail\":1}"));
	/* A's last key: no key at its price is left, so the buyer is not served (nor charged). */
	quarantine(1, 0);
	if (wait_stat("failed", 1, 10000) != 0)
		fail_msg("the first attempt never came");
	/* The first retry waits 5 s. */
	if (wait_stat("verified", before + 1, 15000) != 0)
		fail_msg("no retry was delivered");
	st = hooks_call("/_fake/stats", NULL);
	{
		const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(
		    cJSON_GetArrayItem(cJSON_GetObjectItem(st, "deliveries"), before), "key_id"));

		assert_non_null(k);
		assert_string_not_equal(k, T.first);
		assert_true(strcmp(k, T.key_a[0]) == 0 || strcmp(k, T.key_a[1]) == 0);
	}
	cJSON_Delete(st);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = '%s'"
	    " AND state = 'done' AND attempts = 2", T.hook_id);
	for (int i = 0; i < 50 && h_db_int(&T.env, "platform", sql) != 1; i++)
		usleep(100000);
	assert_int_equal(h_db_int(&T.env, "platform", sql), 1);
}

/* platform.conf with webhook_allow_private = 0, and the platform restarted on it. */
static void
restart_public_only(void)
{
	size_t len;
	char *conf = h_read(&T.env, "etc/platform.conf", &len), *at, path[400];
	FILE *fp;

	assert_non_null(conf);
	assert_non_null(at = strstr(conf, "webhook_allow_private = 1"));
	at[strlen("webhook_allow_private = ")] = '0';
	snprintf(path, sizeof(path), "%s/etc/platform.conf", T.env.dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(conf, fp);
	assert_int_equal(fclose(fp), 0);
	free(conf);
	assert_int_equal(h_signal(&T.env, "platform", SIGTERM), 0);
	assert_int_equal(h_start(&T.env, "platform"), 0);
	assert_int_equal(h_wait_health(&T.env, 200, 10000), 0);
}

static void
test_ssrf(void **state)
{
	char body[200], sql[300];
	int received = hooks_stat("received");
	const char *id;
	long st;
	cJSON *j;

	(void)state;
	restart_public_only();
	snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/hooks/b\"}", T.port);
	expect("POST", "/api/webhooks", T.auth_b, body, 400);
	/* https to loopback passes the form check; the address check stops it at connect. */
	snprintf(body, sizeof(body), "{\"url\":\"https://127.0.0.1:%d/hooks/b\"}", T.port);
	j = api("POST", "/api/webhooks", T.auth_b, body, &st);
	assert_int_equal(st, 201);
	assert_non_null(id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = '%s'"
	    " AND attempts >= 1 AND last_status = 0 AND state = 'due'", id);
	cJSON_Delete(j);
	/* B's only key is quarantined: the buyer is not served, B's endpoint is due an event. */
	quarantine(2, 0);
	for (int i = 0; i < 100 && h_db_int(&T.env, "platform", sql) != 1; i++)
		usleep(100000);
	assert_int_equal(h_db_int(&T.env, "platform", sql), 1);
	assert_int_equal(hooks_stat("received"), received);
	/* Refused before connecting, not by a failed TLS handshake with a plain HTTP endpoint. */
	assert_true(h_log_contains(&T.env, "call to 127.0.0.1 refused by its address check"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_api),
	    cmocka_unit_test(test_deliver),
	    cmocka_unit_test(test_retry),
	    cmocka_unit_test(test_ssrf),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
