/*
 * test_pool.c — the key pool through the edge: the six real daemons, the
 * demo upstream accepting five keys (one per seller, listed with `cn2 keys
 * add`, terms set with PATCH /api/keys/:id), per-key failures injected in
 * the demo and per-key counts read from it.
 *
 * Covered: the cheapest key wins; equal keys share; a failing key loses its
 * share and regains it after recovering; failover to another key is
 * invisible to the buyer but for latency (no response head, a 5xx head); a
 * 401 quarantines the key (the buyer never sees it, the seller gets an
 * event, time does not bring it back, the seller's update does); a 429
 * cools a key for its Retry-After; a 429 whose body says the quota is gone
 * (OpenAI's insufficient_quota) and a 400 saying the credit balance is too
 * low quarantine it with reason "quota", while a plain 429 and one whose
 * message merely quotes the marker only rest it; the premium pool (× 1.25, 503 when no
 * premium key, 400 for an unknown pool); EU routing (CF-IPCountry from a
 * trusted proxy; 503 when no eu key; the region in the receipt and the
 * metadata) and, in a second setup, CF-IPCountry from an untrusted peer
 * ignored; an RPM limit under 200 concurrent paid requests never exceeded;
 * conversation affinity held, and broken by failure and by ineligibility,
 * and kept across a restart of the router;
 * the public marketplace summary; the retention sweep; the seller API on
 * one key (GET, refused PATCHes, DELETE for good).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/b64url.h"
#include "common/mpp.h"
#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
#define NK 5
#define BURST 200
#define BURST_RPM 20

static struct h_env env;
static const char *const sellers[NK] = {"seller-a", "seller-b", "seller-c", "seller-d", "seller-e"};
static const char *const prices[NK] = {"0.001", "0.002", "0.003", "0.004", "0.005"};
static char key_id[NK][IPC_KEY_ID_MAX + 1];
static char auth_line[NK][1200]; /* "Authorization: Bearer <JWT>" of each seller */
static long seen[NK];		 /* the demo's per-key counts at the last look */

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
url_of(struct h_env *e, const char *host, const char *path)
{
	static char buf[2][300];
	static int n;

	n ^= 1;
	snprintf(buf[n], sizeof(buf[n]), "https://%s:%d%s", host, e->https_port, path);
	return buf[n];
}

/* The id of a seller's only key, from GET /api/keys. */
static int
first_key_id(struct h_env *e, const char *auth, char *out, size_t cap)
{
	const char *hs[] = {auth, NULL};
	struct h_resp r;
	cJSON *j, *k;
	int rc = -1;

	if (h_http(e, "GET", url_of(e, "localhost", "/api/keys"), hs, NULL, 0, &r) != 0)
		return -1;
	j = cJSON_Parse(r.body);
	k = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0);
	if (r.status == 200 && cJSON_IsString(cJSON_GetObjectItem(k, "id"))) {
		snprintf(out, cap, "%s", cJSON_GetObjectItem(k, "id")->valuestring);
		rc = 0;
	}
	cJSON_Delete(j);
	h_resp_free(&r);
	return rc;
}

/* n keys for n sellers of e, demo key i at prices[i]. */
static int
list_keys(struct h_env *e, int n, const char *const *price)
{
	char path[400];

	for (int i = 0; i < n; i++) {
		if (i == 0)
			snprintf(path, sizeof(path), "%s/secrets/demo.key", e->dir);
		else
			snprintf(path, sizeof(path), "%s/secrets/demo%d.key", e->dir, i);
		if (h_bearer(e, sellers[i], auth_line[i], sizeof(auth_line[i])) != 0 ||
		    h_keys_add(e, sellers[i], "demo", path, price[i]) != 0 ||
		    first_key_id(e, auth_line[i], key_id[i], sizeof(key_id[i])) != 0) {
			fprintf(stderr, "listing demo key %d failed\n", i);
			return -1;
		}
	}
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (h_init(&env, "trusted_proxies = 127.0.0.1, ::1\n") != 0 ||
	    h_conf_append(&env, "router", "score_half_life_s = 1\nretry_after_default_s = 2\n") != 0 ||
	    h_start_demo_keys(&env, NK) != 0 || h_up(&env) != 0)
		return -1;
	return list_keys(&env, NK, prices);
}

static int
group_teardown(void **state)
{
	(void)state;
	return h_down(&env);
}

/* PATCH /api/keys/<key i> with body; the listing as it now is (caller deletes). */
static cJSON *
terms(int i, const char *body)
{
	const char *hs[] = {auth_line[i], "Content-Type: application/json", NULL};
	char path[128];
	struct h_resp r;
	cJSON *j;

	snprintf(path, sizeof(path), "/api/keys/%s", key_id[i]);
	assert_int_equal(h_http(&env, "PATCH", url_of(&env, "localhost", path), hs, body,
			     strlen(body), &r), 0);
	if (r.status != 200)
		fail_msg("PATCH key %d %s: %ld %s", i, body, r.status, r.body);
	j = cJSON_Parse(r.body);
	h_resp_free(&r);
	assert_non_null(j);
	return j;
}

static void
terms_ok(int i, const char *body)
{
	cJSON_Delete(terms(i, body));
}

