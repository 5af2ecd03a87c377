/*
 * fuzz_set_cookie.c - backend response headers: slb_set_cookie_value
 * (session learning from Set-Cookie) and slb_cache_control_private
 * (Cache-Control of responses that set the route cookie).
 *
 * Input: NUL-separated fields: 0 the cookie name, 1 the Set-Cookie header
 * value, 2 the backend's Cache-Control value (absent: NULL).
 *
 * It also checks RFC 6265 section 5.2.2 Max-Age semantics against a
 * reference (the last valid Max-Age decides), and that "private" stays a
 * directive of its own when the backend's Cache-Control holds an
 * unbalanced quote.
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "stickylb_codec.h"

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 6265 5.2.2: does the header's last valid Max-Age attribute expire
 * the cookie?  -1: no valid Max-Age attribute */
static int ref_max_age_deletes(const char *hdr)
{
    const char *p = hdr + strcspn(hdr, ";");
    int verdict = -1;

    while (*p == ';') {
        const char *a = p + 1, *e = a + strcspn(a, ";"), *eq, *ne, *v, *ve;
        p = e;
        while (a < e && is_ws(*a)) {
            a++;
        }
        eq = memchr(a, '=', (size_t)(e - a));
        if (eq == NULL) {
            continue;
        }
        for (ne = eq; ne > a && is_ws(ne[-1]); ne--) {
        }
        if (ne - a != 7 || strncasecmp(a, "max-age", 7) != 0) {
            continue;
        }
        for (v = eq + 1; v < e && is_ws(*v); v++) {
        }
        for (ve = e; ve > v && is_ws(ve[-1]); ve--) {
        }
        if (v == ve || !(isdigit((unsigned char)*v) || *v == '-')) {
            continue;
        }
        {
            const char *d = v + (*v == '-');
            int nonzero = 0, ok = d < ve;
            for (; d < ve; d++) {
                ok &= isdigit((unsigned char)*d) != 0;
                nonzero |= *d != '0';
            }
            if (!ok) {
                continue;
            }
            verdict = *v == '-' || !nonzero;
        }
    }
    return verdict;
}

static void check_set_cookie(apr_pool_t *p, const char *hdr, const char *name)
{
    slb_span v = { NULL, 0 }, w = { NULL, 0 };
    size_t len = strlen(hdr), nlen = strlen(name);
    const char *s = hdr;
    int rc = slb_set_cookie_value(hdr, name, &v);

    FZ_CHECK(rc == 0 || rc == 1 || rc == 2);
    if (nlen == 0) {
        FZ_CHECK(rc == 0);
    }
    if (rc == 0) {
        return;
    }
    /* the header sets `name`: "<ws>name<ws>=" */
    while (is_ws(*s)) {
        s++;
    }
    FZ_CHECK(strncmp(s, name, nlen) == 0);
    s += nlen;
    while (is_ws(*s)) {
        s++;
    }
    FZ_CHECK(*s == '=');
    if (rc == 2) {
        /* deleted: an empty value, or a valid Max-Age that expires it */
        const char *vb = s + 1, *ve = s + strcspn(s, ";");
        while (vb < ve && is_ws(*vb)) {
            vb++;
        }
        while (ve > vb && is_ws(ve[-1])) {
            ve--;
        }
        FZ_CHECK(ve == vb || (ve - vb == 2 && vb[0] == '"' && vb[1] == '"')
                 || ref_max_age_deletes(hdr) == 1);
        return;
    }
    FZ_CHECK(FZ_INSIDE(v.ptr, v.len, hdr, strcspn(hdr, ";")));
    FZ_CHECK(v.len <= len);
    FZ_CHECK(slb_value_ok(v.ptr, v.len));
    FZ_CHECK(v.ptr > s);
    FZ_CHECK(v.ptr[-1] == '=' || v.ptr[-1] == '"' || is_ws(v.ptr[-1]));
    FZ_CHECK(ref_max_age_deletes(hdr) != 1);
    /* the value survives a round trip through the headers we would see */
    {
        const char *val = apr_pstrmemdup(p, v.ptr, v.len);
        const char *h1 = apr_pstrcat(p, name, "=", val,
                                     "; Path=/; HttpOnly", NULL);
        const char *h2 = apr_pstrcat(p, " ", name, " = \"", val,
                                     "\" ;Max-Age=3600", NULL);
        const char *h3 = apr_pstrcat(p, name, "=", val, "; Max-Age=0", NULL);
        FZ_CHECK(slb_set_cookie_value(h1, name, &w) == 1);
        FZ_CHECK(w.len == v.len && memcmp(w.ptr, v.ptr, v.len) == 0);
        FZ_CHECK(slb_set_cookie_value(h2, name, &w) == 1);
        FZ_CHECK(w.len == v.len && memcmp(w.ptr, v.ptr, v.len) == 0);
        FZ_CHECK(slb_set_cookie_value(h3, name, &w) == 2);
    }
}

