/*
 * fuzz_conf.c - the directive argument parsers of stickylb_conf.c:
 * slb_parse_int and slb_parse_duration checked against a reference
 * written here (digits only, no overflow, a unit of "ms" or "s"),
 * slb_parse_passive, slb_parse_cookie_names and slb_parse_key against the
 * invariants of what they accept.
 *
 * Input: NUL-separated fields, used as argv (at most 12 words); every
 * parser is given every word (or the whole list).
 */
#include "fuzz_common.h"

#include <strings.h>

#include <apr_strings.h>

#include "stickylb_conf.h"

#define MAXARGS 12

/* the reference: 1 and *out when s is digits whose value has at most 18
 * of them (leading zeros aside): no overflow possible */
static int ref_digits(const char *s, size_t n, long long *out)
{
    long long v = 0;
    size_t i;

    if (n == 0) {
        return 0;
    }
    while (n > 1 && s[0] == '0') {
        s++;
        n--;
    }
    if (n > 18) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static void check_int(apr_pool_t *p, const char *w)
{
    static const apr_int64_t bounds[][2] = {
        { 0, 100 }, { 16, 100000000 }, { 1, 1 }, { 0, APR_INT64_MAX }
    };
    size_t k;

    for (k = 0; k < sizeof(bounds) / sizeof(bounds[0]); k++) {
        apr_int64_t v = -12345;
        long long ref;
        const char *err = slb_parse_int(p, w, bounds[k][0], bounds[k][1],
                                        &v);
        int ok = ref_digits(w, strlen(w), &ref) && ref >= bounds[k][0]
                 && ref <= bounds[k][1];

        if (!ok && err == NULL) {
            /* a value of 19 digits: accepted only without overflow */
            FZ_CHECK(strspn(w, "0123456789") == strlen(w));
            FZ_CHECK(v >= bounds[k][0] && v <= bounds[k][1]);
            continue;
        }
        FZ_CHECK((err == NULL) == ok);
        if (err == NULL) {
            FZ_CHECK(v == ref);
        }
        else {
            FZ_CHECK(v == -12345);              /* untouched */
            FZ_CHECK(strstr(err, "whole number") != NULL);
        }
    }
}

static void check_duration(apr_pool_t *p, const char *w)
{
    static const apr_interval_time_t hi[] = {
        apr_time_from_sec(3600), apr_time_from_sec(315360000), 60000000
    };
    size_t n = strlen(w), k, digits = 0;
    long long ref = -1;
    apr_int64_t unit_us = 0;

    while (digits < n && w[digits] >= '0' && w[digits] <= '9') {
        digits++;
    }
    if (digits == n) {
        unit_us = -1;                      /* the directive's unit */
    }
    else if (!strcmp(w + digits, "ms")) {
        unit_us = 1000;
    }
    else if (!strcmp(w + digits, "s")) {
        unit_us = APR_USEC_PER_SEC;
    }
    if (unit_us != 0 && !ref_digits(w, digits, &ref)) {
        ref = -1;
    }
    for (k = 0; k < sizeof(hi) / sizeof(hi[0]); k++) {
        int u;
        for (u = 0; u < 2; u++) {
            slb_unit unit = u ? SLB_UNIT_MS : SLB_UNIT_S;
            apr_interval_time_t t = -777, lo = u ? 1000 : 0;
            const char *err = slb_parse_duration(p, w, unit, lo, hi[k], &t);
            apr_int64_t scale = unit_us == -1
                                    ? (u ? 1000 : APR_USEC_PER_SEC)
                                    : unit_us;
            int ok = unit_us != 0 && ref >= 0 && scale > 0
                     && ref <= APR_INT64_MAX / scale
                     && ref * scale >= lo && ref * scale <= hi[k];

            FZ_CHECK((err == NULL) == ok);
            if (err == NULL) {
                FZ_CHECK(t == ref * scale);
                FZ_CHECK(slb_duration_secs(t) >= (apr_uint32_t)(t / APR_USEC_PER_SEC));
            }
            else {
                FZ_CHECK(t == -777);
                FZ_CHECK(strstr(err, "duration") != NULL);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *argv[MAXARGS];
    int argc = fz_split(data, size, argv, MAXARGS), i;
    apr_array_header_t *a = NULL;
    slb_passive_conf po;
    const char *err;

    if (size == 0) {
        argc = 0;
    }
    for (i = 0; i < argc; i++) {
        slb_key_source k;

        check_int(p, argv[i]);
        check_duration(p, argv[i]);
        err = slb_parse_key(p, argv[i], i + 1 < argc ? argv[i + 1] : NULL,
                            &k);
        if (err == NULL) {
            FZ_CHECK(k.kind == SLB_KEY_HEADER || k.kind == SLB_KEY_QUERY
                     || k.kind == SLB_KEY_ADDRESS
                     || k.kind == SLB_KEY_COOKIE);
            FZ_CHECK(k.kind != SLB_KEY_HEADER
                     || strcasecmp(k.name, "Cookie") != 0);
            FZ_CHECK(k.kind == SLB_KEY_ADDRESS
                     ? k.name == NULL
                     : (k.name != NULL && slb_is_token(k.name, 128)));
        }
    }
    err = slb_parse_cookie_names(p, argc, (const char *const *)argv, &a);
    if (err == NULL) {
        FZ_CHECK(a->nelts <= SLB_MAX_COOKIE_NAMES);
        FZ_CHECK(a->nelts == argc || (argc == 1 && a->nelts == 0));
        for (i = 0; i < a->nelts; i++) {
            const char *nm = APR_ARRAY_IDX(a, i, const char *);
            FZ_CHECK(slb_is_token(nm, 128) && strcasecmp(nm, "none") != 0);
        }
    }
    err = slb_parse_passive(p, argc, (const char *const *)argv, &a, &po);
    FZ_CHECK(po.fall >= 1 && po.fall <= 100);
    FZ_CHECK(po.ratio >= 0 && po.ratio <= 100);
    FZ_CHECK(po.min_clients >= 1 && po.min_clients <= SLB_PASSIVE_CLIENTS);
    if (err == NULL) {
        FZ_CHECK(po.ratio == 0 || po.fall == SLB_PASSIVE_DEFAULT_FALL);
        FZ_CHECK(po.eject == 0 || po.eject_max >= po.eject);
        for (i = 0; i < a->nelts; i++) {
            const slb_range *r = &APR_ARRAY_IDX(a, i, slb_range);
            FZ_CHECK(r->lo >= 100 && r->hi <= 599 && r->lo <= r->hi);
        }
        FZ_CHECK(a->nelts > 0 || (argc == 1 && !strcasecmp(argv[0], "none")));
    }
    fz_end();
    return 0;
}
