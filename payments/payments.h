/*
 * payments.h — cn2-payments's private interfaces.
 *
 *   setup.c       start, reload (secret rotation) and stop; message dispatch
 *   bolt11.c      BOLT #11 invoices, decoded strictly (lightning.c checks LND's)
 *   policy.c      buyers refused by policy (403)
 *   refund.c      Stripe charges for requests never served, refunded
 *   store.c       payments.db: schema and the payment state machine
 *   extras.c      payments.db: invoices, transaction hashes, buyers, idempotency
 *   methods.c     the method table, and the test method
 *   lightning.c   lightning: invoices through LND's REST API, preimage proofs
 *   stripe.c      stripe: Shared Payment Tokens through PaymentIntents
 *   tempo.c       tempo: push-mode TIP-20 transfers, receipts over JSON-RPC
 *   accept.c      Accept-Payment: which offers the buyer takes, in its order
 *   challenge.c   CHALLENGE, fresh challenges and every problem answer
 *   check.c       the pure credential checks of VERIFY, in PROTOCOL.md's order
 *   verify.c      VERIFY: check, reserve, method proof, ledger pending, ticket
 *   settle.c      SETTLE: capture or release, receipt
 *   ledger_link.c requests to the ledger, and the outbox of postings still owed to it
 *   sweep.c       releasing reservations never settled; retention
 */
#ifndef CN2_PAYMENTS_H
#define CN2_PAYMENTS_H

#include <sqlite3.h>
#include <stdint.h>
#include <uv.h>

#include "common/daemon.h"
#include "common/dbq.h"
#include "common/httpc.h"
#include "common/mpp.h"

struct payments_cfg {
	char database[256];
	char challenge_secret_file[256];
	char challenge_previous_secret_file[256]; /* "": none */
	char ticket_secret_file[256];
	char test_secret_file[256]; /* "": the test method is off */
	int64_t challenge_ttl_s;
	int64_t ticket_ttl_s;
	int64_t reservation_timeout_s;
	int64_t sweep_interval_s;
	int64_t ledger_timeout_ms;
	int64_t method_timeout_ms;    /* one call to a payment processor */
	int64_t buyer_daily_ceiling;  /* µUSD per buyer per UTC day; 0: none */
	int64_t buyer_retention_days; /* buyer spend kept this long */
	/* lightning (on when lnd_url is set) */
	char lnd_url[256];
	char lnd_macaroon_file[256];
	char lnd_tls_cert[256];
	int64_t lightning_micro_usd_per_sat;
	char lightning_network[16];
	int64_t lightning_invoices_per_minute; /* invoices created for challenges, at most */
	/* stripe (on when stripe_secret_key_file is set) */
	char stripe_api_url[256];
	char stripe_secret_key_file[256];
	char stripe_network_id[128];
	char stripe_payment_method_types[128];
	int64_t stripe_min_cents;
	/* tempo (on when tempo_rpc_url is set) */
	char tempo_rpc_url[256];
	char tempo_token[48];
	char tempo_recipient[48];
	int64_t tempo_chain_id;
	char blocked_buyers_file[256]; /* "": nobody is refused */
};

/* Buyers refused by policy (policy.c): sorted SHA-256 buyer ids. */
struct pay_policy {
	uint8_t (*ids)[32];
	size_t n;
};
/* Load path ("": an empty list) into p, replacing it; 0, or -1 with err and p untouched. */
int pay_policy_load(struct pay_policy *p, const char *path, char *err, size_t errlen);
void pay_policy_free(struct pay_policy *p);
/* 1 if buyer (64 hex digits) is on the list, else 0. */
int pay_policy_blocked(const struct pay_policy *p, const char *buyer);

/* A secret as read from its file (the ASCII bytes are the HMAC key). */
#define PAY_SECRET_MAX 128
struct pay_secret {
	uint8_t key[PAY_SECRET_MAX];
	size_t len; /* 0: not configured */
};

/* Credentials of the processors, as text headers need them. */
#define PAY_CRED_MAX 2048
struct pay_cred {
	char text[PAY_CRED_MAX + 1];
	size_t len; /* 0: not configured */
};

/*
 * What the checks use: secrets and method settings; plain data, so tests
 * can build one. A rotated challenge secret stays in challenge_prev for
 * ids of challenges that expire no later than prev_until.
 */
