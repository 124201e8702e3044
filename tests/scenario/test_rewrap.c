/*
 * test_rewrap.c — master-key rotation with `cn2-vault rewrap`, killed with
 * SIGKILL at random points and run again, beside the running vault.
 *
 * The vault takes CN2_REWRAP_KEYS sealed keys (default 400) under master key
 * version 1 (a few are the demo upstream's key), then restarts with a new
 * key as version 2 and the old one as previous_master_key_file. rewrap runs
 * in small transactions (-b 3, -w 1 ms) and is killed with SIGKILL after a
 * random delay, CN2_REWRAP_KILLS times (default 8); after each kill,
 * `rewrap -n` must open every sealed row (each under the version its row
 * names), the running vault must still serve a call with a key rewrap has
 * and with one it has not reached, and the share of rows under version 2
 * never goes back. A final run finishes and retires version 1; the vault then
 * starts without the previous key, and every demo key still serves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/capab.h"
#include "common/hpke.h"
#include "tests/scenario/harness.h"

#define T_MS 8000
#define DEMO_KEYS 4

static struct h_env env;
static struct h_ipc as_platform, as_edge;
static char demo_key[128], kid[IPC_KID_MAX + 1];
static uint8_t pk[HPKE_NPK], grant_key[128];
static size_t grant_keylen;
static int nkeys = 400, nkills = 8;

static char *
secret_of(const char *rel, size_t *len)
{
	char *s = h_read(&env, rel, len);

	if (s != NULL && *len > 0 && s[*len - 1] == '\n')
		s[--*len] = '\0';
	return s;
}

static int
fetch_pubkey(void)
{
	struct h_reply r;
	int ok;

	if (h_ipc_call(&as_platform, ROLE_VAULT, IPC_VAULT_PUBKEY, NULL, &r, 1, T_MS) != 1)
		return -1;
	ok = r.status == 0 && r.type == IPC_VAULT_PUBKEY_REP;
	if (ok) {
		memcpy(pk, r.msg.vault_pubkey_rep.public_key.p, HPKE_NPK);
		snprintf(kid, sizeof(kid), "%s", r.msg.vault_pubkey_rep.kid);
	}
	h_replies_free(&r, 1);
	return ok ? 0 : -1;
}

/* KEY_PUT of secret, sealed here for seller "s1" and the demo provider. */
static int
put_key(const char *key_id, const char *secret)
{
	char binding[HPKE_CN2_BINDING_MAX];
	int n = hpke_cn2_binding(binding, sizeof(binding), "s1", "demo");
	uint8_t enc[HPKE_NENC], ct[256];
	struct ipc_key_put kp;
	struct h_reply r;
	int ok;

	if (hpke_seal(HPKE_CN2_AEAD, pk, (const uint8_t *)binding, (size_t)n,
		(const uint8_t *)binding, (size_t)n, (const uint8_t *)secret, strlen(secret), enc,
		ct) != 0)
		return -1;
	memset(&kp, 0, sizeof(kp));
	snprintf(kp.key_id, sizeof(kp.key_id), "%s", key_id);
	snprintf(kp.seller_id, sizeof(kp.seller_id), "s1");
	snprintf(kp.provider, sizeof(kp.provider), "demo");
	snprintf(kp.kid, sizeof(kp.kid), "%s", kid);
	kp.enc.p = enc;
	kp.enc.len = HPKE_NENC;
	kp.sealed.p = ct;
	kp.sealed.len = (uint32_t)(strlen(secret) + HPKE_NT);
	if (h_ipc_wait_link(&as_platform, ROLE_VAULT, 5000) != 0 ||
	    h_ipc_call(&as_platform, ROLE_VAULT, IPC_KEY_PUT, &kp, &r, 1, T_MS) != 1)
		return -1;
	ok = r.status == 0 && r.type == IPC_ACK;
	h_replies_free(&r, 1);
	return ok ? 0 : -1;
}

/* Replace the master key lines of vault.conf. */
static int
write_conf(const char *master, int version, const char *previous)
{
	char path[400], line[600];
	char *text = h_read(&env, "etc/vault.conf", NULL), *out, *p, *nl;
	FILE *fp;
	size_t n = 0;

	if (text == NULL || (out = calloc(1, strlen(text) + 1024)) == NULL)
		return -1;
	for (p = text; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p) - 1;
		if (strncmp(p, "master_key_file", 15) != 0 && strncmp(p, "master_key_version", 18) &&
		    strncmp(p, "previous_master_key_file", 24) != 0) {
			memcpy(out + n, p, (size_t)(nl - p) + 1);
			n += (size_t)(nl - p) + 1;
		}
	}
	n += (size_t)snprintf(out + n, 1024, "master_key_file = %s\nmaster_key_version = %d\n",
	    master, version);
	if (previous != NULL)
		n += (size_t)snprintf(out + n, 512, "previous_master_key_file = %s\n", previous);
	snprintf(path, sizeof(path), "%s/etc/vault.conf", env.dir);
	snprintf(line, sizeof(line), "%s", path);
	fp = fopen(line, "w");
	if (fp != NULL) {
		fputs(out, fp);
		fclose(fp);
	}
	free(out);
	free(text);
	return fp != NULL ? 0 : -1;
}

