/*
 * stickylb_codec.c - cookie, route and path-parameter codec (APR only).
 *
 * See include/stickylb_codec.h for the contract of each function.
 */
#include <string.h>
#include <stdlib.h>
#include <errno.h>

#include <apr_strings.h>
#include <apr_lib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "stickylb_codec.h"
#include "stickylb_conf.h"

const char *slb_source_name(slb_source src)
{
    switch (src) {
    case SLB_SRC_ROUTE_COOKIE:   return "route-cookie";
    case SLB_SRC_URL:            return "url";
    case SLB_SRC_SESSION_COOKIE: return "session-cookie";
    case SLB_SRC_LEARNED:        return "learned";
    case SLB_SRC_HEADER:         return "header";
    case SLB_SRC_QUERY:          return "query";
    case SLB_SRC_ADDRESS:        return "address";
    case SLB_SRC_COOKIE:         return "cookie";
    default:                     return "none";
    }
}

int slb_is_token_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return 0;
    }
    /* RFC 7230 separators are not token characters */
    return strchr("()<>@,;:\\\"/[]?={}", c) == NULL;
}

int slb_is_token(const char *s, apr_size_t maxlen)
{
    apr_size_t i;

    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (i = 0; s[i]; i++) {
        if (i >= maxlen || !slb_is_token_char((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* RFC 6265 cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E */
#define OCT4(c) ((c) > 0x20 && (c) < 0x7f && (c) != '"' && (c) != ','    \
                 && (c) != ';' && (c) != '\\')
#define OCT_ROW(b) OCT4(b), OCT4(b + 1), OCT4(b + 2), OCT4(b + 3),        \
                   OCT4(b + 4), OCT4(b + 5), OCT4(b + 6), OCT4(b + 7)
static const unsigned char cookie_octet[256] = {
    OCT_ROW(0x00), OCT_ROW(0x08), OCT_ROW(0x10), OCT_ROW(0x18),
    OCT_ROW(0x20), OCT_ROW(0x28), OCT_ROW(0x30), OCT_ROW(0x38),
    OCT_ROW(0x40), OCT_ROW(0x48), OCT_ROW(0x50), OCT_ROW(0x58),
    OCT_ROW(0x60), OCT_ROW(0x68), OCT_ROW(0x70), OCT_ROW(0x78)
    /* 0x80..0xff: 0 */
};
#undef OCT_ROW
#undef OCT4

/*
 * 1 when none of the 8 bytes of x is outside cookie-octet: bytes below
 * 0x21 or above 0x7e, and '"', ',', ';', '\\' (the classic exact tests
 * for "some byte is zero" and "some byte is below n", n <= 128).
 */
static int octets8_ok(apr_uint64_t x)
{
    const apr_uint64_t ones = APR_UINT64_C(0x0101010101010101);
    const apr_uint64_t high = APR_UINT64_C(0x8080808080808080);
#define HAS_ZERO(w) (((w) - ones) & ~(w) & high)
    apr_uint64_t bad = ((x - ones * 0x21) & ~x & high)   /* < 0x21 */
                       | ((x | (x + ones)) & high)        /* >= 0x7f */
                       | HAS_ZERO(x ^ (ones * '"'))
                       | HAS_ZERO(x ^ (ones * ','))
                       | HAS_ZERO(x ^ (ones * ';'))
                       | HAS_ZERO(x ^ (ones * '\\'));
#undef HAS_ZERO
    return bad == 0;
}

#ifdef __SSE2__
/*
 * One bit per byte of u[0..15], set where the byte is a cookie-octet: as
 * signed bytes, a cookie-octet is above 0x20 and below 0x7f (0x80..0xff
 * are negative), and none of '"', ',', ';', '\\'. 0xffff when all are.
 * Inline on the request path: the constants hoist out of the callers'
 * loops, so each caller compiles as with the check written out.
 */
static inline unsigned octets16_mask(const unsigned char *u)
{
    const __m128i lo = _mm_set1_epi8(0x20), hi = _mm_set1_epi8(0x7f);
    const __m128i q = _mm_set1_epi8('"'), c = _mm_set1_epi8(',');
    const __m128i sc = _mm_set1_epi8(';'), bs = _mm_set1_epi8('\\');
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)u);
    __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi));
    __m128i bad = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, c)),
        _mm_or_si128(_mm_cmpeq_epi8(x, sc), _mm_cmpeq_epi8(x, bs)));

    return (unsigned)_mm_movemask_epi8(_mm_andnot_si128(bad, ok));
}
#endif

int slb_value_ok(const char *v, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)v, *e;

    if (v == NULL || len == 0 || len > SLB_MAX_VALUE_LEN) {
        return 0;
    }
    e = u + len;
#ifdef __SSE2__
    /* 16 bytes at a time */
    for (; e - u >= 16; u += 16) {
        if (octets16_mask(u) != 0xffff) {
            return 0;
        }
    }
#endif
    /* then 8 bytes at a time, then the rest */
    for (; e - u >= 8; u += 8) {
        apr_uint64_t x;
        memcpy(&x, u, 8);
        if (!octets8_ok(x)) {
            return 0;
        }
    }
    for (; u < e; u++) {
        if (!cookie_octet[*u]) {
            return 0;
        }
    }
    return 1;
}

