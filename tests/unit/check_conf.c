/*
 * check_conf.c - Check tests of stickylb_conf.c: the integer and duration
 * parsers, the directive grammars, the merge of scopes and the resolution
 * of a balancer with every default applied.
 */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "check_stickylb.h"
#include "stickylb_conf.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

START_TEST(test_parse_int)
{
    apr_int64_t v = -7;
    const char *err;

    ck_assert_ptr_null(slb_parse_int(pool, "16", 16, 100, &v));
    ck_assert_int_eq(v, 16);
    ck_assert_ptr_null(slb_parse_int(pool, "100", 16, 100, &v));
    ck_assert_int_eq(v, 100);
    ck_assert_ptr_null(slb_parse_int(pool, "007", 0, 100, &v));
    ck_assert_int_eq(v, 7);
    v = 42;
    err = slb_parse_int(pool, "15", 16, 100, &v);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "'15'"));
    ck_assert_ptr_nonnull(strstr(err, "from 16 to 100"));
    ck_assert_int_eq(v, 42);            /* untouched on error */
    ck_assert_ptr_nonnull(slb_parse_int(pool, "101", 16, 100, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, "-1", -5, 100, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, "+1", 0, 100, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, " 1", 0, 100, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, "1 ", 0, 100, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, "", 0, 100, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, "1e3", 0, 10000, &v));
    ck_assert_ptr_nonnull(slb_parse_int(pool, "0x10", 0, 100, &v));
    /* overflow is an error, not a wrap */
    ck_assert_ptr_nonnull(slb_parse_int(pool, "99999999999999999999", 0,
                                        APR_INT64_MAX, &v));
    ck_assert_ptr_null(slb_parse_int(pool, "9223372036854775806", 0,
                                     APR_INT64_MAX, &v));
    ck_assert(v == APR_INT64_C(9223372036854775806));
}
END_TEST

START_TEST(test_parse_duration)
{
    apr_interval_time_t t = 0;
    const apr_interval_time_t hour = apr_time_from_sec(3600);
    const char *err;

    /* a bare number is in the directive's unit */
    ck_assert_ptr_null(slb_parse_duration(pool, "30", SLB_UNIT_S, 0, hour,
                                          &t));
    ck_assert_int_eq(t, apr_time_from_sec(30));
    ck_assert_ptr_null(slb_parse_duration(pool, "30", SLB_UNIT_MS, 0, hour,
                                          &t));
    ck_assert_int_eq(t, 30000);
    /* ms and s everywhere */
    ck_assert_ptr_null(slb_parse_duration(pool, "250ms", SLB_UNIT_S, 0,
                                          hour, &t));
    ck_assert_int_eq(t, 250000);
    ck_assert_ptr_null(slb_parse_duration(pool, "2s", SLB_UNIT_MS, 0, hour,
                                          &t));
    ck_assert_int_eq(t, apr_time_from_sec(2));
    ck_assert_ptr_null(slb_parse_duration(pool, "0", SLB_UNIT_S, 0, hour,
                                          &t));
    ck_assert_int_eq(t, 0);
    ck_assert_ptr_null(slb_parse_duration(pool, "3600s", SLB_UNIT_S, 0,
                                          hour, &t));
    ck_assert_int_eq(t, hour);
    /* bounds are inclusive, in microseconds */
    err = slb_parse_duration(pool, "3601", SLB_UNIT_S, 0, hour, &t);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "'3601'"));
    ck_assert_ptr_nonnull(strstr(err, "3600 s"));
    err = slb_parse_duration(pool, "0ms", SLB_UNIT_MS, 1000, 60000000, &t);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "from 1 ms to 60 s"));
    /* refused, not guessed */
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "10m", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "1h", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "-1", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "1.5s", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "5 s", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "ms", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "", SLB_UNIT_S, 0,
                                             hour, &t));
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "forever", SLB_UNIT_S, 0,
                                             hour, &t));
    /* a number that would overflow once scaled */
    ck_assert_ptr_nonnull(slb_parse_duration(pool, "9223372036854775",
                                             SLB_UNIT_S, 0, APR_INT64_MAX,
                                             &t));
}
END_TEST

