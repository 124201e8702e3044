/*
 * upstream.c — cn2-demo-upstream: a fake of an OpenAI-compatible provider
 * API, for local use (`cn2 up`) and for tests.
 *
 *   cn2-demo-upstream -l 127.0.0.1:8090 -k demo.key [-k more.key]… [-n events] [-i interval_ms]
 *
 * Routes (every /v1 request must carry "Authorization: Bearer <key>"
 * exactly, where the key is the content of one of the -k files, up to 8:
 * key 0 is the first; else 401 with an OpenAI-style error):
 *
 *   GET  /v1/models            a list with "demo-1"
 *   POST /v1/chat/completions  {"model", "messages"}: a chat.completion whose
 *                              content is "demo reply: <n> messages"; with
 *                              "stream": true, an event stream of <events>
 *                              chat.completion.chunk events <interval_ms>
 *                              apart, then "data: [DONE]"
 *
 * Test controls (no key; this fake listens on loopback only):
 *
 *   POST /_demo/control  JSON with any of
 *        "fail_status", "fail_count"  the next fail_count /v1 requests get
 *                                     fail_status, before anything else
 *        "delay_ms"                   wait this long before every /v1 response head
 *        "cut_after"                  streams: close the connection after this
 *                                     many events (0: never)
 *        "events", "interval_ms"      the stream's shape
 *        "pad_bytes"                  add this many bytes of padding to each event
 *        "reset": true                back to the defaults (first, if combined)
 *        or, for one key: "key": <index> with any of "fail_status" +
 *        "fail_count" (that key's next N requests), "drop_count" (close
 *        them with no answer at all), "retry_after" (a Retry-After header
 *        on its injected failures), "fail_body" (what its injected failures
 *        say: "error", the default, a server_error; "quota", OpenAI's
 *        insufficient_quota error, which OpenAI sends with 429; "credit",
 *        Anthropic's "credit balance is too low", sent with 400; "echo", an
 *        error whose message quotes "insufficient_quota" as a buyer's text
 *        would be quoted), "reset": true (that key's controls only)
 *   GET  /_demo/stats    {"requests", "by_route", "by_key", "last_auth_ok"}:
 *                        /v1 requests only, so tests can count upstream calls;
 *                        by_key counts the requests each key authenticated
 *
 * HTTP/1.1 with keep-alive; request bodies by Content-Length or chunked,
 * parsed by common/http.c. Security stance: it is a test fake, but it still
 * never logs a key or a body (a test greps the logs for the key), and it
 * bounds what it buffers per connection.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include "common/config.h"
#include "common/http.h"
#include "common/log.h"

#define MAX_HEAD 16384
#define MAX_BODY (1u << 20)
#define READ_CHUNK 65536
#define KEY_LEN 64
#define EVENTS_MAX 1000
#define PAD_MAX 65536
#define KEYS_MAX 8

struct demo_ctl {
	int fail_status, fail_count, delay_ms, cut_after, events, interval_ms, pad_bytes;
};

enum fail_body { FB_ERROR, FB_QUOTA, FB_CREDIT, FB_ECHO, FB_MAX };

/* Failure injection for one key, after it authenticated. */
struct key_ctl {
	int fail_status, fail_count, drop_count, retry_after;
	int fail_body; /* enum fail_body */
	unsigned long requests;
};

struct demo {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_signal_t sigterm, sigint;
	char bearer[KEYS_MAX][7 + KEY_LEN + 1]; /* "Bearer <key>" */
	int nkeys;
	struct key_ctl keys[KEYS_MAX];
	struct demo_ctl def, ctl;
	unsigned long requests, n_models, n_chat, n_other;
	int last_auth_ok;
	unsigned long seq;
	struct dconn *conns;
};

enum cstate { C_HEAD, C_BODY, C_BUSY, C_CLOSING };

struct dconn {
	struct dconn *prev, *next;
	struct demo *demo;
	uv_tcp_t tcp;
	uv_timer_t timer;
	int handles;
	enum cstate state;
	char *in;
	size_t inlen, incap;
	struct http_request req;
	size_t head_len, raw_len, body_len;
	struct http_chunked chunk;
	int keep_alive;
	/* A response waiting for its delay, or a stream in progress. */
	char *resp;
	size_t resplen;
	int streaming, sent, total, cut, interval, pad;
	char *model;
	unsigned long id;
};

