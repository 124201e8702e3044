/*
 * test_router.c — cn2-router alone, driven over IPC as its three kinds of
 * peer: platform-api puts and lists listings, the edge gets quotes and
 * grants for tickets MAC'd here with the directory's ticket secret (the
 * grant and award MACs are checked with the grant and ticket secrets), and
 * the vault reports outcomes, which must leave a metadata row in router.db.
 * The key pool: listing terms (region, premium, routes, limits) stored and
 * read back, routing by region and pool with their 503s, quarantine on
 * 401/402 with an event for the seller, a 429's cool-down, limits reserved
 * at ASSIGN that survive a restart, a removed listing staying removed, and
 * the marketplace summary.
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

static struct ipc_listing
listing_of(const char *key, const char *seller, const char *provider, int64_t price,
    const char *status)
{
	struct ipc_listing l;

	memset(&l, 0, sizeof(l));
	snprintf(l.key_id, sizeof(l.key_id), "%s", key);
	snprintf(l.seller_id, sizeof(l.seller_id), "%s", seller);
	snprintf(l.provider, sizeof(l.provider), "%s", provider);
	l.price = price;
	snprintf(l.status, sizeof(l.status), "%s", status);
	return l;
}

static void
put(const char *key, const char *seller, const char *provider, int64_t price, const char *status)
{
	struct ipc_listing l = listing_of(key, seller, provider, price, status);
	struct h_reply r;

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

/* QUOTE of a whole route: the amount it must cost. */
static void
quote_route(const struct ipc_quote *q, int64_t amount)
{
	struct h_reply r;

	call1(&as_edge, IPC_QUOTE, q, IPC_QUOTE_REP, &r);
	assert_int_equal(r.msg.quote_rep.amount, amount);
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
	return h_db_int(&env, "router", sql);
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

/* A listing with every term, as platform-api would send it. */
static void
put_terms(const char *key, const char *seller, const char *provider, int64_t price,
    const char *status, const char *region, uint8_t premium, const char *routes, uint32_t rpm)
{
	struct ipc_listing l = listing_of(key, seller, provider, price, status);
	struct h_reply r;

	snprintf(l.region, sizeof(l.region), "%s", region);
	l.premium = premium;
	snprintf(l.routes, sizeof(l.routes), "%s", routes);
	l.rpm = rpm;
	l.rpd = 5000;
	l.daily_budget = 1000000;
	call1(&as_platform, IPC_LISTING_PUT, &l, IPC_ACK, &r);
	h_replies_free(&r, 1);
}

/* LISTING_GET of a seller's key: its LISTING (then ACK), or the PROBLEM's status. */
static int
get_listing(const char *seller, const char *key, struct ipc_listing *out)
{
	struct ipc_listing_get g;
	struct h_reply r[3];
	size_t n;
	int rc;

	memset(&g, 0, sizeof(g));
	snprintf(g.seller_id, sizeof(g.seller_id), "%s", seller);
	snprintf(g.key_id, sizeof(g.key_id), "%s", key);
	n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_LISTING_GET, &g, r, 3, T_MS);
	assert_true(n >= 1);
	if (r[0].type == IPC_PROBLEM)
		rc = r[0].msg.problem.status;
	else {
		assert_int_equal(n, 2);
		assert_int_equal(r[0].type, IPC_LISTING);
		assert_int_equal(r[1].type, IPC_ACK);
		*out = r[0].msg.listing;
		rc = 0;
	}
	h_replies_free(r, n);
	return rc;
}