START_TEST(test_parse_keyword)
{
    static const slb_keyword two[] = {
        { "shm", 0 }, { "memcached", 1 }, { NULL, 0 }
    };
    static const slb_keyword three[] = {
        { "requests", 0 }, { "sessions", 1 }, { "hash", 2 }, { NULL, 0 }
    };
    int v = -1;

    ck_assert_ptr_null(slb_parse_keyword(pool, "MemCached", two, &v));
    ck_assert_int_eq(v, 1);
    ck_assert_ptr_null(slb_parse_keyword(pool, "shm", two, &v));
    ck_assert_int_eq(v, 0);
    v = 7;
    ck_assert_str_eq(slb_parse_keyword(pool, "redis", two, &v),
                     "'redis' must be shm or memcached");
    ck_assert_int_eq(v, 7);
    ck_assert_str_eq(slb_parse_keyword(pool, "", three, &v),
                     "'' must be requests, sessions or hash");
    ck_assert_ptr_null(slb_parse_keyword(pool, "hash", three, &v));
    ck_assert_int_eq(v, 2);
    /* a near miss is named */
    ck_assert_str_eq(slb_parse_keyword(pool, "memcache", two, &v),
                     "'memcache' must be shm or memcached (did you mean "
                     "memcached?)");
    ck_assert_str_eq(slb_parse_keyword(pool, "sesions", three, &v),
                     "'sesions' must be requests, sessions or hash (did "
                     "you mean sessions?)");
    ck_assert_int_eq(v, 2);
}
END_TEST

START_TEST(test_near_word)
{
    static const char *const words[] = {
        "insert", "indirect", "path=", "secure=", "samesite=", "max-age=",
        "sign=", NULL
    };
    static const char *const two[] = { "rise=", "route=", NULL };
    static const char *const short_words[] = { "pool=", "ab=", NULL };
    char long_word[80];

    /* one edit of each kind, and case does not count */
    ck_assert_str_eq(slb_near_word("samesit=", words), "samesite=");
    ck_assert_str_eq(slb_near_word("insertt", words), "insert");
    ck_assert_str_eq(slb_near_word("inzert", words), "insert");
    ck_assert_str_eq(slb_near_word("isnert", words), "insert");  /* swap */
    ck_assert_str_eq(slb_near_word("SECURE", words), "secure=");
    ck_assert_str_eq(slb_near_word("Max-Age=", words), "max-age=");
    /* two edits still, three not */
    ck_assert_str_eq(slb_near_word("smesit=", words), "samesite=");
    ck_assert_str_eq(slb_near_word("idnirect", words), "indirect");
    ck_assert_ptr_null(slb_near_word("idniretcx", words));
    ck_assert_ptr_null(slb_near_word("colour=", words));
    ck_assert_ptr_null(slb_near_word("frobnicate", words));
    /* no suggestion from a word with as few bytes as edits */
    ck_assert_ptr_null(slb_near_word("x", words));
    ck_assert_ptr_null(slb_near_word("", words));
    ck_assert_ptr_null(slb_near_word("a", short_words));    /* 2 edits */
    ck_assert_str_eq(slb_near_word("b=", short_words), "ab=");  /* 1 */
    /* the closest wins, the first of a tie */
    ck_assert_str_eq(slb_near_word("rute=", two), "route=");
    ck_assert_str_eq(slb_near_word("roue=", two), "route=");
    ck_assert_str_eq(slb_near_word("rie=", two), "rise=");
    ck_assert_str_eq(slb_near_word("ruse=", two), "rise=");
    /* long words are never near (and read no further than 64 bytes) */
    memset(long_word, 'a', sizeof(long_word) - 1);
    long_word[sizeof(long_word) - 1] = '\0';
    ck_assert_ptr_null(slb_near_word(long_word, words));
    memcpy(long_word, "insert", 6);
    long_word[65] = '\0';
    ck_assert_ptr_null(slb_near_word(long_word, words));
    long_word[7] = '\0';
    ck_assert_str_eq(slb_near_word(long_word, words), "insert");
}
END_TEST

