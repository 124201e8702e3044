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

#define IPC_VERSION 3
#define IPC_HDR_LEN 16
#define IPC_MAX_FRAME (16u << 20)

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

/*
 * Message types. The comment says who sends it to whom; "→ X" names the
 * final reply. A paid request (DESIGN.md §3) is QUOTE, CHALLENGE or VERIFY,
 * ASSIGN, FORWARD (streamed back as FWD_HEAD, FWD_DATA…, FWD_END), OUTCOME,
 * SETTLE, and the ledger postings payments makes.
 */
enum ipc_type {
	IPC_HELLO = 1,	     /* both ways, first frame on a connection */
	IPC_HEALTH = 2,	     /* any → any: → HEALTH_REP */
	IPC_HEALTH_REP = 3,
	IPC_ERROR = 4,	     /* reply: the request failed inside cn2 */
	IPC_ACK = 5,	     /* reply: done, nothing to say */
	IPC_PROBLEM = 6,     /* reply: an HTTP problem the edge passes to the client */

	IPC_QUOTE = 10,	     /* edge → router: → QUOTE_REP or PROBLEM */
	IPC_QUOTE_REP = 11,
	IPC_CHALLENGE = 12,  /* edge → payments: → PAY_REQUIRED */
	IPC_PAY_REQUIRED = 13,
	IPC_VERIFY = 14,     /* edge → payments: → TICKET or PAY_REQUIRED */
	IPC_TICKET = 15,
	IPC_ASSIGN = 16,     /* edge → router: → GRANT or PROBLEM */
	IPC_GRANT = 17,
	IPC_FORWARD = 18,    /* edge → vault: → FWD_HEAD, FWD_DATA…, FWD_END */
	IPC_FWD_HEAD = 19,
	IPC_FWD_DATA = 20,
	IPC_FWD_END = 21,
	IPC_FWD_ACK = 22,    /* edge → vault, in flight: bytes delivered to the buyer */
	IPC_FWD_CANCEL = 23, /* edge → vault, in flight: the buyer went away */
	IPC_OUTCOME = 24,    /* vault → router: → ACK */
	IPC_SETTLE = 25,     /* edge → payments: → SETTLED or PROBLEM */
	IPC_SETTLED = 26,

	IPC_LEDGER_PENDING = 30, /* payments → ledger: → ACK or ERROR */
	IPC_LEDGER_POST = 31,	 /* payments → ledger: → ACK or ERROR */
	IPC_LEDGER_VOID = 32,	 /* payments → ledger: → ACK or ERROR */

	IPC_KEY_PUT = 40,	 /* platform → vault: → ACK or PROBLEM */
	IPC_LISTING_PUT = 41,	 /* platform → router: → ACK or PROBLEM */
	IPC_LISTING_LIST = 42,	 /* platform → router: → LISTING…, ACK */
	IPC_LISTING = 43,
	IPC_API = 44,		 /* edge → platform: → API_REP */
	IPC_API_REP = 45,

	/*
	 * Numbers are never reused. Reserved ranges for the messages each part
	 * adds: payments 50-59, router 60-69, vault 70-79, ledger 80-89.
	 */

	/* payments (50-59) */
	IPC_VERIFY_IDEM = 50, /* edge → payments: VERIFY with an Idempotency-Key: as VERIFY */
	IPC_PAY_PROBLEM = 51, /* payments → edge: PAY_REQUIRED with Retry-After (or none) */

	/* router (60-69) */
	IPC_LISTING_GET = 60,	  /* platform → router: → LISTING, ACK; or PROBLEM 404 */
	IPC_MARKET_STATS = 61,	  /* platform → router: → MARKET_PROVIDER…, ACK */
	IPC_MARKET_PROVIDER = 62,
	IPC_EVENTS_PULL = 63,	  /* platform → router: → SELLER_EVENT…, ACK */
	IPC_SELLER_EVENT = 64,

	/* vault (70-79) */
	IPC_VAULT_PUBKEY = 70,	   /* platform → vault: → VAULT_PUBKEY_REP */
	IPC_VAULT_PUBKEY_REP = 71,

