/*
 * vault.h — cn2-vault's private interfaces.
 *
 *   secmem.c    locked, undumpable memory for plaintext
 *   seal.c      AES-256-GCM under one master key: keys at rest
 *   master.c    the master keys: current and previous version, checked
 *               against vault.db before anything is opened
 *   kem.c       the vault's HPKE key pairs for sealed intake
 *   store.c     vault.db: schema, sealed keys, used grants
 *   keys.c      KEY_PUT (HPKE-sealed keys in, re-sealed at rest; rotation)
 *               and VAULT_PUBKEY
 *   rewrap.c    `cn2-vault rewrap`: every key under the current master key
 *   grant.c     checking a grant; the set of grants already used
 *   request.c   the upstream request: URL, headers, key injection
 *   upstream.c  libcurl's multi-socket interface driven by the libuv loop
 *   forward.c   FORWARD: one upstream call streamed back with flow control
 *   retry.c     the upstream's Retry-After, for the OUTCOME
 *   vault.c     start, health and stop of the whole
 */
#ifndef CN2_VAULT_H
#define CN2_VAULT_H

#include <curl/curl.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <sqlite3.h>
#include <stdint.h>
#include <uv.h>

#include "common/daemon.h"
#include "common/hpke.h"
#include "common/providers.h"

struct vault_cfg {
	char database[256];
	char master_key_file[256];
	int64_t master_key_version;
	char previous_master_key_file[256];
	char grant_secret_file[256];
	char providers[256];
	char ca_file[256];
	int64_t connect_timeout_ms;
	int64_t first_byte_timeout_ms;
	int64_t idle_timeout_ms;
	int64_t window_bytes;
	int64_t max_host_connections;
	int64_t max_idle_connections;
};

/* secmem.c */

/*
 * A block of n bytes in its own locked (mlock), undumpable mapping, or NULL
 * when it cannot be locked. Free with secmem_free, which wipes it first.
 */
void *secmem_alloc(size_t n);
void secmem_free(void *p);
/* Lock the pages holding p[0..n) (memory some library allocated). 0 or -1. */
int secmem_lock_range(const void *p, size_t n);
/* Bytes in secmem blocks now. */
size_t secmem_in_use(void);

/* seal.c */

#define SEAL_KEY_LEN 32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16

struct seal {
	mbedtls_gcm_context gcm;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	uint32_t version; /* of the master key, bound into every ciphertext */
	int ready;
};

/*
 * Read the master key file: exactly 64 hex digits (one trailing newline
 * allowed), owner-only permissions. 0 with the 32 bytes in key (the caller
 * wipes it), or -1 with a reason that never quotes the file.
 */
int seal_load_master(const char *path, uint8_t key[SEAL_KEY_LEN], char *err, size_t errlen);
/* Set up sealing under key (copied into the GCM context). 0, or -1 with err. */
int seal_init(struct seal *s, const uint8_t key[SEAL_KEY_LEN], uint32_t version, char *err,
    size_t errlen);
void seal_free(struct seal *s);
/*
 * Seal pt[0..len) for key_id under a fresh random nonce. ct must hold
 * len + SEAL_TAG_LEN bytes (ciphertext, then the tag). 0, or -1.
 */
int seal_seal(struct seal *s, const char *key_id, const uint8_t *pt, size_t len,
    uint8_t nonce[SEAL_NONCE_LEN], uint8_t *ct);
/*
 * Open ct[0..ctlen) sealed for key_id under master version. pt must hold
 * ctlen - SEAL_TAG_LEN bytes. 0, or -1 if anything (key id, version, a
 * byte, the tag) does not match; pt is then wiped.
 */
int seal_open(struct seal *s, const char *key_id, uint32_t version,
    const uint8_t nonce[SEAL_NONCE_LEN], const uint8_t *ct, size_t ctlen, uint8_t *pt);

/* master.c */

/*
 * The master keys: the current one (everything new is sealed under it) and,
 * during a rotation, the previous one (for rows rewrap has not reached).
 * Both live in secmem.
 */
struct keyring {
	struct seal *cur;
	struct seal *prev; /* NULL when no previous key is configured or needed */
};

