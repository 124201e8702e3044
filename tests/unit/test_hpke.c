/*
 * test_hpke.c — common/hpke.c: RFC 9180 appendix A.1.1 (DHKEM(X25519,
 * HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode) as a known-answer test
 * (key pairs, enc, key, base_nonce, exporter secret, four sequence numbers
 * both ways, three exports); what must be refused (wrong associated data,
 * wrong info, every tag byte flipped, a wrong recipient, every known
 * low-order enc, truncated ciphertexts); the cn2 binding string; and
 * interop with the npm package @hpke/core for the AES-256-GCM suite:
 * 1,000 random messages sealed there open here, and 1,000 sealed here open
 * there (tests/node/hpke_peer.mjs, run with node).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <limits.h>

#include <cmocka.h>

#include "common/hpke.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define INTEROP_N 1000

static size_t
unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s) / 2;

	assert_true(strlen(s) % 2 == 0 && n <= cap);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sscanf(s + 2 * i, "%2hhx", &out[i]), 1);
	return n;
}

static void
tohex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	out[2 * n] = '\0';
}

static void
assert_hex(const uint8_t *got, size_t n, const char *want)
{
	uint8_t w[512];

	assert_int_equal(unhex(want, w, sizeof(w)), n);
	assert_memory_equal(got, w, n);
}

/* RFC 9180 A.1.1. */
static const char info_hex[] = "4f6465206f6e2061204772656369616e2055726e";
static const char ikmE[] = "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234";
static const char pkEm[] = "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431";
static const char skEm[] = "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736";
static const char ikmR[] = "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037";
static const char pkRm[] = "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d";
static const char skRm[] = "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8";
static const char key_hex[] = "4531685d41d65f03dc48f6b8302c05b0";
static const char nonce_hex[] = "56d890e5accaaf011cff4b7d";
static const char exporter_hex[] =
    "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8";
static const char pt_hex[] = "4265617574792069732074727574682c20747275746820626561757479";

static const struct {
	uint64_t seq;
	const char *aad, *ct;
} encryptions[] = {
    {0, "436f756e742d30",
	"f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"},
    {1, "436f756e742d31",
	"af2d7e9ac9ae7e270f46ba1f975be53c09f8d875bdc8535458c2494e8a6eab251c03d0c22a56b8ca42c2063b84"},
    {2, "436f756e742d32",
	"498dfcabd92e8acedc281e85af1cb4e3e31c7dc394a1ca20e173cb72516491588d96a19ad4a683518973dcc180"},
    {255, "436f756e742d323535",
	"7175db9717964058640a3a11fb9007941a5d1757fda1a6935c805c21af32505bf106deefec4a49ac38d71c9e0a"},
};

static const struct {
	const char *ctx;
	const char *value;
} exports[] = {
    {"", "3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee"},
    {"00", "2e8f0b54673c7029649d4eb9d5e33bf1872cf76d623ff164ac185da9e88c21a5"},
    {"54657374436f6e74657874", "e9e43065102c3836401bed8c3c3c75ae46be1639869391d62c61f1ec7af54931"},
};

static void
test_kat_keypairs(void **state)
{
	uint8_t ikm[32], sk[HPKE_NSK], pk[HPKE_NPK];

	(void)state;
	unhex(ikmE, ikm, sizeof(ikm));
	assert_int_equal(hpke_keypair_derive(ikm, sizeof(ikm), sk, pk), 0);
	assert_hex(sk, sizeof(sk), skEm);
	assert_hex(pk, sizeof(pk), pkEm);
	unhex(ikmR, ikm, sizeof(ikm));
	assert_int_equal(hpke_keypair_derive(ikm, sizeof(ikm), sk, pk), 0);
	assert_hex(sk, sizeof(sk), skRm);
	assert_hex(pk, sizeof(pk), pkRm);
	/* Too short an ikm is refused. */
	assert_int_equal(hpke_keypair_derive(ikm, 31, sk, pk), -1);
}

