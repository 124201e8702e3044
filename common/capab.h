/*
 * capab.h — the unforgeable capabilities of DESIGN.md §2, as HMAC-SHA256
 * over a fixed, length-prefixed encoding of their fields.
 *
 *   ticket  payments → router, under the ticket secret: this payment covers
 *           this route, in this pool and region, until expires.
 *   award   router → payments, under the ticket secret: if this payment is
 *           captured, this seller earns this much for this key.
 *   grant   router → vault, under the grant secret: this key may be used
 *           once, for this payment and route, until expires.
 *
 * The edge carries all three and can forge none. Each MAC starts with its
 * own label, so one can never be passed off as another.
 */
#ifndef CN2_CAPAB_H
#define CN2_CAPAB_H

#include <stddef.h>
#include <stdint.h>

#include "common/ipc_msg.h"

/* Compute the MAC into out[IPC_MAC_LEN]. 0, or -1 if mbedTLS fails. */
int capab_ticket_mac(const uint8_t *key, size_t keylen, const struct ipc_ticket *t,
    uint8_t out[IPC_MAC_LEN]);
int capab_grant_mac(const uint8_t *key, size_t keylen, const struct ipc_grant *g,
    uint8_t out[IPC_MAC_LEN]);
int capab_award_mac(const uint8_t *key, size_t keylen, const char *payment_id,
    const char *key_id, const char *seller_id, int64_t seller_price, uint8_t out[IPC_MAC_LEN]);

/*
 * Check a MAC carried in a message (constant time). 0 if mac is the right
 * length and equals want, -1 otherwise.
 */
int capab_equal(const struct ipc_bytes *mac, const uint8_t want[IPC_MAC_LEN]);

#endif
