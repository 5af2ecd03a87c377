/*
 * stickylb_dns.c - the DNS sources of discovery, with c-ares.
 *
 *   StickyLBDiscover dns app.example.com:8080 [server=IP[:PORT],...]
 *       the A and AAAA records of the name: one member per address,
 *       scheme://address:port, route derived from the address
 *       (slb_disc_route_of: route-prefix= + the address, '.' and ':'
 *       written '-').
 *   StickyLBDiscover srv _http._tcp.app.example.com [server=...]
 *       the SRV records: one member per record, at the address of its
 *       target (asked from the same server: the lowest A, else AAAA,
 *       address) and its port; route: the target's first label
 *       (route=label, default), with "-port" (route=label-port), or from
 *       the address (route=address); the weight is the loadfactor (1 to
 *       100; 0: loadfactor=).
 *
 * Options of both: server= (the DNS servers, "IP[:PORT]" separated by
 * commas; default: the system's, /etc/resolv.conf), timeout= (the whole
 * fetch, 2 s), family= (any, ipv4, ipv6), scheme= (http).
 *
 * The channel is made on the first fetch, in the process that fetches
 * (the watchdog child), and used by one thread.  A fetch sends its
 * queries at once and waits with poll() on c-ares' sockets until all are
 * answered or the timeout is over (then the queries are cancelled and
 * the fetch fails: the set is kept).  A name without records (NXDOMAIN,
 * no data) is an empty set; any other failure (timeout, refused, server
 * failure, a reply that does not parse) fails the fetch.
 */
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ares.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_time.h>

#include "stickylb_discover.h"
#include "stickylb_conf.h"

#ifndef T_A
#define T_A 1
#endif
#ifndef T_AAAA
#define T_AAAA 28
#endif
#ifndef T_SRV
#define T_SRV 33
#endif
#ifndef C_IN
#define C_IN 1
#endif

#define MAX_ADDRS 64          /* addresses read from one reply */

typedef enum { FAM_ANY = 0, FAM_V4, FAM_V6 } family_t;
typedef enum { ROUTE_LABEL = 0, ROUTE_LABEL_PORT, ROUTE_ADDRESS } route_t;

typedef struct {
    int srv;                   /* the "srv" kind */
    const char *name;          /* the name asked */
    int port;                  /* dns: the members' port */
    const char *servers;       /* "ip:port,..." for c-ares, or NULL */
    apr_interval_time_t timeout;
    family_t family;
    route_t route;
    const char *scheme;
    /* made on the first fetch, in the fetching process */
    ares_channel ch;
    int have_ch;
    pid_t pid;
} dns_state;

/* ------------------------------------------------------------------ */
/* create (configuration time, no I/O)                                  */

static const char *check_servers(apr_pool_t *p, const char *v,
                                 const char **csv)
{
    char *copy = apr_pstrdup(p, v), *last = NULL, *item;
    const char *out = "";

    for (item = apr_strtok(copy, ",", &last); item;
         item = apr_strtok(NULL, ",", &last)) {
        char *host = item, *port = NULL;
        unsigned char buf[16];
        int v6 = 0;

        if (*item == '[') {
            char *e = strchr(item, ']');
            if (e == NULL) {
                return apr_psprintf(p, "server=: '%s' is not an address",
                                    item);
            }
            *e = '\0';
            host = item + 1;
            v6 = 1;
            if (e[1] == ':') {
                port = e + 2;
            }
            else if (e[1]) {
                return apr_psprintf(p, "server=: '%s' is not an address",
                                    item);
            }
        }
        else if (strchr(item, ':') == strrchr(item, ':')
                 && (port = strchr(item, ':')) != NULL) {
            *port++ = '\0';     /* a.b.c.d:port */
        }
        else if (strchr(item, ':')) {
            v6 = 1;              /* an IPv6 address without a port */
        }
        if (inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) != 1) {
            return apr_psprintf(p, "server=: '%s' is not an IP address "
                                "(IP, IP:PORT or [IPv6]:PORT, separated "
                                "by commas)", host);
        }
        if (port) {
            apr_int64_t n;
            if (slb_parse_int(p, port, 1, 65535, &n)) {
                return apr_psprintf(p, "server=: port '%s' must be 1 to "
                                    "65535", port);
            }
        }
        out = apr_pstrcat(p, out, *out ? "," : "",
                          v6 ? "[" : "", host, v6 ? "]" : "",
                          port ? ":" : "", port ? port : "", NULL);
    }
    if (!*out) {
        return "server=: an address is needed";
    }
    *csv = out;
    return NULL;
}

