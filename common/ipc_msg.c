/*
 * ipc_msg.c — catalogue and codec of cn2's IPC messages.
 *
 * Security stance: every byte decoded here comes from another process, which
 * may be compromised (the edge faces the internet). The codec is table-driven
 * so that every message gets the same checks: bounded integers, bounded
 * strings without NUL, bounded byte strings, and nothing left over at the end.
 */
#include "common/ipc_msg.h"

#include <stddef.h>
#include <string.h>

enum ipc_ftype { F_U8, F_U16, F_U32, F_U64, F_I64, F_STR, F_BYTES };

struct ipc_field {
	uint8_t type;
	uint32_t off;
	int64_t lo; /* integers: lowest value; strings: shortest length */
	int64_t hi; /* integers: highest value; strings: longest length */
};

struct ipc_desc {
	const char *name;
	unsigned flags;
	const struct ipc_field *fields;
	size_t nfields;
};

#define FU8(s, m, lo, hi) {F_U8, offsetof(struct s, m), lo, hi}
#define FU16(s, m, lo, hi) {F_U16, offsetof(struct s, m), lo, hi}
#define FU32(s, m, lo, hi) {F_U32, offsetof(struct s, m), lo, hi}
#define FU64(s, m) {F_U64, offsetof(struct s, m), 0, 0}
#define FI64(s, m, lo, hi) {F_I64, offsetof(struct s, m), lo, hi}
/* Strings are char arrays: the bound is the array size less the NUL. */
#define FSTR(s, m, lo) {F_STR, offsetof(struct s, m), lo, sizeof(((struct s *)0)->m) - 1}
#define FBYTES(s, m, hi) {F_BYTES, offsetof(struct s, m), 0, hi}
#define FMAC(s, m) {F_BYTES, offsetof(struct s, m), IPC_MAC_LEN, IPC_MAC_LEN}
#define FAMOUNT(s, m) FI64(s, m, 0, INT64_MAX)
/* Nested structs: p is the path to the nested member, e.g. route or ticket.route. */
#define FROUTE(s, p)                                  \
	FSTR(s, p.provider, 1), FSTR(s, p.method, 1), \
	    FSTR(s, p.path, 1), FU8(s, p.pool, POOL_STANDARD, POOL_PREMIUM), FSTR(s, p.region, 0)
/* M maps a member name to its path: TOP(x) is x, IN_TICKET(x) is ticket.x, … */
#define TOP(x) x
#define IN_TICKET(x) ticket.x
#define IN_GRANT(x) grant.x
#define FTICKET(s, M)                                                                     \
	FSTR(s, M(payment_id), 1), FSTR(s, M(pay_method), 1), FAMOUNT(s, M(amount)),       \
	    FROUTE(s, M(route)), FI64(s, M(expires), 0, INT64_MAX), FMAC(s, M(mac))
#define FGRANT(s, M)                                                                      \
	FSTR(s, M(grant_id), 1), FSTR(s, M(key_id), 1), FSTR(s, M(payment_id), 1),           \
	    FROUTE(s, M(route)), FI64(s, M(expires), 0, INT64_MAX), FMAC(s, M(mac)),          \
	    FSTR(s, M(seller_id), 1), FAMOUNT(s, M(seller_price)), FMAC(s, M(award_mac))
#define NF(a) (sizeof(a) / sizeof((a)[0]))

static const struct ipc_field hello_fields[] = {
    FU32(ipc_hello, version, 1, UINT32_MAX),
    FU8(ipc_hello, role, ROLE_NONE + 1, ROLE_MAX - 1),
    FU32(ipc_hello, pid, 1, UINT32_MAX),
};

static const struct ipc_field health_rep_fields[] = {
    FU8(ipc_health_rep, role, ROLE_NONE + 1, ROLE_MAX - 1),
    FU8(ipc_health_rep, ready, 0, 1),
    FU32(ipc_health_rep, pid, 1, UINT32_MAX),
    FU64(ipc_health_rep, uptime_ms),
    FU64(ipc_health_rep, requests),
    FU64(ipc_health_rep, errors),
    FU32(ipc_health_rep, links, 0, (1u << ROLE_MAX) - 1),
    FU32(ipc_health_rep, wanted, 0, (1u << ROLE_MAX) - 1),
    FSTR(ipc_health_rep, detail, 0),
};

