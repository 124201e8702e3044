/*
 * test_ledger.c — cn2-ledger alone, driven over IPC as payments: pending,
 * post (plain and with the premium part) and void with idempotent and
 * conflicting retries; as platform-api: disputes opened, read and resolved,
 * and a seller's earnings; the peer table (platform may not post, payments
 * may not dispute, the edge may not connect); kill -9 in the middle of a
 * burst of requests, then a restart, and every acknowledged transfer is in
 * ledger.db; finally `cn2-ledger balances`, its output and exit status,
 * against the v_balances view and what the test posted.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/scenario/ledger_peer.h"

static struct h_env env;
static struct h_ipc pay;  /* we, as payments */
static struct h_ipc plat; /* we, as platform-api */
static const enum ipc_role to_ledger[] = {ROLE_LEDGER};

/* No hold: every capture is available at once. */
static int
group_setup(void **state)
{
	(void)state;
	return lp_up(&env, "earnings_hold_s = 0\n", &pay, &plat);
}

static int
group_teardown(void **state)
{
	(void)state;
	return lp_down(&env, &pay, &plat);
}

static struct lp_answer
pending(const char *id, const char *ref, const char *method, int64_t amount)
{
	struct ipc_ledger_pending m;

	lp_pending_msg(&m, id, ref, method, amount);
	return lp_call(&pay, IPC_LEDGER_PENDING, &m);
}

static struct lp_answer
post(const char *id, const char *seller, int64_t seller_amount)
{
	struct ipc_ledger_post m;

	memset(&m, 0, sizeof(m));
	snprintf(m.xfer_id, sizeof(m.xfer_id), "%s", id);
	snprintf(m.seller_id, sizeof(m.seller_id), "%s", seller);
	m.seller_amount = seller_amount;
	return lp_call(&pay, IPC_LEDGER_POST, &m);
}

static struct lp_answer
avoid(const char *id)
{
	struct ipc_ledger_void m;

	lp_void_msg(&m, id);
	return lp_call(&pay, IPC_LEDGER_VOID, &m);
}

static void
want_ack(struct lp_answer a, const char *what)
{
	if (a.type != IPC_ACK)
		fail_msg("%s: want ACK, got type %u code %u \"%s\"", what, a.type, a.code, a.detail);
}

static void
want_refused(struct lp_answer a, const char *what, const char *detail)
{
	if (a.type != IPC_ERROR || a.code != IPC_ERR_REFUSED)
		fail_msg("%s: want ERROR refused, got type %u code %u", what, a.type, a.code);
	if (strstr(a.detail, detail) == NULL)
		fail_msg("%s: detail \"%s\" lacks \"%s\"", what, a.detail, detail);
}

static void
test_two_phase(void **state)
{
	(void)state;
	want_ack(pending("t1", "chal1", "test", 1100000), "pending t1");
	want_ack(pending("t1", "chal1", "test", 1100000), "pending t1 again");
	want_refused(pending("t1", "chal1", "test", 1100001), "pending t1, another amount",
	    "conflicts");
	want_refused(pending("t1", "chal1", "tempo", 1100000), "pending t1, another method",
	    "conflicts");
	assert_true(h_log_contains(&env, "pending t1 conflicts with the transfer recorded"));
	assert_int_equal(lp_balance(&env, "escrow"), 1100000);

	want_ack(post("t1", "sellerA", 1000000), "post t1");
	want_ack(post("t1", "sellerA", 1000000), "post t1 again");
	want_refused(post("t1", "sellerB", 1000000), "post t1, another seller", "conflicts");
	want_refused(post("t1", "sellerA", 999999), "post t1, another amount", "conflicts");
	want_refused(avoid("t1"), "void of posted t1", "was posted");
	want_refused(post("nope", "sellerA", 1), "post of unknown", "no pending transfer");
	want_refused(avoid("nope"), "void of unknown", "no pending transfer");

	want_ack(pending("t2", "chal2", "tempo", 5000), "pending t2");
	want_refused(post("t2", "sellerA", 5001), "post t2 over its amount", "exceeds");
	want_ack(avoid("t2"), "void t2");
	want_ack(avoid("t2"), "void t2 again");
	want_refused(post("t2", "sellerA", 10), "post of voided t2", "was voided");
	want_refused(pending("t 3", "chal3", "test", 1), "pending with a blank", "invalid xfer_id");

	assert_int_equal(lp_balance(&env, "seller:sellerA"), 1000000);
	assert_int_equal(lp_balance(&env, "platform:fees"), 100000);
	assert_int_equal(lp_balance(&env, "escrow"), 0);
	assert_int_equal(lp_balance(&env, "clearing:tempo"), 0);
	assert_int_equal(lp_db_int(&env, "SELECT count(*) FROM transfers", NULL), 4);
}

