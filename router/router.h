/*
 * router.h — cn2-router's private interfaces.
 *
 * score.c     a key's reliability score: the formula and its constants
 * limits.c    token buckets (requests per minute and per day) and the daily budget
 * index.c     an ordered index of keys by (price, score band): a skip list of tie groups
 * pool.c      every listing in memory, by id, and in the indexes selection walks
 * select.c    the rule: which key may serve which request, and which one does
 * session.c   conversation affinity (X-CN2-Session → the key that served it), kept in router.db
 * hold.c      the limit reservation each grant holds until its OUTCOME or its expiry
 * release.c   reservations of grants that expired unused go back, durably and once
 * store.c     router.db (schema, secrets, statements, the write queue) and health
 * listings.c  LISTING_PUT, LISTING_LIST, LISTING_GET: what sellers offer
 * grant.c     QUOTE and ASSIGN (ticket in, grant out)
 * outcome.c   OUTCOME: score, quarantine, limits reconciled, request metadata
 * market.c    MARKET_STATS: the public summary per provider
 * events.c    EVENTS_PULL: the events for sellers, after platform-api's cursor
 * sweep.c     the periodic work: cool-downs that end, scores that recover, retention
 */
#ifndef CN2_ROUTER_H
#define CN2_ROUTER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "common/daemon.h"
#include "common/dbq.h"

#define ROUTER_SECRET_MAX 128
/* Highest price a listing may carry: $1,000,000 per request keeps all arithmetic far from overflow. */
#define LISTING_PRICE_MAX INT64_C(1000000000000)
#define LISTING_BUDGET_MAX INT64_C(1000000000000000)
#define LISTING_RPM_MAX 1000000
#define LISTING_RPD_MAX 10000000
#define LISTING_ROUTES_MAX 16 /* items in a listing's allowed routes */

struct router_cfg {
	char database[256];
	char ticket_secret_file[256];
	char grant_secret_file[256];
	int64_t fee_bps;	       /* platform fee on top of the seller's price, basis points */
	int64_t grant_ttl_s;	       /* how long a grant is good for */
	int64_t max_grants;	       /* grants one payment (ticket) may obtain, failovers included */
	int64_t premium_floor_pct;     /* premium keys need a score above this, in percent */
	int64_t score_half_life_s;     /* idle recovery: half the distance to 1 in this time */
	int64_t retry_after_default_s; /* cool-down after a 429 that names no Retry-After */
	int64_t retry_after_max_s;     /* the longest cool-down a Retry-After may ask for */
	int64_t session_ttl_s;	       /* affinity is forgotten after this much silence */
	int64_t sessions_max;	       /* affinity entries kept, at most */
	int64_t raw_retention_days;    /* request metadata rows, assignments and seller events */
	int64_t hourly_retention_days; /* hourly aggregates */
	int64_t sweep_interval_s;      /* how often the retention sweep runs */
};

/* score.c — see the file for the formula. */
#define SCORE_NEW 1.0	/* a new (or reinstated) key */
#define SCORE_GAIN 0.2	/* a success moves the score this share of the way to 1 */
#define SCORE_DECAY 0.5 /* an error takes this share of it away */
#define SCORE_BENCH 0.2 /* below this a key serves nobody until idle time lifts it back */
#define SCORE_BANDS 10	/* keys of one price are ordered by band, floor(score × 10) */

struct score {
	double v;      /* the value at at_ms */
	int64_t at_ms; /* unix milliseconds */
};

enum score_event { SE_SUCCESS, SE_ERROR, SE_NEUTRAL };

/* What an upstream outcome says about the key. */
enum outcome_class {
	OC_OK,	    /* the upstream answered (2xx-4xx other than those below) */
	OC_NEUTRAL, /* nothing learned: the buyer went away before the upstream answered */
	OC_ERROR,   /* 5xx, a timeout, a refused connection, a cut stream */
	OC_RATE,    /* 429: cool down for Retry-After */
	OC_AUTH,    /* 401, 403: the key is refused: quarantine */
	OC_QUOTA,   /* 402, or a 4xx whose body says so: the key's credit is gone: quarantine */
};

