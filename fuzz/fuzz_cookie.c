/*
 * fuzz_cookie.c - Cookie request headers: slb_cookie_values,
 * slb_split_route, slb_collect_candidates (with and without the memo of
 * a header seen before) and slb_cookie_strip (the
 * result a subsequence of the header: bytes only taken out).
 *
 * Input: byte 0 is the id/route separator (any byte, NUL included), then
 * NUL-separated fields:
 *   0 cookie name looked up and stripped
 *   1 route cookie name ("" = none)
 *   2 path parameter name ("" = none)
 *   3 session cookie names, separated by spaces ("" = none)
 *   4 raw request URI
 *   5.. up to 4 Cookie headers (an empty field stands for a NULL entry)
 */
#include "fuzz_common.h"

#include <apr_strings.h>
#include <apr_tables.h>

#include "stickylb_codec.h"

#define MANY 1024

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* a value found by slb_cookie_values in hdr (len bytes) */
static void check_value(const char *hdr, size_t len, slb_span v)
{
    FZ_CHECK(v.ptr != NULL);
    FZ_CHECK(FZ_INSIDE(v.ptr, v.len, hdr, len));
    FZ_CHECK(slb_value_ok(v.ptr, v.len));
    /* a value starts after '=', the whitespace after it or a quote */
    FZ_CHECK(v.ptr > hdr);
    FZ_CHECK(v.ptr[-1] == '=' || v.ptr[-1] == '"' || is_ws(v.ptr[-1]));
    /* and ends at the end of its pair, its closing quote or whitespace */
    FZ_CHECK(v.ptr[v.len] == '\0' || v.ptr[v.len] == ';'
             || v.ptr[v.len] == ',' || v.ptr[v.len] == '"'
             || is_ws(v.ptr[v.len]));
}

static void check_split(const char *v, size_t len, char sep)
{
    slb_span id = { NULL, 0 }, route = { NULL, 0 };
    slb_span id1 = { NULL, 0 }, route1 = { NULL, 0 };
    int r0 = slb_split_route(v, len, sep, 0, &id, &route);
    int r1 = slb_split_route(v, len, sep, 1, &id1, &route1);

    FZ_CHECK(r0 == 0 || r0 == 1);
    FZ_CHECK(r1 == 0 || r1 == 1);
    FZ_CHECK(!r0 || r1);               /* allowing an empty id only adds */
    if (r1) {
        FZ_CHECK(sep != '\0');
        FZ_CHECK(id1.ptr == v);
        FZ_CHECK(id1.len < len);
        FZ_CHECK(v[id1.len] == sep);
        FZ_CHECK(memchr(v, sep, id1.len) == NULL);   /* the first one */
        FZ_CHECK(route1.ptr == v + id1.len + 1);
        FZ_CHECK(id1.len + 1 + route1.len == len);
        FZ_CHECK(slb_route_ok(route1.ptr, route1.len));
        FZ_CHECK(route1.len >= 1 && route1.len <= SLB_MAX_ROUTE_LEN);
    }
    if (r0) {
        FZ_CHECK(id.len > 0);
        FZ_CHECK(id.ptr == id1.ptr && id.len == id1.len);
        FZ_CHECK(route.ptr == route1.ptr && route.len == route1.len);
    }
    else if (r1) {
        FZ_CHECK(id1.len == 0);
    }
}

/* values of `name` in hdr, as NUL-terminated copies */
static int values_of(apr_pool_t *p, const char *hdr, const char *name,
                     slb_span *buf, const char **out)
{
    int n = slb_cookie_values(hdr, name, buf, MANY), i;

    FZ_CHECK(n >= 0 && n <= MANY);
    for (i = 0; i < n; i++) {
        out[i] = apr_pstrmemdup(p, buf[i].ptr, buf[i].len);
    }
    return n;
}

/* The candidates slb_collect_candidates must give, made the slow way
 * (slb_cookie_values, slb_split_route, slb_route_ok): its one-pass walk
 * of the headers is checked against them. */
typedef struct {
    slb_source src;
    const char *name;
    const char *id;
    const char *route;
} ref_cand;

static int name_values(const char *const *hdrs, int nh, const char *name,
                       slb_span *out)
{
    int i, n = 0;

    for (i = 0; i < nh && n < SLB_MAX_SAME_NAME; i++) {
        slb_span v[MANY];
        int k, m;
        if (hdrs[i] == NULL) {
            continue;
        }
        m = slb_cookie_values(hdrs[i], name, v, MANY);
        for (k = 0; k < m && n < SLB_MAX_SAME_NAME; k++) {
            out[n++] = v[k];
        }
    }
    return n;
}