/* A call to the demo's test API (/_demo/…): its JSON answer, which must be a 200. */
static cJSON *
demo_api(const char *method, const char *path, const char *body)
{
	char url[128];
	struct h_resp r;
	cJSON *j;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", env.demo_port, path);
	assert_int_equal(h_http(&env, method, url, NULL, body, body ? strlen(body) : 0, &r), 0);
	assert_int_equal(r.status, 200);
	j = cJSON_Parse(r.body);
	h_resp_free(&r);
	assert_non_null(j);
	return j;
}

/* The demo's controls: all of them, or one key's ("key": i in the JSON). */
static void
demo_control(const char *json)
{
	cJSON_Delete(demo_api("POST", "/_demo/control", json));
}

/* Per-key request counts since the last call. */
static void
served(long delta[NK])
{
	cJSON *j = demo_api("GET", "/_demo/stats", NULL), *by = cJSON_GetObjectItem(j, "by_key");

	assert_int_equal(cJSON_GetArraySize(by), NK);
	for (int i = 0; i < NK; i++) {
		long now = (long)cJSON_GetArrayItem(by, i)->valuedouble;

		delta[i] = now - seen[i];
		seen[i] = now;
	}
	cJSON_Delete(j);
}

/* The one key that took the last request(s), or -1 if none or several did. */
static int
who(void)
{
	long d[NK];
	int k = -1;

	served(d);
	for (int i = 0; i < NK; i++)
		if (d[i] > 0)
			k = k == -1 ? i : -2;
	return k < 0 ? -1 : k;
}

/*
 * Every key active, no terms, prices[i]; then the changes (NULL for none),
 * and the demo's failures cleared.
 */
static void
reset_keys(const char *const change[NK])
{
	char body[256];
	long d[NK];

	for (int i = 0; i < NK; i++) {
		snprintf(body, sizeof(body),
		    "{\"status\":\"active\",\"price_usd\":\"%s\",\"region\":null,\"premium\":false,"
		    "\"routes\":[],\"rpm\":0,\"rpd\":0,\"daily_budget_usd\":null}",
		    prices[i]);
		terms_ok(i, body);
		if (change != NULL && change[i] != NULL)
			terms_ok(i, change[i]);
		snprintf(body, sizeof(body), "{\"key\":%d,\"reset\":true}", i);
		demo_control(body);
	}
	demo_control("{\"reset\":true}");
	served(d);
}

/* The last part of a problem+json body's type ("no-key-available"). */
static const char *
problem_name(const struct h_resp *r)
{
	static char name[64];
	cJSON *j = cJSON_Parse(r->body);
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));

	snprintf(name, sizeof(name), "%s", t != NULL && strrchr(t, '/') ? strrchr(t, '/') + 1 : "");
	cJSON_Delete(j);
	return name;
}

/* "Authorization: Payment …" for the first challenge of a 402. Caller frees. */
static char *
pay_line(struct h_env *e, const struct h_resp *r, int64_t *amount)
{
	char *line = strcasestr(r->headers, "WWW-Authenticate: "), *end, *cred, *out, proof[128];
	char *secret;
	struct mpp_challenge c;
	cJSON *payload, *req;
	size_t len;

	assert_non_null(line);
	line += 18;
	assert_non_null(end = strstr(line, "\r\n"));
	assert_int_equal(mpp_challenge_parse(line, (size_t)(end - line), &c, NULL, 0), 0);
	if (amount != NULL) {
		assert_non_null(req = mpp_request_decode(c.request));
		*amount = atoll(cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")));
		cJSON_Delete(req);
	}
	assert_non_null(secret = h_read(e, "secrets/test.key", &len));
	assert_int_equal(mpp_test_proof((const uint8_t *)secret, len, c.id, proof), 0);
	payload = cJSON_CreateObject();
	cJSON_AddStringToObject(payload, "proof", proof);
	assert_non_null(cred = mpp_credential_format(&c, payload, NULL));
	assert_true(asprintf(&out, "Authorization: %s", cred) > 0);
	free(cred);
	free(secret);
	cJSON_Delete(payload);
	mpp_challenge_free(&c);
	return out;
}

/* A paid chat request with extra header lines: the final response (or the first if not a 402). */
static void
paid_in(struct h_env *e, const char *const *extra, struct h_resp *r, int64_t *amount)
{
	const char *hs[10];
	char *auth;
	size_t n = 0;

	hs[n++] = "Content-Type: application/json";
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 8; i++)
		hs[n++] = extra[i];
	hs[n] = NULL;
	assert_int_equal(h_http(e, "POST", url_of(e, "demo.localhost", "/v1/chat/completions"), hs,
			     CHAT, strlen(CHAT), r), 0);
	if (r->status != 402)
		return;
	auth = pay_line(e, r, amount);
	h_resp_free(r);
	hs[n++] = auth;
	hs[n] = NULL;
	if (h_http(e, "POST", url_of(e, "demo.localhost", "/v1/chat/completions"), hs, CHAT,
		strlen(CHAT), r) != 0)
		fail_msg("paid request failed: curl error %d, status %ld, body \"%.200s\"",
		    r->curl_code, r->status, r->body != NULL ? r->body : "");
	free(auth);
}

static void
paid(const char *const *extra, struct h_resp *r)
{
	paid_in(&env, extra, r, NULL);
}

