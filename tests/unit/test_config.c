/*
 * test_config.c — cfg_load, cfg_set, cfg_print_keys and cfg_read_secret on
 * real files in a temporary directory.
 *
 * Bad files are a table: each row is a file's text and the substring its
 * error must contain, plus the line the error must name. Programming errors
 * in key tables are fatal, so those run in a child process.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"

struct tconf {
	char name[16];
	char dir[64];
	int64_t port;
	int64_t offset;
	int64_t big;
	int debug;
	char note[8];
};

struct tnet {
	int64_t backlog;
	int tls;
};

static struct tconf conf;
static struct tnet net;
static char tmpdir[64];

static const struct cfg_key conf_keys[] = {
    {"name", CFG_STR, offsetof(struct tconf, name), sizeof(conf.name), 1, 15, NULL,
	"instance name"},
    {"dir", CFG_PATH, offsetof(struct tconf, dir), sizeof(conf.dir), 1, 63, "/var/lib/cn2",
	"state directory"},
    {"port", CFG_INT, offsetof(struct tconf, port), 0, 1, 65535, "8080", "TCP port"},
    {"offset", CFG_INT, offsetof(struct tconf, offset), 0, -100, 100, "-5", "signed value"},
    {"big", CFG_INT, offsetof(struct tconf, big), 0, INT64_MIN, INT64_MAX, "0", "any int64"},
    {"debug", CFG_BOOL, offsetof(struct tconf, debug), 0, 0, 0, "no", "debug logging"},
    {"note", CFG_STR, offsetof(struct tconf, note), sizeof(conf.note), 0, 7, "", "short note"},
    CFG_END,
};

static const struct cfg_key net_keys[] = {
    {"net.backlog", CFG_INT, offsetof(struct tnet, backlog), 0, 1, 4096, "128", "listen backlog"},
    {"net.tls", CFG_BOOL, offsetof(struct tnet, tls), 0, 0, 0, "yes", "serve TLS"},
    CFG_END,
};

static const struct cfg_section secs[] = {
    {conf_keys, &conf},
    {net_keys, &net},
};
#define NSECS (sizeof(secs) / sizeof(secs[0]))

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/cn2-test-config-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Fill the structs with a pattern, so a default that is not applied shows. */
static int
reset(void **state)
{
	(void)state;
	memset(&conf, 0x5a, sizeof(conf));
	memset(&net, 0x5a, sizeof(net));
	return 0;
}

/* Write len bytes to tmpdir/name with exactly the given mode; returns the path. */
static const char *
write_file(const char *name, const char *text, size_t len, mode_t mode)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	return path;
}

static const char *
write_text(const char *name, const char *text)
{
	return write_file(name, text, strlen(text), 0600);
}

