/*
 * router_bench.c — what a paid request costs the router: QUOTE then ASSIGN,
 * with 100, 1,000 and 10,000 listings for one provider, so the figures show
 * whether the choice grows with the number of listings (it must not: the
 * pool is an index, not a scan).
 *
 * Two measures each:
 *   - the real daemon: cn2-router on a temporary directory, driven over IPC
 *     as the edge drives it (tickets MAC'd with the directory's secret):
 *     the latency of one QUOTE + ASSIGN pair at a time, then with 16 pairs
 *     in flight the wall time and the router's CPU time (from /proc) per
 *     pair, the ASSIGN's durable record (group commit) included;
 *   - the choice alone: the same selection code in this process
 *     (select_quote, select_pick, the limits reservation), nanoseconds per
 *     pair.
 *
 *   router_bench [pairs]   (default 4000; run by tests/bench/bench.sh)
 *
 * Listings are written straight into router.db (one transaction) while the
 * router is stopped, then loaded by it at start. Prices are spread over
 * many levels with a few equal ones at the bottom, as a real market has.
 * Bounded: about ten seconds on a laptop.
 */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/capab.h"
#include "router/router.h"
#include "tests/scenario/harness.h"

#define NSIZES 3
static const int sizes[NSIZES] = {100, 1000, 10000};

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time (user + system) of a process, in µs. */
static int64_t
cpu_us(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (int64_t)(ut + st) * 1000000 / sysconf(_SC_CLK_TCK);
}

/* A listing price: most spread over many levels, the cheapest 1 % equal. */
static int64_t
price_of(int i, int n)
{
	return i < n / 100 + 1 ? 1000 : 1000 + (int64_t)((i * 7919) % (n * 3)) * 10;
}

static int
fill_db(const struct h_env *e)
{
	char path[400], sql[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	snprintf(path, sizeof(path), "%s/db/router.db", e->dir);
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, "BEGIN", NULL, NULL, NULL))
		return -1;
	snprintf(sql, sizeof(sql), "INSERT INTO listings (key_id, seller_id, provider, price, status,"
	    " created, updated) VALUES (?1, ?2, ?3, ?4, 'active', %lld, %lld)",
	    (long long)time(NULL), (long long)time(NULL));
	sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	for (int s = 0; s < NSIZES && rc == SQLITE_OK; s++)
		for (int i = 0; i < sizes[s] && rc == SQLITE_OK; i++) {
			char id[48], seller[32], prov[16];

			snprintf(id, sizeof(id), "k_%d_%d", sizes[s], i);
			snprintf(seller, sizeof(seller), "seller-%d", i % 997);
			snprintf(prov, sizeof(prov), "p%d", sizes[s]);
			sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 2, seller, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 3, prov, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 4, price_of(i, sizes[s]));
			rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
			sqlite3_reset(st);
		}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* What a paid chat request of provider asks for. */
static struct ipc_route
bench_route(const char *provider)
{
	struct ipc_route rt = {.method = "POST", .path = "/v1/chat/completions"};

	snprintf(rt.provider, sizeof(rt.provider), "%s", provider);
	return rt;
}

/*
 * The driver: `window` pairs in flight on this process's loop, each a QUOTE
 * and, on its answer, an ASSIGN for a ticket that pays the quote.
 */
struct drive {
	struct h_ipc *edge;
	const uint8_t *tkey;
	size_t tlen;
	const char *provider;
	int next, total, done, failed;
};

struct slot {
	struct drive *d;
	int n;
	uint8_t mac[IPC_MAC_LEN];
};

static void pair_start(struct slot *sl);

static void
on_grant(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct slot *sl = arg;

	(void)msg;
	sl->d->done++;
	if (status != 0 || type != IPC_GRANT)
		sl->d->failed++;
	else
		pair_start(sl);
}