static const struct ipc_field error_fields[] = {
    FU16(ipc_error, code, 1, IPC_ERR_MAX - 1),
    FSTR(ipc_error, detail, 0),
};

static const struct ipc_field problem_fields[] = {
    FU16(ipc_problem, status, 400, 599),
    FSTR(ipc_problem, name, 1),
    FSTR(ipc_problem, detail, 0),
};

static const struct ipc_field quote_fields[] = {FROUTE(ipc_quote, route)};

static const struct ipc_field quote_rep_fields[] = {
    FAMOUNT(ipc_quote_rep, amount),
    FU32(ipc_quote_rep, keys, 0, UINT32_MAX),
};

static const struct ipc_field challenge_fields[] = {
    FROUTE(ipc_challenge, route),
    FSTR(ipc_challenge, realm, 1),
    FAMOUNT(ipc_challenge, amount),
    FSTR(ipc_challenge, accept, 0),
};

static const struct ipc_field pay_required_fields[] = {
    FU16(ipc_pay_required, status, 400, 599),
    FSTR(ipc_pay_required, challenge_id, 0),
    FBYTES(ipc_pay_required, www_auth, 16384),
    FBYTES(ipc_pay_required, body, 8192),
};

static const struct ipc_field verify_fields[] = {
    FROUTE(ipc_verify, route),
    FSTR(ipc_verify, realm, 1),
    FAMOUNT(ipc_verify, amount),
    FSTR(ipc_verify, accept, 0),
    FU8(ipc_verify, ncredentials, 1, 255),
    FU8(ipc_verify, header, 0, 1),
    FBYTES(ipc_verify, credential, 16384),
};



static const struct ipc_field ticket_fields[] = {FTICKET(ipc_ticket, TOP)};

static const struct ipc_field assign_fields[] = {
    FTICKET(ipc_assign, IN_TICKET),
    FSTR(ipc_assign, exclude, 0),
    FSTR(ipc_assign, session, 0),
};



static const struct ipc_field grant_fields[] = {FGRANT(ipc_grant, TOP), FSTR(ipc_grant, region, 0)};

static const struct ipc_field forward_fields[] = {
    FGRANT(ipc_forward, IN_GRANT),
    FSTR(ipc_forward, target, 1),
    FBYTES(ipc_forward, headers, 65536),
    FBYTES(ipc_forward, body, IPC_BODY_MAX),
};

static const struct ipc_field fwd_head_fields[] = {
    FU16(ipc_fwd_head, status, 100, 599),
    FBYTES(ipc_fwd_head, headers, 65536),
};

static const struct ipc_field fwd_data_fields[] = {FBYTES(ipc_fwd_data, data, IPC_CHUNK_MAX)};

static const struct ipc_field fwd_end_fields[] = {
    FU8(ipc_fwd_end, ok, 0, 1),
    FU8(ipc_fwd_end, started, 0, 1),
    FSTR(ipc_fwd_end, detail, 0),
};

static const struct ipc_field fwd_ack_fields[] = {FU32(ipc_fwd_ack, bytes, 1, IPC_BODY_MAX)};

static const struct ipc_field outcome_fields[] = {
    FSTR(ipc_outcome, key_id, 1),
    FSTR(ipc_outcome, grant_id, 1),
    FROUTE(ipc_outcome, route),
    FU16(ipc_outcome, status, 0, 599),
    FU32(ipc_outcome, latency_ms, 0, UINT32_MAX),
    FU8(ipc_outcome, failure, FAIL_NONE, FAIL_CANCEL),
    FU32(ipc_outcome, retry_after_s, 0, 86400),
    FU8(ipc_outcome, error_class, ECLASS_NONE, ECLASS_QUOTA),
};

static const struct ipc_field settle_fields[] = {
    FSTR(ipc_settle, payment_id, 1),
    FU8(ipc_settle, outcome, SETTLE_CAPTURE, SETTLE_RELEASE),
    FSTR(ipc_settle, key_id, 0),
    FSTR(ipc_settle, seller_id, 0),
    FAMOUNT(ipc_settle, seller_price),
    FBYTES(ipc_settle, award_mac, IPC_MAC_LEN),
    FSTR(ipc_settle, region, 0),
};

static const struct ipc_field settled_fields[] = {FSTR(ipc_settled, receipt, 0)};

