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
 *       standby, nofailover), or choose a member by the walk of
 *       mod_proxy's ap_proxy_balancer_get_best_worker (slb_best_member in
 *       the core: lbset, spares, standby, drain, without that function's
 *       per-call pool) weighted by loadfactor.  Safe to call again on
 *       failover retries.
 *   response filter (also on error responses): insert the route cookie
 *       once, when the member's route differs from the client's cookie.
 *
 * The cookie/route codec and the selection logic live in stickylb_codec.c
 * and stickylb_select.c, which do not depend on httpd.
 */
#include "apr_strings.h"
#include "apr_lib.h"
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
#include "stickylb_table.h"


#define SLB_FILTER_NAME   "STICKYLB"

/* the response filter, registered in register_hooks */
static ap_filter_rec_t *slb_filter_handle = NULL;

/* resolved in post_config, every time (mod_proxy may be reloaded) */
static int (*retry_worker_fn)(const char *proxy_function,
                              proxy_worker *worker, server_rec *s) = NULL;

/* ------------------------------------------------------------------ */
/* per-request state                                                    */

/* A key looked up in the stick table for this request. */
typedef struct {
    slb_source src;
    const char *name;
    slb_skey key;
    int found;                         /* bound in the table */
    char route[SLB_MAX_ROUTE_LEN + 1]; /* its route when found */
} slb_stored_key;

typedef struct {
    const slb_balancer *bal;         /* the balancer, resolved */
    proxy_balancer *balancer;        /* ... and mod_proxy's */
    apr_array_header_t *candidates;  /* slb_candidate */
    apr_array_header_t *stored;      /* slb_stored_key */
    const char *cookie_route;        /* first valid route cookie value */
    int cookie_signed;               /* it was of the signed form */
    int cookie_resign;               /* ... signed by an older key */
    apr_time_t cookie_issued;        /* its times (signed form) */
    apr_time_t cookie_refreshed;
    slb_source hash_src;             /* the key a new session was hashed
                                        by (SLB_SRC_NONE: none) */
    slb_decision decision;           /* of the last finder call */
    int decided;
    proxy_worker *worker;            /* its choice */
    const char *cookie_set;          /* the Set-Cookie value we added */
    int filtered;                    /* the response filter was added */
    int cookie_done;                 /* response side handled */
    int route_checked;               /* the route written to the store:
                                        0 not checked yet, 1 fit, -1 not */
    /* first storage of the arrays above, in the state itself (an array
     * grows from the pool when full); not zeroed: see make_req_state */
    apr_array_header_t cand_arr;
    slb_candidate cand_buf[4];
    apr_array_header_t hit_arr;      /* the stick table's candidates */
    slb_candidate hit_buf[2];
    apr_array_header_t stored_arr;
    slb_stored_key stored_buf[1];
} slb_req;

/* an empty array of elt_size elements on n of the caller's storage */
static APR_INLINE apr_array_header_t *local_array(apr_array_header_t *a,
                                                  apr_pool_t *p,
                                       void *storage, int elt_size, int n)
{
    a->pool = p;
    a->elt_size = elt_size;
    a->nelts = 0;
    a->nalloc = n;
    a->elts = storage;
    return a;
}

