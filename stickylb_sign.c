/*
 * stickylb_sign.c - signed, expiring and opaque route cookies.
 */
#include <string.h>
#include <stdio.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_lib.h>

#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>

#include "stickylb_sign.h"
#include "stickylb_codec.h"

#define MAC_BYTES 16

static void hexify(const unsigned char *in, apr_size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void hmac(const slb_keyring *ring, int k, const void *data,
                 apr_size_t len, unsigned char out[32])
{
    unsigned int olen = 32;

    HMAC(EVP_sha256(), ring->key[k], (int)ring->len[k], data, len, out,
         &olen);
}

const char *slb_keyring_parse(apr_pool_t *p, const char *text,
                              apr_size_t len, slb_keyring *ring)
{
    const char *s = text, *end = text + len;
    int lineno = 0;

    memset(ring, 0, sizeof(*ring));
    while (s < end) {
        const char *e = memchr(s, '\n', (apr_size_t)(end - s));
        const char *le = e ? e : end;
        apr_size_t n;

        lineno++;
        while (le > s && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t')) {
            le--;
        }
        while (s < le && (*s == ' ' || *s == '\t')) {
            s++;
        }
        n = (apr_size_t)(le - s);
        if (n > 0 && *s != '#') {
            if (n < SLB_SIGN_MIN_KEY) {
                return apr_psprintf(p, "key on line %d is shorter than %d "
                                    "bytes", lineno, SLB_SIGN_MIN_KEY);
            }
            if (ring->nkeys >= SLB_SIGN_MAX_KEYS) {
                return apr_psprintf(p, "more than %d keys",
                                    SLB_SIGN_MAX_KEYS);
            }
            ring->key[ring->nkeys] = (const unsigned char *)
                apr_pmemdup(p, s, n);
            ring->len[ring->nkeys] = n;
            ring->nkeys++;
        }
        s = e ? e + 1 : end;
    }
    if (ring->nkeys == 0) {
        return "no key in the file";
    }
    return NULL;
}

const char *slb_keyring_load(apr_pool_t *p, const char *path,
                             slb_keyring *ring)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n;
    apr_status_t rv;
    const char *err;

    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        char e[120];
        return apr_psprintf(p, "cannot read key file %s: %s", path,
                            apr_strerror(rv, e, sizeof(e)));
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS
        || fi.size > 65536) {
        apr_file_close(f);
        return apr_psprintf(p, "key file %s is larger than 64 KiB", path);
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    rv = apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(p, "cannot read key file %s", path);
    }
    err = slb_keyring_parse(p, buf, n, ring);
    memset(buf, 0, n);
    return err ? apr_psprintf(p, "%s: %s", path, err) : NULL;
}

/* "<tag>\0<ns>\0<name>\0<data>" from p: what v2 macs and tokens cover */
static const char *scoped(apr_pool_t *p, const char *tag,
                          const slb_sign_scope *scope, const char *data,
                          apr_size_t dlen, apr_size_t *len)
{
    apr_size_t tl = strlen(tag), nl = strlen(scope->ns);
    apr_size_t cl = strlen(scope->name);
    char *m = apr_palloc(p, tl + nl + cl + dlen + 3), *w = m;

    memcpy(w, tag, tl + 1);
    w += tl + 1;
    memcpy(w, scope->ns, nl + 1);
    w += nl + 1;
    memcpy(w, scope->name, cl + 1);
    w += cl + 1;
    memcpy(w, data, dlen);
    *len = tl + nl + cl + dlen + 3;
    return m;
}

const char *slb_route_token(apr_pool_t *p, const slb_keyring *ring,
                            const slb_sign_scope *scope, const char *route)
{
    return slb_route_token_k(p, ring, 0, scope, route);
}

const char *slb_route_token_k(apr_pool_t *p, const slb_keyring *ring,
                              int k, const slb_sign_scope *scope,
                              const char *route)
{
    unsigned char mac[32];
    char *out = apr_palloc(p, 17);
    apr_size_t n = strlen(route), mlen;
    const char *msg;

    if (scope != NULL) {
        msg = scoped(p, "token2", scope, route, n, &mlen);
    }
    else {
        char *m = apr_palloc(p, n + 6);
        memcpy(m, "route", 5);
        m[5] = '\0';
        memcpy(m + 6, route, n);
        msg = m;
        mlen = n + 6;
    }
    hmac(ring, k, msg, mlen, mac);
    hexify(mac, 8, out);
    return out;
}

static const char *sign_body(apr_pool_t *p, int version,
                             const char *route_or_token, apr_time_t issued,
                             apr_time_t refreshed)
{
    return apr_psprintf(p, "v%d~%s~%" APR_UINT64_T_HEX_FMT "~%"
                        APR_UINT64_T_HEX_FMT, version, route_or_token,
                        (apr_uint64_t)apr_time_sec(issued),
                        (apr_uint64_t)apr_time_sec(refreshed));
}