static void
test_kat_sender(void **state)
{
	uint8_t info[64], skE[32], pkR[32], enc[32], pt[64], aad[16], ct[128], out[32], ctx[16];
	size_t infolen = unhex(info_hex, info, sizeof(info)), ptlen = unhex(pt_hex, pt, sizeof(pt));
	struct hpke_ctx c;

	(void)state;
	unhex(skEm, skE, sizeof(skE));
	unhex(pkRm, pkR, sizeof(pkR));
	assert_int_equal(hpke_setup_s(&c, HPKE_AES_128_GCM, pkR, info, infolen, skE, enc), 0);
	assert_hex(enc, sizeof(enc), pkEm);
	assert_int_equal(c.keylen, 16);
	assert_hex(c.key, 16, key_hex);
	assert_hex(c.base_nonce, HPKE_NN, nonce_hex);
	assert_hex(c.exporter, HPKE_NH, exporter_hex);
	for (size_t i = 0; i < NELEM(encryptions); i++) {
		size_t aadlen = unhex(encryptions[i].aad, aad, sizeof(aad));

		c.seq = encryptions[i].seq;
		assert_int_equal(hpke_ctx_seal(&c, aad, aadlen, pt, ptlen, ct), 0);
		assert_hex(ct, ptlen + HPKE_NT, encryptions[i].ct);
		assert_int_equal(c.seq, encryptions[i].seq + 1);
	}
	for (size_t i = 0; i < NELEM(exports); i++) {
		size_t n = unhex(exports[i].ctx, ctx, sizeof(ctx));

		assert_int_equal(hpke_ctx_export(&c, ctx, n, out, sizeof(out)), 0);
		assert_hex(out, sizeof(out), exports[i].value);
	}
	hpke_ctx_wipe(&c);
	assert_int_equal(c.keylen, 0);
}

static void
test_kat_recipient(void **state)
{
	uint8_t info[64], skR[32], enc[32], want[64], aad[16], ct[128], pt[64], out[32], ctx[16];
	size_t infolen = unhex(info_hex, info, sizeof(info));
	size_t ptlen = unhex(pt_hex, want, sizeof(want));
	struct hpke_ctx c;

	(void)state;
	unhex(skRm, skR, sizeof(skR));
	unhex(pkEm, enc, sizeof(enc));
	assert_int_equal(hpke_setup_r(&c, HPKE_AES_128_GCM, skR, NULL, enc, info, infolen), 0);
	assert_hex(c.key, 16, key_hex);
	assert_hex(c.base_nonce, HPKE_NN, nonce_hex);
	for (size_t i = 0; i < NELEM(encryptions); i++) {
		size_t aadlen = unhex(encryptions[i].aad, aad, sizeof(aad));
		size_t ctlen = unhex(encryptions[i].ct, ct, sizeof(ct));

		c.seq = encryptions[i].seq;
		assert_int_equal(hpke_ctx_open(&c, aad, aadlen, ct, ctlen, pt), 0);
		assert_int_equal(ctlen - HPKE_NT, ptlen);
		assert_memory_equal(pt, want, ptlen);
	}
	for (size_t i = 0; i < NELEM(exports); i++) {
		size_t n = unhex(exports[i].ctx, ctx, sizeof(ctx));

		assert_int_equal(hpke_ctx_export(&c, ctx, n, out, sizeof(out)), 0);
		assert_hex(out, sizeof(out), exports[i].value);
	}
	hpke_ctx_wipe(&c);
}

/* One AES-256-GCM message sealed to a fresh key pair, for the refusals below. */
struct sealed {
	uint8_t sk[32], pk[32], enc[32], ct[64 + HPKE_NT];
	size_t ctlen;
};

static const char msg[] = "sk-test-0123456789abcdef";
static const char info_s[] = "cn2 seller key v1|seller_1|openai";

