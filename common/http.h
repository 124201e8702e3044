/*
 * http.h — strict HTTP/1.1 message parsing (RFC 9112, RFC 9110) and the few
 * response writers the edge and the demo upstream share.
 *
 * Security stance: these parsers read bytes straight from the internet, so
 * they follow RFC 9112's framing rules to the letter and reject, rather than
 * repair, anything ambiguous: bare LF or bare CR, obs-fold, whitespace before
 * a colon, conflicting or duplicated Content-Length, Content-Length together
 * with Transfer-Encoding, any transfer coding but "chunked". Two parsers that
 * disagree about where a message ends are how request smuggling works; being
 * the stricter one keeps cn2 out of that game.
 *
 * Nothing here allocates or copies. The parsers are incremental in the
 * simplest way: call again with the same buffer grown by the bytes that have
 * since arrived; a head is re-read from its start each time, which is cheap
 * because max_head bounds it. Parsed fields point into the caller's buffer
 * and are valid as long as that buffer is, unchanged.
 */
#ifndef CN2_HTTP_H
#define CN2_HTTP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parser results. HTTP_OK and HTTP_INCOMPLETE are outcomes; every other value
 * is the status code the server should answer with before closing.
 */
enum http_result {
	HTTP_OK = 0,                      /* a complete, valid message part */
	HTTP_INCOMPLETE = 1,              /* need more bytes (or more output room) */
	HTTP_BAD = 400,                   /* malformed */
	HTTP_URI_TOO_LONG = 414,          /* request-target over HTTP_MAX_TARGET */
	HTTP_EXPECTATION_FAILED = 417,    /* Expect other than 100-continue */
	HTTP_HEADERS_TOO_LARGE = 431,     /* head over max_head, or too many fields */
	HTTP_NOT_IMPLEMENTED = 501,       /* CONNECT, a transfer coding other than chunked */
	HTTP_VERSION_NOT_SUPPORTED = 505, /* anything but HTTP/1.0 and HTTP/1.1 */
};

#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_TARGET 8192
/* Largest Content-Length accepted: 2^53, so it survives a trip through JSON. */
#define HTTP_MAX_CONTENT_LENGTH (INT64_C(1) << 53)
/* Bounds of the chunked decoder: one chunk-size line, the whole trailer section. */
#define HTTP_MAX_CHUNK_LINE 4096
#define HTTP_MAX_TRAILERS 8192

/* One field line; name and value point into the parsed buffer, OWS trimmed. */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct http_request {
	const char *method;
	size_t method_len;
	const char *target; /* origin-form, "*", or absolute-form http(s)://... */
	size_t target_len;
	int minor; /* 0 or 1: HTTP/1.<minor> */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;
	int64_t content_length; /* -1 if no Content-Length field */
	int chunked;            /* Transfer-Encoding: chunked */
	int keep_alive;         /* the connection may carry another request */
	const char *host;       /* the Host field value, NULL if absent (HTTP/1.0) */
	size_t host_len;
	int expect_continue; /* Expect: 100-continue on an HTTP/1.1 request */
};

/*
 * Parse a request head from buf[0..len). Returns HTTP_OK with *head_len set
 * to the head's length (through the final CRLF CRLF; the body starts there),
 * HTTP_INCOMPLETE, or an error status:
 *   400  malformed request-line or field; bare CR or LF; obs-fold; a missing,
 *        duplicated or invalid Host; a bad, signed, listed or repeated
 *        Content-Length (identical repeats too); Content-Length with
 *        Transfer-Encoding; Transfer-Encoding on HTTP/1.0; more than one
 *        Transfer-Encoding field; authority-form; "*" other than for OPTIONS
 *   414  request-target longer than HTTP_MAX_TARGET
 *   417  an Expect value other than "100-continue"
 *   431  head longer than max_head, or more than HTTP_MAX_HEADERS fields
 *   501  CONNECT; Transfer-Encoding other than exactly "chunked"
 *   505  an HTTP version other than 1.0 and 1.1
 * One empty line (CRLF) before the request-line is skipped, as RFC 9112
 * section 2.2 asks; a second one is an error. An empty Host is invalid,
 * though RFC 9112 tolerates one for targets without an authority. The
 * request-target is visible ASCII without '#', and each '%' must start a
 * two-hex-digit escape. Errors in complete lines are reported as soon as
 * those lines arrive, before the head is complete.
 * The method is any token: which methods to serve is the caller's choice,
 * and so is what to do with an absolute-form target. *req is overwritten on
 * every call; its pointers point into buf.
 */
int http_parse_request(const char *buf, size_t len, size_t max_head,
    struct http_request *req, size_t *head_len);

