/*
 * mod_stickylb.c - sticky sessions for mod_proxy_balancer.
 *
 * An lbmethod provider ("ProxySet lbmethod=stickylb") plus the hooks around
 * it:
 *
 *   proxy pre_request (before mod_proxy_balancer): find the request's
 *       sticky keys (route cookie, ;jsessionid= path parameter, session
 *       cookies) once, keep them in r->request_config, hide the route
 *       cookie from the backend ("indirect"), add the response filter.
 *   finder (under the balancer's thread mutex, no I/O): map the route to a
 *       member with mod_proxy_balancer's rules (retry, redirect=, hot
 *       standby, nofailover), or let the core choose a member
 *       (ap_proxy_balancer_get_best_worker: lbset, spares, standby, drain)
 *       weighted by loadfactor.  Safe to call again on failover retries.
 *   response filter (also on error responses): insert the route cookie
 *       once, when the member's route differs from the client's cookie.
 *
 * The cookie/route codec and the selection logic live in stickylb_codec.c
 * and stickylb_select.c, which do not depend on httpd.
 */
#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_optional.h"

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "ap_provider.h"
#include "mod_proxy.h"

#include "mod_stickylb.h"


#define SLB_LBMETHOD_NAME "stickylb"
#define SLB_FILTER_NAME   "STICKYLB"

/* resolved in post_config, every time (mod_proxy may be reloaded) */
static proxy_worker *(*get_best_worker_fn)(proxy_balancer *balancer,
                                           request_rec *r,
                                           proxy_is_best_callback_fn_t *is_best,
                                           void *baton) = NULL;
static int (*retry_worker_fn)(const char *proxy_function,
                              proxy_worker *worker, server_rec *s) = NULL;

/* balancer (pointer) -> effective slb_dir_conf, built in post_config */
static apr_hash_t *balancer_confs = NULL;

/* The defaults, applied by the getters below when a field is unset. */
static const char *const default_session_cookie = "JSESSIONID";
static const char *const default_path_param = "jsessionid";
#define SLB_DEFAULT_SEPARATOR '.'

/* ------------------------------------------------------------------ */
/* configuration                                                        */

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    slb_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->session_cookies = NULL;
    c->session_cookies_set = 0;
    c->path_param = NULL;
    c->path_param_set = 0;
    c->separator = SLB_UNSET;
    slb_cookie_conf_init(&c->route_cookie);
    c->route_cookie_set = 0;
    c->learn_cookies = NULL;
    c->learn_cookies_set = 0;
    c->keys = NULL;
    c->keys_set = 0;
    c->idle_timeout = SLB_UNSET;
    c->max_lifetime = SLB_UNSET;
    c->ns = NULL;
    c->new_by_sessions = SLB_UNSET;
    c->store_mc = SLB_UNSET;
    c->probes = NULL;
    c->passive = NULL;
    c->passive_fall = 3;
    c->slow_start = SLB_UNSET;
    return c;
}

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const slb_dir_conf *base = basev;
    const slb_dir_conf *add = addv;
    slb_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->session_cookies_set = add->session_cookies_set
                             || base->session_cookies_set;
    c->session_cookies = add->session_cookies_set ? add->session_cookies
                                                  : base->session_cookies;
    c->path_param_set = add->path_param_set || base->path_param_set;
    c->path_param = add->path_param_set ? add->path_param : base->path_param;
    c->separator = add->separator != SLB_UNSET ? add->separator
                                               : base->separator;
    c->route_cookie_set = add->route_cookie_set || base->route_cookie_set;
    c->route_cookie = add->route_cookie_set ? add->route_cookie
                                            : base->route_cookie;
    c->ring = add->route_cookie_set ? add->ring : base->ring;
    c->learn_cookies_set = add->learn_cookies_set || base->learn_cookies_set;
    c->learn_cookies = add->learn_cookies_set ? add->learn_cookies
                                              : base->learn_cookies;
    c->keys_set = add->keys_set || base->keys_set;
    c->keys = add->keys_set ? add->keys : base->keys;
    c->idle_timeout = add->idle_timeout != SLB_UNSET ? add->idle_timeout
                                                     : base->idle_timeout;
    c->max_lifetime = add->max_lifetime != SLB_UNSET ? add->max_lifetime
                                                     : base->max_lifetime;
    c->ns = add->ns ? add->ns : base->ns;
    c->new_by_sessions = add->new_by_sessions != SLB_UNSET
                             ? add->new_by_sessions : base->new_by_sessions;
    c->store_mc = add->store_mc != SLB_UNSET ? add->store_mc
                                             : base->store_mc;
    c->probes = add->probes ? add->probes : base->probes;
    c->passive = add->passive ? add->passive : base->passive;
    c->passive_fall = add->passive ? add->passive_fall : base->passive_fall;
    c->slow_start = add->slow_start != SLB_UNSET ? add->slow_start
                                                 : base->slow_start;
    return c;
}

/*
 * Per-server record of the <Proxy balancer://...> sections that hold our
 * directives: lower-cased balancer name -> slb_dir_conf.  mod_proxy does
 * not keep balancer->section_config for every balancer (it is lost when
 * virtual host balancers are merged), so the sections are recorded here
 * while the configuration is read.
 */
static void *create_srv_conf(apr_pool_t *p, server_rec *s)
{
    slb_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->sections = apr_hash_make(p);
    c->table_entries = SLB_UNSET;
    c->mc = NULL;
    c->mc_cache_s = SLB_UNSET;
    return c;
}

static void *merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    const slb_srv_conf *base = basev;
    const slb_srv_conf *add = addv;
    slb_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    c->sections = apr_hash_overlay(p, add->sections, base->sections);
    c->table_entries = add->table_entries != SLB_UNSET ? add->table_entries
                                                       : base->table_entries;
    c->mc = add->mc ? add->mc : base->mc;
    c->mc_cache_s = add->mc_cache_s != SLB_UNSET ? add->mc_cache_s
                                                 : base->mc_cache_s;
    return c;
}

static const char *balancer_key(apr_pool_t *p, const char *name)
{
    char *k = apr_pstrdup(p, name);
    apr_size_t n = strlen(k);

    while (n > 0 && k[n - 1] == '/') {
        k[--n] = '\0';
    }
    ap_str_tolower(k);
    return k;
}

/* Getters applying the defaults. */
static char conf_separator(const slb_dir_conf *c)
{
    return c->separator == SLB_UNSET ? SLB_DEFAULT_SEPARATOR
                                     : (char)c->separator;
}

static const char *conf_path_param(const slb_dir_conf *c)
{
    if (!c->path_param_set) {
        return default_path_param;
    }
    return *c->path_param ? c->path_param : NULL;
}

/* built in post_config from the configuration pool */
static apr_array_header_t *default_session_cookies = NULL;

static const apr_array_header_t *conf_session_cookies(const slb_dir_conf *c)
{
    return c->session_cookies_set ? c->session_cookies
                                  : default_session_cookies;
}

/*
 * The module's directives are valid in the server config, a virtual host,
 * or a <Proxy balancer://...> section (ProxySet rejects keys it does not
 * know, so they cannot be ProxySet parameters).  Anywhere else they would
 * have no effect: say so at configtest.
 */
static const char *check_context(cmd_parms *cmd, void *dconf)
{
    const ap_directive_t *d;

    if (cmd->path == NULL) {
        return NULL;
    }
    for (d = cmd->directive ? cmd->directive->parent : NULL; d;
         d = d->parent) {
        if (!strcasecmp(d->directive, "<Proxy")) {
            if (!strncasecmp(cmd->path, "balancer://", 11)) {
                slb_srv_conf *sc = ap_get_module_config(
                    cmd->server->module_config, &stickylb_module);
                const char *k = balancer_key(cmd->pool, cmd->path);
                apr_hash_set(sc->sections, k, APR_HASH_KEY_STRING, dconf);
                return NULL;
            }
            break;
        }
        if (!strcasecmp(d->directive, "<IfModule")
            || !strcasecmp(d->directive, "<IfDefine")
            || !strcasecmp(d->directive, "<IfFile")
            || !strcasecmp(d->directive, "<IfDirective")
            || !strcasecmp(d->directive, "<IfSection")) {
            continue;
        }
        break;
    }
    return apr_pstrcat(cmd->pool, cmd->cmd->name,
                       ": allowed only in the server config, a "
                       "<VirtualHost>, or a <Proxy balancer://...> section",
                       NULL);
}

