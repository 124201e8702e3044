/*
 * db.h — SQLite the way every cn2 daemon uses it.
 *
 * db_open opens (creating if needed) one database file in WAL mode with the
 * given synchronous level, checks it with PRAGMA quick_check, and brings its
 * schema up to date: migrations[i] takes PRAGMA user_version from i to i + 1,
 * each in its own BEGIN IMMEDIATE transaction. A database newer than the code
 * (user_version > nmigrations) is refused. A migration is plain SQL (several
 * statements allowed) and must not open or end a transaction itself. A new
 * file is created mode 0600 (db_open sets the process umask around the open).
 *
 * Writes go through db_begin (BEGIN IMMEDIATE) / db_commit / db_rollback.
 * These are blocking calls: daemons batch many requests per transaction so one
 * fsync serves them all. Statements on the hot path come from db_stmt, which
 * prepares each once per connection.
 */
#ifndef CN2_DB_H
#define CN2_DB_H

#include <sqlite3.h>
#include <stddef.h>

enum db_sync {
	DB_SYNC_NORMAL, /* WAL + synchronous=NORMAL: may lose the last commits on power loss */
	DB_SYNC_FULL,   /* WAL + synchronous=FULL: a commit is durable when it returns */
};

/* Returns the open handle, or NULL with a one-line reason in err. */
sqlite3 *db_open(const char *path, enum db_sync sync, const char *const *migrations,
    size_t nmigrations, char *err, size_t errlen);
void db_close(sqlite3 *db);

int db_exec(sqlite3 *db, const char *sql); /* SQLITE_OK or the error code (logged) */
int db_begin(sqlite3 *db);                 /* BEGIN IMMEDIATE */
int db_commit(sqlite3 *db);
int db_rollback(sqlite3 *db);

/* PRAGMA quick_check: 0 when "ok", -1 otherwise (the first problem is logged). */
int db_quick_check(sqlite3 *db);

/* Prepare or fatal: for statements in our own code, where failure is a bug. */
sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql);

/*
 * The statement cache: the hot path prepares each of its statements once.
 *
 * db_stmt returns the prepared statement for sql on db, preparing it (or
 * fatal, like db_prepare) on first use. It comes back reset and with its
 * bindings cleared. The cache owns it: never finalize it; it stays valid
 * until db_close, which finalizes every statement cached for db. Reset it
 * when done with it (sqlite3_reset): a statement left after a row holds its
 * read transaction open; db_stmt resets it again on the next fetch anyway.
 *
 * sql must be a string constant: entries are keyed by its address, and the
 * text is compared too, so a buffer reused for other SQL is prepared anew.
 * A statement has one user at a time: fetching the same sql again resets
 * it. Safe to call from several threads on different connections.
 */
sqlite3_stmt *db_stmt(sqlite3 *db, const char *sql);
/*
 * Run one cached statement that takes no parameters and returns no row
 * (BEGIN IMMEDIATE, COMMIT, SAVEPOINT …) to its end: SQLITE_OK, or the
 * error code (logged, as db_exec does).
 */
int db_exec_cached(sqlite3 *db, const char *sql);

#endif
