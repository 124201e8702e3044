/*
 * test_h2.c — cn2-vault's upstream calls over HTTP/2, against a real HTTP/2
 * upstream: tests/fakes/h2.mjs (node:http2, TLS with ALPN h2, OpenAI-like
 * answers) with a certificate made here, which the vault trusts only
 * through its ca_file. Paid requests go through the edge and the real
 * daemons; the fake says what it saw (GET /_fake/stats).
 *
 *   call         one paid call goes upstream over HTTP/2 and the buyer
 *                gets the upstream's body, with a receipt
 *   multiplex    20 paid calls at once share at most 2 connections, with
 *                more than one stream in flight on one of them; the
 *                vault's own counters agree
 *   stream       an SSE answer over h2 reaches the buyer complete, in
 *                order, ending in [DONE]
 *   credentials  the seller's key arrived as the one Authorization; the
 *                buyer's own bearer token and payment credential did not
 *   h1           a provider whose key goes in x-api-key is called over
 *                HTTP/1.1 (HPACK would keep that header in its table)
 *
 * Security stance: the keys here are test canaries; the fake never repeats
 * the seller's key (it reports "<the key>" or "<not the key>").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cert.h"
#include "common/mpp.h"
#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"h2-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
#define STREAM_BODY \
	"{\"model\":\"h2-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define PATH "/v1/chat/completions"
#define HOST "Host: h2.localhost"
#define SELLER_KEY "sk-h2-seller-4f1c9a7e2b6d8053"
#define BUYER_TOKEN "sk-buyer-own-token-9d2e7c41"
#define NCALLS 20
#define EVENTS 8
#define DONE "data: [DONE]\n\n"

static struct {
	struct h_env env;
	struct h_ipc ctl;
	int port;	 /* the fake's */
	pid_t fake;
	char cert[400]; /* the fake's certificate, the vault's ca_file */
} T;

/* Setup. */

/* Provider "h2": the fake, authenticated like OpenAI. */
static void
add_h2(cJSON *providers, void *arg)
{
	char url[64];
	cJSON *p = cJSON_CreateObject(), *routes = cJSON_AddArrayToObject(p, "routes");

	snprintf(url, sizeof(url), "https://localhost:%d", *(int *)arg);
	cJSON_AddStringToObject(p, "upstream", url);
	cJSON_AddItemToObject(p, "auth",
	    cJSON_Parse("{\"header\":\"Authorization\",\"prefix\":\"Bearer \"}"));
	cJSON_AddBoolToObject(p, "stream", 1);
	cJSON_AddItemToArray(routes, cJSON_CreateString("POST " PATH));
	cJSON_AddItemToArray(routes, cJSON_CreateString("GET /v1/models"));
	/* "h2x": the same upstream, with the key in x-api-key as Anthropic takes it. */
	cJSON_AddItemToObject(providers, "h2x", cJSON_Duplicate(p, 1));
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(providers, "h2x"), "auth",
	    cJSON_Parse("{\"header\":\"x-api-key\",\"prefix\":\"\"}"));
	cJSON_AddItemToObject(providers, "h2", p);
}

static int
write_secret(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	return close(fd) == 0 && ok ? 0 : -1;
}

/* The fake's certificate and key, the seller's key, the catalogue and the vault's ca_file. */
static int
prepare(char *key, char *keyfile, size_t cap)
{
	static const char *const names[] = {"localhost"};
	char dir[300], err[256], conf[500];

	snprintf(dir, sizeof(dir), "%s/h2", T.env.dir);
	snprintf(T.cert, sizeof(T.cert), "%s/tls.cert", dir);
	snprintf(key, cap, "%s/tls.key", dir);
	snprintf(keyfile, cap, "%s/secrets/h2.key", T.env.dir);
	snprintf(conf, sizeof(conf), "ca_file = %s\n", T.cert);
	if (mkdir(dir, 0700) != 0 ||
	    cert_generate(T.cert, key, names, 1, 30, err, sizeof(err)) != 0 ||
	    write_secret(keyfile, SELLER_KEY "\n") != 0 ||
	    h_catalogue_edit(&T.env, add_h2, &T.port) != 0 ||
	    h_conf_append(&T.env, "vault", conf) != 0)
		return -1;
	return 0;
}