static void
test_listing_terms(void **state)
{
	struct ipc_listing l, bad;

	(void)state;
	put_terms("k_t", "seller-t", "terms", 300, "active", "eu", 1,
	    "POST /v1/echo, GET /v1/models/*", 60);
	assert_int_equal(get_listing("seller-t", "k_t", &l), 0);
	assert_string_equal(l.region, "eu");
	assert_int_equal(l.premium, 1);
	assert_string_equal(l.routes, "POST /v1/echo, GET /v1/models/*");
	assert_int_equal(l.rpm, 60);
	assert_int_equal(l.rpd, 5000);
	assert_int_equal(l.daily_budget, 1000000);
	assert_int_equal(l.score, 1000000);
	assert_true(l.updated >= l.created && l.created > 1700000000);
	/* Another seller's key is not there for them. */
	assert_int_equal(get_listing("seller-x", "k_t", &l), 404);
	assert_int_equal(get_listing("seller-t", "k_none", &l), 404);
	/* Terms out of bounds. */
	bad = listing_of("k_t2", "seller-t", "terms", 100, "active");
	snprintf(bad.region, sizeof(bad.region), "de");
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 400, "invalid-listing");
	bad.region[0] = '\0';
	snprintf(bad.routes, sizeof(bad.routes), "post /v1/echo");
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 400, "invalid-listing");
	bad.routes[0] = '\0';
	bad.daily_budget = 50;
	expect_problem(&as_platform, IPC_LISTING_PUT, &bad, 400, "invalid-listing");
	/* A route the listing does not allow is not quoted; one it allows is. */
	{
		struct ipc_quote q = {route_of("terms")};

		snprintf(q.route.path, sizeof(q.route.path), "/v1/other");
		expect_problem(&as_edge, IPC_QUOTE, &q, 503, "no-key-available");
		snprintf(q.route.path, sizeof(q.route.path), "/v1/models/m-1");
		snprintf(q.route.method, sizeof(q.route.method), "GET");
		quote_route(&q, 330);
	}
}

/* A ticket for a route in a region and pool; mac points into the caller's buffer. */
static void
make_ticket_in(struct ipc_assign *a, uint8_t mac[IPC_MAC_LEN], const char *payment,
    int64_t amount, const char *provider, const char *region, uint8_t pool)
{
	make_ticket(a, mac, payment, amount, provider, (int64_t)time(NULL) + 60, "");
	snprintf(a->ticket.route.region, sizeof(a->ticket.route.region), "%s", region);
	a->ticket.route.pool = pool;
	assert_int_equal(capab_ticket_mac(ticket_key, ticket_keylen, &a->ticket, mac), 0);
}

static void
test_region_and_pool(void **state)
{
	struct ipc_quote q = {route_of("regional")};
	struct ipc_assign a;
	struct ipc_grant g;
	uint8_t mac[IPC_MAC_LEN];

	(void)state;
	put_terms("k_us", "seller-r", "regional", 100, "active", "us", 0, "", 0);
	snprintf(q.route.region, sizeof(q.route.region), "eu");
	expect_problem(&as_edge, IPC_QUOTE, &q, 503, "no-eu-key-available");
	put_terms("k_eu", "seller-r", "regional", 200, "active", "eu", 1, "", 0);
	quote_route(&q, 220);
	q.route.pool = POOL_PREMIUM;
	quote_route(&q, 275); /* 220 × 1.25 */
	q.route.region[0] = '\0';
	quote_route(&q, 275); /* only k_eu opted in */
	q.route.pool = POOL_STANDARD;
	quote_route(&q, 110);
	snprintf(q.route.region, sizeof(q.route.region), "xx");
	expect_problem(&as_edge, IPC_QUOTE, &q, 400, "invalid-region");
	/* ASSIGN follows the ticket's region and pool; the grant carries the key's region. */
	make_ticket_in(&a, mac, "pay-r1", 220, "regional", "eu", POOL_STANDARD);
	assign_ok(&a, &g);
	assert_string_equal(g.key_id, "k_eu");
	assert_string_equal(g.region, "eu");
	make_ticket_in(&a, mac, "pay-r2", 110, "regional", "", POOL_STANDARD);
	assign_ok(&a, &g);
	assert_string_equal(g.key_id, "k_us");
	assert_string_equal(g.region, "us");
	make_ticket_in(&a, mac, "pay-r3", 274, "regional", "", POOL_PREMIUM);
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "no-premium-key-available");
	assert_int_equal(db_int("SELECT count(*) FROM assignments WHERE payment_id = 'pay-r1'"
	    " AND region = 'eu' AND pool = 0"), 1);
}

