/*
 * check_discover.c - Check tests of discovery's core (stickylb_discover.c)
 * and of the DNS sources' configuration and time bounds (stickylb_dns.c),
 * on a clock of the test's own: the common options, entries normalised
 * and refused, each decision of slb_disc_plan (add, keep, loadfactor,
 * leave with its grace, return into the same slot, damping of a flapping
 * member, growth slots full, an operator's disabled member left alone,
 * routes of configured and discovered members), the next fetch after an
 * answer (TTL bounded) and after failures (backoff bounded).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <apr_strings.h>

#include "check_stickylb.h"
#include "stickylb_discover.h"

#define T0 apr_time_from_sec(1700000000)
#define SEC(n) apr_time_from_sec(n)
#define MS(n) apr_time_from_msec(n)
#define CAP 8

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* ------------------------------------------------------------------ */
/* a small harness: a set, answers, the actions of one round            */

typedef struct {
    slb_disc_conf c;
    slb_disc_member set[CAP];
    apr_array_header_t *fixed;
    apr_array_header_t *actions;
    apr_array_header_t *notes;
    slb_disc_counts n;
    int free_slots;
    apr_uint32_t last_enable;   /* the flags of the last ENABLE */
} world;

static void world_init(world *w)
{
    memset(w, 0, sizeof(*w));
    slb_disc_conf_init(&w->c);
    w->c.grace = SEC(10);
    w->c.flap_limit = 2;
    w->c.flap_window = SEC(60);
    w->c.flap_hold = SEC(5);
    w->fixed = apr_array_make(pool, 2, sizeof(slb_disc_entry));
    w->free_slots = CAP;
}

/* "url route lf" entries; route "-" = derived, lf 0 = not given */
static apr_array_header_t *answer(int n, ...)
{
    apr_array_header_t *a = apr_array_make(pool, n + 1,
                                           sizeof(slb_disc_entry));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        slb_disc_entry *e = apr_array_push(a);
        const char *r;
        e->url = va_arg(ap, const char *);
        r = va_arg(ap, const char *);
        e->route = strcmp(r, "-") ? r : NULL;
        e->loadfactor = va_arg(ap, int);
        e->origin = apr_psprintf(pool, "test %d", i);
    }
    va_end(ap);
    return a;
}

/* one round; the glue's part done: ADD takes a slot */
static int round_at(world *w, apr_array_header_t *entries, apr_time_t now)
{
    int i, n;

    w->actions = apr_array_make(pool, 8, sizeof(slb_disc_action));
    w->notes = apr_array_make(pool, 8, sizeof(const char *));
    n = slb_disc_plan(pool, &w->c, w->set, CAP, entries, w->fixed,
                      w->free_slots, now, w->actions, &w->n, w->notes);
    for (i = 0; i < w->actions->nelts; i++) {
        slb_disc_action *a = &APR_ARRAY_IDX(w->actions, i, slb_disc_action);
        if (a->kind == SLB_DA_ADD) {
            w->free_slots--;
        }
        else if (a->kind == SLB_DA_ENABLE) {
            /* what to clear: what was ours */
            ck_assert_uint_ne(a->flags, 0);
            w->last_enable = a->flags;
        }
    }
    return n;
}

/* the actions as "kind:route ..." */
static const char *acts(world *w)
{
    const char *s = "";
    int i;

    for (i = 0; i < w->actions->nelts; i++) {
        slb_disc_action *a = &APR_ARRAY_IDX(w->actions, i, slb_disc_action);
        s = apr_pstrcat(pool, s, i ? " " : "", slb_da_kind_name(a->kind),
                        ":", w->set[a->member].route[0]
                                 ? w->set[a->member].route : "(none)",
                        NULL);
    }
    return s;
}

static slb_disc_member *by_route(world *w, const char *route)
{
    int i;

    for (i = 0; i < CAP; i++) {
        if (w->set[i].state != SLB_DM_FREE
            && !strcmp(w->set[i].route, route)) {
            return &w->set[i];
        }
    }
    return NULL;
}

static int slot_of(world *w, const char *route)
{
    slb_disc_member *m = by_route(w, route);

    return m ? (int)(m - w->set) : -1;
}

#define A "http://10.0.0.1:8080"
#define B "http://10.0.0.2:8080"
#define C "http://10.0.0.3:8080"
#define D "http://10.0.0.4:8080"

