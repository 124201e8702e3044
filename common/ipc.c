/*
 * ipc.c — framed messages over nng ipc:// streams on a libuv loop.
 *
 * Each nng operation (accept, dial, receive, send) is an ipc_op with its own
 * nng_aio. nng runs the aio callback on one of its threads; the callback only
 * appends the op to a mutex-protected completion list and wakes the loop with
 * uv_async_send. The loop drains the list and does the real work, so every
 * structure below is touched by the loop thread only, except the list itself.
 *
 * An op is "busy" from submission until the loop has handled its completion;
 * a connection is freed only when it is closing and neither of its ops is
 * busy, so a completion never refers to freed memory.
 *
 * Security stance: see ipc.h. Every inbound frame is decoded by ipc_decode
 * before anything looks at it; frames are bounded by IPC_MAX_FRAME and the
 * queue of unsent bytes per connection by IPC_MAX_QUEUE.
 */
#include "common/ipc.h"

#include <errno.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define IPC_RBUF_MIN (64u << 10)
#define IPC_MAX_QUEUE (64u << 20)
#define IPC_TICK_MS 100
#define IPC_BACKOFF_MIN_MS 50
#define IPC_BACKOFF_MAX_MS 1000
#define PENDING_BUCKETS 1024 /* power of two */
#define IPC_HELLO_MS 5000    /* a peer must say HELLO this soon after connecting */
#define IPC_MAX_ACCEPTED 256 /* connections accepted at once (peers are a handful) */

enum op_kind { OP_ACCEPT, OP_DIAL, OP_RECV, OP_SEND };

struct ipc_op {
	struct ipc_op *next; /* in the completion list */
	struct ipc *ipc;
	nng_aio *aio;
	void *owner; /* struct conn or struct dialer; NULL for accept */
	uint8_t kind;
	uint8_t busy;
};

struct buf {
	uint8_t *p;
	size_t len, cap;
};

struct dialer;

struct conn {
	struct conn *next;
	struct ipc *ipc;
	struct dialer *dialer; /* set when we dialled this connection */
	nng_stream *st;
	uint64_t cid;
	enum ipc_role role; /* the peer's role, once its HELLO arrived */
	int hello;
	uint64_t hello_by;  /* uv_now deadline for the peer's HELLO */
	int closing;
	struct ipc_op rx, tx;
	struct buf rb;	     /* received, not yet dispatched */
	struct buf wq, wf;   /* queued for sending; in flight */
	size_t woff;	     /* bytes of wf already sent */
};

struct dialer {
	struct ipc *ipc;
	enum ipc_role role;
	nng_stream_dialer *d;
	struct ipc_op op;
	uv_timer_t retry;
	uint32_t backoff_ms;
	struct conn *conn;
	int warned; /* logged that this peer is unreachable */
};

struct pending {
	struct pending *hnext;	     /* hash chain */
	struct pending *prev, *next; /* all open requests, oldest first */
	uint64_t id;
	struct conn *conn;
	ipc_reply_fn cb;
	void *arg;
	uint32_t timeout_ms;
	uint64_t deadline;
};

struct ipc {
	struct ipc_config cfg;
	uv_async_t async;
	uv_timer_t tick;
	int handles; /* uv handles not yet closed */
	pthread_mutex_t mu;
	struct ipc_op *done, **done_tail;
	nng_stream_listener *listener;
	struct ipc_op accept;
	struct conn *conns;
	struct dialer *dialers[ROLE_MAX];
	struct pending *buckets[PENDING_BUCKETS];
	struct pending *p_head, *p_tail;
	size_t npending;
	uint64_t next_cid, next_id;
	size_t naccepted; /* accepted connections open */
};

static void conn_close(struct conn *c, const char *why);
static void conn_recv(struct conn *c);
static void dialer_schedule(struct dialer *d);

/* Completion hand-over: the only code that runs on nng's threads. */

static void
op_done_cb(void *arg)
{
	struct ipc_op *op = arg;
	struct ipc *ipc = op->ipc;

	pthread_mutex_lock(&ipc->mu);
	op->next = NULL;
	*ipc->done_tail = op;
	ipc->done_tail = &op->next;
	pthread_mutex_unlock(&ipc->mu);
	uv_async_send(&ipc->async);
}

