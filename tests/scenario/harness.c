/*
 * harness.c — see harness.h.
 */
#include "tests/scenario/harness.h"

#include "common/jwt.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const h_daemons[] = {"edge", "payments", "router", "vault", "ledger", "platform"};
const size_t h_ndaemons = sizeof(h_daemons) / sizeof(h_daemons[0]);

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
daemon_index(const char *name)
{
	for (size_t i = 0; i < h_ndaemons; i++)
		if (strcmp(h_daemons[i], name) == 0)
			return (int)i;
	return -1;
}

/*
 * A port for a test's listener. Ports the kernel hands out on its own
 * (bind to port 0, outgoing connections) come from ip_local_port_range,
 * 32768 and up here, so one picked that way could be given to another
 * process, or to this one's next bind(0), before its daemon listens on it:
 * that race made tests fail with "address already in use". So ports come
 * from 20000–31999 instead, where the kernel never picks: a block of 40 per
 * process (by pid) walked in order, each checked free by binding it.
 */
static int
free_port(void)
{
	static int next;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;

	if (next == 0)
		next = 20000 + (int)(getpid() % 300) * 40;
	for (int tries = 0; tries < 12000; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), port = next, ok;

		next = next >= 31999 ? 20000 : next + 1;
		if (fd < 0)
			return -1;
		sa.sin_port = htons((uint16_t)port);
		ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	return -1;
}

static int
find_bindir(struct h_env *e)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *p;

	if (n < 0)
		return -1;
	exe[n] = '\0';
	/* <build>/tests/scenario/test_x → <build>/bin */
	for (int i = 0; i < 3; i++)
		if ((p = strrchr(exe, '/')) != NULL)
			*p = '\0';
	return snprintf(e->bindir, sizeof(e->bindir), "%s/bin", exe) < (int)sizeof(e->bindir) ? 0 : -1;
}

static int
run_wait(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
h_init(struct h_env *e, const char *edge_extra)
{
	char cn2[300], hp[16], sp[16], dp[16], conf[400];
	FILE *fp;

	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/cn2-test-XXXXXX");
	if (mkdtemp(e->dir) == NULL || find_bindir(e) != 0)
		return -1;
	snprintf(e->logpath, sizeof(e->logpath), "%s/daemons.log", e->dir);
	e->http_port = free_port();
	e->https_port = free_port();
	e->demo_port = free_port();
	snprintf(cn2, sizeof(cn2), "%s/cn2", e->bindir);
	snprintf(hp, sizeof(hp), "%d", e->http_port);
	snprintf(sp, sizeof(sp), "%d", e->https_port);
	snprintf(dp, sizeof(dp), "%d", e->demo_port);
	{
		char a0[] = "init", a1[] = "--dir", a3[] = "--http-port", a5[] = "--https-port";
		char a7[] = "--demo-port";
		char *argv[] = {cn2, a0, a1, e->dir, a3, hp, a5, sp, a7, dp, NULL};

		if (run_wait(argv) != 0)
			return -1;
	}
	if (edge_extra == NULL)
		return 0;
	snprintf(conf, sizeof(conf), "%s/etc/edge.conf", e->dir);
	if ((fp = fopen(conf, "a")) == NULL)
		return -1;
	fputs(edge_extra, fp);
	return fclose(fp) == 0 ? 0 : -1;
}

/* A datagram socket for one daemon's READY=1. */
static int
notify_socket(struct h_env *e, const char *name, char *path, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (snprintf(path, cap, "%s/run/notify-%s", e->dir, name) >= (int)cap ||
	    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >= (int)sizeof(sa.sun_path))
		return -1;
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
wait_ready(int fd, int ms)
{
	int64_t end = now_ms() + ms;
	char buf[256];

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int left = (int)(end - now_ms());
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0)
			return -1;
		buf[n] = '\0';
		if (strstr(buf, "READY=1") != NULL)
			return 0;
	}
}

