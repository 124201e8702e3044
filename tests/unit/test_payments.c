/*
 * test_payments.c — cn2-payments's pure parts: the credential checks of
 * VERIFY and their order (check.c), Accept-Payment ordering (accept.c),
 * the SETTLE decision (settle.c), and payments.db's state machine and
 * outbox (store.c) and its extras (extras.c: buyer spend and the daily
 * ceiling, Idempotency-Key records, transaction hashes) on a temporary
 * database.
 *
 * Credentials are built here with common/mpp.h, the way a client builds
 * them, then bent one way at a time: each row names the problem the
 * daemon must answer, so the order of the checks is part of the table
 * (an expired credential with a bad proof is "expired"; a tampered one
 * that is also expired is "invalid-challenge").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/b64url.h"
#include "common/db.h"
#include "common/timefmt.h"
#include "payments/payments.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static const char challenge_secret[] = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
static const char ticket_secret[] = "7171717171717171717171717171717171717171717171717171717171717171";
static const char test_secret[] = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
static const char other_secret[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#define REALM "openai.example.com"
#define PRICE 1000

static void
keys_init(struct pay_keys *k, int test_on)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->challenge.key, challenge_secret, 64);
	k->challenge.len = 64;
	memcpy(k->ticket.key, ticket_secret, 64);
	k->ticket.len = 64;
	if (test_on) {
		memcpy(k->test.key, test_secret, 64);
		k->test.len = 64;
	}
}

/* One way to bend a credential; NULL/0 fields take the valid default. */
struct spec {
	const char *realm, *method, *intent, *amount, *currency, *recipient, *header;
	int64_t expires_in; /* seconds from now; 0: +300 */
	int no_expires;
	const char *sign_with;	 /* challenge secret used for the id */
	const char *prove_with;	 /* test secret used for the proof */
	const char *tamper;	 /* replace the request's amount after signing */
	const char *payload;	 /* replace the payload (JSON text) */
	const char *wire;	 /* replace the whole credential */
	int ncred, from_pa;	 /* ncredentials (0: 1), came in Payment-Authorization */
	int test_off;
	enum pay_problem want;
	int64_t want_paid;
};

#define D(x, def) ((x) != NULL ? (x) : (def))

/* base64url of a JCS request; caller frees. */
static char *
request_b64(const char *amount, const char *currency, const char *recipient)
{
	cJSON *o = cJSON_CreateObject();
	char *b;

	cJSON_AddStringToObject(o, "amount", amount);
	cJSON_AddStringToObject(o, "currency", currency);
	cJSON_AddStringToObject(o, "recipient", recipient);
	b = mpp_request_encode(o);
	cJSON_Delete(o);
	return b;
}

/* The credential a client would send for spec s; caller frees. */
static char *
build(const struct spec *s, int64_t now)
{
	char id[MPP_ID_BUFSZ], proof[MPP_ID_BUFSZ], exp[RFC3339_BUFSZ], *req, *tampered = NULL;
	const char *sign = D(s->sign_with, challenge_secret), *prove = D(s->prove_with, test_secret);
	struct mpp_challenge c;
	cJSON *payload;
	char *out;

	if (s->wire != NULL)
		return strdup(s->wire);
	req = request_b64(D(s->amount, "1000"), D(s->currency, "usdc"), D(s->recipient, REALM));
	assert_true(rfc3339_format(now + (s->expires_in ? s->expires_in : 300), exp,
			sizeof(exp)) > 0);
	memset(&c, 0, sizeof(c));
	c.realm = D(s->realm, REALM);
	c.method = D(s->method, "test");
	c.intent = D(s->intent, "charge");
	c.request = req;
	c.expires = s->no_expires ? NULL : exp;
	c.opaque = "eyJub25jZSI6IngifQ";
	c.header = s->header;
	assert_int_equal(mpp_challenge_id((const uint8_t *)sign, strlen(sign), &c, id), 0);
	c.id = id;
	assert_int_equal(mpp_test_proof((const uint8_t *)prove, strlen(prove), id, proof), 0);
	if (s->tamper != NULL)
		c.request = tampered = request_b64(s->tamper, D(s->currency, "usdc"),
		    D(s->recipient, REALM));
	if (s->payload != NULL) {
		payload = cJSON_Parse(s->payload);
	} else {
		payload = cJSON_CreateObject();
		cJSON_AddStringToObject(payload, "proof", proof);
	}
	assert_non_null(payload);
	out = mpp_credential_format(&c, payload, NULL);
	assert_non_null(out);
	cJSON_Delete(payload);
	free(req);
	free(tampered);
	return out;
}

