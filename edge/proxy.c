/*
 * proxy.c — a buyer's request to a provider subdomain, as DESIGN.md §3 has
 * it: QUOTE (router) → CHALLENGE (payments, 402) or VERIFY (payments) →
 * ASSIGN (router) → FORWARD (vault, streamed back) → SETTLE (payments).
 *
 * The edge decides nothing here. It carries the ticket from payments to the
 * router and the grant from the router to the vault, neither of which it can
 * forge, and it asks payments to capture only once the upstream answered
 * 2xx (before the buyer sees the head, so the receipt goes with it) and to
 * release in every other case, including a buyer who goes away.
 *
 * Failover: when the upstream fails before the buyer has seen anything —
 * no response head (FWD_END started=0), or a head that blames the key
 * (401, 402, 403, 429, 500, 502, 503, 504) — the edge asks the router again
 * with the same ticket, naming the keys already tried in ASSIGN's exclude,
 * up to max_attempts keys (the router also caps grants per payment). A
 * failed head is held meanwhile (the vault pauses without ACKs): if another
 * key is granted, that stream is cancelled and the request goes to the new
 * key, so the buyer sees only the latency; if none is, the held answer goes
 * to the buyer as it is (not captured), except a refusal of the seller's key
 * (401, 402, 403), which the buyer never sees: that is a 502
 * upstream-failed, and the credential may be presented again.
 *
 * Routing inputs: X-CN2-Pool (pool), X-CN2-Session (conversation affinity,
 * passed to the router in ASSIGN) and the region (region.c: CF-IPCountry,
 * from a trusted proxy only). The region of the key that served goes to
 * payments in SETTLE, for the receipt.
 *
 * Security stance: the buyer's credential travels only to payments; the
 * buyer's Authorization and Payment-Authorization never reach the vault; the
 * upstream's own authentication headers and cookies never reach the buyer.
 * Bodies are passed through, never logged. Memory per request is bounded:
 * the vault sends at most its window of bytes the edge has not acknowledged,
 * and the edge acknowledges only what the buyer's socket has taken.
 */
#include "edge/edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/md.h>

#include "common/log.h"

#define QUOTE_TIMEOUT_MS 5000
#define PAY_TIMEOUT_MS 15000
#define FORWARD_IDLE_MS 180000

enum pstate { P_QUOTE, P_CHALLENGE, P_VERIFY, P_ASSIGN, P_FORWARD, P_DONE };

struct pjob;

/*
 * One FORWARD and its stream. A job has at most one live one; one it gave
 * up for another key (failover) is dead: what it still sends is dropped
 * until its final message frees it.
 */
struct pfwd {
	struct pjob *j;
	uint64_t id;
	int dead;
};

struct pjob {
	struct hjob base; /* first: the server sees only this */
	struct edge *e;
	enum pstate state;
	int open;	   /* IPC requests open: the job lives until they end */
	struct pfwd *fwd;  /* the live FORWARD, while its stream is open */
	struct ipc_verify cred; /* the route, realm, accept and credential */
	char credential[16384];
	int reserved;	   /* payments reserved a payment: it must be settled */
	int settled;	   /* SETTLE sent */
	struct ipc_ticket ticket;
	uint8_t ticket_mac[IPC_MAC_LEN];
	struct ipc_grant grant;
	uint8_t grant_mac[IPC_MAC_LEN], award_mac[IPC_MAC_LEN];
	int head_sent;	   /* the response head went to the buyer */
	int fwd_ended, fwd_ok;
	uint16_t status;
	char *headers;	   /* filtered upstream headers, until the head is sent */
	char *held;	   /* data that arrived before the head could be sent */
	size_t held_len;
	size_t unacked;	   /* bytes written to the buyer and not yet acknowledged */
	struct ipc_verify_idem idem; /* Idempotency-Key and body hash, when the key was sent */
	uint8_t idem_hash[32];
	char session[IPC_SESSION_MAX + 1]; /* X-CN2-Session, or "" */
	char tried[256];   /* keys that failed this request, comma-separated (ASSIGN's exclude) */
	int attempts;	   /* ASSIGNs sent */
	int reassigning;   /* a failed head is held while the router looks for another key */
	char fail_detail[160]; /* how the last key failed */
};

static void pjob_settle(struct pjob *j, int capture);
static void pjob_assign(struct pjob *j);