int
h_start(struct h_env *e, const char *name)
{
	char path[400], exe[400], conf[400], env[420];
	int i = daemon_index(name), fd, rc;
	pid_t pid;

	if (i < 0 || (fd = notify_socket(e, name, path, sizeof(path))) < 0)
		return -1;
	snprintf(exe, sizeof(exe), "%s/cn2-%s", e->bindir, name);
	snprintf(conf, sizeof(conf), "%s/etc/%s.conf", e->dir, name);
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", path);
	if ((pid = fork()) == 0) {
		int log = open(e->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);

		dup2(log, STDERR_FILENO);
		putenv(env);
		execl(exe, exe, "-f", conf, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		close(fd);
		return -1;
	}
	e->pid[i] = pid;
	rc = wait_ready(fd, 10000);
	close(fd);
	unlink(path);
	return rc;
}

int
h_up(struct h_env *e)
{
	for (size_t i = 0; i < h_ndaemons; i++)
		if (h_start(e, h_daemons[i]) != 0)
			return -1;
	return h_wait_health(e, 200, 5000);
}

pid_t
h_pid(struct h_env *e, const char *name)
{
	int i = daemon_index(name);

	return i < 0 ? -1 : e->pid[i];
}

/* Reap pid within ms; 0 if it exited. */
static int
reap(pid_t pid, int ms)
{
	int64_t end = now_ms() + ms;
	int status;

	while (now_ms() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return 0;
		usleep(10000);
	}
	return -1;
}

int
h_signal(struct h_env *e, const char *name, int sig)
{
	int i = daemon_index(name);

	if (i < 0 || e->pid[i] <= 0 || kill(e->pid[i], sig) != 0)
		return -1;
	if (reap(e->pid[i], 5000) != 0) {
		kill(e->pid[i], SIGKILL);
		reap(e->pid[i], 1000);
	}
	e->pid[i] = 0;
	return 0;
}

/* SIGTERM, then wait; SIGKILL after 5 s. The exit status, or -1 if killed or gone. */
static int
stop_one(pid_t pid)
{
	int64_t end = now_ms() + 5000;
	int status;

	kill(pid, SIGTERM);
	while (now_ms() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (r < 0)
			return -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	reap(pid, 1000);
	return -1;
}

int
h_down(struct h_env *e)
{
	char cmd[400];
	int bad = 0;

	if (e->demo_pid > 0)
		stop_one(e->demo_pid);
	e->demo_pid = 0;
	for (size_t i = 0; i < h_ndaemons; i++) {
		int st;

		if (e->pid[i] <= 0)
			continue;
		if ((st = stop_one(e->pid[i])) != 0) {
			fprintf(stderr, "h_down: cn2-%s exited with %d on SIGTERM\n", h_daemons[i], st);
			bad = 1;
		}
		e->pid[i] = 0;
	}
	if (h_log_contains(e, "ERROR: AddressSanitizer") || h_log_contains(e, "runtime error:") ||
	    h_log_contains(e, "ERROR: LeakSanitizer")) {
		fprintf(stderr, "h_down: a sanitizer reported in %s\n", e->logpath);
		bad = 1;
	}
	if (bad)
		fprintf(stderr, "h_down: keeping %s\n", e->dir);
	else if (getenv("CN2_KEEP_TEST_DIR") == NULL && strncmp(e->dir, "/tmp/cn2-test-", 14) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", e->dir);
	}
	return bad ? -1 : 0;
}

/* HTTP through libcurl. */

struct sink {
	char *p;
	size_t len;
};

static size_t
sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;
	char *p = realloc(s->p, s->len + add + 1);

	if (p == NULL)
		return 0;
	memcpy(p + s->len, data, add);
	s->p = p;
	s->len += add;
	s->p[s->len] = '\0';
	return add;
}

/* Keep only the last response's header block (after a 100 Continue, say). */
static size_t
head_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	if (size * n > 5 && strncmp(data, "HTTP/", 5) == 0)
		s->len = 0;
	return sink_write(data, size, n, arg);
}

static void
h_curl_setup(CURL *c, struct h_env *e, const char *url, char *full, size_t cap,
    struct curl_slist **resolve)
{
	char cert[400], entry[128];
	const char *host, *colon;

	if (url[0] == '/')
		snprintf(full, cap, "http://127.0.0.1:%d%s", e->http_port, url);
	else
		snprintf(full, cap, "%s", url);
	curl_easy_setopt(c, CURLOPT_URL, full);
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", e->dir);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (strncmp(full, "https://", 8) == 0 && (host = full + 8) &&
	    (colon = strchr(host, ':')) != NULL) {
		snprintf(entry, sizeof(entry), "%.*s:%d:127.0.0.1", (int)(colon - host), host,
		    e->https_port);
		*resolve = curl_slist_append(NULL, entry);
		curl_easy_setopt(c, CURLOPT_RESOLVE, *resolve);
	}
}

