/*
 * payments.h — cn2-payments's private interfaces.
 *
 *   setup.c       start and stop: secrets, payments.db, the write queue, the sweep timer
 *   store.c       payments.db: schema and every read and write of its rows
 *   methods.c     the payment methods on offer and their proofs (only "test" so far)
 *   accept.c      Accept-Payment: which offers the buyer takes, in its order
 *   challenge.c   CHALLENGE, fresh challenges and problem replies (PAY_REQUIRED)
 *   check.c       the pure credential checks of VERIFY, in PROTOCOL.md's order
 *   verify.c      VERIFY: check, reserve, ledger pending, ticket
 *   settle.c      SETTLE: capture or release, receipt
 *   ledger_link.c requests to the ledger, and the outbox of postings still owed to it
 *   sweep.c       releasing reservations the edge never settled
 */
#ifndef CN2_PAYMENTS_H
#define CN2_PAYMENTS_H

#include <sqlite3.h>
#include <stdint.h>
#include <uv.h>

#include "common/daemon.h"
#include "common/dbq.h"
#include "common/mpp.h"

struct payments_cfg {
	char database[256];
	char challenge_secret_file[256];
	char ticket_secret_file[256];
	char test_secret_file[256]; /* "": the test method is off */
	int64_t challenge_ttl_s;
	int64_t ticket_ttl_s;
	int64_t reservation_timeout_s;
	int64_t sweep_interval_s;
	int64_t ledger_timeout_ms;
};

/* A secret as read from its file (the ASCII bytes are the HMAC key). */
#define PAY_SECRET_MAX 128
struct pay_secret {
	uint8_t key[PAY_SECRET_MAX];
	size_t len; /* 0: not configured */
};

/* The secrets the checks use; plain data, so tests can build one. */
struct pay_keys {
	struct pay_secret challenge; /* challenge ids */
	struct pay_secret ticket;    /* tickets out, awards in (shared with the router) */
	struct pay_secret test;	     /* the test method's proofs; len 0: method off */
};

struct pay_call;

struct payments {
	const struct payments_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	struct pay_keys keys;
	uv_timer_t sweep;
	struct pay_call *calls; /* ledger requests awaiting a reply */
	size_t writes;		/* queued writes whose done() has not run */
	size_t outbox_open;	/* outbox postings in flight */
	int stopping;
};

/* setup.c */
int payments_start(struct payments *s, struct daemon *d, const struct payments_cfg *cfg,
    char *err, size_t errlen);
void payments_stop(struct payments *s);
void payments_health(struct payments *s, struct ipc_health_rep *rep);
void payments_link(struct payments *s, enum ipc_role peer, int up);
void payments_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);
/* Queue a write on the group commit; 0, or -1 (done not called) when out of memory. */
int pay_write(struct payments *s, dbq_apply_fn apply, dbq_done_fn done, void *arg);

/* The problems a buyer can be told about (PROTOCOL.md "Errors", and cn2's own). */
enum pay_problem {
	PP_NONE = 0,
	PP_PAYMENT_REQUIRED,
	PP_MALFORMED_CREDENTIAL,
	PP_INVALID_CHALLENGE,
	PP_VERIFICATION_FAILED,
	PP_PAYMENT_INSUFFICIENT,
	PP_PAYMENT_EXPIRED,
	PP_INVALID_PAYLOAD,
	PP_METHOD_UNSUPPORTED,
	PP_MULTIPLE_CREDENTIALS,
	PP_PAYMENT_IN_FLIGHT,
	PP_LEDGER_UNAVAILABLE,
	PP_NO_PAYMENT_METHOD,
	PP_MAX,
};

/* HTTP status, problem type URL and title of p. */
int pay_problem_status(enum pay_problem p);
const char *pay_problem_type(enum pay_problem p);
const char *pay_problem_title(enum pay_problem p);

/* methods.c: each method cn2 can take, and whether this process offers it. */
#define PAY_MAX_METHODS 4
struct pay_method {
	const char *name;
	const char *intent;
	const char *currency;
	int (*enabled)(const struct pay_keys *k);
	/* PP_NONE if payload proves payment of challenge id; else the problem. */
	enum pay_problem (*verify)(const struct pay_keys *k, const cJSON *payload, const char *id);
};
extern const struct pay_method pay_methods[];
extern const size_t pay_nmethods;
/* The method named name if this process offers it, else NULL. */
const struct pay_method *pay_method_offered(const struct pay_keys *k, const char *name);

/*
 * accept.c: order the n offers (name/intent pairs) by an Accept-Payment
 * value. Writes the indices of the acceptable ones, best first, into idx
 * and returns how many. An empty or unreadable header accepts every offer
 * in its own order; q=0 refuses; an offer no element matches is refused.
 */
size_t pay_accept_order(const char *accept, const char *const *names,
    const char *const *intents, size_t n, size_t *idx);

/*
 * challenge.c. The challenges this process offers for (realm, amount),
 * filtered and ordered by accept: one WWW-Authenticate value per line in
 * *www (caller frees) and the first one's id. *acceptable is 0 when the
 * buyer accepts none of them (then *www holds them all). 0, or -1 when no
 * method is enabled or building fails.
 */
int pay_challenges(struct payments *s, const char *realm, int64_t amount, const char *accept,
    int64_t now, char **www, char id[MPP_ID_BUFSZ], int *acceptable);