/* Life cycle: free when nothing is open and the buyer is answered or gone. */

static void
pjob_maybe_free(struct pjob *j)
{
	if (j->open > 0 || j->base.conn != NULL)
		return;
	if (j->reserved && !j->settled) {
		pjob_settle(j, 0);
		return;
	}
	explicit_bzero(j->credential, sizeof(j->credential));
	free(j->headers);
	free(j->held);
	free(j);
}

/* The answer is complete: from here on the job must not touch the connection. */
static struct hconn *
pjob_release_conn(struct pjob *j)
{
	struct hconn *c = j->base.conn;

	j->state = P_DONE;
	j->base.conn = NULL;
	return c;
}

static void
pjob_problem(struct pjob *j, int status, const char *name, const char *detail)
{
	struct hconn *c = pjob_release_conn(j);

	if (c != NULL)
		hconn_problem(c, status, name, detail);
}

static int
pjob_request(struct pjob *j, enum ipc_role to, uint16_t type, const void *msg, uint32_t ms,
    ipc_reply_fn cb)
{
	uint64_t id = ipc_request(j->e->d->ipc, to, type, msg, ms, cb, j);

	if (id == 0)
		return -1;
	j->open++;
	return 0;
}

/* An IPC failure (peer down, timeout) or an answer that makes no sense. */
static void
pjob_unavailable(struct pjob *j, const char *what)
{
	char detail[200];

	snprintf(detail, sizeof(detail), "%s is unavailable; %s", what,
	    j->reserved ? "your payment was not captured" : "nothing was charged");
	pjob_problem(j, 503, "service-unavailable", detail);
}

/* Settling. */

static void
pjob_write_head(struct pjob *j, const char *receipt)
{
	struct hconn *c = j->base.conn;
	size_t n = strlen(j->headers) + 2048;
	char *extra = malloc(n);

	if (c == NULL || extra == NULL) {
		free(extra);
		return;
	}
	if (receipt != NULL && *receipt != '\0')
		snprintf(extra, n, "%sPayment-Receipt: %s\r\nCache-Control: private\r\n", j->headers,
		    receipt);
	else
		snprintf(extra, n, "%s", j->headers);
	if (hconn_stream_head(c, j->status, extra) == 0) {
		j->head_sent = 1;
		if (j->held_len > 0 && hconn_stream_data(c, j->held, j->held_len) == 0)
			j->unacked += j->held_len;
	}
	free(extra);
	free(j->held);
	j->held = NULL;
	j->held_len = 0;
}

/*
 * A Server-Sent Events response cut after its head ends with an explicit
 * error event, so an SSE client learns why instead of seeing a quiet end.
 * The leading blank lines end whatever event the cut left half-written (a
 * blank line at an event boundary dispatches nothing). The body still ends
 * without its last chunk: never a clean end.
 */
static void
pjob_sse_error(struct pjob *j, struct hconn *c)
{
	static const char event[] =
	    "\n\nevent: error\n"
	    "data: {\"type\":\"https://cn2.ai/problems/upstream-cut\","
	    "\"detail\":\"the upstream stream was cut before its end\"}\n\n";
	const char *ct = j->headers != NULL ? strcasestr(j->headers, "content-type:") : NULL;

	if (ct == NULL || (ct != j->headers && ct[-1] != '\n'))
		return;
	ct += strlen("content-type:");
	ct += strspn(ct, " \t");
	if (strncasecmp(ct, "text/event-stream", 17) == 0)
		hconn_stream_data(c, event, sizeof(event) - 1);
}

static void
pjob_finish_stream(struct pjob *j)
{
	int ok = j->fwd_ok;
	struct hconn *c = pjob_release_conn(j);

	if (c != NULL && !ok)
		pjob_sse_error(j, c);
	if (c != NULL)
		hconn_stream_end(c, ok);
}

static void
pjob_on_settled(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pjob *j = arg;

	j->open--;
	if (status != 0 || type != IPC_SETTLED) {
		log_warnx("settle of a payment failed: %s",
		    status != 0 ? "no answer" : ipc_type_name(type));
		if (j->state == P_FORWARD && !j->head_sent)
			pjob_problem(j, 503, "service-unavailable",
			    "the payment could not be settled; it was not captured");
	} else if (j->state == P_FORWARD && !j->head_sent && j->headers != NULL) {
		pjob_write_head(j, msg->settled.receipt);
		if (j->fwd_ended)
			pjob_finish_stream(j);
	}
	pjob_maybe_free(j);
}

