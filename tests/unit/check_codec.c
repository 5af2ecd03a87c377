/*
 * check_codec.c - Check tests of stickylb_codec.c (cookie, route and
 * path-parameter codec, route-cookie configuration, Set-Cookie and
 * Cache-Control building).
 *
 * Every test runs with a fresh APR pool (checked fixture).  Hostile inputs
 * that could tempt the code into reading past the end are copied into
 * exactly sized malloc() blocks (released by a pool cleanup), so valgrind
 * sees any over-read; everything else is passed as a string literal, which
 * lives in read-only memory and so also proves the codec never writes into
 * its input.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "check_stickylb.h"
#include "stickylb_codec.h"

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

static apr_status_t free_cleanup(void *data)
{
    free(data);
    return APR_SUCCESS;
}

/* len bytes of s plus a NUL in a block of exactly that size. */
static char *exact_mem(const char *s, size_t len)
{
    char *b = malloc(len + 1);

    ck_assert_ptr_nonnull(b);
    memcpy(b, s, len);
    b[len] = '\0';
    apr_pool_cleanup_register(pool, b, free_cleanup, apr_pool_cleanup_null);
    return b;
}

static char *exact(const char *s)
{
    return exact_mem(s, strlen(s));
}

/* prefix, n copies of c, suffix: exactly sized. */
static char *build_long(const char *prefix, char c, size_t n,
                        const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *b = malloc(pl + n + sl + 1);

    ck_assert_ptr_nonnull(b);
    memcpy(b, prefix, pl);
    memset(b + pl, c, n);
    memcpy(b + pl + n, suffix, sl + 1);
    apr_pool_cleanup_register(pool, b, free_cleanup, apr_pool_cleanup_null);
    return b;
}

/* A span equals the expected C string. */
#define ck_assert_span_eq(sp, expected)                                     \
    do {                                                                    \
        slb_span sp_ = (sp);                                                \
        ck_assert_ptr_nonnull(sp_.ptr);                                     \
        ck_assert_str_eq(apr_pstrmemdup(pool, sp_.ptr, sp_.len),            \
                         (expected));                                       \
    } while (0)

/* A span is a slice of buf (no copy, inside the bytes before the NUL). */
#define ck_assert_span_in(sp, buf)                                          \
    do {                                                                    \
        slb_span si_ = (sp);                                                \
        const char *sb_ = (buf);                                            \
        ck_assert_msg(si_.ptr >= sb_                                        \
                      && si_.ptr + si_.len <= sb_ + strlen(sb_),            \
                      "span is not a slice of the input");                  \
    } while (0)

/* ======================================================================
 * names
 * ==================================================================== */

START_TEST(test_source_name)
{
    ck_assert_str_eq(slb_source_name(SLB_SRC_NONE), "none");
    ck_assert_str_eq(slb_source_name(SLB_SRC_ROUTE_COOKIE), "route-cookie");
    ck_assert_str_eq(slb_source_name(SLB_SRC_URL), "url");
    ck_assert_str_eq(slb_source_name(SLB_SRC_SESSION_COOKIE),
                     "session-cookie");
    ck_assert_str_eq(slb_source_name(SLB_SRC_COOKIE), "cookie");
    ck_assert_str_eq(slb_source_name(SLB_SRC_HEADER), "header");
    ck_assert_str_eq(slb_source_name((slb_source)99), "none");
    ck_assert_str_eq(slb_source_name((slb_source)-1), "none");
}
END_TEST

/* ======================================================================
 * token / value / route validation
 * ==================================================================== */

/* RFC 7230 tchar, written from the grammar (not from the code). */
static int rfc_tchar(unsigned c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')) {
        return 1;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL;
}

/* RFC 6265 cookie-octet, written from the grammar. */
static int rfc_cookie_octet(unsigned c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a)
           || (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

START_TEST(test_token_char_all_bytes)
{
    unsigned c;

    for (c = 0; c < 256; c++) {
        ck_assert_msg(slb_is_token_char((unsigned char)c) == rfc_tchar(c),
                      "slb_is_token_char(0x%02x) = %d, RFC 7230 says %d", c,
                      slb_is_token_char((unsigned char)c), rfc_tchar(c));
    }
}
END_TEST

START_TEST(test_is_token)
{
    ck_assert_int_eq(slb_is_token(NULL, 10), 0);
    ck_assert_int_eq(slb_is_token("", 10), 0);
    ck_assert_int_eq(slb_is_token("ROUTEID", 10), 1);
    ck_assert_int_eq(slb_is_token("$Version", 10), 1); /* '$' is a tchar */
    ck_assert_int_eq(slb_is_token("a b", 10), 0);
    ck_assert_int_eq(slb_is_token("a=b", 10), 0);
    ck_assert_int_eq(slb_is_token("a;b", 10), 0);
    ck_assert_int_eq(slb_is_token("a\"b", 10), 0);
    ck_assert_int_eq(slb_is_token("a\x7f", 10), 0);
    ck_assert_int_eq(slb_is_token("a\x80", 10), 0);
    ck_assert_int_eq(slb_is_token("\t", 10), 0);
    /* maxlen is inclusive */
    ck_assert_int_eq(slb_is_token("abc", 3), 1);
    ck_assert_int_eq(slb_is_token("abcd", 3), 0);
    ck_assert_int_eq(slb_is_token("a", 0), 0);
    ck_assert_int_eq(slb_is_token(exact("abcdef"), 6), 1);
}
END_TEST

START_TEST(test_value_ok_all_bytes)
{
    unsigned c;

    for (c = 0; c < 256; c++) {
        char v[3];
        v[0] = 'a';
        v[1] = (char)c;
        v[2] = 'b';
        ck_assert_msg(slb_value_ok(v, 3) == rfc_cookie_octet(c),
                      "slb_value_ok(\"a\\x%02x b\") = %d, RFC 6265 says %d",
                      c, slb_value_ok(v, 3), rfc_cookie_octet(c));
        ck_assert_int_eq(slb_value_ok(v + 1, 1), rfc_cookie_octet(c));
    }
}
END_TEST

START_TEST(test_value_ok_bounds)
{
    const char *v4096 = build_long("", 'a', SLB_MAX_VALUE_LEN, "");
    const char *v4097 = build_long("", 'a', SLB_MAX_VALUE_LEN + 1, "");
    const char *v;

    ck_assert_int_eq(slb_value_ok(NULL, 3), 0);
    ck_assert_int_eq(slb_value_ok("abc", 0), 0);
    ck_assert_int_eq(slb_value_ok("abc.t1", 6), 1);
    v = "A-Z_0.9~!#$%&'()*+-./:<=>?@[]^`{|}";
    ck_assert_int_eq(slb_value_ok(v, strlen(v)), 1);
    ck_assert_int_eq(slb_value_ok(v4096, SLB_MAX_VALUE_LEN), 1);
    ck_assert_int_eq(slb_value_ok(v4097, SLB_MAX_VALUE_LEN + 1), 0);
    /* only len bytes are looked at */
    ck_assert_int_eq(slb_value_ok("abc;def", 3), 1);
    ck_assert_int_eq(slb_value_ok("abc;def", 4), 0);
    ck_assert_int_eq(slb_value_ok(exact("ab cd"), 2), 1);
}
END_TEST

START_TEST(test_route_ok)
{
    const char *r63 = build_long("", 'r', SLB_MAX_ROUTE_LEN, "");
    const char *r64 = build_long("", 'r', SLB_MAX_ROUTE_LEN + 1, "");

    ck_assert_int_eq(SLB_MAX_ROUTE_LEN, 63);
    ck_assert_int_eq(slb_route_ok("t1", 2), 1);
    ck_assert_int_eq(slb_route_ok(".t1", 3), 1);
    ck_assert_int_eq(slb_route_ok("node-1_a.b", 10), 1);
    ck_assert_int_eq(slb_route_ok(r63, 63), 1);
    ck_assert_int_eq(slb_route_ok(r64, 64), 0);
    ck_assert_int_eq(slb_route_ok("", 0), 0);
    ck_assert_int_eq(slb_route_ok(NULL, 2), 0);
    ck_assert_int_eq(slb_route_ok("t 1", 3), 0);
    ck_assert_int_eq(slb_route_ok("t\x01", 2), 0);
    ck_assert_int_eq(slb_route_ok("t\x7f", 2), 0);
    ck_assert_int_eq(slb_route_ok("t\xc3\xa9", 3), 0);
    ck_assert_int_eq(slb_route_ok("t;1", 3), 0);
    ck_assert_int_eq(slb_route_ok("t,1", 3), 0);
    ck_assert_int_eq(slb_route_ok("t\"1", 3), 0);
    ck_assert_int_eq(slb_route_ok("t\\1", 3), 0);
}
END_TEST

/* ======================================================================
 * slb_cookie_values
 * ==================================================================== */

START_TEST(test_values_basic)
{
    const char *hdr = "a=1; JSESSIONID=abc.t1; b=2";
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values(hdr, "JSESSIONID", out, 4), 1);
    ck_assert_span_eq(out[0], "abc.t1");
    ck_assert_span_in(out[0], hdr);
    ck_assert_int_eq(slb_cookie_values(hdr, "a", out, 4), 1);
    ck_assert_span_eq(out[0], "1");
    ck_assert_int_eq(slb_cookie_values(hdr, "b", out, 4), 1);
    ck_assert_span_eq(out[0], "2");
    ck_assert_int_eq(slb_cookie_values(hdr, "c", out, 4), 0);
}
END_TEST

START_TEST(test_values_same_name_order)
{
    const char *hdr =
        "JSESSIONID=one.t1; x=y; JSESSIONID=two.t2;JSESSIONID=three.t3";
    slb_span out[SLB_MAX_SAME_NAME];

    ck_assert_int_eq(slb_cookie_values(hdr, "JSESSIONID", out,
                                       SLB_MAX_SAME_NAME), 3);
    ck_assert_span_eq(out[0], "one.t1");
    ck_assert_span_eq(out[1], "two.t2");
    ck_assert_span_eq(out[2], "three.t3");
}
END_TEST

START_TEST(test_values_max)
{
    const char *hdr = "S=1; S=2; S=3";
    slb_span out[3];

    ck_assert_int_eq(slb_cookie_values(hdr, "S", out, 2), 2);
    ck_assert_span_eq(out[0], "1");
    ck_assert_span_eq(out[1], "2");
    ck_assert_int_eq(slb_cookie_values(hdr, "S", out, 1), 1);
    ck_assert_span_eq(out[0], "1");
    ck_assert_int_eq(slb_cookie_values(hdr, "S", out, 0), 0);
    ck_assert_int_eq(slb_cookie_values(hdr, "S", out, -1), 0);
    ck_assert_int_eq(slb_cookie_values(hdr, "S", NULL, 3), 0);
}
END_TEST

START_TEST(test_values_quoted)
{
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values("JSESSIONID=\"abc.t1\"", "JSESSIONID",
                                       out, 4), 1);
    ck_assert_span_eq(out[0], "abc.t1");
    ck_assert_int_eq(slb_cookie_values(" JSESSIONID = \"abc.t1\" ;",
                                       "JSESSIONID", out, 4), 1);
    ck_assert_span_eq(out[0], "abc.t1");
    /* empty or unbalanced quotes, and quotes holding a space */
    ck_assert_int_eq(slb_cookie_values("S=\"\"", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=\"", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values(exact("S=\""), "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=\"abc", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=abc\"", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=\"a b\"", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=\"\"abc\"\"", "S", out, 4), 0);
    /* one level of quotes only */
    ck_assert_int_eq(slb_cookie_values("S=\"x\"; S=y", "S", out, 4), 2);
    ck_assert_span_eq(out[0], "x");
    ck_assert_span_eq(out[1], "y");
}
END_TEST

