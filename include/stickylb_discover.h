/*
 * stickylb_discover.h - discovery of members (APR only, no httpd).
 *
 * A source (DNS A/AAAA, DNS SRV, etcd v3) reads the whole set of members it
 * knows now; the core compares that set with what the balancer has and says
 * what to add, drain, disable or give back.  The glue (mod_stickylb_discover.c)
 * runs the sources on a mod_watchdog callback and applies the changes through
 * the balancer's growth slots.
 *
 * This header is the contract between the sources and the rest: a source
 * fills an array of slb_disc_entry and answers with an slb_disc_result.
 */
#ifndef STICKYLB_DISCOVER_H
#define STICKYLB_DISCOVER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* one member as a source sees it */
typedef struct {
    const char *url;        /* "http://10.0.0.5:8080" (scheme://host:port,
                             * no path), as BalancerMember takes it */
    const char *route;      /* the member's route; NULL = let the core
                             * derive one from the url */
    int loadfactor;         /* 1..100; 0 = not given (1) */
    const char *origin;     /* what it came from (an etcd key, a DNS
                             * record), for the status page and logs */
} slb_disc_entry;

typedef enum {
    SLB_DISC_OK = 0,        /* *entries is the whole current set (it may
                             * be empty: the registry holds no member) */
    SLB_DISC_UNCHANGED,     /* nothing changed since the last OK: keep the
                             * set; *entries untouched */
    SLB_DISC_FAILED         /* the registry was not reached, timed out or
                             * answered garbage: keep the last known set;
                             * *err says why */
} slb_disc_result;

/*
 * A kind of source.  create() runs at configuration time and does no I/O:
 * it checks the target and the options of its own kind (the core has taken
 * out the options common to all kinds: interval=, grace= ...) and refuses
 * an unknown option with a message that lists the valid ones.  fetch() runs
 * on the watchdog thread of one child only; it makes its own handles (a
 * c-ares channel, a curl handle) on first use, never blocks longer than its
 * timeout plus wait, and is never called by two threads at once.
 */
typedef struct {
    const char *name;       /* "dns", "srv", "etcd": the directive's word */
    const char *(*create)(apr_pool_t *p, const char *target,
                          apr_table_t *opts, void **state);
    /* wait: how long the call may wait for a change (an etcd watch); a
     * source that cannot wait answers at once.  *ttl: when the answer says
     * how long it holds (the records' TTL), else 0.  *malformed: entries
     * ignored because they did not parse (counted, never applied). */
    slb_disc_result (*fetch)(void *state, apr_pool_t *p,
                             apr_interval_time_t wait,
                             apr_array_header_t **entries, int *malformed,
                             apr_interval_time_t *ttl, const char **err);
} slb_disc_source_ops;

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_DISCOVER_H */