static void
test_check_order(void **state)
{
	static const struct spec rows[] = {
	    {.want = PP_NONE, .want_paid = 1000},
	    {.amount = "2500", .want = PP_NONE, .want_paid = 2500},
	    {.ncred = 2, .want = PP_MULTIPLE_CREDENTIALS},
	    {.ncred = 2, .wire = "garbage", .want = PP_MULTIPLE_CREDENTIALS},
	    {.wire = "Payment !!!", .want = PP_MALFORMED_CREDENTIAL},
	    {.wire = "Bearer abc", .want = PP_MALFORMED_CREDENTIAL},
	    {.wire = "Payment W10", .want = PP_MALFORMED_CREDENTIAL},
	    {.method = "lightning", .want = PP_METHOD_UNSUPPORTED},
	    {.test_off = 1, .want = PP_METHOD_UNSUPPORTED},
	    {.method = "lightning", .sign_with = other_secret, .want = PP_METHOD_UNSUPPORTED},
	    {.tamper = "1", .want = PP_INVALID_CHALLENGE},
	    {.tamper = "1000000", .want = PP_INVALID_CHALLENGE},
	    {.sign_with = other_secret, .want = PP_INVALID_CHALLENGE},
	    {.realm = "evil.example.com", .recipient = "evil.example.com",
		.want = PP_INVALID_CHALLENGE},
	    {.intent = "session", .want = PP_INVALID_CHALLENGE},
	    {.currency = "usd", .want = PP_INVALID_CHALLENGE},
	    {.recipient = "someone.else", .want = PP_INVALID_CHALLENGE},
	    {.amount = "0", .want = PP_INVALID_CHALLENGE},
	    {.amount = "01000", .want = PP_INVALID_CHALLENGE},
	    {.amount = "-5", .want = PP_INVALID_CHALLENGE},
	    {.amount = "999", .want = PP_PAYMENT_INSUFFICIENT},
	    {.amount = "999", .expires_in = -10, .want = PP_PAYMENT_INSUFFICIENT},
	    {.no_expires = 1, .want = PP_INVALID_CHALLENGE},
	    {.expires_in = -1, .want = PP_PAYMENT_EXPIRED},
	    {.expires_in = -100, .tamper = "2000", .want = PP_INVALID_CHALLENGE},
	    {.expires_in = -100, .prove_with = other_secret, .want = PP_PAYMENT_EXPIRED},
	    {.expires_in = -100, .payload = "{}", .want = PP_PAYMENT_EXPIRED},
	    {.payload = "{}", .want = PP_INVALID_PAYLOAD},
	    {.payload = "{\"proof\":\"abc\"}", .want = PP_INVALID_PAYLOAD},
	    {.payload = "{\"proof\":1}", .want = PP_INVALID_PAYLOAD},
	    {.payload = "{\"proof\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"x\":1}",
		.want = PP_INVALID_PAYLOAD},
	    {.payload = "{\"proof\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
		.want = PP_VERIFICATION_FAILED},
	    {.prove_with = other_secret, .want = PP_VERIFICATION_FAILED},
	    {.header = MPP_HEADER_PAYMENT_AUTH, .want = PP_INVALID_CHALLENGE},
	    {.header = MPP_HEADER_PAYMENT_AUTH, .from_pa = 1, .want = PP_NONE, .want_paid = 1000},
	    {.from_pa = 1, .want = PP_INVALID_CHALLENGE},
	};
	int64_t now = time_now_ms() / 1000;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		const struct spec *s = &rows[i];
		struct pay_keys k;
		struct ipc_verify v;
		struct pay_verdict out;
		char *wire = build(s, now);

		keys_init(&k, !s->test_off);
		memset(&v, 0, sizeof(v));
		snprintf(v.realm, sizeof(v.realm), "%s", REALM);
		v.amount = PRICE;
		v.ncredentials = (uint8_t)(s->ncred ? s->ncred : 1);
		v.header = (uint8_t)s->from_pa;
		v.credential.p = (const uint8_t *)wire;
		v.credential.len = (uint32_t)strlen(wire);
		pay_check(&k, &v, now, &out);
		if (out.problem != s->want) {
			print_error("row %zu: problem %d (%s), want %d\n", i, out.problem,
			    out.detail ? out.detail : "", s->want);
			bad++;
		} else if (s->want == PP_NONE &&
		    (out.paid != s->want_paid || strcmp(out.method, "test") != 0 ||
			strlen(out.id) != MPP_ID_BUFSZ - 1 || out.expires <= now)) {
			print_error("row %zu: verdict fields wrong\n", i);
			bad++;
		}
		if (s->want != PP_NONE && (out.detail == NULL || strstr(out.detail, "evil") != NULL)) {
			print_error("row %zu: detail missing or echoing input\n", i);
			bad++;
		}
		free(wire);
	}
	assert_int_equal(bad, 0);
}