/* Only payments may post; the edge may not even connect. */
static void
test_peer_table(void **state)
{
	struct h_ipc platform, edge;
	struct lp_answer a;
	struct ipc_ledger_post m;

	(void)state;
	memset(&m, 0, sizeof(m));
	snprintf(m.xfer_id, sizeof(m.xfer_id), "t1");
	snprintf(m.seller_id, sizeof(m.seller_id), "sellerP");
	m.seller_amount = 1;
	assert_int_equal(h_ipc_open(&env, &platform, ROLE_PLATFORM, to_ledger, 1), 0);
	a = lp_call(&platform, IPC_LEDGER_POST, &m);
	assert_int_equal(a.type, 0);
	assert_int_equal(a.code, IPC_ERR_CLOSED);
	h_ipc_close(&platform);
	assert_true(h_log_contains(&env, "LEDGER_POST, which its peer rule does not allow"));

	assert_int_equal(h_ipc_open(&env, &edge, ROLE_EDGE, to_ledger, 1), 0);
	assert_int_equal(h_ipc_wait_link(&edge, ROLE_LEDGER, 1000), -1);
	h_ipc_close(&edge);
	/* And payments is still served. */
	want_ack(avoid("t2"), "void t2 after the refused peers");
}

/* A burst of requests, kill -9 half way, restart: every ACK is in the books. */

#define NBURST 3000
#define KILL_AFTER 300 /* acknowledged requests */

static size_t
count(const struct lp_flight *f, int only_acked)
{
	size_t n = 0;

	for (size_t i = 0; i < NBURST; i++)
		n += only_acked ? lp_acked(&f[i]) : f[i].done;
	return n;
}

static void
burst_msg(size_t i, struct ipc_ledger_pending *m)
{
	char id[16], ref[16];

	snprintf(id, sizeof(id), "k%04zu", i);
	snprintf(ref, sizeof(ref), "chal-k%04zu", i);
	lp_pending_msg(m, id, ref, "test", 1000 + (int64_t)i);
}

/*
 * Keep requests streaming in, a few per turn of our loop, and kill -9 the
 * ledger once KILL_AFTER are acknowledged: some are then in its queue, some
 * in a batch being committed, some not yet sent. Requests that cannot be
 * sent (the link is down) count as answered without an ACK.
 */
static void
stream_and_kill(struct lp_flight *f)
{
	struct ipc_ledger_pending m;
	size_t sent = 0;
	int killed = 0, spins = 0;

	while (count(f, 0) < NBURST && spins++ < 200000) {
		for (int k = 0; k < 8 && sent < NBURST; k++, sent++) {
			burst_msg(sent, &m);
			lp_send(&pay, IPC_LEDGER_PENDING, &m, &f[sent]);
		}
		lp_turn(&pay);
		if (!killed && count(f, 1) >= KILL_AFTER) {
			assert_int_equal(h_signal(&env, "ledger", SIGKILL), 0);
			killed = 1;
		}
		if (sent == NBURST)
			usleep(100);
	}
	assert_true(killed);
	assert_int_equal(count(f, 0), NBURST);
	/* Let our side see the old connection gone before the restart. */
	for (spins = 0; ipc_link_up(pay.ipc, ROLE_LEDGER) && spins < 20000; spins++) {
		lp_turn(&pay);
		usleep(1000);
	}
	assert_false(ipc_link_up(pay.ipc, ROLE_LEDGER));
}

