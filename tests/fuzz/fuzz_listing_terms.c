/*
 * fuzz_listing_terms.c — libFuzzer target for a listing's terms as sellers
 * send them (platform-api/terms.c: POST and PATCH /api/keys bodies, from
 * the internet) and for the router's reading of allowed routes
 * (router/select.c), which the terms carry to it.
 *
 * Beyond "no crash": refused terms give a reason; accepted ones are in
 * bounds (limits, budget, region, premium, routes length) and can be shown
 * as JSON again; the routes check and match accept any bytes.
 */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform-api/platform.h"
#include "router/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
terms_check(const uint8_t *data, size_t size)
{
	cJSON *o = cJSON_ParseWithLength((const char *)data, size), *shown;
	struct ipc_listing l;
	const char *why = NULL;
	int rc;

	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return;
	}
	memset(&l, 0, sizeof(l));
	rc = listing_terms_parse(o, &l, LT_PRICE | LT_STATUS, &why);
	if (rc != 0 && why == NULL)
		abort();
	if (rc == 0) {
		if (l.rpm > 1000000 || l.rpd > 10000000 || l.daily_budget < 0 || l.price < 0 ||
		    l.premium > 1 || strlen(l.routes) > IPC_ROUTES_MAX ||
		    (l.region[0] != '\0' && strcmp(l.region, "eu") != 0 && strcmp(l.region, "us") != 0))
			abort();
		(void)select_routes_valid(l.routes, &why);
		(void)select_route_allowed(l.routes, "POST", "/v1/chat/completions");
		if ((shown = cJSON_CreateObject()) == NULL || listing_terms_json(shown, &l) != 0)
			abort();
		cJSON_Delete(shown);
	}
	cJSON_Delete(o);
}

/* The bytes as a routes string, as the router would get it. */
static void
routes_check(const uint8_t *data, size_t size)
{
	char routes[IPC_ROUTES_MAX + 1];
	const char *why = NULL;
	size_t n = size < IPC_ROUTES_MAX ? size : IPC_ROUTES_MAX;

	memcpy(routes, data, n);
	routes[n] = '\0';
	if (select_routes_valid(routes, &why) != 0 && why == NULL)
		abort();
	(void)select_route_allowed(routes, "GET", "/v1/models/demo-1");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	terms_check(data, size);
	routes_check(data, size);
	return 0;
}
