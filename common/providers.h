/*
 * providers.h — the provider catalogue: which upstream APIs cn2 proxies,
 * where they are, how a seller's key is injected, and which routes may pass.
 *
 * It is data (a JSON file, `vault/providers.json` in the source tree), not
 * code. The edge uses it to map a Host to a provider and refuse routes that
 * are not proxied; the vault to build the upstream request.
 *
 *   {"version": 1, "providers": {"openai": {
 *       "upstream": "https://api.openai.com",
 *       "auth": {"header": "Authorization", "prefix": "Bearer "},   or {"query": "key"}
 *       "headers": {"anthropic-version": "2023-06-01"},            fixed headers, optional
 *       "stream": true,                                            SSE responses possible
 *       "routes": ["POST /v1/chat/completions", "GET /v1/models/{*}"],
 *       "docs": "https://platform.openai.com/docs/api-reference"}}}  checked against
 *
 * A route is "METHOD /path"; a path segment "*" (written {*} above, inside this
 * comment) matches exactly one segment, "*<suffix>" one that ends in suffix.
 */
#ifndef CN2_PROVIDERS_H
#define CN2_PROVIDERS_H

#include <stddef.h>

#define PROV_NAME_MAX 31
#define PROV_MAX_ROUTES 64
#define PROV_MAX_HEADERS 8

struct prov_route {
	char method[16];
	char path[256];
};

struct prov_header {
	char name[64];
	char value[256];
};

struct provider {
	char name[PROV_NAME_MAX + 1];
	char upstream[256];	/* scheme://host[:port][/base], no trailing '/' */
	char auth_header[64];	/* header carrying the key, or "" */
	char auth_prefix[32];	/* written before the key in that header */
	char auth_query[32];	/* query parameter carrying the key, or "" */
	struct prov_header headers[PROV_MAX_HEADERS];
	size_t nheaders;
	int stream;
	struct prov_route routes[PROV_MAX_ROUTES];
	size_t nroutes;
};

struct providers {
	struct provider *v; /* sorted by name */
	size_t n;
};

/* Load and validate a catalogue. 0, or -1 with a reason (naming the provider) in err. */
int providers_load(const char *path, struct providers *out, char *err, size_t errlen);
int providers_parse(const char *json, size_t len, struct providers *out, char *err, size_t errlen);
void providers_free(struct providers *p);

const struct provider *providers_find(const struct providers *p, const char *name, size_t n);

/*
 * 1 if path (no query, plen bytes) matches the pattern of a route: equal,
 * except that a pattern segment "*" matches exactly one non-empty segment,
 * and a segment "*<suffix>" one that ends in suffix after at least one byte
 * (Gemini's "/v1beta/models/{*}:generateContent").
 * The router uses it for the routes a seller allows a listing.
 */
int provider_path_match(const char *pattern, const char *path, size_t plen);

/* 1 if method + path (no query) is one of the provider's routes. */
int provider_route_allowed(const struct provider *pv, const char *method, size_t mlen,
    const char *path, size_t plen);

#endif
