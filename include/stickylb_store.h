/*
 * stickylb_store.h - the stick table interface of mod_stickylb (APR only).
 *
 * A store maps a session key (a session id learned from a backend, a
 * request header, a query parameter or a client address, namespaced per
 * balancer) to the route of the member that serves it.  Backends:
 *
 *   shm        the embedded table in shared memory (stickylb_table.c)
 *   memcached  libmemcached, shared by several Apache instances
 *              (stickylb_mc.c), with the shm table in front as a cache
 *
 * Keys come from clients: they never reach a backend as raw bytes.  A key
 * shared through memcached is the 20-byte SHA-1 digest of
 * "<namespace>\0<id>" (slb_key_make): every balancer computes the same one,
 * memcached sees "slb1:" + 40 hex digits, the shm table in front of it
 * indexes the digest (hashed again with its secret).  A key of the shm
 * store alone is SipHash-2-4-128 of the same bytes keyed with the table's
 * secret (slb_table_key in stickylb_table.h): cheaper, and as opaque to
 * clients.
 *
 * Return codes of every operation: APR_SUCCESS, APR_NOTFOUND (a miss),
 * APR_EEXIST (add: the key is bound already; *existing is filled), or an
 * error (APR_TIMEUP for a timeout, APR_EGENERAL ...), which callers treat as
 * a miss.
 */
#ifndef STICKYLB_STORE_H
#define STICKYLB_STORE_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_errno.h>

#include "stickylb_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLB_KEY_DIGEST_LEN 20
/* "slb1:" + 40 hex digits + NUL */
#define SLB_KEY_TEXT_LEN (5 + 2 * SLB_KEY_DIGEST_LEN + 1)

typedef struct {
    unsigned char digest[SLB_KEY_DIGEST_LEN];
    char text[SLB_KEY_TEXT_LEN];     /* memcached key ("" when keyed) */
    unsigned char keyed;             /* 1: a keyed hash of one table
                                        (slb_table_key), 0: SHA-1 */
} slb_key;

/* Build the shared key of `id` (len bytes, any bytes) in namespace `ns`:
 * the same on every balancer (memcached). */
void slb_key_make(slb_key *key, const char *ns, const char *id,
                  apr_size_t len);

/* A binding as stored. */
typedef struct {
    char route[SLB_MAX_ROUTE_LEN + 1];
    apr_time_t created;      /* first bound (for the maximum lifetime) */
} slb_binding;

/*
 * Lifetimes of one balancer's bindings: idle (seconds since last use) and
 * maximum (seconds since created); 0 = unlimited.
 */
typedef struct {
    apr_uint32_t idle;
    apr_uint32_t max;
} slb_lifetime;

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_STORE_H */
