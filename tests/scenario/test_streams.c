/*
 * test_streams.c — streaming at scale through the real daemons.
 *
 *   - CN2_STREAMS (default 200) paid SSE streams at once through the edge:
 *     all but one from the demo upstream (20 events 50 ms apart), one from
 *     the echo upstream's 16 MiB stream read by a slow buyer (a small
 *     receive buffer, 16 KiB taken every 100 ms). The others finish on time
 *     while the slow one is still being read; the vault reports the slow
 *     call's upstream transfer paused (back-pressure reached libcurl, not a
 *     buffer), its resident memory stays bounded (the figures are printed),
 *     and when the slow buyer goes away the call is cancelled.
 *   - A stream cut by the upstream after its head ends, for the buyer, with
 *     an SSE "event: error" and no clean end of the body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "tests/scenario/harness.h"

#define STREAM_BODY \
	"{\"model\":\"demo-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define EVENTS 20
#define INTERVAL_MS 50
#define SLOW_STEP 16384
#define SLOW_EVERY_MS 100
#define BIG (16u << 20)

static struct h_env env;
static struct h_ipc as_ctl;
static pid_t echo_pid;
static int nstreams = 200;

/* A "bulk" provider on the echo upstream (its port in arg): its 16 MiB event stream. */
static void
add_bulk(cJSON *providers, void *arg)
{
	char url[64];
	cJSON *p = cJSON_CreateObject();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", *(int *)arg);
	cJSON_AddStringToObject(p, "upstream", url);
	cJSON_AddItemToObject(p, "auth", cJSON_Parse("{\"header\":\"Authorization\","
						     "\"prefix\":\"Bearer \"}"));
	cJSON_AddBoolToObject(p, "stream", 1);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(p, "routes"),
	    cJSON_CreateString("POST /v1/big-sse"));
	cJSON_AddItemToObject(providers, "bulk", p);
}

static void
demo_control(const char *json)
{
	assert_int_equal(h_demo_control(&env, json), 0);
}

static int
group_setup(void **state)
{
	static const enum ipc_role vault[] = {ROLE_VAULT};
	char path[400];
	int port;
	FILE *fp;

	(void)state;
	if (getenv("CN2_STREAMS") != NULL)
		nstreams = atoi(getenv("CN2_STREAMS"));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (nstreams < 2 || h_init(&env, NULL) != 0)
		return -1;
	port = h_free_port();
	if ((echo_pid = h_echo_start(port)) < 0 || h_catalogue_edit(&env, add_bulk, &port) != 0 ||
	    h_start_demo(&env) != 0 || h_up(&env) != 0 ||
	    h_ipc_open(&env, &as_ctl, ROLE_CTL, vault, 1) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/secrets/bulk.key", env.dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs("sk-bulk-echo-0123456789", fp);
	fclose(fp);
	if (h_keys_add(&env, "stream-seller", "bulk", path, "0.001") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/secrets/demo.key", env.dir);
	return h_keys_add(&env, "stream-seller", "demo", path, "0.001");
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	h_ipc_close(&as_ctl);
	h_stop_fake(echo_pid);
	down = h_down(&env);
	curl_global_cleanup();
	return down;
}

/* "Authorization: Payment …" for a fresh challenge of host's route (plain HTTP). */
static void
pay_header(const char *host, const char *path, const char *body, char *out, size_t cap)
{
	char hosth[128];
	const char *hs[] = {hosth, NULL};

	snprintf(hosth, sizeof(hosth), "Host: %s", host);
	assert_int_equal(h_pay_header(&env, path, hs, body, out, cap), 0);
}

/* The vault's health detail, and its memory from /proc. */
static void
vault_detail(char *out, size_t cap)
{
	struct h_reply r;

	assert_int_equal(h_ipc_call(&as_ctl, ROLE_VAULT, IPC_HEALTH, NULL, &r, 1, 5000), 1);
	assert_int_equal(r.type, IPC_HEALTH_REP);
	snprintf(out, cap, "%s", r.msg.health_rep.detail);
	h_replies_free(&r, 1);
}

static long
vault_kb(const char *field)
{
	char path[64], line[256];
	long kb = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)h_pid(&env, "vault"));
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, field, strlen(field)) == 0)
			kb = strtol(line + strlen(field) + 1, NULL, 10);
	fclose(fp);
	return kb;
}