static struct demo the_demo;

static void conn_advance(struct dconn *c);
static void conn_close(struct dconn *c);

/* Writing. */

struct wreq {
	uv_write_t req;
	char data[];
};

static void
on_written(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static int
conn_write(struct dconn *c, const void *p, size_t len)
{
	struct wreq *w;
	uv_buf_t b;

	if (c->state == C_CLOSING || (w = malloc(sizeof(*w) + len)) == NULL)
		return -1;
	memcpy(w->data, p, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
		free(w);
		return -1;
	}
	return 0;
}

/* Closing. */

static void
on_conn_closed(uv_handle_t *h)
{
	struct dconn *c = h->data;

	if (--c->handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->demo->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->in);
	free(c->resp);
	free(c->model);
	free(c);
}

static void
conn_close(struct dconn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	c->state = C_CLOSING;
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void
on_shutdown(uv_shutdown_t *s, int status)
{
	struct dconn *c = s->handle->data;

	(void)status;
	free(s);
	conn_close(c);
}

/* Close after what is queued has been written (FIN, not RST). */
static void
conn_finish(struct dconn *c)
{
	uv_shutdown_t *s = malloc(sizeof(*s));

	c->state = C_BUSY; /* nothing more is read; on_shutdown closes */
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (s == NULL || uv_shutdown(s, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		free(s);
		conn_close(c);
	}
}

/* Reading. */

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char scratch[READ_CHUNK];

	(void)h;
	(void)hint;
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

static int
conn_take(struct dconn *c, const char *p, size_t n)
{
	size_t cap = c->incap ? c->incap : 8192;
	char *q;

	if (c->inlen + n > MAX_HEAD + MAX_BODY + READ_CHUNK)
		return -1;
	while (cap < c->inlen + n)
		cap *= 2;
	if (cap != c->incap) {
		if ((q = realloc(c->in, cap)) == NULL)
			return -1;
		c->in = q;
		c->incap = cap;
	}
	memcpy(c->in + c->inlen, p, n);
	c->inlen += n;
	return 0;
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct dconn *c = s->data;

	if (n == 0)
		return;
	if (n < 0 || conn_take(c, buf->base, (size_t)n) != 0) {
		conn_close(c);
		return;
	}
	if (c->state == C_HEAD || c->state == C_BODY)
		conn_advance(c);
}

/* Responses. */

static void
conn_done(struct dconn *c)
{
	size_t used = c->head_len + c->raw_len;

	free(c->resp);
	free(c->model);
	c->resp = c->model = NULL;
	c->streaming = 0;
	if (!c->keep_alive) {
		conn_finish(c);
		return;
	}
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	c->head_len = c->raw_len = c->body_len = 0;
	c->state = C_HEAD;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_close(c);
		return;
	}
	conn_advance(c);
}

/* Queue a whole response: head (with Content-Length, and extra header lines) and body. */
static int
conn_prepare_extra(struct dconn *c, int status, const char *extra, const char *ctype,
    const char *body)
{
	char head[1024];
	size_t blen = strlen(body);
	int n = http_write_head(head, sizeof(head), status, extra, ctype, (int64_t)blen,
	    c->keep_alive);

	if (n < 0 || (c->resp = malloc((size_t)n + blen)) == NULL)
		return -1;
	memcpy(c->resp, head, (size_t)n);
	memcpy(c->resp + n, body, blen);
	c->resplen = (size_t)n + blen;
	return 0;
}

static int
conn_prepare(struct dconn *c, int status, const char *ctype, const char *body)
{
	return conn_prepare_extra(c, status, NULL, ctype, body);
}

static void
conn_send_prepared(struct dconn *c)
{
	if (conn_write(c, c->resp, c->resplen) != 0) {
		conn_close(c);
		return;
	}
	conn_done(c);
}

/* An OpenAI-style error body. */
static char *
error_json(const char *message, const char *type, const char *code)
{
	cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
	char *s;

	cJSON_AddStringToObject(e, "message", message);
	cJSON_AddStringToObject(e, "type", type);
	if (code != NULL)
		cJSON_AddStringToObject(e, "code", code);
	else
		cJSON_AddNullToObject(e, "code");
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

/* Streams. */

static char *
chunk_event(struct dconn *c, int i)
{
	cJSON *root = cJSON_CreateObject(), *choices, *ch, *delta;
	char idbuf[64], *pad = NULL, *s;

	snprintf(idbuf, sizeof(idbuf), "chatcmpl-demo-%lu", c->id);
	cJSON_AddStringToObject(root, "id", idbuf);
	cJSON_AddStringToObject(root, "object", "chat.completion.chunk");
	cJSON_AddNumberToObject(root, "created", (double)time(NULL));
	cJSON_AddStringToObject(root, "model", c->model);
	choices = cJSON_AddArrayToObject(root, "choices");
	ch = cJSON_CreateObject();
	cJSON_AddItemToArray(choices, ch);
	cJSON_AddNumberToObject(ch, "index", 0);
	delta = cJSON_AddObjectToObject(ch, "delta");
	if (i == 0)
		cJSON_AddStringToObject(delta, "role", "assistant");
	snprintf(idbuf, sizeof(idbuf), "part %d ", i + 1);
	cJSON_AddStringToObject(delta, "content", idbuf);
	if (c->pad > 0 && (pad = malloc((size_t)c->pad + 1)) != NULL) {
		memset(pad, 'x', (size_t)c->pad);
		pad[c->pad] = '\0';
		cJSON_AddStringToObject(delta, "padding", pad);
		free(pad);
	}
	if (i + 1 == c->total)
		cJSON_AddStringToObject(ch, "finish_reason", "stop");
	else
		cJSON_AddNullToObject(ch, "finish_reason");
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

/* One SSE event "data: <text>\n\n" as one HTTP chunk. */
static int
write_event(struct dconn *c, const char *text)
{
	size_t tl = strlen(text), n = 6 + tl + 2;
	char *buf = malloc(n + 32);
	int h;

	if (buf == NULL || (h = http_chunk_write_head(buf, 32, n)) < 0) {
		free(buf);
		return -1;
	}
	memcpy(buf + h, "data: ", 6);
	memcpy(buf + h + 6, text, tl);
	memcpy(buf + h + 6 + tl, "\n\n\r\n", 4);
	h = conn_write(c, buf, (size_t)h + n + 2);
	free(buf);
	return h;
}

static void stream_next(uv_timer_t *t);

static void
stream_end(struct dconn *c)
{
	if (write_event(c, "[DONE]") != 0 || conn_write(c, "0\r\n\r\n", 5) != 0) {
		conn_close(c);
		return;
	}
	conn_done(c);
}

static void
stream_next(uv_timer_t *t)
{
	struct dconn *c = t->data;
	char *ev;

	if (c->cut > 0 && c->sent == c->cut) {
		log_info("stream cut after %d events, as asked", c->sent);
		c->keep_alive = 0;
		conn_finish(c);
		return;
	}
	if (c->sent == c->total) {
		stream_end(c);
		return;
	}
	if ((ev = chunk_event(c, c->sent)) == NULL || write_event(c, ev) != 0) {
		free(ev);
		conn_close(c);
		return;
	}
	free(ev);
	c->sent++;
	/* The last event is followed by [DONE] at once; a cut happens at once too. */
	uv_timer_start(&c->timer, stream_next,
	    c->sent == c->total || (c->cut > 0 && c->sent == c->cut) ? 0 : (uint64_t)c->interval, 0);
}

static void
stream_start(struct dconn *c)
{
	char head[512];
	int n = http_write_head(head, sizeof(head), 200, "Cache-Control: no-cache\r\n",
	    "text/event-stream", -1, c->keep_alive);

	if (n < 0 || conn_write(c, head, (size_t)n) != 0) {
		conn_close(c);
		return;
	}
	stream_next(&c->timer);
}

/* After the configured delay, the response (or the stream) goes out. */
static void
on_delay(uv_timer_t *t)
{
	struct dconn *c = t->data;

	if (c->streaming)
		stream_start(c);
	else
		conn_send_prepared(c);
}

/* Route handlers: each fills c->resp (or sets c->streaming), returns 0 or -1. */

static int
reply_json(struct dconn *c, int status, char *body)
{
	int rc;

	if (body == NULL)
		return -1;
	rc = conn_prepare(c, status, "application/json", body);
	free(body);
	return rc;
}

static int
reply_error(struct dconn *c, int status, const char *message, const char *type,
    const char *code)
{
	return reply_json(c, status, error_json(message, type, code));
}

static int
handle_models(struct dconn *c)
{
	cJSON *root = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(root, "data");
	cJSON *m = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(root, "object", "list");
	cJSON_AddItemToArray(data, m);
	cJSON_AddStringToObject(m, "id", "demo-1");
	cJSON_AddStringToObject(m, "object", "model");
	cJSON_AddNumberToObject(m, "created", 1700000000);
	cJSON_AddStringToObject(m, "owned_by", "cn2-demo");
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return reply_json(c, 200, s);
}

static char *
completion_json(struct dconn *c, int nmsg)
{
	cJSON *root = cJSON_CreateObject(), *choices, *ch, *msg, *usage;
	char buf[64], *s;

	snprintf(buf, sizeof(buf), "chatcmpl-demo-%lu", c->id);
	cJSON_AddStringToObject(root, "id", buf);
	cJSON_AddStringToObject(root, "object", "chat.completion");
	cJSON_AddNumberToObject(root, "created", (double)time(NULL));
	cJSON_AddStringToObject(root, "model", c->model);
	choices = cJSON_AddArrayToObject(root, "choices");
	ch = cJSON_CreateObject();
	cJSON_AddItemToArray(choices, ch);
	cJSON_AddNumberToObject(ch, "index", 0);
	msg = cJSON_AddObjectToObject(ch, "message");
	cJSON_AddStringToObject(msg, "role", "assistant");
	snprintf(buf, sizeof(buf), "demo reply: %d messages", nmsg);
	cJSON_AddStringToObject(msg, "content", buf);
	cJSON_AddStringToObject(ch, "finish_reason", "stop");
	usage = cJSON_AddObjectToObject(root, "usage");
	cJSON_AddNumberToObject(usage, "prompt_tokens", nmsg);
	cJSON_AddNumberToObject(usage, "completion_tokens", 4);
	cJSON_AddNumberToObject(usage, "total_tokens", nmsg + 4);
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

static int
handle_chat(struct dconn *c)
{
	struct demo *d = c->demo;
	cJSON *root = cJSON_ParseWithLength(c->in + c->head_len, c->body_len);
	cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
	int rc;

	if (!cJSON_IsString(model) || !cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
		cJSON_Delete(root);
		return reply_error(c, 400, "the body needs \"model\" and a non-empty \"messages\"",
		    "invalid_request_error", NULL);
	}
	c->id = ++d->seq;
	if ((c->model = strdup(model->valuestring)) == NULL) {
		cJSON_Delete(root);
		return -1;
	}
	if (cJSON_IsTrue(stream)) {
		c->streaming = 1;
		c->sent = 0;
		c->total = d->ctl.events;
		c->interval = d->ctl.interval_ms;
		c->cut = d->ctl.cut_after;
		c->pad = d->ctl.pad_bytes;
		cJSON_Delete(root);
		return 0;
	}
	rc = reply_json(c, 200, completion_json(c, cJSON_GetArraySize(msgs)));
	cJSON_Delete(root);
	return rc;
}

/* Test controls. */

static int
ctl_int(cJSON *root, const char *name, int lo, int hi, int *out)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return -1;
	*out = (int)v->valuedouble;
	return 0;
}

static const char *const ctl_names[] = {
    "reset", "fail_status", "fail_count", "delay_ms", "cut_after", "events", "interval_ms",
    "pad_bytes",
};

static int
ctl_known(const char *name)
{
	for (size_t i = 0; i < sizeof(ctl_names) / sizeof(ctl_names[0]); i++)
		if (strcmp(name, ctl_names[i]) == 0)
			return 1;
	return 0;
}

static const char *const fail_bodies[FB_MAX] = {"error", "quota", "credit", "echo"};

/* "fail_body": one of fail_bodies, if given. 0, or -1. */
static int
ctl_body(cJSON *root, int *out)
{
	const char *v;

	if (cJSON_GetObjectItemCaseSensitive(root, "fail_body") == NULL)
		return 0;
	if ((v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "fail_body"))) == NULL)
		return -1;
	for (int i = 0; i < FB_MAX; i++)
		if (strcmp(v, fail_bodies[i]) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

/* Controls of one key ("key": its index): its own injected failures. */
static int
key_ctl_apply(struct demo *d, cJSON *root)
{
	static const char *const names[] = {
	    "key", "reset", "fail_status", "fail_count", "drop_count", "retry_after", "fail_body",
	};
	struct key_ctl n;
	int idx = -1;
	size_t i;
	cJSON *it;

	cJSON_ArrayForEach(it, root) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (it->string != NULL && strcmp(it->string, names[i]) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return -1;
	}
	if (ctl_int(root, "key", 0, d->nkeys - 1, &idx) != 0 || idx < 0)
		return -1;
	n = d->keys[idx];
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "reset")))
		n.fail_status = n.fail_count = n.drop_count = n.retry_after = n.fail_body = 0;
	if (ctl_body(root, &n.fail_body) != 0 ||
	    ctl_int(root, "fail_status", 100, 599, &n.fail_status) != 0 ||
	    ctl_int(root, "fail_count", 0, 1000000, &n.fail_count) != 0 ||
	    ctl_int(root, "drop_count", 0, 1000000, &n.drop_count) != 0 ||
	    ctl_int(root, "retry_after", 0, 86400, &n.retry_after) != 0 ||
	    (n.fail_count > 0 && n.fail_status == 0))
		return -1;
	d->keys[idx] = n;
	return 0;
}

static int
ctl_apply(struct demo *d, cJSON *root)
{
	struct demo_ctl n;
	cJSON *it;

	if (!cJSON_IsObject(root))
		return -1;
	if (cJSON_GetObjectItemCaseSensitive(root, "key") != NULL)
		return key_ctl_apply(d, root);
	cJSON_ArrayForEach(it, root)
		if (it->string == NULL || !ctl_known(it->string))
			return -1;
	n = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "reset")) ? d->def : d->ctl;
	if (ctl_int(root, "fail_status", 100, 599, &n.fail_status) != 0 ||
	    ctl_int(root, "fail_count", 0, 1000000, &n.fail_count) != 0 ||
	    ctl_int(root, "delay_ms", 0, 600000, &n.delay_ms) != 0 ||
	    ctl_int(root, "cut_after", 0, EVENTS_MAX, &n.cut_after) != 0 ||
	    ctl_int(root, "events", 1, EVENTS_MAX, &n.events) != 0 ||
	    ctl_int(root, "interval_ms", 0, 60000, &n.interval_ms) != 0 ||
	    ctl_int(root, "pad_bytes", 0, PAD_MAX, &n.pad_bytes) != 0)
		return -1;
	if (n.fail_count > 0 && n.fail_status == 0)
		return -1;
	d->ctl = n;
	return 0;
}

