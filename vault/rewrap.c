/*
 * rewrap.c — `cn2-vault rewrap`: re-seal every key (and every intake key
 * pair) under the current master key, then retire the versions no row uses.
 *
 *   cn2-vault rewrap [-n] [-b rows] [-w ms] [-f /etc/cn2/vault.conf]
 *
 * A master-key rotation: put the new key in master_key_file with
 * master_key_version one higher and the old key in previous_master_key_file,
 * restart the vault (new keys are sealed under the new version at once, old
 * rows still open under the old one), run `cn2-vault rewrap`, then remove
 * previous_master_key_file. The daemon may keep running meanwhile: SQLite
 * serialises the writers.
 *
 * Crash safety: rows are re-sealed in transactions of -b rows. Each row's
 * ciphertext and its master_version change together, in one UPDATE, so at
 * any instant — a SIGKILL included — every row is sealed under the version
 * its column names, and opens with that version's key. Rerunning picks up
 * the rows still under an old version. A version is retired only in a
 * transaction that finds no row under it. The UPDATE also requires the row
 * to be unchanged since it was read, so a seller's rotation that lands in
 * between is never overwritten with the old secret.
 *
 * -n only checks: every row is opened with its version's key and counted;
 * nothing is written. -w pauses between transactions, to leave the daemon
 * room on a large vault.
 *
 * Security stance: the same as the daemon's. The process is not dumpable and
 * leaves no core file; each plaintext exists only in locked memory between
 * one open and one seal, and is wiped; output names key ids, versions and
 * counts, never key material.
 */
#include "vault/vault.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "common/db.h"
#include "common/log.h"

#define REWRAP_BATCH_MAX 1000
#define REWRAP_CT_MAX (4096 + SEAL_TAG_LEN)

/* A table of sealed rows: its name, key column and ciphertext column. */
struct table {
	const char *name, *id, *ct;
};

static const struct table tables[] = {
    {"keys", "key_id", "ciphertext"},
    {"intake_keys", "kid", "sealed"},
};

struct row {
	char id[IPC_KEY_ID_MAX + 1];
	uint8_t nonce[SEAL_NONCE_LEN];
	uint8_t ct[REWRAP_CT_MAX];
	size_t ctlen;
	uint32_t version;
};

struct rewrap {
	sqlite3 *db;
	struct keyring kr;
	int check_only;
	long batch;
	long pause_ms;
	long long done, failed, ok;
};

static void
rewrap_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2-vault rewrap [-n] [-b rows] [-w ms] [-f config]\n"
	    "Re-seal every key under the current master key (master_key_file, version\n"
	    "master_key_version), then retire the master versions no key uses. Resumable:\n"
	    "run it again after any interruption.\n\n"
	    "  -f file  the vault's configuration (default /etc/cn2/vault.conf)\n"
	    "  -n       check only: open every key with its version's key, change nothing\n"
	    "  -b rows  rows per transaction (default 100)\n"
	    "  -w ms    pause between transactions (default 0)\n");
}

/* The next batch of rows of t under another version than cur, after *after. */
static int
rewrap_read(struct rewrap *r, const struct table *t, const char *after, struct row *rows,
    long max)
{
	char sql[256];
	sqlite3_stmt *st;
	int n = 0, rc;

	snprintf(sql, sizeof(sql),
	    "SELECT %s, nonce, %s, master_version FROM %s WHERE %s > ?1%s ORDER BY %s LIMIT ?2",
	    t->id, t->ct, t->name, t->id, r->check_only ? "" : " AND master_version != ?3", t->id);
	st = db_prepare(r->db, sql);
	sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, max);
	if (!r->check_only)
		sqlite3_bind_int64(st, 3, r->kr.cur->version);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(st, 0);
		int nl = sqlite3_column_bytes(st, 1), cl = sqlite3_column_bytes(st, 2);
		sqlite3_int64 v = sqlite3_column_int64(st, 3);

		if (id == NULL || strlen((const char *)id) > IPC_KEY_ID_MAX || nl != SEAL_NONCE_LEN ||
		    cl <= SEAL_TAG_LEN || cl > REWRAP_CT_MAX || v < 0 || v > UINT32_MAX) {
			rc = SQLITE_CORRUPT;
			break;
		}
		strcpy(rows[n].id, (const char *)id);
		memcpy(rows[n].nonce, sqlite3_column_blob(st, 1), SEAL_NONCE_LEN);
		memcpy(rows[n].ct, sqlite3_column_blob(st, 2), (size_t)cl);
		rows[n].ctlen = (size_t)cl;
		rows[n].version = (uint32_t)v;
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "cn2-vault rewrap: reading %s: %s\n", t->name, sqlite3_errstr(rc));
		return -1;
	}
	return n;
}

/* Replace one row's ciphertext if the row is still what was read. 1, 0 (changed), -1. */
static int
rewrap_write(struct rewrap *r, const struct table *t, const struct row *old,
    const uint8_t *nonce, const uint8_t *ct)
{
	char sql[256];
	sqlite3_stmt *st;
	int rc;

	snprintf(sql, sizeof(sql),
	    "UPDATE %s SET nonce = ?1, %s = ?2, master_version = ?3 "
	    "WHERE %s = ?4 AND master_version = ?5 AND %s = ?6",
	    t->name, t->ct, t->id, t->ct);
	st = db_prepare(r->db, sql);
	sqlite3_bind_blob(st, 1, nonce, SEAL_NONCE_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, ct, (int)old->ctlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->kr.cur->version);
	sqlite3_bind_text(st, 4, old->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, old->version);
	sqlite3_bind_blob(st, 6, old->ct, (int)old->ctlen, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "cn2-vault rewrap: updating %s: %s\n", t->name, sqlite3_errstr(rc));
		return -1;
	}
	return sqlite3_changes(r->db) > 0 ? 1 : 0;
}

