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

/* ------------------------------------------------------------------ */
/* the store interface                                                  */

/*
 * A session key as the stores see it: the namespace and the id, and the
 * two keys derived from them, each made on first use by the store that
 * needs it: `local`, the embedded table's keyed hash (slb_table_key),
 * `shared`, the key every balancer computes alike (slb_key_make, SHA-1).
 * ns and id must outlive the slb_skey (they point into the request).
 */
typedef struct {
    const char *ns;
    const char *id;
    apr_size_t len;
    slb_key local;
    slb_key shared;
    /* the local store's precomputed start of the key of ns, or NULL
     * (stickylb_table.h: slb_key_prefix) */
    const void *local_prefix;
    /* what slb_tier.route_known is asked about (the balancer), or NULL */
    const void *scope;
    unsigned have_local:1;
    unsigned have_shared:1;
} slb_skey;

void slb_skey_init(slb_skey *k, const char *ns, const char *id,
                   apr_size_t len);
/* The shared key of k (made on the first call). */
const slb_key *slb_skey_shared(slb_skey *k);

/*
 * The operations of one store (the embedded table, memcached, a fake in
 * the unit tests).  ctx is the store's own.  On every operation an error
 * (APR_TIMEUP for a timeout, anything else but the codes named) means the
 * store could not answer: nothing is known of the key, and callers go on
 * as if it were a miss; no operation blocks longer than the store's own
 * timeouts.  `now` is the caller's clock (tests pass their own).
 */
/* What a store says of itself (slb_store_ops.stats); counters since it
 * was made (the table's: since the segment was created, every process;
 * memcached's: this process). */
typedef struct {
    apr_uint64_t capacity;       /* bindings it can hold; 0: unknown */
    apr_uint64_t hits, misses;   /* gets */
    apr_uint64_t writes;         /* adds and sets that stored */
    apr_uint64_t errors;         /* operations that failed */
} slb_store_stats;

typedef struct {
    const char *name;
    /* The live binding of k: APR_SUCCESS, *out and *age_s (seconds since
     * it was last written here; 0 when the store does not know), or
     * APR_NOTFOUND.  A get pushes the binding's idle deadline where the
     * store keeps one itself (the embedded table). */
    apr_status_t (*get)(void *ctx, slb_skey *k, const slb_lifetime *lt,
                        apr_time_t now, slb_binding *out,
                        apr_uint32_t *age_s);
    /* Bind k to b unless bound: APR_SUCCESS, or APR_EEXIST and *existing
     * (the binding that was there and stays). */
    apr_status_t (*add)(void *ctx, slb_skey *k, const slb_binding *b,
                        const slb_lifetime *lt, apr_time_t now,
                        slb_binding *existing);
    /* Bind k to b, replacing any binding: APR_SUCCESS. */
    apr_status_t (*set)(void *ctx, slb_skey *k, const slb_binding *b,
                        const slb_lifetime *lt, apr_time_t now);
    /* As set, without waiting for the store's answer (APR_SUCCESS once
     * handed over; APR_ENOSPC when a queue is full); NULL: set is used. */
    apr_status_t (*set_nowait)(void *ctx, slb_skey *k, const slb_binding *b,
                               const slb_lifetime *lt, apr_time_t now);
    /* Forget k: APR_SUCCESS or APR_NOTFOUND. */
    apr_status_t (*del)(void *ctx, slb_skey *k);
    /* Push k's expiry to the lifetime's without rewriting it: APR_SUCCESS
     * or APR_NOTFOUND; NULL where a get does it already. */
    apr_status_t (*touch)(void *ctx, slb_skey *k, const slb_lifetime *lt);
    /* Its counters (memory only, never fails). */
    void (*stats)(void *ctx, slb_store_stats *out);
} slb_store_ops;

typedef struct {
    const slb_store_ops *ops;
    void *ctx;
} slb_store;

/* How a binding is written (slb_tier_put). */
typedef enum {
    /* a session id a member issued (learned from its Set-Cookie): kept
     * when bound already (APR_EEXIST, existing_out); no write at all when
     * the local store holds it; with a remote store that can, written
     * without waiting (the id names one member: no agreement is needed) */
    SLB_PUT_LEARN,
    /* the first use of a key the balancer chose a member for (header,
     * query, address): add, so two balancers agree on the first binding
     * (APR_EEXIST, existing_out: the winner) */
    SLB_PUT_FIRST,
    /* a re-pin after failover from `previous`: when another balancer
     * re-pinned the key already, its binding is adopted (APR_EEXIST,
     * existing_out) instead of overwritten */
    SLB_PUT_REPIN
} slb_put_mode;

/* Counters of a tiered store, server-wide when they live in shared
 * memory (updated atomically). */