	/* ledger (80-89) */
	IPC_LEDGER_POST_SPLIT = 80, /* payments → ledger: LEDGER_POST with a premium part: → ACK or ERROR */
	IPC_EARNINGS = 81,	    /* platform → ledger: → EARNINGS_REP or ERROR */
	IPC_EARNINGS_REP = 82,
	IPC_DISPUTE_OPEN = 83,	    /* platform → ledger: → DISPUTE_REP or ERROR */
	IPC_DISPUTE_RESOLVE = 84,   /* platform → ledger: → DISPUTE_REP or ERROR */
	IPC_DISPUTE_GET = 85,	    /* platform → ledger: → DISPUTE_REP or ERROR */
	IPC_DISPUTE_REP = 86,
	IPC_TYPE_MAX = 100,
};

/* Sizes of the text fields shared by several messages (arrays hold one more, for NUL). */
#define IPC_ID_MAX 63	     /* payment (challenge) ids, seller ids */
#define IPC_KEY_ID_MAX 47    /* key and grant ids */
#define IPC_PROVIDER_MAX 31
#define IPC_METHOD_MAX 15    /* an HTTP method, or a payment method name */
#define IPC_PATH_MAX 511     /* a request path without its query */
#define IPC_TARGET_MAX 2047  /* a request target: path and query */
#define IPC_REGION_MAX 3
#define IPC_ROUTES_MAX 511   /* a listing's allowed routes: "METHOD /path" items, comma-separated */
#define IPC_SESSION_MAX 64   /* X-CN2-Session: a buyer's conversation id */
#define IPC_MAC_LEN 32	     /* HMAC-SHA256 */
#define IPC_BODY_MAX (8u << 20)
#define IPC_CHUNK_MAX (256u << 10)

enum ipc_pool { POOL_STANDARD = 0, POOL_PREMIUM = 1 };
enum ipc_settle_outcome { SETTLE_CAPTURE = 1, SETTLE_RELEASE = 2 };

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

struct ipc_problem {
	uint16_t status; /* 400..599 */
	char name[48];	 /* the problem type's last part: "no-key-available" */
	char detail[256];
};

/* What is being bought: the provider route, in which pool and region. */
struct ipc_route {
	char provider[IPC_PROVIDER_MAX + 1];
	char method[IPC_METHOD_MAX + 1];
	char path[IPC_PATH_MAX + 1];
	uint8_t pool;
	char region[IPC_REGION_MAX + 1];
};

struct ipc_quote {
	struct ipc_route route;
};

struct ipc_quote_rep {
	int64_t amount; /* µUSD the buyer pays, fee included */
	uint32_t keys;	/* eligible keys at that price or under */
};

struct ipc_challenge {
	struct ipc_route route;
	char realm[128];
	int64_t amount;
	char accept[256]; /* the buyer's Accept-Payment header, or "" */
};

/* A 402 (or 400/409) for the buyer: the edge copies it out as it is. */
struct ipc_pay_required {
	uint16_t status;
	char challenge_id[IPC_ID_MAX + 1];
	struct ipc_bytes www_auth; /* one WWW-Authenticate value per line ("\n") */
	struct ipc_bytes body;	   /* application/problem+json */
};

struct ipc_verify {
	struct ipc_route route;
	char realm[128];
	int64_t amount;		      /* what this route costs now */
	char accept[256];
	uint8_t ncredentials;	      /* credentials the request carried (1 is valid) */
	uint8_t header;		      /* 0: from Authorization, 1: from Payment-Authorization */
	struct ipc_bytes credential; /* the header value, "Payment …" */
};

/* payments' word that a payment covers a route: MAC under the ticket secret. */
struct ipc_ticket {
	char payment_id[IPC_ID_MAX + 1];
	char pay_method[IPC_METHOD_MAX + 1];
	int64_t amount;
	struct ipc_route route;
	int64_t expires; /* unix seconds */
	struct ipc_bytes mac;
};

struct ipc_assign {
	struct ipc_ticket ticket;
	char exclude[256]; /* key ids already tried, comma-separated */
	char session[IPC_SESSION_MAX + 1]; /* the buyer's X-CN2-Session, or "" */
};

/*
 * router's choice. The grant (MAC under the grant secret) lets the vault use
 * one key once for this route; the award (MAC under the ticket secret) tells
 * payments which seller earns what when the payment is captured.
 */