static int
group_setup(void **state)
{
	static const enum ipc_role vault[] = {ROLE_VAULT};
	char key[400], keyfile[400];
	const char *extra[] = {"--cert", T.cert, "--key", key, "--api-key", keyfile, NULL};

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(&T, 0, sizeof(T));
	if (h_init(&T.env, NULL) != 0)
		return -1;
	T.port = h_free_port();
	if (prepare(key, keyfile, sizeof(key)) != 0 ||
	    (T.fake = h_start_node_fake(&T.env, "h2.mjs", T.port, extra)) < 0 ||
	    h_up(&T.env) != 0 || h_ipc_open(&T.env, &T.ctl, ROLE_CTL, vault, 1) != 0)
		return -1;
	return h_keys_add(&T.env, "h2-seller", "h2", keyfile, "0.001") != 0 ||
		   h_keys_add(&T.env, "h2x-seller", "h2x", keyfile, "0.001") != 0 ?
	    -1 :
	    0;
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	h_ipc_close(&T.ctl);
	h_stop_fake(T.fake);
	down = h_down(&T.env);
	curl_global_cleanup();
	return down;
}

/* The fake's test endpoints, over TLS with its own certificate. */

static char *
fake_call(const char *path, const char *json)
{
	char url[128], *out = NULL;
	size_t len = 0;
	long status = 0;
	CURL *c = curl_easy_init();
	FILE *mem = open_memstream(&out, &len);

	assert_non_null(c);
	assert_non_null(mem);
	snprintf(url, sizeof(url), "https://localhost:%d%s", T.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, T.cert);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (json != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	fclose(mem);
	assert_int_equal(status, 200);
	return out;
}

static void
fake_control(const char *json)
{
	free(fake_call("/_fake/control", json));
}

/* The fake's stats; *text gets their JSON text when not NULL (caller frees). */
static cJSON *
fake_stats(char **text)
{
	char *s = fake_call("/_fake/stats", NULL);
	cJSON *j = cJSON_Parse(s);

	assert_non_null(j);
	if (text != NULL)
		*text = s;
	else
		free(s);
	return j;
}

static int
stat_int(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);

	assert_true(cJSON_IsNumber(v));
	return v->valueint;
}

/* How many provider requests came over HTTP version v ("2.0", "1.1"). */
static int
version_count(const cJSON *j, const char *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(j, "versions"), v);

	return cJSON_IsNumber(n) ? n->valueint : 0;
}

/* The vault's upstream connection counters, from its health detail. */
static void
vault_conns(unsigned long long *opened, unsigned long long *reused)
{
	struct h_reply r;
	const char *p;

	assert_int_equal(h_ipc_call(&T.ctl, ROLE_VAULT, IPC_HEALTH, NULL, &r, 1, 5000), 1);
	assert_int_equal(r.type, IPC_HEALTH_REP);
	p = strstr(r.msg.health_rep.detail, "upstream conns ");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "upstream conns %llu opened, %llu reused", opened, reused), 2);
	h_replies_free(&r, 1);
}

/* A buyer's paid POST through the edge's plain port to host: pay, then send body again. */
static void
paid_post_to(const char *host, const char *body, struct h_resp *r)
{
	char auth[16384];
	const char *pay[] = {host, NULL};
	const char *hs[] = {host, "Content-Type: application/json", auth, NULL};

	assert_int_equal(h_pay_header(&T.env, PATH, pay, body, auth, sizeof(auth)), 0);
	h_http(&T.env, "POST", PATH, hs, body, strlen(body), r);
}

static void
paid_post(const char *body, struct h_resp *r)
{
	paid_post_to(HOST, body, r);
}

