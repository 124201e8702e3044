/*
 * test_ipc.c — the IPC transport in one process: a router-role server and a
 * vault-role client on one libuv loop, talking over an ipc:// socket in a
 * temporary directory.
 *
 * Cases: the link comes up and requests get their replies with ids echoed
 * (one, and a thousand at once); requests and replies of the wrong kind are
 * refused locally; a reply to a forgotten request is dropped; requests time
 * out, and a reply stream's timer restarts at each reply; in-flight messages
 * reach the server under the request's id, and one its peer rule forbids
 * cuts the link, which the dialler restores; a server that stops fails the
 * open requests and the client reconnects to its successor by itself; raw
 * nng stream clients that send garbage, bad HELLOs, disallowed types or
 * absurd lengths are cut off while the real client keeps working; a peer
 * whose uid does not match its role never links; the send queue accessor.
 *
 * Every wait runs the loop against a deadline, so a broken transport fails
 * a test instead of hanging it. Callbacks only record what happened; the
 * test bodies assert on the record.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <uv.h>

#include "common/ipc.h"
#include "tests/unit/loop_wait.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DEADLINE_MS 3000
#define NCALLS 1000

/* What the client saw of one request. */
struct call {
	uint64_t id;
	int calls;
	int status;
	uint16_t type;
	int msg_null;
	union ipc_any msg;
	uint16_t types[8]; /* of the first replies, in order */
	int64_t created[8]; /* of LISTING replies */
};

struct server {
	struct ipc *ipc;
	int silent;	/* hold requests in held[] instead of answering */
	int error;	/* answer with an IPC_ERROR */
	size_t nrequests;
	uint16_t last_type;
	enum ipc_role last_from;
	struct ipc_req held[16];
	size_t nheld;
	int reply_failures;
	int stream;	/* answer LISTING_LIST at once with three LISTINGs and an ACK */
	uint16_t inflight_type;
	struct ipc_req inflight;
};

struct client {
	struct ipc *ipc;
	int ups, downs;
	enum ipc_role last_peer;
};

struct fx {
	uv_loop_t loop;
	uv_timer_t ticker;
	char dir[64];
	struct server srv;
	struct client cli;
	struct call *calls; /* NCALLS of them */
};

/* A client written straight against nng's stream API, trusting nothing in ipc.c. */
struct raw {
	nng_stream_dialer *d;
	nng_stream *st;
	nng_aio *aio;
	atomic_int done;
	uint8_t buf[4096];
	size_t len;
};

static const uint16_t vault_may[] = {IPC_HEALTH, IPC_LISTING_LIST, IPC_FWD_CANCEL};
static const uint16_t health_only[] = {IPC_HEALTH};
static const struct ipc_peer_rule router_rules[] = {
    {ROLE_VAULT, vault_may, NELEM(vault_may)},
    {ROLE_CTL, health_only, NELEM(health_only)},
};
static const enum ipc_role vault_dials[] = {ROLE_ROUTER};

/* The server's answer to a request: fields that show which request it was. */
static void
srv_rep(const struct ipc_req *req, struct ipc_health_rep *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->role = ROLE_ROUTER;
	rep->ready = 1;
	rep->pid = (uint32_t)getpid();
	rep->requests = req->id;
	rep->links = 1u << req->from;
	snprintf(rep->detail, sizeof(rep->detail), "request %llu from %s",
	    (unsigned long long)req->id, ipc_role_name(req->from));
}

/* LISTING number i of a stream: created = i tells the client the order. */
static int
srv_listing(struct server *s, const struct ipc_req *req, int64_t i)
{
	struct ipc_listing l;

	memset(&l, 0, sizeof(l));
	snprintf(l.key_id, sizeof(l.key_id), "key_%lld", (long long)i);
	snprintf(l.seller_id, sizeof(l.seller_id), "seller_1");
	snprintf(l.provider, sizeof(l.provider), "openai");
	snprintf(l.status, sizeof(l.status), "active");
	l.price = 1000;
	l.created = i;
	return ipc_reply(s->ipc, req, IPC_LISTING, &l);
}

static void
srv_on_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	struct server *s = arg;
	struct ipc_health_rep rep;

	(void)msg;
	if (ipc_type_flags(type) & IPC_MF_INFLIGHT) {
		/* A cancel ends the request's reply stream. */
		s->inflight_type = type;
		s->inflight = *req;
		if (type == IPC_FWD_CANCEL)
			s->reply_failures += ipc_reply(s->ipc, req, IPC_ACK, NULL) != 0;
		return;
	}
	s->nrequests++;
	s->last_type = type;
	s->last_from = req->from;
	if (type == IPC_LISTING_LIST && s->stream) {
		for (int64_t i = 1; i <= 3; i++)
			s->reply_failures += srv_listing(s, req, i) != 0;
		s->reply_failures += ipc_reply(s->ipc, req, IPC_ACK, NULL) != 0;
		return;
	}
	if (s->silent || type != IPC_HEALTH) {
		if (s->nheld < NELEM(s->held))
			s->held[s->nheld++] = *req;
		return;
	}
	if (s->error) {
		s->reply_failures += ipc_reply_error(s->ipc, req, IPC_ERR_REFUSED, "not today") != 0;
		return;
	}
	srv_rep(req, &rep);
	s->reply_failures += ipc_reply(s->ipc, req, IPC_HEALTH_REP, &rep) != 0;
}

static void
cli_on_link(void *arg, enum ipc_role peer, int up)
{
	struct client *c = arg;

	c->last_peer = peer;
	if (up)
		c->ups++;
	else
		c->downs++;
}

