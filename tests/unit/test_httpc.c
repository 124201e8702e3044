/*
 * test_httpc.c — common/httpc.c: the public-only address check, table-driven
 * over IPv4 and IPv6 rows on both sides of every refused range; and real
 * calls on a libuv loop to a tiny loopback listener (a plain socket that
 * answers each request with a canned response), showing that a call gets
 * the status, head and body, that a redirect is handed back rather than
 * followed, and that an allow check stops the connection before it is made:
 * the listener accepts nothing.
 *
 * Every wait runs the loop against a deadline and every call has its own
 * timeout, so a broken client fails a test instead of hanging it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "common/httpc.h"
#include "tests/unit/loop_wait.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DEADLINE_MS 3000
#define CALL_TIMEOUT_MS 2000
#define MAX_CONNS 4

#define REPLY_204 "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

struct addr_case {
	int family;
	const char *ip;
	int allowed;
};

static const struct addr_case addr_cases[] = {
    /* IPv4: public, including the neighbours of each refused range. */
    {AF_INET, "8.8.8.8", 1},
    {AF_INET, "1.0.0.0", 1},
    {AF_INET, "9.255.255.255", 1},
    {AF_INET, "11.0.0.0", 1},
    {AF_INET, "100.63.255.255", 1},
    {AF_INET, "100.128.0.0", 1},
    {AF_INET, "126.255.255.255", 1},
    {AF_INET, "128.0.0.0", 1},
    {AF_INET, "169.253.255.255", 1},
    {AF_INET, "169.255.0.0", 1},
    {AF_INET, "172.15.255.255", 1},
    {AF_INET, "172.32.0.0", 1},
    {AF_INET, "192.167.255.255", 1},
    {AF_INET, "192.169.0.0", 1},
    {AF_INET, "223.255.255.255", 1},
    /* IPv4: refused. */
    {AF_INET, "0.0.0.0", 0},
    {AF_INET, "0.255.255.255", 0},
    {AF_INET, "10.0.0.1", 0},
    {AF_INET, "10.255.255.255", 0},
    {AF_INET, "100.64.0.0", 0},
    {AF_INET, "100.127.255.255", 0},
    {AF_INET, "127.0.0.1", 0},
    {AF_INET, "127.255.255.254", 0},
    {AF_INET, "169.254.169.254", 0},
    {AF_INET, "172.16.0.0", 0},
    {AF_INET, "172.31.255.255", 0},
    {AF_INET, "192.168.0.1", 0},
    {AF_INET, "224.0.0.1", 0},
    {AF_INET, "239.255.255.255", 0},
    {AF_INET, "240.0.0.1", 0},
    {AF_INET, "255.255.255.255", 0},
    /* IPv6: public, including public IPv4 in each IPv6 form. */
    {AF_INET6, "2001:4860:4860::8888", 1},
    {AF_INET6, "2606:4700:4700::1111", 1},
    {AF_INET6, "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
    {AF_INET6, "::2:0:0", 1},
    {AF_INET6, "::ffff:8.8.8.8", 1},
    {AF_INET6, "::8.8.8.8", 1},
    {AF_INET6, "64:ff9b::808:808", 1},
    /* IPv6: refused. */
    {AF_INET6, "::", 0},
    {AF_INET6, "::1", 0},
    {AF_INET6, "fc00::1", 0},
    {AF_INET6, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
    {AF_INET6, "fe80::1", 0},
    {AF_INET6, "febf:ffff::1", 0},
    {AF_INET6, "fec0::1", 0},
    {AF_INET6, "ff02::1", 0},
    {AF_INET6, "ff0e::1", 0},
    {AF_INET6, "64:ff9b:1::1", 0},
    /* IPv6: refused IPv4 in IPv6 dress (mapped, compatible, NAT64). */
    {AF_INET6, "::ffff:0.0.0.0", 0},
    {AF_INET6, "::ffff:10.1.2.3", 0},
    {AF_INET6, "::ffff:100.64.0.1", 0},
    {AF_INET6, "::ffff:127.0.0.1", 0},
    {AF_INET6, "::ffff:169.254.169.254", 0},
    {AF_INET6, "::ffff:172.16.0.1", 0},
    {AF_INET6, "::ffff:192.168.1.1", 0},
    {AF_INET6, "::ffff:224.0.0.1", 0},
    {AF_INET6, "::ffff:255.255.255.255", 0},
    {AF_INET6, "::127.0.0.1", 0},
    {AF_INET6, "64:ff9b::7f00:1", 0},
    {AF_INET6, "64:ff9b::a9fe:a9fe", 0},
};

static void
test_public_only_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct sockaddr_storage ss;
		struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
		socklen_t len = c->family == AF_INET ? sizeof(*v4) : sizeof(*v6);
		void *dst = c->family == AF_INET ? (void *)&v4->sin_addr : (void *)&v6->sin6_addr;
		int got;

		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)c->family;
		assert_int_equal(inet_pton(c->family, c->ip, dst), 1);
		got = httpc_public_only((const struct sockaddr *)&ss, len, NULL) != 0;
		EXPECT(bad, got == c->allowed, "%s: %s, want %s", c->ip,
		    got ? "allowed" : "refused", c->allowed ? "allowed" : "refused");
	}
	assert_int_equal(bad, 0);
}

