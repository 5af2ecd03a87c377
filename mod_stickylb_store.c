/*
 * mod_stickylb_store.c - the stick table as the module uses it.
 *
 * The embedded store ("shm"): one stickylb_table in an anonymous shared
 * memory segment created by the parent in post_config and inherited by
 * every child.  The segment is kept in the process pool (which lives as
 * long as the parent), found again through pool userdata after a graceful
 * restart, so bindings survive `apachectl -k graceful` (a restart with a
 * different StickyLBTableSize starts an empty table).
 *
 * The memcached store: one slb_mc per child process (created in
 * child_init), shared by the balancers that say StickyLBStore memcached.
 * The embedded table in front of it is a cache: a binding younger than
 * StickyLBMemcached cache= seconds is used without asking memcached, an
 * older one is re-validated (and memcached's expiry pushed with touch).
 * When memcached fails, the cached binding is still used; when memcached
 * lost a binding the cache holds (a restart), the cache re-publishes it.
 *
 * Store errors are counted and logged at most once a minute per process;
 * the request goes on as a miss.
 */
#include "apr_strings.h"
#include "apr_shm.h"
#include "apr_random.h"
#include "apr_general.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"

#include "mod_stickylb.h"
#include "stickylb_table.h"
#include "stickylb_mc.h"

#define SHM_USERDATA_KEY "mod_stickylb-table"

typedef struct {
    apr_shm_t *shm;
    apr_size_t bytes;
} shm_holder;

/* the table starts on the first cache line of the segment */
static void *table_mem(apr_shm_t *shm)
{
    return (void *)(((apr_uintptr_t)apr_shm_baseaddr_get(shm) + 63)
                    & ~(apr_uintptr_t)63);
}

static slb_table *table = NULL;
static slb_mc *mc = NULL;            /* per child */
static apr_uint32_t mc_cache_s = SLB_DEFAULT_MC_CACHE;
static int mc_write_mode = SLB_MC_WRITE_SYNC;
static apr_time_t last_error_log = 0;
static apr_uint32_t suppressed_errors = 0;
static apr_uint64_t store_errors = 0;     /* this process */

static void log_store_error(request_rec *r, apr_status_t rv, const char *op)
{
    apr_time_t now = apr_time_now();

    __atomic_fetch_add(&store_errors, 1, __ATOMIC_RELAXED);
    if (now - last_error_log < apr_time_from_sec(60)) {
        suppressed_errors++;
        return;
    }
    last_error_log = now;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                  SLB_LOG_TAG "SLB0201: stick table %s failed; treated as "
                  "a miss (%u similar errors not logged in the last minute)",
                  op, suppressed_errors);
    suppressed_errors = 0;
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
    apr_pool_userdata_get((void **)&h, SHM_USERDATA_KEY, pproc);
    if (h && h->bytes == bytes) {
        table = slb_table_attach(table_mem(h->shm), bytes);
        if (table) {
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
    /* + 64: the table wants a cache-line aligned start */
    rv = apr_shm_create(&h->shm, bytes + 64, NULL, pproc);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     SLB_LOG_TAG "SLB0204: cannot create the stick table "
                     "(%" APR_SIZE_T_FMT " bytes of shared memory)", bytes);
        h->shm = NULL;
        h->bytes = 0;
        return !OK;
    }
    h->bytes = bytes;
    mem = table_mem(h->shm);
    {
        unsigned char secret[16];
        if (apr_generate_random_bytes(secret, sizeof(secret)) != APR_SUCCESS) {
            apr_uint64_t t = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)getpid();
            memcpy(secret, &t, 8);
            memcpy(secret + 8, &t, 8);
        }
        table = slb_table_format(mem, bytes, secret, apr_time_now());
    }
    if (table == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     SLB_LOG_TAG "SLB0205: cannot format the stick table");
        return !OK;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 SLB_LOG_TAG "SLB0206: stick table of %u bindings "
                 "(%" APR_SIZE_T_FMT " bytes of shared memory)",
                 slb_table_capacity(bytes), bytes);
    return OK;
}

