/*
 * test_methods.c — the payment methods end to end through the edge: the six
 * real daemons, the demo upstream, and loopback fakes of each processor
 * (tests/fakes/fake.mjs: LND over TLS with its own freshly generated
 * certificate, Stripe, a Tempo JSON-RPC node), all over real sockets.
 *
 *   negotiation   one challenge per enabled method, in Accept-Payment's
 *                 order (q-values, wildcards, q=0), 400 when none is taken
 *   lightning     invoice from LND (macaroon, TLS), preimage from the fake
 *                 (the buyer's wallet), receipt reference = payment hash;
 *                 LND failing, slow or down
 *   cn2 pay       the client paying with lightning (through "its" LND),
 *                 stripe (a token) and tempo (a transfer it sent)
 *   stripe        SPT → PaymentIntent (form, Basic auth, Idempotency-Key
 *                 mpp_<id>_<spt>), succeeded / requires_action / declined;
 *                 Stripe failing, slow or down, and the reservation released
 *   tempo         push mode: a registered transfer pays once, ever; not yet
 *                 mined, too small, node failing or down
 *   headers       a credential from Payment-Authorization (beside the
 *                 buyer's own Authorization) when its challenge names it
 *   problems      each problem type of PROTOCOL.md's table: status, type,
 *                 a fresh challenge, no receipt
 *   idempotency   same key + credential + body: the outcome again; another
 *                 body: 422; in flight: 409 with Retry-After
 *   buyers        hashed ids, the daily ceiling (402 payment-insufficient)
 *   concurrency   100 requests with one credential: one upstream call, one
 *                 capture; group commit (fewer commits than writes)
 *   restart       cn2-payments killed with requests in flight: nothing lost
 *                 or captured twice
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <mbedtls/md.h>
#include <curl/curl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cert.h"
#include "cli/cli.h"
#include "common/b64url.h"
#include "common/mpp.h"
#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
#define CHAT2 "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"other\"}]}"
#define TOKEN "0x20c0000000000000000000000000000000000001"
#define RECIPIENT "0x742d35cc6634c0532925a3b844bc9e7595f8fe00"
#define PAYER "0x1111111111111111111111111111111111111111"
#define PRICE 1100 /* µUSD: the demo key's 0.001 USD plus the 10 % fee */
#define PROBLEM(n) "https://paymentauth.org/problems/" n
#define CN2(n) "https://cn2.ai/problems/" n

static struct {
	struct h_env env;
	int lnd_port, stripe_port, tempo_port;
	pid_t lnd, stripe, tempo;
	char *conf; /* payments.conf with the methods on */
} T;

static char *
url_of(const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "https://demo.localhost:%d%s", T.env.https_port, path);
	return buf;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fakes. */

static pid_t
start_lnd(void)
{
	char cert[400], key[400], mac[400];
	const char *extra[] = {"--cert", cert, "--key", key, "--macaroon", mac, NULL};

	snprintf(cert, sizeof(cert), "%s/lnd/tls.cert", T.env.dir);
	snprintf(key, sizeof(key), "%s/lnd/tls.key", T.env.dir);
	snprintf(mac, sizeof(mac), "%s/secrets/lnd.macaroon", T.env.dir);
	return h_start_fake(&T.env, "lnd", T.lnd_port, extra);
}

static pid_t
start_stripe(void)
{
	char key[400];
	const char *extra[] = {"--api-key", key, NULL};

	snprintf(key, sizeof(key), "%s/secrets/stripe.key", T.env.dir);
	return h_start_fake(&T.env, "stripe", T.stripe_port, extra);
}

/* POST or GET a fake's test endpoint; the body (caller frees) or NULL. */
static char *
fake_call(int port, const char *path, const char *body)
{
	char url[200];
	struct h_resp r;
	const char *hs[] = {"Content-Type: application/json", NULL};
	int tls = port == T.lnd_port;

	snprintf(url, sizeof(url), "%s://localhost:%d%s", tls ? "https" : "http", port, path);
	if (tls) {
		/* h_http trusts the edge's certificate; the fake LND has its own. */
		CURL *c = curl_easy_init();
		struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
		char cert[400];
		FILE *mem;
		char *out = NULL;
		size_t len = 0;

		snprintf(cert, sizeof(cert), "%s/lnd/tls.cert", T.env.dir);
		mem = open_memstream(&out, &len);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_CAINFO, cert);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
		if (body != NULL) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
		}
		assert_int_equal(curl_easy_perform(c), CURLE_OK);
		curl_easy_cleanup(c);
		curl_slist_free_all(hl);
		fclose(mem);
		return out;
	}
	assert_int_equal(h_http(&T.env, body != NULL ? "POST" : "GET", url, hs, body,
			     body != NULL ? strlen(body) : 0, &r),
	    0);
	free(r.headers);
	return r.body;
}

static void
fake_mode(int port, const char *json)
{
	free(fake_call(port, "/_fake/control", json));
}

/* A number from a fake's stats, by a dotted path. */
static double
fake_stat(int port, const char *a, const char *b)
{
	char *s = fake_call(port, "/_fake/stats", NULL);
	cJSON *j = cJSON_Parse(s), *v = cJSON_GetObjectItem(j, a);
	double d;

	if (b != NULL)
		v = cJSON_GetObjectItem(v, b);
	d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	cJSON_Delete(j);
	free(s);
	return d;
}

/* A string from a fake's "last" stats; caller frees. */
static char *
fake_last(int port, const char *key)
{
	char *s = fake_call(port, "/_fake/stats", NULL), *out;
	cJSON *j = cJSON_Parse(s);
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "last"), key));

	out = strdup(v != NULL ? v : "");
	cJSON_Delete(j);
	free(s);
	return out;
}

/* Setup. */

static int
write_file(const char *rel, const char *text, mode_t mode)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", T.env.dir, rel);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs(text, fp);
	if (fclose(fp) != 0)
		return -1;
	return chmod(path, mode);
}

static int
write_payments_conf(const char *extra)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/etc/payments.conf", T.env.dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	/* The rate is a default the tests may replace (keys may not repeat). */
	fprintf(fp, "%s%s%s", T.conf, extra,
	    strstr(extra, "lightning_micro_usd_per_sat") == NULL ? "lightning_micro_usd_per_sat = 500\n"
								 : "");
	return fclose(fp);
}

static void
restart_payments(const char *extra)
{
	assert_int_equal(h_signal(&T.env, "payments", SIGTERM), 0);
	assert_int_equal(write_payments_conf(extra), 0);
	assert_int_equal(h_start(&T.env, "payments"), 0);
	assert_int_equal(h_wait_health(&T.env, 200, 5000), 0);
	usleep(300000); /* the edge's link comes back */
}

