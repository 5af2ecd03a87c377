/*
 * mod_stickylb_discover.c - members discovered at run time (the glue).
 *
 *   <Proxy "balancer://app">
 *       ProxySet lbmethod=stickylb growth=16
 *       StickyLBDiscover dns app.internal:8080 interval=5s grace=60s
 *   </Proxy>
 *
 * A mod_watchdog singleton child (one callback for the server, as the
 * prober and the state sync have) fetches each balancer's source when it
 * is due (stickylb_discover.h: the sources' contract), has the core
 * decide (slb_disc_plan) and applies the decisions the way
 * balancer-manager adds a member: a worker defined into the next free
 * growth slot of the balancer's slot memory, shared and initialised, the
 * balancer's wupdated stamped so that every child takes it
 * (ap_proxy_sync_balancer), under the balancer's thread and global locks.
 * Members that left are drained, then disabled, through their shared
 * status; their slots stay theirs.
 *
 * The discovered set lives in shared memory of the process pool, so it
 * outlives a graceful restart: the restart (post_config, in the parent)
 * puts the members discovered before back into growth slots with the
 * same routes before any child starts, their routes are kept in the
 * stick table's route registry with the configured ones, and the source
 * is asked again at once.  Sessions do not move.
 */
#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_shm.h"
#include "apr_optional.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "mod_proxy.h"
#include "mod_watchdog.h"
#include "ap_slotmem.h"

#include "mod_stickylb.h"
#include "stickylb_discover.h"

#define DISC_WATCHDOG "_stickylb_discover_"
#define DISC_TICK apr_time_from_msec(100)
/* the layout of disc_bal_t is part of the key */
#define DISC_USERDATA_KEY "mod_stickylb-discover-1"

typedef struct {
    apr_uint64_t key;            /* of the balancer's name; 0: free */
    char name[PROXY_BALANCER_MAX_NAME_SIZE];
    char source[SLB_DISC_ORIGIN_MAX];   /* "dns app:8080" */
    apr_uint32_t in_use;         /* a balancer of this generation */
    apr_uint32_t failures;       /* fetches failed in a row */
    apr_uint64_t fetches, errors;        /* since the start */
    apr_uint32_t malformed;      /* in the last answer */
    apr_uint64_t malformed_total;
    apr_uint32_t waiting;        /* entries not added: no free slot */
    apr_uint64_t full_rounds;    /* answers that found the slots full */
    apr_uint32_t full_logged;
    apr_uint32_t slots_free;
    apr_uint64_t changes;        /* actions applied */
    apr_time_t started, last_fetch, last_sync, last_error_at, next_due;
    char last_error[SLB_DISC_ORIGIN_MAX];
    slb_disc_member members[SLB_DISC_MEMBERS];
} disc_bal_t;

static disc_bal_t *disc = NULL;  /* SLB_DISC_BALANCERS entries in shm */
static int disc_wanted = 0;

/* ------------------------------------------------------------------ */
/* the directive                                                        */

