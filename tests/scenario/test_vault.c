/*
 * test_vault.c — cn2-vault alone against the demo upstream, driven over IPC
 * as its peers: platform-api puts the demo key (KEY_PUT), the edge forwards
 * requests with grants MAC'd here under the directory's grant secret
 * (FORWARD, FWD_ACK, FWD_CANCEL), and a fake router, listening here as
 * ROLE_ROUTER, collects the OUTCOMEs.
 *
 * Covered: the intake public key (VAULT_PUBKEY); sealed key intake (HPKE,
 * sealed here as a seller's client would) and every way it is refused
 * (another seller's or provider's binding, a flipped tag, another recipient,
 * a low-order enc, an unknown vault key, a bad key inside a good seal);
 * plain and streamed completions (events spaced in time, flow control
 * holding the stream at window_bytes until ACKs come); every way a grant is
 * refused (MAC, replay, replay after a restart, expiry, route, path) with
 * nothing reaching the upstream; upstream errors passed through; first-byte
 * timeout, a cut stream, cancellation, connect failure; seller key rotation
 * (new calls use the new secret at once, a call in progress finishes with
 * the old one, which is wiped after it, and the old ciphertext is gone from
 * vault.db and its WAL); every provider of the shipped catalogue through an
 * echo upstream (its key injected as its entry says, every buyer credential
 * dropped); upstream connections reused; no inbound network and no core
 * files; the master key refused at start when unsafe, wrong, or missing,
 * with the reason; and neither the demo key nor the master key in clear in
 * the logs or the database files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <sqlite3.h>

#include "cli/cli.h"
#include "common/capab.h"
#include "common/hpke.h"
#include "tests/catalogue_cases.h"
#include "tests/scenario/harness.h"
#include "vault/vault.h"

#define T_MS 8000
#define WINDOW 16384
#define FIRST_BYTE_MS 1000

static struct h_env env;
static struct h_ipc as_edge, as_platform;
static struct ipc *fake_router;
static uint8_t grant_key[128];
static size_t grant_keylen;
static char demo_key[128];
static unsigned grant_seq;
static char vault_kid[IPC_KID_MAX + 1];
static uint8_t vault_pk[HPKE_NPK];
static pid_t echo_pid;
static int echo_port;

static const char chat_body[] =
    "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
static const char stream_body[] =
    "{\"model\":\"demo-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static int fetch_pubkey(void);
static int echo_catalogue(void);

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fake router: keeps every OUTCOME and acknowledges it. */

#define MAX_OUTCOMES 64
static struct ipc_outcome outcomes[MAX_OUTCOMES];
static size_t noutcomes;

static void
router_on_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	(void)arg;
	if (type == IPC_OUTCOME && noutcomes < MAX_OUTCOMES)
		outcomes[noutcomes++] = msg->outcome;
	ipc_reply(fake_router, req, IPC_ACK, NULL);
}

static int
router_open(void)
{
	static const uint16_t from_vault[] = {IPC_HEALTH, IPC_OUTCOME};
	static const struct ipc_peer_rule rules[] = {{ROLE_VAULT, from_vault, 2}};

	fake_router = h_ipc_listen(&env, &as_edge.loop, ROLE_ROUTER, rules, 1, router_on_request,
	    NULL);
	return fake_router != NULL ? 0 : -1;
}

