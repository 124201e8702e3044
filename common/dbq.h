/*
 * dbq.h — group commit: many requests' writes in one SQLite transaction.
 *
 * A daemon pushes a write (apply) and what to do once it is durable (done).
 * After the loop has handled the events of one iteration, every queued write
 * runs in one BEGIN IMMEDIATE … COMMIT, each inside its own SAVEPOINT so one
 * failing write does not undo the others, and then each done() is called:
 * status 0 when the write is committed (durable, with synchronous=FULL), -1
 * when its apply failed or the commit did. Nothing is acknowledged before it
 * is durable; one fsync serves the whole batch.
 *
 * The commit blocks the loop for one fsync per batch, by design (DESIGN.md
 * §1: "blocking work is batched"); reads outside a batch are the daemon's own.
 */
#ifndef CN2_DBQ_H
#define CN2_DBQ_H

#include <sqlite3.h>
#include <uv.h>

struct dbq;

/* Run inside the transaction: 0 to keep this write, -1 to roll it back alone. */
typedef int (*dbq_apply_fn)(sqlite3 *db, void *arg);
/* After the batch: status 0 if this write is durable, -1 if not. */
typedef void (*dbq_done_fn)(void *arg, int status);

struct dbq *dbq_new(uv_loop_t *loop, sqlite3 *db);
/* Queue a write. 0, or -1 when out of memory (nothing queued, done not called). */
int dbq_push(struct dbq *q, dbq_apply_fn apply, dbq_done_fn done, void *arg);
/* Commit what is queued now (used at stop, and by tests). */
void dbq_flush(struct dbq *q);
/* Flush, then free (the check handle is closed on the loop). */
void dbq_free(struct dbq *q);

/* Writes committed and batches run since start, for health reports and benchmarks. */
unsigned long long dbq_writes(const struct dbq *q);
unsigned long long dbq_batches(const struct dbq *q);

#endif