/* capture: the upstream answered 2xx; otherwise release the reservation. */
static void
pjob_settle(struct pjob *j, int capture)
{
	struct ipc_settle s;

	memset(&s, 0, sizeof(s));
	snprintf(s.payment_id, sizeof(s.payment_id), "%s", j->ticket.payment_id);
	s.outcome = capture ? SETTLE_CAPTURE : SETTLE_RELEASE;
	if (capture) {
		memcpy(s.key_id, j->grant.key_id, sizeof(s.key_id));
		memcpy(s.seller_id, j->grant.seller_id, sizeof(s.seller_id));
		s.seller_price = j->grant.seller_price;
		s.award_mac.p = j->award_mac;
		s.award_mac.len = IPC_MAC_LEN;
		memcpy(s.region, j->grant.region, sizeof(s.region));
	}
	j->settled = 1;
	if (pjob_request(j, ROLE_PAYMENTS, IPC_SETTLE, &s, PAY_TIMEOUT_MS, pjob_on_settled) != 0) {
		/* payments' sweep releases what is never settled. */
		log_warnx("payments unreachable: a reservation is left to its sweep");
		pjob_maybe_free(j);
	}
}

/* The upstream response, streamed from the vault. */

/* Upstream response headers the buyer must not see, or that the edge writes itself. */
static int
drop_response_header(const char *name, size_t n)
{
	static const char *const drop[] = {
	    "content-length", "transfer-encoding", "connection", "keep-alive", "date",
	    "www-authenticate", "proxy-authenticate", "set-cookie", "payment-receipt",
	    "cache-control", "trailer", "upgrade", "proxy-connection",
	};

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (strlen(drop[i]) == n && strncasecmp(name, drop[i], n) == 0)
			return 1;
	return 0;
}

/* Keep the end-to-end header lines of the vault's "Name: value\r\n" block. */
static char *
filter_response_headers(const struct ipc_bytes *b)
{
	const char *p = (const char *)b->p, *end = p + b->len;
	char *out = malloc(b->len + 1);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2), *colon;

		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL && colon > p && !drop_response_header(p, (size_t)(colon - p))) {
			memcpy(out + n, p, (size_t)(eol + 2 - p));
			n += (size_t)(eol + 2 - p);
		}
		p = eol + 2;
	}
	out[n] = '\0';
	return out;
}

static void
pjob_ack(struct pjob *j)
{
	struct ipc_fwd_ack a;

	if (j->unacked == 0 || j->fwd == NULL)
		return;
	a.bytes = (uint32_t)j->unacked;
	j->unacked = 0;
	ipc_send_inflight(j->e->d->ipc, j->fwd->id, IPC_FWD_ACK, &a);
}

/* The buyer's socket took what was queued: let the vault send more. */
static void
pjob_drain(struct hjob *base)
{
	pjob_ack((struct pjob *)base);
}

/* Failover. */

/* Upstream answers that blame the key, not the request: another key may do better. */
static int
failover_status(uint16_t status)
{
	return status == 401 || status == 402 || status == 403 || status == 429 ||
	    status == 500 || status == 502 || status == 503 || status == 504;
}

/* A refusal of the seller's key: the buyer, who has no part in it, never sees it. */
static int
refusal_status(uint16_t status)
{
	return status == 401 || status == 402 || status == 403;
}

/* May this request try another key? The buyer is there, attempts are left, the list has room. */
static int
pjob_can_retry(const struct pjob *j)
{
	return j->base.conn != NULL && j->attempts < j->e->cfg->max_attempts &&
	    strlen(j->tried) + strlen(j->grant.key_id) + 2 <= sizeof(j->tried);
}

/* Ask the router for another key, leaving out every key tried so far. */
static void
pjob_retry(struct pjob *j)
{
	size_t n = strlen(j->tried);

	snprintf(j->tried + n, sizeof(j->tried) - n, "%s%s", n > 0 ? "," : "", j->grant.key_id);
	log_info("payment %s: key %s failed (%s); trying another", j->ticket.payment_id,
	    j->grant.key_id, j->fail_detail);
	pjob_assign(j);
}