/* What is not a whole IPv4 or IPv6 address is refused. */
static void
test_public_only_other(void **state)
{
	struct sockaddr_in v4;
	struct sockaddr_un un;

	(void)state;
	memset(&v4, 0, sizeof(v4));
	v4.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "8.8.8.8", &v4.sin_addr), 1);
	assert_int_not_equal(httpc_public_only((struct sockaddr *)&v4, sizeof(v4), NULL), 0);
	assert_int_equal(httpc_public_only((struct sockaddr *)&v4, sizeof(v4) - 1, NULL), 0);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(httpc_public_only((struct sockaddr *)&un, sizeof(un), NULL), 0);
	assert_int_equal(httpc_public_only(NULL, 0, NULL), 0);
}

/* One accepted connection of the listener. */
struct conn {
	struct listener *l;
	uv_poll_t poll;
	int fd;
	int open;
	char buf[4096];
	size_t len;
	int answered;
};

/* The loopback listener: the first connection gets reply, later ones REPLY_204. */
struct listener {
	int fd;
	int port;
	uv_poll_t poll;
	const char *reply;
	int accepted;
	struct conn conns[MAX_CONNS];
};

/* What done() saw of the one call a test makes. */
struct outcome {
	int calls;
	int error;
	long status;
	char body[128];
	size_t bodylen;
	char head[512];
};

/* What a recording allow check saw. */
struct seen {
	int calls;
	int family;
	char ip[INET6_ADDRSTRLEN];
	int port;
};

struct fx {
	uv_loop_t loop;
	uv_timer_t ticker;
	struct httpc *h;
	struct listener l;
	struct outcome out;
};

static void
conn_closed(uv_handle_t *handle)
{
	struct conn *c = handle->data;

	close(c->fd);
	c->open = 0;
}

/* Read the request; answer once its head is in; close at the client's EOF. */
static void
conn_on_poll(uv_poll_t *p, int status, int events)
{
	struct conn *c = p->data;
	char scratch[512];
	char *to = c->len + 1 < sizeof(c->buf) ? c->buf + c->len : scratch;
	size_t room = to == scratch ? sizeof(scratch) : sizeof(c->buf) - c->len - 1;
	ssize_t n = status < 0 ? -1 : read(c->fd, to, room);

	(void)events;
	if (n < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		uv_close((uv_handle_t *)&c->poll, conn_closed);
		return;
	}
	if (to != scratch) {
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
	}
	if (!c->answered && strstr(c->buf, "\r\n\r\n") != NULL) {
		const char *reply = c == &c->l->conns[0] ? c->l->reply : REPLY_204;

		c->answered = 1;
		assert_int_equal(write(c->fd, reply, strlen(reply)), (ssize_t)strlen(reply));
	}
}

