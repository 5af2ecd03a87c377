/*
 * table_bench.c - microbenchmark of the embedded stick table
 * (stickylb_table.c) alone: memory per binding, inserts, lookups (hits and
 * misses, one and two threads), the behaviour of a full table and how
 * many used sessions a flood of one-hit new bindings leaves bound.
 *
 * Build and run (see bench/README.md):
 *
 *     make -C bench && ./bench/table_bench [entries [lookups]]
 *
 * Every timed figure is a fixed number of operations timed with
 * clock_gettime(CLOCK_MONOTONIC), repeated 3 times; the median is printed.
 * Keys are made as the shm store makes them (slb_table_key: keyed
 * SipHash-2-4-128 of namespace and id) before any timing starts, so the
 * figures are the table's cost only.  Lookups walk the keys in the order
 * they were inserted, which is a random order of buckets: at 1,000,000
 * bindings the table (24 MiB) does not fit in the caches, so nearly every
 * lookup is a cache miss, as in a server with many clients.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* APR's cflags define it too */
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "stickylb_store.h"
#include "stickylb_table.h"

#define REPS 3
static apr_uint32_t lookup_ops = 4000000u;   /* per thread (argv[2]) */
#define TARGET_MIB 64.0
#define TARGET_LOOKUPS 2000000.0     /* per second per core */
#define T0_SEC ((apr_time_t)1700000000)

static apr_uint32_t entries = 1000000;
static slb_key *keys;                /* 2 x capacity keys */
static apr_uint32_t nkeys;
static volatile long sink;

static unsigned char secret[16] = {
    0x5b, 0x1e, 0x77, 0x02, 0xc4, 0x9a, 0x31, 0xe8,
    0x0d, 0x66, 0xf1, 0x2b, 0x88, 0x4c, 0xa7, 0x13
};

static double now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double median3(const double v[REPS])
{
    double a = v[0], b = v[1], c = v[2];

    if ((a <= b && b <= c) || (c <= b && b <= a)) {
        return b;
    }
    if ((b <= a && a <= c) || (c <= a && a <= b)) {
        return a;
    }
    return c;
}

static void *xalloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);

    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static slb_table *format(void *mem, apr_size_t bytes, unsigned salt)
{
    slb_table *t;

    secret[15] = (unsigned char)salt;
    t = slb_table_format(mem, bytes, secret, apr_time_from_sec(T0_SEC));
    if (t == NULL) {
        fprintf(stderr, "slb_table_format failed\n");
        exit(1);
    }
    return t;
}

static const char *verdict(int ok)
{
    return ok ? "OK" : "BELOW TARGET";
}

/* ---------------------------------------------------------------------- */
/* lookups                                                                 */

typedef struct {
    slb_table *t;
    const apr_uint32_t *idx;     /* key numbers to look up, cycled */
    apr_uint32_t n;
    apr_uint32_t start;
    apr_uint32_t ops;
    apr_time_t now;
    const slb_lifetime *lt;
    pthread_barrier_t *go;
    double secs;
    apr_uint32_t found;
} lookup_job;

static void run_lookups(lookup_job *j)
{
    apr_uint32_t i, p = j->start % j->n, found = 0;
    long acc = 0;
    double t0;

    t0 = now_sec();
    for (i = 0; i < j->ops; i++) {
        int id;

        if (slb_table_get(j->t, &keys[j->idx[p]], j->lt, j->now, &id)
            == APR_SUCCESS) {
            found++;
            acc += id;
        }
        if (++p == j->n) {
            p = 0;
        }
    }
    j->secs = now_sec() - t0;
    j->found = found;
    sink += acc;
}

static void *lookup_thread(void *arg)
{
    lookup_job *j = arg;

    pthread_barrier_wait(j->go);
    run_lookups(j);
    return NULL;
}

/* lookups/s of `threads` threads together, each doing lookup_ops; the
 * wall time runs from the common start to the last thread's end */
