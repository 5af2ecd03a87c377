/*
 * stickylb_mc.c - the memcached backend of the stick table (APR +
 * libmemcached + libmemcachedutil, no httpd).
 *
 * See include/stickylb_mc.h for the contract.  Implementation notes:
 *
 *  - Pool: memcached_pool_create() clones the master on demand, up to
 *    pool_max.  Its own bounded wait (memcached_pool_fetch with a relative
 *    time) has a one-second granularity, so slots are counted here under an
 *    APR mutex and waited for with apr_thread_cond_timedwait (pool_wait_ms);
 *    the libmemcached fetch itself is then called with a zero wait and
 *    cannot block.
 *  - Replication: libmemcached 1.1 replicates set and delete but not add,
 *    cas or touch, and queues the replica writes without flushing them.
 *    An add (or a cas repairing a malformed value) that stored its value is
 *    therefore followed, when replicas > 0, by a set of the same value, and
 *    every replicated write by memcached_flush_buffers().
 *  - One view of the servers per process (mc_server: up, held, failures).
 *    libmemcached keeps its server state per handle (failure counts, next
 *    retry, its continuum), and every handle of the pool is a clone, so
 *    after an outage each would take a returning server back on its own
 *    schedule, and a binding written through one handle could be looked
 *    for through another that still skips its server.  Of libmemcached's
 *    own means, this file relies on: REMOVE_FAILED_SERVERS (a server left
 *    out of a handle's continuum while its next retry is ahead),
 *    memcached_instance_next_retry() to set that per handle, and a
 *    continuum rebuild (SORT_HOSTS) after it; not on its failure limit or
 *    dead timeout, which count per handle (they stay set, as a bound for
 *    a handle nobody re-syncs), and not on memcached_server_push or
 *    rebuilding the pool, which would drop every handle's connections
 *    whenever one server changes.  So: after server_failure_limit
 *    failures in a row of any kind (refused, broken, silent) a server is
 *    held for retry_timeout_s and every handle leaves it out at its next
 *    call (call_begin); when a call succeeds on it again, a generation is
 *    bumped and every handle takes it back before its next call (resync
 *    at borrow, the quiet handles and the writer's too).  While held, a
 *    key that has no other server is asked by one call at a time (a
 *    trial), the others failing at once: a black hole holds one thread
 *    per process in its timeout, and a server slow for a moment is back
 *    at the next call (see server_failed).
 *  - The recovery window (slb_mc_in_window, include/stickylb_mc.h): other
 *    processes, another balancer above all, may see the servers otherwise
 *    for a while after this one saw a change; a miss is then asked again
 *    on the key's home and fallback servers, and writes are copied there.
 *  - A call that fails on a broken connection (a server restarted or died
 *    since the handle last used it) is tried once more: the retry
 *    reconnects, or reads a replica once the connect fails.
 *  - The writer thread (slb_mc_publish) owns a clone of the master with
 *    NOREPLY and BUFFER_REQUESTS: its sets are quiet (SETQ: memcached
 *    answers only an error) and leave in one write per server per batch
 *    at memcached_flush_buffers().  Quiet requests never share a
 *    connection with the pool's calls, whose replies are matched in
 *    order: an error answer to a quiet request would be taken for the
 *    reply of the next call.
 */
#include <string.h>
#include <time.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>
#include <apr_thread_proc.h>
#include <apr_atomic.h>
#include <apr_time.h>
#include <apr_version.h>

#include <libmemcached/memcached.h>
#include <libmemcached/util.h>

#include "stickylb_codec.h"
#include "stickylb_mc.h"

#if !APR_HAS_THREADS
#error "stickylb_mc.c needs APR with thread support"
#endif

/* ---------------------------------------------------------------------
 * 64-bit counters
 * ------------------------------------------------------------------- */

typedef volatile apr_uint64_t slb_counter;

#if APR_VERSION_AT_LEAST(1, 7, 0) && !defined(SLB_NO_APR_ATOMIC64)
#define CNT_ADD(c, v)     ((void)apr_atomic_add64(&(c), (v)))
#define CNT_READ(c)       apr_atomic_read64(&(c))
#define CNT_CAS(c, w, o)  apr_atomic_cas64(&(c), (w), (o))
#define CNT_SET(c, v)     apr_atomic_set64(&(c), (v))
#else
#define CNT_ADD(c, v)     ((void)__atomic_fetch_add(&(c), (v), \
                                                  __ATOMIC_RELAXED))
