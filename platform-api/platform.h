/*
 * platform.h — cn2-platform's private interfaces.
 */
#ifndef CN2_PLATFORM_H
#define CN2_PLATFORM_H

#include <sqlite3.h>

#include "common/daemon.h"

struct platform_cfg {
	char database[256];
};

struct platform {
	const struct platform_cfg *cfg;
	sqlite3 *db;
};

/* store.c: open platform.db (WAL, quick_check, migrations). */
int platform_start(struct platform *s, const struct platform_cfg *cfg, char *err, size_t errlen);
void platform_stop(struct platform *s);
void platform_health(struct platform *s, struct ipc_health_rep *rep);

/* The daemon's message handler. */
void platform_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

#endif