static const struct ipc_field ledger_pending_fields[] = {
    FSTR(ipc_ledger_pending, xfer_id, 1),
    FSTR(ipc_ledger_pending, payment_ref, 1),
    FSTR(ipc_ledger_pending, pay_method, 1),
    FI64(ipc_ledger_pending, amount, 1, INT64_MAX),
};

static const struct ipc_field ledger_post_fields[] = {
    FSTR(ipc_ledger_post, xfer_id, 1),
    FSTR(ipc_ledger_post, seller_id, 1),
    FAMOUNT(ipc_ledger_post, seller_amount),
};

static const struct ipc_field ledger_void_fields[] = {FSTR(ipc_ledger_void, xfer_id, 1)};

static const struct ipc_field key_put_fields[] = {
    FSTR(ipc_key_put, key_id, 1),
    FSTR(ipc_key_put, seller_id, 1),
    FSTR(ipc_key_put, provider, 1),
    FU8(ipc_key_put, rotate, 0, 1),
    FSTR(ipc_key_put, kid, 1),
    {F_BYTES, offsetof(struct ipc_key_put, enc), 32, 32},
    {F_BYTES, offsetof(struct ipc_key_put, sealed), IPC_SEALED_MIN, IPC_SEALED_MAX},
};

static const struct ipc_field vault_pubkey_rep_fields[] = {
    FSTR(ipc_vault_pubkey_rep, kid, 1),
    {F_BYTES, offsetof(struct ipc_vault_pubkey_rep, public_key), 32, 32},
    FI64(ipc_vault_pubkey_rep, created, 0, INT64_MAX),
};

static const struct ipc_field listing_fields[] = {
    FSTR(ipc_listing, key_id, 1),
    FSTR(ipc_listing, seller_id, 1),
    FSTR(ipc_listing, provider, 1),
    FAMOUNT(ipc_listing, price),
    FSTR(ipc_listing, status, 1),
    FI64(ipc_listing, created, 0, INT64_MAX),
    FSTR(ipc_listing, region, 0),
    FU8(ipc_listing, premium, 0, 1),
    FSTR(ipc_listing, routes, 0),
    FU32(ipc_listing, rpm, 0, 1000000),
    FU32(ipc_listing, rpd, 0, 10000000),
    FAMOUNT(ipc_listing, daily_budget),
    FU32(ipc_listing, score, 0, 1000000),
    FSTR(ipc_listing, reason, 0),
    FI64(ipc_listing, updated, 0, INT64_MAX),
};

static const struct ipc_field listing_list_fields[] = {FSTR(ipc_listing_list, seller_id, 1)};

static const struct ipc_field listing_get_fields[] = {
    FSTR(ipc_listing_get, seller_id, 1),
    FSTR(ipc_listing_get, key_id, 1),
};

static const struct ipc_field market_stats_fields[] = {FU16(ipc_market_stats, days, 1, 365)};

static const struct ipc_field market_provider_fields[] = {
    FSTR(ipc_market_provider, provider, 1),
    FU32(ipc_market_provider, keys, 0, UINT32_MAX),
    FU32(ipc_market_provider, premium_keys, 0, UINT32_MAX),
    FU32(ipc_market_provider, eu_keys, 0, UINT32_MAX),
    FAMOUNT(ipc_market_provider, price_min),
    FAMOUNT(ipc_market_provider, price_max),
    FU64(ipc_market_provider, requests),
    FU64(ipc_market_provider, ok),
    FU64(ipc_market_provider, failed),
    FU32(ipc_market_provider, latency_ms, 0, UINT32_MAX),
};

static const struct ipc_field events_pull_fields[] = {
    FI64(ipc_events_pull, after_id, 0, INT64_MAX),
    FU16(ipc_events_pull, max, 1, IPC_EVENTS_MAX),
};

static const struct ipc_field seller_event_fields[] = {
    FI64(ipc_seller_event, id, 1, INT64_MAX),
    FSTR(ipc_seller_event, seller_id, 1),
    FSTR(ipc_seller_event, key_id, 1),
    FSTR(ipc_seller_event, kind, 1),
    FSTR(ipc_seller_event, detail, 0),
    FI64(ipc_seller_event, created, 0, INT64_MAX),
};

static const struct ipc_field api_fields[] = {
    FSTR(ipc_api, method, 1),
    FSTR(ipc_api, target, 1),
    FSTR(ipc_api, authorization, 0),
    FSTR(ipc_api, content_type, 0),
    FBYTES(ipc_api, body, 1u << 20),
};

