/*
 * keys.c — `cn2 keys add|rotate|list` for sellers, and `cn2 token` for
 * local use.
 *
 * A seller is whoever holds a bearer token (a Supabase Auth access token in
 * production). Locally, with no identity provider, `cn2` signs one itself
 * with the directory's jwt secret (--dir), for the seller id given by --as.
 *
 * Sealing: the API key never leaves this process in clear. `add` and
 * `rotate` fetch the vault's public key (GET /api/vault/public-key, over
 * verified TLS), seal the key to it with HPKE (common/hpke.h: base mode,
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) with the binding of
 * the seller id and the provider as info and associated data, and send
 * only {kid, enc, ct}. Only cn2-vault can open it, and only for this seller
 * and provider; the platform API in between carries ciphertext.
 *
 * `add` also sets the listing's terms the router enforces (region, premium
 * opt-in, allowed routes, requests per minute and day, daily budget): each
 * is checked here first, so a typo gets a clear message before anything is
 * sealed or sent, and the platform API checks them again.
 *
 * Security stance: the API key is read from a file or standard input, never
 * from the command line (where `ps` would show it), and wiped from memory
 * once sealed.
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
#include "common/b64url.h"
#include "common/hpke.h"
#include "common/jwt.h"
#include "common/money.h"

/* The bounds the router puts on a listing's terms (router/router.h). */
#define TERMS_ROUTES_MAX 16
#define TERMS_ROUTE_LEN 511
#define TERMS_RPM_MAX 1000000
#define TERMS_RPD_MAX 10000000

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

/* The listing terms `keys add` may set; NULL or 0: the platform's default (none). */
struct keys_terms {
	const char *region; /* "eu" or "us" */
	int premium;	    /* 1: may serve the premium pool */
	const char *route[TERMS_ROUTES_MAX];
	size_t nroutes;
	const char *rpm, *rpd; /* whole numbers, as given */
	const char *budget;    /* USD per UTC day, as given */
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
keys_call(const struct keys_opts *o, const char *method, const char *path, const char *body,
    struct fetch_resp *r)
{
	char url[512], auth[JWT_MAX_LEN + 32];
	char *tok = o->token != NULL ? strdup(o->token) : local_token(o, 600);
	const char *headers[] = {auth, "Content-Type: application/json", NULL};
	struct fetch_req req;
	int rc;

	if (tok == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", o->url, path);
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

/* The seller id the platform will see: --as, or the subject of --token. */
static int
seller_of(const struct keys_opts *o, char *out, size_t cap)
{
	const char *dot1, *dot2;
	uint8_t payload[JWT_MAX_LEN];
	size_t n;
	cJSON *j;
	int rc = -1;

	if (o->token == NULL)
		return snprintf(out, cap, "%s", o->as) < (int)cap ? 0 : -1;
	/* The seller's own token: its payload is read, not verified (the platform verifies). */
	if ((dot1 = strchr(o->token, '.')) == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload) - 1, &n,
		B64_LENIENT) != 0)
		return -1;
	payload[n] = '\0';
	if ((j = cJSON_Parse((const char *)payload)) != NULL &&
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "sub")) != NULL &&
	    snprintf(out, cap, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "sub"))) <
		(int)cap)
		rc = 0;
	cJSON_Delete(j);
	return rc;
}

/* The vault's public key to seal to, from the platform API. */
struct vault_key {
	char kid[64];
	uint8_t pk[HPKE_NPK];
};

static int
vault_key_fetch(const struct keys_opts *o, struct vault_key *vk)
{
	struct fetch_resp r;
	cJSON *j;
	const char *kid, *pk;
	size_t n = 0;
	int rc = -1;

	if (keys_call(o, "GET", "/api/vault/public-key", NULL, &r) != 0)
		return -1;
	j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
	kid = cJSON_GetStringValue(cJSON_GetObjectItem(j, "kid"));
	pk = cJSON_GetStringValue(cJSON_GetObjectItem(j, "public_key"));
	if (kid != NULL && pk != NULL && strlen(kid) < sizeof(vk->kid) &&
	    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "kem_id")) == HPKE_KEM_X25519_SHA256 &&
	    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "kdf_id")) == HPKE_KDF_HKDF_SHA256 &&
	    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "aead_id")) == HPKE_CN2_AEAD &&
	    b64url_decode(pk, strlen(pk), vk->pk, sizeof(vk->pk), &n, 0) == 0 && n == HPKE_NPK) {
		snprintf(vk->kid, sizeof(vk->kid), "%s", kid);
		rc = 0;
	} else
		fprintf(stderr, "cn2: no usable vault public key (the platform API answered %ld)\n",
		    r.status);
	cJSON_Delete(j);
	fetch_free(&r);
	return rc;
}

