/*
 * mod_stickylb_store.c - the stores as the module uses them.
 *
 * Two tiered stores (slb_tier, stickylb_tier.c), one per kind of balancer,
 * reached through the store interface of the core (stickylb_store.h):
 * the embedded table alone for `StickyLBStore shm`, the embedded table in
 * front of memcached for `StickyLBStore memcached`.  A resolved balancer
 * points to its tier (slb_store_attach); the policy (cache validity,
 * re-validation, re-publishing, agreement by add) is the tier's, this
 * file only makes the table and the client.
 *
 * The embedded store ("shm"): one stickylb_table in an anonymous shared
 * memory segment created by the parent in post_config and inherited by
 * every child.  The segment is kept in the process pool (which lives as
 * long as the parent), found again through pool userdata after a graceful
 * restart, so bindings survive `apachectl -k graceful` (a restart with a
 * different StickyLBTableSize starts an empty table).
 *
 * The memcached store: one slb_mc per child process (created in
 * child_init), shared by the balancers that say StickyLBStore memcached;
 * every child's client counts into the shared segment (server-wide
 * counters that survive graceful restarts).
 * The embedded table in front of it is a cache: a binding younger than
 * StickyLBMemcached cache= seconds is used without asking memcached, an
 * older one is re-validated (and memcached's expiry pushed with touch).
 * When memcached fails, the cached binding is still used; when memcached
 * lost a binding the cache holds (a restart), the cache re-publishes it.
 *
 * Store errors are counted in shared memory and logged at most once a
 * minute for the whole server; the request goes on as a miss.
 */
#include "apr_strings.h"
#include "apr_shm.h"
#include "apr_random.h"
#include "apr_general.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "ap_mpm.h"

#include "mod_proxy.h"

#include "mod_stickylb.h"
#include "stickylb_table.h"
#include "stickylb_mc.h"

#define SHM_USERDATA_KEY "mod_stickylb-table"

typedef struct {
    apr_shm_t *shm;
    apr_size_t bytes;
} shm_holder;

/*
 * What every process of the server shares besides the table, at the start
 * of the same segment (kept with it across graceful restarts): the
 * counters of both tiers and of the memcached clients that serve requests,
 * the store error count and the error log's rate limiter, all updated
 * atomically; and when they were created (a full start, or a new
 * StickyLBTableSize), for rate() across resets.
 */
typedef struct {
    apr_uint64_t layout;           /* sizeof(store_shared) */
    apr_time_t created;
    slb_tier_counters tier[2];     /* by slb_store_kind */
    slb_mc_counters mc;            /* every child's request client */
    apr_uint64_t errors;           /* store errors, server-wide */
    apr_uint64_t suppressed;       /* errors not logged since the last */
    apr_time_t last_log;
} store_shared;

#define SHARED_BYTES APR_ALIGN(sizeof(store_shared), 64)

/* the counters start (again): a new segment, or one a module with
 * another layout of them made */
static void shared_reset(store_shared *sh)
{
    memset(sh, 0, sizeof(*sh));
    sh->layout = sizeof(store_shared);
    sh->created = apr_time_now();
}

/* the segment starts on a cache line: the counters, then the table */
static void *segment_mem(apr_shm_t *shm)
{
    return (void *)(((apr_uintptr_t)apr_shm_baseaddr_get(shm) + 63)
                    & ~(apr_uintptr_t)63);
}

static slb_table *table = NULL;
static store_shared *shared = NULL;
static slb_mc *mc = NULL;            /* per child */
static slb_mc *bg_mc = NULL;
#define SLB_PENDING_MAX 1024         /* the watchdog's (slb_store_bg_mc) */
static int mc_write_mode = SLB_MC_WRITE_SYNC;
/* the stores of the two kinds of balancer: the table alone (shm), the
 * table in front of memcached (memcached); the balancers point here */
static slb_tier tiers[2];

/* A failed store operation (slb_tier's error callback): counted, logged
 * at most once a minute for the whole server; the request goes on as a
 * miss. */
