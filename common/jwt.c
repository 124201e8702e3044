/*
 * jwt.c — HS256 JSON Web Tokens. See jwt.h.
 *
 * Security stance: the order of checks is fixed so that nothing an attacker
 * controls is trusted before the MAC says so: shape (exactly three
 * segments), header (strict base64url, JSON, alg exactly "HS256"), the
 * signature (constant-time), and only then the payload and its claims.
 * Every buffer is bounded by JWT_MAX_LEN; every failure returns a fixed
 * reason that never quotes the token.
 */
#include "common/jwt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/b64url.h"
#include "common/utf8.h"

#define JWT_SIG_LEN 32
#define JWT_MAX_MEMBERS 64
/* Largest NumericDate accepted: 2^53, the last integer a JSON double holds exactly. */
#define JWT_MAX_DATE 9007199254740992.0

struct seg {
	const char *p;
	size_t n;
};

static int
fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

/* Cut token into header, payload and signature; each must be non-empty. */
static int
jwt_split(const char *token, struct seg s[3])
{
	const char *p = token, *dot;
	size_t len = strnlen(token, JWT_MAX_LEN + 1);

	if (len == 0 || len > JWT_MAX_LEN)
		return -1;
	for (int i = 0; i < 2; i++) {
		if ((dot = memchr(p, '.', len - (size_t)(p - token))) == NULL)
			return -1;
		s[i].p = p;
		s[i].n = (size_t)(dot - p);
		p = dot + 1;
	}
	s[2].p = p;
	s[2].n = len - (size_t)(p - token);
	if (memchr(s[2].p, '.', s[2].n) != NULL)
		return -1;
	return s[0].n > 0 && s[1].n > 0 && s[2].n > 0 ? 0 : -1;
}

/* An object whose member names are all different, and not too many of them. */
static int
json_members_ok(const cJSON *o)
{
	size_t n = 0;

	for (const cJSON *a = o->child; a != NULL; a = a->next, n++) {
		if (n >= JWT_MAX_MEMBERS || a->string == NULL)
			return 0;
		for (const cJSON *b = o->child; b != a; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return 0;
	}
	return 1;
}

/* Decode one segment as a JSON object. NULL if it is anything else. Caller deletes. */
static cJSON *
seg_json(const struct seg *s)
{
	size_t max = b64url_decoded_max(s->n), len;
	const char *end = NULL;
	cJSON *j = NULL;
	uint8_t *buf;

	if ((buf = malloc(max + 1)) == NULL)
		return NULL;
	if (b64url_decode(s->p, s->n, buf, max, &len, 0) != 0 || !utf8_valid(buf, len) ||
	    memchr(buf, '\0', len) != NULL)
		goto out;
	buf[len] = '\0';
	j = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, 0);
	if (j != NULL && (!cJSON_IsObject(j) || end != (const char *)buf + len ||
	    !json_members_ok(j))) {
		cJSON_Delete(j);
		j = NULL;
	}
out:
	free(buf);
	return j;
}

/* alg must be exactly HS256; typ, if present, "JWT"; no critical extensions. */
static int
header_ok(const cJSON *h)
{
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
	const cJSON *typ = cJSON_GetObjectItemCaseSensitive(h, "typ");

	if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
		return 0;
	if (typ != NULL && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0))
		return 0;
	return cJSON_GetObjectItemCaseSensitive(h, "crit") == NULL;
}

static int
hmac_sha256(const uint8_t *key, size_t keylen, const void *in, size_t n, uint8_t out[JWT_SIG_LEN])
{
	return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, keylen, in, n,
	    out) == 0 ? 0 : -1;
}

/* The signature segment is the HMAC of "header.payload", compared in constant time. */
static int
signature_ok(const char *token, const struct seg s[3], const uint8_t *secret, size_t secretlen)
{
	uint8_t want[JWT_SIG_LEN], got[JWT_SIG_LEN + 3];
	size_t len;

	if (b64url_decode(s[2].p, s[2].n, got, sizeof(got), &len, 0) != 0 || len != JWT_SIG_LEN)
		return 0;
	if (hmac_sha256(secret, secretlen, token, (size_t)(s[2].p - 1 - token), want) != 0)
		return 0;
	return mbedtls_ct_memcmp(got, want, JWT_SIG_LEN) == 0;
}

/* A NumericDate claim: -1 if malformed, 0 if absent (*out = 0), 1 if present. */
static int
numeric_date(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = 0;
	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > JWT_MAX_DATE)
		return -1;
	*out = (int64_t)floor(v->valuedouble);
	return 1;
}

/* aud is a string equal to audience, or an array of strings holding it. */
static int
audience_ok(const cJSON *aud, const char *audience)
{
	const cJSON *a;

	if (cJSON_IsString(aud))
		return strcmp(aud->valuestring, audience) == 0;
	if (!cJSON_IsArray(aud))
		return 0;
	cJSON_ArrayForEach(a, aud)
		if (cJSON_IsString(a) && strcmp(a->valuestring, audience) == 0)
			return 1;
	return 0;
}

static int
sub_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("_.@:-", c) != NULL))
			return 0;
	}
	return 1;
}

