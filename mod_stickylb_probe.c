/*
 * mod_stickylb_probe.c - health of the members: active probes on a
 * mod_watchdog singleton, passive marking, slow start.
 *
 * One child process (the watchdog singleton) probes every member of every
 * stickylb balancer that has StickyLBProbe, in batches that run
 * concurrently (stickylb_probe.c).  Results live in shared memory: the
 * member's own status word (PROXY_WORKER_HC_FAIL, so every child and
 * balancer-manager see it) and a small table of ours (counters, time of the
 * last change, up-since for slow start), so a recycled singleton child
 * loses nothing.  A transition is logged once.
 *
 * Members that mod_proxy_hcheck checks (hcmethod= set on the member) are
 * left to it: both would write the same flag.
 *
 * HTTP probes of https:// (wss://, h2://) members speak TLS, with the
 * context of their StickyLBProbe line (made when the configuration was
 * read).  A member's name is resolved on the watchdog thread, never on a
 * request thread: getaddrinfo blocks (for as long as the resolver's
 * timeout and attempts in resolv.conf allow), so after RESOLVE_BUDGET of
 * lookups in one tick the lookups still due wait for the next tick, and a
 * member with an address keeps being probed there meanwhile.
 */
#include "apr_strings.h"
#include "apr_shm.h"
#include "apr_hash.h"
#include "apr_optional.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "mod_proxy.h"
#include "mod_watchdog.h"

#include "mod_stickylb.h"
#include "stickylb_probe.h"

#define PROBE_WATCHDOG "_stickylb_probe_"
#define PROBE_TICK apr_time_from_msec(100)
#define HEALTH_SLOTS 4096
/* the layout of health_t is part of the key: a restart that loads a
 * module with another layout gets a new table */
#define HEALTH_USERDATA_KEY "mod_stickylb-health-5"
/* name lookups of one tick: after this much, the rest wait a tick */
#define RESOLVE_BUDGET apr_time_from_msec(200)

typedef struct {
    apr_uint64_t key;            /* 0: free */
    apr_uint32_t down;           /* 1 while marked down by us */
    apr_uint32_t passes, fails;  /* consecutive probe results */
    apr_time_t last_change;
    apr_time_t up_since;         /* slow start; 0 = never went down */
    apr_time_t last_probe;
    apr_interval_time_t last_latency;
    char last_why[SLB_PROBE_WHY_MAX];
    char addr[SLB_PROBE_ADDR_MAX]; /* the address probed, "ip:port" */
    apr_uint64_t requests;       /* chosen by the finder */
    apr_uint64_t new_sessions;   /* ... for a new session */
    apr_uint64_t failovers;      /* ... instead of the session's member */
    apr_uint64_t route_cookie;   /* ... sticky by the route cookie */
    apr_uint64_t probes, probe_failures, probe_us; /* every probe run */
    apr_uint32_t probed;         /* 1 when the prober looks after it */
    /* the agent check (written by the prober only) */
    apr_uint32_t agent;          /* 1 when an agent check asks it */
    apr_uint32_t agent_ok;       /* the last answer was read and known */
    apr_uint32_t agent_state;    /* slb_agent_state the agent says */
    apr_uint32_t agent_weight;   /* percent of the loadfactor */
    apr_uint32_t agent_owned;    /* SLB_AGENT_F_* the agent set */
    apr_time_t agent_last;       /* time of the last answer (or failure) */
    apr_time_t agent_change;     /* ... of the last change of state */
    char agent_answer[SLB_AGENT_ANSWER_MAX]; /* the last answer read */
    char agent_why[SLB_PROBE_WHY_MAX];       /* "ok" or why it failed */
    slb_passive_state passive;   /* passive marking (stickylb_passive.c) */
} health_t;

static health_t *health = NULL;  /* HEALTH_SLOTS entries in shm */

static int probes_wanted = 0;

/* ------------------------------------------------------------------ */
/* the shared table                                                     */

/*
 * The member's key in the shared table: from the name hashes mod_proxy
 * keeps for the balancer and the worker (computed from their names when
 * they are defined, so stable across restarts), mixed; no string is
 * walked on the request path.
 */