static double lookups(slb_table *t, const apr_uint32_t *idx, apr_uint32_t n,
                      int threads, apr_time_t now, const slb_lifetime *lt,
                      apr_uint32_t ops, apr_uint32_t *found)
{
    lookup_job job[2];
    pthread_t th[2];
    pthread_barrier_t go;
    double t0, secs;
    int i;

    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    for (i = 0; i < threads; i++) {
        job[i].t = t;
        job[i].idx = idx;
        job[i].n = n;
        job[i].start = (apr_uint32_t)((apr_uint64_t)n * (apr_uint64_t)i
                                      / (apr_uint64_t)threads);
        job[i].ops = ops;
        job[i].now = now;
        job[i].lt = lt;
        job[i].go = &go;
        pthread_create(&th[i], NULL, lookup_thread, &job[i]);
    }
    pthread_barrier_wait(&go);
    t0 = now_sec();
    *found = 0;
    for (i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        *found += job[i].found;
    }
    secs = now_sec() - t0;
    pthread_barrier_destroy(&go);
    return (double)ops * threads / secs;
}

/* ---------------------------------------------------------------------- */
/* full table                                                              */

typedef struct {
    double evictions, live, hit_recent_half, hit_recent_quarter, inserts_s;
} full_result;

/* insert 2 x capacity keys, `per_sec` inserts per second of table time (0:
 * all in one second) with idle lifetime `idle`; then look up the most
 * recent half (the last `capacity` keys) and the most recent quarter */
static void full_run(void *mem, apr_size_t bytes, unsigned salt,
                     apr_uint32_t per_sec, apr_uint32_t idle,
                     full_result *res)
{
    slb_table *t = format(mem, bytes, salt);
    slb_lifetime lt;
    slb_table_stats st;
    apr_uint32_t cap, n, i, hits = 0, hits_q = 0;
    apr_time_t now = apr_time_from_sec(T0_SEC);
    int r = slb_table_route_id(t, "bench", "node1");
    double t0;

    lt.idle = idle;
    lt.max = 0;
    slb_table_stats_get(t, &st);
    cap = st.capacity;
    n = 2 * cap;
    t0 = now_sec();
    for (i = 0; i < n; i++) {
        if (per_sec) {
            now = apr_time_from_sec(T0_SEC + i / per_sec);
        }
        if (slb_table_add(t, &keys[i], r, &lt, now, NULL) != APR_SUCCESS) {
            fprintf(stderr, "insert %u failed\n", i);
            exit(1);
        }
    }
    res->inserts_s = n / (now_sec() - t0);
    for (i = n - cap; i < n; i++) {
        int id;

        if (slb_table_get(t, &keys[i], NULL, now, &id) == APR_SUCCESS) {
            hits++;
            hits_q += i >= n - cap / 2;
        }
    }
    slb_table_stats_get(t, &st);
    res->evictions = (double)st.evictions;
    res->live = slb_table_count_live(t, now);
    res->hit_recent_half = 100.0 * hits / cap;
    res->hit_recent_quarter = 100.0 * hits_q / (cap / 2);
}

static void full(void *mem, apr_size_t bytes, apr_uint32_t per_sec,
                 apr_uint32_t idle, const char *title)
{
    full_result r[REPS];
    double v[REPS];
    int i;

    for (i = 0; i < REPS; i++) {
        full_run(mem, bytes, 100 + (unsigned)i, per_sec, idle, &r[i]);
    }
    printf("  %s\n", title);
#define MED(field) (v[0] = r[0].field, v[1] = r[1].field, \
                    v[2] = r[2].field, median3(v))
    printf("    evictions                          %12.0f\n", MED(evictions));
    printf("    live bindings after                %12.0f\n", MED(live));
    printf("    hit rate, most recent half         %11.1f%%\n",
           MED(hit_recent_half));
    printf("    hit rate, most recent quarter      %11.1f%%\n",
           MED(hit_recent_quarter));
    printf("    inserts/s while full               %12.0f\n", MED(inserts_s));
