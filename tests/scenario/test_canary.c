/*
 * test_canary.c — a seller's key goes in sealed and comes out nowhere.
 *
 * The demo upstream's key is a canary ("cn2-canary-" and random hex). It is
 * listed with `cn2 keys add` (sealed on the client to the vault's public
 * key, through the real edge, platform-api and vault), serves
 * CN2_CANARY_CALLS paid calls (default 100) through the edge, and is rotated
 * with `cn2 keys rotate` (sealed the same way; another seller's attempt is
 * refused) before one more paid call. Afterwards the
 * canary, or any 16-byte piece of it, must be in no daemon's log, in no
 * database file (vault.db holds it sealed), and in no memory dump (gcore)
 * of edge, router, payments, ledger or platform-api: none of them ever held
 * it. (The vault held it, in locked memory, for each call: once the calls
 * are over, its memory holds no copy either, the locked buffers and the
 * blocks libcurl freed having been wiped.) The same dump of the demo
 * upstream, which does hold it, must find it: the scan works.
 *
 * Under AddressSanitizer gcore would write out the sanitizer's terabytes of
 * shadow mappings, so that build reads each process's readable mappings
 * straight from /proc/<pid>/mem instead (skipping only mappings over 1 GiB,
 * which are the shadow), which is what a core file holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"

static struct h_env env;
static char canary[65];
static int calls = 100;

static int
group_setup(void **state)
{
	uint8_t raw[27];
	char path[400];
	FILE *fp;

	(void)state;
	if (getenv("CN2_CANARY_CALLS") != NULL)
		calls = atoi(getenv("CN2_CANARY_CALLS"));
	if (calls < 1 || h_init(&env, NULL) != 0 ||
	    getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	/* 64 characters, as the demo upstream takes its key: the prefix and 53 hex digits. */
	strcpy(canary, "cn2-canary-");
	for (size_t i = 0; strlen(canary) < 64; i++) {
		char hex[3];

		snprintf(hex, sizeof(hex), "%02x", raw[i]);
		strncat(canary, hex, 64 - strlen(canary));
	}
	snprintf(path, sizeof(path), "%s/secrets/demo.key", env.dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs(canary, fp);
	if (fclose(fp) != 0 || chmod(path, 0600) != 0)
		return -1;
	if (h_start_demo(&env) != 0 || h_up(&env) != 0)
		return -1;
	return h_keys_add(&env, "canary-seller", "demo", path, "0.001");
}

static int
group_teardown(void **state)
{
	(void)state;
	return h_down(&env);
}

static const char *
demo_url(void)
{
	static char url[128];

	snprintf(url, sizeof(url), "https://demo.localhost:%d/v1/chat/completions", env.https_port);
	return url;
}

/* One paid call: 402, pay with the test method, 200. */
static void
paid_call(void)
{
	char auth[16384];
	const char *hs[] = {"Content-Type: application/json", auth, NULL};
	struct h_resp r;

	assert_int_equal(h_pay_header(&env, demo_url(), NULL, CHAT, auth, sizeof(auth)), 0);
	assert_int_equal(h_http(&env, "POST", demo_url(), hs, CHAT, strlen(CHAT), &r), 0);
	if (r.status != 200)
		fail_msg("paid call: %ld %s", r.status, r.body);
	assert_non_null(strstr(r.body, "demo reply"));
	h_resp_free(&r);
}

/* The id of canary-seller's key, from GET /api/keys with a token `cn2 token` signs. */
static void
canary_key_id(char *id, size_t cap)
{
	char cmd[600], tok[4096], auth[4200], url[128], *p;
	const char *hs[] = {auth, NULL};
	struct h_resp r;
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "%s/cn2 token --dir %s --as canary-seller", env.bindir, env.dir);
	assert_non_null(fp = popen(cmd, "r"));
	assert_non_null(fgets(tok, sizeof(tok), fp));
	pclose(fp);
	tok[strcspn(tok, "\n")] = '\0';
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	snprintf(url, sizeof(url), "https://localhost:%d/api/keys", env.https_port);
	assert_int_equal(h_http(&env, "GET", url, hs, NULL, 0, &r), 0);
	assert_non_null(p = strstr(r.body, "\"id\":\""));
	snprintf(id, cap, "%.*s", (int)strcspn(p + 6, "\""), p + 6);
	h_resp_free(&r);
}

