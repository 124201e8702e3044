/*
 * test_pay_methods.c — cn2-payments's payment methods and the state beside
 * the payments table, without a daemon:
 *
 *   - what an answer of each processor means: LND's AddInvoice (hash and
 *     invoice read strictly), a Stripe PaymentIntent (succeeded pays,
 *     requires_action and refusals do not, outages are 503), a Tempo
 *     receipt (a Transfer of the token to the recipient of at least the
 *     amount, and nothing else, pays) — tables of answers;
 *   - the credential checks with every method on: lightning's economics
 *     and preimage, stripe's and tempo's payload shapes, and a credential
 *     under the previous challenge secret (honoured only for challenges
 *     that expire inside the rotation window).
 *
 * payments.db's extras (buyers, Idempotency-Key, transaction hashes) are
 * tested in test_payments.c, beside the store they extend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/timefmt.h"
#include "payments/payments.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define TOKEN "0x20c0000000000000000000000000000000000001"
#define RECIP "0x742d35cc6634c0532925a3b844bc9e7595f8fe00"
#define TOPIC "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#define PADDED(a) "0x000000000000000000000000" a
#define FROM "1111111111111111111111111111111111111111"
#define TO "742d35cc6634c0532925a3b844bc9e7595f8fe00"
#define AMOUNT(hex) "0x" "00000000000000000000000000000000000000000000000000000000" hex

static void
test_lnd_invoice(void **state)
{
	static const struct {
		const char *body;
		int ok;
	} rows[] = {
	    {"{\"r_hash\":\"ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=\","
	     "\"payment_request\":\"lnbcrt30n1pqqqq\",\"add_index\":\"1\"}", 1},
	    /* 31 bytes of hash, no hash, a request that is not an invoice, uppercase, not JSON */
	    {"{\"r_hash\":\"ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZg==\","
	     "\"payment_request\":\"lnbcrt30n1p\"}", 0},
	    {"{\"payment_request\":\"lnbcrt30n1p\"}", 0},
	    {"{\"r_hash\":\"ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=\","
	     "\"payment_request\":\"xx30n1p\"}", 0},
	    {"{\"r_hash\":\"ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=\","
	     "\"payment_request\":\"lnBCrt30n1p\"}", 0},
	    {"{\"r_hash\":\"ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=\","
	     "\"payment_request\":\"lnbcrt30n1p\\u0000\"}", 0},
	    {"not json", 0},
	    {"{\"r_hash\":5,\"payment_request\":[]}", 0},
	};
	char hash[65], inv[64];

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		int rc = pay_lightning_parse_invoice(rows[i].body, strlen(rows[i].body), hash, inv,
		    sizeof(inv));

		if ((rc == 0) != rows[i].ok)
			fail_msg("row %zu: %d", i, rc);
		if (rows[i].ok) {
			assert_string_equal(hash,
			    "6666666666666666666666666666666666666666666666666666666666666666");
			assert_string_equal(inv, "lnbcrt30n1pqqqq");
		}
	}
	/* The caller's buffer bounds the invoice. */
	assert_int_equal(pay_lightning_parse_invoice(rows[0].body, strlen(rows[0].body), hash, inv, 8),
	    -1);
}

