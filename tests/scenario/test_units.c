/*
 * test_units.c — the systemd units in systemd/ keep what they promise.
 *
 * Scored: `systemd-analyze security --offline=true` rates every unit, and
 * each overall exposure must stay at or under its ceiling (units_table).
 * Checked: `systemd-analyze verify` finds nothing to say about the units,
 * run on copies whose ExecStart= names the binaries of this build (the
 * installed path, /usr/local/bin, does not exist here). Read from the files
 * themselves: the router and the ledger have no network, the vault and
 * payments bind no Internet socket, only the edge holds a capability, every
 * daemon runs as its own user declared for sysusers.d, every ExecStart= runs
 * a binary this build made with the configuration shipped beside the units,
 * and that configuration passes the binary's own check (-n) and names as
 * secrets exactly the credentials its unit loads.
 *
 * A missing systemd-analyze is a failure, not a skip: these checks are the
 * only thing that keeps the units honest. Debian's `systemd` package has it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define KV_MAX 160
#define OUT_MAX 65536

/*
 * Each daemon with the ceiling of its exposure score: the score measured
 * with systemd 252 (Debian 12), no slack, so a loosened setting that systemd
 * weighs fails here (what it does not weigh, test_units_read checks). A
 * figure that moves with another systemd is to be measured again and
 * explained, not raised blindly. What is left in each score is listed in
 * docs/systemd.md: the IPC needs AF_UNIX and real uids (no PrivateUsers=),
 * the edge serves the Internet, the vault and payments call out to it, and
 * platform-api too, to deliver webhooks.
 */
static const struct unit_spec {
	const char *daemon; /* binary cn2-<daemon>, unit cn2-<daemon>.service */
	double ceiling;
	int network; /* 0 none, 1 outbound only, 2 listens on TCP */
} units_table[] = {
    {"edge", 1.4, 2},
    {"payments", 1.2, 1},
    {"router", 0.4, 0},
    {"vault", 1.2, 1},
    {"ledger", 0.4, 0},
    {"platform", 1.2, 1},
};
#define NUNITS (sizeof(units_table) / sizeof(units_table[0]))

/* One "key=value" line of a unit or configuration file, in file order. */
struct kv {
	char key[64];
	char val[448];
};

struct kvfile {
	struct kv kv[KV_MAX];
	int n;
};

static char srcdir[PATH_MAX]; /* the tree holding systemd/ */
static char bindir[PATH_MAX]; /* <build>/bin */

static void fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));

/* snprintf that fails the test rather than cut a path or a command short. */
static void
fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap)
		fail_msg("a path or command longer than %zu bytes", cap);
}

/* Parse path: '#' and ';' comments, [sections] dropped, "key = value" trimmed. */
static void
kv_load(const char *path, struct kvfile *f)
{
	char line[600], *eq, *k, *v, *end;
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		fail_msg("%s: cannot open", path);
	f->n = 0;
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == ';' || line[0] == '[' ||
		    (eq = strchr(line, '=')) == NULL)
			continue;
		if (f->n == KV_MAX)
			fail_msg("%s: more than %d settings", path, KV_MAX);
		*eq = '\0';
		for (k = line, end = eq; end > k && end[-1] == ' '; end--)
			end[-1] = '\0';
		for (v = eq + 1; *v == ' '; v++)
			;
		if (snprintf(f->kv[f->n].key, sizeof(f->kv[f->n].key), "%s", k) >=
		        (int)sizeof(f->kv[f->n].key) ||
		    snprintf(f->kv[f->n].val, sizeof(f->kv[f->n].val), "%s", v) >=
		        (int)sizeof(f->kv[f->n].val))
			fail_msg("%s: a setting longer than this test reads", path);
		f->n++;
	}
	fclose(fp);
}

