/*
 * cn2-payments — MPP challenges, credential verification, payment records.
 *
 * Owns:       payments.db: challenge state (reserved / captured / released), payment records,
 *             and the postings the ledger still owes an ACK for.
 * Talks:      accepts edge (CHALLENGE, VERIFY, VERIFY_IDEM, SETTLE) and ctl (health);
 *             dials the ledger (LEDGER_PENDING at verify, LEDGER_POST or LEDGER_POST_SPLIT at capture,
 *             LEDGER_VOID at release); calls the payment processors of the methods it
 *             offers over HTTPS (LND, Stripe, a Tempo RPC node).
 * Must never: see a seller key; store or log a credential, a proof, a preimage, a token or
 *             a secret. Outbound network: payment processors only.
 * Fails:      a bad configuration, a missing or short secret, or a database it cannot open
 *             or trust stops it at start (exit 1, systemd restarts it); a malformed message
 *             closes only the connection it came on; a ledger outage answers VERIFY with
 *             503 and delays postings, it never loses one; a processor that is down or
 *             slow answers 503 (or drops that method from a 402) within
 *             method_timeout_ms, and never stalls the loop. SIGHUP rotates the
 *             challenge secret.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>
#include <stdint.h>

#include "common/daemon.h"
#include "payments/payments.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define CRED "/run/credentials/cn2-payments.service/"

static struct payments_cfg cfg;
static struct payments state;

#define PATHKEY(name, field, def, help) \
	{name, CFG_PATH, offsetof(struct payments_cfg, field), sizeof(cfg.field), 1, 255, def, help}
#define OPTKEY(name, field, help) \
	{name, CFG_STR, offsetof(struct payments_cfg, field), sizeof(cfg.field), 0, \
	    sizeof(cfg.field) - 1, "", help}
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
    OPTKEY("challenge_previous_secret_file", challenge_previous_secret_file,
	"a challenge secret rotated out: verifies for challenge_ttl_s after start"),
    INTKEY("method_timeout_ms", method_timeout_ms, 100, 60000, "5000",
	"how long one call to a payment processor may take"),
    INTKEY("buyer_daily_ceiling", buyer_daily_ceiling, 0, INT64_MAX, "0",
	"micro-USD one buyer may spend per UTC day (0: no ceiling)"),
    INTKEY("buyer_retention_days", buyer_retention_days, 1, 3650, "90",
	"how long a buyer's daily spend is kept"),
    OPTKEY("blocked_buyers_file", blocked_buyers_file,
	"buyer ids (SHA-256 hex, one per line) refused with 403; re-read on SIGHUP"),
    OPTKEY("lnd_url", lnd_url, "lightning: LND's REST address, https://host:8080 (empty: off)"),
    OPTKEY("lnd_macaroon_file", lnd_macaroon_file, "lightning: the invoice macaroon, hex"),
    OPTKEY("lnd_tls_cert", lnd_tls_cert, "lightning: the node's own TLS certificate (PEM)"),
    INTKEY("lightning_micro_usd_per_sat", lightning_micro_usd_per_sat, 1, 100000000, "1000",
	"lightning: micro-USD per satoshi (sats are rounded up)"),
    INTKEY("lightning_invoices_per_minute", lightning_invoices_per_minute, 1, 6000000, "600",
	"lightning: invoices created for challenges per minute, at most (a 402 past it omits "
	"lightning)"),
    {"lightning_network", CFG_STR, offsetof(struct payments_cfg, lightning_network),
	sizeof(cfg.lightning_network), 6, 7, "mainnet", "lightning: mainnet, regtest or signet"},
    {"stripe_api_url", CFG_STR, offsetof(struct payments_cfg, stripe_api_url),
	sizeof(cfg.stripe_api_url), 8, 255, "https://api.stripe.com", "stripe: the API's address"},
    OPTKEY("stripe_secret_key_file", stripe_secret_key_file,
	"stripe: the secret API key (empty: off)"),
    OPTKEY("stripe_network_id", stripe_network_id, "stripe: the business network profile id"),
    {"stripe_payment_method_types", CFG_STR,
	offsetof(struct payments_cfg, stripe_payment_method_types),
	sizeof(cfg.stripe_payment_method_types), 1, 127, "card",
	"stripe: payment method types offered, comma-separated"},
    INTKEY("stripe_min_cents", stripe_min_cents, 1, 100000, "50",
	"stripe: the least a card is charged, in cents"),
    OPTKEY("tempo_rpc_url", tempo_rpc_url, "tempo: the chain's JSON-RPC address (empty: off)"),
    OPTKEY("tempo_token", tempo_token, "tempo: the TIP-20 token paid in (0x…, 6 decimals)"),
    OPTKEY("tempo_recipient", tempo_recipient, "tempo: the address paid to (0x…)"),
    INTKEY("tempo_chain_id", tempo_chain_id, 1, INT64_MAX, "4217", "tempo: the chain id"),
    CFG_END,
};

/* The peer table: who may connect here, and what each may send. */
static const uint16_t from_edge[] = {IPC_HEALTH, IPC_CHALLENGE, IPC_VERIFY, IPC_VERIFY_IDEM,
    IPC_SETTLE};
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

static int
reload(struct daemon *d, char *err, size_t errlen)
{
	return payments_reload(d->priv, err, errlen);
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
    .reload = reload,
    .stop = stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &spec);
}
