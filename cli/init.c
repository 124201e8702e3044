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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sys/random.h>

#include "cli/cert.h"

/*
 * The local certificate's names. Clients such as curl refuse a wildcard
 * directly under a top-level domain, so "*.localhost" alone does not cover
 * "openai.localhost" for them: the names the edge serves are listed too,
 * every provider's from the embedded catalogue, so the two cannot drift.
 */
#define LOCAL_NAMES_MAX 64
static const char *const local_fixed[] = {"localhost", "*.localhost", "api.localhost"};

/* Fill names[] (each in its own buf slot); returns how many, or -1. */
static int
local_names(const char *names[LOCAL_NAMES_MAX], char buf[LOCAL_NAMES_MAX][64])
{
	cJSON *root = cJSON_Parse(cli_catalogue), *p;
	size_t n = 0;

	for (; n < sizeof(local_fixed) / sizeof(local_fixed[0]); n++)
		names[n] = local_fixed[n];
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(root, "providers")) {
		if (n == LOCAL_NAMES_MAX || p->string == NULL ||
		    snprintf(buf[n], 64, "%s.localhost", p->string) >= 64) {
			cJSON_Delete(root);
			return -1;
		}
		names[n] = buf[n];
		n++;
	}
	cJSON_Delete(root);
	return (int)n;
}

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
	snprintf(p->secrets, sizeof(p->secrets), "%s/secrets", p->dir);
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

/*
 * The configuration of each daemon, with the local layout filled in. Keys
 * not written here take the daemon's defaults (`cn2-<daemon> --help`).
 */
static void
config_text(const struct cli_paths *p, const struct cli_init_opts *o, const char *name,
    char *buf, size_t cap)
{
	const char *s = p->secrets;
	int n = snprintf(buf, cap,
	    "# cn2-%s: local configuration written by `cn2 init`.\n"
	    "# `cn2-%s --help` lists every key.\n"
	    "runtime_dir = %s\n",
	    name, name, p->run);

	buf += n;
	cap -= (size_t)n;
	if (strcmp(name, "edge") != 0) {
		n = snprintf(buf, cap, "database = %s/%s.db\n", p->db, name);
		buf += n;
		cap -= (size_t)n;
	}
	if (strcmp(name, "edge") == 0)
		snprintf(buf, cap,
		    "listen_http = 127.0.0.1:%d\nlisten_https = 127.0.0.1:%d\n"
		    "tls_cert = %s/cert.pem\ntls_key = %s/key.pem\n"
		    "domain = localhost\nproviders = %s/providers.json\n"
		    "# CF-IPCountry (EU routing) is believed only from trusted_proxies (default: none),\n"
		    "# e.g. trusted_proxies = 173.245.48.0/20, 2400:cb00::/32\n",
		    o->http_port ? o->http_port : 8080, o->https_port ? o->https_port : 8443,
		    p->tls, p->tls, p->etc);
	else if (strcmp(name, "payments") == 0)
		snprintf(buf, cap,
		    "challenge_secret_file = %s/challenge.key\n"
		    "ticket_secret_file = %s/ticket.key\n"
		    "# The test payment method: on in the local default only.\n"
		    "test_secret_file = %s/test.key\n"
		    "# lightning, stripe and tempo are off until configured: lnd_url,\n"
		    "# stripe_secret_key_file, tempo_rpc_url (`cn2-payments --help`).\n",
		    s, s, s);
	else if (strcmp(name, "router") == 0)
		snprintf(buf, cap, "ticket_secret_file = %s/ticket.key\ngrant_secret_file = %s/grant.key\n",
		    s, s);
	else if (strcmp(name, "vault") == 0)
		snprintf(buf, cap,
		    "master_key_file = %s/master.key\ngrant_secret_file = %s/grant.key\n"
		    "providers = %s/providers.json\n",
		    s, s, p->etc);
	else if (strcmp(name, "platform") == 0)
		snprintf(buf, cap,
		    "jwt_secret_file = %s/jwt.key\nwebhook_secret_file = %s/webhook.key\n"
		    "# Local only: webhook endpoints may be http:// on this machine or its network.\n"
		    "webhook_allow_private = 1\n",
		    s, s);
}