static void
cli_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct call *c = arg;

	if ((size_t)c->calls < NELEM(c->types)) {
		c->types[c->calls] = type;
		c->created[c->calls] = type == IPC_LISTING && msg != NULL ? msg->listing.created : -1;
	}
	c->calls++;
	c->status = status;
	c->type = type;
	c->msg_null = msg == NULL;
	if (msg != NULL)
		c->msg = *msg;
}

static int
srv_start(struct fx *fx, uid_t vault_uid, uid_t ctl_uid)
{
	struct ipc_config cfg;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.loop = &fx->loop;
	cfg.self = ROLE_ROUTER;
	cfg.runtime_dir = fx->dir;
	cfg.accept = router_rules;
	cfg.naccept = NELEM(router_rules);
	cfg.role_uid[ROLE_VAULT] = vault_uid;
	cfg.role_uid[ROLE_CTL] = ctl_uid;
	cfg.on_request = srv_on_request;
	cfg.arg = &fx->srv;
	if ((fx->srv.ipc = ipc_start(&cfg, err, sizeof(err))) == NULL)
		print_error("server: %s\n", err);
	return fx->srv.ipc != NULL ? 0 : -1;
}

static int
cli_start(struct fx *fx)
{
	struct ipc_config cfg;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.loop = &fx->loop;
	cfg.self = ROLE_VAULT;
	cfg.runtime_dir = fx->dir;
	cfg.dial = vault_dials;
	cfg.ndial = NELEM(vault_dials);
	cfg.on_request = srv_on_request; /* never called: the client does not listen */
	cfg.on_link = cli_on_link;
	cfg.arg = &fx->cli;
	if ((fx->cli.ipc = ipc_start(&cfg, err, sizeof(err))) == NULL)
		print_error("client: %s\n", err);
	return fx->cli.ipc != NULL ? 0 : -1;
}

/* Stop both ends and let the loop run their close callbacks. */
static void
fx_stop_ipcs(struct fx *fx)
{
	if (fx->cli.ipc != NULL)
		ipc_stop(fx->cli.ipc);
	if (fx->srv.ipc != NULL)
		ipc_stop(fx->srv.ipc);
	fx->cli.ipc = fx->srv.ipc = NULL;
	uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static int
fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL || (fx->calls = calloc(NCALLS, sizeof(*fx->calls))) == NULL ||
	    uv_loop_init(&fx->loop) != 0)
		return -1;
	uv_timer_init(&fx->loop, &fx->ticker);
	uv_timer_start(&fx->ticker, ticker_on_tick, 5, 5);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cn2-test-ipc-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	*state = fx;
	return 0;
}

/* Both ends up and linked. */
static int
fx_setup_linked(void **state)
{
	struct fx *fx;

	if (fx_setup(state) != 0)
		return -1;
	fx = *state;
	if (srv_start(fx, getuid(), getuid()) != 0 || cli_start(fx) != 0)
		return -1;
	RUN_UNTIL(fx, fx->cli.ups == 1, DEADLINE_MS);
	return fx->cli.ups == 1 ? 0 : -1;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	char path[128];
	int rc;

	fx_stop_ipcs(fx);
	uv_close((uv_handle_t *)&fx->ticker, NULL);
	RUN_UNTIL(fx, !uv_loop_alive(&fx->loop), DEADLINE_MS);
	/* Closing fails if ipc_stop left a handle open. */
	rc = uv_loop_close(&fx->loop);
	snprintf(path, sizeof(path), "%s/%s.sock", fx->dir, ipc_role_name(ROLE_ROUTER));
	unlink(path);
	if (rmdir(fx->dir) != 0)
		rc = -1;
	free(fx->calls);
	free(fx);
	return rc == 0 ? 0 : -1;
}

/* Send a HEALTH request recorded in fx->calls[i]; its id, 0 if refused. */
static uint64_t
request(struct fx *fx, size_t i, uint32_t timeout_ms)
{
	struct call *c = &fx->calls[i];

	memset(c, 0, sizeof(*c));
	c->id = ipc_request(fx->cli.ipc, ROLE_ROUTER, IPC_HEALTH, NULL, timeout_ms, cli_on_reply, c);
	return c->id;
}

/* Did call i get exactly one HEALTH_REP, the one for its own request? */
static int
answered(const struct call *c)
{
	return c->calls == 1 && c->status == 0 && c->type == IPC_HEALTH_REP && !c->msg_null &&
	    c->msg.health_rep.requests == c->id && c->msg.health_rep.role == ROLE_ROUTER &&
	    c->msg.health_rep.links == 1u << ROLE_VAULT;
}

/* The link is up and a fresh request gets its answer. */
static int
link_works(struct fx *fx)
{
	struct call *c = &fx->calls[NCALLS - 1];
	int silent = fx->srv.silent, error = fx->srv.error;

	fx->srv.silent = fx->srv.error = 0;
	if (!ipc_link_up(fx->cli.ipc, ROLE_ROUTER) || request(fx, NCALLS - 1, 0) == 0)
		return 0;
	RUN_UNTIL(fx, c->calls > 0, DEADLINE_MS);
	fx->srv.silent = silent;
	fx->srv.error = error;
	return answered(c);
}