static int
handle_control(struct dconn *c)
{
	struct demo *d = c->demo;
	cJSON *root = cJSON_ParseWithLength(c->in + c->head_len, c->body_len);
	int rc = ctl_apply(d, root);

	cJSON_Delete(root);
	if (rc != 0)
		return reply_error(c, 400, "unknown control, or a value out of range",
		    "invalid_request_error", NULL);
	log_info("control: fail %d x%d, delay %d ms, cut after %d, %d events every %d ms",
	    d->ctl.fail_status, d->ctl.fail_count, d->ctl.delay_ms, d->ctl.cut_after,
	    d->ctl.events, d->ctl.interval_ms);
	return reply_json(c, 200, strdup("{\"ok\":true}"));
}

static int
handle_stats(struct dconn *c)
{
	struct demo *d = c->demo;
	cJSON *root = cJSON_CreateObject(), *by = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(root, "by_key");
	char *s;

	for (int i = 0; i < d->nkeys; i++)
		cJSON_AddItemToArray(keys, cJSON_CreateNumber((double)d->keys[i].requests));
	cJSON_AddNumberToObject(root, "requests", (double)d->requests);
	cJSON_AddItemToObject(root, "by_route", by);
	cJSON_AddNumberToObject(by, "GET /v1/models", (double)d->n_models);
	cJSON_AddNumberToObject(by, "POST /v1/chat/completions", (double)d->n_chat);
	cJSON_AddNumberToObject(by, "other", (double)d->n_other);
	cJSON_AddBoolToObject(root, "last_auth_ok", d->last_auth_ok);
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return reply_json(c, 200, s);
}

