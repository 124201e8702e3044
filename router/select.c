/*
 * select.c — which key serves a paid request: pure functions over rows the
 * caller has read, so the rule can be tested as a table.
 *
 * The rule (DESIGN.md §5, this part of it): among the active
 * listings of the provider, leave out the keys already tried for this
 * payment, leave out those whose buyer price is more than the ticket paid,
 * take the cheapest; equally cheap keys take turns. The buyer price is
 * computed with the platform fee rounded up (money.h), so a quote, a ticket
 * and a choice can never disagree by a rounding.
 *
 * Security stance: every input here was checked by the codec, but prices
 * are still treated as hostile: an overflowing buyer price makes the key
 * ineligible rather than wrapping into a cheap one.
 */
#include "router/router.h"

#include <string.h>

#include "common/money.h"

int
select_buyer_price(int64_t price, int64_t fee_bps, int64_t *out)
{
	int64_t fee;

	if (price <= 0 || fee_bps < 0 || fee_bps > 10000)
		return -1;
	if (!money_mul_ratio_ceil(price, fee_bps, 10000, &fee) || !money_add(price, fee, out))
		return -1;
	return 0;
}

int
select_excluded(const char *exclude, const char *key_id)
{
	size_t klen = strlen(key_id);
	const char *p = exclude;

	if (klen == 0)
		return 0;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);

		if (n == klen && memcmp(p, key_id, n) == 0)
			return 1;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

/* Is candidate i eligible, and at what buyer price? */
static int
eligible(const struct sel_cand *c, int64_t fee_bps, int64_t ceiling, const char *exclude,
    int64_t *buyer)
{
	if (select_buyer_price(c->price, fee_bps, buyer) != 0 || *buyer > ceiling)
		return 0;
	return !select_excluded(exclude, c->key_id);
}

int
select_pick(const struct sel_cand *c, size_t n, int64_t fee_bps, int64_t ceiling,
    const char *exclude, uint64_t spread)
{
	int64_t best = 0, buyer;
	size_t ties = 0, want;

	for (size_t i = 0; i < n; i++) {
		if (!eligible(&c[i], fee_bps, ceiling, exclude, &buyer))
			continue;
		if (ties == 0 || buyer < best) {
			best = buyer;
			ties = 1;
		} else if (buyer == best) {
			ties++;
		}
	}
	if (ties == 0)
		return -1;
	want = (size_t)(spread % ties);
	for (size_t i = 0; i < n; i++)
		if (eligible(&c[i], fee_bps, ceiling, exclude, &buyer) && buyer == best &&
		    want-- == 0)
			return (int)i;
	return -1;
}
