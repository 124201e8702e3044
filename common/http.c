/*
 * http.c — strict HTTP/1.1 head parsers, chunked decoder, response writers.
 *
 * Security stance: this is the first code to read bytes from the internet.
 * Every byte of a head goes through http_line_end, the only place a line can
 * end, so a bare CR or a bare LF cannot hide in any field. Characters are
 * classified by one table built from the RFC 9110/9112 grammars, never by
 * <ctype.h>, whose answers depend on the locale. Each limit (head size, field
 * count, target length, chunk line, trailer section, Content-Length) is
 * checked before the value it bounds is used. Nothing here allocates, logs
 * or keeps state outside the caller's structures.
 */
#include "common/http.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/utf8.h"

/* Character classes, as bits in http_cc. */
enum {
	CC_TCHAR = 0x01, /* token characters (RFC 9110 section 5.6.2) */
	CC_VCHAR = 0x02, /* visible ASCII 0x21..0x7e */
	CC_OBS = 0x04,   /* obs-text 0x80..0xff */
	CC_WS = 0x08,    /* SP and HTAB */
	CC_HEX = 0x10,
	CC_HOST = 0x20, /* what we allow in a reg-name: ALPHA DIGIT - . _ ~ */
	CC_DIGIT = 0x40,
};
/* field-value characters (RFC 9110 section 5.5), whitespace included */
#define CC_FIELD (CC_VCHAR | CC_OBS | CC_WS)

#define W_ CC_WS
#define V_ CC_VCHAR
#define T_ (CC_TCHAR | CC_VCHAR)
#define A_ (T_ | CC_HOST)
#define X_ (A_ | CC_HEX)
#define D_ (X_ | CC_DIGIT)
#define O_ CC_OBS

static const unsigned char http_cc[256] = {
    /* 0x00..0x1f: controls; only HTAB is anything */
    0, 0, 0, 0, 0, 0, 0, 0, 0, W_, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* SP ! " # $ % & ' ( ) * + , - . / */
    W_, T_, V_, T_, T_, T_, T_, T_, V_, V_, T_, T_, V_, A_, A_, V_,
    /* 0 1 2 3 4 5 6 7 8 9 : ; < = > ? */
    D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, V_, V_, V_, V_, V_, V_,
    /* @ A B C D E F G H I J K L M N O */
    V_, X_, X_, X_, X_, X_, X_, A_, A_, A_, A_, A_, A_, A_, A_, A_,
    /* P Q R S T U V W X Y Z [ \ ] ^ _ */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, V_, V_, V_, T_, A_,
    /* ` a b c d e f g h i j k l m n o */
    T_, X_, X_, X_, X_, X_, X_, A_, A_, A_, A_, A_, A_, A_, A_, A_,
    /* p q r s t u v w x y z { | } ~ DEL */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, V_, T_, V_, A_, 0,
    /* 0x80..0xff: obs-text */
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
    O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_, O_,
};

#undef W_
#undef V_
#undef T_
#undef A_
#undef X_
#undef D_
#undef O_

#define CC(ch, cls) (http_cc[(unsigned char)(ch)] & (cls))

/* Framing facts common to requests and responses. */
struct http_framing {
	int64_t content_length;
	int chunked;
	int keep_alive;
};

/* ASCII-only case folding: header names must not depend on the locale. */
static unsigned char
http_lower(char ch)
{
	unsigned char u = (unsigned char)ch;

	return u >= 'A' && u <= 'Z' ? (unsigned char)(u + ('a' - 'A')) : u;
}

static int
http_ci_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (http_lower(a[i]) != http_lower(b[i]))
			return 0;
	return 1;
}

static int
http_name_is(const struct http_header *h, const char *name)
{
	return h->name_len == strlen(name) && http_ci_eq(h->name, name, h->name_len);
}

static int
http_value_is(const struct http_header *h, const char *value)
{
	return h->value_len == strlen(value) && http_ci_eq(h->value, value, h->value_len);
}

/*
 * Find the CRLF ending the line that starts at pos: *eol is the CR's offset.
 * A LF not preceded by CR, or a CR not followed by LF, is an error here and
 * so everywhere in a head.
 */
