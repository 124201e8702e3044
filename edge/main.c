/*
 * cn2-edge — the internet-facing daemon: HTTP/1.1 over TLS 1.2 (mbedTLS) and
 * plain HTTP for use behind a terminator.
 *
 * Owns:       nothing durable.
 * Talks:      dials payments, router, vault and platform-api; accepts no IPC.
 * Must never: hold a seller key or a payment secret; decide anything about
 *             money or keys (it passes on what payments, router and vault decide).
 * Fails:      a bad configuration, certificate or listen address stops it at
 *             start; a bad client closes only that connection.
 *
 * This file only wires the skeleton: configuration table, peer table, handlers.
 */
#include <stddef.h>
#include <string.h>

#include "common/daemon.h"
#include "common/log.h"
#include "edge/edge.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define SZ(m) sizeof(((struct edge_cfg *)0)->m)

static struct edge_cfg cfg;
static struct edge edge;

static const struct cfg_key keys[] = {
    {"listen_http", CFG_STR, offsetof(struct edge_cfg, listen_http), SZ(listen_http), 0, 63,
	"127.0.0.1:8080", "plain HTTP address (host:port, [v6]:port), empty for none"},
    {"listen_https", CFG_STR, offsetof(struct edge_cfg, listen_https), SZ(listen_https), 0, 63,
	"", "TLS address, empty for none"},
    {"tls_cert", CFG_STR, offsetof(struct edge_cfg, tls_cert), SZ(tls_cert), 0, 255, "",
	"PEM certificate chain (leaf first)"},
    {"tls_key", CFG_STR, offsetof(struct edge_cfg, tls_key), SZ(tls_key), 0, 255, "",
	"PEM private key of the certificate"},
    {"max_conns", CFG_INT, offsetof(struct edge_cfg, max_conns), 0, 1, 1000000, "10000",
	"open client connections at most"},
    {"max_head", CFG_INT, offsetof(struct edge_cfg, max_head), 0, 1024, 1048576, "16384",
	"bytes of a request head at most"},
    {"max_body", CFG_INT, offsetof(struct edge_cfg, max_body), 0, 0, 67108864, "4194304",
	"bytes of a request body at most"},
    {"header_timeout_ms", CFG_INT, offsetof(struct edge_cfg, header_timeout_ms), 0, 100,
	600000, "10000", "time for a TLS handshake or a request head"},
    {"idle_timeout_ms", CFG_INT, offsetof(struct edge_cfg, idle_timeout_ms), 0, 100, 3600000,
	"30000", "keep-alive and body-stall timeout"},
    {"domain", CFG_STR, offsetof(struct edge_cfg, domain), SZ(domain), 1, 127, "localhost",
	"providers at <name>.<domain>, the platform API at <domain> and api.<domain>"},
    {"providers", CFG_PATH, offsetof(struct edge_cfg, providers), SZ(providers), 1, 255,
	"/etc/cn2/providers.json", "the provider catalogue"},
    {"trusted_proxies", CFG_STR, offsetof(struct edge_cfg, trusted_proxies), SZ(trusted_proxies),
	0, 1023, "", "comma-separated addresses or CIDRs whose CF-IPCountry is believed"},
    {"max_attempts", CFG_INT, offsetof(struct edge_cfg, max_attempts), 0, 1, 16, "3",
	"keys one paid request may try, failovers included"},
    CFG_END,
};

/* The edge dials every daemon that serves part of a request; never the ledger. */
static const enum ipc_role dial[] = {ROLE_PAYMENTS, ROLE_ROUTER, ROLE_VAULT, ROLE_PLATFORM};

static int
start(struct daemon *d, char *err, size_t errlen)
{
	edge.d = d;
	edge.cfg = &cfg;
	d->priv = &edge;
	if (providers_load(cfg.providers, &edge.catalogue, err, errlen) != 0 ||
	    region_proxies_parse(cfg.trusted_proxies, &edge.proxies, err, errlen) != 0)
		return -1;
	return edge_server_start(&edge, err, errlen);
}

static void
stop(struct daemon *d)
{
	struct edge *e = d->priv;

	edge_server_stop(e);
	providers_free(&e->catalogue);
}

/*
 * -n: what start() refuses in a value beyond its type (trusted_proxies),
 * in start()'s words, so a file that passes -n is one the edge starts
 * with. The catalogue and the certificate are other files, read at start.
 */
static int
check(char *err, size_t errlen)
{
	struct edge_proxies proxies;

	return region_proxies_parse(cfg.trusted_proxies, &proxies, err, errlen);
}

static const struct daemon_spec spec = {
    .name = "edge",
    .role = ROLE_EDGE,
    .summary = "cn2 edge daemon: the HTTP/1.1 and TLS front door.",
    .keys = keys,
    .cfg = &cfg,
    .dial = dial,
    .ndial = NF(dial),
    .check = check,
    .start = start,
    .stop = stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &spec);
}