/* The value of the i-th line setting key (0 is the first), or NULL. */
static const char *
kv_nth(const struct kvfile *f, const char *key, int i)
{
	for (int j = 0; j < f->n; j++)
		if (strcmp(f->kv[j].key, key) == 0 && i-- == 0)
			return f->kv[j].val;
	return NULL;
}

static const char *
kv_get(const struct kvfile *f, const char *key)
{
	return kv_nth(f, key, 0);
}

/* Every line that sets key has exactly val; at least one such line. */
static void
kv_expect(const struct kvfile *f, const char *what, const char *key, const char *val)
{
	const char *v;

	if (kv_get(f, key) == NULL)
		fail_msg("%s: no %s= (want %s)", what, key, val);
	for (int i = 0; (v = kv_nth(f, key, i)) != NULL; i++)
		if (strcmp(v, val) != 0)
			fail_msg("%s: %s=%s, want %s", what, key, v, val);
}

/* Does the space-separated list hold word? */
static int
list_has(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return 1;
	return 0;
}

/* <build>/tests/scenario/test_units → <build>/bin; systemd/ is in the first parent that has it. */
static int
paths_find(void **state)
{
	char exe[PATH_MAX], probe[PATH_MAX + 32], *p;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	(void)state;
	if (n < 0)
		return -1;
	exe[n] = '\0';
	for (int i = 0; i < 3 && (p = strrchr(exe, '/')) != NULL; i++)
		*p = '\0';
	if (snprintf(bindir, sizeof(bindir), "%s/bin", exe) >= (int)sizeof(bindir))
		return -1;
	for (;;) {
		fmt(probe, sizeof(probe), "%s/systemd/cn2.target", exe);
		if (access(probe, R_OK) == 0) {
			fmt(srcdir, sizeof(srcdir), "%s", exe);
			return 0;
		}
		if ((p = strrchr(exe, '/')) == NULL || p == exe)
			break;
		*p = '\0';
	}
	/* A build directory outside the tree: the tests run from its top. */
	return getcwd(srcdir, sizeof(srcdir)) != NULL && access("systemd/cn2.target", R_OK) == 0
	    ? 0
	    : -1;
}

/*
 * Run a shell command (bounded by timeout(1)); its output, cut to cap, in
 * out; its exit status. Output past cap is read and dropped, so the command
 * never blocks on a full pipe.
 */
