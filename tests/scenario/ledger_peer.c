/*
 * ledger_peer.c — see ledger_peer.h.
 */
#include "tests/scenario/ledger_peer.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct lp_answer
lp_call(struct h_ipc *h, uint16_t type, const void *msg)
{
	struct h_reply r[2];
	struct lp_answer a;
	size_t n;

	/*
	 * A test's loop may have been idle for a while: bring its clock up to
	 * date, or the request's timer would start in the past and expire at once.
	 */
	uv_update_time(&h->loop);
	n = h_ipc_call(h, ROLE_LEDGER, type, msg, r, 2, 5000);

	memset(&a, 0, sizeof(a));
	if (n == 1 && r[0].status == 0) {
		a.type = r[0].type;
		a.msg = r[0].msg;
		if (a.type == IPC_ERROR) {
			a.code = r[0].msg.error.code;
			snprintf(a.detail, sizeof(a.detail), "%s", r[0].msg.error.detail);
		}
	} else if (n == 1)
		a.code = (uint16_t)r[0].status;
	h_replies_free(r, n);
	return a;
}

void
lp_pending_msg(struct ipc_ledger_pending *m, const char *id, const char *ref, const char *method,
    int64_t amount)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->xfer_id, sizeof(m->xfer_id), "%s", id);
	snprintf(m->payment_ref, sizeof(m->payment_ref), "%s", ref);
	snprintf(m->pay_method, sizeof(m->pay_method), "%s", method);
	m->amount = amount;
}

void
lp_post_msg(struct ipc_ledger_post_split *m, const char *id, const char *seller, int64_t share,
    int64_t premium)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->xfer_id, sizeof(m->xfer_id), "%s", id);
	snprintf(m->seller_id, sizeof(m->seller_id), "%s", seller);
	m->seller_amount = share;
	m->premium_amount = premium;
}

void
lp_void_msg(struct ipc_ledger_void *m, const char *id)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->xfer_id, sizeof(m->xfer_id), "%s", id);
}

void
lp_open_msg(struct ipc_dispute_open *m, const char *id, const char *ref)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->dispute_id, sizeof(m->dispute_id), "%s", id);
	snprintf(m->payment_ref, sizeof(m->payment_ref), "%s", ref);
}

void
lp_resolve_msg(struct ipc_dispute_resolve *m, const char *id, int outcome)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->dispute_id, sizeof(m->dispute_id), "%s", id);
	m->outcome = (uint8_t)outcome;
}

static void
lp_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct lp_flight *f = arg;

	f->done = 1;
	f->status = status;
	f->type = type;
	f->code = status == 0 && type == IPC_ERROR ? msg->error.code : 0;
}

