/*
 * server.c — the edge's HTTP/1.1 server: TCP listeners (plain and TLS),
 * connections, request framing, responses.
 *
 * Security stance: everything read here comes from the internet. Heads are
 * parsed by common/http.c (strict RFC 9112 framing) and bounded by max_head;
 * bodies by max_body; a head must arrive within header_timeout_ms of its
 * first byte (slow-loris), a stalled body or an idle keep-alive connection is
 * closed after idle_timeout_ms, and at most max_conns connections are open.
 * Reading stops while a request is being handled, so a client that pipelines
 * cannot make us buffer more than one request. Nothing here logs a header
 * value or a body.
 */
#include "edge/edge.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define READ_CHUNK (64u << 10)

enum hstate { ST_HEAD, ST_BODY, ST_HANDLE, ST_CLOSING };

struct hconn {
	struct hconn *prev, *next; /* the edge's open connections */
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct edge *edge;
	struct tls_conn *tls; /* NULL on the plain port */
	int handshaken;
	enum hstate state;
	int handles; /* uv handles still open */
	char *in;    /* plaintext received: head, then raw body, then what follows */
	size_t inlen, incap;
	struct http_request req;
	size_t head_len;
	size_t raw_len;	 /* raw body bytes consumed after the head */
	size_t body_len; /* decoded body bytes, at in + head_len */
	struct http_chunked chunk;
	int keep_alive;
	struct hjob *job;
};

struct wreq {
	uv_write_t req;
	char data[];
};

static char read_scratch[READ_CHUNK]; /* one loop thread: reads are handled at once */

static void hconn_close(struct hconn *c);
static void hconn_advance(struct hconn *c);

/* Writing. */

static void
on_written(uv_write_t *req, int status)
{
	struct hconn *c = req->handle->data;

	(void)status; /* a failed write shows up as a read error or EOF */
	free(req);
	if (c->job != NULL && c->job->drain != NULL && c->state != ST_CLOSING &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < HCONN_LOW_WATER)
		c->job->drain(c->job);
}

static int
hconn_send_raw(struct hconn *c, const void *buf, size_t len)
{
	struct wreq *w;
	uv_buf_t b;

	if (c->state == ST_CLOSING && c->handles == 0)
		return -1;
	if ((w = malloc(sizeof(*w) + len)) == NULL)
		return -1;
	memcpy(w->data, buf, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
		free(w);
		return -1;
	}
	return 0;
}

static int
tls_write_out(void *arg, const unsigned char *buf, size_t len)
{
	return hconn_send_raw(arg, buf, len);
}

static int
hconn_write(struct hconn *c, const void *buf, size_t len)
{
	if (c->tls != NULL)
		return tls_conn_write(c->tls, buf, len) == 0 ? 0 : -1;
	return hconn_send_raw(c, buf, len);
}