void slb_store_child_init(apr_pool_t *p, server_rec *s)
{
    slb_srv_conf *sc = ap_get_module_config(s->module_config,
                                            &stickylb_module);
    apr_status_t rv;

    last_error_log = 0;
    suppressed_errors = 0;
    mc = NULL;
    if (sc->mc == NULL) {
        return;
    }
    mc_cache_s = slb_duration_secs(sc->mc_cache);
    mc_write_mode = sc->mc->write_mode;
    /* connections are opened on first use, in this child only */
    rv = slb_mc_create(&mc, p, sc->mc);
    if (rv != APR_SUCCESS) {
        mc = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     SLB_LOG_TAG "SLB0210: cannot set up the memcached "
                     "client; memcached balancers use the embedded table "
                     "only");
    }
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

static apr_uint32_t mc_ttl(const slb_lifetime *lt)
{
    if (lt->idle) {
        return lt->max && lt->max < lt->idle ? lt->max : lt->idle;
    }
    return lt->max;
}

/* a binding from memcached past the balancer's maximum lifetime */
static int mc_too_old(const slb_binding *b, const slb_lifetime *lt)
{
    return lt->max && b->created > 0
           && apr_time_now() - b->created > apr_time_from_sec(lt->max);
}

static void cache_put(const slb_key *key, const char *ns, const char *route,
                      const slb_lifetime *lt)
{
    int id = slb_table_route_id(table, ns, route);

    if (id >= 0) {
        slb_table_set(table, key, id, lt, apr_time_now());
    }
}

/* memcached's key of k: SHA-1 of namespace and id, made on first use
 * (a binding this server's table holds never needs it) */
static const slb_key *shared_of(slb_skey *k)
{
    if (!k->have_shared) {
        slb_key_make(&k->shared, k->ns, k->id, k->len);
        k->have_shared = 1;
    }
    return &k->shared;
}

static apr_status_t mc_get(request_rec *r, slb_skey *k, const char *ns,
                           const slb_lifetime *lt, char *route_out)
{
    const slb_key *key = &k->local;
    int id = -1;
    apr_uint32_t age = 0;
    apr_status_t crv, mrv;
    slb_binding b;
    const char *cached = NULL;

    crv = slb_table_get_age(table, key, lt, apr_time_now(), &id, &age);
    if (crv == APR_SUCCESS) {
        cached = slb_table_route_name(table, id);
        if (age < mc_cache_s && *cached) {
            apr_cpystrn(route_out, cached, SLB_MAX_ROUTE_LEN + 1);
            return APR_SUCCESS;
        }
    }
    if (mc == NULL) {
        mrv = APR_EGENERAL;
    }
    else {
        mrv = slb_mc_get(mc, shared_of(k), &b);
    }
    if (mrv == APR_SUCCESS && mc_too_old(&b, lt)) {
        slb_mc_delete(mc, shared_of(k));
        slb_table_del(table, key);
        return APR_NOTFOUND;
    }
    if (mrv == APR_SUCCESS) {
        cache_put(key, ns, b.route, lt);
        if (mc_ttl(lt)) {
            slb_mc_touch(mc, shared_of(k), mc_ttl(lt));
        }
        apr_cpystrn(route_out, b.route, SLB_MAX_ROUTE_LEN + 1);
        return APR_SUCCESS;
    }
    if (mrv == APR_NOTFOUND) {
        if (cached && *cached) {
            /* memcached lost it (restarted, evicted): publish it again */
            memset(&b, 0, sizeof(b));
            apr_cpystrn(b.route, cached, sizeof(b.route));
            if (slb_mc_add(mc, shared_of(k), &b, mc_ttl(lt), &b) == APR_EEXIST) {
                cached = b.route;
            }
            cache_put(key, ns, cached, lt);
            apr_cpystrn(route_out, cached, SLB_MAX_ROUTE_LEN + 1);
            return APR_SUCCESS;
        }
        return APR_NOTFOUND;
    }
    log_store_error(r, mrv, "memcached lookup");
    if (cached && *cached) {
        /* memcached unreachable: keep the session where it was */
        apr_cpystrn(route_out, cached, SLB_MAX_ROUTE_LEN + 1);
        return APR_SUCCESS;
    }
    return APR_NOTFOUND;
}

