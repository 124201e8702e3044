/*
 * request.c — what the vault sends upstream and what it passes back: the
 * URL, the request header lines with the seller's key injected, and the
 * response header lines the edge may see.
 *
 * Security stance: the edge already filtered the buyer's headers, but the
 * vault filters again (defence in depth): nothing that frames the message,
 * routes it, or carries a credential on any API we know passes (the
 * credential headers of every provider in the catalogue and then some), and
 * no buyer header may carry the provider's key header or one of its fixed
 * headers, so the only key an upstream ever sees is the one the vault
 * injected. Header lines are checked
 * strictly (token names, no CR, LF or NUL in values), so a line from the edge
 * cannot split the upstream request. The key is written only into buffers
 * the caller wipes (and the key's header line into a list node the caller
 * owns, in locked memory); no function here logs.
 */
#include "vault/vault.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/platform_util.h>

#include "common/http.h"

#define HEADER_LINES_MAX 128
#define HEADER_NAME_MAX 255

struct hline {
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

static int
is_tchar(int c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A field-value byte: HTAB, SP, VCHAR or obs-text; never CR, LF, NUL or DEL. */
static int
is_vchar(int c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Parse one line buf[0..n) (no CRLF) as "name: value". 0, or -1 if malformed. */
static int
hline_parse(const char *buf, size_t n, struct hline *h)
{
	size_t i = 0, end;

	while (i < n && is_tchar((unsigned char)buf[i]))
		i++;
	if (i == 0 || i > HEADER_NAME_MAX || i == n || buf[i] != ':')
		return -1;
	h->name = buf;
	h->nlen = i;
	for (i++; i < n && (buf[i] == ' ' || buf[i] == '\t'); i++)
		;
	for (end = n; end > i && (buf[end - 1] == ' ' || buf[end - 1] == '\t'); end--)
		;
	for (size_t j = i; j < end; j++)
		if (!is_vchar((unsigned char)buf[j]))
			return -1;
	h->value = buf + i;
	h->vlen = end - i;
	return 0;
}

/*
 * The next line of buf[0..len) from *pos. 1 with *h filled, 0 at the end,
 * -1 if the line is malformed (then *pos is past it when it ended in CRLF),
 * -2 if the rest does not end in CRLF.
 */
static int
hline_next(const char *buf, size_t len, size_t *pos, struct hline *h)
{
	const char *p = buf + *pos, *cr;
	size_t left = len - *pos, n;

	if (left == 0)
		return 0;
	if ((cr = memchr(p, '\r', left)) == NULL || (size_t)(cr - p) + 1 >= left || cr[1] != '\n')
		return -2;
	n = (size_t)(cr - p);
	*pos += n + 2;
	if (memchr(p, '\n', n) != NULL || memchr(p, '\0', n) != NULL)
		return -1;
	return hline_parse(p, n, h) == 0 ? 1 : -1;
}

static int
name_is(const struct hline *h, const char *name)
{
	return strlen(name) == h->nlen && strncasecmp(h->name, name, h->nlen) == 0;
}

int
request_check(const char *target, const uint8_t *headers, size_t len, const char **why)
{
	struct hline h;
	size_t pos = 0;
	int rc, lines = 0;

	if (target[0] != '/') {
		*why = "the target is not a path";
		return -1;
	}
	for (const char *t = target; *t != '\0'; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f || *t == '#') {
			*why = "the target has a byte that is not allowed";
			return -1;
		}
	while ((rc = hline_next((const char *)headers, len, &pos, &h)) == 1)
		if (++lines > HEADER_LINES_MAX) {
			*why = "too many header lines";
			return -1;
		}
	if (rc != 0) {
		*why = "a header line is malformed";
		return -1;
	}
	return 0;
}

/* Request headers that never pass upstream, whatever the edge sent. */
static const char *const drop_request[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "expect",
};

/*
 * Headers that carry a credential on some API: a buyer's copy would let the
 * buyer act with their own key in the seller's name, or probe for the
 * seller's account. Every auth header of the shipped catalogue is here.
 */
static const char *const credential_headers[] = {
    "authorization", "payment-authorization", "cookie", "x-api-key", "api-key", "xi-api-key",
    "x-goog-api-key", "x-auth-token", "x-access-token", "openai-organization",
    "openai-project", "x-goog-user-project",
};

int
request_is_credential(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(credential_headers) / sizeof(credential_headers[0]); i++)
		if (strlen(credential_headers[i]) == n && strncasecmp(name, credential_headers[i], n) == 0)
			return 1;
	return n >= 6 && strncasecmp(name, "proxy-", 6) == 0;
}

static int
drop_for_upstream(const struct provider *pv, const struct hline *h)
{
	for (size_t i = 0; i < sizeof(drop_request) / sizeof(drop_request[0]); i++)
		if (name_is(h, drop_request[i]))
			return 1;
	if (request_is_credential(h->name, h->nlen))
		return 1;
	if (pv->auth_header[0] != '\0' && name_is(h, pv->auth_header))
		return 1;
	for (size_t i = 0; i < pv->nheaders; i++)
		if (name_is(h, pv->headers[i].name))
			return 1;
	return 0;
}

static int
slist_add(struct curl_slist **list, const char *s)
{
	struct curl_slist *l = curl_slist_append(*list, s);

	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

/* Add one line "name: value" from parts, built in line[0..cap). */
static int
slist_add_line(struct curl_slist **list, char *line, size_t cap, const char *name,
    size_t nlen, const char *prefix, const char *value, size_t vlen)
{
	int n = snprintf(line, cap, "%.*s: %s%.*s", (int)nlen, name, prefix, (int)vlen, value);

	if (n < 0 || (size_t)n >= cap)
		return -1;
	return slist_add(list, line);
}

int
request_headers(const struct provider *pv, const uint8_t *headers, size_t len,
    const uint8_t *key, size_t keylen, char *line, size_t linecap, struct curl_slist *keynode,
    struct curl_slist **list)
{
	struct curl_slist *tail;
	struct hline h;
	size_t pos = 0;
	int rc, ctype = 0;

	while ((rc = hline_next((const char *)headers, len, &pos, &h)) == 1) {
		if (drop_for_upstream(pv, &h))
			continue;
		ctype |= name_is(&h, "content-type");
		if (slist_add_line(list, line, linecap, h.name, h.nlen, "", h.value, h.vlen) != 0)
			return -1;
	}
	if (rc != 0)
		return -1;
	/* No "Expect: 100-continue" round trip; no form content type libcurl would invent. */
	if (slist_add(list, "Expect:") != 0 || (!ctype && slist_add(list, "Content-Type:") != 0))
		return -1;
	for (size_t i = 0; i < pv->nheaders; i++)
		if (slist_add_line(list, line, linecap, pv->headers[i].name,
			strlen(pv->headers[i].name), "", pv->headers[i].value,
			strlen(pv->headers[i].value)) != 0)
			return -1;
	if (pv->auth_header[0] == '\0')
		return 0;
	/* The key's line stays in the caller's locked buffer; the list points at it. */
	rc = snprintf(line, linecap, "%s: %s%.*s", pv->auth_header, pv->auth_prefix, (int)keylen,
	    (const char *)key);
	if (rc < 0 || (size_t)rc >= linecap) {
		mbedtls_platform_zeroize(line, linecap);
		return -1;
	}
	keynode->data = line;
	keynode->next = NULL;
	for (tail = *list; tail->next != NULL; tail = tail->next)
		;
	tail->next = keynode;
	return 0;
}

void
request_slist_free(struct curl_slist *list, const struct curl_slist *keynode)
{
	for (struct curl_slist *l = list; l != NULL; l = l->next) {
		if (l->next == keynode)
			l->next = NULL; /* the caller's: not libcurl's to free */
		if (l->data != NULL)
			mbedtls_platform_zeroize(l->data, strlen(l->data));
	}
	curl_slist_free_all(list);
}

/* Append s[0..n) to buf at *off. 0, or -1 if it does not fit (with the NUL). */
static int
put(char *buf, size_t cap, size_t *off, const char *s, size_t n)
{
	if (n >= cap - *off)
		return -1;
	memcpy(buf + *off, s, n);
	*off += n;
	buf[*off] = '\0';
	return 0;
}

static int
put_escaped(char *buf, size_t cap, size_t *off, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		char esc[3] = {'%', hex[s[i] >> 4], hex[s[i] & 15]};

		if (isalnum(s[i]) || (s[i] != 0 && strchr("-._~", s[i]) != NULL)) {
			if (put(buf, cap, off, (const char *)s + i, 1) != 0)
				return -1;
		} else if (put(buf, cap, off, esc, 3) != 0)
			return -1;
	}
	return 0;
}

/* Copy the query q[0..n) without the parameters named name; sets *sep for what follows. */
static int
put_query_without(char *buf, size_t cap, size_t *off, const char *q, size_t n, const char *name,
    char *sep)
{
	size_t nl = strlen(name);

	while (n > 0) {
		const char *amp = memchr(q, '&', n);
		size_t plen = amp != NULL ? (size_t)(amp - q) : n;
		int same = plen >= nl && strncmp(q, name, nl) == 0 && (plen == nl || q[nl] == '=');

		if (!same && plen > 0) {
			if (put(buf, cap, off, sep, 1) != 0 || put(buf, cap, off, q, plen) != 0)
				return -1;
			*sep = '&';
		}
		q += plen;
		n -= plen;
		if (n > 0) {
			q++;
			n--;
		}
	}
	return 0;
}

int
request_url(const struct provider *pv, const char *target, const uint8_t *key, size_t keylen,
    char *buf, size_t cap)
{
	const char *q = strchr(target, '?');
	size_t off = 0, plen = q != NULL ? (size_t)(q - target) : strlen(target);
	char sep = '?';

	if (cap == 0)
		return -1;
	buf[0] = '\0';
	if (put(buf, cap, &off, pv->upstream, strlen(pv->upstream)) != 0 ||
	    put(buf, cap, &off, target, plen) != 0)
		return -1;
	if (pv->auth_query[0] == '\0')
		return q != NULL ? put(buf, cap, &off, q, strlen(q)) : 0;
	if (q != NULL &&
	    put_query_without(buf, cap, &off, q + 1, strlen(q + 1), pv->auth_query, &sep) != 0)
		return -1;
	if (put(buf, cap, &off, &sep, 1) != 0 ||
	    put(buf, cap, &off, pv->auth_query, strlen(pv->auth_query)) != 0 ||
	    put(buf, cap, &off, "=", 1) != 0 || put_escaped(buf, cap, &off, key, keylen) != 0)
		return -1;
	return 0;
}

/* Response fields that belong to one hop, not to the buyer (RFC 9110 section 7.6.1). */
static const char *const drop_response[] = {
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
};

#define CONN_FIELDS_MAX 8

/* The Connection fields of a response head, whose elements name more hop-by-hop fields. */
struct conn_fields {
	struct hline v[CONN_FIELDS_MAX];
	size_t n;
};

static void
conn_fields_collect(const char *in, size_t len, struct conn_fields *cf)
{
	struct hline h;
	size_t pos = 0;
	int rc;

	cf->n = 0;
	while ((rc = hline_next(in, len, &pos, &h)) != 0 && rc != -2)
		if (rc == 1 && name_is(&h, "connection") && cf->n < CONN_FIELDS_MAX)
			cf->v[cf->n++] = h;
}

static int
drop_for_buyer(const struct conn_fields *cf, const struct hline *h)
{
	char name[HEADER_NAME_MAX + 1];

	for (size_t i = 0; i < sizeof(drop_response) / sizeof(drop_response[0]); i++)
		if (name_is(h, drop_response[i]))
			return 1;
	if (h->nlen >= 6 && strncasecmp(h->name, "proxy-", 6) == 0)
		return 1;
	memcpy(name, h->name, h->nlen);
	name[h->nlen] = '\0';
	for (size_t i = 0; i < cf->n; i++)
		if (http_token_list_has(cf->v[i].value, cf->v[i].vlen, name))
			return 1;
	return 0;
}

long
request_filter_response(const char *in, size_t len, char *out, size_t cap)
{
	struct conn_fields cf;
	struct hline h;
	size_t pos = 0, off = 0;
	int rc;

	conn_fields_collect(in, len, &cf);
	while ((rc = hline_next(in, len, &pos, &h)) != 0 && rc != -2) {
		if (rc != 1 || drop_for_buyer(&cf, &h))
			continue;
		if (h.nlen + h.vlen + 4 > cap - off)
			return -1;
		memcpy(out + off, h.name, h.nlen);
		off += h.nlen;
		memcpy(out + off, ": ", 2);
		memcpy(out + off + 2, h.value, h.vlen);
		off += 2 + h.vlen;
		memcpy(out + off, "\r\n", 2);
		off += 2;
	}
	return (long)off;
}

int
request_secret_valid(const uint8_t *p, size_t len)
{
	if (len < 8 || len > 4096)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return 0;
	return 1;
}

int
request_id_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("._:-", *s) == NULL)
			return 0;
	return 1;
}
