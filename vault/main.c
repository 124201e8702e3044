/*
 * cn2-vault — sealed seller keys and the upstream call.
 *
 * Owns:       vault.db: sealed seller keys.
 * Talks:      accepts edge (forward) , platform-api (key intake) and ctl (health);
 *       dials the router (outcome).
 * Must never: accept a forward without a valid grant. Outbound network: upstream providers only.
 * Fails:      a bad configuration or a database it cannot open or trust stops it at
 *             start (exit 1, systemd restarts it); a malformed message closes only
 *             the connection it came on.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>

#include "common/daemon.h"
#include "vault/vault.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static struct vault_cfg cfg;
static struct vault state;

static const struct cfg_key keys[] = {
    {"database", CFG_PATH, offsetof(struct vault_cfg, database), sizeof(cfg.database), 1, 255,
	"/var/lib/cn2/vault.db", "SQLite database file"},
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH};
static const uint16_t from_platform[] = {IPC_HEALTH};
static const uint16_t from_ctl[] = {IPC_HEALTH};

static const struct ipc_peer_rule peers[] = {
    {ROLE_EDGE, from_edge, NF(from_edge)},
    {ROLE_PLATFORM, from_platform, NF(from_platform)},
    {ROLE_CTL, from_ctl, NF(from_ctl)},
};
static const enum ipc_role dial[] = {ROLE_ROUTER};

static int
start(struct daemon *d, char *err, size_t errlen)
{
	d->priv = &state;
	return vault_start(&state, &cfg, err, errlen);
}

static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	vault_request(d, req, type, msg);
}

static void
health(struct daemon *d, struct ipc_health_rep *rep)
{
	vault_health(d->priv, rep);
}

static void
stop(struct daemon *d)
{
	vault_stop(d->priv);
}

static const struct daemon_spec spec = {
    .name = "vault",
    .role = ROLE_VAULT,
    .summary = "cn2 vault daemon: sealed seller keys and the upstream call.",
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
