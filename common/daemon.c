/*
 * daemon.c — command line, configuration, signals, readiness and the IPC
 * wiring shared by every cn2 daemon. See daemon.h.
 *
 * Security stance: the process never needs root; it sets umask 077 before it
 * creates anything, and the configuration is checked completely before any
 * file, socket or database is opened.
 */
#include "common/daemon.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/notify.h"

#define CN2_VERSION "0.1.0"

#define UIDKEY(r, n) \
	{"uid." n, CFG_INT, offsetof(struct daemon_common_cfg, uid) + (r) * sizeof(int64_t), 0, \
	    -1, 4294967294LL, "-1", "uid the " n " daemon runs as (-1: ours)"}

static const struct cfg_key common_keys[] = {
    {"runtime_dir", CFG_PATH, offsetof(struct daemon_common_cfg, runtime_dir),
	sizeof(((struct daemon_common_cfg *)0)->runtime_dir), 1, 90, "/run/cn2",
	"directory of the IPC sockets"},
    {"log_level", CFG_STR, offsetof(struct daemon_common_cfg, log_level),
	sizeof(((struct daemon_common_cfg *)0)->log_level), 3, 7, "info",
	"err, warning, notice, info or debug"},
    UIDKEY(ROLE_EDGE, "edge"),
    UIDKEY(ROLE_PAYMENTS, "payments"),
    UIDKEY(ROLE_ROUTER, "router"),
    UIDKEY(ROLE_VAULT, "vault"),
    UIDKEY(ROLE_LEDGER, "ledger"),
    UIDKEY(ROLE_PLATFORM, "platform"),
    UIDKEY(ROLE_CTL, "ctl"),
    CFG_END,
};

static struct daemon the_daemon;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t watchdog;

static void
usage(const struct daemon_spec *spec, FILE *fp)
{
	const struct cfg_section secs[] = {{common_keys, NULL}, {spec->keys, NULL}};

	fprintf(fp,
	    "usage: cn2-%s [-n] [-f config]\n"
	    "%s\n\n"
	    "  -f file    configuration file (default /etc/cn2/%s.conf)\n"
	    "  -n         check the configuration and exit\n"
	    "  -h, --help this text;  -V, --version  the version\n\n"
	    "Signals: TERM/INT stop gracefully%s.\n\n"
	    "Configuration keys (key = value):\n",
	    spec->name, spec->summary, spec->name,
	    spec->reload != NULL ? ", HUP reloads" : "");
	cfg_print_keys(secs, spec->keys != NULL ? 2 : 1, fp);
}

