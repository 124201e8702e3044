/*
 * test_platform.c — cn2-platform with the real cn2-router, and a fake vault
 * in this process (an IPC listener with the vault's role and peer rule that
 * answers VAULT_PUBKEY with a key pair made here, and KEY_PUT), driven as
 * the edge with API messages: bearer tokens signed here with the
 * directory's JWT secret, the vault's public key, keys sealed here with
 * HPKE listed, shown and rotated, a key in clear refused, bad bodies,
 * unknown routes, peers going down; and the seller's key, a canary, must
 * never reach platform.db, router.db or any log, and reaches the vault only
 * sealed (the fake vault opens it to prove the ciphertext is the key).
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

#include "common/b64url.h"
#include "common/hpke.h"
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

/*
 * The fake vault: it publishes its own key pair, remembers the last KEY_PUT
 * (the ciphertext as it came, and what it opens to) and answers ACK, or 400
 * for "nosuch".
 */
static struct {
	struct ipc *ipc;
	uint8_t sk[HPKE_NSK], pk[HPKE_NPK];
	int puts;
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	char kid[IPC_KID_MAX + 1];
	int rotate;
	uint8_t sealed[IPC_SEALED_MAX];
	size_t sealedlen;
	char secret[4097]; /* what the sealed key opened to, "" if it did not */
} vault;

#define VAULT_KID "vk_fakevault"

static void
vault_open_put(const struct ipc_key_put *k)
{
	char binding[HPKE_CN2_BINDING_MAX];
	int n = hpke_cn2_binding(binding, sizeof(binding), k->seller_id, k->provider);

	memset(vault.secret, 0, sizeof(vault.secret));
	if (n < 0 || hpke_open(HPKE_CN2_AEAD, vault.sk, vault.pk, k->enc.p, (const uint8_t *)binding,
			 (size_t)n, (const uint8_t *)binding, (size_t)n, k->sealed.p, k->sealed.len,
			 (uint8_t *)vault.secret) != 0)
		memset(vault.secret, 0, sizeof(vault.secret));
}

static void
vault_pubkey(const struct ipc_req *req)
{
	struct ipc_vault_pubkey_rep rep;

	memset(&rep, 0, sizeof(rep));
	snprintf(rep.kid, sizeof(rep.kid), VAULT_KID);
	rep.public_key.p = vault.pk;
	rep.public_key.len = HPKE_NPK;
	rep.created = 1760000000;
	ipc_reply(vault.ipc, req, IPC_VAULT_PUBKEY_REP, &rep);
}

static void
vault_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	const struct ipc_key_put *k = &msg->key_put;
	struct ipc_problem p;

	(void)arg;
	if (type == IPC_VAULT_PUBKEY) {
		vault_pubkey(req);
		return;
	}
	assert_int_equal(type, IPC_KEY_PUT);
	vault.puts++;
	snprintf(vault.key_id, sizeof(vault.key_id), "%s", k->key_id);
	snprintf(vault.seller_id, sizeof(vault.seller_id), "%s", k->seller_id);
	snprintf(vault.provider, sizeof(vault.provider), "%s", k->provider);
	snprintf(vault.kid, sizeof(vault.kid), "%s", k->kid);
	vault.rotate = k->rotate;
	memcpy(vault.sealed, k->sealed.p, k->sealed.len);
	vault.sealedlen = k->sealed.len;
	vault_open_put(k);
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
	static const uint16_t from_platform[] = {IPC_KEY_PUT, IPC_VAULT_PUBKEY};
	static const struct ipc_peer_rule rules[] = {{ROLE_PLATFORM, from_platform, 2}};

	if (hpke_keypair_generate(vault.sk, vault.pk) != 0)
		return -1;
	vault.ipc = h_ipc_listen(&env, &as_edge.loop, ROLE_VAULT, rules, 1, vault_request, NULL);
	return vault.ipc != NULL ? 0 : -1;
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

