/*
 * mod_stickylb_config.c - the directives, and the balancers resolved from
 * them.
 *
 * The directives fill one slb_dir_conf per scope (server config, virtual
 * host, <Proxy balancer://...> section); their argument grammars are in the
 * core (stickylb_conf.c, unit-tested), this file only ties them to httpd.
 * The module has no per-directory merge function: its directives mean
 * nothing in <Directory> or <Location>, so httpd would merge for nothing on
 * every request.  Instead post_config resolves every balancer of every
 * server once (slb_config_resolve):
 *
 *     defaults <- main server <- virtual host <- <Proxy balancer://x>
 *
 * into an immutable slb_balancer, found per request by the balancer's
 * position in mod_proxy's array (slb_balancer_of).
 */
#include "apr_strings.h"
#include "apr_hash.h"

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "mod_proxy.h"

#include "mod_stickylb.h"

/* ------------------------------------------------------------------ */
/* scopes                                                               */

void *slb_create_dir_conf(apr_pool_t *p, char *dir)
{
    slb_dir_conf *c = apr_palloc(p, sizeof(*c));

    (void)dir;
    slb_dir_conf_init(c);
    return c;
}

/*
 * Per-server record of the <Proxy balancer://...> sections that hold our
 * directives: lower-cased balancer name -> slb_dir_conf.  mod_proxy does
 * not keep balancer->section_config for every balancer (it is lost when
 * virtual host balancers are merged), so the sections are recorded here
 * while the configuration is read.
 */
void *slb_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    slb_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->sections = apr_hash_make(p);
    return c;
}

void *slb_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    const slb_srv_conf *base = basev;
    const slb_srv_conf *add = addv;
    slb_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    c->sections = apr_hash_overlay(p, add->sections, base->sections);
    c->discover = add->discover && base->discover
                      ? apr_hash_overlay(p, add->discover, base->discover)
                      : add->discover ? add->discover : base->discover;
    c->table_entries = add->table_entries ? add->table_entries
                                          : base->table_entries;
    c->mc = add->mc ? add->mc : base->mc;
    c->mc_cache = add->mc ? add->mc_cache : base->mc_cache;
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

/* "Directive: message" (err from a core parser), or NULL */
static const char *named(cmd_parms *cmd, const char *err)
{
    return err ? apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL)
               : NULL;
}

/* Every per-balancer directive starts here. */
#define SCOPE(cmd, dconf, c)                                   \
    slb_dir_conf *c = (dconf);                                 \
    do {                                                       \
        const char *scope_err_ = check_context((cmd), (dconf)); \
        if (scope_err_) {                                      \
            return scope_err_;                                 \
        }                                                      \
    } while (0)

/* ------------------------------------------------------------------ */
/* directives                                                           */

static const char *set_session_cookie(cmd_parms *cmd, void *dconf, int argc,
                                      char *const argv[])
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_SESSION_COOKIES;
    return named(cmd, slb_parse_cookie_names(cmd->pool, argc,
                                             (const char *const *)argv,
                                             &c->session_cookies));
}

static const char *set_learn_cookie(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_LEARN_COOKIES;
    return named(cmd, slb_parse_cookie_names(cmd->pool, argc,
                                             (const char *const *)argv,
                                             &c->learn_cookies));
}