static const struct ipc_field api_rep_fields[] = {
    FU16(ipc_api_rep, status, 100, 599),
    FSTR(ipc_api_rep, content_type, 0),
    FBYTES(ipc_api_rep, body, 4u << 20),
};

#define IN_VERIFY(x) verify.x
static const struct ipc_field verify_idem_fields[] = {
    FROUTE(ipc_verify_idem, IN_VERIFY(route)),
    FSTR(ipc_verify_idem, verify.realm, 1),
    FAMOUNT(ipc_verify_idem, verify.amount),
    FSTR(ipc_verify_idem, verify.accept, 0),
    FU8(ipc_verify_idem, verify.ncredentials, 1, 255),
    FU8(ipc_verify_idem, verify.header, 0, 1),
    FBYTES(ipc_verify_idem, verify.credential, 16384),
    FSTR(ipc_verify_idem, idem_key, 1),
    FMAC(ipc_verify_idem, body_hash),
};

static const struct ipc_field pay_problem_fields[] = {
    FU16(ipc_pay_problem, status, 400, 599),
    FU32(ipc_pay_problem, retry_after, 0, 86400),
    FSTR(ipc_pay_problem, challenge_id, 0),
    FBYTES(ipc_pay_problem, www_auth, 16384),
    FBYTES(ipc_pay_problem, body, 8192),
};

static const struct ipc_field ledger_post_split_fields[] = {
    FSTR(ipc_ledger_post_split, xfer_id, 1),
    FSTR(ipc_ledger_post_split, seller_id, 1),
    FAMOUNT(ipc_ledger_post_split, seller_amount),
    FAMOUNT(ipc_ledger_post_split, premium_amount),
};

static const struct ipc_field earnings_fields[] = {FSTR(ipc_earnings, seller_id, 1)};

static const struct ipc_field earnings_rep_fields[] = {
    FSTR(ipc_earnings_rep, seller_id, 1),
    FI64(ipc_earnings_rep, available, INT64_MIN, INT64_MAX),
    FAMOUNT(ipc_earnings_rep, pending),
    FAMOUNT(ipc_earnings_rep, in_dispute),
    FI64(ipc_earnings_rep, paid_out, INT64_MIN, INT64_MAX),
    FAMOUNT(ipc_earnings_rep, earned),
    FAMOUNT(ipc_earnings_rep, hold_s),
    FAMOUNT(ipc_earnings_rep, as_of),
};

static const struct ipc_field dispute_open_fields[] = {
    FSTR(ipc_dispute_open, dispute_id, 1),
    FSTR(ipc_dispute_open, payment_ref, 1),
};

static const struct ipc_field dispute_resolve_fields[] = {
    FSTR(ipc_dispute_resolve, dispute_id, 1),
    FU8(ipc_dispute_resolve, outcome, DISPUTE_FOR_SELLER, DISPUTE_FOR_BUYER),
};

static const struct ipc_field dispute_get_fields[] = {FSTR(ipc_dispute_get, dispute_id, 1)};

static const struct ipc_field dispute_rep_fields[] = {
    FSTR(ipc_dispute_rep, dispute_id, 1),
    FSTR(ipc_dispute_rep, payment_ref, 1),
    FSTR(ipc_dispute_rep, seller_id, 1),
    FSTR(ipc_dispute_rep, pay_method, 1),
    FAMOUNT(ipc_dispute_rep, amount),
    FAMOUNT(ipc_dispute_rep, seller_amount),
    FU8(ipc_dispute_rep, state, DISPUTE_OPEN, DISPUTE_REFUNDED),
    FAMOUNT(ipc_dispute_rep, opened),
    FAMOUNT(ipc_dispute_rep, resolved),
};

#define REQ IPC_MF_REQUEST
#define FIN IPC_MF_FINAL
#define INF IPC_MF_INFLIGHT
#define MSG(name, flags, fields) {name, flags, fields, NF(fields)}

