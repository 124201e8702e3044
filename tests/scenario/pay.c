/*
 * pay.c — harness helpers that speak JSON: a buyer paying for one request
 * with the test method (h_pay_header: the 402, its first challenge, the
 * proof under the state directory's test secret, and the credential, as
 * `cn2 pay` would send it), and editing the provider catalogue of the state
 * directory (h_catalogue_edit).
 */
#include "tests/scenario/harness.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpp.h"

int
h_pay_header(struct h_env *e, const char *url, const char *const *headers,
    const char *body, char *out, size_t cap)
{
	const char *hs[16] = {"Content-Type: application/json"};
	char proof[MPP_ID_BUFSZ], *line, *end, *cred = NULL, *secret;
	struct mpp_challenge c;
	struct h_resp r;
	size_t n = 1, secretlen;
	cJSON *payload;
	int rc = -1;

	for (; headers != NULL && *headers != NULL && n < 15; headers++)
		hs[n++] = *headers;
	memset(&c, 0, sizeof(c));
	h_http(e, "POST", url, hs, body, strlen(body), &r);
	secret = h_read(e, "secrets/test.key", &secretlen);
	if (r.status == 402 && secret != NULL &&
	    (line = strcasestr(r.headers, "WWW-Authenticate: ")) != NULL &&
	    (end = strstr(line + 18, "\r\n")) != NULL &&
	    mpp_challenge_parse(line + 18, (size_t)(end - line - 18), &c, NULL, 0) == 0 &&
	    mpp_test_proof((const uint8_t *)secret, secretlen, c.id, proof) == 0 &&
	    (payload = cJSON_CreateObject()) != NULL) {
		cJSON_AddStringToObject(payload, "proof", proof);
		cred = mpp_credential_format(&c, payload, NULL);
		cJSON_Delete(payload);
		if (cred != NULL && snprintf(out, cap, "Authorization: %s", cred) < (int)cap)
			rc = 0;
	}
	free(cred);
	free(secret);
	mpp_challenge_free(&c);
	h_resp_free(&r);
	return rc;
}

int
h_catalogue_edit(struct h_env *e, void (*edit)(struct cJSON *providers, void *arg), void *arg)
{
	char path[400], *text = h_read(e, "etc/providers.json", NULL);
	cJSON *root = text != NULL ? cJSON_Parse(text) : NULL;
	FILE *fp;
	int rc = -1;

	free(text);
	if (root == NULL)
		return -1;
	edit(cJSON_GetObjectItem(root, "providers"), arg);
	snprintf(path, sizeof(path), "%s/etc/providers.json", e->dir);
	if ((text = cJSON_Print(root)) != NULL && (fp = fopen(path, "w")) != NULL) {
		fputs(text, fp);
		rc = fclose(fp) == 0 ? 0 : -1;
	}
	free(text);
	cJSON_Delete(root);
	return rc;
}