static const char *set_session_cookie(cmd_parms *cmd, void *dconf, int argc,
                                      char *const argv[])
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);
    int i;

    if (err) {
        return err;
    }
    if (argc < 1) {
        return "StickyLBSessionCookie: needs one or more cookie names, "
               "or none";
    }
    c->session_cookies = apr_array_make(cmd->pool, argc, sizeof(char *));
    c->session_cookies_set = 1;
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        return NULL;
    }
    if (argc > SLB_MAX_COOKIE_NAMES) {
        return apr_psprintf(cmd->pool, "StickyLBSessionCookie: at most %d "
                            "cookie names", SLB_MAX_COOKIE_NAMES);
    }
    for (i = 0; i < argc; i++) {
        if (!slb_is_token(argv[i], 128)) {
            return apr_psprintf(cmd->pool, "StickyLBSessionCookie: '%s' is "
                                "not a valid cookie name", argv[i]);
        }
        if (!strcasecmp(argv[i], "none")) {
            return "StickyLBSessionCookie: 'none' must stand alone";
        }
        APR_ARRAY_PUSH(c->session_cookies, const char *) = argv[i];
    }
    return NULL;
}

static const char *set_path_param(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    c->path_param_set = 1;
    if (!strcasecmp(arg, "none")) {
        c->path_param = "";
        return NULL;
    }
    if (!slb_is_token(arg, 128)) {
        return apr_psprintf(cmd->pool, "StickyLBPathParam: '%s' is not a "
                            "valid parameter name", arg);
    }
    c->path_param = arg;
    return NULL;
}

static const char *set_separator(cmd_parms *cmd, void *dconf,
                                 const char *arg)
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    if (strlen(arg) != 1 || !slb_value_ok(arg, 1) || *arg == '=') {
        return apr_psprintf(cmd->pool, "StickyLBSeparator: '%s' must be a "
                            "single printable character other than '=', "
                            "';', ',', '\"' or '\\'", arg);
    }
    c->separator = (unsigned char)*arg;
    return NULL;
}

static const char *set_route_cookie(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    c->route_cookie_set = 1;
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        slb_cookie_conf_init(&c->route_cookie);
        return NULL;
    }
    err = slb_cookie_conf_parse(cmd->pool, &c->route_cookie, argc,
                                (const char *const *)argv);
    if (err) {
        return apr_pstrcat(cmd->pool, "StickyLBRouteCookie: ", err, NULL);
    }
    c->ring = NULL;
    if (c->route_cookie.sign_file) {
        const char *path = ap_server_root_relative(cmd->pool,
                                                   c->route_cookie.sign_file);
        c->ring = apr_pcalloc(cmd->pool, sizeof(*c->ring));
        err = path ? slb_keyring_load(cmd->pool, path, c->ring)
                   : "bad key file path";
        if (err) {
            return apr_pstrcat(cmd->pool, "StickyLBRouteCookie: sign=: ",
                               err, NULL);
        }
    }
    return NULL;
}

/* A list of cookie names, or none (shared by the cookie-list directives). */
static const char *cookie_list(cmd_parms *cmd, int argc, char *const argv[],
                               apr_array_header_t **out)
{
    int i;

    if (argc < 1) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": needs one or more "
                           "cookie names, or none", NULL);
    }
    *out = apr_array_make(cmd->pool, argc, sizeof(char *));
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        return NULL;
    }
    if (argc > SLB_MAX_COOKIE_NAMES) {
        return apr_psprintf(cmd->pool, "%s: at most %d cookie names",
                            cmd->cmd->name, SLB_MAX_COOKIE_NAMES);
    }
    for (i = 0; i < argc; i++) {
        if (!slb_is_token(argv[i], 128)) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not a valid cookie "
                                "name", cmd->cmd->name, argv[i]);
        }
        if (!strcasecmp(argv[i], "none")) {
            return apr_pstrcat(cmd->pool, cmd->cmd->name,
                               ": 'none' must stand alone", NULL);
        }
        APR_ARRAY_PUSH(*out, const char *) = argv[i];
    }
    return NULL;
}

static const char *set_learn_cookie(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    c->learn_cookies_set = 1;
    return cookie_list(cmd, argc, argv, &c->learn_cookies);
}

static const char *set_key(cmd_parms *cmd, void *dconf, const char *kind,
                           const char *name)
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);
    slb_key_source *k;

    if (err) {
        return err;
    }
    if (!c->keys_set || c->keys == NULL) {
        c->keys = apr_array_make(cmd->pool, 2, sizeof(slb_key_source));
        c->keys_set = 1;
    }
    if (!strcasecmp(kind, "none") && name == NULL) {
        apr_array_clear(c->keys);
        return NULL;
    }
    k = apr_array_push(c->keys);
    k->name = name;
    if (!strcasecmp(kind, "header") || !strcasecmp(kind, "query")) {
        k->kind = !strcasecmp(kind, "header") ? SLB_KEY_HEADER
                                              : SLB_KEY_QUERY;
        if (name == NULL || !slb_is_token(name, 128)) {
            return apr_psprintf(cmd->pool, "StickyLBKey: %s needs a valid "
                                "name ('%s')", kind, name ? name : "");
        }
    }
    else if (!strcasecmp(kind, "address")) {
        k->kind = SLB_KEY_ADDRESS;
        if (name != NULL) {
            return "StickyLBKey: address takes no name";
        }
    }
    else {
        return apr_psprintf(cmd->pool, "StickyLBKey: unknown key '%s' "
                            "(expected header NAME, query NAME, address or "
                            "none)", kind);
    }
    return NULL;
}

static const char *parse_seconds(cmd_parms *cmd, const char *arg,
                                 apr_int64_t *out)
{
    char *end;
    apr_int64_t v;

    if (!apr_isdigit(*arg)) {
        v = -1;
    }
    else {
        v = apr_strtoi64(arg, &end, 10);
        if (*end || v > 315360000) {
            v = -1;
        }
    }
    if (v < 0) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be a number of "
                            "seconds from 0 to 315360000", cmd->cmd->name,
                            arg);
    }
    *out = v;
    return NULL;
}

static const char *set_idle_timeout(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    const char *err = check_context(cmd, dconf);

    return err ? err : parse_seconds(cmd, arg,
                                     &((slb_dir_conf *)dconf)->idle_timeout);
}

static const char *set_max_lifetime(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    const char *err = check_context(cmd, dconf);

    return err ? err : parse_seconds(cmd, arg,
                                     &((slb_dir_conf *)dconf)->max_lifetime);
}

static const char *set_namespace(cmd_parms *cmd, void *dconf,
                                 const char *arg)
{
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    if (!slb_value_ok(arg, strlen(arg)) || strlen(arg) > 128) {
        return apr_psprintf(cmd->pool, "StickyLBNamespace: '%s' must be 1 to "
                            "128 printable characters", arg);
    }
    ((slb_dir_conf *)dconf)->ns = arg;
    return NULL;
}

static const char *set_new_sessions(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "requests")) {
        ((slb_dir_conf *)dconf)->new_by_sessions = 0;
    }
    else if (!strcasecmp(arg, "sessions")) {
        ((slb_dir_conf *)dconf)->new_by_sessions = 1;
    }
    else {
        return apr_psprintf(cmd->pool, "StickyLBNewSessions: '%s' must be "
                            "requests or sessions", arg);
    }
    return NULL;
}

static const char *set_store(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = check_context(cmd, dconf);

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "shm")) {
        ((slb_dir_conf *)dconf)->store_mc = 0;
    }
    else if (!strcasecmp(arg, "memcached")) {
        ((slb_dir_conf *)dconf)->store_mc = 1;
    }
    else {
        return apr_psprintf(cmd->pool, "StickyLBStore: '%s' must be shm or "
                            "memcached", arg);
    }
    return NULL;
}

