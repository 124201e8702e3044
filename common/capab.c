/*
 * capab.c — ticket, award and grant MACs. See capab.h.
 *
 * Encoding: the label, then each field as a 4-byte little-endian length and
 * its bytes (integers as 8 bytes, little-endian), so no two different field
 * lists can encode the same.
 */
#include "common/capab.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <string.h>

struct mac {
	mbedtls_md_context_t ctx;
	int err;
};

static void
mac_bytes(struct mac *m, const void *p, size_t n)
{
	uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};

	if (m->err == 0)
		m->err = mbedtls_md_hmac_update(&m->ctx, len, sizeof(len));
	if (m->err == 0 && n > 0)
		m->err = mbedtls_md_hmac_update(&m->ctx, p, n);
}

static void
mac_str(struct mac *m, const char *s)
{
	mac_bytes(m, s, strlen(s));
}

static void
mac_i64(struct mac *m, int64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)v >> (8 * i));
	mac_bytes(m, b, sizeof(b));
}

static int
mac_begin(struct mac *m, const uint8_t *key, size_t keylen, const char *label)
{
	mbedtls_md_init(&m->ctx);
	m->err = mbedtls_md_setup(&m->ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
	if (m->err == 0)
		m->err = mbedtls_md_hmac_starts(&m->ctx, key, keylen);
	mac_str(m, label);
	return m->err;
}

static int
mac_end(struct mac *m, uint8_t out[IPC_MAC_LEN])
{
	if (m->err == 0)
		m->err = mbedtls_md_hmac_finish(&m->ctx, out);
	mbedtls_md_free(&m->ctx);
	return m->err == 0 ? 0 : -1;
}

static void
mac_route(struct mac *m, const struct ipc_route *r)
{
	mac_str(m, r->provider);
	mac_str(m, r->method);
	mac_str(m, r->path);
	mac_i64(m, r->pool);
	mac_str(m, r->region);
}

int
capab_ticket_mac(const uint8_t *key, size_t keylen, const struct ipc_ticket *t,
    uint8_t out[IPC_MAC_LEN])
{
	struct mac m;

	mac_begin(&m, key, keylen, "cn2 ticket v1");
	mac_str(&m, t->payment_id);
	mac_str(&m, t->pay_method);
	mac_i64(&m, t->amount);
	mac_route(&m, &t->route);
	mac_i64(&m, t->expires);
	return mac_end(&m, out);
}

int
capab_grant_mac(const uint8_t *key, size_t keylen, const struct ipc_grant *g,
    uint8_t out[IPC_MAC_LEN])
{
	struct mac m;

	mac_begin(&m, key, keylen, "cn2 grant v1");
	mac_str(&m, g->grant_id);
	mac_str(&m, g->key_id);
	mac_str(&m, g->payment_id);
	mac_route(&m, &g->route);
	mac_i64(&m, g->expires);
	return mac_end(&m, out);
}

int
capab_award_mac(const uint8_t *key, size_t keylen, const char *payment_id, const char *key_id,
    const char *seller_id, int64_t seller_price, uint8_t out[IPC_MAC_LEN])
{
	struct mac m;

	mac_begin(&m, key, keylen, "cn2 award v1");
	mac_str(&m, payment_id);
	mac_str(&m, key_id);
	mac_str(&m, seller_id);
	mac_i64(&m, seller_price);
	return mac_end(&m, out);
}

int
capab_equal(const struct ipc_bytes *mac, const uint8_t want[IPC_MAC_LEN])
{
	if (mac->len != IPC_MAC_LEN || mac->p == NULL)
		return -1;
	return mbedtls_ct_memcmp(mac->p, want, IPC_MAC_LEN) == 0 ? 0 : -1;
}
