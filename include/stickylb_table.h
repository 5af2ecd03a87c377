/*
 * stickylb_table.h - the embedded stick table: a fixed-size hash table in
 * one block of (shared) memory, used by every child process at once.
 * APR only: the module puts it in an anonymous shared memory segment, the
 * unit tests and benchmarks in malloc'd memory.
 *
 * Layout: a header, a registry of routes (a binding stores a 16-bit route
 * number, not the route text: the entry's index and its generation), then
 * buckets of 64 bytes (one cache line),
 * each holding three slots of 20 bytes:
 *
 *     id (8 bytes of the key's SHA-1) | idle deadline | hard deadline |
 *     route number and protected bit | time written (seconds, 16 bits)
 *
 * so a slot costs 64/3 = 21.3 bytes; tables are sized to stay at most 55%
 * full (1,000,000 bindings: 37.3 MiB), where a new binding almost never
 * evicts.  Each key has two candidate buckets (two-choice hashing, the
 * emptier one taken; bucket numbers from a keyed SipHash of the digest,
 * so clients cannot aim at a bucket).  A full pair of buckets evicts its
 * least recently used slot (bindings without idle lifetime keep their
 * last use in the idle word, so they are ordered too), in segments: a
 * binding found by a lookup after it was written is "protected" (bit 15
 * of the route word; route numbers use 12) and goes only after every
 * unprotected slot of the pair, so a flood of new keys used once cannot
 * evict the sessions that came back.  When more than 4 of the 6 slots are
 * protected, the least recently used of them is demoted (its bit cleared)
 * before the choice: new sessions keep room in every pair.
 *
 * Concurrency: readers never lock (a sequence counter per bucket, retried
 * when a writer was there); writers take the bucket's counter as a spin
 * lock (two buckets in index order), with a bounded wait, so a process
 * that died in a write cannot hang the others.  The lock word holds the
 * holder's pid: a writer that finds a lock taken for about 1 ms by a
 * process that no longer exists (kill(pid, 0): ESRCH) takes it over and
 * clears the bucket, since the dead writer may have left a slot half
 * written (lock_repairs in the stats).  Refreshing a binding's idle
 * deadline on a hit is a single compare-and-swap of one 32-bit word, done
 * at most once per second per binding.
 *
 * Times are seconds since the table's epoch (32 bits: 136 years).
 */
#ifndef STICKYLB_TABLE_H
#define STICKYLB_TABLE_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_errno.h>

#include "stickylb_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLB_TABLE_MAX_ROUTES 4096
#define SLB_TABLE_BUCKET_BYTES 64
#define SLB_TABLE_SLOTS_PER_BUCKET 3

typedef struct slb_table slb_table;

/* Bytes of memory for a table that holds `entries` bindings. */
apr_size_t slb_table_bytes(apr_uint32_t entries);

/* How many bindings a table in `bytes` holds (inverse of the above). */
apr_uint32_t slb_table_capacity(apr_size_t bytes);

/*
 * Format `mem` (bytes long, aligned to 64) as an empty table.  `secret`
 * (16 bytes) keys the bucket hash; `now` sets the epoch.  Returns the
 * table handle (which lives inside mem) or NULL when bytes is too small.
 */
slb_table *slb_table_format(void *mem, apr_size_t bytes,
                            const unsigned char secret[16], apr_time_t now);

/*
 * Use a table formatted earlier (after a graceful restart the segment is
 * kept): NULL when mem does not hold a table of this size and version.
 */
slb_table *slb_table_attach(void *mem, apr_size_t bytes);

/*
 * The key of `id` (len bytes, any bytes) in namespace `ns` for a binding
 * held by this table only (the shm store): SipHash-1-3 (64 bits) of the id keyed
 * with the namespace's key, itself SipHash-2-4-128 of "<namespace>\0"
 * keyed with the table's secret (kept across graceful restart with the
 * table); its 64 bits kept in the slot and choosing the buckets; key->keyed is
 * set and key->text is empty.  Bindings shared through memcached use
 * slb_key_make() instead.
 */
void slb_table_key(const slb_table *t, slb_key *key, const char *ns,
                   const char *id, apr_size_t len);

/*
 * The same key in two steps, for a namespace whose keys are made often:
 * the namespace's key, computed once (slb_table_key_prefix), then the
 * id's hash under it (slb_table_key_from).  The result is
 * slb_table_key's, byte for byte; a prefix belongs to the table that made
 * it (`table`).
 */