/* nkeys keys under master version 1: the first DEMO_KEYS of them the demo upstream's. */
static int
put_keys(void)
{
	char id[64], secret[96];

	for (int i = 0; i < nkeys; i++) {
		snprintf(id, sizeof(id), "key_%05d", i);
		snprintf(secret, sizeof(secret), "sk-rewrap-%05d-%08x", i, (unsigned)random());
		if (put_key(id, i < DEMO_KEYS ? demo_key : secret) != 0)
			return -1;
	}
	return 0;
}

/* The demo key, to list, and the grant secret, to make grants with. */
static int
read_secrets(void)
{
	size_t n;
	char *s = secret_of("secrets/demo.key", &n);

	if (s == NULL || n != 64) {
		free(s);
		return -1;
	}
	memcpy(demo_key, s, n + 1);
	free(s);
	if ((s = secret_of("secrets/grant.key", &grant_keylen)) == NULL ||
	    grant_keylen > sizeof(grant_key)) {
		free(s);
		return -1;
	}
	memcpy(grant_key, s, grant_keylen);
	free(s);
	return 0;
}

static int
group_setup(void **state)
{
	static const enum ipc_role vault[] = {ROLE_VAULT};

	(void)state;
	if (getenv("CN2_REWRAP_KEYS") != NULL)
		nkeys = atoi(getenv("CN2_REWRAP_KEYS"));
	if (getenv("CN2_REWRAP_KILLS") != NULL)
		nkills = atoi(getenv("CN2_REWRAP_KILLS"));
	if (nkeys < DEMO_KEYS + 1 || nkills < 1 || h_init(&env, NULL) != 0)
		return -1;
	if (h_ipc_open(&env, &as_platform, ROLE_PLATFORM, vault, 1) != 0 ||
	    h_ipc_open(&env, &as_edge, ROLE_EDGE, vault, 1) != 0 ||
	    h_start_demo(&env) != 0 || h_start(&env, "vault") != 0 || fetch_pubkey() != 0)
		return -1;
	return read_secrets() == 0 ? put_keys() : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	h_ipc_close(&as_platform);
	h_ipc_close(&as_edge);
	return h_down(&env);
}

/* One call through the running vault with key_id; the upstream's status. */
struct call {
	int done, head;
	uint16_t final;
};

static void
call_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct call *c = arg;

	if (status == 0 && type == IPC_FWD_HEAD)
		c->head = msg->fwd_head.status;
	if (status != 0 || (ipc_type_flags(type) & IPC_MF_FINAL)) {
		c->final = status != 0 ? 0 : type;
		c->done = 1;
	}
}