/* the quote state at the end of a Cache-Control value, scanned like
 * stickylb_codec.c's split_directives (backslash escapes inside quotes) */
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

/* top-level directives of a Cache-Control value, split outside quotes */
static apr_array_header_t *directives(apr_pool_t *p, const char *v)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    const char *s = v;

    while (*s) {
        const char *b, *e;
        int quoted = 0;
        while (*s == ',' || is_ws(*s)) {
            s++;
        }
        if (!*s) {
            break;
        }
        b = s;
        for (; *s && (quoted || *s != ','); s++) {
            if (*s == '\\' && quoted && s[1]) {
                s++;
            }
            else if (*s == '"') {
                quoted = !quoted;
            }
        }
        for (e = s; e > b && is_ws(e[-1]); e--) {
        }
        APR_ARRAY_PUSH(out, const char *) = apr_pstrmemdup(p, b, (size_t)(e - b));
    }
    return out;
}

static int named(const char *d, const char *name)
{
    size_t n = strlen(name);

    return strncasecmp(d, name, n) == 0
           && (d[n] == '\0' || d[n] == '=' || is_ws(d[n]));
}

static void check_cache_control(apr_pool_t *p, const char *cc)
{
    const char *out = slb_cache_control_private(p, cc), *again;
    apr_array_header_t *ds;
    int i, priv = 0;

    FZ_CHECK(out != NULL && *out != '\0');
    if (cc == NULL || *cc == '\0') {
        FZ_CHECK(strcmp(out, "private") == 0);
        return;
    }
    /* no byte comes from nowhere: no CR, LF or NUL appears */
    if (strpbrk(cc, "\r\n") == NULL) {
        FZ_CHECK(strpbrk(out, "\r\n") == NULL);
    }
    FZ_CHECK(strlen(out) <= strlen(cc) + strlen(", private")
             + 2 * (strlen(cc) + 1));
    ds = directives(p, out);
    for (i = 0; i < ds->nelts; i++) {
        const char *d = APR_ARRAY_IDX(ds, i, const char *);
        FZ_CHECK(!named(d, "public"));
        FZ_CHECK(!named(d, "s-maxage"));
        priv |= named(d, "private") || named(d, "no-store");
    }
    FZ_CHECK(priv);
    if (quotes_balanced(cc)) {
        /* making it private twice changes nothing */
        again = slb_cache_control_private(p, out);
        FZ_CHECK(strcmp(again, out) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *f[3];
    int nf = fz_split(data, size, f, 3);
    slb_span v;

    if (nf < 2) {
        f[1] = fz_str((const uint8_t *)"", 0);
    }
    check_set_cookie(p, f[1], f[0]);
    /* the whole input as a header, the usual cookie names */
    check_set_cookie(p, f[1], "JSESSIONID");
    check_set_cookie(p, f[0], "JSESSIONID");
    FZ_CHECK(slb_set_cookie_value(NULL, f[0], &v) == 0);
    FZ_CHECK(slb_set_cookie_value(f[1], NULL, &v) == 0);
    check_cache_control(p, nf >= 3 ? f[2] : NULL);
    check_cache_control(p, f[1]);
    fz_end();
    return 0;
}
