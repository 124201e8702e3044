/*
 * auth.c — who is asking: "Authorization: Bearer <JWT>" (RFC 6750) checked
 * with the configured HS256 secret and audience (Supabase Auth's access
 * tokens), giving the seller id (the token's sub).
 *
 * Security stance: the token is a credential. It is never logged, copied
 * or echoed; a refusal says why in general terms only. Every check of the
 * token itself is jwt_verify's (common/jwt.c).
 */
#include "platform-api/platform.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"

int
auth_bearer(struct platform *p, const char *authorization, struct jwt_claims *claims,
    const char **why)
{
	static char reason[160];
	const char *token;
	char err[128];

	if (authorization[0] == '\0') {
		*why = "this request needs Authorization: Bearer <access token>";
		return -1;
	}
	/* The scheme is case-insensitive (RFC 9110 §11.1); one or more spaces follow it. */
	if (strncasecmp(authorization, "Bearer ", 7) != 0) {
		*why = "the Authorization scheme must be Bearer";
		return -1;
	}
	for (token = authorization + 7; *token == ' '; token++)
		;
	if (jwt_verify(token, p->jwt_key, p->jwt_keylen, p->cfg->jwt_audience, (int64_t)time(NULL),
	    claims, err, sizeof(err)) != 0) {
		log_info("bearer token refused: %s", err);
		snprintf(reason, sizeof(reason), "the access token is not valid: %s", err);
		*why = reason;
		return -1;
	}
	return 0;
}
