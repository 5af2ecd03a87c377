/*
 * stickylb_mc.h - the memcached backend of the stick table (APR +
 * libmemcached + libmemcachedutil; no httpd), shared by several Apache
 * instances the way HAProxy peers share a stick table.
 *
 * One slb_mc per process (created in child_init, never in the parent
 * before fork): a master memcached_st configured from an slb_mc_conf and a
 * memcached_pool of clones, one clone lent to a thread for the duration of
 * one call.  Every function below is thread-safe.
 *
 * Keys: always key->text ("slb1:" + 40 hex digits, see stickylb_store.h),
 * never client bytes.  Values: "1 <created, seconds since the epoch>
 * <route>", written by slb_mc_add/slb_mc_set and validated on every read:
 * the memcached servers are a shared service, so a value that is malformed,
 * oversized or carries a route failing slb_route_ok() is a miss (and is
 * counted as an error).
 *
 * Behaviour forced on every connection whatever the configuration string
 * says: binary protocol, replies on (no "noreply", no buffering), TCP
 * without UDP, TCP_NODELAY, consistent hashing (ketama, MD5 on a sorted
 * server list, so every balancer maps a key to the same server whatever
 * the order of its --SERVER list), connect/poll/send/receive timeouts,
 * removal of failed servers (auto eject) after server_failure_limit
 * failures, retried after retry_timeout_s.
 *
 * Time bound of one call: a pool slot is waited for at most pool_wait_ms;
 * each server contacted costs at most connect_timeout_ms to connect plus
 * io_timeout_ms per network read or write.  A get or delete contacts one
 * server (1 + replicas when servers fail); a set, add or touch one server
 * plus, with replicas, quiet writes to the replicas; an add that finds the
 * key bound reads it back (at most three rounds when the key vanishes or
 * holds garbage in between); a call that meets a broken connection is
 * tried once more.  A server that refuses connections costs no waiting at
 * all; one that is marked failed is skipped without I/O, and so is one
 * that timed out server_failure_limit times in a row (it is held for
 * retry_timeout_s, then tried again).
 *
 * Return codes: APR_SUCCESS; APR_NOTFOUND (a miss, never an error);
 * APR_EEXIST (add: bound already); APR_TIMEUP (a server did not answer in
 * time); APR_EAGAIN (no pool slot within pool_wait_ms); APR_EINVAL (a bad
 * argument: a malformed key or route); APR_EGENERAL (any other failure:
 * no server reachable, a server error).  Callers treat every error as a
 * miss.
 *
 * Replicas (replicas > 0) are libmemcached's: a binding is also written to
 * the next `replicas` servers of the sorted list; a read goes to the key's
 * server, falls back to the replicas when that server cannot be reached,
 * and otherwise reads the replicas too and takes the most recent binding
 * (by creation time): the key's server may have come back, empty or with
 * what it held before it was cut off, while the binding was written or
 * re-pinned on a replica only.  A more recent binding found on a replica
 * is written back to the key's server (add, or compare-and-swap over the
 * old one; for SLB_MC_REPAIR_TTL seconds, or what a later touch sets).
 * So with replicas a get costs 1 + replicas round trips.
 * Known limits, inherited from libmemcached 1.0/1.1:
 *  - touch refreshes the key's server only (libmemcached does not
 *    replicate touch): a replica copy keeps the TTL of its last add/set;
 *  - once a failed server is ejected, keys are re-hashed over the remaining
 *    servers; with more than two servers a key's new server is not always
 *    its old replica, so some bindings read as misses until re-learned.
 */
#ifndef STICKYLB_MC_H
#define STICKYLB_MC_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>

#include "stickylb_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest value accepted from a server (bytes): "1 " + 13 digits
 * (any apr_time_t in seconds) + " " + the longest route. */
#define SLB_MC_MAX_VALUE_LEN (2 + 13 + 1 + SLB_MAX_ROUTE_LEN)

/* Lifetime of a binding written back to its server after a replica read. */
#define SLB_MC_REPAIR_TTL 3600u

/* TTLs above this are sent as an absolute time (memcached's rule). */
#define SLB_MC_RELATIVE_TTL_MAX 2592000u

typedef struct slb_mc slb_mc;

