/*
 * stickylb_discover.c - discovery of members: the decisions (APR only).
 *
 * A source answers with the whole set of members it knows now
 * (slb_disc_entry); slb_disc_plan compares it with the discovered set the
 * balancer has and says, per member, what the glue does through the
 * balancer's growth slots:
 *
 *   new URL             ADD into a free growth slot (none free: counted,
 *                       skipped, tried again at the next answer)
 *   still there         kept; FACTOR when its loadfactor changed, ROUTE
 *                       when its route did
 *   gone from the set   DRAIN (LEAVING: no new sessions, bound sessions
 *                       stay), then DISABLE after grace= (GONE); the slot
 *                       stays the member's (httpd cannot remove one)
 *   back (same URL)     ENABLE in its own slot, with the route it has:
 *                       sessions still bound to it stick again
 *   back too often      HELD (damping): a member that came back
 *                       flap-limit= times within flap-window= stays
 *                       drained until it stayed flap-hold= in the answers
 *
 * Entries are checked first: a URL that is not scheme://host:port, a bad
 * route or loadfactor, a route another member owns: counted as malformed,
 * never applied.  A member the operator disabled or stopped is never
 * enabled, drained or disabled by us (the flags we set are in owned).
 */
#include <stdarg.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_hash.h>

#include "stickylb_discover.h"
#include "stickylb_etcd.h"
#include "stickylb_conf.h"
#include "stickylb_codec.h"

/* ------------------------------------------------------------------ */
/* the kinds of source: one line each                                   */

static const slb_disc_source_ops *const slb_disc_sources[] = {
    &slb_dns_ops,
    &slb_srv_ops,
    &slb_disc_etcd_ops,
    NULL
};

const slb_disc_source_ops *slb_disc_source(const char *name)
{
    int i;

    for (i = 0; name && slb_disc_sources[i]; i++) {
        if (!strcasecmp(slb_disc_sources[i]->name, name)) {
            return slb_disc_sources[i];
        }
    }
    return NULL;
}

const char *slb_disc_source_names(apr_pool_t *p)
{
    const char *out = "";
    int i;

    for (i = 0; slb_disc_sources[i]; i++) {
        out = apr_pstrcat(p, out, i ? ", " : "", slb_disc_sources[i]->name,
                          NULL);
    }
    return out;
}

const char *const slb_disc_common_options[] = {
    "interval=", "min-interval=", "max-interval=", "backoff-max=", "wait=",
    "grace=", "flap-limit=", "flap-window=", "flap-hold=", "route-prefix=",
    "loadfactor=", NULL
};

