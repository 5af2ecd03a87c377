/*
 * stickylb_select.c - member selection (APR only, no I/O).
 */
#include <math.h>
#include <string.h>

#include "stickylb_select.h"

const char *slb_decision_name(slb_decision_kind k)
{
    switch (k) {
    case SLB_DECIDE_STICKY:   return "sticky";
    case SLB_DECIDE_REDIRECT: return "redirect";
    case SLB_DECIDE_FAILOVER: return "failover";
    case SLB_DECIDE_REFUSE:   return "refused";
    default:                  return "new";
    }
}

static unsigned usable_after_retry(const slb_member_ops *ops, void *ctx,
                                   int i)
{
    unsigned st = ops->state(ctx, i);

    if (!(st & SLB_M_USABLE) && (st & SLB_M_IN_ERROR) && ops->retry) {
        st = ops->retry(ctx, i);
    }
    return st & SLB_M_USABLE;
}

/* Routes already expanded while following redirects: each route is looked
 * at once, so loops end and duplicate routes cost no more than O(n^2). */
typedef struct {
    const char **routes;
    int n;
    int max;
} visited_set;

static int visit(visited_set *v, const char *route)
{
    int i;

    for (i = 0; i < v->n; i++) {
        if (strcmp(v->routes[i], route) == 0) {
            return 0;
        }
    }
    if (v->n >= v->max) {
        return 0;
    }
    v->routes[v->n++] = route;
    return 1;
}

static int find_route_visit(const slb_member_ops *ops, void *ctx,
                            const char *route, visited_set *v,
                            int *redirected, int *known)
{
    int n = ops->count(ctx);
    int pass, i;

    if (route == NULL || *route == '\0' || !visit(v, route)) {
        return -1;
    }
    /* pass 0: regular members, pass 1: hot standbys */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < n; i++) {
            const char *r = ops->route(ctx, i);
            const char *redir;
            unsigned st;

            /* the route first: the state only of the members that have it */
            if (r == NULL || r[0] != route[0] || strcmp(r, route) != 0) {
                continue;
            }
            st = ops->state(ctx, i);
            if (((st & SLB_M_STANDBY) != 0) != (pass == 1)) {
                continue;
            }
            *known = 1;
            if (usable_after_retry(ops, ctx, i)) {
                return i;
            }
            redir = ops->redirect ? ops->redirect(ctx, i) : NULL;
            if (redir && *redir) {
                int dummy_known = 0;
                int j = find_route_visit(ops, ctx, redir, v, redirected,
                                         &dummy_known);
                if (j >= 0) {
                    *redirected = 1;
                    return j;
                }
            }
        }
    }
    return -1;
}

int slb_find_route(const slb_member_ops *ops, void *ctx, const char *route,
                   int *redirected, int *known)
{
    const char *stack_routes[64];
    visited_set v;
    int n = ops->count(ctx);

    *redirected = 0;
    *known = 0;
    v.n = 0;
    v.routes = stack_routes;
    /* at most one distinct route per member, plus the one asked for */
    v.max = n + 1 < 64 ? n + 1 : 64;
    return find_route_visit(ops, ctx, route, &v, redirected, known);
}

slb_decision slb_decide(const slb_member_ops *ops, void *ctx,
                        const apr_array_header_t *candidates,
                        int nofailover)
{
    slb_decision d;
    int c;

    d.kind = SLB_DECIDE_NEW;
    d.member = -1;
    d.candidate = -1;
    d.route = NULL;
    if (candidates == NULL) {
        return d;
    }
    for (c = 0; c < candidates->nelts; c++) {
        const slb_candidate *cand = &APR_ARRAY_IDX(candidates, c,
                                                   slb_candidate);
        int redirected = 0, known = 0;
        int i = slb_find_route(ops, ctx, cand->route, &redirected, &known);

        if (!known) {
            continue;   /* a route no member has: look further */
        }
        d.candidate = c;
        d.route = cand->route;
        if (i >= 0) {
            d.kind = redirected ? SLB_DECIDE_REDIRECT : SLB_DECIDE_STICKY;
            d.member = i;
        }
        else {
            d.kind = nofailover ? SLB_DECIDE_REFUSE : SLB_DECIDE_FAILOVER;
        }
        return d;
    }
    return d;
}

/* A member of the lbset offered after the regular ones: usable, not
 * draining, a spare (mod_proxy: a spare even when also marked standby) or
 * a standby that is no spare.  Its retry ran in the first pass. */