/* ------------------------------------------------------------------ */
/* options                                                              */

START_TEST(test_conf_defaults)
{
    slb_disc_conf c;
    apr_table_t *rest = apr_table_make(pool, 4);

    ck_assert_ptr_null(slb_disc_conf_parse(pool, &c, 0, NULL, rest));
    ck_assert_int_eq(c.interval, SEC(10));
    ck_assert_int_eq(c.min_interval, SEC(1));
    ck_assert_int_eq(c.max_interval, SEC(300));
    ck_assert_int_eq(c.backoff_max, SEC(60));
    ck_assert_int_eq(c.grace, SEC(60));
    ck_assert_int_eq(c.wait, 0);
    ck_assert_int_eq(c.flap_limit, 3);
    ck_assert_int_eq(c.flap_window, SEC(60));
    ck_assert_int_eq(c.flap_hold, SEC(30));
    ck_assert_str_eq(c.route_prefix, "");
    ck_assert_int_eq(c.loadfactor, 1);
}
END_TEST

START_TEST(test_conf_parse)
{
    const char *argv[] = { "interval=500ms", "Grace=2s", "server=10.0.0.1",
                           "flap-limit=0", "route-prefix=app-",
                           "loadfactor=5", "timeout=1s", "wait=20" };
    slb_disc_conf c;
    apr_table_t *rest = apr_table_make(pool, 4);

    ck_assert_ptr_null(slb_disc_conf_parse(pool, &c, 8, argv, rest));
    ck_assert_int_eq(c.interval, MS(500));
    /* min-interval not given: the interval when that is shorter */
    ck_assert_int_eq(c.min_interval, MS(500));
    ck_assert_int_eq(c.grace, SEC(2));
    ck_assert_int_eq(c.flap_limit, 0);
    ck_assert_str_eq(c.route_prefix, "app-");
    ck_assert_int_eq(c.loadfactor, 5);
    ck_assert_int_eq(c.wait, SEC(20));
    /* the kind's own options, for its create() */
    ck_assert_str_eq(apr_table_get(rest, "server"), "10.0.0.1");
    ck_assert_str_eq(apr_table_get(rest, "timeout"), "1s");
    ck_assert_int_eq(apr_table_elts(rest)->nelts, 2);
}
END_TEST

START_TEST(test_conf_errors)
{
    static const struct {
        const char *arg, *expect;
    } bad[] = {
        { "interval", "key=value" },
        { "interval=10m", "interval=10m" },
        { "interval=50ms", "interval=50ms" },
        { "grace=-1", "grace=-1" },
        { "loadfactor=0", "loadfactor=0" },
        { "loadfactor=101", "loadfactor=101" },
        { "route-prefix=a.b", "no '.'" },
        { "route-prefix=a;b", "route-prefix" },
        { "flap-limit=x", "flap-limit=x" },
    };
    const char *two[] = { "interval=5s", "min-interval=10s" };
    const char *three[] = { "interval=5s", "max-interval=2s" };
    const char *four[] = { "interval=5s", "min-interval=2s",
                           "backoff-max=1s" };
    slb_disc_conf c;
    const char *err;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = { bad[i].arg };
        err = slb_disc_conf_parse(pool, &c, 1, argv,
                                  apr_table_make(pool, 1));
        ck_assert_msg(err && strstr(err, bad[i].expect), "%s: %s",
                      bad[i].arg, err ? err : "(accepted)");
    }
    err = slb_disc_conf_parse(pool, &c, 2, two, NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "min-interval= (10 s) <= interval="));
    ck_assert_ptr_nonnull(slb_disc_conf_parse(pool, &c, 2, three, NULL));
    err = slb_disc_conf_parse(pool, &c, 3, four, NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "backoff-max="));
    /* without a table for the rest, another option is unknown */
    {
        const char *argv[] = { "server=1.2.3.4" };
        err = slb_disc_conf_parse(pool, &c, 1, argv, NULL);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_nonnull(strstr(err, "unknown option 'server=1.2.3.4'"));
    }
}
END_TEST

