/*
 * verify.c — `cn2-ledger verify`: is every row what was written, and do the
 * books add up? And `cn2-ledger head`: the chain head, to anchor elsewhere.
 *
 * verify walks the transfers in sequence from the retention checkpoint (or
 * the first row) inside one read transaction, and for each row:
 *
 *   - the sequence number is the next one and prev_hash the hash before it;
 *   - SHA-256(prev_hash || canonical text) is the stored hash (chain.c), so
 *     any byte changed in any hashed column shows here, at that row;
 *   - the legs are a balanced JSON list of [existing account, non-zero
 *     integer] whose debits sum to the amount, and the row's entries are
 *     exactly those legs, in order (entries are not hashed: this ties them
 *     to what is);
 *   - linked groups are consecutive and complete;
 *   - an --anchor (sequence number and hash from an earlier `head`) matches.
 *
 * Then, from the legs alone (plus the opening balances of swept rows), it
 * recomputes every account's balance and compares it with the cached
 * balance, checks that the total is zero, that escrow holds exactly the
 * open pending transfers and the dispute reserve exactly the open disputes.
 * It stops at the first broken row and names its sequence number.
 *
 * Security stance: an auditor's tool: read-only handle, one snapshot, every
 * value from the file treated as untrusted (legs are parsed with bounds, sums
 * checked for overflow), no daemon involved.
 */
#include "ledger/ledger.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/money.h"
#include "common/timefmt.h"

#define TOOL "cn2-ledger verify"

struct acct {
	int64_t id;
	char name[LEDGER_NAME_MAX + 1];
	int64_t balance; /* opening + legs */
};

struct walk {
	sqlite3 *db;
	struct acct *acct; /* sorted by name */
	size_t nacct;
	sqlite3_stmt *entries; /* every entry, in (transfer, leg) order */
	int entry_rc;	       /* the cursor's last step */
	int64_t next_seq;
	uint8_t prev[LEDGER_HASH_LEN];
	char link[LEDGER_ID_MAX + 1]; /* the group being walked, "" if none */
	int64_t link_len, link_pos, link_start;
	int64_t open_pending, open_disputes; /* µUSD */
	int64_t anchor_seq;
	const uint8_t *anchor_hash;
	int anchor_seen;
	struct verify_result *v;
};

static int broken(struct walk *w, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the finding (the first one wins). Returns 1. */
static int
broken(struct walk *w, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (w->v->why[0] != '\0')
		return 1;
	w->v->broken_seq = seq;
	va_start(ap, fmt);
	(void)vsnprintf(w->v->why, sizeof(w->v->why), fmt, ap);
	va_end(ap);
	return 1;
}

static int
acct_cmp(const void *a, const void *b)
{
	return strcmp(((const struct acct *)a)->name, ((const struct acct *)b)->name);
}

static struct acct *
acct_find(struct walk *w, const char *name)
{
	struct acct key;

	if (snprintf(key.name, sizeof(key.name), "%s", name) >= (int)sizeof(key.name))
		return NULL;
	return bsearch(&key, w->acct, w->nacct, sizeof(*w->acct), acct_cmp);
}

static struct acct *
acct_by_id(struct walk *w, int64_t id)
{
	for (size_t i = 0; i < w->nacct; i++)
		if (w->acct[i].id == id)
			return &w->acct[i];
	return NULL;
}

/* Every account, with its opening balance. 0, or -1. */
static int
accounts_load(struct walk *w)
{
	sqlite3_stmt *st = db_prepare(w->db,
	    "SELECT a.id, a.name, coalesce(o.balance, 0) FROM accounts AS a"
	    " LEFT JOIN opening AS o ON o.account = a.id");
	size_t cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 1);
		struct acct *n;

		if (w->nacct == cap) {
			cap = cap != 0 ? cap * 2 : 64;
			if ((n = realloc(w->acct, cap * sizeof(*n))) == NULL)
				break;
			w->acct = n;
		}
		n = &w->acct[w->nacct++];
		n->id = sqlite3_column_int64(st, 0);
		snprintf(n->name, sizeof(n->name), "%s", name != NULL ? (const char *)name : "");
		n->balance = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	qsort(w->acct, w->nacct, sizeof(*w->acct), acct_cmp);
	w->v->accounts = (int64_t)w->nacct;
	return 0;
}

