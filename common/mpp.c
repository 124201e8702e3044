/*
 * mpp.c — the MPP "Payment" scheme on the wire. See mpp.h.
 *
 * Security stance: headers are read with a hand-written lexer that only
 * moves forward (no backtracking, so no pathological inputs: an unclosed
 * quoted string of 12 000 backslashes costs one pass), never reads past n,
 * and copies values into one buffer sized from n up front. JSON goes
 * through cJSON and then JCS, which refuses duplicate keys and anything
 * without one canonical form, so the daemon and the client cannot read one
 * credential two ways. Challenge ids and proofs are HMAC-SHA256, compared
 * with mbedtls_ct_memcmp.
 */
#include "common/mpp.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/b64url.h"
#include "common/jcs.h"
#include "common/timefmt.h"
#include "common/utf8.h"

/* Most auth-params one challenge may carry (duplicates are looked for among them). */
#define MPP_MAX_PARAMS 64

/* The challenge's fields, in formatting order; the first F_NREQUIRED are required. */
enum mpp_field {
	F_ID,
	F_REALM,
	F_METHOD,
	F_INTENT,
	F_REQUEST,
	F_EXPIRES,
	F_DIGEST,
	F_OPAQUE,
	F_HEADER,
	F_DESCRIPTION,
	F_COUNT,
};
#define F_NREQUIRED 5

static const struct {
	const char *name;
	size_t offset;
} fields[F_COUNT] = {
    [F_ID] = {"id", offsetof(struct mpp_challenge, id)},
    [F_REALM] = {"realm", offsetof(struct mpp_challenge, realm)},
    [F_METHOD] = {"method", offsetof(struct mpp_challenge, method)},
    [F_INTENT] = {"intent", offsetof(struct mpp_challenge, intent)},
    [F_REQUEST] = {"request", offsetof(struct mpp_challenge, request)},
    [F_EXPIRES] = {"expires", offsetof(struct mpp_challenge, expires)},
    [F_DIGEST] = {"digest", offsetof(struct mpp_challenge, digest)},
    [F_OPAQUE] = {"opaque", offsetof(struct mpp_challenge, opaque)},
    [F_HEADER] = {"header", offsetof(struct mpp_challenge, header)},
    [F_DESCRIPTION] = {"description", offsetof(struct mpp_challenge, description)},
};

static int mpp_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
mpp_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static const char *
field_get(const struct mpp_challenge *c, int f)
{
	const char *const *slot = (const char *const *)(const void *)((const char *)c +
	    fields[f].offset);

	return *slot;
}

static void
field_set(struct mpp_challenge *c, int f, const char *v)
{
	const char **slot = (const char **)(void *)((char *)c + fields[f].offset);

	*slot = v;
}

static int
field_index(const char *name, size_t len)
{
	for (int f = 0; f < F_COUNT; f++)
		if (strlen(fields[f].name) == len && strncasecmp(fields[f].name, name, len) == 0)
			return f;
	return -1;
}

/* The required fields are present and not empty. */
static int
required_present(const struct mpp_challenge *c)
{
	for (int f = 0; f < F_NREQUIRED; f++)
		if (field_get(c, f) == NULL || *field_get(c, f) == '\0')
			return 0;
	return 1;
}

void
mpp_challenge_free(struct mpp_challenge *c)
{
	free(c->mem);
	memset(c, 0, sizeof(*c));
}

/* The lexer: RFC 9110 tokens, quoted strings and whitespace over s[0..n). */

struct lex {
	const char *s;
	size_t n, i;
};

enum { Q_OK = 0, Q_UNCLOSED = -1, Q_CTL = -2 };

static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
is_t68char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("-._~+/", c) != NULL;
}

static int
is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int
lex_at(const struct lex *l, char c)
{
	return l->i < l->n && l->s[l->i] == c;
}

static void
lex_ows(struct lex *l)
{
	while (lex_at(l, ' ') || lex_at(l, '\t'))
		l->i++;
}

