/*
 * hpke.h — Hybrid Public Key Encryption (RFC 9180), base mode, with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM or AES-256-GCM,
 * built on mbedTLS 2.28's primitives (ecp/ecdh for X25519, hkdf, gcm).
 *
 * cn2 uses it for one thing: a seller's client seals an API key to the
 * vault's public key, so only cn2-vault can open it (DESIGN.md §2). The
 * AES-128-GCM suite is here for RFC 9180's appendix A.1 known-answer test;
 * cn2 itself seals with HPKE_CN2_AEAD.
 *
 * Security stance: every input (enc, ciphertext, info, aad) may come from an
 * attacker. X25519 public keys are used as RFC 7748 says (the top bit
 * masked); an all-zero shared secret, which any low-order point yields, is
 * refused as RFC 9180 section 7.1.4 requires, and so is every point mbedTLS
 * refuses itself. A failed open returns -1 and leaves no plaintext in the
 * output. Every intermediate secret (DH output, PRKs, the AEAD key) is wiped
 * with mbedtls_platform_zeroize before a function returns; struct hpke_ctx
 * holds the AEAD key and exporter secret, and hpke_ctx_wipe clears it.
 * Ephemeral keys come from getrandom(2). Nothing here logs or allocates
 * except inside mbedTLS, whose bignums wipe themselves when freed.
 */
#ifndef CN2_HPKE_H
#define CN2_HPKE_H

#include <stddef.h>
#include <stdint.h>

#define HPKE_KEM_X25519_SHA256 0x0020
#define HPKE_KDF_HKDF_SHA256 0x0001

enum hpke_aead {
	HPKE_AES_128_GCM = 0x0001,
	HPKE_AES_256_GCM = 0x0002,
};

#define HPKE_NPK 32  /* public key and enc */
#define HPKE_NSK 32  /* private key */
#define HPKE_NENC 32
#define HPKE_NN 12   /* AEAD nonce */
#define HPKE_NT 16   /* AEAD tag */
#define HPKE_NH 32   /* HKDF-SHA256 output */
#define HPKE_INFO_MAX 1024  /* info, exporter context and DeriveKeyPair ikm, at most */
#define HPKE_EXPORT_MAX (255 * HPKE_NH)

/* A base-mode context, sender's or recipient's. Wipe with hpke_ctx_wipe. */
struct hpke_ctx {
	enum hpke_aead aead;
	uint8_t key[32];
	size_t keylen; /* 16 or 32 */
	uint8_t base_nonce[HPKE_NN];
	uint8_t exporter[HPKE_NH];
	uint64_t seq;  /* the next message's sequence number */
};

/* DeriveKeyPair (RFC 9180 section 7.1.3) from ikm[0..len), len 32..HPKE_INFO_MAX. 0 or -1. */
int hpke_keypair_derive(const uint8_t *ikm, size_t len, uint8_t sk[HPKE_NSK],
    uint8_t pk[HPKE_NPK]);
/* A fresh random key pair. 0 or -1. */
int hpke_keypair_generate(uint8_t sk[HPKE_NSK], uint8_t pk[HPKE_NPK]);
/* The public key of sk. 0 or -1. */
int hpke_public(const uint8_t sk[HPKE_NSK], uint8_t pk[HPKE_NPK]);

/*
 * SetupBaseS: a context to seal to pkR, and enc for the recipient. With skE
 * NULL the ephemeral key is fresh; a given skE is for known-answer tests
 * only. info is at most HPKE_INFO_MAX bytes. 0, or -1 (c is then wiped).
 */
int hpke_setup_s(struct hpke_ctx *c, enum hpke_aead aead, const uint8_t pkR[HPKE_NPK],
    const uint8_t *info, size_t infolen, const uint8_t *skE, uint8_t enc[HPKE_NENC]);
/*
 * SetupBaseR: a context to open what was sealed with enc to skR's public
 * key. pkR is that public key, or NULL to compute it (one more scalar
 * multiplication). 0 or -1.
 */
int hpke_setup_r(struct hpke_ctx *c, enum hpke_aead aead, const uint8_t skR[HPKE_NSK],
    const uint8_t *pkR, const uint8_t enc[HPKE_NENC], const uint8_t *info, size_t infolen);

/* Seal pt[0..len) into ct (len + HPKE_NT bytes: ciphertext, then tag). 0 or -1. */
int hpke_ctx_seal(struct hpke_ctx *c, const uint8_t *aad, size_t aadlen, const uint8_t *pt,
    size_t len, uint8_t *ct);
/*
 * Open ct[0..ctlen) into pt (ctlen - HPKE_NT bytes). 0, or -1 if ct is
 * shorter than a tag or anything does not authenticate (pt is then zero
 * and the sequence number unchanged).
 */
int hpke_ctx_open(struct hpke_ctx *c, const uint8_t *aad, size_t aadlen, const uint8_t *ct,
    size_t ctlen, uint8_t *pt);
/* Export L bytes for exporter context ctx[0..len) (RFC 9180 section 5.3). 0 or -1. */
int hpke_ctx_export(const struct hpke_ctx *c, const uint8_t *ctx, size_t len, uint8_t *out,
    size_t L);
void hpke_ctx_wipe(struct hpke_ctx *c);

/* Single-shot: seal one message (sequence number 0) to pkR. ct holds len + HPKE_NT. */
int hpke_seal(enum hpke_aead aead, const uint8_t pkR[HPKE_NPK], const uint8_t *info,
    size_t infolen, const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t len,
    uint8_t enc[HPKE_NENC], uint8_t *ct);
/* Single-shot open (pkR as for hpke_setup_r); pt holds ctlen - HPKE_NT. 0, or -1 with pt zero. */
int hpke_open(enum hpke_aead aead, const uint8_t skR[HPKE_NSK], const uint8_t *pkR,
    const uint8_t enc[HPKE_NENC],
    const uint8_t *info, size_t infolen, const uint8_t *aad, size_t aadlen, const uint8_t *ct,
    size_t ctlen, uint8_t *pt);

/*
 * cn2's sealed seller keys. The client seals with HPKE_CN2_AEAD; info and
 * the associated data are both the binding string
 * "cn2 seller key v1|<seller id>|<provider>", so a sealed key opens only for
 * the seller and provider it was sealed for (neither may hold '|'). The
 * binding is written into buf[0..cap) with a NUL; returns its length, or -1
 * if it does not fit or an id is empty or holds '|'.
 */
#define HPKE_CN2_AEAD HPKE_AES_256_GCM
#define HPKE_CN2_BINDING_MAX 128
int hpke_cn2_binding(char *buf, size_t cap, const char *seller, const char *provider);

#endif