struct ipc_grant {
	char grant_id[IPC_KEY_ID_MAX + 1];
	char key_id[IPC_KEY_ID_MAX + 1];
	char payment_id[IPC_ID_MAX + 1];
	struct ipc_route route;
	int64_t expires;
	struct ipc_bytes mac;
	char seller_id[IPC_ID_MAX + 1];
	int64_t seller_price;
	struct ipc_bytes award_mac;
	/* GRANT only (FORWARD leaves it out): the region tag of the key, for the receipt. */
	char region[IPC_REGION_MAX + 1];
};

struct ipc_forward {
	struct ipc_grant grant;
	char target[IPC_TARGET_MAX + 1]; /* path and query as the buyer sent them */
	struct ipc_bytes headers;	 /* "Name: value\r\n" lines, already filtered */
	struct ipc_bytes body;
};

struct ipc_fwd_head {
	uint16_t status;
	struct ipc_bytes headers; /* "Name: value\r\n" lines, already filtered */
};

struct ipc_fwd_data {
	struct ipc_bytes data;
};

struct ipc_fwd_end {
	uint8_t ok;	  /* 1: the upstream response ended cleanly */
	uint8_t started;  /* 1: FWD_HEAD was sent before this */
	char detail[128]; /* why not ok */
};

struct ipc_fwd_ack {
	uint32_t bytes;
};

struct ipc_outcome {
	char key_id[IPC_KEY_ID_MAX + 1];
	char grant_id[IPC_KEY_ID_MAX + 1];
	struct ipc_route route;
	uint16_t status;     /* upstream HTTP status, 0 if none */
	uint32_t latency_ms; /* to the first byte of the response */
	uint8_t failure;     /* enum ipc_failure */
	uint32_t retry_after_s; /* the upstream's Retry-After on a 429 or 503, in seconds; 0: none */
	uint8_t error_class;	/* enum ipc_error_class: what the vault read in an error body */
};

enum ipc_failure { FAIL_NONE = 0, FAIL_CONNECT = 1, FAIL_TIMEOUT = 2, FAIL_CUT = 3, FAIL_CANCEL = 4 };
/*
 * What the first bytes of an upstream's error body said, when its status
 * alone does not tell: ECLASS_QUOTA is a key out of credit or quota (OpenAI's
 * 429 insufficient_quota, Anthropic's billing errors), which the router
 * quarantines like a 402 rather than resting it like a rate limit.
 */
enum ipc_error_class { ECLASS_NONE = 0, ECLASS_QUOTA = 1 };

struct ipc_settle {
	char payment_id[IPC_ID_MAX + 1];
	uint8_t outcome; /* enum ipc_settle_outcome */
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	int64_t seller_price;
	struct ipc_bytes award_mac;
	char region[IPC_REGION_MAX + 1]; /* the region of the key that served (GRANT), for the receipt */
};

struct ipc_settled {
	char receipt[1024]; /* Payment-Receipt value on capture, "" on release */
};

struct ipc_ledger_pending {
	char xfer_id[72];
	char payment_ref[IPC_ID_MAX + 1];
	char pay_method[IPC_METHOD_MAX + 1];
	int64_t amount;
};

struct ipc_ledger_post {
	char xfer_id[72];
	char seller_id[IPC_ID_MAX + 1];
	int64_t seller_amount; /* the rest of the pending amount is the platform's */
};

struct ipc_ledger_void {
	char xfer_id[72];
};

/*
 * A seller's key, sealed by the seller's client with HPKE to the vault's
 * public key kid (common/hpke.h: HPKE_CN2_AEAD, info and associated data
 * the binding of seller_id and provider). Only the vault can open it.
 */
#define IPC_KID_MAX 31
#define IPC_SEALED_MIN (8 + 16)	    /* the shortest key, and the AEAD tag */
#define IPC_SEALED_MAX (4096 + 16)
struct ipc_key_put {
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	uint8_t rotate;		  /* 0: a new key id; 1: a new secret for an existing one */
	char kid[IPC_KID_MAX + 1]; /* the vault key pair it is sealed to */
	struct ipc_bytes enc;	  /* HPKE enc: 32 bytes */
	struct ipc_bytes sealed;  /* HPKE ciphertext and tag */
};

/* The vault's current public key for sealed intake (VAULT_PUBKEY has no fields). */
struct ipc_vault_pubkey_rep {
	char kid[IPC_KID_MAX + 1];
	struct ipc_bytes public_key; /* X25519, 32 bytes */
	int64_t created;	     /* unix seconds */
};