static int
methods_conf(void)
{
	char *base, lnd[1400];
	size_t len;
	const char *d = T.env.dir;

	if ((base = h_read(&T.env, "etc/payments.conf", &len)) == NULL)
		return -1;
	snprintf(lnd, sizeof(lnd),
	    "method_timeout_ms = 1000\n"
	    "lnd_url = https://localhost:%d\nlnd_macaroon_file = %s/secrets/lnd.macaroon\n"
	    "lnd_tls_cert = %s/lnd/tls.cert\nlightning_network = regtest\n"
	    "stripe_api_url = http://127.0.0.1:%d\nstripe_secret_key_file = %s/secrets/stripe.key\n"
	    "stripe_network_id = net_cn2test\n"
	    "tempo_rpc_url = http://127.0.0.1:%d\ntempo_token = " TOKEN "\n"
	    "tempo_recipient = " RECIPIENT "\ntempo_chain_id = 42431\n",
	    T.lnd_port, d, d, T.stripe_port, d, T.tempo_port);
	if (asprintf(&T.conf, "%s%s", base, lnd) < 0)
		T.conf = NULL;
	free(base);
	return T.conf != NULL ? write_payments_conf("") : -1;
}

static int
group_setup(void **state)
{
	static const char *const names[] = {"localhost"};
	char cert[400], key[400], err[256], dir[300], keyfile[400], url[128];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(&T, 0, sizeof(T));
	if (h_init(&T.env, NULL) != 0)
		return -1;
	T.lnd_port = h_free_port();
	T.stripe_port = h_free_port();
	T.tempo_port = h_free_port();
	snprintf(dir, sizeof(dir), "%s/lnd", T.env.dir);
	snprintf(cert, sizeof(cert), "%s/tls.cert", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	if (mkdir(dir, 0700) != 0 || cert_generate(cert, key, names, 1, 30, err, sizeof(err)) != 0 ||
	    write_file("secrets/lnd.macaroon",
		"0201036c6e6402f801030a10c6a1d5a7b0a4c8e4f6b2a9d0c3e1f7a21201301a160a0761646472657373\n",
		0600) != 0 ||
	    write_file("secrets/stripe.key", "sk_test_cn2fake0123456789abcdef\n", 0600) != 0 ||
	    methods_conf() != 0)
		return -1;
	if ((T.lnd = start_lnd()) < 0 || (T.stripe = start_stripe()) < 0 ||
	    (T.tempo = h_start_fake(&T.env, "tempo", T.tempo_port, NULL)) < 0)
		return -1;
	if (h_start_demo(&T.env) != 0 || h_up(&T.env) != 0)
		return -1;
	snprintf(keyfile, sizeof(keyfile), "%s/secrets/demo.key", T.env.dir);
	snprintf(url, sizeof(url), "https://localhost:%d", T.env.https_port);
	return cli_keys_add(T.env.dir, url, NULL, "demo-seller", "demo", keyfile, "0.001") == 0 ? 0
											       : -1;
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	h_stop_fake(T.lnd);
	h_stop_fake(T.stripe);
	h_stop_fake(T.tempo);
	down = h_down(&T.env);
	free(T.conf);
	curl_global_cleanup();
	return down;
}

/* HTTP through the edge. */

static void
post(const char *const *hs, const char *body, struct h_resp *r)
{
	const char *all[8] = {"Content-Type: application/json"};
	size_t n = 1;

	for (size_t i = 0; hs != NULL && hs[i] != NULL && n < 7; i++)
		all[n++] = hs[i];
	all[n] = NULL;
	assert_int_equal(h_http(&T.env, "POST", url_of("/v1/chat/completions"), all, body,
			     strlen(body), r),
	    0);
}

/* The WWW-Authenticate values of a response, parsed; their number. */
static size_t
challenges_of(const struct h_resp *r, struct mpp_challenge *out, size_t max)
{
	const char *p = r->headers;
	size_t n = 0;

	while (n < max && (p = strcasestr(p, "\nWWW-Authenticate: ")) != NULL) {
		const char *v = p + 19, *end = strstr(v, "\r\n");

		assert_non_null(end);
		assert_int_equal(mpp_challenge_parse(v, (size_t)(end - v), &out[n], NULL, 0), 0);
		n++;
		p = end;
	}
	return n;
}

static void
free_challenges(struct mpp_challenge *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mpp_challenge_free(&c[i]);
}

/* A fresh challenge of method: the 402's only one when Accept-Payment names just it. */
static void
challenge_of(const char *method, struct mpp_challenge *c)
{
	char accept[64];
	const char *hs[] = {accept, NULL};
	struct h_resp r;

	snprintf(accept, sizeof(accept), "Accept-Payment: %s/charge", method);
	post(hs, CHAT, &r);
	if (r.status != 402)
		fail_msg("challenge for %s: status %ld: %s", method, r.status, r.body);
	assert_int_equal(challenges_of(&r, c, 1), 1);
	assert_string_equal(c->method, method);
	h_resp_free(&r);
}

/* "Authorization: Payment …" for c with payload (JSON text) and source (or NULL). */
static char *
auth_for(const struct mpp_challenge *c, const char *payload, const char *source)
{
	cJSON *p = cJSON_Parse(payload);
	char *cred = mpp_credential_format(c, p, source), *line;

	assert_non_null(cred);
	assert_true(asprintf(&line, "Authorization: %s", cred) > 0);
	free(cred);
	cJSON_Delete(p);
	return line;
}

static char *
test_payload(const struct mpp_challenge *c)
{
	size_t len;
	char *secret = h_read(&T.env, "secrets/test.key", &len), proof[MPP_ID_BUFSZ], *out;

	assert_int_equal(mpp_test_proof((const uint8_t *)secret, len, c->id, proof), 0);
	assert_true(asprintf(&out, "{\"proof\":\"%s\"}", proof) > 0);
	free(secret);
	return out;
}

/* Pay with credential header auth (and more headers): the response. */
static void
pay_with(const char *auth, const char *extra, const char *body, struct h_resp *r)
{
	const char *hs[] = {auth, extra, NULL};

	post(hs, body, r);
}

static const char *
problem_of(const struct h_resp *r)
{
	static char type[128];
	cJSON *j = cJSON_Parse(r->body);
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));

	snprintf(type, sizeof(type), "%s", t != NULL ? t : "");
	cJSON_Delete(j);
	return type;
}

static void
expect_problem(const struct h_resp *r, long status, const char *type)
{
	if (r->status != status || strcmp(problem_of(r), type) != 0)
		fail_msg("got %ld %s, want %ld %s: %s", r->status, problem_of(r), status, type, r->body);
	assert_null(strcasestr(r->headers, "Payment-Receipt"));
}

static long
retry_after(const struct h_resp *r)
{
	const char *p = strcasestr(r->headers, "\nRetry-After: ");

	return p != NULL ? atol(p + 14) : -1;
}

/* The decoded Payment-Receipt (caller deletes), or NULL. */
static cJSON *
receipt_of(const struct h_resp *r)
{
	const char *p = strcasestr(r->headers, "\nPayment-Receipt: "), *end;
	uint8_t buf[2048];
	size_t n;

	if (p == NULL || (end = strstr(p + 18, "\r\n")) == NULL ||
	    b64url_decode(p + 18, (size_t)(end - p - 18), buf, sizeof(buf) - 1, &n, 0) != 0)
		return NULL;
	buf[n] = '\0';
	return cJSON_Parse((const char *)buf);
}

