/*
 * harness.h — scenario tests: the real daemons, each in its own process, on
 * a temporary directory laid out by `cn2 init`, driven over real sockets.
 *
 * The binaries are found beside the test program's build directory
 * (<build>/bin), so `make test` and `make asan` each test what they built.
 */
#ifndef CN2_TEST_HARNESS_H
#define CN2_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#define H_MAX_DAEMONS 8

struct h_env {
	char dir[256];	  /* the state directory (cn2 init --dir) */
	char bindir[256]; /* <build>/bin */
	char logpath[300];/* every daemon's stderr, appended */
	int http_port, https_port, demo_port;
	pid_t pid[H_MAX_DAEMONS]; /* by index in h_daemons */
	pid_t demo_pid;
};

extern const char *const h_daemons[]; /* edge, payments, router, vault, ledger, platform */
extern const size_t h_ndaemons;

/* mkdtemp, free ports, `cn2 init`, extra edge configuration lines (or NULL). 0 or -1. */
int h_init(struct h_env *e, const char *edge_extra);
/* Start every daemon and wait until each said READY=1. 0 or -1. */
int h_up(struct h_env *e);
/*
 * Stop everything (TERM, then KILL after 5 s) and remove the directory.
 * Returns 0, or -1 if a daemon did not exit 0 on SIGTERM or the daemons' log
 * holds a sanitizer report (the directory is then kept for a look).
 */
int h_down(struct h_env *e);

int h_start(struct h_env *e, const char *name); /* start one, wait for READY=1 */
int h_signal(struct h_env *e, const char *name, int sig); /* send sig, reap it */
pid_t h_pid(struct h_env *e, const char *name);

struct h_resp {
	long status;
	char *body; /* NUL-terminated, caller frees (h_resp_free) */
	size_t len;
	char *headers; /* raw header block of the final response */
	int curl_code;	/* CURLcode; 0 on success */
};
void h_resp_free(struct h_resp *r);

/*
 * An HTTP request through libcurl. url may start with "/" to mean the edge's
 * plain port on 127.0.0.1; https URLs are verified against the directory's
 * certificate and resolve *.localhost to 127.0.0.1. headers: NULL-terminated.
 */
int h_http(struct h_env *e, const char *method, const char *url, const char *const *headers,
    const char *body, size_t bodylen, struct h_resp *r);

/* Poll GET /healthz until its status is want, for at most ms. 0 or -1. */
int h_wait_health(struct h_env *e, long want, int ms);

/* Send raw bytes to the edge's plain port and read until close (or 3 s). Caller frees. */
char *h_raw(struct h_env *e, const char *req, size_t len, size_t *outlen);

/* Does the log of every daemon contain s? */
int h_log_contains(struct h_env *e, const char *s);


/*
 * Talking to a daemon over IPC as one of its peers (tests only): a private
 * libuv loop and a struct ipc that dials the given roles.
 */
#include <uv.h>

#include "common/ipc.h"

struct h_ipc {
	uv_loop_t loop;
	struct ipc *ipc;
};

/* A reply, re-encoded into a frame this struct owns so byte strings stay valid. */
struct h_reply {
	int status;    /* 0, or an enum ipc_error_code when no reply came */
	uint16_t type; /* 0 when status != 0 */
	uint8_t *frame;
	union ipc_any msg;
};

int h_ipc_open(struct h_env *e, struct h_ipc *h, enum ipc_role self, const enum ipc_role *dial,
    size_t ndial);
void h_ipc_close(struct h_ipc *h);
int h_ipc_wait_link(struct h_ipc *h, enum ipc_role peer, int ms);
/* Send a request and collect every reply until the final one (or timeout). Returns the count. */
size_t h_ipc_call(struct h_ipc *h, enum ipc_role to, uint16_t type, const void *msg,
    struct h_reply *out, size_t max, int timeout_ms);
void h_replies_free(struct h_reply *r, size_t n);

/* Start the demo upstream (cn2-demo-upstream) on e->demo_port with the directory's demo key. */
int h_start_demo(struct h_env *e);
/* Read a file under the state directory (e.g. "secrets/test.key"). Caller frees. */
char *h_read(struct h_env *e, const char *rel, size_t *len);

