/*
 * check_etcd.c - Check tests of stickylb_etcd.c (the etcd v3 source of
 * member discovery).
 *
 * The parsers are tested on bodies as etcd 3.4's JSON gateway writes them
 * (captured from /usr/bin/etcd); the source itself against real etcd
 * processes the tests start:
 *
 *     /usr/bin/etcd --data-dir TMP --listen-client-urls http://127.0.0.1:P
 *         --advertise-client-urls http://127.0.0.1:P
 *         --listen-peer-urls http://127.0.0.1:P2 ...
 *
 * on free ports, started with fork/exec and stopped by PID (SIGKILL), with
 * PR_SET_PDEATHSIG so none outlives the test run.  Keys are put and
 * deleted through the gateway with libcurl.  One etcd serves the tcase
 * "etcd" (each test under its own prefix); the outage and wipe tests
 * start their own.  A missing etcd binary is a failure, not a skip: CI
 * installs etcd-server (scripts/deps.sh).
 *
 * Time bounds are asserted with a slack (SLACK_MS, 300 ms by default;
 * SLB_TEST_SLACK_MS overrides it).  The suite runs in about 12 s, most of
 * it etcd starting (about 1.3 s each) and watches waiting on purpose.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include <curl/curl.h>

#include "check_stickylb.h"
#include "stickylb_etcd.h"

#define ETCD_BIN "/usr/bin/etcd"

static apr_pool_t *pool;

static long slack_ms(void)
{
    const char *e = getenv("SLB_TEST_SLACK_MS");

    return e && atol(e) > 0 ? atol(e) : 300;
}

static long ms_since(apr_time_t t0)
{
    return (long)((apr_time_now() - t0) / 1000);
}

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_etcd_global_init(), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    pool = NULL;
}

static apr_table_t *opts_of(const char *prefix, const char *timeout)
{
    apr_table_t *t = apr_table_make(pool, 4);

    if (prefix) {
        apr_table_set(t, "prefix", prefix);
    }
    if (timeout) {
        apr_table_set(t, "timeout", timeout);
    }
    return t;
}

static const char *b64(const char *s)
{
    char *d = apr_palloc(pool, (apr_size_t)apr_base64_encode_len((int)strlen(s)));

    apr_base64_encode(d, s, (int)strlen(s));
    return d;
}

/* one kv of a range answer, as the gateway writes it */
static const char *kv_json(const char *key, const char *val, int rev)
{
    return apr_psprintf(pool, "{\"key\":\"%s\",\"create_revision\":\"%d\","
                        "\"mod_revision\":\"%d\",\"version\":\"1\"%s%s%s}",
                        b64(key), rev, rev, val ? ",\"value\":\"" : "",
                        val ? b64(val) : "", val ? "\"" : "");
}

static const char *range_json(int rev, const char *kvs)
{
    return apr_psprintf(pool, "{\"header\":{\"cluster_id\":"
                        "\"7801232528081817440\",\"member_id\":"
                        "\"13458989633860879742\",\"revision\":\"%d\","
                        "\"raft_term\":\"2\"}%s%s%s}", rev,
                        kvs ? ",\"kvs\":[" : "", kvs ? kvs : "",
                        kvs ? "]" : "");
}

static const slb_disc_entry *entry(apr_array_header_t *a, int i)
{
    ck_assert_int_lt(i, a->nelts);
    return &APR_ARRAY_IDX(a, i, slb_disc_entry);
}

static const slb_disc_entry *find_url(apr_array_header_t *a, const char *url)
{
    int i;

    for (i = 0; i < a->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(a, i, slb_disc_entry).url, url)) {
            return &APR_ARRAY_IDX(a, i, slb_disc_entry);
        }
    }
    return NULL;
}

/* ======================================================================
 * parsing
 * ==================================================================== */

