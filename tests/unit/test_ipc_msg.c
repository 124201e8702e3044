/*
 * test_ipc_msg.c — the IPC message catalogue and its codec.
 *
 * The catalogue's names and flags are a table here; every type in it must
 * have a sample, and every sample round-trips through encode and decode with
 * each member intact (a member the catalogue forgets comes back zero).
 * Hand-written frames pin the wire layout; values out of bounds, for every
 * kind of field, are refused by the encoder; a table of mutated frames
 * (every truncation, extra bytes, bad headers, unknown types, bad strings,
 * integers out of bounds) and frames built field by field at the bounds go
 * to the decoder. Frames are decoded from buffers of exactly their length so
 * a sanitizer build catches any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ipc_msg.h"

/* Report one failing row and keep going, so a run lists every bad row. */
#define EXPECT(bad, cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			print_error(__VA_ARGS__);                               \
			print_error("\n");                                      \
			(bad)++;                                                \
		}                                                               \
	} while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Samples: the first four are the bases the mutation table refers to. */
enum { S_HELLO, S_HEALTH, S_HEALTH_REP, S_ERROR, S_HEALTH_REP_LONG, S_ERROR_LONG };

struct sample {
	const char *name;
	uint16_t type;
	uint64_t id;
	union ipc_any msg;
};

#define BYTES(s) {(const uint8_t *)(s), sizeof(s) - 1}
#define MAC_A "0123456789abcdef0123456789ABCDEF"
#define MAC_B "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" \
	      "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"
#define ROUTE {"openai", "POST", "/v1/chat/completions", POOL_PREMIUM, "eu"}
#define TICKET {"pay_1", "tempo", 1500, ROUTE, 1760000000, BYTES(MAC_A)}
#define GRANT                                                                   \
	{"grant_1", "key_1", "pay_1", ROUTE, 1760000060, BYTES(MAC_A), "seller_1", \
	    1000, BYTES(MAC_B)}
#define LISTING {"key_1", "seller_1", "openai", 1000, "active", 1760000000}

/*
 * One sample per catalogue type (test_catalogue checks that), and a few more
 * at the bounds. Static, so padding is zero as in a decoded message.
 */
static struct sample samples[] = {
    [S_HELLO] = {"hello", IPC_HELLO, 1, {.hello = {IPC_VERSION, ROLE_VAULT, 4242}}},
    [S_HEALTH] = {"health", IPC_HEALTH, 2, {.hello = {0, 0, 0}}},
    [S_HEALTH_REP] = {"health_rep", IPC_HEALTH_REP, 3,
	{.health_rep = {ROLE_ROUTER, 1, 77, 1000, 20, 3, 1u << ROLE_VAULT, 1u << ROLE_VAULT,
	    "abc"}}},
    [S_ERROR] = {"error", IPC_ERROR, 4, {.error = {IPC_ERR_REFUSED, "oops"}}},
    /* Strings at their longest: filled in by fill_long_strings. */
    [S_HEALTH_REP_LONG] = {"health_rep, longest detail", IPC_HEALTH_REP, UINT64_MAX,
	{.health_rep = {ROLE_MAX - 1, 0, UINT32_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
	    (1u << ROLE_MAX) - 1, (1u << ROLE_MAX) - 1, ""}}},
    [S_ERROR_LONG] = {"error, longest detail", IPC_ERROR, 0, {.error = {IPC_ERR_MAX - 1, ""}}},
    {"hello, highest values", IPC_HELLO, UINT64_MAX,
	{.hello = {UINT32_MAX, ROLE_MAX - 1, UINT32_MAX}}},
    {"hello, lowest values", IPC_HELLO, 0, {.hello = {1, ROLE_NONE + 1, 1}}},
    {"health_rep, lowest values", IPC_HEALTH_REP, 9,
	{.health_rep = {ROLE_NONE + 1, 0, 1, 0, 0, 0, 0, 0, ""}}},
    {"error, lowest code, empty detail", IPC_ERROR, 10, {.error = {1, ""}}},
    {"error, 8-bit detail", IPC_ERROR, 11, {.error = {IPC_ERR_TIMEOUT, "caf\xc3\xa9 \x7f\x01"}}},
    {"ack", IPC_ACK, 12, {.hello = {0, 0, 0}}},
    {"problem", IPC_PROBLEM, 13, {.problem = {402, "payment-required", "pay first"}}},
    {"problem, bounds", IPC_PROBLEM, 14, {.problem = {599, "x", ""}}},
    {"quote", IPC_QUOTE, 15, {.quote = {ROUTE}}},
    {"quote, standard pool, no region", IPC_QUOTE, 16,
	{.quote = {{"p", "GET", "/", POOL_STANDARD, ""}}}},
    {"quote_rep", IPC_QUOTE_REP, 17, {.quote_rep = {1500, 3}}},
    {"quote_rep, bounds", IPC_QUOTE_REP, 18, {.quote_rep = {INT64_MAX, UINT32_MAX}}},
    {"challenge", IPC_CHALLENGE, 19,
	{.challenge = {ROUTE, "api.cn2.example", 1500, "tempo, stripe"}}},
    {"pay_required", IPC_PAY_REQUIRED, 20,
	{.pay_required = {402, "ch_1", BYTES("Payment realm=\"x\"\nPayment realm=\"y\""),
	    BYTES("{\"type\":\"payment-required\"}")}}},
    {"pay_required, empty", IPC_PAY_REQUIRED, 21, {.pay_required = {400, "", {NULL, 0}, {NULL, 0}}}},
    {"verify", IPC_VERIFY, 22,
	{.verify = {ROUTE, "api.cn2.example", 1500, "", 1, 1, BYTES("Payment eyJhIjoxfQ")}}},
    {"ticket", IPC_TICKET, 23, {.ticket = TICKET}},
    {"assign", IPC_ASSIGN, 24, {.assign = {TICKET, "key_7,key_9"}}},
    {"grant", IPC_GRANT, 25, {.grant = GRANT}},
    {"forward", IPC_FORWARD, 26,
	{.forward = {GRANT, "/v1/chat/completions?stream=true",
	    BYTES("Content-Type: application/json\r\n"), BYTES("{\"model\":\"m\"}")}}},
    {"forward, no headers or body", IPC_FORWARD, 27, {.forward = {GRANT, "/", {NULL, 0}, {NULL, 0}}}},
    {"fwd_head", IPC_FWD_HEAD, 28, {.fwd_head = {200, BYTES("X-A: 1\r\n")}}},
    {"fwd_data", IPC_FWD_DATA, 29, {.fwd_data = {BYTES("data: {\"a\":\0}\n\n")}}},
    {"fwd_end", IPC_FWD_END, 30, {.fwd_end = {0, 1, "upstream reset"}}},
    {"fwd_ack", IPC_FWD_ACK, 31, {.fwd_ack = {4096}}},
    {"fwd_cancel", IPC_FWD_CANCEL, 32, {.hello = {0, 0, 0}}},
    {"outcome", IPC_OUTCOME, 33,
	{.outcome = {"key_1", "grant_1", ROUTE, 503, 350, FAIL_CUT}}},
    {"settle", IPC_SETTLE, 34,
	{.settle = {"pay_1", SETTLE_CAPTURE, "key_1", "seller_1", 1000, BYTES(MAC_B)}}},
    {"settle, release", IPC_SETTLE, 35, {.settle = {"pay_1", SETTLE_RELEASE, "", "", 0, {NULL, 0}}}},
    {"settled", IPC_SETTLED, 36, {.settled = {"receipt eyJzdGF0dXMiOiJzdWNjZXNzIn0"}}},
    {"ledger_pending", IPC_LEDGER_PENDING, 37,
	{.ledger_pending = {"xfer_1", "pay_1", "tempo", 1500}}},
    {"ledger_post", IPC_LEDGER_POST, 38, {.ledger_post = {"xfer_1", "seller_1", 1000}}},
    {"ledger_void", IPC_LEDGER_VOID, 39, {.ledger_void = {"xfer_1"}}},
    {"key_put", IPC_KEY_PUT, 40,
	{.key_put = {"key_1", "seller_1", "openai", 0, "vk_1", BYTES(MAC_A),
	    BYTES("hpke ciphertext of a key, and its tag")}}},
    {"key_put, rotate", IPC_KEY_PUT, 70,
	{.key_put = {"key_1", "seller_1", "openai", 1, "vk_2", BYTES(MAC_B),
	    BYTES("another hpke ciphertext and tag")}}},
    {"vault_pubkey", IPC_VAULT_PUBKEY, 71, {.hello = {0, 0, 0}}},
    {"vault_pubkey_rep", IPC_VAULT_PUBKEY_REP, 72,
	{.vault_pubkey_rep = {"vk_Xq3", BYTES(MAC_B), 1760000000}}},
    {"listing_put", IPC_LISTING_PUT, 41, {.listing = LISTING}},
    {"listing_list", IPC_LISTING_LIST, 42, {.listing_list = {"seller_1"}}},
    {"listing", IPC_LISTING, 43, {.listing = LISTING}},
    {"api", IPC_API, 44,
	{.api = {"POST", "/v1/keys?x=1", "Bearer eyJ", "application/json", BYTES("{}")}}},
    {"api_rep", IPC_API_REP, 45, {.api_rep = {201, "application/json", BYTES("{\"ok\":true}")}}},
    {"verify_idem", IPC_VERIFY_IDEM, 50,
	{.verify_idem = {{ROUTE, "api.cn2.example", 1500, "", 1, 0, BYTES("Payment eyJhIjoxfQ")},
	    "retry-7f3a", BYTES(MAC_B)}}},
    {"pay_problem", IPC_PAY_PROBLEM, 51,
	{.pay_problem = {503, 2, "", {NULL, 0}, BYTES("{\"type\":\"x\"}")}}},
    {"listing, every key-pool field", IPC_LISTING, 60,
	{.listing = {"key_1", "seller_1", "openai", 1000, "quarantined", 1760000000, "eu", 1,
	    "POST /v1/chat/completions, GET /v1/models/*", 60, 10000, 5000000, 987654,
	    "the upstream answered 401", 1760000100}}},
    {"assign, with a session", IPC_ASSIGN, 61, {.assign = {TICKET, "", "conv-42"}}},
    {"grant, with a region", IPC_GRANT, 62,
	{.grant = {"grant_1", "key_1", "pay_1", ROUTE, 1760000060, BYTES(MAC_A), "seller_1", 1000,
	    BYTES(MAC_B), "eu"}}},
    {"outcome, 429 with Retry-After", IPC_OUTCOME, 63,
	{.outcome = {"key_1", "grant_1", ROUTE, 429, 20, FAIL_NONE, 30}}},
    {"outcome, 429 out of quota", IPC_OUTCOME, 68,
	{.outcome = {"key_1", "grant_1", ROUTE, 429, 20, FAIL_NONE, 0, ECLASS_QUOTA}}},
    {"settle, with a region", IPC_SETTLE, 64,
	{.settle = {"pay_1", SETTLE_CAPTURE, "key_1", "seller_1", 1000, BYTES(MAC_B), "eu"}}},
    {"listing_get", IPC_LISTING_GET, 65, {.listing_get = {"seller_1", "key_1"}}},
    {"market_stats", IPC_MARKET_STATS, 66, {.market_stats = {30}}},
    {"market_provider", IPC_MARKET_PROVIDER, 67,
	{.market_provider = {"openai", 12, 3, 4, 1100, 5500, 100000, 99000, 900, 420}}},
    {"events_pull", IPC_EVENTS_PULL, 73, {.events_pull = {41, 100}}},
    {"events_pull, lowest values", IPC_EVENTS_PULL, 74, {.events_pull = {0, 1}}},
    {"events_pull, highest values", IPC_EVENTS_PULL, 75,
	{.events_pull = {INT64_MAX, IPC_EVENTS_MAX}}},
    {"seller_event", IPC_SELLER_EVENT, 76,
	{.seller_event = {42, "seller_1", "key_1", "key.quarantined",
	    "auth: the upstream answered 401 to POST /v1/chat/completions (the key was refused)",
	    1760000000}}},
    {"seller_event, bounds", IPC_SELLER_EVENT, 77,
	{.seller_event = {INT64_MAX, "s", "k", "x", "", 0}}},
    {"pay_problem, with challenges", IPC_PAY_PROBLEM, 52,
	{.pay_problem = {409, 0, "ch_1", BYTES("Payment realm=\"x\""), BYTES("{}")}}},    {"ledger_post_split", IPC_LEDGER_POST_SPLIT, 80,
	{.ledger_post_split = {"xfer_1", "seller_1", 1000, 275}}},
    {"earnings", IPC_EARNINGS, 81, {.earnings = {"seller_1"}}},
    {"earnings_rep", IPC_EARNINGS_REP, 82,
	{.earnings_rep = {"seller_1", -250, 1000, 1100, 5000, 7350, 604800, 1760000000123}}},
    {"dispute_open", IPC_DISPUTE_OPEN, 83, {.dispute_open = {"dsp_1", "pay_1"}}},
    {"dispute_resolve", IPC_DISPUTE_RESOLVE, 84,
	{.dispute_resolve = {"dsp_1", DISPUTE_FOR_BUYER}}},
    {"dispute_get", IPC_DISPUTE_GET, 85, {.dispute_get = {"dsp_1"}}},
    {"dispute_rep", IPC_DISPUTE_REP, 86,
	{.dispute_rep = {"dsp_1", "pay_1", "seller_1", "test", 1100, 1000, DISPUTE_REFUNDED,
	    1760000000123, 1760000000456}}},
};