static apr_uint64_t member_key(const proxy_balancer *b, const proxy_worker *w)
{
    apr_uint64_t h = (((apr_uint64_t)b->hash.def << 32) | b->hash.fnv)
                     * 0x9e3779b97f4a7c15ULL;

    h ^= ((apr_uint64_t)w->s->hash.def << 32) | w->s->hash.fnv;
    /* splitmix64's finalizer */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

/* The member's entry (created when create is set), or NULL. */
static health_t *health_of(apr_uint64_t key, int create)
{
    apr_uint32_t i, start;

    if (health == NULL) {
        return NULL;
    }
    start = (apr_uint32_t)(key % HEALTH_SLOTS);
    for (i = 0; i < HEALTH_SLOTS; i++) {
        health_t *h = &health[(start + i) % HEALTH_SLOTS];
        apr_uint64_t k = __atomic_load_n(&h->key, __ATOMIC_ACQUIRE);
        if (k == key) {
            return h;
        }
        if (k == 0) {
            apr_uint64_t zero = 0;
            if (!create) {
                return NULL;
            }
            if (__atomic_compare_exchange_n(&h->key, &zero, key, 0,
                                            __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)
                || zero == key) {
                return h;
            }
        }
    }
    return NULL;
}

int slb_health_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    (void)pconf;
    apr_pool_userdata_get((void **)&shm, HEALTH_USERDATA_KEY, pproc);
    if (shm == NULL) {
        rv = apr_shm_create(&shm, sizeof(health_t) * HEALTH_SLOTS, NULL,
                            pproc);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         SLB_LOG_TAG "SLB0301: cannot create the health "
                         "table in shared memory");
            return !OK;
        }
        memset(apr_shm_baseaddr_get(shm), 0,
               sizeof(health_t) * HEALTH_SLOTS);
        apr_pool_userdata_set(shm, HEALTH_USERDATA_KEY,
                              apr_pool_cleanup_null, pproc);
    }
    health = apr_shm_baseaddr_get(shm);
    return OK;
}

/*
 * The member's entry, as health_of(member_key(b, w), create), kept in the
 * worker's general purpose pointer (proxy_worker.context, which mod_proxy
 * sets to NULL and no module of httpd uses for a balancer's member) once
 * found: the request path's counters then cost no hash and no search.  An
 * entry never moves while the segment lives, and the workers are made
 * anew with it at every restart; threads that race store the same pointer.
 */
static health_t *member_health(proxy_balancer *b, proxy_worker *w,
                               int create)
{
    health_t *h = w->context;

    if (h == NULL) {
        h = health_of(member_key(b, w), create);
        w->context = h;
    }
    return h;
}

/* ------------------------------------------------------------------ */
/* counters and snapshots for the status handler                        */

void slb_health_count(proxy_balancer *b, proxy_worker *w, int kind,
                      int by_route_cookie)
{
    health_t *h = member_health(b, w, 1);

    if (h == NULL) {
        return;
    }
    __atomic_fetch_add(&h->requests, 1, __ATOMIC_RELAXED);
    if (kind == SLB_DECIDE_NEW || kind == SLB_DECIDE_FAILOVER) {
        __atomic_fetch_add(&h->new_sessions, 1, __ATOMIC_RELAXED);
    }
    if (kind == SLB_DECIDE_FAILOVER) {
        __atomic_fetch_add(&h->failovers, 1, __ATOMIC_RELAXED);
    }
    if (by_route_cookie) {
        __atomic_fetch_add(&h->route_cookie, 1, __ATOMIC_RELAXED);
    }
}

int slb_health_snapshot(proxy_balancer *b, proxy_worker *w,
                        slb_health_view *v)
{
    health_t *h = health_of(member_key(b, w), 0);

    memset(v, 0, sizeof(*v));
    if (h == NULL) {
        return 0;
    }
    v->probed = h->probed;
    v->down = h->down;
    v->last_change = h->last_change;
    v->last_probe = h->last_probe;
    v->last_latency = h->last_latency;
    apr_cpystrn(v->last_result, h->last_why, sizeof(v->last_result));
    apr_cpystrn(v->addr, h->addr, sizeof(v->addr));
    v->requests = __atomic_load_n(&h->requests, __ATOMIC_RELAXED);
    v->new_sessions = __atomic_load_n(&h->new_sessions, __ATOMIC_RELAXED);
    v->failovers = __atomic_load_n(&h->failovers, __ATOMIC_RELAXED);
    v->route_cookie = __atomic_load_n(&h->route_cookie, __ATOMIC_RELAXED);
    v->probes = __atomic_load_n(&h->probes, __ATOMIC_RELAXED);
    v->probe_failures = __atomic_load_n(&h->probe_failures,
                                        __ATOMIC_RELAXED);
    v->probe_us = __atomic_load_n(&h->probe_us, __ATOMIC_RELAXED);
    v->up_since = h->up_since;
    v->agent = h->agent;
    v->agent_ok = h->agent_ok;
    v->agent_state = slb_agent_state_name(
        (slb_agent_state)__atomic_load_n(&h->agent_state, __ATOMIC_RELAXED));
    v->agent_weight = (int)__atomic_load_n(&h->agent_weight,
                                           __ATOMIC_RELAXED);
    v->agent_owned = __atomic_load_n(&h->agent_owned, __ATOMIC_RELAXED);
    v->agent_last = h->agent_last;
    v->agent_change = h->agent_change;
    apr_cpystrn(v->agent_answer, h->agent_answer, sizeof(v->agent_answer));
    apr_cpystrn(v->agent_why, h->agent_why, sizeof(v->agent_why));
    return 1;
}

