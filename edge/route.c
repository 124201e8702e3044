/*
 * route.c — what the edge serves, by host and path.
 *
 *   any host       GET /healthz                  readiness of every daemon
 *   <domain>,      /api/…                        the platform API (cn2-platform)
 *   api.<domain>
 *   <p>.<domain>   a route of provider p         the paid proxy (proxy.c)
 *
 * Everything else is a 404 problem.
 */
#include "edge/edge.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Does the request path (before any query) equal path, or start with it when prefix? */
static int
path_is(const struct http_request *req, const char *path, int prefix)
{
	size_t n = strlen(path), len = req->target_len;
	const char *q = memchr(req->target, '?', len);

	if (q != NULL)
		len = (size_t)(q - req->target);
	return (prefix ? len >= n : len == n) && memcmp(req->target, path, n) == 0;
}

static int
method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* The Host without its port, lower-cased into buf. 0, or -1 if absent or too long. */
static int
host_of(const struct http_request *req, char *buf, size_t cap, size_t *len)
{
	size_t n;
	const char *colon;

	if (req->host == NULL)
		return -1;
	n = req->host_len;
	if (req->host[0] != '[' && (colon = memchr(req->host, ':', n)) != NULL)
		n = (size_t)(colon - req->host);
	if (n == 0 || n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)req->host[i]);
	buf[n] = '\0';
	*len = n;
	return 0;
}

/* "openai.localhost" with domain "localhost" → "openai" (one label only). */
static const char *
subdomain_of(const char *host, size_t hlen, const char *domain, size_t *sublen)
{
	size_t dlen = strlen(domain);

	if (hlen <= dlen + 1 || host[hlen - dlen - 1] != '.' ||
	    strcasecmp(host + hlen - dlen, domain) != 0)
		return NULL;
	*sublen = hlen - dlen - 1;
	return memchr(host, '.', *sublen) == NULL ? host : NULL;
}

void
edge_route(struct edge *e, struct hconn *c)
{
	const struct http_request *req = hconn_request(c);
	const struct provider *pv;
	const char *sub;
	char host[256];
	size_t hlen, slen;

	if (path_is(req, "/healthz", 0)) {
		if (method_is(req, "GET") || method_is(req, "HEAD"))
			edge_health(e, c);
		else
			hconn_respond(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "", 0);
		return;
	}
	if (host_of(req, host, sizeof(host), &hlen) != 0) {
		hconn_problem(c, 400, "bad-request", "a Host header is required");
		return;
	}
	sub = subdomain_of(host, hlen, e->cfg->domain, &slen);
	if (strcmp(host, e->cfg->domain) == 0 || (sub != NULL && slen == 3 && memcmp(sub, "api", 3) == 0)) {
		if (path_is(req, "/api/", 1))
			edge_api(e, c);
		else
			hconn_problem(c, 404, "not-found", "nothing is served at this address");
		return;
	}
	if (sub != NULL && (pv = providers_find(&e->catalogue, sub, slen)) != NULL) {
		edge_proxy(e, c, pv, host, hlen);
		return;
	}
	hconn_problem(c, 404, "unknown-host", "no provider is served at this host name");
}