START_TEST(test_values_whitespace)
{
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values("  JSESSIONID  =  abc.t1  ;\tb=2",
                                       "JSESSIONID", out, 4), 1);
    ck_assert_span_eq(out[0], "abc.t1");
    ck_assert_int_eq(slb_cookie_values("a=1;\tJSESSIONID=\tabc.t1\t",
                                       "JSESSIONID", out, 4), 1);
    ck_assert_span_eq(out[0], "abc.t1");
    ck_assert_int_eq(slb_cookie_values("a=1;JSESSIONID=abc.t1;b=2",
                                       "b", out, 4), 1);
    ck_assert_span_eq(out[0], "2");
    /* whitespace inside the value makes it invalid, not truncated */
    ck_assert_int_eq(slb_cookie_values("S=a b", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=a\tb", "S", out, 4), 0);
    /* whitespace inside the name: a different name */
    ck_assert_int_eq(slb_cookie_values("J SESSIONID=x", "JSESSIONID", out,
                                       4), 0);
}
END_TEST

START_TEST(test_values_pair_without_eq)
{
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values("JSESSIONID; JSESSIONID=abc.t1; "
                                       "JSESSIONID", "JSESSIONID", out, 4),
                     1);
    ck_assert_span_eq(out[0], "abc.t1");
    ck_assert_int_eq(slb_cookie_values("JSESSIONID", "JSESSIONID", out, 4),
                     0);
    ck_assert_int_eq(slb_cookie_values(exact("JSESSIONID"), "JSESSIONID",
                                       out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("abc.t1", "abc.t1", out, 4), 0);
}
END_TEST

START_TEST(test_values_case_sensitive)
{
    const char *hdr = "jsessionid=a.t1; JSessionId=b.t2; JSESSIONID=c.t3";
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values(hdr, "JSESSIONID", out, 4), 1);
    ck_assert_span_eq(out[0], "c.t3");
    ck_assert_int_eq(slb_cookie_values(hdr, "jsessionid", out, 4), 1);
    ck_assert_span_eq(out[0], "a.t1");
    ck_assert_int_eq(slb_cookie_values(hdr, "Jsessionid", out, 4), 0);
}
END_TEST

START_TEST(test_values_name_prefix_suffix)
{
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values("XJSESSIONID=a; JSESSIONIDX=b; "
                                       "JSESSION=c; JSESSIONID=d",
                                       "JSESSIONID", out, 4), 1);
    ck_assert_span_eq(out[0], "d");
}
END_TEST

START_TEST(test_values_empty)
{
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values("JSESSIONID=; JSESSIONID=  ; "
                                       "JSESSIONID=ok", "JSESSIONID", out,
                                       4), 1);
    ck_assert_span_eq(out[0], "ok");
    ck_assert_int_eq(slb_cookie_values("S=", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values(exact("S="), "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values(exact("S= "), "S", out, 4), 0);
}
END_TEST

START_TEST(test_values_too_long)
{
    slb_span out[4];
    const char *h4096 = build_long("S=", 'a', SLB_MAX_VALUE_LEN, "");
    const char *h4097 = build_long("S=", 'a', SLB_MAX_VALUE_LEN + 1, "");
    const char *q4096 = build_long("S=\"", 'a', SLB_MAX_VALUE_LEN, "\"");
    const char *mixed = build_long("S=", 'a', SLB_MAX_VALUE_LEN + 1,
                                   "; S=short.t1");

    ck_assert_int_eq(slb_cookie_values(h4096, "S", out, 4), 1);
    ck_assert_uint_eq(out[0].len, SLB_MAX_VALUE_LEN);
    ck_assert_ptr_eq(out[0].ptr, h4096 + 2);
    ck_assert_int_eq(slb_cookie_values(h4097, "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values(q4096, "S", out, 4), 1);
    ck_assert_uint_eq(out[0].len, SLB_MAX_VALUE_LEN);
    ck_assert_int_eq(slb_cookie_values(mixed, "S", out, 4), 1);
    ck_assert_span_eq(out[0], "short.t1");
}
END_TEST

START_TEST(test_values_bad_bytes)
{
    static const char *const bad[] = {
        "S=ab\001c", "S=ab\x1f", "S=ab\x7f", "S=ab\x80", "S=ab\xff",
        "S=\xc3\xa9t\xc3\xa9", "S=a\\b", "S=a\"b", "S=a b",
        "S=a\tb", "S=a\rb", "S=a\nb", "S=\x7f", "S=\x80"
    };
    slb_span out[4];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(slb_cookie_values(bad[i], "S", out, 4) == 0,
                      "value of case %u accepted", (unsigned)i);
        ck_assert_msg(slb_cookie_values(exact(bad[i]), "S", out, 4) == 0,
                      "value of case %u accepted", (unsigned)i);
    }
    /* a bad value does not hide a good one of the same name */
    ck_assert_int_eq(slb_cookie_values("S=a b; S=ab\x80; S=good.t1", "S",
                                       out, 4), 1);
    ck_assert_span_eq(out[0], "good.t1");
    /* '=' is a cookie-octet */
    ck_assert_int_eq(slb_cookie_values("S=a=b", "S", out, 4), 1);
    ck_assert_span_eq(out[0], "a=b");
}
END_TEST

START_TEST(test_values_comma_separator)
{
    slb_span out[4];

    /* ',' separates pairs too (httpd joins repeated Cookie headers with
     * ", "; a cookie-octet never holds ',') */
    ck_assert_int_eq(slb_cookie_values("a=1, JSESSIONID=abc.t1,JSESSIONID="
                                       "def.t2 ,b=2", "JSESSIONID", out, 4),
                     2);
    ck_assert_span_eq(out[0], "abc.t1");
    ck_assert_span_eq(out[1], "def.t2");
    ck_assert_int_eq(slb_cookie_values("a=1; S=x, S=y; S=z", "S", out, 4),
                     3);
    ck_assert_span_eq(out[0], "x");
    ck_assert_span_eq(out[1], "y");
    ck_assert_span_eq(out[2], "z");
    /* "S=a,b" is the pair S=a followed by the pair "b" (no '=') */
    ck_assert_int_eq(slb_cookie_values("S=a,b", "S", out, 4), 1);
    ck_assert_span_eq(out[0], "a");
    ck_assert_int_eq(slb_cookie_values("x=1,S", "S", out, 4), 0);
    /* a quoted value cannot hold a ',' either: it is cut and rejected */
    ck_assert_int_eq(slb_cookie_values("S=\"a,b\"", "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values(exact(",,, ,"), "S", out, 4), 0);
}
END_TEST

START_TEST(test_values_separators)
{
    slb_span out[4];

    ck_assert_int_eq(slb_cookie_values(";S=1;", "S", out, 4), 1);
    ck_assert_span_eq(out[0], "1");
    ck_assert_int_eq(slb_cookie_values(";;; ; S=1;;;S=2 ;; ", "S", out, 4),
                     2);
    ck_assert_span_eq(out[0], "1");
    ck_assert_span_eq(out[1], "2");
}
END_TEST

START_TEST(test_values_hostile_structure)
{
    static const char *const junk[] = {
        "", ";", ";;;", " ", "\t", "=", "==", "=abc", " ; = ; ", "S",
        "S ", " S", "=S=1", ";=;=;", "S\x01=1"
    };
    slb_span out[4];
    size_t i;

    for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        ck_assert_msg(slb_cookie_values(exact(junk[i]), "S", out, 4) == 0,
                      "junk case %u gave a value", (unsigned)i);
    }
    ck_assert_int_eq(slb_cookie_values(NULL, "S", out, 4), 0);
    ck_assert_int_eq(slb_cookie_values("S=1", NULL, out, 4), 0);
    /* the empty name never matches, not even "=abc" */
    ck_assert_int_eq(slb_cookie_values("=abc", "", out, 4), 0);
    /* a name of spaces only is trimmed to "" */
    ck_assert_int_eq(slb_cookie_values("  =abc", "", out, 4), 0);
}
END_TEST

/* ======================================================================
 * slb_split_route
 * ==================================================================== */

static int split(const char *v, char sep, int allow_empty, slb_span *id,
                 slb_span *route)
{
    return slb_split_route(v, strlen(v), sep, allow_empty, id, route);
}

START_TEST(test_split_basic)
{
    const char *v = "abc.t1";
    slb_span id, route;

    ck_assert_int_eq(split(v, '.', 0, &id, &route), 1);
    ck_assert_span_eq(id, "abc");
    ck_assert_span_eq(route, "t1");
    ck_assert_ptr_eq(id.ptr, v);
    ck_assert_ptr_eq(route.ptr, v + 4);

    ck_assert_int_eq(split("ABCDEF0123456789.node-1", '.', 0, &id, &route),
                     1);
    ck_assert_span_eq(id, "ABCDEF0123456789");
    ck_assert_span_eq(route, "node-1");

    ck_assert_int_eq(split("abc!t1", '!', 0, &id, &route), 1);
    ck_assert_span_eq(id, "abc");
    ck_assert_span_eq(route, "t1");
    ck_assert_int_eq(split("abc.t1", '!', 0, &id, &route), 0);
}
END_TEST

START_TEST(test_split_first_separator)
{
    slb_span id, route;

    /* the route is what follows the FIRST separator (as Tomcat and
     * mod_proxy_balancer do); ".t1" is a valid route string that simply
     * names no member */
    ck_assert_int_eq(split("abc..t1", '.', 0, &id, &route), 1);
    ck_assert_span_eq(id, "abc");
    ck_assert_span_eq(route, ".t1");
    ck_assert_int_eq(slb_route_ok(route.ptr, route.len), 1);

    ck_assert_int_eq(split("abc.t1.x", '.', 0, &id, &route), 1);
    ck_assert_span_eq(id, "abc");
    ck_assert_span_eq(route, "t1.x");
}
END_TEST

START_TEST(test_split_edges)
{
    slb_span id, route;

    /* leading separator: empty id, only when allowed */
    ck_assert_int_eq(split(".t1", '.', 0, &id, &route), 0);
    ck_assert_int_eq(split(".t1", '.', 1, &id, &route), 1);
    ck_assert_uint_eq(id.len, 0);
    ck_assert_span_eq(route, "t1");
    /* trailing separator: empty route, never */
    ck_assert_int_eq(split("abc.", '.', 0, &id, &route), 0);
    ck_assert_int_eq(split("abc.", '.', 1, &id, &route), 0);
    ck_assert_int_eq(split(".", '.', 1, &id, &route), 0);
    ck_assert_int_eq(split("..", '.', 1, &id, &route), 1);
    ck_assert_uint_eq(id.len, 0);
    ck_assert_span_eq(route, ".");
    /* no separator */
    ck_assert_int_eq(split("abc", '.', 1, &id, &route), 0);
    /* invalid arguments */
    ck_assert_int_eq(slb_split_route(NULL, 5, '.', 1, &id, &route), 0);
    ck_assert_int_eq(slb_split_route("a.b", 0, '.', 1, &id, &route), 0);
    ck_assert_int_eq(slb_split_route("a.b", 3, '\0', 1, &id, &route), 0);
}
END_TEST

START_TEST(test_split_route_validity)
{
    slb_span id, route;
    const char *r63 = build_long("id.", 'r', SLB_MAX_ROUTE_LEN, "");
    const char *r64 = build_long("id.", 'r', SLB_MAX_ROUTE_LEN + 1, "");

    ck_assert_int_eq(split(r63, '.', 0, &id, &route), 1);
    ck_assert_uint_eq(route.len, SLB_MAX_ROUTE_LEN);
    ck_assert_span_eq(id, "id");
    ck_assert_int_eq(split(r64, '.', 0, &id, &route), 0);
    ck_assert_int_eq(split("abc.t 1", '.', 0, &id, &route), 0);
    ck_assert_int_eq(split("abc.t\x01", '.', 0, &id, &route), 0);
    ck_assert_int_eq(split("abc.t\x7f", '.', 0, &id, &route), 0);
    ck_assert_int_eq(split("abc.t\xc3\xa9", '.', 0, &id, &route), 0);
    ck_assert_int_eq(split("abc.t;1", '.', 0, &id, &route), 0);
}
END_TEST

START_TEST(test_split_respects_len)
{
    const char *v = "abc.t1;junk";
    slb_span id, route;

    ck_assert_int_eq(slb_split_route(v, 6, '.', 0, &id, &route), 1);
    ck_assert_span_eq(route, "t1");
    /* the separator beyond len is not seen */
    ck_assert_int_eq(slb_split_route(v, 3, '.', 0, &id, &route), 0);
    ck_assert_int_eq(slb_split_route(exact_mem("abc.t1", 6), 6, '.', 0,
                                     &id, &route), 1);
    ck_assert_span_eq(route, "t1");
}
END_TEST

/* ======================================================================
 * slb_path_param
 * ==================================================================== */

START_TEST(test_path_param_basic)
{
    const char *uri = "/app;jsessionid=abc.t1";
    slb_span v;

    ck_assert_int_eq(slb_path_param(uri, "jsessionid", &v), 1);
    ck_assert_span_eq(v, "abc.t1");
    ck_assert_span_in(v, uri);
    ck_assert_int_eq(slb_path_param(exact("/app;jsessionid=abc.t1"),
                                    "jsessionid", &v), 1);
    ck_assert_span_eq(v, "abc.t1");
}
END_TEST

START_TEST(test_path_param_terminators)
{
    static const char *const uris[] = {
        "/app;jsessionid=abc.t1;other=1",
        "/app;jsessionid=abc.t1/more/path",
        "/app;jsessionid=abc.t1?x=1",
        "/app;jsessionid=abc.t1#frag",
        "/app;jsessionid=abc.t1?x=1;y=2/z#f",
        "/a;foo=1;jsessionid=abc.t1",
        "/a;;jsessionid=abc.t1",
        "/a;jsessionid=abc.t1/b;x=y",
        ";jsessionid=abc.t1",
    };
    size_t i;

    for (i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        slb_span v;
        ck_assert_msg(slb_path_param(exact(uris[i]), "jsessionid", &v) == 1,
                      "not found in %s", uris[i]);
        ck_assert_span_eq(v, "abc.t1");
    }
}
END_TEST

START_TEST(test_path_param_case_insensitive_name)
{
    slb_span v;

    ck_assert_int_eq(slb_path_param("/app;JSESSIONID=abc.t1", "jsessionid",
                                    &v), 1);
    ck_assert_span_eq(v, "abc.t1");
    ck_assert_int_eq(slb_path_param("/app;jsessionid=abc.t1", "JSessionID",
                                    &v), 1);
    ck_assert_span_eq(v, "abc.t1");
    /* the value is not case-folded */
    ck_assert_int_eq(slb_path_param("/app;jsessionid=ABC.T1", "jsessionid",
                                    &v), 1);
    ck_assert_span_eq(v, "ABC.T1");
}
END_TEST

START_TEST(test_path_param_query_ignored)
{
    static const char *const uris[] = {
        "/app?;jsessionid=abc.t1",
        "/app?x=1&jsessionid=abc.t1",
        "/app?jsessionid=abc.t1",
        "/app#;jsessionid=abc.t1",
        "/app;?jsessionid=abc.t1",
        "/app;#jsessionid=abc.t1",
        "/app;x=1?;jsessionid=abc.t1",
    };
    size_t i;

    for (i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        slb_span v;
        ck_assert_msg(slb_path_param(exact(uris[i]), "jsessionid", &v) == 0,
                      "found in %s", uris[i]);
    }
}
END_TEST

START_TEST(test_path_param_name_mismatch)
{
    static const char *const uris[] = {
        "/app;jsessionidx=abc.t1",
        "/app;xjsessionid=abc.t1",
        "/app;jsession=abc.t1",
        "/app;jsessionid",
        "/app;jsessionid;x=abc.t1",
        "/app;jsessionid/=abc.t1",
        "/app/jsessionid=abc.t1",
        "/app;jsessionid =abc.t1",
        "/app;jsessionid=",
        "/app;jsessionid=;",
        "/app;jsessionid=/x",
        "/app;jsessionid=?x",
        "/app;",
        ";",
        "",
    };
    size_t i;

    for (i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        slb_span v;
        ck_assert_msg(slb_path_param(exact(uris[i]), "jsessionid", &v) == 0,
                      "found in '%s'", uris[i]);
    }
}
END_TEST

START_TEST(test_path_param_bad_values)
{
    slb_span v;
    const char *l4096 = build_long("/a;jsessionid=", 'a', SLB_MAX_VALUE_LEN,
                                   "/b");
    const char *l4097 = build_long("/a;jsessionid=", 'a',
                                   SLB_MAX_VALUE_LEN + 1, "/b");

    ck_assert_int_eq(slb_path_param(l4096, "jsessionid", &v), 1);
    ck_assert_uint_eq(v.len, SLB_MAX_VALUE_LEN);
    ck_assert_int_eq(slb_path_param(l4097, "jsessionid", &v), 0);
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a\"b", "jsessionid", &v),
                     0);
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a b", "jsessionid", &v),
                     0);
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a\x01", "jsessionid", &v),
                     0);
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a\x80", "jsessionid", &v),
                     0);
    /* percent-encoding is left alone (bytes are checked, not decoded) */
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a%20b.t1", "jsessionid",
                                    &v), 1);
    ck_assert_span_eq(v, "a%20b.t1");
    /* '=' is allowed in the value */
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a=b", "jsessionid", &v),
                     1);
    ck_assert_span_eq(v, "a=b");
}
END_TEST