static void
listener_on_poll(uv_poll_t *p, int status, int events)
{
	struct listener *l = p->data;
	struct conn *c;
	int fd;

	(void)events;
	if (status < 0 || (fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
		return;
	if (l->accepted >= MAX_CONNS) {
		close(fd);
		return;
	}
	c = &l->conns[l->accepted++];
	c->l = l;
	c->fd = fd;
	c->open = 1;
	c->poll.data = c;
	assert_int_equal(uv_poll_init_socket(p->loop, &c->poll, fd), 0);
	assert_int_equal(uv_poll_start(&c->poll, UV_READABLE, conn_on_poll), 0);
}

static void
listener_start(uv_loop_t *loop, struct listener *l)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l->fd, 8), 0);
	assert_int_equal(getsockname(l->fd, (struct sockaddr *)&sin, &len), 0);
	l->port = ntohs(sin.sin_port);
	l->reply = REPLY_204;
	l->poll.data = l;
	assert_int_equal(uv_poll_init_socket(loop, &l->poll, l->fd), 0);
	assert_int_equal(uv_poll_start(&l->poll, UV_READABLE, listener_on_poll), 0);
}

static int
fx_setup(void **state)
{
	static struct fx fx;
	char err[128];

	memset(&fx, 0, sizeof(fx));
	assert_int_equal(uv_loop_init(&fx.loop), 0);
	assert_int_equal(uv_timer_init(&fx.loop, &fx.ticker), 0);
	assert_int_equal(uv_timer_start(&fx.ticker, ticker_on_tick, 5, 5), 0);
	fx.h = httpc_new(&fx.loop, err, sizeof(err));
	assert_non_null(fx.h);
	listener_start(&fx.loop, &fx.l);
	*state = &fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;

	httpc_free(fx->h);
	uv_close((uv_handle_t *)&fx->l.poll, NULL);
	for (int i = 0; i < fx->l.accepted; i++)
		if (fx->l.conns[i].open && !uv_is_closing((uv_handle_t *)&fx->l.conns[i].poll))
			uv_close((uv_handle_t *)&fx->l.conns[i].poll, conn_closed);
	uv_close((uv_handle_t *)&fx->ticker, NULL);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	close(fx->l.fd);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	return 0;
}

static void
on_done(void *arg, const struct httpc_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->error = r->error;
	o->status = r->status;
	o->bodylen = r->bodylen;
	snprintf(o->body, sizeof(o->body), "%s", r->body);
	snprintf(o->head, sizeof(o->head), "%s", r->head);
}

/* One POST to the listener's path, with allow; waits for done(). */
static void
post(struct fx *fx, const char *path, httpc_allow_fn allow, void *allow_arg)
{
	const char *hs[] = {"Content-Type: application/json", NULL};
	char url[128];
	struct httpc_req req = {.url = url, .headers = hs, .body = "{\"type\":\"test\"}",
	    .timeout_ms = CALL_TIMEOUT_MS, .allow = allow, .allow_arg = allow_arg};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx->l.port, path);
	assert_int_equal(httpc_post(fx->h, &req, on_done, &fx->out), 0);
	assert_int_equal(httpc_pending(fx->h), 1);
	RUN_UNTIL(fx, fx->out.calls > 0, DEADLINE_MS);
	assert_int_equal(fx->out.calls, 1);
	assert_int_equal(httpc_pending(fx->h), 0);
	/* Let a connection the client should not have made show up at the listener. */
	RUN_UNTIL(fx, 0, 100);
}

/* With no check, the loopback listener is reached and its 204 comes back. */
static void
test_post_reaches_listener(void **state)
{
	struct fx *fx = *state;

	post(fx, "/hook", NULL, NULL);
	assert_int_equal(fx->out.error, HTTPC_OK);
	assert_int_equal(fx->out.status, 204);
	assert_int_equal(fx->l.accepted, 1);
	assert_non_null(strstr(fx->l.conns[0].buf, "POST /hook HTTP/1.1\r\n"));
	assert_non_null(strstr(fx->l.conns[0].buf, "{\"type\":\"test\"}"));
}

