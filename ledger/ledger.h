/*
 * ledger.h — cn2-ledger's private interfaces.
 *
 * The ledger is double-entry and append-only (DESIGN.md §4, docs/ledger.md).
 * Every payment is a two-phase transfer: a pending row moves the buyer's money
 * from clearing:<method> to escrow; later one resolving row either posts it
 * (escrow to seller:<id> earnings, platform:fees and platform:premium) or
 * voids it (escrow back to clearing). A dispute moves a captured payment's
 * seller share (and the platform's share, through platform:refunds) into
 * reserve:disputes, and its resolution either returns both or refunds the
 * whole payment to the buyer's clearing account. A payout moves a seller's
 * available earnings to payouts:<method>; a reversal moves it back. Rows are
 * never changed; the database itself refuses UPDATE, DELETE (but the
 * retention sweep's), unbalanced legs and a second resolution (schema.c).
 *
 * Sign convention: an entry's amount is what its account gains, so a debit is
 * negative, a credit positive, each transfer's entries sum to zero, and the
 * balances of all accounts always sum to zero.
 *
 *   schema.c    the migrations: tables, triggers, views
 *   store.c     opening ledger.db; the daemon's start, stop and health
 *   chain.c     the SHA-256 chain over transfer rows
 *   journal.c   recording transfers: pending, post, void, and what the others share
 *   dispute.c   disputes: open, resolve, read
 *   payout.c    payout batches and reversals, and `cn2-ledger payout`
 *   earnings.c  a seller's earnings: available, pending, in dispute, paid out
 *   request.c   the daemon's IPC messages, each one write of a group commit
 *   tools.c     the auditor's command line: configuration, dispatch
 *   balances.c  `cn2-ledger balances`
 *   verify.c    `cn2-ledger verify` and `cn2-ledger head`
 *   export.c    `cn2-ledger export`
 *   prune.c     `cn2-ledger prune`: the seven-year retention sweep
 */
#ifndef CN2_LEDGER_H
#define CN2_LEDGER_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#include "common/daemon.h"

/* The largest amount one transfer may move: 10^9 USD, so that sums never overflow. */
#define LEDGER_AMOUNT_MAX 1000000000000000LL
#define LEDGER_HASH_LEN 32
#define LEDGER_ID_MAX 80    /* transfer ids: an xfer_id and ":post" fit */
#define LEDGER_NAME_MAX 80  /* account names: "seller:" and a seller id fit */
#define LEDGER_LEGS_MAX 512 /* a transfer's legs as canonical JSON text */
#define LEDGER_BATCH_MAX 12 /* payout batch ids: "po/" batch "/" seller fits LEDGER_ID_MAX */
/* The first schema version the tools read: linked transfers, cached balances, retention. */
#define LEDGER_SCHEMA_TOOLS 3

struct ledger_cfg {
	char database[256];
	int64_t earnings_hold_s;	     /* earnings younger than this are pending */
	int64_t payout_threshold;	     /* µUSD: smaller available earnings wait */
	char payout_method[IPC_METHOD_MAX + 1]; /* payouts:<method> */
};

struct journal;
struct dbq;

struct ledger {
	const struct ledger_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct journal *j;
	struct dbq *q;
};

/* schema.c */
const char *const *ledger_migrations(size_t *n);

/* store.c: ledger.db and the daemon's start and stop. */

/* Open (creating and migrating) ledger.db with synchronous=FULL. NULL and err on failure. */
sqlite3 *ledger_db_open(const char *path, char *err, size_t errlen);
/* Open an existing ledger.db read-only for the tools; checks its schema version. */
sqlite3 *ledger_db_open_readonly(const char *path, char *err, size_t errlen);
int ledger_start(struct ledger *s, struct daemon *d, const struct ledger_cfg *cfg, char *err,
    size_t errlen);
void ledger_stop(struct ledger *s);
void ledger_health(struct ledger *s, struct ipc_health_rep *rep);

/* One transfer row, as journal.c writes it and chain.c hashes it. */
struct ledger_xfer {
	int64_t seq;
	char id[LEDGER_ID_MAX + 1];
	const char *kind; /* "pending", "post", "void", "dispute", … (schema.c) */
	char pending_id[LEDGER_ID_MAX + 1]; /* the row this one resolves, "" if none */
	char payment_ref[LEDGER_ID_MAX + 1];
	char debit[LEDGER_NAME_MAX + 1];
	char credit[LEDGER_NAME_MAX + 1];
	int64_t amount;
	char legs[LEDGER_LEGS_MAX];
	int64_t created; /* unix milliseconds */
	char link[LEDGER_ID_MAX + 1]; /* a linked group's id, "" if not linked */
	int64_t link_len;	      /* the group's size; 0 if not linked */
	uint8_t prev_hash[LEDGER_HASH_LEN];
	uint8_t hash[LEDGER_HASH_LEN];
};

/* chain.c: the hash chain over transfers. */