/*
 * {"kid", "enc", "ct"}: the key sealed to the vault for this seller and
 * provider, added to body as "sealed_key". 0 or -1 (printed).
 */
static int
seal_into(const struct keys_opts *o, const char *provider, const uint8_t *key, size_t len,
    cJSON *body)
{
	struct vault_key vk;
	char seller[128], binding[HPKE_CN2_BINDING_MAX], enc64[64], *ct64 = NULL;
	uint8_t enc[HPKE_NENC], *ct = malloc(len + HPKE_NT);
	int blen, rc = -1;
	cJSON *sk;

	if (ct == NULL || vault_key_fetch(o, &vk) != 0) {
		free(ct);
		return -1;
	}
	if (seller_of(o, seller, sizeof(seller)) != 0 ||
	    (blen = hpke_cn2_binding(binding, sizeof(binding), seller, provider)) < 0)
		fprintf(stderr, "cn2: cannot tell the seller id from the token\n");
	else if (hpke_seal(HPKE_CN2_AEAD, vk.pk, (const uint8_t *)binding, (size_t)blen,
		     (const uint8_t *)binding, (size_t)blen, key, len, enc, ct) != 0 ||
	    (ct64 = malloc(b64url_encoded_len(len + HPKE_NT) + 1)) == NULL ||
	    b64url_encode(enc, sizeof(enc), enc64, sizeof(enc64)) < 0 ||
	    b64url_encode(ct, len + HPKE_NT, ct64, b64url_encoded_len(len + HPKE_NT) + 1) < 0)
		fprintf(stderr, "cn2: cannot seal the key\n");
	else if ((sk = cJSON_AddObjectToObject(body, "sealed_key")) != NULL &&
	    cJSON_AddStringToObject(sk, "kid", vk.kid) != NULL &&
	    cJSON_AddStringToObject(sk, "enc", enc64) != NULL &&
	    cJSON_AddStringToObject(sk, "ct", ct64) != NULL)
		rc = 0;
	free(ct64);
	free(ct);
	return rc;
}

/* Read the key, seal it into body, wipe it. 0 or -1 (printed). */
static int
sealed_body(const struct keys_opts *o, const char *provider, cJSON *body)
{
	const char *from = strcmp(o->key_file, "-") == 0 ? "/dev/stdin" : o->key_file;
	size_t len;
	char *key = fetch_read_file(from, 4096, &len);
	int rc;

	if (key == NULL || len == 0) {
		fprintf(stderr, "cn2: cannot read the API key from %s\n", o->key_file);
		free(key);
		return -1;
	}
	rc = seal_into(o, provider, (const uint8_t *)key, len, body);
	explicit_bzero(key, len);
	free(key);
	return rc;
}

static int
keys_send(const struct keys_opts *o, const char *path, cJSON *body, long want)
{
	struct fetch_resp r;
	char *text = cJSON_PrintUnformatted(body);
	int rc = 1;

	if (text != NULL && keys_call(o, "POST", path, text, &r) == 0) {
		rc = keys_report(&r, want);
		fetch_free(&r);
	}
	free(text);
	return rc;
}

/* "METHOD /path": an upper-case method or *, one space, a path without blanks, ?, # or commas. */
static int
route_ok(const char *r)
{
	size_t m = strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");

	if (m == 0 && r[0] == '*')
		m = 1;
	return m > 0 && strlen(r) <= TERMS_ROUTE_LEN && r[m] == ' ' && r[m + 1] == '/' &&
	    strcspn(r + m + 1, " \t?#,") == strlen(r + m + 1);
}

/* A whole number from 0 to max, in decimal digits only. */
static int
count_ok(const char *s, long max)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9' || strlen(s) > 9)
		return 0;
	v = strtol(s, &end, 10);
	return *end == '\0' && v <= max;
}

/* Every --route well formed? 0, or -1 with the reason printed. */
static int
routes_check(const struct keys_terms *t)
{
	for (size_t i = 0; i < t->nroutes; i++)
		if (!route_ok(t->route[i])) {
			fprintf(stderr, "cn2: --route \"%.80s\": a route is \"METHOD /path\", "
					"such as 'POST /v1/chat/completions' (method upper case "
					"or *)\n",
			    t->route[i]);
			return -1;
		}
	return 0;
}