static size_t
lex_token(struct lex *l)
{
	size_t start = l->i;

	while (l->i < l->n && is_tchar((unsigned char)l->s[l->i]))
		l->i++;
	return l->i - start;
}

/*
 * At an opening quote: unescape the quoted string into out (when not NULL;
 * it needs room for as many bytes as remain), its length in *outlen, and
 * move past the closing quote. An unclosed string moves to the end.
 */
static int
lex_quoted(struct lex *l, char *out, size_t *outlen)
{
	size_t o = 0;
	int ctl = 0;

	l->i++;
	while (l->i < l->n) {
		unsigned char c = (unsigned char)l->s[l->i];

		if (c == '"') {
			l->i++;
			if (outlen != NULL)
				*outlen = o;
			return ctl ? Q_CTL : Q_OK;
		}
		if (c == '\\') {
			if (l->i + 1 >= l->n)
				break;
			c = (unsigned char)l->s[l->i + 1];
			l->i++;
		}
		l->i++;
		ctl |= is_ctl(c);
		if (out != NULL)
			out[o] = (char)c;
		o++;
	}
	l->i = l->n;
	return Q_UNCLOSED;
}

/* Skip what follows a value up to the next comma outside quotes (lenient, as the vectors ask). */
static void
lex_skip_item(struct lex *l)
{
	while (l->i < l->n && l->s[l->i] != ',') {
		if (l->s[l->i] == '"')
			(void)lex_quoted(l, NULL, NULL);
		else
			l->i++;
	}
}

/* A token68 (another scheme's credentials) up to a comma or the end: skip it, 1; else 0. */
static int
lex_token68(struct lex *l)
{
	size_t j = l->i;

	while (j < l->n && is_t68char((unsigned char)l->s[j]))
		j++;
	if (j == l->i)
		return 0;
	while (j < l->n && l->s[j] == '=')
		j++;
	while (j < l->n && (l->s[j] == ' ' || l->s[j] == '\t'))
		j++;
	if (j < l->n && l->s[j] != ',')
		return 0;
	l->i = j;
	return 1;
}

/* Parsing challenges. */

/* One challenge's parameters being collected; arena has room for every value. */
struct params {
	const char *val[F_COUNT];
	char *arena;
	size_t used;
	struct {
		const char *p;
		size_t len;
	} names[MPP_MAX_PARAMS];
	size_t nnames;
};

static int
params_note_name(struct params *p, const char *name, size_t len, char *err, size_t errlen)
{
	for (size_t k = 0; k < p->nnames; k++)
		if (p->names[k].len == len && strncasecmp(p->names[k].p, name, len) == 0)
			return mpp_err(err, errlen, "duplicate parameter \"%.*s\"", (int)len, name);
	if (p->nnames == MPP_MAX_PARAMS)
		return mpp_err(err, errlen, "more than %d parameters", MPP_MAX_PARAMS);
	p->names[p->nnames].p = name;
	p->names[p->nnames].len = len;
	p->nnames++;
	return 0;
}

/* Read one value after "name=": keep it if p wants this name, skip it otherwise. */
static int
param_value(struct lex *l, struct params *p, const char *name, size_t nlen, char *err,
    size_t errlen)
{
	int f = p != NULL ? field_index(name, nlen) : -1;
	char *dst;
	size_t len = 0, start;
	int rc;

	if (p != NULL && params_note_name(p, name, nlen, err, errlen) != 0)
		return -1;
	if (f < 0) {
		/* Unknown parameters are ignored, even malformed ones. */
		if (lex_at(l, '"'))
			(void)lex_quoted(l, NULL, NULL);
		else
			(void)lex_token(l);
		return 0;
	}
	dst = p->arena + p->used;
	if (lex_at(l, '"')) {
		if ((rc = lex_quoted(l, dst, &len)) == Q_UNCLOSED)
			return mpp_err(err, errlen, "unterminated quoted string in \"%s\"",
			    fields[f].name);
		if (rc == Q_CTL)
			return mpp_err(err, errlen, "control character in \"%s\"", fields[f].name);
	} else {
		start = l->i;
		len = lex_token(l);
		memcpy(dst, l->s + start, len);
	}
	dst[len] = '\0';
	if (!utf8_valid((const uint8_t *)dst, len))
		return mpp_err(err, errlen, "\"%s\" is not UTF-8", fields[f].name);
	p->used += len + 1;
	p->val[f] = dst;
	return 0;
}