/* Copy an optional string claim: 0 if absent or copied, -1 if not a string or too long. */
static int
opt_string(const cJSON *o, const char *name, char *buf, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	buf[0] = '\0';
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
		return -1;
	memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

static int
claims_check(const cJSON *p, const char *audience, int64_t now, struct jwt_claims *out,
    char *err, size_t errlen)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(p, "sub");
	int64_t nbf;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = numeric_date(p, "exp", &out->exp)) <= 0)
		return fail(err, errlen, rc == 0 ? "token has no exp" : "token exp is malformed");
	if (now >= out->exp + JWT_LEEWAY_S)
		return fail(err, errlen, "token expired");
	if ((rc = numeric_date(p, "nbf", &nbf)) < 0)
		return fail(err, errlen, "token nbf is malformed");
	if (rc == 1 && now + JWT_LEEWAY_S < nbf)
		return fail(err, errlen, "token not valid yet");
	if (numeric_date(p, "iat", &out->iat) < 0)
		return fail(err, errlen, "token iat is malformed");
	if (!audience_ok(cJSON_GetObjectItemCaseSensitive(p, "aud"), audience))
		return fail(err, errlen, "token audience does not match");
	snprintf(out->aud, sizeof(out->aud), "%s", audience);
	if (!cJSON_IsString(sub) || !sub_ok(sub->valuestring))
		return fail(err, errlen, "token sub is missing or malformed");
	memcpy(out->sub, sub->valuestring, strlen(sub->valuestring) + 1);
	if (opt_string(p, "role", out->role, sizeof(out->role)) != 0 ||
	    opt_string(p, "email", out->email, sizeof(out->email)) != 0)
		return fail(err, errlen, "token role or email is malformed");
	return 0;
}

int
jwt_verify(const char *token, const uint8_t *secret, size_t secretlen, const char *audience,
    int64_t now, struct jwt_claims *out, char *err, size_t errlen)
{
	struct seg s[3];
	cJSON *h, *p;
	int rc;

	if (token == NULL || audience == NULL || audience[0] == '\0' || secretlen == 0)
		return fail(err, errlen, "no token, audience or secret");
	if (jwt_split(token, s) != 0)
		return fail(err, errlen, "token is not three non-empty segments");
	if ((h = seg_json(&s[0])) == NULL)
		return fail(err, errlen, "token header is not a base64url JSON object");
	rc = header_ok(h);
	cJSON_Delete(h);
	if (!rc)
		return fail(err, errlen, "token header: only alg HS256, typ JWT, no crit");
	if (!signature_ok(token, s, secret, secretlen))
		return fail(err, errlen, "token signature does not verify");
	if ((p = seg_json(&s[1])) == NULL)
		return fail(err, errlen, "token payload is not a base64url JSON object");
	rc = claims_check(p, audience, now, out, err, errlen);
	cJSON_Delete(p);
	return rc;
}

/* Append the base64url of in[0..n) to out at *len (out is big enough: checked by the caller). */
static int
append_b64(char *out, size_t cap, size_t *len, const void *in, size_t n)
{
	int w = b64url_encode(in, n, out + *len, cap - *len);

	if (w < 0)
		return -1;
	*len += (size_t)w;
	return 0;
}

static char *
payload_json(const struct jwt_claims *c)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	int ok;

	if (o == NULL)
		return NULL;
	ok = cJSON_AddStringToObject(o, "sub", c->sub) != NULL &&
	    cJSON_AddStringToObject(o, "aud", c->aud) != NULL &&
	    cJSON_AddNumberToObject(o, "exp", (double)c->exp) != NULL &&
	    (c->iat == 0 || cJSON_AddNumberToObject(o, "iat", (double)c->iat) != NULL) &&
	    (c->role[0] == '\0' || cJSON_AddStringToObject(o, "role", c->role) != NULL) &&
	    (c->email[0] == '\0' || cJSON_AddStringToObject(o, "email", c->email) != NULL);
	if (ok)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

char *
jwt_sign(const struct jwt_claims *c, const uint8_t *secret, size_t secretlen)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	uint8_t sig[JWT_SIG_LEN];
	char *payload, *out = NULL;
	size_t len = 0, cap;

	if (!sub_ok(c->sub) || memchr(c->aud, '\0', sizeof(c->aud)) == NULL || c->aud[0] == '\0' ||
	    c->exp <= 0 || (double)c->exp > JWT_MAX_DATE || c->iat < 0 ||
	    memchr(c->role, '\0', sizeof(c->role)) == NULL ||
	    memchr(c->email, '\0', sizeof(c->email)) == NULL || secretlen == 0)
		return NULL;
	if ((payload = payload_json(c)) == NULL)
		return NULL;
	cap = b64url_encoded_len(sizeof(header) - 1) + b64url_encoded_len(strlen(payload)) +
	    b64url_encoded_len(sizeof(sig)) + 3;
	if ((out = malloc(cap)) == NULL)
		goto fail;
	if (append_b64(out, cap, &len, header, sizeof(header) - 1) != 0)
		goto fail;
	out[len++] = '.';
	if (append_b64(out, cap, &len, payload, strlen(payload)) != 0 ||
	    hmac_sha256(secret, secretlen, out, len, sig) != 0)
		goto fail;
	out[len++] = '.';
	if (append_b64(out, cap, &len, sig, sizeof(sig)) != 0)
		goto fail;
	free(payload);
	return out;
fail:
	free(payload);
	free(out);
	return NULL;
}
