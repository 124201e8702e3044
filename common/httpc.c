/*
 * httpc.c — outbound HTTP(S) calls on a daemon's one libuv loop: payments'
 * calls to payment processors (LND, Stripe, a Tempo RPC node), and
 * platform-api's webhook deliveries.
 *
 * libcurl's multi-socket interface does the I/O: it names the sockets it
 * wants watched (one uv_poll each) and when it wants a timeout callback
 * (one uv_timer); completions are collected with curl_multi_info_read and
 * handed to each call's owner. Nothing here ever blocks the loop: a slow
 * or dead server costs a pending transfer, bounded by the call's own
 * timeout (CURLOPT_TIMEOUT_MS), never a stalled daemon.
 *
 * Security stance: response bodies are bounded (HTTPC_BODY_MAX) and handed
 * to the caller as untrusted bytes; only http(s) is allowed, redirects are
 * never followed, and certificate verification is always on (a server with
 * its own certificate, like an LND node, is pinned with cainfo). Headers
 * that carry secrets (macaroons, API keys, webhook signatures) are built by
 * the caller, given to libcurl and wiped with the request; nothing here
 * logs a URL, a header or a body. A call with an allow check has it applied
 * in CURLOPT_OPENSOCKETFUNCTION, to the very address about to be connected
 * to, and goes direct (no proxy), so that the check is about the real peer.
 */
#include "common/httpc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <mbedtls/platform_util.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define HTTPC_HEAD_MAX 8192

struct httpc_call {
	struct httpc_call *prev, *next;
	struct httpc *h;
	CURL *easy;
	struct curl_slist *headers;
	char *body_out; /* the request body (wiped: it may hold a token) */
	char *in;	/* the response body */
	size_t inlen;
	char head[HTTPC_HEAD_MAX];
	size_t headlen;
	int too_big;
	httpc_allow_fn allow;
	void *allow_arg;
	httpc_fn done;
	void *arg;
};

struct httpc_sock {
	struct httpc *h;
	uv_poll_t poll;
	curl_socket_t fd;
};

struct httpc {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct httpc_call *calls;
};

static void http_drive(struct httpc *h, curl_socket_t fd, int flags);

static void
sock_closed(uv_handle_t *handle)
{
	free(handle->data);
}

static void
sock_on_poll(uv_poll_t *p, int status, int events)
{
	struct httpc_sock *s = p->data;
	int flags = status < 0 ? CURL_CSELECT_ERR : 0;

	flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
	flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
	http_drive(s->h, s->fd, flags);
}

/* CURLMOPT_SOCKETFUNCTION: which sockets to watch, for what. */
static int
http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct httpc *h = userp;
	struct httpc_sock *s = socketp;
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
	struct httpc *h = userp;

	(void)multi;
	if (ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, http_on_timeout, (uint64_t)ms, 0);
	return 0;
}

static void
call_unlink(struct httpc_call *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->h->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

static void
call_free(struct httpc_call *c)
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
call_finish(struct httpc_call *c, CURLcode res)
{
	struct httpc_result r;
	long status = 0;

	call_unlink(c);
	memset(&r, 0, sizeof(r));
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	r.status = status;
	r.body = c->in != NULL ? c->in : "";
	r.bodylen = c->inlen;
	r.head = c->head;
	if (res == CURLE_OPERATION_TIMEDOUT)
		r.error = HTTPC_TIMEOUT;
	else if (res != CURLE_OK || c->too_big)
		r.error = HTTPC_FAILED;
	if (res != CURLE_OK)
		log_info("outbound HTTP call failed: %s", curl_easy_strerror(res));
	c->done(c->arg, &r);
	call_free(c);
}

static void
http_drive(struct httpc *h, curl_socket_t fd, int flags)
{
	CURLMsg *m;
	int running, left;

	if (curl_multi_socket_action(h->multi, fd, flags, &running) != CURLM_OK)
		log_warnx("curl_multi_socket_action failed");
	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		struct httpc_call *c = NULL;

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
	struct httpc_call *c = arg;
	size_t add = size * n;
	char *p;

	if (c->inlen + add > HTTPC_BODY_MAX) {
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
	struct httpc_call *c = arg;
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

/*
 * CURLOPT_OPENSOCKETFUNCTION, set only on calls with an allow check. libcurl
 * has resolved the name and is about to connect to a, so a is the address
 * that counts: a DNS answer that changes between two lookups cannot slip
 * past. A refusal returns CURL_SOCKET_BAD, which fails the call before any
 * packet is sent.
 */
static curl_socket_t
call_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct httpc_call *c = arg;
	char ip[INET6_ADDRSTRLEN] = "?";
	const void *in = NULL;

	if (purpose == CURLSOCKTYPE_IPCXN && c->allow(&a->addr, a->addrlen, c->allow_arg))
		return socket(a->family, a->socktype, a->protocol);
	/* The address is no secret, and the operator needs it to see why a call failed. */
	if (a->family == AF_INET)
		in = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
	else if (a->family == AF_INET6)
		in = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
	if (in != NULL && inet_ntop(a->family, in, ip, sizeof(ip)) == NULL)
		snprintf(ip, sizeof(ip), "?");
	log_info("outbound HTTP call to %s refused by its address check", ip);
	return CURL_SOCKET_BAD;
}

/* A proxy would make the checked address the proxy's, not the peer's: go direct. */
static int
call_setup_allow(struct httpc_call *c, const struct httpc_req *req)
{
	CURL *e = c->easy;

	c->allow = req->allow;
	c->allow_arg = req->allow_arg;
	return curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, call_open_socket) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK;
}

static int
call_setup(struct httpc_call *c, const struct httpc_req *req)
{
	CURL *e = c->easy;
	int ok = 1;

	for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL && ok; i++) {
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
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)c) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body_out != NULL ? c->body_out : "") ==
		CURLE_OK;
	if (ok && req->cainfo != NULL && *req->cainfo != '\0')
		ok = curl_easy_setopt(e, CURLOPT_CAINFO, req->cainfo) == CURLE_OK;
	if (ok && req->allow != NULL)
		ok = call_setup_allow(c, req);
	return ok ? 0 : -1;
}