START_TEST(test_unknown_option)
{
    static const char *const words[] = {
        "insert", "path=", "samesite=", NULL
    };

    ck_assert_str_eq(slb_unknown_option(pool, "samesit=lax", words),
                     "unknown option 'samesit=lax': did you mean "
                     "samesite=? (expected insert, path=, samesite=)");
    /* the value does not count, the '=' does */
    ck_assert_str_eq(slb_unknown_option(pool, "pth=/a/very/long/path", words),
                     "unknown option 'pth=/a/very/long/path': did you mean "
                     "path=? (expected insert, path=, samesite=)");
    ck_assert_str_eq(slb_unknown_option(pool, "insert=on", words),
                     "unknown option 'insert=on': did you mean insert? "
                     "(expected insert, path=, samesite=)");
    ck_assert_str_eq(slb_unknown_option(pool, "path", words),
                     "unknown option 'path': did you mean path=? "
                     "(expected insert, path=, samesite=)");
    ck_assert_str_eq(slb_unknown_option(pool, "colour=red", words),
                     "unknown option 'colour=red' (expected insert, path=, "
                     "samesite=)");
    ck_assert_str_eq(slb_unknown_option(pool, "=", words),
                     "unknown option '=' (expected insert, path=, "
                     "samesite=)");
}
END_TEST

START_TEST(test_duration_helpers)
{
    ck_assert_str_eq(slb_duration_str(pool, apr_time_from_sec(1800)),
                     "1800 s");
    ck_assert_str_eq(slb_duration_str(pool, 250000), "250 ms");
    ck_assert_uint_eq(slb_duration_secs(0), 0);
    ck_assert_uint_eq(slb_duration_secs(-5), 0);
    ck_assert_uint_eq(slb_duration_secs(1), 1);          /* rounded up */
    ck_assert_uint_eq(slb_duration_secs(apr_time_from_sec(2)), 2);
    ck_assert_uint_eq(slb_duration_secs(apr_time_from_sec(2) + 1), 3);
}
END_TEST

START_TEST(test_cookie_names)
{
    apr_array_header_t *a = NULL;
    const char *one[] = { "JSESSIONID" };
    const char *two[] = { "JSESSIONID", "PHPSESSID" };
    const char *none[] = { "none" };
    const char *bad[] = { "a;b" };
    const char *mixed[] = { "SID", "none" };
    const char *many[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };

    ck_assert_ptr_null(slb_parse_cookie_names(pool, 1, one, &a));
    ck_assert_int_eq(a->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(a, 0, const char *), "JSESSIONID");
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 2, two, &a));
    ck_assert_int_eq(a->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(a, 1, const char *), "PHPSESSID");
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 1, none, &a));
    ck_assert_int_eq(a->nelts, 0);
    ck_assert_ptr_nonnull(strstr(slb_parse_cookie_names(pool, 1, bad, &a),
                                 "a;b"));
    ck_assert_ptr_nonnull(strstr(slb_parse_cookie_names(pool, 2, mixed, &a),
                                 "alone"));
    ck_assert_ptr_nonnull(slb_parse_cookie_names(pool, 9, many, &a));
    ck_assert_ptr_nonnull(slb_parse_cookie_names(pool, 0, one, &a));
}
END_TEST