double score_value(const struct score *s, int64_t now_ms, int64_t half_life_ms);
void score_record(struct score *s, enum score_event e, int64_t now_ms, int64_t half_life_ms);
int score_band(double v);
/* When the score reaches target by idle recovery alone: unix ms (at_ms if it is there already). */
int64_t score_reaches(const struct score *s, double target, int64_t half_life_ms);
/* error_class: what the vault read in the error body (enum ipc_error_class). */
enum outcome_class score_classify(uint16_t status, uint8_t failure, uint8_t error_class);
enum score_event score_event_of(enum outcome_class c);

/* limits.c */
struct bucket {
	int64_t milli; /* thousandths of a token, as of at_ms */
	int64_t at_ms;
};

struct lcaps {
	uint32_t rpm, rpd; /* 0: no limit */
	int64_t budget;	   /* µUSD per UTC day; 0: no cap */
};

struct lstate {
	struct bucket rpm, rpd;
	int64_t day;   /* the UTC day (unix ms / 86400000) spent belongs to */
	int64_t spent; /* µUSD reserved that day */
};

#define DAY_MS INT64_C(86400000)

int64_t bucket_level(const struct bucket *b, uint32_t cap, int64_t window_ms, int64_t now);
void limits_init(struct lstate *st, const struct lcaps *c, int64_t now);
/* Does one more request at price fit now? */
int limits_ok(const struct lstate *st, const struct lcaps *c, int64_t price, int64_t now);
/* The earliest unix ms at which one request at price fits (INT64_MAX: never). */
int64_t limits_ready_at(const struct lstate *st, const struct lcaps *c, int64_t price,
    int64_t now);
/* Reserve one request (the caller checked limits_ok). */
void limits_take(struct lstate *st, const struct lcaps *c, int64_t price, int64_t now);
/*
 * Give back a reservation made at unix ms taken (a call that never reached
 * the upstream, a grant that expired unused). Its price returns to the
 * budget only while the budget still counts the day it was taken on.
 */
void limits_give(struct lstate *st, const struct lcaps *c, int64_t price, int64_t taken,
    int64_t now);
/* Take again a reservation given back too early (a call that outlived its grant). */
void limits_charge(struct lstate *st, const struct lcaps *c, int64_t price, int64_t taken,
    int64_t now);

/* index.c: an index of items ordered by (price ascending, band descending). */
struct igroup;
struct islot {
	struct igroup *g; /* NULL: not in this index */
	size_t pos;
	void *item;
};
struct index {
	struct igroup *head;
	int level;
	uint32_t rng;
	size_t ngroups;
};

int index_init(struct index *ix, uint32_t seed);
void index_free(struct index *ix);
/* Put slot (its item set) under (price, band). 0, or -1 when out of memory. */
int index_add(struct index *ix, struct islot *slot, int64_t price, int band);
void index_del(struct index *ix, struct islot *slot);
/* Tie groups in order; the members of one group share price and band. */
struct igroup *index_first(const struct index *ix);
struct igroup *igroup_next(const struct igroup *g);
int64_t igroup_price(const struct igroup *g);
size_t igroup_size(const struct igroup *g);
void *igroup_item(const struct igroup *g, size_t i);
size_t *igroup_turn(struct igroup *g); /* where the next pick in this group starts */

/* pool.c */
enum lstatus { LS_ACTIVE, LS_PAUSED, LS_QUARANTINED, LS_ROTATING, LS_REMOVED, LS_MAX };
/* The partitions a provider's keys are indexed in: a request walks exactly one. */
enum part { PART_ALL, PART_EU, PART_PREM, PART_PREM_EU, PART_MAX };

struct ppool;