static void
expect_paid(const struct h_resp *r, const char *method, const char *reference, const char *id)
{
	cJSON *rc;

	if (r->status != 200)
		fail_msg("not paid: %ld %s", r->status, r->body);
	assert_non_null(strstr(r->body, "chat.completion"));
	rc = receipt_of(r);
	assert_non_null(rc);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "status")), "success");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "method")), method);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "challengeId")), id);
	if (reference != NULL)
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "reference")),
		    reference);
	cJSON_Delete(rc);
}

static int64_t
db_int(const char *db, const char *sql, const char *arg)
{
	char path[400];
	sqlite3 *h;
	sqlite3_stmt *st;
	int64_t v = -1;

	snprintf(path, sizeof(path), "%s/db/%s", T.env.dir, db);
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		if (arg != NULL)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* SHA-256 of s as 64 hex digits: how a buyer principal is kept. */
static void
sha256_hex(const char *s, char out[65])
{
	uint8_t h[32];

	assert_int_equal(mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
			     (const uint8_t *)s, strlen(s), h),
	    0);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static cJSON *
request_of(const struct mpp_challenge *c)
{
	cJSON *j = mpp_request_decode(c->request);

	assert_non_null(j);
	return j;
}

/* The tests. */

static void
expect_methods(const char *accept, long status, const char *const *want)
{
	char line[128];
	const char *hs[] = {line, NULL};
	struct mpp_challenge c[8];
	struct h_resp r;
	size_t n, k = 0;

	snprintf(line, sizeof(line), "Accept-Payment: %s", accept);
	post(accept != NULL ? hs : NULL, CHAT, &r);
	assert_int_equal(r.status, status);
	n = challenges_of(&r, c, 8);
	while (want[k] != NULL)
		k++;
	if (n != k)
		fail_msg("%s: %zu challenges, want %zu", accept, n, k);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(c[i].method, want[i]);
	assert_non_null(strcasestr(r.headers, "Cache-Control: no-store"));
	free_challenges(c, n);
	h_resp_free(&r);
}

static void
test_negotiation(void **state)
{
	static const char *const all[] = {"test", "lightning", "tempo", "stripe", NULL};
	static const char *const st[] = {"stripe", "tempo", NULL};
	static const char *const ln[] = {"lightning", "test", "tempo", "stripe", NULL};
	static const char *const star[] = {"test", "tempo", "stripe", NULL};

	(void)state;
	expect_methods(NULL, 402, all);
	expect_methods("stripe/charge, tempo/*;q=0.5, lightning/charge;q=0", 402, st);
	expect_methods("*/*;q=0.1, lightning/charge", 402, ln);
	expect_methods("*/charge, lightning/*;q=0", 402, star);
	expect_methods("bogus/charge, test/session", 400, all);
}

static void
test_lightning(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	cJSON *req, *md;
	char path[160], *pre_json, *expiry, pre[65], bad[65], payload[100], *auth;
	const char *hash;

	(void)state;
	challenge_of("lightning", &c);
	req = request_of(&c);
	md = cJSON_GetObjectItem(req, "methodDetails");
	/* 1100 µUSD at 500 µUSD per sat: 3 sats, rounded up. */
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")), "3");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "currency")), "sat");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(md, "network")), "regtest");
	assert_int_equal(strncmp(cJSON_GetStringValue(cJSON_GetObjectItem(md, "invoice")),
			     "lnbcrt30n1", 10),
	    0);
	hash = cJSON_GetStringValue(cJSON_GetObjectItem(md, "paymentHash"));
	assert_int_equal(strlen(hash), 64);
	/* LND got our macaroon (else no invoice) and an expiry past the challenge's. */
	assert_true(fake_stat(T.lnd_port, "invoices", NULL) >= 1);
	expiry = fake_last(T.lnd_port, "expiry");
	assert_string_equal(expiry, "360");
	free(expiry);
	assert_int_equal(db_int("payments.db",
			     "SELECT count(*) FROM lightning_invoices WHERE challenge_id = ?", c.id),
	    1);
	/* The buyer's wallet pays: the fake hands over the preimage. */
	snprintf(path, sizeof(path), "/_fake/preimage?hash=%s", hash);
	pre_json = fake_call(T.lnd_port, path, NULL);
	assert_non_null(strstr(pre_json, "preimage"));
	snprintf(pre, sizeof(pre), "%.64s", strstr(pre_json, "preimage") + 11);
	/* A wrong preimage first: refused, and the credential still good after. */
	snprintf(bad, sizeof(bad), "%s", pre);
	bad[0] = bad[0] == '0' ? '1' : '0';
	snprintf(payload, sizeof(payload), "{\"preimage\":\"%s\"}", bad);
	auth = auth_for(&c, payload, NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("verification-failed"));
	h_resp_free(&r);
	free(auth);
	snprintf(payload, sizeof(payload), "{\"preimage\":\"%s\"}", pre);
	auth = auth_for(&c, payload, NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_paid(&r, "lightning", hash, c.id);
	/* The receipt names the hash, never the preimage. */
	assert_null(strstr(r.headers, pre));
	h_resp_free(&r);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("invalid-challenge"));
	h_resp_free(&r);
	/* No preimage in any log or database. */
	assert_false(h_log_contains(&T.env, pre));
	assert_int_equal(db_int("payments.db", "SELECT count(*) FROM payments WHERE reference = ?",
			     hash),
	    1);
	free(auth);
	free(pre_json);
	cJSON_Delete(req);
	mpp_challenge_free(&c);
}

/* A 402 for accept, after which time how long it took (ms). */
static int64_t
timed_challenge(const char *accept, struct h_resp *r)
{
	const char *hs[] = {accept, NULL};
	int64_t t0 = now_ms();

	post(hs, CHAT, r);
	return now_ms() - t0;
}

static void
test_lightning_trouble(void **state)
{
	static const char *const others[] = {"test", "tempo", "stripe", NULL};
	struct h_resp r;
	int64_t ms;

	(void)state;
	/* LND failing: lightning alone → 503 with Retry-After; otherwise left out of the 402. */
	fake_mode(T.lnd_port, "{\"mode\":\"error\"}");
	timed_challenge("Accept-Payment: lightning/charge", &r);
	expect_problem(&r, 503, CN2("payment-method-unavailable"));
	assert_true(retry_after(&r) > 0);
	assert_null(strcasestr(r.headers, "WWW-Authenticate"));
	h_resp_free(&r);
	expect_methods(NULL, 402, others);
	/* Slow: the call times out (method_timeout_ms = 1000), the loop never stalls. */
	fake_mode(T.lnd_port, "{\"mode\":\"slow\",\"delay_ms\":4000}");
	ms = timed_challenge("Accept-Payment: lightning/charge", &r);
	expect_problem(&r, 503, CN2("payment-method-unavailable"));
	assert_true(ms < 3500);
	h_resp_free(&r);
	/* Down. */
	h_stop_fake(T.lnd);
	timed_challenge("Accept-Payment: lightning/charge", &r);
	expect_problem(&r, 503, CN2("payment-method-unavailable"));
	h_resp_free(&r);
	assert_true((T.lnd = start_lnd()) > 0);
}

static void
test_stripe(void **state)
{
	struct mpp_challenge c, c2, c3;
	struct h_resp r;
	cJSON *req, *md, *rc;
	char *auth, *key, *v, want[200];

	(void)state;
	challenge_of("stripe", &c);
	req = request_of(&c);
	md = cJSON_GetObjectItem(req, "methodDetails");
	/* 1100 µUSD is 1 cent, below the 50-cent minimum. */
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")), "50");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "currency")), "usd");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(md, "networkId")),
	    "net_cn2test");
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(md, "paymentMethodTypes"), 0)),
	    "card");
	cJSON_Delete(req);
	auth = auth_for(&c, "{\"spt\":\"spt_ok_0001\"}", NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_paid(&r, "stripe", NULL, c.id);
	rc = receipt_of(&r);
	assert_int_equal(strncmp(cJSON_GetStringValue(cJSON_GetObjectItem(rc, "reference")), "pi_", 3),
	    0);
	cJSON_Delete(rc);
	h_resp_free(&r);
	/* What Stripe saw: the SDK's idempotency key and the preview API version. */
	key = fake_last(T.stripe_port, "idempotency_key");
	snprintf(want, sizeof(want), "mpp_%s_spt_ok_0001", c.id);
	assert_string_equal(key, want);
	free(key);
	v = fake_last(T.stripe_port, "stripe_version");
	assert_string_equal(v, "2026-07-29.preview");
	free(v);
	v = fake_last(T.stripe_port, "redirects");
	assert_string_equal(v, "never");
	free(v);
	free(auth);
	/* requires_action and a declined card: their problems, nothing captured. */
	challenge_of("stripe", &c2);
	auth = auth_for(&c2, "{\"spt\":\"spt_action_0002\"}", NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("payment-action-required"));
	h_resp_free(&r);
	free(auth);
	challenge_of("stripe", &c3);
	auth = auth_for(&c3, "{\"spt\":\"spt_decline_0003\"}", NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("verification-failed"));
	h_resp_free(&r);
	free(auth);
	auth = auth_for(&c3, "{\"token\":\"spt_ok_1\"}", NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("invalid-payload"));
	h_resp_free(&r);
	free(auth);
	assert_int_equal(db_int("payments.db", "SELECT count(*) FROM payments WHERE id = ? AND"
					       " state = 'released'", c2.id),
	    1);
	mpp_challenge_free(&c);
	mpp_challenge_free(&c2);
	mpp_challenge_free(&c3);
}

