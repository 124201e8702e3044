/*
 * test_ledger_replay.c — idempotency under redelivery: 1,000 payment events
 * (pending, post with and without the premium part, void, dispute, return,
 * refund) are applied once in order to one ledger, and three times, each
 * time in a new shuffled order, to another. Each pass delivers every event
 * at least once, as an outbox does: an event that arrives before the one it
 * depends on is refused and delivered again later in the pass. After every
 * pass the second ledger holds exactly 1,000 transfers and the same balances
 * as the first, which are the model's to the µUSD; verify finds it intact.
 *
 * LEDGER_REPLAY_SEED picks the events and the orders (printed on every run).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/scenario/ledger_model.h"

#define NEVENTS 1000
#define ROUNDS_MAX 12

static struct lm model;
static uint64_t seed;

struct side {
	struct h_env env;
	struct h_ipc pay, plat;
};

static int
side_up(struct side *s)
{
	return lp_up(&s->env, NULL, &s->pay, &s->plat);
}

static int
side_down(struct side *s)
{
	return lp_down(&s->env, &s->pay, &s->plat);
}

static int
group_setup(void **state)
{
	const char *env = getenv("LEDGER_REPLAY_SEED");

	(void)state;
	seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	fprintf(stderr, "# seed %" PRIu64 " (replay: LEDGER_REPLAY_SEED=%" PRIu64 ")\n", seed, seed);
	if (lm_init(&model, seed, NEVENTS, NEVENTS) != 0)
		return -1;
	while (model.nev < NEVENTS)
		if (lm_next(&model, model.nev) < 0)
			return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	lm_free(&model);
	return 0;
}

/*
 * Deliver the events of order[0..n) pipelined, each on its sender's
 * connection, then deliver again those refused, until none is. Anything but
 * a success or a refusal fails the test. The number of refusals.
 */
static size_t
deliver(struct side *s, size_t *order, size_t n)
{
	static struct lp_flight f[NEVENTS];
	size_t refused = 0, left = n;

	for (int round = 0; left > 0; round++) {
		size_t again = 0;

		if (round == ROUNDS_MAX)
			fail_msg("seed %" PRIu64 ": %zu events still refused after %d rounds", seed,
			    left, round);
		for (size_t i = 0; i < left; i++) {
			const struct lm_event *e = &model.ev[order[i]];

			lp_send(e->platform ? &s->plat : &s->pay, e->type, &e->msg, &f[i]);
		}
		/* Both connections' answers arrive on the two loops. */
		while (lp_wait(&s->pay, f, left, 50) < left && lp_wait(&s->plat, f, left, 50) < left)
			;
		for (size_t i = 0; i < left; i++) {
			if (lp_acked(&f[i]))
				continue;
			if (f[i].status != 0 || f[i].code != IPC_ERR_REFUSED)
				fail_msg("seed %" PRIu64 ": event %zu (%s): status %d type %u code %u",
				    seed, order[i], model.ev[order[i]].xfer, f[i].status, f[i].type,
				    f[i].code);
			order[again++] = order[i];
		}
		refused += again;
		left = again;
	}
	return refused;
}

static void
shuffle(size_t *order, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)lm_range(&model, 0, (int64_t)i), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
}

static void
check_books(struct side *s, const char *want, const char *when)
{
	char *books = lm_books(&s->env);

	assert_int_equal(lp_db_int(&s->env, "SELECT count(*) FROM transfers", NULL), NEVENTS);
	assert_int_equal(model.transfers, NEVENTS);
	if (lm_check(&model, &s->env) != 0)
		fail_msg("seed %" PRIu64 ", %s: the balances are not the model's", seed, when);
	assert_non_null(books);
	if (want != NULL && strcmp(books, want) != 0)
		fail_msg("seed %" PRIu64 ", %s: balances differ:\n%s\n%s", seed, when, books, want);
	free(books);
}

static void
test_three_shuffled_passes(void **state)
{
	static size_t order[NEVENTS];
	struct side once, thrice;
	char *want, *out = NULL;

	(void)state;
	/* Once, in order. */
	assert_int_equal(side_up(&once), 0);
	for (size_t i = 0; i < NEVENTS; i++)
		order[i] = i;
	deliver(&once, order, NEVENTS);
	check_books(&once, NULL, "in order");
	want = lm_books(&once.env);
	assert_int_equal(side_down(&once), 0);
	/* Three times, shuffled. */
	assert_int_equal(side_up(&thrice), 0);
	for (int pass = 1; pass <= 3; pass++) {
		char when[32];
		size_t refused;

		for (size_t i = 0; i < NEVENTS; i++)
			order[i] = i;
		shuffle(order, NEVENTS);
		refused = deliver(&thrice, order, NEVENTS);
		snprintf(when, sizeof(when), "pass %d", pass);
		check_books(&thrice, want, when);
		print_message("# pass %d: %d events, %zu delivered again, %" PRId64 " transfers\n",
		    pass, NEVENTS, refused,
		    lp_db_int(&thrice.env, "SELECT count(*) FROM transfers", NULL));
	}
	assert_int_equal(lp_tool(&thrice.env, &out, "verify", NULL), 0);
	free(out);
	free(want);
	assert_int_equal(side_down(&thrice), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_three_shuffled_passes),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