const char *slb_disc_check_options(apr_pool_t *p, apr_table_t *opts,
                                   const char *const *own)
{
    const apr_array_header_t *arr = apr_table_elts(opts);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i, j, n = 0;
    const char **valid;

    for (i = 0; own && own[i]; i++) {
        n++;
    }
    for (i = 0; slb_disc_common_options[i]; i++) {
        n++;
    }
    valid = apr_palloc(p, (n + 1) * sizeof(*valid));
    n = 0;
    for (i = 0; own && own[i]; i++) {
        valid[n++] = own[i];
    }
    for (i = 0; slb_disc_common_options[i]; i++) {
        valid[n++] = slb_disc_common_options[i];
    }
    valid[n] = NULL;
    for (i = 0; i < arr->nelts; i++) {
        const char *k = apr_pstrcat(p, e[i].key, "=", NULL);
        int found = 0;
        for (j = 0; own && own[j]; j++) {
            if (!strcasecmp(own[j], k)) {
                found = 1;
                break;
            }
        }
        if (!found) {
            return slb_unknown_option(
                p, apr_pstrcat(p, k, e[i].val ? e[i].val : "", NULL), valid);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* common options                                                       */

static void lower(char *s)
{
    for (; *s; s++) {
        *s = (char)apr_tolower(*s);
    }
}

void slb_disc_conf_init(slb_disc_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->interval = SLB_DISC_DEFAULT_INTERVAL;
    c->min_interval = apr_time_from_sec(1);
    c->max_interval = apr_time_from_sec(300);
    c->backoff_max = apr_time_from_sec(60);
    c->wait = 0;
    c->grace = apr_time_from_sec(60);
    c->flap_limit = 3;
    c->flap_window = apr_time_from_sec(60);
    c->flap_hold = apr_time_from_sec(30);
    c->route_prefix = "";
    c->loadfactor = 1;
}

#define DAY apr_time_from_sec(86400)

typedef struct {
    const char *name;            /* without '=' */
    apr_size_t off;
    apr_interval_time_t lo, hi;  /* durations */
} dur_opt;

static const dur_opt dur_opts[] = {
    { "interval", APR_OFFSETOF(slb_disc_conf, interval),
      apr_time_from_msec(100), DAY },
    { "min-interval", APR_OFFSETOF(slb_disc_conf, min_interval),
      apr_time_from_msec(100), DAY },
    { "max-interval", APR_OFFSETOF(slb_disc_conf, max_interval),
      apr_time_from_msec(100), DAY },
    { "backoff-max", APR_OFFSETOF(slb_disc_conf, backoff_max),
      apr_time_from_msec(100), DAY },
    { "wait", APR_OFFSETOF(slb_disc_conf, wait), 0,
      apr_time_from_sec(300) },
    { "grace", APR_OFFSETOF(slb_disc_conf, grace), 0, DAY },
    { "flap-window", APR_OFFSETOF(slb_disc_conf, flap_window),
      apr_time_from_sec(1), DAY },
    { "flap-hold", APR_OFFSETOF(slb_disc_conf, flap_hold), 0, DAY },
};
#define N_DUR ((int)(sizeof(dur_opts) / sizeof(dur_opts[0])))

#define SET_MIN 1u
#define SET_MAX 2u

const char *slb_disc_conf_parse(apr_pool_t *p, slb_disc_conf *c, int argc,
                                const char *const *argv, apr_table_t *rest)
{
    unsigned set = 0;
    int i, j;

    slb_disc_conf_init(c);
    for (i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        char *k;
        const char *v, *err = NULL;

        if (eq == NULL || eq == argv[i]) {
            return apr_psprintf(p, "'%s': options are key=value", argv[i]);
        }
        k = apr_pstrmemdup(p, argv[i], (apr_size_t)(eq - argv[i]));
        lower(k);
        v = eq + 1;
        for (j = 0; j < N_DUR; j++) {
            if (!strcmp(k, dur_opts[j].name)) {
                break;
            }
        }
        if (j < N_DUR) {
            apr_interval_time_t *f = (apr_interval_time_t *)(void *)
                                     ((char *)c + dur_opts[j].off);
            err = slb_parse_duration(p, v, SLB_UNIT_S, dur_opts[j].lo,
                                     dur_opts[j].hi, f);
            if (!strcmp(k, "min-interval")) {
                set |= SET_MIN;
            }
            else if (!strcmp(k, "max-interval")) {
                set |= SET_MAX;
            }
        }
        else if (!strcmp(k, "flap-limit") || !strcmp(k, "loadfactor")) {
            apr_int64_t n;
            int lf = k[0] == 'l';
            err = slb_parse_int(p, v, lf ? 1 : 0, lf ? 100 : 1000, &n);
            if (!err) {
                *(lf ? &c->loadfactor : &c->flap_limit) = (int)n;
            }
        }
        else if (!strcmp(k, "route-prefix")) {
            if (*v && (strlen(v) > 32 || !slb_value_ok(v, strlen(v))
                       || strchr(v, '.'))) {
                err = "must be at most 32 characters a cookie can carry, "
                      "no '.'";
            }
            c->route_prefix = v;
        }
        else {
            if (rest == NULL) {
                return slb_unknown_option(p, argv[i],
                                          slb_disc_common_options);
            }
            apr_table_set(rest, k, v);
            continue;
        }
        if (err) {
            return apr_psprintf(p, "'%s': %s", argv[i], err);
        }
    }
    if (!(set & SET_MIN) && c->min_interval > c->interval) {
        c->min_interval = c->interval;
    }
    if (!(set & SET_MAX) && c->max_interval < c->interval) {
        c->max_interval = c->interval;
    }
    if (c->min_interval > c->interval || c->interval > c->max_interval) {
        return apr_psprintf(p, "min-interval= (%s) <= interval= (%s) <= "
                            "max-interval= (%s) is needed",
                            slb_duration_str(p, c->min_interval),
                            slb_duration_str(p, c->interval),
                            slb_duration_str(p, c->max_interval));
    }
    if (c->backoff_max < c->min_interval) {
        return apr_psprintf(p, "backoff-max= (%s) must be at least "
                            "min-interval= (%s)",
                            slb_duration_str(p, c->backoff_max),
                            slb_duration_str(p, c->min_interval));
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* entries                                                              */

static const char *const schemes[] = {
    "http", "https", "ws", "wss", "h2", "h2c", "ajp", NULL
};

const char *slb_disc_url_norm(apr_pool_t *p, const char *url,
                              const char **why, const char **host,
                              int *port)
{
    const char *s, *h, *he, *q;
    char *scheme, *hostl, *out;
    long pn = 0;
    int i, v6 = 0;

    *why = NULL;
    if (url == NULL || (s = strstr(url, "://")) == NULL || s == url) {
        *why = "not scheme://host:port";
        return NULL;
    }
    scheme = apr_pstrmemdup(p, url, (apr_size_t)(s - url));
    lower(scheme);
    for (i = 0; schemes[i]; i++) {
        if (!strcmp(schemes[i], scheme)) {
            break;
        }
    }
    if (!schemes[i]) {
        *why = "scheme is not http, https, ws, wss, h2, h2c or ajp";
        return NULL;
    }
    h = s + 3;
    if (*h == '[') {
        v6 = 1;
        h++;
        he = strchr(h, ']');
        if (he == NULL || he == h) {
            *why = "bad IPv6 address";
            return NULL;
        }
        for (q = h; q < he; q++) {
            if (!apr_isxdigit(*q) && *q != ':' && *q != '.') {
                *why = "bad IPv6 address";
                return NULL;
            }
        }
        q = he + 1;
    }
    else {
        for (he = h; *he && *he != ':' && *he != '/'; he++) {
            if (!apr_isalnum(*he) && *he != '.' && *he != '-'
                && *he != '_') {
                *why = "bad host";
                return NULL;
            }
        }
        if (he == h) {
            *why = "no host";
            return NULL;
        }
        q = he;
    }
    if (*q != ':' || !apr_isdigit(q[1])) {
        *why = "no port";
        return NULL;
    }
    for (q++; apr_isdigit(*q); q++) {
        pn = pn * 10 + (*q - '0');
        if (pn > 65535) {
            break;
        }
    }
    if (pn < 1 || pn > 65535) {
        *why = "port must be 1 to 65535";
        return NULL;
    }
    if (*q == '/' && q[1] == '\0') {
        q++;
    }
    if (*q) {
        *why = "no path, query or user allowed";
        return NULL;
    }
    hostl = apr_pstrmemdup(p, h, (apr_size_t)(he - h));
    lower(hostl);
    out = apr_psprintf(p, v6 ? "%s://[%s]:%ld" : "%s://%s:%ld", scheme,
                       hostl, pn);
    if (strlen(out) >= SLB_DISC_URL_MAX) {
        *why = "longer than a member name can be (95 bytes)";
        return NULL;
    }
    if (host) {
        *host = hostl;
    }
    if (port) {
        *port = (int)pn;
    }
    return out;
}

const char *slb_disc_route_of(apr_pool_t *p, const char *prefix,
                              const char *host)
{
    char *r, *w;

    if (host == NULL || !*host) {
        return NULL;
    }
    r = apr_pstrcat(p, prefix ? prefix : "", host, NULL);
    for (w = r; *w; w++) {
        if (*w == '.' || *w == ':') {
            *w = '-';
        }
        else {
            *w = (char)apr_tolower(*w);
        }
    }
    if (!slb_route_ok(r, strlen(r))) {
        return NULL;
    }
    return r;
}

const char *slb_disc_first_label(apr_pool_t *p, const char *name)
{
    const char *e;
    char *l, *w;

    if (name == NULL) {
        return NULL;
    }
    for (e = name; *e && *e != '.'; e++) {
        if (!apr_isalnum(*e) && *e != '-' && *e != '_') {
            return NULL;
        }
    }
    if (e == name || e - name > SLB_MAX_ROUTE_LEN) {
        return NULL;
    }
    l = apr_pstrmemdup(p, name, (apr_size_t)(e - name));
    for (w = l; *w; w++) {
        *w = (char)apr_tolower(*w);
    }
    return l;
}

/* ------------------------------------------------------------------ */
/* names                                                                */

const char *slb_dm_state_name(slb_dm_state st)
{
    switch (st) {
    case SLB_DM_FREE:    return "free";
    case SLB_DM_ACTIVE:  return "active";
    case SLB_DM_HELD:    return "held";
    case SLB_DM_LEAVING: return "leaving";
    case SLB_DM_GONE:    return "gone";
    }
    return "?";
}

const char *slb_da_kind_name(slb_da_kind k)
{
    switch (k) {
    case SLB_DA_ADD:     return "add";
    case SLB_DA_ENABLE:  return "enable";
    case SLB_DA_FACTOR:  return "loadfactor";
    case SLB_DA_ROUTE:   return "route";
    case SLB_DA_DRAIN:   return "drain";
    case SLB_DA_DISABLE: return "disable";
    }
    return "?";
}

/* ------------------------------------------------------------------ */
/* the plan                                                             */

/* an entry checked: what it asks for */
typedef struct {
    const char *url, *route, *origin;
    int loadfactor;
    int member;          /* its set index, or -1 */
    int claim;           /* the set index of a GONE member whose route it
                          * takes, or -1 */
} wanted;

static void push(apr_array_header_t *actions, slb_da_kind k, int member)
{
    slb_disc_action *a = apr_array_push(actions);

    a->kind = k;
    a->member = member;
    a->flags = 0;
}

/* back: the flags we set are cleared (a later action of the same round
 * sees the member as it will be) */
static void enable(apr_array_header_t *actions, slb_disc_member *set, int i)
{
    if (set[i].owned) {
        push(actions, SLB_DA_ENABLE, i);
        APR_ARRAY_IDX(actions, actions->nelts - 1, slb_disc_action).flags
            = set[i].owned;
        set[i].owned = 0;
    }
}

static void note(apr_pool_t *p, apr_array_header_t *notes, const char *fmt,
                 ...)
{
    va_list ap;

    if (notes == NULL) {
        return;
    }
    va_start(ap, fmt);
    APR_ARRAY_PUSH(notes, const char *) = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
}

/* a configured member's URL, normalised when it can be */
static const char *fixed_url(apr_pool_t *p, const slb_disc_entry *f)
{
    const char *why, *u = slb_disc_url_norm(p, f->url, &why, NULL, NULL);

    return u ? u : f->url;
}

static apr_array_header_t *check_entries(apr_pool_t *p,
                                         const slb_disc_conf *c,
                                         const slb_disc_member *set, int cap,
                                         const apr_array_header_t *entries,
                                         const apr_array_header_t *fixed,
                                         slb_disc_counts *counts,
                                         apr_array_header_t *notes)
{
    apr_array_header_t *out = apr_array_make(p, entries->nelts + 1,
                                             sizeof(wanted));
    apr_hash_t *by_url = apr_hash_make(p), *by_route = apr_hash_make(p);
    apr_hash_t *fixed_urls = apr_hash_make(p);
    apr_hash_t *fixed_routes = apr_hash_make(p);
    int i, j;

    for (i = 0; fixed && i < fixed->nelts; i++) {
        const slb_disc_entry *f = &APR_ARRAY_IDX(fixed, i, slb_disc_entry);
        if (f->url) {
            apr_hash_set(fixed_urls, fixed_url(p, f), APR_HASH_KEY_STRING,
                         f);
        }
        if (f->route && *f->route) {
            apr_hash_set(fixed_routes, f->route, APR_HASH_KEY_STRING, f);
        }
    }
    for (i = 0; i < entries->nelts; i++) {
        const slb_disc_entry *e = &APR_ARRAY_IDX(entries, i, slb_disc_entry);
        const char *why = NULL, *host = NULL, *url, *route;
        const slb_disc_entry *f;
        const wanted *dup;
        wanted *w;
        int lf = e->loadfactor, claim;
        const char *origin = e->origin ? e->origin : "";

        url = slb_disc_url_norm(p, e->url, &why, &host, NULL);
        if (url == NULL) {
            counts->malformed++;
            note(p, notes, "%s: URL '%s': %s", origin,
                 e->url ? e->url : "(none)", why);
            continue;
        }
        if (e->route) {
            route = e->route;
            if (!slb_route_ok(route, strlen(route))) {
                counts->malformed++;
                note(p, notes, "%s: route '%s' of %s: 1 to %d characters "
                     "a cookie can carry", origin, route, url,
                     SLB_MAX_ROUTE_LEN);
                continue;
            }
        }
        else if ((route = slb_disc_route_of(p, c->route_prefix, host))
                 == NULL) {
            counts->malformed++;
            note(p, notes, "%s: no valid route from %s", origin, url);
            continue;
        }
        if (lf == 0) {
            lf = c->loadfactor;
        }
        if (lf < 1 || lf > 100) {
            counts->malformed++;
            note(p, notes, "%s: loadfactor %d of %s: 1 to 100", origin, lf,
                 url);
            continue;
        }
        if (apr_hash_get(fixed_urls, url, APR_HASH_KEY_STRING)) {
            counts->configured++;
            continue;
        }
        if ((f = apr_hash_get(fixed_routes, route, APR_HASH_KEY_STRING))) {
            counts->malformed++;
            note(p, notes, "%s: route '%s' of %s is the configured member "
                 "%s's", origin, route, url, f->url);
            continue;
        }
        if ((dup = apr_hash_get(by_url, url, APR_HASH_KEY_STRING))) {
            if (strcmp(dup->route, route)) {
                counts->malformed++;
                note(p, notes, "%s: %s is in the answer twice, with routes "
                     "'%s' and '%s'", origin, url, dup->route, route);
            }
            continue;
        }
        if ((dup = apr_hash_get(by_route, route, APR_HASH_KEY_STRING))) {
            counts->malformed++;
            note(p, notes, "%s: route '%s' of %s is %s's already", origin,
                 route, url, dup->url);
            continue;
        }
        /* a route a discovered member of another URL still has */
        for (j = 0; j < cap; j++) {
            if (set[j].state != SLB_DM_FREE && !strcmp(set[j].route, route)
                && strcmp(set[j].url, url)) {
                break;
            }
        }
        claim = -1;
        if (j < cap && set[j].state == SLB_DM_GONE) {
            /* a member that left for good gives its route up (its slot,
             * disabled, keeps no route) */
            claim = j;
        }
        else if (j < cap) {
            counts->malformed++;
            note(p, notes, "%s: route '%s' of %s is the discovered member "
                 "%s's (%s)", origin, route, url, set[j].url,
                 slb_dm_state_name((slb_dm_state)set[j].state));
            continue;
        }
        w = apr_array_push(out);
        w->url = url;
        w->route = route;
        w->origin = origin;
        w->loadfactor = lf;
        w->member = -1;
        w->claim = claim;
        apr_hash_set(by_url, url, APR_HASH_KEY_STRING, w);
        apr_hash_set(by_route, route, APR_HASH_KEY_STRING, w);
    }
    return out;
}

/* the route w takes from a member that left for good */
static void take_route(slb_disc_member *set, wanted *w,
                       apr_array_header_t *actions)
{
    /* (the holder may have taken another route in this round) */
    if (w->claim >= 0 && !strcmp(set[w->claim].route, w->route)) {
        set[w->claim].route[0] = '\0';
        push(actions, SLB_DA_ROUTE, w->claim);
    }
    w->claim = -1;
}

static void set_state(slb_disc_member *m, slb_dm_state st, apr_time_t now)
{
    m->state = st;
    m->since = now;
}

/* grace over: disabled; held long enough: released */
static void timers(const slb_disc_conf *c, slb_disc_member *set, int cap,
                   apr_time_t now, apr_array_header_t *actions,
                   slb_disc_counts *counts)
{
    int i;

    for (i = 0; i < cap; i++) {
        slb_disc_member *m = &set[i];

        if (m->state == SLB_DM_LEAVING && now - m->since >= c->grace) {
            set_state(m, SLB_DM_GONE, now);
            counts->disabled++;
            if (!m->operator_off && !(m->owned & SLB_DISC_F_DISABLE)) {
                m->owned |= SLB_DISC_F_DISABLE;
                push(actions, SLB_DA_DISABLE, i);
            }
        }
        else if (m->state == SLB_DM_HELD && now - m->since >= c->flap_hold) {
            set_state(m, SLB_DM_ACTIVE, now);
            counts->released++;
            enable(actions, set, i);
        }
    }
}

int slb_disc_plan(apr_pool_t *p, const slb_disc_conf *c,
                  slb_disc_member *set, int cap,
                  const apr_array_header_t *entries,
                  const apr_array_header_t *fixed, int free_slots,
                  apr_time_t now, apr_array_header_t *actions,
                  slb_disc_counts *counts, apr_array_header_t *notes)
{
    apr_array_header_t *want = NULL;
    apr_hash_t *by_url = NULL;
    int before = actions->nelts;
    int i;

    memset(counts, 0, sizeof(*counts));
    /* the timers first: a route of a member whose grace is over is free
     * for an entry of this answer */
    timers(c, set, cap, now, actions, counts);
    if (entries) {
        want = check_entries(p, c, set, cap, entries, fixed, counts, notes);
        by_url = apr_hash_make(p);
        for (i = 0; i < want->nelts; i++) {
            wanted *w = &APR_ARRAY_IDX(want, i, wanted);
            apr_hash_set(by_url, w->url, APR_HASH_KEY_STRING, w);
        }
    }

    /* the members known: kept, updated, left or back */
    for (i = 0; entries && i < cap; i++) {
        slb_disc_member *m = &set[i];
        wanted *w;

        if (m->state == SLB_DM_FREE) {
            continue;
        }
        w = apr_hash_get(by_url, m->url, APR_HASH_KEY_STRING);
        if (w == NULL) {
            if (m->state == SLB_DM_ACTIVE || m->state == SLB_DM_HELD) {
                set_state(m, SLB_DM_LEAVING, now);
                counts->left++;
                if (!m->operator_off && !(m->owned & SLB_DISC_F_DRAIN)) {
                    m->owned |= SLB_DISC_F_DRAIN;
                    push(actions, SLB_DA_DRAIN, i);
                }
            }
            continue;
        }
        w->member = i;
        m->seen = now;
        apr_cpystrn(m->origin, w->origin, sizeof(m->origin));
        if (strcmp(m->route, w->route)) {
            take_route(set, w, actions);
            apr_cpystrn(m->route, w->route, sizeof(m->route));
            push(actions, SLB_DA_ROUTE, i);
            counts->updated++;
        }
        if (m->loadfactor != w->loadfactor) {
            m->loadfactor = w->loadfactor;
            push(actions, SLB_DA_FACTOR, i);
            counts->updated++;
        }
        if (m->state == SLB_DM_LEAVING || m->state == SLB_DM_GONE) {
            if (m->flap_start == 0 || now - m->flap_start > c->flap_window) {
                m->flap_start = now;
                m->returns = 0;
            }
            m->returns++;
            if (c->flap_limit > 0 && m->returns >= (apr_uint32_t)c->flap_limit) {
                /* flapping: stays out (drained, or disabled) until it
                 * stayed flap-hold= */
                set_state(m, SLB_DM_HELD, now);
                counts->held++;
                if (!m->operator_off && !(m->owned & SLB_DISC_F_DRAIN)) {
                    m->owned |= SLB_DISC_F_DRAIN;
                    push(actions, SLB_DA_DRAIN, i);
                }
            }
            else {
                set_state(m, SLB_DM_ACTIVE, now);
                counts->returned++;
                enable(actions, set, i);
            }
        }
    }

    /* grace= 0: what left now is disabled now */
    timers(c, set, cap, now, actions, counts);

    /* new members, while growth slots are free */
    for (i = 0; want && i < want->nelts; i++) {
        wanted *w = &APR_ARRAY_IDX(want, i, wanted);
        slb_disc_member *m = NULL;
        int j;

        if (w->member >= 0) {
            continue;
        }
        for (j = 0; free_slots > 0 && j < cap; j++) {
            if (set[j].state == SLB_DM_FREE) {
                m = &set[j];
                break;
            }
        }
        if (m == NULL) {
            counts->full++;
            continue;
        }
        free_slots--;
        take_route(set, w, actions);
        memset(m, 0, sizeof(*m));
        apr_cpystrn(m->url, w->url, sizeof(m->url));
        apr_cpystrn(m->route, w->route, sizeof(m->route));
        apr_cpystrn(m->origin, w->origin, sizeof(m->origin));
        m->loadfactor = w->loadfactor;
        m->added = m->seen = now;
        set_state(m, SLB_DM_ACTIVE, now);
        w->member = j;
        counts->added++;
        push(actions, SLB_DA_ADD, j);
    }
    return actions->nelts - before;
}

apr_interval_time_t slb_disc_next(const slb_disc_conf *c, slb_disc_result r,
                                  apr_interval_time_t ttl, int failures)
{
    apr_interval_time_t d;
    int i;

    if (r != SLB_DISC_FAILED) {
        if (ttl <= 0) {
            return c->interval;
        }
        return ttl < c->min_interval   ? c->min_interval
               : ttl > c->max_interval ? c->max_interval
                                       : ttl;
    }
    d = c->min_interval;
    for (i = 1; i < failures && d < c->backoff_max; i++) {
        d *= 2;
    }
    return d > c->backoff_max ? c->backoff_max : d;
}