int slb_header_value_ok(const char *v, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)v, *e;

    if (v == NULL || len == 0 || len > SLB_MAX_VALUE_LEN) {
        return 0;
    }
    for (e = u + len; u < e; u++) {
        if ((*u < 0x20 && *u != '\t') || *u >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

int slb_route_ok(const char *v, apr_size_t len)
{
    return len <= SLB_MAX_ROUTE_LEN && slb_value_ok(v, len);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Walk the pairs of a Cookie header.  For each pair calls fn with the
 * name and value spans (value NULL when the pair has no '='); stops when
 * fn returns non-zero.
 */
typedef int (*pair_fn)(void *baton, slb_span name, const slb_span *value,
                       slb_span whole);

static void walk_pairs(const char *hdr, pair_fn fn, void *baton)
{
    const char *p = hdr;

    if (hdr == NULL) {
        return;
    }
    while (*p) {
        const char *start, *eq, *end, *ne;
        slb_span name, value, whole;

        /* ';' separates pairs (RFC 6265); ',' too: it cannot occur in a
         * cookie-octet, and httpd joins repeated Cookie headers with ", ";
         * but not inside a quoted value ("a,b"), where ';' still does
         * (a user agent splits on ';' whatever the quotes) */
        while (*p == ';' || *p == ',' || is_ws(*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        start = p;
        p += strcspn(p, "=;,");
        if (*p == '=') {
            p++;
            while (is_ws(*p)) {
                p++;
            }
            if (*p == '"') {
                p++;
                p += strcspn(p, "\";");
                if (*p == '"') {
                    p++;
                }
            }
            p += strcspn(p, ";,");
        }
        end = p;
        eq = memchr(start, '=', (apr_size_t)(end - start));
        while (end > start && is_ws(end[-1])) {
            end--;
        }
        whole.ptr = start;
        whole.len = (apr_size_t)(end - start);

        ne = eq ? eq : end;
        while (ne > start && is_ws(ne[-1])) {
            ne--;
        }
        name.ptr = start;
        name.len = (apr_size_t)(ne - start);

        if (eq) {
            const char *vs = eq + 1;
            while (vs < end && is_ws(*vs)) {
                vs++;
            }
            value.ptr = vs;
            value.len = (apr_size_t)(end - vs);
            if (fn(baton, name, &value, whole)) {
                return;
            }
        }
        else if (fn(baton, name, NULL, whole)) {
            return;
        }
    }
}

typedef struct {
    const char *name;
    apr_size_t nlen;
    slb_span *out;
    int max;
    int n;
} values_baton;

static int values_cb(void *b, slb_span name, const slb_span *value,
                     slb_span whole)
{
    values_baton *vb = b;
    slb_span v;

    (void)whole;
    if (value == NULL || name.len != vb->nlen
        || memcmp(name.ptr, vb->name, vb->nlen) != 0) {
        return 0;
    }
    v = *value;
    if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') {
        v.ptr++;
        v.len -= 2;
    }
    if (slb_value_ok(v.ptr, v.len)) {
        vb->out[vb->n++] = v;
    }
    return vb->n >= vb->max;
}

int slb_cookie_values(const char *hdr, const char *name,
                      slb_span *out, int max)
{
    values_baton vb;

    if (hdr == NULL || name == NULL || *name == '\0' || out == NULL
        || max <= 0) {
        return 0;
    }
    vb.name = name;
    vb.nlen = strlen(name);
    vb.out = out;
    vb.max = max;
    vb.n = 0;
    walk_pairs(hdr, values_cb, &vb);
    return vb.n;
}

int slb_split_route(const char *v, apr_size_t len, char sep,
                    int allow_empty_id, slb_span *id, slb_span *route)
{
    const char *s;

    if (v == NULL || len == 0 || sep == '\0') {
        return 0;
    }
    s = memchr(v, sep, len);
    if (s == NULL) {
        return 0;
    }
    if (s == v && !allow_empty_id) {
        return 0;
    }
    route->ptr = s + 1;
    route->len = len - (apr_size_t)(s + 1 - v);
    if (!slb_route_ok(route->ptr, route->len)) {
        return 0;
    }
    id->ptr = v;
    id->len = (apr_size_t)(s - v);
    return 1;
}

int slb_path_param(const char *uri, const char *name, slb_span *out)
{
    apr_size_t nlen, plen;
    const char *p;

    if (uri == NULL || name == NULL || *name == '\0') {
        return 0;
    }
    /* most URIs have no ';' at all */
    p = strchr(uri, ';');
    if (p == NULL) {
        return 0;
    }
    nlen = strlen(name);
    plen = strcspn(uri, "?#");
    if ((apr_size_t)(p - uri) >= plen) {
        return 0;
    }
    for (; p != NULL;
         p = memchr(p + 1, ';', plen - (apr_size_t)(p + 1 - uri))) {
        const char *v, *e;
        apr_size_t rest = plen - (apr_size_t)(p + 1 - uri);

        if (rest <= nlen || strncasecmp(p + 1, name, nlen) != 0
            || p[1 + nlen] != '=') {
            continue;
        }
        v = p + 1 + nlen + 1;
        e = v;
        while (e < uri + plen && *e != ';' && *e != '/') {
            e++;
        }
        if (slb_value_ok(v, (apr_size_t)(e - v))) {
            out->ptr = v;
            out->len = (apr_size_t)(e - v);
            return 1;
        }
        /* an invalid value: a later occurrence may still be valid */
    }
    return 0;
}

int slb_query_param(const char *args, const char *name, slb_span *out)
{
    apr_size_t nlen;
    const char *p;

    if (args == NULL || name == NULL || *name == '\0') {
        return 0;
    }
    nlen = strlen(name);
    p = args;
    while (*p) {
        const char *end = p + strcspn(p, "&;#");
        if ((apr_size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0
            && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            if (slb_value_ok(v, (apr_size_t)(end - v))) {
                out->ptr = v;
                out->len = (apr_size_t)(end - v);
                return 1;
            }
        }
        if (*end == '\0' || *end == '#') {
            break;
        }
        p = end + 1;
    }
    return 0;
}

int slb_set_cookie_value(const char *hdr, const char *name, slb_span *value)
{
    apr_size_t nlen;
    const char *p, *semi, *eq, *v, *ve;
    int max_age_deletes = 0;

    if (hdr == NULL || name == NULL || *name == '\0') {
        return 0;
    }
    nlen = strlen(name);
    p = hdr;
    while (is_ws(*p)) {
        p++;
    }
    semi = p + strcspn(p, ";");
    eq = memchr(p, '=', (apr_size_t)(semi - p));
    if (eq == NULL) {
        return 0;
    }
    ve = eq;
    while (ve > p && is_ws(ve[-1])) {
        ve--;
    }
    if ((apr_size_t)(ve - p) != nlen || memcmp(p, name, nlen) != 0) {
        return 0;
    }
    v = eq + 1;
    while (v < semi && is_ws(*v)) {
        v++;
    }
    ve = semi;
    while (ve > v && is_ws(ve[-1])) {
        ve--;
    }
    if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
        v++;
        ve--;
    }
    /* attributes: the last valid Max-Age decides (RFC 6265 5.2.2 and
     * 5.3: a value is "-"? DIGIT+; anything else is ignored); 0 or less
     * deletes the cookie */
    for (p = semi; *p == ';';) {
        const char *a = p + 1, *an, *x, *xe, *d;
        int nonzero = 0, digits = 1;

        while (is_ws(*a)) {
            a++;
        }
        an = a + strcspn(a, ";");
        p = an;
        if (strncasecmp(a, "max-age", 7) != 0) {
            continue;
        }
        x = a + 7;
        while (is_ws(*x)) {
            x++;
        }
        if (*x != '=') {
            continue;
        }
        x++;
        while (x < an && is_ws(*x)) {
            x++;
        }
        xe = an;
        while (xe > x && is_ws(xe[-1])) {
            xe--;
        }
        d = x + (x < xe && *x == '-');
        if (d == xe) {
            continue;
        }
        for (; d < xe; d++) {
            digits &= apr_isdigit(*d) != 0;
            nonzero |= *d != '0';
        }
        if (digits) {
            max_age_deletes = *x == '-' || !nonzero;
        }
    }
    if (max_age_deletes) {
        return 2;
    }
    if (ve == v) {
        return 2;
    }
    if (!slb_value_ok(v, (apr_size_t)(ve - v))) {
        return 0;
    }
    value->ptr = v;
    value->len = (apr_size_t)(ve - v);
    return 1;
}

static void push_candidate(apr_pool_t *p, apr_array_header_t *arr,
                           slb_source src, const char *name,
                           slb_span id, slb_span route)
{
    slb_candidate *c;

    if (arr->nelts >= 3 * SLB_MAX_SAME_NAME) {
        return;
    }
    c = arr->nelts < arr->nalloc
            ? &((slb_candidate *)(void *)arr->elts)[arr->nelts++]
            : apr_array_push(arr);
    c->src = src;
    c->name = name;
    if (id.len == 0) {
        c->id = "";
        c->route = apr_pstrmemdup(p, route.ptr, route.len);
    }
    else {
        /* one allocation for both strings; one copy when the route
         * follows the id and its separator (as slb_split_route cuts) */
        char *b = apr_palloc(p, id.len + route.len + 2);
        if (route.ptr == id.ptr + id.len + 1) {
            memcpy(b, id.ptr, id.len + 1 + route.len);
        }
        else {
            memcpy(b, id.ptr, id.len);
            memcpy(b + id.len + 1, route.ptr, route.len);
        }
        b[id.len] = '\0';
        b[id.len + 1 + route.len] = '\0';
        c->id = b;
        c->route = b + id.len + 1;
    }
}

/*
 * The values of several cookie names across all Cookie headers in one
 * pass over them: for names[k], at most SLB_MAX_SAME_NAME values in
 * out[k * SLB_MAX_SAME_NAME ...], in header order, n[k] of them (the
 * same values slb_cookie_values() gives for each name alone).
 */
/* the route cookie, the session cookies, the extra (learned) cookies */
#define MULTI_MAX SLB_PLAN_NAMES
typedef struct {
    const char *const *names;
    const apr_size_t *nlen;
    int nnames;
    slb_span *out;
    int *n;
} multi_baton;

/*
 * The first byte of [s, e) that is not a cookie-octet, or e: the end of a
 * valid value and the check of it in one scan.
 */
static const char *octet_run(const char *s, const char *e)
{
    const unsigned char *u = (const unsigned char *)s;
    const unsigned char *ue = (const unsigned char *)e;

#ifdef __SSE2__
    for (; ue - u >= 16; u += 16) {
        unsigned m = octets16_mask(u);
        if (m != 0xffff) {
            return (const char *)u + __builtin_ctz(~m);
        }
    }
#endif
    for (; ue - u >= 8; u += 8) {
        apr_uint64_t x;
        memcpy(&x, u, 8);
        if (!octets8_ok(x)) {
            break;
        }
    }
    while (u < ue && cookie_octet[*u]) {
        u++;
    }
    return (const char *)u;
}

/* the bytes that end a cookie name: '=', ';', ',' */
static const unsigned char name_stop[256] = {
    ['='] = 1, [';'] = 1, [','] = 1
};

/* memcmp(a, b, n) == 0 for the short names of cookies, without the call */
static int same_bytes(const char *a, const char *b, apr_size_t n)
{
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        apr_uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) {
            return 0;
        }
    }
    for (; n > 0; a++, b++, n--) {
        if (*a != *b) {
            return 0;
        }
    }
    return 1;
}

/* The first '=', ';' or ',' of [p, e), or e. */
static const char *name_end(const char *p, const char *e)
{
#ifdef __SSE2__
    const __m128i eq = _mm_set1_epi8('='), sc = _mm_set1_epi8(';');
    const __m128i c = _mm_set1_epi8(',');

    for (; e - p >= 16; p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, eq),
                                      _mm_cmpeq_epi8(x, sc)),
                         _mm_cmpeq_epi8(x, c)));
        if (m) {
            return p + __builtin_ctz(m);
        }
    }
