/*
 * payments.h — cn2-payments's private interfaces.
 */
#ifndef CN2_PAYMENTS_H
#define CN2_PAYMENTS_H

#include <sqlite3.h>

#include "common/daemon.h"

struct payments_cfg {
	char database[256];
};

struct payments {
	const struct payments_cfg *cfg;
	sqlite3 *db;
};

/* store.c: open payments.db (WAL, quick_check, migrations). */
int payments_start(struct payments *s, const struct payments_cfg *cfg, char *err, size_t errlen);
void payments_stop(struct payments *s);
void payments_health(struct payments *s, struct ipc_health_rep *rep);

/* The daemon's message handler. */
void payments_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

#endif
