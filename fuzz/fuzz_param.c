/*
 * fuzz_param.c - request URIs: slb_path_param (";jsessionid=" path
 * parameters) and slb_query_param (raw query strings).
 *
 * Input: NUL-separated fields: 0 the parameter name, 1 the raw URI (the
 * query string given to slb_query_param is the part after its first '?',
 * and the whole field is tried as a query string too).
 *
 * Each result is checked for its position and framing, and against a
 * straightforward reference implementation of the documented contract.
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <strings.h>

#include "stickylb_codec.h"

/* reference: first ";name=value" in the path part whose value is valid */
static int ref_path_param(const char *uri, const char *name, slb_span *out)
{
    size_t plen = strcspn(uri, "?#"), nlen = strlen(name), i;

    if (nlen == 0) {
        return 0;
    }
    for (i = 0; i < plen; i++) {
        size_t v, e;
        if (uri[i] != ';' || i + 1 + nlen >= plen
            || strncasecmp(uri + i + 1, name, nlen) != 0
            || uri[i + 1 + nlen] != '=') {
            continue;
        }
        v = i + 2 + nlen;
        for (e = v; e < plen && uri[e] != ';' && uri[e] != '/'; e++) {
        }
        if (slb_value_ok(uri + v, e - v)) {
            out->ptr = uri + v;
            out->len = e - v;
            return 1;
        }
    }
    return 0;
}

/* reference: first "name=value" pair (split on '&' and ';', up to '#')
 * whose value is valid */
static int ref_query_param(const char *args, const char *name, slb_span *out)
{
    size_t alen = strcspn(args, "#"), nlen = strlen(name), s = 0;

    if (nlen == 0) {
        return 0;
    }
    while (s <= alen) {
        size_t e = s;
        while (e < alen && args[e] != '&' && args[e] != ';') {
            e++;
        }
        if (e - s > nlen && memcmp(args + s, name, nlen) == 0
            && args[s + nlen] == '=' && slb_value_ok(args + s + nlen + 1,
                                                     e - s - nlen - 1)) {
            out->ptr = args + s + nlen + 1;
            out->len = e - s - nlen - 1;
            return 1;
        }
        s = e + 1;
    }
    return 0;
}

static void check_path(const char *uri, const char *name)
{
    slb_span v = { NULL, 0 }, r = { NULL, 0 };
    size_t len = strlen(uri), plen = strcspn(uri, "?#"), nlen = strlen(name);
    int got = slb_path_param(uri, name, &v);

    FZ_CHECK(got == 0 || got == 1);
    FZ_CHECK(got == ref_path_param(uri, name, &r));
    if (!got) {
        return;
    }
    FZ_CHECK(v.ptr == r.ptr && v.len == r.len);
    FZ_CHECK(FZ_INSIDE(v.ptr, v.len, uri, plen));
    FZ_CHECK(v.len <= len);
    FZ_CHECK(slb_value_ok(v.ptr, v.len));
    FZ_CHECK(memchr(v.ptr, '/', v.len) == NULL);
    FZ_CHECK((size_t)(v.ptr - uri) >= nlen + 2);
    FZ_CHECK(v.ptr[-1] == '=');
    FZ_CHECK(strncasecmp(v.ptr - 1 - nlen, name, nlen) == 0);
    FZ_CHECK(v.ptr[-2 - (long)nlen] == ';');
    FZ_CHECK(v.ptr + v.len == uri + plen || v.ptr[v.len] == ';'
             || v.ptr[v.len] == '/');
}

static void check_query(const char *args, const char *name)
{
    slb_span v = { NULL, 0 }, r = { NULL, 0 };
    size_t alen = strcspn(args, "#"), nlen = strlen(name);
    int got = slb_query_param(args, name, &v);

    FZ_CHECK(got == 0 || got == 1);
    FZ_CHECK(got == ref_query_param(args, name, &r));
    if (!got) {
        return;
    }
    FZ_CHECK(v.ptr == r.ptr && v.len == r.len);
    FZ_CHECK(FZ_INSIDE(v.ptr, v.len, args, alen));
    FZ_CHECK(slb_value_ok(v.ptr, v.len));
    FZ_CHECK(v.ptr[-1] == '=');
    FZ_CHECK((size_t)(v.ptr - args) >= nlen + 1);
    FZ_CHECK(memcmp(v.ptr - 1 - nlen, name, nlen) == 0);
    FZ_CHECK(v.ptr - 1 - nlen == args || v.ptr[-2 - (long)nlen] == '&'
             || v.ptr[-2 - (long)nlen] == ';');
    FZ_CHECK(v.ptr[v.len] == '\0' || v.ptr[v.len] == '&'
             || v.ptr[v.len] == ';' || v.ptr[v.len] == '#');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *f[2], *upper;
    const char *q;
    slb_span v;
    int nf;
    size_t i;

    fz_begin();
    nf = fz_split(data, size, f, 2);
    if (nf < 2) {
        f[1] = fz_str((const uint8_t *)"", 0);
    }
    check_path(f[1], f[0]);
    check_query(f[1], f[0]);
    q = strchr(f[1], '?');
    if (q) {
        check_query(q + 1, f[0]);
    }
    /* path parameter names are compared case-insensitively */
    upper = fz_str((const uint8_t *)f[0], strlen(f[0]));
    for (i = 0; upper[i]; i++) {
        upper[i] = (char)toupper((unsigned char)upper[i]);
    }
    {
        slb_span a = { NULL, 0 }, b = { NULL, 0 };
        int ga = slb_path_param(f[1], f[0], &a);
        int gb = slb_path_param(f[1], upper, &b);
        FZ_CHECK(ga == gb);
        FZ_CHECK(!ga || (a.ptr == b.ptr && a.len == b.len));
    }
    /* NULL and empty arguments find nothing */
    FZ_CHECK(slb_path_param(f[1], "", &v) == 0);
    FZ_CHECK(slb_path_param(NULL, f[0], &v) == 0);
    FZ_CHECK(slb_path_param(f[1], NULL, &v) == 0);
    FZ_CHECK(slb_query_param(f[1], "", &v) == 0);
    FZ_CHECK(slb_query_param(NULL, f[0], &v) == 0);
    fz_end();
    return 0;
}