struct pay_keys {
	struct pay_secret challenge;
	struct pay_secret challenge_prev;
	int64_t prev_until;
	struct pay_secret ticket; /* tickets out, awards in (shared with the router) */
	struct pay_secret test;	  /* the test method's proofs; len 0: method off */
	struct pay_cred macaroon; /* LND, hex */
	struct pay_cred stripe;	  /* Stripe secret key */
	const struct payments_cfg *cfg; /* method settings; NULL: none but test */
};

struct pay_call;

struct payments {
	const struct payments_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	struct httpc *http; /* outbound calls to processors */
	struct pay_keys keys;
	struct pay_policy policy;
	struct {
		int64_t tokens_milli; /* invoices that may be created now, × 1000 */
		int64_t at_ms;	      /* when tokens_milli was last topped up */
		int64_t warned_ms;    /* the last "budget spent" warning */
	} invoices;
	uv_timer_t sweep;
	struct pay_call *calls; /* ledger requests awaiting a reply */
	size_t writes;		/* queued writes whose done() has not run */
	size_t outbox_open;	/* outbox postings in flight */
	size_t refunds_open;	/* refunds asked of Stripe, not yet recorded */
	int stopping;
};

/* setup.c */
int payments_start(struct payments *s, struct daemon *d, const struct payments_cfg *cfg,
    char *err, size_t errlen);
int payments_reload(struct payments *s, char *err, size_t errlen);
void payments_stop(struct payments *s);
void payments_health(struct payments *s, struct ipc_health_rep *rep);
void payments_link(struct payments *s, enum ipc_role peer, int up);
void payments_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);
/* Queue a write on the group commit; 0, or -1 (done not called) when out of memory. */
int pay_write(struct payments *s, dbq_apply_fn apply, dbq_done_fn done, void *arg);
/* Load the challenge secret (and the previous one) from their files; see setup.c. */
int pay_load_challenge_secrets(struct pay_keys *k, const struct payments_cfg *cfg, int64_t now,
    char *err, size_t errlen);

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
	PP_ACTION_REQUIRED,	 /* stripe: the PaymentIntent requires_action */
	PP_METHOD_UNAVAILABLE,	 /* the processor is down, slow or failing */
	PP_IDEMPOTENT_REPLAY,	 /* a retry of a request already answered */
	PP_IDEMPOTENCY_MISMATCH, /* the same key and credential, another request */
	PP_BUYER_CEILING,	 /* the buyer's daily ceiling (payment-insufficient) */
	PP_REFUSED_BY_POLICY,	 /* a buyer the operator blocked: 403 */
	PP_MAX,
};

/* HTTP status, problem type URL and title of p. */
int pay_problem_status(enum pay_problem p);
const char *pay_problem_type(enum pay_problem p);
const char *pay_problem_title(enum pay_problem p);

/*
 * A challenge being offered: the method fills request (a JSON object the
 * caller frees) and, for methods whose challenges need a record (lightning's
 * invoice), an invoice to store before the challenge goes out.
 */
struct pay_invoice {
	char payment_hash[65];
	char challenge_id[MPP_ID_BUFSZ];
	int64_t sats, amount;
	int64_t expires;
};
struct pay_offer {
	cJSON *request;
	int has_invoice;
	struct pay_invoice invoice;
	int64_t expires; /* the challenge's expiry; the method may lower it */
};
typedef void (*pay_offer_fn)(void *arg, int ok);

/* What a method's asynchronous proof found. */
struct pay_proof {
	enum pay_problem problem; /* PP_NONE: paid */
	const char *detail;
	uint32_t retry_after;
	char reference[96];	  /* the receipt's reference */
	char payer[96];		  /* the method's payer identity, or "" */
};
typedef void (*pay_proof_fn)(void *arg, const struct pay_proof *p);

/* The part of a credential an asynchronous proof needs (copied from the credential). */
struct pay_claim {
	char id[MPP_ID_BUFSZ];
	int64_t units;	     /* the request's amount, in the method's units */
	char payload_a[256]; /* stripe: spt; tempo: tx hash */
};