/* Give up the held answer of a failed key: its stream is cancelled, its bytes dropped. */
static void
pjob_abandon(struct pjob *j)
{
	if (!j->reassigning)
		return;
	j->reassigning = 0;
	if (j->fwd != NULL) {
		ipc_send_inflight(j->e->d->ipc, j->fwd->id, IPC_FWD_CANCEL, NULL);
		j->fwd->dead = 1;
		j->fwd = NULL;
	}
	free(j->headers);
	free(j->held);
	j->headers = j->held = NULL;
	j->held_len = 0;
	j->status = 0;
	j->fwd_ended = j->fwd_ok = 0;
}

static void
pjob_upstream_failed(struct pjob *j)
{
	char detail[400];

	snprintf(detail, sizeof(detail),
	    "%s%s; your payment was not captured and the same credential may be presented again",
	    j->fail_detail, j->attempts > 1 ? ", and no other key could take the request" : "");
	pjob_problem(j, 502, "upstream-failed", detail);
}

/* The router has no other key: the held answer goes out as it is, unless it is a refusal. */
static void
pjob_failover_failed(struct pjob *j)
{
	if (j->reassigning && !refusal_status(j->status)) {
		j->reassigning = 0;
		j->state = P_FORWARD;
		pjob_settle(j, 0); /* the head follows SETTLED (pjob_on_settled) */
		return;
	}
	pjob_abandon(j);
	pjob_upstream_failed(j);
}

/* The upstream response, continued. */

static void
pjob_on_head(struct pjob *j, const struct ipc_fwd_head *h)
{
	if (j->headers != NULL || (j->headers = filter_response_headers(&h->headers)) == NULL) {
		j->fwd_ok = 0;
		return;
	}
	j->status = h->status;
	if (failover_status(h->status) && pjob_can_retry(j)) {
		j->reassigning = 1;
		snprintf(j->fail_detail, sizeof(j->fail_detail), "the upstream answered %u",
		    (unsigned)h->status);
		pjob_retry(j);
		return;
	}
	/* A buyer who went away is never charged. */
	pjob_settle(j, h->status >= 200 && h->status < 300 && j->base.conn != NULL);
}

static void
pjob_on_data(struct pjob *j, const struct ipc_fwd_data *d)
{
	struct hconn *c = j->base.conn;
	char *p;

	if (c == NULL)
		return;
	if (!j->head_sent) {
		if ((p = realloc(j->held, j->held_len + d->data.len)) == NULL)
			return;
		memcpy(p + j->held_len, d->data.p, d->data.len);
		j->held = p;
		j->held_len += d->data.len;
		return;
	}
	if (hconn_stream_data(c, d->data.p, d->data.len) != 0)
		return;
	j->unacked += d->data.len;
	if (hconn_queued(c) < HCONN_LOW_WATER)
		pjob_ack(j);
}

static void
pjob_on_end(struct pjob *j, const struct ipc_fwd_end *e)
{
	j->fwd_ended = 1;
	j->fwd_ok = e->ok;
	if (j->reassigning)
		return; /* the held answer waits for the router's word */
	if (!e->started) {
		/* Nothing reached the buyer: another key, or release and say so. */
		snprintf(j->fail_detail, sizeof(j->fail_detail), "the upstream did not answer (%s)",
		    e->detail);
		if (pjob_can_retry(j)) {
			pjob_retry(j);
			return;
		}
		pjob_settle(j, 0);
		pjob_upstream_failed(j);
		return;
	}
	if (j->head_sent)
		pjob_finish_stream(j);
}

/* The vault could not serve the FORWARD (PROBLEM, ERROR, or no answer). */
static void
pjob_on_forward_failed(struct pjob *j, int status, uint16_t type, const union ipc_any *msg)
{
	pjob_abandon(j);
	if (status == 0 && type == IPC_PROBLEM)
		pjob_problem(j, msg->problem.status, msg->problem.name, msg->problem.detail);
	else if (!j->head_sent)
		pjob_unavailable(j, "the vault");
	else
		pjob_finish_stream(j);
	if (!j->settled)
		pjob_settle(j, 0);
}