START_TEST(test_range_end)
{
    apr_size_t n;
    const char *e;

    e = slb_etcd_range_end(pool, "/services/web/", 14, &n);
    ck_assert_uint_eq(n, 14);
    ck_assert_str_eq(e, "/services/web0");
    e = slb_etcd_range_end(pool, "a\xff\xff", 3, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(e, "b");
    e = slb_etcd_range_end(pool, "\xff\xff", 2, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(e[0], 0);
}
END_TEST

static const char *url_of(const char *in)
{
    const char *out = NULL, *err = slb_etcd_member_url(pool, in, strlen(in),
                                                       &out);

    ck_assert_msg(err == NULL, "'%s' refused: %s", in, err);
    return out;
}

static const char *url_err(const char *in)
{
    const char *out = NULL, *err = slb_etcd_member_url(pool, in, strlen(in),
                                                       &out);

    ck_assert_msg(err != NULL, "'%s' accepted as %s", in, out);
    return err;
}

START_TEST(test_member_url)
{
    ck_assert_str_eq(url_of("http://10.0.0.5:8080"), "http://10.0.0.5:8080");
    ck_assert_str_eq(url_of("HTTP://Web-1.Example:8080/"),
                     "http://web-1.example:8080");
    ck_assert_str_eq(url_of("http://10.0.0.5"), "http://10.0.0.5:80");
    ck_assert_str_eq(url_of("https://app"), "https://app:443");
    ck_assert_str_eq(url_of("ajp://10.0.0.7"), "ajp://10.0.0.7:8009");
    ck_assert_str_eq(url_of("http://[::1]:8080"), "http://[::1]:8080");
    ck_assert_str_eq(url_of("h2c://[FE80::1]:81"), "h2c://[fe80::1]:81");

    ck_assert_ptr_nonnull(strstr(url_err("http://10.0.0.5:8080/app"), "path"));
    ck_assert_ptr_nonnull(strstr(url_err("http://u:p@10.0.0.5:8080"), "user"));
    ck_assert_ptr_nonnull(strstr(url_err("http://10.0.0.5:8080?a=1"), "query"));
    ck_assert_ptr_nonnull(strstr(url_err("ftp://10.0.0.5:21"), "scheme 'ftp'"));
    ck_assert_ptr_nonnull(strstr(url_err("http://10.0.0.5:0"), "port"));
    ck_assert_ptr_nonnull(strstr(url_err("http://10.0.0.5:70000"), "port"));
    ck_assert_ptr_nonnull(strstr(url_err("http://10.0.0.5:80x"), "port"));
    ck_assert_ptr_nonnull(strstr(url_err("http://10.0.0.5:"), "port"));
    ck_assert_ptr_nonnull(strstr(url_err("10.0.0.5:8080"), "scheme://"));
    ck_assert_ptr_nonnull(strstr(url_err("http://a b:80"), "space"));
    ck_assert_ptr_nonnull(strstr(url_err("http://[zz::1]:80"), "IPv6"));
    ck_assert_ptr_nonnull(strstr(url_err("http://-a:80"), "host"));
    ck_assert_ptr_nonnull(strstr(url_err("http://a..b:80"), "host"));
    ck_assert_ptr_nonnull(strstr(url_err("http://a%2fb:80"), "host"));
    ck_assert_ptr_nonnull(strstr(url_err(""), "empty"));
    /* 64 bytes of host name: more than httpd keeps */
    ck_assert_ptr_nonnull(strstr(url_err(
        "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80"),
        "host"));
    /* a NUL inside */
    {
        const char *out;

        ck_assert_ptr_nonnull(slb_etcd_member_url(pool, "http://a\0b:80", 13,
                                                  &out));
    }
}
END_TEST

static slb_disc_entry member_ok(const char *key, const char *val)
{
    slb_disc_entry e;
    const char *err = slb_etcd_parse_member(pool, "/services/web/", key,
                                            strlen(key), val, strlen(val), &e);

    ck_assert_msg(err == NULL, "%s = '%s' refused: %s", key, val, err);
    ck_assert_ptr_nonnull(e.url);
    ck_assert_str_eq(e.origin, key);
    return e;
}

static const char *member_bad(const char *key, const char *val)
{
    slb_disc_entry e;
    const char *err = slb_etcd_parse_member(pool, "/services/web/", key,
                                            strlen(key), val, strlen(val), &e);

    ck_assert_msg(err != NULL, "%s = '%s' accepted as %s", key, val,
                  e.url ? e.url : "(null)");
    ck_assert_ptr_null(e.url);
    return err;
}

START_TEST(test_member_forms)
{
    static const struct {
        const char *key, *val, *why;
    } bad[] = {
        { "/services/web/a", "{\"url\":", "not JSON" },
        { "/services/web/a", "garbage", "host:port" },
        { "/services/web/a", "", "host:port" },
        { "/services/web/a", "{}", "no \"url\"" },
        { "/services/web/a", "{\"url\":5}", "string" },
        { "/services/web/a", "{\"url\":\"http://h:1/x\"}", "path" },
        { "/services/web/a",
          "{\"url\":\"http://h:1\",\"loadfactor\":0}", "loadfactor" },
        { "/services/web/a",
          "{\"url\":\"http://h:1\",\"loadfactor\":101}", "loadfactor" },
        { "/services/web/a",
          "{\"url\":\"http://h:1\",\"loadfactor\":\"5\"}", "loadfactor" },
        { "/services/web/a",
          "{\"url\":\"http://h:1\",\"loadfactor\":1.5}", "loadfactor" },
        { "/services/web/a",
          "{\"url\":\"http://h:1\",\"route\":\"a b\"}", "route" },
        { "/services/web/a", "{\"url\":\"http://h:1\",\"route\":\"0123456789"
          "0123456789012345678901234567890123456789012345"
          "678901234\"}", "route" },
        { "/services/web/a", "{\"url\":\"http://h:1\",\"route\":7}", "route" },
        { "/services/web/a",
          "{\"url\":\"http://h:1\",\"url\":\"http://h:2\"}", "not JSON" },
        { "/services/web/a", "[1,2]", "host:port" },
        { "/other/10.0.0.5:80", "x", "prefix" },
        { "/services/web/10.0.0.5:0", "x", "host:port" },
        { "/services/web/u@h:80", "x", "host:port" },
        { "/services/web/h:80?x", "x", "host:port" },
    };
    apr_size_t i;
    slb_disc_entry e;
    char *big;

    /* the JSON form, all fields */
    e = member_ok("/services/web/a",
                  "{\"url\": \"http://10.0.0.5:8080\", \"route\": \"t5\", "
                  "\"loadfactor\": 7}");
    ck_assert_str_eq(e.url, "http://10.0.0.5:8080");
    ck_assert_str_eq(e.route, "t5");
    ck_assert_int_eq(e.loadfactor, 7);
    /* url only: the core derives the route, loadfactor not given */
    e = member_ok("/services/web/b", "  {\"url\":\"http://10.0.0.6:8080\"} ");
    ck_assert_str_eq(e.url, "http://10.0.0.6:8080");
    ck_assert_ptr_null(e.route);
    ck_assert_int_eq(e.loadfactor, 0);
    /* unknown fields are for other readers; null and "" mean not given */
    e = member_ok("/services/web/c", "{\"url\":\"http://h:1\",\"zone\":\"x\","
                  "\"route\":null,\"loadfactor\":null}");
    ck_assert_ptr_null(e.route);
    e = member_ok("/services/web/c2", "{\"url\":\"http://h:2\",\"route\":\"\"}");
    ck_assert_ptr_null(e.route);
    /* the seed's form: the key ends in host:port, any value */
    e = member_ok("/services/web/10.0.0.5:8080", "up");
    ck_assert_str_eq(e.url, "http://10.0.0.5:8080");
    ck_assert_ptr_null(e.route);
    e = member_ok("/services/web/docker-container-webapp1:49153", "");
    ck_assert_str_eq(e.url, "http://docker-container-webapp1:49153");
    e = member_ok("/services/web/zone-a/[::1]:8081", "1");
    ck_assert_str_eq(e.url, "http://[::1]:8081");
    /* a JSON object without url takes the key's host:port */
    e = member_ok("/services/web/10.0.0.9:8080", "{\"route\":\"t9\","
                  "\"loadfactor\":100}");
    ck_assert_str_eq(e.url, "http://10.0.0.9:8080");
    ck_assert_str_eq(e.route, "t9");
    ck_assert_int_eq(e.loadfactor, 100);
    /* and a url in the value wins over the key */
    e = member_ok("/services/web/10.0.0.9:8080",
                  "{\"url\":\"https://10.0.0.10:8443\"}");
    ck_assert_str_eq(e.url, "https://10.0.0.10:8443");

    /* malformed: each refused, and the message says why */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = member_bad(bad[i].key, bad[i].val);

        ck_assert_msg(strstr(err, bad[i].why) != NULL,
                      "%s = '%s': \"%s\" does not say %s", bad[i].key,
                      bad[i].val, err, bad[i].why);
    }
    /* a NUL inside the key's host:port (found by fuzz_etcd: the URL was
     * read past its end) */
    {
        static const char k[] = "/services/web/10.0\0.5:8080";

        ck_assert_ptr_nonnull(slb_etcd_parse_member(pool, "/services/web/", k,
                                                    sizeof(k) - 1, "up", 2,
                                                    &e));
        ck_assert_ptr_null(e.url);
    }
    big = apr_palloc(pool, SLB_ETCD_MAX_VALUE_LEN + 2);
    memset(big, ' ', SLB_ETCD_MAX_VALUE_LEN + 1);
    big[SLB_ETCD_MAX_VALUE_LEN + 1] = '\0';
    memcpy(big, "{\"url\":\"http://h:1\"}", 20);
    ck_assert_ptr_nonnull(strstr(member_bad("/services/web/a", big),
                                 "value longer"));
    big[SLB_ETCD_MAX_VALUE_LEN] = '\0';          /* exactly the limit */
    e = member_ok("/services/web/a", big);
    ck_assert_str_eq(e.url, "http://h:1");
}
END_TEST

/* a body captured from etcd 3.4.23 (two keys: the seed's form and JSON) */
static const char *const CAPTURED =
    "{\"header\":{\"cluster_id\":\"7801232528081817440\",\"member_id\":"
    "\"13458989633860879742\",\"revision\":\"3\",\"raft_term\":\"2\"},"
    "\"kvs\":[{\"key\":\"L3NlcnZpY2VzL3dlYi8xMC4wLjAuNTo4MDgw\","
    "\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
    "\"value\":\"dXA=\"},{\"key\":\"L3NlcnZpY2VzL3dlYi9i\",\"create_revision\":"
    "\"3\",\"mod_revision\":\"3\",\"version\":\"1\",\"value\":"
    "\"eyJ1cmwiOiJodHRwOi8vMTAuMC4wLjY6ODA4MCIsInJvdXRlIjoidDYifQ==\"}],"
    "\"count\":\"2\"}";

static slb_etcd_range range_ok(const char *body)
{
    slb_etcd_range r;
    const char *err = slb_etcd_parse_range(pool, body, strlen(body),
                                           "/services/web/", &r);

    ck_assert_msg(err == NULL, "range refused: %s", err);
    return r;
}

static const char *range_bad(const char *body)
{
    slb_etcd_range r;
    const char *err = slb_etcd_parse_range(pool, body, strlen(body),
                                           "/services/web/", &r);

    ck_assert_msg(err != NULL, "'%s' taken as a range answer", body);
    return err;
}

START_TEST(test_parse_range)
{
    slb_etcd_range r, r2;
    const char *body;

    r = range_ok(CAPTURED);
    ck_assert_int_eq(r.revision, 3);
    ck_assert_int_eq(r.kvs, 2);
    ck_assert_int_eq(r.malformed, 0);
    ck_assert_int_eq(r.more, 0);
    ck_assert_ptr_null(r.why);
    ck_assert_int_eq(r.entries->nelts, 2);
    ck_assert_str_eq(entry(r.entries, 0)->url, "http://10.0.0.5:8080");
    ck_assert_str_eq(entry(r.entries, 0)->origin, "/services/web/10.0.0.5:8080");
    ck_assert_ptr_null(entry(r.entries, 0)->route);
    ck_assert_str_eq(entry(r.entries, 1)->url, "http://10.0.0.6:8080");
    ck_assert_str_eq(entry(r.entries, 1)->route, "t6");

    /* an empty prefix: no kvs at all */
    r = range_ok(range_json(9, NULL));
    ck_assert_int_eq(r.revision, 9);
    ck_assert_int_eq(r.entries->nelts, 0);
    ck_assert_int_eq(r.kvs, 0);

    /* the digest follows keys and values, not revisions */
    body = range_json(5, apr_pstrcat(pool,
        kv_json("/services/web/a", "{\"url\":\"http://h:1\"}", 4), ",",
        kv_json("/services/web/10.0.0.1:80", NULL, 5), NULL));
    r = range_ok(body);
    ck_assert_int_eq(r.entries->nelts, 2);
    ck_assert_str_eq(entry(r.entries, 1)->url, "http://10.0.0.1:80");
    r2 = range_ok(range_json(8, apr_pstrcat(pool,
        kv_json("/services/web/a", "{\"url\":\"http://h:1\"}", 7), ",",
        kv_json("/services/web/10.0.0.1:80", NULL, 8), NULL)));
    ck_assert_mem_eq(r.digest, r2.digest, 16);
    r2 = range_ok(range_json(8, apr_pstrcat(pool,
        kv_json("/services/web/a", "{\"url\":\"http://h:2\"}", 7), ",",
        kv_json("/services/web/10.0.0.1:80", NULL, 8), NULL)));
    ck_assert_mem_ne(r.digest, r2.digest, 16);
    /* key/value boundaries count: "ab"+"c" is not "a"+"bc" */
    r = range_ok(range_json(2, kv_json("/services/web/ab", "c", 2)));
    r2 = range_ok(range_json(2, kv_json("/services/web/a", "bc", 2)));
    ck_assert_mem_ne(r.digest, r2.digest, 16);

    /* malformed keys are counted and skipped, the first one said */
    r = range_ok(range_json(6, apr_pstrcat(pool,
        kv_json("/services/web/a", "{\"url\":\"http://h:1\",\"route\":\"r1\"}", 2), ",",
        kv_json("/services/web/garbage", "not json", 3), ",",
        kv_json("/services/web/b", "{\"url\":\"http://h:1\"}", 4), ",",
        kv_json("/services/web/c", "{\"url\":\"http://h:3\",\"route\":\"r1\"}", 5), ",",
        "{\"key\":\"!!!\",\"value\":\"eA==\"},",
        "{\"key\":\"L3NlcnZpY2VzL3dlYi9k\",\"value\":\"@@\"},",
        kv_json("/services/web/e", "{\"url\":\"http://h:5\"}", 6), NULL)));
    ck_assert_int_eq(r.kvs, 7);
    ck_assert_int_eq(r.malformed, 5);
    ck_assert_int_eq(r.entries->nelts, 2);
    ck_assert_str_eq(entry(r.entries, 0)->url, "http://h:1");
    ck_assert_str_eq(entry(r.entries, 1)->url, "http://h:5");
    ck_assert_ptr_nonnull(r.why);
    ck_assert_ptr_nonnull(strstr(r.why, "/services/web/garbage"));

    /* "more": etcd held more keys than the limit */
    r = range_ok("{\"header\":{\"revision\":\"4\"},\"more\":true,\"kvs\":[]}");
    ck_assert_int_eq(r.more, 1);
    /* a revision as a JSON number is taken too */
    r = range_ok("{\"header\":{\"revision\":12}}");
    ck_assert_int_eq(r.revision, 12);

    /* not an answer */
    ck_assert_ptr_nonnull(strstr(range_bad(""), "not JSON"));
    ck_assert_ptr_nonnull(strstr(range_bad("{\"header\":"), "not JSON"));
    ck_assert_ptr_nonnull(strstr(range_bad("<html>502</html>"), "not JSON"));
    ck_assert_ptr_nonnull(strstr(range_bad("[1]"), "not a JSON object"));
    ck_assert_ptr_nonnull(strstr(range_bad("{}"), "header.revision"));
    ck_assert_ptr_nonnull(strstr(range_bad("{\"header\":{\"revision\":\"x\"}}"),
                                 "header.revision"));
    ck_assert_ptr_nonnull(strstr(range_bad("{\"header\":{\"revision\":\"-1\"}}"),
                                 "header.revision"));
    ck_assert_ptr_nonnull(strstr(range_bad("{\"header\":{\"revision\":\"1\"},"
                                           "\"kvs\":{}}"), "not a list"));
    /* the gateway's error object (captured: a request it cannot read) */
    ck_assert_ptr_nonnull(strstr(range_bad(
        "{\"error\":\"invalid character 'g' looking for beginning of object "
        "key string\",\"message\":\"invalid character 'g' looking for "
        "beginning of object key string\",\"code\":3}"),
        "etcd error: invalid character"));
}
END_TEST

START_TEST(test_parse_watch)
{
    apr_int64_t rev = -1;

#define W(s) slb_etcd_parse_watch(s, strlen(s), &rev)
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"cluster_id\":\"1\","
                       "\"revision\":\"3\"},\"created\":true}}"),
                     SLB_ETCD_WATCH_CREATED);
    ck_assert_int_eq(rev, 3);
    /* the line without its last byte is not an answer */
    {
        const char *l = "{\"result\":{\"header\":{\"revision\":\"3\"},"
                        "\"created\":true}}";

        rev = -1;
        ck_assert_int_eq(slb_etcd_parse_watch(l, strlen(l) - 1, &rev),
                         SLB_ETCD_WATCH_GARBAGE);
        ck_assert_int_eq(rev, -1);
    }
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":"
                       "[{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3M=\","
                       "\"mod_revision\":\"4\"}}]}}"), SLB_ETCD_WATCH_EVENTS);
    ck_assert_int_eq(rev, 4);
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"revision\":\"5\"},\"events\":"
                       "[{\"kv\":{\"key\":\"L3M=\",\"value\":\"eA==\"}}]}}"),
                     SLB_ETCD_WATCH_EVENTS);
    /* captured: a watch from a compacted revision */
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"cluster_id\":"
                       "\"7801232528081817440\",\"raft_term\":\"2\"},"
                       "\"canceled\":true,\"compact_revision\":\"4\"}}"),
                     SLB_ETCD_WATCH_COMPACTED);
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"revision\":\"5\"},"
                       "\"canceled\":true,\"cancel_reason\":\"x\"}}"),
                     SLB_ETCD_WATCH_CANCELED);
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"revision\":\"6\"}}}"),
                     SLB_ETCD_WATCH_OTHER);
    ck_assert_int_eq(rev, 6);
    ck_assert_int_eq(W("{\"result\":{\"header\":{\"revision\":\"7\"},"
                       "\"events\":[]}}"), SLB_ETCD_WATCH_OTHER);
    ck_assert_int_eq(W("{\"error\":{\"grpc_code\":14,\"http_code\":503,"
                       "\"message\":\"etcdserver: no leader\"}}"),
                     SLB_ETCD_WATCH_ERROR);
    ck_assert_int_eq(W("{\"result\":"), SLB_ETCD_WATCH_GARBAGE);
    ck_assert_int_eq(W("[]"), SLB_ETCD_WATCH_GARBAGE);
    ck_assert_int_eq(W("{\"result\":3}"), SLB_ETCD_WATCH_GARBAGE);
    ck_assert_int_eq(W("404 page not found"), SLB_ETCD_WATCH_GARBAGE);