/*
 * Load the configured master keys and check them against vault.db: the
 * current key must open its version's check value (recorded on first use),
 * no newer version may be in use, the previous key must open the check of
 * a version in use, and every sealed row must be under a version a key is
 * configured for. 0, or -1 with the reason in err (naming the file and the
 * fix, never a key).
 */
int keyring_open(struct keyring *k, sqlite3 *db, const struct vault_cfg *cfg, char *err,
    size_t errlen);
/* The seal for master version, or NULL if no key of that version is loaded. */
struct seal *keyring_for(const struct keyring *k, uint32_t version);
void keyring_close(struct keyring *k);

/* kem.c */

#define KEM_KEYS_MAX 16

struct kem_key {
	char kid[IPC_KID_MAX + 1]; /* "vk_" and 16 base64url characters of SHA-256(pk) */
	uint8_t pk[HPKE_NPK];
	uint8_t *sk; /* secmem, HPKE_NSK bytes */
	int64_t created;
};

/* The vault's HPKE key pairs, oldest first: the last one is published. */
struct kem {
	struct kem_key v[KEM_KEYS_MAX];
	size_t n;
};

/*
 * Open every key pair in vault.db (their private halves sealed under the
 * master key), creating the first one if there is none. 0, or -1 with err.
 */
int kem_open(struct kem *k, sqlite3 *db, const struct keyring *kr, char *err, size_t errlen);
const struct kem_key *kem_current(const struct kem *k);
const struct kem_key *kem_find(const struct kem *k, const char *kid);
void kem_close(struct kem *k);
/* The key id of a public key. */
void kem_kid(const uint8_t pk[HPKE_NPK], char kid[IPC_KID_MAX + 1]);

/* grant.c */

struct grant_used;

/* The grant ids already used, each until it expires. */
struct grant_set {
	struct grant_used **b;
	size_t nb; /* buckets, a power of two */
	size_t n;
};

int grant_set_init(struct grant_set *s);
void grant_set_free(struct grant_set *s);
int grant_set_has(const struct grant_set *s, const char *grant_id);
/* Remember a grant id. 0, or -1 when out of memory. */
int grant_set_add(struct grant_set *s, const char *grant_id, int64_t expires);
/* Forget the ids that expired before t; returns how many. */
size_t grant_set_prune(struct grant_set *s, int64_t t);

/*
 * Check a FORWARD's grant: the MAC under the grant secret, the expiry
 * against now, the route in the catalogue, and the target's path equal to
 * the grant's. 0 with *pv the provider, or -1 with a static reason in *why.
 * Whether the grant was used before is the caller's (grant_set, store).
 */
int grant_verify(const uint8_t *secret, size_t secretlen, const struct providers *cat,
    const struct ipc_forward *f, int64_t now, const struct provider **pv, const char **why);

/* request.c */

/*
 * Check the target (origin-form, visible ASCII) and the header lines of a
 * FORWARD ("Name: value\r\n" each). 0, or -1 with a static reason.
 */
int request_check(const char *target, const uint8_t *headers, size_t len, const char **why);

/*
 * The upstream URL: the provider's upstream, the target, and for a provider
 * that takes the key as a query parameter, that parameter (any copy the
 * buyer sent is dropped). Written into buf[0..cap) with a NUL; the caller
 * wipes buf when the key is in it. 0, or -1 if it does not fit.
 */
int request_url(const struct provider *pv, const char *target, const uint8_t *key,
    size_t keylen, char *buf, size_t cap);

/*
 * The header lines for libcurl: the buyer's (already checked by
 * request_check) minus hop-by-hop, framing and every credential header
 * (request_is_credential, and the provider's own header names), then the
 * catalogue's fixed headers, then the key's header when the provider takes
 * one. The key's line is built in line[0..linecap) and linked into the list
 * through keynode, both the caller's (locked memory, wiped by the caller);
 * the other lines are libcurl's. Appended to *list. 0, or -1.
 */
int request_headers(const struct provider *pv, const uint8_t *headers, size_t len,
    const uint8_t *key, size_t keylen, char *line, size_t linecap, struct curl_slist *keynode,
    struct curl_slist **list);

/* Wipe every string of a curl_slist, then free it, but not keynode (the caller's). */
void request_slist_free(struct curl_slist *list, const struct curl_slist *keynode);

