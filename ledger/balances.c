/*
 * balances.c — `cn2-ledger balances [-f config]`: the trial balance.
 *
 * Prints every account with its balance (its opening balance, if the
 * retention sweep carried one forward, plus the sum of its entries; in µUSD
 * and in dollars) and the total, which double entry makes zero. Exit status 0
 * when it is, 1 when it is not (the books were tampered with, or a bug got
 * past the schema), 2 when the configuration or database cannot be read.
 *
 * Security stance: an auditor's tool. It opens the database read-only, takes
 * the balances from the v_balances view in one statement (one consistent
 * snapshot, the same numbers `sqlite3 ledger.db 'select * from v_balances'`
 * shows), adds them up with overflow checks, and talks to no daemon.
 */
#include "ledger/ledger.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "common/money.h"

#define TOOL "cn2-ledger balances"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-ledger balances [-f config]\n"
	    "Print the trial balance of ledger.db: every account's balance (its opening\n"
	    "balance plus the sum of its entries; credits positive) in µUSD and USD, and\n"
	    "the total, which must be zero. Reads the database named by the daemon's\n"
	    "configuration, read-only.\n\n"
	    "  -f file    configuration file (default /etc/cn2/ledger.conf)\n"
	    "  -h, --help this text\n\n"
	    "Exit status: 0 balanced, 1 the total is not zero, 2 cannot read.\n");
}

static void
print_line(FILE *out, const char *name, int64_t micro)
{
	char usd[MONEY_USD_BUFSZ];

	if (money_format_usd(micro, usd, sizeof(usd)) < 0)
		snprintf(usd, sizeof(usd), "?");
	fprintf(out, "%-40s %20" PRId64 " %21s\n", name, micro, usd);
}

int
balances_report(sqlite3 *db, FILE *out, FILE *err)
{
	sqlite3_stmt *st;
	int64_t total = 0;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT account, balance FROM v_balances", -1, &st, NULL) !=
	    SQLITE_OK) {
		fprintf(err, TOOL ": %s\n", sqlite3_errmsg(db));
		return -1;
	}
	fprintf(out, "%-40s %21s %21s\n", "account", "balance µUSD", "USD");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 0);
		int64_t bal = sqlite3_column_int64(st, 1);

		if (sqlite3_column_type(st, 1) != SQLITE_INTEGER || !money_add(total, bal, &total)) {
			fprintf(err, TOOL ": balance of %s is not a summable integer\n",
			    name != NULL ? (const char *)name : "?");
			sqlite3_finalize(st);
			return -1;
		}
		print_line(out, name != NULL ? (const char *)name : "?", bal);
	}
	if (rc != SQLITE_DONE)
		fprintf(err, TOOL ": %s\n", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	print_line(out, "total", total);
	if (total == 0)
		return 0;
	fprintf(err, TOOL ": the total is %" PRId64 " µUSD, not zero: the books do not balance\n",
	    total);
	return 1;
}

int
balances_main(int argc, char **argv, struct tool_ctx *t)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char err[512];
	sqlite3 *db;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		if (ch == 'f')
			t->config_path = optarg;
		else {
			usage(ch == 'h' ? stdout : stderr);
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (tool_config(t, "balances") != 0)
		return 2;
	if ((db = ledger_db_open_readonly(t->cfg->database, err, sizeof(err))) == NULL) {
		fprintf(stderr, TOOL ": %s\n", err);
		return 2;
	}
	rc = balances_report(db, stdout, stderr);
	sqlite3_close(db);
	return rc < 0 ? 2 : rc;
}
