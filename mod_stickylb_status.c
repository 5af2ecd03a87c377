/*
 * mod_stickylb_status.c - status and run-time control.
 *
 *   <Location "/stickylb-status">
 *       SetHandler stickylb-status
 *       Require ip 10.0.0.0/8          # the operator's access rule
 *   </Location>
 *
 * GET: the balancers of the virtual host that use lbmethod=stickylb, their
 * members and the stick table, as HTML (default, or ?format=html), JSON
 * (?format=json) or Prometheus text (?format=prometheus); another format
 * is a 400.  Counters are server-wide (shared memory); what is each
 * process's own (memcached servers' state, the recovery window, the
 * writer's queue) is the answering process's, and says so.  POST (form fields nonce, balancer,
 * member, action, value, id): drain / undrain / maintenance / enable /
 * weight a member, show or delete the binding of one session id, unbind
 * every session of a member.  A POST without this server's nonce is refused
 * (403), like balancer-manager does.  A summary also goes to mod_status
 * (server-status, and ?auto).
 */
#include "apr_strings.h"
#include "apr_uuid.h"
#include "apr_optional.h"

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include "mod_proxy.h"
#include "mod_status.h"

#include <openssl/crypto.h>

#include "mod_stickylb.h"

#define STATUS_HANDLER "stickylb-status"

/* the page carries nonce-bearing buttons: never inside a frame */
static void frame_headers(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "X-Frame-Options", "DENY");
    apr_table_setn(r->err_headers_out, "Content-Security-Policy",
                   "frame-ancestors 'none'");
}

static char nonce[APR_UUID_FORMATTED_LENGTH + 1];

int slb_status_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_uuid_t u;

    (void)pconf;
    (void)s;
    /* made in the parent: every child inherits the same nonce */
    apr_uuid_get(&u);
    apr_uuid_format(nonce, &u);
    return OK;
}

/* ------------------------------------------------------------------ */
/* the view                                                             */

/* The states of a member, as member_state() names them (X: index, name). */
#define MEMBER_STATES(X)                                                   \
    X(0, "up") X(1, "down-by-probe") X(2, "down-by-hcheck") X(3, "error")  \
    X(4, "disabled") X(5, "stopped") X(6, "draining") X(7, "standby")      \
    X(8, "spare") X(9, "down-by-agent")
#define STATE_NAME(i, name) name,
static const char *const states[] = { MEMBER_STATES(STATE_NAME) };
#undef STATE_NAME
#define N_STATES ((int)(sizeof(states) / sizeof(states[0])))

/* The snapshot of one member: what the outputs show of it. */
typedef struct {
    proxy_worker *w;
    const char *state;
    int in_state[N_STATES];    /* 1 for its state, 0 for the others */
    double weight;             /* loadfactor as configured (lbfactor/100) */
    apr_uint32_t sessions;
    int up;                    /* healthy: not down by a check, no error */
    double probe_latency_s;
    double probe_s_total;      /* every probe's duration, added */
    slb_health_view h;
    int discovers;             /* its balancer discovers members */
    slb_discover_mview d;      /* d.discovered: this one was discovered */
} member_view;

typedef struct {
    proxy_balancer *b;
    const slb_balancer *c;
    const char *ns;
    apr_array_header_t *members;   /* member_view */
    int discovers;                 /* StickyLBDiscover: d is set */
    slb_discover_bview d;
    apr_uint64_t d_last_sync_s, d_last_fetch_s, d_started_s;
} balancer_view;

static const char *member_state(proxy_worker *w, const slb_health_view *h)
{
    if (PROXY_WORKER_IS(w, PROXY_WORKER_STOPPED)) {
        return "stopped";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED)) {
        return "disabled";
    }
    if (PROXY_WORKER_IS_HCFAILED(w)) {
        if ((h->agent_owned & SLB_AGENT_F_DOWN) && !h->down) {
            return "down-by-agent";
        }
        return h->probed ? "down-by-probe" : "down-by-hcheck";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_IN_ERROR)) {
        return "error";
    }
    if (PROXY_WORKER_IS_DRAINING(w)) {
        return "draining";
    }
    if (PROXY_WORKER_IS_STANDBY(w)) {
        return "standby";
    }
    if (PROXY_WORKER_IS_SPARE(w)) {
        return "spare";
    }
    return "up";
}

static double secs(apr_interval_time_t t)
{
    return (double)t / APR_USEC_PER_SEC;
}

static int uses_stickylb(const proxy_balancer *b)
{
    return b && b->s && !strcmp(b->s->lbpname, "stickylb");
}

static apr_array_header_t *collect(request_rec *r)
{
    proxy_server_conf *pc = ap_get_module_config(r->server->module_config,
                                                 &proxy_module);
    apr_array_header_t *out = apr_array_make(r->pool, 4,
                                             sizeof(balancer_view));
    int i, j, k;

    if (pc == NULL || pc->balancers == NULL) {
        return out;
    }
    for (i = 0; i < pc->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i, proxy_balancer);
        balancer_view *bv;

        if (!uses_stickylb(b)) {
            continue;
        }
        /* members added at run time, under the balancer's thread lock as
         * balancer-manager takes it */
        if (PROXY_THREAD_LOCK(b) == APR_SUCCESS) {
            ap_proxy_sync_balancer(b, r->server, pc);
            PROXY_THREAD_UNLOCK(b);
        }
        bv = apr_array_push(out);
        bv->b = b;
        bv->c = slb_balancer_of(r->server, b, r->pool);
        bv->ns = bv->c->ns;
        bv->members = apr_array_make(r->pool, b->workers->nelts,
                                     sizeof(member_view));
        bv->discovers = slb_discover_balancer_view(b, &bv->d);
        bv->d_last_sync_s = (apr_uint64_t)apr_time_sec(bv->d.last_sync);
        bv->d_last_fetch_s = (apr_uint64_t)apr_time_sec(bv->d.last_fetch);
        bv->d_started_s = (apr_uint64_t)apr_time_sec(bv->d.started);
        for (j = 0; j < b->workers->nelts; j++) {
            member_view *mv = apr_array_push(bv->members);
            mv->w = APR_ARRAY_IDX(b->workers, j, proxy_worker *);
            slb_health_snapshot(b, mv->w, &mv->h);
            mv->state = member_state(mv->w, &mv->h);
            for (k = 0; k < N_STATES; k++) {
                mv->in_state[k] = !strcmp(states[k], mv->state);
            }
            mv->weight = mv->w->s->lbfactor / 100.0;
            mv->sessions = slb_store_route_sessions(bv->ns,
                                                    mv->w->s->route);
            /* health only: what an operator decided (drain, disable,
             * stop, standby) is in the state */
            mv->up = !PROXY_WORKER_IS_HCFAILED(mv->w)
                     && !PROXY_WORKER_IS(mv->w, PROXY_WORKER_IN_ERROR);
            mv->probe_latency_s = secs(mv->h.last_latency);
            mv->probe_s_total = secs((apr_interval_time_t)mv->h.probe_us);
            mv->discovers = bv->discovers;
            if (bv->discovers) {
                slb_discover_member_view(r->pool, b, mv->w, &mv->d);
            }
        }
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* JSON and Prometheus escaping                                         */

static const char *json_str(apr_pool_t *p, const char *s)
{
    apr_size_t n = 2;
    const char *q;
    char *out, *w;

    for (q = s; *q; q++) {
        n += ((unsigned char)*q < 0x20 || *q == '"' || *q == '\\') ? 6 : 1;
    }
    out = w = apr_palloc(p, n + 1);
    *w++ = '"';
    for (q = s; *q; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '"' || c == '\\') {
            *w++ = '\\';
            *w++ = (char)c;
        }
        else if (c < 0x20) {
            apr_snprintf(w, 7, "\\u%04x", c);
            w += 6;
        }
        else {
            *w++ = (char)c;
        }
    }
    *w++ = '"';
    *w = '\0';
    return out;
}

/* the flags the agent set, as a JSON list's items */
static const char *agent_set_json(apr_pool_t *p, unsigned owned)
{
    return apr_pstrcat(p, (owned & SLB_AGENT_F_DRAIN) ? ",\"drain\"" : "",
                       (owned & SLB_AGENT_F_MAINT) ? ",\"maint\"" : "",
                       (owned & SLB_AGENT_F_DOWN) ? ",\"down\"" : "",
                       NULL) + (owned & SLB_AGENT_F_ALL ? 1 : 0);
}