#define CNT_READ(c)       __atomic_load_n(&(c), __ATOMIC_RELAXED)
static apr_uint64_t cnt_cas(slb_counter *c, apr_uint64_t w, apr_uint64_t o)
{
    __atomic_compare_exchange_n(c, &o, w, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return o;
}
#define CNT_CAS(c, w, o)  cnt_cas(&(c), (w), (o))
#define CNT_SET(c, v)     __atomic_store_n(&(c), (v), __ATOMIC_RELAXED)
#endif
#define CNT_INC(c)        CNT_ADD(c, 1)

/* ---------------------------------------------------------------------
 * types
 * ------------------------------------------------------------------- */

#define KEY_LEN (SLB_KEY_TEXT_LEN - 1)

typedef struct {
    char *host;
    int port;
    volatile apr_uint32_t up;
    volatile apr_uint32_t fails_in_row;
    slb_counter hold_until;        /* apr_time_t; 0: not held */
    slb_counter failures;
    /* 1 while a trial call asks it (one at a time); trials wait for
     * next_trial (see trial_end) */
    volatile apr_uint32_t trial;
    volatile apr_uint32_t trial_fails;
    slb_counter next_trial;        /* apr_time_t */
    slb_counter backoff;           /* apr_interval_time_t; 0: none yet */
} mc_server;

/* the counters: the caller's (slb_mc_create_shared: shared memory, every
 * process of a server) or the client's own */
typedef slb_mc_counters mc_counters;

const apr_uint32_t slb_mc_latency_bounds_us[SLB_MC_LATENCY_BUCKETS] = {
    100, 500, 1000, 2000, 5000, 10000, 50000, 100000
};

/* a binding waiting for the writer thread */
typedef struct {
    char key[KEY_LEN];
    char route[SLB_MAX_ROUTE_LEN + 1];
    apr_time_t created;
    apr_uint32_t ttl_s;
} pub_item;

/* bindings written per batch at most */
#define WRITER_BATCH 256

struct slb_mc {
    slb_mc_conf conf;
    memcached_st *master;
    memcached_pool_st *pool;
    apr_thread_mutex_t *lock;      /* guards lent and waiting */
    apr_thread_cond_t *freed;
    int lent;
    int waiting;
    mc_server *servers;
    int nservers;
    /* bumped whenever a server is taken back (a call succeeds on it after
     * it failed): every handle re-admits it at its next borrow */
    volatile apr_uint32_t health_gen;
    /* with two servers or more: per server (by position), a group key
     * that selects it in any continuum that holds it (ketama: a key on
     * server j among all servers stays on j when others leave), to read
     * or write a key on that server (NULL where none was found) */
    char **gk;
    /* no I/O is ever done with these clones of the master, so their
     * continuum never changes (and libmemcached never rebuilds it:
     * memcached_generate_hash on them is read-only, safe from any
     * thread): full holds every server, without[j] all but server j */
    memcached_st *full;
    memcached_st **without;
    /* the recovery window (see the notes at the top): apr_time_t */
    slb_counter window_until;
    apr_interval_time_t window_len;
    mc_counters *c;               /* own_c or the caller's */
    mc_counters own_c;
    /* quiet handles for slb_mc_set_quiet (clones of qmaster) */
    memcached_st *qmaster;
    memcached_pool_st *qpool;
    /* the writer thread (queue_max > 0) */
    memcached_st *pub_h;           /* its own quiet, buffered handle */
    apr_thread_t *pub_thread;
    apr_thread_mutex_t *q_lock;    /* guards the fields below */
    apr_thread_cond_t *q_cond;
    pub_item *q;                   /* ring of queue_max items */
    pub_item *batch;               /* the writer's copy of one batch */
    apr_uint32_t q_head, q_len;
    int q_idle;                    /* the writer waits for work */
    int q_stop;
};

/* ---------------------------------------------------------------------
 * configuration
 * ------------------------------------------------------------------- */

void slb_mc_conf_init(slb_mc_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->config = NULL;
    c->connect_timeout_ms = 50;
    c->io_timeout_ms = 50;
    c->retry_timeout_s = 2;
    c->server_failure_limit = 2;
    c->replicas = 0;
    c->pool_max = 64;
    c->pool_wait_ms = 20;
    c->write_mode = SLB_MC_WRITE_SYNC;
    c->queue_max = 4096;
}

const char *slb_mc_write_mode_name(int mode)
{
    switch (mode) {
    case SLB_MC_WRITE_SYNC:  return "sync";
    case SLB_MC_WRITE_QUIET: return "quiet";
    case SLB_MC_WRITE_ASYNC: return "async";
    default:                 return "?";
    }
}

int slb_mc_write_mode_parse(const char *name)
{
    if (name == NULL) {
        return -1;
    }
    if (!strcmp(name, "sync")) {
        return SLB_MC_WRITE_SYNC;
    }
    if (!strcmp(name, "quiet")) {
        return SLB_MC_WRITE_QUIET;
    }
    if (!strcmp(name, "async")) {
        return SLB_MC_WRITE_ASYNC;
    }
    return -1;
}

static const char *check_range(apr_pool_t *p, const char *name, int v,
                               int lo, int hi)
{
    if (v < lo || v > hi) {
        return apr_psprintf(p, "memcached %s must be between %d and %d "
                            "(got %d)", name, lo, hi, v);
    }
    return NULL;
}

/* Force the behaviour the module relies on; NULL or an error message. */
static const char *apply_behaviors(apr_pool_t *p, memcached_st *m,
                                   const slb_mc_conf *c)
{
    struct {
        memcached_behavior_t flag;
        uint64_t value;
        const char *name;
    } b[] = {
        { MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1, "BINARY_PROTOCOL" },
        { MEMCACHED_BEHAVIOR_NOREPLY, 0, "NOREPLY" },
        { MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0, "BUFFER_REQUESTS" },
        { MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1, "SUPPORT_CAS" },
        { MEMCACHED_BEHAVIOR_NO_BLOCK, 1, "NO_BLOCK" },
        { MEMCACHED_BEHAVIOR_TCP_NODELAY, 1, "TCP_NODELAY" },
        { MEMCACHED_BEHAVIOR_TCP_KEEPALIVE, 1, "TCP_KEEPALIVE" },
        { MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5, "HASH" },
        { MEMCACHED_BEHAVIOR_KETAMA_HASH, MEMCACHED_HASH_MD5, "KETAMA_HASH" },
        { MEMCACHED_BEHAVIOR_SORT_HOSTS, 1, "SORT_HOSTS" },
        { MEMCACHED_BEHAVIOR_DISTRIBUTION,
          MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, "DISTRIBUTION" },
        { MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT,
          (uint64_t)c->connect_timeout_ms, "CONNECT_TIMEOUT" },
        { MEMCACHED_BEHAVIOR_POLL_TIMEOUT, (uint64_t)c->io_timeout_ms,
          "POLL_TIMEOUT" },
        /* SO_SNDTIMEO/SO_RCVTIMEO: microseconds */
        { MEMCACHED_BEHAVIOR_SND_TIMEOUT, (uint64_t)c->io_timeout_ms * 1000,
          "SND_TIMEOUT" },
        { MEMCACHED_BEHAVIOR_RCV_TIMEOUT, (uint64_t)c->io_timeout_ms * 1000,
          "RCV_TIMEOUT" },
        { MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, (uint64_t)c->retry_timeout_s,
          "RETRY_TIMEOUT" },
        /* without a dead timeout an ejected server is never retried */
        { MEMCACHED_BEHAVIOR_DEAD_TIMEOUT, (uint64_t)c->retry_timeout_s,
          "DEAD_TIMEOUT" },
        /* libmemcached never leaves a server out on its own count (its
         * count is per handle): the process's count does, in every
         * handle at once (server_failed, call_begin) */
        { MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, 1000000,
          "SERVER_FAILURE_LIMIT" },
        { MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 1,
          "REMOVE_FAILED_SERVERS" },
        { MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS, (uint64_t)c->replicas,
          "NUMBER_OF_REPLICAS" },
        { MEMCACHED_BEHAVIOR_RANDOMIZE_REPLICA_READ, 0,
          "RANDOMIZE_REPLICA_READ" },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        memcached_return_t rc = memcached_behavior_set(m, b[i].flag,
                                                       b[i].value);
        if (memcached_failed(rc)) {
            return apr_psprintf(p, "memcached behavior %s=%" APR_UINT64_T_FMT
                                " failed: %s", b[i].name,
                                (apr_uint64_t)b[i].value,
                                memcached_strerror(m, rc));
        }
    }
    return NULL;
}

/* libmemcached's parser messages read "(0x...) Error occured during
 * parsing (syntax error, unexpected IPADDRESS): last_token=IPADDRESS(323)
 * -> file:line": keep what an operator can use ("syntax error, unexpected
 * IPADDRESS"). */
static const char *tidy(apr_pool_t *p, const char *msg)
{
    /* (libmemcached spells the first word "occured": matched from here) */
    static const char lead[] = " during parsing (";
    const char *end, *in;

    if (strncmp(msg, "(0x", 3) == 0 && strstr(msg, ") ") != NULL) {
        msg = strstr(msg, ") ") + 2;
    }
    if ((end = strstr(msg, " -> ")) == NULL) {
        end = msg + strlen(msg);
    }
    in = strstr(msg, lead);
    if (in && in < end && strncmp(msg, "Error ", 6) == 0) {
        const char *close = strstr(msg, "): last_token=");
        in += sizeof(lead) - 1;
        if (close == NULL && end > in && end[-1] == ')') {
            close = end - 1;
        }
        if (close && close < end && close >= in) {
            msg = in;
            end = close;
        }
    }
    return apr_pstrmemdup(p, msg, (apr_size_t)(end - msg));
}

/* host or host:port: a name or IPv4 address, what an operator writes for a
 * server when not writing an option */
static int server_like(const char *w, apr_size_t n)
{
    apr_size_t i = 0, port;

    while (i < n && (apr_isalnum(w[i]) || w[i] == '.' || w[i] == '-'
                     || w[i] == '_')) {
        i++;
    }
    if (i == 0 || w[0] == '-' || w[0] == '.') {
        return 0;
    }
    if (i == n) {
        return 1;
    }
    if (w[i++] != ':') {
        return 0;
    }
    for (port = 0; i < n && apr_isdigit(w[i]); i++) {
        port++;
    }
    return i == n && port >= 1 && port <= 5;
}

/*
 * The configuration with its bare servers written as options, when that
 * is what was meant: "10.0.0.5:11211, 10.0.0.6" -> "--SERVER=10.0.0.5:11211
 * --SERVER=10.0.0.6", and options separated by commas -> by spaces.  NULL when a word is neither
 * an option nor a server, nothing changes, or the result does not parse
 * either (only a suggestion that works is made).
 */
static const char *as_options(apr_pool_t *p, const char *config)
{
    const char *s = config, *out = "";
    char errbuf[512];

    for (;;) {
        const char *w;
        apr_size_t n;

        while (*s == ' ' || *s == '\t' || *s == ',') {
            s++;
        }
        if (*s == '\0') {
            break;
        }
        for (w = s; *s && *s != ' ' && *s != '\t' && *s != ','; s++) {
        }
        n = (apr_size_t)(s - w);
        if (n >= 2 && w[0] == '-' && w[1] == '-') {
            out = apr_pstrcat(p, out, *out ? " " : "",
                              apr_pstrmemdup(p, w, n), NULL);
        }
        else if (server_like(w, n)) {
            out = apr_pstrcat(p, out, *out ? " " : "", "--SERVER=",
                              apr_pstrmemdup(p, w, n), NULL);
        }
        else {
            return NULL;
        }
    }
    if (*out == '\0' || strcmp(out, config) == 0
        || libmemcached_check_configuration(out, strlen(out), errbuf,
                                            sizeof(errbuf))
               != MEMCACHED_SUCCESS) {
        return NULL;
    }
    return out;
}

/* Parse c->config into a new memcached_st and check what only a parsed
 * configuration tells; no network I/O. */
static const char *parse_config(apr_pool_t *p, const slb_mc_conf *c,
                                memcached_st **out)
{
    char errbuf[512];
    apr_size_t len;
    memcached_return_t rc;
    memcached_st *m;
    uint32_t count;

    *out = NULL;
    if (c->config == NULL || *c->config == '\0') {
        return "memcached configuration string is empty (expected e.g. "
               "\"--SERVER=127.0.0.1:11211\")";
    }
    len = strlen(c->config);
    if (len > 8192) {
        return "memcached configuration string is longer than 8192 bytes";
    }
    errbuf[0] = '\0';
    rc = libmemcached_check_configuration(c->config, len, errbuf,
                                          sizeof(errbuf));
    if (rc != MEMCACHED_SUCCESS) {
        const char *why = errbuf[0] ? tidy(p, errbuf)
                                    : memcached_strerror(NULL, rc);
        const char *fixed = as_options(p, c->config);

        if (fixed) {
            return apr_psprintf(p, "invalid memcached configuration \"%s\" "
                                "(libmemcached: %s): servers are written as "
                                "options; did you mean \"%s\"?", c->config,
                                why, fixed);
        }
        return apr_psprintf(p, "invalid memcached configuration \"%s\" "
                            "(libmemcached: %s): expected libmemcached "
                            "options separated by spaces, one "
                            "--SERVER=host:port per server, e.g. "
                            "\"--SERVER=10.0.0.5:11211 "
                            "--SERVER=10.0.0.6:11211\"", c->config, why);
    }
    m = memcached(c->config, len);
    if (m == NULL) {
        return apr_psprintf(p, "invalid memcached configuration \"%s\"",
                            c->config);
    }
    count = memcached_server_count(m);
    if (count == 0) {
        memcached_free(m);
        return apr_psprintf(p, "memcached configuration \"%s\" names no "
                            "server (--SERVER=host:port)", c->config);
    }
    if (memcached_behavior_get(m, MEMCACHED_BEHAVIOR_USE_UDP)) {
        memcached_free(m);
        return "memcached over UDP (--USE-UDP) is not supported: add needs "
               "replies";
    }
    if ((uint32_t)c->replicas >= count) {
        memcached_free(m);
        return apr_psprintf(p, "memcached replicas (%d) must be less than "
                            "the number of servers (%u)", c->replicas,
                            (unsigned)count);
    }
    *out = m;
    return NULL;
}

static const char *check_numbers(apr_pool_t *p, const slb_mc_conf *c)
{
    const char *err;

    if ((err = check_range(p, "connect timeout (ms)", c->connect_timeout_ms,
                           1, 60000))
        || (err = check_range(p, "I/O timeout (ms)", c->io_timeout_ms,
                              1, 60000))
        || (err = check_range(p, "retry timeout (s)", c->retry_timeout_s,
                              1, 3600))
        || (err = check_range(p, "server failure limit",
                              c->server_failure_limit, 1, 1000))
        || (err = check_range(p, "replicas", c->replicas, 0, 255))
        || (err = check_range(p, "pool size", c->pool_max, 1, 100000))
        || (err = check_range(p, "pool wait (ms)", c->pool_wait_ms,
                              0, 60000))
        || (err = check_range(p, "write mode", c->write_mode,
                              SLB_MC_WRITE_SYNC, SLB_MC_WRITE_ASYNC))
        || (err = check_range(p, "writer queue (bindings)", c->queue_max,
                              1, 1000000))) {
        return err;
    }
    return NULL;
}

const char *slb_mc_check_config(apr_pool_t *p, const slb_mc_conf *c)
{
    const char *err;
    memcached_st *m;

    if (c == NULL) {
        return "no memcached configuration";
    }
    if ((err = check_numbers(p, c)) != NULL) {
        return err;
    }
    if ((err = parse_config(p, c, &m)) != NULL) {
        return err;
    }
    err = apply_behaviors(p, m, c);
    memcached_free(m);
    return err;
}

/* ---------------------------------------------------------------------
 * life cycle
 * ------------------------------------------------------------------- */

static apr_status_t mc_cleanup(void *data)
{
    slb_mc *mc = data;

    if (mc->qpool) {
        (void)memcached_pool_destroy(mc->qpool);
        mc->qpool = NULL;
    }
    if (mc->qmaster) {
        memcached_free(mc->qmaster);
        mc->qmaster = NULL;
    }
    if (mc->without) {
        int j;

        for (j = 0; j < mc->nservers; j++) {
            if (mc->without[j]) {
                memcached_free(mc->without[j]);
                mc->without[j] = NULL;
            }
        }
        mc->without = NULL;
    }
    if (mc->full) {
        memcached_free(mc->full);
        mc->full = NULL;
    }
    if (mc->pool) {
        /* frees every clone; hands the master back */
        (void)memcached_pool_destroy(mc->pool);
        mc->pool = NULL;
    }
    if (mc->master) {
        memcached_free(mc->master);
        mc->master = NULL;
    }
    return APR_SUCCESS;
}

static void *APR_THREAD_FUNC writer_main(apr_thread_t *t, void *data);

/* A pre-cleanup: the writer stops (its current write is bounded by the
 * timeouts) before the pool's subpools and the handles go. */
static apr_status_t writer_stop(void *data)
{
    slb_mc *mc = data;
    apr_status_t trv;

    if (mc->pub_thread) {
        apr_thread_mutex_lock(mc->q_lock);
        mc->q_stop = 1;
        apr_thread_cond_signal(mc->q_cond);
        apr_thread_mutex_unlock(mc->q_lock);
        apr_thread_join(&trv, mc->pub_thread);
        mc->pub_thread = NULL;
    }
    if (mc->pub_h) {
        memcached_free(mc->pub_h);
        mc->pub_h = NULL;
    }
    return APR_SUCCESS;
}

static apr_status_t writer_start(slb_mc *mc, apr_pool_t *p)
{
    apr_status_t rv;

    mc->q = apr_pcalloc(p, sizeof(pub_item) * (apr_size_t)mc->conf.queue_max);
    mc->batch = apr_pcalloc(p, sizeof(pub_item) * WRITER_BATCH);
    if ((rv = apr_thread_mutex_create(&mc->q_lock, APR_THREAD_MUTEX_DEFAULT,
                                      p)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&mc->q_cond, p)) != APR_SUCCESS) {
        return rv;
    }
    mc->pub_h = memcached_clone(NULL, mc->master);
    if (mc->pub_h == NULL
        || memcached_failed(memcached_behavior_set(mc->pub_h,
                                                   MEMCACHED_BEHAVIOR_NOREPLY,
                                                   1))
        || memcached_failed(memcached_behavior_set(
               mc->pub_h, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1))) {
        if (mc->pub_h) {
            memcached_free(mc->pub_h);
            mc->pub_h = NULL;
        }
        return APR_EGENERAL;
    }
    apr_pool_pre_cleanup_register(p, mc, writer_stop);
    rv = apr_thread_create(&mc->pub_thread, NULL, writer_main, mc, p);
    if (rv != APR_SUCCESS) {
        mc->pub_thread = NULL;
    }
    return rv;
}