void slb_health_started(proxy_balancer *b, proxy_worker *w, apr_time_t now)
{
    health_t *h = health_of(member_key(b, w), 1);

    if (h != NULL) {
        h->up_since = now;
        h->last_change = now;
    }
}

/* ------------------------------------------------------------------ */
/* slow start and passive marking (request path: memory only)          */

int slb_health_factor(proxy_balancer *b, proxy_worker *w,
                      const slb_balancer *c, apr_time_t now)
{
    int f = w->s->lbfactor;
    health_t *h;
    apr_interval_time_t age;

    if (f <= 0 || (h = member_health(b, w, 0)) == NULL) {
        return f;
    }
    if (c->agents->nelts > 0 && __atomic_load_n(&h->agent, __ATOMIC_RELAXED)) {
        /* the agent's weight: a share of the configured loadfactor (0 is
         * a drain, applied to the member's status) */
        apr_uint32_t pc = __atomic_load_n(&h->agent_weight, __ATOMIC_RELAXED);
        if (pc < 100) {
            f = (int)((apr_int64_t)f * pc / 100);
            if (f < 1) {
                f = 1;
            }
        }
    }
    if (c->slow_start <= 0 || h->up_since == 0) {
        return f;
    }
    age = now - h->up_since;
    if (age >= c->slow_start) {
        return f;
    }
    /* linear ramp: 1% of the weight at the start */
    f = (int)((apr_int64_t)f * (age / 1000)
              / (c->slow_start / 1000));
    return f < 1 ? 1 : f;
}

static int status_listed(const slb_balancer *c, int status)
{
    int i;

    for (i = 0; c->passive && i < c->passive->nelts; i++) {
        const slb_range *range = &APR_ARRAY_IDX(c->passive, i, slb_range);
        if (status >= range->lo && status <= range->hi) {
            return 1;
        }
    }
    return 0;
}

/* How many members of b passive marking keeps out now, and how many are
 * usable (the ejection path only: a walk over the members). */
static void passive_census(proxy_balancer *b, apr_time_t now, int *ejected,
                           int *usable)
{
    int i;

    *ejected = *usable = 0;
    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        health_t *h = health_of(member_key(b, w), 0);
        if (PROXY_WORKER_IS_USABLE(w)) {
            (*usable)++;
        }
        else if (h && slb_passive_ejected(&h->passive, now)
                 && PROXY_WORKER_IS(w, PROXY_WORKER_IN_ERROR)) {
            (*ejected)++;
        }
    }
}