/*
 * Read auth-params until the next challenge begins (a token not followed
 * by '=') or the input ends. p NULL: another scheme's, read and dropped.
 */
static int
parse_params(struct lex *l, struct params *p, char *err, size_t errlen)
{
	for (;;) {
		size_t save, nlen;
		const char *name;

		lex_ows(l);
		while (lex_at(l, ',')) {
			l->i++;
			lex_ows(l);
		}
		if (l->i >= l->n)
			return 0;
		save = l->i;
		name = l->s + l->i;
		nlen = lex_token(l);
		lex_ows(l);
		if (nlen == 0 || !lex_at(l, '=')) {
			l->i = save;
			return 0;
		}
		l->i++;
		lex_ows(l);
		if (param_value(l, p, name, nlen, err, errlen) != 0)
			return -1;
		lex_ows(l);
		if (l->i < l->n && l->s[l->i] != ',')
			lex_skip_item(l);
	}
}

/* Turn the collected parameters into a challenge, checking what must hold. */
static int
params_finish(struct params *p, struct mpp_challenge *out, char *err, size_t errlen)
{
	cJSON *req;

	memset(out, 0, sizeof(*out));
	for (int f = 0; f < F_COUNT; f++)
		field_set(out, f, p->val[f]);
	for (int f = 0; f < F_NREQUIRED; f++)
		if (p->val[f] == NULL || *p->val[f] == '\0')
			return mpp_err(err, errlen, "missing or empty \"%s\"", fields[f].name);
	if ((req = mpp_request_decode(out->request)) == NULL)
		return mpp_err(err, errlen, "\"request\" is not base64url of a JSON object");
	cJSON_Delete(req);
	out->mem = p->arena;
	return 0;
}

/*
 * Parse the challenge starting at l. *payment says whether it was one of
 * ours; out is filled only then (and owns its memory on success).
 */
static int
parse_challenge(struct lex *l, struct mpp_challenge *out, int *payment, char *err,
    size_t errlen)
{
	struct params *p;
	size_t start = l->i, slen = lex_token(l);
	int rc;

	if (slen == 0)
		return mpp_err(err, errlen, "expected an auth-scheme at offset %zu", start);
	if (l->i < l->n && l->s[l->i] != ' ' && l->s[l->i] != '\t' && l->s[l->i] != ',')
		return mpp_err(err, errlen, "malformed auth-scheme at offset %zu", start);
	*payment = slen == 7 && strncasecmp(l->s + start, "Payment", 7) == 0;
	lex_ows(l);
	if (!*payment)
		return lex_token68(l) ? 0 : parse_params(l, NULL, err, errlen);
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->arena = malloc(l->n + 1)) == NULL) {
		free(p);
		return mpp_err(err, errlen, "out of memory");
	}
	rc = parse_params(l, p, err, errlen);
	if (rc == 0)
		rc = params_finish(p, out, err, errlen);
	if (rc != 0) {
		free(p->arena);
		memset(out, 0, sizeof(*out));
	}
	free(p);
	return rc;
}