/* StickyLBMemcached "<libmemcached config>" [key=value ...] */
static const char *set_memcached(cmd_parms *cmd, void *dconf, int argc,
                                 char *const argv[])
{
    slb_srv_conf *sc = ap_get_module_config(cmd->server->module_config,
                                            &stickylb_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    slb_mc_conf *c;
    int i;

    (void)dconf;
    if (err) {
        return err;
    }
    if (argc < 1) {
        return "StickyLBMemcached: needs the servers, e.g. "
               "\"--SERVER=10.0.0.5:11211 --SERVER=10.0.0.6:11211\"";
    }
    c = apr_pcalloc(cmd->pool, sizeof(*c));
    slb_mc_conf_init(c);
    c->config = argv[0];
    sc->mc_cache_s = SLB_DEFAULT_MC_CACHE;
    for (i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        char *end;
        apr_int64_t v;
        const char *k;

        if (eq && !strncasecmp(argv[i], "write=", 6)) {
            c->write_mode = slb_mc_write_mode_parse(eq + 1);
            if (c->write_mode < 0) {
                return apr_psprintf(cmd->pool, "StickyLBMemcached: '%s': "
                                    "write= is sync, quiet or async",
                                    argv[i]);
            }
            continue;
        }
        if (eq == NULL || !apr_isdigit(eq[1])) {
            return apr_psprintf(cmd->pool, "StickyLBMemcached: '%s' is not "
                                "key=number", argv[i]);
        }
        k = apr_pstrmemdup(cmd->pool, argv[i], (apr_size_t)(eq - argv[i]));
        v = apr_strtoi64(eq + 1, &end, 10);
        if (*end || v > 1000000) {
            return apr_psprintf(cmd->pool, "StickyLBMemcached: '%s' is out "
                                "of range", argv[i]);
        }
        if (!strcasecmp(k, "connect-timeout")) {
            c->connect_timeout_ms = (int)v;
        }
        else if (!strcasecmp(k, "timeout")) {
            c->io_timeout_ms = (int)v;
        }
        else if (!strcasecmp(k, "retry")) {
            c->retry_timeout_s = (int)v;
        }
        else if (!strcasecmp(k, "failure-limit")) {
            c->server_failure_limit = (int)v;
        }
        else if (!strcasecmp(k, "replicas")) {
            c->replicas = (int)v;
        }
        else if (!strcasecmp(k, "pool")) {
            c->pool_max = (int)v;
        }
        else if (!strcasecmp(k, "pool-wait")) {
            c->pool_wait_ms = (int)v;
        }
        else if (!strcasecmp(k, "queue")) {
            c->queue_max = (int)v;
        }
        else if (!strcasecmp(k, "cache")) {
            if (v > 3600) {
                return "StickyLBMemcached: cache= must be 0 to 3600 seconds";
            }
            sc->mc_cache_s = (int)v;
        }
        else {
            return apr_psprintf(cmd->pool, "StickyLBMemcached: unknown "
                                "option '%s' (connect-timeout, timeout, "
                                "retry, failure-limit, replicas, pool, "
                                "pool-wait, write, queue, cache)", k);
        }
    }
    err = slb_mc_check_config(cmd->pool, c);
    if (err) {
        return apr_pstrcat(cmd->pool, "StickyLBMemcached: ", err, NULL);
    }
    sc->mc = c;
    return NULL;
}

static const char *set_probe(cmd_parms *cmd, void *dconf, int argc,
                             char *const argv[])
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);
    slb_probe_conf pc;
    int i;

    if (err) {
        return err;
    }
    err = slb_probe_conf_parse(cmd->pool, &pc, argc,
                               (const char *const *)argv);
    if (err) {
        return apr_pstrcat(cmd->pool, "StickyLBProbe: ", err, NULL);
    }
    if (c->probes == NULL) {
        c->probes = apr_array_make(cmd->pool, 2, sizeof(slb_probe_conf));
    }
    for (i = 0; i < c->probes->nelts; i++) {
        const slb_probe_conf *o = &APR_ARRAY_IDX(c->probes, i,
                                                 slb_probe_conf);
        if ((o->route == NULL && pc.route == NULL)
            || (o->route && pc.route && !strcmp(o->route, pc.route))) {
            return apr_psprintf(cmd->pool, "StickyLBProbe: a probe for %s "
                                "is configured already",
                                pc.route ? pc.route : "every member");
        }
    }
    *(slb_probe_conf *)apr_array_push(c->probes) = pc;
    return NULL;
}

static const char *set_passive(cmd_parms *cmd, void *dconf, int argc,
                               char *const argv[])
{
    slb_dir_conf *c = dconf;
    const char *err = check_context(cmd, dconf);
    int i;

    if (err) {
        return err;
    }
    c->passive = apr_array_make(cmd->pool, 4, sizeof(slb_range));
    c->passive_fall = 3;
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        return NULL;
    }
    for (i = 0; i < argc; i++) {
        const char *w = argv[i];
        char *end;
        long lo, hi;

        if (!strncasecmp(w, "fall=", 5)) {
            lo = apr_isdigit(w[5]) ? strtol(w + 5, &end, 10) : -1;
            if (lo < 1 || lo > 100 || *end) {
                return apr_psprintf(cmd->pool, "StickyLBPassive: '%s' must be "
                                    "fall=1..100", w);
            }
            c->passive_fall = (int)lo;
            continue;
        }
        lo = apr_isdigit(*w) ? strtol(w, &end, 10) : -1;
        hi = lo;
        if (lo >= 0 && *end == '-') {
            hi = apr_isdigit(end[1]) ? strtol(end + 1, &end, 10) : -1;
        }
        if (lo < 100 || hi > 599 || hi < lo || *end) {
            return apr_psprintf(cmd->pool, "StickyLBPassive: '%s' is not a "
                                "status or range like 502-504", w);
        }
        ((slb_range *)apr_array_push(c->passive))->lo = (int)lo;
        APR_ARRAY_IDX(c->passive, c->passive->nelts - 1, slb_range).hi =
            (int)hi;
    }
    if (c->passive->nelts == 0) {
        return "StickyLBPassive: needs statuses (e.g. 500 502-504), or none";
    }
    return NULL;
}

static const char *set_slow_start(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    apr_int64_t v;
    const char *err = check_context(cmd, dconf);

    if (err || (err = parse_seconds(cmd, arg, &v)) != NULL) {
        return err;
    }
    if (v > 3600) {
        return "StickyLBSlowStart: at most 3600 seconds";
    }
    ((slb_dir_conf *)dconf)->slow_start = (int)v;
    return NULL;
}

