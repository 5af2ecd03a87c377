/*
 * check_probe.c - Check tests of stickylb_probe.c: the StickyLBProbe
 * grammar (the TLS and resolution options among the others), the names a
 * TLS probe sends and verifies, the failure reasons, when a member's name
 * is looked up again (the clock passed in), and the runner against a real
 * TLS server on loopback (a thread of the test, with a CA and a server
 * certificate made by the test): verified against the CA, refused by the
 * system's store, verify=off, a name mismatch, a server that never
 * handshakes (bounded by the probe's timeout).  The agent check: its
 * grammar, the answer read from a response (body line or header), the
 * answer's words, and the rules that apply it to a member's flags (the
 * agent clears only what it set); one agent check over TLS.
 */
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_network_io.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "check_stickylb.h"
#include "stickylb_probe.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

typedef const char *(*conf_parser)(apr_pool_t *, slb_probe_conf *, int,
                                   const char *const *);

/* parse a line given as one string of words with parser fn */
static const char *parse_with(conf_parser fn, slb_probe_conf *c,
                              const char *line)
{
    char *copy = apr_pstrdup(pool, line), *tok, *last;
    const char *argv[32];
    int argc = 0;

    for (tok = apr_strtok(copy, " ", &last); tok && argc < 32;
         tok = apr_strtok(NULL, " ", &last)) {
        argv[argc++] = tok;
    }
    return fn(pool, c, argc, argv);
}

static void assert_err_with(conf_parser fn, const char *line,
                            const char *part)
{
    slb_probe_conf c;
    const char *err = parse_with(fn, &c, line);

    ck_assert_msg(err != NULL, "'%s' was accepted", line);
    ck_assert_msg(strstr(err, part) != NULL, "'%s': '%s' does not say '%s'",
                  line, err, part);
}

#define parse(c, line) parse_with(slb_probe_conf_parse, (c), (line))
#define assert_err(line, part) \
    assert_err_with(slb_probe_conf_parse, (line), (part))

START_TEST(test_parse_defaults)
{
    slb_probe_conf c;

    ck_assert_ptr_null(parse(&c, "http"));
    ck_assert_int_eq(c.kind, SLB_PROBE_HTTP);
    ck_assert_int_eq(c.verify, 1);
    ck_assert_int_eq(c.verify_set, 0);
    ck_assert_ptr_null(c.ca_file);
    ck_assert_ptr_null(c.tls);
    ck_assert(c.resolve == apr_time_from_sec(30));
    ck_assert(c.interval == apr_time_from_sec(5));
    ck_assert(c.timeout == apr_time_from_sec(2));
    ck_assert_ptr_null(parse(&c, "tcp"));
    ck_assert(c.resolve == SLB_PROBE_RESOLVE_DEFAULT);
}
END_TEST

START_TEST(test_parse_tls)
{
    slb_probe_conf c;

    ck_assert_ptr_null(parse(&c, "http verify=off"));
    ck_assert_int_eq(c.verify, 0);
    ck_assert_int_eq(c.verify_set, 1);
    ck_assert_ptr_null(parse(&c, "http verify=ON"));
    ck_assert_int_eq(c.verify, 1);
    ck_assert_ptr_null(parse(&c, "http ca=/etc/x/ca.pem host=app.example"));
    ck_assert_str_eq(c.ca_file, "/etc/x/ca.pem");
    ck_assert_int_eq(c.verify, 1);
    ck_assert_ptr_null(parse(&c, "http verify=on ca=conf/ca.pem"));
    ck_assert_str_eq(c.ca_file, "conf/ca.pem");

    assert_err("http verify=yes", "verify='yes' must be on or off");
    assert_err("http verify=", "must be on or off");
    assert_err("http ca=", "ca= is empty");
    assert_err("http verify=off ca=/x.pem", "ca= has no effect with "
               "verify=off");
    assert_err("tcp verify=off", "verify= and ca= need an http probe");
    assert_err("tcp ca=/x.pem", "verify= and ca= need an http probe");
    assert_err("tcp verify=on", "need an http probe");
    assert_err("http zzz=1", "(expected method=, path=, host=, expect=, "
               "body=, interval=, timeout=, rise=, fall=, route=, verify=, "
               "ca=, resolve=)");
    assert_err("http verfy=off", "did you mean verify=?");
}
END_TEST