static void
pjob_on_forward(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pfwd *f = arg;
	struct pjob *j = f->j;
	int final = status != 0 || type == IPC_PROBLEM || type == IPC_ERROR || type == IPC_FWD_END;

	if (final) {
		j->open--;
		if (j->fwd == f)
			j->fwd = NULL;
	}
	if (f->dead) {
		/* A stream given up for another key: nothing of it reaches the buyer. */
	} else if (status != 0 || type == IPC_PROBLEM || type == IPC_ERROR) {
		pjob_on_forward_failed(j, status, type, msg);
	} else if (type == IPC_FWD_HEAD) {
		pjob_on_head(j, &msg->fwd_head);
	} else if (type == IPC_FWD_DATA) {
		pjob_on_data(j, &msg->fwd_data);
	} else if (type == IPC_FWD_END) {
		pjob_on_end(j, &msg->fwd_end);
	}
	if (final) {
		free(f);
		pjob_maybe_free(j);
	}
}

/* Request headers the vault must not get: hop-by-hop, framing, and every credential. */
static int
drop_request_header(const struct http_request *req, const char *name, size_t n)
{
	static const char *const drop[] = {
	    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
	    "trailer", "upgrade", "proxy-connection", "proxy-authorization", "expect",
	    "authorization", "payment-authorization", "accept-payment", "cookie",
	    "x-cn2-pool", "x-cn2-session", "cf-ipcountry", "x-forwarded-for", "forwarded",
	};
	const struct http_header *conn = http_header_get(req, "Connection");
	char token[64];

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (strlen(drop[i]) == n && strncasecmp(name, drop[i], n) == 0)
			return 1;
	/* Headers the Connection header names are hop-by-hop too. */
	if (conn != NULL && n < sizeof(token)) {
		memcpy(token, name, n);
		token[n] = '\0';
		return http_token_list_has(conn->value, conn->value_len, token);
	}
	return 0;
}

static int
build_request_headers(const struct http_request *req, char *out, size_t cap, size_t *len)
{
	size_t n = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		size_t need = h->name_len + 2 + h->value_len + 2;

		if (drop_request_header(req, h->name, h->name_len))
			continue;
		if (n + need > cap)
			return -1;
		memcpy(out + n, h->name, h->name_len);
		memcpy(out + n + h->name_len, ": ", 2);
		memcpy(out + n + h->name_len + 2, h->value, h->value_len);
		memcpy(out + n + need - 2, "\r\n", 2);
		n += need;
	}
	*len = n;
	return 0;
}

static void
pjob_forward(struct pjob *j)
{
	struct hconn *c = j->base.conn;
	const struct http_request *req = hconn_request(c);
	struct ipc_forward *f = calloc(1, sizeof(*f));
	struct pfwd *pf = calloc(1, sizeof(*pf));
	static char hdrs[65536];
	size_t hlen = 0, blen;
	uint64_t id;

	if (f == NULL || pf == NULL) {
		free(f);
		free(pf);
		pjob_problem(j, 503, "service-unavailable", "out of memory");
		return;
	}
	if (build_request_headers(req, hdrs, sizeof(hdrs), &hlen) != 0) {
		free(f);
		free(pf);
		pjob_problem(j, 431, "headers-too-large", "the request headers are too large");
		return;
	}
	f->grant = j->grant;
	memcpy(f->target, req->target, req->target_len);
	f->headers.p = (const uint8_t *)hdrs;
	f->headers.len = (uint32_t)hlen;
	f->body.p = (const uint8_t *)hconn_body(c, &blen);
	f->body.len = (uint32_t)blen;
	/* A new attempt's stream: nothing of a failed key's end carries over. */
	j->fwd_ended = j->fwd_ok = 0;
	j->state = P_FORWARD;
	pf->j = j;
	id = ipc_request(j->e->d->ipc, ROLE_VAULT, IPC_FORWARD, f, FORWARD_IDLE_MS,
	    pjob_on_forward, pf);
	free(f);
	if (id == 0) {
		free(pf);
		pjob_unavailable(j, "the vault");
		return;
	}
	j->open++;
	pf->id = id;
	j->fwd = pf;
}

/* ASSIGN: the router picks a key and grants its use once. */

