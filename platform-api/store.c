/*
 * store.c — platform.db: opening it, its schema migrations, the JWT secret,
 * and the group-commit queue every write goes through.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 *
 * Security stance: platform.db records who owns which key id, never the key
 * itself (that goes sealed to the vault and nowhere else), and webhook
 * endpoints without their secrets (derived from the webhook master secret).
 * The JWT and webhook secrets are read once at start from files only this
 * daemon's user can read, never logged, and wiped at stop.
 */
#include "platform-api/platform.h"

#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

static const char *const migrations[] = {
    /* 1: bookkeeping of the database itself. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('created', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));",
    /* 2: sellers (the JWT sub) and the keys they listed; times are unix seconds. */
    "CREATE TABLE sellers (id TEXT PRIMARY KEY NOT NULL, created INTEGER NOT NULL) STRICT;"
    "CREATE TABLE keys ("
    " key_id TEXT PRIMARY KEY NOT NULL,"
    " seller_id TEXT NOT NULL REFERENCES sellers (id),"
    " provider TEXT NOT NULL,"
    " created INTEGER NOT NULL) STRICT;"
    "CREATE INDEX keys_seller ON keys (seller_id);",
    /*
     * 3: webhook endpoints (no secret: each one's is derived, webhooks.c),
     * their deliveries (deliver.c), and how far the router's events were read.
     */
    "CREATE TABLE webhooks ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " seller_id TEXT NOT NULL,"
    " url TEXT NOT NULL,"
    " events TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL) STRICT;"
    "CREATE INDEX webhooks_seller ON webhooks (seller_id);"
    "CREATE TABLE deliveries ("
    " id INTEGER PRIMARY KEY,"
    " webhook_id TEXT NOT NULL,"
    " event_id INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('due', 'done', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_at INTEGER NOT NULL,"
    " last_status INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " UNIQUE (webhook_id, event_id)) STRICT;"
    "CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'due';"
    "CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);"
    "INSERT INTO meta (key, value) VALUES ('events_cursor', '0');",
};

int
platform_start(struct platform *p, struct daemon *d, const struct platform_cfg *cfg, char *err,
    size_t errlen)
{
	int n;

	p->cfg = cfg;
	p->d = d;
	n = cfg_read_secret(cfg->jwt_secret_file, p->jwt_key, 32, sizeof(p->jwt_key), err, errlen);
	if (n < 0)
		return -1;
	p->jwt_keylen = (size_t)n;
	/* The HMAC key every webhook endpoint's signing secret is derived from; none: no webhooks. */
	if (cfg->webhook_secret_file[0] != '\0') {
		n = cfg_read_secret(cfg->webhook_secret_file, p->webhook_key, 32,
		    sizeof(p->webhook_key), err, errlen);
		if (n < 0)
			return -1;
		p->webhook_keylen = (size_t)n;
	}
	p->db = db_open(cfg->database, DB_SYNC_FULL, migrations,
	    sizeof(migrations) / sizeof(migrations[0]), err, errlen);
	if (p->db == NULL)
		return -1;
	if ((p->q = dbq_new(d->loop, p->db)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return p->webhook_keylen > 0 ? deliver_start(p, err, errlen) : 0;
}

void
platform_stop(struct platform *p)
{
	p->stopping = 1;
	deliver_stop(p);
	dbq_free(p->q);
	p->q = NULL;
	db_close(p->db);
	p->db = NULL;
	mbedtls_platform_zeroize(p->jwt_key, sizeof(p->jwt_key));
	mbedtls_platform_zeroize(p->webhook_key, sizeof(p->webhook_key));
}

void
platform_health(struct platform *p, struct ipc_health_rep *rep)
{
	if (p->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
		return;
	}
	deliver_health(p, rep->detail, sizeof(rep->detail));
}

int
store_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		log_warnx("%s: %s", what, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_key_owner(sqlite3 *db, const char *key_id, const char *seller, char *provider)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT provider FROM keys WHERE key_id = ?1 AND seller_id = ?2");
	const unsigned char *pv;
	int rc;

	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, seller, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (pv = sqlite3_column_text(st, 0)) != NULL &&
	    strlen((const char *)pv) <= IPC_PROVIDER_MAX) {
		strcpy(provider, (const char *)pv);
		rc = 1;
	} else if (rc == SQLITE_DONE)
		rc = 0;
	else {
		log_warnx("reading the owner of key %s: %s", key_id, sqlite3_errmsg(db));
		rc = -1;
	}
	sqlite3_finalize(st);
	return rc;
}

int
store_key_add(sqlite3 *db, const char *key_id, const char *seller_id, const char *provider,
    int64_t created)
{
	sqlite3_stmt *st = db_prepare(db,
	    "INSERT INTO sellers (id, created) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING");

	sqlite3_bind_text(st, 1, seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, created);
	if (store_step_done(db, st, "seller") != 0)
		return -1;
	st = db_prepare(db,
	    "INSERT INTO keys (key_id, seller_id, provider, created) VALUES (?1, ?2, ?3, ?4)");
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, seller_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, provider, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, created);
	return store_step_done(db, st, "key");
}