int
h_http(struct h_env *e, const char *method, const char *url, const char *const *headers,
    const char *body, size_t bodylen, struct h_resp *r)
{
	struct sink b = {NULL, 0}, h = {NULL, 0};
	struct curl_slist *hl = NULL, *resolve = NULL;
	char full[1024];
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	if (c == NULL)
		return -1;
	h_curl_setup(c, e, url, full, sizeof(full), &resolve);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)bodylen);
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, head_write);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	r->curl_code = (int)curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	r->body = b.p != NULL ? b.p : strdup("");
	r->len = b.len;
	r->headers = h.p != NULL ? h.p : strdup("");
	curl_slist_free_all(hl);
	curl_slist_free_all(resolve);
	curl_easy_cleanup(c);
	return r->curl_code == 0 ? 0 : -1;
}

void
h_resp_free(struct h_resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

int
h_wait_health(struct h_env *e, long want, int ms)
{
	int64_t end = now_ms() + ms;
	struct h_resp r;

	do {
		long status;

		h_http(e, "GET", "/healthz", NULL, NULL, 0, &r);
		status = r.status;
		h_resp_free(&r);
		if (status == want)
			return 0;
		usleep(50000);
	} while (now_ms() < end);
	return -1;
}

char *
h_raw(struct h_env *e, const char *req, size_t len, size_t *outlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->http_port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sink s = {NULL, 0};
	char buf[4096];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int64_t end = now_ms() + 3000;

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, req, len) != (ssize_t)len) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, (int)(end - now_ms())) <= 0 || (n = read(fd, buf, sizeof(buf))) <= 0)
			break;
		sink_write(buf, 1, (size_t)n, &s);
	}
	close(fd);
	*outlen = s.len;
	return s.p != NULL ? s.p : strdup("");
}

int
h_log_contains(struct h_env *e, const char *s)
{
	FILE *fp = fopen(e->logpath, "r");
	char line[4096];
	int found = 0;

	if (fp == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		found = strstr(line, s) != NULL;
	fclose(fp);
	return found;
}

/* IPC as a peer. */

static void
h_ipc_no_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	(void)arg;
	(void)req;
	(void)type;
	(void)msg;
}

int
h_ipc_open(struct h_env *e, struct h_ipc *h, enum ipc_role self, const enum ipc_role *dial,
    size_t ndial)
{
	struct ipc_config c;
	char run[300], err[256];

	memset(&c, 0, sizeof(c));
	snprintf(run, sizeof(run), "%s/run", e->dir);
	if (uv_loop_init(&h->loop) != 0)
		return -1;
	c.loop = &h->loop;
	c.self = self;
	c.runtime_dir = run;
	c.dial = dial;
	c.ndial = ndial;
	c.on_request = h_ipc_no_request;
	if ((h->ipc = ipc_start(&c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "h_ipc_open: %s\n", err);
		return -1;
	}
	return 0;
}

void
h_ipc_close(struct h_ipc *h)
{
	ipc_stop(h->ipc);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	uv_loop_close(&h->loop);
}

static void
h_ipc_spin(struct h_ipc *h, int ms, int (*done)(void *), void *arg)
{
	int64_t end = now_ms() + ms;

	while (!done(arg) && now_ms() < end) {
		uv_run(&h->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

struct link_wait {
	struct h_ipc *h;
	enum ipc_role peer;
};

static int
link_is_up(void *arg)
{
	struct link_wait *w = arg;

	return ipc_link_up(w->h->ipc, w->peer);
}

int
h_ipc_wait_link(struct h_ipc *h, enum ipc_role peer, int ms)
{
	struct link_wait w = {h, peer};

	h_ipc_spin(h, ms, link_is_up, &w);
	return link_is_up(&w) ? 0 : -1;
}

struct call {
	struct h_reply *out;
	size_t max, n;
	int done;
};

static void
h_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct call *c = arg;
	struct h_reply *r;
	size_t len;

	if (status != 0 || (ipc_type_flags(type) & IPC_MF_FINAL))
		c->done = 1;
	if (c->n == c->max)
		return;
	r = &c->out[c->n++];
	memset(r, 0, sizeof(*r));
	r->status = status;
	r->type = type;
	if (status != 0 || (len = ipc_frame_len(type, msg)) == 0)
		return;
	if ((r->frame = malloc(len)) != NULL) {
		struct ipc_hdr hdr;
		const char *why;

		ipc_encode(type, 0, msg, r->frame, len);
		ipc_decode(r->frame, len, &hdr, &r->msg, &why);
	}
}

static int
call_done(void *arg)
{
	return ((struct call *)arg)->done;
}

size_t
h_ipc_call(struct h_ipc *h, enum ipc_role to, uint16_t type, const void *msg,
    struct h_reply *out, size_t max, int timeout_ms)
{
	struct call c = {out, max, 0, 0};
	uint64_t id;

	if (h_ipc_wait_link(h, to, 5000) != 0)
		return 0;
	/* An idle loop's clock is stale: the request's deadline must start now. */
	uv_update_time(&h->loop);
	if ((id = ipc_request(h->ipc, to, type, msg, (uint32_t)timeout_ms, h_on_reply, &c)) == 0)
		return 0;
	h_ipc_spin(h, timeout_ms + 1000, call_done, &c);
	if (!c.done)
		ipc_forget(h->ipc, id);
	return c.n;
}

void
h_replies_free(struct h_reply *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].frame);
		r[i].frame = NULL;
	}
}