void slb_health_passive(request_rec *r, proxy_balancer *b, proxy_worker *w,
                        const slb_balancer *c)
{
    const slb_passive_conf *pc = &c->passive_opts;
    health_t *h;
    int failed, ejected, usable;
    apr_uint32_t client = 0;
    apr_time_t now;
    apr_interval_time_t len;

    if (c->passive == NULL || c->passive->nelts == 0 || w == NULL) {
        return;
    }
    h = member_health(b, w, 1);
    if (h == NULL) {
        return;
    }
    failed = status_listed(c, r->status);
    if (failed && pc->min_clients > 1) {
        client = slb_passive_client_hash(r->useragent_ip);
    }
    now = apr_time_now();
    if (!slb_passive_record(&h->passive, pc, failed, client, now)
        || PROXY_WORKER_IS(w, PROXY_WORKER_IN_ERROR)) {
        return;
    }
    passive_census(b, now, &ejected, &usable);
    if (!slb_passive_may_eject(pc, b->workers->nelts, ejected, usable)) {
        if (slb_passive_hold(&h->passive)) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          SLB_LOG_TAG "SLB0306: member %s of %s is failing "
                          "(last status %d) but stays in: %s (%d of %d "
                          "members out, max-ejected=%d%%)", w->s->name,
                          b->s->name, r->status,
                          usable <= 1 ? "it is the last usable member"
                                      : "the cap of StickyLBPassive",
                          ejected, b->workers->nelts, pc->max_ejected);
        }
        return;
    }
    len = slb_passive_eject(&h->passive, pc, w->s->retry, now);
    if (len == 0) {
        return;
    }
    /* mod_proxy tries a member in error again once error_time + retry is
     * past (ap_proxy_retry_worker): error_time is set so that this is
     * the end of the ejection */
    w->s->error_time = now + len - w->s->retry;
    ap_proxy_set_wstatus(PROXY_WORKER_IN_ERROR_FLAG, 1, w);
    h->last_change = now;
    if (pc->ratio > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SLB_LOG_TAG "SLB0302: member %s of %s answered %d%% "
                      "or more of its responses in %d s with a listed "
                      "status (last %d): in error for %" APR_TIME_T_FMT
                      " s (ejection %u)", w->s->name, b->s->name, pc->ratio,
                      pc->window, r->status, apr_time_sec(len),
                      h->passive.repeats);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SLB_LOG_TAG "SLB0302: member %s of %s answered %d "
                      "times in a row with a listed status (last %d): in "
                      "error for %" APR_TIME_T_FMT " s (ejection %u)",
                      w->s->name, b->s->name, pc->fall, r->status,
                      apr_time_sec(len), h->passive.repeats);
    }
}

/* ------------------------------------------------------------------ */
/* the prober                                                           */

typedef struct {
    proxy_balancer *b;
    proxy_worker *w;
    const slb_probe_conf *conf;
    apr_uint64_t key;
    apr_time_t next_due;
    const char *host;            /* the member's host name or address */
    apr_pool_t *apool;           /* addr's; a new one at each lookup */
    apr_sockaddr_t *addr;        /* the first address of host */
    apr_time_t resolved_at;      /* last lookup (0: none yet) */
    int resolve_failing;         /* the last lookup failed (logged) */
    const char *request;
    struct ssl_ctx_st *tls;      /* TLS context (https:// member), or NULL */
    const char *tls_name;        /* SNI and name verified */
    int agent;                   /* an agent check, not a probe */
    server_rec *s;
} target_t;

typedef struct {
    server_rec *s;
    apr_pool_t *pool;            /* the singleton child's, for targets */
    apr_array_header_t *targets; /* target_t */
    int built;
    apr_time_t wupdated;         /* the balancers' stamps the targets were
                                  * built from (members added at run time,
                                  * by discovery or balancer-manager) */
} prober_t;

/*
 * The latest of the probed balancers' member stamps (shared memory); with
 * sync, also this child's view of the members of each balancer whose
 * stamp is newer than its own (members added at run time).
 */
static apr_time_t members_stamp(server_rec *s, int sync)
{
    apr_time_t latest = 0;
    server_rec *sr;

    for (sr = s; sr; sr = sr->next) {
        proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                     &proxy_module);
        int i;

        for (i = 0; pc && pc->balancers && i < pc->balancers->nelts; i++) {
            proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i,
                                               proxy_balancer);
            if (b->s == NULL) {
                continue;
            }
            if (b->s->wupdated > latest) {
                latest = b->s->wupdated;
            }
            if (sync && b->s->wupdated > b->wupdated
                && PROXY_THREAD_LOCK(b) == APR_SUCCESS) {
                ap_proxy_sync_balancer(b, sr, pc);
                PROXY_THREAD_UNLOCK(b);
            }
        }
    }
    return latest;
}

/* The probe configuration of one member: its route's own line, else the
 * balancer's default line. */
static const slb_probe_conf *probe_for(const apr_array_header_t *lines,
                                       const proxy_worker *w)
{
    const slb_probe_conf *dflt = NULL;
    int i;

    for (i = 0; lines && i < lines->nelts; i++) {
        const slb_probe_conf *pc = &APR_ARRAY_IDX(lines, i, slb_probe_conf);
        if (pc->route && !strcmp(pc->route, w->s->route)) {
            return pc->kind == SLB_PROBE_NONE ? NULL : pc;
        }
        if (pc->route == NULL) {
            dflt = pc;
        }
    }
    return dflt && dflt->kind != SLB_PROBE_NONE ? dflt : NULL;
}

