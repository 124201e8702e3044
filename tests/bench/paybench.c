/*
 * paybench.c — cn2-payments's own throughput: challenges issued per second
 * and credentials verified per second, for one method, measured the way
 * the edge drives it (IPC as ROLE_EDGE, up to WINDOW requests in flight).
 *
 *   paybench RUNTIME_DIR test TEST_SECRET_FILE N
 *   paybench RUNTIME_DIR lightning LND_URL LND_CERT N
 *
 * A challenge is a CHALLENGE answered with a 402 (for lightning that
 * includes an invoice from LND and its record in payments.db); a
 * verification is a VERIFY answered with a ticket (the reservation, durable,
 * and the ledger's pending transfer). Credentials are made between the two
 * timed phases (for lightning the preimages come from the fake LND, playing
 * the buyer's wallet), and every reservation is released afterwards. Prints
 * one line per phase: "<method> challenges/s <rate> (n=N)" and
 * "<method> verifications/s <rate> (n=N)". Loopback only, bounded by N.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/ipc.h"
#include "common/mpp.h"

#define WINDOW 64
#define MAXN 20000

struct bench {
	uv_loop_t loop;
	struct ipc *ipc;
	const char *method;
	int n, sent, done, failed;
	char **creds; /* Authorization values */
	struct mpp_challenge *ch;
	char (*ids)[MPP_ID_BUFSZ];
};

static struct bench B;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
no_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	(void)arg;
	(void)req;
	(void)type;
	(void)msg;
}

static void
route_init(struct ipc_route *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->provider, sizeof(r->provider), "demo");
	snprintf(r->method, sizeof(r->method), "POST");
	snprintf(r->path, sizeof(r->path), "/v1/chat/completions");
}

static void send_next(void);

static void
on_challenge(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	int i = (int)(intptr_t)arg;
	const struct ipc_bytes *w = &msg->pay_required.www_auth;
	size_t len = 0;

	B.done++;
	if (status != 0 || type != IPC_PAY_REQUIRED || msg->pay_required.status != 402) {
		B.failed++;
	} else {
		while (len < w->len && w->p[len] != '\n')
			len++;
		if (mpp_challenge_parse((const char *)w->p, len, &B.ch[i], NULL, 0) != 0)
			B.failed++;
	}
	send_next();
}

static void
on_ticket(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	int i = (int)(intptr_t)arg;

	B.done++;
	if (status != 0 || type != IPC_TICKET)
		B.failed++;
	else
		snprintf(B.ids[i], MPP_ID_BUFSZ, "%.43s", msg->ticket.payment_id);
	send_next();
}

static void
on_settled(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	(void)arg;
	(void)msg;
	B.done++;
	B.failed += status != 0 || type != IPC_SETTLED;
	send_next();
}

enum phase { PH_CHALLENGE, PH_VERIFY, PH_RELEASE };
static enum phase phase;

static void
send_one(int i)
{
	union ipc_any m;
	uint64_t id = 0;

	memset(&m, 0, sizeof(m));
	if (phase == PH_CHALLENGE) {
		route_init(&m.challenge.route);
		snprintf(m.challenge.realm, sizeof(m.challenge.realm), "demo.localhost");
		m.challenge.amount = 1100;
		snprintf(m.challenge.accept, sizeof(m.challenge.accept), "%s/charge", B.method);
		id = ipc_request(B.ipc, ROLE_PAYMENTS, IPC_CHALLENGE, &m, 30000, on_challenge,
		    (void *)(intptr_t)i);
	} else if (phase == PH_VERIFY) {
		route_init(&m.verify.route);
		snprintf(m.verify.realm, sizeof(m.verify.realm), "demo.localhost");
		m.verify.amount = 1100;
		m.verify.ncredentials = 1;
		m.verify.credential.p = (const uint8_t *)B.creds[i];
		m.verify.credential.len = (uint32_t)strlen(B.creds[i]);
		id = ipc_request(B.ipc, ROLE_PAYMENTS, IPC_VERIFY, &m, 30000, on_ticket,
		    (void *)(intptr_t)i);
	} else {
		snprintf(m.settle.payment_id, sizeof(m.settle.payment_id), "%s", B.ids[i]);
		m.settle.outcome = SETTLE_RELEASE;
		id = ipc_request(B.ipc, ROLE_PAYMENTS, IPC_SETTLE, &m, 30000, on_settled, NULL);
	}
	if (id == 0) {
		B.done++;
		B.failed++;
	}
}

static void
send_next(void)
{
	while (B.sent < B.n && B.sent - B.done < WINDOW) {
		if (phase == PH_RELEASE && B.ids[B.sent][0] == '\0') {
			B.sent++;
			B.done++;
			continue;
		}
		send_one(B.sent++);
	}
	if (B.done == B.n)
		uv_stop(&B.loop);
}

/* Run one phase over all n; its rate per second. */
static double
run_phase(enum phase p)
{
	double t0 = now_s();

	phase = p;
	B.sent = B.done = B.failed = 0;
	send_next();
	uv_run(&B.loop, UV_RUN_DEFAULT);
	return B.n / (now_s() - t0);
}