struct lkey {
	struct lkey *hnext; /* hash chain */
	uint64_t hash;
	struct ppool *pp;
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	int64_t price; /* µUSD per request, to the seller */
	char region[IPC_REGION_MAX + 1];
	uint8_t premium;
	char *routes; /* NULL: every route the catalogue proxies */
	struct lcaps caps;
	int status; /* enum lstatus */
	char reason[128];
	int64_t created, updated; /* unix seconds */
	struct score score;
	struct lstate lim;
	int64_t cool_until; /* unix ms: a 429 or an exhausted limit keeps it out until then */
	uint32_t fail_epoch; /* bumped by each failure: breaks conversation affinity */
	/* Where the pool keeps it. */
	struct islot slot[PART_MAX];
	int64_t ix_price;
	int ix_band;
	size_t heap_pos;	    /* in the wake-up heap, or SIZE_MAX */
	int64_t wake_at;	    /* its key there */
	struct lkey *rprev, *rnext; /* on the recovering list */
	int recovering;
};

struct pool_params {
	double premium_floor;
	int64_t half_life_ms;
};

struct pool {
	struct pool_params par;
	struct lkey **tab; /* by key id */
	size_t tabsize, nkeys;
	struct ppool **prov;
	size_t nprov;
	struct lkey **heap; /* keys out of the index until wake_at */
	size_t nheap, heapcap;
	struct lkey *recovering; /* keys whose score may still rise into another band */
};

const char *lstatus_name(int s);
int lstatus_parse(const char *s); /* -1 if unknown */
int pool_init(struct pool *p, const struct pool_params *par);
void pool_free(struct pool *p);
struct lkey *pool_find(const struct pool *p, const char *key_id);
/* Create or update the listing l describes; an existing key keeps its score and limits. */
struct lkey *pool_put(struct pool *p, const struct ipc_listing *l, int64_t now);
/* Re-place k after a change of status, score, cool-down, price or limits. */
void pool_place(struct pool *p, struct lkey *k, int64_t now);
/* Keys whose cool-down has ended go back into the indexes. */
void pool_wake(struct pool *p, int64_t now);
/* pool_wake, and recovering scores re-banded. */
void pool_tick(struct pool *p, int64_t now);
const struct ppool *pool_provider(const struct pool *p, const char *name);
const struct index *ppool_index(const struct ppool *pp, enum part part);
const char *ppool_name(const struct ppool *pp);
/* Every key, in no order; fn returns nonzero to stop. */
void pool_each(const struct pool *p, int (*fn)(struct lkey *k, void *arg), void *arg);
/* Fill a LISTING for k (score as of now). */
void pool_listing(const struct pool *p, const struct lkey *k, int64_t now, struct ipc_listing *l);

/* select.c */
struct sel_req {
	const char *provider, *method, *path;
	uint8_t pool;	  /* enum ipc_pool */
	int eu;		  /* the buyer is in the EU: eu keys only */
	int64_t ceiling;  /* highest buyer price (what the ticket paid); INT64_MAX to quote */
	const char *exclude; /* comma-separated key ids already tried, or "" */
};

/* Buyer price: price + ceil(price × fee_bps / 10000). 0, or -1 on overflow or bad input. */
int select_buyer_price(int64_t price, int64_t fee_bps, int64_t *out);
/* The buyer price in a pool: premium is the standard price × 5/4, rounded up. */
int select_pool_price(int64_t price, int64_t fee_bps, uint8_t pool, int64_t *out);
/* 1 if key_id is one of the comma-separated ids in exclude. */
int select_excluded(const char *exclude, const char *key_id);
/* Does a listing's routes ("" or NULL: all) allow method and path? */
int select_route_allowed(const char *routes, const char *method, const char *path);
/* Is routes a valid list? 0, or -1 with a reason. */
int select_routes_valid(const char *routes, const char **why);
/* The whole rule for one key: 1 if k may serve rq now (at *buyer, if given). */
int select_eligible(const struct pool *p, const struct lkey *k, const struct sel_req *rq,
    int64_t fee_bps, int64_t now, int64_t *buyer);