static void
test_h2_call(void **state)
{
	struct h_resp r;
	cJSON *j;

	(void)state;
	fake_control("{\"reset\": true}");
	paid_post(CHAT, &r);
	if (r.status != 200)
		fail_msg("status %ld: %s", r.status, r.body);
	assert_int_equal(r.curl_code, 0);
	/* The fake writes the version it served in the answer: the buyer got its body. */
	assert_non_null(strstr(r.body, "\"object\":\"chat.completion\""));
	assert_non_null(strstr(r.body, "served over HTTP/2.0"));
	assert_non_null(strcasestr(r.headers, "\nPayment-Receipt: "));
	h_resp_free(&r);
	j = fake_stats(NULL);
	assert_int_equal(stat_int(j, "requests"), 1);
	assert_int_equal(version_count(j, "2.0"), 1);
	assert_int_equal(stat_int(j, "auth_ok"), 1);
	cJSON_Delete(j);
}

/*
 * A key that travels in a header other than Authorization would be kept in
 * the connection's HPACK table (nghttp2 indexes it), so the vault calls
 * such a provider over HTTP/1.1, even where the upstream offers h2.
 */
static void
test_custom_header_stays_h1(void **state)
{
	struct h_resp r;
	cJSON *j;

	(void)state;
	fake_control("{\"reset\": true}");
	paid_post_to("Host: h2x.localhost", CHAT, &r);
	if (r.status != 200)
		fail_msg("status %ld: %s", r.status, r.body);
	assert_non_null(strstr(r.body, "served over HTTP/1.1"));
	h_resp_free(&r);
	j = fake_stats(NULL);
	assert_int_equal(stat_int(j, "requests"), 1);
	assert_int_equal(version_count(j, "1.1"), 1);
	assert_int_equal(version_count(j, "2.0"), 0);
	assert_int_equal(stat_int(j, "auth_ok"), 1);
	cJSON_Delete(j);
}

/* Multiplexing: many paid calls at once. */

struct call {
	CURL *c;
	struct curl_slist *hs;
	FILE *mem;
	char *body;
	size_t len;
	long status;
	int done;
};

static void
call_setup(struct call *k, const char *auth)
{
	char url[128];

	memset(k, 0, sizeof(*k));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", T.env.http_port, PATH);
	k->hs = curl_slist_append(NULL, HOST);
	k->hs = curl_slist_append(k->hs, "Content-Type: application/json");
	k->hs = curl_slist_append(k->hs, auth);
	assert_non_null(k->mem = open_memstream(&k->body, &k->len));
	assert_non_null(k->c = curl_easy_init());
	curl_easy_setopt(k->c, CURLOPT_URL, url);
	curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, k->hs);
	curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, CHAT);
	curl_easy_setopt(k->c, CURLOPT_WRITEDATA, k->mem);
	curl_easy_setopt(k->c, CURLOPT_PRIVATE, k);
	curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L);
}

static int
calls_collect(CURLM *m)
{
	int n = 0, left;
	CURLMsg *msg;

	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		struct call *k;
		char *priv;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		k = (struct call *)(void *)priv;
		k->done = msg->data.result == CURLE_OK ? 1 : -1;
		curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &k->status);
		n++;
	}
	return n;
}

/* Run the calls at once for at most 30 s; each one's outcome is in it. */
static void
calls_run(struct call *ks, int n)
{
	CURLM *m = curl_multi_init();
	int64_t end = h_now_ms() + 30000;
	int finished = 0, running;

	assert_non_null(m);
	for (int i = 0; i < n; i++)
		curl_multi_add_handle(m, ks[i].c);
	while (finished < n && h_now_ms() < end) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 50, NULL);
		finished += calls_collect(m);
	}
	for (int i = 0; i < n; i++) {
		curl_multi_remove_handle(m, ks[i].c);
		curl_easy_cleanup(ks[i].c);
		curl_slist_free_all(ks[i].hs);
		fclose(ks[i].mem);
	}
	curl_multi_cleanup(m);
}

