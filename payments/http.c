/*
 * http.c — cn2-payments's outbound HTTPS calls to payment processors (LND,
 * Stripe, a Tempo RPC node), on the daemon's one libuv loop.
 *
 * libcurl's multi-socket interface does the I/O: it names the sockets it
 * wants watched (one uv_poll each) and when it wants a timeout callback
 * (one uv_timer); completions are collected with curl_multi_info_read and
 * handed to each call's owner. Nothing here ever blocks the loop: a slow
 * or dead processor costs a pending transfer, bounded by the call's own
 * timeout (CURLOPT_TIMEOUT_MS), never a stalled daemon.
 *
 * Security stance: response bodies are bounded (PAY_HTTP_BODY_MAX) and
 * handed to the caller as untrusted bytes; only http(s) is allowed, with
 * certificate verification always on (a processor with its own certificate,
 * like an LND node, is pinned with cainfo). Headers that carry secrets
 * (macaroons, API keys) are built by the caller, given to libcurl and
 * wiped with the request; nothing here logs a header or a body.
 */
#include "payments/payments.h"

#include <curl/curl.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define PAY_HTTP_HEAD_MAX 8192

struct pay_http_call {
	struct pay_http_call *prev, *next;
	struct pay_http *h;
	CURL *easy;
	struct curl_slist *headers;
	char *body_out; /* the request body (wiped: it may hold a token) */
	char *in;	/* the response body */
	size_t inlen;
	char head[PAY_HTTP_HEAD_MAX];
	size_t headlen;
	int too_big;
	pay_http_fn done;
	void *arg;
};

struct pay_http_sock {
	struct pay_http *h;
	uv_poll_t poll;
	curl_socket_t fd;
};

struct pay_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct pay_http_call *calls;
};

static void http_drive(struct pay_http *h, curl_socket_t fd, int flags);

static void
sock_closed(uv_handle_t *handle)
{
	free(handle->data);
}

static void
sock_on_poll(uv_poll_t *p, int status, int events)
{
	struct pay_http_sock *s = p->data;
	int flags = status < 0 ? CURL_CSELECT_ERR : 0;

	flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
	flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
	http_drive(s->h, s->fd, flags);
}

/* CURLMOPT_SOCKETFUNCTION: which sockets to watch, for what. */
static int
http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct pay_http *h = userp;
	struct pay_http_sock *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(h->multi, fd, NULL);
			uv_close((uv_handle_t *)&s->poll, sock_closed);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL ||
		    uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->h = h;
		s->fd = fd;
		s->poll.data = s;
		curl_multi_assign(h->multi, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	return uv_poll_start(&s->poll, events, sock_on_poll) == 0 ? 0 : -1;
}

static void
http_on_timeout(uv_timer_t *t)
{
	http_drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: only arms the uv timer (never calls libcurl back from here). */
static int
http_on_timer(CURLM *multi, long ms, void *userp)
{
	struct pay_http *h = userp;

	(void)multi;
	if (ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, http_on_timeout, (uint64_t)ms, 0);
	return 0;
}

static void
call_unlink(struct pay_http_call *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->h->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

static void
call_free(struct pay_http_call *c)
{
	curl_multi_remove_handle(c->h->multi, c->easy);
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	if (c->body_out != NULL) {
		mbedtls_platform_zeroize(c->body_out, strlen(c->body_out));
		free(c->body_out);
	}
	free(c->in);
	free(c);
}

/* Finish call c with result res: unlink, tell the owner, free. */
static void
call_finish(struct pay_http_call *c, CURLcode res)
{
	struct pay_http_result r;
	long status = 0;

	call_unlink(c);
	memset(&r, 0, sizeof(r));
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	r.status = status;
	r.body = c->in != NULL ? c->in : "";
	r.bodylen = c->inlen;
	r.head = c->head;
	if (res == CURLE_OPERATION_TIMEDOUT)
		r.error = PAY_HTTP_TIMEOUT;
	else if (res != CURLE_OK || c->too_big)
		r.error = PAY_HTTP_FAILED;
	if (res != CURLE_OK)
		log_info("payment processor call failed: %s", curl_easy_strerror(res));
	c->done(c->arg, &r);
	call_free(c);
}

static void
http_drive(struct pay_http *h, curl_socket_t fd, int flags)
{
	CURLMsg *m;
	int running, left;

	if (curl_multi_socket_action(h->multi, fd, flags, &running) != CURLM_OK)
		log_warnx("curl_multi_socket_action failed");
	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		struct pay_http_call *c = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (c != NULL)
			call_finish(c, m->data.result);
	}
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct pay_http_call *c = arg;
	size_t add = size * n;
	char *p;

	if (c->inlen + add > PAY_HTTP_BODY_MAX) {
		c->too_big = 1;
		return 0;
	}
	if ((p = realloc(c->in, c->inlen + add + 1)) == NULL)
		return 0;
	memcpy(p + c->inlen, data, add);
	c->in = p;
	c->inlen += add;
	c->in[c->inlen] = '\0';
	return add;
}

/* Keep the final response's header block (lines past the bound are dropped). */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct pay_http_call *c = arg;
	size_t add = size * n;

	if (add >= 5 && strncmp(data, "HTTP/", 5) == 0)
		c->headlen = 0;
	if (c->headlen + add < sizeof(c->head)) {
		memcpy(c->head + c->headlen, data, add);
		c->headlen += add;
	}
	c->head[c->headlen] = '\0';
	return add;
}