static const char *set_table_size(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    slb_srv_conf *sc = ap_get_module_config(cmd->server->module_config,
                                            &stickylb_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end;
    apr_int64_t v;

    (void)dconf;
    if (err) {
        return err;
    }
    v = apr_isdigit(*arg) ? apr_strtoi64(arg, &end, 10) : -1;
    if (v < 16 || v > 100000000 || *end) {
        return apr_psprintf(cmd->pool, "StickyLBTableSize: '%s' must be a "
                            "number of bindings from 16 to 100000000", arg);
    }
    sc->table_entries = v;
    return NULL;
}

static const command_rec slb_cmds[] = {
    AP_INIT_TAKE_ARGV("StickyLBSessionCookie", set_session_cookie, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Cookie names carrying <id><separator><route> "
                      "(default JSESSIONID), or none"),
    AP_INIT_TAKE1("StickyLBPathParam", set_path_param, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Path parameter carrying <id><separator><route> "
                  "(default jsessionid), or none"),
    AP_INIT_TAKE1("StickyLBSeparator", set_separator, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Character between session id and route (default '.')"),
    AP_INIT_TAKE_ARGV("StickyLBRouteCookie", set_route_cookie, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Route cookie: NAME [insert] [indirect] [nocache] "
                      "[path=] [domain=] [secure=] [httponly=] [samesite=] "
                      "[max-age=], or none"),
    AP_INIT_TAKE_ARGV("StickyLBLearnCookie", set_learn_cookie, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Cookies whose ids are learned from backend responses "
                      "and bound in the stick table, or none"),
    AP_INIT_TAKE12("StickyLBKey", set_key, NULL, RSRC_CONF | ACCESS_CONF,
                   "A key held in the stick table: header NAME, query NAME, "
                   "address, or none"),
    AP_INIT_TAKE1("StickyLBIdleTimeout", set_idle_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds a binding lives unused (default 1800; 0 = "
                  "unlimited)"),
    AP_INIT_TAKE1("StickyLBMaxLifetime", set_max_lifetime, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds a binding lives at most (default 0 = unlimited)"),
    AP_INIT_TAKE1("StickyLBNamespace", set_namespace, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Name of the balancer's keys in the stick table (default "
                  "the balancer name)"),
    AP_INIT_TAKE1("StickyLBNewSessions", set_new_sessions, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "How new sessions are spread: requests (weighted round "
                  "robin, default) or sessions (fewest bound sessions per "
                  "loadfactor)"),
    AP_INIT_TAKE1("StickyLBStore", set_store, NULL, RSRC_CONF | ACCESS_CONF,
                  "Where the balancer's stick table lives: shm (default) or "
                  "memcached"),
    AP_INIT_TAKE_ARGV("StickyLBMemcached", set_memcached, NULL, RSRC_CONF,
                      "memcached servers (libmemcached configuration string) "
                      "and options connect-timeout= timeout= retry= "
                      "failure-limit= replicas= pool= pool-wait= write= queue= cache="),
    AP_INIT_TAKE_ARGV("StickyLBProbe", set_probe, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Active probe: tcp|http [method= path= host= expect= "
                      "body= interval= timeout= rise= fall= route=], or "
                      "none"),
    AP_INIT_TAKE_ARGV("StickyLBPassive", set_passive, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Response statuses that count as failures of a member "
                      "[fall=n], or none"),
    AP_INIT_TAKE1("StickyLBSlowStart", set_slow_start, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds over which a member that came back ramps up to "
                  "its full share of new sessions (default 0: off)"),
    AP_INIT_TAKE1("StickyLBTableSize", set_table_size, NULL, RSRC_CONF,
                  "Bindings the embedded stick table holds (default "
                  "262144)"),
    { NULL }
};

/* The effective configuration of a balancer (see post_config). */
const slb_dir_conf *slb_balancer_conf(proxy_balancer *b, server_rec *s)
{
    const slb_dir_conf *c = NULL;

    if (balancer_confs) {
        c = apr_hash_get(balancer_confs, &b, sizeof(b));
    }
    if (c == NULL) {
        /* a balancer we did not see at startup: server-level settings */
        c = ap_get_module_config(s->lookup_defaults, &stickylb_module);
    }
    return c;
}

/* ------------------------------------------------------------------ */
/* per-request state                                                    */

/* A key looked up in the stick table for this request. */
typedef struct {
    slb_source src;
    const char *name;
    slb_key key;
    int found;                         /* bound in the table */
    char route[SLB_MAX_ROUTE_LEN + 1]; /* its route when found */
} slb_stored_key;

typedef struct {
    const slb_dir_conf *conf;
    const char *ns;                  /* store namespace of the balancer */
    apr_array_header_t *candidates;  /* slb_candidate */
    apr_array_header_t *stored;      /* slb_stored_key */
    const char *cookie_route;        /* first valid route cookie value */
    int cookie_signed;               /* it was of the signed form */
    int cookie_resign;               /* ... signed by an older key */
    apr_time_t cookie_issued;        /* its times (signed form) */
    apr_time_t cookie_refreshed;
    slb_decision decision;           /* of the last finder call */
    int decided;
    proxy_worker *worker;            /* its choice */
    int cookie_done;                 /* response side handled */
} slb_req;

static slb_lifetime conf_lifetime(const slb_dir_conf *c)
{
    slb_lifetime lt;

    lt.idle = (apr_uint32_t)(c->idle_timeout == SLB_UNSET
                                 ? SLB_DEFAULT_IDLE_TIMEOUT
                                 : c->idle_timeout);
    lt.max = (apr_uint32_t)(c->max_lifetime == SLB_UNSET ? 0
                                                         : c->max_lifetime);
    return lt;
}

static int uses_store(const slb_dir_conf *c)
{
    return (c->learn_cookies && c->learn_cookies->nelts > 0)
           || (c->keys && c->keys->nelts > 0);
}

/* Cookie headers of a request that are read (more are ignored) */
#define COOKIE_HDRS 16

typedef struct {
    apr_array_header_t *values;
} cookie_collect;

/* rq->stored of a request with no store key yet: empty, never pushed to
 * (lookup_key makes the request its own array first) */
static apr_array_header_t no_stored_keys = {
    NULL, sizeof(slb_stored_key), 0, 0, NULL
};

static int collect_cookie_hdr(void *baton, const char *key, const char *val)
{
    cookie_collect *cc = baton;

    (void)key;
    if (cc->values->nelts < COOKIE_HDRS) {
        APR_ARRAY_PUSH(cc->values, const char *) = val;
    }
    return 1;
}

/* Remove the route cookie from every Cookie header sent to the backend. */
static void strip_route_cookie(request_rec *r, const char *name,
                               apr_array_header_t *hdrs)
{
    int i, removed_total = 0;
    apr_array_header_t *kept = apr_array_make(r->pool, hdrs->nelts,
                                              sizeof(const char *));

    for (i = 0; i < hdrs->nelts; i++) {
        int removed = 0;
        const char *v = slb_cookie_strip(r->pool,
                                         APR_ARRAY_IDX(hdrs, i, const char *),
                                         name, &removed);
        removed_total += removed;
        if (v) {
            APR_ARRAY_PUSH(kept, const char *) = v;
        }
    }
    if (removed_total == 0) {
        return;
    }
    apr_table_unset(r->headers_in, "Cookie");
    for (i = 0; i < kept->nelts; i++) {
        apr_table_addn(r->headers_in, "Cookie",
                       APR_ARRAY_IDX(kept, i, const char *));
    }
}

/* Look one key up; a hit becomes a candidate route. */
static void lookup_key(request_rec *r, slb_req *rq, apr_array_header_t *hits,
                       slb_source src, const char *name, const char *id,
                       apr_size_t len, int lookup)
{
    slb_stored_key *sk;
    slb_lifetime lt = conf_lifetime(rq->conf);

    if (rq->stored->nelts >= 2 * SLB_MAX_SAME_NAME) {
        return;
    }
    if (rq->stored == &no_stored_keys) {
        rq->stored = apr_array_make(r->pool, 1, sizeof(slb_stored_key));
    }
    sk = apr_array_push(rq->stored);
    sk->src = src;
    sk->name = name;
    sk->found = 0;
    sk->route[0] = '\0';
    slb_store_key(rq->conf->store_mc == 1, &sk->key, rq->ns, id, len);
    if (lookup && slb_store_get(r, rq->conf->store_mc == 1, &sk->key, rq->ns,
                                &lt, sk->route) == APR_SUCCESS) {
        slb_candidate *c = apr_array_push(hits);
        sk->found = 1;
        c->src = src;
        c->name = name;
        c->id = apr_pstrmemdup(r->pool, id, len);
        c->route = apr_pstrdup(r->pool, sk->route);
    }
}

/*
 * The stick table's candidates: ids of the learned cookies the client
 * sent, and the configured header / query / address keys.  Called where
 * I/O is allowed (never from the finder).
 */
static apr_array_header_t *store_candidates(request_rec *r, slb_req *rq,
                                            apr_array_header_t *cookie_hdrs,
                                            int lookup)
{
    apr_array_header_t *hits = apr_array_make(r->pool, 2,
                                              sizeof(slb_candidate));
    const slb_dir_conf *c = rq->conf;
    int i, j, k;

    if (c->learn_cookies) {
        for (k = 0; k < c->learn_cookies->nelts; k++) {
            const char *name = APR_ARRAY_IDX(c->learn_cookies, k,
                                             const char *);
            for (i = 0; i < cookie_hdrs->nelts; i++) {
                slb_span v[SLB_MAX_SAME_NAME];
                int n = slb_cookie_values(APR_ARRAY_IDX(cookie_hdrs, i,
                                                        const char *),
                                          name, v, SLB_MAX_SAME_NAME);
                for (j = 0; j < n; j++) {
                    lookup_key(r, rq, hits, SLB_SRC_LEARNED, name, v[j].ptr,
                               v[j].len, lookup);
                }
            }
        }
    }
    if (c->keys) {
        for (k = 0; k < c->keys->nelts; k++) {
            const slb_key_source *ks = &APR_ARRAY_IDX(c->keys, k,
                                                      slb_key_source);
            slb_span v;
            const char *h;

            switch (ks->kind) {
            case SLB_KEY_HEADER:
                h = apr_table_get(r->headers_in, ks->name);
                if (h && slb_value_ok(h, strlen(h))) {
                    lookup_key(r, rq, hits, SLB_SRC_HEADER, ks->name, h,
                               strlen(h), lookup);
                }
                break;
            case SLB_KEY_QUERY:
                if (slb_query_param(r->args, ks->name, &v)) {
                    lookup_key(r, rq, hits, SLB_SRC_QUERY, ks->name, v.ptr,
                               v.len, lookup);
                }
                break;
            case SLB_KEY_ADDRESS:
                h = r->useragent_ip;
                if (h && *h) {
                    lookup_key(r, rq, hits, SLB_SRC_ADDRESS, "address", h,
                               strlen(h), lookup);
                }
                break;
            }
        }
    }
    return hits;
}

/* The member route a token stands for, or NULL. */
static const char *route_of_token(request_rec *r, const slb_keyring *ring,
                                  proxy_balancer *b, const char *token)
{
    int i;

    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (*w->s->route
            && !strcmp(slb_route_token(r->pool, ring, w->s->route), token)) {
            return w->s->route;
        }
    }
    return NULL;
}

/*
 * Route cookies with sign=: verified (any key of the ring), tokens mapped
 * back to routes (opaque), maxlife/maxidle enforced.  An unsigned value is
 * accepted only without strict; a forged or expired one is ignored (the
 * client is treated as having no route cookie).
 */
static apr_array_header_t *signed_candidates(request_rec *r, slb_req *rq,
                                             proxy_balancer *b,
                                             apr_array_header_t *hdrs)
{
    const slb_cookie_conf *cc = &rq->conf->route_cookie;
    apr_array_header_t *out = apr_array_make(r->pool, 1,
                                             sizeof(slb_candidate));
    apr_time_t now = apr_time_now();
    int i, j;

    for (i = 0; i < hdrs->nelts; i++) {
        slb_span v[SLB_MAX_SAME_NAME];
        int n = slb_cookie_values(APR_ARRAY_IDX(hdrs, i, const char *),
                                  cc->name, v, SLB_MAX_SAME_NAME);
        for (j = 0; j < n; j++) {
            const char *val = apr_pstrmemdup(r->pool, v[j].ptr, v[j].len);
            const char *route = NULL;
            apr_time_t issued = 0, refreshed = 0;
            int ok = slb_verify_value(r->pool, rq->conf->ring, val, &route,
                                      &issued, &refreshed);
            slb_candidate *c;

            if (ok == 0) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              SLB_LOG_TAG "SLB0107: %s cookie does not "
                              "verify: ignored", cc->name);
                continue;
            }
            if (ok < 0) {
                if (cc->strict) {
                    continue;
                }
                route = val[0] == conf_separator(rq->conf) ? val + 1 : val;
                if (!slb_route_ok(route, strlen(route))) {
                    continue;
                }
            }
            else {
                if (cc->opaque) {
                    route = route_of_token(r, rq->conf->ring, b, route);
                    if (route == NULL) {
                        continue;
                    }
                }
                if ((cc->maxlife > 0
                     && now - issued > apr_time_from_sec(cc->maxlife))
                    || (cc->maxidle > 0
                        && now - refreshed > apr_time_from_sec(cc->maxidle))) {
                    continue;   /* expired: the client is rebalanced */
                }
            }
            if (rq->cookie_route == NULL) {
                rq->cookie_signed = ok > 0;
                rq->cookie_issued = issued;
                rq->cookie_refreshed = refreshed;
                /* verified by an older key of the ring: sign it anew */
                rq->cookie_resign = ok > 0 && rq->conf->ring->nkeys > 1
                    && strcmp(val, slb_sign_value(r->pool, rq->conf->ring,
                                                  cc->opaque
                                                      ? slb_route_token(
                                                            r->pool,
                                                            rq->conf->ring,
                                                            route)
                                                      : route,
                                                  issued, refreshed)) != 0;
            }
            c = apr_array_push(out);
            c->src = SLB_SRC_ROUTE_COOKIE;
            c->name = cc->name;
            c->id = "";
            c->route = route;
            if (rq->cookie_route == NULL) {
                rq->cookie_route = route;
            }
        }
    }
    return out;
}

/* Insert `more` after the route cookie candidates (its precedence). */
static apr_array_header_t *merge_candidates(apr_pool_t *p,
                                            apr_array_header_t *base,
                                            apr_array_header_t *more)
{
    apr_array_header_t *out;
    int i, at = 0;

    if (more->nelts == 0) {
        return base;
    }
    while (at < base->nelts
           && APR_ARRAY_IDX(base, at, slb_candidate).src
                  == SLB_SRC_ROUTE_COOKIE) {
        at++;
    }
    out = apr_array_make(p, base->nelts + more->nelts, sizeof(slb_candidate));
    for (i = 0; i < at; i++) {
        *(slb_candidate *)apr_array_push(out) =
            APR_ARRAY_IDX(base, i, slb_candidate);
    }
    for (i = 0; i < more->nelts; i++) {
        *(slb_candidate *)apr_array_push(out) =
            APR_ARRAY_IDX(more, i, slb_candidate);
    }
    for (i = at; i < base->nelts; i++) {
        *(slb_candidate *)apr_array_push(out) =
            APR_ARRAY_IDX(base, i, slb_candidate);
    }
    return out;
}

/* allow_io: 0 from the finder (the balancer's lock is held) */
static slb_req *make_req_state(request_rec *r, proxy_balancer *b,
                               int allow_io)
{
    slb_req *rq = apr_pcalloc(r->pool, sizeof(*rq));
    cookie_collect cc;
    slb_key_spec spec;
    /* the Cookie headers (at most COOKIE_HDRS, see collect_cookie_hdr) in
     * an array on the stack: read only once collected */
    const char *hdrs[COOKIE_HDRS];
    apr_array_header_t hdr_arr;
    int i;

    rq->conf = slb_balancer_conf(b, r->server);
    rq->ns = rq->conf->ns ? rq->conf->ns : b->s->name;
    rq->stored = &no_stored_keys;    /* made on the first store lookup */
    hdr_arr.pool = r->pool;
    hdr_arr.elt_size = sizeof(const char *);
    hdr_arr.nelts = 0;
    hdr_arr.nalloc = COOKIE_HDRS;
    hdr_arr.elts = (char *)hdrs;
    cc.values = &hdr_arr;
    apr_table_do(collect_cookie_hdr, &cc, r->headers_in, "Cookie", NULL);

    /* a signed route cookie is read here, not by the codec */
    spec.route_cookie = rq->conf->ring ? NULL : rq->conf->route_cookie.name;
    spec.session_cookies = conf_session_cookies(rq->conf);
    spec.path_param = conf_path_param(rq->conf);
    spec.separator = conf_separator(rq->conf);
    rq->candidates = slb_collect_candidates(r->pool, &spec,
                                            (const char *const *)cc.values->elts,
                                            cc.values->nelts,
                                            r->unparsed_uri);
    if (uses_store(rq->conf)) {
        rq->candidates = merge_candidates(r->pool, rq->candidates,
                                          store_candidates(r, rq, cc.values,
                                                           allow_io));
    }
    if (rq->conf->ring) {
        rq->candidates = merge_candidates(r->pool, rq->candidates,
                                          signed_candidates(r, rq, b,
                                                            cc.values));
        /* signed candidates go first: merge put them after the (absent)
         * route cookie candidates, i.e. at the front */
    }
    for (i = 0; i < rq->candidates->nelts; i++) {
        const slb_candidate *c = &APR_ARRAY_IDX(rq->candidates, i,
                                                slb_candidate);
        if (c->src == SLB_SRC_ROUTE_COOKIE) {
            rq->cookie_route = c->route;
            break;
        }
    }
    if (rq->conf->route_cookie.name && rq->conf->route_cookie.indirect) {
        strip_route_cookie(r, rq->conf->route_cookie.name, cc.values);
    }
    ap_set_module_config(r->request_config, &stickylb_module, rq);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  SLB_LOG_TAG "%d candidate route(s), %d stick table key(s) "
                  "for %s", rq->candidates->nelts, rq->stored->nelts,
                  b->s->name);
    return rq;
}

static int uses_stickylb(const proxy_balancer *b)
{
    return b && b->s && !strcmp(b->s->lbpname, SLB_LBMETHOD_NAME);
}

/*
 * Member states decided on another balancer of the same memcached
 * namespace (drain, maintenance): fetched at most every
 * SLB_STATE_SYNC_INTERVAL per process and balancer, applied to the
 * members' shared status.  Runs before the balancer's lock is taken.
 */
#define SYNC_SLOTS 64
static struct {
    proxy_balancer *b;
    apr_time_t last;
} state_sync[SYNC_SLOTS];

static void sync_member_states(request_rec *r, proxy_balancer *b,
                               const slb_req *rq)
{
    apr_time_t now = apr_time_now();
    int i, slot = -1;

    for (i = 0; i < SYNC_SLOTS; i++) {
        if (state_sync[i].b == b || state_sync[i].b == NULL) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        return;
    }
    if (state_sync[slot].b == b
        && now - state_sync[slot].last < SLB_STATE_SYNC_INTERVAL) {
        return;
    }
    state_sync[slot].b = b;
    state_sync[slot].last = now;   /* racing threads: a second fetch at worst */
    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        const char *st;
        int drain, maint;

        if (!*w->s->route) {
            continue;
        }
        st = slb_store_fetch_state(r->pool, rq->ns, w->s->route);
        if (st == NULL) {
            continue;
        }
        drain = !strcmp(st, "drain");
        maint = !strcmp(st, "maint");
        if (!drain != !PROXY_WORKER_IS_DRAINING(w)
            || !maint != !PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED)) {
            ap_proxy_set_wstatus(PROXY_WORKER_DRAIN_FLAG, drain, w);
            ap_proxy_set_wstatus(PROXY_WORKER_DISABLED_FLAG, maint, w);
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          SLB_LOG_TAG "SLB0106: member %s of %s is now '%s' "
                          "(decided on a balancer sharing the store)",
                          w->s->name, b->s->name, st);
        }
    }
}