static const char *prom_label(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 2 + 1), *w = out;

    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *w++ = '\\';
            *w++ = *s;
        }
        else if (*s == '\n') {
            *w++ = '\\';
            *w++ = 'n';
        }
        else {
            *w++ = *s;
        }
    }
    *w = '\0';
    return out;
}


/* ------------------------------------------------------------------ */
/* control                                                              */

static proxy_balancer *find_balancer(request_rec *r, const char *name)
{
    proxy_server_conf *pc = ap_get_module_config(r->server->module_config,
                                                 &proxy_module);
    int i;

    for (i = 0; pc && pc->balancers && i < pc->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i, proxy_balancer);
        const char *n = b->s->name;
        if (uses_stickylb(b)
            && (!strcasecmp(n, name)
                || (!strncasecmp(n, "balancer://", 11)
                    && !strcasecmp(n + 11, name)))) {
            return b;
        }
    }
    return NULL;
}

/* Back to the page: a relative reference to the handler's own last path
 * segment, so that no request path can make it point elsewhere ("//host",
 * "scheme:"). */
static const char *page_ref(request_rec *r)
{
    const char *seg = strrchr(r->parsed_uri.path ? r->parsed_uri.path : "/",
                              '/');

    seg = seg && seg[1] ? seg + 1 : "";
    return apr_pstrcat(r->pool, "./", ap_escape_path_segment(r->pool, seg),
                       NULL);
}

static int reply(request_rec *r, int status, int html, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);
    if (html && status == HTTP_OK) {
        apr_table_setn(r->headers_out, "Location", page_ref(r));
        return HTTP_SEE_OTHER;
    }
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_rprintf(r, "{\"ok\":%s,%s}\n", status == HTTP_OK ? "true" : "false",
               msg);
    return OK;
}

/* One control request, parsed and checked. */
typedef struct {
    request_rec *r;
    apr_table_t *form;
    proxy_balancer *b;
    const slb_balancer *c;
    proxy_worker *w;             /* the member named, or NULL */
    int html;                    /* answer with a redirect to the page */
} control_req;

#define NOT_SHARED (-1)
/* what a member action's run returns to have the common answer follow */
#define GO_ON (-1)

/*
 * The run-time controls: one row an action.  `run` does it (member
 * actions return GO_ON and the common answer follows: the state shared with
 * every balancer of the namespace when `shares` is a member state, the
 * log line, the reply); `button` says when the page offers it on a member
 * (the actions without a member are offered once per balancer); `input`
 * names the form field the page asks for with it.
 */
typedef struct {
    const char *name;
    int needs_member;
    int shares;                  /* slb_member_state, or NOT_SHARED */
    int (*run)(control_req *x);  /* GO_ON, or an answer of its own */
    int (*button)(const proxy_worker *w);
    const char *input;           /* "value", "id", or NULL */
} action;

/* the operator's own flags: the agent check never clears them (the
 * agent forgets a flag the operator sets or clears) */
static int operator_flag(control_req *x, unsigned agent_flag, char flag,
                         int on)
{
    slb_agent_forget(x->b, x->w, agent_flag);
    ap_proxy_set_wstatus(flag, on, x->w);
    return GO_ON;
}

static int do_drain(control_req *x)
{
    return operator_flag(x, SLB_AGENT_F_DRAIN, PROXY_WORKER_DRAIN_FLAG, 1);
}

static int do_undrain(control_req *x)
{
    return operator_flag(x, SLB_AGENT_F_DRAIN, PROXY_WORKER_DRAIN_FLAG, 0);
}

static int do_maintenance(control_req *x)
{
    return operator_flag(x, SLB_AGENT_F_MAINT, PROXY_WORKER_DISABLED_FLAG,
                         1);
}

static int do_enable(control_req *x)
{
    ap_proxy_set_wstatus(PROXY_WORKER_STOPPED_FLAG, 0, x->w);
    return operator_flag(x, SLB_AGENT_F_MAINT, PROXY_WORKER_DISABLED_FLAG,
                         0);
}

static int do_weight(control_req *x)
{
    const char *v = apr_table_get(x->form, "value");
    apr_int64_t n;

    if (v == NULL || slb_parse_int(x->r->pool, v, 1, 100, &n) != NULL) {
        return reply(x->r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"value must be 1 to 100\"");
    }
    /* mod_proxy keeps loadfactor x 100 */
    x->w->s->lbfactor = (int)n * 100;
    return GO_ON;
}

static int do_unbind(control_req *x)
{
    apr_uint32_t n = slb_store_unbind_route(x->c->ns, x->w->s->route);

    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, x->r,
                  SLB_LOG_TAG "SLB0403: %u bindings of member %s of %s "
                  "deleted by %s", n, x->w->s->name, x->b->s->name,
                  x->r->useragent_ip);
    return reply(x->r, HTTP_OK, x->html, "\"unbound\":%u", n);
}

/* show and delete: the binding of one session id */
static int session_key(control_req *x, slb_skey *k)
{
    const char *id = apr_table_get(x->form, "id");

    if (id == NULL || !slb_value_ok(id, strlen(id))) {
        return 0;
    }
    slb_skey_init(k, x->c->ns, id, strlen(id));
    return 1;
}

static int do_show(control_req *x)
{
    slb_skey k;
    char bound[SLB_MAX_ROUTE_LEN + 1];

    if (!session_key(x, &k)) {
        return reply(x->r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"a session id is needed\"");
    }
    if (slb_store_get(x->c, &k, bound) != APR_SUCCESS) {
        bound[0] = '\0';
    }
    if (x->html) {
        request_rec *r = x->r;
        ap_set_content_type(r, "text/html; charset=utf-8");
        ap_rprintf(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                   "<title>mod_stickylb: show</title></head><body>"
                   "<p>%s: session <code>%s</code> %s%s%s</p>"
                   "<p><a href=\"%s\">back</a></p></body></html>\n",
                   ap_escape_html2(r->pool, x->b->s->name, 1),
                   ap_escape_html2(r->pool, apr_table_get(x->form, "id"), 1),
                   *bound ? "is bound to route <code>" : "is not bound",
                   ap_escape_html2(r->pool, bound, 1), *bound ? "</code>" : "",
                   ap_escape_html2(r->pool, page_ref(r), 1));
        return OK;
    }
    if (*bound) {
        return reply(x->r, HTTP_OK, 0, "\"route\":%s",
                     json_str(x->r->pool, bound));
    }
    return reply(x->r, HTTP_OK, 0, "\"route\":null");
}

static int do_delete(control_req *x)
{
    slb_skey k;
    apr_status_t rv;

    if (!session_key(x, &k)) {
        return reply(x->r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"a session id is needed\"");
    }
    rv = slb_store_del(x->c, &k);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, x->r,
                  SLB_LOG_TAG "SLB0402: binding of a session of %s deleted "
                  "by %s", x->b->s->name, x->r->useragent_ip);
    return reply(x->r, HTTP_OK, x->html, "\"deleted\":%s",
                 rv == APR_SUCCESS ? "true" : "false");
}

static int offer_drain(const proxy_worker *w)
{
    return !PROXY_WORKER_IS_DRAINING(w);
}

static int offer_undrain(const proxy_worker *w)
{
    return PROXY_WORKER_IS_DRAINING(w);
}

static int offer_maintenance(const proxy_worker *w)
{
    return !PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED);
}

static int offer_enable(const proxy_worker *w)
{
    return PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED);
}

static int offer_always(const proxy_worker *w)
{
    (void)w;
    return 1;
}

static const action actions[] = {
    { "drain", 1, SLB_MEMBER_DRAIN, do_drain, offer_drain },
    { "undrain", 1, SLB_MEMBER_UP, do_undrain, offer_undrain },
    { "maintenance", 1, SLB_MEMBER_MAINT, do_maintenance,
      offer_maintenance },
    { "enable", 1, SLB_MEMBER_UP, do_enable, offer_enable },
    { "weight", 1, NOT_SHARED, do_weight, offer_always, "value" },
    { "unbind", 1, NOT_SHARED, do_unbind, offer_always },
    { "show", 0, NOT_SHARED, do_show, NULL, "id" },
    { "delete", 0, NOT_SHARED, do_delete, NULL, "id" },
};
#define N_ACTIONS ((int)(sizeof(actions) / sizeof(actions[0])))