START_TEST(test_path_param_first_occurrence_decides)
{
    slb_span v;

    /* two occurrences: the first valid one wins */
    ck_assert_int_eq(slb_path_param("/a;jsessionid=one.t1;jsessionid=two.t2",
                                    "jsessionid", &v), 1);
    ck_assert_span_eq(v, "one.t1");
    /* an invalid (empty) first value is skipped: the later valid one is
     * used */
    ck_assert_int_eq(slb_path_param("/a;jsessionid=;jsessionid=abc.t1",
                                    "jsessionid", &v), 1);
    ck_assert_span_eq(v, "abc.t1");
    ck_assert_int_eq(slb_path_param("/a;jsessionid=a b;x=1", "jsessionid",
                                    &v), 0);
}
END_TEST

START_TEST(test_path_param_args)
{
    slb_span v;

    ck_assert_int_eq(slb_path_param(NULL, "jsessionid", &v), 0);
    ck_assert_int_eq(slb_path_param("/a;jsessionid=abc.t1", NULL, &v), 0);
    ck_assert_int_eq(slb_path_param("/a;jsessionid=abc.t1", "", &v), 0);
    /* a name that is a prefix of the URI's end */
    ck_assert_int_eq(slb_path_param(exact("/a;jsess"), "jsessionid", &v), 0);
    ck_assert_int_eq(slb_path_param(exact("/a;jsessionid"), "jsessionid",
                                    &v), 0);
}
END_TEST

/* ======================================================================
 * slb_collect_candidates
 * ==================================================================== */

static apr_array_header_t *names_array(const char *a, const char *b)
{
    apr_array_header_t *arr = apr_array_make(pool, 2, sizeof(const char *));

    if (a) {
        APR_ARRAY_PUSH(arr, const char *) = a;
    }
    if (b) {
        APR_ARRAY_PUSH(arr, const char *) = b;
    }
    return arr;
}

static slb_key_spec std_spec(void)
{
    slb_key_spec s;

    s.route_cookie = "ROUTEID";
    s.session_cookies = names_array("JSESSIONID", NULL);
    s.path_param = "jsessionid";
    s.separator = '.';
    return s;
}

#define ck_assert_cand(arr, i, src_, name_, id_, route_)                    \
    do {                                                                    \
        const slb_candidate *c_ = &APR_ARRAY_IDX((arr), (i), slb_candidate);\
        ck_assert_int_eq(c_->src, (src_));                                  \
        ck_assert_str_eq(c_->name, (name_));                                \
        ck_assert_str_eq(c_->id, (id_));                                    \
        ck_assert_str_eq(c_->route, (route_));                              \
    } while (0)

/* the plan's values and candidates, with memo (may be NULL) */
static apr_array_header_t *plan_collect(const slb_cookie_plan *pl,
                                        slb_cookie_memo *memo,
                                        const char *hdr, slb_span *vals,
                                        int *counts)
{
    apr_array_header_t *arr = apr_array_make(pool, 4, sizeof(slb_candidate));
    const char *hdrs[1];

    hdrs[0] = hdr;
    slb_collect_candidates_plan(pool, arr, pl, memo, hdrs, 1, "/", vals,
                                counts);
    return arr;
}

/* A header equal to the one remembered gives the same values, pointing
 * into the new header; any other header, plan or size is walked anew. */
START_TEST(test_collect_memo)
{
    slb_key_spec spec = std_spec();
    apr_array_header_t *learn = names_array("SID", NULL);
    slb_cookie_plan pl, pl2;
    slb_cookie_memo memo;
    slb_span v0[SLB_PLAN_NAMES * SLB_MAX_SAME_NAME];
    slb_span v1[SLB_PLAN_NAMES * SLB_MAX_SAME_NAME];
    int c0[SLB_PLAN_NAMES], c1[SLB_PLAN_NAMES];
    char h1[] = "ROUTEID=t1; SID=abc; JSESSIONID=s.t3; SID=def";
    char h2[sizeof(h1)], big[SLB_MEMO_HDR_MAX + 16];
    apr_array_header_t *a0, *a1;
    int k, i;

    slb_cookie_plan_make(&pl, &spec, learn);
    slb_cookie_plan_make(&pl2, &spec, learn);
    memset(&memo, 0, sizeof(memo));
    a0 = plan_collect(&pl, NULL, h1, v0, c0);
    a1 = plan_collect(&pl, &memo, h1, v1, c1);       /* walked, remembered */
    ck_assert_ptr_eq(memo.plan, &pl);
    ck_assert_int_eq(memo.nvalues, 4);
    memcpy(h2, h1, sizeof(h1));                       /* another address */
    memset(v1, 0, sizeof(v1));
    a1 = plan_collect(&pl, &memo, h2, v1, c1);        /* from the memo */
    ck_assert_int_eq(a1->nelts, a0->nelts);
    for (i = 0; i < a0->nelts; i++) {
        const slb_candidate *x = &APR_ARRAY_IDX(a0, i, slb_candidate);
        const slb_candidate *y = &APR_ARRAY_IDX(a1, i, slb_candidate);
        ck_assert_int_eq(x->src, y->src);
        ck_assert_str_eq(x->route, y->route);
        ck_assert_str_eq(x->id, y->id);
    }
    for (k = 0; k < pl.nnames; k++) {
        ck_assert_int_eq(c1[k], c0[k]);
        for (i = 0; i < c0[k]; i++) {
            const slb_span *x = &v0[k * SLB_MAX_SAME_NAME + i];
            const slb_span *y = &v1[k * SLB_MAX_SAME_NAME + i];
            ck_assert_uint_eq(y->len, x->len);
            ck_assert_ptr_eq(y->ptr, h2 + (x->ptr - h1));  /* in h2 */
        }
    }
    /* the learned name's two values */
    ck_assert_int_eq(c1[pl.first_extra], 2);
    ck_assert(v1[pl.first_extra * SLB_MAX_SAME_NAME + 1].len == 3
              && memcmp(v1[pl.first_extra * SLB_MAX_SAME_NAME + 1].ptr,
                        "def", 3) == 0);

    /* one byte changed: walked again, the new value found */
    h2[17] = 'x';                                     /* SID=axc */
    plan_collect(&pl, &memo, h2, v1, c1);
    ck_assert(memcmp(v1[pl.first_extra * SLB_MAX_SAME_NAME].ptr, "axc", 3)
              == 0);
    /* another plan (another balancer) with the same names: walked */
    plan_collect(&pl2, &memo, h2, v1, c1);
    ck_assert_ptr_eq(memo.plan, &pl2);
    /* a header too long to remember: walked, the memo forgotten */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "SID=zz;", 7);
    plan_collect(&pl2, &memo, big, v1, c1);
    ck_assert_int_eq(c1[pl2.first_extra], 1);
    ck_assert_ptr_eq(memo.plan, &pl2);   /* kept: the long one not taken */
    ck_assert_uint_eq(memo.len, strlen(h2));
}
END_TEST

