/*
 * test_ledger_e2e.c — the ledger end to end through the edge, with the six
 * real daemons and the demo upstream: N paid requests made by `cn2 pay`
 * (some while the upstream is down, so their payments are released), then
 * the ledger's totals against what payments captured, read from payments.db
 * read-only, to the µUSD; GET /api/earnings as the seller; and a dispute
 * opened from a buyer's receipt through POST /api/disputes, read, refunded,
 * with the books checked after it; and the premium pool's surcharge booked
 * apart from the fee.
 *
 * LEDGER_E2E_N sets N (default 20).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/b64url.h"
#include "common/jwt.h"
#include "tests/scenario/ledger_peer.h"

#define SELLER "demo-seller"
#define PREMIUM_SELLER "premium-seller"
#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"

static struct h_env env;
static int npaid;		   /* requests that returned 200 with a receipt */
static char receipt_json[1024];	   /* the last receipt, decoded */
static char *seller_token, *ops_token;

/* Run the cn2 CLI with args; stdout in *out, stderr in *err. The exit status. */
static int
cn2(char **out, char **err, const char *const args[])
{
	char exe[400], errpath[400], *argv[24];
	int n = 0, rc;
	size_t len;

	snprintf(exe, sizeof(exe), "%s/cn2", env.bindir);
	snprintf(errpath, sizeof(errpath), "%s/cn2.stderr", env.dir);
	argv[n++] = exe;
	while (n < 23 && (argv[n] = (char *)(uintptr_t)args[n - 1]) != NULL)
		n++;
	argv[n] = NULL;
	rc = lp_exec(&env, argv, out, errpath);
	*err = h_read(&env, "cn2.stderr", &len);
	return rc;
}

static char *
token(const char *sub, const char *role)
{
	struct jwt_claims c;
	uint8_t key[128];
	size_t len;
	char *s = h_read(&env, "secrets/jwt.key", &len), *t;

	if (s == NULL)
		return NULL;
	if (len > 0 && s[len - 1] == '\n')
		len--;
	len = len < sizeof(key) ? len : sizeof(key);
	memcpy(key, s, len);
	free(s);
	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", sub);
	snprintf(c.aud, sizeof(c.aud), "authenticated");
	snprintf(c.role, sizeof(c.role), "%s", role);
	c.exp = (int64_t)time(NULL) + 3600;
	c.iat = (int64_t)time(NULL);
	t = jwt_sign(&c, key, len);
	return t;
}

