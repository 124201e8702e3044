/*
 * payout.c — payout batches, their reversals, and `cn2-ledger payout`.
 *
 * A batch pays every seller whose available earnings (earnings.c) reach the
 * threshold: one transfer per seller, id "po/<batch>/<seller>", moving the
 * whole available amount from seller:<id> to payouts:<method>, all of them
 * one linked group (link "po/<batch>") so the batch is in the books whole or
 * not at all. The transfer is the record that the money is owed out through
 * that method; sending it is the operator's (or the payment processor's) job.
 * The batch id is the idempotency key: running the same batch again finds
 * it recorded and changes nothing. A payout is undone only by a reversal, a
 * new transfer "rv/<batch>/<seller>" moving the amount back.
 *
 * Security stance: an operator's tool. It writes ledger.db beside the
 * running daemon in its own BEGIN IMMEDIATE transaction (SQLite serialises
 * the two writers; the chain head is read inside the transaction), commits
 * before it prints that anything was recorded, and never deletes or changes
 * a row.
 */
#include "ledger/ledger.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/log.h"
#include "common/money.h"
#include "common/timefmt.h"

#define TOOL "cn2-ledger payout"

struct due {
	char seller[IPC_ID_MAX + 1];
	int64_t amount;
};

static int
batch_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= LEDGER_BATCH_MAX &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A batch recorded before: 1 with its count, total and account, 0 none, -1. */
static int
batch_find(sqlite3 *db, struct payout_batch *b, char *account, size_t cap, int *mixed)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT count(*), coalesce(sum(amount), 0), min(credit), max(credit) FROM transfers"
	    " WHERE kind = 'payout' AND payment_ref = ?1");
	const unsigned char *lo, *hi;
	int rc, found = 0;

	sqlite3_bind_text(st, 1, b->batch, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
		found = 1;
		b->count = (size_t)sqlite3_column_int64(st, 0);
		b->total = sqlite3_column_int64(st, 1);
		lo = sqlite3_column_text(st, 2);
		hi = sqlite3_column_text(st, 3);
		snprintf(account, cap, "%s", lo != NULL ? (const char *)lo : "");
		*mixed = lo == NULL || hi == NULL || strcmp((const char *)lo, (const char *)hi) != 0;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? found : -1;
}

/* Every seller whose available earnings reach the threshold. *n of them; 0, or -1. */
static int
dues_collect(sqlite3 *db, const struct payout_batch *b, int64_t now_ms, struct due **out,
    size_t *n)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT substr(name, 8) FROM accounts WHERE kind = 'earnings' ORDER BY name");
	struct ipc_earnings_rep e;
	struct due *v = NULL, *nv;
	size_t cap = 0;
	int rc;

	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *seller = (const char *)sqlite3_column_text(st, 0);

		if (seller == NULL || earnings_get(db, seller, b->hold_s, now_ms, &e) != 0)
			break;
		if (e.available < b->threshold)
			continue;
		if (*n == cap) {
			cap = cap != 0 ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				break;
			v = nv;
		}
		snprintf(v[*n].seller, sizeof(v[*n].seller), "%s", seller);
		v[(*n)++].amount = e.available;
	}
	sqlite3_finalize(st);
	*out = v;
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
payout_insert(struct journal *j, const struct payout_batch *b, const struct due *d, size_t n,
    int64_t now_ms)
{
	struct ledger_xfer x;

	journal_xfer_init(&x, "payout", now_ms);
	snprintf(x.id, sizeof(x.id), "po/%s/%s", b->batch, d->seller);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", b->batch);
	snprintf(x.debit, sizeof(x.debit), "seller:%s", d->seller);
	snprintf(x.credit, sizeof(x.credit), "payouts:%s", b->method);
	x.amount = d->amount;
	if (n > 1) {
		snprintf(x.link, sizeof(x.link), "po/%s", b->batch);
		x.link_len = (int64_t)n;
	}
	return journal_insert_pair(j, &x);
}

static void
print_due(FILE *out, const struct payout_batch *b, const struct due *d)
{
	char usd[MONEY_USD_BUFSZ];

	if (out == NULL)
		return;
	if (money_format_usd(d->amount, usd, sizeof(usd)) < 0)
		snprintf(usd, sizeof(usd), "?");
	fprintf(out, "po/%s/%s %" PRId64 " %s\n", b->batch, d->seller, d->amount, usd);
}

/* The batch was recorded before: the same answer, unless its method differs. */
static int
batch_again(struct payout_batch *b, const char *account, int mixed, struct journal_result *r)
{
	char want[LEDGER_NAME_MAX + 1];

	snprintf(want, sizeof(want), "payouts:%s", b->method);
	if (mixed || strcmp(account, want) != 0)
		return journal_conflict(r, "payout batch", b->batch);
	return journal_same(r);
}

int
payout_record(struct journal *j, struct payout_batch *b, int64_t now_ms,
    struct journal_result *r, FILE *out)
{
	sqlite3 *db = journal_db(j);
	char account[LEDGER_NAME_MAX + 1];
	struct due *dues = NULL;
	size_t n = 0, i;
	int rc, mixed = 0;

