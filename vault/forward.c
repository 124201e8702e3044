/*
 * forward.c — FORWARD: one granted upstream call, streamed back to the edge.
 *
 * A FORWARD goes through these steps, each of which may end it:
 *
 *   1. the grant is checked (grant.c) and must not be in the used set: else
 *      PROBLEM 403 invalid-grant, and nothing goes upstream;
 *   2. the target and header lines are checked (request.c): else PROBLEM 400;
 *   3. the grant id is recorded as used, in memory at once and in vault.db
 *      through the group commit; the call starts only once that is durable,
 *      so a replay is refused even after a crash and restart;
 *   4. the key is read, opened, and put into the libcurl handle (request.c),
 *      all in one locked block (secmem.c): the plaintext, the URL and the
 *      key's header line; the plaintext is wiped as soon as the URL and the
 *      line hold it, the block when the call ends;
 *   5. the response streams back: FWD_HEAD when the upstream head is
 *      complete, FWD_DATA as bytes arrive, FWD_END at the end (ok = 1 only
 *      for a clean end), and an OUTCOME to the router. The first bytes of a
 *      4xx body are looked at as they are relayed (quota.c): a key out of
 *      credit or quota, which some providers say only there, is reported
 *      in the OUTCOME's error_class so the router quarantines it.
 *
 * Flow control: at most window_bytes are sent to the edge and not yet
 * acknowledged by FWD_ACK. Past that the transfer is paused
 * (CURL_WRITEFUNC_PAUSE, so libcurl keeps the chunk and stops reading the
 * socket) until ACKs bring the debt under half the window. Memory per call is
 * bounded by the request copy, the response head (RESP_HEAD_MAX) and
 * libcurl's own buffers.
 *
 * Timeouts: connect_timeout_ms is libcurl's; first_byte_timeout_ms and
 * idle_timeout_ms are one uv timer: until the first response byte, then
 * restarted by every chunk and every ACK (an edge that stops acknowledging
 * is timed out too).
 *
 * Security stance: never a byte upstream without a valid, unused grant; the
 * key's plaintext, URL and header line are in locked memory and wiped
 * (mbedtls_platform_zeroize) when the call ends, and libcurl's header list
 * with them. What libcurl copies internally (the URL, the request head it
 * writes) is wiped when libcurl frees it (upstream.c's allocator); the TLS
 * library encrypts a record in place in its own buffer, so what stays there
 * is ciphertext; HTTP/2 is used only where HPACK cannot keep the key in its
 * table (fwd_http_version). Logs carry ids, the route and the status, never
 * a header value, a body or a libcurl error buffer (which could quote the
 * URL, and with it a key given as a query parameter). The error-body peek
 * reads the bytes being relayed in place, bounded, and keeps only its
 * verdict.
 */
#include "vault/vault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "common/dbq.h"
#include "common/log.h"
#include "vault/quota.h"

/*
 * Response header lines kept, at most. The filter writes "Name: value" with
 * one space, which may add a byte to a 4-byte line: 48 KiB in stays inside
 * FWD_HEAD's 64 KiB.
 */
#define RESP_HEAD_MAX 49152
#define FWD_HEAD_MAX 65536
#define OUTCOME_TIMEOUT_MS 10000

enum fwd_state { FWD_WAIT_DURABLE, FWD_RUNNING, FWD_DONE };

struct fwd {
	struct fwd *prev, *next;
	struct vault *v;
	struct ipc_req req;
	enum fwd_state state;
	const struct provider *pv;
	char key_id[IPC_KEY_ID_MAX + 1];
	struct ipc_route route;
	char target[IPC_TARGET_MAX + 1];
	uint8_t *headers, *body;
	size_t hlen, blen;
	struct store_grant_use use; /* the dbq write that marks the grant used */
	/* The call. */
	CURL *easy;
	struct curl_slist *slist;
	struct curl_slist *keynode; /* in secret: the key's header line, linked into slist */
	uint8_t *secret;	    /* secmem: keynode, then the URL, then the header line */
	char *url;
	int64_t generation;	    /* of the key's secret this call opened */
	uv_timer_t timer;
	uint64_t t0;	     /* uv_hrtime at the start of the call */
	uint32_t latency_ms; /* to the first response byte */
	int called;	     /* the upstream was tried: an OUTCOME is due */
	int first_byte;
	/* The response. */
	char *head; /* header lines of the response being read */
	size_t headlen;
	int started; /* FWD_HEAD sent */
	uint16_t status;
	uint32_t retry_after; /* the head's Retry-After, seconds, for the OUTCOME */
	uint8_t error_class;  /* what a 4xx body said (quota.c), for the OUTCOME */
	size_t peeked;	      /* bytes of the body looked at for it */
	size_t inflight; /* sent to the edge, not yet acknowledged */
	int paused;
	int cancelled, edge_gone, head_bad;
};

