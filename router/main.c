/*
 * cn2-router — the key pool (listings, price, score, limits).
 *
 * Owns:       router.db: key listings, scores, limit counters, request metadata.
 * Talks:      accepts edge (quote, assign), vault (outcome), platform-api (listings) and
 *       ctl (health); dials nobody.
 * Must never: see a seller key or a request body. No network at all.
 * Fails:      a bad configuration or a database it cannot open or trust stops it at
 *             start (exit 1, systemd restarts it); a malformed message closes only
 *             the connection it came on.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>

#include "common/daemon.h"
#include "router/router.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static struct router_cfg cfg;
static struct router state;

static const struct cfg_key keys[] = {
    {"database", CFG_PATH, offsetof(struct router_cfg, database), sizeof(cfg.database), 1, 255,
	"/var/lib/cn2/router.db", "SQLite database file"},
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH};
static const uint16_t from_vault[] = {IPC_HEALTH};
static const uint16_t from_platform[] = {IPC_HEALTH};
static const uint16_t from_ctl[] = {IPC_HEALTH};

static const struct ipc_peer_rule peers[] = {
    {ROLE_EDGE, from_edge, NF(from_edge)},
    {ROLE_VAULT, from_vault, NF(from_vault)},
    {ROLE_PLATFORM, from_platform, NF(from_platform)},
    {ROLE_CTL, from_ctl, NF(from_ctl)},
};

static int
start(struct daemon *d, char *err, size_t errlen)
{
	d->priv = &state;
	return router_start(&state, &cfg, err, errlen);
}

static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	router_request(d, req, type, msg);
}

static void
health(struct daemon *d, struct ipc_health_rep *rep)
{
	router_health(d->priv, rep);
}

static void
stop(struct daemon *d)
{
	router_stop(d->priv);
}

static const struct daemon_spec spec = {
    .name = "router",
    .role = ROLE_ROUTER,
    .summary = "cn2 router daemon: the key pool (listings, price, score, limits).",
    .keys = keys,
    .cfg = &cfg,
    .accept = peers,
    .naccept = NF(peers),
    .dial = NULL,
    .ndial = 0,
    .start = start,
    .request = request,
    .health = health,
    .stop = stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &spec);
}
