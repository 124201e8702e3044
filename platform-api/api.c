/*
 * api.c — the seller REST API as the edge hands it over (API → API_REP):
 * routing by path and method, and the JSON and problem+json replies.
 *
 *   POST /api/keys               list a key for sale (bearer token)
 *   GET  /api/keys               the seller's keys (bearer token)
 *   POST /api/keys/:id/rotate    a new sealed secret for a key (bearer token)
 *   GET, PATCH, DELETE /api/keys/:id   one key and its terms (bearer token; listing.c)
 *   GET  /api/marketplace/providers    keys, prices and uptime per provider (public; market.c)
 *   GET  /api/vault/public-key   the vault's key to seal keys to (public)
 *   GET  /api/earnings           the seller's earnings (bearer token; earnings.c)
 *   POST /api/disputes           open a dispute on a receipt (operator token; disputes.c)
 *   GET  /api/disputes/:id       a dispute (operator token)
 *   POST /api/disputes/:id/resolve  return it to the seller or refund the buyer (operator)
 *   GET, POST /api/webhooks; GET, PATCH, DELETE /api/webhooks/:id  (bearer token; webhooks.c)
 *
 * Anything else under /api/ is 404, a known path with another method 405.
 *
 * Security stance: the request comes from the internet through the edge,
 * which only carries it. Nothing here logs a body, a token or a query
 * string; errors are RFC 9457 problems with a stable type and a detail that
 * never quotes the request.
 */
#include "platform-api/platform.h"

#include <stdio.h>
#include <string.h>

#include "common/http.h"
#include "common/log.h"
#include "common/utf8.h"

#define PROBLEM_BASE "https://cn2.ai/problems/"

static void
api_send(struct platform *p, const struct ipc_req *req, uint16_t status, const char *ctype,
    const char *body)
{
	struct ipc_api_rep rep;

	memset(&rep, 0, sizeof(rep));
	rep.status = status;
	snprintf(rep.content_type, sizeof(rep.content_type), "%s", ctype);
	rep.body.p = (const uint8_t *)body;
	rep.body.len = (uint32_t)strlen(body);
	if (ipc_reply(p->d->ipc, req, IPC_API_REP, &rep) != 0)
		log_debug("the edge is gone; a %u reply is dropped", (unsigned)status);
}

/* When even the reply cannot be built, the edge still gets a final message. */
static void
api_fail(struct platform *p, const struct ipc_req *req)
{
	p->d->errors++;
	ipc_reply_error(p->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
}

void
api_reply_json(struct platform *p, const struct ipc_req *req, uint16_t status, cJSON *body)
{
	char *s = body != NULL ? cJSON_PrintUnformatted(body) : NULL;

	cJSON_Delete(body);
	if (s == NULL) {
		api_fail(p, req);
		return;
	}
	api_send(p, req, status, "application/json", s);
	cJSON_free(s);
}

void
api_reply_problem(struct platform *p, const struct ipc_req *req, uint16_t status,
    const char *name, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	char type[128], *s = NULL;

	/* name and detail may come from a peer's PROBLEM: keep the JSON and the type sane. */
	if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name) || name[0] == '\0')
		name = "error";
	if (!utf8_valid((const uint8_t *)detail, strlen(detail)))
		detail = "the request failed";
	snprintf(type, sizeof(type), PROBLEM_BASE "%s", name);
	if (o != NULL && cJSON_AddStringToObject(o, "type", type) != NULL &&
	    cJSON_AddStringToObject(o, "title", http_reason(status)) != NULL &&
	    cJSON_AddNumberToObject(o, "status", status) != NULL &&
	    cJSON_AddStringToObject(o, "detail", detail) != NULL)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s == NULL) {
		api_fail(p, req);
		return;
	}
	api_send(p, req, status, "application/problem+json", s);
	cJSON_free(s);
}

/* The path of an origin-form target, without its query: 0, or -1 if not origin-form. */
static int
target_path(const char *target, char *path, size_t cap)
{
	size_t n = strcspn(target, "?#");

	if (target[0] != '/' || n >= cap)
		return -1;
	memcpy(path, target, n);
	path[n] = '\0';
	return 0;
}