#endif
    while (p < e && !name_stop[(unsigned char)*p]) {
        p++;
    }
    return p;
}

/* The first byte c of v[0..len), or NULL (memchr for the short values of
 * cookies, without the call). */
static const char *find_byte(const char *v, apr_size_t len, char c)
{
    const char *e = v + len;

#ifdef __SSE2__
    const __m128i x = _mm_set1_epi8(c);

    for (; e - v >= 16; v += 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
            _mm_loadu_si128((const __m128i *)(const void *)v), x));
        if (m) {
            return v + __builtin_ctz(m);
        }
    }
#endif
    for (; v < e; v++) {
        if (*v == c) {
            return v;
        }
    }
    return NULL;
}

/*
 * multi_cookie_values' walk of one header: the pairs walk_pairs finds,
 * with their values checked (slb_value_ok, after the quotes are taken
 * off) only for the names looked for.  A value that is a run of
 * cookie-octets up to the end of its pair (the common case) is found and
 * checked in one scan (octet_run); any other shape (quotes, whitespace,
 * bytes outside cookie-octet) takes walk_pairs' steps.
 */
static void multi_walk(const char *hdr, multi_baton *mb)
{
    const char *p = hdr, *e = hdr + strlen(hdr);

    while (p < e) {
        const char *start, *eq, *vs, *end, *ne;
        apr_size_t nlen;
        int known_ok = 0, k;

        while (p < e && (*p == ';' || *p == ',' || is_ws(*p))) {
            p++;
        }
        if (p == e) {
            break;
        }
        start = p;
        p = name_end(p, e);
        if (p == e || *p != '=') {
            continue;          /* a pair without a value */
        }
        eq = p++;
        while (p < e && is_ws(*p)) {
            p++;
        }
        if (p < e && *p == '"') {
            p++;
            while (p < e && *p != '"' && *p != ';') {
                p++;
            }
            if (p < e && *p == '"') {
                p++;
            }
            while (p < e && *p != ';' && *p != ',') {
                p++;
            }
        }
        else {
            const char *vb = p;
            p = octet_run(p, e);
            if (p == e || *p == ';' || *p == ',') {
                known_ok = p > vb;   /* cookie-octets only, not empty */
            }
            else {
                while (p < e && *p != ';' && *p != ',') {
                    p++;
                }
            }
        }
        end = p;
        while (end > start && is_ws(end[-1])) {
            end--;
        }
        ne = eq;
        while (ne > start && is_ws(ne[-1])) {
            ne--;
        }
        nlen = (apr_size_t)(ne - start);
        vs = eq + 1;
        while (vs < end && is_ws(*vs)) {
            vs++;
        }
        for (k = 0; k < mb->nnames; k++) {
            slb_span v;
            int ok;

            if (nlen != mb->nlen[k] || mb->n[k] >= SLB_MAX_SAME_NAME
                || !same_bytes(start, mb->names[k], nlen)) {
                continue;
            }
            v.ptr = vs;
            v.len = (apr_size_t)(end - vs);
            if (known_ok) {
                ok = v.len <= SLB_MAX_VALUE_LEN;
            }
            else {
                if (v.len >= 2 && v.ptr[0] == '"'
                    && v.ptr[v.len - 1] == '"') {
                    v.ptr++;
                    v.len -= 2;
                }
                ok = slb_value_ok(v.ptr, v.len);
            }
            if (ok) {
                mb->out[k * SLB_MAX_SAME_NAME + mb->n[k]++] = v;
            }
        }
    }
}

