/*
 * limits.c — a seller's limits on one key: requests per minute and per day
 * as token buckets, and a daily budget.
 *
 * A bucket holds up to cap tokens and refills continuously at cap tokens per
 * window (a minute, a day); a request takes one token. So at most cap
 * requests pass at once, and over any stretch of t ms at most
 * cap + cap × t / window do. Levels are kept in thousandths of a token, as
 * of a time, so the refill is exact integer arithmetic with no timer. A new
 * bucket is full.
 *
 * The budget is µUSD of upstream spend per UTC day, counted at the
 * listing's price per request (the router never sees what the upstream
 * bills; a seller prices a request at or above what it costs them). It
 * starts again from zero at 00:00 UTC.
 *
 * Reservation (grant.c) takes a token from each bucket and the price from
 * the budget before the grant is sent, on the event loop's one thread, so
 * concurrent requests cannot overshoot; reconciliation gives them back when
 * the call never reached the upstream (outcome.c) or the grant expired
 * unused (release.c), and charges them again when a call outlived its grant
 * and was given back too early. A price goes back to, or is charged to, the
 * budget only on the UTC day it was reserved: yesterday's spending is gone
 * with yesterday's budget.
 *
 * Security stance: caps and prices are bounded by listing_valid (rpm ≤ 10^6,
 * rpd ≤ 10^7, price ≤ 10^12, budget ≤ 10^15), which keeps every product
 * here inside int64_t; times that run backwards add nothing.
 */
#include "router/router.h"

#define MILLI 1000
#define MINUTE_MS INT64_C(60000)

int64_t
bucket_level(const struct bucket *b, uint32_t cap, int64_t window_ms, int64_t now)
{
	int64_t full = (int64_t)cap * MILLI, dt = now - b->at_ms, level;

	if (dt >= window_ms)
		return full;
	/* dt < window ≤ 8.64e7 and full ≤ 1e10: the product stays under 9.2e18. */
	level = b->milli + (dt > 0 ? dt * full / window_ms : 0);
	return level < full ? level : full;
}

static void
bucket_add(struct bucket *b, uint32_t cap, int64_t window_ms, int64_t now, int64_t milli)
{
	int64_t level = bucket_level(b, cap, window_ms, now) + milli, full = (int64_t)cap * MILLI;

	b->milli = level < 0 ? 0 : level > full ? full : level;
	if (now > b->at_ms)
		b->at_ms = now;
}

/* When one whole token is there (now if it is): the refill is counted from at_ms. */
static int64_t
bucket_ready(const struct bucket *b, uint32_t cap, int64_t window_ms, int64_t now)
{
	int64_t full = (int64_t)cap * MILLI, t;

	if (cap == 0 || bucket_level(b, cap, window_ms, now) >= MILLI)
		return now;
	/* The first ms at which b->milli + dt × full / window reaches MILLI. */
	t = b->at_ms + ((MILLI - b->milli) * window_ms + full - 1) / full;
	return t > now ? t : now;
}

/* µUSD spent today: what was spent on an earlier day does not count. */
static int64_t
spent_today(const struct lstate *st, int64_t now)
{
	return st->day == now / DAY_MS ? st->spent : 0;
}

void
limits_init(struct lstate *st, const struct lcaps *c, int64_t now)
{
	st->rpm.milli = (int64_t)c->rpm * MILLI;
	st->rpd.milli = (int64_t)c->rpd * MILLI;
	st->rpm.at_ms = st->rpd.at_ms = now;
	st->day = now / DAY_MS;
	st->spent = 0;
}

int
limits_ok(const struct lstate *st, const struct lcaps *c, int64_t price, int64_t now)
{
	if (c->rpm > 0 && bucket_level(&st->rpm, c->rpm, MINUTE_MS, now) < MILLI)
		return 0;
	if (c->rpd > 0 && bucket_level(&st->rpd, c->rpd, DAY_MS, now) < MILLI)
		return 0;
	return c->budget == 0 || spent_today(st, now) + price <= c->budget;
}

int64_t
limits_ready_at(const struct lstate *st, const struct lcaps *c, int64_t price, int64_t now)
{
	int64_t at = now, t;

	if (c->budget > 0 && price > c->budget)
		return INT64_MAX;
	if (c->rpm > 0 && (t = bucket_ready(&st->rpm, c->rpm, MINUTE_MS, now)) > at)
		at = t;
	if (c->rpd > 0 && (t = bucket_ready(&st->rpd, c->rpd, DAY_MS, now)) > at)
		at = t;
	if (c->budget > 0 && spent_today(st, now) + price > c->budget &&
	    (t = (now / DAY_MS + 1) * DAY_MS) > at)
		at = t;
	return at;
}

void
limits_take(struct lstate *st, const struct lcaps *c, int64_t price, int64_t now)
{
	if (c->rpm > 0)
		bucket_add(&st->rpm, c->rpm, MINUTE_MS, now, -MILLI);
	if (c->rpd > 0)
		bucket_add(&st->rpd, c->rpd, DAY_MS, now, -MILLI);
	st->spent = spent_today(st, now) + price;
	st->day = now / DAY_MS;
}

void
limits_give(struct lstate *st, const struct lcaps *c, int64_t price, int64_t taken, int64_t now)
{
	if (c->rpm > 0)
		bucket_add(&st->rpm, c->rpm, MINUTE_MS, now, MILLI);
	if (c->rpd > 0)
		bucket_add(&st->rpd, c->rpd, DAY_MS, now, MILLI);
	if (st->day == now / DAY_MS && taken / DAY_MS == st->day)
		st->spent = st->spent > price ? st->spent - price : 0;
}

void
limits_charge(struct lstate *st, const struct lcaps *c, int64_t price, int64_t taken,
    int64_t now)
{
	if (c->rpm > 0)
		bucket_add(&st->rpm, c->rpm, MINUTE_MS, now, -MILLI);
	if (c->rpd > 0)
		bucket_add(&st->rpd, c->rpd, DAY_MS, now, -MILLI);
	if (taken / DAY_MS == now / DAY_MS) {
		st->spent = spent_today(st, now) + price;
		st->day = now / DAY_MS;
	}
}