START_TEST(test_parse_resolve)
{
    slb_probe_conf c;

    ck_assert_ptr_null(parse(&c, "http resolve=10"));
    ck_assert(c.resolve == apr_time_from_sec(10));
    ck_assert_ptr_null(parse(&c, "tcp resolve=500ms"));
    ck_assert(c.resolve == apr_time_from_msec(500));
    ck_assert_ptr_null(parse(&c, "http resolve=0"));
    ck_assert(c.resolve == 0);
    ck_assert_ptr_null(parse(&c, "http resolve=86400s"));
    ck_assert(c.resolve == apr_time_from_sec(86400));
    assert_err("http resolve=86401", "resolve=: '86401' must be a duration "
               "from 0");
    assert_err("http resolve=10m", "resolve=: '10m'");
    assert_err("http resolve=-1", "resolve=");
    assert_err("http resolve=", "resolve=");
}
END_TEST

START_TEST(test_scheme_tls)
{
    ck_assert(slb_probe_scheme_tls("https"));
    ck_assert(slb_probe_scheme_tls("HTTPS"));
    ck_assert(slb_probe_scheme_tls("wss"));
    ck_assert(slb_probe_scheme_tls("h2"));
    ck_assert(!slb_probe_scheme_tls("http"));
    ck_assert(!slb_probe_scheme_tls("h2c"));
    ck_assert(!slb_probe_scheme_tls("ws"));
    ck_assert(!slb_probe_scheme_tls("ajp"));
    ck_assert(!slb_probe_scheme_tls(""));
    ck_assert(!slb_probe_scheme_tls(NULL));
}
END_TEST

START_TEST(test_tls_name)
{
    slb_probe_conf c;

    ck_assert_ptr_null(parse(&c, "http"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "app1.example"),
                     "app1.example");
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "10.0.0.1"), "10.0.0.1");
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "::1"), "::1");
    ck_assert_ptr_null(slb_probe_tls_name(pool, &c, ""));
    ck_assert_ptr_null(slb_probe_tls_name(pool, &c, NULL));

    ck_assert_ptr_null(parse(&c, "http host=www.example.com"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "10.0.0.1"),
                     "www.example.com");
    ck_assert_ptr_null(parse(&c, "http host=www.example.com:8443"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "10.0.0.1"),
                     "www.example.com");
    ck_assert_ptr_null(parse(&c, "http host=[2001:db8::1]:8443"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "10.0.0.1"),
                     "2001:db8::1");
    ck_assert_ptr_null(parse(&c, "http host=[2001:db8::1]"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "10.0.0.1"),
                     "2001:db8::1");
    ck_assert_ptr_null(parse(&c, "http host=2001:db8::2"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "10.0.0.1"),
                     "2001:db8::2");
    /* nothing left of host=: the member's */
    ck_assert_ptr_null(parse(&c, "http host=:8443"));
    ck_assert_str_eq(slb_probe_tls_name(pool, &c, "m.example"),
                     "m.example");

    ck_assert(slb_probe_is_ip_literal("127.0.0.1"));
    ck_assert(slb_probe_is_ip_literal("::1"));
    ck_assert(slb_probe_is_ip_literal("2001:db8::1"));
    ck_assert(!slb_probe_is_ip_literal("localhost"));
    ck_assert(!slb_probe_is_ip_literal("1.2.3.4.example"));
    ck_assert(!slb_probe_is_ip_literal("[::1]"));
    ck_assert(!slb_probe_is_ip_literal(""));
    ck_assert(!slb_probe_is_ip_literal(NULL));
}
END_TEST