static int
op_init(struct ipc_op *op, struct ipc *ipc, enum op_kind kind, void *owner)
{
	memset(op, 0, sizeof(*op));
	op->ipc = ipc;
	op->kind = (uint8_t)kind;
	op->owner = owner;
	return nng_aio_alloc(&op->aio, op_done_cb, op);
}

/* Buffers. */

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *p;

	if (b->len + more <= b->cap)
		return 0;
	while (cap < b->len + more)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Pending requests: a hash by id plus a list in age order. */

static struct pending *
pending_find(struct ipc *ipc, uint64_t id)
{
	struct pending *p = ipc->buckets[id & (PENDING_BUCKETS - 1)];

	while (p != NULL && p->id != id)
		p = p->hnext;
	return p;
}

static void
pending_unlink(struct ipc *ipc, struct pending *p)
{
	struct pending **pp = &ipc->buckets[p->id & (PENDING_BUCKETS - 1)];

	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ipc->p_head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		ipc->p_tail = p->prev;
	ipc->npending--;
}

static void
pending_add(struct ipc *ipc, struct pending *p)
{
	struct pending **bucket = &ipc->buckets[p->id & (PENDING_BUCKETS - 1)];

	p->hnext = *bucket;
	*bucket = p;
	p->next = NULL;
	p->prev = ipc->p_tail;
	if (ipc->p_tail != NULL)
		ipc->p_tail->next = p;
	else
		ipc->p_head = p;
	ipc->p_tail = p;
	ipc->npending++;
}

/* Fail every open request on c (or on every connection if c is NULL). */
static void
pending_fail_conn(struct ipc *ipc, struct conn *c, int code)
{
	struct pending *p = ipc->p_head, *next;

	while (p != NULL) {
		next = p->next;
		if (c == NULL || p->conn == c) {
			pending_unlink(ipc, p);
			p->cb(p->arg, code, 0, NULL);
			free(p);
			/* The callback may have opened or forgotten others: restart. */
			next = ipc->p_head;
		}
		p = next;
	}
}

/* Sending. */

static void
conn_flush(struct conn *c)
{
	nng_iov iov;
	struct buf t;

	if (c->tx.busy || c->closing)
		return;
	if (c->woff == c->wf.len) {
		if (c->wq.len == 0)
			return;
		t = c->wf;
		c->wf = c->wq;
		c->wq = t;
		c->wq.len = 0;
		c->woff = 0;
	}
	iov.iov_buf = c->wf.p + c->woff;
	iov.iov_len = c->wf.len - c->woff;
	if (nng_aio_set_iov(c->tx.aio, 1, &iov) != 0) {
		conn_close(c, "cannot set send buffer");
		return;
	}
	c->tx.busy = 1;
	nng_stream_send(c->st, c->tx.aio);
}

static int
conn_send(struct conn *c, uint16_t type, uint64_t id, const void *msg)
{
	size_t n = ipc_frame_len(type, msg);

	if (c->closing || n == 0)
		return -1;
	if (c->wq.len + n > IPC_MAX_QUEUE) {
		conn_close(c, "peer is not reading: send queue full");
		return -1;
	}
	if (buf_reserve(&c->wq, n) != 0) {
		conn_close(c, "out of memory");
		return -1;
	}
	c->wq.len += ipc_encode(type, id, msg, c->wq.p + c->wq.len, n);
	conn_flush(c);
	return 0;
}

static void
conn_on_send(struct conn *c, int rv)
{
	if (rv != 0) {
		conn_close(c, nng_strerror(rv));
		return;
	}
	c->woff += nng_aio_count(c->tx.aio);
	if (c->woff == c->wf.len)
		c->wf.len = c->woff = 0;
	conn_flush(c);
}

/* Connection life cycle. */

