/*
 * test_vault_store.c — vault/store.c on a real vault.db: a sealed key stored
 * and read back (and opened), a key id already taken refused, a rotation
 * (new secret, generation + 1) only for the key's own seller and provider,
 * a grant id recorded once only, used grants pruned and loaded by expiry,
 * master versions retired only when no row uses them, and intake key pairs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "vault/vault.h"

static char tmpdir[64];
static sqlite3 *db;
static struct seal seal;

static const uint8_t master[SEAL_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static int
group_setup(void **state)
{
	char path[128], err[256];

	(void)state;
	strcpy(tmpdir, "/tmp/cn2-test-vstore-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/vault.db", tmpdir);
	if ((db = store_open(path, err, sizeof(err))) == NULL)
		return -1;
	return seal_init(&seal, master, 1, err, sizeof(err));
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	seal_free(&seal);
	db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Run one dbq apply function in its own transaction, as the group commit would. */
static int
apply(int (*fn)(sqlite3 *, void *), void *arg)
{
	int rc;

	assert_int_equal(db_begin(db), SQLITE_OK);
	db_exec(db, "SAVEPOINT w");
	rc = fn(db, arg);
	if (rc != 0)
		db_exec(db, "ROLLBACK TO w");
	db_exec(db, "RELEASE w");
	assert_int_equal(db_commit(db), SQLITE_OK);
	return rc;
}

static int
put_key(const char *key_id, const char *seller, const char *secret, int rotate,
    struct store_key_put *kp)
{
	size_t n = strlen(secret);
	int rc;

	memset(kp, 0, sizeof(*kp));
	snprintf(kp->key_id, sizeof(kp->key_id), "%s", key_id);
	snprintf(kp->seller_id, sizeof(kp->seller_id), "%s", seller);
	snprintf(kp->provider, sizeof(kp->provider), "demo");
	kp->ct = malloc(n + SEAL_TAG_LEN);
	kp->ctlen = n + SEAL_TAG_LEN;
	kp->master_version = 1;
	kp->now = 1800000000;
	kp->rotate = rotate;
	assert_int_equal(seal_seal(&seal, key_id, (const uint8_t *)secret, n, kp->nonce, kp->ct), 0);
	rc = apply(store_key_put, kp);
	free(kp->ct);
	kp->ct = NULL;
	return rc;
}

static char *
open_key(const char *key_id)
{
	struct store_key k;
	char *pt;

	if (store_key_get(db, key_id, &k) != 1)
		return NULL;
	pt = calloc(1, k.ctlen);
	assert_int_equal(seal_open(&seal, key_id, k.master_version, k.nonce, k.ct, k.ctlen,
			     (uint8_t *)pt), 0);
	assert_string_equal(k.provider, "demo");
	free(k.ct);
	return pt;
}

static void
test_keys(void **state)
{
	struct store_key_put kp;
	struct store_key k;
	char *pt;

	(void)state;
	assert_int_equal(store_key_get(db, "k_none", &k), 0);
	assert_int_equal(put_key("k_1", "seller_a", "sk-first-key-1", 0, &kp), 0);
	assert_int_equal(kp.generation, 1);
	assert_non_null(pt = open_key("k_1"));
	assert_string_equal(pt, "sk-first-key-1");
	free(pt);
	/* A taken id is refused, whoever asks; the key stays as it was. */
	assert_int_equal(put_key("k_1", "seller_b", "sk-stolen-key-1", 0, &kp), -1);
	assert_true(kp.taken);
	assert_int_equal(put_key("k_1", "seller_a", "sk-again-key-1", 0, &kp), -1);
	assert_true(kp.taken);
	/* Another seller cannot rotate it; nor can a rotation create a key. */
	assert_int_equal(put_key("k_1", "seller_b", "sk-stolen-key-1", 1, &kp), -1);
	assert_true(kp.missing);
	assert_int_equal(put_key("k_9", "seller_a", "sk-nothing-here", 1, &kp), -1);
	assert_true(kp.missing);
	assert_int_equal(store_key_get(db, "k_9", &k), 0);
	assert_non_null(pt = open_key("k_1"));
	assert_string_equal(pt, "sk-first-key-1");
	free(pt);
	/* Its seller rotates it: the new secret, the next generation. */
	assert_int_equal(put_key("k_1", "seller_a", "sk-second-key-1", 1, &kp), 0);
	assert_false(kp.missing);
	assert_int_equal(kp.generation, 2);
	assert_non_null(pt = open_key("k_1"));
	assert_string_equal(pt, "sk-second-key-1");
	free(pt);
	assert_int_equal(store_key_get(db, "k_1", &k), 1);
	assert_int_equal(k.generation, 2);
	free(k.ct);
	/* A row moved to another key id does not open there. */
	assert_int_equal(db_exec(db, "INSERT INTO keys SELECT 'k_copy', seller_id, provider, nonce,"
				     " ciphertext, master_version, created, updated, generation"
				     " FROM keys WHERE key_id = 'k_1'"), SQLITE_OK);
	assert_int_equal(store_key_get(db, "k_copy", &k), 1);
	pt = calloc(1, k.ctlen);
	assert_int_equal(seal_open(&seal, "k_copy", k.master_version, k.nonce, k.ct, k.ctlen,
			     (uint8_t *)pt), -1);
	free(pt);
	free(k.ct);
}