/* ------------------------------------------------------------------ */
/* proxy pre_request: keys, before mod_proxy_balancer takes the lock     */

/*
 * The active balancer a "balancer://name/path" URL names, as
 * ap_proxy_get_balancer(..., care = 1) finds it (balancer names are kept
 * in lower case), without copying and hashing the URL: the few balancers
 * of a server are compared by name.
 */
static proxy_balancer *find_balancer(proxy_server_conf *conf, const char *url)
{
    const char *host = strchr(url, ':');
    apr_size_t len;
    proxy_balancer *b;
    int i;

    if (host == NULL || host[1] != '/' || host[2] != '/' || host[3] == '\0') {
        return NULL;
    }
    len = (apr_size_t)(host + 3 - url) + strcspn(host + 3, "/");
    b = (proxy_balancer *)conf->balancers->elts;
    for (i = 0; i < conf->balancers->nelts; i++, b++) {
        if (strncasecmp(b->s->name, url, len) == 0 && b->s->name[len] == '\0'
            && !b->s->inactive) {
            return b;
        }
    }
    return NULL;
}

static int slb_pre_request(proxy_worker **worker, proxy_balancer **balancer,
                           request_rec *r, proxy_server_conf *pconf,
                           char **url)
{
    proxy_balancer *b = *balancer;
    slb_req *rq;

    (void)worker;
    if (ap_get_module_config(r->request_config, &stickylb_module)) {
        return DECLINED;   /* a failover retry: keys already known */
    }
    if (b == NULL) {
        if (*url == NULL || strncasecmp(*url, "balancer:", 9) != 0) {
            return DECLINED;
        }
        b = find_balancer(pconf, *url);
    }
    if (!uses_stickylb(b)) {
        return DECLINED;
    }
    rq = make_req_state(r, b, 1);
    if (rq->conf->store_mc == 1) {
        sync_member_states(r, b, rq);
    }
    ap_add_output_filter(SLB_FILTER_NAME, rq, r, r->connection);
    return DECLINED;
}

