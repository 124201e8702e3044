/*
 * health.c — GET /healthz: the readiness of every daemon, as the edge sees it.
 *
 * The edge asks each daemon it dials for IPC_HEALTH (1 s timeout) and reports
 * the others (the ledger) through the daemons that dial them: a daemon is
 * ready there when one of those reports its link up. 200 when all six are
 * ready, 503 otherwise. The body says nothing secret: pids, uptimes, counters.
 */
#include "edge/edge.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define HEALTH_TIMEOUT_MS 1000

struct health_job;

struct health_slot {
	struct health_job *job;
	enum ipc_role role;
	uint64_t id;	/* open request, 0 when answered or never sent */
	int answered;
	struct ipc_health_rep rep;
	char why[64];
};

struct health_job {
	struct hjob base; /* first: the server sees only this */
	struct edge *e;
	int outstanding;
	struct health_slot slots[ROLE_MAX];
};

static cJSON *
health_direct(const struct health_slot *s)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ready", s->answered && s->rep.ready);
	if (!s->answered) {
		cJSON_AddStringToObject(o, "detail", s->why);
		return o;
	}
	cJSON_AddNumberToObject(o, "pid", s->rep.pid);
	cJSON_AddNumberToObject(o, "uptime_ms", (double)s->rep.uptime_ms);
	cJSON_AddNumberToObject(o, "requests", (double)s->rep.requests);
	cJSON_AddNumberToObject(o, "errors", (double)s->rep.errors);
	cJSON_AddStringToObject(o, "detail", s->rep.detail);
	return o;
}

/* A daemon the edge does not dial: ready if a daemon that dials it says so. */
static cJSON *
health_indirect(const struct health_job *j, enum ipc_role role, int *ready)
{
	cJSON *o = cJSON_CreateObject(), *via = cJSON_AddArrayToObject(o, "via");

	*ready = 0;
	for (int r = ROLE_NONE + 1; r < ROLE_MAX; r++) {
		const struct health_slot *s = &j->slots[r];

		if (!s->answered || !(s->rep.wanted & (1u << role)))
			continue;
		cJSON_AddItemToArray(via, cJSON_CreateString(ipc_role_name((enum ipc_role)r)));
		if (s->rep.links & (1u << role))
			*ready = 1;
	}
	cJSON_AddBoolToObject(o, "ready", *ready);
	cJSON_AddStringToObject(o, "detail", *ready ? "linked" : "no peer reports a link to it");
	return o;
}

static cJSON *
health_self(struct edge *e)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ready", !e->stopping);
	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddNumberToObject(o, "uptime_ms", (double)(uv_now(e->d->loop) - e->d->started_ms));
	cJSON_AddNumberToObject(o, "connections", (double)e->nconns);
	cJSON_AddNumberToObject(o, "requests", (double)e->served);
	return o;
}

static void
health_finish(struct health_job *j)
{
	uint32_t dialled = ipc_wanted(j->e->d->ipc);
	cJSON *root = cJSON_CreateObject(), *ds = cJSON_CreateObject();
	int all = !j->e->stopping, ready;
	char *body;

	cJSON_AddItemToObject(ds, "edge", health_self(j->e));
	for (int r = ROLE_EDGE + 1; r < ROLE_CTL; r++) {
		cJSON *o;

		if (dialled & (1u << r)) {
			o = health_direct(&j->slots[r]);
			ready = j->slots[r].answered && j->slots[r].rep.ready;
		} else {
			o = health_indirect(j, (enum ipc_role)r, &ready);
		}
		all &= ready;
		cJSON_AddItemToObject(ds, ipc_role_name((enum ipc_role)r), o);
	}
	cJSON_AddStringToObject(root, "status", all ? "ok" : "degraded");
	cJSON_AddItemToObject(root, "daemons", ds);
	body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (body == NULL)
		hconn_problem(j->base.conn, 500, "internal", "out of memory");
	else
		hconn_respond(j->base.conn, all ? 200 : 503, "application/json",
		    "Cache-Control: no-store\r\n", body, strlen(body));
	free(body);
	free(j);
}

static void
health_on_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct health_slot *s = arg;
	struct health_job *j = s->job;

	s->id = 0;
	if (status == 0 && type == IPC_HEALTH_REP && msg->health_rep.role == s->role) {
		s->rep = msg->health_rep;
		s->answered = 1;
	} else {
		snprintf(s->why, sizeof(s->why), "%s",
		    status == IPC_ERR_TIMEOUT ? "no answer in time" : "unexpected answer");
	}
	if (--j->outstanding == 0)
		health_finish(j);
}

/* The client went away: forget the open requests and the job. */
static void
health_cancel(struct hjob *base)
{
	struct health_job *j = (struct health_job *)base;

	for (int r = 0; r < ROLE_MAX; r++)
		if (j->slots[r].id != 0)
			ipc_forget(j->e->d->ipc, j->slots[r].id);
	free(j);
}

void
edge_health(struct edge *e, struct hconn *c)
{
	uint32_t dialled = ipc_wanted(e->d->ipc);
	struct health_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		hconn_problem(c, 503, "unavailable", "out of memory");
		return;
	}
	j->e = e;
	j->base.cancel = health_cancel;
	for (int r = 0; r < ROLE_MAX; r++) {
		struct health_slot *s = &j->slots[r];

		s->job = j;
		s->role = (enum ipc_role)r;
		snprintf(s->why, sizeof(s->why), "not connected");
		if (!(dialled & (1u << r)))
			continue;
		s->id = ipc_request(e->d->ipc, s->role, IPC_HEALTH, NULL, HEALTH_TIMEOUT_MS,
		    health_on_reply, s);
		if (s->id != 0)
			j->outstanding++;
	}
	hconn_attach(c, &j->base);
	if (j->outstanding == 0)
		health_finish(j);
}
