/*
 * bolt11.h — a strict reader of BOLT #11 Lightning invoices, so that
 * cn2-payments can check that the invoice LND wrote says what LND's JSON
 * answer said (hash, amount, network, expiry) before a buyer sees it.
 *
 * Security stance: the invoice comes from outside (LND, or a buyer quoting
 * it back) and is read as untrusted text: bounded length, one bech32
 * checksum, canonical encodings only, every length checked before it is
 * used. The secp256k1 signature is checked for shape only, not verified:
 * see bolt11.c. Nothing here allocates; the caller owns *out.
 */
#ifndef CN2_BOLT11_H
#define CN2_BOLT11_H

#include <stdint.h>

/* The longest invoice read, in characters (BIP-173's 90 does not apply). */
#define BOLT11_MAX 2048

/* The most a `d` field can hold: 1023 five-bit words make 639 bytes. */
#define BOLT11_DESC_MAX 639

struct bolt11 {
	/* The currency prefix after "ln": "bc", "tb", "bcrt", "tbs" or "sb". */
	char network[5];
	/* 0 when the invoice names no amount (then amount_msat is 0). */
	int has_amount;
	/* Millisatoshis, exact; never above INT64_MAX, so it converts to int64_t. */
	uint64_t amount_msat;
	/* Seconds since 1970 (35 bits, so below 2^35). */
	uint64_t timestamp;
	/* Seconds after timestamp (`x`, 3600 when absent). */
	uint32_t expiry;
	/* Blocks (`c`, 18 when absent). */
	uint32_t min_final_cltv;
	uint8_t payment_hash[32];
	/* Always present: an invoice without one is refused. */
	uint8_t payment_secret[32];
	/*
	 * Exactly one of a description (`d`: valid UTF-8 without NUL, always
	 * NUL-terminated, "" when the invoice commits to a hash instead) and
	 * a description hash (`h`, has_description_hash set).
	 */
	char description[BOLT11_DESC_MAX + 1];
	int has_description_hash;
	uint8_t description_hash[32];
	/* The payee's compressed public key (`n`), when the invoice names it. */
	int has_payee;
	uint8_t payee[33];
};

/*
 * Decode a NUL-terminated invoice into *out. Returns 0, or -1 with *why
 * set to a static English reason (why may be NULL). On -1 *out holds
 * nothing useful. Upper- or lower-case is accepted, not a mix; a
 * "lightning:" URI prefix is not.
 *
 * Refused, beyond malformed bech32: an unknown currency prefix; an amount
 * with a leading 0, an unknown multiplier, or a sub-millisatoshi `p`
 * value; a missing `p` or `s` field; neither or both of `d` and `h`; a
 * second valid `p`, `s`, `d`, `h`, `x`, `c`, `n` or `9` field; `x`, `c`
 * or `9` with a leading zero word; an `x` or `c` above UINT32_MAX; a
 * required (even) feature bit BOLT #9 does not list for invoices; a
 * signature that cannot be valid (recovery id above 3, r or s out of
 * range, r too large for ids 2 and 3, high S when `n` is present).
 * Skipped as the spec says: unknown fields, `f`, `r` and `m`, and a `p`,
 * `h`, `s` or `n` of the wrong length.
 */
int bolt11_decode(const char *invoice, struct bolt11 *out, const char **why);

#endif