/* The chain starts after the checkpoint, if the retention sweep left one. */
static int
checkpoint_load(struct walk *w)
{
	sqlite3_stmt *st = db_prepare(w->db, "SELECT seq, hash FROM checkpoint");
	int rc;

	w->next_seq = 1;
	memset(w->prev, 0, sizeof(w->prev));
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		w->next_seq = sqlite3_column_int64(st, 0) + 1;
		if (sqlite3_column_bytes(st, 1) == LEDGER_HASH_LEN)
			memcpy(w->prev, sqlite3_column_blob(st, 1), LEDGER_HASH_LEN);
		if (w->anchor_seq == w->next_seq - 1) {
			w->anchor_seen = 1;
			if (memcmp(w->prev, w->anchor_hash, LEDGER_HASH_LEN) != 0)
				broken(w, w->anchor_seq, "the checkpoint's hash is not the anchor's");
		}
	}
	sqlite3_finalize(st);
	w->v->first = w->next_seq;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* A transfers row into x; 0, or -1 when a column cannot be what the schema allows. */
static int
row_read(sqlite3_stmt *st, struct ledger_xfer *x, uint8_t hash[LEDGER_HASH_LEN], char *kind,
    size_t kindcap)
{
	memset(x, 0, sizeof(*x));
	x->seq = sqlite3_column_int64(st, 0);
	journal_col_text(st, 1, x->id, sizeof(x->id));
	journal_col_text(st, 2, kind, kindcap);
	x->kind = kind;
	journal_col_text(st, 3, x->pending_id, sizeof(x->pending_id));
	journal_col_text(st, 4, x->payment_ref, sizeof(x->payment_ref));
	journal_col_text(st, 5, x->debit, sizeof(x->debit));
	journal_col_text(st, 6, x->credit, sizeof(x->credit));
	x->amount = sqlite3_column_int64(st, 7);
	journal_col_text(st, 8, x->legs, sizeof(x->legs));
	x->created = sqlite3_column_int64(st, 9);
	journal_col_text(st, 12, x->link, sizeof(x->link));
	x->link_len = sqlite3_column_int64(st, 13);
	if (sqlite3_column_bytes(st, 10) != LEDGER_HASH_LEN ||
	    sqlite3_column_bytes(st, 11) != LEDGER_HASH_LEN ||
	    (size_t)sqlite3_column_bytes(st, 8) >= sizeof(x->legs))
		return -1;
	memcpy(x->prev_hash, sqlite3_column_blob(st, 10), LEDGER_HASH_LEN);
	memcpy(hash, sqlite3_column_blob(st, 11), LEDGER_HASH_LEN);
	return 0;
}

/* Sequence, link to the previous row, and the row's own hash. 0, or 1 if broken. */
static int
check_chain(struct walk *w, struct ledger_xfer *x, const uint8_t stored[LEDGER_HASH_LEN])
{
	if (x->seq != w->next_seq)
		return broken(w, w->next_seq, "sequence number %" PRId64 " is missing (next row: %"
		    PRId64 ")", w->next_seq, x->seq);
	if (memcmp(x->prev_hash, w->prev, LEDGER_HASH_LEN) != 0)
		return broken(w, x->seq, "prev_hash is not the hash of the row before");
	if (chain_hash(x) != 0 || memcmp(x->hash, stored, LEDGER_HASH_LEN) != 0)
		return broken(w, x->seq, "the row's hash does not match its contents");
	if (x->seq == w->anchor_seq) {
		w->anchor_seen = 1;
		if (memcmp(stored, w->anchor_hash, LEDGER_HASH_LEN) != 0)
			return broken(w, x->seq, "the row's hash is not the anchor's");
	}
	w->next_seq = x->seq + 1;
	memcpy(w->prev, stored, LEDGER_HASH_LEN);
	return 0;
}

/* One leg: ["account", non-zero integer within bounds]. */
static int
leg_read(const cJSON *leg, const char **name, int64_t *amount)
{
	const cJSON *n = cJSON_GetArrayItem(leg, 0), *a = cJSON_GetArrayItem(leg, 1);
	double d;

	if (!cJSON_IsArray(leg) || cJSON_GetArraySize(leg) != 2 || !cJSON_IsString(n) ||
	    !cJSON_IsNumber(a))
		return -1;
	d = a->valuedouble;
	if (d < -(double)LEDGER_AMOUNT_MAX || d > (double)LEDGER_AMOUNT_MAX || d == 0 ||
	    (double)(int64_t)d != d)
		return -1;
	*name = n->valuestring;
	*amount = (int64_t)d;
	return 0;
}

