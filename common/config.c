/*
 * config.c — strict "key = value" configuration files and secret files.
 *
 * Security stance: a configuration file comes from the operator, but a typo
 * in it must stop the daemon at start rather than run it with a value nobody
 * meant, so the parser accepts exactly one spelling of each thing and fails
 * the whole file on the first doubt. Lines are bounded, the file is bounded,
 * NUL bytes, carriage returns and control characters are refused, and every
 * value is parsed before anything is written to the target struct.
 *
 * Errors name the file, the line and the key, but never echo a value: an
 * operator who pastes a secret into the wrong key must not find it in the
 * journal. Secrets themselves are read by cfg_read_secret from files that
 * only their owner can read; their bytes never reach err or the log, and
 * every temporary copy is wiped.
 *
 * A broken key table (bad bounds, a default outside its own bounds, a key
 * name used twice) is a bug in our code, not in the file: it is fatal.
 */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "common/log.h"

#define CFG_LINE_MAX 4096     /* longest line, newline excluded */
#define CFG_FILE_MAX (1 << 20) /* a config file is short; anything bigger is a mistake */
#define CFG_WHY_MAX 512

/* One key found by name: its table entry, the struct it fills, its global index. */
struct cfg_ref {
	const struct cfg_key *key;
	void *base;
	size_t index;
};

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write a reason into err (if there is room for one) and return -1. */
static int
cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
cfg_name_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
			*s == '.'))
			return 0;
	return 1;
}

/* Tabs are the only control character a value may hold: they are blanks. */
static int
cfg_has_ctrl(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 1;
	return 0;
}

static const char *
cfg_type_name(enum cfg_type type)
{
	switch (type) {
	case CFG_STR:
		return "string";
	case CFG_PATH:
		return "path";
	case CFG_INT:
		return "int";
	case CFG_BOOL:
		return "bool";
	}
	return "?";
}

/* A table entry that cannot describe a sane value is a bug: refuse to run. */
static void
cfg_check_key(const struct cfg_key *k, const void *base)
{
	if (!cfg_name_valid(k->name))
		fatalx("config table: invalid key name '%s'", k->name);
	if (base == NULL)
		fatalx("config table: key %s has no struct to fill", k->name);
	switch (k->type) {
	case CFG_STR:
	case CFG_PATH:
		if (k->size == 0 || k->min < 0 || k->min > k->max ||
		    (uint64_t)k->max > (uint64_t)k->size - 1)
			fatalx("config table: key %s: bounds [%" PRId64 ", %" PRId64
			       "] do not fit char[%zu]",
			    k->name, k->min, k->max, k->size);
		break;
	case CFG_INT:
		if (k->min > k->max)
			fatalx("config table: key %s: min > max", k->name);
		break;
	case CFG_BOOL:
		break;
	default:
		fatalx("config table: key %s: unknown type %d", k->name, (int)k->type);
	}
}

/* Check every entry, and that no name appears twice across all the tables. */
static size_t
cfg_check_tables(const struct cfg_section *secs, size_t nsecs)
{
	size_t total = 0;

	for (size_t s = 0; s < nsecs; s++) {
		for (const struct cfg_key *k = secs[s].keys; k->name != NULL; k++) {
			cfg_check_key(k, secs[s].base);
			for (size_t t = 0; t <= s; t++)
				for (const struct cfg_key *o = secs[t].keys;
				     o->name != NULL && o != k; o++)
					if (strcmp(o->name, k->name) == 0)
						fatalx("config table: key %s defined twice",
						    k->name);
			total++;
		}
	}
	return total;
}

static int
cfg_find(const struct cfg_section *secs, size_t nsecs, const char *name, struct cfg_ref *ref)
{
	size_t index = 0;

	for (size_t s = 0; s < nsecs; s++) {
		for (const struct cfg_key *k = secs[s].keys; k->name != NULL; k++, index++) {
			if (strcmp(k->name, name) == 0) {
				ref->key = k;
				ref->base = secs[s].base;
				ref->index = index;
				return 0;
			}
		}
	}
	return -1;
}

/*
 * Decimal with an optional leading '-', nothing else: no '+', no blanks, no
 * hex, no suffixes. Returns 0, -1 if s is not an integer, -2 if it does not
 * fit in int64_t.
 */
