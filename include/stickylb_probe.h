/*
 * stickylb_probe.h - active health probes (APR only, no httpd).
 *
 * A batch of probes runs concurrently on non-blocking sockets and one
 * pollset: TCP (connect) or HTTP (a request, the status checked against a
 * list of ranges, optionally a string looked for in the first 4 KiB of the
 * body), in clear or over TLS (OpenSSL, non-blocking: the handshake is
 * driven by the same pollset).  Every probe ends by its own deadline, the
 * TLS handshake included, so a member that never answers costs its
 * timeout and delays no other probe of the batch.
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
/* the longest failure reason kept (the status page shows it) */
#define SLB_PROBE_WHY_MAX 128
/* an address as the status page shows it: "ip:port", "[v6]:port" */
#define SLB_PROBE_ADDR_MAX 64
/* default of resolve=: seconds between two resolutions of a member's name */
#define SLB_PROBE_RESOLVE_DEFAULT apr_time_from_sec(30)

/* OpenSSL's SSL_CTX, without its headers */
struct ssl_ctx_st;

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
    /* HTTP probes of https:// members (slb_probe_scheme_tls) */
    int verify;                  /* verify the certificate: default 1 */
    int verify_set;              /* verify= given */
    const char *ca_file;         /* CA certificates (PEM); NULL = the
                                  * system's store */
    apr_interval_time_t resolve; /* re-resolve the member's name at most
                                  * this often; 0 = once; default 30 s */
    struct ssl_ctx_st *tls;      /* the TLS context of the line, set by the
                                  * caller (slb_probe_tls_ctx); NULL: none */
    int agent;                   /* an agent check (StickyLBAgent): the
                                  * answer is read, not judged */
    const char *header;          /* agent: the answer is this response
                                  * header's value; NULL: the body's first
                                  * line */
} slb_probe_conf;

void slb_probe_conf_init(slb_probe_conf *c);

/*
 * Parse "tcp|http [method=] [path=] [host=] [expect=200,300-399] [body=]
 * [interval=s] [timeout=s|ms] [rise=n] [fall=n] [route=r] [verify=on|off]
 * [ca=file] [resolve=s]".  Times take a unit suffix ms or s (default s).
 * Returns NULL or an error naming the word.  ca= is kept as written: the
 * caller makes it absolute and checks it (slb_probe_tls_check).
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

/* ------------------------------------------------------------------ */
/* TLS (HTTP probes of https:// members)                                */

/* 1 when a member of this scheme (mod_proxy's worker scheme) is spoken
 * to over TLS: https, wss, h2. */
int slb_probe_scheme_tls(const char *scheme);

/* The name a TLS probe sends as SNI and checks the certificate against:
 * host= without its port (and brackets), else the member's host name. */
const char *slb_probe_tls_name(apr_pool_t *p, const slb_probe_conf *c,
                               const char *member_host);

/* 1 when name is an IPv4 or IPv6 address literal (no SNI is sent; the
 * certificate is checked against the address). */
int slb_probe_is_ip_literal(const char *name);

/*
 * The TLS client context of a probe line: verification as c->verify says
 * (against c->ca_file, else the system's store), freed with p.  The CA
 * file is read now, once.  NULL and *err ("ca=/x: ...") when it cannot be
 * read or holds no certificate.
 */
struct ssl_ctx_st *slb_probe_tls_ctx(apr_pool_t *p, const slb_probe_conf *c,
                                     const char **err);

/*
 * The failure reason of a TLS handshake, from OpenSSL's error queue and
 * the verification result: "TLS handshake failed: certificate verify
 * failed (self-signed certificate in certificate chain)".  ssl_error is
 * SSL_get_error's, verify_result SSL_get_verify_result's (X509_V_OK when
 * there is none), sys_errno errno after SSL_ERROR_SYSCALL.
 */
const char *slb_probe_tls_reason(apr_pool_t *p, const char *what,
                                 int ssl_error, unsigned long err_code,
                                 long verify_result, int sys_errno);

/* ------------------------------------------------------------------ */
/* name resolution                                                      */

/* 1 when a member whose name was last resolved at `last` (0: never) is to
 * be resolved again at `now`, every `every` (0: once). */
int slb_probe_resolve_due(apr_time_t last, apr_interval_time_t every,
                          apr_time_t now);

