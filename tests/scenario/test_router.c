/*
 * test_router.c — cn2-router alone, driven over IPC as its three kinds of
 * peer: platform-api puts and lists listings, the edge gets quotes and
 * grants for tickets MAC'd here with the directory's ticket secret (the
 * grant and award MACs are checked with the grant and ticket secrets), and
 * the vault reports outcomes, which must leave a metadata row in router.db.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/capab.h"
#include "tests/scenario/harness.h"

#define T_MS 5000

static struct h_env env;
static struct h_ipc as_platform, as_edge, as_vault;
static uint8_t ticket_key[128], grant_key[128];
static size_t ticket_keylen, grant_keylen;

static void
read_key(const char *rel, uint8_t *buf, size_t *len)
{
	char *s = h_read(&env, rel, len);

	assert_non_null(s);
	if (*len > 0 && s[*len - 1] == '\n')
		(*len)--;
	assert_true(*len >= 32 && *len <= 128);
	memcpy(buf, s, *len);
	free(s);
}

static int
group_setup(void **state)
{
	static const enum ipc_role router[] = {ROLE_ROUTER};

	(void)state;
	if (h_init(&env, NULL) != 0 || h_start(&env, "router") != 0)
		return -1;
	if (h_ipc_open(&env, &as_platform, ROLE_PLATFORM, router, 1) != 0 ||
	    h_ipc_open(&env, &as_edge, ROLE_EDGE, router, 1) != 0 ||
	    h_ipc_open(&env, &as_vault, ROLE_VAULT, router, 1) != 0)
		return -1;
	read_key("secrets/ticket.key", ticket_key, &ticket_keylen);
	read_key("secrets/grant.key", grant_key, &grant_keylen);
	return 0;
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	h_ipc_close(&as_platform);
	h_ipc_close(&as_edge);
	h_ipc_close(&as_vault);
	down = h_down(&env);
	return down;
}

/* Send one request, expect exactly one (final) reply of type want; the caller frees it. */
static void
call1(struct h_ipc *h, uint16_t type, const void *msg, uint16_t want, struct h_reply *r)
{
	size_t n = h_ipc_call(h, ROLE_ROUTER, type, msg, r, 1, T_MS);

	assert_int_equal(n, 1);
	assert_int_equal(r->status, 0);
	if (r->type != want)
		fail_msg("got %s, want %s (%s)", ipc_type_name(r->type), ipc_type_name(want),
		    r->type == IPC_PROBLEM ? r->msg.problem.name
		    : r->type == IPC_ERROR ? r->msg.error.detail : "");
}

static void
expect_problem(struct h_ipc *h, uint16_t type, const void *msg, uint16_t status, const char *name)
{
	struct h_reply r;

	call1(h, type, msg, IPC_PROBLEM, &r);
	assert_int_equal(r.msg.problem.status, status);
	assert_string_equal(r.msg.problem.name, name);
	h_replies_free(&r, 1);
}

static void
put(const char *key, const char *seller, const char *provider, int64_t price, const char *status)
{
	struct ipc_listing l;
	struct h_reply r;

	memset(&l, 0, sizeof(l));
	snprintf(l.key_id, sizeof(l.key_id), "%s", key);
	snprintf(l.seller_id, sizeof(l.seller_id), "%s", seller);
	snprintf(l.provider, sizeof(l.provider), "%s", provider);
	l.price = price;
	snprintf(l.status, sizeof(l.status), "%s", status);
	call1(&as_platform, IPC_LISTING_PUT, &l, IPC_ACK, &r);
	h_replies_free(&r, 1);
}

static struct ipc_route
route_of(const char *provider)
{
	struct ipc_route rt;

	memset(&rt, 0, sizeof(rt));
	snprintf(rt.provider, sizeof(rt.provider), "%s", provider);
	snprintf(rt.method, sizeof(rt.method), "POST");
	snprintf(rt.path, sizeof(rt.path), "/v1/echo");
	return rt;
}

/* A ticket as payments would issue it: mac points into the caller's buffer. */
static void
make_ticket(struct ipc_assign *a, uint8_t mac[IPC_MAC_LEN], const char *payment, int64_t amount,
    const char *provider, int64_t expires, const char *exclude)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->ticket.payment_id, sizeof(a->ticket.payment_id), "%s", payment);
	snprintf(a->ticket.pay_method, sizeof(a->ticket.pay_method), "test");
	a->ticket.amount = amount;
	a->ticket.route = route_of(provider);
	a->ticket.expires = expires;
	assert_int_equal(capab_ticket_mac(ticket_key, ticket_keylen, &a->ticket, mac), 0);
	a->ticket.mac.p = mac;
	a->ticket.mac.len = IPC_MAC_LEN;
	snprintf(a->exclude, sizeof(a->exclude), "%s", exclude);
}