static void
outcome_of(const struct ipc_grant *g, uint16_t status, uint8_t failure, uint32_t retry_after)
{
	struct ipc_outcome o;
	struct h_reply r;

	memset(&o, 0, sizeof(o));
	snprintf(o.key_id, sizeof(o.key_id), "%s", g->key_id);
	snprintf(o.grant_id, sizeof(o.grant_id), "%s", g->grant_id);
	o.route = g->route;
	o.status = status;
	o.failure = failure;
	o.retry_after_s = retry_after;
	call1(&as_vault, IPC_OUTCOME, &o, IPC_ACK, &r);
	h_replies_free(&r, 1);
}

/* A grant for a new payment of amount on provider's route. */
static void
grant_for(const char *payment, int64_t amount, const char *provider, struct ipc_grant *g)
{
	struct ipc_assign a;
	uint8_t mac[IPC_MAC_LEN];

	make_ticket(&a, mac, payment, amount, provider, (int64_t)time(NULL) + 60, "");
	assign_ok(&a, g);
}

/* 401 quarantines at once, with an event for the seller; only the seller brings it back. */
static void
test_quarantine(void **state)
{
	struct ipc_quote q = {route_of("quar")};
	struct ipc_listing l;
	struct ipc_grant g;

	(void)state;
	put("k_q1", "seller-q", "quar", 100, "active");
	put("k_q2", "seller-q", "quar", 300, "active");
	grant_for("pay-q1", 110, "quar", &g);
	assert_string_equal(g.key_id, "k_q1");
	outcome_of(&g, 401, FAIL_NONE, 0);
	assert_int_equal(get_listing("seller-q", "k_q1", &l), 0);
	assert_string_equal(l.status, "quarantined");
	assert_non_null(strstr(l.reason, "401"));
	assert_int_equal(db_int("SELECT count(*) FROM seller_events WHERE key_id = 'k_q1'"
	    " AND seller_id = 'seller-q' AND kind = 'key.quarantined' AND delivered IS NULL"), 1);
	assert_int_equal(db_int("SELECT count(*) FROM listings WHERE key_id = 'k_q1'"
	    " AND status = 'quarantined'"), 1);
	quote_route(&q, 330);
	/* A change of price keeps it quarantined; status active reinstates it. */
	put("k_q1", "seller-q", "quar", 90, "quarantined");
	quote_route(&q, 330);
	put("k_q1", "seller-q", "quar", 90, "active");
	quote_route(&q, 99);
	assert_int_equal(get_listing("seller-q", "k_q1", &l), 0);
	assert_string_equal(l.reason, "");
	assert_int_equal(l.score, 1000000);
	/* 402 (credit gone) too. */
	grant_for("pay-q2", 99, "quar", &g);
	outcome_of(&g, 402, FAIL_NONE, 0);
	quote_route(&q, 330);
}

/* A 429 cools the key for its Retry-After; a 5xx halves its score. */
static void
test_outcomes_429_and_5xx(void **state)
{
	struct ipc_quote q = {route_of("cool")};
	struct ipc_listing l;
	struct ipc_grant g;

	(void)state;
	put("k_c1", "seller-c", "cool", 100, "active");
	put("k_c2", "seller-c", "cool", 200, "active");
	grant_for("pay-c1", 110, "cool", &g);
	outcome_of(&g, 429, FAIL_NONE, 2);
	quote_route(&q, 220);
	sleep(3);
	quote_route(&q, 110);
	grant_for("pay-c2", 110, "cool", &g);
	outcome_of(&g, 503, FAIL_NONE, 0);
	assert_int_equal(get_listing("seller-c", "k_c1", &l), 0);
	assert_true(l.score >= 500000 && l.score < 510000);
	assert_int_equal(db_int("SELECT count(*) FROM requests WHERE key_id = 'k_c1'"), 2);
	assert_int_equal(db_int("SELECT sum(failed) FROM requests_hourly WHERE key_id = 'k_c1'"), 2);
}

