/*
 * check_passive.c - Check tests of stickylb_passive.c, on a clock of the
 * test's own: the consecutive form, the ratio over the two-bucket window
 * and its minimum of responses, distinct clients, the cap on members out
 * at once, and the ejection that grows for a repeat offender and starts
 * over after a healthy period.
 */
#include <stdio.h>
#include <string.h>

#include "check_stickylb.h"
#include "stickylb_passive.h"

/* a clock well away from 0, on a window boundary plus 1 s */
#define T0 (apr_time_from_sec(1700000000) + apr_time_from_sec(1))
#define SEC(n) apr_time_from_sec(n)

static slb_passive_conf ratio_conf(void)
{
    slb_passive_conf c;

    slb_passive_conf_init(&c);
    c.ratio = 50;
    c.window = 10;
    c.min_requests = 20;
    return c;
}

/* n responses at now, `fails` of them failing (first), from client;
 * returns how many said "due" */
static int feed(slb_passive_state *s, const slb_passive_conf *c, int n,
                int fails, apr_uint32_t client, apr_time_t now)
{
    int i, due = 0;

    for (i = 0; i < n; i++) {
        due += slb_passive_record(s, c, i < fails, client, now);
    }
    return due;
}

START_TEST(test_defaults)
{
    slb_passive_conf c;

    slb_passive_conf_init(&c);
    ck_assert_int_eq(c.fall, 3);
    ck_assert_int_eq(c.ratio, 0);
    ck_assert_int_eq(c.max_ejected, 50);
    ck_assert_int_eq(c.eject, 0);
    ck_assert_int_eq(c.min_clients, 1);
}
END_TEST

START_TEST(test_consecutive)
{
    slb_passive_state s;
    slb_passive_conf c;

    memset(&s, 0, sizeof(s));
    slb_passive_conf_init(&c);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 0);
    /* a good answer in between starts over */
    ck_assert_int_eq(slb_passive_record(&s, &c, 0, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 1);
    /* an ejection re-arms the count; while it lasts nothing is due */
    ck_assert(slb_passive_eject(&s, &c, SEC(60), T0) == SEC(60));
    ck_assert(slb_passive_ejected(&s, T0 + SEC(59)));
    ck_assert_int_eq(feed(&s, &c, 5, 5, 0, T0 + SEC(1)), 0);
    ck_assert(!slb_passive_ejected(&s, T0 + SEC(60)));
    /* the five during the ejection counted: the next failure is due */
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0 + SEC(61)), 1);
}
END_TEST

START_TEST(test_ratio_min_requests)
{
    slb_passive_state s;
    slb_passive_conf c = ratio_conf();

    memset(&s, 0, sizeof(s));
    /* one client, three failures: far from min-requests */
    ck_assert_int_eq(feed(&s, &c, 3, 3, 0, T0), 0);
    /* 19 responses, all failing: still under min-requests */
    ck_assert_int_eq(feed(&s, &c, 16, 16, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 1);
}
END_TEST

START_TEST(test_ratio_share)
{
    slb_passive_state s;
    slb_passive_conf c = ratio_conf();
    slb_passive_view v;

    /* 8 good then 12 failing: the 20th (12/20 = 60%) is due */
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 8, 0, 0, T0), 0);
    ck_assert_int_eq(feed(&s, &c, 11, 11, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 1);
    slb_passive_window(&s, &c, T0, &v);
    ck_assert_uint_eq(v.requests, 20);
    ck_assert_uint_eq(v.failures, 12);

    /* 40% failing is never due, however many */
    memset(&s, 0, sizeof(s));
    {
        int i, due = 0;
        for (i = 0; i < 100; i++) {
            due += slb_passive_record(&s, &c, i % 5 < 2, 0, T0);
        }
        ck_assert_int_eq(due, 0);
    }
    /* exactly the ratio is due */
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 10, 0, 0, T0), 0);
    ck_assert_int_eq(feed(&s, &c, 9, 9, 0, T0), 0);
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0), 1);
}
END_TEST