static void
pjob_on_grant(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pjob *j = arg;

	j->open--;
	if (status == 0 && type == IPC_GRANT && msg->grant.mac.len == IPC_MAC_LEN &&
	    msg->grant.award_mac.len == IPC_MAC_LEN) {
		pjob_abandon(j); /* the held answer of the key this one replaces */
		j->grant = msg->grant;
		memcpy(j->grant_mac, msg->grant.mac.p, IPC_MAC_LEN);
		memcpy(j->award_mac, msg->grant.award_mac.p, IPC_MAC_LEN);
		j->grant.mac.p = j->grant_mac;
		j->grant.award_mac.p = j->award_mac;
		if (j->base.conn != NULL)
			pjob_forward(j);
	} else if (j->attempts > 1) {
		pjob_failover_failed(j);
	} else if (status == 0 && type == IPC_PROBLEM) {
		char detail[400];

		snprintf(detail, sizeof(detail), "%s; your payment was not captured",
		    msg->problem.detail);
		pjob_problem(j, msg->problem.status, msg->problem.name, detail);
	} else {
		pjob_unavailable(j, "the router");
	}
	pjob_maybe_free(j);
}

static void
pjob_assign(struct pjob *j)
{
	struct ipc_assign a;

	memset(&a, 0, sizeof(a));
	a.ticket = j->ticket;
	memcpy(a.exclude, j->tried, sizeof(a.exclude));
	memcpy(a.session, j->session, sizeof(a.session));
	j->attempts++;
	j->state = P_ASSIGN;
	if (pjob_request(j, ROLE_ROUTER, IPC_ASSIGN, &a, QUOTE_TIMEOUT_MS, pjob_on_grant) != 0) {
		pjob_abandon(j);
		pjob_unavailable(j, "the router");
	}
}

/* CHALLENGE and VERIFY: payments answers with a 402 (or 400/409) or a ticket. */

static void
pjob_pay_answer(struct pjob *j, uint16_t status, const struct ipc_bytes *www,
    const struct ipc_bytes *body, uint32_t retry_after)
{
	size_t n = www->len * 2 + 256, off = 0;
	const char *s = (const char *)www->p, *end = s + www->len;
	struct hconn *c = pjob_release_conn(j);
	char *extra = malloc(n);

	if (extra == NULL || c == NULL) {
		free(extra);
		return;
	}
	/* One WWW-Authenticate line per offered method. */
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = (size_t)((nl != NULL ? nl : end) - s);

		if (len > 0)
			off += (size_t)snprintf(extra + off, n - off, "WWW-Authenticate: %.*s\r\n",
			    (int)len, s);
		s += len + (nl != NULL);
	}
	if (retry_after > 0)
		off += (size_t)snprintf(extra + off, n - off, "Retry-After: %u\r\n", retry_after);
	snprintf(extra + off, n - off, "Cache-Control: no-store\r\n");
	hconn_respond(c, status, "application/problem+json", extra, body->p, body->len);
	free(extra);
}

static void
pjob_pay_required(struct pjob *j, const struct ipc_pay_required *p)
{
	pjob_pay_answer(j, p->status, &p->www_auth, &p->body, 0);
}

/* payments' answer with a Retry-After (a 503 or 409 worth retrying later). */
static void
pjob_pay_problem(struct pjob *j, const struct ipc_pay_problem *p)
{
	pjob_pay_answer(j, p->status, &p->www_auth, &p->body, p->retry_after);
}

static void
pjob_on_ticket(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pjob *j = arg;

	j->open--;
	if (status == 0 && type == IPC_TICKET && msg->ticket.mac.len == IPC_MAC_LEN) {
		j->reserved = 1;
		j->ticket = msg->ticket;
		memcpy(j->ticket_mac, msg->ticket.mac.p, IPC_MAC_LEN);
		j->ticket.mac.p = j->ticket_mac;
		if (j->base.conn != NULL)
			pjob_assign(j);
	} else if (status == 0 && type == IPC_PAY_REQUIRED) {
		pjob_pay_required(j, &msg->pay_required);
	} else if (status == 0 && type == IPC_PAY_PROBLEM) {
		pjob_pay_problem(j, &msg->pay_problem);
	} else if (status == 0 && type == IPC_PROBLEM) {
		pjob_problem(j, msg->problem.status, msg->problem.name, msg->problem.detail);
	} else {
		pjob_unavailable(j, "the payments service");
	}
	pjob_maybe_free(j);
}

/* VERIFY, or VERIFY_IDEM when the buyer sent an Idempotency-Key. */
static int
pjob_verify(struct pjob *j)
{
	if (j->idem.idem_key[0] == '\0')
		return pjob_request(j, ROLE_PAYMENTS, IPC_VERIFY, &j->cred, PAY_TIMEOUT_MS,
		    pjob_on_ticket);
	j->idem.verify = j->cred;
	return pjob_request(j, ROLE_PAYMENTS, IPC_VERIFY_IDEM, &j->idem, PAY_TIMEOUT_MS,
	    pjob_on_ticket);
}