#undef MED
}

/* ---------------------------------------------------------------------- */
/* a flood of one-hit sessions (project issue 14, item 9)                  */

#define FLOOD_ENTRIES  2000u
#define FLOOD_SESSIONS 50u
#define FLOOD_NEW      5000u
#define FLOOD_TABLES   100u

/* A table for 2,000 bindings; 50 sessions bound at T0 and used again at
 * T0 + 10 s (two requests), then idle; then 5,000 new bindings used once
 * each, 100 a second from T0 + 20 s, idle lifetime 1800 s.  Returns how
 * many of the 50 still find their binding after the flood. */
static apr_uint32_t flood_run(void *mem, apr_size_t bytes, unsigned salt)
{
    slb_table *t = format(mem, bytes, salt);
    slb_lifetime lt = { 1800, 0 };
    apr_time_t t0 = apr_time_from_sec(T0_SEC);
    int r = slb_table_route_id(t, "bench", "node1");
    apr_uint32_t i, kept = 0;
    slb_key k;
    char id[32];
    int len, got;

    for (i = 0; i < FLOOD_SESSIONS; i++) {
        len = snprintf(id, sizeof(id), "session-%u", i);
        slb_table_key(t, &k, "flood", id, (apr_size_t)len);
        if (slb_table_add(t, &k, r, &lt, t0, NULL) != APR_SUCCESS
            || slb_table_get(t, &k, &lt, t0 + apr_time_from_sec(10), &got)
               != APR_SUCCESS) {
            fprintf(stderr, "flood: session %u not bound\n", i);
            exit(1);
        }
    }
    for (i = 0; i < FLOOD_NEW; i++) {
        len = snprintf(id, sizeof(id), "one-hit-%u", i);
        slb_table_key(t, &k, "flood", id, (apr_size_t)len);
        if (slb_table_add(t, &k, r, &lt, t0 + apr_time_from_sec(20 + i / 100),
                          NULL) != APR_SUCCESS) {
            fprintf(stderr, "flood: insert %u failed\n", i);
            exit(1);
        }
    }
    for (i = 0; i < FLOOD_SESSIONS; i++) {
        len = snprintf(id, sizeof(id), "session-%u", i);
        slb_table_key(t, &k, "flood", id, (apr_size_t)len);
        kept += slb_table_get(t, &k, NULL,
                              t0 + apr_time_from_sec(21 + FLOOD_NEW / 100),
                              &got) == APR_SUCCESS;
    }
    return kept;
}

