/*
 * keyparse.c — the bodies of POST /api/keys ({"provider", "price_usd" or
 * "price_micros", "sealed_key"}) and POST /api/keys/:id/rotate
 * ({"sealed_key"}), where "sealed_key" is {"kid", "enc", "ct"}: the
 * seller's API key sealed by the seller's client with HPKE to the vault's
 * public key kid (common/hpke.h), enc and ct in base64url without padding.
 *
 * Security stance: the body comes from the internet. It is parsed strictly:
 * at most KEY_BODY_MAX bytes of valid UTF-8, one JSON object and nothing
 * after it but white space, known members each at most once, no escaped NUL
 * (cJSON would cut a string there), strict base64url of the right lengths.
 * A body that carries the key in clear ("key") is refused with its own
 * answer (KEYS_PLAINTEXT): cn2 takes sealed keys only, so platform-api never
 * holds a key it could read. That refused body's strings are wiped before
 * the JSON tree is freed, so not even the refused key stays in memory.
 * Nothing here logs.
 */
#include "platform-api/platform.h"

#include <mbedtls/platform_util.h>
#include <string.h>

#include "common/b64url.h"
#include "common/money.h"
#include "common/utf8.h"

#define KEY_MEMBERS_MAX 16

static int
provider_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > IPC_PROVIDER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* Only the members in known[], each once. */
static int
members_ok(const cJSON *o, const char *const *known, size_t nknown)
{
	size_t n = 0;

	for (const cJSON *a = o->child; a != NULL; a = a->next) {
		size_t k;

		if (++n > KEY_MEMBERS_MAX || a->string == NULL)
			return 0;
		for (k = 0; k < nknown; k++)
			if (strcmp(a->string, known[k]) == 0)
				break;
		if (k == nknown)
			return 0;
		for (const cJSON *b = o->child; b != a; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return 0;
	}
	return 1;
}

/* price_usd ("0.002") or price_micros (2000), exactly one, in (0, $1000]. */
static int
price_parse(const cJSON *o, int64_t *price)
{
	const cJSON *usd = cJSON_GetObjectItemCaseSensitive(o, "price_usd");
	const cJSON *micros = cJSON_GetObjectItemCaseSensitive(o, "price_micros");

	if ((usd == NULL) == (micros == NULL))
		return -1;
	if (usd != NULL) {
		if (!cJSON_IsString(usd) || money_parse_usd(usd->valuestring, price) != 0)
			return -1;
	} else {
		double v = micros->valuedouble;

		if (!cJSON_IsNumber(micros) || !(v >= 1 && v <= (double)KEY_PRICE_MAX) ||
		    v != (double)(int64_t)v)
			return -1;
		*price = (int64_t)v;
	}
	return *price > 0 && *price <= KEY_PRICE_MAX ? 0 : -1;
}

/* The body is one JSON value, then at most white space. */
static cJSON *
body_json(const uint8_t *body, size_t len)
{
	const char *end = NULL;
	cJSON *j;

	/* cJSON would cut a string at an escaped NUL: refuse the escape outright. */
	if (len == 0 || len > KEY_BODY_MAX || !utf8_valid(body, len) ||
	    memchr(body, '\0', len) != NULL || memmem(body, len, "\\u0000", 6) != NULL)
		return NULL;
	if ((j = cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0)) == NULL)
		return NULL;
	while (end < (const char *)body + len && strchr(" \t\r\n", *end) != NULL)
		end++;
	if (end != (const char *)body + len || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* A key id of the vault: 1..31 of [A-Za-z0-9_-]. */
static int
kid_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= IPC_KID_MAX &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Strict base64url of exactly [min, max] decoded bytes into out. */
static int
b64_field(const cJSON *v, uint8_t *out, size_t min, size_t max, size_t *len)
{
	const char *s = cJSON_GetStringValue(v);

	if (s == NULL || strlen(s) > b64url_encoded_len(max) ||
	    b64url_decode(s, strlen(s), out, max, len, 0) != 0)
		return -1;
	return *len >= min && *len <= max ? 0 : -1;
}

static int
sealed_parse(const cJSON *o, struct sealed_key *k)
{
	static const char *const known[] = {"kid", "enc", "ct"};
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(o, "kid");
	size_t enclen;

	if (!cJSON_IsObject(o) || !members_ok(o, known, 3) || !cJSON_IsString(kid) ||
	    !kid_ok(kid->valuestring) ||
	    b64_field(cJSON_GetObjectItemCaseSensitive(o, "enc"), k->enc, sizeof(k->enc),
		sizeof(k->enc), &enclen) != 0 ||
	    b64_field(cJSON_GetObjectItemCaseSensitive(o, "ct"), k->ct, IPC_SEALED_MIN,
		IPC_SEALED_MAX, &k->ctlen) != 0)
		return -1;
	memcpy(k->kid, kid->valuestring, strlen(kid->valuestring) + 1);
	return 0;
}

static const char sealed_why[] =
    "sealed_key must be {\"kid\", \"enc\", \"ct\"}: the key sealed with HPKE to "
    "/api/vault/public-key (enc and ct in base64url)";

static int
fields_parse(const cJSON *o, struct key_input *in, const char **why)
{
	/* Then the listing's terms (listing.c), all optional. */
	static const char *const known[] = {"provider", "price_usd", "price_micros", "sealed_key",
	    "region", "premium", "routes", "rpm", "rpd", "daily_budget_usd", "daily_budget_micros"};
	const cJSON *prov = cJSON_GetObjectItemCaseSensitive(o, "provider");

	if (!members_ok(o, known, sizeof(known) / sizeof(known[0])))
		*why = "the body may hold provider, sealed_key, one of price_usd, price_micros, and "
		       "the terms region, premium, routes, rpm, rpd, daily_budget_usd, once each";
	else if (!cJSON_IsString(prov) || !provider_ok(prov->valuestring))
		*why = "provider must be 1..31 of [a-z0-9-]";
	else if (price_parse(o, &in->price) != 0)
		*why = "give price_usd (\"0.002\") or price_micros (2000): more than 0, at most $1000";
	else if (sealed_parse(cJSON_GetObjectItemCaseSensitive(o, "sealed_key"), &in->sealed) != 0)
		*why = sealed_why;
	else if (listing_terms_parse(o, &in->terms, 0, why) == 0) {
		memcpy(in->provider, prov->valuestring, strlen(prov->valuestring) + 1);
		return 0;
	}
	return -1;
}

/* Wipe every string in the tree, one level down too, before it is freed. */
static void
json_wipe_delete(cJSON *j)
{
	for (cJSON *c = j != NULL ? j->child : NULL; c != NULL; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring != NULL)
			mbedtls_platform_zeroize(c->valuestring, strlen(c->valuestring));
		if (cJSON_IsObject(c))
			for (cJSON *d = c->child; d != NULL; d = d->next)
				if (cJSON_IsString(d) && d->valuestring != NULL)
					mbedtls_platform_zeroize(d->valuestring,
					    strlen(d->valuestring));
	}
	cJSON_Delete(j);
}

/* A key in clear: any "key" member, whatever else the body holds. */
static int
plaintext(const cJSON *j)
{
	return cJSON_GetObjectItemCaseSensitive(j, "key") != NULL;
}

static const char plaintext_why[] =
    "cn2 takes API keys sealed only: seal it with HPKE to /api/vault/public-key and send "
    "sealed_key (`cn2 keys add` does this)";

int
keys_parse(const uint8_t *body, size_t len, struct key_input *in, const char **why)
{
	cJSON *j = body_json(body, len);
	int rc;

	memset(in, 0, sizeof(*in));
	if (j == NULL) {
		*why = "the body must be one JSON object in UTF-8, at most 64 KiB";
		return KEYS_INVALID;
	}
	if (plaintext(j)) {
		*why = plaintext_why;
		rc = KEYS_PLAINTEXT;
	} else
		rc = fields_parse(j, in, why) == 0 ? 0 : KEYS_INVALID;
	json_wipe_delete(j);
	if (rc != 0)
		mbedtls_platform_zeroize(in, sizeof(*in));
	return rc;
}

int
keys_parse_rotate(const uint8_t *body, size_t len, struct sealed_key *k, const char **why)
{
	static const char *const known[] = {"sealed_key"};
	cJSON *j = body_json(body, len);
	int rc = KEYS_INVALID;

	memset(k, 0, sizeof(*k));
	if (j == NULL)
		*why = "the body must be one JSON object in UTF-8, at most 64 KiB";
	else if (plaintext(j)) {
		*why = plaintext_why;
		rc = KEYS_PLAINTEXT;
	} else if (!members_ok(j, known, 1) ||
	    sealed_parse(cJSON_GetObjectItemCaseSensitive(j, "sealed_key"), k) != 0)
		*why = sealed_why;
	else
		rc = 0;
	json_wipe_delete(j);
	return rc;
}