static void
on_quote(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct slot *sl = arg;
	struct drive *d = sl->d;
	struct ipc_assign a;

	if (status != 0 || type != IPC_QUOTE_REP) {
		d->failed++;
		d->done++;
		return;
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.ticket.payment_id, sizeof(a.ticket.payment_id), "bench-%s-%d", d->provider,
	    sl->n);
	snprintf(a.ticket.pay_method, sizeof(a.ticket.pay_method), "test");
	a.ticket.amount = msg->quote_rep.amount;
	a.ticket.route = bench_route(d->provider);
	a.ticket.expires = (int64_t)time(NULL) + 600;
	if (capab_ticket_mac(d->tkey, d->tlen, &a.ticket, sl->mac) != 0) {
		d->failed++;
		d->done++;
		return;
	}
	a.ticket.mac.p = sl->mac;
	a.ticket.mac.len = IPC_MAC_LEN;
	if (ipc_request(d->edge->ipc, ROLE_ROUTER, IPC_ASSIGN, &a, 5000, on_grant, sl) == 0) {
		d->failed++;
		d->done++;
	}
}

static void
pair_start(struct slot *sl)
{
	struct drive *d = sl->d;
	struct ipc_quote q = {bench_route(d->provider)};

	if (d->next == d->total)
		return;
	sl->n = d->next++;
	if (ipc_request(d->edge->ipc, ROLE_ROUTER, IPC_QUOTE, &q, 5000, on_quote, sl) == 0) {
		d->failed++;
		d->done++;
	}
}

/* pairs pairs with window in flight; 0, or -1 if any was refused. */
static int
drive(struct h_ipc *edge, const uint8_t *tkey, size_t tlen, const char *provider, int first,
    int pairs, int window)
{
	static struct slot slots[64];
	struct drive d = {edge, tkey, tlen, provider, first, first + pairs, 0, 0};

	for (int i = 0; i < window && i < 64; i++) {
		slots[i].d = &d;
		pair_start(&slots[i]);
	}
	while (d.done < pairs && d.failed == 0)
		uv_run(&edge->loop, UV_RUN_ONCE);
	return d.failed == 0 ? 0 : -1;
}

/* The choice alone, in this process: ns per QUOTE + ASSIGN selection. */
static double
choice_ns(int n, int pairs)
{
	struct pool_params par = {0.9, 300000};
	struct sel_req rq = {"p", "POST", "/v1/chat/completions", POOL_STANDARD, 0, INT64_MAX, ""};
	struct ipc_listing l;
	struct pool p;
	int64_t now = (int64_t)time(NULL) * 1000, t0, amount;
	uint32_t keys;

	if (pool_init(&p, &par) != 0)
		return -1;
	memset(&l, 0, sizeof(l));
	snprintf(l.provider, sizeof(l.provider), "p");
	snprintf(l.status, sizeof(l.status), "active");
	for (int i = 0; i < n; i++) {
		snprintf(l.key_id, sizeof(l.key_id), "k_%d", i);
		snprintf(l.seller_id, sizeof(l.seller_id), "s%d", i % 997);
		l.price = price_of(i, n);
		pool_put(&p, &l, now);
	}
	t0 = mono_ns();
	for (int i = 0; i < pairs; i++) {
		struct lkey *k;

		rq.ceiling = INT64_MAX;
		if (select_quote(&p, &rq, 1000, now, &amount, &keys) != 0)
			break;
		rq.ceiling = amount;
		if ((k = select_pick(&p, &rq, 1000, now)) == NULL)
			break;
		limits_take(&k->lim, &k->caps, k->price, now);
		pool_place(&p, k, now);
	}
	t0 = mono_ns() - t0;
	pool_free(&p);
	return (double)t0 / pairs;
}

struct figures {
	double lat_us;	/* one pair at a time: the round trip of QUOTE and ASSIGN */
	double thru_us; /* WINDOW pairs in flight: wall time per pair */
	double cpu_us;	/* the router's CPU per pair, in that run */
};

#define WINDOW 16

