/*
 * store.c — router.db: opening it, its schema migrations, the secrets the
 * router holds, and the group-commit queue every write goes through.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 *
 * Durability: the database runs synchronous=NORMAL, as DESIGN.md §7 allows
 * for the router: assignments and request metadata are counters, and losing
 * the last few commits on a power cut costs nothing but statistics. Listings
 * are different: they are a seller's price and status, told to the seller as
 * done. While a listing write is queued the connection switches to
 * synchronous=FULL (store_full_begin), so the commit that carries it is
 * durable before the ACK; listing writes are rare, so the cost is too.
 *
 * Security stance: the ticket and grant secrets are read once at start from
 * files only this daemon's user can read, never logged, and wiped at stop.
 */
#include "router/router.h"

#include <mbedtls/platform_util.h>
#include <stdarg.h>
#include <stdio.h>

#include "common/db.h"
#include "common/log.h"

static const char *const migrations[] = {
    /* 1: bookkeeping of the database itself. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('created', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));",
    /*
     * 2: listings, the grants handed out, and request metadata. Times are
     * unix seconds. requests never holds a body, a header or an address.
     */
    "CREATE TABLE listings ("
    " key_id TEXT PRIMARY KEY NOT NULL,"
    " seller_id TEXT NOT NULL,"
    " provider TEXT NOT NULL,"
    " price INTEGER NOT NULL CHECK (price > 0),"
    " status TEXT NOT NULL"
    "  CHECK (status IN ('active', 'paused', 'quarantined', 'rotating', 'removed')),"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL) STRICT;"
    "CREATE INDEX listings_choice ON listings (provider, status, price);"
    "CREATE INDEX listings_seller ON listings (seller_id);"
    "CREATE TABLE assignments ("
    " grant_id TEXT PRIMARY KEY NOT NULL,"
    " payment_id TEXT NOT NULL,"
    " key_id TEXT NOT NULL,"
    " seller_id TEXT NOT NULL,"
    " seller_price INTEGER NOT NULL,"
    " amount INTEGER NOT NULL,"
    " created INTEGER NOT NULL) STRICT;"
    "CREATE INDEX assignments_payment ON assignments (payment_id);"
    "CREATE TABLE requests ("
    " id INTEGER PRIMARY KEY,"
    " time INTEGER NOT NULL,"
    " provider TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " path TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " latency_ms INTEGER NOT NULL,"
    " failure INTEGER NOT NULL,"
    " amount INTEGER,"
    " key_id TEXT NOT NULL,"
    " grant_id TEXT NOT NULL) STRICT;"
    "CREATE INDEX requests_time ON requests (time);",
};

static int
read_secret(const char *path, uint8_t *buf, size_t *len, char *err, size_t errlen)
{
	int n = cfg_read_secret(path, buf, 32, ROUTER_SECRET_MAX, err, errlen);

	if (n < 0)
		return -1;
	*len = (size_t)n;
	return 0;
}

int
router_start(struct router *r, struct daemon *d, const struct router_cfg *cfg, char *err,
    size_t errlen)
{
	r->cfg = cfg;
	r->d = d;
	if (read_secret(cfg->ticket_secret_file, r->ticket_key, &r->ticket_keylen, err, errlen) != 0 ||
	    read_secret(cfg->grant_secret_file, r->grant_key, &r->grant_keylen, err, errlen) != 0)
		return -1;
	r->db = db_open(cfg->database, DB_SYNC_NORMAL, migrations,
	    sizeof(migrations) / sizeof(migrations[0]), err, errlen);
	if (r->db == NULL)
		return -1;
	if ((r->q = dbq_new(d->loop, r->db)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void
router_stop(struct router *r)
{
	/* dbq_free commits what is queued; its replies still go out on open connections. */
	dbq_free(r->q);
	r->q = NULL;
	db_close(r->db);
	r->db = NULL;
	mbedtls_platform_zeroize(r->ticket_key, sizeof(r->ticket_key));
	mbedtls_platform_zeroize(r->grant_key, sizeof(r->grant_key));
}

void
router_health(struct router *r, struct ipc_health_rep *rep)
{
	if (r->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
		return;
	}
	snprintf(rep->detail, sizeof(rep->detail), "ok; %llu writes in %llu commits",
	    dbq_writes(r->q), dbq_batches(r->q));
}

/*
 * Called only from a request handler, never from inside a dbq batch, so no
 * transaction is open and the pragma takes effect for the next commit.
 */
void
store_full_begin(struct router *r)
{
	if (r->full_writes++ == 0 && db_exec(r->db, "PRAGMA synchronous=FULL") != SQLITE_OK)
		log_warnx("cannot switch to synchronous=FULL");
}

/* Called from a dbq done callback: the batch's transaction has ended. */
void
store_full_end(struct router *r)
{
	if (--r->full_writes == 0 && db_exec(r->db, "PRAGMA synchronous=NORMAL") != SQLITE_OK)
		log_warnx("cannot switch back to synchronous=NORMAL");
}

void
router_problem(struct router *r, const struct ipc_req *req, uint16_t status, const char *name,
    const char *fmt, ...)
{
	struct ipc_problem p;
	va_list ap;

	p.status = status;
	snprintf(p.name, sizeof(p.name), "%s", name);
	va_start(ap, fmt);
	vsnprintf(p.detail, sizeof(p.detail), fmt, ap);
	va_end(ap);
	if (ipc_reply(r->d->ipc, req, IPC_PROBLEM, &p) != 0)
		log_debug("%s: the requester is gone", name);
}
