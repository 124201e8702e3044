/*
 * test_payments.c — cn2-payments as a real process, driven over IPC as the
 * edge would drive it.
 *
 * Group 1 runs cn2-payments against a fake ledger in this process: an IPC
 * listener as ROLE_LEDGER that records every LEDGER_* message and answers
 * ACK, ERROR, or nothing, as a test tells it. That is what lets the tests
 * see the transfers payments sends (pending at verify, post at capture,
 * void at release), and take the ledger away. It covers: challenge →
 * credential (built here with common/mpp.h) → ticket whose MAC the router's
 * secret reproduces; replay after capture, tampered amount, garbage,
 * unknown method, two credentials, too little paid; two concurrent VERIFYs
 * of one credential (one ticket, one 409); release then verify again;
 * capture twice (same receipt); bad awards; the ledger down, refusing or
 * silent (503 with Retry-After, and the same credential works once it is
 * back); expiry (challenge_ttl_s = 1); the sweep of reservations never
 * settled; rows in payments.db; challenge secret rotation on SIGHUP (the
 * old secret honoured for its challenges only, a short one refused); a
 * short secret refused at start; and no secret, credential or proof in the
 * logs.
 *
 * Group 2 runs the real cn2-ledger: a paid request captured and one
 * released, and the outbox in payments.db empties, so the ledger ACKed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/b64url.h"
#include "common/capab.h"
#include "common/mpp.h"
#include "common/timefmt.h"
#include "tests/scenario/harness.h"

#define REALM "openai.localhost"
#define PRICE 1250
#define BASE_CONF "ledger_timeout_ms = 500\nsweep_interval_s = 1\n"

enum fake_mode { FL_ACK, FL_ERROR, FL_SILENT };

struct fake_rec {
	uint16_t type;
	char xfer_id[72];
	char ref[64];
	char seller_id[64];
	int64_t amount;
};

static struct {
	struct h_env env;
	struct h_ipc h;
	struct ipc *ledger; /* the fake, on h.loop; NULL in group 2 or while "down" */
	enum fake_mode mode;
	struct fake_rec rec[256];
	size_t nrec;
	char *conf;	  /* payments.conf as cn2 init wrote it */
	char test_key[129], ticket_key[129];
	size_t test_len, ticket_len;
	char *used[64];	  /* credentials sent, to grep the logs for */
	size_t nused;
} T;