static int
http_line_end(const char *buf, size_t len, size_t pos, size_t *eol)
{
	for (size_t i = pos; i < len; i++) {
		if (buf[i] == '\n')
			return HTTP_BAD;
		if (buf[i] != '\r')
			continue;
		if (i + 1 >= len)
			return HTTP_INCOMPLETE;
		if (buf[i + 1] != '\n')
			return HTTP_BAD;
		*eol = i;
		return HTTP_OK;
	}
	return HTTP_INCOMPLETE;
}

/*
 * field-line = field-name ":" OWS field-value OWS. The name must run right up
 * to the colon: "Name : v" is the smuggler's favourite and is rejected, and
 * so is a line starting with whitespace (obs-fold, or a first field line
 * indented after the start-line).
 */
static int
http_field_parse(const char *s, size_t n, struct http_header *h)
{
	size_t i = 0, end = n;

	while (i < n && CC(s[i], CC_TCHAR))
		i++;
	if (i == 0 || i >= n || s[i] != ':')
		return HTTP_BAD;
	h->name = s;
	h->name_len = i;
	for (i++; i < n && CC(s[i], CC_WS); i++)
		continue;
	for (; end > i && CC(s[end - 1], CC_WS); end--)
		continue;
	for (size_t k = i; k < end; k++)
		if (!CC(s[k], CC_FIELD))
			return HTTP_BAD;
	h->value = s + i;
	h->value_len = end - i;
	return HTTP_OK;
}

/* Field lines from pos through the empty line; *end is just past that. */
static int
http_fields_parse(const char *buf, size_t len, size_t pos, struct http_header *h,
    size_t *nh, size_t *end)
{
	size_t eol;
	int rc;

	*nh = 0;
	for (;;) {
		if ((rc = http_line_end(buf, len, pos, &eol)) != HTTP_OK)
			return rc;
		if (eol == pos) {
			*end = eol + 2;
			return HTTP_OK;
		}
		if (*nh == HTTP_MAX_HEADERS)
			return HTTP_HEADERS_TOO_LARGE;
		if ((rc = http_field_parse(buf + pos, eol - pos, &h[*nh])) != HTTP_OK)
			return rc;
		(*nh)++;
		pos = eol + 2;
	}
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT; only 1.0 and 1.1 are served. */
static int
http_version_parse(const char *s, size_t n, int *minor)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || !CC(s[5], CC_DIGIT) || s[6] != '.' ||
	    !CC(s[7], CC_DIGIT))
		return HTTP_BAD;
	if (s[5] != '1' || s[7] > '1')
		return HTTP_VERSION_NOT_SUPPORTED;
	*minor = s[7] - '0';
	return HTTP_OK;
}

/* Content-Length = 1*DIGIT; at most 16 digits, so no overflow before the cap. */
static int
http_content_length(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;

	if (n == 0 || n > 16)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!CC(s[i], CC_DIGIT))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > HTTP_MAX_CONTENT_LENGTH)
		return -1;
	*out = v;
	return 0;
}

/* port = 1*5DIGIT up to 65535; RFC 3986 allows an empty port, we do not. */
static int
http_port_valid(const char *s, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!CC(s[i], CC_DIGIT))
			return 0;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535;
}

/*
 * host [ ":" port ], host being an IP-literal of hex digits, colons and dots
 * in brackets, or a name of ALPHA DIGIT - . _ ~ (which covers IPv4). This is
 * narrower than RFC 3986's reg-name, which also allows sub-delims and
 * percent-encoding: no DNS name needs them and a router keyed on Host should
 * never see them. Userinfo ("user@host") is rejected with them.
 */
static int
http_host_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (n > 0 && s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (!CC(s[i], CC_HEX) && s[i] != ':' && s[i] != '.')
				return 0;
		if (i >= n || i < 3)
			return 0;
		i++;
	} else {
		while (i < n && CC(s[i], CC_HOST))
			i++;
		if (i == 0)
			return 0;
	}
	if (i == n)
		return 1;
	return s[i] == ':' && http_port_valid(s + i + 1, n - i - 1);
}

/*
 * Content-Length, Transfer-Encoding and Connection, which decide where this
 * message ends and whether another may follow.
 */
