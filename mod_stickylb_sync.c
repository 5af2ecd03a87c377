/*
 * mod_stickylb_sync.c - operator states shared through the store, on the
 * watchdog.
 *
 * A drain or a maintenance decided on one balancer (the status handler's
 * control, mod_stickylb_status.c) is written to memcached under the
 * balancers' namespace (slb_mc_member_state_set).  Every server with a
 * memcached balancer runs one watchdog callback (a mod_watchdog singleton
 * child, as the prober does) that reads the states of its members every
 * SLB_STATE_SYNC_INTERVAL and writes them into the members' shared status,
 * which every child process and balancer-manager read.  Request threads do
 * none of this I/O; there is no limit on the number of balancers.
 */
#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_optional.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "mod_proxy.h"
#include "mod_watchdog.h"

#include "mod_stickylb.h"

#define SYNC_WATCHDOG "_stickylb_sync_"

static int sync_wanted = 0;

static int uses_stickylb(const proxy_balancer *b)
{
    return b && b->s && !strcmp(b->s->lbpname, "stickylb");
}

typedef struct {
    proxy_worker *w;
    const char *route;
} member_ref;

/* One balancer: its members read under the balancer's lock (members may
 * have been added at run time), their states fetched without it. */
static void sync_balancer(server_rec *s, proxy_server_conf *pc,
                          proxy_balancer *b, const slb_balancer *rb,
                          slb_mc *mc, apr_pool_t *pool)
{
    apr_array_header_t *members = apr_array_make(pool, 8,
                                                 sizeof(member_ref));
    int i;

    if (PROXY_THREAD_LOCK(b) != APR_SUCCESS) {
        return;
    }
    ap_proxy_sync_balancer(b, s, pc);
    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (*w->s->route) {
            member_ref *m = apr_array_push(members);
            m->w = w;
            m->route = apr_pstrdup(pool, w->s->route);
        }
    }
    PROXY_THREAD_UNLOCK(b);

    for (i = 0; i < members->nelts; i++) {
        member_ref *m = &APR_ARRAY_IDX(members, i, member_ref);
        slb_member_state st;
        int drain, maint;
        unsigned owned;

        if (slb_mc_member_state_get(mc, rb->ns, m->route, &st)
            != APR_SUCCESS) {
            continue;    /* none set, or memcached did not answer */
        }
        drain = st == SLB_MEMBER_DRAIN;
        maint = st == SLB_MEMBER_MAINT;
        /* a flag the agent check set stays (the agent clears it); one the
         * store now says too is the operator's from now on */
        owned = slb_agent_owned(b, m->w);
        if (owned & ((drain ? SLB_AGENT_F_DRAIN : 0)
                     | (maint ? SLB_AGENT_F_MAINT : 0))) {
            slb_agent_forget(b, m->w, (drain ? SLB_AGENT_F_DRAIN : 0)
                                      | (maint ? SLB_AGENT_F_MAINT : 0));
        }
        drain = drain || (owned & SLB_AGENT_F_DRAIN);
        maint = maint || (owned & SLB_AGENT_F_MAINT);
        if (!drain != !PROXY_WORKER_IS_DRAINING(m->w)
            || !maint != !PROXY_WORKER_IS(m->w, PROXY_WORKER_DISABLED)) {
            ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG, drain, m->w);
            ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, maint, m->w);
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         SLB_LOG_TAG "SLB0106: member %s of %s is now '%s' "
                         "(decided on a balancer sharing the store)",
                         m->w->s->name, b->s->name,
                         slb_member_state_name(st));
        }
    }
}

static apr_status_t sync_tick(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data, *sr;
    slb_mc *mc;
    apr_hash_t *seen;

    if (state != AP_WATCHDOG_STATE_RUNNING
        || (mc = slb_store_bg_mc()) == NULL) {
        return APR_SUCCESS;
    }
    /* each round asks memcached afresh, even right after it failed */
    slb_mc_readmit(mc);
    /* virtual hosts hold copies of the same balancers: once each */
    seen = apr_hash_make(pool);
    for (sr = s; sr; sr = sr->next) {
        const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                      &stickylb_module);
        proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                     &proxy_module);
        int i;

        for (i = 0; i < sc->nresolved; i++) {
            proxy_balancer *b = &sc->balancers[i];
            const slb_balancer *rb = sc->resolved[i];

            if (!uses_stickylb(b) || rb->store != SLB_STORE_MEMCACHED
                || apr_hash_get(seen, &b->s, sizeof(b->s))) {
                continue;
            }
            apr_hash_set(seen, apr_pmemdup(pool, &b->s, sizeof(b->s)),
                         sizeof(b->s), "");
            sync_balancer(sr, pc, b, rb, mc, pool);
        }
    }
    return APR_SUCCESS;
}

void slb_sync_register_hooks(apr_pool_t *p)
{
    (void)p;
    slb_watchdog_need(SYNC_WATCHDOG, &sync_wanted);
}

int slb_sync_post_config(apr_pool_t *pconf, server_rec *s)
{
    static const char *const why[3] = {
        "SLB0110: StickyLBStore memcached needs mod_watchdog (member "
        "states are shared on it)",
        "SLB0111: cannot set up the member state watchdog",
        "SLB0111: cannot set up the member state watchdog"
    };
    server_rec *sr;

    sync_wanted = 0;
    for (sr = s; sr && !sync_wanted; sr = sr->next) {
        const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                      &stickylb_module);
        int i;
        for (i = 0; i < sc->nresolved; i++) {
            if (sc->resolved[i]->store == SLB_STORE_MEMCACHED) {
                sync_wanted = 1;
                break;
            }
        }
    }
    if (!sync_wanted) {
        return OK;
    }
    return slb_watchdog_start(pconf, s, SYNC_WATCHDOG,
                              SLB_STATE_SYNC_INTERVAL, s, sync_tick, why);
}