/* Request routing. */

static int
is(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* Exactly one Authorization field, equal to "Bearer <key>": the key's index, or -1. */
static int
auth_key(struct dconn *c)
{
	const struct http_request *r = &c->req;
	const struct http_header *h = NULL;
	size_t n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len == 13 &&
		    strncasecmp(r->headers[i].name, "authorization", 13) == 0) {
			h = &r->headers[i];
			n++;
		}
	for (int k = 0; n == 1 && k < c->demo->nkeys; k++)
		if (h->value_len == strlen(c->demo->bearer[k]) &&
		    mbedtls_ct_memcmp(h->value, c->demo->bearer[k], h->value_len) == 0)
			return k;
	return -1;
}

/* The body of an injected failure, as the provider it imitates words it. Caller frees. */
static char *
failure_body(int kind)
{
	switch (kind) {
	case FB_QUOTA:
		return error_json("You exceeded your current quota, please check your plan and "
				  "billing details.", "insufficient_quota", "insufficient_quota");
	case FB_CREDIT:
		return strdup("{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
			      "\"message\":\"Your credit balance is too low to access the API. "
			      "Please go to Plans & Billing to upgrade or purchase credits.\"}}");
	case FB_ECHO:
		return error_json("The model `\"type\": \"insufficient_quota\"` does not exist",
		    "invalid_request_error", "model_not_found");
	default:
		return error_json("injected failure", "server_error", NULL);
	}
}