static void
test_link_and_request(void **state)
{
	struct fx *fx = *state;
	struct call *c = &fx->calls[0];
	char want[128];

	assert_int_equal(fx->cli.ups, 1);
	assert_int_equal(fx->cli.last_peer, ROLE_ROUTER);
	assert_true(ipc_link_up(fx->cli.ipc, ROLE_ROUTER));
	assert_false(ipc_link_up(fx->cli.ipc, ROLE_LEDGER));
	assert_int_equal(ipc_links(fx->cli.ipc), 1u << ROLE_ROUTER);
	assert_int_equal(ipc_wanted(fx->cli.ipc), 1u << ROLE_ROUTER);
	assert_int_equal(ipc_wanted(fx->srv.ipc), 0);
	assert_int_equal(ipc_links(fx->srv.ipc), 0);

	assert_int_not_equal(request(fx, 0, 1000), 0);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 1);
	RUN_UNTIL(fx, c->calls > 0, DEADLINE_MS);
	assert_true(answered(c));
	snprintf(want, sizeof(want), "request %llu from vault", (unsigned long long)c->id);
	assert_string_equal(c->msg.health_rep.detail, want);
	assert_int_equal(c->msg.health_rep.pid, getpid());
	assert_int_equal(fx->srv.nrequests, 1);
	assert_int_equal(fx->srv.last_type, IPC_HEALTH);
	assert_int_equal(fx->srv.last_from, ROLE_VAULT);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);

	/* A final reply ends the request: nothing more arrives for it. */
	RUN_UNTIL(fx, 0, 100);
	assert_int_equal(c->calls, 1);

	/* An error reply is a reply: status 0, type IPC_ERROR. */
	fx->srv.error = 1;
	assert_int_not_equal(request(fx, 1, 1000), 0);
	RUN_UNTIL(fx, fx->calls[1].calls > 0, DEADLINE_MS);
	assert_int_equal(fx->calls[1].calls, 1);
	assert_int_equal(fx->calls[1].status, 0);
	assert_int_equal(fx->calls[1].type, IPC_ERROR);
	assert_int_equal(fx->calls[1].msg.error.code, IPC_ERR_REFUSED);
	assert_string_equal(fx->calls[1].msg.error.detail, "not today");
	assert_int_equal(fx->srv.reply_failures, 0);
	assert_int_equal(fx->cli.downs, 0);
}

/* Replies the server must refuse: request and in-flight types, unknown connections. */
static void
test_reply_refused(void **state)
{
	struct fx *fx = *state;
	struct ipc_req gone = {999999, 1, ROLE_VAULT};
	struct ipc_fwd_ack ack = {1};
	struct ipc_req req;

	fx->srv.silent = 1;
	assert_int_not_equal(request(fx, 0, 0), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 1, DEADLINE_MS);
	assert_int_equal(fx->srv.nheld, 1);
	req = fx->srv.held[0];
	assert_int_equal(ipc_reply(fx->srv.ipc, &req, IPC_HEALTH, NULL), -1);
	assert_int_equal(ipc_reply(fx->srv.ipc, &req, IPC_FWD_ACK, &ack), -1);
	assert_int_equal(ipc_reply(fx->srv.ipc, &req, 0xffff, NULL), -1);
	assert_int_equal(ipc_reply(fx->srv.ipc, &gone, IPC_ACK, NULL), -1);
	assert_int_equal(ipc_reply_error(fx->srv.ipc, &gone, IPC_ERR_INTERNAL, "x"), -1);
	/* An error code out of bounds is refused too, and nothing is sent. */
	assert_int_equal(ipc_reply_error(fx->srv.ipc, &req, 0, "x"), -1);
	assert_int_equal(ipc_reply_error(fx->srv.ipc, &req, IPC_ERR_UNAVAILABLE, "later"), 0);
	RUN_UNTIL(fx, fx->calls[0].calls > 0, DEADLINE_MS);
	assert_int_equal(fx->calls[0].calls, 1);
	assert_int_equal(fx->calls[0].type, IPC_ERROR);
	assert_int_equal(fx->calls[0].msg.error.code, IPC_ERR_UNAVAILABLE);
	assert_string_equal(fx->calls[0].msg.error.detail, "later");
	assert_int_equal(fx->cli.downs, 0);
}

/* Requests the client must refuse without sending anything. */
static void
test_request_refused(void **state)
{
	struct fx *fx = *state;
	struct ipc_hello h = {IPC_VERSION, ROLE_VAULT, 1};
	size_t before = fx->srv.nrequests;

	assert_int_equal(ipc_request(fx->cli.ipc, ROLE_LEDGER, IPC_HEALTH, NULL, 0, cli_on_reply,
			     &fx->calls[0]),
	    0);
	assert_int_equal(ipc_request(fx->cli.ipc, ROLE_MAX, IPC_HEALTH, NULL, 0, cli_on_reply,
			     &fx->calls[0]),
	    0);
	assert_int_equal(ipc_request(fx->cli.ipc, ROLE_ROUTER, IPC_HEALTH_REP, NULL, 0,
			     cli_on_reply, &fx->calls[0]),
	    0);
	assert_int_equal(ipc_request(fx->cli.ipc, ROLE_ROUTER, IPC_HELLO, &h, 0, cli_on_reply,
			     &fx->calls[0]),
	    0);
	assert_int_equal(ipc_request(fx->cli.ipc, ROLE_ROUTER, 0xffff, NULL, 0, cli_on_reply,
			     &fx->calls[0]),
	    0);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	/* No open request to send an in-flight message about. */
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, 12345, IPC_HEALTH, NULL), -1);
	RUN_UNTIL(fx, 0, 100);
	assert_int_equal(fx->calls[0].calls, 0);
	assert_int_equal(fx->srv.nrequests, before);
	assert_true(link_works(fx));
}

