/*
 * check_select.c - Check tests of stickylb_select.c: route -> member lookup
 * (standby pass, retry, redirect= with loop bound), slb_decide(), the
 * member walk of new sessions (slb_best_member: mod_proxy's lbsets, drain,
 * spares and standbys) and the smooth weighted round robin primitives.
 *
 * The balancer is a fake member table driven through slb_member_ops; each
 * member counts the retries it was given.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_tables.h>

#include "check_stickylb.h"
#include "stickylb_select.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    pool = NULL;
}

/* ======================================================================
 * fake member table
 * ==================================================================== */

typedef struct {
    const char *route;      /* returned as is (NULL allowed) */
    const char *redirect;   /* returned as is (NULL allowed) */
    unsigned state;         /* SLB_M_* bits */
    unsigned retry_state;   /* the state a retry leaves behind */
    int retry_calls;
} fake_member;

typedef struct {
    fake_member *m;
    int n;
    int callbacks;          /* every callback call, to bound the work */
} fake_table;

#define U   SLB_M_USABLE
#define SB  SLB_M_STANDBY
#define DR  SLB_M_DRAINING
#define ER  SLB_M_IN_ERROR
#define SP  SLB_M_SPARE

/* member whose retry changes nothing / whose retry yields `after` */
#define M(route, redirect, state)          { route, redirect, state, state, 0 }
#define MR(route, redirect, state, after)  { route, redirect, state, after, 0 }

#define TABLE(t, members)                                                   \
    fake_table t = { members, (int)(sizeof(members) / sizeof(members[0])), 0 }

static fake_member *member_at(void *ctx, int i)
{
    fake_table *t = ctx;

    t->callbacks++;
    ck_assert_msg(i >= 0 && i < t->n, "member index %d out of 0..%d", i,
                  t->n - 1);
    return &t->m[i];
}

static int f_count(void *ctx)
{
    fake_table *t = ctx;

    t->callbacks++;
    return t->n;
}

static const char *f_route(void *ctx, int i)
{
    return member_at(ctx, i)->route;
}

static const char *f_redirect(void *ctx, int i)
{
    return member_at(ctx, i)->redirect;
}

static unsigned f_state(void *ctx, int i)
{
    return member_at(ctx, i)->state;
}

static unsigned f_retry(void *ctx, int i)
{
    fake_member *m = member_at(ctx, i);

    m->retry_calls++;
    m->state = m->retry_state;
    return m->state;
}

static const slb_member_ops fake_ops = {
    f_count, f_route, f_redirect, f_state, f_retry
};

/* candidates with the given routes (NULL terminated), as session cookies */
static apr_array_header_t *cands(const char *route, ...)
{
    apr_array_header_t *arr = apr_array_make(pool, 4, sizeof(slb_candidate));
    va_list ap;
    const char *r;

    va_start(ap, route);
    for (r = route; r != NULL; r = va_arg(ap, const char *)) {
        slb_candidate *c = apr_array_push(arr);
        c->src = SLB_SRC_SESSION_COOKIE;
        c->name = "JSESSIONID";
        c->id = "abc";
        c->route = r;
    }
    va_end(ap);
    return arr;
}

#define ck_assert_decision(d, kind_, member_, cand_, route_)                \
    do {                                                                    \
        slb_decision d_ = (d);                                              \
        const char *want_ = (route_);                                       \
        ck_assert_msg(d_.kind == (kind_), "decision %s, expected %s",       \
                      slb_decision_name(d_.kind),                           \
                      slb_decision_name(kind_));                            \
        ck_assert_int_eq(d_.member, (member_));                             \
        ck_assert_int_eq(d_.candidate, (cand_));                            \
        if (want_ == NULL) {                                                \
            ck_assert_ptr_null(d_.route);                                   \
        }                                                                   \
        else {                                                              \
            ck_assert_pstr_eq(d_.route, want_);                             \
        }                                                                   \
    } while (0)

static void assert_no_retry(const fake_table *t)
{
    int i;

    for (i = 0; i < t->n; i++) {
        ck_assert_msg(t->m[i].retry_calls == 0, "member %d retried %d times",
                      i, t->m[i].retry_calls);
    }
}

/* ======================================================================
 * names
 * ==================================================================== */

START_TEST(test_decision_name)
{
    ck_assert_str_eq(slb_decision_name(SLB_DECIDE_NEW), "new");
    ck_assert_str_eq(slb_decision_name(SLB_DECIDE_STICKY), "sticky");
    ck_assert_str_eq(slb_decision_name(SLB_DECIDE_REDIRECT), "redirect");
    ck_assert_str_eq(slb_decision_name(SLB_DECIDE_FAILOVER), "failover");
    ck_assert_str_eq(slb_decision_name(SLB_DECIDE_REFUSE), "refused");
    ck_assert_str_eq(slb_decision_name((slb_decision_kind)42), "new");
}
END_TEST

/* ======================================================================
 * slb_decide
 * ==================================================================== */