static const char *set_path_param(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_PATH_PARAM;
    if (!strcasecmp(arg, "none")) {
        c->path_param = NULL;
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
    SCOPE(cmd, dconf, c);
    if (strlen(arg) != 1 || !slb_value_ok(arg, 1) || *arg == '=') {
        return apr_psprintf(cmd->pool, "StickyLBSeparator: '%s' must be a "
                            "single printable character other than '=', "
                            "';', ',', '\"' or '\\'", arg);
    }
    c->set |= SLB_SET_SEPARATOR;
    c->separator = *arg;
    return NULL;
}

static const char *set_route_cookie(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    const char *err;
    SCOPE(cmd, dconf, c);

    c->set |= SLB_SET_ROUTE_COOKIE;
    c->ring = NULL;
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        slb_cookie_conf_init(&c->route_cookie);
        return NULL;
    }
    err = slb_cookie_conf_parse(cmd->pool, &c->route_cookie, argc,
                                (const char *const *)argv);
    if (err) {
        return named(cmd, err);
    }
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

static const char *set_key(cmd_parms *cmd, void *dconf, const char *kind,
                           const char *name)
{
    slb_key_source k;
    const char *err;
    SCOPE(cmd, dconf, c);

    if (!(c->set & SLB_SET_KEYS) || c->keys == NULL) {
        c->keys = apr_array_make(cmd->pool, 2, sizeof(slb_key_source));
        c->set |= SLB_SET_KEYS;
    }
    if (!strcasecmp(kind, "none") && name == NULL) {
        apr_array_clear(c->keys);
        return NULL;
    }
    if ((err = slb_parse_key(cmd->pool, kind, name, &k)) != NULL) {
        return named(cmd, err);
    }
    *(slb_key_source *)apr_array_push(c->keys) = k;
    return NULL;
}

/* A duration in seconds (bare numbers), 0 to ten years. */
static const char *lifetime(cmd_parms *cmd, const char *arg,
                            apr_interval_time_t *out)
{
    return named(cmd, slb_parse_duration(
                          cmd->pool, arg, SLB_UNIT_S, 0,
                          apr_time_from_sec(SLB_MAX_DURATION_S), out));
}

static const char *set_idle_timeout(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_IDLE_TIMEOUT;
    return lifetime(cmd, arg, &c->idle_timeout);
}

static const char *set_max_lifetime(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_MAX_LIFETIME;
    return lifetime(cmd, arg, &c->max_lifetime);
}

static const char *set_namespace(cmd_parms *cmd, void *dconf,
                                 const char *arg)
{
    SCOPE(cmd, dconf, c);
    if (!slb_value_ok(arg, strlen(arg)) || strlen(arg) > 128) {
        return apr_psprintf(cmd->pool, "StickyLBNamespace: '%s' must be 1 to "
                            "128 printable characters", arg);
    }
    c->set |= SLB_SET_NAMESPACE;
    c->ns = arg;
    return NULL;
}

/* A directive that takes one word of a list (StickyLBNewSessions,
 * StickyLBStore): its words, the int field it sets, the bit it marks. */
typedef struct {
    const slb_keyword *words;
    apr_size_t offset;
    unsigned bit;
} keyword_directive;

/* the enum fields set through keyword_directive are ints */
typedef char enums_are_ints[sizeof(slb_placement) == sizeof(int)
                            && sizeof(slb_store_kind) == sizeof(int)
                            && sizeof(slb_vars_mode) == sizeof(int)
                            ? 1 : -1];

static const slb_keyword placement_words[] = {
    { "requests", SLB_PLACE_REQUESTS }, { "sessions", SLB_PLACE_SESSIONS },
    { "hash", SLB_PLACE_HASH }, { "busyness", SLB_PLACE_BUSYNESS },
    { NULL, 0 }
};
static const keyword_directive new_sessions_directive = {
    placement_words, APR_OFFSETOF(slb_dir_conf, placement), SLB_SET_PLACEMENT
};
static const slb_keyword store_words[] = {
    { "shm", SLB_STORE_SHM }, { "memcached", SLB_STORE_MEMCACHED },
    { "none", SLB_STORE_NONE }, { NULL, 0 }
};
static const keyword_directive store_directive = {
    store_words, APR_OFFSETOF(slb_dir_conf, store), SLB_SET_STORE
};

static const slb_keyword variables_words[] = {
    { "auto", SLB_VARS_AUTO }, { "on", SLB_VARS_ON }, { "off", SLB_VARS_OFF },
    { NULL, 0 }
};
static const keyword_directive variables_directive = {
    variables_words, APR_OFFSETOF(slb_dir_conf, variables), SLB_SET_VARIABLES
};

static const char *set_keyword(cmd_parms *cmd, void *dconf, const char *arg)
{
    const keyword_directive *kd = cmd->info;
    int v;
    const char *err;
    SCOPE(cmd, dconf, c);

    if ((err = slb_parse_keyword(cmd->pool, arg, kd->words, &v)) != NULL) {
        return named(cmd, err);
    }
    *(int *)(void *)((char *)c + kd->offset) = v;
    c->set |= kd->bit;
    return NULL;
}

/* StickyLBMemcached "<libmemcached config>" [key=value ...] */
static const char *set_memcached(cmd_parms *cmd, void *dconf, int argc,
                                 char *const argv[])
{
    static const struct {
        const char *name;
        apr_size_t offset;
        slb_unit unit;           /* of a bare number (durations) */
        int is_duration;
        apr_int64_t lo, hi;      /* milliseconds for durations */
    } opts[] = {
        { "connect-timeout", APR_OFFSETOF(slb_mc_conf, connect_timeout_ms),
          SLB_UNIT_MS, 1, 1, 60000 },
        { "timeout", APR_OFFSETOF(slb_mc_conf, io_timeout_ms),
          SLB_UNIT_MS, 1, 1, 60000 },
        { "retry", APR_OFFSETOF(slb_mc_conf, retry_timeout_s),
          SLB_UNIT_S, 1, 1000, 3600000 },
        { "pool-wait", APR_OFFSETOF(slb_mc_conf, pool_wait_ms),
          SLB_UNIT_MS, 1, 0, 60000 },
        { "failure-limit", APR_OFFSETOF(slb_mc_conf, server_failure_limit),
          SLB_UNIT_MS, 0, 1, 1000 },
        { "replicas", APR_OFFSETOF(slb_mc_conf, replicas),
          SLB_UNIT_MS, 0, 0, 255 },
        { "pool", APR_OFFSETOF(slb_mc_conf, pool_max),
          SLB_UNIT_MS, 0, 1, 100000 },
        { "queue", APR_OFFSETOF(slb_mc_conf, queue_max),
          SLB_UNIT_MS, 0, 1, 1000000 },
    };
    /* the options as README lists them, for the unknown-option message */
    static const char *const names[] = {
        "connect-timeout=", "timeout=", "retry=", "failure-limit=",
        "replicas=", "pool=", "pool-wait=", "write=", "queue=", "cache=",
        NULL
    };
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
    sc->mc_cache = apr_time_from_sec(SLB_DEFAULT_MC_CACHE);
    for (i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        const char *k, *v;
        apr_size_t j;

        if (eq == NULL) {
            return apr_pstrcat(cmd->pool, "StickyLBMemcached: ",
                               slb_unknown_option(cmd->pool, argv[i], names),
                               NULL);
        }
        k = apr_pstrmemdup(cmd->pool, argv[i], (apr_size_t)(eq - argv[i]));
        v = eq + 1;
        if (!strcasecmp(k, "write")) {
            c->write_mode = slb_mc_write_mode_parse(v);
            if (c->write_mode < 0) {
                return apr_psprintf(cmd->pool, "StickyLBMemcached: '%s': "
                                    "write= is sync, quiet or async",
                                    argv[i]);
            }
            continue;
        }
        if (!strcasecmp(k, "cache")) {
            err = slb_parse_duration(cmd->pool, v, SLB_UNIT_S, 0,
                                     apr_time_from_sec(3600), &sc->mc_cache);
            if (err) {
                return apr_psprintf(cmd->pool, "StickyLBMemcached: '%s': "
                                    "cache= %s", argv[i], err);
            }
            continue;
        }
        for (j = 0; j < sizeof(opts) / sizeof(opts[0]); j++) {
            if (!strcasecmp(k, opts[j].name)) {
                break;
            }
        }
        if (j == sizeof(opts) / sizeof(opts[0])) {
            return apr_pstrcat(cmd->pool, "StickyLBMemcached: ",
                               slb_unknown_option(cmd->pool, argv[i], names),
                               NULL);
        }
        {
            int *field = (int *)((char *)c + opts[j].offset);
            if (opts[j].is_duration) {
                apr_interval_time_t t;
                err = slb_parse_duration(cmd->pool, v, opts[j].unit,
                                         opts[j].lo * 1000,
                                         opts[j].hi * 1000, &t);
                if (!err && opts[j].unit == SLB_UNIT_S) {
                    /* libmemcached counts whole seconds here */
                    *field = (int)slb_duration_secs(t);
                }
                else if (!err) {
                    *field = (int)(t / 1000);
                }
            }
            else {
                apr_int64_t n;
                err = slb_parse_int(cmd->pool, v, opts[j].lo, opts[j].hi,
                                    &n);
                if (!err) {
                    *field = (int)n;
                }
            }
            if (err) {
                return apr_psprintf(cmd->pool, "StickyLBMemcached: '%s': "
                                    "%s", argv[i], err);
            }
        }
    }
    err = slb_mc_check_config(cmd->pool, c);
    if (err) {
        return apr_pstrcat(cmd->pool, "StickyLBMemcached: ", err, NULL);
    }
    sc->mc = c;
    return NULL;
}

/*
 * The TLS context of an http probe line (used for its https:// members),
 * made while the configuration is read: the CA file is read by the parent
 * (configtest says what is wrong with it, and the children inherit it),
 * and lines with the same verify=/ca= share one context.
 */
#define PROBE_TLS_USERDATA_KEY "mod_stickylb-probe-tls"

static const char *probe_tls(cmd_parms *cmd, slb_probe_conf *pc)
{
    apr_hash_t *ctxs = NULL;
    const char *key, *err = NULL;

    if (pc->ca_file) {
        const char *abs = ap_server_root_relative(cmd->pool, pc->ca_file);
        if (abs == NULL) {
            return apr_psprintf(cmd->pool, "ca=%s: not a valid path",
                                pc->ca_file);
        }
        pc->ca_file = abs;
    }
    apr_pool_userdata_get((void **)&ctxs, PROBE_TLS_USERDATA_KEY, cmd->pool);
    if (ctxs == NULL) {
        ctxs = apr_hash_make(cmd->pool);
        apr_pool_userdata_set(ctxs, PROBE_TLS_USERDATA_KEY,
                              apr_pool_cleanup_null, cmd->pool);
    }
    key = apr_pstrcat(cmd->pool, pc->verify ? "1" : "0",
                      pc->ca_file ? pc->ca_file : "", NULL);
    pc->tls = apr_hash_get(ctxs, key, APR_HASH_KEY_STRING);
    if (pc->tls == NULL) {
        pc->tls = slb_probe_tls_ctx(cmd->pool, pc, &err);
        if (pc->tls == NULL) {
            return err;
        }
        apr_hash_set(ctxs, key, APR_HASH_KEY_STRING, pc->tls);
    }
    return NULL;
}

static const char *set_probe(cmd_parms *cmd, void *dconf, int argc,
                             char *const argv[])
{
    slb_probe_conf pc;
    const char *err;
    int i;
    SCOPE(cmd, dconf, c);

    err = slb_probe_conf_parse(cmd->pool, &pc, argc,
                               (const char *const *)argv);
    if (err == NULL && pc.kind == SLB_PROBE_HTTP) {
        err = probe_tls(cmd, &pc);
    }
    if (err) {
        return named(cmd, err);
    }
    if (c->probes == NULL) {
        c->probes = apr_array_make(cmd->pool, 2, sizeof(slb_probe_conf));
    }
    c->set |= SLB_SET_PROBES;
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

static const char *set_agent(cmd_parms *cmd, void *dconf, int argc,
                             char *const argv[])
{
    slb_probe_conf ac;
    const char *err;
    int i;
    SCOPE(cmd, dconf, c);

    err = slb_agent_conf_parse(cmd->pool, &ac, argc,
                               (const char *const *)argv);
    if (err == NULL && ac.kind == SLB_PROBE_HTTP) {
        err = probe_tls(cmd, &ac);
    }
    if (err) {
        return named(cmd, err);
    }
    if (c->agents == NULL) {
        c->agents = apr_array_make(cmd->pool, 2, sizeof(slb_probe_conf));
    }
    c->set |= SLB_SET_AGENTS;
    for (i = 0; i < c->agents->nelts; i++) {
        const slb_probe_conf *o = &APR_ARRAY_IDX(c->agents, i,
                                                 slb_probe_conf);
        if ((o->route == NULL && ac.route == NULL)
            || (o->route && ac.route && !strcmp(o->route, ac.route))) {
            return apr_psprintf(cmd->pool, "StickyLBAgent: an agent check "
                                "for %s is configured already (one line "
                                "per route=, and one without)",
                                ac.route ? ac.route : "every member");
        }
    }
    *(slb_probe_conf *)apr_array_push(c->agents) = ac;
    return NULL;
}

static const char *set_passive(cmd_parms *cmd, void *dconf, int argc,
                               char *const argv[])
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_PASSIVE;
    return named(cmd, slb_parse_passive(cmd->pool, argc,
                                        (const char *const *)argv,
                                        &c->passive, &c->passive_opts));
}

static const char *set_slow_start(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    SCOPE(cmd, dconf, c);
    c->set |= SLB_SET_SLOW_START;
    return named(cmd, slb_parse_duration(cmd->pool, arg, SLB_UNIT_S, 0,
                                         apr_time_from_sec(3600),
                                         &c->slow_start));
}

/* StickyLBDiscover <kind> <target> [key=value ...]: in a <Proxy
 * balancer://...> section only, one a balancer */
static const char *set_discover(cmd_parms *cmd, void *dconf, int argc,
                                char *const argv[])
{
    slb_srv_conf *sc = ap_get_module_config(cmd->server->module_config,
                                            &stickylb_module);
    slb_disc_spec *sp;
    const char *k, *err;

    if (cmd->path == NULL || strncasecmp(cmd->path, "balancer://", 11)) {
        return "StickyLBDiscover: allowed only in a <Proxy balancer://...> "
               "section (the balancer whose members it discovers)";
    }
    if ((err = check_context(cmd, dconf)) != NULL) {
        return err;
    }
    k = balancer_key(cmd->pool, cmd->path);
    if (sc->discover == NULL) {
        sc->discover = apr_hash_make(cmd->pool);
    }
    if (apr_hash_get(sc->discover, k, APR_HASH_KEY_STRING)) {
        return apr_psprintf(cmd->pool, "StickyLBDiscover: %s has a source "
                            "already (one StickyLBDiscover a balancer)",
                            cmd->path);
    }
    if ((err = slb_discover_parse(cmd->pool, argc,
                                  (const char *const *)argv, &sp))) {
        return named(cmd, err);
    }
    apr_hash_set(sc->discover, k, APR_HASH_KEY_STRING, sp);
    return NULL;
}

const slb_disc_spec *slb_config_discover_spec(server_rec *s,
                                              const proxy_balancer *b,
                                              apr_pool_t *p)
{
    const slb_srv_conf *sc = ap_get_module_config(s->module_config,
                                                  &stickylb_module);

    if (sc->discover == NULL || b->s == NULL) {
        return NULL;
    }
    return apr_hash_get(sc->discover, balancer_key(p, b->s->name),
                        APR_HASH_KEY_STRING);
}

static const char *set_table_size(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    slb_srv_conf *sc = ap_get_module_config(cmd->server->module_config,
                                            &stickylb_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_int64_t v;

    (void)dconf;
    if (err) {
        return err;
    }
    err = slb_parse_int(cmd->pool, arg, 16, 100000000, &v);
    if (err) {
        return apr_psprintf(cmd->pool, "StickyLBTableSize: %s (bindings)",
                            err);
    }
    sc->table_entries = v;
    return NULL;
}

const command_rec slb_cmds[] = {
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
                   "cookie NAME, address, or none"),
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
    AP_INIT_TAKE1("StickyLBNewSessions", set_keyword,
                  (void *)&new_sessions_directive,
                  RSRC_CONF | ACCESS_CONF,
                  "How new sessions are spread: requests (weighted round "
                  "robin, default), sessions (fewest bound sessions per "
                  "loadfactor), hash (consistent hashing of the key) or "
                  "busyness (fewest busy connections per loadfactor)"),
    AP_INIT_TAKE1("StickyLBStore", set_keyword, (void *)&store_directive,
                  RSRC_CONF | ACCESS_CONF,
                  "Where the balancer's stick table lives: shm (default), "
                  "memcached, or none (nothing remembered)"),
    AP_INIT_TAKE_ARGV("StickyLBMemcached", set_memcached, NULL, RSRC_CONF,
                      "memcached servers (libmemcached configuration string) "
                      "and options connect-timeout= timeout= retry= "
                      "failure-limit= replicas= pool= pool-wait= write= "
                      "queue= cache="),
    AP_INIT_TAKE_ARGV("StickyLBProbe", set_probe, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Active probe: tcp|http [method= path= host= expect= "
                      "body= interval= timeout= rise= fall= route= verify= "
                      "ca= resolve=], or none"),
    AP_INIT_TAKE_ARGV("StickyLBAgent", set_agent, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Agent check, the member says its state and weight: "
                      "http [path= host= header= interval= timeout= route= "
                      "verify= ca= resolve=], or none"),
    AP_INIT_TAKE_ARGV("StickyLBPassive", set_passive, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "Response statuses that count as failures of a member "
                      "[fall=n], or none"),
    AP_INIT_TAKE1("StickyLBSlowStart", set_slow_start, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds over which a member that came back ramps up to "
                  "its full share of new sessions (default 0: off)"),
    AP_INIT_TAKE1("StickyLBVariables", set_keyword,
                  (void *)&variables_directive, RSRC_CONF | ACCESS_CONF,
                  "Whether the STICKYLB_* request variables are set: auto "
                  "(default: when the configuration names one), on or off"),
    AP_INIT_TAKE_ARGV("StickyLBDiscover", set_discover, NULL, ACCESS_CONF,
                      "Members discovered at run time: dns NAME:PORT | srv "
                      "_SERVICE._PROTO.NAME | etcd ... [interval= "
                      "min-interval= max-interval= backoff-max= wait= "
                      "grace= flap-limit= flap-window= flap-hold= "
                      "route-prefix= loadfactor=] and the kind's options"),
    AP_INIT_TAKE1("StickyLBTableSize", set_table_size, NULL, RSRC_CONF,
                  "Bindings the embedded stick table holds (default "
                  "262144)"),
    { NULL }
};

/* ------------------------------------------------------------------ */
/* resolved balancers                                                   */

/* The effective directives of balancer b of server sr. */
static void effective(apr_pool_t *p, server_rec *main_s, server_rec *sr,
                      const proxy_balancer *b, slb_dir_conf *out)
{
    const slb_dir_conf *top = ap_get_module_config(main_s->lookup_defaults,
                                                   &stickylb_module);
    const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                  &stickylb_module);
    const slb_dir_conf *sec;

    *out = *top;
    if (sr != main_s) {
        const slb_dir_conf *vh = ap_get_module_config(sr->lookup_defaults,
                                                      &stickylb_module);
        if (vh && vh != top) {
            slb_dir_conf_merge(out, out, vh);
        }
    }
    sec = apr_hash_get(sc->sections, balancer_key(p, b->s->name),
                       APR_HASH_KEY_STRING);
    if (sec) {
        slb_dir_conf_merge(out, out, sec);
    }
}

/* 1 when an argument of a directive of the tree names a STICKYLB_
 * variable (a LogFormat, a Header, a RewriteCond...) */
static int names_our_variables(const ap_directive_t *d)
{
    for (; d; d = d->next) {
        if ((d->args && strstr(d->args, "STICKYLB_"))
            || names_our_variables(d->first_child)) {
            return 1;
        }
    }
    return 0;
}

void slb_config_resolve(apr_pool_t *pconf, apr_pool_t *ptemp,
                        server_rec *s)
{
    server_rec *sr;
    /* StickyLBVariables auto: the three STICKYLB_* variables cost table
     * adds on every request; set them where something can read them */
    int named = names_our_variables(ap_conftree);

    for (sr = s; sr; sr = sr->next) {
        proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                     &proxy_module);
        slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                &stickylb_module);
        int i, n;

        sc->resolved = NULL;
        sc->nresolved = 0;
        sc->balancers = NULL;
        sc->no_pre_request = 1;
        if (pc == NULL || pc->balancers == NULL || pc->balancers->nelts == 0) {
            continue;
        }
        n = pc->balancers->nelts;
        sc->resolved = apr_pcalloc(pconf, n * sizeof(*sc->resolved));
        sc->balancers = (proxy_balancer *)pc->balancers->elts;
        for (i = 0; i < n; i++) {
            proxy_balancer *b = &sc->balancers[i];
            slb_dir_conf eff;
            slb_balancer *rb = apr_palloc(pconf, sizeof(*rb));

            effective(ptemp, s, sr, b, &eff);
            slb_balancer_resolve(pconf, &eff, b->s->name, rb);
            if (rb->variables == SLB_VARS_AUTO) {
                rb->sets_vars = named;
            }
            slb_store_attach(rb, pconf);
            sc->resolved[i] = rb;
            /* store lookups need the pre_request hook (no lock held);
             * with stickysession= mod_proxy_balancer may pick the member
             * without the finder, so the state is made before it */
            if (b->s && !strcmp(b->s->lbpname, SLB_LBMETHOD_NAME)
                && (rb->uses_store || b->s->sticky[0])) {
                sc->no_pre_request = 0;
            }
        }
        sc->nresolved = n;
    }
}

