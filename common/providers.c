/*
 * providers.c — loading and checking the provider catalogue (providers.h).
 *
 * The file is trusted configuration, but it is still checked strictly: a
 * header name or value that could split a request, an upstream that is not
 * a plain http(s) origin, or an unknown field is an error, so a typo cannot
 * become a request to the wrong place.
 */
#include "common/providers.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CATALOGUE_MAX (1u << 20)

static int
is_tchar(int c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
valid_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* Visible ASCII and spaces only: nothing that could end a header line. */
static int
valid_value(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

static int
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROV_NAME_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
			return 0;
	return 1;
}

/* http(s)://host[:port][/base]: no userinfo, query, fragment or trailing '/'. */
static int
valid_upstream(const char *u)
{
	const char *h;
	size_t n = strlen(u);

	if (strncmp(u, "https://", 8) == 0)
		h = u + 8;
	else if (strncmp(u, "http://", 7) == 0)
		h = u + 7;
	else
		return 0;
	if (*h == '\0' || *h == '/' || u[n - 1] == '/' || strpbrk(h, "@?# \\") != NULL)
		return 0;
	return valid_value(u);
}

static int
copy_str(char *dst, size_t cap, const cJSON *item)
{
	const char *s = cJSON_GetStringValue(item);

	if (s == NULL || strlen(s) >= cap)
		return -1;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int
parse_route(struct prov_route *r, const cJSON *item)
{
	const char *s = cJSON_GetStringValue(item), *sp;

	if (s == NULL || (sp = strchr(s, ' ')) == NULL || (size_t)(sp - s) >= sizeof(r->method))
		return -1;
	memcpy(r->method, s, (size_t)(sp - s));
	r->method[sp - s] = '\0';
	if (!valid_token(r->method) || sp[1] != '/' || strlen(sp + 1) >= sizeof(r->path) ||
	    !valid_value(sp + 1) || strpbrk(sp + 1, " ?#") != NULL)
		return -1;
	strcpy(r->path, sp + 1);
	return 0;
}

static int
parse_auth(struct provider *p, const cJSON *auth)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(auth, "header");
	const cJSON *pre = cJSON_GetObjectItemCaseSensitive(auth, "prefix");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(auth, "query");

	if (!cJSON_IsObject(auth) || (h == NULL) == (q == NULL))
		return -1;
	if (h != NULL && (copy_str(p->auth_header, sizeof(p->auth_header), h) != 0 ||
			     !valid_token(p->auth_header)))
		return -1;
	if (pre != NULL && (h == NULL || copy_str(p->auth_prefix, sizeof(p->auth_prefix), pre) != 0 ||
			       !valid_value(p->auth_prefix)))
		return -1;
	if (q != NULL && (copy_str(p->auth_query, sizeof(p->auth_query), q) != 0 ||
			     !valid_token(p->auth_query)))
		return -1;
	return 0;
}

static int
parse_headers(struct provider *p, const cJSON *hs)
{
	const cJSON *h;

	if (hs == NULL)
		return 0;
	if (!cJSON_IsObject(hs))
		return -1;
	cJSON_ArrayForEach(h, hs) {
		struct prov_header *ph = &p->headers[p->nheaders];

		if (p->nheaders == PROV_MAX_HEADERS || strlen(h->string) >= sizeof(ph->name) ||
		    !valid_token(h->string) || copy_str(ph->value, sizeof(ph->value), h) != 0 ||
		    !valid_value(ph->value))
			return -1;
		strcpy(ph->name, h->string);
		p->nheaders++;
	}
	return 0;
}

static int
parse_routes(struct provider *p, const cJSON *rs)
{
	const cJSON *r;

	if (!cJSON_IsArray(rs) || cJSON_GetArraySize(rs) == 0)
		return -1;
	cJSON_ArrayForEach(r, rs) {
		if (p->nroutes == PROV_MAX_ROUTES || parse_route(&p->routes[p->nroutes], r) != 0)
			return -1;
		p->nroutes++;
	}
	return 0;
}

static const char *const provider_fields[] = {
    "upstream", "auth", "headers", "stream", "routes", "docs",
};

static int
known_fields(const cJSON *obj)
{
	const cJSON *f;

	cJSON_ArrayForEach(f, obj) {
		size_t i;

		for (i = 0; i < sizeof(provider_fields) / sizeof(provider_fields[0]); i++)
			if (strcmp(f->string, provider_fields[i]) == 0)
				break;
		if (i == sizeof(provider_fields) / sizeof(provider_fields[0]))
			return 0;
	}
	return 1;
}

/* "docs", optional: where the entry was checked, an https:// address. */
static int
docs_valid(const cJSON *docs)
{
	const char *s = cJSON_GetStringValue(docs);

	if (docs == NULL)
		return 1;
	return s != NULL && strncmp(s, "https://", 8) == 0 && strlen(s) < 256 && valid_value(s) &&
	    strchr(s, ' ') == NULL;
}

static int
parse_provider(struct provider *p, const cJSON *obj, char *err, size_t errlen)
{
	const cJSON *stream = cJSON_GetObjectItemCaseSensitive(obj, "stream");
	const char *why = NULL;

	memset(p, 0, sizeof(*p));
	if (!valid_name(obj->string))
		why = "name must be 1-31 of [a-z0-9-]";
	else if (!cJSON_IsObject(obj) || !known_fields(obj))
		why = "not an object, or an unknown field";
	else if (copy_str(p->upstream, sizeof(p->upstream),
		     cJSON_GetObjectItemCaseSensitive(obj, "upstream")) != 0 ||
	    !valid_upstream(p->upstream))
		why = "upstream must be http(s)://host[:port][/base] without a trailing '/'";
	else if (parse_auth(p, cJSON_GetObjectItemCaseSensitive(obj, "auth")) != 0)
		why = "auth must be {\"header\", \"prefix\"} or {\"query\"}";
	else if (parse_headers(p, cJSON_GetObjectItemCaseSensitive(obj, "headers")) != 0)
		why = "headers must map tokens to printable values (8 at most)";
	else if (stream != NULL && !cJSON_IsBool(stream))
		why = "stream must be true or false";
	else if (parse_routes(p, cJSON_GetObjectItemCaseSensitive(obj, "routes")) != 0)
		why = "routes must be 1-64 strings \"METHOD /path\"";
	else if (!docs_valid(cJSON_GetObjectItemCaseSensitive(obj, "docs")))
		why = "docs must be an https:// address";
	if (why != NULL) {
		snprintf(err, errlen, "provider \"%.31s\": %s", obj->string, why);
		return -1;
	}
	snprintf(p->name, sizeof(p->name), "%s", obj->string);
	p->stream = cJSON_IsTrue(stream);
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const struct provider *)a)->name, ((const struct provider *)b)->name);
}