static const struct ipc_desc catalogue[IPC_TYPE_MAX] = {
    [IPC_HELLO] = MSG("HELLO", 0, hello_fields),
    [IPC_HEALTH] = {"HEALTH", REQ, NULL, 0},
    [IPC_HEALTH_REP] = MSG("HEALTH_REP", FIN, health_rep_fields),
    [IPC_ERROR] = MSG("ERROR", FIN, error_fields),
    [IPC_ACK] = {"ACK", FIN, NULL, 0},
    [IPC_PROBLEM] = MSG("PROBLEM", FIN, problem_fields),
    [IPC_QUOTE] = MSG("QUOTE", REQ, quote_fields),
    [IPC_QUOTE_REP] = MSG("QUOTE_REP", FIN, quote_rep_fields),
    [IPC_CHALLENGE] = MSG("CHALLENGE", REQ, challenge_fields),
    [IPC_PAY_REQUIRED] = MSG("PAY_REQUIRED", FIN, pay_required_fields),
    [IPC_VERIFY] = MSG("VERIFY", REQ, verify_fields),
    [IPC_TICKET] = MSG("TICKET", FIN, ticket_fields),
    [IPC_ASSIGN] = MSG("ASSIGN", REQ, assign_fields),
    [IPC_GRANT] = MSG("GRANT", FIN, grant_fields),
    [IPC_FORWARD] = MSG("FORWARD", REQ, forward_fields),
    [IPC_FWD_HEAD] = MSG("FWD_HEAD", 0, fwd_head_fields),
    [IPC_FWD_DATA] = MSG("FWD_DATA", 0, fwd_data_fields),
    [IPC_FWD_END] = MSG("FWD_END", FIN, fwd_end_fields),
    [IPC_FWD_ACK] = MSG("FWD_ACK", INF, fwd_ack_fields),
    [IPC_FWD_CANCEL] = {"FWD_CANCEL", INF, NULL, 0},
    [IPC_OUTCOME] = MSG("OUTCOME", REQ, outcome_fields),
    [IPC_SETTLE] = MSG("SETTLE", REQ, settle_fields),
    [IPC_SETTLED] = MSG("SETTLED", FIN, settled_fields),
    [IPC_LEDGER_PENDING] = MSG("LEDGER_PENDING", REQ, ledger_pending_fields),
    [IPC_LEDGER_POST] = MSG("LEDGER_POST", REQ, ledger_post_fields),
    [IPC_LEDGER_VOID] = MSG("LEDGER_VOID", REQ, ledger_void_fields),
    [IPC_KEY_PUT] = MSG("KEY_PUT", REQ, key_put_fields),
    [IPC_LISTING_PUT] = MSG("LISTING_PUT", REQ, listing_fields),
    [IPC_LISTING_LIST] = MSG("LISTING_LIST", REQ, listing_list_fields),
    [IPC_LISTING] = MSG("LISTING", 0, listing_fields),
    [IPC_API] = MSG("API", REQ, api_fields),
    [IPC_API_REP] = MSG("API_REP", FIN, api_rep_fields),
    [IPC_VERIFY_IDEM] = MSG("VERIFY_IDEM", REQ, verify_idem_fields),
    [IPC_PAY_PROBLEM] = MSG("PAY_PROBLEM", FIN, pay_problem_fields),
    [IPC_LISTING_GET] = MSG("LISTING_GET", REQ, listing_get_fields),
    [IPC_MARKET_STATS] = MSG("MARKET_STATS", REQ, market_stats_fields),
    [IPC_MARKET_PROVIDER] = MSG("MARKET_PROVIDER", 0, market_provider_fields),
    [IPC_EVENTS_PULL] = MSG("EVENTS_PULL", REQ, events_pull_fields),
    [IPC_SELLER_EVENT] = MSG("SELLER_EVENT", 0, seller_event_fields),
    [IPC_VAULT_PUBKEY] = {"VAULT_PUBKEY", REQ, NULL, 0},
    [IPC_VAULT_PUBKEY_REP] = MSG("VAULT_PUBKEY_REP", FIN, vault_pubkey_rep_fields),
    [IPC_LEDGER_POST_SPLIT] = MSG("LEDGER_POST_SPLIT", REQ, ledger_post_split_fields),
    [IPC_EARNINGS] = MSG("EARNINGS", REQ, earnings_fields),
    [IPC_EARNINGS_REP] = MSG("EARNINGS_REP", FIN, earnings_rep_fields),
    [IPC_DISPUTE_OPEN] = MSG("DISPUTE_OPEN", REQ, dispute_open_fields),
    [IPC_DISPUTE_RESOLVE] = MSG("DISPUTE_RESOLVE", REQ, dispute_resolve_fields),
    [IPC_DISPUTE_GET] = MSG("DISPUTE_GET", REQ, dispute_get_fields),
    [IPC_DISPUTE_REP] = MSG("DISPUTE_REP", FIN, dispute_rep_fields),
};