void slb_store_key(slb_skey *k, const char *ns, const char *id,
                   apr_size_t len)
{
    k->ns = ns;
    k->id = id;
    k->len = len;
    k->have_shared = 0;
    if (table) {
        slb_table_key(table, &k->local, ns, id, len);
    }
}

apr_status_t slb_store_get(request_rec *r, int use_mc, slb_skey *k,
                           const char *ns, const slb_lifetime *lt,
                           char *route_out)
{
    int id = -1;
    apr_status_t rv;

    if (table == NULL) {
        return APR_NOTFOUND;
    }
    if (use_mc) {
        return mc_get(r, k, ns, lt, route_out);
    }
    rv = slb_table_get(table, &k->local, lt, apr_time_now(), &id);
    if (rv == APR_SUCCESS) {
        apr_cpystrn(route_out, slb_table_route_name(table, id),
                    SLB_MAX_ROUTE_LEN + 1);
        return *route_out ? APR_SUCCESS : APR_NOTFOUND;
    }
    if (rv != APR_NOTFOUND) {
        log_store_error(r, rv, "lookup");
    }
    return APR_NOTFOUND;
}

/* The route this server's table binds key to (fresh or not), or NULL. */
static const char *cached_route(const slb_key *key, const slb_lifetime *lt)
{
    int id = -1;
    const char *name;

    if (slb_table_get(table, key, lt, apr_time_now(), &id) != APR_SUCCESS) {
        return NULL;
    }
    name = slb_table_route_name(table, id);
    return *name ? name : NULL;
}

static apr_status_t mc_put(request_rec *r, slb_skey *k,
                           const char *ns, const char *route,
                           const slb_lifetime *lt, slb_put_mode mode,
                           const char *previous, char *existing_out)
{
    const slb_key *key = &k->local;
    slb_binding b, cur;
    apr_status_t rv;
    const char *known;

    if (mode == SLB_PUT_LEARN && (known = cached_route(key, lt)) != NULL) {
        /* learned here before: only new bindings are written */
        if (existing_out) {
            apr_cpystrn(existing_out, known, SLB_MAX_ROUTE_LEN + 1);
        }
        return APR_EEXIST;
    }
    memset(&b, 0, sizeof(b));
    apr_cpystrn(b.route, route, sizeof(b.route));
    b.created = apr_time_now();
    if (mc == NULL) {
        cache_put(key, ns, route, lt);
        return APR_SUCCESS;
    }
    if (mode == SLB_PUT_LEARN && mc_write_mode != SLB_MC_WRITE_SYNC) {
        /* an id one member issued: no agreement to reach, a set does;
         * bound here at once, written without waiting for a reply */
        cache_put(key, ns, route, lt);
        if (mc_write_mode == SLB_MC_WRITE_ASYNC) {
            rv = slb_mc_publish(mc, shared_of(k), &b, mc_ttl(lt));
        }
        else {
            rv = slb_mc_set_quiet(mc, shared_of(k), &b, mc_ttl(lt));
        }
        if (rv != APR_SUCCESS) {
            log_store_error(r, rv, rv == APR_ENOSPC
                                       ? "memcached write (writer queue full)"
                                       : "memcached write");
        }
        return APR_SUCCESS;
    }
    if (mode != SLB_PUT_REPIN) {
        rv = slb_mc_add(mc, shared_of(k), &b, mc_ttl(lt), &cur);
        if (rv == APR_EEXIST) {
            /* the other balancer bound it first: its binding wins */
            cache_put(key, ns, cur.route, lt);
            if (existing_out) {
                apr_cpystrn(existing_out, cur.route, SLB_MAX_ROUTE_LEN + 1);
            }
            return APR_EEXIST;
        }
    }
    else {
        rv = slb_mc_get(mc, shared_of(k), &cur);
        if (rv == APR_SUCCESS && previous && strcmp(cur.route, previous)
            && strcmp(cur.route, route)) {
            /* re-pinned elsewhere already: adopt, do not overwrite */
            cache_put(key, ns, cur.route, lt);
            if (existing_out) {
                apr_cpystrn(existing_out, cur.route, SLB_MAX_ROUTE_LEN + 1);
            }
            return APR_EEXIST;
        }
        rv = slb_mc_set(mc, shared_of(k), &b, mc_ttl(lt));
    }
    if (rv != APR_SUCCESS) {
        log_store_error(r, rv, "memcached write");
    }
    /* the local copy is kept either way: sessions stay sticky here */
    cache_put(key, ns, route, lt);
    return APR_SUCCESS;
}

