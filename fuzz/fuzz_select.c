/*
 * fuzz_select.c - stickylb_select.c: the selection decision (slb_decide,
 * slb_find_route) over fake members, and the smooth weighted round robin
 * (slb_wrr_consider, slb_wrr_commit).
 *
 * Input: byte 0: the number of members (mod 17: 0..16); byte 1: bit 0
 * nofailover; then 3 bytes per member:
 *   route  (low nibble: an index into NAMES below, 8 and up: no route),
 *          high nibble: the lbfactor - 1 (1..16)
 *   redirect (low nibble: an index into NAMES, 8 and up: none),
 *          bits 4-5: the lbset (0..3)
 *   state  bit 0 disabled, 1 stopped, 2 in error, 3 hot standby,
 *          4 draining, 5 a retry clears its error, 6 hot spare
 * then one byte per candidate (at most 8): an index into NAMES (8: "",
 * 9 and up: a route no member has).  Missing bytes read as 0.
 *
 * The members are modelled as httpd has them: a member is usable when it
 * is neither disabled nor stopped nor in error (draining members are
 * usable: they take their existing sessions); a retry clears "in error"
 * when bit 5 says so, and nothing else.  Checked on every input:
 *  - the decision is one of the five kinds; STICKY and REDIRECT name a
 *    member, every other kind names none (-1), so a new session (NEW,
 *    FAILOVER: the core chooses) is never given a draining member by the
 *    decision; REFUSE only with nofailover, FAILOVER only without;
 *  - never a member the operator disabled or stopped, never a member in
 *    error after its retry: the member decided on is usable;
 *  - the deciding candidate is the first one whose route some member has
 *    (a reference scan), d.route is that candidate's route, NEW when no
 *    candidate's route is any member's (candidate and route then -1 and
 *    NULL);
 *  - STICKY: the member has the session's route; REDIRECT: its route is
 *    reached from the session's route through redirect= of members that
 *    were not usable, and differs from it; a draining member is decided on
 *    only by STICKY or REDIRECT (its own session's route);
 *  - FAILOVER / REFUSE: no member whose route is in that redirect closure
 *    is usable (nothing usable was passed over); a STICKY decision goes to
 *    a regular member when one with the route is usable (hot standbys
 *    second);
 *  - bounded work: the callbacks are called at most a small multiple of
 *    candidates x members^2 times (redirect loops end);
 *  - smooth weighted round robin: over sum(lbfactor) rounds among the
 *    usable members each is chosen exactly lbfactor times and the
 *    lbstatus values come back to 0;
 *  - rendezvous hashing (the whole input is the key, the usable members
 *    with their routes and lbfactors the candidates): every score is
 *    finite and positive; the member walk's winner has the highest score
 *    (the first of equal ones); the members walked in reverse order give
 *    a winner of the same score; leaving out any other member, or raising
 *    the winner's weight, keeps the winner; the key hashes the same twice;
 *  - the member walk of new sessions (slb_best_member) offers the same
 *    members, in the same order, with the same best so far, and retries
 *    the same members as mod_proxy's ap_proxy_balancer_get_best_worker
 *    (best_reference below, written as httpd 2.4 has it: lbsets, drain,
 *    spares for unusable members, standbys last), and picks the same one.
 */
#include "fuzz_common.h"

#include <apr_tables.h>

#include "stickylb_select.h"

#define MAXM 16
#define MAXC 8
#define NNAMES 8

static const char *const NAMES[NNAMES] = {
    "t1", "t2", "t10", "t", "web-a", "web-b", "T1", "a-much-longer-route"
};

#define F_DISABLED  0x01
#define F_STOPPED   0x02
#define F_ERROR     0x04
#define F_STANDBY   0x08
#define F_DRAINING  0x10
#define F_RETRY_OK  0x20
#define F_SPARE     0x40

typedef struct {
    const char *route;
    const char *redirect;
    unsigned flags;          /* F_*, F_ERROR cleared by a successful retry */
    int lbfactor;
    int lbset;
} member;