START_TEST(test_key_and_passive)
{
    slb_key_source k;
    apr_array_header_t *r = NULL;
    slb_passive_conf po, *fall = &po;
    const char *ok[] = { "500", "502-504", "fall=2" };
    const char *ratio[] = { "500", "ratio=50", "window=30",
                            "min-requests=40", "min-clients=3",
                            "max-ejected=25", "eject=10", "eject-max=600" };
    const char *both[] = { "500", "fall=2", "ratio=50" };
    const char *window_alone[] = { "500", "window=10" };
    const char *clients_alone[] = { "500", "min-clients=2" };
    const char *too_many_clients[] = { "500", "ratio=50", "min-clients=9" };
    const char *max_alone[] = { "500", "eject-max=60" };
    const char *max_short[] = { "500", "eject=60", "eject-max=30" };
    const char *eject_long[] = { "500", "eject=600" };
    const char *bad_cap[] = { "500", "max-ejected=0" };
    const char *none[] = { "none" };
    const char *bad_status[] = { "5000" };
    const char *bad_range[] = { "504-502" };
    const char *bad_fall[] = { "500", "fall=0" };
    const char *only_fall[] = { "fall=2" };
    const char *near_fall[] = { "500", "fal=2" };
    const char *late_none[] = { "500", "none" };

    ck_assert_ptr_null(slb_parse_key(pool, "header", "X-Sid", &k));
    ck_assert_int_eq(k.kind, SLB_KEY_HEADER);
    ck_assert_str_eq(k.name, "X-Sid");
    ck_assert_ptr_null(slb_parse_key(pool, "QUERY", "sid", &k));
    ck_assert_int_eq(k.kind, SLB_KEY_QUERY);
    ck_assert_ptr_null(slb_parse_key(pool, "address", NULL, &k));
    ck_assert_int_eq(k.kind, SLB_KEY_ADDRESS);
    ck_assert_ptr_nonnull(slb_parse_key(pool, "address", "x", &k));
    ck_assert_ptr_nonnull(slb_parse_key(pool, "header", NULL, &k));
    ck_assert_ptr_nonnull(slb_parse_key(pool, "header", "a b", &k));
    ck_assert_ptr_nonnull(strstr(slb_parse_key(pool, "colour", "x", &k),
                                 "colour"));
    /* a request cookie */
    ck_assert_ptr_null(slb_parse_key(pool, "cookie", "JSESSIONID", &k));
    ck_assert_int_eq(k.kind, SLB_KEY_COOKIE);
    ck_assert_str_eq(k.name, "JSESSIONID");
    ck_assert_ptr_nonnull(slb_parse_key(pool, "cookie", NULL, &k));
    ck_assert_ptr_nonnull(slb_parse_key(pool, "cookie", "a;b", &k));
    ck_assert_str_eq(slb_parse_key(pool, "cokie", "x", &k),
                     "unknown key 'cokie': did you mean cookie? (expected "
                     "header NAME, query NAME, cookie NAME, address or "
                     "none)");
    /* the whole Cookie header is refused, pointing at the cookie key */
    ck_assert_ptr_nonnull(strstr(slb_parse_key(pool, "header", "cookie",
                                               &k),
                                 "StickyLBKey cookie NAME"));
    ck_assert_ptr_nonnull(slb_parse_key(pool, "header", "Cookie", &k));
    ck_assert_ptr_null(slb_parse_key(pool, "header", "Cookie2x", &k));

    ck_assert_ptr_null(slb_parse_passive(pool, 3, ok, &r, fall));
    ck_assert_int_eq(r->nelts, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(r, 0, slb_range).lo, 500);
    ck_assert_int_eq(APR_ARRAY_IDX(r, 0, slb_range).hi, 500);
    ck_assert_int_eq(APR_ARRAY_IDX(r, 1, slb_range).lo, 502);
    ck_assert_int_eq(APR_ARRAY_IDX(r, 1, slb_range).hi, 504);
    ck_assert_int_eq(po.fall, 2);
    ck_assert_int_eq(po.ratio, 0);
    ck_assert_int_eq(po.max_ejected, SLB_PASSIVE_DEFAULT_MAX_EJECTED);
    ck_assert_int_eq(po.eject, 0);
    ck_assert_ptr_null(slb_parse_passive(pool, 1, none, &r, fall));
    ck_assert_int_eq(r->nelts, 0);
    ck_assert_int_eq(po.fall, SLB_PASSIVE_DEFAULT_FALL);
    /* the ratio form, every option */
    ck_assert_ptr_null(slb_parse_passive(pool, 8, ratio, &r, fall));
    ck_assert_int_eq(r->nelts, 1);
    ck_assert_int_eq(po.ratio, 50);
    ck_assert_int_eq(po.window, 30);
    ck_assert_int_eq(po.min_requests, 40);
    ck_assert_int_eq(po.min_clients, 3);
    ck_assert_int_eq(po.max_ejected, 25);
    ck_assert_int_eq(po.eject, 10);
    ck_assert_int_eq(po.eject_max, 600);
    ck_assert_ptr_nonnull(strstr(slb_parse_passive(pool, 3, both, &r, fall),
                                 "give one"));
    ck_assert_str_eq(slb_parse_passive(pool, 2, window_alone, &r, fall),
                     "window= counts only with ratio= (e.g. ratio=50 "
                     "window=10 min-requests=20)");
    ck_assert_ptr_nonnull(strstr(slb_parse_passive(pool, 2, clients_alone,
                                                   &r, fall),
                                 "min-clients= counts only with ratio="));
    ck_assert_str_eq(slb_parse_passive(pool, 3, too_many_clients, &r, fall),
                     "'min-clients=9' must be min-clients=1..8");
    ck_assert_ptr_nonnull(strstr(slb_parse_passive(pool, 2, max_alone, &r,
                                                   fall), "give eject="));
    ck_assert_str_eq(slb_parse_passive(pool, 3, max_short, &r, fall),
                     "eject-max=30 is shorter than eject=60");
    /* the default cap is at least eject= */
    ck_assert_ptr_null(slb_parse_passive(pool, 2, eject_long, &r, fall));
    ck_assert_int_eq(po.eject_max, 600);
    ck_assert_ptr_nonnull(strstr(slb_parse_passive(pool, 2, bad_cap, &r,
                                                   fall), "max-ejected="));
    ck_assert_ptr_nonnull(strstr(slb_parse_passive(pool, 1, bad_status, &r,
                                                   fall), "5000"));
    ck_assert_ptr_nonnull(slb_parse_passive(pool, 1, bad_range, &r, fall));
    ck_assert_ptr_nonnull(strstr(slb_parse_passive(pool, 2, bad_fall, &r,
                                                   fall), "fall"));
    ck_assert_ptr_nonnull(slb_parse_passive(pool, 1, only_fall, &r, fall));
    /* a misspelt option is named as one, a stray none too */
    ck_assert_str_eq(slb_parse_passive(pool, 2, near_fall, &r, fall),
                     "unknown option 'fal=2': did you mean fall=? "
                     "(expected fall=, ratio=, window=, min-requests=, "
                     "min-clients=, max-ejected=, eject=, eject-max=)");
    ck_assert_str_eq(slb_parse_passive(pool, 2, late_none, &r, fall),
                     "'none' must stand alone");
    ck_assert_str_eq(slb_parse_key(pool, "heder", "X", &k),
                     "unknown key 'heder': did you mean header? (expected "
                     "header NAME, query NAME, cookie NAME, address or "
                     "none)");
    ck_assert_str_eq(slb_parse_key(pool, "biscuit", "X", &k),
                     "unknown key 'biscuit' (expected header NAME, query "
                     "NAME, cookie NAME, address or none)");
}
END_TEST

