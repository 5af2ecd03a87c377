/*
 * stickylb_tier.c - a local store in front of a remote one (slb_tier, see
 * stickylb_store.h): the policy of the memcached store with the embedded
 * table as its cache, independent of both (tests/unit/check_tier.c runs
 * it against the real table and a fake remote store with injected
 * failures).  APR only.
 */
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "stickylb_store.h"

#define COUNT(t, field)                                                    \
    do {                                                                   \
        if ((t)->ctr) {                                                    \
            __atomic_fetch_add(&(t)->ctr->field, 1, __ATOMIC_RELAXED);     \
        }                                                                  \
    } while (0)

static void failed(const slb_tier *t, apr_status_t rv, const char *op,
                   int remote)
{
    if (remote) {
        COUNT(t, remote_errors);
    }
    else {
        COUNT(t, local_errors);
    }
    if (t->error) {
        t->error(t->baton, rv, op);
    }
}

static void copy_route(char *out, const char *route)
{
    if (out) {
        slb_route_copy(out, route, SLB_MAX_ROUTE_LEN + 1);
    }
}

static void make_binding(slb_binding *b, const char *route, apr_time_t now)
{
    memset(b, 0, sizeof(*b));
    apr_cpystrn(b->route, route, sizeof(b->route));
    b->created = now;
}

/* the local copy of a binding (a cache write: its failure is counted,
 * the answer stands) */
static void cache(const slb_tier *t, slb_skey *k, const slb_binding *b,
                  const slb_lifetime *lt, apr_time_t now)
{
    apr_status_t rv = t->local.ops->set(t->local.ctx, k, b, lt, now);

    if (rv != APR_SUCCESS) {
        failed(t, rv, "cache write", 0);
    }
}

/* a route of the remote store this balancer can send a session to */
static int known(const slb_tier *t, const slb_skey *k, const char *route)
{
    if (t->route_known == NULL || k->scope == NULL
        || t->route_known(k->scope, route)) {
        return 1;
    }
    COUNT(t, unknown_routes);
    return 0;
}

/* a binding of the remote store past the balancer's maximum lifetime */
static int too_old(const slb_binding *b, const slb_lifetime *lt,
                   apr_time_t now)
{
    return lt->max && b->created > 0
           && now - b->created > apr_time_from_sec(lt->max);
}

/* ------------------------------------------------------------------ */
/* deferred remote writes (slb_tier_pending)                            */

#define PENDING_RETRY apr_time_from_msec(100)
#define PENDING_PER_CALL 16

typedef struct {
    const char *ns;
    const void *scope;
    const slb_lifetime *lt;
    slb_binding b;
    int repin;                    /* written with set, not add */
    apr_size_t len;
    char id[SLB_PENDING_ID_MAX];
} pending_item;

struct slb_tier_pending {
    apr_thread_mutex_t *lock;     /* guards the ring */
    pending_item *ring;
    int max, head, n;
    volatile apr_uint32_t waiting; /* n, read without the lock */
    volatile apr_int64_t next_try; /* apr_time_t */
};

slb_tier_pending *slb_tier_pending_make(apr_pool_t *p, int max)
{
    slb_tier_pending *q;

    if (max <= 0) {
        return NULL;
    }
    q = apr_pcalloc(p, sizeof(*q));
    q->ring = apr_pcalloc(p, sizeof(pending_item) * (apr_size_t)max);
    q->max = max;
    if (apr_thread_mutex_create(&q->lock, APR_THREAD_MUTEX_DEFAULT, p)
        != APR_SUCCESS) {
        return NULL;
    }
    return q;
}

int slb_tier_pending_count(const slb_tier_pending *q)
{
    return q ? (int)__atomic_load_n(&q->waiting, __ATOMIC_RELAXED) : 0;
}