static void
conn_free(struct conn *c)
{
	struct conn **pp = &c->ipc->conns;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	if (c->dialer == NULL)
		c->ipc->naccepted--;
	nng_aio_free(c->rx.aio);
	nng_aio_free(c->tx.aio);
	nng_stream_free(c->st);
	buf_free(&c->rb);
	buf_free(&c->wq);
	buf_free(&c->wf);
	free(c);
}

static void
conn_maybe_free(struct conn *c)
{
	if (c->closing && !c->rx.busy && !c->tx.busy)
		conn_free(c);
}

static void
conn_close(struct conn *c, const char *why)
{
	struct ipc *ipc = c->ipc;
	int was_up = c->hello;

	if (c->closing)
		return;
	c->closing = 1;
	log_info("connection %llu (%s) closed: %s", (unsigned long long)c->cid,
	    c->dialer ? ipc_role_name(c->dialer->role) : ipc_role_name(c->role), why);
	nng_stream_close(c->st);
	if (c->dialer != NULL) {
		c->dialer->conn = NULL;
		dialer_schedule(c->dialer);
		if (was_up && ipc->cfg.on_link != NULL)
			ipc->cfg.on_link(ipc->cfg.arg, c->dialer->role, 0);
	}
	pending_fail_conn(ipc, c, IPC_ERR_CLOSED);
	conn_maybe_free(c);
}

static struct conn *
conn_new(struct ipc *ipc, nng_stream *st, struct dialer *d)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (op_init(&c->rx, ipc, OP_RECV, c) != 0 || op_init(&c->tx, ipc, OP_SEND, c) != 0 ||
	    buf_reserve(&c->rb, IPC_RBUF_MIN) != 0) {
		nng_aio_free(c->rx.aio);
		nng_aio_free(c->tx.aio);
		free(c->rb.p);
		free(c);
		return NULL;
	}
	c->ipc = ipc;
	c->st = st;
	c->dialer = d;
	c->cid = ++ipc->next_cid;
	c->hello_by = uv_now(ipc->cfg.loop) + IPC_HELLO_MS;
	if (d == NULL)
		ipc->naccepted++;
	c->next = ipc->conns;
	ipc->conns = c;
	return c;
}

static struct conn *
conn_by_id(struct ipc *ipc, uint64_t cid)
{
	for (struct conn *c = ipc->conns; c != NULL; c = c->next)
		if (c->cid == cid)
			return c->closing ? NULL : c;
	return NULL;
}

static void
conn_send_hello(struct conn *c)
{
	struct ipc_hello h = {IPC_VERSION, (uint8_t)c->ipc->cfg.self, (uint32_t)getpid()};

	conn_send(c, IPC_HELLO, 0, &h);
}

/* Receiving and dispatch. */

static const struct ipc_peer_rule *
rule_for(struct ipc *ipc, enum ipc_role role)
{
	for (size_t i = 0; i < ipc->cfg.naccept; i++)
		if (ipc->cfg.accept[i].role == role)
			return &ipc->cfg.accept[i];
	return NULL;
}

static int
rule_allows(const struct ipc_peer_rule *r, uint16_t type)
{
	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->ntypes; i++)
		if (r->types[i] == type)
			return 1;
	return 0;
}

/* The peer's uid as the kernel reports it (SO_PEERCRED); nng types it uint64. */
static int
conn_peer_uid(struct conn *c, int64_t *uid)
{
	uint64_t v;
	int rv;

	if ((rv = nng_stream_get_uint64(c->st, NNG_OPT_IPC_PEER_UID, &v)) != 0)
		return rv;
	*uid = v > UINT32_MAX ? -1 : (int64_t)v;
	return 0;
}

