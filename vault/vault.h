/*
 * vault.h — cn2-vault's private interfaces.
 */
#ifndef CN2_VAULT_H
#define CN2_VAULT_H

#include <sqlite3.h>

#include "common/daemon.h"

struct vault_cfg {
	char database[256];
};

struct vault {
	const struct vault_cfg *cfg;
	sqlite3 *db;
};

/* store.c: open vault.db (WAL, quick_check, migrations). */
int vault_start(struct vault *s, const struct vault_cfg *cfg, char *err, size_t errlen);
void vault_stop(struct vault *s);
void vault_health(struct vault *s, struct ipc_health_rep *rep);

/* The daemon's message handler. */
void vault_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

#endif