static int
http_framing_get(const struct http_header *h, size_t nh, int minor, struct http_framing *f)
{
	const struct http_header *te = NULL;
	int ncl = 0, closing = 0, ka = 0;

	f->content_length = -1;
	f->chunked = 0;
	for (size_t i = 0; i < nh; i++) {
		if (http_name_is(&h[i], "content-length")) {
			if (ncl++ > 0 ||
			    http_content_length(h[i].value, h[i].value_len, &f->content_length) != 0)
				return HTTP_BAD;
		} else if (http_name_is(&h[i], "transfer-encoding")) {
			if (te != NULL)
				return HTTP_BAD;
			te = &h[i];
		} else if (http_name_is(&h[i], "connection")) {
			closing |= http_token_list_has(h[i].value, h[i].value_len, "close");
			ka |= http_token_list_has(h[i].value, h[i].value_len, "keep-alive");
		}
	}
	f->keep_alive = !closing && (minor == 1 || ka);
	if (te == NULL)
		return HTTP_OK;
	/* RFC 9112 section 6.1: both, or TE on 1.0, means the framing is faulty. */
	if (ncl > 0 || minor == 0)
		return HTTP_BAD;
	if (!http_value_is(te, "chunked"))
		return HTTP_NOT_IMPLEMENTED;
	f->chunked = 1;
	return HTTP_OK;
}

/* Visible ASCII but '#', and every '%' starts a well-formed escape. */
static int
http_target_chars(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!CC(t[i], CC_VCHAR) || t[i] == '#')
			return 0;
		if (t[i] == '%' && (n - i < 3 || !CC(t[i + 1], CC_HEX) || !CC(t[i + 2], CC_HEX)))
			return 0;
	}
	return 1;
}

/* absolute-form: "http://" or "https://", then a valid authority. */
static int
http_target_absolute(const char *t, size_t n)
{
	size_t a, i;

	if (n > 7 && http_ci_eq(t, "http://", 7))
		a = 7;
	else if (n > 8 && http_ci_eq(t, "https://", 8))
		a = 8;
	else
		return HTTP_BAD;
	for (i = a; i < n && t[i] != '/' && t[i] != '?'; i++)
		continue;
	return http_host_valid(t + a, i - a) ? HTTP_OK : HTTP_BAD;
}

static int
http_method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* The four request-target forms of RFC 9112 section 3.2, less authority-form. */
static int
http_target_check(const struct http_request *req)
{
	const char *t = req->target;
	size_t n = req->target_len;

	if (http_method_is(req, "CONNECT"))
		return HTTP_NOT_IMPLEMENTED;
	if (n == 0 || !http_target_chars(t, n))
		return HTTP_BAD;
	if (t[0] == '/')
		return HTTP_OK;
	if (n == 1 && t[0] == '*')
		return http_method_is(req, "OPTIONS") ? HTTP_OK : HTTP_BAD;
	return http_target_absolute(t, n);
}

/* request-line = method SP request-target SP HTTP-version, single SPs only. */
static int
http_request_line(const char *s, size_t n, struct http_request *req)
{
	size_t i = 0;
	int rc;

	while (i < n && CC(s[i], CC_TCHAR))
		i++;
	if (i == 0 || i >= n || s[i] != ' ')
		return HTTP_BAD;
	req->method = s;
	req->method_len = i++;
	req->target = s + i;
	while (i < n && s[i] != ' ')
		i++;
	req->target_len = (size_t)(s + i - req->target);
	if (req->target_len > HTTP_MAX_TARGET)
		return HTTP_URI_TOO_LONG;
	if (i >= n)
		return HTTP_BAD;
	if ((rc = http_version_parse(s + i + 1, n - i - 1, &req->minor)) != HTTP_OK)
		return rc;
	return http_target_check(req);
}

/*
 * An unfinished request-line: answer 414 as soon as the target is known to be
 * too long, rather than 431 once the head limit is reached.
 */
static int
http_request_line_partial(const char *s, size_t n, struct http_request *req)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (http_request_line(s, n, req) == HTTP_URI_TOO_LONG)
		return HTTP_URI_TOO_LONG;
	return HTTP_INCOMPLETE;
}

