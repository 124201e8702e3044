/*
 * echo.c — an upstream for tests that says what it received (harness.h,
 * h_echo_start), so a test can see exactly what cn2-vault sent upstream:
 * which credential it injected and which buyer headers it dropped.
 *
 * A forked child, one thread per connection, blocking sockets; each
 * connection serves one request. Test code only: it trusts its input to be
 * small, but bounds it anyway.
 */
#include "tests/scenario/harness.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ECHO_HEAD_MAX 65536

static int
echo_write(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read the head (to the blank line) and the Content-Length body. Returns the body length. */
static long
echo_read(int fd, char *buf, size_t cap, size_t *headlen)
{
	size_t n = 0;
	char *end = NULL, *cl;
	long body = 0;

	while (end == NULL && n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (end == NULL)
		return -1;
	*headlen = (size_t)(end - buf) + 2;
	if ((cl = strcasestr(buf, "\r\ncontent-length:")) != NULL && cl < end)
		body = strtol(cl + 17, NULL, 10);
	for (size_t have = n - *headlen - 2; (long)have < body;) {
		char sink[4096];
		ssize_t r = read(fd, sink, sizeof(sink));

		if (r <= 0)
			break;
		have += (size_t)r;
	}
	return body;
}

static void
echo_sse(int fd, const char *head)
{
	const char *auth = strcasestr(head, "\r\nauthorization: ");
	char who[128] = "none", ev[256];
	static const char h[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				"Connection: close\r\n\r\n";

	if (auth != NULL)
		snprintf(who, sizeof(who), "%.*s", (int)strcspn(auth + 17, "\r"), auth + 17);
	if (echo_write(fd, h, sizeof(h) - 1) != 0)
		return;
	for (int i = 0; i < 10; i++) {
		struct timespec ts = {0, 150 * 1000000L};
		int n = snprintf(ev, sizeof(ev), "data: {\"n\":%d,\"auth\":\"%s\"}\n\n", i, who);

		if (echo_write(fd, ev, (size_t)n) != 0)
			return;
		nanosleep(&ts, NULL);
	}
	echo_write(fd, "data: [DONE]\n\n", 14);
}

/* /big-sse: ECHO_BIG bytes of events as fast as the reader takes them. */
#define ECHO_BIG (16u << 20)

static void
echo_big(int fd)
{
	static const char h[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				"Connection: close\r\n\r\n";
	char ev[8192];

	memset(ev, 'x', sizeof(ev));
	memcpy(ev, "data: ", 6);
	memcpy(ev + sizeof(ev) - 2, "\n\n", 2);
	if (echo_write(fd, h, sizeof(h) - 1) != 0)
		return;
	for (size_t sent = 0; sent < ECHO_BIG; sent += sizeof(ev))
		if (echo_write(fd, ev, sizeof(ev)) != 0)
			return;
	echo_write(fd, "data: [DONE]\n\n", 14);
}

static void *
echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(ECHO_HEAD_MAX), *text = NULL, head[128];
	size_t headlen = 0;
	long body = buf != NULL ? echo_read(fd, buf, ECHO_HEAD_MAX, &headlen) : -1;
	cJSON *o;

	if (body >= 0 && strstr(buf, "/slow-sse") != NULL && strstr(buf, "/slow-sse") < buf + headlen)
		echo_sse(fd, buf);
	else if (body >= 0 && strstr(buf, "/big-sse") != NULL && strstr(buf, "/big-sse") < buf + headlen)
		echo_big(fd);
	else if (body >= 0 && (o = cJSON_CreateObject()) != NULL) {
		buf[headlen] = '\0';
		cJSON_AddStringToObject(o, "head", buf);
		cJSON_AddNumberToObject(o, "body", (double)body);
		text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (text != NULL) {
			int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: "
						  "application/json\r\nContent-Length: %zu\r\n",
			    strlen(text));

			if (echo_write(fd, head, (size_t)n) == 0 &&
			    echo_write(fd, "Connection: close\r\n\r\n", 21) == 0)
				echo_write(fd, text, strlen(text));
		}
	}
	free(text);
	free(buf);
	close(fd);
	return NULL;
}

static void
echo_serve(int lfd)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			continue;
		if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd) != 0)
			close(fd);
		else
			pthread_detach(t);
	}
}

pid_t
h_echo_start(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 128) != 0) {
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	if ((pid = fork()) == 0) {
		signal(SIGPIPE, SIG_IGN);
		echo_serve(lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

int
h_keys_add(struct h_env *e, const char *seller, const char *provider, const char *keyfile,
    const char *price)
{
	char cn2[400], url[128];
	int status;
	pid_t pid;

	snprintf(cn2, sizeof(cn2), "%s/cn2", e->bindir);
	snprintf(url, sizeof(url), "https://localhost:%d", e->https_port);
	if ((pid = fork()) == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		execl(cn2, cn2, "keys", "add", "--dir", e->dir, "--url", url, "--provider", provider,
		    "--key-file", keyfile, "--price", price, "--as", seller, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