/* methods.c: each method cn2 can take, and whether this process offers it. */
#define PAY_MAX_METHODS 4
struct pay_method {
	const char *name;
	const char *intent;
	int (*enabled)(const struct pay_keys *k);
	/*
	 * CHALLENGE: the request for amount µUSD paid to realm. Synchronous
	 * methods fill o and return 0 (done is not called); others return 1
	 * and call done later; -1 on failure.
	 */
	int (*offer)(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
	    pay_offer_fn done, void *arg);
	/* Step 5: the echoed request charges this route: PP_NONE and µUSD paid in *paid. */
	enum pay_problem (*economics)(const struct pay_keys *k, const cJSON *req,
	    const char *realm, int64_t *paid, struct pay_claim *claim);
	/* Steps 7 and 8: payload shape, and the proof where it needs no processor. */
	enum pay_problem (*payload)(const struct pay_keys *k, const cJSON *payload,
	    const cJSON *req, const char *id, struct pay_claim *claim);
	/* After the reservation: the processor's word (NULL: the proof is done). 0 or -1. */
	int (*prove)(struct payments *s, const struct pay_claim *c, pay_proof_fn done, void *arg);
};
extern const struct pay_method pay_methods[];
extern const size_t pay_nmethods;
/* The method named name if this process offers it, else NULL. */
const struct pay_method *pay_method_offered(const struct pay_keys *k, const char *name);
/* base64url(JCS(request)) helpers shared by the methods: add "amount" as a decimal string. */
int pay_json_amount(cJSON *o, const char *key, int64_t v);
/* The string member key of o if it is a string of 1..max bytes, else NULL. */
const char *pay_json_str(const cJSON *o, const char *key, size_t max);
/* An integer amount string member ("1250") of o, or -1. */
int64_t pay_json_units(const cJSON *o, const char *key);
/* Lowercase hex of n bytes into out (2n + 1). */
void pay_hex(const uint8_t *in, size_t n, char *out);
/* Is s exactly n hex digits (lowercase only when lower)? */
int pay_is_hex(const char *s, size_t n, int lower);

/* lightning.c, stripe.c, tempo.c: the method entries. */
int pay_lightning_enabled(const struct pay_keys *k);
int pay_lightning_offer(struct payments *s, const char *realm, int64_t amount,
    struct pay_offer *o, pay_offer_fn done, void *arg);
enum pay_problem pay_lightning_economics(const struct pay_keys *k, const cJSON *req,
    const char *realm, int64_t *paid, struct pay_claim *claim);
enum pay_problem pay_lightning_payload(const struct pay_keys *k, const cJSON *payload,
    const cJSON *req, const char *id, struct pay_claim *claim);
/* Parse LND's AddInvoice answer: r_hash (base64) as hex, payment_request. 0 or -1. */
int pay_lightning_parse_invoice(const char *body, size_t len, char hash[65], char *invoice,
    size_t cap);
/*
 * Does the BOLT11 invoice say what LND's answer and our request did: the
 * network (lightning_network's name), the hash (hex), exactly sats, valid
 * until at least valid_until (unix seconds)? 0, or -1 with a static reason.
 */
int pay_lightning_invoice_agrees(const char *invoice, const char *hash_hex, int64_t sats,
    const char *network, int64_t valid_until, const char **why);

int pay_stripe_enabled(const struct pay_keys *k);
int pay_stripe_offer(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
    pay_offer_fn done, void *arg);
enum pay_problem pay_stripe_economics(const struct pay_keys *k, const cJSON *req,
    const char *realm, int64_t *paid, struct pay_claim *claim);
enum pay_problem pay_stripe_payload(const struct pay_keys *k, const cJSON *payload,
    const cJSON *req, const char *id, struct pay_claim *claim);
int pay_stripe_prove(struct payments *s, const struct pay_claim *c, pay_proof_fn done,
    void *arg);
/* What a PaymentIntent answer means (pure, for tests and the fuzzer). */
void pay_stripe_judge(long status, const char *body, size_t len, int64_t cents,
    struct pay_proof *out);

int pay_tempo_enabled(const struct pay_keys *k);
int pay_tempo_offer(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
    pay_offer_fn done, void *arg);
enum pay_problem pay_tempo_economics(const struct pay_keys *k, const cJSON *req,
    const char *realm, int64_t *paid, struct pay_claim *claim);
