/*
 * mod_stickylb_watchdog.c - the mod_watchdog glue of the prober
 * (mod_stickylb_probe.c), the member state sync (mod_stickylb_sync.c) and
 * discovery (mod_stickylb_discover.c).
 *
 * Each runs one callback on a child singleton watchdog of its own name.
 * mod_watchdog starts a child watchdog only when a module asks for it in
 * the watchdog_need hook: one hook here answers for every name, by the
 * flag its user keeps (set in post_config, before mod_watchdog asks).
 */
#include "apr_optional.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "mod_watchdog.h"

#include "mod_stickylb.h"

#define SLB_WATCHDOGS 4

static struct {
    const char *name;
    const int *wanted;
} watchdogs[SLB_WATCHDOGS];
static int nwatchdogs = 0;

void slb_watchdog_need(const char *name, const int *wanted)
{
    int i;

    for (i = 0; i < nwatchdogs; i++) {
        if (!strcmp(watchdogs[i].name, name)) {
            watchdogs[i].wanted = wanted;
            return;
        }
    }
    ap_assert(nwatchdogs < SLB_WATCHDOGS);
    watchdogs[nwatchdogs].name = name;
    watchdogs[nwatchdogs].wanted = wanted;
    nwatchdogs++;
}

/* mod_watchdog starts a child watchdog only when a module needs it */
static int watchdog_need(server_rec *s, const char *name, int parent,
                         int singleton)
{
    int i;

    (void)s;
    (void)singleton;
    if (parent || name == NULL) {
        return DECLINED;
    }
    for (i = 0; i < nwatchdogs; i++) {
        if (*watchdogs[i].wanted && !strcmp(name, watchdogs[i].name)) {
            return OK;
        }
    }
    return DECLINED;
}

void slb_watchdog_register_hooks(apr_pool_t *p)
{
    (void)p;
    APR_OPTIONAL_HOOK(ap, watchdog_need, watchdog_need, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

int slb_watchdog_start(apr_pool_t *pconf, server_rec *s, const char *name,
                       apr_interval_time_t interval, const void *data,
                       ap_watchdog_callback_fn_t *cb,
                       const char *const why[3])
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_cb;
    ap_watchdog_t *wd;
    apr_status_t rv;

    get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    register_cb = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!get_instance || !register_cb) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, SLB_LOG_TAG "%s", why[0]);
        return !OK;
    }
    rv = get_instance(&wd, name, 0, 1, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, SLB_LOG_TAG "%s", why[1]);
        return !OK;
    }
    rv = register_cb(wd, interval, data, cb);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, SLB_LOG_TAG "%s", why[2]);
        return !OK;
    }
    return OK;
}
