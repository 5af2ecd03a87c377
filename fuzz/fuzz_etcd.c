/*
 * fuzz_etcd.c - what etcd's JSON gateway answers, and what anyone who
 * may write under the prefix puts there (a shared registry: untrusted
 * bytes): slb_etcd_parse_range, slb_etcd_parse_watch,
 * slb_etcd_parse_member, slb_etcd_member_url, slb_etcd_range_end.
 *
 * Input: a mode byte (its low two bits), then
 *   0: a /v3/kv/range answer (the keys under "/services/web/")
 *   1: a /v3/watch stream, one answer per line
 *   2: prefix NUL key NUL value (slb_etcd_parse_member; the key is taken
 *      as given, and once more with the prefix in front)
 *   3: a member's URL (slb_etcd_member_url), and the same bytes as a
 *      prefix (slb_etcd_range_end)
 *
 * Invariants: every entry a parser returns is a member the balancer can
 * take: a canonical URL (scheme://host:port, at most 95 bytes, printable,
 * canonical again when parsed again), a route NULL or passing
 * slb_route_ok, a loadfactor 0..100, a printable origin of bounded length
 * that is the key when the key is short; a range answer's entries are the
 * keys not counted malformed, with no URL or route twice, and parsing the
 * same bytes again gives the same digest and entries; the end of a range
 * sorts after every key with the prefix.
 */
#include "fuzz_common.h"

#include <apr_strings.h>
#include <apr_tables.h>

#include "stickylb_codec.h"
#include "stickylb_etcd.h"

static void check_url(apr_pool_t *p, const char *url)
{
    const char *again = NULL, *sep, *colon;
    size_t n, i;

    FZ_CHECK(url != NULL);
    n = strlen(url);
    FZ_CHECK(n > 0 && n <= SLB_ETCD_MAX_URL_LEN);
    for (i = 0; i < n; i++) {
        FZ_CHECK(url[i] > 0x20 && url[i] < 0x7f);
        FZ_CHECK(!(url[i] >= 'A' && url[i] <= 'Z'));
    }
    sep = strstr(url, "://");
    FZ_CHECK(sep != NULL && sep > url);
    FZ_CHECK(strchr(sep + 3, '/') == NULL && strchr(url, '?') == NULL
             && strchr(url, '@') == NULL && strchr(url, '#') == NULL);
    colon = strrchr(sep + 3, ':');
    FZ_CHECK(colon != NULL && colon[1] != '\0' && colon[1] != '0');
    for (i = 1; colon[i]; i++) {
        FZ_CHECK(colon[i] >= '0' && colon[i] <= '9');
    }
    FZ_CHECK(i - 1 <= 5 && atoi(colon + 1) >= 1 && atoi(colon + 1) <= 65535);
    FZ_CHECK(slb_etcd_member_url(p, url, n, &again) == NULL);
    FZ_CHECK(strcmp(again, url) == 0);
}

static void check_entry(apr_pool_t *p, const slb_disc_entry *e)
{
    size_t i, n;

    check_url(p, e->url);
    if (e->route) {
        n = strlen(e->route);
        FZ_CHECK(n > 0 && n <= SLB_MAX_ROUTE_LEN);
        FZ_CHECK(slb_route_ok(e->route, n));
    }
    FZ_CHECK(e->loadfactor >= 0 && e->loadfactor <= 100);
    FZ_CHECK(e->origin != NULL);
    n = strlen(e->origin);
    FZ_CHECK(n <= SLB_ETCD_MAX_ORIGIN_LEN);
    for (i = 0; i < n; i++) {
        FZ_CHECK(e->origin[i] >= 0x20 && e->origin[i] < 0x7f);
    }
}

static void fuzz_range(apr_pool_t *p, const char *body, size_t len)
{
    slb_etcd_range r, r2;
    const char *err, *err2;
    int i, j;

    err = slb_etcd_parse_range(p, body, len, "/services/web/", &r);
    err2 = slb_etcd_parse_range(p, body, len, "/services/web/", &r2);
    FZ_CHECK((err == NULL) == (err2 == NULL));
    FZ_CHECK(r.entries != NULL);
    if (err) {
        FZ_CHECK(*err != '\0');
        return;
    }
    FZ_CHECK(memcmp(r.digest, r2.digest, sizeof(r.digest)) == 0);
    FZ_CHECK(r.revision >= 0 && r.revision == r2.revision);
    FZ_CHECK(r.more == 0 || r.more == 1);
    FZ_CHECK(r.kvs >= 0 && r.malformed >= 0 && r.malformed <= r.kvs);
    FZ_CHECK(r.entries->nelts == r.kvs - r.malformed);
    FZ_CHECK(r2.entries->nelts == r.entries->nelts);
    FZ_CHECK((r.why != NULL) == (r.malformed > 0));
    for (i = 0; i < r.entries->nelts; i++) {
        const slb_disc_entry *e = &APR_ARRAY_IDX(r.entries, i, slb_disc_entry);
        const slb_disc_entry *e2 = &APR_ARRAY_IDX(r2.entries, i,
                                                  slb_disc_entry);

        check_entry(p, e);
        FZ_CHECK(strncmp(e->origin, "/services/web/", 14) == 0);
        FZ_CHECK(strcmp(e->url, e2->url) == 0);
        for (j = 0; j < i; j++) {
            const slb_disc_entry *o = &APR_ARRAY_IDX(r.entries, j,
                                                     slb_disc_entry);

            FZ_CHECK(strcmp(o->url, e->url) != 0);
            FZ_CHECK(!o->route || !e->route || strcmp(o->route, e->route));
        }
    }
}