START_TEST(test_collect_precedence)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { "JSESSIONID=sess.t3; ROUTEID=.t1" };
    apr_array_header_t *arr;

    arr = slb_collect_candidates(pool, &spec, hdrs, 1,
                                 "/app;jsessionid=url.t2?q=1");
    ck_assert_ptr_nonnull(arr);
    ck_assert_int_eq(arr->elt_size, (int)sizeof(slb_candidate));
    ck_assert_int_eq(arr->nelts, 3);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
    ck_assert_cand(arr, 1, SLB_SRC_URL, "jsessionid", "url", "t2");
    ck_assert_cand(arr, 2, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "sess",
                   "t3");
}
END_TEST

START_TEST(test_collect_url_before_session_cookie)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { "JSESSIONID=sess.t3" };
    apr_array_header_t *arr;

    spec.route_cookie = NULL;
    arr = slb_collect_candidates(pool, &spec, hdrs, 1,
                                 "/app;jsessionid=url.t2");
    ck_assert_int_eq(arr->nelts, 2);
    ck_assert_cand(arr, 0, SLB_SRC_URL, "jsessionid", "url", "t2");
    ck_assert_cand(arr, 1, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "sess",
                   "t3");
    /* no raw URI: the cookie only */
    arr = slb_collect_candidates(pool, &spec, hdrs, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "sess",
                   "t3");
    /* parameter only in the query string: ignored */
    arr = slb_collect_candidates(pool, &spec, hdrs, 1,
                                 "/app?jsessionid=url.t2");
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(arr, 0, slb_candidate).route, "t3");
}
END_TEST

START_TEST(test_collect_route_cookie_forms)
{
    slb_key_spec spec = std_spec();
    const char *bare[] = { "ROUTEID=t1" };
    const char *classic[] = { "ROUTEID=.t1" };
    const char *quoted[] = { "ROUTEID=\".t1\"" };
    const char *dot[] = { "ROUTEID=." };
    const char *dotdot[] = { "ROUTEID=..t1" };
    const char *withid[] = { "ROUTEID=abc.t1" };
    const char *lower[] = { "routeid=t1" };
    apr_array_header_t *arr;

    arr = slb_collect_candidates(pool, &spec, bare, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
    arr = slb_collect_candidates(pool, &spec, classic, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
    arr = slb_collect_candidates(pool, &spec, quoted, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
    /* a lone separator is no route */
    arr = slb_collect_candidates(pool, &spec, dot, 1, NULL);
    ck_assert_int_eq(arr->nelts, 0);
    /* only one leading separator is removed */
    arr = slb_collect_candidates(pool, &spec, dotdot, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", ".t1");
    /* the route cookie holds a route, it is not split like a session id */
    arr = slb_collect_candidates(pool, &spec, withid, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "abc.t1");
    /* cookie names are case-sensitive */
    arr = slb_collect_candidates(pool, &spec, lower, 1, NULL);
    ck_assert_int_eq(arr->nelts, 0);
}
END_TEST

START_TEST(test_collect_route_cookie_too_long)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[2];
    apr_array_header_t *arr;

    hdrs[0] = build_long("ROUTEID=", 'r', SLB_MAX_ROUTE_LEN + 1, "");
    hdrs[1] = build_long("ROUTEID=.", 'r', SLB_MAX_ROUTE_LEN + 1, "");
    arr = slb_collect_candidates(pool, &spec, hdrs, 2, NULL);
    ck_assert_int_eq(arr->nelts, 0);

    hdrs[0] = build_long("ROUTEID=", 'r', SLB_MAX_ROUTE_LEN, "");
    hdrs[1] = build_long("ROUTEID=.", 'q', SLB_MAX_ROUTE_LEN, "");
    arr = slb_collect_candidates(pool, &spec, hdrs, 2, NULL);
    ck_assert_int_eq(arr->nelts, 2);
    ck_assert_uint_eq(strlen(APR_ARRAY_IDX(arr, 0, slb_candidate).route),
                      SLB_MAX_ROUTE_LEN);
    ck_assert_uint_eq(strlen(APR_ARRAY_IDX(arr, 1, slb_candidate).route),
                      SLB_MAX_ROUTE_LEN);
    ck_assert_int_eq(APR_ARRAY_IDX(arr, 1, slb_candidate).route[0], 'q');
}
END_TEST

START_TEST(test_collect_multiple_headers)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { NULL, "JSESSIONID=a.t1", NULL,
                           "x=1; JSESSIONID=b.t2; ROUTEID=t9", NULL };
    apr_array_header_t *arr;

    arr = slb_collect_candidates(pool, &spec, hdrs, 5, NULL);
    ck_assert_int_eq(arr->nelts, 3);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t9");
    ck_assert_cand(arr, 1, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "a", "t1");
    ck_assert_cand(arr, 2, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "b", "t2");
    /* n_hdrs bounds the walk */
    arr = slb_collect_candidates(pool, &spec, hdrs, 2, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "a", "t1");
    /* no headers at all */
    arr = slb_collect_candidates(pool, &spec, NULL, 0, NULL);
    ck_assert_ptr_nonnull(arr);
    ck_assert_int_eq(arr->nelts, 0);
}
END_TEST

START_TEST(test_collect_session_cookie_order)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { "JSESSIONID=j.t1; PHPSESSID=p.t2; JSESSIONID=k.t3" };
    apr_array_header_t *arr;

    spec.route_cookie = NULL;
    spec.session_cookies = names_array("PHPSESSID", "JSESSIONID");
    arr = slb_collect_candidates(pool, &spec, hdrs, 1, NULL);
    ck_assert_int_eq(arr->nelts, 3);
    ck_assert_cand(arr, 0, SLB_SRC_SESSION_COOKIE, "PHPSESSID", "p", "t2");
    ck_assert_cand(arr, 1, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "j", "t1");
    ck_assert_cand(arr, 2, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "k", "t3");
}
END_TEST

START_TEST(test_collect_rejects_unrouted)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { "JSESSIONID=noroute; JSESSIONID=.t1; "
                           "JSESSIONID=abc.; JSESSIONID=abc.t 1; "
                           "JSESSIONID=abc..t2" };
    apr_array_header_t *arr;

    arr = slb_collect_candidates(pool, &spec, hdrs, 1,
                                 "/a;jsessionid=noroute");
    /* only "abc..t2" has an id and a valid route (".t2") */
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "abc",
                   ".t2");
    arr = slb_collect_candidates(pool, &spec, NULL, 0, "/a;jsessionid=.t1");
    ck_assert_int_eq(arr->nelts, 0);
}
END_TEST

START_TEST(test_collect_empty_spec)
{
    slb_key_spec spec;
    const char *hdrs[] = { "JSESSIONID=a.t1; ROUTEID=t1" };
    apr_array_header_t *arr;

    arr = slb_collect_candidates(pool, NULL, hdrs, 1, "/a;jsessionid=a.t1");
    ck_assert_ptr_nonnull(arr);
    ck_assert_int_eq(arr->nelts, 0);

    memset(&spec, 0, sizeof(spec));
    spec.separator = '.';
    arr = slb_collect_candidates(pool, &spec, hdrs, 1, "/a;jsessionid=a.t1");
    ck_assert_ptr_nonnull(arr);
    ck_assert_int_eq(arr->nelts, 0);

    spec.session_cookies = names_array(NULL, NULL);
    arr = slb_collect_candidates(pool, &spec, hdrs, 1, NULL);
    ck_assert_int_eq(arr->nelts, 0);
}
END_TEST

START_TEST(test_collect_no_separator)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { "ROUTEID=t1; JSESSIONID=a.t2" };
    apr_array_header_t *arr;

    spec.separator = '\0';
    arr = slb_collect_candidates(pool, &spec, hdrs, 1, "/a;jsessionid=a.t3");
    /* the route cookie needs no separator; session ids cannot be split */
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
}
END_TEST

START_TEST(test_collect_other_separator)
{
    slb_key_spec spec = std_spec();
    const char *hdrs[] = { "ROUTEID=!t1; JSESSIONID=a.b!t2" };
    apr_array_header_t *arr;

    spec.separator = '!';
    arr = slb_collect_candidates(pool, &spec, hdrs, 1,
                                 "/a;jsessionid=x!t3");
    ck_assert_int_eq(arr->nelts, 3);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
    ck_assert_cand(arr, 1, SLB_SRC_URL, "jsessionid", "x", "t3");
    ck_assert_cand(arr, 2, SLB_SRC_SESSION_COOKIE, "JSESSIONID", "a.b", "t2");
}
END_TEST

START_TEST(test_collect_limits)
{
    slb_key_spec spec = std_spec();
    const char *many[3];
    apr_array_header_t *arr;
    int i;

    /* at most SLB_MAX_SAME_NAME values per name, across all headers */
    many[0] = "ROUTEID=r1; ROUTEID=r2; ROUTEID=r3; ROUTEID=r4; ROUTEID=r5";
    many[1] = "ROUTEID=r6; ROUTEID=r7; ROUTEID=r8; ROUTEID=r9; ROUTEID=r10";
    arr = slb_collect_candidates(pool, &spec, many, 2, NULL);
    ck_assert_int_eq(arr->nelts, SLB_MAX_SAME_NAME);
    for (i = 0; i < SLB_MAX_SAME_NAME; i++) {
        ck_assert_str_eq(APR_ARRAY_IDX(arr, i, slb_candidate).route,
                         apr_psprintf(pool, "r%d", i + 1));
    }

    /* at most 3 * SLB_MAX_SAME_NAME candidates in all */
    spec.session_cookies = names_array("A", "B");
    many[2] = "A=a1.x1; A=a2.x2; A=a3.x3; A=a4.x4; A=a5.x5; A=a6.x6; "
              "A=a7.x7; A=a8.x8; A=a9.x9; B=b1.y1; B=b2.y2; B=b3.y3; "
              "B=b4.y4; B=b5.y5; B=b6.y6; B=b7.y7; B=b8.y8";
    arr = slb_collect_candidates(pool, &spec, many, 3, "/;jsessionid=u.z");
    ck_assert_int_eq(arr->nelts, 3 * SLB_MAX_SAME_NAME);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "r1");
    ck_assert_cand(arr, 8, SLB_SRC_URL, "jsessionid", "u", "z");
    ck_assert_cand(arr, 9, SLB_SRC_SESSION_COOKIE, "A", "a1", "x1");
    ck_assert_cand(arr, 16, SLB_SRC_SESSION_COOKIE, "A", "a8", "x8");
    ck_assert_cand(arr, 17, SLB_SRC_SESSION_COOKIE, "B", "b1", "y1");
    ck_assert_cand(arr, 23, SLB_SRC_SESSION_COOKIE, "B", "b7", "y7");
}
END_TEST

