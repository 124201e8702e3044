/*
 * ipc.h — cn2's daemons talking to each other: framed messages (ipc_msg.h)
 * over nng ipc:// streams, driven from the daemon's libuv loop.
 *
 * Connections are directional. A daemon listens on ipc://<runtime_dir>/<self>.sock
 * for the roles its peer table lets in, and dials the daemons it depends on.
 * The dialling side sends requests; the listening side answers them, with one
 * or more replies that echo the request id, the last one flagged IPC_MF_FINAL
 * in the catalogue. The dialler may also send IPC_MF_INFLIGHT messages about a
 * request it has open (flow control, cancellation).
 *
 * Security stance: the listener checks the peer's Unix uid (from the kernel,
 * SO_PEERCRED via nng) against the uid configured for the role the peer claims
 * in its HELLO, and lets each role send only the message types its peer rule
 * names. A malformed frame, a wrong version, a type the role may not send or
 * an unsolicited reply closes that connection, is logged once, and nothing
 * else: the daemon keeps serving its other peers.
 *
 * Threads: nng completes its I/O on its own threads. Those callbacks only
 * queue the completion and wake the loop (uv_async); every other line here,
 * and every callback into the daemon, runs on the loop thread.
 */
#ifndef CN2_IPC_H
#define CN2_IPC_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/ipc_msg.h"

struct ipc;

/* Which message types a role may send to us (requests and in-flight messages). */
struct ipc_peer_rule {
	enum ipc_role role;
	const uint16_t *types;
	size_t ntypes;
};

/* Where a request came from; copy it to answer later (the connection may be gone by then). */
struct ipc_req {
	uint64_t conn; /* connection id, never reused */
	uint64_t id;   /* request id chosen by the peer */
	enum ipc_role from;
};

/*
 * A request or in-flight message arrived. msg is a decoded union ipc_any of
 * the given type; byte strings in it are valid until the callback returns.
 */
typedef void (*ipc_request_fn)(void *arg, const struct ipc_req *req, uint16_t type,
    const union ipc_any *msg);

/*
 * A reply to one of our requests. status is 0 with a reply (called once per
 * reply until a final one), or an enum ipc_error_code with type 0 and msg NULL
 * when no reply will come (connection closed, timeout).
 */
typedef void (*ipc_reply_fn)(void *arg, int status, uint16_t type, const union ipc_any *msg);

struct ipc_config {
	uv_loop_t *loop;
	enum ipc_role self;
	const char *runtime_dir;
	const struct ipc_peer_rule *accept; /* roles that may dial us; naccept 0: do not listen */
	size_t naccept;
	const enum ipc_role *dial; /* roles we dial */
	size_t ndial;
	uid_t role_uid[ROLE_MAX]; /* expected uid of each role that may dial us */
	ipc_request_fn on_request;
	void (*on_link)(void *arg, enum ipc_role peer, int up); /* a dialled peer went up/down; may be NULL */
	void *arg;
};

/* Bind the listener and start dialling. NULL with a reason in err on failure. */
struct ipc *ipc_start(const struct ipc_config *cfg, char *err, size_t errlen);
/* Close every connection, fail every open request (IPC_ERR_CLOSED), free. */
void ipc_stop(struct ipc *ipc);

/*
 * Send a request to a dialled peer. Returns the request id (> 0), or 0 when
 * the peer is not connected or msg is out of bounds (cb is then not called).
 * timeout_ms 0 means no timeout; the timer restarts at each reply received.
 */
uint64_t ipc_request(struct ipc *ipc, enum ipc_role to, uint16_t type, const void *msg,
    uint32_t timeout_ms, ipc_reply_fn cb, void *arg);
/* Forget an open request: cb will not be called again. */
void ipc_forget(struct ipc *ipc, uint64_t id);
/* Send an IPC_MF_INFLIGHT message about open request id. 0, or -1 if gone. */
int ipc_send_inflight(struct ipc *ipc, uint64_t id, uint16_t type, const void *msg);

/* Answer a request. 0, or -1 if the connection is gone or msg out of bounds. */
int ipc_reply(struct ipc *ipc, const struct ipc_req *req, uint16_t type, const void *msg);
int ipc_reply_error(struct ipc *ipc, const struct ipc_req *req, int code, const char *detail);
/* Answer with an IPC_PROBLEM the edge passes to the client (status 400..599). */
int ipc_reply_problem(struct ipc *ipc, const struct ipc_req *req, uint16_t status,
    const char *name, const char *detail);

/* Bytes queued for sending on the request's connection (for back-pressure). */
size_t ipc_queued(struct ipc *ipc, const struct ipc_req *req);

int ipc_link_up(struct ipc *ipc, enum ipc_role peer);
uint32_t ipc_links(struct ipc *ipc);  /* bit (1 << role) per connected dialled peer */
uint32_t ipc_wanted(struct ipc *ipc); /* bit (1 << role) per dialled peer */
size_t ipc_open_requests(struct ipc *ipc);

/* The socket path of a role in a runtime directory: 0, or -1 if too long. */
int ipc_path(const char *runtime_dir, enum ipc_role role, char *buf, size_t cap);

#endif
