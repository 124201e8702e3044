/*
 * cn2-ledger — double-entry, append-only earnings.
 *
 * Owns:       ledger.db: accounts, two-phase transfers and their entries, hash-chained.
 * Talks:      accepts payments (LEDGER_PENDING, _POST, _VOID), platform-api and ctl
 *             (health); dials nobody.
 * Must never: update or delete a transfer, or acknowledge one before it is durable.
 *             No network at all.
 * Fails:      a bad configuration or a database it cannot open or trust stops it at
 *             start (exit 1, systemd restarts it); a malformed message closes only
 *             the connection it came on; a write the database refuses is answered
 *             with an ERROR and leaves nothing behind.
 *
 * `cn2-ledger balances [-f config]` is the auditor's trial balance (balances.c);
 * any other command line runs the daemon. This file only wires the skeleton:
 * configuration table, peer table, handlers.
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
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_payments[] = {IPC_HEALTH, IPC_LEDGER_PENDING, IPC_LEDGER_POST,
    IPC_LEDGER_VOID};
static const uint16_t from_platform[] = {IPC_HEALTH};
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
	       "Also: cn2-ledger balances [-f config] prints the trial balance (read-only).",
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
	if (argc > 1 && strcmp(argv[1], "balances") == 0)
		return balances_main(argc - 1, argv + 1, keys, &cfg);
	return daemon_main(argc, argv, &spec);
}