/* The defaults, applied by the resolution alone. */
START_TEST(test_resolve_defaults)
{
    slb_dir_conf c;
    slb_balancer b;

    slb_dir_conf_init(&c);
    slb_balancer_resolve(pool, &c, "balancer://app", &b);
    ck_assert_str_eq(b.name, "balancer://app");
    ck_assert_str_eq(b.ns, "balancer://app");
    ck_assert_int_eq(b.spec.session_cookies->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(b.spec.session_cookies, 0, const char *),
                     "JSESSIONID");
    ck_assert_str_eq(b.spec.path_param, "jsessionid");
    ck_assert_int_eq(b.spec.separator, '.');
    ck_assert_ptr_null(b.spec.route_cookie);
    ck_assert_ptr_null(b.route_cookie->name);
    ck_assert_ptr_null(b.ring);
    ck_assert_int_eq(b.learn_cookies->nelts, 0);
    ck_assert_int_eq(b.keys->nelts, 0);
    ck_assert_uint_eq(b.lifetime.idle, 1800);
    ck_assert_uint_eq(b.lifetime.max, 0);
    ck_assert_int_eq(b.placement, SLB_PLACE_REQUESTS);
    ck_assert_int_eq(b.store, SLB_STORE_SHM);
    ck_assert_int_eq(b.probes->nelts, 0);
    ck_assert_int_eq(b.passive->nelts, 0);
    ck_assert_int_eq(b.passive_opts.fall, 3);
    ck_assert_int_eq(b.passive_opts.ratio, 0);
    ck_assert_int_eq(b.slow_start, 0);
    ck_assert(!b.uses_store && !b.learns && !b.inserts_cookie
              && !b.strips_cookie && !b.weights_vary);
    /* the cookie plan: the session cookie, nothing else */
    ck_assert_int_eq(b.plan.nnames, 1);
    ck_assert_int_eq(b.plan.first_session, 0);
    ck_assert_str_eq(b.plan.names[0], "JSESSIONID");
    ck_assert_uint_eq(b.plan.nlen[0], 10);
    ck_assert_ptr_eq(b.plan.spec, &b.spec);

    /* slow start: the weights vary with time */
    c.slow_start = apr_time_from_sec(30);
    c.set |= SLB_SET_SLOW_START;
    slb_balancer_resolve(pool, &c, "balancer://app", &b);
    ck_assert(b.weights_vary);
}
END_TEST

