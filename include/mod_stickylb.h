/*
 * mod_stickylb.h - private header of the httpd glue.
 */
#ifndef MOD_STICKYLB_H
#define MOD_STICKYLB_H

#include "apr_hash.h"
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include "stickylb_codec.h"
#include "stickylb_select.h"
#include "stickylb_store.h"
#include "stickylb_mc.h"
#include "stickylb_probe.h"
#include "stickylb_sign.h"
#include "stickylb_conf.h"

/* LogLevel stickylb:trace3 works for every file of the glue */
APLOG_USE_MODULE(stickylb);

/* Tag of this module's log messages: grep for it. */
#define SLB_LOG_TAG "stickylb: "

/* Server configuration (StickyLBTableSize, StickyLBMemcached) and the
 * balancers of the server, resolved in post_config. */
#define SLB_LBMETHOD_NAME "stickylb"

struct proxy_balancer;
struct proxy_worker;
typedef struct {
    apr_hash_t *sections;      /* balancer name -> slb_dir_conf */
    apr_int64_t table_entries; /* StickyLBTableSize; 0: the default */
    slb_mc_conf *mc;           /* StickyLBMemcached; NULL: none */
    apr_interval_time_t mc_cache; /* how long a cached binding is trusted */
    /* resolved: resolved[i] is the balancer balancers[i] of mod_proxy's
     * array of this server */
    struct proxy_balancer *balancers;
    const slb_balancer **resolved;
    int nresolved;
    /* no balancer of this server needs the proxy pre_request hook (none
     * uses a store, none has stickysession=): the finder does it all */
    int no_pre_request;
    /* StickyLBDiscover: lower-cased balancer name -> slb_disc_spec */
    apr_hash_t *discover;
} slb_srv_conf;

#define SLB_DEFAULT_MC_CACHE 2
#define SLB_DEFAULT_TABLE_ENTRIES 262144

/* mod_stickylb_config.c: the directives and the resolved balancers. */
extern const command_rec slb_cmds[];
void *slb_create_dir_conf(apr_pool_t *p, char *dir);
void *slb_create_srv_conf(apr_pool_t *p, server_rec *s);
void *slb_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);
/* post_config: every balancer of every server resolved (pconf) */
void slb_config_resolve(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
/* The resolved balancer b of server s (memory only: safe in the finder);
 * a balancer s did not have at startup is resolved into p. */
const slb_balancer *slb_balancer_of(server_rec *s, struct proxy_balancer *b,
                                    apr_pool_t *p);
/* configtest: the effective configuration of every stickylb balancer of
 * sr (slb_dir_conf_check, slb_dir_conf_check_cookies; main_s: the main
 * server); warnings logged once (seen). */
const char *slb_config_check_balancers(server_rec *main_s, server_rec *sr,
                                       apr_pool_t *ptemp, apr_hash_t *seen);
/* configtest of server sr's balancer sections (probe routes, lbmethod,
 * members without route=): an error message or NULL */
const char *slb_config_check_sections(server_rec *sr, apr_pool_t *ptemp,
                                      apr_hash_t *seen);
/* 1 when a scope of server sr puts a balancer on store `kind` */
int slb_config_any_store(server_rec *sr, apr_pool_t *ptemp,
                         slb_store_kind kind);

/* mod_stickylb_probe.c: probes, passive marking, slow start. */
int slb_health_post_config(apr_pool_t *pconf, server_rec *s);
int slb_probe_post_config(apr_pool_t *pconf, server_rec *s, int any_probe);
void slb_probe_register_hooks(apr_pool_t *p);
/* lbfactor of w with slow start applied (memory only) */
int slb_health_factor(struct proxy_balancer *b, struct proxy_worker *w,
                      const slb_balancer *c, apr_time_t now);
void slb_health_passive(request_rec *r, struct proxy_balancer *b,
                        struct proxy_worker *w, const slb_balancer *c);
/* count a finder decision for w (slb_decision_kind; by_route_cookie: the
 * balancer's route cookie decided) */
void slb_health_count(struct proxy_balancer *b, struct proxy_worker *w,
                      int kind, int by_route_cookie);
typedef struct {
    int probed, down;
    apr_time_t last_change, last_probe, up_since;
    apr_interval_time_t last_latency;
    char last_result[SLB_PROBE_WHY_MAX];
    char addr[SLB_PROBE_ADDR_MAX];   /* the address probed, "ip:port" */
    apr_uint64_t requests, new_sessions, failovers;
    apr_uint64_t route_cookie;       /* requests sticky by the route cookie */
    apr_uint64_t probes, probe_failures, probe_us;   /* since the start */
    /* the agent check (StickyLBAgent) */
    int agent, agent_ok;             /* asked; its last answer was known */
    const char *agent_state;         /* slb_agent_state_name */
    int agent_weight;                /* percent */
    unsigned agent_owned;            /* SLB_AGENT_F_* the agent set */
    apr_time_t agent_last, agent_change;
    char agent_answer[SLB_AGENT_ANSWER_MAX];
    char agent_why[SLB_PROBE_WHY_MAX];
} slb_health_view;
/* The operator decided flags (SLB_AGENT_F_*) of w: the agent no longer
 * owns them (it will not clear them) */
void slb_agent_forget(struct proxy_balancer *b, struct proxy_worker *w,
                      unsigned flags);
/* The flags (SLB_AGENT_F_*) the agent check set on w */
unsigned slb_agent_owned(struct proxy_balancer *b, struct proxy_worker *w);
/* 1 and *v filled when the member has an entry */
int slb_health_snapshot(struct proxy_balancer *b, struct proxy_worker *w,
                        slb_health_view *v);

/* mod_stickylb_status.c: the status and control handler. */
void slb_status_register_hooks(apr_pool_t *p);
int slb_status_post_config(apr_pool_t *pconf, server_rec *s);

/* mod_stickylb_store.c: the stick table seen from the module. */
int slb_store_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s);
void slb_store_child_init(apr_pool_t *p, server_rec *s);
/* The store of balancer b (its tier, set in post_config) and the table's
 * key prefix of its namespace (from p). */