/* ------------------------------------------------------------------ */
/* the lbmethod                                                         */

typedef struct {
    proxy_balancer *b;
    server_rec *s;
} worker_ctx;

static proxy_worker *nth_worker(void *ctx, int i)
{
    return APR_ARRAY_IDX(((worker_ctx *)ctx)->b->workers, i, proxy_worker *);
}

static int w_count(void *ctx)
{
    return ((worker_ctx *)ctx)->b->workers->nelts;
}

static const char *w_route(void *ctx, int i)
{
    return nth_worker(ctx, i)->s->route;
}

static const char *w_redirect(void *ctx, int i)
{
    return nth_worker(ctx, i)->s->redirect;
}

static unsigned w_state(void *ctx, int i)
{
    proxy_worker *w = nth_worker(ctx, i);
    unsigned st = 0;

    if (PROXY_WORKER_IS_USABLE(w)) {
        st |= SLB_M_USABLE;
    }
    if (PROXY_WORKER_IS_STANDBY(w)) {
        st |= SLB_M_STANDBY;
    }
    if (PROXY_WORKER_IS_SPARE(w)) {
        st |= SLB_M_SPARE;
    }
    if (PROXY_WORKER_IS_DRAINING(w)) {
        st |= SLB_M_DRAINING;
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_IN_ERROR)) {
        st |= SLB_M_IN_ERROR;
    }
    return st;
}

static unsigned w_retry(void *ctx, int i)
{
    if (retry_worker_fn) {
        retry_worker_fn("BALANCER", nth_worker(ctx, i),
                        ((worker_ctx *)ctx)->s);
    }
    return w_state(ctx, i);
}

static const slb_member_ops worker_ops = {
    w_count, w_route, w_redirect, w_state, w_retry
};

/* What the core's member walk hands to our is_best callbacks. */
typedef struct {
    int total;                 /* round robin bookkeeping */
    proxy_balancer *b;
    const slb_dir_conf *c;
    apr_time_t now;
    const char *ns;            /* least sessions */
    double best_ratio;
} pick_baton;

/* loadfactor, ramped up after the member came back (slow start) */
static int factor_of(const pick_baton *pb, proxy_worker *w)
{
    return pb->c->slow_start > 0
               ? slb_health_factor(pb->b, w, pb->c, pb->now)
               : w->s->lbfactor;
}

static int is_best(proxy_worker *current, proxy_worker *prev_best,
                   void *baton)
{
    pick_baton *pb = baton;

    return slb_wrr_consider(&current->s->lbstatus, factor_of(pb, current),
                            prev_best ? &prev_best->s->lbstatus : NULL,
                            &pb->total);
}

/*
 * Least sessions: fewest live bindings in the stick table per unit of
 * loadfactor; ties (and members without a route) by the weighted round
 * robin.  Reads counters in shared memory only.
 */
static int is_best_sessions(proxy_worker *current, proxy_worker *prev_best,
                            void *baton)
{
    pick_baton *pb = baton;
    int factor = factor_of(pb, current);
    double ratio = (double)slb_store_route_sessions(pb->ns,
                                                    current->s->route)
                   / (factor > 0 ? factor : 1);
    int rr = slb_wrr_consider(&current->s->lbstatus, factor,
                              prev_best ? &prev_best->s->lbstatus : NULL,
                              &pb->total);

    if (prev_best == NULL || ratio < pb->best_ratio
        || (ratio == pb->best_ratio && rr)) {
        pb->best_ratio = ratio;
        return 1;
    }
    return 0;
}

/*
 * A sticky hit counts in the weighting as mod_proxy_balancer counts it for
 * its own sticky sessions, so new sessions go where fewer requests went.
 */
static void account_sticky(proxy_balancer *b, proxy_worker *chosen)
{
    int i, total = 0;

    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (PROXY_WORKER_IS_USABLE(w)) {
            slb_wrr_consider(&w->s->lbstatus, w->s->lbfactor, NULL, &total);
        }
    }
    slb_wrr_commit(&chosen->s->lbstatus, total);
}