typedef struct {
    /* libmemcached configuration string, e.g.
     * "--SERVER=10.0.0.5:11211 --SERVER=10.0.0.6:11211"; validated with
     * libmemcached_check_configuration().  Options that would break the
     * contract above (--USE-UDP) are rejected; the protocol, hashing and
     * timeout options are overridden by the fields below. */
    const char *config;
    int connect_timeout_ms;    /* 1..60000, default 50 */
    int io_timeout_ms;         /* poll/send/receive, 1..60000, default 50 */
    int retry_timeout_s;       /* a failed server is retried after this,
                                  1..3600, default 2 */
    int server_failure_limit;  /* failures before a server is ejected,
                                  1..1000, default 2 */
    int replicas;              /* extra copies, 0..servers-1, default 0 */
    int pool_max;              /* memcached_st per process (>= threads per
                                  child), 1..100000, default 64 */
    int pool_wait_ms;          /* longest wait for a free one when all are
                                  lent, 0..60000, default 20 */
    int pool_start;            /* memcached_st made with the client (the
                                  others when first needed): 1..pool_max,
                                  0 or out of range: 1 (the glue sets
                                  the threads per child) */
    int write_mode;            /* how the module writes a learned binding
                                  (SLB_MC_WRITE_*): default sync */
    int queue_max;             /* bindings waiting for the writer thread
                                  (write_mode async), 1..1000000, default
                                  4096 */
} slb_mc_conf;

/*
 * How a balancer writes the binding of a session id it learned (the
 * module's choice; this file provides each):
 *   SYNC   slb_mc_add before the response leaves: reply waited for, so
 *          the binding is in memcached before the client can reach
 *          another balancer (default)
 *   QUIET  slb_mc_set_quiet before the response leaves: the request is
 *          written to memcached, no reply waited for; another balancer
 *          may look the id up before memcached has read it (a window of
 *          memcached's own delay, microseconds unless it is overloaded)
 *   ASYNC  slb_mc_publish: the writer thread writes it, batched (a
 *          window of up to SLB_MC_GATHER_US plus the write)
 */
#define SLB_MC_WRITE_SYNC 0
#define SLB_MC_WRITE_QUIET 1
#define SLB_MC_WRITE_ASYNC 2

/* The write mode's name ("sync", "quiet", "async") and back (-1: none). */
const char *slb_mc_write_mode_name(int mode);
int slb_mc_write_mode_parse(const char *name);

/* Fill c with the defaults above (config NULL). */
void slb_mc_conf_init(slb_mc_conf *c);

/*
 * Validate a configuration without any network I/O (configtest):
 * NULL when it is usable, else an error message allocated from p that
 * names the offending setting.  A string libmemcached cannot parse gets
 * its parser's reason and what was expected: the string rewritten when
 * its servers were written bare ("10.0.0.5:11211, 10.0.0.6" -> did you
 * mean "--SERVER=10.0.0.5:11211 --SERVER=10.0.0.6"?, offered only when
 * the rewritten string parses), else the form with an example.
 */
const char *slb_mc_check_config(apr_pool_t *p, const slb_mc_conf *c);

/*
 * Build the master memcached_st and its pool (no connection is opened
 * until the first call).  Call in child_init, never before fork.  A
 * cleanup registered on p destroys both; p must outlive every call.
 * APR_EINVAL when slb_mc_check_config() rejects c, APR_ENOMEM or
 * APR_EGENERAL when libmemcached fails.
 */
apr_status_t slb_mc_create(slb_mc **mc, apr_pool_t *p, const slb_mc_conf *c);

/* The latency histogram: upper bounds of its buckets, microseconds
 * (0.1 0.5 1 2 5 10 50 100 ms); a last bucket counts the slower calls. */
#define SLB_MC_LATENCY_BUCKETS 8
extern const apr_uint32_t slb_mc_latency_bounds_us[SLB_MC_LATENCY_BUCKETS];

/*
 * The counters of a client (what slb_mc_stats_get reports, but the two
 * values of this process: publish_waiting and in_window), updated
 * atomically.  Memory the caller provides, zeroed (shared memory: every
 * process of a server counts into one block, so that the counts are
 * server-wide and survive the processes), or the client's own.
 */
typedef struct {
    volatile apr_uint64_t gets, hits, misses, adds, add_conflicts, sets,
                          touches, deletes, errors, timeouts, malformed,
                          pool_exhausted, latency_us_total, latency_us_max;
    volatile apr_uint64_t publish_queued, published, publish_dropped,
                          publish_errors, publish_batches, quiet_sets,
                          replica_hits;
    volatile apr_uint64_t trials, window_reads, window_hits, window_writes;
    /* calls by latency bucket (not cumulative) */
    volatile apr_uint64_t latency[SLB_MC_LATENCY_BUCKETS + 1];
} slb_mc_counters;