/* The secrets of the local setup: 32 random bytes each, written as 64 hex digits. */
static const char *const secret_names[] = {
    "challenge", "ticket", "grant", "master", "test", "jwt", "demo", "webhook",
};

static int
init_secret(const struct cli_paths *p, const char *name)
{
	uint8_t raw[32];
	char hex[sizeof(raw) * 2 + 1], path[400];
	int rc;

	snprintf(path, sizeof(path), "%s/%s.key", p->secrets, name);
	if (access(path, F_OK) == 0)
		return 0;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		fprintf(stderr, "cn2: getrandom: %s\n", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	rc = write_new(path, hex, 0600);
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(hex, sizeof(hex));
	return rc < 0 ? -1 : 0;
}

/* The shipped catalogue, with the demo provider pointed at the local demo upstream. */
static int
init_catalogue(const struct cli_paths *p, const struct cli_init_opts *o)
{
	cJSON *root = cJSON_Parse(cli_catalogue), *demo;
	char path[400], url[64], *text;
	int rc = -1;

	demo = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "providers"),
	    "demo");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", o->demo_port ? o->demo_port : 8090);
	if (demo != NULL &&
	    cJSON_ReplaceItemInObjectCaseSensitive(demo, "upstream", cJSON_CreateString(url)) &&
	    (text = cJSON_Print(root)) != NULL) {
		snprintf(path, sizeof(path), "%s/providers.json", p->etc);
		rc = write_new(path, text, 0644) < 0 ? -1 : 0;
		free(text);
	}
	cJSON_Delete(root);
	if (rc != 0)
		fprintf(stderr, "cn2: cannot write the provider catalogue\n");
	return rc;
}

static int
init_cert(const struct cli_paths *p)
{
	static char buf[LOCAL_NAMES_MAX][64];
	const char *names[LOCAL_NAMES_MAX];
	char cert[400], key[400], err[256];
	int n;

	snprintf(cert, sizeof(cert), "%s/cert.pem", p->tls);
	snprintf(key, sizeof(key), "%s/key.pem", p->tls);
	if (access(cert, F_OK) == 0 && access(key, F_OK) == 0)
		return 0;
	if ((n = local_names(names, buf)) < 0) {
		fprintf(stderr, "cn2: certificate: the catalogue has too many providers\n");
		return -1;
	}
	if (cert_generate(cert, key, names, (size_t)n, 825, err, sizeof(err)) != 0) {
		fprintf(stderr, "cn2: certificate: %s\n", err);
		return -1;
	}
	printf("cn2: new self-signed certificate for localhost and *.localhost: %s\n", cert);
	return 0;
}

int
cli_init(const struct cli_paths *p, const struct cli_init_opts *o)
{
	char path[400], text[4096];

	if (make_dir(p->etc) || make_dir(p->run) || make_dir(p->db) || make_dir(p->tls) ||
	    make_dir(p->secrets))
		return -1;
	for (size_t i = 0; i < sizeof(secret_names) / sizeof(secret_names[0]); i++)
		if (init_secret(p, secret_names[i]) != 0)
			return -1;
	if (init_catalogue(p, o) != 0)
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
	    {"demo-port", required_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_init_opts o = {0, 0, 0};
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
		case 'u':
			if (parse_port(optarg) < 0) {
				fprintf(stderr, "cn2 init: bad port \"%s\"\n", optarg);
				return 2;
			}
			*(ch == 'p' ? &o.http_port : ch == 's' ? &o.https_port : &o.demo_port) =
			    parse_port(optarg);
			break;
		case 'h':
			printf("usage: cn2 init [--dir DIR] [--http-port N] [--https-port N] "
			       "[--demo-port N]\n"
			       "Create DIR (default ./var) with configuration, secrets, the provider\n"
			       "catalogue, a self-signed certificate and directories for sockets and\n"
			       "databases. Files that exist are kept. Ports default to 8080 (http),\n"
			       "8443 (https) and 8090 (the demo upstream).\n");
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
