/*
 * stickylb_conf.c - the configuration model: argument parsers, the merge
 * of scopes and the resolution of a balancer (see stickylb_conf.h).
 * APR only; tests/unit/check_conf.c covers every function.
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "stickylb_conf.h"

/* ------------------------------------------------------------------ */
/* argument parsers                                                      */

/* digits only, no sign, no overflow: 1 and *out */
static int whole_number(const char *s, const char **end, apr_int64_t *out)
{
    apr_int64_t v = 0;

    if (!apr_isdigit(*s)) {
        return 0;
    }
    for (; apr_isdigit(*s); s++) {
        int d = *s - '0';
        if (v > (APR_INT64_MAX - d) / 10) {
            return 0;            /* would overflow */
        }
        v = v * 10 + d;
    }
    *end = s;
    *out = v;
    return 1;
}

const char *slb_parse_int(apr_pool_t *p, const char *arg, apr_int64_t lo,
                          apr_int64_t hi, apr_int64_t *out)
{
    const char *end;
    apr_int64_t v;

    if (!whole_number(arg, &end, &v) || *end || v < lo || v > hi) {
        return apr_psprintf(p, "'%s' must be a whole number from %"
                            APR_INT64_T_FMT " to %" APR_INT64_T_FMT,
                            arg, lo, hi);
    }
    *out = v;
    return NULL;
}

/* Edits from a to b (optimal string alignment, without case), or 3 when
 * more than 2; both at most SLB_NEAR_MAX bytes. */
#define SLB_NEAR_MAX 64
static int edits(const char *a, apr_size_t la, const char *b, apr_size_t lb)
{
    int rows[3][SLB_NEAR_MAX + 1];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2];
    apr_size_t i, j;

    if ((la > lb ? la - lb : lb - la) > 2) {
        return 3;
    }
    for (j = 0; j <= lb; j++) {
        prev[j] = (int)j;
    }
    for (i = 1; i <= la; i++) {
        int best = cur[0] = (int)i;
        for (j = 1; j <= lb; j++) {
            int ca = apr_tolower((unsigned char)a[i - 1]);
            int cb = apr_tolower((unsigned char)b[j - 1]);
            int d = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < d) {
                d = prev[j] + 1;
            }
            if (cur[j - 1] + 1 < d) {
                d = cur[j - 1] + 1;
            }
            if (i > 1 && j > 1 && ca == apr_tolower((unsigned char)b[j - 2])
                && apr_tolower((unsigned char)a[i - 2]) == cb
                && pp[j - 2] + 1 < d) {
                d = pp[j - 2] + 1;
            }
            cur[j] = d;
            if (d < best) {
                best = d;
            }
        }
        if (best > 2) {
            return 3;            /* every later row is at least as far */
        }
        {
            int *t = pp;
            pp = prev;
            prev = cur;
            cur = t;
        }
    }
    return prev[lb] > 2 ? 3 : prev[lb];
}

/* slb_near_word on the first n bytes of w */
static const char *near_word(const char *w, apr_size_t n,
                             const char *const *words)
{
    const char *best = NULL;
    int best_d = 3, i;

    if (n > SLB_NEAR_MAX) {
        return NULL;
    }
    for (i = 0; words[i]; i++) {
        apr_size_t l = strlen(words[i]);
        int d;

        if (l > SLB_NEAR_MAX) {
            continue;
        }
        d = edits(w, n, words[i], l);
        if (d < best_d && (apr_size_t)d < n) {
            best = words[i];
            best_d = d;
        }
    }
    return best;
}

const char *slb_near_word(const char *w, const char *const *words)
{
    return near_word(w, strlen(w), words);
}

const char *slb_unknown_option(apr_pool_t *p, const char *w,
                               const char *const *valid)
{
    const char *eq = strchr(w, '=');
    const char *near, *list = "";
    int i;

    /* "key=value" as "key=": the value says nothing about the name */
    near = near_word(w, eq ? (apr_size_t)(eq - w) + 1 : strlen(w), valid);
    for (i = 0; valid[i]; i++) {
        list = apr_pstrcat(p, list, i ? ", " : "", valid[i], NULL);
    }
    if (near) {
        return apr_psprintf(p, "unknown option '%s': did you mean %s? "
                            "(expected %s)", w, near, list);
    }
    return apr_psprintf(p, "unknown option '%s' (expected %s)", w, list);
}