/*
 * A failure injected for the key that authenticated: 1 with *rc set (-1:
 * close the connection with no answer at all), or 0 to serve as usual.
 */
static int
key_failure(struct dconn *c, struct key_ctl *k, int *rc)
{
	char extra[64] = "", *body;

	if (k->drop_count > 0) {
		k->drop_count--;
		*rc = -1;
		return 1;
	}
	if (k->fail_count == 0)
		return 0;
	k->fail_count--;
	if (k->retry_after > 0)
		snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", k->retry_after);
	body = failure_body(k->fail_body);
	*rc = body != NULL ? conn_prepare_extra(c, k->fail_status, extra, "application/json", body) : -1;
	free(body);
	return 1;
}

static int
route_v1(struct dconn *c, const char *path, size_t plen)
{
	struct demo *d = c->demo;
	const char *m = c->req.method;
	size_t ml = c->req.method_len;
	int models = is(path, plen, "/v1/models"), chat = is(path, plen, "/v1/chat/completions");
	int key, rc;

	d->requests++;
	if (models && is(m, ml, "GET"))
		d->n_models++;
	else if (chat && is(m, ml, "POST"))
		d->n_chat++;
	else
		d->n_other++;
	if (d->ctl.fail_count > 0) {
		d->ctl.fail_count--;
		return reply_error(c, d->ctl.fail_status, "injected failure", "server_error", NULL);
	}
	if (!(d->last_auth_ok = (key = auth_key(c)) >= 0))
		return reply_error(c, 401, "Incorrect API key provided.", "invalid_request_error",
		    "invalid_api_key");
	d->keys[key].requests++;
	if (key_failure(c, &d->keys[key], &rc))
		return rc;
	if (models && is(m, ml, "GET"))
		return handle_models(c);
	if (chat && is(m, ml, "POST"))
		return handle_chat(c);
	if (models || chat)
		return reply_error(c, 405, "method not allowed", "invalid_request_error", NULL);
	return reply_error(c, 404, "unknown route", "invalid_request_error", "not_found");
}

