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

static const struct ipc_desc catalogue[IPC_TYPE_MAX] = {
    [IPC_HELLO] = {"HELLO", 0, hello_fields, NF(hello_fields)},
    [IPC_HEALTH] = {"HEALTH", IPC_MF_REQUEST, NULL, 0},
    [IPC_HEALTH_REP] = {"HEALTH_REP", IPC_MF_FINAL, health_rep_fields, NF(health_rep_fields)},
    [IPC_ERROR] = {"ERROR", IPC_MF_FINAL, error_fields, NF(error_fields)},
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
	const uint8_t *p = buf + IPC_HDR_LEN, *end = buf + len;

	if (len < IPC_HDR_LEN || ipc_hdr_read(buf, hdr) != 0 || hdr->len != len) {
		*why = "bad frame header";
		return -1;
	}
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