/* Run the edge's loop (which also serves the fake router) for up to ms, until done() says so. */
static void
spin(int ms, int (*done)(void *), void *arg)
{
	int64_t end = now_ms() + ms;

	while ((done == NULL || !done(arg)) && now_ms() < end) {
		uv_run(&as_edge.loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static int
outcome_arrived(void *arg)
{
	const char *grant_id = arg;

	for (size_t i = 0; i < noutcomes; i++)
		if (strcmp(outcomes[i].grant_id, grant_id) == 0)
			return 1;
	return 0;
}

static const struct ipc_outcome *
wait_outcome(const char *grant_id)
{
	spin(T_MS, outcome_arrived, (void *)(uintptr_t)grant_id);
	for (size_t i = 0; i < noutcomes; i++)
		if (strcmp(outcomes[i].grant_id, grant_id) == 0)
			return &outcomes[i];
	fail_msg("no OUTCOME for grant %s", grant_id);
	return NULL;
}

/* Set-up. */

static char *
read_secret(const char *rel, size_t *len)
{
	char *s = h_read(&env, rel, len);

	assert_non_null(s);
	if (*len > 0 && s[*len - 1] == '\n')
		s[--*len] = '\0';
	return s;
}

static int
append(const char *rel, const char *text)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", env.dir, rel);
	if ((fp = fopen(path, "a")) == NULL)
		return -1;
	fputs(text, fp);
	return fclose(fp);
}

static int
group_setup(void **state)
{
	static const enum ipc_role vault[] = {ROLE_VAULT};
	size_t n;
	char *s;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (h_init(&env, NULL) != 0)
		return -1;
	/* The echo upstream forks: before any thread of ours exists. */
	echo_port = h_free_port();
	if ((echo_pid = h_echo_start(echo_port)) < 0 || echo_catalogue() != 0)
		return -1;
	if (append("etc/vault.conf", "first_byte_timeout_ms = 1000\nidle_timeout_ms = 2500\n"
				     "window_bytes = 16384\n") != 0)
		return -1;
	if (h_ipc_open(&env, &as_edge, ROLE_EDGE, vault, 1) != 0 ||
	    h_ipc_open(&env, &as_platform, ROLE_PLATFORM, vault, 1) != 0 || router_open() != 0)
		return -1;
	if (h_start_demo(&env) != 0 || h_start(&env, "vault") != 0 || fetch_pubkey() != 0)
		return -1;
	s = read_secret("secrets/grant.key", &n);
	if (n < 32 || n > sizeof(grant_key))
		return -1;
	memcpy(grant_key, s, n);
	grant_keylen = n;
	free(s);
	s = read_secret("secrets/demo.key", &n);
	if (n != 64)
		return -1;
	memcpy(demo_key, s, n + 1);
	free(s);
	return 0;
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	h_stop_fake(echo_pid);
	ipc_stop(fake_router);
	h_ipc_close(&as_edge);
	h_ipc_close(&as_platform);
	down = h_down(&env);
	curl_global_cleanup();
	return down;
}

/* The demo upstream's test controls. */

static void
demo_control(const char *json)
{
	assert_int_equal(h_demo_control(&env, json), 0);
}

/* The demo's /v1 request count; *auth_ok gets last_auth_ok. */
static int
demo_requests(int *auth_ok)
{
	char url[128];
	struct h_resp r;
	cJSON *j;
	int n;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_demo/stats", env.demo_port);
	assert_int_equal(h_http(&env, "GET", url, NULL, NULL, 0, &r), 0);
	j = cJSON_Parse(r.body);
	assert_non_null(j);
	n = cJSON_GetObjectItem(j, "requests")->valueint;
	if (auth_ok != NULL)
		*auth_ok = cJSON_IsTrue(cJSON_GetObjectItem(j, "last_auth_ok"));
	cJSON_Delete(j);
	h_resp_free(&r);
	return n;
}

/* Sealed intake, as platform-api (and the seller's client behind it). */

static int
fetch_pubkey(void)
{
	struct h_reply r;
	char kid[IPC_KID_MAX + 1];
	int ok;

	if (h_ipc_call(&as_platform, ROLE_VAULT, IPC_VAULT_PUBKEY, NULL, &r, 1, T_MS) != 1 ||
	    r.status != 0 || r.type != IPC_VAULT_PUBKEY_REP ||
	    r.msg.vault_pubkey_rep.public_key.len != HPKE_NPK)
		return -1;
	memcpy(vault_pk, r.msg.vault_pubkey_rep.public_key.p, HPKE_NPK);
	snprintf(vault_kid, sizeof(vault_kid), "%s", r.msg.vault_pubkey_rep.kid);
	kem_kid(vault_pk, kid);
	ok = strcmp(kid, vault_kid) == 0;
	h_replies_free(&r, 1);
	return ok ? 0 : -1;
}

/* How a test spoils a sealed KEY_PUT. */
struct seal_opts {
	const char *bind_seller, *bind_provider; /* NULL: the message's own */
	const char *kid;			 /* NULL: the vault's */
	const uint8_t *pk;			 /* NULL: the vault's */
	int flip_tag;
	const char *enc_hex; /* replace enc */
	int rotate;
};

static struct h_reply
key_put_with(const char *key_id, const char *seller, const char *provider, const char *secret,
    const struct seal_opts *o)
{
	char binding[HPKE_CN2_BINDING_MAX];
	uint8_t enc[HPKE_NENC], ct[4200];
	struct ipc_key_put kp;
	struct h_reply r;
	size_t n = strlen(secret);
	int bl = hpke_cn2_binding(binding, sizeof(binding),
	    o->bind_seller != NULL ? o->bind_seller : seller,
	    o->bind_provider != NULL ? o->bind_provider : provider);

	/* A seller id the vault refuses may not make a binding: seal to a placeholder. */
	if (bl < 0)
		bl = hpke_cn2_binding(binding, sizeof(binding), "x", "x");
	assert_true(n + HPKE_NT <= sizeof(ct));
	assert_int_equal(hpke_seal(HPKE_CN2_AEAD, o->pk != NULL ? o->pk : vault_pk,
			     (const uint8_t *)binding, (size_t)bl, (const uint8_t *)binding,
			     (size_t)bl, (const uint8_t *)secret, n, enc, ct),
	    0);
	if (o->flip_tag)
		ct[n + HPKE_NT - 1] ^= 1;
	for (int i = 0; o->enc_hex != NULL && i < HPKE_NENC; i++)
		sscanf(o->enc_hex + 2 * i, "%2hhx", &enc[i]);
	memset(&kp, 0, sizeof(kp));
	snprintf(kp.key_id, sizeof(kp.key_id), "%s", key_id);
	snprintf(kp.seller_id, sizeof(kp.seller_id), "%s", seller);
	snprintf(kp.provider, sizeof(kp.provider), "%s", provider);
	snprintf(kp.kid, sizeof(kp.kid), "%s", o->kid != NULL ? o->kid : vault_kid);
	kp.rotate = (uint8_t)o->rotate;
	kp.enc.p = enc;
	kp.enc.len = HPKE_NENC;
	kp.sealed.p = ct;
	kp.sealed.len = (uint32_t)(n + HPKE_NT);
	assert_int_equal(h_ipc_call(&as_platform, ROLE_VAULT, IPC_KEY_PUT, &kp, &r, 1, T_MS), 1);
	assert_int_equal(r.status, 0);
	return r;
}

static struct h_reply
key_put(const char *key_id, const char *seller, const char *provider, const char *secret)
{
	struct seal_opts o = {0};

	return key_put_with(key_id, seller, provider, secret, &o);
}

static void
expect_problem_reply(struct h_reply *r, const char *what, uint16_t status, const char *name)
{
	if (r->type != IPC_PROBLEM)
		fail_msg("%s: got %s, want PROBLEM %s", what, ipc_type_name(r->type), name);
	assert_int_equal(r->msg.problem.status, status);
	if (strcmp(r->msg.problem.name, name) != 0)
		fail_msg("%s: got %s, want %s", what, r->msg.problem.name, name);
	h_replies_free(r, 1);
}

static void
expect_key_problem(const char *key_id, const char *seller, const char *provider,
    const char *secret, uint16_t status, const char *name)
{
	struct h_reply r = key_put(key_id, seller, provider, secret);

	expect_problem_reply(&r, key_id, status, name);
}

static void
expect_ack(struct h_reply r, const char *what)
{
	if (r.type != IPC_ACK)
		fail_msg("%s: got %s (%s)", what, ipc_type_name(r.type),
		    r.type == IPC_PROBLEM ? r.msg.problem.detail : "");
	h_replies_free(&r, 1);
}

static void
expect_key_ack(const char *key_id, const char *seller, const char *secret)
{
	expect_ack(key_put(key_id, seller, "demo", secret), key_id);
}

static void
key_rotate(const char *key_id, const char *seller, const char *secret)
{
	struct seal_opts o = {.rotate = 1};

	expect_ack(key_put_with(key_id, seller, "demo", secret, &o), key_id);
}

/*
 * The catalogue the vault runs with: cn2 init's (the shipped one), every
 * real provider's upstream moved to the echo server under /p/<name> (its
 * base path kept), the demo provider left on the demo upstream.
 */
static void
to_echo(cJSON *providers, void *arg)
{
	char url[512];
	cJSON *p;

	(void)arg;
	cJSON_ArrayForEach(p, providers) {
		const char *up = cJSON_GetStringValue(cJSON_GetObjectItem(p, "upstream"));
		const char *base = strchr(up + 8, '/');

		if (strcmp(p->string, "demo") == 0)
			continue;
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/p/%s%s", echo_port, p->string,
		    base != NULL ? base : "");
		cJSON_ReplaceItemInObject(p, "upstream", cJSON_CreateString(url));
	}
}

static int
echo_catalogue(void)
{
	return h_catalogue_edit(&env, to_echo, NULL);
}

/* FORWARD as the edge, with a client that can hold back its FWD_ACKs. */

struct fwd_opts {
	const char *provider; /* NULL: demo */
	const char *key_id;
	const char *method, *path, *target;
	const char *body;
	const char *headers;
	int64_t expires;	/* 0: now + 60 s */
	int bad_mac;
	const char *grant_id; /* NULL: a fresh one */
};

struct stream {
	struct ipc_forward msg;
	uint8_t mac[IPC_MAC_LEN];
	char grant_id[IPC_KEY_ID_MAX + 1];
	uint64_t id;
	int ack;	  /* acknowledge each FWD_DATA at once */
	int cancel_after; /* send FWD_CANCEL after this many FWD_DATA (0: never) */
	size_t unacked;
	int done, status;
	uint16_t final;
	struct ipc_problem problem;
	int head_status;
	char head[4096];
	struct ipc_fwd_end end;
	char *body;
	size_t len;
	int ndata;
	int64_t t_first, t_last;
};

static void
build_forward(struct stream *s, const struct fwd_opts *o)
{
	struct ipc_forward *f = &s->msg;
	struct ipc_grant *g = &f->grant;

	memset(s, 0, sizeof(*s));
	if (o->grant_id != NULL)
		snprintf(s->grant_id, sizeof(s->grant_id), "%s", o->grant_id);
	else
		snprintf(s->grant_id, sizeof(s->grant_id), "g_test_%d_%u", (int)getpid(), ++grant_seq);
	snprintf(g->grant_id, sizeof(g->grant_id), "%s", s->grant_id);
	snprintf(g->key_id, sizeof(g->key_id), "%s", o->key_id != NULL ? o->key_id : "key_demo");
	snprintf(g->payment_id, sizeof(g->payment_id), "pay_%u", grant_seq);
	snprintf(g->route.provider, sizeof(g->route.provider), "%s",
	    o->provider != NULL ? o->provider : "demo");
	snprintf(g->route.method, sizeof(g->route.method), "%s", o->method ? o->method : "POST");
	snprintf(g->route.path, sizeof(g->route.path), "%s",
	    o->path ? o->path : "/v1/chat/completions");
	g->expires = o->expires != 0 ? o->expires : (int64_t)time(NULL) + 60;
	snprintf(g->seller_id, sizeof(g->seller_id), "seller_1");
	g->seller_price = 1000;
	assert_int_equal(capab_grant_mac(grant_key, grant_keylen, g, s->mac), 0);
	if (o->bad_mac)
		s->mac[0] ^= 1;
	g->mac.p = s->mac;
	g->mac.len = IPC_MAC_LEN;
	g->award_mac.p = s->mac; /* the vault does not read it */
	g->award_mac.len = IPC_MAC_LEN;
	snprintf(f->target, sizeof(f->target), "%s", o->target ? o->target : g->route.path);
	f->headers.p = (const uint8_t *)(o->headers ? o->headers
						    : "Content-Type: application/json\r\n");
	f->headers.len = (uint32_t)strlen((const char *)f->headers.p);
	f->body.p = (const uint8_t *)(o->body ? o->body : "");
	f->body.len = (uint32_t)strlen((const char *)f->body.p);
}

static void
stream_send_ack(struct stream *s)
{
	struct ipc_fwd_ack a = {(uint32_t)s->unacked};

	if (s->unacked == 0)
		return;
	assert_int_equal(ipc_send_inflight(as_edge.ipc, s->id, IPC_FWD_ACK, &a), 0);
	s->unacked = 0;
}

static void
stream_data(struct stream *s, const struct ipc_fwd_data *d)
{
	char *p = realloc(s->body, s->len + d->data.len + 1);

	assert_non_null(p);
	memcpy(p + s->len, d->data.p, d->data.len);
	s->body = p;
	s->len += d->data.len;
	s->body[s->len] = '\0';
	s->t_last = now_ms();
	if (s->ndata++ == 0)
		s->t_first = s->t_last;
	s->unacked += d->data.len;
	if (s->ack)
		stream_send_ack(s);
	if (s->cancel_after > 0 && s->ndata == s->cancel_after)
		assert_int_equal(ipc_send_inflight(as_edge.ipc, s->id, IPC_FWD_CANCEL, NULL), 0);
}

static void
stream_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct stream *s = arg;

	if (status != 0) {
		s->status = status;
		s->done = 1;
		return;
	}
	switch (type) {
	case IPC_FWD_HEAD:
		s->head_status = msg->fwd_head.status;
		snprintf(s->head, sizeof(s->head), "%.*s", (int)msg->fwd_head.headers.len,
		    (const char *)msg->fwd_head.headers.p);
		break;
	case IPC_FWD_DATA:
		stream_data(s, &msg->fwd_data);
		break;
	case IPC_FWD_END:
		s->end = msg->fwd_end;
		break;
	case IPC_PROBLEM:
		s->problem = msg->problem;
		break;
	default:
		break;
	}
	if (ipc_type_flags(type) & IPC_MF_FINAL) {
		s->final = type;
		s->done = 1;
	}
}

