/*
 * settle.c — SETTLE: the edge says how a paid request ended.
 *
 *   CAPTURE (the upstream answered 2xx): reserved → captured, durable, then
 *     SETTLED with the Payment-Receipt value, and a LEDGER_POST (buyer
 *     clearing → seller earnings + platform fee) owed through the outbox;
 *     a LEDGER_POST_SPLIT when the buyer paid for the premium pool, whose
 *     surcharge (money_premium_part) goes to platform:premium.
 *   RELEASE (anything else): reserved → released, SETTLED with no receipt,
 *     and a LEDGER_VOID owed through the outbox.
 *
 * Both are idempotent: a repeated CAPTURE with the same award gets the same
 * receipt (rebuilt from the stored capture time, so nothing secret is
 * stored), a repeated RELEASE the same empty answer. A capture after a
 * release, a release after a capture, or a capture naming another seller
 * or price is refused (409). The decision is pay_settle_decide, a pure
 * function of the row and the message.
 *
 * Security stance: the edge cannot invent who earns what. The seller, key
 * and price come with the router's award, a MAC under the ticket secret
 * (which the edge does not hold); a CAPTURE whose award does not verify is
 * refused with 403 before the database is touched, and so is a price above
 * what the buyer paid. A RELEASE needs no award: it only gives the buyer's
 * payment back.
 */
#include "payments/payments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64url.h"
#include "common/capab.h"
#include "common/jcs.h"
#include "common/log.h"
#include "common/money.h"
#include "common/timefmt.h"

struct settle_op {
	struct payments *s;
	struct ipc_req req;
	struct ipc_settle m; /* award_mac cleared: it points into the received frame */
	enum pay_settle_action act;
	struct pay_row row;
};

int64_t
pay_premium_of(const struct pay_row *row)
{
	int64_t premium = 0;

	if (row->pool == POOL_PREMIUM && !money_premium_part(row->amount, &premium))
		return 0; /* amounts are positive: cannot happen */
	return premium;
}

enum pay_settle_action
pay_settle_decide(const struct pay_row *row, const struct ipc_settle *m)
{
	int capture = m->outcome == SETTLE_CAPTURE;

	if (row == NULL)
		return SA_UNKNOWN;
	switch (row->state) {
	case PAY_RESERVED:
		if (!capture)
			return SA_RELEASE;
		/* The seller's price must fit beside the premium surcharge, if any. */
		return m->seller_price > row->amount - pay_premium_of(row) ? SA_OVER_AMOUNT :
									       SA_CAPTURE;
	case PAY_CAPTURED:
		if (capture && strcmp(row->seller_id, m->seller_id) == 0 &&
		    strcmp(row->key_id, m->key_id) == 0 && row->seller_amount == m->seller_price)
			return SA_SAME_CAPTURE;
		return SA_CONFLICT;
	case PAY_RELEASED:
		return capture ? SA_CONFLICT : SA_SAME_RELEASE;
	}
	return SA_CONFLICT;
}

static void
settle_problem(struct payments *s, const struct ipc_req *req, uint16_t status,
    const char *name, const char *detail)
{
	struct ipc_problem p;

	memset(&p, 0, sizeof(p));
	p.status = status;
	snprintf(p.name, sizeof(p.name), "%s", name);
	snprintf(p.detail, sizeof(p.detail), "%s", detail);
	ipc_reply(s->d->ipc, req, IPC_PROBLEM, &p);
}

static int
settle_apply(sqlite3 *db, void *arg)
{
	struct settle_op *op = arg;
	int64_t now = time_now_ms() / 1000;
	int found = pay_store_get(db, op->m.payment_id, &op->row);

	if (found < 0)
		return -1;
	op->act = pay_settle_decide(found ? &op->row : NULL, &op->m);
	if (op->act == SA_CAPTURE) {
		op->row.receipt_ts = now;
		memcpy(op->row.region, op->m.region, sizeof(op->row.region));
		op->row.premium_amount = pay_premium_of(&op->row);
		return pay_store_capture(db, op->m.payment_id, &op->m, op->row.premium_amount, now);
	}
	if (op->act == SA_RELEASE)
		return pay_store_release(db, op->m.payment_id, 1, now);
	return 0;
}

/*
 * The receipt with "region": the region tag of the key that served
 * (issue 5: the region used is on the receipt). It is added to the encoded
 * receipt so the codec in common/mpp.c stays as it is. Length, or -1.
 */
static int
receipt_add_region(char *out, size_t cap, int len, const char *region)
{
	uint8_t raw[1024];
	size_t rawlen;
	cJSON *r = NULL;
	char *jcs = NULL;
	int rc = -1;

	if (len < 0 || region[0] == '\0')
		return len;
	if (b64url_decode(out, (size_t)len, raw, sizeof(raw) - 1, &rawlen, 0) == 0 &&
	    (r = cJSON_ParseWithLength((const char *)raw, rawlen)) != NULL &&
	    cJSON_AddStringToObject(r, "region", region) != NULL && (jcs = jcs_serialize(r)) != NULL)
		rc = b64url_encode((const uint8_t *)jcs, strlen(jcs), out, cap);
	cJSON_Delete(r);
	free(jcs);
	return rc;
}

