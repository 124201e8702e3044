/*
 * lightning.c — the "lightning" charge method (draft-lightning-charge-00):
 * a BOLT11 invoice per challenge, created through an LND node's REST API,
 * paid by the buyer on the Lightning Network, proved with the preimage.
 *
 *   challenge: POST <lnd_url>/v1/invoices {"value": sats, "memo", "expiry"}
 *              with the macaroon in Grpc-Metadata-macaroon, over TLS pinned
 *              to the node's own certificate (lnd_tls_cert). The answer's
 *              r_hash (base64) and payment_request become the request:
 *              {"amount": "<sats>", "currency": "sat", "methodDetails":
 *               {"invoice", "paymentHash", "network"}}
 *              and the invoice is stored (payments.db) before the 402 goes
 *              out, keyed by the challenge id it was issued with.
 *   verify:    {"preimage": 64 lowercase hex}; sha256(preimage) must equal
 *              paymentHash, and the stored invoice must be this challenge's,
 *              with this hash and amount (verify.c asks store at reserve).
 *   receipt:   reference = the payment hash, never the preimage.
 *
 * Amounts: sats = ceil(µUSD / lightning_micro_usd_per_sat), rounded in the
 * platform's favour; what the buyer paid in µUSD is sats × the rate.
 *
 * Budget: anyone can ask for a 402, and each one with lightning on costs the
 * node an invoice. lightning_invoices_per_minute is a token bucket (a
 * minute's worth of burst) over all challenges: past it, 402s offer the
 * other methods only, or 503 with Retry-After when lightning is all the
 * buyer accepts, and the node is spared.
 *
 * The invoice text is decoded (bolt11.c) and must say what LND's JSON says
 * and what was asked: the configured network, this payment hash, exactly
 * these sats, and an expiry past the challenge's; otherwise lightning is
 * left out of that 402 (a node that misbehaves never reaches a buyer).
 *
 * Security stance: LND is reached over TLS with its own certificate only;
 * the macaroon travels in a header built here and is never logged; LND's
 * answer is parsed strictly (a hash of exactly 32 bytes, an invoice of
 * bounded printable text). The preimage is a bearer secret: it is compared
 * through its hash, never stored or logged.
 */
#include "payments/payments.h"

#include <inttypes.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64url.h"
#include "payments/bolt11.h"
#include "common/log.h"
#include "common/money.h"
#include "common/timefmt.h"

#define INVOICE_MAX 2047

struct ln_offer {
	struct payments *s;
	struct pay_offer *o;
	pay_offer_fn done;
	void *arg;
	int64_t sats, amount;
};

int
pay_lightning_enabled(const struct pay_keys *k)
{
	return k->cfg != NULL && k->cfg->lnd_url[0] != '\0' && k->macaroon.len > 0;
}