/* The clones that tell where a key lives whoever is up: full, and
 * without[j] (server j left out for good: a next retry ten years away). */
static apr_status_t make_maps(slb_mc *mc, apr_pool_t *p)
{
    time_t never = time(NULL) + 10 * 365 * 86400;
    int j;

    if ((mc->full = memcached_clone(NULL, mc->master)) == NULL) {
        return APR_ENOMEM;
    }
    mc->without = apr_pcalloc(p, sizeof(memcached_st *)
                                 * (apr_size_t)mc->nservers);
    for (j = 0; j < mc->nservers; j++) {
        memcached_st *w = memcached_clone(NULL, mc->master);

        if (w == NULL) {
            return APR_ENOMEM;
        }
        mc->without[j] = w;
        memcached_instance_next_retry(
            memcached_server_instance_by_position(w, (uint32_t)j), never);
        /* rebuilds the continuum without it */
        (void)memcached_behavior_set(w, MEMCACHED_BEHAVIOR_SORT_HOSTS, 1);
    }
    return APR_SUCCESS;
}

apr_status_t slb_mc_create(slb_mc **out, apr_pool_t *p, const slb_mc_conf *c)
{
    return slb_mc_create_shared(out, p, c, NULL);
}

apr_status_t slb_mc_create_shared(slb_mc **out, apr_pool_t *p,
                                  const slb_mc_conf *c, slb_mc_counters *ctr)
{
    slb_mc *mc;
    const char *err;
    memcached_st *m;
    apr_status_t rv;
    uint32_t i;
    int start;

    *out = NULL;
    if (c == NULL || check_numbers(p, c) != NULL) {
        return APR_EINVAL;
    }
    if (parse_config(p, c, &m) != NULL) {
        return APR_EINVAL;
    }
    mc = apr_pcalloc(p, sizeof(*mc));
    mc->c = ctr ? ctr : &mc->own_c;
    mc->conf = *c;
    mc->conf.config = apr_pstrdup(p, c->config);
    mc->master = m;
    /* registered first: runs after the mutex and cond are destroyed, which
     * is fine, nothing waits any more by then */
    apr_pool_cleanup_register(p, mc, mc_cleanup, apr_pool_cleanup_null);
    if ((err = apply_behaviors(p, m, c)) != NULL) {
        return APR_EGENERAL;
    }
    mc->nservers = (int)memcached_server_count(m);
    mc->servers = apr_pcalloc(p, sizeof(mc_server) * (apr_size_t)mc->nservers);
    for (i = 0; i < memcached_server_count(m); i++) {
        const memcached_instance_st *in =
            memcached_server_instance_by_position(m, i);
        mc->servers[i].host = apr_pstrdup(p, memcached_server_name(in));
        mc->servers[i].port = (int)memcached_server_port(in);
        mc->servers[i].up = 1;
    }
    if (mc->nservers >= 2) {
        /* a group key per server, found by trying names (ketama gives
         * each server many points: a few tries each) */
        int found = 0, k;

        mc->gk = apr_pcalloc(p, sizeof(char *) * (apr_size_t)mc->nservers);
        for (k = 0; k < 100000 && found < mc->nservers; k++) {
            char gk[32];
            uint32_t j;

            apr_snprintf(gk, sizeof(gk), "slb1:replica:%d", k);
            j = memcached_generate_hash(m, gk, strlen(gk));
            if (j < (uint32_t)mc->nservers && mc->gk[j] == NULL) {
                mc->gk[j] = apr_pstrdup(p, gk);
                found++;
            }
        }
        if ((rv = make_maps(mc, p)) != APR_SUCCESS) {
            return rv;
        }
    }
    mc->window_len = apr_time_from_sec(2 * c->retry_timeout_s + 1);
    if ((rv = apr_thread_mutex_create(&mc->lock, APR_THREAD_MUTEX_DEFAULT,
                                      p)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&mc->freed, p)) != APR_SUCCESS) {
        return rv;
    }
    if (c->write_mode == SLB_MC_WRITE_ASYNC
        && (rv = writer_start(mc, p)) != APR_SUCCESS) {
        return rv;
    }
    /* the handles the process's threads will want, made now rather than
     * by the first requests that find the pool short of one (a clone
     * builds its ketama continuum: about 570,000 instructions) */
    start = c->pool_start >= 1 && c->pool_start <= c->pool_max
                ? c->pool_start : 1;
    mc->pool = memcached_pool_create(m, (uint32_t)start,
                                     (uint32_t)c->pool_max);
    if (mc->pool == NULL) {
        return APR_ENOMEM;
    }
    mc->qmaster = memcached_clone(NULL, m);
    if (mc->qmaster == NULL
        || memcached_failed(memcached_behavior_set(mc->qmaster,
                                                   MEMCACHED_BEHAVIOR_NOREPLY,
                                                   1))
        || (mc->qpool = memcached_pool_create(
                mc->qmaster,
                c->write_mode == SLB_MC_WRITE_QUIET ? (uint32_t)start : 1,
                (uint32_t)c->pool_max))
           == NULL) {
        return APR_ENOMEM;
    }
    *out = mc;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------
 * pool
 * ------------------------------------------------------------------- */

static mc_server *server_named(slb_mc *mc, const memcached_instance_st *in);
static int held(mc_server *s);

/* A handle older than the last time a server was taken back: every server
 * that is not held is asked again at once (see the notes at the top). */
static void resync(slb_mc *mc, memcached_st *h)
{
    apr_uint32_t gen = apr_atomic_read32(&mc->health_gen);
    uint32_t i;

    if ((apr_uint32_t)(apr_uintptr_t)memcached_get_user_data(h) == gen) {
        return;
    }
    for (i = 0; i < memcached_server_count(h); i++) {
        const memcached_instance_st *in =
            memcached_server_instance_by_position(h, i);
        mc_server *s = server_named(mc, in);

        /* only what answers again for the process: a server that is
         * down (cut off, before it is held) stays out of the handles
         * that left it out */
        if (s && !held(s) && apr_atomic_read32(&s->up)) {
            memcached_instance_next_retry(in, 0);
        }
    }
    /* rebuilds the distribution with the servers now admitted */
    (void)memcached_behavior_set(h, MEMCACHED_BEHAVIOR_SORT_HOSTS, 1);
    (void)memcached_set_user_data(h, (void *)(apr_uintptr_t)gen);
}

/* Borrow a memcached_st, waiting at most pool_wait_ms for a free one. */
static apr_status_t borrow(slb_mc *mc, memcached_st **h)
{
    static struct timespec no_wait = { 0, 0 };
    apr_time_t deadline = apr_time_now()
                          + apr_time_from_msec(mc->conf.pool_wait_ms);
    memcached_return_t rc;

    *h = NULL;
    apr_thread_mutex_lock(mc->lock);
    while (mc->lent >= mc->conf.pool_max) {
        apr_interval_time_t left = deadline - apr_time_now();

        if (left <= 0) {
            apr_thread_mutex_unlock(mc->lock);
            CNT_INC(mc->c->pool_exhausted);
            return APR_EAGAIN;
        }
        mc->waiting++;
        (void)apr_thread_cond_timedwait(mc->freed, mc->lock, left);
        mc->waiting--;
    }
    mc->lent++;
    apr_thread_mutex_unlock(mc->lock);

    *h = memcached_pool_fetch(mc->pool, &no_wait, &rc);
    if (*h != NULL) {
        resync(mc, *h);
    }
    if (*h == NULL) {
        /* cannot be exhausted (slots are counted above): a clone failed */
        apr_thread_mutex_lock(mc->lock);
        mc->lent--;
        if (mc->waiting) {
            apr_thread_cond_signal(mc->freed);
        }
        apr_thread_mutex_unlock(mc->lock);
        return APR_ENOMEM;
    }
    return APR_SUCCESS;
}

static void give_back(slb_mc *mc, memcached_st *h)
{
    (void)memcached_pool_release(mc->pool, h);
    apr_thread_mutex_lock(mc->lock);
    mc->lent--;
    if (mc->waiting) {
        apr_thread_cond_signal(mc->freed);
    }
    apr_thread_mutex_unlock(mc->lock);
}

/* ---------------------------------------------------------------------
 * values
 * ------------------------------------------------------------------- */

int slb_mc_value_parse(const char *v, apr_size_t len, slb_binding *out)
{
    apr_size_t i, digits;
    apr_int64_t secs = 0;
    const char *route;
    apr_size_t rlen;

    if (v == NULL || len < 5 || len > SLB_MC_MAX_VALUE_LEN
        || v[0] != '1' || v[1] != ' ') {
        return 0;
    }
    for (i = 2, digits = 0; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
        if (++digits > 13) {
            return 0;
        }
        secs = secs * 10 + (v[i] - '0');
    }
    /* 13 digits hold any apr_time_t in seconds; no more than that */
    if (digits == 0 || i >= len || v[i] != ' '
        || secs > APR_INT64_MAX / APR_USEC_PER_SEC) {
        return 0;
    }
    route = v + i + 1;
    rlen = len - i - 1;
    if (!slb_route_ok(route, rlen)) {
        return 0;
    }
    if (out) {
        memcpy(out->route, route, rlen);
        out->route[rlen] = '\0';
        out->created = apr_time_from_sec(secs);
    }
    return 1;
}

/* Format b into buf; the length, or 0 when the route is not acceptable. */
static apr_size_t value_format(char *buf, apr_size_t size,
                               const slb_binding *b)
{
    apr_size_t rlen = strnlen(b->route, sizeof(b->route));
    apr_time_t created = b->created > 0 ? b->created : apr_time_now();

    if (!slb_route_ok(b->route, rlen)) {
        return 0;
    }
    return (apr_size_t)apr_snprintf(buf, size, "1 %" APR_INT64_T_FMT " %s",
                                    (apr_int64_t)apr_time_sec(created),
                                    b->route);
}

/* memcached treats an expiration above 30 days as a Unix time */
static time_t expiration(apr_uint32_t ttl_s)
{
    if (ttl_s > SLB_MC_RELATIVE_TTL_MAX) {
        return (time_t)apr_time_sec(apr_time_now()) + (time_t)ttl_s;
    }
    return (time_t)ttl_s;
}

static int key_ok(const slb_key *key)
{
    return key != NULL && strnlen(key->text, SLB_KEY_TEXT_LEN) == KEY_LEN;
}

/* ---------------------------------------------------------------------
 * one call: borrow a handle, find the key's server, account for it
 * ------------------------------------------------------------------- */

typedef struct {
    slb_mc *mc;
    const slb_key *key;
    apr_time_t start;
    memcached_st *h;               /* NULL: nothing borrowed */
    mc_server *s;                  /* the key's server (may be NULL) */
    mc_server *trial;              /* a trial call on this held server */
    int readmitted, reconnected, failed_over; /* retries (retry_ok) */
    int skipped;                   /* failed without asking c->s */
    memcached_return_t last;       /* libmemcached's last failure code */
} mc_call;

