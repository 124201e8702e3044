/*
 * cn2-ledger — double-entry, append-only earnings.
 *
 * Owns:       ledger.db: accounts, transfers (payments, disputes, payouts) and their
 *             entries, hash-chained; cached balances; the retention checkpoint.
 * Talks:      accepts payments (LEDGER_PENDING, _POST, _POST_SPLIT, _VOID), platform-api
 *             (EARNINGS, DISPUTE_OPEN, _RESOLVE, _GET) and ctl (health); dials nobody.
 * Must never: update or delete a transfer (the retention sweep of rows older than
 *             seven years is a separate command), or acknowledge one before it is
 *             durable. No network at all.
 * Fails:      a bad configuration or a database it cannot open or trust stops it at
 *             start (exit 1, systemd restarts it); a malformed message closes only
 *             the connection it came on; a write the database refuses is answered
 *             with an ERROR and leaves nothing behind.
 *
 * `cn2-ledger balances|verify|head|export|payout|prune` are the auditor's and
 * the operator's tools (tools.c); any other command line runs the daemon.
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>
#include <string.h>

#include "common/daemon.h"
#include "ledger/ledger.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static struct ledger_cfg cfg;
static struct ledger state;

static const struct cfg_key keys[] = {
    {"database", CFG_PATH, offsetof(struct ledger_cfg, database), sizeof(cfg.database), 1, 255,
	"/var/lib/cn2/ledger.db", "SQLite database file"},
    {"earnings_hold_s", CFG_INT, offsetof(struct ledger_cfg, earnings_hold_s), 0, 0,
	366 * 86400, "604800", "seconds a capture's earnings stay pending before a payout may take them"},
    {"payout_threshold", CFG_INT, offsetof(struct ledger_cfg, payout_threshold), 0, 1,
	LEDGER_AMOUNT_MAX, "10000000", "µUSD: smaller available earnings wait for the next payout"},
    {"payout_method", CFG_STR, offsetof(struct ledger_cfg, payout_method),
	sizeof(cfg.payout_method), 1, IPC_METHOD_MAX, "bank",
	"payout method: payouts go to the account payouts:<method>"},
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_payments[] = {IPC_HEALTH, IPC_LEDGER_PENDING, IPC_LEDGER_POST,
    IPC_LEDGER_POST_SPLIT, IPC_LEDGER_VOID};
static const uint16_t from_platform[] = {IPC_HEALTH, IPC_EARNINGS, IPC_DISPUTE_OPEN,
    IPC_DISPUTE_RESOLVE, IPC_DISPUTE_GET};
static const uint16_t from_ctl[] = {IPC_HEALTH};

static const struct ipc_peer_rule peers[] = {
    {ROLE_PAYMENTS, from_payments, NF(from_payments)},
    {ROLE_PLATFORM, from_platform, NF(from_platform)},
    {ROLE_CTL, from_ctl, NF(from_ctl)},
};

static int
start(struct daemon *d, char *err, size_t errlen)
{
	d->priv = &state;
	return ledger_start(&state, d, &cfg, err, errlen);
}

static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	ledger_request(d, req, type, msg);
}

static void
health(struct daemon *d, struct ipc_health_rep *rep)
{
	ledger_health(d->priv, rep);
}

static void
stop(struct daemon *d)
{
	ledger_stop(d->priv);
}

static const struct daemon_spec spec = {
    .name = "ledger",
    .role = ROLE_LEDGER,
    .summary = "cn2 ledger daemon: double-entry, append-only earnings.\n"
	       "Tools (each takes -f config and --help): cn2-ledger balances | verify | head |\n"
	       "export --from T --to T | payout [--batch ID] | prune --archive FILE.",
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
	if (argc > 1 && tool_is(argv[1]))
		return tool_main(argc - 1, argv + 1, keys, &cfg);
	return daemon_main(argc, argv, &spec);
}