const char *slb_parse_keyword(apr_pool_t *p, const char *arg,
                              const slb_keyword *words, int *out)
{
    const char *list = "";
    int i;

    for (i = 0; words[i].name; i++) {
        if (!strcasecmp(arg, words[i].name)) {
            *out = words[i].value;
            return NULL;
        }
    }
    for (i = 0; words[i].name; i++) {
        list = apr_pstrcat(p, list, i == 0 ? "" : words[i + 1].name ? ", "
                                                               : " or ",
                           words[i].name, NULL);
    }
    {
        const char *names[16], *near;
        for (i = 0; words[i].name && i < 15; i++) {
            names[i] = words[i].name;
        }
        names[i] = NULL;
        near = slb_near_word(arg, names);
        if (near) {
            return apr_psprintf(p, "'%s' must be %s (did you mean %s?)", arg,
                                list, near);
        }
    }
    return apr_psprintf(p, "'%s' must be %s", arg, list);
}

const char *slb_duration_str(apr_pool_t *p, apr_interval_time_t t)
{
    if (t % APR_USEC_PER_SEC == 0) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT " s",
                            (apr_int64_t)apr_time_sec(t));
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT " ms",
                        (apr_int64_t)(t / 1000));
}

apr_uint32_t slb_duration_secs(apr_interval_time_t t)
{
    apr_int64_t s;

    if (t <= 0) {
        return 0;
    }
    s = (t + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
    return s > (apr_int64_t)0xffffffffu ? 0xffffffffu : (apr_uint32_t)s;
}

const char *slb_parse_duration(apr_pool_t *p, const char *arg, slb_unit unit,
                               apr_interval_time_t lo, apr_interval_time_t hi,
                               apr_interval_time_t *out)
{
    const char *end;
    apr_int64_t v, scale;

    if (whole_number(arg, &end, &v)) {
        if (*end == '\0') {
            scale = unit == SLB_UNIT_MS ? 1000 : APR_USEC_PER_SEC;
        }
        else if (!strcmp(end, "ms")) {
            scale = 1000;
        }
        else if (!strcmp(end, "s")) {
            scale = APR_USEC_PER_SEC;
        }
        else {
            scale = 0;
        }
        if (scale && v <= APR_INT64_MAX / scale) {
            v *= scale;
            if (v >= lo && v <= hi) {
                *out = v;
                return NULL;
            }
        }
    }
    return apr_psprintf(p, "'%s' must be a duration from %s to %s (a whole "
                        "number of %s, or with ms or s: 500ms, 2s)", arg,
                        slb_duration_str(p, lo), slb_duration_str(p, hi),
                        unit == SLB_UNIT_MS ? "milliseconds" : "seconds");
}

const char *slb_parse_cookie_names(apr_pool_t *p, int argc,
                                   const char *const *argv,
                                   apr_array_header_t **out)
{
    int i;

    if (argc < 1) {
        return "needs one or more cookie names, or none";
    }
    *out = apr_array_make(p, argc, sizeof(const char *));
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        return NULL;
    }
    if (argc > SLB_MAX_COOKIE_NAMES) {
        return apr_psprintf(p, "at most %d cookie names",
                            SLB_MAX_COOKIE_NAMES);
    }
    for (i = 0; i < argc; i++) {
        if (!slb_is_token(argv[i], 128)) {
            return apr_psprintf(p, "'%s' is not a valid cookie name",
                                argv[i]);
        }
        if (!strcasecmp(argv[i], "none")) {
            return "'none' must stand alone";
        }
        APR_ARRAY_PUSH(*out, const char *) = argv[i];
    }
    return NULL;
}