static const enum ipc_role to_payments[] = {ROLE_PAYMENTS};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
spin(int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		uv_run(&T.h.loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

/* The fake ledger. */

static void
fake_on_request(void *arg, const struct ipc_req *req, uint16_t type, const union ipc_any *msg)
{
	struct fake_rec *r = T.nrec < 256 ? &T.rec[T.nrec++] : &T.rec[255];
	union ipc_any rep;

	(void)arg;
	memset(&rep, 0, sizeof(rep));
	if (type == IPC_HEALTH) {
		T.nrec--;
		rep.health_rep.role = ROLE_LEDGER;
		rep.health_rep.ready = 1;
		rep.health_rep.pid = (uint32_t)getpid();
		ipc_reply(T.ledger, req, IPC_HEALTH_REP, &rep);
		return;
	}
	memset(r, 0, sizeof(*r));
	r->type = type;
	if (type == IPC_LEDGER_PENDING) {
		snprintf(r->xfer_id, sizeof(r->xfer_id), "%s", msg->ledger_pending.xfer_id);
		snprintf(r->ref, sizeof(r->ref), "%s", msg->ledger_pending.payment_ref);
		r->amount = msg->ledger_pending.amount;
	} else if (type == IPC_LEDGER_POST) {
		snprintf(r->xfer_id, sizeof(r->xfer_id), "%s", msg->ledger_post.xfer_id);
		snprintf(r->seller_id, sizeof(r->seller_id), "%s", msg->ledger_post.seller_id);
		r->amount = msg->ledger_post.seller_amount;
	} else {
		snprintf(r->xfer_id, sizeof(r->xfer_id), "%s", msg->ledger_void.xfer_id);
	}
	if (T.mode == FL_ACK)
		ipc_reply(T.ledger, req, IPC_ACK, &rep);
	else if (T.mode == FL_ERROR)
		ipc_reply_error(T.ledger, req, IPC_ERR_REFUSED, "fake ledger says no");
}

static int
fake_up(void)
{
	static const uint16_t types[] = {IPC_HEALTH, IPC_LEDGER_PENDING, IPC_LEDGER_POST,
	    IPC_LEDGER_VOID};
	static const struct ipc_peer_rule rules[] = {{ROLE_PAYMENTS, types, 4}};
	struct ipc_config c;
	char run[300], err[256];

	memset(&c, 0, sizeof(c));
	snprintf(run, sizeof(run), "%s/run", T.env.dir);
	c.loop = &T.h.loop;
	c.self = ROLE_LEDGER;
	c.runtime_dir = run;
	c.accept = rules;
	c.naccept = 1;
	for (int r = 0; r < ROLE_MAX; r++)
		c.role_uid[r] = getuid();
	c.on_request = fake_on_request;
	if ((T.ledger = ipc_start(&c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fake ledger: %s\n", err);
		return -1;
	}
	return 0;
}

static void
fake_down(void)
{
	ipc_stop(T.ledger);
	T.ledger = NULL;
	spin(50);
}

/* The last recorded message of type for xfer (any xfer if NULL); 1 if found within ms. */
static int
fake_get(uint16_t type, const char *xfer, int ms, struct fake_rec *out)
{
	int64_t end = now_ms() + ms;

	for (;;) {
		for (size_t i = T.nrec; i > 0; i--)
			if (T.rec[i - 1].type == type &&
			    (xfer == NULL || strcmp(T.rec[i - 1].xfer_id, xfer) == 0)) {
				*out = T.rec[i - 1];
				return 1;
			}
		if (now_ms() >= end)
			return 0;
		spin(10);
	}
}

/* Payments and its link to the ledger. */

static int
payments_linked(void)
{
	struct h_reply rep;
	int up = 0;

	if (h_ipc_call(&T.h, ROLE_PAYMENTS, IPC_HEALTH, NULL, &rep, 1, 2000) == 1 &&
	    rep.type == IPC_HEALTH_REP)
		up = (rep.msg.health_rep.links >> ROLE_LEDGER) & 1;
	h_replies_free(&rep, 1);
	return up;
}

static int
wait_linked(int want, int ms)
{
	int64_t end = now_ms() + ms;

	while (payments_linked() != want)
		if (now_ms() > end)
			return -1;
		else
			spin(50);
	return 0;
}

static int
write_conf(const char *extra)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/etc/payments.conf", T.env.dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fprintf(fp, "%s%s%s", T.conf, BASE_CONF, extra);
	return fclose(fp);
}

/* Restart cn2-payments with extra configuration lines; wait for its ledger link. */
static void
restart_payments(const char *extra)
{
	if (h_pid(&T.env, "payments") > 0)
		assert_int_equal(h_signal(&T.env, "payments", SIGTERM), 0);
	assert_int_equal(write_conf(extra), 0);
	assert_int_equal(h_start(&T.env, "payments"), 0);
	assert_int_equal(h_ipc_wait_link(&T.h, ROLE_PAYMENTS, 5000), 0);
	if (T.ledger != NULL)
		assert_int_equal(wait_linked(1, 5000), 0);
}

static void
read_secret(const char *rel, char *out, size_t *len)
{
	char *s = h_read(&T.env, rel, len);

	assert_non_null(s);
	if (*len > 0 && s[*len - 1] == '\n')
		s[--*len] = '\0';
	assert_true(*len >= 32 && *len <= 128);
	memcpy(out, s, *len + 1);
	free(s);
}

static int
setup_common(void)
{
	size_t len;

	memset(&T, 0, sizeof(T));
	if (h_init(&T.env, NULL) != 0 || (T.conf = h_read(&T.env, "etc/payments.conf", &len)) == NULL)
		return -1;
	read_secret("secrets/test.key", T.test_key, &T.test_len);
	read_secret("secrets/ticket.key", T.ticket_key, &T.ticket_len);
	return h_ipc_open(&T.env, &T.h, ROLE_EDGE, to_payments, 1);
}

static int
group_setup(void **state)
{
	(void)state;
	if (setup_common() != 0 || fake_up() != 0 || write_conf("") != 0 ||
	    h_start(&T.env, "payments") != 0)
		return -1;
	return wait_linked(1, 5000);
}

static int
group_teardown(void **state)
{
	int down;

	(void)state;
	if (T.ledger != NULL)
		fake_down();
	h_ipc_close(&T.h);
	down = h_down(&T.env);
	free(T.conf);
	for (size_t i = 0; i < T.nused; i++)
		free(T.used[i]);
	return down;
}

/* Talking to payments as the edge. */

static void
route_init(struct ipc_route *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->provider, sizeof(r->provider), "openai");
	snprintf(r->method, sizeof(r->method), "POST");
	snprintf(r->path, sizeof(r->path), "/v1/chat/completions");
}

/* CHALLENGE → the PAY_REQUIRED reply (caller frees with h_replies_free). */
static void
challenge(const char *accept, struct h_reply *rep)
{
	struct ipc_challenge m;

	memset(&m, 0, sizeof(m));
	route_init(&m.route);
	snprintf(m.realm, sizeof(m.realm), REALM);
	m.amount = PRICE;
	snprintf(m.accept, sizeof(m.accept), "%s", accept);
	assert_int_equal(h_ipc_call(&T.h, ROLE_PAYMENTS, IPC_CHALLENGE, &m, rep, 1, 3000), 1);
	assert_int_equal(rep->type, IPC_PAY_REQUIRED);
}

/* The parts of a PAY_REQUIRED or a PAY_PROBLEM. */
static const struct ipc_bytes *
rep_www(const struct h_reply *rep)
{
	return rep->type == IPC_PAY_PROBLEM ? &rep->msg.pay_problem.www_auth
					    : &rep->msg.pay_required.www_auth;
}

static const struct ipc_bytes *
rep_body(const struct h_reply *rep)
{
	return rep->type == IPC_PAY_PROBLEM ? &rep->msg.pay_problem.body : &rep->msg.pay_required.body;
}

static int
rep_status(const struct h_reply *rep)
{
	return rep->type == IPC_PAY_PROBLEM ? rep->msg.pay_problem.status
					    : rep->msg.pay_required.status;
}

static const char *
rep_challenge_id(const struct h_reply *rep)
{
	return rep->type == IPC_PAY_PROBLEM ? rep->msg.pay_problem.challenge_id
					    : rep->msg.pay_required.challenge_id;
}

/* The first challenge of a PAY_REQUIRED. */
static void
first_challenge(const struct h_reply *rep, struct mpp_challenge *c)
{
	const struct ipc_bytes *w = rep_www(rep);
	size_t n = 0;
	char err[256];

	while (n < w->len && w->p[n] != '\n')
		n++;
	if (mpp_challenge_parse((const char *)w->p, n, c, err, sizeof(err)) != 0)
		fail_msg("challenge does not parse: %s", err);
}

/* The problem body's field as a string; caller frees. */
static char *
body_str(const struct h_reply *rep, const char *key)
{
	const struct ipc_bytes *b = rep_body(rep);
	cJSON *j = cJSON_ParseWithLength((const char *)b->p, b->len);
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(j, key));
	char *out = v != NULL ? strdup(v) : NULL;

	cJSON_Delete(j);
	return out;
}

/* A credential paying challenge c with the test method; caller frees (kept for the log check). */
static char *
pay(const struct mpp_challenge *c)
{
	char proof[MPP_ID_BUFSZ], *cred;
	cJSON *payload = cJSON_CreateObject();

	assert_int_equal(mpp_test_proof((const uint8_t *)T.test_key, T.test_len, c->id, proof), 0);
	cJSON_AddStringToObject(payload, "proof", proof);
	cred = mpp_credential_format(c, payload, NULL);
	cJSON_Delete(payload);
	assert_non_null(cred);
	if (T.nused < 64)
		T.used[T.nused++] = strdup(cred);
	return cred;
}

/* A fresh challenge, paid. Its id in id (may be NULL); caller frees. */
static char *
fresh_credential(char id[MPP_ID_BUFSZ])
{
	struct mpp_challenge c;
	struct h_reply rep;
	char *cred;

	challenge("", &rep);
	first_challenge(&rep, &c);
	if (id != NULL)
		snprintf(id, MPP_ID_BUFSZ, "%s", c.id);
	cred = pay(&c);
	mpp_challenge_free(&c);
	h_replies_free(&rep, 1);
	return cred;
}

static void
verify_msg(struct ipc_verify *m, const char *cred, int ncred, int64_t price)
{
	memset(m, 0, sizeof(*m));
	route_init(&m->route);
	snprintf(m->realm, sizeof(m->realm), REALM);
	m->amount = price;
	m->ncredentials = (uint8_t)ncred;
	m->credential.p = (const uint8_t *)cred;
	m->credential.len = (uint32_t)strlen(cred);
}

static void
verify(const char *cred, int ncred, int64_t price, struct h_reply *rep)
{
	struct ipc_verify m;

	verify_msg(&m, cred, ncred, price);
	assert_int_equal(h_ipc_call(&T.h, ROLE_PAYMENTS, IPC_VERIFY, &m, rep, 1, 5000), 1);
}

/* VERIFY must answer PAY_REQUIRED status with problem type ending in name. */
static void
expect_problem(const struct h_reply *rep, int status, const char *type)
{
	char *t, *cid;

	if (rep->type != IPC_PAY_REQUIRED && rep->type != IPC_PAY_PROBLEM)
		fail_msg("got %s, want PAY_REQUIRED %d", ipc_type_name(rep->type), status);
	assert_int_equal(rep_status(rep), status);
	/* 503 and 409 say when to try again (Retry-After); nothing else does. */
	if (status == 503 || status == 409)
		assert_int_equal(rep->type, IPC_PAY_PROBLEM);
	if (rep->type == IPC_PAY_PROBLEM)
		assert_true(rep->msg.pay_problem.retry_after > 0);
	t = body_str(rep, "type");
	assert_non_null(t);
	if (strcmp(t, type) != 0)
		fail_msg("problem %s, want %s", t, type);
	free(t);
	/* Every 402 carries a fresh challenge, its id in the body. */
	if (status == 402) {
		struct mpp_challenge c;

		assert_true(rep_www(rep)->len > 0);
		first_challenge(rep, &c);
		cid = body_str(rep, "challengeId");
		assert_non_null(cid);
		assert_string_equal(cid, c.id);
		assert_string_equal(rep_challenge_id(rep), c.id);
		free(cid);
		mpp_challenge_free(&c);
	}
}

static void
settle(const char *id, int outcome, const char *seller, int64_t price, int good_award,
    struct h_reply *rep)
{
	struct ipc_settle m;
	uint8_t mac[IPC_MAC_LEN];

	memset(&m, 0, sizeof(m));
	snprintf(m.payment_id, sizeof(m.payment_id), "%s", id);
	m.outcome = (uint8_t)outcome;
	snprintf(m.key_id, sizeof(m.key_id), "k_test");
	snprintf(m.seller_id, sizeof(m.seller_id), "%s", seller);
	m.seller_price = price;
	if (outcome == SETTLE_CAPTURE) {
		assert_int_equal(capab_award_mac((const uint8_t *)T.ticket_key, T.ticket_len, id,
				     m.key_id, seller, good_award ? price : price + 1, mac),
		    0);
		m.award_mac.p = mac;
		m.award_mac.len = IPC_MAC_LEN;
	}
	assert_int_equal(h_ipc_call(&T.h, ROLE_PAYMENTS, IPC_SETTLE, &m, rep, 1, 3000), 1);
}

/* The ticket of a successful VERIFY, checked against the router's view of the MAC. */
static void
expect_ticket(const struct h_reply *rep, const char *id)
{
	const struct ipc_ticket *t = &rep->msg.ticket;
	uint8_t mac[IPC_MAC_LEN];
	time_t now = time(NULL);

	if (rep->type != IPC_TICKET) {
		char *d = rep->type == IPC_PAY_REQUIRED ? body_str(rep, "detail") : NULL;

		fail_msg("got %s (%s), want TICKET", ipc_type_name(rep->type), d ? d : "");
	}
	if (id != NULL)
		assert_string_equal(t->payment_id, id);
	assert_string_equal(t->pay_method, "test");
	assert_int_equal(t->amount, PRICE);
	assert_string_equal(t->route.provider, "openai");
	assert_string_equal(t->route.path, "/v1/chat/completions");
	assert_true(t->expires > now && t->expires <= now + 121);
	assert_int_equal(capab_ticket_mac((const uint8_t *)T.ticket_key, T.ticket_len, t, mac), 0);
	assert_int_equal(capab_equal(&t->mac, mac), 0);
}

/* payments.db, read-only: the state of payment id ("" if absent). */
static void
db_state(const char *id, char *out, size_t cap)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;

	snprintf(path, sizeof(path), "%s/db/payments.db", T.env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT state FROM payments WHERE id = ?", -1, &st,
			     NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	snprintf(out, cap, "%s", sqlite3_step(st) == SQLITE_ROW ?
		(const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int
db_count(const char *sql)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = -1;

	snprintf(path, sizeof(path), "%s/db/payments.db", T.env.dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

/* The tests. */

static void
test_challenge_shape(void **state)
{
	struct mpp_challenge c, c2;
	struct h_reply rep, rep2;
	cJSON *req;
	char *t;

	(void)state;
	challenge("", &rep);
	assert_int_equal(rep.msg.pay_required.status, 402);
	first_challenge(&rep, &c);
	assert_string_equal(c.realm, REALM);
	assert_string_equal(c.method, "test");
	assert_string_equal(c.intent, "charge");
	assert_non_null(c.expires);
	assert_string_equal(rep.msg.pay_required.challenge_id, c.id);
	req = mpp_request_decode(c.request);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "amount")), "1250");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "currency")), "usdc");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(req, "recipient")), REALM);
	cJSON_Delete(req);
	t = body_str(&rep, "type");
	assert_string_equal(t, "https://paymentauth.org/problems/payment-required");
	free(t);
	/* Two challenges for the same route in the same second still differ. */
	challenge("", &rep2);
	first_challenge(&rep2, &c2);
	assert_string_not_equal(c.id, c2.id);
	mpp_challenge_free(&c);
	mpp_challenge_free(&c2);
	h_replies_free(&rep, 1);
	h_replies_free(&rep2, 1);
	/* Accept-Payment that takes nothing we offer: 400, with what we do offer. */
	challenge("lightning/charge", &rep);
	assert_int_equal(rep.msg.pay_required.status, 400);
	t = body_str(&rep, "type");
	assert_string_equal(t, "https://paymentauth.org/problems/method-unsupported");
	free(t);
	first_challenge(&rep, &c);
	assert_string_equal(c.method, "test");
	mpp_challenge_free(&c);
	h_replies_free(&rep, 1);
	challenge("test/charge;q=0.5, lightning/charge", &rep);
	assert_int_equal(rep.msg.pay_required.status, 402);
	h_replies_free(&rep, 1);
}

