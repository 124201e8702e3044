/*
 * ledger_peer.h — the ledger's scenario tests talk to cn2-ledger as its
 * peers do (payments, platform-api), read ledger.db as an auditor would,
 * and run the `cn2-ledger` tools. Built on harness.h.
 */
#ifndef CN2_TEST_LEDGER_PEER_H
#define CN2_TEST_LEDGER_PEER_H

#include <stdint.h>

#include "tests/scenario/harness.h"

/* The answer to one request: its type (0 if none came), an ERROR's code and detail, the reply. */
struct lp_answer {
	uint16_t type;
	uint16_t code; /* ERROR's code, or the ipc status when no reply came */
	char detail[256];
	union ipc_any msg; /* DISPUTE_REP, EARNINGS_REP: no byte strings, safe to copy */
};

/* One request, waited for (5 s). */
struct lp_answer lp_call(struct h_ipc *h, uint16_t type, const void *msg);

/* The messages, filled in from their fields. */
void lp_pending_msg(struct ipc_ledger_pending *m, const char *id, const char *ref,
    const char *method, int64_t amount);
void lp_post_msg(struct ipc_ledger_post_split *m, const char *id, const char *seller,
    int64_t share, int64_t premium);
void lp_void_msg(struct ipc_ledger_void *m, const char *id);
void lp_open_msg(struct ipc_dispute_open *m, const char *id, const char *ref);
void lp_resolve_msg(struct ipc_dispute_resolve *m, const char *id, int outcome);

/* Requests in flight, answered in any order. */
struct lp_flight {
	int done;
	int status;    /* 0, or the ipc error when no reply came */
	uint16_t type; /* the reply's type */
	uint16_t code; /* an ERROR's code */
};

/* Send without waiting; f is filled when the answer comes. 0, or -1 (f then done, unsent). */
int lp_send(struct h_ipc *h, uint16_t type, const void *msg, struct lp_flight *f);
/* Run the loop until the n flights are done or ms pass. The number done. */
size_t lp_wait(struct h_ipc *h, const struct lp_flight *f, size_t n, int ms);
/* Run the loop once, without blocking. */
void lp_turn(struct h_ipc *h);
int lp_acked(const struct lp_flight *f); /* answered with the reply a success gets */

/* An integer from ledger.db (read-only, beside the daemon); INT64_MIN if NULL or none. */
int64_t lp_db_int(struct h_env *e, const char *sql, const char *arg);
/* The v_balances balance of an account (INT64_MIN if there is none). */
int64_t lp_balance(struct h_env *e, const char *account);

/*
 * Run `cn2-ledger <args…> -f <dir>/etc/ledger.conf` (args NULL-terminated);
 * its stdout in *out (caller frees), stderr to the daemons' log. The exit status.
 */
int lp_tool(struct h_env *e, char **out, const char *tool, ...);

/*
 * Run argv (argv[0] a path): its stdout in *out (caller frees), its stderr
 * into errpath (truncated), or appended to the daemons' log if NULL. The
 * exit status, or -1.
 */
int lp_exec(struct h_env *e, char *const argv[], char **out, const char *errpath);

/* Append lines to <dir>/etc/<daemon>.conf. 0, or -1. */
int lp_conf_append(struct h_env *e, const char *daemon, const char *lines);

/*
 * A fresh directory (h_init), lines appended to ledger.conf (or NULL),
 * cn2-ledger started, and pay and plat linked to it as payments and
 * platform-api. 0, or -1.
 */
int lp_up(struct h_env *e, const char *ledger_conf, struct h_ipc *pay, struct h_ipc *plat);
/* Close pay and plat, then h_down. h_down's answer. */
int lp_down(struct h_env *e, struct h_ipc *pay, struct h_ipc *plat);

#endif