/* Longest canonical text of a row, NUL included. */
#define CHAIN_CANON_MAX (7 * (LEDGER_ID_MAX + 1) + LEDGER_LEGS_MAX + 4 * 21 + 16)

/*
 * Write the row's canonical text (the v_chain view computes the same in SQL):
 * seq, id, kind, pending_id, payment_ref, debit, credit, amount, legs and
 * created, each followed by "\n", then link and link_len the same way if the
 * row is linked. Returns its length, or -1 if cap is short.
 */
int chain_canonical(const struct ledger_xfer *x, char *buf, size_t cap);
/* x->hash = SHA-256(x->prev_hash || canonical text). 0, or -1 if that fails. */
int chain_hash(struct ledger_xfer *x);

/* journal.c: writes, each run inside a transaction the caller owns. */

enum journal_status {
	JOURNAL_DONE,	 /* a transfer row was written */
	JOURNAL_SAME,	 /* an identical request was already recorded: nothing written */
	JOURNAL_REFUSED, /* invalid, or conflicts with what is recorded: detail says why */
	JOURNAL_FAILED,	 /* the database failed: roll back */
};

struct journal_result {
	enum journal_status status;
	char detail[200];
};

/* Prepared statements on db; NULL if out of memory. Free before closing db. */
struct journal *journal_new(sqlite3 *db);
void journal_free(struct journal *j);
sqlite3 *journal_db(struct journal *j);

/*
 * Each returns 0, or -1 when r->status is JOURNAL_FAILED (so it can be a
 * dbq_apply_fn's answer). now_ms stamps a new row.
 */
int journal_pending(struct journal *j, const struct ipc_ledger_pending *m, int64_t now_ms,
    struct journal_result *r);
int journal_post(struct journal *j, const struct ipc_ledger_post *m, int64_t now_ms,
    struct journal_result *r);
int journal_post_split(struct journal *j, const struct ipc_ledger_post_split *m, int64_t now_ms,
    struct journal_result *r);
int journal_void(struct journal *j, const struct ipc_ledger_void *m, int64_t now_ms,
    struct journal_result *r);

/* What dispute.c and payout.c share with journal.c. */

struct journal_leg {
	const char *account;
	int64_t amount;
};

/* A transfer as read back: what idempotency and resolution compare against. */
struct journal_row {
	int64_t seq;
	char kind[16];
	char pending_id[LEDGER_ID_MAX + 1];
	char payment_ref[LEDGER_ID_MAX + 1];
	char debit[LEDGER_NAME_MAX + 1];
	char credit[LEDGER_NAME_MAX + 1];
	int64_t amount;
	char legs[LEDGER_LEGS_MAX];
	int64_t created;
};

