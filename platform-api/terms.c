/*
 * terms.c — a listing's terms as the seller API writes and shows them
 * (listing.c has the requests; keyparse.c takes the same terms in POST
 * /api/keys):
 *
 *   "price_usd": "0.002" | "price_micros": 2000       with LT_PRICE (PATCH)
 *   "region": "eu" | "us" | null                     a region tag; EU buyers get eu keys only
 *   "premium": true | false                          may serve the premium pool
 *   "routes": ["POST /v1/chat/completions", …] | []  routes allowed; [] or null: all
 *   "rpm": 60, "rpd": 10000                          requests per minute / day; 0 or null: none
 *   "daily_budget_usd": "5" | "daily_budget_micros"  upstream spend per UTC day; 0 or null: none
 *   "status": "active" | "paused"                    with LT_STATUS (PATCH); "active" also
 *                                                    reinstates a quarantined key
 *
 * Shown with every key: the same, plus "score" (0..1), "status_reason"
 * (why a key is quarantined) and "updated".
 *
 * Security stance: the JSON comes from the internet (already parsed and
 * checked for shape by the caller); every value is bounded here, and the
 * router checks the whole listing again (listing_valid). Pure: no I/O, no
 * logging.
 */
#include "platform-api/platform.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/money.h"
#include "common/timefmt.h"

#define TERM_AMOUNT_MAX INT64_C(1000000000000000) /* µUSD */
#define TERM_ROUTES_MAX 16

static const char *const term_names[] = {
    "price_usd", "price_micros", "region", "premium", "routes", "rpm", "rpd",
    "daily_budget_usd", "daily_budget_micros", "status",
};

int
listing_term_member(const char *name, int flags)
{
	size_t n = sizeof(term_names) / sizeof(term_names[0]);

	/* price (the first two) and status (the last) only with their flags. */
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, term_names[i]) == 0)
			return i < 2 ? (flags & LT_PRICE) != 0 :
			    i == n - 1 ? (flags & LT_STATUS) != 0 : 1;
	return 0;
}

/* <base>_usd ("1.25") or <base>_micros (1250000), at most one; null is 0; *out untouched if neither. */
static int
amount_parse(const cJSON *o, const char *base, int64_t min, int64_t *out)
{
	char name[32];
	const cJSON *usd, *micros;
	int64_t v = 0;

	snprintf(name, sizeof(name), "%s_usd", base);
	usd = cJSON_GetObjectItemCaseSensitive(o, name);
	snprintf(name, sizeof(name), "%s_micros", base);
	micros = cJSON_GetObjectItemCaseSensitive(o, name);
	if (usd == NULL && micros == NULL)
		return 0;
	if (usd != NULL && micros != NULL)
		return -1;
	if (usd != NULL && !cJSON_IsNull(usd) &&
	    (!cJSON_IsString(usd) || money_parse_usd(usd->valuestring, &v) != 0))
		return -1;
	if (micros != NULL && !cJSON_IsNull(micros)) {
		if (!cJSON_IsNumber(micros) || !(micros->valuedouble >= 0 &&
		    micros->valuedouble <= (double)TERM_AMOUNT_MAX) ||
		    micros->valuedouble != floor(micros->valuedouble))
			return -1;
		v = (int64_t)micros->valuedouble;
	}
	if (v < min || v > TERM_AMOUNT_MAX)
		return -1;
	*out = v;
	return 0;
}

/* A whole number in [0, max], or null (0); *out untouched if absent. */
static int
count_parse(const cJSON *o, const char *name, uint32_t max, uint32_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (v == NULL)
		return 0;
	if (cJSON_IsNull(v)) {
		*out = 0;
		return 0;
	}
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= max) ||
	    v->valuedouble != floor(v->valuedouble))
		return -1;
	*out = (uint32_t)v->valuedouble;
	return 0;
}

static int
region_parse(const cJSON *o, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "region");

	if (v == NULL)
		return 0;
	if (cJSON_IsNull(v) || (cJSON_IsString(v) && v->valuestring[0] == '\0'))
		out[0] = '\0';
	else if (cJSON_IsString(v) && (strcmp(v->valuestring, "eu") == 0 ||
	    strcmp(v->valuestring, "us") == 0))
		snprintf(out, cap, "%s", v->valuestring);
	else
		return -1;
	return 0;
}

/* ["POST /v1/x", …] into "POST /v1/x, …"; the router checks each item's syntax. */
static int
routes_parse(const cJSON *o, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "routes"), *it;
	size_t n = 0, items = 0;

	if (v == NULL)
		return 0;
	out[0] = '\0';
	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return -1;
	cJSON_ArrayForEach(it, v) {
		size_t len;

		if (!cJSON_IsString(it) || strchr(it->valuestring, ',') != NULL ||
		    (len = strlen(it->valuestring)) == 0 || ++items > TERM_ROUTES_MAX ||
		    n + len + 2 >= cap)
			return -1;
		n += (size_t)snprintf(out + n, cap - n, "%s%s", n > 0 ? ", " : "", it->valuestring);
	}
	return 0;
}