struct ipc_listing {
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	int64_t price; /* µUSD per request, to the seller */
	char status[16];
	int64_t created; /* unix seconds; 0 in LISTING_PUT */
	/* Appended for the key pool (docs/cn2-router.md); zero values mean "no restriction". */
	char region[IPC_REGION_MAX + 1]; /* "", "eu" or "us" */
	uint8_t premium;		 /* 1: may serve the premium pool */
	char routes[IPC_ROUTES_MAX + 1]; /* "POST /v1/chat/completions, GET /v1/models"; "": all */
	uint32_t rpm;			 /* requests per minute; 0: no limit */
	uint32_t rpd;			 /* requests per day; 0: no limit */
	int64_t daily_budget;		 /* µUSD of upstream spend per UTC day; 0: no cap */
	uint32_t score;			 /* LISTING only: reliability, millionths (0..1000000) */
	char reason[128];		 /* LISTING only: why it is quarantined, or "" */
	int64_t updated;		 /* LISTING only: unix seconds of the last change */
};

/* One listing of one seller (LISTING_GET). */
struct ipc_listing_get {
	char seller_id[IPC_ID_MAX + 1];
	char key_id[IPC_KEY_ID_MAX + 1];
};

/* The public marketplace summary (MARKET_STATS → one MARKET_PROVIDER per provider, ACK). */
struct ipc_market_stats {
	uint16_t days; /* the window of the request figures, 1..365 */
};

struct ipc_market_provider {
	char provider[IPC_PROVIDER_MAX + 1];
	uint32_t keys;	       /* active listings */
	uint32_t premium_keys; /* active listings that serve the premium pool now */
	uint32_t eu_keys;      /* active listings tagged eu */
	int64_t price_min;     /* buyer price of the cheapest active listing, µUSD (0: none) */
	int64_t price_max;     /* buyer price of the dearest one */
	uint64_t requests;     /* upstream calls in the window */
	uint64_t ok;	       /* of which the upstream answered without failing */
	uint64_t failed;       /* of which failed for the key or the upstream (5xx, 429, auth, timeouts) */
	uint32_t latency_ms;   /* mean time to first byte in the window */
};

struct ipc_listing_list {
	char seller_id[IPC_ID_MAX + 1];
};

/*
 * The router's events for sellers after a cursor (EVENTS_PULL → at most max
 * SELLER_EVENT in id order, then ACK). The caller keeps the cursor: the id
 * of the last event it has taken care of, 0 at first.
 */
#define IPC_EVENTS_MAX 256
struct ipc_events_pull {
	int64_t after_id;
	uint16_t max; /* 1..IPC_EVENTS_MAX */
};

struct ipc_seller_event {
	int64_t id; /* increasing, never reused */
	char seller_id[IPC_ID_MAX + 1];
	char key_id[IPC_KEY_ID_MAX + 1];
	char kind[32];	   /* "key.quarantined" */
	char detail[256];  /* what happened, for the seller: no secret, no body */
	int64_t created;   /* unix seconds */
};

struct ipc_api {
	char method[IPC_METHOD_MAX + 1];
	char target[IPC_TARGET_MAX + 1];
	char authorization[4096];
	char content_type[128];
	struct ipc_bytes body;
};

struct ipc_api_rep {
	uint16_t status;
	char content_type[64];
	struct ipc_bytes body;
};

/*
 * VERIFY of a request that carries an Idempotency-Key: the key and a hash of
 * the body, so payments can tell a retry of the same request (its outcome is
 * replayed) from another request under the same key (422). No body travels.
 */
#define IPC_IDEM_KEY_MAX 255
struct ipc_verify_idem {
	struct ipc_verify verify;
	char idem_key[IPC_IDEM_KEY_MAX + 1];
	struct ipc_bytes body_hash; /* SHA-256 of the request body: 32 bytes */
};

/* A problem for the buyer, as PAY_REQUIRED, and when to try again. */
struct ipc_pay_problem {
	uint16_t status;
	uint32_t retry_after; /* seconds for Retry-After; 0: no such header */
	char challenge_id[IPC_ID_MAX + 1];
	struct ipc_bytes www_auth; /* one WWW-Authenticate value per line, or none */
	struct ipc_bytes body;	   /* application/problem+json */
};