static int
stream_done(void *arg)
{
	return ((struct stream *)arg)->done;
}

static void
stream_start(struct stream *s, const struct fwd_opts *o, int ack)
{
	build_forward(s, o);
	s->ack = ack;
	assert_int_equal(h_ipc_wait_link(&as_edge, ROLE_VAULT, 5000), 0);
	s->id = ipc_request(as_edge.ipc, ROLE_VAULT, IPC_FORWARD, &s->msg, T_MS, stream_on_reply, s);
	assert_true(s->id != 0);
}

static void
stream_wait(struct stream *s)
{
	spin(T_MS + 1000, stream_done, s);
	assert_true(s->done);
	assert_int_equal(s->status, 0);
}

static void
stream_free(struct stream *s)
{
	free(s->body);
	s->body = NULL;
}

/* One FORWARD run to its end, every FWD_DATA acknowledged. */
static void
forward(struct stream *s, const struct fwd_opts *o)
{
	stream_start(s, o, 1);
	stream_wait(s);
}

static void
expect_refused(const struct fwd_opts *o, uint16_t status, const char *name, const char *why)
{
	struct stream s;
	int before = demo_requests(NULL);

	forward(&s, o);
	if (s.final != IPC_PROBLEM)
		fail_msg("got %s, want PROBLEM %u", ipc_type_name(s.final), (unsigned)status);
	assert_int_equal(s.problem.status, status);
	assert_string_equal(s.problem.name, name);
	if (why != NULL && strstr(s.problem.detail, why) == NULL)
		fail_msg("detail \"%s\" does not say \"%s\"", s.problem.detail, why);
	assert_int_equal(s.ndata, 0);
	/* Nothing went upstream. */
	assert_int_equal(demo_requests(NULL), before);
	stream_free(&s);
}

/* The tests, in order: keys first, then forwards. */

static void
test_pubkey(void **state)
{
	struct h_reply r;

	(void)state;
	assert_int_equal(h_ipc_call(&as_platform, ROLE_VAULT, IPC_VAULT_PUBKEY, NULL, &r, 1, T_MS),
	    1);
	assert_int_equal(r.type, IPC_VAULT_PUBKEY_REP);
	assert_string_equal(r.msg.vault_pubkey_rep.kid, vault_kid);
	assert_int_equal(strncmp(vault_kid, "vk_", 3), 0);
	assert_memory_equal(r.msg.vault_pubkey_rep.public_key.p, vault_pk, HPKE_NPK);
	assert_true(r.msg.vault_pubkey_rep.created > 1700000000);
	h_replies_free(&r, 1);
}

