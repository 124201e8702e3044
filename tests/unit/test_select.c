/*
 * test_select.c — the router's choice of a key, as tables: buyer prices
 * (fee and premium rounded up), the exclude list, allowed routes, which
 * listings are valid; picks over pools of listings (price ties, score ties
 * and bands, region, pool, limits, cool-downs, quarantine, the ceiling);
 * quotes; recovery over simulated time; the index against a brute-force
 * model; and conversation affinity's memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router/router.h"

/* The tables below give only the fields a row is about; the rest are zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define BIG INT64_MAX
#define FEE 1000
#define HALF_LIFE 300000
#define T0 INT64_C(1760000000000)

static void
test_buyer_price(void **state)
{
	static const struct {
		int64_t price, bps;
		uint8_t pool;
		int rc;
		int64_t want;
	} cases[] = {
	    {1, 1000, POOL_STANDARD, 0, 2},	      /* 0.1 µUSD of fee rounds up to 1 */
	    {10, 1000, POOL_STANDARD, 0, 11},
	    {15, 1000, POOL_STANDARD, 0, 17},	      /* 1.5 → 2 */
	    {1999, 1000, POOL_STANDARD, 0, 2199},    /* 199.9 → 200 */
	    {2000, 1000, POOL_STANDARD, 0, 2200},
	    {2000, 1, POOL_STANDARD, 0, 2001},	      /* 0.2 → 1 */
	    {100, 0, POOL_STANDARD, 0, 100},
	    {100, 10000, POOL_STANDARD, 0, 200},
	    {INT64_MAX, 0, POOL_STANDARD, 0, INT64_MAX},
	    {INT64_MAX, 1, POOL_STANDARD, -1, 0},    /* overflow is refused, not wrapped */
	    {INT64_MAX / 2 + 1, 10000, POOL_STANDARD, -1, 0},
	    {0, 1000, POOL_STANDARD, -1, 0},
	    {-5, 1000, POOL_STANDARD, -1, 0},
	    {100, -1, POOL_STANDARD, -1, 0},
	    {100, 10001, POOL_STANDARD, -1, 0},
	    {1000, 1000, POOL_PREMIUM, 0, 1375},     /* 1100 × 1.25 */
	    {1, 1000, POOL_PREMIUM, 0, 3},	      /* 2 × 1.25 = 2.5 → 3 */
	    {100, 0, POOL_PREMIUM, 0, 125},
	    {101, 0, POOL_PREMIUM, 0, 127},	      /* 126.25 → 127 */
	    {INT64_MAX, 0, POOL_PREMIUM, -1, 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t got = 0;
		int rc = select_pool_price(cases[i].price, cases[i].bps, cases[i].pool, &got);

		if (rc != cases[i].rc || (rc == 0 && got != cases[i].want)) {
			print_error("price %lld bps %lld pool %u: rc %d got %lld\n",
			    (long long)cases[i].price, (long long)cases[i].bps, cases[i].pool, rc,
			    (long long)got);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_excluded(void **state)
{
	static const struct {
		const char *exclude, *key;
		int want;
	} cases[] = {
	    {"", "k_a", 0},
	    {"k_a", "k_a", 1},
	    {"k_a,k_b", "k_b", 1},
	    {"k_a,k_b", "k_a", 1},
	    {"k_ab", "k_a", 0},
	    {"k_a", "k_ab", 0},
	    {"xk_a,k_ax", "k_a", 0},
	    {"k_a,", "k_a", 1},
	    {",k_a", "k_a", 1},
	    {"k_1,,k_3", "k_3", 1},
	    {"k_1,,k_3", "", 0},
	    {",,,", "k_a", 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (select_excluded(cases[i].exclude, cases[i].key) != cases[i].want) {
			print_error("exclude \"%s\" key \"%s\"\n", cases[i].exclude, cases[i].key);
			bad++;
		}
	assert_int_equal(bad, 0);
}

static void
test_routes(void **state)
{
	static const struct {
		const char *routes, *method, *path;
		int valid, allowed;
	} cases[] = {
	    {"", "POST", "/v1/chat/completions", 1, 1},
	    {"POST /v1/chat/completions", "POST", "/v1/chat/completions", 1, 1},
	    {"POST /v1/chat/completions", "GET", "/v1/chat/completions", 1, 0},
	    {"POST /v1/chat/completions", "POST", "/v1/chat/completionsx", 1, 0},
	    {"GET /v1/models, POST /v1/chat/completions", "POST", "/v1/chat/completions", 1, 1},
	    {" GET /v1/models ,POST /v1/embeddings ", "POST", "/v1/embeddings", 1, 1},
	    {"GET /v1/models/*", "GET", "/v1/models/demo-1", 1, 1},
	    {"GET /v1/models/*", "GET", "/v1/models", 1, 0},
	    {"GET /v1/models/*", "GET", "/v1/models/a/b", 1, 0},
	    {"* /v1/models", "DELETE", "/v1/models", 1, 1},
	    {"GET /v1/models,", "GET", "/v1/models", 1, 1},
	    {"post /v1/models", "POST", "/v1/models", 0, 0},
	    {"GET v1/models", "GET", "v1/models", 0, 0},
	    {"GET", "GET", "/", 0, 0},
	    {"GET /v1/models?x=1", "GET", "/v1/models", 0, 0},
	    {"GET /v1/mo dels", "GET", "/v1/mo", 0, 0},
	    {"GET /a,,GET /b", "GET", "/b", 0, 1},
	    {"GET  /a", "GET", "/a", 0, 0},
	    {"G1 /a", "G1", "/a", 0, 1},
	    {"A /1,A /2,A /3,A /4,A /5,A /6,A /7,A /8,A /9,A /10,A /11,A /12,A /13,A /14,A /15,A /16",
		"A", "/16", 1, 1},
	    {"A /1,A /2,A /3,A /4,A /5,A /6,A /7,A /8,A /9,A /10,A /11,A /12,A /13,A /14,A /15,A /16,"
	     "A /17", "A", "/17", 0, 1},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *why = NULL;
		int valid = select_routes_valid(cases[i].routes, &why) == 0;
		int allowed = select_route_allowed(cases[i].routes, cases[i].method, cases[i].path);

		if (valid != cases[i].valid || (!valid && why == NULL) ||
		    (valid && allowed != cases[i].allowed)) {
			print_error("routes \"%s\" %s %s: valid %d allowed %d\n", cases[i].routes,
			    cases[i].method, cases[i].path, valid, allowed);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_listing_valid(void **state)
{
	static const struct {
		struct ipc_listing l;
		int want;
	} cases[] = {
	    {{"k_abc-DEF_1", "seller-1@x.io", "openai", 2000, "active", 0}, 0},
	    {{"k_1", "u:1", "demo", 1, "paused", 0}, 0},
	    {{"k_1", "u1", "demo", 1, "quarantined", 0}, 0},
	    {{"k_1", "u1", "demo", 1, "rotating", 0}, 0},
	    {{"k_1", "u1", "demo", 1, "removed", 0}, 0},
	    {{"k_1", "u1", "demo", 1000000000000, "active", 0}, 0},
	    {{"k_1", "u1", "demo", 1000000000001, "active", 0}, -1},
	    {{"k_1", "u1", "demo", 0, "active", 0}, -1},
	    {{"k_1", "u1", "demo", -1, "active", 0}, -1},
	    {{"k_1", "u1", "demo", 1, "Active", 0}, -1},
	    {{"k_1", "u1", "demo", 1, "deleted", 0}, -1},
	    {{"k_1", "u1", "Demo", 1, "active", 0}, -1},
	    {{"k_1", "u1", "de mo", 1, "active", 0}, -1},
	    {{"k_1", "u1", "demo_x", 1, "active", 0}, -1},
	    {{"k/1", "u1", "demo", 1, "active", 0}, -1},
	    {{"k.1", "u1", "demo", 1, "active", 0}, -1},
	    {{"k_1", "u 1", "demo", 1, "active", 0}, -1},
	    {{"k_1", "u1\n", "demo", 1, "active", 0}, -1},
	    {{"", "u1", "demo", 1, "active", 0}, -1},
	    /* The key pool's terms. */
	    {{"k_1", "u1", "demo", 1, "active", 0, "eu", 1, "POST /v1/x", 60, 1000, 100}, 0},
	    {{"k_1", "u1", "demo", 1, "active", 0, "us"}, 0},
	    {{"k_1", "u1", "demo", 1, "active", 0, "EU"}, -1},
	    {{"k_1", "u1", "demo", 1, "active", 0, "de"}, -1},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 2}, -1},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 0, "post /v1/x"}, -1},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 0, "", 1000000}, 0},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 0, "", 1000001}, -1},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 0, "", 0, 10000000}, 0},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 0, "", 0, 10000001}, -1},
	    {{"k_1", "u1", "demo", 100, "active", 0, "", 0, "", 0, 0, 99}, -1}, /* < one request */
	    {{"k_1", "u1", "demo", 100, "active", 0, "", 0, "", 0, 0, 100}, 0},
	    {{"k_1", "u1", "demo", 100, "active", 0, "", 0, "", 0, 0, -1}, -1},
	    {{"k_1", "u1", "demo", 1, "active", 0, "", 0, "", 0, 0, INT64_C(1000000000000001)}, -1},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *why = NULL;
		int rc = listing_valid(&cases[i].l, &why);

		if (rc != cases[i].want || (rc != 0 && why == NULL)) {
			print_error("listing case %zu: rc %d\n", i, rc);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* A listing of a pick case, with the state the router would have learned. */
struct tkey {
	const char *id;
	int64_t price;
	const char *region;
	int premium;
	const char *routes;
	uint32_t rpm;
	int64_t budget;
	const char *status; /* NULL: active */
	double score;	    /* 0: a new key (1) */
	int64_t cool_s;	    /* a 429's cool-down left */
};

struct treq {
	uint8_t pool;
	int eu;
	const char *method, *path; /* NULL: POST /v1/chat/completions */
	int64_t ceiling;	   /* 0: none */
	const char *exclude;
};

struct pick_case {
	const char *name;
	struct tkey k[6];
	struct treq rq;
	const char *want; /* the key ids of consecutive picks, "-" for none */
};

static const struct pick_case pick_cases[] = {
    {"cheapest wins", {{"a", 100}, {"b", 50}, {"c", 70}}, {0}, "b b b"},
    {"equal prices take turns", {{"a", 50}, {"b", 50}, {"c", 70}}, {0}, "a b a b"},
    {"three-way tie", {{"a", 9}, {"b", 9}, {"c", 9}}, {0}, "a b c a"},
    {"a tie around a dearer key", {{"a", 5}, {"x", 8}, {"b", 5}}, {0}, "a b a"},
    {"scores in one band are a tie", {{"a", 50, .score = 1.0}, {"b", 50, .score = 0.93}}, {0},
	"a b a b"},
    {"a lower band gets nothing while a higher one serves",
	{{"a", 50, .score = 0.5}, {"b", 50, .score = 1.0}, {"c", 50, .score = 0.7}}, {0},
	"b b b"},
    {"price comes before score", {{"a", 40, .score = 0.3}, {"b", 50}}, {0}, "a a"},
    {"benched below 0.2", {{"a", 40, .score = 0.15}, {"b", 50}}, {0}, "b b"},
    {"benched alone", {{"a", 40, .score = 0.1}}, {0}, "-"},
    {"standard buyers get any region", {{"a", 40, "us"}, {"b", 60, "eu"}, {"c", 50}}, {0},
	"a a"},
    {"EU buyers get eu keys only", {{"a", 40, "us"}, {"b", 60, "eu"}, {"c", 50}},
	{.eu = 1}, "b b"},
    {"EU buyers: no eu key, no key", {{"a", 40, "us"}, {"c", 50}}, {.eu = 1}, "-"},
    {"premium needs the opt-in", {{"a", 40}, {"b", 60, .premium = 1}}, {.pool = POOL_PREMIUM},
	"b b"},
    {"premium needs a score above the floor",
	{{"a", 40, .premium = 1, .score = 0.9}, {"b", 60, .premium = 1, .score = 0.91}},
	{.pool = POOL_PREMIUM}, "b"},
    {"premium: none eligible", {{"a", 40}, {"b", 60, .premium = 1, .score = 0.5}},
	{.pool = POOL_PREMIUM}, "-"},
    {"premium keys also serve standard", {{"a", 40, .premium = 1}, {"b", 60}}, {0}, "a"},
    {"premium and EU", {{"a", 40, "eu"}, {"b", 60, "us", 1}, {"c", 70, "eu", 1}},
	{.pool = POOL_PREMIUM, .eu = 1}, "c"},
    {"premium ceiling counts the 1.25", {{"a", 100, .premium = 1}},
	{.pool = POOL_PREMIUM, .ceiling = 137}, "-"},
    {"premium ceiling met", {{"a", 100, .premium = 1}},
	{.pool = POOL_PREMIUM, .ceiling = 138}, "a"},
    {"rpm: used up, then the next key", {{"a", 40, .rpm = 2}, {"b", 50}}, {0}, "a a b b"},
    {"budget: two requests' worth", {{"a", 40, .budget = 80}, {"b", 50}}, {0}, "a a b"},
    {"every key limited", {{"a", 40, .rpm = 1}, {"b", 50, .rpm = 1}}, {0}, "a b -"},
    {"paused, quarantined, rotating, removed serve nobody",
	{{"a", 10, .status = "paused"}, {"b", 11, .status = "quarantined"},
	    {"c", 12, .status = "rotating"}, {"d", 13, .status = "removed"}, {"e", 90}},
	{0}, "e"},
    {"cooling down after a 429", {{"a", 40, .cool_s = 30}, {"b", 50}}, {0}, "b b"},
    {"a route the listing does not allow", {{"a", 40, .routes = "GET /v1/models"}, {"b", 50}},
	{0}, "b b"},
    {"a route it does allow", {{"a", 40, .routes = "GET /v1/models"}, {"b", 50}},
	{.method = "GET", .path = "/v1/models"}, "a"},
    {"any method", {{"a", 40, .routes = "* /v1/chat/completions"}}, {0}, "a"},
    {"excluded (tried already)", {{"a", 40}, {"b", 50}, {"c", 60}}, {.exclude = "a,b"}, "c c"},
    {"ceiling at the buyer price", {{"a", 100}, {"b", 50}}, {.ceiling = 55}, "b"},
    {"ceiling under the buyer price", {{"a", 100}, {"b", 50}}, {.ceiling = 54}, "-"},
    {"ceiling counts the rounded fee", {{"a", 15}}, {.ceiling = 16}, "-"},
    {"failover to a dearer key within the ceiling", {{"a", 100}, {"b", 50}},
	{.ceiling = 110, .exclude = "b"}, "a"},
    {"failover beyond the ceiling", {{"a", 100}, {"b", 50}}, {.ceiling = 109, .exclude = "b"},
	"-"},
    {"nothing listed", {{NULL}}, {0}, "-"},
};

static void
tkey_put(struct pool *p, const struct tkey *t, int64_t now)
{
	struct ipc_listing l;
	struct lkey *k;

	memset(&l, 0, sizeof(l));
	snprintf(l.key_id, sizeof(l.key_id), "%s", t->id);
	snprintf(l.seller_id, sizeof(l.seller_id), "s_%s", t->id);
	snprintf(l.provider, sizeof(l.provider), "p");
	l.price = t->price;
	snprintf(l.status, sizeof(l.status), "%s", t->status != NULL ? t->status : "active");
	snprintf(l.region, sizeof(l.region), "%s", t->region != NULL ? t->region : "");
	l.premium = (uint8_t)t->premium;
	snprintf(l.routes, sizeof(l.routes), "%s", t->routes != NULL ? t->routes : "");
	l.rpm = t->rpm;
	l.daily_budget = t->budget;
	assert_non_null(k = pool_put(p, &l, now));
	if (t->score > 0)
		k->score.v = t->score;
	k->cool_until = now + t->cool_s * 1000;
	pool_place(p, k, now);
}

static struct sel_req
req_of(const struct treq *t)
{
	struct sel_req rq = {"p", t->method != NULL ? t->method : "POST",
	    t->path != NULL ? t->path : "/v1/chat/completions", t->pool, t->eu,
	    t->ceiling != 0 ? t->ceiling : BIG, t->exclude != NULL ? t->exclude : ""};

	return rq;
}

static struct pool_params params = {0.9, HALF_LIFE};

/* Pick as ASSIGN does: choose, then reserve the key's limits. */
static const char *
pick_reserve(struct pool *p, const struct sel_req *rq, int64_t now)
{
	struct lkey *k = select_pick(p, rq, FEE, now);

	if (k == NULL)
		return "-";
	limits_take(&k->lim, &k->caps, k->price, now);
	pool_place(p, k, now);
	return k->key_id;
}

static int
run_pick_case(const struct pick_case *c)
{
	struct sel_req rq = req_of(&c->rq);
	char want[64], *tok, *save = NULL;
	struct pool p;
	int n = 0, bad = 0;

	assert_int_equal(pool_init(&p, &params), 0);
	for (size_t i = 0; i < NELEM(c->k) && c->k[i].id != NULL; i++)
		tkey_put(&p, &c->k[i], T0);
	snprintf(want, sizeof(want), "%s", c->want);
	for (tok = strtok_r(want, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		const char *got = pick_reserve(&p, &rq, T0);

		if (strcmp(got, tok) != 0) {
			print_error("%s: pick %d is %s, want %s\n", c->name, n, got, tok);
			bad++;
		}
		n++;
	}
	pool_free(&p);
	return bad;
}

static void
test_pick(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(pick_cases); i++)
		bad += run_pick_case(&pick_cases[i]);
	assert_int_equal(bad, 0);
}

/* A pick must be eligible under the whole rule, and select_eligible must agree with the walk. */
static void
test_pick_is_eligible(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(pick_cases); i++) {
		const struct pick_case *c = &pick_cases[i];
		struct sel_req rq = req_of(&c->rq);
		struct lkey *k;
		struct pool p;
		int any = 0;

		assert_int_equal(pool_init(&p, &params), 0);
		for (size_t j = 0; j < NELEM(c->k) && c->k[j].id != NULL; j++)
			tkey_put(&p, &c->k[j], T0);
		for (size_t j = 0; j < NELEM(c->k) && c->k[j].id != NULL; j++)
			any |= select_eligible(&p, pool_find(&p, c->k[j].id), &rq, FEE, T0, NULL);
		k = select_pick(&p, &rq, FEE, T0);
		if ((k != NULL) != any || (k != NULL && !select_eligible(&p, k, &rq, FEE, T0, NULL))) {
			print_error("%s: pick and rule disagree\n", c->name);
			bad++;
		}
		pool_free(&p);
	}
	assert_int_equal(bad, 0);
}