const char *slb_discover_parse(apr_pool_t *p, int argc,
                               const char *const *argv, slb_disc_spec **out)
{
    slb_disc_spec *sp;
    apr_table_t *rest;
    const char *err;

    if (argc < 2) {
        return apr_psprintf(p, "needs a kind (%s) and a target, e.g. "
                            "\"StickyLBDiscover dns app.internal:8080\"",
                            slb_disc_source_names(p));
    }
    sp = apr_pcalloc(p, sizeof(*sp));
    sp->kind = argv[0];
    sp->target = argv[1];
    sp->ops = slb_disc_source(argv[0]);
    if (sp->ops == NULL) {
        apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
        char *list = apr_pstrdup(p, slb_disc_source_names(p)), *last, *w;
        const char *near;

        for (w = apr_strtok(list, ", ", &last); w;
             w = apr_strtok(NULL, ", ", &last)) {
            APR_ARRAY_PUSH(a, const char *) = w;
        }
        APR_ARRAY_PUSH(a, const char *) = NULL;
        near = slb_near_word(argv[0], (const char *const *)a->elts);
        return apr_psprintf(p, "unknown kind '%s'%s%s%s (the kinds are %s)",
                            argv[0], near ? ": did you mean " : "",
                            near ? near : "", near ? "?" : "",
                            slb_disc_source_names(p));
    }
    rest = apr_table_make(p, 4);
    err = slb_disc_conf_parse(p, &sp->conf, argc - 2, argv + 2, rest);
    if (err == NULL) {
        err = sp->ops->create(p, sp->target, rest, &sp->state);
    }
    if (err) {
        return apr_psprintf(p, "%s %s: %s", argv[0], argv[1], err);
    }
    *out = sp;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* the shared set                                                       */

static apr_uint64_t name_key(const char *name)
{
    apr_uint64_t h = 1469598103934665603ULL;   /* FNV-1a, case-folded */

    for (; *name; name++) {
        h ^= (unsigned char)apr_tolower(*name);
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/*
 * The record of balancer b: by its slot memory's name (sname, "p<server
 * id>_<name>"), so that each virtual host's copy of an inherited balancer,
 * which has members of its own, has its own discovered set; stable
 * across restarts as the server ids are.
 */
static disc_bal_t *record_of(const proxy_balancer *b, int create)
{
    const char *id = b->s->sname[0] ? b->s->sname : b->s->name;
    apr_uint64_t key = name_key(id);
    int i;

    if (disc == NULL) {
        return NULL;
    }
    for (i = 0; i < SLB_DISC_BALANCERS; i++) {
        if (disc[i].key == key) {
            return &disc[i];
        }
    }
    for (i = 0; create && i < SLB_DISC_BALANCERS; i++) {
        if (disc[i].key == 0) {
            memset(&disc[i], 0, sizeof(disc[i]));
            disc[i].key = key;
            apr_cpystrn(disc[i].name, b->s->name, sizeof(disc[i].name));
            return &disc[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* members in httpd                                                     */

/* The member's URL as the core writes it: scheme://host:port. */
static const char *worker_url(apr_pool_t *p, const proxy_worker *w)
{
    const char *h = w->s->hostname_ex[0] ? w->s->hostname_ex
                                          : w->s->hostname;
    const char *why;
    const char *u = apr_psprintf(p, strchr(h, ':') ? "%s://[%s]:%u"
                                                   : "%s://%s:%u",
                                 w->s->scheme, h, (unsigned)w->s->port);
    const char *n = slb_disc_url_norm(p, u, &why, NULL, NULL);

    return n ? n : u;
}

static proxy_worker *worker_of(apr_pool_t *p, proxy_balancer *b,
                               const char *url)
{
    int i;

    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (!strcmp(worker_url(p, w), url)) {
            return w;
        }
    }
    return NULL;
}

/* Set a member's flags as the discovery owns them. */
static void apply_flags(proxy_worker *w, apr_uint32_t owned, int on)
{
    if (owned & SLB_DISC_F_DRAIN) {
        ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG, on, w);
    }
    if (owned & SLB_DISC_F_DISABLE) {
        ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, on, w);
    }
}

/*
 * A member into the next free growth slot of b, as balancer-manager adds
 * one (the caller holds the balancer's global lock at run time); in_child:
 * initialised here (the children initialise the parent's at child_init).
 */
static const char *add_worker(server_rec *s, proxy_server_conf *pc,
                              proxy_balancer *b, const slb_disc_member *m,
                              int in_child, proxy_worker **out)
{
    ap_slotmem_provider_t *storage = b->storage;
    proxy_worker_shared *shm;
    proxy_worker *w = NULL;
    unsigned int index;
    apr_status_t rv;
    char *err;
    apr_time_t now = apr_time_now();

    if (storage == NULL || b->wslot == NULL) {
        return "the balancer has no slot memory";
    }
    if (storage->num_free_slots(b->wslot) == 0) {
        return "no free growth slot";
    }
    err = ap_proxy_define_worker_ex(pc->pool, &w, b, pc, m->url, 0);
    if (err) {
        return err;
    }
    PROXY_COPY_CONF_PARAMS(w, pc);
    if ((rv = storage->grab(b->wslot, &index)) != APR_SUCCESS
        || (rv = storage->dptr(b->wslot, index, (void *)&shm))
               != APR_SUCCESS) {
        apr_array_pop(b->workers);
        return "worker slotmem_grab failed";
    }
    if ((rv = ap_proxy_share_worker(w, shm, index)) != APR_SUCCESS) {
        apr_array_pop(b->workers);
        return "cannot share the member";
    }
    PROXY_STRNCPY(w->s->route, m->route);
    w->s->lbfactor = m->loadfactor * 100;
    if (in_child
        && (rv = ap_proxy_initialize_worker(w, s, pc->pool)) != APR_SUCCESS) {
        return "cannot initialise the member";
    }
    apply_flags(w, m->owned, 1);
    /* every child takes it at its next request (ap_proxy_sync_balancer) */
    b->wupdated = b->s->wupdated = w->s->updated = now;
    *out = w;
    return NULL;
}

static int uses_stickylb(const proxy_balancer *b)
{
    return b && b->s && !strcmp(b->s->lbpname, SLB_LBMETHOD_NAME);
}

/* ------------------------------------------------------------------ */
/* startup: the set of the last generation back into the slots          */

/* the discovering balancers of every server, once each */
typedef struct {
    server_rec *s;
    proxy_server_conf *pc;
    proxy_balancer *b;
    const slb_disc_spec *spec;
    disc_bal_t *rec;
} disc_target;

static apr_array_header_t *disc_targets(apr_pool_t *p, server_rec *s)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(disc_target));
    apr_hash_t *seen = apr_hash_make(p);
    server_rec *sr;

    for (sr = s; sr; sr = sr->next) {
        const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                      &stickylb_module);
        proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                     &proxy_module);
        int i;

        if (pc == NULL || pc->balancers == NULL || sc->discover == NULL) {
            continue;
        }
        for (i = 0; i < pc->balancers->nelts; i++) {
            proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i,
                                               proxy_balancer);
            const slb_disc_spec *sp;
            disc_target *t;

            if (!uses_stickylb(b)
                || apr_hash_get(seen, &b->s, sizeof(b->s))) {
                continue;
            }
            sp = slb_config_discover_spec(sr, b, p);
            if (sp == NULL) {
                continue;
            }
            apr_hash_set(seen, apr_pmemdup(p, &b->s, sizeof(b->s)),
                         sizeof(b->s), "");
            t = apr_array_push(out);
            t->s = sr;
            t->pc = pc;
            t->b = b;
            t->spec = sp;
            t->rec = NULL;
        }
    }
    return out;
}

