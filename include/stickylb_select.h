/*
 * stickylb_select.h - member selection of mod_stickylb (APR only).
 *
 * The module's finder hands the balancer's members to these functions
 * through a small table of callbacks, so the same decisions are exercised
 * by the Check unit tests with fake members and by httpd with real
 * proxy_worker structures.  Nothing here does I/O: the finder runs under the
 * balancer's thread mutex.
 */
#ifndef STICKYLB_SELECT_H
#define STICKYLB_SELECT_H

#include <string.h>

#include <apr_tables.h>

#include "stickylb_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Member state bits, as the decision needs them. */
#define SLB_M_USABLE    0x01  /* may take requests now                  */
#define SLB_M_STANDBY   0x02  /* hot standby                            */
#define SLB_M_DRAINING  0x04  /* existing sessions only                 */
#define SLB_M_IN_ERROR  0x08  /* in error: a retry may make it usable   */
#define SLB_M_SPARE     0x10  /* hot spare                              */
/* the member's lbset (mod_proxy's lbset=, 0..99) rides above the bits */
#define SLB_M_LBSET_SHIFT 8
#define SLB_M_LBSET(st) ((int)((st) >> SLB_M_LBSET_SHIFT))

typedef struct slb_member_ops {
    int (*count)(void *ctx);
    const char *(*route)(void *ctx, int i);      /* "" when none */
    const char *(*redirect)(void *ctx, int i);   /* "" when none */
    unsigned (*state)(void *ctx, int i);         /* SLB_M_* bits */
    /* Run the member's retry timer (mod_proxy's retry=); returns the new
     * state bits.  May be NULL (no retry). */
    unsigned (*retry)(void *ctx, int i);
} slb_member_ops;

typedef enum {
    SLB_DECIDE_NEW = 0,   /* no usable session route: choose a member   */
    SLB_DECIDE_STICKY,    /* the session's member                       */
    SLB_DECIDE_REDIRECT,  /* the member's redirect= target              */
    SLB_DECIDE_FAILOVER,  /* session's member unusable: choose another  */
    SLB_DECIDE_REFUSE     /* member unusable and nofailover: 503        */
} slb_decision_kind;

const char *slb_decision_name(slb_decision_kind k);

typedef struct {
    slb_decision_kind kind;
    int member;               /* index for STICKY / REDIRECT, else -1   */
    int candidate;            /* index into candidates that decided, -1 */
    const char *route;        /* the session route that decided, or NULL */
} slb_decision;

/*
 * Find the member serving `route` the way mod_proxy_balancer does:
 * non-standby members first, then hot standbys with that route; a member
 * in error is given its retry; an unusable member with redirect= is
 * replaced by its redirect target (each route is expanded once, so
 * redirect loops end and the work stays bounded).  Returns the member index or -1; *redirected is set
 * when a redirect was followed, *known when some member has this route.
 */
int slb_find_route(const slb_member_ops *ops, void *ctx, const char *route,
                   int *redirected, int *known);

/*
 * Decide for a request with the given candidates (slb_candidate, in order
 * of precedence).  The first candidate whose route names a member of the
 * balancer decides: its member (or redirect) when usable; otherwise
 * FAILOVER, or REFUSE when nofailover is set.  Candidates naming no member
 * are skipped; with none left the decision is NEW.
 */
slb_decision slb_decide(const slb_member_ops *ops, void *ctx,
                        const apr_array_header_t *candidates,
                        int nofailover);

/*
 * Smooth weighted round robin (mod_lbmethod_byrequests' arithmetic), split
 * in two so the core's member walk (lbset, spares, standbys, drain) can
 * drive it: slb_wrr_consider() for every usable candidate, returning 1
 * when it beats the best so far; slb_wrr_commit() on the winner.
 */
static APR_INLINE int slb_wrr_consider(int *lbstatus, int lbfactor,
                                       const int *best_lbstatus, int *total)
{
    *lbstatus += lbfactor;
    *total += lbfactor;
    return best_lbstatus == NULL || *lbstatus > *best_lbstatus;
}

static APR_INLINE void slb_wrr_commit(int *lbstatus, int total)
{
    *lbstatus -= total;
}

/*
 * The member for a new session: the walk of mod_proxy's
 * ap_proxy_balancer_get_best_worker (httpd 2.4), which the finder used
 * before, without the pool and the two arrays that function makes and
 * frees on every call (about 600 instructions a new session, more than
 * the rest of the choice).  The same order and the same members offered:
 *
 *   - lbsets in increasing order; a higher one only when the lower ones
 *     gave no member (the highest is learned during the walk);
 *   - in an lbset: a draining member is skipped, and counts as unusable
 *     unless it is a spare or a standby; a member that is not usable gets
 *     its retry (ops->retry, when in error) first; usable regular members
 *     are offered to is_best in order, unusable ones are counted;
 *   - then the usable hot spares of the lbset, in order, as many as its
 *     regular members were unusable;
 *   - then, when still none, its usable hot standbys, in order.
 *
 * is_best(baton, i, best) returns 1 when member i beats best (-1: none
 * so far), like mod_proxy's proxy_is_best_callback_fn_t.  Returns the
 * member chosen, or -1.  No allocation, no I/O.
 */