static void
test_key_put(void **state)
{
	(void)state;
	expect_key_ack("key_demo", "seller_1", demo_key);
	/* A new key never takes an id that is in use, whoever asks. */
	expect_key_problem("key_demo", "seller_1", "demo", demo_key, 409, "key-id-taken");
	expect_key_problem("key_demo", "seller_2", "demo", "sk-other-seller-key", 409,
	    "key-id-taken");
	expect_key_ack("key_wrong", "seller_1", "sk-not-the-demo-key-000");
	expect_key_ack("key_rot", "seller_1", demo_key);
	expect_key_problem("key_x", "seller_1", "nosuch", "sk-12345678", 400, "invalid-key");
	/* (A key under 8 bytes cannot even be sent: its seal is shorter than KEY_PUT allows.) */
	expect_key_problem("key_x", "seller_1", "demo", "sk-1234\x01", 400, "invalid-key");
	expect_key_problem("key_x", "seller_1", "demo", "sk-123 45678", 400, "invalid-key");
	expect_key_problem("key_x", "seller_1", "demo", "sk-12345678\r\n", 400, "invalid-key");
	expect_key_problem("key|x", "seller_1", "demo", "sk-12345678", 400, "invalid-key");
	expect_key_problem("key_x", "seller 1", "demo", "sk-12345678", 400, "invalid-key");
	expect_key_problem("key_x", "seller|1", "demo", "sk-12345678", 400, "invalid-key");
}

/* A seal that is not exactly for this vault, seller and provider does not open. */
static void
test_sealed_refused(void **state)
{
	static uint8_t other_pk[HPKE_NPK];
	static const struct {
		const char *what, *key_id, *seller;
		struct seal_opts o;
		uint16_t status;
		const char *name;
	} cases[] = {
	    {"another seller's binding", "key_s", "seller_1", {.bind_seller = "seller_2"}, 400,
		"invalid-sealed-key"},
	    {"another provider's binding", "key_s", "seller_1", {.bind_provider = "openai"}, 400,
		"invalid-sealed-key"},
	    {"a flipped tag", "key_s", "seller_1", {.flip_tag = 1}, 400, "invalid-sealed-key"},
	    {"another recipient", "key_s", "seller_1", {.pk = other_pk}, 400,
		"invalid-sealed-key"},
	    {"enc 0", "key_s", "seller_1",
		{.enc_hex = "0000000000000000000000000000000000000000000000000000000000000000"}, 400,
		"invalid-sealed-key"},
	    {"enc 1", "key_s", "seller_1",
		{.enc_hex = "0100000000000000000000000000000000000000000000000000000000000000"}, 400,
		"invalid-sealed-key"},
	    {"enc of order 8", "key_s", "seller_1",
		{.enc_hex = "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"}, 400,
		"invalid-sealed-key"},
	    {"enc p - 1", "key_s", "seller_1",
		{.enc_hex = "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"}, 400,
		"invalid-sealed-key"},
	    {"an unknown vault key", "key_s", "seller_1", {.kid = "vk_AAAAAAAAAAAAAAAA"}, 400,
		"unknown-vault-key"},
	    /* Rotation: only an existing key of this seller and provider. */
	    {"rotating nothing", "key_none", "seller_1", {.rotate = 1}, 404, "key-not-found"},
	    {"rotating another's key", "key_demo", "seller_2", {.rotate = 1}, 404, "key-not-found"},
	};
	uint8_t sk[HPKE_NSK];
	struct h_reply r;

	(void)state;
	assert_int_equal(hpke_keypair_generate(sk, other_pk), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = key_put_with(cases[i].key_id, cases[i].seller, "demo", "sk-sealed-12345678",
		    &cases[i].o);
		expect_problem_reply(&r, cases[i].what, cases[i].status, cases[i].name);
	}
	/* None of it was stored. */
	assert_false(h_log_contains(&env, "key key_s of seller"));
}

static void
test_chat(void **state)
{
	struct fwd_opts o = {.body = chat_body,
	    .headers = "Content-Type: application/json\r\nAuthorization: Bearer buyer-token\r\n"
		       "X-Api-Key: not-this-one\r\n"};
	const struct ipc_outcome *oc;
	struct stream s;
	int before = demo_requests(NULL), auth_ok = 0;
	cJSON *j;

	(void)state;
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_int_equal(s.head_status, 200);
	assert_true(s.end.ok);
	assert_true(s.end.started);
	assert_non_null(strstr(s.head, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(s.head, "Content-Length: "));
	assert_null(strstr(s.head, "Connection"));
	j = cJSON_Parse(s.body);
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "object")),
	    "chat.completion");
	assert_non_null(strstr(s.body, "demo reply: 1 messages"));
	cJSON_Delete(j);
	/* One upstream call, with the seller's key and not the buyer's Authorization. */
	assert_int_equal(demo_requests(&auth_ok), before + 1);
	assert_true(auth_ok);
	oc = wait_outcome(s.grant_id);
	assert_string_equal(oc->key_id, "key_demo");
	assert_int_equal(oc->status, 200);
	assert_int_equal(oc->failure, FAIL_NONE);
	assert_string_equal(oc->route.path, "/v1/chat/completions");
	stream_free(&s);
}

