/*
 * cert.h — self-signed TLS certificates for local use (`cn2 init`, tests).
 *
 * A fresh ECDSA P-256 key and a self-signed X.509 v3 certificate naming the
 * given DNS hosts, which clients pin directly (curl --cacert cert.pem).
 * Never meant for production, where the operator brings a real certificate.
 */
#ifndef CN2_CLI_CERT_H
#define CN2_CLI_CERT_H

#include <stddef.h>

/* The names a local setup serves: "localhost" and "*.localhost". */
extern const char *const cert_local_names[];
extern const size_t cert_local_names_n;

/*
 * Write a new key to key_path (PEM, mode 0600) and a certificate to
 * cert_path (PEM, mode 0644), each through a temporary file renamed into
 * place, replacing what was there. dns_names[0] becomes the subject CN; all
 * n (1..64) go into subjectAltName; each is a host name, optionally with a
 * leading "*." label. Valid from one hour ago for days (1..3650) days.
 * Returns 0, or -1 with a reason in err (then neither file was replaced,
 * unless the second rename failed).
 */
int cert_generate(const char *cert_path, const char *key_path,
    const char *const *dns_names, size_t n, int days, char *err,
    size_t errlen);

#endif
