/*
 * router.h — cn2-router's private interfaces.
 *
 * store.c     router.db (schema, secrets, the write queue) and health
 * select.c    the choice of a key, as pure functions over candidate rows
 * listings.c  listings: QUOTE, LISTING_PUT, LISTING_LIST, candidate rows
 * grant.c     ASSIGN (ticket in, grant out) and OUTCOME (request metadata)
 */
#ifndef CN2_ROUTER_H
#define CN2_ROUTER_H

#include <sqlite3.h>
#include <stdint.h>

#include "common/daemon.h"
#include "common/dbq.h"

#define ROUTER_SECRET_MAX 128
/* Most listings one choice looks at: the cheapest ones for the provider. */
#define ROUTER_CANDIDATES_MAX 256

struct router_cfg {
	char database[256];
	char ticket_secret_file[256];
	char grant_secret_file[256];
	int64_t fee_bps;     /* platform fee on top of the seller's price, basis points */
	int64_t grant_ttl_s; /* how long a grant is good for */
	int64_t max_grants;  /* grants one payment (ticket) may obtain, failovers included */
};

struct router {
	const struct router_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	uint8_t ticket_key[ROUTER_SECRET_MAX];
	size_t ticket_keylen;
	uint8_t grant_key[ROUTER_SECRET_MAX];
	size_t grant_keylen;
	uint64_t spread; /* round-robin counter: spreads ties between equal keys */
	int full_writes; /* listing writes in flight: the database runs synchronous=FULL */
};

/* store.c: open router.db (WAL, quick_check, migrations), read the secrets. */
int router_start(struct router *r, struct daemon *d, const struct router_cfg *cfg, char *err,
    size_t errlen);
void router_stop(struct router *r);
void router_health(struct router *r, struct ipc_health_rep *rep);
/* Listing writes are seller data: make commits durable while one is queued. */
void store_full_begin(struct router *r);
void store_full_end(struct router *r);
/* Reply to req with a PROBLEM. */
void router_problem(struct router *r, const struct ipc_req *req, uint16_t status,
    const char *name, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* select.c: one listing as the choice sees it. */
struct sel_cand {
	const char *key_id;
	int64_t price; /* the seller's price, µUSD */
};

/* Buyer price: price + ceil(price × fee_bps / 10000). 0, or -1 on overflow or bad input. */
int select_buyer_price(int64_t price, int64_t fee_bps, int64_t *out);
/* 1 if key_id is one of the comma-separated ids in exclude. */
int select_excluded(const char *exclude, const char *key_id);
/*
 * Choose among candidates (any order): the cheapest whose buyer price is at
 * most ceiling and that exclude does not name. Among equally cheap ones,
 * spread picks which (spread modulo their number). Returns the index, or -1.
 */
int select_pick(const struct sel_cand *c, size_t n, int64_t fee_bps, int64_t ceiling,
    const char *exclude, uint64_t spread);

/* listings.c */
struct cand_row {
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	int64_t price;
};
/* The cheapest active listings of provider, cheapest first: count, or -1 on error. */
int listings_candidates(struct router *r, const char *provider, struct cand_row *rows,
    size_t max);
int listing_valid(const struct ipc_listing *l, const char **why);
void listings_quote(struct router *r, const struct ipc_req *req, const struct ipc_quote *m);
void listings_put(struct router *r, const struct ipc_req *req, const struct ipc_listing *m);
void listings_list(struct router *r, const struct ipc_req *req,
    const struct ipc_listing_list *m);

/* grant.c */
void grant_assign(struct router *r, const struct ipc_req *req, const struct ipc_assign *m);
void grant_outcome(struct router *r, const struct ipc_req *req, const struct ipc_outcome *m);

#endif
