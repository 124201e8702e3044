/*
 * pay.c — `cn2 pay`: a curl-like client that pays. It sends the request
 * (with Accept-Payment naming the chosen method); on 402 it reads the
 * Payment challenges, pays the one of --method if its amount is within the
 * limit, and retries with the credential. The body goes to standard output
 * as it arrives (streams too); the decoded Payment-Receipt goes to
 * standard error.
 *
 *   test       (default) cn2's test method, with the local test secret
 *   lightning  pays the invoice through the buyer's own LND node (REST
 *              POST /v1/channels/transactions, macaroon, the node's
 *              certificate) and presents the preimage; --max-sats bounds it
 *   stripe     presents a Shared Payment Token the buyer was granted (--spt)
 *   tempo      push mode: presents the hash of a transfer the buyer sent
 *              (--tempo-tx) for the challenge's amount
 *
 * Security stance: secrets (the test secret, the macaroon, the token) are
 * read from files or arguments and wiped after use; the credential and the
 * preimage are never printed.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/md.h>

#include "cli/fetch.h"
#include "common/b64url.h"
#include "common/money.h"
#include "common/mpp.h"

#define PAY_MAX_HEADERS 32

struct pay_opts {
	const char *method;
	const char *url;
	const char *headers[PAY_MAX_HEADERS + 2];
	size_t nheaders;
	char *body;
	size_t bodylen;
	const char *dir;
	const char *cacert;
	const char *secret_file;
	const char *pay_method;	 /* test, lightning, stripe, tempo */
	const char *lnd_url, *lnd_macaroon_file, *lnd_cert;
	const char *spt, *tempo_tx;
	int64_t max;		 /* µUSD */
	int64_t max_sats;
	char accept[64];	 /* "Accept-Payment: <method>/charge" */
	int include;
	int verbose;
};

static void
pay_out(void *arg, const char *data, size_t len)
{
	(void)arg;
	fwrite(data, 1, len, stdout);
	fflush(stdout);
}

static int
pay_send(const struct pay_opts *o, const char *auth, struct fetch_resp *r)
{
	const char *hs[PAY_MAX_HEADERS + 3];
	struct fetch_req req;
	size_t n = 0;

	for (size_t i = 0; i < o->nheaders; i++)
		hs[n++] = o->headers[i];
	if (auth == NULL)
		hs[n++] = o->accept;
	else
		hs[n++] = auth;
	hs[n] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = o->method;
	req.url = o->url;
	req.headers = hs;
	req.body = o->body;
	req.bodylen = o->bodylen;
	req.cacert = o->cacert;
	req.on_data = pay_out;
	req.head_only_on_402 = 1;
	if (fetch(&req, r) != 0) {
		fprintf(stderr, "cn2 pay: %s: %s\n", o->url, r->error);
		return -1;
	}
	if (o->include && r->status != 402)
		fputs(r->headers, stdout);
	return 0;
}

/* The first <method>/charge challenge among the response's WWW-Authenticate values. */
static int
pick_challenge(const struct fetch_resp *r, const char *method, struct mpp_challenge *out)
{
	char *vals[16];
	size_t n = fetch_header_values(r->headers, "WWW-Authenticate", vals, 16), found = 0;

	for (size_t i = 0; i < n; i++) {
		struct mpp_challenge cs[8];
		size_t count = 0;

		if (!found && mpp_challenges_parse(vals[i], strlen(vals[i]), cs, 8, &count, NULL, 0) == 0)
			for (size_t k = 0; k < count; k++) {
				if (!found && strcmp(cs[k].method, method) == 0 &&
				    strcmp(cs[k].intent, "charge") == 0) {
					*out = cs[k];
					found = 1;
				} else {
					mpp_challenge_free(&cs[k]);
				}
			}
		free(vals[i]);
	}
	return found ? 0 : -1;
}