static void
test_many_requests(void **state)
{
	struct fx *fx = *state;
	size_t done = 0;

	for (size_t i = 0; i < NCALLS; i++) {
		assert_int_not_equal(request(fx, i, 5000), 0);
		if (i > 0)
			assert_true(fx->calls[i].id > fx->calls[i - 1].id);
	}
	assert_int_equal(ipc_open_requests(fx->cli.ipc), NCALLS);
	for (uint64_t until = now_ms() + 5000; done < NCALLS && now_ms() < until;) {
		uv_run(&fx->loop, UV_RUN_ONCE);
		done = 0;
		for (size_t i = 0; i < NCALLS; i++)
			done += fx->calls[i].calls > 0;
	}
	assert_int_equal(done, NCALLS);
	/* Let any duplicate reply arrive before counting calls. */
	RUN_UNTIL(fx, 0, 50);
	for (size_t i = 0; i < NCALLS; i++)
		if (!answered(&fx->calls[i]))
			fail_msg("request %zu (id %llu): %d calls, status %d, echoed %llu", i,
			    (unsigned long long)fx->calls[i].id, fx->calls[i].calls,
			    fx->calls[i].status,
			    (unsigned long long)fx->calls[i].msg.health_rep.requests);
	assert_int_equal(fx->srv.nrequests, NCALLS);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	assert_int_equal(fx->srv.reply_failures, 0);
}

static void
test_forget(void **state)
{
	struct fx *fx = *state;
	struct ipc_health_rep rep;
	uint64_t id;

	fx->srv.silent = 1;
	assert_int_not_equal(id = request(fx, 0, 0), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 1, DEADLINE_MS);
	assert_int_equal(fx->srv.nheld, 1);
	assert_int_equal(fx->srv.held[0].id, id);
	ipc_forget(fx->cli.ipc, id);
	ipc_forget(fx->cli.ipc, id + 1000); /* unknown: nothing happens */
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id, IPC_HEALTH, NULL), -1);

	srv_rep(&fx->srv.held[0], &rep);
	assert_int_equal(ipc_reply(fx->srv.ipc, &fx->srv.held[0], IPC_HEALTH_REP, &rep), 0);
	/* Replies arrive in order: once this one is answered, the first was seen. */
	assert_true(link_works(fx));
	assert_int_equal(fx->calls[0].calls, 0);
	assert_int_equal(fx->cli.downs, 0);
}

static void
test_timeout(void **state)
{
	struct fx *fx = *state;
	struct call *c = &fx->calls[0];
	struct ipc_health_rep rep;
	uint64_t t0 = now_ms(), took;

	fx->srv.silent = 1;
	assert_int_not_equal(request(fx, 0, 200), 0);
	/* timeout 0: never times out. */
	assert_int_not_equal(request(fx, 1, 0), 0);
	RUN_UNTIL(fx, c->calls > 0, DEADLINE_MS);
	took = now_ms() - t0;
	assert_int_equal(c->calls, 1);
	assert_int_equal(c->status, IPC_ERR_TIMEOUT);
	assert_int_equal(c->type, 0);
	assert_true(c->msg_null);
	/* The loop's cached clock may lag ours by a few milliseconds. */
	assert_true(took >= 190 && took < 1500);
	RUN_UNTIL(fx, 0, 400);
	assert_int_equal(c->calls, 1);
	assert_int_equal(fx->calls[1].calls, 0);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 1);
	ipc_forget(fx->cli.ipc, fx->calls[1].id);

	/* The late replies are dropped and the link stays up. */
	assert_int_equal(fx->srv.nheld, 2);
	for (size_t i = 0; i < 2; i++) {
		srv_rep(&fx->srv.held[i], &rep);
		assert_int_equal(ipc_reply(fx->srv.ipc, &fx->srv.held[i], IPC_HEALTH_REP, &rep), 0);
	}
	assert_true(link_works(fx));
	assert_int_equal(c->calls, 1);
	assert_int_equal(fx->calls[1].calls, 0);
	assert_int_equal(fx->cli.downs, 0);
}

static void
test_server_restart(void **state)
{
	struct fx *fx = *state;
	size_t closed = 0;

	fx->srv.silent = 1;
	for (size_t i = 0; i < 3; i++)
		assert_int_not_equal(request(fx, i, 0), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 3, DEADLINE_MS);
	assert_int_equal(fx->srv.nheld, 3);
	ipc_stop(fx->srv.ipc);
	fx->srv.ipc = NULL;
	RUN_UNTIL(fx, fx->cli.downs == 1 && fx->calls[0].calls + fx->calls[1].calls +
	    fx->calls[2].calls == 3, DEADLINE_MS);
	for (size_t i = 0; i < 3; i++)
		closed += fx->calls[i].calls == 1 && fx->calls[i].status == IPC_ERR_CLOSED &&
		    fx->calls[i].type == 0 && fx->calls[i].msg_null;
	assert_int_equal(closed, 3);
	assert_int_equal(fx->cli.downs, 1);
	assert_int_equal(fx->cli.last_peer, ROLE_ROUTER);
	assert_false(ipc_link_up(fx->cli.ipc, ROLE_ROUTER));
	assert_int_equal(ipc_links(fx->cli.ipc), 0);
	assert_int_equal(ipc_wanted(fx->cli.ipc), 1u << ROLE_ROUTER);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	assert_int_equal(request(fx, 3, 0), 0);

	/* Leave the client a few failed dials before the successor starts. */
	RUN_UNTIL(fx, 0, 300);
	memset(&fx->srv, 0, sizeof(fx->srv));
	assert_int_equal(srv_start(fx, getuid(), getuid()), 0);
	RUN_UNTIL(fx, fx->cli.ups == 2, DEADLINE_MS);
	assert_int_equal(fx->cli.ups, 2);
	assert_true(link_works(fx));
	assert_int_equal(fx->srv.nrequests, 1);
}