static void
fill_long_strings(void)
{
	struct ipc_health_rep *r = &samples[S_HEALTH_REP_LONG].msg.health_rep;
	struct ipc_error *e = &samples[S_ERROR_LONG].msg.error;

	memset(r->detail, 'y', sizeof(r->detail) - 1);
	r->detail[sizeof(r->detail) - 1] = '\0';
	memset(e->detail, 'z', sizeof(e->detail) - 1);
	e->detail[sizeof(e->detail) - 1] = '\0';
}

/*
 * Each type's struct: its size, and where its byte strings are (their
 * pointers differ after decoding; the bytes they point at must not).
 */
struct shape {
	int known;
	size_t size;
	size_t nbytes;
	size_t bytes[4];
};

#define SHAPE(s, n, ...) {1, sizeof(struct s), n, {__VA_ARGS__}}
#define AT(s, m) offsetof(struct s, m)

static const struct shape shapes[IPC_TYPE_MAX] = {
    [IPC_HELLO] = SHAPE(ipc_hello, 0, 0),
    [IPC_HEALTH] = {1, 0, 0, {0}},
    [IPC_HEALTH_REP] = SHAPE(ipc_health_rep, 0, 0),
    [IPC_ERROR] = SHAPE(ipc_error, 0, 0),
    [IPC_ACK] = {1, 0, 0, {0}},
    [IPC_PROBLEM] = SHAPE(ipc_problem, 0, 0),
    [IPC_QUOTE] = SHAPE(ipc_quote, 0, 0),
    [IPC_QUOTE_REP] = SHAPE(ipc_quote_rep, 0, 0),
    [IPC_CHALLENGE] = SHAPE(ipc_challenge, 0, 0),
    [IPC_PAY_REQUIRED] = SHAPE(ipc_pay_required, 2, AT(ipc_pay_required, www_auth),
	AT(ipc_pay_required, body)),
    [IPC_VERIFY] = SHAPE(ipc_verify, 1, AT(ipc_verify, credential)),
    [IPC_TICKET] = SHAPE(ipc_ticket, 1, AT(ipc_ticket, mac)),
    [IPC_ASSIGN] = SHAPE(ipc_assign, 1, AT(ipc_assign, ticket.mac)),
    [IPC_GRANT] = SHAPE(ipc_grant, 2, AT(ipc_grant, mac), AT(ipc_grant, award_mac)),
    [IPC_FORWARD] = SHAPE(ipc_forward, 4, AT(ipc_forward, grant.mac),
	AT(ipc_forward, grant.award_mac), AT(ipc_forward, headers), AT(ipc_forward, body)),
    [IPC_FWD_HEAD] = SHAPE(ipc_fwd_head, 1, AT(ipc_fwd_head, headers)),
    [IPC_FWD_DATA] = SHAPE(ipc_fwd_data, 1, AT(ipc_fwd_data, data)),
    [IPC_FWD_END] = SHAPE(ipc_fwd_end, 0, 0),
    [IPC_FWD_ACK] = SHAPE(ipc_fwd_ack, 0, 0),
    [IPC_FWD_CANCEL] = {1, 0, 0, {0}},
    [IPC_OUTCOME] = SHAPE(ipc_outcome, 0, 0),
    [IPC_SETTLE] = SHAPE(ipc_settle, 1, AT(ipc_settle, award_mac)),
    [IPC_SETTLED] = SHAPE(ipc_settled, 0, 0),
    [IPC_LEDGER_PENDING] = SHAPE(ipc_ledger_pending, 0, 0),
    [IPC_LEDGER_POST] = SHAPE(ipc_ledger_post, 0, 0),
    [IPC_LEDGER_VOID] = SHAPE(ipc_ledger_void, 0, 0),
    [IPC_KEY_PUT] = SHAPE(ipc_key_put, 2, AT(ipc_key_put, enc), AT(ipc_key_put, sealed)),
    [IPC_VAULT_PUBKEY] = {1, 0, 0, {0}},
    [IPC_VAULT_PUBKEY_REP] = SHAPE(ipc_vault_pubkey_rep, 1, AT(ipc_vault_pubkey_rep, public_key)),
    [IPC_LISTING_PUT] = SHAPE(ipc_listing, 0, 0),
    [IPC_LISTING_LIST] = SHAPE(ipc_listing_list, 0, 0),
    [IPC_LISTING] = SHAPE(ipc_listing, 0, 0),
    [IPC_API] = SHAPE(ipc_api, 1, AT(ipc_api, body)),
    [IPC_API_REP] = SHAPE(ipc_api_rep, 1, AT(ipc_api_rep, body)),
    [IPC_VERIFY_IDEM] = SHAPE(ipc_verify_idem, 2, AT(ipc_verify_idem, verify.credential),
	AT(ipc_verify_idem, body_hash)),
    [IPC_PAY_PROBLEM] = SHAPE(ipc_pay_problem, 2, AT(ipc_pay_problem, www_auth),
	AT(ipc_pay_problem, body)),
    [IPC_LISTING_GET] = SHAPE(ipc_listing_get, 0, 0),
    [IPC_MARKET_STATS] = SHAPE(ipc_market_stats, 0, 0),
    [IPC_MARKET_PROVIDER] = SHAPE(ipc_market_provider, 0, 0),
    [IPC_EVENTS_PULL] = SHAPE(ipc_events_pull, 0, 0),
    [IPC_SELLER_EVENT] = SHAPE(ipc_seller_event, 0, 0),
    [IPC_LEDGER_POST_SPLIT] = SHAPE(ipc_ledger_post_split, 0, 0),
    [IPC_EARNINGS] = SHAPE(ipc_earnings, 0, 0),
    [IPC_EARNINGS_REP] = SHAPE(ipc_earnings_rep, 0, 0),
    [IPC_DISPUTE_OPEN] = SHAPE(ipc_dispute_open, 0, 0),
    [IPC_DISPUTE_RESOLVE] = SHAPE(ipc_dispute_resolve, 0, 0),
    [IPC_DISPUTE_GET] = SHAPE(ipc_dispute_get, 0, 0),
    [IPC_DISPUTE_REP] = SHAPE(ipc_dispute_rep, 0, 0),
};