int
httpc_post(struct httpc *h, const struct httpc_req *req, httpc_fn done, void *arg)
{
	struct httpc_call *c;

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

struct httpc *
httpc_new(uv_loop_t *loop, char *err, size_t errlen)
{
	struct httpc *h;

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
		httpc_free(h);
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
httpc_cancel_all(struct httpc *h)
{
	struct httpc_call *c;

	if (h == NULL)
		return;
	while ((c = h->calls) != NULL)
		call_finish(c, CURLE_ABORTED_BY_CALLBACK);
}

void
httpc_free(struct httpc *h)
{
	if (h == NULL)
		return;
	httpc_cancel_all(h);
	curl_multi_cleanup(h->multi);
	curl_global_cleanup();
	uv_close((uv_handle_t *)&h->timer, timer_closed);
}

size_t
httpc_pending(const struct httpc *h)
{
	size_t n = 0;

	for (const struct httpc_call *c = h != NULL ? h->calls : NULL; c != NULL; c = c->next)
		n++;
	return n;
}

/*
 * httpc_public_only: the address ranges no webhook may reach. Each row is a
 * prefix; an address is refused when its first bits equal the row's.
 */
struct httpc_net {
	uint8_t net[16];
	unsigned bits;
};

static const struct httpc_net v4_refused[] = {
    {{0}, 8},         /* "this network", 0.0.0.0 included */
    {{10}, 8},        /* private (RFC 1918) */
    {{100, 64}, 10},  /* shared address space: carrier-grade NAT */
    {{127}, 8},       /* loopback */
    {{169, 254}, 16}, /* link-local, where cloud metadata services live */
    {{172, 16}, 12},  /* private */
    {{192, 168}, 16}, /* private */
    {{224}, 4},       /* multicast */
    {{240}, 4},       /* reserved, 255.255.255.255 (broadcast) included */
};

static const struct httpc_net v6_refused[] = {
    {{0}, 128},                        /* unspecified */
    {{[15] = 1}, 128},                 /* loopback */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48}, /* NAT64 for local use (RFC 8215) */
    {{0xfc}, 7},                       /* unique local */
    {{0xfe, 0x80}, 10},                /* link-local */
    {{0xfe, 0xc0}, 10},                /* site-local (deprecated, yet still in use) */
    {{0xff}, 8},                       /* multicast */
};

/* IPv6 prefixes whose last 32 bits are an IPv4 address, which is judged as one. */
static const struct httpc_net v6_holds_v4[] = {
    {{[10] = 0xff, 0xff}, 96},   /* IPv4-mapped */
    {{0}, 96},                   /* IPv4-compatible (deprecated) */
    {{0, 0x64, 0xff, 0x9b}, 96}, /* NAT64, well-known prefix */
};

static int
net_has(const struct httpc_net *n, const uint8_t *a)
{
	unsigned full = n->bits / 8, rest = n->bits % 8;

	if (memcmp(a, n->net, full) != 0)
		return 0;
	return rest == 0 || ((a[full] ^ n->net[full]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

static int
nets_have(const struct httpc_net *t, size_t n, const uint8_t *a)
{
	for (size_t i = 0; i < n; i++)
		if (net_has(&t[i], a))
			return 1;
	return 0;
}

#define NETS_HAVE(t, a) nets_have((t), sizeof(t) / sizeof((t)[0]), (a))

int
httpc_public_only(const struct sockaddr *sa, socklen_t len, void *arg)
{
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;

	(void)arg;
	if (sa != NULL && sa->sa_family == AF_INET && len >= sizeof(v4)) {
		memcpy(&v4, sa, sizeof(v4));
		return !NETS_HAVE(v4_refused, (const uint8_t *)&v4.sin_addr);
	}
	if (sa == NULL || sa->sa_family != AF_INET6 || len < sizeof(v6))
		return 0;
	memcpy(&v6, sa, sizeof(v6));
	if (NETS_HAVE(v6_refused, v6.sin6_addr.s6_addr))
		return 0;
	if (NETS_HAVE(v6_holds_v4, v6.sin6_addr.s6_addr))
		return !NETS_HAVE(v4_refused, v6.sin6_addr.s6_addr + 12);
	return 1;
}
