/*
 * bolt11.c — a strict reader of BOLT #11 Lightning invoices: bech32
 * (BIP-173) and its checksum, the human-readable part (ln, currency,
 * amount), the 35-bit timestamp, the tagged fields and the signature.
 *
 * Strict means one reading per invoice: canonical encodings only (no
 * leading zeros in the amount, nor in `x`, `c` and `9`; zero padding of at
 * most four bits in byte fields), and no field we read given twice, where
 * the spec would let a writer list alternatives; LND writes none, and an
 * invoice checked against LND's answer must say one thing. Fields of the
 * wrong length fail the invoice (the rule since bolts #1243; the older
 * text skipped them).
 *
 * The signature is not verified. mbedTLS 2.28 has neither public-key
 * recovery nor compressed points, so it would take secp256k1 arithmetic
 * of our own; and the invoices read here come from our own LND node over
 * TLS pinned to its certificate, which is what vouches for them. Checked
 * is what needs no curve arithmetic: the recovery id, the ranges of r and
 * s, and low S where the invoice names its payee, as the spec asks.
 *
 * Security stance: reads at most BOLT11_MAX characters of untrusted text;
 * every field length is checked against what is left before it is read;
 * amounts are converted with overflow checks; the description is copied
 * only after it is found to be valid UTF-8 without NUL and to fit. Nothing
 * allocates and nothing is logged.
 */
#include "payments/bolt11.h"

#include <stddef.h>
#include <string.h>

#include "common/utf8.h"

/* Tagged field types: the value of the field's bech32 letter. */
enum { F_P = 1, F_9 = 5, F_X = 6, F_D = 13, F_S = 16, F_N = 19, F_H = 23, F_C = 24 };

#define TS_WORDS 7    /* 35 bits */
#define SIG_WORDS 104 /* 520 bits: r, s and the recovery id */
#define SUM_WORDS 6

static const char bolt11_charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/* Longest first: "lnbcrt…" must not read as "bc" with an amount "rt…". */
static const char *const bolt11_networks[] = {"bcrt", "bc", "tbs", "tb", "sb"};

/* secp256k1's group order n, n / 2, and p - n, big-endian. */
static const uint8_t bolt11_n[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2,
    0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
static const uint8_t bolt11_half_n[32] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf,
    0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};
static const uint8_t bolt11_p_minus_n[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    0x45, 0x51, 0x23, 0x19, 0x50, 0xb7, 0x5f, 0xc4, 0x40, 0x2d, 0xa1, 0x72, 0x2f, 0xc9, 0xba, 0xee};

/* The bech32 string taken apart: hrp lower-cased, data words without the checksum. */
struct bolt11_text {
	char hrp[BOLT11_MAX + 1];
	uint8_t w[BOLT11_MAX];
	size_t n;
};

static int
bolt11_fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return -1;
}

static uint32_t
bolt11_polymod(uint32_t chk, unsigned v)
{
	static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
	uint32_t top = chk >> 25;

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

/* BIP-173: printable US-ASCII only, and all of one case. */
static int
bolt11_chars(const char *s, size_t len, const char **why)
{
	int lower = 0, upper = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < 33 || s[i] > 126)
			return bolt11_fail(why, "invoice has a character outside printable ASCII");
		lower |= s[i] >= 'a' && s[i] <= 'z';
		upper |= s[i] >= 'A' && s[i] <= 'Z';
	}
	return lower && upper ? bolt11_fail(why, "invoice mixes upper and lower case") : 0;
}

static char
bolt11_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The checksum state after the expanded hrp (BIP-173's hrp_expand). */
static uint32_t
bolt11_hrp_sum(const char *hrp, size_t len)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < len; i++)
		chk = bolt11_polymod(chk, (unsigned char)hrp[i] >> 5);
	chk = bolt11_polymod(chk, 0);
	for (size_t i = 0; i < len; i++)
		chk = bolt11_polymod(chk, (unsigned char)hrp[i] & 31);
	return chk;
}