enum pay_problem pay_tempo_payload(const struct pay_keys *k, const cJSON *payload,
    const cJSON *req, const char *id, struct pay_claim *claim);
int pay_tempo_prove(struct payments *s, const struct pay_claim *c, pay_proof_fn done,
    void *arg);
/* What an eth_getTransactionReceipt answer means (pure, for tests and the fuzzer). */
void pay_tempo_judge(const char *body, size_t len, const char *token, const char *recipient,
    int64_t units, struct pay_proof *out);

/*
 * accept.c: order the n offers (name/intent pairs) by an Accept-Payment
 * value. Writes the indices of the acceptable ones, best first, into idx
 * and returns how many. An empty or unreadable header accepts every offer
 * in its own order; q=0 refuses; an offer no element matches is refused.
 */
size_t pay_accept_order(const char *accept, const char *const *names,
    const char *const *intents, size_t n, size_t *idx);

/*
 * challenge.c. Answer req for problem p (PP_PAYMENT_REQUIRED for a plain
 * 402): a problem+json body with detail and, except for 5xx, 409 and 422
 * answers, fresh challenges for this realm/amount filtered by accept.
 * retry_after > 0 adds Retry-After. Asynchronous when a method's challenge
 * needs its processor; falls back to ERROR when it cannot build the answer.
 */
void pay_answer(struct payments *s, const struct ipc_req *req, enum pay_problem p,
    const char *detail, const char *realm, int64_t amount, const char *accept,
    uint32_t retry_after);
/* The same with a body member "receipt" (an idempotent replay). */
void pay_answer_replay(struct payments *s, const struct ipc_req *req, const char *receipt);
void pay_on_challenge(struct payments *s, const struct ipc_req *req,
    const struct ipc_challenge *m);
/* Retry-After for problem p, in seconds (0: none). */
uint32_t pay_problem_retry(enum pay_problem p);

/* check.c: the outcome of checking a credential, without touching any state. */
struct pay_verdict {
	enum pay_problem problem; /* PP_NONE: it pays for this request */
	const char *detail;	  /* static text for the buyer (no input echoed) */
	char id[IPC_ID_MAX + 1];
	char method[IPC_METHOD_MAX + 1];
	int64_t paid;	 /* µUSD, from the echoed request */
	int64_t expires; /* the challenge's, unix seconds */
	char buyer[65];	 /* SHA-256 hex of the credential's source, or "" */
	struct pay_claim claim;
};
void pay_check(const struct pay_keys *k, const struct ipc_verify *v, int64_t now,
    struct pay_verdict *out);

/* verify.c, settle.c */
void pay_on_verify(struct payments *s, const struct ipc_req *req, const struct ipc_verify *m,
    const struct ipc_verify_idem *idem);
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
	char reference[96];
	char region[IPC_REGION_MAX + 1]; /* of the key that served a capture ("": untagged) */
	uint8_t pool;			 /* enum ipc_pool the attempt was paid for */
	int64_t premium_amount;		 /* of a capture: the surcharge to platform:premium */
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
/* The premium surcharge inside a row's amount: money_premium_part in the premium pool, else 0. */
int64_t pay_premium_of(const struct pay_row *row);
/* The Payment-Receipt value of a captured row. Length, or -1. */
int pay_receipt(const char *id, const struct pay_row *row, char *out, size_t cap);

/* store.c: open payments.db (WAL, synchronous=FULL, quick_check, migrations); NULL + err. */
sqlite3 *pay_store_open(const char *path, char *err, size_t errlen);
/* Step a statement (from db_stmt) that returns no row, then reset it. 0 or -1 (logged). */
int pay_db_step(sqlite3 *db, sqlite3_stmt *st);
enum pay_reserve { RES_NEW, RES_AGAIN, RES_IN_FLIGHT, RES_USED };
struct pay_reservation {
	const char *id, *method, *realm, *provider;
	int64_t amount, expires;
	uint8_t pool; /* enum ipc_pool */
};
int pay_store_reserve(sqlite3 *db, const struct pay_reservation *r, int64_t now,
    enum pay_reserve *res, char xfer_id[72]);
