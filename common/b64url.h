/*
 * b64url.h — base64url (RFC 4648 section 5) without padding.
 *
 * Security stance: decoding is strict by default, so each byte string has
 * exactly one accepted encoding: URL-safe alphabet only, no '=', no
 * whitespace, no impossible lengths, and the unused low bits of the last
 * character must be zero. B64_LENIENT widens the input side only, for peers
 * the MPP protocol tells us to tolerate: '=' padding (exactly the right
 * amount, only at the end) and the standard alphabet's '+' and '/'.
 * The caller owns every buffer; nothing here allocates.
 */
#ifndef CN2_B64URL_H
#define CN2_B64URL_H

#include <stddef.h>
#include <stdint.h>

#include "common/utf8.h"

/* Accept '=' padding and '+' '/' as well (decode only). */
#define B64_LENIENT 0x1

/*
 * Length of the unpadded encoding of n bytes, not counting the NUL.
 * SIZE_MAX if it would not fit in a size_t.
 */
size_t b64url_encoded_len(size_t n);

/* Upper bound of the bytes that decoding n characters can produce. */
size_t b64url_decoded_max(size_t n);

/*
 * Encode in[0..n) into out, NUL-terminated. Returns the length written
 * (without the NUL), or -1 if outcap cannot hold it and the NUL, or if the
 * length would not fit in an int. out is untouched on error.
 */
int b64url_encode(const uint8_t *in, size_t n, char *out, size_t outcap);

/*
 * Decode in[0..n) into out[0..outcap), storing the byte count in *outlen.
 * flags is 0 (strict) or B64_LENIENT. Returns 0, or -1 on any malformed
 * input, an unknown flag or a too-small outcap (then *outlen is untouched
 * and out may hold partial output). in need not be NUL-terminated.
 */
int b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap, size_t *outlen,
    int flags);

#endif