#undef W
}
END_TEST

static const char *create_err(const char *target, apr_table_t *o)
{
    void *st = NULL;

    return slb_disc_etcd_ops.create(pool, target, o, &st);
}

START_TEST(test_create)
{
    void *st = NULL;
    const char *err;
    apr_table_t *o;
    apr_time_t t0;

    ck_assert_str_eq(slb_disc_etcd_ops.name, "etcd");
    /* no I/O: nobody listens there and create() still answers at once */
    t0 = apr_time_now();
    ck_assert_ptr_null(slb_disc_etcd_ops.create(
        pool, "http://127.0.0.1:1,https://etcd.example:2379/",
        opts_of("/services/web/", "500ms"), &st));
    ck_assert_ptr_nonnull(st);
    ck_assert_int_lt(ms_since(t0), 50);
    ck_assert_ptr_null(slb_etcd_malformed_why(st));
    ck_assert_ptr_null(create_err("http://[::1]:2379",
                                  opts_of("/x", "3")));

    err = create_err("http://127.0.0.1:2379", opts_of(NULL, NULL));
    ck_assert_ptr_nonnull(strstr(err, "prefix="));
    err = create_err("http://127.0.0.1:2379", opts_of("", NULL));
    ck_assert_ptr_nonnull(strstr(err, "prefix= must not be empty"));
    o = opts_of("/a/", NULL);
    apr_table_set(o, "prefx", "/b/");
    err = create_err("http://127.0.0.1:2379", o);
    ck_assert_ptr_nonnull(strstr(err, "unknown option 'prefx=/b/'"));
    ck_assert_ptr_nonnull(strstr(err, "did you mean prefix="));
    ck_assert_ptr_nonnull(strstr(err, "expected prefix=, timeout=, ca=, cert=, key="));
    o = opts_of("/a/", NULL);
    apr_table_set(o, "tls", "on");
    err = create_err("http://127.0.0.1:2379", o);
    ck_assert_ptr_nonnull(strstr(err, "unknown option 'tls=on' (expected "
                                      "prefix=, timeout=, ca=, cert=, key=, "
                                      "interval=, "));
    ck_assert_ptr_nonnull(strstr(err, "wait=, grace="));
    err = create_err("http://127.0.0.1:2379", opts_of("/a/", "0"));
    ck_assert_ptr_nonnull(strstr(err, "timeout="));
    err = create_err("http://127.0.0.1:2379", opts_of("/a/", "61s"));
    ck_assert_ptr_nonnull(strstr(err, "timeout="));
    err = create_err("http://127.0.0.1:2379", opts_of("/a/", "2m"));
    ck_assert_ptr_nonnull(strstr(err, "timeout="));

    ck_assert_ptr_nonnull(strstr(create_err("", opts_of("/a/", NULL)),
                                 "gateway's URL"));
    ck_assert_ptr_nonnull(strstr(create_err(",", opts_of("/a/", NULL)),
                                 "gateway's URL"));
    ck_assert_ptr_nonnull(strstr(create_err("ftp://h:1", opts_of("/a/", NULL)),
                                 "not an etcd URL"));
    ck_assert_ptr_nonnull(strstr(create_err("127.0.0.1:2379",
                                            opts_of("/a/", NULL)),
                                 "not an etcd URL"));
    ck_assert_ptr_nonnull(strstr(create_err("http://h:2379/v3",
                                            opts_of("/a/", NULL)),
                                 "only scheme://host:port"));
    ck_assert_ptr_nonnull(strstr(create_err("http://h:99999",
                                            opts_of("/a/", NULL)), "port"));
    ck_assert_ptr_nonnull(strstr(create_err("http://et%20cd:2379",
                                            opts_of("/a/", NULL)),
                                 "not a host name"));
    ck_assert_ptr_nonnull(strstr(create_err("http://[fe80::zz]:2379",
                                            opts_of("/a/", NULL)),
                                 "IPv6"));
    /* TLS files: readable, cert= with key=, an https endpoint */
    o = opts_of("/a/", NULL);
    apr_table_set(o, "ca", "/nonexistent/ca.pem");
    ck_assert_ptr_nonnull(strstr(create_err("https://127.0.0.1:2379", o),
                                 "ca=/nonexistent/ca.pem: the file cannot be "
                                 "read"));
    o = opts_of("/a/", NULL);
    apr_table_set(o, "cert", "/dev/null");
    ck_assert_ptr_nonnull(strstr(create_err("https://127.0.0.1:2379", o),
                                 "cert= and key= go together"));
    o = opts_of("/a/", NULL);
    apr_table_set(o, "ca", "/dev/null");
    ck_assert_ptr_nonnull(strstr(create_err("http://127.0.0.1:2379", o),
                                 "for https:// endpoints"));
    ck_assert_ptr_null(create_err("http://127.0.0.1:1,https://127.0.0.1:2", o));
    ck_assert_ptr_nonnull(strstr(create_err(
        "http://a:1,http://a:2,http://a:3,http://a:4,http://a:5,http://a:6,"
        "http://a:7,http://a:8,http://a:9", opts_of("/a/", NULL)),
        "more than 8"));
}
END_TEST