int
pay_receipt(const char *id, const struct pay_row *row, char *out, size_t cap)
{
	/* reference: the method's own (payment hash, PaymentIntent, transaction), else the id. */
	return receipt_add_region(out, cap,
	    mpp_receipt_encode_id(row->method, row->reference[0] != '\0' ? row->reference : id, id,
		row->receipt_ts, out, cap),
	    row->region);
}

/* Answer a capture with its receipt; 0, or -1 if it cannot be built. */
static int
settle_receipt(struct settle_op *op)
{
	struct ipc_settled r;

	memset(&r, 0, sizeof(r));
	if (pay_receipt(op->m.payment_id, &op->row, r.receipt, sizeof(r.receipt)) < 0)
		return -1;
	ipc_reply(op->s->d->ipc, &op->req, IPC_SETTLED, &r);
	return 0;
}

/* After a fresh capture or release: tell the ledger now (the outbox keeps it until ACK). */
static void
settle_tell_ledger(struct settle_op *op)
{
	struct pay_outbox_row row;

	memset(&row, 0, sizeof(row));
	memcpy(row.xfer_id, op->row.xfer_id, sizeof(row.xfer_id));
	row.op = op->act == SA_CAPTURE ? OB_POST : OB_VOID;
	memcpy(row.seller_id, op->m.seller_id, sizeof(row.seller_id));
	row.seller_amount = op->m.seller_price;
	row.premium_amount = op->act == SA_CAPTURE ? op->row.premium_amount : 0;
	if (!op->s->stopping)
		pay_outbox_send(op->s, &row);
	log_info("payment %s %s", op->m.payment_id,
	    op->act == SA_CAPTURE ? "captured" : "released");
}

static void
settle_done(void *arg, int status)
{
	struct settle_op *op = arg;
	struct payments *s = op->s;
	struct ipc_settled none;

	memset(&none, 0, sizeof(none));
	if (status != 0) {
		ipc_reply_error(s->d->ipc, &op->req, IPC_ERR_INTERNAL, "cannot record the settlement");
		s->d->errors++;
	} else if (op->act == SA_CAPTURE || op->act == SA_SAME_CAPTURE) {
		if (settle_receipt(op) != 0)
			ipc_reply_error(s->d->ipc, &op->req, IPC_ERR_INTERNAL, "cannot build a receipt");
	} else if (op->act == SA_RELEASE || op->act == SA_SAME_RELEASE) {
		ipc_reply(s->d->ipc, &op->req, IPC_SETTLED, &none);
	} else if (op->act == SA_UNKNOWN) {
		settle_problem(s, &op->req, 404, "unknown-payment", "no payment has this id");
	} else if (op->act == SA_OVER_AMOUNT) {
		settle_problem(s, &op->req, 403, "invalid-award",
		    "the seller's price exceeds what the buyer paid");
	} else {
		settle_problem(s, &op->req, 409,
		    op->row.state == PAY_CAPTURED ? "payment-captured" : "payment-released",
		    op->row.state == PAY_CAPTURED ?
			"the payment was captured already, for another award" :
			"the payment was released already and cannot be captured");
	}
	if (status == 0 && (op->act == SA_CAPTURE || op->act == SA_RELEASE))
		settle_tell_ledger(op);
	free(op);
}

/* Does the award in m come from the router (ticket secret), for this payment? */
static int
award_valid(struct payments *s, const struct ipc_settle *m)
{
	uint8_t want[IPC_MAC_LEN];

	if (m->seller_id[0] == '\0' || m->key_id[0] == '\0')
		return 0;
	if (capab_award_mac(s->keys.ticket.key, s->keys.ticket.len, m->payment_id, m->key_id,
		m->seller_id, m->seller_price, want) != 0)
		return 0;
	return capab_equal(&m->award_mac, want) == 0;
}

void
pay_on_settle(struct payments *s, const struct ipc_req *req, const struct ipc_settle *m)
{
	struct settle_op *op;

	if (m->outcome == SETTLE_CAPTURE && !award_valid(s, m)) {
		log_warnx("payment %s: capture with an award that does not verify", m->payment_id);
		settle_problem(s, req, 403, "invalid-award", "the award does not verify");
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	op->s = s;
	op->req = *req;
	op->m = *m;
	op->m.award_mac.p = NULL;
	op->m.award_mac.len = 0;
	if (pay_write(s, settle_apply, settle_done, op) != 0) {
		ipc_reply_error(s->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		free(op);
	}
}