static void
api_keys(struct platform *p, const struct ipc_req *req, const struct ipc_api *m)
{
	struct jwt_claims c;
	const char *why;
	int get = strcmp(m->method, "GET") == 0, post = strcmp(m->method, "POST") == 0;

	if (!get && !post) {
		api_reply_problem(p, req, 405, "method-not-allowed",
		    "/api/keys accepts GET and POST");
		return;
	}
	if (auth_bearer(p, m->authorization, &c, &why) != 0) {
		api_reply_problem(p, req, 401, "unauthorized", why);
		return;
	}
	if (get)
		keys_list(p, req, c.sub);
	else
		keys_create(p, req, c.sub, m);
}

/* POST /api/keys/<id>/rotate; path is the whole path. */
static void
api_key_rotate(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *path)
{
	char id[IPC_KEY_ID_MAX + 1];
	size_t n = strlen(path) - strlen("/api/keys/") - strlen("/rotate");
	struct jwt_claims c;
	const char *why;

	if (n == 0 || n > IPC_KEY_ID_MAX) {
		api_reply_problem(p, req, 404, "not-found", "there is no such API resource");
		return;
	}
	memcpy(id, path + strlen("/api/keys/"), n);
	id[n] = '\0';
	if (strcmp(m->method, "POST") != 0)
		api_reply_problem(p, req, 405, "method-not-allowed", "rotate accepts POST");
	else if (auth_bearer(p, m->authorization, &c, &why) != 0)
		api_reply_problem(p, req, 401, "unauthorized", why);
	else if (strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") !=
	    n)
		api_reply_problem(p, req, 404, "not-found", "you have no key with this id");
	else
		keys_rotate(p, req, c.sub, id, m);
}

/* GET, PATCH, DELETE /api/keys/<id>: the seller's own key (listing.c). */
static void
api_key_item(struct platform *p, const struct ipc_req *req, const struct ipc_api *m,
    const char *id)
{
	struct jwt_claims c;
	const char *why;
	size_t n = strlen(id);

	if (auth_bearer(p, m->authorization, &c, &why) != 0)
		api_reply_problem(p, req, 401, "unauthorized", why);
	else if (n == 0 || n > IPC_KEY_ID_MAX ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
		api_reply_problem(p, req, 404, "not-found", "you have no key with this id");
	else
		listing_request(p, req, m, c.sub, id);
}

static int
has_prefix_suffix(const char *s, const char *prefix, const char *suffix)
{
	size_t n = strlen(s), pl = strlen(prefix), sl = strlen(suffix);

	return n >= pl + sl && strncmp(s, prefix, pl) == 0 && strcmp(s + n - sl, suffix) == 0;
}

void
api_request(struct platform *p, const struct ipc_req *req, const struct ipc_api *m)
{
	char path[IPC_TARGET_MAX + 1];

	if (target_path(m->target, path, sizeof(path)) != 0 || strncmp(path, "/api/", 5) != 0) {
		api_reply_problem(p, req, 404, "not-found", "there is no such API resource");
		return;
	}
	if (strcmp(path, "/api/keys") == 0)
		api_keys(p, req, m);
	else if (has_prefix_suffix(path, "/api/keys/", "/rotate"))
		api_key_rotate(p, req, m, path);
	else if (strncmp(path, "/api/keys/", 10) == 0 && strchr(path + 10, '/') == NULL)
		api_key_item(p, req, m, path + 10);
	else if (strcmp(path, "/api/marketplace/providers") == 0)
		market_providers(p, req, m);
	else if (strcmp(path, "/api/vault/public-key") == 0 && strcmp(m->method, "GET") == 0)
		keys_vault_pubkey(p, req);
	else if (strcmp(path, "/api/vault/public-key") == 0)
		api_reply_problem(p, req, 405, "method-not-allowed", "the public key accepts GET");
	else if (strcmp(path, "/api/earnings") == 0)
		earnings_request(p, req, m);
	else if (strncmp(path, "/api/disputes", 13) == 0 && (path[13] == '\0' || path[13] == '/'))
		disputes_request(p, req, m, path);
	else if (strncmp(path, "/api/webhooks", 13) == 0 && (path[13] == '\0' || path[13] == '/'))
		webhooks_request(p, req, m, path);
	else
		api_reply_problem(p, req, 404, "not-found", "there is no such API resource");
}