static void fwd_finish(struct fwd *f, int ok, uint8_t failure, const char *detail);

static void
fwd_problem(struct vault *v, const struct ipc_req *req, uint16_t status, const char *name,
    const char *detail)
{
	v->d->errors++;
	ipc_reply_problem(v->d->ipc, req, status, name, detail);
}

/* Life cycle: every fwd is freed by its timer's close callback. */

static void
fwd_on_closed(uv_handle_t *h)
{
	struct fwd *f = h->data;

	free(f->headers);
	free(f->body);
	free(f->head);
	free(f);
}

static void
fwd_release(struct fwd *f)
{
	struct vault *v = f->v;

	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		v->fwds = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	v->nfwds--;
	if (f->generation > 0)
		keys_call_ended(v, f->key_id);
	uv_close((uv_handle_t *)&f->timer, fwd_on_closed);
}

size_t
forward_paused(const struct vault *v)
{
	size_t n = 0;

	for (const struct fwd *f = v->fwds; f != NULL; f = f->next)
		n += f->paused != 0;
	return n;
}

size_t
forward_count(const struct vault *v, const char *key_id, int64_t gen)
{
	size_t n = 0;

	for (const struct fwd *f = v->fwds; f != NULL; f = f->next)
		if (f->secret != NULL && f->generation <= gen && strcmp(f->key_id, key_id) == 0)
			n++;
	return n;
}

static struct fwd *
fwd_find(struct vault *v, const struct ipc_req *req)
{
	for (struct fwd *f = v->fwds; f != NULL; f = f->next)
		if (f->req.conn == req->conn && f->req.id == req->id)
			return f;
	return NULL;
}

static uint32_t
ms_since(uint64_t t0)
{
	uint64_t ms = (uv_hrtime() - t0) / 1000000;

	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* Timers: first byte, then idle. */

static void
fwd_on_timer(uv_timer_t *t)
{
	struct fwd *f = t->data;

	if (!f->first_byte)
		fwd_finish(f, 0, FAIL_TIMEOUT, "the upstream did not answer in time");
	else if (f->paused)
		fwd_finish(f, 0, FAIL_CANCEL, "the edge did not take the response in time");
	else
		fwd_finish(f, 0, FAIL_TIMEOUT, "the upstream stalled");
}

static void
fwd_timer(struct fwd *f, int64_t ms)
{
	uv_timer_start(&f->timer, fwd_on_timer, (uint64_t)ms, 0);
}

/* libcurl callbacks: they only record, send to the edge, or ask libcurl to stop. */

static int
fwd_send_head(struct fwd *f)
{
	struct ipc_fwd_head h;
	long code = 0;
	char *out;
	long n;

	if (curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK ||
	    code < 200 || code > 599 || (out = malloc(FWD_HEAD_MAX)) == NULL) {
		f->head_bad = 1;
		return -1;
	}
	n = request_filter_response(f->head, f->headlen, out, FWD_HEAD_MAX);
	h.status = (uint16_t)code;
	h.headers.p = (const uint8_t *)out;
	h.headers.len = n < 0 ? 0 : (uint32_t)n;
	f->retry_after = vault_retry_after(out, h.headers.len, (int64_t)time(NULL));
	if (ipc_reply(f->v->d->ipc, &f->req, IPC_FWD_HEAD, &h) != 0)
		f->edge_gone = 1;
	free(out);
	free(f->head);
	f->head = NULL;
	f->headlen = 0;
	f->started = !f->edge_gone;
	f->status = (uint16_t)code;
	return f->edge_gone ? -1 : 0;
}

/* Keep one header line, normalised to end in CRLF; the head is bounded. */
static int
fwd_keep_header(struct fwd *f, const char *p, size_t len)
{
	char *h;

	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (f->headlen + len + 2 > RESP_HEAD_MAX) {
		f->head_bad = 1;
		return -1;
	}
	if ((h = realloc(f->head, f->headlen + len + 2)) == NULL)
		return -1;
	f->head = h;
	memcpy(h + f->headlen, p, len);
	memcpy(h + f->headlen + len, "\r\n", 2);
	f->headlen += len + 2;
	return 0;
}

static int
is_blank_line(const char *p, size_t len)
{
	return (len == 2 && p[0] == '\r' && p[1] == '\n') || (len == 1 && p[0] == '\n');
}

static size_t
fwd_on_header(char *p, size_t size, size_t n, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * n;
	long code = 0;

	if (!f->first_byte) {
		f->first_byte = 1;
		f->latency_ms = ms_since(f->t0);
		fwd_timer(f, f->v->cfg->idle_timeout_ms);
	}
	if (f->started)
		return len; /* trailer fields: not passed on */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		f->headlen = 0; /* a status line starts a head (again, after a 1xx) */
		return len;
	}
	if (!is_blank_line(p, len))
		return fwd_keep_header(f, p, len) == 0 ? len : 0;
	if (curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code < 200) {
		f->headlen = 0;
		return len;
	}
	return fwd_send_head(f) == 0 ? len : 0;
}