/* ======================================================================
 * slb_cookie_strip
 * ==================================================================== */

START_TEST(test_strip_middle)
{
    int removed = -1;

    ck_assert_str_eq(slb_cookie_strip(pool, "a=1; ROUTEID=t1; b=2",
                                      "ROUTEID", &removed), "a=1; b=2");
    ck_assert_int_eq(removed, 1);
    ck_assert_str_eq(slb_cookie_strip(pool, "ROUTEID=t1; a=1", "ROUTEID",
                                      &removed), "a=1");
    ck_assert_int_eq(removed, 1);
    ck_assert_str_eq(slb_cookie_strip(pool, "a=1; ROUTEID=t1", "ROUTEID",
                                      &removed), "a=1");
    ck_assert_int_eq(removed, 1);
}
END_TEST

START_TEST(test_strip_all_gone)
{
    int removed = -1;

    ck_assert_ptr_null(slb_cookie_strip(pool, "ROUTEID=t1", "ROUTEID",
                                        &removed));
    ck_assert_int_eq(removed, 1);
    ck_assert_ptr_null(slb_cookie_strip(pool, "ROUTEID=t1; ROUTEID=.t2",
                                        "ROUTEID", &removed));
    ck_assert_int_eq(removed, 2);
    ck_assert_ptr_null(slb_cookie_strip(pool, exact(";;; ROUTEID=1 ;;;"),
                                        "ROUTEID", &removed));
    ck_assert_int_eq(removed, 1);
    /* removed regardless of the value's validity or emptiness */
    ck_assert_ptr_null(slb_cookie_strip(pool, "ROUTEID=; ROUTEID=a b; "
                                        "ROUTEID=\x80", "ROUTEID",
                                        &removed));
    ck_assert_int_eq(removed, 3);
}
END_TEST

START_TEST(test_strip_keeps_others)
{
    const char *hdr = "routeid=t1; ROUTEIDX=2; XROUTEID=3; a=1";
    int removed = -1;

    /* nothing to remove: the header itself comes back */
    ck_assert_ptr_eq(slb_cookie_strip(pool, hdr, "ROUTEID", &removed), hdr);
    ck_assert_int_eq(removed, 0);
    /* a pair without '=' is not a cookie of that name: kept */
    ck_assert_str_eq(slb_cookie_strip(pool, "ROUTEID; a=1; ROUTEID=x",
                                      "ROUTEID", &removed), "ROUTEID; a=1");
    ck_assert_int_eq(removed, 1);
    /* every other byte as it was: the spacing, the separators between the
     * pairs kept, what comes before the first and after the last */
    ck_assert_str_eq(slb_cookie_strip(pool, "  a=1 ;ROUTEID=x;;\tb = 2  ;",
                                      "ROUTEID", &removed),
                     "  a=1;;\tb = 2  ;");
    ck_assert_int_eq(removed, 1);
    ck_assert_str_eq(slb_cookie_strip(pool, "a=\"x y\"; ROUTEID=1; c=\x80",
                                      "ROUTEID", &removed),
                     "a=\"x y\"; c=\x80");
    ck_assert_int_eq(removed, 1);
    /* ',' separated pairs (joined Cookie headers): the commas stay */
    ck_assert_str_eq(slb_cookie_strip(pool, "a=1, ROUTEID=t1, b=2",
                                      "ROUTEID", &removed), "a=1, b=2");
    ck_assert_int_eq(removed, 1);
    ck_assert_str_eq(slb_cookie_strip(pool, "a=1;ROUTEID=t1, b=2",
                                      "ROUTEID", &removed), "a=1, b=2");
    ck_assert_ptr_null(slb_cookie_strip(pool, "ROUTEID=t1, ROUTEID=t2",
                                        "ROUTEID", &removed));
    ck_assert_int_eq(removed, 2);
    ck_assert_str_eq(slb_cookie_strip(pool, "JSESSIONID=abc.t1; ROUTEID=t1;"
                                      " ROUTEID=t2; z", "ROUTEID", &removed),
                     "JSESSIONID=abc.t1; z");
    ck_assert_int_eq(removed, 2);
}
END_TEST

/* The bug of issue 14 item 7: `pref="a,b"; ROUTEID=t1` reached the backend
 * as `pref="a; b"`. */
START_TEST(test_strip_byte_exact)
{
    int removed = -1;

    /* a comma in a quoted value is not a separator */
    ck_assert_str_eq(slb_cookie_strip(pool, "pref=\"a,b\"; ROUTEID=t1",
                                      "ROUTEID", &removed), "pref=\"a,b\"");
    ck_assert_int_eq(removed, 1);
    ck_assert_str_eq(slb_cookie_strip(pool, "ROUTEID=t1; pref=\"a, b,c\"",
                                      "ROUTEID", &removed),
                     "pref=\"a, b,c\"");
    /* ... so a route cookie inside one is not a cookie: nothing removed */
    {
        const char *h = "pref=\"x,ROUTEID=t2\"; a=1";
        ck_assert_ptr_eq(slb_cookie_strip(pool, h, "ROUTEID", &removed), h);
        ck_assert_int_eq(removed, 0);
    }
    /* a ';' inside quotes does separate (user agents split on ';'
     * whatever the quotes): the halves are kept as they were */
    ck_assert_str_eq(slb_cookie_strip(pool, "pref=\"a;b\"; ROUTEID=t1; c=3",
                                      "ROUTEID", &removed),
                     "pref=\"a;b\"; c=3");
    ck_assert_str_eq(slb_cookie_strip(pool, "pref=\"a; ROUTEID=t1; b\"",
                                      "ROUTEID", &removed),
                     "pref=\"a; b\"");
    ck_assert_int_eq(removed, 1);
    /* first, middle, last, alone */
    ck_assert_str_eq(slb_cookie_strip(pool, "ROUTEID=t1;  x=\"1,2\" ;y=3",
                                      "ROUTEID", &removed),
                     "x=\"1,2\" ;y=3");
    ck_assert_str_eq(slb_cookie_strip(pool, "x=\"1,2\" ;  ROUTEID=t1\t; y=3",
                                      "ROUTEID", &removed),
                     "x=\"1,2\"\t; y=3");
    ck_assert_str_eq(slb_cookie_strip(pool, "x=1,y=2 ;ROUTEID=t1 ",
                                      "ROUTEID", &removed), "x=1,y=2 ");
    ck_assert_ptr_null(slb_cookie_strip(pool, " ROUTEID=\"t1\" ", "ROUTEID",
                                        &removed));
    ck_assert_int_eq(removed, 1);
    /* repeated, adjacent and apart */
    ck_assert_str_eq(slb_cookie_strip(pool, "ROUTEID=t1;ROUTEID=t2;a=\"q\";"
                                      "ROUTEID=t3", "ROUTEID", &removed),
                     "a=\"q\"");
    ck_assert_int_eq(removed, 3);
    ck_assert_str_eq(slb_cookie_strip(pool, "a=1; ROUTEID=t1; ROUTEID=t2;"
                                      "  b=\"x, y\";ROUTEID=t3;c",
                                      "ROUTEID", &removed),
                     "a=1;  b=\"x, y\";c");
    ck_assert_int_eq(removed, 3);
    /* odd whitespace and an unclosed quote */
    ck_assert_str_eq(slb_cookie_strip(pool, "\t a = \"1 ;\t ROUTEID = t1 ;,"
                                      " b=\"2", "ROUTEID", &removed),
                     "\t a = \"1 ;, b=\"2");
    ck_assert_int_eq(removed, 1);
}
END_TEST

START_TEST(test_strip_args)
{
    const char *hdr = "a=1; ROUTEID=t1";
    int removed = 42;

    ck_assert_ptr_null(slb_cookie_strip(pool, NULL, "ROUTEID", &removed));
    ck_assert_int_eq(removed, 0);
    removed = 42;
    ck_assert_ptr_eq(slb_cookie_strip(pool, hdr, NULL, &removed), hdr);
    ck_assert_int_eq(removed, 0);
    removed = 42;
    ck_assert_ptr_eq(slb_cookie_strip(pool, hdr, "", &removed), hdr);
    ck_assert_int_eq(removed, 0);
    removed = 42;
    ck_assert_str_eq(slb_cookie_strip(pool, "", "ROUTEID", &removed), "");
    ck_assert_int_eq(removed, 0);
}
END_TEST

/* ======================================================================
 * slb_cookie_conf_init / slb_cookie_conf_parse
 * ==================================================================== */