/* Split s at its last '1', read the data words and check the checksum. */
static int
bolt11_bech32(const char *s, struct bolt11_text *t, const char **why)
{
	size_t len = strnlen(s, BOLT11_MAX + 1), sep, nd;
	const char *one, *c;
	uint32_t chk;

	if (len > BOLT11_MAX)
		return bolt11_fail(why, "invoice is too long");
	if (bolt11_chars(s, len, why) != 0)
		return -1;
	if ((one = memrchr(s, '1', len)) == NULL || one == s)
		return bolt11_fail(why, "invoice has no bech32 separator or no prefix");
	sep = (size_t)(one - s);
	if ((nd = len - sep - 1) < SUM_WORDS)
		return bolt11_fail(why, "invoice is too short for a checksum");
	for (size_t i = 0; i < sep; i++)
		t->hrp[i] = bolt11_lower(s[i]);
	t->hrp[sep] = '\0';
	chk = bolt11_hrp_sum(t->hrp, sep);
	for (size_t i = 0; i < nd; i++) {
		char ch = bolt11_lower(one[1 + i]);

		if (ch == '\0' || (c = strchr(bolt11_charset, ch)) == NULL)
			return bolt11_fail(why, "invoice has a character outside the bech32 set");
		t->w[i] = (uint8_t)(c - bolt11_charset);
		chk = bolt11_polymod(chk, t->w[i]);
	}
	if (chk != 1)
		return bolt11_fail(why, "invoice checksum is wrong");
	t->n = nd - SUM_WORDS;
	return 0;
}

/* The decimal digits at *a into *v; a leading 0 is refused (so is 0 itself). */
static int
bolt11_digits(const char **a, uint64_t *v, const char **why)
{
	const char *p = *a;

	if (*p < '1' || *p > '9')
		return bolt11_fail(why, "amount is not a number without leading zeros");
	for (*v = 0; *p >= '0' && *p <= '9'; p++) {
		if (*v > (UINT64_MAX - 9) / 10)
			return bolt11_fail(why, "amount is too large");
		*v = *v * 10 + (uint64_t)(*p - '0');
	}
	*a = p;
	return 0;
}

/*
 * The amount after the currency prefix, in millisatoshis: a BTC count,
 * or m/u/n/p thousandths…trillionths of one; a p amount must be a whole
 * number of millisatoshis (a multiple of 10 pico-BTC).
 */
static int
bolt11_amount(const char *a, struct bolt11 *out, const char **why)
{
	/* Millisatoshis per unit: none (a whole BTC), m, u, n; 0 marks p, a tenth. */
	static const char mult[] = "munp";
	static const uint64_t per[] = {100000000000, 100000000, 100000, 100, 0};
	const char *m = NULL;
	uint64_t v, k;

	if (*a == '\0')
		return 0;
	if (bolt11_digits(&a, &v, why) != 0)
		return -1;
	if (*a != '\0' && ((m = strchr(mult, *a)) == NULL || a[1] != '\0'))
		return bolt11_fail(why, "amount has an unknown multiplier");
	k = per[m == NULL ? 0 : m - mult + 1];
	if (k == 0 && v % 10 != 0)
		return bolt11_fail(why, "amount is not a whole number of millisatoshis");
	if (k != 0 && v > (uint64_t)INT64_MAX / k)
		return bolt11_fail(why, "amount is too large");
	/* v / 10 stays below UINT64_MAX / 10, itself below INT64_MAX. */
	out->amount_msat = k == 0 ? v / 10 : v * k;
	out->has_amount = 1;
	return 0;
}

static int
bolt11_hrp(const char *hrp, struct bolt11 *out, const char **why)
{
	if (strncmp(hrp, "ln", 2) != 0)
		return bolt11_fail(why, "not a Lightning invoice (no \"ln\" prefix)");
	for (size_t i = 0; i < sizeof(bolt11_networks) / sizeof(bolt11_networks[0]); i++) {
		size_t n = strlen(bolt11_networks[i]);

		if (strncmp(hrp + 2, bolt11_networks[i], n) == 0) {
			memcpy(out->network, bolt11_networks[i], n + 1);
			return bolt11_amount(hrp + 2 + n, out, why);
		}
	}
	return bolt11_fail(why, "invoice has an unknown currency prefix");
}

/*
 * Words to bytes as BIP-173 converts them: at most four padding bits, all
 * zero. Returns the byte count, or -1 (also when cap is too small).
 */