/*
 * "sealed_key": {kid, enc, ct} of key, sealed here to the fake vault's key
 * for seller and provider, as a seller's client would. Caller frees.
 */
static char *
sealed_json(const char *seller, const char *provider, const char *key)
{
	char binding[HPKE_CN2_BINDING_MAX], enc64[64], *ct64, *out;
	uint8_t enc[HPKE_NENC], *ct = malloc(strlen(key) + HPKE_NT);
	int n = hpke_cn2_binding(binding, sizeof(binding), seller, provider);

	assert_non_null(ct);
	assert_true(n > 0);
	assert_int_equal(hpke_seal(HPKE_CN2_AEAD, vault.pk, (const uint8_t *)binding, (size_t)n,
			     (const uint8_t *)binding, (size_t)n, (const uint8_t *)key, strlen(key),
			     enc, ct),
	    0);
	assert_non_null(ct64 = malloc(b64url_encoded_len(strlen(key) + HPKE_NT) + 1));
	assert_true(b64url_encode(enc, sizeof(enc), enc64, sizeof(enc64)) > 0);
	assert_true(b64url_encode(ct, strlen(key) + HPKE_NT, ct64,
			b64url_encoded_len(strlen(key) + HPKE_NT) + 1) > 0);
	assert_true(asprintf(&out, "{\"kid\":\"%s\",\"enc\":\"%s\",\"ct\":\"%s\"}", VAULT_KID,
			enc64, ct64) > 0);
	free(ct);
	free(ct64);
	return out;
}

/* A POST /api/keys body with key sealed for seller; extra is more members or "". */
static char *
key_body(const char *seller, const char *provider, const char *key, const char *extra)
{
	char *sk = sealed_json(seller, provider, key), *body;

	assert_true(asprintf(&body, "{\"provider\":\"%s\",\"sealed_key\":%s%s}", provider, sk,
			extra) > 0);
	free(sk);
	return body;
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
	char *body = key_body("seller-abc", "demo", CANARY, ",\"price_usd\":\"0.002\"");

	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json; charset=utf-8", body, &r);
	free(body);
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
	/*
	 * The vault got the key sealed, under the new id, for this seller: the
	 * ciphertext the client made, which opens (with the vault's key only) to
	 * the key itself.
	 */
	assert_int_equal(vault.puts, 1);
	assert_string_equal(vault.key_id, id1);
	assert_string_equal(vault.seller_id, "seller-abc");
	assert_string_equal(vault.provider, "demo");
	assert_string_equal(vault.kid, VAULT_KID);
	assert_int_equal(vault.rotate, 0);
	assert_int_equal(vault.sealedlen, strlen(CANARY) + HPKE_NT);
	assert_null(memmem(vault.sealed, vault.sealedlen, CANARY, 8));
	assert_string_equal(vault.secret, CANARY);

	body = key_body("seller-abc", "demo", CANARY2, ",\"price_micros\":1500");
	api("POST", "/api/keys", auth, "application/json", body, &r);
	free(body);
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
	static const char *const extras[] = {
	    "",
	    ",\"price_usd\":\"0.002\",\"price_micros\":2000",
	    ",\"price_usd\":\"0\"",
	    ",\"price_usd\":\"1000.000001\"",
	    ",\"price_usd\":\"-1\"",
	    ",\"price_usd\":0.002",
	    ",\"price_micros\":1.5",
	    ",\"price_micros\":0",
	    ",\"price_micros\":\"2000\"",
	    ",\"price_micros\":2000,\"seller\":\"x\"",
	    ",\"price_micros\":2000,\"provider\":\"openai\"",
	};
	static const char *const bodies[] = {
	    "",
	    "not json",
	    "[\"demo\"]",
	    "{\"provider\":\"demo\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"Demo\",\"price_usd\":\"0.002\",\"sealed_key\":{}}",
	    "{\"provider\":\"demo\",\"price_usd\":\"0.002\",\"sealed_key\":\"abc\"}",
	    "{\"provider\":\"demo\",\"price_usd\":\"0.002\",\"sealed_key\":{\"kid\":\"vk\","
	    "\"enc\":\"AAAA\",\"ct\":\"AAAA\"}}",
	};
	struct api_resp r;
	char auth[4096], *body;
	int before = vault.puts;

	(void)state;
	bearer(auth, sizeof(auth), token);
	for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		body = key_body("seller-abc", "demo", "sk-abcdefghij", extras[i]);
		api("POST", "/api/keys", auth, "application/json", body, &r);
		free(body);
		if (r.status != 400)
			fail_msg("extra %zu: %u %s", i, r.status, r.body);
		expect_problem(&r, 400, "invalid-request");
		resp_free(&r);
	}
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		api("POST", "/api/keys", auth, "application/json", bodies[i], &r);
		if (r.status != 400)
			fail_msg("body %zu: %u %s", i, r.status, r.body);
		expect_problem(&r, 400, "invalid-request");
		resp_free(&r);
	}
	body = key_body("seller-abc", "demo", "sk-abcdefghij", ",\"price_micros\":2000");
	api("POST", "/api/keys", auth, "text/plain", body, &r);
	free(body);
	expect_problem(&r, 415, "unsupported-media-type");
	resp_free(&r);
	assert_int_equal(vault.puts, before);
}