static int
call_key(const char *key_id)
{
	static unsigned seq;
	static const char body[] =
	    "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	struct ipc_forward f;
	struct call c = {0, 0, 0};
	uint8_t mac[IPC_MAC_LEN];
	int64_t end = h_now_ms() + T_MS;

	memset(&f, 0, sizeof(f));
	snprintf(f.grant.grant_id, sizeof(f.grant.grant_id), "g_rw_%d_%u", (int)getpid(), ++seq);
	snprintf(f.grant.key_id, sizeof(f.grant.key_id), "%s", key_id);
	snprintf(f.grant.payment_id, sizeof(f.grant.payment_id), "pay_%u", seq);
	snprintf(f.grant.route.provider, sizeof(f.grant.route.provider), "demo");
	snprintf(f.grant.route.method, sizeof(f.grant.route.method), "POST");
	snprintf(f.grant.route.path, sizeof(f.grant.route.path), "/v1/chat/completions");
	f.grant.expires = (int64_t)time(NULL) + 60;
	snprintf(f.grant.seller_id, sizeof(f.grant.seller_id), "s1");
	f.grant.seller_price = 1;
	assert_int_equal(capab_grant_mac(grant_key, grant_keylen, &f.grant, mac), 0);
	f.grant.mac.p = f.grant.award_mac.p = mac;
	f.grant.mac.len = f.grant.award_mac.len = IPC_MAC_LEN;
	snprintf(f.target, sizeof(f.target), "/v1/chat/completions");
	f.headers.p = (const uint8_t *)"Content-Type: application/json\r\n";
	f.headers.len = 32;
	f.body.p = (const uint8_t *)body;
	f.body.len = sizeof(body) - 1;
	assert_int_equal(h_ipc_wait_link(&as_edge, ROLE_VAULT, 5000), 0);
	assert_true(ipc_request(as_edge.ipc, ROLE_VAULT, IPC_FORWARD, &f, T_MS, call_on_reply, &c) !=
	    0);
	while (!c.done && h_now_ms() < end) {
		uv_run(&as_edge.loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	return c.head;
}

/* Run cn2-vault rewrap with args; SIGKILL it after kill_ms (< 0: let it end). Exit status. */
static int
rewrap(const char *const *args, int kill_ms, char *out, size_t cap)
{
	char exe[400], conf[400], path[400];
	const char *argv[12];
	int status, n = 0;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/cn2-vault", env.bindir);
	snprintf(conf, sizeof(conf), "%s/etc/vault.conf", env.dir);
	snprintf(path, sizeof(path), "%s/rewrap.out", env.dir);
	argv[n++] = exe;
	argv[n++] = "rewrap";
	for (; *args != NULL; args++)
		argv[n++] = *args;
	argv[n++] = "-f";
	argv[n++] = conf;
	argv[n] = NULL;
	if ((pid = fork()) == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(exe, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	assert_true(pid > 0);
	if (kill_ms >= 0) {
		usleep((useconds_t)kill_ms * 1000);
		kill(pid, SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (out != NULL) {
		char *text = h_read(&env, "rewrap.out", NULL);

		snprintf(out, cap, "%s", text != NULL ? text : "");
		free(text);
	}
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1000;
}

/* Rows of keys under master version 2. */
static long long
rows_v2(void)
{
	return h_db_int(&env, "vault", "SELECT count(*) FROM keys WHERE master_version = 2");
}

/* See the old connections go before the vault comes back. */
static void
links_down(void)
{
	int64_t end = h_now_ms() + 3000;

	while ((ipc_link_up(as_edge.ipc, ROLE_VAULT) || ipc_link_up(as_platform.ipc, ROLE_VAULT)) &&
	    h_now_ms() < end) {
		uv_run(&as_edge.loop, UV_RUN_NOWAIT);
		uv_run(&as_platform.loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static void
restart_vault(void)
{
	assert_int_equal(h_signal(&env, "vault", SIGTERM), 0);
	links_down();
	assert_int_equal(h_start(&env, "vault"), 0);
}

static void
test_rewrap_killed(void **state)
{
	static const char *const run[] = {"-b", "3", "-w", "1", NULL};
	static const char *const check[] = {"-n", NULL};
	char path[400], out[4096], want[64], master1[400], hex[65];
	uint8_t raw[32];
	long long before = 0, now;
	int killed_midway = 0;

	(void)state;
	/* A new master key as version 2; the old one as the previous key. */
	assert_int_equal(getrandom(raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	snprintf(path, sizeof(path), "%s/secrets/master2.key", env.dir);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs(hex, fp);
		fclose(fp);
		assert_int_equal(chmod(path, 0600), 0);
	}
	snprintf(master1, sizeof(master1), "%s/secrets/master.key", env.dir);
	assert_int_equal(write_conf(path, 2, master1), 0);
	restart_vault();
	assert_int_equal(rows_v2(), 0);
	snprintf(want, sizeof(want), "%d sealed rows open, 0 do not", nkeys + 1);
	for (int i = 0; i < nkills; i++) {
		int delay = (int)(random() % 150);
		int rc = rewrap(run, delay, NULL, 0);

		now = rows_v2();
		print_message("# rewrap killed after %d ms (%s): %lld of %d keys under version 2\n",
		    delay, rc == -SIGKILL ? "SIGKILL" : "it had finished", now, nkeys);
		killed_midway += rc == -SIGKILL && now < nkeys;
		/* Version 1 is retired only once no row uses it. */
		assert_int_equal(h_db_int(&env, "vault", "SELECT retired FROM master_versions WHERE version = 1"),
		    now == nkeys && rc == 0);
		assert_true(now >= before);
		before = now;
		/* Every row opens under the version its row names… */
		assert_int_equal(rewrap(check, -1, out, sizeof(out)), 0);
		if (strstr(out, want) == NULL)
			fail_msg("after kill %d: %s", i, out);
		/* …and the running vault serves keys on either side of the rewrap. */
		assert_int_equal(call_key("key_00000"), 200);
		assert_int_equal(call_key("key_00003"), 200);
		if (now == nkeys)
			break;
	}
	assert_true(killed_midway >= 1);
	/* Run again to the end: everything under version 2, version 1 retired. */
	assert_int_equal(rewrap(run, -1, out, sizeof(out)), 0);
	assert_int_equal(rows_v2(), nkeys);
	assert_int_equal(h_db_int(&env, "vault", "SELECT count(*) FROM intake_keys WHERE master_version = 1"), 0);
	assert_int_equal(h_db_int(&env, "vault", "SELECT retired FROM master_versions WHERE version = 1"), 1);
	/* The vault no longer needs the previous key. */
	assert_int_equal(write_conf(path, 2, NULL), 0);
	restart_vault();
	for (int i = 0; i < DEMO_KEYS; i++) {
		char id[32];

		snprintf(id, sizeof(id), "key_%05d", i);
		assert_int_equal(call_key(id), 200);
	}
	assert_int_equal(rewrap(check, -1, out, sizeof(out)), 0);
	assert_non_null(strstr(out, want));
	/* A fresh key is sealed under version 2 at once. */
	assert_int_equal(put_key("key_new", "sk-after-rotation-1"), 0);
	assert_int_equal(rows_v2(), nkeys + 1);
	assert_false(h_log_contains(&env, hex));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rewrap_killed),
	};

	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
