/*
 * platform.h — cn2-platform's private interfaces.
 *
 * store.c     platform.db (schema, the JWT secret, the write queue) and health
 * api.c       the REST routing and the JSON / problem+json replies
 * auth.c      "Authorization: Bearer <JWT>" to a seller id
 * keys.c      POST /api/keys (vault, then router, then platform.db), GET /api/keys,
 *             POST /api/keys/:id/rotate and GET /api/vault/public-key
 * keyparse.c  the POST /api/keys and rotate bodies (HPKE-sealed keys only), strictly
 * earnings.c  GET /api/earnings (the ledger's EARNINGS)
 * disputes.c  /api/disputes: open, read, resolve (the ledger's DISPUTE_*), operators only
 * disputeparse.c  their bodies, strictly
 * webhooks.c  /api/webhooks: a seller's endpoints and their signing secrets
 * hookparse.c their bodies, strictly
 * deliver.c   seller events from the router, delivered to the endpoints (Standard Webhooks)
 */
#ifndef CN2_PLATFORM_H
#define CN2_PLATFORM_H

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdint.h>

#include "common/daemon.h"
#include "common/dbq.h"
#include "common/jwt.h"

#define PLATFORM_SECRET_MAX 128
#define PLATFORM_PEER_TIMEOUT_MS 5000 /* per hop to vault or router; the edge waits 15 s */
#define KEY_PRICE_MAX INT64_C(1000000000) /* $1000 per request, in µUSD */
#define KEY_BODY_MAX 65536

struct platform_cfg {
	char database[256];
	char jwt_secret_file[256];
	char jwt_audience[64];
	char webhook_secret_file[256]; /* "": webhooks are off */
	int64_t webhook_allow_private; /* 1: http:// and private addresses (local setups, tests) */
	int64_t webhook_timeout_ms;
	int64_t webhook_poll_ms;       /* how often events are pulled and deliveries sent */
	int64_t webhook_keep_days;     /* delivery records kept this long */
};

struct deliverer;

struct platform {
	const struct platform_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	uint8_t jwt_key[PLATFORM_SECRET_MAX];
	size_t jwt_keylen;
	uint8_t webhook_key[PLATFORM_SECRET_MAX]; /* the master of every endpoint's secret */
	size_t webhook_keylen;			   /* 0: webhooks are off */
	struct deliverer *deliver;
	int stopping; /* replies still arriving must not touch the database */
};

/* store.c: open platform.db (WAL, FULL, quick_check, migrations), read the JWT secret. */
int platform_start(struct platform *p, struct daemon *d, const struct platform_cfg *cfg,
    char *err, size_t errlen);
void platform_stop(struct platform *p);
void platform_health(struct platform *p, struct ipc_health_rep *rep);
/*
 * The provider of seller's key key_id, into provider (IPC_PROVIDER_MAX + 1):
 * 1 found, 0 no such key of this seller, -1 error.
 */
int store_key_owner(sqlite3 *db, const char *key_id, const char *seller, char *provider);
/* Step a statement from db_prepare that returns no row, then finalize it. 0 or -1 (logged). */
int store_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what);
/* Inside a dbq batch: the seller (once) and the key's ownership (no secret). 0 or -1. */
int store_key_add(sqlite3 *db, const char *key_id, const char *seller_id, const char *provider,
    int64_t created);

/* api.c */
void api_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m);
/* Reply application/json with body (consumed: deleted here). */
void api_reply_json(struct platform *p, const struct ipc_req *req, uint16_t status, cJSON *body);
/* Reply an RFC 9457 problem of type https://cn2.ai/problems/<name>. */
void api_reply_problem(struct platform *p, const struct ipc_req *req, uint16_t status,
    const char *name, const char *detail);

/* auth.c: the seller behind a bearer token. 0, or -1 with a reason (no token in it). */
int auth_bearer(struct platform *p, const char *authorization, struct jwt_claims *claims,
    const char **why);

/* keyparse.c */

/* A seller's key sealed to the vault (HPKE): only the vault can open it. */
struct sealed_key {
	char kid[IPC_KID_MAX + 1];
	uint8_t enc[32];
	uint8_t ct[IPC_SEALED_MAX];
	size_t ctlen;
};

struct key_input {
	char provider[IPC_PROVIDER_MAX + 1];
	int64_t price; /* µUSD per request */
	struct ipc_listing terms; /* region, premium, routes, limits (listing.c); zero: none */
	struct sealed_key sealed;
};

/* What keys_parse and keys_parse_rotate return. */
enum { KEYS_INVALID = -1, KEYS_PLAINTEXT = -2 };

/*
 * Parse and check a POST /api/keys body. 0, or KEYS_INVALID with a reason,
 * or KEYS_PLAINTEXT when the body carries a key in clear (refused: a
 * reason says how to seal it); *in is zero on failure.
 */
