/*
 * extras.c — payments.db beyond the payment state machine: lightning
 * invoices, used transaction hashes, buyer spend and Idempotency-Key
 * records. Every function runs inside the caller's transaction (a dbq
 * batch) or is a plain read, and returns -1 on any SQLite error.
 *
 * Buyers. A buyer is SHA-256 of the payment principal (the credential's
 * source, or the method's payer identity), as 64 hex digits; the principal
 * itself is never stored. A payment's amount counts against its buyer's
 * UTC day from the reservation on (so concurrent requests cannot pass the
 * ceiling together), is kept at capture and given back at release.
 * buyer_spend rows older than buyer_retention_days are deleted by the sweep.
 *
 * Idempotency-Key. A record binds (key, challenge id) to a fingerprint of
 * the request (route and body hash, never the body) until the challenge
 * expires; pay_idem_lookup tells a retry of the same request from another
 * one. What each case answers is verify.c's business.
 *
 * Security stance: only hashes, ids and amounts are stored here; no body,
 * credential, preimage, token or principal.
 */
#include "payments/payments.h"

#include <mbedtls/md.h>
#include <stdio.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"

#define DAY_S 86400

int
pay_invoice_put(sqlite3 *db, const struct pay_invoice *inv, int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT INTO lightning_invoices (payment_hash, challenge_id, sats, amount, expires,"
	    " created) VALUES (?, ?, ?, ?, ?, ?)");

	sqlite3_bind_text(st, 1, inv->payment_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, inv->challenge_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, inv->sats);
	sqlite3_bind_int64(st, 4, inv->amount);
	sqlite3_bind_int64(st, 5, inv->expires);
	sqlite3_bind_int64(st, 6, now);
	return pay_db_step(db, st);
}

int
pay_invoice_matches(sqlite3 *db, const char *id, const char *hash, int64_t sats)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT count(*) FROM lightning_invoices WHERE challenge_id = ? AND payment_hash = ?"
	    " AND sats = ?");
	int rc, n = -1;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, sats);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	else
		log_warnx("%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return n < 0 ? -1 : n > 0;
}

int
pay_txhash_claim(sqlite3 *db, const char *hash, const char *id, int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "INSERT INTO tx_hashes (hash, payment_id, created) VALUES (?, ?, ?)"
	    " ON CONFLICT (hash) DO NOTHING");
	sqlite3_stmt *q;
	int rc, mine = -1;

	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if (pay_db_step(db, st) != 0)
		return -1;
	q = db_stmt(db, "SELECT payment_id = ? FROM tx_hashes WHERE hash = ?");
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, hash, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(q)) == SQLITE_ROW)
		mine = sqlite3_column_int(q, 0);
	else
		log_warnx("%s", sqlite3_errmsg(db));
	sqlite3_reset(q);
	return mine;
}

static int
exec_bound(sqlite3 *db, const char *sql, int64_t v)
{
	sqlite3_stmt *st = db_stmt(db, sql);

	sqlite3_bind_int64(st, 1, v);
	return pay_db_step(db, st);
}

int
pay_extras_expire(sqlite3 *db, int64_t now, int64_t buyer_keep_days)
{
	if (exec_bound(db, "DELETE FROM lightning_invoices WHERE expires < ?", now - 3600) != 0 ||
	    exec_bound(db, "DELETE FROM idempotency WHERE expires < ?", now - 3600) != 0)
		return -1;
	return exec_bound(db, "DELETE FROM buyer_spend WHERE day < ?",
	    now / DAY_S - buyer_keep_days);
}

/* Buyers. */

void
pay_buyer_id(const char *principal, char out[65])
{
	uint8_t h[32];

	if (mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)principal,
		strlen(principal), h) != 0)
		fatalx("SHA-256 failed");
	pay_hex(h, 32, out);
}

uint32_t
pay_buyer_reset_in(int64_t now)
{
	return (uint32_t)(DAY_S - now % DAY_S);
}

int64_t
pay_buyer_spent(sqlite3 *db, const char *buyer, int64_t now)
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT coalesce(sum(amount), 0) FROM buyer_spend WHERE buyer = ? AND day = ?");
	int64_t v = -1;

	sqlite3_bind_text(st, 1, buyer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now / DAY_S);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		log_warnx("%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return v;
}