/* Wait until the first n requests are answered; each must be a success. */
static void
wait_all(const struct lp_flight *f, size_t n)
{
	lp_wait(&pay, f, n, 30000);
	for (size_t i = 0; i < n; i++)
		if (!lp_acked(&f[i]))
			fail_msg("request %zu: want ACK, got status %d type %u", i, f[i].status,
			    f[i].type);
}

static void
test_kill9_keeps_acked(void **state)
{
	static struct lp_flight f[NBURST];
	struct ipc_ledger_pending m;
	size_t nacked = 0;

	(void)state;
	assert_int_equal(h_ipc_wait_link(&pay, ROLE_LEDGER, 5000), 0);
	/* Our platform-api side would only notice the kill when it next runs: reconnect it after. */
	h_ipc_close(&plat);
	stream_and_kill(f);
	assert_int_equal(h_start(&env, "ledger"), 0);
	assert_int_equal(h_ipc_open(&env, &plat, ROLE_PLATFORM, to_ledger, 1), 0);
	assert_int_equal(h_ipc_wait_link(&plat, ROLE_LEDGER, 10000), 0);
	for (size_t i = 0; i < NBURST; i++) {
		char id[16];

		snprintf(id, sizeof(id), "k%04zu", i);
		if (!lp_acked(&f[i]))
			continue;
		nacked++;
		if (lp_db_int(&env, "SELECT amount FROM transfers WHERE id = ?1 AND kind = 'pending'",
			id) != 1000 + (int64_t)i)
			fail_msg("%s was acknowledged but is not in ledger.db", id);
	}
	print_message("# %zu of %d acknowledged before kill -9, %" PRId64 " recorded\n", nacked,
	    NBURST, lp_db_int(&env, "SELECT count(*) FROM transfers WHERE id GLOB 'k*'", NULL));
	assert_true(nacked >= KILL_AFTER && nacked < NBURST);
	/* Payments retries everything it has no answer for: all of it is recorded, once. */
	assert_int_equal(h_ipc_wait_link(&pay, ROLE_LEDGER, 5000), 0);
	for (size_t i = 0; i < NBURST; i++) {
		burst_msg(i, &m);
		assert_int_equal(lp_send(&pay, IPC_LEDGER_PENDING, &m, &f[i]), 0);
	}
	wait_all(f, NBURST);
	assert_int_equal(lp_db_int(&env, "SELECT count(*) FROM transfers WHERE id GLOB 'k*'", NULL),
	    NBURST);
	assert_int_equal(lp_balance(&env, "escrow"), NBURST * 1000 + NBURST * (NBURST - 1) / 2);
}

/* Settle the burst, then the auditor's tool must agree with the view and with us. */

/* The µUSD column of the line for account in the tool's output. */
static int64_t
tool_balance(const char *text, const char *account)
{
	const char *line = text;
	size_t len = strlen(account);

	while (line != NULL && *line != '\0') {
		if (strncmp(line, account, len) == 0 && line[len] == ' ')
			return strtoll(line + len, NULL, 10);
		line = strchr(line, '\n');
		line = line != NULL ? line + 1 : NULL;
	}
	return INT64_MIN;
}

/* The pipelined requests shared commits: health reports fewer commits than writes. */
static void
assert_group_commit(void)
{
	struct h_reply r[2];
	unsigned long long writes = 0, commits = 0;
	size_t n = h_ipc_call(&pay, ROLE_LEDGER, IPC_HEALTH, NULL, r, 2, 5000);

	assert_int_equal(n, 1);
	assert_int_equal(r[0].type, IPC_HEALTH_REP);
	assert_int_equal(r[0].msg.health_rep.ready, 1);
	assert_int_equal(sscanf(r[0].msg.health_rep.detail, "ok: %llu writes in %llu commits",
			     &writes, &commits),
	    2);
	print_message("# %s\n", r[0].msg.health_rep.detail);
	h_replies_free(r, n);
	assert_true(writes >= NBURST && commits < writes / 4);
}