/* The key that serves rq: cheapest, then highest score band, ties in turn. NULL if none. */
struct lkey *select_pick(struct pool *p, const struct sel_req *rq, int64_t fee_bps, int64_t now);
/* The quote: the buyer price of the key select_pick would take, and how many share it. */
int select_quote(struct pool *p, const struct sel_req *rq, int64_t fee_bps, int64_t now,
    int64_t *amount, uint32_t *keys);

/* session.c */
#define SESS_ID_LEN 16
struct sess;
struct sessions {
	struct sess **tab;
	size_t tabsize, n, max;
	int64_t ttl_ms;
	struct sess *newest, *oldest;
};

int sessions_init(struct sessions *s, size_t max, int64_t ttl_ms);
void sessions_free(struct sessions *s);
/* What is kept of a buyer's session string: the first 16 bytes of its SHA-256. 0 or -1. */
int sessions_id(const char *sid, uint8_t id[SESS_ID_LEN]);
/* The key a session last used and the key's fail epoch then; NULL if none or expired. */
const char *sessions_get(struct sessions *s, const char *sid, int64_t now, uint32_t *epoch);
const char *sessions_get_id(struct sessions *s, const uint8_t id[SESS_ID_LEN], int64_t now,
    uint32_t *epoch);
/* Remember (or move) a session to a key, used at now. 0, or -1 when out of memory. */
int sessions_set(struct sessions *s, const char *sid, const char *key_id, uint32_t epoch,
    int64_t now);
int sessions_set_id(struct sessions *s, const uint8_t id[SESS_ID_LEN], const char *key_id,
    uint32_t epoch, int64_t now);
/* Inside a batch: write one session's key and last use to router.db. 0 or -1. */
int sessions_save(sqlite3 *db, const uint8_t id[SESS_ID_LEN], const char *key_id,
    uint32_t epoch, int64_t now);
/* At start: the sessions router.db still holds within the ttl, newest max. 0, or -1. */
int sessions_load(struct sessions *s, sqlite3 *db, int64_t now, char *err, size_t errlen);
/* Inside a batch: delete rows past the ttl, and all but the newest max. 0 or -1. */
int sessions_prune(sqlite3 *db, int64_t now, int64_t ttl_ms, int64_t max);

/* hold.c: grants whose limit reservation is still held, by grant id and in expiry order. */
struct hold {
	struct hold *hnext;	  /* hash chain */
	struct hold *prev, *next; /* expiry order */
	char grant_id[IPC_KEY_ID_MAX + 1];
	char key_id[IPC_KEY_ID_MAX + 1];
	int64_t price;	 /* µUSD taken from the key's daily budget */
	int64_t taken;	 /* unix ms of the reservation */
	int64_t expires; /* unix s: the grant's expiry */
};

struct holds {
	struct hold **tab;
	size_t tabsize, n;
	struct hold *first, *last; /* soonest and latest expiry */
};

int holds_init(struct holds *h);
void holds_free(struct holds *h);
/* Remember a grant's reservation (the grant id is not held yet). NULL when out of memory. */
struct hold *holds_add(struct holds *h, const char *grant_id, const char *key_id, int64_t price,
    int64_t taken, int64_t expires);
struct hold *holds_find(const struct holds *h, const char *grant_id);
/* Forget one; x is freed. */
void holds_del(struct holds *h, struct hold *x);

/* store.c */
enum stmt_id {
	ST_GRANTS_OF_PAYMENT,
	ST_ASSIGNMENT_ADD,
	ST_STATE_SAVE,
	ST_REQUEST_ADD,
	ST_HOURLY_ADD,
	ST_QUARANTINE,
	ST_EVENT_ADD,
	ST_HOLD_END,
	ST_HOLD_EXPIRE,
	ST_MAX
};

struct router {
	const struct router_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	sqlite3_stmt *stmt[ST_MAX];
	uint8_t ticket_key[ROUTER_SECRET_MAX];
	size_t ticket_keylen;
	uint8_t grant_key[ROUTER_SECRET_MAX];
	size_t grant_keylen;
	int full_writes; /* listing writes in flight: the database runs synchronous=FULL */
	struct pool pool;
	struct sessions sessions;
	struct holds holds;
	uv_timer_t tick, sweep;
	int timers; /* timer handles open */
	uint64_t assigned, quarantined; /* since start, for health */
};