static apr_status_t map_rc(memcached_return_t rc)
{
    switch (rc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
        return APR_SUCCESS;
    case MEMCACHED_NOTFOUND:
        return APR_NOTFOUND;
    case MEMCACHED_DATA_EXISTS:
    case MEMCACHED_NOTSTORED:
        return APR_EEXIST;
    case MEMCACHED_TIMEOUT:
        return APR_TIMEUP;
    default:
        return APR_EGENERAL;
    }
}

/* A broken connection (a server that restarted or died since the handle
 * last used it): worth one more try, which reconnects or, with replicas,
 * reads a replica once the connect fails.  An mget (every get here is
 * one, of one key) says MEMCACHED_SOME_ERRORS for it: the first get on
 * each connection after a server restarted, which was taken for an
 * error, and the session it looked for placed anew. */
static int retryable(memcached_return_t rc)
{
    switch (rc) {
    case MEMCACHED_SOME_ERRORS:
    case MEMCACHED_CONNECTION_FAILURE:
    case MEMCACHED_ERRNO:
    case MEMCACHED_WRITE_FAILURE:
    case MEMCACHED_READ_FAILURE:
    case MEMCACHED_UNKNOWN_READ_FAILURE:
    case MEMCACHED_PROTOCOL_ERROR:
        return 1;
    default:
        return 0;
    }
}

static mc_server *server_named(slb_mc *mc, const memcached_instance_st *in)
{
    const char *name;
    int port, i;

    if (in == NULL || (name = memcached_server_name(in)) == NULL) {
        return NULL;
    }
    port = (int)memcached_server_port(in);
    for (i = 0; i < mc->nservers; i++) {
        if (mc->servers[i].port == port
            && strcmp(mc->servers[i].host, name) == 0) {
            return &mc->servers[i];
        }
    }
    return NULL;
}

static mc_server *server_of(slb_mc *mc, memcached_st *h, const slb_key *key)
{
    memcached_return_t rc;

    return server_named(mc, memcached_server_by_key(h, key->text, KEY_LEN,
                                                    &rc));
}

static int held(mc_server *s)
{
    apr_uint64_t until = CNT_READ(s->hold_until);

    return until != 0 && (apr_uint64_t)apr_time_now() < until;
}

static int server_index(slb_mc *mc, const mc_server *s)
{
    return (int)(s - mc->servers);
}

/* Set the next retry of server j in handle h and rebuild its continuum
 * (SORT_HOSTS rebuilds the distribution, leaving out the servers to retry
 * later, and keeps any --SERVER weights, unlike DISTRIBUTION).  With no
 * other live server libmemcached keeps the continuum as it is. */
static void set_retry(memcached_st *h, int j, time_t when)
{
    if (j >= 0 && (uint32_t)j < memcached_server_count(h)) {
        memcached_instance_next_retry(
            memcached_server_instance_by_position(h, (uint32_t)j), when);
        (void)memcached_behavior_set(h, MEMCACHED_BEHAVIOR_SORT_HOSTS, 1);
    }
}

/* Leave a held server out of this handle's continuum until its hold ends
 * (libmemcached rebuilds the continuum then). */
static void eject_until(slb_mc *mc, memcached_st *h, mc_server *s,
                        time_t until)
{
    set_retry(h, server_index(mc, s), until);
}

static void eject(slb_mc *mc, memcached_st *h, mc_server *s)
{
    eject_until(mc, h, s, (time_t)apr_time_sec(CNT_READ(s->hold_until)) + 1);
}

/* ---------------------------------------------------------------------
 * the recovery window
 * ------------------------------------------------------------------- */

/* This process saw a server fail, come back or lose its connection:
 * other processes (other balancers) may see the servers otherwise for
 * up to window_len (2 x retry_timeout_s + 1 s) from now. */
static void open_window(slb_mc *mc)
{
    CNT_SET(mc->window_until, (apr_uint64_t)(apr_time_now()
                                             + mc->window_len));
}

int slb_mc_in_window(slb_mc *mc)
{
    int i;

    if (mc == NULL || mc->without == NULL) {
        return 0;                    /* one server: nowhere else to look */
    }
    if ((apr_uint64_t)apr_time_now() < CNT_READ(mc->window_until)) {
        return 1;
    }
    for (i = 0; i < mc->nservers; i++) {
        if (!apr_atomic_read32(&mc->servers[i].up) || held(&mc->servers[i])) {
            return 1;
        }
    }
    return 0;
}

/* Where else key may be, besides server `asked`: its home (its server
 * when every server is up) and its fallback (its server when the home is
 * out: where a process that does not see the home writes it).  Returns
 * how many of the two are in out[]. */
static int elsewhere(slb_mc *mc, const slb_key *key, int asked, int out[2])
{
    uint32_t home, fb;
    int n = 0;

    if (mc->without == NULL) {
        return 0;
    }
    home = memcached_generate_hash(mc->full, key->text, KEY_LEN);
    if (home >= (uint32_t)mc->nservers) {
        return 0;
    }
    if ((int)home != asked && mc->gk[home]) {
        out[n++] = (int)home;
    }
    fb = memcached_generate_hash(mc->without[home], key->text, KEY_LEN);
    if (fb < (uint32_t)mc->nservers && fb != home && (int)fb != asked
        && mc->gk[fb]) {
        out[n++] = (int)fb;
    }
    return n;
}

/* ---------------------------------------------------------------------
 * one view of each server per process
 * ------------------------------------------------------------------- */

/* A trial call on held server s may start now: one at a time per
 * process, and not before next_trial. */
static int trial_begin(slb_mc *mc, mc_server *s)
{
    if ((apr_uint64_t)apr_time_now() < CNT_READ(s->next_trial)
        || apr_atomic_cas32(&s->trial, 1, 0) != 0) {
        return 0;
    }
    CNT_INC(mc->c->trials);
    return 1;
}

/* The trial ended.  The first TRIALS_FREE failed trials in a row leave
 * the next one free to start at once (a server slow for a moment, or
 * restarted, is found by the next call that needs it); after that each
 * waits twice as long as the last, from io_timeout_ms (at least 50 ms)
 * up to retry_timeout_s or TRIAL_WAIT_MAX, whichever is shorter: a black
 * hole costs a timeout at most every TRIAL_WAIT_MAX, one thread at a
 * time, and a server back after an outage is tried again within it (a
 * wait of a whole retry period would leave the sessions of that time
 * unbound).  A success resets the count. */
#define TRIALS_FREE 1
#define TRIAL_WAIT_MAX apr_time_from_msec(250)

static apr_uint64_t trial_wait_max(const slb_mc *mc)
{
    apr_uint64_t r =
        (apr_uint64_t)apr_time_from_sec(mc->conf.retry_timeout_s);

    return r < (apr_uint64_t)TRIAL_WAIT_MAX ? r : (apr_uint64_t)TRIAL_WAIT_MAX;
}

static void trial_end(slb_mc *mc, mc_server *s, int ok)
{
    if (ok) {
        apr_atomic_set32(&s->trial_fails, 0);
        CNT_SET(s->backoff, 0);
        CNT_SET(s->next_trial, 0);
    }
    else if (apr_atomic_inc32(&s->trial_fails) + 1 > TRIALS_FREE) {
        apr_uint64_t b = CNT_READ(s->backoff);
        apr_uint64_t cap = trial_wait_max(mc);
        apr_uint64_t first = (apr_uint64_t)apr_time_from_msec(
            mc->conf.io_timeout_ms > 50 ? mc->conf.io_timeout_ms : 50);

        b = b ? b * 2 : first;
        if (b > cap) {
            b = cap;
        }
        CNT_SET(s->backoff, b);
        CNT_SET(s->next_trial, (apr_uint64_t)apr_time_now() + b);
    }
    apr_atomic_set32(&s->trial, 0);
}

/* A call on s answered (a hit, a miss or a conflict): if the process had
 * it down, it is taken back; every other handle follows at its next
 * borrow (resync), h is in sync already. */
static void server_ok(slb_mc *mc, memcached_st *h, mc_server *s)
{
    if (apr_atomic_read32(&s->fails_in_row)) {
        apr_atomic_set32(&s->fails_in_row, 0);
    }
    if (apr_atomic_read32(&s->trial_fails)) {
        /* answering again, by a trial or not: a later hold starts with
         * free trials (trial_end) */
        apr_atomic_set32(&s->trial_fails, 0);
        CNT_SET(s->backoff, 0);
        CNT_SET(s->next_trial, 0);
    }
    if (CNT_READ(s->hold_until)) {
        CNT_SET(s->hold_until, 0);
    }
    if (apr_atomic_xchg32(&s->up, 1) == 0) {
        apr_uint32_t gen = apr_atomic_inc32(&mc->health_gen) + 1;
        int i;

        /* a server is back: the others may be too (a restart of them
         * all, a network healed): their next trials need not wait */
        for (i = 0; i < mc->nservers; i++) {
            CNT_SET(mc->servers[i].next_trial, 0);
        }
        open_window(mc);
        (void)memcached_set_user_data(h, (void *)(apr_uintptr_t)gen);
    }
}

/* A call on s failed with rv (with handle h).  After
 * server_failure_limit failures in a row, whatever their kind (refused,
 * broken or silent), s is held for retry_timeout_s: every handle of the
 * process leaves it out at its next call, not only the one that saw the
 * failures (libmemcached's own failure limit is set out of reach: it
 * counts per handle).  Its keys go to the other servers; when it is the
 * only one left for a key, one call at a time may ask it anyway (a trial,
 * call_begin; spaced out as trial_end says) and the others fail at once:
 * a black hole holds one thread per process in its timeout, not all of
 * them, and a server that was slow for a moment is back at the first
 * call after it answers again (a hold that waited for retry_timeout_s
 * would lose every session looked up meanwhile). */
static void server_failed(slb_mc *mc, memcached_st *h, mc_server *s,
                          apr_status_t rv)
{
    (void)rv;
    /* what the handle's connections may still carry is not to be read:
     * a reply that comes late (a timeout) would be taken for the answer
     * to the next call on the same connection, and every call after it
     * would read the one before's (libmemcached does not always close a
     * connection that timed out, nor one that met a reset) */
    memcached_quit(h);
    CNT_INC(s->failures);
    if (apr_atomic_xchg32(&s->up, 0) == 1) {
        open_window(mc);
    }
    if (apr_atomic_inc32(&s->fails_in_row) + 1
        >= (apr_uint32_t)mc->conf.server_failure_limit) {
        CNT_SET(s->hold_until, (apr_uint64_t)(apr_time_now()
                + apr_time_from_sec(mc->conf.retry_timeout_s)));
        eject(mc, h, s);
        open_window(mc);
    }
}

/* Start a call: APR_SUCCESS with c->h borrowed, or the status to return
 * (c->h set too when the key's server is held). */
