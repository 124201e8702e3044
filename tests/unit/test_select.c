/*
 * test_select.c — the router's choice of a key, as tables: buyer price with
 * the fee rounded up, the exclude list, cheapest first, the ticket's amount
 * as a ceiling, ties taking turns; and which listings the router accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "router/router.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define BIG INT64_MAX

static void
test_buyer_price(void **state)
{
	static const struct {
		int64_t price, bps;
		int rc;
		int64_t want;
	} cases[] = {
	    {1, 1000, 0, 2},	      /* 0.1 µUSD of fee rounds up to 1 */
	    {10, 1000, 0, 11},
	    {15, 1000, 0, 17},	      /* 1.5 → 2 */
	    {1999, 1000, 0, 2199},    /* 199.9 → 200 */
	    {2000, 1000, 0, 2200},
	    {2000, 1, 0, 2001},	      /* 0.2 → 1 */
	    {100, 0, 0, 100},
	    {100, 10000, 0, 200},
	    {INT64_MAX, 0, 0, INT64_MAX},
	    {INT64_MAX, 1, -1, 0},    /* overflow is refused, not wrapped */
	    {INT64_MAX / 2 + 1, 10000, -1, 0},
	    {0, 1000, -1, 0},
	    {-5, 1000, -1, 0},
	    {100, -1, -1, 0},
	    {100, 10001, -1, 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t got = 0;
		int rc = select_buyer_price(cases[i].price, cases[i].bps, &got);

		if (rc != cases[i].rc || (rc == 0 && got != cases[i].want)) {
			print_error("price %lld bps %lld: rc %d got %lld\n", (long long)cases[i].price,
			    (long long)cases[i].bps, rc, (long long)got);
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

#define MAXC 6

struct pick_case {
	const char *name;
	struct sel_cand c[MAXC];
	size_t n;
	int64_t bps, ceiling;
	const char *exclude;
	uint64_t spread;
	const char *want; /* key id, or NULL for none */
};

static const struct pick_case pick_cases[] = {
    {"cheapest", {{"k_a", 100}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "", 0, "k_b"},
    {"cheapest, any spread", {{"k_a", 100}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "", 7, "k_b"},
    {"order does not matter", {{"k_b", 50}, {"k_c", 70}, {"k_a", 100}}, 3, 1000, BIG, "", 0, "k_b"},
    {"tie, turn 0", {{"k_a", 50}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "", 0, "k_a"},
    {"tie, turn 1", {{"k_a", 50}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "", 1, "k_b"},
    {"tie, turn 2 wraps", {{"k_a", 50}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "", 2, "k_a"},
    {"three-way tie, turn 2", {{"k_a", 9}, {"k_b", 9}, {"k_c", 9}}, 3, 1000, BIG, "", 2, "k_c"},
    {"tie around a dearer key", {{"k_a", 5}, {"k_x", 8}, {"k_b", 5}}, 3, 0, BIG, "", 1, "k_b"},
    {"tie, one excluded", {{"k_a", 50}, {"k_b", 50}}, 2, 1000, BIG, "k_a", 0, "k_b"},
    {"tie, one excluded, any turn", {{"k_a", 50}, {"k_b", 50}}, 2, 1000, BIG, "k_a", 1, "k_b"},
    {"cheapest excluded", {{"k_a", 100}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "k_b", 0, "k_c"},
    {"two excluded", {{"k_a", 100}, {"k_b", 50}, {"k_c", 70}}, 3, 1000, BIG, "k_c,k_b", 0, "k_a"},
    {"all excluded", {{"k_a", 100}, {"k_b", 50}}, 2, 1000, BIG, "k_a,k_b", 0, NULL},
    {"exclude is exact", {{"k_a", 100}, {"k_b", 50}}, 2, 1000, BIG, "k_bb,k_", 0, "k_b"},
    {"ceiling at buyer price", {{"k_a", 100}, {"k_b", 50}}, 2, 1000, 55, "", 0, "k_b"},
    {"ceiling under buyer price", {{"k_a", 100}, {"k_b", 50}}, 2, 1000, 54, "", 0, NULL},
    {"ceiling counts the rounded fee", {{"k_a", 15}}, 1, 1000, 16, "", 0, NULL},
    {"ceiling counts the rounded fee, paid", {{"k_a", 15}}, 1, 1000, 17, "", 0, "k_a"},
    {"failover to dearer within ceiling", {{"k_a", 100}, {"k_b", 50}}, 2, 1000, 110, "k_b", 0, "k_a"},
    {"failover to dearer beyond ceiling", {{"k_a", 100}, {"k_b", 50}}, 2, 1000, 109, "k_b", 0, NULL},
    {"no fee", {{"k_a", 100}}, 1, 0, 100, "", 0, "k_a"},
    {"overflowing price is never cheap", {{"k_a", INT64_MAX}, {"k_b", 10}}, 2, 1000, BIG, "", 0, "k_b"},
    {"overflowing price alone", {{"k_a", INT64_MAX}}, 1, 1000, BIG, "", 0, NULL},
    {"zero ceiling", {{"k_a", 1}}, 1, 0, 0, "", 0, NULL},
    {"nothing listed", {{NULL, 0}}, 0, 1000, BIG, "", 0, NULL},
};

static void
test_pick(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(pick_cases); i++) {
		const struct pick_case *p = &pick_cases[i];
		int got = select_pick(p->c, p->n, p->bps, p->ceiling, p->exclude, p->spread);
		const char *k = got >= 0 ? p->c[got].key_id : NULL;

		if ((k == NULL) != (p->want == NULL) || (k != NULL && strcmp(k, p->want) != 0)) {
			print_error("case \"%s\": got %s, want %s\n", p->name, k ? k : "none",
			    p->want ? p->want : "none");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Consecutive turns over n equal keys visit each of them once. */
static void
test_spread_visits_all(void **state)
{
	static const struct sel_cand c[] = {
	    {"k_1", 20}, {"k_2", 20}, {"k_3", 30}, {"k_4", 20}, {"k_5", 20},
	};
	int seen[NELEM(c)] = {0};

	(void)state;
	for (uint64_t t = 0; t < 4; t++) {
		int i = select_pick(c, NELEM(c), 1000, BIG, "", t);

		assert_true(i >= 0);
		seen[i]++;
	}
	assert_int_equal(seen[0] + seen[1] + seen[3] + seen[4], 4);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 1);
	assert_int_equal(seen[2], 0);
	assert_int_equal(seen[3], 1);
	assert_int_equal(seen[4], 1);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buyer_price),
	    cmocka_unit_test(test_excluded),
	    cmocka_unit_test(test_pick),
	    cmocka_unit_test(test_spread_visits_all),
	    cmocka_unit_test(test_listing_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
