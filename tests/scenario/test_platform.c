/*
 * test_platform.c — cn2-platform with the real cn2-router, and a fake vault
 * in this process (an IPC listener with the vault's role and peer rule that
 * answers KEY_PUT), driven as the edge with API messages: bearer tokens
 * signed here with the directory's JWT secret, keys listed and shown, bad
 * bodies, unknown routes, peers going down; and the seller's key, a canary,
 * must never reach platform.db, router.db or any log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/jwt.h"
#include "tests/scenario/harness.h"

#define T_MS 8000
#define CANARY "sk-canary-7f3e9a1c5b2d4e6f8091a2b3c4d5e6f7"
#define CANARY2 "sk-second-0a1b2c3d4e5f60718293a4b5c6d7e8f9"

static struct h_env env;
static struct h_ipc as_edge;
static uint8_t jwt_key[128];
static size_t jwt_keylen;
static char *token, *token_other;

/* The fake vault: it remembers the last KEY_PUT and answers ACK, or 400 for "nosuch". */
static struct {
	struct ipc *ipc;
	int puts;
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	char secret[4097];
} vault;

static void
vault_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	const struct ipc_key_put *k = &msg->key_put;
	struct ipc_problem p;

	(void)arg;
	assert_int_equal(type, IPC_KEY_PUT);
	vault.puts++;
	snprintf(vault.key_id, sizeof(vault.key_id), "%s", k->key_id);
	snprintf(vault.seller_id, sizeof(vault.seller_id), "%s", k->seller_id);
	snprintf(vault.provider, sizeof(vault.provider), "%s", k->provider);
	snprintf(vault.secret, sizeof(vault.secret), "%.*s", (int)k->secret.len,
	    (const char *)k->secret.p);
	if (strcmp(k->provider, "nosuch") != 0) {
		ipc_reply(vault.ipc, req, IPC_ACK, NULL);
		return;
	}
	memset(&p, 0, sizeof(p));
	p.status = 400;
	snprintf(p.name, sizeof(p.name), "unknown-provider");
	snprintf(p.detail, sizeof(p.detail), "no provider \"nosuch\" in the catalogue");
	ipc_reply(vault.ipc, req, IPC_PROBLEM, &p);
}