static int
measure(struct h_env *e, struct h_ipc *edge, const uint8_t *tkey, size_t tlen, int pairs,
    struct figures f[NSIZES])
{
	pid_t pid = h_pid(e, "router");
	char prov[16];

	for (int s = 0; s < NSIZES; s++) {
		int64_t t0, c0;

		snprintf(prov, sizeof(prov), "p%d", sizes[s]);
		if (drive(edge, tkey, tlen, prov, 0, 100, WINDOW) != 0) /* warm up */
			return -1;
		t0 = mono_ns();
		if (drive(edge, tkey, tlen, prov, 100, pairs / 4, 1) != 0)
			return -1;
		f[s].lat_us = (double)(mono_ns() - t0) / 1000.0 / (pairs / 4);
		t0 = mono_ns();
		c0 = cpu_us(pid);
		if (drive(edge, tkey, tlen, prov, 100 + pairs / 4, pairs, WINDOW) != 0)
			return -1;
		f[s].thru_us = (double)(mono_ns() - t0) / 1000.0 / pairs;
		f[s].cpu_us = (double)(cpu_us(pid) - c0) / pairs;
	}
	return 0;
}

static int
start(struct h_env *e, struct h_ipc *edge, uint8_t *tkey, size_t *tlen)
{
	static const enum ipc_role router[] = {ROLE_ROUTER};
	char *s;

	if (h_init(e, NULL) != 0 || h_start(e, "router") != 0 ||
	    h_signal(e, "router", SIGTERM) != 0 || fill_db(e) != 0 || h_start(e, "router") != 0 ||
	    h_ipc_open(e, edge, ROLE_EDGE, router, 1) != 0 ||
	    h_ipc_wait_link(edge, ROLE_ROUTER, 5000) != 0 ||
	    (s = h_read(e, "secrets/ticket.key", tlen)) == NULL)
		return -1;
	if (*tlen > 0 && s[*tlen - 1] == '\n')
		(*tlen)--;
	memcpy(tkey, s, *tlen < 128 ? *tlen : 128);
	free(s);
	return 0;
}

int
main(int argc, char **argv)
{
	int pairs = argc > 1 ? atoi(argv[1]) : 4000;
	struct figures f[NSIZES];
	double ns[NSIZES];
	struct h_env e;
	struct h_ipc edge;
	uint8_t tkey[128];
	size_t tlen = 0;
	int rc;

	if (pairs < 400 || pairs > 1000000)
		pairs = 4000;
	if (start(&e, &edge, tkey, &tlen) != 0) {
		fprintf(stderr, "router bench: cannot start the router (see %s)\n", e.logpath);
		return 1;
	}
	rc = measure(&e, &edge, tkey, tlen, pairs, f);
	h_ipc_close(&edge);
	if (h_down(&e) != 0 || rc != 0) {
		fprintf(stderr, "router bench: a QUOTE or ASSIGN failed\n");
		return 1;
	}
	for (int s = 0; s < NSIZES; s++)
		ns[s] = choice_ns(sizes[s], pairs * 25);
	printf("cn2-router: QUOTE + ASSIGN per paid request, one provider (%d pairs; %d in flight)\n",
	    pairs, WINDOW);
	printf("%-9s %14s %15s %18s %16s\n", "listings", "latency µs", "wall µs/pair",
	    "router CPU µs/pair", "choice ns/pair");
	for (int s = 0; s < NSIZES; s++)
		printf("%-9d %14.1f %15.1f %18.1f %16.0f\n", sizes[s], f[s].lat_us, f[s].thru_us,
		    f[s].cpu_us, ns[s]);
	printf("10000 vs 100 listings (100x as many): router CPU %.2fx, latency %.2fx, choice %.2fx"
	    " -- sub-linear: an index, not a scan\n",
	    f[0].cpu_us > 0 ? f[2].cpu_us / f[0].cpu_us : 0.0, f[2].lat_us / f[0].lat_us,
	    ns[2] / ns[0]);
	return 0;
}