/* A paid request that must succeed: which key served it (the only one called). */
static int
paid_ok(const char *const *extra)
{
	struct h_resp r;
	int k;

	paid(extra, &r);
	if (r.status != 200)
		fail_msg("paid request: %ld %s", r.status, r.body);
	assert_non_null(strcasestr(r.headers, "Payment-Receipt: "));
	assert_non_null(strstr(r.body, "demo reply: 1 messages"));
	h_resp_free(&r);
	k = who();
	assert_true(k >= 0);
	return k;
}

/* The decoded Payment-Receipt of a response (caller deletes). */
static cJSON *
receipt_of(const struct h_resp *r)
{
	char *v = strcasestr(r->headers, "Payment-Receipt: "), *end;
	uint8_t raw[2048];
	size_t n;

	assert_non_null(v);
	v += 17;
	assert_non_null(end = strstr(v, "\r\n"));
	assert_int_equal(b64url_decode(v, (size_t)(end - v), raw, sizeof(raw) - 1, &n, 0), 0);
	raw[n] = '\0';
	return cJSON_Parse((const char *)raw);
}

/*
 * Wait until sql gives at least want: outcomes reach the router after the
 * buyer has the answer, so what they write is looked for, not assumed.
 */
static void
router_wait(struct h_env *e, const char *sql, long long want)
{
	int64_t end = ms_now() + 5000;
	long long v;

	while ((v = h_db_int(e, "router", sql)) < want && ms_now() < end)
		usleep(50000);
	if (v < want)
		fail_msg("%s: %lld, want at least %lld", sql, v, want);
}

/* The outcomes of the requests just made reach the router (the vault sends them after the end). */
static void
outcomes_settle(void)
{
	usleep(300000);
}

/* Tied keys a and b (the others dearer): after one request, the key the next one goes to. */
static int
tie_next(void)
{
	static const char *const tie[NK] = {NULL, "{\"price_usd\":\"0.001\"}"};
	int first;

	reset_keys(tie);
	first = paid_ok(NULL);
	assert_true(first == 0 || first == 1);
	return 1 - first;
}

static void
test_cheapest_wins(void **state)
{
	(void)state;
	reset_keys(NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(paid_ok(NULL), 0);
	/* The cheapest pauses: the next cheapest takes over at once. */
	terms_ok(0, "{\"status\":\"paused\"}");
	for (int i = 0; i < 2; i++)
		assert_int_equal(paid_ok(NULL), 1);
}

static void
test_ties_spread(void **state)
{
	int n[NK] = {0};

	(void)state;
	tie_next();
	for (int i = 0; i < 6; i++)
		n[paid_ok(NULL)]++;
	assert_int_equal(n[0], 3);
	assert_int_equal(n[1], 3);
}

/* Drop the connection (no head), then a 503 head: the buyer sees a normal answer each time. */
static void
test_failover_invisible(void **state)
{
	/* Every call dropped until reset: libcurl retries by itself when a kept-alive connection dies. */
	static const char *const fail[] = {
	    "\"drop_count\":1000",
	    "\"fail_status\":503,\"fail_count\":1",
	};
	char ctl[96];
	struct h_resp r;
	long d[NK];
	cJSON *j, *rc;

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		int next, t0;

		sleep(3); /* scores of keys that failed before are back in the top band */
		next = tie_next();

		snprintf(ctl, sizeof(ctl), "{\"key\":%d,%s}", next, fail[f]);
		demo_control(ctl);
		t0 = (int)ms_now();
		paid(NULL, &r);
		print_message("failover %zu took %d ms\n", f, (int)ms_now() - t0);
		assert_int_equal(r.status, 200);
		assert_non_null(strcasestr(r.headers, "Content-Type: application/json"));
		assert_null(strcasestr(r.headers, "Retry-After"));
		j = cJSON_Parse(r.body);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "object")),
		    "chat.completion");
		cJSON_Delete(j);
		rc = receipt_of(&r);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "status")), "success");
		cJSON_Delete(rc);
		h_resp_free(&r);
		/* Both keys were called: the failing one, then the other, which served. */
		served(d);
		assert_true(d[next] >= 1);
		assert_int_equal(d[1 - next], 1);
		snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"reset\":true}", next);
		demo_control(ctl);
	}
	router_wait(&env, "SELECT count(*) FROM requests WHERE status = 0 AND failure = 1", 1);
	router_wait(&env, "SELECT count(*) FROM requests WHERE status = 503", 1);
}

/* A failing key loses its share to its equal, and regains it once its score recovered. */
static void
test_failing_key_loses_and_regains(void **state)
{
	char ctl[96];
	int n[NK] = {0}, next;
	long d[NK];

	(void)state;
	sleep(3); /* the failover test's scores recover (half-life 1 s) */
	next = tie_next();
	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"fail_status\":500,\"fail_count\":100}", next);
	demo_control(ctl);
	/* The failing key is tried once (failover hides it), then gets nothing. */
	for (int i = 0; i < 6; i++) {
		struct h_resp r;

		paid(NULL, &r);
		assert_int_equal(r.status, 200);
		h_resp_free(&r);
		served(d);
		n[next] += (int)d[next];
		n[1 - next] += (int)d[1 - next];
		if (i == 0)
			outcomes_settle();
	}
	assert_int_equal(n[next], 1);
	assert_int_equal(n[1 - next], 6);
	/* It stops failing; after about two half-lives it is in the top band again. */
	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"reset\":true}", next);
	demo_control(ctl);
	sleep(3);
	n[0] = n[1] = 0;
	for (int i = 0; i < 6; i++)
		n[paid_ok(NULL)]++;
	assert_true(n[next] >= 2);
	assert_true(n[1 - next] >= 2);
}