/* The challenge's amount in µUSD (sats for lightning), or -1 if its currency is not the method's. */
static int
request_amount(const char *method, const char *a, const char *cur, int64_t *amount)
{
	int64_t units;

	if (a == NULL || cur == NULL || money_parse_units(a, &units) != 0)
		return -1;
	if (strcmp(method, "stripe") == 0)
		return strcmp(cur, "usd") == 0 && money_mul(units, 10000, amount) ? 0 : -1;
	if (strcmp(method, "lightning") == 0 && strcmp(cur, "sat") != 0)
		return -1;
	if (strcmp(method, "test") == 0 && strcmp(cur, "usdc") != 0)
		return -1;
	*amount = units; /* test and tempo: µUSD (6 decimals); lightning: sats */
	return 0;
}

/* The amount the challenge asks, checked against --max (or --max-sats). */
static int
check_amount(const struct pay_opts *o, const struct mpp_challenge *c, int64_t *amount)
{
	cJSON *req = mpp_request_decode(c->request);
	const char *a = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "amount"));
	const char *cur = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "currency"));
	char usd[MONEY_USD_BUFSZ];
	int rc = -1;

	if (request_amount(o->pay_method, a, cur, amount) != 0)
		fprintf(stderr, "cn2 pay: the challenge's request is not a %s amount\n", o->pay_method);
	else if (strcmp(o->pay_method, "lightning") == 0 && *amount > o->max_sats)
		fprintf(stderr, "cn2 pay: %lld sats is above --max-sats; not paying\n",
		    (long long)*amount);
	else if (strcmp(o->pay_method, "lightning") != 0 && *amount > o->max) {
		money_format_usd(*amount, usd, sizeof(usd));
		fprintf(stderr, "cn2 pay: the price %s USD is above --max; not paying\n", usd);
	} else
		rc = 0;
	cJSON_Delete(req);
	return rc;
}

/* "Authorization: Payment …" (or Payment-Authorization) with payload. Caller frees. */
static char *
credential_line(const struct mpp_challenge *c, const cJSON *payload)
{
	char *cred = mpp_credential_format(c, payload, NULL), *line = NULL;

	if (cred != NULL && asprintf(&line, "%s: %s",
				c->header != NULL ? c->header : "Authorization", cred) < 0)
		line = NULL;
	if (cred != NULL)
		explicit_bzero(cred, strlen(cred));
	free(cred);
	return line;
}

/*
 * Lightning: pay the invoice with the buyer's LND (SendPaymentSync over
 * REST) and return the preimage as 64 hex digits. 0 or -1.
 */
static int
lnd_pay(const struct pay_opts *o, const char *invoice, char pre[65])
{
	char url[512], *mac, machdr[4200], *body = NULL;
	const char *hs[] = {machdr, "Content-Type: application/json", NULL};
	struct fetch_req req;
	struct fetch_resp r;
	cJSON *j, *in = cJSON_CreateObject();
	uint8_t raw[48];
	size_t len, n = 0;
	int rc = -1;

	if ((mac = fetch_read_file(o->lnd_macaroon_file, 4096, &len)) == NULL) {
		fprintf(stderr, "cn2 pay: cannot read the macaroon %s\n", o->lnd_macaroon_file);
		cJSON_Delete(in);
		return -1;
	}
	while (len > 0 && (mac[len - 1] == '\n' || mac[len - 1] == '\r'))
		mac[--len] = '\0';
	snprintf(machdr, sizeof(machdr), "Grpc-Metadata-macaroon: %s", mac);
	explicit_bzero(mac, len);
	free(mac);
	snprintf(url, sizeof(url), "%s/v1/channels/transactions", o->lnd_url);
	cJSON_AddStringToObject(in, "payment_request", invoice);
	body = cJSON_PrintUnformatted(in);
	cJSON_Delete(in);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = hs;
	req.body = body;
	req.bodylen = body != NULL ? strlen(body) : 0;
	req.cacert = o->lnd_cert;
	if (body != NULL && fetch(&req, &r) == 0) {
		j = cJSON_Parse(r.body != NULL ? r.body : "");
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(j, "payment_preimage"));
		const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(j, "payment_error"));

		if (r.status == 200 && (e == NULL || *e == '\0') && p != NULL &&
		    b64url_decode(p, strlen(p), raw, sizeof(raw), &n, B64_LENIENT) == 0 && n == 32) {
			for (int i = 0; i < 32; i++)
				snprintf(pre + 2 * i, 3, "%02x", raw[i]);
			rc = 0;
		} else {
			fprintf(stderr, "cn2 pay: LND did not pay the invoice (status %ld)\n", r.status);
		}
		cJSON_Delete(j);
		fetch_free(&r);
	} else if (body != NULL) {
		fprintf(stderr, "cn2 pay: %s: %s\n", url, r.error);
	}
	explicit_bzero(machdr, sizeof(machdr));
	explicit_bzero(raw, sizeof(raw));
	free(body);
	return rc;
}

