/*
 * export.c — `cn2-ledger export --from T --to T`: transfers as CSV.
 *
 * One header line, then one line per transfer created in [from, to), in
 * sequence order, RFC 4180 quoting (fields with a comma, quote or line break
 * are quoted, quotes doubled). The columns are every hashed field, raw
 * (created_ms is the hashed integer; created is the same time for people),
 * then prev_hash and hash in hex, so the CSV alone lets anyone recompute the
 * chain: hash = SHA-256(prev_hash || the canonical text of chain.c). The
 * retention sweep archives the rows it deletes in the same format.
 *
 * Security stance: read-only and outside any daemon. The CSV holds what
 * ledger.db holds: ids, payment references, seller ids and amounts, no
 * secret and no buyer identity. A file written with -o is created 0600.
 */
#include "ledger/ledger.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "common/db.h"
#include "common/timefmt.h"

#define TOOL "cn2-ledger export"

static const char header[] = "seq,id,kind,pending_id,payment_ref,debit,credit,amount,legs,"
			     "created_ms,created,link,link_len,prev_hash,hash\r\n";

static void
csv_field(FILE *out, const char *s, int last)
{
	if (strpbrk(s, ",\"\r\n") == NULL)
		fputs(s, out);
	else {
		fputc('"', out);
		for (; *s != '\0'; s++) {
			if (*s == '"')
				fputc('"', out);
			fputc(*s, out);
		}
		fputc('"', out);
	}
	fputs(last ? "\r\n" : ",", out);
}

static void
csv_row(sqlite3_stmt *st, FILE *out)
{
	char when[RFC3339_BUFSZ + 8];
	int64_t ms = sqlite3_column_int64(st, 9);
	int i;

	for (i = 0; i < 10; i++) {
		const unsigned char *t = sqlite3_column_text(st, i);

		csv_field(out, t != NULL ? (const char *)t : "", 0);
	}
	if (rfc3339_format(ms / 1000, when, RFC3339_BUFSZ) < 0)
		when[0] = '\0';
	else /* 2026-11-21T12:05:00Z → 2026-11-21T12:05:00.123Z */
		snprintf(when + 19, sizeof(when) - 19, ".%03dZ", (int)(ms % 1000));
	csv_field(out, when, 0);
	for (i = 10; i < 14; i++) {
		const unsigned char *t = sqlite3_column_text(st, i);

		csv_field(out, t != NULL ? (const char *)t : "", i == 13);
	}
}

int
export_csv(sqlite3 *db, int64_t from_ms, int64_t to_ms, int64_t max_seq, FILE *out)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT seq, id, kind, coalesce(pending_id, ''), payment_ref, debit, credit, amount, legs,"
	    " created, coalesce(link, ''), coalesce(link_len, ''), lower(hex(prev_hash)),"
	    " lower(hex(hash)) FROM transfers WHERE created >= ?1 AND created < ?2 AND seq <= ?3"
	    " ORDER BY seq");
	int rc;

	sqlite3_bind_int64(st, 1, from_ms);
	sqlite3_bind_int64(st, 2, to_ms);
	sqlite3_bind_int64(st, 3, max_seq);
	fputs(header, out);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		csv_row(st, out);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE && !ferror(out) ? 0 : -1;
}

static void
export_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-ledger export [-f config] [--from TIME] [--to TIME] [-o file]\n"
	    "Write the transfers created in [from, to) as CSV: every hashed column, then\n"
	    "prev_hash and hash in hex, so the chain can be recomputed from the file alone.\n"
	    "TIME is RFC 3339 (2026-11-21T12:00:00Z) or a date (2026-11-21, UTC midnight);\n"
	    "the defaults are the first and the last transfer.\n\n"
	    "  -f file      configuration file (default /etc/cn2/ledger.conf)\n"
	    "  --from TIME  first instant included\n"
	    "  --to TIME    first instant excluded\n"
	    "  -o file      write there (created 0600) instead of to stdout\n"
	    "  -h, --help   this text\n\n"
	    "Exit status: 0 written, 2 cannot read or write.\n");
}

struct export_args {
	int64_t from, to;
	const char *path;
};

static int
export_args(int argc, char **argv, struct tool_ctx *t, struct export_args *a)
{
	static const struct option longopts[] = {
	    {"from", required_argument, NULL, 'F'},
	    {"to", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	a->from = 0;
	a->to = INT64_MAX;
	a->path = NULL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:o:h", longopts, NULL)) != -1) {
		if (ch == 'f')
			t->config_path = optarg;
		else if (ch == 'o')
			a->path = optarg;
		else if (ch == 'F' && tool_time(optarg, &a->from) == 0)
			continue;
		else if (ch == 'T' && tool_time(optarg, &a->to) == 0)
			continue;
		else
			return ch == 'h' ? 1 : -1;
	}
	return optind == argc && a->from <= a->to ? 0 : -1;
}

/* A new file for the CSV, mode 0600; NULL after saying why. */
static FILE *
export_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (fp == NULL) {
		perror(TOOL ": open");
		if (fd >= 0)
			close(fd);
	}
	return fp;
}

int
export_main(int argc, char **argv, struct tool_ctx *t)
{
	struct export_args a;
	char err[512];
	sqlite3 *db;
	FILE *out = stdout;
	int rc;

	if ((rc = export_args(argc, argv, t, &a)) != 0) {
		export_usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	if (tool_config(t, "export") != 0)
		return 2;
	if ((db = ledger_db_open_readonly(t->cfg->database, err, sizeof(err))) == NULL) {
		fprintf(stderr, TOOL ": %s\n", err);
		return 2;
	}
	if (a.path != NULL && (out = export_open(a.path)) == NULL) {
		sqlite3_close(db);
		return 2;
	}
	rc = export_csv(db, a.from, a.to, INT64_MAX, out);
	if (rc != 0)
		fprintf(stderr, TOOL ": %s\n", ferror(out) ? "write failed" : sqlite3_errmsg(db));
	if (fflush(out) != 0 || (out != stdout && fsync(fileno(out)) != 0))
		rc = -1;
	if (out != stdout && fclose(out) != 0)
		rc = -1;
	sqlite3_close(db);
	return rc == 0 ? 0 : 2;
}