static void
test_401_quarantines(void **state)
{
	char ctl[96], path[128], sql[256];
	const char *hs[2];
	struct h_resp r;
	long d[NK];
	cJSON *k;
	int next, n;

	(void)state;
	sleep(2);
	next = tie_next();
	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"fail_status\":401,\"fail_count\":1}", next);
	demo_control(ctl);
	/* The buyer is served by the other key and never sees the 401. */
	paid(NULL, &r);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "invalid_api_key"));
	h_resp_free(&r);
	served(d);
	assert_int_equal(d[next], 1);
	assert_int_equal(d[1 - next], 1);
	/* The seller sees the quarantine and why; an event waits for them. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM listings WHERE key_id = '%s'"
	    " AND status = 'quarantined'", key_id[next]);
	router_wait(&env, sql, 1);
	hs[0] = auth_line[next];
	hs[1] = NULL;
	snprintf(path, sizeof(path), "/api/keys/%s", key_id[next]);
	assert_int_equal(h_http(&env, "GET", url_of(&env, "localhost", path), hs, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	k = cJSON_Parse(r.body);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(k, "status")), "quarantined");
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(k, "status_reason")), "401"));
	cJSON_Delete(k);
	h_resp_free(&r);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM seller_events WHERE key_id = '%s'"
	    " AND seller_id = '%s' AND kind = 'key.quarantined' AND delivered IS NULL",
	    key_id[next], sellers[next]);
	assert_int_equal(h_db_int(&env, "router", sql), 1);
	/* Never probed with a buyer's money, however long it waits. */
	n = 0;
	for (int i = 0; i < 3; i++)
		n += paid_ok(NULL) == next;
	sleep(2);
	for (int i = 0; i < 3; i++)
		n += paid_ok(NULL) == next;
	assert_int_equal(n, 0);
	/* The seller updates it: back in the pool. */
	terms_ok(next, "{\"status\":\"active\"}");
	for (int i = 0; i < 4; i++)
		n += paid_ok(NULL) == next;
	assert_true(n >= 1);
}

static void
test_429_retry_after(void **state)
{
	char ctl[128];
	struct h_resp r;
	long d[NK];
	int next, n = 0;

	(void)state;
	next = tie_next();
	snprintf(ctl, sizeof(ctl),
	    "{\"key\":%d,\"fail_status\":429,\"fail_count\":1,\"retry_after\":2}", next);
	demo_control(ctl);
	paid(NULL, &r);
	assert_int_equal(r.status, 200); /* failed over: both called */
	h_resp_free(&r);
	served(d);
	assert_int_equal(d[next], 1);
	assert_int_equal(d[1 - next], 1);
	outcomes_settle();
	for (int i = 0; i < 4; i++)
		n += paid_ok(NULL) == next;
	assert_int_equal(n, 0); /* resting for its Retry-After */
	sleep(3);
	for (int i = 0; i < 4; i++)
		n += paid_ok(NULL) == next;
	assert_true(n >= 1); /* and back: a 429 does not hurt the score */
}

/* A key's listing status and reason, from router.db. */
static void
status_of(int i, const char *status, const char *reason_like)
{
	char sql[300];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM listings WHERE key_id = '%s'"
	    " AND status = '%s' AND reason LIKE '%s'", key_id[i], status, reason_like);
	router_wait(&env, sql, 1);
}

/* The seller events about key i. */
static long long
events_of(int i)
{
	char sql[300];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM seller_events WHERE key_id = '%s'"
	    " AND kind = 'key.quarantined'", key_id[i]);
	return h_db_int(&env, "router", sql);
}

/* Key next answers once with status and the demo's body kind; the buyer's answer. */
static long
fail_once(int next, int status, const char *body, int retry_after)
{
	char ctl[160];
	struct h_resp r;
	long d[NK], got;

	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"fail_status\":%d,\"fail_count\":1,"
	    "\"fail_body\":\"%s\",\"retry_after\":%d}", next, status, body, retry_after);
	demo_control(ctl);
	paid(NULL, &r);
	got = r.status;
	h_resp_free(&r);
	served(d);
	assert_int_equal(d[next], 1);
	return got;
}

/*
 * Quota errors that come as a 429 (OpenAI) or a 400 (Anthropic) with a body
 * saying so quarantine the key like a 402, with reason "quota" and an event
 * for the seller; a plain 429, or one whose message only quotes the marker
 * (as a provider quotes a buyer's text), rests it and no more.
 */