/* ======================================================================
 * etcd processes
 * ==================================================================== */

typedef struct {
    pid_t pid;
    int port, peer;
    char dir[64];
    const char *tls;                /* a directory of certificates: https */
} etcd_proc;

/* the certificates http_post() presents (set by the TLS test) */
static const char *post_tls;

/* an HTTP request to etcd with libcurl: the status, the body in *out */
static long http_post(int port, const char *path, const char *body,
                      char *out, apr_size_t outlen);

static int etcd_healthy(int port)
{
    char buf[256];

    return http_post(port, "/v3/kv/range", "{\"key\":\"AA==\"}", buf,
                     sizeof(buf)) == 200;
}

/* Starts etcd on e->port (e->dir kept when set: a restart). */
static void etcd_start(etcd_proc *e)
{
    char client[64], peer[64], cluster[96];
    int i, status;

    ck_assert_msg(access(ETCD_BIN, X_OK) == 0,
                  ETCD_BIN " is missing: install etcd-server to run the "
                  "etcd tests (scripts/deps.sh)");
    if (!e->dir[0]) {
        apr_cpystrn(e->dir, "/tmp/slb-check-etcd-XXXXXX", sizeof(e->dir));
        ck_assert_ptr_nonnull(mkdtemp(e->dir));
    }
    if (!e->port) {
        e->port = ck_free_port();
        e->peer = ck_free_port();
    }
    snprintf(client, sizeof(client), "%s://127.0.0.1:%d",
             e->tls ? "https" : "http", e->port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer);
    snprintf(cluster, sizeof(cluster), "default=%s", peer);
    e->pid = ck_fork_server();
    if (e->pid == 0) {
        char data[96];
        int fd;

        snprintf(data, sizeof(data), "%s/data", e->dir);
        fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (e->tls) {
            char cert[128], key[128], ca[128];

            snprintf(cert, sizeof(cert), "%s/srv.pem", e->tls);
            snprintf(key, sizeof(key), "%s/srv.key", e->tls);
            snprintf(ca, sizeof(ca), "%s/ca.pem", e->tls);
            execl(ETCD_BIN, ETCD_BIN, "--data-dir", data,
                  "--listen-client-urls", client, "--advertise-client-urls",
                  client, "--listen-peer-urls", peer,
                  "--initial-advertise-peer-urls", peer, "--initial-cluster",
                  cluster, "--log-level", "error", "--cert-file", cert,
                  "--key-file", key, "--trusted-ca-file", ca,
                  "--client-cert-auth", (char *)NULL);
        }
        execl(ETCD_BIN, ETCD_BIN, "--data-dir", data,
              "--listen-client-urls", client, "--advertise-client-urls",
              client, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster",
              cluster, "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 200; i++) {             /* 10 s */
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            ck_abort_msg("etcd exited at start (status %d; port %d taken?)",
                         status, e->port);
        }
        if (etcd_healthy(e->port)) {
            return;
        }
        apr_sleep(apr_time_from_msec(50));
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
    ck_abort_msg("etcd on port %d did not answer within 10 s", e->port);
}

static void etcd_kill(etcd_proc *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
}

static void etcd_wipe(etcd_proc *e)
{
    char cmd[128];

    if (e->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "check_etcd: could not remove %s\n", e->dir);
        }
        e->dir[0] = '\0';
    }
}

