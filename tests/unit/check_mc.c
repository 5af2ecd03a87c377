/*
 * check_mc.c - Check tests of stickylb_mc.c (the memcached backend), run
 * against real memcached processes the tests start themselves:
 *
 *     /usr/bin/memcached -l 127.0.0.1 -p PORT -U 0 -m 16
 *
 * on free ports, started with fork/exec and stopped by PID (SIGKILL) in
 * the teardown; on Linux each one also gets PR_SET_PDEATHSIG, so none is
 * left behind when a forked test process dies on a failed assertion.
 * A missing memcached binary is a failure, not a skip.
 *
 * Time bounds are asserted with a slack (SLACK_MS, 150 ms by default;
 * SLB_TEST_SLACK_MS overrides it, e.g. under valgrind).  The whole suite
 * runs in about 6 seconds: a 2.1 s sleep for TTL expiry, 1.1 s for a held
 * black hole to be retried and up to 4 s (about 1.5 s in practice) for a
 * restarted server to be used again.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_atomic.h>
#include <apr_time.h>

#include <libmemcached/memcached.h>

#include "check_stickylb.h"
#include "stickylb_mc.h"

#define MEMCACHED_BIN "/usr/bin/memcached"
#define MAX_DAEMONS 8
#define MAX_SOCKETS 16

static apr_pool_t *pool;

/* ======================================================================
 * memcached processes
 * ==================================================================== */

static pid_t daemons[MAX_DAEMONS];
static int n_daemons;
static int blackholes[MAX_SOCKETS];
static int n_blackholes;

static long slack_ms(void)
{
    const char *e = getenv("SLB_TEST_SLACK_MS");

    return e && atol(e) > 0 ? atol(e) : 150;
}

/* What "at once" means: no network wait (valgrind slows everything). */
static long fast_ms(void)
{
    return slack_ms() <= 150 ? 20 : slack_ms() / 4;
}

static int can_connect(int port)
{
    struct sockaddr_in a;
    int s = socket(AF_INET, SOCK_STREAM, 0), ok;

    if (s < 0) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(s);
    return ok;
}

/* Start memcached on port and wait until it accepts connections: its pid,
 * or -1 when it exited at start (the port was taken meanwhile). */
static pid_t mcd_try_start(int port)
{
    char portbuf[16];
    pid_t pid;
    int i, status;

    ck_assert_msg(access(MEMCACHED_BIN, X_OK) == 0,
                  MEMCACHED_BIN " is missing: install memcached to run "
                  "the memcached tests");
    ck_assert_int_lt(n_daemons, MAX_DAEMONS);
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    pid = ck_fork_server();
    if (pid == 0) {
        const char *argv[16];
        int n = 0;

        argv[n++] = MEMCACHED_BIN;
        argv[n++] = "-l";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = portbuf;
        argv[n++] = "-U";
        argv[n++] = "0";
        argv[n++] = "-m";
        argv[n++] = "16";
        if (geteuid() == 0) {       /* memcached refuses root without -u */
            argv[n++] = "-u";
            argv[n++] = "nobody";
        }
        argv[n] = NULL;
        execv(MEMCACHED_BIN, (char *const *)argv);
        _exit(127);
    }
    for (i = 0; i < 300; i++) {             /* 3 s */
        if (waitpid(pid, &status, WNOHANG) == pid) {
            ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 127,
                          "cannot run " MEMCACHED_BIN);
            return -1;
        }
        if (can_connect(port)) {
            daemons[n_daemons++] = pid;
            return pid;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("memcached on port %d did not start within 3 s", port);
    return -1;
}

/* Start memcached on this port (a restart: the port must be free). */
static pid_t mcd_start(int port)
{
    pid_t pid = mcd_try_start(port);

    ck_assert_msg(pid > 0, "memcached could not start on port %d", port);
    return pid;
}

/* Start memcached on some free port, stored in *port. */
static pid_t mcd_start_free(int *port)
{
    int tries;

    for (tries = 0; tries < 5; tries++) {
        pid_t pid;

        *port = ck_free_port();
        if ((pid = mcd_try_start(*port)) > 0) {
            return pid;
        }
    }
    ck_abort_msg("memcached did not start on any of 5 free ports");
    return -1;
}

/* Kill one memcached (SIGKILL: a crash, no goodbye) and reap it. */
static void mcd_kill(pid_t pid)
{
    int i;

    for (i = 0; i < n_daemons; i++) {
        if (daemons[i] == pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            daemons[i] = daemons[--n_daemons];
            return;
        }
    }
}

/* A TCP listener that completes handshakes (backlog) and never answers. */
static int blackhole_start(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(s, 0);
    ck_assert_int_lt(n_blackholes, MAX_SOCKETS);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s, 64), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    blackholes[n_blackholes++] = s;
    return s;
}

/* A listener whose accept queue is full: new SYNs are dropped, so a
 * connect to it hangs until the client's connect timeout. */
static void synblock_start(int *port)
{
    struct sockaddr_in a;
    int s = blackhole_start(port), i;

    ck_assert_int_eq(listen(s, 0), 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)*port);
    for (i = 0; i < 4; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);

        ck_assert_int_ge(c, 0);
        ck_assert_int_lt(n_blackholes, MAX_SOCKETS);
        blackholes[n_blackholes++] = c;
        fcntl(c, F_SETFL, O_NONBLOCK);
        (void)connect(c, (struct sockaddr *)&a, sizeof(a));
    }
    apr_sleep(apr_time_from_msec(20));
}

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    n_daemons = 0;
    n_blackholes = 0;
}

static void teardown(void)
{
    /* the pool first: its cleanup closes the client connections */
    apr_pool_destroy(pool);
    pool = NULL;
    while (n_daemons > 0) {
        mcd_kill(daemons[0]);
    }
    while (n_blackholes > 0) {
        close(blackholes[--n_blackholes]);
    }
}

/* ======================================================================
 * helpers
 * ==================================================================== */

static const char *servers_cfg(const int *ports, int n)
{
    const char *cfg = "";
    int i;

    for (i = 0; i < n; i++) {
        cfg = apr_psprintf(pool, "%s%s--SERVER=127.0.0.1:%d", cfg,
                           i ? " " : "", ports[i]);
    }
    return cfg;
}

static slb_mc *mc_make(const int *ports, int n, int replicas)
{
    slb_mc_conf c;
    slb_mc *mc = NULL;
    const char *err;

    slb_mc_conf_init(&c);
    c.config = servers_cfg(ports, n);
    c.replicas = replicas;
    c.retry_timeout_s = 1;
    err = slb_mc_check_config(pool, &c);
    ck_assert_msg(err == NULL, "config rejected: %s", err);
    ck_assert_int_eq(slb_mc_create(&mc, pool, &c), APR_SUCCESS);
    ck_assert_ptr_nonnull(mc);
    return mc;
}

static slb_mc *mc_make_async(const int *ports, int n, int replicas)
{
    slb_mc_conf c;
    slb_mc *mc = NULL;

    slb_mc_conf_init(&c);
    c.config = servers_cfg(ports, n);
    c.replicas = replicas;
    c.retry_timeout_s = 1;
    c.write_mode = SLB_MC_WRITE_ASYNC;
    ck_assert_ptr_null(slb_mc_check_config(pool, &c));
    ck_assert_int_eq(slb_mc_create(&mc, pool, &c), APR_SUCCESS);
    return mc;
}

static slb_mc *mc_make_conf(const slb_mc_conf *c)
{
    slb_mc *mc = NULL;
    const char *err = slb_mc_check_config(pool, c);

    ck_assert_msg(err == NULL, "config rejected: %s", err);
    ck_assert_int_eq(slb_mc_create(&mc, pool, c), APR_SUCCESS);
    return mc;
}

static slb_binding binding(const char *route, apr_time_t created)
{
    slb_binding b;

    memset(&b, 0, sizeof(b));
    apr_cpystrn(b.route, route, sizeof(b.route));
    b.created = created;
    return b;
}

static slb_key key_n(const char *prefix, int i)
{
    slb_key k;
    char id[64];

    snprintf(id, sizeof(id), "%s-%d", prefix, i);
    slb_key_make(&k, "check_mc", id, strlen(id));
    return k;
}

/* A plain client of one server (what another program would see). */
static memcached_st *direct(int port)
{
    char cfg[64];
    memcached_st *m;

    snprintf(cfg, sizeof(cfg), "--SERVER=127.0.0.1:%d --BINARY-PROTOCOL",
             port);
    m = memcached(cfg, strlen(cfg));
    ck_assert_ptr_nonnull(m);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 500);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 500);
    return m;
}

/* The raw value of key on the server of port (NULL: not there). */
static char *raw_get(int port, const char *key)
{
    memcached_st *m = direct(port);
    memcached_return_t rc;
    size_t len = 0;
    uint32_t flags;
    char *v = memcached_get(m, key, strlen(key), &len, &flags, &rc), *copy;

    ck_assert_msg(rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND,
                  "direct get on port %d: %s", port,
                  memcached_strerror(m, rc));
    copy = v ? apr_pstrmemdup(pool, v, len) : NULL;
    free(v);
    memcached_free(m);
    return copy;
}

static void raw_set(int port, const char *key, const char *val, size_t len)
{
    memcached_st *m = direct(port);
    memcached_return_t rc = memcached_set(m, key, strlen(key), val, len, 0, 0);

    ck_assert_msg(rc == MEMCACHED_SUCCESS, "direct set: %s",
                  memcached_strerror(m, rc));
    memcached_free(m);
}

static long ms_since(apr_time_t t)
{
    return (long)((apr_time_now() - t) / 1000);
}

/* ======================================================================
 * configuration and value parsing (no server needed)
 * ==================================================================== */