/* Stripe failing, slow, down: 503 with Retry-After, nothing left reserved, and back. */
static void
test_stripe_trouble(void **state)
{
	static const char *const modes[] = {"{\"mode\":\"error\"}",
	    "{\"mode\":\"slow\",\"delay_ms\":4000}", NULL};
	struct mpp_challenge c;
	struct h_resp r;
	char *auth;

	(void)state;
	challenge_of("stripe", &c);
	auth = auth_for(&c, "{\"spt\":\"spt_ok_0004\"}", NULL);
	for (int i = 0; i < 3; i++) {
		int64_t t0 = now_ms();

		if (modes[i] != NULL)
			fake_mode(T.stripe_port, modes[i]);
		else
			h_stop_fake(T.stripe);
		pay_with(auth, NULL, CHAT, &r);
		expect_problem(&r, 503, CN2("payment-method-unavailable"));
		assert_true(retry_after(&r) > 0);
		assert_true(now_ms() - t0 < 3500);
		h_resp_free(&r);
		assert_int_equal(db_int("payments.db", "SELECT count(*) FROM payments WHERE id = ? AND"
						       " state = 'released'", c.id),
		    1);
	}
	assert_true((T.stripe = start_stripe()) > 0);
	pay_with(auth, NULL, CHAT, &r);
	expect_paid(&r, "stripe", NULL, c.id);
	h_resp_free(&r);
	free(auth);
	mpp_challenge_free(&c);
}

static void
register_tx(const char *hash, const char *amount, const char *token)
{
	char body[512];

	snprintf(body, sizeof(body),
	    "{\"hash\":\"%s\",\"from\":\"" PAYER "\",\"to\":\"" RECIPIENT "\",\"token\":\"%s\","
	    "\"amount\":\"%s\"}",
	    hash, token, amount);
	free(fake_call(T.tempo_port, "/_fake/tx", body));
}

static char *
tempo_auth(const struct mpp_challenge *c, const char *hash)
{
	char payload[200];

	snprintf(payload, sizeof(payload), "{\"type\":\"hash\",\"hash\":\"%s\"}", hash);
	return auth_for(c, payload, NULL);
}

#define TX(d) "0x" d d d d d d d d d d d d d d d d

static void
test_tempo(void **state)
{
	struct mpp_challenge c, c2;
	struct h_resp r;
	cJSON *req;
	char *auth;
	char buyer[65];

	(void)state;
	challenge_of("tempo", &c);
	req = request_of(&c);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")), "1100");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "currency")), TOKEN);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "recipient")), RECIPIENT);
	assert_int_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(req, "methodDetails"), "chainId")->valueint, 42431);
	cJSON_Delete(req);
	/* Not mined yet: 402 with Retry-After; the credential stays good. */
	auth = tempo_auth(&c, TX("aaaa"));
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("verification-failed"));
	assert_int_equal(retry_after(&r), 2);
	h_resp_free(&r);
	register_tx(TX("aaaa"), "1100", TOKEN);
	pay_with(auth, NULL, CHAT, &r);
	expect_paid(&r, "tempo", TX("aaaa"), c.id);
	h_resp_free(&r);
	free(auth);
	/* The same transaction for another challenge: never again. */
	challenge_of("tempo", &c2);
	auth = tempo_auth(&c2, TX("aaaa"));
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("verification-failed"));
	h_resp_free(&r);
	free(auth);
	/* Too little, or another token: refused. */
	register_tx(TX("bbbb"), "1099", TOKEN);
	auth = tempo_auth(&c2, TX("bbbb"));
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("verification-failed"));
	h_resp_free(&r);
	free(auth);
	register_tx(TX("cccc"), "5000", "0x20c0000000000000000000000000000000000002");
	auth = tempo_auth(&c2, TX("cccc"));
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("verification-failed"));
	h_resp_free(&r);
	free(auth);
	/* Pull mode is not taken. */
	auth = auth_for(&c2, "{\"type\":\"transaction\",\"signature\":\"0x01\"}", NULL);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("invalid-payload"));
	h_resp_free(&r);
	free(auth);
	/* Node failing, then down: 503 with Retry-After. */
	register_tx(TX("dddd"), "2000", TOKEN);
	auth = tempo_auth(&c2, TX("dddd"));
	fake_mode(T.tempo_port, "{\"mode\":\"error\"}");
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 503, CN2("payment-method-unavailable"));
	assert_true(retry_after(&r) > 0);
	h_resp_free(&r);
	fake_mode(T.tempo_port, "{\"mode\":\"ok\"}");
	pay_with(auth, NULL, CHAT, &r);
	expect_paid(&r, "tempo", TX("dddd"), c2.id);
	h_resp_free(&r);
	free(auth);
	/* The sender is the buyer when the credential names none: hashed, never raw. */
	sha256_hex("did:pkh:eip155:42431:" PAYER, buyer);
	assert_true(db_int("payments.db", "SELECT sum(amount) FROM buyer_spend WHERE buyer = ?",
			buyer) >= 2 * PRICE);
	assert_false(h_log_contains(&T.env, PAYER));
	mpp_challenge_free(&c);
	mpp_challenge_free(&c2);
	h_stop_fake(T.tempo);
	challenge_of("tempo", &c);
	auth = tempo_auth(&c, TX("eeee"));
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 503, CN2("payment-method-unavailable"));
	h_resp_free(&r);
	free(auth);
	mpp_challenge_free(&c);
	assert_true((T.tempo = h_start_fake(&T.env, "tempo", T.tempo_port, NULL)) > 0);
}