static void multi_cookie_values(const char *const *hdrs, int n_hdrs,
                                const slb_cookie_plan *pl, slb_span *out,
                                int *n)
{
    multi_baton mb;
    int i;

    mb.names = pl->names;
    mb.nlen = pl->nlen;
    mb.nnames = pl->nnames;
    mb.out = out;
    mb.n = n;
    for (i = 0; i < pl->nnames; i++) {
        n[i] = 0;
    }
    for (i = 0; i < n_hdrs; i++) {
        if (hdrs[i]) {
            multi_walk(hdrs[i], &mb);
        }
    }
}

/*
 * slb_split_route of a value known to be valid (all cookie-octets): a
 * part of it is valid too, only the route's length is left to check.
 */
static int split_valid(slb_span v, char sep, slb_span *id, slb_span *route)
{
    const char *s;

    if (sep == '\0' || v.len == 0) {
        return 0;
    }
    s = find_byte(v.ptr, v.len, sep);
    if (s == NULL || s == v.ptr) {
        return 0;
    }
    route->ptr = s + 1;
    route->len = v.len - (apr_size_t)(s + 1 - v.ptr);
    if (route->len == 0 || route->len > SLB_MAX_ROUTE_LEN) {
        return 0;
    }
    id->ptr = v.ptr;
    id->len = (apr_size_t)(s - v.ptr);
    return 1;
}

