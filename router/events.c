/*
 * events.c — EVENTS_PULL: the events the router records for sellers
 * (seller_events: today 'key.quarantined', written by outcome.c in the
 * commit that quarantines the key), read by platform-api, which delivers
 * them as webhooks.
 *
 * The reader keeps its own cursor, in platform.db: it asks for the events
 * after the last id it has taken care of and gets them in id order, at most
 * max (1..256), one SELLER_EVENT each, then ACK; it asks again after the
 * last id it got until a pull brings none. Ids only grow and are never
 * reused (the table is AUTOINCREMENT since store.c's migration 5), so the
 * retention sweep emptying the table cannot hand a new event an id at or
 * below a cursor. The table's `delivered` column is not the cursor and is
 * left alone here.
 *
 * The read runs on the loop, outside any write batch, like LISTING_LIST: at
 * most 256 rows, walked by the primary key from the cursor on, so it costs
 * little whatever the table holds.
 *
 * Security stance: only platform-api may ask (the peer table). An event
 * holds a seller id, a key id, a kind and the reason the router wrote (the
 * upstream's status, the route's method and path): never a key, a body or a
 * buyer. A row that does not fit the message's bounds is logged by id and
 * left out rather than cut short.
 */
#include "router/router.h"

#include <string.h>

#include "common/db.h"
#include "common/log.h"

/* Text column col into dst[cap] whole: 0, or -1 if it is NULL, shorter than min or too long. */
static int
events_text(sqlite3_stmt *st, int col, size_t min, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (t == NULL || n < min || n >= cap || strlen((const char *)t) != n)
		return -1;
	memcpy(dst, t, n + 1);
	return 0;
}

/* One row of the pull query into ev: 0, or -1 if it cannot be sent intact. */
static int
events_row(sqlite3_stmt *st, struct ipc_seller_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = sqlite3_column_int64(st, 0);
	ev->created = sqlite3_column_int64(st, 5);
	if (events_text(st, 1, 1, ev->seller_id, sizeof(ev->seller_id)) != 0 ||
	    events_text(st, 2, 1, ev->key_id, sizeof(ev->key_id)) != 0 ||
	    events_text(st, 3, 1, ev->kind, sizeof(ev->kind)) != 0 ||
	    events_text(st, 4, 0, ev->detail, sizeof(ev->detail)) != 0)
		return -1;
	return ipc_frame_len(IPC_SELLER_EVENT, ev) > 0 ? 0 : -1;
}

void
events_pull(struct router *r, const struct ipc_req *req, const struct ipc_events_pull *m)
{
	sqlite3_stmt *st = db_prepare(r->db,
	    "SELECT id, seller_id, key_id, kind, detail, created FROM seller_events"
	    " WHERE id > ?1 ORDER BY id LIMIT ?2");
	struct ipc_seller_event ev;
	int rc;

	sqlite3_bind_int64(st, 1, m->after_id);
	sqlite3_bind_int(st, 2, m->max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (events_row(st, &ev) != 0) {
			log_warnx("seller event %lld does not fit a SELLER_EVENT: left out",
			    (long long)sqlite3_column_int64(st, 0));
			continue;
		}
		if (ipc_reply(r->d->ipc, req, IPC_SELLER_EVENT, &ev) != 0)
			break;
	}
	router_stream_end(r, req, st, rc, "seller events");
}