static int name_ok(const char *n)
{
    apr_size_t len = strlen(n);

    if (len == 0 || len > 253) {
        return 0;
    }
    for (; *n; n++) {
        if (!apr_isalnum(*n) && *n != '.' && *n != '-' && *n != '_') {
            return 0;
        }
    }
    return 1;
}

/* the channel goes with the configuration's pool (in its own process) */
static apr_status_t dns_cleanup(void *data)
{
    dns_state *st = data;

    if (st->have_ch && st->pid == getpid()) {
        ares_destroy(st->ch);
    }
    st->have_ch = 0;
    return APR_SUCCESS;
}

static const char *create(apr_pool_t *p, const char *target,
                          apr_table_t *opts, void **state, int srv)
{
    static const char *const own_dns[] = {
        "server=", "timeout=", "family=", "scheme=", NULL
    };
    static const char *const own_srv[] = {
        "server=", "timeout=", "family=", "scheme=", "route=", NULL
    };
    dns_state *st = apr_pcalloc(p, sizeof(*st));
    const char *v, *err;

    if ((err = slb_disc_check_options(p, opts, srv ? own_srv : own_dns))) {
        return err;
    }
    st->srv = srv;
    st->timeout = apr_time_from_sec(2);
    st->scheme = "http";
    if (srv) {
        if (!name_ok(target) || target[0] != '_') {
            return apr_psprintf(p, "'%s': an SRV name is _service._proto."
                                "name, e.g. _http._tcp.app.example.com",
                                target);
        }
        st->name = target;
    }
    else {
        const char *colon = strrchr(target, ':');
        apr_int64_t port;
        if (colon == NULL || colon == target
            || slb_parse_int(p, colon + 1, 1, 65535, &port)) {
            return apr_psprintf(p, "'%s': the target of dns is name:port, "
                                "e.g. app.example.com:8080", target);
        }
        st->name = apr_pstrmemdup(p, target, (apr_size_t)(colon - target));
        st->port = (int)port;
        if (!name_ok(st->name)) {
            return apr_psprintf(p, "'%s' is not a DNS name", st->name);
        }
    }
    if ((v = apr_table_get(opts, "server"))
        && (err = check_servers(p, v, &st->servers))) {
        return err;
    }
    if ((v = apr_table_get(opts, "timeout"))
        && (err = slb_parse_duration(p, v, SLB_UNIT_S,
                                     apr_time_from_msec(100),
                                     apr_time_from_sec(30), &st->timeout))) {
        return apr_pstrcat(p, "timeout=: ", err, NULL);
    }
    if ((v = apr_table_get(opts, "family"))) {
        static const slb_keyword fam[] = {
            { "any", FAM_ANY }, { "ipv4", FAM_V4 }, { "ipv6", FAM_V6 },
            { NULL, 0 }
        };
        int f;
        if ((err = slb_parse_keyword(p, v, fam, &f))) {
            return apr_pstrcat(p, "family=: ", err, NULL);
        }
        st->family = (family_t)f;
    }
    if ((v = apr_table_get(opts, "scheme"))) {
        const char *why;
        if (!slb_disc_url_norm(p, apr_pstrcat(p, v, "://a:1", NULL), &why,
                               NULL, NULL)) {
            return apr_psprintf(p, "scheme=%s: %s", v, why);
        }
        st->scheme = apr_pstrdup(p, v);
    }
    if ((v = apr_table_get(opts, "route"))) {
        static const slb_keyword rt[] = {
            { "label", ROUTE_LABEL }, { "label-port", ROUTE_LABEL_PORT },
            { "address", ROUTE_ADDRESS }, { NULL, 0 }
        };
        int r;
        if ((err = slb_parse_keyword(p, v, rt, &r))) {
            return apr_pstrcat(p, "route=: ", err, NULL);
        }
        st->route = (route_t)r;
    }
    apr_pool_cleanup_register(p, st, dns_cleanup, apr_pool_cleanup_null);
    *state = st;
    return NULL;
}