START_TEST(test_check_options)
{
    static const char *const own[] = { "server=", "timeout=", NULL };
    apr_table_t *o = apr_table_make(pool, 2);
    const char *err;

    apr_table_set(o, "server", "1.2.3.4");
    ck_assert_ptr_null(slb_disc_check_options(pool, o, own));
    apr_table_set(o, "timout", "1s");
    err = slb_disc_check_options(pool, o, own);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "'timout=1s'"));
    ck_assert_ptr_nonnull(strstr(err, "did you mean timeout=?"));
    /* the message lists the kind's options and the common ones */
    ck_assert_ptr_nonnull(strstr(err, "server=, timeout=, interval="));
    ck_assert_ptr_nonnull(strstr(err, "loadfactor="));
}
END_TEST

START_TEST(test_source_table)
{
    ck_assert_ptr_eq(slb_disc_source("dns"), &slb_dns_ops);
    ck_assert_ptr_eq(slb_disc_source("SRV"), &slb_srv_ops);
    ck_assert_ptr_null(slb_disc_source("dnz"));
    ck_assert_ptr_null(slb_disc_source(NULL));
    ck_assert_ptr_nonnull(strstr(slb_disc_source_names(pool), "dns, srv"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* entries                                                              */

START_TEST(test_url_norm)
{
    static const struct {
        const char *in, *out, *host;
        int port;
    } good[] = {
        { "http://10.0.0.5:8080", "http://10.0.0.5:8080", "10.0.0.5", 8080 },
        { "HTTP://App.Example:80/", "http://app.example:80", "app.example",
          80 },
        { "https://[FD00::5]:8443", "https://[fd00::5]:8443", "fd00::5",
          8443 },
        { "ajp://b_1:8009", "ajp://b_1:8009", "b_1", 8009 },
        { "h2c://h:1", "h2c://h:1", "h", 1 },
    };
    static const char *const bad[] = {
        NULL, "", "10.0.0.5:8080", "ftp://a:21", "http://:80", "http://a",
        "http://a:", "http://a:0", "http://a:65536", "http://a:80/x",
        "http://a:80?x", "http://u@a:80", "http://[zz::1]:80",
        "http://[::1:80", "http://a b:80", "http://a:80//",
        "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaa.example:80",
    };
    const char *why, *host;
    int port;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *u = slb_disc_url_norm(pool, good[i].in, &why, &host,
                                          &port);
        ck_assert_msg(u != NULL, "%s: %s", good[i].in, why);
        ck_assert_str_eq(u, good[i].out);
        ck_assert_str_eq(host, good[i].host);
        ck_assert_int_eq(port, good[i].port);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(slb_disc_url_norm(pool, bad[i], &why, NULL, NULL)
                          == NULL,
                      "%s accepted", bad[i] ? bad[i] : "(null)");
        ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(test_route_derivation)
{
    ck_assert_str_eq(slb_disc_route_of(pool, "", "10.0.0.5"), "10-0-0-5");
    ck_assert_str_eq(slb_disc_route_of(pool, "app-", "10.0.0.5"),
                     "app-10-0-0-5");
    ck_assert_str_eq(slb_disc_route_of(pool, "", "fd00::5"), "fd00--5");
    ck_assert_str_eq(slb_disc_route_of(pool, NULL, "Web1.Example"),
                     "web1-example");
    ck_assert_ptr_null(slb_disc_route_of(pool, "", ""));
    ck_assert_ptr_null(slb_disc_route_of(pool, "", NULL));
    /* longer than a route can be */
    ck_assert_ptr_null(slb_disc_route_of(
        pool, "pppppppppppppppppppppppppppppppp",
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"));
    ck_assert_str_eq(slb_disc_first_label(pool, "App3.example.com."), "app3");
    ck_assert_str_eq(slb_disc_first_label(pool, "web_1"), "web_1");
    ck_assert_ptr_null(slb_disc_first_label(pool, ".example"));
    ck_assert_ptr_null(slb_disc_first_label(pool, "a b.example"));
    ck_assert_ptr_null(slb_disc_first_label(pool, NULL));
}
END_TEST

START_TEST(test_malformed_entries)
{
    world w;
    slb_disc_entry *f;

    world_init(&w);
    f = apr_array_push(w.fixed);
    f->url = "http://10.0.0.9:8080/";    /* a configured member */
    f->route = "static";
    round_at(&w, answer(10,
                        "nonsense", "-", 0,             /* no URL */
                        "http://10.0.0.7", "-", 0,      /* no port */
                        A, "bad;route", 0,              /* bad route */
                        B, "b", 101,                    /* loadfactor */
                        "http://10.0.0.9:8080", "x", 0, /* configured */
                        C, "static", 0,                 /* its route */
                        D, "d", 0,
                        D, "d2", 0,                     /* D twice */
                        "http://10.0.0.6:8080", "d", 0, /* d taken */
                        D, "d", 0),                     /* same: merged */
             T0);
    ck_assert_int_eq(w.n.malformed, 7);
    ck_assert_int_eq(w.n.configured, 1);
    ck_assert_int_eq(w.n.added, 1);
    ck_assert_str_eq(acts(&w), "add:d");
    ck_assert_int_eq(w.notes->nelts, 7);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(w.notes, 5, const char *),
                                 "is in the answer twice"));
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(w.notes, 4, const char *),
                                 "configured member"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* decisions                                                            */

START_TEST(test_add_keep_update)
{
    world w;

    world_init(&w);
    ck_assert_int_eq(round_at(&w, answer(2, A, "-", 0, B, "b", 7), T0), 2);
    ck_assert_str_eq(acts(&w), "add:10-0-0-1 add:b");
    ck_assert_int_eq(w.n.added, 2);
    ck_assert_int_eq(by_route(&w, "10-0-0-1")->loadfactor, 1);
    ck_assert_int_eq(by_route(&w, "b")->loadfactor, 7);
    ck_assert_int_eq(by_route(&w, "b")->state, SLB_DM_ACTIVE);
    ck_assert_int_eq(by_route(&w, "b")->added, T0);
    ck_assert_str_eq(by_route(&w, "b")->origin, "test 1");
    /* the same answer: nothing to do */
    ck_assert_int_eq(round_at(&w, answer(2, B, "b", 7, A, "-", 0), T0 + SEC(1)),
                     0);
    ck_assert_int_eq(by_route(&w, "b")->seen, T0 + SEC(1));
    /* a new loadfactor, a new route for A */
    round_at(&w, answer(2, A, "a", 0, B, "b", 3), T0 + SEC(2));
    ck_assert_str_eq(acts(&w), "route:a loadfactor:b");
    ck_assert_int_eq(by_route(&w, "b")->loadfactor, 3);
    ck_assert_int_eq(w.n.updated, 2);
    /* no news (a failed or unchanged fetch): the set stays */
    ck_assert_int_eq(round_at(&w, NULL, T0 + SEC(100)), 0);
    ck_assert_int_eq(by_route(&w, "b")->state, SLB_DM_ACTIVE);
    ck_assert_int_eq(by_route(&w, "a")->state, SLB_DM_ACTIVE);
}
END_TEST

START_TEST(test_leave_grace_return)
{
    world w;
    slb_disc_member *b;
    int slot;

    world_init(&w);
    w.c.flap_limit = 0;      /* returns are not damped here */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0);
    slot = slot_of(&w, "b");
    /* b leaves: drained */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(1));
    ck_assert_str_eq(acts(&w), "drain:b");
    b = by_route(&w, "b");
    ck_assert_int_eq(b->state, SLB_DM_LEAVING);
    ck_assert_uint_eq(b->owned, SLB_DISC_F_DRAIN);
    ck_assert_int_eq(w.n.left, 1);
    /* within grace: nothing, also without news */
    ck_assert_int_eq(round_at(&w, answer(1, A, "a", 0), T0 + SEC(10)), 0);
    ck_assert_int_eq(round_at(&w, NULL, T0 + SEC(10) + MS(999)), 0);
    /* grace over: disabled (also on a round without news) */
    round_at(&w, NULL, T0 + SEC(11));
    ck_assert_str_eq(acts(&w), "disable:b");
    ck_assert_int_eq(b->state, SLB_DM_GONE);
    ck_assert_uint_eq(b->owned, SLB_DISC_F_DRAIN | SLB_DISC_F_DISABLE);
    /* back: its own slot and route, no slot taken */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(20));
    ck_assert_str_eq(acts(&w), "enable:b");
    ck_assert_uint_eq(w.last_enable, SLB_DISC_F_DRAIN | SLB_DISC_F_DISABLE);
    ck_assert_int_eq(slot_of(&w, "b"), slot);
    ck_assert_int_eq(b->state, SLB_DM_ACTIVE);
    ck_assert_int_eq(b->since, T0 + SEC(20));
    ck_assert_int_eq(w.free_slots, CAP - 2);
    ck_assert_int_eq(w.n.returned, 1);
    /* back within grace: enabled again, never disabled */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(21));
    ck_assert_str_eq(acts(&w), "drain:b");
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(22));
    ck_assert_str_eq(acts(&w), "enable:b");
    ck_assert_uint_eq(b->owned, 0);
    /* grace=0: disabled at once */
    w.c.grace = 0;
    round_at(&w, answer(1, B, "b", 0), T0 + SEC(200));
    ck_assert_str_eq(acts(&w), "drain:a disable:a");
}
END_TEST