apr_array_header_t *slb_collect_candidates(apr_pool_t *p,
                                           const slb_key_spec *spec,
                                           const char *const *cookie_hdrs,
                                           int n_hdrs, const char *raw_uri)
{
    apr_array_header_t *arr = apr_array_make(p, 4, sizeof(slb_candidate));

    slb_collect_candidates_into(p, arr, spec, cookie_hdrs, n_hdrs, raw_uri);
    return arr;
}

void slb_collect_candidates_into(apr_pool_t *p, apr_array_header_t *arr,
                                 const slb_key_spec *spec,
                                 const char *const *cookie_hdrs, int n_hdrs,
                                 const char *raw_uri)
{
    slb_collect_candidates_ex(p, arr, spec, cookie_hdrs, n_hdrs, raw_uri,
                              NULL, NULL, NULL);
}

void slb_cookie_plan_make(slb_cookie_plan *pl, const slb_key_spec *spec,
                          const apr_array_header_t *extra)
{
    int k;

    memset(pl, 0, sizeof(*pl));
    pl->spec = spec;
    if (spec == NULL) {
        return;
    }
    /* every cookie name wanted, in precedence order: the route cookie,
     * then the session cookies (at most SLB_MAX_COOKIE_NAMES of them) */
    if (spec->route_cookie && *spec->route_cookie) {
        pl->names[pl->nnames++] = spec->route_cookie;
    }
    pl->first_session = pl->nnames;
    if (spec->session_cookies) {
        for (k = 0; k < spec->session_cookies->nelts
                    && pl->nsessions < SLB_MAX_COOKIE_NAMES; k++) {
            const char *name = APR_ARRAY_IDX(spec->session_cookies, k,
                                             const char *);
            if (name && *name) {
                pl->names[pl->nnames++] = name;
                pl->nsessions++;
            }
        }
    }
    /* the extra names' values are read in the same pass */
    pl->first_extra = pl->nnames;
    for (k = 0; extra && k < extra->nelts
                && pl->nnames - pl->first_extra < SLB_MAX_COOKIE_NAMES; k++) {
        const char *name = APR_ARRAY_IDX(extra, k, const char *);
        pl->names[pl->nnames++] = name && *name ? name : "";
    }
    for (k = 0; k < pl->nnames; k++) {
        pl->nlen[k] = strlen(pl->names[k]);
    }
}

/* The values of the one Cookie header hdr (len bytes): from the memo when
 * it remembers this header under this plan, else by the walk, then
 * remembered. */
static void memo_values(const slb_cookie_plan *pl, slb_cookie_memo *memo,
                        const char *hdr, apr_size_t len, slb_span *vals,
                        int *counts)
{
    int i, k, n = 0;

    if (memo->plan == pl && memo->len == len
        && memcmp(memo->hdr, hdr, len) == 0) {
        for (k = 0; k < pl->nnames; k++) {
            counts[k] = 0;
        }
        for (i = 0; i < memo->nvalues; i++) {
            slb_span *v = &vals[memo->v[i].k * SLB_MAX_SAME_NAME
                                + memo->v[i].i];
            v->ptr = hdr + memo->v[i].off;
            v->len = memo->v[i].len;
            counts[memo->v[i].k] = memo->v[i].i + 1;
        }
        return;
    }
    multi_cookie_values(&hdr, 1, pl, vals, counts);
    memo->plan = NULL;
    for (k = 0; k < pl->nnames; k++) {
        for (i = 0; i < counts[k]; i++) {
            const slb_span *v = &vals[k * SLB_MAX_SAME_NAME + i];
            if (n == SLB_MEMO_VALUES) {
                return;   /* too many to remember */
            }
            memo->v[n].k = (unsigned char)k;
            memo->v[n].i = (unsigned char)i;
            memo->v[n].off = (apr_uint16_t)(v->ptr - hdr);
            memo->v[n].len = (apr_uint16_t)v->len;
            n++;
        }
    }
    memcpy(memo->hdr, hdr, len);
    memo->len = len;
    memo->nvalues = n;
    memo->plan = pl;
}