#define ARGV(...) ((const char *const[]){ __VA_ARGS__ })
#define ARGC(...) ((int)(sizeof(ARGV(__VA_ARGS__)) / sizeof(const char *)))
#define PARSE(c, ...) \
    slb_cookie_conf_parse(pool, (c), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void assert_defaults(const slb_cookie_conf *c)
{
    ck_assert_int_eq(c->insert, 0);
    ck_assert_int_eq(c->indirect, 0);
    ck_assert_int_eq(c->nocache, 0);
    ck_assert_str_eq(c->path, "/");
    ck_assert_ptr_null(c->domain);
    ck_assert_int_eq(c->secure, 0);
    ck_assert_int_eq(c->httponly, 1);
    ck_assert_int_eq(c->samesite, SLB_SAMESITE_LAX);
    ck_assert_int_eq(c->max_age, -1);
}

START_TEST(test_conf_init)
{
    slb_cookie_conf c;

    memset(&c, 0x5a, sizeof(c));
    slb_cookie_conf_init(&c);
    ck_assert_ptr_null(c.name);
    assert_defaults(&c);
}
END_TEST

START_TEST(test_conf_name_only)
{
    slb_cookie_conf c;

    memset(&c, 0x5a, sizeof(c));
    ck_assert_ptr_null(PARSE(&c, "ROUTEID"));
    ck_assert_str_eq(c.name, "ROUTEID");
    assert_defaults(&c);
}
END_TEST

START_TEST(test_conf_all_options)
{
    slb_cookie_conf c;

    ck_assert_ptr_null(PARSE(&c, "ROUTEID", "insert", "indirect", "nocache",
                             "path=/app", "domain=.example.com", "secure=on",
                             "httponly=off", "samesite=strict",
                             "max-age=3600"));
    ck_assert_str_eq(c.name, "ROUTEID");
    ck_assert_int_eq(c.insert, 1);
    ck_assert_int_eq(c.indirect, 1);
    ck_assert_int_eq(c.nocache, 1);
    ck_assert_str_eq(c.path, "/app");
    ck_assert_str_eq(c.domain, ".example.com");
    ck_assert_int_eq(c.secure, 1);
    ck_assert_int_eq(c.httponly, 0);
    ck_assert_int_eq(c.samesite, SLB_SAMESITE_STRICT);
    ck_assert_int_eq(c.max_age, 3600);

    /* keywords and attribute names are case-insensitive */
    ck_assert_ptr_null(PARSE(&c, "R", "INSERT", "Indirect", "NoCache",
                             "PATH=/x", "Domain=example.com", "SECURE=Yes",
                             "HttpOnly=NO", "SameSite=NONE", "Max-Age=0"));
    ck_assert_int_eq(c.insert, 1);
    ck_assert_int_eq(c.indirect, 1);
    ck_assert_int_eq(c.nocache, 1);
    ck_assert_str_eq(c.path, "/x");
    ck_assert_str_eq(c.domain, "example.com");
    ck_assert_int_eq(c.secure, 1);
    ck_assert_int_eq(c.httponly, 0);
    ck_assert_int_eq(c.samesite, SLB_SAMESITE_NONE);
    ck_assert_int_eq(c.max_age, 0);
}
END_TEST

START_TEST(test_conf_onoff_and_samesite)
{
    static const struct { const char *w; int v; } onoff[] = {
        { "on", 1 }, { "ON", 1 }, { "yes", 1 }, { "Yes", 1 }, { "1", 1 },
        { "off", 0 }, { "OFF", 0 }, { "no", 0 }, { "No", 0 }, { "0", 0 }
    };
    static const struct { const char *w; slb_samesite v; } ss[] = {
        { "lax", SLB_SAMESITE_LAX }, { "LAX", SLB_SAMESITE_LAX },
        { "strict", SLB_SAMESITE_STRICT }, { "Strict", SLB_SAMESITE_STRICT },
        { "off", SLB_SAMESITE_OFF }, { "OFF", SLB_SAMESITE_OFF },
        { "none", SLB_SAMESITE_NONE }
    };
    slb_cookie_conf c;
    size_t i;

    for (i = 0; i < sizeof(onoff) / sizeof(onoff[0]); i++) {
        const char *sec = apr_pstrcat(pool, "secure=", onoff[i].w, NULL);
        const char *ho = apr_pstrcat(pool, "httponly=", onoff[i].w, NULL);
        ck_assert_ptr_null(PARSE(&c, "R", sec, ho));
        ck_assert_int_eq(c.secure, onoff[i].v);
        ck_assert_int_eq(c.httponly, onoff[i].v);
    }
    for (i = 0; i < sizeof(ss) / sizeof(ss[0]); i++) {
        const char *w = apr_pstrcat(pool, "samesite=", ss[i].w, NULL);
        ck_assert_ptr_null(PARSE(&c, "R", w, "secure=on"));
        ck_assert_int_eq(c.samesite, ss[i].v);
    }
    /* the samesite=none check runs after all words: order does not matter */
    ck_assert_ptr_null(PARSE(&c, "R", "samesite=none", "secure=on"));
    ck_assert_ptr_null(PARSE(&c, "R", "secure=on", "samesite=none"));
    /* last word wins */
    ck_assert_ptr_null(PARSE(&c, "R", "path=/a", "path=/b", "max-age=1",
                             "max-age=2"));
    ck_assert_str_eq(c.path, "/b");
    ck_assert_int_eq(c.max_age, 2);
}
END_TEST

START_TEST(test_conf_limits_accepted)
{
    slb_cookie_conf c;
    const char *name128 = build_long("", 'n', 128, "");
    const char *path1024 = build_long("path=/", 'p', 1023, "");
    const char *dom253 = build_long("domain=", 'd', 253, "");
    const char *dom253dot = build_long("domain=.", 'd', 253, "");

    ck_assert_ptr_null(PARSE(&c, name128));
    ck_assert_str_eq(c.name, name128);
    ck_assert_ptr_null(PARSE(&c, "R", path1024));
    ck_assert_uint_eq(strlen(c.path), 1024);
    ck_assert_ptr_null(PARSE(&c, "R", dom253));
    ck_assert_ptr_null(PARSE(&c, "R", dom253dot));
    ck_assert_ptr_null(PARSE(&c, "R", "max-age=315360000"));
    ck_assert_int_eq(c.max_age, 315360000L);
    ck_assert_ptr_null(PARSE(&c, "R", "path=/a/b-c_d.e~f%20?x=y&z"));
    ck_assert_ptr_null(PARSE(&c, "R", "domain=a-b.c0.example"));
    ck_assert_ptr_null(PARSE(&c, "R", "insert", "nocache"));
}
END_TEST

START_TEST(test_conf_no_name)
{
    slb_cookie_conf c;
    const char *msg = slb_cookie_conf_parse(pool, &c, 0, NULL);

    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "name"));
}
END_TEST

/* An unknown word or attribute: the options listed, a near miss named. */
START_TEST(test_conf_unknown_option)
{
    slb_cookie_conf c;
    static const char list[] = "(expected insert, indirect, nocache, "
                               "strict, opaque, path=, domain=, secure=, "
                               "httponly=, samesite=, max-age=, sign=, "
                               "maxidle=, maxlife=)";

    ck_assert_str_eq(PARSE(&c, "ROUTEID", "insert", "samesit=lax"),
                     apr_pstrcat(pool, "unknown option 'samesit=lax': did "
                                 "you mean samesite=? ", list, NULL));
    ck_assert_str_eq(PARSE(&c, "ROUTEID", "insrt"),
                     apr_pstrcat(pool, "unknown option 'insrt': did you "
                                 "mean insert? ", list, NULL));
    ck_assert_str_eq(PARSE(&c, "ROUTEID", "httponly"),
                     apr_pstrcat(pool, "unknown option 'httponly': did you "
                                 "mean httponly=? ", list, NULL));
    ck_assert_str_eq(PARSE(&c, "ROUTEID", "colour=red"),
                     apr_pstrcat(pool, "unknown option 'colour=red' ", list,
                                 NULL));
    ck_assert_str_eq(PARSE(&c, "ROUTEID", "frobnicate"),
                     apr_pstrcat(pool, "unknown option 'frobnicate' ", list,
                                 NULL));
}
END_TEST

/* One bad word each; the message must name it (the value and the key). */
static const struct {
    const char *word;
    const char *must_name1;
    const char *must_name2;
} bad_words[] = {
    { "bogus", "bogus", "bogus" },
    { "secure", "secure", "secure" },
    { "max-age", "max-age", "max-age" },
    { "color=red", "color", "red" },
    { "=x", "=x", "=x" },
    { "path=foo", "path", "foo" },
    { "path=", "path", "path" },
    { "path=/a b", "path", "/a b" },
    { "path=/a;b", "path", "/a;b" },
    { "path=/a,b", "path", "/a,b" },
    { "path=/a\x01", "path", "/a\x01" },
    { "path=/\xc3\xa9", "path", "/\xc3\xa9" },
    { "domain=", "domain", "domain" },
    { "domain=.", "domain", "'.'" },
    { "domain=bad_host", "domain", "bad_host" },
    { "domain=a b", "domain", "a b" },
    { "domain=exa/mple", "domain", "exa/mple" },
    { "domain=example.com:80", "domain", "example.com:80" },
    { "secure=maybe", "secure", "maybe" },
    { "secure=", "secure", "secure" },
    { "httponly=2", "httponly", "'2'" },
    { "httponly=true", "httponly", "true" },
    { "samesite=sometimes", "samesite", "sometimes" },
    { "samesite=", "samesite", "samesite" },
    { "samesite=laxx", "samesite", "laxx" },
    { "max-age=abc", "max-age", "abc" },
    { "max-age=-1", "max-age", "-1" },
    { "max-age=315360001", "max-age", "315360001" },
    { "max-age=10x", "max-age", "10x" },
    { "max-age=", "max-age", "max-age" },
    { "max-age=99999999999999999999999", "max-age",
      "99999999999999999999999" },
    { "max-age=1.5", "max-age", "1.5" },
};
#define N_BAD_WORDS ((int)(sizeof(bad_words) / sizeof(bad_words[0])))

START_TEST(test_conf_bad_word)
{
    slb_cookie_conf c;
    const char *msg;

    /* after valid words, so a bad word is caught wherever it is */
    msg = PARSE(&c, "ROUTEID", "insert", "path=/", bad_words[_i].word,
                "secure=on");
    ck_assert_msg(msg != NULL, "'%s' accepted", bad_words[_i].word);
    ck_assert_msg(strstr(msg, bad_words[_i].must_name1) != NULL,
                  "message \"%s\" does not name '%s'", msg,
                  bad_words[_i].must_name1);
    ck_assert_msg(strstr(msg, bad_words[_i].must_name2) != NULL,
                  "message \"%s\" does not name '%s'", msg,
                  bad_words[_i].must_name2);
}
END_TEST

static const char *const bad_names[] = {
    "", "bad name", "$Version", "a;b", "a=b", "a,b", "a\"b", "a/b", "a\tb",
    "\xc3\xa9t\xc3\xa9", "a\x7f", "(x)"
};
#define N_BAD_NAMES ((int)(sizeof(bad_names) / sizeof(bad_names[0])))

START_TEST(test_conf_bad_name)
{
    slb_cookie_conf c;
    const char *msg = PARSE(&c, bad_names[_i], "insert");

    ck_assert_msg(msg != NULL, "name '%s' accepted", bad_names[_i]);
    ck_assert_msg(strstr(msg, apr_pstrcat(pool, "'", bad_names[_i], "'",
                                          NULL)) != NULL,
                  "message \"%s\" does not name '%s'", msg, bad_names[_i]);
}
END_TEST

START_TEST(test_conf_name_too_long)
{
    slb_cookie_conf c;
    const char *name129 = build_long("", 'n', 129, "");
    const char *msg = PARSE(&c, name129);

    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, name129));
}
END_TEST

START_TEST(test_conf_too_long_values)
{
    slb_cookie_conf c;
    const char *path1025 = build_long("path=/", 'p', 1024, "");
    const char *dom254 = build_long("domain=", 'd', 254, "");
    const char *msg;

    msg = PARSE(&c, "R", path1025);
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "path"));
    msg = PARSE(&c, "R", dom254);
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "domain"));
}
END_TEST

START_TEST(test_conf_samesite_none_needs_secure)
{
    slb_cookie_conf c;
    const char *msg;

    msg = PARSE(&c, "ROUTEID", "insert", "samesite=none");
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "samesite=none"));
    ck_assert_ptr_nonnull(strstr(msg, "secure"));
    msg = PARSE(&c, "ROUTEID", "secure=on", "samesite=none", "secure=off");
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "samesite=none"));
}
END_TEST

START_TEST(test_conf_nocache_needs_insert)
{
    slb_cookie_conf c;
    const char *msg;

    msg = PARSE(&c, "ROUTEID", "nocache");
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "nocache"));
    ck_assert_ptr_nonnull(strstr(msg, "insert"));
    msg = PARSE(&c, "ROUTEID", "indirect", "nocache");
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, "nocache"));
    ck_assert_ptr_null(PARSE(&c, "ROUTEID", "nocache", "insert"));
}
END_TEST

START_TEST(test_conf_max_age_strict)
{
    slb_cookie_conf c;

    /* digits only: no sign, no white space */
    ck_assert_ptr_nonnull(PARSE(&c, "R", "max-age=+5"));
    ck_assert_ptr_nonnull(PARSE(&c, "R", "max-age= 7"));
    ck_assert_ptr_nonnull(PARSE(&c, "R", "max-age=-0"));
    ck_assert_ptr_nonnull(PARSE(&c, "R", "max-age="));
    ck_assert_ptr_null(PARSE(&c, "R", "max-age=0"));
    ck_assert_int_eq(c.max_age, 0);
    ck_assert_ptr_null(PARSE(&c, "R", "max-age=315360000"));
    ck_assert_int_eq(c.max_age, 315360000L);
    ck_assert_ptr_nonnull(PARSE(&c, "R", "max-age=315360001"));
}
END_TEST

/* ======================================================================
 * slb_cookie_build
 * ==================================================================== */