int slb_discover_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                             server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    apr_shm_t *shm = NULL;
    apr_array_header_t *targets;
    apr_status_t rv;
    int i, j;

    (void)pconf;
    targets = disc_targets(ptemp, s);
    disc_wanted = targets->nelts > 0;
    apr_pool_userdata_get((void **)&shm, DISC_USERDATA_KEY, pproc);
    if (shm == NULL) {
        if (!disc_wanted) {
            disc = NULL;
            return OK;
        }
        rv = apr_shm_create(&shm, sizeof(disc_bal_t) * SLB_DISC_BALANCERS,
                            NULL, pproc);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         SLB_LOG_TAG "SLB0501: cannot create the discovery "
                         "table in shared memory");
            return !OK;
        }
        memset(apr_shm_baseaddr_get(shm), 0,
               sizeof(disc_bal_t) * SLB_DISC_BALANCERS);
        apr_pool_userdata_set(shm, DISC_USERDATA_KEY, apr_pool_cleanup_null,
                              pproc);
    }
    disc = apr_shm_baseaddr_get(shm);
    for (i = 0; i < SLB_DISC_BALANCERS; i++) {
        disc[i].in_use = 0;
    }
    for (i = 0; i < targets->nelts; i++) {
        disc_target *t = &APR_ARRAY_IDX(targets, i, disc_target);
        disc_bal_t *rec = record_of(t->b, 1);
        int restored = 0;

        if (rec == NULL) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         SLB_LOG_TAG "SLB0502: discovery of %s: more than "
                         "%d balancers (each virtual host's copy of an "
                         "inherited one counts) discover members; this one "
                         "does not",
                         t->b->s->name, SLB_DISC_BALANCERS);
            continue;
        }
        rec->in_use = 1;
        t->rec = rec;
        apr_snprintf(rec->source, sizeof(rec->source), "%s %s",
                     t->spec->kind, t->spec->target);
        if (rec->started == 0) {
            rec->started = apr_time_now();
        }
        rec->next_due = 0;       /* asked again at once */
        rec->full_logged = 0;
        /* the members of the last generation, back with their routes */
        for (j = 0; j < SLB_DISC_MEMBERS; j++) {
            slb_disc_member *m = &rec->members[j];
            proxy_worker *w;
            const char *err;

            if (m->state == SLB_DM_FREE) {
                continue;
            }
            if (m->state == SLB_DM_GONE || !m->route[0]) {
                m->state = SLB_DM_FREE;  /* left for good: slot freed */
                continue;
            }
            if (worker_of(ptemp, t->b, m->url)) {
                m->state = SLB_DM_FREE;  /* now a configured member */
                continue;
            }
            err = add_worker(t->s, t->pc, t->b, m, 0, &w);
            if (err) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             SLB_LOG_TAG "SLB0503: discovered member %s "
                             "(route %s) of %s not restored: %s",
                             m->url, m->route, t->b->s->name, err);
                m->state = SLB_DM_FREE;
                continue;
            }
            restored++;
        }
        if (restored) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         SLB_LOG_TAG "SLB0504: %d discovered members of %s "
                         "restored after the restart (%s asked again)",
                         restored, t->b->s->name, rec->source);
        }
    }
    for (i = 0; i < SLB_DISC_BALANCERS; i++) {
        if (disc[i].key && !disc[i].in_use) {
            disc[i].key = 0;     /* no longer discovered */
        }
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* the watchdog                                                         */

static void log_notes(server_rec *s, proxy_balancer *b, disc_bal_t *rec,
                      apr_array_header_t *notes, int changed)
{
    int i;

    for (i = 0; i < notes->nelts; i++) {
        ap_log_error(APLOG_MARK, changed ? APLOG_WARNING : APLOG_DEBUG, 0, s,
                     SLB_LOG_TAG "SLB0505: discovery of %s (%s): entry "
                     "ignored: %s", b->s->name, rec->source,
                     APR_ARRAY_IDX(notes, i, const char *));
    }
}

static void apply(server_rec *s, proxy_server_conf *pc, proxy_balancer *b,
                  disc_bal_t *rec, const slb_disc_conf *c,
                  const slb_disc_action *a, apr_pool_t *pool)
{
    slb_disc_member *m = &rec->members[a->member];
    proxy_worker *w = worker_of(pool, b, m->url);
    const char *err = NULL;
    apr_time_t now = apr_time_now();

    switch (a->kind) {
    case SLB_DA_ADD:
        if (w) {
            /* a worker of that URL without a record: adopted */
            PROXY_STRNCPY(w->s->route, m->route);
            w->s->lbfactor = m->loadfactor * 100;
            ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG, 0, w);
            ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, 0, w);
        }
        else if ((err = add_worker(s, pc, b, m, 1, &w)) != NULL) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         SLB_LOG_TAG "SLB0506: discovered member %s (route "
                         "%s) of %s not added: %s", m->url, m->route,
                         b->s->name, err);
            m->state = SLB_DM_FREE;
            return;
        }
        slb_health_started(b, w, now);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0507: member %s (route %s, loadfactor "
                     "%d) added to %s: discovered (%s)", m->url, m->route,
                     m->loadfactor, b->s->name, m->origin);
        break;
    case SLB_DA_ENABLE:
        if (w) {
            apply_flags(w, a->flags, 0);
            slb_health_started(b, w, now);
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0508: member %s (route %s) of %s is "
                     "back in the discovered set%s", m->url, m->route,
                     b->s->name, m->operator_off
                         ? " (it stays disabled: the operator's)" : "");
        break;
    case SLB_DA_FACTOR:
        if (w) {
            w->s->lbfactor = m->loadfactor * 100;
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0509: member %s of %s: loadfactor %d "
                     "(discovered)", m->url, b->s->name, m->loadfactor);
        break;
    case SLB_DA_ROUTE:
        if (w) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         SLB_LOG_TAG "SLB0510: member %s of %s: route '%s' "
                         "(was '%s', discovered)", m->url, b->s->name,
                         m->route, w->s->route);
            PROXY_STRNCPY(w->s->route, m->route);
        }
        break;
    case SLB_DA_DRAIN:
        if (w) {
            ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG, 1, w);
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0511: member %s (route %s) of %s %s: "
                     "draining (no new sessions; %s%s)",
                     m->url, m->route, b->s->name,
                     m->state == SLB_DM_HELD
                         ? "is back too often (flapping)"
                         : "left the discovered set",
                     m->state == SLB_DM_HELD
                         ? "back once it stayed "
                         : "disabled after grace= ",
                     slb_duration_str(pool, m->state == SLB_DM_HELD
                                                ? c->flap_hold : c->grace));
        break;
    case SLB_DA_DISABLE:
        if (w) {
            ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, 1, w);
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SLB_LOG_TAG "SLB0512: member %s (route %s) of %s: "
                     "grace over, disabled", m->url, m->route, b->s->name);
        break;
    }
    rec->changes++;
}

