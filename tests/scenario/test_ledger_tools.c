/*
 * test_ledger_tools.c — the auditor's and operator's `cn2-ledger` tools on
 * books the running daemon wrote: verify (and its anchors from head),
 * export to CSV, payout batches and their reversal, the retention sweep's
 * refusals; the sqlite3 command line failing to UPDATE or DELETE a posted
 * transfer; and, last, one byte of one stored row flipped in the file, which
 * verify must name by its sequence number.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/scenario/ledger_peer.h"

#define NPAY 40

static struct h_env env;
static struct h_ipc pay, plat;

static void
must(struct lp_answer a, uint16_t type, const char *what)
{
	if (a.type != type)
		fail_msg("%s: got type %u code %u \"%s\"", what, a.type, a.code, a.detail);
}

/* NPAY payments: most captured among three sellers, every fifth voided, one disputed. */
static int
books_write(void)
{
	struct ipc_ledger_pending p;
	struct ipc_ledger_post_split s;
	struct ipc_ledger_void v;
	struct ipc_dispute_open o;
	char id[24], ref[32], seller[32];

	for (int i = 0; i < NPAY; i++) {
		snprintf(id, sizeof(id), "t%03d", i);
		snprintf(ref, sizeof(ref), "ref-t%03d", i);
		snprintf(seller, sizeof(seller), "seller%d", i % 3);
		lp_pending_msg(&p, id, ref, i % 2 ? "test" : "tempo", 2000003 + 7919 * i);
		must(lp_call(&pay, IPC_LEDGER_PENDING, &p), IPC_ACK, "pending");
		lp_post_msg(&s, id, seller, 1800000 + 7000 * i, 0);
		lp_void_msg(&v, id);
		if (i % 5 == 4)
			must(lp_call(&pay, IPC_LEDGER_VOID, &v), IPC_ACK, "void");
		else
			must(lp_call(&pay, IPC_LEDGER_POST_SPLIT, &s), IPC_ACK, "post");
	}
	lp_open_msg(&o, "dsp_t1", "ref-t001");
	must(lp_call(&plat, IPC_DISPUTE_OPEN, &o), IPC_DISPUTE_REP, "dispute");
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	return lp_up(&env, "earnings_hold_s = 0\n", &pay, &plat) == 0 ? books_write() : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	return lp_down(&env, &pay, &plat);
}

static char *
tool_ok(int want, const char *tool, const char *a1, const char *a2, const char *a3,
    const char *a4)
{
	char *out = NULL;
	int rc = lp_tool(&env, &out, tool, a1, a2, a3, a4, NULL);

	if (rc != want)
		fail_msg("cn2-ledger %s %s: exit %d, want %d:\n%s", tool, a1 != NULL ? a1 : "", rc,
		    want, out != NULL ? out : "");
	assert_non_null(out);
	return out;
}

static void
test_verify_head_anchor(void **state)
{
	char *out, anchor[128], bad[128];
	const char *a;
	int64_t n = lp_db_int(&env, "SELECT count(*) FROM transfers", NULL);

	(void)state;
	out = tool_ok(0, "verify", NULL, NULL, NULL, NULL);
	assert_non_null(strstr(out, "ok: transfers 1.."));
	assert_non_null(strstr(out, " accounts recomputed from the legs"));
	free(out);
	out = tool_ok(0, "head", NULL, NULL, NULL, NULL);
	assert_non_null(a = strstr(out, "\"anchor\":\""));
	snprintf(anchor, sizeof(anchor), "%.*s", (int)strcspn(a + 10, "\""), a + 10);
	assert_int_equal(strtoll(anchor, NULL, 10), n);
	free(out);
	out = tool_ok(0, "verify", "--anchor", anchor, NULL, NULL);
	free(out);
	/* The same sequence number, another hash: broken there. */
	snprintf(bad, sizeof(bad), "%s", anchor);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
	out = tool_ok(1, "verify", "--anchor", bad, NULL, NULL);
	assert_non_null(strstr(out, "first broken sequence number: "));
	free(out);
	out = tool_ok(2, "verify", "--anchor", "12:zz", NULL, NULL);
	free(out);
}

static void
test_export(void **state)
{
	char path[400], line[2048];
	int64_t rows = 0;
	FILE *fp;
	char *out;

	(void)state;
	snprintf(path, sizeof(path), "%s/export.csv", env.dir);
	out = tool_ok(0, "export", "--from", "2020-01-01", "-o", path);
	free(out);
	assert_non_null(fp = fopen(path, "r"));
	assert_non_null(fgets(line, sizeof(line), fp));
	assert_non_null(strstr(line, "seq,id,kind,"));
	while (fgets(line, sizeof(line), fp) != NULL)
		rows++;
	fclose(fp);
	assert_int_equal(rows, lp_db_int(&env, "SELECT count(*) FROM transfers", NULL));
	/* A window in the past holds nothing but the header. */
	out = tool_ok(0, "export", "--from", "2020-01-01", "--to", "2020-01-02T00:00:00Z");
	assert_string_equal(out, "seq,id,kind,pending_id,payment_ref,debit,credit,amount,legs,"
				 "created_ms,created,link,link_len,prev_hash,hash\r\n");
	free(out);
	out = tool_ok(2, "export", "--from", "yesterday", NULL, NULL);
	free(out);
}