START_TEST(test_build_defaults)
{
    slb_cookie_conf c;

    slb_cookie_conf_init(&c);
    c.name = "ROUTEID";
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t1"),
                     "ROUTEID=t1; Path=/; HttpOnly; SameSite=Lax");
    ck_assert_ptr_null(PARSE(&c, "ROUTEID", "insert"));
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t1"),
                     "ROUTEID=t1; Path=/; HttpOnly; SameSite=Lax");
}
END_TEST

START_TEST(test_build_all_attributes)
{
    slb_cookie_conf c;

    ck_assert_ptr_null(PARSE(&c, "ROUTEID", "insert", "indirect", "nocache",
                             "path=/app", "domain=.example.com", "secure=on",
                             "httponly=on", "samesite=strict",
                             "max-age=3600"));
    ck_assert_str_eq(slb_cookie_build(pool, &c, "node-1"),
                     "ROUTEID=node-1; Path=/app; Domain=.example.com; "
                     "Max-Age=3600; Secure; HttpOnly; SameSite=Strict");

    ck_assert_ptr_null(PARSE(&c, "SRV", "samesite=none", "secure=on",
                             "httponly=off", "max-age=0"));
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t2"),
                     "SRV=t2; Path=/; Max-Age=0; Secure; SameSite=None");

    ck_assert_ptr_null(PARSE(&c, "SRV", "samesite=off", "httponly=off"));
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t3"), "SRV=t3; Path=/");

    ck_assert_ptr_null(PARSE(&c, "SRV", "samesite=lax", "max-age=315360000"));
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t4"),
                     "SRV=t4; Path=/; Max-Age=315360000; HttpOnly; "
                     "SameSite=Lax");
}
END_TEST

START_TEST(test_build_odd_conf)
{
    slb_cookie_conf c;

    slb_cookie_conf_init(&c);
    c.name = "R";
    c.path = NULL;
    c.samesite = SLB_SAMESITE_UNSET;
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t1"),
                     "R=t1; Path=/; HttpOnly");
    c.samesite = (slb_samesite)7;
    ck_assert_str_eq(slb_cookie_build(pool, &c, "t1"),
                     "R=t1; Path=/; HttpOnly");
}
END_TEST

START_TEST(test_build_round_trip)
{
    slb_cookie_conf c;
    slb_key_spec spec;
    const char *hdrs[1];
    const char *setc;
    apr_array_header_t *arr;
    slb_span v[2];

    ck_assert_ptr_null(PARSE(&c, "ROUTEID", "insert", "secure=on"));
    setc = slb_cookie_build(pool, &c, "t1");
    /* the first pair of Set-Cookie is what the browser sends back */
    ck_assert_int_eq(slb_cookie_values(setc, "ROUTEID", v, 2), 1);
    ck_assert_span_eq(v[0], "t1");
    hdrs[0] = apr_pstrndup(pool, setc, strcspn(setc, ";"));
    memset(&spec, 0, sizeof(spec));
    spec.route_cookie = "ROUTEID";
    spec.separator = '.';
    arr = slb_collect_candidates(pool, &spec, hdrs, 1, NULL);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_cand(arr, 0, SLB_SRC_ROUTE_COOKIE, "ROUTEID", "", "t1");
}
END_TEST

/* ======================================================================
 * slb_cache_control_private
 * ==================================================================== */

START_TEST(test_cc_required_cases)
{
    ck_assert_str_eq(slb_cache_control_private(pool, "public, max-age=60"),
                     "max-age=60, private");
    ck_assert_str_eq(slb_cache_control_private(pool, NULL), "private");
    ck_assert_str_eq(slb_cache_control_private(pool, "no-store"),
                     "no-store");
    ck_assert_str_eq(slb_cache_control_private(pool, "private"), "private");
    ck_assert_str_eq(slb_cache_control_private(pool,
                                               "s-maxage=10, max-age=5"),
                     "max-age=5, private");
}
END_TEST

START_TEST(test_cc_more_cases)
{
    static const struct { const char *in, *out; } cases[] = {
        { "", "private" },
        { "public", "private" },
        { "PUBLIC", "private" },
        { "s-maxage=10", "private" },
        { "S-MaxAge=10", "private" },
        { "public, s-maxage=600", "private" },
        { "no-cache", "no-cache, private" },
        { "max-age=0,public,  must-revalidate",
          "max-age=0, must-revalidate, private" },
        { "Private", "Private" },
        { "private, max-age=0", "private, max-age=0" },
        { "public, private", "private" },
        { "no-store, public", "no-store" },
        { "NO-STORE", "NO-STORE" },
        { "private=\"Set-Cookie\"", "private=\"Set-Cookie\"" },
        { ", ,", "private" },
        { " \t ", "private" },
        { ",public,", "private" },
        { "  max-age=60  ", "max-age=60, private" },
        { "max-age=60,,no-transform", "max-age=60, no-transform, private" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in ? exact(cases[i].in) : NULL;
        const char *out = slb_cache_control_private(pool, in);
        ck_assert_msg(out != NULL && strcmp(out, cases[i].out) == 0,
                      "\"%s\" -> \"%s\", expected \"%s\"", cases[i].in,
                      out ? out : "(null)", cases[i].out);
        /* the input is not modified */
        ck_assert_str_eq(in, cases[i].in);
    }
}
END_TEST

/* Does Cache-Control value v hold the directive `name` (as a directive,
 * not inside a quoted-string argument)?  RFC 9111 section 5.2 grammar. */
static int cc_has_directive(const char *v, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = v;

    while (*p) {
        const char *start;
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        start = p;
        while (*p && *p != ',' && *p != '=' && *p != ' ' && *p != '\t') {
            p++;
        }
        if ((size_t)(p - start) == nlen && !strncasecmp(start, name, nlen)) {
            return 1;
        }
        /* skip the argument, honouring quoted-strings */
        while (*p && *p != ',') {
            if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1]) {
                        p++;
                    }
                    p++;
                }
                if (*p) {
                    p++;
                }
            }
            else {
                p++;
            }
        }
    }
    return 0;
}

START_TEST(test_cc_quoted_string_argument)
{
    /* A comma inside a quoted-string argument does not end the directive:
     * "Private" inside the quotes is a header field name, not the private
     * directive, so the response must still be made private (a split on
     * every ',' would take the fragment `Private"` for the directive). */
    const char *in = "no-cache=\"Set-Cookie, Private\"";
    const char *out = slb_cache_control_private(pool, in);

    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(strstr(out, in));
    ck_assert_msg(cc_has_directive(out, "private"),
                  "\"%s\" -> \"%s\": no private directive", in, out);
}
END_TEST

START_TEST(test_cc_unbalanced_quote)
{
    /* whatever follows an unclosed quote is inside it for a cache: the
     * value is replaced, not appended to */
    ck_assert_str_eq(slb_cache_control_private(pool, "no-cache=\"Set-Cookie"),
                     "private");
    ck_assert_str_eq(slb_cache_control_private(pool,
                                               "max-age=5, x=\"a\\\""),
                     "private");
    /* an escaped quote inside a closed string is balanced */
    ck_assert_str_eq(slb_cache_control_private(pool, "x=\"a\\\"b\""),
                     "x=\"a\\\"b\", private");
}
END_TEST

/* ======================================================================
 * slb_set_cookie_value
 * ==================================================================== */

START_TEST(test_set_cookie_value)
{
    slb_span v = { NULL, 0 };

    ck_assert_int_eq(slb_set_cookie_value("JSESSIONID=abc; Path=/; HttpOnly",
                                          "JSESSIONID", &v), 1);
    ck_assert_int_eq((int)v.len, 3);
    ck_assert_int_eq(memcmp(v.ptr, "abc", 3), 0);
    ck_assert_int_eq(slb_set_cookie_value(" JSESSIONID = \"q1\" ; Secure",
                                          "JSESSIONID", &v), 1);
    ck_assert_int_eq(memcmp(v.ptr, "q1", 2), 0);
    /* another cookie, a prefix, no '=' */
    ck_assert_int_eq(slb_set_cookie_value("JSESSIONIDX=abc", "JSESSIONID", &v), 0);
    ck_assert_int_eq(slb_set_cookie_value("SID=abc", "JSESSIONID", &v), 0);
    ck_assert_int_eq(slb_set_cookie_value("JSESSIONID", "JSESSIONID", &v), 0);
    /* an empty value deletes */
    ck_assert_int_eq(slb_set_cookie_value("JSESSIONID=; Path=/", "JSESSIONID", &v), 2);
    /* a value with bytes we do not accept is not learned */
    ck_assert_int_eq(slb_set_cookie_value("JSESSIONID=a\x01b", "JSESSIONID", &v), 0);
}
END_TEST

START_TEST(test_set_cookie_max_age)
{
    /* RFC 6265 5.2.2: "-"? DIGIT+, 0 or less expires; invalid values are
     * ignored; the last valid attribute wins (5.3) */
    static const struct { const char *hdr; int rc; } cases[] = {
        { "S=a; Max-Age=0", 2 },
        { "S=a; Max-Age=00", 2 },
        { "S=a; max-age = 000 ; Path=/", 2 },
        { "S=a; Max-Age=-1", 2 },
        { "S=a; Max-Age=-0", 2 },
        { "S=a; Max-Age=3600", 1 },
        { "S=a; Max-Age=0x", 1 },
        { "S=a; Max-Age=-", 1 },
        { "S=a; Max-Age=", 1 },
        { "S=a; Max-Age=+5", 1 },
        { "S=a; Max-Age=1.5", 1 },
        { "S=a; Max-Agex=0", 1 },
        { "S=a; Max-Age=0; Max-Age=3600", 1 },
        { "S=a; Max-Age=3600; Max-Age=0", 2 },
        { "S=a; Max-Age=0; Max-Age=junk", 2 },
        { "S=a; Max-Age=99999999999999999999999", 1 },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        slb_span v = { NULL, 0 };
        int rc = slb_set_cookie_value(cases[i].hdr, "S", &v);
        ck_assert_msg(rc == cases[i].rc, "%s: %d, want %d", cases[i].hdr, rc,
                      cases[i].rc);
    }
}
END_TEST

/* ====================================================================== */

/* slb_value_ok reads 8 bytes at a time: every byte value at every place
 * of values from 1 to 40 bytes, against the RFC 6265 cookie-octet rule */
START_TEST(test_value_ok_every_byte_every_place)
{
    char buf[41];
    int c, len, at;

    for (c = 0; c < 256; c++) {
        int octet = c >= 0x21 && c <= 0x7e && c != '"' && c != ','
                    && c != ';' && c != '\\';
        for (len = 1; len <= 40; len++) {
            for (at = 0; at < len; at++) {
                memset(buf, 'a', sizeof(buf));
                buf[at] = (char)c;
                ck_assert_msg(slb_value_ok(buf, (apr_size_t)len) == octet,
                              "byte 0x%02x at %d of %d", c, at, len);
            }
        }
    }
    /* neighbours that could carry into each other */
    ck_assert(!slb_value_ok("\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", 8));
    ck_assert(!slb_value_ok("aaaaaaa\xff", 8));
    ck_assert(!slb_value_ok("\xff" "aaaaaaa", 8));
    ck_assert(slb_value_ok("~~~~~~~~!!!!!!!!", 16));
    ck_assert(!slb_value_ok("~~~~~~~~!!!!!!! ", 16));
}
END_TEST

/* the learned cookies' values from the same pass as the candidates: what
 * slb_cookie_values gives for each name alone */
