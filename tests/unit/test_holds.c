/*
 * test_holds.c — router/hold.c: the grants that still hold a limit
 * reservation, found by grant id and walked in expiry order, through
 * inserts out of order (grants loaded at start, a shortened grant_ttl_s),
 * deletes anywhere in the order, and growth of the hash table; checked
 * against a plain array kept beside it.
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

#define N 5000

/* The order must be by expiry, the links both ways consistent, the count right. */
static void
check_order(const struct holds *h, size_t want)
{
	const struct hold *x, *prev = NULL;
	size_t n = 0;

	for (x = h->first; x != NULL; prev = x, x = x->next) {
		assert_ptr_equal(x->prev, prev);
		if (prev != NULL)
			assert_true(prev->expires <= x->expires);
		assert_ptr_equal(holds_find(h, x->grant_id), x);
		n++;
	}
	assert_ptr_equal(h->last, prev);
	assert_int_equal(n, want);
	assert_int_equal(h->n, want);
}

static void
test_order_and_find(void **state)
{
	struct holds h;
	struct hold *x;

	(void)state;
	assert_int_equal(holds_init(&h), 0);
	assert_null(h.first);
	assert_null(holds_find(&h, "g_none"));
	/* In expiry order, then one that expires sooner, one in between, one tied. */
	assert_non_null(holds_add(&h, "g_b", "k_1", 100, 1000, 20));
	assert_non_null(holds_add(&h, "g_d", "k_2", 200, 2000, 40));
	assert_non_null(holds_add(&h, "g_a", "k_1", 100, 3000, 10));
	assert_non_null(holds_add(&h, "g_c", "k_3", 300, 4000, 30));
	assert_non_null(holds_add(&h, "g_c2", "k_3", 300, 5000, 30));
	check_order(&h, 5);
	assert_string_equal(h.first->grant_id, "g_a");
	assert_string_equal(h.first->next->grant_id, "g_b");
	assert_string_equal(h.first->next->next->grant_id, "g_c");
	assert_string_equal(h.first->next->next->next->grant_id, "g_c2"); /* ties keep their order */
	assert_string_equal(h.last->grant_id, "g_d");
	x = holds_find(&h, "g_c");
	assert_non_null(x);
	assert_string_equal(x->key_id, "k_3");
	assert_int_equal(x->price, 300);
	assert_int_equal(x->taken, 4000);
	assert_int_equal(x->expires, 30);
	/* Deleting the first, the last and one in the middle. */
	holds_del(&h, holds_find(&h, "g_a"));
	holds_del(&h, holds_find(&h, "g_d"));
	holds_del(&h, holds_find(&h, "g_c"));
	check_order(&h, 2);
	assert_null(holds_find(&h, "g_a"));
	assert_null(holds_find(&h, "g_c"));
	assert_string_equal(h.first->grant_id, "g_b");
	assert_string_equal(h.last->grant_id, "g_c2");
	holds_free(&h);
}

/* Many grants, expiries mostly rising with some stragglers, deleted in another order. */
static void
test_many(void **state)
{
	static char alive[N];
	struct holds h;
	char id[32];
	size_t n = 0;
	uint32_t rng = 12345;

	(void)state;
	assert_int_equal(holds_init(&h), 0);
	for (int i = 0; i < N; i++) {
		int64_t exp = 1000 + i / 3;

		rng = rng * 1103515245u + 12345u;
		if (rng % 10 == 0)
			exp -= (int64_t)(rng >> 16) % 200; /* loaded at start, or a shorter ttl */
		snprintf(id, sizeof(id), "g_%d", i);
		assert_non_null(holds_add(&h, id, "k_x", i, i, exp));
		alive[i] = 1;
		n++;
	}
	check_order(&h, n);
	assert_true(h.tabsize >= N); /* grew as it filled */
	for (int i = 0; i < N; i += 3) {
		snprintf(id, sizeof(id), "g_%d", (i * 7) % N);
		if (!alive[(i * 7) % N])
			continue;
		holds_del(&h, holds_find(&h, id));
		alive[(i * 7) % N] = 0;
		n--;
	}
	check_order(&h, n);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "g_%d", i);
		assert_true((holds_find(&h, id) != NULL) == alive[i]);
	}
	holds_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_find),
	    cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
