/*
 * up.c — `cn2 up`: a small foreground supervisor for local use.
 *
 * It runs `cn2 init` if needed, starts every daemon with its own
 * NOTIFY_SOCKET (so it hears each one's READY=1 the way systemd would), waits
 * until all are ready, says where the edge listens, and stops them all on
 * Ctrl-C or SIGTERM. It restarts nothing: if a daemon dies, it says so and
 * stops the others, with a non-zero exit status.
 */
#include "cli/cli.h"
#include "cli/fetch.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define MAX_DAEMONS 8
#define READY_TIMEOUT_MS 15000
#define STOP_GRACE_MS 5000

extern char **environ;

struct child {
	const char *name; /* "router" runs cn2-router; "demo-upstream" cn2-demo-upstream */
	uv_process_t proc;
	uv_poll_t poll;
	int fd;
	int port; /* the demo upstream is ready when this port accepts; daemons say READY=1 */
	int running, ready;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static struct {
	uv_loop_t *loop;
	struct cli_paths paths;
	struct child kids[MAX_DAEMONS];
	size_t nkids, nready;
	uv_signal_t sigint, sigterm;
	uv_timer_t timer, probe;
	int stopping;
	int status;
} up;

static void up_stop(int status);
static void up_ready(void);

/* Readiness: one datagram socket per daemon, read from the loop. */

static void
on_notify(uv_poll_t *p, int status, int events)
{
	struct child *k = p->data;
	char buf[512];
	ssize_t n;

	(void)events;
	if (status < 0 || (n = recv(k->fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return;
	buf[n] = '\0';
	if (!k->ready && (strcmp(buf, "READY=1") == 0 || strstr(buf, "READY=1\n") != NULL)) {
		k->ready = 1;
		up_ready();
	}
}

static int
notify_open(struct child *k)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(k->sock, sizeof(k->sock), "%s/notify-%s.sock", up.paths.run, k->name);

	if (n < 0 || (size_t)n >= sizeof(k->sock)) {
		fprintf(stderr, "cn2 up: %s: path too long for a socket\n", up.paths.run);
		return -1;
	}
	memcpy(sa.sun_path, k->sock, (size_t)n + 1);
	unlink(k->sock);
	if ((k->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(k->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "cn2 up: notify socket %s: %s\n", k->sock, strerror(errno));
		return -1;
	}
	uv_poll_init(up.loop, &k->poll, k->fd);
	k->poll.data = k;
	return uv_poll_start(&k->poll, UV_READABLE, on_notify);
}

/* Children. */

static void
on_exit_child(uv_process_t *p, int64_t status, int sig)
{
	struct child *k = p->data;

	k->running = 0;
	uv_close((uv_handle_t *)p, NULL);
	if (!up.stopping) {
		if (sig != 0)
			fprintf(stderr, "cn2: cn2-%s was killed by signal %d; stopping everything\n",
			    k->name, sig);
		else
			fprintf(stderr, "cn2: cn2-%s exited with status %lld; stopping everything\n",
			    k->name, (long long)status);
		up_stop(1);
		return;
	}
	for (size_t i = 0; i < up.nkids; i++)
		if (up.kids[i].running)
			return;
	uv_stop(up.loop);
}

static int
child_spawn(struct child *k)
{
	char exe[400], conf[400], env_notify[160], flag[] = "-f", lflag[] = "-l", kflag[] = "-k";
	char listen[64];
	char *args[] = {exe, flag, conf, NULL};
	char *demo_args[] = {exe, lflag, listen, kflag, conf, NULL};
	uv_process_options_t o;
	uv_stdio_container_t stdio[3];
	char **env;
	size_t n = 0;
	int rc;

	snprintf(exe, sizeof(exe), "%s/cn2-%s", up.paths.bindir, k->name);
	if (k->port != 0) {
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", k->port);
		snprintf(conf, sizeof(conf), "%s/demo.key", up.paths.secrets);
	} else {
		snprintf(conf, sizeof(conf), "%s/%s.conf", up.paths.etc, k->name);
	}
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", k->sock);
	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 2, sizeof(*env))) == NULL)
		return -1;
	for (size_t i = 0, j = 0; i < n; i++)
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
			env[j++] = environ[i];
	for (n = 0; env[n] != NULL; n++)
		;
	env[n] = env_notify;
	memset(&o, 0, sizeof(o));
	for (int i = 0; i < 3; i++) {
		stdio[i].flags = UV_INHERIT_FD;
		stdio[i].data.fd = i;
	}
	o.file = exe;
	o.args = k->port != 0 ? demo_args : args;
	o.env = env;
	o.exit_cb = on_exit_child;
	o.stdio = stdio;
	o.stdio_count = 3;
	k->proc.data = k;
	rc = uv_spawn(up.loop, &k->proc, &o);
	free(env);
	if (rc != 0) {
		fprintf(stderr, "cn2 up: cannot start %s: %s\n", exe, uv_strerror(rc));
		return -1;
	}
	k->running = 1;
	return 0;
}

/* Stopping: TERM to every child, KILL to any still there after the grace period. */

static void
on_grace_over(uv_timer_t *t)
{
	(void)t;
	for (size_t i = 0; i < up.nkids; i++)
		if (up.kids[i].running) {
			fprintf(stderr, "cn2: cn2-%s did not stop in time; killing it\n",
			    up.kids[i].name);
			uv_process_kill(&up.kids[i].proc, SIGKILL);
		}
}

static void
up_stop(int status)
{
	int any = 0;

	if (up.stopping)
		return;
	up.stopping = 1;
	up.status = status;
	for (size_t i = 0; i < up.nkids; i++)
		if (up.kids[i].running) {
			uv_process_kill(&up.kids[i].proc, SIGTERM);
			any = 1;
		}
	uv_close((uv_handle_t *)&up.sigint, NULL);
	uv_close((uv_handle_t *)&up.sigterm, NULL);
	uv_timer_stop(&up.probe);
	if (!any) {
		uv_stop(up.loop);
		return;
	}
	uv_timer_start(&up.timer, on_grace_over, STOP_GRACE_MS, 0);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	fprintf(stderr, "\ncn2: %s: stopping every daemon\n", signum == SIGINT ? "Ctrl-C" : "SIGTERM");
	up_stop(0);
}

static void
on_ready_timeout(uv_timer_t *t)
{
	(void)t;
	for (size_t i = 0; i < up.nkids; i++)
		if (!up.kids[i].ready)
			fprintf(stderr, "cn2: cn2-%s did not become ready in %d s\n",
			    up.kids[i].name, READY_TIMEOUT_MS / 1000);
	up_stop(1);
}

/* "listen_https = 127.0.0.1:8443" from the edge's configuration, for the banner. */
static void
edge_listen(const char *key, char *out, size_t cap)
{
	char path[400], line[512];
	size_t kl = strlen(key);
	FILE *fp;

	*out = '\0';
	snprintf(path, sizeof(path), "%s/edge.conf", up.paths.etc);
	if ((fp = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *v = line + kl;

		if (strncmp(line, key, kl) != 0 || (*v != ' ' && *v != '='))
			continue;
		v += strspn(v, " =");
		v[strcspn(v, "\r\n")] = '\0';
		snprintf(out, cap, "%s", v);
	}
	fclose(fp);
}

/* The demo upstream's port, from the provider catalogue's demo entry. */
static int
demo_port(void)
{
	char path[400], line[512];
	const char *p;
	FILE *fp;
	int port = 0;

	snprintf(path, sizeof(path), "%s/providers.json", up.paths.etc);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while (port == 0 && fgets(line, sizeof(line), fp) != NULL)
		if ((p = strstr(line, "\"http://127.0.0.1:")) != NULL)
			port = atoi(p + 18);
	fclose(fp);
	return port;
}

static int
port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void
on_probe(uv_timer_t *t)
{
	(void)t;
	for (size_t i = 0; i < up.nkids; i++) {
		struct child *k = &up.kids[i];

		if (k->port != 0 && !k->ready && k->running && port_open(k->port)) {
			k->ready = 1;
			uv_timer_stop(&up.probe);
			up_ready();
		}
	}
}

static void banner(void);

/*
 * Each daemon says READY=1 once it serves; its links to the others come up
 * a moment later. Wait (bounded) until the edge reports every daemon ready.
 */
static int
wait_healthy(const char *base, const char *cacert)
{
	char url[160];
	struct fetch_req req;
	struct fetch_resp r;

	snprintf(url, sizeof(url), "%s/healthz", base);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.cacert = cacert;
	for (int i = 0; i < 100; i++) {
		int ok = fetch(&req, &r) == 0 && r.status == 200;

		fetch_free(&r);
		if (ok)
			return 0;
		usleep(100000);
	}
	return -1;
}

/*
 * First start: list the demo seller key for the demo provider through the
 * platform API, as a seller would, so a paid request works at once.
 */
static void
seed_demo(void)
{
	char marker[400], key[400], url[128], https[80];
	FILE *fp;

	snprintf(marker, sizeof(marker), "%s/demo-listed", up.paths.db);
	if (access(marker, F_OK) == 0)
		return;
	edge_listen("listen_https", https, sizeof(https));
	if (*https == '\0' || strrchr(https, ':') == NULL)
		return;
	snprintf(url, sizeof(url), "https://localhost:%s", strrchr(https, ':') + 1);
	snprintf(key, sizeof(key), "%s/demo.key", up.paths.secrets);
	snprintf(marker, sizeof(marker), "%s/cert.pem", up.paths.tls);
	if (wait_healthy(url, marker) != 0) {
		fprintf(stderr, "cn2: /healthz did not report every daemon ready in 10 s\n");
		return;
	}
	snprintf(marker, sizeof(marker), "%s/demo-listed", up.paths.db);
	printf("cn2: listing the demo seller's key for the demo provider (0.001 USD a request)\n");
	fflush(stdout);
	/*
	 * /healthz says every daemon serves; their links to each other (platform
	 * to vault, for the vault's public key) may still be coming up: retry
	 * for a few seconds before giving up.
	 */
	for (int i = 0;; i++) {
		if (cli_keys_add(up.paths.dir, url, NULL, "demo-seller", "demo", key, "0.001") == 0)
			break;
		if (i == 20) {
			fprintf(stderr,
			    "cn2: could not list the demo key; paid demo requests will get 503\n");
			return;
		}
		usleep(250000);
	}
	if ((fp = fopen(marker, "w")) != NULL)
		fclose(fp);
}

static void
up_ready(void)
{
	if (++up.nready != up.nkids || up.stopping)
		return;
	uv_timer_stop(&up.timer);
	seed_demo();
	banner();
}

static void
banner(void)
{
	char http[80], https[80];

	edge_listen("listen_http", http, sizeof(http));
	edge_listen("listen_https", https, sizeof(https));
	printf("cn2: all %zu daemons and the demo upstream are ready; state in %s\n",
	    up.nkids - 1, up.paths.dir);
	if (*https)
		printf("cn2: edge listens on https://%s (try: curl --cacert %s/cert.pem "
		       "https://localhost:%s/healthz)\n",
		    https, up.paths.tls, strrchr(https, ':') + 1);
	if (*http)
		printf("cn2: edge listens on http://%s\n", http);
	if (*https)
		printf("cn2: try a paid request:\n  %s/cn2 pay --dir %s "
		       "https://demo.localhost:%s/v1/chat/completions \\\n"
		       "    -H 'Content-Type: application/json' "
		       "-d '{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'\n",
		    up.paths.bindir, up.paths.dir, strrchr(https, ':') + 1);
	printf("cn2: Ctrl-C stops everything\n");
	fflush(stdout);
}

static int
up_parse(int argc, char **argv, const char **dir, struct cli_init_opts *o)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"http-port", required_argument, NULL, 'p'},
	    {"https-port", required_argument, NULL, 's'},
	    {"demo-port", required_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		if (ch == 'd') {
			*dir = optarg;
		} else if (ch == 'p' || ch == 's' || ch == 'u') {
			int port = atoi(optarg);

			if (port <= 0 || port > 65535)
				return -1;
			*(ch == 'p' ? &o->http_port : ch == 's' ? &o->https_port : &o->demo_port) = port;
		} else if (ch == 'h') {
			printf("usage: cn2 up [--dir DIR] [--http-port N] [--https-port N] "
			       "[--demo-port N]\n"
			       "Run every cn2 daemon in the foreground with the configuration in\n"
			       "DIR (default ./var, created by `cn2 init` on first start). Waits\n"
			       "for each to be ready, prints where the edge listens, and stops\n"
			       "them all on Ctrl-C. A daemon that dies stops the others: nothing\n"
			       "is restarted behind your back. The ports are used only when DIR is\n"
			       "first created (see cn2 init).\n");
			exit(0);
		} else {
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

int
cmd_up(int argc, char **argv)
{
	struct cli_init_opts o;
	const char *dir = "var";
	char err[512];

	if (up_parse(argc, argv, &dir, &o) != 0)
		return 2;
	if (cli_paths(dir, &up.paths, err, sizeof(err)) != 0) {
		fprintf(stderr, "cn2 up: %s\n", err);
		return 1;
	}
	if (cli_init(&up.paths, &o) != 0)
		return 1;
	up.loop = uv_default_loop();
	uv_signal_init(up.loop, &up.sigint);
	uv_signal_init(up.loop, &up.sigterm);
	uv_signal_start(&up.sigint, on_signal, SIGINT);
	uv_signal_start(&up.sigterm, on_signal, SIGTERM);
	uv_timer_init(up.loop, &up.timer);
	uv_timer_start(&up.timer, on_ready_timeout, READY_TIMEOUT_MS, 0);
	uv_timer_init(up.loop, &up.probe);
	uv_timer_start(&up.probe, on_probe, 50, 50);
	up.kids[0].name = "demo-upstream";
	up.kids[0].port = demo_port();
	up.nkids = 1;
	if (up.kids[0].port == 0 || child_spawn(&up.kids[0]) != 0) {
		fprintf(stderr, "cn2 up: cannot start the demo upstream (see %s/providers.json)\n",
		    up.paths.etc);
		up_stop(1);
	}
	for (size_t i = 0; i < cli_ndaemons && up.nkids < MAX_DAEMONS && !up.stopping; i++) {
		struct child *k = &up.kids[up.nkids++];

		k->name = cli_daemons[i];
		if (notify_open(k) != 0 || child_spawn(k) != 0) {
			up_stop(1);
			break;
		}
	}
	uv_run(up.loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < up.nkids; i++)
		if (up.kids[i].sock[0] != '\0')
			unlink(up.kids[i].sock);
	return up.status;
}