/* The first bytes of a 4xx body, as they are relayed: do they say the key is out of credit? */
static void
fwd_peek(struct fwd *f, const char *p, size_t len)
{
	size_t n = QUOTA_PEEK_MAX - f->peeked;

	if (f->status < 400 || f->status > 499 || f->error_class != ECLASS_NONE || n == 0)
		return;
	if (n > len)
		n = len;
	f->error_class = quota_classify((const uint8_t *)p, n);
	f->peeked += n;
}

static size_t
fwd_on_data(char *p, size_t size, size_t n, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * n, off;

	if (f->edge_gone || f->cancelled || !f->started)
		return 0;
	if (f->inflight > 0 && f->inflight + len > (size_t)f->v->cfg->window_bytes) {
		f->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	for (off = 0; off < len;) {
		struct ipc_fwd_data d;
		size_t k = len - off < IPC_CHUNK_MAX ? len - off : IPC_CHUNK_MAX;

		d.data.p = (const uint8_t *)p + off;
		d.data.len = (uint32_t)k;
		if (ipc_reply(f->v->d->ipc, &f->req, IPC_FWD_DATA, &d) != 0) {
			f->edge_gone = 1;
			return 0;
		}
		off += k;
	}
	f->inflight += len;
	fwd_timer(f, f->v->cfg->idle_timeout_ms);
	fwd_peek(f, p, len);
	return len;
}

/* Setting up the call. */

static int
fwd_method(struct fwd *f)
{
	static const char empty[] = "";
	const char *m = f->route.method;
	const void *body = f->body != NULL ? (const void *)f->body : empty;
	CURLcode rc;

	if (strcmp(m, "GET") == 0)
		return curl_easy_setopt(f->easy, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -1;
	if (strcmp(m, "HEAD") == 0)
		return curl_easy_setopt(f->easy, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -1;
	if (strcmp(m, "POST") != 0 &&
	    curl_easy_setopt(f->easy, CURLOPT_CUSTOMREQUEST, m) != CURLE_OK)
		return -1;
	if (strcmp(m, "POST") != 0 && f->blen == 0)
		return 0;
	if ((rc = curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->blen)) !=
		CURLE_OK ||
	    (rc = curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, body)) != CURLE_OK)
		return -1;
	return 0;
}

/*
 * HTTP/2 only where the key cannot stay behind in the connection. HPACK
 * keeps header fields it has sent in a per-connection table, to compress
 * the next request; nghttp2 never indexes Authorization (nor :path, where a
 * query-parameter key travels), but it would index x-api-key and the like,
 * and that table lives as long as the connection, long after the call. So
 * a provider whose key goes in another header is called over HTTP/1.1,
 * whose request head is in a buffer of libcurl's own, wiped when freed.
 */
static long
fwd_http_version(const struct provider *pv)
{
	if (pv->auth_header[0] == '\0' || strcasecmp(pv->auth_header, "Authorization") == 0)
		return (long)CURL_HTTP_VERSION_2TLS;
	return (long)CURL_HTTP_VERSION_1_1;
}

static int
fwd_options(struct fwd *f)
{
	const struct vault_cfg *cfg = f->v->cfg;
	CURL *e = f->easy;

	if (curl_easy_setopt(e, CURLOPT_URL, f->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->slist) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, f) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, fwd_http_version(f->pv)) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, fwd_on_header) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, f) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fwd_on_data) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, f) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L) != CURLE_OK)
		return -1;
	if (cfg->ca_file[0] != '\0' && curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file) != CURLE_OK)
		return -1;
	return fwd_method(f);
}