static void set_request_vars(request_rec *r, proxy_balancer *b,
                             const slb_req *rq, const slb_decision *d,
                             proxy_worker *w)
{
    apr_table_t *env = r->subprocess_env;
    const slb_candidate *c = NULL;
    /* our own variables cannot be there before the first decision: added
     * without a scan of the table; a failover retry replaces them */
    void (*put)(apr_table_t *, const char *, const char *) =
        rq->decided ? apr_table_setn : apr_table_addn;
    /* BALANCER_SESSION_* and the session notes are also set by
     * mod_proxy_balancer itself, but only for a balancer with
     * stickysession= */
    void (*put_session)(apr_table_t *, const char *, const char *) =
        rq->decided || *b->s->sticky ? apr_table_setn : apr_table_addn;

    if (d->candidate >= 0) {
        c = &APR_ARRAY_IDX(rq->candidates, d->candidate, slb_candidate);
        put_session(env, "BALANCER_SESSION_STICKY", c->name);
        put_session(env, "BALANCER_SESSION_ROUTE", c->route);
        put_session(r->notes, "session-sticky", c->name);
        put_session(r->notes, "session-route", c->route);
    }
    put(env, "STICKYLB_KEY_SOURCE", slb_source_name(c ? c->src : SLB_SRC_NONE));
    put(env, "STICKYLB_DECISION", slb_decision_name(d->kind));
    if (w) {
        put(env, "STICKYLB_ROUTE", w->s->route);
        if (*w->s->route && (d->route == NULL
                             || strcmp(d->route, w->s->route) != 0)) {
            apr_table_setn(env, "BALANCER_ROUTE_CHANGED", "1");
        }
    }
}

static proxy_worker *slb_finder(proxy_balancer *b, request_rec *r)
{
    slb_req *rq = ap_get_module_config(r->request_config, &stickylb_module);
    worker_ctx ctx;
    slb_decision d;
    proxy_worker *w = NULL;

    if (rq == NULL) {
        /* the lbmethod was switched after our pre_request ran: no store
         * lookups here, the balancer's lock is held */
        rq = make_req_state(r, b, 0);
    }
    ctx.b = b;
    ctx.s = r->server;
    d = slb_decide(&worker_ops, &ctx, rq->candidates, b->s->sticky_force);

    switch (d.kind) {
    case SLB_DECIDE_STICKY:
    case SLB_DECIDE_REDIRECT:
        w = nth_worker(&ctx, d.member);
        account_sticky(b, w);
        break;
    case SLB_DECIDE_REFUSE:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      SLB_LOG_TAG "SLB0101: member with route '%s' of %s is "
                      "unusable and nofailover is set: refusing",
                      d.route, b->s->name);
        break;
    case SLB_DECIDE_FAILOVER:
    case SLB_DECIDE_NEW:
        if (get_best_worker_fn) {
            pick_baton pb;
            pb.total = 0;
            pb.b = b;
            pb.c = rq->conf;
            pb.now = apr_time_now();
            pb.ns = rq->ns;
            pb.best_ratio = 0;
            w = get_best_worker_fn(b, r, rq->conf->new_by_sessions == 1
                                             ? is_best_sessions : is_best,
                                   &pb);
            if (w) {
                slb_wrr_commit(&w->s->lbstatus, pb.total);
            }
        }
        if (d.kind == SLB_DECIDE_FAILOVER) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          SLB_LOG_TAG "SLB0102: route '%s' of %s unusable, "
                          "session moves to '%s'", d.route, b->s->name,
                          w ? w->s->route : "(none)");
        }
        break;
    }
    set_request_vars(r, b, rq, &d, w);
    rq->decision = d;
    rq->decided = 1;
    rq->worker = w;
    if (w) {
        slb_health_count(b, w, d.kind);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  SLB_LOG_TAG "%s: %s -> %s", b->s->name,
                  slb_decision_name(d.kind), w ? w->s->name : "(none)");
    return w;
}

/* Called with the balancer's lock held (mod_proxy_balancer, balancer-
 * manager "reset"). */
static apr_status_t slb_reset(proxy_balancer *b, server_rec *s)
{
    int i;

    (void)s;
    for (i = 0; i < b->workers->nelts; i++) {
        APR_ARRAY_IDX(b->workers, i, proxy_worker *)->s->lbstatus = 0;
    }
    return APR_SUCCESS;
}

static apr_status_t slb_age(proxy_balancer *b, server_rec *s)
{
    (void)b;
    (void)s;
    return APR_SUCCESS;
}

static const proxy_balancer_method slb_method = {
    SLB_LBMETHOD_NAME,
    &slb_finder,
    NULL,
    &slb_reset,
    &slb_age,
    NULL     /* updatelbstatus: mod_proxy_balancer's default accounting */
};

/* ------------------------------------------------------------------ */
/* response side                                                        */

typedef struct {
    request_rec *r;
    slb_req *rq;
    const char *route;
} learn_ctx;

/* One Set-Cookie of the backend: bind (or unbind) a learned session id. */
static int learn_set_cookie(void *baton, const char *key, const char *val)
{
    learn_ctx *lc = baton;
    const slb_dir_conf *c = lc->rq->conf;
    int k;

    (void)key;
    for (k = 0; k < c->learn_cookies->nelts; k++) {
        const char *name = APR_ARRAY_IDX(c->learn_cookies, k, const char *);
        slb_span v;
        slb_key sk;
        slb_lifetime lt;
        char existing[SLB_MAX_ROUTE_LEN + 1];
        int got = slb_set_cookie_value(val, name, &v);

        if (got == 0) {
            continue;
        }
        if (got == 2) {
            /* the application ends the session: nothing to forget, we do
             * not know the id it deleted (the cookie value is empty) */
            break;
        }
        lt = conf_lifetime(c);
        slb_store_key(c->store_mc == 1, &sk, lc->rq->ns, v.ptr, v.len);
        existing[0] = '\0';
        if (slb_store_put(lc->r, c->store_mc == 1, &sk, lc->rq->ns,
                          lc->route, &lt, SLB_PUT_LEARN, NULL, existing)
            == APR_EEXIST
            && strcmp(existing, lc->route) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, lc->r,
                          SLB_LOG_TAG "SLB0104: learned %s is bound to '%s' "
                          "already; keeping it", name, existing);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, lc->r,
                          SLB_LOG_TAG "learned %s -> %s", name, lc->route);
        }
        break;
    }
    return 1;
}

/*
 * After the member answered: learn session ids it issued, bind the
 * request's header/query/address keys on a new assignment, and re-pin
 * every bound key that still names another member (failover, redirect).
 * Only rows that change are written.
 */
static void update_store(request_rec *r, slb_req *rq, const char *route)
{
    slb_lifetime lt = conf_lifetime(rq->conf);
    int i;

    /* a draining member keeps its sessions but gets no new binding: the
     * ids it issues now are not learned, so the drain converges */
    if (rq->worker && PROXY_WORKER_IS_DRAINING(rq->worker)
        && strcmp(rq->worker->s->route, route) == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      SLB_LOG_TAG "member %s is draining: nothing learned",
                      rq->worker->s->name);
        return;
    }
    if (rq->conf->learn_cookies && rq->conf->learn_cookies->nelts > 0) {
        learn_ctx lc;
        lc.r = r;
        lc.rq = rq;
        lc.route = route;
        apr_table_do(learn_set_cookie, &lc, r->headers_out, "Set-Cookie",
                     NULL);
        apr_table_do(learn_set_cookie, &lc, r->err_headers_out, "Set-Cookie",
                     NULL);
    }
    for (i = 0; i < rq->stored->nelts; i++) {
        slb_stored_key *sk = &APR_ARRAY_IDX(rq->stored, i, slb_stored_key);

        if (sk->found) {
            if (strcmp(sk->route, route) != 0) {
                /* re-pin: the session now lives on `route` */
                slb_store_put(r, rq->conf->store_mc == 1, &sk->key, rq->ns,
                              route, &lt, SLB_PUT_REPIN, sk->route, NULL);
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              SLB_LOG_TAG "SLB0105: %s key re-pinned from "
                              "'%s' to '%s'", slb_source_name(sk->src),
                              sk->route, route);
            }
        }
        else if (sk->src != SLB_SRC_LEARNED) {
            /* header, query and address keys are bound on first use; a
             * session id the client sent is never stored unless the
             * backend issued it */
            slb_store_put(r, rq->conf->store_mc == 1, &sk->key, rq->ns,
                          route, &lt, SLB_PUT_FIRST, NULL, NULL);
        }
    }
}