const char *slb_parse_key(apr_pool_t *p, const char *kind, const char *name,
                          slb_key_source *out)
{
    out->name = name;
    out->slot = 0;
    if (!strcasecmp(kind, "header") || !strcasecmp(kind, "query")
        || !strcasecmp(kind, "cookie")) {
        out->kind = !strcasecmp(kind, "header") ? SLB_KEY_HEADER
                    : !strcasecmp(kind, "query") ? SLB_KEY_QUERY
                                                 : SLB_KEY_COOKIE;
        if (name == NULL || !slb_is_token(name, 128)) {
            return apr_psprintf(p, "%s needs a valid name ('%s')", kind,
                                name ? name : "");
        }
        if (out->kind == SLB_KEY_HEADER && !strcasecmp(name, "Cookie")) {
            /* the whole header: every cookie, their order and spacing */
            return "header Cookie would key on the whole Cookie header "
                   "(all the client's cookies, in its order): to stick on "
                   "one cookie the client sends, write StickyLBKey cookie "
                   "NAME (e.g. StickyLBKey cookie JSESSIONID)";
        }
        return NULL;
    }
    if (!strcasecmp(kind, "address")) {
        out->kind = SLB_KEY_ADDRESS;
        return name ? "address takes no name" : NULL;
    }
    {
        static const char *const kinds[] = { "header", "query", "cookie",
                                             "address", "none", NULL };
        const char *near = slb_near_word(kind, kinds);
        return apr_psprintf(p, "unknown key '%s'%s%s%s (expected header "
                            "NAME, query NAME, cookie NAME, address or "
                            "none)", kind,
                            near ? ": did you mean " : "", near ? near : "",
                            near ? "?" : "");
    }
}

/* "500" or "502-504": 1 and the range */
static int status_range(const char *w, slb_range *r)
{
    const char *end;
    apr_int64_t lo, hi;

    if (!whole_number(w, &end, &lo)) {
        return 0;
    }
    hi = lo;
    if (*end == '-' && !whole_number(end + 1, &end, &hi)) {
        return 0;
    }
    if (*end || lo < 100 || hi > 599 || hi < lo) {
        return 0;
    }
    r->lo = (int)lo;
    r->hi = (int)hi;
    return 1;
}

/* the options of StickyLBPassive, with their ranges */
static const struct {
    const char *name;            /* "fall=" */
    apr_int64_t lo, hi;
    size_t off;
} passive_options[] = {
    { "fall=", 1, 100, APR_OFFSETOF(slb_passive_conf, fall) },
    { "ratio=", 1, 100, APR_OFFSETOF(slb_passive_conf, ratio) },
    { "window=", 1, 3600, APR_OFFSETOF(slb_passive_conf, window) },
    { "min-requests=", 1, 100000,
      APR_OFFSETOF(slb_passive_conf, min_requests) },
    { "min-clients=", 1, SLB_PASSIVE_CLIENTS,
      APR_OFFSETOF(slb_passive_conf, min_clients) },
    { "max-ejected=", 1, 100, APR_OFFSETOF(slb_passive_conf, max_ejected) },
    { "eject=", 1, 86400, APR_OFFSETOF(slb_passive_conf, eject) },
    { "eject-max=", 1, 86400, APR_OFFSETOF(slb_passive_conf, eject_max) }
};
#define N_PASSIVE_OPTIONS \
    (sizeof(passive_options) / sizeof(passive_options[0]))

