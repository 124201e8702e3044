/*
 * utf8.h — strict UTF-8 validation and decoding (RFC 3629).
 *
 * Security stance: bytes from outside (a decoded header, a JSON string) are
 * only treated as text after passing these checks. Overlong forms, UTF-16
 * surrogates (U+D800..U+DFFF), code points above U+10FFFF and truncated
 * sequences are all rejected, so two different byte strings can never stand
 * for the same text. Nothing here allocates; nothing reads past n.
 */
#ifndef CN2_UTF8_H
#define CN2_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* 1 if s[0..n) is well-formed UTF-8, 0 if not. s may be NULL when n is 0. */
int utf8_valid(const uint8_t *s, size_t n);

/*
 * Decode one code point from s[0..n) into *cp. Returns the number of bytes
 * it took (1..4), or 0 if n is 0 or the sequence is ill-formed.
 */
size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

#endif