/*
 * Did every member survive? Byte strings are compared by content (and an
 * empty one must decode as NULL), then the rest of the struct byte for byte:
 * a member the catalogue forgot would come back zero.
 */
static int
msg_equal(uint16_t type, const union ipc_any *want, const union ipc_any *got)
{
	const struct shape *sh = &shapes[type];
	union ipc_any g;

	memcpy(&g, got, sizeof(g));
	for (size_t i = 0; i < sh->nbytes; i++) {
		const struct ipc_bytes *w = (const void *)((const uint8_t *)want + sh->bytes[i]);
		struct ipc_bytes *b = (void *)((uint8_t *)&g + sh->bytes[i]);

		if (w->len != b->len || (w->len == 0 && b->p != NULL) ||
		    (w->len > 0 && memcmp(w->p, b->p, w->len) != 0))
			return 0;
		b->p = w->p;
	}
	return memcmp(want, &g, sh->size) == 0;
}

/* The copy decode_exact decoded: byte strings in its message point into it. */
static uint8_t *exact_copy;

/*
 * Decode from a heap copy of exactly len bytes. Byte strings in *m stay
 * valid until the next call.
 */
static int
decode_exact(const uint8_t *frame, size_t len, struct ipc_hdr *h, union ipc_any *m,
    const char **why)
{
	free(exact_copy);
	exact_copy = malloc(len > 0 ? len : 1);
	assert_non_null(exact_copy);
	if (len > 0)
		memcpy(exact_copy, frame, len);
	*why = NULL;
	return ipc_decode(exact_copy, len, h, m, why);
}

static size_t
sample_encode(const struct sample *s, uint8_t *buf, size_t cap)
{
	size_t n = ipc_encode(s->type, s->id, &s->msg, buf, cap);

	assert_int_not_equal(n, 0);
	return n;
}

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#define REQ IPC_MF_REQUEST
#define FIN IPC_MF_FINAL
#define INF IPC_MF_INFLIGHT