static const char *const role_names[ROLE_MAX] = {
    [ROLE_NONE] = "none",     [ROLE_EDGE] = "edge",	[ROLE_PAYMENTS] = "payments",
    [ROLE_ROUTER] = "router", [ROLE_VAULT] = "vault", [ROLE_LEDGER] = "ledger",
    [ROLE_PLATFORM] = "platform", [ROLE_CTL] = "ctl",
};

const char *
ipc_role_name(enum ipc_role role)
{
	return (unsigned)role < ROLE_MAX ? role_names[role] : "invalid";
}

enum ipc_role
ipc_role_parse(const char *name)
{
	for (int r = ROLE_NONE + 1; r < ROLE_MAX; r++)
		if (strcmp(name, role_names[r]) == 0)
			return (enum ipc_role)r;
	return ROLE_NONE;
}

static const struct ipc_desc *
desc_get(uint16_t type)
{
	if (type >= IPC_TYPE_MAX || catalogue[type].name == NULL)
		return NULL;
	return &catalogue[type];
}

const char *
ipc_type_name(uint16_t type)
{
	const struct ipc_desc *d = desc_get(type);

	return d != NULL ? d->name : NULL;
}

unsigned
ipc_type_flags(uint16_t type)
{
	const struct ipc_desc *d = desc_get(type);

	return d != NULL ? d->flags : 0;
}

/* Little-endian integer I/O. */

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static size_t
int_width(uint8_t type)
{
	switch (type) {
	case F_U8:
		return 1;
	case F_U16:
		return 2;
	case F_U32:
		return 4;
	default:
		return 8;
	}
}

/* Read an integer field of the struct as uint64 (i64 as its two's complement). */
static uint64_t
field_get_int(const struct ipc_field *f, const void *msg)
{
	const uint8_t *p = (const uint8_t *)msg + f->off;

	switch (f->type) {
	case F_U8:
		return *p;
	case F_U16:
		return *(const uint16_t *)(const void *)p;
	case F_U32:
		return *(const uint32_t *)(const void *)p;
	default:
		return *(const uint64_t *)(const void *)p;
	}
}

static void
field_set_int(const struct ipc_field *f, void *msg, uint64_t v)
{
	uint8_t *p = (uint8_t *)msg + f->off;

	switch (f->type) {
	case F_U8:
		*p = (uint8_t)v;
		break;
	case F_U16:
		*(uint16_t *)(void *)p = (uint16_t)v;
		break;
	case F_U32:
		*(uint32_t *)(void *)p = (uint32_t)v;
		break;
	default:
		*(uint64_t *)(void *)p = v;
		break;
	}
}

/* Is the integer value in the field's bounds? U64 fields are unbounded. */
static int
int_in_bounds(const struct ipc_field *f, uint64_t v)
{
	if (f->type == F_U64)
		return 1;
	if (f->type == F_I64)
		return (int64_t)v >= f->lo && (int64_t)v <= f->hi;
	return v >= (uint64_t)f->lo && v <= (uint64_t)f->hi;
}

/* Length of a string/bytes field, or -1 if out of bounds. */
static int64_t
blob_len(const struct ipc_field *f, const void *msg)
{
	const uint8_t *p = (const uint8_t *)msg + f->off;
	int64_t n;

	if (f->type == F_STR)
		n = (int64_t)strnlen((const char *)p, (size_t)f->hi + 1);
	else
		n = ((const struct ipc_bytes *)(const void *)p)->len;
	return n >= f->lo && n <= f->hi ? n : -1;
}

size_t
ipc_frame_len(uint16_t type, const void *msg)
{
	const struct ipc_desc *d = desc_get(type);
	size_t len = IPC_HDR_LEN;

	if (d == NULL)
		return 0;
	for (size_t i = 0; i < d->nfields; i++) {
		const struct ipc_field *f = &d->fields[i];
		int64_t n;

		if (f->type == F_STR || f->type == F_BYTES) {
			if ((n = blob_len(f, msg)) < 0)
				return 0;
			len += (f->type == F_STR ? 2 : 4) + (size_t)n;
		} else {
			if (!int_in_bounds(f, field_get_int(f, msg)))
				return 0;
			len += int_width(f->type);
		}
	}
	return len <= IPC_MAX_FRAME ? len : 0;
}