/* LISTING_LIST for fx->calls[i]; its id, 0 if refused. */
static uint64_t
request_list(struct fx *fx, size_t i, uint32_t timeout_ms)
{
	struct ipc_listing_list ll = {"seller_1"};
	struct call *c = &fx->calls[i];

	memset(c, 0, sizeof(*c));
	c->id = ipc_request(fx->cli.ipc, ROLE_ROUTER, IPC_LISTING_LIST, &ll, timeout_ms,
	    cli_on_reply, c);
	return c->id;
}

/* Non-final replies reach the callback one by one, in order, until the final one. */
static void
test_stream(void **state)
{
	struct fx *fx = *state;
	struct call *c = &fx->calls[0];

	fx->srv.stream = 1;
	assert_int_not_equal(request_list(fx, 0, 1000), 0);
	RUN_UNTIL(fx, c->calls >= 4, DEADLINE_MS);
	RUN_UNTIL(fx, 0, 50);
	assert_int_equal(c->calls, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c->types[i], IPC_LISTING);
		assert_int_equal(c->created[i], i + 1);
	}
	assert_int_equal(c->types[3], IPC_ACK);
	assert_int_equal(c->status, 0);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	assert_int_equal(fx->srv.last_type, IPC_LISTING_LIST);
	assert_int_equal(fx->srv.reply_failures, 0);
}

/* The timeout restarts at each reply: a slow stream lives; a stalled one dies. */
static void
test_stream_timeout(void **state)
{
	struct fx *fx = *state;
	struct call *c = &fx->calls[0], *d = &fx->calls[1];
	uint64_t t0;

	assert_int_not_equal(request_list(fx, 0, 300), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 1, DEADLINE_MS);
	assert_int_equal(fx->srv.nheld, 1);
	for (int i = 1; i <= 4; i++) {
		RUN_UNTIL(fx, 0, 150);
		assert_int_equal(srv_listing(&fx->srv, &fx->srv.held[0], i), 0);
	}
	RUN_UNTIL(fx, c->calls >= 4, DEADLINE_MS);
	assert_int_equal(ipc_reply(fx->srv.ipc, &fx->srv.held[0], IPC_ACK, NULL), 0);
	RUN_UNTIL(fx, c->calls >= 5, DEADLINE_MS);
	assert_int_equal(c->calls, 5);
	assert_int_equal(c->status, 0);
	assert_int_equal(c->types[4], IPC_ACK);
	assert_int_equal(c->created[3], 4);

	assert_int_not_equal(request_list(fx, 1, 300), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 2, DEADLINE_MS);
	assert_int_equal(srv_listing(&fx->srv, &fx->srv.held[1], 1), 0);
	RUN_UNTIL(fx, d->calls >= 1, DEADLINE_MS);
	t0 = now_ms();
	RUN_UNTIL(fx, d->calls >= 2, DEADLINE_MS);
	assert_int_equal(d->calls, 2);
	assert_int_equal(d->types[0], IPC_LISTING);
	assert_int_equal(d->status, IPC_ERR_TIMEOUT);
	assert_true(d->msg_null);
	assert_true(now_ms() - t0 >= 150);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	assert_true(link_works(fx));
}

static void
test_inflight(void **state)
{
	struct fx *fx = *state;
	struct call *c = &fx->calls[0];
	struct ipc_fwd_ack ack = {10};
	uint64_t id;

	assert_int_not_equal(id = request_list(fx, 0, 0), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 1, DEADLINE_MS);
	/* Only in-flight types, only about open requests. */
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id, IPC_HEALTH, NULL), -1);
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id, IPC_ACK, NULL), -1);
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id + 100, IPC_FWD_CANCEL, NULL), -1);
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id, IPC_FWD_ACK, &(struct ipc_fwd_ack){0}),
	    -1);
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id, IPC_FWD_CANCEL, NULL), 0);
	RUN_UNTIL(fx, c->calls > 0, DEADLINE_MS);
	assert_int_equal(fx->srv.inflight_type, IPC_FWD_CANCEL);
	assert_int_equal(fx->srv.inflight.id, id);
	assert_int_equal(fx->srv.inflight.conn, fx->srv.held[0].conn);
	assert_int_equal(fx->srv.inflight.from, ROLE_VAULT);
	assert_int_equal(c->calls, 1);
	assert_int_equal(c->type, IPC_ACK);
	assert_int_equal(ipc_open_requests(fx->cli.ipc), 0);
	assert_int_equal(fx->srv.nrequests, 1);

	/* FWD_ACK is not in vault's rule here: the server cuts the connection. */
	assert_int_not_equal(id = request_list(fx, 1, 0), 0);
	assert_int_equal(ipc_send_inflight(fx->cli.ipc, id, IPC_FWD_ACK, &ack), 0);
	RUN_UNTIL(fx, fx->cli.downs == 1 && fx->calls[1].calls > 0, DEADLINE_MS);
	assert_int_equal(fx->cli.downs, 1);
	assert_int_equal(fx->calls[1].calls, 1);
	assert_int_equal(fx->calls[1].status, IPC_ERR_CLOSED);
	/* The dialler comes back by itself. */
	RUN_UNTIL(fx, fx->cli.ups == 2, DEADLINE_MS);
	assert_int_equal(fx->cli.ups, 2);
	assert_true(link_works(fx));
}

/* Raw client plumbing: each step runs the loop so the server can act. */