static void
test_models(void **state)
{
	struct fwd_opts o = {.method = "GET", .path = "/v1/models", .headers = ""};
	struct stream s;

	(void)state;
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_int_equal(s.head_status, 200);
	assert_true(s.end.ok);
	assert_non_null(strstr(s.body, "\"demo-1\""));
	stream_free(&s);
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_stream(void **state)
{
	struct fwd_opts o = {.body = stream_body};
	struct stream s;

	(void)state;
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_int_equal(s.head_status, 200);
	assert_non_null(strstr(s.head, "text/event-stream"));
	assert_null(strstr(s.head, "Transfer-Encoding"));
	assert_true(s.end.ok);
	assert_int_equal(count(s.body, "chat.completion.chunk"), 5);
	assert_non_null(strstr(s.body, "data: [DONE]\n\n"));
	/* Streamed as it came: 5 events 100 ms apart arrive as several chunks over time. */
	assert_true(s.ndata >= 3);
	assert_true(s.t_last - s.t_first >= 250);
	assert_int_equal(wait_outcome(s.grant_id)->failure, FAIL_NONE);
	stream_free(&s);
}

static void
test_flow_control(void **state)
{
	struct fwd_opts o = {.body = stream_body};
	struct stream s;
	size_t held;

	(void)state;
	demo_control("{\"pad_bytes\": 6000}");
	stream_start(&s, &o, 0);
	/* The demo has sent everything after ~500 ms; without ACKs the vault holds back. */
	spin(1200, stream_done, &s);
	assert_false(s.done);
	assert_true(s.len > 0);
	assert_true(s.len <= WINDOW);
	assert_true(count(s.body, "chat.completion.chunk") < 5);
	held = s.len;
	/* Acknowledge: the rest flows, each chunk acknowledged as it comes. */
	s.ack = 1;
	stream_send_ack(&s);
	stream_wait(&s);
	demo_control("{\"reset\": true}");
	assert_int_equal(s.final, IPC_FWD_END);
	assert_true(s.end.ok);
	assert_true(s.len > held);
	assert_int_equal(count(s.body, "chat.completion.chunk"), 5);
	assert_non_null(strstr(s.body, "data: [DONE]"));
	stream_free(&s);
}

static void
test_grant_refused(void **state)
{
	struct fwd_opts bad_mac = {.body = chat_body, .bad_mac = 1};
	struct fwd_opts expired = {.body = chat_body, .expires = (int64_t)time(NULL) - 1};
	struct fwd_opts other_path = {.body = chat_body, .target = "/v1/models"};
	struct fwd_opts query_path = {.body = chat_body, .target = "/v1/chat/completions/x?y=1"};
	struct fwd_opts bad_route = {.path = "/v1/embeddings", .body = chat_body};

	(void)state;
	expect_refused(&bad_mac, 403, "invalid-grant", "MAC");
	expect_refused(&expired, 403, "invalid-grant", "expired");
	expect_refused(&other_path, 403, "invalid-grant", "path");
	expect_refused(&query_path, 403, "invalid-grant", "path");
	expect_refused(&bad_route, 403, "invalid-grant", "route");
}

static void
test_replay(void **state)
{
	struct fwd_opts o = {.body = chat_body, .grant_id = "g_replay_1"};
	struct stream s;

	(void)state;
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_true(s.end.ok);
	stream_free(&s);
	expect_refused(&o, 403, "invalid-grant", "already used");
}

/* The same grant twice at once: one call goes upstream, the other is refused. */
static void
test_replay_concurrent(void **state)
{
	struct fwd_opts o = {.body = chat_body, .grant_id = "g_twice_1"};
	struct stream a, b;
	int before = demo_requests(NULL);

	(void)state;
	stream_start(&a, &o, 1);
	stream_start(&b, &o, 1);
	stream_wait(&a);
	stream_wait(&b);
	assert_int_equal(a.final, IPC_FWD_END);
	assert_true(a.end.ok);
	assert_int_equal(b.final, IPC_PROBLEM);
	assert_int_equal(b.problem.status, 403);
	assert_int_equal(demo_requests(NULL), before + 1);
	stream_free(&a);
	stream_free(&b);
}

static void
test_bad_forward(void **state)
{
	struct fwd_opts o = {.body = chat_body, .headers = "Bad Header: x\r\n"};

	(void)state;
	expect_refused(&o, 400, "bad-forward", "header");
}

static void
test_upstream_error_passes(void **state)
{
	struct fwd_opts o = {.body = chat_body};
	struct fwd_opts wrong = {.body = chat_body, .key_id = "key_wrong"};
	struct stream s;

	(void)state;
	demo_control("{\"fail_status\": 500, \"fail_count\": 1}");
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_int_equal(s.head_status, 500);
	assert_true(s.end.ok);
	assert_non_null(strstr(s.body, "injected failure"));
	assert_int_equal(wait_outcome(s.grant_id)->status, 500);
	stream_free(&s);
	/* A key the upstream does not know: its 401 goes back as it is. */
	forward(&s, &wrong);
	assert_int_equal(s.head_status, 401);
	assert_non_null(strstr(s.body, "invalid_api_key"));
	assert_int_equal(wait_outcome(s.grant_id)->status, 401);
	stream_free(&s);
}

static void
test_first_byte_timeout(void **state)
{
	struct fwd_opts o = {.body = chat_body};
	const struct ipc_outcome *oc;
	struct stream s;
	int64_t t0 = now_ms(), took;

	(void)state;
	demo_control("{\"delay_ms\": 3000}");
	forward(&s, &o);
	took = now_ms() - t0;
	demo_control("{\"reset\": true}");
	assert_int_equal(s.final, IPC_FWD_END);
	assert_false(s.end.ok);
	assert_false(s.end.started);
	assert_int_equal(s.head_status, 0);
	assert_true(took >= FIRST_BYTE_MS - 50 && took < 2800);
	oc = wait_outcome(s.grant_id);
	assert_int_equal(oc->failure, FAIL_TIMEOUT);
	assert_int_equal(oc->status, 0);
	stream_free(&s);
}

static void
test_cut(void **state)
{
	struct fwd_opts o = {.body = stream_body};
	struct stream s;

	(void)state;
	demo_control("{\"cut_after\": 2}");
	forward(&s, &o);
	demo_control("{\"reset\": true}");
	assert_int_equal(s.final, IPC_FWD_END);
	assert_int_equal(s.head_status, 200);
	assert_false(s.end.ok);
	assert_true(s.end.started);
	assert_int_equal(count(s.body, "chat.completion.chunk"), 2);
	assert_null(strstr(s.body, "[DONE]"));
	assert_int_equal(wait_outcome(s.grant_id)->failure, FAIL_CUT);
	stream_free(&s);
}

static void
test_cancel(void **state)
{
	struct fwd_opts o = {.body = stream_body};
	struct stream s;

	(void)state;
	stream_start(&s, &o, 1);
	s.cancel_after = 1;
	stream_wait(&s);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_false(s.end.ok);
	assert_true(s.end.started);
	assert_string_equal(s.end.detail, "cancelled");
	assert_true(count(s.body, "chat.completion.chunk") < 5);
	assert_int_equal(wait_outcome(s.grant_id)->failure, FAIL_CANCEL);
	stream_free(&s);
}

static void
test_unknown_key(void **state)
{
	struct fwd_opts o = {.body = chat_body, .key_id = "key_missing"};
	struct stream s;

	(void)state;
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_false(s.end.ok);
	assert_false(s.end.started);
	assert_non_null(strstr(s.end.detail, "not in the vault"));
	stream_free(&s);
}

static int
link_down(void *arg)
{
	(void)arg;
	return !ipc_link_up(as_edge.ipc, ROLE_VAULT);
}

static int
got_data(void *arg)
{
	return ((struct stream *)arg)->ndata > 0;
}

/* A stop in the middle of a stream ends it (or its connection) and the vault exits promptly. */
static void
test_stop_mid_stream(void **state)
{
	struct fwd_opts o = {.body = stream_body};
	struct stream s;
	int64_t t0;

	(void)state;
	stream_start(&s, &o, 1);
	spin(T_MS, got_data, &s);
	assert_true(s.ndata > 0);
	t0 = now_ms();
	assert_int_equal(h_signal(&env, "vault", SIGTERM), 0);
	assert_true(now_ms() - t0 < 3000); /* not killed after h_signal's 5 s grace */
	spin(3000, stream_done, &s);
	assert_true(s.done);
	if (s.status == 0) {
		assert_int_equal(s.final, IPC_FWD_END);
		assert_false(s.end.ok);
	} else
		assert_int_equal(s.status, IPC_ERR_CLOSED);
	stream_free(&s);
	spin(2000, link_down, NULL);
	assert_int_equal(h_start(&env, "vault"), 0);
}

/* A grant used before a restart is still refused after it; the key survived too. */
static void
test_replay_after_restart(void **state)
{
	struct fwd_opts o = {.body = chat_body, .grant_id = "g_restart_1"};
	struct fwd_opts fresh = {.body = chat_body};
	struct stream s;

	(void)state;
	forward(&s, &o);
	assert_true(s.end.ok);
	stream_free(&s);
	assert_int_equal(h_signal(&env, "vault", SIGTERM), 0);
	spin(2000, link_down, NULL); /* see the old connection go before using a new one */
	assert_int_equal(h_start(&env, "vault"), 0);
	expect_refused(&o, 403, "invalid-grant", "already used");
	forward(&s, &fresh);
	assert_int_equal(s.head_status, 200);
	assert_true(s.end.ok);
	stream_free(&s);
}

static void
test_connect_failure(void **state)
{
	struct fwd_opts o = {.body = chat_body};
	struct stream s;

	(void)state;
	assert_int_equal(kill(env.demo_pid, SIGTERM), 0);
	assert_int_equal(waitpid(env.demo_pid, NULL, 0), env.demo_pid);
	env.demo_pid = 0;
	forward(&s, &o);
	assert_int_equal(s.final, IPC_FWD_END);
	assert_false(s.end.ok);
	assert_false(s.end.started);
	assert_int_equal(wait_outcome(s.grant_id)->failure, FAIL_CONNECT);
	stream_free(&s);
}

/* Secrets in clear: never in the logs, never in the database files. */

static int
file_has(const char *rel, const void *needle, size_t n)
{
	size_t len;
	char *s = h_read(&env, rel, &len);
	int found;

	if (s == NULL)
		return 0;
	found = memmem(s, len, needle, n) != NULL;
	free(s);
	return found;
}

static void
test_no_secret_in_clear(void **state)
{
	static const char *const dbfiles[] = {"db/vault.db", "db/vault.db-wal"};
	size_t mlen;
	char *master = read_secret("secrets/master.key", &mlen);
	uint8_t raw[32];

	(void)state;
	assert_int_equal(mlen, 64);
	for (int i = 0; i < 32; i++)
		assert_int_equal(sscanf(master + 2 * i, "%2hhx", &raw[i]), 1);
	assert_false(h_log_contains(&env, demo_key));
	assert_false(h_log_contains(&env, master));
	assert_false(h_log_contains(&env, "sk-not-the-demo-key"));
	assert_true(file_has("db/vault.db", "key_demo", 8)); /* the row is there… */
	for (size_t i = 0; i < sizeof(dbfiles) / sizeof(dbfiles[0]); i++) {
		assert_false(file_has(dbfiles[i], demo_key, 64));	 /* …sealed */
		assert_false(file_has(dbfiles[i], demo_key, 16));
		assert_false(file_has(dbfiles[i], master, 64));
		assert_false(file_has(dbfiles[i], raw, sizeof(raw)));
		assert_false(file_has(dbfiles[i], "sk-not-the-demo-key", 19));
	}
	free(master);
}

/* The vault refuses to start on an unsafe master key file, and says why. */
static void
test_master_key_refused(void **state)
{
	static const struct {
		const char *text;
		mode_t mode;
		const char *why;
	} cases[] = {
	    {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0644,
		"group or others"},
	    {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", 0600,
		"exactly 64"},
	    {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeZ", 0600, "hex"},
	    {NULL, 0600, "No such file"},
	};
	char conf[400], key[400], log[400], exe[400], line[600];

	(void)state;
	snprintf(key, sizeof(key), "%s/secrets/bad-master.key", env.dir);
	snprintf(conf, sizeof(conf), "%s/etc/vault-bad.conf", env.dir);
	snprintf(log, sizeof(log), "%s/vault-bad.log", env.dir);
	snprintf(exe, sizeof(exe), "%s/cn2-vault", env.bindir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *fp;
		int status;
		pid_t pid;

		unlink(key);
		if (cases[i].text != NULL) {
			assert_non_null(fp = fopen(key, "w"));
			fputs(cases[i].text, fp);
			fclose(fp);
			assert_int_equal(chmod(key, cases[i].mode), 0);
		}
		assert_non_null(fp = fopen(conf, "w"));
		fprintf(fp, "runtime_dir = %s/run-bad\ndatabase = %s/db/bad.db\n"
			    "master_key_file = %s\ngrant_secret_file = %s/secrets/grant.key\n"
			    "providers = %s/etc/providers.json\n",
		    env.dir, env.dir, key, env.dir, env.dir);
		fclose(fp);
		if ((pid = fork()) == 0) {
			int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			dup2(fd, STDERR_FILENO);
			execl(exe, exe, "-f", conf, (char *)NULL);
			_exit(127);
		}
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 1);
		assert_non_null(fp = fopen(log, "r"));
		line[0] = '\0';
		while (fgets(line, sizeof(line), fp) != NULL && strstr(line, cases[i].why) == NULL)
			;
		fclose(fp);
		if (strstr(line, cases[i].why) == NULL)
			fail_msg("case %zu: no \"%s\" in the vault's log", i, cases[i].why);
		assert_null(strstr(line, "0123456789abcdef"));
	}
}


/* Seller key rotation. */

/* The ciphertext of a key as vault.db holds it (read-only, beside the vault). Caller frees. */
static uint8_t *
db_ciphertext(const char *key_id, size_t *len)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;
	uint8_t *ct = NULL;

	snprintf(path, sizeof(path), "%s/db/vault.db", env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT ciphertext FROM keys WHERE key_id = ?1",
			     -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*len = (size_t)sqlite3_column_bytes(st, 0);
		ct = malloc(*len);
		memcpy(ct, sqlite3_column_blob(st, 0), *len);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(ct);
	return ct;
}

static int
log_has(void *arg)
{
	return h_log_contains(&env, arg);
}

static void
test_rotation(void **state)
{
	struct fwd_opts streamed = {.body = stream_body, .key_id = "key_rot"};
	struct fwd_opts plain = {.body = chat_body, .key_id = "key_rot"};
	char wiped[] = "key key_rot: no call uses generation 1 any more";
	struct stream a, b;
	uint8_t *old;
	size_t oldlen = 0;

	(void)state;
	demo_control("{\"events\": 10, \"interval_ms\": 150}");
	old = db_ciphertext("key_rot", &oldlen);
	stream_start(&a, &streamed, 1);
	spin(T_MS, got_data, &a);
	assert_true(a.ndata > 0);
	assert_false(a.done);
	key_rotate("key_rot", "seller_1", "sk-rotated-not-the-demo-key");
	/* New calls use the new secret at once: the demo upstream does not know it. */
	forward(&b, &plain);
	assert_int_equal(b.head_status, 401);
	stream_free(&b);
	/* The call in progress still runs, on the old secret, which is not wiped yet. */
	assert_false(a.done);
	assert_false(h_log_contains(&env, wiped));
	stream_wait(&a);
	assert_int_equal(a.head_status, 200);
	assert_true(a.end.ok);
	assert_int_equal(count(a.body, "chat.completion.chunk"), 10);
	assert_non_null(strstr(a.body, "[DONE]"));
	stream_free(&a);
	/* Once it ended, the old secret is wiped, and its ciphertext is in no file. */
	spin(T_MS, log_has, wiped);
	assert_true(h_log_contains(&env, wiped));
	assert_false(file_has("db/vault.db", old, oldlen));
	assert_false(file_has("db/vault.db-wal", old, oldlen));
	free(old);
	/* Rotated back to the demo key, calls succeed again. */
	key_rotate("key_rot", "seller_1", demo_key);
	forward(&b, &plain);
	assert_int_equal(b.head_status, 200);
	assert_true(b.end.ok);
	stream_free(&b);
	demo_control("{\"reset\": true}");
}

/* Every provider of the shipped catalogue, through the real vault, to the echo upstream. */

/* One call for pv: what reached the upstream (the echo's "head"). Caller frees. */
static char *
live_call(const struct provider *pv, const char *key_id, char *path, size_t pathcap)
{
	char headers[2048], target[600];
	struct fwd_opts o = {.provider = pv->name, .key_id = key_id, .body = "{}"};
	struct stream s;
	cJSON *j;
	char *head;

	catalogue_buyer_headers(pv, headers, sizeof(headers));
	catalogue_sample_path(pv, path, pathcap);
	/* A buyer's copy of a query key is dropped; other parameters pass. */
	snprintf(target, sizeof(target), "%s?%s%salt=sse", path,
	    pv->auth_query[0] != '\0' ? pv->auth_query : "", pv->auth_query[0] != '\0' ? "=buyer&" : "");
	o.method = pv->routes[0].method;
	o.path = path;
	o.target = target;
	o.headers = headers;
	if (strcmp(o.method, "GET") == 0)
		o.body = NULL;
	forward(&s, &o);
	if (s.final != IPC_FWD_END || s.head_status != 200)
		fail_msg("%s: %s %s", pv->name, ipc_type_name(s.final),
		    s.final == IPC_PROBLEM ? s.problem.detail : s.end.detail);
	assert_non_null(j = cJSON_Parse(s.body));
	head = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(j, "head")));
	cJSON_Delete(j);
	stream_free(&s);
	return head;
}