/* ASSIGN that must succeed: check both MACs and the fields; copy the grant out. */
static void
assign_ok(const struct ipc_assign *a, struct ipc_grant *out)
{
	uint8_t want[IPC_MAC_LEN];
	struct h_reply r;
	struct ipc_grant *g;
	int64_t now = (int64_t)time(NULL);

	call1(&as_edge, IPC_ASSIGN, a, IPC_GRANT, &r);
	g = &r.msg.grant;
	assert_int_equal(strncmp(g->grant_id, "g_", 2), 0);
	assert_int_equal(strlen(g->grant_id), 24);
	assert_string_equal(g->payment_id, a->ticket.payment_id);
	assert_string_equal(g->route.provider, a->ticket.route.provider);
	assert_string_equal(g->route.path, a->ticket.route.path);
	assert_true(g->expires >= now + 115 && g->expires <= now + 125);
	assert_int_equal(capab_grant_mac(grant_key, grant_keylen, g, want), 0);
	assert_int_equal(capab_equal(&g->mac, want), 0);
	assert_int_equal(capab_award_mac(ticket_key, ticket_keylen, g->payment_id, g->key_id,
	    g->seller_id, g->seller_price, want), 0);
	assert_int_equal(capab_equal(&g->award_mac, want), 0);
	/* The grant is not valid under the ticket secret: the two secrets differ. */
	assert_int_equal(capab_grant_mac(ticket_key, ticket_keylen, g, want), 0);
	assert_int_not_equal(capab_equal(&g->mac, want), 0);
	*out = *g;
	out->mac.p = out->award_mac.p = NULL;
	h_replies_free(&r, 1);
}

static void
quote(const char *provider, int64_t amount, uint32_t keys)
{
	struct ipc_quote q = {route_of(provider)};
	struct h_reply r;

	call1(&as_edge, IPC_QUOTE, &q, IPC_QUOTE_REP, &r);
	assert_int_equal(r.msg.quote_rep.amount, amount);
	assert_int_equal(r.msg.quote_rep.keys, keys);
	h_replies_free(&r, 1);
}

static void
test_nothing_listed(void **state)
{
	struct ipc_quote q = {route_of("demo")};
	struct h_reply r;

	(void)state;
	call1(&as_edge, IPC_QUOTE, &q, IPC_PROBLEM, &r);
	assert_int_equal(r.msg.problem.status, 503);
	assert_string_equal(r.msg.problem.name, "no-key-available");
	assert_non_null(strstr(r.msg.problem.detail, "demo"));
	h_replies_free(&r, 1);
}

static void
test_listings(void **state)
{
	struct ipc_listing bad;
	struct ipc_listing_list ll;
	struct h_reply r[8];
	size_t n;

	(void)state;
	put("k_a", "seller-1", "demo", 100, "active");
	put("k_b", "seller-1", "demo", 100, "active");
	put("k_c", "seller-2", "demo", 80, "paused");
	put("k_d", "seller-2", "demo", 200, "active");
	/* Invalid listings, and a key id another seller owns. */
	memset(&bad, 0, sizeof(bad));
	snprintf(bad.key_id, sizeof(bad.key_id), "k_e");
	snprintf(bad.seller_id, sizeof(bad.seller_id), "seller-1");
	snprintf(bad.provider, sizeof(bad.provider), "demo");
	snprintf(bad.status, sizeof(bad.status), "active");
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 400, "invalid-listing");
	bad.price = 5;
	snprintf(bad.status, sizeof(bad.status), "enabled");
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 400, "invalid-listing");
	snprintf(bad.status, sizeof(bad.status), "active");
	snprintf(bad.provider, sizeof(bad.provider), "De mo");
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 400, "invalid-listing");
	snprintf(bad.provider, sizeof(bad.provider), "demo");
	snprintf(bad.key_id, sizeof(bad.key_id), "k_a");
	snprintf(bad.seller_id, sizeof(bad.seller_id), "seller-2");
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 409, "listing-conflict");

	memset(&ll, 0, sizeof(ll));
	snprintf(ll.seller_id, sizeof(ll.seller_id), "seller-1");
	n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_LISTING_LIST, &ll, r, 8, T_MS);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].type, IPC_LISTING);
	assert_int_equal(r[1].type, IPC_LISTING);
	assert_int_equal(r[2].type, IPC_ACK);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(r[i].msg.listing.seller_id, "seller-1");
		assert_int_equal(r[i].msg.listing.price, 100);
		assert_string_equal(r[i].msg.listing.status, "active");
		assert_true(r[i].msg.listing.created > 1700000000);
	}
	h_replies_free(r, n);
	snprintf(ll.seller_id, sizeof(ll.seller_id), "nobody");
	n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_LISTING_LIST, &ll, r, 8, T_MS);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].type, IPC_ACK);
	h_replies_free(r, n);
}