static void
test_quote(void **state)
{
	static const struct {
		const char *name;
		struct tkey k[4];
		struct treq rq;
		int rc;
		int64_t amount;
		uint32_t keys;
	} cases[] = {
	    {"cheapest plus fee", {{"a", 100}, {"b", 50}, {"c", 50}}, {0}, 0, 55, 2},
	    {"keys of the price in every band", {{"a", 50, .score = 0.5}, {"b", 50}}, {0}, 0, 55, 2},
	    {"premium × 1.25", {{"a", 40}, {"b", 100, .premium = 1}}, {.pool = POOL_PREMIUM}, 0,
		138, 1},
	    {"EU", {{"a", 40}, {"b", 100, "eu"}}, {.eu = 1}, 0, 110, 1},
	    {"limited keys are not quoted", {{"a", 40, .cool_s = 5}, {"b", 100}}, {0}, 0, 110, 1},
	    {"none", {{"a", 40, .status = "paused"}}, {0}, -1, 0, 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct sel_req rq = req_of(&cases[i].rq);
		int64_t amount = 0;
		uint32_t keys = 0;
		struct pool p;
		int rc;

		assert_int_equal(pool_init(&p, &params), 0);
		for (size_t j = 0; j < NELEM(cases[i].k) && cases[i].k[j].id != NULL; j++)
			tkey_put(&p, &cases[i].k[j], T0);
		rc = select_quote(&p, &rq, FEE, T0, &amount, &keys);
		if (rc != cases[i].rc ||
		    (rc == 0 && (amount != cases[i].amount || keys != cases[i].keys))) {
			print_error("%s: rc %d amount %lld keys %u\n", cases[i].name, rc,
			    (long long)amount, keys);
			bad++;
		}
		pool_free(&p);
	}
	assert_int_equal(bad, 0);
}

/*
 * Over simulated time: at t (ms after T0) an action on the pool, and what
 * the picks that follow it give. Actions: 'e' an error and 's' a success of
 * key k, 'q' quarantine k, 'a' the seller reinstates k, 'r' a 429 with
 * Retry-After 30 s on k, '.' nothing (time passes; the tick runs).
 */
struct tstep {
	int64_t t;
	char act;
	const char *key;
	const char *picks;
};

struct time_case {
	const char *name;
	struct tkey k[3];
	struct tstep steps[12];
};

static const struct time_case time_cases[] = {
    {"a failing key loses its share and regains it",
	{{"a", 50}, {"b", 50}},
	{{0, '.', NULL, "a b a b"},
	    {0, 'e', "a", "b b b"},
	    {HALF_LIFE, '.', NULL, "b b"},	 /* 0.75: band 7 */
	    {4 * HALF_LIFE, '.', NULL, "b a b a"}, /* 0.97: band 9 again, last in turn */
	    {0}}},
    {"successes lift a key back sooner: eight take 0.5 to 0.92",
	{{"a", 50}, {"b", 50}},
	{{0, 'e', "a", "b"},
	    {1, 's', "a", "b"},
	    {2, 's', "a", "b"},
	    {3, 's', "a", "b"},
	    {4, 's', "a", "b"},
	    {5, 's', "a", "b"},
	    {6, 's', "a", "b"},
	    {7, 's', "a", "b"},
	    {8, 's', "a", "b a b a"},
	    {0}}},
    {"a benched cheap key comes back after idle time",
	{{"a", 40}, {"b", 50}},
	{{0, 'e', "a", "a"},
	    {0, 'e', "a", "a"},
	    {0, 'e', "a", "b b"},	  /* 0.125: benched */
	    {38784, '.', NULL, "b"},  /* just short of 0.2 */
	    {38785, '.', NULL, "a a"}, /* back, and the cheapest again */
	    {0}}},
    {"a 429 cools the key down for its Retry-After",
	{{"a", 40}, {"b", 50}},
	{{0, 'r', "a", "b b"},
	    {29999, '.', NULL, "b"},
	    {30000, '.', NULL, "a"},
	    {0}}},
    {"quarantine is not lifted by time, only by the seller",
	{{"a", 40}, {"b", 50}},
	{{0, 'q', "a", "b"},
	    {100 * HALF_LIFE, '.', NULL, "b b"},
	    {100 * HALF_LIFE, 'a', "a", "a a"},
	    {0}}},
};

static void
time_act(struct pool *p, const struct tstep *s, int64_t now)
{
	struct lkey *k = s->key != NULL ? pool_find(p, s->key) : NULL;
	struct ipc_listing l;

	if (s->act == '.') {
		pool_tick(p, now);
		return;
	}
	assert_non_null(k);
	if (s->act == 'e' || s->act == 's')
		score_record(&k->score, s->act == 'e' ? SE_ERROR : SE_SUCCESS, now, HALF_LIFE);
	else if (s->act == 'q')
		k->status = LS_QUARANTINED;
	else if (s->act == 'r')
		k->cool_until = now + 30000;
	else if (s->act == 'a') {
		pool_listing(p, k, now, &l);
		snprintf(l.status, sizeof(l.status), "active");
		assert_non_null(pool_put(p, &l, now));
	}
	pool_place(p, k, now);
}

static void
test_over_time(void **state)
{
	static const struct sel_req rq = {"p", "POST", "/v1/chat/completions", POOL_STANDARD, 0,
	    BIG, ""};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(time_cases); i++) {
		const struct time_case *c = &time_cases[i];
		struct pool p;

		assert_int_equal(pool_init(&p, &params), 0);
		for (size_t j = 0; j < NELEM(c->k) && c->k[j].id != NULL; j++)
			tkey_put(&p, &c->k[j], T0);
		for (size_t j = 0; j < NELEM(c->steps) && c->steps[j].picks != NULL; j++) {
			const struct tstep *s = &c->steps[j];
			char want[64], *tok, *save = NULL;

			time_act(&p, s, T0 + s->t);
			snprintf(want, sizeof(want), "%s", s->picks);
			for (tok = strtok_r(want, " ", &save); tok != NULL;
			     tok = strtok_r(NULL, " ", &save)) {
				const char *got = pick_reserve(&p, &rq, T0 + s->t);

				if (strcmp(got, tok) != 0) {
					print_error("%s: step %zu: %s, want %s\n", c->name, j, got, tok);
					bad++;
				}
			}
		}
		pool_free(&p);
	}
	assert_int_equal(bad, 0);
}