static void
test_pay_capture_replay(void **state)
{
	char id[MPP_ID_BUFSZ], st[16], *cred = fresh_credential(id), receipt[1024];
	struct fake_rec pend, post;
	struct h_reply rep;
	uint8_t raw[512];
	size_t len;
	cJSON *j;

	(void)state;
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	/* The ledger heard of it before the ticket: a pending transfer for the amount paid. */
	assert_true(fake_get(IPC_LEDGER_PENDING, NULL, 0, &pend));
	assert_string_equal(pend.ref, id);
	assert_int_equal(pend.amount, PRICE);
	db_state(id, st, sizeof(st));
	assert_string_equal(st, "reserved");

	settle(id, SETTLE_CAPTURE, "s_seller", 1000, 1, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	snprintf(receipt, sizeof(receipt), "%s", rep.msg.settled.receipt);
	h_replies_free(&rep, 1);
	assert_int_equal(b64url_decode(receipt, strlen(receipt), raw, sizeof(raw) - 1, &len, 0), 0);
	raw[len] = '\0';
	j = cJSON_Parse((char *)raw);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "success");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "method")), "test");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "reference")), id);
	assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(j, "timestamp")));
	cJSON_Delete(j);
	assert_true(fake_get(IPC_LEDGER_POST, pend.xfer_id, 2000, &post));
	assert_string_equal(post.seller_id, "s_seller");
	assert_int_equal(post.amount, 1000);
	db_state(id, st, sizeof(st));
	assert_string_equal(st, "captured");

	/* Capture again: the same receipt. */
	sleep(1);
	settle(id, SETTLE_CAPTURE, "s_seller", 1000, 1, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	assert_string_equal(rep.msg.settled.receipt, receipt);
	h_replies_free(&rep, 1);
	/* …but not for another seller, and never a release. */
	settle(id, SETTLE_CAPTURE, "s_other", 1000, 1, &rep);
	assert_int_equal(rep.type, IPC_PROBLEM);
	assert_int_equal(rep.msg.problem.status, 409);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_RELEASE, "", 0, 1, &rep);
	assert_int_equal(rep.type, IPC_PROBLEM);
	assert_string_equal(rep.msg.problem.name, "payment-captured");
	h_replies_free(&rep, 1);

	/* Replay after capture: invalid-challenge, with a fresh challenge. */
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/invalid-challenge");
	assert_string_not_equal(rep.msg.pay_required.challenge_id, id);
	h_replies_free(&rep, 1);
	free(cred);
}

