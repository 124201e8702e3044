/*
 * config.h — strict "key = value" configuration files.
 *
 * A daemon describes every key it accepts in a table: name, type, where the
 * value goes, bounds, default and a one-line help. Loading is all or nothing:
 * an unknown key, a duplicate, a value out of bounds or a missing required key
 * fails the whole file with a message naming the file, line and key.
 *
 * File syntax: one "key = value" per line; blank lines and lines whose first
 * non-blank character is '#' are ignored; surrounding blanks are trimmed; no
 * quoting, no inline comments, no continuation lines. Keys are [a-z0-9_.].
 */
#ifndef CN2_CONFIG_H
#define CN2_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
	CFG_STR,  /* char[size], length in [min, max] (max ≤ size - 1) */
	CFG_PATH, /* like CFG_STR, but must be non-empty and contain no NUL/newline */
	CFG_INT,  /* int64_t, decimal, in [min, max] */
	CFG_BOOL, /* int: "yes"/"no"/"true"/"false"/"1"/"0" */
};

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t offset;   /* offset of the field in the struct the table describes */
	size_t size;     /* CFG_STR/CFG_PATH: size of the char array */
	int64_t min;     /* CFG_INT: lowest value; CFG_STR: shortest length */
	int64_t max;     /* CFG_INT: highest value; CFG_STR: longest length */
	const char *def; /* default, written as in a file; NULL = the key is required */
	const char *help;
};

/* A table and the struct it fills. Tables end with an entry whose name is NULL. */
struct cfg_section {
	const struct cfg_key *keys;
	void *base;
};

#define CFG_END {NULL, CFG_STR, 0, 0, 0, 0, NULL, NULL}

/*
 * Apply every default, then read the file at path (NULL: defaults only) into
 * the sections. Returns 0, or -1 with a one-line reason in err.
 */
int cfg_load(const struct cfg_section *secs, size_t nsecs, const char *path, char *err,
    size_t errlen);

/* Set one key from text, as if read from a file (used by cfg_load and tests). */
int cfg_set(const struct cfg_section *secs, size_t nsecs, const char *key, const char *value,
    char *err, size_t errlen);

/*
 * Read a secret from a file: the whole file, less one trailing newline, must
 * be between min and max bytes, and the file must not be readable by group or
 * others. Returns the length, or -1 with a reason (never the contents) in err.
 * The caller wipes buf when done.
 */
int cfg_read_secret(const char *path, uint8_t *buf, size_t min, size_t max, char *err,
    size_t errlen);

/*
 * Print every key of the sections to fp, one per line, for --help output:
 * "  name  type  default  — help". Required keys show "(required)".
 */
void cfg_print_keys(const struct cfg_section *secs, size_t nsecs, FILE *fp);

#endif