static apr_table_t *read_form(request_rec *r)
{
    apr_array_header_t *pairs = NULL;
    apr_table_t *f;

    if (ap_parse_form_data(r, NULL, &pairs, 16, 8192) != OK || !pairs) {
        return NULL;
    }
    f = apr_table_make(r->pool, 8);
    while (pairs->nelts) {
        ap_form_pair_t *pair = (ap_form_pair_t *)apr_array_pop(pairs);
        apr_off_t len;
        apr_size_t size;
        char *buf;

        apr_brigade_length(pair->value, 1, &len);
        if (len < 0 || len > 4096) {
            continue;
        }
        size = (apr_size_t)len;
        buf = apr_palloc(r->pool, size + 1);
        apr_brigade_flatten(pair->value, buf, &size);
        buf[size] = '\0';
        apr_table_setn(f, pair->name, buf);
    }
    return f;
}

static int control(request_rec *r)
{
    control_req x;
    const char *bal, *route, *name, *v;
    const action *a = NULL;
    const char *shared = "";
    int i, rc;

    memset(&x, 0, sizeof(x));
    x.r = r;
    if ((x.form = read_form(r)) == NULL) {
        return reply(r, HTTP_BAD_REQUEST, 0, "\"error\":\"no form data\"");
    }
    x.html = (v = apr_table_get(x.form, "return")) && !strcmp(v, "html");
    v = apr_table_get(x.form, "nonce");
    if (v == NULL || strlen(v) != strlen(nonce)
        || CRYPTO_memcmp(v, nonce, strlen(nonce)) != 0) {   /* constant time */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SLB_LOG_TAG "SLB0401: control request without this "
                      "server's nonce refused");
        return reply(r, HTTP_FORBIDDEN, 0, "\"error\":\"bad nonce\"");
    }
    bal = apr_table_get(x.form, "balancer");
    name = apr_table_get(x.form, "action");
    route = apr_table_get(x.form, "member");
    if (!bal || !name || !(x.b = find_balancer(r, bal))) {
        return reply(r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"balancer and action needed\"");
    }
    for (i = 0; i < N_ACTIONS; i++) {
        if (!strcmp(actions[i].name, name)) {
            a = &actions[i];
            break;
        }
    }
    x.c = slb_balancer_of(r->server, x.b, r->pool);
    for (i = 0; route && i < x.b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(x.b->workers, i, proxy_worker *);
        if (!strcmp(w->s->route, route)) {
            x.w = w;
            break;
        }
    }
    if (a && a->needs_member && x.w == NULL) {
        return reply(r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"member (route) not in the balancer\"");
    }
    if (a == NULL) {
        return reply(r, HTTP_BAD_REQUEST, 0, "\"error\":\"unknown action\"");
    }
    if ((rc = a->run(&x)) != GO_ON) {
        return rc;
    }
    if (a->shares != NOT_SHARED && x.c->store == SLB_STORE_MEMCACHED) {
        /* every balancer on the same memcached namespace follows */
        shared = slb_store_publish_state(r, x.c->ns, x.w->s->route,
                                         (slb_member_state)a->shares)
                         == APR_SUCCESS
                     ? ",\"shared\":true" : ",\"shared\":false";
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  SLB_LOG_TAG "SLB0404: %s on member %s of %s by %s",
                  a->name, x.w->s->name, x.b->s->name, r->useragent_ip);
    return reply(r, HTTP_OK, x.html, "\"member\":%s,\"action\":%s%s",
                 json_str(r->pool, x.w->s->route),
                 json_str(r->pool, a->name), shared);
}

/* ------------------------------------------------------------------ */
/* the metrics                                                          */

/*
 * Every number the three outputs show is one row of this table: where it
 * is in the snapshot, its JSON name (and the JSON object it goes in), its
 * Prometheus name, labels, type and help, its title on the HTML page.  A
 * metric is added here and nowhere else.  Rows of one Prometheus name
 * must follow each other (one HELP and TYPE for them).
 */
typedef enum {
    S_MEMBER,        /* one value per member (member_view) */
    S_STORE,         /* one per server (store_view) */
    S_TIER,          /* one per kind of store (slb_tier_counters) */
    S_BALANCER       /* one per balancer (balancer_view) */
} metric_scope;

typedef enum { V_U32, V_U64, V_INT, V_DBL } value_type;

#define NO_FIELD ((apr_size_t)-1)

typedef struct {
    metric_scope scope;
    const char *group;       /* JSON object of a store value: "table", "",
                                "memcached", "writer" (in memcached) */
    const char *json;        /* JSON name; NULL: not in JSON */
    const char *prom;        /* Prometheus name; NULL: not exported */
    const char *labels;      /* more Prometheus labels, or NULL */
    const char *type;        /* "gauge" or "counter" */
    const char *help;
    const char *html;        /* title on the HTML page; NULL: not shown */
    value_type vt;
    apr_size_t off;          /* of the value in its view */
    apr_size_t present;      /* an int of the view that must be set */
    const char *suffix;      /* of the Prometheus sample ("_bucket",
                                "_sum", "_count" of a histogram or
                                summary), or NULL */
    int page;                /* HTML member columns: PAGE_* */
} metric;

/* which balancers' tables show a member column */
#define PAGE_ALL 0
#define PAGE_STORED 1        /* balancers that bind sessions in a store */
#define PAGE_COOKIE 2        /* balancers with a route cookie */

/* The snapshot of the store side, with the derived values the outputs
 * show. */
typedef struct {
    slb_store_view v;
    double table_mib;
    apr_uint64_t mc_plain_sets;          /* sets that were not quiet */
    double mc_latency_ms_mean, mc_latency_ms_max;
    double mc_latency_s_total;
    apr_uint64_t started_s;              /* the shared counters' start */
} store_view;

#define MV(f) APR_OFFSETOF(member_view, f)
#define BV(f) APR_OFFSETOF(balancer_view, f)
#define SV(f) APR_OFFSETOF(store_view, f)
#define TC(f) APR_OFFSETOF(slb_tier_counters, f)