const slb_balancer *slb_balancer_of(server_rec *s, proxy_balancer *b,
                                    apr_pool_t *p)
{
    const slb_srv_conf *sc = ap_get_module_config(s->module_config,
                                                  &stickylb_module);
    slb_balancer *rb;
    slb_dir_conf eff;
    server_rec *main_s;

    if (sc->balancers && b >= sc->balancers
        && b < sc->balancers + sc->nresolved) {
        return sc->resolved[b - sc->balancers];
    }
    /* not one of this server's balancers at startup (a caller holding
     * another server's copy): resolved for this use only */
    main_s = ap_server_conf ? ap_server_conf : s;
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, s,
                 SLB_LOG_TAG "balancer %s resolved outside post_config",
                 b->s->name);
    effective(p, main_s, s, b, &eff);
    rb = apr_palloc(p, sizeof(*rb));
    slb_balancer_resolve(p, &eff, b->s->name, rb);
    slb_store_attach(rb, p);
    return rb;
}

/* 1 when a scope of server sr (its own settings or a balancer section)
 * puts a balancer on store `kind` (for the check_config hook). */
int slb_config_any_store(server_rec *sr, apr_pool_t *ptemp,
                         slb_store_kind kind)
{
    const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                  &stickylb_module);
    const slb_dir_conf *base = ap_get_module_config(sr->lookup_defaults,
                                                    &stickylb_module);
    apr_hash_index_t *hi;

    if ((base->set & SLB_SET_STORE) && base->store == kind) {
        return 1;
    }
    for (hi = apr_hash_first(ptemp, sc->sections); hi;
         hi = apr_hash_next(hi)) {
        const slb_dir_conf *c = apr_hash_this_val(hi);
        if ((c->set & SLB_SET_STORE) && c->store == kind) {
            return 1;
        }
    }
    return 0;
}