static int
vault_start(void)
{
	static const uint16_t from_platform[] = {IPC_KEY_PUT};
	static const struct ipc_peer_rule rules[] = {{ROLE_PLATFORM, from_platform, 1}};
	struct ipc_config c;
	char run[300], err[256];

	memset(&c, 0, sizeof(c));
	snprintf(run, sizeof(run), "%s/run", env.dir);
	c.loop = &as_edge.loop;
	c.self = ROLE_VAULT;
	c.runtime_dir = run;
	c.accept = rules;
	c.naccept = 1;
	for (int r = 0; r < ROLE_MAX; r++)
		c.role_uid[r] = getuid();
	c.on_request = vault_request;
	if ((vault.ipc = ipc_start(&c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fake vault: %s\n", err);
		return -1;
	}
	return 0;
}

static char *
sign(const char *sub, const char *aud, int64_t exp, const uint8_t *key, size_t keylen)
{
	struct jwt_claims c;

	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", sub);
	snprintf(c.aud, sizeof(c.aud), "%s", aud);
	c.exp = exp;
	c.iat = (int64_t)time(NULL);
	snprintf(c.role, sizeof(c.role), "authenticated");
	return jwt_sign(&c, key, keylen);
}

static int
group_setup(void **state)
{
	static const enum ipc_role platform[] = {ROLE_PLATFORM};
	char *s;

	(void)state;
	if (h_init(&env, NULL) != 0 || h_start(&env, "router") != 0)
		return -1;
	if (h_ipc_open(&env, &as_edge, ROLE_EDGE, platform, 1) != 0 || vault_start() != 0)
		return -1;
	if (h_start(&env, "platform") != 0)
		return -1;
	if ((s = h_read(&env, "secrets/jwt.key", &jwt_keylen)) == NULL)
		return -1;
	if (jwt_keylen > 0 && s[jwt_keylen - 1] == '\n')
		jwt_keylen--;
	memcpy(jwt_key, s, jwt_keylen < sizeof(jwt_key) ? jwt_keylen : sizeof(jwt_key));
	free(s);
	token = sign("seller-abc", "authenticated", (int64_t)time(NULL) + 3600, jwt_key, jwt_keylen);
	token_other = sign("seller-xyz", "authenticated", (int64_t)time(NULL) + 3600, jwt_key,
	    jwt_keylen);
	return token != NULL && token_other != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	if (vault.ipc != NULL)
		ipc_stop(vault.ipc);
	h_ipc_close(&as_edge);
	down = h_down(&env);
	free(token);
	free(token_other);
	return down;
}

struct api_resp {
	uint16_t status;
	char ctype[64];
	char *body;
	cJSON *json;
};

static void
resp_free(struct api_resp *r)
{
	free(r->body);
	cJSON_Delete(r->json);
}

/* One API request as the edge sends it. tok NULL: no Authorization; "" + raw: as given. */
static void
api(const char *method, const char *target, const char *authorization, const char *ctype,
    const char *body, struct api_resp *out)
{
	struct ipc_api a;
	struct h_reply r;

	memset(&a, 0, sizeof(a));
	memset(out, 0, sizeof(*out));
	snprintf(a.method, sizeof(a.method), "%s", method);
	snprintf(a.target, sizeof(a.target), "%s", target);
	if (authorization != NULL)
		snprintf(a.authorization, sizeof(a.authorization), "%s", authorization);
	snprintf(a.content_type, sizeof(a.content_type), "%s", ctype != NULL ? ctype : "");
	a.body.p = (const uint8_t *)body;
	a.body.len = body != NULL ? (uint32_t)strlen(body) : 0;
	assert_int_equal(h_ipc_call(&as_edge, ROLE_PLATFORM, IPC_API, &a, &r, 1, T_MS), 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.type, IPC_API_REP);
	out->status = r.msg.api_rep.status;
	snprintf(out->ctype, sizeof(out->ctype), "%s", r.msg.api_rep.content_type);
	out->body = strndup((const char *)r.msg.api_rep.body.p, r.msg.api_rep.body.len);
	assert_non_null(out->body);
	out->json = cJSON_Parse(out->body);
	assert_non_null(out->json);
	h_replies_free(&r, 1);
}

static void
bearer(char *buf, size_t cap, const char *tok)
{
	snprintf(buf, cap, "Bearer %s", tok);
}

static const char *
jstr(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* A problem+json reply of this status and type name. */
static void
expect_problem(const struct api_resp *r, uint16_t status, const char *name)
{
	char type[128];

	snprintf(type, sizeof(type), "https://cn2.ai/problems/%s", name);
	if (r->status != status)
		fail_msg("status %u, want %u: %s", r->status, status, r->body);
	assert_string_equal(r->ctype, "application/problem+json");
	assert_string_equal(jstr(r->json, "type"), type);
	assert_int_equal(cJSON_GetObjectItem(r->json, "status")->valueint, status);
	assert_non_null(jstr(r->json, "detail"));
	assert_non_null(jstr(r->json, "title"));
}

static void
test_no_token(void **state)
{
	struct api_resp r;
	char auth[4096];
	char *t;

	(void)state;
	api("POST", "/api/keys", NULL, "application/json",
	    "{\"provider\":\"demo\",\"key\":\"" CANARY "\",\"price_usd\":\"0.002\"}", &r);
	expect_problem(&r, 401, "unauthorized");
	resp_free(&r);
	api("GET", "/api/keys", "Basic dXNlcjpwYXNz", NULL, NULL, &r);
	expect_problem(&r, 401, "unauthorized");
	resp_free(&r);
	/* Signed with another secret, expired, for another audience, garbage. */
	t = sign("seller-abc", "authenticated", (int64_t)time(NULL) + 3600,
	    (const uint8_t *)"another-secret-another-secret-another-secret", 44);
	bearer(auth, sizeof(auth), t);
	api("GET", "/api/keys", auth, NULL, NULL, &r);
	expect_problem(&r, 401, "unauthorized");
	resp_free(&r);
	free(t);
	t = sign("seller-abc", "authenticated", (int64_t)time(NULL) - 120, jwt_key, jwt_keylen);
	bearer(auth, sizeof(auth), t);
	api("GET", "/api/keys", auth, NULL, NULL, &r);
	expect_problem(&r, 401, "unauthorized");
	assert_non_null(strstr(jstr(r.json, "detail"), "expired"));
	resp_free(&r);
	free(t);
	t = sign("seller-abc", "anon", (int64_t)time(NULL) + 3600, jwt_key, jwt_keylen);
	bearer(auth, sizeof(auth), t);
	api("GET", "/api/keys", auth, NULL, NULL, &r);
	expect_problem(&r, 401, "unauthorized");
	resp_free(&r);
	free(t);
	api("GET", "/api/keys", "Bearer not.a.jwt", NULL, NULL, &r);
	expect_problem(&r, 401, "unauthorized");
	resp_free(&r);
	assert_int_equal(vault.puts, 0);
}

static const cJSON *
find_key(const cJSON *list, const char *id)
{
	const cJSON *k;

	cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(list, "keys"))
		if (jstr(k, "id") != NULL && strcmp(jstr(k, "id"), id) == 0)
			return k;
	return NULL;
}

static void
test_create_and_list(void **state)
{
	struct api_resp r, l;
	char auth[4096], id1[64], id2[64];
	const cJSON *k;

	(void)state;
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json; charset=utf-8",
	    "{\"provider\":\"demo\",\"key\":\"" CANARY "\",\"price_usd\":\"0.002\"}\n", &r);
	if (r.status != 201)
		fail_msg("POST: %u %s", r.status, r.body);
	assert_string_equal(r.ctype, "application/json");
	assert_null(strstr(r.body, CANARY));
	assert_int_equal(strncmp(jstr(r.json, "id"), "k_", 2), 0);
	assert_int_equal(strlen(jstr(r.json, "id")), 24);
	assert_string_equal(jstr(r.json, "provider"), "demo");
	assert_int_equal(cJSON_GetObjectItem(r.json, "price_micros")->valuedouble, 2000);
	assert_string_equal(jstr(r.json, "price_usd"), "0.002000");
	assert_string_equal(jstr(r.json, "status"), "active");
	assert_int_equal(strlen(jstr(r.json, "created")), 20);
	snprintf(id1, sizeof(id1), "%s", jstr(r.json, "id"));
	resp_free(&r);
	/* The vault got the key itself, under the new id, for this seller. */
	assert_int_equal(vault.puts, 1);
	assert_string_equal(vault.key_id, id1);
	assert_string_equal(vault.seller_id, "seller-abc");
	assert_string_equal(vault.provider, "demo");
	assert_string_equal(vault.secret, CANARY);

	api("POST", "/api/keys", auth, "application/json",
	    "{\"price_micros\":1500,\"key\":\"" CANARY2 "\",\"provider\":\"demo\"}", &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(jstr(r.json, "price_usd"), "0.001500");
	snprintf(id2, sizeof(id2), "%s", jstr(r.json, "id"));
	assert_string_not_equal(id1, id2);
	resp_free(&r);

	api("GET", "/api/keys?limit=10", auth, NULL, NULL, &l);
	assert_int_equal(l.status, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(l.json, "keys")), 2);
	assert_non_null(k = find_key(l.json, id1));
	assert_string_equal(jstr(k, "provider"), "demo");
	assert_int_equal(cJSON_GetObjectItem(k, "price_micros")->valuedouble, 2000);
	assert_string_equal(jstr(k, "price_usd"), "0.002000");
	assert_string_equal(jstr(k, "status"), "active");
	assert_non_null(find_key(l.json, id2));
	assert_null(strstr(l.body, CANARY));
	resp_free(&l);

	/* Another seller sees none of them. */
	bearer(auth, sizeof(auth), token_other);
	api("GET", "/api/keys", auth, NULL, NULL, &l);
	assert_int_equal(l.status, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(l.json, "keys")), 0);
	resp_free(&l);
}