static void flood(void)
{
    apr_size_t bytes = slb_table_bytes(FLOOD_ENTRIES);
    void *mem = xalloc(bytes);
    apr_uint32_t i, kept, total = 0, worst = FLOOD_SESSIONS;

    for (i = 0; i < FLOOD_TABLES; i++) {
        kept = flood_run(mem, bytes, 200 + i);
        total += kept;
        worst = kept < worst ? kept : worst;
    }
    printf("\nflood: a table for %u entries (%u slots), %u sessions used "
           "twice, then %u one-hit\nnew bindings; %u tables (secrets):\n",
           FLOOD_ENTRIES, slb_table_capacity(bytes), FLOOD_SESSIONS,
           FLOOD_NEW, FLOOD_TABLES);
    printf("    sessions kept, mean                %11.1f%%  target >= 95%%: "
           "%s\n", 100.0 * total / (FLOOD_SESSIONS * FLOOD_TABLES),
           verdict(total * 100 >= 95 * FLOOD_SESSIONS * FLOOD_TABLES));
    printf("    sessions kept, worst table         %12u of %u\n", worst,
           FLOOD_SESSIONS);
    free(mem);
}

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    apr_size_t bytes;
    apr_uint32_t cap, i, nlive = 0, found;
    apr_uint32_t *live_idx, *miss_idx;
    slb_table *t = NULL;
    slb_table_stats st;
    slb_lifetime lt = { 1800, 0 };
    apr_time_t now = apr_time_from_sec(T0_SEC);
    double v[REPS], fill_evictions = 0, m;
    void *mem;
    int rep, r = 0;

    if (argc > 1) {
        entries = (apr_uint32_t)strtoul(argv[1], NULL, 10);
        if (entries < 1000) {
            fprintf(stderr, "usage: %s [entries >= 1000 [lookups >= 1000]]\n",
                    argv[0]);
            return 2;
        }
    }
    if (argc > 2) {
        /* fewer lookups per figure: for a run under callgrind */
        lookup_ops = (apr_uint32_t)strtoul(argv[2], NULL, 10);
        if (lookup_ops < 1000) {
            fprintf(stderr, "usage: %s [entries >= 1000 [lookups >= 1000]]\n",
                    argv[0]);
            return 2;
        }
    }
    apr_initialize();
    bytes = slb_table_bytes(entries);
    cap = slb_table_capacity(bytes);
    mem = xalloc(bytes);
    memset(mem, 0, bytes);             /* fault the pages in */

    /* 2 x capacity keys: the first `entries` are inserted, the next
     * `entries` are the misses, all of them fill the table when full */
    nkeys = 2 * cap;
    keys = xalloc(sizeof(*keys) * nkeys);
    {
        /* keyed keys choose their buckets themselves: made once, with the
         * secret of a first table, they are random keys for every table */
        slb_table *kt = format(mem, bytes, 0);

        for (i = 0; i < nkeys; i++) {
            char id[32];
            int len = snprintf(id, sizeof(id), "%08x-session-%u",
                               i * 2654435761u, i);

            slb_table_key(kt, &keys[i], "balancer://bench", id,
                          (apr_size_t)len);
        }
    }
    live_idx = xalloc(sizeof(*live_idx) * entries);
    miss_idx = xalloc(sizeof(*miss_idx) * entries);
    for (i = 0; i < entries; i++) {
        miss_idx[i] = entries + i;
    }

    printf("stickylb stick table microbenchmark: %u entries, %ld CPUs, "
           "median of %d runs\n\n", entries, sysconf(_SC_NPROCESSORS_ONLN),
           REPS);

    /* ---- memory */
    m = (double)bytes / (1024.0 * 1024.0);
    printf("table for %u entries: %lu bytes, %u buckets of 64 bytes, "
           "%u slots\n", entries, (unsigned long)bytes,
           cap / SLB_TABLE_SLOTS_PER_BUCKET, cap);
    printf("%-38s %12.2f B    (64 B bucket / 3 slots = %.2f B a slot; "
           "sized for 55%% fill)\n", "bytes per binding",
           (double)bytes / entries, 64.0 / 3);
    printf("%-38s %12.2f MiB  target <= %.0f MiB for 1,000,000: %s\n",
           "memory for 1,000,000 bindings",
           (double)slb_table_bytes(1000000) / (1024.0 * 1024.0), TARGET_MIB,
           verdict(slb_table_bytes(1000000) <= TARGET_MIB * 1024 * 1024));

    /* ---- inserts into an empty table, up to `entries` */
    for (rep = 0; rep < REPS; rep++) {
        double t0;

        t = format(mem, bytes, 0);
        r = slb_table_route_id(t, "balancer://bench", "node1");
        t0 = now_sec();
        for (i = 0; i < entries; i++) {
            if (slb_table_add(t, &keys[i], r, &lt, now, NULL)
                != APR_SUCCESS) {
                fprintf(stderr, "insert %u failed\n", i);
                return 1;
            }
        }
        v[rep] = entries / (now_sec() - t0);
        slb_table_stats_get(t, &st);
        fill_evictions = (double)st.evictions;
    }
    printf("%-38s %12.0f\n", "inserts/s (empty table -> entries)",
           median3(v));

    /* which keys are bound now (some were evicted while filling) */
    for (i = 0; i < entries; i++) {
        int id;

        if (slb_table_get(t, &keys[i], NULL, now, &id) == APR_SUCCESS) {
            live_idx[nlive++] = i;
        }
    }
    printf("%-38s %12u of %u inserted (%.0f evicted, %.2f%%)\n",
           "  bindings live after the inserts", nlive, entries,
           fill_evictions, 100.0 * fill_evictions / entries);

    /* ---- lookups: hits, 1 thread; `now` fixed: no idle refresh */
    for (rep = 0; rep < REPS; rep++) {
        v[rep] = lookups(t, live_idx, nlive, 1, now, &lt, lookup_ops, &found);
        if (found != lookup_ops) {
            fprintf(stderr, "hit lookups found %u of %u\n", found,
                    lookup_ops);
            return 1;
        }
    }
    m = median3(v);
    printf("%-38s %12.0f      target >= %.0f/core: %s\n",
           "lookups/s, hits, 1 thread", m, TARGET_LOOKUPS,
           verdict(m >= TARGET_LOOKUPS));

    /* ---- lookups: hits, 2 threads */
    for (rep = 0; rep < REPS; rep++) {
        v[rep] = lookups(t, live_idx, nlive, 2, now, &lt, lookup_ops, &found);
        if (found != 2 * lookup_ops) {
            fprintf(stderr, "hit lookups found %u of %u\n", found,
                    2 * lookup_ops);
            return 1;
        }
    }
    m = median3(v);
    printf("%-38s %12.0f      (%.0f per thread) target >= %.0f/core: %s\n",
           "lookups/s, hits, 2 threads (total)", m, m / 2, TARGET_LOOKUPS,
           verdict(m / 2 >= TARGET_LOOKUPS));

    /* ---- lookups: hits that push the idle deadline (the first use of
     * each binding in a new second: one compare-and-swap each) */
    for (rep = 0; rep < REPS; rep++) {
        apr_time_t later = apr_time_from_sec(T0_SEC + 1 + rep);

        v[rep] = lookups(t, live_idx, nlive, 1, later, &lt, nlive, &found);
    }
    printf("%-38s %12.0f\n", "lookups/s, hits refreshing idle, 1 thr",
           median3(v));

    /* ---- lookups: misses */
    for (rep = 0; rep < REPS; rep++) {
        v[rep] = lookups(t, miss_idx, entries, 1, now, &lt, lookup_ops,
                         &found);
        if (found != 0) {
            fprintf(stderr, "miss lookups found %u\n", found);
            return 1;
        }
    }
    printf("%-38s %12.0f\n", "lookups/s, misses, 1 thread", median3(v));
    for (rep = 0; rep < REPS; rep++) {
        v[rep] = lookups(t, miss_idx, entries, 2, now, &lt, lookup_ops,
                         &found);
    }
    printf("%-38s %12.0f\n", "lookups/s, misses, 2 threads (total)",
           median3(v));

    /* ---- full table: insert 2 x capacity */
    printf("\nwhen full: insert 2 x capacity = %u keys into the table for "
           "%u entries (%u slots)\n", 2 * cap, entries, cap);
    full(mem, bytes, 1000, 86400,
         "1,000 inserts per second, idle lifetime 86400 s:");
    full(mem, bytes, 0, 86400,
         "all inserts in the same second, idle lifetime 86400 s:");
    full(mem, bytes, 1000, 0,
         "1,000 inserts per second, idle lifetime 0 (unlimited):");

    /* ---- a flood of one-hit sessions */
    flood();

    if (sink == 42) {
        printf("\n");
    }
    free(live_idx);
    free(miss_idx);
    free(keys);
    free(mem);
    apr_terminate();
    return 0;
}