/* Check the terms as the router would. 0, or -1 with the reason printed. */
static int
terms_check(const struct keys_terms *t)
{
	int64_t budget;

	if (t->region != NULL && strcmp(t->region, "eu") != 0 && strcmp(t->region, "us") != 0)
		fprintf(stderr, "cn2: --region must be eu or us (leave it out for none)\n");
	else if (t->rpm != NULL && !count_ok(t->rpm, TERMS_RPM_MAX))
		fprintf(stderr, "cn2: --rpm must be a whole number from 0 (no limit) to %d\n",
		    TERMS_RPM_MAX);
	else if (t->rpd != NULL && !count_ok(t->rpd, TERMS_RPD_MAX))
		fprintf(stderr, "cn2: --rpd must be a whole number from 0 (no limit) to %d\n",
		    TERMS_RPD_MAX);
	else if (t->budget != NULL && money_parse_usd(t->budget, &budget) != 0)
		fprintf(stderr, "cn2: --daily-budget must be an amount in USD, such as 5 or 2.50 "
				"(0 for no cap)\n");
	else
		return routes_check(t);
	return -1;
}

/* The terms as POST /api/keys takes them. 0, or -1 when out of memory. */
static int
terms_into(const struct keys_terms *t, cJSON *body)
{
	cJSON *routes;

	if ((t->region != NULL && cJSON_AddStringToObject(body, "region", t->region) == NULL) ||
	    (t->premium && cJSON_AddTrueToObject(body, "premium") == NULL) ||
	    (t->rpm != NULL && cJSON_AddNumberToObject(body, "rpm", atof(t->rpm)) == NULL) ||
	    (t->rpd != NULL && cJSON_AddNumberToObject(body, "rpd", atof(t->rpd)) == NULL) ||
	    (t->budget != NULL &&
		cJSON_AddStringToObject(body, "daily_budget_usd", t->budget) == NULL))
		return -1;
	if (t->nroutes == 0)
		return 0;
	if ((routes = cJSON_AddArrayToObject(body, "routes")) == NULL)
		return -1;
	for (size_t i = 0; i < t->nroutes; i++)
		if (!cJSON_AddItemToArray(routes, cJSON_CreateString(t->route[i])))
			return -1;
	return 0;
}

static int
keys_add(struct keys_opts *o, const struct keys_terms *t)
{
	cJSON *body = cJSON_CreateObject();
	int rc = 1;

	snprintf(o->cacert, sizeof(o->cacert), "%s/tls/cert.pem", o->dir);
	if (access(o->cacert, R_OK) != 0)
		o->cacert[0] = '\0';
	if (body != NULL && cJSON_AddStringToObject(body, "provider", o->provider) != NULL &&
	    cJSON_AddStringToObject(body, "price_usd", o->price) != NULL &&
	    terms_into(t, body) == 0 && sealed_body(o, o->provider, body) == 0)
		rc = keys_send(o, "/api/keys", body, 201);
	cJSON_Delete(body);
	return rc;
}

int
cli_keys_add(const char *dir, const char *url, const char *token, const char *as,
    const char *provider, const char *key_file, const char *price)
{
	struct keys_opts o = {dir, url, token, as, provider, key_file, price, ""};
	struct keys_terms none;

	memset(&none, 0, sizeof(none));
	return keys_add(&o, &none);
}

/* The provider of one of the seller's keys, from GET /api/keys. */
static int
key_provider(const struct keys_opts *o, const char *id, char *out, size_t cap)
{
	struct fetch_resp r;
	cJSON *j, *k;
	int rc = -1;

	if (keys_call(o, "GET", "/api/keys", NULL, &r) != 0)
		return -1;
	j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
	cJSON_ArrayForEach(k, cJSON_GetObjectItem(j, "keys")) {
		const char *kid = cJSON_GetStringValue(cJSON_GetObjectItem(k, "id"));
		const char *pv = cJSON_GetStringValue(cJSON_GetObjectItem(k, "provider"));

		if (kid != NULL && pv != NULL && strcmp(kid, id) == 0)
			rc = snprintf(out, cap, "%s", pv) < (int)cap ? 0 : -1;
	}
	if (rc != 0)
		fprintf(stderr, "cn2: you have no key %s (the platform API answered %ld)\n", id,
		    r.status);
	cJSON_Delete(j);
	fetch_free(&r);
	return rc;
}

