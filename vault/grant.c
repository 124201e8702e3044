/*
 * grant.c — the router's grant, checked before anything goes upstream, and
 * the set of grants already used.
 *
 * A grant is the router's word (a MAC under the secret only router and vault
 * hold) that one key may be used once, for one payment and route, until it
 * expires. The vault recomputes the MAC and compares in constant time, checks
 * the expiry, checks the route against its own catalogue, and checks that
 * the request target is for exactly the granted path: the edge, which
 * carries the grant, can neither forge one nor stretch one to another path.
 *
 * Single use: the ids of used grants are kept in memory (this set) and in
 * vault.db (store.c), each until it expires; an expired grant is refused by
 * its expiry, so forgetting it then changes nothing.
 */
#include "vault/vault.h"

#include <stdlib.h>
#include <string.h>

#include "common/capab.h"

#define GRANT_BUCKETS_MIN 256
/*
 * The router gives grants at most an hour (its grant_ttl_s); one that claims
 * more is refused, which also bounds how long a used id must be remembered.
 */
#define GRANT_TTL_MAX_S (3600 + 60)

struct grant_used {
	struct grant_used *next;
	int64_t expires;
	char id[IPC_KEY_ID_MAX + 1];
};

/* FNV-1a: the ids are MAC-protected router output, not attacker-chosen keys. */
static size_t
grant_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

int
grant_set_init(struct grant_set *s)
{
	s->nb = GRANT_BUCKETS_MIN;
	s->n = 0;
	s->b = calloc(s->nb, sizeof(*s->b));
	return s->b != NULL ? 0 : -1;
}

void
grant_set_free(struct grant_set *s)
{
	struct grant_used *u, *next;

	for (size_t i = 0; s->b != NULL && i < s->nb; i++)
		for (u = s->b[i]; u != NULL; u = next) {
			next = u->next;
			free(u);
		}
	free(s->b);
	memset(s, 0, sizeof(*s));
}

int
grant_set_has(const struct grant_set *s, const char *grant_id)
{
	const struct grant_used *u = s->b[grant_hash(grant_id) & (s->nb - 1)];

	for (; u != NULL; u = u->next)
		if (strcmp(u->id, grant_id) == 0)
			return 1;
	return 0;
}

/* Double the buckets when the chains grow long; on failure keep the old table. */
static void
grant_set_grow(struct grant_set *s)
{
	size_t nb = s->nb * 2;
	struct grant_used **b = calloc(nb, sizeof(*b)), *u, *next;

	if (b == NULL)
		return;
	for (size_t i = 0; i < s->nb; i++)
		for (u = s->b[i]; u != NULL; u = next) {
			size_t h = grant_hash(u->id) & (nb - 1);

			next = u->next;
			u->next = b[h];
			b[h] = u;
		}
	free(s->b);
	s->b = b;
	s->nb = nb;
}

int
grant_set_add(struct grant_set *s, const char *grant_id, int64_t expires)
{
	struct grant_used *u;
	size_t h, len = strlen(grant_id);

	if (len > IPC_KEY_ID_MAX || (u = calloc(1, sizeof(*u))) == NULL)
		return -1;
	memcpy(u->id, grant_id, len + 1);
	u->expires = expires;
	if (s->n >= s->nb * 2)
		grant_set_grow(s);
	h = grant_hash(grant_id) & (s->nb - 1);
	u->next = s->b[h];
	s->b[h] = u;
	s->n++;
	return 0;
}

size_t
grant_set_prune(struct grant_set *s, int64_t t)
{
	struct grant_used **pp, *u;
	size_t gone = 0;

	for (size_t i = 0; i < s->nb; i++)
		for (pp = &s->b[i]; (u = *pp) != NULL;) {
			if (u->expires < t) {
				*pp = u->next;
				free(u);
				gone++;
			} else
				pp = &u->next;
		}
	s->n -= gone;
	return gone;
}

/* The target's path: everything before '?'. */
static size_t
target_path_len(const char *target)
{
	const char *q = strchr(target, '?');

	return q != NULL ? (size_t)(q - target) : strlen(target);
}

int
grant_verify(const uint8_t *secret, size_t secretlen, const struct providers *cat,
    const struct ipc_forward *f, int64_t now, const struct provider **pv, const char **why)
{
	const struct ipc_grant *g = &f->grant;
	const struct ipc_route *r = &g->route;
	uint8_t want[IPC_MAC_LEN];
	int bad;

	*pv = NULL;
	if (capab_grant_mac(secret, secretlen, g, want) != 0) {
		*why = "cannot compute the grant MAC";
		return -1;
	}
	bad = capab_equal(&g->mac, want);
	memset(want, 0, sizeof(want));
	if (bad) {
		*why = "the grant MAC does not verify";
		return -1;
	}
	if (g->expires <= now) {
		*why = "the grant has expired";
		return -1;
	}
	if (g->expires > now + GRANT_TTL_MAX_S) {
		*why = "the grant's expiry is too far ahead";
		return -1;
	}
	if ((*pv = providers_find(cat, r->provider, strlen(r->provider))) == NULL) {
		*why = "the grant's provider is not in the catalogue";
		return -1;
	}
	if (!provider_route_allowed(*pv, r->method, strlen(r->method), r->path, strlen(r->path))) {
		*why = "the grant's route is not allowed for its provider";
		return -1;
	}
	if (target_path_len(f->target) != strlen(r->path) ||
	    memcmp(f->target, r->path, strlen(r->path)) != 0) {
		*why = "the request path is not the granted path";
		return -1;
	}
	return 0;
}