/* The next entry under the cursor is (transfer, leg) with this account and amount? */
static int
entry_match(struct walk *w, int64_t seq, int leg, const struct acct *a, int64_t amount)
{
	sqlite3_stmt *e = w->entries;

	if (w->entry_rc != SQLITE_ROW || sqlite3_column_int64(e, 0) != seq ||
	    sqlite3_column_int64(e, 1) != leg || sqlite3_column_int64(e, 2) != a->id ||
	    sqlite3_column_int64(e, 3) != amount)
		return 0;
	w->entry_rc = sqlite3_step(e);
	return 1;
}

/* The legs balance, fit the amount, and are the row's entries; balances move. */
static int
check_legs(struct walk *w, const struct ledger_xfer *x)
{
	cJSON *legs = cJSON_ParseWithLength(x->legs, strlen(x->legs));
	int64_t sum = 0, debits = 0, amount;
	const char *name;
	struct acct *a;
	int n, bad = 0;

	n = cJSON_IsArray(legs) ? cJSON_GetArraySize(legs) : 0;
	if (n < 2 || n > 8)
		bad = broken(w, x->seq, "the legs are not a list of 2 to 8 legs");
	for (int i = 0; i < n && !bad; i++) {
		if (leg_read(cJSON_GetArrayItem(legs, i), &name, &amount) != 0 ||
		    (a = acct_find(w, name)) == NULL)
			bad = broken(w, x->seq, "leg %d is not [existing account, amount]", i + 1);
		else if (!entry_match(w, x->seq, i + 1, a, amount))
			bad = broken(w, x->seq, "entry %d is not leg %d", i + 1, i + 1);
		else if (!money_add(sum, amount, &sum) || !money_add(a->balance, amount, &a->balance) ||
		    (amount < 0 && !money_add(debits, -amount, &debits)))
			bad = broken(w, x->seq, "the amounts overflow");
	}
	cJSON_Delete(legs);
	if (bad)
		return 1;
	if (w->entry_rc == SQLITE_ROW && sqlite3_column_int64(w->entries, 0) == x->seq)
		return broken(w, x->seq, "the row has more entries than legs");
	if (sum != 0 || debits != x->amount)
		return broken(w, x->seq, "the legs do not balance to the amount");
	return 0;
}

/* Linked groups: consecutive rows, all of the stated length. */
static int
check_link(struct walk *w, const struct ledger_xfer *x)
{
	if (w->link[0] != '\0' && strcmp(x->link, w->link) != 0 && w->link_pos != w->link_len)
		return broken(w, x->seq, "the linked group %s before this row is incomplete",
		    w->link);
	if (x->link[0] == '\0') {
		w->link[0] = '\0';
		return 0;
	}
	if (strcmp(x->link, w->link) != 0) {
		snprintf(w->link, sizeof(w->link), "%s", x->link);
		w->link_len = x->link_len;
		w->link_pos = 0;
		w->link_start = x->seq;
	}
	if (x->link_len != w->link_len || ++w->link_pos > w->link_len)
		return broken(w, x->seq, "the linked group %s is not of its stated length", x->link);
	return 0;
}

/* What escrow and the dispute reserve must hold. */
static int
track_open(struct walk *w, const struct ledger_xfer *x)
{
	int64_t *sum = NULL, sign = 0;

	if (strcmp(x->kind, "pending") == 0 || strcmp(x->kind, "post") == 0 ||
	    strcmp(x->kind, "void") == 0) {
		sum = &w->open_pending;
		sign = strcmp(x->kind, "pending") == 0 ? 1 : -1;
	} else if (strcmp(x->kind, "dispute") == 0 || strcmp(x->kind, "dispute_return") == 0 ||
	    strcmp(x->kind, "refund") == 0) {
		sum = &w->open_disputes;
		sign = strcmp(x->kind, "dispute") == 0 ? 1 : -1;
	}
	if (sum != NULL && !money_add(*sum, sign * x->amount, sum))
		return broken(w, x->seq, "the amounts overflow");
	return 0;
}

static int
walk_rows(struct walk *w)
{
	sqlite3_stmt *st = db_prepare(w->db,
	    "SELECT seq, id, kind, coalesce(pending_id, ''), payment_ref, debit, credit, amount, legs,"
	    " created, prev_hash, hash, coalesce(link, ''), coalesce(link_len, 0)"
	    " FROM transfers ORDER BY seq");
	struct ledger_xfer x;
	uint8_t stored[LEDGER_HASH_LEN];
	char kind[32];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_read(st, &x, stored, kind, sizeof(kind)) != 0) {
			broken(w, x.seq, "a column is not what the schema allows");
			break;
		}
		if (check_chain(w, &x, stored) || check_link(w, &x) || check_legs(w, &x) ||
		    track_open(w, &x))
			break;
		w->v->last = x.seq;
		memcpy(w->v->head, stored, LEDGER_HASH_LEN);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* After the walk: leftover entries, the last group, the anchor, the balances. */