/* 1 if a request header name (n bytes) carries a credential on some API. */
int request_is_credential(const char *name, size_t n);

/*
 * Filter an upstream response head for FWD_HEAD: keep end-to-end fields,
 * drop hop-by-hop ones (and any named by Connection) and malformed lines.
 * in holds "Name: value\r\n" lines; out gets the kept ones, rewritten as
 * "Name: value\r\n" with one space, so a line may grow by one byte (at most
 * len + len / 4 in all). Returns the length written, or -1 if out is too small.
 */
long request_filter_response(const char *in, size_t len, char *out, size_t cap);

/* 1 if a seller's key is acceptable: 8..4096 bytes of visible ASCII. */
int request_secret_valid(const uint8_t *p, size_t len);
/* 1 if s is a key id we accept: [A-Za-z0-9._:-]+. */
int request_id_valid(const char *s);

/* upstream.c */

typedef void (*upstream_done_fn)(void *arg, CURL *easy, CURLcode rc);

struct upstream_sock;

struct upstream {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct upstream_sock *socks; /* every poll handle we opened */
	upstream_done_fn done;
	void *arg;
	int timer_open;
	int global;
	uint64_t opened; /* connections libcurl opened */
	uint64_t reused; /* calls that went over a connection already open */
};

/*
 * 0, or -1 with err. done is called for each transfer libcurl finishes.
 * max_host: connections per upstream host at most (0: no limit); max_idle:
 * the connection cache kept open for reuse. Every block libcurl frees is
 * wiped first (its copies of the URL and of the request head hold the key).
 */
int upstream_init(struct upstream *u, uv_loop_t *loop, long max_host, long max_idle,
    upstream_done_fn done, void *arg, char *err, size_t errlen);
/* Close the multi handle and every handle of ours; no transfer may remain. */
void upstream_free(struct upstream *u);
int upstream_add(struct upstream *u, CURL *easy);
/* Take a transfer out (never from inside a libcurl callback). */
void upstream_remove(struct upstream *u, CURL *easy);
/* Count a finished transfer as a new connection or a reused one. */
void upstream_count(struct upstream *u, CURL *easy);

/* vault.c: the daemon's state. */

struct fwd;	 /* forward.c: one FORWARD in progress */
struct retiring; /* keys.c: a rotated key whose old secret calls still use */

struct vault {
	const struct vault_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	struct providers cat;
	struct keyring keys;
	struct kem kem;
	uint8_t grant_secret[128];
	size_t grant_secretlen;
	struct grant_set used;
	struct upstream up;
	uv_timer_t prune;
	int prune_open;
	struct fwd *fwds; /* FORWARDs in progress */
	size_t nfwds;
	struct retiring *retiring;
	uint64_t rotations; /* keys rotated since start */
	uint64_t wiped;	    /* old secrets of rotated keys no call uses any more */
	int stopping;
};

int vault_start(struct vault *v, struct daemon *d, const struct vault_cfg *cfg, char *err,
    size_t errlen);
void vault_stop(struct vault *v);
void vault_health(struct vault *v, struct ipc_health_rep *rep);
/* Harden the process: no core files, not dumpable. 0, or -1 with err. */
int vault_harden(char *err, size_t errlen);

/* store.c */

struct store_key {
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	uint8_t nonce[SEAL_NONCE_LEN];
	uint8_t *ct; /* caller frees */
	size_t ctlen;
	uint32_t master_version;
	int64_t generation; /* 1, then one more for each rotation */
};

