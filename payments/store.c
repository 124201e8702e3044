/*
 * store.c — payments.db: opening it and its schema migrations.
 *
 * Migrations only ever append: migrations[i] takes user_version i to i + 1.
 */
#include "payments/payments.h"

#include <stdio.h>

#include "common/db.h"
#include "common/log.h"

static const char *const migrations[] = {
    /* 1: bookkeeping of the database itself. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('created', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));",
};

int
payments_start(struct payments *s, const struct payments_cfg *cfg, char *err, size_t errlen)
{
	s->cfg = cfg;
	s->db = db_open(cfg->database, DB_SYNC_FULL, migrations,
	    sizeof(migrations) / sizeof(migrations[0]), err, errlen);
	return s->db != NULL ? 0 : -1;
}

void
payments_stop(struct payments *s)
{
	db_close(s->db);
	s->db = NULL;
}

void
payments_health(struct payments *s, struct ipc_health_rep *rep)
{
	if (s->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
	}
}

void
payments_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg)
{
	(void)msg;
	log_warnx("no handler for %s from %s", ipc_type_name(type), ipc_role_name(req->from));
	ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
}
