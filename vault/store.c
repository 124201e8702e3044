/*
 * store.c — vault.db: its schema, the sealed keys and the used grants.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 * Writes are dbq apply functions, so they commit in the loop's group commit
 * (synchronous=FULL: a key is acknowledged, and a grant counts as used,
 * only once it is on disk).
 *
 * Security stance: the keys table holds only AES-GCM ciphertexts (seal.c),
 * and so does intake_keys (the vault's HPKE private keys); no plaintext key is
 * ever bound to a statement. secure_delete is on, so a rotated or rewrapped
 * ciphertext is overwritten in the file rather than left in a free page.
 * master_versions holds, per master key version, a check value (a constant
 * sealed under that key) so a wrong key file is refused at start instead of
 * failing every open. Errors name the statement, never a bound value.
 *
 * The two statements of every FORWARD (reading the sealed key, marking the
 * grant used) come from db_stmt, prepared once; the rare ones are prepared
 * when used.
 */
#include "vault/vault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

static const char *const migrations[] = {
    /* 1: bookkeeping of the database itself. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('created', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));",
    /* 2: sealed keys, and the grants already used (kept until they expire). */
    "CREATE TABLE keys ("
    " key_id TEXT PRIMARY KEY NOT NULL,"
    " seller_id TEXT NOT NULL,"
    " provider TEXT NOT NULL,"
    " nonce BLOB NOT NULL CHECK (length(nonce) = 12),"
    " ciphertext BLOB NOT NULL CHECK (length(ciphertext) > 16),"
    " master_version INTEGER NOT NULL,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL) STRICT;"
    "CREATE TABLE used_grants ("
    " grant_id TEXT PRIMARY KEY NOT NULL,"
    " expires INTEGER NOT NULL) STRICT;"
    "CREATE INDEX used_grants_expires ON used_grants (expires);",
    /*
     * 3: key rotation (generation), master-key versions with their check
     * values, and the vault's HPKE key pairs for sealed intake.
     */
    "ALTER TABLE keys ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;"
    "CREATE INDEX keys_master_version ON keys (master_version);"
    "CREATE TABLE master_versions ("
    " version INTEGER PRIMARY KEY NOT NULL CHECK (version > 0),"
    " check_value BLOB NOT NULL CHECK (length(check_value) = 60),"
    " created INTEGER NOT NULL,"
    " retired INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1))) STRICT;"
    "CREATE TABLE intake_keys ("
    " kid TEXT PRIMARY KEY NOT NULL,"
    " public BLOB NOT NULL CHECK (length(public) = 32),"
    " nonce BLOB NOT NULL CHECK (length(nonce) = 12),"
    " sealed BLOB NOT NULL CHECK (length(sealed) = 48),"
    " master_version INTEGER NOT NULL,"
    " created INTEGER NOT NULL) STRICT;",
};

sqlite3 *
store_open(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = db_open(path, DB_SYNC_FULL, migrations,
	    sizeof(migrations) / sizeof(migrations[0]), err, errlen);

	if (db != NULL && db_exec(db, "PRAGMA secure_delete = ON") != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot turn secure_delete on", path);
		db_close(db);
		return NULL;
	}
	return db;
}

static int
store_key_row(sqlite3_stmt *st, struct store_key *k)
{
	const void *nonce = sqlite3_column_blob(st, 2), *ct = sqlite3_column_blob(st, 3);
	int nlen = sqlite3_column_bytes(st, 2), ctlen = sqlite3_column_bytes(st, 3);
	const unsigned char *seller = sqlite3_column_text(st, 0);
	const unsigned char *prov = sqlite3_column_text(st, 1);
	sqlite3_int64 version = sqlite3_column_int64(st, 4), gen = sqlite3_column_int64(st, 5);

	if (seller == NULL || prov == NULL || nonce == NULL || ct == NULL ||
	    nlen != SEAL_NONCE_LEN || ctlen <= SEAL_TAG_LEN || version < 0 || version > UINT32_MAX ||
	    gen < 1 ||
	    strlen((const char *)seller) >= sizeof(k->seller_id) ||
	    strlen((const char *)prov) >= sizeof(k->provider))
		return -1;
	if ((k->ct = malloc((size_t)ctlen)) == NULL)
		return -1;
	memcpy(k->ct, ct, (size_t)ctlen);
	k->ctlen = (size_t)ctlen;
	memcpy(k->nonce, nonce, SEAL_NONCE_LEN);
	strcpy(k->seller_id, (const char *)seller);
	strcpy(k->provider, (const char *)prov);
	k->master_version = (uint32_t)version;
	k->generation = gen;
	return 0;
}

