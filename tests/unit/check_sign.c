/*
 * check_sign.c - Check tests of stickylb_sign.c: key rings, signing and
 * verifying route cookie values, rotation, tampering, opaque tokens.
 */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "check_stickylb.h"
#include "stickylb_sign.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static const char *ring_text = "# keys\n\n  current-key-0123456789abcdef \n"
                               "previous-key-fedcba9876543210\r\n";

static void ring_of(slb_keyring *ring, const char *text)
{
    ck_assert_ptr_null(slb_keyring_parse(pool, text, strlen(text), ring));
}

START_TEST(test_keyring_parse)
{
    slb_keyring ring;
    const char *err;

    ring_of(&ring, ring_text);
    ck_assert_int_eq(ring.nkeys, 2);
    ck_assert_uint_eq(ring.len[0], strlen("current-key-0123456789abcdef"));
    ck_assert_int_eq(memcmp(ring.key[0], "current-key-0123456789abcdef",
                            ring.len[0]), 0);
    err = slb_keyring_parse(pool, "short\n", 6, &ring);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    err = slb_keyring_parse(pool, "# only a comment\n\n", 18, &ring);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "no key"));
    {
        char buf[1024] = "";
        int i;
        for (i = 0; i < SLB_SIGN_MAX_KEYS + 1; i++) {
            strcat(buf, "0123456789abcdefXX\n");
        }
        err = slb_keyring_parse(pool, buf, strlen(buf), &ring);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_nonnull(strstr(err, "more than"));
    }
    ck_assert_ptr_nonnull(slb_keyring_load(pool, "/nonexistent/stickylb.keys",
                                           &ring));
}
END_TEST

static const slb_sign_scope app = { "balancer://app", "ROUTEID" };

START_TEST(test_sign_verify)
{
    slb_keyring ring, old_only, other;
    const char *v, *route = NULL;
    apr_time_t iss = 0, ref = 0;

    ring_of(&ring, ring_text);
    ring_of(&old_only, "previous-key-fedcba9876543210\n");
    ring_of(&other, "somebody-elses-key-000000000\n");
    v = slb_sign_value(pool, &ring, &app, "t1", apr_time_from_sec(1700000000),
                       apr_time_from_sec(1700000100));
    /* HMAC-SHA256(key, "v2\0balancer://app\0ROUTEID\0v2~t1~...") (as
     * Python's hmac computes it) */
    ck_assert_str_eq(v, "v2~t1~6553f100~6553f164~"
                        "a54820c9b4befe998be468bb95ed22e6");
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, v, &route, &iss,
                                      &ref), SLB_SIGNED_V2);
    ck_assert_str_eq(route, "t1");
    ck_assert(iss == apr_time_from_sec(1700000000));
    ck_assert(ref == apr_time_from_sec(1700000100));
    /* rotation: a ring holding the old key verifies what the old key
     * signed; the new ring verifies it too */
    v = slb_sign_value(pool, &old_only, &app, "t2", apr_time_from_sec(5),
                       apr_time_from_sec(6));
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, v, &route, &iss,
                                      &ref), SLB_SIGNED_V2);
    ck_assert_str_eq(route, "t2");
    /* an unknown key, a tampered route or time, a truncated mac */
    ck_assert_int_eq(slb_verify_value(pool, &other, &app, v, &route, &iss,
                                      &ref), 0);
    {
        char *t = apr_pstrdup(pool, v);
        t[4] = '3';                       /* v2~t3~... */
        ck_assert_int_eq(slb_verify_value(pool, &ring, &app, t, &route, &iss,
                                          &ref), 0);
        t = apr_pstrdup(pool, v);
        t[strlen(t) - 1] = t[strlen(t) - 1] == '0' ? '1' : '0';
        ck_assert_int_eq(slb_verify_value(pool, &ring, &app, t, &route, &iss,
                                          &ref), 0);
        t = apr_pstrndup(pool, v, strlen(v) - 1);
        ck_assert_int_eq(slb_verify_value(pool, &ring, &app, t, &route, &iss,
                                          &ref), 0);
        /* the version changed under the mac: v1 with a v2 mac */
        t = apr_pstrdup(pool, v);
        t[1] = '1';
        ck_assert_int_eq(slb_verify_value(pool, &ring, &app, t, &route, &iss,
                                          &ref), 0);
    }
    /* plain values are not of the signed form */
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, "t1", &route, &iss,
                                      &ref), -1);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, ".t1", &route, &iss,
                                      &ref), -1);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, "v3~t1~1~2~"
                                      "0123456789abcdef0123456789abcdef",
                                      &route, &iss, &ref), -1);
    /* malformed signed forms */
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, "v2~", &route, &iss,
                                      &ref), 0);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, "v1~", &route, &iss,
                                      &ref), 0);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, "v2~~1~2~"
                                      "0123456789abcdef0123456789abcdef",
                                      &route, &iss, &ref), 0);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, "v2~t1~xyz~2~"
                                      "0123456789abcdef0123456789abcdef",
                                      &route, &iss, &ref), 0);
    /* a route holding '~' survives the round trip */
    v = slb_sign_value(pool, &ring, &app, "a~b", 0, 0);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, v, &route, &iss,
                                      &ref), SLB_SIGNED_V2);
    ck_assert_str_eq(route, "a~b");
}
END_TEST

/* A v2 value is bound to its namespace and cookie name: another balancer
 * or cookie sharing the key file refuses it, whatever the route. */
