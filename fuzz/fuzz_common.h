/*
 * fuzz_common.h - shared helpers of the mod_stickylb libFuzzer targets.
 *
 * Included once by every fuzz/fuzz_<name>.c (all helpers are static).
 *
 *  - fz_begin() / fz_end(): APR initialised once, one pool created at the
 *    first input and cleared after every input.
 *  - Exact-size copies of the input: fz_str() (NUL terminated), fz_mem()
 *    (not terminated) and fz_split() (NUL separated fields, each in its own
 *    block), so that AddressSanitizer sees a read one byte past the end.
 *  - A pool shim: apr_palloc() on the fuzz pool is interposed and served by
 *    malloc() (exact size, ASan red zones), the blocks being freed when the
 *    pool is cleared.  Plain APR pools carve allocations out of big blocks,
 *    where an overflow of one allocation into the next is invisible to ASan;
 *    with the shim, an overflow of a string or array built by the code under
 *    test is reported.  Any other pool is served by the real apr_palloc.
 *    Build with -DSLB_FUZZ_NO_POOL_SHIM to switch it off.
 *  - FZ_CHECK(cond): prints the violated invariant and abort()s, so that
 *    libFuzzer records the input as a crash.
 */
#ifndef SLB_FUZZ_COMMON_H
#define SLB_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#define FZ_UNUSED __attribute__((unused))

#define FZ_CHECK(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__,   \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* a span [p, p+len) lies inside [base, base+size] */
#define FZ_INSIDE(p, len, base, size)                                       \
    ((const char *)(p) >= (const char *)(base)                              \
     && (size_t)((const char *)(p) - (const char *)(base)) <= (size_t)(size) \
     && (size_t)(len) <= (size_t)(size)                                     \
                         - (size_t)((const char *)(p) - (const char *)(base)))

static apr_pool_t *fz_pool;

/* blocks to free after the input: input copies and shim allocations */
static void **fz_blocks;
static size_t fz_nblocks, fz_capblocks;

static void fz_track(void *b)
{
    if (fz_nblocks == fz_capblocks) {
        size_t cap = fz_capblocks ? 2 * fz_capblocks : 256;
        void **nb = realloc(fz_blocks, cap * sizeof(*nb));
        if (nb == NULL) {
            abort();
        }
        fz_blocks = nb;
        fz_capblocks = cap;
    }
    fz_blocks[fz_nblocks++] = b;
}

static void *fz_alloc(size_t n)
{
    /* malloc(0) is a valid block of no usable byte under ASan */
    void *b = malloc(n);

    if (b == NULL && n != 0) {
        abort();
    }
    fz_track(b);
    return b;
}

#ifndef SLB_FUZZ_NO_POOL_SHIM
static int fz_shim_on;

void *apr_palloc(apr_pool_t *p, apr_size_t size);
void *apr_palloc(apr_pool_t *p, apr_size_t size)
{
    static void *(*real)(apr_pool_t *, apr_size_t);

    if (fz_shim_on && p == fz_pool) {
        /* at least 1 byte (apr_palloc(p, 0) returns a usable pointer) */
        return fz_alloc(size ? size : 1);
    }
    if (real == NULL) {
        real = (void *(*)(apr_pool_t *, apr_size_t))dlsym(RTLD_NEXT,
                                                          "apr_palloc");
        if (real == NULL) {
            abort();
        }
    }
    return real(p, size);
}
#endif

static apr_pool_t *fz_begin(void)
{
    if (fz_pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&fz_pool, NULL) != APR_SUCCESS) {
            abort();
        }
#ifndef SLB_FUZZ_NO_POOL_SHIM
        fz_shim_on = getenv("SLB_FUZZ_NO_POOL_SHIM") == NULL;
#endif
    }
    return fz_pool;
}

static void fz_end(void)
{
    size_t i;

    apr_pool_clear(fz_pool);
    for (i = 0; i < fz_nblocks; i++) {
        free(fz_blocks[i]);
    }
    fz_nblocks = 0;
}

/* len bytes, NUL terminated, in a block of exactly len + 1 bytes */
FZ_UNUSED static char *fz_str(const uint8_t *d, size_t len)
{
    char *s = fz_alloc(len + 1);

    if (len) {
        memcpy(s, d, len);
    }
    s[len] = '\0';
    return s;
}

/* len bytes, not terminated, in a block of exactly len bytes */
FZ_UNUSED static char *fz_mem(const uint8_t *d, size_t len)
{
    char *s = fz_alloc(len);

    if (len) {
        memcpy(s, d, len);
    }
    return s;
}

/*
 * Split d on NUL bytes into at most max fields, each an exactly sized C
 * string; the last field runs to the end of the input and is cut at its
 * first NUL (a C string cannot hold more).  Returns the number of fields
 * (>= 1: an empty input is one empty field).
 */
FZ_UNUSED static int fz_split(const uint8_t *d, size_t size, char **out, int max)
{
    size_t start = 0, i;
    int n = 0;

    for (i = 0; i <= size && n < max; i++) {
        if (i == size || d[i] == 0) {
            out[n++] = fz_str(d + start, i - start);
            start = i + 1;
        }
    }
    return n;
}

/* memmem without relying on _GNU_SOURCE being honoured by string.h */
FZ_UNUSED static const char *fz_find(const char *h, size_t hl, const char *n, size_t nl)
{
    size_t i;

    if (nl == 0) {
        return h;
    }
    for (i = 0; i + nl <= hl; i++) {
        if (memcmp(h + i, n, nl) == 0) {
            return h + i;
        }
    }
    return NULL;
}

#endif /* SLB_FUZZ_COMMON_H */
