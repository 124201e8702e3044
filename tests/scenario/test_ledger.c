/*
 * test_ledger.c — cn2-ledger alone, driven over IPC as payments: pending,
 * post and void with idempotent and conflicting retries; the peer table
 * (platform may not post, the edge may not connect); kill -9 in the middle
 * of a burst of requests, then a restart, and every acknowledged transfer is
 * in ledger.db; finally `cn2-ledger balances`, its output and exit status,
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

#include "tests/scenario/harness.h"

static struct h_env env;
static struct h_ipc pay; /* we, as payments */
static const enum ipc_role to_ledger[] = {ROLE_LEDGER};

static int
group_setup(void **state)
{
	(void)state;
	if (h_init(&env, NULL) != 0 || h_start(&env, "ledger") != 0)
		return -1;
	return h_ipc_open(&env, &pay, ROLE_PAYMENTS, to_ledger, 1);
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	h_ipc_close(&pay);
	down = h_down(&env);
	return down;
}

/* The answer to one request: IPC_ACK, IPC_ERROR (with code and detail), or 0 for none. */
struct answer {
	uint16_t type;
	uint16_t code;
	char detail[256];
};

static struct answer
call(struct h_ipc *h, uint16_t type, const void *msg)
{
	struct h_reply r[2];
	struct answer a;
	size_t n = h_ipc_call(h, ROLE_LEDGER, type, msg, r, 2, 5000);

	memset(&a, 0, sizeof(a));
	if (n == 1 && r[0].status == 0) {
		a.type = r[0].type;
		if (a.type == IPC_ERROR) {
			a.code = r[0].msg.error.code;
			snprintf(a.detail, sizeof(a.detail), "%s", r[0].msg.error.detail);
		}
	} else if (n == 1)
		a.code = (uint16_t)r[0].status;
	h_replies_free(r, n);
	return a;
}

static struct answer
pending(const char *id, const char *ref, const char *method, int64_t amount)
{
	struct ipc_ledger_pending m;

	memset(&m, 0, sizeof(m));
	snprintf(m.xfer_id, sizeof(m.xfer_id), "%s", id);
	snprintf(m.payment_ref, sizeof(m.payment_ref), "%s", ref);
	snprintf(m.pay_method, sizeof(m.pay_method), "%s", method);
	m.amount = amount;
	return call(&pay, IPC_LEDGER_PENDING, &m);
}

static struct answer
post(const char *id, const char *seller, int64_t seller_amount)
{
	struct ipc_ledger_post m;

	memset(&m, 0, sizeof(m));
	snprintf(m.xfer_id, sizeof(m.xfer_id), "%s", id);
	snprintf(m.seller_id, sizeof(m.seller_id), "%s", seller);
	m.seller_amount = seller_amount;
	return call(&pay, IPC_LEDGER_POST, &m);
}

static struct answer
avoid(const char *id)
{
	struct ipc_ledger_void m;

	memset(&m, 0, sizeof(m));
	snprintf(m.xfer_id, sizeof(m.xfer_id), "%s", id);
	return call(&pay, IPC_LEDGER_VOID, &m);
}

static void
want_ack(struct answer a, const char *what)
{
	if (a.type != IPC_ACK)
		fail_msg("%s: want ACK, got type %u code %u \"%s\"", what, a.type, a.code, a.detail);
}

static void
want_refused(struct answer a, const char *what, const char *detail)
{
	if (a.type != IPC_ERROR || a.code != IPC_ERR_REFUSED)
		fail_msg("%s: want ERROR refused, got type %u code %u", what, a.type, a.code);
	if (strstr(a.detail, detail) == NULL)
		fail_msg("%s: detail \"%s\" lacks \"%s\"", what, a.detail, detail);
}