START_TEST(test_damping)
{
    world w;
    slb_disc_member *b;

    world_init(&w);      /* flap-limit=2 in 60 s, hold 5 s */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0);
    b = by_route(&w, "b");
    /* first return: back */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(1));
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(2));
    ck_assert_int_eq(b->state, SLB_DM_ACTIVE);
    /* second return within the window: held (stays drained) */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(3));
    ck_assert_str_eq(acts(&w), "drain:b");
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(4));
    ck_assert_str_eq(acts(&w), "");
    ck_assert_int_eq(b->state, SLB_DM_HELD);
    ck_assert_int_eq(w.n.held, 1);
    ck_assert_uint_eq(b->owned, SLB_DISC_F_DRAIN);
    /* still held before flap-hold= */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(8));
    ck_assert_int_eq(b->state, SLB_DM_HELD);
    /* a held member that leaves starts over as leaving */
    /* stable for flap-hold=: released */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(9));
    ck_assert_str_eq(acts(&w), "enable:b");
    ck_assert_int_eq(b->state, SLB_DM_ACTIVE);
    ck_assert_int_eq(w.n.released, 1);
    /* a return after the window: counted from 1 again, back at once */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(100));
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(101));
    ck_assert_str_eq(acts(&w), "enable:b");
    ck_assert_uint_eq(b->returns, 1);
    /* a held member that leaves: leaving, the drain is there already */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(102));
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(103));
    ck_assert_int_eq(b->state, SLB_DM_HELD);
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(104));
    ck_assert_str_eq(acts(&w), "");
    ck_assert_int_eq(b->state, SLB_DM_LEAVING);
    /* held, released by its timer in the round it leaves: enabled, then
     * drained again (the drain is not lost behind the enable) */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(110));
    ck_assert_int_eq(b->state, SLB_DM_HELD);     /* a third return */
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(115));
    ck_assert_str_eq(acts(&w), "enable:b drain:b");
    ck_assert_int_eq(b->state, SLB_DM_LEAVING);
    ck_assert_uint_eq(b->owned, SLB_DISC_F_DRAIN);
    /* flap-limit=0: no damping */
    w.c.flap_limit = 0;
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(105));
    ck_assert_int_eq(b->state, SLB_DM_ACTIVE);
}
END_TEST