static void
raw_on_done(void *arg)
{
	struct raw *r = arg;

	atomic_store(&r->done, 1);
}

/* Wait for the aio the caller just started; NNG_ETIMEDOUT if it did not finish. */
static int
raw_wait(struct fx *fx, struct raw *r)
{
	RUN_UNTIL(fx, atomic_load(&r->done), DEADLINE_MS);
	if (!atomic_load(&r->done)) {
		nng_aio_cancel(r->aio);
		nng_aio_wait(r->aio);
		return NNG_ETIMEDOUT;
	}
	return nng_aio_result(r->aio);
}

static void
raw_close(struct raw *r)
{
	if (r->st != NULL) {
		nng_stream_close(r->st);
		nng_stream_free(r->st);
	}
	if (r->d != NULL) {
		nng_stream_dialer_close(r->d);
		nng_stream_dialer_free(r->d);
	}
	nng_aio_free(r->aio);
	memset(r, 0, sizeof(*r));
}

static int
raw_open(struct fx *fx, struct raw *r)
{
	char url[160];

	memset(r, 0, sizeof(*r));
	if (nng_aio_alloc(&r->aio, raw_on_done, r) != 0 ||
	    ipc_path(fx->dir, ROLE_ROUTER, url, sizeof(url)) != 0 ||
	    nng_stream_dialer_alloc(&r->d, url) != 0)
		return -1;
	atomic_store(&r->done, 0);
	nng_stream_dialer_dial(r->d, r->aio);
	if (raw_wait(fx, r) != 0)
		return -1;
	r->st = nng_aio_get_output(r->aio, 0);
	return 0;
}

static int
raw_send(struct fx *fx, struct raw *r, const uint8_t *p, size_t n)
{
	nng_iov iov;
	int rv;

	while (n > 0) {
		iov.iov_buf = (void *)(uintptr_t)p;
		iov.iov_len = n;
		if ((rv = nng_aio_set_iov(r->aio, 1, &iov)) != 0)
			return rv;
		atomic_store(&r->done, 0);
		nng_stream_send(r->st, r->aio);
		if ((rv = raw_wait(fx, r)) != 0)
			return rv;
		p += nng_aio_count(r->aio);
		n -= nng_aio_count(r->aio);
	}
	return 0;
}

/* Receive more bytes into r->buf: 0, NNG_ETIMEDOUT, or another error (closed). */
static int
raw_recv(struct fx *fx, struct raw *r)
{
	nng_iov iov;
	int rv;

	if (r->len == sizeof(r->buf))
		return NNG_ENOSPC;
	iov.iov_buf = r->buf + r->len;
	iov.iov_len = sizeof(r->buf) - r->len;
	if ((rv = nng_aio_set_iov(r->aio, 1, &iov)) != 0)
		return rv;
	atomic_store(&r->done, 0);
	nng_stream_recv(r->st, r->aio);
	if ((rv = raw_wait(fx, r)) != 0)
		return rv;
	if (nng_aio_count(r->aio) == 0)
		return NNG_ECONNSHUT;
	r->len += nng_aio_count(r->aio);
	return 0;
}

/* Read one whole frame and decode it; it is then removed from r->buf. */
static int
raw_read_frame(struct fx *fx, struct raw *r, struct ipc_hdr *h, union ipc_any *m)
{
	const char *why;
	size_t n;

	for (;;) {
		if (r->len >= IPC_HDR_LEN) {
			if (ipc_hdr_read(r->buf, h) != 0)
				return -1;
			if (r->len >= h->len)
				break;
		}
		if (raw_recv(fx, r) != 0)
			return -1;
	}
	n = h->len;
	if (ipc_decode(r->buf, n, h, m, &why) != 0)
		return -1;
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
	return 0;
}

/* Does the server close the connection, sending nothing more first? */
static int
raw_closed_silently(struct fx *fx, struct raw *r)
{
	int rv;

	while ((rv = raw_recv(fx, r)) == 0)
		;
	if (rv == NNG_ETIMEDOUT)
		print_error("the server kept the connection open\n");
	else if (r->len != 0)
		print_error("the server sent %zu bytes before closing\n", r->len);
	return rv != NNG_ETIMEDOUT && r->len == 0;
}

static size_t
frame(uint16_t type, uint64_t id, const void *msg, uint8_t *buf, size_t cap)
{
	size_t n = ipc_encode(type, id, msg, buf, cap);

	assert_int_not_equal(n, 0);
	return n;
}

static size_t
hello_as(enum ipc_role role, uint32_t version, uint8_t *buf, size_t cap)
{
	struct ipc_hello h = {version, (uint8_t)role, (uint32_t)getpid()};

	return frame(IPC_HELLO, 0, &h, buf, cap);
}

/* A HELLO as ROLE_CTL and the server's HELLO back: 0 when both went right. */
static int
raw_handshake(struct fx *fx, struct raw *r)
{
	uint8_t buf[64];
	union ipc_any m;
	struct ipc_hdr h;

	if (raw_send(fx, r, buf, hello_as(ROLE_CTL, IPC_VERSION, buf, sizeof(buf))) != 0 ||
	    raw_read_frame(fx, r, &h, &m) != 0)
		return -1;
	return h.type == IPC_HELLO && h.id == 0 && m.hello.version == IPC_VERSION &&
		   m.hello.role == ROLE_ROUTER && m.hello.pid == (uint32_t)getpid()
	    ? 0
	    : -1;
}