static int
run(const char *cmd, char *out, size_t cap)
{
	char full[4096], rest[4096];
	size_t n = 0, r;
	FILE *fp;
	int status;

	fmt(full, sizeof(full), "timeout 120 %s 2>&1", cmd);
	if ((fp = popen(full, "r")) == NULL)
		fail_msg("popen %s", cmd);
	while (n < cap - 1 && (r = fread(out + n, 1, cap - 1 - n, fp)) > 0)
		n += r;
	out[n] = '\0';
	while (fread(rest, 1, sizeof(rest), fp) > 0)
		;
	status = pclose(fp);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
analyze_require(void)
{
	static char out[256];

	if (run("systemd-analyze --version", out, sizeof(out)) != 0)
		fail_msg("systemd-analyze is missing: install Debian's `systemd` package "
		         "(./setup.sh test does); the units cannot be scored without it");
}

static void
unit_path(const struct unit_spec *u, char *buf, size_t cap)
{
	fmt(buf, cap, "%s/systemd/cn2-%s.service", srcdir, u->daemon);
}

/* The figure after "Overall exposure level for <unit>: ", or -1. */
static double
exposure_parse(const char *out, const char *unit)
{
	char needle[128];
	const char *p;

	fmt(needle, sizeof(needle), "Overall exposure level for %s: ", unit);
	if ((p = strstr(out, needle)) == NULL)
		return -1;
	return strtod(p + strlen(needle), NULL);
}

static void
test_exposure(void **state)
{
	static char out[OUT_MAX];
	char path[PATH_MAX], cmd[PATH_MAX + 128], unit[64];
	int bad = 0;

	(void)state;
	analyze_require();
	for (size_t i = 0; i < NUNITS; i++) {
		const struct unit_spec *u = &units_table[i];
		double x;
		int rc;

		unit_path(u, path, sizeof(path));
		fmt(unit, sizeof(unit), "cn2-%s.service", u->daemon);
		fmt(cmd, sizeof(cmd), "systemd-analyze security --offline=true --no-pager '%s'",
		    path);
		rc = run(cmd, out, sizeof(out));
		x = exposure_parse(out, unit);
		printf("# %s: exposure %.1f (ceiling %.1f)\n", unit, x, u->ceiling);
		if (rc != 0 || x < 0) {
			printf("# systemd-analyze exited %d:\n%s\n", rc, out);
			bad++;
		} else if (x > u->ceiling + 1e-9) {
			printf("# %s exposes more than it did:\n%s\n", unit, out);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Copy a unit to dst, its ExecStart= binary taken from this build (bindir). */
static void
verify_copy(const char *src, const char *dst)
{
	static const char installed[] = "ExecStart=/usr/local/bin/";
	char line[600];
	FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
	int bad = in == NULL || out == NULL;

	while (!bad && fgets(line, sizeof(line), in) != NULL)
		if (strncmp(line, installed, sizeof(installed) - 1) == 0)
			bad = fprintf(
			          out, "ExecStart=%s/%s", bindir, line + sizeof(installed) - 1) < 0;
		else
			bad = fputs(line, out) == EOF;
	if (in != NULL)
		fclose(in);
	if ((out != NULL && fclose(out) != 0) || bad)
		fail_msg("cannot copy %s to %s", src, dst);
}

/*
 * `systemd-analyze verify` wants each ExecStart= binary to exist, so it runs
 * on copies of the units that start this build's binaries instead of
 * /usr/local/bin's; everything else is verified as shipped. It exits 0 even
 * for an unknown setting, so any output at all is a failure.
 */
static void
test_verify(void **state)
{
	static char out[OUT_MAX];
	char dir[] = "/tmp/cn2-test-units-XXXXXX", src[PATH_MAX], dst[64], cmd[PATH_MAX];
	const char *names[NUNITS + 1];
	char units[NUNITS][32];
	int rc;

	(void)state;
	analyze_require();
	assert_non_null(mkdtemp(dir));
	names[0] = "cn2.target";
	for (size_t i = 0; i < NUNITS; i++) {
		fmt(units[i], sizeof(units[i]), "cn2-%s.service", units_table[i].daemon);
		names[i + 1] = units[i];
	}
	for (size_t i = 0; i <= NUNITS; i++) {
		fmt(src, sizeof(src), "%s/systemd/%s", srcdir, names[i]);
		fmt(dst, sizeof(dst), "%s/%s", dir, names[i]);
		verify_copy(src, dst);
	}
	fmt(cmd, sizeof(cmd),
	    "sh -c 'cd \"$1\" && systemd-analyze verify ./cn2.target ./cn2-*.service' sh '%s'",
	    dir);
	rc = run(cmd, out, sizeof(out));
	for (size_t i = 0; i <= NUNITS; i++) {
		fmt(dst, sizeof(dst), "%s/%s", dir, names[i]);
		if (unlink(dst) != 0)
			printf("# could not remove %s\n", dst);
	}
	if (rmdir(dir) != 0)
		printf("# could not remove %s\n", dir);
	if (rc != 0 || out[0] != '\0')
		fail_msg("systemd-analyze verify exited %d:\n%s", rc, out);
}

/* What every unit says, whatever its daemon. */
static void
unit_common(const struct kvfile *f, const char *what)
{
	static const char *const fixed[][2] = {
	    {"Type", "notify"},
	    {"NotifyAccess", "main"},
	    {"Restart", "on-failure"},
	    {"ExecReload", "/bin/kill -HUP $MAINPID"},
	    {"Group", "cn2"},
	    {"UMask", "0077"},
	    {"PartOf", "cn2.target"},
	    {"NoNewPrivileges", "yes"},
	    {"ProtectSystem", "strict"},
	    {"ProtectHome", "yes"},
	    {"PrivateTmp", "yes"},
	    {"PrivateDevices", "yes"},
	    {"ProtectProc", "invisible"},
	    {"ProcSubset", "pid"},
	    {"ProtectClock", "yes"},
	    {"ProtectHostname", "yes"},
	    {"ProtectKernelTunables", "yes"},
	    {"ProtectKernelModules", "yes"},
	    {"ProtectKernelLogs", "yes"},
	    {"ProtectControlGroups", "yes"},
	    {"RestrictNamespaces", "yes"},
	    {"RestrictRealtime", "yes"},
	    {"RestrictSUIDSGID", "yes"},
	    {"LockPersonality", "yes"},
	    {"MemoryDenyWriteExecute", "yes"},
	    {"SystemCallArchitectures", "native"},
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		kv_expect(f, what, fixed[i][0], fixed[i][1]);
	if (kv_get(f, "WatchdogSec") == NULL || atoi(kv_get(f, "WatchdogSec")) <= 0)
		fail_msg("%s: no WatchdogSec=", what);
	if (kv_nth(f, "SystemCallFilter", 0) == NULL ||
	    strcmp(kv_nth(f, "SystemCallFilter", 0), "@system-service") != 0 ||
	    kv_nth(f, "SystemCallFilter", 1) == NULL ||
	    strcmp(kv_nth(f, "SystemCallFilter", 1), "~@privileged @resources") != 0)
		fail_msg(
		    "%s: SystemCallFilter= is not @system-service without @privileged @resources",
		    what);
}

/* Only the edge holds a capability, and only CAP_NET_BIND_SERVICE. */
static void
unit_caps(const struct kvfile *f, const struct unit_spec *u, const char *what)
{
	const char *want = u->network == 2 ? "CAP_NET_BIND_SERVICE" : "";
	const char *amb;

	kv_expect(f, what, "CapabilityBoundingSet", want);
	for (int i = 0; (amb = kv_nth(f, "AmbientCapabilities", i)) != NULL; i++)
		if (strcmp(amb, want) != 0)
			fail_msg("%s: AmbientCapabilities=%s", what, amb);
	if (u->network == 2 && kv_get(f, "AmbientCapabilities") == NULL)
		fail_msg("%s: a non-root edge needs CAP_NET_BIND_SERVICE as ambient", what);
}

static void
unit_network(const struct kvfile *f, const struct unit_spec *u, const char *what)
{
	const char *pn = kv_get(f, "PrivateNetwork");

	if (u->network == 0) {
		kv_expect(f, what, "PrivateNetwork", "yes");
		kv_expect(f, what, "RestrictAddressFamilies", "AF_UNIX");
		kv_expect(f, what, "IPAddressDeny", "any");
		return;
	}
	kv_expect(f, what, "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6");
	kv_expect(f, what, "SocketBindDeny", "any");
	if (pn != NULL && strcmp(pn, "yes") == 0)
		fail_msg("%s: PrivateNetwork=yes, but it needs the network", what);
	if (u->network == 1 && kv_get(f, "SocketBindAllow") != NULL)
		fail_msg("%s: outbound only, yet SocketBindAllow=%s", what,
		    kv_get(f, "SocketBindAllow"));
}

/* A systemd size ("256M", "1G", bytes without a suffix) in MiB; 0 if absent or unreadable. */
static unsigned long long
mebibytes(const char *v)
{
	char *end;
	unsigned long long n;

	if (v == NULL || *v < '0' || *v > '9')
		return 0;
	n = strtoull(v, &end, 10);
	switch (*end) {
	case 'K':
		return n / 1024;
	case 'M':
		return n;
	case 'G':
		return n * 1024;
	case '\0':
		return n / (1024 * 1024);
	}
	return 0;
}

/* ExecStart= runs this build's cn2-<daemon> with /etc/cn2/<daemon>.conf. */
static void
unit_exec(const struct kvfile *f, const struct unit_spec *u, const char *what)
{
	char want[128], bin[PATH_MAX + 64];

	fmt(want, sizeof(want), "/usr/local/bin/cn2-%s -f /etc/cn2/%s.conf", u->daemon, u->daemon);
	kv_expect(f, what, "ExecStart", want);
	fmt(bin, sizeof(bin), "%s/cn2-%s", bindir, u->daemon);
	if (access(bin, X_OK) != 0)
		fail_msg("%s: the build made no %s", what, bin);
}

static void
test_units_read(void **state)
{
	char path[PATH_MAX], what[64], user[64];
	static struct kvfile f;
	char users[NUNITS][64];

	(void)state;
	for (size_t i = 0; i < NUNITS; i++) {
		const struct unit_spec *u = &units_table[i];

		unit_path(u, path, sizeof(path));
		fmt(what, sizeof(what), "cn2-%s.service", u->daemon);
		kv_load(path, &f);
		unit_common(&f, what);
		unit_caps(&f, u, what);
		unit_network(&f, u, what);
		unit_exec(&f, u, what);
		fmt(user, sizeof(user), "cn2-%s", u->daemon);
		kv_expect(&f, what, "User", user);
		fmt(users[i], sizeof(users[i]), "%s", kv_get(&f, "User"));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(users[i], users[j]);
		if (strcmp(u->daemon, "vault") == 0) {
			kv_expect(&f, what, "LimitCORE", "0");
			/* Two pages a call: less than 64 MiB would starve a busy vault. */
			if (mebibytes(kv_get(&f, "LimitMEMLOCK")) < 64)
				fail_msg("%s: LimitMEMLOCK= below 64M", what);
		}
	}
}

/* The credential ids a unit loads, space-separated, each with a leading space. */
static void
unit_creds(const struct kvfile *f, char *ids, size_t cap)
{
	static const char *const keys[] = {"LoadCredential", "LoadCredentialEncrypted"};
	const char *v;

	ids[0] = '\0';
	for (size_t k = 0; k < 2; k++)
		for (int i = 0; (v = kv_nth(f, keys[k], i)) != NULL; i++)
			fmt(ids + strlen(ids), cap - strlen(ids), " %.*s", (int)strcspn(v, ":"), v);
}

/*
 * A value naming a credential: /run/credentials/<unit>/<id>, or the vault's
 * relative master_key_file. The id (empty if none) goes to id.
 */
static void
conf_cred(const struct kv *kv, const char *unit, const char *what, char *id, size_t cap)
{
	char prefix[128];

	id[0] = '\0';
	fmt(prefix, sizeof(prefix), "/run/credentials/%s/", unit);
	if (strncmp(kv->val, "/run/credentials/", 17) == 0 &&
	    strncmp(kv->val, prefix, strlen(prefix)) != 0)
		fail_msg("%s: %s = %s is another unit's credential", what, kv->key, kv->val);
	if (strncmp(kv->val, prefix, strlen(prefix)) == 0)
		fmt(id, cap, "%s", kv->val + strlen(prefix));
	else if (strcmp(kv->key, "master_key_file") == 0 && kv->val[0] != '/')
		fmt(id, cap, "%s", kv->val);
}

/* The daemon's configuration passes its own check and matches its unit. */
static void
conf_check(const struct unit_spec *u, const struct kvfile *unit)
{
	static char out[OUT_MAX];
	static struct kvfile c;
	char conf[PATH_MAX], cmd[3 * PATH_MAX], what[PATH_MAX + 8], svc[64], ids[512], used[512];
	char id[128], dbdir[128];
	const char *sd = kv_get(unit, "StateDirectory"), *db;

	fmt(conf, sizeof(conf), "%s/systemd/etc/cn2/%s.conf", srcdir, u->daemon);
	fmt(what, sizeof(what), "%s", conf);
	fmt(svc, sizeof(svc), "cn2-%s.service", u->daemon);
	fmt(cmd, sizeof(cmd), "'%s/cn2-%s' -n -f '%s'", bindir, u->daemon, conf);
	if (run(cmd, out, sizeof(out)) != 0)
		fail_msg("cn2-%s -n refuses %s:\n%s", u->daemon, conf, out);
	kv_load(conf, &c);
	kv_expect(&c, what, "runtime_dir", "/run/cn2");
	unit_creds(unit, ids, sizeof(ids));
	used[0] = '\0';
	for (int i = 0; i < c.n; i++) {
		conf_cred(&c.kv[i], svc, what, id, sizeof(id));
		if (id[0] != '\0' && !list_has(ids, id))
			fail_msg("%s: %s = %s, but %s loads no credential %s", what, c.kv[i].key,
			    c.kv[i].val, svc, id);
		if (id[0] != '\0')
			fmt(used + strlen(used), sizeof(used) - strlen(used), " %s", id);
	}
	/* Least privilege the other way: no secret the daemon does not use. */
	for (char *p = strtok(ids, " "); p != NULL; p = strtok(NULL, " "))
		if (!list_has(used, p))
			fail_msg("%s loads the credential %s, which %s never reads", svc, p, conf);
	db = kv_get(&c, "database");
	if (u->network == 2 ? sd != NULL || db != NULL : sd == NULL || db == NULL)
		fail_msg("%s: StateDirectory=%s, database = %s", svc, sd ? sd : "(none)",
		    db ? db : "(none)");
	fmt(dbdir, sizeof(dbdir), "/var/lib/%s/", sd ? sd : "");
	if (db != NULL &&
	    (strncmp(db, dbdir, strlen(dbdir)) != 0 || strchr(db + strlen(dbdir), '/')))
		fail_msg("%s: database = %s is not in StateDirectory=%s", what, db, sd);
}

static void
test_configs(void **state)
{
	static struct kvfile f;
	char path[PATH_MAX];
	const char *rw;

	(void)state;
	for (size_t i = 0; i < NUNITS; i++) {
		unit_path(&units_table[i], path, sizeof(path));
		kv_load(path, &f);
		conf_check(&units_table[i], &f);
		/* The edge only connects, which a read-only /run/cn2 allows. */
		rw = kv_get(&f, "ReadWritePaths");
		if (units_table[i].network == 2 ? rw != NULL
		                                : rw == NULL || strcmp(rw, "/run/cn2") != 0)
			fail_msg("%s: ReadWritePaths=%s", path, rw ? rw : "(none)");
	}
}

/* The same credstore file behind a secret two daemons share (ticket.key, grant.key). */
static void
shared_secret(const char *a, const char *b, const char *id)
{
	static struct kvfile fa, fb;
	char path[PATH_MAX], want[64], sa[128] = "", sb[128] = "";
	const char *v;

	fmt(want, sizeof(want), "%s:", id);
	fmt(path, sizeof(path), "%s/systemd/cn2-%s.service", srcdir, a);
	kv_load(path, &fa);
	fmt(path, sizeof(path), "%s/systemd/cn2-%s.service", srcdir, b);
	kv_load(path, &fb);
	for (int i = 0; (v = kv_nth(&fa, "LoadCredentialEncrypted", i)) != NULL; i++)
		if (strncmp(v, want, strlen(want)) == 0)
			fmt(sa, sizeof(sa), "%s", v);
	for (int i = 0; (v = kv_nth(&fb, "LoadCredentialEncrypted", i)) != NULL; i++)
		if (strncmp(v, want, strlen(want)) == 0)
			fmt(sb, sizeof(sb), "%s", v);
	if (sa[0] == '\0' || strcmp(sa, sb) != 0)
		fail_msg("%s: cn2-%s loads \"%s\", cn2-%s \"%s\"", id, a, sa, b, sb);
}

/* The target, the users, /run/cn2, the edge's ports: the files around the units. */
static void
test_around(void **state)
{
	static struct kvfile f;
	char path[PATH_MAX], line[256], unit[64], user[64], users[512] = "", wants[512] = "";
	const char *v;
	FILE *fp;
	int run_dir = 0;

	(void)state;
	fmt(path, sizeof(path), "%s/systemd/cn2.target", srcdir);
	kv_load(path, &f);
	for (int i = 0; (v = kv_nth(&f, "Wants", i)) != NULL; i++)
		fmt(wants + strlen(wants), sizeof(wants) - strlen(wants), " %s", v);
	fmt(path, sizeof(path), "%s/systemd/cn2-sysusers.conf", srcdir);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL) {
		char type[4], name[64], id[64];

		if (sscanf(line, "%3s %63s %63s", type, name, id) == 3 && strcmp(type, "u") == 0 &&
		    strcmp(id, "-:cn2") == 0)
			fmt(users + strlen(users), sizeof(users) - strlen(users), " %s", name);
	}
	fclose(fp);
	for (size_t i = 0; i < NUNITS; i++) {
		fmt(user, sizeof(user), "cn2-%s", units_table[i].daemon);
		fmt(unit, sizeof(unit), "%s.service", user);
		if (!list_has(wants, unit))
			fail_msg("cn2.target does not want %s", unit);
		if (!list_has(users, user))
			fail_msg("cn2-sysusers.conf declares no user %s in the group cn2", user);
	}
	fmt(path, sizeof(path), "%s/systemd/cn2-tmpfiles.conf", srcdir);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		run_dir |= strncmp(line, "d /run/cn2 3770 root cn2 ", 25) == 0;
	fclose(fp);
	if (!run_dir)
		fail_msg("cn2-tmpfiles.conf: /run/cn2 is not 3770 root:cn2 (setgid, sticky)");
	shared_secret("payments", "router", "ticket.key");
	shared_secret("router", "vault", "grant.key");
}

/* May the edge's unit bind "tcp:<port>"? */
static int
edge_may_bind(const struct kvfile *unit, const char *want)
{
	const char *v;

	for (int i = 0; (v = kv_nth(unit, "SocketBindAllow", i)) != NULL; i++)
		if (strcmp(v, want) == 0)
			return 1;
	return 0;
}

/* Every port the shipped edge.conf listens on is one its unit may bind. */
static void
test_edge_ports(void **state)
{
	static struct kvfile unit, conf;
	static const char *const keys[] = {"listen_http", "listen_https"};
	char path[PATH_MAX], want[32];
	const char *v, *port;

	(void)state;
	fmt(path, sizeof(path), "%s/systemd/cn2-edge.service", srcdir);
	kv_load(path, &unit);
	fmt(path, sizeof(path), "%s/systemd/etc/cn2/edge.conf", srcdir);
	kv_load(path, &conf);
	for (size_t k = 0; k < 2; k++) {
		if ((v = kv_get(&conf, keys[k])) == NULL || v[0] == '\0' ||
		    (port = strrchr(v, ':')) == NULL)
			continue;
		fmt(want, sizeof(want), "tcp:%s", port + 1);
		if (!edge_may_bind(&unit, want))
			fail_msg("edge.conf %s = %s, but cn2-edge.service may not bind %s", keys[k],
			    kv_get(&conf, keys[k]), want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exposure),
	    cmocka_unit_test(test_verify),
	    cmocka_unit_test(test_units_read),
	    cmocka_unit_test(test_configs),
	    cmocka_unit_test(test_around),
	    cmocka_unit_test(test_edge_ports),
	};

	return cmocka_run_group_tests(tests, paths_find, NULL);
}
