/*
 * request.c — the ledger's IPC messages.
 *
 *   payments:  LEDGER_PENDING, LEDGER_POST, LEDGER_POST_SPLIT, LEDGER_VOID → ACK
 *   platform:  DISPUTE_OPEN, DISPUTE_RESOLVE, DISPUTE_GET → DISPUTE_REP
 *              EARNINGS → EARNINGS_REP
 *
 * Security stance: only the peer the table in main.c names may send each of
 * these; what it sends is still checked field by field (journal.c,
 * dispute.c). Every request, reads included, is queued as one item of a
 * group commit (common/dbq.h), so it runs in order after the writes sent
 * before it on any connection, and is answered only after its batch is
 * durable: the reply when recorded (or recorded before, identically), ERROR
 * IPC_ERR_REFUSED when it conflicts with the records or is invalid, ERROR
 * IPC_ERR_INTERNAL when the database failed, in which case nothing of it
 * was kept and the sender may retry.
 */
#include "ledger/ledger.h"

#include <stdlib.h>
#include <string.h>

#include "common/dbq.h"
#include "common/log.h"
#include "common/timefmt.h"

struct op {
	struct ledger *s;
	struct ipc_req req; /* copied: the connection may be gone when the batch commits */
	uint16_t type;
	union {
		struct ipc_ledger_pending pending;
		struct ipc_ledger_post post;
		struct ipc_ledger_post_split split;
		struct ipc_ledger_void voiding;
		struct ipc_dispute_open open;
		struct ipc_dispute_resolve resolve;
		struct ipc_dispute_get get;
		struct ipc_earnings earnings;
	} m;
	union {
		struct ipc_dispute_rep dispute;
		struct ipc_earnings_rep earnings;
	} rep;
	struct journal_result res;
};

/* The reads: nothing written, REFUSED when there is nothing to read. */
static int
op_read(struct op *op, int64_t now)
{
	struct ledger *s = op->s;
	int rc;

	journal_result_init(&op->res);
	if (op->type == IPC_EARNINGS) {
		if (!journal_token_ok(op->m.earnings.seller_id, IPC_ID_MAX))
			return journal_refuse(&op->res, "invalid seller_id");
		rc = earnings_get(s->db, op->m.earnings.seller_id, s->cfg->earnings_hold_s, now,
		    &op->rep.earnings);
		return rc == 0 ? 0 : journal_fail(s->j, &op->res, "earnings of",
					 op->m.earnings.seller_id);
	}
	if ((rc = dispute_get(s->db, op->m.get.dispute_id, &op->rep.dispute)) < 0)
		return journal_fail(s->j, &op->res, "dispute", op->m.get.dispute_id);
	return rc == 0 ? journal_refuse(&op->res, "no dispute %s", op->m.get.dispute_id) : 0;
}

static int
op_apply(sqlite3 *db, void *arg)
{
	struct op *op = arg;
	struct journal *j = op->s->j;
	int64_t now = time_now_ms();

	(void)db;
	switch (op->type) {
	case IPC_LEDGER_PENDING:
		return journal_pending(j, &op->m.pending, now, &op->res);
	case IPC_LEDGER_POST:
		return journal_post(j, &op->m.post, now, &op->res);
	case IPC_LEDGER_POST_SPLIT:
		return journal_post_split(j, &op->m.split, now, &op->res);
	case IPC_LEDGER_VOID:
		return journal_void(j, &op->m.voiding, now, &op->res);
	case IPC_DISPUTE_OPEN:
		return dispute_open(j, &op->m.open, now, &op->res, &op->rep.dispute);
	case IPC_DISPUTE_RESOLVE:
		return dispute_resolve(j, &op->m.resolve, now, &op->res, &op->rep.dispute);
	default:
		return op_read(op, now);
	}
}

/* The answer a recorded (or readable) request gets. */
static void
op_reply(struct op *op)
{
	struct daemon *d = op->s->d;

	switch (op->type) {
	case IPC_DISPUTE_OPEN:
	case IPC_DISPUTE_RESOLVE:
	case IPC_DISPUTE_GET:
		ipc_reply(d->ipc, &op->req, IPC_DISPUTE_REP, &op->rep.dispute);
		break;
	case IPC_EARNINGS:
		ipc_reply(d->ipc, &op->req, IPC_EARNINGS_REP, &op->rep.earnings);
		break;
	default:
		ipc_reply(d->ipc, &op->req, IPC_ACK, NULL);
		break;
	}
}

static void
op_done(void *arg, int status)
{
	struct op *op = arg;
	struct daemon *d = op->s->d;

	if (status == 0 && op->res.status != JOURNAL_REFUSED && op->res.status != JOURNAL_FAILED)
		op_reply(op);
	else {
		d->errors++;
		if (status == 0)
			ipc_reply_error(d->ipc, &op->req, IPC_ERR_REFUSED, op->res.detail);
		else
			ipc_reply_error(d->ipc, &op->req, IPC_ERR_INTERNAL, "not recorded");
	}
	free(op);
}

/* Copy the message into the op: it lives until the batch commits. 0, or -1 if not ours. */
static int
op_copy(struct op *op, uint16_t type, const union ipc_any *msg)
{
	switch (type) {
	case IPC_LEDGER_PENDING:
		op->m.pending = msg->ledger_pending;
		return 0;
	case IPC_LEDGER_POST:
		op->m.post = msg->ledger_post;
		return 0;
	case IPC_LEDGER_POST_SPLIT:
		op->m.split = msg->ledger_post_split;
		return 0;
	case IPC_LEDGER_VOID:
		op->m.voiding = msg->ledger_void;
		return 0;
	case IPC_DISPUTE_OPEN:
		op->m.open = msg->dispute_open;
		return 0;
	case IPC_DISPUTE_RESOLVE:
		op->m.resolve = msg->dispute_resolve;
		return 0;
	case IPC_DISPUTE_GET:
		op->m.get = msg->dispute_get;
		return 0;
	case IPC_EARNINGS:
		op->m.earnings = msg->earnings;
		return 0;
	default:
		return -1;
	}
}

void
ledger_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg)
{
	struct ledger *s = d->priv;
	struct op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL) {
		d->errors++;
		ipc_reply_error(d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	if (op_copy(op, type, msg) != 0) {
		free(op);
		log_warnx("no handler for %s from %s", ipc_type_name(type), ipc_role_name(req->from));
		ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
		return;
	}
	op->s = s;
	op->req = *req;
	op->type = type;
	if (dbq_push(s->q, op_apply, op_done, op) != 0) {
		free(op);
		d->errors++;
		ipc_reply_error(d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
	}
}