static void add_filter(request_rec *r, slb_req *rq)
{
    rq->filtered = 1;
    ap_add_output_filter_handle(slb_filter_handle, rq, r, r->connection);
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

/*
 * APR keeps with every table entry a checksum of its key, the one
 * apr_table_get() compares before the names (apr_table_entry_t's
 * key_checksum, case-blind).  The checksums of "Cookie" and "Set-Cookie"
 * are learned from APR itself at startup (key_checksums), so a header
 * whose checksum differs is passed over with one compare; when APR's
 * checksum turns out to see case (it never has), every entry's name is
 * compared, as before.
 */
static apr_uint32_t ck_cookie, ck_set_cookie;
static int ck_known;

static void key_checksums(apr_pool_t *p)
{
    static const char *const names[6] = {
        "Cookie", "cookie", "COOKIE", "Set-Cookie", "set-cookie",
        "SET-COOKIE"
    };
    apr_table_t *t = apr_table_make(p, 6);
    const apr_table_entry_t *e;
    int i;

    for (i = 0; i < 6; i++) {
        apr_table_addn(t, names[i], "");
    }
    e = (const apr_table_entry_t *)apr_table_elts(t)->elts;
    ck_cookie = e[0].key_checksum;
    ck_set_cookie = e[3].key_checksum;
    ck_known = e[1].key_checksum == ck_cookie && e[2].key_checksum == ck_cookie
               && e[4].key_checksum == ck_set_cookie
               && e[5].key_checksum == ck_set_cookie;
}

/* The Cookie headers, read straight from the table's entries (cheaper
 * than apr_table_do with its key checksums and callbacks). */
static void collect_cookie_hdrs(const apr_table_t *t, cookie_collect *cc)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;

    int n = arr->nelts;
    /* the checksum in a local: the loop stores through cc */
    const apr_uint32_t want = ck_cookie;
    const int known = ck_known;

    for (i = 0; i < n; i++) {
        const char *k = e[i].key;

        if (known && e[i].key_checksum != want) {
            continue;
        }
        /* "Cookie" in any case: a letter and its other case differ in
         * bit 5 only; a NUL or any other byte never matches (and ends
         * the test before the next byte is read) */
        if (k && (k[0] | 0x20) == 'c' && (k[1] | 0x20) == 'o'
            && (k[2] | 0x20) == 'o' && (k[3] | 0x20) == 'k'
            && (k[4] | 0x20) == 'i' && (k[5] | 0x20) == 'e'
            && k[6] == '\0') {
            collect_cookie_hdr(cc, k, e[i].val);
        }
    }
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

/* apr_array_push without the call while the array has room */
static APR_INLINE void *push(apr_array_header_t *a)
{
    return a->nelts < a->nalloc ? a->elts + (apr_size_t)a->elt_size
                                                * (apr_size_t)a->nelts++
                                : apr_array_push(a);
}

/*
 * The embedded table's key of the last id looked up on the connection.  A
 * keep-alive client sends the same session id with every request; its key
 * (SipHash-1-3 of the id under the namespace's key, about 200
 * instructions for a Tomcat id) is then one compare away.  One per
 * connection: HTTP/1 serves one request at a time on it, and HTTP/2 gives
 * each stream a connection of its own.  Ids longer than CONN_KEY_MAX are
 * hashed every time.
 */
#define CONN_KEY_MAX 128
typedef struct {
    const void *prefix;      /* the namespace's key prefix it was made under */
    apr_size_t len;
    char id[CONN_KEY_MAX];
    slb_key local;
} conn_key;

/* What a connection remembers from one request to the next: the key
 * above, its last Cookie header's values (slb_cookie_memo), and the
 * consistent hash of its client address (hash placement by address). */
typedef struct {
    conn_key key;
    slb_cookie_memo cookies;
    int have_addr_key;
    apr_uint64_t addr_key;   /* slb_hrw_key of c->client_ip */
    /* hash placement: the member the key got among the members of the
     * signature (hash_memo) */
    const void *hash_balancer;   /* NULL: none */
    apr_uint64_t hash_key, hash_sig;
    int hash_member;
} conn_state;

static conn_state *conn_state_of(request_rec *r)
{
    conn_rec *c = r->connection;
    conn_state *cs;

    if (c == NULL) {
        return NULL;
    }
    cs = ap_get_module_config(c->conn_config, &stickylb_module);
    if (cs == NULL) {
        cs = apr_palloc(c->pool, sizeof(*cs));
        cs->key.prefix = NULL;
        cs->cookies.plan = NULL;
        cs->have_addr_key = 0;
        cs->hash_balancer = NULL;
        ap_set_module_config(c->conn_config, &stickylb_module, cs);
    }
    return cs;
}

static void conn_local_key(request_rec *r, slb_skey *k)
{
    const slb_key_prefix *pre = k->local_prefix;
    conn_state *cs;
    conn_key *ck;

    if (pre == NULL || k->len > CONN_KEY_MAX
        || (cs = conn_state_of(r)) == NULL) {
        return;   /* the store makes the key */
    }
    ck = &cs->key;
    if (ck->prefix == pre && ck->len == k->len
        && memcmp(ck->id, k->id, k->len) == 0) {
        /* a keyed key is its digest (no memcached text) */
        memcpy(k->local.digest, ck->local.digest, SLB_KEY_DIGEST_LEN);
        k->local.text[0] = '\0';
        k->local.keyed = ck->local.keyed;
    }
    else {
        slb_table_key_from(pre, &k->local, k->id, k->len);
        ck->prefix = pre;
        ck->len = k->len;
        memcpy(ck->id, k->id, k->len);
        ck->local = k->local;
    }
    k->have_local = 1;
}

/* Look one key up; a hit becomes a candidate route. */
static void lookup_key(request_rec *r, slb_req *rq, apr_array_header_t *hits,
                       slb_source src, const char *name, const char *id,
                       apr_size_t len, int lookup)
{
    slb_stored_key *sk;
    const char *before;

    if (rq->stored->nelts >= 2 * SLB_MAX_SAME_NAME) {
        return;
    }
    if (rq->stored == &no_stored_keys) {
        rq->stored = local_array(&rq->stored_arr, r->pool, rq->stored_buf,
                                 sizeof(slb_stored_key), 1);
    }
    before = rq->stored->elts;
    sk = push(rq->stored);
    if (rq->stored->elts != before) {
        /* the keys moved as the array grew: the hits' routes are theirs,
         * the keys found, in order */
        int j, k = 0;
        for (j = 0; j < rq->stored->nelts - 1 && k < hits->nelts; j++) {
            slb_stored_key *f = &APR_ARRAY_IDX(rq->stored, j, slb_stored_key);
            if (f->found) {
                APR_ARRAY_IDX(hits, k, slb_candidate).route = f->route;
                k++;
            }
        }
    }
    sk->src = src;
    sk->name = name;
    sk->found = 0;
    sk->route[0] = '\0';
    slb_skey_init(&sk->key, rq->bal->ns, id, len);
    sk->key.local_prefix = rq->bal->key_prefix;
    sk->key.scope = rq->balancer;
    if (lookup) {
        conn_local_key(r, &sk->key);
    }
    if (lookup && slb_store_get(rq->bal, &sk->key, sk->route)
                      == APR_SUCCESS) {
        slb_candidate *c = push(hits);

        sk->found = 1;
        c->src = src;
        c->name = name;
        /* the id is sk's (nothing reads a stick-table candidate's id); the
         * route is sk's too (pointed at again when rq->stored grows) */
        c->id = "";
        c->route = sk->route;
    }
}

/* The value of a StickyLBKey key in the request: 1 and *v, or 0 when the
 * request has none (or one that cannot be a key).  Memory only. */
static int key_value(request_rec *r, const slb_key_source *ks,
                     const slb_span *learned, const int *nlearned,
                     slb_span *v)
{
    const char *h;

    switch (ks->kind) {
    case SLB_KEY_HEADER:
        h = apr_table_get(r->headers_in, ks->name);
        if (h && slb_header_value_ok(h, strlen(h))) {
            v->ptr = h;
            v->len = strlen(h);
            return 1;
        }
        return 0;
    case SLB_KEY_QUERY:
        return slb_query_param(r->args, ks->name, v);
    case SLB_KEY_ADDRESS:
        h = r->useragent_ip;
        if (h && *h) {
            v->ptr = h;
            v->len = strlen(h);
            return 1;
        }
        return 0;
    case SLB_KEY_COOKIE:
        /* the first valid value: read with the other cookies
         * (make_req_state), or here when they were not */
        if (learned) {
            if (ks->slot < SLB_MAX_COOKIE_NAMES && nlearned[ks->slot]) {
                *v = learned[ks->slot * SLB_MAX_SAME_NAME];
                return 1;
            }
            return 0;
        }
        return slb_cookie_values(apr_table_get(r->headers_in, "Cookie"),
                                 ks->name, v, 1) > 0;
    }
    return 0;
}

static slb_source key_src(const slb_key_source *ks)
{
    return ks->kind == SLB_KEY_HEADER  ? SLB_SRC_HEADER
           : ks->kind == SLB_KEY_QUERY ? SLB_SRC_QUERY
           : ks->kind == SLB_KEY_COOKIE ? SLB_SRC_COOKIE
                                        : SLB_SRC_ADDRESS;
}

/*
 * The stick table's candidates: ids of the learned cookies the client
 * sent, and the configured header / query / address keys.  Called where
 * I/O is allowed (never from the finder).
 */
static apr_array_header_t *store_candidates(request_rec *r, slb_req *rq,
                                            const slb_span *learned,
                                            const int *nlearned, int lookup)
{
    apr_array_header_t *hits = local_array(&rq->hit_arr, r->pool,
                                           rq->hit_buf,
                                           sizeof(slb_candidate), 2);
    const slb_balancer *c = rq->bal;
    int j, k;

    /* the learned cookies' values, read with the other cookies in one
     * pass (make_req_state); the key cookies' follow them */
    for (k = 0; k < c->learn_cookies->nelts && k < SLB_MAX_COOKIE_NAMES;
         k++) {
        const char *name = APR_ARRAY_IDX(c->learn_cookies, k, const char *);
        const slb_span *v = &learned[k * SLB_MAX_SAME_NAME];
        for (j = 0; j < nlearned[k]; j++) {
            lookup_key(r, rq, hits, SLB_SRC_LEARNED, name, v[j].ptr,
                       v[j].len, lookup);
        }
    }
    for (k = 0; k < c->keys->nelts; k++) {
        const slb_key_source *ks = &APR_ARRAY_IDX(c->keys, k,
                                                  slb_key_source);
        slb_span v;

        if (key_value(r, ks, learned, nlearned, &v)) {
            lookup_key(r, rq, hits, key_src(ks), ks->name ? ks->name
                                                          : "address",
                       v.ptr, v.len, lookup);
        }
    }
    return hits;
}

/* The member route a token stands for under any key of the ring (a
 * cookie issued before a key rotation), or NULL; scope NULL: a v1 token
 * (migration window). */
static const char *route_of_token(request_rec *r, const slb_keyring *ring,
                                  const slb_sign_scope *scope,
                                  proxy_balancer *b, const char *token)
{
    int i, k;

    for (k = 0; k < ring->nkeys; k++) {
        for (i = 0; i < b->workers->nelts; i++) {
            proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
            if (*w->s->route
                && !strcmp(slb_route_token_k(r->pool, ring, k, scope,
                                             w->s->route),
                           token)) {
                return w->s->route;
            }
        }
    }
    return NULL;
}

/*
 * Route cookies with sign=: verified (any key of the ring), tokens mapped
 * back to routes (opaque), maxlife/maxidle enforced.  An unsigned value is
 * accepted only without strict; a forged or expired one is ignored (the
 * client is treated as having no route cookie), and so is one signed for
 * another namespace or cookie name.  A value of the v1 format (bound to
 * neither) is the migration window's: accepted and re-issued as v2
 * without strict, ignored with strict.
 */
static apr_array_header_t *signed_candidates(request_rec *r, slb_req *rq,
                                             proxy_balancer *b,
                                             apr_array_header_t *hdrs)
{
    const slb_cookie_conf *cc = rq->bal->route_cookie;
    apr_array_header_t *out = apr_array_make(r->pool, 1,
                                             sizeof(slb_candidate));
    apr_time_t now = apr_time_now();
    slb_sign_scope scope;
    int i, j;

    scope.ns = rq->bal->ns;
    scope.name = cc->name;
    for (i = 0; i < hdrs->nelts; i++) {
        slb_span v[SLB_MAX_SAME_NAME];
        int n = slb_cookie_values(APR_ARRAY_IDX(hdrs, i, const char *),
                                  cc->name, v, SLB_MAX_SAME_NAME);
        for (j = 0; j < n; j++) {
            const char *val = apr_pstrmemdup(r->pool, v[j].ptr, v[j].len);
            const char *route = NULL;
            apr_time_t issued = 0, refreshed = 0;
            int ok = slb_verify_value(r->pool, rq->bal->ring, &scope, val,
                                      &route, &issued, &refreshed);
            slb_candidate *c;

            if (ok == 0) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              SLB_LOG_TAG "SLB0107: %s cookie does not "
                              "verify: ignored", cc->name);
                continue;
            }
            if (ok == SLB_SIGNED_V1 && cc->strict) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              SLB_LOG_TAG "SLB0108: %s cookie of the v1 "
                              "format (bound to no balancer): ignored under "
                              "strict", cc->name);
                continue;
            }
            if (ok < 0) {
                if (cc->strict) {
                    continue;
                }
                route = val[0] == rq->bal->spec.separator ? val + 1 : val;
                if (!slb_route_ok(route, strlen(route))) {
                    continue;
                }
            }
            else {
                if (cc->opaque) {
                    route = route_of_token(r, rq->bal->ring,
                                           ok == SLB_SIGNED_V2 ? &scope
                                                               : NULL,
                                           b, route);
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
                /* of the v1 format, or verified by an older key of the
                 * ring: sign it anew */
                rq->cookie_resign = ok == SLB_SIGNED_V1
                    || (ok > 0 && rq->bal->ring->nkeys > 1
                        && strcmp(val, slb_sign_value(
                                           r->pool, rq->bal->ring, &scope,
                                           cc->opaque
                                               ? slb_route_token(
                                                     r->pool, rq->bal->ring,
                                                     &scope, route)
                                               : route,
                                           issued, refreshed)) != 0);
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
    if (base->nelts == 0) {
        return more;
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
                               const slb_balancer *bal, int allow_io)
{
    /* the arrays' storage at the end is not zeroed (local_array) */
    slb_req *rq = apr_palloc(r->pool, sizeof(*rq));
    cookie_collect cc;
    /* the Cookie headers (at most COOKIE_HDRS, see collect_cookie_hdr) in
     * an array on the stack: read only once collected */
    const char *hdrs[COOKIE_HDRS];
    apr_array_header_t hdr_arr;
    /* the values of every cookie name the balancer reads (its plan), in
     * one pass; the learned and key cookies' from plan.first_extra on */
    slb_span vals[SLB_PLAN_NAMES * SLB_MAX_SAME_NAME];
    int counts[SLB_PLAN_NAMES];
    const slb_span *learned;
    const int *nlearned;
    conn_state *cs;
    int i;

    memset(rq, 0, APR_OFFSETOF(slb_req, cand_arr));
    rq->bal = bal;
    rq->balancer = b;
    rq->stored = &no_stored_keys;    /* made on the first store lookup */
    hdr_arr.pool = r->pool;
    hdr_arr.elt_size = sizeof(const char *);
    hdr_arr.nelts = 0;
    hdr_arr.nalloc = COOKIE_HDRS;
    hdr_arr.elts = (char *)hdrs;
    cc.values = &hdr_arr;
    collect_cookie_hdrs(r->headers_in, &cc);

    /* the candidates in the request state itself (an array grows from
     * the pool past four) */
    rq->candidates = local_array(&rq->cand_arr, r->pool, rq->cand_buf,
                                 sizeof(slb_candidate), 4);
    cs = cc.values->nelts == 1 ? conn_state_of(r) : NULL;
    slb_collect_candidates_plan(r->pool, rq->candidates, &bal->plan,
                                cs ? &cs->cookies : NULL,
                                (const char *const *)cc.values->elts,
                                cc.values->nelts, r->unparsed_uri, vals,
                                counts);
    learned = vals + bal->plan.first_extra * SLB_MAX_SAME_NAME;
    nlearned = counts + bal->plan.first_extra;
    if (bal->uses_store) {
        apr_array_header_t *hits = store_candidates(r, rq, learned, nlearned,
                                                    allow_io);
        if (hits->nelts > 0) {
            rq->candidates = rq->candidates->nelts == 0
                                 ? hits
                                 : merge_candidates(r->pool, rq->candidates,
                                                    hits);
        }
    }
    if (bal->ring) {
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
    if (bal->strips_cookie) {
        strip_route_cookie(r, bal->route_cookie->name, cc.values);
    }
    ap_set_module_config(r->request_config, &stickylb_module, rq);
    return rq;
}

/* slb_balancer_of, its common case inline: one of the server's balancers
 * at startup, found by its place in mod_proxy's array */
static APR_INLINE const slb_balancer *balancer_of(request_rec *r,
                                                  proxy_balancer *b)
{
    const slb_srv_conf *sc = ap_get_module_config(r->server->module_config,
                                                  &stickylb_module);

    if (sc->balancers && b >= sc->balancers
        && b < sc->balancers + sc->nresolved) {
        return sc->resolved[b - sc->balancers];
    }
    return slb_balancer_of(r->server, b, r->pool);
}

/* strcmp(a, b) == 0 for routes (short), without the call */
static int same_str(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* the compare below reads nine bytes of lbpname */
typedef char slb_lbpname_fits[sizeof(((proxy_balancer_shared *)0)->lbpname)
                              > 8 ? 1 : -1];

/* b->s->lbpname is "stickylb": its eight letters in one compare */
static int uses_stickylb(const proxy_balancer *b)
{
    static const char name[8] = { 's', 't', 'i', 'c', 'k', 'y', 'l', 'b' };
    apr_uint64_t have, want;

    if (b == NULL || b->s == NULL) {
        return 0;
    }
    memcpy(&have, b->s->lbpname, 8);
    memcpy(&want, name, 8);
    return have == want && b->s->lbpname[8] == '\0';
}

/* ------------------------------------------------------------------ */
/* proxy pre_request: keys, before mod_proxy_balancer takes the lock     */

/* "balancer:" at the start of url, in any case */
static int is_balancer_url(const char *url)
{
    static const char b[8] = { 'b', 'a', 'l', 'a', 'n', 'c', 'e', 'r' };
    apr_uint64_t w, want;

    if (strnlen(url, 9) < 9) {
        return 0;
    }
    /* eight letters at once: a letter and its other case differ in bit 5
     * only, no other byte matches a letter with that bit set */
    memcpy(&w, url, 8);
    memcpy(&want, b, 8);
    return (w | APR_UINT64_C(0x2020202020202020)) == want && url[8] == ':';
}

/*
 * The active balancer a "balancer://name/path" URL names, as
 * ap_proxy_get_balancer(..., care = 1) finds it (balancer names are kept
 * in lower case), without copying and hashing the URL: the few balancers
 * of a server are compared by name.
 */
static proxy_balancer *find_balancer(proxy_server_conf *conf, const char *url)
{
    /* is_balancer_url said url starts with "balancer:" */
    const char *host = url + 9;
    apr_size_t len;
    proxy_balancer *b;
    int i;

    if (host[0] != '/' || host[1] != '/' || host[2] == '\0') {
        return NULL;
    }
    len = (apr_size_t)(strchrnul(host + 2, '/') - url);
    b = (proxy_balancer *)conf->balancers->elts;
    for (i = 0; i < conf->balancers->nelts; i++, b++) {
        /* the name's length first; the URL is most often written in lower
         * case, as the names are kept */
        if (len < sizeof(b->s->name) && b->s->name[len] == '\0'
            && (memcmp(b->s->name, url, len) == 0
                || strncasecmp(b->s->name, url, len) == 0)
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
    if (((const slb_srv_conf *)ap_get_module_config(
             r->server->module_config, &stickylb_module))->no_pre_request) {
        return DECLINED;   /* the finder makes the request state */
    }
    if (ap_get_module_config(r->request_config, &stickylb_module)) {
        return DECLINED;   /* a failover retry: keys already known */
    }
    if (b == NULL) {
        if (*url == NULL || !is_balancer_url(*url)) {
            return DECLINED;
        }
        b = find_balancer(pconf, *url);
    }
    if (!uses_stickylb(b)) {
        return DECLINED;
    }
    rq = make_req_state(r, b, balancer_of(r, b), 1);
    /*
     * The response filter only for the responses that may need it: keys
     * are learned from the backend's Set-Cookie and bound after it
     * answered.  A route cookie is set by the finder; but with
     * stickysession= mod_proxy_balancer may choose the member itself,
     * without the finder: then the filter sets it.
     */
    if (rq->bal->uses_store || (rq->bal->inserts_cookie && *b->s->sticky)) {
        add_filter(r, rq);
    }
    return DECLINED;
}

/* ------------------------------------------------------------------ */
/* the route cookie                                                     */

/*
 * The Set-Cookie value that tells the client it is on `route`, or NULL
 * when its cookie says so already.  Signed cookies are re-issued when the
 * member changed, when the client's was unsigned or signed by an older
 * key, and every maxidle/4 to refresh their idle time.  Memory only.
 */
static const char *route_cookie_value(request_rec *r, const slb_req *rq,
                                      const char *route)
{
    const slb_balancer *bal = rq->bal;
    int same = rq->cookie_route && !strcmp(rq->cookie_route, route);
    apr_time_t now;
    int refresh;
    slb_sign_scope scope;

    if (!slb_route_ok(route, strlen(route))) {
        /* said at startup (SLB0003); nothing is logged here, under the
         * balancer's lock */
        return NULL;
    }
    if (bal->ring == NULL) {
        return same ? NULL : slb_balancer_cookie(r->pool, bal, route);
    }
    now = apr_time_now();
    refresh = bal->route_cookie->maxidle > 0 && rq->cookie_signed
              && now - rq->cookie_refreshed
                     >= apr_time_from_sec(bal->route_cookie->maxidle / 4 + 1);
    if (same && rq->cookie_signed && !refresh && !rq->cookie_resign) {
        return NULL;
    }
    scope.ns = bal->ns;
    scope.name = bal->route_cookie->name;
    return slb_balancer_cookie(
        r->pool, bal,
        slb_sign_value(r->pool, bal->ring, &scope,
                       bal->route_cookie->opaque
                           ? slb_route_token(r->pool, bal->ring, &scope,
                                             route)
                           : route,
                       same && rq->cookie_signed ? rq->cookie_issued : now,
                       now));
}

/* err_headers_out's Set-Cookie headers without the one we added */
static void drop_our_cookie(request_rec *r, slb_req *rq)
{
    const apr_array_header_t *arr = apr_table_elts(r->err_headers_out);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    apr_array_header_t *keep = apr_array_make(r->pool, 2, sizeof(char *));
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (e[i].key && !strcasecmp(e[i].key, "Set-Cookie")
            && e[i].val != rq->cookie_set) {
            APR_ARRAY_PUSH(keep, const char *) = e[i].val;
        }
    }
    apr_table_unset(r->err_headers_out, "Set-Cookie");
    for (i = 0; i < keep->nelts; i++) {
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       APR_ARRAY_IDX(keep, i, const char *));
    }
    rq->cookie_set = NULL;
}

/*
 * Set the route cookie for the member chosen, in err_headers_out (kept on
 * error responses too), as soon as the member is known: no filter is
 * needed for it.  A failover retry that chooses again replaces it.
 * Memory only (the finder calls it under the balancer's lock).
 */
static void set_route_cookie(request_rec *r, slb_req *rq, const char *route)
{
    const char *v;

    if (!*route) {
        return;
    }
    v = route_cookie_value(r, rq, route);
    if (rq->cookie_set) {
        if (v && !strcmp(v, rq->cookie_set)) {
            return;
        }
        drop_our_cookie(r, rq);
    }
    if (v) {
        apr_table_addn(r->err_headers_out, "Set-Cookie", v);
        rq->cookie_set = v;
        if (rq->bal->route_cookie->nocache && !rq->filtered) {
            add_filter(r, rq);   /* Cache-Control of the backend's answer */
        }
    }
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
    return st | (unsigned)w->s->lbset << SLB_M_LBSET_SHIFT;
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

/* What the core's member walk (slb_best_member) hands to our is_best
 * callbacks. */
typedef struct {
    int total;                 /* round robin bookkeeping */
    proxy_balancer *b;
    proxy_worker **w;          /* b's members */
    const slb_balancer *c;
    apr_time_t now;
    const char *ns;            /* least sessions */
    double best_ratio;         /* least sessions, busyness */
    apr_uint64_t key;          /* hash: slb_hrw_key of the request's key */
    slb_hrw_best best;         /* ... and the best member so far */
} pick_baton;

/* loadfactor, ramped up after the member came back (slow start) */
static int factor_of(const pick_baton *pb, proxy_worker *w)
{
    return pb->c->weights_vary
               ? slb_health_factor(pb->b, w, pb->c, pb->now)
               : w->s->lbfactor;
}

static int is_best(void *baton, int i, int best)
{
    pick_baton *pb = baton;
    proxy_worker *current = pb->w[i];

    return slb_wrr_consider(&current->s->lbstatus, factor_of(pb, current),
                            best >= 0 ? &pb->w[best]->s->lbstatus : NULL,
                            &pb->total);
}

/* is_best of a balancer without slow start and agent weights: the
 * loadfactor as it is */
static int is_best_plain(void *baton, int i, int best)
{
    pick_baton *pb = baton;
    proxy_worker *current = pb->w[i];

    return slb_wrr_consider(&current->s->lbstatus, current->s->lbfactor,
                            best >= 0 ? &pb->w[best]->s->lbstatus : NULL,
                            &pb->total);
}

/* The fewest `count` per unit of loadfactor; ties by the weighted round
 * robin. */
static int least_per_factor(pick_baton *pb, int i, int best, int factor,
                            double count)
{
    double ratio = count / (factor > 0 ? factor : 1);
    int rr = slb_wrr_consider(&pb->w[i]->s->lbstatus, factor,
                              best >= 0 ? &pb->w[best]->s->lbstatus : NULL,
                              &pb->total);

    if (best < 0 || ratio < pb->best_ratio
        || (ratio == pb->best_ratio && rr)) {
        pb->best_ratio = ratio;
        return 1;
    }
    return 0;
}

/*
 * Least sessions: fewest live bindings in the stick table per unit of
 * loadfactor; ties (and members without a route) by the weighted round
 * robin.  Reads counters in shared memory only.
 */
static int is_best_sessions(void *baton, int i, int best)
{
    pick_baton *pb = baton;
    proxy_worker *current = pb->w[i];

    return least_per_factor(pb, i, best, factor_of(pb, current),
                            (double)slb_store_route_sessions(
                                pb->ns, current->s->route));
}

/*
 * Busyness: fewest requests in flight (mod_proxy's busy count of the
 * member, as mod_lbmethod_bybusyness reads it) per unit of loadfactor.
 */
static int is_best_busy(void *baton, int i, int best)
{
    pick_baton *pb = baton;
    proxy_worker *current = pb->w[i];

    return least_per_factor(pb, i, best, factor_of(pb, current),
                            (double)current->s->busy);
}

/* Hash: the highest rendezvous score of the request's key (a member is
 * named by its route, else by its URL). */
static int is_best_hash(void *baton, int i, int best)
{
    pick_baton *pb = baton;
    proxy_worker *current = pb->w[i];

    return slb_hrw_consider(pb->key,
                            *current->s->route ? current->s->route
                                               : current->s->name,
                            factor_of(pb, current), &pb->best, best < 0);
}

/* is_best_hash of a balancer without slow start and agent weights */
static int is_best_hash_plain(void *baton, int i, int best)
{
    pick_baton *pb = baton;
    const proxy_worker_shared *s = pb->w[i]->s;

    return slb_hrw_consider(pb->key, *s->route ? s->route : s->name,
                            s->lbfactor, &pb->best, best < 0);
}

/*
 * The key a new session is hashed by: the first StickyLBKey key of the
 * request (header, query, address, in the order configured), else the
 * first learned id it sent.  0 when it has none.  Its source is what
 * STICKYLB_KEY_SOURCE says of the new session.  Without a store the keys
 * were not read before: they are read here (memory only).
 */
static int hash_key(request_rec *r, slb_req *rq, apr_uint64_t *key)
{
    const slb_stored_key *first = NULL;
    int i;

    if (!rq->bal->uses_store) {
        const apr_array_header_t *keys = rq->bal->keys;
        for (i = 0; i < keys->nelts; i++) {
            const slb_key_source *ks = &APR_ARRAY_IDX(keys, i,
                                                      slb_key_source);
            slb_span v;
            conn_state *cs;
            /* the connection's own address (no mod_remoteip rewrite: the
             * very string of the connection) is hashed once */
            if (ks->kind == SLB_KEY_ADDRESS && r->connection
                && r->useragent_ip == r->connection->client_ip
                && r->useragent_ip && *r->useragent_ip
                && (cs = conn_state_of(r)) != NULL) {
                if (!cs->have_addr_key) {
                    cs->addr_key = slb_hrw_key(r->useragent_ip,
                                               strlen(r->useragent_ip));
                    cs->have_addr_key = 1;
                }
                *key = cs->addr_key;
                rq->hash_src = SLB_SRC_ADDRESS;
                return 1;
            }
            if (key_value(r, ks, NULL, NULL, &v)) {
                *key = slb_hrw_key(v.ptr, v.len);
                rq->hash_src = key_src(ks);
                return 1;
            }
        }
        return 0;
    }

    for (i = 0; i < rq->stored->nelts; i++) {
        const slb_stored_key *sk = &APR_ARRAY_IDX(rq->stored, i,
                                                  slb_stored_key);
        if (sk->src != SLB_SRC_LEARNED) {
            first = sk;
            break;
        }
        if (first == NULL) {
            first = sk;
        }
    }
    if (first == NULL) {
        return 0;
    }
    *key = slb_hrw_key(first->key.id, first->key.len);
    rq->hash_src = first->src;
    return 1;
}

/* The member walk's callback of the balancer's StickyLBNewSessions; hash
 * without a key falls back to requests. */
static slb_is_best_fn *picker(request_rec *r, slb_req *rq, pick_baton *pb)
{
    switch (rq->bal->placement) {
    case SLB_PLACE_SESSIONS:
        return is_best_sessions;
    case SLB_PLACE_BUSYNESS:
        return is_best_busy;
    case SLB_PLACE_HASH:
        if (hash_key(r, rq, &pb->key)) {
            return pb->c->weights_vary
                       ? is_best_hash : is_best_hash_plain;
        }
        return is_best;
    default:
        return pb->c->weights_vary
                   ? is_best : is_best_plain;
    }
}

/*
 * Hash placement without a store, the same key on a keep-alive
 * connection: rendezvous hashing gives the same member for the same key
 * among the same members, so the connection keeps the member it was given
 * with a signature of the members (slb_sig_*: each one's status bits,
 * lbset, loadfactor, identity and route, all that the walk and the hash
 * read) and the next request of the same key among the same members skips
 * the walk.  A member in error means no memo: its retry is the walk's
 * (mod_proxy's retry= brings it back), as is a loadfactor that changes
 * with time (slow start, agent weights: is_best_hash instead of
 * is_best_hash_plain).  Memory only (the finder holds the lock).
 */
static int members_signature(proxy_balancer *b, apr_uint64_t *sig)
{
    proxy_worker **w = (proxy_worker **)b->workers->elts;
    int i, n = b->workers->nelts;
    apr_uint64_t h = slb_sig_word(0, (apr_uint64_t)n);

    for (i = 0; i < n; i++) {
        const proxy_worker_shared *ws = w[i]->s;
        if (ws->status & PROXY_WORKER_IN_ERROR) {
            return 0;
        }
        h = slb_sig_word(h, (apr_uint64_t)ws->status
                                ^ ((apr_uint64_t)(unsigned)ws->lbset << 32)
                                ^ ((apr_uint64_t)(unsigned)ws->lbfactor
                                   << 48));
        h = slb_sig_word(h, (apr_uint64_t)(apr_uintptr_t)ws);
        h = slb_sig_route(h, ws->route);
    }
    *sig = slb_sig_finish(h);
    return 1;
}

typedef char route_sig_fits[sizeof(((proxy_worker_shared *)0)->route)
                            >= SLB_MAX_ROUTE_LEN + 1 ? 1 : -1];

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
    if (rq->bal->sets_vars) {
        put(env, "STICKYLB_KEY_SOURCE",
            slb_source_name(c ? c->src : rq->hash_src));
        put(env, "STICKYLB_DECISION", slb_decision_name(d->kind));
        if (w) {
            put(env, "STICKYLB_ROUTE", w->s->route);
        }
    }
    /* a sticky decision's member has the session's route (sticky_fast,
     * slb_decide): nothing to compare */
    if (w && d->kind != SLB_DECIDE_STICKY) {
        if (*w->s->route && (d->route == NULL
                             || !same_str(d->route, w->s->route))) {
            apr_table_setn(env, "BALANCER_ROUTE_CHANGED", "1");
        }
    }
}

/* Why the member of `route` cannot take its sessions (failover line). */
static const char *unusable_reason(proxy_balancer *b, const char *route)
{
    proxy_worker *w = NULL;
    int i;

    /* the regular member of the route, else its hot standby */
    for (i = 0; i < b->workers->nelts; i++) {
        proxy_worker *m = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (strcmp(m->s->route, route) == 0
            && (w == NULL || PROXY_WORKER_IS_STANDBY(w))) {
            w = m;
        }
    }
    if (w == NULL) {
        return "gone";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_STOPPED)) {
        return "stopped";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED)) {
        return "disabled";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_HC_FAIL)) {
        return "failing its health checks";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_IN_ERROR)) {
        return "in error";
    }
    if (PROXY_WORKER_IS(w, PROXY_WORKER_IN_SHUTDOWN)) {
        return "shutting down";
    }
    return "not usable";
}