static void
test_h2_multiplex(void **state)
{
	struct call ks[NCALLS];
	unsigned long long opened0, reused0, opened, reused;
	char auth[16384];
	const char *pay[] = {HOST, NULL};
	cJSON *j;

	(void)state;
	for (int i = 0; i < NCALLS; i++) {
		assert_int_equal(h_pay_header(&T.env, PATH, pay, CHAT, auth, sizeof(auth)), 0);
		call_setup(&ks[i], auth);
	}
	/* Each answer waits, so the calls overlap at the upstream. */
	fake_control("{\"reset\": true}");
	fake_control("{\"delay_ms\": 400}");
	vault_conns(&opened0, &reused0);
	calls_run(ks, NCALLS);
	for (int i = 0; i < NCALLS; i++) {
		if (ks[i].done != 1 || ks[i].status != 200 ||
		    strstr(ks[i].body, "served over HTTP/2.0") == NULL)
			fail_msg("call %d: done %d, status %ld: %s", i, ks[i].done, ks[i].status,
			    ks[i].body != NULL ? ks[i].body : "");
		free(ks[i].body);
	}
	fake_control("{\"delay_ms\": 0}");
	j = fake_stats(NULL);
	print_message("# %d calls: %d sessions, at most %d streams at once on one\n", NCALLS,
	    stat_int(j, "sessions"), stat_int(j, "max_concurrent"));
	assert_int_equal(stat_int(j, "requests"), NCALLS);
	assert_int_equal(version_count(j, "2.0"), NCALLS);
	assert_true(stat_int(j, "sessions") <= 2);
	assert_true(stat_int(j, "max_concurrent") > 1);
	cJSON_Delete(j);
	/* The vault counts the same: calls joined a connection rather than opening one. */
	vault_conns(&opened, &reused);
	assert_true(opened - opened0 <= 2);
	assert_true(reused - reused0 >= NCALLS - 2);
}

static void
test_h2_stream(void **state)
{
	struct h_resp r;
	const char *p;
	char tok[24];
	cJSON *j;

	(void)state;
	fake_control("{\"reset\": true}");
	fake_control("{\"events\": 8, \"interval_ms\": 30}");
	paid_post(STREAM_BODY, &r);
	if (r.status != 200)
		fail_msg("status %ld: %s", r.status, r.body);
	assert_int_equal(r.curl_code, 0);
	assert_non_null(strcasestr(r.headers, "content-type: text/event-stream"));
	/* Every event, in order, then the clean end; no error event from the edge. */
	p = r.body;
	for (int i = 0; i < EVENTS; i++) {
		snprintf(tok, sizeof(tok), "\"tok%d \"", i);
		if ((p = strstr(p, tok)) == NULL)
			fail_msg("event %d missing or out of order", i);
	}
	assert_non_null(strstr(p, "\"finish_reason\":\"stop\""));
	assert_true(r.len >= strlen(DONE) && strcmp(r.body + r.len - strlen(DONE), DONE) == 0);
	assert_null(strstr(r.body, "event: error"));
	h_resp_free(&r);
	j = fake_stats(NULL);
	assert_int_equal(stat_int(j, "requests"), 1);
	assert_int_equal(version_count(j, "2.0"), 1);
	cJSON_Delete(j);
	fake_control("{\"reset\": true}");
}

/* Credentials. */

/* A secret of the state directory, without a trailing newline (caller frees). */
static char *
secret_of(const char *rel, size_t *len)
{
	char *s = h_read(&T.env, rel, len);

	assert_non_null(s);
	while (*len > 0 && s[*len - 1] == '\n')
		s[--*len] = '\0';
	return s;
}

/*
 * "Payment-Authorization: Payment …" for a challenge of the route, bound to
 * that header, so the buyer's Authorization can carry their own token. The
 * edge issues Authorization challenges; the test re-signs the first one for
 * Payment-Authorization with the state directory's challenge secret, as
 * test_methods.c does, which is what payments would issue for such a route.
 */