static void
test_stripe_judge(void **state)
{
	static const struct {
		long status;
		const char *body;
		enum pay_problem want;
	} rows[] = {
	    {200, "{\"id\":\"pi_1\",\"status\":\"succeeded\",\"amount\":50,\"currency\":\"usd\"}", PP_NONE},
	    {200, "{\"id\":\"pi_1\",\"status\":\"requires_action\",\"amount\":50,\"currency\":\"usd\"}",
		PP_ACTION_REQUIRED},
	    {200, "{\"id\":\"pi_1\",\"status\":\"processing\",\"amount\":50,\"currency\":\"usd\"}",
		PP_VERIFICATION_FAILED},
	    /* succeeded, but for another amount or currency, or not a PaymentIntent */
	    {200, "{\"id\":\"pi_1\",\"status\":\"succeeded\",\"amount\":49,\"currency\":\"usd\"}",
		PP_VERIFICATION_FAILED},
	    {200, "{\"id\":\"pi_1\",\"status\":\"succeeded\",\"amount\":50,\"currency\":\"eur\"}",
		PP_VERIFICATION_FAILED},
	    {200, "{\"id\":\"ch_1\",\"status\":\"succeeded\",\"amount\":50,\"currency\":\"usd\"}",
		PP_VERIFICATION_FAILED},
	    {402, "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\"}}",
		PP_VERIFICATION_FAILED},
	    {400, "{\"error\":{\"type\":\"idempotency_error\"}}", PP_VERIFICATION_FAILED},
	    {401, "{}", PP_METHOD_UNAVAILABLE},
	    {429, "{}", PP_METHOD_UNAVAILABLE},
	    {500, "oops", PP_METHOD_UNAVAILABLE},
	    {200, "not json", PP_VERIFICATION_FAILED},
	};
	struct pay_proof p;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		pay_stripe_judge(rows[i].status, rows[i].body, strlen(rows[i].body), 50, &p);
		if (p.problem != rows[i].want)
			fail_msg("row %zu: %s", i, pay_problem_title(p.problem));
		assert_int_equal(p.retry_after > 0, rows[i].want == PP_METHOD_UNAVAILABLE);
		if (p.problem == PP_NONE)
			assert_string_equal(p.reference, "pi_1");
		else
			assert_non_null(p.detail);
	}
}

#define RECEIPT(status, addr, t0, t1, t2, data)                                             \
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"status\":\"" status "\","            \
	"\"transactionHash\":\"0xABCD\",\"logs\":[{\"address\":\"" addr "\",\"topics\":[\"" t0 \
	"\",\"" t1 "\",\"" t2 "\"],\"data\":\"" data "\"}]}}"

static void
test_tempo_judge(void **state)
{
	static const struct {
		const char *body;
		enum pay_problem want;
	} rows[] = {
	    {RECEIPT("0x1", TOKEN, TOPIC, PADDED(FROM), PADDED(TO), AMOUNT("0000044c")), PP_NONE},
	    /* more than the amount pays; addresses in any case */
	    {RECEIPT("0x1", "0x20C0000000000000000000000000000000000001", TOPIC, PADDED(FROM),
		 PADDED("742D35CC6634C0532925A3B844BC9E7595F8FE00"), AMOUNT("ffffffff")),
		PP_NONE},
	    {RECEIPT("0x1", TOKEN, TOPIC, PADDED(FROM), PADDED(TO), AMOUNT("0000044b")),
		PP_VERIFICATION_FAILED},
	    {RECEIPT("0x0", TOKEN, TOPIC, PADDED(FROM), PADDED(TO), AMOUNT("0000044c")),
		PP_VERIFICATION_FAILED},
	    {RECEIPT("0x1", "0x20c0000000000000000000000000000000000002", TOPIC, PADDED(FROM),
		 PADDED(TO), AMOUNT("0000044c")),
		PP_VERIFICATION_FAILED},
	    {RECEIPT("0x1", TOKEN, TOPIC, PADDED(FROM), PADDED(FROM), AMOUNT("0000044c")),
		PP_VERIFICATION_FAILED},
	    /* another event (Approval) with the same shape */
	    {RECEIPT("0x1", TOKEN, "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925",
		 PADDED(FROM), PADDED(TO), AMOUNT("0000044c")),
		PP_VERIFICATION_FAILED},
	    {RECEIPT("0x1", TOKEN, TOPIC, PADDED(FROM), PADDED(TO), "0x44c"), PP_VERIFICATION_FAILED},
	    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}", PP_VERIFICATION_FAILED},
	    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32000}}", PP_METHOD_UNAVAILABLE},
	    {"garbage", PP_METHOD_UNAVAILABLE},
	};
	struct pay_proof p;

	(void)state;
	for (size_t i = 0; i < NF(rows); i++) {
		pay_tempo_judge(rows[i].body, strlen(rows[i].body), TOKEN, RECIP, 1100, &p);
		if (p.problem != rows[i].want)
			fail_msg("row %zu: %s", i, pay_problem_title(p.problem));
		if (p.problem == PP_NONE) {
			assert_string_equal(p.reference, "0xabcd");
			assert_string_equal(p.payer, "0x" FROM);
		}
	}
	/* Not mined yet: try again shortly. */
	pay_tempo_judge(rows[8].body, strlen(rows[8].body), TOKEN, RECIP, 1100, &p);
	assert_int_equal(p.retry_after, 2);
}

