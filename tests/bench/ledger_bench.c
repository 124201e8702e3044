/*
 * ledger_bench.c — `make bench`'s ledger section: durable transfers per
 * second through the real cn2-ledger.
 *
 *	ledger-bench BUILD_DIR
 *
 * Starts BUILD_DIR/bin/cn2-ledger on a fresh ledger.db in a temporary
 * directory (WAL, synchronous=FULL: every ACK is after its fsync), connects
 * as payments, and writes payments (a pending and a post each: two
 * transfers) two ways: pipelined, LEDGER_BENCH_WINDOW requests in flight,
 * as payments does under load, so the group commit folds many into one
 * fsync; and one at a time, each waiting for its ACK, which is the fsync
 * rate of the disk. Prints transfers/s, commits and transfers per commit
 * (the daemon's own count, from HEALTH), then checks the books with
 * `cn2-ledger verify`. LEDGER_BENCH_N (default 20000 transfers) bounds it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/ipc.h"
#include "common/timefmt.h"

struct bench {
	uv_loop_t loop;
	struct ipc *ipc;
	size_t sent, done, failed, total;
	int window;
	uint64_t seq;
};

static void
on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct bench *b = arg;

	(void)msg;
	b->done++;
	if (status != 0 || type != IPC_ACK)
		b->failed++;
}

/* Request k of a run: even a pending, odd the post of the pending before it. */
static int
send_one(struct bench *b, size_t k)
{
	union ipc_any m;
	uint16_t type;
	char id[40];

	memset(&m, 0, sizeof(m));
	snprintf(id, sizeof(id), "b%" PRIu64 "x%zu", b->seq, k / 2);
	if (k % 2 == 0) {
		type = IPC_LEDGER_PENDING;
		snprintf(m.ledger_pending.xfer_id, sizeof(m.ledger_pending.xfer_id), "%s", id);
		snprintf(m.ledger_pending.payment_ref, sizeof(m.ledger_pending.payment_ref), "r%s", id);
		snprintf(m.ledger_pending.pay_method, sizeof(m.ledger_pending.pay_method), "test");
		m.ledger_pending.amount = 1100;
	} else {
		type = IPC_LEDGER_POST;
		snprintf(m.ledger_post.xfer_id, sizeof(m.ledger_post.xfer_id), "%s", id);
		snprintf(m.ledger_post.seller_id, sizeof(m.ledger_post.seller_id), "s%zu", k % 97);
		m.ledger_post.seller_amount = 1000;
	}
	return ipc_request(b->ipc, ROLE_LEDGER, type, &m, 60000, on_reply, b) != 0 ? 0 : -1;
}

/* total requests, at most window in flight. Seconds taken, or -1. */
static double
run(struct bench *b, size_t total, int window)
{
	int64_t t0 = time_mono_ms(), deadline = t0 + 120000;

	b->sent = b->done = b->failed = 0;
	b->seq++;
	while (b->done < total && time_mono_ms() < deadline) {
		while (b->sent < total && b->sent - b->done < (size_t)window)
			if (send_one(b, b->sent++) != 0)
				return -1;
		uv_run(&b->loop, UV_RUN_ONCE);
	}
	if (b->done < total || b->failed > 0)
		return -1;
	return (double)(time_mono_ms() - t0) / 1000.0;
}

static void
on_health(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	char *detail = arg;

	if (status == 0 && type == IPC_HEALTH_REP)
		snprintf(detail, 128, "%s", msg->health_rep.detail);
}

/* The daemon's "ok: W writes in C commits". 0, or -1. */
static int
commits(struct bench *b, unsigned long long *writes, unsigned long long *batches)
{
	char detail[128] = "";
	int64_t end = time_mono_ms() + 5000;

	if (ipc_request(b->ipc, ROLE_LEDGER, IPC_HEALTH, NULL, 5000, on_health, detail) == 0)
		return -1;
	while (detail[0] == '\0' && time_mono_ms() < end)
		uv_run(&b->loop, UV_RUN_ONCE);
	return sscanf(detail, "ok: %llu writes in %llu commits", writes, batches) == 2 ? 0 : -1;
}

