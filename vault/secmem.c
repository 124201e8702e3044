/*
 * secmem.c — locked memory for plaintext: seller keys opened for one call,
 * the URL and header line that carry them, the vault's HPKE private keys
 * and the master-key contexts.
 *
 * Each block is its own anonymous mapping, rounded up to whole pages,
 * locked (mlock: never written to swap), excluded from core dumps
 * (MADV_DONTDUMP) and from a child's copy (MADV_WIPEONFORK), and wiped with
 * mbedtls_platform_zeroize before it is unmapped. A block that cannot be
 * locked is refused rather than handed out unlocked: the caller fails that
 * one call (closed, not open). The limit that can bite is RLIMIT_MEMLOCK;
 * a call takes one or two pages, so the usual 8 MiB serves thousands of
 * concurrent calls, and the systemd unit may raise it (LimitMEMLOCK=).
 *
 * Security stance: this file is the reason a key in clear never reaches
 * swap or a core file; it logs sizes only, never contents.
 */
#include "vault/vault.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "common/log.h"

/* The mapping's length, kept in front of the block (16 bytes keep it aligned). */
#define SECMEM_HDR 16

static size_t secmem_locked; /* bytes locked in blocks now */
static int secmem_warned;

static size_t
page_size(void)
{
	long n = sysconf(_SC_PAGESIZE);

	return n > 0 ? (size_t)n : 4096;
}

void *
secmem_alloc(size_t n)
{
	size_t pg = page_size(), len;
	uint8_t *p;

	if (n == 0 || n > SIZE_MAX - SECMEM_HDR - pg)
		return NULL;
	len = (n + SECMEM_HDR + pg - 1) / pg * pg;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mlock(p, len) != 0) {
		if (!secmem_warned++)
			log_warn("cannot lock %zu bytes for a key (RLIMIT_MEMLOCK?)", len);
		munmap(p, len);
		return NULL;
	}
	/* Best effort: both only keep copies out of places the key must not go. */
	(void)madvise(p, len, MADV_DONTDUMP);
	(void)madvise(p, len, MADV_WIPEONFORK);
	memcpy(p, &len, sizeof(len));
	secmem_locked += len;
	return p + SECMEM_HDR;
}

void
secmem_free(void *ptr)
{
	uint8_t *p;
	size_t len;

	if (ptr == NULL)
		return;
	p = (uint8_t *)ptr - SECMEM_HDR;
	memcpy(&len, p, sizeof(len));
	mbedtls_platform_zeroize(p, len);
	munlock(p, len);
	munmap(p, len);
	secmem_locked -= len;
}

int
secmem_lock_range(const void *ptr, size_t n)
{
	size_t pg = page_size();
	uintptr_t start = (uintptr_t)ptr / pg * pg, end = ((uintptr_t)ptr + n + pg - 1) / pg * pg;

	if (mlock((const void *)start, end - start) != 0) {
		log_warn("cannot lock %zu bytes of key material", n);
		return -1;
	}
	return 0;
}

size_t
secmem_in_use(void)
{
	return secmem_locked;
}
