/*
 * route.c — what the edge serves, by path.
 *
 * Only the edge's own endpoints for now: GET /healthz. Everything else is a
 * 404 problem. The buyer-facing proxy and the platform API come in through
 * here as they are built.
 */
#include "edge/edge.h"

#include <string.h>

/* Does the request path (before any query) equal path? */
static int
path_is(const struct http_request *req, const char *path)
{
	size_t n = strlen(path), len = req->target_len;
	const char *q = memchr(req->target, '?', len);

	if (q != NULL)
		len = (size_t)(q - req->target);
	return len == n && memcmp(req->target, path, n) == 0;
}

static int
method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

void
edge_route(struct edge *e, struct hconn *c)
{
	const struct http_request *req = hconn_request(c);

	if (path_is(req, "/healthz")) {
		if (method_is(req, "GET") || method_is(req, "HEAD"))
			edge_health(e, c);
		else
			hconn_respond(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "", 0);
		return;
	}
	hconn_problem(c, 404, "not-found", "nothing is served at this address");
}