typedef struct {
    int n;
    member m[MAXM];
    unsigned long calls;
} farm;

static unsigned state_of(const member *m)
{
    unsigned st = 0;

    if (!(m->flags & (F_DISABLED | F_STOPPED | F_ERROR))) {
        st |= SLB_M_USABLE;
    }
    if (m->flags & F_STANDBY) {
        st |= SLB_M_STANDBY;
    }
    if (m->flags & F_DRAINING) {
        st |= SLB_M_DRAINING;
    }
    if (m->flags & F_ERROR) {
        st |= SLB_M_IN_ERROR;
    }
    if (m->flags & F_SPARE) {
        st |= SLB_M_SPARE;
    }
    return st | (unsigned)m->lbset << SLB_M_LBSET_SHIFT;
}

static int f_count(void *ctx)
{
    farm *f = ctx;

    f->calls++;
    return f->n;
}

static const char *f_route(void *ctx, int i)
{
    farm *f = ctx;

    FZ_CHECK(i >= 0 && i < f->n);
    f->calls++;
    return f->m[i].route;
}

static const char *f_redirect(void *ctx, int i)
{
    farm *f = ctx;

    FZ_CHECK(i >= 0 && i < f->n);
    f->calls++;
    return f->m[i].redirect;
}

static unsigned f_state(void *ctx, int i)
{
    farm *f = ctx;

    FZ_CHECK(i >= 0 && i < f->n);
    f->calls++;
    return state_of(&f->m[i]);
}

static unsigned f_retry(void *ctx, int i)
{
    farm *f = ctx;

    FZ_CHECK(i >= 0 && i < f->n);
    f->calls++;
    /* asked only of a member in error that is not usable */
    FZ_CHECK(f->m[i].flags & F_ERROR);
    if (f->m[i].flags & F_RETRY_OK) {
        f->m[i].flags &= ~(unsigned)F_ERROR;
    }
    return state_of(&f->m[i]);
}

static const slb_member_ops ops = {
    f_count, f_route, f_redirect, f_state, f_retry
};

static int usable(const member *m)
{
    return (state_of(m) & SLB_M_USABLE) != 0;
}

/* routes reached from `route` through the redirects of members having a
 * reached route (a superset of what the decision may follow) */
static int closure(const farm *f, const char *route, const char **out)
{
    int n = 0, i, j, k, grew = 1;

    out[n++] = route;
    while (grew) {
        grew = 0;
        for (i = 0; i < f->n; i++) {
            const char *rd = f->m[i].redirect;
            int in = 0, have = 0;
            for (k = 0; k < n; k++) {
                in |= strcmp(f->m[i].route, out[k]) == 0;
            }
            if (!in || *rd == '\0') {
                continue;
            }
            for (j = 0; j < n; j++) {
                have |= strcmp(rd, out[j]) == 0;
            }
            if (!have && n < MAXM + 1) {
                out[n++] = rd;
                grew = 1;
            }
        }
    }
    return n;
}

