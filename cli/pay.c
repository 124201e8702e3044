/*
 * pay.c — `cn2 pay`: a curl-like client that pays. It sends the request;
 * on 402 it reads the Payment challenges, pays the `test` one (cn2's test
 * method, with the local test secret) if its amount is within --max, and
 * retries with the credential. The body goes to standard output as it
 * arrives (streams too); the decoded Payment-Receipt goes to standard error.
 *
 * Security stance: the test secret is read from a file and wiped after use;
 * the credential is never printed.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	int64_t max; /* µUSD */
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
	const char *hs[PAY_MAX_HEADERS + 2];
	struct fetch_req req;
	size_t n = 0;

	for (size_t i = 0; i < o->nheaders; i++)
		hs[n++] = o->headers[i];
	if (auth != NULL)
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

/* The first test/charge challenge among the response's WWW-Authenticate values. */
static int
pick_challenge(const struct fetch_resp *r, struct mpp_challenge *out)
{
	char *vals[16];
	size_t n = fetch_header_values(r->headers, "WWW-Authenticate", vals, 16), found = 0;

	for (size_t i = 0; i < n; i++) {
		struct mpp_challenge cs[8];
		size_t count = 0;

		if (!found && mpp_challenges_parse(vals[i], strlen(vals[i]), cs, 8, &count, NULL, 0) == 0)
			for (size_t k = 0; k < count; k++) {
				if (!found && strcmp(cs[k].method, "test") == 0 &&
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

/* The amount the challenge asks, checked against --max. */
static int
check_amount(const struct pay_opts *o, const struct mpp_challenge *c, int64_t *amount)
{
	cJSON *req = mpp_request_decode(c->request);
	const char *a = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "amount"));
	const char *cur = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "currency"));
	char usd[MONEY_USD_BUFSZ];
	int rc = -1;

	if (a == NULL || cur == NULL || strcmp(cur, "usdc") != 0 || money_parse_units(a, amount) != 0)
		fprintf(stderr, "cn2 pay: the challenge's request is not a usdc amount\n");
	else if (*amount > o->max) {
		money_format_usd(*amount, usd, sizeof(usd));
		fprintf(stderr, "cn2 pay: the price %s USD is above --max; not paying\n", usd);
	} else
		rc = 0;
	cJSON_Delete(req);
	return rc;
}

/* "Authorization: Payment …" (or Payment-Authorization) for the test method. Caller frees. */
static char *
test_credential(const struct pay_opts *o, const struct mpp_challenge *c)
{
	char path[400], proof[MPP_ID_BUFSZ], *secret, *cred, *line = NULL;
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
		if ((cred = mpp_credential_format(c, payload, NULL)) != NULL &&
		    asprintf(&line, "%s: %s", c->header != NULL ? c->header : "Authorization",
			cred) < 0)
			line = NULL;
		free(cred);
		cJSON_Delete(payload);
	}
	explicit_bzero(secret, len);
	free(secret);
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
	if (r.status != 402) {
		rc = r.status >= 200 && r.status < 300 ? 0 : 22;
		fetch_free(&r);
		return rc;
	}
	memset(&c, 0, sizeof(c));
	if (pick_challenge(&r, &c) != 0) {
		fprintf(stderr, "cn2 pay: 402 without a test/charge challenge: %s\n",
		    r.body != NULL ? r.body : "");
		fetch_free(&r);
		return 22;
	}
	fetch_free(&r);
	if (check_amount(o, &c, &amount) != 0 || (auth = test_credential(o, &c)) == NULL) {
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
	    "Send an HTTP request; if it answers 402 Payment Required, pay with the test\n"
	    "method and retry. The body goes to stdout, the receipt to stderr.\n\n"
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

int
cmd_pay(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"max", required_argument, NULL, 'm'}, {"dir", required_argument, NULL, 'D'},
	    {"cacert", required_argument, NULL, 'c'},
	    {"test-secret-file", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	struct pay_opts o;
	char cert[400];
	int ch, rc;

	memset(&o, 0, sizeof(o));
	o.dir = "var";
	o.max = 1000000;
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
	if (o.method == NULL)
		o.method = o.body != NULL ? "POST" : "GET";
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", o.dir);
	if (o.cacert == NULL && access(cert, R_OK) == 0)
		o.cacert = cert;
	rc = pay_run(&o);
	free(o.body);
	return rc;
}