static void build_targets(prober_t *pb)
{
    server_rec *sr;
    apr_hash_t *seen = apr_hash_make(pb->pool);

    apr_hash_t *seen_agent = apr_hash_make(pb->pool);

    pb->targets = apr_array_make(pb->pool, 16, sizeof(target_t));
    for (sr = pb->s; sr; sr = sr->next) {
        proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                     &proxy_module);
        int i, j, a;

        if (pc == NULL || pc->balancers == NULL) {
            continue;
        }
        for (i = 0; i < pc->balancers->nelts; i++) {
            proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i,
                                               proxy_balancer);
            const slb_balancer *c = slb_balancer_of(sr, b, pb->pool);

            if (c->probes->nelts == 0 && c->agents->nelts == 0) {
                continue;
            }
            /* a probe and an agent check of each member (a is 1 for the
             * agent) */
            for (a = 0; a < 2; a++)
            for (j = 0; j < b->workers->nelts; j++) {
                proxy_worker *w = APR_ARRAY_IDX(b->workers, j,
                                                proxy_worker *);
                const slb_probe_conf *conf = probe_for(a ? c->agents
                                                         : c->probes, w);
                apr_uint64_t key = member_key(b, w);
                apr_hash_t *seen_by = a ? seen_agent : seen;
                target_t *t;

                if (conf == NULL
                    || apr_hash_get(seen_by, &key, sizeof(key))) {
                    continue;
                }
                if (w->s->method != NONE) {
                    ap_log_error(APLOG_MARK, APLOG_INFO, 0, sr,
                                 SLB_LOG_TAG "SLB0303: member %s of %s is "
                                 "checked by mod_proxy_hcheck: no stickylb "
                                 "%s", w->s->name, b->s->name,
                                 a ? "agent check" : "probe");
                    continue;
                }
                t = apr_array_push(pb->targets);
                memset(t, 0, sizeof(*t));
                t->b = b;
                t->w = w;
                t->conf = conf;
                t->key = key;
                t->agent = a;
                t->s = sr;
                t->host = w->s->hostname_ex[0] ? w->s->hostname_ex
                                                : w->s->hostname;
                if (conf->kind == SLB_PROBE_HTTP) {
                    /* Host: the member's, an IPv6 literal in brackets */
                    t->request = slb_probe_request(
                        pb->pool, conf,
                        apr_psprintf(pb->pool,
                                     strchr(t->host, ':') ? "[%s]:%u"
                                                          : "%s:%u",
                                     t->host, w->s->port));
                    if (slb_probe_scheme_tls(w->s->scheme)) {
                        t->tls = conf->tls;
                        t->tls_name = slb_probe_tls_name(pb->pool, conf,
                                                         t->host);
                    }
                }
                t->next_due = 0;    /* spread over the interval below */
                apr_hash_set(seen_by,
                             apr_pmemdup(pb->pool, &key, sizeof(key)),
                             sizeof(key), t);
            }
        }
    }
    /* stagger the first probes over each member's interval: every tick
     * then starts a small batch instead of all members at once */
    {
        apr_time_t now = apr_time_now();
        int k, n = pb->targets->nelts;
        for (k = 0; k < n; k++) {
            target_t *t = &APR_ARRAY_IDX(pb->targets, k, target_t);
            t->next_due = now + (apr_time_t)(t->conf->interval
                                             * (apr_int64_t)k / n);
        }
    }
    pb->built = 1;
}

