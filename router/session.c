/*
 * session.c — conversation affinity: a buyer who sends X-CN2-Session gets
 * the key that served the session last time, as long as that key stays
 * eligible and has not failed since (its fail epoch is unchanged), so prompt
 * caches and provider-side state keep working. grant.c decides; this file
 * only remembers session → (key, epoch).
 *
 * Bounded: at most sessions_max entries, each forgotten after session_ttl_s
 * without use; when full, the least recently used goes.
 *
 * Kept in router.db too (the sessions table), so a restart keeps affinity:
 * each ASSIGN with a session writes the session's key in the same
 * transaction as its assignment (grant.c), through the write queue, so it
 * costs no commit of its own and never an fsync per request. The router
 * runs synchronous=NORMAL, so a power cut may lose the last commits; that
 * loses those few conversations' affinity, which costs a cache miss,
 * nothing more, and is accepted. At start the rows within session_ttl_s
 * are loaded, the newest sessions_max of them; the retention sweep
 * (sweep.c) deletes rows past the ttl and beyond sessions_max, so the
 * table stays within what memory would hold plus one sweep interval.
 *
 * Security stance: the session id is the buyer's own string; only its
 * SHA-256 (the first 16 bytes) is kept, in memory and on disk, never the id
 * itself, and it is never logged. It steers nothing but the choice among
 * keys the buyer paid for, so a forged or colliding id can only move a
 * buyer between eligible keys. Rows read back at start are checked (id
 * length, key id length) before they are used.
 */
#include "router/router.h"

#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

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

int
sessions_id(const char *sid, uint8_t id[SESS_ID_LEN])
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

	return sessions_id(sid, id) == 0 ? sessions_get_id(s, id, now, epoch) : NULL;
}

const char *
sessions_get_id(struct sessions *s, const uint8_t id[SESS_ID_LEN], int64_t now, uint32_t *epoch)
{
	struct sess *e;

	if ((e = sess_find(s, id)) == NULL)
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

	return sessions_id(sid, id) == 0 ? sessions_set_id(s, id, key_id, epoch, now) : -1;
}

int
sessions_set_id(struct sessions *s, const uint8_t id[SESS_ID_LEN], const char *key_id,
    uint32_t epoch, int64_t now)
{
	struct sess *e = sess_find(s, id);
	size_t b;

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

/* router.db */

int
sessions_save(sqlite3 *db, const uint8_t id[SESS_ID_LEN], const char *key_id, uint32_t epoch,
    int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT INTO sessions (id, key_id, epoch, last_used) VALUES (?1, ?2, ?3, ?4)"
	    " ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, epoch = excluded.epoch,"
	    " last_used = excluded.last_used");
	int rc;

	sqlite3_bind_blob(st, 1, id, SESS_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, epoch);
	sqlite3_bind_int64(st, 4, now);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_warnx("session of key %s: %s", key_id, sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* One row into memory; a malformed one is left out. */
static int
load_row(struct sessions *s, sqlite3_stmt *st)
{
	const void *id = sqlite3_column_blob(st, 0);
	const unsigned char *key = sqlite3_column_text(st, 1);

	if (id == NULL || sqlite3_column_bytes(st, 0) != SESS_ID_LEN || key == NULL ||
	    sqlite3_column_bytes(st, 1) == 0 || sqlite3_column_bytes(st, 1) > IPC_KEY_ID_MAX)
		return 0;
	return sessions_set_id(s, id, (const char *)key, (uint32_t)sqlite3_column_int64(st, 2),
	    sqlite3_column_int64(st, 3));
}

int
sessions_load(struct sessions *s, sqlite3 *db, int64_t now, char *err, size_t errlen)
{
	/* Oldest first, so the least recently used order comes back as it was. */
	sqlite3_stmt *st = db_prepare(db,
	    "SELECT id, key_id, epoch, last_used FROM (SELECT * FROM sessions"
	    " WHERE last_used >= ?1 ORDER BY last_used DESC LIMIT ?2) ORDER BY last_used");
	int rc;

	sqlite3_bind_int64(st, 1, now - s->ttl_ms);
	sqlite3_bind_int64(st, 2, (int64_t)s->max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (load_row(s, st) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "loading the sessions: %s",
		    rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE && s->n > 0)
		log_info("%zu conversations keep their keys", s->n);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Run one cached delete that takes one integer. 0 or -1. */
static int
prune_step(sqlite3 *db, const char *sql, int64_t v)
{
	sqlite3_stmt *st = db_stmt(db, sql);
	int rc;

	sqlite3_bind_int64(st, 1, v);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_warnx("sessions past their retention: %s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
sessions_prune(sqlite3 *db, int64_t now, int64_t ttl_ms, int64_t max)
{
	if (prune_step(db, "DELETE FROM sessions WHERE last_used < ?1", now - ttl_ms) != 0)
		return -1;
	return prune_step(db, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
			      " ORDER BY last_used DESC LIMIT -1 OFFSET ?1)", max);
}