static void
test_bad_bodies(void **state)
{
	static const char *const bodies[] = {
	    "",
	    "not json",
	    "[\"demo\"]",
	    "{\"provider\":\"demo\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"demo\",\"key\":\"short\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"demo\",\"key\":\"has a space in it\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-\\u00e9abcdefgh\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abc\\u0000defghij\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"Demo\",\"key\":\"sk-abcdefghij\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"\",\"key\":\"sk-abcdefghij\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_usd\":\"0.002\",\"price_micros\":2000}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_usd\":\"0\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_usd\":\"1000.000001\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_usd\":\"-1\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_usd\":0.002}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":1.5}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":0}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":\"2000\"}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000,\"seller\":\"x\"}",
	    "{\"provider\":\"demo\",\"provider\":\"openai\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000}",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000} {}",
	    "{\"provider\":\"demo\",\"key\":[\"sk-abcdefghij\"],\"price_micros\":2000}",
	};
	struct api_resp r;
	char auth[4096];
	int before = vault.puts;

	(void)state;
	bearer(auth, sizeof(auth), token);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		api("POST", "/api/keys", auth, "application/json", bodies[i], &r);
		if (r.status != 400)
			fail_msg("body %zu: %u %s", i, r.status, r.body);
		expect_problem(&r, 400, "invalid-request");
		resp_free(&r);
	}
	api("POST", "/api/keys", auth, "text/plain",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000}", &r);
	expect_problem(&r, 415, "unsupported-media-type");
	resp_free(&r);
	assert_int_equal(vault.puts, before);
}

