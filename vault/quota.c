/*
 * quota.c — does an upstream's error body say the key is out of credit or
 * quota?
 *
 * Some providers tell a key that ran out of money from a rate limit only in
 * the body. OpenAI answers 429 for both; an exhausted quota or credit has
 * error.type (and error.code) "insufficient_quota", and waiting does not
 * bring it back. Anthropic answers 402 billing_error (the status already
 * says it), but an account without credit gets 400 invalid_request_error
 * whose message begins "Your credit balance is too low". The router
 * quarantines such a key like a 402 instead of resting it for Retry-After;
 * the vault is the only process that sees bodies, so it looks, and sends
 * only the verdict (the OUTCOME's error_class).
 *
 * Markers are matched as JSON members, not as free text: an unescaped '"',
 * the member name, '"', optional blanks, ':', optional blanks, then the
 * value's opening '"' and the value (whole, or its beginning for the
 * message). Provider messages often quote the buyer's request ("the model
 * `…` does not exist"), and a quote inside a JSON string is always escaped,
 * so text a buyer sends can never look like a member: a buyer cannot get a
 * seller's key quarantined by echoing a marker.
 *
 * Security stance: the body is the upstream's and read as hostile: at most
 * the bytes given (forward.c gives the first QUOTA_PEEK_MAX of a 4xx body,
 * chunk by chunk as it relays them; a marker split across two reads is
 * missed, and the key is then only rested, as before), read only, nothing
 * kept, nothing logged. A compressed body matches nothing.
 */
#include "vault/quota.h"

#include <string.h>

#include "common/ipc_msg.h"

struct marker {
	const char *name;  /* the member */
	const char *value; /* its string value */
	int prefix;        /* 1: the value only begins with it */
};

static const struct marker markers[] = {
    {"type", "insufficient_quota", 0},                /* OpenAI, 429 */
    {"code", "insufficient_quota", 0},                /* OpenAI, 429 */
    {"type", "billing_error", 0},                     /* Anthropic */
    {"message", "Your credit balance is too low", 1}, /* Anthropic, 400 */
};
#define NMARKERS (sizeof(markers) / sizeof(markers[0]))

static size_t
skip_blanks(const uint8_t *p, size_t i, size_t len)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return i;
}

/* "text" at p[i]: the index after it, or 0 if it is not there. */
static size_t
quoted(const uint8_t *p, size_t i, size_t len, const char *text, int prefix)
{
	size_t n = strlen(text);

	if (i + 1 + n > len || p[i] != '"' || memcmp(p + i + 1, text, n) != 0)
		return 0;
	if (prefix)
		return i + 1 + n;
	return i + 1 + n < len && p[i + 1 + n] == '"' ? i + 2 + n : 0;
}

/* The member m at p[i], an unescaped '"': "name" : "value…. */
static int
member_at(const uint8_t *p, size_t i, size_t len, const struct marker *m)
{
	size_t j = quoted(p, i, len, m->name, 0);

	if (j == 0)
		return 0;
	j = skip_blanks(p, j, len);
	if (j >= len || p[j] != ':')
		return 0;
	j = skip_blanks(p, j + 1, len);
	return j < len && quoted(p, j, len, m->value, m->prefix) != 0;
}

uint8_t
quota_classify(const uint8_t *p, size_t len)
{
	size_t run = 0; /* backslashes just before p[i]: an odd run escapes it */

	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; p[i] == '"' && run % 2 == 0 && k < NMARKERS; k++)
			if (member_at(p, i, len, &markers[k]))
				return ECLASS_QUOTA;
		run = p[i] == '\\' ? run + 1 : 0;
	}
	return ECLASS_NONE;
}
