/*
 * test_grants.c — cn2-router alone, driven over IPC as platform-api, the
 * edge and the vault, with grants that live 5 seconds (grant_ttl_s = 5):
 * what a grant reserved on its key's limits comes back when the grant
 * expires without an OUTCOME; a grant still held when the router stops is
 * returned after it starts again, once, and not again after another
 * restart; an OUTCOME that comes after its grant expired (a call that
 * outlived its grant) charges the reservation again, and a repeated OUTCOME
 * changes nothing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/capab.h"
#include "tests/scenario/harness.h"

#define T_MS 5000
#define TTL_S 5

static struct h_env env;
static struct h_ipc as_platform, as_edge, as_vault;
static uint8_t ticket_key[128];
static size_t ticket_keylen;
static int npay; /* payment ids are fresh for every ticket */

static int
links_open(void)
{
	static const enum ipc_role router[] = {ROLE_ROUTER};

	if (h_ipc_open(&env, &as_platform, ROLE_PLATFORM, router, 1) != 0 ||
	    h_ipc_open(&env, &as_edge, ROLE_EDGE, router, 1) != 0 ||
	    h_ipc_open(&env, &as_vault, ROLE_VAULT, router, 1) != 0)
		return -1;
	/* Linked before use, so none is closed half-way through its handshake. */
	if (h_ipc_wait_link(&as_platform, ROLE_ROUTER, T_MS) != 0 ||
	    h_ipc_wait_link(&as_edge, ROLE_ROUTER, T_MS) != 0 ||
	    h_ipc_wait_link(&as_vault, ROLE_ROUTER, T_MS) != 0)
		return -1;
	return 0;
}

static void
links_close(void)
{
	h_ipc_close(&as_platform);
	h_ipc_close(&as_edge);
	h_ipc_close(&as_vault);
}

static int
group_setup(void **state)
{
	char *s;

	(void)state;
	if (h_init(&env, NULL) != 0 || h_conf_append(&env, "router", "grant_ttl_s = 5\n") != 0 ||
	    h_start(&env, "router") != 0 || links_open() != 0)
		return -1;
	if ((s = h_read(&env, "secrets/ticket.key", &ticket_keylen)) == NULL)
		return -1;
	if (ticket_keylen > 0 && s[ticket_keylen - 1] == '\n')
		ticket_keylen--;
	if (ticket_keylen < 32 || ticket_keylen > sizeof(ticket_key)) {
		free(s);
		return -1;
	}
	memcpy(ticket_key, s, ticket_keylen);
	free(s);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	links_close();
	return h_down(&env);
}

/* Stop the router (SIGTERM: what is queued is committed). */
static void
router_stop(void)
{
	links_close();
	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
}

static void
router_start(void)
{
	assert_int_equal(h_start(&env, "router"), 0);
	assert_int_equal(links_open(), 0);
}

/* Send one request and expect one reply; its type, the reply in *r (caller frees). */
static uint16_t
call1(struct h_ipc *h, uint16_t type, const void *msg, struct h_reply *r)
{
	assert_int_equal(h_ipc_call(h, ROLE_ROUTER, type, msg, r, 1, T_MS), 1);
	assert_int_equal(r->status, 0);
	return r->type;
}

/* A listing of provider with limits rpm and a daily budget (µUSD, 0: none) at price 100. */
static void
put(const char *key, const char *provider, uint32_t rpm, int64_t budget)
{
	struct ipc_listing l;
	struct h_reply r;

	memset(&l, 0, sizeof(l));
	snprintf(l.key_id, sizeof(l.key_id), "%s", key);
	snprintf(l.seller_id, sizeof(l.seller_id), "seller-g");
	snprintf(l.provider, sizeof(l.provider), "%s", provider);
	l.price = 100;
	snprintf(l.status, sizeof(l.status), "active");
	l.rpm = rpm;
	l.daily_budget = budget;
	assert_int_equal(call1(&as_platform, IPC_LISTING_PUT, &l, &r), IPC_ACK);
	h_replies_free(&r, 1);
}

/*
 * ASSIGN with a fresh ticket for provider's route, paying 110 (price and
 * fee): 1 with the grant in *g, or 0 for a 503 (no key can serve).
 */
static int
assign(const char *provider, struct ipc_grant *g)
{
	uint8_t mac[IPC_MAC_LEN];
	struct ipc_assign a;
	struct h_reply r;
	int ok;

	memset(&a, 0, sizeof(a));
	snprintf(a.ticket.payment_id, sizeof(a.ticket.payment_id), "pay-g%d", ++npay);
	snprintf(a.ticket.pay_method, sizeof(a.ticket.pay_method), "test");
	a.ticket.amount = 110;
	snprintf(a.ticket.route.provider, sizeof(a.ticket.route.provider), "%s", provider);
	snprintf(a.ticket.route.method, sizeof(a.ticket.route.method), "POST");
	snprintf(a.ticket.route.path, sizeof(a.ticket.route.path), "/v1/echo");
	a.ticket.expires = (int64_t)time(NULL) + 60;
	assert_int_equal(capab_ticket_mac(ticket_key, ticket_keylen, &a.ticket, mac), 0);
	a.ticket.mac.p = mac;
	a.ticket.mac.len = IPC_MAC_LEN;
	if (call1(&as_edge, IPC_ASSIGN, &a, &r) == IPC_GRANT) {
		*g = r.msg.grant;
		g->mac.p = g->award_mac.p = NULL;
		assert_true(g->expires <= (int64_t)time(NULL) + TTL_S);
		ok = 1;
	} else {
		assert_int_equal(r.type, IPC_PROBLEM);
		assert_int_equal(r.msg.problem.status, 503);
		ok = 0;
	}
	h_replies_free(&r, 1);
	return ok;
}