/* The payload of a lightning, stripe or tempo payment; NULL on failure. */
static cJSON *
method_payload(const struct pay_opts *o, const struct mpp_challenge *c)
{
	cJSON *payload = cJSON_CreateObject(), *req = mpp_request_decode(c->request);
	const char *inv = cJSON_GetStringValue(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(req, "methodDetails"), "invoice"));
	char pre[65];
	int ok = 0;

	if (strcmp(o->pay_method, "lightning") == 0 && inv != NULL && lnd_pay(o, inv, pre) == 0) {
		ok = cJSON_AddStringToObject(payload, "preimage", pre) != NULL;
		explicit_bzero(pre, sizeof(pre));
	} else if (strcmp(o->pay_method, "stripe") == 0) {
		ok = cJSON_AddStringToObject(payload, "spt", o->spt) != NULL;
	} else if (strcmp(o->pay_method, "tempo") == 0) {
		ok = cJSON_AddStringToObject(payload, "type", "hash") != NULL &&
		    cJSON_AddStringToObject(payload, "hash", o->tempo_tx) != NULL;
	}
	cJSON_Delete(req);
	if (!ok) {
		cJSON_Delete(payload);
		return NULL;
	}
	return payload;
}

/* "Authorization: Payment …" (or Payment-Authorization) for the test method. Caller frees. */
static char *
test_credential(const struct pay_opts *o, const struct mpp_challenge *c)
{
	char path[400], proof[MPP_ID_BUFSZ], *secret, *line = NULL;
	cJSON *payload;
	size_t len;

	if (o->secret_file != NULL)
		snprintf(path, sizeof(path), "%s", o->secret_file);
	else
		snprintf(path, sizeof(path), "%s/secrets/test.key", o->dir);
	if ((secret = fetch_read_file(path, 4096, &len)) == NULL) {
		fprintf(stderr, "cn2 pay: cannot read the test secret %s\n", path);
		return NULL;
	}
	if (mpp_test_proof((const uint8_t *)secret, len, c->id, proof) != 0) {
		fprintf(stderr, "cn2 pay: the test secret is too short\n");
	} else {
		payload = cJSON_CreateObject();
		cJSON_AddStringToObject(payload, "proof", proof);
		line = credential_line(c, payload);
		cJSON_Delete(payload);
	}
	explicit_bzero(secret, len);
	free(secret);
	return line;
}

/* The credential line for the chosen method. Caller frees. */
static char *
pay_credential(const struct pay_opts *o, const struct mpp_challenge *c)
{
	cJSON *payload;
	char *line;

	if (strcmp(o->pay_method, "test") == 0)
		return test_credential(o, c);
	if ((payload = method_payload(o, c)) == NULL)
		return NULL;
	line = credential_line(c, payload);
	cJSON_Delete(payload);
	return line;
}

static void
print_receipt(const struct fetch_resp *r, int64_t amount)
{
	char *vals[1], usd[MONEY_USD_BUFSZ];
	uint8_t json[2048];
	size_t n;

	money_format_usd(amount, usd, sizeof(usd));
	if (fetch_header_values(r->headers, "Payment-Receipt", vals, 1) != 1) {
		fprintf(stderr, "cn2 pay: status %ld, no receipt (nothing was captured)\n", r->status);
		return;
	}
	if (b64url_decode(vals[0], strlen(vals[0]), json, sizeof(json) - 1, &n, B64_LENIENT) == 0) {
		json[n] = '\0';
		fprintf(stderr, "cn2 pay: paid %s USD; receipt: %s\n", usd, (char *)json);
	}
	free(vals[0]);
}