/* Each problem type of PROTOCOL.md's table, through the edge. */

/* A 402 must carry a fresh challenge (not stale_id), named in the body. */
static void
expect_fresh(const struct h_resp *r, const char *stale_id)
{
	struct mpp_challenge c[8];
	size_t n = challenges_of(r, c, 8);
	cJSON *j = cJSON_Parse(r->body);

	assert_true(n > 0);
	assert_string_not_equal(c[0].id, stale_id);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "challengeId")), c[0].id);
	assert_int_equal(cJSON_GetObjectItem(j, "status")->valueint, 402);
	assert_non_null(strcasestr(r->headers, "Cache-Control: no-store"));
	cJSON_Delete(j);
	free_challenges(c, n);
}

static void
problem_row(const char *auth, const char *auth2, long status, const char *type, const char *stale)
{
	struct h_resp r;
	const char *hs[] = {auth, auth2, NULL};

	post(auth != NULL ? hs : NULL, CHAT, &r);
	expect_problem(&r, status, type);
	if (status == 402)
		expect_fresh(&r, stale);
	h_resp_free(&r);
}

static void
test_problem_types(void **state)
{
	struct mpp_challenge c, t, l, e;
	cJSON *req;
	char *payload, *auth, *auth2, *req64, *lauth, path[160], *pre, lpay[100];

	(void)state;
	challenge_of("test", &c);
	payload = test_payload(&c);
	/* payment-required: no credential. */
	problem_row(NULL, NULL, 402, PROBLEM("payment-required"), "");
	/* malformed-credential. */
	problem_row("Authorization: Payment !!!not-base64!!!", NULL, 402,
	    PROBLEM("malformed-credential"), "");
	/* invalid-challenge: the amount changed under the id. */
	req = request_of(&c);
	cJSON_ReplaceItemInObject(req, "amount", cJSON_CreateString("1"));
	req64 = mpp_request_encode(req);
	cJSON_Delete(req);
	t = c;
	t.request = req64;
	auth = auth_for(&t, payload, NULL);
	problem_row(auth, NULL, 402, PROBLEM("invalid-challenge"), c.id);
	free(auth);
	/* verification-failed: a proof under another secret. */
	auth = auth_for(&c, "{\"proof\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", NULL);
	problem_row(auth, NULL, 402, PROBLEM("verification-failed"), c.id);
	free(auth);
	/* invalid-payload: the wrong shape. */
	auth = auth_for(&c, "{\"proof\":5}", NULL);
	problem_row(auth, NULL, 402, PROBLEM("invalid-payload"), c.id);
	free(auth);
	/* method-unsupported: 400. */
	t = c;
	t.method = "bogus";
	auth = auth_for(&t, payload, NULL);
	problem_row(auth, NULL, 400, PROBLEM("method-unsupported"), c.id);
	free(auth);
	/* More than one credential: 400. */
	auth = auth_for(&c, payload, NULL);
	{
		char *line;

		assert_true(asprintf(&line, "Payment-Authorization: %s", strchr(auth, ' ') + 1) > 0);
		problem_row(auth, line, 400, CN2("multiple-credentials"), c.id);
		free(line);
	}
	/*
	 * payment-insufficient: the price in sats falls under the price in µUSD
	 * when the rate changes; payment-expired: a challenge that outlived its
	 * one-second lifetime.
	 */
	challenge_of("lightning", &l);
	req = request_of(&l);
	snprintf(path, sizeof(path), "/_fake/preimage?hash=%s",
	    cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(req, "methodDetails"),
		"paymentHash")));
	cJSON_Delete(req);
	pre = fake_call(T.lnd_port, path, NULL);
	snprintf(lpay, sizeof(lpay), "{\"preimage\":\"%.64s\"}", strstr(pre, "preimage") + 11);
	lauth = auth_for(&l, lpay, NULL);
	restart_payments("challenge_ttl_s = 1\nlightning_micro_usd_per_sat = 300\n");
	problem_row(lauth, NULL, 402, PROBLEM("payment-insufficient"), l.id);
	challenge_of("test", &e);
	free(payload);
	payload = test_payload(&e);
	auth2 = auth_for(&e, payload, NULL);
	sleep(2);
	problem_row(auth2, NULL, 402, PROBLEM("payment-expired"), e.id);
	restart_payments("");
	/* And the untouched credential still pays: none of the above took anything. */
	{
		struct h_resp r;

		pay_with(auth, NULL, CHAT, &r);
		expect_paid(&r, "test", NULL, c.id);
		h_resp_free(&r);
	}
	free(auth);
	free(auth2);
	free(lauth);
	free(pre);
	free(payload);
	free(req64);
	mpp_challenge_free(&c);
	mpp_challenge_free(&l);
	mpp_challenge_free(&e);
}

/* Idempotency-Key. */

static void
demo_control(const char *json)
{
	char url[128];
	const char *hs[] = {"Content-Type: application/json", NULL};
	struct h_resp r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_demo/control", T.env.demo_port);
	assert_int_equal(h_http(&T.env, "POST", url, hs, json, strlen(json), &r), 0);
	h_resp_free(&r);
}

static long
demo_requests(void)
{
	char url[128];
	struct h_resp r;
	cJSON *j;
	long n;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_demo/stats", T.env.demo_port);
	assert_int_equal(h_http(&T.env, "GET", url, NULL, NULL, 0, &r), 0);
	j = cJSON_Parse(r.body);
	n = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "requests"));
	cJSON_Delete(j);
	h_resp_free(&r);
	return n;
}

