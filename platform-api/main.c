/*
 * cn2-platform — the seller REST API behind the edge.
 *
 * Owns:       platform.db: sellers, webhook endpoints and deliveries, disputes.
 * Talks:      accepts edge (API requests) and ctl (health); dials router, vault, ledger.
 * Must never: see a plaintext seller key. Outbound network: webhook delivery only.
 * Fails:      a bad configuration or a database it cannot open or trust stops it at
 *             start (exit 1, systemd restarts it); a malformed message closes only
 *             the connection it came on.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>

#include "common/daemon.h"
#include "platform-api/platform.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static struct platform_cfg cfg;
static struct platform state;

static const struct cfg_key keys[] = {
    {"database", CFG_PATH, offsetof(struct platform_cfg, database), sizeof(cfg.database), 1, 255,
	"/var/lib/cn2/platform.db", "SQLite database file"},
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH};
static const uint16_t from_ctl[] = {IPC_HEALTH};

static const struct ipc_peer_rule peers[] = {
    {ROLE_EDGE, from_edge, NF(from_edge)},
    {ROLE_CTL, from_ctl, NF(from_ctl)},
};
static const enum ipc_role dial[] = {ROLE_ROUTER, ROLE_VAULT, ROLE_LEDGER};

static int
start(struct daemon *d, char *err, size_t errlen)
{
	d->priv = &state;
	return platform_start(&state, &cfg, err, errlen);
}

static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	platform_request(d, req, type, msg);
}

static void
health(struct daemon *d, struct ipc_health_rep *rep)
{
	platform_health(d->priv, rep);
}

static void
stop(struct daemon *d)
{
	platform_stop(d->priv);
}

static const struct daemon_spec spec = {
    .name = "platform",
    .role = ROLE_PLATFORM,
    .summary = "cn2 platform daemon: the seller REST API behind the edge.",
    .keys = keys,
    .cfg = &cfg,
    .accept = peers,
    .naccept = NF(peers),
    .dial = dial,
    .ndial = NF(dial),
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
