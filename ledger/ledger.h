/*
 * ledger.h — cn2-ledger's private interfaces.
 */
#ifndef CN2_LEDGER_H
#define CN2_LEDGER_H

#include <sqlite3.h>

#include "common/daemon.h"

struct ledger_cfg {
	char database[256];
};

struct ledger {
	const struct ledger_cfg *cfg;
	sqlite3 *db;
};

/* store.c: open ledger.db (WAL, quick_check, migrations). */
int ledger_start(struct ledger *s, const struct ledger_cfg *cfg, char *err, size_t errlen);
void ledger_stop(struct ledger *s);
void ledger_health(struct ledger *s, struct ipc_health_rep *rep);

/* The daemon's message handler. */
void ledger_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

#endif
