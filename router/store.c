/*
 * store.c — router.db: opening it, its schema migrations, the statements the
 * hot paths reuse, the secrets the router holds, and start and stop.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 *
 * Durability: the database runs synchronous=NORMAL, as DESIGN.md §7 allows
 * for the router: assignments, key state and request metadata are counters,
 * and losing the last few commits on a power cut costs statistics and a
 * few requests of a limit, no money. Listings are different: they are a
 * seller's price and status, told to the seller as done. While a listing
 * write is queued the connection switches to synchronous=FULL
 * (store_full_begin), so the commit that carries it is durable before the
 * ACK; listing writes are rare, so the cost is too. A router stopped and
 * started again (SIGTERM, a crash of the process) loses nothing committed:
 * the key state (scores, token buckets, budgets, cool-downs) is written in
 * the same transaction as the assignment or outcome that changed it and read
 * back at start, and so is whether each grant still holds its reservation
 * (release.c). Conversation affinity rides along with the assignments; a
 * power cut may lose its last commits, which costs those buyers a cache
 * miss (session.c).
 *
 * Security stance: the ticket and grant secrets are read once at start from
 * files only this daemon's user can read, never logged, and wiped at stop.
 */
#include "router/router.h"

#include <mbedtls/platform_util.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    /*
     * 3: the key pool. Listings gain region, premium opt-in, allowed routes,
     * limits and the reason of a quarantine; key_state keeps what the router
     * learns per key (score, token buckets in thousandths of a token, the
     * day's budget spent, a 429's cool-down; times in unix ms); assignments
     * and requests record the region of the key and the pool; hourly
     * aggregates outlive the raw rows (a year against 30 days); seller
     * events wait there for platform-api to deliver them.
     */
    "ALTER TABLE listings ADD COLUMN region TEXT NOT NULL DEFAULT ''"
    " CHECK (region IN ('', 'eu', 'us'));"
    "ALTER TABLE listings ADD COLUMN premium INTEGER NOT NULL DEFAULT 0 CHECK (premium IN (0, 1));"
    "ALTER TABLE listings ADD COLUMN routes TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE listings ADD COLUMN rpm INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0);"
    "ALTER TABLE listings ADD COLUMN rpd INTEGER NOT NULL DEFAULT 0 CHECK (rpd >= 0);"
    "ALTER TABLE listings ADD COLUMN daily_budget INTEGER NOT NULL DEFAULT 0"
    " CHECK (daily_budget >= 0);"
    "ALTER TABLE listings ADD COLUMN reason TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE key_state ("
    " key_id TEXT PRIMARY KEY NOT NULL,"
    " score REAL NOT NULL CHECK (score >= 0 AND score <= 1),"
    " score_at INTEGER NOT NULL,"
    " rpm_milli INTEGER NOT NULL, rpm_at INTEGER NOT NULL,"
    " rpd_milli INTEGER NOT NULL, rpd_at INTEGER NOT NULL,"
    " day INTEGER NOT NULL, spent INTEGER NOT NULL,"
    " cool_until INTEGER NOT NULL,"
    " fail_epoch INTEGER NOT NULL) STRICT;"
    "ALTER TABLE assignments ADD COLUMN region TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE assignments ADD COLUMN pool INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX assignments_created ON assignments (created);"
    "ALTER TABLE requests ADD COLUMN region TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE requests ADD COLUMN pool INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE requests_hourly ("
    " hour INTEGER NOT NULL,"
    " key_id TEXT NOT NULL,"
    " provider TEXT NOT NULL,"
    " requests INTEGER NOT NULL,"
    " ok INTEGER NOT NULL,"
    " failed INTEGER NOT NULL,"
    " latency_sum INTEGER NOT NULL,"
    " amount_sum INTEGER NOT NULL,"
    " eu INTEGER NOT NULL,"
    " premium INTEGER NOT NULL,"
    " PRIMARY KEY (hour, key_id)) STRICT;"
    "CREATE INDEX requests_hourly_provider ON requests_hourly (provider, hour);"
    "CREATE TABLE seller_events ("
    " id INTEGER PRIMARY KEY,"
    " seller_id TEXT NOT NULL,"
    " key_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " delivered INTEGER) STRICT;"
    "CREATE INDEX seller_events_pending ON seller_events (delivered, id);"
    "CREATE INDEX seller_events_created ON seller_events (created);",
    /*
     * 4: what must survive a restart besides. An assignment records its
     * grant's expiry and whether the grant still holds its limit
     * reservation (held: 1 until its OUTCOME or expiry, 2 when it expired
     * unused and the reservation went back, 0 once settled; rows from
     * before this migration are settled). sessions keeps conversation
     * affinity: the first 16 bytes of SHA-256 of the buyer's session id,
     * never the id, the key that served it, that key's fail epoch then, and
     * its last use (unix ms).
     */
    "ALTER TABLE assignments ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE assignments ADD COLUMN held INTEGER NOT NULL DEFAULT 0"
    " CHECK (held IN (0, 1, 2));"
    "CREATE INDEX assignments_held ON assignments (expires) WHERE held = 1;"
    "CREATE TABLE sessions ("
    " id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),"
    " key_id TEXT NOT NULL,"
    " epoch INTEGER NOT NULL,"
    " last_used INTEGER NOT NULL) STRICT, WITHOUT ROWID;"
    "CREATE INDEX sessions_last_used ON sessions (last_used);",
    /*
     * 5: seller event ids are never reused. platform-api reads the events
     * after a cursor of its own (events.c); a plain rowid table hands out
     * max(id) + 1, so once the retention sweep had deleted the newest
     * events, new ones would take ids at or below that cursor and never be
     * read. AUTOINCREMENT remembers the highest id ever used. SQLite cannot
     * add it to a table, so the table is built again with the same rows.
     */
    "CREATE TABLE seller_events_v5 ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " seller_id TEXT NOT NULL,"
    " key_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " delivered INTEGER) STRICT;"
    "INSERT INTO seller_events_v5 (id, seller_id, key_id, kind, detail, created, delivered)"
    " SELECT id, seller_id, key_id, kind, detail, created, delivered FROM seller_events;"
    "DROP TABLE seller_events;"
    "ALTER TABLE seller_events_v5 RENAME TO seller_events;"
    "CREATE INDEX seller_events_pending ON seller_events (delivered, id);"
    "CREATE INDEX seller_events_created ON seller_events (created);",
};