/* The cheapest active price plus the 10% default fee; the paused k_c does not count. */
static void
test_quote(void **state)
{
	struct ipc_quote q = {route_of("openai")};

	(void)state;
	quote("demo", 110, 2);
	expect_problem(&as_edge, IPC_QUOTE, &q, 503, "no-key-available");
}

static void
test_assign_spreads_ties(void **state)
{
	struct ipc_assign a;
	struct ipc_grant g1, g2;
	uint8_t mac[IPC_MAC_LEN];
	int64_t exp = (int64_t)time(NULL) + 60;

	(void)state;
	make_ticket(&a, mac, "pay-1", 110, "demo", exp, "");
	assign_ok(&a, &g1);
	make_ticket(&a, mac, "pay-2", 110, "demo", exp, "");
	assign_ok(&a, &g2);
	assert_string_equal(g1.seller_id, "seller-1");
	assert_int_equal(g1.seller_price, 100);
	assert_string_not_equal(g1.key_id, g2.key_id);
	assert_true(strcmp(g1.key_id, "k_a") == 0 || strcmp(g1.key_id, "k_b") == 0);
	assert_true(strcmp(g2.key_id, "k_a") == 0 || strcmp(g2.key_id, "k_b") == 0);
	assert_string_not_equal(g1.grant_id, g2.grant_id);
}

static void
test_assign_exclude_and_ceiling(void **state)
{
	struct ipc_assign a;
	struct ipc_grant g;
	uint8_t mac[IPC_MAC_LEN];
	int64_t exp = (int64_t)time(NULL) + 60;

	(void)state;
	/* Failover past both cheap keys: k_d costs 220 to the buyer. */
	make_ticket(&a, mac, "pay-3", 220, "demo", exp, "k_a,k_b");
	assign_ok(&a, &g);
	assert_string_equal(g.key_id, "k_d");
	assert_string_equal(g.seller_id, "seller-2");
	assert_int_equal(g.seller_price, 200);
	/* The same, but the ticket only paid for a 110 key. */
	make_ticket(&a, mac, "pay-4", 110, "demo", exp, "k_a,k_b");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "no-key-available");
	/* A ticket that paid less than any key. */
	make_ticket(&a, mac, "pay-5", 109, "demo", exp, "");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "no-key-available");
	/* A provider nobody lists. */
	make_ticket(&a, mac, "pay-6", 1000000, "openai", exp, "");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "no-key-available");
}

/* One payment gets at most max_grants (3) grants, failovers included. */
static void
test_assign_attempts_bounded(void **state)
{
	struct ipc_assign a;
	struct ipc_grant g;
	uint8_t mac[IPC_MAC_LEN];
	int64_t exp = (int64_t)time(NULL) + 60;

	(void)state;
	make_ticket(&a, mac, "pay-7", 220, "demo", exp, "");
	for (int i = 0; i < 3; i++)
		assign_ok(&a, &g);
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "attempts-exhausted");
}

static void
test_bad_tickets(void **state)
{
	struct ipc_assign a;
	uint8_t mac[IPC_MAC_LEN];
	int64_t now = (int64_t)time(NULL);

	(void)state;
	/* A flipped bit in the MAC. */
	make_ticket(&a, mac, "pay-8", 110, "demo", now + 60, "");
	mac[7] ^= 1;
	expect_problem(&as_edge, IPC_ASSIGN, &a, 403, "invalid-ticket");
	/* The amount raised after the MAC was made. */
	make_ticket(&a, mac, "pay-8", 110, "demo", now + 60, "");
	a.ticket.amount = 1000000;
	expect_problem(&as_edge, IPC_ASSIGN, &a, 403, "invalid-ticket");
	/* Another route than the one paid for. */
	make_ticket(&a, mac, "pay-8", 110, "demo", now + 60, "");
	snprintf(a.ticket.route.path, sizeof(a.ticket.route.path), "/v1/other");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 403, "invalid-ticket");
	/* Expired, with a good MAC. */
	make_ticket(&a, mac, "pay-8", 110, "demo", now - 1, "");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 403, "invalid-ticket");
	/* MAC'd under the grant secret instead of the ticket secret. */
	make_ticket(&a, mac, "pay-8", 110, "demo", now + 60, "");
	assert_int_equal(capab_ticket_mac(grant_key, grant_keylen, &a.ticket, mac), 0);
	expect_problem(&as_edge, IPC_ASSIGN, &a, 403, "invalid-ticket");
	/* None of these recorded a grant: pay-8 still has all its attempts. */
	make_ticket(&a, mac, "pay-8", 110, "demo", now + 60, "");
	for (int i = 0; i < 3; i++) {
		struct ipc_grant g;

		assign_ok(&a, &g);
	}
}

