/*
 * verify.c — VERIFY (and VERIFY_IDEM): from a credential to a ticket.
 *
 *   check (check.c, no state)  → 400/402 with fresh challenges
 *   reserve (one dbq write, durable before anything depends on it):
 *       Idempotency-Key given: another request under this key and
 *       credential → 422; a retry of a request still in flight → 409; of
 *       one that was captured → 409 idempotent-replay with its receipt
 *       lightning: the invoice stored with this challenge must match
 *       a buyer the operator blocked → 403 (policy.c), when the
 *       credential names a source
 *       the buyer's daily ceiling, when the credential names a source
 *       the id: in flight → 409; captured → 402 invalid-challenge;
 *       new or released before → reserved, and the buyer's spend counted
 *   the method's processor (stripe, tempo), when its proof needs one:
 *       refused → release, 402 verification-failed / payment-action-required
 *       down, slow, failing → release, 503 with Retry-After
 *       accepted → recorded (a tempo hash is claimed for good, its sender's
 *       spend counted when the credential named no source)
 *   LEDGER_PENDING, and wait for the ledger's ACK
 *       no ledger, refused, no answer → release, 503 ledger-unavailable
 *   TICKET (MAC under the ticket secret), expiring at the challenge's expiry
 *   or ticket_ttl_s from now, whichever comes first.
 *
 * Many VERIFYs of one credential in the same loop turn all pass the checks,
 * but their reservations run one after the other inside one transaction, so
 * exactly one sees "new" and the others "reserved": one ticket, the rest
 * 409, and only the winner ever reaches a processor.
 *
 * Idempotency-Key, as cn2 reads "replays the original outcome": a retry of
 * the same request (same key, credential, route and body) gets what the
 * payment came to, never a second charge. Captured: 409 idempotent-replay
 * with the original Payment-Receipt value in the body (cn2 never stores a
 * response body, so it cannot send that again); in flight: 409 with
 * Retry-After; released (nothing was charged): it proceeds as a new
 * attempt, as the same credential may. Another request under the same key
 * and credential: 422, and nothing is reserved.
 *
 * Security stance: nothing from the credential is logged but the challenge
 * id (public: it is in the challenge and the receipt). A reservation is
 * never left behind by a failure here: whatever goes wrong after it is made
 * releases it (owing the ledger a void whenever the pending may have
 * landed), and a ticket the edge can no longer receive is released too.
 */
#include "payments/payments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/capab.h"
#include "common/log.h"
#include "common/timefmt.h"

struct verify_op {
	struct payments *s;
	struct ipc_req req;
	struct ipc_route route;
	char realm[128];
	int64_t amount; /* the current price */
	char accept[256];
	struct pay_verdict v;
	const struct pay_method *m;
	int has_idem;
	char idem_key[IPC_IDEM_KEY_MAX + 1];
	char fp[65];
	enum pay_reserve res;
	char xfer_id[72];
	struct pay_proof proof;
	/* A refusal decided inside a write, answered after it. */
	enum pay_problem refusal;
	const char *refusal_detail;
	uint32_t refusal_retry;
	char receipt[1024];
	/* After a release: what to answer (PP_NONE: nothing). */
	int void_due;
	enum pay_problem answer;
	const char *answer_detail;
	uint32_t answer_retry;
};

static void verify_release(struct verify_op *op, int void_due, enum pay_problem answer,
    const char *detail, uint32_t retry);

static void
verify_problem(struct verify_op *op, enum pay_problem p, const char *detail, uint32_t retry)
{
	pay_answer(op->s, &op->req, p, detail, op->realm, op->amount, op->accept, retry);
}

static void
refuse(struct verify_op *op, enum pay_problem p, const char *detail, uint32_t retry)
{
	op->refusal = p;
	op->refusal_detail = detail;
	op->refusal_retry = retry;
}