struct strm {
	CURL *c;
	struct curl_slist *hs;
	int slow, done, paused;
	CURLcode rc;
	long status;
	size_t bytes, budget;
	int64_t t_first, t_end;
	char tail[32];
};

static size_t
strm_write(char *p, size_t size, size_t n, void *arg)
{
	struct strm *s = arg;
	size_t len = size * n;

	if (s->slow && len > s->budget) {
		s->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (s->slow)
		s->budget -= len;
	if (s->bytes == 0)
		s->t_first = h_now_ms();
	s->bytes += len;
	/* The last bytes seen, however the chunks fell. */
	for (size_t i = len > sizeof(s->tail) - 1 ? len - (sizeof(s->tail) - 1) : 0; i < len; i++) {
		memmove(s->tail, s->tail + 1, sizeof(s->tail) - 2);
		s->tail[sizeof(s->tail) - 2] = p[i];
	}
	return len;
}

/* A small receive buffer, so the slow buyer's socket fills quickly. */
static int
small_rcvbuf(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	int n = 8192;

	(void)arg;
	(void)purpose;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
	return CURL_SOCKOPT_OK;
}

static void
strm_setup(struct strm *s, const char *host, const char *path, const char *auth)
{
	char url[128], hosth[128];

	memset(s, 0, sizeof(*s));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", env.http_port, path);
	snprintf(hosth, sizeof(hosth), "Host: %s", host);
	s->hs = curl_slist_append(NULL, hosth);
	s->hs = curl_slist_append(s->hs, "Content-Type: application/json");
	s->hs = curl_slist_append(s->hs, auth);
	assert_non_null(s->c = curl_easy_init());
	curl_easy_setopt(s->c, CURLOPT_URL, url);
	curl_easy_setopt(s->c, CURLOPT_HTTPHEADER, s->hs);
	curl_easy_setopt(s->c, CURLOPT_POSTFIELDS, STREAM_BODY);
	curl_easy_setopt(s->c, CURLOPT_WRITEFUNCTION, strm_write);
	curl_easy_setopt(s->c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->c, CURLOPT_PRIVATE, s);
	curl_easy_setopt(s->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->c, CURLOPT_FORBID_REUSE, 1L);
}

static void
strm_collect(CURLM *m)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		struct strm *s;
		char *priv;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		s = (struct strm *)(void *)priv;
		s->done = 1;
		s->rc = msg->data.result;
		s->t_end = h_now_ms();
		curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
	}
}

