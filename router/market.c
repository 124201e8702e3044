/*
 * market.c — MARKET_STATS: the public summary of the marketplace, one
 * MARKET_PROVIDER per provider with keys or traffic, then ACK. platform-api
 * serves it as GET /api/marketplace/providers.
 *
 * Key counts and price ranges come from the pool as it is now (active
 * listings; buyer prices in the standard pool, fee included); request
 * counts, failures and latency from the hourly aggregates of the last
 * `days` days, so the figures survive the raw rows' 30 days.
 *
 * Security stance: public data only — counts, prices and rates per
 * provider, nothing per seller or per key, nothing about a buyer.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

struct mrow {
	struct ipc_market_provider m;
	uint64_t latency_sum;
};

struct mctx {
	struct router *r;
	struct mrow *rows;
	size_t n;
	int64_t now;
};

static struct mrow *
row_of(struct mctx *c, const char *provider)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->rows[i].m.provider, provider) == 0)
			return &c->rows[i];
	return NULL;
}

static int
count_key(struct lkey *k, void *arg)
{
	struct mctx *c = arg;
	struct mrow *row = row_of(c, ppool_name(k->pp));
	int64_t buyer;

	if (row == NULL || k->status != LS_ACTIVE ||
	    select_buyer_price(k->price, c->r->cfg->fee_bps, &buyer) != 0)
		return 0;
	row->m.keys++;
	row->m.eu_keys += strcmp(k->region, "eu") == 0;
	row->m.premium_keys += k->premium &&
	    score_value(&k->score, c->now, c->r->pool.par.half_life_ms) > c->r->pool.par.premium_floor;
	if (row->m.price_min == 0 || buyer < row->m.price_min)
		row->m.price_min = buyer;
	if (buyer > row->m.price_max)
		row->m.price_max = buyer;
	return 0;
}

/* The request figures of the window from the hourly aggregates. 0, or -1. */
static int
count_requests(struct mctx *c, int days)
{
	sqlite3_stmt *st = db_prepare(c->r->db,
	    "SELECT provider, sum(requests), sum(ok), sum(failed), sum(latency_sum)"
	    " FROM requests_hourly WHERE hour >= ?1 GROUP BY provider");
	struct mrow *row;
	int rc;

	sqlite3_bind_int64(st, 1, c->now / 1000 - (int64_t)days * 86400);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((row = row_of(c, (const char *)sqlite3_column_text(st, 0))) == NULL)
			continue;
		row->m.requests = (uint64_t)sqlite3_column_int64(st, 1);
		row->m.ok = (uint64_t)sqlite3_column_int64(st, 2);
		row->m.failed = (uint64_t)sqlite3_column_int64(st, 3);
		row->latency_sum = (uint64_t)sqlite3_column_int64(st, 4);
	}
	if (rc != SQLITE_DONE)
		log_warnx("market figures: %s", sqlite3_errmsg(c->r->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

void
market_stats(struct router *r, const struct ipc_req *req, const struct ipc_market_stats *m)
{
	struct mctx c = {r, NULL, r->pool.nprov, router_now_ms()};

	if (c.n > 0 && (c.rows = calloc(c.n, sizeof(*c.rows))) == NULL) {
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
		return;
	}
	for (size_t i = 0; i < c.n; i++)
		snprintf(c.rows[i].m.provider, sizeof(c.rows[i].m.provider), "%s",
		    ppool_name(r->pool.prov[i]));
	pool_each(&r->pool, count_key, &c);
	if (count_requests(&c, m->days) != 0) {
		r->d->errors++;
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, "market figures unreadable");
		free(c.rows);
		return;
	}
	for (size_t i = 0; i < c.n; i++) {
		struct mrow *row = &c.rows[i];

		if (row->m.keys == 0 && row->m.requests == 0)
			continue;
		row->m.latency_ms = row->m.ok > 0 ?
		    (uint32_t)(row->latency_sum / row->m.ok > UINT32_MAX ? UINT32_MAX :
							       row->latency_sum / row->m.ok) : 0;
		if (ipc_reply(r->d->ipc, req, IPC_MARKET_PROVIDER, &row->m) != 0)
			break;
	}
	ipc_reply(r->d->ipc, req, IPC_ACK, NULL);
	free(c.rows);
}
