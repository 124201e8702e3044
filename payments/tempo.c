/*
 * tempo.c — the "tempo" charge method (draft-tempo-charge), push mode: the
 * buyer sends a TIP-20 transfer on the Tempo chain itself and presents the
 * transaction hash; cn2 reads the receipt from its RPC node.
 *
 *   challenge: {"amount": "<base units>", "currency": "<TIP-20 token>",
 *               "recipient": "<address>", "methodDetails": {"chainId": n}}.
 *               The token has 6 decimals, so one base unit is one µUSD.
 *   payload:   {"type": "hash", "hash": "0x<64 hex>"}; the pull modes
 *              (a signed transaction cn2 would broadcast, a proof) are not
 *              taken here: invalid-payload.
 *   verify:    after the reservation, eth_getTransactionReceipt over
 *              JSON-RPC; the receipt must be successful and hold a Transfer
 *              log of the configured token to the configured recipient of
 *              at least the amount. The hash is then claimed in payments.db
 *              (verify.c): a transaction pays for one challenge only, ever.
 *              A receipt not there yet answers 402 verification-failed with
 *              Retry-After; the node down or slow, 503 with Retry-After.
 *   receipt:   reference = the transaction hash. The payer identity (for
 *              buyer spend when the credential names no source) is the
 *              Transfer's sender.
 *
 * Security stance: the RPC node is trusted to report the chain, not to be
 * up; its answer is parsed with bounds (hex of fixed lengths, a bounded
 * number of logs) and amounts are compared as 256-bit numbers without
 * overflow. Only hashes, addresses and amounts pass through here.
 */
#include "payments/payments.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

/* keccak256("Transfer(address,address,uint256)"), the ERC-20 event TIP-20 keeps. */
#define TRANSFER_TOPIC "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#define MAX_LOGS 256

struct tempo_call {
	pay_proof_fn done;
	void *arg;
	char token[48], recipient[48];
	int64_t units;
};

int
pay_tempo_enabled(const struct pay_keys *k)
{
	return k->cfg != NULL && k->cfg->tempo_rpc_url[0] != '\0';
}

/* "0x" and 40 hex digits. */
static int
is_address(const char *s)
{
	return s != NULL && strncmp(s, "0x", 2) == 0 && pay_is_hex(s + 2, 40, 0);
}

int
pay_tempo_offer(struct payments *s, const char *realm, int64_t amount, struct pay_offer *o,
    pay_offer_fn done, void *arg)
{
	cJSON *md = cJSON_CreateObject();

	(void)realm;
	(void)done;
	(void)arg;
	if (md == NULL || (o->request = cJSON_CreateObject()) == NULL ||
	    !cJSON_AddItemToObject(o->request, "methodDetails", md)) {
		cJSON_Delete(md);
		return -1;
	}
	if (pay_json_amount(o->request, "amount", amount) != 0 ||
	    cJSON_AddStringToObject(o->request, "currency", s->cfg->tempo_token) == NULL ||
	    cJSON_AddStringToObject(o->request, "recipient", s->cfg->tempo_recipient) == NULL ||
	    cJSON_AddNumberToObject(md, "chainId", (double)s->cfg->tempo_chain_id) == NULL)
		return -1;
	return 0;
}

enum pay_problem
pay_tempo_economics(const struct pay_keys *k, const cJSON *req, const char *realm,
    int64_t *paid, struct pay_claim *claim)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(req, "methodDetails");
	const cJSON *chain = cJSON_GetObjectItemCaseSensitive(md, "chainId");
	const char *cur = pay_json_str(req, "currency", 42), *to = pay_json_str(req, "recipient", 42);

	(void)realm;
	if ((*paid = pay_json_units(req, "amount")) < 1 || !is_address(cur) || !is_address(to) ||
	    strcasecmp(cur, k->cfg->tempo_token) != 0 || strcasecmp(to, k->cfg->tempo_recipient) != 0 ||
	    !cJSON_IsNumber(chain) || (int64_t)chain->valuedouble != k->cfg->tempo_chain_id)
		return PP_INVALID_CHALLENGE;
	claim->units = *paid;
	return PP_NONE;
}

enum pay_problem
pay_tempo_payload(const struct pay_keys *k, const cJSON *payload, const cJSON *req,
    const char *id, struct pay_claim *claim)
{
	const char *type = pay_json_str(payload, "type", 16), *hash = pay_json_str(payload, "hash", 66);

	(void)k;
	(void)req;
	(void)id;
	if (cJSON_GetArraySize(payload) != 2 || type == NULL || strcmp(type, "hash") != 0 ||
	    hash == NULL || strncmp(hash, "0x", 2) != 0 || !pay_is_hex(hash + 2, 64, 0))
		return PP_INVALID_PAYLOAD;
	for (size_t i = 0; i <= 66; i++)
		claim->payload_a[i] = (char)(hash[i] >= 'A' && hash[i] <= 'F' ? hash[i] + 32 : hash[i]);
	return PP_NONE;
}

/* Does the 0x-prefixed 256-bit hex amount reach units? */
static int
amount_covers(const char *data, int64_t units)
{
	const char *p;
	uint64_t v = 0;

	if (data == NULL || strncmp(data, "0x", 2) != 0 || !pay_is_hex(data + 2, 64, 0))
		return 0;
	for (p = data + 2; *p == '0'; p++)
		;
	if (strlen(p) > 16)
		return 1;
	for (; *p != '\0'; p++)
		v = v * 16 + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 32) - 'a' + 10);
	return v >= (uint64_t)units;
}