/*
 * The index against a model: random adds, moves and deletes of 300 items
 * over few prices and bands; after each, a walk must give every indexed
 * item once, in (price ascending, band descending) order.
 */
struct mitem {
	struct islot slot;
	int64_t price;
	int band;
	int in;
};

static int
walk_ok(const struct index *ix, const struct mitem *m, size_t n)
{
	size_t seen = 0, want = 0;
	int64_t lp = INT64_MIN;
	int lb = SCORE_BANDS;

	for (size_t i = 0; i < n; i++)
		want += (size_t)m[i].in;
	for (struct igroup *g = index_first(ix); g != NULL; g = igroup_next(g)) {
		const struct mitem *first = igroup_item(g, 0);

		if (igroup_size(g) == 0 || first->price < lp ||
		    (first->price == lp && first->band >= lb))
			return 0;
		for (size_t j = 0; j < igroup_size(g); j++) {
			const struct mitem *it = igroup_item(g, j);

			if (!it->in || it->price != first->price || it->band != first->band ||
			    it->slot.g != g || it->slot.pos != j)
				return 0;
		}
		seen += igroup_size(g);
		lp = first->price;
		lb = first->band;
	}
	return seen == want;
}

static void
test_index_model(void **state)
{
	static struct mitem m[300];
	struct index ix;
	uint32_t r = 12345;

	(void)state;
	assert_int_equal(index_init(&ix, 7), 0);
	for (size_t i = 0; i < NELEM(m); i++)
		m[i].slot.item = &m[i];
	for (int step = 0; step < 5000; step++) {
		struct mitem *it;

		r = r * 1103515245u + 12345u;
		it = &m[(r >> 8) % NELEM(m)];
		if (it->in) {
			index_del(&ix, &it->slot);
			it->in = 0;
		}
		if ((r >> 4) % 3 != 0) {
			it->price = (int64_t)((r >> 12) % 7) * 10;
			it->band = (int)((r >> 20) % SCORE_BANDS);
			assert_int_equal(index_add(&ix, &it->slot, it->price, it->band), 0);
			it->in = 1;
		}
		if (!walk_ok(&ix, m, NELEM(m)))
			fail_msg("index and model disagree after step %d", step);
	}
	for (size_t i = 0; i < NELEM(m); i++)
		if (m[i].in)
			index_del(&ix, &m[i].slot);
	assert_null(index_first(&ix));
	assert_int_equal(ix.ngroups, 0);
	index_free(&ix);
}