static void
test_catalogue(void **state)
{
	static const struct {
		uint16_t type;
		const char *name;
		unsigned flags;
	} rows[] = {
	    {0, NULL, 0},
	    {IPC_HELLO, "HELLO", 0},
	    {IPC_HEALTH, "HEALTH", REQ},
	    {IPC_HEALTH_REP, "HEALTH_REP", FIN},
	    {IPC_ERROR, "ERROR", FIN},
	    {IPC_ACK, "ACK", FIN},
	    {IPC_PROBLEM, "PROBLEM", FIN},
	    {7, NULL, 0},
	    {9, NULL, 0},
	    {IPC_QUOTE, "QUOTE", REQ},
	    {IPC_QUOTE_REP, "QUOTE_REP", FIN},
	    {IPC_CHALLENGE, "CHALLENGE", REQ},
	    {IPC_PAY_REQUIRED, "PAY_REQUIRED", FIN},
	    {IPC_VERIFY, "VERIFY", REQ},
	    {IPC_TICKET, "TICKET", FIN},
	    {IPC_ASSIGN, "ASSIGN", REQ},
	    {IPC_GRANT, "GRANT", FIN},
	    {IPC_FORWARD, "FORWARD", REQ},
	    {IPC_FWD_HEAD, "FWD_HEAD", 0},
	    {IPC_FWD_DATA, "FWD_DATA", 0},
	    {IPC_FWD_END, "FWD_END", FIN},
	    {IPC_FWD_ACK, "FWD_ACK", INF},
	    {IPC_FWD_CANCEL, "FWD_CANCEL", INF},
	    {IPC_OUTCOME, "OUTCOME", REQ},
	    {IPC_SETTLE, "SETTLE", REQ},
	    {IPC_SETTLED, "SETTLED", FIN},
	    {27, NULL, 0},
	    {IPC_LEDGER_PENDING, "LEDGER_PENDING", REQ},
	    {IPC_LEDGER_POST, "LEDGER_POST", REQ},
	    {IPC_LEDGER_VOID, "LEDGER_VOID", REQ},
	    {33, NULL, 0},
	    {IPC_KEY_PUT, "KEY_PUT", REQ},
	    {IPC_LISTING_PUT, "LISTING_PUT", REQ},
	    {IPC_LISTING_LIST, "LISTING_LIST", REQ},
	    {IPC_LISTING, "LISTING", 0},
	    {IPC_API, "API", REQ},
	    {IPC_API_REP, "API_REP", FIN},
	    {IPC_VAULT_PUBKEY, "VAULT_PUBKEY", REQ},
	    {IPC_VAULT_PUBKEY_REP, "VAULT_PUBKEY_REP", FIN},
	    {IPC_VERIFY_IDEM, "VERIFY_IDEM", REQ},
	    {IPC_PAY_PROBLEM, "PAY_PROBLEM", FIN},
	    {IPC_LISTING_GET, "LISTING_GET", REQ},
	    {IPC_MARKET_STATS, "MARKET_STATS", REQ},
	    {IPC_MARKET_PROVIDER, "MARKET_PROVIDER", 0},
	    {IPC_EVENTS_PULL, "EVENTS_PULL", REQ},
	    {IPC_SELLER_EVENT, "SELLER_EVENT", 0},
	    {65, NULL, 0},
	    {IPC_LEDGER_POST_SPLIT, "LEDGER_POST_SPLIT", REQ},
	    {IPC_EARNINGS, "EARNINGS", REQ},
	    {IPC_EARNINGS_REP, "EARNINGS_REP", FIN},
	    {IPC_DISPUTE_OPEN, "DISPUTE_OPEN", REQ},
	    {IPC_DISPUTE_RESOLVE, "DISPUTE_RESOLVE", REQ},
	    {IPC_DISPUTE_GET, "DISPUTE_GET", REQ},
	    {IPC_DISPUTE_REP, "DISPUTE_REP", FIN},
	    {IPC_TYPE_MAX, NULL, 0},
	    {0xffff, NULL, 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		const char *n = ipc_type_name(rows[i].type);

		EXPECT(bad, (n == NULL) == (rows[i].name == NULL) &&
		    (n == NULL || strcmp(n, rows[i].name) == 0), "name of type %u", rows[i].type);
		EXPECT(bad, ipc_type_flags(rows[i].type) == rows[i].flags, "flags of type %u",
		    rows[i].type);
	}
	/* Every type in the catalogue has a round-trip sample and at most one role flag. */
	for (unsigned t = 0; t < IPC_TYPE_MAX; t++) {
		unsigned f = ipc_type_flags((uint16_t)t);
		int found = 0;

		EXPECT(bad, (f & ~(unsigned)(REQ | FIN | INF)) == 0 && (f & (f - 1)) == 0,
		    "type %u: flags %#x", t, f);

		for (size_t i = 0; i < NELEM(samples); i++)
			found |= samples[i].type == t;
		EXPECT(bad, found == (ipc_type_name((uint16_t)t) != NULL),
		    "type %u: sample present %d", t, found);
		EXPECT(bad, shapes[t].known == (ipc_type_name((uint16_t)t) != NULL),
		    "type %u: shape known %d", t, shapes[t].known);
	}
	assert_int_equal(bad, 0);
}

static void
test_roundtrip(void **state)
{
	uint8_t buf[1024], again[1024];
	union ipc_any m;
	struct ipc_hdr h;
	const char *why;
	int bad = 0;

	(void)state;
	fill_long_strings();
	for (size_t i = 0; i < NELEM(samples); i++) {
		const struct sample *s = &samples[i];
		size_t want = ipc_frame_len(s->type, &s->msg), n;

		n = ipc_encode(s->type, s->id, &s->msg, buf, sizeof(buf));
		EXPECT(bad, n != 0 && n == want, "%s: encode gave %zu, frame_len %zu", s->name, n,
		    want);
		if (n == 0)
			continue;
		/* A buffer one byte short is refused; exactly long enough works. */
		EXPECT(bad, ipc_encode(s->type, s->id, &s->msg, again, n - 1) == 0,
		    "%s: encode into a short buffer", s->name);
		EXPECT(bad, ipc_encode(s->type, s->id, &s->msg, again, n) == n,
		    "%s: encode into an exact buffer", s->name);
		memset(&m, 0xa5, sizeof(m));
		EXPECT(bad, decode_exact(buf, n, &h, &m, &why) == 0, "%s: decode: %s", s->name,
		    why ? why : "?");
		EXPECT(bad, h.len == n && h.type == s->type && h.flags == 0 && h.id == s->id,
		    "%s: header", s->name);
		EXPECT(bad, msg_equal(s->type, &s->msg, &m), "%s: fields differ", s->name);
	}
	assert_int_equal(bad, 0);
}

/* The wire layout, written out by hand from the description in ipc_msg.h. */
static void
test_layout(void **state)
{
	static const uint8_t hello[] = {25, 0, 0, 0, 1, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44,
	    0x33, 0x22, 0x11, 1, 0, 0, 0, ROLE_ROUTER, 4, 3, 2, 1};
	static const uint8_t error[] = {22, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 0,
	    2, 0, 'n', 'o'};
	static const uint8_t health[] = {16, 0, 0, 0, 2, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0x80};
	struct ipc_hello hm = {1, ROLE_ROUTER, 0x01020304};
	struct ipc_error em = {IPC_ERR_REFUSED, "no"};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(ipc_encode(IPC_HELLO, 0x1122334455667788u, &hm, buf, sizeof(buf)),
	    sizeof(hello));
	assert_memory_equal(buf, hello, sizeof(hello));
	assert_int_equal(ipc_encode(IPC_ERROR, 7, &em, buf, sizeof(buf)), sizeof(error));
	assert_memory_equal(buf, error, sizeof(error));
	assert_int_equal(ipc_encode(IPC_HEALTH, 0x80000000000000ffu, NULL, buf, sizeof(buf)),
	    sizeof(health));
	assert_memory_equal(buf, health, sizeof(health));
}

/* Backing for byte strings one past their bound; never read by a correct encoder. */
static uint8_t big[IPC_BODY_MAX + 2];

#define BIG(n) {big, (n)}
#define ROUTE_WITH(prov, meth, path, pool) {prov, meth, path, pool, "eu"}

static struct {
	const char *name;
	uint16_t type;
	union ipc_any msg;
} out_of_bounds[] = {
    /* The first two get their string arrays filled with no NUL: see test_encode_bounds. */
    {"health_rep detail too long", IPC_HEALTH_REP, {.health_rep = {ROLE_EDGE, 1, 1, 0, 0, 0, 0, 0, ""}}},
    {"error detail too long", IPC_ERROR, {.error = {1, ""}}},
    {"unknown type 0", 0, {.hello = {1, ROLE_EDGE, 1}}},
    {"unknown type 7", 7, {.hello = {1, ROLE_EDGE, 1}}},
    {"unknown type IPC_TYPE_MAX", IPC_TYPE_MAX, {.hello = {1, ROLE_EDGE, 1}}},
    {"unknown type 0xffff", 0xffff, {.hello = {1, ROLE_EDGE, 1}}},
    {"hello version 0", IPC_HELLO, {.hello = {0, ROLE_EDGE, 1}}},
    {"hello role 0", IPC_HELLO, {.hello = {1, ROLE_NONE, 1}}},
    {"hello role ROLE_MAX", IPC_HELLO, {.hello = {1, ROLE_MAX, 1}}},
    {"hello role 255", IPC_HELLO, {.hello = {1, 255, 1}}},
    {"hello pid 0", IPC_HELLO, {.hello = {1, ROLE_EDGE, 0}}},
    {"health_rep role 0", IPC_HEALTH_REP, {.health_rep = {ROLE_NONE, 1, 1, 0, 0, 0, 0, 0, ""}}},
    {"health_rep role ROLE_MAX", IPC_HEALTH_REP,
	{.health_rep = {ROLE_MAX, 1, 1, 0, 0, 0, 0, 0, ""}}},
    {"health_rep ready 2", IPC_HEALTH_REP, {.health_rep = {ROLE_EDGE, 2, 1, 0, 0, 0, 0, 0, ""}}},
    {"health_rep pid 0", IPC_HEALTH_REP, {.health_rep = {ROLE_EDGE, 1, 0, 0, 0, 0, 0, 0, ""}}},
    {"health_rep links bit ROLE_MAX", IPC_HEALTH_REP,
	{.health_rep = {ROLE_EDGE, 1, 1, 0, 0, 0, 1u << ROLE_MAX, 0, ""}}},
    {"health_rep wanted all bits", IPC_HEALTH_REP,
	{.health_rep = {ROLE_EDGE, 1, 1, 0, 0, 0, 0, UINT32_MAX, ""}}},
    {"error code 0", IPC_ERROR, {.error = {0, "x"}}},
    {"error code IPC_ERR_MAX", IPC_ERROR, {.error = {IPC_ERR_MAX, "x"}}},
    {"error code 0xffff", IPC_ERROR, {.error = {0xffff, "x"}}},
    {"problem status 399", IPC_PROBLEM, {.problem = {399, "x", ""}}},
    {"problem status 600", IPC_PROBLEM, {.problem = {600, "x", ""}}},
    {"problem without a name", IPC_PROBLEM, {.problem = {402, "", ""}}},
    {"route without a provider", IPC_QUOTE, {.quote = {ROUTE_WITH("", "GET", "/", 0)}}},
    {"route without a method", IPC_QUOTE, {.quote = {ROUTE_WITH("p", "", "/", 0)}}},
    {"route without a path", IPC_QUOTE, {.quote = {ROUTE_WITH("p", "GET", "", 0)}}},
    {"route pool 2", IPC_QUOTE, {.quote = {ROUTE_WITH("p", "GET", "/", 2)}}},
    {"quote_rep amount -1", IPC_QUOTE_REP, {.quote_rep = {-1, 0}}},
    {"quote_rep amount INT64_MIN", IPC_QUOTE_REP, {.quote_rep = {INT64_MIN, 0}}},
    {"challenge without a realm", IPC_CHALLENGE, {.challenge = {ROUTE, "", 1, ""}}},
    {"challenge amount -5", IPC_CHALLENGE, {.challenge = {ROUTE, "r", -5, ""}}},
    {"pay_required status 399", IPC_PAY_REQUIRED, {.pay_required = {399, "", {0}, {0}}}},
    {"pay_required www_auth 16385 bytes", IPC_PAY_REQUIRED,
	{.pay_required = {402, "", BIG(16385), {0}}}},
    {"pay_required body 8193 bytes", IPC_PAY_REQUIRED, {.pay_required = {402, "", {0}, BIG(8193)}}},
    {"verify no credentials", IPC_VERIFY, {.verify = {ROUTE, "r", 1, "", 0, 0, BIG(1)}}},
    {"verify header 2", IPC_VERIFY, {.verify = {ROUTE, "r", 1, "", 1, 2, BIG(1)}}},
    {"verify credential 16385 bytes", IPC_VERIFY, {.verify = {ROUTE, "r", 1, "", 1, 0, BIG(16385)}}},
    {"ticket mac 31 bytes", IPC_TICKET,
	{.ticket = {"pay_1", "tempo", 1, ROUTE, 1, BIG(IPC_MAC_LEN - 1)}}},
    {"ticket mac 33 bytes", IPC_TICKET,
	{.ticket = {"pay_1", "tempo", 1, ROUTE, 1, BIG(IPC_MAC_LEN + 1)}}},
    {"ticket without a mac", IPC_TICKET, {.ticket = {"pay_1", "tempo", 1, ROUTE, 1, {0}}}},
    {"ticket amount -1", IPC_TICKET, {.ticket = {"pay_1", "tempo", -1, ROUTE, 1, BIG(IPC_MAC_LEN)}}},
    {"ticket expires -1", IPC_TICKET, {.ticket = {"pay_1", "tempo", 1, ROUTE, -1, BIG(IPC_MAC_LEN)}}},
    {"ticket without a payment id", IPC_TICKET, {.ticket = {"", "tempo", 1, ROUTE, 1, BIG(IPC_MAC_LEN)}}},
    {"assign with a short ticket mac", IPC_ASSIGN,
	{.assign = {{"pay_1", "tempo", 1, ROUTE, 1, BIG(IPC_MAC_LEN - 1)}, ""}}},
    {"grant award_mac 31 bytes", IPC_GRANT,
	{.grant = {"g", "k", "p", ROUTE, 1, BIG(IPC_MAC_LEN), "s", 1, BIG(IPC_MAC_LEN - 1)}}},
    {"grant seller_price -1", IPC_GRANT,
	{.grant = {"g", "k", "p", ROUTE, 1, BIG(IPC_MAC_LEN), "s", -1, BIG(IPC_MAC_LEN)}}},
    {"forward without a target", IPC_FORWARD, {.forward = {GRANT, "", {0}, {0}}}},
    {"forward headers 65537 bytes", IPC_FORWARD, {.forward = {GRANT, "/", BIG(65537), {0}}}},
    {"forward body one past IPC_BODY_MAX", IPC_FORWARD,
	{.forward = {GRANT, "/", {0}, BIG(IPC_BODY_MAX + 1)}}},
    {"fwd_head status 99", IPC_FWD_HEAD, {.fwd_head = {99, {0}}}},
    {"fwd_head status 600", IPC_FWD_HEAD, {.fwd_head = {600, {0}}}},
    {"fwd_data one past IPC_CHUNK_MAX", IPC_FWD_DATA, {.fwd_data = {BIG(IPC_CHUNK_MAX + 1)}}},
    {"fwd_end ok 2", IPC_FWD_END, {.fwd_end = {2, 0, ""}}},
    {"fwd_end started 2", IPC_FWD_END, {.fwd_end = {1, 2, ""}}},
    {"fwd_ack 0 bytes", IPC_FWD_ACK, {.fwd_ack = {0}}},
    {"fwd_ack one past IPC_BODY_MAX", IPC_FWD_ACK, {.fwd_ack = {IPC_BODY_MAX + 1}}},
    {"outcome status 600", IPC_OUTCOME, {.outcome = {"k", "g", ROUTE, 600, 0, FAIL_NONE}}},
    {"outcome failure past FAIL_CANCEL", IPC_OUTCOME,
	{.outcome = {"k", "g", ROUTE, 200, 0, FAIL_CANCEL + 1}}},
    {"outcome without a key id", IPC_OUTCOME, {.outcome = {"", "g", ROUTE, 200, 0, FAIL_NONE}}},
    {"settle outcome 0", IPC_SETTLE, {.settle = {"p", 0, "", "", 0, {0}}}},
    {"settle outcome 3", IPC_SETTLE, {.settle = {"p", 3, "", "", 0, {0}}}},
    {"settle award_mac 33 bytes", IPC_SETTLE,
	{.settle = {"p", SETTLE_CAPTURE, "k", "s", 1, BIG(IPC_MAC_LEN + 1)}}},
    {"settle seller_price -1", IPC_SETTLE, {.settle = {"p", SETTLE_CAPTURE, "k", "s", -1, {0}}}},
    {"ledger_pending amount 0", IPC_LEDGER_PENDING, {.ledger_pending = {"x", "p", "m", 0}}},
    {"ledger_pending without xfer id", IPC_LEDGER_PENDING, {.ledger_pending = {"", "p", "m", 1}}},
    {"ledger_post seller_amount -1", IPC_LEDGER_POST, {.ledger_post = {"x", "s", -1}}},
    {"ledger_void without xfer id", IPC_LEDGER_VOID, {.ledger_void = {""}}},
    {"ledger_post_split premium -1", IPC_LEDGER_POST_SPLIT,
	{.ledger_post_split = {"x", "s", 1, -1}}},
    {"earnings without a seller", IPC_EARNINGS, {.earnings = {""}}},
    {"earnings_rep pending -1", IPC_EARNINGS_REP,
	{.earnings_rep = {"s", 0, -1, 0, 0, 0, 0, 0}}},
    {"dispute_open without a payment", IPC_DISPUTE_OPEN, {.dispute_open = {"d", ""}}},
    {"dispute_resolve outcome 0", IPC_DISPUTE_RESOLVE, {.dispute_resolve = {"d", 0}}},
    {"dispute_resolve outcome 3", IPC_DISPUTE_RESOLVE, {.dispute_resolve = {"d", 3}}},
    {"dispute_rep state 4", IPC_DISPUTE_REP,
	{.dispute_rep = {"d", "p", "s", "test", 1, 1, 4, 1, 0}}},
    {"key_put sealed one past IPC_SEALED_MAX", IPC_KEY_PUT,
	{.key_put = {"k", "s", "p", 0, "v", BIG(32), BIG(IPC_SEALED_MAX + 1)}}},
    {"key_put sealed one short of IPC_SEALED_MIN", IPC_KEY_PUT,
	{.key_put = {"k", "s", "p", 0, "v", BIG(32), BIG(IPC_SEALED_MIN - 1)}}},
    {"key_put enc 31 bytes", IPC_KEY_PUT,
	{.key_put = {"k", "s", "p", 0, "v", BIG(31), BIG(IPC_SEALED_MIN)}}},
    {"key_put enc 33 bytes", IPC_KEY_PUT,
	{.key_put = {"k", "s", "p", 0, "v", BIG(33), BIG(IPC_SEALED_MIN)}}},
    {"key_put rotate 2", IPC_KEY_PUT,
	{.key_put = {"k", "s", "p", 2, "v", BIG(32), BIG(IPC_SEALED_MIN)}}},
    {"key_put without a kid", IPC_KEY_PUT,
	{.key_put = {"k", "s", "p", 0, "", BIG(32), BIG(IPC_SEALED_MIN)}}},
    {"vault_pubkey_rep public key 31 bytes", IPC_VAULT_PUBKEY_REP,
	{.vault_pubkey_rep = {"v", BIG(31), 1}}},
    {"vault_pubkey_rep created -1", IPC_VAULT_PUBKEY_REP,
	{.vault_pubkey_rep = {"v", BIG(32), -1}}},
    {"listing price -1", IPC_LISTING, {.listing = {"k", "s", "p", -1, "active", 0}}},
    {"listing created -1", IPC_LISTING, {.listing = {"k", "s", "p", 1, "active", -1}}},
    {"listing without status", IPC_LISTING_PUT, {.listing = {"k", "s", "p", 1, "", 0}}},
    {"listing_list without seller", IPC_LISTING_LIST, {.listing_list = {""}}},
    {"listing premium 2", IPC_LISTING_PUT,
	{.listing = {"k", "s", "p", 1, "active", 0, "", 2, "", 0, 0, 0, 0, "", 0}}},
    {"listing score past 10^6", IPC_LISTING,
	{.listing = {"k", "s", "p", 1, "active", 0, "", 0, "", 0, 0, 0, 1000001, "", 0}}},
    {"listing daily_budget -1", IPC_LISTING_PUT,
	{.listing = {"k", "s", "p", 1, "active", 0, "", 0, "", 0, 0, -1, 0, "", 0}}},
    {"listing_get without key", IPC_LISTING_GET, {.listing_get = {"s", ""}}},
    {"market_stats 0 days", IPC_MARKET_STATS, {.market_stats = {0}}},
    {"market_stats 366 days", IPC_MARKET_STATS, {.market_stats = {366}}},
    {"events_pull max 0", IPC_EVENTS_PULL, {.events_pull = {0, 0}}},
    {"events_pull max IPC_EVENTS_MAX + 1", IPC_EVENTS_PULL,
	{.events_pull = {0, IPC_EVENTS_MAX + 1}}},
    {"events_pull after_id -1", IPC_EVENTS_PULL, {.events_pull = {-1, 1}}},
    {"seller_event id 0", IPC_SELLER_EVENT, {.seller_event = {0, "s", "k", "x", "", 0}}},
    {"seller_event without a seller", IPC_SELLER_EVENT,
	{.seller_event = {1, "", "k", "x", "", 0}}},
    {"seller_event without a key", IPC_SELLER_EVENT, {.seller_event = {1, "s", "", "x", "", 0}}},
    {"seller_event without a kind", IPC_SELLER_EVENT,
	{.seller_event = {1, "s", "k", "", "", 0}}},
    {"seller_event created -1", IPC_SELLER_EVENT, {.seller_event = {1, "s", "k", "x", "", -1}}},
    {"outcome retry_after past a day", IPC_OUTCOME,
	{.outcome = {"k", "g", ROUTE, 429, 0, FAIL_NONE, 86401}}},
    {"outcome error_class past ECLASS_QUOTA", IPC_OUTCOME,
	{.outcome = {"k", "g", ROUTE, 429, 0, FAIL_NONE, 0, ECLASS_QUOTA + 1}}},
    {"api without a method", IPC_API, {.api = {"", "/", "", "", {0}}}},
    {"api body one past 1 MiB", IPC_API, {.api = {"GET", "/", "", "", BIG((1u << 20) + 1)}}},
    {"api_rep status 99", IPC_API_REP, {.api_rep = {99, "", {0}}}},
    {"api_rep body one past 4 MiB", IPC_API_REP, {.api_rep = {200, "", BIG((4u << 20) + 1)}}},
};

static void
test_encode_bounds(void **state)
{
	size_t cap = IPC_MAX_FRAME + 4096;
	uint8_t *buf = malloc(cap);
	int bad = 0;

	(void)state;
	assert_non_null(buf);
	memset(out_of_bounds[0].msg.health_rep.detail, 'x',
	    sizeof(out_of_bounds[0].msg.health_rep.detail));
	memset(out_of_bounds[1].msg.error.detail, 'x', sizeof(out_of_bounds[1].msg.error.detail));
	/* The buffer has room for any frame: only the bounds can refuse. */
	for (size_t i = 0; i < NELEM(out_of_bounds); i++) {
		const union ipc_any *m = &out_of_bounds[i].msg;
		uint16_t t = out_of_bounds[i].type;

		EXPECT(bad, ipc_frame_len(t, m) == 0, "%s: frame_len", out_of_bounds[i].name);
		EXPECT(bad, ipc_encode(t, 1, m, buf, cap) == 0, "%s: encode", out_of_bounds[i].name);
	}
	free(buf);
	assert_int_equal(bad, 0);
}

/* The largest byte strings the catalogue allows go through whole. */
static void
test_largest(void **state)
{
	static struct {
		const char *name;
		uint16_t type;
		union ipc_any msg;
	} rows[] = {
	    {"forward body IPC_BODY_MAX", IPC_FORWARD,
		{.forward = {GRANT, "/", BIG(65536), BIG(IPC_BODY_MAX)}}},
	    {"fwd_data IPC_CHUNK_MAX", IPC_FWD_DATA, {.fwd_data = {BIG(IPC_CHUNK_MAX)}}},
	    {"api_rep body 4 MiB", IPC_API_REP, {.api_rep = {200, "", BIG(4u << 20)}}},
	    {"key_put sealed IPC_SEALED_MAX", IPC_KEY_PUT,
		{.key_put = {"k", "s", "p", 1, "v", BIG(32), BIG(IPC_SEALED_MAX)}}},
	};
	size_t cap = IPC_MAX_FRAME;
	uint8_t *buf = malloc(cap);
	union ipc_any m;
	struct ipc_hdr h;
	const char *why;
	int bad = 0;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < NELEM(rows); i++) {
		size_t n = ipc_encode(rows[i].type, 5, &rows[i].msg, buf, cap);

		EXPECT(bad, n != 0 && ipc_decode(buf, n, &h, &m, &why) == 0 &&
		    msg_equal(rows[i].type, &rows[i].msg, &m), "%s", rows[i].name);
	}
	memset(big, 0, sizeof(big));
	free(buf);
	assert_int_equal(bad, 0);
}

