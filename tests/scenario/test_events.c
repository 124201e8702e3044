/*
 * test_events.c — the router's seller events, read as platform-api reads
 * them (EVENTS_PULL over IPC, as ROLE_PLATFORM), with the six real daemons
 * and the demo upstream accepting five keys, one per seller, the cheapest
 * first in line.
 *
 * Each event is made the real way: the demo answers the cheapest active
 * key's next call with 401, a buyer pays through the edge, and the router
 * quarantines that key on the vault's OUTCOME (the buyer gets 502: every
 * other key costs more than was paid).
 * Covered: no events at first; one event with its seller, key, kind, reason
 * and time, and none after its id; max honoured over several events, in id
 * order; ids never reused once the retention sweep has deleted every event
 * (a new event's id is above the cursor); the edge may not pull.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sqlite3.h>

#include "tests/scenario/harness.h"

#define CHAT "{\"model\":\"demo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
#define NK 5
#define T_MS 5000

static struct h_env env;
static struct h_ipc as_platform, as_edge, as_ctl;
static const char *const sellers[NK] = {"seller-a", "seller-b", "seller-c", "seller-d", "seller-e"};
static const char *const prices[NK] = {"0.001", "0.002", "0.003", "0.004", "0.005"};
static char key_id[NK][IPC_KEY_ID_MAX + 1];
static char *demo_key[NK]; /* each demo key's secret, which no event may hold */
/* Replies of one pull: room for one more than a correct router sends (NK events, ACK). */
static struct h_reply replies[NK + 2];

/* The key file of demo key i, as h_start_demo_keys wrote it. */
static void
key_path(int i, char *out, size_t cap)
{
	if (i == 0)
		snprintf(out, cap, "%s/secrets/demo.key", env.dir);
	else
		snprintf(out, cap, "%s/secrets/demo%d.key", env.dir, i);
}

/* A seller's only listing id, from LISTING_LIST: 0 or -1. */
static int
listing_id(const char *seller, char *out, size_t cap)
{
	struct ipc_listing_list ll;
	struct h_reply r[2];
	size_t n;
	int rc = -1;

	memset(&ll, 0, sizeof(ll));
	snprintf(ll.seller_id, sizeof(ll.seller_id), "%s", seller);
	n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_LISTING_LIST, &ll, r, 2, T_MS);
	if (n == 2 && r[0].type == IPC_LISTING && r[1].type == IPC_ACK) {
		snprintf(out, cap, "%s", r[0].msg.listing.key_id);
		rc = 0;
	}
	h_replies_free(r, n);
	return rc;
}

static int
links_open(void)
{
	static const enum ipc_role router[] = {ROLE_ROUTER}, vault[] = {ROLE_VAULT};

	if (h_ipc_open(&env, &as_platform, ROLE_PLATFORM, router, 1) != 0 ||
	    h_ipc_open(&env, &as_edge, ROLE_EDGE, router, 1) != 0 ||
	    h_ipc_open(&env, &as_ctl, ROLE_CTL, vault, 1) != 0)
		return -1;
	/*
	 * Every link up before anything else: nng 1.5 leaks a stream dialer
	 * freed in the middle of a dial, which LeakSanitizer reports against
	 * this process when links_close runs early.
	 */
	return h_ipc_wait_link(&as_platform, ROLE_ROUTER, T_MS) != 0 ||
		   h_ipc_wait_link(&as_edge, ROLE_ROUTER, T_MS) != 0 ||
		   h_ipc_wait_link(&as_ctl, ROLE_VAULT, T_MS) != 0 ?
	    -1 :
	    0;
}

static void
links_close(void)
{
	h_ipc_close(&as_platform);
	h_ipc_close(&as_edge);
	h_ipc_close(&as_ctl);
}