static char *
header_bound_credential(void)
{
	const char *hs[] = {HOST, "Content-Type: application/json", NULL};
	char id[MPP_ID_BUFSZ], proof[MPP_ID_BUFSZ], *line, *end, *cred, *out, *csec, *tsec;
	struct mpp_challenge c;
	struct h_resp r;
	size_t clen, tlen;
	cJSON *payload = cJSON_CreateObject();

	h_http(&T.env, "POST", PATH, hs, CHAT, strlen(CHAT), &r);
	assert_int_equal(r.status, 402);
	assert_non_null(line = strcasestr(r.headers, "WWW-Authenticate: "));
	assert_non_null(end = strstr(line + 18, "\r\n"));
	assert_int_equal(mpp_challenge_parse(line + 18, (size_t)(end - line - 18), &c, NULL, 0), 0);
	csec = secret_of("secrets/challenge.key", &clen);
	tsec = secret_of("secrets/test.key", &tlen);
	c.header = MPP_HEADER_PAYMENT_AUTH;
	assert_int_equal(mpp_challenge_id((const uint8_t *)csec, clen, &c, id), 0);
	c.id = id;
	assert_int_equal(mpp_test_proof((const uint8_t *)tsec, tlen, id, proof), 0);
	cJSON_AddStringToObject(payload, "proof", proof);
	assert_non_null(cred = mpp_credential_format(&c, payload, NULL));
	assert_true(asprintf(&out, "%s: %s", MPP_HEADER_PAYMENT_AUTH, cred) > 0);
	free(cred);
	free(csec);
	free(tsec);
	cJSON_Delete(payload);
	mpp_challenge_free(&c);
	h_resp_free(&r);
	return out;
}

/* The last request the fake saw: one Authorization, the seller's key; nothing of the buyer's. */
static void
check_last_headers(const cJSON *last)
{
	const cJSON *h;
	int nauth = 0;

	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(last, "version")), "2.0");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(last, "auth")), "key");
	cJSON_ArrayForEach(h, cJSON_GetObjectItem(last, "headers")) {
		const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(h, 0));
		const char *value = cJSON_GetStringValue(cJSON_GetArrayItem(h, 1));

		assert_non_null(name);
		assert_non_null(value);
		nauth += strcmp(name, "authorization") == 0;
		assert_string_not_equal(name, "payment-authorization");
		assert_null(strstr(value, "Payment "));
	}
	assert_int_equal(nauth, 1);
}

static void
test_h2_credentials(void **state)
{
	char *pay = header_bound_credential(), *text;
	const char *hs[] = {HOST, "Content-Type: application/json",
	    "Authorization: Bearer " BUYER_TOKEN, pay, NULL};
	struct h_resp r;
	cJSON *j, *last;

	(void)state;
	fake_control("{\"reset\": true}");
	h_http(&T.env, "POST", PATH, hs, CHAT, strlen(CHAT), &r);
	if (r.status != 200)
		fail_msg("status %ld: %s", r.status, r.body);
	assert_non_null(strstr(r.body, "served over HTTP/2.0"));
	h_resp_free(&r);
	free(pay);
	j = fake_stats(&text);
	assert_int_equal(stat_int(j, "requests"), 1);
	assert_int_equal(stat_int(j, "auth_ok"), 1);
	assert_non_null(last = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "last"), 0));
	check_last_headers(last);
	assert_null(strstr(text, BUYER_TOKEN));
	free(text);
	cJSON_Delete(j);
	assert_false(h_log_contains(&T.env, BUYER_TOKEN));
	assert_false(h_log_contains(&T.env, SELLER_KEY));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_h2_call),
	    cmocka_unit_test(test_h2_multiplex),
	    cmocka_unit_test(test_h2_stream),
	    cmocka_unit_test(test_h2_credentials),
	    cmocka_unit_test(test_custom_header_stays_h1),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