static void
test_balances_tool(void **state)
{
	static struct lp_flight f[NBURST];
	int64_t sellers[3] = {0, 0, 0}, fees = 100000;
	char seller[32], usd[40], *text;
	int status;

	(void)state;
	/* Settle the burst, pipelined: three in four posted among three sellers, the rest voided. */
	memset(f, 0, sizeof(f));
	for (size_t i = 0; i < NBURST; i++) {
		struct ipc_ledger_post_split p;
		struct ipc_ledger_void v;
		char id[16];

		snprintf(id, sizeof(id), "k%04zu", i);
		snprintf(seller, sizeof(seller), "seller%zu", i % 3);
		lp_post_msg(&p, id, seller, 900 + (int64_t)i, 0);
		lp_void_msg(&v, id);
		if (i % 4 == 3)
			assert_int_equal(lp_send(&pay, IPC_LEDGER_VOID, &v, &f[i]), 0);
		else {
			assert_int_equal(lp_send(&pay, IPC_LEDGER_POST_SPLIT, &p, &f[i]), 0);
			sellers[i % 3] += p.seller_amount;
			fees += 100;
		}
	}
	wait_all(f, NBURST);
	assert_group_commit();
	status = lp_tool(&env, &text, "balances", NULL);
	assert_non_null(text);
	if (status != 0)
		fail_msg("cn2-ledger balances exited %d:\n%s", status, text);
	assert_non_null(strstr(text, "account "));
	for (int k = 0; k < 3; k++) {
		snprintf(seller, sizeof(seller), "seller:seller%d", k);
		assert_int_equal(tool_balance(text, seller), sellers[k]);
		assert_int_equal(lp_balance(&env, seller), sellers[k]);
	}
	assert_int_equal(tool_balance(text, "seller:sellerA"), 1000000);
	assert_int_equal(tool_balance(text, "platform:fees"), fees);
	assert_int_equal(tool_balance(text, "escrow"), 0);
	assert_int_equal(tool_balance(text, "total"), 0);
	snprintf(usd, sizeof(usd), " %" PRId64 ".%06" PRId64 "\n", fees / 1000000, fees % 1000000);
	assert_non_null(strstr(text, usd));
	/* One line per account of the view, plus the header and the total. */
	{
		size_t lines = 0;

		for (const char *c = text; *c != '\0'; c++)
			lines += *c == '\n';
		assert_int_equal((int64_t)lines, lp_db_int(&env, "SELECT count(*) FROM v_balances", NULL) + 2);
	}
	free(text);
	/* A configuration naming no ledger: exit 2, not a silent zero. */
	{
		char cmd[900];

		snprintf(cmd, sizeof(cmd), "'%s/cn2-ledger' balances -f /nonexistent.conf 2>/dev/null",
		    env.bindir);
		status = system(cmd);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	}
	/* And verify agrees: the chain is intact and every balance adds up. */
	status = lp_tool(&env, &text, "verify", NULL);
	if (status != 0)
		fail_msg("cn2-ledger verify exited %d:\n%s", status, text);
	assert_non_null(strstr(text, "ok: transfers 1.."));
	free(text);
}