START_TEST(test_resolve_due)
{
    apr_time_t t0 = apr_time_from_sec(1000000);
    apr_interval_time_t every = apr_time_from_sec(30);

    /* never resolved: due, whatever resolve= says */
    ck_assert(slb_probe_resolve_due(0, every, t0));
    ck_assert(slb_probe_resolve_due(0, 0, t0));
    /* within the interval: not due; at and after it: due */
    ck_assert(!slb_probe_resolve_due(t0, every, t0));
    ck_assert(!slb_probe_resolve_due(t0, every, t0 + every - 1));
    ck_assert(slb_probe_resolve_due(t0, every, t0 + every));
    ck_assert(slb_probe_resolve_due(t0, every, t0 + 10 * every));
    /* resolve=0: once */
    ck_assert(!slb_probe_resolve_due(t0, 0, t0 + apr_time_from_sec(86400)));
    /* a clock stepped back: due */
    ck_assert(slb_probe_resolve_due(t0, every, t0 - 1));
}
END_TEST

START_TEST(test_tls_reasons)
{
    const char *w = "TLS handshake failed";

    ck_assert_str_eq(slb_probe_tls_reason(pool, w, SSL_ERROR_SSL, 0,
                                          X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
                                          0),
                     "TLS handshake failed: certificate verify failed "
                     "(self-signed certificate in certificate chain)");
    ck_assert_str_eq(slb_probe_tls_reason(pool, w, SSL_ERROR_SSL, 0,
                                          X509_V_ERR_HOSTNAME_MISMATCH, 0),
                     "TLS handshake failed: certificate verify failed "
                     "(hostname mismatch)");
    ck_assert_str_eq(slb_probe_tls_reason(pool, w, SSL_ERROR_SSL, 0,
                                          X509_V_ERR_CERT_HAS_EXPIRED, 0),
                     "TLS handshake failed: certificate verify failed "
                     "(certificate has expired)");
    ck_assert_str_eq(slb_probe_tls_reason(
                         pool, w, SSL_ERROR_SSL,
                         ERR_PACK(ERR_LIB_SSL, 0, SSL_R_WRONG_VERSION_NUMBER),
                         X509_V_OK, 0),
                     "TLS handshake failed: wrong version number");
    ck_assert_str_eq(slb_probe_tls_reason(pool, w, SSL_ERROR_SYSCALL, 0,
                                          X509_V_OK, 0),
                     "TLS handshake failed: connection closed by the member");
    ck_assert_str_eq(slb_probe_tls_reason(pool, "TLS receive failed",
                                          SSL_ERROR_SYSCALL, 0, X509_V_OK,
                                          ECONNRESET),
                     apr_pstrcat(pool, "TLS receive failed: ",
                                 strerror(ECONNRESET), NULL));
    ck_assert_str_eq(slb_probe_tls_reason(pool, w, SSL_ERROR_ZERO_RETURN, 0,
                                          X509_V_OK, 0),
                     "TLS handshake failed: connection closed by the member");
    ck_assert_str_eq(slb_probe_tls_reason(pool, w, SSL_ERROR_SSL, 0,
                                          X509_V_OK, 0),
                     "TLS handshake failed: error 0");
    /* what the status page keeps of the longest of them */
    ck_assert_int_lt(strlen("TLS handshake failed: certificate verify "
                            "failed (self-signed certificate in certificate "
                            "chain)"), SLB_PROBE_WHY_MAX);
}
END_TEST

/* ------------------------------------------------------------------ */
/* a CA and a server certificate, made here                             */

static long serial = 1;

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *issuer_key, int ca, const char *san)
{
    X509 *x = X509_new();
    X509_NAME *n;
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    ck_assert_ptr_nonnull(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ca) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
                                  "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (san) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ck_assert_int_gt(X509_sign(x, issuer_key ? issuer_key : key,
                               EVP_sha256()), 0);
    return x;
}

/* ------------------------------------------------------------------ */
/* agent checks                                                         */

#define parse_agent(c, line) parse_with(slb_agent_conf_parse, (c), (line))
#define assert_agent_err(line, part) \
    assert_err_with(slb_agent_conf_parse, (line), (part))

