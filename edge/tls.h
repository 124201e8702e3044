/*
 * tls.h — the edge's TLS 1.2 server engine (mbedTLS 2.28), independent of
 * any transport.
 *
 * The edge owns the TCP socket; this engine never touches it. The caller
 * feeds the ciphertext it read with tls_conn_feed(), then drives
 * tls_conn_handshake() or tls_conn_read(); ciphertext to send comes out
 * through the write_out callback given to tls_conn_new(), which must only
 * queue it. Nothing here blocks.
 *
 * Security stance: TLS 1.2 only, ECDHE key exchange with AEAD ciphers only,
 * no renegotiation, no session resumption. A client that names a server
 * (SNI) the certificate does not cover is refused with an unrecognized_name
 * alert. Error strings never contain key material or peer-supplied bytes.
 *
 * Memory per connection (measured with Debian's mbedTLS 2.28): about 38 KiB
 * from tls_conn_new() to the end of the handshake and 35 KiB after it, most
 * of it mbedTLS's two record buffers (16 KiB of content plus overhead each),
 * plus the ciphertext input buffer, which grows on demand up to TLS_IN_MAX
 * and is released whenever it drains.
 *
 * A tls_config and its connections belong to one thread, the edge's loop.
 */
#ifndef CN2_EDGE_TLS_H
#define CN2_EDGE_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Results of tls_conn_handshake() and tls_conn_read(). */
#define TLS_DONE 0
#define TLS_ERROR (-1)
#define TLS_WANT (-2) /* feed more ciphertext, then call again */

/*
 * Bound on ciphertext fed but not yet consumed: one 64 KiB socket read plus
 * one whole TLS 1.2 record (5-byte header, 2^14 + 2048 bytes of payload). A
 * caller that reads at most 64 KiB from the socket at a time and drains
 * plaintext with tls_conn_read() until TLS_WANT before reading again never
 * hits it.
 */
#define TLS_RECORD_MAX (5 + 16384 + 2048)
#define TLS_IN_MAX (65536 + TLS_RECORD_MAX)

struct tls_config;
struct tls_conn;

/*
 * Load the PEM certificate chain (leaf first) and the PEM private key (EC
 * P-256/P-384 or RSA of at least 2048 bits, matching the leaf) and build the
 * server configuration. Returns NULL with a reason in err on failure. Caller
 * frees with tls_config_free(), after every connection made from it.
 */
struct tls_config *tls_config_new(const char *cert_pem_path,
    const char *key_pem_path, char *err, size_t errlen);
void tls_config_free(struct tls_config *cfg);

/*
 * A new server connection. write_out(arg, buf, len) is called with
 * ciphertext to send; it must copy or queue buf and return 0, or -1 to fail
 * the connection. Returns NULL when out of memory. Caller frees with
 * tls_conn_free().
 */
struct tls_conn *tls_conn_new(struct tls_config *cfg,
    int (*write_out)(void *arg, const unsigned char *buf, size_t len),
    void *arg);

/*
 * Append received ciphertext (copied). Returns 0, or -1 when that would hold
 * more than TLS_IN_MAX unconsumed bytes (nothing is appended then).
 */
int tls_conn_feed(struct tls_conn *c, const unsigned char *cipher, size_t n);

/*
 * Drive the handshake with what was fed so far. TLS_DONE once established
 * (the input may already hold application data: call tls_conn_read() next),
 * TLS_WANT for more input, TLS_ERROR when it failed; alerts meant for the
 * peer have then already gone through write_out. Every error is final.
 */
int tls_conn_handshake(struct tls_conn *c);

/*
 * Decrypt into buf (cap > 0 bytes). Returns the number of bytes, TLS_WANT
 * when no whole record is buffered, 0 once the peer sent close_notify, or
 * TLS_ERROR. Call until TLS_WANT: one feed may carry several records. Only
 * after TLS_DONE; writing is still allowed after the peer's close_notify.
 */
ssize_t tls_conn_read(struct tls_conn *c, unsigned char *buf, size_t cap);

/*
 * Encrypt all n bytes, split into records, through write_out. 0 or
 * TLS_ERROR. Only after TLS_DONE.
 */
int tls_conn_write(struct tls_conn *c, const unsigned char *buf, size_t n);

/* Send close_notify through write_out. 0 or TLS_ERROR. */
int tls_conn_close_notify(struct tls_conn *c);

/* Zeroize and free everything the connection holds. NULL is a no-op. */
void tls_conn_free(struct tls_conn *c);

/*
 * Why the connection failed, or "" when it did not. Static or owned by c,
 * valid until tls_conn_free(). Never includes key material.
 */
const char *tls_conn_error(struct tls_conn *c);

/*
 * The server name the client asked for (lower case), or NULL when it sent
 * none. Owned by c, valid until tls_conn_free().
 */
const char *tls_conn_sni(struct tls_conn *c);

/*
 * The negotiated cipher suite ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256")
 * and protocol version ("TLSv1.2"), or NULL before the handshake is done.
 * Static strings.
 */
const char *tls_conn_suite(struct tls_conn *c);
const char *tls_conn_version(struct tls_conn *c);

#endif
