/*
 * stickylb_passive.c - passive marking's decisions (see stickylb_passive.h).
 * APR only; tests/unit/check_passive.c drives it with its own clock.
 */
#include "stickylb_passive.h"

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_RELAXED)

void slb_passive_conf_init(slb_passive_conf *c)
{
    c->fall = SLB_PASSIVE_DEFAULT_FALL;
    c->ratio = 0;
    c->window = SLB_PASSIVE_DEFAULT_WINDOW;
    c->min_requests = SLB_PASSIVE_DEFAULT_MIN_REQUESTS;
    c->min_clients = 1;
    c->max_ejected = SLB_PASSIVE_DEFAULT_MAX_EJECTED;
    c->eject = 0;
    c->eject_max = SLB_PASSIVE_DEFAULT_EJECT_MAX;
}

apr_uint32_t slb_passive_client_hash(const char *addr)
{
    apr_uint32_t h = 2166136261u;    /* FNV-1a */

    for (; addr && *addr; addr++) {
        h ^= (unsigned char)*addr;
        h *= 16777619u;
    }
    return h ? h : 1;
}

static apr_interval_time_t window_us(const slb_passive_conf *c)
{
    return apr_time_from_sec(c->window > 0 ? c->window : 1);
}

/* the bucket of `epoch`, emptied when it held an older one */
static slb_passive_bucket *bucket_of(slb_passive_state *s,
                                     apr_uint64_t epoch)
{
    slb_passive_bucket *b = &s->bucket[epoch & 1];
    apr_uint64_t old = LOAD(b->epoch);

    if (old != epoch
        && __atomic_compare_exchange_n(&b->epoch, &old, epoch, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        int i;
        STORE(b->requests, 0);
        STORE(b->failures, 0);
        for (i = 0; i < SLB_PASSIVE_CLIENTS; i++) {
            STORE(b->clients[i], 0);
        }
    }
    return b;
}

static void add_client(slb_passive_bucket *b, apr_uint32_t client)
{
    int i;

    for (i = 0; i < SLB_PASSIVE_CLIENTS; i++) {
        apr_uint32_t v = LOAD(b->clients[i]);
        if (v == client) {
            return;
        }
        if (v == 0) {
            if (__atomic_compare_exchange_n(&b->clients[i], &v, client, 0,
                                            __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED)
                || v == client) {
                return;
            }
        }
    }
    /* full: SLB_PASSIVE_CLIENTS distinct ones already */
}

void slb_passive_window(const slb_passive_state *s,
                        const slb_passive_conf *c, apr_time_t now,
                        slb_passive_view *v)
{
    apr_interval_time_t w = window_us(c);
    apr_uint64_t epoch = (apr_uint64_t)(now / w) + 1;
    const slb_passive_bucket *cur = &s->bucket[epoch & 1];
    const slb_passive_bucket *prev = &s->bucket[(epoch - 1) & 1];
    apr_uint64_t weight = 0;     /* per mille of prev still in the window */
    apr_uint32_t seen[2 * SLB_PASSIVE_CLIENTS];
    int n = 0, i, j, k;

    v->requests = v->failures = v->clients = 0;
    if (LOAD(cur->epoch) == epoch) {
        v->requests = LOAD(cur->requests);
        v->failures = LOAD(cur->failures);
    }
    else {
        cur = NULL;
    }
    if (LOAD(prev->epoch) == epoch - 1) {
        weight = (apr_uint64_t)(w - now % w) * 1000 / (apr_uint64_t)w;
        v->requests += (apr_uint32_t)((LOAD(prev->requests) * weight + 500)
                                      / 1000);
        v->failures += (apr_uint32_t)((LOAD(prev->failures) * weight + 500)
                                      / 1000);
    }
    else {
        prev = NULL;
    }
    for (k = 0; k < 2; k++) {
        const slb_passive_bucket *b = k == 0 ? cur : prev;
        for (i = 0; b && i < SLB_PASSIVE_CLIENTS; i++) {
            apr_uint32_t h = LOAD(b->clients[i]);
            if (h == 0) {
                continue;
            }
            for (j = 0; j < n && seen[j] != h; j++) {
            }
            if (j == n) {
                seen[n++] = h;
            }
        }
    }
    v->clients = (apr_uint32_t)n;
}

int slb_passive_ejected(const slb_passive_state *s, apr_time_t now)
{
    return LOAD(s->eject_until) > now;
}

static void not_due(slb_passive_state *s)
{
    if (LOAD(s->held)) {
        STORE(s->held, 0);
    }
}

int slb_passive_record(slb_passive_state *s, const slb_passive_conf *c,
                       int failed, apr_uint32_t client, apr_time_t now)
{
    slb_passive_view v;
    slb_passive_bucket *b;

    if (c->ratio <= 0) {
        if (!failed) {
            if (LOAD(s->consecutive)) {
                STORE(s->consecutive, 0);
            }
            not_due(s);
            return 0;
        }
        if (ADD(s->consecutive, 1) < (apr_uint32_t)c->fall
            || slb_passive_ejected(s, now)) {
            return 0;
        }
        return 1;
    }
    b = bucket_of(s, (apr_uint64_t)(now / window_us(c)) + 1);
    ADD(b->requests, 1);
    if (!failed) {
        not_due(s);
        return 0;
    }
    ADD(b->failures, 1);
    if (c->min_clients > 1) {
        add_client(b, client ? client : 1);
    }
    if (slb_passive_ejected(s, now)) {
        return 0;
    }
    slb_passive_window(s, c, now, &v);
    if (v.requests < (apr_uint32_t)c->min_requests
        || (apr_uint64_t)v.failures * 100
               < (apr_uint64_t)c->ratio * v.requests
        || (c->min_clients > 1 && v.clients < (apr_uint32_t)c->min_clients)) {
        not_due(s);
        return 0;
    }
    return 1;
}

int slb_passive_may_eject(const slb_passive_conf *c, int members,
                          int ejected, int usable)
{
    int allowed;

    if (usable <= 1) {
        return 0;                /* never the last usable member */
    }
    allowed = (int)((apr_int64_t)c->max_ejected * members / 100);
    if (allowed < 1 && members >= 2) {
        allowed = 1;
    }
    return ejected < allowed;
}

int slb_passive_hold(slb_passive_state *s)
{
    apr_uint32_t zero = 0;

    return __atomic_compare_exchange_n(&s->held, &zero, 1, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

apr_interval_time_t slb_passive_eject(slb_passive_state *s,
                                      const slb_passive_conf *c,
                                      apr_interval_time_t retry,
                                      apr_time_t now)
{
    apr_time_t last = LOAD(s->eject_until);
    apr_interval_time_t len, cap;
    apr_uint32_t repeats;
    int i;

    if (last > now) {
        return 0;                /* ejected already */
    }
    repeats = LOAD(s->repeats);
    cap = apr_time_from_sec(c->eject_max);
    if (last == 0 || now - last >= cap) {
        repeats = 0;             /* healthy for a while: starts over */
    }
    if (c->eject > 0) {
        len = apr_time_from_sec(c->eject);
        for (i = 0; i < (int)repeats && len < cap; i++) {
            len *= 2;
        }
        if (len > cap) {
            len = cap;
        }
    }
    else {
        len = retry > 0 ? retry : 1;     /* mod_proxy's retry=, as is */
    }
    if (!__atomic_compare_exchange_n(&s->eject_until, &last, now + len, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        return 0;                /* another thread won */
    }
    STORE(s->repeats, repeats + 1);
    STORE(s->consecutive, 0);
    STORE(s->held, 0);
    /* a fresh window: the failures that ejected it are not counted again
     * when it is back */
    STORE(s->bucket[0].epoch, 0);
    STORE(s->bucket[1].epoch, 0);
    return len;
}