void slb_collect_candidates_plan(apr_pool_t *p, apr_array_header_t *arr,
                                 const slb_cookie_plan *pl,
                                 slb_cookie_memo *memo,
                                 const char *const *cookie_hdrs, int n_hdrs,
                                 const char *raw_uri, slb_span *vals,
                                 int *counts)
{
    const slb_key_spec *spec = pl->spec;
    slb_span id, route;
    int i, k;
    apr_size_t len;

    if (spec == NULL) {
        return;
    }
    if (pl->nnames > 0 && memo && n_hdrs == 1 && cookie_hdrs[0]
        && (len = strlen(cookie_hdrs[0])) <= SLB_MEMO_HDR_MAX) {
        memo_values(pl, memo, cookie_hdrs[0], len, vals, counts);
    }
    else if (pl->nnames > 0 && n_hdrs > 0) {
        multi_cookie_values(cookie_hdrs, n_hdrs, pl, vals, counts);
    }
    else {
        for (k = 0; k < pl->nnames; k++) {
            counts[k] = 0;
        }
    }
    if (pl->first_session == 1) {
        for (i = 0; i < counts[0]; i++) {
            /* our own form is the bare route; the classic mod_headers
             * recipe writes ".route": accept both */
            route = vals[i];
            if (spec->separator && route.ptr[0] == spec->separator) {
                route.ptr++;
                route.len--;
            }
            /* a part of a valid value: valid, its length is left */
            if (route.len >= 1 && route.len <= SLB_MAX_ROUTE_LEN) {
                id.ptr = "";
                id.len = 0;
                push_candidate(p, arr, SLB_SRC_ROUTE_COOKIE,
                               spec->route_cookie, id, route);
            }
        }
    }
    if (spec->path_param && raw_uri) {
        slb_span v;
        if (slb_path_param(raw_uri, spec->path_param, &v)
            && slb_split_route(v.ptr, v.len, spec->separator, 0, &id,
                               &route)) {
            push_candidate(p, arr, SLB_SRC_URL, spec->path_param, id, route);
        }
    }
    for (k = pl->first_session; k < pl->first_session + pl->nsessions; k++) {
        const slb_span *kv = &vals[k * SLB_MAX_SAME_NAME];
        for (i = 0; i < counts[k]; i++) {
            if (split_valid(kv[i], spec->separator, &id, &route)) {
                push_candidate(p, arr, SLB_SRC_SESSION_COOKIE, pl->names[k],
                               id, route);
            }
        }
    }
}

void slb_collect_candidates_ex(apr_pool_t *p, apr_array_header_t *arr,
                               const slb_key_spec *spec,
                               const char *const *cookie_hdrs, int n_hdrs,
                               const char *raw_uri,
                               const apr_array_header_t *extra,
                               slb_span *extra_out, int *extra_n)
{
    slb_cookie_plan pl;
    slb_span vals[MULTI_MAX * SLB_MAX_SAME_NAME];
    int counts[MULTI_MAX];
    int i, k;

    for (k = 0; extra_n && extra && k < extra->nelts
                && k < SLB_MAX_COOKIE_NAMES; k++) {
        extra_n[k] = 0;
    }
    if (spec == NULL) {
        return;
    }
    slb_cookie_plan_make(&pl, spec, extra);
    slb_collect_candidates_plan(p, arr, &pl, NULL, cookie_hdrs, n_hdrs,
                                raw_uri, vals, counts);
    for (k = pl.first_extra; extra_out && k < pl.nnames; k++) {
        int e = k - pl.first_extra;
        extra_n[e] = counts[k];
        for (i = 0; i < counts[k]; i++) {   /* most often one or none */
            extra_out[e * SLB_MAX_SAME_NAME + i] =
                vals[k * SLB_MAX_SAME_NAME + i];
        }
    }
}

typedef struct {
    const char *name;
    apr_size_t nlen;
    apr_array_header_t *pairs;      /* strip_pair, in header order */
    int removed;
} strip_baton;

typedef struct {
    slb_span whole;
    int drop;
} strip_pair;

static int strip_cb(void *b, slb_span name, const slb_span *value,
                    slb_span whole)
{
    strip_baton *sb = b;
    strip_pair *sp = apr_array_push(sb->pairs);

    sp->whole = whole;
    sp->drop = value != NULL && name.len == sb->nlen
               && memcmp(name.ptr, sb->name, sb->nlen) == 0;
    sb->removed += sp->drop;
    return 0;
}

/*
 * The header without the dropped pairs, every other byte as it was: what
 * comes before the first pair, the first pair kept, then each later pair
 * kept with the separator and whitespace that came before it, then what
 * came after the last pair.  A dropped pair so goes with the separator
 * before it (after it when no pair is kept before it).
 */
const char *slb_cookie_strip(apr_pool_t *p, const char *hdr,
                             const char *name, int *removed)
{
    strip_baton sb;
    const strip_pair *pairs;
    char *out, *w;
    const char *tail;
    int i, nkept = 0;

    *removed = 0;
    if (hdr == NULL) {
        return NULL;
    }
    if (name == NULL || *name == '\0') {
        return hdr;
    }
    sb.name = name;
    sb.nlen = strlen(name);
    sb.pairs = apr_array_make(p, 8, sizeof(strip_pair));
    sb.removed = 0;
    walk_pairs(hdr, strip_cb, &sb);
    *removed = sb.removed;
    if (sb.removed == 0) {
        return hdr;
    }
    if (sb.removed == sb.pairs->nelts) {
        return NULL;
    }
    pairs = (const strip_pair *)sb.pairs->elts;
    /* never longer than the header */
    out = w = apr_palloc(p, strlen(hdr) + 1);
    memcpy(w, hdr, (apr_size_t)(pairs[0].whole.ptr - hdr));
    w += pairs[0].whole.ptr - hdr;
    for (i = 0; i < sb.pairs->nelts; i++) {
        const char *from;

        if (pairs[i].drop) {
            continue;
        }
        /* the separator before it: from the end of the pair before */
        from = nkept > 0 && i > 0
                   ? pairs[i - 1].whole.ptr + pairs[i - 1].whole.len
                   : pairs[i].whole.ptr;
        memcpy(w, from, (apr_size_t)(pairs[i].whole.ptr + pairs[i].whole.len
                                     - from));
        w += pairs[i].whole.ptr + pairs[i].whole.len - from;
        nkept++;
    }
    tail = pairs[sb.pairs->nelts - 1].whole.ptr
           + pairs[sb.pairs->nelts - 1].whole.len;
    memcpy(w, tail, strlen(tail));
    w += strlen(tail);
    *w = '\0';
    return out;
}