START_TEST(test_collect_extra_values)
{
    const char *hdrs[] = { "JSESSIONID=abc.t1; PHPSESSID=p1; sid=\"q1\"",
                           "PHPSESSID=p2, x=1; PHPSESSID=bad\x01; sid=q2" };
    apr_array_header_t *sess = apr_array_make(pool, 1, sizeof(char *));
    apr_array_header_t *extra = apr_array_make(pool, 2, sizeof(char *));
    apr_array_header_t *arr = apr_array_make(pool, 4, sizeof(slb_candidate));
    slb_span out[SLB_MAX_COOKIE_NAMES * SLB_MAX_SAME_NAME];
    int n[SLB_MAX_COOKIE_NAMES], k, i, h;
    slb_key_spec spec;

    APR_ARRAY_PUSH(sess, const char *) = "JSESSIONID";
    APR_ARRAY_PUSH(extra, const char *) = "PHPSESSID";
    APR_ARRAY_PUSH(extra, const char *) = "sid";
    memset(&spec, 0, sizeof(spec));
    spec.session_cookies = sess;
    spec.separator = '.';
    slb_collect_candidates_ex(pool, arr, &spec, hdrs, 2, "/", extra, out, n);
    ck_assert_int_eq(arr->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(arr, 0, slb_candidate).route, "t1");
    for (k = 0; k < 2; k++) {
        const char *name = APR_ARRAY_IDX(extra, k, const char *);
        int m = 0;
        for (h = 0; h < 2; h++) {
            slb_span v[SLB_MAX_SAME_NAME];
            int got = slb_cookie_values(hdrs[h], name, v, SLB_MAX_SAME_NAME);
            for (i = 0; i < got; i++, m++) {
                ck_assert_int_lt(m, n[k]);
                ck_assert_uint_eq(out[k * SLB_MAX_SAME_NAME + m].len,
                                  v[i].len);
                ck_assert_int_eq(memcmp(out[k * SLB_MAX_SAME_NAME + m].ptr,
                                        v[i].ptr, v[i].len), 0);
            }
        }
        ck_assert_int_eq(m, n[k]);
    }
    ck_assert_int_eq(n[0], 2);       /* p1, p2 (bad\x01 refused) */
    ck_assert_int_eq(n[1], 2);       /* q1 unquoted, q2 */
    /* no extra names: nothing asked, nothing written */
    n[0] = 99;
    arr = apr_array_make(pool, 4, sizeof(slb_candidate));
    slb_collect_candidates_ex(pool, arr, &spec, hdrs, 2, "/", NULL, NULL,
                              NULL);
    ck_assert_int_eq(arr->nelts, 1);
}
END_TEST

/* A header key's value is an HTTP field value: spaces, commas, ';' and
 * quotes are part of it; control bytes and non-ASCII are not. */
START_TEST(test_header_value_ok)
{
    char big[SLB_MAX_VALUE_LEN + 2];
    unsigned c;

    ck_assert(slb_header_value_ok("abc", 3));
    ck_assert(slb_header_value_ok("Bearer x.y", 10));
    ck_assert(slb_header_value_ok("a, b", 4));           /* repeated header */
    ck_assert(slb_header_value_ok("\"q\"; x\\y", 8));
    ck_assert(slb_header_value_ok("a\tb", 3));
    ck_assert(!slb_header_value_ok("", 0));
    ck_assert(!slb_header_value_ok(NULL, 3));
    ck_assert(!slb_header_value_ok("a\rb", 3));
    ck_assert(!slb_header_value_ok("a\0b", 3));
    ck_assert(!slb_header_value_ok("a\x7f", 2));
    ck_assert(!slb_header_value_ok("\xc3\xa9", 2));
    for (c = 0; c < 256; c++) {
        char v[3] = { 'a', (char)c, 'b' };
        ck_assert_int_eq(slb_header_value_ok(v, 3),
                         c == '\t' || (c >= 0x20 && c < 0x7f));
    }
    memset(big, 'x', sizeof(big));
    ck_assert(slb_header_value_ok(big, SLB_MAX_VALUE_LEN));
    ck_assert(!slb_header_value_ok(big, SLB_MAX_VALUE_LEN + 1));
}
END_TEST

/* A key cookie (StickyLBKey cookie NAME) is read as an extra name, in the
 * shape the haproxy-peers demo's clients send: the value of that cookie
 * only, the others and the separators left out. */
START_TEST(test_collect_key_cookie_demo_shape)
{
    const char *hdrs[] = {
        "c1=1; c2=2; JSESSIONID=0cc175b9c0f1b6a831c399e269772661"
    };
    const char *two[] = { "JSESSIONID=b\x01d; JSESSIONID=\"q1\", "
                          "JSESSIONID=q2" };
    apr_array_header_t *extra = apr_array_make(pool, 2, sizeof(const char *));
    apr_array_header_t *arr = apr_array_make(pool, 4, sizeof(slb_candidate));
    apr_array_header_t *sessions = apr_array_make(pool, 1,
                                                  sizeof(const char *));
    slb_span out[2 * SLB_MAX_SAME_NAME];
    int n[2] = { -1, -1 };
    slb_key_spec spec;

    memset(&spec, 0, sizeof(spec));
    APR_ARRAY_PUSH(sessions, const char *) = "JSESSIONID";
    spec.session_cookies = sessions;     /* the default: no route in it */
    spec.separator = '.';
    APR_ARRAY_PUSH(extra, const char *) = "PHPSESSID";   /* learned */
    APR_ARRAY_PUSH(extra, const char *) = "JSESSIONID";  /* key cookie */
    slb_collect_candidates_ex(pool, arr, &spec, hdrs, 1, "/", extra, out, n);
    ck_assert_int_eq(arr->nelts, 0);     /* an md5 carries no route */
    ck_assert_int_eq(n[0], 0);
    ck_assert_int_eq(n[1], 1);
    ck_assert_uint_eq(out[SLB_MAX_SAME_NAME].len, 32);
    ck_assert_int_eq(memcmp(out[SLB_MAX_SAME_NAME].ptr,
                            "0cc175b9c0f1b6a831c399e269772661", 32), 0);
    /* the first valid value comes first: one with a control byte
     * skipped, quotes removed */
    slb_collect_candidates_ex(pool, arr, &spec, two, 1, "/", extra, out, n);
    ck_assert_int_eq(n[1], 2);
    ck_assert_uint_eq(out[SLB_MAX_SAME_NAME].len, 2);
    ck_assert_int_eq(memcmp(out[SLB_MAX_SAME_NAME].ptr, "q1", 2), 0);
    ck_assert_int_eq(memcmp(out[SLB_MAX_SAME_NAME + 1].ptr, "q2", 2), 0);
}
END_TEST

Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc;

#define NEW_TCASE(title)                                                    \
    tc = tcase_create(title);                                               \
    tcase_add_checked_fixture(tc, setup, teardown);                         \
    suite_add_tcase(s, tc)

    NEW_TCASE("names");
    tcase_add_test(tc, test_source_name);

    NEW_TCASE("validation");
    tcase_add_test(tc, test_token_char_all_bytes);
    tcase_add_test(tc, test_is_token);
    tcase_add_test(tc, test_value_ok_every_byte_every_place);
    tcase_add_test(tc, test_collect_extra_values);
    tcase_add_test(tc, test_header_value_ok);
    tcase_add_test(tc, test_collect_key_cookie_demo_shape);
    tcase_add_test(tc, test_value_ok_all_bytes);
    tcase_add_test(tc, test_value_ok_bounds);
    tcase_add_test(tc, test_route_ok);

    NEW_TCASE("cookie_values");
    tcase_add_test(tc, test_values_basic);
    tcase_add_test(tc, test_values_same_name_order);
    tcase_add_test(tc, test_values_max);
    tcase_add_test(tc, test_values_quoted);
    tcase_add_test(tc, test_values_whitespace);
    tcase_add_test(tc, test_values_pair_without_eq);
    tcase_add_test(tc, test_values_case_sensitive);
    tcase_add_test(tc, test_values_name_prefix_suffix);
    tcase_add_test(tc, test_values_empty);
    tcase_add_test(tc, test_values_too_long);
    tcase_add_test(tc, test_values_bad_bytes);
    tcase_add_test(tc, test_values_separators);
    tcase_add_test(tc, test_values_comma_separator);
    tcase_add_test(tc, test_values_hostile_structure);

    NEW_TCASE("split_route");
    tcase_add_test(tc, test_split_basic);
    tcase_add_test(tc, test_split_first_separator);
    tcase_add_test(tc, test_split_edges);
    tcase_add_test(tc, test_split_route_validity);
    tcase_add_test(tc, test_split_respects_len);

    NEW_TCASE("path_param");
    tcase_add_test(tc, test_path_param_basic);
    tcase_add_test(tc, test_path_param_terminators);
    tcase_add_test(tc, test_path_param_case_insensitive_name);
    tcase_add_test(tc, test_path_param_query_ignored);
    tcase_add_test(tc, test_path_param_name_mismatch);
    tcase_add_test(tc, test_path_param_bad_values);
    tcase_add_test(tc, test_path_param_first_occurrence_decides);
    tcase_add_test(tc, test_path_param_args);

    NEW_TCASE("collect_candidates");
    tcase_add_test(tc, test_collect_precedence);
    tcase_add_test(tc, test_collect_memo);
    tcase_add_test(tc, test_collect_url_before_session_cookie);
    tcase_add_test(tc, test_collect_route_cookie_forms);
    tcase_add_test(tc, test_collect_route_cookie_too_long);
    tcase_add_test(tc, test_collect_multiple_headers);
    tcase_add_test(tc, test_collect_session_cookie_order);
    tcase_add_test(tc, test_collect_rejects_unrouted);
    tcase_add_test(tc, test_collect_empty_spec);
    tcase_add_test(tc, test_collect_no_separator);
    tcase_add_test(tc, test_collect_other_separator);
    tcase_add_test(tc, test_collect_limits);

    NEW_TCASE("cookie_strip");
    tcase_add_test(tc, test_strip_middle);
    tcase_add_test(tc, test_strip_all_gone);
    tcase_add_test(tc, test_strip_keeps_others);
    tcase_add_test(tc, test_strip_byte_exact);
    tcase_add_test(tc, test_strip_args);

    NEW_TCASE("cookie_conf");
    tcase_add_test(tc, test_conf_init);
    tcase_add_test(tc, test_conf_name_only);
    tcase_add_test(tc, test_conf_all_options);
    tcase_add_test(tc, test_conf_onoff_and_samesite);
    tcase_add_test(tc, test_conf_limits_accepted);
    tcase_add_test(tc, test_conf_no_name);
    tcase_add_test(tc, test_conf_unknown_option);
    tcase_add_loop_test(tc, test_conf_bad_word, 0, N_BAD_WORDS);
    tcase_add_loop_test(tc, test_conf_bad_name, 0, N_BAD_NAMES);
    tcase_add_test(tc, test_conf_name_too_long);
    tcase_add_test(tc, test_conf_too_long_values);
    tcase_add_test(tc, test_conf_samesite_none_needs_secure);
    tcase_add_test(tc, test_conf_nocache_needs_insert);
    tcase_add_test(tc, test_conf_max_age_strict);

    NEW_TCASE("cookie_build");
    tcase_add_test(tc, test_build_defaults);
    tcase_add_test(tc, test_build_all_attributes);
    tcase_add_test(tc, test_build_odd_conf);
    tcase_add_test(tc, test_build_round_trip);

    NEW_TCASE("cache_control");
    tcase_add_test(tc, test_cc_required_cases);
    tcase_add_test(tc, test_cc_more_cases);
    tcase_add_test(tc, test_cc_quoted_string_argument);
    tcase_add_test(tc, test_cc_unbalanced_quote);

    NEW_TCASE("set_cookie_value");
    tcase_add_test(tc, test_set_cookie_value);
    tcase_add_test(tc, test_set_cookie_max_age);

#undef NEW_TCASE
    return s;
}
