/*
 * vault.h — cn2-vault's private interfaces.
 *
 *   seal.c      AES-256-GCM under the master key: keys at rest
 *   store.c     vault.db: schema, sealed keys, used grants
 *   keys.c      KEY_PUT: check, seal, store
 *   grant.c     checking a grant; the set of grants already used
 *   request.c   the upstream request: URL, headers, key injection
 *   upstream.c  libcurl's multi-socket interface driven by the libuv loop
 *   forward.c   FORWARD: one upstream call streamed back with flow control
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
#include "common/providers.h"

struct vault_cfg {
	char database[256];
	char master_key_file[256];
	char grant_secret_file[256];
	char providers[256];
	char ca_file[256];
	int64_t connect_timeout_ms;
	int64_t first_byte_timeout_ms;
	int64_t idle_timeout_ms;
	int64_t window_bytes;
};

/* seal.c */

#define SEAL_KEY_LEN 32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_MASTER_VERSION 1

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
 * request_check) minus hop-by-hop, framing, credential and the provider's
 * own header names, then the catalogue's fixed headers, then the key's
 * header when the provider takes one. Appended to *list; the key's line is
 * built in line[0..linecap), which the caller wipes. 0, or -1.
 */
int request_headers(const struct provider *pv, const uint8_t *headers, size_t len,
    const uint8_t *key, size_t keylen, char *line, size_t linecap, struct curl_slist **list);

/* Wipe every string of a curl_slist, then free it. */
void request_slist_free(struct curl_slist *list);

/*
 * Filter an upstream response head for FWD_HEAD: keep end-to-end fields,
 * drop hop-by-hop ones (and any named by Connection) and malformed lines.
 * in holds "Name: value\r\n" lines; out gets the kept ones, rewritten as
 * "Name: value\r\n" with one space, so a line may grow by one byte (at most
 * len + len / 4 in all). Returns the length written, or -1 if out is too small.
 */
long request_filter_response(const char *in, size_t len, char *out, size_t cap);

/* 1 if the KEY_PUT secret is acceptable: 8..4096 bytes of visible ASCII. */
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
};

/* 0, or -1 with err. done is called for each transfer libcurl finishes. */
int upstream_init(struct upstream *u, uv_loop_t *loop, upstream_done_fn done, void *arg,
    char *err, size_t errlen);
/* Close the multi handle and every handle of ours; no transfer may remain. */
void upstream_free(struct upstream *u);
int upstream_add(struct upstream *u, CURL *easy);
/* Take a transfer out (never from inside a libcurl callback). */
void upstream_remove(struct upstream *u, CURL *easy);

/* vault.c: the daemon's state. */

struct fwd; /* forward.c: one FORWARD in progress */

struct vault {
	const struct vault_cfg *cfg;
	struct daemon *d;
	sqlite3 *db;
	struct dbq *q;
	struct providers cat;
	struct seal seal;
	uint8_t grant_secret[128];
	size_t grant_secretlen;
	struct grant_set used;
	struct upstream up;
	uv_timer_t prune;
	int prune_open;
	struct fwd *fwds; /* FORWARDs in progress */
	size_t nfwds;
	int stopping;
};

int vault_start(struct vault *v, struct daemon *d, const struct vault_cfg *cfg, char *err,
    size_t errlen);
void vault_stop(struct vault *v);
void vault_health(struct vault *v, struct ipc_health_rep *rep);

/* store.c */

struct store_key {
	char seller_id[IPC_ID_MAX + 1];
	char provider[IPC_PROVIDER_MAX + 1];
	uint8_t nonce[SEAL_NONCE_LEN];
	uint8_t *ct; /* caller frees */
	size_t ctlen;
	uint32_t master_version;
};

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
	int taken; /* set: the key id belongs to another seller */
};
int store_key_put(sqlite3 *db, void *arg); /* struct store_key_put */

/* keys.c */

void keys_put(struct vault *v, const struct ipc_req *req, const struct ipc_key_put *kp);

/* forward.c */

void forward_start(struct vault *v, const struct ipc_req *req, const struct ipc_forward *f);
void forward_ack(struct vault *v, const struct ipc_req *req, const struct ipc_fwd_ack *a);
void forward_cancel(struct vault *v, const struct ipc_req *req);
/* Abort every FORWARD in progress (at stop). */
void forward_abort_all(struct vault *v, const char *detail);
/* libcurl finished a transfer (upstream_done_fn). */
void forward_done(void *arg, CURL *easy, CURLcode rc);

#endif