/* ------------------------------------------------------------------ */
/* agent checks: the member says its state and weight                   */

/* the longest answer kept (the status page shows it) */
#define SLB_AGENT_ANSWER_MAX 128

typedef enum {
    SLB_AGENT_NONE = 0,          /* no state word */
    SLB_AGENT_UP,                /* up, ready */
    SLB_AGENT_DRAIN,             /* drain */
    SLB_AGENT_MAINT,             /* maint */
    SLB_AGENT_DOWN               /* down, failed, stopped */
} slb_agent_state;

typedef struct {
    slb_agent_state state;       /* SLB_AGENT_NONE: none said */
    int weight;                  /* percent of the loadfactor, 0 to 100;
                                  * -1: none said */
} slb_agent_answer;

/*
 * Parse "http [path=] [host=] [header=] [interval=s] [timeout=s|ms]
 * [route=r] [verify=on|off] [ca=file] [resolve=s]", or "none" alone (no
 * agent check: overrides one inherited from the server).  Returns NULL or
 * an error naming the word; c->agent is set.
 */
const char *slb_agent_conf_parse(apr_pool_t *p, slb_probe_conf *c,
                                 int argc, const char *const *argv);

/*
 * The answer of an agent's HTTP response (bytes read so far, complete when
 * eof): the value of c->header, else the body's first line, trimmed, at
 * most SLB_AGENT_ANSWER_MAX - 1 bytes, into answer.  Returns 1 (answer
 * set), 0 (failed, *why says why) or -1 (need more bytes).
 */
int slb_agent_judge(const slb_probe_conf *c, const char *buf,
                    apr_size_t len, int eof, const char **why,
                    char *answer);

/*
 * Parse an agent's answer, HAProxy's agent-check words separated by
 * commas or blanks, case-insensitive, up to a '#': up, ready, drain,
 * maint, down, failed, stopped, and a weight "N%" (0 to 100; more is
 * taken as 100).  The last state word counts; other words are ignored.
 * NULL, or an error when no word is known.
 */
const char *slb_agent_parse(apr_pool_t *p, const char *text,
                            slb_agent_answer *a);

/*
 * What the agent says from now on, after answer a: a state word replaces
 * the state; a weight replaces the weight; up (ready) without a weight
 * puts the weight back to 100.  cur starts as { SLB_AGENT_UP, 100 }.
 */
void slb_agent_merge(slb_agent_answer *cur, const slb_agent_answer *a);

const char *slb_agent_state_name(slb_agent_state st);

/* What the agent wants set on the member (SLB_AGENT_F_*): drain also for
 * a weight of 0. */
#define SLB_AGENT_F_DRAIN 0x1u   /* no new sessions (PROXY_WORKER_DRAIN) */
#define SLB_AGENT_F_MAINT 0x2u   /* disabled (PROXY_WORKER_DISABLED) */
#define SLB_AGENT_F_DOWN  0x4u   /* down (PROXY_WORKER_HC_FAIL) */
#define SLB_AGENT_F_ALL   0x7u
unsigned slb_agent_want(const slb_agent_answer *cur);

/*
 * The member's flags (SLB_AGENT_F_*) once the agent's wishes are applied.
 * current: the flags the member has, whoever set them; *owned: the ones
 * the agent set (updated).  A flag wanted and not set is set and owned; a
 * flag set by someone else stays theirs (the agent never clears it); a
 * flag the agent owns and no longer wants is cleared.
 */
unsigned slb_agent_apply(unsigned want, unsigned current, unsigned *owned);

/* ------------------------------------------------------------------ */
/* the batch runner                                                     */

typedef struct {
    /* in */
    const slb_probe_conf *conf;
    apr_sockaddr_t *addr;
    const char *request;         /* HTTP: from slb_probe_request */
    struct ssl_ctx_st *tls;      /* HTTP over TLS with this context, or
                                  * NULL: in clear */
    const char *tls_name;        /* SNI (unless an address literal) and the
                                  * name the certificate must match when
                                  * verifying */
    void *baton;
    /* out */
    int ok;
    const char *why;             /* when !ok: static or from the run's
                                  * pool */
    apr_interval_time_t latency;
    char answer[SLB_AGENT_ANSWER_MAX]; /* agent checks, when ok */
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