void slb_cookie_conf_init(slb_cookie_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->name = NULL;
    c->path = "/";
    c->domain = NULL;
    c->secure = 0;
    c->httponly = 1;
    c->samesite = SLB_SAMESITE_LAX;
    c->max_age = -1;
    c->sign_file = NULL;
    c->strict = 0;
    c->opaque = 0;
    c->maxidle = -1;
    c->maxlife = -1;
}

/* seconds from lo to SLB_MAX_DURATION_S (slb_parse_duration: 500ms, 30s
 * or 30; rounded up to whole seconds): 1 and *out */
static int parse_secs(apr_pool_t *p, const char *v, apr_int64_t lo,
                      long *out)
{
    apr_interval_time_t t;

    if (slb_parse_duration(p, v, SLB_UNIT_S, lo,
                           apr_time_from_sec(SLB_MAX_DURATION_S), &t)) {
        return 0;
    }
    *out = (long)slb_duration_secs(t);
    return 1;
}

static int parse_onoff(const char *v, int *out)
{
    if (!strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcmp(v, "1")) {
        *out = 1;
        return 1;
    }
    if (!strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcmp(v, "0")) {
        *out = 0;
        return 1;
    }
    return 0;
}

static int path_ok(const char *v)
{
    const unsigned char *s = (const unsigned char *)v;

    if (*s != '/') {
        return 0;
    }
    for (; *s; s++) {
        if (*s < 0x21 || *s > 0x7e || *s == ';' || *s == ',') {
            return 0;
        }
    }
    return strlen(v) <= 1024;
}

static int domain_ok(const char *v)
{
    const char *s = v;

    if (*s == '.') {
        s++;
    }
    if (*s == '\0' || strlen(s) > 253) {
        return 0;
    }
    for (; *s; s++) {
        if (!apr_isalnum(*s) && *s != '-' && *s != '.') {
            return 0;
        }
    }
    return 1;
}

/* what StickyLBRouteCookie takes after the name (README's order) */
static const char *const cookie_options[] = {
    "insert", "indirect", "nocache", "strict", "opaque", "path=", "domain=",
    "secure=", "httponly=", "samesite=", "max-age=", "sign=", "maxidle=",
    "maxlife=", NULL
};

const char *slb_cookie_conf_parse(apr_pool_t *p, slb_cookie_conf *c,
                                  int argc, const char *const *argv)
{
    int i;

    slb_cookie_conf_init(c);
    if (argc < 1) {
        return "needs a cookie name";
    }
    if (!slb_is_token(argv[0], 128) || argv[0][0] == '$') {
        return apr_psprintf(p, "'%s' is not a valid cookie name", argv[0]);
    }
    c->name = argv[0];
    for (i = 1; i < argc; i++) {
        const char *w = argv[i];
        const char *eq = strchr(w, '=');

        if (!strcasecmp(w, "insert")) {
            c->insert = 1;
        }
        else if (!strcasecmp(w, "indirect")) {
            c->indirect = 1;
        }
        else if (!strcasecmp(w, "nocache")) {
            c->nocache = 1;
        }
        else if (!strcasecmp(w, "strict")) {
            c->strict = 1;
        }
        else if (!strcasecmp(w, "opaque")) {
            c->opaque = 1;
        }
        else if (eq == NULL) {
            return slb_unknown_option(p, w, cookie_options);
        }
        else {
            const char *k = apr_pstrmemdup(p, w, (apr_size_t)(eq - w));
            const char *v = eq + 1;

            if (!strcasecmp(k, "path")) {
                if (!path_ok(v)) {
                    return apr_psprintf(p, "path='%s' must start with '/' and "
                                        "hold no spaces, ';' or ','", v);
                }
                c->path = v;
            }
            else if (!strcasecmp(k, "domain")) {
                if (!domain_ok(v)) {
                    return apr_psprintf(p, "domain='%s' is not a host name",
                                        v);
                }
                c->domain = v;
            }
            else if (!strcasecmp(k, "secure")) {
                if (!parse_onoff(v, &c->secure)) {
                    return apr_psprintf(p, "secure='%s' must be on or off", v);
                }
            }
            else if (!strcasecmp(k, "httponly")) {
                if (!parse_onoff(v, &c->httponly)) {
                    return apr_psprintf(p, "httponly='%s' must be on or off",
                                        v);
                }
            }
            else if (!strcasecmp(k, "samesite")) {
                if (!strcasecmp(v, "lax")) {
                    c->samesite = SLB_SAMESITE_LAX;
                }
                else if (!strcasecmp(v, "strict")) {
                    c->samesite = SLB_SAMESITE_STRICT;
                }
                else if (!strcasecmp(v, "none")) {
                    c->samesite = SLB_SAMESITE_NONE;
                }
                else if (!strcasecmp(v, "off")) {
                    c->samesite = SLB_SAMESITE_OFF;
                }
                else {
                    return apr_psprintf(p, "samesite='%s' must be lax, "
                                        "strict, none or off", v);
                }
            }
            else if (!strcasecmp(k, "max-age")) {
                if (!parse_secs(p, v, 0, &c->max_age)) {
                    return apr_psprintf(p, "max-age='%s' must be a number of "
                                        "seconds from 0 to 315360000", v);
                }
            }
            else if (!strcasecmp(k, "sign")) {
                if (*v == '\0') {
                    return "sign= needs the path of a key file";
                }
                c->sign_file = v;
            }
            else if (!strcasecmp(k, "maxidle")) {
                if (!parse_secs(p, v, APR_USEC_PER_SEC, &c->maxidle)) {
                    return apr_psprintf(p, "maxidle='%s' must be 1 to "
                                        "315360000 seconds", v);
                }
            }
            else if (!strcasecmp(k, "maxlife")) {
                if (!parse_secs(p, v, APR_USEC_PER_SEC, &c->maxlife)) {
                    return apr_psprintf(p, "maxlife='%s' must be 1 to "
                                        "315360000 seconds", v);
                }
            }
            else {
                return slb_unknown_option(p, w, cookie_options);
            }
        }
    }
    if (c->samesite == SLB_SAMESITE_NONE && !c->secure) {
        return "samesite=none needs secure=on (browsers drop the cookie "
               "otherwise)";
    }
    if (c->nocache && !c->insert) {
        return "nocache only applies with insert";
    }
    if (!c->sign_file && (c->strict || c->opaque || c->maxidle > 0
                          || c->maxlife > 0)) {
        return "strict, opaque, maxidle= and maxlife= need sign=KEYFILE";
    }
    if ((c->opaque || c->maxidle > 0 || c->maxlife > 0) && !c->insert) {
        return "opaque, maxidle= and maxlife= need insert";
    }
    return NULL;
}