void slb_store_attach(slb_balancer *b, apr_pool_t *p);
/* Route bound to k (APR_SUCCESS, route copied to route_out), or a miss;
 * a store error is logged (rate-limited), counted and a miss.  Does
 * network I/O on the memcached store: never call it from the finder. */
apr_status_t slb_store_get(const slb_balancer *b, slb_skey *k,
                           char *route_out);
/* Bind k -> route (see slb_put_mode in stickylb_store.h). */
apr_status_t slb_store_put(const slb_balancer *b, slb_skey *k,
                           const char *route, slb_put_mode mode,
                           const char *previous, char *existing_out);
apr_status_t slb_store_del(const slb_balancer *b, slb_skey *k);
/* Server config check (check_config hook): memcached balancers need
 * StickyLBMemcached. */
const char *slb_store_check(server_rec *s, int any_mc);
/* Live bindings of (namespace, route) in the embedded table: memory only,
 * safe under the balancer's lock. */
apr_uint32_t slb_store_route_sessions(const char *ns, const char *route);
/* For the status handler. */
typedef struct {
    int have_table;
    apr_uint64_t capacity, entries, bytes;
    apr_uint64_t hits, misses, inserts, replaces, evictions, expired,
                 lock_timeouts;
    apr_time_t started;          /* the shared counters were created */
    int have_mc;                 /* memcached: counters server-wide,
                                    servers' state this process's */
    int mc_write_mode;           /* SLB_MC_WRITE_* of learned bindings */
    slb_mc_stats mc;
    apr_array_header_t *mc_servers;   /* slb_mc_server */
    apr_uint64_t errors;         /* store errors, server-wide */
    slb_tier_counters tier[2];   /* by slb_store_kind, server-wide */
} slb_store_view;
void slb_store_snapshot(apr_pool_t *p, slb_store_view *v);
/* The memcached client of the watchdog's background work in this child,
 * apart from the request threads' (NULL: none). */
slb_mc *slb_store_bg_mc(void);
/* A member state decided here, written for every balancer of the
 * namespace (one retry; a failure is logged). */