static const char *dns_create(apr_pool_t *p, const char *target,
                              apr_table_t *opts, void **state)
{
    return create(p, target, opts, state, 0);
}

static const char *srv_create(apr_pool_t *p, const char *target,
                              apr_table_t *opts, void **state)
{
    return create(p, target, opts, state, 1);
}

/* ------------------------------------------------------------------ */
/* the channel                                                          */

static const char *channel(dns_state *st, apr_pool_t *p)
{
    static int lib_ready = 0;
    struct ares_options o;
    int rc, tmo;

    if (st->have_ch && st->pid == getpid()) {
        return NULL;
    }
    /* a channel inherited over fork() is another process's: left alone */
    st->have_ch = 0;
    if (!lib_ready) {
        if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
            return apr_psprintf(p, "c-ares: %s", ares_strerror(rc));
        }
        lib_ready = 1;
    }
    memset(&o, 0, sizeof(o));
    /* two tries of half the timeout each; the fetch bounds the total */
    tmo = (int)(apr_time_as_msec(st->timeout) / 2);
    o.timeout = tmo < 50 ? 50 : tmo;
    o.tries = 2;
    o.flags = ARES_FLAG_NOCHECKRESP;
    rc = ares_init_options(&st->ch, &o,
                           ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES
                           | ARES_OPT_FLAGS);
    if (rc != ARES_SUCCESS) {
        return apr_psprintf(p, "c-ares: %s", ares_strerror(rc));
    }
    if (st->servers
        && (rc = ares_set_servers_ports_csv(st->ch, st->servers))
               != ARES_SUCCESS) {
        ares_destroy(st->ch);
        return apr_psprintf(p, "c-ares: server=%s: %s", st->servers,
                            ares_strerror(rc));
    }
    st->have_ch = 1;
    st->pid = getpid();
    return NULL;
}

/* ------------------------------------------------------------------ */
/* queries                                                              */

typedef struct fetch_ctx fetch_ctx;

typedef struct {
    fetch_ctx *fx;
    int type;                  /* T_A, T_AAAA, T_SRV */
    int target;                /* index in fx->targets, or -1 */
    int done;
    int status;                /* ARES_* */
} query;

typedef struct {
    const char *host;          /* SRV target */
    int port, weight;
    char addr4[INET_ADDRSTRLEN];
    char addr6[INET6_ADDRSTRLEN];
} srv_target;

struct fetch_ctx {
    dns_state *st;
    apr_pool_t *p;
    int pending;
    const char *err;           /* the first failure */
    apr_interval_time_t ttl;   /* the smallest, 0: none */
    apr_array_header_t *addrs; /* dns: const char * "a.b.c.d" */
    apr_array_header_t *fams;  /* dns: int 4 or 6 */
    apr_array_header_t *targets;   /* srv_target */
    int srv_empty;             /* srv: "." only (no service) */
};

static void take_ttl(fetch_ctx *fx, int ttl)
{
    apr_interval_time_t t = apr_time_from_sec(ttl > 0 ? ttl : 0);

    if (ttl > 0 && (fx->ttl == 0 || t < fx->ttl)) {
        fx->ttl = t;
    }
}