/* The first frame on a connection: version, role and (listening side) uid. */
static void
conn_on_hello(struct conn *c, const struct ipc_hello *h)
{
	struct ipc *ipc = c->ipc;
	int64_t uid = -1;

	if (h->version != IPC_VERSION) {
		conn_close(c, "peer speaks another IPC version");
		return;
	}
	if (c->dialer != NULL) {
		if (h->role != c->dialer->role) {
			conn_close(c, "peer answered as another role");
			return;
		}
		c->role = (enum ipc_role)h->role;
		c->hello = 1;
		c->dialer->backoff_ms = IPC_BACKOFF_MIN_MS;
		c->dialer->warned = 0;
		log_info("linked to %s (pid %u)", ipc_role_name(c->role), h->pid);
		if (ipc->cfg.on_link != NULL)
			ipc->cfg.on_link(ipc->cfg.arg, c->role, 1);
		return;
	}
	if (rule_for(ipc, (enum ipc_role)h->role) == NULL) {
		conn_close(c, "role may not connect here");
		return;
	}
	if (conn_peer_uid(c, &uid) != 0 || uid != (int64_t)ipc->cfg.role_uid[h->role]) {
		log_warnx("peer claiming role %s has uid %lld, expected %u", ipc_role_name(h->role),
		    (long long)uid, (unsigned)ipc->cfg.role_uid[h->role]);
		conn_close(c, "peer uid does not match its role");
		return;
	}
	c->role = (enum ipc_role)h->role;
	c->hello = 1;
	conn_send_hello(c);
}

/* A reply on a connection we dialled. */
static void
conn_on_reply(struct conn *c, const struct ipc_hdr *h, const union ipc_any *m)
{
	struct pending *p = pending_find(c->ipc, h->id);
	unsigned flags = ipc_type_flags(h->type);

	if (p == NULL || p->conn != c) {
		/* A reply to a request we forgot (timeout, cancel) is normal; drop it. */
		if (h->id != 0 && h->id <= c->ipc->next_id)
			return;
		conn_close(c, "reply to a request never sent");
		return;
	}
	if (flags & (IPC_MF_REQUEST | IPC_MF_INFLIGHT)) {
		conn_close(c, "request-type message sent as a reply");
		return;
	}
	if (flags & IPC_MF_FINAL)
		pending_unlink(c->ipc, p);
	else if (p->timeout_ms != 0)
		p->deadline = uv_now(c->ipc->cfg.loop) + p->timeout_ms;
	p->cb(p->arg, 0, h->type, m);
	if (flags & IPC_MF_FINAL)
		free(p);
}

static void
conn_on_request(struct conn *c, const struct ipc_hdr *h, const union ipc_any *m)
{
	struct ipc_req req = {c->cid, h->id, c->role};

	if (!rule_allows(rule_for(c->ipc, c->role), h->type)) {
		log_warnx("%s sent %s, which its peer rule does not allow", ipc_role_name(c->role),
		    ipc_type_name(h->type));
		conn_close(c, "message type not allowed for this peer");
		return;
	}
	c->ipc->cfg.on_request(c->ipc->cfg.arg, &req, h->type, m);
}

static void
conn_dispatch(struct conn *c, const uint8_t *frame, size_t len)
{
	union ipc_any m;
	struct ipc_hdr h;
	const char *why;

	if (ipc_decode(frame, len, &h, &m, &why) != 0) {
		conn_close(c, why);
		return;
	}
	if (!c->hello) {
		if (h.type != IPC_HELLO)
			conn_close(c, "first message is not HELLO");
		else
			conn_on_hello(c, &m.hello);
		return;
	}
	if (h.type == IPC_HELLO)
		conn_close(c, "HELLO sent twice");
	else if (c->dialer != NULL)
		conn_on_reply(c, &h, &m);
	else
		conn_on_request(c, &h, &m);
}

/* Dispatch every complete frame in the receive buffer, keep the rest. */
static void
conn_frames(struct conn *c)
{
	struct ipc_hdr h;
	size_t off = 0, need = 0;

	while (!c->closing && c->rb.len - off >= IPC_HDR_LEN) {
		if (ipc_hdr_read(c->rb.p + off, &h) != 0) {
			conn_close(c, "invalid frame header");
			return;
		}
		if (h.len > c->rb.len - off) {
			need = h.len;
			break;
		}
		conn_dispatch(c, c->rb.p + off, h.len);
		off += h.len;
	}
	if (c->closing)
		return;
	memmove(c->rb.p, c->rb.p + off, c->rb.len - off);
	c->rb.len -= off;
	if (need > c->rb.cap && buf_reserve(&c->rb, need - c->rb.len) != 0)
		conn_close(c, "out of memory");
}