START_TEST(test_agent_conf)
{
    slb_probe_conf c;

    ck_assert_ptr_null(parse_agent(&c, "http path=/agent"));
    ck_assert_int_eq(c.kind, SLB_PROBE_HTTP);
    ck_assert_int_eq(c.agent, 1);
    ck_assert_ptr_null(c.header);
    ck_assert_str_eq(c.path, "/agent");
    ck_assert(c.interval == apr_time_from_sec(5));
    ck_assert_ptr_null(parse_agent(&c, "http path=/a header=X-Agent-State "
                                       "interval=1 timeout=500ms route=r1 "
                                       "host=a.test verify=off resolve=0"));
    ck_assert_str_eq(c.header, "X-Agent-State");
    ck_assert_str_eq(c.route, "r1");
    ck_assert(c.timeout == apr_time_from_msec(500));
    ck_assert_int_eq(c.verify, 0);
    ck_assert_ptr_null(parse_agent(&c, "none"));
    ck_assert_int_eq(c.kind, SLB_PROBE_NONE);
    ck_assert_int_eq(c.agent, 1);

    assert_agent_err("tcp", "the first word must be http or none");
    assert_agent_err("", "needs http or none");
    assert_agent_err("none route=r1", "none takes no option");
    assert_agent_err("http body=up", "body=");
    assert_agent_err("http expect=200", "expect=");
    assert_agent_err("http rise=2", "rise=");
    assert_agent_err("http header=", "header='' is not a header name");
    assert_agent_err("http header=X:Y", "not a header name");
    assert_agent_err("http path=agent", "path='agent' must start with '/'");
    assert_agent_err("http interval=1 timeout=2",
                     "timeout= must not exceed interval=");
}
END_TEST

static int judge(const slb_probe_conf *c, const char *resp, int eof,
                 const char **why, char *answer)
{
    *why = NULL;
    answer[0] = '\0';
    return slb_agent_judge(c, resp, strlen(resp), eof, why, answer);
}

START_TEST(test_agent_judge)
{
    slb_probe_conf c, h;
    char ans[SLB_AGENT_ANSWER_MAX];
    const char *why;
    char big[SLB_PROBE_READ_MAX + 16];

    ck_assert_ptr_null(parse_agent(&c, "http path=/agent"));
    ck_assert_ptr_null(parse_agent(&h, "http header=X-Agent-State"));

    /* the body's first line, trimmed */
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                               "\r\n drain 50% \r\nmore", 0, &why, ans), 1);
    ck_assert_str_eq(ans, "drain 50%");
    /* no end of line yet: more bytes, then eof ends the line */
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\n\r\nmai", 0, &why, ans),
                     -1);
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\n\r\nmaint", 1, &why,
                           ans), 1);
    ck_assert_str_eq(ans, "maint");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\nX: y\r\n", 0, &why, ans),
                     -1);
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\nX: y\r\n", 1, &why, ans),
                     0);
    ck_assert_str_eq(why, "truncated response headers");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\n\r\n  \r\n", 1, &why,
                           ans), 0);
    ck_assert_str_eq(why, "empty agent answer");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 503 No\r\n\r\nup\n", 1, &why, ans),
                     0);
    ck_assert_str_eq(why, "unexpected status");
    ck_assert_int_eq(judge(&c, "SSH-2.0\r\n\r\n", 1, &why, ans), 0);
    ck_assert_str_eq(why, "not an HTTP response");
    /* a long line is cut to the answer's size */
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.0 200 OK\r\n\r\n", 19);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(slb_agent_judge(&c, big, SLB_PROBE_READ_MAX, 0, &why,
                                     ans), 1);
    ck_assert_uint_eq(strlen(ans), SLB_AGENT_ANSWER_MAX - 1);
    /* ... and trimmed after the cut; a NUL ends the answer */
    memset(big + 19, 'x', sizeof(big) - 19);
    big[19 + SLB_AGENT_ANSWER_MAX - 2] = ' ';
    ck_assert_int_eq(slb_agent_judge(&c, big, SLB_PROBE_READ_MAX, 0, &why,
                                     ans), 1);
    ck_assert_uint_eq(strlen(ans), SLB_AGENT_ANSWER_MAX - 2);
    ck_assert_int_eq(ans[strlen(ans) - 1], 'x');
    ck_assert_int_eq(slb_agent_judge(&c, "HTTP/1.0 200 OK\r\n\r\ndrain \0x\n",
                                     28, 1, &why, ans), 1);
    ck_assert_str_eq(ans, "drain");

    /* the header's value, the name case-insensitive; the body ignored */
    ck_assert_int_eq(judge(&h, "HTTP/1.1 200 OK\r\nServer: x\r\n"
                               "x-agent-state:  up, 75%\r\n\r\ndown\n", 0,
                           &why, ans), 1);
    ck_assert_str_eq(ans, "up, 75%");
    ck_assert_int_eq(judge(&h, "HTTP/1.1 200 OK\r\nX-Agent-Statement: up"
                               "\r\n\r\n", 0, &why, ans), 0);
    ck_assert_str_eq(why, "no agent header in the response");
    ck_assert_int_eq(judge(&h, "HTTP/1.1 200 OK\r\nX-Agent-State:\r\n\r\n",
                           0, &why, ans), 0);
    ck_assert_str_eq(why, "empty agent header");
    ck_assert_int_eq(judge(&h, "HTTP/1.1 200 OK\r\nX-Agent-State: up\r\n",
                           0, &why, ans), -1);
}
END_TEST

