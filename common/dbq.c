/*
 * dbq.c — group commit on the loop's check phase. See dbq.h.
 */
#include "common/dbq.h"

#include <stdlib.h>

#include "common/db.h"
#include "common/log.h"

struct dbq_item {
	struct dbq_item *next;
	dbq_apply_fn apply;
	dbq_done_fn done;
	void *arg;
	int status;
};

struct dbq {
	uv_check_t check;
	sqlite3 *db;
	struct dbq_item *head, **tail;
	unsigned long long writes, batches;
};

/* The savepoint statements run once per write: prepared once (db_stmt), not per call. */
static int
item_apply(sqlite3 *db, struct dbq_item *it)
{
	if (db_exec_cached(db, "SAVEPOINT w") != SQLITE_OK)
		return -1;
	if (it->apply(db, it->arg) == 0)
		return db_exec_cached(db, "RELEASE w") == SQLITE_OK ? 0 : -1;
	db_exec_cached(db, "ROLLBACK TO w");
	db_exec_cached(db, "RELEASE w");
	return -1;
}

void
dbq_flush(struct dbq *q)
{
	struct dbq_item *batch = q->head, *it, *next;
	int ok;

	if (batch == NULL)
		return;
	q->head = NULL;
	q->tail = &q->head;
	ok = db_begin(q->db) == SQLITE_OK;
	for (it = batch; it != NULL; it = it->next)
		it->status = ok ? item_apply(q->db, it) : -1;
	if (ok && db_commit(q->db) != SQLITE_OK) {
		log_warnx("commit of %s failed: %s", sqlite3_db_filename(q->db, "main"),
		    sqlite3_errmsg(q->db));
		db_rollback(q->db);
		ok = 0;
	}
	q->batches++;
	/* done() may push new writes: they go into the next batch. */
	for (it = batch; it != NULL; it = next) {
		next = it->next;
		if (ok && it->status == 0)
			q->writes++;
		it->done(it->arg, ok ? it->status : -1);
		free(it);
	}
}

static void
dbq_on_check(uv_check_t *c)
{
	dbq_flush(c->data);
}

struct dbq *
dbq_new(uv_loop_t *loop, sqlite3 *db)
{
	struct dbq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->db = db;
	q->tail = &q->head;
	uv_check_init(loop, &q->check);
	q->check.data = q;
	uv_check_start(&q->check, dbq_on_check);
	uv_unref((uv_handle_t *)&q->check);
	return q;
}

int
dbq_push(struct dbq *q, dbq_apply_fn apply, dbq_done_fn done, void *arg)
{
	struct dbq_item *it = calloc(1, sizeof(*it));

	if (it == NULL)
		return -1;
	it->apply = apply;
	it->done = done;
	it->arg = arg;
	*q->tail = it;
	q->tail = &it->next;
	return 0;
}

static void
dbq_on_closed(uv_handle_t *h)
{
	free(h->data);
}

void
dbq_free(struct dbq *q)
{
	if (q == NULL)
		return;
	dbq_flush(q);
	uv_close((uv_handle_t *)&q->check, dbq_on_closed);
}

unsigned long long
dbq_writes(const struct dbq *q)
{
	return q->writes;
}

unsigned long long
dbq_batches(const struct dbq *q)
{
	return q->batches;
}
