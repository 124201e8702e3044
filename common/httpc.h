/*
 * httpc.h — outbound HTTP(S) POSTs on a libuv loop (libcurl multi): what
 * payments uses to reach payment processors and platform-api to deliver
 * webhooks.
 *
 * One struct httpc per loop. httpc_post starts a call and returns at once;
 * its done() runs exactly once, later, from the loop, with the status and
 * the response body (at most HTTPC_BODY_MAX bytes), or a transport error.
 *
 * Security stance: only http and https, redirects never followed (a 3xx is
 * handed back as it is), certificates always verified. Response bodies are
 * untrusted bytes for the caller to parse. Nothing here logs a URL, a
 * header or a body: headers may carry credentials and a URL a token. A
 * caller that posts to addresses it does not control (a seller's webhook
 * endpoint) sets allow, which sees every address libcurl is about to
 * connect to, after DNS, so a name that resolves to an internal address,
 * or is made to resolve there later, is refused all the same.
 */
#ifndef CN2_HTTPC_H
#define CN2_HTTPC_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

/* The most response body a call keeps; a longer body fails the call (HTTPC_FAILED). */
#define HTTPC_BODY_MAX 65536

enum { HTTPC_OK = 0, HTTPC_FAILED = 1, HTTPC_TIMEOUT = 2 };

/*
 * Whether a connection to sa may be made: nonzero allows it. Called from
 * inside libcurl, on the loop, once for each address tried.
 */
typedef int (*httpc_allow_fn)(const struct sockaddr *sa, socklen_t len, void *arg);

struct httpc_req {
	const char *url;
	const char *const *headers; /* "Name: value", NULL-terminated */
	const char *body;           /* NUL-terminated, copied and wiped after; NULL: empty */
	const char *cainfo;         /* PEM file to trust instead of the system's; NULL */
	long timeout_ms;            /* the whole call, connecting included */
	httpc_allow_fn allow;       /* NULL: any address (and the environment's proxy) */
	void *allow_arg;
};

struct httpc_result {
	int error;        /* HTTPC_*: transport failure, refused address, body too long, timeout */
	long status;      /* 0 when nothing was answered */
	const char *body; /* valid during the callback; NUL-terminated */
	size_t bodylen;
	const char *head; /* the final response's header block, bounded; same lifetime */
};

typedef void (*httpc_fn)(void *arg, const struct httpc_result *r);

struct httpc;

/* A client on loop; NULL with err filled. Free with httpc_free. */
struct httpc *httpc_new(uv_loop_t *loop, char *err, size_t errlen);
/*
 * Start a POST; done is called once, from the loop (never from inside this
 * call). 0, or -1 (out of memory, a bad option) with done never called.
 */
int httpc_post(struct httpc *h, const struct httpc_req *req, httpc_fn done, void *arg);
/* End every call now, each done() seeing HTTPC_FAILED. */
void httpc_cancel_all(struct httpc *h);
/* Cancel what is pending and free; the loop must run once more to close h's timer. */
void httpc_free(struct httpc *h);
size_t httpc_pending(const struct httpc *h);

/*
 * An allow check for addresses on the public internet only: refuses
 * loopback, private (RFC 1918, fc00::/7), link-local, CGNAT (100.64/10),
 * unspecified, "this network" (0/8), multicast, reserved and broadcast
 * (240/4), and those IPv4 addresses in IPv6 dress (mapped, compatible,
 * NAT64). arg is unused.
 */
int httpc_public_only(const struct sockaddr *sa, socklen_t len, void *arg);

#endif