static void
test_catalogue_live(void **state)
{
	struct providers cat;
	char err[256], key_id[64], secret[128], want[512], path[300];
	size_t tested = 0;

	(void)state;
	assert_int_equal(providers_parse(cli_catalogue, strlen(cli_catalogue), &cat, err,
			     sizeof(err)), 0);
	for (size_t i = 0; i < cat.n; i++) {
		const struct provider *pv = &cat.v[i];
		char *head;

		if (strcmp(pv->name, "demo") == 0)
			continue;
		snprintf(key_id, sizeof(key_id), "key_live_%s", pv->name);
		snprintf(secret, sizeof(secret), "sk-live-%s-0123456789", pv->name);
		expect_ack(key_put(key_id, "seller_live", pv->name, secret), key_id);
		head = live_call(pv, key_id, path, sizeof(path));
		/* The right upstream path, no buyer credential anywhere, the seller's key once. */
		snprintf(want, sizeof(want), "%s /p/%s", pv->routes[0].method, pv->name);
		if (strncmp(head, want, strlen(want)) != 0 || strstr(head, path) == NULL)
			fail_msg("%s: request line: %.200s", pv->name, head);
		if (strstr(head, "buyer") != NULL)
			fail_msg("%s: a buyer credential reached the upstream:\n%s", pv->name, head);
		if (count(head, secret) != 1)
			fail_msg("%s: the key is not in the request once:\n%s", pv->name, head);
		if (pv->auth_header[0] != '\0')
			snprintf(want, sizeof(want), "\r\n%s: %s%s\r\n", pv->auth_header,
			    pv->auth_prefix, secret);
		else
			snprintf(want, sizeof(want), "&%s=%s HTTP/1.1\r\n", pv->auth_query, secret);
		if (strstr(head, want) == NULL)
			fail_msg("%s: the key is not injected as \"%s\":\n%s", pv->name, want, head);
		for (size_t h = 0; h < pv->nheaders; h++) {
			snprintf(want, sizeof(want), "\r\n%s: %s\r\n", pv->headers[h].name,
			    pv->headers[h].value);
			if (strstr(head, want) == NULL)
				fail_msg("%s: no fixed header %s", pv->name, pv->headers[h].name);
		}
		free(head);
		tested++;
	}
	assert_true(tested >= 20);
	providers_free(&cat);
}