int
providers_parse(const char *json, size_t len, struct providers *out, char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(json, len), *ps, *p;
	int n, rc = -1;

	memset(out, 0, sizeof(*out));
	ps = cJSON_GetObjectItemCaseSensitive(root, "providers");
	if (root == NULL || !cJSON_IsObject(ps) ||
	    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "version")) != 1) {
		snprintf(err, errlen, "not a version 1 provider catalogue");
		goto out;
	}
	n = cJSON_GetArraySize(ps);
	if (n == 0 || (out->v = calloc((size_t)n, sizeof(*out->v))) == NULL) {
		snprintf(err, errlen, "no providers");
		goto out;
	}
	cJSON_ArrayForEach(p, ps) {
		if (parse_provider(&out->v[out->n], p, err, errlen) != 0)
			goto out;
		out->n++;
	}
	qsort(out->v, out->n, sizeof(*out->v), by_name);
	for (size_t i = 1; i < out->n; i++)
		if (strcmp(out->v[i - 1].name, out->v[i].name) == 0) {
			snprintf(err, errlen, "provider \"%s\" appears twice", out->v[i].name);
			goto out;
		}
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc != 0)
		providers_free(out);
	return rc;
}

int
providers_load(const char *path, struct providers *out, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (fp == NULL) {
		snprintf(err, errlen, "%s: cannot open", path);
		return -1;
	}
	if ((buf = malloc(CATALOGUE_MAX)) == NULL) {
		fclose(fp);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n = fread(buf, 1, CATALOGUE_MAX, fp);
	fclose(fp);
	if (n == CATALOGUE_MAX) {
		free(buf);
		snprintf(err, errlen, "%s: larger than %u bytes", path, CATALOGUE_MAX);
		return -1;
	}
	rc = providers_parse(buf, n, out, err, errlen);
	free(buf);
	return rc;
}

void
providers_free(struct providers *p)
{
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

const struct provider *
providers_find(const struct providers *p, const char *name, size_t n)
{
	for (size_t i = 0; i < p->n; i++)
		if (strlen(p->v[i].name) == n && memcmp(p->v[i].name, name, n) == 0)
			return &p->v[i];
	return NULL;
}

/*
 * A "*" pattern segment at pat against the path segment path[0..seg): "*"
 * alone matches any non-empty segment, "*<suffix>" one that ends in suffix
 * after at least one other byte (Gemini's "{*}:generateContent"). Returns the
 * pattern past the segment, or NULL if it does not match.
 */
static const char *
segment_match(const char *pat, const char *path, size_t seg)
{
	const char *pend = strchr(pat, '/');
	size_t slen = (pend != NULL ? (size_t)(pend - pat) : strlen(pat)) - 1;

	if (seg <= slen || memcmp(path + seg - slen, pat + 1, slen) != 0)
		return NULL;
	return pat + 1 + slen;
}

int
provider_path_match(const char *pat, const char *path, size_t plen)
{
	const char *end = path + plen, *start = pat;

	while (*pat != '\0' && path < end) {
		if (pat[0] == '*' && pat > start && pat[-1] == '/') {
			const char *slash = memchr(path, '/', (size_t)(end - path));
			const char *seg_end = slash != NULL ? slash : end;

			if ((pat = segment_match(pat, path, (size_t)(seg_end - path))) == NULL)
				return 0;
			path = seg_end;
			continue;
		}
		if (*pat != *path)
			return 0;
		pat++;
		path++;
	}
	return *pat == '\0' && path == end;
}

int
provider_route_allowed(const struct provider *pv, const char *method, size_t mlen,
    const char *path, size_t plen)
{
	for (size_t i = 0; i < pv->nroutes; i++) {
		const struct prov_route *r = &pv->routes[i];

		if (strlen(r->method) == mlen && memcmp(r->method, method, mlen) == 0 &&
		    provider_path_match(r->path, path, plen))
			return 1;
	}
	return 0;
}