/* How a mutation sets the header's length field after patching. */
enum { LEN_KEEP, LEN_FIX };

struct mutation {
	const char *name;
	int base;	/* index into samples */
	size_t off;	/* patch: little-endian value of width bytes at off; width 0: none */
	uint8_t width;
	uint64_t value;
	size_t extra;	/* bytes of fill appended */
	uint8_t fill;
	int len_mode;	/* LEN_FIX: header len = buffer length + delta */
	int delta;
};

/* Field offsets in the base frames, from the layout in ipc_msg.h. */
#define HELLO_VERSION 16
#define HELLO_ROLE 20
#define HELLO_PID 21
#define REP_ROLE 16
#define REP_READY 17
#define REP_PID 18
#define REP_LINKS 46
#define REP_WANTED 50
#define REP_DETAIL_LEN 54
#define REP_DETAIL 56
#define ERR_CODE 16
#define ERR_DETAIL_LEN 18
#define ERR_DETAIL 20

static const struct mutation mutations[] = {
    {"header len one less than the buffer", S_HELLO, 0, 0, 0, 0, 0, LEN_FIX, -1},
    {"header len one more than the buffer", S_HELLO, 0, 0, 0, 0, 0, LEN_FIX, 1},
    {"header len 0", S_HELLO, 0, 4, 0, 0, 0, LEN_KEEP, 0},
    {"header len 15", S_HEALTH, 0, 4, 15, 0, 0, LEN_KEEP, 0},
    {"header len IPC_MAX_FRAME + 1", S_HEALTH, 0, 4, IPC_MAX_FRAME + 1, 0, 0, LEN_KEEP, 0},
    {"header len 4 GiB - 1", S_ERROR, 0, 4, UINT32_MAX, 0, 0, LEN_KEEP, 0},
    {"flags bit 0", S_HELLO, 6, 2, 1, 0, 0, LEN_KEEP, 0},
    {"flags bit 15", S_HEALTH, 6, 2, 0x8000, 0, 0, LEN_KEEP, 0},
    {"flags all bits", S_ERROR, 6, 2, 0xffff, 0, 0, LEN_KEEP, 0},
    {"type 0", S_HEALTH, 4, 2, 0, 0, 0, LEN_KEEP, 0},
    {"type IPC_TYPE_MAX", S_HEALTH, 4, 2, IPC_TYPE_MAX, 0, 0, LEN_KEEP, 0},
    {"type 0x0102", S_HEALTH, 4, 2, 0x0102, 0, 0, LEN_KEEP, 0},
    {"type 0xffff", S_HELLO, 4, 2, 0xffff, 0, 0, LEN_KEEP, 0},
    {"HELLO relabelled ERROR", S_HELLO, 4, 2, IPC_ERROR, 0, 0, LEN_KEEP, 0},
    {"HELLO relabelled HEALTH", S_HELLO, 4, 2, IPC_HEALTH, 0, 0, LEN_KEEP, 0},
    {"ERROR relabelled HELLO", S_ERROR, 4, 2, IPC_HELLO, 0, 0, LEN_KEEP, 0},
    {"ERROR relabelled HEALTH_REP", S_ERROR, 4, 2, IPC_HEALTH_REP, 0, 0, LEN_KEEP, 0},
    {"HEALTH_REP relabelled ERROR", S_HEALTH_REP, 4, 2, IPC_ERROR, 0, 0, LEN_KEEP, 0},
    {"extra byte, header unchanged", S_HELLO, 0, 0, 0, 1, 0, LEN_KEEP, 0},
    {"HELLO trailing byte", S_HELLO, 0, 0, 0, 1, 0, LEN_FIX, 0},
    {"HEALTH with a payload byte", S_HEALTH, 0, 0, 0, 1, 'x', LEN_FIX, 0},
    {"HEALTH_REP trailing byte", S_HEALTH_REP, 0, 0, 0, 1, 'x', LEN_FIX, 0},
    {"ERROR trailing byte", S_ERROR, 0, 0, 0, 1, 0, LEN_FIX, 0},
    {"ERROR trailing 8 bytes", S_ERROR, 0, 0, 0, 8, 0, LEN_FIX, 0},
    {"hello version 0", S_HELLO, HELLO_VERSION, 4, 0, 0, 0, LEN_KEEP, 0},
    {"hello role 0", S_HELLO, HELLO_ROLE, 1, ROLE_NONE, 0, 0, LEN_KEEP, 0},
    {"hello role ROLE_MAX", S_HELLO, HELLO_ROLE, 1, ROLE_MAX, 0, 0, LEN_KEEP, 0},
    {"hello role 255", S_HELLO, HELLO_ROLE, 1, 255, 0, 0, LEN_KEEP, 0},
    {"hello pid 0", S_HELLO, HELLO_PID, 4, 0, 0, 0, LEN_KEEP, 0},
    {"health_rep role 0", S_HEALTH_REP, REP_ROLE, 1, 0, 0, 0, LEN_KEEP, 0},
    {"health_rep role ROLE_MAX", S_HEALTH_REP, REP_ROLE, 1, ROLE_MAX, 0, 0, LEN_KEEP, 0},
    {"health_rep ready 2", S_HEALTH_REP, REP_READY, 1, 2, 0, 0, LEN_KEEP, 0},
    {"health_rep ready 255", S_HEALTH_REP, REP_READY, 1, 255, 0, 0, LEN_KEEP, 0},
    {"health_rep pid 0", S_HEALTH_REP, REP_PID, 4, 0, 0, 0, LEN_KEEP, 0},
    {"health_rep links bit ROLE_MAX", S_HEALTH_REP, REP_LINKS, 4, 1u << ROLE_MAX, 0, 0,
	LEN_KEEP, 0},
    {"health_rep links all bits", S_HEALTH_REP, REP_LINKS, 4, UINT32_MAX, 0, 0, LEN_KEEP, 0},
    {"health_rep wanted bit 31", S_HEALTH_REP, REP_WANTED, 4, 1u << 31, 0, 0, LEN_KEEP, 0},
    {"error code 0", S_ERROR, ERR_CODE, 2, 0, 0, 0, LEN_KEEP, 0},
    {"error code IPC_ERR_MAX", S_ERROR, ERR_CODE, 2, IPC_ERR_MAX, 0, 0, LEN_KEEP, 0},
    {"error code 0xffff", S_ERROR, ERR_CODE, 2, 0xffff, 0, 0, LEN_KEEP, 0},
    {"detail length one past the frame", S_HEALTH_REP, REP_DETAIL_LEN, 2, 4, 0, 0, LEN_KEEP, 0},
    {"detail length 0xffff", S_HEALTH_REP, REP_DETAIL_LEN, 2, 0xffff, 0, 0, LEN_KEEP, 0},
    {"detail length short of the bytes", S_HEALTH_REP, REP_DETAIL_LEN, 2, 2, 0, 0, LEN_KEEP, 0},
    {"error detail length one past the frame", S_ERROR, ERR_DETAIL_LEN, 2, 5, 0, 0, LEN_KEEP, 0},
    {"health_rep detail 128 bytes (bound 127)", S_HEALTH_REP_LONG, REP_DETAIL_LEN, 2, 128, 1,
	'x', LEN_FIX, 0},
    {"error detail 256 bytes (bound 255)", S_ERROR_LONG, ERR_DETAIL_LEN, 2, 256, 1, 'x',
	LEN_FIX, 0},
    {"NUL first in detail", S_HEALTH_REP, REP_DETAIL, 1, 0, 0, 0, LEN_KEEP, 0},
    {"NUL inside detail", S_HEALTH_REP, REP_DETAIL + 1, 1, 0, 0, 0, LEN_KEEP, 0},
    {"NUL last in detail", S_HEALTH_REP, REP_DETAIL + 2, 1, 0, 0, 0, LEN_KEEP, 0},
    {"NUL inside error detail", S_ERROR, ERR_DETAIL + 3, 1, 0, 0, 0, LEN_KEEP, 0},
    {"NUL ending the longest detail", S_HEALTH_REP_LONG, REP_DETAIL + 126, 1, 0, 0, 0,
	LEN_KEEP, 0},
};

