/*
 * select.c — which key serves a paid request (DESIGN.md §5, issue 5).
 *
 * Eligible (select_eligible, the whole rule for one key):
 *   active; not cooling down (429) and under its limits (rpm, rpd, daily
 *   budget); not benched (score ≥ SCORE_BENCH); the route is one the
 *   listing allows; the region allowed (an EU buyer only ever gets an eu
 *   key, never a silent fallback); the pool allowed (premium needs the
 *   seller's opt-in and a score above the floor); not already tried for
 *   this payment; and its buyer price in the pool at most what was paid.
 * Order (select_pick): cheapest first, then the higher score band; keys of
 * one price and band take turns.
 *
 * QUOTE and ASSIGN use this one rule: a quote is the buyer price of the key
 * a pick would take now (ceiling: none), so a buyer who pays it finds that
 * key, or an equally cheap one, still eligible. ASSIGN may take any
 * eligible key priced at or under what the ticket paid; the seller is
 * credited their own price (the award).
 *
 * The walk goes through the provider's index for the request's partition
 * (pool.c), which holds only keys that are active, ready and unbenched, so
 * it stops at the first key whose route matches and that the payment has
 * not tried: the cost does not grow with the number of keys listed.
 *
 * Security stance: every input was checked by the codec and listing_valid,
 * but prices are still treated as hostile: an overflowing buyer price makes
 * a key ineligible rather than wrapping into a cheap one.
 */
#include "router/router.h"

#include <string.h>

#include "common/money.h"
#include "common/providers.h"

int
select_buyer_price(int64_t price, int64_t fee_bps, int64_t *out)
{
	int64_t fee;

	if (price <= 0 || fee_bps < 0 || fee_bps > 10000)
		return -1;
	if (!money_mul_ratio_ceil(price, fee_bps, 10000, &fee) || !money_add(price, fee, out))
		return -1;
	return 0;
}

int
select_pool_price(int64_t price, int64_t fee_bps, uint8_t pool, int64_t *out)
{
	int64_t std;

	if (select_buyer_price(price, fee_bps, &std) != 0)
		return -1;
	if (pool != POOL_PREMIUM) {
		*out = std;
		return 0;
	}
	return money_mul_ratio_ceil(std, MONEY_PREMIUM_NUM, MONEY_PREMIUM_DEN, out) ? 0 : -1;
}

int
select_excluded(const char *exclude, const char *key_id)
{
	size_t klen = strlen(key_id);
	const char *p = exclude;

	if (klen == 0)
		return 0;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);

		if (n == klen && memcmp(p, key_id, n) == 0)
			return 1;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

/*
 * Routes: "METHOD /path" items separated by commas (spaces around them are
 * ignored). METHOD is an upper-case token or "*" (any); the path is a
 * pattern as in the provider catalogue ("*" matches one segment).
 */
struct route_item {
	const char *method, *path;
	size_t mlen, plen;
};

/* The item starting at *pp: 1 and *pp past it, 0 at the end, -1 if malformed. */
static int
route_next(const char **pp, struct route_item *it)
{
	const char *p = *pp + strspn(*pp, " "), *end, *sp;

	if (*p == '\0')
		return 0;
	end = p + strcspn(p, ",");
	*pp = *end == ',' ? end + 1 : end;
	while (end > p && end[-1] == ' ')
		end--;
	if ((sp = memchr(p, ' ', (size_t)(end - p))) == NULL)
		return -1;
	it->method = p;
	it->mlen = (size_t)(sp - p);
	it->path = sp + 1;
	it->plen = (size_t)(end - sp - 1);
	return 0 < it->mlen && it->mlen <= IPC_METHOD_MAX && it->plen > 0 && it->path[0] == '/' ?
	    1 : -1;
}

static int
route_item_valid(const struct route_item *it)
{
	if (!(it->mlen == 1 && it->method[0] == '*'))
		for (size_t i = 0; i < it->mlen; i++)
			if (it->method[i] < 'A' || it->method[i] > 'Z')
				return 0;
	for (size_t i = 0; i < it->plen; i++)
		if (it->path[i] <= ' ' || it->path[i] > '~' || strchr("?#,", it->path[i]) != NULL)
			return 0;
	return 1;
}

int
select_routes_valid(const char *routes, const char **why)
{
	struct route_item it;
	const char *p = routes;
	int n = 0, rc;

	while ((rc = route_next(&p, &it)) == 1) {
		if (!route_item_valid(&it)) {
			*why = "a route is \"METHOD /path\": an upper-case method or *, and a path "
			       "without spaces, ?, # or commas";
			return -1;
		}
		if (++n > LISTING_ROUTES_MAX) {
			*why = "a listing allows at most 16 routes";
			return -1;
		}
	}
	if (rc < 0)
		*why = "routes are \"METHOD /path\" items separated by commas";
	return rc;
}