static void
pjob_pay(struct pjob *j)
{
	int rc;

	if (j->cred.ncredentials == 0) {
		struct ipc_challenge ch;

		memset(&ch, 0, sizeof(ch));
		ch.route = j->cred.route;
		memcpy(ch.realm, j->cred.realm, sizeof(ch.realm));
		ch.amount = j->cred.amount;
		memcpy(ch.accept, j->cred.accept, sizeof(ch.accept));
		j->state = P_CHALLENGE;
		rc = pjob_request(j, ROLE_PAYMENTS, IPC_CHALLENGE, &ch, PAY_TIMEOUT_MS,
		    pjob_on_ticket);
	} else {
		j->state = P_VERIFY;
		rc = pjob_verify(j);
	}
	if (rc != 0)
		pjob_unavailable(j, "the payments service");
}

/* QUOTE: what this route costs now, or 503 if no key can serve it. */

static void
pjob_on_quote(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct pjob *j = arg;

	j->open--;
	if (status == 0 && type == IPC_QUOTE_REP) {
		j->cred.amount = msg->quote_rep.amount;
		if (j->base.conn != NULL)
			pjob_pay(j);
	} else if (status == 0 && type == IPC_PROBLEM) {
		pjob_problem(j, msg->problem.status, msg->problem.name, msg->problem.detail);
	} else {
		pjob_unavailable(j, "the router");
	}
	pjob_maybe_free(j);
}

static void
pjob_cancel(struct hjob *base)
{
	struct pjob *j = (struct pjob *)base;

	if (j->fwd != NULL)
		ipc_send_inflight(j->e->d->ipc, j->fwd->id, IPC_FWD_CANCEL, NULL);
	pjob_maybe_free(j);
}

/* Entry: read what the buyer asks for and what they offer to pay with. */

static int
scheme_is_payment(const struct http_header *h)
{
	return h->value_len > 8 && strncasecmp(h->value, "Payment ", 8) == 0;
}

/* Count credentials (Authorization: Payment …, Payment-Authorization) and keep the first. */
static void
pjob_credentials(struct pjob *j, const struct http_request *req)
{
	const struct http_header *first = NULL;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		int is_auth = h->name_len == 13 && strncasecmp(h->name, "Authorization", 13) == 0;
		int is_pay = h->name_len == 21 &&
		    strncasecmp(h->name, "Payment-Authorization", 21) == 0;

		if (!(is_auth && scheme_is_payment(h)) && !is_pay)
			continue;
		if (j->cred.ncredentials < 255)
			j->cred.ncredentials++;
		if (first == NULL) {
			first = h;
			j->cred.header = is_pay;
		}
	}
	if (first != NULL) {
		size_t n = first->value_len < sizeof(j->credential) ? first->value_len
								      : sizeof(j->credential);

		memcpy(j->credential, first->value, n);
		j->cred.credential.p = (const uint8_t *)j->credential;
		j->cred.credential.len = (uint32_t)n;
	}
}

/* X-CN2-Pool: absent or "standard", or "premium"; anything else is an error. */
static int
parse_pool(const struct http_request *req, uint8_t *pool)
{
	const struct http_header *h = http_header_get(req, "X-CN2-Pool");

	*pool = POOL_STANDARD;
	if (h == NULL || (h->value_len == 8 && strncasecmp(h->value, "standard", 8) == 0))
		return 0;
	if (h->value_len == 7 && strncasecmp(h->value, "premium", 7) == 0) {
		*pool = POOL_PREMIUM;
		return 0;
	}
	return -1;
}

