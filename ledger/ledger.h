/*
 * ledger.h — cn2-ledger's private interfaces.
 *
 * The ledger is double-entry and append-only (DESIGN.md §4). Every payment is
 * a two-phase transfer: a pending row moves the buyer's money from
 * clearing:<method> to escrow; later one resolving row either posts it (escrow
 * to seller:<id> earnings and platform:fees) or voids it (escrow back to
 * clearing). Rows are never changed; the database itself refuses UPDATE,
 * DELETE, unbalanced legs and a second resolution (store.c has the schema).
 *
 * Sign convention: an entry's amount is what its account gains, so a debit is
 * negative, a credit positive, each transfer's entries sum to zero, and the
 * balances of all accounts always sum to zero.
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
#define LEDGER_ID_MAX 80   /* transfer ids: an xfer_id and ":post" fit */
#define LEDGER_NAME_MAX 80 /* account names: "seller:" and a seller id fit */
#define LEDGER_LEGS_MAX 512 /* a transfer's legs as canonical JSON text */

struct ledger_cfg {
	char database[256];
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

/* store.c: ledger.db, its schema and the daemon's start and stop. */

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
	const char *kind; /* "pending", "post" or "void" */
	char pending_id[LEDGER_ID_MAX + 1]; /* "" for a pending transfer */
	char payment_ref[LEDGER_ID_MAX + 1];
	char debit[LEDGER_NAME_MAX + 1];
	char credit[LEDGER_NAME_MAX + 1];
	int64_t amount;
	char legs[LEDGER_LEGS_MAX];
	int64_t created; /* unix milliseconds */
	uint8_t prev_hash[LEDGER_HASH_LEN];
	uint8_t hash[LEDGER_HASH_LEN];
};

/* chain.c: the hash chain over transfers. */

/* Longest canonical text of a row, NUL included. */
#define CHAIN_CANON_MAX (6 * (LEDGER_ID_MAX + 1) + LEDGER_LEGS_MAX + 3 * 21 + 16)

/*
 * Write the row's canonical text (the v_chain view computes the same in SQL):
 * seq, id, kind, pending_id, payment_ref, debit, credit, amount, legs and
 * created, each followed by "\n". Returns its length, or -1 if cap is short.
 */
int chain_canonical(const struct ledger_xfer *x, char *buf, size_t cap);
/* x->hash = SHA-256(x->prev_hash || canonical text). 0, or -1 if that fails. */
int chain_hash(struct ledger_xfer *x);

/* journal.c: the three writes, each run inside a transaction the caller owns. */

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

/*
 * Each returns 0, or -1 when r->status is JOURNAL_FAILED (so it can be a
 * dbq_apply_fn's answer). now_ms stamps a new row.
 */
int journal_pending(struct journal *j, const struct ipc_ledger_pending *m, int64_t now_ms,
    struct journal_result *r);
int journal_post(struct journal *j, const struct ipc_ledger_post *m, int64_t now_ms,
    struct journal_result *r);
int journal_void(struct journal *j, const struct ipc_ledger_void *m, int64_t now_ms,
    struct journal_result *r);

/* request.c: the daemon's message handler (LEDGER_PENDING, _POST, _VOID). */
void ledger_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

/* balances.c: `cn2-ledger balances`. */

/*
 * Print the trial balance of db to out: one line per account (name, µUSD,
 * USD), then the total. Returns 0 when the total is zero, 1 when it is not,
 * and -1 (reason on err) when the database cannot be read.
 */
int balances_report(sqlite3 *db, FILE *out, FILE *err);
/*
 * The subcommand: argv[0] is "balances". keys and cfg are the daemon's own
 * configuration table and struct. Returns the exit status.
 */
int balances_main(int argc, char **argv, const struct cfg_key *keys, struct ledger_cfg *cfg);

#endif