static int
call_setup(struct pay_http_call *c, const struct pay_http_req *req)
{
	CURL *e = c->easy;
	int ok = 1;

	for (size_t i = 0; req->headers[i] != NULL && ok; i++) {
		struct curl_slist *l = curl_slist_append(c->headers, req->headers[i]);

		ok = l != NULL;
		if (ok)
			c->headers = l;
	}
	if (!ok || (req->body != NULL && (c->body_out = strdup(req->body)) == NULL))
		return -1;
	ok = curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ==
		CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, c) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)c) == CURLE_OK;
	if (ok && c->body_out != NULL)
		ok = curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body_out) == CURLE_OK;
	if (ok && req->cainfo != NULL && *req->cainfo != '\0')
		ok = curl_easy_setopt(e, CURLOPT_CAINFO, req->cainfo) == CURLE_OK;
	return ok ? 0 : -1;
}

int
pay_http_post(struct pay_http *h, const struct pay_http_req *req, pay_http_fn done, void *arg)
{
	struct pay_http_call *c;

	if (h == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->h = h;
	c->done = done;
	c->arg = arg;
	if ((c->easy = curl_easy_init()) == NULL || call_setup(c, req) != 0 ||
	    curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
		curl_easy_cleanup(c->easy);
		curl_slist_free_all(c->headers);
		if (c->body_out != NULL)
			mbedtls_platform_zeroize(c->body_out, strlen(c->body_out));
		free(c->body_out);
		free(c);
		return -1;
	}
	c->next = h->calls;
	if (h->calls != NULL)
		h->calls->prev = c;
	h->calls = c;
	return 0;
}

struct pay_http *
pay_http_new(uv_loop_t *loop, char *err, size_t errlen)
{
	struct pay_http *h;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return NULL;
	}
	h->loop = loop;
	if ((h->multi = curl_multi_init()) == NULL) {
		free(h);
		snprintf(err, errlen, "curl_multi_init failed");
		return NULL;
	}
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_on_socket) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_on_timer) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK) {
		snprintf(err, errlen, "cannot set up the libcurl multi handle");
		pay_http_free(h);
		return NULL;
	}
	return h;
}

static void
timer_closed(uv_handle_t *t)
{
	free(t->data);
}

void
pay_http_cancel_all(struct pay_http *h)
{
	struct pay_http_call *c;

	if (h == NULL)
		return;
	while ((c = h->calls) != NULL)
		call_finish(c, CURLE_ABORTED_BY_CALLBACK);
}

void
pay_http_free(struct pay_http *h)
{
	if (h == NULL)
		return;
	pay_http_cancel_all(h);
	curl_multi_cleanup(h->multi);
	curl_global_cleanup();
	uv_close((uv_handle_t *)&h->timer, timer_closed);
}

size_t
pay_http_pending(const struct pay_http *h)
{
	size_t n = 0;

	for (const struct pay_http_call *c = h != NULL ? h->calls : NULL; c != NULL; c = c->next)
		n++;
	return n;
}
