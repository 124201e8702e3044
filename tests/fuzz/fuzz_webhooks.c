/*
 * fuzz_webhooks.c — libFuzzer target for hook_parse, cn2-platform's reader
 * of POST /api/webhooks and PATCH /api/webhooks/<id> bodies (outside input
 * from any seller).
 *
 * Beyond "no crash": an accepted body's URL passes hook_url_ok again, is
 * https:// unless http was allowed, its events are "*" or known kinds, its
 * description is bounded; a create has a URL; every refusal a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform-api/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const uint8_t *data, size_t size, int create, int allow_http)
{
	struct hook_input in;
	const char *why = NULL;
	char events[sizeof(in.events)], *tok, *save = NULL;

	if (hook_parse(data, size, create, allow_http, &in, &why) != 0) {
		if (why == NULL)
			abort();
		return;
	}
	if (create && !(in.have & HOOK_URL))
		abort();
	if ((in.have & HOOK_URL) && (hook_url_ok(in.url, allow_http) != 0 ||
					(!allow_http && strncmp(in.url, "https://", 8) != 0)))
		abort();
	if (strlen(in.description) > HOOK_DESC_MAX)
		abort();
	memcpy(events, in.events, sizeof(events));
	for (tok = strtok_r(events, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		if (strcmp(tok, "*") != 0 && !hook_kind_known(tok))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, 1, 0);
	check(data, size, 0, 1);
	return 0;
}