int
lp_send(struct h_ipc *h, uint16_t type, const void *msg, struct lp_flight *f)
{
	memset(f, 0, sizeof(*f));
	uv_update_time(&h->loop);
	if (ipc_request(h->ipc, ROLE_LEDGER, type, msg, 30000, lp_on_reply, f) != 0)
		return 0;
	*f = (struct lp_flight){1, IPC_ERR_UNAVAILABLE, 0, 0};
	return -1;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
lp_turn(struct h_ipc *h)
{
	uv_run(&h->loop, UV_RUN_NOWAIT);
}

size_t
lp_wait(struct h_ipc *h, const struct lp_flight *f, size_t n, int ms)
{
	int64_t end = mono_ms() + ms;
	size_t done;

	for (;;) {
		uv_run(&h->loop, UV_RUN_NOWAIT);
		done = 0;
		for (size_t i = 0; i < n; i++)
			done += f[i].done != 0;
		if (done == n || mono_ms() >= end)
			return done;
		usleep(200);
	}
}

int
lp_acked(const struct lp_flight *f)
{
	return f->done && f->status == 0 &&
	    (f->type == IPC_ACK || f->type == IPC_DISPUTE_REP || f->type == IPC_EARNINGS_REP);
}

int64_t
lp_db_int(struct h_env *e, const char *sql, const char *arg)
{
	char path[400];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = INT64_MIN;

	snprintf(path, sizeof(path), "%s/db/ledger.db", e->dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		int rc = SQLITE_BUSY;

		if (arg != NULL)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		/*
		 * Just after a SIGKILL the restarted ledger may still be recovering
		 * its WAL: a reader can get BUSY beyond the busy handler. Retry, bounded.
		 */
		for (int i = 0; i < 100 && ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED);
		     i++) {
			if (i > 0) {
				sqlite3_reset(st);
				usleep(100000);
			}
			rc = sqlite3_step(st);
		}
		if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			v = sqlite3_column_int64(st, 0);
		else if (rc != SQLITE_ROW)
			fprintf(stderr, "lp_db_int: %s: %s\n", sql, sqlite3_errmsg(db));
	} else
		fprintf(stderr, "lp_db_int: %s\n", db != NULL ? sqlite3_errmsg(db) : path);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

int64_t
lp_balance(struct h_env *e, const char *account)
{
	return lp_db_int(e, "SELECT balance FROM v_balances WHERE account = ?1", account);
}

static char *
lp_read_all(int fd)
{
	char *buf = NULL, chunk[4096];
	size_t len = 0;
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		char *nb = realloc(buf, len + (size_t)n + 1);

		if (nb == NULL)
			break;
		buf = nb;
		memcpy(buf + len, chunk, (size_t)n);
		len += (size_t)n;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return NULL;
	buf[len] = '\0';
	return buf;
}

int
lp_exec(struct h_env *e, char *const argv[], char **out, const char *errpath)
{
	int fds[2], status;
	pid_t pid;

	if (pipe(fds) != 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		int err = open(errpath != NULL ? errpath : e->logpath,
		    O_WRONLY | O_CREAT | (errpath != NULL ? O_TRUNC : O_APPEND), 0600);

		dup2(fds[1], STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		close(fds[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	*out = lp_read_all(fds[0]);
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
lp_tool(struct h_env *e, char **out, const char *tool, ...)
{
	char exe[400], conf[400], *argv[24];
	int argc = 0;
	va_list ap;

	snprintf(exe, sizeof(exe), "%s/cn2-ledger", e->bindir);
	snprintf(conf, sizeof(conf), "%s/etc/ledger.conf", e->dir);
	argv[argc++] = exe;
	argv[argc++] = (char *)(uintptr_t)tool;
	argv[argc++] = (char *)(uintptr_t)"-f";
	argv[argc++] = conf;
	va_start(ap, tool);
	while (argc < 23 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	return lp_exec(e, argv, out, NULL);
}

int
lp_conf_append(struct h_env *e, const char *daemon, const char *lines)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/etc/%s.conf", e->dir, daemon);
	if ((fp = fopen(path, "a")) == NULL)
		return -1;
	fputs(lines, fp);
	return fclose(fp) == 0 ? 0 : -1;
}

int
lp_up(struct h_env *e, const char *ledger_conf, struct h_ipc *pay, struct h_ipc *plat)
{
	static const enum ipc_role to_ledger[] = {ROLE_LEDGER};

	if (h_init(e, NULL) != 0 ||
	    (ledger_conf != NULL && lp_conf_append(e, "ledger", ledger_conf) != 0) ||
	    h_start(e, "ledger") != 0)
		return -1;
	if (h_ipc_open(e, pay, ROLE_PAYMENTS, to_ledger, 1) != 0 ||
	    h_ipc_open(e, plat, ROLE_PLATFORM, to_ledger, 1) != 0)
		return -1;
	return h_ipc_wait_link(pay, ROLE_LEDGER, 10000) == 0 &&
		    h_ipc_wait_link(plat, ROLE_LEDGER, 10000) == 0 ?
	    0 :
	    -1;
}

int
lp_down(struct h_env *e, struct h_ipc *pay, struct h_ipc *plat)
{
	h_ipc_close(plat);
	h_ipc_close(pay);
	return h_down(e);
}