static const metric metrics[] = {
    /* members */
    { S_MEMBER, "", NULL, "stickylb_member_up", NULL, "gauge",
      "1 when the member is healthy (not down by a probe or health check, "
      "not in error); what an operator made of it is stickylb_member_state",
      NULL, V_INT, MV(up), NO_FIELD },
#define MEMBER_STATE(i, name)                                              \
    { S_MEMBER, "", NULL, "stickylb_member_state", "state=\"" name "\"",   \
      "gauge", "1 for the state of the member, 0 for the others", NULL,    \
      V_INT, MV(in_state[i]), NO_FIELD },
    MEMBER_STATES(MEMBER_STATE)
#undef MEMBER_STATE
    { S_MEMBER, "", "weight", "stickylb_member_weight", NULL, "gauge",
      "loadfactor of the member", "weight", V_DBL, MV(weight), NO_FIELD },
    { S_MEMBER, "", "sessions", "stickylb_member_sessions", NULL, "gauge",
      "live sessions bound to the member in this server's stick table",
      "sessions bound (stick table)", V_U32, MV(sessions), NO_FIELD,
      NULL, PAGE_STORED },
    { S_MEMBER, "", "new_sessions", "stickylb_member_new_sessions_total",
      NULL, "counter", "new sessions given to the member", "new sessions",
      V_U64, MV(h.new_sessions), NO_FIELD },
    { S_MEMBER, "", "route_cookie_requests",
      "stickylb_member_route_cookie_requests_total", NULL, "counter",
      "requests sent to the member because their route cookie named it",
      "route-cookie requests", V_U64, MV(h.route_cookie), NO_FIELD, NULL,
      PAGE_COOKIE },
    { S_MEMBER, "", "failovers", "stickylb_member_failovers_total", NULL,
      "counter", "sessions moved to the member from an unusable one",
      "failovers", V_U64, MV(h.failovers), NO_FIELD },
    { S_MEMBER, "", "requests", "stickylb_member_requests_total", NULL,
      "counter", "requests the module sent to the member", "requests",
      V_U64, MV(h.requests), NO_FIELD },
    { S_MEMBER, "", NULL, "stickylb_member_probe_latency_seconds", NULL,
      "gauge", "duration of the last active probe", NULL, V_DBL,
      MV(probe_latency_s), MV(h.probed) },
    { S_MEMBER, "", "probe_failures", "stickylb_member_probe_failures_total",
      NULL, "counter", "active probes of the member that failed", NULL,
      V_U64, MV(h.probe_failures), MV(h.probed) },
    { S_MEMBER, "", NULL, "stickylb_member_probe_duration_seconds", NULL,
      "summary", "durations of the active probes of the member", NULL,
      V_DBL, MV(probe_s_total), MV(h.probed), "_sum" },
    { S_MEMBER, "", "probes", "stickylb_member_probe_duration_seconds",
      NULL, "summary", "durations of the active probes of the member",
      NULL, V_U64, MV(h.probes), MV(h.probed), "_count" },
    { S_MEMBER, "", NULL, "stickylb_member_discovered", NULL, "gauge",
      "1 when StickyLBDiscover added the member, 0 for a configured one "
      "(balancers that discover)", NULL, V_INT, MV(d.discovered),
      MV(discovers) },
    /* discovery (StickyLBDiscover), per balancer */
    { S_BALANCER, "", "fetches", "stickylb_discovery_fetches_total", NULL,
      "counter", "times the source was asked", "fetches", V_U64,
      BV(d.fetches), BV(discovers) },
    { S_BALANCER, "", "errors", "stickylb_discovery_errors_total", NULL,
      "counter", "fetches that failed (not reached, timed out, garbage): "
      "the members stayed as they were", "errors", V_U64, BV(d.errors),
      BV(discovers) },
    { S_BALANCER, "", "failures", "stickylb_discovery_failures", NULL,
      "gauge", "fetches failed in a row now (the retry backs off)",
      "failing in a row", V_U32, BV(d.failures), BV(discovers) },
    { S_BALANCER, "", "malformed", "stickylb_discovery_malformed", NULL,
      "gauge", "entries of the last answer ignored (malformed, or a route "
      "another member has)", "malformed (last answer)", V_U32,
      BV(d.malformed), BV(discovers) },
    { S_BALANCER, "", "malformed_total",
      "stickylb_discovery_malformed_total", NULL, "counter",
      "malformed entries ignored, over every answer", NULL, V_U64,
      BV(d.malformed_total), BV(discovers) },
    { S_BALANCER, "", "waiting", "stickylb_discovery_waiting", NULL,
      "gauge", "discovered members not added: no free growth slot",
      "not added (slots full)", V_U32, BV(d.waiting), BV(discovers) },
    { S_BALANCER, "", "slots_full", "stickylb_discovery_slots_full_total",
      NULL, "counter", "answers that found the growth slots full",
      "answers with the slots full", V_U64, BV(d.full_rounds),
      BV(discovers) },
    { S_BALANCER, "", "slots_free", "stickylb_discovery_slots_free", NULL,
      "gauge", "free growth slots of the balancer", "free growth slots",
      V_U32, BV(d.slots_free), BV(discovers) },
    { S_BALANCER, "", "members", "stickylb_discovery_members", NULL,
      "gauge", "members the discovery knows (also those that left)",
      "discovered members", V_U32, BV(d.members), BV(discovers) },
    { S_BALANCER, "", "changes", "stickylb_discovery_changes_total", NULL,
      "counter", "changes applied to the members (added, back, drained, "
      "disabled, loadfactor, route)", "changes applied", V_U64,
      BV(d.changes), BV(discovers) },
    { S_BALANCER, "", "last_sync", "stickylb_discovery_last_sync_seconds",
      NULL, "gauge", "Unix time of the last answer of the source", NULL,
      V_U64, BV(d_last_sync_s), BV(discovers) },
    { S_BALANCER, "", "last_fetch", NULL, NULL, NULL, NULL, NULL, V_U64,
      BV(d_last_fetch_s), BV(discovers) },
    { S_BALANCER, "", "since", NULL, NULL, NULL, NULL, NULL, V_U64,
      BV(d_started_s), BV(discovers) },
    /* the embedded table */
    { S_STORE, "table", "capacity", "stickylb_table_capacity_bindings", NULL,
      "gauge", "bindings the embedded stick table holds", "capacity",
      V_U64, SV(v.capacity), NO_FIELD },
    { S_STORE, "table", "entries", "stickylb_table_bindings", NULL, "gauge",
      "live bindings in the embedded stick table", "bindings", V_U64,
      SV(v.entries), NO_FIELD },
    { S_STORE, "table", "bytes", NULL, NULL, "gauge", NULL, NULL, V_U64,
      SV(v.bytes), NO_FIELD },
    { S_STORE, "table", NULL, NULL, NULL, "gauge", NULL, "memory (MiB)",
      V_DBL, SV(table_mib), NO_FIELD },
    { S_STORE, "table", "hits", "stickylb_table_lookups_total",
      "result=\"hit\"", "counter", "stick table lookups by result", "hits",
      V_U64, SV(v.hits), NO_FIELD },
    { S_STORE, "table", "misses", "stickylb_table_lookups_total",
      "result=\"miss\"", "counter", "stick table lookups by result",
      "misses", V_U64, SV(v.misses), NO_FIELD },
    { S_STORE, "table", "inserts", "stickylb_table_inserts_total", NULL,
      "counter", "bindings written to the embedded table", "inserts", V_U64,
      SV(v.inserts), NO_FIELD },
    { S_STORE, "table", "evictions", "stickylb_table_evictions_total", NULL,
      "counter", "live bindings evicted for lack of room", "evictions",
      V_U64, SV(v.evictions), NO_FIELD },
    { S_STORE, "table", "expired", "stickylb_table_expired_total", NULL,
      "counter", "bindings that outlived their lifetime", "expired", V_U64,
      SV(v.expired), NO_FIELD },
    { S_STORE, "", "errors", "stickylb_store_errors_total", NULL, "counter",
      "store errors of the whole server (each a miss)", "store errors",
      V_U64, SV(v.errors), NO_FIELD },
    { S_STORE, "", "started", "stickylb_start_time_seconds", NULL, "gauge",
      "when the server-wide counters started (a full start; kept across "
      "graceful restarts), seconds since the epoch", NULL, V_U64,
      SV(started_s), NO_FIELD },
    /* memcached: the counters of every child (shared memory) */
    { S_STORE, "memcached", "gets", "stickylb_memcached_requests_total",
      "op=\"get\"", "counter",
      "memcached calls, server-wide, by kind", "gets",
      V_U64, SV(v.mc.gets), SV(v.have_mc) },
    { S_STORE, "memcached", NULL, "stickylb_memcached_requests_total",
      "op=\"add\"", "counter",
      "memcached calls, server-wide, by kind", "adds",
      V_U64, SV(v.mc.adds), SV(v.have_mc) },
    { S_STORE, "memcached", NULL, "stickylb_memcached_requests_total",
      "op=\"set\"", "counter",
      "memcached calls, server-wide, by kind", "sets",
      V_U64, SV(mc_plain_sets), SV(v.have_mc) },
    { S_STORE, "memcached", "quiet_sets",
      "stickylb_memcached_requests_total", "op=\"quiet_set\"", "counter",
      "memcached calls, server-wide, by kind",
      "quiet sets", V_U64, SV(v.mc.quiet_sets), SV(v.have_mc) },
    { S_STORE, "memcached", "touches", "stickylb_memcached_requests_total",
      "op=\"touch\"", "counter", "memcached calls, server-wide, by kind",
      "touches", V_U64, SV(v.mc.touches), SV(v.have_mc) },
    { S_STORE, "memcached", "deletes", "stickylb_memcached_requests_total",
      "op=\"delete\"", "counter", "memcached calls, server-wide, by kind",
      "deletes", V_U64, SV(v.mc.deletes), SV(v.have_mc) },
    { S_STORE, "memcached", "hits", "stickylb_memcached_lookups_total",
      "result=\"hit\"", "counter", "memcached gets by result", "hits",
      V_U64, SV(v.mc.hits), SV(v.have_mc) },
    { S_STORE, "memcached", "misses", "stickylb_memcached_lookups_total",
      "result=\"miss\"", "counter", "memcached gets by result", "misses",
      V_U64, SV(v.mc.misses), SV(v.have_mc) },
    { S_STORE, "memcached", "replica_hits",
      "stickylb_memcached_replica_hits_total", NULL, "counter",
      "gets a replica answered better than the key's server", "replica hits",
      V_U64, SV(v.mc.replica_hits), SV(v.have_mc) },
    /* the recovery window (slb_mc_in_window) */
    { S_STORE, "memcached", "recovery_window",
      "stickylb_memcached_recovery_window", NULL, "gauge",
      "1 while the process that answered (its own view) may see the "
      "memcached servers "
      "otherwise than another balancer (misses asked again, writes "
      "copied)", "recovery window open", V_INT, SV(v.mc.in_window),
      SV(v.have_mc) },
    { S_STORE, "memcached", "trials", "stickylb_memcached_trials_total",
      NULL, "counter", "trial calls on held memcached servers",
      "trial calls on held servers", V_U64, SV(v.mc.trials),
      SV(v.have_mc) },
    { S_STORE, "memcached", "window_reads",
      "stickylb_memcached_window_reads_total", NULL, "counter",
      "misses asked again of the key's home or fallback server in the "
      "recovery window", "window: misses asked again", V_U64,
      SV(v.mc.window_reads), SV(v.have_mc) },
    { S_STORE, "memcached", "window_hits",
      "stickylb_memcached_window_hits_total", NULL, "counter",
      "misses found on the key's home or fallback server in the recovery "
      "window", "window: found elsewhere",
      V_U64, SV(v.mc.window_hits), SV(v.have_mc) },
    { S_STORE, "memcached", "window_copies",
      "stickylb_memcached_window_writes_total", NULL, "counter",
      "copies written to the key's home or fallback server in the recovery "
      "window", "window: copies written", V_U64, SV(v.mc.window_writes),
      SV(v.have_mc) },
    { S_STORE, "memcached", "errors", "stickylb_memcached_errors_total",
      NULL, "counter", "failed memcached calls, server-wide",
      "errors", V_U64, SV(v.mc.errors), SV(v.have_mc) },
    { S_STORE, "memcached", "timeouts", "stickylb_memcached_timeouts_total",
      NULL, "counter", "memcached calls that timed out, server-wide",
      "timeouts", V_U64, SV(v.mc.timeouts), SV(v.have_mc) },
    { S_STORE, "memcached", "latency_ms_mean", NULL, NULL, "gauge", NULL,
      "mean call (ms)", V_DBL, SV(mc_latency_ms_mean), SV(v.have_mc) },
    { S_STORE, "memcached", "latency_ms_max", NULL, NULL, "gauge", NULL,
      "slowest call (ms)", V_DBL, SV(mc_latency_ms_max), SV(v.have_mc) },
#define MC_LATENCY(le, field, sfx)                                         \
    { S_STORE, "memcached", NULL, "stickylb_memcached_latency_seconds", le, \
      "histogram", "durations of the memcached calls, server-wide", NULL,  \
      V_U64, SV(field), SV(v.have_mc), sfx }
    MC_LATENCY("le=\"0.0001\"", v.mc.latency_le[0], "_bucket"),
    MC_LATENCY("le=\"0.0005\"", v.mc.latency_le[1], "_bucket"),
    MC_LATENCY("le=\"0.001\"", v.mc.latency_le[2], "_bucket"),
    MC_LATENCY("le=\"0.002\"", v.mc.latency_le[3], "_bucket"),
    MC_LATENCY("le=\"0.005\"", v.mc.latency_le[4], "_bucket"),
    MC_LATENCY("le=\"0.01\"", v.mc.latency_le[5], "_bucket"),
    MC_LATENCY("le=\"0.05\"", v.mc.latency_le[6], "_bucket"),
    MC_LATENCY("le=\"0.1\"", v.mc.latency_le[7], "_bucket"),
    MC_LATENCY("le=\"+Inf\"", v.mc.latency_calls, "_bucket"),
    { S_STORE, "memcached", NULL, "stickylb_memcached_latency_seconds",
      NULL, "histogram", NULL, NULL, V_DBL, SV(mc_latency_s_total),
      SV(v.have_mc), "_sum" },
    MC_LATENCY(NULL, v.mc.latency_calls, "_count"),
#undef MC_LATENCY
    /* the writer thread of write=async */
    { S_STORE, "writer", "queued", "stickylb_memcached_writer_queued_total",
      NULL, "counter", "learned bindings queued for the writer threads "
      "(write=async), server-wide", NULL, V_U64, SV(v.mc.publish_queued),
      SV(v.have_mc) },
    { S_STORE, "writer", "written",
      "stickylb_memcached_writer_bindings_total", "result=\"written\"",
      "counter", "learned bindings handed to the writer threads "
      "(write=async), server-wide, by outcome", "writer: written",
      V_U64, SV(v.mc.published), SV(v.have_mc) },
    { S_STORE, "writer", "dropped",
      "stickylb_memcached_writer_bindings_total", "result=\"dropped\"",
      "counter", "learned bindings handed to the writer threads "
      "(write=async), server-wide, by outcome", "writer: dropped",
      V_U64, SV(v.mc.publish_dropped), SV(v.have_mc) },
    { S_STORE, "writer", "failed",
      "stickylb_memcached_writer_bindings_total", "result=\"failed\"",
      "counter", "learned bindings handed to the writer threads "
      "(write=async), server-wide, by outcome", "writer: failed",
      V_U64, SV(v.mc.publish_errors), SV(v.have_mc) },
    { S_STORE, "writer", "batches",
      "stickylb_memcached_writer_batches_total", NULL, "counter",
      "network writes of the writer threads, server-wide", NULL, V_U64,
      SV(v.mc.publish_batches), SV(v.have_mc) },
    { S_STORE, "writer", "waiting", "stickylb_memcached_writer_queue", NULL,
      "gauge", "learned bindings waiting for the writer thread of the "
      "process that answered (its own queue)",
      "writer: waiting (this process)", V_U64, SV(v.mc.publish_waiting),
      SV(v.have_mc) },
    /* the tiered stores, server-wide (shared memory) */
#define TIER_EVENT(field, name, title)                                     \
    { S_TIER, "", name, "stickylb_store_events_total", NULL, "counter",    \
      "what the stores did, server-wide, by store and event", title,       \
      V_U64, TC(field), NO_FIELD }
    TIER_EVENT(local_hits, "local_hits", "answered from this server's table"),
    TIER_EVENT(remote_gets, "remote_gets", "asked the remote store"),
    TIER_EVENT(remote_hits, "remote_hits", "remote hits"),
    TIER_EVENT(remote_misses, "remote_misses", "remote misses"),
    TIER_EVENT(remote_errors, "remote_errors", "remote errors"),
    TIER_EVENT(stale_served, "stale_served",
               "remote failed, local copy used"),
    TIER_EVENT(republished, "republished", "re-published after a loss"),
    TIER_EVENT(adopted, "adopted", "another balancer's binding taken"),
    TIER_EVENT(expired, "expired", "remote binding past its lifetime"),
    TIER_EVENT(local_errors, "local_errors", "errors of the table"),
    TIER_EVENT(unknown_routes, "unknown_routes",
               "remote bindings naming no member (misses)"),
    TIER_EVENT(deferred, "deferred",
               "remote write failed: kept to write again"),
    TIER_EVENT(deferred_written, "deferred_written",
               "kept bindings written once the remote store answered"),
    TIER_EVENT(deferred_dropped, "deferred_dropped",
               "kept bindings dropped (full, or past their lifetime)"),
#undef TIER_EVENT
};