static void log_store_error(void *baton, apr_status_t rv, const char *op)
{
    server_rec *s = baton;
    apr_time_t now = apr_time_now(), last;
    apr_uint64_t quiet;

    if (shared == NULL) {
        return;
    }
    __atomic_fetch_add(&shared->errors, 1, __ATOMIC_RELAXED);
    last = __atomic_load_n(&shared->last_log, __ATOMIC_RELAXED);
    if (now - last < apr_time_from_sec(60)
        || !__atomic_compare_exchange_n(&shared->last_log, &last, now, 0,
                                        __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&shared->suppressed, 1, __ATOMIC_RELAXED);
        return;
    }
    quiet = __atomic_exchange_n(&shared->suppressed, 0, __ATOMIC_RELAXED);
    ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                 SLB_LOG_TAG "SLB0201: stick table %s failed; treated as "
                 "a miss (%" APR_UINT64_T_FMT " similar errors not logged "
                 "in the last minute)", op, quiet);
}

/* slb_tier.route_known: a member of the balancer (scope) has the route;
 * memory only (the workers of this process) */
static int member_route(const void *scope, const char *route)
{
    const proxy_balancer *b = scope;
    int i;

    for (i = 0; i < b->workers->nelts; i++) {
        const proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (!strcmp(w->s->route, route)) {
            return 1;
        }
    }
    return 0;
}

static void tiers_init(server_rec *s)
{
    int i;

    for (i = 0; i < 2; i++) {
        memset(&tiers[i], 0, sizeof(tiers[i]));
        tiers[i].local.ops = &slb_table_store_ops;
        tiers[i].local.ctx = table;
        tiers[i].ctr = shared ? &shared->tier[i] : NULL;
        tiers[i].error = log_store_error;
        tiers[i].baton = s;
        tiers[i].route_known = member_route;
    }
    /* the memcached client is made per child (slb_store_child_init) */
    tiers[SLB_STORE_MEMCACHED].remote.ops = &slb_mc_store_ops;
    tiers[SLB_STORE_MEMCACHED].remote.ctx = NULL;
}

void slb_store_attach(slb_balancer *b, apr_pool_t *p)
{
    /* StickyLBStore none looks nothing up and binds nothing (uses_store
     * is 0): the embedded tier stands for it where one is needed */
    b->tier = &tiers[b->store == SLB_STORE_NONE ? SLB_STORE_SHM : b->store];
    b->key_prefix = NULL;
    if (table) {
        slb_key_prefix *pre = apr_palloc(p, sizeof(*pre));
        slb_table_key_prefix(table, b->ns, pre);
        b->key_prefix = pre;
    }
}

int slb_store_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    slb_srv_conf *sc = ap_get_module_config(s->module_config,
                                            &stickylb_module);
    apr_int64_t entries = sc->table_entries ? sc->table_entries
                                            : SLB_DEFAULT_TABLE_ENTRIES;
    apr_size_t bytes = slb_table_bytes((apr_uint32_t)entries);
    shm_holder *h = NULL;
    apr_status_t rv;
    void *mem;

    (void)pconf;
    (void)plog;
    (void)ptemp;
    table = NULL;
    shared = NULL;
    apr_pool_userdata_get((void **)&h, SHM_USERDATA_KEY, pproc);
    if (h && h->bytes == bytes) {
        mem = segment_mem(h->shm);
        table = slb_table_attach((char *)mem + SHARED_BYTES, bytes);
        if (table) {
            shared = mem;
            if (shared->layout != sizeof(store_shared)) {
                shared_reset(shared);
            }
            tiers_init(s);
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         SLB_LOG_TAG "SLB0202: stick table kept across the "
                         "restart (%" APR_SIZE_T_FMT " bytes)", bytes);
            return OK;
        }
    }
    if (h) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0203: StickyLBTableSize changed: "
                     "starting an empty stick table");
        apr_shm_destroy(h->shm);
    }
    else {
        h = apr_pcalloc(pproc, sizeof(*h));
        apr_pool_userdata_set(h, SHM_USERDATA_KEY, apr_pool_cleanup_null,
                              pproc);
    }
    /* + 64: the segment wants a cache-line aligned start */
    rv = apr_shm_create(&h->shm, SHARED_BYTES + bytes + 64, NULL, pproc);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     SLB_LOG_TAG "SLB0204: cannot create the stick table "
                     "(%" APR_SIZE_T_FMT " bytes of shared memory)", bytes);
        h->shm = NULL;
        h->bytes = 0;
        return !OK;
    }
    h->bytes = bytes;
    mem = segment_mem(h->shm);
    memset(mem, 0, SHARED_BYTES);
    shared_reset(mem);
    {
        unsigned char secret[16];
        if (apr_generate_random_bytes(secret, sizeof(secret)) != APR_SUCCESS) {
            apr_uint64_t t = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)getpid();
            memcpy(secret, &t, 8);
            memcpy(secret + 8, &t, 8);
        }
        table = slb_table_format((char *)mem + SHARED_BYTES, bytes, secret,
                                 apr_time_now());
    }
    if (table == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     SLB_LOG_TAG "SLB0205: cannot format the stick table");
        return !OK;
    }
    shared = mem;
    tiers_init(s);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 SLB_LOG_TAG "SLB0206: stick table of %u bindings "
                 "(%" APR_SIZE_T_FMT " bytes of shared memory)",
                 slb_table_capacity(bytes), bytes);
    return OK;
}