static const char *const stmt_sql[ST_MAX] = {
    [ST_GRANTS_OF_PAYMENT] = "SELECT count(*) FROM assignments WHERE payment_id = ?1",
    [ST_ASSIGNMENT_ADD] =
	"INSERT INTO assignments (grant_id, payment_id, key_id, seller_id, seller_price, amount,"
	" created, region, pool, expires, held)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)",
    [ST_STATE_SAVE] =
	"INSERT INTO key_state (key_id, score, score_at, rpm_milli, rpm_at, rpd_milli, rpd_at,"
	" day, spent, cool_until, fail_epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
	" ON CONFLICT (key_id) DO UPDATE SET score = excluded.score, score_at = excluded.score_at,"
	" rpm_milli = excluded.rpm_milli, rpm_at = excluded.rpm_at,"
	" rpd_milli = excluded.rpd_milli, rpd_at = excluded.rpd_at, day = excluded.day,"
	" spent = excluded.spent, cool_until = excluded.cool_until,"
	" fail_epoch = excluded.fail_epoch",
    [ST_REQUEST_ADD] =
	"INSERT INTO requests (time, provider, method, path, status, latency_ms, failure, amount,"
	" key_id, grant_id, region, pool)"
	" SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, a.amount, ?8, ?9, ?10, ?11"
	" FROM (SELECT 1) LEFT JOIN assignments a ON a.grant_id = ?9",
    [ST_HOURLY_ADD] =
	"INSERT INTO requests_hourly (hour, key_id, provider, requests, ok, failed, latency_sum,"
	" amount_sum, eu, premium)"
	" SELECT ?1, ?2, ?3, 1, ?4, ?5, ?6, coalesce(a.amount, 0), ?7, ?8"
	" FROM (SELECT 1) LEFT JOIN assignments a ON a.grant_id = ?9 WHERE true"
	" ON CONFLICT (hour, key_id) DO UPDATE SET requests = requests + 1,"
	" ok = ok + excluded.ok, failed = failed + excluded.failed,"
	" latency_sum = latency_sum + excluded.latency_sum,"
	" amount_sum = amount_sum + excluded.amount_sum, eu = eu + excluded.eu,"
	" premium = premium + excluded.premium",
    [ST_QUARANTINE] = "UPDATE listings SET status = 'quarantined', reason = ?2, updated = ?3"
		      " WHERE key_id = ?1 AND status != 'removed'",
    [ST_EVENT_ADD] = "INSERT INTO seller_events (seller_id, key_id, kind, detail, created)"
		     " VALUES (?1, ?2, ?3, ?4, ?5)",
    /* An OUTCOME settles its grant's reservation: held (1), or given back at expiry (2). */
    [ST_HOLD_END] = "UPDATE assignments SET held = 0 WHERE grant_id = ?1 AND held = ?2"
		    " RETURNING seller_price, created, key_id",
    [ST_HOLD_EXPIRE] = "UPDATE assignments SET held = 2 WHERE grant_id = ?1 AND held = 1",
};