static void apply(target_t *t, const slb_probe *r, apr_time_t now)
{
    health_t *h = health_of(t->key, 1);
    proxy_worker *w = t->w;

    if (h == NULL) {
        return;
    }
    h->probed = 1;
    h->last_probe = now;
    if (t->addr) {
        char *ip = NULL;
        apr_sockaddr_ip_get(&ip, t->addr);
        apr_snprintf(h->addr, sizeof(h->addr),
                     t->addr->family == APR_INET6 ? "[%s]:%u" : "%s:%u",
                     ip ? ip : "?", (unsigned)t->addr->port);
    }
    h->last_latency = r->latency;
    __atomic_fetch_add(&h->probes, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->probe_us, (apr_uint64_t)r->latency,
                       __ATOMIC_RELAXED);
    if (!r->ok) {
        __atomic_fetch_add(&h->probe_failures, 1, __ATOMIC_RELAXED);
    }
    apr_cpystrn(h->last_why, r->ok ? "ok" : r->why, sizeof(h->last_why));
    if (r->ok) {
        h->fails = 0;
        h->passes++;
        if (h->down && h->passes >= (apr_uint32_t)t->conf->rise) {
            h->down = 0;
            h->last_change = now;
            h->up_since = now;
            h->passive.consecutive = 0;
            if (!(h->agent_owned & SLB_AGENT_F_DOWN)) {
                ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, 0, w);
            }
            /* a member the passive check put in error is back too */
            ap_proxy_set_wstatus(PROXY_WORKER_IN_ERROR_FLAG, 0, w);
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, t->s,
                         SLB_LOG_TAG "SLB0304: member %s (route %s) of %s "
                         "is up: %u probes passed", w->s->name, w->s->route,
                         t->b->s->name, h->passes);
        }
    }
    else {
        h->passes = 0;
        h->fails++;
        if (!h->down && h->fails >= (apr_uint32_t)t->conf->fall) {
            h->down = 1;
            h->last_change = now;
            ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, 1, w);
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, t->s,
                         SLB_LOG_TAG "SLB0305: member %s (route %s) of %s "
                         "is down: %u probes failed (%s)", w->s->name,
                         w->s->route, t->b->s->name, h->fails, r->why);
        }
    }
    /* the member's flag follows our verdict, also when something reset it
     * (a restart re-creates the members' shared status, ours is kept) */
    {
        int down = h->down || (h->agent_owned & SLB_AGENT_F_DOWN);
        if (down && !PROXY_WORKER_IS_HCFAILED(w)) {
            ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, 1, w);
        }
        else if (!down && PROXY_WORKER_IS_HCFAILED(w)) {
            ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, 0, w);
        }
    }
}

/* the member's flags as the agent sees them (SLB_AGENT_F_*) */
static unsigned agent_flags_of(const proxy_worker *w)
{
    return (PROXY_WORKER_IS_DRAINING(w) ? SLB_AGENT_F_DRAIN : 0)
           | (PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED) ? SLB_AGENT_F_MAINT
                                                        : 0)
           | (PROXY_WORKER_IS_HCFAILED(w) ? SLB_AGENT_F_DOWN : 0);
}

/*
 * An agent's answer, into the member's shared status: what the agent
 * says (merged with what it said before) is applied by
 * slb_agent_apply, so the agent clears only the flags it set itself and
 * never what the operator (or the probe) set.  A failed check keeps what
 * the agent said last.  Changes are logged once.
 */
static void apply_agent(target_t *t, const slb_probe *r, apr_time_t now)
{
    health_t *h = health_of(t->key, 1);
    proxy_worker *w = t->w;
    slb_agent_answer ans, cur;
    unsigned owned, before, after;
    const char *err = NULL;
    apr_pool_t *p;

    if (h == NULL) {
        return;
    }
    if (!h->agent) {
        __atomic_store_n(&h->agent_state, SLB_AGENT_UP, __ATOMIC_RELAXED);
        __atomic_store_n(&h->agent_weight, 100, __ATOMIC_RELAXED);
        __atomic_store_n(&h->agent, 1, __ATOMIC_RELEASE);
        h->agent_ok = 1;
    }
    h->agent_last = now;
    apr_pool_create(&p, NULL);
    if (r->ok) {
        apr_cpystrn(h->agent_answer, r->answer, sizeof(h->agent_answer));
        err = slb_agent_parse(p, r->answer, &ans);
    }
    else {
        err = r->why;
    }
    if (err) {
        if (h->agent_ok) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, t->s,
                         SLB_LOG_TAG "SLB0312: agent of member %s (route %s)"
                         " of %s: %s; what it said last (%s, %u%%) is kept",
                         w->s->name, w->s->route, t->b->s->name, err,
                         slb_agent_state_name(
                             (slb_agent_state)h->agent_state),
                         h->agent_weight);
        }
        h->agent_ok = 0;
        apr_cpystrn(h->agent_why, err, sizeof(h->agent_why));
    }
    else {
        apr_cpystrn(h->agent_why, "ok", sizeof(h->agent_why));
        h->agent_ok = 1;
        cur.state = (slb_agent_state)h->agent_state;
        cur.weight = (int)h->agent_weight;
        slb_agent_merge(&cur, &ans);
        if ((apr_uint32_t)cur.state != h->agent_state
            || (apr_uint32_t)cur.weight != h->agent_weight) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, t->s,
                         SLB_LOG_TAG "SLB0313: agent of member %s (route %s)"
                         " of %s says %s, weight %d%% (was %s, %u%%): "
                         "answer '%s'", w->s->name, w->s->route,
                         t->b->s->name, slb_agent_state_name(cur.state),
                         cur.weight,
                         slb_agent_state_name(
                             (slb_agent_state)h->agent_state),
                         h->agent_weight, r->answer);
            h->agent_change = now;
            __atomic_store_n(&h->agent_state, (apr_uint32_t)cur.state,
                             __ATOMIC_RELAXED);
            __atomic_store_n(&h->agent_weight, (apr_uint32_t)cur.weight,
                             __ATOMIC_RELAXED);
        }
    }
    apr_pool_destroy(p);
    /* applied also after a failure: the member's status is re-created by
     * a restart, the agent's word is kept */
    cur.state = (slb_agent_state)h->agent_state;
    cur.weight = (int)h->agent_weight;
    owned = h->agent_owned;
    before = agent_flags_of(w);
    after = slb_agent_apply(slb_agent_want(&cur), before, &owned);
    if ((before ^ after) & SLB_AGENT_F_DRAIN) {
        ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG,
                             !!(after & SLB_AGENT_F_DRAIN), w);
    }
    if ((before ^ after) & SLB_AGENT_F_MAINT) {
        ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG,
                             !!(after & SLB_AGENT_F_MAINT), w);
    }
    if ((before ^ after) & SLB_AGENT_F_DOWN) {
        /* the probe's verdict stands: down stays while it says down */
        if ((after & SLB_AGENT_F_DOWN) || !h->down) {
            ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG,
                                 !!(after & SLB_AGENT_F_DOWN), w);
        }
    }
    __atomic_store_n(&h->agent_owned, owned, __ATOMIC_RELAXED);
}