/* Several pieces as one write (one TLS record run, one syscall). */
static int
hconn_writev(struct hconn *c, const uv_buf_t *v, size_t n)
{
	size_t total = 0, off = 0;
	char *p;
	int rc;

	for (size_t i = 0; i < n; i++)
		total += v[i].len;
	if ((p = malloc(total)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		memcpy(p + off, v[i].base, v[i].len);
		off += v[i].len;
	}
	rc = hconn_write(c, p, total);
	free(p);
	return rc;
}

/* Closing: after queued writes drain when graceful. */

static void
on_handle_closed(uv_handle_t *h)
{
	struct hconn *c = h->data;

	struct edge *e = c->edge;

	if (--c->handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		e->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	e->nconns--;
	tls_conn_free(c->tls);
	free(c->in);
	free(c);
	/* The TLS configuration outlives every connection made from it. */
	if (e->stopping && e->nconns == 0 && e->tls != NULL) {
		tls_config_free(e->tls);
		e->tls = NULL;
	}
}

static void
hconn_close(struct hconn *c)
{
	if (c->handles == 0 || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	c->state = ST_CLOSING;
	if (c->job != NULL) {
		c->job->conn = NULL;
		if (c->job->cancel != NULL)
			c->job->cancel(c->job);
		c->job = NULL;
	}
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
	struct hconn *c = req->handle->data;

	(void)status;
	free(req);
	hconn_close(c);
}

/* Close once everything queued has been written. */
static void
hconn_finish(struct hconn *c)
{
	uv_shutdown_t *req = malloc(sizeof(*req));

	c->state = ST_CLOSING;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (c->tls != NULL && c->handshaken)
		tls_conn_close_notify(c->tls);
	if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		free(req);
		hconn_close(c);
	}
}

/* Timers. */

static void
on_timeout(uv_timer_t *t)
{
	struct hconn *c = t->data;

	if (c->state == ST_HEAD && c->inlen > 0 && c->handshaken) {
		char buf[512];
		int n = http_write_problem(buf, sizeof(buf), 408, EDGE_PROBLEM_BASE "timeout",
		    NULL, "the request did not arrive in time", NULL, 0);

		if (n > 0)
			hconn_write(c, buf, (size_t)n);
		hconn_finish(c);
		return;
	}
	hconn_close(c);
}

static void
hconn_timer(struct hconn *c, int64_t ms)
{
	if (ms > 0)
		uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
	else
		uv_timer_stop(&c->timer);
}

/* Responses. */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* The response went out: close, or drop this request and go on to the next. */
static void
hconn_done(struct hconn *c)
{
	size_t used = c->head_len + c->raw_len;

	c->job = NULL;
	c->edge->served++;
	if (!c->keep_alive) {
		hconn_finish(c);
		return;
	}
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	c->head_len = c->raw_len = c->body_len = 0;
	c->state = ST_HEAD;
	hconn_timer(c, c->inlen > 0 ? c->edge->cfg->header_timeout_ms
				    : c->edge->cfg->idle_timeout_ms);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		hconn_close(c);
		return;
	}
	hconn_advance(c);
}

static int
is_head_request(const struct hconn *c)
{
	return c->req.method_len == 4 && memcmp(c->req.method, "HEAD", 4) == 0;
}

void
hconn_respond(struct hconn *c, int status, const char *ctype, const char *extra_headers,
    const void *body, size_t len)
{
	char head[4096];
	int n;

	if (c->state != ST_HANDLE)
		return;
	n = http_write_head(head, sizeof(head), status, extra_headers, ctype, (int64_t)len,
	    c->keep_alive);
	if (n < 0) {
		log_warnx("response head for status %d does not fit", status);
		hconn_close(c);
		return;
	}
	{
		uv_buf_t v[2] = {uv_buf_init(head, (unsigned)n),
		    uv_buf_init((char *)(uintptr_t)body, (unsigned)len)};

		if (hconn_writev(c, v, len > 0 && !is_head_request(c) ? 2 : 1) != 0) {
			hconn_close(c);
			return;
		}
	}
	hconn_done(c);
}

void
hconn_problem(struct hconn *c, int status, const char *name, const char *detail)
{
	char type[128], buf[4096];
	int len;

	if (c->state != ST_HANDLE)
		return;
	snprintf(type, sizeof(type), EDGE_PROBLEM_BASE "%s", name);
	/*
	 * Every 503 the edge writes is about now (a daemon restarting, no key
	 * free this minute): Retry-After tells a client when trying again makes
	 * sense instead of letting it spin.
	 */
	len = http_write_problem(buf, sizeof(buf), status, type, NULL, detail,
	    status == 503 ? "Cache-Control: no-store\r\nRetry-After: " EDGE_RETRY_AFTER_S "\r\n" :
			    "Cache-Control: no-store\r\n",
	    c->keep_alive);
	if (len < 0 || hconn_write(c, buf, (size_t)len) != 0) {
		hconn_close(c);
		return;
	}
	hconn_done(c);
}

int
hconn_stream_head(struct hconn *c, int status, const char *extra_headers)
{
	char head[16384];
	int n;

	if (c->state != ST_HANDLE)
		return -1;
	n = http_write_head(head, sizeof(head), status, extra_headers, NULL, -1, c->keep_alive);
	if (n < 0 || hconn_write(c, head, (size_t)n) != 0) {
		hconn_close(c);
		return -1;
	}
	return 0;
}

int
hconn_stream_data(struct hconn *c, const void *data, size_t len)
{
	char line[32];
	int n;

	if (c->state != ST_HANDLE)
		return -1;
	if (len == 0)
		return 0;
	n = http_chunk_write_head(line, sizeof(line), len);
	if (n > 0) {
		uv_buf_t v[3] = {uv_buf_init(line, (unsigned)n), uv_buf_init((char *)(uintptr_t)data,
		    (unsigned)len), uv_buf_init((char *)(uintptr_t)"\r\n", 2)};

		if (hconn_writev(c, v, 3) == 0)
			return 0;
	}
	hconn_close(c);
	return -1;
}

void
hconn_stream_end(struct hconn *c, int clean)
{
	if (c->state != ST_HANDLE)
		return;
	if (!clean) {
		c->job = NULL;
		hconn_finish(c);
		return;
	}
	if (hconn_write(c, "0\r\n\r\n", 5) != 0) {
		hconn_close(c);
		return;
	}
	hconn_done(c);
}

size_t
hconn_queued(struct hconn *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

int
hconn_minor(struct hconn *c)
{
	return c->req.minor;
}

int
hconn_peer(struct hconn *c, struct sockaddr_storage *ss)
{
	int len = (int)sizeof(*ss);

	return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &len) == 0 ? 0 : -1;
}

const struct http_request *
hconn_request(struct hconn *c)
{
	return &c->req;
}

const char *
hconn_body(struct hconn *c, size_t *len)
{
	*len = c->body_len;
	return c->in + c->head_len;
}

int
hconn_is_tls(struct hconn *c)
{
	return c->tls != NULL;
}

void
hconn_attach(struct hconn *c, struct hjob *job)
{
	job->conn = c;
	c->job = job;
}

/* Framing errors: answer with the parser's status and close. */
static void
hconn_reject(struct hconn *c, int status, const char *detail)
{
	c->keep_alive = 0;
	c->state = ST_HANDLE;
	uv_read_stop((uv_stream_t *)&c->tcp);
	hconn_problem(c, status, "bad-request", detail);
}

/* Request framing: head, then body by Content-Length or chunked. */

static int
hconn_body_step(struct hconn *c)
{
	size_t avail = c->inlen - c->head_len - c->raw_len, used, out;
	char *raw = c->in + c->head_len + c->raw_len;
	int rc;

	if (!c->req.chunked) {
		size_t want = (size_t)c->req.content_length - c->raw_len;

		used = avail < want ? avail : want;
		c->raw_len += used;
		c->body_len = c->raw_len;
		return c->raw_len == (size_t)c->req.content_length ? HTTP_OK : HTTP_INCOMPLETE;
	}
	rc = http_chunked_decode(&c->chunk, raw, avail, &used,
	    c->in + c->head_len + c->body_len, (size_t)c->edge->cfg->max_body - c->body_len, &out);
	c->raw_len += used;
	c->body_len += out;
	if (rc == HTTP_INCOMPLETE && c->body_len == (size_t)c->edge->cfg->max_body &&
	    used < avail)
		return 413;
	return rc;
}

static void
hconn_head_done(struct hconn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	c->keep_alive = c->req.keep_alive;
	if (c->req.content_length > c->edge->cfg->max_body) {
		hconn_reject(c, 413, "the request body is too large");
		return;
	}
	c->state = ST_BODY;
	c->raw_len = c->body_len = 0;
	http_chunked_init(&c->chunk);
	if (c->req.content_length <= 0 && !c->req.chunked) {
		c->req.content_length = 0;
		return;
	}
	if (c->req.expect_continue && c->inlen == c->head_len)
		hconn_write(c, cont, sizeof(cont) - 1);
	hconn_timer(c, c->edge->cfg->idle_timeout_ms);
}

/* Make what progress the buffered bytes allow. */
static void
hconn_advance(struct hconn *c)
{
	int rc;

	if (c->state == ST_HEAD) {
		rc = http_parse_request(c->in, c->inlen, (size_t)c->edge->cfg->max_head, &c->req,
		    &c->head_len);
		if (rc == HTTP_INCOMPLETE)
			return;
		if (rc != HTTP_OK) {
			hconn_reject(c, rc, "the request is not valid HTTP/1.1");
			return;
		}
		hconn_head_done(c);
		if (c->state != ST_BODY)
			return;
	}
	if (c->state != ST_BODY)
		return;
	if ((rc = hconn_body_step(c)) == HTTP_INCOMPLETE)
		return;
	if (rc != HTTP_OK) {
		hconn_reject(c, rc == 413 ? 413 : 400,
		    rc == 413 ? "the request body is too large" : "malformed chunked body");
		return;
	}
	c->state = ST_HANDLE;
	hconn_timer(c, 0);
	uv_read_stop((uv_stream_t *)&c->tcp);
	edge_route(c->edge, c);
}

/* Reading. */

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	*buf = uv_buf_init(read_scratch, sizeof(read_scratch));
}