static void
test_bad_credentials(void **state)
{
	static const char *const garbage[] = {"Payment !!!!", "Payment e30", "Basic abc", "Payment",
	    "Payment eyJjaGFsbGVuZ2UiOnt9fQ"};
	struct mpp_challenge c;
	struct h_reply rep;
	char *cred, *req_b64;
	cJSON *req;

	(void)state;
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		verify(garbage[i], 1, PRICE, &rep);
		expect_problem(&rep, 402, "https://paymentauth.org/problems/malformed-credential");
		h_replies_free(&rep, 1);
	}
	challenge("", &rep);
	first_challenge(&rep, &c);
	h_replies_free(&rep, 1);

	/* Two credentials: 400, whatever they hold. */
	cred = pay(&c);
	verify(cred, 2, PRICE, &rep);
	expect_problem(&rep, 400, "https://cn2.ai/problems/multiple-credentials");
	h_replies_free(&rep, 1);
	/* The price went up since the challenge: 402 payment-insufficient. */
	verify(cred, 1, PRICE + 1, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/payment-insufficient");
	h_replies_free(&rep, 1);
	free(cred);

	/* The buyer lowers the amount in the echoed request. */
	req = mpp_request_decode(c.request);
	cJSON_ReplaceItemInObject(req, "amount", cJSON_CreateString("1"));
	req_b64 = mpp_request_encode(req);
	cJSON_Delete(req);
	{
		struct mpp_challenge t = c;

		t.request = req_b64;
		cred = pay(&t);
	}
	verify(cred, 1, 1, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/invalid-challenge");
	h_replies_free(&rep, 1);
	free(cred);
	free(req_b64);

	/* A method we do not offer: 400 method-unsupported, before the id is looked at. */
	{
		struct mpp_challenge t = c;

		t.method = "lightning";
		cred = pay(&t);
	}
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 400, "https://paymentauth.org/problems/method-unsupported");
	h_replies_free(&rep, 1);
	free(cred);

	/* A proof under another secret. */
	{
		char proof[MPP_ID_BUFSZ];
		cJSON *payload = cJSON_CreateObject();

		mpp_test_proof((const uint8_t *)T.ticket_key, T.ticket_len, c.id, proof);
		cJSON_AddStringToObject(payload, "proof", proof);
		cred = mpp_credential_format(&c, payload, NULL);
		cJSON_Delete(payload);
	}
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/verification-failed");
	h_replies_free(&rep, 1);
	free(cred);
	mpp_challenge_free(&c);
}