static slb_agent_answer answer_of(const char *text)
{
    slb_agent_answer a;
    const char *err = slb_agent_parse(pool, text, &a);

    ck_assert_msg(err == NULL, "'%s': %s", text, err);
    return a;
}

START_TEST(test_agent_parse)
{
    slb_agent_answer a;
    const char *err;

    a = answer_of("up");
    ck_assert_int_eq(a.state, SLB_AGENT_UP);
    ck_assert_int_eq(a.weight, -1);
    ck_assert_int_eq(answer_of("READY").state, SLB_AGENT_UP);
    ck_assert_int_eq(answer_of("drain").state, SLB_AGENT_DRAIN);
    ck_assert_int_eq(answer_of("Maint").state, SLB_AGENT_MAINT);
    ck_assert_int_eq(answer_of("down").state, SLB_AGENT_DOWN);
    ck_assert_int_eq(answer_of("stopped").state, SLB_AGENT_DOWN);
    ck_assert_int_eq(answer_of("failed").state, SLB_AGENT_DOWN);
    a = answer_of("75%");
    ck_assert_int_eq(a.state, SLB_AGENT_NONE);
    ck_assert_int_eq(a.weight, 75);
    a = answer_of("up,50%");
    ck_assert_int_eq(a.state, SLB_AGENT_UP);
    ck_assert_int_eq(a.weight, 50);
    a = answer_of(" 0%\tdrain ");
    ck_assert_int_eq(a.state, SLB_AGENT_DRAIN);
    ck_assert_int_eq(a.weight, 0);
    /* bounded: more than 100% is 100% */
    ck_assert_int_eq(answer_of("250%").weight, 100);
    /* the last state word counts; unknown words are ignored */
    ck_assert_int_eq(answer_of("drain, up").state, SLB_AGENT_UP);
    ck_assert_int_eq(answer_of("hello maint").state, SLB_AGENT_MAINT);
    /* up to a '#': the rest is a comment */
    a = answer_of("up # down 10%");
    ck_assert_int_eq(a.state, SLB_AGENT_UP);
    ck_assert_int_eq(a.weight, -1);

    err = slb_agent_parse(pool, "hello world", &a);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "no state or weight in the answer "
                                      "'hello world'"));
    ck_assert_ptr_nonnull(slb_agent_parse(pool, "%", &a));
    ck_assert_ptr_nonnull(slb_agent_parse(pool, "-5%", &a));
    ck_assert_ptr_nonnull(slb_agent_parse(pool, "5x%", &a));
    ck_assert_ptr_nonnull(slb_agent_parse(pool, "# up", &a));
    ck_assert_ptr_nonnull(slb_agent_parse(pool, "", &a));
}
END_TEST