static int
cfg_parse_int(const char *s, int64_t *out)
{
	uint64_t limit = INT64_MAX, v = 0;
	int neg = 0, overflow = 0;

	if (*s == '-') {
		neg = 1;
		limit = (uint64_t)INT64_MAX + 1;
		s++;
	}
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (limit - (uint64_t)(*s - '0')) / 10)
			overflow = 1;
		else
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (overflow)
		return -2;
	if (!neg)
		*out = (int64_t)v;
	else if (v == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)v;
	return 0;
}

static int
cfg_parse_bool(const char *s, int *out)
{
	static const struct {
		const char *word;
		int value;
	} words[] = {
	    {"yes", 1}, {"no", 0}, {"true", 1}, {"false", 0}, {"1", 1}, {"0", 0},
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcmp(s, words[i].word) == 0) {
			*out = words[i].value;
			return 0;
		}
	}
	return -1;
}

static int
cfg_store_int(const struct cfg_key *k, char *field, const char *value, char *why, size_t whylen)
{
	int64_t v = 0;
	int rc;

	rc = cfg_parse_int(value, &v);
	if (rc == -1)
		return cfg_err(why, whylen, "key '%s': not an integer", k->name);
	if (rc == -2 || v < k->min || v > k->max)
		return cfg_err(why, whylen,
		    "key '%s': value out of range [%" PRId64 ", %" PRId64 "]", k->name, k->min,
		    k->max);
	memcpy(field, &v, sizeof(v));
	return 0;
}

static int
cfg_store_str(const struct cfg_key *k, char *field, const char *value, char *why, size_t whylen)
{
	size_t len = strlen(value);

	if (k->type == CFG_PATH && len == 0)
		return cfg_err(why, whylen, "key '%s': path is empty", k->name);
	if (len < (uint64_t)k->min)
		return cfg_err(why, whylen, "key '%s': string too short (at least %" PRId64 " bytes)",
		    k->name, k->min);
	if (len > (uint64_t)k->max)
		return cfg_err(why, whylen, "key '%s': string too long (at most %" PRId64 " bytes)",
		    k->name, k->max);
	memcpy(field, value, len + 1);
	return 0;
}

/* Parse value for k and, only if it is valid, write it into base. */
static int
cfg_store(const struct cfg_key *k, void *base, const char *value, char *why, size_t whylen)
{
	char *field = (char *)base + k->offset;
	int b;

	if (cfg_has_ctrl(value))
		return cfg_err(why, whylen, "key '%s': control character in value", k->name);
	switch (k->type) {
	case CFG_STR:
	case CFG_PATH:
		return cfg_store_str(k, field, value, why, whylen);
	case CFG_INT:
		return cfg_store_int(k, field, value, why, whylen);
	case CFG_BOOL:
		if (cfg_parse_bool(value, &b) == -1)
			return cfg_err(why, whylen,
			    "key '%s': not a boolean (yes/no/true/false/1/0)", k->name);
		memcpy(field, &b, sizeof(b));
		return 0;
	}
	return cfg_err(why, whylen, "key '%s': unknown type", k->name);
}

static int
cfg_set_checked(const struct cfg_section *secs, size_t nsecs, const char *key, const char *value,
    size_t *index, char *why, size_t whylen)
{
	struct cfg_ref ref;

	if (!cfg_name_valid(key))
		return cfg_err(why, whylen, "invalid key name (keys are made of [a-z0-9_.])");
	if (cfg_find(secs, nsecs, key, &ref) == -1)
		return cfg_err(why, whylen, "unknown key '%s'", key);
	if (index != NULL)
		*index = ref.index;
	return cfg_store(ref.key, ref.base, value, why, whylen);
}

int
cfg_set(const struct cfg_section *secs, size_t nsecs, const char *key, const char *value,
    char *err, size_t errlen)
{
	(void)cfg_check_tables(secs, nsecs);
	return cfg_set_checked(secs, nsecs, key, value, NULL, err, errlen);
}

/*
 * Every default first, so a file only lists what differs. Required keys are
 * zeroed, so nothing is left uninitialised if the caller forgets to.
 */