int64_t
router_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sqlite3_stmt *
store_stmt(struct router *r, enum stmt_id id)
{
	sqlite3_stmt *st = r->stmt[id];

	if (st == NULL) {
		if (sqlite3_prepare_v3(r->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st,
			NULL) != SQLITE_OK)
			fatalx("prepare: %s", sqlite3_errmsg(r->db));
		r->stmt[id] = st;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

void
store_state_of(const struct lkey *k, struct state_row *s)
{
	snprintf(s->key_id, sizeof(s->key_id), "%s", k->key_id);
	s->score = k->score;
	s->lim = k->lim;
	s->cool_until = k->cool_until;
	s->fail_epoch = k->fail_epoch;
}

int
store_state_save(struct router *r, const struct state_row *s)
{
	sqlite3_stmt *st = store_stmt(r, ST_STATE_SAVE);
	int rc;

	sqlite3_bind_text(st, 1, s->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, s->score.v);
	sqlite3_bind_int64(st, 3, s->score.at_ms);
	sqlite3_bind_int64(st, 4, s->lim.rpm.milli);
	sqlite3_bind_int64(st, 5, s->lim.rpm.at_ms);
	sqlite3_bind_int64(st, 6, s->lim.rpd.milli);
	sqlite3_bind_int64(st, 7, s->lim.rpd.at_ms);
	sqlite3_bind_int64(st, 8, s->lim.day);
	sqlite3_bind_int64(st, 9, s->lim.spent);
	sqlite3_bind_int64(st, 10, s->cool_until);
	sqlite3_bind_int64(st, 11, s->fail_epoch);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_warnx("state of key %s: %s", s->key_id, sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

struct state_op {
	struct router *r;
	struct state_row s;
};

static int
state_apply(sqlite3 *db, void *arg)
{
	struct state_op *op = arg;

	(void)db;
	return store_state_save(op->r, &op->s);
}

static void
state_done(void *arg, int status)
{
	struct state_op *op = arg;

	if (status != 0)
		log_warnx("state of key %s not saved; its next change saves it", op->s.key_id);
	free(op);
}

int
store_state_push(struct router *r, const struct lkey *k)
{
	struct state_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return -1;
	op->r = r;
	store_state_of(k, &op->s);
	if (dbq_push(r->q, state_apply, state_done, op) != 0) {
		free(op);
		return -1;
	}
	return 0;
}

static int
read_secret(const char *path, uint8_t *buf, size_t *len, char *err, size_t errlen)
{
	int n = cfg_read_secret(path, buf, 32, ROUTER_SECRET_MAX, err, errlen);

	if (n < 0)
		return -1;
	*len = (size_t)n;
	return 0;
}

static int
memory_start(struct router *r, const struct router_cfg *cfg, char *err, size_t errlen)
{
	struct pool_params par = {
	    .premium_floor = (double)cfg->premium_floor_pct / 100.0,
	    .half_life_ms = cfg->score_half_life_s * 1000,
	};

	if (pool_init(&r->pool, &par) != 0 || holds_init(&r->holds) != 0 ||
	    sessions_init(&r->sessions, (size_t)cfg->sessions_max, cfg->session_ttl_s * 1000) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
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
	if (r->db == NULL || memory_start(r, cfg, err, errlen) != 0 ||
	    listings_load(r, err, errlen) != 0 || release_load(r, err, errlen) != 0 ||
	    sessions_load(&r->sessions, r->db, router_now_ms(), err, errlen) != 0)
		return -1;
	if ((r->q = dbq_new(d->loop, r->db)) == NULL || sweep_start(r) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void
router_stop(struct router *r)
{
	sweep_stop(r);
	/* dbq_free commits what is queued; its replies still go out on open connections. */
	dbq_free(r->q);
	r->q = NULL;
	for (int i = 0; i < ST_MAX; i++) {
		sqlite3_finalize(r->stmt[i]);
		r->stmt[i] = NULL;
	}
	db_close(r->db);
	r->db = NULL;
	pool_free(&r->pool);
	holds_free(&r->holds);
	sessions_free(&r->sessions);
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
	snprintf(rep->detail, sizeof(rep->detail),
	    "ok; %zu keys, %zu cooling; %llu grants, %zu held, %llu quarantined; %llu writes in"
	    " %llu commits",
	    r->pool.nkeys, r->pool.nheap, (unsigned long long)r->assigned, r->holds.n,
	    (unsigned long long)r->quarantined, dbq_writes(r->q), dbq_batches(r->q));
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

void
router_stream_end(struct router *r, const struct ipc_req *req, sqlite3_stmt *st, int rc,
    const char *what)
{
	char detail[64];

	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_warnx("%s: %s", what, sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		ipc_reply(r->d->ipc, req, IPC_ACK, NULL);
	else if (rc != SQLITE_ROW) {
		r->d->errors++;
		snprintf(detail, sizeof(detail), "%s unreadable", what);
		ipc_reply_error(r->d->ipc, req, IPC_ERR_INTERNAL, detail);
	}
}

void
router_no_key(struct router *r, const struct ipc_req *req, const struct ipc_route *rt)
{
	int eu = strcmp(rt->region, "eu") == 0;

	if (rt->pool == POOL_PREMIUM)
		router_problem(r, req, 503, "no-premium-key-available",
		    "no premium seller key%s is available for %s right now; premium requests are "
		    "never served from the standard pool",
		    eu ? " in the EU region" : "", rt->provider);
	else if (eu)
		router_problem(r, req, 503, "no-eu-key-available",
		    "no seller key in the EU region is available for %s right now; requests from "
		    "the EU are served only by keys in the EU",
		    rt->provider);
	else
		router_problem(r, req, 503, "no-key-available",
		    "no seller key is available for %s right now", rt->provider);
}
