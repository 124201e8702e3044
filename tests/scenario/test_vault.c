/*
 * test_vault.c — cn2-vault alone against the demo upstream, driven over IPC
 * as its peers: platform-api puts the demo key (KEY_PUT), the edge forwards
 * requests with grants MAC'd here under the directory's grant secret
 * (FORWARD, FWD_ACK, FWD_CANCEL), and a fake router, listening here as
 * ROLE_ROUTER, collects the OUTCOMEs.
 *
 * Covered: key intake checks; plain and streamed completions (events spaced
 * in time, flow control holding the stream at window_bytes until ACKs come);
 * every way a grant is refused (MAC, replay, replay after a restart, expiry,
 * route, path) with nothing reaching the upstream; upstream errors passed
 * through; first-byte timeout, a cut stream, cancellation, connect failure;
 * the master key file refused at start when unsafe; and neither the demo key
 * nor the master key in clear in the logs or the database files.
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

#include "common/capab.h"
#include "tests/scenario/harness.h"

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

static const char chat_body[] =
    "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
static const char stream_body[] =
    "{\"model\":\"demo-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

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
	struct ipc_config c;
	char run[300], err[256];

	memset(&c, 0, sizeof(c));
	snprintf(run, sizeof(run), "%s/run", env.dir);
	c.loop = &as_edge.loop;
	c.self = ROLE_ROUTER;
	c.runtime_dir = run;
	c.accept = rules;
	c.naccept = 1;
	for (int r = 0; r < ROLE_MAX; r++)
		c.role_uid[r] = getuid();
	c.on_request = router_on_request;
	if ((fake_router = ipc_start(&c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fake router: %s\n", err);
		return -1;
	}
	return 0;
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
	if (append("etc/vault.conf", "first_byte_timeout_ms = 1000\nidle_timeout_ms = 2500\n"
				     "window_bytes = 16384\n") != 0)
		return -1;
	if (h_ipc_open(&env, &as_edge, ROLE_EDGE, vault, 1) != 0 ||
	    h_ipc_open(&env, &as_platform, ROLE_PLATFORM, vault, 1) != 0 || router_open() != 0)
		return -1;
	if (h_start_demo(&env) != 0 || h_start(&env, "vault") != 0)
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
	char url[128];
	struct h_resp r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_demo/control", env.demo_port);
	assert_int_equal(h_http(&env, "POST", url, NULL, json, strlen(json), &r), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
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

/* KEY_PUT as platform-api. */

static struct h_reply
key_put(const char *key_id, const char *seller, const char *provider, const char *secret)
{
	struct ipc_key_put kp;
	struct h_reply r;

	memset(&kp, 0, sizeof(kp));
	snprintf(kp.key_id, sizeof(kp.key_id), "%s", key_id);
	snprintf(kp.seller_id, sizeof(kp.seller_id), "%s", seller);
	snprintf(kp.provider, sizeof(kp.provider), "%s", provider);
	kp.secret.p = (const uint8_t *)secret;
	kp.secret.len = (uint32_t)strlen(secret);
	assert_int_equal(h_ipc_call(&as_platform, ROLE_VAULT, IPC_KEY_PUT, &kp, &r, 1, T_MS), 1);
	assert_int_equal(r.status, 0);
	return r;
}

static void
expect_key_problem(const char *key_id, const char *seller, const char *provider,
    const char *secret, uint16_t status, const char *name)
{
	struct h_reply r = key_put(key_id, seller, provider, secret);

	if (r.type != IPC_PROBLEM)
		fail_msg("KEY_PUT %s: got %s, want PROBLEM", key_id, ipc_type_name(r.type));
	assert_int_equal(r.msg.problem.status, status);
	assert_string_equal(r.msg.problem.name, name);
	h_replies_free(&r, 1);
}

static void
expect_key_ack(const char *key_id, const char *seller, const char *secret)
{
	struct h_reply r = key_put(key_id, seller, "demo", secret);

	if (r.type != IPC_ACK)
		fail_msg("KEY_PUT %s: got %s (%s)", key_id, ipc_type_name(r.type),
		    r.type == IPC_PROBLEM ? r.msg.problem.detail : "");
	h_replies_free(&r, 1);
}

/* FORWARD as the edge, with a client that can hold back its FWD_ACKs. */

struct fwd_opts {
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
	snprintf(g->route.provider, sizeof(g->route.provider), "demo");
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
test_key_put(void **state)
{
	(void)state;
	expect_key_ack("key_demo", "seller_1", demo_key);
	/* The same seller may replace the key under the same id; another seller may not. */
	expect_key_ack("key_demo", "seller_1", demo_key);
	expect_key_problem("key_demo", "seller_2", "demo", "sk-other-seller-key", 409,
	    "key-id-taken");
	expect_key_ack("key_wrong", "seller_1", "sk-not-the-demo-key-000");
	expect_key_problem("key_x", "seller_1", "nosuch", "sk-12345678", 400, "invalid-key");
	expect_key_problem("key_x", "seller_1", "demo", "sk-123", 400, "invalid-key");
	expect_key_problem("key_x", "seller_1", "demo", "sk-123 45678", 400, "invalid-key");
	expect_key_problem("key_x", "seller_1", "demo", "sk-12345678\r\n", 400, "invalid-key");
	expect_key_problem("key|x", "seller_1", "demo", "sk-12345678", 400, "invalid-key");
	expect_key_problem("key_x", "seller 1", "demo", "sk-12345678", 400, "invalid-key");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_put),
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
	    cmocka_unit_test(test_stop_mid_stream),
	    cmocka_unit_test(test_replay_after_restart),
	    cmocka_unit_test(test_connect_failure),
	    cmocka_unit_test(test_no_secret_in_clear),
	    cmocka_unit_test(test_master_key_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