static void
conn_handle(struct dconn *c)
{
	const char *t = c->req.target, *q = memchr(t, '?', c->req.target_len);
	size_t plen = q != NULL ? (size_t)(q - t) : c->req.target_len;
	struct demo *d = c->demo;
	int rc, v1 = plen >= 4 && memcmp(t, "/v1/", 4) == 0;

	if (is(t, plen, "/_demo/control") && is(c->req.method, c->req.method_len, "POST"))
		rc = handle_control(c);
	else if (is(t, plen, "/_demo/stats") && is(c->req.method, c->req.method_len, "GET"))
		rc = handle_stats(c);
	else if (v1)
		rc = route_v1(c, t, plen);
	else
		rc = reply_error(c, 404, "unknown route", "invalid_request_error", "not_found");
	log_info("%.*s %.*s%s", (int)c->req.method_len, c->req.method, (int)plen, t,
	    c->streaming ? " (stream)" : "");
	if (rc != 0) {
		conn_close(c);
		return;
	}
	if (v1 && d->ctl.delay_ms > 0) {
		uv_timer_start(&c->timer, on_delay, (uint64_t)d->ctl.delay_ms, 0);
		return;
	}
	on_delay(&c->timer);
}

/* Framing: head, then a body by Content-Length or chunked. */

