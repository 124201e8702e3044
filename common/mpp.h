/*
 * mpp.h — the Machine Payments Protocol on the wire ("Payment" HTTP
 * authentication scheme): challenges in WWW-Authenticate, credentials in
 * Authorization, HMAC-bound challenge ids, canonical request JSON, receipts.
 * Shared by cn2-payments (issues challenges, checks credentials) and the
 * `cn2 pay` client (reads challenges, builds credentials).
 *
 * Security stance: every parser here reads text from the internet. Each one
 * is linear in its input, bounded (MPP_HEADER_MAX), and refuses rather than
 * repairs: missing or empty required fields, duplicate parameters or JSON
 * keys, bad base64url, request data that is not a JSON object, CR/LF in
 * anything formatted into a header. Ids and proofs are compared in constant
 * time. Nothing here logs; nothing here keeps a secret beyond the call.
 */
#ifndef CN2_MPP_H
#define CN2_MPP_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Shortest HMAC secret accepted for challenge ids (and test proofs). */
#define MPP_SECRET_MIN 32
/* base64url of an HMAC-SHA256, plus the NUL: challenge ids, test proofs. */
#define MPP_ID_BUFSZ 44
/* Longest header value parsed (challenges and credentials). */
#define MPP_HEADER_MAX 16384
/* The header a challenge may ask credentials to travel in instead of Authorization. */
#define MPP_HEADER_PAYMENT_AUTH "Payment-Authorization"

/*
 * One challenge. The required fields are non-NULL and non-empty in a parsed
 * challenge; an absent optional field is NULL. request is the base64url
 * string exactly as sent or echoed (the id is bound to that string).
 *
 * A parsed challenge owns its strings through mem (free it with
 * mpp_challenge_free). A challenge the caller fills in keeps mem NULL and
 * points at the caller's own strings, which must outlive its use.
 */
struct mpp_challenge {
	const char *id;
	const char *realm;
	const char *method;
	const char *intent;
	const char *request;
	const char *expires;	 /* RFC 3339 */
	const char *digest;
	const char *opaque;
	const char *description; /* not bound by the id */
	const char *header;	 /* MPP_HEADER_PAYMENT_AUTH, or NULL for Authorization */
	char *mem;
};

/* Free what a parse allocated and clear every field. Safe on a zeroed struct. */
void mpp_challenge_free(struct mpp_challenge *c);

/*
 * Parse a WWW-Authenticate value holding exactly one challenge, of scheme
 * Payment (any case). Auth-params are case-insensitive, in any order,
 * tokens or quoted strings (with \" and \\); unknown ones are ignored, and
 * text after an unescaped closing quote, up to the next comma, too.
 * Returns 0, or -1 with a reason in err (which may be NULL); *out is then
 * left zeroed.
 */
int mpp_challenge_parse(const char *s, size_t n, struct mpp_challenge *out, char *err,
    size_t errlen);

/*
 * Parse a WWW-Authenticate value that may join several challenges with
 * ", " (RFC 9110 §11.6.1). Challenges of other schemes are skipped; a
 * malformed Payment challenge fails the whole value. Stores up to max
 * Payment challenges in out[] and their number in *count. Returns 0 if at
 * least one was found, -1 (with err, nothing to free) otherwise. The caller
 * frees each out[i] with mpp_challenge_free.
 */
int mpp_challenges_parse(const char *s, size_t n, struct mpp_challenge *out, size_t max,
    size_t *count, char *err, size_t errlen);

/*
 * Format one challenge as a WWW-Authenticate value:
 *   Payment id="…", realm="…", method="…", intent="…", request="…"[, expires="…"]…
 * Every value is a quoted string. NULL if a required field is missing or
 * empty, or any value holds a control character (CR/LF: header injection).
 * Caller frees.
 */
char *mpp_challenge_format(const struct mpp_challenge *c);

/*
 * The challenge id: base64url_nopad(HMAC-SHA256(secret,
 *   "realm|method|intent|request|expires|digest|[header|]opaque")),
 * an absent field read as "", and header included only when it is set and
 * is not "Authorization". Writes out (NUL-terminated). Returns 0, or -1 if
 * secretlen < MPP_SECRET_MIN, a required field is missing, or mbedTLS fails.
 */
int mpp_challenge_id(const uint8_t *secret, size_t secretlen, const struct mpp_challenge *c,
    char out[MPP_ID_BUFSZ]);

/* 0 if c->id is the id mpp_challenge_id computes for c (constant-time compare), -1 if not. */
int mpp_challenge_check_id(const uint8_t *secret, size_t secretlen,
    const struct mpp_challenge *c);

/* base64url_nopad(JCS(request)): the "request" parameter. Caller frees; NULL on refusal. */
char *mpp_request_encode(const cJSON *request);

/*
 * Decode a "request" value: strict base64url of UTF-8 JSON that is an
 * object. Caller frees with cJSON_Delete; NULL if it is anything else.
 */
cJSON *mpp_request_decode(const char *b64);

/*
 * A credential: the echoed challenge, the method's payload (a JSON object)
 * and the optional payer id. Strings live in challenge.mem; the payload is
 * owned. Free with mpp_credential_free.
 */
struct mpp_credential {
	struct mpp_challenge challenge;
	cJSON *payload;
	const char *source; /* NULL when absent */
};

void mpp_credential_free(struct mpp_credential *cr);

/*
 * Parse an Authorization (or Payment-Authorization) value
 * "Payment <base64url(JSON)>". Padded and standard-alphabet base64 are
 * tolerated; key order is free; duplicate keys, a missing or non-object
 * challenge or payload, and a challenge without its required fields (or
 * whose request is not base64url JSON) are refused. Returns 0, or -1 with a
 * reason in err (never any of the input).
 */
int mpp_credential_parse(const char *s, size_t n, struct mpp_credential *out, char *err,
    size_t errlen);

/*
 * Build "Payment <base64url_nopad(JCS({challenge, payload, source?}))>".
 * payload must be a JSON object; source may be NULL. Caller frees; NULL if
 * a required challenge field is missing or JCS refuses the payload.
 */
char *mpp_credential_format(const struct mpp_challenge *c, const cJSON *payload,
    const char *source);

/*
 * The Payment-Receipt value: base64url_nopad(JCS({"method", "reference",
 * "status":"success", "timestamp": RFC 3339 of unix_s})). Writes out,
 * NUL-terminated. Returns the length, or -1 if cap is too small or a
 * field cannot be encoded.
 */
int mpp_receipt_encode(const char *method, const char *reference, int64_t unix_s, char *out,
    size_t cap);
/* The same with "challengeId" (as the Lightning draft asks); NULL leaves it out. */
int mpp_receipt_encode_id(const char *method, const char *reference, const char *challenge_id,
    int64_t unix_s, char *out, size_t cap);

/*
 * cn2's "test" method proof for a challenge id:
 * base64url_nopad(HMAC-SHA256(secret, id)). 0, or -1 if secretlen <
 * MPP_SECRET_MIN or mbedTLS fails.
 */
int mpp_test_proof(const uint8_t *secret, size_t secretlen, const char *id,
    char out[MPP_ID_BUFSZ]);

#endif