	journal_result_init(r);
	b->count = 0;
	b->total = 0;
	if (!batch_ok(b->batch))
		return journal_refuse(r, "a batch id is 1 to %d of [A-Za-z0-9_-]", LEDGER_BATCH_MAX);
	if (!journal_method_ok(b->method))
		return journal_refuse(r, "invalid payout method");
	if (b->threshold < 1 || b->threshold > LEDGER_AMOUNT_MAX || b->hold_s < 0)
		return journal_refuse(r, "threshold or hold out of range");
	if ((rc = batch_find(db, b, account, sizeof(account), &mixed)) < 0)
		return journal_fail(j, r, "payout batch", b->batch);
	if (rc > 0)
		return batch_again(b, account, mixed, r);
	snprintf(account, sizeof(account), "payouts:%s", b->method);
	if (dues_collect(db, b, now_ms, &dues, &n) != 0 ||
	    (n > 0 && journal_account(j, account, "payouts", now_ms) != 0)) {
		free(dues);
		return journal_fail(j, r, "payout batch", b->batch);
	}
	for (i = 0; i < n; i++) {
		if (payout_insert(j, b, &dues[i], n, now_ms) != 0)
			break;
		b->count++;
		b->total += dues[i].amount;
		print_due(out, b, &dues[i]);
	}
	free(dues);
	if (i < n)
		return journal_fail(j, r, "payout batch", b->batch);
	return 0;
}

int
payout_reverse(struct journal *j, const char *payout_id, int64_t now_ms,
    struct journal_result *r)
{
	struct journal_row p, rev;
	struct ledger_xfer x;
	int rc;

	journal_result_init(r);
	if (!journal_token_ok(payout_id, LEDGER_ID_MAX) || strncmp(payout_id, "po/", 3) != 0)
		return journal_refuse(r, "invalid payout id");
	if ((rc = journal_find(j, payout_id, &p)) < 0)
		return journal_fail(j, r, "reversal of", payout_id);
	if (rc == 0 || strcmp(p.kind, "payout") != 0)
		return journal_refuse(r, "no payout %s", payout_id);
	journal_xfer_init(&x, "payout_reversal", now_ms);
	snprintf(x.id, sizeof(x.id), "rv/%s", payout_id + 3);
	if ((rc = journal_find(j, x.id, &rev)) < 0)
		return journal_fail(j, r, "reversal of", payout_id);
	if (rc > 0)
		return strcmp(rev.kind, "payout_reversal") == 0 ? journal_same(r) :
								   journal_conflict(r, "reversal", x.id);
	snprintf(x.pending_id, sizeof(x.pending_id), "%s", payout_id);
	snprintf(x.payment_ref, sizeof(x.payment_ref), "%s", p.payment_ref);
	snprintf(x.debit, sizeof(x.debit), "%s", p.credit);
	snprintf(x.credit, sizeof(x.credit), "%s", p.debit);
	x.amount = p.amount;
	if (journal_insert_pair(j, &x) != 0)
		return journal_fail(j, r, "reversal of", payout_id);
	log_info("payout %s reversed: %" PRId64 " µUSD back to %s", payout_id, x.amount, x.credit);
	return 0;
}

static void
payout_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-ledger payout [-f config] [--batch ID] [--threshold USD] [--method NAME]\n"
	    "                         [--dry-run]\n"
	    "       cn2-ledger payout [-f config] --reverse po/<batch>/<seller>\n"
	    "Record a payout batch: one transfer per seller whose available earnings\n"
	    "reach the threshold, moving all of them to payouts:<method>, linked so the\n"
	    "batch is recorded whole or not at all. The batch id (default: today, UTC,\n"
	    "YYYYMMDD) makes it idempotent: a batch recorded before is reported again and\n"
	    "nothing changes. --reverse undoes one payout by a new transfer.\n\n"
	    "  -f file          configuration file (default /etc/cn2/ledger.conf)\n"
	    "  --batch ID       1 to 12 of [A-Za-z0-9_-]\n"
	    "  --threshold USD  smallest payout (default: payout_threshold)\n"
	    "  --method NAME    payout method (default: payout_method)\n"
	    "  --dry-run        show the batch, record nothing\n"
	    "  -h, --help       this text\n\n"
	    "Exit status: 0 recorded (or recorded before, or nothing due), 1 refused,\n"
	    "2 cannot run.\n");
}

struct payout_args {
	struct payout_batch b;
	const char *reverse;
	int dry_run;
};