static void
cfg_defaults(const struct cfg_section *secs, size_t nsecs)
{
	char why[CFG_WHY_MAX];

	for (size_t s = 0; s < nsecs; s++) {
		for (const struct cfg_key *k = secs[s].keys; k->name != NULL; k++) {
			char *field = (char *)secs[s].base + k->offset;

			if (k->def != NULL && cfg_store(k, secs[s].base, k->def, why,
						  sizeof(why)) == -1)
				fatalx("config table: invalid default: %s", why);
			if (k->def != NULL)
				continue;
			if (k->type == CFG_INT)
				memset(field, 0, sizeof(int64_t));
			else if (k->type == CFG_BOOL)
				memset(field, 0, sizeof(int));
			else
				memset(field, 0, k->size);
		}
	}
}

/* Cut leading and trailing blanks: returns the first non-blank, ends the string. */
static char *
cfg_trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	s[n] = '\0';
	return s;
}

/*
 * Read one line into buf (CFG_LINE_MAX + 1 bytes), newline dropped. Returns 1
 * for a line, 0 at end of file, -1 for an overlong line, -2 on a read error.
 */
static int
cfg_getline(FILE *fp, char *buf, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc(fp)) != EOF && c != '\n') {
		if (n == CFG_LINE_MAX)
			return -1;
		buf[n++] = (char)c;
	}
	if (ferror(fp))
		return -2;
	if (c == EOF && n == 0)
		return 0;
	buf[n] = '\0';
	*len = n;
	return 1;
}

/* One line: blank, comment, or "key = value". seen[i] is the line key i was set on. */
static int
cfg_line(const struct cfg_section *secs, size_t nsecs, char *line, size_t len, int lineno,
    int *seen, char *why, size_t whylen)
{
	char *key, *value, *eq;
	size_t index = 0;
	struct cfg_ref ref;

	if (memchr(line, '\0', len) != NULL)
		return cfg_err(why, whylen, "NUL byte in line");
	if (memchr(line, '\r', len) != NULL)
		return cfg_err(why, whylen,
		    "carriage return in line (CRLF line endings? convert the file to LF)");
	key = cfg_trim(line);
	if (*key == '\0' || *key == '#')
		return 0;
	if ((eq = strchr(key, '=')) == NULL)
		return cfg_err(why, whylen, "missing '='");
	*eq = '\0';
	value = cfg_trim(eq + 1);
	key = cfg_trim(key);
	if (cfg_name_valid(key) && cfg_find(secs, nsecs, key, &ref) == 0 && seen[ref.index] != 0)
		return cfg_err(why, whylen, "duplicate key '%s' (first set on line %d)", key,
		    seen[ref.index]);
	if (cfg_set_checked(secs, nsecs, key, value, &index, why, whylen) == -1)
		return -1;
	seen[index] = lineno;
	return 0;
}

static FILE *
cfg_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	FILE *fp;
	int fd;

	/* O_NONBLOCK: opening a FIFO by mistake must not hang the daemon's start. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		cfg_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size > CFG_FILE_MAX) {
		cfg_err(err, errlen, "%s: not a regular file of at most %d bytes", path,
		    CFG_FILE_MAX);
		close(fd);
		return NULL;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		cfg_err(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
	}
	return fp;
}

static int
cfg_read_file(const struct cfg_section *secs, size_t nsecs, const char *path, int *seen,
    char *err, size_t errlen)
{
	char line[CFG_LINE_MAX + 1], why[CFG_WHY_MAX];
	size_t len = 0;
	int lineno = 0, rc = 0;
	FILE *fp;

	if ((fp = cfg_open(path, err, errlen)) == NULL)
		return -1;
	while (rc == 0) {
		lineno++;
		switch (cfg_getline(fp, line, &len)) {
		case 0:
			fclose(fp);
			return 0;
		case -1:
			rc = cfg_err(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
			    CFG_LINE_MAX);
			break;
		case -2:
			rc = cfg_err(err, errlen, "%s:%d: read error", path, lineno);
			break;
		default:
			if (cfg_line(secs, nsecs, line, len, lineno, seen, why, sizeof(why)) == -1)
				rc = cfg_err(err, errlen, "%s:%d: %s", path, lineno, why);
		}
	}
	fclose(fp);
	return rc;
}

static int
cfg_check_required(const struct cfg_section *secs, size_t nsecs, const char *path,
    const int *seen, char *err, size_t errlen)
{
	size_t index = 0;

	for (size_t s = 0; s < nsecs; s++) {
		for (const struct cfg_key *k = secs[s].keys; k->name != NULL; k++, index++) {
			if (k->def != NULL || seen[index] != 0)
				continue;
			if (path == NULL)
				return cfg_err(err, errlen,
				    "missing required key '%s' (no config file given)", k->name);
			return cfg_err(err, errlen, "%s: missing required key '%s'", path, k->name);
		}
	}
	return 0;
}

int
cfg_load(const struct cfg_section *secs, size_t nsecs, const char *path, char *err,
    size_t errlen)
{
	size_t total;
	int *seen, rc = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	total = cfg_check_tables(secs, nsecs);
	cfg_defaults(secs, nsecs);
	if ((seen = calloc(total + 1, sizeof(*seen))) == NULL)
		fatal("calloc");
	if (path != NULL)
		rc = cfg_read_file(secs, nsecs, path, seen, err, errlen);
	if (rc == 0)
		rc = cfg_check_required(secs, nsecs, path, seen, err, errlen);
	free(seen);
	return rc;
}

/*
 * The file must be a regular file that only its owner can read: a secret
 * that others can read is already leaked, and we would rather not start than
 * pretend otherwise.
 */