typedef int slb_is_best_fn(void *baton, int i, int best);

int slb_best_member(const slb_member_ops *ops, void *ctx,
                    slb_is_best_fn *is_best, void *baton);

/*
 * Consistent hashing of new sessions (StickyLBNewSessions hash): weighted
 * rendezvous hashing, a.k.a. highest random weight.  slb_hrw_key() once
 * per request over the key's bytes; slb_hrw_consider() for every usable
 * member, named by its route (or its name when it has none), weighted by
 * its loadfactor: the highest score (slb_hrw_score) wins.  The score is -w / ln(u), u in
 * (0, 1) from a 64-bit hash of key and member, so a member wins a key
 * with probability w / sum(w) over the members considered, every
 * balancer that sees the same members picks the same one whatever their
 * order, and a member that leaves takes only its own keys with it (the
 * others' scores do not change).  A weight of 0 or less scores 0.
 */
apr_uint64_t slb_hrw_key(const char *key, apr_size_t len);
double slb_hrw_score(apr_uint64_t key, const char *member, int weight);

/*
 * The member walk's side of it, as slb_wrr_consider(): 1 when the member
 * beats the best so far (first: there is none), *best updated.  Members
 * of equal weight are compared by their hashes (the order of their
 * scores) without computing the scores.
 */
typedef struct {
    apr_uint64_t h;          /* the best member's hash */
    int weight;              /* ... and weight */
} slb_hrw_best;

/* MurmurHash3's finalizer: every input bit reaches every output bit */
static APR_INLINE apr_uint64_t slb_fmix64(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* the 52-bit hash of key and member (FNV-1a's step over the member's
 * bytes, one at a time: routes are short); the score increases with it */
static APR_INLINE apr_uint64_t slb_hrw_hash(apr_uint64_t key,
                                            const char *member)
{
    const unsigned char *p = (const unsigned char *)member;
    apr_uint64_t h = key;

    for (; *p; p++) {
        h = (h ^ *p) * 0x100000001b3ULL;
    }
    return slb_fmix64(h) >> 12;
}

/*
 * A signature of the members a placement was chosen among (the hash
 * memo of a connection, mod_stickylb.c): a start for n members, then one
 * step per member with the words that decide a placement (its status
 * bits, lbset and loadfactor in one word, its identity, its route), then
 * the finish.  Equal member tables give equal signatures; a change of any
 * word gives another (but for a chance of 2^-64): a multiply and a shift
 * per word, the same finalizer as the rendezvous hash at the end.
 * slb_sig_route reads the route eight bytes at a time up to the word that
 * holds its NUL: route must be readable on SLB_MAX_ROUTE_LEN + 1 bytes.
 */
static APR_INLINE apr_uint64_t slb_sig_word(apr_uint64_t h, apr_uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static APR_INLINE apr_uint64_t slb_sig_route(apr_uint64_t h,
                                             const char *route)
{
    int i;

    for (i = 0; i < (SLB_MAX_ROUTE_LEN + 1) / 8; i++) {
        apr_uint64_t w;
        memcpy(&w, route + 8 * i, 8);
        h = slb_sig_word(h, w);
        if (slb_word_has_zero(w)) {
            break;   /* the word with the NUL (and what follows it in
                      * the word, which is part of the route's array) */
        }
    }
    return h;
}

static APR_INLINE apr_uint64_t slb_sig_finish(apr_uint64_t h)
{
    return slb_fmix64(h);
}

/* members of different weights: 1 when hash h of weight beats the best
 * by their scores (out of line: the logarithm) */
int slb_hrw_beats(apr_uint64_t h, int weight, const slb_hrw_best *best);

/* inline: called for every member of the walk */
static APR_INLINE int slb_hrw_consider(apr_uint64_t key, const char *member,
                                       int weight, slb_hrw_best *best,
                                       int first)
{
    apr_uint64_t h = slb_hrw_hash(key, member);

    if (!first) {
        if (weight <= 0) {
            return 0;
        }
        /* equal weights: the same order as the scores, without the
         * logarithm */
        if (weight == best->weight ? h <= best->h
                                   : !slb_hrw_beats(h, weight, best)) {
            return 0;
        }
    }
    best->h = h;
    best->weight = weight;
    return 1;
}

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_SELECT_H */