/* httpc_public_only refuses the loopback address: the call fails, nothing connects. */
static void
test_public_only_stops_connection(void **state)
{
	struct fx *fx = *state;
	int fd;

	post(fx, "/hook", httpc_public_only, NULL);
	assert_int_equal(fx->out.error, HTTPC_FAILED);
	assert_int_equal(fx->out.status, 0);
	assert_int_equal(fx->l.accepted, 0);
	fd = accept4(fx->l.fd, NULL, NULL, SOCK_NONBLOCK);
	assert_int_equal(fd, -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Records the address it is asked about, then refuses it. */
static int
allow_record(const struct sockaddr *sa, socklen_t len, void *arg)
{
	struct seen *s = arg;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

	s->calls++;
	s->family = sa->sa_family;
	if (sa->sa_family == AF_INET && len >= sizeof(*sin)) {
		inet_ntop(AF_INET, &sin->sin_addr, s->ip, sizeof(s->ip));
		s->port = ntohs(sin->sin_port);
	}
	return 0;
}

/* The check is asked about the resolved address and port, with its own argument. */
static void
test_allow_sees_address(void **state)
{
	struct fx *fx = *state;
	struct seen seen;

	memset(&seen, 0, sizeof(seen));
	post(fx, "/hook", allow_record, &seen);
	assert_int_equal(fx->out.error, HTTPC_FAILED);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.family, AF_INET);
	assert_string_equal(seen.ip, "127.0.0.1");
	assert_int_equal(seen.port, fx->l.port);
	assert_int_equal(fx->l.accepted, 0);
}

/* The status, the head and the body reach done(). */
static void
test_status_head_body(void **state)
{
	struct fx *fx = *state;

	fx->l.reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n"
		      "Connection: close\r\n\r\nhello";
	post(fx, "/hook", NULL, NULL);
	assert_int_equal(fx->out.error, HTTPC_OK);
	assert_int_equal(fx->out.status, 200);
	assert_int_equal(fx->out.bodylen, 5);
	assert_string_equal(fx->out.body, "hello");
	assert_non_null(strstr(fx->out.head, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(fx->out.head, "X-Test: yes\r\n"));
}

/* A redirect is handed back as it is, never followed (following would reach a 204). */
static void
test_redirect_not_followed(void **state)
{
	struct fx *fx = *state;

	fx->l.reply = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n"
		      "Connection: close\r\n\r\n";
	post(fx, "/hook", NULL, NULL);
	assert_int_equal(fx->out.error, HTTPC_OK);
	assert_int_equal(fx->out.status, 302);
	assert_int_equal(fx->l.accepted, 1);
}

/* Only http and https: another scheme fails without a connection. */
static void
test_other_scheme_refused(void **state)
{
	struct fx *fx = *state;
	const char *hs[] = {NULL};
	char url[128];
	struct httpc_req req = {.url = url, .headers = hs, .timeout_ms = CALL_TIMEOUT_MS};

	snprintf(url, sizeof(url), "ftp://127.0.0.1:%d/hook", fx->l.port);
	assert_int_equal(httpc_post(fx->h, &req, on_done, &fx->out), 0);
	RUN_UNTIL(fx, fx->out.calls > 0, DEADLINE_MS);
	assert_int_equal(fx->out.calls, 1);
	assert_int_equal(fx->out.error, HTTPC_FAILED);
	assert_int_equal(fx->l.accepted, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_public_only_table),
	    cmocka_unit_test(test_public_only_other),
	    cmocka_unit_test_setup_teardown(test_post_reaches_listener, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_public_only_stops_connection, fx_setup,
		fx_teardown),
	    cmocka_unit_test_setup_teardown(test_allow_sees_address, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_status_head_body, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_redirect_not_followed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_other_scheme_refused, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