static void
conn_recv(struct conn *c)
{
	nng_iov iov;

	if (c->rb.cap - c->rb.len < 1024 && buf_reserve(&c->rb, IPC_RBUF_MIN) != 0) {
		conn_close(c, "out of memory");
		return;
	}
	iov.iov_buf = c->rb.p + c->rb.len;
	iov.iov_len = c->rb.cap - c->rb.len;
	if (nng_aio_set_iov(c->rx.aio, 1, &iov) != 0) {
		conn_close(c, "cannot set receive buffer");
		return;
	}
	c->rx.busy = 1;
	nng_stream_recv(c->st, c->rx.aio);
}

static void
conn_on_recv(struct conn *c, int rv)
{
	size_t n;

	if (rv != 0) {
		conn_close(c, rv == NNG_ECLOSED || rv == NNG_ECONNSHUT ? "closed by peer"
								      : nng_strerror(rv));
		return;
	}
	if ((n = nng_aio_count(c->rx.aio)) == 0) {
		conn_close(c, "closed by peer");
		return;
	}
	c->rb.len += n;
	conn_frames(c);
}

/* Does any role that may dial us run as this uid? Checked before HELLO. */
static int
uid_allowed(struct ipc *ipc, int64_t uid)
{
	for (size_t i = 0; i < ipc->cfg.naccept; i++)
		if ((int64_t)ipc->cfg.role_uid[ipc->cfg.accept[i].role] == uid)
			return 1;
	return 0;
}

/* Set up a new connection, accepted or dialled. */
static void
conn_start(struct ipc *ipc, nng_stream *st, struct dialer *d)
{
	struct conn *c = conn_new(ipc, st, d);
	int64_t uid = -1;

	if (c == NULL) {
		log_warnx("out of memory: dropping a new connection");
		nng_stream_free(st);
		if (d != NULL)
			dialer_schedule(d);
		return;
	}
	if (d != NULL) {
		d->conn = c;
		conn_send_hello(c);
		/* A HELLO that could not be queued closed and freed c (and cleared d->conn). */
		if (d->conn == NULL)
			return;
	} else if (ipc->naccepted > IPC_MAX_ACCEPTED) {
		conn_close(c, "too many connections");
		return;
	} else if (conn_peer_uid(c, &uid) != 0 || !uid_allowed(ipc, uid)) {
		log_warnx("refusing a connection from uid %lld", (long long)uid);
		conn_close(c, "peer uid not in the peer table");
		return;
	}
	conn_recv(c);
}

/* Listening. */

static void
listener_accept(struct ipc *ipc)
{
	ipc->accept.busy = 1;
	nng_stream_listener_accept(ipc->listener, ipc->accept.aio);
}

static void
listener_on_accept(struct ipc *ipc, int rv)
{
	if (rv == NNG_ECLOSED)
		return;
	if (rv != 0)
		log_warnx("accept: %s", nng_strerror(rv));
	else
		conn_start(ipc, nng_aio_get_output(ipc->accept.aio, 0), NULL);
	listener_accept(ipc);
}

/* Dialling, with capped exponential back-off. */

static void
dialer_dial(struct dialer *d)
{
	d->op.busy = 1;
	nng_stream_dialer_dial(d->d, d->op.aio);
}

static void
dialer_on_retry(uv_timer_t *t)
{
	struct dialer *d = t->data;

	if (d->conn == NULL && !d->op.busy)
		dialer_dial(d);
}

static void
dialer_schedule(struct dialer *d)
{
	uv_timer_start(&d->retry, dialer_on_retry, d->backoff_ms, 0);
	d->backoff_ms = d->backoff_ms * 2 > IPC_BACKOFF_MAX_MS ? IPC_BACKOFF_MAX_MS
							   : d->backoff_ms * 2;
}

static void
dialer_on_dial(struct dialer *d, int rv)
{
	if (rv == 0) {
		conn_start(d->ipc, nng_aio_get_output(d->op.aio, 0), d);
		return;
	}
	if (rv == NNG_ECLOSED)
		return;
	if (!d->warned) {
		log_info("%s not reachable yet: %s", ipc_role_name(d->role), nng_strerror(rv));
		d->warned = 1;
	}
	dialer_schedule(d);
}

