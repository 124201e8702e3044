/*
 * platform.h — cn2-platform's private interfaces.
 *
 * store.c     platform.db (schema, the JWT secret, the write queue) and health
 * api.c       the REST routing and the JSON / problem+json replies
 * auth.c      "Authorization: Bearer <JWT>" to a seller id
 * keys.c      POST /api/keys (vault, then router, then platform.db) and GET /api/keys
 * keyparse.c  the POST /api/keys body, strictly
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
#define KEY_SECRET_MIN 8
#define KEY_SECRET_MAX 4096
#define KEY_PRICE_MAX INT64_C(1000000000) /* $1000 per request, in µUSD */
#define KEY_BODY_MAX 65536

struct platform_cfg {
	char database[256];
	char jwt_secret_file[256];
	char jwt_audience[64];
};

struct platform {
	const struct platform_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	uint8_t jwt_key[PLATFORM_SECRET_MAX];
	size_t jwt_keylen;
	int stopping; /* replies still arriving must not touch the database */
};

/* store.c: open platform.db (WAL, FULL, quick_check, migrations), read the JWT secret. */
int platform_start(struct platform *p, struct daemon *d, const struct platform_cfg *cfg,
    char *err, size_t errlen);
void platform_stop(struct platform *p);
void platform_health(struct platform *p, struct ipc_health_rep *rep);
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
struct key_input {
	char provider[IPC_PROVIDER_MAX + 1];
	char key[KEY_SECRET_MAX + 1]; /* the seller's API key: wipe after use */
	size_t keylen;
	int64_t price; /* µUSD per request */
};
/* Parse and check a POST /api/keys body. 0, or -1 with a reason; wipe *in either way. */
int keys_parse(const uint8_t *body, size_t len, struct key_input *in, const char **why);

/* keys.c */
void keys_create(struct platform *p, const struct ipc_req *req, const char *seller,
    const struct ipc_api *m);
void keys_list(struct platform *p, const struct ipc_req *req, const char *seller);

#endif
