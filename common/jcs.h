/*
 * jcs.h — RFC 8785 JSON Canonicalization Scheme over cJSON trees.
 *
 * The canonical form is what MPP challenge ids and other MACs are computed
 * over, so two equal JSON values must serialise to the same bytes whatever
 * order or spelling they arrived in: object members sorted by UTF-16 code
 * units, no whitespace, minimal string escaping, ECMAScript number form.
 *
 * Security stance: anything without one canonical form is refused rather
 * than guessed at: non-finite numbers, strings or keys that are not valid
 * UTF-8, duplicate keys, cJSON raw items, and nesting deeper than
 * JCS_MAX_DEPTH containers. Numbers are cJSON doubles, as in I-JSON; a
 * string cannot hold U+0000 because cJSON strings end at the first NUL.
 * Number formatting uses printf/strtod and so assumes the "C" numeric
 * locale (cn2 never calls setlocale).
 */
#ifndef CN2_JCS_H
#define CN2_JCS_H

#include <cjson/cJSON.h>

/* Most arrays/objects that may enclose one another. */
#define JCS_MAX_DEPTH 64

/*
 * Canonical serialisation of v as a NUL-terminated string. Caller frees.
 * NULL on any of the refusals above or when memory runs out.
 */
char *jcs_serialize(const cJSON *v);

#endif