static void fuzz_watch(const char *s, size_t len)
{
    size_t start = 0, i;

    for (i = 0; i <= len; i++) {
        if (i == len || s[i] == '\n') {
            /* each line in a block of its own size: reads past it show */
            char *line = fz_mem((const uint8_t *)s + start, i - start);
            apr_int64_t rev = -7, rev2 = -7;
            slb_etcd_watch_msg m = slb_etcd_parse_watch(line, i - start, &rev);

            FZ_CHECK(m >= SLB_ETCD_WATCH_OTHER && m <= SLB_ETCD_WATCH_GARBAGE);
            FZ_CHECK(slb_etcd_parse_watch(line, i - start, &rev2) == m);
            FZ_CHECK(rev == rev2 && (rev == -7 || rev >= 0));
            start = i + 1;
        }
    }
}

static void fuzz_member(apr_pool_t *p, const uint8_t *d, size_t size)
{
    size_t a, b;
    const char *prefix, *key, *val, *err;
    size_t klen, vlen, plen;
    slb_disc_entry e;
    int pass;

    for (a = 0; a < size && d[a]; a++) {
    }
    for (b = a + 1; b < size && d[b]; b++) {
    }
    if (b >= size) {
        return;
    }
    prefix = fz_str(d, a);
    plen = a;
    klen = b - a - 1;
    vlen = size - b - 1;
    val = fz_mem(d + b + 1, vlen);
    for (pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            key = fz_mem(d + a + 1, klen);
        }
        else {
            char *k = fz_alloc(plen + klen);

            memcpy(k, prefix, plen);
            memcpy(k + plen, d + a + 1, klen);
            key = k;
            klen += plen;
        }
        err = slb_etcd_parse_member(p, prefix, key, klen, val, vlen, &e);
        if (err) {
            FZ_CHECK(*err != '\0' && e.url == NULL && e.route == NULL
                     && e.loadfactor == 0);
            continue;
        }
        FZ_CHECK(klen >= plen && memcmp(key, prefix, plen) == 0);
        FZ_CHECK(klen <= SLB_ETCD_MAX_KEY_LEN && vlen <= SLB_ETCD_MAX_VALUE_LEN);
        check_entry(p, &e);
        /* a short printable key is its own origin */
        if (klen < 100 && !memchr(key, '\\', klen)) {
            size_t i;
            int printable = 1;

            for (i = 0; i < klen; i++) {
                printable &= key[i] >= 0x20 && key[i] < 0x7f;
            }
            if (printable) {
                FZ_CHECK(strlen(e.origin) == klen
                         && memcmp(e.origin, key, klen) == 0);
            }
        }
    }
}

static void fuzz_url(apr_pool_t *p, const char *s, size_t len)
{
    const char *out = NULL, *end;
    size_t elen, i;

    if (slb_etcd_member_url(p, s, len, &out) == NULL) {
        check_url(p, out);
    }
    end = slb_etcd_range_end(p, s, len, &elen);
    FZ_CHECK(end != NULL && elen >= 1 && elen <= (len ? len : 1));
    if (elen == 1 && end[0] == '\0') {
        for (i = 0; i < len; i++) {
            FZ_CHECK((unsigned char)s[i] == 0xff);
        }
    }
    else {
        /* prefix < end, and end is prefix's first elen - 1 bytes then a
         * bigger byte: every key starting with prefix sorts below end */
        FZ_CHECK(memcmp(end, s, elen - 1) == 0);
        FZ_CHECK((unsigned char)end[elen - 1]
                 == (unsigned char)s[elen - 1] + 1);
        for (i = elen; i < len; i++) {
            FZ_CHECK((unsigned char)s[i] == 0xff);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *s;

    if (size < 1 || size > 65536) {
        return 0;
    }
    p = fz_begin();
    switch (data[0] & 3) {
    case 0:
        s = fz_mem(data + 1, size - 1);
        fuzz_range(p, s, size - 1);
        break;
    case 1:
        fuzz_watch((const char *)data + 1, size - 1);
        break;
    case 2:
        fuzz_member(p, data + 1, size - 1);
        break;
    default:
        s = fz_mem(data + 1, size - 1);
        fuzz_url(p, s, size - 1);
        break;
    }
    fz_end();
    return 0;
}