char *
h_read(struct h_env *e, const char *rel, size_t *len)
{
	char path[512];
	struct sink s = {NULL, 0};
	char buf[4096];
	size_t n;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", e->dir, rel);
	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sink_write(buf, 1, n, &s);
	fclose(fp);
	if (len != NULL)
		*len = s.len;
	return s.p != NULL ? s.p : strdup("");
}

/* Can we connect to port on loopback? */
static int
port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int
h_start_demo(struct h_env *e)
{
	char exe[400], listen[64], key[400];
	int64_t end = now_ms() + 5000;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/cn2-demo-upstream", e->bindir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", e->demo_port);
	snprintf(key, sizeof(key), "%s/secrets/demo.key", e->dir);
	if ((pid = fork()) == 0) {
		int log = open(e->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);

		dup2(log, STDERR_FILENO);
		execl(exe, exe, "-l", listen, "-k", key, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	e->demo_pid = pid;
	while (now_ms() < end) {
		if (port_open(e->demo_port))
			return 0;
		usleep(20000);
	}
	return -1;
}

int
h_free_port(void)
{
	return free_port();
}

/* tests/fakes/<name>, found upwards from the build's bin directory. */
static int
fake_script(struct h_env *e, const char *name, char *out, size_t cap)
{
	char dir[256], *slash;

	snprintf(dir, sizeof(dir), "%s", e->bindir);
	for (int i = 0; i < 5; i++) {
		if (snprintf(out, cap, "%s/tests/fakes/%s", dir, name) < (int)cap &&
		    access(out, R_OK) == 0)
			return 0;
		if ((slash = strrchr(dir, '/')) == NULL)
			break;
		*slash = '\0';
	}
	return -1;
}

/* node tests/fakes/<name> [service] --port port extra…, up and accepting; its pid or -1. */
static pid_t
start_node(struct h_env *e, const char *name, const char *service, int port,
    const char *const *extra)
{
	char script[400], ps[16];
	const char *argv[24];
	size_t n = 0;
	int64_t end = now_ms() + 10000;
	pid_t pid;

	if (fake_script(e, name, script, sizeof(script)) != 0)
		return -1;
	snprintf(ps, sizeof(ps), "%d", port);
	argv[n++] = "node";
	argv[n++] = script;
	if (service != NULL)
		argv[n++] = service;
	argv[n++] = "--port";
	argv[n++] = ps;
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 22; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if ((pid = fork()) == 0) {
		int log = open(e->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		int null = open("/dev/null", O_WRONLY);

		dup2(log, STDERR_FILENO);
		dup2(null, STDOUT_FILENO);
		execvp("node", (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	/* A fake that exits at once (a bad argument) is not waited for the full time. */
	while (now_ms() < end) {
		if (port_open(port))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

pid_t
h_start_fake(struct h_env *e, const char *service, int port, const char *const *extra)
{
	return start_node(e, "fake.mjs", service, port, extra);
}

pid_t
h_start_node_fake(struct h_env *e, const char *script, int port, const char *const *extra)
{
	return start_node(e, script, NULL, port, extra);
}

void
h_stop_fake(pid_t pid)
{
	if (pid > 0)
		stop_one(pid);
}

int
h_bearer(struct h_env *e, const char *seller, char *out, size_t cap)
{
	size_t len;
	char *key = h_read(e, "secrets/jwt.key", &len), *tok;
	struct jwt_claims c;

	if (key == NULL)
		return -1;
	if (len > 0 && key[len - 1] == '\n')
		len--;
	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", seller);
	snprintf(c.aud, sizeof(c.aud), "authenticated");
	c.exp = (int64_t)time(NULL) + 3600;
	tok = jwt_sign(&c, (const uint8_t *)key, len);
	free(key);
	if (tok == NULL)
		return -1;
	snprintf(out, cap, "Authorization: Bearer %s", tok);
	free(tok);
	return 0;
}

int
h_conf_append(struct h_env *e, const char *daemon, const char *text)
{
	char conf[400];
	FILE *fp;

	snprintf(conf, sizeof(conf), "%s/etc/%s.conf", e->dir, daemon);
	if ((fp = fopen(conf, "a")) == NULL)
		return -1;
	fputs(text, fp);
	return fclose(fp) == 0 ? 0 : -1;
}

/* secrets/demo<i>.key: 64 hex digits from /dev/urandom, mode 0600. */
static int
demo_key_write(struct h_env *e, int i, char *path, size_t cap)
{
	unsigned char raw[32];
	char hex[65];
	int fd, rnd = open("/dev/urandom", O_RDONLY), ok;

	ok = rnd >= 0 && read(rnd, raw, sizeof(raw)) == (ssize_t)sizeof(raw);
	if (rnd >= 0)
		close(rnd);
	for (size_t j = 0; ok && j < sizeof(raw); j++)
		snprintf(hex + 2 * j, 3, "%02x", raw[j]);
	snprintf(path, cap, "%s/secrets/demo%d.key", e->dir, i);
	if (!ok || (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		return -1;
	ok = write(fd, hex, 64) == 64;
	return close(fd) == 0 && ok ? 0 : -1;
}

int
h_start_demo_keys(struct h_env *e, int n)
{
	char exe[400], listen[64], keys[8][400];
	const char *argv[24];
	size_t a = 0;
	pid_t pid;

	if (n < 1 || n > 8)
		return -1;
	snprintf(exe, sizeof(exe), "%s/cn2-demo-upstream", e->bindir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", e->demo_port);
	snprintf(keys[0], sizeof(keys[0]), "%s/secrets/demo.key", e->dir);
	for (int i = 1; i < n; i++)
		if (demo_key_write(e, i, keys[i], sizeof(keys[i])) != 0)
			return -1;
	argv[a++] = exe;
	argv[a++] = "-l";
	argv[a++] = listen;
	for (int i = 0; i < n; i++) {
		argv[a++] = "-k";
		argv[a++] = keys[i];
	}
	argv[a] = NULL;
	if ((pid = fork()) == 0) {
		int log = open(e->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);

		dup2(log, STDERR_FILENO);
		execv(exe, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	e->demo_pid = pid;
	for (int tries = 250; tries > 0 && !port_open(e->demo_port); tries--)
		usleep(20000);
	return port_open(e->demo_port) ? 0 : -1;
}

static int
first_int(void *arg, int n, char **v, char **names)
{
	(void)names;
	*(long long *)arg = n > 0 && v[0] != NULL ? strtoll(v[0], NULL, 10) : -1;
	return 1; /* the first row is all we want: stop there */
}

long long
h_db_int(struct h_env *e, const char *daemon, const char *sql)
{
	char path[400];
	sqlite3 *db = NULL;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/db/%s.db", e->dir, daemon);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 5000) == SQLITE_OK)
		sqlite3_exec(db, sql, first_int, &v, NULL);
	sqlite3_close(db);
	return v;
}

int64_t
h_now_ms(void)
{
	return now_ms();
}

int
h_demo_control(struct h_env *e, const char *json)
{
	char url[128];
	struct h_resp r;
	int ok;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_demo/control", e->demo_port);
	if (h_http(e, "POST", url, NULL, json, strlen(json), &r) != 0) {
		h_resp_free(&r);
		return -1;
	}
	ok = r.status == 200;
	h_resp_free(&r);
	return ok ? 0 : -1;
}

struct ipc *
h_ipc_listen(struct h_env *e, uv_loop_t *loop, enum ipc_role self,
    const struct ipc_peer_rule *rules, size_t nrules, ipc_request_fn cb, void *arg)
{
	struct ipc_config c;
	char run[300], err[256];
	struct ipc *ipc;

	memset(&c, 0, sizeof(c));
	snprintf(run, sizeof(run), "%s/run", e->dir);
	c.loop = loop;
	c.self = self;
	c.runtime_dir = run;
	c.accept = rules;
	c.naccept = nrules;
	for (int r = 0; r < ROLE_MAX; r++)
		c.role_uid[r] = getuid();
	c.on_request = cb;
	c.arg = arg;
	if ((ipc = ipc_start(&c, err, sizeof(err))) == NULL)
		fprintf(stderr, "fake %s: %s\n", ipc_role_name(self), err);
	return ipc;
}