/* Keys are listed with `cn2 keys add` (a child process) before this process has threads. */
static int
group_setup(void **state)
{
	char path[400];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (h_init(&env, NULL) != 0 || h_start_demo_keys(&env, NK) != 0 || h_up(&env) != 0)
		return -1;
	for (int i = 0; i < NK; i++) {
		key_path(i, path, sizeof(path));
		if (h_keys_add(&env, sellers[i], "demo", path, prices[i]) != 0)
			return -1;
	}
	if (links_open() != 0)
		return -1;
	for (int i = 0; i < NK; i++) {
		key_path(i, path, sizeof(path));
		if (listing_id(sellers[i], key_id[i], sizeof(key_id[i])) != 0 ||
		    (demo_key[i] = h_read(&env, path + strlen(env.dir) + 1, NULL)) == NULL)
			return -1;
		demo_key[i][strcspn(demo_key[i], "\n")] = '\0';
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	links_close();
	for (int i = 0; i < NK; i++)
		free(demo_key[i]);
	curl_global_cleanup();
	return h_down(&env);
}

/*
 * EVENTS_PULL after, max: the events into ev (at most max of them), checked
 * as any reader may expect: SELLER_EVENTs with increasing ids above after,
 * at most max, then one ACK. Returns how many.
 */
static size_t
pull(int64_t after, uint16_t max, struct ipc_seller_event *ev)
{
	struct ipc_events_pull p = {after, max};
	size_t n = h_ipc_call(&as_platform, ROLE_ROUTER, IPC_EVENTS_PULL, &p, replies,
	    sizeof(replies) / sizeof(replies[0]), T_MS);
	int64_t last = after;

	assert_true(n >= 1 && n <= (size_t)max + 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(replies[i].status, 0);
	assert_int_equal(replies[n - 1].type, IPC_ACK);
	for (size_t i = 0; i + 1 < n; i++) {
		assert_int_equal(replies[i].type, IPC_SELLER_EVENT);
		ev[i] = replies[i].msg.seller_event;
		assert_true(ev[i].id > last);
		last = ev[i].id;
	}
	h_replies_free(replies, n);
	return n - 1;
}

/* The vault has its link to the router (after a restart): OUTCOMEs get through. */
static void
vault_linked(void)
{
	int64_t end = h_now_ms() + T_MS;
	struct h_reply r;
	int up = 0;

	while (!up && h_now_ms() < end) {
		if (h_ipc_call(&as_ctl, ROLE_VAULT, IPC_HEALTH, NULL, &r, 1, T_MS) == 1 &&
		    r.status == 0 && r.type == IPC_HEALTH_REP)
			up = (r.msg.health_rep.links & (1u << ROLE_ROUTER)) != 0;
		h_replies_free(&r, 1);
		if (!up)
			usleep(50000);
	}
	assert_true(up);
}

/*
 * One paid call through the edge to a key that answers 401. The others are
 * dearer than the price paid, so none may take over: the buyer gets 502 and
 * the payment is not captured.
 */
static void
paid_call_refused(void)
{
	char url[128], auth[16384];
	const char *hs[] = {"Content-Type: application/json", auth, NULL};
	struct h_resp r;

	snprintf(url, sizeof(url), "https://demo.localhost:%d/v1/chat/completions", env.https_port);
	assert_int_equal(h_pay_header(&env, url, NULL, CHAT, auth, sizeof(auth)), 0);
	assert_int_equal(h_http(&env, "POST", url, hs, CHAT, strlen(CHAT), &r), 0);
	if (r.status != 502 || strstr(r.body, "upstream answered 401") == NULL)
		fail_msg("paid call: %ld %s", r.status, r.body);
	h_resp_free(&r);
}

/*
 * Key i (the cheapest active one) answers its next call with 401: a paid
 * call quarantines it. Returns its event, the first after `after` (the
 * OUTCOME reaches the router after the buyer's answer, so it is waited for).
 */
static struct ipc_seller_event
quarantine(int i, int64_t after)
{
	struct ipc_seller_event ev[NK + 1];
	int64_t end = h_now_ms() + T_MS;
	char ctl[96];
	size_t n;

	snprintf(ctl, sizeof(ctl), "{\"key\":%d,\"fail_status\":401,\"fail_count\":1}", i);
	assert_int_equal(h_demo_control(&env, ctl), 0);
	paid_call_refused();
	while ((n = pull(after, NK, ev)) == 0 && h_now_ms() < end)
		usleep(50000);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].key_id, key_id[i]);
	return ev[0];
}

/* An event says what outcome.c wrote for a 401, and holds no key. */
static void
event_check(const struct ipc_seller_event *ev, int i, int64_t t0)
{
	int64_t now = (int64_t)time(NULL);
	char sql[200];

	assert_string_equal(ev->seller_id, sellers[i]);
	assert_string_equal(ev->key_id, key_id[i]);
	assert_string_equal(ev->kind, "key.quarantined");
	assert_int_equal(strncmp(ev->detail, "auth: the upstream answered 401", 31), 0);
	assert_true(ev->created >= t0 - 1 && ev->created <= now + 1);
	for (int k = 0; k < NK; k++)
		assert_null(strstr(ev->detail, demo_key[k]));
	snprintf(sql, sizeof(sql), "SELECT id FROM seller_events WHERE key_id = '%s'", key_id[i]);
	assert_int_equal(h_db_int(&env, "router", sql), ev->id);
}

static int64_t cursor; /* the id of the last event seen, as platform-api would keep it */

static void
test_none_yet(void **state)
{
	struct ipc_seller_event ev[NK + 1];

	(void)state;
	assert_int_equal(pull(0, IPC_EVENTS_MAX, ev), 0);
}