/* A key's state as saved in key_state. */
struct state_row {
	char key_id[IPC_KEY_ID_MAX + 1];
	struct score score;
	struct lstate lim;
	int64_t cool_until;
	uint32_t fail_epoch;
};

/* Open router.db (WAL, quick_check, migrations), read the secrets, load the pool. */
int router_start(struct router *r, struct daemon *d, const struct router_cfg *cfg, char *err,
    size_t errlen);
void router_stop(struct router *r);
void router_health(struct router *r, struct ipc_health_rep *rep);
/* A prepared statement of our own, reset and unbound; valid until router_stop. */
sqlite3_stmt *store_stmt(struct router *r, enum stmt_id id);
/* Inside a batch: save a key's state. 0 or -1. */
int store_state_save(struct router *r, const struct state_row *s);
void store_state_of(const struct lkey *k, struct state_row *s);
/* Queue a save of k's state as it is now (after a change no other write carries). 0 or -1. */
int store_state_push(struct router *r, const struct lkey *k);
/* Listing writes are seller data: make commits durable while one is queued. */
void store_full_begin(struct router *r);
void store_full_end(struct router *r);
int64_t router_now_ms(void);
/* Reply to req with a PROBLEM. */
void router_problem(struct router *r, const struct ipc_req *req, uint16_t status,
    const char *name, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/*
 * The end of a reply stream whose items were read from st, a row at a time:
 * rc is the last sqlite3_step's result. SQLITE_DONE: every row went out, so
 * ACK; SQLITE_ROW: the loop stopped because the requester is gone, so
 * nothing; anything else: the read failed (logged, naming what) and the
 * requester gets ERROR. Finalizes st.
 */
void router_stream_end(struct router *r, const struct ipc_req *req, sqlite3_stmt *st, int rc,
    const char *what);
/* The 503 when no key can serve a route, naming the pool and region that were asked for. */
void router_no_key(struct router *r, const struct ipc_req *req, const struct ipc_route *rt);

/* listings.c */
int listing_valid(const struct ipc_listing *l, const char **why);
void listings_put(struct router *r, const struct ipc_req *req, const struct ipc_listing *m);
void listings_list(struct router *r, const struct ipc_req *req,
    const struct ipc_listing_list *m);
void listings_get(struct router *r, const struct ipc_req *req, const struct ipc_listing_get *m);
/* At start: every listing and its saved state into the pool. 0, or -1. */
int listings_load(struct router *r, char *err, size_t errlen);

/* release.c */
/* At start: the reservations of grants with neither an OUTCOME nor an expiry yet. 0, or -1. */
int release_load(struct router *r, char *err, size_t errlen);
/* From the tick: give back what grants that expired unused held, and queue the write. */
void release_expired(struct router *r, int64_t now);

/* grant.c */
/* The selection request a route describes (ceiling and exclude left for the caller). 0 or -1. */
int grant_sel_req(const struct ipc_route *rt, struct sel_req *rq);
void grant_quote(struct router *r, const struct ipc_req *req, const struct ipc_quote *m);
void grant_assign(struct router *r, const struct ipc_req *req, const struct ipc_assign *m);

/* outcome.c */
void outcome_record(struct router *r, const struct ipc_req *req, const struct ipc_outcome *m);

/* market.c */
void market_stats(struct router *r, const struct ipc_req *req, const struct ipc_market_stats *m);

/* events.c */
void events_pull(struct router *r, const struct ipc_req *req, const struct ipc_events_pull *m);

/* sweep.c */
int sweep_start(struct router *r);
void sweep_stop(struct router *r);
/* Inside a batch: delete what is older than the retention windows allow. 0 or -1. */
int sweep_apply(sqlite3 *db, int64_t now_s, int64_t raw_days, int64_t hourly_days);

#endif
