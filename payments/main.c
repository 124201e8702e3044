/*
 * cn2-payments — MPP challenges, credential verification, payment records.
 *
 * Owns:       payments.db: challenge state (reserved / captured / released), payment records,
 *             and the postings the ledger still owes an ACK for.
 * Talks:      accepts edge (CHALLENGE, VERIFY, SETTLE) and ctl (health); dials the ledger
 *             (LEDGER_PENDING at verify, LEDGER_POST at capture, LEDGER_VOID at release).
 * Must never: see a seller key; store or log a credential, a proof or a secret. Outbound
 *             network: payment processors only.
 * Fails:      a bad configuration, a missing or short secret, or a database it cannot open
 *             or trust stops it at start (exit 1, systemd restarts it); a malformed message
 *             closes only the connection it came on; a ledger outage answers VERIFY with
 *             503 and delays postings, it never loses one.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>

#include "common/daemon.h"
#include "payments/payments.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define CRED "/run/credentials/cn2-payments.service/"

static struct payments_cfg cfg;
static struct payments state;

#define PATHKEY(name, field, def, help) \
	{name, CFG_PATH, offsetof(struct payments_cfg, field), sizeof(cfg.field), 1, 255, def, help}
#define INTKEY(name, field, lo, hi, def, help) \
	{name, CFG_INT, offsetof(struct payments_cfg, field), 0, lo, hi, def, help}

static const struct cfg_key keys[] = {
    PATHKEY("database", database, "/var/lib/cn2/payments.db", "SQLite database file"),
    PATHKEY("challenge_secret_file", challenge_secret_file, CRED "challenge.key",
	"HMAC secret of challenge ids (32..128 bytes)"),
    PATHKEY("ticket_secret_file", ticket_secret_file, CRED "ticket.key",
	"secret shared with the router: tickets and awards"),
    {"test_secret_file", CFG_STR, offsetof(struct payments_cfg, test_secret_file),
	sizeof(cfg.test_secret_file), 0, 255, "", "secret of the test method (empty: off)"},
    INTKEY("challenge_ttl_s", challenge_ttl_s, 1, 86400, "300", "a challenge's lifetime"),
    INTKEY("ticket_ttl_s", ticket_ttl_s, 1, 3600, "120", "a ticket's lifetime, at most"),
    INTKEY("reservation_timeout_s", reservation_timeout_s, 1, 86400, "600",
	"release reservations never settled after this long"),
    INTKEY("sweep_interval_s", sweep_interval_s, 1, 3600, "30",
	"how often stale reservations and ledger postings are swept"),
    INTKEY("ledger_timeout_ms", ledger_timeout_ms, 100, 60000, "5000",
	"how long to wait for the ledger's answer"),
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH, IPC_CHALLENGE, IPC_VERIFY, IPC_SETTLE};
static const uint16_t from_ctl[] = {IPC_HEALTH};

static const struct ipc_peer_rule peers[] = {
    {ROLE_EDGE, from_edge, NF(from_edge)},
    {ROLE_CTL, from_ctl, NF(from_ctl)},
};
static const enum ipc_role dial[] = {ROLE_LEDGER};

static int
start(struct daemon *d, char *err, size_t errlen)
{
	d->priv = &state;
	return payments_start(&state, d, &cfg, err, errlen);
}

static void
request(struct daemon *d, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	payments_request(d, req, type, msg);
}

static void
health(struct daemon *d, struct ipc_health_rep *rep)
{
	payments_health(d->priv, rep);
}

static void
on_link(struct daemon *d, enum ipc_role peer, int up)
{
	payments_link(d->priv, peer, up);
}

static void
stop(struct daemon *d)
{
	payments_stop(d->priv);
}

static const struct daemon_spec spec = {
    .name = "payments",
    .role = ROLE_PAYMENTS,
    .summary = "cn2 payments daemon: MPP challenges, credential verification, payment records.",
    .keys = keys,
    .cfg = &cfg,
    .accept = peers,
    .naccept = NF(peers),
    .dial = dial,
    .ndial = NF(dial),
    .start = start,
    .request = request,
    .health = health,
    .link = on_link,
    .stop = stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &spec);
}
