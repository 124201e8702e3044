/*
 * chain.c — the hash chain over ledger.db's transfers.
 *
 * Each transfer row stores hash = SHA-256(prev_hash || canonical text), where
 * prev_hash is the hash of the row before it (32 zero bytes for the first).
 * Changing, removing or reordering any row therefore changes every hash after
 * it, which `cn2-ledger verify` (and an auditor with sqlite3 and sha256sum,
 * through the v_chain view) can detect even where the triggers were bypassed.
 *
 * The canonical text is one field per line, each ended by "\n", in column
 * order: seq, id, kind, pending_id ("" if none), payment_ref, debit, credit,
 * amount, legs, created; a linked row (schema version 3) adds link and
 * link_len, so rows written before links existed keep their hashes.
 * Integers are decimal. The schema allows only
 * printable ASCII without blanks in the text fields, so the lines cannot be
 * confused; the v_chain view builds the same bytes in SQL, and a unit test
 * holds the two together. So, for row N:
 *
 *	sqlite3 ledger.db "select hex(prev_hash) || hex(canonical) from v_chain
 *	    where seq = N" | xxd -r -p | sha256sum
 *
 * prints the row's hash.
 */
#include "ledger/ledger.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/sha256.h>

int
chain_canonical(const struct ledger_xfer *x, char *buf, size_t cap)
{
	int n, m = 0;

	n = snprintf(buf, cap,
	    "%" PRId64 "\n%s\n%s\n%s\n%s\n%s\n%s\n%" PRId64 "\n%s\n%" PRId64 "\n", x->seq, x->id,
	    x->kind, x->pending_id, x->payment_ref, x->debit, x->credit, x->amount, x->legs,
	    x->created);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	if (x->link[0] != '\0')
		m = snprintf(buf + n, cap - (size_t)n, "%s\n%" PRId64 "\n", x->link, x->link_len);
	return m >= 0 && (size_t)(n + m) < cap ? n + m : -1;
}

int
chain_hash(struct ledger_xfer *x)
{
	mbedtls_sha256_context ctx;
	char canon[CHAIN_CANON_MAX];
	int n, rc;

	if ((n = chain_canonical(x, canon, sizeof(canon))) < 0)
		return -1;
	mbedtls_sha256_init(&ctx);
	rc = mbedtls_sha256_starts_ret(&ctx, 0) != 0 ||
	    mbedtls_sha256_update_ret(&ctx, x->prev_hash, sizeof(x->prev_hash)) != 0 ||
	    mbedtls_sha256_update_ret(&ctx, (const unsigned char *)canon, (size_t)n) != 0 ||
	    mbedtls_sha256_finish_ret(&ctx, x->hash) != 0;
	mbedtls_sha256_free(&ctx);
	return rc ? -1 : 0;
}