static int ref_candidates(apr_pool_t *p, const slb_key_spec *spec,
                          const char *const *hdrs, int nh, const char *uri,
                          ref_cand *out)
{
    slb_span v[SLB_MAX_SAME_NAME], id, route;
    int n = 0, i, k, m;

#define REF_PUSH(s, nm, idp, idl, rp, rl)                                   \
    do {                                                                   \
        if (n < 3 * SLB_MAX_SAME_NAME) {                                   \
            out[n].src = (s);                                              \
            out[n].name = (nm);                                            \
            out[n].id = apr_pstrmemdup(p, (idp), (idl));                   \
            out[n].route = apr_pstrmemdup(p, (rp), (rl));                  \
            n++;                                                           \
        }                                                                  \
    } while (0)
    if (spec->route_cookie) {
        m = name_values(hdrs, nh, spec->route_cookie, v);
        for (i = 0; i < m; i++) {
            route = v[i];
            if (spec->separator && route.ptr[0] == spec->separator) {
                route.ptr++;
                route.len--;
            }
            if (slb_route_ok(route.ptr, route.len)) {
                REF_PUSH(SLB_SRC_ROUTE_COOKIE, spec->route_cookie, "", 0,
                         route.ptr, route.len);
            }
        }
    }
    if (spec->path_param && uri) {
        slb_span pv;
        if (slb_path_param(uri, spec->path_param, &pv)
            && slb_split_route(pv.ptr, pv.len, spec->separator, 0, &id,
                               &route)) {
            REF_PUSH(SLB_SRC_URL, spec->path_param, id.ptr, id.len,
                     route.ptr, route.len);
        }
    }
    for (k = 0; spec->session_cookies && k < spec->session_cookies->nelts;
         k++) {
        const char *name = APR_ARRAY_IDX(spec->session_cookies, k,
                                         const char *);
        m = name_values(hdrs, nh, name, v);
        for (i = 0; i < m; i++) {
            if (slb_split_route(v[i].ptr, v[i].len, spec->separator, 0,
                                &id, &route)) {
                REF_PUSH(SLB_SRC_SESSION_COOKIE, name, id.ptr, id.len,
                         route.ptr, route.len);
            }
        }
    }
#undef REF_PUSH
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    static slb_span many[MANY], many2[MANY];
    static const char *sa[MANY], *sb[MANY];
    char *f[9];
    const char *hdrs[4];
    size_t hlen[4];
    int nf, nh, i, k;
    char sep;
    const char *name;
    slb_key_spec spec;
    apr_array_header_t *sess = NULL, *cands;

    if (size < 1) {
        fz_end();
        return 0;
    }
    sep = (char)data[0];
    nf = fz_split(data + 1, size - 1, f, 9);
    for (i = nf; i < 9; i++) {
        f[i] = fz_str((const uint8_t *)"", 0);
    }
    name = f[0];
    nh = nf > 5 ? nf - 5 : 1;
    for (i = 0; i < nh; i++) {
        hdrs[i] = *f[5 + i] ? f[5 + i] : (nf > 5 ? NULL : f[5]);
        hlen[i] = hdrs[i] ? strlen(hdrs[i]) : 0;
    }

    /* --- slb_cookie_values and slb_split_route, header by header */
    for (i = 0; i < nh; i++) {
        slb_span out[SLB_MAX_SAME_NAME], one;
        int n, n1, nm;

        if (hdrs[i] == NULL) {
            continue;
        }
        n = slb_cookie_values(hdrs[i], name, out, SLB_MAX_SAME_NAME);
        FZ_CHECK(n >= 0 && n <= SLB_MAX_SAME_NAME);
        if (*name == '\0') {
            FZ_CHECK(n == 0);
        }
        for (k = 0; k < n; k++) {
            check_value(hdrs[i], hlen[i], out[k]);
            if (k > 0) {
                FZ_CHECK(out[k].ptr > out[k - 1].ptr);   /* in order */
            }
            check_split(out[k].ptr, out[k].len, sep);
        }
        /* max = 1 finds the first of them; a bigger max finds a superset */
        n1 = slb_cookie_values(hdrs[i], name, &one, 1);
        FZ_CHECK(n1 == (n > 0));
        if (n1) {
            FZ_CHECK(one.ptr == out[0].ptr && one.len == out[0].len);
        }
        nm = slb_cookie_values(hdrs[i], name, many, MANY);
        FZ_CHECK(nm >= n && (n == SLB_MAX_SAME_NAME || nm == n));
        for (k = 0; k < n; k++) {
            FZ_CHECK(many[k].ptr == out[k].ptr && many[k].len == out[k].len);
        }
        FZ_CHECK(slb_cookie_values(hdrs[i], name, out, 0) == 0);
        FZ_CHECK(slb_cookie_values(hdrs[i], NULL, out, 1) == 0);
    }
    /* split_route on raw bytes too (exactly sized, not terminated) */
    if (size > 1) {
        check_split(fz_mem(data + 1, size - 1), size - 1, sep);
    }

    /* --- slb_cookie_strip */
    for (i = 0; i < nh; i++) {
        const char *res;
        int removed = -1, removed2 = -1, nv, na, nb, j;

        if (hdrs[i] == NULL) {
            continue;
        }
        res = slb_cookie_strip(p, hdrs[i], name, &removed);
        FZ_CHECK(removed >= 0);
        if (*name == '\0') {
            FZ_CHECK(res == hdrs[i] && removed == 0);
            continue;
        }
        nv = slb_cookie_values(hdrs[i], name, many, MANY);
        FZ_CHECK(removed >= nv || nv == MANY);
        if (removed == 0) {
            FZ_CHECK(res == hdrs[i]);
            FZ_CHECK(nv == 0);
            continue;
        }
        if (res == NULL) {
            continue;
        }
        FZ_CHECK(res != hdrs[i]);
        FZ_CHECK(*res != '\0');
        /* only bytes taken out, none changed or added: the result is a
         * subsequence of the header, shorter by at least the removed
         * names and their '=' */
        {
            const char *h = hdrs[i], *q = res;
            for (; *h && *q; h++) {
                if (*h == *q) {
                    q++;
                }
            }
            FZ_CHECK(*q == '\0');
            FZ_CHECK(strlen(res) + (size_t)removed * (strlen(name) + 1)
                     <= strlen(hdrs[i]));
        }
        /* the name is gone: stripping again removes nothing */
        FZ_CHECK(slb_cookie_strip(p, res, name, &removed2) == res);
        FZ_CHECK(removed2 == 0);
        FZ_CHECK(slb_cookie_values(res, name, many2, MANY) == 0);
        /* every other cookie is kept byte for byte */
        for (j = 1; j <= 3; j++) {
            const char *other = j == 1 ? f[1] : j == 2 ? f[2] : "JSESSIONID";
            if (*other == '\0' || strcmp(other, name) == 0) {
                continue;
            }
            na = values_of(p, hdrs[i], other, many, sa);
            nb = values_of(p, res, other, many2, sb);
            FZ_CHECK(na == nb);
            for (k = 0; k < na; k++) {
                FZ_CHECK(strcmp(sa[k], sb[k]) == 0);
            }
        }
    }

    /* --- slb_collect_candidates */
    if (*f[3]) {
        char *last, *tok, *copy = apr_pstrdup(p, f[3]);
        sess = apr_array_make(p, 2, sizeof(const char *));
        for (tok = apr_strtok(copy, " ", &last); tok;
             tok = apr_strtok(NULL, " ", &last)) {
            if (sess->nelts < 8) {
                APR_ARRAY_PUSH(sess, const char *) = tok;
            }
        }
    }
    spec.route_cookie = *f[1] ? f[1] : NULL;
    spec.session_cookies = sess;
    spec.path_param = *f[2] ? f[2] : NULL;
    spec.separator = sep;
    cands = slb_collect_candidates(p, &spec, hdrs, nh, f[4]);
    FZ_CHECK(cands != NULL);
    FZ_CHECK(cands->nelts >= 0 && cands->nelts <= 3 * SLB_MAX_SAME_NAME);
    for (k = 0; k < cands->nelts; k++) {
        const slb_candidate *c = &APR_ARRAY_IDX(cands, k, slb_candidate);
        FZ_CHECK(c->route != NULL && c->id != NULL && c->name != NULL);
        FZ_CHECK(slb_route_ok(c->route, strlen(c->route)));
        if (k > 0) {
            /* route cookie, then URL, then session cookies */
            FZ_CHECK(c->src
                     >= APR_ARRAY_IDX(cands, k - 1, slb_candidate).src);
        }
        switch (c->src) {
        case SLB_SRC_ROUTE_COOKIE:
            FZ_CHECK(c->name == spec.route_cookie);
            FZ_CHECK(*c->id == '\0');
            break;
        case SLB_SRC_URL:
            FZ_CHECK(c->name == spec.path_param);
            FZ_CHECK(*c->id != '\0' && sep != '\0');
            FZ_CHECK(slb_value_ok(c->id, strlen(c->id)));
            FZ_CHECK(strchr(c->id, sep) == NULL);
            break;
        case SLB_SRC_SESSION_COOKIE: {
            int found = 0, j;
            for (j = 0; sess && j < sess->nelts; j++) {
                found |= c->name == APR_ARRAY_IDX(sess, j, const char *);
            }
            FZ_CHECK(found);
            FZ_CHECK(*c->id != '\0' && sep != '\0');
            FZ_CHECK(slb_value_ok(c->id, strlen(c->id)));
            FZ_CHECK(strchr(c->id, sep) == NULL);
            break;
        }
        default:
            FZ_CHECK(!"unexpected candidate source");
        }
    }
    /* the same candidates as the slow way, in the same order */
    {
        static ref_cand want[3 * SLB_MAX_SAME_NAME];
        int nw = ref_candidates(p, &spec, hdrs, nh, f[4], want);
        FZ_CHECK(nw == cands->nelts);
        for (k = 0; k < nw; k++) {
            const slb_candidate *c = &APR_ARRAY_IDX(cands, k, slb_candidate);
            FZ_CHECK(c->src == want[k].src);
            FZ_CHECK(c->name == want[k].name);
            FZ_CHECK(strcmp(c->id, want[k].id) == 0);
            FZ_CHECK(strcmp(c->route, want[k].route) == 0);
        }
    }
    /* the extra names' values, read in the same pass: those
     * slb_cookie_values finds, header after header */
    if (sess) {
        slb_span ev[SLB_MAX_COOKIE_NAMES * SLB_MAX_SAME_NAME];
        int en[SLB_MAX_COOKIE_NAMES];
        apr_array_header_t *c2 = apr_array_make(p, 4, sizeof(slb_candidate));
        slb_collect_candidates_ex(p, c2, &spec, hdrs, nh, f[4], sess, ev,
                                  en);
        FZ_CHECK(c2->nelts == cands->nelts);
        for (k = 0; k < sess->nelts && k < SLB_MAX_COOKIE_NAMES; k++) {
            slb_span rv[SLB_MAX_SAME_NAME];
            int nr = name_values(hdrs, nh,
                                 APR_ARRAY_IDX(sess, k, const char *), rv);
            FZ_CHECK(en[k] == nr);
            for (i = 0; i < nr; i++) {
                FZ_CHECK(ev[k * SLB_MAX_SAME_NAME + i].ptr == rv[i].ptr);
                FZ_CHECK(ev[k * SLB_MAX_SAME_NAME + i].len == rv[i].len);
            }
        }
    }
    FZ_CHECK(slb_collect_candidates(p, NULL, hdrs, nh, f[4])->nelts == 0);

    /* a plan with a memo: the walk, then the memo on the same header and
     * on a copy of it, give the values and candidates of no memo */
    if (nh == 1 && hdrs[0]) {
        static slb_cookie_memo memo;
        static slb_span v0[SLB_PLAN_NAMES * SLB_MAX_SAME_NAME];
        static slb_span v1[SLB_PLAN_NAMES * SLB_MAX_SAME_NAME];
        int c0[SLB_PLAN_NAMES], c1[SLB_PLAN_NAMES], round;
        slb_cookie_plan pl;
        apr_array_header_t *a0 = apr_array_make(p, 4, sizeof(slb_candidate));
        const char *copy = apr_pstrdup(p, hdrs[0]);

        slb_cookie_plan_make(&pl, &spec, sess);
        memset(&memo, 0, sizeof(memo));
        slb_collect_candidates_plan(p, a0, &pl, NULL, hdrs, 1, f[4], v0, c0);
        for (round = 0; round < 3; round++) {
            const char *h = round == 2 ? copy : hdrs[0];
            apr_array_header_t *a1 = apr_array_make(p, 4,
                                                    sizeof(slb_candidate));
            slb_collect_candidates_plan(p, a1, &pl, &memo, &h, 1, f[4], v1,
                                        c1);
            FZ_CHECK(a1->nelts == a0->nelts);
            for (k = 0; k < a0->nelts; k++) {
                const slb_candidate *x = &APR_ARRAY_IDX(a0, k, slb_candidate);
                const slb_candidate *y = &APR_ARRAY_IDX(a1, k, slb_candidate);
                FZ_CHECK(x->src == y->src && x->name == y->name);
                FZ_CHECK(strcmp(x->id, y->id) == 0);
                FZ_CHECK(strcmp(x->route, y->route) == 0);
            }
            for (k = 0; k < pl.nnames; k++) {
                FZ_CHECK(c1[k] == c0[k]);
                for (i = 0; i < c0[k]; i++) {
                    const slb_span *x = &v0[k * SLB_MAX_SAME_NAME + i];
                    const slb_span *y = &v1[k * SLB_MAX_SAME_NAME + i];
                    FZ_CHECK(y->len == x->len);
                    FZ_CHECK(y->ptr == h + (x->ptr - hdrs[0]));
                }
            }
        }
    }

    /* --- token helpers on the names */
    for (i = 0; i < 3; i++) {
        size_t j, n = strlen(f[i]);
        int tok = n > 0;
        for (j = 0; j < n; j++) {
            tok &= slb_is_token_char((unsigned char)f[i][j]);
        }
        FZ_CHECK(slb_is_token(f[i], (apr_size_t)-1) == tok);
        FZ_CHECK(slb_is_token(f[i], n) == tok);
        if (n > 0) {
            FZ_CHECK(slb_is_token(f[i], n - 1) == 0);
        }
    }

    fz_end();
    return 0;
}