static size_t
raw_header(uint32_t len, uint16_t type, uint16_t flags, uint8_t *buf, size_t cap)
{
	assert_true(cap >= IPC_HDR_LEN);
	memset(buf, 0, IPC_HDR_LEN);
	for (int i = 0; i < 4; i++)
		buf[i] = (uint8_t)(len >> (8 * i));
	buf[4] = (uint8_t)type;
	buf[5] = (uint8_t)(type >> 8);
	buf[6] = (uint8_t)flags;
	buf[7] = (uint8_t)(flags >> 8);
	buf[8] = 1;
	return IPC_HDR_LEN;
}

/* The offending bytes of each raw case. */

static size_t
bad_http(uint8_t *buf, size_t cap)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: router\r\n\r\n";

	assert_true(cap >= sizeof(req) - 1);
	memcpy(buf, req, sizeof(req) - 1);
	return sizeof(req) - 1;
}

static size_t
bad_zeros(uint8_t *buf, size_t cap)
{
	assert_true(cap >= 32);
	memset(buf, 0, 32);
	return 32;
}

static size_t
bad_unknown_type(uint8_t *buf, size_t cap)
{
	return raw_header(IPC_HDR_LEN, 99, 0, buf, cap);
}

static size_t
bad_role_not_allowed(uint8_t *buf, size_t cap)
{
	return hello_as(ROLE_EDGE, IPC_VERSION, buf, cap);
}

static size_t
bad_version(uint8_t *buf, size_t cap)
{
	return hello_as(ROLE_CTL, IPC_VERSION + 1, buf, cap);
}

static size_t
bad_type_for_role(uint8_t *buf, size_t cap)
{
	struct ipc_health_rep rep = {ROLE_CTL, 1, 1, 0, 0, 0, 0, 0, "unsolicited"};

	return frame(IPC_HEALTH_REP, 1, &rep, buf, cap);
}

static size_t
bad_error_from_ctl(uint8_t *buf, size_t cap)
{
	struct ipc_error e = {IPC_ERR_INTERNAL, "unsolicited"};

	return frame(IPC_ERROR, 1, &e, buf, cap);
}

static size_t
bad_4gib(uint8_t *buf, size_t cap)
{
	return raw_header(UINT32_MAX, IPC_HEALTH, 0, buf, cap);
}

static size_t
bad_too_long(uint8_t *buf, size_t cap)
{
	return raw_header(IPC_MAX_FRAME + 1, IPC_HEALTH, 0, buf, cap);
}

static size_t
bad_not_hello_first(uint8_t *buf, size_t cap)
{
	return frame(IPC_HEALTH, 1, NULL, buf, cap);
}

/*
 * A HEALTH_REP whose decoded fields, read through the union as a HELLO,
 * would say version 1, role ctl: only the first-frame check refuses it.
 */
static size_t
bad_rep_like_hello(uint8_t *buf, size_t cap)
{
	struct ipc_health_rep rep = {ROLE_EDGE, 0, ROLE_CTL, 1234, 0, 0, 0, 0, ""};

	return frame(IPC_HEALTH_REP, 1, &rep, buf, cap);
}

static size_t
bad_hello_twice(uint8_t *buf, size_t cap)
{
	return hello_as(ROLE_CTL, IPC_VERSION, buf, cap);
}

static size_t
bad_flags(uint8_t *buf, size_t cap)
{
	return raw_header(IPC_HDR_LEN, IPC_HEALTH, 1, buf, cap);
}

static size_t
bad_hello_role_zero(uint8_t *buf, size_t cap)
{
	size_t n = hello_as(ROLE_CTL, IPC_VERSION, buf, cap);

	buf[IPC_HDR_LEN + 4] = ROLE_NONE; /* the role byte follows the u32 version */
	return n;
}

static const struct raw_case {
	const char *name;
	int handshake; /* complete a HELLO exchange as ROLE_CTL first */
	size_t (*bad)(uint8_t *buf, size_t cap);
} raw_cases[] = {
    {"garbage: an HTTP request", 0, bad_http},
    {"garbage: zero bytes", 0, bad_zeros},
    {"unknown type after HELLO", 1, bad_unknown_type},
    {"HELLO from a role not in the peer rules", 0, bad_role_not_allowed},
    {"HELLO with another IPC_VERSION", 0, bad_version},
    {"HELLO with role 0", 0, bad_hello_role_zero},
    {"HEALTH_REP from ctl, which may only send HEALTH", 1, bad_type_for_role},
    {"ERROR from ctl, which may only send HEALTH", 1, bad_error_from_ctl},
    {"header claiming 4 GiB", 0, bad_4gib},
    {"header claiming 4 GiB after HELLO", 1, bad_4gib},
    {"header one past IPC_MAX_FRAME", 1, bad_too_long},
    {"first frame not HELLO", 0, bad_not_hello_first},
    {"first frame a HEALTH_REP shaped like a HELLO", 0, bad_rep_like_hello},
    {"HELLO twice", 1, bad_hello_twice},
    {"flags set after HELLO", 1, bad_flags},
};

