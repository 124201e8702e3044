/*
 * upstream.c — libcurl's multi-socket interface driven by the vault's libuv
 * loop, so every upstream transfer runs on the one loop thread.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * uv_poll per socket) and when to call it back (CURLMOPT_TIMERFUNCTION: one
 * uv_timer); we hand readiness and timeouts back with
 * curl_multi_socket_action and collect finished transfers with
 * curl_multi_info_read. The multi handle keeps connections for reuse across
 * transfers: HTTP/1.1 keep-alive connections in its cache (max_idle of
 * them), HTTP/2 ones multiplexed (CURLPIPE_MULTIPLEX; forward.c asks each
 * transfer to wait for a multiplexable connection rather than open one),
 * at most max_host per upstream host when that is set.
 *
 * Security stance: this file moves bytes; it never sees the key except as
 * libcurl does. libcurl copies what it is given (the URL, which holds the
 * key for a provider that takes it as a query parameter) and builds the
 * request head in its own buffers: every block libcurl frees goes through
 * wipe_free, which zeroes it first, so those copies do not outlive the
 * call in free heap memory. It never calls back into libcurl from inside a
 * libcurl callback: the timer callback only starts a uv timer, even for 0 ms.
 */
#include "vault/vault.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "common/log.h"

struct upstream_sock {
	struct upstream_sock *prev, *next;
	struct upstream *u;
	uv_poll_t poll;
	curl_socket_t fd;
	int closing;
};

static void upstream_drive(struct upstream *u, curl_socket_t fd, int flags);

/* libcurl's allocator: as libc's, but every block is wiped before it is freed. */

static void
wipe_free(void *p)
{
	if (p == NULL)
		return;
	mbedtls_platform_zeroize(p, malloc_usable_size(p));
	free(p);
}

static void *
wipe_malloc(size_t n)
{
	return malloc(n);
}

static void *
wipe_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

static char *
wipe_strdup(const char *s)
{
	return strdup(s);
}

/* Never realloc in place: the old block must be wiped, wherever the new one lands. */
static void *
wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wipe_free(p);
		return NULL;
	}
	if ((q = malloc(n)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static void
sock_on_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
sock_close(struct upstream_sock *s)
{
	struct upstream *u = s->u;

	if (s->closing)
		return;
	s->closing = 1;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		u->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	uv_close((uv_handle_t *)&s->poll, sock_on_closed);
}

static void
sock_on_poll(uv_poll_t *p, int status, int events)
{
	struct upstream_sock *s = p->data;
	int flags = 0;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	upstream_drive(s->u, s->fd, flags);
}

static struct upstream_sock *
sock_new(struct upstream *u, curl_socket_t fd)
{
	struct upstream_sock *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
		free(s);
		return NULL;
	}
	s->u = u;
	s->fd = fd;
	s->poll.data = s;
	s->next = u->socks;
	if (u->socks != NULL)
		u->socks->prev = s;
	u->socks = s;
	return s;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching fd. */
static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct upstream *u = userp;
	struct upstream_sock *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		/* libcurl forgets its own association with fd after this. */
		if (s != NULL)
			sock_close(s);
		return 0;
	}
	if (s == NULL) {
		if ((s = sock_new(u, fd)) == NULL) {
			log_warnx("cannot watch an upstream socket");
			return -1;
		}
		curl_multi_assign(u->multi, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	if (uv_poll_start(&s->poll, events, sock_on_poll) != 0) {
		log_warnx("cannot poll an upstream socket");
		return -1;
	}
	return 0;
}

static void
timer_on_fire(uv_timer_t *t)
{
	upstream_drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: when libcurl wants to be called back; -1 means never. */
static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct upstream *u = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&u->timer);
	else
		uv_timer_start(&u->timer, timer_on_fire, (uint64_t)timeout_ms, 0);
	return 0;
}

/* Hand finished transfers to the owner, who takes each one out. */
static void
upstream_collect(struct upstream *u)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(u->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			u->done(u->arg, m->easy_handle, m->data.result);
}

static void
upstream_drive(struct upstream *u, curl_socket_t fd, int flags)
{
	int running;
	CURLMcode rc = curl_multi_socket_action(u->multi, fd, flags, &running);

	if (rc != CURLM_OK)
		log_warnx("curl_multi_socket_action: %s", curl_multi_strerror(rc));
	upstream_collect(u);
}

int
upstream_init(struct upstream *u, uv_loop_t *loop, long max_host, long max_idle,
    upstream_done_fn done, void *arg, char *err, size_t errlen)
{
	CURLcode g;

	memset(u, 0, sizeof(*u));
	u->loop = loop;
	u->done = done;
	u->arg = arg;
	if ((g = curl_global_init_mem(CURL_GLOBAL_DEFAULT, wipe_malloc, wipe_free, wipe_realloc,
		 wipe_strdup, wipe_calloc)) != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(g));
		return -1;
	}
	u->global = 1;
	if ((u->multi = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "curl_multi_init failed");
		upstream_free(u);
		return -1;
	}
	uv_timer_init(loop, &u->timer);
	u->timer.data = u;
	u->timer_open = 1;
	if (curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u) != CURLM_OK ||
	    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u) != CURLM_OK ||
	    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) != CURLM_OK ||
	    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host) != CURLM_OK ||
	    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, max_idle) != CURLM_OK) {
		snprintf(err, errlen, "cannot set up the libcurl multi handle");
		upstream_free(u);
		return -1;
	}
	return 0;
}

void
upstream_free(struct upstream *u)
{
	if (u->multi != NULL)
		curl_multi_cleanup(u->multi);
	u->multi = NULL;
	/* Sockets libcurl did not tell us to forget: their connections are gone now. */
	while (u->socks != NULL)
		sock_close(u->socks);
	if (u->timer_open)
		uv_close((uv_handle_t *)&u->timer, NULL);
	u->timer_open = 0;
	if (u->global)
		curl_global_cleanup();
	u->global = 0;
}

int
upstream_add(struct upstream *u, CURL *easy)
{
	CURLMcode rc = curl_multi_add_handle(u->multi, easy);

	if (rc != CURLM_OK) {
		log_warnx("curl_multi_add_handle: %s", curl_multi_strerror(rc));
		return -1;
	}
	return 0;
}

void
upstream_remove(struct upstream *u, CURL *easy)
{
	CURLMcode rc = curl_multi_remove_handle(u->multi, easy);

	if (rc != CURLM_OK)
		log_warnx("curl_multi_remove_handle: %s", curl_multi_strerror(rc));
}

void
upstream_count(struct upstream *u, CURL *easy)
{
	long n = 0;

	if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &n) != CURLE_OK)
		return;
	if (n > 0)
		u->opened += (uint64_t)n;
	else
		u->reused++;
}