/*
 * configtest (the check_config hook): what the balancer sections of server
 * sr say that names nothing or has no effect.  Sections are those recorded
 * while reading (inherited by virtual hosts: each is checked once, seen
 * holds them).  Returns an error message, or NULL after logging warnings.
 */
/*
 * configtest: the effective configuration of every stickylb balancer of
 * server sr (main_s: the main server), through slb_dir_conf_check.
 * Returns an error message, or NULL after logging warnings (each once:
 * seen holds them, a balancer of the main server is every vhost's too).
 */
const char *slb_config_check_balancers(server_rec *main_s, server_rec *sr,
                                       apr_pool_t *ptemp, apr_hash_t *seen)
{
    proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                 &proxy_module);
    int i;

    if (pc == NULL || pc->balancers == NULL) {
        return NULL;
    }
    for (i = 0; i < pc->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(pc->balancers, i, proxy_balancer);
        slb_dir_conf eff;
        const char *err, *warning = NULL;

        if (b->s == NULL || strcmp(b->s->lbpname, "stickylb") != 0) {
            continue;
        }
        effective(ptemp, main_s, sr, b, &eff);
        err = slb_dir_conf_check(ptemp, &eff, b->s->name, &warning);
        if (err) {
            return err;
        }
        if ((err = slb_dir_conf_check_cookies(ptemp, &eff)) != NULL) {
            return apr_psprintf(ptemp, "%s (balancer %s)", err, b->s->name);
        }
        if (warning && !apr_hash_get(seen, warning, APR_HASH_KEY_STRING)) {
            apr_hash_set(seen, warning, APR_HASH_KEY_STRING, "");
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                         SLB_LOG_TAG "SLB0005: %s", warning);
        }
    }
    return NULL;
}