static int no_records(int status)
{
    return status == ARES_ENODATA || status == ARES_ENOTFOUND;
}

static void fail(fetch_ctx *fx, const char *what, int status)
{
    if (fx->err == NULL) {
        fx->err = apr_psprintf(fx->p, "%s: %s", what, ares_strerror(status));
    }
}

/* the smallest TTL of the answer section of a reply (SRV replies: the
 * parser does not give it) */
static void answer_ttl(fetch_ctx *fx, const unsigned char *abuf, int alen)
{
    const unsigned char *ptr = abuf + 12;
    int qd, an, i;

    if (alen < 12) {
        return;
    }
    qd = (abuf[4] << 8) | abuf[5];
    an = (abuf[6] << 8) | abuf[7];
    for (i = 0; i < qd; i++) {
        char *name = NULL;
        long len = 0;
        if (ares_expand_name(ptr, abuf, alen, &name, &len) != ARES_SUCCESS) {
            return;
        }
        ares_free_string(name);
        ptr += len + 4;
        if (ptr > abuf + alen) {
            return;
        }
    }
    for (i = 0; i < an; i++) {
        char *name = NULL;
        long len = 0;
        int rdlen;
        if (ares_expand_name(ptr, abuf, alen, &name, &len) != ARES_SUCCESS) {
            return;
        }
        ares_free_string(name);
        ptr += len;
        if (ptr + 10 > abuf + alen) {
            return;
        }
        take_ttl(fx, (int)(((unsigned)ptr[4] << 24) | (ptr[5] << 16)
                           | (ptr[6] << 8) | ptr[7]));
        rdlen = (ptr[8] << 8) | ptr[9];
        ptr += 10 + rdlen;
    }
}

static void send_query(fetch_ctx *fx, const char *name, int type,
                       int target);

static void on_answer(void *arg, int status, int timeouts,
                      unsigned char *abuf, int alen)
{
    query *q = arg;
    fetch_ctx *fx = q->fx;
    const char *qname = q->target >= 0
        ? APR_ARRAY_IDX(fx->targets, q->target, srv_target).host
        : fx->st->name;
    const char *tname = q->type == T_A ? "A" : q->type == T_AAAA ? "AAAA"
                                                                 : "SRV";
    int i, rc;

    (void)timeouts;
    q->done = 1;
    q->status = status;
    fx->pending--;
    if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
        fail(fx, apr_psprintf(fx->p, "%s %s", tname, qname), ARES_ETIMEOUT);
        return;
    }
    if (no_records(status)) {
        return;              /* no such records: none */
    }
    if (status != ARES_SUCCESS) {
        fail(fx, apr_psprintf(fx->p, "%s %s", tname, qname), status);
        return;
    }
    if (q->type == T_A || q->type == T_AAAA) {
        struct ares_addrttl a4[MAX_ADDRS];
        struct ares_addr6ttl a6[MAX_ADDRS];
        int n = MAX_ADDRS;
        srv_target *t = q->target >= 0
            ? &APR_ARRAY_IDX(fx->targets, q->target, srv_target) : NULL;

        if (q->type == T_A) {
            rc = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
        }
        else {
            rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
        }
        if (no_records(rc)) {
            return;
        }
        if (rc != ARES_SUCCESS) {
            fail(fx, apr_psprintf(fx->p, "%s %s", tname, qname), rc);
            return;
        }
        for (i = 0; i < n; i++) {
            char buf[INET6_ADDRSTRLEN];
            if (q->type == T_A) {
                inet_ntop(AF_INET, &a4[i].ipaddr, buf, sizeof(buf));
                take_ttl(fx, a4[i].ttl);
            }
            else {
                inet_ntop(AF_INET6, &a6[i].ip6addr, buf, sizeof(buf));
                take_ttl(fx, a6[i].ttl);
            }
            if (t) {
                /* the lowest address: the same member at every answer */
                char *slot = q->type == T_A ? t->addr4 : t->addr6;
                apr_size_t sz = q->type == T_A ? sizeof(t->addr4)
                                               : sizeof(t->addr6);
                if (!*slot || strcmp(buf, slot) < 0) {
                    apr_cpystrn(slot, buf, sz);
                }
            }
            else {
                APR_ARRAY_PUSH(fx->addrs, const char *)
                    = apr_pstrdup(fx->p, buf);
                APR_ARRAY_PUSH(fx->fams, int) = q->type == T_A ? 4 : 6;
            }
        }
        return;
    }
    /* SRV */
    {
        struct ares_srv_reply *srv = NULL, *r;
        rc = ares_parse_srv_reply(abuf, alen, &srv);
        if (no_records(rc)) {
            return;
        }
        if (rc != ARES_SUCCESS) {
            fail(fx, apr_psprintf(fx->p, "SRV %s", qname), rc);
            return;
        }
        answer_ttl(fx, abuf, alen);
        for (r = srv; r; r = r->next) {
            srv_target *t;
            if (!strcmp(r->host, "") || !strcmp(r->host, ".")) {
                fx->srv_empty = 1;   /* "no such service here" */
                continue;
            }
            t = apr_array_push(fx->targets);
            memset(t, 0, sizeof(*t));
            t->host = apr_pstrdup(fx->p, r->host);
            t->port = r->port;
            t->weight = r->weight;
        }
        ares_free_data(srv);
        /* the targets' addresses, from the same server */
        for (i = 0; i < fx->targets->nelts; i++) {
            srv_target *t = &APR_ARRAY_IDX(fx->targets, i, srv_target);
            if (!name_ok(t->host) || t->port == 0) {
                continue;    /* counted as malformed by the fetch */
            }
            if (fx->st->family != FAM_V6) {
                send_query(fx, t->host, T_A, i);
            }
            if (fx->st->family != FAM_V4) {
                send_query(fx, t->host, T_AAAA, i);
            }
        }
    }
}

