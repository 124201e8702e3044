/*
 * index.c — an ordered index of keys: a skip list of tie groups.
 *
 * A group holds every key of one (price, band); groups are ordered by price
 * ascending, then band descending (higher scores first). Selection walks the
 * groups from the first and, inside a group, takes the keys in turn from a
 * cursor, so equally good keys share the traffic. Finding where a key goes
 * is O(log g) expected for g groups (a skip list with p = 1/4); adding a key
 * to its group and removing it (swap with the last) are O(1), because each
 * key's slot remembers its group and position. Reaching the cheapest group
 * is O(1): that is what makes a choice independent of how many keys are
 * listed (DESIGN.md §5, an index and not a scan).
 *
 * Security stance: memory only, no outside input. Allocation failures are
 * reported to the caller, which leaves that key out of the index and logs.
 */
#include "router/router.h"

#include <stdlib.h>
#include <string.h>

#define IX_LEVELS 20 /* 4^20 groups before the list degrades: far beyond any listing count */

struct igroup {
	int64_t price;
	int band;
	struct islot **v;
	size_t n, cap, turn;
	int levels;
	struct igroup *next[]; /* levels entries */
};

static void group_remove(struct index *ix, struct igroup *g);

static struct igroup *
group_new(int levels)
{
	struct igroup *g = calloc(1, sizeof(*g) + (size_t)levels * sizeof(g->next[0]));

	if (g != NULL)
		g->levels = levels;
	return g;
}

int
index_init(struct index *ix, uint32_t seed)
{
	memset(ix, 0, sizeof(*ix));
	ix->rng = seed != 0 ? seed : 0x9e3779b9u;
	ix->level = 1;
	return (ix->head = group_new(IX_LEVELS)) != NULL ? 0 : -1;
}

void
index_free(struct index *ix)
{
	struct igroup *g = ix->head, *next;

	while (g != NULL) {
		next = g->next[0];
		free(g->v);
		free(g);
		g = next;
	}
	ix->head = NULL;
}

/* Does g come before (price, band)? */
static int
before(const struct igroup *g, int64_t price, int band)
{
	return g->price < price || (g->price == price && g->band > band);
}

/* The last group before (price, band) on every level, into up[]. */
static void
find(const struct index *ix, int64_t price, int band, struct igroup **up)
{
	struct igroup *g = ix->head;

	for (int l = IX_LEVELS - 1; l >= 0; l--) {
		while (l < ix->level && g->next[l] != NULL && before(g->next[l], price, band))
			g = g->next[l];
		up[l] = g;
	}
}

static int
random_level(struct index *ix)
{
	int l = 1;

	/* xorshift32; two bits per level: p = 1/4. */
	ix->rng ^= ix->rng << 13;
	ix->rng ^= ix->rng >> 17;
	ix->rng ^= ix->rng << 5;
	for (uint32_t r = ix->rng; l < IX_LEVELS && (r & 3) == 0; r >>= 2)
		l++;
	return l;
}

static struct igroup *
group_insert(struct index *ix, struct igroup **up, int64_t price, int band)
{
	int levels = random_level(ix);
	struct igroup *g = group_new(levels);

	if (g == NULL)
		return NULL;
	g->price = price;
	g->band = band;
	for (int l = ix->level; l < levels; l++)
		up[l] = ix->head;
	if (levels > ix->level)
		ix->level = levels;
	for (int l = 0; l < levels; l++) {
		g->next[l] = up[l]->next[l];
		up[l]->next[l] = g;
	}
	ix->ngroups++;
	return g;
}

int
index_add(struct index *ix, struct islot *slot, int64_t price, int band)
{
	struct igroup *up[IX_LEVELS], *g;
	struct islot **v;

	find(ix, price, band, up);
	g = up[0]->next[0];
	if (g == NULL || g->price != price || g->band != band)
		g = group_insert(ix, up, price, band);
	if (g == NULL)
		return -1;
	if (g->n == g->cap) {
		size_t cap = g->cap != 0 ? g->cap * 2 : 4;

		if ((v = realloc(g->v, cap * sizeof(*v))) == NULL) {
			if (g->n == 0)
				group_remove(ix, g);
			return -1;
		}
		g->v = v;
		g->cap = cap;
	}
	slot->g = g;
	slot->pos = g->n;
	g->v[g->n++] = slot;
	return 0;
}

/* Unlink and free an empty group. */
static void
group_remove(struct index *ix, struct igroup *g)
{
	struct igroup *up[IX_LEVELS];

	find(ix, g->price, g->band, up);
	for (int l = 0; l < g->levels; l++)
		if (up[l]->next[l] == g)
			up[l]->next[l] = g->next[l];
	while (ix->level > 1 && ix->head->next[ix->level - 1] == NULL)
		ix->level--;
	ix->ngroups--;
	free(g->v);
	free(g);
}

void
index_del(struct index *ix, struct islot *slot)
{
	struct igroup *g = slot->g;

	if (g == NULL)
		return;
	g->v[slot->pos] = g->v[g->n - 1];
	g->v[slot->pos]->pos = slot->pos;
	g->n--;
	if (g->turn >= g->n)
		g->turn = 0;
	slot->g = NULL;
	if (g->n == 0)
		group_remove(ix, g);
}

struct igroup *
index_first(const struct index *ix)
{
	return ix->head->next[0];
}

struct igroup *
igroup_next(const struct igroup *g)
{
	return g->next[0];
}

int64_t
igroup_price(const struct igroup *g)
{
	return g->price;
}

size_t
igroup_size(const struct igroup *g)
{
	return g->n;
}

void *
igroup_item(const struct igroup *g, size_t i)
{
	return g->v[i]->item;
}

size_t *
igroup_turn(struct igroup *g)
{
	return &g->turn;
}