typedef struct {
    char *buf;
    apr_size_t len, cap;
} sink_t;

static size_t sink(char *d, size_t size, size_t n, void *ctx)
{
    sink_t *s = ctx;
    apr_size_t k = size * n;

    if (s->len + k >= s->cap) {
        k = s->cap - 1 - s->len;
    }
    memcpy(s->buf + s->len, d, k);
    s->len += k;
    s->buf[s->len] = '\0';
    return size * n;
}

static long http_post(int port, const char *path, const char *body,
                      char *out, apr_size_t outlen)
{
    CURL *c = curl_easy_init();
    char url[96];
    sink_t s = { out, 0, outlen };
    long status = 0;

    out[0] = '\0';
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
             post_tls ? "https" : "http", port, path);
    if (post_tls) {
        curl_easy_setopt(c, CURLOPT_CAINFO,
                         apr_pstrcat(pool, post_tls, "/ca.pem", NULL));
        curl_easy_setopt(c, CURLOPT_SSLCERT,
                         apr_pstrcat(pool, post_tls, "/cli.pem", NULL));
        curl_easy_setopt(c, CURLOPT_SSLKEY,
                         apr_pstrcat(pool, post_tls, "/cli.key", NULL));
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(c);
    return status;
}

/* put and delete through the gateway (apr_pool_t: not the test's pool,
 * so that a thread may call them) */
static void kv_put_p(apr_pool_t *p, int port, const char *key, const char *val)
{
    char out[512];
    char *k = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)strlen(key)));
    char *v = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)strlen(val)));

    apr_base64_encode(k, key, (int)strlen(key));
    apr_base64_encode(v, val, (int)strlen(val));
    ck_assert_int_eq(http_post(port, "/v3/kv/put",
                               apr_psprintf(p, "{\"key\":\"%s\",\"value\":\"%s\"}",
                                            k, v), out, sizeof(out)), 200);
}

static void kv_put(int port, const char *key, const char *val)
{
    kv_put_p(pool, port, key, val);
}

static void kv_del(int port, const char *key)
{
    char out[512];

    ck_assert_int_eq(http_post(port, "/v3/kv/deleterange",
                               apr_psprintf(pool, "{\"key\":\"%s\"}", b64(key)),
                               out, sizeof(out)), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"deleted\":\"1\""));
}

static long kv_revision(int port)
{
    char out[512];
    const char *r;

    ck_assert_int_eq(http_post(port, "/v3/kv/range", "{\"key\":\"AA==\"}", out,
                               sizeof(out)), 200);
    r = strstr(out, "\"revision\":\"");
    ck_assert_ptr_nonnull(r);
    return atol(r + 12);
}

static void kv_compact(int port, long rev)
{
    char out[512];

    ck_assert_int_eq(http_post(port, "/v3/kv/compaction",
                               apr_psprintf(pool, "{\"revision\":\"%ld\"}", rev),
                               out, sizeof(out)), 200);
}

/* the shared etcd of the tcase "etcd" (an unchecked fixture: started
 * once, before the forked tests) */
static etcd_proc shared;

static void shared_start(void)
{
    apr_pool_t *p;

    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    pool = p;
    ck_assert_int_eq(slb_etcd_global_init(), APR_SUCCESS);
    memset(&shared, 0, sizeof(shared));
    etcd_start(&shared);
    pool = NULL;
    apr_pool_destroy(p);
}

static void shared_stop(void)
{
    etcd_kill(&shared);
    etcd_wipe(&shared);
}

static void *source_at(const char *target, const char *prefix,
                       const char *timeout)
{
    void *st = NULL;
    const char *err = slb_disc_etcd_ops.create(pool, target,
                                               opts_of(prefix, timeout), &st);

    ck_assert_msg(err == NULL, "create: %s", err);
    return st;
}

static void *source(int port, const char *prefix)
{
    return source_at(apr_psprintf(pool, "http://127.0.0.1:%d", port), prefix,
                     "1s");
}

typedef struct {
    slb_disc_result res;
    apr_array_header_t *entries;
    int malformed;
    const char *err;
    long ms;
} fetched;

static fetched fetch(void *st, apr_interval_time_t wait)
{
    fetched f;
    apr_interval_time_t ttl = -1;
    apr_time_t t0 = apr_time_now();

    f.entries = NULL;
    f.malformed = -1;
    f.err = NULL;
    f.res = slb_disc_etcd_ops.fetch(st, pool, wait, &f.entries, &f.malformed,
                                    &ttl, &f.err);
    f.ms = ms_since(t0);
    ck_assert_int_eq(ttl, 0);
    if (f.res == SLB_DISC_FAILED) {
        ck_assert_ptr_nonnull(f.err);
    }
    if (f.res == SLB_DISC_OK) {
        ck_assert_ptr_nonnull(f.entries);
        ck_assert_int_ge(f.malformed, 0);
    }
    return f;
}

static const char *res_name(slb_disc_result r)
{
    return r == SLB_DISC_OK ? "OK" : r == SLB_DISC_UNCHANGED ? "UNCHANGED"
                                                               : "FAILED";
}

