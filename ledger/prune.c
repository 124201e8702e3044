/*
 * prune.c — `cn2-ledger prune`: the retention sweep of earnings records.
 *
 * Earnings records are kept seven years (DESIGN.md §6); nothing in the
 * ledger is ever deleted before that, and the schema itself refuses to:
 * a DELETE of a transfer or entry younger than seven calendar years fails
 * in the trigger, whoever runs it. Older transfers may go, oldest first,
 * in one transaction that
 *
 *   1. picks the cut: the longest prefix of the chain created before the
 *      cutoff that no younger row refers to (a post to its pending, a
 *      resolution to its dispute, a reversal to its payout), holds no
 *      pending transfer or dispute still open, and ends a linked group;
 *   2. writes those rows to the archive file in `export` format (every
 *      hashed column and both hashes) and syncs it;
 *   3. moves the checkpoint to the last of them (its sequence number and
 *      hash: the next row's prev_hash, so the chain still verifies from
 *      there, and an anchor taken before can be checked against the
 *      archive);
 *   4. carries each account's entries up to the cut into its opening
 *      balance (the triggers check every sum), so no balance moves;
 *   5. deletes the entries, then the transfers.
 *
 * The sweep runs when an operator (or a timer) runs it; the daemon never
 * deletes anything.
 *
 * Security stance: the cutoff is checked here and again by every trigger
 * involved, with SQLite's own clock; the archive is durable before the
 * first DELETE; and a failure anywhere rolls the whole sweep back.
 */
#include "ledger/ledger.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "common/db.h"
#include "common/timefmt.h"

#define TOOL "cn2-ledger prune"

/* One integer from sql with up to two integer parameters; def when NULL or no row. */
static int
query_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t def, int64_t *out)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int rc;

	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL ?
	    sqlite3_column_int64(st, 0) : def;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int64_t
prune_floor(sqlite3 *db)
{
	int64_t v = 0;

	if (query_int(db, "SELECT CAST(strftime('%s', 'now', '-7 years') AS INTEGER) * 1000", 0, 0,
		0, &v) != 0)
		return 0;
	return v;
}

/* The lowest row at or below cut that something keeps: referred to, open, or mid-group. */
static int
cut_blocker(sqlite3 *db, int64_t cut, int64_t *block)
{
	int64_t a, b, c;

	*block = INT64_MAX;
	if (query_int(db,
		"SELECT min(p.seq) FROM transfers AS r JOIN transfers AS p ON p.id = r.pending_id"
		" WHERE r.seq > ?1 AND p.seq <= ?1",
		cut, 0, INT64_MAX, &a) != 0 ||
	    query_int(db,
		"SELECT min(p.seq) FROM transfers AS p WHERE p.seq <= ?1"
		" AND ((p.kind = 'pending' AND NOT EXISTS (SELECT 1 FROM transfers AS r"
		"   WHERE r.pending_id = p.id AND r.kind IN ('post', 'void')))"
		" OR (p.kind = 'dispute' AND NOT EXISTS (SELECT 1 FROM transfers AS r"
		"   WHERE r.pending_id = p.id AND r.kind IN ('dispute_return', 'refund'))))",
		cut, 0, INT64_MAX, &b) != 0 ||
	    query_int(db,
		"SELECT min(g.seq) FROM transfers AS t JOIN transfers AS n ON n.seq = t.seq + 1"
		" JOIN transfers AS g ON g.link = t.link WHERE t.seq = ?1 AND t.link = n.link",
		cut, 0, INT64_MAX, &c) != 0)
		return -1;
	*block = a < b ? a : b;
	*block = c < *block ? c : *block;
	return 0;
}

/* The last sequence number the sweep may delete; *cut <= *from means nothing. */
static int
cut_find(sqlite3 *db, int64_t cutoff_ms, int64_t *from, int64_t *cut)
{
	int64_t block;

	if (query_int(db, "SELECT seq FROM checkpoint", 0, 0, 0, from) != 0 ||
	    query_int(db, "SELECT coalesce((SELECT min(seq) FROM transfers WHERE created >= ?1) - 1,"
			  " (SELECT max(seq) FROM transfers))",
		cutoff_ms, 0, 0, cut) != 0)
		return -1;
	while (*cut > *from) {
		if (cut_blocker(db, *cut, &block) != 0)
			return -1;
		if (block > *cut)
			break;
		*cut = block - 1;
	}
	return 0;
}