START_TEST(test_agent_merge_want)
{
    slb_agent_answer cur = { SLB_AGENT_UP, 100 };

    ck_assert_uint_eq(slb_agent_want(&cur), 0);
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_NONE, 50 });
    ck_assert_int_eq(cur.state, SLB_AGENT_UP);
    ck_assert_int_eq(cur.weight, 50);
    ck_assert_uint_eq(slb_agent_want(&cur), 0);
    /* a state alone keeps the weight */
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_DRAIN, -1 });
    ck_assert_int_eq(cur.state, SLB_AGENT_DRAIN);
    ck_assert_int_eq(cur.weight, 50);
    ck_assert_uint_eq(slb_agent_want(&cur), SLB_AGENT_F_DRAIN);
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_MAINT, -1 });
    ck_assert_uint_eq(slb_agent_want(&cur), SLB_AGENT_F_MAINT);
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_DOWN, -1 });
    ck_assert_uint_eq(slb_agent_want(&cur), SLB_AGENT_F_DOWN);
    /* up clears what the agent said, its weight too */
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_UP, -1 });
    ck_assert_int_eq(cur.state, SLB_AGENT_UP);
    ck_assert_int_eq(cur.weight, 100);
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_UP, 30 });
    ck_assert_int_eq(cur.weight, 30);
    /* a weight of 0 drains */
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_NONE, 0 });
    ck_assert_uint_eq(slb_agent_want(&cur), SLB_AGENT_F_DRAIN);
    slb_agent_merge(&cur, &(slb_agent_answer){ SLB_AGENT_MAINT, -1 });
    ck_assert_uint_eq(slb_agent_want(&cur),
                      SLB_AGENT_F_DRAIN | SLB_AGENT_F_MAINT);
    ck_assert_str_eq(slb_agent_state_name(SLB_AGENT_MAINT), "maint");
    ck_assert_str_eq(slb_agent_state_name(SLB_AGENT_UP), "up");
}
END_TEST

START_TEST(test_agent_apply)
{
    unsigned owned = 0, st;

    /* the agent drains a member nobody drained: it owns the drain */
    st = slb_agent_apply(SLB_AGENT_F_DRAIN, 0, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_DRAIN);
    ck_assert_uint_eq(owned, SLB_AGENT_F_DRAIN);
    /* ... then maint: the drain is no longer wanted, and cleared */
    st = slb_agent_apply(SLB_AGENT_F_MAINT, st, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_MAINT);
    ck_assert_uint_eq(owned, SLB_AGENT_F_MAINT);
    /* ... up: back */
    st = slb_agent_apply(0, st, &owned);
    ck_assert_uint_eq(st, 0);
    ck_assert_uint_eq(owned, 0);

    /* the operator disabled the member: the agent's up leaves it so */
    owned = 0;
    st = slb_agent_apply(0, SLB_AGENT_F_MAINT, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_MAINT);
    ck_assert_uint_eq(owned, 0);
    /* ... the agent's maint too, and its up after it */
    st = slb_agent_apply(SLB_AGENT_F_MAINT, st, &owned);
    ck_assert_uint_eq(owned, 0);
    st = slb_agent_apply(0, st, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_MAINT);
    /* the operator's drain stays under the agent's down and up */
    owned = 0;
    st = slb_agent_apply(SLB_AGENT_F_DOWN, SLB_AGENT_F_DRAIN, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_DRAIN | SLB_AGENT_F_DOWN);
    ck_assert_uint_eq(owned, SLB_AGENT_F_DOWN);
    st = slb_agent_apply(0, st, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_DRAIN);
    ck_assert_uint_eq(owned, 0);
    /* a flag the agent owned and someone cleared: set again while the
     * agent still wants it, and not owned once it does not */
    owned = SLB_AGENT_F_DRAIN;
    st = slb_agent_apply(SLB_AGENT_F_DRAIN, 0, &owned);
    ck_assert_uint_eq(st, SLB_AGENT_F_DRAIN);
    owned = SLB_AGENT_F_DRAIN;
    st = slb_agent_apply(0, 0, &owned);
    ck_assert_uint_eq(st, 0);
    ck_assert_uint_eq(owned, 0);
}
END_TEST

typedef struct {
    int lfd;
    int mode;                    /* 0: TLS and an answer; 1: never reads */
    int conns;                   /* connections to serve */
    SSL_CTX *ctx;
} server_t;