static int
check_totals(struct walk *w)
{
	sqlite3_stmt *st;
	struct acct *a;
	int64_t total = 0;
	int rc;

	if (w->entry_rc == SQLITE_ROW)
		return broken(w, sqlite3_column_int64(w->entries, 0),
		    "an entry belongs to no transfer in sequence");
	if (w->link[0] != '\0' && w->link_pos != w->link_len)
		return broken(w, w->v->last, "the linked group %s is incomplete", w->link);
	if (w->anchor_seq > 0 && !w->anchor_seen)
		return broken(w, 0, "the anchor's sequence number %" PRId64 " is not in the books",
		    w->anchor_seq);
	st = db_prepare(w->db, "SELECT account, balance FROM balances");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((a = acct_by_id(w, sqlite3_column_int64(st, 0))) == NULL ||
		    a->balance != sqlite3_column_int64(st, 1)) {
			broken(w, 0, "the cached balance of %s is not what the transfers add up to",
			    a != NULL ? a->name : "an unknown account");
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return -1;
	for (size_t i = 0; i < w->nacct; i++) {
		a = &w->acct[i];
		if (!money_add(total, a->balance, &total))
			return broken(w, 0, "the balances overflow");
		if ((strcmp(a->name, "escrow") == 0 && a->balance != w->open_pending) ||
		    (strcmp(a->name, "reserve:disputes") == 0 && a->balance != w->open_disputes))
			return broken(w, 0, "%s holds %" PRId64 " µUSD, not what is open in it",
			    a->name, a->balance);
	}
	if (total != 0)
		return broken(w, 0, "the trial balance is %" PRId64 " µUSD, not zero", total);
	return 0;
}

int
verify_books(sqlite3 *db, int64_t anchor_seq, const uint8_t *anchor_hash,
    struct verify_result *v)
{
	struct walk w;
	int rc = -1;

	memset(v, 0, sizeof(*v));
	memset(&w, 0, sizeof(w));
	w.db = db;
	w.v = v;
	w.anchor_seq = anchor_seq;
	w.anchor_hash = anchor_hash;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	w.entries = db_prepare(db,
	    "SELECT transfer, leg, account, amount FROM entries ORDER BY transfer, leg");
	w.entry_rc = sqlite3_step(w.entries);
	if ((w.entry_rc != SQLITE_ROW && w.entry_rc != SQLITE_DONE) || accounts_load(&w) != 0 ||
	    checkpoint_load(&w) != 0)
		goto out;
	if (v->why[0] == '\0' && walk_rows(&w) != 0)
		goto out;
	if (v->why[0] == '\0' && check_totals(&w) < 0)
		goto out;
	v->open_pending = w.open_pending;
	rc = v->why[0] != '\0';
out:
	if (rc < 0)
		snprintf(v->why, sizeof(v->why), "%s", sqlite3_errmsg(db));
	sqlite3_finalize(w.entries);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	free(w.acct);
	return rc;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* "SEQ:HEX" of an earlier head. 0, or -1. */
static int
anchor_parse(const char *s, int64_t *seq, uint8_t hash[LEDGER_HASH_LEN])
{
	char *end;
	long long n = strtoll(s, &end, 10);

	if (end == s || *end != ':' || n < 1 || strlen(end + 1) != 2 * LEDGER_HASH_LEN)
		return -1;
	for (size_t i = 0; i < LEDGER_HASH_LEN; i++) {
		unsigned int b;

		if (sscanf(end + 1 + 2 * i, "%2x", &b) != 1 || strchr("0123456789abcdefABCDEF",
		    end[1 + 2 * i]) == NULL || strchr("0123456789abcdefABCDEF", end[2 + 2 * i]) == NULL)
			return -1;
		hash[i] = (uint8_t)b;
	}
	*seq = n;
	return 0;
}

static void
verify_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-ledger verify [-f config] [--anchor SEQ:HASH]\n"
	    "Walk the hash chain of ledger.db, recompute every row's hash and every\n"
	    "account's balance from the hashed legs, and compare them with the entries,\n"
	    "the cached balances and the trial balance. Prints the first broken sequence\n"
	    "number, if any. --anchor checks a head published earlier (`cn2-ledger head`).\n\n"
	    "  -f file            configuration file (default /etc/cn2/ledger.conf)\n"
	    "  --anchor SEQ:HASH  the sequence number and hex hash of an earlier head\n"
	    "  -h, --help         this text\n\n"
	    "Exit status: 0 intact, 1 broken, 2 cannot read.\n");
}