static void run_one(disc_target *t, apr_pool_t *pool)
{
    server_rec *s = t->s;
    proxy_balancer *b = t->b;
    disc_bal_t *rec = t->rec;
    const slb_disc_spec *sp = t->spec;
    apr_array_header_t *entries = NULL, *fixed, *actions, *notes;
    slb_disc_counts counts;
    slb_disc_result r;
    apr_interval_time_t ttl = 0;
    const char *err = NULL;
    int malformed = 0, free_slots, i, j;
    apr_time_t now;

    r = sp->ops->fetch(sp->state, pool, sp->conf.wait, &entries, &malformed,
                       &ttl, &err);
    now = apr_time_now();
    rec->fetches++;
    rec->last_fetch = now;
    if (r == SLB_DISC_FAILED) {
        rec->failures++;
        rec->errors++;
        rec->last_error_at = now;
        apr_cpystrn(rec->last_error, err ? err : "failed",
                    sizeof(rec->last_error));
        ap_log_error(APLOG_MARK,
                     rec->failures == 1 ? APLOG_WARNING : APLOG_DEBUG, 0, s,
                     SLB_LOG_TAG "SLB0513: discovery of %s (%s) failed: %s; "
                     "the members stay as they are (failure %u, next try "
                     "in %s)", b->s->name, rec->source, rec->last_error,
                     rec->failures,
                     slb_duration_str(pool, slb_disc_next(&sp->conf, r, 0,
                                                          (int)rec->failures)));
        entries = NULL;
    }
    else {
        if (rec->failures) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         SLB_LOG_TAG "SLB0514: discovery of %s (%s) answers "
                         "again after %u failures", b->s->name, rec->source,
                         rec->failures);
        }
        rec->failures = 0;
        rec->last_sync = now;
        if (r != SLB_DISC_OK) {
            entries = NULL;
        }
    }
    rec->next_due = now + slb_disc_next(&sp->conf, r, ttl,
                                        (int)rec->failures);

    actions = apr_array_make(pool, 8, sizeof(slb_disc_action));
    notes = apr_array_make(pool, 4, sizeof(const char *));
    fixed = apr_array_make(pool, 8, sizeof(slb_disc_entry));

    if (PROXY_THREAD_LOCK(b) != APR_SUCCESS) {
        return;
    }
    if (PROXY_GLOBAL_LOCK(b) != APR_SUCCESS) {
        PROXY_THREAD_UNLOCK(b);
        return;
    }
    ap_proxy_sync_balancer(b, s, t->pc);
    /* the configured members (and any balancer-manager added) */
    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        const char *u = worker_url(pool, w);
        slb_disc_entry *f;

        for (j = 0; j < SLB_DISC_MEMBERS; j++) {
            if (rec->members[j].state != SLB_DM_FREE
                && !strcmp(rec->members[j].url, u)) {
                break;
            }
        }
        if (j < SLB_DISC_MEMBERS) {
            /* ours: what the operator changed since */
            slb_disc_member *m = &rec->members[j];
            if (!PROXY_WORKER_IS_DRAINING(w)) {
                m->owned &= ~SLB_DISC_F_DRAIN;
            }
            if (!PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED)) {
                m->owned &= ~SLB_DISC_F_DISABLE;
            }
            m->operator_off =
                PROXY_WORKER_IS(w, PROXY_WORKER_STOPPED)
                || (PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED)
                    && !(m->owned & SLB_DISC_F_DISABLE));
            continue;
        }
        f = apr_array_push(fixed);
        memset(f, 0, sizeof(*f));
        f->url = u;
        f->route = w->s->route;
    }
    /* a member of the set without a worker (not restored): again */
    for (j = 0; j < SLB_DISC_MEMBERS; j++) {
        slb_disc_member *m = &rec->members[j];
        if (m->state != SLB_DM_FREE && !worker_of(pool, b, m->url)) {
            m->state = SLB_DM_FREE;
        }
    }
    free_slots = b->storage && b->wslot
                     ? (int)b->storage->num_free_slots(b->wslot) : 0;
    slb_disc_plan(pool, &sp->conf, rec->members, SLB_DISC_MEMBERS, entries,
                  fixed, free_slots, now, actions, &counts, notes);
    for (i = 0; i < actions->nelts; i++) {
        apply(s, t->pc, b, rec, &sp->conf,
              &APR_ARRAY_IDX(actions, i, slb_disc_action), pool);
    }
    rec->slots_free = b->storage && b->wslot
                          ? b->storage->num_free_slots(b->wslot) : 0;
    PROXY_GLOBAL_UNLOCK(b);
    PROXY_THREAD_UNLOCK(b);

    if (entries) {
        int total = malformed + counts.malformed;
        log_notes(s, b, rec, notes, (apr_uint32_t)total != rec->malformed);
        if (malformed > 0 && (apr_uint32_t)total != rec->malformed) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         SLB_LOG_TAG "SLB0515: discovery of %s (%s): %d "
                         "records the source could not read were ignored",
                         b->s->name, rec->source, malformed);
        }
        rec->malformed = (apr_uint32_t)total;
        rec->malformed_total += (apr_uint64_t)total;
        rec->waiting = (apr_uint32_t)counts.full;
        if (counts.full > 0) {
            rec->full_rounds++;
            if (!rec->full_logged) {
                rec->full_logged = 1;
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             SLB_LOG_TAG "SLB0516: discovery of %s (%s): "
                             "the growth slots are full, %d discovered "
                             "members not added (raise \"ProxySet "
                             "growth=N\"; said once until slots are free)",
                             b->s->name, rec->source, counts.full);
            }
        }
        else {
            rec->full_logged = 0;
        }
    }
}

