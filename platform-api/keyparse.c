/*
 * keyparse.c — the body of POST /api/keys: {"provider", "key", and
 * "price_usd" or "price_micros"}.
 *
 * Security stance: the body comes from the internet, and it carries the
 * seller's API key. It is parsed strictly: at most KEY_BODY_MAX bytes of
 * valid UTF-8, one JSON object and nothing after it but white space, known
 * members each at most once, no escaped NUL (cJSON would cut a string
 * there). The key is copied once into the caller's buffer; the JSON tree's
 * copy is wiped before the tree is freed, and a refused body leaves no key
 * behind. Nothing here logs.
 */
#include "platform-api/platform.h"

#include <mbedtls/platform_util.h>
#include <string.h>

#include "common/money.h"
#include "common/utf8.h"

#define KEY_MEMBERS_MAX 8

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

/* Visible ASCII only: a key travels in an HTTP header or query upstream. */
static int
secret_ok(const char *s, size_t n)
{
	if (n < KEY_SECRET_MIN || n > KEY_SECRET_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Known members only, each once. */
static int
members_ok(const cJSON *o)
{
	static const char *const known[] = {"provider", "key", "price_usd", "price_micros"};
	size_t n = 0;

	for (const cJSON *a = o->child; a != NULL; a = a->next) {
		size_t k;

		if (++n > KEY_MEMBERS_MAX || a->string == NULL)
			return 0;
		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strcmp(a->string, known[k]) == 0)
				break;
		if (k == sizeof(known) / sizeof(known[0]))
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

static int
fields_parse(const cJSON *o, struct key_input *in, const char **why)
{
	const cJSON *prov = cJSON_GetObjectItemCaseSensitive(o, "provider");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "key");

	if (!members_ok(o))
		*why = "the body may hold provider, key and one of price_usd, price_micros, once each";
	else if (!cJSON_IsString(prov) || !provider_ok(prov->valuestring))
		*why = "provider must be 1..31 of [a-z0-9-]";
	else if (!cJSON_IsString(key) || !secret_ok(key->valuestring, strlen(key->valuestring)))
		*why = "key must be 8..4096 visible ASCII characters";
	else if (price_parse(o, &in->price) != 0)
		*why = "give price_usd (\"0.002\") or price_micros (2000): more than 0, at most $1000";
	else {
		memcpy(in->provider, prov->valuestring, strlen(prov->valuestring) + 1);
		in->keylen = strlen(key->valuestring);
		memcpy(in->key, key->valuestring, in->keylen + 1);
		return 0;
	}
	return -1;
}

/* Wipe every string in the tree (the key is one of them) before it is freed. */
static void
json_wipe_delete(cJSON *j)
{
	for (cJSON *c = j != NULL ? j->child : NULL; c != NULL; c = c->next)
		if (cJSON_IsString(c) && c->valuestring != NULL)
			mbedtls_platform_zeroize(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(j);
}

int
keys_parse(const uint8_t *body, size_t len, struct key_input *in, const char **why)
{
	cJSON *j = body_json(body, len);
	int rc;

	memset(in, 0, sizeof(*in));
	if (j == NULL) {
		*why = "the body must be one JSON object in UTF-8, at most 64 KiB";
		return -1;
	}
	rc = fields_parse(j, in, why);
	json_wipe_delete(j);
	return rc;
}