static int
pay_run(struct pay_opts *o)
{
	struct mpp_challenge c;
	struct fetch_resp r;
	int64_t amount = 0;
	char *auth;
	int rc;

	if (pay_send(o, NULL, &r) != 0)
		return 1;
	if (r.status != 402 && r.status != 400) {
		rc = r.status >= 200 && r.status < 300 ? 0 : 22;
		fetch_free(&r);
		return rc;
	}
	memset(&c, 0, sizeof(c));
	if (pick_challenge(&r, o->pay_method, &c) != 0) {
		fprintf(stderr, "cn2 pay: %ld without a %s/charge challenge: %s\n", r.status,
		    o->pay_method, r.body != NULL ? r.body : "");
		fetch_free(&r);
		return 22;
	}
	fetch_free(&r);
	if (check_amount(o, &c, &amount) != 0 || (auth = pay_credential(o, &c)) == NULL) {
		mpp_challenge_free(&c);
		return 1;
	}
	mpp_challenge_free(&c);
	rc = pay_send(o, auth, &r);
	explicit_bzero(auth, strlen(auth));
	free(auth);
	if (rc != 0)
		return 1;
	if (r.status == 402 && r.body != NULL)
		fprintf(stderr, "cn2 pay: payment refused: %s\n", r.body);
	print_receipt(&r, amount);
	rc = r.status >= 200 && r.status < 300 ? 0 : 22;
	fetch_free(&r);
	return rc;
}

static void
pay_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2 pay [options] URL\n"
	    "Send an HTTP request; if it answers 402 Payment Required, pay and retry.\n"
	    "The body goes to stdout, the receipt to stderr.\n\n"
	    "  --method NAME     test (default), lightning, stripe or tempo\n"
	    "  --lnd-url URL --lnd-macaroon-file FILE --lnd-cert FILE\n"
	    "                    lightning: the buyer's LND node that pays the invoice\n"
	    "  --max-sats N      lightning: pay at most this many sats (default 10000)\n"
	    "  --spt TOKEN       stripe: the Shared Payment Token granted to cn2\n"
	    "  --tempo-tx HASH   tempo: the transfer already sent for the challenge's amount\n"
	    "  -X METHOD         request method (default GET, or POST with -d)\n"
	    "  -H 'Name: value'  add a header (repeatable)\n"
	    "  -d DATA           request body; -d @FILE reads it from FILE\n"
	    "  -i                print the response headers too\n"
	    "  --max USD         pay at most this much (default 1.00)\n"
	    "  --dir DIR         local state: test secret, certificate (default var)\n"
	    "  --cacert FILE     trust this certificate (default DIR/tls/cert.pem)\n"
	    "  --test-secret-file FILE  the test method's secret (default DIR/secrets/test.key)\n"
	    "Exit status: 0 on a 2xx answer, 22 on another HTTP status, 1 on other errors.\n");
}

static int
pay_body(struct pay_opts *o, const char *arg)
{
	if (arg[0] != '@') {
		o->body = strdup(arg);
		o->bodylen = strlen(arg);
		return o->body != NULL ? 0 : -1;
	}
	o->body = fetch_read_file(arg + 1, 8u << 20, &o->bodylen);
	if (o->body == NULL)
		fprintf(stderr, "cn2 pay: cannot read %s\n", arg + 1);
	return o->body != NULL ? 0 : -1;
}

/* The method options. 0, or -1 with a message. */
static int
pay_method_opt(struct pay_opts *o, int ch, const char *arg)
{
	if (ch == 'M')
		o->pay_method = arg;
	else if (ch == 'L')
		o->lnd_url = arg;
	else if (ch == 'K')
		o->lnd_macaroon_file = arg;
	else if (ch == 'C')
		o->lnd_cert = arg;
	else if (ch == 'T')
		o->spt = arg;
	else if (ch == 'x')
		o->tempo_tx = arg;
	else if (money_parse_units(arg, &o->max_sats) != 0) {
		fprintf(stderr, "cn2 pay: --max-sats takes a whole number\n");
		return -1;
	}
	return 0;
}