/* Exactly one valid Host on HTTP/1.1 (RFC 9112 section 3.2), at most one on 1.0. */
static int
http_request_host(struct http_request *req)
{
	int seen = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		if (!http_name_is(&req->headers[i], "host"))
			continue;
		if (seen++ > 0)
			return HTTP_BAD;
		req->host = req->headers[i].value;
		req->host_len = req->headers[i].value_len;
	}
	if (seen == 0)
		return req->minor == 1 ? HTTP_BAD : HTTP_OK;
	return http_host_valid(req->host, req->host_len) ? HTTP_OK : HTTP_BAD;
}

/*
 * Expect: only "100-continue" is defined; anything else gets the 417 RFC 9110
 * section 10.1.1 allows. On HTTP/1.0 the expectation is ignored, as required.
 */
static int
http_request_expect(struct http_request *req)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		if (!http_name_is(&req->headers[i], "expect"))
			continue;
		if (!http_value_is(&req->headers[i], "100-continue"))
			return HTTP_EXPECTATION_FAILED;
		req->expect_continue = req->minor == 1;
	}
	return HTTP_OK;
}

static int
http_request_scan(const char *buf, size_t len, struct http_request *req, size_t *head_len)
{
	struct http_framing f;
	size_t pos = 0, eol;
	int rc;

	/* RFC 9112 section 2.2: ignore at least one empty line; we ignore one. */
	if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
		pos = 2;
	rc = http_line_end(buf, len, pos, &eol);
	if (rc == HTTP_INCOMPLETE)
		return http_request_line_partial(buf + pos, len - pos, req);
	if (rc != HTTP_OK || (rc = http_request_line(buf + pos, eol - pos, req)) != HTTP_OK)
		return rc;
	rc = http_fields_parse(buf, len, eol + 2, req->headers, &req->nheaders, head_len);
	if (rc != HTTP_OK)
		return rc;
	if ((rc = http_framing_get(req->headers, req->nheaders, req->minor, &f)) != HTTP_OK)
		return rc;
	req->content_length = f.content_length;
	req->chunked = f.chunked;
	req->keep_alive = f.keep_alive;
	if ((rc = http_request_host(req)) != HTTP_OK)
		return rc;
	return http_request_expect(req);
}

int
http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req,
    size_t *head_len)
{
	size_t n = len < max_head ? len : max_head;
	int rc;

	memset(req, 0, sizeof(*req));
	req->content_length = -1;
	rc = http_request_scan(buf, n, req, head_len);
	if (rc == HTTP_INCOMPLETE && len >= max_head)
		return HTTP_HEADERS_TOO_LARGE;
	return rc;
}

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] */
static int
http_status_line(const char *s, size_t n, struct http_response *resp)
{
	int rc;

	if (n < 13)
		return HTTP_BAD;
	if ((rc = http_version_parse(s, 8, &resp->minor)) != HTTP_OK)
		return rc;
	if (s[8] != ' ' || s[9] < '1' || s[9] > '5' || !CC(s[10], CC_DIGIT) ||
	    !CC(s[11], CC_DIGIT) || s[12] != ' ')
		return HTTP_BAD;
	resp->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	resp->reason = s + 13;
	resp->reason_len = n - 13;
	for (size_t i = 13; i < n; i++)
		if (!CC(s[i], CC_FIELD))
			return HTTP_BAD;
	return HTTP_OK;
}

static int
http_response_scan(const char *buf, size_t len, struct http_response *resp, size_t *head_len)
{
	struct http_framing f;
	size_t eol;
	int rc;

	if ((rc = http_line_end(buf, len, 0, &eol)) != HTTP_OK)
		return rc;
	if ((rc = http_status_line(buf, eol, resp)) != HTTP_OK)
		return rc;
	rc = http_fields_parse(buf, len, eol + 2, resp->headers, &resp->nheaders, head_len);
	if (rc != HTTP_OK)
		return rc;
	if ((rc = http_framing_get(resp->headers, resp->nheaders, resp->minor, &f)) != HTTP_OK)
		return rc;
	resp->content_length = f.content_length;
	resp->chunked = f.chunked;
	resp->keep_alive = f.keep_alive;
	return HTTP_OK;
}

int
http_parse_response(const char *buf, size_t len, size_t max_head, struct http_response *resp,
    size_t *head_len)
{
	size_t n = len < max_head ? len : max_head;
	int rc;

	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	rc = http_response_scan(buf, n, resp, head_len);
	if (rc == HTTP_INCOMPLETE && len >= max_head)
		return HTTP_HEADERS_TOO_LARGE;
	return rc;
}