/* main server <- virtual host <- section: what each sets wins. */
START_TEST(test_merge_and_resolve)
{
    slb_dir_conf top, vh, sec, eff;
    slb_balancer b;
    const char *sid[] = { "SID" };
    const char *learn[] = { "PHPSESSID" };
    const char *rc[] = { "ROUTEID", "insert", "indirect", "path=/app",
                         "secure=on" };
    slb_key_source *k;

    slb_dir_conf_init(&top);
    slb_dir_conf_init(&vh);
    slb_dir_conf_init(&sec);
    /* main server: session cookie SID, separator ':', idle 600 s */
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 1, sid,
                                              &top.session_cookies));
    top.separator = ':';
    top.idle_timeout = apr_time_from_sec(600);
    top.set |= SLB_SET_SESSION_COOKIES | SLB_SET_SEPARATOR
               | SLB_SET_IDLE_TIMEOUT;
    /* virtual host: memcached, namespace shop, no path parameter */
    vh.store = SLB_STORE_MEMCACHED;
    vh.ns = "shop";
    vh.path_param = NULL;
    vh.set |= SLB_SET_STORE | SLB_SET_NAMESPACE | SLB_SET_PATH_PARAM;
    /* section: the separator back to '.', a route cookie, learning, a
     * key, a lifetime of 250 ms (rounded up to 1 s) */
    sec.separator = '.';
    ck_assert_ptr_null(slb_cookie_conf_parse(pool, &sec.route_cookie, 5,
                                             rc));
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 1, learn,
                                              &sec.learn_cookies));
    sec.keys = apr_array_make(pool, 1, sizeof(slb_key_source));
    k = apr_array_push(sec.keys);
    ck_assert_ptr_null(slb_parse_key(pool, "header", "X-Sid", k));
    sec.max_lifetime = 250000;
    sec.placement = SLB_PLACE_SESSIONS;
    sec.set |= SLB_SET_SEPARATOR | SLB_SET_ROUTE_COOKIE
               | SLB_SET_LEARN_COOKIES | SLB_SET_KEYS
               | SLB_SET_MAX_LIFETIME | SLB_SET_PLACEMENT;

    slb_dir_conf_merge(&eff, &top, &vh);
    slb_dir_conf_merge(&eff, &eff, &sec);
    slb_balancer_resolve(pool, &eff, "balancer://shop", &b);

    ck_assert_str_eq(APR_ARRAY_IDX(b.spec.session_cookies, 0, const char *),
                     "SID");                          /* main server */
    ck_assert_ptr_null(b.spec.path_param);            /* vhost: none */
    ck_assert_int_eq(b.spec.separator, '.');          /* section */
    ck_assert_str_eq(b.ns, "shop");
    ck_assert_int_eq(b.store, SLB_STORE_MEMCACHED);
    ck_assert_uint_eq(b.lifetime.idle, 600);
    ck_assert_uint_eq(b.lifetime.max, 1);
    ck_assert_int_eq(b.placement, SLB_PLACE_SESSIONS);
    ck_assert_str_eq(b.spec.route_cookie, "ROUTEID");
    ck_assert(b.inserts_cookie && b.strips_cookie && b.learns
              && b.uses_store);
    ck_assert_str_eq(b.cookie_attrs, "; Path=/app; Secure; HttpOnly; "
                                     "SameSite=Lax");
    ck_assert_str_eq(slb_balancer_cookie(pool, &b, "t2"),
                     "ROUTEID=t2; Path=/app; Secure; HttpOnly; "
                     "SameSite=Lax");
    /* the resolved cookie is what the codec builds */
    ck_assert_str_eq(slb_balancer_cookie(pool, &b, "t2"),
                     slb_cookie_build(pool, b.route_cookie, "t2"));

    /* a scope that sets nothing changes nothing */
    slb_dir_conf_init(&vh);
    slb_dir_conf_merge(&eff, &eff, &vh);
    slb_balancer_resolve(pool, &eff, "balancer://shop", &b);
    ck_assert_str_eq(b.ns, "shop");
    ck_assert_uint_eq(b.lifetime.idle, 600);

    /* "none" in a section overrides the main server's route cookie */
    slb_dir_conf_init(&sec);
    sec.set |= SLB_SET_ROUTE_COOKIE;
    slb_dir_conf_merge(&eff, &eff, &sec);
    slb_balancer_resolve(pool, &eff, "balancer://shop", &b);
    ck_assert_ptr_null(b.route_cookie->name);
    ck_assert(!b.inserts_cookie);
    ck_assert_ptr_null(b.spec.route_cookie);
}
END_TEST

