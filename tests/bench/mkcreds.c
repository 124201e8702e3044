/*
 * mkcreds.c — pre-made credentials for the benchmark, so the load generator
 * is not the bottleneck: fetch N challenges from the edge (each a real 402
 * from the pipeline), pay each with the test method, and write one
 * "Authorization: Payment …" header value per line.
 *
 *   mkcreds URL TEST_SECRET_FILE N OUT [BODY]
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpp.h"

struct buf {
	char *p;
	size_t len;
};

static size_t
collect(char *d, size_t s, size_t n, void *arg)
{
	struct buf *b = arg;
	char *p = realloc(b->p, b->len + s * n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->len, d, s * n);
	b->p = p;
	b->len += s * n;
	b->p[b->len] = '\0';
	return s * n;
}

static size_t
discard(char *d, size_t s, size_t n, void *arg)
{
	(void)d;
	(void)arg;
	return s * n;
}

/* The credential for one fresh challenge, or NULL. Caller frees. */
static char *
one(CURL *c, const uint8_t *secret, size_t slen)
{
	struct buf h = {NULL, 0};
	struct mpp_challenge ch;
	char proof[MPP_ID_BUFSZ], *line, *end, *cred = NULL;
	cJSON *payload;

	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	if (curl_easy_perform(c) != CURLE_OK || h.p == NULL ||
	    (line = strcasestr(h.p, "WWW-Authenticate: ")) == NULL) {
		free(h.p);
		return NULL;
	}
	line += 18;
	end = strstr(line, "\r\n");
	if (end != NULL && mpp_challenge_parse(line, (size_t)(end - line), &ch, NULL, 0) == 0) {
		if (mpp_test_proof(secret, slen, ch.id, proof) == 0) {
			payload = cJSON_CreateObject();
			cJSON_AddStringToObject(payload, "proof", proof);
			cred = mpp_credential_format(&ch, payload, NULL);
			cJSON_Delete(payload);
		}
		mpp_challenge_free(&ch);
	}
	free(h.p);
	return cred;
}

int
main(int argc, char **argv)
{
	char secret[256];
	size_t slen;
	FILE *fp, *out;
	CURL *c;
	struct curl_slist *hl = NULL;
	long n, made = 0;

	if (argc < 5 || (n = atol(argv[3])) <= 0) {
		fprintf(stderr, "usage: mkcreds URL TEST_SECRET_FILE N OUT [BODY]\n");
		return 2;
	}
	if ((fp = fopen(argv[2], "r")) == NULL || (slen = fread(secret, 1, sizeof(secret), fp)) == 0)
		return 1;
	fclose(fp);
	if ((out = fopen(argv[4], "w")) == NULL)
		return 1;
	c = curl_easy_init();
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, argv[1]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (argc > 5)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, argv[5]);
	for (long i = 0; i < n; i++) {
		char *cred = one(c, (const uint8_t *)secret, slen);

		if (cred == NULL)
			continue;
		fprintf(out, "%s\n", cred);
		free(cred);
		made++;
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	fclose(out);
	fprintf(stderr, "mkcreds: %ld credentials\n", made);
	return made == n ? 0 : 1;
}