apr_status_t slb_store_publish_state(request_rec *r, const char *ns,
                                     const char *route, slb_member_state st);

/* mod_stickylb_watchdog.c: the child singleton watchdogs (mod_watchdog)
 * of the prober, the member state sync and discovery.  slb_watchdog_need
 * (register_hooks): mod_watchdog starts the watchdog name whenever *wanted
 * is non-zero when it asks (after post_config).  slb_watchdog_start
 * (post_config): callback cb(data) every interval on that watchdog: OK, or
 * !OK after logging (critical, with mod_watchdog's status) why[0] when
 * mod_watchdog is not loaded, why[1] when its instance could not be had,
 * why[2] when the callback could not be registered. */
#include "mod_watchdog.h"
void slb_watchdog_need(const char *name, const int *wanted);
void slb_watchdog_register_hooks(apr_pool_t *p);
int slb_watchdog_start(apr_pool_t *pconf, server_rec *s, const char *name,
                       apr_interval_time_t interval, const void *data,
                       ap_watchdog_callback_fn_t *cb,
                       const char *const why[3]);

/* mod_stickylb_sync.c: member states read back on the watchdog, every
 * SLB_STATE_SYNC_INTERVAL, into the members' shared status. */
#define SLB_STATE_SYNC_INTERVAL apr_time_from_sec(1)
void slb_sync_register_hooks(apr_pool_t *p);
int slb_sync_post_config(apr_pool_t *pconf, server_rec *s);

/* Unbind every key of (namespace, route) in the embedded table: returns
 * how many were removed. */
apr_uint32_t slb_store_unbind_route(const char *ns, const char *route);
/* At a (re)start: the (namespace, route) pairs of the configured members
 * are kept in the stick table's route registry, the other routes retired
 * with their bindings (slb_table_routes_keep); logged when any is. */
void slb_store_keep_routes(server_rec *s, int n, const char *const *ns,
                           const char *const *routes);

/* mod_stickylb_discover.c: members discovered at run time. */
#include "stickylb_discover.h"
typedef struct {
    const char *kind, *target;
    const slb_disc_source_ops *ops;
    void *state;                 /* the source's (create) */
    slb_disc_conf conf;
} slb_disc_spec;
/* StickyLBDiscover's arguments (a message without the directive name) */
const char *slb_discover_parse(apr_pool_t *p, int argc,
                               const char *const *argv, slb_disc_spec **out);
/* The StickyLBDiscover of balancer b of server s, or NULL */
const slb_disc_spec *slb_config_discover_spec(server_rec *s,
                                              const struct proxy_balancer *b,
                                              apr_pool_t *p);
/* post_config (after slb_config_resolve, before the routes are kept):
 * the discovered members of the last generation back into growth slots */
int slb_discover_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                             server_rec *s);
/* post_config: the watchdog callback, when a balancer discovers */
int slb_discover_watchdog(apr_pool_t *pconf, server_rec *s);
void slb_discover_register_hooks(apr_pool_t *p);
/* configtest: an error message or NULL */
const char *slb_discover_check(server_rec *sr, apr_pool_t *ptemp);
/* for the status handler */
typedef struct {
    const char *source, *last_error;
    apr_time_t started, last_fetch, last_sync, last_error_at, next_due;
    apr_uint32_t failures, malformed, waiting, slots_free, members;
    apr_uint64_t fetches, errors, malformed_total, full_rounds, changes;
} slb_discover_bview;
typedef struct {
    int discovered;
    const char *state, *origin, *source;
    apr_time_t added, since, seen;
} slb_discover_mview;
int slb_discover_balancer_view(const struct proxy_balancer *b,
                               slb_discover_bview *v);
int slb_discover_member_view(apr_pool_t *p, const struct proxy_balancer *b,
                             const struct proxy_worker *w,
                             slb_discover_mview *v);
/* mod_stickylb_probe.c: a member added or back now (slow start ramps
 * from now) */
void slb_health_started(struct proxy_balancer *b, struct proxy_worker *w,
                        apr_time_t now);

#endif /* MOD_STICKYLB_H */