/* platform-api's messages, and a capture with the premium surcharge from payments. */
static void
test_platform_messages(void **state)
{
	struct ipc_ledger_post_split ps;
	struct ipc_earnings e;
	struct ipc_dispute_open o;
	struct ipc_dispute_resolve r;
	struct ipc_dispute_get g;
	struct lp_answer a;
	struct h_ipc other;

	(void)state;
	want_ack(pending("s1", "chal-s1", "test", 1375), "pending s1");
	lp_post_msg(&ps, "s1", "sellerP", 1000, 275);
	want_ack(lp_call(&pay, IPC_LEDGER_POST_SPLIT, &ps), "post s1 with premium");
	want_ack(lp_call(&pay, IPC_LEDGER_POST_SPLIT, &ps), "post s1 with premium again");
	ps.premium_amount = 274;
	want_refused(lp_call(&pay, IPC_LEDGER_POST_SPLIT, &ps), "post s1, another premium",
	    "conflicts");
	assert_int_equal(lp_balance(&env, "platform:premium"), 275);

	memset(&e, 0, sizeof(e));
	snprintf(e.seller_id, sizeof(e.seller_id), "sellerP");
	a = lp_call(&plat, IPC_EARNINGS, &e);
	assert_int_equal(a.type, IPC_EARNINGS_REP);
	assert_int_equal(a.msg.earnings_rep.available, 1000);
	assert_int_equal(a.msg.earnings_rep.earned, 1000);
	assert_int_equal(a.msg.earnings_rep.pending, 0);

	lp_open_msg(&o, "dsp_s1", "chal-s1");
	a = lp_call(&plat, IPC_DISPUTE_OPEN, &o);
	assert_int_equal(a.type, IPC_DISPUTE_REP);
	assert_int_equal(a.msg.dispute_rep.amount, 1375);
	assert_int_equal(a.msg.dispute_rep.seller_amount, 1000);
	assert_int_equal(a.msg.dispute_rep.state, DISPUTE_OPEN);
	assert_string_equal(a.msg.dispute_rep.seller_id, "sellerP");
	a = lp_call(&plat, IPC_EARNINGS, &e);
	assert_int_equal(a.msg.earnings_rep.available, 0);
	assert_int_equal(a.msg.earnings_rep.in_dispute, 1000);
	memset(&g, 0, sizeof(g));
	snprintf(g.dispute_id, sizeof(g.dispute_id), "dsp_s1");
	a = lp_call(&plat, IPC_DISPUTE_GET, &g);
	assert_int_equal(a.type, IPC_DISPUTE_REP);
	assert_string_equal(a.msg.dispute_rep.payment_ref, "chal-s1");
	snprintf(g.dispute_id, sizeof(g.dispute_id), "dsp_none");
	want_refused(lp_call(&plat, IPC_DISPUTE_GET, &g), "get an unknown dispute", "no dispute");

	lp_resolve_msg(&r, "dsp_s1", DISPUTE_FOR_BUYER);
	a = lp_call(&plat, IPC_DISPUTE_RESOLVE, &r);
	assert_int_equal(a.type, IPC_DISPUTE_REP);
	assert_int_equal(a.msg.dispute_rep.state, DISPUTE_REFUNDED);
	lp_resolve_msg(&r, "dsp_s1", DISPUTE_FOR_SELLER);
	want_refused(lp_call(&plat, IPC_DISPUTE_RESOLVE, &r), "resolve the other way", "conflicts");
	assert_int_equal(lp_balance(&env, "reserve:disputes"), 0);
	assert_int_equal(lp_balance(&env, "platform:refunds"), -375);

	/* Payments may not open a dispute: its connection is closed. */
	assert_int_equal(h_ipc_open(&env, &other, ROLE_PAYMENTS, to_ledger, 1), 0);
	lp_open_msg(&o, "dsp_s2", "chal-s1");
	a = lp_call(&other, IPC_DISPUTE_OPEN, &o);
	assert_int_equal(a.type, 0);
	assert_int_equal(a.code, IPC_ERR_CLOSED);
	h_ipc_close(&other);
	assert_true(h_log_contains(&env, "DISPUTE_OPEN, which its peer rule does not allow"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_phase),
	    cmocka_unit_test(test_peer_table),
	    cmocka_unit_test(test_kill9_keeps_acked),
	    cmocka_unit_test(test_balances_tool),
	    cmocka_unit_test(test_platform_messages),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