static void send_query(fetch_ctx *fx, const char *name, int type,
                       int target)
{
    query *q = apr_pcalloc(fx->p, sizeof(*q));
    apr_size_t len = strlen(name);

    q->fx = fx;
    q->type = type;
    q->target = target;
    fx->pending++;
    if (fx->st->servers || (len && name[len - 1] == '.') || target >= 0) {
        ares_query(fx->st->ch, name, C_IN, type, on_answer, q);
    }
    else {
        /* the system's resolver: its search list too */
        ares_search(fx->st->ch, name, C_IN, type, on_answer, q);
    }
}

/* Answers until none is pending or the deadline (then cancelled). */
static void run(fetch_ctx *fx, apr_time_t deadline)
{
    ares_channel ch = fx->st->ch;

    while (fx->pending > 0) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        int bits, i, n = 0, rc;
        apr_time_t now = apr_time_now();
        struct timeval maxtv, tvbuf, *tv;
        int ms;

        if (now >= deadline) {
            ares_cancel(ch);     /* the callbacks run: ETIMEOUT */
            break;
        }
        maxtv.tv_sec = (long)((deadline - now) / APR_USEC_PER_SEC);
        maxtv.tv_usec = (long)((deadline - now) % APR_USEC_PER_SEC);
        tv = ares_timeout(ch, &maxtv, &tvbuf);
        ms = (int)(tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000);
        bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;
            /* c-ares' ARES_GETSOCK_WRITABLE shifts an int by up to 31
             * bits (undefined): the bits read as unsigned */
            if (((unsigned)bits >> i) & 1u) {
                ev |= POLLIN;
            }
            if (((unsigned)bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u) {
                ev |= POLLOUT;
            }
            if (ev) {
                pfd[n].fd = socks[i];
                pfd[n].events = ev;
                pfd[n].revents = 0;
                n++;
            }
        }
        rc = poll(pfd, (nfds_t)n, ms);
        if (rc <= 0) {
            /* timeouts (and retries) of c-ares */
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (i = 0; i < n; i++) {
            if (pfd[i].revents) {
                ares_process_fd(
                    ch,
                    (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
                        ? pfd[i].fd : ARES_SOCKET_BAD,
                    (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD);
            }
        }
    }
}

static slb_disc_result fetch(void *state, apr_pool_t *p,
                             apr_interval_time_t wait,
                             apr_array_header_t **entries, int *malformed,
                             apr_interval_time_t *ttl, const char **err)
{
    dns_state *st = state;
    fetch_ctx fx;
    apr_array_header_t *out;
    const char *e;
    int i;

    (void)wait;              /* DNS answers at once */
    *malformed = 0;
    *ttl = 0;
    if ((e = channel(st, p)) != NULL) {
        *err = e;
        return SLB_DISC_FAILED;
    }
    memset(&fx, 0, sizeof(fx));
    fx.st = st;
    fx.p = p;
    fx.addrs = apr_array_make(p, 8, sizeof(const char *));
    fx.fams = apr_array_make(p, 8, sizeof(int));
    fx.targets = apr_array_make(p, 8, sizeof(srv_target));
    if (st->srv) {
        send_query(&fx, st->name, T_SRV, -1);
    }
    else {
        if (st->family != FAM_V6) {
            send_query(&fx, st->name, T_A, -1);
        }
        if (st->family != FAM_V4) {
            send_query(&fx, st->name, T_AAAA, -1);
        }
    }
    run(&fx, apr_time_now() + st->timeout);
    if (fx.pending > 0 && fx.err == NULL) {
        fx.err = "timed out";
    }
    if (fx.err) {
        *err = fx.err;
        return SLB_DISC_FAILED;
    }
    out = apr_array_make(p, 8, sizeof(slb_disc_entry));
    if (!st->srv) {
        for (i = 0; i < fx.addrs->nelts; i++) {
            const char *a = APR_ARRAY_IDX(fx.addrs, i, const char *);
            int v6 = APR_ARRAY_IDX(fx.fams, i, int) == 6;
            slb_disc_entry *en = apr_array_push(out);
            memset(en, 0, sizeof(*en));
            en->url = apr_psprintf(p, v6 ? "%s://[%s]:%d" : "%s://%s:%d",
                                   st->scheme, a, st->port);
            en->origin = apr_psprintf(p, "%s %s %s", v6 ? "AAAA" : "A",
                                      st->name, a);
        }
    }
    for (i = 0; i < fx.targets->nelts; i++) {
        srv_target *t = &APR_ARRAY_IDX(fx.targets, i, srv_target);
        const char *a = *t->addr4 ? t->addr4 : t->addr6;
        int v6 = !*t->addr4;
        const char *label = slb_disc_first_label(p, t->host);
        slb_disc_entry *en;

        if (!name_ok(t->host) || t->port == 0 || !*a || label == NULL) {
            (*malformed)++;
            continue;
        }
        en = apr_array_push(out);
        memset(en, 0, sizeof(*en));
        en->url = apr_psprintf(p, v6 ? "%s://[%s]:%d" : "%s://%s:%d",
                               st->scheme, a, t->port);
        en->route = st->route == ROUTE_LABEL ? label
                    : st->route == ROUTE_LABEL_PORT
                        ? apr_psprintf(p, "%s-%d", label, t->port)
                        : NULL;
        en->loadfactor = t->weight > 100 ? 100 : t->weight;
        en->origin = apr_psprintf(p, "SRV %s %s:%d", st->name, t->host,
                                  t->port);
    }
    (void)fx.srv_empty;
    *ttl = fx.ttl;
    *entries = out;
    return SLB_DISC_OK;
}

const slb_disc_source_ops slb_dns_ops = { "dns", dns_create, fetch };
const slb_disc_source_ops slb_srv_ops = { "srv", srv_create, fetch };