static sqlite3_int64
db_int(const char *sql)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;
	sqlite3_int64 v = -1;

	snprintf(path, sizeof(path), "%s/db/router.db", env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
test_outcome_recorded(void **state)
{
	struct ipc_assign a;
	struct ipc_grant g;
	struct ipc_outcome o;
	struct h_reply r;
	uint8_t mac[IPC_MAC_LEN];
	char sql[300];

	(void)state;
	make_ticket(&a, mac, "pay-9", 110, "demo", (int64_t)time(NULL) + 60, "");
	assign_ok(&a, &g);
	memset(&o, 0, sizeof(o));
	snprintf(o.key_id, sizeof(o.key_id), "%s", g.key_id);
	snprintf(o.grant_id, sizeof(o.grant_id), "%s", g.grant_id);
	o.route = g.route;
	o.status = 200;
	o.latency_ms = 42;
	o.failure = FAIL_NONE;
	call1(&as_vault, IPC_OUTCOME, &o, IPC_ACK, &r);
	h_replies_free(&r, 1);
	snprintf(sql, sizeof(sql),
	    "SELECT amount FROM requests WHERE grant_id = '%s' AND key_id = '%s' AND status = 200"
	    " AND latency_ms = 42 AND provider = 'demo' AND method = 'POST' AND path = '/v1/echo'",
	    g.grant_id, g.key_id);
	assert_int_equal(db_int(sql), 110);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM assignments WHERE grant_id = '%s'"
	    " AND payment_id = 'pay-9'", g.grant_id);
	assert_int_equal(db_int(sql), 1);
}

/* A seller changes a price and pauses a key: quotes follow at once. */
static void
test_listing_update(void **state)
{
	(void)state;
	put("k_d", "seller-2", "demo", 50, "active");
	quote("demo", 55, 1);
	put("k_d", "seller-2", "demo", 50, "paused");
	quote("demo", 110, 2);
	assert_int_equal(db_int("SELECT price FROM listings WHERE key_id = 'k_d'"), 50);
}

/* The peer table: the edge may not write listings, the vault may not ask for grants. */
static void
test_peer_table(void **state)
{
	struct ipc_listing l;
	struct ipc_assign a;
	struct h_reply r;
	uint8_t mac[IPC_MAC_LEN];

	(void)state;
	memset(&l, 0, sizeof(l));
	snprintf(l.key_id, sizeof(l.key_id), "k_z");
	snprintf(l.seller_id, sizeof(l.seller_id), "evil");
	snprintf(l.provider, sizeof(l.provider), "demo");
	l.price = 1;
	snprintf(l.status, sizeof(l.status), "active");
	assert_int_equal(h_ipc_call(&as_edge, ROLE_ROUTER, IPC_LISTING_PUT, &l, &r, 1, T_MS), 1);
	assert_int_not_equal(r.status, 0);
	make_ticket(&a, mac, "pay-10", 110, "demo", (int64_t)time(NULL) + 60, "");
	assert_int_equal(h_ipc_call(&as_vault, ROLE_ROUTER, IPC_ASSIGN, &a, &r, 1, T_MS), 1);
	assert_int_not_equal(r.status, 0);
	assert_int_equal(db_int("SELECT count(*) FROM listings WHERE key_id = 'k_z'"), 0);
	assert_true(h_log_contains(&env, "which its peer rule does not allow"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nothing_listed),
	    cmocka_unit_test(test_listings),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_assign_spreads_ties),
	    cmocka_unit_test(test_assign_exclude_and_ceiling),
	    cmocka_unit_test(test_assign_attempts_bounded),
	    cmocka_unit_test(test_bad_tickets),
	    cmocka_unit_test(test_outcome_recorded),
	    cmocka_unit_test(test_listing_update),
	    cmocka_unit_test(test_peer_table),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