static uint8_t *
encode_field(const struct ipc_field *f, const void *msg, uint8_t *p)
{
	const uint8_t *src = (const uint8_t *)msg + f->off;
	size_t n;

	switch (f->type) {
	case F_STR:
		n = strlen((const char *)src);
		put_le(p, n, 2);
		memcpy(p + 2, src, n);
		return p + 2 + n;
	case F_BYTES: {
		const struct ipc_bytes *b = (const void *)src;

		put_le(p, b->len, 4);
		if (b->len > 0)
			memcpy(p + 4, b->p, b->len);
		return p + 4 + b->len;
	}
	default:
		n = int_width(f->type);
		put_le(p, field_get_int(f, msg), n);
		return p + n;
	}
}

size_t
ipc_encode(uint16_t type, uint64_t id, const void *msg, uint8_t *buf, size_t cap)
{
	const struct ipc_desc *d = desc_get(type);
	size_t len = ipc_frame_len(type, msg);
	uint8_t *p = buf + IPC_HDR_LEN;

	if (len == 0 || len > cap)
		return 0;
	put_le(buf, len, 4);
	put_le(buf + 4, type, 2);
	put_le(buf + 6, 0, 2);
	put_le(buf + 8, id, 8);
	for (size_t i = 0; i < d->nfields; i++)
		p = encode_field(&d->fields[i], msg, p);
	return len;
}

int
ipc_hdr_read(const uint8_t *buf, struct ipc_hdr *hdr)
{
	hdr->len = (uint32_t)get_le(buf, 4);
	hdr->type = (uint16_t)get_le(buf + 4, 2);
	hdr->flags = (uint16_t)get_le(buf + 6, 2);
	hdr->id = get_le(buf + 8, 8);
	if (hdr->len < IPC_HDR_LEN || hdr->len > IPC_MAX_FRAME || hdr->flags != 0)
		return -1;
	return 0;
}

/* Decode one blob field at *pp; -1 if it does not fit or is out of bounds. */
static int
decode_blob(const struct ipc_field *f, const uint8_t **pp, const uint8_t *end, void *msg)
{
	size_t w = f->type == F_STR ? 2 : 4;
	const uint8_t *p = *pp;
	uint64_t n;

	if ((size_t)(end - p) < w)
		return -1;
	n = get_le(p, w);
	p += w;
	if (n > (uint64_t)(end - p) || (int64_t)n < f->lo || (int64_t)n > f->hi)
		return -1;
	if (f->type == F_STR) {
		char *dst = (char *)msg + f->off;

		if (memchr(p, '\0', n) != NULL)
			return -1;
		memcpy(dst, p, n);
		dst[n] = '\0';
	} else {
		struct ipc_bytes *b = (void *)((uint8_t *)msg + f->off);

		b->p = n > 0 ? p : NULL;
		b->len = (uint32_t)n;
	}
	*pp = p + n;
	return 0;
}

static int
decode_int(const struct ipc_field *f, const uint8_t **pp, const uint8_t *end, void *msg)
{
	size_t w = int_width(f->type);
	uint64_t v;

	if ((size_t)(end - *pp) < w)
		return -1;
	v = get_le(*pp, w);
	if (!int_in_bounds(f, v))
		return -1;
	field_set_int(f, msg, v);
	*pp += w;
	return 0;
}

int
ipc_decode(const uint8_t *buf, size_t len, struct ipc_hdr *hdr, union ipc_any *msg,
    const char **why)
{
	const struct ipc_desc *d;
	const uint8_t *p, *end = buf + len;

	if (len < IPC_HDR_LEN || ipc_hdr_read(buf, hdr) != 0 || hdr->len != len) {
		*why = "bad frame header";
		return -1;
	}
	/* Only now is buf + IPC_HDR_LEN inside the buffer (or one past its end). */
	p = buf + IPC_HDR_LEN;
	if ((d = desc_get(hdr->type)) == NULL) {
		*why = "unknown message type";
		return -1;
	}
	memset(msg, 0, sizeof(*msg));
	for (size_t i = 0; i < d->nfields; i++) {
		const struct ipc_field *f = &d->fields[i];
		int rc = (f->type == F_STR || f->type == F_BYTES) ? decode_blob(f, &p, end, msg)
								    : decode_int(f, &p, end, msg);
		if (rc != 0) {
			*why = "field truncated or out of bounds";
			return -1;
		}
	}
	if (p != end) {
		*why = "trailing bytes after the last field";
		return -1;
	}
	return 0;
}