static int
group_setup(void **state)
{
	char key[400], url[128], *out = NULL, *err = NULL;
	int rc;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (h_init(&env, NULL) != 0 || h_start_demo(&env) != 0 || h_up(&env) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s/secrets/demo.key", env.dir);
	snprintf(url, sizeof(url), "https://localhost:%d", env.https_port);
	{
		const char *args[] = {"keys", "add", "--dir", env.dir, "--url", url, "--provider", "demo",
		    "--key-file", key, "--price", "0.001", "--as", SELLER, NULL};

		rc = cn2(&out, &err, args);
	}
	if (rc != 0)
		fprintf(stderr, "cn2 keys add: %s%s\n", out, err);
	free(out);
	free(err);
	seller_token = token(SELLER, "authenticated");
	ops_token = token("ops-1", "service_role");
	return rc == 0 && seller_token != NULL && ops_token != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	free(seller_token);
	free(ops_token);
	down = h_down(&env);
	curl_global_cleanup();
	return down;
}

/*
 * One paid request with `cn2 pay`, in the pool pool_header names (NULL: the
 * standard pool); 1 if it was served (and its receipt kept), 0 if not.
 */
static int
pay_in(const char *pool_header)
{
	char url[128], *out = NULL, *err = NULL, *r;
	int rc, ok;

	snprintf(url, sizeof(url), "https://demo.localhost:%d/v1/chat/completions", env.https_port);
	{
		const char *args[] = {"pay", "--dir", env.dir, "-H", "Content-Type: application/json",
		    "-d", CHAT, "-H", pool_header, url, NULL};

		if (pool_header == NULL) { /* no pool header: drop its -H */
			args[7] = url;
			args[8] = NULL;
		}
		rc = cn2(&out, &err, args);
	}
	ok = rc == 0 && (r = strstr(err, "receipt: ")) != NULL;
	if (ok)
		snprintf(receipt_json, sizeof(receipt_json), "%.*s", (int)strcspn(r + 9, "\n"), r + 9);
	else
		print_message("# cn2 pay: exit %d: %s%s\n", rc, err != NULL ? err : "", out != NULL ? out : "");
	free(out);
	free(err);
	return ok;
}

static int
pay_once(void)
{
	return pay_in(NULL);
}

/* An integer from payments.db, read-only beside the running daemon. */
static int64_t
payments_int(const char *sql)
{
	char path[400];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = INT64_MIN;

	snprintf(path, sizeof(path), "%s/db/payments.db", env.dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Payments tells the ledger after it answers the edge: wait for the outbox to drain. */
static void
wait_settled(int64_t captured)
{
	for (int i = 0; i < 200; i++) {
		if (payments_int("SELECT count(*) FROM ledger_outbox") == 0 &&
		    lp_db_int(&env, "SELECT coalesce(sum(amount), 0) FROM transfers WHERE kind = 'post'",
			NULL) == captured &&
		    lp_balance(&env, "escrow") == 0)
			return;
		usleep(50000);
	}
	fail_msg("the ledger did not settle: outbox %" PRId64 ", posted %" PRId64 " of %" PRId64,
	    payments_int("SELECT count(*) FROM ledger_outbox"),
	    lp_db_int(&env, "SELECT sum(amount) FROM transfers WHERE kind = 'post'", NULL), captured);
}

static void
test_paid_totals(void **state)
{
	const char *n_env = getenv("LEDGER_E2E_N");
	int n = n_env != NULL ? atoi(n_env) : 20, failed = 0;
	int64_t captured, seller, posts, voided;
	char *out = NULL;

	(void)state;
	assert_true(n >= 4);
	for (int i = 0; i < n; i++) {
		/* Two requests meet a dead upstream: released, not captured. */
		if (i == n / 2) {
			kill(env.demo_pid, SIGKILL);
			waitpid(env.demo_pid, NULL, 0);
			env.demo_pid = 0;
		}
		if (i == n / 2 + 2)
			assert_int_equal(h_start_demo(&env), 0);
		if (pay_once())
			npaid++;
		else
			failed++;
	}
	assert_int_equal(npaid, n - 2);
	assert_int_equal(failed, 2);
	captured = payments_int("SELECT sum(amount) FROM payments WHERE state = 'captured'");
	seller = payments_int("SELECT sum(seller_amount) FROM payments WHERE state = 'captured'");
	assert_int_equal(payments_int("SELECT count(*) FROM payments WHERE state = 'captured'"), npaid);
	wait_settled(captured);
	/* The ledger's totals are what payments captured, to the µUSD. */
	posts = lp_db_int(&env, "SELECT sum(amount) FROM transfers WHERE kind = 'post'", NULL);
	voided = lp_db_int(&env, "SELECT coalesce(sum(amount), 0) FROM transfers WHERE kind = 'void'",
	    NULL);
	print_message("# %d paid requests: payments captured %" PRId64 " µUSD, the ledger posted %" PRId64
		      " µUSD (%" PRId64 " to the seller), voided %" PRId64 "\n",
	    npaid, captured, posts, seller, voided);
	assert_int_equal(posts, captured);
	assert_int_equal(lp_db_int(&env, "SELECT count(*) FROM transfers WHERE kind = 'post'", NULL),
	    npaid);
	assert_int_equal(lp_balance(&env, "clearing:test"), -captured);
	assert_int_equal(lp_balance(&env, "seller:" SELLER), seller);
	assert_int_equal(lp_balance(&env, "platform:fees"), captured - seller);
	assert_int_equal(lp_balance(&env, "escrow"), 0);
	assert_true(voided > 0);
	assert_int_equal(lp_db_int(&env, "SELECT sum(balance) FROM v_balances", NULL), 0);
	assert_int_equal(lp_tool(&env, &out, "verify", NULL), 0);
	free(out);
}

static cJSON *
api(const char *method, const char *path, const char *tok, const char *body, long want)
{
	char url[256], auth[2048];
	const char *hs[] = {auth, "Content-Type: application/json", NULL};
	struct h_resp r;
	cJSON *j;

	snprintf(url, sizeof(url), "https://api.localhost:%d%s", env.https_port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok != NULL ? tok : "");
	assert_int_equal(h_http(&env, method, url, tok != NULL ? hs : hs + 1, body,
			     body != NULL ? strlen(body) : 0, &r),
	    0);
	if (r.status != want)
		fail_msg("%s %s: %ld, want %ld: %s", method, path, r.status, want, r.body);
	j = cJSON_Parse(r.body);
	h_resp_free(&r);
	assert_non_null(j);
	return j;
}

static int64_t
num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	assert_true(cJSON_IsNumber(v));
	return (int64_t)v->valuedouble;
}

static void
test_earnings_api(void **state)
{
	int64_t balance = lp_balance(&env, "seller:" SELLER);
	cJSON *e;

	(void)state;
	cJSON_Delete(api("GET", "/api/earnings", NULL, NULL, 401));
	e = api("GET", "/api/earnings", seller_token, NULL, 200);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "seller")), SELLER);
	assert_int_equal(num(e, "earned_micros"), balance);
	/* The default hold is a week: all of it is still pending. */
	assert_int_equal(num(e, "pending_micros"), balance);
	assert_int_equal(num(e, "available_micros"), 0);
	assert_int_equal(num(e, "hold_seconds"), 604800);
	assert_int_equal(num(e, "paid_out_micros"), 0);
	cJSON_Delete(e);
	cJSON_Delete(api("POST", "/api/earnings", seller_token, "{}", 405));
}

