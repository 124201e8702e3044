/*
 * ledger_link.c — requests to cn2-ledger, and the outbox of postings it
 * still owes an ACK for.
 *
 * Every LEDGER_* request is tracked here until its reply, so that at stop
 * each caller can be told "no answer" (LR_LOST) while its state still
 * exists, instead of hearing from ipc_stop after payments has closed its
 * database. The ledger is idempotent on (transfer id, fields), so anything
 * whose answer was lost is simply sent again.
 *
 * The outbox (ledger_outbox in payments.db) is written in the same
 * transaction as the capture or release it follows. A posting leaves it
 * when the ledger ACKs; a transport failure leaves it for the next sweep or
 * the next time the ledger link comes up; a refusal (the ledger answered
 * ERROR) counts a try, and after OUTBOX_MAX_TRIES (store.c) the posting is
 * left for an operator, with an error in the log each time.
 *
 * Security stance: the ledger is a peer we trust to answer, not to be up.
 * Only transfer ids, seller ids and amounts travel or are logged here;
 * a reply of an unexpected type is logged and ignored.
 */
#include "payments/payments.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct pay_call {
	struct pay_call *next, *prev;
	struct payments *s;
	uint64_t id;
	pay_ledger_fn done;
	void *arg;
};

struct outbox_op {
	struct payments *s;
	struct pay_outbox_row row;
	enum pay_ledger_result r;
};

#define OUTBOX_BATCH 32

static void
call_unlink(struct payments *s, struct pay_call *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

static void
call_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pay_call *c = arg;
	enum pay_ledger_result r = LR_LOST;

	if (status == 0 && !(ipc_type_flags(type) & IPC_MF_FINAL)) {
		log_warnx("unexpected %s from the ledger", ipc_type_name(type));
		return;
	}
	if (status == 0 && type == IPC_ACK)
		r = LR_ACK;
	else if (status == 0) {
		r = LR_REFUSED;
		if (type == IPC_ERROR)
			log_warnx("the ledger answered: %s", msg->error.detail);
	}
	call_unlink(c->s, c);
	c->done(c->arg, r);
	free(c);
}

int
pay_ledger_send(struct payments *s, uint16_t type, const void *msg, pay_ledger_fn done,
    void *arg)
{
	struct pay_call *c;

	if (s->stopping || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->s = s;
	c->done = done;
	c->arg = arg;
	c->id = ipc_request(s->d->ipc, ROLE_LEDGER, type, msg, (uint32_t)s->cfg->ledger_timeout_ms,
	    call_on_reply, c);
	if (c->id == 0) {
		free(c);
		return -1;
	}
	c->next = s->calls;
	if (s->calls != NULL)
		s->calls->prev = c;
	s->calls = c;
	return 0;
}

void
pay_ledger_cancel_all(struct payments *s)
{
	struct pay_call *c;

	while ((c = s->calls) != NULL) {
		ipc_forget(s->d->ipc, c->id);
		call_unlink(s, c);
		c->done(c->arg, LR_LOST);
		free(c);
	}
}

static int
outbox_apply(sqlite3 *db, void *arg)
{
	struct outbox_op *op = arg;

	return op->r == LR_ACK ? pay_outbox_done(db, op->row.xfer_id) :
				 pay_outbox_failed(db, op->row.xfer_id);
}

static void
outbox_written(void *arg, int status)
{
	(void)status; /* a lost write only means the posting is sent once more */
	free(arg);
}

static void
outbox_on_reply(void *arg, enum pay_ledger_result r)
{
	struct outbox_op *op = arg;
	const char *what = op->row.op == OB_POST ? "post" : "void";

	op->s->outbox_open--;
	if (r == LR_LOST) {
		log_info("%s of transfer %s not confirmed; it stays queued", what, op->row.xfer_id);
		free(op);
		return;
	}
	if (r == LR_REFUSED)
		log_err("the ledger refused to %s transfer %s; an operator must look", what,
		    op->row.xfer_id);
	op->r = r;
	if (pay_write(op->s, outbox_apply, outbox_written, op) != 0)
		free(op);
}

void
pay_outbox_send(struct payments *s, const struct pay_outbox_row *row)
{
	struct ipc_ledger_post post;
	struct ipc_ledger_post_split split;
	struct ipc_ledger_void vd;
	struct outbox_op *op;
	int rc;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return;
	op->s = s;
	op->row = *row;
	memset(&post, 0, sizeof(post));
	memset(&split, 0, sizeof(split));
	memset(&vd, 0, sizeof(vd));
	if (row->op == OB_POST && row->premium_amount > 0) {
		memcpy(split.xfer_id, row->xfer_id, sizeof(split.xfer_id));
		memcpy(split.seller_id, row->seller_id, sizeof(split.seller_id));
		split.seller_amount = row->seller_amount;
		split.premium_amount = row->premium_amount;
		rc = pay_ledger_send(s, IPC_LEDGER_POST_SPLIT, &split, outbox_on_reply, op);
	} else if (row->op == OB_POST) {
		memcpy(post.xfer_id, row->xfer_id, sizeof(post.xfer_id));
		memcpy(post.seller_id, row->seller_id, sizeof(post.seller_id));
		post.seller_amount = row->seller_amount;
		rc = pay_ledger_send(s, IPC_LEDGER_POST, &post, outbox_on_reply, op);
	} else {
		memcpy(vd.xfer_id, row->xfer_id, sizeof(vd.xfer_id));
		rc = pay_ledger_send(s, IPC_LEDGER_VOID, &vd, outbox_on_reply, op);
	}
	if (rc != 0) {
		free(op);
		return;
	}
	s->outbox_open++;
}

void
pay_outbox_flush(struct payments *s)
{
	struct pay_outbox_row rows[OUTBOX_BATCH];
	int n;

	/* One batch at a time: a batch in flight will be followed by the next sweep. */
	if (s->stopping || s->outbox_open > 0 || !ipc_link_up(s->d->ipc, ROLE_LEDGER))
		return;
	if ((n = pay_outbox_list(s->db, rows, OUTBOX_BATCH)) < 0)
		return;
	for (int i = 0; i < n; i++)
		pay_outbox_send(s, &rows[i]);
}