typedef struct {
    apr_uint64_t state[8];
    const slb_table *table;
} slb_key_prefix;

void slb_table_key_prefix(const slb_table *t, const char *ns,
                          slb_key_prefix *out);
void slb_table_key_from(const slb_key_prefix *pre, slb_key *key,
                        const char *id, apr_size_t len);

/* Route number of (namespace, route), registered on first use; -1 when
 * the registry is full or the route is invalid. */
int slb_table_route_id(slb_table *t, const char *ns, const char *route);

/* Route text of a route number ("" when unknown, or retired). */
const char *slb_table_route_name(const slb_table *t, int id);

/*
 * Keep the n routes (ns[i], routes[i]) (the configured members, at a
 * (re)start) and retire every other registered route: its number stops
 * resolving at once, its bindings are removed (one pass over the table)
 * and its entry is reused by the next route registered.  A route number
 * carries its entry's generation (bumped at each retirement, 16 of them
 * in turn), so a binding written with a retired number while it was being
 * retired names no route (a miss), never the route that reuses the
 * entry.  Returns how many routes were retired.
 */
apr_uint32_t slb_table_routes_keep(slb_table *t, int n,
                                   const char *const *ns,
                                   const char *const *routes);

/*
 * Look a key up.  APR_SUCCESS and *route_id on a live binding (its idle
 * deadline is pushed to now + lt->idle), APR_NOTFOUND otherwise.
 */
apr_status_t slb_table_get(slb_table *t, const slb_key *key,
                           const slb_lifetime *lt, apr_time_t now,
                           int *route_id);

/*
 * As slb_table_get, and *age_s is the number of seconds since the binding
 * was last written (add or set), modulo 65536: the memcached store
 * uses the table as a cache and re-validates bindings older than its
 * cache time.
 */
apr_status_t slb_table_get_age(slb_table *t, const slb_key *key,
                               const slb_lifetime *lt, apr_time_t now,
                               int *route_id, apr_uint32_t *age_s);

/* Bind the key unless it is bound (live): APR_SUCCESS, or APR_EEXIST with
 * *existing set; APR_TIMEUP when the buckets stayed locked. */
apr_status_t slb_table_add(slb_table *t, const slb_key *key, int route_id,
                           const slb_lifetime *lt, apr_time_t now,
                           int *existing);

/* Bind the key, replacing any binding. */
apr_status_t slb_table_set(slb_table *t, const slb_key *key, int route_id,
                           const slb_lifetime *lt, apr_time_t now);

/* Remove the key's binding: APR_SUCCESS or APR_NOTFOUND. */
apr_status_t slb_table_del(slb_table *t, const slb_key *key);

/*
 * Reclaim expired slots in up to `max_buckets` buckets from where the last
 * sweep stopped; returns how many were reclaimed.  Keeps the per-route
 * session counts exact.
 */
apr_uint32_t slb_table_sweep(slb_table *t, apr_time_t now,
                             apr_uint32_t max_buckets);

typedef struct {
    apr_uint32_t capacity;     /* slots */
    apr_uint32_t buckets;
    apr_uint64_t bytes;
    apr_uint64_t hits, misses, inserts, replaces, evictions, expired,
                 lock_timeouts;
    apr_uint64_t lock_repairs; /* bucket locks taken over from a writer
                                * that died holding them (bucket cleared) */
    apr_uint64_t demotions;    /* protected bindings made evictable again
                                * (more than 4 of a pair's 6 protected) */
    apr_uint32_t routes;       /* registered (in use) */
} slb_table_stats;

void slb_table_stats_get(const slb_table *t, slb_table_stats *st);

/* Live bindings on a route number (kept by inserts, replaces, deletes,
 * evictions and sweeps; expired slots count until swept). */
apr_uint32_t slb_table_route_sessions(const slb_table *t, int id);

/* Remove every binding to route number id (scans the whole table, one
 * bucket locked at a time); returns how many were removed. */
apr_uint32_t slb_table_del_route(slb_table *t, int id);

/* Count live bindings by scanning the whole table (status pages only). */
apr_uint32_t slb_table_count_live(const slb_table *t, apr_time_t now);

/* The table as a store: ctx is the slb_table (stickylb_store.h).  add and
 * set register the route under k->ns (APR_ENOSPC when the registry is
 * full) and sweep a few buckets; get returns created 0 (the table keeps
 * the lifetimes itself). */
extern const slb_store_ops slb_table_store_ops;

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_TABLE_H */