static int
cfg_secret_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1 && errno == ELOOP)
		return cfg_err(err, errlen, "%s is a symbolic link", path);
	if (fd == -1)
		return cfg_err(err, errlen, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return cfg_err(err, errlen, "%s is not a regular file", path);
	}
	if ((st.st_mode & 077) != 0) {
		close(fd);
		return cfg_err(err, errlen, "%s is readable by group or others (chmod 600)",
		    path);
	}
	return fd;
}

/* Read up to cap bytes (fewer only at end of file). Returns the count or -1. */
static ssize_t
cfg_read_all(int fd, uint8_t *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	while (n < cap) {
		r = read(fd, buf + n, cap - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

int
cfg_read_secret(const char *path, uint8_t *buf, size_t min, size_t max, char *err,
    size_t errlen)
{
	uint8_t *tmp;
	ssize_t n;
	size_t len;
	int fd, rc = -1;

	if (min > max || max > INT_MAX - 2)
		fatalx("secret bounds [%zu, %zu] are invalid", min, max);
	if ((fd = cfg_secret_open(path, err, errlen)) == -1)
		return -1;
	/* Two spare bytes: one for the newline we strip, one to see a longer file. */
	if ((tmp = malloc(max + 2)) == NULL)
		fatal("malloc");
	n = cfg_read_all(fd, tmp, max + 2);
	close(fd);
	len = n < 0 ? 0 : (size_t)n;
	if (len > 0 && tmp[len - 1] == '\n')
		len--;
	if (n < 0)
		cfg_err(err, errlen, "%s: %s", path, strerror(errno));
	else if (len > max)
		cfg_err(err, errlen, "%s: secret is longer than %zu bytes", path, max);
	else if (len < min)
		cfg_err(err, errlen, "%s: secret is shorter than %zu bytes", path, min);
	else {
		memcpy(buf, tmp, len);
		rc = (int)len;
	}
	mbedtls_platform_zeroize(tmp, max + 2);
	free(tmp);
	return rc;
}

void
cfg_print_keys(const struct cfg_section *secs, size_t nsecs, FILE *fp)
{
	int namew = 0, defw = 0;

	for (size_t s = 0; s < nsecs; s++) {
		for (const struct cfg_key *k = secs[s].keys; k->name != NULL; k++) {
			int nl = (int)strlen(k->name);
			int dl = k->def == NULL ? 10 : (int)strlen(k->def);

			if (k->def != NULL && k->def[0] == '\0')
				dl = 2;

			namew = nl > namew ? nl : namew;
			/* A long default (a path) may overflow its column rather than widen all. */
			defw = dl > defw && dl <= 24 ? dl : defw;
		}
	}
	for (size_t s = 0; s < nsecs; s++) {
		for (const struct cfg_key *k = secs[s].keys; k->name != NULL; k++) {
			const char *def = k->def == NULL ? "(required)" : k->def;

			if (k->def != NULL && k->def[0] == '\0')
				def = "\"\"";
			fprintf(fp, "  %-*s  %-6s  %-*s  — %s\n", namew, k->name,
			    cfg_type_name(k->type), defw, def, k->help == NULL ? "" : k->help);
		}
	}
}