/*
 * A session whose member is unusable moves to w.  Said once per move at
 * info: the module re-pins the session (route cookie re-issued, stick-table
 * binding re-pinned), so its next requests are sticky to w and log nothing.
 * A route only the application's own id carries (jvmRoute in JSESSIONID
 * or ;jsessionid=, no route cookie inserted) moves again on every request
 * until the application issues a new id: said at debug, per request.
 * Runs on the failover path only.
 */
static void log_failover(request_rec *r, proxy_balancer *b,
                         const slb_req *rq, const slb_decision *d,
                         const proxy_worker *w)
{
    const slb_candidate *c = &APR_ARRAY_IDX(rq->candidates, d->candidate,
                                            slb_candidate);
    int repinned = rq->bal->inserts_cookie
                   || (c->src != SLB_SRC_SESSION_COOKIE
                       && c->src != SLB_SRC_URL);

    if (w == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      SLB_LOG_TAG "SLB0102: %s: route '%s' is %s and no "
                      "member is left to move its session to", b->s->name,
                      d->route, unusable_reason(b, d->route));
    }
    else if (repinned) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      SLB_LOG_TAG "SLB0102: %s: failover: session moved "
                      "from route '%s' to '%s' (member of '%s' is %s; key: "
                      "%s)", b->s->name, d->route, w->s->route, d->route,
                      unusable_reason(b, d->route),
                      slb_source_name(c->src));
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      SLB_LOG_TAG "SLB0108: %s: failover: request of route "
                      "'%s' sent to '%s' (member of '%s' is %s; key: %s, "
                      "which only the application can re-issue)",
                      b->s->name, d->route, w->s->route, d->route,
                      unusable_reason(b, d->route),
                      slb_source_name(c->src));
    }
}