unsigned slb_agent_owned(proxy_balancer *b, proxy_worker *w)
{
    health_t *h = health_of(member_key(b, w), 0);

    return h ? __atomic_load_n(&h->agent_owned, __ATOMIC_RELAXED) : 0;
}

void slb_agent_forget(proxy_balancer *b, proxy_worker *w, unsigned flags)
{
    health_t *h = health_of(member_key(b, w), 0);

    if (h != NULL) {
        __atomic_fetch_and(&h->agent_owned, ~(apr_uint32_t)flags,
                           __ATOMIC_RELAXED);
    }
}

/* "ip" of the first address of a list (from p) */
static const char *ip_of(apr_pool_t *p, apr_sockaddr_t *sa)
{
    char *ip = NULL;

    if (sa == NULL || apr_sockaddr_ip_get(&ip, sa) != APR_SUCCESS) {
        return "?";
    }
    return apr_pstrdup(p, ip);
}

/*
 * Look the member's name up (blocks: the watchdog thread only).  A new
 * address is taken from the next probe on, and logged.  A failed lookup
 * keeps the address the member had (probed there; looked up again after
 * resolve=), and a member never resolved fails its probe ("cannot
 * resolve") and is looked up again at its next probe.
 */
static void resolve(prober_t *pb, target_t *t, apr_time_t now)
{
    apr_pool_t *np;
    apr_sockaddr_t *sa = NULL;
    apr_status_t rv;

    apr_pool_create(&np, pb->pool);
    rv = apr_sockaddr_info_get(&sa, t->host, APR_UNSPEC, t->w->s->port, 0,
                               np);
    if (rv != APR_SUCCESS || sa == NULL) {
        apr_pool_destroy(np);
        if (t->addr) {
            t->resolved_at = now;
            if (!t->resolve_failing) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, rv, t->s,
                             SLB_LOG_TAG "SLB0310: member %s (route %s) of "
                             "%s: cannot look %s up again; probing its last "
                             "address %s", t->w->s->name, t->w->s->route,
                             t->b->s->name, t->host,
                             ip_of(pb->pool, t->addr));
            }
        }
        t->resolve_failing = 1;
        return;
    }
    if (t->addr) {
        /* the address probed is kept while the name still has it (a
         * resolver that rotates its answers moves nothing) */
        apr_sockaddr_t *x;
        for (x = sa; x; x = x->next) {
            if (apr_sockaddr_equal(x, t->addr)) {
                break;
            }
        }
        if (x) {
            if (t->resolve_failing) {
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, t->s,
                             SLB_LOG_TAG "SLB0311: member %s (route %s) of "
                             "%s: %s resolves again (%s)", t->w->s->name,
                             t->w->s->route, t->b->s->name, t->host,
                             ip_of(np, t->addr));
            }
            apr_pool_destroy(np);
            t->resolved_at = now;
            t->resolve_failing = 0;
            return;
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, t->s,
                     SLB_LOG_TAG "SLB0309: member %s (route %s) of %s: %s "
                     "now resolves to %s (was %s): probed there",
                     t->w->s->name, t->w->s->route, t->b->s->name, t->host,
                     ip_of(np, sa), ip_of(np, t->addr));
    }
    if (t->apool) {
        apr_pool_destroy(t->apool);
    }
    t->apool = np;
    t->addr = sa;
    t->resolved_at = now;
    t->resolve_failing = 0;
}