#define ck_res(f, want)                                                     \
    ck_assert_msg((f).res == (want), "fetch: %s, wanted %s (%s; %ld ms)",   \
                  res_name((f).res), res_name(want),                        \
                  (f).err ? (f).err : "-", (f).ms)

/* ======================================================================
 * against etcd
 * ==================================================================== */

START_TEST(test_range_finds_entries)
{
    const char *pfx = "/check/range/";
    void *st;
    fetched f;
    const slb_disc_entry *e;

    kv_put(shared.port, "/check/range/a",
           "{\"url\":\"http://10.0.0.5:8080\",\"route\":\"t5\",\"loadfactor\":3}");
    kv_put(shared.port, "/check/range/10.0.0.6:8080", "up");
    kv_put(shared.port, "/check/range/garbage", "{\"url\":");
    kv_put(shared.port, "/check/rangeX", "{\"url\":\"http://10.9.9.9:1\"}");
    kv_put(shared.port, "/check/rang", "{\"url\":\"http://10.9.9.8:1\"}");
    st = source(shared.port, pfx);
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_int_eq(f.malformed, 1);
    e = find_url(f.entries, "http://10.0.0.5:8080");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->route, "t5");
    ck_assert_int_eq(e->loadfactor, 3);
    ck_assert_str_eq(e->origin, "/check/range/a");
    e = find_url(f.entries, "http://10.0.0.6:8080");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(e->route);
    ck_assert_ptr_nonnull(slb_etcd_malformed_why(st));
    ck_assert_ptr_nonnull(strstr(slb_etcd_malformed_why(st),
                                 "/check/range/garbage: value is not JSON"));
    /* nothing changed */
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_UNCHANGED);
    ck_assert_ptr_null(f.entries);
    /* a key put again with the same value changes nothing either */
    kv_put(shared.port, "/check/range/10.0.0.6:8080", "up");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_UNCHANGED);
    /* the garbage mended: one more member, none malformed */
    kv_put(shared.port, "/check/range/garbage", "{\"url\":\"http://10.0.0.7:1\"}");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 3);
    ck_assert_int_eq(f.malformed, 0);
    ck_assert_ptr_null(slb_etcd_malformed_why(st));
    /* an empty prefix is a set too: OK with no member */
    st = source(shared.port, "/check/nothing-here/");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 0);
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_UNCHANGED);
}
END_TEST

START_TEST(test_poll_sees_put_and_delete)
{
    void *st;
    fetched f;

    kv_put(shared.port, "/check/poll/10.0.1.1:80", "");
    kv_put(shared.port, "/check/poll/10.0.1.2:80", "");
    st = source(shared.port, "/check/poll/");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    kv_put(shared.port, "/check/poll/10.0.1.3:80", "");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 3);
    ck_assert_ptr_nonnull(find_url(f.entries, "http://10.0.1.3:80"));
    ck_assert_int_lt(f.ms, 200 + slack_ms());
    kv_del(shared.port, "/check/poll/10.0.1.1:80");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_ptr_null(find_url(f.entries, "http://10.0.1.1:80"));
    ck_assert_ptr_nonnull(find_url(f.entries, "http://10.0.1.2:80"));
    /* a key put and deleted between two polls: the same set */
    kv_put(shared.port, "/check/poll/10.0.1.9:80", "");
    kv_del(shared.port, "/check/poll/10.0.1.9:80");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_UNCHANGED);
}
END_TEST

typedef struct {
    int port;
    long delay_ms;
    const char *key, *val;          /* val NULL: delete */
} later_job;

static void *APR_THREAD_FUNC later(apr_thread_t *t, void *data)
{
    later_job *j = data;
    apr_pool_t *p;
    char out[256];

    apr_pool_create(&p, NULL);
    apr_sleep(apr_time_from_msec(j->delay_ms));
    if (j->val) {
        kv_put_p(p, j->port, j->key, j->val);
    }
    else {
        char *k = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)strlen(j->key)));

        apr_base64_encode(k, j->key, (int)strlen(j->key));
        http_post(j->port, "/v3/kv/deleterange",
                  apr_psprintf(p, "{\"key\":\"%s\"}", k), out, sizeof(out));
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_thread_t *in_ms(later_job *j)
{
    apr_thread_t *t;

    ck_assert_int_eq(apr_thread_create(&t, NULL, later, j, pool), APR_SUCCESS);
    return t;
}

START_TEST(test_watch_sees_put_and_delete)
{
    void *st;
    fetched f;
    apr_thread_t *t;
    apr_status_t trv;
    later_job put = { shared.port, 400, "/check/watch/10.0.2.3:80", "" };
    later_job del = { shared.port, 400, "/check/watch/10.0.2.1:80", NULL };

    kv_put(shared.port, "/check/watch/10.0.2.1:80", "");
    kv_put(shared.port, "/check/watch/10.0.2.2:80", "");
    st = source(shared.port, "/check/watch/");
    f = fetch(st, apr_time_from_sec(3));
    ck_res(f, SLB_DISC_OK);                  /* the first fetch ranges */
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_int_lt(f.ms, slack_ms());

    /* a quiet watch lasts the whole wait and changes nothing */
    f = fetch(st, apr_time_from_msec(800));
    ck_res(f, SLB_DISC_UNCHANGED);
    ck_assert_int_ge(f.ms, 800 - 20);
    ck_assert_int_lt(f.ms, 800 + slack_ms());

    /* a key put during the watch ends it at once */
    t = in_ms(&put);
    f = fetch(st, apr_time_from_sec(5));
    apr_thread_join(&trv, t);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 3);
    ck_assert_ptr_nonnull(find_url(f.entries, "http://10.0.2.3:80"));
    ck_assert_int_ge(f.ms, 400 - 20);
    ck_assert_int_lt(f.ms, 400 + slack_ms());

    /* and a key deleted */
    t = in_ms(&del);
    f = fetch(st, apr_time_from_sec(5));
    apr_thread_join(&trv, t);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_ptr_null(find_url(f.entries, "http://10.0.2.1:80"));
    ck_assert_int_lt(f.ms, 400 + slack_ms());

    /* changes between two watches are replayed from the revision: the
     * next watch sees them without waiting */
    kv_put(shared.port, "/check/watch/10.0.2.4:80", "");
    kv_put(shared.port, "/check/watch/other", "garbage");
    f = fetch(st, apr_time_from_sec(5));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 3);
    ck_assert_int_eq(f.malformed, 1);
    ck_assert_int_lt(f.ms, slack_ms());

    /* a key put again with its value: an event, the same set */
    kv_put(shared.port, "/check/watch/10.0.2.4:80", "");
    f = fetch(st, apr_time_from_sec(5));
    ck_res(f, SLB_DISC_UNCHANGED);
    ck_assert_int_lt(f.ms, slack_ms());
    /* and the watch after it starts past that event: it waits */
    f = fetch(st, apr_time_from_msec(300));
    ck_res(f, SLB_DISC_UNCHANGED);
    ck_assert_int_ge(f.ms, 300 - 20);
}
END_TEST