/*
 * The locked block of a call: the key's list node, then its plaintext, the
 * URL and the header line. Returns the plaintext's place in it, or NULL.
 */
static uint8_t *
fwd_secret(struct fwd *f, size_t keylen, size_t *urlcap, size_t *linecap)
{
	size_t node = (sizeof(struct curl_slist) + 15) / 16 * 16;

	*urlcap = strlen(f->pv->upstream) + strlen(f->target) + strlen(f->pv->auth_query) +
	    3 * keylen + 8;
	*linecap = f->hlen + keylen + 512;
	if ((f->secret = secmem_alloc(node + keylen + *urlcap + *linecap)) == NULL)
		return NULL;
	f->keynode = (struct curl_slist *)(void *)f->secret;
	f->url = (char *)f->secret + node + keylen;
	return f->secret + node;
}

/*
 * Read and open the key into the call's locked block, and build the URL and
 * header lines from it; the plaintext is wiped before this returns. 0, or -1
 * with why.
 */
static int
fwd_build(struct fwd *f, const char **why)
{
	struct store_key k;
	struct seal *s;
	size_t keylen, urlcap = 0, linecap = 0;
	uint8_t *key = NULL;
	int rc = store_key_get(f->v->db, f->key_id, &k);

	*why = rc < 0 ? "the key cannot be read" : "the key is not in the vault";
	if (rc <= 0)
		return -1;
	keylen = k.ctlen - SEAL_TAG_LEN;
	rc = -1;
	if (strcmp(k.provider, f->route.provider) != 0)
		*why = "the key belongs to another provider";
	else if ((s = keyring_for(&f->v->keys, k.master_version)) == NULL)
		*why = "the key is sealed under a master key version not loaded";
	else if ((key = fwd_secret(f, keylen, &urlcap, &linecap)) == NULL)
		*why = "cannot lock memory for the key";
	else if (seal_open(s, f->key_id, k.master_version, k.nonce, k.ct, k.ctlen, key) != 0) {
		log_err("key %s does not open under the master key", f->key_id);
		*why = "the key cannot be opened";
	} else if (request_url(f->pv, f->target, key, keylen, f->url, urlcap) != 0 ||
	    request_headers(f->pv, f->headers, f->hlen, key, keylen, f->url + urlcap, linecap,
		f->keynode, &f->slist) != 0)
		*why = "cannot set up the upstream call";
	else {
		f->generation = k.generation;
		rc = 0;
	}
	if (key != NULL)
		mbedtls_platform_zeroize(key, keylen);
	free(k.ct);
	return rc;
}

static void
fwd_call(struct fwd *f)
{
	const char *why = "cannot set up the upstream call";
	int rc;

	f->state = FWD_RUNNING;
	f->called = 1;
	f->t0 = uv_hrtime();
	rc = fwd_build(f, &why);
	if (rc == 0 && ((f->easy = curl_easy_init()) == NULL || fwd_options(f) != 0 ||
			   upstream_add(&f->v->up, f->easy) != 0)) {
		curl_easy_cleanup(f->easy);
		f->easy = NULL;
		why = "cannot set up the upstream call";
		rc = -1;
	}
	if (rc != 0) {
		fwd_finish(f, 0, FAIL_CONNECT, why);
		return;
	}
	fwd_timer(f, f->v->cfg->first_byte_timeout_ms);
}

/* The end of a call: the one place that sends FWD_END and the OUTCOME. */

static void
fwd_on_outcome_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	(void)arg;
	if (status != 0)
		log_info("the router did not acknowledge an outcome (%s)",
		    status == IPC_ERR_TIMEOUT ? "timeout" : "connection closed");
	else if (type == IPC_ERROR)
		log_warnx("the router refused an outcome: %s", msg->error.detail);
}

