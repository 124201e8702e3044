/*
 * setup.c — cn2-payments's state over its life: start (secrets, payments.db,
 * the group commit, the sweep), the message dispatch, the ledger link, and
 * a stop that leaves nothing half done.
 *
 * Security stance: the challenge and ticket secrets are required and must
 * be at least MPP_SECRET_MIN bytes from files only we can read
 * (cfg_read_secret); a short or readable one stops the daemon at start with
 * a message naming the key, never the contents. The test method is on only
 * when test_secret_file names a file; each processor's credential (LND
 * macaroon, Stripe key) is read the same way. Secrets are wiped at stop.
 *
 * Rotation: SIGHUP re-reads blocked_buyers_file (policy.c) and challenge_secret_file. A new secret signs every
 * challenge from then on; the one it replaces keeps verifying ids of
 * challenges that expire within challenge_ttl_s of the reload (those are
 * all it can have issued), then is wiped. A secret under 32 bytes refuses
 * to load and the running one stays. challenge_previous_secret_file does
 * the same across a restart: honoured for challenge_ttl_s after start.
 *
 * Stop order: refuse new ledger requests, end every processor call (a
 * VERIFY waiting on one releases its reservation), tell every open ledger
 * request's owner "no answer" (a VERIFY waiting on its pending transfer
 * releases its reservation and answers 503), run the write queue until it
 * is empty (done() callbacks may queue more), then close the database.
 */
#include "payments/payments.h"

#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"
#include "common/timefmt.h"

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