/* A capture whose buyer price includes the premium pool's surcharge: three parts. */
struct ipc_ledger_post_split {
	char xfer_id[72];
	char seller_id[IPC_ID_MAX + 1];
	int64_t seller_amount;	/* to the seller's earnings */
	int64_t premium_amount; /* to platform:premium; the rest of the pending amount is the fee */
};

struct ipc_earnings {
	char seller_id[IPC_ID_MAX + 1];
};

/* A seller's earnings in µUSD (available may be negative after a dispute). */
struct ipc_earnings_rep {
	char seller_id[IPC_ID_MAX + 1];
	int64_t available;  /* what a payout may take now */
	int64_t pending;    /* earned within the hold period: not yet available */
	int64_t in_dispute; /* the seller's part of open disputes, held in the reserve */
	int64_t paid_out;   /* payouts less reversals */
	int64_t earned;     /* every capture's seller share, all time */
	int64_t hold_s;	    /* the hold period */
	int64_t as_of;	    /* unix milliseconds */
};

enum ipc_dispute_outcome { DISPUTE_FOR_SELLER = 1, DISPUTE_FOR_BUYER = 2 };
enum ipc_dispute_state { DISPUTE_OPEN = 1, DISPUTE_RETURNED = 2, DISPUTE_REFUNDED = 3 };

/* Open a dispute against the captured payment payment_ref (the receipt's reference). */
struct ipc_dispute_open {
	char dispute_id[IPC_ID_MAX + 1];
	char payment_ref[IPC_ID_MAX + 1];
};

struct ipc_dispute_resolve {
	char dispute_id[IPC_ID_MAX + 1];
	uint8_t outcome; /* enum ipc_dispute_outcome */
};

struct ipc_dispute_get {
	char dispute_id[IPC_ID_MAX + 1];
};

struct ipc_dispute_rep {
	char dispute_id[IPC_ID_MAX + 1];
	char payment_ref[IPC_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	char pay_method[IPC_METHOD_MAX + 1];
	int64_t amount;	       /* what the buyer paid: held in the dispute reserve */
	int64_t seller_amount; /* the part of it taken from the seller's earnings */
	uint8_t state;	       /* enum ipc_dispute_state */
	int64_t opened;	       /* unix milliseconds */
	int64_t resolved;      /* unix milliseconds; 0 while open */
};

/* The largest decoded message: decode into this. */
union ipc_any {
	struct ipc_hello hello;
	struct ipc_health_rep health_rep;
	struct ipc_error error;
	struct ipc_problem problem;
	struct ipc_quote quote;
	struct ipc_quote_rep quote_rep;
	struct ipc_challenge challenge;
	struct ipc_pay_required pay_required;
	struct ipc_verify verify;
	struct ipc_ticket ticket;
	struct ipc_assign assign;
	struct ipc_grant grant;
	struct ipc_forward forward;
	struct ipc_fwd_head fwd_head;
	struct ipc_fwd_data fwd_data;
	struct ipc_fwd_end fwd_end;
	struct ipc_fwd_ack fwd_ack;
	struct ipc_outcome outcome;
	struct ipc_settle settle;
	struct ipc_settled settled;
	struct ipc_ledger_pending ledger_pending;
	struct ipc_ledger_post ledger_post;
	struct ipc_ledger_void ledger_void;
	struct ipc_key_put key_put;
	struct ipc_vault_pubkey_rep vault_pubkey_rep;
	struct ipc_listing listing;
	struct ipc_listing_list listing_list;
	struct ipc_listing_get listing_get;
	struct ipc_market_stats market_stats;
	struct ipc_market_provider market_provider;
	struct ipc_events_pull events_pull;
	struct ipc_seller_event seller_event;
	struct ipc_api api;
	struct ipc_api_rep api_rep;
	struct ipc_verify_idem verify_idem;
	struct ipc_pay_problem pay_problem;
	struct ipc_ledger_post_split ledger_post_split;
	struct ipc_earnings earnings;
	struct ipc_earnings_rep earnings_rep;
	struct ipc_dispute_open dispute_open;
	struct ipc_dispute_resolve dispute_resolve;
	struct ipc_dispute_get dispute_get;
	struct ipc_dispute_rep dispute_rep;
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
