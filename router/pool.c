/*
 * pool.c — every listing in memory: by key id (a hash table), and, when it
 * can serve, in its provider's indexes (index.c), one per partition:
 *
 *   PART_ALL      every key that can serve now          standard pool, anywhere
 *   PART_EU       the eu-tagged ones                    standard pool, EU buyers
 *   PART_PREM     premium opt-ins scoring above floor   premium pool, anywhere
 *   PART_PREM_EU  both                                  premium pool, EU buyers
 *
 * A key is in the indexes only while it is active, not cooling down (a 429's
 * Retry-After, or a limit it has used up) and not benched (a score below
 * SCORE_BENCH). Each of those ends at a known time, so such a key waits in a
 * heap ordered by that time and goes back when it comes (pool_wake). Keys
 * whose score is still recovering towards a higher band, or towards the
 * premium floor, are on a list that pool_tick re-places periodically. So
 * the indexes hold keys that can almost surely serve, and selection rarely
 * skips one: what it still checks per key (route, the keys a payment already
 * tried, the price the ticket covers) is the request's own business.
 *
 * The database (listings, key_state) is the durable copy; this is rebuilt
 * from it at start (listings_load) and changed only after a write to it was
 * committed, or, for what the router learns from outcomes, at once with the
 * write queued behind it.
 *
 * Security stance: memory only; what goes in was validated by listing_valid
 * or comes from router.db. Allocation failures leave a key out of the
 * indexes (logged), never a dangling pointer.
 */
#include "router/router.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct ppool {
	char name[IPC_PROVIDER_MAX + 1];
	struct index ix[PART_MAX];
};

static const char *const status_names[LS_MAX] = {
    "active", "paused", "quarantined", "rotating", "removed",
};

const char *
lstatus_name(int s)
{
	return s >= 0 && s < LS_MAX ? status_names[s] : "removed";
}

int
lstatus_parse(const char *s)
{
	for (int i = 0; i < LS_MAX; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

/* FNV-1a: key ids are random, so any decent spread will do. */
static uint64_t
hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s != '\0')
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

int
pool_init(struct pool *p, const struct pool_params *par)
{
	memset(p, 0, sizeof(*p));
	p->par = *par;
	p->tabsize = 1024;
	return (p->tab = calloc(p->tabsize, sizeof(*p->tab))) != NULL ? 0 : -1;
}

static void
ppool_free(struct ppool *pp)
{
	for (int i = 0; i < PART_MAX; i++)
		index_free(&pp->ix[i]);
	free(pp);
}

void
pool_free(struct pool *p)
{
	for (size_t i = 0; p->tab != NULL && i < p->tabsize; i++) {
		struct lkey *k = p->tab[i], *next;

		for (; k != NULL; k = next) {
			next = k->hnext;
			free(k->routes);
			free(k);
		}
	}
	for (size_t i = 0; i < p->nprov; i++)
		ppool_free(p->prov[i]);
	free(p->prov);
	free(p->tab);
	free(p->heap);
	memset(p, 0, sizeof(*p));
}

struct lkey *
pool_find(const struct pool *p, const char *key_id)
{
	uint64_t h = hash_str(key_id);

	for (struct lkey *k = p->tab[h & (p->tabsize - 1)]; k != NULL; k = k->hnext)
		if (k->hash == h && strcmp(k->key_id, key_id) == 0)
			return k;
	return NULL;
}

/* Double the table when it is as full as it is long: chains stay about one long. */
static void
tab_grow(struct pool *p)
{
	size_t size = p->tabsize * 2;
	struct lkey **tab = calloc(size, sizeof(*tab));

	if (tab == NULL)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < p->tabsize; i++) {
		struct lkey *k = p->tab[i], *next;

		for (; k != NULL; k = next) {
			next = k->hnext;
			k->hnext = tab[k->hash & (size - 1)];
			tab[k->hash & (size - 1)] = k;
		}
	}
	free(p->tab);
	p->tab = tab;
	p->tabsize = size;
}

static struct ppool *
provider_find(const struct pool *p, const char *name)
{
	for (size_t i = 0; i < p->nprov; i++)
		if (strcmp(p->prov[i]->name, name) == 0)
			return p->prov[i];
	return NULL;
}

const struct ppool *
pool_provider(const struct pool *p, const char *name)
{
	return provider_find(p, name);
}

static struct ppool *
provider_get(struct pool *p, const char *name)
{
	struct ppool *pp = provider_find(p, name), **v;

	if (pp != NULL)
		return pp;
	if ((v = realloc(p->prov, (p->nprov + 1) * sizeof(*v))) == NULL)
		return NULL;
	p->prov = v;
	if ((pp = calloc(1, sizeof(*pp))) == NULL)
		return NULL;
	snprintf(pp->name, sizeof(pp->name), "%s", name);
	for (int i = 0; i < PART_MAX; i++)
		if (index_init(&pp->ix[i], (uint32_t)hash_str(name) + (uint32_t)i) != 0) {
			ppool_free(pp);
			return NULL;
		}
	p->prov[p->nprov++] = pp;
	return pp;
}