static int
status_parse(const cJSON *o, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "status");

	if (v == NULL)
		return 0;
	if (!cJSON_IsString(v) ||
	    (strcmp(v->valuestring, "active") != 0 && strcmp(v->valuestring, "paused") != 0))
		return -1;
	snprintf(out, cap, "%s", v->valuestring);
	return 0;
}

int
listing_terms_parse(const cJSON *o, struct ipc_listing *l, int flags, const char **why)
{
	const cJSON *premium = cJSON_GetObjectItemCaseSensitive(o, "premium");

	if ((flags & LT_PRICE) && amount_parse(o, "price", 1, &l->price) != 0)
		*why = "give price_usd (\"0.002\") or price_micros (2000), more than 0";
	else if ((flags & LT_STATUS) && status_parse(o, l->status, sizeof(l->status)) != 0)
		*why = "status may be set to \"active\" or \"paused\" (DELETE removes a key)";
	else if (region_parse(o, l->region, sizeof(l->region)) != 0)
		*why = "region must be \"eu\", \"us\" or null";
	else if (premium != NULL && !cJSON_IsBool(premium))
		*why = "premium must be true or false";
	else if (routes_parse(o, l->routes, sizeof(l->routes)) != 0)
		*why = "routes must be an array of at most 16 \"METHOD /path\" strings without commas";
	else if (count_parse(o, "rpm", 1000000, &l->rpm) != 0)
		*why = "rpm must be a whole number from 0 (no limit) to 1000000";
	else if (count_parse(o, "rpd", 10000000, &l->rpd) != 0)
		*why = "rpd must be a whole number from 0 (no limit) to 10000000";
	else if (amount_parse(o, "daily_budget", 0, &l->daily_budget) != 0)
		*why = "give daily_budget_usd (\"5.00\") or daily_budget_micros, 0 for none";
	else {
		if (premium != NULL)
			l->premium = cJSON_IsTrue(premium);
		return 0;
	}
	return -1;
}

void
listing_terms_copy(struct ipc_listing *dst, const struct ipc_listing *src)
{
	memcpy(dst->region, src->region, sizeof(dst->region));
	dst->premium = src->premium;
	memcpy(dst->routes, src->routes, sizeof(dst->routes));
	dst->rpm = src->rpm;
	dst->rpd = src->rpd;
	dst->daily_budget = src->daily_budget;
}

/* "POST /a, GET /b" as a JSON array. */
static cJSON *
routes_json(const char *routes)
{
	cJSON *a = cJSON_CreateArray(), *s;
	const char *p = routes;

	while (a != NULL && *(p += strspn(p, " ,")) != '\0') {
		size_t n = strcspn(p, ","), m = n;
		char item[IPC_ROUTES_MAX + 1];

		while (m > 0 && p[m - 1] == ' ')
			m--;
		memcpy(item, p, m);
		item[m] = '\0';
		if ((s = cJSON_CreateString(item)) == NULL || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
		p += n;
	}
	return a;
}

/* 0 as null ("none"), else the number. */
static int
add_count(cJSON *o, const char *name, int64_t v)
{
	return (v == 0 ? cJSON_AddNullToObject(o, name) : cJSON_AddNumberToObject(o, name, (double)v))
	    != NULL ? 0 : -1;
}

int
listing_terms_json(cJSON *o, const struct ipc_listing *l)
{
	char usd[MONEY_USD_BUFSZ], updated[RFC3339_BUFSZ];
	cJSON *routes = routes_json(l->routes);

	if (routes == NULL || !cJSON_AddItemToObject(o, "routes", routes)) {
		cJSON_Delete(routes);
		return -1;
	}
	if ((l->region[0] != '\0' ? cJSON_AddStringToObject(o, "region", l->region) :
				    cJSON_AddNullToObject(o, "region")) == NULL ||
	    cJSON_AddBoolToObject(o, "premium", l->premium) == NULL ||
	    add_count(o, "rpm", l->rpm) != 0 || add_count(o, "rpd", l->rpd) != 0 ||
	    add_count(o, "daily_budget_micros", l->daily_budget) != 0 ||
	    money_format_usd(l->daily_budget, usd, sizeof(usd)) < 0 ||
	    (l->daily_budget != 0 ? cJSON_AddStringToObject(o, "daily_budget_usd", usd) :
				    cJSON_AddNullToObject(o, "daily_budget_usd")) == NULL ||
	    cJSON_AddNumberToObject(o, "score", (double)l->score / 1e6) == NULL)
		return -1;
	if (l->reason[0] != '\0' && cJSON_AddStringToObject(o, "status_reason", l->reason) == NULL)
		return -1;
	if (l->updated > 0 && (rfc3339_format(l->updated, updated, sizeof(updated)) < 0 ||
	    cJSON_AddStringToObject(o, "updated", updated) == NULL))
		return -1;
	return 0;
}