int keys_parse(const uint8_t *body, size_t len, struct key_input *in, const char **why);
/* The same for a POST /api/keys/:id/rotate body: {"sealed_key"}. */
int keys_parse_rotate(const uint8_t *body, size_t len, struct sealed_key *k, const char **why);

/* keys.c */
void keys_create(struct platform *p, const struct ipc_req *req, const char *seller,
    const struct ipc_api *m);
void keys_list(struct platform *p, const struct ipc_req *req, const char *seller);
/* POST /api/keys/<key_id>/rotate: a new sealed secret for the seller's key. */
void keys_rotate(struct platform *p, const struct ipc_req *req, const char *seller,
    const char *key_id, const struct ipc_api *m);
/* GET /api/vault/public-key: the vault's key to seal to (no token needed: it is public). */
void keys_vault_pubkey(struct platform *p, const struct ipc_req *req);
/* One key as the API shows it, terms included. NULL when memory runs out. */
cJSON *keys_json(const struct ipc_listing *l);

/* terms.c: a listing's terms (region, premium, routes, limits) in JSON. */
#define LT_PRICE 0x01  /* listing_terms_parse: price_usd / price_micros too (PATCH) */
#define LT_STATUS 0x02 /* … and status ("active", "paused") */
/* Is name a term (region, premium, routes, rpm, …; with flags, price and status too)? */
int listing_term_member(const char *name, int flags);
/* Apply the terms present in the JSON object o to l. 0, or -1 with a reason. */
int listing_terms_parse(const cJSON *o, struct ipc_listing *l, int flags, const char **why);
void listing_terms_copy(struct ipc_listing *dst, const struct ipc_listing *src);
/* Add l's terms, score, status reason and update time to a key's JSON. 0, or -1. */
int listing_terms_json(cJSON *o, const struct ipc_listing *l);
/* listing.c: GET, PATCH, DELETE /api/keys/<key_id> of an authenticated seller. */
void listing_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *seller, const char *key_id);
/* After a rotation: a quarantined listing goes back to active (no answer awaited). */
void listing_reinstate(struct platform *p, const char *seller, const char *key_id);

/* market.c: GET /api/marketplace/providers (public). */
void market_providers(struct platform *p, const struct ipc_req *req, const struct ipc_api *m);

/* earnings.c: GET /api/earnings, from the ledger. */
void earnings_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m);

/* disputes.c: /api/disputes[/<id>[/resolve]], operators only, recorded by the ledger. */
void disputes_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *path);
/* disputeparse.c */
/* [A-Za-z0-9_-], 1..IPC_ID_MAX: a payment or dispute id. */
int disputes_token_ok(const char *s);
/* The POST /api/disputes body: the payment reference into ref. 0, or -1 with a reason. */
int disputes_parse_open(const uint8_t *body, size_t len, char *ref, size_t cap, const char **why);
/* The resolve body: *outcome an enum ipc_dispute_outcome. 0, or -1 with a reason. */
int disputes_parse_resolve(const uint8_t *body, size_t len, int *outcome, const char **why);

/* hookparse.c */
#define HOOK_URL_MAX 512
#define HOOK_DESC_MAX 200
#define HOOK_ID_MAX 32
#define HOOK_URL 0x01
#define HOOK_EVENTS 0x02
#define HOOK_DESC 0x04
#define HOOK_ENABLED 0x08
struct hook_input {
	char url[HOOK_URL_MAX + 1];
	char events[128]; /* "*" or kinds joined with ',' */
	char description[HOOK_DESC_MAX + 1];
	int enabled;
	unsigned have; /* HOOK_* members present */
};
/*
 * Parse a POST (create) or PATCH body; http:// only with allow_http. 0, or
 * -1 with a reason (and *in zero). A create fills the defaults.
 */
int hook_parse(const uint8_t *body, size_t len, int create, int allow_http, struct hook_input *in,
    const char **why);
/* Is url one an endpoint may have (see hookparse.c)? 0 or -1. */
int hook_url_ok(const char *url, int allow_http);
/* Is kind a seller event kind there is? */
int hook_kind_known(const char *kind);

/* webhooks.c */
void webhooks_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *path);
/* Endpoint id's signing secret, "whsec_<base64>", into out (at least 52 bytes). 0 or -1. */
int hook_secret(const struct platform *p, const char *id, char *out, size_t cap);
/* The same secret's 32 bytes (the HMAC key of the signatures). 0 or -1. */
int hook_secret_raw(const struct platform *p, const char *id, uint8_t out[32]);

/* deliver.c */
int deliver_start(struct platform *p, char *err, size_t errlen);
void deliver_stop(struct platform *p);
/* The health detail's part: events pulled, deliveries sent, due and failed. */
void deliver_health(struct platform *p, char *out, size_t cap);

#endif