/* 0, 1 for --help, or -1 on a usage error. */
static int
payout_args(int argc, char **argv, struct tool_ctx *t, struct payout_args *a)
{
	static const struct option longopts[] = {
	    {"batch", required_argument, NULL, 'b'}, {"threshold", required_argument, NULL, 't'},
	    {"method", required_argument, NULL, 'm'}, {"reverse", required_argument, NULL, 'r'},
	    {"dry-run", no_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *batch = NULL, *threshold = NULL, *method = NULL;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		if (ch == 'f')
			t->config_path = optarg;
		else if (ch == 'b')
			batch = optarg;
		else if (ch == 't')
			threshold = optarg;
		else if (ch == 'm')
			method = optarg;
		else if (ch == 'r')
			a->reverse = optarg;
		else if (ch == 'n')
			a->dry_run = 1;
		else
			return ch == 'h' ? 1 : -1;
	}
	if (optind != argc || tool_config(t, "payout") != 0)
		return -1;
	a->b.threshold = t->cfg->payout_threshold;
	a->b.hold_s = t->cfg->earnings_hold_s;
	if (threshold != NULL && money_parse_usd(threshold, &a->b.threshold) != 0)
		return -1;
	snprintf(a->b.method, sizeof(a->b.method), "%s", method != NULL ? method :
	    t->cfg->payout_method);
	if (batch == NULL) {
		time_t now = time(NULL);
		struct tm tm;

		if (gmtime_r(&now, &tm) == NULL)
			return -1;
		strftime(a->b.batch, sizeof(a->b.batch), "%Y%m%d", &tm);
	} else if (snprintf(a->b.batch, sizeof(a->b.batch), "%s", batch) >= (int)sizeof(a->b.batch))
		return -1;
	return 0;
}

/* The payouts of a batch as recorded, one line each, once they are durable. */
static int
batch_print(sqlite3 *db, const char *batch)
{
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT substr(debit, 8), amount FROM transfers WHERE kind = 'payout' AND payment_ref = ?1"
	    " ORDER BY seq");
	struct payout_batch b;
	struct due d;
	int rc;

	memset(&b, 0, sizeof(b));
	snprintf(b.batch, sizeof(b.batch), "%s", batch);
	sqlite3_bind_text(st, 1, batch, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *seller = sqlite3_column_text(st, 0);

		snprintf(d.seller, sizeof(d.seller), "%s", seller != NULL ? (const char *)seller : "");
		d.amount = sqlite3_column_int64(st, 1);
		print_due(stdout, &b, &d);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Run the batch or the reversal in one transaction of our own; print the outcome. */
static int
payout_run(struct journal *j, struct payout_args *a, struct journal_result *r)
{
	sqlite3 *db = journal_db(j);
	int64_t now = time_now_ms();
	int rc;

	if (db_begin(db) != SQLITE_OK)
		return -1;
	if (a->reverse != NULL)
		rc = payout_reverse(j, a->reverse, now, r);
	else
		rc = payout_record(j, &a->b, now, r, a->dry_run ? stdout : NULL);
	if (rc != 0 || a->dry_run || r->status == JOURNAL_REFUSED)
		return db_rollback(db) == SQLITE_OK && rc == 0 ? 0 : -1;
	if (db_commit(db) != SQLITE_OK)
		return -1;
	return a->reverse != NULL ? 0 : batch_print(db, a->b.batch);
}

static void
payout_report(const struct payout_args *a, const struct journal_result *r)
{
	char usd[MONEY_USD_BUFSZ];

	if (a->reverse != NULL) {
		printf("%s %s\n", a->reverse, r->status == JOURNAL_SAME ? "was reversed before" :
									"reversed");
		return;
	}
	if (money_format_usd(a->b.total, usd, sizeof(usd)) < 0)
		snprintf(usd, sizeof(usd), "?");
	printf("batch %s: %zu payouts, %" PRId64 " µUSD (%s USD) to payouts:%s%s\n", a->b.batch,
	    a->b.count, a->b.total, usd, a->b.method,
	    a->dry_run ? ", not recorded (dry run)" :
	    r->status == JOURNAL_SAME ? ", recorded before" : a->b.count == 0 ? ", nothing due" : "");
}

int
payout_main(int argc, char **argv, struct tool_ctx *t)
{
	struct payout_args a;
	struct journal_result r;
	struct journal *j = NULL;
	char err[512];
	sqlite3 *db;
	int rc;

	memset(&a, 0, sizeof(a));
	if ((rc = payout_args(argc, argv, t, &a)) != 0) {
		payout_usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	/* Refuse to create a database: the path must name the ledger's books. */
	if ((db = ledger_db_open_readonly(t->cfg->database, err, sizeof(err))) != NULL) {
		sqlite3_close(db);
		db = ledger_db_open(t->cfg->database, err, sizeof(err));
	}
	if (db == NULL || (j = journal_new(db)) == NULL || payout_run(j, &a, &r) != 0) {
		fprintf(stderr, TOOL ": %s\n", db == NULL ? err : "the database failed");
		journal_free(j);
		db_close(db);
		return 2;
	}
	journal_free(j);
	db_close(db);
	if (r.status == JOURNAL_REFUSED) {
		fprintf(stderr, TOOL ": %s\n", r.detail);
		return 1;
	}
	payout_report(&a, &r);
	return 0;
}
