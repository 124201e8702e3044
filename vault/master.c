/*
 * master.c — the master keys the vault seals everything at rest under.
 *
 * Where a key comes from: master_key_file (and previous_master_key_file
 * during a rotation). An absolute path is read as it is; a relative one is
 * a systemd credential, read from $CREDENTIALS_DIRECTORY (LoadCredential=
 * or LoadCredentialEncrypted= in the unit). The default, "master.key", is
 * the credential of that name; the local setup (`cn2 init`) names a file
 * under ./var instead.
 *
 * Versions: the current key has master_key_version, which the associated
 * data of every ciphertext binds. vault.db records, per version, a check
 * value (a constant sealed under that key) the first time the version is
 * used. At start:
 *
 *   - the current key must open its version's check value: a wrong file is
 *     refused with that reason instead of failing every call later;
 *   - no version newer than the current one may be recorded (a rollback to
 *     an old key would seal new keys under a retired version);
 *   - the previous key, when configured, is recognised by the check value it
 *     opens, so its version never has to be written down;
 *   - every sealed row must be under a version a loaded key opens.
 *
 * `cn2-vault rewrap` (rewrap.c) moves rows to the current version and
 * retires a version once no row uses it; the previous key is then no longer
 * needed, and a configured one for a retired version is ignored.
 *
 * Security stance: both keys live only inside their GCM contexts, in locked
 * memory (secmem.c, and the AES key schedule mbedTLS allocates is locked in
 * place); the bytes read from a file are wiped at once; messages name files
 * and versions, never key material.
 */
#include "vault/vault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/platform_util.h>

#include "common/log.h"

#define MASTER_VERSIONS_MAX 64
#define CHECK_KEY_ID "#master-check" /* '#' is never in a key id */

/* A relative path is a systemd credential. 0, or -1 with err. */
static int
master_path(const char *name, const char *what, char *out, size_t cap, char *err,
    size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (name[0] == '/') {
		snprintf(out, cap, "%s", name);
		return 0;
	}
	if (dir == NULL || dir[0] == '\0') {
		snprintf(err, errlen,
		    "%s \"%s\" names a systemd credential, but $CREDENTIALS_DIRECTORY is not set: "
		    "run under systemd with LoadCredential=%s:<file>, or give an absolute path",
		    what, name, name);
		return -1;
	}
	if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) {
		snprintf(err, errlen, "%s: the credential path is too long", what);
		return -1;
	}
	return 0;
}

/* A seal in locked memory under the key in file name. NULL with err. */
static struct seal *
master_load(const char *name, const char *what, uint32_t version, char *err, size_t errlen)
{
	uint8_t key[SEAL_KEY_LEN];
	char path[512];
	struct seal *s;
	int rc;

	if (master_path(name, what, path, sizeof(path), err, errlen) != 0 ||
	    seal_load_master(path, key, err, errlen) != 0)
		return NULL;
	if ((s = secmem_alloc(sizeof(*s))) == NULL) {
		mbedtls_platform_zeroize(key, sizeof(key));
		snprintf(err, errlen, "cannot lock memory for the master key (RLIMIT_MEMLOCK)");
		return NULL;
	}
	rc = seal_init(s, key, version, err, errlen);
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc == 0 &&
	    secmem_lock_range(s->gcm.cipher_ctx.cipher_ctx, sizeof(mbedtls_aes_context)) != 0) {
		snprintf(err, errlen, "cannot lock the master key schedule in memory (RLIMIT_MEMLOCK)");
		seal_free(s);
		rc = -1;
	}
	if (rc != 0) {
		secmem_free(s);
		return NULL;
	}
	return s;
}

static void
master_drop(struct seal *s)
{
	if (s == NULL)
		return;
	seal_free(s);
	secmem_free(s);
}

static void
master_check_make(struct seal *s, struct store_master *m)
{
	static const uint8_t zero[32];

	m->version = s->version;
	m->retired = 0;
	if (seal_seal(s, CHECK_KEY_ID, zero, sizeof(zero), m->check, m->check + SEAL_NONCE_LEN) !=
	    0)
		memset(m->check, 0, sizeof(m->check));
}

/* Does s, taken as version, open m's check value? */
static int
master_check_opens(struct seal *s, const struct store_master *m)
{
	uint8_t pt[32];
	int ok = seal_open(s, CHECK_KEY_ID, m->version, m->check, m->check + SEAL_NONCE_LEN,
		     MASTER_CHECK_LEN - SEAL_NONCE_LEN, pt) == 0;

	mbedtls_platform_zeroize(pt, sizeof(pt));
	return ok;
}