static apr_status_t call_begin(mc_call *c, slb_mc *mc, const slb_key *key)
{
    apr_status_t rv;

    memset(c, 0, sizeof(*c));
    c->mc = mc;
    c->key = key;
    c->start = apr_time_now();
    c->last = MEMCACHED_SUCCESS;
    if (!key_ok(key)) {
        return APR_EINVAL;
    }
    if ((rv = borrow(mc, &c->h)) != APR_SUCCESS) {
        return rv;
    }
    c->s = server_of(mc, c->h, key);
    if (c->s && held(c->s)) {
        eject(mc, c->h, c->s);
        c->s = server_of(mc, c->h, key);
        if (c->s && held(c->s)) {
            /* no other server: a trial, or fail at once */
            if (!trial_begin(mc, c->s)) {
                c->skipped = 1;          /* the server was not asked */
                return APR_EGENERAL;
            }
            c->trial = c->s;
            set_retry(c->h, server_index(mc, c->s), 0);
        }
    }
    return APR_SUCCESS;
}

/* One call took us microseconds: the total, the slowest, the histogram. */
static void observe(slb_mc *mc, apr_uint64_t us)
{
    apr_uint64_t max;
    int i;

    CNT_ADD(mc->c->latency_us_total, us);
    while ((max = CNT_READ(mc->c->latency_us_max)) < us) {
        if (CNT_CAS(mc->c->latency_us_max, us, max) == max) {
            break;
        }
    }
    for (i = 0; i < SLB_MC_LATENCY_BUCKETS
                && us > slb_mc_latency_bounds_us[i]; i++) {
    }
    CNT_INC(mc->c->latency[i]);
}

/* Account for a call that ends with rv (the caller's status); give the
 * handle back; returns rv. */
static apr_status_t call_end(mc_call *c, apr_status_t rv)
{
    slb_mc *mc = c->mc;
    mc_server *s = c->s;
    int failed = !(rv == APR_SUCCESS || rv == APR_NOTFOUND
                   || rv == APR_EEXIST);

    observe(mc, (apr_uint64_t)(apr_time_now() - c->start));
    if (failed) {
        CNT_INC(mc->c->errors);
        if (rv == APR_TIMEUP) {
            CNT_INC(mc->c->timeouts);
        }
    }
    if (c->h == NULL) {
        if (c->trial) {
            trial_end(mc, c->trial, 0);
        }
        return rv;
    }
    if ((c->last == MEMCACHED_SERVER_MARKED_DEAD
         || c->last == MEMCACHED_SERVER_TEMPORARILY_DISABLED)
        && !c->readmitted && !c->trial && !c->failed_over) {
        /* this handle did not ask it (left out until its next retry);
         * once re-admitted here, the same codes tell a connect that
         * failed */
        c->skipped = 1;
    }
    if (s && rv != APR_EINVAL && !c->skipped) {
        if (!failed && memcached_fatal(memcached_last_error(c->h))
            && server_named(mc, memcached_server_get_last_disconnect(c->h))
               == s) {
            /* served by a replica while the key's server failed */
            failed = 1;
        }
        if (failed) {
            server_failed(mc, c->h, s, rv);
        }
        else {
            server_ok(mc, c->h, s);
        }
    }
    if (c->trial) {
        trial_end(mc, c->trial, !failed && s == c->trial);
    }
    give_back(mc, c->h);
    c->h = NULL;
    return rv;
}

/* What a server that does not answer makes libmemcached say. */
static int server_failure(memcached_return_t rc)
{
    return retryable(rc) || rc == MEMCACHED_TIMEOUT
           || rc == MEMCACHED_CONNECTION_FAILURE
           || rc == MEMCACHED_SERVER_TEMPORARILY_DISABLED
           || rc == MEMCACHED_SERVER_MARKED_DEAD;
}

/*
 * Whether the call that just failed with c->last is worth another try (a
 * call is tried three times at most, each bounded by the timeouts):
 *  - a trial on a held server failed while every server is held: another
 *    held server is tried (the first to come back after a restart of
 *    them all is found at once);
 *  - this handle leaves out a server the process does not hold: asked;
 *  - a broken connection (the server restarted, or died; other processes
 *    may see it otherwise for a while, hence the window): once more on a
 *    new connection, which reconnects or finds it dead;
 *  - the key's server does not answer (refused, silent, skipped) and
 *    another can take the key: the next server in this handle's
 *    continuum (the replica, with replicas > 0).  A lone server that
 *    failed is not asked again: the call's time stays bounded.
 */
static int retry_ok(mc_call *c)
{
    mc_server *was = c->s;

    if (c->last == MEMCACHED_SUCCESS) {
        return 0;
    }
    if (c->trial && c->h && c->last != MEMCACHED_SUCCESS) {
        /* a trial that failed, every server held: another held server
         * is tried once, each at most once per call (after a restart of
         * them all, the first to come back is found by the first call) */
        mc_server *t = c->trial;
        int i;

        server_failed(c->mc, c->h, t, APR_EGENERAL);
        trial_end(c->mc, t, 0);
        c->trial = NULL;
        for (i = 0; i < c->mc->nservers; i++) {
            mc_server *o = &c->mc->servers[i];

            if (o != t && held(o) && trial_begin(c->mc, o)) {
                c->trial = o;
                set_retry(c->h, i, 0);
                c->s = server_of(c->mc, c->h, c->key);
                if (c->s != o) {
                    trial_end(c->mc, o, 0);
                    c->trial = NULL;
                    c->s = was;
                    return 0;
                }
                if (retryable(c->last)) {
                    memcached_quit(c->h);
                }
                return 1;
            }
        }
        c->s = NULL;                 /* accounted for already */
        return 0;
    }
    if ((c->last == MEMCACHED_SERVER_TEMPORARILY_DISABLED
         || c->last == MEMCACHED_SERVER_MARKED_DEAD) && was && c->h
        && !held(was) && !c->readmitted) {
        /* this handle left the server out (a failover of an earlier call
         * of its own) while the process does not hold it: the process's
         * view wins, the server is asked */
        c->readmitted = 1;
        set_retry(c->h, server_index(c->mc, was), 0);
        return 1;
    }
    if (retryable(c->last) && !c->reconnected) {
        c->reconnected = 1;
        open_window(c->mc);
        if (was && c->h && !held(was)) {
            /* libmemcached may count the broken connection against the
             * server in this handle (its failure limit) and skip it */
            set_retry(c->h, server_index(c->mc, was), 0);
        }
        if (c->h) {
            /* and on a new connection: libmemcached does not always close
             * the broken one (a write that met a peer's reset) */
            memcached_quit(c->h);
        }
        return 1;
    }
    if (!server_failure(c->last) || was == NULL || c->h == NULL) {
        return 0;
    }
    /* the key's server failed: another server takes the key (the next
     * one in this handle's continuum), the failed one being left out of
     * this handle for retry_timeout_s and counted as failing, so that
     * every handle holds it after server_failure_limit */
    {
        /* the others as the process sees them: a server this handle left
         * out after a failure of its own but the process does not hold
         * may take the key (it may be the one that came back) */
        int i;

        for (i = 0; i < c->mc->nservers; i++) {
            mc_server *o = &c->mc->servers[i];

            if (o != was && !held(o)) {
                memcached_instance_next_retry(
                    memcached_server_instance_by_position(c->h,
                                                          (uint32_t)i), 0);
            }
        }
    }
    eject_until(c->mc, c->h, was, (time_t)apr_time_sec(apr_time_now()
                + apr_time_from_sec(c->mc->conf.retry_timeout_s)) + 1);
    c->s = server_of(c->mc, c->h, c->key);
    if (c->s == NULL || c->s == was) {
        c->s = was;
        return 0;
    }
    c->failed_over = 1;
    server_failed(c->mc, c->h, was, c->last == MEMCACHED_TIMEOUT
                                    ? APR_TIMEUP : APR_EGENERAL);
    return 1;
}

/*
 * In the recovery window, a key may be where this process does not look:
 * on its home server, written by a process that sees every server, or on
 * its fallback, written by one that does not see the home (elsewhere()).
 * Server j is asked through its group key.  When this handle leaves j out
 * (held, or not retried yet by this handle) the call is a trial on j
 * (*trial set), so that a server that is back is found by the first call
 * that needs it.  Returns j, or -1 when j cannot be asked now.
 */
static int on_server(mc_call *c, int j, int *trial)
{
    slb_mc *mc = c->mc;
    mc_server *s = &mc->servers[j];

    *trial = 0;
    if (memcached_generate_hash(c->h, mc->gk[j], strlen(mc->gk[j]))
        == (uint32_t)j) {
        return j;                    /* in this handle's continuum */
    }
    if (!trial_begin(mc, s)) {
        return -1;
    }
    *trial = 1;
    set_retry(c->h, j, 0);
    if (memcached_generate_hash(c->h, mc->gk[j], strlen(mc->gk[j]))
        != (uint32_t)j) {
        trial_end(mc, s, 0);
        *trial = 0;
        return -1;
    }
    return j;
}

/* The server j asked by a window read or write answered (ok) or not. */
static void on_server_done(mc_call *c, int j, int trial, int ok)
{
    mc_server *s = &c->mc->servers[j];

    if (ok) {
        server_ok(c->mc, c->h, s);
    }
    else {
        server_failed(c->mc, c->h, s, APR_EGENERAL);
    }
    if (trial) {
        trial_end(c->mc, s, ok);
    }
}

/* ---------------------------------------------------------------------
 * operations
 * ------------------------------------------------------------------- */

/* Internal status of read_value(): a value that is not a binding. */
#define SLB_MC_MALFORMED APR_EBADF

/*
 * Read key with handle h: APR_SUCCESS (*out and *cas set), APR_NOTFOUND,
 * SLB_MC_MALFORMED for a value that is not a binding (*cas set, so that it
 * can be replaced), or an error (*last set).  The value is parsed (copied)
 * out of libmemcached's result, whose buffer is freed before returning.
 */
static apr_status_t read_value_on(memcached_st *h, const char *group_key,
                                  const slb_key *key, slb_binding *out,
                                  uint64_t *cas, memcached_return_t *last)
{
    const char *keys[1];
    size_t lens[1];
    memcached_result_st result, *r;
    memcached_return_t rc;
    apr_status_t rv = APR_NOTFOUND;
    int seen = 0;

    keys[0] = key->text;
    lens[0] = KEY_LEN;
    rc = group_key ? memcached_mget_by_key(h, group_key, strlen(group_key),
                                           keys, lens, 1)
                   : memcached_mget(h, keys, lens, 1);
    if (memcached_fatal(rc)) {
        *last = rc;
        return map_rc(rc);
    }
    if (memcached_result_create(h, &result) == NULL) {
        return APR_ENOMEM;
    }
    /* drain every response (there is one at most); keep the first */
    while ((r = memcached_fetch_result(h, &result, &rc)) != NULL) {
        size_t klen = memcached_result_key_length(r);

        if (seen++) {
            continue;
        }
        /* the key comes back without any --NAMESPACE prefix */
        if (klen < KEY_LEN
            || memcmp(memcached_result_key_value(r) + klen - KEY_LEN,
                      key->text, KEY_LEN) != 0) {
            rv = SLB_MC_MALFORMED;
            continue;
        }
        if (cas) {
            *cas = memcached_result_cas(r);
        }
        rv = slb_mc_value_parse(memcached_result_value(r),
                                memcached_result_length(r), out)
                 ? APR_SUCCESS : SLB_MC_MALFORMED;
    }
    memcached_result_free(&result);
    if (!seen && memcached_fatal(rc)) {
        *last = rc;
        return map_rc(rc);
    }
    return rv;
}

static apr_status_t read_value(memcached_st *h, const slb_key *key,
                               slb_binding *out, uint64_t *cas,
                               memcached_return_t *last)
{
    return read_value_on(h, NULL, key, out, cas, last);
}