struct http_response {
	int minor;
	int status; /* 100..599 */
	const char *reason;
	size_t reason_len;
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;
	int64_t content_length; /* -1 if no Content-Length field */
	int chunked;
	int keep_alive;
};

/*
 * Parse a response head; the same contract and field rules as
 * http_parse_request, minus what only requests have (Host, Expect, the
 * request-line). The status-line must have the SP after the status code even
 * when the reason is empty. Interim (1xx) responses are returned like any
 * other: parse again after them. Whether a body follows (HEAD, 1xx, 204,
 * 304) is for the caller to decide; without Content-Length or chunked, the
 * body runs until the connection closes.
 */
int http_parse_response(const char *buf, size_t len, size_t max_head,
    struct http_response *resp, size_t *head_len);

/* The request's first field named name (case-insensitive), or NULL. */
const struct http_header *http_header_get(const struct http_request *req,
    const char *name);
/* The same over any field array (a response's, say). */
const struct http_header *http_header_find(const struct http_header *headers,
    size_t nheaders, const char *name);

/*
 * 1 if the comma-separated list v[0..n) (RFC 9110 section 5.6.1, OWS around
 * elements, empty elements allowed) has an element equal to token,
 * case-insensitively; 0 if not.
 */
int http_token_list_has(const char *v, size_t n, const char *token);

/*
 * Incremental chunked body decoder (RFC 9112 section 7.1). The fields are
 * private; the struct exists so callers can embed it without allocation.
 */
struct http_chunked {
	int state;
	uint64_t remaining; /* data bytes left in this chunk, or the size being read */
	size_t count;       /* bytes of this chunk line, or of the trailer section */
	unsigned digits;    /* hex digits read so far in this chunk-size */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Decode from in[0..inlen) into out[0..outcap). Sets *consumed to the input
 * bytes used and *outlen to the data bytes written by this call. Returns
 *   HTTP_INCOMPLETE  all input used, or out is full: call again
 *   HTTP_OK          last chunk and trailer section read; in + *consumed is
 *                    where the next message starts
 *   HTTP_BAD         malformed; the decoder stays failed
 * A chunk-size has at most 15 hex digits (leading zeros count); chunk extensions must follow the
 * RFC grammar and are then ignored; a chunk line may be HTTP_MAX_CHUNK_LINE
 * bytes; trailer fields follow the field rules of the head parser, are
 * limited to HTTP_MAX_TRAILERS bytes in all, and are discarded. out may be
 * the same pointer as in for decoding in place (data only ever moves toward
 * the front); otherwise the two must not overlap. A caller that passes
 * outcap 0 in the middle of a chunk gets HTTP_INCOMPLETE with nothing done.
 */
int http_chunked_decode(struct http_chunked *c, const char *in, size_t inlen,
    size_t *consumed, char *out, size_t outcap, size_t *outlen);

/* The reason phrase for status ("Payment Required"); "Unknown" if we have none. */
const char *http_reason(int status);

/*
 * Write an HTTP/1.1 response head into buf[0..cap): status-line, Date,
 * Content-Type (unless content_type is NULL), framing, "Connection: close"
 * unless keep_alive, extra_headers verbatim, then the empty line. Framing is
 * Content-Length when content_length >= 0, else "Transfer-Encoding: chunked"
 * (so answer an HTTP/1.0 client with a length); 1xx, 204 and 304 responses
 * get neither. extra_headers is NULL or complete "Name: value\r\n" lines; it
 * must not carry Content-Length, Transfer-Encoding or Date, which are ours.
 * Returns the length written (no NUL is added), or -1 if it does not fit, if
 * status is outside 100..599, or if a header or content type is malformed
 * (this is what stops a CR LF smuggled into a value from splitting a response).
 */
int http_write_head(char *buf, size_t cap, int status, const char *extra_headers,
    const char *content_type, int64_t content_length, int keep_alive);

/*
 * Write a complete RFC 9457 application/problem+json response (head and
 * body) into buf[0..cap): {"type","title","status","detail"}. type_uri NULL
 * means "about:blank", title NULL means http_reason(status), detail NULL
 * leaves "detail" out. Strings are JSON-escaped; bytes that are not valid
 * UTF-8 become U+FFFD. Returns the total length or -1 as http_write_head.
 */
int http_write_problem(char *buf, size_t cap, int status, const char *type_uri,
    const char *title, const char *detail, const char *extra_headers, int keep_alive);

/*
 * Write a chunk-size line "<hex n>\r\n". The last chunk is n = 0 followed by
 * the empty line "\r\n" the caller adds. Returns the length or -1.
 */
int http_chunk_write_head(char *buf, size_t cap, size_t n);

#endif