/* The current key against the recorded versions; records a new version. */
static int
master_check_current(struct keyring *k, sqlite3 *db, const struct store_master *ms, size_t n,
    const char *file, char *err, size_t errlen)
{
	struct store_master m;
	uint32_t v = k->cur->version;

	for (size_t i = 0; i < n; i++)
		if (ms[i].version > v) {
			snprintf(err, errlen,
			    "master_key_version is %u, but vault.db already uses version %u: "
			    "configure the newest master key", (unsigned)v, (unsigned)ms[i].version);
			return -1;
		}
	for (size_t i = 0; i < n; i++) {
		if (ms[i].version != v)
			continue;
		if (ms[i].retired) {
			snprintf(err, errlen, "master key version %u was retired: configure a new "
			    "version", (unsigned)v);
			return -1;
		}
		if (!master_check_opens(k->cur, &ms[i])) {
			snprintf(err, errlen, "%s is not master key version %u: it does not open "
			    "that version's check value in vault.db", file, (unsigned)v);
			return -1;
		}
		return 0;
	}
	master_check_make(k->cur, &m);
	if (store_master_add(db, &m) != 0) {
		snprintf(err, errlen, "cannot record master key version %u in vault.db", (unsigned)v);
		return -1;
	}
	log_info("master key version %u recorded", (unsigned)v);
	return 0;
}

/* Which recorded, unretired version does the previous key open? */
static int
master_check_previous(struct keyring *k, const struct vault_cfg *cfg,
    const struct store_master *ms, size_t n, char *err, size_t errlen)
{
	const char *file = cfg->previous_master_key_file;

	for (size_t i = 0; i < n; i++) {
		struct seal *s;

		if (ms[i].version == k->cur->version)
			continue;
		if ((s = master_load(file, "previous_master_key_file", ms[i].version, err,
			 errlen)) == NULL)
			return -1;
		if (master_check_opens(s, &ms[i])) {
			if (ms[i].retired) {
				log_notice("%s holds master key version %u, which is retired: it is "
					   "not needed any more", file, (unsigned)ms[i].version);
				master_drop(s);
			} else
				k->prev = s;
			return 0;
		}
		master_drop(s);
	}
	snprintf(err, errlen, "%s opens none of the master key versions vault.db uses other than "
	    "the current one", file);
	return -1;
}

/* Every sealed row must be under a version whose key is loaded. */
static int
master_check_rows(struct keyring *k, sqlite3 *db, char *err, size_t errlen)
{
	uint32_t used[MASTER_VERSIONS_MAX];
	int n = store_master_in_use(db, used, MASTER_VERSIONS_MAX);

	if (n < 0) {
		snprintf(err, errlen, "cannot read which master versions vault.db uses");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (keyring_for(k, used[i]) != NULL)
			continue;
		snprintf(err, errlen,
		    "%lld sealed rows use master key version %u, and no key for it is configured: "
		    "set previous_master_key_file to it (then run `cn2-vault rewrap`)",
		    store_master_rows(db, used[i]), (unsigned)used[i]);
		return -1;
	}
	return 0;
}

int
keyring_open(struct keyring *k, sqlite3 *db, const struct vault_cfg *cfg, char *err,
    size_t errlen)
{
	struct store_master ms[MASTER_VERSIONS_MAX];
	int n;

	memset(k, 0, sizeof(*k));
	if ((k->cur = master_load(cfg->master_key_file, "master_key_file",
		 (uint32_t)cfg->master_key_version, err, errlen)) == NULL)
		return -1;
	if ((n = store_master_list(db, ms, MASTER_VERSIONS_MAX)) < 0) {
		snprintf(err, errlen, "cannot read the master versions of vault.db");
		keyring_close(k);
		return -1;
	}
	if (master_check_current(k, db, ms, (size_t)n, cfg->master_key_file, err, errlen) != 0 ||
	    (cfg->previous_master_key_file[0] != '\0' &&
		master_check_previous(k, cfg, ms, (size_t)n, err, errlen) != 0) ||
	    master_check_rows(k, db, err, errlen) != 0) {
		keyring_close(k);
		return -1;
	}
	return 0;
}

struct seal *
keyring_for(const struct keyring *k, uint32_t version)
{
	if (k->cur != NULL && k->cur->version == version)
		return k->cur;
	if (k->prev != NULL && k->prev->version == version)
		return k->prev;
	return NULL;
}

void
keyring_close(struct keyring *k)
{
	master_drop(k->cur);
	master_drop(k->prev);
	k->cur = k->prev = NULL;
}