/*
 * With replicas, the key's server may hold no binding or an old one: it
 * came back (empty, or with what it had before it was cut off) while the
 * binding was written, or re-pinned, on a replica only.  Each replica
 * libmemcached writes to (the servers after the key's one in the sorted
 * list) is read through a group key that selects it in this handle; the
 * most recent binding found (by its creation time) is returned.
 */
static apr_status_t read_replicas(slb_mc *mc, memcached_st *h,
                                  const slb_key *key, slb_binding *out)
{
    uint32_t n = memcached_server_count(h), p, j;
    apr_status_t rv = APR_NOTFOUND;
    int r;

    if (mc->gk == NULL || n != (uint32_t)mc->nservers) {
        return APR_NOTFOUND;
    }
    p = memcached_generate_hash(h, key->text, KEY_LEN);
    for (r = 1; r <= mc->conf.replicas; r++) {
        memcached_return_t last = MEMCACHED_SUCCESS;
        slb_binding b;
        const char *gk;

        j = (p + (uint32_t)r) % n;
        gk = mc->gk[j];
        /* a server left out of this handle changes the mapping: skip */
        if (j == p || gk == NULL
            || memcached_generate_hash(h, gk, strlen(gk)) != j) {
            continue;
        }
        if (read_value_on(h, gk, key, &b, NULL, &last) == APR_SUCCESS
            && (rv != APR_SUCCESS || b.created > out->created)) {
            *out = b;
            rv = APR_SUCCESS;
        }
    }
    return rv;
}

/* Write the value just stored on the key's server to its replicas too
 * (libmemcached replicates set, not add or cas), and send them now. */
static void replicate(slb_mc *mc, memcached_st *h, const slb_key *key,
                      const char *val, apr_size_t len, time_t exp)
{
    if (mc->conf.replicas > 0) {
        (void)memcached_set(h, key->text, KEY_LEN, val, len, exp, 0);
        (void)memcached_flush_buffers(h);
    }
}

/* Lifetime of a copy written on server j in the window: the binding's
 * own on its home, where every process looks once they agree; on any
 * other server just long enough to bridge the window, so that a copy
 * there cannot outlive a later re-pin written on the home only. */
static apr_uint32_t copy_ttl(slb_mc *mc, int j, int home, apr_uint32_t ttl_s)
{
    apr_uint32_t w = (apr_uint32_t)apr_time_sec(mc->window_len) + 2;

    if (j == home || (ttl_s != 0 && ttl_s < w)) {
        return ttl_s;
    }
    return w;
}

static int home_of(slb_mc *mc, const slb_key *key);

int slb_mc_key_home(slb_mc *mc, const slb_key *key)
{
    return mc && mc->full && key_ok(key) ? home_of(mc, key) : -1;
}

/* home of key: its server when every server is up */
static int home_of(slb_mc *mc, const slb_key *key)
{
    uint32_t home = memcached_generate_hash(mc->full, key->text, KEY_LEN);

    return home < (uint32_t)mc->nservers ? (int)home : -1;
}

/* In the window, a miss where this process looks: ask the key's home and
 * fallback (on_server); what one of them holds is the answer, and a copy
 * is added where this process looks, for its next calls. */
static apr_status_t window_read(mc_call *c, slb_binding *out)
{
    slb_mc *mc = c->mc;
    int cand[2], n, i, asked = c->s ? server_index(mc, c->s) : -1;
    int home = home_of(mc, c->key);

    n = elsewhere(mc, c->key, asked, cand);
    for (i = 0; i < n; i++) {
        memcached_return_t last = MEMCACHED_SUCCESS;
        slb_binding b;
        apr_status_t r;
        int trial, j = on_server(c, cand[i], &trial);

        if (j < 0) {
            continue;
        }
        CNT_INC(mc->c->window_reads);
        r = read_value_on(c->h, mc->gk[j], c->key, &b, NULL, &last);
        if (retryable(last)) {
            /* a connection broken by the server's restart: once more, on
             * a new one */
            memcached_quit(c->h);
            last = MEMCACHED_SUCCESS;
            r = read_value_on(c->h, mc->gk[j], c->key, &b, NULL, &last);
        }
        on_server_done(c, j, trial, r == APR_SUCCESS || r == APR_NOTFOUND
                                    || r == SLB_MC_MALFORMED);
        if (r == APR_SUCCESS) {
            char val[SLB_MC_MAX_VALUE_LEN + 16];
            apr_size_t len = value_format(val, sizeof(val), &b);

            CNT_INC(mc->c->window_hits);
            if (len > 0 && asked >= 0 && mc->gk[asked]) {
                (void)memcached_add_by_key(
                    c->h, mc->gk[asked], strlen(mc->gk[asked]), c->key->text,
                    KEY_LEN, val, len,
                    expiration(copy_ttl(mc, asked, home, SLB_MC_REPAIR_TTL)),
                    0);
            }
            *out = b;
            return APR_SUCCESS;
        }
    }
    return APR_NOTFOUND;
}

enum { W_ADD, W_SET, W_DEL };

static memcached_return_t window_op(mc_call *c, int op, const char *gk,
                                    const char *val, apr_size_t len,
                                    time_t exp)
{
    switch (op) {
    case W_DEL:
        return memcached_delete_by_key(c->h, gk, strlen(gk), c->key->text,
                                       KEY_LEN, 0);
    case W_SET:
        return memcached_set_by_key(c->h, gk, strlen(gk), c->key->text,
                                    KEY_LEN, val, len, exp, 0);
    default:
        return memcached_add_by_key(c->h, gk, strlen(gk), c->key->text,
                                    KEY_LEN, val, len, exp, 0);
    }
}

/*
 * In the window, a write that succeeded where this process looks goes to
 * the key's home and fallback too (on_server), so that a process that
 * looks at either finds it.  An add that meets another binding on the
 * home yields to it (the home is where every process looks once they
 * agree): returns 1 with *winner set, and the copy where this process
 * looks is overwritten with it.
 */
static int window_write(mc_call *c, int op, const slb_binding *b,
                        apr_uint32_t ttl_s, slb_binding *winner)
{
    slb_mc *mc = c->mc;
    mc_server *main_s = server_of(mc, c->h, c->key);
    int asked = main_s ? server_index(mc, main_s) : -1;
    int home = home_of(mc, c->key), cand[2], n, i, won = 0;
    char val[SLB_MC_MAX_VALUE_LEN + 16];
    apr_size_t len = 0;

    if (op != W_DEL && (len = value_format(val, sizeof(val), b)) == 0) {
        return 0;
    }
    n = elsewhere(mc, c->key, asked, cand);
    for (i = 0; i < n; i++) {
        memcached_return_t rc;
        time_t exp;
        int trial, ok, j = on_server(c, cand[i], &trial);
        const char *gk;

        if (j < 0) {
            continue;
        }
        gk = mc->gk[j];
        exp = expiration(copy_ttl(mc, j, home, ttl_s));
        CNT_INC(mc->c->window_writes);
        rc = window_op(c, op, gk, val, len, exp);
        if (retryable(rc)) {
            memcached_quit(c->h);      /* broken: once more, on a new one */
            rc = window_op(c, op, gk, val, len, exp);
        }
        if (op == W_DEL) {
            ok = memcached_success(rc) || rc == MEMCACHED_NOTFOUND;
        }
        else if (op == W_SET) {
            ok = memcached_success(rc);
        }
        else {
            ok = memcached_success(rc) || rc == MEMCACHED_DATA_EXISTS
                 || rc == MEMCACHED_NOTSTORED;
            if (ok && !memcached_success(rc) && j == home && !won) {
                memcached_return_t last = MEMCACHED_SUCCESS;
                slb_binding there;

                if (read_value_on(c->h, gk, c->key, &there, NULL, &last)
                        == APR_SUCCESS
                    && strcmp(there.route, b->route) != 0) {
                    char wv[SLB_MC_MAX_VALUE_LEN + 16];
                    apr_size_t wl = value_format(wv, sizeof(wv), &there);

                    if (wl > 0 && asked >= 0 && mc->gk[asked]) {
                        (void)memcached_set_by_key(
                            c->h, mc->gk[asked], strlen(mc->gk[asked]),
                            c->key->text, KEY_LEN, wv, wl,
                            expiration(copy_ttl(mc, asked, home, ttl_s)), 0);
                    }
                    *winner = there;
                    won = 1;
                }
            }
        }
        on_server_done(c, j, trial, ok);
    }
    if (mc->conf.replicas > 0) {
        (void)memcached_flush_buffers(c->h);
    }
    return won;
}

/* A value that is not a binding: an error, yet a miss. */
static void count_malformed(slb_mc *mc)
{
    CNT_INC(mc->c->malformed);
    CNT_INC(mc->c->errors);
}

/* A libmemcached code where none of the expected outcomes fits. */
static apr_status_t failure(memcached_return_t rc, memcached_return_t *last)
{
    apr_status_t rv = map_rc(rc);

    *last = rc;
    return rv == APR_TIMEUP ? rv : APR_EGENERAL;
}

apr_status_t slb_mc_get(slb_mc *mc, const slb_key *key, slb_binding *out)
{
    mc_call c;
    slb_binding got, rep;
    apr_status_t rv;
    uint64_t cas = 0;
    int tries;

    CNT_INC(mc->c->gets);
    rv = call_begin(&c, mc, out ? key : NULL);
    for (tries = 0; rv == APR_SUCCESS; tries++) {
        c.last = MEMCACHED_SUCCESS;
        rv = read_value_on(c.h, NULL, key, &got, &cas, &c.last);
        if (tries >= 2 || !retry_ok(&c)) {
            break;
        }
        rv = APR_SUCCESS;                   /* once more */
    }
    if (rv == SLB_MC_MALFORMED) {
        count_malformed(mc);
        rv = APR_NOTFOUND;
    }
    if ((rv == APR_SUCCESS || rv == APR_NOTFOUND) && c.h
        && mc->conf.replicas > 0
        && read_replicas(mc, c.h, key, &rep) == APR_SUCCESS
        && (rv == APR_NOTFOUND || rep.created > got.created)) {
        /* a replica knows better: use it, and repair the key's server
         * (add where it has nothing, compare-and-swap over the old
         * binding: one written there meanwhile wins); the caller's touch
         * then sets its lifetime */
        char val[SLB_MC_MAX_VALUE_LEN + 16];
        apr_size_t len = value_format(val, sizeof(val), &rep);

        if (len > 0) {
            if (rv == APR_NOTFOUND) {
                (void)memcached_add(c.h, key->text, KEY_LEN, val, len,
                                    expiration(SLB_MC_REPAIR_TTL), 0);
            }
            else {
                (void)memcached_cas(c.h, key->text, KEY_LEN, val, len,
                                    expiration(SLB_MC_REPAIR_TTL), 0, cas);
            }
        }
        CNT_INC(mc->c->replica_hits);
        got = rep;
        rv = APR_SUCCESS;
    }
    if (rv == APR_NOTFOUND && c.h && slb_mc_in_window(mc)
        && window_read(&c, &got) == APR_SUCCESS) {
        rv = APR_SUCCESS;
    }
    rv = call_end(&c, rv);
    if (rv == APR_SUCCESS) {
        CNT_INC(mc->c->hits);
        *out = got;
    }
    else if (rv == APR_NOTFOUND) {
        CNT_INC(mc->c->misses);
    }
    return rv;
}