/* Each method has what it needs. */
static int
pay_method_check(struct pay_opts *o)
{
	const char *m = o->pay_method, *missing = NULL;

	if (strcmp(m, "lightning") == 0 &&
	    (o->lnd_url == NULL || o->lnd_macaroon_file == NULL || o->lnd_cert == NULL))
		missing = "--lnd-url, --lnd-macaroon-file and --lnd-cert";
	else if (strcmp(m, "stripe") == 0 && o->spt == NULL)
		missing = "--spt";
	else if (strcmp(m, "tempo") == 0 && o->tempo_tx == NULL)
		missing = "--tempo-tx";
	else if (strcmp(m, "test") != 0 && strcmp(m, "lightning") != 0 && strcmp(m, "stripe") != 0 &&
	    strcmp(m, "tempo") != 0) {
		fprintf(stderr, "cn2 pay: --method is test, lightning, stripe or tempo\n");
		return -1;
	}
	if (missing != NULL) {
		fprintf(stderr, "cn2 pay: --method %s needs %s\n", m, missing);
		return -1;
	}
	snprintf(o->accept, sizeof(o->accept), "Accept-Payment: %s/charge", m);
	return 0;
}

int
cmd_pay(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"max", required_argument, NULL, 'm'}, {"dir", required_argument, NULL, 'D'},
	    {"cacert", required_argument, NULL, 'c'},
	    {"test-secret-file", required_argument, NULL, 's'},
	    {"method", required_argument, NULL, 'M'}, {"lnd-url", required_argument, NULL, 'L'},
	    {"lnd-macaroon-file", required_argument, NULL, 'K'},
	    {"lnd-cert", required_argument, NULL, 'C'}, {"max-sats", required_argument, NULL, 'S'},
	    {"spt", required_argument, NULL, 'T'}, {"tempo-tx", required_argument, NULL, 'x'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	struct pay_opts o;
	char cert[400];
	int ch, rc;

	memset(&o, 0, sizeof(o));
	o.dir = "var";
	o.max = 1000000;
	o.max_sats = 10000;
	o.pay_method = "test";
	while ((ch = getopt_long(argc, argv, "X:H:d:ih", longopts, NULL)) != -1) {
		if (ch == 'X')
			o.method = optarg;
		else if (ch == 'H' && o.nheaders < PAY_MAX_HEADERS)
			o.headers[o.nheaders++] = optarg;
		else if (ch == 'd' && pay_body(&o, optarg) != 0)
			return 1;
		else if (ch == 'i')
			o.include = 1;
		else if (ch == 'm' && money_parse_usd(optarg, &o.max) != 0) {
			fprintf(stderr, "cn2 pay: --max takes USD, like 0.05\n");
			return 2;
		} else if (ch == 'D')
			o.dir = optarg;
		else if (ch == 'c')
			o.cacert = optarg;
		else if (ch == 's')
			o.secret_file = optarg;
		else if (ch == 'M' || ch == 'L' || ch == 'K' || ch == 'C' || ch == 'T' || ch == 'x' ||
		    ch == 'S') {
			if (pay_method_opt(&o, ch, optarg) != 0) {
				free(o.body);
				return 2;
			}
		}
		else if (ch == 'h') {
			pay_usage(stdout);
			return 0;
		} else if (ch != 'd' && ch != 'm') {
			pay_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		pay_usage(stderr);
		return 2;
	}
	o.url = argv[optind];
	if (pay_method_check(&o) != 0) {
		free(o.body);
		return 2;
	}
	if (o.method == NULL)
		o.method = o.body != NULL ? "POST" : "GET";
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", o.dir);
	if (o.cacert == NULL && access(cert, R_OK) == 0)
		o.cacert = cert;
	rc = pay_run(&o);
	free(o.body);
	return rc;
}
