/*
 * init.c — `cn2 init`: the local layout under one directory (./var by
 * default) with embedded defaults, created on first start and then left
 * alone: configuration files, a self-signed certificate for localhost and
 * *.localhost, and the directories for sockets and databases.
 *
 * Security stance: directories are 0700, key and secret files 0600; nothing
 * that exists is overwritten, so a second run cannot destroy keys.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cert.h"

/*
 * The local certificate's names. Clients such as curl refuse a wildcard
 * directly under a top-level domain, so "*.localhost" alone does not cover
 * "openai.localhost" for them: the names the edge serves are listed too.
 */
static const char *const local_names[] = {
    "localhost", "*.localhost", "api.localhost", "demo.localhost", "openai.localhost",
    "anthropic.localhost",
};

const char *const cli_daemons[] = {"ledger", "router", "vault", "payments", "platform", "edge"};
const size_t cli_ndaemons = sizeof(cli_daemons) / sizeof(cli_daemons[0]);

int
cli_paths(const char *dir, struct cli_paths *p, char *err, size_t errlen)
{
	char exe[PATH_MAX], *slash;
	ssize_t n;

	memset(p, 0, sizeof(*p));
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (realpath(dir, exe) == NULL || strlen(exe) >= sizeof(p->dir) - 16) {
		snprintf(err, errlen, "%s: %s", dir, errno ? strerror(errno) : "path too long");
		return -1;
	}
	if (snprintf(p->dir, sizeof(p->dir), "%s", exe) >= (int)sizeof(p->dir))
		return -1;
	snprintf(p->etc, sizeof(p->etc), "%s/etc", p->dir);
	snprintf(p->run, sizeof(p->run), "%s/run", p->dir);
	snprintf(p->db, sizeof(p->db), "%s/db", p->dir);
	snprintf(p->tls, sizeof(p->tls), "%s/tls", p->dir);
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0) {
		snprintf(err, errlen, "readlink /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) != NULL)
		*slash = '\0';
	if (snprintf(p->bindir, sizeof(p->bindir), "%s", exe) >= (int)sizeof(p->bindir)) {
		snprintf(err, errlen, "binary directory path too long");
		return -1;
	}
	return 0;
}

static int
make_dir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "cn2: mkdir %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Write a new file with mode, unless it exists. 1 written, 0 kept, -1 error. */
static int
write_new(const char *path, const char *text, mode_t mode)
{
	FILE *fp;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0) {
		if (errno == EEXIST)
			return 0;
		fprintf(stderr, "cn2: create %s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	if (fputs(text, fp) == EOF || fclose(fp) != 0) {
		fprintf(stderr, "cn2: write %s: %s\n", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 1;
}

/* The configuration of one daemon, with the local layout filled in. */
static void
config_text(const struct cli_paths *p, const struct cli_init_opts *o, const char *name,
    char *buf, size_t cap)
{
	int n = snprintf(buf, cap,
	    "# cn2-%s: local configuration written by `cn2 init`.\n"
	    "# `cn2-%s --help` lists every key.\n"
	    "runtime_dir = %s\n",
	    name, name, p->run);

	if (strcmp(name, "edge") == 0)
		snprintf(buf + n, cap - (size_t)n,
		    "listen_http = 127.0.0.1:%d\n"
		    "listen_https = 127.0.0.1:%d\n"
		    "tls_cert = %s/cert.pem\n"
		    "tls_key = %s/key.pem\n",
		    o->http_port ? o->http_port : 8080, o->https_port ? o->https_port : 8443,
		    p->tls, p->tls);
	else
		snprintf(buf + n, cap - (size_t)n, "database = %s/%s.db\n", p->db, name);
}

static int
init_cert(const struct cli_paths *p)
{
	char cert[400], key[400], err[256];

	snprintf(cert, sizeof(cert), "%s/cert.pem", p->tls);
	snprintf(key, sizeof(key), "%s/key.pem", p->tls);
	if (access(cert, F_OK) == 0 && access(key, F_OK) == 0)
		return 0;
	if (cert_generate(cert, key, local_names, sizeof(local_names) / sizeof(local_names[0]),
		825, err, sizeof(err)) != 0) {
		fprintf(stderr, "cn2: certificate: %s\n", err);
		return -1;
	}
	printf("cn2: new self-signed certificate for localhost and *.localhost: %s\n", cert);
	return 0;
}

int
cli_init(const struct cli_paths *p, const struct cli_init_opts *o)
{
	char path[400], text[2048];

	if (make_dir(p->etc) || make_dir(p->run) || make_dir(p->db) || make_dir(p->tls))
		return -1;
	for (size_t i = 0; i < cli_ndaemons; i++) {
		snprintf(path, sizeof(path), "%s/%s.conf", p->etc, cli_daemons[i]);
		config_text(p, o, cli_daemons[i], text, sizeof(text));
		if (write_new(path, text, 0600) < 0)
			return -1;
	}
	return init_cert(p);
}

static int
parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *end == '\0' && v > 0 && v < 65536 ? (int)v : -1;
}

int
cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"http-port", required_argument, NULL, 'p'},
	    {"https-port", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_init_opts o = {0, 0};
	struct cli_paths p;
	const char *dir = "var";
	char err[512];
	int ch;

	while ((ch = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'p':
		case 's':
			if (parse_port(optarg) < 0) {
				fprintf(stderr, "cn2 init: bad port \"%s\"\n", optarg);
				return 2;
			}
			*(ch == 'p' ? &o.http_port : &o.https_port) = parse_port(optarg);
			break;
		case 'h':
			printf("usage: cn2 init [--dir DIR] [--http-port N] [--https-port N]\n"
			       "Create DIR (default ./var) with configuration, a self-signed\n"
			       "certificate and directories for sockets and databases. Files that\n"
			       "exist are kept. Ports default to 8080 (http) and 8443 (https).\n");
			return 0;
		default:
			return 2;
		}
	}
	if (cli_paths(dir, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "cn2 init: %s\n", err);
		return 1;
	}
	return cli_init(&p, &o) == 0 ? 0 : 1;
}