/*
 * The common cases, decided without the member callbacks: no candidate
 * (a new session), or the first candidate's route names a regular member
 * (the first in the array that has it) and that member is usable.
 * slb_decide gives the same answers then (no candidate: SLB_DECIDE_NEW;
 * the first candidate is known, pass 0 returns the first usable regular
 * member of its route); anything else (a standby, an unusable member, a
 * member in error that may be retried, a redirect) is left to it.
 */
static int sticky_fast(proxy_balancer *b, const apr_array_header_t *cands,
                       slb_decision *d)
{
    const slb_candidate *c;
    proxy_worker **w;
    int i, n;

    if (cands == NULL || cands->nelts == 0) {
        /* no candidate: a new session, as slb_decide says it */
        d->kind = SLB_DECIDE_NEW;
        d->member = -1;
        d->candidate = -1;
        d->route = NULL;
        return 1;
    }
    c = &APR_ARRAY_IDX(cands, 0, slb_candidate);
    if (c->route == NULL || c->route[0] == '\0') {
        return 0;
    }
    w = (proxy_worker **)b->workers->elts;
    n = b->workers->nelts;
    for (i = 0; i < n; i++) {
        const char *route = w[i]->s->route;

        if (route[0] != c->route[0] || !same_str(route, c->route)
            || PROXY_WORKER_IS_STANDBY(w[i])) {
            continue;
        }
        if (!PROXY_WORKER_IS_USABLE(w[i])) {
            return 0;
        }
        d->kind = SLB_DECIDE_STICKY;
        d->member = i;
        d->candidate = 0;
        d->route = c->route;
        return 1;
    }
    return 0;
}