/* slb_mc_create counting into ctr (see slb_mc_counters), or into the
 * client's own counters when ctr is NULL (slb_mc_create). */
apr_status_t slb_mc_create_shared(slb_mc **mc, apr_pool_t *p,
                                  const slb_mc_conf *c,
                                  slb_mc_counters *ctr);

/* Look the key up: APR_SUCCESS and *out filled, or APR_NOTFOUND, or an
 * error (see above).  A stored value that is not a valid binding is
 * APR_NOTFOUND (a miss) and is counted as an error and as malformed. */
apr_status_t slb_mc_get(slb_mc *mc, const slb_key *key, slb_binding *out);

/*
 * Bind the key unless it is bound (memcached add), for ttl_s seconds
 * (0: no expiry).  APR_SUCCESS when this call stored b; APR_EEXIST when
 * the key was bound, *existing (may be NULL) then holds the binding that
 * won, so two balancers racing on a new session agree on one route.  A
 * stored value that is malformed is replaced (compare-and-swap, so a
 * concurrent valid binding still wins).  b->created <= 0 means now.
 * existing may point to *b.
 */
apr_status_t slb_mc_add(slb_mc *mc, const slb_key *key, const slb_binding *b,
                        apr_uint32_t ttl_s, slb_binding *existing);

/*
 * Asynchronous publishing (write_mode ASYNC): one writer thread per slb_mc
 * writes bindings queued by slb_mc_publish() with memcached set on a
 * connection of its own (binary protocol, quiet: no reply is waited for),
 * several per network write: the caller never waits for memcached.  The
 * writer sends at once when it was idle, and gathers for at most
 * SLB_MC_GATHER_US while bindings keep coming; with the I/O timeouts that
 * bounds how long a binding takes to reach memcached (see README).  A
 * full queue drops the binding (counted: publish_dropped); a binding that
 * could not be written is counted in publish_errors.  Set semantics: for
 * bindings whose route cannot differ between balancers (a session id is
 * issued by one member), where add's agreement is not needed.
 */
#define SLB_MC_GATHER_US 1000

/* 1 when mc has a writer thread (write_mode ASYNC). */
int slb_mc_publishes(const slb_mc *mc);

/* Queue key -> b (ttl_s as for slb_mc_set) for the writer thread: memory
 * only, never blocks on the network.  APR_SUCCESS, APR_ENOSPC (queue
 * full: dropped), APR_EINVAL (bad key or route), APR_ENOTIMPL (no writer
 * thread). */
apr_status_t slb_mc_publish(slb_mc *mc, const slb_key *key,
                            const slb_binding *b, apr_uint32_t ttl_s);

/*
 * Bind the key, replacing any binding, with a quiet set from the caller's
 * thread: the request is written (one network write per server) and no
 * reply is waited for.  APR_SUCCESS once written; an error when it could
 * not be (the server is held, a write failed or timed out); APR_EAGAIN
 * when every quiet handle is lent.
 */
apr_status_t slb_mc_set_quiet(slb_mc *mc, const slb_key *key,
                              const slb_binding *b, apr_uint32_t ttl_s);

/* Bind the key, replacing any binding (a rebinding after failover). */
apr_status_t slb_mc_set(slb_mc *mc, const slb_key *key, const slb_binding *b,
                        apr_uint32_t ttl_s);

/* Push the key's expiry to now + ttl_s without rewriting it (binary
 * protocol touch): APR_SUCCESS, APR_NOTFOUND or an error. */
apr_status_t slb_mc_touch(slb_mc *mc, const slb_key *key, apr_uint32_t ttl_s);

/* Remove the binding (and its replicas): APR_SUCCESS, APR_NOTFOUND or an
 * error. */
apr_status_t slb_mc_delete(slb_mc *mc, const slb_key *key);

/* memcached as a store: ctx is the slb_mc, or NULL when there is none
 * (every operation fails with APR_EGENERAL).  Keys are the shared ones
 * (slb_skey_shared); set_nowait queues for the writer thread with
 * write=async, a quiet set otherwise; touch and TTLs follow the lifetime
 * (slb_lifetime_ttl). */
extern const slb_store_ops slb_mc_store_ops;

/* Every handle asks every server that is not held (timing out) again at
 * its next call, whatever its own libmemcached state says and whether the
 * process saw it fail (a poller calls this before each round so that it
 * always tries; a request path does not). */
void slb_mc_readmit(slb_mc *mc);

/* What an operator made of a member, shared by every balancer of a
 * namespace (drain and maintenance decided on one are followed by all). */
