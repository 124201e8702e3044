/*
 * verify.c — VERIFY: from a credential to a ticket.
 *
 *   check (check.c, no state)  → PAY_REQUIRED 400/402 with fresh challenges
 *   reserve the id (one dbq write, durable before anything is answered):
 *       reserved by a request in flight → 409 payment-in-flight
 *       captured already                → 402 invalid-challenge
 *       new, or released before         → reserved (a new ledger attempt)
 *   LEDGER_PENDING, and wait for the ledger's ACK
 *       no ledger, refused, no answer   → release, 503 ledger-unavailable
 *   TICKET (MAC under the ticket secret), expiring at the challenge's expiry
 *   or ticket_ttl_s from now, whichever comes first.
 *
 * Two VERIFYs of one credential in the same loop turn both pass the checks,
 * but their reservations run one after the other inside one transaction, so
 * exactly one sees "new" and the other "reserved": one ticket, one 409.
 *
 * Security stance: nothing from the credential is logged but the challenge
 * id (public: it is in the challenge and the receipt). A reservation is
 * never left behind by a failure here: whatever goes wrong after it is
 * made releases it (owing the ledger a void whenever the pending may have
 * landed), and a ticket the edge can no longer receive is released too.
 */
#include "payments/payments.h"

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
	enum pay_reserve res;
	char xfer_id[72];
	int void_due;		/* the release owes the ledger a void */
	enum pay_problem answer; /* after the release: PP_NONE answers nothing */
};

static void verify_release(struct verify_op *op, int void_due, enum pay_problem answer);

static void
verify_problem(struct verify_op *op, enum pay_problem p, const char *detail)
{
	pay_reply_problem(op->s, &op->req, p, detail, op->realm, op->amount, op->accept);
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
			verify_release(op, 1, PP_NONE);
		return;
	}
	log_warnx("payment %s: the ledger %s the pending transfer; releasing", op->v.id,
	    r == LR_REFUSED ? "refused" : "did not confirm");
	/* A refusal recorded nothing; no answer may have landed anyway. */
	verify_release(op, r == LR_LOST, PP_LEDGER_UNAVAILABLE);
}

static void
verify_send_pending(struct verify_op *op)
{
	struct ipc_ledger_pending m;

	memset(&m, 0, sizeof(m));
	memcpy(m.xfer_id, op->xfer_id, sizeof(m.xfer_id));
	memcpy(m.payment_ref, op->v.id, sizeof(m.payment_ref));
	memcpy(m.pay_method, op->v.method, sizeof(m.pay_method));
	m.amount = op->v.paid;
	if (pay_ledger_send(op->s, IPC_LEDGER_PENDING, &m, verify_on_pending, op) != 0) {
		log_warnx("payment %s: the ledger is not connected; releasing", op->v.id);
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE);
	}
}

static int
verify_release_apply(sqlite3 *db, void *arg)
{
	struct verify_op *op = arg;

	return pay_store_release(db, op->v.id, op->void_due, time_now_ms() / 1000);
}

static void
verify_release_done(void *arg, int status)
{
	struct verify_op *op = arg;
	struct pay_outbox_row row;

	if (status != 0)
		log_warnx("payment %s: cannot release now; the sweep will", op->v.id);
	if (op->answer != PP_NONE)
		verify_problem(op, op->answer,
		    "the payment cannot be recorded right now and was not taken; "
		    "retry with the same credential");
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
verify_release(struct verify_op *op, int void_due, enum pay_problem answer)
{
	op->void_due = void_due;
	op->answer = answer;
	if (pay_write(op->s, verify_release_apply, verify_release_done, op) == 0)
		return;
	/* Out of memory: the sweep releases it after reservation_timeout_s. */
	if (answer != PP_NONE)
		verify_problem(op, answer, "the payment cannot be recorded right now");
	free(op);
}

static int
verify_reserve_apply(sqlite3 *db, void *arg)
{
	struct verify_op *op = arg;
	struct pay_reservation r = {op->v.id, op->v.method, op->realm, op->route.provider,
	    op->v.paid, op->v.expires};

	return pay_store_reserve(db, &r, time_now_ms() / 1000, &op->res, op->xfer_id);
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
	if (op->res == RES_IN_FLIGHT || op->res == RES_USED) {
		log_info("payment %s: %s", op->v.id,
		    op->res == RES_USED ? "replay of a captured payment" : "already in flight");
		if (op->res == RES_USED)
			verify_problem(op, PP_INVALID_CHALLENGE, "this challenge has already been used");
		else
			verify_problem(op, PP_PAYMENT_IN_FLIGHT,
			    "a request paid with this credential is in progress");
		free(op);
		return;
	}
	if (op->s->stopping) {
		verify_release(op, 0, PP_LEDGER_UNAVAILABLE);
		return;
	}
	verify_send_pending(op);
}

void
pay_on_verify(struct payments *s, const struct ipc_req *req, const struct ipc_verify *m)
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
		pay_reply_problem(s, req, v.problem, v.detail, m->realm, m->amount, m->accept);
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
	if (pay_write(s, verify_reserve_apply, verify_reserve_done, op) != 0) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		free(op);
	}
}