static void finish_response(request_rec *r, slb_req *rq)
{
    const slb_cookie_conf *cc = &rq->conf->route_cookie;
    const char *route;

    if (rq->cookie_done) {
        return;
    }
    rq->cookie_done = 1;
    route = apr_table_get(r->subprocess_env, "BALANCER_WORKER_ROUTE");
    if (route == NULL || *route == '\0') {
        return;
    }
    if (!slb_route_ok(route, strlen(route))) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SLB_LOG_TAG "SLB0103: route '%s' cannot be carried "
                      "in a cookie or the stick table",
                      ap_escape_logitem(r->pool, route));
        return;
    }
    if (uses_store(rq->conf)) {
        update_store(r, rq, route);
    }
    if (cc->name == NULL || !cc->insert) {
        return;
    }
    if (rq->conf->ring) {
        apr_time_t now = apr_time_now();
        int same = rq->cookie_route && !strcmp(rq->cookie_route, route);
        int refresh = cc->maxidle > 0 && rq->cookie_signed
                      && now - rq->cookie_refreshed
                             >= apr_time_from_sec(cc->maxidle / 4 + 1);

        if (same && rq->cookie_signed && !refresh && !rq->cookie_resign) {
            return;
        }
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       slb_cookie_build(r->pool, cc, slb_sign_value(
                           r->pool, rq->conf->ring,
                           cc->opaque ? slb_route_token(r->pool,
                                                        rq->conf->ring, route)
                                      : route,
                           same && rq->cookie_signed ? rq->cookie_issued
                                                     : now,
                           now)));
    }
    else {
        if (rq->cookie_route && !strcmp(rq->cookie_route, route)) {
            return;
        }
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       slb_cookie_build(r->pool, cc, route));
    }
    if (cc->nocache) {
        const char *a = apr_table_get(r->headers_out, "Cache-Control");
        const char *e = apr_table_get(r->err_headers_out, "Cache-Control");
        const char *both = a && e ? apr_pstrcat(r->pool, a, ", ", e, NULL)
                                  : (a ? a : e);
        apr_table_unset(r->headers_out, "Cache-Control");
        apr_table_setn(r->err_headers_out, "Cache-Control",
                       slb_cache_control_private(r->pool, both));
    }
}

static apr_status_t slb_out_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    slb_req *rq = f->ctx;

    if (rq) {
        finish_response(f->r, rq);
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* Error responses reset the filter chain: put the filter back. */
static void slb_insert_error_filter(request_rec *r)
{
    slb_req *rq = ap_get_module_config(r->request_config, &stickylb_module);

    if (rq && !rq->cookie_done) {
        ap_add_output_filter(SLB_FILTER_NAME, rq, r, r->connection);
    }
}

/* After the member answered: passive health marking. */
static int slb_post_request(proxy_worker *worker, proxy_balancer *balancer,
                            request_rec *r, proxy_server_conf *pconf)
{
    slb_req *rq = ap_get_module_config(r->request_config, &stickylb_module);

    (void)pconf;
    if (rq && balancer && worker && uses_stickylb(balancer)) {
        slb_health_passive(r, balancer, worker, rq->conf);
    }
    return DECLINED;
}

/* ------------------------------------------------------------------ */
/* startup                                                              */

static int slb_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    server_rec *sr;
    int any_probe = 0;

    (void)plog;
    get_best_worker_fn = APR_RETRIEVE_OPTIONAL_FN(proxy_balancer_get_best_worker);
    retry_worker_fn = APR_RETRIEVE_OPTIONAL_FN(ap_proxy_retry_worker);
    balancer_confs = NULL;
    default_session_cookies = apr_array_make(pconf, 1, sizeof(const char *));
    APR_ARRAY_PUSH(default_session_cookies, const char *) =
        default_session_cookie;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (get_best_worker_fn == NULL || retry_worker_fn == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     SLB_LOG_TAG "SLB0001: mod_proxy and mod_proxy_balancer "
                     "must be loaded for lbmethod=stickylb");
        return !OK;
    }

    if (slb_store_post_config(pconf, plog, ptemp, s) != OK
        || slb_health_post_config(pconf, s) != OK) {
        return !OK;
    }
    balancer_confs = apr_hash_make(pconf);
    for (sr = s; sr; sr = sr->next) {
        proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                     &proxy_module);
        const slb_dir_conf *base = ap_get_module_config(sr->lookup_defaults,
                                                        &stickylb_module);
        const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                      &stickylb_module);
        int i;

        if (pc == NULL || pc->balancers == NULL) {
            continue;
        }
        for (i = 0; i < pc->balancers->nelts; i++) {
            proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i,
                                               proxy_balancer);
            const slb_dir_conf *eff = base;
            const slb_dir_conf *sec;
            proxy_balancer **key;
            int j;

            sec = apr_hash_get(sc->sections, balancer_key(ptemp, b->s->name),
                               APR_HASH_KEY_STRING);
            if (sec) {
                eff = merge_dir_conf(pconf, (void *)base, (void *)sec);
            }
            ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, sr,
                         SLB_LOG_TAG "balancer %s: own section %s, route "
                         "cookie %s", b->s->name, sec ? "yes" : "no",
                         eff->route_cookie.name ? eff->route_cookie.name
                                                : "-");
            key = apr_palloc(pconf, sizeof(*key));
            *key = b;
            apr_hash_set(balancer_confs, key, sizeof(*key), eff);

            if (!uses_stickylb(b)) {
                continue;
            }
            if (eff->probes && eff->probes->nelts > 0) {
                any_probe = 1;
            }
            for (j = 0; j < b->workers->nelts; j++) {
                proxy_worker *w = APR_ARRAY_IDX(b->workers, j,
                                                proxy_worker *);
                if (!*w->s->route) {
                    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sr,
                                 SLB_LOG_TAG "SLB0002: member %s of %s has "
                                 "no route=: sessions on it cannot stick",
                                 w->s->name, b->s->name);
                }
                else if (!slb_route_ok(w->s->route, strlen(w->s->route))) {
                    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sr,
                                 SLB_LOG_TAG "SLB0003: route '%s' of member "
                                 "%s in %s holds characters a cookie cannot "
                                 "carry: sessions on it cannot stick",
                                 w->s->route, w->s->name, b->s->name);
                }
            }
        }
    }
    if (slb_status_post_config(pconf, s) != OK) {
        return !OK;
    }
    return slb_probe_post_config(pconf, s, any_probe);
}

/* After the configuration is read (also for configtest): a balancer on
 * the memcached store needs StickyLBMemcached. */
static int slb_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    server_rec *sr;

    (void)pconf;
    (void)plog;
    (void)ptemp;
    for (sr = s; sr; sr = sr->next) {
        slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                &stickylb_module);
        const slb_dir_conf *base = ap_get_module_config(sr->lookup_defaults,
                                                        &stickylb_module);
        int any = base->store_mc == 1;
        apr_hash_index_t *hi;
        const char *err;

        for (hi = apr_hash_first(ptemp, sc->sections); hi;
             hi = apr_hash_next(hi)) {
            const slb_dir_conf *c = apr_hash_this_val(hi);
            any = any || c->store_mc == 1;
        }
        err = slb_store_check(sr, any);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                         "%s", err);
            return !OK;
        }
    }
    return OK;
}

static void slb_child_init(apr_pool_t *p, server_rec *s)
{
    slb_store_child_init(p, s);
}

static void slb_register_hooks(apr_pool_t *p)
{
    static const char *const before_balancer[] = { "mod_proxy_balancer.c",
                                                   NULL };
    static const char *const after_proxy[] = { "mod_proxy.c",
                                               "mod_proxy_balancer.c", NULL };

    ap_register_provider(p, PROXY_LBMETHOD, SLB_LBMETHOD_NAME, "0",
                         &slb_method);
    proxy_hook_pre_request(slb_pre_request, NULL, before_balancer,
                           APR_HOOK_FIRST);
    /* run-first hook: mod_proxy_balancer's returns OK, so come before it */
    proxy_hook_post_request(slb_post_request, NULL, before_balancer,
                            APR_HOOK_FIRST);
    slb_probe_register_hooks(p);
    slb_status_register_hooks(p);
    ap_hook_post_config(slb_post_config, after_proxy, NULL,
                        APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(slb_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_hook_child_init(slb_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(slb_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(SLB_FILTER_NAME, slb_out_filter, NULL,
                              AP_FTYPE_CONTENT_SET);
}

module AP_MODULE_DECLARE_DATA stickylb_module = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    create_srv_conf,
    merge_srv_conf,
    slb_cmds,
    slb_register_hooks
};