static void
test_idempotency(void **state)
{
	struct mpp_challenge c;
	struct h_resp r;
	char *payload, *auth, receipt[1024];
	const char *p, *end;
	cJSON *j;
	long calls;
	int status;
	pid_t kid;

	(void)state;
	challenge_of("test", &c);
	payload = test_payload(&c);
	auth = auth_for(&c, payload, NULL);
	pay_with(auth, "Idempotency-Key: \"k-7f3a\"", CHAT, &r);
	expect_paid(&r, "test", NULL, c.id);
	p = strcasestr(r.headers, "\nPayment-Receipt: ") + 18;
	end = strstr(p, "\r\n");
	snprintf(receipt, sizeof(receipt), "%.*s", (int)(end - p), p);
	h_resp_free(&r);
	calls = demo_requests();
	/* The same request again: its outcome, no second charge, no second upstream call. */
	pay_with(auth, "Idempotency-Key: \"k-7f3a\"", CHAT, &r);
	expect_problem(&r, 409, CN2("idempotent-replay"));
	j = cJSON_Parse(r.body);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "receipt")), receipt);
	cJSON_Delete(j);
	h_resp_free(&r);
	assert_int_equal(demo_requests(), calls);
	/* Another body under the same key and credential: 422. */
	pay_with(auth, "Idempotency-Key: \"k-7f3a\"", CHAT2, &r);
	expect_problem(&r, 422, CN2("idempotency-key-mismatch"));
	h_resp_free(&r);
	/* Without the key the credential is simply spent. */
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("invalid-challenge"));
	h_resp_free(&r);
	free(auth);
	free(payload);
	mpp_challenge_free(&c);
	/* A retry while the first is still being answered: 409 with Retry-After. */
	challenge_of("test", &c);
	payload = test_payload(&c);
	auth = auth_for(&c, payload, NULL);
	demo_control("{\"delay_ms\":1500}");
	if ((kid = fork()) == 0) {
		pay_with(auth, "Idempotency-Key: k-slow", CHAT, &r);
		_exit(r.status == 200 ? 0 : 1);
	}
	usleep(600000);
	pay_with(auth, "Idempotency-Key: k-slow", CHAT, &r);
	expect_problem(&r, 409, CN2("payment-in-flight"));
	assert_int_equal(retry_after(&r), 1);
	h_resp_free(&r);
	assert_int_equal(waitpid(kid, &status, 0), kid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	demo_control("{\"reset\":true}");
	/* A key that is not a token: 400. */
	pay_with(auth, "Idempotency-Key: \"a b\"", CHAT, &r);
	assert_int_equal(r.status, 400);
	h_resp_free(&r);
	free(auth);
	free(payload);
	mpp_challenge_free(&c);
}

/* Buyers: hashed ids, spend per day, the daily ceiling. */

static void
pay_as(const char *source, long want, const char *type)
{
	struct mpp_challenge c;
	struct h_resp r;
	char *payload, *auth;

	challenge_of("test", &c);
	payload = test_payload(&c);
	auth = auth_for(&c, payload, source);
	pay_with(auth, NULL, CHAT, &r);
	if (want == 200) {
		expect_paid(&r, "test", NULL, c.id);
	} else {
		expect_problem(&r, want, type);
		expect_fresh(&r, c.id);
		/* The ceiling lifts at the next UTC midnight. */
		assert_true(retry_after(&r) > 0 && retry_after(&r) <= 86400);
	}
	h_resp_free(&r);
	free(auth);
	free(payload);
	mpp_challenge_free(&c);
}

/* Does any file under the state directory contain needle? */
static int
dir_contains(const char *needle)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "grep -rl -F -- '%s' '%s/db' '%s/daemons.log' >/dev/null 2>&1",
	    needle, T.env.dir, T.env.dir);
	return system(cmd) == 0;
}

static void
test_buyers(void **state)
{
	char alice[65];

	(void)state;
	restart_payments("buyer_daily_ceiling = 2500\n");
	pay_as("did:key:z6MkAliceCn2Test", 200, NULL);
	pay_as("did:key:z6MkAliceCn2Test", 200, NULL);
	pay_as("did:key:z6MkAliceCn2Test", 402, PROBLEM("payment-insufficient"));
	pay_as("did:key:z6MkBobCn2Test", 200, NULL);
	sha256_hex("did:key:z6MkAliceCn2Test", alice);
	assert_int_equal(db_int("payments.db", "SELECT amount FROM buyer_spend WHERE buyer = ?",
			     alice),
	    2 * PRICE);
	assert_false(dir_contains("z6MkAliceCn2Test"));
	restart_payments("");
}

/*
 * The 403 row of MPP's table: a buyer the operator blocked is refused with
 * no challenge (paying again cannot help), nothing is reserved or taken, and
 * the list follows its file on SIGHUP — a bad file keeps the list in force.
 */
static void
write_blocked(const char *text)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/etc/blocked_buyers", T.env.dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void
test_policy(void **state)
{
	const char *mallory = "did:key:z6MkMalloryCn2Test";
	struct mpp_challenge c;
	struct h_resp r;
	char hash[65], list[200], conf[500], *payload, *auth;

	(void)state;
	sha256_hex(mallory, hash);
	snprintf(list, sizeof(list), "# abuse report 17\n\n%s\n", hash);
	write_blocked(list);
	snprintf(conf, sizeof(conf), "blocked_buyers_file = %s/etc/blocked_buyers\n", T.env.dir);
	restart_payments(conf);
	challenge_of("test", &c);
	payload = test_payload(&c);
	auth = auth_for(&c, payload, mallory);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 403, CN2("payment-refused-by-policy"));
	assert_null(strcasestr(r.headers, "WWW-Authenticate"));
	assert_int_equal(db_int("payments.db", "SELECT count(*) FROM payments WHERE id = ?", c.id), 0);
	h_resp_free(&r);
	pay_as("did:key:z6MkAliceCn2Test", 200, NULL);
	/* A bad line: the reload is refused and Mallory stays blocked. */
	write_blocked("not-a-buyer-id\n");
	assert_int_equal(kill(h_pid(&T.env, "payments"), SIGHUP), 0);
	usleep(300000);
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 403, CN2("payment-refused-by-policy"));
	h_resp_free(&r);
	/* Unblocked: the very same credential pays, so the refusal took nothing. */
	write_blocked("# nobody\n");
	assert_int_equal(kill(h_pid(&T.env, "payments"), SIGHUP), 0);
	usleep(300000);
	pay_with(auth, NULL, CHAT, &r);
	expect_paid(&r, "test", NULL, c.id);
	h_resp_free(&r);
	assert_true(h_log_contains(&T.env, "blocked_buyers_file: line 1 is not a buyer id"));
	free(auth);
	free(payload);
	mpp_challenge_free(&c);
	restart_payments("");
}

/*
 * The invoice budget: with lightning_invoices_per_minute = 2, two 402s carry
 * a lightning challenge (two invoices at the node); the third leaves
 * lightning out — offering the other methods, or 503 with Retry-After when
 * lightning is all the buyer takes — and the node is not asked again.
 */
static int
lnd_invoice_calls(void)
{
	char *stats = fake_call(T.lnd_port, "/_fake/stats", NULL);
	cJSON *j = cJSON_Parse(stats), *routes = cJSON_GetObjectItem(j, "by_route");
	cJSON *v = cJSON_GetObjectItem(routes, "/v1/invoices");
	int n = cJSON_IsNumber(v) ? v->valueint : 0;

	cJSON_Delete(j);
	free(stats);
	return n;
}

static void
test_invoice_budget(void **state)
{
	const char *ln_only[] = {"Accept-Payment: lightning/charge", NULL};
	struct mpp_challenge c[8];
	struct h_resp r;
	size_t n;
	int before;

	(void)state;
	restart_payments("lightning_invoices_per_minute = 2\n");
	before = lnd_invoice_calls();
	for (int i = 0; i < 2; i++) {
		challenge_of("lightning", &c[0]);
		mpp_challenge_free(&c[0]);
	}
	assert_int_equal(lnd_invoice_calls(), before + 2);
	/* Spent: the 402 offers the rest. */
	post(NULL, CHAT, &r);
	assert_int_equal(r.status, 402);
	n = challenges_of(&r, c, 8);
	assert_true(n >= 1);
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(c[i].method, "lightning");
	free_challenges(c, n);
	h_resp_free(&r);
	/* Lightning alone: nothing to offer now, and a time to come back. */
	post(ln_only, CHAT, &r);
	expect_problem(&r, 503, CN2("payment-method-unavailable"));
	assert_true(retry_after(&r) > 0);
	h_resp_free(&r);
	assert_int_equal(lnd_invoice_calls(), before + 2);
	assert_true(h_log_contains(&T.env, "lightning_invoices_per_minute (2) reached"));
	restart_payments("");
}

