/*
 * stickylb_passive.h - passive marking: when the answers of a member put
 * it in error, for how long, and how many members of a balancer may be out
 * at once (APR only, no httpd; the clock is the caller's).
 *
 * Two ways of counting (StickyLBPassive):
 *
 *  - consecutive (fall=N, the default): N listed statuses in a row;
 *  - ratio (ratio=P window=S min-requests=M [min-clients=C]): over the
 *    last S seconds, at least M responses and at least P% of them listed
 *    (and, with C > 1, from at least C client addresses).
 *
 * The window is two buckets of S seconds (the current and the previous
 * one); the previous one counts in proportion to the part of it still
 * inside the window (the "sliding window counter" approximation): fixed
 * size in shared memory, O(1) per response, nothing to sweep.  The
 * distinct clients are a set of SLB_PASSIVE_CLIENTS address hashes per
 * bucket (approximate: colliding hashes count once, the previous bucket's
 * clients count whole).
 *
 * The state lives in shared memory and is updated by every thread of
 * every child without a lock (atomics): a few counts may be lost when a
 * bucket rolls over, and only one thread wins an ejection.
 */
#ifndef STICKYLB_PASSIVE_H
#define STICKYLB_PASSIVE_H

#include <apr.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* distinct client hashes kept per bucket (the highest min-clients=) */
#define SLB_PASSIVE_CLIENTS 8

typedef struct {
    int fall;           /* consecutive form: failures in a row (ratio 0) */
    int ratio;          /* percent of listed statuses; 0: consecutive */
    int window;         /* seconds */
    int min_requests;   /* responses in the window before ratio counts */
    int min_clients;    /* distinct client addresses among the failures */
    int max_ejected;    /* percent of the balancer's members out at once */
    int eject;          /* base ejection, seconds; 0: the member's retry= */
    int eject_max;      /* cap of the growing ejection, and the healthy
                         * period after which it starts over, seconds */
} slb_passive_conf;

#define SLB_PASSIVE_DEFAULT_FALL          3
#define SLB_PASSIVE_DEFAULT_WINDOW        10
#define SLB_PASSIVE_DEFAULT_MIN_REQUESTS  20
#define SLB_PASSIVE_DEFAULT_MAX_EJECTED   50
#define SLB_PASSIVE_DEFAULT_EJECT_MAX     300

/* the defaults: consecutive form, fall=3, max-ejected=50, eject= off */
void slb_passive_conf_init(slb_passive_conf *c);

typedef struct {
    apr_uint64_t epoch;                  /* window number; 0: unused */
    apr_uint32_t requests, failures;
    apr_uint32_t clients[SLB_PASSIVE_CLIENTS];   /* 0: free */
} slb_passive_bucket;

/* A member's state (zeroed: nothing seen). */
typedef struct {
    apr_uint32_t consecutive;            /* failures in a row */
    apr_uint32_t repeats;                /* ejections since it was healthy */
    apr_uint32_t held;                   /* due, but the cap held it */
    apr_uint32_t pad;
    apr_time_t eject_until;              /* end of the last ejection; 0 */
    slb_passive_bucket bucket[2];        /* by epoch parity */
} slb_passive_state;

/* The window as seen at `now`: responses and failures (the previous
 * bucket weighted, rounded) and distinct failing clients. */
typedef struct {
    apr_uint32_t requests, failures, clients;
} slb_passive_view;

void slb_passive_window(const slb_passive_state *s,
                        const slb_passive_conf *c, apr_time_t now,
                        slb_passive_view *v);

/* A client address's hash for min-clients= (never 0). */
apr_uint32_t slb_passive_client_hash(const char *addr);

/*
 * Count one response of the member (failed: its status is listed; client:
 * slb_passive_client_hash of its address, or 0 when min-clients is 1) and
 * return 1 when the member is due for ejection.  A member already ejected
 * (eject_until after now) is never due.
 */
int slb_passive_record(slb_passive_state *s, const slb_passive_conf *c,
                       int failed, apr_uint32_t client, apr_time_t now);

/*
 * Whether one more member may be ejected from a balancer of `members`
 * members, `ejected` of them ejected now and `usable` usable (the
 * candidate included): never the last usable member; at most max_ejected%
 * of the members, rounded down, but one when there are 2 or more.
 */
int slb_passive_may_eject(const slb_passive_conf *c, int members,
                          int ejected, int usable);

/*
 * Start an ejection at `now` (retry: the member's retry=, used when eject=
 * is not set): eject x 2^repeats, at most eject_max, the repeats starting
 * over when the last ejection ended eject_max or more before now.  Resets
 * the counts.  Returns the ejection's length, or 0 when another thread
 * started one first.
 */
apr_interval_time_t slb_passive_eject(slb_passive_state *s,
                                      const slb_passive_conf *c,
                                      apr_interval_time_t retry,
                                      apr_time_t now);

/* 1 while an ejection started by slb_passive_eject lasts */
int slb_passive_ejected(const slb_passive_state *s, apr_time_t now);

/* 1 the first time a due member is held by the cap (to log it once),
 * until it is ejected or no longer due */
int slb_passive_hold(slb_passive_state *s);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_PASSIVE_H */