/* Key cookies are read after the learned ones: each gets its slot; the
 * scope's array is not changed (other balancers share it). */
START_TEST(test_resolve_key_cookies)
{
    slb_dir_conf c;
    slb_balancer b;
    const char *learn[] = { "PHPSESSID", "connect.sid" };
    const char *nine[] = { "a", "b", "c", "d", "e", "f", "g" };
    slb_key_source *k;
    int i;

    slb_dir_conf_init(&c);
    c.keys = apr_array_make(pool, 3, sizeof(slb_key_source));
    ck_assert_ptr_null(slb_parse_key(pool, "header", "X-Sid",
                                     apr_array_push(c.keys)));
    ck_assert_ptr_null(slb_parse_key(pool, "cookie", "JSESSIONID",
                                     apr_array_push(c.keys)));
    ck_assert_ptr_null(slb_parse_key(pool, "cookie", "sid",
                                     apr_array_push(c.keys)));
    c.set |= SLB_SET_KEYS;

    /* no learned cookie: slots 0 and 1 */
    ck_assert_ptr_null(slb_dir_conf_check_cookies(pool, &c));
    slb_balancer_resolve(pool, &c, "balancer://a", &b);
    ck_assert(b.uses_store && !b.learns);
    ck_assert_ptr_nonnull(b.read_cookies);
    ck_assert_int_eq(b.read_cookies->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(b.read_cookies, 0, const char *),
                     "JSESSIONID");
    ck_assert_int_eq(APR_ARRAY_IDX(b.keys, 1, slb_key_source).slot, 0);
    ck_assert_int_eq(APR_ARRAY_IDX(b.keys, 2, slb_key_source).slot, 1);

    /* after two learned cookies: slots 2 and 3 */
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 2, learn,
                                              &c.learn_cookies));
    c.set |= SLB_SET_LEARN_COOKIES;
    ck_assert_ptr_null(slb_dir_conf_check_cookies(pool, &c));
    slb_balancer_resolve(pool, &c, "balancer://a", &b);
    ck_assert(b.learns);
    ck_assert_int_eq(b.learn_cookies->nelts, 2);
    ck_assert_int_eq(b.read_cookies->nelts, 4);
    ck_assert_str_eq(APR_ARRAY_IDX(b.read_cookies, 1, const char *),
                     "connect.sid");
    ck_assert_str_eq(APR_ARRAY_IDX(b.read_cookies, 3, const char *), "sid");
    ck_assert_int_eq(APR_ARRAY_IDX(b.keys, 1, slb_key_source).slot, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(b.keys, 2, slb_key_source).slot, 3);
    /* the scope's own keys untouched */
    ck_assert_int_eq(APR_ARRAY_IDX(c.keys, 2, slb_key_source).slot, 0);

    /* only learned cookies: read_cookies is that list; none: NULL */
    c.keys = NULL;
    slb_balancer_resolve(pool, &c, "balancer://a", &b);
    ck_assert_ptr_eq(b.read_cookies, b.learn_cookies);
    c.learn_cookies = NULL;
    slb_balancer_resolve(pool, &c, "balancer://a", &b);
    ck_assert_ptr_null(b.read_cookies);
    ck_assert(!b.uses_store);

    /* a cookie both learned and a key is refused */
    c.keys = apr_array_make(pool, 1, sizeof(slb_key_source));
    ck_assert_ptr_null(slb_parse_key(pool, "cookie", "connect.sid",
                                     apr_array_push(c.keys)));
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 2, learn,
                                              &c.learn_cookies));
    ck_assert_ptr_nonnull(strstr(slb_dir_conf_check_cookies(pool, &c),
                                 "connect.sid is a StickyLBLearnCookie"));
    /* more than eight cookie names together */
    c.keys = apr_array_make(pool, 7, sizeof(slb_key_source));
    for (i = 0; i < 7; i++) {
        k = apr_array_push(c.keys);
        ck_assert_ptr_null(slb_parse_key(pool, "cookie", nine[i], k));
    }
    ck_assert_ptr_nonnull(strstr(slb_dir_conf_check_cookies(pool, &c),
                                 "9 cookies together: at most 8"));
    apr_array_pop(c.keys);
    ck_assert_ptr_null(slb_dir_conf_check_cookies(pool, &c));
}
END_TEST