/* The add protocol on one handle: add; when bound, read the winner back;
 * a key can vanish (expiry, delete) or hold garbage in between, hence a
 * few rounds, each bounded by the timeouts. */
static apr_status_t add_rounds(mc_call *c, const char *val, apr_size_t len,
                               time_t exp, slb_binding *existing)
{
    memcached_st *h = c->h;
    const slb_key *key = c->key;
    memcached_return_t rc;
    apr_status_t rv = APR_EGENERAL;
    int round;

    for (round = 0; round < 3; round++) {
        slb_binding cur;
        uint64_t cas = 0;

        rc = memcached_add(h, key->text, KEY_LEN, val, len, exp, 0);
        if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_STORED) {
            replicate(c->mc, h, key, val, len, exp);
            return APR_SUCCESS;
        }
        if (rc != MEMCACHED_DATA_EXISTS && rc != MEMCACHED_NOTSTORED) {
            return failure(rc, &c->last);
        }
        rv = read_value(h, key, &cur, &cas, &c->last);
        if (rv == APR_SUCCESS) {
            CNT_INC(c->mc->c->add_conflicts);
            if (existing) {
                *existing = cur;
            }
            return APR_EEXIST;
        }
        if (rv == APR_NOTFOUND) {
            rv = APR_EGENERAL;              /* gone meanwhile: add again */
            continue;
        }
        if (rv != SLB_MC_MALFORMED) {
            return rv;                      /* an error */
        }
        /* garbage under our key: replace it unless it changed meanwhile */
        count_malformed(c->mc);
        rv = APR_EGENERAL;
        rc = memcached_cas(h, key->text, KEY_LEN, val, len, exp, 0, cas);
        if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_STORED) {
            replicate(c->mc, h, key, val, len, exp);
            return APR_SUCCESS;
        }
        if (rc != MEMCACHED_DATA_EXISTS && rc != MEMCACHED_NOTFOUND
            && rc != MEMCACHED_NOTSTORED) {
            return failure(rc, &c->last);
        }
    }
    return rv;
}

apr_status_t slb_mc_add(slb_mc *mc, const slb_key *key, const slb_binding *b,
                        apr_uint32_t ttl_s, slb_binding *existing)
{
    char val[SLB_MC_MAX_VALUE_LEN + 16];
    apr_size_t len = 0;
    mc_call c;
    apr_status_t rv;
    int tries;

    CNT_INC(mc->c->adds);
    if (b == NULL || (len = value_format(val, sizeof(val), b)) == 0) {
        key = NULL;                         /* APR_EINVAL */
    }
    rv = call_begin(&c, mc, key);
    for (tries = 0; rv == APR_SUCCESS; tries++) {
        c.last = MEMCACHED_SUCCESS;
        rv = add_rounds(&c, val, len, expiration(ttl_s), existing);
        if (tries >= 2 || !retry_ok(&c)) {
            break;
        }
        rv = APR_SUCCESS;                   /* once more */
    }
    if ((rv == APR_SUCCESS || (rv == APR_EEXIST && existing)) && c.h
        && slb_mc_in_window(mc)) {
        slb_binding winner;

        if (window_write(&c, W_ADD, rv == APR_SUCCESS ? b : existing, ttl_s,
                         &winner) && rv == APR_SUCCESS) {
            CNT_INC(mc->c->add_conflicts);
            if (existing) {
                *existing = winner;
            }
            rv = APR_EEXIST;
        }
    }
    return call_end(&c, rv);
}

apr_status_t slb_mc_set(slb_mc *mc, const slb_key *key, const slb_binding *b,
                        apr_uint32_t ttl_s)
{
    char val[SLB_MC_MAX_VALUE_LEN + 16];
    apr_size_t len = 0;
    memcached_return_t rc;
    mc_call c;
    apr_status_t rv;
    int tries;

    CNT_INC(mc->c->sets);
    if (b == NULL || (len = value_format(val, sizeof(val), b)) == 0) {
        key = NULL;                         /* APR_EINVAL */
    }
    rv = call_begin(&c, mc, key);
    for (tries = 0; rv == APR_SUCCESS; tries++) {
        c.last = MEMCACHED_SUCCESS;
        rc = memcached_set(c.h, key->text, KEY_LEN, val, len,
                           expiration(ttl_s), 0);
        if (mc->conf.replicas > 0) {
            /* the replica copies were queued, not sent */
            (void)memcached_flush_buffers(c.h);
        }
        rv = memcached_success(rc) ? APR_SUCCESS : failure(rc, &c.last);
        if (tries >= 2 || !retry_ok(&c)) {
            break;
        }
        rv = APR_SUCCESS;                   /* once more */
    }
    if (rv == APR_SUCCESS && c.h && slb_mc_in_window(mc)) {
        (void)window_write(&c, W_SET, b, ttl_s, NULL);
    }
    return call_end(&c, rv);
}

apr_status_t slb_mc_touch(slb_mc *mc, const slb_key *key, apr_uint32_t ttl_s)
{
    memcached_return_t rc;
    mc_call c;
    apr_status_t rv;
    int tries;

    CNT_INC(mc->c->touches);
    rv = call_begin(&c, mc, key);
    for (tries = 0; rv == APR_SUCCESS; tries++) {
        c.last = MEMCACHED_SUCCESS;
        rc = memcached_touch(c.h, key->text, KEY_LEN, expiration(ttl_s));
        rv = rc == MEMCACHED_NOTFOUND ? APR_NOTFOUND
             : memcached_success(rc) ? APR_SUCCESS : failure(rc, &c.last);
        if (tries >= 2 || !retry_ok(&c)) {
            break;
        }
        rv = APR_SUCCESS;                   /* once more */
    }
    return call_end(&c, rv);
}

apr_status_t slb_mc_delete(slb_mc *mc, const slb_key *key)
{
    memcached_return_t rc;
    mc_call c;
    apr_status_t rv;
    int tries;

    CNT_INC(mc->c->deletes);
    rv = call_begin(&c, mc, key);
    for (tries = 0; rv == APR_SUCCESS; tries++) {
        c.last = MEMCACHED_SUCCESS;
        rc = memcached_delete(c.h, key->text, KEY_LEN, 0);
        rv = rc == MEMCACHED_NOTFOUND ? APR_NOTFOUND
             : memcached_success(rc) ? APR_SUCCESS : failure(rc, &c.last);
        if (tries >= 2 || !retry_ok(&c)) {
            break;
        }
        rv = APR_SUCCESS;                   /* once more */
    }
    if ((rv == APR_SUCCESS || rv == APR_NOTFOUND) && c.h
        && slb_mc_in_window(mc)) {
        (void)window_write(&c, W_DEL, NULL, 0, NULL);
    }
    return call_end(&c, rv);
}

/* ---------------------------------------------------------------------
 * quiet writes from the caller's thread
 * ------------------------------------------------------------------- */

apr_status_t slb_mc_set_quiet(slb_mc *mc, const slb_key *key,
                              const slb_binding *b, apr_uint32_t ttl_s)
{
    static struct timespec no_wait = { 0, 0 };
    char val[SLB_MC_MAX_VALUE_LEN + 16];
    apr_size_t len;
    memcached_return_t rc;
    memcached_st *h;
    mc_server *s;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t start = apr_time_now();

    CNT_INC(mc->c->sets);
    CNT_INC(mc->c->quiet_sets);
    if (!key_ok(key) || b == NULL
        || (len = value_format(val, sizeof(val), b)) == 0) {
        return APR_EINVAL;
    }
    h = memcached_pool_fetch(mc->qpool, &no_wait, &rc);
    if (h == NULL) {
        CNT_INC(mc->c->pool_exhausted);
        CNT_INC(mc->c->errors);
        return APR_EAGAIN;
    }
    resync(mc, h);
    s = server_of(mc, h, key);
    if (s && held(s)) {
        eject(mc, h, s);
        s = server_of(mc, h, key);
    }
    if (s && held(s)) {
        rv = APR_EGENERAL;
    }
    else {
        rc = memcached_set(h, key->text, KEY_LEN, val, len,
                           expiration(ttl_s), 0);
        if (mc->conf.replicas > 0 && memcached_success(rc)) {
            rc = memcached_flush_buffers(h);
        }
        if (!memcached_success(rc) && rc != MEMCACHED_BUFFERED) {
            rv = failure(rc, &rc);
            if (s) {
                server_failed(mc, h, s, rv);
            }
        }
    }
    (void)memcached_pool_release(mc->qpool, h);
    observe(mc, (apr_uint64_t)(apr_time_now() - start));
    if (rv != APR_SUCCESS) {
        CNT_INC(mc->c->errors);
        if (rv == APR_TIMEUP) {
            CNT_INC(mc->c->timeouts);
        }
    }
    return rv;
}

/* ---------------------------------------------------------------------
 * the writer thread
 * ------------------------------------------------------------------- */

int slb_mc_publishes(const slb_mc *mc)
{
    return mc != NULL && mc->pub_thread != NULL;
}

apr_status_t slb_mc_publish(slb_mc *mc, const slb_key *key,
                            const slb_binding *b, apr_uint32_t ttl_s)
{
    pub_item *it;
    apr_size_t rlen;

    if (!slb_mc_publishes(mc)) {
        return APR_ENOTIMPL;
    }
    if (!key_ok(key) || b == NULL
        || !slb_route_ok(b->route, (rlen = strnlen(b->route,
                                                   sizeof(b->route))))) {
        return APR_EINVAL;
    }
    apr_thread_mutex_lock(mc->q_lock);
    if (mc->q_len >= (apr_uint32_t)mc->conf.queue_max) {
        apr_thread_mutex_unlock(mc->q_lock);
        CNT_INC(mc->c->publish_dropped);
        return APR_ENOSPC;
    }
    it = &mc->q[(mc->q_head + mc->q_len) % (apr_uint32_t)mc->conf.queue_max];
    memcpy(it->key, key->text, KEY_LEN);
    memcpy(it->route, b->route, rlen);
    it->route[rlen] = '\0';
    it->created = b->created > 0 ? b->created : apr_time_now();
    it->ttl_s = ttl_s;
    mc->q_len++;
    if (mc->q_idle || mc->q_len == WRITER_BATCH) {
        /* wake the writer: it was idle, or a batch is full */
        mc->q_idle = 0;
        apr_thread_cond_signal(mc->q_cond);
    }
    apr_thread_mutex_unlock(mc->q_lock);
    CNT_INC(mc->c->publish_queued);
    return APR_SUCCESS;
}

/* Write n bindings with the writer's quiet handle: one network write per
 * server at the flush.  Runs without q_lock. */