/* Build the mutated frame into buf; returns its length. */
static size_t
mutate(const struct mutation *mu, uint8_t *buf, size_t cap)
{
	size_t n = sample_encode(&samples[mu->base], buf, cap);

	assert_true(n + mu->extra <= cap && mu->off + mu->width <= n);
	memset(buf + n, mu->fill, mu->extra);
	n += mu->extra;
	if (mu->width > 0)
		put_le(buf + mu->off, mu->value, mu->width);
	if (mu->len_mode == LEN_FIX)
		put_le(buf, (uint64_t)((int64_t)n + mu->delta), 4);
	return n;
}

static void
test_decode_mutations(void **state)
{
	uint8_t buf[1024], orig[1024];
	union ipc_any m;
	struct ipc_hdr h;
	const char *why;
	int bad = 0;

	(void)state;
	fill_long_strings();
	for (size_t i = 0; i < NELEM(mutations); i++) {
		const struct mutation *mu = &mutations[i];
		size_t n = mutate(mu, buf, sizeof(buf));
		size_t on = sample_encode(&samples[mu->base], orig, sizeof(orig));

		/* A row that changes nothing would test nothing. */
		EXPECT(bad, n != on || memcmp(buf, orig, n) != 0, "%s: no change", mu->name);
		EXPECT(bad, decode_exact(buf, n, &h, &m, &why) == -1 && why != NULL,
		    "%s: decoded", mu->name);
	}
	assert_int_equal(bad, 0);
}

