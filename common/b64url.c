/*
 * b64url.c — base64url (RFC 4648 section 5) without padding.
 *
 * Security stance: the decoder reads only in[0..n) and writes only
 * out[0..outcap); it checks the output size before writing anything it
 * cannot hold. Strict mode accepts one encoding per byte string, because
 * challenge ids and tokens are compared as strings elsewhere.
 */
#include "common/b64url.h"

#include <limits.h>

static const char b64url_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of c, or -1 if c is not in the accepted alphabet. */
static int
b64url_value(unsigned char c, int lenient)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	if (lenient && c == '+')
		return 62;
	if (lenient && c == '/')
		return 63;
	return -1;
}

size_t
b64url_encoded_len(size_t n)
{
	static const size_t tail[3] = {0, 2, 3};

	if (n / 3 > (SIZE_MAX - 3) / 4)
		return SIZE_MAX;
	return n / 3 * 4 + tail[n % 3];
}

size_t
b64url_decoded_max(size_t n)
{
	/* A lone trailing character never decodes, so it adds nothing. */
	static const size_t tail[4] = {0, 0, 1, 2};

	return n / 4 * 3 + tail[n % 4];
}

int
b64url_encode(const uint8_t *in, size_t n, char *out, size_t outcap)
{
	size_t len, i, o;
	uint32_t v;

	len = b64url_encoded_len(n);
	if (len > INT_MAX || len >= outcap)
		return -1;
	for (i = 0, o = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 0x3f];
		out[o++] = b64url_alphabet[(v >> 6) & 0x3f];
		out[o++] = b64url_alphabet[v & 0x3f];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 0x3f];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 0x3f];
		out[o++] = b64url_alphabet[(v >> 6) & 0x3f];
	}
	out[o] = '\0';
	return (int)o;
}

/*
 * Strip correct '=' padding from *n: exactly two after a quantum holding
 * one byte, one after a quantum holding two, which also means the padded
 * text is a whole number of quanta.
 */
static int
b64url_strip_padding(const char *in, size_t *n)
{
	size_t pad = 0, m;

	while (pad < *n && pad < 3 && in[*n - 1 - pad] == '=')
		pad++;
	if (pad == 0)
		return 0;
	m = *n - pad;
	if ((m % 4 == 2 && pad == 2) || (m % 4 == 3 && pad == 1)) {
		*n = m;
		return 0;
	}
	return -1;
}

int
b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap, size_t *outlen,
    int flags)
{
	size_t i, o, need;
	uint32_t acc = 0;
	int v, lenient;

	if ((flags & ~B64_LENIENT) != 0)
		return -1;
	lenient = (flags & B64_LENIENT) != 0;
	if (lenient && b64url_strip_padding(in, &n) == -1)
		return -1;
	if (n % 4 == 1)
		return -1;
	need = b64url_decoded_max(n);
	if (need > outcap)
		return -1;
	for (i = 0, o = 0; i < n; i++) {
		if ((v = b64url_value((unsigned char)in[i], lenient)) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	/* A partial quantum: its unused low bits must be zero (strict form). */
	if (n % 4 == 2) {
		if ((acc & 0x0f) != 0)
			return -1;
		out[o++] = (uint8_t)(acc >> 4);
	} else if (n % 4 == 3) {
		if ((acc & 0x03) != 0)
			return -1;
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
	}
	*outlen = o;
	return 0;
}