const struct http_header *
http_header_find(const struct http_header *headers, size_t nheaders, const char *name)
{
	for (size_t i = 0; i < nheaders; i++)
		if (http_name_is(&headers[i], name))
			return &headers[i];
	return NULL;
}

const struct http_header *
http_header_get(const struct http_request *req, const char *name)
{
	return http_header_find(req->headers, req->nheaders, name);
}

int
http_token_list_has(const char *v, size_t n, const char *token)
{
	size_t tlen = strlen(token), i = 0, s, e;

	while (i <= n) {
		for (s = i; i < n && v[i] != ','; i++)
			continue;
		for (e = i; e > s && CC(v[e - 1], CC_WS); e--)
			continue;
		while (s < e && CC(v[s], CC_WS))
			s++;
		if (e - s == tlen && http_ci_eq(v + s, token, tlen))
			return 1;
		i++;
	}
	return 0;
}

/*
 * Chunked decoder states. The order matters: chunk-line states come first,
 * then the data states, then the trailer states (see http_chunked_step).
 */
enum {
	CH_SIZE_START,  /* first hex digit of chunk-size */
	CH_SIZE,        /* more hex digits, or what ends the size */
	CH_EXT_SEMI,    /* BWS before ";" */
	CH_EXT_NAME0,   /* BWS, then the first character of chunk-ext-name */
	CH_EXT_NAME,    /* rest of chunk-ext-name */
	CH_EXT_EQ,      /* BWS after the name: "=" or ";" */
	CH_EXT_VAL0,    /* BWS, then a token or a quoted-string */
	CH_EXT_TOKEN,   /* token value */
	CH_EXT_QUOTED,  /* inside a quoted-string */
	CH_EXT_ESCAPE,  /* after a backslash in a quoted-string */
	CH_EXT_QEND,    /* after the closing quote */
	CH_SIZE_LF,     /* LF ending the chunk line */
	CH_DATA,        /* chunk data */
	CH_DATA_CR,     /* CR after chunk data */
	CH_DATA_LF,     /* LF after chunk data */
	CH_TR_START,    /* start of a trailer line, or the final CR */
	CH_TR_NAME,     /* trailer field name */
	CH_TR_VALUE,    /* trailer field value */
	CH_TR_LF,       /* LF ending a trailer line */
	CH_TR_END_LF,   /* LF ending the message */
	CH_DONE,
	CH_ERROR,
};

static int
http_hex_value(char ch)
{
	if (CC(ch, CC_DIGIT))
		return ch - '0';
	return http_lower(ch) - 'a' + 10;
}

/* What may end a chunk-size, an ext name or an ext value: BWS ";", ";", CR. */
static int
http_chunked_ext_next(unsigned char ch, int ws_state)
{
	if (CC(ch, CC_WS))
		return ws_state;
	if (ch == ';')
		return CH_EXT_NAME0;
	return ch == '\r' ? CH_SIZE_LF : CH_ERROR;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static int
http_chunked_ext(int state, unsigned char ch)
{
	switch (state) {
	case CH_EXT_SEMI:
		return CC(ch, CC_WS) ? CH_EXT_SEMI : ch == ';' ? CH_EXT_NAME0 : CH_ERROR;
	case CH_EXT_NAME0:
		return CC(ch, CC_WS) ? CH_EXT_NAME0 : CC(ch, CC_TCHAR) ? CH_EXT_NAME : CH_ERROR;
	case CH_EXT_NAME:
		if (CC(ch, CC_TCHAR))
			return CH_EXT_NAME;
		return ch == '=' ? CH_EXT_VAL0 : http_chunked_ext_next(ch, CH_EXT_EQ);
	case CH_EXT_EQ:
		if (CC(ch, CC_WS))
			return CH_EXT_EQ;
		return ch == '=' ? CH_EXT_VAL0 : ch == ';' ? CH_EXT_NAME0 : CH_ERROR;
	case CH_EXT_VAL0:
		if (CC(ch, CC_WS))
			return CH_EXT_VAL0;
		return ch == '"' ? CH_EXT_QUOTED : CC(ch, CC_TCHAR) ? CH_EXT_TOKEN : CH_ERROR;
	case CH_EXT_TOKEN:
		return CC(ch, CC_TCHAR) ? CH_EXT_TOKEN : http_chunked_ext_next(ch, CH_EXT_SEMI);
	case CH_EXT_QUOTED:
		if (ch == '"')
			return CH_EXT_QEND;
		if (ch == '\\')
			return CH_EXT_ESCAPE;
		return CC(ch, CC_FIELD) ? CH_EXT_QUOTED : CH_ERROR;
	case CH_EXT_ESCAPE:
		return CC(ch, CC_FIELD) ? CH_EXT_QUOTED : CH_ERROR;
	case CH_EXT_QEND:
		return http_chunked_ext_next(ch, CH_EXT_SEMI);
	default:
		return CH_ERROR;
	}
}

/* chunk-size and the end of its line; at most 15 hex digits, so no overflow. */
static int
http_chunked_line(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_SIZE_START:
	case CH_SIZE:
		if (!CC(ch, CC_HEX))
			return c->state == CH_SIZE ? http_chunked_ext_next(ch, CH_EXT_SEMI) : CH_ERROR;
		if (++c->digits > 15)
			return CH_ERROR;
		c->remaining = (c->remaining << 4) | (uint64_t)http_hex_value((char)ch);
		return CH_SIZE;
	case CH_SIZE_LF:
		if (ch != '\n')
			return CH_ERROR;
		c->count = 0;
		return c->remaining == 0 ? CH_TR_START : CH_DATA;
	default:
		return http_chunked_ext(c->state, ch);
	}
}

