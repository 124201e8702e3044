/*
 * daemon.h — the one skeleton every cn2 daemon runs on.
 *
 * A daemon's main() fills a struct daemon_spec (its name, config table, peer
 * table and handlers) and calls daemon_main(), which:
 *
 *   - parses the command line: -f config, -n (check the configuration and
 *     exit), -h/--help, -V/--version;
 *   - loads the configuration strictly (common keys + the daemon's own);
 *   - sets umask 077, ignores SIGPIPE, runs spec->start (open the database…);
 *   - starts IPC (listen per the peer table, dial the peers it names);
 *   - answers IPC_HEALTH itself (spec->health may add detail);
 *   - handles SIGTERM/SIGINT (graceful stop) and SIGHUP (spec->reload);
 *   - tells systemd READY=1, WATCHDOG=1 from the loop, STOPPING=1.
 *
 * Everything runs on one libuv loop; handlers must not block on disk or network
 * except where a daemon's own file says why (batched SQLite commits).
 */
#ifndef CN2_DAEMON_H
#define CN2_DAEMON_H

#include <stdint.h>
#include <uv.h>

#include "common/config.h"
#include "common/ipc.h"

struct daemon;

struct daemon_spec {
	const char *name;    /* "router": binary cn2-router, socket router.sock */
	enum ipc_role role;
	const char *summary; /* one line for --help */
	const struct cfg_key *keys; /* the daemon's own keys (may be NULL) */
	void *cfg;		    /* the struct those keys fill */
	const struct ipc_peer_rule *accept;
	size_t naccept;
	const enum ipc_role *dial;
	size_t ndial;
	/*
	 * -n, after the keys passed their types and bounds: what start() would
	 * refuse in their values beyond that, in start()'s words; 0, or -1 and
	 * err. Reads the configuration only (NULL: nothing more to check).
	 */
	int (*check)(char *err, size_t errlen);
	/* After the configuration loaded, before IPC starts: -1 and err to refuse to start. */
	int (*start)(struct daemon *d, char *err, size_t errlen);
	void (*request)(struct daemon *d, const struct ipc_req *req, uint16_t type,
	    const union ipc_any *msg);
	void (*health)(struct daemon *d, struct ipc_health_rep *rep); /* may be NULL */
	void (*link)(struct daemon *d, enum ipc_role peer, int up);    /* may be NULL */
	int (*reload)(struct daemon *d, char *err, size_t errlen);     /* NULL: HUP is ignored */
	void (*stop)(struct daemon *d); /* close own handles and the database; may be NULL */
};

struct daemon_common_cfg {
	char runtime_dir[200];
	char log_level[16];
	int64_t uid[ROLE_MAX]; /* "uid.<role>"; -1: the same uid as this process */
};

struct daemon {
	const struct daemon_spec *spec;
	uv_loop_t *loop;
	struct ipc *ipc;
	struct daemon_common_cfg common;
	const char *config_path;
	uint64_t started_ms; /* uv_now at start */
	uint64_t requests;   /* counted by the skeleton */
	uint64_t errors;     /* counted by the daemon */
	void *priv;	     /* the daemon's own state */
	int stopping;
};

int daemon_main(int argc, char **argv, const struct daemon_spec *spec);

/*
 * Load spec's configuration file as daemon_main does (the common keys and
 * the daemon's own, strictly) and apply its log level, for a daemon's
 * offline commands that share its file (cn2-vault rewrap). 0, or -1 with a
 * reason in err.
 */
int daemon_load_config(const struct daemon_spec *spec, const char *path,
    struct daemon_common_cfg *common, char *err, size_t errlen);

/* Begin a graceful stop from inside the daemon (as SIGTERM does). */
void daemon_shutdown(struct daemon *d);

#endif
