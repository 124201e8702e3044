/*
 * test_vault_grant.c — vault/grant.c: a FORWARD's grant is accepted only
 * with the right MAC, before its expiry, for a catalogue route, and for a
 * target on exactly the granted path; and the used-grant set remembers ids
 * until they expire.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/capab.h"
#include "vault/vault.h"

static const char catalogue[] =
    "{\"version\": 1, \"providers\": {"
    " \"demo\": {\"upstream\": \"http://127.0.0.1:8090\","
    "  \"auth\": {\"header\": \"Authorization\", \"prefix\": \"Bearer \"},"
    "  \"routes\": [\"GET /v1/models\", \"GET /v1/models/*\", \"POST /v1/chat/completions\"]}}}";

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define NOW 1800000000

static struct providers cat;

static int
group_setup(void **state)
{
	char err[256];

	(void)state;
	return providers_parse(catalogue, strlen(catalogue), &cat, err, sizeof(err));
}

static int
group_teardown(void **state)
{
	(void)state;
	providers_free(&cat);
	return 0;
}

/* One FORWARD: its grant's fields, and how its MAC is made. */
struct fwd_case {
	const char *name;
	const char *method, *path, *target, *provider;
	int64_t expires;
	int flip_mac; /* change the MAC after computing it */
	int other_key;
	const char *why; /* NULL: accepted */
};

static const struct fwd_case cases[] = {
    {"valid", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo", NOW + 60, 0, 0,
	NULL},
    {"query kept", "GET", "/v1/models", "/v1/models?limit=1", "demo", NOW + 60, 0, 0, NULL},
    {"wildcard route", "GET", "/v1/models/demo-1", "/v1/models/demo-1", "demo", NOW + 1, 0, 0,
	NULL},
    {"bad MAC", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo", NOW + 60, 1, 0,
	"MAC"},
    {"other secret", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo", NOW + 60,
	0, 1, "MAC"},
    {"expired now", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo", NOW, 0, 0,
	"expired"},
    {"expired", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo", NOW - 1, 0, 0,
	"expired"},
    {"an hour ahead", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo",
	NOW + 3600, 0, 0, NULL},
    {"a day ahead", "POST", "/v1/chat/completions", "/v1/chat/completions", "demo",
	NOW + 86400, 0, 0, "too far"},
    {"unknown provider", "POST", "/v1/chat/completions", "/v1/chat/completions", "nope",
	NOW + 60, 0, 0, "provider"},
    {"route not allowed", "POST", "/v1/embeddings", "/v1/embeddings", "demo", NOW + 60, 0, 0,
	"route"},
    {"method not allowed", "DELETE", "/v1/models", "/v1/models", "demo", NOW + 60, 0, 0,
	"route"},
    {"other path", "POST", "/v1/chat/completions", "/v1/models", "demo", NOW + 60, 0, 0,
	"path"},
    {"longer path", "POST", "/v1/chat/completions", "/v1/chat/completions/x", "demo", NOW + 60,
	0, 0, "path"},
    {"prefix path", "POST", "/v1/chat/completions", "/v1/chat/complet", "demo", NOW + 60, 0, 0,
	"path"},
};

static void
make_forward(const struct fwd_case *c, struct ipc_forward *f, uint8_t mac[IPC_MAC_LEN])
{
	const uint8_t *key = c->other_key ? (const uint8_t *)"another secret of thirty-two bytes" : secret;
	size_t keylen = c->other_key ? 34 : sizeof(secret) - 1;

	memset(f, 0, sizeof(*f));
	snprintf(f->grant.grant_id, sizeof(f->grant.grant_id), "g_1");
	snprintf(f->grant.key_id, sizeof(f->grant.key_id), "key_1");
	snprintf(f->grant.payment_id, sizeof(f->grant.payment_id), "pay_1");
	snprintf(f->grant.route.provider, sizeof(f->grant.route.provider), "%s", c->provider);
	snprintf(f->grant.route.method, sizeof(f->grant.route.method), "%s", c->method);
	snprintf(f->grant.route.path, sizeof(f->grant.route.path), "%s", c->path);
	f->grant.expires = c->expires;
	snprintf(f->target, sizeof(f->target), "%s", c->target);
	assert_int_equal(capab_grant_mac(key, keylen, &f->grant, mac), 0);
	if (c->flip_mac)
		mac[5] ^= 0x10;
	f->grant.mac.p = mac;
	f->grant.mac.len = IPC_MAC_LEN;
}

static void
test_verify(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ipc_forward f;
		uint8_t mac[IPC_MAC_LEN];
		const struct provider *pv;
		const char *why = NULL;
		int rc;

		make_forward(&cases[i], &f, mac);
		rc = grant_verify(secret, sizeof(secret) - 1, &cat, &f, NOW, &pv, &why);
		if (cases[i].why == NULL) {
			if (rc != 0)
				fail_msg("%s: refused: %s", cases[i].name, why);
			assert_string_equal(pv->name, "demo");
		} else if (rc != -1 || strstr(why, cases[i].why) == NULL)
			fail_msg("%s: got %d (%s)", cases[i].name, rc, why ? why : "");
	}
}

/* A grant changed after it was MACed (a forged field) fails, whichever field. */
static void
test_fields_covered(void **state)
{
	struct ipc_forward f;
	uint8_t mac[IPC_MAC_LEN];
	const struct provider *pv;
	const char *why;

	(void)state;
	for (int field = 0; field < 5; field++) {
		make_forward(&cases[0], &f, mac);
		if (field == 0)
			f.grant.grant_id[0] = 'h';
		else if (field == 1)
			f.grant.key_id[0] = 'K';
		else if (field == 2)
			f.grant.payment_id[0] = 'P';
		else if (field == 3)
			f.grant.expires++;
		else
			f.grant.route.pool = POOL_PREMIUM;
		assert_int_equal(grant_verify(secret, sizeof(secret) - 1, &cat, &f, NOW, &pv, &why),
		    -1);
		assert_non_null(strstr(why, "MAC"));
	}
	/* A MAC of the wrong length. */
	make_forward(&cases[0], &f, mac);
	f.grant.mac.len = IPC_MAC_LEN - 1;
	assert_int_equal(grant_verify(secret, sizeof(secret) - 1, &cat, &f, NOW, &pv, &why), -1);
}

static void
test_used_set(void **state)
{
	struct grant_set s;
	char id[32];

	(void)state;
	assert_int_equal(grant_set_init(&s), 0);
	/* Enough ids to make the table grow several times. */
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "g_%d", i);
		assert_int_equal(grant_set_has(&s, id), 0);
		assert_int_equal(grant_set_add(&s, id, 1000 + i % 10), 0);
		assert_int_equal(grant_set_has(&s, id), 1);
	}
	assert_int_equal(s.n, 5000);
	assert_int_equal(grant_set_has(&s, "g_5000"), 0);
	/* Expiry 1000..1004 go; 1005..1009 stay. */
	assert_int_equal(grant_set_prune(&s, 1005), 2500);
	assert_int_equal(s.n, 2500);
	assert_int_equal(grant_set_has(&s, "g_0"), 0);
	assert_int_equal(grant_set_has(&s, "g_5"), 1);
	assert_int_equal(grant_set_has(&s, "g_4999"), 1);
	assert_int_equal(grant_set_prune(&s, 1005), 0);
	assert_int_equal(grant_set_add(&s, "an id that is far too long to be any grant id at all", 1),
	    -1);
	grant_set_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verify),
	    cmocka_unit_test(test_fields_covered),
	    cmocka_unit_test(test_used_set),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