/*
 * Answer req with PAY_REQUIRED for problem p: problem+json body with detail,
 * and (except for PP_LEDGER_UNAVAILABLE) fresh challenges for this
 * realm/amount. Falls back to ERROR when it cannot build the answer.
 */
void pay_reply_problem(struct payments *s, const struct ipc_req *req, enum pay_problem p,
    const char *detail, const char *realm, int64_t amount, const char *accept);
void pay_on_challenge(struct payments *s, const struct ipc_req *req,
    const struct ipc_challenge *m);

/* check.c: the outcome of checking a credential, without touching any state. */
struct pay_verdict {
	enum pay_problem problem; /* PP_NONE: it pays for this request */
	const char *detail;	  /* static text for the buyer (no input echoed) */
	char id[IPC_ID_MAX + 1];
	char method[IPC_METHOD_MAX + 1];
	int64_t paid;	 /* µUSD, from the echoed request */
	int64_t expires; /* the challenge's, unix seconds */
};
void pay_check(const struct pay_keys *k, const struct ipc_verify *v, int64_t now,
    struct pay_verdict *out);

/* verify.c, settle.c */
void pay_on_verify(struct payments *s, const struct ipc_req *req, const struct ipc_verify *m);
void pay_on_settle(struct payments *s, const struct ipc_req *req, const struct ipc_settle *m);

/* A payment's row, as settle needs it. */
enum pay_state { PAY_RESERVED, PAY_CAPTURED, PAY_RELEASED };
struct pay_row {
	enum pay_state state;
	char method[IPC_METHOD_MAX + 1];
	int64_t amount;
	char xfer_id[72];
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	int64_t seller_amount;
	int64_t receipt_ts;
};

/* What a SETTLE does to a row (settle.c; pure, for unit tests). */
enum pay_settle_action {
	SA_CAPTURE,	   /* reserved → captured, post to the ledger */
	SA_RELEASE,	   /* reserved → released, void in the ledger */
	SA_SAME_CAPTURE,   /* captured already, with these fields: the same receipt again */
	SA_SAME_RELEASE,   /* released already: nothing to do */
	SA_UNKNOWN,	   /* no such payment */
	SA_CONFLICT,	   /* captured or released the other way, or with other fields */
	SA_OVER_AMOUNT,	   /* the seller's price exceeds what was paid */
};
enum pay_settle_action pay_settle_decide(const struct pay_row *row, const struct ipc_settle *m);

/* store.c: open payments.db (WAL, synchronous=FULL, quick_check, migrations); NULL + err. */
sqlite3 *pay_store_open(const char *path, char *err, size_t errlen);
enum pay_reserve { RES_NEW, RES_AGAIN, RES_IN_FLIGHT, RES_USED };
struct pay_reservation {
	const char *id, *method, *realm, *provider;
	int64_t amount, expires;
};
int pay_store_reserve(sqlite3 *db, const struct pay_reservation *r, int64_t now,
    enum pay_reserve *res, char xfer_id[72]);
int pay_store_get(sqlite3 *db, const char *id, struct pay_row *row); /* 1, 0 absent, -1 */
/* reserved → captured, and a post owed to the ledger. */
int pay_store_capture(sqlite3 *db, const char *id, const struct ipc_settle *m, int64_t now);
/* reserved → released; a void owed to the ledger when void_due (it may hold a pending). */
int pay_store_release(sqlite3 *db, const char *id, int void_due, int64_t now);
/* Release reservations untouched since before cutoff (at most limit); count in *n. */
int pay_store_release_stale(sqlite3 *db, int64_t cutoff, int64_t now, int limit, int *n);

/* The ledger's transfer id for attempt n of payment id. */
void pay_xfer_id(const char *id, int64_t attempt, char out[72]);

/* The outbox: postings the ledger still has to acknowledge. */
enum pay_outbox_op { OB_POST, OB_VOID };
struct pay_outbox_row {
	char xfer_id[72];
	enum pay_outbox_op op;
	char seller_id[IPC_ID_MAX + 1];
	int64_t seller_amount;
};
int pay_outbox_done(sqlite3 *db, const char *xfer_id);
int pay_outbox_failed(sqlite3 *db, const char *xfer_id);
/* Up to max rows still owed (and not given up on) into rows; their number, or -1. */
int pay_outbox_list(sqlite3 *db, struct pay_outbox_row *rows, int max);

/* ledger_link.c */
enum pay_ledger_result {
	LR_ACK,	    /* the ledger recorded it */
	LR_REFUSED, /* the ledger answered no: retrying the same will not help */
	LR_LOST,    /* no answer (timeout, closed, stopping): it may or may not have landed */
};
typedef void (*pay_ledger_fn)(void *arg, enum pay_ledger_result r);
/* Send a LEDGER_* request; 0, or -1 when the ledger is not connected (done not called). */
int pay_ledger_send(struct payments *s, uint16_t type, const void *msg, pay_ledger_fn done,
    void *arg);
/* At stop: forget every open request, telling each caller LR_LOST. */
void pay_ledger_cancel_all(struct payments *s);
/* Send what the outbox holds (after a sweep, or when the ledger link comes up). */
void pay_outbox_flush(struct payments *s);
/* Send one posting now (after a capture or release); the outbox keeps it until ACK. */
void pay_outbox_send(struct payments *s, const struct pay_outbox_row *row);

/* sweep.c */
void pay_sweep_start(struct payments *s);
void pay_sweep_stop(struct payments *s);

#endif
