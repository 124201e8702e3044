/*
 * ledger_model.h — a model of the books for the ledger's scenario tests:
 * seeded streams of payment events (pending, post with or without the
 * premium part, void, dispute, return, refund), what each must write, and
 * the balances the ledger must then hold, to the µUSD.
 */
#ifndef CN2_TEST_LEDGER_MODEL_H
#define CN2_TEST_LEDGER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "tests/scenario/ledger_peer.h"

#define LM_SELLERS 5
#define LM_ACCOUNTS 16

enum lm_kind { LM_PENDING, LM_POST, LM_VOID, LM_DISPUTE, LM_RETURN, LM_REFUND };

/* One event: the message to send, and the transfer it must leave. */
struct lm_event {
	enum lm_kind kind;
	int pay;	/* the payment it is about */
	uint16_t type;	/* IPC type */
	int platform;	/* sent by platform-api (else payments) */
	char xfer[96];	/* the id of the transfer it writes */
	union ipc_any msg;
};

struct lm_pay {
	char id[24], ref[32], dispute[32];
	const char *method;
	int seller;
	int64_t amount, share, premium;
	int state;	   /* 0 none, 1 pending, 2 posted, 3 voided */
	int dispute_state; /* 0 none, 1 open, 2 returned, 3 refunded */
	size_t post_ev, dispute_ev; /* the events that posted it and opened its dispute */
};

struct lm {
	uint64_t rng;
	struct lm_pay *pay;
	size_t npay, maxpay;
	struct lm_event *ev;
	size_t nev, maxev;
	const char *acct[LM_ACCOUNTS];
	int64_t bal[LM_ACCOUNTS];
	size_t nacct;
	int64_t transfers; /* rows the events write */
};

/* maxpay payments and room for maxev events. 0, or -1. */
int lm_init(struct lm *m, uint64_t seed, size_t maxpay, size_t maxev);
void lm_free(struct lm *m);
uint64_t lm_rand(struct lm *m);
/* A uniform integer in [lo, hi]. */
int64_t lm_range(struct lm *m, int64_t lo, int64_t hi);

/*
 * Add one event the model's state allows, of a kind chosen at random; a
 * platform event only for a payment or dispute whose own event came before
 * index `settled` (so that it cannot overtake it on another connection).
 * The event's index, or -1 if none is possible.
 */
int lm_next(struct lm *m, size_t settled);
/* Close what is open: a post or void for every pending payment, a resolution per dispute. */
void lm_quiesce(struct lm *m);
/* The model's balance of account (0 if it never moved). */
int64_t lm_balance(const struct lm *m, const char *account);
/* Move an account's model balance (payouts, made outside the event stream). */
void lm_move(struct lm *m, const char *account, int64_t amount);

/* Every balance of the ledger equal to the model's? 0, or -1 after printing the first that differs. */
int lm_check(const struct lm *m, struct h_env *e);
/* The ledger's balances as one line "account=balance;…" (caller frees). */
char *lm_books(struct h_env *e);

#endif