const char *slb_cookie_build(apr_pool_t *p, const slb_cookie_conf *c,
                             const char *route)
{
    static const char *const ss[] = { "", "; SameSite=Lax",
                                      "; SameSite=Strict",
                                      "; SameSite=None" };
    const char *samesite = "";

    if (c->samesite > SLB_SAMESITE_OFF && c->samesite <= SLB_SAMESITE_NONE) {
        samesite = ss[c->samesite];
    }
    return apr_pstrcat(p, c->name, "=", route,
                       "; Path=", c->path ? c->path : "/",
                       c->domain ? "; Domain=" : "",
                       c->domain ? c->domain : "",
                       c->max_age >= 0
                           ? apr_psprintf(p, "; Max-Age=%ld", c->max_age)
                           : "",
                       c->secure ? "; Secure" : "",
                       c->httponly ? "; HttpOnly" : "",
                       samesite, NULL);
}

/* Split a header value at commas outside quoted strings; trims each part. */
/* 0 when a quoted string of a Cache-Control value is not closed */
static int quotes_balanced(const char *s)
{
    int quoted = 0;

    for (; *s; s++) {
        if (*s == '\\' && quoted && s[1]) {
            s++;
        }
        else if (*s == '"') {
            quoted = !quoted;
        }
    }
    return !quoted;
}

static apr_array_header_t *split_directives(apr_pool_t *p, const char *v)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    const char *s = v;

    while (*s) {
        const char *start, *end;
        int quoted = 0;

        while (*s == ',' || is_ws(*s)) {
            s++;
        }
        if (!*s) {
            break;
        }
        start = s;
        while (*s && (quoted || *s != ',')) {
            if (*s == '\\' && quoted && s[1]) {
                s++;
            }
            else if (*s == '"') {
                quoted = !quoted;
            }
            s++;
        }
        end = s;
        while (end > start && is_ws(end[-1])) {
            end--;
        }
        APR_ARRAY_PUSH(out, const char *) =
            apr_pstrmemdup(p, start, (apr_size_t)(end - start));
    }
    return out;
}

/* 1 when directive d has the name `name` (exactly, any case), with or
 * without an argument. */
static int directive_is(const char *d, const char *name)
{
    apr_size_t n = strlen(name);

    return strncasecmp(d, name, n) == 0
           && (d[n] == '\0' || d[n] == '=' || is_ws(d[n]));
}

const char *slb_cache_control_private(apr_pool_t *p, const char *existing)
{
    apr_array_header_t *parts;
    const char *out = NULL;
    int i, has_private = 0;

    if (existing == NULL || *existing == '\0' || !quotes_balanced(existing)) {
        /* an unbalanced quote would swallow whatever we append: a value
         * no cache can read is replaced */
        return "private";
    }
    parts = split_directives(p, existing);
    for (i = 0; i < parts->nelts; i++) {
        const char *d = APR_ARRAY_IDX(parts, i, const char *);

        if (directive_is(d, "public") || directive_is(d, "s-maxage")) {
            continue;
        }
        if (directive_is(d, "private") || directive_is(d, "no-store")) {
            has_private = 1;
        }
        out = out ? apr_pstrcat(p, out, ", ", d, NULL) : d;
    }
    if (!has_private) {
        out = out ? apr_pstrcat(p, out, ", private", NULL) : "private";
    }
    return out;
}