static proxy_worker *slb_finder(proxy_balancer *b, request_rec *r)
{
    slb_req *rq = ap_get_module_config(r->request_config, &stickylb_module);
    worker_ctx ctx;
    slb_decision d;
    proxy_worker *w = NULL;

    if (rq == NULL) {
        /* no pre_request for this server (no store, no stickysession=:
         * slb_srv_conf.no_pre_request), or the lbmethod was switched
         * after it ran: no store lookups here, the balancer's lock is
         * held */
        rq = make_req_state(r, b, balancer_of(r, b), 0);
        if (rq->bal->uses_store) {
            add_filter(r, rq);
        }
    }
    ctx.b = b;
    ctx.s = r->server;
    if (!sticky_fast(b, rq->candidates, &d)) {
        d = slb_decide(&worker_ops, &ctx, rq->candidates,
                       b->s->sticky_force);
    }

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
        {
            pick_baton pb;
            slb_is_best_fn *fn;
            conn_state *cs;
            apr_uint64_t sig = 0;
            int i;
            pb.total = 0;
            pb.b = b;
            pb.w = (proxy_worker **)b->workers->elts;
            pb.c = rq->bal;
            pb.now = rq->bal->weights_vary
                         ? apr_time_now() : 0;
            pb.ns = rq->bal->ns;
            pb.best_ratio = 0;
            fn = picker(r, rq, &pb);
            i = -1;
            cs = NULL;
            if (fn == is_best_hash_plain && d.kind == SLB_DECIDE_NEW
                && !rq->bal->uses_store && members_signature(b, &sig)
                && (cs = conn_state_of(r)) != NULL
                && cs->hash_balancer == b && cs->hash_key == pb.key
                && cs->hash_sig == sig
                && cs->hash_member < b->workers->nelts) {
                i = cs->hash_member;    /* the same key, the same members */
            }
            else {
                i = slb_best_member(&worker_ops, &ctx, fn, &pb);
                if (cs && i >= 0) {
                    cs->hash_balancer = b;
                    cs->hash_key = pb.key;
                    cs->hash_sig = sig;
                    cs->hash_member = i;
                }
            }
            if (i >= 0) {
                w = pb.w[i];
                slb_wrr_commit(&w->s->lbstatus, pb.total);
            }
        }
        if (d.kind == SLB_DECIDE_FAILOVER) {
            log_failover(r, b, rq, &d, w);
        }
        break;
    }
    set_request_vars(r, b, rq, &d, w);
    rq->decision = d;
    rq->decided = 1;
    rq->worker = w;
    if (w) {
        slb_health_count(b, w, d.kind,
                         d.candidate >= 0
                         && APR_ARRAY_IDX(rq->candidates, d.candidate,
                                          slb_candidate).src
                                == SLB_SRC_ROUTE_COOKIE);
        if (rq->bal->inserts_cookie) {
            set_route_cookie(r, rq, w->s->route);
        }
    }
    /* one trace line a request (each costs its level test) */
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  SLB_LOG_TAG "%s: %s -> %s (%d candidate route(s), %d stick "
                  "table key(s))", b->s->name, slb_decision_name(d.kind),
                  w ? w->s->name : "(none)", rq->candidates->nelts,
                  rq->stored->nelts);
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