/* keep b of k to write again (the oldest dropped when full) */
static void defer(const slb_tier *t, const slb_skey *k,
                  const slb_binding *b, const slb_lifetime *lt,
                  apr_time_t now, int repin)
{
    slb_tier_pending *q = t->pending;
    pending_item *it;

    if (q == NULL || k->len == 0 || k->len > SLB_PENDING_ID_MAX) {
        return;
    }
    apr_thread_mutex_lock(q->lock);
    if (q->n == q->max) {
        q->head = (q->head + 1) % q->max;
        q->n--;
        COUNT(t, deferred_dropped);
    }
    it = &q->ring[(q->head + q->n) % q->max];
    it->ns = k->ns;
    it->scope = k->scope;
    it->lt = lt;
    it->b = *b;
    it->repin = repin;
    it->len = k->len;
    memcpy(it->id, k->id, k->len);
    q->n++;
    if (q->n == 1) {
        __atomic_store_n(&q->next_try, (apr_int64_t)(now + PENDING_RETRY),
                         __ATOMIC_RELAXED);
    }
    __atomic_store_n(&q->waiting, (apr_uint32_t)q->n, __ATOMIC_RELAXED);
    apr_thread_mutex_unlock(q->lock);
    COUNT(t, deferred);
}

/*
 * Write the kept bindings again, when a retry is due: add (a binding
 * another balancer made meanwhile wins, and is cached here when it names
 * a member), or set for a re-pin; one past the maximum lifetime is dropped.  The first failure
 * ends the round, the next in PENDING_RETRY.  One thread at a time (the
 * others go on at once).  The cost when nothing waits: one load.
 */
static void flush_pending(const slb_tier *t, apr_time_t now)
{
    slb_tier_pending *q = t->pending;
    int done = 0;

    if (q == NULL || __atomic_load_n(&q->waiting, __ATOMIC_RELAXED) == 0
        || now < (apr_time_t)__atomic_load_n(&q->next_try,
                                              __ATOMIC_RELAXED)
        || apr_thread_mutex_trylock(q->lock) != APR_SUCCESS) {
        return;
    }
    while (q->n > 0 && done < PENDING_PER_CALL) {
        pending_item it = q->ring[q->head];
        slb_binding cur;
        slb_skey k;
        apr_status_t rv;

        if (too_old(&it.b, it.lt, now)) {
            q->head = (q->head + 1) % q->max;
            q->n--;
            COUNT(t, deferred_dropped);
            continue;
        }
        slb_skey_init(&k, it.ns, it.id, it.len);
        k.scope = it.scope;
        rv = it.repin
                 ? t->remote.ops->set(t->remote.ctx, &k, &it.b, it.lt, now)
                 : t->remote.ops->add(t->remote.ctx, &k, &it.b, it.lt, now,
                                      &cur);
        if (rv != APR_SUCCESS && rv != APR_EEXIST) {
            failed(t, rv, "deferred remote write", 1);
            __atomic_store_n(&q->next_try,
                             (apr_int64_t)(now + PENDING_RETRY),
                             __ATOMIC_RELAXED);
            break;
        }
        if (rv == APR_EEXIST && strcmp(cur.route, it.b.route) != 0
            && known(t, &k, cur.route)) {
            COUNT(t, adopted);
            cache(t, &k, &cur, it.lt, now);
        }
        COUNT(t, deferred_written);
        q->head = (q->head + 1) % q->max;
        q->n--;
        done++;
    }
    __atomic_store_n(&q->waiting, (apr_uint32_t)q->n, __ATOMIC_RELAXED);
    apr_thread_mutex_unlock(q->lock);
}