/* Connections to an upstream are kept and reused. */

static unsigned long long
health_number(const char *after)
{
	struct h_reply r;
	const char *p;
	unsigned long long n = 0;

	assert_int_equal(h_ipc_call(&as_edge, ROLE_VAULT, IPC_HEALTH, NULL, &r, 1, T_MS), 1);
	assert_int_equal(r.type, IPC_HEALTH_REP);
	assert_non_null(p = strstr(r.msg.health_rep.detail, after));
	n = strtoull(p + strlen(after), NULL, 10);
	h_replies_free(&r, 1);
	return n;
}

static void
test_connection_reuse(void **state)
{
	struct fwd_opts o = {.body = chat_body};
	unsigned long long opened = health_number("conns "), reused;
	struct stream s;

	(void)state;
	reused = health_number("opened, ");
	for (int i = 0; i < 10; i++) {
		forward(&s, &o);
		assert_int_equal(s.head_status, 200);
		stream_free(&s);
	}
	assert_true(health_number("conns ") - opened <= 1);
	assert_true(health_number("opened, ") - reused >= 9);
}

/* The vault listens on no network socket, and leaves no core file. */
static void
test_no_inbound_network(void **state)
{
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp",
	    "/proc/net/udp6"};
	unsigned long inodes[256];
	size_t n = 0;
	char path[128], link[128], line[512], *limits;
	pid_t pid = h_pid(&env, "vault");
	struct dirent *de;
	DIR *d;

	(void)state;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL && n < 256) {
		char fd[512];
		ssize_t k;

		snprintf(fd, sizeof(fd), "%s/%s", path, de->d_name);
		if ((k = readlink(fd, link, sizeof(link) - 1)) > 0) {
			link[k] = '\0';
			if (sscanf(link, "socket:[%lu]", &inodes[n]) == 1)
				n++;
		}
	}
	closedir(d);
	assert_true(n > 0); /* its IPC sockets, at least */
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		FILE *fp = fopen(tables[t], "r");

		if (fp == NULL)
			continue;
		while (fgets(line, sizeof(line), fp) != NULL) {
			unsigned long inode = 0;
			char st[8];

			if (sscanf(line, "%*s %*s %*s %7s %*s %*s %*s %*s %*s %lu", st, &inode) != 2)
				continue;
			for (size_t i = 0; i < n; i++)
				if (inodes[i] == inode && (strcmp(st, "0A") == 0 || t >= 2))
					fail_msg("the vault has a listening socket in %s", tables[t]);
		}
		fclose(fp);
	}
	snprintf(link, sizeof(link), "/proc/%d/limits", (int)pid);
	{
		FILE *fp = fopen(link, "r");
		size_t len = fp != NULL ? fread(line, 1, sizeof(line) - 1, fp) : 0;

		if (fp != NULL)
			fclose(fp);
		line[len] = '\0';
		limits = strstr(line, "Max core file size");
		assert_non_null(limits);
		assert_int_equal(strncmp(limits, "Max core file size        0                    0",
				     48), 0);
	}
}