/* Room for n more plaintext bytes: head + body + one read of what follows. */
static int
hconn_reserve(struct hconn *c, size_t n)
{
	const struct edge_cfg *cfg = c->edge->cfg;
	size_t limit = (size_t)cfg->max_head + (size_t)cfg->max_body + READ_CHUNK * 2;
	size_t cap = c->incap ? c->incap : 8192;
	char *p;

	if (c->inlen + n <= c->incap)
		return 0;
	if (c->inlen + n > limit)
		return -1;
	while (cap < c->inlen + n)
		cap *= 2;
	if (cap > limit)
		cap = limit;
	if ((p = realloc(c->in, cap)) == NULL)
		return -1;
	c->in = p;
	c->incap = cap;
	return 0;
}

static int
hconn_take_plain(struct hconn *c, const char *data, size_t n)
{
	int first = c->state == ST_HEAD && c->inlen == 0;

	if (hconn_reserve(c, n) != 0)
		return -1;
	memcpy(c->in + c->inlen, data, n);
	c->inlen += n;
	if (first)
		hconn_timer(c, c->edge->cfg->header_timeout_ms);
	return 0;
}

/* Ciphertext in: finish the handshake, then decrypt everything available. */
static int
hconn_take_tls(struct hconn *c, const char *data, size_t n)
{
	unsigned char plain[16384];
	ssize_t got;
	int rc;

	if (tls_conn_feed(c->tls, (const unsigned char *)data, n) != 0)
		return -1;
	if (!c->handshaken) {
		if ((rc = tls_conn_handshake(c->tls)) == TLS_WANT)
			return 0;
		if (rc != TLS_DONE) {
			log_debug("TLS handshake failed: %s", tls_conn_error(c->tls));
			return -1;
		}
		c->handshaken = 1;
		hconn_timer(c, c->edge->cfg->idle_timeout_ms);
	}
	while ((got = tls_conn_read(c->tls, plain, sizeof(plain))) > 0)
		if (hconn_take_plain(c, (const char *)plain, (size_t)got) != 0)
			return -1;
	return got == TLS_WANT ? 0 : -1;
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hconn *c = s->data;
	int rc;

	if (n == 0)
		return;
	if (n < 0) {
		hconn_close(c);
		return;
	}
	rc = c->tls != NULL ? hconn_take_tls(c, buf->base, (size_t)n)
			    : hconn_take_plain(c, buf->base, (size_t)n);
	if (rc != 0) {
		if (c->state == ST_HEAD && c->handshaken && c->inlen > (size_t)c->edge->cfg->max_head)
			hconn_reject(c, 431, "the request head is too large");
		else
			hconn_close(c);
		return;
	}
	if (c->state == ST_HEAD || c->state == ST_BODY)
		hconn_advance(c);
}