static apr_status_t probe_tick(int state, void *data, apr_pool_t *pool)
{
    prober_t *pb = (prober_t *)data;
    apr_time_t now = apr_time_now();
    apr_array_header_t *batch;
    apr_array_header_t *owners;
    apr_interval_time_t spent = 0;
    int i;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        if (state == AP_WATCHDOG_STATE_STOPPING) {
            pb->built = 0;
            pb->pool = NULL;     /* the child's pool goes with it */
        }
        return APR_SUCCESS;
    }
    if (pb->built && members_stamp(pb->s, 0) != pb->wupdated) {
        /* members were added: the targets again (a new member is
         * probed from now on; the others keep their shared state) */
        pb->built = 0;
    }
    if (!pb->built) {
        if (pb->pool) {
            apr_pool_destroy(pb->pool);
        }
        apr_pool_create(&pb->pool, pb->s->process->pool);
        pb->wupdated = members_stamp(pb->s, 1);
        build_targets(pb);
    }
    batch = apr_array_make(pool, 16, sizeof(slb_probe));
    owners = apr_array_make(pool, 16, sizeof(target_t *));
    for (i = 0; i < pb->targets->nelts; i++) {
        target_t *t = &APR_ARRAY_IDX(pb->targets, i, target_t);
        slb_probe *pr;

        if (t->next_due > now) {
            continue;
        }
        if (slb_probe_resolve_due(t->resolved_at, t->conf->resolve, now)) {
            if (spent < RESOLVE_BUDGET) {
                apr_time_t t0 = apr_time_now();
                resolve(pb, t, now);
                spent += apr_time_now() - t0;
            }
            else if (t->addr == NULL) {
                continue;           /* not probed before a lookup: next tick */
            }
            /* else probed at the address it had; looked up next time */
        }
        t->next_due = now + t->conf->interval;
        if (t->addr == NULL) {
            slb_probe fake;
            memset(&fake, 0, sizeof(fake));
            fake.why = "cannot resolve";
            if (t->agent) {
                apply_agent(t, &fake, now);
            }
            else {
                apply(t, &fake, now);
            }
            continue;
        }
        pr = apr_array_push(batch);
        memset(pr, 0, sizeof(*pr));
        pr->conf = t->conf;
        pr->addr = t->addr;
        pr->request = t->request;
        pr->tls = t->tls;
        pr->tls_name = t->tls_name;
        APR_ARRAY_PUSH(owners, target_t *) = t;
    }
    if (batch->nelts == 0) {
        return APR_SUCCESS;
    }
    slb_probe_run(pool, (slb_probe *)batch->elts, batch->nelts);
    now = apr_time_now();
    for (i = 0; i < batch->nelts; i++) {
        target_t *t = APR_ARRAY_IDX(owners, i, target_t *);
        if (t->agent) {
            apply_agent(t, &APR_ARRAY_IDX(batch, i, slb_probe), now);
        }
        else {
            apply(t, &APR_ARRAY_IDX(batch, i, slb_probe), now);
        }
    }
    return APR_SUCCESS;
}

void slb_probe_register_hooks(apr_pool_t *p)
{
    (void)p;
    slb_watchdog_need(PROBE_WATCHDOG, &probes_wanted);
}

int slb_probe_post_config(apr_pool_t *pconf, server_rec *s, int any_probe)
{
    static const char *const why[3] = {
        "SLB0314: StickyLBProbe and StickyLBAgent need mod_watchdog",
        "SLB0307: cannot create the probe watchdog",
        "SLB0308: cannot register the probe callback"
    };
    prober_t *pb;

    probes_wanted = any_probe;
    if (!any_probe) {
        return OK;
    }
    pb = apr_pcalloc(pconf, sizeof(*pb));
    pb->s = s;
    return slb_watchdog_start(pconf, s, PROBE_WATCHDOG, PROBE_TICK, pb,
                              probe_tick, why);
}
