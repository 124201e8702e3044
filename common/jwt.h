/*
 * jwt.h — HS256 JSON Web Tokens (RFC 7519, RFC 7515 compact form), the way
 * Supabase Auth issues them: sellers sign in there and present the access
 * token to cn2-platform as "Authorization: Bearer <token>".
 *
 * Security stance: a token is outside input and a bearer credential. The
 * verifier accepts exactly one algorithm, HS256, named in the header; "none",
 * every other algorithm and any "crit" extension are refused, so the header
 * can never choose how it is checked. The signature is compared in constant
 * time before a byte of the payload is parsed. Segments are strict base64url
 * (no padding, no '+' '/'), JSON must be valid UTF-8 with no repeated member
 * names, and the claims cn2 relies on are required: exp (in the future, with
 * JWT_LEEWAY_S of clock skew), aud (equal to, or a list containing, the
 * configured audience) and sub (1..63 characters of [A-Za-z0-9_.@:-], so it
 * can be stored and logged as an id). nbf, when present, is honoured.
 * Nothing here logs, and no error message ever contains the token.
 */
#ifndef CN2_JWT_H
#define CN2_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192 /* longest token accepted, in characters */
#define JWT_LEEWAY_S 30	 /* clock skew tolerated on exp and nbf */

struct jwt_claims {
	char sub[64];	 /* the user id: the seller id in cn2 */
	char aud[64];	 /* verify: the audience that matched; sign: the audience to write */
	int64_t exp;	 /* unix seconds */
	int64_t iat;	 /* unix seconds; 0 if absent (verify) or not to be written (sign) */
	char role[32];	 /* Supabase's "role" claim, "" if absent */
	char email[128]; /* "" if absent */
};

/*
 * Verify token (NUL-terminated) with the HMAC key secret[0..secretlen)
 * against audience at time now (unix seconds). Returns 0 and fills *out, or
 * -1 with a one-line reason in err (never any part of the token); *out is
 * then unspecified.
 */
int jwt_verify(const char *token, const uint8_t *secret, size_t secretlen, const char *audience,
    int64_t now, struct jwt_claims *out, char *err, size_t errlen);

/*
 * Sign claims (sub, aud and exp required; iat, role and email written when
 * set) into a compact HS256 token with header {"alg":"HS256","typ":"JWT"}.
 * Returns a NUL-terminated string the caller frees, or NULL on bad claims or
 * when memory runs out.
 */
char *jwt_sign(const struct jwt_claims *claims, const uint8_t *secret, size_t secretlen);

#endif