static void
seal_one(struct sealed *s)
{
	assert_int_equal(hpke_keypair_generate(s->sk, s->pk), 0);
	assert_int_equal(hpke_seal(HPKE_AES_256_GCM, s->pk, (const uint8_t *)info_s,
			     strlen(info_s), (const uint8_t *)info_s, strlen(info_s),
			     (const uint8_t *)msg, strlen(msg), s->enc, s->ct),
	    0);
	s->ctlen = strlen(msg) + HPKE_NT;
}

static int
open_with(const uint8_t *sk, const uint8_t *enc, const char *info,
    const char *aad, const uint8_t *ct, size_t ctlen, uint8_t *pt)
{
	return hpke_open(HPKE_AES_256_GCM, sk, NULL, enc, (const uint8_t *)info, strlen(info),
	    (const uint8_t *)aad, strlen(aad), ct, ctlen, pt);
}

static void
assert_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p[i], 0);
}

static void
test_round_trip_and_refusals(void **state)
{
	struct sealed s, other;
	uint8_t pt[64], ct[64 + HPKE_NT];

	(void)state;
	seal_one(&s);
	seal_one(&other);
	assert_int_equal(open_with(s.sk, s.enc, info_s, info_s, s.ct, s.ctlen, pt), 0);
	assert_memory_equal(pt, msg, strlen(msg));
	/* Wrong associated data, wrong info: refused, and no plaintext left behind. */
	memset(pt, 0xaa, sizeof(pt));
	assert_int_equal(open_with(s.sk, s.enc, info_s, "cn2 seller key v1|seller_2|openai",
			     s.ct, s.ctlen, pt),
	    -1);
	assert_zero(pt, strlen(msg));
	assert_int_equal(open_with(s.sk, s.enc, "cn2 seller key v1|seller_1|anthropic",
			     info_s, s.ct, s.ctlen, pt),
	    -1);
	/* Every bit of the tag, and a byte of the ciphertext, flipped. */
	for (size_t i = 0; i < HPKE_NT * 8; i++) {
		memcpy(ct, s.ct, s.ctlen);
		ct[s.ctlen - HPKE_NT + i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(open_with(s.sk, s.enc, info_s, info_s, ct, s.ctlen, pt), -1);
	}
	memcpy(ct, s.ct, s.ctlen);
	ct[0] ^= 0x80;
	assert_int_equal(open_with(s.sk, s.enc, info_s, info_s, ct, s.ctlen, pt), -1);
	/* Wrong recipient; another message's enc. */
	assert_int_equal(open_with(other.sk, s.enc, info_s, info_s, s.ct, s.ctlen, pt), -1);
	assert_int_equal(open_with(s.sk, other.enc, info_s, info_s, s.ct, s.ctlen, pt), -1);
	/* Truncated: every length short of the whole. */
	for (size_t n = 0; n < s.ctlen; n++)
		assert_int_equal(open_with(s.sk, s.enc, info_s, info_s, s.ct, n, pt), -1);
	/* Two seals of the same message differ (fresh ephemeral keys). */
	seal_one(&other);
	assert_memory_not_equal(other.enc, s.enc, 32);
}

/*
 * The low-order points of Curve25519 (0, 1, the two of order 8, p - 1, and
 * p and p + 1, which are 0 and 1 again), each also with the top bit set: as
 * enc each yields an all-zero shared secret, or a point mbedTLS refuses,
 * and must be refused either way.
 */
static const char *const low_order[] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    /* The same with the top bit set, which X25519 ignores. */
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
};

