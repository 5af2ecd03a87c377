/*
 * bench/mc_write_bench.c - what one memcached write of a new binding costs
 * the process that makes it, by method (stickylb_mc.c):
 *
 *   add      slb_mc_add: add, reply waited for (what a balancer does for a
 *            key it chose a member for: two balancers must agree)
 *   set      slb_mc_set: set, reply waited for
 *   quiet    slb_mc_set_quiet: quiet set written from the caller's thread,
 *            no reply
 *   publish  slb_mc_publish: queued for the writer thread (batched quiet
 *            sets); the writer's CPU is counted (same process)
 *
 *   mc_write_bench PORT [N]      (memcached on 127.0.0.1:PORT)
 *
 * For each method, N bindings with new keys: CPU time of the whole process
 * (user + system, every thread: getrusage) per binding, and wall time per
 * binding of the calling loop.  Run pinned to another CPU than memcached
 * (bench/mc_write_bench.sh does).  Prints one line per method.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "stickylb_mc.h"

static double cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec
           + (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    static const char *methods[] = { "add", "set", "quiet", "publish" };
    apr_pool_t *p;
    slb_mc_conf c;
    slb_mc *mc, *amc, *use;
    int port, n, m, i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [N]\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    n = argc > 2 ? atoi(argv[2]) : 20000;
    apr_initialize();
    apr_pool_create(&p, NULL);
    slb_mc_conf_init(&c);
    c.config = apr_psprintf(p, "--SERVER=127.0.0.1:%d", port);
    c.queue_max = n + 1;
    if (slb_mc_check_config(p, &c) || slb_mc_create(&mc, p, &c)) {
        fprintf(stderr, "mc_write_bench: bad configuration\n");
        return 1;
    }
    c.write_mode = SLB_MC_WRITE_ASYNC;
    if (slb_mc_check_config(p, &c) || slb_mc_create(&amc, p, &c)) {
        fprintf(stderr, "mc_write_bench: bad configuration\n");
        return 1;
    }
    printf("%-8s %10s %14s %14s %8s\n", "method", "bindings", "CPU us/bind",
           "wall us/bind", "errors");
    for (m = 0; m < 4; m++) {
        slb_mc_stats before, after;
        double c0, c1;
        apr_time_t t0, t1;
        slb_binding b;

        memset(&b, 0, sizeof(b));
        apr_cpystrn(b.route, "t1", sizeof(b.route));
        use = m == 3 ? amc : mc;
        /* warm: connections open */
        {
            slb_key k;
            slb_key_make(&k, "bench", "warm", 4);
            (void)slb_mc_set(use, &k, &b, 60);
            (void)slb_mc_set_quiet(use, &k, &b, 60);
            (void)slb_mc_publish(amc, &k, &b, 60);
            apr_sleep(apr_time_from_msec(50));
        }
        slb_mc_stats_get(use, &before);
        c0 = cpu_us();
        t0 = apr_time_now();
        for (i = 0; i < n; i++) {
            char id[48];
            slb_key k;
            int len = apr_snprintf(id, sizeof(id), "%s-%d-%d", methods[m], i,
                                   (int)getpid());

            slb_key_make(&k, "bench", id, (apr_size_t)len);
            switch (m) {
            case 0: (void)slb_mc_add(use, &k, &b, 60, NULL); break;
            case 1: (void)slb_mc_set(use, &k, &b, 60); break;
            case 2: (void)slb_mc_set_quiet(use, &k, &b, 60); break;
            default: (void)slb_mc_publish(use, &k, &b, 60); break;
            }
        }
        t1 = apr_time_now();
        if (m == 3) {
            /* the writer's work counts: wait until it is done */
            for (i = 0; i < 5000; i++) {
                slb_mc_stats_get(use, &after);
                if (after.publish_waiting == 0
                    && after.published + after.publish_errors
                       >= before.published + before.publish_errors
                          + (apr_uint64_t)n) {
                    break;
                }
                apr_sleep(1000);
            }
        }
        c1 = cpu_us();
        slb_mc_stats_get(use, &after);
        printf("%-8s %10d %14.2f %14.2f %8" APR_UINT64_T_FMT "\n", methods[m],
               n, (c1 - c0) / n, (double)(t1 - t0) / n,
               after.errors - before.errors);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