int
mpp_challenge_parse(const char *s, size_t n, struct mpp_challenge *out, char *err,
    size_t errlen)
{
	struct lex l = {s, n, 0};
	int payment = 0;

	memset(out, 0, sizeof(*out));
	if (n > MPP_HEADER_MAX)
		return mpp_err(err, errlen, "header longer than %d bytes", MPP_HEADER_MAX);
	lex_ows(&l);
	if (parse_challenge(&l, out, &payment, err, errlen) != 0)
		return -1;
	if (!payment)
		return mpp_err(err, errlen, "not a Payment challenge");
	lex_ows(&l);
	while (lex_at(&l, ',') || lex_at(&l, ' ') || lex_at(&l, '\t'))
		l.i++;
	if (l.i < l.n) {
		mpp_challenge_free(out);
		return mpp_err(err, errlen, "more than one challenge");
	}
	return 0;
}

int
mpp_challenges_parse(const char *s, size_t n, struct mpp_challenge *out, size_t max,
    size_t *count, char *err, size_t errlen)
{
	struct lex l = {s, n, 0};
	struct mpp_challenge c;
	int payment;

	*count = 0;
	if (n > MPP_HEADER_MAX)
		return mpp_err(err, errlen, "header longer than %d bytes", MPP_HEADER_MAX);
	for (;;) {
		lex_ows(&l);
		while (lex_at(&l, ',') || lex_at(&l, ' ') || lex_at(&l, '\t'))
			l.i++;
		if (l.i >= l.n)
			break;
		if (parse_challenge(&l, &c, &payment, err, errlen) != 0)
			goto fail;
		if (!payment)
			continue;
		if (*count == max) {
			mpp_challenge_free(&c);
			mpp_err(err, errlen, "more than %zu Payment challenges", max);
			goto fail;
		}
		out[(*count)++] = c;
	}
	if (*count > 0)
		return 0;
	return mpp_err(err, errlen, "no Payment challenge");
fail:
	while (*count > 0)
		mpp_challenge_free(&out[--(*count)]);
	return -1;
}

/* Formatting. */

char *
mpp_challenge_format(const struct mpp_challenge *c)
{
	size_t cap = sizeof("Payment ");
	char *out, *o;
	const char *v;

	if (!required_present(c))
		return NULL;
	for (int f = 0; f < F_COUNT; f++) {
		if ((v = field_get(c, f)) == NULL)
			continue;
		if (strlen(v) > MPP_HEADER_MAX)
			return NULL;
		for (const char *q = v; *q != '\0'; q++)
			if (is_ctl((unsigned char)*q))
				return NULL;
		cap += strlen(fields[f].name) + 2 * strlen(v) + 6;
	}
	if ((out = malloc(cap)) == NULL)
		return NULL;
	o = out + sprintf(out, "Payment ");
	for (int f = 0; f < F_COUNT; f++) {
		if ((v = field_get(c, f)) == NULL)
			continue;
		o += sprintf(o, "%s%s=\"", f == 0 ? "" : ", ", fields[f].name);
		for (; *v != '\0'; v++) {
			if (*v == '"' || *v == '\\')
				*o++ = '\\';
			*o++ = *v;
		}
		*o++ = '"';
	}
	*o = '\0';
	return out;
}

/* HMAC-SHA256 over parts joined by sep (when sep is not NUL). 0 or -1. */
static int
hmac_join(const uint8_t *key, size_t keylen, const char *const *parts, size_t nparts, char sep,
    uint8_t out[32])
{
	mbedtls_md_context_t ctx;
	int rc;

	mbedtls_md_init(&ctx);
	rc = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
	if (rc == 0)
		rc = mbedtls_md_hmac_starts(&ctx, key, keylen);
	for (size_t k = 0; rc == 0 && k < nparts; k++) {
		if (k > 0 && sep != '\0')
			rc = mbedtls_md_hmac_update(&ctx, (const uint8_t *)&sep, 1);
		if (rc == 0)
			rc = mbedtls_md_hmac_update(&ctx, (const uint8_t *)parts[k], strlen(parts[k]));
	}
	if (rc == 0)
		rc = mbedtls_md_hmac_finish(&ctx, out);
	mbedtls_md_free(&ctx);
	return rc == 0 ? 0 : -1;
}

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

