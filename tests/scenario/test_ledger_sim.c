/*
 * test_ledger_sim.c — a seeded simulation of the ledger's life with the
 * daemon killed (SIGKILL) at random points, at least LEDGER_SIM_KILLS (20)
 * times a run.
 *
 * Each round draws a burst of events from the model (ledger_model.c:
 * payments pending, posted with or without the premium part, voided;
 * disputes opened, returned, refunded), sends them pipelined as payments and
 * platform-api would, and kills the daemon once a random number of them is
 * acknowledged: some are then committed, some in a batch being written, some
 * queued, some unsent. After the restart it checks that every event ever
 * acknowledged is in ledger.db, delivers again everything unacknowledged
 * (as the senders' outboxes do), and checks that nothing was duplicated
 * (exactly the model's number of transfers), that every balance is the
 * model's to the µUSD (so the trial balance is zero and escrow holds exactly
 * the open pending transfers), and that `cn2-ledger verify` finds the chain
 * intact. Between rounds, `cn2-ledger payout` records batches (and reverses
 * some), checked against the model's prediction. At the end everything open
 * is closed: escrow and the dispute reserve must be zero.
 *
 * Every choice comes from the seed, never from what the kill happened to
 * catch, so a failing seed replays the same events, kill points and
 * payouts: LEDGER_SIM_SEED=<seed> (printed on every run). A second, short
 * run with one seed twice checks that the books come out the same.
 * LEDGER_SIM_KILLS and LEDGER_SIM_OPS size the main run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/scenario/ledger_model.h"

#define MAX_EVENTS 20000
#define PAYOUT_MAX 256

struct payout {
	char id[64];
	const char *seller;
	int64_t amount;
	int reversed;
};

struct sim {
	struct lm m;
	uint64_t seed;
	struct h_env env;
	struct h_ipc pay, plat;
	struct lp_flight *f; /* per event */
	uint8_t *acked;	     /* per event: ever acknowledged */
	struct payout po[PAYOUT_MAX];
	size_t npo;
	int64_t extra; /* transfers written by the payout tool */
	int kills;
	size_t unacked, committed; /* at the kills: events unacknowledged, and of them in the books */
};

static uint64_t
env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? strtoull(v, NULL, 10) : def;
}

/* The run in progress, for the teardown to stop when a check failed half way. */
static struct sim *running;

static int
sim_up(struct sim *s, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	running = s;
	s->seed = seed;
	s->f = calloc(MAX_EVENTS, sizeof(*s->f));
	s->acked = calloc(MAX_EVENTS, 1);
	if (s->f == NULL || s->acked == NULL || lm_init(&s->m, seed, MAX_EVENTS, MAX_EVENTS) != 0)
		return -1;
	return lp_up(&s->env, "earnings_hold_s = 0\n", &s->pay, &s->plat);
}

static int
sim_down(struct sim *s)
{
	int rc;

	running = NULL;
	rc = lp_down(&s->env, &s->pay, &s->plat);
	lm_free(&s->m);
	free(s->f);
	free(s->acked);
	return rc;
}

static void
sim_spin(struct sim *s)
{
	lp_turn(&s->pay);
	lp_turn(&s->plat);
}

static void
sim_send(struct sim *s, size_t i)
{
	const struct lm_event *e = &s->m.ev[i];

	lp_send(e->platform ? &s->plat : &s->pay, e->type, &e->msg, &s->f[i]);
}

/* Events [from, to) answered: how many are, and remember the acknowledged. */
static size_t
sim_tally(struct sim *s, size_t from, size_t to, size_t *acked)
{
	size_t done = 0;

	*acked = 0;
	for (size_t i = from; i < to; i++) {
		done += s->f[i].done != 0;
		if (lp_acked(&s->f[i])) {
			s->acked[i] = 1;
			(*acked)++;
		}
	}
	return done;
}

/* Send a burst; kill the daemon once `when` of it are acknowledged. */
static void
sim_burst_and_kill(struct sim *s, size_t from, size_t to, size_t when)
{
	int64_t spins = 0;
	size_t acked = 0;

	for (size_t i = from; i < to; i++)
		sim_send(s, i);
	while (sim_tally(s, from, to, &acked) < to - from && acked < when && spins++ < 200000) {
		sim_spin(s);
		usleep(50);
	}
	assert_int_equal(h_signal(&s->env, "ledger", SIGKILL), 0);
	s->kills++;
	for (spins = 0; (ipc_link_up(s->pay.ipc, ROLE_LEDGER) || ipc_link_up(s->plat.ipc,
			    ROLE_LEDGER)) && spins < 5000; spins++) {
		sim_spin(s);
		usleep(1000);
	}
	/* Whatever was in flight now ends without an acknowledgement. */
	sim_tally(s, from, to, &acked);
	for (size_t i = from; i < to; i++)
		if (!s->f[i].done)
			s->f[i] = (struct lp_flight){1, IPC_ERR_CLOSED, 0, 0};
}

