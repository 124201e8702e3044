/*
 * cli.h — the cn2 command's subcommands.
 */
#ifndef CN2_CLI_H
#define CN2_CLI_H

#include <stddef.h>

/* What `cn2 init` lays out under a directory (absolute paths after cli_paths). */
struct cli_paths {
	char dir[256]; /* the root, e.g. /home/me/cn2/var */
	char etc[300]; /* <dir>/etc: one <daemon>.conf each */
	char run[300]; /* <dir>/run: IPC sockets */
	char db[300];  /* <dir>/db: one SQLite database per daemon */
	char tls[300]; /* <dir>/tls: cert.pem, key.pem */
	char secrets[300]; /* <dir>/secrets: one <name>.key per secret, mode 0600 */
	char bindir[256]; /* where the cn2-* binaries are (beside cn2) */
};

struct cli_init_opts {
	int http_port;	/* 0: 8080 */
	int https_port; /* 0: 8443 */
	int demo_port;	/* 0: 8090 */
};

/* The shipped provider catalogue (vault/providers.json), NUL-terminated. */
extern const char cli_catalogue[];

/* The daemons in start order. */
extern const char *const cli_daemons[];
extern const size_t cli_ndaemons;

int cli_paths(const char *dir, struct cli_paths *p, char *err, size_t errlen);

/* init.c: create what is missing under p->dir (never overwrite). 0 or -1 (printed). */
int cli_init(const struct cli_paths *p, const struct cli_init_opts *o);
int cmd_init(int argc, char **argv);

/* up.c: run every daemon in the foreground until Ctrl-C or one of them dies. */
int cmd_up(int argc, char **argv);

/* keys.c: sellers' keys through the platform API; local tokens. */
int cmd_keys(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cli_keys_add(const char *dir, const char *url, const char *token, const char *as,
    const char *provider, const char *key_file, const char *price);

/* pay.c: a curl-like client that pays 402s with the test method. */
int cmd_pay(int argc, char **argv);

#endif
