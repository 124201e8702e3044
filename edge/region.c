/*
 * region.c — which routing region a buyer's request belongs to.
 *
 * A buyer in an EU member state is served only by keys tagged eu
 * (DESIGN.md §5). The country comes from Cloudflare's CF-IPCountry header,
 * and only when the TCP peer is one of the configured trusted proxies
 * (trusted_proxies: addresses or CIDRs, IPv4 or IPv6): anyone else can send
 * that header, so from anyone else it is ignored and the request is routed
 * as a non-EU one. The region travels in the route of QUOTE, CHALLENGE and
 * VERIFY; payments MACs it into the ticket, so the router selects by it and
 * the receipt and the metadata record it.
 *
 * Security stance: the peer address is used for this comparison only and is
 * never logged or stored. The configuration is parsed strictly at start (a
 * bad entry stops the edge); a header that is not two letters is no
 * country.
 */
#include "edge/edge.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The 27 member states, ISO 3166-1 alpha-2 (Greece is GR, as Cloudflare sends it). */
static const char eu_members[][3] = {
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
};

int
region_country_eu(const char *cc, size_t n)
{
	if (n != 2 || !isalpha((unsigned char)cc[0]) || !isalpha((unsigned char)cc[1]))
		return 0;
	for (size_t i = 0; i < sizeof(eu_members) / sizeof(eu_members[0]); i++)
		if (strncasecmp(cc, eu_members[i], 2) == 0)
			return 1;
	return 0;
}

/* "a.b.c.d", "a.b.c.d/n", "v6", "v6/n" into one net. 0, or -1. */
static int
net_parse(const char *s, size_t len, struct edge_net *net)
{
	char buf[64], *slash, *end;
	struct in_addr a4;
	long bits;
	int v4;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	memset(net, 0, sizeof(*net));
	if ((v4 = inet_pton(AF_INET, buf, &a4) == 1)) {
		net->addr[10] = net->addr[11] = 0xff;
		memcpy(net->addr + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, buf, net->addr) != 1)
		return -1;
	net->bits = 128;
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > (v4 ? 32 : 128))
			return -1;
		net->bits = (int)bits + (v4 ? 96 : 0);
	}
	return 0;
}

int
region_proxies_parse(const char *spec, struct edge_proxies *out, char *err, size_t errlen)
{
	const char *p = spec;

	memset(out, 0, sizeof(*out));
	while (*(p += strspn(p, " ,")) != '\0') {
		size_t n = strcspn(p, " ,");

		if (out->n == EDGE_PROXIES_MAX || net_parse(p, n, &out->net[out->n]) != 0) {
			snprintf(err, errlen, "trusted_proxies: \"%.*s\" is not an address or CIDR "
			    "(at most %d entries)", (int)(n < 64 ? n : 64), p, EDGE_PROXIES_MAX);
			return -1;
		}
		out->n++;
		p += n;
	}
	return 0;
}

static int
net_contains(const struct edge_net *net, const uint8_t a[16])
{
	int full = net->bits / 8, rest = net->bits % 8;

	if (memcmp(net->addr, a, (size_t)full) != 0)
		return 0;
	return rest == 0 || ((net->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

int
region_trusted(const struct edge_proxies *p, const struct sockaddr_storage *ss)
{
	uint8_t a[16] = {0};

	if (ss->ss_family == AF_INET) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr, 16);
	} else
		return 0;
	for (size_t i = 0; i < p->n; i++)
		if (net_contains(&p->net[i], a))
			return 1;
	return 0;
}

const char *
region_of_request(struct edge *e, struct hconn *c)
{
	const struct http_header *h = http_header_get(hconn_request(c), "CF-IPCountry");
	struct sockaddr_storage ss;

	if (h == NULL || e->proxies.n == 0 || hconn_peer(c, &ss) != 0 ||
	    !region_trusted(&e->proxies, &ss))
		return "";
	return region_country_eu(h->value, h->value_len) ? "eu" : "";
}