static void
test_quota_quarantines(void **state)
{
	long long before;
	int next, n = 0;

	(void)state;
	next = tie_next();
	before = events_of(next);
	assert_int_equal(fail_once(next, 429, "quota", 0), 200); /* failed over */
	status_of(next, "quarantined", "quota:%429%");
	assert_int_equal(events_of(next), before + 1);
	for (int i = 0; i < 4; i++)
		n += paid_ok(NULL) == next;
	sleep(3); /* longer than any Retry-After here: waiting does not bring it back */
	for (int i = 0; i < 2; i++)
		n += paid_ok(NULL) == next;
	assert_int_equal(n, 0);

	/* Anthropic's way: a 400, which the buyer gets (nothing to fail over for). */
	next = tie_next();
	before = events_of(next);
	assert_int_equal(fail_once(next, 400, "credit", 0), 400);
	status_of(next, "quarantined", "quota:%400%");
	assert_int_equal(events_of(next), before + 1);

	/* A plain 429 rests the key for its Retry-After, and no more. */
	next = tie_next();
	before = events_of(next);
	assert_int_equal(fail_once(next, 429, "error", 1), 200);
	outcomes_settle();
	status_of(next, "active", "");
	assert_int_equal(events_of(next), before);
	sleep(2);
	n = 0;
	for (int i = 0; i < 4; i++)
		n += paid_ok(NULL) == next;
	assert_true(n >= 1);

	/* A message that quotes the marker (as a provider quotes a buyer's text) is no quota error. */
	next = tie_next();
	before = events_of(next);
	assert_int_equal(fail_once(next, 429, "echo", 1), 200);
	outcomes_settle();
	status_of(next, "active", "");
	assert_int_equal(events_of(next), before);
}

static void
test_premium(void **state)
{
	static const char *const premium[] = {"X-CN2-Pool: premium", NULL};
	static const char *const gold[] = {"X-CN2-Pool: gold", NULL};
	struct h_resp r;
	int64_t amount = 0;

	(void)state;
	reset_keys(NULL);
	/* No premium key: 503, never a quiet downgrade to the standard pool. */
	paid(premium, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(problem_name(&r), "no-premium-key-available");
	assert_non_null(strstr(r.body, "premium"));
	h_resp_free(&r);
	paid(gold, &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(problem_name(&r), "invalid-pool");
	h_resp_free(&r);
	/* Key c opts in: premium buyers pay its price + fee, × 1.25. */
	terms_ok(2, "{\"premium\":true}");
	paid_in(&env, premium, &r, &amount);
	assert_int_equal(r.status, 200);
	assert_int_equal(amount, 4125); /* 3000 + 10 % = 3300, × 1.25 */
	h_resp_free(&r);
	assert_int_equal(who(), 2);
	/* Standard buyers still get the cheapest key. */
	assert_int_equal(paid_ok(NULL), 0);
	router_wait(&env, "SELECT count(*) FROM requests WHERE pool = 1", 1);
}

static void
test_eu(void **state)
{
	static const char *const de[] = {"CF-IPCountry: DE", NULL};
	static const char *const fr[] = {"CF-IPCountry: fr", NULL};
	static const char *const us[] = {"CF-IPCountry: US", NULL};
	struct h_resp r;
	cJSON *rc;

	(void)state;
	reset_keys(NULL);
	terms_ok(4, "{\"region\":\"us\"}");
	/* No eu key: EU buyers get a 503 that says why. */
	paid(de, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(problem_name(&r), "no-eu-key-available");
	assert_non_null(strstr(r.body, "EU"));
	h_resp_free(&r);
	/* Key d is in the EU: it serves EU buyers, however cheap the others are. */
	terms_ok(3, "{\"region\":\"eu\"}");
	paid(de, &r);
	assert_int_equal(r.status, 200);
	rc = receipt_of(&r);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "region")), "eu");
	cJSON_Delete(rc);
	h_resp_free(&r);
	assert_int_equal(who(), 3);
	assert_int_equal(paid_ok(fr), 3);
	/* Others get the cheapest, wherever it is. */
	assert_int_equal(paid_ok(us), 0);
	assert_int_equal(paid_ok(NULL), 0);
	{
		char sql[200];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM requests WHERE region = 'eu'"
		    " AND key_id = '%s' AND status = 200", key_id[3]);
		router_wait(&env, sql, 2);
	}
}

/* curl multi: every request of set at once; status codes into st, problem names into pn. */
static void
burst(char **auth, size_t n, long *st, char (*pn)[48])
{
	CURLM *m = curl_multi_init();
	CURL **h = calloc(n, sizeof(*h));
	struct curl_slist **hl = calloc(n, sizeof(*hl));
	FILE **sink = calloc(n, sizeof(*sink));
	char **buf = calloc(n, sizeof(*buf));
	size_t *len = calloc(n, sizeof(*len));
	char url[128];
	int running = 1;

	assert_non_null(m);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", env.http_port);
	for (size_t i = 0; i < n; i++) {
		h[i] = curl_easy_init();
		sink[i] = open_memstream(&buf[i], &len[i]);
		hl[i] = curl_slist_append(NULL, "Host: demo.localhost");
		hl[i] = curl_slist_append(hl[i], "Content-Type: application/json");
		hl[i] = curl_slist_append(hl[i], auth[i]);
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hl[i]);
		curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, CHAT);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, sink[i]);
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(h[i], CURLOPT_NOSIGNAL, 1L);
		curl_multi_add_handle(m, h[i]);
	}
	while (running > 0) {
		curl_multi_perform(m, &running);
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st[i]);
		fclose(sink[i]);
		pn[i][0] = '\0';
		if (st[i] != 200) {
			struct h_resp r = {.body = buf[i]};

			snprintf(pn[i], sizeof(pn[i]), "%s", problem_name(&r));
		}
		free(buf[i]);
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		curl_slist_free_all(hl[i]);
	}
	curl_multi_cleanup(m);
	free(h);
	free(hl);
	free(sink);
	free(buf);
	free(len);
}