START_TEST(test_ratio_window_slides)
{
    slb_passive_state s;
    slb_passive_conf c = ratio_conf();
    slb_passive_view v;
    /* the start of a window bucket */
    apr_time_t b0 = (T0 / SEC(10)) * SEC(10) + SEC(10);

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 18, 18, 0, b0 + SEC(9)), 0);
    /* just after the boundary the previous bucket counts almost whole */
    slb_passive_window(&s, &c, b0 + SEC(10), &v);
    ck_assert_uint_eq(v.requests, 18);
    /* half-way through the next bucket: half of it */
    slb_passive_window(&s, &c, b0 + SEC(15), &v);
    ck_assert_uint_eq(v.requests, 9);
    ck_assert_uint_eq(v.failures, 9);
    /* two windows later nothing is left */
    slb_passive_window(&s, &c, b0 + SEC(20), &v);
    ck_assert_uint_eq(v.requests, 0);
    ck_assert_int_eq(feed(&s, &c, 19, 19, 0, b0 + SEC(25)), 0);
    /* 18 old failures spread thin no longer add up: 19 + 1 new = 20 */
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, b0 + SEC(25)), 1);

    /* failures spread over windows: 18 then, 5 s later, 2 more reach 20
     * (18 x 0.5 + 2 = 11 < 20: not due) */
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 18, 18, 0, b0 + SEC(9)), 0);
    ck_assert_int_eq(feed(&s, &c, 2, 2, 0, b0 + SEC(15)), 0);
    /* ... but at the boundary they do (18 + 2) */
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 18, 18, 0, b0 + SEC(9)), 0);
    ck_assert_int_eq(feed(&s, &c, 2, 2, 0, b0 + SEC(10)), 1);
}
END_TEST

START_TEST(test_min_clients)
{
    slb_passive_state s;
    slb_passive_conf c = ratio_conf();
    slb_passive_view v;
    apr_uint32_t a = slb_passive_client_hash("192.0.2.1");
    apr_uint32_t b = slb_passive_client_hash("192.0.2.2");
    apr_uint32_t d = slb_passive_client_hash("2001:db8::3");
    int i;

    ck_assert_uint_ne(a, b);
    ck_assert_uint_ne(slb_passive_client_hash(""), 0);
    c.min_clients = 3;
    memset(&s, 0, sizeof(s));
    /* one client alone, however much it fails */
    ck_assert_int_eq(feed(&s, &c, 100, 100, a, T0), 0);
    /* a second one: still two */
    ck_assert_int_eq(feed(&s, &c, 10, 10, b, T0), 0);
    slb_passive_window(&s, &c, T0, &v);
    ck_assert_uint_eq(v.clients, 2);
    /* a third makes it due */
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, d, T0), 1);
    /* a client whose answers are good is not counted */
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 30, 30, a, T0), 0);
    ck_assert_int_eq(feed(&s, &c, 5, 0, b, T0), 0);
    ck_assert_int_eq(feed(&s, &c, 5, 0, d, T0), 0);
    slb_passive_window(&s, &c, T0, &v);
    ck_assert_uint_eq(v.clients, 1);
    /* the set is bounded: more clients than slots count as the slots */
    memset(&s, 0, sizeof(s));
    for (i = 0; i < 50; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "198.51.100.%d", i);
        slb_passive_record(&s, &c, 1, slb_passive_client_hash(ip), T0);
    }
    slb_passive_window(&s, &c, T0, &v);
    ck_assert_uint_eq(v.clients, SLB_PASSIVE_CLIENTS);
}
END_TEST

START_TEST(test_cap)
{
    slb_passive_conf c;

    slb_passive_conf_init(&c);
    /* 2 members, 50%: one out, not both */
    ck_assert(slb_passive_may_eject(&c, 2, 0, 2));
    ck_assert(!slb_passive_may_eject(&c, 2, 1, 1));
    /* never the last usable one, whatever the cap */
    c.max_ejected = 100;
    ck_assert(!slb_passive_may_eject(&c, 2, 1, 1));
    ck_assert(!slb_passive_may_eject(&c, 3, 0, 1));
    ck_assert(slb_passive_may_eject(&c, 3, 1, 2));
    /* 10 members, 30%: three */
    c.max_ejected = 30;
    ck_assert(slb_passive_may_eject(&c, 10, 2, 8));
    ck_assert(!slb_passive_may_eject(&c, 10, 3, 7));
    /* a cap under one member still allows one (2 or more members) */
    c.max_ejected = 10;
    ck_assert(slb_passive_may_eject(&c, 3, 0, 3));
    ck_assert(!slb_passive_may_eject(&c, 3, 1, 2));
    /* one member alone is never ejected */
    c.max_ejected = 100;
    ck_assert(!slb_passive_may_eject(&c, 1, 0, 1));
}
END_TEST