/* The loop side of the completion hand-over. */

static void
op_handle(struct ipc_op *op)
{
	int rv = nng_aio_result(op->aio);

	switch (op->kind) {
	case OP_ACCEPT:
		op->busy = 0;
		listener_on_accept(op->ipc, rv);
		break;
	case OP_DIAL:
		op->busy = 0;
		dialer_on_dial(op->owner, rv);
		break;
	case OP_RECV: {
		struct conn *c = op->owner;

		if (!c->closing)
			conn_on_recv(c, rv);
		op->busy = 0;
		if (c->closing)
			conn_maybe_free(c);
		else
			conn_recv(c);
		break;
	}
	case OP_SEND: {
		struct conn *c = op->owner;

		op->busy = 0;
		if (c->closing)
			conn_maybe_free(c);
		else
			conn_on_send(c, rv);
		break;
	}
	}
}

static void
ipc_on_async(uv_async_t *a)
{
	struct ipc *ipc = a->data;
	struct ipc_op *op, *next;

	pthread_mutex_lock(&ipc->mu);
	op = ipc->done;
	ipc->done = NULL;
	ipc->done_tail = &ipc->done;
	pthread_mutex_unlock(&ipc->mu);
	for (; op != NULL; op = next) {
		next = op->next;
		op_handle(op);
	}
}

/* Close connections whose peer has not said HELLO in time. */
static void
ipc_hello_deadlines(struct ipc *ipc, uint64_t now)
{
	struct conn *c, *next;

	for (c = ipc->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->hello && !c->closing && now > c->hello_by)
			conn_close(c, "no HELLO in time");
	}
}

/* Time out requests whose deadline passed. Callbacks may open new requests. */
static void
ipc_on_tick(uv_timer_t *t)
{
	struct ipc *ipc = t->data;
	uint64_t now = uv_now(ipc->cfg.loop);
	struct pending *p;

	ipc_hello_deadlines(ipc, now);
	for (;;) {
		for (p = ipc->p_head; p != NULL; p = p->next)
			if (p->timeout_ms != 0 && p->deadline <= now)
				break;
		if (p == NULL)
			return;
		pending_unlink(ipc, p);
		p->cb(p->arg, IPC_ERR_TIMEOUT, 0, NULL);
		free(p);
	}
}

/* Set-up and tear-down. */

int
ipc_path(const char *runtime_dir, enum ipc_role role, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "ipc://%s/%s.sock", runtime_dir, ipc_role_name(role));

	/* sun_path holds 108 bytes with the NUL; "ipc://" is not part of it. */
	return n < 0 || (size_t)n >= cap || n - 6 > 107 ? -1 : 0;
}

static void
ipc_release(struct ipc *ipc)
{
	if (--ipc->handles == 0) {
		pthread_mutex_destroy(&ipc->mu);
		free(ipc);
	}
}

static void
ipc_on_handle_closed(uv_handle_t *h)
{
	ipc_release(h->data);
}

static void
dialer_on_closed(uv_handle_t *h)
{
	struct dialer *d = h->data;
	struct ipc *ipc = d->ipc;

	free(d);
	ipc_release(ipc);
}

static int
ipc_listen(struct ipc *ipc, char *err, size_t errlen)
{
	char url[160];
	int rv;

	if (ipc_path(ipc->cfg.runtime_dir, ipc->cfg.self, url, sizeof(url)) != 0) {
		snprintf(err, errlen, "runtime directory path too long");
		return -1;
	}
	if ((rv = nng_stream_listener_alloc(&ipc->listener, url)) != 0 ||
	    (rv = nng_stream_listener_set_int(ipc->listener, NNG_OPT_IPC_PERMISSIONS, 0660)) != 0 ||
	    (rv = nng_stream_listener_listen(ipc->listener)) != 0 ||
	    (rv = op_init(&ipc->accept, ipc, OP_ACCEPT, NULL)) != 0) {
		snprintf(err, errlen, "listen on %s: %s", url, nng_strerror(rv));
		return -1;
	}
	listener_accept(ipc);
	return 0;
}