int
pay_lightning_parse_invoice(const char *body, size_t len, char hash[65], char *invoice,
    size_t cap)
{
	/* cJSON would cut a string at an escaped NUL: refuse such an answer outright. */
	cJSON *j = memmem(body, len, "\\u0000", 6) == NULL ? cJSON_ParseWithLength(body, len) : NULL;
	const char *h = pay_json_str(j, "r_hash", 64), *pr = pay_json_str(j, "payment_request",
	    INVOICE_MAX);
	uint8_t raw[48];
	size_t n = 0, plen;
	int ok = h != NULL && pr != NULL && (plen = strlen(pr)) < cap &&
	    strncmp(pr, "ln", 2) == 0 &&
	    b64url_decode(h, strlen(h), raw, sizeof(raw), &n, B64_LENIENT) == 0 && n == 32;

	for (const char *p = pr; ok && *p != '\0'; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
	if (ok) {
		pay_hex(raw, 32, hash);
		memcpy(invoice, pr, plen + 1);
	}
	cJSON_Delete(j);
	return ok ? 0 : -1;
}

int
pay_lightning_invoice_agrees(const char *invoice, const char *hash_hex, int64_t sats,
    const char *network, int64_t valid_until, const char **why)
{
	static const struct {
		const char *network, *prefix;
	} nets[] = {{"mainnet", "bc"}, {"regtest", "bcrt"}, {"signet", "tbs"}};
	struct bolt11 b;
	char hex[65];
	const char *want = NULL;

	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
		if (strcmp(network, nets[i].network) == 0)
			want = nets[i].prefix;
	if (bolt11_decode(invoice, &b, why) != 0)
		return -1;
	pay_hex(b.payment_hash, 32, hex);
	if (want == NULL || strcmp(b.network, want) != 0)
		*why = "the invoice is for another network";
	else if (strcmp(hex, hash_hex) != 0)
		*why = "the invoice's payment hash is not the one LND returned";
	else if (!b.has_amount || sats < 1 || b.amount_msat / 1000 != (uint64_t)sats ||
	    b.amount_msat % 1000 != 0)
		*why = "the invoice's amount is not the one asked for";
	else if ((int64_t)(b.timestamp + b.expiry) < valid_until)
		*why = "the invoice expires before the challenge";
	else
		return 0;
	return -1;
}

/* The challenge's request from LND's invoice; 0 or -1. */
static int
ln_request(struct ln_offer *lo, const char *hash, const char *invoice)
{
	const struct payments_cfg *cfg = lo->s->cfg;
	cJSON *req = cJSON_CreateObject(), *md = cJSON_CreateObject();

	if (req == NULL || md == NULL || !cJSON_AddItemToObject(req, "methodDetails", md)) {
		cJSON_Delete(req);
		cJSON_Delete(md);
		return -1;
	}
	if (pay_json_amount(req, "amount", lo->sats) != 0 ||
	    cJSON_AddStringToObject(req, "currency", "sat") == NULL ||
	    cJSON_AddStringToObject(md, "invoice", invoice) == NULL ||
	    cJSON_AddStringToObject(md, "paymentHash", hash) == NULL ||
	    cJSON_AddStringToObject(md, "network", cfg->lightning_network) == NULL) {
		cJSON_Delete(req);
		return -1;
	}
	lo->o->request = req;
	lo->o->has_invoice = 1;
	memcpy(lo->o->invoice.payment_hash, hash, 65);
	lo->o->invoice.sats = lo->sats;
	lo->o->invoice.amount = lo->amount;
	lo->o->invoice.expires = lo->o->expires;
	return 0;
}

static void
ln_on_invoice(void *arg, const struct httpc_result *r)
{
	struct ln_offer *lo = arg;
	char hash[65], *invoice = malloc(INVOICE_MAX + 1);
	const char *why = NULL;
	int ok = 0;

	if (r->error != HTTPC_OK || r->status != 200)
		log_warnx("LND did not create an invoice (%s, status %ld)",
		    r->error == HTTPC_TIMEOUT ? "timeout" : r->error ? "no answer" : "answered",
		    r->status);
	else if (invoice == NULL ||
	    pay_lightning_parse_invoice(r->body, r->bodylen, hash, invoice, INVOICE_MAX + 1) != 0)
		log_warnx("LND answered an invoice we cannot read");
	else if (pay_lightning_invoice_agrees(invoice, hash, lo->sats,
		     lo->s->cfg->lightning_network, lo->o->expires, &why) != 0)
		log_warnx("LND's invoice does not say what was asked (%s); lightning left out", why);
	else
		ok = ln_request(lo, hash, invoice) == 0;
	free(invoice);
	lo->done(lo->arg, ok);
	free(lo);
}

/* Take one invoice from the budget: 1, or 0 when it is spent (warned once a minute). */
static int
invoice_budget_take(struct payments *s)
{
	int64_t per_min = s->cfg->lightning_invoices_per_minute, cap = per_min * 1000,
		now = time_now_ms(), *t = &s->invoices.tokens_milli;

	if (s->invoices.at_ms == 0)
		*t = cap;
	else if (now > s->invoices.at_ms)
		*t = (now - s->invoices.at_ms) > 60000 ? cap :
							 *t + (now - s->invoices.at_ms) * per_min / 60;
	if (*t > cap)
		*t = cap;
	s->invoices.at_ms = now;
	if (*t >= 1000) {
		*t -= 1000;
		return 1;
	}
	if (now - s->invoices.warned_ms >= 60000) {
		log_warnx("lightning_invoices_per_minute (%" PRId64 ") reached: 402s leave "
			  "lightning out for now",
		    per_min);
		s->invoices.warned_ms = now;
	}
	return 0;
}

int
pay_lightning_offer(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
    pay_offer_fn done, void *arg)
{
	const struct payments_cfg *cfg = s->cfg;
	char url[300], body[256], mac[PAY_CRED_MAX + 40];
	const char *hs[] = {mac, "Content-Type: application/json", NULL};
	struct httpc_req hr = {.url = url, .headers = hs, .body = body, .cainfo = cfg->lnd_tls_cert,
	    .timeout_ms = (long)cfg->method_timeout_ms};
	struct ln_offer *lo;
	int64_t sats;

	if (!money_div_ceil(amount, cfg->lightning_micro_usd_per_sat, &sats) ||
	    !invoice_budget_take(s) || (lo = calloc(1, sizeof(*lo))) == NULL)
		return -1;
	*lo = (struct ln_offer){s, o, done, arg, sats, amount};
	snprintf(url, sizeof(url), "%s/v1/invoices", cfg->lnd_url);
	/* The invoice outlives the challenge a little: expires must not pass the invoice's. */
	snprintf(body, sizeof(body), "{\"value\":\"%" PRId64 "\",\"memo\":\"cn2 %.64s\",\"expiry\":\"%"
	    PRId64 "\"}", sats, realm, cfg->challenge_ttl_s + 60);
	snprintf(mac, sizeof(mac), "Grpc-Metadata-macaroon: %s", s->keys.macaroon.text);
	if (strchr(realm, '"') != NULL || strchr(realm, '\\') != NULL ||
	    httpc_post(s->http, &hr, ln_on_invoice, lo) != 0) {
		free(lo);
		mbedtls_platform_zeroize(mac, sizeof(mac));
		return -1;
	}
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return 1;
}

enum pay_problem
pay_lightning_economics(const struct pay_keys *k, const cJSON *req, const char *realm,
    int64_t *paid, struct pay_claim *claim)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(req, "methodDetails");
	const char *cur = pay_json_str(req, "currency", 8), *hash = pay_json_str(md, "paymentHash", 64);
	const char *net = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "network"));
	int64_t sats = pay_json_units(req, "amount");

	(void)realm;
	if (sats < 1 || cur == NULL || strcmp(cur, "sat") != 0 || !cJSON_IsObject(md) ||
	    pay_json_str(md, "invoice", INVOICE_MAX) == NULL || !pay_is_hex(hash, 64, 1) ||
	    (net != NULL && strcmp(net, k->cfg->lightning_network) != 0))
		return PP_INVALID_CHALLENGE;
	if (!money_mul(sats, k->cfg->lightning_micro_usd_per_sat, paid))
		return PP_INVALID_CHALLENGE;
	claim->units = sats;
	memcpy(claim->payload_a, hash, 65);
	return PP_NONE;
}

enum pay_problem
pay_lightning_payload(const struct pay_keys *k, const cJSON *payload, const cJSON *req,
    const char *id, struct pay_claim *claim)
{
	const char *pre = pay_json_str(payload, "preimage", 64);
	uint8_t raw[32], h[32];
	char hex[65];
	int ok;

	(void)k;
	(void)req;
	(void)id;
	if (cJSON_GetArraySize(payload) != 1 || !pay_is_hex(pre, 64, 1))
		return PP_INVALID_PAYLOAD;
	for (int i = 0; i < 32; i++) {
		unsigned v;

		sscanf(pre + 2 * i, "%2x", &v);
		raw[i] = (uint8_t)v;
	}
	if (mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), raw, 32, h) != 0)
		return PP_VERIFICATION_FAILED;
	pay_hex(h, 32, hex);
	ok = mbedtls_ct_memcmp(hex, claim->payload_a, 64) == 0;
	mbedtls_platform_zeroize(raw, sizeof(raw));
	return ok ? PP_NONE : PP_VERIFICATION_FAILED;
}