int pay_store_get(sqlite3 *db, const char *id, struct pay_row *row); /* 1, 0 absent, -1 */
/* The receipt's reference of a reserved payment (a processor's id). */
int pay_store_set_reference(sqlite3 *db, const char *id, const char *reference);
/* reserved → captured with premium µUSD of surcharge, and a post owed to the ledger. */
int pay_store_capture(sqlite3 *db, const char *id, const struct ipc_settle *m, int64_t premium,
    int64_t now);
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
	int64_t premium_amount; /* > 0: LEDGER_POST_SPLIT */
};
int pay_outbox_done(sqlite3 *db, const char *xfer_id);
int pay_outbox_failed(sqlite3 *db, const char *xfer_id);
/* Up to max rows still owed (and not given up on) into rows; their number, or -1. */
int pay_outbox_list(sqlite3 *db, struct pay_outbox_row *rows, int max);

/* refund.c: Stripe charges for requests never served go back (see the file). */
struct pay_refund_row {
	char payment_id[IPC_ID_MAX + 1];
	char reference[96]; /* the PaymentIntent id */
	int64_t amount;	    /* µUSD */
};
/* In a sweep's transaction: record refunds due for released, expired Stripe payments. */
int pay_refunds_queue(sqlite3 *db, int64_t now);
/* Up to max refunds still due into rows; their number, or -1. */
int pay_refunds_due(sqlite3 *db, struct pay_refund_row *rows, int max);
/* After a sweep: ask Stripe for the refunds due (one batch at a time). */
void pay_refunds_send(struct payments *s);
/* stripe.c: outcome 1 refunded (refund_id, or NULL when it was already), 0 refused, -1 no answer. */
typedef void (*pay_refund_fn)(void *arg, int outcome, const char *refund_id);
int pay_stripe_refund(struct payments *s, const struct pay_refund_row *row, pay_refund_fn done,
    void *arg);
/* The judgement of a refund answer (pure, for unit tests): 1 with id (maybe ""), or 0. */
int pay_stripe_refund_judge(long status, const char *body, size_t len, char *id, size_t cap);

/* extras.c: lightning invoices issued with challenges. */
int pay_invoice_put(sqlite3 *db, const struct pay_invoice *inv, int64_t now);
/* 1 if challenge id has a stored invoice with this hash and amount, 0 if not, -1. */
int pay_invoice_matches(sqlite3 *db, const char *id, const char *hash, int64_t sats);
/* tempo: claim tx hash for payment id; 1 claimed (or already ours), 0 used by another, -1. */
int pay_txhash_claim(sqlite3 *db, const char *hash, const char *id, int64_t now);
/* Retention: drop expired invoices and idempotency records, and old buyer spend. */
int pay_extras_expire(sqlite3 *db, int64_t now, int64_t buyer_keep_days);

/* extras.c: a buyer's spend, counted from reservation on and given back at release. */
void pay_buyer_id(const char *principal, char out[65]);
/* Count amount against buyer's day: 1 counted, 0 over the ceiling (nothing counted), -1. */
int pay_buyer_charge(sqlite3 *db, const char *id, const char *buyer, int64_t amount,
    int64_t ceiling, int64_t now);
/* The payment's counted spend: kept at capture, given back at release. */
int pay_buyer_settle(sqlite3 *db, const char *id, int captured);
/* µUSD the buyer spent on the UTC day of now (reserved or captured), or -1. */
int64_t pay_buyer_spent(sqlite3 *db, const char *buyer, int64_t now);
/* Seconds to the next UTC midnight: when a ceiling lifts. */
uint32_t pay_buyer_reset_in(int64_t now);

/* extras.c: Idempotency-Key records. */
enum pay_idem { IDEM_NEW, IDEM_SAME_OPEN, IDEM_SAME_RESERVED, IDEM_SAME_CAPTURED, IDEM_MISMATCH };
/*
 * Look up (key, id): a new record is written with fingerprint fp; an old one
 * with another fingerprint is IDEM_MISMATCH; with the same, the payment's
 * state tells. 0, or -1 on a database error.
 */
int pay_idem_lookup(sqlite3 *db, const char *key, const char *id, const char *fp,
    int64_t expires, int64_t now, enum pay_idem *out);
/* The request fingerprint: SHA-256 hex over the route and the body hash. */
void pay_idem_fingerprint(const struct ipc_route *r, const uint8_t body_hash[32], char out[65]);

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
