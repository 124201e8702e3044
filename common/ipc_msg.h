/*
 * ipc_msg.h — the one catalogue of messages cn2 daemons exchange, and its
 * strict codec.
 *
 * A frame is a 16-byte header followed by the payload:
 *
 *	u32 len    whole frame, header included, IPC_HDR_LEN..IPC_MAX_FRAME
 *	u16 type   an enum ipc_type with an entry in the catalogue
 *	u16 flags  must be 0
 *	u64 id     request id; a reply echoes the id of its request
 *
 * All integers are little-endian. A payload is the message's fields in
 * catalogue order: integers at their width, strings as u16 length + bytes
 * (no NUL), byte strings as u32 length + bytes. Every field has bounds. The
 * decoder rejects a frame unless every field is in bounds and the last field
 * ends exactly at the end of the frame.
 *
 * Bumping IPC_VERSION is required whenever a message changes shape; the
 * HELLO exchange refuses peers of another version.
 */
#ifndef CN2_IPC_MSG_H
#define CN2_IPC_MSG_H

#include <stddef.h>
#include <stdint.h>

#define IPC_VERSION 1
#define IPC_HDR_LEN 16
#define IPC_MAX_FRAME (4u << 20)

/* Who is at the other end of a connection. */
enum ipc_role {
	ROLE_NONE = 0,
	ROLE_EDGE,
	ROLE_PAYMENTS,
	ROLE_ROUTER,
	ROLE_VAULT,
	ROLE_LEDGER,
	ROLE_PLATFORM,
	ROLE_CTL, /* operator tools and tests: health only */
	ROLE_MAX,
};

const char *ipc_role_name(enum ipc_role role);
enum ipc_role ipc_role_parse(const char *name); /* ROLE_NONE if unknown */

enum ipc_type {
	IPC_HELLO = 1,	     /* both ways, first frame on a connection */
	IPC_HEALTH = 2,	     /* request: empty */
	IPC_HEALTH_REP = 3,  /* reply to IPC_HEALTH */
	IPC_ERROR = 4,	     /* reply: a request failed */
	IPC_TYPE_MAX,
};

/* A byte string inside a received frame: valid until the handler returns. */
struct ipc_bytes {
	const uint8_t *p;
	uint32_t len;
};

struct ipc_hello {
	uint32_t version;
	uint8_t role; /* enum ipc_role of the sender */
	uint32_t pid;
};

struct ipc_health_rep {
	uint8_t role;
	uint8_t ready;	   /* 1: serving; 0: up but not ready (detail says why) */
	uint32_t pid;
	uint64_t uptime_ms;
	uint64_t requests; /* requests handled since start */
	uint64_t errors;   /* requests that failed */
	uint32_t links;	   /* bit (1 << role) set for each peer we dial that is connected */
	uint32_t wanted;   /* bit (1 << role) set for each peer we dial */
	char detail[128];
};

enum ipc_error_code {
	IPC_ERR_INTERNAL = 1,
	IPC_ERR_UNAVAILABLE = 2, /* a peer this request needs is down */
	IPC_ERR_REFUSED = 3,	 /* the request is valid but not allowed */
	IPC_ERR_TIMEOUT = 4,
	IPC_ERR_CLOSED = 5,	 /* the connection closed before a reply */
	IPC_ERR_MAX,
};

struct ipc_error {
	uint16_t code;
	char detail[256];
};

/* The largest decoded message: decode into this. */
union ipc_any {
	struct ipc_hello hello;
	struct ipc_health_rep health_rep;
	struct ipc_error error;
};

/* Message flags in the catalogue. */
#define IPC_MF_REQUEST 0x01 /* starts a request (sent client → server) */
#define IPC_MF_FINAL 0x02   /* ends the reply stream of a request */
#define IPC_MF_INFLIGHT 0x04 /* sent client → server about a request in flight */

struct ipc_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint64_t id;
};

/* Catalogue lookups: NULL name / 0 flags for a type that does not exist. */
const char *ipc_type_name(uint16_t type);
unsigned ipc_type_flags(uint16_t type);

/* Bytes the frame for msg will take; 0 if msg is out of bounds. */
size_t ipc_frame_len(uint16_t type, const void *msg);
/* Encode a frame into buf; returns its length, or 0 if msg is out of bounds or cap too small. */
size_t ipc_encode(uint16_t type, uint64_t id, const void *msg, uint8_t *buf, size_t cap);

/* Read a frame header from at least IPC_HDR_LEN bytes: 0, or -1 if invalid. */
int ipc_hdr_read(const uint8_t *buf, struct ipc_hdr *hdr);
/*
 * Decode the whole frame buf[0..len) into *msg (a union ipc_any). Returns 0,
 * or -1 with a static reason in *why. Byte strings in *msg point into buf.
 */
int ipc_decode(const uint8_t *buf, size_t len, struct ipc_hdr *hdr, union ipc_any *msg,
    const char **why);

#endif