typedef enum {
    SLB_MEMBER_UP = 0,
    SLB_MEMBER_DRAIN,        /* existing sessions only */
    SLB_MEMBER_MAINT         /* disabled */
} slb_member_state;

const char *slb_member_state_name(slb_member_state st);
/* "up", "drain" or "maint": 1 and *out, or 0 */
int slb_member_state_parse(const char *name, slb_member_state *out);

/* The state of member `route` of namespace ns: set (no expiry) or read
 * back (APR_SUCCESS, APR_NOTFOUND when none was ever set, or an error). */
apr_status_t slb_mc_member_state_set(slb_mc *mc, const char *ns,
                                     const char *route, slb_member_state st,
                                     apr_time_t now);
apr_status_t slb_mc_member_state_get(slb_mc *mc, const char *ns,
                                     const char *route,
                                     slb_member_state *out);

/*
 * Parse a stored value (untrusted bytes, len of them, not NUL terminated):
 * 1 and *out filled when it is "1 <seconds> <route>" with 1..13 digits
 * (at most APR_INT64_MAX / APR_USEC_PER_SEC) and a route passing
 * slb_route_ok(), 0 otherwise.
 */
int slb_mc_value_parse(const char *v, apr_size_t len, slb_binding *out);

/* The counters (slb_mc_counters: the client's, or every process's when
 * they are shared) and two values of this process (publish_waiting,
 * in_window).  errors counts every failed call (timeouts, pool_exhausted
 * and malformed values included); latencies are of every call, in
 * microseconds. */
typedef struct {
    apr_uint64_t gets, hits, misses;
    apr_uint64_t adds, add_conflicts;
    apr_uint64_t sets, touches, deletes;
    apr_uint64_t errors, timeouts, malformed, pool_exhausted;
    apr_uint64_t latency_us_total, latency_us_max;
    /* the writer thread: bindings queued, written, dropped (queue full),
     * not written (a write failed), network writes (batches), and the
     * bindings waiting now */
    apr_uint64_t publish_queued, published, publish_dropped, publish_errors,
                 publish_batches, publish_waiting;
    apr_uint64_t quiet_sets;    /* slb_mc_set_quiet calls (in sets too) */
    apr_uint64_t replica_hits;  /* gets a replica answered better than the
                                   key's server, which had nothing or an
                                   older binding (in hits too) */
    /* the recovery window (slb_mc_in_window): trial calls on held
     * servers, reads of a key's home or fallback after a miss and the
     * hits they found, copies written there, and whether it is open */
    apr_uint64_t trials, window_reads, window_hits, window_writes;
    int in_window;
    /* the latency histogram, cumulative: latency_le[i] calls took at most
     * slb_mc_latency_bounds_us[i]; latency_calls all of them */
    apr_uint64_t latency_le[SLB_MC_LATENCY_BUCKETS];
    apr_uint64_t latency_calls;
} slb_mc_stats;

void slb_mc_stats_get(slb_mc *mc, slb_mc_stats *out);

/*
 * Whether the recovery window is open in this process: with two servers
 * or more, from the moment this process sees a server fail, lose its
 * connection or come back, for 2 x retry_timeout_s + 1 s, and while it
 * has a server down or held.  Other processes (another balancer) may
 * then see the servers otherwise, so a key may live where this process
 * does not look: a get that misses asks the key's home (its server when
 * all are up) and fallback (its server when the home is out), and a
 * write that succeeded is copied there (an add yields to another binding
 * found on the home).  Why the bound holds: a process that saw a server
 * fail takes it back at the first call that needs it once it answers
 * (a trial) and at the latest retry_timeout_s (+1 s, libmemcached's
 * whole-second retry clock) after it answers again; so two processes
 * that both saw a change agree again within window_len of the later one
 * seeing it.
 */
int slb_mc_in_window(slb_mc *mc);

/* The position (as in slb_mc_servers) of key's home server, its server
 * when every server is up; -1 with a single server. */
int slb_mc_key_home(slb_mc *mc, const slb_key *key);

/* One memcached server as this process sees it. */
typedef struct {
    const char *host;          /* name or address as configured */
    int port;
    int up;                    /* 0 after the last call routed to it failed,
                                  1 once a call succeeds again (1 at start) */
    apr_uint64_t failures;     /* calls that asked it and failed (not the
                                  ones that failed at once while it was
                                  held) */
} slb_mc_server;

/* The servers (array of slb_mc_server, in hashing order), copied into p. */
apr_array_header_t *slb_mc_servers(slb_mc *mc, apr_pool_t *p);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_MC_H */