/*
 * A Stripe charge for a request that was never served goes back: the
 * upstream fails every attempt, the buyer never presents the credential
 * again, and once its challenge has expired the sweep refunds the
 * PaymentIntent at Stripe, once (a captured payment is never refunded).
 */
static int
stripe_refunds(void)
{
	char *stats = fake_call(T.stripe_port, "/_fake/stats", NULL);
	cJSON *j = cJSON_Parse(stats), *v = cJSON_GetObjectItem(j, "refunds");
	int n = cJSON_IsNumber(v) ? v->valueint : 0;

	cJSON_Delete(j);
	free(stats);
	return n;
}

static void
test_stripe_refund(void **state)
{
	struct mpp_challenge c, ok;
	struct h_resp r;
	char *auth, *auth_ok;
	int before, i;

	(void)state;
	restart_payments("challenge_ttl_s = 2\nsweep_interval_s = 1\n");
	before = stripe_refunds();
	/* One that is served: captured, never refunded. */
	challenge_of("stripe", &ok);
	auth_ok = auth_for(&ok, "{\"spt\":\"spt_ok_refund_1\"}", NULL);
	pay_with(auth_ok, NULL, CHAT, &r);
	expect_paid(&r, "stripe", NULL, ok.id);
	h_resp_free(&r);
	/* One charged whose upstream fails every time: released, not captured. */
	challenge_of("stripe", &c);
	auth = auth_for(&c, "{\"spt\":\"spt_ok_refund_2\"}", NULL);
	demo_control("{\"fail_status\":500,\"fail_count\":100}");
	pay_with(auth, NULL, CHAT, &r);
	demo_control("{\"reset\":true}");
	assert_true(r.status >= 500);
	assert_null(strcasestr(r.headers, "Payment-Receipt"));
	h_resp_free(&r);
	/* Expiry (2 s) plus the grace, then a sweep: refunded at Stripe and recorded. */
	for (i = 0; i < 200 && db_int("payments.db",
				   "SELECT count(*) FROM refunds WHERE payment_id = ? AND state = 'done'",
				   c.id) != 1;
	     i++)
		usleep(100000);
	assert_int_equal(db_int("payments.db",
			     "SELECT count(*) FROM refunds WHERE payment_id = ? AND state = 'done'", c.id),
	    1);
	assert_int_equal(stripe_refunds(), before + 1);
	assert_int_equal(db_int("payments.db", "SELECT count(*) FROM refunds WHERE payment_id = ?",
			     ok.id),
	    0);
	/* More sweeps ask nothing more; the refunded credential cannot be served. */
	sleep(2);
	assert_int_equal(stripe_refunds(), before + 1);
	pay_with(auth, NULL, CHAT, &r);
	assert_int_equal(r.status, 402);
	assert_null(strcasestr(r.headers, "Payment-Receipt"));
	h_resp_free(&r);
	free(auth);
	free(auth_ok);
	mpp_challenge_free(&c);
	mpp_challenge_free(&ok);
	restart_payments("");
}

static size_t
discard(char *d, size_t size, size_t n, void *arg)
{
	(void)d;
	(void)arg;
	return size * n;
}

/*
 * Many requests at once over plain HTTP; their statuses into status[]. When
 * hook is set it runs once, at_ms after the start, while they are in flight.
 */
static void
parallel_hook(const char *const *auths, size_t n, long *status, int64_t at_ms,
    void (*hook)(void))
{
	CURLM *m = curl_multi_init();
	CURL *e[128];
	struct curl_slist *hl[128];
	char url[128];
	int running = 1;
	int64_t t0 = now_ms();

	assert_true(n <= 128);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", T.env.http_port);
	for (size_t i = 0; i < n; i++) {
		e[i] = curl_easy_init();
		hl[i] = curl_slist_append(NULL, "Host: demo.localhost");
		hl[i] = curl_slist_append(hl[i], "Content-Type: application/json");
		hl[i] = curl_slist_append(hl[i], auths[i]);
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hl[i]);
		curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, CHAT);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 30L);
		curl_multi_add_handle(m, e[i]);
	}
	while (running > 0) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 50, NULL);
		if (hook != NULL && now_ms() - t0 >= at_ms) {
			hook();
			hook = NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &status[i]);
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
		curl_slist_free_all(hl[i]);
	}
	curl_multi_cleanup(m);
}

static void
parallel(const char *const *auths, size_t n, long *status)
{
	parallel_hook(auths, n, status, 0, NULL);
}

/* "N writes in M commits" from payments' health report. */
static void
commits(unsigned long long *writes, unsigned long long *batches)
{
	static const enum ipc_role dial[] = {ROLE_PAYMENTS};
	struct h_ipc h;
	struct h_reply rep;

	assert_int_equal(h_ipc_open(&T.env, &h, ROLE_CTL, dial, 1), 0);
	assert_int_equal(h_ipc_call(&h, ROLE_PAYMENTS, IPC_HEALTH, NULL, &rep, 1, 3000), 1);
	assert_int_equal(rep.type, IPC_HEALTH_REP);
	assert_int_equal(sscanf(rep.msg.health_rep.detail, "ok; %llu writes in %llu commits", writes,
			     batches),
	    2);
	h_replies_free(&rep, 1);
	h_ipc_close(&h);
}

static void
test_concurrency(void **state)
{
	struct mpp_challenge c;
	const char *auths[100];
	long status[100], calls;
	char *payload, *auth;
	int ok = 0, conflict = 0, used = 0;
	unsigned long long w0, b0, w1, b1;

	(void)state;
	challenge_of("test", &c);
	payload = test_payload(&c);
	auth = auth_for(&c, payload, NULL);
	for (int i = 0; i < 100; i++)
		auths[i] = auth;
	calls = demo_requests();
	commits(&w0, &b0);
	parallel(auths, 100, status);
	for (int i = 0; i < 100; i++) {
		ok += status[i] == 200;
		conflict += status[i] == 409;
		used += status[i] == 402;
	}
	if (ok != 1 || ok + conflict + used != 100)
		fail_msg("%d paid, %d in flight, %d spent", ok, conflict, used);
	assert_int_equal(demo_requests(), calls + 1);
	assert_int_equal(db_int("payments.db", "SELECT count(*) FROM payments WHERE id = ? AND"
					       " state = 'captured'", c.id),
	    1);
	/* Group commit: the reservations shared fsyncs. */
	commits(&w1, &b1);
	assert_true(w1 - w0 >= 2);
	assert_true(b1 - b0 < w1 - w0);
	free(auth);
	free(payload);
	mpp_challenge_free(&c);
}

