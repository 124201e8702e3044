/*
 * store.c — vault.db: its schema, the sealed keys and the used grants.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 * Writes are dbq apply functions, so they commit in the loop's group commit
 * (synchronous=FULL: a key is acknowledged, and a grant counts as used,
 * only once it is on disk).
 *
 * Security stance: the keys table holds only AES-GCM ciphertexts (seal.c);
 * no plaintext key is ever bound to a statement. Errors name the statement,
 * never a bound value.
 */
#include "vault/vault.h"

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
};

sqlite3 *
store_open(const char *path, char *err, size_t errlen)
{
	return db_open(path, DB_SYNC_FULL, migrations, sizeof(migrations) / sizeof(migrations[0]),
	    err, errlen);
}

static int
store_key_row(sqlite3_stmt *st, struct store_key *k)
{
	const void *nonce = sqlite3_column_blob(st, 2), *ct = sqlite3_column_blob(st, 3);
	int nlen = sqlite3_column_bytes(st, 2), ctlen = sqlite3_column_bytes(st, 3);
	const unsigned char *seller = sqlite3_column_text(st, 0);
	const unsigned char *prov = sqlite3_column_text(st, 1);
	sqlite3_int64 version = sqlite3_column_int64(st, 4);

	if (seller == NULL || prov == NULL || nonce == NULL || ct == NULL ||
	    nlen != SEAL_NONCE_LEN || ctlen <= SEAL_TAG_LEN || version < 0 || version > UINT32_MAX ||
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
	return 0;
}

int
store_key_get(sqlite3 *db, const char *key_id, struct store_key *k)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT seller_id, provider, nonce, ciphertext, master_version FROM keys "
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
	sqlite3_finalize(st);
	return rc;
}

int
store_key_put(sqlite3 *db, void *arg)
{
	struct store_key_put *kp = arg;
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO keys (key_id, seller_id, provider, nonce, ciphertext, master_version,"
	    " created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) "
	    "ON CONFLICT (key_id) DO UPDATE SET provider = excluded.provider,"
	    " nonce = excluded.nonce, ciphertext = excluded.ciphertext,"
	    " master_version = excluded.master_version, updated = excluded.updated "
	    "WHERE keys.seller_id = excluded.seller_id");
	int rc;

	sqlite3_bind_text(st, 1, kp->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kp->seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kp->provider, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, kp->nonce, SEAL_NONCE_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, kp->ct, (int)kp->ctlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, kp->master_version);
	sqlite3_bind_int64(st, 7, kp->now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("storing key %s: %s", kp->key_id, sqlite3_errstr(rc));
		return -1;
	}
	/* The upsert's WHERE refused: the id is another seller's. */
	if (sqlite3_changes(db) == 0) {
		kp->taken = 1;
		return -1;
	}
	return 0;
}

int
store_grant_use(sqlite3 *db, void *arg)
{
	struct store_grant_use *g = arg;
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO used_grants (grant_id, expires) VALUES (?1, ?2) "
	    "ON CONFLICT (grant_id) DO NOTHING");
	int rc;

	sqlite3_bind_text(st, 1, g->grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, g->expires);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
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