/*
 * Open one row and, unless checking, seal it under the current key. 0 done
 * (or the row changed meanwhile, so it is current already), -1 it does not
 * open, -2 a failure that stops the run.
 */
static int
rewrap_row(struct rewrap *r, const struct table *t, const struct row *row)
{
	struct seal *s = keyring_for(&r->kr, row->version);
	size_t len = row->ctlen - SEAL_TAG_LEN;
	uint8_t *pt = secmem_alloc(len), nonce[SEAL_NONCE_LEN], ct[REWRAP_CT_MAX];
	int rc;

	if (pt == NULL)
		rc = -2;
	else if (s == NULL || seal_open(s, row->id, row->version, row->nonce, row->ct,
				   row->ctlen, pt) != 0) {
		fprintf(stderr, "cn2-vault rewrap: %s %s does not open under master version %u\n",
		    t->name, row->id, (unsigned)row->version);
		rc = -1;
	} else if (r->check_only)
		rc = 0;
	else if (seal_seal(r->kr.cur, row->id, pt, len, nonce, ct) != 0)
		rc = -2;
	else
		rc = rewrap_write(r, t, row, nonce, ct) < 0 ? -2 : 0;
	secmem_free(pt);
	mbedtls_platform_zeroize(ct, sizeof(ct));
	return rc;
}

static void
rewrap_pause(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	if (ms > 0)
		nanosleep(&ts, NULL);
}

/* One table, batch by batch. 0, or -1 on a database error. */
static int
rewrap_table(struct rewrap *r, const struct table *t, struct row *rows)
{
	char after[IPC_KEY_ID_MAX + 1] = "";
	int n;

	while ((n = rewrap_read(r, t, after, rows, r->batch)) > 0) {
		if (!r->check_only && db_begin(r->db) != SQLITE_OK)
			return -1;
		for (int i = 0; i < n; i++) {
			int rc = rewrap_row(r, t, &rows[i]);

			if (rc == -2) {
				db_rollback(r->db);
				return -1;
			}
			*(rc == 0 ? (r->check_only ? &r->ok : &r->done) : &r->failed) += 1;
		}
		if (!r->check_only && db_commit(r->db) != SQLITE_OK)
			return -1;
		snprintf(after, sizeof(after), "%s", rows[n - 1].id);
		rewrap_pause(r->check_only ? 0 : r->pause_ms);
	}
	return n < 0 ? -1 : 0;
}

/* Retire every older version no row uses any more. */
static void
rewrap_retire(struct rewrap *r)
{
	struct store_master ms[64];
	int n = store_master_list(r->db, ms, 64);

	for (int i = 0; i < n; i++) {
		int rc;

		if (ms[i].version == r->kr.cur->version || ms[i].retired)
			continue;
		if ((rc = store_master_retire(r->db, ms[i].version)) == 1)
			printf("master key version %u retired: no key uses it; its key file may go "
			       "(previous_master_key_file)\n", (unsigned)ms[i].version);
		else if (rc == 0)
			printf("master key version %u is still in use: run rewrap again\n",
			    (unsigned)ms[i].version);
	}
}

static int
rewrap_run(struct rewrap *r)
{
	struct row *rows = calloc((size_t)r->batch, sizeof(*rows));
	int rc = 0;

	if (rows == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]) && rc == 0; i++)
		rc = rewrap_table(r, &tables[i], rows);
	mbedtls_platform_zeroize(rows, (size_t)r->batch * sizeof(*rows));
	free(rows);
	if (rc != 0)
		return -1;
	if (r->check_only)
		printf("%lld sealed rows open, %lld do not\n", r->ok, r->failed);
	else {
		printf("%lld rows re-sealed under master key version %u, %lld could not be opened\n",
		    r->done, (unsigned)r->kr.cur->version, r->failed);
		if (r->failed == 0)
			rewrap_retire(r);
	}
	return r->failed == 0 ? 0 : -1;
}

static int
rewrap_args(struct rewrap *r, int argc, char **argv, const char **path)
{
	int ch;

	optind = 1;
	while ((ch = getopt(argc, argv, "nb:w:f:h")) != -1) {
		switch (ch) {
		case 'n':
			r->check_only = 1;
			break;
		case 'b':
			r->batch = strtol(optarg, NULL, 10);
			break;
		case 'w':
			r->pause_ms = strtol(optarg, NULL, 10);
			break;
		case 'f':
			*path = optarg;
			break;
		case 'h':
			rewrap_usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || r->batch < 1 || r->batch > REWRAP_BATCH_MAX || r->pause_ms < 0 ||
	    r->pause_ms > 60000)
		return -1;
	return 0;
}

int
rewrap_main(const struct daemon_spec *spec, struct vault_cfg *cfg, int argc, char **argv)
{
	struct daemon_common_cfg common;
	struct rewrap r;
	const char *path = "/etc/cn2/vault.conf";
	char err[512];
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&common, 0, sizeof(common));
	r.batch = 100;
	log_set_ident("cn2-vault rewrap");
	if (rewrap_args(&r, argc, argv, &path) != 0) {
		rewrap_usage(stderr);
		return 2;
	}
	if (daemon_load_config(spec, path, &common, err, sizeof(err)) != 0 ||
	    vault_harden(err, sizeof(err)) != 0 ||
	    (r.db = store_open(cfg->database, err, sizeof(err))) == NULL ||
	    keyring_open(&r.kr, r.db, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "cn2-vault rewrap: %s\n", err);
		if (r.db != NULL)
			db_close(r.db);
		return 1;
	}
	rc = rewrap_run(&r);
	keyring_close(&r.kr);
	db_close(r.db);
	return rc == 0 ? 0 : 1;
}