struct collect {
	int n;
	uint16_t type[2];
	uint16_t status[2];
};

static void
collect_reply(void *arg, int status, uint16_t type, const union ipc_any *msg)
{
	struct collect *c = arg;

	if (c->n < 2) {
		c->type[c->n] = status == 0 ? type : 0;
		c->status[c->n] = type == IPC_PAY_REQUIRED ? msg->pay_required.status :
		    type == IPC_PAY_PROBLEM		      ? msg->pay_problem.status :
								0;
	}
	c->n++;
}

static void
test_concurrent_verify(void **state)
{
	char id[MPP_ID_BUFSZ], *cred = fresh_credential(id);
	struct collect col = {0, {0, 0}, {0, 0}};
	struct ipc_verify m;
	struct h_reply rep;
	int64_t end;
	int tickets = 0, conflicts = 0;

	(void)state;
	verify_msg(&m, cred, 1, PRICE);
	assert_int_not_equal(ipc_request(T.h.ipc, ROLE_PAYMENTS, IPC_VERIFY, &m, 5000,
				 collect_reply, &col),
	    0);
	assert_int_not_equal(ipc_request(T.h.ipc, ROLE_PAYMENTS, IPC_VERIFY, &m, 5000,
				 collect_reply, &col),
	    0);
	for (end = now_ms() + 6000; col.n < 2 && now_ms() < end;)
		spin(5);
	assert_int_equal(col.n, 2);
	for (int i = 0; i < 2; i++) {
		tickets += col.type[i] == IPC_TICKET;
		conflicts += col.type[i] == IPC_PAY_PROBLEM && col.status[i] == 409;
	}
	assert_int_equal(tickets, 1);
	assert_int_equal(conflicts, 1);
	/* While it is in flight, a third try is 409 too. */
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 409, "https://cn2.ai/problems/payment-in-flight");
	h_replies_free(&rep, 1);
	settle(id, SETTLE_RELEASE, "", 0, 0, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	h_replies_free(&rep, 1);
	free(cred);
}

