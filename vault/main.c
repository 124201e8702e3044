/*
 * cn2-vault — sealed seller keys and the upstream call.
 *
 * Owns:       vault.db: seller keys sealed under the master key (AES-256-GCM),
 *             the vault's HPKE key pairs for sealed intake (sealed the same
 *             way), the master-key versions, and the grants already used.
 * Talks:      accepts edge (FORWARD and its FWD_ACK/FWD_CANCEL), platform-api
 *             (VAULT_PUBKEY, KEY_PUT with HPKE-sealed keys) and ctl (health);
 *             dials the router (OUTCOME).
 * Must never: send anything upstream without a valid, unused grant; log or
 *             store a key in clear; accept a key that is not sealed to it.
 *             No inbound network; outbound: upstream providers only.
 * Fails:      a bad configuration, a master key or grant secret that is
 *             missing, malformed, readable by others or not the one vault.db
 *             was sealed under, or a database it cannot open stops it at
 *             start with the reason (exit 1, systemd restarts it); a
 *             malformed message closes only the connection it came on; an
 *             upstream failure ends only that call (FWD_END ok = 0).
 *
 * `cn2-vault rewrap` (rewrap.c) re-seals every key under the current master
 * key, offline or beside the running daemon.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>
#include <string.h>

#include "common/daemon.h"
#include "common/log.h"
#include "vault/vault.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define SZ(m) sizeof(((struct vault_cfg *)0)->m)
#define OFF(m) offsetof(struct vault_cfg, m)

static struct vault_cfg cfg;
static struct vault state;

static const struct cfg_key keys[] = {
    {"database", CFG_PATH, OFF(database), SZ(database), 1, 255, "/var/lib/cn2/vault.db",
	"SQLite database file"},
    {"master_key_file", CFG_PATH, OFF(master_key_file), SZ(master_key_file), 1, 255,
	"master.key",
	"master key: 64 hex digits, mode 0600 (relative: a systemd credential)"},
    {"master_key_version", CFG_INT, OFF(master_key_version), 0, 1, 1000000, "1",
	"version of the master key (one more at each rotation)"},
    {"previous_master_key_file", CFG_STR, OFF(previous_master_key_file),
	SZ(previous_master_key_file), 0, 255, "",
	"the previous master key while rows still use it (empty: none)"},
    {"grant_secret_file", CFG_PATH, OFF(grant_secret_file), SZ(grant_secret_file), 1, 255,
	"/run/credentials/cn2-vault.service/grant.key",
	"secret shared with the router for grant MACs"},
    {"providers", CFG_PATH, OFF(providers), SZ(providers), 1, 255, "/etc/cn2/providers.json",
	"provider catalogue"},
    {"ca_file", CFG_STR, OFF(ca_file), SZ(ca_file), 0, 255, "",
	"CA bundle for upstream TLS (empty: the system store)"},
    {"connect_timeout_ms", CFG_INT, OFF(connect_timeout_ms), 0, 100, 600000, "10000",
	"time to connect to an upstream"},
    {"first_byte_timeout_ms", CFG_INT, OFF(first_byte_timeout_ms), 0, 100, 3600000, "120000",
	"time from the start of a call to the first response byte"},
    {"idle_timeout_ms", CFG_INT, OFF(idle_timeout_ms), 0, 100, 3600000, "60000",
	"longest pause between response chunks (or edge acknowledgements)"},
    {"window_bytes", CFG_INT, OFF(window_bytes), 0, 4096, 67108864, "262144",
	"response bytes sent to the edge and not yet acknowledged, at most"},
    {"max_host_connections", CFG_INT, OFF(max_host_connections), 0, 0, 100000, "0",
	"connections to one upstream host at most (0: no limit)"},
    {"max_idle_connections", CFG_INT, OFF(max_idle_connections), 0, 1, 100000, "256",
	"upstream connections kept open for reuse"},
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH, IPC_FORWARD, IPC_FWD_ACK, IPC_FWD_CANCEL};
static const uint16_t from_platform[] = {IPC_HEALTH, IPC_KEY_PUT, IPC_VAULT_PUBKEY};
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
	return vault_start(&state, d, &cfg, err, errlen);
}

static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	struct vault *v = d->priv;

	switch (type) {
	case IPC_KEY_PUT:
		keys_put(v, req, &msg->key_put);
		break;
	case IPC_VAULT_PUBKEY:
		keys_pubkey(v, req);
		break;
	case IPC_FORWARD:
		forward_start(v, req, &msg->forward);
		break;
	case IPC_FWD_ACK:
		forward_ack(v, req, &msg->fwd_ack);
		break;
	case IPC_FWD_CANCEL:
		forward_cancel(v, req);
		break;
	default:
		/* The peer table lets nothing else through. */
		log_warnx("no handler for %s", ipc_type_name(type));
		ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
	}
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
    .summary = "cn2 vault daemon: sealed seller keys and the upstream call.\n"
	       "`cn2-vault rewrap -h`: re-seal every key under a new master key.",
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
	if (argc > 1 && strcmp(argv[1], "rewrap") == 0)
		return rewrap_main(&spec, &cfg, argc - 1, argv + 1);
	return daemon_main(argc, argv, &spec);
}