/* An integer from ledger.db, read as an auditor would, beside the running daemon. */
static int64_t
db_int(const char *sql, const char *arg)
{
	char path[400];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = INT64_MIN;

	snprintf(path, sizeof(path), "%s/db/ledger.db", env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int64_t
balance(const char *account)
{
	return db_int("SELECT balance FROM v_balances WHERE account = ?1", account);
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
	assert_int_equal(balance("escrow"), 1100000);

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

	assert_int_equal(balance("seller:sellerA"), 1000000);
	assert_int_equal(balance("platform:fees"), 100000);
	assert_int_equal(balance("escrow"), 0);
	assert_int_equal(balance("clearing:tempo"), 0);
	assert_int_equal(db_int("SELECT count(*) FROM transfers", NULL), 4);
}

/* Only payments may post; the edge may not even connect. */
static void
test_peer_table(void **state)
{
	struct h_ipc platform, edge;
	struct answer a;
	struct ipc_ledger_post m;

	(void)state;
	memset(&m, 0, sizeof(m));
	snprintf(m.xfer_id, sizeof(m.xfer_id), "t1");
	snprintf(m.seller_id, sizeof(m.seller_id), "sellerP");
	m.seller_amount = 1;
	assert_int_equal(h_ipc_open(&env, &platform, ROLE_PLATFORM, to_ledger, 1), 0);
	a = call(&platform, IPC_LEDGER_POST, &m);
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

struct flight {
	int done;
	int status;
	uint16_t type;
};

static void
on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct flight *f = arg;

	(void)msg;
	f->done = 1;
	f->status = status;
	f->type = type;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
acked(const struct flight *f)
{
	return f->done && f->status == 0 && f->type == IPC_ACK;
}

static size_t
count(const struct flight *f, int only_acked)
{
	size_t n = 0;

	for (size_t i = 0; i < NBURST; i++)
		n += only_acked ? acked(&f[i]) : f[i].done;
	return n;
}

static void
burst_msg(size_t i, struct ipc_ledger_pending *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->xfer_id, sizeof(m->xfer_id), "k%04zu", i);
	snprintf(m->payment_ref, sizeof(m->payment_ref), "chal-k%04zu", i);
	snprintf(m->pay_method, sizeof(m->pay_method), "test");
	m->amount = 1000 + (int64_t)i;
}

/*
 * Keep requests streaming in, a few per turn of our loop, and kill -9 the
 * ledger once KILL_AFTER are acknowledged: some are then in its queue, some
 * in a batch being committed, some not yet sent. Requests that cannot be
 * sent (the link is down) count as answered without an ACK.
 */
static void
stream_and_kill(struct flight *f)
{
	struct ipc_ledger_pending m;
	size_t sent = 0;
	int killed = 0;
	int64_t end = now_ms() + 20000;

	while (count(f, 0) < NBURST && now_ms() < end) {
		for (int k = 0; k < 8 && sent < NBURST; k++, sent++) {
			burst_msg(sent, &m);
			if (ipc_request(pay.ipc, ROLE_LEDGER, IPC_LEDGER_PENDING, &m, 20000, on_reply,
				&f[sent]) == 0)
				f[sent] = (struct flight){1, IPC_ERR_UNAVAILABLE, 0};
		}
		uv_run(&pay.loop, UV_RUN_NOWAIT);
		if (!killed && count(f, 1) >= KILL_AFTER) {
			assert_int_equal(h_signal(&env, "ledger", SIGKILL), 0);
			killed = 1;
		}
	}
	assert_true(killed);
	assert_int_equal(count(f, 0), NBURST);
	/* Let our side see the old connection gone before the restart. */
	while (ipc_link_up(pay.ipc, ROLE_LEDGER) && now_ms() < end) {
		uv_run(&pay.loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_false(ipc_link_up(pay.ipc, ROLE_LEDGER));
}

/* Spin until the first n requests are answered; each must be an ACK. */
static void
wait_all(const struct flight *f, size_t n)
{
	int64_t end = now_ms() + 30000;
	size_t done;

	do {
		uv_run(&pay.loop, UV_RUN_NOWAIT);
		done = 0;
		for (size_t i = 0; i < n; i++)
			done += f[i].done;
	} while (done < n && now_ms() < end && usleep(200) == 0);
	for (size_t i = 0; i < n; i++)
		if (!acked(&f[i]))
			fail_msg("request %zu: want ACK, got status %d type %u", i, f[i].status,
			    f[i].type);
}

static void
test_kill9_keeps_acked(void **state)
{
	static struct flight f[NBURST];
	struct ipc_ledger_pending m;
	size_t nacked = 0;

	(void)state;
	assert_int_equal(h_ipc_wait_link(&pay, ROLE_LEDGER, 5000), 0);
	stream_and_kill(f);
	assert_int_equal(h_start(&env, "ledger"), 0);
	for (size_t i = 0; i < NBURST; i++) {
		char id[16];

		snprintf(id, sizeof(id), "k%04zu", i);
		if (!acked(&f[i]))
			continue;
		nacked++;
		if (db_int("SELECT amount FROM transfers WHERE id = ?1 AND kind = 'pending'", id) !=
		    1000 + (int64_t)i)
			fail_msg("%s was acknowledged but is not in ledger.db", id);
	}
	print_message("# %zu of %d acknowledged before kill -9, %" PRId64 " recorded\n", nacked,
	    NBURST, db_int("SELECT count(*) FROM transfers WHERE id GLOB 'k*'", NULL));
	assert_true(nacked >= KILL_AFTER && nacked < NBURST);
	/* Payments retries everything it has no answer for: all of it is recorded, once. */
	assert_int_equal(h_ipc_wait_link(&pay, ROLE_LEDGER, 5000), 0);
	memset(f, 0, sizeof(f));
	for (size_t i = 0; i < NBURST; i++) {
		burst_msg(i, &m);
		assert_true(ipc_request(pay.ipc, ROLE_LEDGER, IPC_LEDGER_PENDING, &m, 20000, on_reply,
				&f[i]) != 0);
	}
	wait_all(f, NBURST);
	assert_int_equal(db_int("SELECT count(*) FROM transfers WHERE id GLOB 'k*'", NULL), NBURST);
	assert_int_equal(balance("escrow"), NBURST * 1000 + NBURST * (NBURST - 1) / 2);
}

/* Settle the burst, then the auditor's tool must agree with the view and with us. */

static char *
run_balances(int *status)
{
	char cmd[900], *buf = NULL;
	size_t len = 0, n;
	char chunk[4096];
	FILE *p, *out = open_memstream(&buf, &len);

	assert_non_null(out);
	snprintf(cmd, sizeof(cmd), "'%s/cn2-ledger' balances -f '%s/etc/ledger.conf' 2>/dev/null",
	    env.bindir, env.dir);
	assert_non_null(p = popen(cmd, "r"));
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		fwrite(chunk, 1, n, out);
	*status = pclose(p);
	fclose(out);
	return buf;
}

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
	static struct flight f[NBURST];
	int64_t sellers[3] = {0, 0, 0}, fees = 100000;
	char seller[32], usd[40], *text;
	int status;

	(void)state;
	/* Settle the burst, pipelined: three in four posted among three sellers, the rest voided. */
	memset(f, 0, sizeof(f));
	for (size_t i = 0; i < NBURST; i++) {
		struct ipc_ledger_post p;
		struct ipc_ledger_void v;

		memset(&p, 0, sizeof(p));
		memset(&v, 0, sizeof(v));
		snprintf(p.xfer_id, sizeof(p.xfer_id), "k%04zu", i);
		snprintf(v.xfer_id, sizeof(v.xfer_id), "k%04zu", i);
		snprintf(p.seller_id, sizeof(p.seller_id), "seller%zu", i % 3);
		p.seller_amount = 900 + (int64_t)i;
		if (i % 4 == 3)
			assert_true(ipc_request(pay.ipc, ROLE_LEDGER, IPC_LEDGER_VOID, &v, 20000,
					on_reply, &f[i]) != 0);
		else {
			assert_true(ipc_request(pay.ipc, ROLE_LEDGER, IPC_LEDGER_POST, &p, 20000,
					on_reply, &f[i]) != 0);
			sellers[i % 3] += p.seller_amount;
			fees += 100;
		}
	}
	wait_all(f, NBURST);
	assert_group_commit();
	text = run_balances(&status);
	assert_non_null(text);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("cn2-ledger balances exited %d:\n%s", status, text);
	assert_non_null(strstr(text, "account "));
	for (int k = 0; k < 3; k++) {
		snprintf(seller, sizeof(seller), "seller:seller%d", k);
		assert_int_equal(tool_balance(text, seller), sellers[k]);
		assert_int_equal(balance(seller), sellers[k]);
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
		assert_int_equal((int64_t)lines, db_int("SELECT count(*) FROM v_balances", NULL) + 2);
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
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_phase),
	    cmocka_unit_test(test_peer_table),
	    cmocka_unit_test(test_kill9_keeps_acked),
	    cmocka_unit_test(test_balances_tool),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