static void
test_many_streams_one_slow(void **state)
{
	int n = nstreams, fast = n - 1, finished = 0, running;
	struct strm *ss = calloc((size_t)n, sizeof(*ss)), *slow = &ss[n - 1];
	int64_t t0, last_step, slowest = 0;
	long base_rss, hwm, rss;
	char auth[16384], detail[256];
	CURLM *m = curl_multi_init();

	(void)state;
	assert_non_null(ss);
	demo_control("{\"events\": 20, \"interval_ms\": 50, \"pad_bytes\": 512}");
	for (int i = 0; i < fast; i++) {
		pay_header("demo.localhost", "/v1/chat/completions", STREAM_BODY, auth, sizeof(auth));
		strm_setup(&ss[i], "demo.localhost", "/v1/chat/completions", auth);
	}
	pay_header("bulk.localhost", "/v1/big-sse", STREAM_BODY, auth, sizeof(auth));
	strm_setup(slow, "bulk.localhost", "/v1/big-sse", auth);
	slow->slow = 1;
	curl_easy_setopt(slow->c, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
	curl_easy_setopt(slow->c, CURLOPT_BUFFERSIZE, 16384L);
	base_rss = vault_kb("VmRSS:");
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n + 8);
	for (int i = 0; i < n; i++)
		curl_multi_add_handle(m, ss[i].c);
	t0 = last_step = h_now_ms();
	while (finished < fast && h_now_ms() - t0 < 60000) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 20, NULL);
		strm_collect(m);
		finished = 0;
		for (int i = 0; i < fast; i++)
			finished += ss[i].done;
		if (h_now_ms() - last_step >= SLOW_EVERY_MS) {
			last_step = h_now_ms();
			slow->budget += SLOW_STEP;
			curl_easy_pause(slow->c, CURLPAUSE_CONT);
		}
	}
	/* Every fast stream complete, in about its own time. */
	for (int i = 0; i < fast; i++) {
		if (!ss[i].done || ss[i].rc != CURLE_OK || ss[i].status != 200 ||
		    strstr(ss[i].tail, "[DONE]") == NULL)
			fail_msg("stream %d: done %d, rc %d, status %ld", i, ss[i].done, ss[i].rc,
			    ss[i].status);
		if (ss[i].t_end - ss[i].t_first > slowest)
			slowest = ss[i].t_end - ss[i].t_first;
	}
	/* The slow one is still going, far from its end, its upstream transfer paused. */
	assert_false(slow->done);
	assert_true(slow->bytes > 0 && slow->bytes < BIG / 4);
	vault_detail(detail, sizeof(detail));
	hwm = vault_kb("VmHWM:");
	rss = vault_kb("VmRSS:");
	print_message("# %d streams: the slowest fast one took %lld ms (nominal %d ms); the slow "
		      "buyer had %zu of %u bytes; vault RSS %ld KiB before, peak %ld KiB, now %ld "
		      "KiB; vault: %s\n",
	    n, (long long)slowest, EVENTS * INTERVAL_MS, slow->bytes, BIG, base_rss, hwm, rss,
	    detail);
	assert_true(slowest < EVENTS * INTERVAL_MS + 4000);
	assert_non_null(strstr(detail, "1 calls, 1 paused"));
#if defined(__SANITIZE_ADDRESS__)
	assert_true(hwm - base_rss < 512 * 1024);
#else
	assert_true(hwm - base_rss < 48 * 1024);
#endif
	/* The slow buyer goes away: the vault cancels the call. */
	curl_multi_remove_handle(m, slow->c);
	curl_easy_cleanup(slow->c);
	slow->c = NULL;
	for (int64_t end = h_now_ms() + 5000; h_now_ms() < end; usleep(50000)) {
		vault_detail(detail, sizeof(detail));
		if (strncmp(detail, "ok, 0 calls", 11) == 0)
			break;
	}
	assert_int_equal(strncmp(detail, "ok, 0 calls", 11), 0);
	for (int i = 0; i < n; i++) {
		if (ss[i].c != NULL) {
			curl_multi_remove_handle(m, ss[i].c);
			curl_easy_cleanup(ss[i].c);
		}
		curl_slist_free_all(ss[i].hs);
	}
	curl_multi_cleanup(m);
	free(ss);
	demo_control("{\"reset\": true}");
}

/* A stream cut after its head: an SSE error event, and no clean end. */
static void
test_cut_stream_error_event(void **state)
{
	char auth[16384];
	const char *hs[] = {"Host: demo.localhost", "Content-Type: application/json", auth, NULL};
	struct h_resp r;

	(void)state;
	demo_control("{\"events\": 5, \"interval_ms\": 50, \"cut_after\": 2}");
	pay_header("demo.localhost", "/v1/chat/completions", STREAM_BODY, auth, sizeof(auth));
	/* h_http says -1: the body did not end cleanly (checked below). */
	assert_int_equal(h_http(&env, "POST", "/v1/chat/completions", hs, STREAM_BODY,
			     strlen(STREAM_BODY), &r), -1);
	demo_control("{\"reset\": true}");
	assert_int_equal(r.status, 200);
	assert_non_null(strcasestr(r.headers, "content-type: text/event-stream"));
	assert_non_null(strstr(r.body, "chat.completion.chunk"));
	assert_non_null(strstr(r.body, "\n\nevent: error\ndata: {\"type\":"
					"\"https://cn2.ai/problems/upstream-cut\""));
	assert_null(strstr(r.body, "[DONE]"));
	/* The body did not end cleanly: no last chunk. */
	assert_int_equal(r.curl_code, CURLE_PARTIAL_FILE);
	h_resp_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_many_streams_one_slow),
	    cmocka_unit_test(test_cut_stream_error_event),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