START_TEST(test_sticky_hit)
{
    fake_member m[] = { M("t1", "", U), M("t2", "", U), M("t3", "", U) };
    TABLE(t, m);
    apr_array_header_t *c = cands("t2", NULL);
    slb_decision d = slb_decide(&fake_ops, &t, c, 0);

    ck_assert_decision(d, SLB_DECIDE_STICKY, 1, 0, "t2");
    /* the route is the candidate's own string */
    ck_assert_ptr_eq(d.route, APR_ARRAY_IDX(c, 0, slb_candidate).route);
    assert_no_retry(&t);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t3", NULL), 1),
                       SLB_DECIDE_STICKY, 2, 0, "t3");
}
END_TEST

START_TEST(test_unknown_route_next_candidate)
{
    fake_member m[] = { M("t1", "", U), M("t2", "", U), M("t3", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("zz", "t3", NULL), 0),
                       SLB_DECIDE_STICKY, 2, 1, "t3");
    ck_assert_decision(slb_decide(&fake_ops, &t,
                                  cands("zz", "T1", ".t1", "t1 ", "t2", NULL),
                                  0),
                       SLB_DECIDE_STICKY, 1, 4, "t2");
    /* no candidate names a member */
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("zz", "yy", NULL), 0),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("zz", NULL), 1),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    assert_no_retry(&t);
}
END_TEST

START_TEST(test_disabled_failover)
{
    fake_member m[] = { M("t1", "", 0), M("t2", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "t1");
    /* disabled (not in error): no retry */
    assert_no_retry(&t);
    /* the first known route decides, even when its member is down */
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", "t2", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "t1");
    /* but unknown routes before it are skipped */
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("x", "t1", "t2", NULL),
                                  0),
                       SLB_DECIDE_FAILOVER, -1, 1, "t1");
    assert_no_retry(&t);
}
END_TEST

START_TEST(test_in_error_retry_recovers)
{
    fake_member m[] = { MR("t1", "", ER, U), M("t2", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    ck_assert_int_eq(m[0].retry_calls, 1);
    ck_assert_int_eq(m[1].retry_calls, 0);
    /* recovered: no further retry */
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    ck_assert_int_eq(m[0].retry_calls, 1);
}
END_TEST

START_TEST(test_in_error_still_down)
{
    fake_member m[] = { MR("t1", "", ER, ER), M("t2", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "t1");
    ck_assert_int_eq(m[0].retry_calls, 1);
    ck_assert_int_eq(m[1].retry_calls, 0);
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 1),
                       SLB_DECIDE_REFUSE, -1, 0, "t1");
    ck_assert_int_eq(m[0].retry_calls, 2);
}
END_TEST

START_TEST(test_in_error_without_retry_op)
{
    fake_member m[] = { MR("t1", "", ER, U) };
    TABLE(t, m);
    slb_member_ops ops = fake_ops;

    ops.retry = NULL;
    ck_assert_decision(slb_decide(&ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "t1");
    ck_assert_int_eq(m[0].retry_calls, 0);
}
END_TEST

START_TEST(test_usable_not_retried)
{
    /* usable wins over the in-error bit: no retry needed */
    fake_member m[] = { MR("t1", "", U | ER, 0) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    assert_no_retry(&t);
}
END_TEST

START_TEST(test_nofailover_refuse)
{
    fake_member m[] = { M("t1", "", 0), M("t2", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 1),
                       SLB_DECIDE_REFUSE, -1, 0, "t1");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t2", NULL), 1),
                       SLB_DECIDE_STICKY, 1, 0, "t2");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t9", NULL), 1),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    ck_assert_decision(slb_decide(&fake_ops, &t, NULL, 1),
                       SLB_DECIDE_NEW, -1, -1, NULL);
}
END_TEST

START_TEST(test_redirect_usable)
{
    fake_member m[] = { M("a", "b", 0), M("x", "", U), M("b", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_REDIRECT, 2, 0, "a");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 1),
                       SLB_DECIDE_REDIRECT, 2, 0, "a");
    assert_no_retry(&t);
}
END_TEST

START_TEST(test_redirect_target_retried)
{
    fake_member m[] = { MR("a", "b", ER, ER), MR("b", "", ER, U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_REDIRECT, 1, 0, "a");
    ck_assert_int_eq(m[0].retry_calls, 1);
    ck_assert_int_eq(m[1].retry_calls, 1);
}
END_TEST

START_TEST(test_redirect_ignored_when_usable)
{
    fake_member m[] = { M("a", "b", U), M("b", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "a");
}
END_TEST

START_TEST(test_redirect_target_down)
{
    fake_member m[] = { M("a", "b", 0), M("b", "", 0), M("c", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "a");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 1),
                       SLB_DECIDE_REFUSE, -1, 0, "a");
}
END_TEST

START_TEST(test_redirect_unknown_target)
{
    fake_member m[] = { M("a", "nosuch", 0), M("b", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "a");
}
END_TEST

START_TEST(test_redirect_chain)
{
    fake_member m[] = { M("a", "b", 0), M("b", "c", 0), M("c", "", U) };
    TABLE(t, m);
    int redirected = -1, known = -1;

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_REDIRECT, 2, 0, "a");
    ck_assert_int_eq(slb_find_route(&fake_ops, &t, "a", &redirected, &known),
                     2);
    ck_assert_int_eq(redirected, 1);
    ck_assert_int_eq(known, 1);
    ck_assert_int_eq(slb_find_route(&fake_ops, &t, "c", &redirected, &known),
                     2);
    ck_assert_int_eq(redirected, 0);
    ck_assert_int_eq(known, 1);
}
END_TEST

START_TEST(test_redirect_loop_terminates)
{
    fake_member m[] = { MR("a", "b", ER, ER), MR("b", "a", ER, ER),
                        M("c", "", U) };
    TABLE(t, m);
    int n = (int)(sizeof(m) / sizeof(m[0]));

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "a");
    /* the loop is cut after at most count() redirects */
    ck_assert_int_ge(m[0].retry_calls, 1);
    ck_assert_int_le(m[0].retry_calls, n + 1);
    ck_assert_int_ge(m[1].retry_calls, 1);
    ck_assert_int_le(m[1].retry_calls, n + 1);
    ck_assert_int_eq(m[2].retry_calls, 0);
    ck_assert_int_lt(t.callbacks, 1000);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("b", NULL), 1),
                       SLB_DECIDE_REFUSE, -1, 0, "b");
}
END_TEST