/* Frames built by hand, field by field, to reach the decoder's bounds directly. */
struct fb {
	uint8_t *p;
	size_t len, cap;
};

static void
fb_int(struct fb *b, uint64_t v, size_t w)
{
	assert_true(b->len + w <= b->cap);
	put_le(b->p + b->len, v, w);
	b->len += w;
}

/* n bytes of c, after a length field of width w (0: none) saying len. */
static void
fb_fill(struct fb *b, size_t w, uint64_t len, size_t n, int c)
{
	if (w > 0)
		fb_int(b, len, w);
	assert_true(b->len + n <= b->cap);
	memset(b->p + b->len, c, n);
	b->len += n;
}

static void
fb_str(struct fb *b, const char *s)
{
	size_t n = strlen(s);

	fb_int(b, n, 2);
	assert_true(b->len + n <= b->cap);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
fb_start(struct fb *b, uint16_t type)
{
	b->len = 0;
	fb_int(b, 0, 4); /* the length, set once the frame is complete */
	fb_int(b, type, 2);
	fb_int(b, 0, 2);
	fb_int(b, 1, 8);
}

enum {
	B_QUOTE_REP,
	B_FWD_ACK,
	B_FWD_DATA,
	B_LEDGER_VOID,
	B_FWD_END,
	B_SETTLE,
	B_EVENTS_PULL,
	B_KEY_PUT
};

static const struct built {
	const char *name;
	int kind;
	uint64_t a, b, c; /* see fb_build */
	int ok;
} built[] = {
    {"quote_rep 0, 0", B_QUOTE_REP, 0, 0, 0, 1},
    {"quote_rep INT64_MAX, UINT32_MAX", B_QUOTE_REP, INT64_MAX, UINT32_MAX, 0, 1},
    {"quote_rep amount -1", B_QUOTE_REP, (uint64_t)-1, 0, 0, 0},
    {"quote_rep amount INT64_MIN", B_QUOTE_REP, (uint64_t)INT64_MIN, 0, 0, 0},
    {"fwd_ack 1", B_FWD_ACK, 1, 0, 0, 1},
    {"fwd_ack IPC_BODY_MAX", B_FWD_ACK, IPC_BODY_MAX, 0, 0, 1},
    {"fwd_ack 0", B_FWD_ACK, 0, 0, 0, 0},
    {"fwd_ack IPC_BODY_MAX + 1", B_FWD_ACK, IPC_BODY_MAX + 1, 0, 0, 0},
    {"fwd_data empty", B_FWD_DATA, 0, 0, 0, 1},
    {"fwd_data IPC_CHUNK_MAX NUL bytes", B_FWD_DATA, IPC_CHUNK_MAX, 0, 0, 1},
    {"fwd_data IPC_CHUNK_MAX + 1", B_FWD_DATA, IPC_CHUNK_MAX + 1, 'd', 0, 0},
    {"ledger_void xfer of 71", B_LEDGER_VOID, 71, 'x', 0, 1},
    {"ledger_void xfer of 72", B_LEDGER_VOID, 72, 'x', 0, 0},
    {"ledger_void xfer empty", B_LEDGER_VOID, 0, 'x', 0, 0},
    {"ledger_void xfer of NULs", B_LEDGER_VOID, 3, 0, 0, 0},
    {"fwd_end detail of 127", B_FWD_END, 1, 1, 127, 1},
    {"fwd_end detail of 128", B_FWD_END, 1, 1, 128, 0},
    {"fwd_end ok 2", B_FWD_END, 2, 1, 0, 0},
    {"fwd_end started 2", B_FWD_END, 0, 2, 0, 0},
    {"settle", B_SETTLE, SETTLE_CAPTURE, IPC_MAC_LEN, 0, 1},
    {"settle without award", B_SETTLE, SETTLE_RELEASE, 0, 0, 1},
    {"settle award_mac of 33", B_SETTLE, SETTLE_CAPTURE, IPC_MAC_LEN + 1, 0, 0},
    {"settle outcome 3", B_SETTLE, 3, IPC_MAC_LEN, 0, 0},
    {"events_pull after 0, max 1", B_EVENTS_PULL, 0, 1, 0, 1},
    {"events_pull after INT64_MAX, max IPC_EVENTS_MAX", B_EVENTS_PULL, INT64_MAX,
	IPC_EVENTS_MAX, 0, 1},
    {"events_pull max 0", B_EVENTS_PULL, 7, 0, 0, 0},
    {"events_pull max IPC_EVENTS_MAX + 1", B_EVENTS_PULL, 7, IPC_EVENTS_MAX + 1, 0, 0},
    {"events_pull max 0xffff", B_EVENTS_PULL, 7, 0xffff, 0, 0},
    {"events_pull after_id -1", B_EVENTS_PULL, (uint64_t)-1, 1, 0, 0},
    {"key_put sealed of IPC_SEALED_MAX", B_KEY_PUT, IPC_SEALED_MAX, IPC_SEALED_MAX, 0, 1},
    {"key_put sealed of IPC_SEALED_MAX + 1", B_KEY_PUT, IPC_SEALED_MAX + 1, IPC_SEALED_MAX + 1,
	0, 0},
    {"key_put sealed of IPC_SEALED_MIN - 1", B_KEY_PUT, IPC_SEALED_MIN - 1, IPC_SEALED_MIN - 1,
	0, 0},
    /* A u32 length near 4 GiB must not wrap a bounds check. */
    {"key_put secret length 4 GiB - 1", B_KEY_PUT, UINT32_MAX, 4, 0, 0},
};

static void
fb_build(struct fb *b, const struct built *r)
{
	switch (r->kind) {
	case B_QUOTE_REP: /* a: amount, b: keys */
		fb_start(b, IPC_QUOTE_REP);
		fb_int(b, r->a, 8);
		fb_int(b, r->b, 4);
		break;
	case B_FWD_ACK: /* a: bytes */
		fb_start(b, IPC_FWD_ACK);
		fb_int(b, r->a, 4);
		break;
	case B_FWD_DATA: /* a: length, b: fill byte */
		fb_start(b, IPC_FWD_DATA);
		fb_fill(b, 4, r->a, r->a, (int)r->b);
		break;
	case B_LEDGER_VOID: /* a: length, b: fill byte */
		fb_start(b, IPC_LEDGER_VOID);
		fb_fill(b, 2, r->a, r->a, (int)r->b);
		break;
	case B_FWD_END: /* a: ok, b: started, c: detail length */
		fb_start(b, IPC_FWD_END);
		fb_int(b, r->a, 1);
		fb_int(b, r->b, 1);
		fb_fill(b, 2, r->c, r->c, 'e');
		break;
	case B_SETTLE: /* a: outcome, b: award_mac length */
		fb_start(b, IPC_SETTLE);
		fb_str(b, "pay_1");
		fb_int(b, r->a, 1);
		fb_str(b, "key_1");
		fb_str(b, "seller_1");
		fb_int(b, 1000, 8);
		fb_fill(b, 4, r->b, r->b, 0xee);
		fb_str(b, ""); /* region */
		break;
	case B_EVENTS_PULL: /* a: after_id, b: max */
		fb_start(b, IPC_EVENTS_PULL);
		fb_int(b, r->a, 8);
		fb_int(b, r->b, 2);
		break;
	default: /* B_KEY_PUT: a: sealed length field, b: sealed bytes present */
		fb_start(b, IPC_KEY_PUT);
		fb_str(b, "key_1");
		fb_str(b, "seller_1");
		fb_str(b, "openai");
		fb_int(b, 0, 1);
		fb_str(b, "vk_1");
		fb_fill(b, 4, 32, 32, 'e');
		fb_fill(b, 4, r->a, r->b, 's');
		break;
	}
	put_le(b->p, b->len, 4);
}

static void
test_decode_built(void **state)
{
	struct fb b = {NULL, 0, IPC_CHUNK_MAX + 1024};
	union ipc_any m;
	struct ipc_hdr h;
	const char *why;
	int bad = 0;

	(void)state;
	assert_non_null(b.p = malloc(b.cap));
	for (size_t i = 0; i < NELEM(built); i++) {
		int rc;

		fb_build(&b, &built[i]);
		rc = decode_exact(b.p, b.len, &h, &m, &why);
		EXPECT(bad, (rc == 0) == built[i].ok, "%s: %s", built[i].name,
		    rc == 0 ? "decoded" : why);
	}
	free(b.p);
	assert_int_equal(bad, 0);
}

/* Every prefix of every sample, with the header as sent and with it fixed up. */
static void
test_decode_truncated(void **state)
{
	uint8_t buf[1024];
	union ipc_any m;
	struct ipc_hdr h;
	const char *why;
	int bad = 0;

	(void)state;
	fill_long_strings();
	for (size_t i = 0; i < NELEM(samples); i++) {
		size_t len = sample_encode(&samples[i], buf, sizeof(buf));

		for (size_t n = 0; n < len; n++) {
			EXPECT(bad, decode_exact(buf, n, &h, &m, &why) == -1 && why != NULL,
			    "%s cut to %zu decoded", samples[i].name, n);
			if (n < IPC_HDR_LEN)
				continue;
			put_le(buf, n, 4);
			EXPECT(bad, decode_exact(buf, n, &h, &m, &why) == -1 && why != NULL,
			    "%s cut to %zu with header len %zu decoded", samples[i].name, n, n);
			put_le(buf, len, 4);
		}
		EXPECT(bad, decode_exact(buf, len, &h, &m, &why) == 0, "%s whole", samples[i].name);
	}
	assert_int_equal(bad, 0);
}

static void
test_hdr_read(void **state)
{
	static const struct {
		uint32_t len;
		uint16_t type;
		uint16_t flags;
		int rc;
	} rows[] = {
	    {0, IPC_HELLO, 0, -1},
	    {1, IPC_HELLO, 0, -1},
	    {IPC_HDR_LEN - 1, IPC_HELLO, 0, -1},
	    {IPC_HDR_LEN, IPC_HEALTH, 0, 0},
	    {IPC_HDR_LEN + 1, IPC_HELLO, 0, 0},
	    {IPC_MAX_FRAME, IPC_ERROR, 0, 0},
	    {IPC_MAX_FRAME + 1, IPC_ERROR, 0, -1},
	    {UINT32_MAX, IPC_ERROR, 0, -1},
	    {IPC_HDR_LEN, IPC_HEALTH, 1, -1},
	    {IPC_HDR_LEN, IPC_HEALTH, 0x8000, -1},
	    /* The header reader leaves types to the decoder. */
	    {IPC_HDR_LEN, 0xffff, 0, 0},
	};
	uint8_t buf[IPC_HDR_LEN];
	struct ipc_hdr h;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		put_le(buf, rows[i].len, 4);
		put_le(buf + 4, rows[i].type, 2);
		put_le(buf + 6, rows[i].flags, 2);
		put_le(buf + 8, 0x0123456789abcdefu, 8);
		EXPECT(bad, ipc_hdr_read(buf, &h) == rows[i].rc, "len %u flags %u", rows[i].len,
		    rows[i].flags);
		if (rows[i].rc == 0)
			EXPECT(bad, h.len == rows[i].len && h.type == rows[i].type && h.flags == 0 &&
			    h.id == 0x0123456789abcdefu, "len %u: fields", rows[i].len);
	}
	assert_int_equal(bad, 0);
}

