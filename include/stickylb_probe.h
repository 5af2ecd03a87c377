/*
 * stickylb_probe.h - active health probes (APR only, no httpd).
 *
 * A batch of probes runs concurrently on non-blocking sockets and one
 * pollset: TCP (connect) or HTTP (a request, the status checked against a
 * list of ranges, optionally a string looked for in the first 4 KiB of the
 * body).  Every probe ends by its own deadline, so a member that never
 * answers costs its timeout and delays no other probe of the batch.
 */
#ifndef STICKYLB_PROBE_H
#define STICKYLB_PROBE_H

#include <apr_pools.h>
#include <apr_network_io.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLB_PROBE_MAX_RANGES 8
#define SLB_PROBE_READ_MAX 4096

typedef enum {
    SLB_PROBE_NONE = 0,
    SLB_PROBE_TCP,
    SLB_PROBE_HTTP
} slb_probe_kind;

typedef struct {
    slb_probe_kind kind;
    const char *method;          /* HTTP: default GET */
    const char *path;            /* HTTP: default / */
    const char *host;            /* HTTP Host: default the member's host */
    int nranges;
    int lo[SLB_PROBE_MAX_RANGES];
    int hi[SLB_PROBE_MAX_RANGES];  /* expected statuses; default 200-399 */
    const char *body;            /* substring to find; NULL = none */
    apr_interval_time_t interval;  /* default 5 s */
    apr_interval_time_t timeout;   /* default 2 s, at most the interval */
    int rise;                    /* passes to mark up, default 2 */
    int fall;                    /* failures to mark down, default 3 */
    const char *route;           /* only this member (NULL = all) */
} slb_probe_conf;

void slb_probe_conf_init(slb_probe_conf *c);

/*
 * Parse "tcp|http [method=] [path=] [host=] [expect=200,300-399] [body=]
 * [interval=s] [timeout=s|ms] [rise=n] [fall=n] [route=r]".  Times take
 * a unit suffix ms or s (default s).  Returns NULL or an error naming the
 * word.
 */
const char *slb_probe_conf_parse(apr_pool_t *p, slb_probe_conf *c,
                                 int argc, const char *const *argv);

/* 1 when status matches the expected ranges. */
int slb_probe_status_ok(const slb_probe_conf *c, int status);

/*
 * Judge an HTTP response (bytes read so far, complete when eof): returns 1
 * (passed), 0 (failed, *why says why) or -1 (need more bytes).
 */
int slb_probe_judge_http(const slb_probe_conf *c, const char *buf,
                         apr_size_t len, int eof, const char **why);

/* The HTTP request text of a probe. */
const char *slb_probe_request(apr_pool_t *p, const slb_probe_conf *c,
                              const char *default_host);

typedef struct {
    /* in */
    const slb_probe_conf *conf;
    apr_sockaddr_t *addr;
    const char *request;         /* HTTP: from slb_probe_request */
    void *baton;
    /* out */
    int ok;
    const char *why;             /* static string when !ok */
    apr_interval_time_t latency;
} slb_probe;

/*
 * Run the probes concurrently; returns when every one passed, failed or
 * reached its timeout.  Memory from p (use a pool per batch).
 */
apr_status_t slb_probe_run(apr_pool_t *p, slb_probe *probes, int n);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_PROBE_H */