int
mpp_challenge_id(const uint8_t *secret, size_t secretlen, const struct mpp_challenge *c,
    char out[MPP_ID_BUFSZ])
{
	const char *parts[8];
	size_t n = 0;
	uint8_t mac[32];
	int rc;

	if (secret == NULL || secretlen < MPP_SECRET_MIN || c->realm == NULL ||
	    c->method == NULL || c->intent == NULL || c->request == NULL)
		return -1;
	parts[n++] = c->realm;
	parts[n++] = c->method;
	parts[n++] = c->intent;
	parts[n++] = c->request;
	parts[n++] = or_empty(c->expires);
	parts[n++] = or_empty(c->digest);
	/* The default header adds nothing, so ids from before the field existed still hold. */
	if (c->header != NULL && *c->header != '\0' && strcasecmp(c->header, "Authorization") != 0)
		parts[n++] = c->header;
	parts[n++] = or_empty(c->opaque);
	rc = hmac_join(secret, secretlen, parts, n, '|', mac);
	if (rc == 0 && b64url_encode(mac, sizeof(mac), out, MPP_ID_BUFSZ) < 0)
		rc = -1;
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return rc;
}

/* Constant-time equality of a string with a computed id/proof of MPP_ID_BUFSZ - 1 chars. */
static int
id_equal(const char *got, const char want[MPP_ID_BUFSZ])
{
	if (got == NULL || strnlen(got, MPP_ID_BUFSZ) != MPP_ID_BUFSZ - 1)
		return 0;
	return mbedtls_ct_memcmp(got, want, MPP_ID_BUFSZ - 1) == 0;
}

int
mpp_challenge_check_id(const uint8_t *secret, size_t secretlen, const struct mpp_challenge *c)
{
	char want[MPP_ID_BUFSZ];
	int ok;

	if (mpp_challenge_id(secret, secretlen, c, want) != 0)
		return -1;
	ok = id_equal(c->id, want);
	mbedtls_platform_zeroize(want, sizeof(want));
	return ok ? 0 : -1;
}

int
mpp_test_proof(const uint8_t *secret, size_t secretlen, const char *id, char out[MPP_ID_BUFSZ])
{
	uint8_t mac[32];
	int rc;

	if (secret == NULL || secretlen < MPP_SECRET_MIN || id == NULL)
		return -1;
	rc = hmac_join(secret, secretlen, &id, 1, '\0', mac);
	if (rc == 0 && b64url_encode(mac, sizeof(mac), out, MPP_ID_BUFSZ) < 0)
		rc = -1;
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return rc;
}

/* JSON in base64url. */