/* A memcached client of this child (connections are opened on first
 * use), or NULL and the reason logged. */
static slb_mc *make_client(apr_pool_t *p, server_rec *s,
                           const slb_mc_conf *c, slb_mc_counters *ctr,
                           const char *why)
{
    slb_mc *m = NULL;
    apr_status_t rv = slb_mc_create_shared(&m, p, c, ctr);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, SLB_LOG_TAG "%s", why);
        return NULL;
    }
    return m;
}

void slb_store_child_init(apr_pool_t *p, server_rec *s)
{
    slb_srv_conf *sc = ap_get_module_config(s->module_config,
                                            &stickylb_module);
    slb_tier *t = &tiers[SLB_STORE_MEMCACHED];

    mc = NULL;
    bg_mc = NULL;
    t->remote.ctx = NULL;
    t->pending = NULL;
    if (sc->mc == NULL) {
        return;
    }
    {
        /* the watchdog's: one handle, writes that wait */
        slb_mc_conf c = *sc->mc;
        c.write_mode = SLB_MC_WRITE_SYNC;
        c.pool_max = 1;
        bg_mc = make_client(p, s, &c, NULL,
                            "SLB0211: cannot set up the memcached client of "
                            "the watchdog: member states decided on other "
                            "balancers are not followed");
    }
    mc_write_mode = sc->mc->write_mode;
    t->validity_s = slb_duration_secs(sc->mc_cache);
    t->learn_nowait = mc_write_mode != SLB_MC_WRITE_SYNC;
    {
        /* one handle per thread of the child made now, not by the first
         * requests that find the pool short of one */
        slb_mc_conf c = *sc->mc;
        int threads = 1;
        if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
            || threads < 1) {
            threads = 1;
        }
        c.pool_start = threads < c.pool_max ? threads : c.pool_max;
        mc = make_client(p, s, &c, shared ? &shared->mc : NULL,
                         "SLB0210: cannot set up the memcached client; "
                         "memcached balancers use the embedded table only");
    }
    t->remote.ctx = mc;
    /* bindings memcached did not take, written again once it answers
     * (per child; the oldest dropped past SLB_PENDING_MAX) */
    t->pending = mc ? slb_tier_pending_make(p, SLB_PENDING_MAX) : NULL;
}

const char *slb_store_check(server_rec *s, int any_mc)
{
    slb_srv_conf *sc = ap_get_module_config(s->module_config,
                                            &stickylb_module);

    if (any_mc && sc->mc == NULL) {
        return "StickyLBStore memcached: no StickyLBMemcached servers are "
               "configured (server config)";
    }
    return NULL;
}

apr_status_t slb_store_get(const slb_balancer *b, slb_skey *k,
                           char *route_out)
{
    if (table == NULL) {
        return APR_NOTFOUND;
    }
    return slb_tier_get(b->tier, k, &b->lifetime, apr_time_now(),
                        route_out);
}