int
pay_buyer_charge(sqlite3 *db, const char *id, const char *buyer, int64_t amount,
    int64_t ceiling, int64_t now)
{
	int64_t spent = pay_buyer_spent(db, buyer, now);
	sqlite3_stmt *st;

	if (spent < 0)
		return -1;
	if (ceiling > 0 && (amount > ceiling || spent > ceiling - amount))
		return 0;
	st = db_stmt(db,
	    "INSERT INTO buyer_spend (buyer, day, amount) VALUES (?, ?, ?)"
	    " ON CONFLICT (buyer, day) DO UPDATE SET amount = amount + excluded.amount");
	sqlite3_bind_text(st, 1, buyer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now / DAY_S);
	sqlite3_bind_int64(st, 3, amount);
	if (pay_db_step(db, st) != 0)
		return -1;
	st = db_stmt(db,
	    "INSERT OR REPLACE INTO payment_buyers (payment_id, buyer, day, amount)"
	    " VALUES (?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, buyer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now / DAY_S);
	sqlite3_bind_int64(st, 4, amount);
	return pay_db_step(db, st) == 0 ? 1 : -1;
}

int
pay_buyer_settle(sqlite3 *db, const char *id, int captured)
{
	sqlite3_stmt *st;

	if (!captured) {
		st = db_stmt(db,
		    "UPDATE buyer_spend SET amount = max(0, amount - (SELECT amount FROM"
		    " payment_buyers p WHERE p.payment_id = ?1)) WHERE (buyer, day) ="
		    " (SELECT buyer, day FROM payment_buyers WHERE payment_id = ?1)");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (pay_db_step(db, st) != 0)
			return -1;
	}
	st = db_stmt(db, "DELETE FROM payment_buyers WHERE payment_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return pay_db_step(db, st);
}

/* Idempotency-Key. */

void
pay_idem_fingerprint(const struct ipc_route *r, const uint8_t body_hash[32], char out[65])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	mbedtls_md_context_t ctx;
	uint8_t h[32];
	int rc;

	mbedtls_md_init(&ctx);
	rc = mbedtls_md_setup(&ctx, md, 0);
	rc = rc == 0 ? mbedtls_md_starts(&ctx) : rc;
	/* NUL-separated: no field holds a NUL, so no two routes read alike. */
	rc = rc == 0 ? mbedtls_md_update(&ctx, (const uint8_t *)r->provider, strlen(r->provider) + 1)
		     : rc;
	rc = rc == 0 ? mbedtls_md_update(&ctx, (const uint8_t *)r->method, strlen(r->method) + 1) : rc;
	rc = rc == 0 ? mbedtls_md_update(&ctx, (const uint8_t *)r->path, strlen(r->path) + 1) : rc;
	rc = rc == 0 ? mbedtls_md_update(&ctx, body_hash, 32) : rc;
	rc = rc == 0 ? mbedtls_md_finish(&ctx, h) : rc;
	mbedtls_md_free(&ctx);
	if (rc != 0)
		fatalx("SHA-256 failed");
	pay_hex(h, 32, out);
}

/* The fingerprint recorded for (key, id): 1 found, 0 absent, -1. */
static int
idem_get(sqlite3 *db, const char *key, const char *id, char fp[65])
{
	sqlite3_stmt *st = db_stmt(db,
	    "SELECT fingerprint FROM idempotency WHERE idem_key = ? AND payment_id = ?");
	int rc;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(fp, 65, "%s", (const char *)sqlite3_column_text(st, 0));
	else if (rc != SQLITE_DONE)
		log_warnx("%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
pay_idem_lookup(sqlite3 *db, const char *key, const char *id, const char *fp, int64_t expires,
    int64_t now, enum pay_idem *out)
{
	char old[65];
	struct pay_row row;
	sqlite3_stmt *st;
	int found = idem_get(db, key, id, old), have;

	if (found < 0)
		return -1;
	if (found) {
		if (strcmp(old, fp) != 0) {
			*out = IDEM_MISMATCH;
			return 0;
		}
		if ((have = pay_store_get(db, id, &row)) < 0)
			return -1;
		*out = !have || row.state == PAY_RELEASED ? IDEM_SAME_OPEN :
		    row.state == PAY_RESERVED		   ? IDEM_SAME_RESERVED :
							     IDEM_SAME_CAPTURED;
		return 0;
	}
	st = db_stmt(db,
	    "INSERT INTO idempotency (idem_key, payment_id, fingerprint, expires, created)"
	    " VALUES (?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, fp, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, expires);
	sqlite3_bind_int64(st, 5, now);
	*out = IDEM_NEW;
	return pay_db_step(db, st);
}
