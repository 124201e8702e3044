/*
 * keys.c — `cn2 keys add|list` for sellers, and `cn2 token` for local use.
 *
 * A seller is whoever holds a bearer token (a Supabase Auth access token in
 * production). Locally, with no identity provider, `cn2` signs one itself
 * with the directory's jwt secret (--dir), for the seller id given by --as.
 *
 * Security stance: the API key is read from a file or standard input, never
 * from the command line (where `ps` would show it), sent only over verified
 * TLS, and wiped from memory once sent.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/fetch.h"
#include "common/jwt.h"

struct keys_opts {
	const char *dir;      /* local state directory (secrets, certificate) */
	const char *url;      /* the platform API base, https://localhost:8443 */
	const char *token;    /* a bearer token, or NULL to sign one locally */
	const char *as;	      /* seller id for a locally signed token */
	const char *provider;
	const char *key_file; /* "-" for standard input */
	const char *price;    /* USD per request, "0.002" */
	char cacert[400];
};

/* A token for opts->as, signed with <dir>/secrets/jwt.key. Caller frees. */
static char *
local_token(const struct keys_opts *o, int ttl)
{
	struct jwt_claims c;
	char path[400];
	size_t len;
	char *secret, *tok;

	snprintf(path, sizeof(path), "%s/secrets/jwt.key", o->dir);
	if ((secret = fetch_read_file(path, 4096, &len)) == NULL) {
		fprintf(stderr, "cn2: cannot read %s (use --token)\n", path);
		return NULL;
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", o->as);
	snprintf(c.aud, sizeof(c.aud), "authenticated");
	snprintf(c.role, sizeof(c.role), "authenticated");
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + ttl;
	tok = jwt_sign(&c, (const uint8_t *)secret, len);
	explicit_bzero(secret, len);
	free(secret);
	return tok;
}

static int
keys_call(const struct keys_opts *o, const char *method, const char *body, struct fetch_resp *r)
{
	char url[512], auth[JWT_MAX_LEN + 32];
	char *tok = o->token != NULL ? strdup(o->token) : local_token(o, 600);
	const char *headers[] = {auth, "Content-Type: application/json", NULL};
	struct fetch_req req;
	int rc;

	if (tok == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s/api/keys", o->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.headers = headers;
	req.body = body;
	req.bodylen = body != NULL ? strlen(body) : 0;
	req.cacert = o->cacert[0] ? o->cacert : NULL;
	rc = fetch(&req, r);
	explicit_bzero(auth, sizeof(auth));
	explicit_bzero(tok, strlen(tok));
	free(tok);
	if (rc != 0)
		fprintf(stderr, "cn2: %s: %s\n", url, r->error);
	return rc;
}

/* Print the API's answer: JSON to stdout on success, the problem to stderr. */
static int
keys_report(struct fetch_resp *r, long want)
{
	int ok = r->status == want;

	fprintf(ok ? stdout : stderr, "%s\n", r->body != NULL ? r->body : "");
	if (!ok)
		fprintf(stderr, "cn2: the platform API answered %ld\n", r->status);
	return ok ? 0 : 1;
}

int
cli_keys_add(const char *dir, const char *url, const char *token, const char *as,
    const char *provider, const char *key_file, const char *price)
{
	struct keys_opts o = {dir, url, token, as, provider, key_file, price, ""};
	struct fetch_resp r;
	cJSON *body = cJSON_CreateObject();
	char *key, *text;
	size_t len;
	int rc = 1;

	snprintf(o.cacert, sizeof(o.cacert), "%s/tls/cert.pem", dir);
	if (access(o.cacert, R_OK) != 0)
		o.cacert[0] = '\0';
	key = fetch_read_file(strcmp(key_file, "-") == 0 ? "/dev/stdin" : key_file, 4096, &len);
	if (key == NULL || len == 0) {
		fprintf(stderr, "cn2: cannot read the API key from %s\n", key_file);
		free(key);
		cJSON_Delete(body);
		return 1;
	}
	cJSON_AddStringToObject(body, "provider", provider);
	cJSON_AddStringToObject(body, "key", key);
	cJSON_AddStringToObject(body, "price_usd", price);
	text = cJSON_PrintUnformatted(body);
	if (text != NULL && keys_call(&o, "POST", text, &r) == 0) {
		rc = keys_report(&r, 201);
		fetch_free(&r);
	}
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	/* cJSON keeps its own copy of the key: wipe it before it is freed. */
	explicit_bzero(cJSON_GetStringValue(cJSON_GetObjectItem(body, "key")), len);
	cJSON_Delete(body);
	explicit_bzero(key, len);
	free(key);
	return rc;
}

static void
keys_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2 keys add --provider NAME --price USD (--key-file FILE | --key-file -)\n"
	    "       cn2 keys list\n"
	    "options: --url https://localhost:8443  the platform API (default)\n"
	    "         --dir var                    local state: certificate, jwt secret\n"
	    "         --token TOKEN                a bearer token (default: sign one locally)\n"
	    "         --as SELLER                  seller id for a local token (default local-seller)\n");
}

int
cmd_keys(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'}, {"url", required_argument, NULL, 'u'},
	    {"token", required_argument, NULL, 't'}, {"as", required_argument, NULL, 'a'},
	    {"provider", required_argument, NULL, 'p'}, {"key-file", required_argument, NULL, 'k'},
	    {"price", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct keys_opts o = {"var", "https://localhost:8443", NULL, "local-seller", NULL, NULL,
	    NULL, ""};
	struct fetch_resp r;
	const char *verb;
	int ch, rc = 1;

	if (argc < 2 || argv[1][0] == '-') {
		keys_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': o.dir = optarg; break;
		case 'u': o.url = optarg; break;
		case 't': o.token = optarg; break;
		case 'a': o.as = optarg; break;
		case 'p': o.provider = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'P': o.price = optarg; break;
		case 'h': keys_usage(stdout); return 0;
		default: keys_usage(stderr); return 2;
		}
	}
	if (strcmp(verb, "add") == 0) {
		if (o.provider == NULL || o.key_file == NULL || o.price == NULL) {
			keys_usage(stderr);
			return 2;
		}
		return cli_keys_add(o.dir, o.url, o.token, o.as, o.provider, o.key_file, o.price);
	}
	if (strcmp(verb, "list") != 0) {
		keys_usage(stderr);
		return 2;
	}
	snprintf(o.cacert, sizeof(o.cacert), "%s/tls/cert.pem", o.dir);
	if (access(o.cacert, R_OK) != 0)
		o.cacert[0] = '\0';
	if (keys_call(&o, "GET", NULL, &r) == 0) {
		rc = keys_report(&r, 200);
		fetch_free(&r);
	}
	return rc;
}

int
cmd_token(int argc, char **argv)
{
	struct keys_opts o = {"var", NULL, NULL, "local-seller", NULL, NULL, NULL, ""};
	char *tok;
	int ttl = 3600;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			o.dir = argv[++i];
		else if (strcmp(argv[i], "--as") == 0 && i + 1 < argc)
			o.as = argv[++i];
		else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
			ttl = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: cn2 token [--dir var] [--as SELLER] [--ttl SECONDS]\n"
					"Sign a local seller token with <dir>/secrets/jwt.key.\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (ttl <= 0 || (tok = local_token(&o, ttl)) == NULL)
		return 1;
	printf("%s\n", tok);
	free(tok);
	return 0;
}
