/*
 * randid.h — unguessable identifiers: a short prefix that says what the id
 * names ("g_" a grant, "k_" a key), then 128 bits from the kernel's CSPRNG
 * as 22 base64url characters.
 *
 * Security stance: ids such as key and grant ids are handed to sellers and
 * to the edge; they must not be guessable or enumerable, so they never come
 * from a counter or a clock. getrandom(2) blocks only before the kernel's
 * pool is first initialised, which is long past when a daemon runs.
 */
#ifndef CN2_RANDID_H
#define CN2_RANDID_H

#include <stddef.h>

#define RANDID_CHARS 22 /* characters after the prefix */

/*
 * Write prefix followed by RANDID_CHARS random base64url characters into
 * buf, NUL-terminated. Returns 0, or -1 if cap is too small or the kernel
 * gives no randomness (buf is then "").
 */
int randid_make(const char *prefix, char *buf, size_t cap);

#endif