#define N_METRICS ((int)(sizeof(metrics) / sizeof(metrics[0])))

static void store_snapshot(apr_pool_t *p, store_view *sv)
{
    const slb_mc_stats *m = &sv->v.mc;
    apr_uint64_t calls;

    memset(sv, 0, sizeof(*sv));
    slb_store_snapshot(p, &sv->v);
    sv->table_mib = (double)sv->v.bytes / 1048576.0;
    sv->mc_plain_sets = m->sets - m->quiet_sets;
    calls = m->latency_calls;
    sv->mc_latency_ms_mean = calls ? (double)m->latency_us_total / 1000
                                     / (double)calls
                                   : 0.0;
    sv->mc_latency_ms_max = (double)m->latency_us_max / 1000;
    sv->mc_latency_s_total = (double)m->latency_us_total / APR_USEC_PER_SEC;
    sv->started_s = (apr_uint64_t)apr_time_sec(sv->v.started);
}
/* by slb_store_kind */
static const char *const tier_names[3] = { "shm", "memcached", "none" };

static int present(const metric *m, const void *view)
{
    return m->present == NO_FIELD
           || *(const int *)((const char *)view + m->present) != 0;
}

/* The value as text (JSON, Prometheus and HTML alike). */
static const char *value_str(apr_pool_t *p, const metric *m,
                             const void *view)
{
    const char *at = (const char *)view + m->off;

    switch (m->vt) {
    case V_U32:
        return apr_psprintf(p, "%u", *(const apr_uint32_t *)at);
    case V_U64:
        return apr_psprintf(p, "%" APR_UINT64_T_FMT,
                            *(const apr_uint64_t *)at);
    case V_INT:
        return apr_psprintf(p, "%d", *(const int *)at);
    default: {
        /* six decimals at most, trailing zeros dropped (APR's %g writes
         * ".5" for 0.5, which is no JSON number) */
        char *t = apr_psprintf(p, "%.6f", *(const double *)at);
        char *e = t + strlen(t) - 1;
        while (e > t && *e == '0') {
            *e-- = '\0';
        }
        if (*e == '.') {
            *e = '\0';
        }
        return t;
    }
    }
}