/* The credential checks with every method on. */

static const char csecret[] = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
static const char prev[] = "p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0p0";
/* sha256 of 32 bytes of 0x01 */
#define PRE "0101010101010101010101010101010101010101010101010101010101010101"
#define HASH "72cd6e8422c407fb6d098690f1130b7ded7ec2f7f5e1d30bd9d521f015363793"

static struct payments_cfg cfg;

static void
keys_all(struct pay_keys *k)
{
	memset(k, 0, sizeof(*k));
	memset(&cfg, 0, sizeof(cfg));
	memcpy(k->challenge.key, csecret, 64);
	k->challenge.len = 64;
	snprintf(cfg.lnd_url, sizeof(cfg.lnd_url), "https://localhost:1");
	snprintf(k->macaroon.text, sizeof(k->macaroon.text), "0201abcd");
	k->macaroon.len = 8;
	cfg.lightning_micro_usd_per_sat = 500;
	snprintf(cfg.lightning_network, sizeof(cfg.lightning_network), "regtest");
	snprintf(k->stripe.text, sizeof(k->stripe.text), "sk_test_x");
	k->stripe.len = 9;
	snprintf(cfg.stripe_network_id, sizeof(cfg.stripe_network_id), "net_1");
	snprintf(cfg.tempo_rpc_url, sizeof(cfg.tempo_rpc_url), "http://127.0.0.1:1");
	snprintf(cfg.tempo_token, sizeof(cfg.tempo_token), TOKEN);
	snprintf(cfg.tempo_recipient, sizeof(cfg.tempo_recipient), RECIP);
	cfg.tempo_chain_id = 42431;
	k->cfg = &cfg;
}

/* A credential for method with request (JSON) and payload (JSON), signed with secret. */
static char *
credential(const char *secret, const char *method, const char *request, const char *payload,
    int64_t expires, const char *source)
{
	struct mpp_challenge c;
	char exp[RFC3339_BUFSZ], id[MPP_ID_BUFSZ], *out, *req64;
	cJSON *r = cJSON_Parse(request), *p = cJSON_Parse(payload);

	memset(&c, 0, sizeof(c));
	rfc3339_format(expires, exp, sizeof(exp));
	req64 = mpp_request_encode(r);
	c.realm = "demo.example";
	c.method = method;
	c.intent = "charge";
	c.request = req64;
	c.expires = exp;
	assert_int_equal(mpp_challenge_id((const uint8_t *)secret, strlen(secret), &c, id), 0);
	c.id = id;
	out = mpp_credential_format(&c, p, source);
	assert_non_null(out);
	cJSON_Delete(r);
	cJSON_Delete(p);
	free(req64);
	return out;
}