static void
conn_reject(struct dconn *c, int status)
{
	char buf[512];
	int n = http_write_problem(buf, sizeof(buf), status, NULL, NULL, NULL, NULL, 0);

	c->keep_alive = 0;
	if (n > 0)
		conn_write(c, buf, (size_t)n);
	conn_finish(c);
}

static int
conn_body(struct dconn *c)
{
	size_t avail = c->inlen - c->head_len - c->raw_len, used, out;
	int rc;

	if (!c->req.chunked) {
		size_t want = (size_t)c->req.content_length - c->raw_len;

		c->raw_len += avail < want ? avail : want;
		c->body_len = c->raw_len;
		return c->raw_len == (size_t)c->req.content_length ? HTTP_OK : HTTP_INCOMPLETE;
	}
	rc = http_chunked_decode(&c->chunk, c->in + c->head_len + c->raw_len, avail, &used,
	    c->in + c->head_len + c->body_len, MAX_BODY - c->body_len, &out);
	c->raw_len += used;
	c->body_len += out;
	if (rc == HTTP_INCOMPLETE && c->body_len == MAX_BODY && used < avail)
		return 413;
	return rc;
}

static void
conn_advance(struct dconn *c)
{
	int rc;

	if (c->state == C_HEAD) {
		rc = http_parse_request(c->in, c->inlen, MAX_HEAD, &c->req, &c->head_len);
		if (rc == HTTP_INCOMPLETE)
			return;
		if (rc != HTTP_OK || c->req.content_length > (int64_t)MAX_BODY) {
			conn_reject(c, rc != HTTP_OK ? rc : 413);
			return;
		}
		c->keep_alive = c->req.keep_alive;
		if (c->req.content_length < 0)
			c->req.content_length = 0;
		c->raw_len = c->body_len = 0;
		http_chunked_init(&c->chunk);
		c->state = C_BODY;
	}
	if ((rc = conn_body(c)) == HTTP_INCOMPLETE)
		return;
	if (rc != HTTP_OK) {
		conn_reject(c, rc == 413 ? 413 : 400);
		return;
	}
	c->state = C_BUSY;
	uv_read_stop((uv_stream_t *)&c->tcp);
	conn_handle(c);
}

/* Accepting, listening, stopping. */