/* `cn2 keys rotate` of canary-seller's key, as seller; the exit status. */
static int
cli_rotate(const char *seller)
{
	char cn2[400], url[128], keyfile[400], id[64];
	int status;
	pid_t pid;

	canary_key_id(id, sizeof(id));
	snprintf(cn2, sizeof(cn2), "%s/cn2", env.bindir);
	snprintf(url, sizeof(url), "https://localhost:%d", env.https_port);
	snprintf(keyfile, sizeof(keyfile), "%s/secrets/demo.key", env.dir);
	if ((pid = fork()) == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(cn2, cn2, "keys", "rotate", id, "--dir", env.dir, "--url", url, "--key-file",
		    keyfile, "--as", seller, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Does the file hold the canary, or any 16-byte piece of it? */
static int
file_holds_canary(const char *path)
{
	int fd = open(path, O_RDONLY), found = 0;
	static char buf[1 << 20];
	size_t keep = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	while (!found && (n = read(fd, buf + keep, sizeof(buf) - keep)) > 0) {
		size_t len = keep + (size_t)n;

		for (size_t off = 0; off + 16 <= 64 && !found; off += 8)
			found = memmem(buf, len, canary + off, 16) != NULL;
		/* Keep a tail so a piece across two reads is still seen. */
		keep = len < 64 ? len : 64;
		memmove(buf, buf + len - keep, keep);
	}
	close(fd);
	return found;
}

/*
 * A scan of every readable mapping of pid, through /proc/<pid>/mem: 1 if it
 * holds the canary, 0 if not, -1 if its memory cannot be read.
 */
static int
memory_holds_canary(pid_t pid)
{
	static char buf[1 << 20];
	char path[64], line[512];
	unsigned long lo, hi;
	char perms[8];
	int fd, found = 0;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((maps = fopen(path, "r")) == NULL)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if ((fd = open(path, O_RDONLY)) < 0) {
		fclose(maps);
		return -1;
	}
	while (!found && fgets(line, sizeof(line), maps) != NULL) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
		    hi - lo > (1ul << 30) || strstr(line, "[vvar]") != NULL ||
		    strstr(line, "[vsyscall]") != NULL)
			continue;
		for (unsigned long off = lo; off < hi && !found; off += sizeof(buf) - 64) {
			size_t want = hi - off < sizeof(buf) ? hi - off : sizeof(buf);
			ssize_t n = pread(fd, buf, want, (off_t)off);

			for (size_t k = 0; n > 0 && k + 16 <= 64 && !found; k += 8)
				found = memmem(buf, (size_t)n, canary + k, 16) != NULL;
			if (n <= 0 || (size_t)n < want)
				break;
		}
	}
	close(fd);
	fclose(maps);
	return found;
}

/*
 * Does the memory of process pid (called name) hold the canary? A gcore
 * dump, scanned, or under ASan /proc/<pid>/mem (see the top of the file):
 * 1 or 0, or -1 when it cannot be dumped.
 */
static int dump(const char *name, pid_t pid, char *core, size_t cap);

static int
process_holds_canary(const char *name, pid_t pid)
{
#if defined(__SANITIZE_ADDRESS__)
	(void)name;
	(void)dump;
	return memory_holds_canary(pid);
#else
	char core[500];
	struct stat st;
	int found;

	(void)memory_holds_canary;
	if (dump(name, pid, core, sizeof(core)) != 0 || stat(core, &st) != 0)
		return -1;
	found = file_holds_canary(core);
	print_message("# %s: %lld bytes of core, %s\n", name, (long long)st.st_size,
	    found ? "the canary in it" : "no canary");
	unlink(core);
	return found;
#endif
}

/* gcore process pid (called name) into the state directory; the core's path in core. 0 or -1. */
static int
dump(const char *name, pid_t pid, char *core, size_t cap)
{
	char prefix[400];
	pid_t g;
	int status;

	snprintf(prefix, sizeof(prefix), "%s/core-%s", env.dir, name);
	snprintf(core, cap, "%s.%d", prefix, (int)pid);
	if ((g = fork()) == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execlp("gcore", "gcore", "-o", prefix, core + strlen(prefix) + 1, (char *)NULL);
		_exit(127);
	}
	if (g < 0 || waitpid(g, &status, 0) != g || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || access(core, R_OK) != 0) {
		unlink(core);
		return -1;
	}
	return 0;
}

static void
test_canary_everywhere_but_the_vault(void **state)
{
	static const char *const dumped[] = {"edge", "router", "payments", "ledger", "platform"};
	char path[700];
	struct dirent *de;
	struct stat st;
	DIR *d;

	(void)state;
	/* The scan finds the canary where it is: the key file, the demo upstream's memory. */
	snprintf(path, sizeof(path), "%s/secrets/demo.key", env.dir);
	assert_true(file_holds_canary(path));
	for (int i = 0; i < calls; i++)
		paid_call();
	/* Rotated through the CLI, sealed the same way; not by another seller. */
	assert_int_not_equal(cli_rotate("someone-else"), 0);
	assert_int_equal(cli_rotate("canary-seller"), 0);
	paid_call();
	/* The canary did go through: the demo upstream accepted it on every call. */
	assert_false(h_log_contains(&env, canary));
	assert_false(h_log_contains(&env, canary + 11));
	snprintf(path, sizeof(path), "%s/daemons.log", env.dir);
	assert_false(file_holds_canary(path));
	/* No database file, of any daemon. */
	snprintf(path, sizeof(path), "%s/db", env.dir);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/db/%s", env.dir, de->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && file_holds_canary(path))
			fail_msg("%s holds the canary", path);
	}
	closedir(d);
	/* No memory of any daemon but the vault. */
	if (process_holds_canary("demo", env.demo_pid) != 1)
		fail_msg("the demo upstream's memory cannot be dumped (is gdb installed?), or "
			 "the scan misses the canary");
	for (size_t i = 0; i < sizeof(dumped) / sizeof(dumped[0]); i++)
		if (process_holds_canary(dumped[i], h_pid(&env, dumped[i])) != 0)
			fail_msg("the memory of %s holds the canary, or cannot be dumped", dumped[i]);
	/* Only root can dump the vault (it is not dumpable); then it must hold no copy. */
	switch (process_holds_canary("vault", h_pid(&env, "vault"))) {
	case -1:
		if (getuid() == 0)
			fail_msg("root cannot dump the vault");
		print_message("# vault: not dumpable by this user\n");
		break;
	case 1:
		fail_msg("the vault's memory holds the canary after its calls ended");
		break;
	default:
		break;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_canary_everywhere_but_the_vault),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
