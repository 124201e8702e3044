/*
 * store.c — ledger.db: opening it (read-write for the daemon and the tools
 * that write, read-only for the auditor's), and the daemon's start and stop.
 *
 * Security stance: the daemon opens the database with synchronous=FULL in WAL
 * mode, checked with quick_check and migrated (schema.c) before anything is
 * written; every write then goes through the group commit (common/dbq.h),
 * which answers a request only after its batch is durable. The read-only
 * handle of the tools cannot write even by mistake, and refuses a schema it
 * does not know.
 */
#include "ledger/ledger.h"

#include <stdio.h>
#include <string.h>

#include "common/db.h"
#include "common/dbq.h"
#include "common/log.h"

sqlite3 *
ledger_db_open(const char *path, char *err, size_t errlen)
{
	size_t n;
	const char *const *m = ledger_migrations(&n);

	return db_open(path, DB_SYNC_FULL, m, n, err, errlen);
}

static int
schema_version(sqlite3 *db, int64_t *version)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

sqlite3 *
ledger_db_open_readonly(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int64_t version = -1;
	size_t n;

	(void)ledger_migrations(&n);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
		SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK || schema_version(db, &version) != 0) {
		snprintf(err, errlen, "%s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return NULL;
	}
	if (version < LEDGER_SCHEMA_TOOLS || (uint64_t)version > n) {
		snprintf(err, errlen, "%s: schema version %lld, this program reads %d to %zu%s", path,
		    (long long)version, LEDGER_SCHEMA_TOOLS, n,
		    version < LEDGER_SCHEMA_TOOLS ? " (start cn2-ledger once to migrate it)" : "");
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

int
ledger_start(struct ledger *s, struct daemon *d, const struct ledger_cfg *cfg, char *err,
    size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->d = d;
	if ((s->db = ledger_db_open(cfg->database, err, errlen)) == NULL)
		return -1;
	if ((s->j = journal_new(s->db)) == NULL || (s->q = dbq_new(d->loop, s->db)) == NULL) {
		snprintf(err, errlen, "out of memory");
		ledger_stop(s);
		return -1;
	}
	return 0;
}

/* Commit and answer what is queued before the database closes. */
void
ledger_stop(struct ledger *s)
{
	dbq_free(s->q);
	s->q = NULL;
	journal_free(s->j);
	s->j = NULL;
	db_close(s->db);
	s->db = NULL;
}

void
ledger_health(struct ledger *s, struct ipc_health_rep *rep)
{
	if (s->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
		return;
	}
	snprintf(rep->detail, sizeof(rep->detail), "ok: %llu writes in %llu commits",
	    dbq_writes(s->q), dbq_batches(s->q));
}
