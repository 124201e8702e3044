/*
 * notify.c — sd_notify(3) over $NOTIFY_SOCKET: an AF_UNIX datagram socket,
 * a path or (leading '@') an abstract name. Failures are logged and ignored:
 * a daemon must not stop because its supervisor went away.
 */
#include "common/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

int
notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static int warned;
	size_t n, salen;
	int fd, rc;

	if (path == NULL || *path == '\0')
		return 0;
	if ((path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof(sa.sun_path)) {
		log_warnx("NOTIFY_SOCKET is not a usable socket address");
		return -1;
	}
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = offsetof(struct sockaddr_un, sun_path) + n;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("socket");
		return -1;
	}
	rc = (int)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    (socklen_t)salen);
	/* Said once: a supervisor that went away would otherwise fill the log. */
	if (rc < 0 && !warned) {
		log_warn("sendto NOTIFY_SOCKET");
		warned = 1;
	}
	close(fd);
	return rc < 0 ? -1 : 0;
}

uint64_t
notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long v;

	if (usec == NULL || *usec < '0' || *usec > '9')
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return 0;
	return v;
}