/* X-CN2-Session: absent, or 1..64 of [A-Za-z0-9._:-] (a conversation id the buyer chose). */
static int
parse_session(const struct http_request *req, char *out, size_t cap)
{
	const struct http_header *h = http_header_get(req, "X-CN2-Session");

	if (h == NULL)
		return 0;
	if (h->value_len == 0 || h->value_len >= cap ||
	    strspn(h->value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") <
		h->value_len)
		return -1;
	memcpy(out, h->value, h->value_len);
	out[h->value_len] = '\0';
	return 0;
}

/* Fill the route and realm; -1 with a problem sent if the request cannot be sold. */
static int
pjob_describe(struct pjob *j, struct hconn *c, const struct provider *pv, const char *host,
    size_t hostlen)
{
	const struct http_request *req = hconn_request(c);
	const char *q = memchr(req->target, '?', req->target_len);
	size_t plen = q != NULL ? (size_t)(q - req->target) : req->target_len;
	const struct http_header *accept = http_header_get(req, "Accept-Payment");
	struct ipc_route *r = &j->cred.route;

	if (req->target[0] != '/' || plen > IPC_PATH_MAX || req->target_len > IPC_TARGET_MAX ||
	    req->method_len > IPC_METHOD_MAX || hostlen >= sizeof(j->cred.realm)) {
		hconn_problem(c, 400, "bad-request", "the request target or method is not usable");
		return -1;
	}
	if (!provider_route_allowed(pv, req->method, req->method_len, req->target, plen)) {
		hconn_problem(c, 404, "route-not-proxied",
		    "this provider route is not offered through cn2");
		return -1;
	}
	if (parse_pool(req, &r->pool) != 0) {
		hconn_problem(c, 400, "invalid-pool", "X-CN2-Pool must be \"standard\" or \"premium\"");
		return -1;
	}
	if (parse_session(req, j->session, sizeof(j->session)) != 0) {
		hconn_problem(c, 400, "invalid-session",
		    "X-CN2-Session must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
		return -1;
	}
	if (accept != NULL && accept->value_len >= sizeof(j->cred.accept)) {
		hconn_problem(c, 400, "bad-request", "Accept-Payment is too long");
		return -1;
	}
	if (accept != NULL)
		memcpy(j->cred.accept, accept->value, accept->value_len);
	snprintf(r->provider, sizeof(r->provider), "%s", pv->name);
	memcpy(r->method, req->method, req->method_len);
	memcpy(r->path, req->target, plen);
	memcpy(j->cred.realm, host, hostlen);
	snprintf(r->region, sizeof(r->region), "%s", region_of_request(j->e, c));
	return 0;
}

/*
 * Idempotency-Key (a bare token or a structured-field string): kept with a
 * SHA-256 of the body, so payments can tell a retry from another request
 * without ever seeing the body. -1 with a problem sent if it is unusable.
 */
static int
pjob_idempotency(struct pjob *j, struct hconn *c)
{
	const struct http_header *h = http_header_get(hconn_request(c), "Idempotency-Key");
	const char *v = h != NULL ? h->value : NULL;
	size_t n = h != NULL ? h->value_len : 0, blen;
	const void *body;

	if (h == NULL)
		return 0;
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x21 || v[i] > 0x7e || v[i] == '"' || v[i] == '\\')
			n = 0;
	if (n == 0 || n > IPC_IDEM_KEY_MAX) {
		hconn_problem(c, 400, "bad-request",
		    "Idempotency-Key must be 1 to 255 visible ASCII characters");
		return -1;
	}
	memcpy(j->idem.idem_key, v, n);
	body = hconn_body(c, &blen);
	if (mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), body, blen,
		j->idem_hash) != 0) {
		hconn_problem(c, 503, "service-unavailable", "cannot hash the request");
		return -1;
	}
	j->idem.body_hash.p = j->idem_hash;
	j->idem.body_hash.len = 32;
	return 0;
}

void
edge_proxy(struct edge *e, struct hconn *c, const struct provider *pv, const char *host,
    size_t hostlen)
{
	struct pjob *j;
	struct ipc_quote q;

	if (hconn_minor(c) == 0) {
		hconn_problem(c, 505, "http-version",
		    "proxied requests need HTTP/1.1 (responses are streamed)");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		hconn_problem(c, 503, "service-unavailable", "out of memory");
		return;
	}
	j->e = e;
	j->base.cancel = pjob_cancel;
	j->base.drain = pjob_drain;
	if (pjob_describe(j, c, pv, host, hostlen) != 0 || pjob_idempotency(j, c) != 0) {
		free(j);
		return;
	}
	pjob_credentials(j, hconn_request(c));
	hconn_attach(c, &j->base);
	q.route = j->cred.route;
	j->state = P_QUOTE;
	if (pjob_request(j, ROLE_ROUTER, IPC_QUOTE, &q, QUOTE_TIMEOUT_MS, pjob_on_quote) != 0) {
		pjob_unavailable(j, "the router");
		pjob_maybe_free(j);
	}
}