/* StickyLBStore none and StickyLBNewSessions hash: what configtest
 * refuses, what it warns about, and what the request path is told. */
START_TEST(test_store_none_and_hash)
{
    slb_dir_conf c;
    slb_balancer b;
    const char *learn[] = { "PHPSESSID" };
    const char *err, *warn = "x";
    slb_key_source *k;

    /* the defaults pass, without a warning */
    slb_dir_conf_init(&c);
    ck_assert_ptr_null(slb_dir_conf_check(pool, &c, "balancer://a", &warn));
    ck_assert_ptr_null(warn);

    /* none + a key without hash: refused, naming both fixes */
    c.store = SLB_STORE_NONE;
    c.keys = apr_array_make(pool, 1, sizeof(slb_key_source));
    k = apr_array_push(c.keys);
    ck_assert_ptr_null(slb_parse_key(pool, "address", NULL, k));
    c.set |= SLB_SET_STORE | SLB_SET_KEYS;
    err = slb_dir_conf_check(pool, &c, "balancer://a", NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "StickyLBStore none in balancer://a"));
    ck_assert_ptr_nonnull(strstr(err, "StickyLBNewSessions hash"));

    /* ... with hash: accepted; the keys are read, never stored */
    c.placement = SLB_PLACE_HASH;
    c.set |= SLB_SET_PLACEMENT;
    ck_assert_ptr_null(slb_dir_conf_check(pool, &c, "balancer://a", &warn));
    ck_assert_ptr_null(warn);
    slb_balancer_resolve(pool, &c, "balancer://a", &b);
    ck_assert_int_eq(b.store, SLB_STORE_NONE);
    ck_assert_int_eq(b.placement, SLB_PLACE_HASH);
    ck_assert(!b.uses_store);
    ck_assert_int_eq(b.keys->nelts, 1);

    /* a stick table: the keys are looked up and bound */
    c.store = SLB_STORE_SHM;
    slb_balancer_resolve(pool, &c, "balancer://a", &b);
    ck_assert(b.uses_store);

    /* none + learned cookies: refused whatever the placement */
    c.store = SLB_STORE_NONE;
    ck_assert_ptr_null(slb_parse_cookie_names(pool, 1, learn,
                                              &c.learn_cookies));
    c.set |= SLB_SET_LEARN_COOKIES;
    err = slb_dir_conf_check(pool, &c, "balancer://a", NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "StickyLBLearnCookie"));

    /* hash with nothing to hash: a warning only */
    slb_dir_conf_init(&c);
    c.placement = SLB_PLACE_HASH;
    c.set |= SLB_SET_PLACEMENT;
    ck_assert_ptr_null(slb_dir_conf_check(pool, &c, "balancer://b", &warn));
    ck_assert_ptr_nonnull(warn);
    ck_assert_ptr_nonnull(strstr(warn, "no key to hash"));
    slb_balancer_resolve(pool, &c, "balancer://b", &b);
    ck_assert(!b.uses_store);
}
END_TEST

Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parse_int);
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_duration_helpers);
    tcase_add_test(tc, test_parse_keyword);
    tcase_add_test(tc, test_near_word);
    tcase_add_test(tc, test_unknown_option);
    tcase_add_test(tc, test_cookie_names);
    tcase_add_test(tc, test_key_and_passive);
    tcase_add_test(tc, test_resolve_defaults);
    tcase_add_test(tc, test_merge_and_resolve);
    tcase_add_test(tc, test_resolve_key_cookies);
    tcase_add_test(tc, test_store_none_and_hash);
    suite_add_tcase(s, tc);
    return s;
}