apr_status_t slb_store_put(request_rec *r, int use_mc, slb_skey *k,
                           const char *ns, const char *route,
                           const slb_lifetime *lt, slb_put_mode mode,
                           const char *previous, char *existing_out)
{
    const slb_key *key = &k->local;
    int id, existing = -1;
    apr_status_t rv;

    if (table == NULL) {
        return APR_EGENERAL;
    }
    if (use_mc) {
        rv = mc_put(r, k, ns, route, lt, mode, previous, existing_out);
        if (rv == APR_SUCCESS) {
            slb_table_sweep(table, apr_time_now(), 8);
        }
        return rv;
    }
    id = slb_table_route_id(table, ns, route);
    if (id < 0) {
        log_store_error(r, APR_ENOSPC, "route registration");
        return APR_ENOSPC;
    }
    if (mode != SLB_PUT_REPIN) {
        rv = slb_table_add(table, key, id, lt, apr_time_now(), &existing);
        if (rv == APR_EEXIST && existing_out) {
            apr_cpystrn(existing_out, slb_table_route_name(table, existing),
                        SLB_MAX_ROUTE_LEN + 1);
        }
    }
    else {
        rv = slb_table_set(table, key, id, lt, apr_time_now());
    }
    if (rv != APR_SUCCESS && rv != APR_EEXIST) {
        log_store_error(r, rv, "write");
    }
    /* every write reclaims the expired bindings of a few buckets, so the
     * per-member session counts stay exact without a sweeper thread */
    if (rv == APR_SUCCESS) {
        slb_table_sweep(table, apr_time_now(), 8);
    }
    return rv;
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

apr_status_t slb_store_del(request_rec *r, int use_mc, slb_skey *k)
{
    apr_status_t rv;

    if (table == NULL) {
        return APR_NOTFOUND;
    }
    if (use_mc && mc) {
        rv = slb_mc_delete(mc, shared_of(k));
        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            log_store_error(r, rv, "memcached delete");
        }
    }
    rv = slb_table_del(table, &k->local);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        log_store_error(r, rv, "delete");
    }
    return rv;
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
    v->errors = __atomic_load_n(&store_errors, __ATOMIC_RELAXED);
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

/* ------------------------------------------------------------------ */
/* member states shared through memcached (drain, maintenance)         */

static void state_key(slb_key *key, const char *ns, const char *route)
{
    char id[SLB_MAX_ROUTE_LEN + 32];
    apr_size_t n = (apr_size_t)apr_snprintf(id, sizeof(id),
                                            "%cmember-state%c%s", 1, 1,
                                            route);
    slb_key_make(key, ns, id, n);
}

apr_status_t slb_store_publish_state(request_rec *r, const char *ns,
                                     const char *route, const char *state)
{
    slb_key key;
    slb_binding b;
    apr_status_t rv;

    if (mc == NULL) {
        return APR_EGENERAL;
    }
    state_key(&key, ns, route);
    memset(&b, 0, sizeof(b));
    apr_cpystrn(b.route, state, sizeof(b.route));
    b.created = apr_time_now();
    rv = slb_mc_set(mc, &key, &b, 0);
    if (rv != APR_SUCCESS) {
        /* an operator's decision: one more try before giving up */
        rv = slb_mc_set(mc, &key, &b, 0);
    }
    if (rv != APR_SUCCESS) {
        log_store_error(r, rv, "memcached member state write");
    }
    return rv;
}

const char *slb_store_fetch_state(apr_pool_t *p, const char *ns,
                                  const char *route)
{
    slb_key key;
    slb_binding b;

    if (mc == NULL) {
        return NULL;
    }
    state_key(&key, ns, route);
    if (slb_mc_get(mc, &key, &b) != APR_SUCCESS) {
        return NULL;
    }
    return apr_pstrdup(p, b.route);
}
