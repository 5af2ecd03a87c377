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


/* ------------------------------------------------------------------ */
/* the kinds of source                                                  */

/* The sources of stickylb_dns.c: "dns" (A/AAAA of name:port) and "srv"
 * (SRV records of _service._proto.name). */
extern const slb_disc_source_ops slb_dns_ops;
extern const slb_disc_source_ops slb_srv_ops;

/*
 * The kind named `name` (case-insensitive), or NULL.  The kinds are one
 * table of stickylb_discover.c (slb_disc_sources): a new kind is one line
 * there.
 */
const slb_disc_source_ops *slb_disc_source(const char *name);
/* "dns, srv, ..." for messages */
const char *slb_disc_source_names(apr_pool_t *p);

/*
 * For a source's create(): NULL when every key of opts is one of `own`
 * ("timeout=", "server=" as README writes them), else "unknown option
 * 'k=v' (expected ...)" listing own and the common options, with a near
 * miss suggested (slb_unknown_option).
 */
const char *slb_disc_check_options(apr_pool_t *p, apr_table_t *opts,
                                   const char *const *own);

/* ------------------------------------------------------------------ */
/* the options common to every kind                                     */

typedef struct {
    apr_interval_time_t interval;     /* interval=: between two fetches
                                       * when the answer has no TTL (10 s) */
    apr_interval_time_t min_interval; /* min-interval=: floor of a TTL and
                                       * of the retry backoff (1 s, or
                                       * interval= when shorter) */
    apr_interval_time_t max_interval; /* max-interval=: ceiling of a TTL
                                       * (300 s, or interval= when longer) */
    apr_interval_time_t backoff_max;  /* backoff-max=: ceiling of the
                                       * retry backoff of a failing
                                       * source (60 s) */
    apr_interval_time_t wait;         /* wait=: how long a fetch may wait
                                       * for a change (0: answer at once) */
    apr_interval_time_t grace;        /* grace=: a member that left takes
                                       * no new sessions, then is disabled
                                       * after this (60 s) */
    int flap_limit;                   /* flap-limit=: a member back this
                                       * many times within flap-window= is
                                       * held out (3; 0: no damping) */
    apr_interval_time_t flap_window;  /* flap-window= (60 s) */
    apr_interval_time_t flap_hold;    /* flap-hold=: a held member comes
                                       * back after it stayed in the
                                       * answers this long (30 s) */
    const char *route_prefix;         /* route-prefix= of routes derived
                                       * from an address ("") */
    int loadfactor;                   /* loadfactor= of entries that give
                                       * none (1) */
} slb_disc_conf;

#define SLB_DISC_DEFAULT_INTERVAL apr_time_from_sec(10)

void slb_disc_conf_init(slb_disc_conf *c);

/*
 * The key=value options of a StickyLBDiscover line: the common ones into
 * c (defaults applied), the others into rest (keys lower-cased) for the
 * kind's create().  An option without '=' or with a bad value is an error
 * (a message without the directive name).
 */
const char *slb_disc_conf_parse(apr_pool_t *p, slb_disc_conf *c, int argc,
                                const char *const *argv, apr_table_t *rest);

/* The common options, as README writes them (NULL-terminated). */
extern const char *const slb_disc_common_options[];

/* ------------------------------------------------------------------ */
/* entries                                                              */

/* what the glue keeps in shared memory */
#define SLB_DISC_BALANCERS  16   /* balancers that discover */
#define SLB_DISC_MEMBERS   128   /* discovered members of one balancer */

#define SLB_DISC_URL_MAX    96   /* with the NUL: a member's name in httpd */
#define SLB_DISC_ROUTE_MAX  64   /* with the NUL: SLB_MAX_ROUTE_LEN + 1 */
#define SLB_DISC_ORIGIN_MAX 128

/*
 * A member URL normalised: "scheme://host:port" with scheme and host
 * lower-cased, an IPv6 address in brackets, one trailing '/' dropped.
 * Schemes: http, https, ws, wss, h2, h2c, ajp.  The port is required
 * (1..65535), no user, path, query or fragment.  NULL and *why when it is
 * not such a URL.  *host (without brackets) and *port when not NULL.
 */
const char *slb_disc_url_norm(apr_pool_t *p, const char *url,
                              const char **why, const char **host,
                              int *port);

/*
 * The route of an address (the rule for A/AAAA records and for entries
 * without a route): prefix, then the address with '.' and ':' written
 * '-' ("10.0.0.5" -> "10-0-0-5", "fd00::5" -> "fd00--5"); a host name is
 * taken as it is, lower-cased.  NULL when the result is not a valid
 * route (too long, or characters a cookie cannot carry).
 */
