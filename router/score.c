/*
 * score.c — a key's reliability score: the one place the formula and its
 * constants (router.h, SCORE_*) live.
 *
 * A score s is in [0, 1]; a new or reinstated key starts at SCORE_NEW (1).
 * It changes on three things, and nothing else:
 *
 *   success        s ← s + SCORE_GAIN × (1 − s)       (0.2: five successes
 *                                                      take 0.5 to 0.84)
 *   error          s ← s × (1 − SCORE_DECAY)          (0.5: one error halves it)
 *   idle time t    s ← 1 − (1 − s) × 2^(−t / H)       (H = score_half_life_s:
 *                                                      half the way back to 1
 *                                                      every H seconds)
 *
 * Recovery is continuous, so a stored score is a pair (value, time) and the
 * value now is computed from it (score_value); an event first brings the
 * score up to now, then applies itself. What counts as what
 * (score_classify): 5xx, timeouts, refused connections and streams cut after
 * the head are errors; a 2xx-4xx answer (other than 401/402/403/429) is a
 * success, since the key worked and a 4xx is the buyer's request; a buyer
 * who left before the upstream answered teaches nothing. 401, 403 and 402
 * quarantine the key (outcome.c), and so does any 4xx whose error body the
 * vault read as a key out of credit or quota (OpenAI answers 429
 * insufficient_quota, Anthropic 400 "credit balance is too low"): waiting
 * does not bring such a key back. Any other 429 cools it down for its
 * Retry-After. None of these changes the score, since none says the
 * upstream is unreliable.
 *
 * How the score is used (select.c): keys of one price are ordered by band,
 * floor(s × SCORE_BANDS), so keys of nearly equal reliability share traffic
 * in turn instead of the single best one taking it all; a key below
 * SCORE_BENCH serves nobody until idle recovery lifts it back above (two
 * errors in a row leave 0.25, a third 0.125: benched, for about 0.13 H); the
 * premium pool takes only keys whose score is above premium_floor_pct.
 *
 * Security stance: pure arithmetic over values this daemon computed; times
 * that run backwards (a clock step) are treated as no time at all.
 */
#include "router/router.h"

#include <math.h>

double
score_value(const struct score *s, int64_t now_ms, int64_t half_life_ms)
{
	double t;

	if (now_ms <= s->at_ms || half_life_ms <= 0)
		return s->v;
	t = (double)(now_ms - s->at_ms) / (double)half_life_ms;
	return 1.0 - (1.0 - s->v) * exp2(-t);
}

void
score_record(struct score *s, enum score_event e, int64_t now_ms, int64_t half_life_ms)
{
	double v = score_value(s, now_ms, half_life_ms);

	if (e == SE_SUCCESS)
		v += SCORE_GAIN * (1.0 - v);
	else if (e == SE_ERROR)
		v *= 1.0 - SCORE_DECAY;
	s->v = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
	if (now_ms > s->at_ms)
		s->at_ms = now_ms;
}

int
score_band(double v)
{
	/* The epsilon keeps 0.9 (stored as 0.8999…) in band 9, where it is meant to be. */
	int b = (int)floor(v * SCORE_BANDS + 1e-9);

	return b < 0 ? 0 : b >= SCORE_BANDS ? SCORE_BANDS - 1 : b;
}

int64_t
score_reaches(const struct score *s, double target, int64_t half_life_ms)
{
	double t;

	if (s->v >= target)
		return s->at_ms;
	if (target >= 1.0 || half_life_ms <= 0)
		return INT64_MAX;
	/* 1 − (1 − v) 2^(−t/H) = target  ⇔  t = H log2((1 − v) / (1 − target)) */
	t = (double)half_life_ms * log2((1.0 - s->v) / (1.0 - target));
	if (!(t < 1e15))
		return INT64_MAX;
	return s->at_ms + (int64_t)ceil(t);
}

enum outcome_class
score_classify(uint16_t status, uint8_t failure, uint8_t error_class)
{
	if (status == 401 || status == 403)
		return OC_AUTH;
	if (status == 402 || (error_class == ECLASS_QUOTA && status >= 400 && status < 500))
		return OC_QUOTA;
	if (status == 429)
		return OC_RATE;
	if (status >= 500)
		return OC_ERROR;
	if (status >= 100)
		return failure == FAIL_CUT || failure == FAIL_TIMEOUT || failure == FAIL_CONNECT ?
		    OC_ERROR : OC_OK;
	return failure == FAIL_NONE || failure == FAIL_CANCEL ? OC_NEUTRAL : OC_ERROR;
}

enum score_event
score_event_of(enum outcome_class c)
{
	if (c == OC_OK)
		return SE_SUCCESS;
	return c == OC_ERROR ? SE_ERROR : SE_NEUTRAL;
}
