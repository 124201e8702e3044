/*
 * test_seal.c — vault/seal.c: AES-256-GCM round trip, a ciphertext bound to
 * its key id and master version, any changed byte refused, fresh nonces,
 * and the master key file's checks (length, hex, permissions).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/vault.h"

static const uint8_t master_a[SEAL_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static const char secret[] = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz";
#define SLEN (sizeof(secret) - 1)

struct sealed {
	uint8_t nonce[SEAL_NONCE_LEN];
	uint8_t ct[SLEN + SEAL_TAG_LEN];
};

static void
init_seal(struct seal *s, const uint8_t *key, uint32_t version)
{
	char err[256];

	assert_int_equal(seal_init(s, key, version, err, sizeof(err)), 0);
}

static void
seal_one(struct seal *s, const char *key_id, struct sealed *out)
{
	assert_int_equal(seal_seal(s, key_id, (const uint8_t *)secret, SLEN, out->nonce, out->ct), 0);
}

static void
test_round_trip(void **state)
{
	struct seal s;
	struct sealed x;
	uint8_t pt[SLEN];

	(void)state;
	init_seal(&s, master_a, 1);
	seal_one(&s, "key_1", &x);
	/* The ciphertext is not the plaintext. */
	assert_null(memmem(x.ct, sizeof(x.ct), secret, 8));
	assert_int_equal(seal_open(&s, "key_1", 1, x.nonce, x.ct, sizeof(x.ct), pt), 0);
	assert_memory_equal(pt, secret, SLEN);
	seal_free(&s);
}

static void
test_bound_to_key_id_and_version(void **state)
{
	struct seal s;
	struct sealed x;
	uint8_t pt[SLEN];

	(void)state;
	init_seal(&s, master_a, 1);
	seal_one(&s, "key_1", &x);
	assert_int_equal(seal_open(&s, "key_2", 1, x.nonce, x.ct, sizeof(x.ct), pt), -1);
	assert_int_equal(seal_open(&s, "key_1x", 1, x.nonce, x.ct, sizeof(x.ct), pt), -1);
	assert_int_equal(seal_open(&s, "key_1", 2, x.nonce, x.ct, sizeof(x.ct), pt), -1);
	/* A failed open leaves no plaintext behind. */
	for (size_t i = 0; i < SLEN; i++)
		assert_int_equal(pt[i], 0);
	seal_free(&s);
}

static void
test_other_master_key(void **state)
{
	struct seal a, b;
	struct sealed x;
	uint8_t other[SEAL_KEY_LEN], pt[SLEN];

	(void)state;
	memcpy(other, master_a, sizeof(other));
	other[31] ^= 1;
	init_seal(&a, master_a, 1);
	init_seal(&b, other, 1);
	seal_one(&a, "key_1", &x);
	assert_int_equal(seal_open(&b, "key_1", 1, x.nonce, x.ct, sizeof(x.ct), pt), -1);
	seal_free(&a);
	seal_free(&b);
}

/* Flipping any one bit of nonce, ciphertext or tag must be detected. */
static void
test_tampered_byte(void **state)
{
	struct seal s;
	struct sealed x, t;
	uint8_t pt[SLEN];

	(void)state;
	init_seal(&s, master_a, 1);
	seal_one(&s, "key_1", &x);
	for (size_t i = 0; i < sizeof(x.ct); i++) {
		t = x;
		t.ct[i] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(seal_open(&s, "key_1", 1, t.nonce, t.ct, sizeof(t.ct), pt), -1);
	}
	for (size_t i = 0; i < SEAL_NONCE_LEN; i++) {
		t = x;
		t.nonce[i] ^= 0x80;
		assert_int_equal(seal_open(&s, "key_1", 1, t.nonce, t.ct, sizeof(t.ct), pt), -1);
	}
	/* Truncated: the tag is incomplete or the last byte is gone. */
	assert_int_equal(seal_open(&s, "key_1", 1, x.nonce, x.ct, SEAL_TAG_LEN - 1, pt), -1);
	assert_int_equal(seal_open(&s, "key_1", 1, x.nonce, x.ct, sizeof(x.ct) - 1, pt), -1);
	seal_free(&s);
}

static int
cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, SEAL_NONCE_LEN);
}

static void
test_nonce_unique(void **state)
{
	enum { N = 2000 };
	static uint8_t nonces[N][SEAL_NONCE_LEN];
	struct seal s;
	struct sealed x, y;

	(void)state;
	init_seal(&s, master_a, 1);
	for (int i = 0; i < N; i++) {
		seal_one(&s, "key_1", &x);
		memcpy(nonces[i], x.nonce, SEAL_NONCE_LEN);
	}
	qsort(nonces, N, SEAL_NONCE_LEN, cmp_nonce);
	for (int i = 1; i < N; i++)
		assert_int_not_equal(memcmp(nonces[i - 1], nonces[i], SEAL_NONCE_LEN), 0);
	/* The same plaintext twice: two different ciphertexts. */
	seal_one(&s, "key_1", &x);
	seal_one(&s, "key_1", &y);
	assert_memory_not_equal(x.ct, y.ct, sizeof(x.ct));
	seal_free(&s);
}

/* The master key file. */

static char tmpdir[64];

static int
group_setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/cn2-test-seal-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *
write_key(const char *name, const char *text, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

#define HEX64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const struct {
	const char *text;
	mode_t mode;
	int ok;
	const char *why; /* a word the reason must contain */
} master_cases[] = {
    {HEX64, 0600, 1, NULL},
    {HEX64 "\n", 0600, 1, NULL},
    {"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", 0400, 1, NULL},
    {HEX64, 0640, 0, "group or others"},
    {HEX64, 0604, 0, "group or others"},
    {"", 0600, 0, "shorter"},
    {"00010203", 0600, 0, "exactly 64"},
    {HEX64 "0", 0600, 0, "longer"},
    {"0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0600, 0, "hex"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e 1", 0600, 0, "hex"},
};

static void
test_master_file(void **state)
{
	uint8_t key[SEAL_KEY_LEN];
	char err[512], missing[128];

	(void)state;
	for (size_t i = 0; i < sizeof(master_cases) / sizeof(master_cases[0]); i++) {
		const char *path = write_key("master.key", master_cases[i].text, master_cases[i].mode);
		int rc;

		err[0] = '\0';
		memset(key, 0xee, sizeof(key));
		rc = seal_load_master(path, key, err, sizeof(err));
		if (master_cases[i].ok) {
			assert_int_equal(rc, 0);
			assert_memory_equal(key, master_a, SEAL_KEY_LEN);
			continue;
		}
		assert_int_equal(rc, -1);
		assert_non_null(strstr(err, master_cases[i].why));
		/* The reason never quotes the file's content. */
		assert_null(strstr(err, "0102030405"));
	}
	snprintf(missing, sizeof(missing), "%s/missing.key", tmpdir);
	assert_int_equal(seal_load_master(missing, key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_bound_to_key_id_and_version),
	    cmocka_unit_test(test_other_master_key),
	    cmocka_unit_test(test_tampered_byte),
	    cmocka_unit_test(test_nonce_unique),
	    cmocka_unit_test(test_master_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
