/*
 * setup.c — cn2-payments's state over its life: start (secrets, payments.db,
 * the group commit, the sweep), the message dispatch, the ledger link, and
 * a stop that leaves nothing half done.
 *
 * Security stance: the challenge and ticket secrets are required and must
 * be at least MPP_SECRET_MIN bytes from files only we can read
 * (cfg_read_secret); a short or readable one stops the daemon at start with
 * a message naming the key, never the contents. The test method is on only
 * when test_secret_file names a file. Secrets are wiped at stop.
 *
 * Stop order: refuse new ledger requests, tell every open ledger request's
 * owner "no answer" (a VERIFY waiting on its pending transfer releases its
 * reservation and answers 503), run the write queue until it is empty
 * (done() callbacks may queue more), then close the database.
 */
#include "payments/payments.h"

#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

struct pay_write {
	struct payments *s;
	dbq_apply_fn apply;
	dbq_done_fn done;
	void *arg;
};

static int
write_apply(sqlite3 *db, void *arg)
{
	struct pay_write *w = arg;

	return w->apply(db, w->arg);
}

static void
write_done(void *arg, int status)
{
	struct pay_write *w = arg;

	w->s->writes--;
	w->done(w->arg, status);
	free(w);
}

int
pay_write(struct payments *s, dbq_apply_fn apply, dbq_done_fn done, void *arg)
{
	struct pay_write *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -1;
	w->s = s;
	w->apply = apply;
	w->done = done;
	w->arg = arg;
	if (dbq_push(s->q, write_apply, write_done, w) != 0) {
		free(w);
		return -1;
	}
	s->writes++;
	return 0;
}

/* Read one secret file into sec; an empty path leaves it off when optional. */
static int
load_secret(const char *key, const char *path, int required, struct pay_secret *sec, char *err,
    size_t errlen)
{
	char why[256];
	int n;

	sec->len = 0;
	if (*path == '\0' && !required)
		return 0;
	if ((n = cfg_read_secret(path, sec->key, MPP_SECRET_MIN, PAY_SECRET_MAX, why,
		 sizeof(why))) < 0) {
		snprintf(err, errlen, "%s: %s (need %d to %d bytes, readable by us only)", key, why,
		    MPP_SECRET_MIN, PAY_SECRET_MAX);
		return -1;
	}
	sec->len = (size_t)n;
	return 0;
}

static void
wipe_keys(struct pay_keys *k)
{
	mbedtls_platform_zeroize(k, sizeof(*k));
}

int
payments_start(struct payments *s, struct daemon *d, const struct payments_cfg *cfg,
    char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->d = d;
	if (load_secret("challenge_secret_file", cfg->challenge_secret_file, 1, &s->keys.challenge,
		err, errlen) != 0 ||
	    load_secret("ticket_secret_file", cfg->ticket_secret_file, 1, &s->keys.ticket, err,
		errlen) != 0 ||
	    load_secret("test_secret_file", cfg->test_secret_file, 0, &s->keys.test, err,
		errlen) != 0) {
		wipe_keys(&s->keys);
		return -1;
	}
	if ((s->db = pay_store_open(cfg->database, err, errlen)) == NULL) {
		wipe_keys(&s->keys);
		return -1;
	}
	if ((s->q = dbq_new(d->loop, s->db)) == NULL)
		fatalx("out of memory");
	pay_sweep_start(s);
	log_info("payment methods: test %s", s->keys.test.len > 0 ? "on" : "off");
	return 0;
}

void
payments_stop(struct payments *s)
{
	if (s->db == NULL)
		return;
	s->stopping = 1;
	pay_sweep_stop(s);
	pay_ledger_cancel_all(s);
	while (s->writes > 0)
		dbq_flush(s->q);
	dbq_free(s->q);
	s->q = NULL;
	db_close(s->db);
	s->db = NULL;
	wipe_keys(&s->keys);
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
payments_link(struct payments *s, enum ipc_role peer, int up)
{
	/* Postings owed to the ledger go out as soon as it is back. */
	if (peer == ROLE_LEDGER && up)
		pay_outbox_flush(s);
}

void
payments_request(struct daemon *d, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg)
{
	struct payments *s = d->priv;

	switch (type) {
	case IPC_CHALLENGE:
		pay_on_challenge(s, req, &msg->challenge);
		break;
	case IPC_VERIFY:
		pay_on_verify(s, req, &msg->verify);
		break;
	case IPC_SETTLE:
		pay_on_settle(s, req, &msg->settle);
		break;
	default:
		log_warnx("no handler for %s from %s", ipc_type_name(type), ipc_role_name(req->from));
		ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
		break;
	}
}