apr_status_t slb_store_put(const slb_balancer *b, slb_skey *k,
                           const char *route, slb_put_mode mode,
                           const char *previous, char *existing_out)
{
    if (table == NULL) {
        return APR_EGENERAL;
    }
    return slb_tier_put(b->tier, k, route, &b->lifetime, mode, previous,
                        apr_time_now(), existing_out);
}

apr_status_t slb_store_del(const slb_balancer *b, slb_skey *k)
{
    if (table == NULL) {
        return APR_NOTFOUND;
    }
    return slb_tier_del(b->tier, k);
}

apr_uint32_t slb_store_route_sessions(const char *ns, const char *route)
{
    int id;

    if (table == NULL) {
        return 0;
    }
    id = slb_table_route_id(table, ns, route);
    return id < 0 ? 0 : slb_table_route_sessions(table, id);
}

void slb_store_snapshot(apr_pool_t *p, slb_store_view *v)
{
    memset(v, 0, sizeof(*v));
    if (table) {
        slb_table_stats st;
        slb_table_stats_get(table, &st);
        v->have_table = 1;
        v->capacity = st.capacity;
        v->bytes = st.bytes;
        v->entries = slb_table_count_live(table, apr_time_now());
        v->hits = st.hits;
        v->misses = st.misses;
        v->inserts = st.inserts;
        v->replaces = st.replaces;
        v->evictions = st.evictions;
        v->expired = st.expired;
        v->lock_timeouts = st.lock_timeouts;
    }
    if (mc) {
        v->have_mc = 1;
        v->mc_write_mode = mc_write_mode;
        slb_mc_stats_get(mc, &v->mc);
        v->mc_servers = slb_mc_servers(mc, p);
    }
    if (shared) {
        int i;
        v->started = shared->created;
        v->errors = __atomic_load_n(&shared->errors, __ATOMIC_RELAXED);
        for (i = 0; i < 2; i++) {
            slb_tier_counters_read(&shared->tier[i], &v->tier[i]);
        }
    }
}

apr_uint32_t slb_store_unbind_route(const char *ns, const char *route)
{
    int id;

    if (table == NULL) {
        return 0;
    }
    id = slb_table_route_id(table, ns, route);
    return id < 0 ? 0 : slb_table_del_route(table, id);
}

void slb_store_keep_routes(server_rec *s, int n, const char *const *ns,
                           const char *const *routes)
{
    apr_uint32_t retired;

    if (table == NULL) {
        return;
    }
    retired = slb_table_routes_keep(table, n, ns, routes);
    if (retired > 0) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0207: %u route(s) of members no longer "
                     "configured left the stick table, with their bindings",
                     retired);
    }
}

/* ------------------------------------------------------------------ */
/* member states shared through memcached (drain, maintenance)         */

/*
 * The client of the watchdog's background work: one of its own (made in
 * child_init, from the child's pool: it opens no connection until used,
 * and only the watchdog's child uses it), so that what it meets (a
 * memcached not started yet, a server cut off) never marks a server down
 * in the handles that serve requests.
 */
slb_mc *slb_store_bg_mc(void)
{
    return bg_mc;
}

apr_status_t slb_store_publish_state(request_rec *r, const char *ns,
                                     const char *route, slb_member_state st)
{
    apr_status_t rv;

    if (mc == NULL) {
        return APR_EGENERAL;
    }
    rv = slb_mc_member_state_set(mc, ns, route, st, apr_time_now());
    if (rv != APR_SUCCESS) {
        /* an operator's decision: one more try, every server asked again
         * whatever this handle thought of it, before giving up */
        slb_mc_readmit(mc);
        rv = slb_mc_member_state_set(mc, ns, route, st, apr_time_now());
    }
    if (rv != APR_SUCCESS) {
        /* rare and important: logged every time, not rate-limited */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      SLB_LOG_TAG "SLB0405: member state '%s' of route %s "
                      "could not be written to memcached: the other "
                      "balancers of namespace %s do not follow it",
                      slb_member_state_name(st), route, ns);
    }
    return rv;
}
