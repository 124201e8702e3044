/*
 * request.c — LEDGER_PENDING, LEDGER_POST and LEDGER_VOID from payments.
 *
 * Security stance: only payments may send these (the peer table in main.c);
 * what it sends is still checked field by field in journal.c. Each request is
 * queued as one write of a group commit (common/dbq.h) and answered only
 * after its batch is durable: ACK when the transfer is recorded (or was
 * already, identically), ERROR IPC_ERR_REFUSED when it conflicts with the
 * records or is invalid, ERROR IPC_ERR_INTERNAL when the database failed, in
 * which case nothing of it was kept and payments may retry.
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
		struct ipc_ledger_void voiding;
	} m;
	struct journal_result res;
};

static int
op_apply(sqlite3 *db, void *arg)
{
	struct op *op = arg;
	int64_t now = time_now_ms();

	(void)db;
	switch (op->type) {
	case IPC_LEDGER_PENDING:
		return journal_pending(op->s->j, &op->m.pending, now, &op->res);
	case IPC_LEDGER_POST:
		return journal_post(op->s->j, &op->m.post, now, &op->res);
	default:
		return journal_void(op->s->j, &op->m.voiding, now, &op->res);
	}
}

static void
op_done(void *arg, int status)
{
	struct op *op = arg;
	struct daemon *d = op->s->d;

	if (status == 0 && op->res.status != JOURNAL_REFUSED && op->res.status != JOURNAL_FAILED)
		ipc_reply(d->ipc, &op->req, IPC_ACK, NULL);
	else {
		d->errors++;
		if (status == 0)
			ipc_reply_error(d->ipc, &op->req, IPC_ERR_REFUSED, op->res.detail);
		else
			ipc_reply_error(d->ipc, &op->req, IPC_ERR_INTERNAL, "not recorded");
	}
	free(op);
}

void
ledger_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg)
{
	struct ledger *s = d->priv;
	struct op *op;

	if (type != IPC_LEDGER_PENDING && type != IPC_LEDGER_POST && type != IPC_LEDGER_VOID) {
		log_warnx("no handler for %s from %s", ipc_type_name(type), ipc_role_name(req->from));
		ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		d->errors++;
		ipc_reply_error(d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->s = s;
	op->req = *req;
	op->type = type;
	if (type == IPC_LEDGER_PENDING)
		op->m.pending = msg->ledger_pending;
	else if (type == IPC_LEDGER_POST)
		op->m.post = msg->ledger_post;
	else
		op->m.voiding = msg->ledger_void;
	if (dbq_push(s->q, op_apply, op_done, op) != 0) {
		free(op);
		d->errors++;
		ipc_reply_error(d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
	}
}