START_TEST(test_slots_full)
{
    world w;

    world_init(&w);
    w.free_slots = 1;
    round_at(&w, answer(3, A, "a", 0, B, "b", 0, C, "c", 0), T0);
    ck_assert_str_eq(acts(&w), "add:a");
    ck_assert_int_eq(w.n.full, 2);
    ck_assert_int_eq(w.n.added, 1);
    /* nothing free: the rest waits, a is kept */
    round_at(&w, answer(3, A, "a", 0, B, "b", 0, C, "c", 0), T0 + SEC(1));
    ck_assert_str_eq(acts(&w), "");
    ck_assert_int_eq(w.n.full, 2);
    /* a slot more: the next one */
    w.free_slots = 1;
    round_at(&w, answer(3, A, "a", 0, B, "b", 0, C, "c", 0), T0 + SEC(2));
    ck_assert_str_eq(acts(&w), "add:b");
    ck_assert_int_eq(w.n.full, 1);
    /* a member that returns needs no slot */
    round_at(&w, answer(1, B, "b", 0), T0 + SEC(3));
    w.c.grace = 0;
    round_at(&w, answer(1, B, "b", 0), T0 + SEC(4));
    ck_assert_int_eq(by_route(&w, "a")->state, SLB_DM_GONE);
    ck_assert_int_eq(w.free_slots, 0);
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(5));
    ck_assert_str_eq(acts(&w), "enable:a");
    ck_assert_int_eq(w.n.full, 0);
}
END_TEST