/* A key in clear is refused before it goes anywhere, whatever else the body holds. */
static void
test_plaintext_refused(void **state)
{
	static const char *const bodies[] = {
	    "{\"provider\":\"demo\",\"key\":\"" CANARY "\",\"price_usd\":\"0.002\"}",
	    "{\"provider\":\"demo\",\"key\":\"short\",\"price_usd\":\"0.002\"}",
	    "{\"key\":\"" CANARY "\"}",
	};
	struct api_resp r;
	char auth[4096], *body;
	int before = vault.puts;

	(void)state;
	bearer(auth, sizeof(auth), token);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		api("POST", "/api/keys", auth, "application/json", bodies[i], &r);
		expect_problem(&r, 400, "plaintext-key-refused");
		assert_non_null(strstr(jstr(r.json, "detail"), "/api/vault/public-key"));
		assert_null(strstr(r.body, CANARY));
		resp_free(&r);
	}
	/* Beside a sealed key too. */
	body = key_body("seller-abc", "demo", CANARY2, ",\"price_micros\":5,\"key\":\"" CANARY "\"");
	api("POST", "/api/keys", auth, "application/json", body, &r);
	free(body);
	expect_problem(&r, 400, "plaintext-key-refused");
	resp_free(&r);
	assert_int_equal(vault.puts, before);
}

/* The vault's public key, for anyone: no token needed. */
static void
test_public_key(void **state)
{
	struct api_resp r;
	uint8_t pk[64];
	size_t n;
	const char *s;

	(void)state;
	api("GET", "/api/vault/public-key", NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(r.json, "kid"), VAULT_KID);
	assert_string_equal(jstr(r.json, "kem"), "DHKEM(X25519, HKDF-SHA256)");
	assert_string_equal(jstr(r.json, "aead"), "AES-256-GCM");
	assert_int_equal(cJSON_GetObjectItem(r.json, "kem_id")->valueint, 0x20);
	assert_int_equal(cJSON_GetObjectItem(r.json, "kdf_id")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(r.json, "aead_id")->valueint, 2);
	assert_non_null(s = jstr(r.json, "public_key"));
	assert_int_equal(b64url_decode(s, strlen(s), pk, sizeof(pk), &n, 0), 0);
	assert_int_equal(n, HPKE_NPK);
	assert_memory_equal(pk, vault.pk, HPKE_NPK);
	resp_free(&r);
	api("POST", "/api/vault/public-key", NULL, "application/json", "{}", &r);
	expect_problem(&r, 405, "method-not-allowed");
	resp_free(&r);
}

