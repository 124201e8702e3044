/*
 * router.h — cn2-router's private interfaces.
 */
#ifndef CN2_ROUTER_H
#define CN2_ROUTER_H

#include <sqlite3.h>

#include "common/daemon.h"

struct router_cfg {
	char database[256];
};

struct router {
	const struct router_cfg *cfg;
	sqlite3 *db;
};

/* store.c: open router.db (WAL, quick_check, migrations). */
int router_start(struct router *s, const struct router_cfg *cfg, char *err, size_t errlen);
void router_stop(struct router *s);
void router_health(struct router *s, struct ipc_health_rep *rep);

/* The daemon's message handler. */
void router_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

#endif
