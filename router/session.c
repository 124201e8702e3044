/*
 * session.c — conversation affinity: a buyer who sends X-CN2-Session gets
 * the key that served the session last time, as long as that key stays
 * eligible and has not failed since (its fail epoch is unchanged), so prompt
 * caches and provider-side state keep working. grant.c decides; this file
 * only remembers session → (key, epoch).
 *
 * Bounded: at most sessions_max entries, each forgotten after session_ttl_s
 * without use; when full, the least recently used goes. Memory only: a
 * router restart forgets affinity, which costs a cache miss, nothing more.
 *
 * Security stance: the session id is the buyer's own string; only its
 * SHA-256 (the first 16 bytes) is kept, never the id itself, and it is
 * never logged. It steers nothing but the choice among keys the buyer paid
 * for, so a forged or colliding id can only move a buyer between eligible
 * keys.
 */
#include "router/router.h"

#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESS_ID_LEN 16
#define SESS_TAB_MAX (1u << 20)

struct sess {
	struct sess *hnext;
	struct sess *newer, *older; /* the use order */
	uint8_t id[SESS_ID_LEN];
	char key_id[IPC_KEY_ID_MAX + 1];
	uint32_t epoch;
	int64_t last_ms;
};

int
sessions_init(struct sessions *s, size_t max, int64_t ttl_ms)
{
	size_t size = 64;

	memset(s, 0, sizeof(*s));
	while (size < max && size < SESS_TAB_MAX)
		size *= 2;
	s->tabsize = size;
	s->max = max;
	s->ttl_ms = ttl_ms;
	return (s->tab = calloc(size, sizeof(*s->tab))) != NULL ? 0 : -1;
}

void
sessions_free(struct sessions *s)
{
	struct sess *e = s->newest, *next;

	for (; e != NULL; e = next) {
		next = e->older;
		free(e);
	}
	free(s->tab);
	memset(s, 0, sizeof(*s));
}

static size_t
bucket_of(const struct sessions *s, const uint8_t id[SESS_ID_LEN])
{
	return (((size_t)id[0] << 24) | ((size_t)id[1] << 16) | ((size_t)id[2] << 8) | id[3]) &
	    (s->tabsize - 1);
}

static void
order_unlink(struct sessions *s, struct sess *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		s->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		s->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void
order_front(struct sessions *s, struct sess *e)
{
	e->older = s->newest;
	e->newer = NULL;
	if (s->newest != NULL)
		s->newest->newer = e;
	s->newest = e;
	if (s->oldest == NULL)
		s->oldest = e;
}

/* Remove and free one entry. */
static void
sess_drop(struct sessions *s, struct sess *e)
{
	struct sess **pp = &s->tab[bucket_of(s, e->id)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
	order_unlink(s, e);
	s->n--;
	free(e);
}

/* The id of a session: the first 16 bytes of SHA-256 of the buyer's string. 0 or -1. */
static int
sess_id(const char *sid, uint8_t id[SESS_ID_LEN])
{
	uint8_t d[32];

	if (mbedtls_sha256_ret((const unsigned char *)sid, strlen(sid), d, 0) != 0)
		return -1;
	memcpy(id, d, SESS_ID_LEN);
	return 0;
}

static struct sess *
sess_find(const struct sessions *s, const uint8_t id[SESS_ID_LEN])
{
	for (struct sess *e = s->tab[bucket_of(s, id)]; e != NULL; e = e->hnext)
		if (memcmp(e->id, id, SESS_ID_LEN) == 0)
			return e;
	return NULL;
}

const char *
sessions_get(struct sessions *s, const char *sid, int64_t now, uint32_t *epoch)
{
	uint8_t id[SESS_ID_LEN];
	struct sess *e;

	if (sess_id(sid, id) != 0 || (e = sess_find(s, id)) == NULL)
		return NULL;
	if (now - e->last_ms > s->ttl_ms) {
		sess_drop(s, e);
		return NULL;
	}
	*epoch = e->epoch;
	return e->key_id;
}

int
sessions_set(struct sessions *s, const char *sid, const char *key_id, uint32_t epoch,
    int64_t now)
{
	uint8_t id[SESS_ID_LEN];
	struct sess *e;
	size_t b;

	if (sess_id(sid, id) != 0)
		return -1;
	e = sess_find(s, id);
	b = bucket_of(s, id);
	while (s->oldest != NULL && s->oldest != e &&
	    (s->n >= s->max || now - s->oldest->last_ms > s->ttl_ms))
		sess_drop(s, s->oldest);
	if (e == NULL) {
		if (s->max == 0 || (e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		memcpy(e->id, id, SESS_ID_LEN);
		e->hnext = s->tab[b];
		s->tab[b] = e;
		s->n++;
	} else {
		order_unlink(s, e);
	}
	order_front(s, e);
	snprintf(e->key_id, sizeof(e->key_id), "%s", key_id);
	e->epoch = epoch;
	e->last_ms = now;
	return 0;
}