typedef struct {
    apr_uint64_t local_hits;     /* answered by the local store alone */
    apr_uint64_t remote_gets;    /* asked the remote store */
    apr_uint64_t remote_hits;
    apr_uint64_t remote_misses;
    apr_uint64_t remote_errors;  /* any remote operation that failed */
    apr_uint64_t stale_served;   /* remote failed: the local copy used */
    apr_uint64_t republished;    /* remote lost it: the local copy added */
    apr_uint64_t adopted;        /* another balancer's binding taken */
    apr_uint64_t expired;        /* remote binding past its max lifetime */
    apr_uint64_t local_errors;   /* the local store failed */
    apr_uint64_t unknown_routes; /* a remote binding naming no member */
    apr_uint64_t deferred;       /* remote write failed: kept to retry */
    apr_uint64_t deferred_written; /* ... written later */
    apr_uint64_t deferred_dropped; /* ... dropped (full, or too old) */
} slb_tier_counters;

/*
 * Bindings whose remote write failed (the remote store down for this
 * process), written again at the first call on the tier once a retry is
 * due, so another balancer finds them without waiting for this one to
 * re-validate them.  Per process; bounded (the oldest dropped when full);
 * thread-safe.  ns, scope and lifetime pointers of the keys must outlive
 * it (they are the balancers'); the ids are copied.
 */
typedef struct slb_tier_pending slb_tier_pending;

/* Room for max bindings (ids up to SLB_PENDING_ID_MAX bytes; longer ones
 * are not kept), allocated from p; NULL when p cannot hold it. */
#define SLB_PENDING_ID_MAX 128
slb_tier_pending *slb_tier_pending_make(apr_pool_t *p, int max);
/* How many bindings wait. */
int slb_tier_pending_count(const slb_tier_pending *q);

/*
 * A tiered store: `local` (the embedded table) always, in front of
 * `remote` (memcached) when remote.ops is not NULL.  Without a remote the
 * local store is the stick table.  With one, the local store is a cache:
 *
 *   get   a local binding younger than `validity_s` is used as it is;
 *         an older one, or none, is asked of the remote store (and its
 *         expiry pushed with touch); a remote binding past the maximum
 *         lifetime is deleted; when the remote store lost a binding the
 *         local one still holds (a restart, an eviction), the local one
 *         is added back (re-published); when the remote store fails, the
 *         local binding is used (the session stays where it was).
 *   put   see slb_put_mode; the local copy is written whatever the
 *         remote store answered, so sessions stay sticky here; a binding
 *         the remote store failed to take is kept in `pending` (when
 *         set) and written again by the first get or put after a retry
 *         is due (every 100 ms while the remote store fails; at most 16
 *         per call, the first failure ending the round).
 *
 * `error` (may be NULL) is told of every failed operation, with a short
 * name of it; it must be cheap (the glue rate-limits its log).
 */
typedef struct {
    slb_store local;
    slb_store remote;
    apr_uint32_t validity_s;
    int learn_nowait;
    slb_tier_counters *ctr;      /* may be NULL */
    void (*error)(void *baton, apr_status_t rv, const char *op);
    void *baton;
    /* 1 when `route` is a member of the balancer k->scope names (NULL,
     * or a key without scope: every route is).  A remote binding naming
     * no member is never cached (the local table would register its
     * route): a get answers a miss, a conflicting add or re-pin keeps
     * this balancer's own binding; counted in unknown_routes. */
    int (*route_known)(const void *scope, const char *route);
    /* bindings to write again (may be NULL: none kept) */
    slb_tier_pending *pending;
} slb_tier;

/* The route bound to k: APR_SUCCESS and route_out (SLB_MAX_ROUTE_LEN + 1
 * bytes), or APR_NOTFOUND (a miss, also when the stores failed). */
apr_status_t slb_tier_get(const slb_tier *t, slb_skey *k,
                          const slb_lifetime *lt, apr_time_t now,
                          char *route_out);

/* Bind k to route (see slb_put_mode): APR_SUCCESS, APR_EEXIST with
 * existing_out (may be NULL) holding the route that stays, or an error
 * of the local store when there is no remote one. */
apr_status_t slb_tier_put(const slb_tier *t, slb_skey *k, const char *route,
                          const slb_lifetime *lt, slb_put_mode mode,
                          const char *previous, apr_time_t now,
                          char *existing_out);

/* Forget k in both stores: the local store's answer. */
apr_status_t slb_tier_del(const slb_tier *t, slb_skey *k);

/* A copy of counters other processes update (atomic loads). */
void slb_tier_counters_read(const slb_tier_counters *shared,
                            slb_tier_counters *out);

/* The TTL memcached is given for a lifetime (the shorter one; 0: none). */
apr_uint32_t slb_lifetime_ttl(const slb_lifetime *lt);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_STORE_H */
