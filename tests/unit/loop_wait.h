/*
 * loop_wait.h — waiting on a libuv loop in unit tests, always against a
 * deadline, so a broken component fails a test instead of hanging it.
 * RUN_UNTIL runs the loop until a condition over the test's own state holds
 * or the time is up; a ticker timer started with ticker_on_tick keeps each
 * turn of the loop short, so the condition is looked at every few
 * milliseconds. Header-only (static inline); needs a fixture with a
 * uv_loop_t member named loop.
 */
#ifndef CN2_TEST_LOOP_WAIT_H
#define CN2_TEST_LOOP_WAIT_H

#include <stdint.h>
#include <uv.h>

static inline uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* The ticker's callback: nothing to do, its firing is what ends a turn. */
static inline void
ticker_on_tick(uv_timer_t *t)
{
	(void)t;
}

/* A macro because cond is an expression over the test's own state. */
#define RUN_UNTIL(fx, cond, ms)                                                 \
	do {                                                                    \
		uint64_t until_ = now_ms() + (ms);                              \
		while (!(cond) && now_ms() < until_)                            \
			uv_run(&(fx)->loop, UV_RUN_ONCE);                       \
	} while (0)

#endif