/* 0 if the edge got its ticket, -1 if it cannot (then nobody will use the reservation). */
static int
verify_ticket(struct verify_op *op)
{
	struct payments *s = op->s;
	int64_t now = time_now_ms() / 1000, until = now + s->cfg->ticket_ttl_s;
	struct ipc_ticket t;
	uint8_t mac[IPC_MAC_LEN];

	memset(&t, 0, sizeof(t));
	memcpy(t.payment_id, op->v.id, sizeof(t.payment_id));
	memcpy(t.pay_method, op->v.method, sizeof(t.pay_method));
	t.amount = op->v.paid;
	t.route = op->route;
	t.expires = op->v.expires < until ? op->v.expires : until;
	if (capab_ticket_mac(s->keys.ticket.key, s->keys.ticket.len, &t, mac) != 0) {
		ipc_reply_error(s->d->ipc, &op->req, IPC_ERR_INTERNAL, "cannot sign a ticket");
		s->d->errors++;
		return -1;
	}
	t.mac.p = mac;
	t.mac.len = IPC_MAC_LEN;
	if (ipc_reply(s->d->ipc, &op->req, IPC_TICKET, &t) != 0) {
		log_warnx("payment %s: the edge is gone before its ticket; releasing", op->v.id);
		return -1;
	}
	log_info("payment %s reserved: %lld micro-USD by %s", op->v.id, (long long)op->v.paid,
	    op->v.method);
	return 0;
}

static void
verify_on_pending(void *arg, enum pay_ledger_result r)
{
	struct verify_op *op = arg;

	if (r == LR_ACK && !op->s->stopping) {
		if (verify_ticket(op) == 0)
			free(op);
		else
			verify_release(op, 1, PP_NONE, NULL, 0);
		return;
	}
	log_warnx("payment %s: the ledger %s the pending transfer; releasing", op->v.id,
	    r == LR_REFUSED ? "refused" : "did not confirm");
	/* A refusal recorded nothing; no answer may have landed anyway. */
	verify_release(op, r == LR_LOST, PP_LEDGER_UNAVAILABLE, NULL, 0);
}

static void
verify_send_pending(struct verify_op *op)
{
	struct ipc_ledger_pending m;

	if (op->s->stopping) {
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE, NULL, 0);
		return;
	}
	memset(&m, 0, sizeof(m));
	memcpy(m.xfer_id, op->xfer_id, sizeof(m.xfer_id));
	memcpy(m.payment_ref, op->v.id, sizeof(m.payment_ref));
	memcpy(m.pay_method, op->v.method, sizeof(m.pay_method));
	m.amount = op->v.paid;
	if (pay_ledger_send(op->s, IPC_LEDGER_PENDING, &m, verify_on_pending, op) != 0) {
		log_warnx("payment %s: the ledger is not connected; releasing", op->v.id);
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE, NULL, 0);
	}
}

/* Releasing. */

static int
verify_release_apply(sqlite3 *db, void *arg)
{
	struct verify_op *op = arg;

	return pay_store_release(db, op->v.id, op->void_due, time_now_ms() / 1000);
}

static const char *
release_detail(const struct verify_op *op)
{
	if (op->answer_detail != NULL)
		return op->answer_detail;
	return "the payment cannot be recorded right now and was not taken; retry with the same "
	       "credential";
}

static void
verify_release_done(void *arg, int status)
{
	struct verify_op *op = arg;
	struct pay_outbox_row row;

	if (status != 0)
		log_warnx("payment %s: cannot release now; the sweep will", op->v.id);
	if (op->answer != PP_NONE)
		verify_problem(op, op->answer, release_detail(op), op->answer_retry);
	if (status == 0 && op->void_due && !op->s->stopping) {
		memset(&row, 0, sizeof(row));
		memcpy(row.xfer_id, op->xfer_id, sizeof(row.xfer_id));
		row.op = OB_VOID;
		pay_outbox_send(op->s, &row);
	}
	free(op);
}

/* Undo the reservation, then answer (or not). */
static void
verify_release(struct verify_op *op, int void_due, enum pay_problem answer, const char *detail,
    uint32_t retry)
{
	op->void_due = void_due;
	op->answer = answer;
	op->answer_detail = detail;
	op->answer_retry = retry;
	if (pay_write(op->s, verify_release_apply, verify_release_done, op) == 0)
		return;
	/* Out of memory: the sweep releases it after reservation_timeout_s. */
	if (answer != PP_NONE)
		verify_problem(op, answer, release_detail(op), retry);
	free(op);
}

/* After the processor's word: record it (or give the reservation back). */