static void
test_accept_order(void **state)
{
	static const char *const names[] = {"test", "lightning", "stripe"};
	static const char *const intents[] = {"charge", "charge", "charge"};
	static const struct {
		const char *accept;
		size_t n;
		size_t order[3];
	} rows[] = {
	    {"", 3, {0, 1, 2}},
	    {NULL, 3, {0, 1, 2}},
	    {"test/charge", 1, {0}},
	    {"lightning/charge;q=0.5, test/charge", 2, {0, 1}},
	    {"test/charge;q=0.2, lightning/charge;q=0.9", 2, {1, 0}},
	    {"*;q=0.1, stripe/charge", 3, {2, 0, 1}},
	    {"*/*, test/charge;q=0", 2, {1, 2}},
	    {"test;q=0.5, */session", 1, {0}},
	    {"test/session", 0, {0}},
	    {"TEST/CHARGE", 1, {0}},
	    {"test/charge;q=1.5", 3, {0, 1, 2}},  /* unreadable: as if absent */
	    {"test/charge;q=0.1234, lightning", 1, {1}},
	    {",,, lightning/charge ;  q=0.3 ,", 1, {1}},
	    {"test/charge;foo=bar;q=0.7, stripe;q=0.8", 2, {2, 0}},
	    {"test/charge garbage", 3, {0, 1, 2}},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		size_t idx[PAY_MAX_METHODS], n = pay_accept_order(rows[i].accept, names, intents, 3,
		    idx);

		if (n != rows[i].n || memcmp(idx, rows[i].order, n * sizeof(size_t)) != 0) {
			print_error("row %zu (%s): got %zu offers\n", i,
			    rows[i].accept ? rows[i].accept : "NULL", n);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_settle_decide(void **state)
{
	static const struct {
		int exists;
		enum pay_state st;
		const char *row_seller;
		int64_t row_amount;
		uint8_t pool;
		uint8_t outcome;
		const char *seller;
		int64_t price;
		enum pay_settle_action want;
	} rows[] = {
	    {0, PAY_RESERVED, "", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 900, SA_UNKNOWN},
	    {1, PAY_RESERVED, "", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 900, SA_CAPTURE},
	    {1, PAY_RESERVED, "", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 1000, SA_CAPTURE},
	    {1, PAY_RESERVED, "", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 1001, SA_OVER_AMOUNT},
	    {1, PAY_RESERVED, "", 1000, POOL_STANDARD, SETTLE_RELEASE, "", 0, SA_RELEASE},
	    {1, PAY_CAPTURED, "s1", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 900, SA_SAME_CAPTURE},
	    {1, PAY_CAPTURED, "s1", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s2", 900, SA_CONFLICT},
	    {1, PAY_CAPTURED, "s1", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 800, SA_CONFLICT},
	    {1, PAY_CAPTURED, "s1", 1000, POOL_STANDARD, SETTLE_RELEASE, "", 0, SA_CONFLICT},
	    {1, PAY_RELEASED, "", 1000, POOL_STANDARD, SETTLE_RELEASE, "", 0, SA_SAME_RELEASE},
	    {1, PAY_RELEASED, "", 1000, POOL_STANDARD, SETTLE_CAPTURE, "s1", 900, SA_CONFLICT},
	    /* Premium: 1250 paid holds a 250 surcharge, so the seller's price fits in 1000. */
	    {1, PAY_RESERVED, "", 1250, POOL_PREMIUM, SETTLE_CAPTURE, "s1", 1000, SA_CAPTURE},
	    {1, PAY_RESERVED, "", 1250, POOL_PREMIUM, SETTLE_CAPTURE, "s1", 1001, SA_OVER_AMOUNT},
	    {1, PAY_RESERVED, "", 1250, POOL_STANDARD, SETTLE_CAPTURE, "s1", 1001, SA_CAPTURE},
	};

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		struct pay_row row;
		struct ipc_settle m;

		memset(&row, 0, sizeof(row));
		memset(&m, 0, sizeof(m));
		row.state = rows[i].st;
		row.amount = rows[i].row_amount;
		row.pool = rows[i].pool;
		snprintf(row.seller_id, sizeof(row.seller_id), "%s", rows[i].row_seller);
		row.seller_amount = 900;
		snprintf(row.key_id, sizeof(row.key_id), "k1");
		m.outcome = rows[i].outcome;
		snprintf(m.seller_id, sizeof(m.seller_id), "%s", rows[i].seller);
		snprintf(m.key_id, sizeof(m.key_id), "k1");
		m.seller_price = rows[i].price;
		if (pay_settle_decide(rows[i].exists ? &row : NULL, &m) != rows[i].want)
			fail_msg("row %zu", i);
	}
}

/* payments.db on a temporary file: the state machine, attempts, the outbox. */

static sqlite3 *
temp_db(char *path, size_t cap)
{
	char err[256];
	sqlite3 *db;
	int fd;

	snprintf(path, cap, "/tmp/test_payments_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	db = pay_store_open(path, err, sizeof(err));
	if (db == NULL)
		fail_msg("%s", err);
	return db;
}

static void
remove_db(sqlite3 *db, const char *path)
{
	char p[300];

	db_close(db);
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static enum pay_reserve
reserve(sqlite3 *db, const char *id, int64_t now, char xfer[72])
{
	struct pay_reservation r = {id, "test", REALM, "openai", 1000, now + 300, POOL_STANDARD};
	enum pay_reserve res;

	assert_int_equal(pay_store_reserve(db, &r, now, &res, xfer), 0);
	return res;
}

static int
outbox_count(sqlite3 *db, const char *op)
{
	struct pay_outbox_row rows[16];
	int n = pay_outbox_list(db, rows, 16), c = 0;

	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		c += (rows[i].op == OB_POST) == (strcmp(op, "post") == 0);
	return c;
}

static void
test_store_lifecycle(void **state)
{
	char path[64], x1[72], x2[72], x3[72];
	struct ipc_settle m;
	struct pay_row row;
	sqlite3 *db = temp_db(path, sizeof(path));
	int n = -1;

	(void)state;
	assert_int_equal(reserve(db, "ch_1", 100, x1), RES_NEW);
	assert_int_equal(reserve(db, "ch_1", 101, x2), RES_IN_FLIGHT);
	/* Released (the ledger was down): a second attempt, with a transfer of its own. */
	assert_int_equal(pay_store_release(db, "ch_1", 0, 102), 0);
	assert_int_equal(outbox_count(db, "void"), 0);
	assert_int_equal(reserve(db, "ch_1", 103, x2), RES_AGAIN);
	assert_string_not_equal(x1, x2);
	assert_int_equal(strlen(x2), 36);
	/* Releasing twice does nothing the second time. */
	assert_int_equal(pay_store_release(db, "ch_1", 1, 104), 0);
	assert_int_equal(pay_store_release(db, "ch_1", 1, 105), -1);
	assert_int_equal(outbox_count(db, "void"), 1);
	assert_int_equal(reserve(db, "ch_1", 106, x3), RES_AGAIN);
	/* Capture: the row keeps who earns what, a post is owed, and captured is final. */
	memset(&m, 0, sizeof(m));
	snprintf(m.key_id, sizeof(m.key_id), "k_1");
	snprintf(m.seller_id, sizeof(m.seller_id), "s_1");
	m.seller_price = 900;
	assert_int_equal(pay_store_capture(db, "ch_1", &m, 0, 107), 0);
	assert_int_equal(pay_store_get(db, "ch_1", &row), 1);
	assert_int_equal(row.state, PAY_CAPTURED);
	assert_string_equal(row.xfer_id, x3);
	assert_string_equal(row.seller_id, "s_1");
	assert_int_equal(row.seller_amount, 900);
	assert_int_equal(row.receipt_ts, 107);
	assert_int_equal(outbox_count(db, "post"), 1);
	assert_int_equal(reserve(db, "ch_1", 108, x1), RES_USED);
	assert_int_equal(pay_store_release(db, "ch_1", 1, 109), -1);
	assert_int_equal(pay_store_capture(db, "ch_1", &m, 0, 110), -1);
	assert_int_not_equal(db_exec(db, "UPDATE payments SET state = 'released'"), SQLITE_OK);
	assert_int_not_equal(db_exec(db, "DELETE FROM payments"), SQLITE_OK);
	/* A capture above the amount paid is refused by the schema too. */
	assert_int_equal(reserve(db, "ch_2", 200, x1), RES_NEW);
	m.seller_price = 1001;
	assert_int_equal(pay_store_capture(db, "ch_2", &m, 0, 201), -1);
	/* And a seller's price that leaves no room for the premium surcharge. */
	m.seller_price = 900;
	assert_int_equal(pay_store_capture(db, "ch_2", &m, 101, 201), -1);
	assert_int_equal(pay_store_get(db, "ch_none", &row), 0);
	/* Stale reservations: only those older than the cutoff. */
	assert_int_equal(reserve(db, "ch_3", 1000, x1), RES_NEW);
	assert_int_equal(pay_store_release_stale(db, 500, 1001, 64, &n), 0);
	assert_int_equal(n, 1); /* ch_2, reserved at 200 */
	assert_int_equal(pay_store_get(db, "ch_2", &row), 1);
	assert_int_equal(row.state, PAY_RELEASED);
	assert_int_equal(pay_store_get(db, "ch_3", &row), 1);
	assert_int_equal(row.state, PAY_RESERVED);
	/* The outbox forgets what the ledger acknowledged, and gives up after ten refusals. */
	assert_int_equal(outbox_count(db, "void"), 2);
	assert_int_equal(pay_outbox_done(db, x3), 0);
	assert_int_equal(outbox_count(db, "post"), 0);
	{
		struct pay_outbox_row rows[4];

		assert_int_equal(pay_outbox_list(db, rows, 4), 2);
		for (int i = 0; i < 10; i++)
			assert_int_equal(pay_outbox_failed(db, rows[0].xfer_id), 0);
		assert_int_equal(pay_outbox_list(db, rows, 4), 1);
	}
	remove_db(db, path);
}

/* payments.db's extras: buyers' daily spend, Idempotency-Key, transaction hashes. */
static void
test_buyers_and_idempotency(void **state)
{
	const int64_t day = 20000 * 86400LL, now = day + 3600;
	struct ipc_settle m;
	struct ipc_route route;
	uint8_t body[32], other[32];
	char path[64], buyer[65], fp[65], fp2[65], x[72];
	enum pay_idem r;
	sqlite3 *db = temp_db(path, sizeof(path));

	(void)state;
	pay_buyer_id("did:key:alice", buyer);
	assert_int_equal(strlen(buyer), 64);
	/* Counted from the reservation; the ceiling stops the third. */
	reserve(db, "a1", now, x);
	assert_int_equal(pay_buyer_charge(db, "a1", buyer, 1000, 2500, now), 1);
	reserve(db, "a2", now, x);
	assert_int_equal(pay_buyer_charge(db, "a2", buyer, 1000, 2500, now), 1);
	assert_int_equal(pay_buyer_charge(db, "a3", buyer, 1000, 2500, now), 0);
	assert_int_equal(pay_buyer_spent(db, buyer, now), 2000);
	/* A release gives it back; a capture keeps it. */
	assert_int_equal(pay_store_release(db, "a2", 0, now), 0);
	assert_int_equal(pay_buyer_spent(db, buyer, now), 1000);
	memset(&m, 0, sizeof(m));
	snprintf(m.key_id, sizeof(m.key_id), "k");
	snprintf(m.seller_id, sizeof(m.seller_id), "s");
	m.seller_price = 900;
	assert_int_equal(pay_store_capture(db, "a1", &m, 0, now), 0);
	assert_int_equal(pay_buyer_spent(db, buyer, now), 1000);
	/* The next UTC day starts afresh; retention drops old days. */
	assert_int_equal(pay_buyer_spent(db, buyer, now + 86400), 0);
	assert_int_equal(pay_buyer_reset_in(now), 86400 - 3600);
	assert_int_equal(pay_extras_expire(db, now + 91 * 86400LL, 90), 0);
	assert_int_equal(pay_buyer_spent(db, buyer, now), 0);
	/* Idempotency-Key: new, the same request, another one. */
	memset(&route, 0, sizeof(route));
	snprintf(route.provider, sizeof(route.provider), "demo");
	snprintf(route.method, sizeof(route.method), "POST");
	snprintf(route.path, sizeof(route.path), "/v1/chat/completions");
	memset(body, 1, sizeof(body));
	memset(other, 2, sizeof(other));
	pay_idem_fingerprint(&route, body, fp);
	pay_idem_fingerprint(&route, other, fp2);
	assert_string_not_equal(fp, fp2);
	reserve(db, "b1", now, x);
	assert_int_equal(pay_idem_lookup(db, "k1", "b1", fp, now + 300, now, &r), 0);
	assert_int_equal(r, IDEM_NEW);
	assert_int_equal(pay_idem_lookup(db, "k1", "b1", fp, now + 300, now, &r), 0);
	assert_int_equal(r, IDEM_SAME_RESERVED);
	assert_int_equal(pay_idem_lookup(db, "k1", "b1", fp2, now + 300, now, &r), 0);
	assert_int_equal(r, IDEM_MISMATCH);
	assert_int_equal(pay_store_capture(db, "b1", &m, 0, now), 0);
	assert_int_equal(pay_idem_lookup(db, "k1", "b1", fp, now + 300, now, &r), 0);
	assert_int_equal(r, IDEM_SAME_CAPTURED);
	/* The same key with another credential is another record. */
	assert_int_equal(pay_idem_lookup(db, "k1", "b2", fp2, now + 300, now, &r), 0);
	assert_int_equal(r, IDEM_NEW);
	/* A transaction hash pays for one payment, ever. */
	assert_int_equal(pay_txhash_claim(db, "0xaa", "b1", now), 1);
	assert_int_equal(pay_txhash_claim(db, "0xaa", "b1", now), 1);
	assert_int_equal(pay_txhash_claim(db, "0xaa", "b2", now), 0);
	assert_int_not_equal(db_exec(db, "DELETE FROM tx_hashes"), SQLITE_OK);
	remove_db(db, path);
}

static void
test_xfer_id(void **state)
{
	char a[72], b[72], c[72];

	(void)state;
	pay_xfer_id("ch_1", 1, a);
	pay_xfer_id("ch_1", 1, b);
	pay_xfer_id("ch_1", 2, c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strncmp(a, "pay_", 4), 0);
	assert_int_equal(strspn(a + 4, "0123456789abcdef"), 32);
	assert_int_equal(strlen(a), 36);
}

static void
test_problem_table(void **state)
{
	(void)state;
	for (int p = PP_PAYMENT_REQUIRED; p < PP_MAX; p++) {
		int st = pay_problem_status((enum pay_problem)p);

		assert_true(st >= 400 && st <= 599);
		assert_non_null(pay_problem_title((enum pay_problem)p));
		assert_true(strncmp(pay_problem_type((enum pay_problem)p), "https://", 8) == 0);
	}
	assert_int_equal(pay_problem_status(PP_PAYMENT_REQUIRED), 402);
	assert_string_equal(pay_problem_type(PP_INVALID_CHALLENGE),
	    "https://paymentauth.org/problems/invalid-challenge");
	assert_int_equal(pay_problem_status(PP_METHOD_UNSUPPORTED), 400);
	assert_int_equal(pay_problem_status(PP_MULTIPLE_CREDENTIALS), 400);
	assert_string_equal(pay_problem_type(PP_MULTIPLE_CREDENTIALS),
	    "https://cn2.ai/problems/multiple-credentials");
	assert_int_equal(pay_problem_status(PP_PAYMENT_IN_FLIGHT), 409);
	assert_int_equal(pay_problem_status(PP_LEDGER_UNAVAILABLE), 503);
}

/* Stripe's answers to a refund, judged. */
static void
test_refund_judge(void **state)
{
	static const struct {
		long status;
		const char *body;
		int ok;
		const char *id;
	} rows[] = {
	    {200, "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"succeeded\"}", 1, "re_1"},
	    {200, "{\"id\":\"re_2\",\"status\":\"pending\"}", 1, "re_2"},
	    {200, "{\"id\":\"re_3\",\"status\":\"failed\"}", 0, ""},
	    {200, "{\"id\":\"pi_4\",\"status\":\"succeeded\"}", 0, ""},
	    {200, "{\"status\":\"succeeded\"}", 0, ""},
	    {400, "{\"error\":{\"code\":\"charge_already_refunded\"}}", 1, ""},
	    {400, "{\"error\":{\"code\":\"resource_missing\"}}", 0, ""},
	    {500, "{\"error\":{\"code\":\"charge_already_refunded\"}}", 0, ""},
	    {200, "not json", 0, ""},
	    {200, "", 0, ""},
	};
	char id[96];

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		int ok = pay_stripe_refund_judge(rows[i].status, rows[i].body, strlen(rows[i].body), id,
		    sizeof(id));

		if (ok != rows[i].ok || strcmp(id, rows[i].id) != 0)
			fail_msg("row %zu: ok %d id \"%s\"", i, ok, id);
	}
}

/* blocked_buyers_file: what loads, what is refused (naming the line), and lookups. */
static void
test_policy_file(void **state)
{
	static const struct {
		const char *text;
		int rc;
		size_t n;
		const char *why; /* part of the error */
	} rows[] = {
	    {"", 0, 0, NULL},
	    {"# nobody yet\n\n", 0, 0, NULL},
	    {"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
		0, 2, NULL},
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 1, NULL},
	    {"# x\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", -1, 0,
		"line 2 is not a buyer id"},
	    {"aaaa\n", -1, 0, "line 1 is not a buyer id"},
	    {" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", -1, 0, "line 1"},
	};
	struct pay_policy p = {NULL, 0};
	char path[64], err[256];
	int fd;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		snprintf(path, sizeof(path), "/tmp/test_policy_XXXXXX");
		assert_true((fd = mkstemp(path)) >= 0);
		assert_int_equal(write(fd, rows[i].text, strlen(rows[i].text)),
		    (ssize_t)strlen(rows[i].text));
		close(fd);
		/* A list in force stays when a new file is refused. */
		assert_int_equal(pay_policy_load(&p, "", err, sizeof(err)), 0);
		err[0] = '\0';
		if (pay_policy_load(&p, path, err, sizeof(err)) != rows[i].rc)
			fail_msg("row %zu: %s", i, err);
		if (rows[i].why != NULL && strstr(err, rows[i].why) == NULL)
			fail_msg("row %zu: %s", i, err);
		assert_int_equal(p.n, rows[i].n);
		unlink(path);
	}
	/* A file that cannot be read is refused too; then a long list, and lookups. */
	assert_int_equal(pay_policy_load(&p, "/nonexistent/blocked", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "blocked_buyers_file"));
	snprintf(path, sizeof(path), "/tmp/test_policy_XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	for (int i = 0; i < 300; i++) {
		char line[80], hex[65];

		pay_buyer_id(i % 2 == 0 ? "even" : "odd", hex); /* duplicates are harmless */
		snprintf(line, sizeof(line), "%02x%.62s\n", i % 256, hex + 2);
		assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	}
	close(fd);
	assert_int_equal(pay_policy_load(&p, path, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(p.n, 300);
	{
		char hex[65], probe[65];

		pay_buyer_id("even", hex);
		snprintf(probe, sizeof(probe), "%02x%.62s", 42, hex + 2);
		assert_int_equal(pay_policy_blocked(&p, probe), 1);
		snprintf(probe, sizeof(probe), "%02x%.62s", 43, hex + 2); /* 43 is odd's */
		assert_int_equal(pay_policy_blocked(&p, probe), 0);
		assert_int_equal(pay_policy_blocked(&p, "short"), 0);
		assert_int_equal(pay_policy_blocked(&p, ""), 0);
	}
	pay_policy_free(&p);
	assert_int_equal(p.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_order),
	    cmocka_unit_test(test_accept_order),
	    cmocka_unit_test(test_settle_decide),
	    cmocka_unit_test(test_store_lifecycle),
	    cmocka_unit_test(test_buyers_and_idempotency),
	    cmocka_unit_test(test_xfer_id),
	    cmocka_unit_test(test_problem_table),
	    cmocka_unit_test(test_policy_file),
	    cmocka_unit_test(test_refund_judge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