START_TEST(test_conf_defaults)
{
    slb_mc_conf c;

    slb_mc_conf_init(&c);
    ck_assert_ptr_null(c.config);
    ck_assert_int_eq(c.connect_timeout_ms, 50);
    ck_assert_int_eq(c.io_timeout_ms, 50);
    ck_assert_int_eq(c.retry_timeout_s, 2);
    ck_assert_int_eq(c.server_failure_limit, 2);
    ck_assert_int_eq(c.replicas, 0);
    ck_assert_int_eq(c.pool_max, 64);
    ck_assert_int_eq(c.pool_wait_ms, 20);

    /* a good configuration passes, without any server running */
    c.config = "--SERVER=127.0.0.1:1 --SERVER=127.0.0.1:2";
    ck_assert_ptr_null(slb_mc_check_config(pool, &c));
    c.replicas = 1;
    ck_assert_ptr_null(slb_mc_check_config(pool, &c));
    c.config = "--SERVER=cache1.example:11211 --NAMESPACE=\"app1:\"";
    c.replicas = 0;
    ck_assert_ptr_null(slb_mc_check_config(pool, &c));
}
END_TEST

static void assert_rejected(const slb_mc_conf *c, const char *needle)
{
    const char *err = slb_mc_check_config(pool, c);
    slb_mc *mc = (slb_mc *)1;

    ck_assert_msg(err != NULL, "accepted: config \"%s\"",
                  c->config ? c->config : "(null)");
    ck_assert_msg(strstr(err, needle) != NULL,
                  "message \"%s\" does not mention \"%s\"", err, needle);
    ck_assert_int_eq(slb_mc_create(&mc, pool, c), APR_EINVAL);
    ck_assert_ptr_null(mc);
}

START_TEST(test_conf_rejects)
{
    slb_mc_conf c;

    slb_mc_conf_init(&c);
    assert_rejected(&c, "empty");                     /* NULL */
    c.config = "";
    assert_rejected(&c, "empty");
    c.config = "garbage";
    assert_rejected(&c, "invalid memcached configuration");
    c.config = "--SERVER=";
    assert_rejected(&c, "invalid memcached configuration");
    c.config = "--SERVER=127.0.0.1:11211 --NO-SUCH-OPTION";
    assert_rejected(&c, "invalid memcached configuration");
    c.config = "--SERVER=127.0.0.1:11211 --USE-UDP";
    assert_rejected(&c, "UDP");
    c.config = "--SERVER=127.0.0.1:11211";
    c.replicas = 1;
    assert_rejected(&c, "replicas");
    c.replicas = -1;
    assert_rejected(&c, "replicas");

    /* what was expected, and the rewritten string when servers were
     * written bare */
    slb_mc_conf_init(&c);
    c.config = "10.0.0.5:11211";
    assert_rejected(&c, "did you mean \"--SERVER=10.0.0.5:11211\"?");
    ck_assert_str_eq(slb_mc_check_config(pool, &c),
                     "invalid memcached configuration \"10.0.0.5:11211\" "
                     "(libmemcached: syntax error, unexpected IPADDRESS): "
                     "servers are written as options; did you mean "
                     "\"--SERVER=10.0.0.5:11211\"?");
    c.config = "10.0.0.5:11211, cache2.example,10.0.0.7";
    assert_rejected(&c, "did you mean \"--SERVER=10.0.0.5:11211 "
                        "--SERVER=cache2.example --SERVER=10.0.0.7\"?");
    c.config = "--SERVER=10.0.0.5:11211 10.0.0.6:11211 --BINARY-PROTOCOL";
    assert_rejected(&c, "did you mean \"--SERVER=10.0.0.5:11211 "
                        "--SERVER=10.0.0.6:11211 --BINARY-PROTOCOL\"?");
    c.config = "--SERVER=10.0.0.5:11211,--SERVER=10.0.0.6:11211";
    assert_rejected(&c, "did you mean \"--SERVER=10.0.0.5:11211 "
                        "--SERVER=10.0.0.6:11211\"?");
    /* no suggestion that would not parse either, or for other words */
    c.config = "garbage";
    assert_rejected(&c, "did you mean \"--SERVER=garbage\"?");
    c.config = "10.0.0.5:11211 --NO-SUCH-OPTION";
    assert_rejected(&c, "expected libmemcached options separated by "
                        "spaces, one --SERVER=host:port per server, e.g. "
                        "\"--SERVER=10.0.0.5:11211 "
                        "--SERVER=10.0.0.6:11211\"");
    c.config = "10.0.0.5:112110";
    assert_rejected(&c, "expected libmemcached options");
    c.config = "memcached://10.0.0.5";
    assert_rejected(&c, "expected libmemcached options");
    c.config = "/run/memcached/memcached.sock";
    assert_rejected(&c, "expected libmemcached options");
    c.config = "--SERVER=";
    assert_rejected(&c, "expected libmemcached options");
    ck_assert_ptr_null(strstr(slb_mc_check_config(pool, &c), "last_token"));
    ck_assert_ptr_null(strstr(slb_mc_check_config(pool, &c), "0x"));
    ck_assert_ptr_null(strstr(slb_mc_check_config(pool, &c), " -> "));

#define BAD(field, value, word)                                             \
    do {                                                                    \
        slb_mc_conf_init(&c);                                               \
        c.config = "--SERVER=127.0.0.1:11211";                              \
        c.field = (value);                                                  \
        assert_rejected(&c, word);                                          \
    } while (0)
    BAD(connect_timeout_ms, 0, "connect timeout");
    BAD(connect_timeout_ms, -5, "connect timeout");
    BAD(connect_timeout_ms, 60001, "connect timeout");
    BAD(io_timeout_ms, 0, "I/O timeout");
    BAD(io_timeout_ms, -1, "I/O timeout");
    BAD(retry_timeout_s, 0, "retry timeout");
    BAD(server_failure_limit, 0, "failure limit");
    BAD(pool_max, 0, "pool size");
    BAD(pool_wait_ms, -1, "pool wait");
#undef BAD
    ck_assert_ptr_nonnull(slb_mc_check_config(pool, NULL));
}
END_TEST

START_TEST(test_value_parse)
{
    slb_binding b;
    char big[256];

    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(slb_mc_value_parse("1 1700000000 t1", 15, &b), 1);
    ck_assert_str_eq(b.route, "t1");
    ck_assert(b.created == apr_time_from_sec(1700000000));
    ck_assert_int_eq(slb_mc_value_parse("1 0 a", 5, &b), 1);
    ck_assert_str_eq(b.route, "a");
    ck_assert_int_eq(slb_mc_value_parse("1 9223372036854 z", 17, &b), 1);
    ck_assert_str_eq(b.route, "z");
    ck_assert(b.created == apr_time_from_sec(APR_INT64_C(9223372036854)));
    /* only len bytes count: what follows is not read */
    ck_assert_int_eq(slb_mc_value_parse("1 5 node-7GARBAGE", 10, &b), 1);
    ck_assert_str_eq(b.route, "node-7");

    /* route of exactly SLB_MAX_ROUTE_LEN bytes, and one more */
    strcpy(big, "1 12 ");
    memset(big + 5, 'r', SLB_MAX_ROUTE_LEN);
    big[5 + SLB_MAX_ROUTE_LEN] = '\0';
    ck_assert_int_eq(slb_mc_value_parse(big, strlen(big), &b), 1);
    ck_assert_uint_eq(strlen(b.route), SLB_MAX_ROUTE_LEN);
    strcat(big, "r");
    ck_assert_int_eq(slb_mc_value_parse(big, strlen(big), &b), 0);

#define NO(s) ck_assert_int_eq(slb_mc_value_parse(s, sizeof(s) - 1, &b), 0)
    NO("");
    NO("1");
    NO("1 ");
    NO("1 5");
    NO("1 5 ");
    NO("2 5 t1");                       /* unknown version */
    NO("1  5 t1");
    NO("1 -5 t1");
    NO("1 x5 t1");
    NO("1 5x t1");
    NO("1 12345678901234 t1");          /* 14 digits */
    NO("1 9223372036855 t1");           /* beyond apr_time_t */
    NO("1 9999999999999 t1");
    NO("1 5 t1 ");                      /* a space in the route */
    NO("1 5 t 1");
    NO("1 5 t;1");
    NO("1 5 t\"1");
    NO("1 5 t\x01");
    NO("1 5 t\x80");
    NO("1 5 t\0001");
    NO(" 1 5 t1");
    NO("15 t1");
#undef NO
    memset(big, '1', sizeof(big));
    ck_assert_int_eq(slb_mc_value_parse(big, sizeof(big), &b), 0);
    ck_assert_int_eq(slb_mc_value_parse(NULL, 5, &b), 0);
}
END_TEST

/* ======================================================================
 * one server
 * ==================================================================== */

START_TEST(test_basic_ops)
{
    int port;
    slb_mc *mc;
    slb_key k = key_n("basic", 1), k2 = key_n("basic", 2);
    slb_binding b1 = binding("t1", apr_time_from_sec(1700000000));
    slb_binding b2 = binding("t2", 0), got, ex;
    slb_mc_stats st;
    apr_time_t before;

    mcd_start_free(&port);
    mc = mc_make(&port, 1, 0);

    /* get miss */
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_NOTFOUND);

    /* add then get, created kept (in seconds) */
    ck_assert_int_eq(slb_mc_add(mc, &k, &b1, 60, &ex), APR_SUCCESS);
    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t1");
    ck_assert(got.created == apr_time_from_sec(1700000000));
    ck_assert_str_eq(raw_get(port, k.text), "1 1700000000 t1");

    /* add twice: EEXIST and the binding that won */
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(slb_mc_add(mc, &k, &b2, 60, &ex), APR_EEXIST);
    ck_assert_str_eq(ex.route, "t1");
    ck_assert(ex.created == apr_time_from_sec(1700000000));
    ck_assert_int_eq(slb_mc_add(mc, &k, &b2, 60, NULL), APR_EEXIST);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t1");
    /* existing may be the binding offered */
    ex = binding("t3", 0);
    ck_assert_int_eq(slb_mc_add(mc, &k, &ex, 60, &ex), APR_EEXIST);
    ck_assert_str_eq(ex.route, "t1");

    /* set overwrites; created 0 means now */
    before = apr_time_now();
    ck_assert_int_eq(slb_mc_set(mc, &k, &b2, 60), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t2");
    ck_assert(got.created >= apr_time_from_sec(apr_time_sec(before)));
    ck_assert(got.created <= apr_time_now());

    /* touch: a bound key and a missing one */
    ck_assert_int_eq(slb_mc_touch(mc, &k, 120), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_touch(mc, &k2, 120), APR_NOTFOUND);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t2");

    /* delete, then a miss; deleting again is NOTFOUND */
    ck_assert_int_eq(slb_mc_delete(mc, &k), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_NOTFOUND);
    ck_assert_ptr_null(raw_get(port, k.text));
    ck_assert_int_eq(slb_mc_delete(mc, &k), APR_NOTFOUND);

    /* a TTL above 30 days is sent as a date, not as 1970 + TTL */
    ck_assert_int_eq(slb_mc_set(mc, &k2, &b1, 40 * 86400), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &k2, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t1");
    ck_assert_int_eq(slb_mc_add(mc, &k, &b1, 40 * 86400, NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);

    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.gets, 8);
    ck_assert_uint_eq(st.hits, 6);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.adds, 5);
    ck_assert_uint_eq(st.add_conflicts, 3);
    ck_assert_uint_eq(st.sets, 2);
    ck_assert_uint_eq(st.touches, 2);
    ck_assert_uint_eq(st.deletes, 2);
    ck_assert_uint_eq(st.errors, 0);
    ck_assert_uint_eq(st.timeouts, 0);
    ck_assert(st.latency_us_max > 0);
    ck_assert(st.latency_us_total >= st.latency_us_max);
}
END_TEST

