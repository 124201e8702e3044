/*
 * jcs.c — RFC 8785 JSON Canonicalization Scheme over cJSON trees.
 *
 * Security stance: the output is MAC input, so every value either has one
 * canonical spelling or the whole serialisation fails; nothing is dropped
 * or repaired silently. Recursion is bounded by JCS_MAX_DEPTH, the output
 * buffer grows with overflow checks, and strings are validated as strict
 * UTF-8 before a byte of them is copied.
 */
#include "common/jcs.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

/* A growing output buffer; after the first failure every append is a no-op. */
struct jbuf {
	char *p;
	size_t len;
	size_t cap;
	int err;
};

/* One object member, with its key length computed once for sorting. */
struct jmember {
	const char *key;
	size_t klen;
	const cJSON *item;
};

static int jcs_value(struct jbuf *b, const cJSON *v, int depth);

static void
jbuf_put(struct jbuf *b, const char *s, size_t n)
{
	size_t ncap;
	char *np;

	if (b->err)
		return;
	if (n >= b->cap - b->len) {
		ncap = b->cap;
		while (n >= ncap - b->len) {
			if (ncap > SIZE_MAX / 2) {
				b->err = 1;
				return;
			}
			ncap *= 2;
		}
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
jbuf_puts(struct jbuf *b, const char *s)
{
	jbuf_put(b, s, strlen(s));
}

/*
 * Write s as a JSON string: only '"', '\\' and control characters are
 * escaped (the short forms where JSON has one), everything else is raw UTF-8.
 */
static int
jcs_string(struct jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n, i, run;
	char esc[7];

	if (s == NULL)
		return -1;
	n = strlen(s);
	if (!utf8_valid((const uint8_t *)s, n))
		return -1;
	jbuf_put(b, "\"", 1);
	for (i = 0, run = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;

		switch (c) {
		case '"': rep = "\\\""; break;
		case '\\': rep = "\\\\"; break;
		case '\b': rep = "\\b"; break;
		case '\f': rep = "\\f"; break;
		case '\n': rep = "\\n"; break;
		case '\r': rep = "\\r"; break;
		case '\t': rep = "\\t"; break;
		default:
			if (c >= 0x20)
				continue;
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			esc[6] = '\0';
			rep = esc;
		}
		jbuf_put(b, s + run, i - run);
		jbuf_puts(b, rep);
		run = i + 1;
	}
	jbuf_put(b, s + run, n - run);
	jbuf_put(b, "\"", 1);
	return 0;
}

/*
 * Write d with p significant digits ("%.*e") and return its digits (no
 * point) in dig and the decimal exponent in *exp10.
 */
static void
jcs_sci(double d, int p, char dig[20], int *exp10)
{
	char buf[40], *e;
	size_t k = 0;

	snprintf(buf, sizeof(buf), "%.*e", p - 1, d);
	for (e = buf; *e != 'e'; e++)
		if (*e != '.')
			dig[k++] = *e;
	dig[k] = '\0';
	*exp10 = (int)strtol(e + 1, NULL, 10);
}

/* The double nearest to the decimal d.ddd × 10^exp10 spelled by dig. */
static double
jcs_read(const char *dig, int exp10)
{
	char buf[48];

	snprintf(buf, sizeof(buf), "%c.%se%d", dig[0], dig + 1, exp10);
	return strtod(buf, NULL);
}

/*
 * Add delta (+1 or -1) to the decimal digit string dig in place. Returns 0
 * if the result keeps its number of significant digits, -1 if it would
 * carry or borrow out (that neighbour belongs to another precision, which
 * is tried separately).
 */
static int
jcs_digits_step(char *dig, int delta)
{
	size_t i = strlen(dig);

	while (i-- > 0) {
		if (delta > 0 && dig[i] != '9') {
			dig[i]++;
			return 0;
		}
		if (delta < 0 && dig[i] != '0') {
			dig[i]--;
			return dig[0] == '0' ? -1 : 0;
		}
		dig[i] = delta > 0 ? '0' : '9';
	}
	return -1;
}

/*
 * The shortest decimal digits that read back as d (d > 0, finite), and
 * among those the closest to d, as ECMAScript's Number::toString requires.
 * printf rounds correctly, so at each precision the only candidates are the
 * correctly rounded value and its neighbour on the other side of d: the
 * neighbour can win alone because the set of decimals that read back as d
 * is narrower below d than above it when d is a power of two.
 */
static void
jcs_shortest(double d, char dig[20], int *exp10)
{
	char alt[20];
	double c;
	int p;

	for (p = 1; p < 17; p++) {
		jcs_sci(d, p, dig, exp10);
		if ((c = jcs_read(dig, *exp10)) == d)
			return;
		memcpy(alt, dig, sizeof(alt));
		if (jcs_digits_step(alt, c > d ? -1 : 1) == 0 && jcs_read(alt, *exp10) == d) {
			memcpy(dig, alt, sizeof(alt));
			return;
		}
	}
	/* Seventeen significant digits always identify a double. */
	jcs_sci(d, 17, dig, exp10);
}

static void
jbuf_zeros(struct jbuf *b, int count)
{
	while (count-- > 0)
		jbuf_put(b, "0", 1);
}

/* Number::toString (ECMA-262) for a finite double; -0 prints as "0". */
static int
jcs_number(struct jbuf *b, double d)
{
	char dig[20], exp[16];
	int k, n, e;

	if (!isfinite(d))
		return -1;
	if (d == 0) {
		jbuf_put(b, "0", 1);
		return 0;
	}
	if (d < 0) {
		jbuf_put(b, "-", 1);
		d = -d;
	}
	jcs_shortest(d, dig, &e);
	k = (int)strlen(dig);
	while (k > 1 && dig[k - 1] == '0')
		dig[--k] = '\0';
	/* ECMA-262 writes the value as s × 10^(n - k), s being the k digits. */
	n = e + 1;
	if (k <= n && n <= 21) {
		jbuf_put(b, dig, (size_t)k);
		jbuf_zeros(b, n - k);
	} else if (0 < n && n <= 21) {
		jbuf_put(b, dig, (size_t)n);
		jbuf_put(b, ".", 1);
		jbuf_puts(b, dig + n);
	} else if (-6 < n && n <= 0) {
		jbuf_put(b, "0.", 2);
		jbuf_zeros(b, -n);
		jbuf_puts(b, dig);
	} else {
		jbuf_put(b, dig, 1);
		if (k > 1) {
			jbuf_put(b, ".", 1);
			jbuf_puts(b, dig + 1);
		}
		snprintf(exp, sizeof(exp), "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
		jbuf_puts(b, exp);
	}
	return 0;
}

/*
 * UTF-16 code units of a valid UTF-8 string, one at a time. RFC 8785 sorts
 * keys by these, which differs from UTF-8 byte order: a character above
 * U+FFFF starts with a surrogate (0xD8xx..0xDBxx) and so sorts before
 * U+E000..U+FFFF, while its UTF-8 form sorts after them.
 */
struct u16iter {
	const uint8_t *p;
	size_t n;
	uint16_t low;
};

/* 1 with the next unit in *u, 0 at the end of the string. */
static int
u16_next(struct u16iter *it, uint16_t *u)
{
	uint32_t cp;
	size_t used;

	if (it->low != 0) {
		*u = it->low;
		it->low = 0;
		return 1;
	}
	if ((used = utf8_next(it->p, it->n, &cp)) == 0)
		return 0;
	it->p += used;
	it->n -= used;
	if (cp < 0x10000) {
		*u = (uint16_t)cp;
		return 1;
	}
	cp -= 0x10000;
	*u = (uint16_t)(0xd800 | (cp >> 10));
	it->low = (uint16_t)(0xdc00 | (cp & 0x3ff));
	return 1;
}

static int
jcs_member_cmp(const void *a, const void *b)
{
	const struct jmember *ma = a, *mb = b;
	struct u16iter ia = {(const uint8_t *)ma->key, ma->klen, 0};
	struct u16iter ib = {(const uint8_t *)mb->key, mb->klen, 0};
	uint16_t ua, ub;
	int ha, hb;

	for (;;) {
		ha = u16_next(&ia, &ua);
		hb = u16_next(&ib, &ub);
		if (!ha || !hb)
			return ha - hb;
		if (ua != ub)
			return ua < ub ? -1 : 1;
	}
}

/*
 * The members of object v in canonical order, in a malloc'd array (caller
 * frees; NULL with *count 0 for an empty object). -1 on a missing or
 * invalid key, a duplicate key, or no memory.
 */
static int
jcs_members(const cJSON *v, struct jmember **out, size_t *count)
{
	struct jmember *m;
	const cJSON *c;
	size_t n = 0, i;

	*out = NULL;
	*count = 0;
	for (c = v->child; c != NULL; c = c->next)
		n++;
	if (n == 0)
		return 0;
	if ((m = calloc(n, sizeof(*m))) == NULL)
		return -1;
	for (c = v->child, i = 0; c != NULL; c = c->next, i++) {
		if (c->string == NULL)
			goto fail;
		m[i].key = c->string;
		m[i].klen = strlen(c->string);
		m[i].item = c;
		if (!utf8_valid((const uint8_t *)m[i].key, m[i].klen))
			goto fail;
	}
	qsort(m, n, sizeof(*m), jcs_member_cmp);
	/* Sorting made duplicates adjacent; equal UTF-8 means equal text. */
	for (i = 1; i < n; i++)
		if (m[i].klen == m[i - 1].klen && memcmp(m[i].key, m[i - 1].key, m[i].klen) == 0)
			goto fail;
	*out = m;
	*count = n;
	return 0;
fail:
	free(m);
	return -1;
}

static int
jcs_object(struct jbuf *b, const cJSON *v, int depth)
{
	struct jmember *m;
	size_t n, i;
	int rc = 0;

	if (jcs_members(v, &m, &n) == -1)
		return -1;
	jbuf_put(b, "{", 1);
	for (i = 0; i < n && rc == 0; i++) {
		if (i > 0)
			jbuf_put(b, ",", 1);
		if ((rc = jcs_string(b, m[i].key)) == 0) {
			jbuf_put(b, ":", 1);
			rc = jcs_value(b, m[i].item, depth + 1);
		}
	}
	jbuf_put(b, "}", 1);
	free(m);
	return rc;
}

static int
jcs_array(struct jbuf *b, const cJSON *v, int depth)
{
	const cJSON *c;

	jbuf_put(b, "[", 1);
	for (c = v->child; c != NULL; c = c->next) {
		if (c != v->child)
			jbuf_put(b, ",", 1);
		if (jcs_value(b, c, depth + 1) == -1)
			return -1;
	}
	jbuf_put(b, "]", 1);
	return 0;
}

/* depth counts the arrays and objects enclosing v. */
static int
jcs_value(struct jbuf *b, const cJSON *v, int depth)
{
	switch (v->type & 0xff) {
	case cJSON_False:
		jbuf_puts(b, "false");
		return 0;
	case cJSON_True:
		jbuf_puts(b, "true");
		return 0;
	case cJSON_NULL:
		jbuf_puts(b, "null");
		return 0;
	case cJSON_Number:
		return jcs_number(b, v->valuedouble);
	case cJSON_String:
		return jcs_string(b, v->valuestring);
	case cJSON_Array:
		return depth >= JCS_MAX_DEPTH ? -1 : jcs_array(b, v, depth);
	case cJSON_Object:
		return depth >= JCS_MAX_DEPTH ? -1 : jcs_object(b, v, depth);
	default:
		/* cJSON_Raw carries unchecked text; cJSON_Invalid carries nothing. */
		return -1;
	}
}

char *
jcs_serialize(const cJSON *v)
{
	struct jbuf b = {NULL, 0, 256, 0};

	if (v == NULL || (b.p = malloc(b.cap)) == NULL)
		return NULL;
	b.p[0] = '\0';
	if (jcs_value(&b, v, 0) == -1 || b.err) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
