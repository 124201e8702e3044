/*
 * fetch.c — see fetch.h.
 */
#include "cli/fetch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sink {
	char *p;
	size_t len;
};

struct ctx {
	const struct fetch_req *req;
	struct fetch_resp *resp;
	struct sink head, body;
	CURL *c;
};

static int
sink_add(struct sink *s, const char *data, size_t n)
{
	char *p = realloc(s->p, s->len + n + 1);

	if (p == NULL)
		return -1;
	memcpy(p + s->len, data, n);
	s->p = p;
	s->len += n;
	s->p[s->len] = '\0';
	return 0;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct ctx *x = arg;

	/* A new status line starts a new block (after 100 Continue, say). */
	if (size * n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		x->head.len = 0;
	return sink_add(&x->head, data, size * n) == 0 ? size * n : 0;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct ctx *x = arg;
	long status = 0;

	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
	if (x->req->on_data != NULL && !(x->req->head_only_on_402 && status == 402)) {
		x->req->on_data(x->req->arg, data, size * n);
		return size * n;
	}
	return sink_add(&x->body, data, size * n) == 0 ? size * n : 0;
}

int
fetch(const struct fetch_req *req, struct fetch_resp *resp)
{
	struct ctx x = {req, resp, {NULL, 0}, {NULL, 0}, curl_easy_init()};
	struct curl_slist *hl = NULL;
	CURLcode rc;

	memset(resp, 0, sizeof(*resp));
	if (x.c == NULL) {
		snprintf(resp->error, sizeof(resp->error), "cannot start libcurl");
		return -1;
	}
	for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
		hl = curl_slist_append(hl, req->headers[i]);
	curl_easy_setopt(x.c, CURLOPT_URL, req->url);
	curl_easy_setopt(x.c, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(x.c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(x.c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x.c, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(x.c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x.c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(x.c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x.c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	if (req->cacert != NULL)
		curl_easy_setopt(x.c, CURLOPT_CAINFO, req->cacert);
	if (req->body != NULL) {
		curl_easy_setopt(x.c, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(x.c, CURLOPT_POSTFIELDSIZE, (long)req->bodylen);
	}
	rc = curl_easy_perform(x.c);
	curl_easy_getinfo(x.c, CURLINFO_RESPONSE_CODE, &resp->status);
	if (rc != CURLE_OK)
		snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(rc));
	resp->headers = x.head.p != NULL ? x.head.p : strdup("");
	resp->body = x.body.p;
	resp->len = x.body.len;
	curl_slist_free_all(hl);
	curl_easy_cleanup(x.c);
	return rc == CURLE_OK ? 0 : -1;
}

void
fetch_free(struct fetch_resp *resp)
{
	free(resp->headers);
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

size_t
fetch_header_values(const char *headers, const char *name, char **out, size_t max)
{
	size_t nlen = strlen(name), n = 0;
	const char *p = headers;

	while (p != NULL && *p != '\0' && n < max) {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);

		if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			out[n++] = strndup(v, len - (size_t)(v - p));
		}
		p = eol != NULL ? eol + 2 : NULL;
	}
	return n;
}

char *
fetch_read_file(const char *path, size_t max, size_t *len)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	size_t n;

	if (fp == NULL || (buf = calloc(1, max + 1)) == NULL) {
		if (fp != NULL)
			fclose(fp);
		return NULL;
	}
	n = fread(buf, 1, max + 1, fp);
	fclose(fp);
	if (n > max) {
		explicit_bzero(buf, max + 1);
		free(buf);
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	*len = n;
	return buf;
}