/* Printable ASCII without blanks, quotes or backslashes, 1..max bytes. */
int journal_token_ok(const char *s, size_t max);
/* A payment method name: [a-z0-9][a-z0-9_-]*, at most IPC_METHOD_MAX. */
int journal_method_ok(const char *s);
/* 1 and *row when a transfer has this id, 0 when none, -1 on a database error. */
int journal_find(struct journal *j, const char *id, struct journal_row *row);
/* The amount of account's leg in legs text, 0 if it has none. */
int64_t journal_leg_amount(const char *legs, const char *account);
/* Create the account on first use. 0, or -1 on a database error. */
int journal_account(struct journal *j, const char *name, const char *kind, int64_t now_ms);
/* The legs as canonical JSON, zero legs left out. 0, or -1 if they do not fit. */
int journal_legs(char *buf, size_t cap, const struct journal_leg *legs, size_t n);
/* Read the chain's head, link x to it, hash it, insert it. 0 or -1. */
int journal_insert(struct journal *j, struct ledger_xfer *x);
/* The same for a two-leg transfer: legs [debit, -amount], [credit, amount] first. */
int journal_insert_pair(struct journal *j, struct ledger_xfer *x);
/* A text column into dst ("" for NULL), truncated to cap. */
void journal_col_text(sqlite3_stmt *st, int col, char *dst, size_t cap);
void journal_xfer_init(struct ledger_xfer *x, const char *kind, int64_t now_ms);
void journal_result_init(struct journal_result *r);
/* Set r: refused with a reason. Returns 0. */
int journal_refuse(struct journal_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Another request under the same id: refuse it, and log it for the operator. Returns 0. */
int journal_conflict(struct journal_result *r, const char *what, const char *id);
/* The database failed: log it, set r. Returns -1. */
int journal_fail(struct journal *j, struct journal_result *r, const char *what, const char *id);
/* The same request was recorded before: answer as if done now. Returns 0. */
int journal_same(struct journal_result *r);

/* dispute.c */

/*
 * Open dispute m->dispute_id against the captured payment m->payment_ref, or
 * resolve one. On DONE or SAME, *rep describes the dispute as recorded.
 */
int dispute_open(struct journal *j, const struct ipc_dispute_open *m, int64_t now_ms,
    struct journal_result *r, struct ipc_dispute_rep *rep);
int dispute_resolve(struct journal *j, const struct ipc_dispute_resolve *m, int64_t now_ms,
    struct journal_result *r, struct ipc_dispute_rep *rep);
/* Read a dispute: 1 with *rep, 0 if there is none, -1 on a database error. */
int dispute_get(sqlite3 *db, const char *dispute_id, struct ipc_dispute_rep *rep);

/* earnings.c */

/*
 * A seller's earnings at now_ms with a hold of hold_s seconds: 0 with *rep
 * (all zero for a seller who never earned), -1 on a database error.
 */
int earnings_get(sqlite3 *db, const char *seller_id, int64_t hold_s, int64_t now_ms,
    struct ipc_earnings_rep *rep);

/* payout.c */

struct payout_batch {
	char batch[LEDGER_BATCH_MAX + 1];	/* [A-Za-z0-9_-], 1..12 */
	char method[IPC_METHOD_MAX + 1];	/* payouts:<method> */
	int64_t threshold;			/* µUSD; at least 1 */
	int64_t hold_s;
	/* Filled in: the batch as recorded (now, or before when SAME). */
	size_t count;
	int64_t total;
};

/*
 * Record a payout transfer, linked in one group, for every seller whose
 * available earnings reach the threshold. A batch id recorded before is
 * answered SAME with its count and total (a different method is a conflict).
 * out, if not NULL, gets one line per payout.
 */
int payout_record(struct journal *j, struct payout_batch *b, int64_t now_ms,
    struct journal_result *r, FILE *out);
/* Reverse payout payout_id ("po/<batch>/<seller>") with a new transfer. */
int payout_reverse(struct journal *j, const char *payout_id, int64_t now_ms,
    struct journal_result *r);

/* request.c: the daemon's message handler. */
void ledger_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

/* tools.c: the command line. */

struct tool_ctx {
	const struct cfg_key *keys; /* the daemon's own configuration table */
	struct ledger_cfg *cfg;
	const char *config_path;
};

/* Is argv1 the name of a tool (rather than a daemon option)? */
int tool_is(const char *argv1);
/* Run the tool argv[0]. Returns its exit status: 0 ok, 1 a finding, 2 cannot run. */
int tool_main(int argc, char **argv, const struct cfg_key *keys, struct ledger_cfg *cfg);
/* Load t->config_path into t->cfg; 0, or -1 after saying why on stderr. */
int tool_config(struct tool_ctx *t, const char *tool);
/* Parse a time for --from, --to and --before: RFC 3339, or YYYY-MM-DD (UTC midnight). */
int tool_time(const char *s, int64_t *unix_ms);

/* The tools, each with argv[0] its own name. */
int balances_main(int argc, char **argv, struct tool_ctx *t);
int verify_main(int argc, char **argv, struct tool_ctx *t);
int head_main(int argc, char **argv, struct tool_ctx *t);
int export_main(int argc, char **argv, struct tool_ctx *t);
int payout_main(int argc, char **argv, struct tool_ctx *t);
int prune_main(int argc, char **argv, struct tool_ctx *t);

/* balances.c */

/*
 * Print the trial balance of db to out: one line per account (name, µUSD,
 * USD), then the total. Returns 0 when the total is zero, 1 when it is not,
 * and -1 (reason on err) when the database cannot be read.
 */
int balances_report(sqlite3 *db, FILE *out, FILE *err);

/* verify.c */

struct verify_result {
	int64_t broken_seq;  /* the first broken sequence number, 0 if none */
	char why[256];	     /* what is wrong there, or elsewhere (an account, the head) */
	int64_t first, last; /* the transfers walked */
	int64_t accounts;
	int64_t open_pending; /* µUSD in pending transfers not yet posted or voided */
	uint8_t head[LEDGER_HASH_LEN];
};

/*
 * Walk the chain of db from the checkpoint (or the first row), recompute
 * every hash and every balance from the hashed legs, and compare them with
 * the entries, the cached balances and, if anchor_seq > 0, the anchor's hash.
 * Returns 0 when all is well, 1 with *v saying what is broken, -1 when the
 * database cannot be read (reason in v->why).
 */
int verify_books(sqlite3 *db, int64_t anchor_seq, const uint8_t *anchor_hash,
    struct verify_result *v);

/* export.c: transfers created in [from_ms, to_ms) as CSV (RFC 4180). 0, or -1. */
int export_csv(sqlite3 *db, int64_t from_ms, int64_t to_ms, int64_t max_seq, FILE *out);

/* prune.c */

/*
 * The retention sweep: archive (as export_csv) and delete the oldest
 * transfers created before cutoff_ms, which must be at least seven years ago,
 * carrying their entries into opening balances. Never cuts through a linked
 * group or anything a younger row refers to or may still resolve. *swept is
 * the number of transfers deleted. Runs its own transaction. 0, or -1 with
 * err.
 */
int prune_books(sqlite3 *db, int64_t cutoff_ms, FILE *archive, int64_t now_ms, int64_t *swept,
    char *err, size_t errlen);
/* Seven calendar years before now_ms, as SQLite's triggers compute it. */
int64_t prune_floor(sqlite3 *db);

#endif
