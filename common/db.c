/*
 * db.c — opening, checking and migrating the SQLite database of a daemon.
 *
 * Security stance: a database holds money, keys or personal data, so it is
 * created readable by its owner only (SQLite gives its -wal and -shm files
 * the same mode). It is checked with PRAGMA quick_check before anything is
 * written to it, so a corrupt file stops the daemon instead of being built
 * upon, and a schema newer than the code is refused rather than misread.
 * Each migration commits together with its version number, so a failed one
 * leaves the database exactly as it was.
 *
 * Every daemon runs SQLite from its single event loop thread, so connections
 * are opened without SQLite's own mutexes, and SQLite's memory statistics
 * (a global mutex taken on every allocation, read by nothing in cn2) are
 * turned off before the first open. Errors carry SQLite's message, never
 * the bound values of a statement.
 *
 * The statement cache (db_stmt) is one small hash table for the process,
 * keyed by (connection, address of the SQL text), under a mutex so that
 * tests or tools with several threads stay safe; db_close empties a
 * connection's entries before closing it.
 */
#include "common/db.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

#define DB_BUSY_MS 5000
#define DB_WHY_MAX 512
/* Buckets of the statement cache (a power of two), and the most it holds. */
#define DB_STMT_BUCKETS 256
#define DB_STMT_MAX 4096

struct db_cached {
	struct db_cached *next;
	sqlite3 *db;
	const char *sql; /* the caller's constant: the key */
	char *text;      /* our copy of it, to notice a reused address */
	sqlite3_stmt *stmt;
};

static struct db_cached *db_cache[DB_STMT_BUCKETS];
static size_t db_ncached;
static pthread_mutex_t db_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t db_config_once = PTHREAD_ONCE_INIT;

static int db_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
db_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Copy an SQLite message as one line: quick_check answers span several. */
static void
db_oneline(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	if (dstlen == 0)
		return;
	for (i = 0; src[i] != '\0' && i < dstlen - 1; i++)
		dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
	dst[i] = '\0';
}

/* Run sql; on failure put SQLite's message in why and return -1. */
static int
db_run(sqlite3 *db, const char *sql, char *why, size_t whylen)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		db_oneline(why, whylen, msg != NULL ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The first column of the first row of a pragma, as text. */
static int
db_pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *stmt;
	const unsigned char *text;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		db_oneline(out, outlen, sqlite3_errmsg(db));
		return -1;
	}
	if (sqlite3_step(stmt) == SQLITE_ROW && (text = sqlite3_column_text(stmt, 0)) != NULL) {
		db_oneline(out, outlen, (const char *)text);
		rc = 0;
	} else
		db_oneline(out, outlen, sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	return rc;
}

/*
 * quick_check(1) stops at the first problem, which is all we report. A file
 * too damaged to read fails in prepare or step rather than answering a row.
 */
static int
db_check(sqlite3 *db, char *why, size_t whylen)
{
	sqlite3_stmt *stmt;
	const unsigned char *text;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &stmt, NULL) != SQLITE_OK) {
		db_oneline(why, whylen, sqlite3_errmsg(db));
		return -1;
	}
	rc = sqlite3_step(stmt);
	text = rc == SQLITE_ROW ? sqlite3_column_text(stmt, 0) : NULL;
	if (rc != SQLITE_ROW)
		db_oneline(why, whylen, sqlite3_errmsg(db));
	else if (text == NULL || strcmp((const char *)text, "ok") != 0)
		db_oneline(why, whylen, text == NULL ? "no answer" : (const char *)text);
	else if ((rc = sqlite3_step(stmt)) != SQLITE_DONE)
		db_oneline(why, whylen, "more than one answer");
	else {
		sqlite3_finalize(stmt);
		return 0;
	}
	sqlite3_finalize(stmt);
	return -1;
}

int
db_quick_check(sqlite3 *db)
{
	char why[DB_WHY_MAX];

	if (db_check(db, why, sizeof(why)) == 0)
		return 0;
	log_warnx("quick_check failed: %s", why);
	return -1;
}

/*
 * The umask makes SQLite create the file 0600; it is process-wide, which is
 * safe because a daemon opens its database from its one thread at start.
 */
