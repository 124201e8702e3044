/*
 * vault.c — the vault's state as a whole: start, health and stop.
 *
 * Start: harden the process (no core dumps, not dumpable, so a crash or a
 * debugger attached by another user cannot read keys out of memory), open
 * vault.db, load the master keys and check them against it (master.c), open
 * the intake key pairs (kem.c), read the grant secret, load the provider
 * catalogue and the grants already used, and set up libcurl on the loop.
 * Any failure stops the vault with a message naming the file at fault and
 * what to do.
 *
 * The vault listens on nothing but its IPC socket (a Unix socket): it has
 * no inbound network, and its only outbound traffic is the upstream calls.
 *
 * Stop: commit what is queued, end every FORWARD in progress with
 * FWD_END ok = 0, then close libcurl and the database and wipe the secrets.
 */
#include "vault/vault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "common/config.h"
#include "common/db.h"
#include "common/dbq.h"
#include "common/log.h"

#define PRUNE_EVERY_MS (60 * 1000)
/* Used grants are kept this long past their expiry, in case the clock steps back. */
#define PRUNE_SLACK_S 300

int
vault_harden(char *err, size_t errlen)
{
	struct rlimit none = {0, 0};

	if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, errlen, "cannot disable core dumps: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
vault_secrets(struct vault *v, char *err, size_t errlen)
{
	int n;

	if (keyring_open(&v->keys, v->db, v->cfg, err, errlen) != 0 ||
	    kem_open(&v->kem, v->db, &v->keys, err, errlen) != 0)
		return -1;
	n = cfg_read_secret(v->cfg->grant_secret_file, v->grant_secret, 32,
	    sizeof(v->grant_secret), err, errlen);
	if (n < 0)
		return -1;
	v->grant_secretlen = (size_t)n;
	return 0;
}

static void
vault_on_prune_done(void *arg, int status)
{
	free(arg);
	if (status != 0)
		log_warnx("pruning the used grants failed; will try again");
}

static void
vault_on_prune(uv_timer_t *t)
{
	struct vault *v = t->data;
	int64_t *before = malloc(sizeof(*before));

	if (before == NULL)
		return;
	*before = (int64_t)time(NULL) - PRUNE_SLACK_S;
	grant_set_prune(&v->used, *before);
	if (dbq_push(v->q, store_grants_prune, vault_on_prune_done, before) != 0)
		free(before);
}

static int
vault_open(struct vault *v, char *err, size_t errlen)
{
	if ((v->db = store_open(v->cfg->database, err, errlen)) == NULL)
		return -1;
	if ((v->q = dbq_new(v->d->loop, v->db)) == NULL || grant_set_init(&v->used) != 0 ||
	    store_grants_load(v->db, (int64_t)time(NULL) - PRUNE_SLACK_S, &v->used) != 0) {
		snprintf(err, errlen, "%s: cannot load the used grants", v->cfg->database);
		return -1;
	}
	return 0;
}

int
vault_start(struct vault *v, struct daemon *d, const struct vault_cfg *cfg, char *err,
    size_t errlen)
{
	memset(v, 0, sizeof(*v));
	v->cfg = cfg;
	v->d = d;
	if (vault_harden(err, errlen) != 0 || vault_open(v, err, errlen) != 0 ||
	    vault_secrets(v, err, errlen) != 0 ||
	    providers_load(cfg->providers, &v->cat, err, errlen) != 0 ||
	    upstream_init(&v->up, d->loop, (long)cfg->max_host_connections,
		(long)cfg->max_idle_connections, forward_done, v, err, errlen) != 0)
		return -1;
	uv_timer_init(d->loop, &v->prune);
	v->prune.data = v;
	v->prune_open = 1;
	uv_timer_start(&v->prune, vault_on_prune, PRUNE_EVERY_MS, PRUNE_EVERY_MS);
	uv_unref((uv_handle_t *)&v->prune);
	log_info("%zu providers, %zu used grants remembered, master key version %u%s, intake key "
		 "%s", v->cat.n, v->used.n, (unsigned)v->keys.cur->version,
	    v->keys.prev != NULL ? " (and the previous one)" : "", kem_current(&v->kem)->kid);
	return 0;
}

void
vault_stop(struct vault *v)
{
	v->stopping = 1;
	if (v->prune_open)
		uv_close((uv_handle_t *)&v->prune, NULL);
	v->prune_open = 0;
	/* Commit what is queued first: grants waiting for it are then ended, not started. */
	dbq_free(v->q);
	v->q = NULL;
	forward_abort_all(v, "the vault is stopping");
	upstream_free(&v->up);
	db_close(v->db);
	v->db = NULL;
	grant_set_free(&v->used);
	providers_free(&v->cat);
	keys_free_retiring(v);
	kem_close(&v->kem);
	keyring_close(&v->keys);
	mbedtls_platform_zeroize(v->grant_secret, sizeof(v->grant_secret));
}

void
vault_health(struct vault *v, struct ipc_health_rep *rep)
{
	if (v->db == NULL) {
		rep->ready = 0;
		snprintf(rep->detail, sizeof(rep->detail), "database closed");
		return;
	}
	/* The group commit's figures first: the detail is cut at its size. */
	snprintf(rep->detail, sizeof(rep->detail),
	    "ok, %zu calls, %zu paused; %llu writes in %llu commits; upstream conns %llu opened, "
	    "%llu reused; %llu rotated, %llu wiped; %zu B locked",
	    v->nfwds, forward_paused(v), dbq_writes(v->q), dbq_batches(v->q),
	    (unsigned long long)v->up.opened, (unsigned long long)v->up.reused,
	    (unsigned long long)v->rotations, (unsigned long long)v->wiped, secmem_in_use());
}