static pid_t
start_ledger(const char *bin, const char *dir)
{
	char conf[300], exe[300];
	FILE *fp;
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/ledger.conf", dir);
	if ((fp = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(fp, "runtime_dir = %s\ndatabase = %s/ledger.db\nlog_level = warning\n", dir, dir);
	if (fclose(fp) != 0)
		return -1;
	snprintf(exe, sizeof(exe), "%s/bin/cn2-ledger", bin);
	if ((pid = fork()) == 0) {
		execl(exe, exe, "-f", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int
connect_ledger(struct bench *b, const char *dir)
{
	static const enum ipc_role dial[] = {ROLE_LEDGER};
	struct ipc_config c;
	char err[256];
	int64_t end = time_mono_ms() + 10000;

	memset(&c, 0, sizeof(c));
	if (uv_loop_init(&b->loop) != 0)
		return -1;
	c.loop = &b->loop;
	c.self = ROLE_PAYMENTS;
	c.runtime_dir = dir;
	c.dial = dial;
	c.ndial = 1;
	if ((b->ipc = ipc_start(&c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ledger-bench: %s\n", err);
		return -1;
	}
	while (!ipc_link_up(b->ipc, ROLE_LEDGER) && time_mono_ms() < end) {
		uv_run(&b->loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	return ipc_link_up(b->ipc, ROLE_LEDGER) ? 0 : -1;
}

static int
verify(const char *bin, const char *dir)
{
	char cmd[900];

	snprintf(cmd, sizeof(cmd), "'%s/bin/cn2-ledger' verify -f '%s/ledger.conf' >/dev/null", bin,
	    dir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t
env_size(const char *name, size_t def)
{
	const char *v = getenv(name);

	return v != NULL && atol(v) > 0 ? (size_t)atol(v) : def;
}

int
main(int argc, char **argv)
{
	static struct bench b;
	char dir[] = "/tmp/cn2-ledger-bench-XXXXXX", cmd[300];
	size_t n = env_size("LEDGER_BENCH_N", 20000) & ~(size_t)1, serial = n / 20 & ~(size_t)1;
	int window = (int)env_size("LEDGER_BENCH_WINDOW", 256), rc = 1;
	unsigned long long w0, c0, w1, c1;
	double piped, one;
	pid_t pid;

	if (argc != 2 || mkdtemp(dir) == NULL || (pid = start_ledger(argv[1], dir)) < 0) {
		fprintf(stderr, "usage: ledger-bench BUILD_DIR\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (connect_ledger(&b, dir) != 0 || commits(&b, &w0, &c0) != 0)
		fprintf(stderr, "ledger-bench: cannot reach cn2-ledger\n");
	else if ((piped = run(&b, n, window)) < 0 || commits(&b, &w1, &c1) != 0 ||
	    (one = run(&b, serial, 1)) < 0)
		fprintf(stderr, "ledger-bench: a request failed\n");
	else {
		printf("ledger: %zu transfers pipelined (%d in flight): %.0f transfers/s, durable "
		       "(WAL, synchronous=FULL, ACK after fsync)\n",
		    n, window, (double)n / piped);
		printf("ledger: %llu group commits, %.1f transfers per commit (fsync)\n", c1 - c0,
		    (double)(w1 - w0) / (double)(c1 - c0 > 0 ? c1 - c0 : 1));
		printf("ledger: %zu transfers one at a time: %.0f transfers/s (one fsync each)\n",
		    serial, (double)serial / one);
		rc = 0;
	}
	ipc_stop(b.ipc);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	if (rc == 0 && verify(argv[1], dir) != 0) {
		fprintf(stderr, "ledger-bench: cn2-ledger verify failed on the benchmark's books\n");
		rc = 1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "ledger-bench: could not remove %s\n", dir);
	return rc;
}
