/*
 * test_vault_retry.c — the vault's reading of an upstream's Retry-After,
 * as a table: delay-seconds, IMF-fixdate, a day at most, anything else none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vault/vault.h"

#define NOW INT64_C(784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */

static void
test_retry_after(void **state)
{
	static const struct {
		const char *head;
		uint32_t want;
	} cases[] = {
	    {"", 0},
	    {"Content-Type: application/json\r\n", 0},
	    {"Retry-After: 30\r\n", 30},
	    {"retry-after:7\r\n", 7},
	    {"X-A: 1\r\nRETRY-AFTER:  120 \r\nX-B: 2\r\n", 120},
	    {"Retry-After: 0\r\n", 0},
	    {"Retry-After: 86400\r\n", 86400},
	    {"Retry-After: 86401\r\n", 86400},
	    {"Retry-After: 99999999999999999999999\r\n", 86400},
	    {"Retry-After: -5\r\n", 0},
	    {"Retry-After: 1.5\r\n", 0},
	    {"Retry-After: soon\r\n", 0},
	    {"Retry-After:\r\n", 0},
	    {"Retry-After: Sun, 06 Nov 1994 08:50:37 GMT\r\n", 60},
	    {"Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n", 0},  /* now */
	    {"Retry-After: Sat, 05 Nov 1994 08:49:37 GMT\r\n", 0},  /* the past */
	    {"Retry-After: Mon, 07 Nov 1994 08:49:38 GMT\r\n", 86400},
	    {"Retry-After: Sunday, 06-Nov-94 08:50:37 GMT\r\n", 0}, /* obsolete form */
	    {"Retry-After: Sun, 06 Nov 1994 08:50:37 UTC\r\n", 0},
	    {"X-Retry-After: 30\r\n", 0},
	    {"Retry-After: 30", 30}, /* no final CRLF */
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t got = vault_retry_after(cases[i].head, strlen(cases[i].head), NOW);

		if (got != cases[i].want) {
			print_error("\"%s\": %u, want %u\n", cases[i].head, got, cases[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