static int
bolt11_bytes(const uint8_t *w, size_t n, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		acc = ((acc << 5) | w[i]) & 0xfff;
		if ((bits += 5) >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits >= 5 || (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (int)o;
}

/* A field of exactly cap bytes (the length in words was checked already). */
static int
bolt11_fixed(const uint8_t *w, size_t n, uint8_t *out, size_t cap, const char **why)
{
	if (bolt11_bytes(w, n, out, cap) != (int)cap)
		return bolt11_fail(why, "field padding is not canonical");
	return 0;
}

/* `x` and `c`: big-endian, minimal (no leading zero word), at most UINT32_MAX. */
static int
bolt11_uint32(const uint8_t *w, size_t n, uint32_t *v, const char **why)
{
	uint64_t acc = 0;

	if (n > 0 && w[0] == 0)
		return bolt11_fail(why, "integer field has a leading zero word");
	/* Seven minimal words are at least 2^30 and at most 2^35 - 1; eight exceed 32 bits. */
	if (n > 7)
		return bolt11_fail(why, "integer field is too large");
	for (size_t i = 0; i < n; i++)
		acc = (acc << 5) | w[i];
	if (acc > UINT32_MAX)
		return bolt11_fail(why, "integer field is too large");
	*v = (uint32_t)acc;
	return 0;
}

/* `d`: UTF-8 without NUL, copied NUL-terminated. */
static int
bolt11_description(const uint8_t *w, size_t n, char *out, const char **why)
{
	uint8_t raw[BOLT11_DESC_MAX];
	int len = bolt11_bytes(w, n, raw, sizeof(raw));

	if (len < 0)
		return bolt11_fail(why, "description padding is not canonical");
	if (!utf8_valid(raw, (size_t)len) || memchr(raw, 0, (size_t)len) != NULL)
		return bolt11_fail(why, "description is not UTF-8 text");
	memcpy(out, raw, (size_t)len);
	out[len] = '\0';
	return 0;
}

/*
 * Required (even) feature bits that BOLT #9 lists for invoices, or assumes:
 * var_onion_optin, payment_secret, basic_mpp, option_route_blinding,
 * option_attribution_data, option_payment_metadata. Odd bits are optional
 * and any may be set; an unknown even bit means a payer could not pay.
 */
static int
bolt11_known_even(size_t bit)
{
	return bit == 8 || bit == 14 || bit == 16 || bit == 24 || bit == 36 || bit == 48;
}

/* `9`: big-endian bits, bit 0 the last word's lowest; minimal length. */
static int
bolt11_features(const uint8_t *w, size_t n, const char **why)
{
	if (n > 0 && w[0] == 0)
		return bolt11_fail(why, "feature field has a leading zero word");
	for (size_t i = 0; i < n; i++)
		for (unsigned b = 0; b < 5; b++) {
			size_t bit = (n - 1 - i) * 5 + b;

			if (((w[i] >> b) & 1) && bit % 2 == 0 && !bolt11_known_even(bit))
				return bolt11_fail(why, "invoice requires an unknown feature");
		}
	return 0;
}

/* `n`: 33 bytes, a compressed point's 02/03 prefix. */
static int
bolt11_payee(const uint8_t *w, size_t n, struct bolt11 *out, const char **why)
{
	if (bolt11_fixed(w, n, out->payee, sizeof(out->payee), why) != 0)
		return -1;
	if (out->payee[0] != 2 && out->payee[0] != 3)
		return bolt11_fail(why, "payee is not a compressed public key");
	out->has_payee = 1;
	return 0;
}

/* The field's value into *out; the type is one read here, seen for the first time. */
static int
bolt11_field_value(struct bolt11 *out, unsigned type, const uint8_t *w, size_t n, const char **why)
{
	switch (type) {
	case F_P:
		return bolt11_fixed(w, n, out->payment_hash, 32, why);
	case F_S:
		return bolt11_fixed(w, n, out->payment_secret, 32, why);
	case F_H:
		out->has_description_hash = 1;
		return bolt11_fixed(w, n, out->description_hash, 32, why);
	case F_N:
		return bolt11_payee(w, n, out, why);
	case F_D:
		return bolt11_description(w, n, out->description, why);
	case F_X:
		return bolt11_uint32(w, n, &out->expiry, why);
	case F_C:
		return bolt11_uint32(w, n, &out->min_final_cltv, why);
	default:
		return bolt11_features(w, n, why);
	}
}

/* One tagged field; *seen has a bit per type read so far. Others are skipped. */
static int
bolt11_field(
    struct bolt11 *out, unsigned type, const uint8_t *w, size_t n, uint32_t *seen, const char **why)
{
	static const uint8_t fixed_len[32] = {[F_P] = 52, [F_S] = 52, [F_H] = 52, [F_N] = 53};
	static const uint32_t known = 1u << F_P | 1u << F_9 | 1u << F_X | 1u << F_D | 1u << F_S |
	    1u << F_N | 1u << F_H | 1u << F_C;
	uint32_t bit = 1u << type;

	if ((known & bit) == 0)
		return 0;
	if (fixed_len[type] != 0 && n != fixed_len[type])
		return bolt11_fail(why, "p, s, h or n field has the wrong length");
	if ((*seen & bit) != 0)
		return bolt11_fail(why, "a field appears twice");
	*seen |= bit;
	return bolt11_field_value(out, type, w, n, why);
}

/* The tagged fields in w[0..n): type (5 bits), length (10 bits), data. */
static int
bolt11_fields(const uint8_t *w, size_t n, struct bolt11 *out, const char **why)
{
	uint32_t seen = 0;
	size_t i = 0, len;

	while (i < n) {
		if (n - i < 3)
			return bolt11_fail(why, "tagged field is cut short");
		len = ((size_t)w[i + 1] << 5) | w[i + 2];
		if (len > n - i - 3)
			return bolt11_fail(why, "tagged field is longer than the invoice");
		if (bolt11_field(out, w[i], w + i + 3, len, &seen, why) != 0)
			return -1;
		i += 3 + len;
	}
	if ((seen & (1u << F_P)) == 0)
		return bolt11_fail(why, "invoice has no payment hash");
	if ((seen & (1u << F_S)) == 0)
		return bolt11_fail(why, "invoice has no payment secret");
	if (((seen >> F_D) & 1) == ((seen >> F_H) & 1))
		return bolt11_fail(why, "invoice needs exactly one of description and its hash");
	return 0;
}

/*
 * The signature's shape: r and s in [1, n), recovery id 0..3, and for ids
 * 2 and 3 (R.x = r + n) r below p - n; low S when the payee is named.
 */
static int
bolt11_signature(const uint8_t *w, int has_payee, const char **why)
{
	static const uint8_t zero[32];
	uint8_t sig[65];

	if (bolt11_bytes(w, SIG_WORDS, sig, sizeof(sig)) != 65)
		return bolt11_fail(why, "signature is malformed");
	if (sig[64] > 3)
		return bolt11_fail(why, "signature recovery id is not 0..3");
	if (memcmp(sig, zero, 32) == 0 || memcmp(sig, bolt11_n, 32) >= 0 ||
	    memcmp(sig + 32, zero, 32) == 0 || memcmp(sig + 32, bolt11_n, 32) >= 0)
		return bolt11_fail(why, "signature r or s is out of range");
	if (sig[64] >= 2 && memcmp(sig, bolt11_p_minus_n, 32) >= 0)
		return bolt11_fail(why, "signature is not recoverable");
	if (has_payee && memcmp(sig + 32, bolt11_half_n, 32) > 0)
		return bolt11_fail(why, "signature has a high S with the payee named");
	return 0;
}

int
bolt11_decode(const char *invoice, struct bolt11 *out, const char **why)
{
	struct bolt11_text t;
	const uint8_t *w = t.w;

	memset(out, 0, sizeof(*out));
	out->expiry = 3600;
	out->min_final_cltv = 18;
	if (invoice == NULL)
		return bolt11_fail(why, "no invoice");
	if (bolt11_bech32(invoice, &t, why) != 0 || bolt11_hrp(t.hrp, out, why) != 0)
		return -1;
	if (t.n < TS_WORDS + SIG_WORDS)
		return bolt11_fail(why, "invoice is too short for a timestamp and a signature");
	for (size_t i = 0; i < TS_WORDS; i++)
		out->timestamp = out->timestamp << 5 | w[i];
	if (bolt11_fields(w + TS_WORDS, t.n - TS_WORDS - SIG_WORDS, out, why) != 0)
		return -1;
	return bolt11_signature(w + t.n - SIG_WORDS, out->has_payee, why);
}