static void
test_low_order_enc(void **state)
{
	struct sealed s;
	struct hpke_ctx c;
	uint8_t enc[32], pt[64];

	(void)state;
	seal_one(&s);
	for (size_t i = 0; i < NELEM(low_order); i++) {
		unhex(low_order[i], enc, sizeof(enc));
		memset(pt, 0x55, sizeof(pt));
		if (open_with(s.sk, enc, info_s, info_s, s.ct, s.ctlen, pt) != -1)
			fail_msg("low-order enc %s was accepted", low_order[i]);
		assert_zero(pt, strlen(msg));
		assert_int_equal(hpke_setup_r(&c, HPKE_AES_256_GCM, s.sk, s.pk, enc, NULL, 0), -1);
		assert_int_equal(c.keylen, 0);
		/* Nor can a sender be made to seal to one. */
		assert_int_equal(hpke_setup_s(&c, HPKE_AES_256_GCM, enc, NULL, 0, NULL, s.enc), -1);
	}
}

static void
test_limits(void **state)
{
	static uint8_t big[HPKE_INFO_MAX + 1];
	struct sealed s;
	struct hpke_ctx c;
	uint8_t enc[32], ct[8 + HPKE_NT], out[32];

	(void)state;
	seal_one(&s);
	assert_int_equal(hpke_setup_s(&c, HPKE_AES_256_GCM, s.pk, big, sizeof(big), NULL, enc), -1);
	assert_int_equal(hpke_setup_s(&c, HPKE_AES_256_GCM, s.pk, big, HPKE_INFO_MAX, NULL, enc), 0);
	assert_int_equal(hpke_ctx_export(&c, big, 0, out, 0), -1);
	c.seq = UINT64_MAX;
	assert_int_equal(hpke_ctx_seal(&c, NULL, 0, big, 8, ct), -1);
	hpke_ctx_wipe(&c);
	assert_int_equal(hpke_setup_s(&c, (enum hpke_aead)3, s.pk, NULL, 0, NULL, enc), -1);
}

static void
test_binding(void **state)
{
	char buf[HPKE_CN2_BINDING_MAX];

	(void)state;
	assert_int_equal(hpke_cn2_binding(buf, sizeof(buf), "seller_1", "openai"), 33);
	assert_string_equal(buf, "cn2 seller key v1|seller_1|openai");
	assert_int_equal(hpke_cn2_binding(buf, sizeof(buf), "a|b", "openai"), -1);
	assert_int_equal(hpke_cn2_binding(buf, sizeof(buf), "a", "open|ai"), -1);
	assert_int_equal(hpke_cn2_binding(buf, sizeof(buf), "", "openai"), -1);
	assert_int_equal(hpke_cn2_binding(buf, 20, "seller_1", "openai"), -1);
}

/* Interop with @hpke/core through tests/node/hpke_peer.mjs. */

static char peer[PATH_MAX + 64];

/* Find tests/node/hpke_peer.mjs above this program, and check @hpke/core is installed. */
static int
find_peer(void)
{
	char dir[PATH_MAX], mod[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);

	if (n < 0)
		return -1;
	dir[n] = '\0';
	for (char *slash; (slash = strrchr(dir, '/')) != NULL;) {
		*slash = '\0';
		snprintf(peer, sizeof(peer), "%s/tests/node/hpke_peer.mjs", dir);
		snprintf(mod, sizeof(mod), "%s/tests/node/node_modules/@hpke/core/package.json", dir);
		if (access(peer, R_OK) == 0)
			return access(mod, R_OK) == 0 ? 0 : -1;
	}
	return -1;
}

static void
random_bytes(uint8_t *p, size_t n)
{
	assert_int_equal(getrandom(p, n, 0), (ssize_t)n);
}

/* Read one hex field of a line into out; returns its length. */
static size_t
field(char **line, uint8_t *out, size_t cap)
{
	char *tok = strsep(line, " \n");

	assert_non_null(tok);
	return unhex(tok, out, cap);
}