/* Accepting. */

static void
on_connection(uv_stream_t *server, int status)
{
	struct edge *e = server->data;
	int is_tls = server == (uv_stream_t *)&e->https;
	struct hconn *c;

	if (status != 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->edge = e;
	uv_tcp_init(server->loop, &c->tcp);
	uv_timer_init(server->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	e->nconns++;
	c->next = e->conns;
	if (e->conns != NULL)
		e->conns->prev = c;
	e->conns = c;
	c->handshaken = !is_tls;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
	    e->nconns > (size_t)e->cfg->max_conns ||
	    (is_tls && (c->tls = tls_conn_new(e->tls, tls_write_out, c)) == NULL)) {
		hconn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	hconn_timer(c, is_tls ? e->cfg->header_timeout_ms : e->cfg->idle_timeout_ms);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		hconn_close(c);
}

/* "host:port" → a sockaddr; IPv6 as "[::1]:port". */
static int
parse_listen(const char *spec, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	size_t hl;
	char *end;
	long port;

	if (colon == NULL || (hl = (size_t)(colon - spec)) == 0 || hl >= sizeof(host))
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535)
		return -1;
	if (spec[0] == '[' && spec[hl - 1] == ']') {
		memcpy(host, spec + 1, hl - 2);
		host[hl - 2] = '\0';
		return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

static int
listen_on(struct edge *e, uv_tcp_t *t, const char *spec, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (parse_listen(spec, &ss) != 0) {
		snprintf(err, errlen, "cannot parse listen address \"%s\"", spec);
		return -1;
	}
	uv_tcp_init(e->d->loop, t);
	t->data = e;
	if ((rc = uv_tcp_bind(t, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)t, 511, on_connection)) != 0) {
		snprintf(err, errlen, "listen on %s: %s", spec, uv_strerror(rc));
		return -1;
	}
	log_info("listening on %s (%s)", spec, t == &e->https ? "https" : "http");
	return 0;
}

int
edge_server_start(struct edge *e, char *err, size_t errlen)
{
	if (e->cfg->listen_https[0] != '\0') {
		if ((e->tls = tls_config_new(e->cfg->tls_cert, e->cfg->tls_key, err, errlen)) == NULL)
			return -1;
		if (listen_on(e, &e->https, e->cfg->listen_https, err, errlen) != 0)
			return -1;
		e->https_on = 1;
	}
	if (e->cfg->listen_http[0] != '\0') {
		if (listen_on(e, &e->http, e->cfg->listen_http, err, errlen) != 0)
			return -1;
		e->http_on = 1;
	}
	if (!e->http_on && !e->https_on) {
		snprintf(err, errlen, "neither listen_http nor listen_https is set");
		return -1;
	}
	return 0;
}

void
edge_server_stop(struct edge *e)
{
	e->stopping = 1;
	if (e->http_on)
		uv_close((uv_handle_t *)&e->http, NULL);
	if (e->https_on)
		uv_close((uv_handle_t *)&e->https, NULL);
	e->http_on = e->https_on = 0;
	for (struct hconn *c = e->conns; c != NULL; c = c->next)
		hconn_close(c);
	if (e->nconns == 0 && e->tls != NULL) {
		tls_config_free(e->tls);
		e->tls = NULL;
	}
}