/* The CRLF after chunk data. */
static int
http_chunked_data_end(struct http_chunked *c, unsigned char ch)
{
	if (c->state == CH_DATA_CR)
		return ch == '\r' ? CH_DATA_LF : CH_ERROR;
	if (ch != '\n')
		return CH_ERROR;
	c->count = 0;
	c->digits = 0;
	c->remaining = 0;
	return CH_SIZE_START;
}

/* trailer-section = *( field-line CRLF ) CRLF, checked and thrown away. */
static int
http_chunked_trailer(int state, unsigned char ch)
{
	switch (state) {
	case CH_TR_START:
		return ch == '\r' ? CH_TR_END_LF : CC(ch, CC_TCHAR) ? CH_TR_NAME : CH_ERROR;
	case CH_TR_NAME:
		return CC(ch, CC_TCHAR) ? CH_TR_NAME : ch == ':' ? CH_TR_VALUE : CH_ERROR;
	case CH_TR_VALUE:
		return CC(ch, CC_FIELD) ? CH_TR_VALUE : ch == '\r' ? CH_TR_LF : CH_ERROR;
	case CH_TR_LF:
		return ch == '\n' ? CH_TR_START : CH_ERROR;
	case CH_TR_END_LF:
		return ch == '\n' ? CH_DONE : CH_ERROR;
	default:
		return CH_ERROR;
	}
}

/* One byte outside chunk data, with the line and trailer bounds applied. */
static int
http_chunked_step(struct http_chunked *c, unsigned char ch)
{
	if (c->state <= CH_SIZE_LF) {
		if (++c->count > HTTP_MAX_CHUNK_LINE)
			return CH_ERROR;
		return http_chunked_line(c, ch);
	}
	if (c->state >= CH_TR_START) {
		if (++c->count > HTTP_MAX_TRAILERS)
			return CH_ERROR;
		return http_chunked_trailer(c->state, ch);
	}
	return http_chunked_data_end(c, ch);
}

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE_START;
}

int
http_chunked_decode(struct http_chunked *c, const char *in, size_t inlen, size_t *consumed,
    char *out, size_t outcap, size_t *outlen)
{
	size_t i = 0, o = 0, k;

	while (i < inlen && c->state != CH_DONE && c->state != CH_ERROR) {
		if (c->state != CH_DATA) {
			c->state = http_chunked_step(c, (unsigned char)in[i++]);
			continue;
		}
		k = inlen - i < outcap - o ? inlen - i : outcap - o;
		if (k > c->remaining)
			k = (size_t)c->remaining;
		if (k == 0)
			break;
		memmove(out + o, in + i, k);
		i += k;
		o += k;
		c->remaining -= k;
		if (c->remaining == 0)
			c->state = CH_DATA_CR;
	}
	*consumed = i;
	*outlen = o;
	if (c->state == CH_ERROR)
		return HTTP_BAD;
	return c->state == CH_DONE ? HTTP_OK : HTTP_INCOMPLETE;
}

