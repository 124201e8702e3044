/*
 * cn2-platform — the seller REST API behind the edge.
 *
 * Owns:       platform.db: sellers and which keys they listed (webhook endpoints,
 *             deliveries and disputes later).
 * Talks:      accepts edge (API requests) and ctl (health); dials router (listings),
 *             vault (sealed keys) and ledger.
 * Must never: store, log or echo a seller's key; act for a seller without a valid
 *             bearer token. Outbound network: webhook delivery only.
 * Fails:      a bad configuration, an unreadable JWT secret or a database it cannot
 *             open or trust stops it at start (exit 1, systemd restarts it); a peer
 *             that is down turns into a 503 problem; a malformed message closes only
 *             the connection it came on.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>

#include "common/daemon.h"
#include "common/log.h"
#include "platform-api/platform.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static struct platform_cfg cfg;
static struct platform state;

static const struct cfg_key keys[] = {
    {"database", CFG_PATH, offsetof(struct platform_cfg, database), sizeof(cfg.database), 1, 255,
	"/var/lib/cn2/platform.db", "SQLite database file"},
    {"jwt_secret_file", CFG_PATH, offsetof(struct platform_cfg, jwt_secret_file),
	sizeof(cfg.jwt_secret_file), 1, 255, NULL,
	"HS256 secret of the access tokens (Supabase Auth's JWT secret)"},
    {"jwt_audience", CFG_STR, offsetof(struct platform_cfg, jwt_audience),
	sizeof(cfg.jwt_audience), 1, 63, "authenticated", "aud an access token must carry"},
    {"webhook_secret_file", CFG_STR, offsetof(struct platform_cfg, webhook_secret_file),
	sizeof(cfg.webhook_secret_file), 0, 255, "",
	"master secret (32..128 bytes) of the webhook endpoints' secrets (empty: webhooks off)"},
    {"webhook_allow_private", CFG_INT, offsetof(struct platform_cfg, webhook_allow_private), 0,
	0, 1, "0", "1: endpoints may be http:// and loopback or private addresses (local only)"},
    {"webhook_timeout_ms", CFG_INT, offsetof(struct platform_cfg, webhook_timeout_ms), 0, 100,
	60000, "10000", "how long one webhook delivery may take"},
    {"webhook_poll_ms", CFG_INT, offsetof(struct platform_cfg, webhook_poll_ms), 0, 50, 60000,
	"1000", "how often seller events are pulled from the router and deliveries sent"},
    {"webhook_keep_days", CFG_INT, offsetof(struct platform_cfg, webhook_keep_days), 0, 1, 3650,
	"30", "how long delivery records are kept"},
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH, IPC_API};
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
	return platform_start(&state, d, &cfg, err, errlen);
}

/* The peer table already limited each role to its types. */
static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	if (type == IPC_API) {
		api_request(d->priv, req, &msg->api);
		return;
	}
	log_warnx("no handler for %s from %s", ipc_type_name(type), ipc_role_name(req->from));
	ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
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
