/*
 * test_score.c — the router's score formula and its limits, as tables over
 * simulated time: scores after sequences of successes, errors and idle
 * time (recovery), bands, the bench threshold's return time, what each
 * upstream outcome counts as; token buckets and the daily budget.
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
#define H 300000 /* half-life used by the tables: 300 s */
#define MINUTE 60000
#define T0 INT64_C(1760000000000)

/* One step: at t (ms after T0) an event, or 'v' to read the value. */
struct sstep {
	int64_t t;
	char ev; /* 's' success, 'e' error, 'n' neutral, 'v' read only */
};

struct score_case {
	const char *name;
	double start;
	struct sstep steps[8];
	size_t n;
	double want;
	int band;
};

static const struct score_case score_cases[] = {
    {"new key", 1.0, {{0, 'v'}}, 1, 1.0, 9},
    {"success at 1 stays 1", 1.0, {{0, 's'}, {1, 's'}}, 2, 1.0, 9},
    {"one error halves", 1.0, {{0, 'e'}}, 1, 0.5, 5},
    {"two errors", 1.0, {{0, 'e'}, {0, 'e'}}, 2, 0.25, 2},
    {"three errors: benched", 1.0, {{0, 'e'}, {0, 'e'}, {0, 'e'}}, 3, 0.125, 1},
    {"success after an error", 1.0, {{0, 'e'}, {0, 's'}}, 2, 0.6, 6},
    {"five successes from 0.5", 0.5, {{0, 's'}, {0, 's'}, {0, 's'}, {0, 's'}, {0, 's'}}, 5,
	1.0 - 0.5 * 0.32768, 8},
    {"neutral changes nothing", 0.5, {{0, 'n'}, {0, 'n'}}, 2, 0.5, 5},
    {"one half-life of recovery", 0.5, {{H, 'v'}}, 1, 0.75, 7},
    {"two half-lives", 0.5, {{2 * H, 'v'}}, 1, 0.875, 8},
    {"error then two half-lives", 1.0, {{0, 'e'}, {2 * H, 'v'}}, 2, 0.875, 8},
    {"recovery reaches the top band", 0.5, {{4 * H, 'v'}}, 1, 1.0 - 0.5 / 16, 9},
    {"recovery then an error", 0.5, {{H, 'e'}}, 1, 0.375, 3},
    {"recovery then a success", 0.5, {{H, 's'}}, 1, 0.8, 8},
    {"reading changes nothing", 0.5, {{H, 'v'}, {0, 'v'}}, 2, 0.5, 5},
    {"an event in the past does not undo time", 0.5, {{H, 'e'}, {0, 'v'}}, 2, 0.375, 3},
    {"zero stays zero without time", 0.0, {{0, 'e'}, {0, 'v'}}, 2, 0.0, 0},
    {"zero recovers", 0.0, {{H, 'v'}}, 1, 0.5, 5},
};