static void
test_dispute_api(void **state)
{
	int64_t seller0 = lp_balance(&env, "seller:" SELLER), clearing0 = lp_balance(&env,
								 "clearing:test");
	char body[2048], enc[1400], path[160];
	cJSON *d, *rj;
	const char *id, *ref;
	int64_t amount, share;

	(void)state;
	assert_true(receipt_json[0] == '{');
	assert_true(b64url_encode((const uint8_t *)receipt_json, strlen(receipt_json), enc,
			sizeof(enc)) > 0);
	rj = cJSON_Parse(receipt_json);
	assert_non_null(ref = cJSON_GetStringValue(cJSON_GetObjectItem(rj, "reference")));
	snprintf(body, sizeof(body), "{\"receipt\":\"%s\"}", enc);
	cJSON_Delete(api("POST", "/api/disputes", seller_token, body, 403));
	cJSON_Delete(api("POST", "/api/disputes", ops_token, "{\"reference\":\"nope\"}", 404));
	cJSON_Delete(api("POST", "/api/disputes", ops_token, "{\"receipt\":\"!!\"}", 400));
	d = api("POST", "/api/disputes", ops_token, body, 201);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "payment")), ref);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "state")), "open");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "seller")), SELLER);
	amount = num(d, "amount_micros");
	share = num(d, "seller_amount_micros");
	snprintf(path, sizeof(path), "SELECT amount FROM payments WHERE id = '%s'", ref);
	assert_int_equal(amount, payments_int(path));
	assert_int_equal(lp_balance(&env, "seller:" SELLER), seller0 - share);
	assert_int_equal(lp_balance(&env, "reserve:disputes"), amount);
	id = cJSON_GetStringValue(cJSON_GetObjectItem(d, "id"));
	assert_non_null(id);
	/* The same receipt again: disputed already. */
	cJSON_Delete(api("POST", "/api/disputes", ops_token, body, 409));
	snprintf(path, sizeof(path), "/api/disputes/%s", id);
	cJSON_Delete(api("GET", path, ops_token, NULL, 200));
	snprintf(path, sizeof(path), "/api/disputes/%s/resolve", id);
	cJSON_Delete(api("POST", path, ops_token, "{\"outcome\":\"maybe\"}", 400));
	cJSON_Delete(d);
	d = api("POST", path, ops_token, "{\"outcome\":\"buyer\"}", 200);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "state")), "refunded");
	cJSON_Delete(d);
	cJSON_Delete(api("POST", path, ops_token, "{\"outcome\":\"seller\"}", 409));
	cJSON_Delete(api("GET", "/api/disputes/dsp_unknown", ops_token, NULL, 404));
	cJSON_Delete(rj);
	/* The refund went back to the buyer's clearing account; the books still add up. */
	assert_int_equal(lp_balance(&env, "clearing:test"), clearing0 + amount);
	assert_int_equal(lp_balance(&env, "reserve:disputes"), 0);
	assert_int_equal(lp_balance(&env, "platform:refunds"), share - amount);
	{
		char *out = NULL;

		assert_int_equal(lp_tool(&env, &out, "verify", NULL), 0);
		free(out);
	}
}

