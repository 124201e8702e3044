/*
 * quota.h — reading an upstream's error body for what its status does not
 * say: a key out of credit or quota (vault/quota.c).
 *
 * Kept out of vault.h so the classifier can be tested and fuzzed alone.
 */
#ifndef CN2_VAULT_QUOTA_H
#define CN2_VAULT_QUOTA_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of an error body looked at, at most: provider error bodies are a few hundred. */
#define QUOTA_PEEK_MAX 2048

/*
 * What the error body bytes p[0..len) say: ECLASS_QUOTA (common/ipc_msg.h)
 * when they carry one of the providers' out-of-credit markers, else
 * ECLASS_NONE. Reads p only; keeps nothing.
 */
uint8_t quota_classify(const uint8_t *p, size_t len);

#endif