static void
on_connection(uv_stream_t *server, int status)
{
	struct demo *d = server->data;
	struct dconn *c;

	if (status != 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->demo = d;
	uv_tcp_init(d->loop, &c->tcp);
	uv_timer_init(d->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		conn_close(c);
}

static int
parse_listen(const char *spec, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;

	if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	return uv_ip4_addr(host, (int)port, sa);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	struct demo *d = s->data;

	(void)signum;
	uv_close((uv_handle_t *)&d->listener, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	for (struct dconn *c = d->conns; c != NULL; c = c->next)
		if (!uv_is_closing((uv_handle_t *)&c->tcp))
			conn_close(c);
}

static int
load_key(struct demo *d, const char *path)
{
	uint8_t key[KEY_LEN];
	char err[512];
	int n = cfg_read_secret(path, key, KEY_LEN, KEY_LEN, err, sizeof(err));

	if (n < 0) {
		fprintf(stderr, "cn2-demo-upstream: %s\n", err);
		return -1;
	}
	memcpy(d->bearer[d->nkeys], "Bearer ", 7);
	memcpy(d->bearer[d->nkeys] + 7, key, KEY_LEN);
	d->bearer[d->nkeys][7 + KEY_LEN] = '\0';
	d->nkeys++;
	mbedtls_platform_zeroize(key, sizeof(key));
	return 0;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-demo-upstream -l host:port -k keyfile [-k keyfile]... [-n events]"
	    " [-i interval_ms]\n"
	    "A fake OpenAI-compatible upstream for local use and tests.\n\n"
	    "  -l host:port   IPv4 address to listen on (e.g. 127.0.0.1:8090)\n"
	    "  -k keyfile     file holding an accepted API key (64 characters, mode 0600);\n"
	    "                 up to 8, key 0 first\n"
	    "  -n events      chunk events per streamed completion (default 5)\n"
	    "  -i ms          time between events (default 100)\n\n"
	    "Routes: GET /v1/models, POST /v1/chat/completions (\"stream\": true for SSE);\n"
	    "test controls: POST /_demo/control, GET /_demo/stats (see tests/demo/upstream.c).\n");
}

static int
parse_args(int argc, char **argv, struct demo *d, const char **listen, const char **keyfile,
    int *nkeyfiles)
{
	int ch;
	long v;
	char *end;

	d->def.events = 5;
	d->def.interval_ms = 100;
	while ((ch = getopt(argc, argv, "l:k:n:i:h")) != -1) {
		switch (ch) {
		case 'l':
			*listen = optarg;
			break;
		case 'k':
			if (*nkeyfiles == KEYS_MAX)
				return -1;
			keyfile[(*nkeyfiles)++] = optarg;
			break;
		case 'n':
		case 'i':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < (ch == 'n' ? 1 : 0) || v > (ch == 'n' ? EVENTS_MAX : 60000))
				return -1;
			*(ch == 'n' ? &d->def.events : &d->def.interval_ms) = (int)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	return optind == argc && *listen != NULL && *nkeyfiles > 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct demo *d = &the_demo;
	const char *listen = NULL, *keyfile[KEYS_MAX];
	struct sockaddr_in sa;
	int rc, nkeyfiles = 0;

	log_set_ident("cn2-demo-upstream");
	if (parse_args(argc, argv, d, &listen, keyfile, &nkeyfiles) != 0 ||
	    parse_listen(listen, &sa) != 0) {
		usage(stderr);
		return 2;
	}
	for (int i = 0; i < nkeyfiles; i++)
		if (load_key(d, keyfile[i]) != 0)
			return 1;
	d->ctl = d->def;
	signal(SIGPIPE, SIG_IGN);
	d->loop = uv_default_loop();
	uv_tcp_init(d->loop, &d->listener);
	d->listener.data = d;
	if ((rc = uv_tcp_bind(&d->listener, (const struct sockaddr *)&sa, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&d->listener, 128, on_connection)) != 0) {
		fprintf(stderr, "cn2-demo-upstream: listen on %s: %s\n", listen, uv_strerror(rc));
		return 1;
	}
	uv_signal_init(d->loop, &d->sigterm);
	uv_signal_init(d->loop, &d->sigint);
	d->sigterm.data = d->sigint.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	log_info("listening on %s", listen);
	uv_run(d->loop, UV_RUN_DEFAULT);
	uv_loop_close(d->loop);
	mbedtls_platform_zeroize(d->bearer, sizeof(d->bearer));
	return 0;
}
