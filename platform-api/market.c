/*
 * market.c — GET /api/marketplace/providers: the public face of the key
 * pool, per provider, from the router (MARKET_STATS): how many keys are
 * listed and active (premium and EU ones among them), the range of buyer
 * prices (fee included, standard pool; the premium pool is × 1.25), and over
 * the last 30 days the upstream calls made, the share that did not fail for
 * the key or the upstream (uptime) and the mean time to the first byte.
 *
 *   {"window_days": 30, "providers": [{"name": "openai", "keys": 12,
 *     "premium_keys": 3, "eu_keys": 4,
 *     "price_micros": {"min": 1100, "max": 5500},
 *     "price_usd": {"min": "0.001100", "max": "0.005500"},
 *     "requests": 10000, "uptime": 0.9990, "latency_ms": 420}]}
 *
 * uptime is null when nothing was called in the window.
 *
 * Security stance: public, no token; it shows aggregates per provider
 * only, never a seller, a key or a buyer.
 */
#include "platform-api/platform.h"

#include <stdlib.h>
#include <string.h>

#include "common/money.h"

#define MARKET_DAYS 30

struct mop {
	struct platform *p;
	struct ipc_req req;
	cJSON *list; /* providers so far; NULL once memory ran out */
};

static int
add_range(cJSON *o, const struct ipc_market_provider *m)
{
	char lo[MONEY_USD_BUFSZ], hi[MONEY_USD_BUFSZ];
	cJSON *micros = cJSON_AddObjectToObject(o, "price_micros"), *usd;

	if (micros == NULL || cJSON_AddNumberToObject(micros, "min", (double)m->price_min) == NULL ||
	    cJSON_AddNumberToObject(micros, "max", (double)m->price_max) == NULL ||
	    money_format_usd(m->price_min, lo, sizeof(lo)) < 0 ||
	    money_format_usd(m->price_max, hi, sizeof(hi)) < 0 ||
	    (usd = cJSON_AddObjectToObject(o, "price_usd")) == NULL ||
	    cJSON_AddStringToObject(usd, "min", lo) == NULL ||
	    cJSON_AddStringToObject(usd, "max", hi) == NULL)
		return -1;
	return 0;
}

static cJSON *
provider_json(const struct ipc_market_provider *m)
{
	cJSON *o = cJSON_CreateObject();
	uint64_t called = m->ok + m->failed;

	if (o == NULL || cJSON_AddStringToObject(o, "name", m->provider) == NULL ||
	    cJSON_AddNumberToObject(o, "keys", m->keys) == NULL ||
	    cJSON_AddNumberToObject(o, "premium_keys", m->premium_keys) == NULL ||
	    cJSON_AddNumberToObject(o, "eu_keys", m->eu_keys) == NULL || add_range(o, m) != 0 ||
	    cJSON_AddNumberToObject(o, "requests", (double)m->requests) == NULL ||
	    (called > 0 ? cJSON_AddNumberToObject(o, "uptime",
			      (double)(m->ok * 10000 / called) / 10000.0) :
			  cJSON_AddNullToObject(o, "uptime")) == NULL ||
	    cJSON_AddNumberToObject(o, "latency_ms", m->latency_ms) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
mop_reply(struct mop *op)
{
	cJSON *body = cJSON_CreateObject();

	if (op->list == NULL || body == NULL ||
	    cJSON_AddNumberToObject(body, "window_days", MARKET_DAYS) == NULL ||
	    !cJSON_AddItemToObject(body, "providers", op->list)) {
		cJSON_Delete(body);
		api_reply_problem(op->p, &op->req, 500, "internal-error", "out of memory");
		return;
	}
	op->list = NULL;
	api_reply_json(op->p, &op->req, 200, body);
}

static void
on_stats(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct mop *op = arg;
	cJSON *o;

	if (status == 0 && type == IPC_MARKET_PROVIDER) {
		/* Not final: more follow. One that cannot be shown fails the whole answer. */
		if (op->list != NULL && ((o = provider_json(&msg->market_provider)) == NULL ||
		    !cJSON_AddItemToArray(op->list, o))) {
			cJSON_Delete(op->list);
			op->list = NULL;
		}
		return;
	}
	if (!op->p->stopping && status == 0 && type == IPC_ACK)
		mop_reply(op);
	else if (!op->p->stopping)
		api_reply_problem(op->p, &op->req, 503, "service-unavailable",
		    "the router service is unavailable; try again");
	cJSON_Delete(op->list);
	free(op);
}

void
market_providers(struct platform *p, const struct ipc_req *req, const struct ipc_api *m)
{
	struct ipc_market_stats s = {MARKET_DAYS};
	struct mop *op;

	if (strcmp(m->method, "GET") != 0) {
		api_reply_problem(p, req, 405, "method-not-allowed",
		    "/api/marketplace/providers accepts GET");
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL || (op->list = cJSON_CreateArray()) == NULL) {
		free(op);
		api_reply_problem(p, req, 500, "internal-error", "out of memory");
		return;
	}
	op->p = p;
	op->req = *req;
	if (ipc_request(p->d->ipc, ROLE_ROUTER, IPC_MARKET_STATS, &s, PLATFORM_PEER_TIMEOUT_MS,
	    on_stats, op) == 0) {
		api_reply_problem(p, req, 503, "service-unavailable",
		    "the router service is unavailable; try again");
		cJSON_Delete(op->list);
		free(op);
	}
}