static void
test_release_then_again(void **state)
{
	char id[MPP_ID_BUFSZ], st[16], *cred = fresh_credential(id), first_xfer[72];
	struct fake_rec r;
	struct h_reply rep;

	(void)state;
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	assert_true(fake_get(IPC_LEDGER_PENDING, NULL, 0, &r));
	snprintf(first_xfer, sizeof(first_xfer), "%s", r.xfer_id);
	settle(id, SETTLE_RELEASE, "", 0, 0, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	assert_string_equal(rep.msg.settled.receipt, "");
	h_replies_free(&rep, 1);
	assert_true(fake_get(IPC_LEDGER_VOID, first_xfer, 2000, &r));
	db_state(id, st, sizeof(st));
	assert_string_equal(st, "released");
	/* Releasing twice is fine; capturing after a release is not. */
	settle(id, SETTLE_RELEASE, "", 0, 0, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_CAPTURE, "s_seller", 1000, 1, &rep);
	assert_int_equal(rep.type, IPC_PROBLEM);
	assert_string_equal(rep.msg.problem.name, "payment-released");
	h_replies_free(&rep, 1);
	/* The same credential again: a new reservation, a new ledger transfer. */
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	assert_true(fake_get(IPC_LEDGER_PENDING, NULL, 0, &r));
	assert_string_not_equal(r.xfer_id, first_xfer);
	assert_string_equal(r.ref, id);
	/* A bad award, a price above what was paid, an unknown id: refused. */
	settle(id, SETTLE_CAPTURE, "s_seller", 1000, 0, &rep);
	assert_int_equal(rep.type, IPC_PROBLEM);
	assert_int_equal(rep.msg.problem.status, 403);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_CAPTURE, "s_seller", PRICE + 1, 1, &rep);
	assert_int_equal(rep.type, IPC_PROBLEM);
	assert_int_equal(rep.msg.problem.status, 403);
	h_replies_free(&rep, 1);
	settle("no_such_payment", SETTLE_CAPTURE, "s_seller", 10, 1, &rep);
	assert_int_equal(rep.type, IPC_PROBLEM);
	assert_int_equal(rep.msg.problem.status, 404);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_CAPTURE, "s_seller", PRICE, 1, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	assert_true(strlen(rep.msg.settled.receipt) > 0);
	h_replies_free(&rep, 1);
	free(cred);
}

static void
test_ledger_trouble(void **state)
{
	char id[MPP_ID_BUFSZ], st[16], *cred = fresh_credential(id), silent_xfer[72];
	struct fake_rec r;
	struct h_reply rep;
	int64_t end;

	(void)state;
	/* Down: 503 at once, nothing reserved. */
	fake_down();
	assert_int_equal(wait_linked(0, 3000), 0);
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 503, "https://cn2.ai/problems/ledger-unavailable");
	assert_int_equal(rep_www(&rep)->len, 0);
	h_replies_free(&rep, 1);
	db_state(id, st, sizeof(st));
	assert_string_equal(st, "released");
	/* Refusing: 503, no void owed. */
	T.mode = FL_ERROR;
	assert_int_equal(fake_up(), 0);
	assert_int_equal(wait_linked(1, 5000), 0);
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 503, "https://cn2.ai/problems/ledger-unavailable");
	h_replies_free(&rep, 1);
	/* Silent: 503 after ledger_timeout_ms, and the pending may exist: a void is owed. */
	T.mode = FL_SILENT;
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 503, "https://cn2.ai/problems/ledger-unavailable");
	h_replies_free(&rep, 1);
	assert_true(fake_get(IPC_LEDGER_PENDING, NULL, 0, &r));
	snprintf(silent_xfer, sizeof(silent_xfer), "%s", r.xfer_id);
	assert_int_equal(db_count("SELECT count(*) FROM ledger_outbox WHERE op = 'void'"), 1);
	/* Back: the sweep delivers the void, and the same credential pays. */
	T.mode = FL_ACK;
	assert_true(fake_get(IPC_LEDGER_VOID, silent_xfer, 4000, &r));
	for (end = now_ms() + 3000;
	     db_count("SELECT count(*) FROM ledger_outbox") != 0 && now_ms() < end;)
		spin(20);
	assert_int_equal(db_count("SELECT count(*) FROM ledger_outbox"), 0);
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_CAPTURE, "s_seller", 1000, 1, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	h_replies_free(&rep, 1);
	free(cred);
}

static void
test_expired(void **state)
{
	struct h_reply rep;
	char *cred;

	(void)state;
	restart_payments("challenge_ttl_s = 1\n");
	cred = fresh_credential(NULL);
	sleep(2);
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/payment-expired");
	h_replies_free(&rep, 1);
	free(cred);
	restart_payments("");
}

static void
test_sweep_releases_stale(void **state)
{
	char id[MPP_ID_BUFSZ], st[16], *cred;
	struct fake_rec r;
	struct h_reply rep;

	(void)state;
	restart_payments("reservation_timeout_s = 1\n");
	cred = fresh_credential(id);
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	assert_true(fake_get(IPC_LEDGER_PENDING, NULL, 0, &r));
	/* The edge never settles: within a few sweeps it is released and voided. */
	assert_true(fake_get(IPC_LEDGER_VOID, r.xfer_id, 5000, &r));
	db_state(id, st, sizeof(st));
	assert_string_equal(st, "released");
	restart_payments("");
	/* Still usable until it expires; the state survived the restart. */
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	free(cred);
}