apr_status_t slb_tier_get(const slb_tier *t, slb_skey *k,
                          const slb_lifetime *lt, apr_time_t now,
                          char *route_out)
{
    slb_binding cached, b;
    apr_uint32_t age = 0, rage = 0;
    apr_status_t lrv, rrv;
    int have_cached;

    lrv = t->local.ops->get(t->local.ctx, k, lt, now, &cached, &age);
    have_cached = lrv == APR_SUCCESS && cached.route[0] != '\0';
    if (lrv != APR_SUCCESS && lrv != APR_NOTFOUND) {
        failed(t, lrv, "lookup", 0);
    }
    if (t->remote.ops == NULL) {
        if (have_cached) {
            COUNT(t, local_hits);
            copy_route(route_out, cached.route);
            return APR_SUCCESS;
        }
        return APR_NOTFOUND;
    }
    if (t->pending) {
        flush_pending(t, now);
    }
    if (have_cached && age < t->validity_s) {
        COUNT(t, local_hits);
        copy_route(route_out, cached.route);
        return APR_SUCCESS;
    }
    COUNT(t, remote_gets);
    rrv = t->remote.ops->get(t->remote.ctx, k, lt, now, &b, &rage);
    if (rrv == APR_SUCCESS && too_old(&b, lt, now)) {
        COUNT(t, expired);
        t->remote.ops->del(t->remote.ctx, k);
        t->local.ops->del(t->local.ctx, k);
        return APR_NOTFOUND;
    }
    if (rrv == APR_SUCCESS && !known(t, k, b.route)) {
        /* names no member of this balancer: a miss, nothing cached */
        if (have_cached) {
            copy_route(route_out, cached.route);
            return APR_SUCCESS;
        }
        return APR_NOTFOUND;
    }
    if (rrv == APR_SUCCESS) {
        COUNT(t, remote_hits);
        cache(t, k, &b, lt, now);
        if (t->remote.ops->touch) {
            apr_status_t trv = t->remote.ops->touch(t->remote.ctx, k, lt);
            if (trv != APR_SUCCESS && trv != APR_NOTFOUND) {
                failed(t, trv, "touch", 1);
            }
        }
        copy_route(route_out, b.route);
        return APR_SUCCESS;
    }
    if (rrv == APR_NOTFOUND) {
        COUNT(t, remote_misses);
        if (!have_cached) {
            return APR_NOTFOUND;
        }
        /* the remote store lost it (restarted, evicted): publish the
         * local copy again; a binding another balancer added meanwhile
         * wins */
        make_binding(&b, cached.route, now);
        rrv = t->remote.ops->add(t->remote.ctx, k, &b, lt, now, &b);
        if (rrv == APR_SUCCESS || rrv == APR_EEXIST) {
            COUNT(t, republished);
        }
        else {
            failed(t, rrv, "re-publish", 1);
        }
        if (rrv == APR_EEXIST && !known(t, k, b.route)) {
            make_binding(&b, cached.route, now);   /* ours stays here */
        }
        cache(t, k, &b, lt, now);
        copy_route(route_out, b.route);
        return APR_SUCCESS;
    }
    failed(t, rrv, "remote lookup", 1);
    if (have_cached) {
        /* the remote store is unreachable: the session stays where it
         * was */
        COUNT(t, stale_served);
        copy_route(route_out, cached.route);
        return APR_SUCCESS;
    }
    return APR_NOTFOUND;
}

/* without a remote store: the local store is the stick table */
static apr_status_t local_put(const slb_tier *t, slb_skey *k,
                              const slb_binding *b, const slb_lifetime *lt,
                              slb_put_mode mode, apr_time_t now,
                              char *existing_out)
{
    slb_binding cur;
    apr_status_t rv;

    if (mode == SLB_PUT_REPIN) {
        rv = t->local.ops->set(t->local.ctx, k, b, lt, now);
    }
    else {
        rv = t->local.ops->add(t->local.ctx, k, b, lt, now, &cur);
        if (rv == APR_EEXIST) {
            copy_route(existing_out, cur.route);
        }
    }
    if (rv != APR_SUCCESS && rv != APR_EEXIST) {
        failed(t, rv, rv == APR_ENOSPC ? "route registration" : "write", 0);
    }
    return rv;
}