const char *
http_reason(int status)
{
	static const struct {
		int status;
		const char *reason;
	} reasons[] = {
	    {100, "Continue"}, {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"},
	    {202, "Accepted"}, {204, "No Content"}, {206, "Partial Content"},
	    {301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"},
	    {304, "Not Modified"}, {307, "Temporary Redirect"}, {308, "Permanent Redirect"},
	    {400, "Bad Request"}, {401, "Unauthorized"}, {402, "Payment Required"},
	    {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
	    {406, "Not Acceptable"}, {408, "Request Timeout"}, {409, "Conflict"},
	    {410, "Gone"}, {411, "Length Required"}, {412, "Precondition Failed"},
	    {413, "Content Too Large"}, {414, "URI Too Long"}, {415, "Unsupported Media Type"},
	    {416, "Range Not Satisfiable"}, {417, "Expectation Failed"},
	    {421, "Misdirected Request"}, {422, "Unprocessable Content"},
	    {426, "Upgrade Required"}, {428, "Precondition Required"},
	    {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
	    {451, "Unavailable For Legal Reasons"}, {500, "Internal Server Error"},
	    {501, "Not Implemented"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
	    {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
	};

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

/*
 * A bounded output buffer that keeps counting past its end, so a writer can
 * be run once with p == NULL to learn a length, and overflow is one check.
 */
struct http_out {
	char *p;
	size_t cap;
	size_t len;
};

static void
http_out_put(struct http_out *o, const char *s, size_t n)
{
	if (o->p != NULL && o->len <= o->cap && n <= o->cap - o->len)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
http_out_str(struct http_out *o, const char *s)
{
	http_out_put(o, s, strlen(s));
}

static int
http_out_end(const struct http_out *o)
{
	return o->len <= o->cap && o->len <= INT_MAX ? (int)o->len : -1;
}

/* IMF-fixdate (RFC 9110 section 5.6.7), with our own names: no locale. */
static void
http_out_date(struct http_out *o)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;
	char line[128];
	int n;

	/* A server without a usable clock must leave Date out (RFC 9110 6.6.1). */
	if (now == (time_t)-1 || gmtime_r(&now, &tm) == NULL)
		return;
	n = snprintf(line, sizeof(line), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n > 0 && (size_t)n < sizeof(line))
		http_out_put(o, line, (size_t)n);
}

/* Framing: none for 1xx, 204 and 304 (RFC 9110 sections 8.6, 15.3.5, 15.4.5). */
static void
http_out_framing(struct http_out *o, int status, int64_t content_length)
{
	char line[64];
	int n;

	if (status < 200 || status == 204 || status == 304)
		return;
	if (content_length < 0) {
		http_out_str(o, "Transfer-Encoding: chunked\r\n");
		return;
	}
	n = snprintf(line, sizeof(line), "Content-Length: %" PRId64 "\r\n", content_length);
	if (n > 0 && (size_t)n < sizeof(line))
		http_out_put(o, line, (size_t)n);
}

/*
 * Caller-supplied header lines go through the same field parser as
 * requests: a value carrying CR or LF cannot add a line or end the head.
 */
static int
http_extra_valid(const char *s)
{
	struct http_header h;
	size_t len, pos = 0, eol;

	if (s == NULL)
		return 1;
	len = strlen(s);
	while (pos < len) {
		if (http_line_end(s, len, pos, &eol) != HTTP_OK || eol == pos)
			return 0;
		if (http_field_parse(s + pos, eol - pos, &h) != HTTP_OK)
			return 0;
		if (http_name_is(&h, "content-length") || http_name_is(&h, "transfer-encoding") ||
		    http_name_is(&h, "date"))
			return 0;
		pos = eol + 2;
	}
	return 1;
}

static int
http_ctype_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return 1;
	n = strlen(s);
	if (n == 0 || CC(s[0], CC_WS) || CC(s[n - 1], CC_WS))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!CC(s[i], CC_VCHAR | CC_WS))
			return 0;
	return 1;
}

int
http_write_head(char *buf, size_t cap, int status, const char *extra_headers,
    const char *content_type, int64_t content_length, int keep_alive)
{
	struct http_out o = {buf, cap, 0};
	char line[64];
	int n;

	if (status < 100 || status > 599 || !http_extra_valid(extra_headers) ||
	    !http_ctype_valid(content_type))
		return -1;
	n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return -1;
	http_out_put(&o, line, (size_t)n);
	http_out_str(&o, http_reason(status));
	http_out_str(&o, "\r\n");
	http_out_date(&o);
	if (content_type != NULL) {
		http_out_str(&o, "Content-Type: ");
		http_out_str(&o, content_type);
		http_out_str(&o, "\r\n");
	}
	http_out_framing(&o, status, content_length);
	if (!keep_alive)
		http_out_str(&o, "Connection: close\r\n");
	if (extra_headers != NULL)
		http_out_str(&o, extra_headers);
	http_out_str(&o, "\r\n");
	return http_out_end(&o);
}

/* One ASCII byte of a JSON string (RFC 8259 section 7). */
static void
http_json_ascii(struct http_out *o, unsigned char ch)
{
	char esc[8];

	switch (ch) {
	case '"':
		http_out_str(o, "\\\"");
		return;
	case '\\':
		http_out_str(o, "\\\\");
		return;
	case '\n':
		http_out_str(o, "\\n");
		return;
	case '\r':
		http_out_str(o, "\\r");
		return;
	case '\t':
		http_out_str(o, "\\t");
		return;
	default:
		break;
	}
	if (ch < 0x20 || ch == 0x7f) {
		snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)ch);
		http_out_put(o, esc, 6);
		return;
	}
	http_out_put(o, (const char *)&ch, 1);
}

/* A quoted JSON string; ill-formed UTF-8 becomes U+FFFD, byte by byte. */
static void
http_json_string(struct http_out *o, const char *s)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t n = strlen(s), i = 0, k;
	uint32_t cp;

	http_out_str(o, "\"");
	while (i < n) {
		if (u[i] < 0x80) {
			http_json_ascii(o, u[i++]);
			continue;
		}
		k = utf8_next(u + i, n - i, &cp);
		if (k == 0) {
			http_out_str(o, "\\ufffd");
			i++;
		} else {
			http_out_put(o, s + i, k);
			i += k;
		}
	}
	http_out_str(o, "\"");
}

static void
http_problem_body(struct http_out *o, int status, const char *type_uri, const char *title,
    const char *detail)
{
	char num[32];
	int n;

	http_out_str(o, "{\"type\":");
	http_json_string(o, type_uri != NULL ? type_uri : "about:blank");
	http_out_str(o, ",\"title\":");
	http_json_string(o, title != NULL ? title : http_reason(status));
	n = snprintf(num, sizeof(num), ",\"status\":%d", status);
	if (n > 0 && (size_t)n < sizeof(num))
		http_out_put(o, num, (size_t)n);
	if (detail != NULL) {
		http_out_str(o, ",\"detail\":");
		http_json_string(o, detail);
	}
	http_out_str(o, "}");
}

int
http_write_problem(char *buf, size_t cap, int status, const char *type_uri, const char *title,
    const char *detail, const char *extra_headers, int keep_alive)
{
	struct http_out body = {NULL, 0, 0};
	int head;

	/* Problem details describe errors; a 1xx, 204 or 304 could not carry one. */
	if (status < 400 || status > 599)
		return -1;
	http_problem_body(&body, status, type_uri, title, detail);
	head = http_write_head(buf, cap, status, extra_headers, "application/problem+json",
	    (int64_t)body.len, keep_alive);
	if (head < 0)
		return -1;
	body.p = buf + head;
	body.cap = cap - (size_t)head;
	body.len = 0;
	http_problem_body(&body, status, type_uri, title, detail);
	if (http_out_end(&body) < 0 || body.len > (size_t)(INT_MAX - head))
		return -1;
	return head + (int)body.len;
}

int
http_chunk_write_head(char *buf, size_t cap, size_t n)
{
	char line[32];
	int len;

	len = snprintf(line, sizeof(line), "%zx\r\n", n);
	if (len <= 0 || (size_t)len >= sizeof(line) || (size_t)len > cap)
		return -1;
	memcpy(buf, line, (size_t)len);
	return len;
}