START_TEST(test_operator_state)
{
    world w;
    slb_disc_member *b;

    world_init(&w);
    w.c.flap_limit = 0;
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0);
    b = by_route(&w, "b");
    /* the operator disabled b: it leaves, nothing is set on it */
    b->operator_off = 1;
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(1));
    ck_assert_str_eq(acts(&w), "");
    ck_assert_int_eq(b->state, SLB_DM_LEAVING);
    round_at(&w, NULL, T0 + SEC(20));
    ck_assert_str_eq(acts(&w), "");
    ck_assert_int_eq(b->state, SLB_DM_GONE);
    ck_assert_uint_eq(b->owned, 0);
    /* back: nothing of ours to clear, the operator's disable stays */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(21));
    ck_assert_str_eq(acts(&w), "");
    ck_assert_int_eq(b->state, SLB_DM_ACTIVE);
    /* our drain, then the operator's disable: the enable clears only the
     * drain (the glue clears the flags in owned) */
    b->operator_off = 0;
    round_at(&w, answer(1, A, "a", 0), T0 + SEC(30));
    ck_assert_str_eq(acts(&w), "drain:b");
    b->operator_off = 1;
    round_at(&w, NULL, T0 + SEC(50));
    ck_assert_str_eq(acts(&w), "");       /* not disabled by us */
    round_at(&w, answer(2, A, "a", 0, B, "b", 0), T0 + SEC(51));
    ck_assert_str_eq(acts(&w), "enable:b");
    ck_assert_uint_eq(b->owned, 0);
}
END_TEST

START_TEST(test_routes_of_members)
{
    world w;
    slb_disc_member *old;

    world_init(&w);
    w.c.grace = SEC(5);
    round_at(&w, answer(1, A, "app", 0), T0);
    /* app moves to a new address: the old one still holds the route */
    round_at(&w, answer(1, B, "app", 0), T0 + SEC(1));
    ck_assert_str_eq(acts(&w), "drain:app");
    ck_assert_int_eq(w.n.malformed, 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(w.notes, 0, const char *),
                                 "discovered member " A));
    /* once the old one is gone, the new address takes the route */
    round_at(&w, answer(1, B, "app", 0), T0 + SEC(7));
    /* (acts() names routes as they are after the round) */
    ck_assert_str_eq(acts(&w), "disable:(none) route:(none) add:app");
    old = &w.set[0];
    ck_assert_str_eq(old->url, A);
    ck_assert_str_eq(old->route, "");
    ck_assert_int_eq(old->state, SLB_DM_GONE);
    ck_assert_str_eq(by_route(&w, "app")->url, B);
    ck_assert_int_eq(w.n.malformed, 0);
}
END_TEST

START_TEST(test_next_fetch)
{
    slb_disc_conf c;

    slb_disc_conf_init(&c);   /* 10 s, min 1 s, max 300 s, backoff 60 s */
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_OK, 0, 0), SEC(10));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_OK, SEC(30), 0), SEC(30));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_UNCHANGED, SEC(30), 0),
                     SEC(30));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_OK, MS(100), 0), SEC(1));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_OK, SEC(86400), 0),
                     SEC(300));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, 0, 1), SEC(1));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, 0, 2), SEC(2));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, 0, 3), SEC(4));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, 0, 6), SEC(32));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, 0, 7), SEC(60));
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, 0, 1000000),
                     SEC(60));
    /* a failure's TTL means nothing */
    ck_assert_int_eq(slb_disc_next(&c, SLB_DISC_FAILED, SEC(30), 1), SEC(1));
}
END_TEST

/* ------------------------------------------------------------------ */
/* the DNS sources                                                      */

static const char *dns_create(const slb_disc_source_ops *ops,
                              const char *target, void **st, ...)
{
    apr_table_t *o = apr_table_make(pool, 4);
    va_list ap;
    const char *k;

    va_start(ap, st);
    while ((k = va_arg(ap, const char *)) != NULL) {
        apr_table_set(o, k, va_arg(ap, const char *));
    }
    va_end(ap);
    return ops->create(pool, target, o, st);
}

