/*
 * test_db.c — db_open and friends on real database files in a temporary
 * directory: WAL, synchronous levels, file mode, migrations (run once, rolled
 * back on failure, newer schema refused) and refusing a corrupted file; the
 * statement cache (db_stmt, db_exec_cached).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/db.h"

static char tmpdir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/cn2-test-db-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *
db_path(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

/* One integer answer from our own SQL. */
static int64_t
query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = db_prepare(db, sql);
	int64_t v;

	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int64(stmt, 0);
	assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
	return v;
}

static sqlite3 *
open_ok(const char *path, enum db_sync sync, const char *const *migs, size_t n)
{
	char err[512] = "";
	sqlite3 *db;

	db = db_open(path, sync, migs, n, err, sizeof(err));
	if (db == NULL)
		fail_msg("db_open %s: %s", path, err);
	return db;
}

/* Open without db_open, to look at a file db_open refused. */
static sqlite3 *
open_raw(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	return db;
}

static const char *const migs_t[] = {
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
    "INSERT INTO t(v) VALUES ('first')",
};

static void
test_open_wal(void **state)
{
	const char *path = db_path("wal.db");
	char wal[300];
	sqlite3_stmt *stmt;
	struct stat st;
	sqlite3 *db;

	(void)state;
	db = open_ok(path, DB_SYNC_FULL, migs_t, 1);
	stmt = db_prepare(db, "PRAGMA journal_mode");
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
	assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);

	assert_int_equal(db_exec(db, "INSERT INTO t(v) VALUES ('x')"), SQLITE_OK);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size > 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	db_close(db);
}

static void
test_sync_levels(void **state)
{
	static const struct {
		enum db_sync sync;
		int64_t want;
	} rows[] = {{DB_SYNC_FULL, 2}, {DB_SYNC_NORMAL, 1}};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		sqlite3 *db = open_ok(db_path("sync.db"), rows[i].sync, migs_t, 1);

		assert_int_equal(query_int(db, "PRAGMA synchronous"), rows[i].want);
		db_close(db);
	}
}

/* The mode must not depend on the caller's umask. */
static void
test_file_mode(void **state)
{
	const char *path = db_path("mode.db");
	struct stat st;
	sqlite3 *db;
	mode_t old;

	(void)state;
	old = umask(0);
	db = open_ok(path, DB_SYNC_NORMAL, migs_t, 1);
	(void)umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	db_close(db);
}

static void
test_migrations_once(void **state)
{
	static const char *const migs3[] = {
	    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
	    "INSERT INTO t(v) VALUES ('first')",
	    "INSERT INTO t(v) VALUES ('second')",
	};
	const char *path = db_path("once.db");
	sqlite3 *db;

	(void)state;
	db = open_ok(path, DB_SYNC_FULL, migs_t, 2);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 1);
	db_close(db);

	db = open_ok(path, DB_SYNC_FULL, migs_t, 2);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 1);
	db_close(db);

	/* A newer program runs only the migration it adds. */
	db = open_ok(path, DB_SYNC_FULL, migs3, 3);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 3);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 2);
	db_close(db);
}

static void
test_migration_rollback(void **state)
{
	static const char *const migs[] = {
	    "CREATE TABLE a(x)",
	    "CREATE TABLE b(y); INSERT INTO a VALUES (1); INSERT INTO nosuch VALUES (1)",
	};
	const char *path = db_path("rollback.db");
	char err[512] = "";
	sqlite3 *db;

	(void)state;
	assert_null(db_open(path, DB_SYNC_FULL, migs, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "migration 2 failed"));
	assert_non_null(strstr(err, "no such table: nosuch"));

	db = open_raw(path);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'b'"), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM a"), 0);
	db_close(db);

	/* The program that knows only migration 1 opens it fine. */
	db = open_ok(path, DB_SYNC_FULL, migs, 1);
	db_close(db);
}

static void
test_newer_schema(void **state)
{
	const char *path = db_path("newer.db");
	char err[512] = "";
	sqlite3 *db;

	(void)state;
	db_close(open_ok(path, DB_SYNC_FULL, migs_t, 2));
	assert_null(db_open(path, DB_SYNC_FULL, migs_t, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "database schema version 2 is newer than this program (1)"));

	db = open_raw(path);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 1);
	db_close(db);
}