START_TEST(test_watch_compacted)
{
    void *st;
    fetched f;

    kv_put(shared.port, "/check/compact/10.0.3.1:80", "");
    st = source(shared.port, "/check/compact/");
    f = fetch(st, apr_time_from_sec(3));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 1);
    /* two changes, then the history up to the last compacted away: the
     * watch from our revision + 1 is refused (compact_revision) and the
     * source ranges again */
    kv_put(shared.port, "/check/compact/10.0.3.2:80", "");
    kv_put(shared.port, "/check/compact/10.0.3.3:80", "");
    kv_compact(shared.port, kv_revision(shared.port));
    f = fetch(st, apr_time_from_sec(3));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 3);
    ck_assert_int_lt(f.ms, slack_ms());
}
END_TEST

START_TEST(test_outage_and_return)
{
    etcd_proc e;
    void *st;
    fetched f;
    apr_time_t t0;

    memset(&e, 0, sizeof(e));
    etcd_start(&e);
    kv_put(e.port, "/check/outage/10.0.4.1:80", "");
    kv_put(e.port, "/check/outage/10.0.4.2:80", "");
    st = source_at(apr_psprintf(pool, "http://127.0.0.1:%d", e.port),
                   "/check/outage/", "500ms");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);

    etcd_kill(&e);
    /* refused: at once, the endpoint and the reason in the message */
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_ptr_null(f.entries);
    ck_assert_ptr_nonnull(strstr(f.err, apr_psprintf(pool, "http://127.0.0.1:%d",
                                                     e.port)));
    ck_assert_ptr_nonnull(strstr(f.err, "refused"));
    ck_assert_int_lt(f.ms, 500 + slack_ms());
    /* with a watch: the watch fails, the range too, within timeout + wait */
    f = fetch(st, apr_time_from_sec(1));
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_ptr_nonnull(strstr(f.err, "watch"));
    ck_assert_int_lt(f.ms, 1500 + slack_ms());

    /* back, with the same data: the set did not change */
    etcd_start(&e);
    t0 = apr_time_now();
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_UNCHANGED);
    /* and changes made while it is back are picked up */
    kv_put(e.port, "/check/outage/10.0.4.3:80", "");
    kv_del(e.port, "/check/outage/10.0.4.1:80");
    f = fetch(st, apr_time_from_sec(2));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_ptr_nonnull(find_url(f.entries, "http://10.0.4.3:80"));
    ck_assert_ptr_null(find_url(f.entries, "http://10.0.4.1:80"));
    (void)t0;
    etcd_kill(&e);
    etcd_wipe(&e);
}
END_TEST

START_TEST(test_wiped_store)
{
    etcd_proc e;
    void *st;
    fetched f;
    int i;

    memset(&e, 0, sizeof(e));
    etcd_start(&e);
    for (i = 0; i < 6; i++) {
        kv_put(e.port, apr_psprintf(pool, "/check/wipe/10.0.5.%d:80", i), "");
    }
    st = source(e.port, "/check/wipe/");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 6);
    /* etcd wiped and started again on the same port: its revision (2
     * after one put) is behind ours (7); a watch from 8 would wait for
     * nothing, so the source ranges at once */
    etcd_kill(&e);
    etcd_wipe(&e);
    etcd_start(&e);
    kv_put(e.port, "/check/wipe/10.0.5.9:80", "");
    f = fetch(st, apr_time_from_sec(3));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 1);
    ck_assert_ptr_nonnull(find_url(f.entries, "http://10.0.5.9:80"));
    ck_assert_int_lt(f.ms, slack_ms());
    etcd_kill(&e);
    etcd_wipe(&e);
}
END_TEST

START_TEST(test_endpoints_in_turn)
{
    int dead = ck_free_port();
    void *st;
    fetched f;

    kv_put(shared.port, "/check/turn/10.0.6.1:80", "");
    st = source_at(apr_psprintf(pool, "http://127.0.0.1:%d,http://127.0.0.1:%d",
                                dead, shared.port), "/check/turn/", "1s");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 1);
    /* the endpoint that answered is asked first from then on: a watch
     * there, no error */
    kv_put(shared.port, "/check/turn/10.0.6.2:80", "");
    f = fetch(st, apr_time_from_sec(2));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_int_lt(f.ms, slack_ms());
    /* every endpoint down: each one named */
    st = source_at(apr_psprintf(pool, "http://127.0.0.1:%d,http://localhost:%d",
                                dead, dead), "/check/turn/", "1s");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_ptr_nonnull(strstr(f.err, apr_psprintf(pool, "http://127.0.0.1:%d: ",
                                                     dead)));
    ck_assert_ptr_nonnull(strstr(f.err, apr_psprintf(pool, "http://localhost:%d: ",
                                                     dead)));
}
END_TEST

/* A CA, a server certificate for 127.0.0.1 (server and client use: etcd
 * 3.4's gateway dials its own gRPC port with it) and a client
 * certificate, made with the openssl command in dir. */
static void make_certs(const char *dir)
{
    const char *cmd = apr_psprintf(pool,
        "cd '%s' && printf '%%s\\n' '[srv]' "
        "'subjectAltName=IP:127.0.0.1' "
        "'extendedKeyUsage=serverAuth,clientAuth' '[cli]' "
        "'extendedKeyUsage=clientAuth' > ext.cnf "
        "&& openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        "-nodes -days 2 -subj /CN=check-etcd-ca "
        "-addext basicConstraints=critical,CA:TRUE -keyout ca.key "
        "-out ca.pem "
        "&& for n in srv cli; do openssl req -newkey ec "
        "-pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$n -keyout $n.key "
        "-out $n.csr && openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -days 2 -extfile ext.cnf -extensions $n -out $n.pem "
        "|| exit 1; done", dir);

    ck_assert_msg(system(apr_pstrcat(pool, "(", cmd, ") > /dev/null 2>&1",
                                     NULL)) == 0,
                  "openssl could not make the test certificates in %s", dir);
}

static void *tls_source(int port, const char *dir, int ca, int cert)
{
    apr_table_t *o = opts_of("/check/tls/", "1s");
    void *st = NULL;
    const char *err;

    if (ca) {
        apr_table_set(o, "ca", apr_pstrcat(pool, dir, "/ca.pem", NULL));
    }
    if (cert) {
        apr_table_set(o, "cert", apr_pstrcat(pool, dir, "/cli.pem", NULL));
        apr_table_set(o, "key", apr_pstrcat(pool, dir, "/cli.key", NULL));
    }
    err = slb_disc_etcd_ops.create(pool, apr_psprintf(pool,
                                   "https://127.0.0.1:%d", port), o, &st);
    ck_assert_msg(err == NULL, "create: %s", err);
    return st;
}