static int in_set(const char *r, const char *const *set, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(r, set[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void check_wrr(const farm *f)
{
    int lb[MAXM] = { 0 }, got[MAXM] = { 0 };
    int i, round, weight = 0;

    for (i = 0; i < f->n; i++) {
        if (usable(&f->m[i])) {
            weight += f->m[i].lbfactor;
        }
    }
    for (round = 0; round < weight; round++) {
        int best = -1, total = 0;
        for (i = 0; i < f->n; i++) {
            if (!usable(&f->m[i])) {
                continue;
            }
            if (slb_wrr_consider(&lb[i], f->m[i].lbfactor,
                                 best >= 0 ? &lb[best] : NULL, &total)) {
                best = i;
            }
        }
        FZ_CHECK(best >= 0 && total == weight);
        slb_wrr_commit(&lb[best], total);
        got[best]++;
    }
    for (i = 0; i < f->n; i++) {
        FZ_CHECK(lb[i] == 0);
        FZ_CHECK(got[i] == (usable(&f->m[i]) ? f->m[i].lbfactor : 0));
    }
}

/* the walk's winner among the usable members but `skip` (-1: none), the
 * members in reverse order when rev; -1 when none is usable */
static int hrw_walk(const farm *f, apr_uint64_t key, int skip, int rev,
                    int boost, double *score)
{
    slb_hrw_best best = { 0, 0 };
    int k, winner = -1;

    for (k = 0; k < f->n; k++) {
        int i = rev ? f->n - 1 - k : k;
        int w = f->m[i].lbfactor * (i == boost ? 2 : 1);
        if (i == skip || !usable(&f->m[i])) {
            continue;
        }
        if (slb_hrw_consider(key, f->m[i].route, w, &best, winner < 0)) {
            winner = i;
            *score = slb_hrw_score(key, f->m[i].route, w);
        }
    }
    return winner;
}

static void check_hrw(const farm *f, const uint8_t *data, size_t size)
{
    apr_uint64_t key = slb_hrw_key((const char *)data, size);
    double top = 0, s, s2;
    int i, winner = -1, w, w2;

    FZ_CHECK(key == slb_hrw_key((const char *)data, size));
    /* the reference: a scan of the scores */
    for (i = 0; i < f->n; i++) {
        if (!usable(&f->m[i])) {
            continue;
        }
        s = slb_hrw_score(key, f->m[i].route, f->m[i].lbfactor);
        FZ_CHECK(s > 0 && s < 1e300 && s == s);
        FZ_CHECK(slb_hrw_score(key, f->m[i].route, 0) == 0.0);
        if (winner < 0 || s > top) {
            winner = i;
            top = s;
        }
    }
    s = 0;
    w = hrw_walk(f, key, -1, 0, -1, &s);
    FZ_CHECK(w == winner);
    if (winner < 0) {
        return;
    }
    FZ_CHECK(s == top);
    w2 = hrw_walk(f, key, -1, 1, -1, &s2);
    FZ_CHECK(w2 >= 0 && s2 == top);
    for (i = 0; i < f->n; i++) {
        if (i != winner) {
            FZ_CHECK(hrw_walk(f, key, i, 0, -1, &s2) == winner);
        }
    }
    FZ_CHECK(hrw_walk(f, key, -1, 0, winner, &s2) == winner);
}

/* the offers of a member walk: (member, best so far) in order */
typedef struct {
    int n;
    int who[4 * MAXM], best[4 * MAXM];
    unsigned salt;
} offers;

/* a deterministic is_best: a member's mark against the best's */
static int mark(const offers *o, int i)
{
    return (int)(((unsigned)i * 2654435761u ^ o->salt) % 7u);
}

static int record_best(void *baton, int i, int best)
{
    offers *o = baton;

    FZ_CHECK(o->n < 4 * MAXM);
    o->who[o->n] = i;
    o->best[o->n] = best;
    o->n++;
    return best < 0 || mark(o, i) > mark(o, best);
}

/* mod_proxy's walk (proxy_util.c, proxy_balancer_get_best_worker) */
static int best_reference(farm *f, offers *o)
{
    int cur, max_lbset = 0, best = -1, i;

    for (cur = 0; best < 0 && cur <= max_lbset; cur++) {
        int unusable = 0, nspares = 0, nstandbys = 0;
        int spares[MAXM], standbys[MAXM];

        for (i = 0; i < f->n; i++) {
            member *m = &f->m[i];
            if (m->lbset > max_lbset) {
                max_lbset = m->lbset;
            }
            if (m->lbset != cur) {
                continue;
            }
            if (m->flags & F_DRAINING) {
                if (!(m->flags & F_SPARE) && !(m->flags & F_STANDBY)) {
                    unusable++;
                }
                continue;
            }
            if (!usable(m) && (m->flags & F_ERROR)
                && (m->flags & F_RETRY_OK)) {
                m->flags &= ~(unsigned)F_ERROR;   /* ap_proxy_retry_worker */
            }
            if (m->flags & F_SPARE) {
                if (usable(m)) {
                    spares[nspares++] = i;
                }
            }
            else if (m->flags & F_STANDBY) {
                if (usable(m)) {
                    standbys[nstandbys++] = i;
                }
            }
            else if (usable(m)) {
                if (record_best(o, i, best)) {
                    best = i;
                }
            }
            else {
                unusable++;
            }
        }
        for (i = 0; i < nspares && i < unusable; i++) {
            if (record_best(o, spares[i], best)) {
                best = spares[i];
            }
        }
        if (best < 0) {
            for (i = 0; i < nstandbys; i++) {
                if (record_best(o, standbys[i], best)) {
                    best = standbys[i];
                }
            }
        }
    }
    return best;
}

static void check_best(const farm *before, unsigned salt)
{
    farm a = *before, b = *before;
    offers oa, ob;
    int ra, rb, i;

    memset(&oa, 0, sizeof(oa));
    memset(&ob, 0, sizeof(ob));
    oa.salt = ob.salt = salt;
    ra = best_reference(&a, &oa);
    rb = slb_best_member(&ops, &b, record_best, &ob);
    FZ_CHECK(ra == rb);
    FZ_CHECK(oa.n == ob.n);
    for (i = 0; i < oa.n; i++) {
        FZ_CHECK(oa.who[i] == ob.who[i] && oa.best[i] == ob.best[i]);
    }
    for (i = 0; i < a.n; i++) {
        FZ_CHECK(a.m[i].flags == b.m[i].flags);   /* the same retries */
    }
    if (rb >= 0) {
        FZ_CHECK(usable(&b.m[rb]) && !(b.m[rb].flags & F_DRAINING));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    farm f, before;
    apr_array_header_t *cands;
    slb_decision d;
    size_t at = 2;
    int nofailover, i, c, ncand = 0, first_known = -1;
    unsigned long bound;

#define BYTE() (at < size ? data[at++] : 0)
    memset(&f, 0, sizeof(f));
    f.n = size > 0 ? data[0] % (MAXM + 1) : 0;
    nofailover = size > 1 ? data[1] & 1 : 0;
    for (i = 0; i < f.n; i++) {
        unsigned r = BYTE(), rd = BYTE(), st = BYTE();
        f.m[i].route = (r & 15) < NNAMES ? NAMES[r & 15] : "";
        f.m[i].lbfactor = (int)(r >> 4) + 1;
        f.m[i].redirect = (rd & 15) < NNAMES ? NAMES[rd & 15] : "";
        f.m[i].lbset = (int)(rd >> 4) & 3;
        f.m[i].flags = st & 0x7f;
    }
    cands = apr_array_make(p, MAXC, sizeof(slb_candidate));
    while (at < size && ncand < MAXC) {
        unsigned x = BYTE();
        slb_candidate *cd = apr_array_push(cands);
        memset(cd, 0, sizeof(*cd));
        cd->src = SLB_SRC_ROUTE_COOKIE;
        cd->name = "ROUTEID";
        cd->id = "";
        cd->route = x < NNAMES ? NAMES[x] : x == NNAMES ? "" : "zz-unknown";
        ncand++;
    }
#undef BYTE
    before = f;

    /* the reference: the first candidate whose route a member has */
    for (c = 0; c < ncand && first_known < 0; c++) {
        const char *r = APR_ARRAY_IDX(cands, c, slb_candidate).route;
        for (i = 0; i < f.n && *r; i++) {
            if (strcmp(f.m[i].route, r) == 0) {
                first_known = c;
                break;
            }
        }
    }

    d = slb_decide(&ops, &f, cands, nofailover);
    /* per candidate: at most n + 1 routes expanded, each two passes over
     * the members (route, state twice, retry, redirect: 5 calls) and a
     * count; at most 2n redirects followed per route expanded, a count
     * each */
    bound = (unsigned long)(ncand + 1)
            * ((unsigned long)(f.n + 1) * (unsigned long)(12 * f.n + 1) + 1);
    FZ_CHECK(f.calls <= bound);

    FZ_CHECK(d.kind >= SLB_DECIDE_NEW && d.kind <= SLB_DECIDE_REFUSE);
    FZ_CHECK(d.candidate == first_known);
    if (first_known < 0) {
        FZ_CHECK(d.kind == SLB_DECIDE_NEW && d.member == -1 && d.route == NULL);
    }
    else {
        const char *sr = APR_ARRAY_IDX(cands, first_known, slb_candidate).route;
        const char *cl[MAXM + 1];
        int ncl = closure(&before, sr, cl);

        FZ_CHECK(d.kind != SLB_DECIDE_NEW);
        FZ_CHECK(d.route == sr);
        if (d.kind == SLB_DECIDE_STICKY || d.kind == SLB_DECIDE_REDIRECT) {
            const member *m;
            FZ_CHECK(d.member >= 0 && d.member < f.n);
            m = &f.m[d.member];
            /* never disabled or stopped, never still in error */
            FZ_CHECK(!(m->flags & (F_DISABLED | F_STOPPED)));
            FZ_CHECK(usable(m));
            if (d.kind == SLB_DECIDE_STICKY) {
                FZ_CHECK(strcmp(m->route, sr) == 0);
                /* hot standbys only when no regular member with the route
                 * is usable: a regular one decided on, or none usable */
                if (m->flags & F_STANDBY) {
                    for (i = 0; i < f.n; i++) {
                        FZ_CHECK(!(strcmp(f.m[i].route, sr) == 0
                                   && !(f.m[i].flags & F_STANDBY)
                                   && usable(&f.m[i])));
                    }
                }
            }
            else {
                FZ_CHECK(strcmp(m->route, sr) != 0);
                FZ_CHECK(in_set(m->route, cl, ncl));
            }
        }
        else {
            FZ_CHECK(d.member == -1);
            FZ_CHECK(d.kind == (nofailover ? SLB_DECIDE_REFUSE
                                           : SLB_DECIDE_FAILOVER));
            /* nothing usable was passed over: every member of the
             * closure is unusable (after the retries made) */
            for (i = 0; i < f.n; i++) {
                if (in_set(f.m[i].route, cl, ncl) && *f.m[i].route) {
                    FZ_CHECK(!usable(&f.m[i]));
                }
            }
        }
    }
    /* the decision changes nothing but what a retry may: an error cleared */
    for (i = 0; i < f.n; i++) {
        FZ_CHECK((f.m[i].flags | F_ERROR) == (before.m[i].flags | F_ERROR));
        FZ_CHECK(!(f.m[i].flags & F_ERROR)
                 || (before.m[i].flags & F_ERROR));
        FZ_CHECK(!(before.m[i].flags & F_ERROR) || (f.m[i].flags & F_ERROR)
                 || (before.m[i].flags & F_RETRY_OK));
    }

    /* slb_find_route alone agrees with the decision for its route */
    if (first_known >= 0) {
        farm g = before;
        int redirected = -1, known = -1;
        int j = slb_find_route(&ops, &g, d.route, &redirected, &known);
        FZ_CHECK(known == 1);
        FZ_CHECK(j == d.member);
        FZ_CHECK(redirected == (d.kind == SLB_DECIDE_REDIRECT));
    }
    /* NULL candidates: NEW */
    d = slb_decide(&ops, &f, NULL, nofailover);
    FZ_CHECK(d.kind == SLB_DECIDE_NEW && d.member == -1 && d.candidate == -1);

    check_wrr(&before);
    check_hrw(&before, data, size);
    check_best(&before, size > 1 ? data[1] : 0);
    fz_end();
    return 0;
}