/* The vault knows the catalogue: its 400 reaches the seller as it is. */
static void
test_unknown_provider(void **state)
{
	struct api_resp r;
	char auth[4096];

	(void)state;
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json",
	    "{\"provider\":\"nosuch\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000}", &r);
	expect_problem(&r, 400, "unknown-provider");
	assert_non_null(strstr(jstr(r.json, "detail"), "nosuch"));
	resp_free(&r);
}

static void
test_routes(void **state)
{
	struct api_resp r;
	char auth[4096];

	(void)state;
	bearer(auth, sizeof(auth), token);
	api("GET", "/api/nothing", auth, NULL, NULL, &r);
	expect_problem(&r, 404, "not-found");
	resp_free(&r);
	api("GET", "/api/keys/", auth, NULL, NULL, &r);
	expect_problem(&r, 404, "not-found");
	resp_free(&r);
	api("GET", "/healthz", NULL, NULL, NULL, &r);
	expect_problem(&r, 404, "not-found");
	resp_free(&r);
	api("DELETE", "/api/keys", auth, NULL, NULL, &r);
	expect_problem(&r, 405, "method-not-allowed");
	resp_free(&r);
	api("PUT", "/api/keys", NULL, NULL, NULL, &r);
	expect_problem(&r, 405, "method-not-allowed");
	resp_free(&r);
}

/* Does the file (if it exists) hold s anywhere? */
static int
file_contains(const char *rel, const char *s)
{
	size_t len;
	char *p = h_read(&env, rel, &len);
	int found;

	if (p == NULL)
		return 0;
	found = memmem(p, len, s, strlen(s)) != NULL;
	free(p);
	return found;
}

static void
test_key_stored_nowhere(void **state)
{
	static const char *const files[] = {
	    "db/platform.db", "db/platform.db-wal", "db/router.db", "db/router.db-wal",
	    "daemons.log",
	};
	const char *canaries[] = {CANARY, CANARY2, "sk-abcdefghij", token};

	(void)state;
	/* The ownership rows are there, without the key. */
	assert_true(file_contains("db/platform.db", "seller-abc") ||
	    file_contains("db/platform.db-wal", "seller-abc"));
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
		for (size_t c = 0; c < sizeof(canaries) / sizeof(canaries[0]); c++)
			if (file_contains(files[f], canaries[c]))
				fail_msg("%s holds canary %zu", files[f], c);
}

/* With the router down the key cannot be listed: 503, both ways. */
static void
test_router_down(void **state)
{
	struct api_resp r;
	char auth[4096];

	(void)state;
	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000}", &r);
	expect_problem(&r, 503, "service-unavailable");
	assert_non_null(strstr(jstr(r.json, "detail"), "router"));
	resp_free(&r);
	api("GET", "/api/keys", auth, NULL, NULL, &r);
	expect_problem(&r, 503, "service-unavailable");
	resp_free(&r);
}

static void
test_vault_down(void **state)
{
	struct api_resp r;
	char auth[4096];

	(void)state;
	ipc_stop(vault.ipc);
	vault.ipc = NULL;
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json",
	    "{\"provider\":\"demo\",\"key\":\"sk-abcdefghij\",\"price_micros\":2000}", &r);
	expect_problem(&r, 503, "service-unavailable");
	assert_non_null(strstr(jstr(r.json, "detail"), "vault"));
	resp_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_token),
	    cmocka_unit_test(test_create_and_list),
	    cmocka_unit_test(test_bad_bodies),
	    cmocka_unit_test(test_unknown_provider),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_key_stored_nowhere),
	    cmocka_unit_test(test_router_down),
	    cmocka_unit_test(test_vault_down),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