/* The vault's OUTCOME of a grant. */
static void
outcome(const struct ipc_grant *g, uint16_t status, uint8_t failure)
{
	struct ipc_outcome o;
	struct h_reply r;

	memset(&o, 0, sizeof(o));
	snprintf(o.key_id, sizeof(o.key_id), "%s", g->key_id);
	snprintf(o.grant_id, sizeof(o.grant_id), "%s", g->grant_id);
	o.route = g->route;
	o.status = status;
	o.failure = failure;
	assert_int_equal(call1(&as_vault, IPC_OUTCOME, &o, &r), IPC_ACK);
	h_replies_free(&r, 1);
}

/* assignments.held of a grant: 1 held, 2 returned at expiry, 0 settled. */
static long long
held(const struct ipc_grant *g)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT held FROM assignments WHERE grant_id = '%s'",
	    g->grant_id);
	return h_db_int(&env, "router", sql);
}

/* Wait (at most ms) until a grant's row says it was returned. */
static void
wait_returned(const struct ipc_grant *g, int ms)
{
	int64_t end = h_now_ms() + ms;

	while (held(g) != 2 && h_now_ms() < end)
		usleep(100000);
	assert_int_equal(held(g), 2);
}

/* rpm 1: a grant never used holds the one token until it expires, then gives it back. */
static void
test_unused_grant_returns(void **state)
{
	struct ipc_grant a, b;

	(void)state;
	put("k_once", "once", 1, 0);
	assert_int_equal(assign("once", &a), 1);
	assert_int_equal(held(&a), 1);
	assert_int_equal(assign("once", &b), 0); /* the token is taken */
	sleep(2);
	assert_int_equal(assign("once", &b), 0); /* still: the grant has not expired */
	/* No OUTCOME comes. Past the expiry, the token is back long before a minute refills it. */
	wait_returned(&a, (TTL_S + 2) * 1000);
	assert_int_equal(assign("once", &b), 1);
	assert_int_equal(assign("once", &b), 0);
}

/*
 * rpm 3 (a token every 20 s): three grants take all three; two are used,
 * one is not. The router stops before that one expires and starts after:
 * it gives the token back once, and a second restart gives nothing more.
 */
static void
test_pending_at_restart_returns_once(void **state)
{
	struct ipc_grant g[3], x;

	(void)state;
	put("k_three", "three", 3, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(assign("three", &g[i]), 1);
	outcome(&g[1], 200, FAIL_NONE);
	outcome(&g[2], 200, FAIL_NONE);
	assert_int_equal(assign("three", &x), 0);
	router_stop();
	assert_int_equal(held(&g[0]), 1); /* stopped before its expiry: still held */
	sleep(TTL_S + 1);
	router_start();
	wait_returned(&g[0], 3000);
	assert_int_equal(held(&g[1]), 0);
	assert_int_equal(assign("three", &x), 1); /* the one token */
	assert_int_equal(assign("three", &x), 0); /* and not two */
	router_stop();
	router_start();
	assert_int_equal(assign("three", &x), 0); /* nor again after a restart */
	assert_int_equal(h_db_int(&env, "router",
			     "SELECT count(*) FROM assignments WHERE key_id = 'k_three'"
			     " AND held != 0"),
	    2); /* g[0] returned, x's grant held until its own expiry */
}

/*
 * A budget of two requests: a grant expires and gives its price back, but
 * its call was under way and reports after; the price is spent again. A
 * repeated OUTCOME, even a refused connection, gives nothing back.
 */
static void
test_late_outcome_charges_again(void **state)
{
	struct ipc_grant late, b, c;

	(void)state;
	put("k_budget", "budget", 0, 200);
	assert_int_equal(assign("budget", &late), 1);
	wait_returned(&late, (TTL_S + 2) * 1000);
	assert_int_equal(assign("budget", &b), 1);
	outcome(&late, 200, FAIL_NONE); /* the call outlived its grant */
	assert_int_equal(held(&late), 0);
	assert_int_equal(assign("budget", &c), 0); /* 100 + 100 spent: nothing left */
	outcome(&b, 200, FAIL_NONE);
	outcome(&b, 0, FAIL_CONNECT); /* a repeat, whatever it says */
	outcome(&late, 0, FAIL_CONNECT);
	assert_int_equal(assign("budget", &c), 0);
	assert_int_equal(h_db_int(&env, "router",
			     "SELECT spent FROM key_state WHERE key_id = 'k_budget'"),
	    200);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unused_grant_returns),
	    cmocka_unit_test(test_pending_at_restart_returns_once),
	    cmocka_unit_test(test_late_outcome_charges_again),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
