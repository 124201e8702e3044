/*
 * test_region.c — the edge's EU routing inputs, as tables: which countries
 * are EU member states, which trusted_proxies settings parse, and which
 * peers they trust (IPv4, IPv6, IPv4-mapped IPv6, prefixes of every length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "edge/edge.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
test_countries(void **state)
{
	static const struct {
		const char *cc;
		int eu;
	} cases[] = {
	    {"DE", 1}, {"de", 1}, {"Fr", 1}, {"IE", 1}, {"GR", 1}, {"CY", 1}, {"MT", 1},
	    {"SE", 1}, {"HR", 1}, {"LU", 1}, {"US", 0}, {"GB", 0}, {"CH", 0}, {"NO", 0},
	    {"IS", 0}, {"EL", 0}, {"XX", 0}, {"T1", 0}, {"", 0}, {"D", 0}, {"DEU", 0},
	    {"D1", 0},
	};
	int bad = 0, members = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		if (region_country_eu(cases[i].cc, strlen(cases[i].cc)) != cases[i].eu) {
			print_error("country \"%s\"\n", cases[i].cc);
			bad++;
		}
	}
	/* All 27, and nothing else, over every pair of letters. */
	for (char a = 'A'; a <= 'Z'; a++)
		for (char b = 'A'; b <= 'Z'; b++) {
			char cc[2] = {a, b};

			members += region_country_eu(cc, 2);
		}
	assert_int_equal(members, 27);
	assert_int_equal(bad, 0);
}

static void
addr(struct sockaddr_storage *ss, const char *s)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(s, ':') != NULL) {
		ss->ss_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)ss)->sin6_addr), 1);
	} else {
		ss->ss_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, s, &((struct sockaddr_in *)ss)->sin_addr), 1);
	}
}

static void
test_proxies(void **state)
{
	static const struct {
		const char *spec, *peer;
		int parses, trusted;
	} cases[] = {
	    {"", "127.0.0.1", 1, 0},
	    {"127.0.0.1", "127.0.0.1", 1, 1},
	    {"127.0.0.1", "127.0.0.2", 1, 0},
	    {"10.0.0.0/8", "10.200.3.4", 1, 1},
	    {"10.0.0.0/8", "11.0.0.1", 1, 0},
	    {"10.0.0.0/9", "10.127.255.255", 1, 1},
	    {"10.0.0.0/9", "10.128.0.0", 1, 0},
	    {"0.0.0.0/0", "203.0.113.9", 1, 1},
	    {"0.0.0.0/0", "2001:db8::1", 1, 0},
	    {"173.245.48.0/20, 103.21.244.0/22", "103.21.247.1", 1, 1},
	    {"173.245.48.0/20,103.21.244.0/22", "103.21.248.1", 1, 0},
	    {"2400:cb00::/32", "2400:cb00:1::5", 1, 1},
	    {"2400:cb00::/32", "2400:cb01::5", 1, 0},
	    {"::1", "::1", 1, 1},
	    {"127.0.0.1", "::ffff:127.0.0.1", 1, 1}, /* a mapped IPv4 peer */
	    {"::ffff:10.0.0.0/104", "10.1.2.3", 1, 1},
	    {"2001:db8::/127", "2001:db8::1", 1, 1},
	    {"2001:db8::/127", "2001:db8::2", 1, 0},
	    {"10.0.0.0/33", "10.0.0.1", 0, 0},
	    {"10.0.0.0/", "10.0.0.1", 0, 0},
	    {"10.0.0.0/8x", "10.0.0.1", 0, 0},
	    {"10.0.0", "10.0.0.1", 0, 0},
	    {"localhost", "127.0.0.1", 0, 0},
	    {"::1/129", "::1", 0, 0},
	    {"1.2.3.4;", "1.2.3.4", 0, 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct edge_proxies p;
		struct sockaddr_storage ss;
		char err[200] = "";
		int parses = region_proxies_parse(cases[i].spec, &p, err, sizeof(err)) == 0;

		addr(&ss, cases[i].peer);
		if (parses != cases[i].parses || (!parses && err[0] == '\0') ||
		    (parses && region_trusted(&p, &ss) != cases[i].trusted)) {
			print_error("\"%s\" for %s: parses %d\n", cases[i].spec, cases[i].peer, parses);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_proxies_bounded(void **state)
{
	char spec[2048] = "";
	struct edge_proxies p;
	char err[200];

	(void)state;
	for (int i = 0; i < EDGE_PROXIES_MAX; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "10.0.%d.1,", i);
	assert_int_equal(region_proxies_parse(spec, &p, err, sizeof(err)), 0);
	assert_int_equal(p.n, EDGE_PROXIES_MAX);
	snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "10.1.0.1");
	assert_int_equal(region_proxies_parse(spec, &p, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_countries),
	    cmocka_unit_test(test_proxies),
	    cmocka_unit_test(test_proxies_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