const char *slb_disc_route_of(apr_pool_t *p, const char *prefix,
                              const char *host);

/* The first label of a DNS name, lower-cased ("App3.example.com." ->
 * "app3"), or NULL for an empty or invalid label. */
const char *slb_disc_first_label(apr_pool_t *p, const char *name);

/* ------------------------------------------------------------------ */
/* the discovered set and the decisions                                 */

typedef enum {
    SLB_DM_FREE = 0,
    SLB_DM_ACTIVE,       /* in the answers, takes new sessions */
    SLB_DM_HELD,         /* in the answers but flapping: held out
                          * (draining) until it stayed flap-hold= */
    SLB_DM_LEAVING,      /* left the answers: no new sessions, its
                          * sessions stay until grace= is over */
    SLB_DM_GONE          /* left, grace over: disabled; its slot is kept
                          * and given back if it returns */
} slb_dm_state;

const char *slb_dm_state_name(slb_dm_state st);

/* flags the discovery set on a member (slb_disc_member.owned) */
#define SLB_DISC_F_DRAIN   1u
#define SLB_DISC_F_DISABLE 2u

/* One member the discovery knows (a plain struct: it lives in shared
 * memory, across graceful restarts). */
typedef struct {
    apr_uint32_t state;            /* slb_dm_state */
    apr_uint32_t owned;            /* SLB_DISC_F_* the discovery set */
    apr_uint32_t operator_off;     /* in: disabled or stopped by someone
                                    * else (the glue fills it before a
                                    * plan): never enabled by us */
    apr_uint32_t returns;          /* returns in the flap window */
    apr_int32_t loadfactor;        /* 1..100 */
    apr_time_t added;              /* first added */
    apr_time_t since;              /* in its state since */
    apr_time_t seen;               /* last answer that had it */
    apr_time_t flap_start;         /* the flap window's start */
    char url[SLB_DISC_URL_MAX];
    char route[SLB_DISC_ROUTE_MAX];
    char origin[SLB_DISC_ORIGIN_MAX];
} slb_disc_member;

typedef enum {
    SLB_DA_ADD = 1,      /* a new member in a free growth slot (url,
                          * route, loadfactor of the member), enabled */
    SLB_DA_ENABLE,       /* back: clear the flags of the action's
                          * `flags` (what owned had; owned is 0 now) */
    SLB_DA_FACTOR,       /* the loadfactor changed */
    SLB_DA_ROUTE,        /* the route of the member's URL changed */
    SLB_DA_DRAIN,        /* no new sessions (owned gets F_DRAIN) */
    SLB_DA_DISABLE       /* disabled (owned gets F_DISABLE) */
} slb_da_kind;

const char *slb_da_kind_name(slb_da_kind k);

typedef struct {
    slb_da_kind kind;
    int member;          /* index in the set */
    apr_uint32_t flags;  /* ENABLE: the SLB_DISC_F_* to clear */
} slb_disc_action;

typedef struct {
    int added, returned, updated, left, disabled, held, released;
    int malformed;       /* entries refused (why: the plan's notes) */
    int configured;      /* entries that are configured members */
    int full;            /* entries not added: no free growth slot */
} slb_disc_counts;

/*
 * One round: the discovered set (set[0..cap-1], FREE entries unused) and
 * a new answer `entries` (slb_disc_entry; NULL: no news this round: the
 * source failed or said unchanged, only the timers run: grace, hold).
 * `fixed` (slb_disc_entry, url and route; may be NULL): the configured
 * members, which win over an entry with their URL and own their routes.
 * free_slots: the balancer's free growth slots.  The set is updated in
 * place (the glue applies the actions, in order; an ADD it could not do
 * is undone by setting the member FREE) and the actions are pushed to
 * `actions` (slb_disc_action); notes (const char *, from p) say why an
 * entry was refused.  An operator's disabled or stopped member is never
 * enabled, drained or disabled (its state still follows the answers).
 * Returns the number of actions.
 */
int slb_disc_plan(apr_pool_t *p, const slb_disc_conf *c,
                  slb_disc_member *set, int cap,
                  const apr_array_header_t *entries,
                  const apr_array_header_t *fixed, int free_slots,
                  apr_time_t now, apr_array_header_t *actions,
                  slb_disc_counts *counts, apr_array_header_t *notes);

/*
 * When to fetch next: after an answer (OK or UNCHANGED), its TTL bounded
 * by min-interval= and max-interval=, or interval= when it has none;
 * after the n-th failure in a row (n >= 1), min-interval= doubled n-1
 * times, at most backoff-max=.
 */
apr_interval_time_t slb_disc_next(const slb_disc_conf *c, slb_disc_result r,
                                  apr_interval_time_t ttl, int failures);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_DISCOVER_H */
