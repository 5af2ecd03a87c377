/*
 * mod_stickylb_status.c - status and run-time control.
 *
 *   <Location "/stickylb-status">
 *       SetHandler stickylb-status
 *       Require ip 10.0.0.0/8          # the operator's access rule
 *   </Location>
 *
 * GET: the balancers of the virtual host that use lbmethod=stickylb, their
 * members and the stick table, as HTML (default), JSON (?format=json) or
 * Prometheus text (?format=prometheus).  POST (form fields nonce, balancer,
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

#include "mod_stickylb.h"

#define STATUS_HANDLER "stickylb-status"

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

typedef struct {
    proxy_worker *w;
    const char *state;
    double weight;             /* loadfactor as configured (lbfactor/100) */
    apr_uint32_t sessions;
    slb_health_view h;
} member_view;

typedef struct {
    proxy_balancer *b;
    const slb_balancer *c;
    const char *ns;
    apr_array_header_t *members;   /* member_view */
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
    int i, j;

    if (pc == NULL || pc->balancers == NULL) {
        return out;
    }
    for (i = 0; i < pc->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i, proxy_balancer);
        balancer_view *bv;

        if (!uses_stickylb(b)) {
            continue;
        }
        ap_proxy_sync_balancer(b, r->server, pc);
        bv = apr_array_push(out);
        bv->b = b;
        bv->c = slb_balancer_of(r->server, b, r->pool);
        bv->ns = bv->c->ns;
        bv->members = apr_array_make(r->pool, b->workers->nelts,
                                     sizeof(member_view));
        for (j = 0; j < b->workers->nelts; j++) {
            member_view *mv = apr_array_push(bv->members);
            mv->w = APR_ARRAY_IDX(b->workers, j, proxy_worker *);
            slb_health_snapshot(b, mv->w, &mv->h);
            mv->state = member_state(mv->w, &mv->h);
            mv->weight = mv->w->s->lbfactor / 100.0;
            mv->sessions = slb_store_route_sessions(bv->ns,
                                                    mv->w->s->route);
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

static double secs(apr_interval_time_t t)
{
    return (double)t / APR_USEC_PER_SEC;
}

/* ------------------------------------------------------------------ */
/* outputs                                                              */

static void out_json(request_rec *r, apr_array_header_t *bvs,
                     const slb_store_view *sv)
{
    int i, j;

    ap_set_content_type(r, "application/json");
    ap_rprintf(r, "{\"nonce\":%s,\"balancers\":[", json_str(r->pool, nonce));
    for (i = 0; i < bvs->nelts; i++) {
        balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
        ap_rprintf(r, "%s{\"name\":%s,\"namespace\":%s,\"store\":%s,"
                   "\"members\":[", i ? "," : "",
                   json_str(r->pool, bv->b->s->name),
                   json_str(r->pool, bv->ns),
                   bv->c->store == SLB_STORE_MEMCACHED ? "\"memcached\"" : "\"shm\"");
        for (j = 0; j < bv->members->nelts; j++) {
            member_view *mv = &APR_ARRAY_IDX(bv->members, j, member_view);
            ap_rprintf(r, "%s{\"name\":%s,\"route\":%s,\"state\":\"%s\","
                       "\"weight\":%.2f,\"sessions\":%u,\"requests\":%"
                       APR_UINT64_T_FMT ",\"new_sessions\":%" APR_UINT64_T_FMT
                       ",\"failovers\":%" APR_UINT64_T_FMT ",\"probe\":",
                       j ? "," : "", json_str(r->pool, mv->w->s->name),
                       json_str(r->pool, mv->w->s->route), mv->state,
                       mv->weight, mv->sessions, mv->h.requests,
                       mv->h.new_sessions, mv->h.failovers);
            if (mv->h.probed) {
                ap_rprintf(r, "{\"result\":%s,\"latency_ms\":%.1f,"
                           "\"last_probe\":%" APR_TIME_T_FMT
                           ",\"last_change\":%" APR_TIME_T_FMT "}}",
                           json_str(r->pool, mv->h.last_result),
                           secs(mv->h.last_latency) * 1000,
                           apr_time_sec(mv->h.last_probe),
                           apr_time_sec(mv->h.last_change));
            }
            else {
                ap_rputs("null}", r);
            }
        }
        ap_rputs("]}", r);
    }
    ap_rprintf(r, "],\"store\":{\"table\":{\"capacity\":%" APR_UINT64_T_FMT
               ",\"entries\":%" APR_UINT64_T_FMT ",\"bytes\":%"
               APR_UINT64_T_FMT ",\"hits\":%" APR_UINT64_T_FMT
               ",\"misses\":%" APR_UINT64_T_FMT ",\"inserts\":%"
               APR_UINT64_T_FMT ",\"evictions\":%" APR_UINT64_T_FMT
               ",\"expired\":%" APR_UINT64_T_FMT "},\"errors\":%"
               APR_UINT64_T_FMT, sv->capacity, sv->entries, sv->bytes,
               sv->hits, sv->misses, sv->inserts, sv->evictions,
               sv->expired, sv->errors);
    if (sv->have_mc) {
        const slb_mc_stats *m = &sv->mc;
        ap_rprintf(r, ",\"memcached\":{\"gets\":%" APR_UINT64_T_FMT
                   ",\"hits\":%" APR_UINT64_T_FMT ",\"misses\":%"
                   APR_UINT64_T_FMT ",\"errors\":%" APR_UINT64_T_FMT
                   ",\"timeouts\":%" APR_UINT64_T_FMT
                   ",\"replica_hits\":%" APR_UINT64_T_FMT
                   ",\"write\":\"%s\",\"quiet_sets\":%" APR_UINT64_T_FMT
                   ",\"writer\":{\"queued\":%" APR_UINT64_T_FMT
                   ",\"written\":%" APR_UINT64_T_FMT ",\"dropped\":%"
                   APR_UINT64_T_FMT ",\"failed\":%" APR_UINT64_T_FMT
                   ",\"batches\":%" APR_UINT64_T_FMT ",\"waiting\":%"
                   APR_UINT64_T_FMT "}"
                   ",\"latency_ms_mean\":%.2f,\"latency_ms_max\":%.2f,"
                   "\"servers\":[", m->gets, m->hits, m->misses, m->errors,
                   m->timeouts, m->replica_hits,
                   slb_mc_write_mode_name(sv->mc_write_mode),
                   m->quiet_sets, m->publish_queued, m->published,
                   m->publish_dropped, m->publish_errors, m->publish_batches,
                   m->publish_waiting,
                   m->gets + m->adds + m->sets
                       ? (double)m->latency_us_total / 1000
                         / (double)(m->gets + m->adds + m->sets + m->touches
                                    + m->deletes)
                       : 0.0,
                   (double)m->latency_us_max / 1000);
        for (i = 0; sv->mc_servers && i < sv->mc_servers->nelts; i++) {
            slb_mc_server *ms = &APR_ARRAY_IDX(sv->mc_servers, i,
                                               slb_mc_server);
            ap_rprintf(r, "%s{\"host\":%s,\"port\":%d,\"up\":%s}",
                       i ? "," : "", json_str(r->pool, ms->host), ms->port,
                       ms->up ? "true" : "false");
        }
        ap_rputs("]}", r);
    }
    ap_rputs("}}\n", r);
}

static void prom_head(request_rec *r, const char *name, const char *type,
                      const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void out_prometheus(request_rec *r, apr_array_header_t *bvs,
                           const slb_store_view *sv)
{
    static const struct {
        const char *name, *type, *help;
    } metrics[] = {
        { "stickylb_member_up", "gauge",
          "1 when the member takes new sessions" },
        { "stickylb_member_weight", "gauge", "loadfactor of the member" },
        { "stickylb_member_sessions", "gauge",
          "live sessions bound to the member in this server's stick table" },
        { "stickylb_member_requests_total", "counter",
          "requests the module sent to the member" },
        { "stickylb_member_new_sessions_total", "counter",
          "new sessions given to the member" },
        { "stickylb_member_failovers_total", "counter",
          "sessions moved to the member from an unusable one" },
        { "stickylb_member_probe_latency_seconds", "gauge",
          "duration of the last active probe" },
    };
    int m, i, j;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    for (m = 0; m < (int)(sizeof(metrics) / sizeof(metrics[0])); m++) {
        prom_head(r, metrics[m].name, metrics[m].type, metrics[m].help);
        for (i = 0; i < bvs->nelts; i++) {
            balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
            for (j = 0; j < bv->members->nelts; j++) {
                member_view *mv = &APR_ARRAY_IDX(bv->members, j,
                                                 member_view);
                const char *labels = apr_psprintf(
                    r->pool, "{balancer=\"%s\",member=\"%s\",route=\"%s\"}",
                    prom_label(r->pool, bv->b->s->name),
                    prom_label(r->pool, mv->w->s->name),
                    prom_label(r->pool, mv->w->s->route));
                switch (m) {
                case 0:
                    ap_rprintf(r, "%s%s %d\n", metrics[m].name, labels,
                               PROXY_WORKER_IS_USABLE(mv->w)
                               && !PROXY_WORKER_IS_DRAINING(mv->w));
                    break;
                case 1:
                    ap_rprintf(r, "%s%s %.2f\n", metrics[m].name, labels,
                               mv->weight);
                    break;
                case 2:
                    ap_rprintf(r, "%s%s %u\n", metrics[m].name, labels,
                               mv->sessions);
                    break;
                case 3:
                    ap_rprintf(r, "%s%s %" APR_UINT64_T_FMT "\n",
                               metrics[m].name, labels, mv->h.requests);
                    break;
                case 4:
                    ap_rprintf(r, "%s%s %" APR_UINT64_T_FMT "\n",
                               metrics[m].name, labels, mv->h.new_sessions);
                    break;
                case 5:
                    ap_rprintf(r, "%s%s %" APR_UINT64_T_FMT "\n",
                               metrics[m].name, labels, mv->h.failovers);
                    break;
                default:
                    if (mv->h.probed) {
                        ap_rprintf(r, "%s%s %.6f\n", metrics[m].name, labels,
                                   secs(mv->h.last_latency));
                    }
                    break;
                }
            }
        }
    }
    prom_head(r, "stickylb_table_capacity_bindings", "gauge",
              "bindings the embedded stick table holds");
    ap_rprintf(r, "stickylb_table_capacity_bindings %" APR_UINT64_T_FMT "\n",
               sv->capacity);
    prom_head(r, "stickylb_table_bindings", "gauge",
              "live bindings in the embedded stick table");
    ap_rprintf(r, "stickylb_table_bindings %" APR_UINT64_T_FMT "\n",
               sv->entries);
    prom_head(r, "stickylb_table_lookups_total", "counter",
              "stick table lookups by result");
    ap_rprintf(r, "stickylb_table_lookups_total{result=\"hit\"} %"
               APR_UINT64_T_FMT "\n", sv->hits);
    ap_rprintf(r, "stickylb_table_lookups_total{result=\"miss\"} %"
               APR_UINT64_T_FMT "\n", sv->misses);
    prom_head(r, "stickylb_table_inserts_total", "counter",
              "bindings written to the embedded table");
    ap_rprintf(r, "stickylb_table_inserts_total %" APR_UINT64_T_FMT "\n",
               sv->inserts);
    prom_head(r, "stickylb_table_evictions_total", "counter",
              "live bindings evicted for lack of room");
    ap_rprintf(r, "stickylb_table_evictions_total %" APR_UINT64_T_FMT "\n",
               sv->evictions);
    prom_head(r, "stickylb_store_errors_total", "counter",
              "store errors seen by the process that answered");
    ap_rprintf(r, "stickylb_store_errors_total %" APR_UINT64_T_FMT "\n",
               sv->errors);
    if (sv->have_mc) {
        prom_head(r, "stickylb_memcached_requests_total", "counter",
                  "memcached calls of the process that answered, by kind");
        ap_rprintf(r, "stickylb_memcached_requests_total{op=\"get\"} %"
                   APR_UINT64_T_FMT "\n", sv->mc.gets);
        ap_rprintf(r, "stickylb_memcached_requests_total{op=\"add\"} %"
                   APR_UINT64_T_FMT "\n", sv->mc.adds);
        ap_rprintf(r, "stickylb_memcached_requests_total{op=\"set\"} %"
                   APR_UINT64_T_FMT "\n", sv->mc.sets - sv->mc.quiet_sets);
        ap_rprintf(r, "stickylb_memcached_requests_total{op=\"quiet_set\"} %"
                   APR_UINT64_T_FMT "\n", sv->mc.quiet_sets);
        prom_head(r, "stickylb_memcached_writer_bindings_total", "counter",
                  "learned bindings handed to the writer thread of the "
                  "process that answered (write=async), by outcome");
        ap_rprintf(r, "stickylb_memcached_writer_bindings_total{result="
                   "\"written\"} %" APR_UINT64_T_FMT "\n", sv->mc.published);
        ap_rprintf(r, "stickylb_memcached_writer_bindings_total{result="
                   "\"dropped\"} %" APR_UINT64_T_FMT "\n",
                   sv->mc.publish_dropped);
        ap_rprintf(r, "stickylb_memcached_writer_bindings_total{result="
                   "\"failed\"} %" APR_UINT64_T_FMT "\n",
                   sv->mc.publish_errors);
        prom_head(r, "stickylb_memcached_writer_queue", "gauge",
                  "learned bindings waiting for the writer thread");
        ap_rprintf(r, "stickylb_memcached_writer_queue %" APR_UINT64_T_FMT
                   "\n", sv->mc.publish_waiting);
        prom_head(r, "stickylb_memcached_errors_total", "counter",
                  "failed memcached calls of the process that answered");
        ap_rprintf(r, "stickylb_memcached_errors_total %" APR_UINT64_T_FMT
                   "\n", sv->mc.errors);
        prom_head(r, "stickylb_memcached_server_up", "gauge",
                  "1 when the last call to the server succeeded");
        for (i = 0; sv->mc_servers && i < sv->mc_servers->nelts; i++) {
            slb_mc_server *ms = &APR_ARRAY_IDX(sv->mc_servers, i,
                                               slb_mc_server);
            ap_rprintf(r, "stickylb_memcached_server_up{server=\"%s:%d\"} "
                       "%d\n", prom_label(r->pool, ms->host), ms->port,
                       ms->up);
        }
    }
}

static void html_form(request_rec *r, const char *bal, const char *route,
                      const char *action, const char *label,
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
               ap_escape_html2(r->pool, route, 1), action, extra, label);
}

static void out_html(request_rec *r, apr_array_header_t *bvs,
                     const slb_store_view *sv)
{
    apr_time_t now = apr_time_now();
    int i, j;

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
             "form.inline{display:inline;margin:0 .2em}"
             "</style></head><body>\n<h1>mod_stickylb</h1>\n", r);
    for (i = 0; i < bvs->nelts; i++) {
        balancer_view *bv = &APR_ARRAY_IDX(bvs, i, balancer_view);
        const char *bal = bv->b->s->name;

        ap_rprintf(r, "<h2>%s</h2><p>store: %s, namespace %s</p>\n"
                   "<table><tr><th>member</th><th>route</th><th>state</th>"
                   "<th>weight</th><th>sessions</th><th>new sessions</th>"
                   "<th>failovers</th><th>requests</th><th>probe</th>"
                   "<th>last change</th><th>control</th></tr>\n",
                   ap_escape_html2(r->pool, bal, 1),
                   bv->c->store == SLB_STORE_MEMCACHED ? "memcached" : "shm (embedded)",
                   ap_escape_html2(r->pool, bv->ns, 1));
        for (j = 0; j < bv->members->nelts; j++) {
            member_view *mv = &APR_ARRAY_IDX(bv->members, j, member_view);
            const char *route = mv->w->s->route;

            ap_rprintf(r, "<tr class=\"%s\"><td>%s</td><td>%s</td>"
                       "<td>%s</td><td class=\"num\">%.2f</td>"
                       "<td class=\"num\">%u</td><td class=\"num\">%"
                       APR_UINT64_T_FMT "</td><td class=\"num\">%"
                       APR_UINT64_T_FMT "</td><td class=\"num\">%"
                       APR_UINT64_T_FMT "</td><td>%s</td><td>%s</td><td>",
                       mv->state, ap_escape_html2(r->pool, mv->w->s->name, 1),
                       ap_escape_html2(r->pool, route, 1), mv->state,
                       mv->weight, mv->sessions, mv->h.new_sessions,
                       mv->h.failovers, mv->h.requests,
                       mv->h.probed
                           ? apr_psprintf(r->pool, "%s, %.1f ms",
                                          ap_escape_html2(r->pool,
                                                          mv->h.last_result,
                                                          1),
                                          secs(mv->h.last_latency) * 1000)
                           : "-",
                       mv->h.last_change
                           ? apr_psprintf(r->pool, "%" APR_TIME_T_FMT " s ago",
                                          apr_time_sec(now
                                                       - mv->h.last_change))
                           : "-");
            if (*route) {
                if (PROXY_WORKER_IS_DRAINING(mv->w)) {
                    html_form(r, bal, route, "undrain", "undrain", "");
                }
                else {
                    html_form(r, bal, route, "drain", "drain", "");
                }
                if (PROXY_WORKER_IS(mv->w, PROXY_WORKER_DISABLED)) {
                    html_form(r, bal, route, "enable", "enable", "");
                }
                else {
                    html_form(r, bal, route, "maintenance", "maintenance",
                              "");
                }
            }
            ap_rputs("</td></tr>\n", r);
        }
        ap_rputs("</table>\n", r);
    }
    ap_rprintf(r, "<h2>stick table</h2><table>"
               "<tr><th>bindings</th><td class=\"num\">%" APR_UINT64_T_FMT
               " of %" APR_UINT64_T_FMT "</td></tr>"
               "<tr><th>memory</th><td class=\"num\">%.1f MiB</td></tr>"
               "<tr><th>hits / misses</th><td class=\"num\">%"
               APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT "</td></tr>"
               "<tr><th>inserts / evictions / expired</th><td class=\"num\">%"
               APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT " / %"
               APR_UINT64_T_FMT "</td></tr>"
               "<tr><th>errors (this process)</th><td class=\"num\">%"
               APR_UINT64_T_FMT "</td></tr></table>\n",
               sv->entries, sv->capacity, (double)sv->bytes / 1048576.0,
               sv->hits, sv->misses, sv->inserts, sv->evictions, sv->expired,
               sv->errors);
    if (sv->have_mc) {
        ap_rprintf(r, "<h2>memcached (this process)</h2><table>"
                   "<tr><th>gets / hits / misses</th><td class=\"num\">%"
                   APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT " / %"
                   APR_UINT64_T_FMT "</td></tr><tr><th>errors / timeouts"
                   "</th><td class=\"num\">%" APR_UINT64_T_FMT " / %"
                   APR_UINT64_T_FMT "</td></tr><tr><th>slowest call</th>"
                   "<td class=\"num\">%.1f ms</td></tr>"
                   "<tr><th>learned bindings written</th><td>%s",
                   sv->mc.gets, sv->mc.hits, sv->mc.misses, sv->mc.errors,
                   sv->mc.timeouts, (double)sv->mc.latency_us_max / 1000,
                   slb_mc_write_mode_name(sv->mc_write_mode));
        if (sv->mc_write_mode == SLB_MC_WRITE_ASYNC) {
            ap_rprintf(r, ": %" APR_UINT64_T_FMT " written, %" APR_UINT64_T_FMT
                       " waiting, %" APR_UINT64_T_FMT " dropped, %"
                       APR_UINT64_T_FMT " failed", sv->mc.published,
                       sv->mc.publish_waiting, sv->mc.publish_dropped,
                       sv->mc.publish_errors);
        }
        ap_rputs("</td></tr>", r);
        for (i = 0; sv->mc_servers && i < sv->mc_servers->nelts; i++) {
            slb_mc_server *ms = &APR_ARRAY_IDX(sv->mc_servers, i,
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

static int reply(request_rec *r, int status, int html, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);
    if (html && status == HTTP_OK) {
        apr_table_setn(r->headers_out, "Location", r->uri);
        return HTTP_SEE_OTHER;
    }
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_rprintf(r, "{\"ok\":%s,%s}\n", status == HTTP_OK ? "true" : "false",
               msg);
    return OK;
}

static int control(request_rec *r)
{
    apr_array_header_t *pairs = NULL;
    apr_table_t *f = apr_table_make(r->pool, 8);
    const char *bal, *route, *action, *v;
    proxy_balancer *b;
    proxy_worker *w = NULL;
    const slb_balancer *c;
    const char *ns;
    int html, i;

    if (ap_parse_form_data(r, NULL, &pairs, 16, 8192) != OK || !pairs) {
        return reply(r, HTTP_BAD_REQUEST, 0, "\"error\":\"no form data\"");
    }
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
    html = (v = apr_table_get(f, "return")) && !strcmp(v, "html");
    v = apr_table_get(f, "nonce");
    if (v == NULL || strcmp(v, nonce) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SLB_LOG_TAG "SLB0401: control request without this "
                      "server's nonce refused");
        return reply(r, HTTP_FORBIDDEN, 0, "\"error\":\"bad nonce\"");
    }
    bal = apr_table_get(f, "balancer");
    action = apr_table_get(f, "action");
    route = apr_table_get(f, "member");
    if (!bal || !action || !(b = find_balancer(r, bal))) {
        return reply(r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"balancer and action needed\"");
    }
    c = slb_balancer_of(r->server, b, r->pool);
    ns = c->ns;
    for (i = 0; route && i < b->workers->nelts; i++) {
        proxy_worker *x = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (!strcmp(x->s->route, route)) {
            w = x;
            break;
        }
    }
    if (!strcmp(action, "show") || !strcmp(action, "delete")) {
        const char *id = apr_table_get(f, "id");
        slb_skey key;
        char bound[SLB_MAX_ROUTE_LEN + 1];

        if (id == NULL || !slb_value_ok(id, strlen(id))) {
            return reply(r, HTTP_BAD_REQUEST, 0,
                         "\"error\":\"a session id is needed\"");
        }
        slb_skey_init(&key, ns, id, strlen(id));
        if (!strcmp(action, "delete")) {
            apr_status_t rv = slb_store_del(c, &key);
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          SLB_LOG_TAG "SLB0402: binding of a session of %s "
                          "deleted by %s", b->s->name, r->useragent_ip);
            return reply(r, HTTP_OK, html, "\"deleted\":%s",
                         rv == APR_SUCCESS ? "true" : "false");
        }
        if (slb_store_get(c, &key, bound)
            == APR_SUCCESS) {
            return reply(r, HTTP_OK, 0, "\"route\":%s",
                         json_str(r->pool, bound));
        }
        return reply(r, HTTP_OK, 0, "\"route\":null");
    }
    if (w == NULL) {
        return reply(r, HTTP_BAD_REQUEST, 0,
                     "\"error\":\"member (route) not in the balancer\"");
    }
    if (!strcmp(action, "drain") || !strcmp(action, "undrain")) {
        ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG,
                             action[0] == 'd', w);
    }
    else if (!strcmp(action, "maintenance")) {
        ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, 1, w);
    }
    else if (!strcmp(action, "enable")) {
        ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, 0, w);
        ap_proxy_set_wstatus(PROXY_WORKER_STOPPED_FLAG, 0, w);
    }
    else if (!strcmp(action, "weight")) {
        char *end;
        long n;
        v = apr_table_get(f, "value");
        n = v && apr_isdigit(*v) ? strtol(v, &end, 10) : -1;
        if (n < 1 || n > 100 || *end) {
            return reply(r, HTTP_BAD_REQUEST, 0,
                         "\"error\":\"value must be 1 to 100\"");
        }
        /* mod_proxy keeps loadfactor x 100 */
        w->s->lbfactor = (int)n * 100;
    }
    else if (!strcmp(action, "unbind")) {
        apr_uint32_t n = slb_store_unbind_route(ns, w->s->route);
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      SLB_LOG_TAG "SLB0403: %u bindings of member %s of %s "
                      "deleted by %s", n, w->s->name, b->s->name,
                      r->useragent_ip);
        return reply(r, HTTP_OK, html, "\"unbound\":%u", n);
    }
    else {
        return reply(r, HTTP_BAD_REQUEST, 0, "\"error\":\"unknown action\"");
    }
    if (c->store == SLB_STORE_MEMCACHED && strcmp(action, "weight") != 0) {
        /* every balancer on the same memcached namespace follows */
        slb_store_publish_state(r, ns, w->s->route,
                                !strcmp(action, "drain") ? SLB_MEMBER_DRAIN
                                : !strcmp(action, "maintenance")
                                      ? SLB_MEMBER_MAINT
                                      : SLB_MEMBER_UP);
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  SLB_LOG_TAG "SLB0404: %s on member %s of %s by %s", action,
                  w->s->name, b->s->name, r->useragent_ip);
    return reply(r, HTTP_OK, html, "\"member\":%s,\"action\":%s",
                 json_str(r->pool, w->s->route), json_str(r->pool, action));
}

/* ------------------------------------------------------------------ */
/* the handler and mod_status                                           */

static int status_handler(request_rec *r)
{
    apr_array_header_t *bvs;
    slb_store_view sv;
    const char *fmt = NULL;

    if (r->handler == NULL || strcmp(r->handler, STATUS_HANDLER) != 0) {
        return DECLINED;
    }
    if (r->method_number == M_POST) {
        return control(r);
    }
    if (r->method_number != M_GET) {
        r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->args) {
        if (ap_strstr_c(r->args, "format=json")) {
            fmt = "json";
        }
        else if (ap_strstr_c(r->args, "format=prometheus")) {
            fmt = "prometheus";
        }
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    bvs = collect(r);
    slb_store_snapshot(r->pool, &sv);
    if (r->header_only) {
        return OK;
    }
    if (fmt && !strcmp(fmt, "json")) {
        out_json(r, bvs, &sv);
    }
    else if (fmt) {
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
