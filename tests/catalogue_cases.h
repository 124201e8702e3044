/*
 * catalogue_cases.h — what the vault's injection tests send for each
 * provider of the catalogue (tests/unit/test_vault_request.c, one function;
 * tests/scenario/test_vault.c, through the real vault to an echo upstream):
 * every credential header a buyer might send, each with the value "buyer",
 * plus the provider's own key header and fixed headers in another case than
 * the catalogue's; and a request path for the provider's first route.
 */
#ifndef CN2_TESTS_CATALOGUE_CASES_H
#define CN2_TESTS_CATALOGUE_CASES_H

#include <stdio.h>
#include <string.h>

#include "common/providers.h"

static const char catalogue_buyer_creds[] =
    "Content-Type: application/json\r\n"
    "Authorization: Bearer buyer\r\n"
    "X-Api-Key: buyer\r\n"
    "Api-Key: buyer\r\n"
    "XI-API-KEY: buyer\r\n"
    "x-goog-api-key: buyer\r\n"
    "Cookie: session=buyer\r\n"
    "Proxy-Authorization: Basic buyer\r\n"
    "Payment-Authorization: Payment buyer\r\n"
    "OpenAI-Organization: org-buyer\r\n"
    "X-Auth-Token: buyer\r\n";

/* "Name: buyer\r\n" with name upper-cased, appended at *n. */
static inline void
catalogue_add_upper(char *out, size_t cap, size_t *n, const char *name)
{
	size_t i = *n;

	for (; *name != '\0' && i + 1 < cap; name++)
		out[i++] = (char)(*name >= 'a' && *name <= 'z' ? *name - 32 : *name);
	*n = i + (size_t)snprintf(out + i, cap - i, ": buyer\r\n");
}

/* The buyer's header block for pv into out; returns its length. */
static inline size_t
catalogue_buyer_headers(const struct provider *pv, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "%s", catalogue_buyer_creds);

	if (pv->auth_header[0] != '\0')
		catalogue_add_upper(out, cap, &n, pv->auth_header);
	for (size_t i = 0; i < pv->nheaders; i++)
		catalogue_add_upper(out, cap, &n, pv->headers[i].name);
	return n;
}

/* The path of pv's first route, each "*" (or "*<suffix>" prefix) made "x". */
static inline void
catalogue_sample_path(const struct provider *pv, char *out, size_t cap)
{
	const char *p = pv->routes[0].path;
	size_t n = 0;

	for (; *p != '\0' && n + 1 < cap; p++)
		out[n++] = *p == '*' ? 'x' : *p;
	out[n] = '\0';
}

#endif