/*
 * The common start of verify and head: options, configuration, read-only
 * handle. NULL with *status 0 after --help, 2 after saying what is wrong.
 */
static sqlite3 *
open_books(int argc, char **argv, struct tool_ctx *t, const char *tool, const char **anchor,
    void (*usage)(FILE *), int *status)
{
	static const struct option longopts[] = {
	    {"anchor", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char err[512];
	sqlite3 *db;
	int ch;

	optind = 1;
	*status = 2;
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		if (ch == 'f')
			t->config_path = optarg;
		else if (ch == 'a' && anchor != NULL)
			*anchor = optarg;
		else {
			*status = ch == 'h' ? 0 : 2;
			usage(ch == 'h' ? stdout : stderr);
			return NULL;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return NULL;
	}
	if (tool_config(t, tool) != 0)
		return NULL;
	if ((db = ledger_db_open_readonly(t->cfg->database, err, sizeof(err))) == NULL)
		fprintf(stderr, "cn2-ledger %s: %s\n", tool, err);
	return db;
}

static void
head_usage(FILE *fp)
{
	fprintf(fp, "usage: cn2-ledger head [-f config]\n"
		    "Print the chain head as one line of JSON, to publish or store elsewhere;\n"
		    "`cn2-ledger verify --anchor SEQ:HASH` checks the books against it later.\n");
}

static void
verify_print(const struct verify_result *v)
{
	char h[2 * LEDGER_HASH_LEN + 1];

	hex(v->head, LEDGER_HASH_LEN, h);
	printf("ok: transfers %" PRId64 "..%" PRId64 " chained and hashed, head %" PRId64 " %s\n",
	    v->first, v->last, v->last, v->last >= v->first ? h : "(none)");
	printf("ok: %" PRId64 " accounts recomputed from the legs; entries, cached balances and the"
	       " trial balance agree; total 0\n",
	    v->accounts);
	printf("ok: %" PRId64 " µUSD in open pending transfers\n", v->open_pending);
}

int
verify_main(int argc, char **argv, struct tool_ctx *t)
{
	struct verify_result v;
	const char *anchor = NULL;
	uint8_t ahash[LEDGER_HASH_LEN];
	int64_t aseq = 0;
	sqlite3 *db;
	int rc;

	if ((db = open_books(argc, argv, t, "verify", &anchor, verify_usage, &rc)) == NULL)
		return rc;
	if (anchor != NULL && anchor_parse(anchor, &aseq, ahash) != 0) {
		fprintf(stderr, TOOL ": --anchor wants SEQ:<64 hex digits>\n");
		sqlite3_close(db);
		return 2;
	}
	rc = verify_books(db, aseq, ahash, &v);
	sqlite3_close(db);
	if (rc < 0) {
		fprintf(stderr, TOOL ": %s\n", v.why);
		return 2;
	}
	if (rc == 0) {
		verify_print(&v);
		return 0;
	}
	if (v.broken_seq > 0) {
		printf("BROKEN at sequence number %" PRId64 ": %s\n", v.broken_seq, v.why);
		printf("first broken sequence number: %" PRId64 "\n", v.broken_seq);
	} else
		printf("BROKEN: %s\n", v.why);
	return 1;
}

int
head_main(int argc, char **argv, struct tool_ctx *t)
{
	sqlite3_stmt *st;
	char h[2 * LEDGER_HASH_LEN + 1], when[RFC3339_BUFSZ];
	sqlite3 *db;
	int rc;

	if ((db = open_books(argc, argv, t, "head", NULL, head_usage, &rc)) == NULL)
		return rc;
	st = db_prepare(db, "SELECT seq, hash, created FROM transfers ORDER BY seq DESC LIMIT 1");
	if ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 1) == LEDGER_HASH_LEN &&
	    rfc3339_format(sqlite3_column_int64(st, 2) / 1000, when, sizeof(when)) >= 0) {
		hex(sqlite3_column_blob(st, 1), LEDGER_HASH_LEN, h);
		printf("{\"ledger\":\"cn2\",\"seq\":%" PRId64 ",\"hash\":\"%s\",\"created\":\"%s\","
		       "\"anchor\":\"%" PRId64 ":%s\"}\n",
		    (int64_t)sqlite3_column_int64(st, 0), h, when, (int64_t)sqlite3_column_int64(st, 0),
		    h);
		rc = 0;
	} else {
		fprintf(stderr, "cn2-ledger head: %s\n", rc == SQLITE_DONE ? "the books are empty" :
									      sqlite3_errmsg(db));
		rc = rc == SQLITE_DONE ? 1 : 2;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}