/*
 * Whether `route` (the member's) may be written to the stick table: asked
 * before the first write of a response only, so the responses that write
 * nothing (a session that stays where it is) do not check it.  Said once a
 * request when it cannot be.
 */
static int route_writable(request_rec *r, slb_req *rq, const char *route)
{
    if (rq->route_checked == 0) {
        rq->route_checked = slb_route_ok(route, strlen(route)) ? 1 : -1;
        if (rq->route_checked < 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          SLB_LOG_TAG "SLB0103: route '%s' cannot be carried "
                          "in a cookie or the stick table",
                          ap_escape_logitem(r->pool, route));
        }
    }
    return rq->route_checked > 0;
}

/* One Set-Cookie of the backend: bind (or unbind) a learned session id. */
static int learn_set_cookie(void *baton, const char *key, const char *val)
{
    learn_ctx *lc = baton;
    const slb_balancer *c = lc->rq->bal;
    int k;

    (void)key;
    for (k = 0; k < c->learn_cookies->nelts; k++) {
        const char *name = APR_ARRAY_IDX(c->learn_cookies, k, const char *);
        slb_span v;
        slb_skey sk;
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
        if (!route_writable(lc->r, lc->rq, lc->route)) {
            break;
        }
        slb_skey_init(&sk, c->ns, v.ptr, v.len);
        sk.local_prefix = c->key_prefix;
        sk.scope = lc->rq->balancer;
        existing[0] = '\0';
        if (slb_store_put(c, &sk, lc->route, SLB_PUT_LEARN, NULL, existing)
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

/* learn_set_cookie for every Set-Cookie header of t, read straight from
 * the table's entries (most responses have none) */
static void each_set_cookie(const apr_table_t *t, learn_ctx *lc)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i, n = arr->nelts;
    const apr_uint32_t want = ck_set_cookie;
    const int known = ck_known;

    for (i = 0; i < n; i++) {
        const char *k = e[i].key;

        if (known && e[i].key_checksum != want) {
            continue;
        }
        if (k && (k[0] | 0x20) == 's' && (k[1] | 0x20) == 'e'
            && (k[2] | 0x20) == 't' && k[3] == '-'
            && (k[4] | 0x20) == 'c' && (k[5] | 0x20) == 'o'
            && (k[6] | 0x20) == 'o' && (k[7] | 0x20) == 'k'
            && (k[8] | 0x20) == 'i' && (k[9] | 0x20) == 'e'
            && k[10] == '\0') {   /* "Set-Cookie" in any case */
            learn_set_cookie(lc, k, e[i].val);
        }
    }
}

/*
 * After the member answered: learn session ids it issued, bind the
 * request's header/query/address keys on a new assignment, and re-pin
 * every bound key that still names another member (failover, redirect).
 * Only rows that change are written.
 */
static void update_store(request_rec *r, slb_req *rq, const char *route)
{
    const slb_balancer *bal = rq->bal;
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
    if (bal->learns) {
        learn_ctx lc;
        lc.r = r;
        lc.rq = rq;
        lc.route = route;
        each_set_cookie(r->headers_out, &lc);
        each_set_cookie(r->err_headers_out, &lc);
    }
    for (i = 0; i < rq->stored->nelts; i++) {
        slb_stored_key *sk = &APR_ARRAY_IDX(rq->stored, i, slb_stored_key);

        if (sk->found) {
            if (strcmp(sk->route, route) != 0
                && route_writable(r, rq, route)) {
                /* re-pin: the session now lives on `route` */
                slb_store_put(bal, &sk->key, route, SLB_PUT_REPIN, sk->route,
                              NULL);
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              SLB_LOG_TAG "SLB0105: %s key re-pinned from "
                              "'%s' to '%s'", slb_source_name(sk->src),
                              sk->route, route);
            }
        }
        else if (sk->src != SLB_SRC_LEARNED && route_writable(r, rq, route)) {
            /* header, query and address keys are bound on first use; a
             * session id the client sent is never stored unless the
             * backend issued it */
            slb_store_put(bal, &sk->key, route, SLB_PUT_FIRST, NULL, NULL);
        }
    }
}

/*
 * The response filter, on the responses that need it (see slb_pre_request
 * and set_route_cookie): once, before the first bytes of the answer.
 */
static void finish_response(request_rec *r, slb_req *rq)
{
    const slb_balancer *bal = rq->bal;
    const char *route;

    if (rq->cookie_done) {
        return;
    }
    rq->cookie_done = 1;
    /* the member the finder chose (BALANCER_WORKER_ROUTE names it too);
     * mod_proxy_balancer's own choice (stickysession=) from its variable */
    route = rq->decided && rq->worker
                ? rq->worker->s->route
                : apr_table_get(r->subprocess_env, "BALANCER_WORKER_ROUTE");
    if (route == NULL || *route == '\0') {
        return;
    }
    if (bal->uses_store) {
        update_store(r, rq, route);   /* checks the route before it writes */
    }
    if (!bal->inserts_cookie) {
        return;
    }
    if (!rq->decided) {
        /* mod_proxy_balancer chose the member by stickysession= */
        set_route_cookie(r, rq, route);
    }
    if (rq->cookie_set && bal->route_cookie->nocache) {
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

    /* once, on the first brigade; the filter stays in the chain (taking
     * it out costs more than passing the few brigades of a response) */
    if (rq && !rq->cookie_done) {
        finish_response(f->r, rq);
    }
    return ap_pass_brigade(f->next, bb);
}

/* Error responses reset the filter chain: put the filter back. */
static void slb_insert_error_filter(request_rec *r)
{
    slb_req *rq = ap_get_module_config(r->request_config, &stickylb_module);

    if (rq && rq->filtered && !rq->cookie_done) {
        ap_add_output_filter_handle(slb_filter_handle, rq, r, r->connection);
    }
}

/* After the member answered: passive health marking. */
static int slb_post_request(proxy_worker *worker, proxy_balancer *balancer,
                            request_rec *r, proxy_server_conf *pconf)
{
    slb_req *rq = ap_get_module_config(r->request_config, &stickylb_module);

    (void)pconf;
    if (rq && rq->bal->passive->nelts > 0 && balancer && worker
        && uses_stickylb(balancer)) {
        slb_health_passive(r, balancer, worker, rq->bal);
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
    apr_array_header_t *keep_ns, *keep_routes;

    (void)plog;
    retry_worker_fn = APR_RETRIEVE_OPTIONAL_FN(ap_proxy_retry_worker);
    key_checksums(ptemp);

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (retry_worker_fn == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     SLB_LOG_TAG "SLB0001: mod_proxy and mod_proxy_balancer "
                     "must be loaded for lbmethod=stickylb");
        return !OK;
    }

    if (slb_store_post_config(pconf, plog, ptemp, s) != OK
        || slb_health_post_config(pconf, s) != OK) {
        return !OK;
    }
    slb_config_resolve(pconf, ptemp, s);
    /* the members discovered before a restart, back before the routes to
     * keep are listed */
    if (slb_discover_post_config(pconf, ptemp, s) != OK) {
        return !OK;
    }
    keep_ns = apr_array_make(ptemp, 16, sizeof(const char *));
    keep_routes = apr_array_make(ptemp, 16, sizeof(const char *));
    for (sr = s; sr; sr = sr->next) {
        const slb_srv_conf *sc = ap_get_module_config(sr->module_config,
                                                      &stickylb_module);
        int i, j;

        for (i = 0; i < sc->nresolved; i++) {
            proxy_balancer *b = &sc->balancers[i];

            if (!uses_stickylb(b)) {
                continue;
            }
            if (sc->resolved[i]->probes->nelts > 0
                || sc->resolved[i]->agents->nelts > 0) {
                any_probe = 1;
            }
            for (j = 0; j < b->workers->nelts; j++) {
                proxy_worker *w = APR_ARRAY_IDX(b->workers, j,
                                                proxy_worker *);
                if (!*w->s->route) {
                    /* (said at configtest too: slb_check_config) */
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
                else {
                    APR_ARRAY_PUSH(keep_ns, const char *)
                        = sc->resolved[i]->ns;
                    APR_ARRAY_PUSH(keep_routes, const char *) = w->s->route;
                }
            }
        }
    }
    /* routes of members removed since the last start leave the stick
     * table's registry (kept across graceful restarts) */
    slb_store_keep_routes(s, keep_ns->nelts,
                          (const char *const *)keep_ns->elts,
                          (const char *const *)keep_routes->elts);
    if (slb_status_post_config(pconf, s) != OK
        || slb_sync_post_config(pconf, s) != OK
        || slb_discover_watchdog(pconf, s) != OK) {
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
    apr_hash_t *seen = apr_hash_make(ptemp);

    (void)pconf;
    (void)plog;
    for (sr = s; sr; sr = sr->next) {
        const char *err = slb_store_check(
            sr, slb_config_any_store(sr, ptemp, SLB_STORE_MEMCACHED));

        if (err == NULL) {
            err = slb_config_check_sections(sr, ptemp, seen);
        }
        if (err == NULL) {
            err = slb_config_check_balancers(s, sr, ptemp, seen);
        }
        if (err == NULL) {
            err = slb_discover_check(sr, ptemp);
        }
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
    slb_watchdog_register_hooks(p);
    slb_probe_register_hooks(p);
    slb_sync_register_hooks(p);
    slb_discover_register_hooks(p);
    slb_status_register_hooks(p);
    ap_hook_post_config(slb_post_config, after_proxy, NULL,
                        APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(slb_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_hook_child_init(slb_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(slb_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    slb_filter_handle = ap_register_output_filter(SLB_FILTER_NAME,
                                                  slb_out_filter, NULL,
                                                  AP_FTYPE_CONTENT_SET);
}

module AP_MODULE_DECLARE_DATA stickylb_module = {
    STANDARD20_MODULE_STUFF,
    slb_create_dir_conf,
    NULL,            /* no per-directory merge: see mod_stickylb_config.c */
    slb_create_srv_conf,
    slb_merge_srv_conf,
    slb_cmds,
    slb_register_hooks
};
