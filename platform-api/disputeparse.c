/*
 * disputeparse.c — the bodies of POST /api/disputes and POST
 * /api/disputes/<id>/resolve, strictly.
 *
 *   {"receipt":"<Payment-Receipt value>"}  or  {"reference":"<payment id>"}
 *   {"outcome":"seller"|"buyer"}
 *
 * each with an optional "reason" string (not kept), nothing else. A receipt
 * is the header value the buyer got: base64url of a JSON object whose
 * "status" is "success" and whose "reference" is the payment id.
 *
 * Security stance: outside input (an operator's client today, buyers'
 * later). Bodies are bounded before parsing, members are a closed set of
 * strings, ids are [A-Za-z0-9_-] of a bounded length, and a refusal says
 * why without quoting the body. A libFuzzer target (fuzz_disputes) runs it.
 */
#include "platform-api/platform.h"

#include <string.h>

#include "common/b64url.h"

#define DISPUTE_BODY_MAX 4096
#define RECEIPT_MAX 1024

int
disputes_token_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= IPC_ID_MAX &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A JSON object with only the listed members, each a string. NULL and *why if not. */
static cJSON *
body_object(const uint8_t *body, size_t len, const char *const *allowed, const char **why)
{
	cJSON *o, *it;

	*why = "the body must be a JSON object";
	if (body == NULL || len == 0 || len > DISPUTE_BODY_MAX ||
	    (o = cJSON_ParseWithLength((const char *)body, len)) == NULL)
		return NULL;
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_ArrayForEach(it, o) {
		const cJSON *before;
		size_t i;

		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], it->string) != 0; i++)
			;
		for (before = o->child; before != it && strcmp(before->string, it->string) != 0;
		     before = before->next)
			;
		if (allowed[i] == NULL || !cJSON_IsString(it) || before != it) {
			*why = "unknown or repeated member, or a member that is not a string";
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

/* The reference inside a Payment-Receipt value (base64url JSON, status success). */
static int
receipt_reference(const char *receipt, char *ref, size_t cap, const char **why)
{
	uint8_t json[RECEIPT_MAX];
	size_t n;
	cJSON *o;
	const char *r, *status;
	int rc = -1;

	*why = "the receipt is not a Payment-Receipt value";
	if (strlen(receipt) > b64url_encoded_len(sizeof(json)) ||
	    b64url_decode(receipt, strlen(receipt), json, sizeof(json), &n, B64_LENIENT) != 0 ||
	    (o = cJSON_ParseWithLength((const char *)json, n)) == NULL)
		return -1;
	r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "reference"));
	status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "status"));
	if (cJSON_IsObject(o) && status != NULL && strcmp(status, "success") == 0 && r != NULL &&
	    disputes_token_ok(r)) {
		snprintf(ref, cap, "%s", r);
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

int
disputes_parse_open(const uint8_t *body, size_t len, char *ref, size_t cap, const char **why)
{
	static const char *const allowed[] = {"receipt", "reference", "reason", NULL};
	cJSON *o = body_object(body, len, allowed, why);
	const char *receipt, *reference;
	int rc = -1;

	if (o == NULL)
		return -1;
	receipt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "receipt"));
	reference = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "reference"));
	if ((receipt == NULL) == (reference == NULL))
		*why = "send exactly one of \"receipt\" and \"reference\"";
	else if (receipt != NULL)
		rc = receipt_reference(receipt, ref, cap, why);
	else if (!disputes_token_ok(reference))
		*why = "the reference is not a payment id";
	else {
		snprintf(ref, cap, "%s", reference);
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

int
disputes_parse_resolve(const uint8_t *body, size_t len, int *outcome, const char **why)
{
	static const char *const allowed[] = {"outcome", "reason", NULL};
	cJSON *o = body_object(body, len, allowed, why);
	const char *s;

	if (o == NULL)
		return -1;
	s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "outcome"));
	*outcome = s == NULL ? 0 : strcmp(s, "seller") == 0 ? DISPUTE_FOR_SELLER :
	    strcmp(s, "buyer") == 0				 ? DISPUTE_FOR_BUYER :
								   0;
	cJSON_Delete(o);
	if (*outcome == 0) {
		*why = "\"outcome\" must be \"seller\" or \"buyer\"";
		return -1;
	}
	return 0;
}