static int late_member(unsigned st, int lbset, unsigned kind)
{
    if (SLB_M_LBSET(st) != lbset || (st & SLB_M_DRAINING)
        || !(st & SLB_M_USABLE)) {
        return 0;
    }
    return kind == SLB_M_SPARE
               ? (st & SLB_M_SPARE) != 0
               : (st & SLB_M_STANDBY) && !(st & SLB_M_SPARE);
}

int slb_best_member(const slb_member_ops *ops, void *ctx,
                    slb_is_best_fn *is_best, void *baton)
{
    int n = ops->count(ctx);
    int best = -1, lbset, max_lbset = 0, i;

    for (lbset = 0; best < 0 && lbset <= max_lbset; lbset++) {
        int unusable = 0, spares_seen = 0, late = 0;

        for (i = 0; i < n; i++) {
            unsigned st = ops->state(ctx, i);
            int set = SLB_M_LBSET(st);

            if (set > max_lbset) {
                max_lbset = set;
            }
            if (set != lbset) {
                continue;
            }
            if (st & SLB_M_DRAINING) {
                if (!(st & (SLB_M_SPARE | SLB_M_STANDBY))) {
                    unusable++;
                }
                continue;
            }
            if (!(st & SLB_M_USABLE) && (st & SLB_M_IN_ERROR) && ops->retry) {
                st = ops->retry(ctx, i);
            }
            if (st & (SLB_M_SPARE | SLB_M_STANDBY)) {
                late += (st & SLB_M_USABLE) != 0;
            }
            else if (st & SLB_M_USABLE) {
                if (is_best(baton, i, best)) {
                    best = i;
                }
            }
            else {
                unusable++;
            }
        }
        if (late == 0) {
            continue;   /* the common case: no spare, no standby */
        }
        /* the spares, as many as unusable members (mod_proxy: a spare is
         * a spare even when also marked standby) */
        for (i = 0; i < n && spares_seen < unusable; i++) {
            if (late_member(ops->state(ctx, i), lbset, SLB_M_SPARE)) {
                spares_seen++;
                if (is_best(baton, i, best)) {
                    best = i;
                }
            }
        }
        if (best >= 0) {
            continue;
        }
        /* no member yet: the standbys, every one offered */
        for (i = 0; i < n; i++) {
            if (late_member(ops->state(ctx, i), lbset, SLB_M_STANDBY)
                && is_best(baton, i, best)) {
                best = i;
            }
        }
    }
    return best;
}

/* slb_wrr_consider, slb_wrr_commit: inline, in stickylb_select.h */

/* FNV-1a's prime (one byte at a time), and a 64-bit odd constant with
 * no structure (the golden ratio) for a word at a time */
#define FNV_PRIME  0x100000001b3ULL
#define GOLDEN     0x9e3779b97f4a7c15ULL


apr_uint64_t slb_hrw_key(const char *key, apr_size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    apr_uint64_t h = 0xcbf29ce484222325ULL ^ ((apr_uint64_t)len * GOLDEN);

    /* 8 bytes at a time, read as little-endian whatever the machine (so
     * every balancer hashes alike; one load where it is little-endian) */
    for (; len >= 8; p += 8, len -= 8) {
        apr_uint64_t w = (apr_uint64_t)p[0] | (apr_uint64_t)p[1] << 8
                         | (apr_uint64_t)p[2] << 16 | (apr_uint64_t)p[3] << 24
                         | (apr_uint64_t)p[4] << 32 | (apr_uint64_t)p[5] << 40
                         | (apr_uint64_t)p[6] << 48 | (apr_uint64_t)p[7] << 56;
        h = (h ^ w) * GOLDEN;
        h ^= h >> 32;
    }
    for (; len > 0; p++, len--) {
        h = (h ^ *p) * FNV_PRIME;
    }
    return slb_fmix64(h);
}

static double hrw_score(apr_uint64_t h, int weight)
{
    /* centred: 0 < u < 1, exact in a double */
    double u = ((double)h + 0.5) * (1.0 / 4503599627370496.0);

    return weight > 0 ? -(double)weight / log(u) : 0.0;
}

double slb_hrw_score(apr_uint64_t key, const char *member, int weight)
{
    return hrw_score(slb_hrw_hash(key, member), weight);
}

/* members of different weights: the scores */
int slb_hrw_beats(apr_uint64_t h, int weight, const slb_hrw_best *best)
{
    return hrw_score(h, weight) > hrw_score(best->h, best->weight);
}