/* topic is a 32-byte left-padded address. */
static int
topic_is_address(const char *topic)
{
	return topic != NULL && strlen(topic) == 66 &&
	    strncmp(topic, "0x000000000000000000000000", 26) == 0 && pay_is_hex(topic + 26, 40, 0);
}

/* topic is the 32-byte left-padded form of address. */
static int
topic_is(const char *topic, const char *address)
{
	return topic_is_address(topic) && strcasecmp(topic + 26, address + 2) == 0;
}

/* A Transfer log paying recipient enough in token; its sender into payer. */
static int
log_pays(const cJSON *log, const char *token, const char *recipient, int64_t units, char *payer,
    size_t cap)
{
	const cJSON *topics = cJSON_GetObjectItemCaseSensitive(log, "topics");
	const char *addr = pay_json_str(log, "address", 42);
	const char *t0 = cJSON_GetStringValue(cJSON_GetArrayItem(topics, 0));
	const char *t1 = cJSON_GetStringValue(cJSON_GetArrayItem(topics, 1));

	if (!is_address(addr) || strcasecmp(addr, token) != 0 || !cJSON_IsArray(topics) ||
	    cJSON_GetArraySize(topics) != 3 || t0 == NULL || strcasecmp(t0, TRANSFER_TOPIC) != 0 ||
	    !topic_is_address(t1) ||
	    !topic_is(cJSON_GetStringValue(cJSON_GetArrayItem(topics, 2)), recipient) ||
	    !amount_covers(pay_json_str(log, "data", 66), units))
		return 0;
	snprintf(payer, cap, "0x%s", t1 + 26);
	for (char *p = payer; *p != '\0'; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	return 1;
}

void
pay_tempo_judge(const char *body, size_t len, const char *token, const char *recipient,
    int64_t units, struct pay_proof *out)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
	const cJSON *logs = cJSON_GetObjectItemCaseSensitive(res, "logs"), *log;
	const char *st = pay_json_str(res, "status", 8), *tx = pay_json_str(res, "transactionHash", 66);
	int n = 0;

	memset(out, 0, sizeof(*out));
	out->problem = PP_VERIFICATION_FAILED;
	if (j == NULL || cJSON_GetObjectItemCaseSensitive(j, "error") != NULL ||
	    (res == NULL)) {
		out->problem = PP_METHOD_UNAVAILABLE;
		out->detail = "the chain node gave no usable answer";
		out->retry_after = pay_problem_retry(PP_METHOD_UNAVAILABLE);
	} else if (cJSON_IsNull(res)) {
		out->detail = "the transaction is not on chain (yet); retry with the same credential";
		out->retry_after = 2;
	} else if (st == NULL || strcmp(st, "0x1") != 0) {
		out->detail = "the transaction did not succeed";
	} else {
		out->detail = "the transaction holds no transfer of the amount to the recipient";
		cJSON_ArrayForEach(log, logs)
		{
			if (++n > MAX_LOGS)
				break;
			if (log_pays(log, token, recipient, units, out->payer, sizeof(out->payer))) {
				out->problem = PP_NONE;
				out->detail = NULL;
				break;
			}
		}
	}
	if (out->problem == PP_NONE && tx != NULL)
		for (size_t i = 0; i <= strlen(tx) && i < sizeof(out->reference); i++)
			out->reference[i] = (char)(tx[i] >= 'A' && tx[i] <= 'F' ? tx[i] + 32 : tx[i]);
	cJSON_Delete(j);
}

static void
tempo_on_reply(void *arg, const struct httpc_result *r)
{
	struct tempo_call *tc = arg;
	struct pay_proof p;

	if (r->error != HTTPC_OK || r->status != 200) {
		memset(&p, 0, sizeof(p));
		p.problem = PP_METHOD_UNAVAILABLE;
		p.detail = r->error == HTTPC_TIMEOUT ? "the chain node did not answer in time"
							: "the chain node cannot be reached";
		p.retry_after = pay_problem_retry(PP_METHOD_UNAVAILABLE);
		log_warnx("Tempo RPC: %s (status %ld)", p.detail, r->status);
	} else {
		pay_tempo_judge(r->body, r->bodylen, tc->token, tc->recipient, tc->units, &p);
	}
	tc->done(tc->arg, &p);
	free(tc);
}

int
pay_tempo_prove(struct payments *s, const struct pay_claim *c, pay_proof_fn done, void *arg)
{
	const char *hs[] = {"Content-Type: application/json", NULL};
	char body[400];
	struct httpc_req hr = {.url = s->cfg->tempo_rpc_url, .headers = hs, .body = body,
	    .timeout_ms = (long)s->cfg->method_timeout_ms};
	struct tempo_call *tc = calloc(1, sizeof(*tc));

	if (tc == NULL)
		return -1;
	tc->done = done;
	tc->arg = arg;
	tc->units = c->units;
	snprintf(tc->token, sizeof(tc->token), "%s", s->cfg->tempo_token);
	snprintf(tc->recipient, sizeof(tc->recipient), "%s", s->cfg->tempo_recipient);
	snprintf(body, sizeof(body),
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getTransactionReceipt\","
	    "\"params\":[\"%s\"]}",
	    c->payload_a);
	if (httpc_post(s->http, &hr, tempo_on_reply, tc) != 0) {
		free(tc);
		return -1;
	}
	return 0;
}