static void
test_raw_clients(void **state)
{
	struct fx *fx = *state;
	uint8_t buf[256];
	struct raw r;
	int bad = 0;

	for (size_t i = 0; i < NELEM(raw_cases); i++) {
		const struct raw_case *rc = &raw_cases[i];
		int ok;

		assert_int_equal(raw_open(fx, &r), 0);
		ok = !rc->handshake || raw_handshake(fx, &r) == 0;
		if (!ok)
			print_error("%s: handshake failed\n", rc->name);
		/* The server may close before all is sent: only the close matters. */
		(void)raw_send(fx, &r, buf, rc->bad(buf, sizeof(buf)));
		ok = ok && raw_closed_silently(fx, &r);
		raw_close(&r);
		if (!ok || !link_works(fx) || fx->cli.downs != 0) {
			print_error("%s: not closed, or the real client suffered\n", rc->name);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The control for the raw cases: a well-behaved raw ctl client is served. */
static void
test_raw_ctl_served(void **state)
{
	struct fx *fx = *state;
	uint8_t buf[64];
	union ipc_any m;
	struct ipc_hdr h;
	struct raw r;

	assert_int_equal(raw_open(fx, &r), 0);
	assert_int_equal(raw_handshake(fx, &r), 0);
	assert_int_equal(raw_send(fx, &r, buf, frame(IPC_HEALTH, 77, NULL, buf, sizeof(buf))), 0);
	assert_int_equal(raw_read_frame(fx, &r, &h, &m), 0);
	assert_int_equal(h.type, IPC_HEALTH_REP);
	assert_int_equal(h.id, 77);
	assert_int_equal(m.health_rep.requests, 77);
	assert_int_equal(m.health_rep.links, 1u << ROLE_CTL);
	assert_int_equal(fx->srv.last_from, ROLE_CTL);
	raw_close(&r);
	assert_true(link_works(fx));
}

static void
test_uid_refused(void **state)
{
	static const struct {
		const char *name;
		uid_t vault_delta, ctl_delta; /* added to our uid in the server's table */
	} rows[] = {
	    {"vault's uid differs, ctl's is ours", 1, 0},
	    {"no role has our uid", 1, 1},
	};
	struct fx *fx = *state;
	struct raw r;

	for (size_t i = 0; i < NELEM(rows); i++) {
		memset(&fx->srv, 0, sizeof(fx->srv));
		memset(&fx->cli, 0, sizeof(fx->cli));
		assert_int_equal(srv_start(fx, getuid() + rows[i].vault_delta,
				     getuid() + rows[i].ctl_delta),
		    0);
		assert_int_equal(cli_start(fx), 0);
		RUN_UNTIL(fx, fx->cli.ups > 0, 500);
		if (fx->cli.ups != 0 || ipc_link_up(fx->cli.ipc, ROLE_ROUTER))
			fail_msg("%s: the vault client linked", rows[i].name);
		assert_int_equal(request(fx, 0, 0), 0);
		/* The server is listening: ctl gets through exactly when its uid is ours. */
		assert_int_equal(raw_open(fx, &r), 0);
		if ((raw_handshake(fx, &r) == 0) != (rows[i].ctl_delta == 0))
			fail_msg("%s: ctl handshake went the wrong way", rows[i].name);
		raw_close(&r);
		fx_stop_ipcs(fx);
	}
}

static void
test_queued(void **state)
{
	struct fx *fx = *state;
	struct ipc_req unknown = {999999, 1, ROLE_VAULT};
	struct ipc_health_rep rep;
	size_t flen, q;

	assert_int_equal(ipc_queued(fx->srv.ipc, &unknown), 0);
	fx->srv.silent = 1;
	assert_int_not_equal(request(fx, 0, 0), 0);
	RUN_UNTIL(fx, fx->srv.nheld == 1, DEADLINE_MS);
	assert_int_equal(fx->srv.nheld, 1);
	assert_int_equal(ipc_queued(fx->srv.ipc, &fx->srv.held[0]), 0);

	/*
	 * Without the loop running, no send completion is handled: the first
	 * reply is in flight and the rest wait in the queue.
	 */
	srv_rep(&fx->srv.held[0], &rep);
	flen = ipc_frame_len(IPC_HEALTH_REP, &rep);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ipc_reply(fx->srv.ipc, &fx->srv.held[0], IPC_HEALTH_REP, &rep), 0);
	q = ipc_queued(fx->srv.ipc, &fx->srv.held[0]);
	assert_true(q >= 99 * flen && q <= 100 * flen);
	RUN_UNTIL(fx, ipc_queued(fx->srv.ipc, &fx->srv.held[0]) == 0, DEADLINE_MS);
	assert_int_equal(ipc_queued(fx->srv.ipc, &fx->srv.held[0]), 0);
	/* The first reply ends the request; the 99 others are dropped quietly. */
	assert_true(link_works(fx));
	assert_true(answered(&fx->calls[0]));
	assert_int_equal(fx->cli.downs, 0);
}

static void
test_ipc_path(void **state)
{
	char buf[256], longdir[200];

	(void)state;
	assert_int_equal(ipc_path("/run/cn2", ROLE_VAULT, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ipc:///run/cn2/vault.sock");
	/* Too small a buffer, and a socket path past sun_path's 107 bytes. */
	assert_int_equal(ipc_path("/run/cn2", ROLE_VAULT, buf, 10), -1);
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	longdir[107 - strlen("/vault.sock")] = '\0';
	assert_int_equal(ipc_path(longdir, ROLE_VAULT, buf, sizeof(buf)), 0);
	longdir[107 - strlen("/vault.sock")] = 'd';
	longdir[108 - strlen("/vault.sock")] = '\0';
	assert_int_equal(ipc_path(longdir, ROLE_VAULT, buf, sizeof(buf)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipc_path),
	    cmocka_unit_test_setup_teardown(test_link_and_request, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_request_refused, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reply_refused, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_many_requests, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_forget, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_server_restart, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_timeout, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_inflight, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_raw_ctl_served, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_raw_clients, fx_setup_linked, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_uid_refused, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_queued, fx_setup_linked, fx_teardown),
	};

	/* A peer closing mid-send must show up as an error, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
