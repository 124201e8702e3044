/*
 * hookparse.c — the bodies of POST /api/webhooks and PATCH
 * /api/webhooks/<id>, strictly.
 *
 *   {"url": "https://…", "events": ["key.quarantined"] | ["*"],
 *    "description": "…", "enabled": true | false}
 *
 * POST needs "url" ("events" defaults to every kind, "description" to none,
 * "enabled" to true); PATCH takes any non-empty subset. Nothing else.
 *
 * A URL is https:// (http:// only where the operator allows private
 * endpoints, for local setups), a host name or an IP literal, an optional
 * port, and a path of printable ASCII; no user info, no fragment, at most
 * HOOK_URL_MAX bytes. Where it points is checked again when it is called,
 * after DNS (common/httpc.c), since a name can resolve anywhere.
 *
 * Security stance: outside input from any seller. The body is bounded
 * before parsing, members are a closed set, every string is bounded and
 * checked, and a refusal says why without quoting the body. A libFuzzer
 * target (fuzz_webhooks) runs it.
 */
#include "platform-api/platform.h"

#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

#define HOOK_BODY_MAX 4096

/* The kinds of seller events there are (router/outcome.c writes them). */
static const char *const hook_kinds[] = {"key.quarantined", NULL};

int
hook_kind_known(const char *kind)
{
	for (size_t i = 0; hook_kinds[i] != NULL; i++)
		if (strcmp(hook_kinds[i], kind) == 0)
			return 1;
	return 0;
}

/* host[:port] of a URL: a name, an IPv4 or a bracketed IPv6 literal; 0 or -1. */
static int
authority_ok(const char *a, size_t n)
{
	const char *colon = NULL;
	size_t hostlen;

	if (n == 0 || memchr(a, '@', n) != NULL)
		return -1;
	if (a[0] == '[') {
		const char *end = memchr(a, ']', n);

		if (end == NULL || end == a + 1 ||
		    strspn(a + 1, "0123456789abcdefABCDEF:.") < (size_t)(end - a - 1))
			return -1;
		colon = end + 1 < a + n ? end + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return -1;
		hostlen = (size_t)(end - a) + 1;
	} else {
		colon = memchr(a, ':', n);
		hostlen = colon != NULL ? (size_t)(colon - a) : n;
		if (hostlen == 0 || hostlen > 253 ||
		    strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") <
			hostlen ||
		    a[0] == '.' || a[0] == '-')
			return -1;
	}
	if (colon != NULL) {
		size_t plen = n - hostlen - 1;
		long port;

		if (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") < plen ||
		    colon[1] == '0')
			return -1;
		port = strtol(colon + 1, NULL, 10);
		if (port < 1 || port > 65535)
			return -1;
	}
	return 0;
}

int
hook_url_ok(const char *url, int allow_http)
{
	size_t len = strlen(url), skip, alen;
	const char *a;

	if (len > HOOK_URL_MAX)
		return -1;
	if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else if (allow_http && strncmp(url, "http://", 7) == 0)
		skip = 7;
	else
		return -1;
	for (size_t i = 0; i < len; i++)
		if (url[i] <= ' ' || url[i] > '~' || url[i] == '#' || url[i] == '\\')
			return -1;
	a = url + skip;
	alen = strcspn(a, "/?");
	return authority_ok(a, alen);
}

/* "events": a non-empty array of known kinds, or ["*"], joined with ',' into out. */
static int
events_parse(const cJSON *v, char *out, size_t cap, const char **why)
{
	const cJSON *it;
	size_t n = 0, used = 0;

	*why = "\"events\" must be [\"*\"] or a list of event kinds (key.quarantined)";
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > 8)
		return -1;
	out[0] = '\0';
	cJSON_ArrayForEach(it, v) {
		const char *s = cJSON_GetStringValue(it);
		size_t sl;

		if (s == NULL || (strcmp(s, "*") != 0 && !hook_kind_known(s)) ||
		    (strcmp(s, "*") == 0 && cJSON_GetArraySize(v) != 1))
			return -1;
		sl = strlen(s);
		if (used + sl + 2 > cap)
			return -1;
		if (n++ > 0)
			out[used++] = ',';
		memcpy(out + used, s, sl + 1);
		used += sl;
	}
	return 0;
}

static int
description_ok(const char *s)
{
	size_t n = strlen(s);

	if (n > HOOK_DESC_MAX || !utf8_valid((const uint8_t *)s, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

/* One member of the body into in; 0, or -1 with why. */
static int
member_parse(const cJSON *it, struct hook_input *in, int allow_http, const char **why)
{
	const char *s = cJSON_GetStringValue(it);

	if (strcmp(it->string, "url") == 0) {
		*why = "\"url\" must be an https:// URL without user info or fragment, at most 512 "
		       "bytes";
		if (s == NULL || hook_url_ok(s, allow_http) != 0)
			return -1;
		memcpy(in->url, s, strlen(s) + 1);
		in->have |= HOOK_URL;
	} else if (strcmp(it->string, "events") == 0) {
		if (events_parse(it, in->events, sizeof(in->events), why) != 0)
			return -1;
		in->have |= HOOK_EVENTS;
	} else if (strcmp(it->string, "description") == 0) {
		*why = "\"description\" must be text of at most 200 bytes, no control characters";
		if (s == NULL || !description_ok(s))
			return -1;
		memcpy(in->description, s, strlen(s) + 1);
		in->have |= HOOK_DESC;
	} else if (strcmp(it->string, "enabled") == 0) {
		*why = "\"enabled\" must be true or false";
		if (!cJSON_IsBool(it))
			return -1;
		in->enabled = cJSON_IsTrue(it);
		in->have |= HOOK_ENABLED;
	} else {
		*why = "unknown member: a webhook has url, events, description and enabled";
		return -1;
	}
	return 0;
}

int
hook_parse(const uint8_t *body, size_t len, int create, int allow_http, struct hook_input *in,
    const char **why)
{
	cJSON *o, *it;
	int rc = 0;

	memset(in, 0, sizeof(*in));
	*why = "the body must be a JSON object";
	if (body == NULL || len == 0 || len > HOOK_BODY_MAX || !utf8_valid(body, len) ||
	    (o = cJSON_ParseWithLength((const char *)body, len)) == NULL)
		return -1;
	if (!cJSON_IsObject(o))
		rc = -1;
	cJSON_ArrayForEach(it, o) {
		const cJSON *before = o->child;

		while (rc == 0 && before != it && strcmp(before->string, it->string) != 0)
			before = before->next;
		if (rc == 0 && before != it) {
			*why = "a member is repeated";
			rc = -1;
		}
		if (rc == 0)
			rc = member_parse(it, in, allow_http, why);
	}
	cJSON_Delete(o);
	if (rc == 0 && create && !(in->have & HOOK_URL)) {
		*why = "a webhook needs a \"url\"";
		rc = -1;
	} else if (rc == 0 && !create && in->have == 0) {
		*why = "nothing to change: send url, events, description or enabled";
		rc = -1;
	}
	if (rc != 0) {
		memset(in, 0, sizeof(*in));
		return -1;
	}
	if (create && !(in->have & HOOK_EVENTS))
		memcpy(in->events, "*", 2);
	if (create && !(in->have & HOOK_ENABLED))
		in->enabled = 1;
	return 0;
}