/* cn2-payments dies (SIGKILL: no goodbye) and comes back. */
static void
crash_payments(void)
{
	assert_int_equal(h_signal(&T.env, "payments", SIGKILL), 0);
	assert_int_equal(h_start(&T.env, "payments"), 0);
}

/*
 * cn2-payments killed while ten paid requests wait on the upstream (their
 * reservations made and their tickets out), then started again: every one
 * is captured exactly once, durably (a replay is refused), and the ledger
 * gets every posting.
 */
static void
test_restart_mid_flight(void **state)
{
	struct mpp_challenge c[10];
	char *auth[10], *payload;
	long status[10];
	int64_t end;
	struct h_resp r;

	(void)state;
	for (int i = 0; i < 10; i++) {
		challenge_of("test", &c[i]);
		payload = test_payload(&c[i]);
		auth[i] = auth_for(&c[i], payload, NULL);
		free(payload);
	}
	demo_control("{\"delay_ms\":2500}");
	parallel_hook((const char *const *)auth, 10, status, 800, crash_payments);
	demo_control("{\"reset\":true}");
	for (int i = 0; i < 10; i++) {
		if (status[i] != 200)
			fail_msg("request %d: %ld", i, status[i]);
		assert_int_equal(db_int("payments.db", "SELECT count(*) FROM payments WHERE id = ? AND"
						       " state = 'captured'", c[i].id),
		    1);
		pay_with(auth[i], NULL, CHAT, &r);
		expect_problem(&r, 402, PROBLEM("invalid-challenge"));
		h_resp_free(&r);
	}
	for (end = now_ms() + 10000;
	     db_int("payments.db", "SELECT count(*) FROM ledger_outbox", NULL) != 0 && now_ms() < end;)
		usleep(50000);
	assert_int_equal(db_int("payments.db", "SELECT count(*) FROM ledger_outbox", NULL), 0);
	/* The ledger's books balance. */
	assert_int_equal(db_int("ledger.db", "SELECT sum(balance) FROM v_balances", NULL), 0);
	for (int i = 0; i < 10; i++) {
		free(auth[i]);
		mpp_challenge_free(&c[i]);
	}
}

/* `cn2 pay` with each method: its exit status, and its stderr in err (caller frees). */
static int
cn2_pay(const char *args, char **err)
{
	char cmd[2048], buf[4096];
	size_t n, len = 0;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd),
	    "'%s/cn2' pay --dir '%s' -H 'Content-Type: application/json' -d '%s' %s "
	    "'https://demo.localhost:%d/v1/chat/completions' 2>&1 >/dev/null",
	    T.env.bindir, T.env.dir, CHAT, args, T.env.https_port);
	assert_non_null(p = popen(cmd, "r"));
	*err = calloc(1, 1);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
		*err = realloc(*err, len + n + 1);
		memcpy(*err + len, buf, n);
		(*err)[len += n] = '\0';
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_cn2_pay_methods(void **state)
{
	char args[1200], *err;
	struct mpp_challenge c;
	cJSON *req;

	(void)state;
	/* The client pays the invoice through "its" LND (the fake) and presents the preimage. */
	snprintf(args, sizeof(args),
	    "--method lightning --lnd-url https://localhost:%d --lnd-macaroon-file '%s/secrets/lnd.macaroon' "
	    "--lnd-cert '%s/lnd/tls.cert'",
	    T.lnd_port, T.env.dir, T.env.dir);
	if (cn2_pay(args, &err) != 0)
		fail_msg("cn2 pay lightning: %s", err);
	assert_non_null(strstr(err, "\"method\":\"lightning\""));
	free(err);
	/* Too many sats for the buyer's limit: nothing is paid. */
	snprintf(args + strlen(args), sizeof(args) - strlen(args), " --max-sats 2");
	assert_int_equal(cn2_pay(args, &err), 1);
	assert_non_null(strstr(err, "--max-sats"));
	free(err);
	assert_int_equal(cn2_pay("--method stripe --spt spt_ok_cli1", &err), 0);
	assert_non_null(strstr(err, "\"method\":\"stripe\""));
	free(err);
	/* Tempo push mode: the buyer sent the transfer first (the price is known). */
	challenge_of("tempo", &c);
	req = request_of(&c);
	register_tx(TX("f0f0"), cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")), TOKEN);
	cJSON_Delete(req);
	mpp_challenge_free(&c);
	assert_int_equal(cn2_pay("--method tempo --tempo-tx " TX("f0f0"), &err), 0);
	assert_non_null(strstr(err, "\"method\":\"tempo\""));
	free(err);
	assert_int_equal(cn2_pay("--method stripe", &err), 2);
	free(err);
}

/* A challenge like c, bound to Payment-Authorization (signed here with the challenge secret). */
static void
header_bound(const struct mpp_challenge *c, struct mpp_challenge *out, char id[MPP_ID_BUFSZ])
{
	size_t len;
	char *secret = h_read(&T.env, "secrets/challenge.key", &len);

	while (len > 0 && secret[len - 1] == '\n')
		len--;
	*out = *c;
	out->mem = NULL;
	out->header = "Payment-Authorization";
	assert_int_equal(mpp_challenge_id((const uint8_t *)secret, len, out, id), 0);
	out->id = id;
	free(secret);
}

/*
 * Credentials from Payment-Authorization: a challenge that names it is paid
 * there while Authorization carries the buyer's own bearer token, and is
 * refused from Authorization.
 */
static void
test_payment_authorization(void **state)
{
	struct mpp_challenge c, hc;
	struct h_resp r;
	char id[MPP_ID_BUFSZ], *payload, *auth, *line;

	(void)state;
	challenge_of("test", &c);
	header_bound(&c, &hc, id);
	payload = test_payload(&hc);
	auth = auth_for(&hc, payload, NULL);
	/* In Authorization: not the field its challenge selected. */
	pay_with(auth, NULL, CHAT, &r);
	expect_problem(&r, 402, PROBLEM("invalid-challenge"));
	h_resp_free(&r);
	assert_true(asprintf(&line, "Payment-Authorization: %s", strchr(auth, ' ') + 1) > 0);
	pay_with("Authorization: Bearer sk-buyer-own-token", line, CHAT, &r);
	expect_paid(&r, "test", NULL, id);
	assert_non_null(strcasestr(r.headers, "Cache-Control: private"));
	h_resp_free(&r);
	free(line);
	free(auth);
	free(payload);
	mpp_challenge_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_negotiation),
	    cmocka_unit_test(test_lightning),
	    cmocka_unit_test(test_lightning_trouble),
	    cmocka_unit_test(test_stripe),
	    cmocka_unit_test(test_stripe_trouble),
	    cmocka_unit_test(test_tempo),
	    cmocka_unit_test(test_cn2_pay_methods),
	    cmocka_unit_test(test_payment_authorization),
	    cmocka_unit_test(test_problem_types),
	    cmocka_unit_test(test_idempotency),
	    cmocka_unit_test(test_buyers),
	    cmocka_unit_test(test_policy),
	    cmocka_unit_test(test_invoice_budget),
	    cmocka_unit_test(test_stripe_refund),
	    cmocka_unit_test(test_concurrency),
	    cmocka_unit_test(test_restart_mid_flight),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