/* Limits are reserved at ASSIGN and survive a restart of the router. */
static void
test_limits_survive_restart(void **state)
{
	static const enum ipc_role router[] = {ROLE_ROUTER};
	struct ipc_assign a;
	struct ipc_grant g;
	uint8_t mac[IPC_MAC_LEN];
	char pay[32];

	(void)state;
	put_terms("k_l", "seller-l", "limited", 100, "active", "", 0, "", 2);
	for (int i = 0; i < 2; i++) {
		snprintf(pay, sizeof(pay), "pay-l%d", i);
		grant_for(pay, 110, "limited", &g);
	}
	make_ticket(&a, mac, "pay-l2", 110, "limited", (int64_t)time(NULL) + 60, "");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "no-key-available");
	/* A refused connection reached no upstream: its token comes back. */
	outcome_of(&g, 0, FAIL_CONNECT, 0);
	grant_for("pay-l3", 110, "limited", &g);
	/* Stop and start the router: the bucket is still empty. */
	h_ipc_close(&as_platform);
	h_ipc_close(&as_edge);
	h_ipc_close(&as_vault);
	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
	assert_int_equal(h_start(&env, "router"), 0);
	assert_int_equal(h_ipc_open(&env, &as_platform, ROLE_PLATFORM, router, 1), 0);
	assert_int_equal(h_ipc_open(&env, &as_edge, ROLE_EDGE, router, 1), 0);
	assert_int_equal(h_ipc_open(&env, &as_vault, ROLE_VAULT, router, 1), 0);
	make_ticket(&a, mac, "pay-l4", 110, "limited", (int64_t)time(NULL) + 60, "");
	expect_problem(&as_edge, IPC_ASSIGN, &a, 503, "no-key-available");
	assert_true(db_int("SELECT rpm_milli FROM key_state WHERE key_id = 'k_l'") < 1000);
}

static void
test_removed_is_final(void **state)
{
	struct ipc_listing l = listing_of("k_r", "seller-x9", "gone", 100, "active");
	struct ipc_listing_list ll;
	struct h_reply r[8];
	size_t n;

	(void)state;
	put("k_r", "seller-x9", "gone", 100, "active");
	put("k_r", "seller-x9", "gone", 100, "removed");
	expect_problem(&as_platform, IPC_LISTING_PUT, &l, 409, "listing-removed");
	memset(&ll, 0, sizeof(ll));
	snprintf(ll.seller_id, sizeof(ll.seller_id), "seller-x9");
	n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_LISTING_LIST, &ll, r, 8, T_MS);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].type, IPC_ACK);
	h_replies_free(r, n);
}

static void
test_market_stats(void **state)
{
	struct ipc_market_stats m = {30};
	struct h_reply r[32];
	size_t n;
	int found = 0;

	(void)state;
	n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_MARKET_STATS, &m, r, 32, T_MS);
	assert_true(n >= 2);
	assert_int_equal(r[n - 1].type, IPC_ACK);
	for (size_t i = 0; i + 1 < n; i++) {
		const struct ipc_market_provider *p = &r[i].msg.market_provider;

		assert_int_equal(r[i].type, IPC_MARKET_PROVIDER);
		if (strcmp(p->provider, "regional") == 0) {
			found = 1;
			assert_int_equal(p->keys, 2);
			assert_int_equal(p->eu_keys, 1);
			assert_int_equal(p->premium_keys, 1);
			assert_int_equal(p->price_min, 110);
			assert_int_equal(p->price_max, 220);
		}
		if (strcmp(p->provider, "cool") == 0) {
			assert_int_equal(p->requests, 2);
			assert_int_equal(p->failed, 2);
		}
	}
	assert_true(found);
	h_replies_free(r, n);
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
	    cmocka_unit_test(test_listing_terms),
	    cmocka_unit_test(test_region_and_pool),
	    cmocka_unit_test(test_quarantine),
	    cmocka_unit_test(test_outcomes_429_and_5xx),
	    cmocka_unit_test(test_limits_survive_restart),
	    cmocka_unit_test(test_removed_is_final),
	    cmocka_unit_test(test_market_stats),
	    cmocka_unit_test(test_peer_table),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