#endif

/*
 * A loopback fake of a payment processor (tests/fakes/fake.mjs, run by
 * node): service "lnd", "stripe" or "tempo", on port, with extra arguments
 * (NULL-terminated). Waits until it accepts connections. Its pid, or -1.
 * Stop it with h_stop_fake.
 */
pid_t h_start_fake(struct h_env *e, const char *service, int port, const char *const *extra);
/*
 * A Node fake other than fake.mjs: `node tests/fakes/<script> --port port
 * <extra…>` (extra NULL-terminated, at most 16), its stdout discarded and its
 * stderr in the daemons' log. Waits until it accepts connections. Its pid,
 * or -1; stop it with h_stop_fake.
 */
pid_t h_start_node_fake(struct h_env *e, const char *script, int port,
    const char *const *extra);
void h_stop_fake(pid_t pid);
/* A free loopback TCP port. */
int h_free_port(void);

/*
 * An echo upstream (tests/scenario/echo.c, a forked child on 127.0.0.1:port):
 * each request is answered 200 application/json {"head": "<request line and
 * header lines as received>", "body": <bytes of body>} and the connection
 * closed; a path containing "/slow-sse" is answered with an event stream of
 * ten events 150 ms apart, each naming the Authorization the request
 * carried, and one containing "/big-sse" with 16 MiB of events as fast as
 * the reader takes them. Its pid (stop it with h_stop_fake), or -1. It forks
 * and then starts threads: call it before the test process has threads of
 * its own (before h_ipc_open), as a child of a threaded parent may deadlock.
 */
pid_t h_echo_start(int port);
/* `cn2 keys add` (sealed locally) for seller: key in keyfile (a path), price in USD. 0 or -1. */
int h_keys_add(struct h_env *e, const char *seller, const char *provider, const char *keyfile,
    const char *price);

/* "Authorization: Bearer <JWT>" for seller, signed with the directory's JWT secret. 0 or -1. */
int h_bearer(struct h_env *e, const char *seller, char *out, size_t cap);
/* Append text (whole "key = value" lines) to etc/<daemon>.conf before it starts. 0 or -1. */
int h_conf_append(struct h_env *e, const char *daemon, const char *text);
/*
 * Start the demo upstream accepting n keys (1..8): key 0 is secrets/demo.key,
 * key i > 0 a new secrets/demo<i>.key (64 random hex digits, mode 0600).
 * Per-key failures and counts: see tests/demo/upstream.c. 0 or -1.
 */
int h_start_demo_keys(struct h_env *e, int n);
/*
 * The first column of the first row of sql in the database of daemon
 * ("router": db/router.db), read while the daemon runs (WAL); -1 if there is
 * no row or the query fails.
 */
long long h_db_int(struct h_env *e, const char *daemon, const char *sql);

/* Monotonic milliseconds. */
int64_t h_now_ms(void);
/* POST json to the demo upstream's /_demo/control; 0 when it answered 200. */
int h_demo_control(struct h_env *e, const char *json);
/*
 * A fake daemon in the test process: listen as self on the state
 * directory's runtime dir, on loop, letting the roles in rules send the
 * types they list (uids: this process's); each request goes to cb. NULL on
 * failure. Stop it with ipc_stop.
 */
struct ipc *h_ipc_listen(struct h_env *e, uv_loop_t *loop, enum ipc_role self,
    const struct ipc_peer_rule *rules, size_t nrules, ipc_request_fn cb, void *arg);
/*
 * Pay for one request as a buyer with the test method: POST body to url
 * (as h_http; extra header lines in headers, NULL-terminated, may be NULL),
 * expect 402, and write "Authorization: Payment …" for its first challenge
 * into out[0..cap). 0, or -1 (no 402, or no usable challenge).
 */
int h_pay_header(struct h_env *e, const char *url, const char *const *headers,
    const char *body, char *out, size_t cap);
/*
 * Edit the state directory's provider catalogue (etc/providers.json, which
 * the edge and the vault read at start): edit gets its "providers" object.
 * 0, or -1 if the file cannot be read or written.
 */
struct cJSON;
int h_catalogue_edit(struct h_env *e, void (*edit)(struct cJSON *providers, void *arg),
    void *arg);