START_TEST(test_hold_logged_once)
{
    slb_passive_state s;
    slb_passive_conf c;

    memset(&s, 0, sizeof(s));
    slb_passive_conf_init(&c);
    ck_assert(slb_passive_hold(&s));
    ck_assert(!slb_passive_hold(&s));
    /* a good answer: no longer due, the next hold is said again */
    slb_passive_record(&s, &c, 0, 0, T0);
    ck_assert(slb_passive_hold(&s));
}
END_TEST

START_TEST(test_backoff)
{
    slb_passive_state s;
    slb_passive_conf c;
    apr_time_t t = T0;

    memset(&s, 0, sizeof(s));
    slb_passive_conf_init(&c);
    c.eject = 30;
    c.eject_max = 300;
    /* 30, 60, 120, 240, then capped at 300 */
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(30));
    /* no second ejection while one lasts */
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t + SEC(29)) == 0);
    t += SEC(31);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(60));
    t += SEC(61);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(120));
    t += SEC(121);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(240));
    t += SEC(241);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(300));
    t += SEC(301);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(300));
    ck_assert_uint_eq(s.repeats, 6);
    /* healthy for eject-max after the last one ended: starts over */
    t += SEC(300) + SEC(300);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(30));
    ck_assert_uint_eq(s.repeats, 1);
    /* ... but not one second short of it */
    t += SEC(30) + SEC(299);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), t) == SEC(60));

    /* without eject=: the member's retry=, every time */
    memset(&s, 0, sizeof(s));
    c.eject = 0;
    ck_assert(slb_passive_eject(&s, &c, SEC(2), T0) == SEC(2));
    ck_assert(slb_passive_eject(&s, &c, SEC(2), T0 + SEC(3)) == SEC(2));
}
END_TEST

START_TEST(test_eject_resets_window)
{
    slb_passive_state s;
    slb_passive_conf c = ratio_conf();
    slb_passive_view v;

    memset(&s, 0, sizeof(s));
    c.eject = 1;
    ck_assert_int_eq(feed(&s, &c, 20, 20, 0, T0), 1);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), T0) == SEC(1));
    /* while ejected, nothing is due */
    ck_assert_int_eq(feed(&s, &c, 30, 30, 0, T0 + SEC(0)), 0);
    /* back: the failures that ejected it are gone, the ones while it was
     * out count (they were answers) */
    slb_passive_window(&s, &c, T0 + SEC(1), &v);
    ck_assert_uint_eq(v.requests, 30);
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(feed(&s, &c, 20, 20, 0, T0), 1);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), T0) == SEC(1));
    slb_passive_window(&s, &c, T0 + SEC(1), &v);
    ck_assert_uint_eq(v.requests, 0);
    ck_assert_int_eq(feed(&s, &c, 19, 19, 0, T0 + SEC(2)), 0);
    /* the second ejection is twice as long */
    ck_assert_int_eq(slb_passive_record(&s, &c, 1, 0, T0 + SEC(2)), 1);
    ck_assert(slb_passive_eject(&s, &c, SEC(60), T0 + SEC(2)) == SEC(2));
}
END_TEST

Suite *passive_suite(void)
{
    Suite *s = suite_create("passive");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_consecutive);
    tcase_add_test(tc, test_ratio_min_requests);
    tcase_add_test(tc, test_ratio_share);
    tcase_add_test(tc, test_ratio_window_slides);
    tcase_add_test(tc, test_min_clients);
    tcase_add_test(tc, test_cap);
    tcase_add_test(tc, test_hold_logged_once);
    tcase_add_test(tc, test_backoff);
    tcase_add_test(tc, test_eject_resets_window);
    suite_add_tcase(s, tc);
    return s;
}