static const char *
parse_args(int argc, char **argv, const struct daemon_spec *spec, int *check_only)
{
	static char def[128];
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path;
	int ch;

	snprintf(def, sizeof(def), "/etc/cn2/%s.conf", spec->name);
	path = def;
	while ((ch = getopt_long(argc, argv, "f:nhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 'n':
			*check_only = 1;
			break;
		case 'h':
			usage(spec, stdout);
			exit(0);
		case 'V':
			printf("cn2-%s %s (IPC protocol %d)\n", spec->name, CN2_VERSION, IPC_VERSION);
			exit(0);
		default:
			usage(spec, stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		usage(spec, stderr);
		exit(2);
	}
	return path;
}

int
daemon_load_config(const struct daemon_spec *spec, const char *path,
    struct daemon_common_cfg *common, char *err, size_t errlen)
{
	const struct cfg_section secs[] = {{common_keys, common}, {spec->keys, spec->cfg}};
	int level;

	if (cfg_load(secs, spec->keys != NULL ? 2 : 1, path, err, errlen) != 0)
		return -1;
	if ((level = log_level_parse(common->log_level)) < 0) {
		snprintf(err, errlen, "%s: log_level: unknown level \"%s\"", path, common->log_level);
		return -1;
	}
	log_set_level(level);
	for (int r = 0; r < ROLE_MAX; r++)
		if (common->uid[r] < 0)
			common->uid[r] = (int64_t)getuid();
	return 0;
}

static void
load_config(struct daemon *d, const char *path)
{
	char err[512];

	if (daemon_load_config(d->spec, path, &d->common, err, sizeof(err)) != 0)
		fatalx("%s", err);
}

/* IPC glue. */

static void
daemon_health(struct daemon *d, const struct ipc_req *req)
{
	struct ipc_health_rep rep;

	memset(&rep, 0, sizeof(rep));
	rep.role = (uint8_t)d->spec->role;
	rep.ready = d->stopping ? 0 : 1;
	rep.pid = (uint32_t)getpid();
	rep.uptime_ms = uv_now(d->loop) - d->started_ms;
	rep.requests = d->requests;
	rep.errors = d->errors;
	rep.links = ipc_links(d->ipc);
	rep.wanted = ipc_wanted(d->ipc);
	snprintf(rep.detail, sizeof(rep.detail), "%s", d->stopping ? "stopping" : "ok");
	if (d->spec->health != NULL && !d->stopping)
		d->spec->health(d, &rep);
	ipc_reply(d->ipc, req, IPC_HEALTH_REP, &rep);
}

static void
daemon_on_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	struct daemon *d = arg;

	if (type == IPC_HEALTH) {
		daemon_health(d, req);
		return;
	}
	if (ipc_type_flags(type) & IPC_MF_REQUEST)
		d->requests++;
	if (d->stopping || d->spec->request == NULL) {
		ipc_reply_error(d->ipc, req, IPC_ERR_UNAVAILABLE,
		    d->stopping ? "stopping" : "no requests are served here");
		return;
	}
	d->spec->request(d, req, type, msg);
}

static void
daemon_on_link(void *arg, enum ipc_role peer, int up)
{
	struct daemon *d = arg;

	if (d->spec->link != NULL)
		d->spec->link(d, peer, up);
}

static void
start_ipc(struct daemon *d)
{
	struct ipc_config ic;
	char err[256];

	memset(&ic, 0, sizeof(ic));
	ic.loop = d->loop;
	ic.self = d->spec->role;
	ic.runtime_dir = d->common.runtime_dir;
	ic.accept = d->spec->accept;
	ic.naccept = d->spec->naccept;
	ic.dial = d->spec->dial;
	ic.ndial = d->spec->ndial;
	for (int r = 0; r < ROLE_MAX; r++)
		ic.role_uid[r] = (uid_t)d->common.uid[r];
	ic.on_request = daemon_on_request;
	ic.on_link = daemon_on_link;
	ic.arg = d;
	if (d->spec->naccept > 0 && mkdir(d->common.runtime_dir, 0750) != 0 && errno != EEXIST)
		fatal("mkdir %s", d->common.runtime_dir);
	if ((d->ipc = ipc_start(&ic, err, sizeof(err))) == NULL)
		fatalx("%s", err);
}

/* Signals, watchdog, stop. */

static void
on_close_quiet(uv_handle_t *h)
{
	(void)h;
}

void
daemon_shutdown(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	log_info("stopping");
	notify_send("STOPPING=1");
	if (d->spec->stop != NULL)
		d->spec->stop(d);
	ipc_stop(d->ipc);
	d->ipc = NULL;
	uv_close((uv_handle_t *)&sig_term, on_close_quiet);
	uv_close((uv_handle_t *)&sig_int, on_close_quiet);
	uv_close((uv_handle_t *)&sig_hup, on_close_quiet);
	if (uv_is_active((uv_handle_t *)&watchdog) || watchdog.data != NULL)
		uv_close((uv_handle_t *)&watchdog, on_close_quiet);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	char err[256];

	if (signum != SIGHUP) {
		daemon_shutdown(d);
		return;
	}
	if (d->spec->reload == NULL) {
		log_info("SIGHUP: nothing to reload");
		return;
	}
	notify_send("RELOADING=1");
	if (d->spec->reload(d, err, sizeof(err)) != 0)
		log_warnx("reload failed, keeping the running configuration: %s", err);
	else
		log_info("reloaded");
	notify_send("READY=1");
}

static void
on_watchdog(uv_timer_t *t)
{
	(void)t;
	notify_send("WATCHDOG=1");
}

static void
start_signals(struct daemon *d)
{
	uint64_t usec = notify_watchdog_usec();

	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(d->loop, &sig_term);
	uv_signal_init(d->loop, &sig_int);
	uv_signal_init(d->loop, &sig_hup);
	sig_term.data = sig_int.data = sig_hup.data = d;
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	if (usec > 0) {
		uv_timer_init(d->loop, &watchdog);
		watchdog.data = d;
		uv_timer_start(&watchdog, on_watchdog, usec / 2000 + 1, usec / 2000 + 1);
	}
}

int
daemon_main(int argc, char **argv, const struct daemon_spec *spec)
{
	struct daemon *d = &the_daemon;
	int check_only = 0;
	char err[512];

	log_set_ident(argv[0] != NULL && strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : spec->name);
	d->spec = spec;
	d->config_path = parse_args(argc, argv, spec, &check_only);
	load_config(d, d->config_path);
	if (check_only) {
		if (spec->check != NULL && spec->check(err, sizeof(err)) != 0)
			fatalx("%s: %s", d->config_path, err);
		printf("%s: configuration OK\n", d->config_path);
		return 0;
	}
	umask(077);
	d->loop = uv_default_loop();
	d->started_ms = uv_now(d->loop);
	if (spec->start != NULL && spec->start(d, err, sizeof(err)) != 0)
		fatalx("cannot start: %s", err);
	start_ipc(d);
	start_signals(d);
	log_info("started (pid %d)", (int)getpid());
	notify_send("READY=1");
	uv_run(d->loop, UV_RUN_DEFAULT);
	uv_loop_close(d->loop);
	log_info("stopped");
	return 0;
}