/* Garbage over page 2 (the root of a table spread over many pages). */
static void
test_corrupt(void **state)
{
	static const char *const migs[] = {
	    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)"
	    " INSERT INTO t(v) SELECT printf('%0500d', i) FROM c",
	};
	const char *path = db_path("corrupt.db");
	unsigned char garbage[65536];
	char err[512] = "";
	int64_t pagesize;
	struct stat st;
	sqlite3 *db;
	int fd;

	(void)state;
	db = open_ok(path, DB_SYNC_FULL, migs, 1);
	pagesize = query_int(db, "PRAGMA page_size");
	assert_true(pagesize > 0 && (size_t)pagesize <= sizeof(garbage));
	assert_int_equal(db_quick_check(db), 0);
	db_close(db); /* the last close checkpoints the WAL into the file */
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size >= 4 * pagesize);

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)(i * 37 + 11);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, garbage, (size_t)pagesize, (off_t)pagesize), pagesize);
	assert_int_equal(close(fd), 0);

	assert_null(db_open(path, DB_SYNC_FULL, migs, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "failed quick_check"));
	assert_null(strchr(err, '\n'));
	db = open_raw(path);
	assert_int_equal(db_quick_check(db), -1);
	db_close(db);
}

static void
test_open_errors(void **state)
{
	char err[512] = "";

	(void)state;
	assert_null(db_open("/nonexistent/dir/x.db", DB_SYNC_FULL, migs_t, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/dir/x.db"));
	db_close(NULL);
}

static void
test_exec_and_transactions(void **state)
{
	sqlite3 *db;

	(void)state;
	db = open_ok(db_path("tx.db"), DB_SYNC_NORMAL, migs_t, 1);
	assert_int_equal(db_exec(db, "INSERT INTO nosuch VALUES (1)"), SQLITE_ERROR);
	assert_int_equal(db_exec(db, "INSERT INTO t(v) VALUES (NULL)"),
	    SQLITE_CONSTRAINT_NOTNULL);

	assert_int_equal(db_begin(db), SQLITE_OK);
	assert_int_equal(db_exec(db, "INSERT INTO t(v) VALUES ('gone')"), SQLITE_OK);
	assert_int_equal(db_rollback(db), SQLITE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 0);

	assert_int_equal(db_begin(db), SQLITE_OK);
	assert_int_equal(db_exec(db, "INSERT INTO t(v) VALUES ('kept')"), SQLITE_OK);
	assert_int_equal(db_commit(db), SQLITE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 1);
	assert_int_not_equal(db_commit(db), SQLITE_OK); /* no transaction is open */
	db_close(db);
}

static const char *prepare_sql;

/* Child: prepare prepare_sql on a fresh in-memory database. */
static void
prepare_child(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt;

	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		_exit(2);
	stmt = db_prepare(db, prepare_sql);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

/* Run fn in a child with the caller's stderr; its exit status. */
static int
child_status_keep(void (*fn)(void))
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int
child_status(void (*fn)(void))
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			(void)dup2(fd, STDERR_FILENO);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_prepare(void **state)
{
	static const struct {
		const char *sql;
		int status;
	} rows[] = {
	    {"SELECT 1", 0},
	    {"SELECT 1;  \n", 0},
	    {"SELEC 1", 1},
	    {"SELECT * FROM nosuch", 1},
	    {"SELECT 1; SELECT 2", 1},
	    {"", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		prepare_sql = rows[i].sql;
		if (child_status(prepare_child) != rows[i].status)
			fail_msg("row %zu (%s): wrong exit status", i, rows[i].sql);
	}
}

/* db_stmt: one statement per (connection, SQL), handed out reset and unbound. */

static const char sql_pick[] = "SELECT v FROM t WHERE id = ?1";
static const char sql_count[] = "SELECT count(*) FROM t";
static const char sql_add[] = "INSERT INTO t(v) VALUES (?1)";

static int64_t
stmt_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = db_stmt(db, sql);
	int64_t v;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

static void
test_stmt_cached(void **state)
{
	sqlite3 *db, *other;
	sqlite3_stmt *st;

	(void)state;
	db = open_ok(db_path("stmt.db"), DB_SYNC_NORMAL, migs_t, 2);
	other = open_ok(db_path("stmt2.db"), DB_SYNC_NORMAL, migs_t, 2);
	st = db_stmt(db, sql_pick);
	assert_ptr_equal(db_stmt(db, sql_pick), st);
	assert_ptr_not_equal(db_stmt(db, sql_count), st);
	assert_ptr_not_equal(db_stmt(other, sql_pick), st);
	assert_ptr_equal(sqlite3_db_handle(db_stmt(other, sql_pick)), other);
	assert_string_equal(sqlite3_sql(st), sql_pick);

	/* Bindings do not survive a fetch: ?1 is NULL again, so no row. */
	st = db_stmt(db, sql_pick);
	assert_int_equal(sqlite3_bind_int(st, 1, 1), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "first");
	st = db_stmt(db, sql_pick);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_reset(st);

	/* A statement left after its first row starts over when fetched again. */
	for (int i = 0; i < 3; i++) {
		st = db_stmt(db, sql_add);
		assert_int_equal(sqlite3_bind_text(st, 1, "more", -1, SQLITE_STATIC), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	}
	st = db_stmt(db, "SELECT id FROM t ORDER BY id");
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	st = db_stmt(db, "SELECT id FROM t ORDER BY id");
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_reset(st);
	assert_int_equal(stmt_int(db, sql_count), 4);
	assert_int_equal(stmt_int(other, sql_count), 1);
	db_close(other);
	db_close(db);
}

/* The same address holding other SQL is a different statement. */
static void
test_stmt_reused_buffer(void **state)
{
	static const struct {
		const char *sql;
		int64_t want;
	} rows[] = {
	    {"SELECT 1", 1},
	    {"SELECT 2", 2},
	    {"SELECT 2", 2},
	    {"SELECT count(*) FROM t", 1},
	    {"SELECT 40 + 2", 42},
	};
	char buf[64];
	sqlite3 *db;

	(void)state;
	db = open_ok(db_path("stmtbuf.db"), DB_SYNC_NORMAL, migs_t, 2);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", rows[i].sql);
		if (stmt_int(db, buf) != rows[i].want)
			fail_msg("row %zu (%s): wrong answer", i, rows[i].sql);
		assert_string_equal(sqlite3_sql(db_stmt(db, buf)), rows[i].sql);
	}
	db_close(db);
}

static void
test_exec_cached(void **state)
{
	static const struct {
		const char *sql;
		int rc;
	} rows[] = {
	    {"BEGIN IMMEDIATE", SQLITE_OK},
	    {"SAVEPOINT w", SQLITE_OK},
	    {"INSERT INTO t(v) VALUES ('inner')", SQLITE_OK},
	    {"ROLLBACK TO w", SQLITE_OK},
	    {"RELEASE w", SQLITE_OK},
	    {"SAVEPOINT w", SQLITE_OK},
	    {"INSERT INTO t(v) VALUES ('kept')", SQLITE_OK},
	    {"RELEASE w", SQLITE_OK},
	    {"INSERT INTO t(v) VALUES (NULL)", SQLITE_CONSTRAINT_NOTNULL},
	    {"COMMIT", SQLITE_OK},
	    {"COMMIT", SQLITE_ERROR}, /* no transaction is open */
	    {"RELEASE w", SQLITE_ERROR},
	};
	sqlite3 *db;

	(void)state;
	db = open_ok(db_path("exec1.db"), DB_SYNC_NORMAL, migs_t, 1);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (db_exec_cached(db, rows[i].sql) != rows[i].rc)
			fail_msg("row %zu (%s): wrong result", i, rows[i].sql);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE v = 'kept'"), 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 1);
	db_close(db);
}

/* Child: fill the cache, then db_close, which fails while statements are live. */
static void
stmt_close_child(void)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		_exit(2);
	(void)db_stmt(db, "SELECT 1");
	(void)db_stmt(db, "SELECT 2");
	if (sqlite3_step(db_stmt(db, "SELECT 1")) != SQLITE_ROW) /* left mid-way */
		_exit(3);
	db_close(db);
}

static void
test_stmt_close(void **state)
{
	char path[300];
	struct stat st;
	int fd, saved, status;

	(void)state;
	/* db_close logs a warning when sqlite3_close fails: stderr must stay empty. */
	snprintf(path, sizeof(path), "%s/close.log", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	status = child_status_keep(stmt_close_child);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fd);
	assert_int_equal(status, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_wal),
	    cmocka_unit_test(test_sync_levels),
	    cmocka_unit_test(test_file_mode),
	    cmocka_unit_test(test_migrations_once),
	    cmocka_unit_test(test_migration_rollback),
	    cmocka_unit_test(test_newer_schema),
	    cmocka_unit_test(test_corrupt),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_exec_and_transactions),
	    cmocka_unit_test(test_prepare),
	    cmocka_unit_test(test_stmt_cached),
	    cmocka_unit_test(test_stmt_reused_buffer),
	    cmocka_unit_test(test_exec_cached),
	    cmocka_unit_test(test_stmt_close),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