static void
test_check_methods(void **state)
{
	static const char ln[] = "{\"amount\":\"3\",\"currency\":\"sat\",\"methodDetails\":"
				 "{\"invoice\":\"lnbcrt30n1x\",\"paymentHash\":\"" HASH
				 "\",\"network\":\"regtest\"}}";
	static const char ln_main[] = "{\"amount\":\"3\",\"currency\":\"sat\",\"methodDetails\":"
				      "{\"invoice\":\"lnbc30n1x\",\"paymentHash\":\"" HASH
				      "\",\"network\":\"mainnet\"}}";
	static const char st[] = "{\"amount\":\"50\",\"currency\":\"usd\",\"methodDetails\":"
				 "{\"networkId\":\"net_1\",\"paymentMethodTypes\":[\"card\"]}}";
	static const char te[] = "{\"amount\":\"1100\",\"currency\":\"" TOKEN "\",\"recipient\":\"" RECIP
				 "\",\"methodDetails\":{\"chainId\":42431}}";
	const int64_t now = time_now_ms() / 1000;
	const struct {
		const char *secret, *method, *request, *payload, *source;
		int64_t expires;
		enum pay_problem want;
		int64_t paid;
	} rows[] = {
	    {csecret, "lightning", ln, "{\"preimage\":\"" PRE "\"}", NULL, 300, PP_NONE, 1500},
	    {csecret, "lightning", ln,
		"{\"preimage\":\"0201010101010101010101010101010101010101010101010101010101010101\"}",
		NULL, 300, PP_VERIFICATION_FAILED, 0},
	    {csecret, "lightning", ln, "{\"preimage\":\"0x" PRE "\"}", NULL, 300, PP_INVALID_PAYLOAD, 0},
	    {csecret, "lightning", ln_main, "{\"preimage\":\"" PRE "\"}", NULL, 300,
		PP_INVALID_CHALLENGE, 0},
	    {csecret, "stripe", st, "{\"spt\":\"spt_ok_1\"}", "did:key:z6Mk", 300, PP_NONE, 500000},
	    {csecret, "stripe", st, "{\"spt\":\"tok_1\"}", NULL, 300, PP_INVALID_PAYLOAD, 0},
	    {csecret, "stripe", st, "{\"spt\":\"spt_1\",\"extra\":1}", NULL, 300, PP_INVALID_PAYLOAD, 0},
	    {csecret, "tempo", te, "{\"type\":\"hash\",\"hash\":\"0x" HASH "\"}", NULL, 300, PP_NONE,
		1100},
	    {csecret, "tempo", te, "{\"type\":\"transaction\",\"signature\":\"0x01\"}", NULL, 300,
		PP_INVALID_PAYLOAD, 0},
	    /* rotation: the previous secret, for a challenge inside the window; then outside it */
	    {prev, "tempo", te, "{\"type\":\"hash\",\"hash\":\"0x" HASH "\"}", NULL, 300, PP_NONE, 1100},
	    {prev, "tempo", te, "{\"type\":\"hash\",\"hash\":\"0x" HASH "\"}", NULL, 900,
		PP_INVALID_CHALLENGE, 0},
	};
	struct pay_keys k;
	struct pay_verdict v;
	struct ipc_verify m;

	(void)state;
	keys_all(&k);
	memcpy(k.challenge_prev.key, prev, 64);
	k.challenge_prev.len = 64;
	k.prev_until = now + 600;
	for (size_t i = 0; i < NF(rows); i++) {
		char *cred = credential(rows[i].secret, rows[i].method, rows[i].request,
		    rows[i].payload, now + rows[i].expires, rows[i].source);

		memset(&m, 0, sizeof(m));
		snprintf(m.realm, sizeof(m.realm), "demo.example");
		m.amount = 1100;
		m.ncredentials = 1;
		m.credential.p = (const uint8_t *)cred;
		m.credential.len = (uint32_t)strlen(cred);
		pay_check(&k, &m, now, &v);
		if (v.problem != rows[i].want)
			fail_msg("row %zu (%s): %s (%s)", i, rows[i].method, pay_problem_title(v.problem),
			    v.detail != NULL ? v.detail : "");
		if (v.problem == PP_NONE) {
			assert_int_equal(v.paid, rows[i].paid);
			assert_int_equal(strlen(v.buyer), rows[i].source != NULL ? 64 : 0);
		}
		free(cred);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lnd_invoice),
	    cmocka_unit_test(test_stripe_judge),
	    cmocka_unit_test(test_tempo_judge),
	    cmocka_unit_test(test_check_methods),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