/* the mac of a body (everything before "~<mac>") under key k, in hex */
static void body_mac(apr_pool_t *p, const slb_keyring *ring, int k,
                     const slb_sign_scope *scope, const char *body,
                     apr_size_t blen, char hex[2 * MAC_BYTES + 1])
{
    unsigned char mac[32];

    if (scope != NULL) {
        apr_size_t mlen;
        const char *msg = scoped(p, "v2", scope, body, blen, &mlen);
        hmac(ring, k, msg, mlen, mac);
    }
    else {
        hmac(ring, k, body, blen, mac);
    }
    hexify(mac, MAC_BYTES, hex);
}

/* body~mac of one format (scope NULL: v1's MAC, over the body only) */
static const char *sign_as(apr_pool_t *p, const slb_keyring *ring,
                           int version, const slb_sign_scope *scope,
                           const char *route_or_token, apr_time_t issued,
                           apr_time_t refreshed)
{
    char hex[2 * MAC_BYTES + 1];
    const char *body = sign_body(p, version, route_or_token, issued,
                                 refreshed);

    body_mac(p, ring, 0, scope, body, strlen(body), hex);
    return apr_pstrcat(p, body, "~", hex, NULL);
}

const char *slb_sign_value(apr_pool_t *p, const slb_keyring *ring,
                           const slb_sign_scope *scope,
                           const char *route_or_token, apr_time_t issued,
                           apr_time_t refreshed)
{
    return sign_as(p, ring, SLB_SIGNED_V2, scope, route_or_token, issued,
                   refreshed);
}

const char *slb_sign_value_v1(apr_pool_t *p, const slb_keyring *ring,
                              const char *route_or_token, apr_time_t issued,
                              apr_time_t refreshed)
{
    return sign_as(p, ring, SLB_SIGNED_V1, NULL, route_or_token, issued,
                   refreshed);
}

/* lowercase hex number of 1..16 digits */
static int parse_hex(const char *s, apr_size_t n, apr_uint64_t *out)
{
    apr_uint64_t v = 0;
    apr_size_t i;

    if (n == 0 || n > 16) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) {
            return 0;
        }
        v = (v << 4) | (apr_uint64_t)d;
    }
    *out = v;
    return 1;
}

int slb_verify_value(apr_pool_t *p, const slb_keyring *ring,
                     const slb_sign_scope *scope, const char *v,
                     const char **route_or_token, apr_time_t *issued,
                     apr_time_t *refreshed)
{
    const char *t3, *t2, *t1;
    apr_size_t len;
    apr_uint64_t iss, ref;
    int k, version;

    if (v == NULL || v[0] != 'v' || (v[1] != '1' && v[1] != '2')
        || v[2] != '~') {
        return -1;
    }
    version = v[1] == '2' ? SLB_SIGNED_V2 : SLB_SIGNED_V1;
    if (version == SLB_SIGNED_V2 && scope == NULL) {
        return 0;   /* bound to a scope the caller did not name */
    }
    len = strlen(v);
    /* from the right: ~<mac>, ~<refreshed>, ~<issued>; the route may hold
     * '~' itself */
    for (t3 = v + len; t3 > v + 3 && t3[-1] != '~'; t3--) {
    }
    if (t3 <= v + 3) {
        return 0;
    }
    for (t2 = t3 - 1; t2 > v + 3 && t2[-1] != '~'; t2--) {
    }
    if (t2 <= v + 3) {
        return 0;
    }
    for (t1 = t2 - 1; t1 > v + 3 && t1[-1] != '~'; t1--) {
    }
    if (t1 <= v + 4) {
        return 0;   /* empty route */
    }
    if ((apr_size_t)(v + len - t3) != 2 * MAC_BYTES
        || !parse_hex(t1, (apr_size_t)(t2 - 1 - t1), &iss)
        || !parse_hex(t2, (apr_size_t)(t3 - 1 - t2), &ref)) {
        return 0;
    }
    for (k = 0; ring && k < ring->nkeys; k++) {
        char hex[2 * MAC_BYTES + 1];

        body_mac(p, ring, k, version == SLB_SIGNED_V2 ? scope : NULL, v,
                 (apr_size_t)(t3 - 1 - v), hex);
        if (CRYPTO_memcmp(hex, t3, 2 * MAC_BYTES) == 0) {
            *route_or_token = apr_pstrmemdup(p, v + 3,
                                             (apr_size_t)(t1 - 1 - (v + 3)));
            *issued = apr_time_from_sec((apr_time_t)iss);
            *refreshed = apr_time_from_sec((apr_time_t)ref);
            return slb_route_ok(*route_or_token, strlen(*route_or_token))
                       ? version : 0;
        }
    }
    return 0;
}