int
store_key_get(sqlite3 *db, const char *key_id, struct store_key *k)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT seller_id, provider, nonce, ciphertext, master_version, generation FROM keys "
	    "WHERE key_id = ?1");
	int rc;

	memset(k, 0, sizeof(*k));
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && store_key_row(st, k) == 0)
		rc = 1;
	else if (rc == SQLITE_ROW) {
		log_warnx("key %s: its row is malformed", key_id);
		rc = -1;
	} else if (rc == SQLITE_DONE)
		rc = 0;
	else {
		log_warnx("reading key %s: %s", key_id, sqlite3_errmsg(db));
		rc = -1;
	}
	sqlite3_reset(st);
	return rc;
}

/* The parameters a key write binds: ?1 key id … ?7 the time. */
static void
store_key_bind(sqlite3_stmt *st, const struct store_key_put *kp)
{
	sqlite3_bind_text(st, 1, kp->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kp->seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kp->provider, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, kp->nonce, SEAL_NONCE_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, kp->ct, (int)kp->ctlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, kp->master_version);
	sqlite3_bind_int64(st, 7, kp->now);
}

/*
 * A new key (its id must be free) or, with kp->rotate, a new secret for a
 * key this seller listed for this provider (generation + 1).
 */
int
store_key_put(sqlite3 *db, void *arg)
{
	struct store_key_put *kp = arg;
	sqlite3_stmt *st = db_prepare(db, kp->rotate ?
	    "UPDATE keys SET nonce = ?4, ciphertext = ?5, master_version = ?6, updated = ?7,"
	    " generation = generation + 1 "
	    "WHERE key_id = ?1 AND seller_id = ?2 AND provider = ?3 RETURNING generation" :
	    "INSERT INTO keys (key_id, seller_id, provider, nonce, ciphertext, master_version,"
	    " created, updated, generation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1) "
	    "ON CONFLICT (key_id) DO NOTHING RETURNING generation");
	int rc;

	store_key_bind(st, kp);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		kp->generation = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	} else if (rc == SQLITE_DONE) {
		/* Nothing written: the id is taken (create), or no such key (rotate). */
		kp->taken = !kp->rotate;
		kp->missing = kp->rotate;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("storing key %s: %s", kp->key_id, sqlite3_errstr(rc));
		return -1;
	}
	return kp->taken || kp->missing ? -1 : 0;
}

int
store_grant_use(sqlite3 *db, void *arg)
{
	struct store_grant_use *g = arg;
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT INTO used_grants (grant_id, expires) VALUES (?1, ?2) "
	    "ON CONFLICT (grant_id) DO NOTHING");
	int rc;

	sqlite3_bind_text(st, 1, g->grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, g->expires);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_warnx("recording grant %s as used: %s", g->grant_id, sqlite3_errstr(rc));
		return -1;
	}
	if (sqlite3_changes(db) == 0) {
		g->replayed = 1;
		return -1;
	}
	return 0;
}

int
store_grants_prune(sqlite3 *db, void *arg)
{
	const int64_t *before = arg;
	sqlite3_stmt *st = db_prepare(db, "DELETE FROM used_grants WHERE expires < ?1");
	int rc;

	sqlite3_bind_int64(st, 1, *before);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("pruning used grants: %s", sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

int
store_grants_load(sqlite3 *db, int64_t t, struct grant_set *s)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT grant_id, expires FROM used_grants WHERE expires >= ?1");
	int rc;

	sqlite3_bind_int64(st, 1, t);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(st, 0);

		if (id == NULL || strlen((const char *)id) > IPC_KEY_ID_MAX)
			continue;
		if (grant_set_add(s, (const char *)id, sqlite3_column_int64(st, 1)) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("loading used grants: %s", sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

/*
 * Every row of sql into out[0..max) through row (0 if the row is well
 * formed); returns how many, or -1 (what names the rows in the log).
 */
static int
store_rows(sqlite3 *db, const char *sql, const char *what,
    int (*row)(sqlite3_stmt *st, void *out, size_t i), void *out, size_t max)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	size_t n = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == max || row(st, out, n) != 0) {
			rc = SQLITE_CORRUPT;
			break;
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("reading %s: %s", what, sqlite3_errstr(rc));
		return -1;
	}
	return (int)n;
}

/* Master-key versions. */

static int
store_master_row(sqlite3_stmt *st, void *out, size_t i)
{
	struct store_master *m = (struct store_master *)out + i;
	sqlite3_int64 v = sqlite3_column_int64(st, 0);
	const void *c = sqlite3_column_blob(st, 1);

	if (v < 1 || v > UINT32_MAX || c == NULL || sqlite3_column_bytes(st, 1) != MASTER_CHECK_LEN)
		return -1;
	m->version = (uint32_t)v;
	memcpy(m->check, c, MASTER_CHECK_LEN);
	m->retired = sqlite3_column_int(st, 2) != 0;
	return 0;
}

int
store_master_list(sqlite3 *db, struct store_master *out, size_t max)
{
	return store_rows(db,
	    "SELECT version, check_value, retired FROM master_versions ORDER BY version",
	    "the master versions", store_master_row, out, max);
}

/* Run one statement in its own transaction. */
static int
store_write_one(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (db_begin(db) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: %s", what, sqlite3_errstr(rc));
		db_rollback(db);
		return -1;
	}
	return db_commit(db) == SQLITE_OK ? 0 : -1;
}

int
store_master_add(sqlite3 *db, const struct store_master *m)
{
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO master_versions (version, check_value, created, retired) "
	    "VALUES (?1, ?2, strftime('%s', 'now'), 0)");

	sqlite3_bind_int64(st, 1, m->version);
	sqlite3_bind_blob(st, 2, m->check, MASTER_CHECK_LEN, SQLITE_STATIC);
	return store_write_one(db, st, "recording a master version");
}

static int
store_version_row(sqlite3_stmt *st, void *out, size_t i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, 0);

	if (v < 0 || v > UINT32_MAX)
		return -1;
	((uint32_t *)out)[i] = (uint32_t)v;
	return 0;
}