static apr_status_t disc_tick(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    static apr_array_header_t *targets = NULL;
    static apr_pool_t *tpool = NULL;
    apr_time_t now = apr_time_now();
    int i;

    if (state == AP_WATCHDOG_STATE_STOPPING) {
        targets = NULL;
        if (tpool) {
            apr_pool_destroy(tpool);
            tpool = NULL;
        }
        return APR_SUCCESS;
    }
    if (state != AP_WATCHDOG_STATE_RUNNING || disc == NULL) {
        return APR_SUCCESS;
    }
    if (targets == NULL) {
        apr_pool_create(&tpool, s->process->pool);
        targets = disc_targets(tpool, s);
        for (i = 0; i < targets->nelts; i++) {
            disc_target *t = &APR_ARRAY_IDX(targets, i, disc_target);
            t->rec = record_of(t->b, 0);
        }
    }
    for (i = 0; i < targets->nelts; i++) {
        disc_target *t = &APR_ARRAY_IDX(targets, i, disc_target);
        apr_pool_t *p;

        if (t->rec == NULL || t->rec->next_due > now) {
            continue;
        }
        apr_pool_create(&p, pool);
        run_one(t, p);
        apr_pool_destroy(p);
    }
    return APR_SUCCESS;
}

void slb_discover_register_hooks(apr_pool_t *p)
{
    (void)p;
    slb_watchdog_need(DISC_WATCHDOG, &disc_wanted);
}