START_TEST(test_dns_create)
{
    void *st = NULL;
    const char *err;

    ck_assert_ptr_null(dns_create(&slb_dns_ops, "app.internal:8080", &st,
                                  NULL));
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_null(dns_create(&slb_dns_ops, "app:80", &st, "server",
                                  "10.0.0.1,10.0.0.2:5353,[::1]:53,::1",
                                  "timeout", "300ms", "family", "ipv4",
                                  "scheme", "https", NULL));
    ck_assert_ptr_null(dns_create(&slb_srv_ops, "_http._tcp.app", &st,
                                  "route", "label-port", NULL));
    err = dns_create(&slb_dns_ops, "app.internal", &st, NULL);
    ck_assert_ptr_nonnull(strstr(err, "name:port"));
    err = dns_create(&slb_dns_ops, "app:99999", &st, NULL);
    ck_assert_ptr_nonnull(strstr(err, "name:port"));
    err = dns_create(&slb_dns_ops, "a pp:80", &st, NULL);
    ck_assert_ptr_nonnull(strstr(err, "not a DNS name"));
    err = dns_create(&slb_srv_ops, "app.internal", &st, NULL);
    ck_assert_ptr_nonnull(strstr(err, "_service._proto.name"));
    err = dns_create(&slb_dns_ops, "app:80", &st, "server", "dns.example",
                     NULL);
    ck_assert_ptr_nonnull(strstr(err, "not an IP address"));
    err = dns_create(&slb_dns_ops, "app:80", &st, "server", "10.0.0.1:0",
                     NULL);
    ck_assert_ptr_nonnull(strstr(err, "1 to 65535"));
    err = dns_create(&slb_dns_ops, "app:80", &st, "timeout", "31s", NULL);
    ck_assert_ptr_nonnull(strstr(err, "timeout="));
    err = dns_create(&slb_dns_ops, "app:80", &st, "family", "ipv5", NULL);
    ck_assert_ptr_nonnull(strstr(err, "family="));
    err = dns_create(&slb_dns_ops, "app:80", &st, "scheme", "ftp", NULL);
    ck_assert_ptr_nonnull(strstr(err, "scheme=ftp"));
    /* route= is srv's only */
    err = dns_create(&slb_dns_ops, "app:80", &st, "route", "label", NULL);
    ck_assert_ptr_nonnull(strstr(err, "unknown option 'route=label'"));
    err = dns_create(&slb_srv_ops, "_h._tcp.app", &st, "route", "lable",
                     NULL);
    ck_assert_ptr_nonnull(strstr(err, "did you mean label"));
}
END_TEST

/* A server that never answers: the fetch fails within its timeout. */
START_TEST(test_dns_timeout_bounded)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    void *st = NULL;
    apr_array_header_t *entries = NULL;
    apr_interval_time_t ttl = 1;
    const char *err = NULL;
    int malformed = -1;
    apr_time_t t0, spent;
    slb_disc_result r;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    ck_assert_ptr_null(dns_create(
        &slb_srv_ops, "_http._tcp.app.test", &st, "server",
        apr_psprintf(pool, "127.0.0.1:%d", ntohs(sa.sin_port)), "timeout",
        "300ms", NULL));
    t0 = apr_time_now();
    r = slb_srv_ops.fetch(st, pool, 0, &entries, &malformed, &ttl, &err);
    spent = apr_time_now() - t0;
    ck_assert_int_eq(r, SLB_DISC_FAILED);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(entries);
    ck_assert_int_eq(ttl, 0);
    ck_assert_int_eq(malformed, 0);
    ck_assert_msg(spent >= MS(250) && spent < MS(700),
                  "the fetch took %" APR_TIME_T_FMT " ms", spent / 1000);
    close(fd);
}
END_TEST

Suite *discover_suite(void)
{
    Suite *s = suite_create("discover");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_conf_defaults);
    tcase_add_test(tc, test_conf_parse);
    tcase_add_test(tc, test_conf_errors);
    tcase_add_test(tc, test_check_options);
    tcase_add_test(tc, test_source_table);
    tcase_add_test(tc, test_url_norm);
    tcase_add_test(tc, test_route_derivation);
    tcase_add_test(tc, test_malformed_entries);
    tcase_add_test(tc, test_add_keep_update);
    tcase_add_test(tc, test_leave_grace_return);
    tcase_add_test(tc, test_damping);
    tcase_add_test(tc, test_slots_full);
    tcase_add_test(tc, test_operator_state);
    tcase_add_test(tc, test_routes_of_members);
    tcase_add_test(tc, test_next_fetch);
    suite_add_tcase(s, tc);
    tc = tcase_create("dns");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dns_create);
    tcase_add_test(tc, test_dns_timeout_bounded);
    suite_add_tcase(s, tc);
    return s;
}