static void *serve(void *arg)
{
    server_t *sv = arg;
    int i;

    for (i = 0; i < sv->conns; i++) {
        int fd = accept(sv->lfd, NULL, NULL);
        SSL *ssl;
        char buf[2048];
        int got = 0, n;

        if (fd < 0) {
            break;
        }
        ssl = SSL_new(sv->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            while (got < (int)sizeof(buf) - 1
                   && (n = SSL_read(ssl, buf + got,
                                    (int)sizeof(buf) - 1 - got)) > 0) {
                got += n;
                buf[got] = '\0';
                if (strstr(buf, "\r\n\r\n")) {
                    break;
                }
            }
            SSL_write(ssl, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nUP",
                      41);
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static const char *write_pem(const char *dir, const char *name, X509 *x)
{
    const char *path = apr_pstrcat(pool, dir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
    return path;
}

/* one probe over TLS to 127.0.0.1:port, with the line's context */
static slb_probe run_one(const char *line, int port, const char *member)
{
    slb_probe_conf *c = apr_pcalloc(pool, sizeof(*c));
    const char *err = parse(c, line);
    slb_probe pr;
    apr_sockaddr_t *sa;

    ck_assert_msg(err == NULL, "%s: %s", line, err);
    c->tls = slb_probe_tls_ctx(pool, c, &err);
    ck_assert_msg(c->tls != NULL, "%s: %s", line, err);
    ck_assert_int_eq(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET,
                                           (apr_port_t)port, 0, pool),
                     APR_SUCCESS);
    memset(&pr, 0, sizeof(pr));
    pr.conf = c;
    pr.addr = sa;
    pr.request = slb_probe_request(pool, c, member);
    pr.tls = c->tls;
    pr.tls_name = slb_probe_tls_name(pool, c, member);
    ck_assert_int_eq(slb_probe_run(pool, &pr, 1), APR_SUCCESS);
    return pr;
}

START_TEST(test_tls_runner)
{
    char dir[] = "/tmp/check-probe-XXXXXX";
    EVP_PKEY *cakey, *key;
    X509 *ca, *leaf;
    const char *ca_pem, *junk, *err, *line;
    SSL_CTX *sctx;
    server_t sv;
    pthread_t th;
    slb_probe pr;
    slb_probe_conf c;
    int port;
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    cakey = EVP_EC_gen("P-256");
    key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(cakey);
    ck_assert_ptr_nonnull(key);
    ca = make_cert(cakey, "check_probe test CA", NULL, NULL, 1, NULL);
    leaf = make_cert(key, "probe.test", ca, cakey, 0,
                     "DNS:probe.test,DNS:localhost,IP:127.0.0.1");
    ca_pem = write_pem(dir, "ca.pem", ca);

    /* the CA file: read once, errors name it */
    ck_assert_ptr_null(parse(&c, "http ca=/nonexistent/ca.pem"));
    ck_assert_ptr_null(slb_probe_tls_ctx(pool, &c, &err));
    ck_assert_str_eq(err, "ca=/nonexistent/ca.pem: cannot read it (No such "
                     "file or directory)");
    junk = apr_pstrcat(pool, dir, "/junk.pem", NULL);
    f = fopen(junk, "w");
    fputs("this is not a certificate\n", f);
    fclose(f);
    ck_assert_ptr_null(parse(&c, apr_pstrcat(pool, "http ca=", junk, NULL)));
    ck_assert_ptr_null(slb_probe_tls_ctx(pool, &c, &err));
    ck_assert_ptr_nonnull(strstr(err, "no CA certificate could be read "
                                      "from it"));
    ck_assert_ptr_nonnull(strstr(err, junk));

    /* the server: sends its certificate and the CA's */
    sctx = SSL_CTX_new(TLS_server_method());
    ck_assert_int_eq(SSL_CTX_use_certificate(sctx, leaf), 1);
    ck_assert_int_eq(SSL_CTX_add1_chain_cert(sctx, ca), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(sctx, key), 1);
    sv.lfd = listen_loopback(&port);
    sv.ctx = sctx;
    sv.mode = 0;
    sv.conns = 7;
    ck_assert_int_eq(pthread_create(&th, NULL, serve, &sv), 0);

    line = apr_pstrcat(pool, "http timeout=2 ca=", ca_pem, NULL);
    pr = run_one(line, port, "127.0.0.1");
    ck_assert_msg(pr.ok, "verified against the CA, by address: %s", pr.why);
    pr = run_one(line, port, "localhost");
    ck_assert_msg(pr.ok, "verified against the CA, by name: %s", pr.why);
    pr = run_one(apr_pstrcat(pool, line, " host=probe.test:8443", NULL),
                 port, "127.0.0.1");
    ck_assert_msg(pr.ok, "host= names the certificate: %s", pr.why);
    pr = run_one(apr_pstrcat(pool, line, " host=other.test", NULL), port,
                 "127.0.0.1");
    ck_assert(!pr.ok);
    ck_assert_str_eq(pr.why, "TLS handshake failed: certificate verify "
                     "failed (hostname mismatch)");
    pr = run_one("http timeout=2", port, "localhost");
    ck_assert(!pr.ok);
    ck_assert_str_eq(pr.why, "TLS handshake failed: certificate verify "
                     "failed (self-signed certificate in certificate "
                     "chain)");
    pr = run_one("http timeout=2 verify=off host=other.test", port,
                 "127.0.0.1");
    ck_assert_msg(pr.ok, "verify=off: %s", pr.why);
    {
        /* an agent check over TLS: the same runner, the body's line read */
        slb_probe_conf *ac = apr_pcalloc(pool, sizeof(*ac));
        apr_sockaddr_t *sa;
        slb_agent_answer a;

        ck_assert_ptr_null(parse_agent(ac, apr_pstrcat(pool, "http "
                                       "path=/agent timeout=2 ca=", ca_pem,
                                       NULL)));
        ac->tls = slb_probe_tls_ctx(pool, ac, &err);
        ck_assert_ptr_nonnull(ac->tls);
        ck_assert_int_eq(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET,
                                               (apr_port_t)port, 0, pool),
                         APR_SUCCESS);
        memset(&pr, 0, sizeof(pr));
        pr.conf = ac;
        pr.addr = sa;
        pr.request = slb_probe_request(pool, ac, "localhost");
        pr.tls = ac->tls;
        pr.tls_name = slb_probe_tls_name(pool, ac, "localhost");
        ck_assert_int_eq(slb_probe_run(pool, &pr, 1), APR_SUCCESS);
        ck_assert_msg(pr.ok, "agent over TLS: %s", pr.why);
        ck_assert_str_eq(pr.answer, "UP");
        ck_assert_ptr_null(slb_agent_parse(pool, pr.answer, &a));
        ck_assert_int_eq(a.state, SLB_AGENT_UP);
    }
    pthread_join(th, NULL);
    close(sv.lfd);

    /* a member that accepts connections and never answers: the handshake
     * ends at the probe's timeout */
    sv.lfd = listen_loopback(&port);
    pr = run_one(apr_pstrcat(pool, "http timeout=300ms interval=1 ca=",
                             ca_pem, NULL), port, "127.0.0.1");
    ck_assert(!pr.ok);
    ck_assert_str_eq(pr.why, "timeout (TLS handshake)");
    ck_assert(pr.latency >= apr_time_from_msec(290)
              && pr.latency < apr_time_from_msec(1300));
    close(sv.lfd);

    SSL_CTX_free(sctx);
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    unlink(ca_pem);
    unlink(junk);
    rmdir(dir);
}
END_TEST

Suite *probe_suite(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("conf");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parse_defaults);
    tcase_add_test(tc, test_parse_tls);
    tcase_add_test(tc, test_parse_resolve);
    tcase_add_test(tc, test_scheme_tls);
    tcase_add_test(tc, test_tls_name);
    tcase_add_test(tc, test_resolve_due);
    tcase_add_test(tc, test_tls_reasons);
    tcase_add_test(tc, test_agent_conf);
    tcase_add_test(tc, test_agent_judge);
    tcase_add_test(tc, test_agent_parse);
    tcase_add_test(tc, test_agent_merge_want);
    tcase_add_test(tc, test_agent_apply);
    suite_add_tcase(s, tc);

    tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tls_runner);
    suite_add_tcase(s, tc);
    return s;
}