START_TEST(test_tls)
{
    char dir[64];
    etcd_proc e;
    void *st;
    fetched f;

    apr_cpystrn(dir, "/tmp/slb-check-etcd-tls-XXXXXX", sizeof(dir));
    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_certs(dir);
    memset(&e, 0, sizeof(e));
    e.tls = dir;
    post_tls = dir;
    etcd_start(&e);
    kv_put(e.port, "/check/tls/10.0.8.1:443", "");

    /* the CA and a client certificate: the range, then a watch */
    st = tls_source(e.port, dir, 1, 1);
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 1);
    ck_assert_str_eq(entry(f.entries, 0)->url, "http://10.0.8.1:443");
    f = fetch(st, apr_time_from_msec(300));
    ck_res(f, SLB_DISC_UNCHANGED);
    ck_assert_int_ge(f.ms, 300 - 20);
    kv_put(e.port, "/check/tls/10.0.8.2:443", "");
    f = fetch(st, apr_time_from_sec(2));
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    ck_assert_int_lt(f.ms, slack_ms());

    /* etcd wants a client certificate: without one, refused, and said */
    f = fetch(tls_source(e.port, dir, 1, 0), 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_msg(strstr(f.err, apr_psprintf(pool, "https://127.0.0.1:%d: TLS",
                                             e.port))
                  && strstr(f.err, "client certificate"), "%s", f.err);
    /* etcd's certificate from a CA the system does not know: not trusted */
    f = fetch(tls_source(e.port, dir, 0, 1), 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_msg(strstr(f.err, "not trusted (ca=?)"), "%s", f.err);

    etcd_kill(&e);
    etcd_wipe(&e);
    post_tls = NULL;
    if (system(apr_psprintf(pool, "rm -rf '%s'", dir)) != 0) {
        fprintf(stderr, "check_etcd: could not remove %s\n", dir);
    }
}
END_TEST

/* ======================================================================
 * a fake gateway: answers every connection with one canned response,
 * or accepts and never answers (a black hole)
 * ==================================================================== */

typedef struct {
    int fd;
    const char *volatile answer;    /* NULL: never answer */
    volatile int stop;
} fake_srv;

static void *APR_THREAD_FUNC fake_loop(apr_thread_t *t, void *data)
{
    fake_srv *s = data;
    int held[16], n = 0;

    while (!s->stop) {
        int c = accept(s->fd, NULL, NULL);
        char buf[4096];

        if (c < 0) {
            break;
        }
        if (!s->answer) {
            if (n < 16) {
                held[n++] = c;
            }
            else {
                close(c);
            }
            continue;
        }
        /* read the request (headers and a small body), then answer */
        apr_sleep(apr_time_from_msec(20));
        if (recv(c, buf, sizeof(buf), 0) >= 0) {
            if (send(c, s->answer, strlen(s->answer), MSG_NOSIGNAL) < 0) {
                /* the client went away: nothing to do */
            }
        }
        close(c);
    }
    while (n > 0) {
        close(held[--n]);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_thread_t *fake_start(fake_srv *s, const char *answer, int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    apr_thread_t *t;

    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    s->answer = answer;
    s->stop = 0;
    ck_assert_int_ge(s->fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s->fd, 16), 0);
    ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    ck_assert_int_eq(apr_thread_create(&t, NULL, fake_loop, s, pool),
                     APR_SUCCESS);
    return t;
}

static void fake_stop(fake_srv *s, apr_thread_t *t)
{
    apr_status_t rv;

    s->stop = 1;
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    apr_thread_join(&rv, t);
}

static fetched fetch_from_fake(const char *answer, const char *timeout,
                               apr_interval_time_t wait)
{
    fake_srv s;
    int port;
    apr_thread_t *t = fake_start(&s, answer, &port);
    void *st = source_at(apr_psprintf(pool, "http://127.0.0.1:%d", port),
                         "/services/web/", timeout);
    fetched f = fetch(st, wait);

    fake_stop(&s, t);
    ck_assert_msg(f.err && strstr(f.err, apr_psprintf(pool,
                                  "http://127.0.0.1:%d: ", port)),
                  "the endpoint not named: %s", f.err ? f.err : "(none)");
    return f;
}

START_TEST(test_bad_gateways)
{
    fetched f;

    f = fetch_from_fake("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9"
                        "\r\nConnection: close\r\n\r\nno leader", "1s", 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_ptr_nonnull(strstr(f.err, "HTTP 503 from /v3/kv/range: no leader"));

    f = fetch_from_fake("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: 19\r\nConnection: close\r\n\r\n"
                        "{\"kvs\": [garbage]}\n", "1s", 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_ptr_nonnull(strstr(f.err, "not JSON"));

    f = fetch_from_fake("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                        "Connection: close\r\n\r\n{}", "1s", 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_ptr_nonnull(strstr(f.err, "header.revision"));

    /* more keys than SLB_ETCD_MAX_KEYS: an error, not a truncated set */
    f = fetch_from_fake("HTTP/1.1 200 OK\r\nContent-Length: 52\r\n"
                        "Connection: close\r\n\r\n"
                        "{\"header\":{\"revision\":\"9\"},\"kvs\":[],"
                        "\"more\":true}    ", "1s", 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_msg(strstr(f.err, "more than 1024 keys under /services/web/"),
                  "%s", f.err);

    f = fetch_from_fake("not http at all\r\n\r\n", "1s", 0);
    ck_res(f, SLB_DISC_FAILED);

    /* a gateway that accepts and never answers: the timeout, no more */
    f = fetch_from_fake(NULL, "300ms", 0);
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_msg(strstr(f.err, "timed out after 300 ms"), "%s", f.err);
    ck_assert_int_ge(f.ms, 300 - 20);
    ck_assert_int_lt(f.ms, 300 + slack_ms());
}
END_TEST

START_TEST(test_blackhole_bounded_with_wait)
{
    fake_srv s;
    int port;
    apr_thread_t *t;
    void *st;
    fetched f;

    /* a gateway that answers one range, then turns into a black hole:
     * the next fetch waits for its watch (wait) and its range (timeout),
     * no longer, and the set is kept (FAILED) */
    t = fake_start(&s, apr_pstrcat(pool, "HTTP/1.1 200 OK\r\n"
                   "Connection: close\r\nContent-Length: ",
                   apr_itoa(pool, (int)strlen(CAPTURED)), "\r\n\r\n",
                   CAPTURED, NULL), &port);
    st = source_at(apr_psprintf(pool, "http://127.0.0.1:%d", port),
                   "/services/web/", "400ms");
    f = fetch(st, 0);
    ck_res(f, SLB_DISC_OK);
    ck_assert_int_eq(f.entries->nelts, 2);
    s.answer = NULL;
    f = fetch(st, apr_time_from_msec(600));
    ck_res(f, SLB_DISC_FAILED);
    ck_assert_msg(f.ms >= 400 + 600 - 20 && f.ms < 400 + 600 + slack_ms(),
                  "%ld ms: %s", f.ms, f.err);
    ck_assert_ptr_nonnull(strstr(f.err, "watch: timed out after 600 ms"));
    ck_assert_ptr_nonnull(strstr(f.err, "then"));
    ck_assert_ptr_nonnull(strstr(f.err, "timed out after"));
    fake_stop(&s, t);
}
END_TEST

Suite *etcd_suite(void)
{
    Suite *s = suite_create("etcd");
    TCase *tc;

    tc = tcase_create("parsing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_range_end);
    tcase_add_test(tc, test_member_url);
    tcase_add_test(tc, test_member_forms);
    tcase_add_test(tc, test_parse_range);
    tcase_add_test(tc, test_parse_watch);
    tcase_add_test(tc, test_create);
    suite_add_tcase(s, tc);

    tc = tcase_create("etcd");
    tcase_add_unchecked_fixture(tc, shared_start, shared_stop);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_range_finds_entries);
    tcase_add_test(tc, test_poll_sees_put_and_delete);
    tcase_add_test(tc, test_watch_sees_put_and_delete);
    tcase_add_test(tc, test_watch_compacted);
    tcase_add_test(tc, test_outage_and_return);
    tcase_add_test(tc, test_wiped_store);
    tcase_add_test(tc, test_endpoints_in_turn);
    tcase_add_test(tc, test_bad_gateways);
    tcase_add_test(tc, test_blackhole_bounded_with_wait);
    tcase_add_test(tc, test_tls);
    suite_add_tcase(s, tc);
    return s;
}