static int
ipc_dial_role(struct ipc *ipc, enum ipc_role role, char *err, size_t errlen)
{
	struct dialer *d = calloc(1, sizeof(*d));
	char url[160];
	int rv;

	if (d == NULL || ipc_path(ipc->cfg.runtime_dir, role, url, sizeof(url)) != 0) {
		free(d);
		snprintf(err, errlen, "cannot set up the dialler for %s", ipc_role_name(role));
		return -1;
	}
	d->ipc = ipc;
	d->role = role;
	d->backoff_ms = IPC_BACKOFF_MIN_MS;
	uv_timer_init(ipc->cfg.loop, &d->retry);
	d->retry.data = d;
	ipc->handles++;
	ipc->dialers[role] = d;
	if ((rv = nng_stream_dialer_alloc(&d->d, url)) != 0 ||
	    (rv = op_init(&d->op, ipc, OP_DIAL, d)) != 0) {
		snprintf(err, errlen, "dialler for %s: %s", url, nng_strerror(rv));
		return -1;
	}
	dialer_dial(d);
	return 0;
}

struct ipc *
ipc_start(const struct ipc_config *cfg, char *err, size_t errlen)
{
	struct ipc *ipc = calloc(1, sizeof(*ipc));

	if (ipc == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ipc->cfg = *cfg;
	ipc->done_tail = &ipc->done;
	pthread_mutex_init(&ipc->mu, NULL);
	uv_async_init(cfg->loop, &ipc->async, ipc_on_async);
	uv_timer_init(cfg->loop, &ipc->tick);
	ipc->async.data = ipc->tick.data = ipc;
	ipc->handles = 2;
	uv_timer_start(&ipc->tick, ipc_on_tick, IPC_TICK_MS, IPC_TICK_MS);
	uv_unref((uv_handle_t *)&ipc->tick);
	if (cfg->naccept > 0 && ipc_listen(ipc, err, errlen) != 0)
		goto fail;
	for (size_t i = 0; i < cfg->ndial; i++)
		if (ipc_dial_role(ipc, cfg->dial[i], err, errlen) != 0)
			goto fail;
	return ipc;
fail:
	ipc_stop(ipc);
	return NULL;
}

/* Stop an op and wait for its callback: only at shutdown, never on the hot path. */
static void
op_stop(struct ipc_op *op)
{
	if (op->aio != NULL) {
		nng_aio_stop(op->aio);
		nng_aio_free(op->aio);
		op->aio = NULL;
	}
}

void
ipc_stop(struct ipc *ipc)
{
	struct conn *c;

	pending_fail_conn(ipc, NULL, IPC_ERR_CLOSED);
	/*
	 * First close and stop every operation, waiting for its callback: after
	 * this no nng thread touches the completion list. Only then is the list
	 * emptied and memory freed, since the list links through the ops.
	 */
	if (ipc->listener != NULL) {
		nng_stream_listener_close(ipc->listener);
		op_stop(&ipc->accept);
	}
	for (int r = 0; r < ROLE_MAX; r++)
		if (ipc->dialers[r] != NULL && ipc->dialers[r]->d != NULL) {
			nng_stream_dialer_close(ipc->dialers[r]->d);
			op_stop(&ipc->dialers[r]->op);
		}
	for (c = ipc->conns; c != NULL; c = c->next) {
		c->closing = 1;
		nng_stream_close(c->st);
		op_stop(&c->rx);
		op_stop(&c->tx);
	}
	pthread_mutex_lock(&ipc->mu);
	ipc->done = NULL;
	ipc->done_tail = &ipc->done;
	pthread_mutex_unlock(&ipc->mu);

	nng_stream_listener_free(ipc->listener);
	for (int r = 0; r < ROLE_MAX; r++) {
		struct dialer *d = ipc->dialers[r];

		if (d == NULL)
			continue;
		nng_stream_dialer_free(d->d);
		d->conn = NULL;
		ipc->dialers[r] = NULL;
		uv_close((uv_handle_t *)&d->retry, dialer_on_closed);
	}
	while (ipc->conns != NULL)
		conn_free(ipc->conns);
	uv_close((uv_handle_t *)&ipc->tick, ipc_on_handle_closed);
	uv_close((uv_handle_t *)&ipc->async, ipc_on_handle_closed);
}

/* Requests and replies. */

uint64_t
ipc_request(struct ipc *ipc, enum ipc_role to, uint16_t type, const void *msg,
    uint32_t timeout_ms, ipc_reply_fn cb, void *arg)
{
	struct dialer *d = (unsigned)to < ROLE_MAX ? ipc->dialers[to] : NULL;
	struct pending *p;

	if (d == NULL || d->conn == NULL || !d->conn->hello ||
	    !(ipc_type_flags(type) & IPC_MF_REQUEST))
		return 0;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return 0;
	p->id = ++ipc->next_id;
	if (conn_send(d->conn, type, p->id, msg) != 0) {
		free(p);
		return 0;
	}
	p->conn = d->conn;
	p->cb = cb;
	p->arg = arg;
	p->timeout_ms = timeout_ms;
	p->deadline = uv_now(ipc->cfg.loop) + timeout_ms;
	pending_add(ipc, p);
	return p->id;
}

void
ipc_forget(struct ipc *ipc, uint64_t id)
{
	struct pending *p = pending_find(ipc, id);

	if (p != NULL) {
		pending_unlink(ipc, p);
		free(p);
	}
}

int
ipc_send_inflight(struct ipc *ipc, uint64_t id, uint16_t type, const void *msg)
{
	struct pending *p = pending_find(ipc, id);

	if (p == NULL || !(ipc_type_flags(type) & IPC_MF_INFLIGHT))
		return -1;
	return conn_send(p->conn, type, id, msg);
}

int
ipc_reply(struct ipc *ipc, const struct ipc_req *req, uint16_t type, const void *msg)
{
	struct conn *c = conn_by_id(ipc, req->conn);

	if (c == NULL || (ipc_type_flags(type) & (IPC_MF_REQUEST | IPC_MF_INFLIGHT)))
		return -1;
	return conn_send(c, type, req->id, msg);
}

int
ipc_reply_error(struct ipc *ipc, const struct ipc_req *req, int code, const char *detail)
{
	struct ipc_error e = {(uint16_t)code, ""};

	snprintf(e.detail, sizeof(e.detail), "%s", detail);
	return ipc_reply(ipc, req, IPC_ERROR, &e);
}

int
ipc_reply_problem(struct ipc *ipc, const struct ipc_req *req, uint16_t status,
    const char *name, const char *detail)
{
	struct ipc_problem p;

	memset(&p, 0, sizeof(p));
	p.status = status;
	snprintf(p.name, sizeof(p.name), "%s", name);
	snprintf(p.detail, sizeof(p.detail), "%s", detail);
	return ipc_reply(ipc, req, IPC_PROBLEM, &p);
}

size_t
ipc_queued(struct ipc *ipc, const struct ipc_req *req)
{
	struct conn *c = conn_by_id(ipc, req->conn);

	return c == NULL ? 0 : c->wq.len + (c->wf.len - c->woff);
}

int
ipc_link_up(struct ipc *ipc, enum ipc_role peer)
{
	struct dialer *d = (unsigned)peer < ROLE_MAX ? ipc->dialers[peer] : NULL;

	return d != NULL && d->conn != NULL && d->conn->hello;
}

uint32_t
ipc_links(struct ipc *ipc)
{
	uint32_t bits = 0;

	for (int r = 0; r < ROLE_MAX; r++)
		if (ipc_link_up(ipc, (enum ipc_role)r))
			bits |= 1u << r;
	return bits;
}

uint32_t
ipc_wanted(struct ipc *ipc)
{
	uint32_t bits = 0;

	for (int r = 0; r < ROLE_MAX; r++)
		if (ipc->dialers[r] != NULL)
			bits |= 1u << r;
	return bits;
}

size_t
ipc_open_requests(struct ipc *ipc)
{
	return ipc->npending;
}