/* 200 paid requests at once against one key limited to 20 a minute: not one more passes. */
static void
test_rpm_under_200_concurrent(void **state)
{
	static const char *const only_e[NK] = {
	    "{\"status\":\"paused\"}", "{\"status\":\"paused\"}", "{\"status\":\"paused\"}",
	    "{\"status\":\"paused\"}", "{\"rpm\":20}",
	};
	static char *auth[BURST];
	static long st[BURST];
	static char pn[BURST][48];
	const char *hs[] = {"Content-Type: application/json", NULL};
	long d[NK], ok = 0, refused = 0, bound;
	int64_t t0, elapsed;

	(void)state;
	reset_keys(only_e);
	/* The credentials first: every 402 quotes key e, which has all its tokens. */
	for (int i = 0; i < BURST; i++) {
		struct h_resp r;

		assert_int_equal(h_http(&env, "POST", url_of(&env, "demo.localhost",
		    "/v1/chat/completions"), hs, CHAT, strlen(CHAT), &r), 0);
		assert_int_equal(r.status, 402);
		auth[i] = pay_line(&env, &r, NULL);
		h_resp_free(&r);
	}
	t0 = ms_now();
	burst(auth, BURST, st, pn);
	elapsed = ms_now() - t0;
	for (int i = 0; i < BURST; i++) {
		if (st[i] == 200)
			ok++;
		else if (st[i] == 503 && strcmp(pn[i], "no-key-available") == 0)
			refused++;
		else
			fail_msg("request %d: %ld %s", i, st[i], pn[i]);
		free(auth[i]);
	}
	served(d);
	/* A bucket of 20 refilling 20 a minute: at most 20 + 20 × t / 60 s pass in t. */
	bound = BURST_RPM + (long)(BURST_RPM * elapsed / 60000);
	print_message("%ld of %d served in %lld ms (bound %ld), %ld refused\n", ok, BURST,
	    (long long)elapsed, bound, refused);
	assert_int_equal(ok + refused, BURST);
	assert_int_equal(d[4], ok);
	assert_true(ok <= bound);
	assert_true(ok >= BURST_RPM);
}

static void
test_affinity(void **state)
{
	static const char *const conv[] = {"X-CN2-Session: conv-1", NULL};
	static const char *const bad[] = {"X-CN2-Session: has space", NULL};
	char ctl[96];
	int k, other, n[NK] = {0};
	struct h_resp r;

	(void)state;
	sleep(2);
	tie_next();
	/* Without a session equal keys take turns; with one, the calls stay together. */
	for (int i = 0; i < 4; i++)
		n[paid_ok(NULL)]++;
	assert_int_equal(n[0], 2);
	assert_int_equal(n[1], 2);
	k = paid_ok(conv);
	for (int i = 0; i < 4; i++)
		assert_int_equal(paid_ok(conv), k);
	/* The session's key fails (no head): failover, and the session follows the new key. */
	other = 1 - k;
	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"drop_count\":1000}", k);
	demo_control(ctl);
	paid(conv, &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	who();
	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"reset\":true}", k);
	demo_control(ctl);
	for (int i = 0; i < 3; i++)
		assert_int_equal(paid_ok(conv), other);
	/* Ineligible (paused): the session moves, and stays when the first key comes back. */
	terms_ok(other, "{\"status\":\"paused\"}");
	assert_int_equal(paid_ok(conv), k);
	terms_ok(other, "{\"status\":\"active\"}");
	for (int i = 0; i < 3; i++)
		assert_int_equal(paid_ok(conv), k);
	paid(bad, &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(problem_name(&r), "invalid-session");
	h_resp_free(&r);
}

/* The router restarts: a conversation stays with its key (sessions are in router.db). */
static void
test_affinity_survives_restart(void **state)
{
	static const char *const conv[] = {"X-CN2-Session: conv-restart", NULL};
	int k, c = -1;

	(void)state;
	sleep(2);
	tie_next();
	k = paid_ok(conv);
	assert_int_equal(paid_ok(conv), k);
	outcomes_settle();
	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
	assert_int_equal(h_start(&env, "router"), 0);
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);
	/*
	 * Equal keys take turns: once a call without the session went to k,
	 * the next pick is the other key, so only affinity sends the session
	 * back to k.
	 */
	for (int i = 0; i < 2 && c != k; i++)
		c = paid_ok(NULL);
	assert_int_equal(c, k);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(paid_ok(conv), k);
		assert_int_equal(paid_ok(NULL), 1 - k);
		assert_int_equal(paid_ok(NULL), k);
	}
	/* Only a hash of the session id is kept. */
	assert_true(h_db_int(&env, "router", "SELECT count(*) FROM sessions") >= 1);
	assert_int_equal(h_db_int(&env, "router", "SELECT count(*) FROM sessions"
	    " WHERE length(id) != 16 OR instr(id, 'conv') > 0"), 0);
}