/* A processor's credential (text: a hex macaroon, an API key); "" leaves it off. */
static int
load_cred(const char *key, const char *path, struct pay_cred *c, char *err, size_t errlen)
{
	char why[256];
	int n;

	c->len = 0;
	if (*path == '\0')
		return 0;
	if ((n = cfg_read_secret(path, (uint8_t *)c->text, 16, PAY_CRED_MAX, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "%s: %s (need 16 to %d bytes, readable by us only)", key, why,
		    PAY_CRED_MAX);
		return -1;
	}
	c->text[n] = '\0';
	for (int i = 0; i < n; i++)
		if (c->text[i] <= ' ' || c->text[i] > '~') {
			snprintf(err, errlen, "%s: not printable text", key);
			return -1;
		}
	c->len = (size_t)n;
	return 0;
}

int
pay_load_challenge_secrets(struct pay_keys *k, const struct payments_cfg *cfg, int64_t now,
    char *err, size_t errlen)
{
	if (load_secret("challenge_secret_file", cfg->challenge_secret_file, 1, &k->challenge, err,
		errlen) != 0 ||
	    load_secret("challenge_previous_secret_file", cfg->challenge_previous_secret_file, 0,
		&k->challenge_prev, err, errlen) != 0)
		return -1;
	k->prev_until = now + cfg->challenge_ttl_s;
	return 0;
}

/* The methods' own settings that make no sense together. */
static int
check_methods(const struct payments_cfg *cfg, const struct pay_keys *k, char *err, size_t errlen)
{
	if (cfg->lnd_url[0] != '\0' && (k->macaroon.len == 0 || cfg->lnd_tls_cert[0] == '\0'))
		snprintf(err, errlen, "lnd_url needs lnd_macaroon_file and lnd_tls_cert");
	else if (k->stripe.len > 0 && cfg->stripe_network_id[0] == '\0')
		snprintf(err, errlen, "stripe_secret_key_file needs stripe_network_id");
	else if (cfg->tempo_rpc_url[0] != '\0' &&
	    (strlen(cfg->tempo_token) != 42 || strlen(cfg->tempo_recipient) != 42))
		snprintf(err, errlen, "tempo_rpc_url needs tempo_token and tempo_recipient (0x…)");
	else if (strcmp(cfg->lightning_network, "mainnet") != 0 &&
	    strcmp(cfg->lightning_network, "regtest") != 0 &&
	    strcmp(cfg->lightning_network, "signet") != 0)
		snprintf(err, errlen, "lightning_network must be mainnet, regtest or signet");
	else
		return 0;
	return -1;
}

static int
load_keys(struct payments *s, const struct payments_cfg *cfg, char *err, size_t errlen)
{
	s->keys.cfg = cfg;
	if (pay_load_challenge_secrets(&s->keys, cfg, time_now_ms() / 1000, err, errlen) != 0 ||
	    load_secret("ticket_secret_file", cfg->ticket_secret_file, 1, &s->keys.ticket, err,
		errlen) != 0 ||
	    load_secret("test_secret_file", cfg->test_secret_file, 0, &s->keys.test, err,
		errlen) != 0 ||
	    load_cred("lnd_macaroon_file", cfg->lnd_macaroon_file, &s->keys.macaroon, err,
		errlen) != 0 ||
	    load_cred("stripe_secret_key_file", cfg->stripe_secret_key_file, &s->keys.stripe, err,
		errlen) != 0)
		return -1;
	return check_methods(cfg, &s->keys, err, errlen);
}

int
payments_start(struct payments *s, struct daemon *d, const struct payments_cfg *cfg,
    char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->d = d;
	if (load_keys(s, cfg, err, errlen) != 0 ||
	    pay_policy_load(&s->policy, cfg->blocked_buyers_file, err, errlen) != 0) {
		wipe_keys(&s->keys);
		return -1;
	}
	if ((s->db = pay_store_open(cfg->database, err, errlen)) == NULL ||
	    (s->http = httpc_new(d->loop, err, errlen)) == NULL) {
		if (s->db != NULL)
			db_close(s->db);
		s->db = NULL;
		wipe_keys(&s->keys);
		pay_policy_free(&s->policy);
		return -1;
	}
	if ((s->q = dbq_new(d->loop, s->db)) == NULL)
		fatalx("out of memory");
	pay_sweep_start(s);
	log_info("payment methods: test %s, lightning %s, tempo %s, stripe %s",
	    pay_method_offered(&s->keys, "test") ? "on" : "off",
	    pay_method_offered(&s->keys, "lightning") ? "on" : "off",
	    pay_method_offered(&s->keys, "tempo") ? "on" : "off",
	    pay_method_offered(&s->keys, "stripe") ? "on" : "off");
	return 0;
}

/* SIGHUP: the blocked buyers again, then the challenge secret. */
int
payments_reload(struct payments *s, char *err, size_t errlen)
{
	struct pay_secret fresh;
	int64_t now = time_now_ms() / 1000;

	if (pay_policy_load(&s->policy, s->cfg->blocked_buyers_file, err, errlen) != 0)
		return -1;
	log_info("%zu blocked buyer%s", s->policy.n, s->policy.n == 1 ? "" : "s");
	if (load_secret("challenge_secret_file", s->cfg->challenge_secret_file, 1, &fresh, err,
		errlen) != 0)
		return -1;
	if (fresh.len == s->keys.challenge.len &&
	    memcmp(fresh.key, s->keys.challenge.key, fresh.len) == 0) {
		mbedtls_platform_zeroize(&fresh, sizeof(fresh));
		log_info("challenge secret unchanged");
		return 0;
	}
	/* Challenges signed so far expire within challenge_ttl_s: the old secret covers them. */
	s->keys.challenge_prev = s->keys.challenge;
	s->keys.prev_until = now + s->cfg->challenge_ttl_s;
	s->keys.challenge = fresh;
	mbedtls_platform_zeroize(&fresh, sizeof(fresh));
	log_info("challenge secret rotated; the previous one verifies challenges until they expire");
	return 0;
}

void
payments_stop(struct payments *s)
{
	if (s->db == NULL)
		return;
	s->stopping = 1;
	pay_sweep_stop(s);
	httpc_cancel_all(s->http);
	pay_ledger_cancel_all(s);
	while (s->writes > 0)
		dbq_flush(s->q);
	httpc_free(s->http);
	s->http = NULL;
	dbq_free(s->q);
	s->q = NULL;
	db_close(s->db);
	s->db = NULL;
	wipe_keys(&s->keys);
	pay_policy_free(&s->policy);
}

void
payments_health(struct payments *s, struct ipc_health_rep *rep)
{
	if (s->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
		return;
	}
	/* Group commit at work: one fsync per batch. */
	snprintf(rep->detail, sizeof(rep->detail), "ok; %llu writes in %llu commits",
	    dbq_writes(s->q), dbq_batches(s->q));
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
		pay_on_verify(s, req, &msg->verify, NULL);
		break;
	case IPC_VERIFY_IDEM:
		pay_on_verify(s, req, &msg->verify_idem.verify, &msg->verify_idem);
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