/* base64url_nopad of a string; caller frees. */
static char *
b64_of(const char *s)
{
	size_t len = strlen(s), cap = b64url_encoded_len(len);
	char *out;

	if (cap == SIZE_MAX || (out = malloc(cap + 1)) == NULL)
		return NULL;
	if (b64url_encode((const uint8_t *)s, len, out, cap + 1) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

char *
mpp_request_encode(const cJSON *request)
{
	char *jcs, *out;

	if (!cJSON_IsObject(request) || (jcs = jcs_serialize(request)) == NULL)
		return NULL;
	out = b64_of(jcs);
	free(jcs);
	return out;
}

/*
 * Decode base64url text into UTF-8 JSON with one canonical reading: no NUL
 * inside, no duplicate keys or other JCS refusals. Caller frees.
 */
static cJSON *
json_from_b64(const char *s, size_t n, int flags)
{
	size_t cap = b64url_decoded_max(n), len;
	cJSON *v = NULL;
	char *canon;
	uint8_t *buf;

	if (n > MPP_HEADER_MAX || (buf = malloc(cap + 1)) == NULL)
		return NULL;
	if (b64url_decode(s, n, buf, cap, &len, flags) == 0 && utf8_valid(buf, len) &&
	    memchr(buf, '\0', len) == NULL) {
		buf[len] = '\0';
		v = cJSON_ParseWithLengthOpts((const char *)buf, len + 1, NULL, 1);
	}
	free(buf);
	if (v != NULL && (canon = jcs_serialize(v)) != NULL) {
		free(canon);
		return v;
	}
	cJSON_Delete(v);
	return NULL;
}

cJSON *
mpp_request_decode(const char *b64)
{
	cJSON *v;

	if (b64 == NULL || (v = json_from_b64(b64, strlen(b64), 0)) == NULL)
		return NULL;
	if (!cJSON_IsObject(v)) {
		cJSON_Delete(v);
		return NULL;
	}
	return v;
}

/* Credentials. */

void
mpp_credential_free(struct mpp_credential *cr)
{
	mpp_challenge_free(&cr->challenge);
	cJSON_Delete(cr->payload);
	memset(cr, 0, sizeof(*cr));
}

/* "Payment" SP+ token, OWS: the token's span, or -1. */
static int
credential_token(const char *s, size_t n, size_t *tstart, size_t *tlen)
{
	struct lex l = {s, n, 0};
	size_t start, slen;

	lex_ows(&l);
	start = l.i;
	slen = lex_token(&l);
	if (slen != 7 || strncasecmp(s + start, "Payment", 7) != 0)
		return -1;
	if (!lex_at(&l, ' ') && !lex_at(&l, '\t'))
		return -1;
	lex_ows(&l);
	*tstart = l.i;
	while (l.i < n && (is_t68char((unsigned char)s[l.i]) || s[l.i] == '='))
		l.i++;
	*tlen = l.i - *tstart;
	lex_ows(&l);
	return *tlen > 0 && l.i == n ? 0 : -1;
}

/* Copy the challenge object's string fields into one arena owned by out. */
static int
credential_challenge(const cJSON *ch, struct mpp_challenge *out, const cJSON *source,
    const char **src_out, char *err, size_t errlen)
{
	size_t cap = 1, used = 0, len;
	const cJSON *item;
	char *mem;

	for (int f = 0; f < F_COUNT; f++) {
		item = cJSON_GetObjectItemCaseSensitive(ch, fields[f].name);
		if (item == NULL && f < F_NREQUIRED)
			return mpp_err(err, errlen, "challenge has no \"%s\"", fields[f].name);
		if (item != NULL && !cJSON_IsString(item))
			return mpp_err(err, errlen, "challenge \"%s\" is not a string", fields[f].name);
		if (item != NULL)
			cap += strlen(item->valuestring) + 1;
	}
	if (source != NULL)
		cap += strlen(source->valuestring) + 1;
	if ((mem = malloc(cap)) == NULL)
		return mpp_err(err, errlen, "out of memory");
	memset(out, 0, sizeof(*out));
	out->mem = mem;
	for (int f = 0; f < F_COUNT; f++) {
		if ((item = cJSON_GetObjectItemCaseSensitive(ch, fields[f].name)) == NULL)
			continue;
		len = strlen(item->valuestring);
		memcpy(mem + used, item->valuestring, len + 1);
		field_set(out, f, mem + used);
		used += len + 1;
	}
	if (source != NULL) {
		memcpy(mem + used, source->valuestring, strlen(source->valuestring) + 1);
		*src_out = mem + used;
	}
	return 0;
}

/* Check the decoded credential JSON and move it into out. */
static int
credential_take(cJSON *root, struct mpp_credential *out, char *err, size_t errlen)
{
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "challenge");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
	const cJSON *source = cJSON_GetObjectItemCaseSensitive(root, "source");
	cJSON *req;

	if (!cJSON_IsObject(root))
		return mpp_err(err, errlen, "credential is not a JSON object");
	if (!cJSON_IsObject(ch))
		return mpp_err(err, errlen, "credential has no \"challenge\" object");
	if (!cJSON_IsObject(payload))
		return mpp_err(err, errlen, "credential has no \"payload\" object");
	if (source != NULL && !cJSON_IsString(source))
		return mpp_err(err, errlen, "credential \"source\" is not a string");
	if (credential_challenge(ch, &out->challenge, source, &out->source, err, errlen) != 0)
		return -1;
	if (!required_present(&out->challenge))
		return mpp_err(err, errlen, "challenge has an empty required field");
	if ((req = mpp_request_decode(out->challenge.request)) == NULL)
		return mpp_err(err, errlen, "challenge \"request\" is not base64url of a JSON object");
	cJSON_Delete(req);
	out->payload = cJSON_DetachItemFromObjectCaseSensitive(root, "payload");
	return 0;
}

int
mpp_credential_parse(const char *s, size_t n, struct mpp_credential *out, char *err,
    size_t errlen)
{
	size_t tstart, tlen;
	cJSON *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if (n > MPP_HEADER_MAX)
		return mpp_err(err, errlen, "credential longer than %d bytes", MPP_HEADER_MAX);
	if (credential_token(s, n, &tstart, &tlen) != 0)
		return mpp_err(err, errlen, "not \"Payment <token>\"");
	if ((root = json_from_b64(s + tstart, tlen, B64_LENIENT)) == NULL)
		return mpp_err(err, errlen, "credential token is not base64url of canonical-able JSON");
	rc = credential_take(root, out, err, errlen);
	cJSON_Delete(root);
	if (rc != 0)
		mpp_credential_free(out);
	return rc;
}

char *
mpp_credential_format(const struct mpp_challenge *c, const cJSON *payload, const char *source)
{
	cJSON *root = cJSON_CreateObject(), *ch = cJSON_CreateObject(), *pl;
	char *jcs = NULL, *b64 = NULL, *out = NULL;
	int ok = root != NULL && ch != NULL && cJSON_IsObject(payload) && required_present(c);

	if (ok)
		ok = cJSON_AddItemToObject(root, "challenge", ch);
	else
		cJSON_Delete(ch);
	for (int f = 0; ok && f < F_COUNT; f++)
		if (field_get(c, f) != NULL)
			ok = cJSON_AddStringToObject(ch, fields[f].name, field_get(c, f)) != NULL;
	if (ok && (pl = cJSON_Duplicate(payload, 1)) != NULL)
		ok = cJSON_AddItemToObject(root, "payload", pl);
	else
		ok = 0;
	if (ok && source != NULL)
		ok = cJSON_AddStringToObject(root, "source", source) != NULL;
	if (ok && (jcs = jcs_serialize(root)) != NULL && (b64 = b64_of(jcs)) != NULL &&
	    (out = malloc(strlen(b64) + sizeof("Payment "))) != NULL)
		sprintf(out, "Payment %s", b64);
	cJSON_Delete(root);
	free(jcs);
	free(b64);
	return out;
}

/* Receipts. */

int
mpp_receipt_encode(const char *method, const char *reference, int64_t unix_s, char *out,
    size_t cap)
{
	return mpp_receipt_encode_id(method, reference, NULL, unix_s, out, cap);
}

int
mpp_receipt_encode_id(const char *method, const char *reference, const char *challenge_id,
    int64_t unix_s, char *out, size_t cap)
{
	char ts[RFC3339_BUFSZ], *jcs = NULL;
	cJSON *r = cJSON_CreateObject();
	int rc = -1;

	if (r != NULL && method != NULL && reference != NULL &&
	    rfc3339_format(unix_s, ts, sizeof(ts)) > 0 &&
	    cJSON_AddStringToObject(r, "status", "success") != NULL &&
	    cJSON_AddStringToObject(r, "method", method) != NULL &&
	    cJSON_AddStringToObject(r, "timestamp", ts) != NULL &&
	    cJSON_AddStringToObject(r, "reference", reference) != NULL &&
	    (challenge_id == NULL || cJSON_AddStringToObject(r, "challengeId", challenge_id) != NULL) &&
	    (jcs = jcs_serialize(r)) != NULL)
		rc = b64url_encode((const uint8_t *)jcs, strlen(jcs), out, cap);
	cJSON_Delete(r);
	free(jcs);
	return rc;
}