static void
test_one_event(void **state)
{
	struct ipc_seller_event ev[NK + 1], e;
	int64_t t0 = (int64_t)time(NULL);

	(void)state;
	e = quarantine(0, 0);
	event_check(&e, 0, t0);
	assert_int_equal(pull(0, IPC_EVENTS_MAX, ev), 1);
	assert_int_equal(ev[0].id, e.id);
	/* After its id: nothing, however many are asked for. */
	assert_int_equal(pull(e.id, 1, ev), 0);
	assert_int_equal(pull(e.id, IPC_EVENTS_MAX, ev), 0);
	cursor = e.id;
}

static void
test_max_honoured(void **state)
{
	struct ipc_seller_event ev[NK + 1], e1, e2;
	int64_t t0 = (int64_t)time(NULL);

	(void)state;
	e1 = quarantine(1, cursor);
	e2 = quarantine(2, e1.id);
	event_check(&e1, 1, t0);
	event_check(&e2, 2, t0);
	/* Three events now: the first one, the first two, the one after the second, all. */
	assert_int_equal(pull(0, 1, ev), 1);
	assert_int_equal(ev[0].id, cursor);
	assert_int_equal(pull(0, 2, ev), 2);
	assert_int_equal(ev[0].id, cursor);
	assert_int_equal(ev[1].id, e1.id);
	assert_int_equal(pull(e1.id, 2, ev), 1);
	assert_int_equal(ev[0].id, e2.id);
	assert_int_equal(pull(0, IPC_EVENTS_MAX, ev), 3);
	assert_string_equal(ev[0].key_id, key_id[0]);
	assert_string_equal(ev[1].key_id, key_id[1]);
	assert_string_equal(ev[2].key_id, key_id[2]);
	/* A cursor between two events gets the later ones only. */
	assert_int_equal(pull(cursor, IPC_EVENTS_MAX, ev), 2);
	assert_int_equal(ev[0].id, e1.id);
	cursor = e2.id;
}

/*
 * Every event older than the retention window is deleted at the router's
 * start; the next event still gets an id above the cursor, so a reader
 * that kept it sees it.
 */
static void
test_ids_never_reused(void **state)
{
	struct ipc_seller_event ev[NK + 1], e;
	char path[400];
	sqlite3 *db;
	int rc;

	(void)state;
	links_close();
	assert_int_equal(h_signal(&env, "router", SIGTERM), 0);
	snprintf(path, sizeof(path), "%s/db/router.db", env.dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	rc = sqlite3_exec(
	    db, "UPDATE seller_events SET created = created - 31 * 86400", NULL, NULL, NULL);
	sqlite3_close(db);
	assert_int_equal(rc, SQLITE_OK);
	assert_int_equal(h_start(&env, "router"), 0);
	assert_int_equal(links_open(), 0);
	assert_int_equal(h_wait_health(&env, 200, T_MS), 0);
	vault_linked();
	for (int64_t end = h_now_ms() + T_MS; h_now_ms() < end;) {
		if (h_db_int(&env, "router", "SELECT count(*) FROM seller_events") == 0)
			break;
		usleep(50000);
	}
	assert_int_equal(h_db_int(&env, "router", "SELECT count(*) FROM seller_events"), 0);
	assert_int_equal(pull(0, IPC_EVENTS_MAX, ev), 0);
	e = quarantine(3, cursor);
	assert_true(e.id > cursor);
	event_check(&e, 3, (int64_t)time(NULL) - T_MS / 1000);
	assert_int_equal(pull(0, IPC_EVENTS_MAX, ev), 1);
}

/* The peer table: only platform-api may pull; the edge's connection is closed. */
static void
test_edge_refused(void **state)
{
	struct ipc_events_pull p = {0, 1};
	struct ipc_seller_event ev[NK + 1];
	struct h_reply r;

	(void)state;
	assert_int_equal(h_ipc_call(&as_edge, ROLE_ROUTER, IPC_EVENTS_PULL, &p, &r, 1, T_MS), 1);
	assert_int_not_equal(r.status, 0);
	assert_true(h_log_contains(&env, "edge sent EVENTS_PULL, which its peer rule"));
	/* platform-api's pulls go on. */
	assert_int_equal(pull(0, IPC_EVENTS_MAX, ev), 1);
	/* The refused link redials; it is up again before the teardown closes it (links_open). */
	assert_int_equal(h_ipc_wait_link(&as_edge, ROLE_ROUTER, T_MS), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_none_yet),
	    cmocka_unit_test(test_one_event),
	    cmocka_unit_test(test_max_honoured),
	    cmocka_unit_test(test_ids_never_reused),
	    cmocka_unit_test(test_edge_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