static void
test_market_and_metadata(void **state)
{
	struct h_resp r;
	cJSON *j, *p, *demo = NULL;

	(void)state;
	reset_keys(NULL);
	terms_ok(3, "{\"region\":\"eu\",\"premium\":true}");
	/* Public: no token. */
	assert_int_equal(h_http(&env, "GET", url_of(&env, "localhost", "/api/marketplace/providers"),
			     NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	j = cJSON_Parse(r.body);
	assert_int_equal((int)cJSON_GetObjectItem(j, "window_days")->valuedouble, 30);
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(j, "providers"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")), "demo") == 0)
			demo = p;
	assert_non_null(demo);
	assert_int_equal((int)cJSON_GetObjectItem(demo, "keys")->valuedouble, NK);
	assert_int_equal((int)cJSON_GetObjectItem(demo, "eu_keys")->valuedouble, 1);
	assert_int_equal((int)cJSON_GetObjectItem(demo, "premium_keys")->valuedouble, 1);
	p = cJSON_GetObjectItem(demo, "price_micros");
	assert_int_equal((int)cJSON_GetObjectItem(p, "min")->valuedouble, 1100);
	assert_int_equal((int)cJSON_GetObjectItem(p, "max")->valuedouble, 5500);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(demo,
	    "price_usd"), "min")), "0.001100");
	/* Failures were injected above: uptime is below 1, and above 0. */
	assert_true(cJSON_GetObjectItem(demo, "requests")->valuedouble >= 30);
	assert_true(cJSON_GetObjectItem(demo, "uptime")->valuedouble < 1.0);
	assert_true(cJSON_GetObjectItem(demo, "uptime")->valuedouble > 0.5);
	assert_true(cJSON_GetObjectItem(demo, "latency_ms")->valuedouble >= 0);
	assert_null(strstr(r.body, "seller-"));
	assert_null(strstr(r.body, key_id[0]));
	cJSON_Delete(j);
	h_resp_free(&r);
	/* The aggregates count every metadata row; rows hold no address. */
	assert_int_equal(h_db_int(&env, "router", "SELECT sum(requests) FROM requests_hourly"),
	    h_db_int(&env, "router", "SELECT count(*) FROM requests"));
	assert_int_equal(h_db_int(&env, "router",
	    "SELECT count(*) FROM pragma_table_info('requests')"
	    " WHERE name LIKE '%ip%' OR name LIKE '%addr%' OR name LIKE '%body%'"), 0);
}

/* Rows of a provider in a table of router.db. */
static long long
rows(const char *table, const char *provider)
{
	char sql[200];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE provider = '%s'", table, provider);
	return h_db_int(&env, "router", sql);
}

/* Rows past their window go at the sweep that runs a second after the router starts. */
static void
test_retention_sweep(void **state)
{
	char path[400], sql[1024];
	int64_t now = (int64_t)time(NULL);
	sqlite3 *db;

	(void)state;
	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
	snprintf(path, sizeof(path), "%s/db/router.db", env.dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql),
	    "INSERT INTO requests (time, provider, method, path, status, latency_ms, failure,"
	    " key_id, grant_id) VALUES (%lld, 'old', 'POST', '/x', 200, 1, 0, 'k', 'g_old'),"
	    " (%lld, 'recent', 'POST', '/x', 200, 1, 0, 'k', 'g_recent');"
	    "INSERT INTO requests_hourly (hour, key_id, provider, requests, ok, failed,"
	    " latency_sum, amount_sum, eu, premium) VALUES (%lld, 'k', 'old', 1, 1, 0, 0, 0, 0, 0),"
	    " (%lld, 'k', 'recent', 1, 1, 0, 0, 0, 0, 0);",
	    (long long)(now - 31 * 86400), (long long)(now - 29 * 86400),
	    (long long)(now - 366 * 86400), (long long)(now - 300 * 86400));
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(h_start(&env, "router"), 0);
	sleep(2);
	assert_int_equal(rows("requests", "old"), 0);
	assert_int_equal(rows("requests", "recent"), 1);
	assert_int_equal(rows("requests_hourly", "old"), 0);
	assert_int_equal(rows("requests_hourly", "recent"), 1);
	/* And the pool came back from router.db: the edge still gets keys. */
	assert_int_equal(h_wait_health(&env, 200, 5000), 0);
	reset_keys(NULL);
	assert_int_equal(paid_ok(NULL), 0);
}

static void
patch_raw(const char *path, const char *const *hs, const char *body, struct h_resp *r)
{
	assert_int_equal(h_http(&env, "PATCH", url_of(&env, "localhost", path), hs, body,
			     strlen(body), r), 0);
}

