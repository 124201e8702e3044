/*
 * api.c — the platform API (/api/…) on the root host, passed to
 * cn2-platform as it is: method, target, the bearer token, content type and
 * body. platform-api authenticates and answers; the edge only carries.
 */
#include "edge/edge.h"

#include <stdlib.h>
#include <string.h>

#define API_TIMEOUT_MS 15000

struct ajob {
	struct hjob base;
};

static void
api_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct ajob *j = arg;
	struct hconn *c = j->base.conn;

	if (c != NULL) {
		if (status == 0 && type == IPC_API_REP)
			hconn_respond(c, msg->api_rep.status,
			    msg->api_rep.content_type[0] ? msg->api_rep.content_type : NULL,
			    "Cache-Control: no-store\r\n", msg->api_rep.body.p, msg->api_rep.body.len);
		else
			hconn_problem(c, 503, "service-unavailable",
			    "the platform service is unavailable");
	}
	free(j);
}

/* The client went away: the reply still comes, and frees the job. */
static void
api_cancel(struct hjob *base)
{
	(void)base;
}

static int
copy_header(const struct http_request *req, const char *name, char *out, size_t cap)
{
	const struct http_header *h = http_header_get(req, name);

	if (h == NULL)
		return 0;
	if (h->value_len >= cap)
		return -1;
	memcpy(out, h->value, h->value_len);
	return 0;
}

void
edge_api(struct edge *e, struct hconn *c)
{
	const struct http_request *req = hconn_request(c);
	struct ipc_api *a = calloc(1, sizeof(*a));
	struct ajob *j = calloc(1, sizeof(*j));
	size_t blen;

	if (a == NULL || j == NULL || req->method_len > IPC_METHOD_MAX ||
	    req->target_len > IPC_TARGET_MAX ||
	    copy_header(req, "Authorization", a->authorization, sizeof(a->authorization)) != 0 ||
	    copy_header(req, "Content-Type", a->content_type, sizeof(a->content_type)) != 0) {
		free(a);
		free(j);
		hconn_problem(c, 400, "bad-request", "the request is too large for the platform API");
		return;
	}
	memcpy(a->method, req->method, req->method_len);
	memcpy(a->target, req->target, req->target_len);
	a->body.p = (const uint8_t *)hconn_body(c, &blen);
	a->body.len = (uint32_t)blen;
	j->base.cancel = api_cancel;
	if (blen > (1u << 20)) {
		hconn_problem(c, 413, "too-large", "platform API bodies are limited to 1 MiB");
	} else if (ipc_request(e->d->ipc, ROLE_PLATFORM, IPC_API, a, API_TIMEOUT_MS, api_on_reply,
		       j) == 0) {
		hconn_problem(c, 503, "service-unavailable", "the platform service is unavailable");
	} else {
		hconn_attach(c, &j->base);
		j = NULL;
	}
	explicit_bzero(a->authorization, sizeof(a->authorization));
	free(a);
	free(j);
}