/*
 * The premium pool end to end: the seller opts the key in, five requests
 * pay ×1.25, and the ledger books each one in three parts — the seller's own
 * price, the surcharge to platform:premium, the rest as the platform's fee —
 * matching what payments captured, to the µUSD.
 */
static void
test_premium_split(void **state)
{
	const char *premium_sql = "SELECT coalesce((SELECT balance FROM v_balances WHERE"
				  " account = 'platform:premium'), 0)";
	int64_t fees0 = lp_balance(&env, "platform:fees"), premium0, std, paid, surcharge, seller;
	char path[160], key[400], url[128], *out = NULL, *err = NULL, *tok;
	const char *id;
	cJSON *keys, *k;

	(void)state;
	premium0 = lp_db_int(&env, premium_sql, NULL);
	/*
	 * A second seller lists a fresh key (the first one's score dropped below
	 * the premium floor when its upstream died in test_paid_totals).
	 */
	snprintf(key, sizeof(key), "%s/secrets/demo.key", env.dir);
	snprintf(url, sizeof(url), "https://localhost:%d", env.https_port);
	{
		const char *args[] = {"keys", "add", "--dir", env.dir, "--url", url, "--provider", "demo",
		    "--key-file", key, "--price", "0.001", "--as", PREMIUM_SELLER, NULL};

		assert_int_equal(cn2(&out, &err, args), 0);
		free(out);
		free(err);
	}
	assert_non_null(tok = token(PREMIUM_SELLER, "authenticated"));
	keys = api("GET", "/api/keys", tok, NULL, 200);
	k = cJSON_GetArrayItem(cJSON_GetObjectItem(keys, "keys"), 0);
	assert_non_null(id = cJSON_GetStringValue(cJSON_GetObjectItem(k, "id")));
	snprintf(path, sizeof(path), "/api/keys/%s", id);
	cJSON_Delete(keys);
	/* Not opted in: the premium pool has no key, and nobody is charged. */
	assert_int_equal(pay_in("X-CN2-Pool: premium"), 0);
	cJSON_Delete(api("PATCH", path, tok, "{\"premium\":true}", 200));
	for (int i = 0; i < 5; i++)
		assert_int_equal(pay_in("X-CN2-Pool: premium"), 1);
	assert_int_equal(payments_int("SELECT count(*) FROM payments WHERE state = 'captured'"
				      " AND pool = 1 AND seller_id = '" PREMIUM_SELLER "'"),
	    5);
	std = payments_int("SELECT max(amount) FROM payments WHERE state = 'captured' AND pool = 0");
	paid = payments_int("SELECT sum(amount) FROM payments WHERE state = 'captured' AND pool = 1");
	surcharge = payments_int("SELECT sum(premium_amount) FROM payments WHERE pool = 1");
	seller = payments_int("SELECT sum(seller_amount) FROM payments WHERE pool = 1");
	/* Each paid ceil(standard × 5/4); the surcharge is what that added. */
	assert_int_equal(paid, 5 * ((std * 5 + 3) / 4));
	assert_int_equal(surcharge, paid - 5 * std);
	assert_int_equal(payments_int("SELECT count(*) FROM payments WHERE pool = 0 AND"
				      " premium_amount <> 0"),
	    0);
	wait_settled(payments_int("SELECT sum(amount) FROM payments WHERE state = 'captured'"));
	print_message("# 5 premium requests: paid %" PRId64 " µUSD, %" PRId64
		      " to the seller, %" PRId64 " premium surcharge, %" PRId64 " fee\n",
	    paid, seller, surcharge, paid - seller - surcharge);
	assert_true(surcharge > 0);
	assert_int_equal(lp_db_int(&env, premium_sql, NULL) - premium0, surcharge);
	assert_int_equal(lp_balance(&env, "seller:" PREMIUM_SELLER), seller);
	assert_int_equal(lp_balance(&env, "platform:fees") - fees0, paid - seller - surcharge);
	assert_int_equal(lp_db_int(&env, "SELECT sum(balance) FROM v_balances", NULL), 0);
	free(tok);
	{
		char *vout = NULL;

		assert_int_equal(lp_tool(&env, &vout, "verify", NULL), 0);
		free(vout);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paid_totals),
	    cmocka_unit_test(test_earnings_api),
	    cmocka_unit_test(test_dispute_api),
	    cmocka_unit_test(test_premium_split),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