/* RFC 3339 of now + secs. */
static void
rfc3339_now_plus(int64_t secs, char out[40])
{
	assert_true(rfc3339_format((int64_t)time(NULL) + secs, out, 40) > 0);
}

/* Write a secret file of the state directory (mode 0600). */
static void
write_secret(const char *rel, const char *text)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", T.env.dir, rel);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0600), 0);
}

/* Does challenge c's id verify under secret? */
static int
signed_with(const struct mpp_challenge *c, const char *secret)
{
	return mpp_challenge_check_id((const uint8_t *)secret, strlen(secret), c) == 0;
}

/* A copy of c whose id the rotated-out secret signed, expiring in an hour: must be refused. */
static void
expect_forged_refused(const struct mpp_challenge *c, const char *old_secret)
{
	char exp[40], forged_id[MPP_ID_BUFSZ], *forged;
	struct mpp_challenge f = *c;
	struct h_reply rep;

	rfc3339_now_plus(3600, exp);
	f.expires = exp;
	assert_int_equal(mpp_challenge_id((const uint8_t *)old_secret, strlen(old_secret), &f,
			     forged_id),
	    0);
	f.id = forged_id;
	forged = pay(&f);
	verify(forged, 1, PRICE, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/invalid-challenge");
	h_replies_free(&rep, 1);
	free(forged);
}

/*
 * Secret rotation on SIGHUP: new challenges are signed with the new secret,
 * a credential of the old one still verifies (its challenge has not
 * expired), but the old secret signs nothing new: a challenge made with it
 * that expires after the rotation window is refused. A short secret does
 * not load on reload, and the running one stays.
 */
static void
test_secret_rotation(void **state)
{
	static const char s2[] = "2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f";
	char id[MPP_ID_BUFSZ], s1[129], *old, *cred;
	struct mpp_challenge c;
	struct h_reply rep;
	size_t len;

	(void)state;
	read_secret("secrets/challenge.key", s1, &len);
	old = fresh_credential(id);
	write_secret("secrets/challenge.key", s2);
	assert_int_equal(kill(h_pid(&T.env, "payments"), SIGHUP), 0);
	spin(500);
	challenge("", &rep);
	first_challenge(&rep, &c);
	h_replies_free(&rep, 1);
	assert_true(signed_with(&c, s2));
	assert_false(signed_with(&c, s1));
	/* The old credential still pays; the new secret's do too. */
	verify(old, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_RELEASE, "", 0, 0, &rep);
	h_replies_free(&rep, 1);
	cred = pay(&c);
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, c.id);
	h_replies_free(&rep, 1);
	settle(c.id, SETTLE_RELEASE, "", 0, 0, &rep);
	h_replies_free(&rep, 1);
	/* The old secret, signing a challenge that outlives the rotation window: refused. */
	expect_forged_refused(&c, s1);
	/* A short secret does not load; challenges stay signed with s2. */
	write_secret("secrets/challenge.key", "0123456789abcdef0123456789abcde\n");
	assert_int_equal(kill(h_pid(&T.env, "payments"), SIGHUP), 0);
	spin(500);
	assert_true(h_log_contains(&T.env, "reload failed"));
	mpp_challenge_free(&c);
	challenge("", &rep);
	first_challenge(&rep, &c);
	h_replies_free(&rep, 1);
	assert_true(signed_with(&c, s2));
	write_secret("secrets/challenge.key", s2);
	mpp_challenge_free(&c);
	free(old);
	free(cred);
}

/*
 * Rotation across a restart: the operator moves the running secret to
 * challenge_previous_secret_file and puts a new one in place. Credentials
 * for challenges the old secret signed still verify after the restart; the
 * old secret signs nothing new (a challenge outliving the window is
 * refused); and without the previous file the same credential is refused,
 * so it is that setting which carries it.
 */