/* `"a":1,"b":2` of the metrics of a scope and JSON group */
static const char *json_fields(apr_pool_t *p, metric_scope sc,
                               const char *group, const void *view)
{
    const char *out = "";
    int i;

    for (i = 0; i < N_METRICS; i++) {
        const metric *m = &metrics[i];
        if (m->scope == sc && m->json && !strcmp(m->group, group)
            && present(m, view)) {
            out = apr_pstrcat(p, out, *out ? "," : "", "\"", m->json, "\":",
                              value_str(p, m, view), NULL);
        }
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* outputs                                                              */

static void out_json(request_rec *r, apr_array_header_t *bvs,
                     const store_view *sv)
{
    apr_pool_t *p = r->pool;
    int i, j;

    ap_set_content_type(r, "application/json");
    ap_rprintf(r, "{\"nonce\":%s,\"balancers\":[", json_str(p, nonce));
    for (i = 0; i < bvs->nelts; i++) {
        balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
        ap_rprintf(r, "%s{\"name\":%s,\"namespace\":%s,\"store\":\"%s\","
                   "\"discovery\":", i ? "," : "",
                   json_str(p, bv->b->s->name), json_str(p, bv->ns),
                   tier_names[bv->c->store]);
        if (bv->discovers) {
            ap_rprintf(r, "{\"source\":%s,%s,\"last_error\":%s}",
                       json_str(p, bv->d.source),
                       json_fields(p, S_BALANCER, "", bv),
                       *bv->d.last_error ? json_str(p, bv->d.last_error)
                                         : "null");
        }
        else {
            ap_rputs("null", r);
        }
        ap_rputs(",\"members\":[", r);
        for (j = 0; j < bv->members->nelts; j++) {
            member_view *mv = &APR_ARRAY_IDX(bv->members, j, member_view);
            ap_rprintf(r, "%s{\"name\":%s,\"route\":%s,\"state\":\"%s\",%s,"
                       "\"probe\":", j ? "," : "",
                       json_str(p, mv->w->s->name),
                       json_str(p, mv->w->s->route), mv->state,
                       json_fields(p, S_MEMBER, "", mv));
            if (mv->h.probed) {
                ap_rprintf(r, "{\"result\":%s,\"address\":%s,"
                           "\"latency_ms\":%.1f,"
                           "\"last_probe\":%" APR_TIME_T_FMT
                           ",\"last_change\":%" APR_TIME_T_FMT "}",
                           json_str(p, mv->h.last_result),
                           mv->h.addr[0] ? json_str(p, mv->h.addr) : "null",
                           mv->probe_latency_s * 1000,
                           apr_time_sec(mv->h.last_probe),
                           apr_time_sec(mv->h.last_change));
            }
            else {
                ap_rputs("null", r);
            }
            ap_rputs(",\"discovered\":", r);
            if (mv->d.discovered) {
                ap_rprintf(r, "{\"state\":\"%s\",\"origin\":%s,"
                           "\"added\":%" APR_TIME_T_FMT ",\"since\":%"
                           APR_TIME_T_FMT ",\"seen\":%" APR_TIME_T_FMT "}",
                           mv->d.state, json_str(p, mv->d.origin),
                           apr_time_sec(mv->d.added),
                           apr_time_sec(mv->d.since),
                           apr_time_sec(mv->d.seen));
            }
            else {
                ap_rputs("null", r);
            }
            ap_rputs(",\"agent\":", r);
            if (mv->h.agent) {
                ap_rprintf(r, "{\"state\":\"%s\",\"weight\":%d,"
                           "\"answer\":%s,\"result\":%s,\"set\":[%s],"
                           "\"last_answer\":%" APR_TIME_T_FMT
                           ",\"last_change\":%" APR_TIME_T_FMT "}}",
                           mv->h.agent_state, mv->h.agent_weight,
                           json_str(p, mv->h.agent_answer),
                           json_str(p, mv->h.agent_why),
                           agent_set_json(p, mv->h.agent_owned),
                           apr_time_sec(mv->h.agent_last),
                           apr_time_sec(mv->h.agent_change));
            }
            else {
                ap_rputs("null}", r);
            }
        }
        ap_rputs("]}", r);
    }
    ap_rprintf(r, "],\"store\":{\"table\":{%s},%s,\"tiers\":{",
               json_fields(p, S_STORE, "table", sv),
               json_fields(p, S_STORE, "", sv));
    for (i = 0; i < 2; i++) {
        ap_rprintf(r, "%s\"%s\":{%s}", i ? "," : "", tier_names[i],
                   json_fields(p, S_TIER, "", &sv->v.tier[i]));
    }
    ap_rputs("}", r);
    if (sv->v.have_mc) {
        ap_rprintf(r, ",\"memcached\":{%s,\"write\":\"%s\",\"writer\":{%s},"
                   "\"servers\":[", json_fields(p, S_STORE, "memcached", sv),
                   slb_mc_write_mode_name(sv->v.mc_write_mode),
                   json_fields(p, S_STORE, "writer", sv));
        for (i = 0; sv->v.mc_servers && i < sv->v.mc_servers->nelts; i++) {
            slb_mc_server *ms = &APR_ARRAY_IDX(sv->v.mc_servers, i,
                                               slb_mc_server);
            ap_rprintf(r, "%s{\"host\":%s,\"port\":%d,\"up\":%s}",
                       i ? "," : "", json_str(p, ms->host), ms->port,
                       ms->up ? "true" : "false");
        }
        ap_rputs("]}", r);
    }
    ap_rputs("}}\n", r);
}

static void out_prometheus(request_rec *r, apr_array_header_t *bvs,
                           const store_view *sv)
{
    apr_pool_t *p = r->pool;
    const char *last = "";
    int k, i, j;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    for (k = 0; k < N_METRICS; k++) {
        const metric *m = &metrics[k];
        const char *sfx = m->suffix ? m->suffix : "";

        if (m->prom == NULL || (m->scope == S_STORE && !present(m, sv))) {
            continue;
        }
        if (strcmp(m->prom, last) != 0) {
            ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", m->prom, m->help,
                       m->prom, m->type);
            last = m->prom;
        }
        switch (m->scope) {
        case S_MEMBER:
            for (i = 0; i < bvs->nelts; i++) {
                balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
                for (j = 0; j < bv->members->nelts; j++) {
                    member_view *mv = &APR_ARRAY_IDX(bv->members, j,
                                                     member_view);
                    if (!present(m, mv)) {
                        continue;
                    }
                    ap_rprintf(r, "%s%s{balancer=\"%s\",member=\"%s\","
                               "route=\"%s\"%s%s} %s\n", m->prom, sfx,
                               prom_label(p, bv->b->s->name),
                               prom_label(p, mv->w->s->name),
                               prom_label(p, mv->w->s->route),
                               m->labels ? "," : "",
                               m->labels ? m->labels : "",
                               value_str(p, m, mv));
                }
            }
            break;
        case S_STORE:
            ap_rprintf(r, "%s%s%s%s%s %s\n", m->prom, sfx,
                       m->labels ? "{" : "",
                       m->labels ? m->labels : "", m->labels ? "}" : "",
                       value_str(p, m, sv));
            break;
        case S_BALANCER:
            for (i = 0; i < bvs->nelts; i++) {
                balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
                if (present(m, bv)) {
                    ap_rprintf(r, "%s%s{balancer=\"%s\"} %s\n", m->prom,
                               sfx, prom_label(p, bv->b->s->name),
                               value_str(p, m, bv));
                }
            }
            break;
        case S_TIER:
            for (i = 0; i < 2; i++) {
                ap_rprintf(r, "%s{store=\"%s\",event=\"%s\"} %s\n", m->prom,
                           tier_names[i], m->json,
                           value_str(p, m, &sv->v.tier[i]));
            }
            break;
        }
    }
    if (sv->v.have_mc) {
        ap_rputs("# HELP stickylb_memcached_server_up 1 when the last call "
                 "of the process that answered to the server succeeded (its "
                 "own view)\n"
                 "# TYPE stickylb_memcached_server_up gauge\n", r);
        for (i = 0; sv->v.mc_servers && i < sv->v.mc_servers->nelts; i++) {
            slb_mc_server *ms = &APR_ARRAY_IDX(sv->v.mc_servers, i,
                                               slb_mc_server);
            ap_rprintf(r, "stickylb_memcached_server_up{server=\"%s:%d\"} "
                       "%d\n", prom_label(p, ms->host), ms->port, ms->up);
        }
    }
}

static void html_form(request_rec *r, const char *bal, const char *route,
                      const char *act, const char *label,
                      const char *extra)
{
    ap_rprintf(r, "<form method=\"post\" class=\"inline\">"
               "<input type=\"hidden\" name=\"nonce\" value=\"%s\">"
               "<input type=\"hidden\" name=\"balancer\" value=\"%s\">"
               "<input type=\"hidden\" name=\"member\" value=\"%s\">"
               "<input type=\"hidden\" name=\"action\" value=\"%s\">"
               "<input type=\"hidden\" name=\"return\" value=\"html\">%s"
               "<button type=\"submit\">%s</button></form>",
               nonce, ap_escape_html2(r->pool, bal, 1),
               ap_escape_html2(r->pool, route, 1), act, extra, label);
}

/* <tr><th>title</th><td>value</td></tr> for the store metrics of group */
static void html_store_rows(request_rec *r, const store_view *sv,
                            const char *group)
{
    int k;

    for (k = 0; k < N_METRICS; k++) {
        const metric *m = &metrics[k];
        if (m->scope == S_STORE && m->html && !strcmp(m->group, group)
            && present(m, sv)) {
            ap_rprintf(r, "<tr><th>%s</th><td class=\"num\">%s</td></tr>",
                       m->html, value_str(r->pool, m, sv));
        }
    }
}

/* the form field an action asks for on the page */
static const char *html_input(request_rec *r, const action *a,
                              const member_view *mv)
{
    if (a->input == NULL) {
        return "";
    }
    if (!strcmp(a->input, "value")) {
        return apr_psprintf(r->pool, "<input type=\"number\" name=\"value\" "
                            "min=\"1\" max=\"100\" value=\"%d\" "
                            "style=\"width:4em\" aria-label=\"weight\">",
                            mv ? (int)(mv->weight + 0.5) : 1);
    }
    return apr_psprintf(r->pool, "<input type=\"text\" name=\"%s\" "
                        "placeholder=\"session %s\" aria-label=\"%s\">",
                        a->input, a->input, a->input);
}

/* a member column shown for balancer bv (metric.page) */
static int html_column(const metric *m, const balancer_view *bv)
{
    const slb_cookie_conf *rc = bv->c->route_cookie;

    return m->scope == S_MEMBER && m->html
           && (m->page == PAGE_ALL
               || (m->page == PAGE_STORED && bv->c->uses_store)
               || (m->page == PAGE_COOKIE && rc && rc->name));
}

/* what the page can say of the sessions of balancer bv */
static const char *html_sessions(request_rec *r, const balancer_view *bv)
{
    const slb_cookie_conf *rc = bv->c->route_cookie;
    const char *cookie = rc && rc->name
        ? apr_psprintf(r->pool, "route cookie %s: the client carries its "
                       "member, nothing is stored; counted are the new "
                       "sessions and the requests the cookie brought back",
                       ap_escape_html2(r->pool, rc->name, 1))
        : NULL;

    if (bv->c->uses_store) {
        return apr_pstrcat(r->pool, "sessions bound: session ids and keys "
                           "learned in the stick table", cookie ? "; " : "",
                           cookie, NULL);
    }
    return cookie ? cookie
                  : "sessions: carried by the session id's route suffix, "
                    "nothing is stored; counted are the new sessions";
}

static const char *html_duration(apr_pool_t *p, apr_int64_t s)
{
    if (s < 0) {
        s = 0;
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "d %" APR_INT64_T_FMT "h %"
                        APR_INT64_T_FMT "m %" APR_INT64_T_FMT "s",
                        s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
}

static void out_html(request_rec *r, apr_array_header_t *bvs,
                     const store_view *sv)
{
    apr_time_t now = apr_time_now();
    char host[APRMAXHOSTLEN + 1];
    char at[APR_RFC822_DATE_LEN], since[APR_RFC822_DATE_LEN];
    int i, j, k;

    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
             "<title>mod_stickylb status</title><style>"
             "body{font-family:sans-serif;margin:1.5em;color:#222}"
             "table{border-collapse:collapse;margin-bottom:1.5em}"
             "th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left}"
             "th{background:#eee}td.num{text-align:right}"
             ".up{background:#d8f5d8}.down-by-probe,.error,.down-by-hcheck"
             "{background:#f8d0d0}.draining,.standby,.spare{background:"
             "#fff1c2}.disabled,.stopped{background:#ddd}"
             "form.inline{display:inline;margin:0 .2em}td.ctl{white-space:nowrap}"
             "p.about{color:#555}"
             "</style></head><body>\n<h1>mod_stickylb</h1>\n", r);
    if (apr_gethostname(host, sizeof(host), r->pool) != APR_SUCCESS) {
        apr_cpystrn(host, r->server->server_hostname
                              ? r->server->server_hostname : "?",
                    sizeof(host));
    }
    apr_rfc822_date(at, now);
    apr_rfc822_date(since, sv->v.started);
    ap_rprintf(r, "<p class=\"about\">host <b id=\"host\">%s</b>, "
               "mod_stickylb <span id=\"version\">%s</span>, "
               "<span id=\"apache\">%s</span>; up "
               "<span id=\"uptime\">%s</span> (counters since %s, kept "
               "across graceful restarts); generated "
               "<span id=\"generated\">%s</span> by process %" APR_PID_T_FMT
               "</p>\n",
               ap_escape_html2(r->pool, host, 1), SLB_VERSION,
               ap_escape_html2(r->pool, ap_get_server_description(), 1),
               html_duration(r->pool, apr_time_sec(now - sv->v.started)),
               since, at, getpid());
    for (i = 0; i < bvs->nelts; i++) {
        balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
        const char *bal = bv->b->s->name;

        ap_rprintf(r, "<h2>%s</h2><p>store: %s, namespace %s</p>\n"
                   "<p class=\"sessions\">%s</p>\n",
                   ap_escape_html2(r->pool, bal, 1),
                   bv->c->store == SLB_STORE_SHM ? "shm (embedded)"
                                                 : tier_names[bv->c->store],
                   ap_escape_html2(r->pool, bv->ns, 1),
                   html_sessions(r, bv));
        if (bv->discovers) {
            ap_rprintf(r, "<table class=\"discovery\"><tr><th>discovered "
                       "from</th><td>%s</td></tr><tr><th>last answer</th>"
                       "<td>%s</td></tr><tr><th>last error</th><td>%s</td>"
                       "</tr>",
                       ap_escape_html2(r->pool, bv->d.source, 1),
                       bv->d.last_sync
                           ? apr_psprintf(r->pool, "%" APR_TIME_T_FMT
                                          " s ago",
                                          apr_time_sec(now - bv->d.last_sync))
                           : "none yet",
                       *bv->d.last_error
                           ? apr_psprintf(r->pool, "%s (%" APR_TIME_T_FMT
                                          " s ago)",
                                          ap_escape_html2(r->pool,
                                                          bv->d.last_error,
                                                          1),
                                          apr_time_sec(now
                                                       - bv->d.last_error_at))
                           : "-");
            for (k = 0; k < N_METRICS; k++) {
                const metric *m = &metrics[k];
                if (m->scope == S_BALANCER && m->html && present(m, bv)) {
                    ap_rprintf(r, "<tr><th>%s</th><td class=\"num\">%s</td>"
                               "</tr>", m->html, value_str(r->pool, m, bv));
                }
            }
            ap_rputs("</table>\n", r);
        }
        ap_rputs("<table><tr><th>member</th><th>route</th><th>state</th>", r);
        if (bv->discovers) {
            ap_rputs("<th>discovered</th>", r);
        }
        for (k = 0; k < N_METRICS; k++) {
            if (html_column(&metrics[k], bv)) {
                ap_rprintf(r, "<th>%s</th>", metrics[k].html);
            }
        }
        ap_rputs("<th>probe</th><th>agent</th><th>last change</th>"
                 "<th>control</th></tr>\n", r);
        for (j = 0; j < bv->members->nelts; j++) {
            member_view *mv = &APR_ARRAY_IDX(bv->members, j, member_view);
            const char *route = mv->w->s->route;

            ap_rprintf(r, "<tr class=\"%s\"><td>%s</td><td>%s</td>"
                       "<td>%s</td>", mv->state,
                       ap_escape_html2(r->pool, mv->w->s->name, 1),
                       ap_escape_html2(r->pool, route, 1), mv->state);
            if (bv->discovers) {
                ap_rprintf(r, "<td>%s</td>",
                           mv->d.discovered
                               ? apr_psprintf(r->pool, "%s since %"
                                              APR_TIME_T_FMT " s (%s)",
                                              mv->d.state,
                                              apr_time_sec(now
                                                           - mv->d.since),
                                              ap_escape_html2(r->pool,
                                                              mv->d.origin,
                                                              1))
                               : "configured");
            }
            for (k = 0; k < N_METRICS; k++) {
                if (html_column(&metrics[k], bv)) {
                    ap_rprintf(r, "<td class=\"num\">%s</td>",
                               value_str(r->pool, &metrics[k], mv));
                }
            }
            ap_rprintf(r, "<td>%s</td><td>%s</td><td>%s</td>"
                       "<td class=\"ctl\">",
                       mv->h.probed
                           ? apr_psprintf(r->pool, "%s, %.1f ms",
                                          ap_escape_html2(r->pool,
                                                          mv->h.last_result,
                                                          1),
                                          mv->probe_latency_s * 1000)
                           : "-",
                       mv->h.agent
                           ? apr_psprintf(r->pool, "%s, %d%% (&quot;%s&quot;"
                                          ", %s, %" APR_TIME_T_FMT " s ago)",
                                          mv->h.agent_state,
                                          mv->h.agent_weight,
                                          ap_escape_html2(r->pool,
                                                          mv->h.agent_answer,
                                                          1),
                                          ap_escape_html2(r->pool,
                                                          mv->h.agent_why, 1),
                                          apr_time_sec(now
                                                       - mv->h.agent_last))
                           : "-",
                       mv->h.last_change
                           ? apr_psprintf(r->pool, "%" APR_TIME_T_FMT " s ago",
                                          apr_time_sec(now
                                                       - mv->h.last_change))
                           : "-");
            if (*route) {
                for (k = 0; k < N_ACTIONS; k++) {
                    const action *a = &actions[k];
                    if (a->needs_member && a->button && a->button(mv->w)) {
                        html_form(r, bal, route, a->name, a->name,
                                  html_input(r, a, mv));
                    }
                }
            }
            ap_rputs("</td></tr>\n", r);
        }
        ap_rputs("</table>\n", r);
        if (bv->c->uses_store) {
            /* the actions on one session */
            ap_rputs("<p>a session id:", r);
            for (k = 0; k < N_ACTIONS; k++) {
                const action *a = &actions[k];
                if (!a->needs_member) {
                    html_form(r, bal, "", a->name, a->name,
                              html_input(r, a, NULL));
                }
            }
            ap_rputs("</p>\n", r);
        }
    }
    ap_rputs("<h2>stick table</h2><table>", r);
    html_store_rows(r, sv, "table");
    html_store_rows(r, sv, "");
    ap_rputs("</table>\n<h2>stores (server-wide)</h2><table><tr><th></th>", r);
    for (i = 0; i < 2; i++) {
        ap_rprintf(r, "<th>%s</th>", tier_names[i]);
    }
    ap_rputs("</tr>", r);
    for (k = 0; k < N_METRICS; k++) {
        if (metrics[k].scope == S_TIER) {
            ap_rprintf(r, "<tr><th>%s</th>", metrics[k].html);
            for (i = 0; i < 2; i++) {
                ap_rprintf(r, "<td class=\"num\">%s</td>",
                           value_str(r->pool, &metrics[k], &sv->v.tier[i]));
            }
            ap_rputs("</tr>", r);
        }
    }
    ap_rputs("</table>\n", r);
    if (sv->v.have_mc) {
        ap_rprintf(r, "<h2>memcached</h2><p>counters server-wide; the "
                   "recovery window, the writer's queue and the servers' "
                   "state as process %" APR_PID_T_FMT " (the one that "
                   "answered) sees them</p><table>", getpid());
        ap_rprintf(r, "<tr><th>learned bindings written</th><td>%s</td>"
                   "</tr>",
                   slb_mc_write_mode_name(sv->v.mc_write_mode));
        html_store_rows(r, sv, "memcached");
        if (sv->v.mc_write_mode == SLB_MC_WRITE_ASYNC) {
            html_store_rows(r, sv, "writer");
        }
        for (i = 0; sv->v.mc_servers && i < sv->v.mc_servers->nelts; i++) {
            slb_mc_server *ms = &APR_ARRAY_IDX(sv->v.mc_servers, i,
                                               slb_mc_server);
            ap_rprintf(r, "<tr><th>%s:%d</th><td class=\"%s\">%s</td></tr>",
                       ap_escape_html2(r->pool, ms->host, 1), ms->port,
                       ms->up ? "up" : "error", ms->up ? "up" : "failing");
        }
        ap_rputs("</table>\n", r);
    }
    ap_rputs("<p>Also as <a href=\"?format=json\">JSON</a> and "
             "<a href=\"?format=prometheus\">Prometheus</a>.</p>"
             "</body></html>\n", r);
}

/* ------------------------------------------------------------------ */
/* the handler and mod_status                                           */

/* the answers of a GET, by format= (none: html) */
static const char *const formats[] = { "html", "json", "prometheus" };
#define N_FORMATS ((int)(sizeof(formats) / sizeof(formats[0])))

static int status_handler(request_rec *r)
{
    apr_array_header_t *bvs;
    store_view sv;
    const char *fmt = NULL;

    if (r->handler == NULL || strcmp(r->handler, STATUS_HANDLER) != 0) {
        return DECLINED;
    }
    frame_headers(r);
    if (r->method_number == M_POST) {
        return control(r);
    }
    if (r->method_number != M_GET) {
        r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->args) {
        apr_table_t *args = NULL;
        int i;

        ap_args_to_table(r, &args);
        fmt = args ? apr_table_get(args, "format") : NULL;
        for (i = 0; fmt && i < N_FORMATS && strcmp(fmt, formats[i]); i++) {
        }
        if (i == N_FORMATS) {
            r->status = HTTP_BAD_REQUEST;
            ap_set_content_type(r, "text/plain; charset=utf-8");
            ap_rputs("unknown format: use format=html, format=json or "
                     "format=prometheus\n", r);
            return OK;
        }
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    bvs = collect(r);
    store_snapshot(r->pool, &sv);
    if (r->header_only) {
        return OK;
    }
    if (fmt && !strcmp(fmt, "json")) {
        out_json(r, bvs, &sv);
    }
    else if (fmt && !strcmp(fmt, "prometheus")) {
        out_prometheus(r, bvs, &sv);
    }
    else {
        out_html(r, bvs, &sv);
    }
    return OK;
}

static int status_hook(request_rec *r, int flags)
{
    apr_array_header_t *bvs = collect(r);
    int i, j, members = 0, up = 0;
    apr_uint64_t requests = 0, failovers = 0, sessions = 0;

    for (i = 0; i < bvs->nelts; i++) {
        balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
        for (j = 0; j < bv->members->nelts; j++) {
            member_view *mv = &APR_ARRAY_IDX(bv->members, j, member_view);
            members++;
            up += !strcmp(mv->state, "up");
            requests += mv->h.requests;
            failovers += mv->h.failovers;
            sessions += mv->sessions;
        }
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "StickyLBBalancers: %d\nStickyLBMembers: %d\n"
                   "StickyLBMembersUp: %d\nStickyLBSessions: %"
                   APR_UINT64_T_FMT "\nStickyLBRequests: %" APR_UINT64_T_FMT
                   "\nStickyLBFailovers: %" APR_UINT64_T_FMT "\n",
                   bvs->nelts, members, up, sessions, requests, failovers);
    }
    else {
        ap_rprintf(r, "<hr /><h2>mod_stickylb</h2><p>%d balancers, %d of %d "
                   "members up, %" APR_UINT64_T_FMT " sessions bound, %"
                   APR_UINT64_T_FMT " requests, %" APR_UINT64_T_FMT
                   " failovers</p>\n", bvs->nelts, up, members, sessions,
                   requests, failovers);
    }
    return OK;
}

void slb_status_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