START_TEST(test_redirect_self_and_long_loops)
{
    fake_member self[] = { M("a", "a", 0), M("z", "", U) };
    fake_member ring[] = { M("a", "b", 0), M("b", "c", 0), M("c", "d", 0),
                           M("d", "a", 0), M("z", "", U) };
    TABLE(ts, self);
    TABLE(tr, ring);

    ck_assert_decision(slb_decide(&fake_ops, &ts, cands("a", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "a");
    ck_assert_int_lt(ts.callbacks, 1000);
    ck_assert_decision(slb_decide(&fake_ops, &tr, cands("c", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "c");
    ck_assert_int_lt(tr.callbacks, 1000);
}
END_TEST

START_TEST(test_redirect_duplicate_routes_bounded)
{
    /* 24 members share route "x", all down, each redirecting to "x" (a
     * misconfiguration any client can hit by naming "x"): each member is
     * retried once, the work stays quadratic at most */
    fake_member m[25];
    fake_table t = { m, 25, 0 };
    int i;

    for (i = 0; i < 24; i++) {
        fake_member x = MR("x", "x", ER, ER);
        m[i] = x;
    }
    {
        fake_member z = M("z", "", U);
        m[24] = z;
    }
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("x", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "x");
    for (i = 0; i < 24; i++) {
        ck_assert_int_eq(m[i].retry_calls, 1);
    }
    ck_assert_int_lt(t.callbacks, 25 * 25 * 8);
}
END_TEST

START_TEST(test_standby)
{
    /* the standby is listed first: the regular member still wins */
    fake_member m[] = { M("t1", "", U | SB), M("t1", "", U),
                        M("t2", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 1, 0, "t1");
    /* regular member unusable: the standby with the same route */
    m[1].state = m[1].retry_state = 0;
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    /* both down */
    m[0].state = m[0].retry_state = SB;
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "t1");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 1),
                       SLB_DECIDE_REFUSE, -1, 0, "t1");
    assert_no_retry(&t);
}
END_TEST

START_TEST(test_standby_after_retry)
{
    /* the regular member is retried before any standby is considered */
    fake_member m[] = { M("t1", "", U | SB), MR("t1", "", ER, U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 1, 0, "t1");
    ck_assert_int_eq(m[1].retry_calls, 1);
    ck_assert_int_eq(m[0].retry_calls, 0);

    /* retry fails: the standby takes it */
    m[1].state = m[1].retry_state = ER;
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    ck_assert_int_eq(m[1].retry_calls, 2);
}
END_TEST

START_TEST(test_standby_only_route)
{
    fake_member m[] = { M("t1", "", U), M("t9", "", U | SB) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t9", NULL), 0),
                       SLB_DECIDE_STICKY, 1, 0, "t9");
}
END_TEST

START_TEST(test_redirect_before_standby)
{
    /* as in mod_proxy_balancer: the regular member's redirect= is followed
     * in the first pass, before hot standbys are looked at */
    fake_member m[] = { M("t1", "b", 0), M("t1", "", U | SB),
                        M("b", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_REDIRECT, 2, 0, "t1");
}
END_TEST

START_TEST(test_draining_still_sticky)
{
    fake_member m[] = { M("t1", "", U | DR), M("t2", "", U) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 1),
                       SLB_DECIDE_STICKY, 0, 0, "t1");
}
END_TEST

START_TEST(test_spare_is_regular_pass)
{
    /* a hot spare is not a hot standby: found in the first pass */
    fake_member m[] = { M("t1", "", U | SB), M("t1", "", U | SP) };
    TABLE(t, m);

    ck_assert_decision(slb_decide(&fake_ops, &t, cands("t1", NULL), 0),
                       SLB_DECIDE_STICKY, 1, 0, "t1");
}
END_TEST

START_TEST(test_empty_and_null_candidates)
{
    fake_member m[] = { M("t1", "", U) };
    TABLE(t, m);
    fake_table none = { m, 0, 0 };

    ck_assert_decision(slb_decide(&fake_ops, &t, cands(NULL), 0),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    ck_assert_decision(slb_decide(&fake_ops, &t, cands(NULL), 1),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    ck_assert_decision(slb_decide(&fake_ops, &t, NULL, 0),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    ck_assert_decision(slb_decide(&fake_ops, &t, NULL, 1),
                       SLB_DECIDE_NEW, -1, -1, NULL);
    /* a balancer without members */
    ck_assert_decision(slb_decide(&fake_ops, &none, cands("t1", NULL), 1),
                       SLB_DECIDE_NEW, -1, -1, NULL);
}
END_TEST

START_TEST(test_find_route_args)
{
    fake_member m[] = { M("", "", U), M(NULL, NULL, 0), M("t1", NULL, 0),
                        M("t2", "", U) };
    TABLE(t, m);
    int redirected = -1, known = -1;

    ck_assert_int_eq(slb_find_route(&fake_ops, &t, NULL, &redirected,
                                    &known), -1);
    ck_assert_int_eq(redirected, 0);
    ck_assert_int_eq(known, 0);
    redirected = known = -1;
    /* members without a route are never matched, not even by "" */
    ck_assert_int_eq(slb_find_route(&fake_ops, &t, "", &redirected, &known),
                     -1);
    ck_assert_int_eq(redirected, 0);
    ck_assert_int_eq(known, 0);
    ck_assert_int_eq(slb_find_route(&fake_ops, &t, "zz", &redirected,
                                    &known), -1);
    ck_assert_int_eq(known, 0);
    /* NULL redirect of an unusable member */
    ck_assert_int_eq(slb_find_route(&fake_ops, &t, "t1", &redirected,
                                    &known), -1);
    ck_assert_int_eq(redirected, 0);
    ck_assert_int_eq(known, 1);
    ck_assert_int_eq(slb_find_route(&fake_ops, &t, "t2", &redirected,
                                    &known), 3);
    ck_assert_int_eq(redirected, 0);
    ck_assert_int_eq(known, 1);
}
END_TEST

START_TEST(test_find_route_no_redirect_op)
{
    fake_member m[] = { M("a", "b", 0), M("b", "", U) };
    TABLE(t, m);
    slb_member_ops ops = fake_ops;
    int redirected = -1, known = -1;

    ops.redirect = NULL;
    ck_assert_int_eq(slb_find_route(&ops, &t, "a", &redirected, &known), -1);
    ck_assert_int_eq(redirected, 0);
    ck_assert_int_eq(known, 1);
    ck_assert_decision(slb_decide(&ops, &t, cands("a", NULL), 0),
                       SLB_DECIDE_FAILOVER, -1, 0, "a");
}
END_TEST

/* ======================================================================
 * smooth weighted round robin
 * ==================================================================== */

/* One pick over all members, as the core's member walk does it. */
static int wrr_pick(int *lbstatus, const int *lbfactor, int n)
{
    int total = 0, best = -1, i;

    for (i = 0; i < n; i++) {
        if (slb_wrr_consider(&lbstatus[i], lbfactor[i],
                             best >= 0 ? &lbstatus[best] : NULL, &total)) {
            best = i;
        }
    }
    ck_assert_int_ge(best, 0);
    slb_wrr_commit(&lbstatus[best], total);
    return best;
}

START_TEST(test_wrr_primitives)
{
    int a = 0, b = 0, total = 0;

    ck_assert_int_eq(slb_wrr_consider(&a, 3, NULL, &total), 1);
    ck_assert_int_eq(a, 3);
    ck_assert_int_eq(total, 3);
    /* a tie does not beat the best so far: the first one stays */
    ck_assert_int_eq(slb_wrr_consider(&b, 3, &a, &total), 0);
    ck_assert_int_eq(b, 3);
    ck_assert_int_eq(total, 6);
    ck_assert_int_eq(slb_wrr_consider(&b, 1, &a, &total), 1);
    ck_assert_int_eq(b, 4);
    ck_assert_int_eq(total, 7);
    slb_wrr_commit(&b, total);
    ck_assert_int_eq(b, -3);
    ck_assert_int_eq(a, 3);
}
END_TEST

START_TEST(test_wrr_123)
{
    static const int factor[3] = { 1, 2, 3 };
    /* mod_lbmethod_byrequests' sequence for 1:2:3 */
    static const int first6[6] = { 2, 1, 0, 2, 1, 2 };
    int lbstatus[3] = { 0, 0, 0 };
    int count[3] = { 0, 0, 0 };
    int seq[600];
    int i, w, k;

    for (i = 0; i < 600; i++) {
        seq[i] = wrr_pick(lbstatus, factor, 3);
        count[seq[i]]++;
        /* the statuses always sum to zero */
        ck_assert_int_eq(lbstatus[0] + lbstatus[1] + lbstatus[2], 0);
        if (i % 6 == 5) {
            /* a full cycle brings every member back to its start */
            ck_assert_int_eq(lbstatus[0], 0);
            ck_assert_int_eq(lbstatus[1], 0);
            ck_assert_int_eq(lbstatus[2], 0);
        }
    }
    ck_assert_int_eq(count[0], 100);
    ck_assert_int_eq(count[1], 200);
    ck_assert_int_eq(count[2], 300);
    for (i = 0; i < 6; i++) {
        ck_assert_int_eq(seq[i], first6[i]);
    }
    /* interleaved: in any window of 6 picks no member exceeds share + 1 */
    for (w = 0; w + 6 <= 600; w++) {
        int win[3] = { 0, 0, 0 };
        for (k = w; k < w + 6; k++) {
            win[seq[k]]++;
        }
        for (k = 0; k < 3; k++) {
            ck_assert_msg(win[k] <= factor[k] + 1,
                          "member %d picked %d times in window at %d", k,
                          win[k], w);
        }
    }
    /* never the heaviest member three times in a row */
    for (i = 0; i + 3 <= 600; i++) {
        ck_assert(!(seq[i] == seq[i + 1] && seq[i + 1] == seq[i + 2]));
    }
}
END_TEST

START_TEST(test_wrr_equal)
{
    static const int factor[3] = { 1, 1, 1 };
    int lbstatus[3] = { 0, 0, 0 };
    int i;

    for (i = 0; i < 30; i++) {
        ck_assert_int_eq(wrr_pick(lbstatus, factor, 3), i % 3);
    }
}
END_TEST

START_TEST(test_wrr_smooth_511)
{
    /* the classic smooth-WRR example: 5:1:1 gives a a b a c a a */
    static const int factor[3] = { 5, 1, 1 };
    static const int expect[7] = { 0, 0, 1, 0, 2, 0, 0 };
    int lbstatus[3] = { 0, 0, 0 };
    int i;

    for (i = 0; i < 70; i++) {
        ck_assert_int_eq(wrr_pick(lbstatus, factor, 3), expect[i % 7]);
    }
}
END_TEST

START_TEST(test_wrr_single)
{
    static const int factor[1] = { 7 };
    int lbstatus[1] = { 0 };
    int i;

    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(wrr_pick(lbstatus, factor, 1), 0);
        ck_assert_int_eq(lbstatus[0], 0);
    }
}
END_TEST

/* ====================================================================== */
/* slb_best_member: the walk of mod_proxy's get_best_worker               */

/* lbset n in the state bits */
#define LB(n) ((unsigned)(n) << SLB_M_LBSET_SHIFT)

/* the members offered, in order, as "i<best" ("0<-1 1<0 ..."), in buf */
typedef struct {
    char buf[256];
    int pick;               /* the member that wins every offer, -1: first */
} offer_log;

static int log_offer(void *baton, int i, int best)
{
    offer_log *o = baton;
    size_t n = strlen(o->buf);

    snprintf(o->buf + n, sizeof(o->buf) - n, "%s%d<%d", n ? " " : "", i,
             best);
    return o->pick < 0 ? best < 0 : i == o->pick;
}

static int walk(fake_table *t, int pick, offer_log *o)
{
    o->buf[0] = '\0';
    o->pick = pick;
    return slb_best_member(&fake_ops, t, log_offer, o);
}

START_TEST(test_best_regular_members)
{
    fake_member m[] = { M("a", "", U), M("b", "", U), M("c", "", U) };
    TABLE(t, m);
    offer_log o;

    /* every usable regular member offered in order, with the best so far */
    ck_assert_int_eq(walk(&t, 1, &o), 1);
    ck_assert_str_eq(o.buf, "0<-1 1<-1 2<1");
    ck_assert_int_eq(walk(&t, -1, &o), 0);
    ck_assert_str_eq(o.buf, "0<-1 1<0 2<0");
    assert_no_retry(&t);
}
END_TEST

START_TEST(test_best_lbsets)
{
    /* lbset 1 only when lbset 0 gives nothing; lbset 2 is learned from a
     * member listed before the lower ones */
    fake_member m[] = { M("z", "", U | LB(2)), M("a", "", U | LB(1)),
                        M("b", "", 0), M("c", "", U | LB(1)) };
    TABLE(t, m);
    offer_log o;

    ck_assert_int_eq(walk(&t, -1, &o), 1);
    ck_assert_str_eq(o.buf, "1<-1 3<1");
    m[1].state = m[3].state = LB(1);   /* lbset 1 down too */
    ck_assert_int_eq(walk(&t, -1, &o), 0);
    ck_assert_str_eq(o.buf, "0<-1");
    m[0].state = LB(2);
    ck_assert_int_eq(walk(&t, -1, &o), -1);
    ck_assert_str_eq(o.buf, "");
    m[2].state = U;                    /* lbset 0 back: the others unseen */
    ck_assert_int_eq(walk(&t, -1, &o), 2);
    ck_assert_str_eq(o.buf, "2<-1");
}
END_TEST

START_TEST(test_best_drain_and_spares)
{
    /* a draining regular member counts as unusable: a spare takes its
     * place; spares only as many as unusable members, in order */
    fake_member m[] = { M("a", "", U | DR), M("b", "", U),
                        M("s1", "", U | SP), M("s2", "", U | SP),
                        M("c", "", ER) };
    TABLE(t, m);
    offer_log o;

    ck_assert_int_eq(walk(&t, -1, &o), 1);
    ck_assert_str_eq(o.buf, "1<-1 2<1 3<1");   /* a, c unusable: 2 spares */
    m[4].state = U;                              /* c usable: one spare */
    ck_assert_int_eq(walk(&t, -1, &o), 1);
    ck_assert_str_eq(o.buf, "1<-1 4<1 2<1");
    m[0].state = U;                              /* none unusable */
    ck_assert_int_eq(walk(&t, -1, &o), 0);
    ck_assert_str_eq(o.buf, "0<-1 1<0 4<0");
    /* a draining spare is neither offered nor counted */
    m[0].state = 0;
    m[2].state = U | SP | DR;
    ck_assert_int_eq(walk(&t, 3, &o), 3);
    ck_assert_str_eq(o.buf, "1<-1 4<-1 3<-1");
}
END_TEST

START_TEST(test_best_standbys_last)
{
    fake_member m[] = { M("h1", "", U | SB), M("a", "", 0),
                        M("h2", "", U | SB), M("sp", "", SP) };
    TABLE(t, m);
    offer_log o;

    /* nothing else usable: every standby offered */
    ck_assert_int_eq(walk(&t, 2, &o), 2);
    ck_assert_str_eq(o.buf, "0<-1 2<-1");
    /* a usable spare (replacing a) comes first; no standby then */
    m[3].state = U | SP;
    ck_assert_int_eq(walk(&t, -1, &o), 3);
    ck_assert_str_eq(o.buf, "3<-1");
    /* a member both spare and standby is a spare */
    m[3].state = U | SP | SB;
    ck_assert_int_eq(walk(&t, -1, &o), 3);
    ck_assert_str_eq(o.buf, "3<-1");
    /* a usable regular member: the standbys are never offered */
    m[1].state = U;
    m[3].state = SP;
    ck_assert_int_eq(walk(&t, -1, &o), 1);
    ck_assert_str_eq(o.buf, "1<-1");
}
END_TEST

START_TEST(test_best_retry)
{
    /* a member in error gets its retry before it is judged; a usable one
     * or one not in error never does */
    fake_member m[] = { MR("a", "", ER, U), MR("b", "", ER, ER),
                        M("c", "", 0), M("d", "", U) };
    TABLE(t, m);
    offer_log o;

    ck_assert_int_eq(walk(&t, -1, &o), 0);
    ck_assert_str_eq(o.buf, "0<-1 3<0");
    ck_assert_int_eq(m[0].retry_calls, 1);
    ck_assert_int_eq(m[1].retry_calls, 1);
    ck_assert_int_eq(m[2].retry_calls, 0);
    ck_assert_int_eq(m[3].retry_calls, 0);
    /* a draining member in error: skipped before any retry */
    m[0].state = ER | DR;
    m[0].retry_calls = 0;
    ck_assert_int_eq(walk(&t, -1, &o), 3);
    ck_assert_int_eq(m[0].retry_calls, 0);
}
END_TEST

START_TEST(test_best_empty)
{
    fake_table t = { NULL, 0, 0 };
    offer_log o;

    ck_assert_int_eq(walk(&t, -1, &o), -1);
    ck_assert_str_eq(o.buf, "");
}
END_TEST

/* ====================================================================== */
/* the members' signature of the hash memo (slb_sig_*)                     */

typedef struct {
    apr_uint64_t word;       /* status, lbset, loadfactor */
    apr_uint64_t id;
    char route[SLB_MAX_ROUTE_LEN + 1];
} sig_member;

static apr_uint64_t sig_of(const sig_member *m, int n)
{
    apr_uint64_t h = slb_sig_word(0, (apr_uint64_t)n);
    int i;

    for (i = 0; i < n; i++) {
        h = slb_sig_word(h, m[i].word);
        h = slb_sig_word(h, m[i].id);
        h = slb_sig_route(h, m[i].route);
    }
    return slb_sig_finish(h);
}

START_TEST(test_sig_changes)
{
    sig_member m[3], c[3];
    apr_uint64_t base;
    int i, bit;

    memset(m, 0, sizeof(m));
    for (i = 0; i < 3; i++) {
        m[i].word = 0x100u + (unsigned)i;
        m[i].id = 1000u + (unsigned)i;
        snprintf(m[i].route, sizeof(m[i].route), "member-route-%d", i);
    }
    base = sig_of(m, 3);
    memcpy(c, m, sizeof(m));
    ck_assert(sig_of(c, 3) == base);             /* equal tables */
    ck_assert(sig_of(m, 2) != base);             /* a member fewer */
    for (i = 0; i < 3; i++) {
        for (bit = 0; bit < 64; bit++) {         /* any bit of the word */
            memcpy(c, m, sizeof(m));
            c[i].word ^= (apr_uint64_t)1 << bit;
            ck_assert(sig_of(c, 3) != base);
        }
        memcpy(c, m, sizeof(m));
        c[i].id++;
        ck_assert(sig_of(c, 3) != base);
        /* a route byte past the first word, and a shorter route */
        memcpy(c, m, sizeof(m));
        c[i].route[13] = 'X';
        ck_assert(sig_of(c, 3) != base);
        memcpy(c, m, sizeof(m));
        c[i].route[5] = '\0';
        ck_assert(sig_of(c, 3) != base);
    }
    /* two members swapped */
    memcpy(c, m, sizeof(m));
    c[0] = m[1];
    c[1] = m[0];
    ck_assert(sig_of(c, 3) != base);
    /* a route of the whole array (no NUL in it) is read to its end only */
    memcpy(c, m, sizeof(m));
    memset(c[2].route, 'r', sizeof(c[2].route));
    ck_assert(sig_of(c, 3) != base);
}
END_TEST

/* ====================================================================== */
/* rendezvous hashing (StickyLBNewSessions hash)                           */

/* The winner among n members (names, weights; weight 0: left out) for
 * key k, as the member walk picks it. */
static int hrw_pick(const char *k, const char *const *names,
                    const int *weights, int n)
{
    apr_uint64_t key = slb_hrw_key(k, strlen(k));
    slb_hrw_best best = { 0, 0 };
    double top = 0;
    int i, winner = -1, ref = -1;

    for (i = 0; i < n; i++) {
        double sc = slb_hrw_score(key, names[i], weights[i]);
        if (weights[i] > 0
            && slb_hrw_consider(key, names[i], weights[i], &best,
                                winner < 0)) {
            winner = i;
        }
        /* the walk's winner is the highest score */
        if (weights[i] > 0 && (ref < 0 || sc > top)) {
            ref = i;
            top = sc;
        }
    }
    ck_assert_int_eq(winner, ref);
    return winner;
}

/* test_hrw_stable's vectors (computed once with this implementation) */
#define HRW_KEY0 1
#define HRW_SIG64 222186554u

static const char *const HRW5[5] = { "m1", "m2", "m3", "m4", "m5" };

START_TEST(test_hrw_score_range)
{
    apr_uint64_t k = slb_hrw_key("abc", 3);
    double s1 = slb_hrw_score(k, "t1", 1);

    /* deterministic, positive, finite, proportional to the weight */
    ck_assert(s1 > 0 && s1 < 1e18);
    ck_assert(slb_hrw_score(k, "t1", 1) == s1);
    ck_assert(fabs(slb_hrw_score(k, "t1", 3) - 3 * s1) <= 1e-12 * s1);
    ck_assert(slb_hrw_score(k, "t1", 0) == 0.0);
    ck_assert(slb_hrw_score(k, "t1", -1) == 0.0);
    /* key and member both count; ("ab","c") is not ("a","bc") */
    ck_assert(slb_hrw_score(k, "t2", 1) != s1);
    ck_assert(slb_hrw_score(slb_hrw_key("abd", 3), "t1", 1) != s1);
    ck_assert(slb_hrw_score(slb_hrw_key("ab", 2), "c", 1)
              != slb_hrw_score(slb_hrw_key("a", 1), "bc", 1));
    /* an empty key is a key too */
    ck_assert(slb_hrw_score(slb_hrw_key("", 0), "t1", 1) > 0);
}
END_TEST

/* Fixed vectors: the placement must not change between releases (nor
 * between balancers built from different releases) without notice. */
START_TEST(test_hrw_stable)
{
    static const int w1[5] = { 1, 1, 1, 1, 1 };
    char k[32];
    int i, count[5] = { 0, 0, 0, 0, 0 };
    unsigned sig = 0;

    ck_assert_uint_eq(slb_hrw_key("", 0), 0xefd01f60ba992926ULL);
    for (i = 0; i < 64; i++) {
        int m;
        snprintf(k, sizeof(k), "key-%d", i);
        m = hrw_pick(k, HRW5, w1, 5);
        /* the same answer every time it is asked, in any member order */
        ck_assert_int_eq(hrw_pick(k, HRW5, w1, 5), m);
        {
            static const char *const rev[5] = { "m5", "m4", "m3", "m2",
                                                "m1" };
            ck_assert_int_eq(4 - hrw_pick(k, rev, w1, 5), m);
        }
        count[m]++;
        sig = sig * 5 + (unsigned)m;
    }
    /* every member wins some of 64 keys */
    for (i = 0; i < 5; i++) {
        ck_assert_int_gt(count[i], 0);
    }
    ck_assert_int_eq(hrw_pick("key-0", HRW5, w1, 5), HRW_KEY0);
    ck_assert_uint_eq(sig, HRW_SIG64);
}
END_TEST

START_TEST(test_hrw_distribution)
{
    static const int w1[5] = { 1, 1, 1, 1, 1 };
    char k[48];
    int i, j, count[5] = { 0, 0, 0, 0, 0 };
    const int n = 100000;

    for (i = 0; i < n; i++) {
        /* keys as clients send them: addresses, sequential ids */
        if (i % 2) {
            snprintf(k, sizeof(k), "10.%d.%d.%d", (i >> 16) & 255,
                     (i >> 8) & 255, i & 255);
        }
        else {
            snprintf(k, sizeof(k), "%d", i);
        }
        count[hrw_pick(k, HRW5, w1, 5)]++;
    }
    /* each 20% within 1% of all keys (binomial sd ~0.13%) */
    for (j = 0; j < 5; j++) {
        ck_assert_msg(count[j] > n / 5 - n / 100
                      && count[j] < n / 5 + n / 100,
                      "member %d has %d of %d keys", j, count[j], n);
    }
}
END_TEST

/* A member leaving moves only its own keys, to the others evenly; one
 * coming back takes exactly those keys back. */
START_TEST(test_hrw_member_leaves)
{
    static const int w5[5] = { 1, 1, 1, 1, 1 };
    static const int w4[5] = { 1, 1, 0, 1, 1 };   /* m3 gone */
    char k[32];
    int i, moved = 0, on_m3 = 0, to[5] = { 0, 0, 0, 0, 0 };
    const int n = 20000;

    for (i = 0; i < n; i++) {
        int before, after;
        snprintf(k, sizeof(k), "session-%d", i);
        before = hrw_pick(k, HRW5, w5, 5);
        after = hrw_pick(k, HRW5, w4, 5);
        ck_assert_int_ne(after, 2);
        if (before != after) {
            moved++;
            ck_assert_int_eq(before, 2);    /* only m3's keys move */
            to[after]++;
        }
        on_m3 += before == 2;
    }
    ck_assert_int_eq(moved, on_m3);
    ck_assert_msg(moved < n / 4, "%d of %d moved", moved, n);
    /* its keys spread over the four others, about a quarter each */
    for (i = 0; i < 5; i++) {
        if (i != 2) {
            ck_assert_msg(to[i] > moved / 4 - moved / 20
                          && to[i] < moved / 4 + moved / 20,
                          "member %d got %d of %d moved keys", i, to[i],
                          moved);
        }
    }
}
END_TEST

/* loadfactor 2:1 gives a 2:1 split; raising a weight only moves keys to
 * that member (slow start ramps without reshuffling the others). */
START_TEST(test_hrw_weights)
{
    static const char *const two[2] = { "a", "b" };
    static const int w21[2] = { 2, 1 };
    static const char *const three[3] = { "a", "b", "c" };
    static const int w111[3] = { 1, 1, 1 };
    static const int w113[3] = { 1, 1, 3 };
    char k[32];
    int i, count[2] = { 0, 0 };
    const int n = 30000;

    for (i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "u%d", i);
        count[hrw_pick(k, two, w21, 2)]++;
    }
    /* a's share 2/3 within 1% */
    ck_assert_msg(count[0] > n * 2 / 3 - n / 100
                  && count[0] < n * 2 / 3 + n / 100,
                  "2:1 gave %d:%d", count[0], count[1]);
    for (i = 0; i < n; i++) {
        int before, after;
        snprintf(k, sizeof(k), "u%d", i);
        before = hrw_pick(k, three, w111, 3);
        after = hrw_pick(k, three, w113, 3);
        ck_assert(before == after || after == 2);
    }
}
END_TEST

/* ====================================================================== */

Suite *select_suite(void)
{
    Suite *s = suite_create("select");
    TCase *tc;

    tc = tcase_create("names");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_decision_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("decide");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sticky_hit);
    tcase_add_test(tc, test_unknown_route_next_candidate);
    tcase_add_test(tc, test_disabled_failover);
    tcase_add_test(tc, test_in_error_retry_recovers);
    tcase_add_test(tc, test_in_error_still_down);
    tcase_add_test(tc, test_in_error_without_retry_op);
    tcase_add_test(tc, test_usable_not_retried);
    tcase_add_test(tc, test_nofailover_refuse);
    tcase_add_test(tc, test_draining_still_sticky);
    tcase_add_test(tc, test_empty_and_null_candidates);
    suite_add_tcase(s, tc);

    tc = tcase_create("redirect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_redirect_usable);
    tcase_add_test(tc, test_redirect_target_retried);
    tcase_add_test(tc, test_redirect_ignored_when_usable);
    tcase_add_test(tc, test_redirect_target_down);
    tcase_add_test(tc, test_redirect_unknown_target);
    tcase_add_test(tc, test_redirect_chain);
    tcase_add_test(tc, test_redirect_loop_terminates);
    tcase_add_test(tc, test_redirect_self_and_long_loops);
    tcase_add_test(tc, test_redirect_duplicate_routes_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("standby");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_standby);
    tcase_add_test(tc, test_standby_after_retry);
    tcase_add_test(tc, test_standby_only_route);
    tcase_add_test(tc, test_redirect_before_standby);
    tcase_add_test(tc, test_spare_is_regular_pass);
    suite_add_tcase(s, tc);

    tc = tcase_create("find_route");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_find_route_args);
    tcase_add_test(tc, test_find_route_no_redirect_op);
    suite_add_tcase(s, tc);

    tc = tcase_create("wrr");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_wrr_primitives);
    tcase_add_test(tc, test_wrr_123);
    tcase_add_test(tc, test_wrr_equal);
    tcase_add_test(tc, test_wrr_smooth_511);
    tcase_add_test(tc, test_wrr_single);
    suite_add_tcase(s, tc);

    tc = tcase_create("best_member");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_best_regular_members);
    tcase_add_test(tc, test_best_lbsets);
    tcase_add_test(tc, test_best_drain_and_spares);
    tcase_add_test(tc, test_best_standbys_last);
    tcase_add_test(tc, test_best_retry);
    tcase_add_test(tc, test_best_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("signature");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sig_changes);
    suite_add_tcase(s, tc);

    tc = tcase_create("hash");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_hrw_score_range);
    tcase_add_test(tc, test_hrw_stable);
    tcase_add_test(tc, test_hrw_distribution);
    tcase_add_test(tc, test_hrw_member_leaves);
    tcase_add_test(tc, test_hrw_weights);
    suite_add_tcase(s, tc);

    return s;
}