static sqlite3 *
db_open_file(const char *path, char *err, size_t errlen)
{
	const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	const char *file;
	struct stat st;
	sqlite3 *db = NULL;
	mode_t old;
	int rc;

	old = umask(077);
	rc = sqlite3_open_v2(path, &db, flags, NULL);
	(void)umask(old);
	if (rc != SQLITE_OK) {
		db_err(err, errlen, "%s: %s", path, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	/* An existing file keeps the mode its operator gave it, but we say so. */
	file = sqlite3_db_filename(db, "main");
	if (file != NULL && file[0] != '\0' && stat(file, &st) == 0 && (st.st_mode & 077) != 0)
		log_warnx("%s is readable by group or others (chmod 600)", file);
	return db;
}

/* Check before any write: WAL mode itself rewrites the header of a good file. */
static int
db_setup(sqlite3 *db, const char *path, enum db_sync sync, char *err, size_t errlen)
{
	char why[DB_WHY_MAX];

	if (sqlite3_extended_result_codes(db, 1) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, DB_BUSY_MS) != SQLITE_OK)
		return db_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
	if (db_check(db, why, sizeof(why)) == -1)
		return db_err(err, errlen, "%s failed quick_check: %s", path, why);
	if (db_pragma_text(db, "PRAGMA journal_mode=WAL", why, sizeof(why)) == -1)
		return db_err(err, errlen, "%s: journal_mode: %s", path, why);
	if (strcmp(why, "wal") != 0)
		return db_err(err, errlen, "%s: journal_mode is %s, not wal", path, why);
	if (db_run(db, sync == DB_SYNC_FULL ? "PRAGMA synchronous=FULL" :
					      "PRAGMA synchronous=NORMAL",
		why, sizeof(why)) == -1 ||
	    db_run(db, "PRAGMA foreign_keys=ON", why, sizeof(why)) == -1)
		return db_err(err, errlen, "%s: %s", path, why);
	/* A build without foreign keys accepts the pragma silently. */
	if (db_pragma_text(db, "PRAGMA foreign_keys", why, sizeof(why)) == -1 ||
	    strcmp(why, "1") != 0)
		return db_err(err, errlen, "%s: foreign keys cannot be enabled", path);
	return 0;
}

/* migrations[v] and user_version = v + 1 commit together or not at all. */
static int
db_migrate_one(sqlite3 *db, const char *sql, size_t v, char *err, size_t errlen)
{
	char why[DB_WHY_MAX], setv[64];

	if (db_run(db, "BEGIN IMMEDIATE", why, sizeof(why)) == -1)
		return db_err(err, errlen, "migration %zu: %s", v + 1, why);
	(void)snprintf(setv, sizeof(setv), "PRAGMA user_version = %zu", v + 1);
	if (db_run(db, sql, why, sizeof(why)) == -1 || db_run(db, setv, why, sizeof(why)) == -1 ||
	    db_run(db, "COMMIT", why, sizeof(why)) == -1) {
		/* Some errors end the transaction themselves; ROLLBACK would then fail. */
		if (!sqlite3_get_autocommit(db))
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return db_err(err, errlen, "migration %zu failed: %s", v + 1, why);
	}
	return 0;
}

static int
db_migrate(sqlite3 *db, const char *path, const char *const *migrations, size_t nmigrations,
    char *err, size_t errlen)
{
	char why[DB_WHY_MAX];
	long long version;
	char *end;

	if (nmigrations > INT32_MAX)
		fatalx("%zu migrations do not fit in user_version", nmigrations);
	if (db_pragma_text(db, "PRAGMA user_version", why, sizeof(why)) == -1)
		return db_err(err, errlen, "%s: user_version: %s", path, why);
	version = strtoll(why, &end, 10);
	if (*end != '\0' || end == why || version < 0)
		return db_err(err, errlen, "%s: invalid schema version %s", path, why);
	if ((unsigned long long)version > nmigrations)
		return db_err(err, errlen,
		    "%s: database schema version %lld is newer than this program (%zu)", path,
		    version, nmigrations);
	for (size_t v = (size_t)version; v < nmigrations; v++) {
		if (db_migrate_one(db, migrations[v], v, err, errlen) == -1)
			return -1;
		log_info("%s: schema migrated to version %zu", path, v + 1);
	}
	return 0;
}

/*
 * Only possible before SQLite initializes itself (at the first open); if
 * something in the process got there first, statistics simply stay on.
 */
static void
db_config(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

sqlite3 *
db_open(const char *path, enum db_sync sync, const char *const *migrations,
    size_t nmigrations, char *err, size_t errlen)
{
	sqlite3 *db;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (pthread_once(&db_config_once, db_config) != 0)
		fatalx("pthread_once failed");
	if ((db = db_open_file(path, err, errlen)) == NULL)
		return NULL;
	if (db_setup(db, path, sync, err, errlen) == -1 ||
	    db_migrate(db, path, migrations, nmigrations, err, errlen) == -1) {
		db_close(db);
		return NULL;
	}
	return db;
}

static void db_stmt_forget(sqlite3 *db);

void
db_close(sqlite3 *db)
{
	int rc;

	if (db == NULL)
		return;
	db_stmt_forget(db);
	/* SQLITE_BUSY here means a statement was never finalized: a leak in our code. */
	if ((rc = sqlite3_close(db)) != SQLITE_OK)
		log_warnx("sqlite3_close: %s (%d)", sqlite3_errstr(rc), rc);
}

int
db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		log_warnx("%s (%d)", msg != NULL ? msg : sqlite3_errstr(rc), rc);
	sqlite3_free(msg);
	return rc;
}

int
db_begin(sqlite3 *db)
{
	return db_exec_cached(db, "BEGIN IMMEDIATE");
}

int
db_commit(sqlite3 *db)
{
	return db_exec_cached(db, "COMMIT");
}

int
db_rollback(sqlite3 *db)
{
	return db_exec_cached(db, "ROLLBACK");
}

sqlite3_stmt *
db_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	const char *tail = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, &tail) != SQLITE_OK)
		fatalx("%s: %.120s", sqlite3_errmsg(db), sql);
	if (stmt == NULL)
		fatalx("no statement in: %.120s", sql);
	/* A second statement would be silently ignored: that is a bug too. */
	tail += strspn(tail, " \t\r\n;");
	if (*tail != '\0')
		fatalx("more than one statement in: %.120s", sql);
	return stmt;
}