const struct index *
ppool_index(const struct ppool *pp, enum part part)
{
	return &pp->ix[part];
}

const char *
ppool_name(const struct ppool *pp)
{
	return pp->name;
}

/* The wake-up heap: a binary min-heap on wake_at. */

static void
heap_swap(struct pool *p, size_t a, size_t b)
{
	struct lkey *t = p->heap[a];

	p->heap[a] = p->heap[b];
	p->heap[b] = t;
	p->heap[a]->heap_pos = a;
	p->heap[b]->heap_pos = b;
}

static void
heap_fix(struct pool *p, size_t i)
{
	while (i > 0 && p->heap[(i - 1) / 2]->wake_at > p->heap[i]->wake_at) {
		heap_swap(p, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, m = i;

		if (l < p->nheap && p->heap[l]->wake_at < p->heap[m]->wake_at)
			m = l;
		if (l + 1 < p->nheap && p->heap[l + 1]->wake_at < p->heap[m]->wake_at)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(p, i, m);
		i = m;
	}
}

static void
heap_del(struct pool *p, struct lkey *k)
{
	size_t i = k->heap_pos;

	if (i == SIZE_MAX)
		return;
	k->heap_pos = SIZE_MAX;
	if (i != --p->nheap) {
		p->heap[i] = p->heap[p->nheap];
		p->heap[i]->heap_pos = i;
		heap_fix(p, i);
	}
}

static int
heap_set(struct pool *p, struct lkey *k, int64_t at)
{
	struct lkey **h;

	k->wake_at = at;
	if (k->heap_pos != SIZE_MAX) {
		heap_fix(p, k->heap_pos);
		return 0;
	}
	if (p->nheap == p->heapcap) {
		size_t cap = p->heapcap != 0 ? p->heapcap * 2 : 64;

		if ((h = realloc(p->heap, cap * sizeof(*h))) == NULL)
			return -1;
		p->heap = h;
		p->heapcap = cap;
	}
	k->heap_pos = p->nheap;
	p->heap[p->nheap++] = k;
	heap_fix(p, k->heap_pos);
	return 0;
}

/* The recovering list. */

static void
recovering_set(struct pool *p, struct lkey *k, int on)
{
	if (on == k->recovering)
		return;
	if (on) {
		k->rprev = NULL;
		k->rnext = p->recovering;
		if (p->recovering != NULL)
			p->recovering->rprev = k;
		p->recovering = k;
	} else {
		if (k->rprev != NULL)
			k->rprev->rnext = k->rnext;
		else
			p->recovering = k->rnext;
		if (k->rnext != NULL)
			k->rnext->rprev = k->rprev;
		k->rprev = k->rnext = NULL;
	}
	k->recovering = on;
}

static void
unindex(struct lkey *k)
{
	for (int i = 0; i < PART_MAX; i++)
		index_del(&k->pp->ix[i], &k->slot[i]);
}

static int
want_part(const struct lkey *k, int prem, enum part part)
{
	int eu = strcmp(k->region, "eu") == 0;

	switch (part) {
	case PART_ALL:
		return 1;
	case PART_EU:
		return eu;
	case PART_PREM:
		return prem;
	default:
		return prem && eu;
	}
}

/* When k can serve again: now, or the latest of its cool-down, limits and bench. */
static int64_t
wake_time(const struct pool *p, const struct lkey *k, double s, int64_t now)
{
	int64_t at = k->cool_until, t;

	if ((t = limits_ready_at(&k->lim, &k->caps, k->price, now)) > at)
		at = t;
	if (s < SCORE_BENCH && (t = score_reaches(&k->score, SCORE_BENCH, p->par.half_life_ms)) > at)
		at = t;
	return at;
}

static void
place_indexed(struct pool *p, struct lkey *k, double s)
{
	int band = score_band(s), prem = k->premium && s > p->par.premium_floor;

	for (int i = 0; i < PART_MAX; i++) {
		int want = want_part(k, prem, (enum part)i), in = k->slot[i].g != NULL;

		if (in && (!want || band != k->ix_band || k->price != k->ix_price)) {
			index_del(&k->pp->ix[i], &k->slot[i]);
			in = 0;
		}
		if (want && !in && index_add(&k->pp->ix[i], &k->slot[i], k->price, band) != 0)
			log_warnx("out of memory: key %s left out of the index", k->key_id);
	}
	k->ix_band = band;
	k->ix_price = k->price;
	recovering_set(p, k, band < SCORE_BANDS - 1 || (k->premium && !prem));
}

void
pool_place(struct pool *p, struct lkey *k, int64_t now)
{
	double s = score_value(&k->score, now, p->par.half_life_ms);
	int64_t wake;

	if (k->status != LS_ACTIVE) {
		unindex(k);
		heap_del(p, k);
		recovering_set(p, k, 0);
		return;
	}
	if ((wake = wake_time(p, k, s, now)) > now) {
		unindex(k);
		recovering_set(p, k, 0);
		if (heap_set(p, k, wake) != 0)
			log_warnx("out of memory: key %s waits for its next outcome", k->key_id);
		return;
	}
	heap_del(p, k);
	place_indexed(p, k, s);
}

void
pool_wake(struct pool *p, int64_t now)
{
	while (p->nheap > 0 && p->heap[0]->wake_at <= now) {
		struct lkey *k = p->heap[0];

		heap_del(p, k);
		pool_place(p, k, now);
	}
}

void
pool_tick(struct pool *p, int64_t now)
{
	struct lkey *k = p->recovering, *next;

	pool_wake(p, now);
	for (; k != NULL; k = next) {
		next = k->rnext;
		pool_place(p, k, now);
	}
}

static struct lkey *
key_new(struct pool *p, const struct ipc_listing *l, int64_t now)
{
	struct ppool *pp = provider_get(p, l->provider);
	struct lkey *k;

	if (pp == NULL || (k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	snprintf(k->key_id, sizeof(k->key_id), "%s", l->key_id);
	k->hash = hash_str(k->key_id);
	k->pp = pp;
	k->heap_pos = SIZE_MAX;
	k->status = LS_REMOVED; /* until key_fill and the caller say otherwise */
	k->score.v = SCORE_NEW;
	k->score.at_ms = now;
	for (int i = 0; i < PART_MAX; i++)
		k->slot[i].item = k;
	if (p->nkeys >= p->tabsize)
		tab_grow(p);
	k->hnext = p->tab[k->hash & (p->tabsize - 1)];
	p->tab[k->hash & (p->tabsize - 1)] = k;
	p->nkeys++;
	return k;
}

/* The fields a listing write sets; a new key also gets fresh limits. */
static int
key_fill(struct lkey *k, const struct ipc_listing *l, int fresh, int64_t now)
{
	char *routes = NULL;

	if (l->routes[0] != '\0' && (routes = strdup(l->routes)) == NULL)
		return -1;
	free(k->routes);
	k->routes = routes;
	snprintf(k->seller_id, sizeof(k->seller_id), "%s", l->seller_id);
	k->price = l->price;
	snprintf(k->region, sizeof(k->region), "%s", l->region);
	k->premium = l->premium;
	/* A limit set where there was none starts with a full bucket; a changed one keeps its level. */
	if (fresh || k->caps.rpm == 0)
		k->lim.rpm = (struct bucket){(int64_t)l->rpm * 1000, now};
	if (fresh || k->caps.rpd == 0)
		k->lim.rpd = (struct bucket){(int64_t)l->rpd * 1000, now};
	k->caps.rpm = l->rpm;
	k->caps.rpd = l->rpd;
	k->caps.budget = l->daily_budget;
	k->created = l->created;
	k->updated = l->updated;
	if (fresh)
		limits_init(&k->lim, &k->caps, now);
	return 0;
}

struct lkey *
pool_put(struct pool *p, const struct ipc_listing *l, int64_t now)
{
	struct lkey *k = pool_find(p, l->key_id);
	int fresh = k == NULL, status = lstatus_parse(l->status), was;

	if (k == NULL && (k = key_new(p, l, now)) == NULL)
		return NULL;
	if (key_fill(k, l, fresh, now) != 0)
		return NULL;
	was = fresh ? status : k->status;
	k->status = status < 0 ? LS_REMOVED : status;
	if (was == LS_QUARANTINED && k->status == LS_ACTIVE) {
		/* The seller updated the key: it starts again as a new one. */
		k->score.v = SCORE_NEW;
		k->score.at_ms = now;
		k->cool_until = 0;
	}
	if (k->status != LS_QUARANTINED)
		k->reason[0] = '\0';
	else if (fresh || was != LS_QUARANTINED)
		snprintf(k->reason, sizeof(k->reason), "%s",
		    l->reason[0] != '\0' ? l->reason : "quarantined by the platform");
	pool_place(p, k, now);
	return k;
}

void
pool_each(const struct pool *p, int (*fn)(struct lkey *k, void *arg), void *arg)
{
	for (size_t i = 0; i < p->tabsize; i++)
		for (struct lkey *k = p->tab[i]; k != NULL; k = k->hnext)
			if (fn(k, arg) != 0)
				return;
}

void
pool_listing(const struct pool *p, const struct lkey *k, int64_t now, struct ipc_listing *l)
{
	double s = score_value(&k->score, now, p->par.half_life_ms);

	memset(l, 0, sizeof(*l));
	snprintf(l->key_id, sizeof(l->key_id), "%s", k->key_id);
	snprintf(l->seller_id, sizeof(l->seller_id), "%s", k->seller_id);
	snprintf(l->provider, sizeof(l->provider), "%s", k->pp->name);
	l->price = k->price;
	snprintf(l->status, sizeof(l->status), "%s", lstatus_name(k->status));
	l->created = k->created;
	snprintf(l->region, sizeof(l->region), "%s", k->region);
	l->premium = k->premium;
	snprintf(l->routes, sizeof(l->routes), "%s", k->routes != NULL ? k->routes : "");
	l->rpm = k->caps.rpm;
	l->rpd = k->caps.rpd;
	l->daily_budget = k->caps.budget;
	l->score = (uint32_t)lround(s * 1e6);
	snprintf(l->reason, sizeof(l->reason), "%s", k->reason);
	l->updated = k->updated;
}