static void
test_rotate(void **state)
{
	struct api_resp r, l;
	char auth[4096], path[128], id[64], *sk, *body;
	int before = vault.puts;

	(void)state;
	bearer(auth, sizeof(auth), token);
	api("GET", "/api/keys", auth, NULL, NULL, &l);
	assert_int_equal(l.status, 200);
	snprintf(id, sizeof(id), "%s",
	    jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(l.json, "keys"), 0), "id"));
	resp_free(&l);
	snprintf(path, sizeof(path), "/api/keys/%s/rotate", id);
	sk = sealed_json("seller-abc", "demo", CANARY2);
	assert_true(asprintf(&body, "{\"sealed_key\":%s}", sk) > 0);
	api("POST", path, auth, "application/json", body, &r);
	if (r.status != 200)
		fail_msg("rotate: %u %s", r.status, r.body);
	assert_string_equal(jstr(r.json, "id"), id);
	assert_string_equal(jstr(r.json, "provider"), "demo");
	assert_non_null(jstr(r.json, "rotated"));
	resp_free(&r);
	assert_int_equal(vault.puts, before + 1);
	assert_int_equal(vault.rotate, 1);
	assert_string_equal(vault.key_id, id);
	assert_string_equal(vault.secret, CANARY2);
	/* Another seller's key, an unknown one: 404, and nothing reaches the vault. */
	bearer(auth, sizeof(auth), token_other);
	api("POST", path, auth, "application/json", body, &r);
	expect_problem(&r, 404, "not-found");
	resp_free(&r);
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys/k_nosuchkey/rotate", auth, "application/json", body, &r);
	expect_problem(&r, 404, "not-found");
	resp_free(&r);
	/* A key in clear, a GET, no token. */
	api("POST", path, auth, "application/json", "{\"key\":\"" CANARY "\"}", &r);
	expect_problem(&r, 400, "plaintext-key-refused");
	resp_free(&r);
	api("GET", path, auth, NULL, NULL, &r);
	expect_problem(&r, 405, "method-not-allowed");
	resp_free(&r);
	api("POST", path, NULL, "application/json", body, &r);
	expect_problem(&r, 401, "unauthorized");
	resp_free(&r);
	assert_int_equal(vault.puts, before + 1);
	free(body);
	free(sk);
}

/* The vault knows the catalogue: its 400 reaches the seller as it is. */
static void
test_unknown_provider(void **state)
{
	struct api_resp r;
	char auth[4096];

	(void)state;
	char *body = key_body("seller-abc", "nosuch", "sk-abcdefghij", ",\"price_micros\":2000");

	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json", body, &r);
	free(body);
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
	char *body = key_body("seller-abc", "demo", "sk-abcdefghij", ",\"price_micros\":2000");

	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json", body, &r);
	free(body);
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
	char *body = key_body("seller-abc", "demo", "sk-abcdefghij", ",\"price_micros\":2000");

	ipc_stop(vault.ipc);
	vault.ipc = NULL;
	bearer(auth, sizeof(auth), token);
	api("POST", "/api/keys", auth, "application/json", body, &r);
	free(body);
	expect_problem(&r, 503, "service-unavailable");
	assert_non_null(strstr(jstr(r.json, "detail"), "vault"));
	resp_free(&r);
	api("GET", "/api/vault/public-key", NULL, NULL, NULL, &r);
	expect_problem(&r, 503, "service-unavailable");
	resp_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_token),
	    cmocka_unit_test(test_public_key),
	    cmocka_unit_test(test_create_and_list),
	    cmocka_unit_test(test_bad_bodies),
	    cmocka_unit_test(test_plaintext_refused),
	    cmocka_unit_test(test_rotate),
	    cmocka_unit_test(test_unknown_provider),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_key_stored_nowhere),
	    cmocka_unit_test(test_router_down),
	    cmocka_unit_test(test_vault_down),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