START_TEST(test_scope)
{
    static const slb_sign_scope other_ns = { "balancer://other", "ROUTEID" };
    static const slb_sign_scope other_name = { "balancer://app", "ROUTE2" };
    /* the pieces are NUL separated: moving a byte between namespace and
     * name is another scope */
    static const slb_sign_scope shifted = { "balancer://appR", "OUTEID" };
    slb_keyring ring;
    const char *v, *route = NULL;
    apr_time_t iss = 0, ref = 0;

    ring_of(&ring, ring_text);
    v = slb_sign_value(pool, &ring, &app, "t1", apr_time_from_sec(10),
                       apr_time_from_sec(20));
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, v, &route, &iss,
                                      &ref), SLB_SIGNED_V2);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &other_ns, v, &route,
                                      &iss, &ref), 0);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &other_name, v, &route,
                                      &iss, &ref), 0);
    ck_assert_int_eq(slb_verify_value(pool, &ring, &shifted, v, &route,
                                      &iss, &ref), 0);
    /* a v2 value needs a scope to verify */
    ck_assert_int_eq(slb_verify_value(pool, &ring, NULL, v, &route, &iss,
                                      &ref), 0);
    /* the same route and times signed for each scope: distinct values */
    ck_assert_str_ne(v, slb_sign_value(pool, &ring, &other_ns, "t1",
                                       apr_time_from_sec(10),
                                       apr_time_from_sec(20)));
    ck_assert_str_ne(v, slb_sign_value(pool, &ring, &other_name, "t1",
                                       apr_time_from_sec(10),
                                       apr_time_from_sec(20)));
    /* tokens too */
    ck_assert_str_ne(slb_route_token(pool, &ring, &app, "t1"),
                     slb_route_token(pool, &ring, &other_ns, "t1"));
    ck_assert_str_ne(slb_route_token(pool, &ring, &app, "t1"),
                     slb_route_token(pool, &ring, &other_name, "t1"));
    ck_assert_str_ne(slb_route_token(pool, &ring, &app, "t1"),
                     slb_route_token(pool, &ring, NULL, "t1"));
}
END_TEST

/* The v1 format (the migration window): verifies under any scope (it is
 * bound to none) and says so; the module accepts it only without strict
 * (t/13_signed.t). */
START_TEST(test_v1)
{
    slb_keyring ring, other;
    const char *v, *route = NULL;
    apr_time_t iss = 0, ref = 0;
    static const slb_sign_scope elsewhere = { "ns2", "SRV" };

    ring_of(&ring, ring_text);
    ring_of(&other, "somebody-elses-key-000000000\n");
    v = slb_sign_value_v1(pool, &ring, "t1", apr_time_from_sec(1700000000),
                          apr_time_from_sec(1700000100));
    /* the v1 mac: HMAC-SHA256 over the value before the mac alone
     * (printf 'v1~t1~6553f100~6553f164' | openssl dgst -sha256 -hmac
     * current-key-0123456789abcdef) */
    ck_assert_str_eq(v, "v1~t1~6553f100~6553f164~"
                        "096777df7362abed29a36ff6fdd9178e");
    ck_assert_int_eq(slb_verify_value(pool, &ring, &app, v, &route, &iss,
                                      &ref), SLB_SIGNED_V1);
    ck_assert_str_eq(route, "t1");
    ck_assert(iss == apr_time_from_sec(1700000000));
    ck_assert(ref == apr_time_from_sec(1700000100));
    ck_assert_int_eq(slb_verify_value(pool, &ring, &elsewhere, v, &route,
                                      &iss, &ref), SLB_SIGNED_V1);
    ck_assert_int_eq(slb_verify_value(pool, &ring, NULL, v, &route, &iss,
                                      &ref), SLB_SIGNED_V1);
    ck_assert_int_eq(slb_verify_value(pool, &other, &app, v, &route, &iss,
                                      &ref), 0);
    {
        /* v2 with a v1 mac */
        char *t = apr_pstrdup(pool, v);
        t[1] = '2';
        ck_assert_int_eq(slb_verify_value(pool, &ring, &app, t, &route, &iss,
                                          &ref), 0);
    }
    /* the v1 token: HMAC("route\0" + route); the v2 one:
     * HMAC("token2\0<ns>\0<name>\0" + route) */
    ck_assert_str_eq(slb_route_token(pool, &ring, NULL, "t1"),
                     "0bc946334a7cc57a");
    ck_assert_str_eq(slb_route_token(pool, &ring, &app, "t1"),
                     "3fed644db771bceb");
}
END_TEST

START_TEST(test_tokens)
{
    slb_keyring ring, other;
    const char *t1, *t2;

    ring_of(&ring, ring_text);
    ring_of(&other, "somebody-elses-key-000000000\n");
    t1 = slb_route_token(pool, &ring, &app, "t1");
    t2 = slb_route_token(pool, &ring, &app, "t2");
    ck_assert_uint_eq(strlen(t1), 16);
    ck_assert_str_ne(t1, t2);
    ck_assert_str_eq(t1, slb_route_token(pool, &ring, &app, "t1"));
    ck_assert_str_ne(t1, slb_route_token(pool, &other, &app, "t1"));
    ck_assert_str_ne(t1, slb_route_token_k(pool, &ring, 1, &app, "t1"));
    ck_assert_ptr_null(strstr(t1, "t1"));
}
END_TEST

Suite *sign_suite(void)
{
    Suite *s = suite_create("sign");
    TCase *tc = tcase_create("sign");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_keyring_parse);
    tcase_add_test(tc, test_sign_verify);
    tcase_add_test(tc, test_scope);
    tcase_add_test(tc, test_v1);
    tcase_add_test(tc, test_tokens);
    suite_add_tcase(s, tc);
    return s;
}
