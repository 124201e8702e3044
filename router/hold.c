/*
 * hold.c — the grants whose limit reservation is still held: issued, with
 * neither an OUTCOME from the vault nor an expiry yet.
 *
 * ASSIGN reserves a token of each bucket and the price from the budget for
 * the key it grants (grant.c). The reservation ends in one of two ways:
 * the grant's OUTCOME settles it (outcome.c), or the grant expires without
 * one and it goes back (release.c). This is the in-memory record of which
 * grants still hold one: a hash table by grant id for the OUTCOME, and a
 * list in expiry order for the tick, which looks only at its head. Grants
 * are issued with a fixed lifetime, so a new one nearly always belongs at
 * the tail; one loaded at start, or issued after grant_ttl_s was shortened,
 * walks back from the tail to its place.
 *
 * router.db is the durable copy (assignments.held, release.c loads it at
 * start); this file changes only memory.
 *
 * Security stance: memory only. Entries are bounded by the grants issued
 * within one grant lifetime (at most grant_ttl_s, an hour), since each
 * leaves at its OUTCOME or its expiry.
 */
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOLDS_TAB_MIN 1024

/* FNV-1a: grant ids are random, so any decent spread will do. */
static uint64_t
hold_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s != '\0')
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

int
holds_init(struct holds *h)
{
	memset(h, 0, sizeof(*h));
	h->tabsize = HOLDS_TAB_MIN;
	return (h->tab = calloc(h->tabsize, sizeof(*h->tab))) != NULL ? 0 : -1;
}

void
holds_free(struct holds *h)
{
	struct hold *x = h->first, *next;

	for (; x != NULL; x = next) {
		next = x->next;
		free(x);
	}
	free(h->tab);
	memset(h, 0, sizeof(*h));
}

/* Double the table when it is as full as it is long: chains stay about one long. */
static void
holds_grow(struct holds *h)
{
	size_t size = h->tabsize * 2;
	struct hold **tab = calloc(size, sizeof(*tab));

	if (tab == NULL)
		return; /* longer chains, still correct */
	for (struct hold *x = h->first; x != NULL; x = x->next) {
		size_t b = hold_hash(x->grant_id) & (size - 1);

		x->hnext = tab[b];
		tab[b] = x;
	}
	free(h->tab);
	h->tab = tab;
	h->tabsize = size;
}

/* Link x into the expiry order: after the last one that expires no later. */
static void
order_insert(struct holds *h, struct hold *x)
{
	struct hold *at = h->last;

	while (at != NULL && at->expires > x->expires)
		at = at->prev;
	x->prev = at;
	x->next = at != NULL ? at->next : h->first;
	if (x->next != NULL)
		x->next->prev = x;
	else
		h->last = x;
	if (at != NULL)
		at->next = x;
	else
		h->first = x;
}

struct hold *
holds_add(struct holds *h, const char *grant_id, const char *key_id, int64_t price, int64_t taken,
    int64_t expires)
{
	struct hold *x;
	size_t b;

	if (h->n >= h->tabsize)
		holds_grow(h);
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	snprintf(x->grant_id, sizeof(x->grant_id), "%s", grant_id);
	snprintf(x->key_id, sizeof(x->key_id), "%s", key_id);
	x->price = price;
	x->taken = taken;
	x->expires = expires;
	b = hold_hash(grant_id) & (h->tabsize - 1);
	x->hnext = h->tab[b];
	h->tab[b] = x;
	order_insert(h, x);
	h->n++;
	return x;
}

struct hold *
holds_find(const struct holds *h, const char *grant_id)
{
	for (struct hold *x = h->tab[hold_hash(grant_id) & (h->tabsize - 1)]; x != NULL;
	     x = x->hnext)
		if (strcmp(x->grant_id, grant_id) == 0)
			return x;
	return NULL;
}

void
holds_del(struct holds *h, struct hold *x)
{
	struct hold **pp = &h->tab[hold_hash(x->grant_id) & (h->tabsize - 1)];

	while (*pp != NULL && *pp != x)
		pp = &(*pp)->hnext;
	if (*pp == x)
		*pp = x->hnext;
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		h->first = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	else
		h->last = x->prev;
	h->n--;
	free(x);
}