/* The seller API on one key: read, refused changes, the list with terms, removal. */
static void
test_seller_api(void **state)
{
	const char *hs[] = {auth_line[4], "Content-Type: application/json", NULL};
	const char *other[] = {auth_line[0], NULL};
	char path[128];
	struct h_resp r;
	cJSON *j, *k;

	(void)state;
	snprintf(path, sizeof(path), "/api/keys/%s", key_id[4]);
	/* Another seller's key does not exist for them. */
	assert_int_equal(h_http(&env, "GET", url_of(&env, "localhost", path), other, NULL, 0, &r),
	    0);
	assert_int_equal(r.status, 404);
	h_resp_free(&r);
	/* Bad bodies change nothing. */
	patch_raw(path, hs, "{\"rpm\":-3}", &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(problem_name(&r), "invalid-request");
	h_resp_free(&r);
	patch_raw(path, hs, "{\"provider\":\"x\"}", &r);
	assert_int_equal(r.status, 400);
	h_resp_free(&r);
	patch_raw(path, hs, "{\"routes\":[\"post /x\"]}", &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(problem_name(&r), "invalid-listing");
	h_resp_free(&r);
	/* The list shows every key's terms. */
	k = terms(4, "{\"region\":\"us\",\"rpd\":500,\"routes\":[\"POST /v1/chat/completions\"]}");
	assert_int_equal((int)cJSON_GetObjectItem(k, "rpd")->valuedouble, 500);
	cJSON_Delete(k);
	assert_int_equal(h_http(&env, "GET", url_of(&env, "localhost", "/api/keys"), hs, NULL, 0, &r),
	    0);
	j = cJSON_Parse(r.body);
	k = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(k, "region")), "us");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(k, "routes"),
	    0)), "POST /v1/chat/completions");
	assert_true(cJSON_GetObjectItem(k, "score")->valuedouble > 0.9);
	cJSON_Delete(j);
	h_resp_free(&r);
	/* Removed for good. */
	assert_int_equal(h_http(&env, "DELETE", url_of(&env, "localhost", path), hs, NULL, 0, &r),
	    0);
	assert_int_equal(r.status, 200);
	j = cJSON_Parse(r.body);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "removed");
	cJSON_Delete(j);
	h_resp_free(&r);
	patch_raw(path, hs, "{\"status\":\"active\"}", &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(problem_name(&r), "listing-removed");
	h_resp_free(&r);
	assert_int_equal(h_http(&env, "GET", url_of(&env, "localhost", "/api/keys"), hs, NULL, 0, &r),
	    0);
	j = cJSON_Parse(r.body);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "keys")), 0);
	cJSON_Delete(j);
	h_resp_free(&r);
}

/* A second setup: CF-IPCountry from a peer that is not a trusted proxy is ignored. */
static struct h_env env2;

static int
untrusted_setup(void **state)
{
	static const char *const p2[] = {"0.001", "0.002"};

	(void)state;
	if (h_init(&env2, "trusted_proxies = 10.0.0.0/8\n") != 0 ||
	    h_start_demo_keys(&env2, 2) != 0 || h_up(&env2) != 0 || list_keys(&env2, 2, p2) != 0)
		return -1;
	return 0;
}

static int
untrusted_teardown(void **state)
{
	(void)state;
	return h_down(&env2);
}

static void
test_untrusted_country_ignored(void **state)
{
	static const char *const de[] = {"CF-IPCountry: DE", NULL};
	const char *hs[] = {auth_line[1], "Content-Type: application/json", NULL};
	char path[128];
	struct h_resp r;
	cJSON *rc;

	(void)state;
	snprintf(path, sizeof(path), "/api/keys/%s", key_id[1]);
	assert_int_equal(h_http(&env2, "PATCH", url_of(&env2, "localhost", path), hs,
			     "{\"region\":\"eu\"}", strlen("{\"region\":\"eu\"}"), &r), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	/* Were the header believed, only the dearer eu key could serve (and say so on the receipt). */
	paid_in(&env2, de, &r, NULL);
	assert_int_equal(r.status, 200);
	rc = receipt_of(&r);
	assert_null(cJSON_GetObjectItem(rc, "region"));
	cJSON_Delete(rc);
	h_resp_free(&r);
	router_wait(&env2, "SELECT count(*) FROM requests WHERE region = '' AND status = 200", 1);
}

int
main(void)
{
	const struct CMUnitTest pool[] = {
	    cmocka_unit_test(test_cheapest_wins),
	    cmocka_unit_test(test_ties_spread),
	    cmocka_unit_test(test_failover_invisible),
	    cmocka_unit_test(test_failing_key_loses_and_regains),
	    cmocka_unit_test(test_401_quarantines),
	    cmocka_unit_test(test_429_retry_after),
	    cmocka_unit_test(test_quota_quarantines),
	    cmocka_unit_test(test_premium),
	    cmocka_unit_test(test_eu),
	    cmocka_unit_test(test_rpm_under_200_concurrent),
	    cmocka_unit_test(test_affinity),
	    cmocka_unit_test(test_affinity_survives_restart),
	    cmocka_unit_test(test_market_and_metadata),
	    cmocka_unit_test(test_retention_sweep),
	    cmocka_unit_test(test_seller_api),
	};
	const struct CMUnitTest untrusted[] = {
	    cmocka_unit_test(test_untrusted_country_ignored),
	};
	int failed = cmocka_run_group_tests_name("pool", pool, group_setup, group_teardown);

	failed += cmocka_run_group_tests_name("untrusted", untrusted, untrusted_setup,
	    untrusted_teardown);
	curl_global_cleanup();
	return failed;
}
