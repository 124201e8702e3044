/*
 * fetch.h — the cn2 command's HTTP client (libcurl), shared by `pay` and
 * `keys`. TLS is verified, against the local certificate when one is given.
 */
#ifndef CN2_CLI_FETCH_H
#define CN2_CLI_FETCH_H

#include <stddef.h>

struct fetch_resp {
	long status;
	char *headers; /* the final response's header block, NUL-terminated */
	char *body;    /* NUL-terminated, unless streamed (then NULL) */
	size_t len;
	char error[256]; /* libcurl's reason when the request failed */
};

struct fetch_req {
	const char *method;
	const char *url;
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	const char *body;	    /* may be NULL */
	size_t bodylen;
	const char *cacert; /* PEM file to trust, or NULL for the system store */
	/* Stream the body here as it arrives instead of keeping it (NULL: keep). */
	void (*on_data)(void *arg, const char *data, size_t len);
	void *arg;
	int head_only_on_402; /* do not stream a 402's body */
};

/* 0 when a response arrived (any status), -1 with resp->error otherwise. */
int fetch(const struct fetch_req *req, struct fetch_resp *resp);
void fetch_free(struct fetch_resp *resp);

/* Every value of header name in a header block (case-insensitive); n of them. */
size_t fetch_header_values(const char *headers, const char *name, char **out, size_t max);

/* Read a whole small file (secrets, keys); caller wipes and frees. NULL on error. */
char *fetch_read_file(const char *path, size_t max, size_t *len);

#endif