/* The pattern is copied out: provider_path_match wants it NUL-terminated. */
static int
route_item_matches(const struct route_item *it, const char *method, const char *path)
{
	char pat[IPC_ROUTES_MAX + 1];

	if (it->plen >= sizeof(pat) || (!(it->mlen == 1 && it->method[0] == '*') &&
	    (strlen(method) != it->mlen || memcmp(method, it->method, it->mlen) != 0)))
		return 0;
	memcpy(pat, it->path, it->plen);
	pat[it->plen] = '\0';
	return provider_path_match(pat, path, strlen(path));
}

int
select_route_allowed(const char *routes, const char *method, const char *path)
{
	struct route_item it;
	const char *p = routes;

	if (routes == NULL || routes[0] == '\0')
		return 1;
	while (route_next(&p, &it) == 1)
		if (route_item_matches(&it, method, path))
			return 1;
	return 0;
}

int
select_eligible(const struct pool *p, const struct lkey *k, const struct sel_req *rq,
    int64_t fee_bps, int64_t now, int64_t *buyer)
{
	double s = score_value(&k->score, now, p->par.half_life_ms);
	int64_t price;

	if (k->status != LS_ACTIVE || k->cool_until > now || s < SCORE_BENCH ||
	    !limits_ok(&k->lim, &k->caps, k->price, now))
		return 0;
	if ((rq->eu && strcmp(k->region, "eu") != 0) ||
	    (rq->pool == POOL_PREMIUM && !(k->premium && s > p->par.premium_floor)))
		return 0;
	if (select_pool_price(k->price, fee_bps, rq->pool, &price) != 0 || price > rq->ceiling)
		return 0;
	if (select_excluded(rq->exclude, k->key_id) ||
	    !select_route_allowed(k->routes, rq->method, rq->path))
		return 0;
	if (buyer != NULL)
		*buyer = price;
	return 1;
}

static enum part
part_of(const struct sel_req *rq)
{
	if (rq->pool == POOL_PREMIUM)
		return rq->eu ? PART_PREM_EU : PART_PREM;
	return rq->eu ? PART_EU : PART_ALL;
}

/* The first eligible key of group g, from its turn on; NULL if none. */
static struct lkey *
group_pick(const struct pool *p, struct igroup *g, const struct sel_req *rq, int64_t fee_bps,
    int64_t now, int advance)
{
	size_t n = igroup_size(g), *turn = igroup_turn(g);

	for (size_t i = 0; i < n; i++) {
		size_t at = (*turn + i) % n;
		struct lkey *k = igroup_item(g, at);

		if (!select_eligible(p, k, rq, fee_bps, now, NULL))
			continue;
		if (advance)
			*turn = (at + 1) % n;
		return k;
	}
	return NULL;
}

/* Walk the index in order; the first group with an eligible key gives it. */
static struct lkey *
walk(struct pool *p, const struct sel_req *rq, int64_t fee_bps, int64_t now, int advance,
    struct igroup **where)
{
	const struct ppool *pp = pool_provider(p, rq->provider);
	struct igroup *g;
	struct lkey *k;
	int64_t price;

	pool_wake(p, now);
	if (pp == NULL)
		return NULL;
	for (g = index_first(ppool_index(pp, part_of(rq))); g != NULL; g = igroup_next(g)) {
		/* Groups are in price order: past the ceiling nothing can be eligible. */
		if (select_pool_price(igroup_price(g), fee_bps, rq->pool, &price) != 0 ||
		    price > rq->ceiling)
			break;
		if ((k = group_pick(p, g, rq, fee_bps, now, advance)) != NULL) {
			*where = g;
			return k;
		}
	}
	return NULL;
}

struct lkey *
select_pick(struct pool *p, const struct sel_req *rq, int64_t fee_bps, int64_t now)
{
	struct igroup *g;

	return walk(p, rq, fee_bps, now, 1, &g);
}

int
select_quote(struct pool *p, const struct sel_req *rq, int64_t fee_bps, int64_t now,
    int64_t *amount, uint32_t *keys)
{
	struct igroup *g;
	struct lkey *k = walk(p, rq, fee_bps, now, 0, &g);
	size_t n = 0;

	if (k == NULL || select_pool_price(k->price, fee_bps, rq->pool, amount) != 0)
		return -1;
	/* Every band of that price: the groups that follow g until the price changes. */
	for (; g != NULL && igroup_price(g) == k->price; g = igroup_next(g))
		n += igroup_size(g);
	*keys = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	return 0;
}