static void write_batch(slb_mc *mc, const pub_item *it, int n)
{
    memcached_st *h = mc->pub_h;
    memcached_return_t rc;
    int i, failed = 0;

    resync(mc, h);

    for (i = 0; i < n; i++) {
        char val[SLB_MC_MAX_VALUE_LEN + 16];
        slb_binding b;
        apr_size_t len;
        mc_server *s;

        memcpy(b.route, it[i].route, sizeof(b.route));
        b.created = it[i].created;
        len = value_format(val, sizeof(val), &b);
        s = server_named(mc, memcached_server_by_key(h, it[i].key, KEY_LEN,
                                                     &rc));
        if (s && held(s)) {
            eject(mc, h, s);
            s = server_named(mc, memcached_server_by_key(h, it[i].key,
                                                         KEY_LEN, &rc));
            if (s && held(s)) {
                failed++;                /* no other server: not written */
                continue;
            }
        }
        rc = memcached_set(h, it[i].key, KEY_LEN, val, len,
                           expiration(it[i].ttl_s), 0);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
            failed++;
            if (s) {
                server_failed(mc, h, s, map_rc(rc));
            }
        }
    }
    rc = memcached_flush_buffers(h);
    if (memcached_failed(rc)) {
        /* what was buffered is lost; which bindings it held is unknown */
        mc_server *s = server_named(mc,
                                    memcached_server_get_last_disconnect(h));
        failed = n;
        if (s) {
            server_failed(mc, h, s, map_rc(rc));
        }
    }
    CNT_INC(mc->c->publish_batches);
    CNT_ADD(mc->c->published, (apr_uint64_t)(n - failed));
    if (failed) {
        CNT_ADD(mc->c->publish_errors, (apr_uint64_t)failed);
        CNT_ADD(mc->c->errors, (apr_uint64_t)failed);
    }
}

/*
 * Waits for bindings; writes them at once after a quiet spell, or gathers
 * them for up to SLB_MC_GATHER_US after the last write while they keep
 * coming (one write then carries many).
 */
static void *APR_THREAD_FUNC writer_main(apr_thread_t *t, void *data)
{
    slb_mc *mc = data;
    apr_time_t last_write = 0;
    apr_uint32_t cap = (apr_uint32_t)mc->conf.queue_max;

    apr_thread_mutex_lock(mc->q_lock);
    while (!mc->q_stop) {
        apr_interval_time_t since;
        apr_uint32_t n, i;

        if (mc->q_len == 0) {
            mc->q_idle = 1;
            apr_thread_cond_wait(mc->q_cond, mc->q_lock);
            mc->q_idle = 0;
            continue;
        }
        since = apr_time_now() - last_write;
        if (since >= 0 && since < SLB_MC_GATHER_US && mc->q_len < WRITER_BATCH) {
            (void)apr_thread_cond_timedwait(mc->q_cond, mc->q_lock,
                                            SLB_MC_GATHER_US - since);
            if (mc->q_stop) {
                break;
            }
        }
        n = mc->q_len < WRITER_BATCH ? mc->q_len : WRITER_BATCH;
        for (i = 0; i < n; i++) {
            mc->batch[i] = mc->q[(mc->q_head + i) % cap];
        }
        mc->q_head = (mc->q_head + n) % cap;
        mc->q_len -= n;
        apr_thread_mutex_unlock(mc->q_lock);
        write_batch(mc, mc->batch, (int)n);
        last_write = apr_time_now();
        apr_thread_mutex_lock(mc->q_lock);
    }
    apr_thread_mutex_unlock(mc->q_lock);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* ---------------------------------------------------------------------
 * observability
 * ------------------------------------------------------------------- */

void slb_mc_stats_get(slb_mc *mc, slb_mc_stats *out)
{
    out->gets = CNT_READ(mc->c->gets);
    out->hits = CNT_READ(mc->c->hits);
    out->misses = CNT_READ(mc->c->misses);
    out->adds = CNT_READ(mc->c->adds);
    out->add_conflicts = CNT_READ(mc->c->add_conflicts);
    out->sets = CNT_READ(mc->c->sets);
    out->touches = CNT_READ(mc->c->touches);
    out->deletes = CNT_READ(mc->c->deletes);
    out->errors = CNT_READ(mc->c->errors);
    out->timeouts = CNT_READ(mc->c->timeouts);
    out->malformed = CNT_READ(mc->c->malformed);
    out->pool_exhausted = CNT_READ(mc->c->pool_exhausted);
    out->latency_us_total = CNT_READ(mc->c->latency_us_total);
    out->latency_us_max = CNT_READ(mc->c->latency_us_max);
    out->publish_queued = CNT_READ(mc->c->publish_queued);
    out->published = CNT_READ(mc->c->published);
    out->publish_dropped = CNT_READ(mc->c->publish_dropped);
    out->publish_errors = CNT_READ(mc->c->publish_errors);
    out->publish_batches = CNT_READ(mc->c->publish_batches);
    out->quiet_sets = CNT_READ(mc->c->quiet_sets);
    out->replica_hits = CNT_READ(mc->c->replica_hits);
    out->trials = CNT_READ(mc->c->trials);
    out->window_reads = CNT_READ(mc->c->window_reads);
    out->window_hits = CNT_READ(mc->c->window_hits);
    out->window_writes = CNT_READ(mc->c->window_writes);
    {
        apr_uint64_t n = 0;
        int i;
        for (i = 0; i < SLB_MC_LATENCY_BUCKETS; i++) {
            n += CNT_READ(mc->c->latency[i]);
            out->latency_le[i] = n;
        }
        out->latency_calls = n + CNT_READ(mc->c->latency[i]);
    }
    out->in_window = slb_mc_in_window(mc);
    out->publish_waiting = 0;
    if (mc->q_lock) {
        apr_thread_mutex_lock(mc->q_lock);
        out->publish_waiting = mc->q_len;
        apr_thread_mutex_unlock(mc->q_lock);
    }
}

apr_array_header_t *slb_mc_servers(slb_mc *mc, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, mc->nservers,
                                           sizeof(slb_mc_server));
    int i;

    for (i = 0; i < mc->nservers; i++) {
        slb_mc_server *s = apr_array_push(a);

        s->host = apr_pstrdup(p, mc->servers[i].host);
        s->port = mc->servers[i].port;
        s->up = apr_atomic_read32(&mc->servers[i].up) ? 1 : 0;
        s->failures = CNT_READ(mc->servers[i].failures);
    }
    return a;
}

/* ------------------------------------------------------------------ */
/* memcached as a store (slb_store_ops, see stickylb_store.h); ctx is an
 * slb_mc, or NULL when the client could not be set up (every operation
 * then fails) */

static apr_status_t mcs_get(void *ctx, slb_skey *k, const slb_lifetime *lt,
                            apr_time_t now, slb_binding *out,
                            apr_uint32_t *age_s)
{
    (void)lt;
    (void)now;
    *age_s = 0;
    return ctx ? slb_mc_get(ctx, slb_skey_shared(k), out) : APR_EGENERAL;
}

static apr_status_t mcs_add(void *ctx, slb_skey *k, const slb_binding *b,
                            const slb_lifetime *lt, apr_time_t now,
                            slb_binding *existing)
{
    (void)now;
    return ctx ? slb_mc_add(ctx, slb_skey_shared(k), b, slb_lifetime_ttl(lt),
                            existing)
               : APR_EGENERAL;
}

static apr_status_t mcs_set(void *ctx, slb_skey *k, const slb_binding *b,
                            const slb_lifetime *lt, apr_time_t now)
{
    (void)now;
    return ctx ? slb_mc_set(ctx, slb_skey_shared(k), b, slb_lifetime_ttl(lt))
               : APR_EGENERAL;
}

/* write=async: queued for the writer thread; write=quiet: a quiet set
 * from this thread */
static apr_status_t mcs_set_nowait(void *ctx, slb_skey *k,
                                   const slb_binding *b,
                                   const slb_lifetime *lt, apr_time_t now)
{
    slb_mc *mc = ctx;

    (void)now;
    if (mc == NULL) {
        return APR_EGENERAL;
    }
    if (slb_mc_in_window(mc)) {
        /* the quiet handles write where they look, nowhere else: in the
         * recovery window a set waits for its answer and reaches the
         * key's home and fallback too */
        return slb_mc_set(mc, slb_skey_shared(k), b, slb_lifetime_ttl(lt));
    }
    if (slb_mc_publishes(mc)) {
        return slb_mc_publish(mc, slb_skey_shared(k), b,
                              slb_lifetime_ttl(lt));
    }
    return slb_mc_set_quiet(mc, slb_skey_shared(k), b, slb_lifetime_ttl(lt));
}

static apr_status_t mcs_del(void *ctx, slb_skey *k)
{
    return ctx ? slb_mc_delete(ctx, slb_skey_shared(k)) : APR_EGENERAL;
}

static apr_status_t mcs_touch(void *ctx, slb_skey *k, const slb_lifetime *lt)
{
    apr_uint32_t ttl = slb_lifetime_ttl(lt);

    if (ctx == NULL) {
        return APR_EGENERAL;
    }
    return ttl ? slb_mc_touch(ctx, slb_skey_shared(k), ttl) : APR_SUCCESS;
}

static void mcs_stats(void *ctx, slb_store_stats *out)
{
    slb_mc_stats st;

    memset(out, 0, sizeof(*out));
    if (ctx == NULL) {
        return;
    }
    slb_mc_stats_get(ctx, &st);
    out->hits = st.hits;
    out->misses = st.misses;
    out->writes = st.adds - st.add_conflicts + st.sets;
    out->errors = st.errors;
}

const slb_store_ops slb_mc_store_ops = {
    "memcached", mcs_get, mcs_add, mcs_set, mcs_set_nowait, mcs_del,
    mcs_touch, mcs_stats
};

/* ------------------------------------------------------------------ */
/* member states shared through memcached                               */

const char *slb_member_state_name(slb_member_state st)
{
    switch (st) {
    case SLB_MEMBER_DRAIN: return "drain";
    case SLB_MEMBER_MAINT: return "maint";
    default:               return "up";
    }
}

int slb_member_state_parse(const char *name, slb_member_state *out)
{
    if (!strcmp(name, "up")) {
        *out = SLB_MEMBER_UP;
    }
    else if (!strcmp(name, "drain")) {
        *out = SLB_MEMBER_DRAIN;
    }
    else if (!strcmp(name, "maint")) {
        *out = SLB_MEMBER_MAINT;
    }
    else {
        return 0;
    }
    return 1;
}

/* The key of a member's state: a session id no client can send (it starts
 * with \001), in the balancers' namespace. */
static void member_state_key(slb_key *key, const char *ns, const char *route)
{
    char id[SLB_MAX_ROUTE_LEN + 32];
    apr_size_t n = (apr_size_t)apr_snprintf(id, sizeof(id),
                                            "%cmember-state%c%s", 1, 1,
                                            route);
    slb_key_make(key, ns, id, n);
}

apr_status_t slb_mc_member_state_set(slb_mc *mc, const char *ns,
                                     const char *route, slb_member_state st,
                                     apr_time_t now)
{
    slb_key key;
    slb_binding b;

    member_state_key(&key, ns, route);
    memset(&b, 0, sizeof(b));
    /* on the wire a binding whose route is the state's name: what the
     * balancers of earlier versions read */
    apr_cpystrn(b.route, slb_member_state_name(st), sizeof(b.route));
    b.created = now;
    return slb_mc_set(mc, &key, &b, 0);
}

apr_status_t slb_mc_member_state_get(slb_mc *mc, const char *ns,
                                     const char *route,
                                     slb_member_state *out)
{
    slb_key key;
    slb_binding b;
    apr_status_t rv;

    member_state_key(&key, ns, route);
    rv = slb_mc_get(mc, &key, &b);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return slb_member_state_parse(b.route, out) ? APR_SUCCESS : APR_NOTFOUND;
}

void slb_mc_readmit(slb_mc *mc)
{
    int i;

    for (i = 0; i < mc->nservers; i++) {
        if (!held(&mc->servers[i])) {
            apr_atomic_set32(&mc->servers[i].up, 1);
        }
    }
    (void)apr_atomic_inc32(&mc->health_gen);
}