int
store_master_in_use(sqlite3 *db, uint32_t *out, size_t max)
{
	return store_rows(db,
	    "SELECT master_version FROM keys UNION SELECT master_version FROM intake_keys",
	    "the master versions in use", store_version_row, out, max);
}

long long
store_master_rows(sqlite3 *db, uint32_t version)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT (SELECT count(*) FROM keys WHERE master_version = ?1) +"
	    " (SELECT count(*) FROM intake_keys WHERE master_version = ?1)");
	long long n = -1;

	sqlite3_bind_int64(st, 1, version);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		log_warnx("counting rows of master version %u: %s", (unsigned)version,
		    sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return n;
}

int
store_master_retire(sqlite3 *db, uint32_t version)
{
	sqlite3_stmt *st = db_prepare(db,
	    "UPDATE master_versions SET retired = 1 WHERE version = ?1 AND retired = 0"
	    " AND NOT EXISTS (SELECT 1 FROM keys WHERE master_version = ?1)"
	    " AND NOT EXISTS (SELECT 1 FROM intake_keys WHERE master_version = ?1)");

	sqlite3_bind_int64(st, 1, version);
	if (store_write_one(db, st, "retiring a master version") != 0)
		return -1;
	return sqlite3_changes(db) > 0 ? 1 : 0;
}

/* Intake key pairs. */

static int
store_kem_row(sqlite3_stmt *st, void *out, size_t i)
{
	struct store_kem *k = (struct store_kem *)out + i;
	const unsigned char *kid = sqlite3_column_text(st, 0);
	sqlite3_int64 v = sqlite3_column_int64(st, 4);

	if (kid == NULL || strlen((const char *)kid) > IPC_KID_MAX ||
	    sqlite3_column_bytes(st, 1) != HPKE_NPK || sqlite3_column_bytes(st, 2) != SEAL_NONCE_LEN ||
	    sqlite3_column_bytes(st, 3) != HPKE_NSK + SEAL_TAG_LEN || v < 1 || v > UINT32_MAX)
		return -1;
	strcpy(k->kid, (const char *)kid);
	memcpy(k->pk, sqlite3_column_blob(st, 1), HPKE_NPK);
	memcpy(k->nonce, sqlite3_column_blob(st, 2), SEAL_NONCE_LEN);
	memcpy(k->sealed, sqlite3_column_blob(st, 3), HPKE_NSK + SEAL_TAG_LEN);
	k->master_version = (uint32_t)v;
	k->created = sqlite3_column_int64(st, 5);
	return 0;
}

int
store_kem_list(sqlite3 *db, struct store_kem *out, size_t max)
{
	return store_rows(db,
	    "SELECT kid, public, nonce, sealed, master_version, created FROM intake_keys "
	    "ORDER BY created, rowid",
	    "the intake key pairs", store_kem_row, out, max);
}

int
store_kem_add(sqlite3 *db, const struct store_kem *k)
{
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO intake_keys (kid, public, nonce, sealed, master_version, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");

	sqlite3_bind_text(st, 1, k->kid, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, k->pk, HPKE_NPK, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, k->nonce, SEAL_NONCE_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, k->sealed, HPKE_NSK + SEAL_TAG_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, k->master_version);
	sqlite3_bind_int64(st, 6, k->created);
	return store_write_one(db, st, "storing an intake key pair");
}
