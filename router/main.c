/*
 * cn2-router — the key pool (listings, price, score, limits).
 *
 * Owns:       router.db: key listings, key state (scores, limits), grants issued,
 *             request metadata and its hourly aggregates, events for sellers.
 * Talks:      accepts edge (quote, assign), vault (outcome), platform-api (listings,
 *             market figures, seller events) and ctl (health); dials nobody.
 * Must never: see a seller key or a request body; issue a grant without a valid,
 *             unexpired ticket that covers the key's price. No network at all.
 * Fails:      a bad configuration, an unreadable secret or a database it cannot open
 *             or trust stops it at start (exit 1, systemd restarts it); a malformed
 *             message closes only the connection it came on.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>

#include "common/daemon.h"
#include "common/log.h"
#include "router/router.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static struct router_cfg cfg;
static struct router state;

#define PATHKEY(name, def, help) \
	{#name, CFG_PATH, offsetof(struct router_cfg, name), sizeof(cfg.name), 1, 255, def, help}

#define INTKEY(name, lo, hi, def, help) \
	{#name, CFG_INT, offsetof(struct router_cfg, name), 0, lo, hi, def, help}

static const struct cfg_key keys[] = {
    PATHKEY(database, "/var/lib/cn2/router.db", "SQLite database file"),
    PATHKEY(ticket_secret_file, NULL, "HMAC secret shared with payments (tickets, awards)"),
    PATHKEY(grant_secret_file, NULL, "HMAC secret shared with the vault (grants)"),
    {"fee_bps", CFG_INT, offsetof(struct router_cfg, fee_bps), 0, 0, 10000, "1000",
	"platform fee on top of the seller's price, in basis points"},
    {"grant_ttl_s", CFG_INT, offsetof(struct router_cfg, grant_ttl_s), 0, 5, 3600, "120",
	"seconds a grant stays valid"},
    {"max_grants", CFG_INT, offsetof(struct router_cfg, max_grants), 0, 1, 16, "3",
	"grants one payment may obtain, failovers included"},
    INTKEY(premium_floor_pct, 0, 99, "90", "premium keys need a score above this, in percent"),
    INTKEY(score_half_life_s, 1, 86400, "300",
	"idle recovery of a score: half the way back to 1 in this time"),
    INTKEY(retry_after_default_s, 1, 3600, "30", "cool-down after a 429 without Retry-After"),
    INTKEY(retry_after_max_s, 1, 86400, "3600", "the longest cool-down a Retry-After may ask"),
    INTKEY(session_ttl_s, 1, 86400, "1800", "conversation affinity ends after this silence"),
    INTKEY(sessions_max, 0, 10000000, "100000", "conversations remembered, at most"),
    INTKEY(raw_retention_days, 1, 3650, "30",
	"request metadata rows, assignments and seller events are kept this long"),
    INTKEY(hourly_retention_days, 1, 3650, "365", "hourly aggregates are kept this long"),
    INTKEY(sweep_interval_s, 1, 86400, "3600", "how often the retention sweep runs"),
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH, IPC_QUOTE, IPC_ASSIGN};
static const uint16_t from_vault[] = {IPC_HEALTH, IPC_OUTCOME};
static const uint16_t from_platform[] = {IPC_HEALTH, IPC_LISTING_PUT, IPC_LISTING_LIST,
    IPC_LISTING_GET, IPC_MARKET_STATS, IPC_EVENTS_PULL};
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
	return router_start(&state, d, &cfg, err, errlen);
}

/* The peer table already limited each role to its types. */
static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	struct router *r = d->priv;

	switch (type) {
	case IPC_QUOTE:
		grant_quote(r, req, &msg->quote);
		break;
	case IPC_ASSIGN:
		grant_assign(r, req, &msg->assign);
		break;
	case IPC_OUTCOME:
		outcome_record(r, req, &msg->outcome);
		break;
	case IPC_LISTING_PUT:
		listings_put(r, req, &msg->listing);
		break;
	case IPC_LISTING_LIST:
		listings_list(r, req, &msg->listing_list);
		break;
	case IPC_LISTING_GET:
		listings_get(r, req, &msg->listing_get);
		break;
	case IPC_MARKET_STATS:
		market_stats(r, req, &msg->market_stats);
		break;
	case IPC_EVENTS_PULL:
		events_pull(r, req, &msg->events_pull);
		break;
	default:
		log_warnx("no handler for %s from %s", ipc_type_name(type), ipc_role_name(req->from));
		ipc_reply_error(d->ipc, req, IPC_ERR_REFUSED, "not handled here");
		break;
	}
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