static sqlite3 *
sim_books(struct sim *s)
{
	char path[400];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/db/ledger.db", s->env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	return db;
}

/* Every event ever acknowledged has its transfer in ledger.db. */
static void
sim_check_acked(struct sim *s)
{
	sqlite3 *db = sim_books(s);
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM transfers WHERE id = ?1", -1,
			     &st, NULL),
	    SQLITE_OK);
	for (size_t i = 0; i < s->m.nev; i++) {
		int64_t n;

		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, s->m.ev[i].xfer, -1, SQLITE_STATIC);
		n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
		if (s->acked[i] && n != 1)
			fail_msg("seed %" PRIu64 ": event %zu (%s) was acknowledged, then lost",
			    s->seed, i, s->m.ev[i].xfer);
		if (!s->acked[i]) {
			s->unacked++;
			s->committed += n == 1;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Deliver again what was never acknowledged: payments' events first, then platform's. */
static void
sim_redeliver(struct sim *s, size_t to)
{
	size_t acked;

	for (int platform = 0; platform <= 1; platform++) {
		for (size_t i = 0; i < to; i++)
			if (!s->acked[i] && s->m.ev[i].platform == platform)
				sim_send(s, i);
			else if (!s->acked[i])
				s->f[i].done = 1; /* not this phase's: do not wait for it */
		while (sim_tally(s, 0, to, &acked) < to) {
			sim_spin(s);
			usleep(100);
		}
	}
	for (size_t i = 0; i < to; i++)
		if (!s->acked[i])
			fail_msg("seed %" PRIu64 ": event %zu (%s) redelivered: status %d type %u "
				 "code %u",
			    s->seed, i, s->m.ev[i].xfer, s->f[i].status, s->f[i].type, s->f[i].code);
}

/* Nothing lost, nothing twice, every balance the model's, the chain intact. */
static void
sim_check_books(struct sim *s, const char *when)
{
	int64_t rows = lp_db_int(&s->env, "SELECT count(*) FROM transfers", NULL);
	char *out = NULL;

	if (rows != s->m.transfers + s->extra)
		fail_msg("seed %" PRIu64 ", %s: %" PRId64 " transfers, the model %" PRId64, s->seed,
		    when, rows, s->m.transfers + s->extra);
	if (lm_check(&s->m, &s->env) != 0)
		fail_msg("seed %" PRIu64 ", %s: the balances are not the model's", s->seed, when);
	assert_int_equal(lp_db_int(&s->env, "SELECT sum(balance) FROM v_balances", NULL), 0);
	if (lp_tool(&s->env, &out, "verify", NULL) != 0)
		fail_msg("seed %" PRIu64 ", %s: verify:\n%s", s->seed, when, out);
	free(out);
}

/* A payout batch through the tool, against the model's prediction. */
static void
sim_payout(struct sim *s, int round)
{
	static const char *const sellers[LM_SELLERS] = {"seller:s0", "seller:s1", "seller:s2",
	    "seller:s3", "seller:s4"};
	char batch[16], want[96], *out = NULL;
	int64_t total = 0, threshold = 1000000;
	size_t count = 0;

	snprintf(batch, sizeof(batch), "r%d", round);
	for (int k = 0; k < LM_SELLERS; k++) {
		int64_t b = lm_balance(&s->m, sellers[k]);

		if (b < threshold || s->npo == PAYOUT_MAX)
			continue;
		snprintf(s->po[s->npo].id, sizeof(s->po[s->npo].id), "po/%s/%s", batch,
		    sellers[k] + 7);
		s->po[s->npo].seller = sellers[k];
		s->po[s->npo++].amount = b;
		lm_move(&s->m, sellers[k], -b);
		lm_move(&s->m, "payouts:bank", b);
		total += b;
		count++;
	}
	assert_int_equal(lp_tool(&s->env, &out, "payout", "--batch", batch, "--threshold", "1",
			     NULL),
	    0);
	snprintf(want, sizeof(want), "batch %s: %zu payouts, %" PRId64 " µUSD", batch, count, total);
	if (strstr(out, want) == NULL)
		fail_msg("seed %" PRIu64 ": payout: want \"%s\", got:\n%s", s->seed, want, out);
	free(out);
	s->extra += (int64_t)count;
}

static void
sim_reverse(struct sim *s)
{
	struct payout *p;
	char *out = NULL;

	if (s->npo == 0)
		return;
	p = &s->po[lm_range(&s->m, 0, (int64_t)s->npo - 1)];
	assert_int_equal(lp_tool(&s->env, &out, "payout", "--reverse", p->id, NULL), 0);
	free(out);
	if (p->reversed)
		return;
	p->reversed = 1;
	lm_move(&s->m, "payouts:bank", -p->amount);
	lm_move(&s->m, p->seller, p->amount);
	s->extra++;
}

/* One run: kills rounds of up to ops events each. The books as "account=balance;…". */
static char *
sim_run(struct sim *s, int kills, int ops)
{
	char when[48];
	int64_t reserve;

	for (int round = 0; round < kills; round++) {
		size_t from = s->m.nev, settled = s->m.nev, to, when_acked;
		int64_t n = lm_range(&s->m, 1, ops);

		for (int64_t k = 0; k < n && lm_next(&s->m, settled) >= 0; k++)
			;
		to = s->m.nev;
		/* Kill anywhere from before the first acknowledgement to after the last. */
		when_acked = (size_t)lm_range(&s->m, 0, (int64_t)(to - from));
		sim_burst_and_kill(s, from, to, when_acked);
		assert_int_equal(h_start(&s->env, "ledger"), 0);
		assert_int_equal(h_ipc_wait_link(&s->pay, ROLE_LEDGER, 10000), 0);
		assert_int_equal(h_ipc_wait_link(&s->plat, ROLE_LEDGER, 10000), 0);
		sim_check_acked(s);
		sim_redeliver(s, to);
		snprintf(when, sizeof(when), "after kill %d", round + 1);
		sim_check_books(s, when);
		if (lm_range(&s->m, 0, 3) == 0)
			sim_payout(s, round);
		if (lm_range(&s->m, 0, 7) == 0)
			sim_reverse(s);
	}
	/* Quiescence: close everything, no more kills. */
	lm_quiesce(&s->m);
	sim_redeliver(s, s->m.nev);
	sim_check_books(s, "at quiescence");
	assert_int_equal(lp_balance(&s->env, "escrow"), 0);
	reserve = lp_balance(&s->env, "reserve:disputes");
	assert_true(reserve == 0 || reserve == INT64_MIN);
	return lm_books(&s->env);
}

static void
test_sim_kill9(void **state)
{
	uint64_t seed = env_u64("LEDGER_SIM_SEED", (uint64_t)time(NULL) ^ (uint64_t)getpid());
	int kills = (int)env_u64("LEDGER_SIM_KILLS", 20), ops = (int)env_u64("LEDGER_SIM_OPS", 60);
	static struct sim s;
	char *books;

	(void)state;
	if (kills < 20)
		kills = 20;
	fprintf(stderr, "# seed %" PRIu64 " (replay: LEDGER_SIM_SEED=%" PRIu64 "), %d kills\n",
	    seed, seed, kills);
	assert_int_equal(sim_up(&s, seed), 0);
	books = sim_run(&s, kills, ops);
	assert_non_null(books);
	print_message("# seed %" PRIu64 ": %zu events, %zu payouts, %d kills, %" PRId64
		      " transfers, books intact; at the kills %zu events were unacknowledged,"
		      " %zu of them already committed\n",
	    seed, s.m.nev, s.npo, s.kills, s.m.transfers + s.extra, s.unacked, s.committed);
	assert_true(s.kills >= 20);
	free(books);
	assert_int_equal(sim_down(&s), 0);
}

/* One seed, twice: the same events, payouts and balances, whatever the kills caught. */
static void
test_sim_replays(void **state)
{
	uint64_t seed = env_u64("LEDGER_SIM_SEED", (uint64_t)time(NULL) * 31 + 7);
	static struct sim s;
	char *a, *b;

	(void)state;
	assert_int_equal(sim_up(&s, seed), 0);
	a = sim_run(&s, 4, 40);
	assert_int_equal(sim_down(&s), 0);
	assert_int_equal(sim_up(&s, seed), 0);
	b = sim_run(&s, 4, 40);
	assert_int_equal(sim_down(&s), 0);
	assert_non_null(a);
	assert_non_null(b);
	if (strcmp(a, b) != 0)
		fail_msg("seed %" PRIu64 " did not replay:\n%s\n%s", seed, a, b);
	free(a);
	free(b);
}

/* A failed check jumps out of the test: stop its daemon and remove its directory. */
static int
sim_teardown(void **state)
{
	(void)state;
	return running != NULL ? sim_down(running) : 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_sim_kill9, sim_teardown),
	    cmocka_unit_test_teardown(test_sim_replays, sim_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