static int
exec_int(sqlite3 *db, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int rc;

	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Steps 3 to 5, inside the transaction: checkpoint, opening balances, deletions. */
static int
sweep(sqlite3 *db, int64_t from, int64_t cut, int64_t now_ms)
{
	return exec_int(db,
		   from == 0 ?
		       "INSERT INTO checkpoint (id, seq, hash, created, swept)"
		       " SELECT 1, seq, hash, created, ?2 FROM transfers WHERE seq = ?1" :
		       "UPDATE checkpoint SET (seq, hash, created, swept) ="
		       " (SELECT seq, hash, created, ?2 FROM transfers WHERE seq = ?1)",
		   cut, now_ms) != 0 ||
		exec_int(db,
		    "UPDATE opening SET through = ?1, balance = balance + coalesce((SELECT"
		    " sum(e.amount) FROM entries AS e WHERE e.account = opening.account"
		    " AND e.transfer > opening.through AND e.transfer <= ?1), 0)",
		    cut, 0) != 0 ||
		exec_int(db,
		    "INSERT INTO opening (account, balance, through) SELECT account, sum(amount), ?1"
		    " FROM entries WHERE transfer <= ?1"
		    " AND account NOT IN (SELECT account FROM opening) GROUP BY account",
		    cut, 0) != 0 ||
		exec_int(db, "DELETE FROM entries WHERE transfer <= ?1", cut, 0) != 0 ||
		exec_int(db, "DELETE FROM transfers WHERE seq <= ?1", cut, 0) != 0 ?
	    -1 :
	    0;
}

int
prune_books(sqlite3 *db, int64_t cutoff_ms, FILE *archive, int64_t now_ms, int64_t *swept,
    char *err, size_t errlen)
{
	int64_t from = 0, cut = 0, floor = prune_floor(db);

	*swept = 0;
	if (floor <= 0 || cutoff_ms > floor) {
		snprintf(err, errlen, "the cutoff must be at least seven years ago");
		return -1;
	}
	if (db_begin(db) != SQLITE_OK || cut_find(db, cutoff_ms, &from, &cut) != 0)
		goto fail;
	if (cut <= from)
		return db_commit(db) == SQLITE_OK ? 0 : -1;
	if (export_csv(db, 0, INT64_MAX, cut, archive) != 0 || fflush(archive) != 0 ||
	    fsync(fileno(archive)) != 0) {
		snprintf(err, errlen, "cannot write the archive");
		db_rollback(db);
		return -1;
	}
	if (sweep(db, from, cut, now_ms) != 0 || db_commit(db) != SQLITE_OK)
		goto fail;
	*swept = cut - from;
	return 0;
fail:
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	if (!sqlite3_get_autocommit(db))
		db_rollback(db);
	return -1;
}

static void
prune_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-ledger prune [-f config] --archive FILE [--before TIME]\n"
	    "The retention sweep: archive (as `export` does) and delete the oldest closed\n"
	    "transfers created before TIME, carrying their entries into opening balances.\n"
	    "TIME (RFC 3339 or YYYY-MM-DD) must be at least seven years ago, which is the\n"
	    "default; the database refuses to delete anything younger in any case.\n\n"
	    "  -f file         configuration file (default /etc/cn2/ledger.conf)\n"
	    "  --archive FILE  where the deleted transfers go (created 0600, must not exist)\n"
	    "  --before TIME   cutoff (default: seven years ago)\n"
	    "  -h, --help      this text\n\n"
	    "Exit status: 0 swept (or nothing to sweep), 2 cannot.\n");
}

static int
prune_args(int argc, char **argv, struct tool_ctx *t, const char **archive, int64_t *before)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'},
	    {"before", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		if (ch == 'f')
			t->config_path = optarg;
		else if (ch == 'a')
			*archive = optarg;
		else if (ch != 'b' || tool_time(optarg, before) != 0)
			return ch == 'h' ? 1 : -1;
	}
	return optind == argc && *archive != NULL ? 0 : -1;
}

int
prune_main(int argc, char **argv, struct tool_ctx *t)
{
	const char *path = NULL;
	int64_t before = -1, swept = 0;
	char err[512];
	sqlite3 *db;
	FILE *fp = NULL;
	int fd, rc;

	if ((rc = prune_args(argc, argv, t, &path, &before)) != 0) {
		prune_usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	if (tool_config(t, "prune") != 0)
		return 2;
	if ((db = ledger_db_open_readonly(t->cfg->database, err, sizeof(err))) != NULL) {
		sqlite3_close(db);
		db = ledger_db_open(t->cfg->database, err, sizeof(err));
	}
	if (db != NULL && (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0 &&
	    (fp = fdopen(fd, "w")) == NULL)
		close(fd);
	if (db == NULL || fp == NULL) {
		fprintf(stderr, TOOL ": %s\n", db == NULL ? err : "cannot create the archive");
		db_close(db);
		return 2;
	}
	rc = prune_books(db, before < 0 ? prune_floor(db) : before, fp, time_now_ms(), &swept, err,
	    sizeof(err));
	if (fclose(fp) != 0 || rc != 0) {
		fprintf(stderr, TOOL ": %s\n", rc != 0 ? err : "cannot close the archive");
		db_close(db);
		return 2;
	}
	db_close(db);
	printf("swept %" PRId64 " transfers into %s\n", swept, path);
	return 0;
}