static void
fwd_outcome(struct fwd *f, uint8_t failure)
{
	struct ipc_outcome o;

	memset(&o, 0, sizeof(o));
	snprintf(o.key_id, sizeof(o.key_id), "%s", f->key_id);
	snprintf(o.grant_id, sizeof(o.grant_id), "%s", f->use.grant_id);
	o.route = f->route;
	o.status = f->status;
	o.latency_ms = f->latency_ms;
	o.failure = failure;
	o.retry_after_s = f->retry_after;
	o.error_class = f->error_class;
	if (ipc_request(f->v->d->ipc, ROLE_ROUTER, IPC_OUTCOME, &o, OUTCOME_TIMEOUT_MS,
		fwd_on_outcome_reply, NULL) == 0)
		log_info("router not linked: the outcome of grant %s is dropped", f->use.grant_id);
}

static void
fwd_wipe_call(struct fwd *f)
{
	if (f->easy != NULL) {
		if (f->first_byte)
			upstream_count(&f->v->up, f->easy);
		upstream_remove(&f->v->up, f->easy);
		curl_easy_cleanup(f->easy);
		f->easy = NULL;
	}
	request_slist_free(f->slist, f->keynode);
	f->slist = NULL;
	secmem_free(f->secret);
	f->secret = NULL;
	f->keynode = NULL;
	f->url = NULL;
}

static void
fwd_finish(struct fwd *f, int ok, uint8_t failure, const char *detail)
{
	struct ipc_fwd_end end;

	if (f->state == FWD_DONE)
		return;
	f->state = FWD_DONE;
	fwd_wipe_call(f);
	uv_timer_stop(&f->timer);
	memset(&end, 0, sizeof(end));
	end.ok = (uint8_t)(ok != 0);
	end.started = (uint8_t)f->started;
	snprintf(end.detail, sizeof(end.detail), "%s", detail);
	ipc_reply(f->v->d->ipc, &f->req, IPC_FWD_END, &end);
	if (!ok)
		f->v->d->errors++;
	if (f->called)
		fwd_outcome(f, failure);
	log_info("grant %s, key %s: %s %s %s: status %u, %u ms to first byte%s%s",
	    f->use.grant_id, f->key_id, f->route.provider, f->route.method, f->route.path,
	    (unsigned)f->status, (unsigned)f->latency_ms, ok ? "" : ", failed: ", ok ? "" : detail);
	fwd_release(f);
}

void
forward_done(void *arg, CURL *easy, CURLcode rc)
{
	char *priv = NULL;
	struct fwd *f;

	(void)arg;
	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
		return;
	f = (struct fwd *)(void *)priv;
	if (rc == CURLE_OK && f->started)
		fwd_finish(f, 1, FAIL_NONE, "");
	else if (rc == CURLE_OK)
		fwd_finish(f, 0, FAIL_CONNECT, "the upstream sent no response head");
	else if (f->edge_gone)
		fwd_finish(f, 0, FAIL_CANCEL, "the edge went away");
	else if (f->head_bad)
		fwd_finish(f, 0, FAIL_CONNECT, "the upstream response head is not acceptable");
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		fwd_finish(f, 0, FAIL_TIMEOUT, curl_easy_strerror(rc));
	else
		fwd_finish(f, 0, f->started ? FAIL_CUT : FAIL_CONNECT, curl_easy_strerror(rc));
}

static int
fwd_apply(sqlite3 *db, void *arg)
{
	return store_grant_use(db, &((struct fwd *)arg)->use);
}

/* The grant is on disk as used (or could not be recorded). */
static void
fwd_on_durable(void *arg, int status)
{
	struct fwd *f = arg;
	struct vault *v = f->v;

	if (status != 0) {
		if (f->use.replayed)
			fwd_problem(v, &f->req, 403, "invalid-grant", "the grant was already used");
		else {
			v->d->errors++;
			ipc_reply_error(v->d->ipc, &f->req, IPC_ERR_INTERNAL,
			    "cannot record the grant as used");
		}
		f->state = FWD_DONE;
		fwd_release(f);
		return;
	}
	if (f->cancelled || v->stopping) {
		fwd_finish(f, 0, FAIL_CANCEL, f->cancelled ? "cancelled" : "the vault is stopping");
		return;
	}
	fwd_call(f);
}

static uint8_t *
dup_bytes(const struct ipc_bytes *b)
{
	uint8_t *p = malloc(b->len + 1);

	if (p != NULL && b->len > 0)
		memcpy(p, b->p, b->len);
	return p;
}