static size_t
collect(char *d, size_t s, size_t n, void *arg)
{
	FILE *f = arg;

	return fwrite(d, s, n, f);
}

/* The preimage of hash, from the fake LND; into out (65). 0 or -1. */
static int
lnd_preimage(CURL *c, const char *url, const char *cert, const char *hash, char out[65])
{
	char full[512], *body = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&body, &len);
	cJSON *j;
	const char *p;
	int rc = -1;

	snprintf(full, sizeof(full), "%s/_fake/preimage?hash=%s", url, hash);
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
	if (curl_easy_perform(c) == CURLE_OK) {
		fclose(mem);
		mem = NULL;
		j = cJSON_Parse(body);
		if ((p = cJSON_GetStringValue(cJSON_GetObjectItem(j, "preimage"))) != NULL &&
		    strlen(p) == 64) {
			memcpy(out, p, 65);
			rc = 0;
		}
		cJSON_Delete(j);
	}
	if (mem != NULL)
		fclose(mem);
	free(body);
	return rc;
}

/* The credential for challenge i; caller frees. */
static char *
credential(int i, const char *arg1, const char *arg2, const uint8_t *secret, size_t slen, CURL *c)
{
	cJSON *payload = cJSON_CreateObject(), *req;
	char proof[MPP_ID_BUFSZ], pre[65], *out = NULL;

	if (strcmp(B.method, "test") == 0) {
		if (mpp_test_proof(secret, slen, B.ch[i].id, proof) == 0)
			cJSON_AddStringToObject(payload, "proof", proof);
	} else {
		req = mpp_request_decode(B.ch[i].request);
		if (lnd_preimage(c, arg1, arg2,
			cJSON_GetStringValue(cJSON_GetObjectItem(
			    cJSON_GetObjectItem(req, "methodDetails"), "paymentHash")),
			pre) == 0)
			cJSON_AddStringToObject(payload, "preimage", pre);
		cJSON_Delete(req);
	}
	if (cJSON_GetArraySize(payload) == 1)
		out = mpp_credential_format(&B.ch[i], payload, NULL);
	cJSON_Delete(payload);
	return out;
}

static int
setup(const char *run)
{
	static const enum ipc_role dial[] = {ROLE_PAYMENTS};
	struct ipc_config c;
	char err[256];
	double end = now_s() + 10;

	memset(&c, 0, sizeof(c));
	uv_loop_init(&B.loop);
	c.loop = &B.loop;
	c.self = ROLE_EDGE;
	c.runtime_dir = run;
	c.dial = dial;
	c.ndial = 1;
	c.on_request = no_request;
	if ((B.ipc = ipc_start(&c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "paybench: %s\n", err);
		return -1;
	}
	while (!ipc_link_up(B.ipc, ROLE_PAYMENTS) && now_s() < end)
		uv_run(&B.loop, UV_RUN_NOWAIT), usleep(1000);
	return ipc_link_up(B.ipc, ROLE_PAYMENTS) ? 0 : -1;
}

int
main(int argc, char **argv)
{
	uint8_t secret[256];
	size_t slen = 0;
	double ch_rate, v_rate;
	CURL *c = NULL;
	FILE *fp;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: paybench RUNDIR test SECRET N | RUNDIR lightning URL CERT N\n");
		return 2;
	}
	B.method = argv[2];
	B.n = atoi(argv[argc - 1]);
	if (B.n < 1 || B.n > MAXN || setup(argv[1]) != 0)
		return 1;
	if (strcmp(B.method, "test") == 0) {
		if ((fp = fopen(argv[3], "r")) == NULL || (slen = fread(secret, 1, sizeof(secret), fp)) == 0)
			return 1;
		fclose(fp);
		while (slen > 0 && secret[slen - 1] == '\n')
			slen--;
	} else {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		c = curl_easy_init();
	}
	B.ch = calloc((size_t)B.n, sizeof(*B.ch));
	B.creds = calloc((size_t)B.n, sizeof(*B.creds));
	B.ids = calloc((size_t)B.n, sizeof(*B.ids));
	ch_rate = run_phase(PH_CHALLENGE);
	printf("%-9s challenges/s    %8.0f  (n=%d, %d failed)\n", B.method, ch_rate, B.n, B.failed);
	for (int i = 0; i < B.n; i++)
		if ((B.creds[i] = credential(i, argv[3], argv[4], secret, slen, c)) == NULL)
			B.creds[i] = strdup("Payment e30");
	v_rate = run_phase(PH_VERIFY);
	printf("%-9s verifications/s %8.0f  (n=%d, %d failed)\n", B.method, v_rate, B.n, B.failed);
	run_phase(PH_RELEASE);
	for (int i = 0; i < B.n; i++) {
		free(B.creds[i]);
		mpp_challenge_free(&B.ch[i]);
	}
	free(B.creds);
	free(B.ch);
	free(B.ids);
	if (c != NULL)
		curl_easy_cleanup(c);
	ipc_stop(B.ipc);
	uv_run(&B.loop, UV_RUN_DEFAULT);
	return 0;
}