/* Open vault.db (WAL, synchronous=FULL, secure_delete) and migrate it. */
sqlite3 *store_open(const char *path, char *err, size_t errlen);
/* 1 found (k filled, caller frees k->ct), 0 not found, -1 error. */
int store_key_get(sqlite3 *db, const char *key_id, struct store_key *k);
/* Load the used grants that expire at t or later into s. 0, or -1. */
int store_grants_load(sqlite3 *db, int64_t t, struct grant_set *s);
/* dbq apply functions (run inside the batch's transaction). */
struct store_grant_use {
	char grant_id[IPC_KEY_ID_MAX + 1];
	int64_t expires;
	int replayed; /* set: the id was already in the table */
};
int store_grant_use(sqlite3 *db, void *arg);   /* struct store_grant_use */
int store_grants_prune(sqlite3 *db, void *arg); /* int64_t *: delete expires < it */
struct store_key_put {
	char key_id[IPC_KEY_ID_MAX + 1];
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	uint8_t nonce[SEAL_NONCE_LEN];
	uint8_t *ct;
	size_t ctlen;
	uint32_t master_version;
	int64_t now;
	int rotate;	    /* replace the secret of an existing key of this seller and provider */
	int taken;	    /* set (create): the key id exists */
	int missing;	    /* set (rotate): no such key of this seller and provider */
	int64_t generation; /* set: the key's generation after the write */
};
int store_key_put(sqlite3 *db, void *arg); /* struct store_key_put */

/* The master versions vault.db knows: each with its check value. */
#define MASTER_CHECK_LEN (SEAL_NONCE_LEN + 32 + SEAL_TAG_LEN)
struct store_master {
	uint32_t version;
	uint8_t check[MASTER_CHECK_LEN];
	int retired;
};
/* Every known version into out[0..max); returns how many, or -1. */
int store_master_list(sqlite3 *db, struct store_master *out, size_t max);
/* Record version with its check value (its own transaction). 0 or -1. */
int store_master_add(sqlite3 *db, const struct store_master *m);
/* The distinct master versions sealed rows use, into out[0..max); how many, or -1. */
int store_master_in_use(sqlite3 *db, uint32_t *out, size_t max);
/* Sealed rows (keys and intake key pairs) under master version; -1 on error. */
long long store_master_rows(sqlite3 *db, uint32_t version);
/* Mark version retired if no row uses it (its own transaction): 1 retired, 0 in use, -1. */
int store_master_retire(sqlite3 *db, uint32_t version);

/* An intake key pair row. */
struct store_kem {
	char kid[IPC_KID_MAX + 1];
	uint8_t pk[HPKE_NPK];
	uint8_t nonce[SEAL_NONCE_LEN];
	uint8_t sealed[HPKE_NSK + SEAL_TAG_LEN];
	uint32_t master_version;
	int64_t created;
};
/* Every intake key pair, oldest first, into out[0..max); returns how many, or -1. */
int store_kem_list(sqlite3 *db, struct store_kem *out, size_t max);
/* Insert one (its own transaction). 0 or -1. */
int store_kem_add(sqlite3 *db, const struct store_kem *k);

/* keys.c */

void keys_put(struct vault *v, const struct ipc_req *req, const struct ipc_key_put *kp);
void keys_pubkey(struct vault *v, const struct ipc_req *req);
/* A call that used key_id ended: if a rotation waits for it, finish the rotation. */
void keys_call_ended(struct vault *v, const char *key_id);
/* Calls in progress with key_id at generation gen or older. */
size_t forward_count(const struct vault *v, const char *key_id, int64_t gen);
/* Calls whose upstream transfer is paused because the edge has not taken the response. */
size_t forward_paused(const struct vault *v);
void keys_free_retiring(struct vault *v);

/* rewrap.c: `cn2-vault rewrap [-n] [-b batch] [-w ms] [-f config]`; returns the exit status. */
int rewrap_main(const struct daemon_spec *spec, struct vault_cfg *cfg, int argc, char **argv);

/*
 * retry.c: the Retry-After among the response header lines head[0..len)
 * ("Name: value\r\n"), in seconds from now (unix s), at most a day; 0 if
 * there is none, it is in the past or unreadable.
 */
uint32_t vault_retry_after(const char *head, size_t len, int64_t now);

/* forward.c */

void forward_start(struct vault *v, const struct ipc_req *req, const struct ipc_forward *f);
void forward_ack(struct vault *v, const struct ipc_req *req, const struct ipc_fwd_ack *a);
void forward_cancel(struct vault *v, const struct ipc_req *req);
/* Abort every FORWARD in progress (at stop). */
void forward_abort_all(struct vault *v, const char *detail);
/* libcurl finished a transfer (upstream_done_fn). */
void forward_done(void *arg, CURL *easy, CURLcode rc);

#endif