START_TEST(test_bad_arguments)
{
    int port;
    slb_mc *mc;
    slb_key k = key_n("args", 1), bad;
    slb_binding got, b = binding("t1", 0);
    slb_mc_stats st;

    mcd_start_free(&port);
    mc = mc_make(&port, 1, 0);

    /* routes that are not routes are refused before any I/O */
    b = binding("", 0);
    ck_assert_int_eq(slb_mc_set(mc, &k, &b, 60), APR_EINVAL);
    b = binding("has space", 0);
    ck_assert_int_eq(slb_mc_add(mc, &k, &b, 60, NULL), APR_EINVAL);
    b = binding("semi;colon", 0);
    ck_assert_int_eq(slb_mc_set(mc, &k, &b, 60), APR_EINVAL);
    memset(b.route, 'x', sizeof(b.route));      /* no NUL at all */
    ck_assert_int_eq(slb_mc_set(mc, &k, &b, 60), APR_EINVAL);
    ck_assert_ptr_null(raw_get(port, k.text));

    /* a key whose text was not made by slb_key_make */
    memset(&bad, 'A', sizeof(bad));             /* no NUL */
    ck_assert_int_eq(slb_mc_get(mc, &bad, &got), APR_EINVAL);
    bad = k;
    bad.text[10] = '\0';
    ck_assert_int_eq(slb_mc_get(mc, &bad, &got), APR_EINVAL);
    ck_assert_int_eq(slb_mc_touch(mc, &bad, 5), APR_EINVAL);
    ck_assert_int_eq(slb_mc_delete(mc, &bad), APR_EINVAL);
    ck_assert_int_eq(slb_mc_get(mc, NULL, &got), APR_EINVAL);
    ck_assert_int_eq(slb_mc_get(mc, &k, NULL), APR_EINVAL);

    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.errors, 10);
}
END_TEST

START_TEST(test_ttl_and_touch)
{
    int port;
    slb_mc *mc;
    slb_key a = key_n("ttl", 1), b = key_n("ttl", 2), c = key_n("ttl", 3);
    slb_binding v = binding("t1", 0), got;

    mcd_start_free(&port);
    mc = mc_make(&port, 1, 0);
    ck_assert_int_eq(slb_mc_add(mc, &a, &v, 1, NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_set(mc, &b, &v, 1), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_set(mc, &c, &v, 0), APR_SUCCESS);  /* no expiry */
    ck_assert_int_eq(slb_mc_touch(mc, &b, 60), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &a, &got), APR_SUCCESS);
    apr_sleep(apr_time_from_msec(2100));
    ck_assert_int_eq(slb_mc_get(mc, &a, &got), APR_NOTFOUND);  /* expired */
    ck_assert_int_eq(slb_mc_get(mc, &b, &got), APR_SUCCESS);   /* touched */
    ck_assert_str_eq(got.route, "t1");
    ck_assert_int_eq(slb_mc_get(mc, &c, &got), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_touch(mc, &a, 60), APR_NOTFOUND);
    /* an expired key can be added again */
    ck_assert_int_eq(slb_mc_add(mc, &a, &v, 60, NULL), APR_SUCCESS);
}
END_TEST

START_TEST(test_malformed_values)
{
    static const char *const garbage[] = {
        "garbage",
        "2 1700000000 t1",
        "1 abc t1",
        "1 1700000000 bad route",
        "1 1700000000 ",
        "1 1700000000 t1\r\n",
        "<script>",
    };
    int port;
    slb_mc *mc;
    slb_binding got, v = binding("good", 0), ex;
    slb_mc_stats st;
    char big[300], longroute[SLB_MAX_ROUTE_LEN + 20];
    size_t i, n = sizeof(garbage) / sizeof(garbage[0]);
    slb_key k;

    mcd_start_free(&port);
    mc = mc_make(&port, 1, 0);
    for (i = 0; i < n; i++) {
        k = key_n("bad", (int)i);
        raw_set(port, k.text, garbage[i], strlen(garbage[i]));
        ck_assert_msg(slb_mc_get(mc, &k, &got) == APR_NOTFOUND,
                      "value \"%s\" was accepted", garbage[i]);
    }
    /* oversized, a NUL inside, a route one byte too long */
    memset(big, 'a', sizeof(big));
    k = key_n("bad", 100);
    raw_set(port, k.text, big, sizeof(big));
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_NOTFOUND);
    k = key_n("bad", 101);
    raw_set(port, k.text, "1 5 t\0x", 7);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_NOTFOUND);
    strcpy(longroute, "1 5 ");
    memset(longroute + 4, 'r', SLB_MAX_ROUTE_LEN + 1);
    longroute[4 + SLB_MAX_ROUTE_LEN + 1] = '\0';
    k = key_n("bad", 102);
    raw_set(port, k.text, longroute, strlen(longroute));
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_NOTFOUND);

    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.malformed, n + 3);
    ck_assert_uint_eq(st.errors, n + 3);
    ck_assert_uint_eq(st.misses, n + 3);
    ck_assert_uint_eq(st.hits, 0);

    /* add over garbage replaces it (compare-and-swap) */
    k = key_n("bad", 0);
    ck_assert_int_eq(slb_mc_add(mc, &k, &v, 60, &ex), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "good");
    /* and a valid binding is then kept */
    v = binding("other", 0);
    ck_assert_int_eq(slb_mc_add(mc, &k, &v, 60, &ex), APR_EEXIST);
    ck_assert_str_eq(ex.route, "good");
}
END_TEST