int slb_discover_watchdog(apr_pool_t *pconf, server_rec *s)
{
    static const char *const why[3] = {
        "SLB0517: StickyLBDiscover needs mod_watchdog (sources are asked "
        "on it)",
        "SLB0518: cannot set up the discovery watchdog",
        "SLB0518: cannot set up the discovery watchdog"
    };

    if (!disc_wanted) {
        return OK;
    }
    return slb_watchdog_start(pconf, s, DISC_WATCHDOG, DISC_TICK, s,
                              disc_tick, why);
}

/* ------------------------------------------------------------------ */
/* configtest                                                           */

const char *slb_discover_check(server_rec *sr, apr_pool_t *ptemp)
{
    proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                 &proxy_module);
    int i;

    if (pc == NULL || pc->balancers == NULL) {
        return NULL;
    }
    for (i = 0; i < pc->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i, proxy_balancer);
        const slb_disc_spec *sp = slb_config_discover_spec(sr, b, ptemp);

        if (sp == NULL || !uses_stickylb(b)) {
            continue;
        }
        if (b->growth <= 0) {
            return apr_psprintf(ptemp, "StickyLBDiscover %s %s in <Proxy "
                                "\"%s\">: the balancer has no growth slots "
                                "for the members it discovers: add "
                                "\"ProxySet growth=N\" (N: how many members "
                                "the source may add, at most %d)",
                                sp->kind, sp->target, b->s->name,
                                SLB_DISC_MEMBERS);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* the status page                                                      */

int slb_discover_balancer_view(const proxy_balancer *b,
                               slb_discover_bview *v)
{
    disc_bal_t *rec = disc ? record_of(b, 0) : NULL;
    int j;

    memset(v, 0, sizeof(*v));
    if (rec == NULL || !rec->in_use) {
        return 0;
    }
    v->source = rec->source;
    v->started = rec->started;
    v->last_fetch = rec->last_fetch;
    v->last_sync = rec->last_sync;
    v->last_error_at = rec->last_error_at;
    v->last_error = rec->last_error;
    v->failures = rec->failures;
    v->fetches = rec->fetches;
    v->errors = rec->errors;
    v->malformed = rec->malformed;
    v->malformed_total = rec->malformed_total;
    v->waiting = rec->waiting;
    v->full_rounds = rec->full_rounds;
    v->slots_free = rec->slots_free;
    v->changes = rec->changes;
    v->next_due = rec->next_due;
    for (j = 0; j < SLB_DISC_MEMBERS; j++) {
        if (rec->members[j].state != SLB_DM_FREE) {
            v->members++;
        }
    }
    return 1;
}

int slb_discover_member_view(apr_pool_t *p, const proxy_balancer *b,
                             const proxy_worker *w, slb_discover_mview *v)
{
    disc_bal_t *rec = disc ? record_of(b, 0) : NULL;
    const char *u;
    int j;

    memset(v, 0, sizeof(*v));
    if (rec == NULL || !rec->in_use) {
        return 0;
    }
    u = worker_url(p, w);
    for (j = 0; j < SLB_DISC_MEMBERS; j++) {
        const slb_disc_member *m = &rec->members[j];
        if (m->state != SLB_DM_FREE && !strcmp(m->url, u)) {
            v->discovered = 1;
            v->state = slb_dm_state_name((slb_dm_state)m->state);
            v->origin = apr_pstrdup(p, m->origin);
            v->added = m->added;
            v->since = m->since;
            v->seen = m->seen;
            v->source = rec->source;
            return 1;
        }
    }
    return 0;
}