static void
test_score_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(score_cases); i++) {
		const struct score_case *c = &score_cases[i];
		struct score s = {c->start, T0};
		double v = 0;

		for (size_t j = 0; j < c->n; j++) {
			const struct sstep *st = &c->steps[j];

			if (st->ev == 's' || st->ev == 'e' || st->ev == 'n')
				score_record(&s, st->ev == 's' ? SE_SUCCESS :
				    st->ev == 'e' ? SE_ERROR : SE_NEUTRAL, T0 + st->t, H);
			v = score_value(&s, T0 + st->t, H);
		}
		if (v < c->want - 1e-9 || v > c->want + 1e-9 || score_band(v) != c->band) {
			print_error("%s: score %.6f band %d, want %.6f band %d\n", c->name, v,
			    score_band(v), c->want, c->band);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_bands(void **state)
{
	static const struct {
		double v;
		int band;
	} cases[] = {
	    {0.0, 0}, {0.05, 0}, {0.1, 1}, {0.19, 1}, {0.2, 2}, {0.5, 5}, {0.8999, 8},
	    {0.9, 9}, {0.95, 9}, {1.0, 9}, {-0.1, 0}, {1.5, 9},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (score_band(cases[i].v) != cases[i].band) {
			print_error("band of %.4f: %d\n", cases[i].v, score_band(cases[i].v));
			bad++;
		}
	assert_int_equal(bad, 0);
}

/* When idle recovery lifts a score to a target: the formula's inverse. */
static void
test_reaches(void **state)
{
	static const struct {
		double v, target;
		int64_t want; /* ms after T0; -1: never */
	} cases[] = {
	    {0.5, 0.75, H},
	    {0.5, 0.875, 2 * H},
	    {0.125, SCORE_BENCH, 38785}, /* H log2(0.875 / 0.8) */
	    {0.9, 0.5, 0},		 /* already there */
	    {0.5, 1.0, -1},		 /* 1 is only approached */
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct score s = {cases[i].v, T0};
		int64_t at = score_reaches(&s, cases[i].target, H);
		int64_t want = cases[i].want < 0 ? INT64_MAX : T0 + cases[i].want;

		/* Rounded up to the ms: the target is met then and not a ms before. */
		if (at != want || (at != INT64_MAX && score_value(&s, at, H) < cases[i].target - 1e-12)) {
			print_error("reaches %.3f from %.3f: %lld, want %lld\n", cases[i].target,
			    cases[i].v, (long long)(at - T0), (long long)(want - T0));
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_classify(void **state)
{
	static const struct {
		uint16_t status;
		uint8_t failure;
		enum outcome_class want;
		uint8_t eclass; /* what the vault read in the error body */
	} cases[] = {
	    {200, FAIL_NONE, OC_OK, ECLASS_NONE},
	    {201, FAIL_NONE, OC_OK, ECLASS_NONE},
	    {200, FAIL_CANCEL, OC_OK, ECLASS_NONE},	/* the buyer left mid-stream: the key worked */
	    {200, FAIL_CUT, OC_ERROR, ECLASS_NONE},	/* the upstream cut the stream */
	    {200, FAIL_TIMEOUT, OC_ERROR, ECLASS_NONE}, /* … or stalled */
	    {400, FAIL_NONE, OC_OK, ECLASS_NONE},	/* the buyer's request */
	    {404, FAIL_NONE, OC_OK, ECLASS_NONE},
	    {422, FAIL_NONE, OC_OK, ECLASS_NONE},
	    {401, FAIL_NONE, OC_AUTH, ECLASS_NONE},
	    {403, FAIL_NONE, OC_AUTH, ECLASS_NONE},
	    {401, FAIL_CANCEL, OC_AUTH, ECLASS_NONE}, /* the edge cancelled it to fail over */
	    {402, FAIL_NONE, OC_QUOTA, ECLASS_NONE},
	    {429, FAIL_NONE, OC_RATE, ECLASS_NONE},
	    {429, FAIL_CANCEL, OC_RATE, ECLASS_NONE},
	    {500, FAIL_NONE, OC_ERROR, ECLASS_NONE},
	    {503, FAIL_CANCEL, OC_ERROR, ECLASS_NONE},
	    {599, FAIL_NONE, OC_ERROR, ECLASS_NONE},
	    {0, FAIL_CONNECT, OC_ERROR, ECLASS_NONE},
	    {0, FAIL_TIMEOUT, OC_ERROR, ECLASS_NONE},
	    {0, FAIL_CANCEL, OC_NEUTRAL, ECLASS_NONE}, /* the buyer left before the upstream answered */
	    {0, FAIL_NONE, OC_NEUTRAL, ECLASS_NONE},
	    /* A body that says the credit or quota is gone: a 4xx quarantines, nothing else does. */
	    {429, FAIL_NONE, OC_QUOTA, ECLASS_QUOTA}, /* OpenAI insufficient_quota */
	    {400, FAIL_NONE, OC_QUOTA, ECLASS_QUOTA}, /* Anthropic: credit balance too low */
	    {429, FAIL_CANCEL, OC_QUOTA, ECLASS_QUOTA},
	    {401, FAIL_NONE, OC_AUTH, ECLASS_QUOTA},
	    {402, FAIL_NONE, OC_QUOTA, ECLASS_QUOTA},
	    {200, FAIL_NONE, OC_OK, ECLASS_QUOTA},
	    {503, FAIL_NONE, OC_ERROR, ECLASS_QUOTA},
	    {0, FAIL_CONNECT, OC_ERROR, ECLASS_QUOTA},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (score_classify(cases[i].status, cases[i].failure, cases[i].eclass) !=
		    cases[i].want) {
			print_error("status %u failure %u class %u: %d\n", cases[i].status,
			    cases[i].failure, cases[i].eclass,
			    score_classify(cases[i].status, cases[i].failure, cases[i].eclass));
			bad++;
		}
	assert_int_equal(score_event_of(OC_OK), SE_SUCCESS);
	assert_int_equal(score_event_of(OC_ERROR), SE_ERROR);
	assert_int_equal(score_event_of(OC_RATE), SE_NEUTRAL);
	assert_int_equal(score_event_of(OC_AUTH), SE_NEUTRAL);
	assert_int_equal(bad, 0);
}

/*
 * Limits over simulated time: at t, take ('t'), give back one taken at t
 * ('g') or a day before t ('y'), charge again one taken at t and given back
 * too early ('a'), or only check ('c'); ok is whether one more request fits
 * before the action.
 */
struct lstep {
	int64_t t;
	char op;
	int ok;
};

struct limits_case {
	const char *name;
	struct lcaps caps;
	int64_t price;
	struct lstep steps[10];
	size_t n;
	int64_t ready; /* ms after T0 when one fits after the last step (-1: never) */
};

static const struct limits_case limits_cases[] = {
    {"no limits", {0, 0, 0}, 100, {{0, 't', 1}, {0, 't', 1}, {0, 't', 1}}, 3, 0},
    {"rpm 2: a burst of two", {2, 0, 0}, 100, {{0, 't', 1}, {0, 't', 1}, {0, 'c', 0}}, 3,
	30000},
    {"rpm 2: one token back after 30 s", {2, 0, 0}, 100,
	{{0, 't', 1}, {0, 't', 1}, {29999, 'c', 0}, {30000, 't', 1}, {30000, 'c', 0}}, 5, 60000},
    {"rpm 60: a token a second", {60, 0, 0}, 1,
	{{0, 't', 1}, {0, 'c', 1}}, 2, 0},
    {"rpm 1: a give-back refills", {1, 0, 0}, 100, {{0, 't', 1}, {1, 'c', 0}, {2, 'g', 0},
	{3, 't', 1}}, 4, 3 + MINUTE},
    {"rpm never beyond its capacity", {2, 0, 0}, 100,
	{{0, 'c', 1}, {10 * MINUTE, 't', 1}, {10 * MINUTE, 't', 1}, {10 * MINUTE, 'c', 0}}, 4,
	10 * MINUTE + 30000},
    {"rpd 2", {0, 2, 0}, 100, {{0, 't', 1}, {0, 't', 1}, {MINUTE, 'c', 0}}, 3, 43200000},
    {"budget 250 at 100", {0, 0, 250}, 100, {{0, 't', 1}, {0, 't', 1}, {0, 'c', 0}}, 3,
	DAY_MS - T0 % DAY_MS},
    {"budget comes back at midnight", {0, 0, 250}, 100,
	{{0, 't', 1}, {0, 't', 1}, {DAY_MS - T0 % DAY_MS, 't', 1}}, 3, DAY_MS - T0 % DAY_MS},
    {"budget give-back", {0, 0, 100}, 100, {{0, 't', 1}, {0, 'g', 0}, {0, 't', 1}}, 3,
	DAY_MS - T0 % DAY_MS},
    {"a price over the budget never fits", {0, 0, 50}, 100, {{0, 'c', 0}}, 1, -1},
    {"yesterday's reservation back: today's budget keeps its spending", {0, 0, 100}, 100,
	{{DAY_MS - T0 % DAY_MS, 't', 1}, {DAY_MS - T0 % DAY_MS, 'y', 0},
	    {DAY_MS - T0 % DAY_MS, 'c', 0}}, 3, 2 * DAY_MS - T0 % DAY_MS},
    {"a late call is charged again", {0, 0, 200}, 100,
	{{0, 't', 1}, {0, 'g', 0}, {0, 'a', 0}, {0, 't', 1}, {0, 'c', 0}}, 5,
	DAY_MS - T0 % DAY_MS},
    {"a charge takes a token", {2, 0, 0}, 100,
	{{0, 't', 1}, {0, 't', 1}, {1, 'g', 0}, {2, 'a', 0}, {2, 'c', 0}}, 5, 30002},
    {"the tightest limit decides", {1, 100, 1000}, 100, {{0, 't', 1}}, 1, MINUTE},
};

static void
test_limits_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(limits_cases); i++) {
		const struct limits_case *c = &limits_cases[i];
		struct lstate st;
		int64_t last = T0, want, got;

		limits_init(&st, &c->caps, T0);
		for (size_t j = 0; j < c->n; j++) {
			const struct lstep *s = &c->steps[j];
			int ok = limits_ok(&st, &c->caps, c->price, T0 + s->t);

			if (strchr("tc", s->op) != NULL && ok != s->ok) {
				print_error("%s: step %zu: fits %d\n", c->name, j, ok);
				bad++;
			}
			if (s->op == 't')
				limits_take(&st, &c->caps, c->price, T0 + s->t);
			else if (s->op == 'g')
				limits_give(&st, &c->caps, c->price, T0 + s->t, T0 + s->t);
			else if (s->op == 'y')
				limits_give(&st, &c->caps, c->price, T0 + s->t - DAY_MS, T0 + s->t);
			else if (s->op == 'a')
				limits_charge(&st, &c->caps, c->price, T0 + s->t, T0 + s->t);
			last = T0 + s->t;
		}
		want = c->ready < 0 ? INT64_MAX : T0 + c->ready;
		got = limits_ready_at(&st, &c->caps, c->price, last);
		if (got != want || (got != INT64_MAX && !limits_ok(&st, &c->caps, c->price, got)) ||
		    (got != INT64_MAX && got > last && limits_ok(&st, &c->caps, c->price, got - 1))) {
			print_error("%s: ready at %lld, want %lld\n", c->name, (long long)(got - T0),
			    (long long)(want - T0));
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* A bucket never passes more than cap + cap × t / window requests in t. */
static void
test_bucket_bound(void **state)
{
	struct lcaps caps = {30, 0, 0};
	struct lstate st;
	int64_t t, passed = 0;

	(void)state;
	limits_init(&st, &caps, T0);
	for (t = 0; t <= 5 * MINUTE; t += 37) {
		if (limits_ok(&st, &caps, 1, T0 + t)) {
			limits_take(&st, &caps, 1, T0 + t);
			passed++;
		}
		assert_true(passed <= 30 + 30 * t / MINUTE);
	}
	assert_true(passed >= 30 + 30 * 5 - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_score_table),
	    cmocka_unit_test(test_bands),
	    cmocka_unit_test(test_reaches),
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_limits_table),
	    cmocka_unit_test(test_bucket_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