static void
test_previous_secret_restart(void **state)
{
	static const char s3[] = "3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e";
	char id[MPP_ID_BUFSZ], old_secret[129], prev_line[600], *old;
	struct mpp_challenge c;
	struct h_reply rep;
	size_t len;

	(void)state;
	read_secret("secrets/challenge.key", old_secret, &len);
	old = fresh_credential(id);
	write_secret("secrets/challenge_prev.key", old_secret);
	write_secret("secrets/challenge.key", s3);
	snprintf(prev_line, sizeof(prev_line),
	    "challenge_previous_secret_file = %s/secrets/challenge_prev.key\n", T.env.dir);
	restart_payments(prev_line);
	challenge("", &rep);
	first_challenge(&rep, &c);
	h_replies_free(&rep, 1);
	assert_true(signed_with(&c, s3));
	verify(old, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_RELEASE, "", 0, 0, &rep);
	h_replies_free(&rep, 1);
	/* The previous secret signs nothing that outlives the window. */
	expect_forged_refused(&c, old_secret);
	/* Without the previous secret the same credential is a stranger. */
	restart_payments("");
	verify(old, 1, PRICE, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/invalid-challenge");
	h_replies_free(&rep, 1);
	mpp_challenge_free(&c);
	free(old);
}

static void
test_short_secret_refused(void **state)
{
	char conf[400], key[400], out[4096];
	int fds[2], status;
	ssize_t n, got = 0;
	FILE *fp;
	pid_t pid;

	(void)state;
	snprintf(key, sizeof(key), "%s/secrets/short.key", T.env.dir);
	snprintf(conf, sizeof(conf), "%s/etc/short.conf", T.env.dir);
	fp = fopen(key, "w");
	assert_non_null(fp);
	fputs("0123456789abcdef0123456789abcde\n", fp); /* 31 bytes */
	fclose(fp);
	chmod(key, 0600);
	/* The real configuration with challenge_secret_file swapped. */
	fp = fopen(conf, "w");
	assert_non_null(fp);
	for (const char *p = T.conf; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		if (strncmp(p, "challenge_secret_file", 21) == 0)
			fprintf(fp, "challenge_secret_file = %s\n", key);
		else
			fprintf(fp, "%.*s\n", (int)len, p);
		p += len + (nl != NULL);
	}
	fclose(fp);
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		char exe[400];

		snprintf(exe, sizeof(exe), "%s/cn2-payments", T.env.bindir);
		dup2(fds[1], 2);
		close(fds[0]);
		execl(exe, exe, "-f", conf, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	alarm(10);
	while ((n = read(fds[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	alarm(0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(strstr(out, "challenge_secret_file"));
	assert_null(strstr(out, "0123456789abcdef"));
}

static void
test_no_secrets_in_logs_or_db(void **state)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;

	(void)state;
	assert_true(T.nused > 5);
	assert_false(h_log_contains(&T.env, T.test_key));
	assert_false(h_log_contains(&T.env, T.ticket_key));
	for (size_t i = 0; i < T.nused; i++) {
		assert_false(h_log_contains(&T.env, T.used[i]));
		assert_false(h_log_contains(&T.env, T.used[i] + 8));
	}
	/* payments.db keeps no credential, proof or secret in any column. */
	snprintf(path, sizeof(path), "%s/db/payments.db", T.env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
			     "SELECT id || method || realm || provider || xfer_id ||"
			     " coalesce(key_id, '') || coalesce(seller_id, '') FROM payments",
			     -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *row = (const char *)sqlite3_column_text(st, 0);

		assert_null(strstr(row, T.test_key));
		assert_null(strstr(row, "Payment "));
		assert_null(strstr(row, "proof"));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Group 2: the real cn2-ledger. */

static int
real_setup(void **state)
{
	(void)state;
	if (setup_common() != 0 || write_conf("") != 0 || h_start(&T.env, "ledger") != 0 ||
	    h_start(&T.env, "payments") != 0)
		return -1;
	return wait_linked(1, 5000);
}

static void
test_real_ledger(void **state)
{
	char id[MPP_ID_BUFSZ], id2[MPP_ID_BUFSZ], *cred = fresh_credential(id);
	char *cred2 = fresh_credential(id2);
	struct h_reply rep;
	int64_t end;

	(void)state;
	verify(cred, 1, PRICE, &rep);
	expect_ticket(&rep, id);
	h_replies_free(&rep, 1);
	settle(id, SETTLE_CAPTURE, "s_seller", 1000, 1, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	h_replies_free(&rep, 1);
	verify(cred2, 1, PRICE, &rep);
	expect_ticket(&rep, id2);
	h_replies_free(&rep, 1);
	settle(id2, SETTLE_RELEASE, "", 0, 0, &rep);
	assert_int_equal(rep.type, IPC_SETTLED);
	h_replies_free(&rep, 1);
	/* The ledger ACKed the post and the void: nothing is left owed. */
	for (end = now_ms() + 5000;
	     db_count("SELECT count(*) FROM ledger_outbox") != 0 && now_ms() < end;)
		spin(20);
	assert_int_equal(db_count("SELECT count(*) FROM ledger_outbox"), 0);
	assert_int_equal(db_count("SELECT count(*) FROM payments WHERE state = 'captured'"), 1);
	/* Replay: refused; the ledger saw the same transfer only once. */
	verify(cred, 1, PRICE, &rep);
	expect_problem(&rep, 402, "https://paymentauth.org/problems/invalid-challenge");
	h_replies_free(&rep, 1);
	free(cred);
	free(cred2);
}

int
main(void)
{
	const struct CMUnitTest fake[] = {
	    cmocka_unit_test(test_challenge_shape),
	    cmocka_unit_test(test_pay_capture_replay),
	    cmocka_unit_test(test_bad_credentials),
	    cmocka_unit_test(test_concurrent_verify),
	    cmocka_unit_test(test_release_then_again),
	    cmocka_unit_test(test_ledger_trouble),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_sweep_releases_stale),
	    cmocka_unit_test(test_secret_rotation),
	    cmocka_unit_test(test_previous_secret_restart),
	    cmocka_unit_test(test_short_secret_refused),
	    cmocka_unit_test(test_no_secrets_in_logs_or_db),
	};
	const struct CMUnitTest real[] = {
	    cmocka_unit_test(test_real_ledger),
	};
	int failed = cmocka_run_group_tests_name("payments with a fake ledger", fake, group_setup,
	    group_teardown);

	return failed + cmocka_run_group_tests_name("payments with cn2-ledger", real, real_setup,
	    group_teardown);
}