static void
test_payout(void **state)
{
	int64_t s0 = lp_balance(&env, "seller:seller0"), s2 = lp_balance(&env, "seller:seller2");
	char *out;

	(void)state;
	/* Dry run: shown, not recorded. */
	out = tool_ok(0, "payout", "--batch", "b1", "--dry-run", NULL);
	assert_non_null(strstr(out, "not recorded (dry run)"));
	free(out);
	assert_int_equal(lp_db_int(&env, "SELECT count(*) FROM transfers WHERE kind = 'payout'", NULL),
	    0);
	out = tool_ok(0, "payout", "--batch", "b1", "--threshold", "1.5");
	assert_non_null(strstr(out, "batch b1: 3 payouts"));
	free(out);
	assert_int_equal(lp_balance(&env, "seller:seller0"), 0);
	assert_int_equal(lp_balance(&env, "payouts:bank"), s0 + s2 +
	    lp_db_int(&env, "SELECT amount FROM transfers WHERE id = 'po/b1/seller1'", NULL));
	/* Again: recorded before, nothing new. */
	out = tool_ok(0, "payout", "--batch", "b1", "--threshold", "0.000001");
	assert_non_null(strstr(out, "recorded before"));
	free(out);
	out = tool_ok(1, "payout", "--batch", "b1", "--method", "card");
	free(out);
	out = tool_ok(0, "payout", "--reverse", "po/b1/seller2", NULL, NULL);
	assert_int_equal(lp_balance(&env, "seller:seller2"), s2);
	free(out);
	out = tool_ok(0, "payout", "--reverse", "po/b1/seller2", NULL, NULL);
	assert_non_null(strstr(out, "reversed before"));
	free(out);
	out = tool_ok(1, "payout", "--reverse", "po/b1/nobody", NULL, NULL);
	free(out);
	out = tool_ok(0, "verify", NULL, NULL, NULL, NULL);
	free(out);
}

static void
test_prune_refuses_young(void **state)
{
	char path[400], *out;
	int64_t n = lp_db_int(&env, "SELECT count(*) FROM transfers", NULL);

	(void)state;
	snprintf(path, sizeof(path), "%s/archive.csv", env.dir);
	out = tool_ok(2, "prune", "--archive", path, "--before", "2021-01-01");
	free(out);
	remove(path);
	out = tool_ok(0, "prune", "--archive", path, NULL, NULL);
	assert_non_null(strstr(out, "swept 0 transfers"));
	free(out);
	assert_int_equal(lp_db_int(&env, "SELECT count(*) FROM transfers", NULL), n);
}

/* sqlite3 as an auditor (or an intruder) runs it, beside the daemon. */
static int
shell(const char *sql, char *out, size_t cap)
{
	char cmd[1024];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "sqlite3 '%s/db/ledger.db' \"%s\" 2>&1", env.dir, sql);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_sqlite3_cli(void **state)
{
	static const char *const attacks[] = {
	    "UPDATE transfers SET amount = amount + 1 WHERE kind = 'post'",
	    "UPDATE transfers SET credit = 'seller:seller0' WHERE id = 't002:post'",
	    "DELETE FROM transfers WHERE id = 't002:post'",
	    "DELETE FROM transfers",
	    "UPDATE entries SET amount = 0",
	    "DELETE FROM entries",
	    "UPDATE balances SET balance = 0",
	};
	char out[2048], before[2048], after[2048];

	(void)state;
	if (system("command -v sqlite3 >/dev/null 2>&1") != 0)
		fail_msg("the sqlite3 command line is not installed (Debian package sqlite3)");
	assert_int_equal(shell("SELECT sum(balance), count(*) FROM v_balances", before,
			     sizeof(before)),
	    0);
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		if (shell(attacks[i], out, sizeof(out)) == 0)
			fail_msg("sqlite3 \"%s\" succeeded", attacks[i]);
		if (strstr(out, "append-only") == NULL && strstr(out, "balances: ") == NULL)
			fail_msg("sqlite3 \"%s\": %s", attacks[i], out);
	}
	assert_int_equal(shell("SELECT sum(balance), count(*) FROM v_balances", after, sizeof(after)),
	    0);
	assert_string_equal(after, before);
	assert_string_equal(after, "0|10\n");
}

/* Flip one byte of one row in the file (the daemon stopped): verify names that row. */
static void
test_flipped_byte(void **state)
{
	char path[400], legs[600], *out, want[64];
	const int64_t k = 17; /* t008's pending row */
	uint8_t *buf;
	size_t len, n, hits = 0;
	FILE *fp;

	(void)state;
	snprintf(legs, sizeof(legs), "%s", "");
	{
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT legs FROM transfers WHERE seq = %" PRId64, k);
		assert_int_equal(shell(sql, legs, sizeof(legs)), 0);
		legs[strcspn(legs, "\n")] = '\0';
	}
	assert_non_null(strstr(legs, "\"escrow\",2063355]"));
	/* A clean stop checkpoints the WAL: the row is in the main file. */
	assert_int_equal(h_signal(&env, "ledger", SIGTERM), 0);
	snprintf(path, sizeof(path), "%s/db/ledger.db", env.dir);
	buf = (uint8_t *)h_read(&env, "db/ledger.db", &len);
	assert_non_null(buf);
	n = strlen(legs);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(buf + i, legs, n) == 0) {
			buf[i + n - 3] ^= 0x01; /* a digit of the escrow leg: '5' → '4' */
			hits++;
		}
	assert_true(hits >= 1);
	assert_non_null(fp = fopen(path, "wb"));
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	free(buf);
	out = tool_ok(1, "verify", NULL, NULL, NULL, NULL);
	snprintf(want, sizeof(want), "first broken sequence number: %" PRId64 "\n", k);
	assert_non_null(strstr(out, want));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verify_head_anchor),
	    cmocka_unit_test(test_export),
	    cmocka_unit_test(test_payout),
	    cmocka_unit_test(test_prune_refuses_young),
	    cmocka_unit_test(test_sqlite3_cli),
	    cmocka_unit_test(test_flipped_byte),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
