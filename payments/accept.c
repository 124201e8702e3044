/*
 * accept.c — the buyer's Accept-Payment header: which offers it takes, in
 * what order.
 *
 *   Accept-Payment: test/charge, lightning/charge;q=0.5, *;q=0.1
 *
 * Each element is method "/" intent (either may be "*"; a missing intent
 * means any) with an optional q-value in [0, 1] (three decimals at most);
 * q=0 refuses. An offer takes the q of the most specific element matching
 * it (exact method beats "*", then exact intent beats "*"), as in HTTP
 * content negotiation.
 *
 * Security stance: outside input, read in one pass with bounds (at most
 * ACCEPT_MAX_ELEMS elements are considered). A malformed element is
 * skipped, not fatal: a buyer whose header we cannot read still gets every
 * offer, which is what no header means.
 */
#include "payments/payments.h"

#include <string.h>
#include <strings.h>

#define ACCEPT_MAX_ELEMS 16
#define ACCEPT_TOKEN_MAX 31

struct accept_elem {
	char method[ACCEPT_TOKEN_MAX + 1];
	char intent[ACCEPT_TOKEN_MAX + 1];
	int q; /* thousandths */
};

static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void
skip_ows(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Copy a token at *p into out; 0, or -1 if empty or too long. */
static int
read_token(const char **p, char out[ACCEPT_TOKEN_MAX + 1])
{
	size_t n = 0;

	while (is_tchar((unsigned char)(*p)[n]))
		n++;
	if (n == 0 || n > ACCEPT_TOKEN_MAX)
		return -1;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	return 0;
}

/* A qvalue (RFC 9110 §12.4.2) in thousandths, or -1. */
static int
parse_q(const char *s)
{
	int q, scale = 100;

	if (s[0] != '0' && s[0] != '1')
		return -1;
	q = (s[0] - '0') * 1000;
	if (s[1] == '\0')
		return q;
	if (s[1] != '.')
		return -1;
	for (s += 2; *s != '\0'; s++, scale /= 10) {
		if (*s < '0' || *s > '9' || scale == 0)
			return -1;
		q += (*s - '0') * scale;
	}
	return q <= 1000 ? q : -1;
}

/* One element from text [p, end) (commas excluded); 0, or -1 to skip it. */
static int
parse_elem(const char *p, const char *end, struct accept_elem *e)
{
	char buf[128], name[ACCEPT_TOKEN_MAX + 1], val[ACCEPT_TOKEN_MAX + 1];
	const char *s = buf;

	if ((size_t)(end - p) >= sizeof(buf))
		return -1;
	memcpy(buf, p, (size_t)(end - p));
	buf[end - p] = '\0';
	skip_ows(&s);
	strcpy(e->intent, "*");
	e->q = 1000;
	if (read_token(&s, e->method) != 0)
		return -1;
	if (*s == '/' && (s++, read_token(&s, e->intent) != 0))
		return -1;
	for (skip_ows(&s); *s == ';'; skip_ows(&s)) {
		s++;
		skip_ows(&s);
		if (read_token(&s, name) != 0 || *s++ != '=' || read_token(&s, val) != 0)
			return -1;
		if (strcasecmp(name, "q") == 0 && (e->q = parse_q(val)) < 0)
			return -1;
	}
	return *s == '\0' ? 0 : -1;
}

/* The elements of the header, at most max; their number. */
static size_t
parse_accept(const char *accept, struct accept_elem *elems, size_t max)
{
	const char *p = accept, *comma;
	size_t n = 0;

	while (*p != '\0' && n < max) {
		comma = strchr(p, ',');
		if (comma == NULL)
			comma = p + strlen(p);
		if (parse_elem(p, comma, &elems[n]) == 0)
			n++;
		p = *comma == ',' ? comma + 1 : comma;
	}
	return n;
}

/* The q the elements give offer (name, intent): the most specific match's, or 0. */
static int
offer_q(const struct accept_elem *elems, size_t n, const char *name, const char *intent)
{
	int best = -1, q = 0;

	for (size_t i = 0; i < n; i++) {
		int m = strcasecmp(elems[i].method, name) == 0, mi = strcasecmp(elems[i].intent, intent) == 0;
		int spec;

		if ((!m && strcmp(elems[i].method, "*") != 0) ||
		    (!mi && strcmp(elems[i].intent, "*") != 0))
			continue;
		spec = m * 2 + mi;
		if (spec > best) {
			best = spec;
			q = elems[i].q;
		}
	}
	return q;
}

size_t
pay_accept_order(const char *accept, const char *const *names, const char *const *intents,
    size_t n, size_t *idx)
{
	struct accept_elem elems[ACCEPT_MAX_ELEMS];
	size_t nelems = accept != NULL ? parse_accept(accept, elems, ACCEPT_MAX_ELEMS) : 0;
	int q[PAY_MAX_METHODS];
	size_t out = 0;

	if (n > PAY_MAX_METHODS)
		n = PAY_MAX_METHODS;
	for (size_t i = 0; i < n; i++)
		q[i] = nelems == 0 ? 1000 : offer_q(elems, nelems, names[i], intents[i]);
	/* Highest q first; equal q keeps our own order (a stable selection). */
	for (int want = 1000; want > 0; want--)
		for (size_t i = 0; i < n; i++)
			if (q[i] == want)
				idx[out++] = i;
	return out;
}