static void
test_sessions(void **state)
{
	struct sessions s;
	uint32_t epoch = 0;
	const char *k;

	(void)state;
	assert_int_equal(sessions_init(&s, 3, 1000), 0);
	assert_null(sessions_get(&s, "conv-1", T0, &epoch));
	assert_int_equal(sessions_set(&s, "conv-1", "k_a", 4, T0), 0);
	assert_non_null(k = sessions_get(&s, "conv-1", T0 + 1000, &epoch));
	assert_string_equal(k, "k_a");
	assert_int_equal(epoch, 4);
	/* Moving a session to another key. */
	assert_int_equal(sessions_set(&s, "conv-1", "k_b", 5, T0 + 10), 0);
	assert_string_equal(sessions_get(&s, "conv-1", T0 + 10, &epoch), "k_b");
	assert_int_equal(epoch, 5);
	assert_int_equal(s.n, 1);
	/* Expired after the TTL of silence. */
	assert_null(sessions_get(&s, "conv-1", T0 + 1011, &epoch));
	assert_int_equal(s.n, 0);
	/* At most three: the least recently set goes first. */
	assert_int_equal(sessions_set(&s, "s1", "k_1", 0, T0), 0);
	assert_int_equal(sessions_set(&s, "s2", "k_2", 0, T0 + 1), 0);
	assert_int_equal(sessions_set(&s, "s3", "k_3", 0, T0 + 2), 0);
	assert_int_equal(sessions_set(&s, "s1", "k_1", 0, T0 + 3), 0);
	assert_int_equal(sessions_set(&s, "s4", "k_4", 0, T0 + 4), 0);
	assert_int_equal(s.n, 3);
	assert_null(sessions_get(&s, "s2", T0 + 5, &epoch));
	assert_string_equal(sessions_get(&s, "s1", T0 + 5, &epoch), "k_1");
	assert_string_equal(sessions_get(&s, "s3", T0 + 5, &epoch), "k_3");
	assert_string_equal(sessions_get(&s, "s4", T0 + 5, &epoch), "k_4");
	/* Ids that differ by a byte are different sessions. */
	assert_null(sessions_get(&s, "s5", T0 + 5, &epoch));
	sessions_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buyer_price),
	    cmocka_unit_test(test_excluded),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_listing_valid),
	    cmocka_unit_test(test_pick),
	    cmocka_unit_test(test_pick_is_eligible),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_over_time),
	    cmocka_unit_test(test_index_model),
	    cmocka_unit_test(test_sessions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