static void
test_interop_node_seals(void **state)
{
	uint8_t sk[32], pk[32], pt[600], info[80], aad[80], enc[64], ct[700], got[700];
	char cmd[PATH_MAX + 256], pkhex[65], line[4096];
	FILE *fp;
	int n = 0;

	(void)state;
	if (find_peer() != 0)
		skip();
	assert_int_equal(hpke_keypair_generate(sk, pk), 0);
	tohex(pk, 32, pkhex);
	snprintf(cmd, sizeof(cmd), "node '%s' seal %s %d", peer, pkhex, INTEROP_N);
	assert_non_null(fp = popen(cmd, "r"));
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *p = line;
		size_t ptlen = field(&p, pt, sizeof(pt)), il = field(&p, info, sizeof(info));
		size_t al = field(&p, aad, sizeof(aad)), el = field(&p, enc, sizeof(enc));
		size_t cl = field(&p, ct, sizeof(ct));

		assert_int_equal(el, 32);
		assert_int_equal(cl, ptlen + HPKE_NT);
		if (hpke_open(HPKE_AES_256_GCM, sk, pk, enc, info, il, aad, al, ct, cl, got) != 0)
			fail_msg("message %d sealed by @hpke/core does not open", n);
		assert_memory_equal(got, pt, ptlen);
		/* …and every tenth, not with its associated data changed. */
		aad[0] ^= 1;
		if (n % 10 == 0)
			assert_int_equal(hpke_open(HPKE_AES_256_GCM, sk, pk, enc, info, il, aad,
					     al + (al == 0), ct, cl, got),
			    -1);
		n++;
	}
	assert_int_equal(pclose(fp), 0);
	assert_int_equal(n, INTEROP_N);
}

static void
test_interop_node_opens(void **state)
{
	char cmd[PATH_MAX + 256], skhex[65], path[] = "/tmp/cn2-hpke-XXXXXX", out[256];
	char hex[2 * 700 + 1];
	uint8_t sk[32], pk[32], pt[512], info[64], aad[64], enc[32], ct[512 + HPKE_NT];
	FILE *fp;
	int fd;

	(void)state;
	if (find_peer() != 0)
		skip();
	assert_int_equal(hpke_keypair_generate(sk, pk), 0);
	assert_true((fd = mkstemp(path)) >= 0);
	assert_non_null(fp = fdopen(fd, "w"));
	for (int i = 0; i < INTEROP_N; i++) {
		uint16_t r[3];
		size_t ptlen, il, al;

		random_bytes((uint8_t *)r, sizeof(r));
		ptlen = r[0] % sizeof(pt);
		il = r[1] % sizeof(info);
		al = r[2] % sizeof(aad);
		random_bytes(pt, ptlen);
		random_bytes(info, il);
		random_bytes(aad, al);
		assert_int_equal(hpke_seal(HPKE_AES_256_GCM, pk, info, il, aad, al, pt, ptlen, enc,
				     ct),
		    0);
		tohex(pt, ptlen, hex);
		fprintf(fp, "%s ", hex);
		tohex(info, il, hex);
		fprintf(fp, "%s ", hex);
		tohex(aad, al, hex);
		fprintf(fp, "%s ", hex);
		tohex(enc, 32, hex);
		fprintf(fp, "%s ", hex);
		tohex(ct, ptlen + HPKE_NT, hex);
		fprintf(fp, "%s\n", hex);
	}
	assert_int_equal(fclose(fp), 0);
	tohex(sk, 32, skhex);
	snprintf(cmd, sizeof(cmd), "node '%s' open %s '%s'", peer, skhex, path);
	assert_non_null(fp = popen(cmd, "r"));
	out[0] = '\0';
	if (fgets(out, sizeof(out), fp) == NULL)
		out[0] = '\0';
	assert_int_equal(pclose(fp), 0);
	unlink(path);
	snprintf(cmd, sizeof(cmd), "ok %d\n", INTEROP_N);
	assert_string_equal(out, cmd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kat_keypairs),
	    cmocka_unit_test(test_kat_sender),
	    cmocka_unit_test(test_kat_recipient),
	    cmocka_unit_test(test_round_trip_and_refusals),
	    cmocka_unit_test(test_low_order_enc),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_binding),
	    cmocka_unit_test(test_interop_node_seals),
	    cmocka_unit_test(test_interop_node_opens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