static struct fwd *
fwd_new(struct vault *v, const struct ipc_req *req, const struct ipc_forward *m,
    const struct provider *pv)
{
	struct fwd *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->headers = dup_bytes(&m->headers)) == NULL ||
	    (f->body = dup_bytes(&m->body)) == NULL) {
		if (f != NULL)
			free(f->headers);
		free(f);
		return NULL;
	}
	f->v = v;
	f->req = *req;
	f->pv = pv;
	f->hlen = m->headers.len;
	f->blen = m->body.len;
	f->route = m->grant.route;
	snprintf(f->key_id, sizeof(f->key_id), "%s", m->grant.key_id);
	snprintf(f->target, sizeof(f->target), "%s", m->target);
	snprintf(f->use.grant_id, sizeof(f->use.grant_id), "%s", m->grant.grant_id);
	f->use.expires = m->grant.expires;
	uv_timer_init(v->d->loop, &f->timer);
	f->timer.data = f;
	f->next = v->fwds;
	if (v->fwds != NULL)
		v->fwds->prev = f;
	v->fwds = f;
	v->nfwds++;
	return f;
}

void
forward_start(struct vault *v, const struct ipc_req *req, const struct ipc_forward *m)
{
	const struct provider *pv;
	const char *why;
	struct fwd *f;

	if (grant_verify(v->grant_secret, v->grant_secretlen, &v->cat, m, (int64_t)time(NULL), &pv,
		&why) != 0) {
		log_info("grant %s refused: %s", m->grant.grant_id, why);
		fwd_problem(v, req, 403, "invalid-grant", why);
		return;
	}
	if (grant_set_has(&v->used, m->grant.grant_id)) {
		log_info("grant %s refused: already used", m->grant.grant_id);
		fwd_problem(v, req, 403, "invalid-grant", "the grant was already used");
		return;
	}
	if (request_check(m->target, m->headers.p, m->headers.len, &why) != 0) {
		fwd_problem(v, req, 400, "bad-forward", why);
		return;
	}
	if ((f = fwd_new(v, req, m, pv)) == NULL ||
	    grant_set_add(&v->used, m->grant.grant_id, m->grant.expires) != 0 ||
	    dbq_push(v->q, fwd_apply, fwd_on_durable, f) != 0) {
		/* The grant stays unused (or used in memory only): this call never happened. */
		if (f != NULL) {
			f->state = FWD_DONE;
			fwd_release(f);
		}
		v->d->errors++;
		ipc_reply_error(v->d->ipc, req, IPC_ERR_INTERNAL, "out of memory");
	}
}

void
forward_ack(struct vault *v, const struct ipc_req *req, const struct ipc_fwd_ack *a)
{
	struct fwd *f = fwd_find(v, req);
	CURLcode rc;

	if (f == NULL || f->state != FWD_RUNNING)
		return; /* the stream ended while the ACK was on its way */
	if (a->bytes > f->inflight)
		log_warnx("grant %s: the edge acknowledged %u bytes, %zu were outstanding",
		    f->use.grant_id, (unsigned)a->bytes, f->inflight);
	f->inflight = a->bytes > f->inflight ? 0 : f->inflight - a->bytes;
	if (f->first_byte)
		fwd_timer(f, v->cfg->idle_timeout_ms);
	if (!f->paused || f->inflight > (size_t)v->cfg->window_bytes / 2)
		return;
	f->paused = 0;
	/* libcurl may hand over the held chunk right here, through fwd_on_data. */
	if ((rc = curl_easy_pause(f->easy, CURLPAUSE_CONT)) != CURLE_OK)
		fwd_finish(f, 0, f->edge_gone ? FAIL_CANCEL : FAIL_CUT, curl_easy_strerror(rc));
}

void
forward_cancel(struct vault *v, const struct ipc_req *req)
{
	struct fwd *f = fwd_find(v, req);

	if (f == NULL)
		return;
	if (f->state == FWD_WAIT_DURABLE)
		f->cancelled = 1; /* ended in fwd_on_durable, which the batch will call */
	else
		fwd_finish(f, 0, FAIL_CANCEL, "cancelled");
}

void
forward_abort_all(struct vault *v, const char *detail)
{
	struct fwd *f = v->fwds, *next;

	for (; f != NULL; f = next) {
		next = f->next;
		if (f->state == FWD_WAIT_DURABLE)
			f->cancelled = 1;
		else
			fwd_finish(f, 0, FAIL_CANCEL, detail);
	}
}