/* Where the master key comes from, and what is refused at start, with the reason. */

struct run {
	int exited, status;
	char log[4096];
};

static void
run_vault(const char *conf_text, const char *creds_dir, int want_start, struct run *out)
{
	char conf[400], log[400], exe[400], env_creds[500];
	int64_t end = now_ms() + 8000;
	FILE *fp;
	pid_t pid;
	int status = 0;

	(void)log;

	snprintf(conf, sizeof(conf), "%s/etc/vault-src.conf", env.dir);
	snprintf(log, sizeof(log), "%s/vault-src.log", env.dir);
	snprintf(exe, sizeof(exe), "%s/cn2-vault", env.bindir);
	assert_non_null(fp = fopen(conf, "w"));
	fprintf(fp, "runtime_dir = %s/run-src\ndatabase = %s/db/src.db\n"
		    "grant_secret_file = %s/secrets/grant.key\nproviders = %s/etc/providers.json\n%s",
	    env.dir, env.dir, env.dir, env.dir, conf_text);
	fclose(fp);
	if ((pid = fork()) == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, STDERR_FILENO);
		if (creds_dir != NULL) {
			snprintf(env_creds, sizeof(env_creds), "CREDENTIALS_DIRECTORY=%s", creds_dir);
			putenv(env_creds);
		} else
			unsetenv("CREDENTIALS_DIRECTORY");
		execl(exe, exe, "-f", conf, (char *)NULL);
		_exit(127);
	}
	memset(out, 0, sizeof(*out));
	while (now_ms() < end && !out->exited) {
		char *text;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			out->exited = 1;
			break;
		}
		text = want_start ? h_read(&env, "vault-src.log", NULL) : NULL;
		if (text != NULL && strstr(text, "started (pid") != NULL) {
			kill(pid, SIGTERM);
			waitpid(pid, &status, 0);
			out->exited = 1;
		}
		free(text);
		usleep(20000);
	}
	if (!out->exited) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	out->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	{
		char *all = h_read(&env, "vault-src.log", NULL);

		snprintf(out->log, sizeof(out->log), "%s", all != NULL ? all : "");
		free(all);
	}
}

static void
write_key(const char *rel, const char *hex)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", env.dir, rel);
	assert_non_null(fp = fopen(path, "w"));
	fputs(hex, fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0600), 0);
}

static void
expect_refused_start(const char *conf, const char *creds, const char *why)
{
	struct run r;

	run_vault(conf, creds, 0, &r);
	if (r.status != 1 || strstr(r.log, why) == NULL)
		fail_msg("want exit 1 saying \"%s\"; got %d:\n%s", why, r.status, r.log);
	assert_null(strstr(r.log, "0123456789abcdef"));
}

static void
expect_start(const char *conf, const char *creds)
{
	struct run r;

	run_vault(conf, creds, 1, &r);
	if (r.status != 0 || strstr(r.log, "started (pid") == NULL)
		fail_msg("want a clean start and stop; got %d:\n%s", r.status, r.log);
}

static void
test_master_key_sources(void **state)
{
	char creds[400], conf[1200];
	static const char k1[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const char k2[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
	static const char k3[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

	(void)state;
	snprintf(creds, sizeof(creds), "%s/creds", env.dir);
	assert_int_equal(mkdir(creds, 0700), 0);
	write_key("creds/master.key", k1);
	write_key("secrets/k2.key", k2);
	write_key("secrets/k3.key", k3);
	/* The default names a systemd credential: refused without $CREDENTIALS_DIRECTORY. */
	expect_refused_start("", NULL, "CREDENTIALS_DIRECTORY");
	/* With it, the credential is read, and master key version 1 recorded. */
	expect_start("", creds);
	/* Another key claiming version 1 is refused. */
	snprintf(conf, sizeof(conf), "master_key_file = %s/secrets/k2.key\n", env.dir);
	expect_refused_start(conf, NULL, "is not master key version 1");
	/* Version 2 without the previous key: rows under version 1 cannot open. */
	snprintf(conf, sizeof(conf), "master_key_file = %s/secrets/k3.key\nmaster_key_version = 2\n",
	    env.dir);
	expect_refused_start(conf, NULL, "use master key version 1, and no key for it");
	/* With the previous key it starts (the previous one is known by its check value). */
	snprintf(conf, sizeof(conf),
	    "master_key_file = %s/secrets/k3.key\nmaster_key_version = 2\n"
	    "previous_master_key_file = master.key\n",
	    env.dir);
	expect_start(conf, creds);
	/* A wrong previous key, and going back to version 1, are refused. */
	snprintf(conf, sizeof(conf),
	    "master_key_file = %s/secrets/k3.key\nmaster_key_version = 2\n"
	    "previous_master_key_file = %s/secrets/k2.key\n",
	    env.dir, env.dir);
	expect_refused_start(conf, NULL, "opens none of the master key versions");
	expect_refused_start("", creds, "already uses version 2");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pubkey),
	    cmocka_unit_test(test_key_put),
	    cmocka_unit_test(test_sealed_refused),
	    cmocka_unit_test(test_chat),
	    cmocka_unit_test(test_models),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_flow_control),
	    cmocka_unit_test(test_grant_refused),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_replay_concurrent),
	    cmocka_unit_test(test_bad_forward),
	    cmocka_unit_test(test_upstream_error_passes),
	    cmocka_unit_test(test_first_byte_timeout),
	    cmocka_unit_test(test_cut),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_catalogue_live),
	    cmocka_unit_test(test_connection_reuse),
	    cmocka_unit_test(test_no_inbound_network),
	    cmocka_unit_test(test_stop_mid_stream),
	    cmocka_unit_test(test_replay_after_restart),
	    cmocka_unit_test(test_connect_failure),
	    cmocka_unit_test(test_no_secret_in_clear),
	    cmocka_unit_test(test_master_key_refused),
	    cmocka_unit_test(test_master_key_sources),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