const char *slb_config_check_sections(server_rec *sr, apr_pool_t *ptemp,
                                      apr_hash_t *seen)
{
    const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                  &stickylb_module);
    proxy_server_conf *pc = ap_get_module_config(sr->module_config,
                                                 &proxy_module);
    apr_hash_index_t *hi;

    if (pc == NULL || pc->balancers == NULL) {
        return NULL;
    }
    for (hi = apr_hash_first(ptemp, sc->sections); hi;
         hi = apr_hash_next(hi)) {
        const char *name = apr_hash_this_key(hi);
        const slb_dir_conf *c = apr_hash_this_val(hi);
        proxy_balancer *b = NULL;
        int i, j;

        if (apr_hash_get(seen, &c, sizeof(c))) {
            continue;
        }
        apr_hash_set(seen, apr_pmemdup(ptemp, &c, sizeof(c)), sizeof(c), "");
        for (i = 0; i < pc->balancers->nelts; i++) {
            proxy_balancer *x = &APR_ARRAY_IDX(pc->balancers, i,
                                               proxy_balancer);
            if (!strcmp(balancer_key(ptemp, x->s->name), name)) {
                b = x;
                break;
            }
        }
        if (b == NULL) {
            continue;
        }
        if (strcmp(b->s->lbpname, "stickylb") != 0) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                         SLB_LOG_TAG "SLB0004: the StickyLB directives in "
                         "<Proxy \"%s\"> have no effect: that balancer uses "
                         "lbmethod=%s (add \"ProxySet lbmethod=stickylb\", or "
                         "switch it in balancer-manager)", b->s->name,
                         b->s->lbpname);
            continue;
        }
        for (j = 0; j < (c->probes ? c->probes->nelts : 0)
                        + (c->agents ? c->agents->nelts : 0); j++) {
            int np = c->probes ? c->probes->nelts : 0;
            const slb_probe_conf *pr =
                j < np ? &APR_ARRAY_IDX(c->probes, j, slb_probe_conf)
                       : &APR_ARRAY_IDX(c->agents, j - np, slb_probe_conf);
            int found = pr->route == NULL;
            for (i = 0; !found && i < b->workers->nelts; i++) {
                proxy_worker *w = APR_ARRAY_IDX(b->workers, i,
                                                proxy_worker *);
                found = !strcmp(w->s->route, pr->route);
            }
            if (!found) {
                return apr_psprintf(ptemp, "%s: route=%s names "
                                    "no member of %s (the routes are the "
                                    "BalancerMember route= values)",
                                    pr->agent ? "StickyLBAgent"
                                              : "StickyLBProbe",
                                    pr->route, b->s->name);
            }
        }
        for (i = 0; i < b->workers->nelts; i++) {
            proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
            if (!*w->s->route) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0,
                             NULL, SLB_LOG_TAG "SLB0002: member %s of %s has "
                             "no route=: sessions on it cannot stick (add "
                             "route=NAME to its BalancerMember line)",
                             w->s->name, b->s->name);
            }
        }
    }
    return NULL;
}
