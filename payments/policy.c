/*
 * policy.c — buyers the operator refuses to serve (the 403 row of MPP's
 * problem table: "paid but refused by policy").
 *
 * blocked_buyers_file lists buyer ids, one per line: the 64 lowercase hex
 * digits of SHA-256 of the payment principal, as payments.db stores them
 * (buyer_spend.buyer), so an operator can block a buyer seen abusing the
 * service without cn2 ever holding who that is. Blank lines and lines
 * starting with '#' are ignored. It is read at start and again on SIGHUP; a
 * file with a bad line refuses to load, naming the line, and the list in
 * force stays.
 *
 * The check runs before a payment processor is asked (nothing is charged
 * for the test, stripe and lightning methods: a Lightning buyer has paid
 * their own invoice, which settles only to a preimage they hold) and, for
 * tempo, whose payer is known only from the transaction, right after its
 * proof: the transaction is then recorded as used and the buyer refused.
 * A refused buyer gets 403 with no challenge, since paying again cannot help.
 *
 * Security stance: the file holds hashes only; nothing from it is logged but
 * its line numbers. Lookups are a binary search over a sorted array.
 */
#include "payments/payments.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_MAX_BUYERS 1000000

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/* 32 bytes from 64 lowercase hex digits; 0, or -1. */
static int
hex_id(const char *s, size_t len, uint8_t out[32])
{
	if (len != 64)
		return -1;
	for (size_t i = 0; i < 64; i++) {
		int v = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
		    s[i] >= 'a' && s[i] <= 'f'	 ? s[i] - 'a' + 10 :
						   -1;

		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : out[i / 2] | v);
	}
	return 0;
}

/* Append one id, growing the array; 0 or -1. */
static int
push(struct pay_policy *p, size_t *cap, const uint8_t id[32])
{
	uint8_t(*grown)[32];

	if (p->n == *cap) {
		*cap = *cap == 0 ? 64 : *cap * 2;
		if ((grown = realloc(p->ids, *cap * 32)) == NULL)
			return -1;
		p->ids = grown;
	}
	memcpy(p->ids[p->n++], id, 32);
	return 0;
}

/* Read path into p (empty on entry); 0, or -1 with err. */
static int
policy_read(struct pay_policy *p, const char *path, char *err, size_t errlen)
{
	char line[256];
	uint8_t id[32];
	size_t cap = 0, len;
	int lineno = 0, rc = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "blocked_buyers_file: %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strcspn(line, "\r\n");
		if (line[len] == '\0' && !feof(f)) {
			snprintf(err, errlen, "blocked_buyers_file: line %d is too long", lineno);
			rc = -1;
		} else if (len == 0 || line[0] == '#') {
			continue;
		} else if (hex_id(line, len, id) != 0) {
			snprintf(err, errlen,
			    "blocked_buyers_file: line %d is not a buyer id (64 lowercase hex digits)",
			    lineno);
			rc = -1;
		} else if (p->n >= POLICY_MAX_BUYERS || push(p, &cap, id) != 0) {
			snprintf(err, errlen, "blocked_buyers_file: too many buyers (line %d)", lineno);
			rc = -1;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "blocked_buyers_file: %s: read error", path);
		rc = -1;
	}
	fclose(f);
	return rc;
}

int
pay_policy_load(struct pay_policy *p, const char *path, char *err, size_t errlen)
{
	struct pay_policy fresh = {NULL, 0};

	if (*path != '\0' && policy_read(&fresh, path, err, errlen) != 0) {
		free(fresh.ids);
		return -1;
	}
	if (fresh.n > 1)
		qsort(fresh.ids, fresh.n, 32, cmp_id);
	pay_policy_free(p);
	*p = fresh;
	return 0;
}

void
pay_policy_free(struct pay_policy *p)
{
	free(p->ids);
	p->ids = NULL;
	p->n = 0;
}

int
pay_policy_blocked(const struct pay_policy *p, const char *buyer)
{
	uint8_t id[32];

	if (p->n == 0 || hex_id(buyer, strlen(buyer), id) != 0)
		return 0;
	return bsearch(id, p->ids, p->n, 32, cmp_id) != NULL;
}