static int
confirm_apply(sqlite3 *db, void *arg)
{
	struct verify_op *op = arg;
	int64_t now = time_now_ms() / 1000;
	char principal[160];
	int rc;

	if (strcmp(op->v.method, "tempo") == 0) {
		if ((rc = pay_txhash_claim(db, op->v.claim.payload_a, op->v.id, now)) < 0)
			return -1;
		if (rc == 0)
			refuse(op, PP_VERIFICATION_FAILED,
			    "this transaction has paid for another challenge already", 0);
		if (rc == 1 && op->v.buyer[0] == '\0' && op->proof.payer[0] != '\0') {
			snprintf(principal, sizeof(principal), "did:pkh:eip155:%lld:%s",
			    (long long)op->s->cfg->tempo_chain_id, op->proof.payer);
			pay_buyer_id(principal, op->v.buyer);
			if (pay_policy_blocked(&op->s->policy, op->v.buyer)) {
				log_info("payment %s: a blocked buyer's transaction, recorded as used",
				    op->v.id);
				refuse(op, PP_REFUSED_BY_POLICY,
				    "payments from this sender are not accepted here; the transaction "
				    "is recorded and the operator can refund it",
				    0);
				return pay_store_release(db, op->v.id, 0, now);
			}
			if ((rc = pay_buyer_charge(db, op->v.id, op->v.buyer, op->v.paid,
				 op->s->cfg->buyer_daily_ceiling, now)) < 0)
				return -1;
			if (rc == 0)
				refuse(op, PP_BUYER_CEILING,
				    "this buyer's daily spending ceiling is reached; nothing was taken",
				    pay_buyer_reset_in(now));
		}
	}
	if (op->refusal != PP_NONE)
		return pay_store_release(db, op->v.id, 0, now);
	return pay_store_set_reference(db, op->v.id, op->proof.reference);
}

static void
confirm_done(void *arg, int status)
{
	struct verify_op *op = arg;

	if (status != 0) {
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE, NULL, 0);
		return;
	}
	if (op->refusal != PP_NONE) {
		verify_problem(op, op->refusal, op->refusal_detail, op->refusal_retry);
		free(op);
		return;
	}
	verify_send_pending(op);
}

static void
verify_on_proof(void *arg, const struct pay_proof *p)
{
	struct verify_op *op = arg;

	op->proof = *p;
	if (p->problem != PP_NONE) {
		log_info("payment %s: %s refused it: %s", op->v.id, op->v.method,
		    pay_problem_title(p->problem));
		verify_release(op, 0, p->problem, p->detail, p->retry_after);
		return;
	}
	if (pay_write(op->s, confirm_apply, confirm_done, op) != 0)
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE, NULL, 0);
}

/* Reserving. */

/* Idempotency-Key: decide what a retry gets; 1 if refused (answered after the write). */
static int
reserve_idem(sqlite3 *db, struct verify_op *op, int64_t now)
{
	enum pay_idem r;
	struct pay_row row;

	if (!op->has_idem)
		return 0;
	if (pay_idem_lookup(db, op->idem_key, op->v.id, op->fp, op->v.expires, now, &r) != 0)
		return -1;
	if (r == IDEM_MISMATCH)
		refuse(op, PP_IDEMPOTENCY_MISMATCH,
		    "this Idempotency-Key was used with this credential for another request", 0);
	else if (r == IDEM_SAME_RESERVED)
		refuse(op, PP_PAYMENT_IN_FLIGHT, "this request is still being answered", 0);
	else if (r == IDEM_SAME_CAPTURED) {
		if (pay_store_get(db, op->v.id, &row) != 1 ||
		    pay_receipt(op->v.id, &row, op->receipt, sizeof(op->receipt)) < 0)
			return -1;
		refuse(op, PP_IDEMPOTENT_REPLAY, NULL, 0);
	}
	return op->refusal != PP_NONE;
}

/* What must hold before the id is reserved; 1 if refused. */
static int
reserve_gates(sqlite3 *db, struct verify_op *op, int64_t now)
{
	int64_t spent, ceiling = op->s->cfg->buyer_daily_ceiling;
	int rc;

	if (strcmp(op->v.method, "lightning") == 0) {
		if ((rc = pay_invoice_matches(db, op->v.id, op->v.claim.payload_a,
			 op->v.claim.units)) < 0)
			return -1;
		if (rc == 0) {
			refuse(op, PP_INVALID_CHALLENGE, "no invoice of ours belongs to this challenge", 0);
			return 1;
		}
	}
	if (op->v.buyer[0] != '\0' && pay_policy_blocked(&op->s->policy, op->v.buyer)) {
		refuse(op, PP_REFUSED_BY_POLICY,
		    "payments from this buyer are not accepted here; nothing was taken", 0);
		return 1;
	}
	if (op->v.buyer[0] != '\0' && ceiling > 0) {
		if ((spent = pay_buyer_spent(db, op->v.buyer, now)) < 0)
			return -1;
		if (op->v.paid > ceiling || spent > ceiling - op->v.paid) {
			refuse(op, PP_BUYER_CEILING,
			    "this buyer's daily spending ceiling is reached; nothing was taken",
			    pay_buyer_reset_in(now));
			return 1;
		}
	}
	return 0;
}