static size_t
db_stmt_bucket(const sqlite3 *db, const char *sql)
{
	uintptr_t h = (uintptr_t)db * 31 + (uintptr_t)sql;

	h ^= h >> 17;
	h *= 0x9e3779b1u;
	return (size_t)(h >> 7) & (DB_STMT_BUCKETS - 1);
}

/* Finalize and free every entry of db. */
static void
db_stmt_forget(sqlite3 *db)
{
	struct db_cached **pp, *e;

	if (pthread_mutex_lock(&db_cache_lock) != 0)
		fatalx("cannot lock the statement cache");
	for (size_t i = 0; i < DB_STMT_BUCKETS; i++) {
		for (pp = &db_cache[i]; (e = *pp) != NULL;) {
			if (e->db != db) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			sqlite3_finalize(e->stmt);
			free(e->text);
			free(e);
			db_ncached--;
		}
	}
	(void)pthread_mutex_unlock(&db_cache_lock);
}

/* The entry for (db, sql), made on first use; called with the lock held. */
static struct db_cached *
db_stmt_entry(sqlite3 *db, const char *sql)
{
	size_t b = db_stmt_bucket(db, sql);
	struct db_cached *e;

	for (e = db_cache[b]; e != NULL; e = e->next)
		if (e->db == db && e->sql == sql)
			break;
	if (e != NULL && strcmp(e->text, sql) == 0)
		return e;
	if (e != NULL) {
		/* The address now holds other SQL: prepare that in place. */
		sqlite3_finalize(e->stmt);
		free(e->text);
	} else {
		if (db_ncached >= DB_STMT_MAX)
			fatalx("over %d cached statements: SQL built at run time?", DB_STMT_MAX);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			fatalx("out of memory");
		e->db = db;
		e->sql = sql;
		e->next = db_cache[b];
		db_cache[b] = e;
		db_ncached++;
	}
	if ((e->text = strdup(sql)) == NULL)
		fatalx("out of memory");
	e->stmt = db_prepare(db, sql);
	return e;
}

sqlite3_stmt *
db_stmt(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt;

	if (pthread_mutex_lock(&db_cache_lock) != 0)
		fatalx("cannot lock the statement cache");
	stmt = db_stmt_entry(db, sql)->stmt;
	(void)pthread_mutex_unlock(&db_cache_lock);
	/* Its last step's result was the last user's to check. */
	(void)sqlite3_reset(stmt);
	(void)sqlite3_clear_bindings(stmt);
	return stmt;
}

int
db_exec_cached(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = db_stmt(db, sql);
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	else
		log_warnx("%s (%d)", sqlite3_errmsg(db), rc);
	(void)sqlite3_reset(stmt);
	return rc;
}