static void
test_good_file(void **state)
{
	char err[256] = "";
	const char *path;

	(void)state;
	path = write_text("good.conf",
	    "# a comment\n"
	    "\n"
	    "   # an indented comment\n"
	    "name = edge-1\n"
	    "\tdir\t=\t/srv/cn2 dir \t\n"
	    "port=443\n"
	    "offset = -100\n"
	    "big = -9223372036854775808\n"
	    "debug = true\n"
	    "note = a=b#c\n"
	    "net.backlog = 4096\n"
	    "net.tls = 0");
	assert_int_equal(cfg_load(secs, NSECS, path, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(conf.name, "edge-1");
	assert_string_equal(conf.dir, "/srv/cn2 dir");
	assert_int_equal(conf.port, 443);
	assert_int_equal(conf.offset, -100);
	assert_true(conf.big == INT64_MIN);
	assert_int_equal(conf.debug, 1);
	assert_string_equal(conf.note, "a=b#c");
	assert_int_equal(net.backlog, 4096);
	assert_int_equal(net.tls, 0);
}

static void
test_defaults(void **state)
{
	char err[256] = "";
	const char *path;

	(void)state;
	path = write_text("defaults.conf", "name = x\n");
	assert_int_equal(cfg_load(secs, NSECS, path, err, sizeof(err)), 0);
	assert_string_equal(conf.name, "x");
	assert_string_equal(conf.dir, "/var/lib/cn2");
	assert_int_equal(conf.port, 8080);
	assert_int_equal(conf.offset, -5);
	assert_int_equal(conf.big, 0);
	assert_int_equal(conf.debug, 0);
	assert_string_equal(conf.note, "");
	assert_int_equal(net.backlog, 128);
	assert_int_equal(net.tls, 1);
}

static void
test_no_file(void **state)
{
	const struct cfg_section only_net[] = {{net_keys, &net}};
	char err[256] = "";

	(void)state;
	/* Defaults only: fine when nothing is required, an error otherwise. */
	assert_int_equal(cfg_load(only_net, 1, NULL, err, sizeof(err)), 0);
	assert_int_equal(net.backlog, 128);
	assert_int_equal(cfg_load(secs, NSECS, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "missing required key 'name'"));

	assert_int_equal(cfg_load(secs, NSECS, "/nonexistent/cn2.conf", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/cn2.conf"));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(cfg_load(secs, NSECS, tmpdir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

static const struct bad_file {
	const char *text;
	size_t len;  /* 0: strlen(text) */
	int line;    /* line the error names; 0: the error names the file only */
	const char *expect;
} bad_files[] = {
    {"name = a\nbogus = 1\n", 0, 2, "unknown key 'bogus'"},
    {"name = a\nport = 1\nport = 2\n", 0, 3, "duplicate key 'port' (first set on line 2)"},
    {"net.tls = yes\nname = a\nnet.tls = no\n", 0, 3, "duplicate key 'net.tls'"},
    {"name = a\nport = 70000\n", 0, 2, "key 'port': value out of range [1, 65535]"},
    {"name = a\nport = 0\n", 0, 2, "key 'port': value out of range [1, 65535]"},
    {"name = a\noffset = -101\n", 0, 2, "key 'offset': value out of range [-100, 100]"},
    {"big = 9223372036854775808\n", 0, 1, "key 'big': value out of range"},
    {"big = -9223372036854775809\n", 0, 1, "key 'big': value out of range"},
    {"big = 99999999999999999999999\n", 0, 1, "key 'big': value out of range"},
    {"net.backlog = 4097\n", 0, 1, "key 'net.backlog': value out of range [1, 4096]"},
    {"name = a\nport 80\n", 0, 2, "missing '='"},
    {"name\n", 0, 1, "missing '='"},
    {"Port = 80\n", 0, 1, "invalid key name"},
    {" = 80\n", 0, 1, "invalid key name"},
    {"port-number = 80\n", 0, 1, "invalid key name"},
    {"po rt = 80\n", 0, 1, "invalid key name"},
    {"name = a\nport = 8x\n", 0, 2, "key 'port': not an integer"},
    {"port =\n", 0, 1, "key 'port': not an integer"},
    {"port = +80\n", 0, 1, "key 'port': not an integer"},
    {"port = 0x50\n", 0, 1, "key 'port': not an integer"},
    {"port = 80k\n", 0, 1, "key 'port': not an integer"},
    {"port = 8 0\n", 0, 1, "key 'port': not an integer"},
    {"offset = -\n", 0, 1, "key 'offset': not an integer"},
    {"offset = --1\n", 0, 1, "key 'offset': not an integer"},
    {"port = 1.5\n", 0, 1, "key 'port': not an integer"},
    {"debug = maybe\n", 0, 1, "key 'debug': not a boolean"},
    {"debug = YES\n", 0, 1, "key 'debug': not a boolean"},
    {"debug =\n", 0, 1, "key 'debug': not a boolean"},
    {"name =\n", 0, 1, "key 'name': string too short (at least 1 bytes)"},
    {"name = 0123456789abcdef\n", 0, 1, "key 'name': string too long (at most 15 bytes)"},
    {"note = 12345678\n", 0, 1, "key 'note': string too long (at most 7 bytes)"},
    {"dir =   \n", 0, 1, "key 'dir': path is empty"},
    {"name = a\r\nport = 80\r\n", 0, 1, "carriage return in line (CRLF"},
    {"name = a\nport = 80\r\n", 0, 2, "carriage return"},
    {"name = a\nport = 8\0\n", 18, 2, "NUL byte"},
    {"# x\0y\n", 6, 1, "NUL byte"},
    {"name = a\x01z\n", 0, 1, "key 'name': control character"},
    {"# only a comment\nport = 80\n", 0, 0, "missing required key 'name'"},
};

static void
test_bad_files(void **state)
{
	char err[256], prefix[320], name[32];
	const char *path;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		const struct bad_file *b = &bad_files[i];

		snprintf(name, sizeof(name), "bad%zu.conf", i);
		path = write_file(name, b->text, b->len > 0 ? b->len : strlen(b->text), 0600);
		if (b->line > 0)
			snprintf(prefix, sizeof(prefix), "%s:%d: ", path, b->line);
		else
			snprintf(prefix, sizeof(prefix), "%s: ", path);
		err[0] = '\0';
		if (cfg_load(secs, NSECS, path, err, sizeof(err)) != -1)
			fail_msg("row %zu: accepted", i);
		if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, b->expect) == NULL)
			fail_msg("row %zu: got \"%s\", want \"%s...%s\"", i, err, prefix, b->expect);
	}
}

/* A value that fails is never echoed: it might be a secret in the wrong key. */
static void
test_value_not_echoed(void **state)
{
	char err[256];
	const char *path;

	(void)state;
	path = write_text("echo.conf", "name = a\nport = hunter2\n");
	assert_int_equal(cfg_load(secs, NSECS, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an integer"));
	assert_null(strstr(err, "hunter2"));
}

static void
test_long_lines(void **state)
{
	char *text, err[256], want[320];
	const char *path;

	(void)state;
	text = malloc(2 * 4097 + 16);
	assert_non_null(text);
	/* Line 2 is exactly 4096 bytes: accepted. */
	strcpy(text, "name = a\n#");
	memset(text + 10, 'x', 4095);
	strcpy(text + 10 + 4095, "\n");
	path = write_text("long-ok.conf", text);
	assert_int_equal(cfg_load(secs, NSECS, path, err, sizeof(err)), 0);
	/* One byte more: refused, naming the line. */
	strcpy(text, "name = a\n#");
	memset(text + 10, 'x', 4096);
	strcpy(text + 10 + 4096, "\n");
	path = write_text("long-bad.conf", text);
	assert_int_equal(cfg_load(secs, NSECS, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: line longer than 4096 bytes", path);
	assert_string_equal(err, want);
	free(text);
}

static const struct set_int {
	const char *key;
	const char *value;
	int64_t want;
} set_ints[] = {
    {"port", "1", 1},
    {"port", "65535", 65535},
    {"port", "0080", 80},
    {"offset", "-0", 0},
    {"offset", "-100", -100},
    {"big", "9223372036854775807", INT64_MAX},
    {"big", "-9223372036854775808", INT64_MIN},
    {"net.backlog", "17", 17},
};

static int64_t *
int_field(const char *key)
{
	if (strcmp(key, "port") == 0)
		return &conf.port;
	if (strcmp(key, "offset") == 0)
		return &conf.offset;
	if (strcmp(key, "big") == 0)
		return &conf.big;
	return &net.backlog;
}

static void
test_set_ints(void **state)
{
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(set_ints) / sizeof(set_ints[0]); i++) {
		const struct set_int *r = &set_ints[i];

		*int_field(r->key) = 12345;
		if (cfg_set(secs, NSECS, r->key, r->value, err, sizeof(err)) != 0)
			fail_msg("row %zu: %s", i, err);
		if (*int_field(r->key) != r->want)
			fail_msg("row %zu: got %lld", i, (long long)*int_field(r->key));
	}
}

static void
test_set_bools(void **state)
{
	static const struct {
		const char *value;
		int want;
	} rows[] = {{"yes", 1}, {"no", 0}, {"true", 1}, {"false", 0}, {"1", 1}, {"0", 0}};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		conf.debug = 7;
		assert_int_equal(cfg_set(secs, NSECS, "debug", rows[i].value, err, sizeof(err)), 0);
		assert_int_equal(conf.debug, rows[i].want);
	}
}

static void
test_set_errors(void **state)
{
	char err[256];

	(void)state;
	conf.port = 443;
	assert_int_equal(cfg_set(secs, NSECS, "port", "70000", err, sizeof(err)), -1);
	assert_int_equal(conf.port, 443); /* a bad value writes nothing */
	assert_int_equal(cfg_set(secs, NSECS, "nope", "1", err, sizeof(err)), -1);
	assert_string_equal(err, "unknown key 'nope'");
	assert_int_equal(cfg_set(secs, NSECS, "NAME", "x", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid key name"));
	strcpy(conf.dir, "/old");
	assert_int_equal(cfg_set(secs, NSECS, "dir", "/a\nb", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "control character"));
	assert_string_equal(conf.dir, "/old");
	assert_int_equal(cfg_set(secs, NSECS, "dir", "", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "path is empty"));
	assert_int_equal(cfg_set(secs, NSECS, "note", "1234567", err, sizeof(err)), 0);
	assert_string_equal(conf.note, "1234567");
}

static void
test_print_keys(void **state)
{
	char *out = NULL, *line;
	size_t outlen = 0;
	int lines = 0;
	FILE *fp;

	(void)state;
	fp = open_memstream(&out, &outlen);
	assert_non_null(fp);
	cfg_print_keys(secs, NSECS, fp);
	assert_int_equal(fclose(fp), 0);
	for (line = out; (line = strchr(line, '\n')) != NULL; line++)
		lines++;
	assert_int_equal(lines, 9);
	assert_non_null(strstr(out, "  name         string  (required)    — instance name\n"));
	assert_non_null(strstr(out, "  port         int     8080          — TCP port\n"));
	assert_non_null(strstr(out, "  note         string  \"\"            — short note\n"));
	assert_non_null(strstr(out, "  net.backlog  int     128           — listen backlog\n"));
	free(out);
}

/* Run fn in a child with stderr closed; returns its exit status (fatalx: 1). */
static int
child_status(void (*fn)(void))
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			(void)dup2(fd, STDERR_FILENO);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
load_bad_default(void)
{
	const struct cfg_key keys[] = {
	    {"port", CFG_INT, offsetof(struct tconf, port), 0, 1, 10, "11", "out of bounds"},
	    CFG_END,
	};
	const struct cfg_section s[] = {{keys, &conf}};
	char err[128];

	(void)cfg_load(s, 1, NULL, err, sizeof(err));
}

static void
load_shared_name(void)
{
	const struct cfg_key other[] = {
	    {"port", CFG_INT, offsetof(struct tnet, backlog), 0, 1, 10, "1", "same name"},
	    CFG_END,
	};
	const struct cfg_section s[] = {{conf_keys, &conf}, {other, &net}};
	char err[128];

	(void)cfg_load(s, 2, NULL, err, sizeof(err));
}

static void
load_str_too_big(void)
{
	const struct cfg_key keys[] = {
	    {"note", CFG_STR, offsetof(struct tconf, note), sizeof(conf.note), 0, 8, "", "max"},
	    CFG_END,
	};
	const struct cfg_section s[] = {{keys, &conf}};
	char err[128];

	(void)cfg_load(s, 1, NULL, err, sizeof(err));
}

static void
load_good_table(void)
{
	char err[128];

	(void)cfg_load(secs, NSECS, NULL, err, sizeof(err));
}

static void
test_table_bugs_are_fatal(void **state)
{
	(void)state;
	assert_int_equal(child_status(load_bad_default), 1);
	assert_int_equal(child_status(load_shared_name), 1);
	assert_int_equal(child_status(load_str_too_big), 1);
	/* The same harness passes a sound table: the checks above can fail. */
	assert_int_equal(child_status(load_good_table), 0);
}

static const struct secret_case {
	const char *name;
	const char *text;
	mode_t mode;
	int link;  /* open a symlink to the file instead of the file */
	size_t min, max;
	int want;  /* returned length, or -1 */
	const char *expect;  /* substring of err when want == -1 */
} secret_cases[] = {
    {"good", "CANARY-secret-0123456789\n", 0600, 0, 16, 64, 24, NULL},
    {"owner-only-r", "CANARY-secret-0123456789", 0400, 0, 16, 64, 24, NULL},
    {"exact-max", "CANARY-abcdefghi\n", 0600, 0, 16, 16, 16, NULL},
    {"two-newlines", "CANARY-xy\n\n", 0600, 0, 1, 64, 10, NULL},
    {"world", "CANARY-secret-0123456789\n", 0644, 0, 16, 64, -1, "readable by group or others (chmod 600)"},
    {"group", "CANARY-secret-0123456789\n", 0640, 0, 16, 64, -1, "chmod 600"},
    {"group-w", "CANARY-secret-0123456789\n", 0620, 0, 16, 64, -1, "chmod 600"},
    {"short", "CANARY\n", 0600, 0, 16, 64, -1, "secret is shorter than 16 bytes"},
    {"empty", "", 0600, 0, 1, 64, -1, "secret is shorter than 1 bytes"},
    {"long", "CANARY-abcdefghij", 0600, 0, 1, 16, -1, "secret is longer than 16 bytes"},
    {"long-nl", "CANARY-abcdefghi\n\n", 0600, 0, 1, 16, -1, "secret is longer than 16 bytes"},
    {"link", "CANARY-secret-0123456789\n", 0600, 1, 16, 64, -1, "is a symbolic link"},
};

static void
test_secrets(void **state)
{
	char err[256], path[256], target[256];
	uint8_t buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(secret_cases) / sizeof(secret_cases[0]); i++) {
		const struct secret_case *c = &secret_cases[i];
		size_t len = strlen(c->text);
		int rc;

		snprintf(target, sizeof(target), "%s", write_file(c->name, c->text, len, c->mode));
		snprintf(path, sizeof(path), "%s", target);
		if (c->link) {
			snprintf(path, sizeof(path), "%s/%s.lnk", tmpdir, c->name);
			(void)unlink(path);
			assert_int_equal(symlink(target, path), 0);
		}
		memset(buf, 0, sizeof(buf));
		err[0] = '\0';
		rc = cfg_read_secret(path, buf, c->min, c->max, err, sizeof(err));
		if (rc != c->want)
			fail_msg("%s: got %d (%s), want %d", c->name, rc, err, c->want);
		if (c->want >= 0 && memcmp(buf, c->text, (size_t)c->want) != 0)
			fail_msg("%s: wrong bytes", c->name);
		if (c->want == -1 && strstr(err, c->expect) == NULL)
			fail_msg("%s: got \"%s\", want \"%s\"", c->name, err, c->expect);
		if (strstr(err, "CANARY") != NULL)
			fail_msg("%s: err leaks the secret", c->name);
	}
}

static void
test_secret_not_regular(void **state)
{
	char err[256], path[256];
	uint8_t buf[16];

	(void)state;
	snprintf(path, sizeof(path), "%s/secret-dir", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(cfg_read_secret(path, buf, 1, sizeof(buf), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	snprintf(path, sizeof(path), "%s/no-such-secret", tmpdir);
	assert_int_equal(cfg_read_secret(path, buf, 1, sizeof(buf), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_good_file, reset),
	    cmocka_unit_test_setup(test_defaults, reset),
	    cmocka_unit_test_setup(test_no_file, reset),
	    cmocka_unit_test_setup(test_bad_files, reset),
	    cmocka_unit_test_setup(test_value_not_echoed, reset),
	    cmocka_unit_test_setup(test_long_lines, reset),
	    cmocka_unit_test_setup(test_set_ints, reset),
	    cmocka_unit_test_setup(test_set_bools, reset),
	    cmocka_unit_test_setup(test_set_errors, reset),
	    cmocka_unit_test(test_print_keys),
	    cmocka_unit_test_setup(test_table_bugs_are_fatal, reset),
	    cmocka_unit_test(test_secrets),
	    cmocka_unit_test(test_secret_not_regular),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