apr_status_t slb_tier_put(const slb_tier *t, slb_skey *k, const char *route,
                          const slb_lifetime *lt, slb_put_mode mode,
                          const char *previous, apr_time_t now,
                          char *existing_out)
{
    slb_binding b, cur;
    apr_uint32_t age;
    apr_status_t rv;

    make_binding(&b, route, now);
    if (t->remote.ops == NULL) {
        return local_put(t, k, &b, lt, mode, now, existing_out);
    }
    if (t->pending) {
        flush_pending(t, now);
    }
    if (mode == SLB_PUT_LEARN
        && t->local.ops->get(t->local.ctx, k, lt, now, &cur, &age)
               == APR_SUCCESS
        && cur.route[0]) {
        /* learned here before: only new bindings are written */
        copy_route(existing_out, cur.route);
        return APR_EEXIST;
    }
    if (mode == SLB_PUT_LEARN && t->learn_nowait) {
        /* an id one member issued: no agreement to reach, a set does;
         * bound here at once, written without waiting for an answer */
        cache(t, k, &b, lt, now);
        rv = t->remote.ops->set_nowait
                 ? t->remote.ops->set_nowait(t->remote.ctx, k, &b, lt, now)
                 : t->remote.ops->set(t->remote.ctx, k, &b, lt, now);
        if (rv != APR_SUCCESS) {
            failed(t, rv, rv == APR_ENOSPC ? "remote write (queue full)"
                                           : "remote write", 1);
            defer(t, k, &b, lt, now, 0);
        }
        return APR_SUCCESS;
    }
    if (mode != SLB_PUT_REPIN) {
        rv = t->remote.ops->add(t->remote.ctx, k, &b, lt, now, &cur);
        if (rv == APR_EEXIST && !known(t, k, cur.route)) {
            /* the winner names no member here: this balancer keeps its
             * own binding locally */
            cache(t, k, &b, lt, now);
            return APR_SUCCESS;
        }
        if (rv == APR_EEXIST) {
            /* another balancer bound it first: its binding wins */
            COUNT(t, adopted);
            cache(t, k, &cur, lt, now);
            copy_route(existing_out, cur.route);
            return APR_EEXIST;
        }
    }
    else {
        apr_uint32_t rage;
        rv = t->remote.ops->get(t->remote.ctx, k, lt, now, &cur, &rage);
        if (rv == APR_SUCCESS && previous && strcmp(cur.route, previous)
            && strcmp(cur.route, route) && known(t, k, cur.route)) {
            /* re-pinned elsewhere already: adopt, do not overwrite */
            COUNT(t, adopted);
            cache(t, k, &cur, lt, now);
            copy_route(existing_out, cur.route);
            return APR_EEXIST;
        }
        rv = t->remote.ops->set(t->remote.ctx, k, &b, lt, now);
    }
    if (rv != APR_SUCCESS) {
        failed(t, rv, "remote write", 1);
        defer(t, k, &b, lt, now, mode == SLB_PUT_REPIN);
    }
    /* the local copy is kept either way: sessions stay sticky here */
    cache(t, k, &b, lt, now);
    return APR_SUCCESS;
}

void slb_tier_counters_read(const slb_tier_counters *shared,
                            slb_tier_counters *out)
{
    /* every field is an apr_uint64_t */
    const apr_uint64_t *src = (const apr_uint64_t *)(const void *)shared;
    apr_uint64_t *dst = (apr_uint64_t *)(void *)out;
    apr_size_t i;

    for (i = 0; i < sizeof(*out) / sizeof(apr_uint64_t); i++) {
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}

apr_status_t slb_tier_del(const slb_tier *t, slb_skey *k)
{
    apr_status_t rv;

    if (t->remote.ops) {
        rv = t->remote.ops->del(t->remote.ctx, k);
        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            failed(t, rv, "remote delete", 1);
        }
    }
    rv = t->local.ops->del(t->local.ctx, k);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        failed(t, rv, "delete", 0);
    }
    return rv;
}