START_TEST(test_namespace)
{
    int port;
    slb_mc_conf c;
    slb_mc *mc;
    slb_key k = key_n("ns", 1);
    slb_binding v = binding("t9", 0), got;

    mcd_start_free(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d --NAMESPACE=\"lb1:\"",
                            port);
    mc = mc_make_conf(&c);
    ck_assert_int_eq(slb_mc_add(mc, &k, &v, 60, NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t9");
    ck_assert_ptr_null(raw_get(port, k.text));
    ck_assert_ptr_nonnull(raw_get(port, apr_pstrcat(pool, "lb1:", k.text,
                                                    NULL)));
}
END_TEST

/* ======================================================================
 * two balancers
 * ==================================================================== */

#define RACE_KEYS 200

typedef struct {
    slb_mc *mc;
    const char *route;
    volatile apr_uint32_t *ready;
    apr_status_t rv[RACE_KEYS];
    slb_binding ex[RACE_KEYS];
} racer;

static void *APR_THREAD_FUNC race_main(apr_thread_t *t, void *data)
{
    racer *r = data;
    slb_binding b = binding(r->route, 0);
    int i;

    apr_atomic_inc32(r->ready);
    while (apr_atomic_read32(r->ready) < 2) {
        /* start together */
    }
    for (i = 0; i < RACE_KEYS; i++) {
        slb_key k = key_n("race", i);

        memset(&r->ex[i], 0, sizeof(r->ex[i]));
        r->rv[i] = slb_mc_add(r->mc, &k, &b, 60, &r->ex[i]);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(test_two_balancers)
{
    int port;
    slb_mc *lb1, *lb2;
    slb_key k = key_n("shared", 1);
    slb_binding v = binding("t1", 0), got, got2;
    volatile apr_uint32_t ready = 0;
    racer *a = apr_pcalloc(pool, sizeof(*a));
    racer *b = apr_pcalloc(pool, sizeof(*b));
    apr_thread_t *ta, *tb;
    apr_status_t trv;
    int i, wins_a = 0, wins_b = 0;

    mcd_start_free(&port);
    lb1 = mc_make(&port, 1, 0);
    lb2 = mc_make(&port, 1, 0);

    /* a session bound through one balancer is seen by the other */
    ck_assert_int_eq(slb_mc_add(lb1, &k, &v, 60, NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(lb2, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t1");
    /* a rebinding after failover too */
    v = binding("t2", 0);
    ck_assert_int_eq(slb_mc_set(lb2, &k, &v, 60), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(lb1, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t2");

    /* both see new sessions at once: one add wins, both agree */
    a->mc = lb1;
    a->route = "ra";
    a->ready = &ready;
    b->mc = lb2;
    b->route = "rb";
    b->ready = &ready;
    ck_assert_int_eq(apr_thread_create(&ta, NULL, race_main, a, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(apr_thread_create(&tb, NULL, race_main, b, pool),
                     APR_SUCCESS);
    apr_thread_join(&trv, ta);
    apr_thread_join(&trv, tb);
    for (i = 0; i < RACE_KEYS; i++) {
        const char *winner;

        k = key_n("race", i);
        ck_assert_msg((a->rv[i] == APR_SUCCESS && b->rv[i] == APR_EEXIST)
                      || (a->rv[i] == APR_EEXIST && b->rv[i] == APR_SUCCESS),
                      "key %d: balancer 1 got %d, balancer 2 got %d", i,
                      a->rv[i], b->rv[i]);
        if (a->rv[i] == APR_SUCCESS) {
            wins_a++;
            winner = "ra";
            ck_assert_str_eq(b->ex[i].route, "ra");
        }
        else {
            wins_b++;
            winner = "rb";
            ck_assert_str_eq(a->ex[i].route, "rb");
        }
        ck_assert_int_eq(slb_mc_get(lb1, &k, &got), APR_SUCCESS);
        ck_assert_int_eq(slb_mc_get(lb2, &k, &got2), APR_SUCCESS);
        ck_assert_str_eq(got.route, winner);
        ck_assert_str_eq(got2.route, winner);
    }
    ck_assert_int_eq(wins_a + wins_b, RACE_KEYS);
}
END_TEST

#define POOL_THREADS 8
#define POOL_OPS 150

typedef struct {
    slb_mc *mc;
    int id;
    int failures;
} worker;

static void *APR_THREAD_FUNC pool_main(apr_thread_t *t, void *data)
{
    worker *w = data;
    char route[16];
    int i;

    snprintf(route, sizeof(route), "w%d", w->id);
    for (i = 0; i < POOL_OPS; i++) {
        slb_key k = key_n(route, i);
        slb_binding b = binding(route, 0), got;

        if (slb_mc_set(w->mc, &k, &b, 60) != APR_SUCCESS
            || slb_mc_get(w->mc, &k, &got) != APR_SUCCESS
            || strcmp(got.route, route) != 0) {
            w->failures++;
        }
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(test_threads_share_small_pool)
{
    int port;
    slb_mc_conf c;
    slb_mc *mc;
    worker w[POOL_THREADS];
    apr_thread_t *t[POOL_THREADS];
    apr_status_t trv;
    slb_mc_stats st;
    int i;

    mcd_start_free(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    c.pool_max = 2;                 /* 8 threads, 2 connections */
    c.pool_wait_ms = 5000;
    c.io_timeout_ms = 1000;
    mc = mc_make_conf(&c);
    for (i = 0; i < POOL_THREADS; i++) {
        w[i].mc = mc;
        w[i].id = i;
        w[i].failures = 0;
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, pool_main, &w[i],
                                           pool), APR_SUCCESS);
    }
    for (i = 0; i < POOL_THREADS; i++) {
        apr_thread_join(&trv, t[i]);
        ck_assert_int_eq(w[i].failures, 0);
    }
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.sets, POOL_THREADS * POOL_OPS);
    ck_assert_uint_eq(st.hits, POOL_THREADS * POOL_OPS);
    ck_assert_uint_eq(st.errors, 0);
    ck_assert_uint_eq(st.pool_exhausted, 0);
}
END_TEST

/* Handles made with the client (pool_start, the glue's threads per
 * child): all of them, one, or a count out of range (taken as 1; libmemcached
 * refuses a pool that starts bigger than its maximum), sync and quiet;
 * the threads share them as before. */
START_TEST(test_pool_start)
{
    static const int starts[] = { 2, 1, 0, 3, -1 };
    int port, i, j, mode;

    mcd_start_free(&port);
    for (mode = SLB_MC_WRITE_SYNC; mode <= SLB_MC_WRITE_QUIET; mode++) {
        for (j = 0; j < (int)(sizeof(starts) / sizeof(starts[0])); j++) {
            slb_mc_conf c;
            slb_mc *mc;
            slb_mc_stats st;
            worker w[POOL_THREADS];
            apr_thread_t *t[POOL_THREADS];
            apr_status_t trv;

            slb_mc_conf_init(&c);
            c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
            c.pool_max = 2;
            c.pool_start = starts[j];
            c.pool_wait_ms = 5000;
            c.io_timeout_ms = 1000;
            c.write_mode = mode;
            mc = mc_make_conf(&c);
            for (i = 0; i < POOL_THREADS; i++) {
                w[i].mc = mc;
                w[i].id = i;
                w[i].failures = 0;
                ck_assert_int_eq(apr_thread_create(&t[i], NULL, pool_main,
                                                   &w[i], pool),
                                 APR_SUCCESS);
            }
            for (i = 0; i < POOL_THREADS; i++) {
                apr_thread_join(&trv, t[i]);
                ck_assert_int_eq(w[i].failures, 0);
            }
            slb_mc_stats_get(mc, &st);
            ck_assert_uint_eq(st.hits, POOL_THREADS * POOL_OPS);
            ck_assert_uint_eq(st.errors, 0);
            ck_assert_uint_eq(st.pool_exhausted, 0);
        }
    }
}
END_TEST

/* ======================================================================
 * two servers: distribution and replicas
 * ==================================================================== */

#define SPREAD_KEYS 200


START_TEST(test_replica_read_on_miss)
{
    /* a binding on one server only (written while the other was away,
     * which came back empty): found whichever is the key's server */
    int ports[2], i, side, found = 0;
    slb_mc *mc;
    slb_mc_stats st;

    mcd_start_free(&ports[0]);
    mcd_start_free(&ports[1]);
    mc = mc_make(ports, 2, 1);
    for (side = 0; side < 2; side++) {
        for (i = 0; i < 20; i++) {
            slb_key k = key_n(side ? "only-b" : "only-a", i);
            slb_binding got;

            raw_set(ports[side], k.text, "1 1700000000 t2", 15);
            memset(&got, 0, sizeof(got));
            if (slb_mc_get(mc, &k, &got) == APR_SUCCESS
                && !strcmp(got.route, "t2")) {
                found++;
            }
        }
    }
    ck_assert_int_eq(found, 40);
    slb_mc_stats_get(mc, &st);
    /* about half the keys have the other server as theirs */
    ck_assert_msg(st.replica_hits >= 5 && st.replica_hits <= 35,
                  "%" APR_UINT64_T_FMT " of 40 read from the replica",
                  st.replica_hits);
    ck_assert_uint_eq(st.hits, 40);
    ck_assert_uint_eq(st.errors, 0);
    /* repaired: a binding read from the replica was added back to its
     * key's server, so exactly those are on both servers now */
    {
        apr_uint64_t both = 0;

        for (side = 0; side < 2; side++) {
            for (i = 0; i < 20; i++) {
                slb_key k = key_n(side ? "only-b" : "only-a", i);
                both += raw_get(ports[0], k.text) && raw_get(ports[1], k.text);
            }
        }
        ck_assert_uint_eq(both, st.replica_hits);
    }
    /* a key on neither: a miss after both were asked */
    {
        slb_key k = key_n("nowhere", 1);
        slb_binding got;
        ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_NOTFOUND);
    }
    fprintf(stderr, "check_mc: replica read on a miss: %" APR_UINT64_T_FMT
            " of 40 found on the replica\n", st.replica_hits);
}
END_TEST


START_TEST(test_replica_newer_wins)
{
    /* the key's server came back with what it held before it was cut
     * off, while the session was re-pinned on the replica: the more
     * recent binding wins, whichever server holds it, and the key's
     * server is repaired */
    int ports[2], i, side, fresh = 0;
    slb_mc *mc;
    slb_mc_stats st;

    mcd_start_free(&ports[0]);
    mcd_start_free(&ports[1]);
    mc = mc_make(ports, 2, 1);
    for (side = 0; side < 2; side++) {
        for (i = 0; i < 20; i++) {
            slb_key k = key_n(side ? "newer-b" : "newer-a", i);

            raw_set(ports[0], k.text, "1 1700000000 t2", 15);
            raw_set(ports[1], k.text, "1 1700000000 t2", 15);
            raw_set(ports[side], k.text, "1 1700000100 t1", 15);
        }
    }
    for (side = 0; side < 2; side++) {
        for (i = 0; i < 20; i++) {
            slb_key k = key_n(side ? "newer-b" : "newer-a", i);
            slb_binding got;

            memset(&got, 0, sizeof(got));
            ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
            fresh += !strcmp(got.route, "t1");
            /* and again: the key's server has it now */
            ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
            ck_assert_str_eq(got.route, "t1");
        }
    }
    ck_assert_int_eq(fresh, 40);
    slb_mc_stats_get(mc, &st);
    /* about half had the fresher binding on the replica, once each */
    ck_assert_msg(st.replica_hits >= 5 && st.replica_hits <= 35,
                  "%" APR_UINT64_T_FMT " replica hits", st.replica_hits);
    ck_assert_uint_eq(st.errors, 0);
}
END_TEST

START_TEST(test_consistent_hashing)
{
    int ports[2], rev[2];
    slb_mc *mc, *other;
    slb_binding got;
    int i, on[2] = { 0, 0 };

    mcd_start_free(&ports[0]);
    mcd_start_free(&ports[1]);
    mc = mc_make(ports, 2, 0);
    for (i = 0; i < SPREAD_KEYS; i++) {
        slb_key k = key_n("spread", i);
        slb_binding b = binding("t1", 0);

        ck_assert_int_eq(slb_mc_set(mc, &k, &b, 60), APR_SUCCESS);
    }
    /* each key is on exactly one server, and both servers hold some */
    for (i = 0; i < SPREAD_KEYS; i++) {
        slb_key k = key_n("spread", i);
        int a = raw_get(ports[0], k.text) != NULL;
        int b = raw_get(ports[1], k.text) != NULL;

        ck_assert_msg(a + b == 1, "key %d is on %d servers", i, a + b);
        on[0] += a;
        on[1] += b;
    }
    ck_assert_int_eq(on[0] + on[1], SPREAD_KEYS);
    ck_assert_msg(on[0] >= SPREAD_KEYS / 5 && on[1] >= SPREAD_KEYS / 5,
                  "poor spread: %d / %d", on[0], on[1]);

    /* another balancer listing the servers in the other order maps every
     * key to the same server */
    rev[0] = ports[1];
    rev[1] = ports[0];
    other = mc_make(rev, 2, 0);
    for (i = 0; i < SPREAD_KEYS; i++) {
        slb_key k = key_n("spread", i);

        ck_assert_int_eq(slb_mc_get(other, &k, &got), APR_SUCCESS);
    }
}
END_TEST

START_TEST(test_replicas_survive_server_loss)
{
    int ports[2];
    pid_t pids[2];
    slb_mc *mc;
    slb_binding got;
    slb_mc_stats st;
    int i;

    pids[0] = mcd_start_free(&ports[0]);
    pids[1] = mcd_start_free(&ports[1]);
    mc = mc_make(ports, 2, 1);
    /* half the bindings made by add, half by set */
    for (i = 0; i < SPREAD_KEYS; i++) {
        slb_key k = key_n("repl", i);
        slb_binding b = binding(i % 2 ? "odd" : "even", 0);

        if (i < SPREAD_KEYS / 2) {
            ck_assert_int_eq(slb_mc_add(mc, &k, &b, 60, NULL), APR_SUCCESS);
        }
        else {
            ck_assert_int_eq(slb_mc_set(mc, &k, &b, 60), APR_SUCCESS);
        }
    }
    /* every binding is on both servers */
    for (i = 0; i < SPREAD_KEYS; i++) {
        slb_key k = key_n("repl", i);

        ck_assert_msg(raw_get(ports[0], k.text) != NULL
                      && raw_get(ports[1], k.text) != NULL,
                      "binding %d is not replicated", i);
    }
    /* lose one server: every binding still readable */
    mcd_kill(pids[0]);
    for (i = 0; i < SPREAD_KEYS; i++) {
        slb_key k = key_n("repl", i);
        apr_status_t rv = slb_mc_get(mc, &k, &got);

        ck_assert_msg(rv == APR_SUCCESS, "binding %d lost (%d)", i, rv);
        ck_assert_str_eq(got.route, i % 2 ? "odd" : "even");
    }
    /* and new sessions can still be bound */
    for (i = 0; i < 20; i++) {
        slb_key k = key_n("after", i);
        slb_binding b = binding("t3", 0);

        ck_assert_int_eq(slb_mc_add(mc, &k, &b, 60, NULL), APR_SUCCESS);
        ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
        ck_assert_str_eq(got.route, "t3");
    }
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.hits, SPREAD_KEYS + 20);
}
END_TEST

/* ======================================================================
 * failures: dead server, black hole, recovery, pool exhaustion
 * ==================================================================== */

/* Whether pid is stopped (state T in /proc/pid/stat) within 1 s. */
static int wait_stopped(pid_t pid)
{
    char path[64], buf[256];
    int i;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (i = 0; i < 100; i++) {
        FILE *f = fopen(path, "r");
        char *p;

        if (f == NULL) {
            return 0;
        }
        buf[0] = '\0';
        if (fgets(buf, sizeof(buf), f) == NULL) {
            buf[0] = '\0';
        }
        fclose(f);
        p = strrchr(buf, ')');
        if (p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't')) {
            return 1;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}

/* A server slow for a moment (stopped 150 ms: one call times out) is
 * used again by the very next call: its late reply must not be taken for
 * the answer to a later call on the same connection, and the hold after
 * the timeout (failure limit 1) ends at the first trial. */
START_TEST(test_slow_moment_recovers_at_once)
{
    int port, i, ok = 0;
    pid_t pid;
    slb_mc_conf c;
    slb_mc *mc;
    slb_binding got;
    char first[64] = "";
    apr_status_t rv;

    pid = mcd_start_free(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    c.io_timeout_ms = 50;
    c.connect_timeout_ms = 50;
    c.retry_timeout_s = 1;
    c.server_failure_limit = 1;
    mc = mc_make_conf(&c);
    for (i = 0; i < 20; i++) {
        slb_key k = key_n("slow", i);
        slb_binding v = binding(i % 2 ? "t1" : "t2", 0);

        ck_assert_int_eq(slb_mc_set(mc, &k, &v, 60), APR_SUCCESS);
    }
    kill(pid, SIGSTOP);
    ck_assert_msg(wait_stopped(pid), "memcached did not stop");
    {
        slb_key k = key_n("slow", 0);

        rv = slb_mc_get(mc, &k, &got);
    }
    apr_sleep(apr_time_from_msec(100));
    kill(pid, SIGCONT);
    ck_assert_int_eq(rv, APR_TIMEUP);
    for (i = 0; i < 20; i++) {
        slb_key k = key_n("slow", i);

        rv = slb_mc_get(mc, &k, &got);
        if (rv == APR_SUCCESS && strcmp(got.route, i % 2 ? "t1" : "t2") == 0) {
            ok++;
        }
        else if (!first[0]) {
            apr_snprintf(first, sizeof(first), "get %d: status %d", i, rv);
        }
    }
    ck_assert_msg(ok == 20, "after a slow moment %d of 20 gets found their "
                  "binding (first wrong: %s)", ok, first);
    mcd_kill(pid);
}
END_TEST

/* Two processes' views of two servers (two slb_mc: two balancers), and
 * keys whose home is server B: one balancer leaves B out (it saw B fail),
 * the other did not see anything happen; what either binds, the other
 * finds (the recovery window). */
static int index_of_port(slb_mc *mc, int port)
{
    apr_array_header_t *a = slb_mc_servers(mc, pool);
    int i;

    for (i = 0; i < a->nelts; i++) {
        if (APR_ARRAY_IDX(a, i, slb_mc_server).port == port) {
            return i;
        }
    }
    return -1;
}

/* the next key from *n on whose home is server `home` */
static slb_key key_on(slb_mc *mc, int home, int *n)
{
    slb_key k;

    do {
        k = key_n("win", (*n)++);
    } while (slb_mc_key_home(mc, &k) != home && *n < 100000);
    return k;
}

START_TEST(test_window_two_balancers)
{
    int pa, pb, b, n = 0;
    pid_t pida, pidb;
    slb_mc_conf c;
    slb_mc *lb1, *lb2;
    slb_binding got, v1 = binding("t1", 0), v2 = binding("t2", 0);
    slb_key k;
    slb_mc_stats st1, st2;
    char *raw;

    pida = mcd_start_free(&pa);
    pidb = mcd_start_free(&pb);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d "
                            "--SERVER=127.0.0.1:%d", pa, pb);
    c.retry_timeout_s = 1;
    c.server_failure_limit = 1;
    lb1 = mc_make_conf(&c);
    lb2 = mc_make_conf(&c);
    b = index_of_port(lb1, pb);
    ck_assert_int_ge(b, 0);
    k = key_on(lb1, b, &n);
    ck_assert_int_eq(slb_mc_set(lb1, &k, &v1, 60), APR_SUCCESS);
    ck_assert_ptr_nonnull(raw = raw_get(pb, k.text));
    ck_assert_int_eq(slb_mc_get(lb2, &k, &got), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_in_window(lb1), 0);

    /* 1. B restarts (empty): lb2 sees it fail and leaves it out, lb1 saw
     * nothing; lb1 binds a new key of B's on B (its connection to B
     * broke, so lb1 knows B restarted: its window opens); lb2, which
     * still leaves B out and looks on A, finds it at once */
    mcd_kill(pidb);
    ck_assert_int_ne(slb_mc_get(lb2, &k, &got), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_in_window(lb2), 1);
    pidb = mcd_start(pb);
    k = key_on(lb1, b, &n);
    ck_assert_int_eq(slb_mc_add(lb1, &k, &v2, 60, NULL), APR_SUCCESS);
    ck_assert_ptr_nonnull(raw = raw_get(pb, k.text));
    ck_assert_int_eq(slb_mc_in_window(lb1), 1);
    ck_assert_int_eq(slb_mc_get(lb2, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t2");

    /* 2. B down for real; lb2 binds a key of B's (on A, its fallback);
     * B comes back empty; lb1 finds the binding on the fallback */
    mcd_kill(pidb);
    k = key_on(lb1, b, &n);
    ck_assert_int_ne(slb_mc_get(lb2, &k, &got), APR_SUCCESS);
    k = key_on(lb1, b, &n);
    ck_assert_int_eq(slb_mc_add(lb2, &k, &v1, 60, NULL), APR_SUCCESS);
    ck_assert_ptr_nonnull(raw = raw_get(pa, k.text));
    pidb = mcd_start(pb);
    ck_assert_int_eq(slb_mc_get(lb1, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t1");

    /* 3. both agree on new keys whoever binds first: lb2 still leaves
     * B out until a call needs it; keys of B's bound by either one */
    {
        int i, agree = 0;

        for (i = 0; i < 20; i++) {
            slb_mc *w = i % 2 ? lb1 : lb2, *r = i % 2 ? lb2 : lb1;
            slb_binding v = binding(i % 3 ? "t1" : "t3", 0);

            k = key_on(lb1, b, &n);
            ck_assert_int_eq(slb_mc_add(w, &k, &v, 60, NULL), APR_SUCCESS);
            agree += slb_mc_get(r, &k, &got) == APR_SUCCESS
                     && strcmp(got.route, v.route) == 0;
        }
        ck_assert_int_eq(agree, 20);
    }

    slb_mc_stats_get(lb1, &st1);
    slb_mc_stats_get(lb2, &st2);
    fprintf(stderr, "check_mc: window: lb1 %" APR_UINT64_T_FMT " reads %"
            APR_UINT64_T_FMT " hits %" APR_UINT64_T_FMT " copies, lb2 %"
            APR_UINT64_T_FMT " reads %" APR_UINT64_T_FMT " hits %"
            APR_UINT64_T_FMT " copies, %" APR_UINT64_T_FMT " trials\n",
            st1.window_reads, st1.window_hits, st1.window_writes,
            st2.window_reads, st2.window_hits, st2.window_writes,
            st2.trials);
    ck_assert_uint_ge(st1.window_hits + st2.window_hits, 1);
    mcd_kill(pida);
    mcd_kill(pidb);
}
END_TEST

START_TEST(test_dead_server_is_fast_and_recovers)
{
    int port, i;
    pid_t pid;
    slb_mc_conf c;
    slb_mc *mc;
    slb_key k = key_n("dead", 1);
    slb_binding v = binding("t1", 0), got;
    long bound = 50 + 50 + slack_ms(), worst = 0;
    apr_array_header_t *srv;
    apr_time_t t0, killed;
    apr_status_t rv = APR_EGENERAL;
    slb_mc_stats st;

    pid = mcd_start_free(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    c.retry_timeout_s = 1;
    mc = mc_make_conf(&c);
    ck_assert_int_eq(slb_mc_set(mc, &k, &v, 60), APR_SUCCESS);
    srv = slb_mc_servers(mc, pool);
    ck_assert_int_eq(srv->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(srv, 0, slb_mc_server).up, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(srv, 0, slb_mc_server).port, port);

    mcd_kill(pid);
    killed = apr_time_now();
    for (i = 0; i < 10; i++) {
        long ms;

        t0 = apr_time_now();
        switch (i % 5) {
        case 0: rv = slb_mc_get(mc, &k, &got); break;
        case 1: rv = slb_mc_add(mc, &k, &v, 60, NULL); break;
        case 2: rv = slb_mc_set(mc, &k, &v, 60); break;
        case 3: rv = slb_mc_touch(mc, &k, 60); break;
        default: rv = slb_mc_delete(mc, &k); break;
        }
        ms = ms_since(t0);
        worst = ms > worst ? ms : worst;
        ck_assert_msg(rv != APR_SUCCESS && rv != APR_EEXIST,
                      "call %d succeeded on a dead server", i);
        ck_assert_msg(ms < bound, "call %d took %ld ms (bound %ld)", i, ms,
                      bound);
    }
    fprintf(stderr, "check_mc: dead server: slowest of 10 calls %ld ms\n",
            worst);
    srv = slb_mc_servers(mc, pool);
    ck_assert_int_eq(APR_ARRAY_IDX(srv, 0, slb_mc_server).up, 0);
    /* the calls that asked it (the ones before the hold, and trials);
     * the calls that failed at once while it was held did not */
    ck_assert_uint_ge(APR_ARRAY_IDX(srv, 0, slb_mc_server).failures, 2);
    ck_assert_uint_le(APR_ARRAY_IDX(srv, 0, slb_mc_server).failures, 10);
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.errors, 10);

    /* restart on the same port: the same slb_mc uses it again once the
     * retry timeout (1 s, whole seconds in libmemcached) has passed */
    mcd_start(port);
    rv = APR_EGENERAL;
    while (ms_since(killed) < 4000) {
        rv = slb_mc_set(mc, &k, &v, 60);
        if (rv == APR_SUCCESS) {
            break;
        }
        apr_sleep(apr_time_from_msec(100));
    }
    ck_assert_msg(rv == APR_SUCCESS, "no recovery 4 s after the failure "
                  "(last status %d)", rv);
    fprintf(stderr, "check_mc: dead server: recovered %ld ms after the "
            "failure\n", ms_since(killed));
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t1");
    srv = slb_mc_servers(mc, pool);
    ck_assert_int_eq(APR_ARRAY_IDX(srv, 0, slb_mc_server).up, 1);
}
END_TEST

typedef struct {
    slb_mc *mc;
    volatile apr_uint32_t started;
    apr_status_t rv;
} trial_arg;

static void *APR_THREAD_FUNC trial_main(apr_thread_t *t, void *data)
{
    trial_arg *a = data;
    slb_key k = key_n("hole", 1);
    slb_binding got;

    apr_atomic_set32(&a->started, 1);
    a->rv = slb_mc_get(a->mc, &k, &got);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(test_blackhole_times_out)
{
    int port, i;
    slb_mc_conf c;
    slb_mc *mc;
    slb_key k = key_n("hole", 1);
    slb_binding v = binding("t1", 0), got;
    long bound = 50 + 50 + slack_ms(), ms, worst = 0, first;
    apr_time_t t0;
    apr_status_t rv;
    slb_mc_stats st;

    blackhole_start(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    c.retry_timeout_s = 1;
    mc = mc_make_conf(&c);

    t0 = apr_time_now();
    rv = slb_mc_get(mc, &k, &got);
    first = ms_since(t0);
    ck_assert_int_eq(rv, APR_TIMEUP);
    ck_assert_msg(first < bound, "get took %ld ms (bound %ld)", first, bound);
    ck_assert_msg(first >= 40, "get returned after %ld ms, before the I/O "
                  "timeout: no request was waited for", first);
    /* after server_failure_limit (2) failures in a row the black hole is
     * held: one call at a time asks it (a trial, which times out), the
     * calls made meanwhile fail at once; trials are spaced out once two
     * in a row failed */
    for (i = 0; i < 4; i++) {
        t0 = apr_time_now();
        rv = i % 2 ? slb_mc_set(mc, &k, &v, 60)
                   : slb_mc_add(mc, &k, &v, 60, NULL);
        ms = ms_since(t0);
        worst = ms > worst ? ms : worst;
        ck_assert_msg(rv != APR_SUCCESS, "write %d succeeded", i);
        ck_assert_msg(ms < bound, "call %d took %ld ms (bound %ld)", i, ms,
                      bound);
    }
    /* a first failed trial leaves the next free at once, the second makes
     * the next wait 50 ms: meanwhile every call fails at once */
    t0 = apr_time_now();
    for (i = 0; i < 3; i++) {
        ck_assert_int_ne(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    }
    ck_assert_msg(ms_since(t0) < fast_ms(), "3 calls after 2 failed trials "
                  "took %ld ms", ms_since(t0));
    apr_sleep(apr_time_from_msec(60));
    {
        trial_arg ta = { mc, 0, 0 };
        apr_thread_t *th;
        apr_status_t trv;
        int fast = 0;

        ck_assert_int_eq(apr_thread_create(&th, NULL, trial_main, &ta, pool),
                         APR_SUCCESS);
        /* while the thread's trial waits for the hole (50 ms) */
        while (!apr_atomic_read32(&ta.started)) {
            apr_sleep(1000);
        }
        apr_sleep(apr_time_from_msec(10));
        t0 = apr_time_now();
        for (i = 0; i < 5; i++) {
            apr_time_t t1 = apr_time_now();

            ck_assert_int_ne(slb_mc_get(mc, &k, &got), APR_SUCCESS);
            fast += ms_since(t1) < fast_ms();
        }
        ms = ms_since(t0);
        apr_thread_join(&trv, th);
        ck_assert_int_eq(ta.rv, APR_TIMEUP);
        ck_assert_msg(fast == 5, "during a trial %d of 5 calls failed at "
                      "once (%ld ms)", fast, ms);
    }
    fprintf(stderr, "check_mc: black hole: first call %ld ms, slowest %ld "
            "ms, held: 5 calls during a trial in %ld ms\n", first, worst,
            ms);
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.timeouts, 5);
    ck_assert_uint_eq(st.errors, 14);
    ck_assert_uint_ge(st.trials, 3);
    ck_assert_int_eq(APR_ARRAY_IDX(slb_mc_servers(mc, pool), 0,
                                   slb_mc_server).up, 0);
}
END_TEST

START_TEST(test_blackhole_with_live_server)
{
    /* one live server and one black hole: keys on the live one keep
     * working; a call on the hole times out within the bound and is
     * tried again on the live server at once (the hole is left out of the
     * handle), so no call fails */
    int ports[2], i, ok = 0, failed = 0;
    slb_mc *mc;
    long bound = 50 + 50 + slack_ms();

    mcd_start_free(&ports[0]);
    blackhole_start(&ports[1]);
    mc = mc_make(ports, 2, 0);
    for (i = 0; i < 40; i++) {
        slb_key k = key_n("half", i);
        slb_binding b = binding("t1", 0), got;
        apr_time_t t0 = apr_time_now();
        apr_status_t rv = slb_mc_set(mc, &k, &b, 60);
        long ms = ms_since(t0);

        ck_assert_msg(ms < bound, "set %d took %ld ms", i, ms);
        if (rv == APR_SUCCESS) {
            ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
            ok++;
        }
        else {
            failed++;
        }
    }
    ck_assert_int_eq(ok, 40);
    ck_assert_int_eq(failed, 0);
}
END_TEST

typedef struct {
    slb_mc *mc;
    apr_status_t rv;
} slow_call;

static void *APR_THREAD_FUNC slow_main(apr_thread_t *t, void *data)
{
    slow_call *s = data;
    slb_key k = key_n("slow", 1);
    slb_binding got;

    s->rv = slb_mc_get(s->mc, &k, &got);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(test_pool_exhausted)
{
    int port;
    slb_mc_conf c;
    slb_mc *mc;
    slow_call s;
    apr_thread_t *t;
    apr_status_t trv, rv;
    slb_key k = key_n("slow", 2);
    slb_binding got;
    apr_time_t t0;
    long ms;
    slb_mc_stats st;

    blackhole_start(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    c.pool_max = 1;
    c.io_timeout_ms = 400;              /* the only slot stays lent */
    c.pool_wait_ms = 20;
    mc = mc_make_conf(&c);
    s.mc = mc;
    s.rv = APR_SUCCESS;
    ck_assert_int_eq(apr_thread_create(&t, NULL, slow_main, &s, pool),
                     APR_SUCCESS);
    apr_sleep(apr_time_from_msec(100));
    t0 = apr_time_now();
    rv = slb_mc_get(mc, &k, &got);
    ms = ms_since(t0);
    ck_assert_int_eq(rv, APR_EAGAIN);
    ck_assert_msg(ms >= 15 && ms < 20 + slack_ms(),
                  "waited %ld ms for a pool slot (pool_wait 20 ms)", ms);
    apr_thread_join(&trv, t);
    ck_assert_int_eq(s.rv, APR_TIMEUP);
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.pool_exhausted, 1);
    ck_assert_uint_eq(st.errors, 2);
    ck_assert_uint_eq(st.timeouts, 1);
}
END_TEST

START_TEST(test_connect_timeout_bounded)
{
    /* SYNs dropped: the connect timeout (50 ms) ends the call */
    int port;
    slb_mc_conf c;
    slb_mc *mc;
    slb_key k = key_n("syn", 1);
    slb_binding got, v = binding("t1", 0);
    apr_time_t t0;
    long ms, ms2;

    synblock_start(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    mc = mc_make_conf(&c);
    t0 = apr_time_now();
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_TIMEUP);
    ms = ms_since(t0);
    ck_assert_msg(ms >= 40 && ms < 50 + 50 + slack_ms(),
                  "get took %ld ms", ms);
    /* server_failure_limit (2) failures hold it; then trials, one at a
     * time: the first failed one leaves the next free, after the second
     * the next waits 50 ms; so within 4 calls one fails at once */
    {
        int slow = 0, i;

        for (i = 0; i < 6; i++) {
            t0 = apr_time_now();
            ck_assert_int_ne(slb_mc_set(mc, &k, &v, 60), APR_SUCCESS);
            ms2 = ms_since(t0);
            ck_assert_msg(ms2 < 50 + 50 + slack_ms(), "call %d took %ld ms",
                          i, ms2);
            if (ms2 < fast_ms()) {
                break;
            }
            slow++;
        }
        ck_assert_msg(i < 6 && slow <= 4, "%d calls waited for the "
                      "SYN-dropping server before one failed at once", slow);
        fprintf(stderr, "check_mc: SYN-dropping server: %ld ms, %d more "
                "waited, then %ld ms\n", ms, slow, ms2);
    }
}
END_TEST


/* ======================================================================
 * the writer thread (slb_mc_publish)
 * ==================================================================== */

/* Poll until every key of prefix 0..n-1 is on the server of port with
 * route `route`, for at most ms; the milliseconds it took, -1 if not. */
static long wait_published(int port, const char *prefix, int n,
                           const char *route, long ms)
{
    apr_time_t t0 = apr_time_now();
    memcached_st *m = direct(port);
    int i = 0;

    while (i < n && ms_since(t0) < ms) {
        slb_key k = key_n(prefix, i);
        memcached_return_t rc;
        size_t len = 0;
        uint32_t flags;
        char *v = memcached_get(m, k.text, strlen(k.text), &len, &flags, &rc);
        slb_binding b;

        if (v && slb_mc_value_parse(v, len, &b) && !strcmp(b.route, route)) {
            i++;
        }
        else {
            apr_sleep(apr_time_from_msec(1));
        }
        free(v);
    }
    memcached_free(m);
    return i == n ? ms_since(t0) : -1;
}


START_TEST(test_set_quiet)
{
    int port, i;
    pid_t pid;
    slb_mc *mc;
    slb_key k = key_n("quiet", 0);
    slb_binding b = binding("t2", apr_time_from_sec(1700000000)), got;
    slb_mc_stats st;
    long ms, worst = 0;
    apr_time_t t0;

    pid = mcd_start_free(&port);
    mc = mc_make(&port, 1, 0);
    ck_assert_int_eq(slb_mc_set_quiet(mc, &k, &b, 60), APR_SUCCESS);
    /* written before the call returned: another connection reads it */
    ck_assert_msg(wait_published(port, "quiet", 1, "t2", 1000) >= 0,
                  "a quiet set did not reach memcached");
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t2");
    ck_assert(got.created == apr_time_from_sec(1700000000));
    /* interleaved with replying calls, whose replies stay matched (quiet
     * requests have connections of their own); memcached reads each
     * connection on its own, so a quiet write is visible to others once
     * memcached got to it: waited for, bounded */
    for (i = 1; i < 100; i++) {
        slb_key ki = key_n("quiet", i);
        slb_binding bi = binding(i % 2 ? "t1" : "t3", 0);
        slb_key absent = key_n("absent", i);

        ck_assert_int_eq(slb_mc_set_quiet(mc, &ki, &bi, 60), APR_SUCCESS);
        ck_assert_int_eq(slb_mc_get(mc, &absent, &got), APR_NOTFOUND);
        t0 = apr_time_now();
        while (slb_mc_get(mc, &ki, &got) != APR_SUCCESS && ms_since(t0) < 500) {
            apr_sleep(200);
        }
        worst = ms_since(t0) > worst ? ms_since(t0) : worst;
        ck_assert_int_eq(slb_mc_add(mc, &ki, &b, 60, &got), APR_EEXIST);
        ck_assert_str_eq(got.route, i % 2 ? "t1" : "t3");
    }
    fprintf(stderr, "check_mc: quiet set: visible to another connection "
            "within %ld ms (worst of 99)\n", worst);
    ck_assert_msg(worst < fast_ms(), "a quiet set took %ld ms to be seen",
                  worst);
    worst = 0;
    ck_assert_int_eq(slb_mc_set_quiet(mc, &k, NULL, 60), APR_EINVAL);
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.errors, 0);

    /* a dead server: an error, at once */
    mcd_kill(pid);
    for (i = 0; i < 10; i++) {
        apr_status_t rv;

        t0 = apr_time_now();
        rv = slb_mc_set_quiet(mc, &k, &b, 60);
        ms = ms_since(t0);
        worst = ms > worst ? ms : worst;
        /* the first write after the kill may still land in the socket */
        ck_assert_msg(i < 2 || rv != APR_SUCCESS,
                      "quiet set %d succeeded on a dead server", i);
    }
    ck_assert_msg(worst < 50 + 50 + slack_ms(), "a quiet set took %ld ms",
                  worst);
}
END_TEST

START_TEST(test_publish_basic)
{
    int port, i;
    slb_mc *mc;
    slb_key k = key_n("pub1", 0);
    slb_binding b = binding("t3", apr_time_from_sec(1700000000)), got;
    slb_mc_stats st;
    apr_time_t t0;
    long ms, worst_call = 0;

    mcd_start_free(&port);
    mc = mc_make_async(&port, 1, 0);
    ck_assert_int_eq(slb_mc_publishes(mc), 1);

    /* one binding when the writer is idle: written at once */
    ck_assert_int_eq(slb_mc_publish(mc, &k, &b, 60), APR_SUCCESS);
    ms = wait_published(port, "pub1", 1, "t3", 2000);
    ck_assert_msg(ms >= 0, "a published binding did not reach memcached");
    ck_assert_msg(ms < 20 + slack_ms(), "an idle writer took %ld ms", ms);
    ck_assert_int_eq(slb_mc_get(mc, &k, &got), APR_SUCCESS);
    ck_assert_str_eq(got.route, "t3");
    ck_assert(got.created == apr_time_from_sec(1700000000));
    fprintf(stderr, "check_mc: writer: one binding in memcached after %ld ms\n",
            ms);

    /* 2000 in a burst: the caller never waits, the writer batches */
    for (i = 0; i < 2000; i++) {
        slb_key ki = key_n("pub2", i);
        slb_binding bi = binding("t1", 0);

        t0 = apr_time_now();
        ck_assert_int_eq(slb_mc_publish(mc, &ki, &bi, 60), APR_SUCCESS);
        ms = ms_since(t0);
        worst_call = ms > worst_call ? ms : worst_call;
    }
    ms = wait_published(port, "pub2", 2000, "t1", 5000);
    ck_assert_msg(ms >= 0, "not all of 2000 bindings reached memcached");
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.publish_queued, 2001);
    ck_assert_uint_eq(st.published, 2001);
    ck_assert_uint_eq(st.publish_dropped, 0);
    ck_assert_uint_eq(st.publish_errors, 0);
    ck_assert_uint_eq(st.publish_waiting, 0);
    /* gathered: far fewer network writes than bindings */
    ck_assert_msg(st.publish_batches * 4 < 2001, "%" APR_UINT64_T_FMT
                  " batches for 2001 bindings", st.publish_batches);
    ck_assert_msg(worst_call < fast_ms(), "a publish call took %ld ms",
                  worst_call);
    fprintf(stderr, "check_mc: writer: 2000 bindings in %ld ms, %"
            APR_UINT64_T_FMT " batches, slowest call %ld ms\n", ms,
            st.publish_batches - 1, worst_call);

    /* the set replaces: a later binding of the same key wins */
    b = binding("t2", 0);
    ck_assert_int_eq(slb_mc_publish(mc, &k, &b, 60), APR_SUCCESS);
    ck_assert_msg(wait_published(port, "pub1", 1, "t2", 2000) >= 0,
                  "the second binding of a key did not replace the first");

    /* bad arguments: nothing queued */
    {
        slb_key bad = k;
        slb_binding badb = binding("t 1", 0);

        bad.text[3] = '\0';
        ck_assert_int_eq(slb_mc_publish(mc, &bad, &b, 60), APR_EINVAL);
        ck_assert_int_eq(slb_mc_publish(mc, &k, &badb, 60), APR_EINVAL);
        ck_assert_int_eq(slb_mc_publish(mc, &k, NULL, 60), APR_EINVAL);
    }
}
END_TEST

START_TEST(test_publish_replicas)
{
    int ports[2], i;
    slb_mc *mc;

    mcd_start_free(&ports[0]);
    mcd_start_free(&ports[1]);
    mc = mc_make_async(ports, 2, 1);
    for (i = 0; i < 50; i++) {
        slb_key k = key_n("rep", i);
        slb_binding b = binding("t2", 0);
        ck_assert_int_eq(slb_mc_publish(mc, &k, &b, 60), APR_SUCCESS);
    }
    /* replicas=1 of 2 servers: every binding is on both */
    ck_assert_msg(wait_published(ports[0], "rep", 50, "t2", 3000) >= 0,
                  "bindings missing on the first server");
    ck_assert_msg(wait_published(ports[1], "rep", 50, "t2", 3000) >= 0,
                  "bindings missing on the second server");
}
END_TEST

START_TEST(test_publish_no_writer)
{
    int port;
    slb_mc_conf c;
    slb_mc *mc;
    slb_key k = key_n("nowriter", 0);
    slb_binding b = binding("t1", 0);

    mcd_start_free(&port);
    slb_mc_conf_init(&c);
    ck_assert_int_eq(c.queue_max, 4096);
    ck_assert_int_eq(c.write_mode, SLB_MC_WRITE_SYNC);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    /* sync (the default) and quiet: no writer thread */
    mc = mc_make_conf(&c);
    ck_assert_int_eq(slb_mc_publishes(mc), 0);
    ck_assert_int_eq(slb_mc_publish(mc, &k, &b, 60), APR_ENOTIMPL);
    c.write_mode = SLB_MC_WRITE_QUIET;
    mc = mc_make_conf(&c);
    ck_assert_int_eq(slb_mc_publishes(mc), 0);
    c.write_mode = 3;
    ck_assert_ptr_nonnull(strstr(slb_mc_check_config(pool, &c), "write mode"));
    c.write_mode = SLB_MC_WRITE_ASYNC;
    c.queue_max = 0;
    ck_assert_ptr_nonnull(strstr(slb_mc_check_config(pool, &c), "queue"));
    c.queue_max = 1000001;
    ck_assert_ptr_nonnull(strstr(slb_mc_check_config(pool, &c), "queue"));
    /* names */
    ck_assert_int_eq(slb_mc_write_mode_parse("sync"), SLB_MC_WRITE_SYNC);
    ck_assert_int_eq(slb_mc_write_mode_parse("quiet"), SLB_MC_WRITE_QUIET);
    ck_assert_int_eq(slb_mc_write_mode_parse("async"), SLB_MC_WRITE_ASYNC);
    ck_assert_int_eq(slb_mc_write_mode_parse("Async"), -1);
    ck_assert_int_eq(slb_mc_write_mode_parse(NULL), -1);
    ck_assert_str_eq(slb_mc_write_mode_name(SLB_MC_WRITE_ASYNC), "async");
}
END_TEST

START_TEST(test_publish_blackhole)
{
    /* the server never answers: publishing stays memory-only for the
     * callers, a full queue drops, and stopping the writer is bounded */
    int port, i, queued = 0, dropped = 0;
    slb_mc_conf c;
    slb_mc *mc = NULL;
    apr_pool_t *sub;
    slb_mc_stats st;
    apr_time_t t0;
    long worst = 0, ms;

    blackhole_start(&port);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", port);
    c.write_mode = SLB_MC_WRITE_ASYNC;
    c.queue_max = 64;
    ck_assert_int_eq(apr_pool_create(&sub, pool), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_create(&mc, sub, &c), APR_SUCCESS);
    for (i = 0; i < 20000; i++) {
        slb_key k = key_n("hole", i);
        slb_binding b = binding("t1", 0);
        apr_status_t rv;

        t0 = apr_time_now();
        rv = slb_mc_publish(mc, &k, &b, 60);
        ms = ms_since(t0);
        worst = ms > worst ? ms : worst;
        ck_assert(rv == APR_SUCCESS || rv == APR_ENOSPC);
        if (rv == APR_SUCCESS) {
            queued++;
        }
        else {
            dropped++;
        }
    }
    ck_assert_msg(worst < fast_ms(), "a publish call took %ld ms", worst);
    slb_mc_stats_get(mc, &st);
    ck_assert_uint_eq(st.publish_queued, (apr_uint64_t)queued);
    ck_assert_uint_eq(st.publish_dropped, (apr_uint64_t)dropped);
    ck_assert_msg(dropped > 0, "a 64-binding queue took 20000 bindings");
    t0 = apr_time_now();
    apr_pool_destroy(sub);
    ms = ms_since(t0);
    ck_assert_msg(ms < 4 * 50 + slack_ms(), "stopping the writer took %ld ms",
                  ms);
    fprintf(stderr, "check_mc: writer, black hole: %d queued, %d dropped, "
            "slowest call %ld ms, stopped in %ld ms\n", queued, dropped,
            worst, ms);
}
END_TEST

/* Member states of two namespaces through one server: the own type on
 * the API, the earlier wire form (a binding named after the state). */
START_TEST(test_member_states)
{
    int port;
    slb_mc *a, *b;
    slb_member_state st = SLB_MEMBER_MAINT;
    slb_binding raw;
    slb_key k;
    char id[64];

    mcd_start_free(&port);
    a = mc_make(&port, 1, 0);
    b = mc_make(&port, 1, 0);          /* another balancer */
    ck_assert_int_eq(slb_mc_member_state_get(b, "shop", "t1", &st),
                     APR_NOTFOUND);
    ck_assert_int_eq(slb_mc_member_state_set(a, "shop", "t1",
                                             SLB_MEMBER_DRAIN,
                                             apr_time_now()), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_member_state_get(b, "shop", "t1", &st),
                     APR_SUCCESS);
    ck_assert_int_eq(st, SLB_MEMBER_DRAIN);
    /* another namespace, another member: unaffected */
    ck_assert_int_eq(slb_mc_member_state_get(b, "blog", "t1", &st),
                     APR_NOTFOUND);
    ck_assert_int_eq(slb_mc_member_state_get(b, "shop", "t2", &st),
                     APR_NOTFOUND);
    ck_assert_int_eq(slb_mc_member_state_set(a, "shop", "t1",
                                             SLB_MEMBER_MAINT,
                                             apr_time_now()), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_member_state_get(b, "shop", "t1", &st),
                     APR_SUCCESS);
    ck_assert_int_eq(st, SLB_MEMBER_MAINT);
    ck_assert_int_eq(slb_mc_member_state_set(a, "shop", "t1", SLB_MEMBER_UP,
                                             apr_time_now()), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_member_state_get(b, "shop", "t1", &st),
                     APR_SUCCESS);
    ck_assert_int_eq(st, SLB_MEMBER_UP);
    /* the wire form: the key of "\001member-state\001t1", a binding
     * whose route is the state's name */
    apr_snprintf(id, sizeof(id), "%cmember-state%c%s", 1, 1, "t1");
    slb_key_make(&k, "shop", id, strlen(id));
    ck_assert_int_eq(slb_mc_get(b, &k, &raw), APR_SUCCESS);
    ck_assert_str_eq(raw.route, "up");
    /* a value that names no state is no state */
    raw = binding("bogus", 0);
    ck_assert_int_eq(slb_mc_set(a, &k, &raw, 0), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_member_state_get(b, "shop", "t1", &st),
                     APR_NOTFOUND);
    ck_assert_str_eq(slb_member_state_name(SLB_MEMBER_DRAIN), "drain");
    ck_assert(slb_member_state_parse("maint", &st) && st == SLB_MEMBER_MAINT);
    ck_assert(!slb_member_state_parse("Maint", &st));
}
END_TEST

/* Two clients counting into one caller's block (shared memory in the
 * module: every child of a server) add up; a client of its own counts
 * apart; the latency histogram puts a fast call and a timed-out one in
 * their buckets. */
START_TEST(test_shared_counters)
{
    int port, hole;
    slb_mc_conf c;
    slb_mc_counters *blk = apr_pcalloc(pool, sizeof(*blk));
    slb_mc *a = NULL, *b = NULL, *own, *slow = NULL;
    slb_key k = key_n("shared", 1), k2 = key_n("shared", 2);
    slb_binding v = binding("t1", 0), got;
    slb_mc_stats sa, sb, so;
    int i;

    mcd_start_free(&port);
    slb_mc_conf_init(&c);
    c.config = servers_cfg(&port, 1);
    c.retry_timeout_s = 1;
    ck_assert_int_eq(slb_mc_create_shared(&a, pool, &c, blk), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_create_shared(&b, pool, &c, blk), APR_SUCCESS);
    own = mc_make(&port, 1, 0);

    ck_assert_int_eq(slb_mc_get(a, &k, &got), APR_NOTFOUND);
    ck_assert_int_eq(slb_mc_add(b, &k, &v, 60, NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(a, &k, &got), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_set(b, &k2, &v, 60), APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(own, &k2, &got), APR_SUCCESS);

    slb_mc_stats_get(a, &sa);
    slb_mc_stats_get(b, &sb);
    slb_mc_stats_get(own, &so);
    ck_assert_uint_eq(sa.gets, 2);
    ck_assert_uint_eq(sa.hits, 1);
    ck_assert_uint_eq(sa.misses, 1);
    ck_assert_uint_eq(sa.adds, 1);
    ck_assert_uint_eq(sa.sets, 1);
    ck_assert_uint_eq(sa.latency_calls, 4);
    ck_assert_uint_eq(sb.gets, sa.gets);
    ck_assert_uint_eq(sb.adds, sa.adds);
    ck_assert_uint_eq(sb.latency_calls, sa.latency_calls);
    ck_assert_uint_eq(blk->gets, 2);
    ck_assert_uint_eq(so.gets, 1);
    ck_assert_uint_eq(so.adds, 0);
    ck_assert_uint_eq(so.latency_calls, 1);
    /* cumulative buckets; a local memcached answers within 100 ms */
    for (i = 1; i < SLB_MC_LATENCY_BUCKETS; i++) {
        ck_assert_uint_ge(sa.latency_le[i], sa.latency_le[i - 1]);
    }
    ck_assert_uint_eq(sa.latency_le[SLB_MC_LATENCY_BUCKETS - 1], 4);

    /* a call that waits for its 150 ms I/O timeout: above every bound,
     * counted in the same block */
    blackhole_start(&hole);
    c.config = apr_psprintf(pool, "--SERVER=127.0.0.1:%d", hole);
    c.io_timeout_ms = 150;
    c.connect_timeout_ms = 150;
    ck_assert_int_eq(slb_mc_create_shared(&slow, pool, &c, blk),
                     APR_SUCCESS);
    ck_assert_int_eq(slb_mc_get(slow, &k, &got), APR_TIMEUP);
    slb_mc_stats_get(a, &sa);
    ck_assert_uint_eq(sa.latency_calls, 5);
    ck_assert_uint_eq(sa.latency_le[SLB_MC_LATENCY_BUCKETS - 1], 4);
    ck_assert_uint_eq(sa.timeouts, 1);
    ck_assert_uint_ge(sa.latency_us_max, 150000);
}
END_TEST

Suite *mc_suite(void)
{
    Suite *s = suite_create("memcached");
    TCase *tc;

    tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_conf_defaults);
    tcase_add_test(tc, test_conf_rejects);
    tcase_add_test(tc, test_value_parse);
    suite_add_tcase(s, tc);

    tc = tcase_create("one server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_basic_ops);
    tcase_add_test(tc, test_member_states);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_ttl_and_touch);
    tcase_add_test(tc, test_malformed_values);
    tcase_add_test(tc, test_namespace);
    tcase_add_test(tc, test_shared_counters);
    suite_add_tcase(s, tc);

    tc = tcase_create("two balancers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_two_balancers);
    tcase_add_test(tc, test_threads_share_small_pool);
    tcase_add_test(tc, test_pool_start);
    suite_add_tcase(s, tc);

    tc = tcase_create("two servers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_consistent_hashing);
    tcase_add_test(tc, test_replicas_survive_server_loss);
    tcase_add_test(tc, test_replica_read_on_miss);
    tcase_add_test(tc, test_replica_newer_wins);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_dead_server_is_fast_and_recovers);
    tcase_add_test(tc, test_slow_moment_recovers_at_once);
    tcase_add_test(tc, test_window_two_balancers);
    tcase_add_test(tc, test_blackhole_times_out);
    tcase_add_test(tc, test_blackhole_with_live_server);
    tcase_add_test(tc, test_pool_exhausted);
    tcase_add_test(tc, test_connect_timeout_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("quiet writes and the writer thread");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_set_quiet);
    tcase_add_test(tc, test_publish_basic);
    tcase_add_test(tc, test_publish_replicas);
    tcase_add_test(tc, test_publish_no_writer);
    tcase_add_test(tc, test_publish_blackhole);
    suite_add_tcase(s, tc);
    return s;
}