static int
verify_reserve_apply(sqlite3 *db, void *arg)
{
	struct verify_op *op = arg;
	int64_t now = time_now_ms() / 1000;
	struct pay_reservation r = {op->v.id, op->v.method, op->realm, op->route.provider,
	    op->v.paid, op->v.expires, op->route.pool};
	int rc;

	if ((rc = reserve_idem(db, op, now)) != 0 || (rc = reserve_gates(db, op, now)) != 0)
		return rc < 0 ? -1 : 0;
	if (pay_store_reserve(db, &r, now, &op->res, op->xfer_id) != 0)
		return -1;
	if (op->res == RES_USED)
		refuse(op, PP_INVALID_CHALLENGE, "this challenge has already been used", 0);
	else if (op->res == RES_IN_FLIGHT)
		refuse(op, PP_PAYMENT_IN_FLIGHT, "a request paid with this credential is in progress",
		    0);
	if (op->refusal != PP_NONE)
		return 0;
	if (op->v.buyer[0] != '\0' && pay_buyer_charge(db, op->v.id, op->v.buyer, op->v.paid, 0,
					    now) != 1)
		return -1;
	if (strcmp(op->v.method, "lightning") == 0)
		return pay_store_set_reference(db, op->v.id, op->v.claim.payload_a);
	return 0;
}

static void
verify_reserve_done(void *arg, int status)
{
	struct verify_op *op = arg;

	if (status != 0) {
		log_warnx("payment %s: cannot record the reservation", op->v.id);
		ipc_reply_error(op->s->d->ipc, &op->req, IPC_ERR_INTERNAL, "cannot record payment");
		op->s->d->errors++;
		free(op);
		return;
	}
	if (op->refusal == PP_IDEMPOTENT_REPLAY) {
		log_info("payment %s: idempotent retry of a captured request", op->v.id);
		pay_answer_replay(op->s, &op->req, op->receipt);
		free(op);
		return;
	}
	if (op->refusal != PP_NONE) {
		log_info("payment %s: %s", op->v.id, pay_problem_title(op->refusal));
		verify_problem(op, op->refusal, op->refusal_detail, op->refusal_retry);
		free(op);
		return;
	}
	if (op->s->stopping) {
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE, NULL, 0);
		return;
	}
	if (op->m->prove == NULL) {
		verify_send_pending(op);
		return;
	}
	if (op->m->prove(op->s, &op->v.claim, verify_on_proof, op) != 0)
		verify_release(op, 0, PP_METHOD_UNAVAILABLE, "the payment processor cannot be asked",
		    0);
}

void
pay_on_verify(struct payments *s, const struct ipc_req *req, const struct ipc_verify *m,
    const struct ipc_verify_idem *idem)
{
	struct verify_op *op;
	struct pay_verdict v;

	if (m->amount < 1) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_REFUSED, "amount must be positive");
		return;
	}
	pay_check(&s->keys, m, time_now_ms() / 1000, &v);
	if (v.problem != PP_NONE) {
		log_info("credential refused: %s", pay_problem_title(v.problem));
		pay_answer(s, req, v.problem, v.detail, m->realm, m->amount, m->accept, 0);
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->s = s;
	op->req = *req;
	op->route = m->route;
	memcpy(op->realm, m->realm, sizeof(op->realm));
	op->amount = m->amount;
	memcpy(op->accept, m->accept, sizeof(op->accept));
	op->v = v;
	op->m = pay_method_offered(&s->keys, v.method);
	if (idem != NULL) {
		op->has_idem = 1;
		memcpy(op->idem_key, idem->idem_key, sizeof(op->idem_key));
		pay_idem_fingerprint(&m->route, idem->body_hash.p, op->fp);
	}
	if (op->m == NULL || pay_write(s, verify_reserve_apply, verify_reserve_done, op) != 0) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		free(op);
	}
}