const char *slb_parse_passive(apr_pool_t *p, int argc,
                              const char *const *argv,
                              apr_array_header_t **ranges,
                              slb_passive_conf *opts)
{
    int i;
    unsigned given = 0;          /* bit k: passive_options[k] */

    *ranges = apr_array_make(p, 4, sizeof(slb_range));
    slb_passive_conf_init(opts);
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        return NULL;
    }
    for (i = 0; i < argc; i++) {
        const char *w = argv[i];
        slb_range r;
        size_t k;

        for (k = 0; k < N_PASSIVE_OPTIONS; k++) {
            size_t n = strlen(passive_options[k].name);
            if (!strncasecmp(w, passive_options[k].name, n)) {
                apr_int64_t v;
                if (slb_parse_int(p, w + n, passive_options[k].lo,
                                  passive_options[k].hi, &v) != NULL) {
                    return apr_psprintf(p, "'%s' must be %s%d..%d", w,
                                        passive_options[k].name,
                                        (int)passive_options[k].lo,
                                        (int)passive_options[k].hi);
                }
                *(int *)((char *)opts + passive_options[k].off) = (int)v;
                given |= 1u << k;
                break;
            }
        }
        if (k < N_PASSIVE_OPTIONS) {
            continue;
        }
        if (!status_range(w, &r)) {
            static const char *const options[] = {
                "fall=", "ratio=", "window=", "min-requests=",
                "min-clients=", "max-ejected=", "eject=", "eject-max=", NULL
            };
            if (!strcasecmp(w, "none")) {
                return "'none' must stand alone";
            }
            if (!apr_isdigit(*w)) {
                /* a word, not a number: an option, or a misspelt one */
                return slb_unknown_option(p, w, options);
            }
            return apr_psprintf(p, "'%s' is not a status or range like "
                                "502-504", w);
        }
        *(slb_range *)apr_array_push(*ranges) = r;
    }
    if ((*ranges)->nelts == 0) {
        return "needs statuses (e.g. 500 502-504), or none";
    }
    /* bits: 0 fall=, 1 ratio=, 2 window=, 3 min-requests=, 4 min-clients=,
     * 6 eject=, 7 eject-max= */
    if ((given & 1u) && (given & 2u)) {
        return "fall= (failures in a row) and ratio= (a share of the "
               "responses over window=) are two ways of counting: give "
               "one";
    }
    if (!(given & 2u) && (given & (7u << 2))) {
        return apr_psprintf(p, "%s counts only with ratio= (e.g. ratio=50 "
                            "window=10 min-requests=20)",
                            (given & 4u) ? "window=" : (given & 8u)
                            ? "min-requests=" : "min-clients=");
    }
    if ((given & (1u << 7)) && !(given & (1u << 6))) {
        return "eject-max= caps eject=: give eject= too (e.g. eject=30 "
               "eject-max=300)";
    }
    if (opts->eject > 0 && opts->eject_max < opts->eject) {
        if (given & (1u << 7)) {
            return apr_psprintf(p, "eject-max=%d is shorter than eject=%d",
                                opts->eject_max, opts->eject);
        }
        opts->eject_max = opts->eject;   /* the default cap, at least */
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* scopes                                                                */

void slb_dir_conf_init(slb_dir_conf *c)
{
    memset(c, 0, sizeof(*c));
    slb_cookie_conf_init(&c->route_cookie);
    slb_passive_conf_init(&c->passive_opts);
}

void slb_dir_conf_merge(slb_dir_conf *out, const slb_dir_conf *base,
                        const slb_dir_conf *add)
{
    slb_dir_conf c = *base;

#define TAKE(bit, field) \
    if (add->set & (bit)) { c.field = add->field; }
    TAKE(SLB_SET_SESSION_COOKIES, session_cookies)
    TAKE(SLB_SET_PATH_PARAM, path_param)
    TAKE(SLB_SET_SEPARATOR, separator)
    if (add->set & SLB_SET_ROUTE_COOKIE) {
        c.route_cookie = add->route_cookie;
        c.ring = add->ring;
    }
    TAKE(SLB_SET_LEARN_COOKIES, learn_cookies)
    TAKE(SLB_SET_KEYS, keys)
    TAKE(SLB_SET_IDLE_TIMEOUT, idle_timeout)
    TAKE(SLB_SET_MAX_LIFETIME, max_lifetime)
    TAKE(SLB_SET_NAMESPACE, ns)
    TAKE(SLB_SET_PLACEMENT, placement)
    TAKE(SLB_SET_STORE, store)
    TAKE(SLB_SET_PROBES, probes)
    TAKE(SLB_SET_AGENTS, agents)
    if (add->set & SLB_SET_PASSIVE) {
        c.passive = add->passive;
        c.passive_opts = add->passive_opts;
    }
    TAKE(SLB_SET_SLOW_START, slow_start)
    TAKE(SLB_SET_VARIABLES, variables)
#undef TAKE
    c.set = base->set | add->set;
    *out = c;
}

/* ------------------------------------------------------------------ */
/* resolution                                                            */

static const apr_array_header_t *or_empty(apr_pool_t *p,
                                          const apr_array_header_t *a,
                                          int elt_size)
{
    return a ? a : apr_array_make(p, 1, elt_size);
}

/* the names of c's key cookies and learned cookies together */
static int count_cookie_keys(const apr_array_header_t *keys)
{
    int i, n = 0;

    for (i = 0; keys && i < keys->nelts; i++) {
        n += APR_ARRAY_IDX(keys, i, slb_key_source).kind == SLB_KEY_COOKIE;
    }
    return n;
}

const char *slb_dir_conf_check_cookies(apr_pool_t *p, const slb_dir_conf *c)
{
    int i, j, nlearn = c->learn_cookies ? c->learn_cookies->nelts : 0;

    for (i = 0; c->keys && i < c->keys->nelts; i++) {
        const slb_key_source *k = &APR_ARRAY_IDX(c->keys, i, slb_key_source);
        if (k->kind != SLB_KEY_COOKIE) {
            continue;
        }
        for (j = 0; j < nlearn; j++) {
            if (!strcmp(APR_ARRAY_IDX(c->learn_cookies, j, const char *),
                        k->name)) {
                return apr_psprintf(p, "StickyLBKey cookie %s: %s is a "
                                    "StickyLBLearnCookie too (learned: only "
                                    "ids a member issued are bound; key: "
                                    "any id the client sends is bound); "
                                    "keep one of the two", k->name,
                                    k->name);
            }
        }
    }
    if (nlearn + count_cookie_keys(c->keys) > SLB_MAX_COOKIE_NAMES) {
        return apr_psprintf(p, "StickyLBLearnCookie and StickyLBKey cookie "
                            "name %d cookies together: at most %d",
                            nlearn + count_cookie_keys(c->keys),
                            SLB_MAX_COOKIE_NAMES);
    }
    return NULL;
}

/*
 * The cookies the store reads: the learned ones, then the key cookies,
 * each key cookie given its slot (a copy of the keys: the scope's array
 * may be shared by other balancers).
 */
static void resolve_cookie_keys(apr_pool_t *p, slb_balancer *out)
{
    int n = count_cookie_keys(out->keys), i;
    apr_array_header_t *names, *keys;

    if (n == 0) {
        out->read_cookies = out->learn_cookies->nelts > 0 ? out->learn_cookies
                                                          : NULL;
        return;
    }
    names = apr_array_copy(p, out->learn_cookies);
    keys = apr_array_copy(p, out->keys);
    for (i = 0; i < keys->nelts; i++) {
        slb_key_source *k = &APR_ARRAY_IDX(keys, i, slb_key_source);
        if (k->kind == SLB_KEY_COOKIE) {
            k->slot = names->nelts;
            APR_ARRAY_PUSH(names, const char *) = k->name;
        }
    }
    out->read_cookies = names;
    out->keys = keys;
}

void slb_balancer_resolve(apr_pool_t *p, const slb_dir_conf *c,
                          const char *name, slb_balancer *out)
{
    unsigned set = c->set;
    slb_cookie_conf *rc = apr_pmemdup(p, &c->route_cookie,
                                      sizeof(c->route_cookie));

    memset(out, 0, sizeof(*out));
    out->name = apr_pstrdup(p, name);
    out->ns = (set & SLB_SET_NAMESPACE) ? c->ns : out->name;

    if (set & SLB_SET_SESSION_COOKIES) {
        out->spec.session_cookies = c->session_cookies;
    }
    else {
        apr_array_header_t *a = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(a, const char *) = SLB_DEFAULT_SESSION_COOKIE;
        out->spec.session_cookies = a;
    }
    out->spec.path_param = (set & SLB_SET_PATH_PARAM)
                               ? c->path_param : SLB_DEFAULT_PATH_PARAM;
    out->spec.separator = (set & SLB_SET_SEPARATOR) ? c->separator
                                                     : SLB_DEFAULT_SEPARATOR;
    out->ring = rc->name ? c->ring : NULL;
    /* a signed route cookie is read by the glue (it verifies), not by the
     * codec */
    out->spec.route_cookie = out->ring ? NULL : rc->name;
    out->route_cookie = rc;
    if (rc->name) {
        /* the attributes after "NAME=<value>", built once */
        out->cookie_attrs = slb_cookie_build(p, rc, "") + strlen(rc->name)
                            + 1;
    }
    out->learn_cookies = or_empty(p, c->learn_cookies, sizeof(const char *));
    out->keys = or_empty(p, c->keys, sizeof(slb_key_source));
    resolve_cookie_keys(p, out);
    out->lifetime.idle = slb_duration_secs((set & SLB_SET_IDLE_TIMEOUT)
                                               ? c->idle_timeout
                                               : SLB_DEFAULT_IDLE_TIMEOUT);
    out->lifetime.max = slb_duration_secs(c->max_lifetime);
    out->placement = c->placement;
    out->store = c->store;
    out->probes = or_empty(p, c->probes, sizeof(slb_probe_conf));
    out->agents = or_empty(p, c->agents, sizeof(slb_probe_conf));
    out->passive = or_empty(p, c->passive, sizeof(slb_range));
    if (set & SLB_SET_PASSIVE) {
        out->passive_opts = c->passive_opts;
    }
    else {
        slb_passive_conf_init(&out->passive_opts);
    }
    out->slow_start = c->slow_start;
    out->weights_vary = out->slow_start > 0 || out->agents->nelts > 0;
    out->variables = c->variables;
    /* auto is decided by the glue, which can read the whole configuration */
    out->sets_vars = c->variables != SLB_VARS_OFF;

    out->learns = out->learn_cookies->nelts > 0;
    /* StickyLBStore none: the keys are read by the hash only (in the
     * finder), never looked up or bound */
    out->uses_store = (out->learns || out->keys->nelts > 0)
                      && out->store != SLB_STORE_NONE;
    out->inserts_cookie = rc->name && rc->insert;
    out->strips_cookie = rc->name && rc->indirect;
    slb_cookie_plan_make(&out->plan, &out->spec, out->read_cookies);
}

const char *slb_dir_conf_check(apr_pool_t *p, const slb_dir_conf *c,
                               const char *name, const char **warning)
{
    int learns = c->learn_cookies && c->learn_cookies->nelts > 0;
    int keys = c->keys && c->keys->nelts > 0;

    if (warning) {
        *warning = NULL;
    }
    if (c->store == SLB_STORE_NONE && learns) {
        return apr_psprintf(p, "StickyLBStore none in %s: StickyLBLearnCookie "
                            "needs a stick table to learn the ids into (use "
                            "StickyLBStore shm or memcached, or "
                            "StickyLBLearnCookie none)", name);
    }
    if (c->store == SLB_STORE_NONE && keys
        && c->placement != SLB_PLACE_HASH) {
        return apr_psprintf(p, "StickyLBStore none in %s: its StickyLBKey "
                            "keys are remembered nowhere, so they stick only "
                            "when hashed (add StickyLBNewSessions hash, or "
                            "use StickyLBStore shm)", name);
    }
    if (warning && c->placement == SLB_PLACE_HASH && !keys && !learns) {
        *warning = apr_psprintf(p, "StickyLBNewSessions hash in %s has no "
                                "key to hash (StickyLBKey or "
                                "StickyLBLearnCookie): new sessions are "
                                "placed as with requests", name);
    }
    return NULL;
}

const char *slb_balancer_cookie(apr_pool_t *p, const slb_balancer *b,
                                const char *value)
{
    return apr_pstrcat(p, b->route_cookie->name, "=", value, b->cookie_attrs,
                       NULL);
}