static void
test_grants(void **state)
{
	struct store_grant_use g = {"g_1", 1000, 0};
	struct store_grant_use again = {"g_1", 1000, 0};
	struct store_grant_use later = {"g_2", 2000, 0};
	struct grant_set s;
	int64_t before = 1500;

	(void)state;
	assert_int_equal(apply(store_grant_use, &g), 0);
	assert_false(g.replayed);
	assert_int_equal(apply(store_grant_use, &again), -1);
	assert_true(again.replayed);
	assert_int_equal(apply(store_grant_use, &later), 0);
	assert_int_equal(grant_set_init(&s), 0);
	assert_int_equal(store_grants_load(db, 0, &s), 0);
	assert_int_equal(s.n, 2);
	grant_set_free(&s);
	/* Load only what has not expired, then prune the rest from the table. */
	assert_int_equal(grant_set_init(&s), 0);
	assert_int_equal(store_grants_load(db, 1500, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(grant_set_has(&s, "g_2"));
	grant_set_free(&s);
	assert_int_equal(apply(store_grants_prune, &before), 0);
	assert_int_equal(grant_set_init(&s), 0);
	assert_int_equal(store_grants_load(db, 0, &s), 0);
	assert_int_equal(s.n, 1);
	assert_false(grant_set_has(&s, "g_1"));
	grant_set_free(&s);
	/* Pruned, g_1 could be recorded again; its expiry keeps it refused anyway. */
	g.replayed = 0;
	assert_int_equal(apply(store_grant_use, &g), 0);
}

/* Versions: listed, counted, retired only when nothing uses them. */
static void
test_master_versions(void **state)
{
	struct store_master m = {1, {0}, 0}, two = {2, {0}, 0}, got[4];
	uint32_t used[4];

	(void)state;
	memset(m.check, 0x11, sizeof(m.check));
	memset(two.check, 0x22, sizeof(two.check));
	assert_int_equal(store_master_add(db, &m), 0);
	assert_int_equal(store_master_add(db, &two), 0);
	assert_int_equal(store_master_add(db, &two), -1);
	assert_int_equal(store_master_list(db, got, 4), 2);
	assert_int_equal(got[1].version, 2);
	assert_memory_equal(got[1].check, two.check, sizeof(two.check));
	assert_int_equal(store_master_in_use(db, used, 4), 1);
	assert_int_equal(used[0], 1);
	assert_true(store_master_rows(db, 1) >= 2);
	assert_int_equal(store_master_rows(db, 2), 0);
	/* Version 1 holds keys: not retired. Version 2 holds none. */
	assert_int_equal(store_master_retire(db, 1), 0);
	assert_int_equal(store_master_retire(db, 2), 1);
	assert_int_equal(store_master_retire(db, 2), 0);
	assert_int_equal(store_master_list(db, got, 4), 2);
	assert_false(got[0].retired);
	assert_true(got[1].retired);
}

static void
test_intake_keys(void **state)
{
	struct store_kem k, got[KEM_KEYS_MAX];

	(void)state;
	memset(&k, 0, sizeof(k));
	snprintf(k.kid, sizeof(k.kid), "vk_test");
	memset(k.pk, 7, sizeof(k.pk));
	memset(k.sealed, 9, sizeof(k.sealed));
	k.master_version = 3;
	k.created = 42;
	assert_int_equal(store_kem_list(db, got, KEM_KEYS_MAX), 0);
	assert_int_equal(store_kem_add(db, &k), 0);
	assert_int_equal(store_kem_add(db, &k), -1);
	assert_int_equal(store_kem_list(db, got, KEM_KEYS_MAX), 1);
	assert_string_equal(got[0].kid, "vk_test");
	assert_memory_equal(got[0].pk, k.pk, sizeof(k.pk));
	assert_int_equal(got[0].master_version, 3);
	assert_int_equal(store_master_rows(db, 3), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_grants),
	    cmocka_unit_test(test_master_versions),
	    cmocka_unit_test(test_intake_keys),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