static void
test_roles(void **state)
{
	static const char *const unknown[] = {"", "none", "Router", "router ", "routerx", "rout",
	    "invalid", "max"};
	int bad = 0;

	(void)state;
	for (int r = ROLE_NONE + 1; r < ROLE_MAX; r++) {
		const char *n = ipc_role_name((enum ipc_role)r);

		EXPECT(bad, n != NULL && *n != '\0', "role %d has no name", r);
		EXPECT(bad, ipc_role_parse(n) == (enum ipc_role)r, "role %d (%s) round trip", r, n);
		for (int o = ROLE_NONE + 1; o < r; o++)
			EXPECT(bad, strcmp(n, ipc_role_name((enum ipc_role)o)) != 0,
			    "roles %d and %d share a name", o, r);
	}
	EXPECT(bad, strcmp(ipc_role_name(ROLE_ROUTER), "router") == 0, "router's name");
	EXPECT(bad, strcmp(ipc_role_name(ROLE_CTL), "ctl") == 0, "ctl's name");
	EXPECT(bad, strcmp(ipc_role_name(ROLE_MAX), "invalid") == 0, "ROLE_MAX's name");
	EXPECT(bad, strcmp(ipc_role_name((enum ipc_role)-1), "invalid") == 0, "role -1's name");
	for (size_t i = 0; i < NELEM(unknown); i++)
		EXPECT(bad, ipc_role_parse(unknown[i]) == ROLE_NONE, "\"%s\" parsed", unknown[i]);
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_catalogue),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_encode_bounds),
	    cmocka_unit_test(test_largest),
	    cmocka_unit_test(test_decode_mutations),
	    cmocka_unit_test(test_decode_truncated),
	    cmocka_unit_test(test_decode_built),
	    cmocka_unit_test(test_hdr_read),
	    cmocka_unit_test(test_roles),
	};

	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	free(exact_copy);
	return failed;
}