static int
keys_rotate(const struct keys_opts *o, const char *id)
{
	char provider[64], path[160];
	cJSON *body = cJSON_CreateObject();
	int rc = 1;

	if (strlen(id) > 100 || strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789_.:-") != strlen(id)) {
		fprintf(stderr, "cn2: \"%s\" is not a key id\n", id);
		cJSON_Delete(body);
		return 2;
	}
	snprintf(path, sizeof(path), "/api/keys/%s/rotate", id);
	if (body != NULL && key_provider(o, id, provider, sizeof(provider)) == 0 &&
	    sealed_body(o, provider, body) == 0)
		rc = keys_send(o, path, body, 200);
	cJSON_Delete(body);
	return rc;
}

static void
keys_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cn2 keys add --provider NAME --price USD (--key-file FILE | --key-file -)\n"
	    "                    [--region eu|us] [--premium] [--route 'METHOD /path']...\n"
	    "                    [--rpm N] [--rpd N] [--daily-budget USD]\n"
	    "       cn2 keys rotate KEY_ID (--key-file FILE | --key-file -)\n"
	    "       cn2 keys list      (each key with its status, score and terms, as JSON)\n"
	    "The key is sealed here to the vault's public key (HPKE); only the vault opens it.\n"
	    "terms:   --region eu|us               the key's region (EU buyers get eu keys only)\n"
	    "         --premium                    may serve the premium pool (price x 1.25)\n"
	    "         --route 'POST /v1/chat/completions'  allowed route, repeatable, at most 16\n"
	    "                                      (default: every route of the provider)\n"
	    "         --rpm N, --rpd N             requests per minute / day (default: no limit)\n"
	    "         --daily-budget USD           upstream spend per UTC day (default: no cap)\n"
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
	    {"region", required_argument, NULL, 'r'}, {"premium", no_argument, NULL, 'm'},
	    {"route", required_argument, NULL, 'R'}, {"rpm", required_argument, NULL, 'M'},
	    {"rpd", required_argument, NULL, 'D'}, {"daily-budget", required_argument, NULL, 'B'},
	    {NULL, 0, NULL, 0},
	};
	struct keys_opts o = {"var", "https://localhost:8443", NULL, "local-seller", NULL, NULL,
	    NULL, ""};
	struct keys_terms t;
	struct fetch_resp r;
	const char *verb;
	int ch, rc = 1, terms = 0;

	memset(&t, 0, sizeof(t));
	if (argc < 2 || argv[1][0] == '-') {
		keys_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	optind = strcmp(verb, "rotate") == 0 ? 3 : 2;
	if (optind == 3 && (argc < 3 || argv[2][0] == '-')) {
		keys_usage(stderr);
		return 2;
	}
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
		case 'r': t.region = optarg; terms = 1; break;
		case 'm': t.premium = 1; terms = 1; break;
		case 'M': t.rpm = optarg; terms = 1; break;
		case 'D': t.rpd = optarg; terms = 1; break;
		case 'B': t.budget = optarg; terms = 1; break;
		case 'R':
			if (t.nroutes == TERMS_ROUTES_MAX) {
				fprintf(stderr, "cn2: a key allows at most 16 routes\n");
				return 2;
			}
			t.route[t.nroutes++] = optarg;
			terms = 1;
			break;
		default: keys_usage(stderr); return 2;
		}
	}
	if (strcmp(verb, "add") == 0) {
		if (o.provider == NULL || o.key_file == NULL || o.price == NULL) {
			keys_usage(stderr);
			return 2;
		}
		return terms_check(&t) == 0 ? keys_add(&o, &t) : 2;
	}
	if (terms) {
		fprintf(stderr, "cn2: --region, --premium, --route, --rpm, --rpd and "
				"--daily-budget are for keys add (PATCH /api/keys/ID changes a "
				"listed key)\n");
		return 2;
	}
	if (strcmp(verb, "list") != 0 && strcmp(verb, "rotate") != 0) {
		keys_usage(stderr);
		return 2;
	}
	snprintf(o.cacert, sizeof(o.cacert), "%s/tls/cert.pem", o.dir);
	if (access(o.cacert, R_OK) != 0)
		o.cacert[0] = '\0';
	if (strcmp(verb, "rotate") == 0) {
		if (o.key_file == NULL) {
			keys_usage(stderr);
			return 2;
		}
		return keys_rotate(&o, argv[2]);
	}
	if (keys_call(&o, "GET", "/api/keys", NULL, &r) == 0) {
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
