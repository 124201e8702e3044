/*
 * edge.h — cn2-edge's private interfaces: the HTTP/1.1 server (server.c),
 * the routes it serves (route.c) and /healthz (health.c).
 */
#ifndef CN2_EDGE_H
#define CN2_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/daemon.h"
#include "common/http.h"
#include "common/providers.h"
#include "edge/tls.h"

#define EDGE_PROBLEM_BASE "https://cn2.ai/problems/"
/* Retry-After of the edge's own 503s, in seconds: about one systemd restart of a daemon. */
#define EDGE_RETRY_AFTER_S "5"

struct edge_cfg {
	char listen_http[64];  /* "127.0.0.1:8080", or "" for none */
	char listen_https[64]; /* "127.0.0.1:8443", or "" for none */
	char tls_cert[256];
	char tls_key[256];
	int64_t max_conns;
	int64_t max_head;	   /* bytes of a request head */
	int64_t max_body;	   /* bytes of a request body, after chunked decoding */
	int64_t header_timeout_ms; /* from a head's first byte (or the TLS hello) to its end */
	int64_t idle_timeout_ms;   /* keep-alive wait for the next request, and body stalls */
	char domain[128];	   /* "localhost": providers at <name>.<domain>, the API at <domain> */
	char providers[256];	   /* the provider catalogue */
	char trusted_proxies[1024]; /* addresses and CIDRs whose CF-IPCountry is believed */
	int64_t max_attempts;	   /* keys one paid request may try (failover included) */
};

/* region.c: the proxies whose CF-IPCountry header is trusted. */
#define EDGE_PROXIES_MAX 64
struct edge_net {
	uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	int bits;	  /* prefix length over the 128 bits */
};
struct edge_proxies {
	struct edge_net net[EDGE_PROXIES_MAX];
	size_t n;
};

struct hconn;

/* A route handler working asynchronously holds one of these. */
struct hjob {
	struct hconn *conn; /* NULL once the client went away: finish quietly */
	void (*cancel)(struct hjob *job); /* called when the connection closes; may be NULL */
	void (*drain)(struct hjob *job);  /* the write queue fell below HCONN_LOW_WATER; may be NULL */
};

/* Bytes queued for the client below which a streaming job is told to send more. */
#define HCONN_LOW_WATER (64u << 10)

struct edge {
	struct daemon *d;
	const struct edge_cfg *cfg;
	struct tls_config *tls;
	struct providers catalogue;
	struct edge_proxies proxies;
	uv_tcp_t http, https;
	int http_on, https_on;
	int stopping;
	struct hconn *conns;
	size_t nconns;
	uint64_t served;
};

/* server.c */
int edge_server_start(struct edge *e, char *err, size_t errlen);
void edge_server_stop(struct edge *e);

/* The request a handler is serving, valid until it responds. */
const struct http_request *hconn_request(struct hconn *c);
const char *hconn_body(struct hconn *c, size_t *len);
int hconn_is_tls(struct hconn *c);
void hconn_attach(struct hconn *c, struct hjob *job); /* the handler went async */
/* Respond (complete response); the request is over after this. */
void hconn_respond(struct hconn *c, int status, const char *ctype, const char *extra_headers,
    const void *body, size_t len);
void hconn_problem(struct hconn *c, int status, const char *name, const char *detail);

/*
 * Streaming a response of unknown length (HTTP/1.1 chunked): the head, any
 * number of chunks, then the end. A clean end writes the last chunk and the
 * request is over; an unclean one closes the connection once what is queued
 * is written, so the client sees a truncated body, never a clean end.
 */
int hconn_stream_head(struct hconn *c, int status, const char *extra_headers);
int hconn_stream_data(struct hconn *c, const void *data, size_t len);
void hconn_stream_end(struct hconn *c, int clean);
size_t hconn_queued(struct hconn *c); /* bytes queued for the client, not yet written */
int hconn_minor(struct hconn *c);      /* HTTP/1.<minor> of the request */
/* The client's address (the TCP peer). 0, or -1. Never logged or stored (DESIGN.md §5). */
int hconn_peer(struct hconn *c, struct sockaddr_storage *ss);

/* route.c: called once per complete request. */
void edge_route(struct edge *e, struct hconn *c);

/*
 * region.c: "10.0.0.0/8, 2001:db8::1" into proxies (empty: none). 0, or -1
 * with a reason in err.
 */
int region_proxies_parse(const char *spec, struct edge_proxies *out, char *err, size_t errlen);
int region_trusted(const struct edge_proxies *p, const struct sockaddr_storage *ss);
/* Is a two-letter country code (any case) an EU member state? */
int region_country_eu(const char *cc, size_t n);
/* The routing region of the request c serves: "eu" (CF-IPCountry, from a trusted proxy), or "". */
const char *region_of_request(struct edge *e, struct hconn *c);

/* health.c: GET /healthz. */
void edge_health(struct edge *e, struct hconn *c);

/* proxy.c: a buyer's request to a provider subdomain (host is the Host without port). */
void edge_proxy(struct edge *e, struct hconn *c, const struct provider *pv, const char *host,
    size_t hostlen);

/* api.c: /api/… on the root host, passed to cn2-platform. */
void edge_api(struct edge *e, struct hconn *c);

#endif
