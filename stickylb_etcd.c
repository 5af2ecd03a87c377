/*
 * stickylb_etcd.c - the etcd v3 source of member discovery: the keys under
 * a prefix, read through etcd's JSON gateway with libcurl, parsed with
 * jansson (see stickylb_etcd.h for the forms a key takes).
 *
 * How a change is seen (fetch with wait > 0: a watch; wait = 0: a poll):
 *
 *   1. The first fetch, and every fetch after a change, POSTs
 *      /v3/kv/range {key: prefix, range_end: prefix+1, limit} and keeps
 *      header.revision and an MD5 digest of every key and value.
 *   2. With wait > 0, a later fetch POSTs /v3/watch {create_request:
 *      {key, range_end, start_revision: revision + 1}} and reads the
 *      stream for at most `wait`.  etcd answers "created" at once and
 *      then one line per batch of events, replaying every event after
 *      start_revision, so nothing that happened between two fetches is
 *      missed even though each fetch opens a new watch.  The first line
 *      with events ends the transfer (the write callback refuses it) and
 *      the prefix is ranged again; a stream that stays quiet until `wait`
 *      after "created" is UNCHANGED.
 *      A compacted start revision (etcd cancels the watch with
 *      compact_revision), a store whose revision went back (etcd wiped
 *      and restarted: a watch from our revision would wait for events
 *      that never come), a gateway error or a watch that does not start
 *      in time all fall back to a range.
 *   3. With wait = 0, every fetch ranges and compares digests.
 *
 * Why a watch bounded by the transfer timeout rather than a long-lived
 * stream: the watchdog calls fetch() and needs an answer within
 * timeout + wait, one thread, no callback in between; one transfer run to
 * a deadline (perform(): curl_multi_poll never waits past it) is exactly
 * that, and the watch's replay from a revision makes the short watches
 * lossless.  A range after a change (rather than applying the events)
 * keeps one parser for the set, and the digest makes a change that
 * changed nothing (a key put again with the same value, a key put and
 * deleted) UNCHANGED.  wait = 0 is for a watchdog shared by several
 * balancers, where a watch would hold the others up.
 *
 * Time: the watch gets `wait` (its connect at most `timeout`), the range
 * after it what is left of timeout + wait, at least `timeout`; a range
 * over several endpoints gives each connect timeout/n and the whole
 * remaining time.  The handle is made on the first fetch (the watchdog's
 * thread of one child) and reused, so the connection to etcd is kept.
 * Proxies from the environment (http_proxy) are not used: etcd is a
 * local service and a proxy would change what "down" means.  https://
 * endpoints are verified (the system's CAs, or ca=); cert= and key= are
 * the client certificate of an etcd started with --client-cert-auth.
 * etcd's user/password authentication (a token from /v3/auth/
 * authenticate) is not spoken.
 */
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_base64.h>
#include <apr_md5.h>
#include <apr_uri.h>
#include <apr_lib.h>

#include <curl/curl.h>
#include <jansson.h>

#include "stickylb_etcd.h"
#include "stickylb_conf.h"
#include "stickylb_codec.h"

/* ======================================================================
 * small helpers
 * ==================================================================== */

/* Strict base64 (the alphabet etcd's gateway writes, padded): the decoded
 * bytes NUL-terminated in *out, or 0 when s is not base64. */
static int b64_decode(apr_pool_t *p, const char *s, apr_size_t len,
                      char **out, apr_size_t *outlen)
{
    apr_size_t i, pad = 0;
    char *src, *dst;
    int n;

    if (len % 4 != 0 || len > (apr_size_t)SLB_ETCD_MAX_BODY) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '=') {
            if (i < len - 2) {
                return 0;
            }
            pad++;
        }
        else if (pad || !(apr_isalnum(c) || c == '+' || c == '/')) {
            return 0;
        }
    }
    src = apr_pstrmemdup(p, s, len);
    dst = apr_palloc(p, (apr_size_t)apr_base64_decode_len(src) + 1);
    n = apr_base64_decode_binary((unsigned char *)dst, src);
    if (n < 0 || (apr_size_t)n != len / 4 * 3 - pad) {
        return 0;
    }
    dst[n] = '\0';
    *out = dst;
    *outlen = (apr_size_t)n;
    return 1;
}

static char *b64_encode(apr_pool_t *p, const char *s, apr_size_t len)
{
    char *dst = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)len));

    apr_base64_encode_binary(dst, (const unsigned char *)s, (int)len);
    return dst;
}

/* A key as the status page and the logs may show it: printable ASCII,
 * other bytes as \xHH, at most SLB_ETCD_MAX_ORIGIN_LEN bytes ("..."). */
static const char *printable(apr_pool_t *p, const char *s, apr_size_t len)
{
    char *out = apr_palloc(p, SLB_ETCD_MAX_ORIGIN_LEN + 1);
    apr_size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;

        if (o + need > SLB_ETCD_MAX_ORIGIN_LEN - 3) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (need == 1) {
            out[o++] = (char)c;
        }
        else {
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = '\0';
    return out;
}

/* An int64 as the gateway writes it (a string of digits) or a number. */
static int json_int64(json_t *v, apr_int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (apr_int64_t)json_integer_value(v);
        return *out >= 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        apr_size_t n = json_string_length(v), i;
        apr_int64_t r = 0;

        if (n == 0 || n > 18) {
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return 0;
            }
            r = r * 10 + (s[i] - '0');
        }
        *out = r;
        return 1;
    }
    return 0;
}

/* header.revision of an answer (or of a watch result) */
static int header_revision(json_t *o, apr_int64_t *rev)
{
    json_t *h = json_object_get(o, "header");

    return json_is_object(h) && json_int64(json_object_get(h, "revision"), rev);
}

/* ======================================================================
 * members
 * ==================================================================== */

static const struct {
    const char *scheme;
    int port;
} schemes[] = {
    { "http", 80 }, { "https", 443 }, { "ajp", 8009 }, { "h2c", 80 },
    { "h2", 443 }, { "ws", 80 }, { "wss", 443 }, { NULL, 0 }
};

/* a host name as httpd takes one: letters, digits, '-', '_', '.', each
 * label non-empty and not starting with '-' */
static int hostname_ok(const char *h)
{
    apr_size_t i, n = strlen(h), label = 0;

    if (n == 0 || n > SLB_ETCD_MAX_HOST_LEN) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];

        if (c == '.') {
            if (label == 0) {
                return 0;
            }
            label = 0;
        }
        else if (apr_isalnum(c) || c == '_' || (c == '-' && label > 0)) {
            label++;
        }
        else {
            return 0;
        }
    }
    return label > 0 || n > 1;      /* "a." is a name, "." is not */
}

const char *slb_etcd_member_url(apr_pool_t *p, const char *url,
                                apr_size_t len, const char **out)
{
    apr_uri_t u;
    const char *s = apr_pstrmemdup(p, url, len), *host;
    char *scheme, *h;
    apr_int64_t port = 0;
    int i;

    if (len == 0) {
        return "empty url";
    }
    if (strlen(s) != len) {
        return "url holds a NUL byte";
    }
    for (i = 0; s[i]; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return "url holds a space or a control or non-ASCII byte";
        }
    }
    if (!strstr(s, "://")) {
        return "url is not scheme://host:port";
    }
    if (apr_uri_parse(p, s, &u) != APR_SUCCESS || !u.scheme || !u.hostname
        || !*u.hostname) {
        return "url does not parse as scheme://host:port";
    }
    if (u.user || u.password || u.query || u.fragment
        || (u.path && *u.path && strcmp(u.path, "/") != 0)) {
        return "url has a path, a user, a query or a fragment (only "
               "scheme://host:port)";
    }
    scheme = apr_pstrdup(p, u.scheme);
    for (h = scheme; *h; h++) {
        *h = (char)apr_tolower((unsigned char)*h);
    }
    for (i = 0; schemes[i].scheme; i++) {
        if (!strcmp(scheme, schemes[i].scheme)) {
            break;
        }
    }
    if (!schemes[i].scheme) {
        return apr_psprintf(p, "url scheme '%s' is not http, https, ajp, "
                            "h2c, h2, ws or wss", printable(p, scheme,
                                                            strlen(scheme)));
    }
    if (u.port_str) {
        if (!*u.port_str || slb_parse_int(p, u.port_str, 1, 65535, &port)) {
            return "url port is not 1 to 65535";
        }
    }
    else {
        port = schemes[i].port;
    }
    h = apr_pstrdup(p, u.hostname);
    for (host = h; *h; h++) {
        *h = (char)apr_tolower((unsigned char)*h);
    }
    if (strchr(host, ':')) {
        struct in6_addr a6;

        if (strlen(host) > 45 || inet_pton(AF_INET6, host, &a6) != 1) {
            return "url host is not an IPv6 address";
        }
        host = apr_pstrcat(p, "[", host, "]", NULL);
    }
    else if (!hostname_ok(host)) {
        return "url host is not a host name or an address";
    }
    *out = apr_psprintf(p, "%s://%s:%d", scheme, host, (int)port);
    if (strlen(*out) > SLB_ETCD_MAX_URL_LEN) {
        return apr_psprintf(p, "url longer than %d bytes",
                            SLB_ETCD_MAX_URL_LEN);
    }
    return NULL;
}

/* The key's last path segment as http://host:port, or NULL. */
static const char *key_url(apr_pool_t *p, const char *rest, apr_size_t len)
{
    const char *seg = rest, *url;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (rest[i] == '/') {
            seg = rest + i + 1;
        }
    }
    len -= (apr_size_t)(seg - rest);
    /* host:port, [v6]:port: a port, and nothing the URL parser would
     * read as a path, a user or a query */
    if (len < 3 || !memchr(seg, ':', len)) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)seg[i];

        if (c <= 0x20 || c >= 0x7f || c == '@' || c == '?' || c == '#') {
            return NULL;
        }
    }
    url = apr_pstrcat(p, "http://", apr_pstrmemdup(p, seg, len), NULL);
    if (slb_etcd_member_url(p, url, strlen(url), &url)) {
        return NULL;
    }
    return url;
}

const char *slb_etcd_parse_member(apr_pool_t *p, const char *prefix,
                                  const char *key, apr_size_t klen,
                                  const char *val, apr_size_t vlen,
                                  slb_disc_entry *e)
{
    apr_size_t plen = strlen(prefix), i;
    const char *from_key, *err = NULL;
    json_t *root, *v;
    json_error_t jerr;

    memset(e, 0, sizeof(*e));
    if (klen > SLB_ETCD_MAX_KEY_LEN) {
        return apr_psprintf(p, "key longer than %d bytes",
                            SLB_ETCD_MAX_KEY_LEN);
    }
    if (klen < plen || memcmp(key, prefix, plen) != 0) {
        return "key not under the prefix";
    }
    e->origin = printable(p, key, klen);
    if (vlen > SLB_ETCD_MAX_VALUE_LEN) {
        return apr_psprintf(p, "value longer than %d bytes",
                            SLB_ETCD_MAX_VALUE_LEN);
    }
    from_key = key_url(p, key + plen, klen - plen);
    for (i = 0; i < vlen && apr_isspace((unsigned char)val[i]); i++) {
    }
    if (i == vlen || val[i] != '{') {
        /* not a JSON object: the key names the member */
        if (!from_key) {
            return "value is not a JSON object and the key does not end "
                   "in host:port";
        }
        e->url = from_key;
        return NULL;
    }
    root = json_loadb(val, vlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return apr_psprintf(p, "value is not JSON: %s",
                            printable(p, jerr.text, strlen(jerr.text)));
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return "value is not a JSON object";
    }
    v = json_object_get(root, "url");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            err = "\"url\" is not a string";
            goto done;
        }
        if ((err = slb_etcd_member_url(p, json_string_value(v),
                                       json_string_length(v), &e->url))) {
            goto done;
        }
    }
    else if (from_key) {
        e->url = from_key;
    }
    else {
        err = "no \"url\" and the key does not end in host:port";
        goto done;
    }
    v = json_object_get(root, "route");
    if (v && !json_is_null(v)) {
        apr_size_t rlen;

        if (!json_is_string(v)) {
            err = "\"route\" is not a string";
            goto done;
        }
        rlen = json_string_length(v);
        if (rlen > 0) {
            if (rlen > SLB_MAX_ROUTE_LEN
                || strlen(json_string_value(v)) != rlen
                || !slb_route_ok(json_string_value(v), rlen)) {
                err = apr_psprintf(p, "\"route\" is not a route (letters, "
                                   "digits, '-', '_', '.', at most %d)",
                                   SLB_MAX_ROUTE_LEN);
                goto done;
            }
            e->route = apr_pstrmemdup(p, json_string_value(v), rlen);
        }
    }
    v = json_object_get(root, "loadfactor");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1
            || json_integer_value(v) > 100) {
            err = "\"loadfactor\" is not a whole number from 1 to 100";
            goto done;
        }
        e->loadfactor = (int)json_integer_value(v);
    }
done:
    json_decref(root);
    if (err) {
        e->url = NULL;
        e->route = NULL;
        e->loadfactor = 0;
    }
    return err;
}

/* ======================================================================
 * answers
 * ==================================================================== */

/* "code 5: etcdserver: ..." of a gateway error object, or NULL */
static const char *gateway_error(apr_pool_t *p, json_t *root)
{
    json_t *e = json_object_get(root, "error"), *m;

    if (!e) {
        return NULL;
    }
    m = json_object_get(root, "message");
    if (json_is_object(e)) {             /* watch errors: error.{message} */
        m = json_object_get(e, "message");
    }
    if (!json_is_string(m)) {
        m = json_is_string(e) ? e : NULL;
    }
    return apr_psprintf(p, "etcd error: %s",
                        m ? printable(p, json_string_value(m),
                                      json_string_length(m))
                          : "(no message)");
}

const char *slb_etcd_parse_range(apr_pool_t *p, const char *body,
                                 apr_size_t len, const char *prefix,
                                 slb_etcd_range *out)
{
    json_t *root, *kvs, *kv;
    json_error_t jerr;
    apr_md5_ctx_t md5;
    apr_hash_t *urls, *routes;
    const char *err = NULL;
    apr_size_t i;

    memset(out, 0, sizeof(*out));
    out->entries = apr_array_make(p, 8, sizeof(slb_disc_entry));
    apr_md5_init(&md5);
    if (len > SLB_ETCD_MAX_BODY) {
        return apr_psprintf(p, "answer longer than %d bytes",
                            SLB_ETCD_MAX_BODY);
    }
    root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        return apr_psprintf(p, "answer is not JSON (%s at byte %d)",
                            printable(p, jerr.text, strlen(jerr.text)),
                            jerr.position);
    }
    if (!json_is_object(root)) {
        err = "answer is not a JSON object";
        goto done;
    }
    if ((err = gateway_error(p, root))) {
        goto done;
    }
    if (!header_revision(root, &out->revision)) {
        err = "answer has no header.revision";
        goto done;
    }
    kvs = json_object_get(root, "kvs");
    if (kvs && !json_is_array(kvs)) {
        err = "answer's kvs is not a list";
        goto done;
    }
    out->more = json_is_true(json_object_get(root, "more"));
    urls = apr_hash_make(p);
    routes = apr_hash_make(p);
    json_array_foreach(kvs, i, kv) {
        json_t *k = json_object_get(kv, "key"), *v = json_object_get(kv, "value");
        char *key = NULL, *val = "";
        apr_size_t klen = 0, vlen = 0;
        const char *why = NULL;
        slb_disc_entry e;
        char lens[32];

        out->kvs++;
        memset(&e, 0, sizeof(e));
        if (!json_is_string(k)
            || !b64_decode(p, json_string_value(k), json_string_length(k),
                           &key, &klen)) {
            why = "key is not base64";
        }
        else if (v && !json_is_null(v)
                 && (!json_is_string(v)
                     || !b64_decode(p, json_string_value(v),
                                    json_string_length(v), &val, &vlen))) {
            why = "value is not base64";
        }
        if (key) {
            /* lengths first: "ab"+"c" and "a"+"bc" differ */
            snprintf(lens, sizeof(lens), "%zu %zu ", (size_t)klen,
                     (size_t)vlen);
            apr_md5_update(&md5, lens, strlen(lens));
            apr_md5_update(&md5, key, klen);
            apr_md5_update(&md5, val, vlen);
        }
        else {
            apr_md5_update(&md5, "?", 1);
        }
        if (!why) {
            why = slb_etcd_parse_member(p, prefix, key, klen, val, vlen, &e);
        }
        if (!why && apr_hash_get(urls, e.url, APR_HASH_KEY_STRING)) {
            why = apr_psprintf(p, "%s is named by an earlier key too",
                               e.url);
        }
        if (!why && e.route && apr_hash_get(routes, e.route,
                                            APR_HASH_KEY_STRING)) {
            why = apr_psprintf(p, "route %s is named by an earlier key too",
                               e.route);
        }
        if (why) {
            out->malformed++;
            if (!out->why) {
                out->why = key ? apr_psprintf(p, "%s: %s",
                                              printable(p, key, klen), why)
                               : why;
            }
            continue;
        }
        apr_hash_set(urls, e.url, APR_HASH_KEY_STRING, "");
        if (e.route) {
            apr_hash_set(routes, e.route, APR_HASH_KEY_STRING, "");
        }
        *(slb_disc_entry *)apr_array_push(out->entries) = e;
    }
done:
    json_decref(root);
    apr_md5_final(out->digest, &md5);
    return err;
}

slb_etcd_watch_msg slb_etcd_parse_watch(const char *line, apr_size_t len,
                                        apr_int64_t *revision)
{
    json_t *root, *r, *ev;
    json_error_t jerr;
    slb_etcd_watch_msg m = SLB_ETCD_WATCH_OTHER;
    apr_int64_t rev;

    root = json_loadb(line, len, 0, &jerr);
    if (!root) {
        return SLB_ETCD_WATCH_GARBAGE;
    }
    if (!json_is_object(root)) {
        m = SLB_ETCD_WATCH_GARBAGE;
        goto done;
    }
    if (json_object_get(root, "error")) {
        m = SLB_ETCD_WATCH_ERROR;
        goto done;
    }
    r = json_object_get(root, "result");
    if (!json_is_object(r)) {
        m = SLB_ETCD_WATCH_GARBAGE;
        goto done;
    }
    if (header_revision(r, &rev)) {
        *revision = rev;
    }
    ev = json_object_get(r, "events");
    if (json_int64(json_object_get(r, "compact_revision"), &rev) && rev > 0) {
        m = SLB_ETCD_WATCH_COMPACTED;
    }
    else if (json_is_true(json_object_get(r, "canceled"))) {
        m = SLB_ETCD_WATCH_CANCELED;
    }
    else if (json_is_array(ev) && json_array_size(ev) > 0) {
        m = SLB_ETCD_WATCH_EVENTS;
    }
    else if (json_is_true(json_object_get(r, "created"))) {
        m = SLB_ETCD_WATCH_CREATED;
    }
done:
    json_decref(root);
    return m;
}

const char *slb_etcd_range_end(apr_pool_t *p, const char *prefix,
                               apr_size_t len, apr_size_t *outlen)
{
    char *end = apr_pstrmemdup(p, prefix, len);
    apr_size_t i = len;

    while (i > 0) {
        i--;
        if ((unsigned char)end[i] < 0xff) {
            end[i] = (char)((unsigned char)end[i] + 1);
            end[i + 1] = '\0';
            *outlen = i + 1;
            return end;
        }
    }
    *outlen = 1;
    return apr_pmemdup(p, "\0", 2);
}

/* ======================================================================
 * the source
 * ==================================================================== */

typedef struct {
    const char *endpoints[SLB_ETCD_MAX_ENDPOINTS];
    int n_endpoints;
    int cur;                        /* the endpoint that answered last */
    const char *prefix;
    const char *key64, *end64;      /* prefix and range end in base64 */
    const char *range_body;
    apr_interval_time_t timeout;
    const char *ca, *cert, *key;    /* ca=, cert=, key= (https) */
    int tls_used;                   /* the transfer's endpoint is https */
    CURL *curl;
    CURLM *multi;                   /* runs curl, keeps the connection */
    char errbuf[CURL_ERROR_SIZE];
    /* the last answer that was OK */
    int have_set;
    apr_int64_t revision;
    unsigned char digest[16];
    char why[256];                  /* slb_etcd_malformed_why */
} etcd_state;

static int curl_ready;

apr_status_t slb_etcd_global_init(void)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return APR_EGENERAL;
        }
        curl_ready = 1;
    }
    return APR_SUCCESS;
}

static apr_status_t state_cleanup(void *data)
{
    etcd_state *st = data;

    if (st->multi) {
        curl_multi_cleanup(st->multi);
        st->multi = NULL;
    }
    if (st->curl) {
        curl_easy_cleanup(st->curl);
        st->curl = NULL;
    }
    return APR_SUCCESS;
}

/* One endpoint of the target: http(s)://host[:port], no path. */
static const char *endpoint_parse(apr_pool_t *p, const char *s,
                                  const char **out)
{
    apr_uri_t u;
    apr_int64_t port;

    if (apr_uri_parse(p, s, &u) != APR_SUCCESS || !u.scheme || !u.hostname
        || !*u.hostname
        || (strcasecmp(u.scheme, "http") && strcasecmp(u.scheme, "https"))) {
        return apr_psprintf(p, "'%s' is not an etcd URL "
                            "(http://host:port or https://host:port)", s);
    }
    if (u.user || u.password || u.query || u.fragment
        || (u.path && *u.path && strcmp(u.path, "/") != 0)) {
        return apr_psprintf(p, "'%s': only scheme://host:port (etcd's "
                            "gateway is at /v3/ of it)", s);
    }
    if (u.port_str && (!*u.port_str
                       || slb_parse_int(p, u.port_str, 1, 65535, &port))) {
        return apr_psprintf(p, "'%s': the port is not 1 to 65535", s);
    }
    if (strchr(u.hostname, ':')) {
        struct in6_addr a6;

        if (strlen(u.hostname) > 45
            || inet_pton(AF_INET6, u.hostname, &a6) != 1) {
            return apr_psprintf(p, "'%s': the host is not an IPv6 address",
                                s);
        }
    }
    else if (!hostname_ok(u.hostname)) {
        return apr_psprintf(p, "'%s': the host is not a host name or an "
                            "address", s);
    }
    *out = apr_psprintf(p, "%s://%s%s%s%s%s", u.scheme,
                        strchr(u.hostname, ':') ? "[" : "", u.hostname,
                        strchr(u.hostname, ':') ? "]" : "",
                        u.port_str ? ":" : "", u.port_str ? u.port_str : "");
    return NULL;
}

typedef struct {
    apr_pool_t *p;
    const char *target;
    etcd_state *st;
    const char *err;
    int have_prefix;
} opt_ctx;

static const char *const etcd_options[] = {
    "prefix=", "timeout=", "ca=", "cert=", "key=", NULL
};

/* a file option: a path the server can read now (the children read it
 * again at each connection, as libcurl does) */
static const char *file_opt(apr_pool_t *p, const char *k, const char *v,
                            const char **out)
{
    if (!v || !*v) {
        return apr_psprintf(p, "%s= needs a file", k);
    }
    if (access(v, R_OK) != 0) {
        return apr_psprintf(p, "%s=%s: the file cannot be read", k, v);
    }
    *out = apr_pstrdup(p, v);
    return NULL;
}

static int opt_one(void *data, const char *k, const char *v)
{
    opt_ctx *c = data;

    if (!strcasecmp(k, "prefix")) {
        if (!v || !*v) {
            c->err = "prefix= must not be empty (e.g. prefix=/services/web/)";
            return 0;
        }
        if (strlen(v) > SLB_ETCD_MAX_PREFIX_LEN) {
            c->err = apr_psprintf(c->p, "prefix= longer than %d bytes",
                                  SLB_ETCD_MAX_PREFIX_LEN);
            return 0;
        }
        c->st->prefix = apr_pstrdup(c->p, v);
        c->have_prefix = 1;
    }
    else if (!strcasecmp(k, "ca") || !strcasecmp(k, "cert")
             || !strcasecmp(k, "key")) {
        const char **out = !strcasecmp(k, "ca") ? &c->st->ca
                           : !strcasecmp(k, "cert") ? &c->st->cert
                                                    : &c->st->key;

        if ((c->err = file_opt(c->p, k, v, out))) {
            return 0;
        }
    }
    else if (!strcasecmp(k, "timeout")) {
        const char *err = slb_parse_duration(c->p, v ? v : "", SLB_UNIT_S,
                                             SLB_ETCD_MIN_TIMEOUT,
                                             SLB_ETCD_MAX_TIMEOUT,
                                             &c->st->timeout);
        if (err) {
            c->err = apr_pstrcat(c->p, "timeout=: ", err, NULL);
            return 0;
        }
    }
    return 1;
}

static const char *etcd_create(apr_pool_t *p, const char *target,
                               apr_table_t *opts, void **state)
{
    etcd_state *st = apr_pcalloc(p, sizeof(*st));
    opt_ctx c = { p, target, st, NULL, 0 };
    char *list, *tok, *last;
    apr_size_t elen;
    const char *end;

    st->timeout = SLB_ETCD_DEFAULT_TIMEOUT;
    /* unknown options first: the message lists every valid one */
    if (opts && (c.err = slb_disc_check_options(p, opts, etcd_options))) {
        return c.err;
    }
    if (!target || !*target) {
        return "etcd needs the gateway's URL (e.g. http://127.0.0.1:2379)";
    }
    list = apr_pstrdup(p, target);
    for (tok = apr_strtok(list, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last)) {
        const char *err;

        if (st->n_endpoints == SLB_ETCD_MAX_ENDPOINTS) {
            return apr_psprintf(p, "more than %d etcd endpoints",
                                SLB_ETCD_MAX_ENDPOINTS);
        }
        if ((err = endpoint_parse(p, tok, &st->endpoints[st->n_endpoints]))) {
            return err;
        }
        st->n_endpoints++;
    }
    if (st->n_endpoints == 0) {
        return "etcd needs the gateway's URL (e.g. http://127.0.0.1:2379)";
    }
    if (opts) {
        apr_table_do(opt_one, &c, opts, NULL);
        if (c.err) {
            return c.err;
        }
    }
    if (!st->cert != !st->key) {
        return "cert= and key= go together (the client certificate and "
               "its private key, PEM)";
    }
    if (st->ca || st->cert) {
        int i, tls = 0;

        for (i = 0; i < st->n_endpoints; i++) {
            tls |= !strncasecmp(st->endpoints[i], "https:", 6);
        }
        if (!tls) {
            return "ca=, cert= and key= are for https:// endpoints, and "
                   "none is";
        }
    }
    if (!c.have_prefix) {
        return "etcd needs prefix= (the keys of the members, e.g. "
               "prefix=/services/web/)";
    }
    st->key64 = b64_encode(p, st->prefix, strlen(st->prefix));
    end = slb_etcd_range_end(p, st->prefix, strlen(st->prefix), &elen);
    st->end64 = b64_encode(p, end, elen);
    st->range_body = apr_psprintf(p, "{\"key\":\"%s\",\"range_end\":\"%s\","
                                  "\"limit\":\"%d\"}", st->key64, st->end64,
                                  SLB_ETCD_MAX_KEYS);
    /* libcurl's global state, while the server is one thread (create()
     * runs when the configuration is read, before any child or thread) */
    if (slb_etcd_global_init() != APR_SUCCESS) {
        return "libcurl could not be initialised (curl_global_init)";
    }
    apr_pool_cleanup_register(p, st, state_cleanup, apr_pool_cleanup_null);
    *state = st;
    return NULL;
}

const char *slb_etcd_malformed_why(void *state)
{
    etcd_state *st = state;

    return st && st->why[0] ? st->why : NULL;
}

/* ---------------------------------------------------------------- I/O */

typedef struct {
    char *data;
    apr_size_t len, cap;
    int over;                       /* more than SLB_ETCD_MAX_BODY */
} buf_t;

static int buf_add(buf_t *b, const char *d, apr_size_t n)
{
    if (b->len + n > SLB_ETCD_MAX_BODY) {
        b->over = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap : 4096;
        char *nd;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        if (!(nd = realloc(b->data, cap))) {
            b->over = 1;
            return 0;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

static size_t range_write(char *d, size_t size, size_t n, void *ctx)
{
    return buf_add(ctx, d, size * n) ? size * n : 0;
}

/* whole milliseconds, rounded up: a limit of "what is left of 300 ms"
 * computed a few microseconds later is still 300 ms */
static long ms_of(apr_interval_time_t t)
{
    return t < 1000 ? 1 : (long)((t + 999) / 1000);
}

/* The handle set for one POST to endpoint+path; NULL or why not. */
static const char *curl_prepare(etcd_state *st, apr_pool_t *p,
                                const char *endpoint, const char *path,
                                const char *body, apr_interval_time_t total,
                                apr_interval_time_t connect,
                                curl_write_callback cb, void *ctx,
                                struct curl_slist *headers)
{
    if (!st->curl) {
        if (slb_etcd_global_init() != APR_SUCCESS) {
            return "libcurl cannot be initialised";
        }
        if (!(st->curl = curl_easy_init())
            || (!st->multi && !(st->multi = curl_multi_init()))) {
            return "no libcurl handle (out of memory?)";
        }
    }
    else {
        curl_easy_reset(st->curl);  /* keeps the connection */
    }
    st->errbuf[0] = '\0';
    st->tls_used = !strncasecmp(endpoint, "https:", 6);
    curl_easy_setopt(st->curl, CURLOPT_URL,
                     apr_pstrcat(p, endpoint, path, NULL));
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(st->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(st->curl, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(st->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(st->curl, CURLOPT_PROXY, "");
    curl_easy_setopt(st->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(st->curl, CURLOPT_ERRORBUFFER, st->errbuf);
    curl_easy_setopt(st->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(st->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(st->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(st->curl, CURLOPT_TIMEOUT_MS, ms_of(total));
    curl_easy_setopt(st->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     ms_of(connect < total ? connect : total));
    curl_easy_setopt(st->curl, CURLOPT_WRITEFUNCTION, cb);
    curl_easy_setopt(st->curl, CURLOPT_WRITEDATA, ctx);
    curl_easy_setopt(st->curl, CURLOPT_USERAGENT, "mod_stickylb");
    if (st->ca) {
        curl_easy_setopt(st->curl, CURLOPT_CAINFO, st->ca);
    }
    if (st->cert) {
        curl_easy_setopt(st->curl, CURLOPT_SSLCERT, st->cert);
        curl_easy_setopt(st->curl, CURLOPT_SSLKEY, st->key);
    }
    return NULL;
}

/*
 * Runs the prepared transfer until it ends or `limit` has passed, whatever
 * libcurl's own timers say: curl_easy_perform() with CURLOPT_TIMEOUT_MS was
 * seen (libcurl 7.88) to end a transfer to an endpoint that accepts and
 * never answers a second after its timeout, about one time in fifteen, so
 * the deadline is kept here (curl_multi_poll never waits past it) and
 * CURLOPT_TIMEOUT_MS only backs it up.
 */
static CURLcode perform(etcd_state *st, apr_interval_time_t limit)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(ms_of(limit));
    CURLcode rc = CURLE_OPERATION_TIMEDOUT;
    int running = 1, done = 0;

    if (curl_multi_add_handle(st->multi, st->curl) != CURLM_OK) {
        return CURLE_OUT_OF_MEMORY;
    }
    for (;;) {
        CURLMsg *m;
        int left;
        apr_interval_time_t wait;

        if (curl_multi_perform(st->multi, &running) != CURLM_OK) {
            rc = CURLE_OUT_OF_MEMORY;
            break;
        }
        while ((m = curl_multi_info_read(st->multi, &left))) {
            if (m->msg == CURLMSG_DONE && m->easy_handle == st->curl) {
                rc = m->data.result;
                done = 1;
            }
        }
        if (done || !running) {
            break;
        }
        wait = deadline - apr_time_now();
        if (wait <= 0) {
            rc = CURLE_OPERATION_TIMEDOUT;
            snprintf(st->errbuf, sizeof(st->errbuf),
                     "no answer within %ld ms", ms_of(limit));
            break;
        }
        if (curl_multi_poll(st->multi, NULL, 0, (int)ms_of(wait), NULL)
            != CURLM_OK) {
            rc = CURLE_OUT_OF_MEMORY;
            break;
        }
    }
    curl_multi_remove_handle(st->multi, st->curl);
    return rc;
}

/* why a transfer failed, in words an operator reads in the log */
static const char *curl_why(apr_pool_t *p, etcd_state *st, CURLcode rc,
                            apr_interval_time_t limit)
{
    const char *detail = st->errbuf[0] ? st->errbuf : curl_easy_strerror(rc);

    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return apr_psprintf(p, "connection refused or unreachable (%s)",
                            detail);
    case CURLE_OPERATION_TIMEDOUT:
        return apr_psprintf(p, "timed out after %s (%s)",
                            slb_duration_str(p, apr_time_from_msec(
                                ms_of(limit))), detail);
    case CURLE_COULDNT_RESOLVE_HOST:
        return apr_psprintf(p, "host not found (%s)", detail);
    case CURLE_PEER_FAILED_VERIFICATION:
        return apr_psprintf(p, "etcd's certificate is not trusted (ca=?) "
                            "(%s)", detail);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        if (st->tls_used) {
            return apr_psprintf(p, "TLS: %s%s", detail,
                                st->cert ? "" : " (does etcd want a client "
                                                "certificate? cert=, key=)");
        }
        return detail;
    default:
        return detail;
    }
}

/* A range over the endpoints, from st->cur on, until the deadline: NULL
 * and *r, or why every endpoint failed. */
static const char *do_range(etcd_state *st, apr_pool_t *p,
                            apr_time_t deadline, slb_etcd_range *r)
{
    struct curl_slist *hdr = curl_slist_append(NULL,
                                               "Content-Type: application/json");
    const char *errs = NULL;
    int i;

    for (i = 0; i < st->n_endpoints; i++) {
        int ep = (st->cur + i) % st->n_endpoints;
        const char *ept = st->endpoints[ep], *why;
        apr_interval_time_t left = deadline - apr_time_now();
        apr_interval_time_t conn = st->timeout / st->n_endpoints;
        buf_t b = { NULL, 0, 0, 0 };
        CURLcode rc;
        long status = 0;

        if (left <= 0) {
            why = "no time left";
            errs = apr_psprintf(p, "%s%s%s: %s", errs ? errs : "",
                                errs ? "; " : "", ept, why);
            break;
        }
        if (conn < SLB_ETCD_MIN_TIMEOUT) {
            conn = SLB_ETCD_MIN_TIMEOUT;
        }
        if ((why = curl_prepare(st, p, ept, "/v3/kv/range", st->range_body,
                                left, conn, range_write, &b, hdr))) {
            curl_slist_free_all(hdr);
            return apr_psprintf(p, "%s: %s", ept, why);
        }
        rc = perform(st, left);
        curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &status);
        if (b.over) {
            why = apr_psprintf(p, "answer longer than %d bytes",
                               SLB_ETCD_MAX_BODY);
        }
        else if (rc != CURLE_OK) {
            why = curl_why(p, st, rc, left);
        }
        else if (status != 200) {
            why = apr_psprintf(p, "HTTP %ld from /v3/kv/range%s%s", status,
                               b.len ? ": " : "",
                               b.len ? printable(p, b.data, b.len > 120
                                                 ? 120 : b.len) : "");
        }
        else if (!(why = slb_etcd_parse_range(p, b.data ? b.data : "",
                                              b.len, st->prefix, r))
                 && r->more) {
            why = apr_psprintf(p, "more than %d keys under %s",
                               SLB_ETCD_MAX_KEYS, st->prefix);
        }
        free(b.data);
        if (!why) {
            st->cur = ep;
            curl_slist_free_all(hdr);
            return NULL;
        }
        errs = apr_psprintf(p, "%s%s%s: %s", errs ? errs : "",
                            errs ? "; " : "", ept, why);
    }
    curl_slist_free_all(hdr);
    return errs;
}

typedef struct {
    buf_t line;
    apr_int64_t since;              /* our revision */
    int created;
    int changed;
    const char *failed;
    apr_pool_t *p;
} watch_ctx;

/* the stream's lines: "created", then events; any event ends it */
static size_t watch_write(char *d, size_t size, size_t n, void *data)
{
    watch_ctx *w = data;
    apr_size_t total = size * n, i;

    for (i = 0; i < total; i++) {
        if (d[i] != '\n') {
            if (!buf_add(&w->line, d + i, 1)) {
                /* an event batch this long is still a change */
                w->changed = 1;
                return 0;
            }
            continue;
        }
        if (w->line.len > 0) {
            apr_int64_t rev = -1;

            switch (slb_etcd_parse_watch(w->line.data, w->line.len, &rev)) {
            case SLB_ETCD_WATCH_CREATED:
                w->created = 1;
                if (rev >= 0 && rev < w->since) {
                    /* the store is behind us: wiped and restarted */
                    w->changed = 1;
                    return 0;
                }
                break;
            case SLB_ETCD_WATCH_EVENTS:
            case SLB_ETCD_WATCH_COMPACTED:
                w->changed = 1;
                return 0;
            case SLB_ETCD_WATCH_CANCELED:
                w->failed = "etcd canceled the watch";
                return 0;
            case SLB_ETCD_WATCH_ERROR:
                w->failed = apr_psprintf(w->p, "watch error: %s",
                                         printable(w->p, w->line.data,
                                                   w->line.len > 120
                                                   ? 120 : w->line.len));
                return 0;
            case SLB_ETCD_WATCH_GARBAGE:
                w->failed = "the watch answered garbage";
                return 0;
            default:
                break;
            }
        }
        w->line.len = 0;
    }
    return total;
}

/* A watch from st->revision + 1 for at most wait: 1 when something
 * changed (or the watch could not say: range), 0 when it stayed quiet. */
static int do_watch(etcd_state *st, apr_pool_t *p, apr_interval_time_t wait,
                    const char **why)
{
    struct curl_slist *hdr = curl_slist_append(NULL,
                                               "Content-Type: application/json");
    watch_ctx w;
    const char *body, *ept = st->endpoints[st->cur], *err;
    CURLcode rc;
    long status = 0;

    memset(&w, 0, sizeof(w));
    w.since = st->revision;
    w.p = p;
    body = apr_psprintf(p, "{\"create_request\":{\"key\":\"%s\","
                        "\"range_end\":\"%s\",\"start_revision\":\"%"
                        APR_INT64_T_FMT "\"}}", st->key64, st->end64,
                        st->revision + 1);
    if ((err = curl_prepare(st, p, ept, "/v3/watch", body, wait, st->timeout,
                            watch_write, &w, hdr))) {
        curl_slist_free_all(hdr);
        *why = apr_psprintf(p, "%s: %s", ept, err);
        return 1;
    }
    rc = perform(st, wait);
    curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &status);
    free(w.line.data);
    curl_slist_free_all(hdr);
    if (w.changed) {
        return 1;
    }
    if (w.failed) {
        *why = apr_psprintf(p, "%s: %s", ept, w.failed);
        return 1;
    }
    if (status != 0 && status != 200) {
        *why = apr_psprintf(p, "%s: HTTP %ld from /v3/watch", ept, status);
        return 1;
    }
    if (w.created && (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_OK)) {
        return 0;                   /* quiet for the whole wait */
    }
    *why = apr_psprintf(p, "%s: watch: %s", ept,
                        rc == CURLE_OK ? "the stream ended before it started"
                                       : curl_why(p, st, rc, wait));
    return 1;
}

static slb_disc_result etcd_fetch(void *state, apr_pool_t *p,
                                  apr_interval_time_t wait,
                                  apr_array_header_t **entries,
                                  int *malformed, apr_interval_time_t *ttl,
                                  const char **err)
{
    etcd_state *st = state;
    apr_time_t start = apr_time_now();
    apr_time_t deadline;
    slb_etcd_range r;
    const char *werr = NULL, *rerr;

    if (wait < 0) {
        wait = 0;
    }
    deadline = start + st->timeout + wait;
    if (ttl) {
        *ttl = 0;
    }
    if (st->have_set && wait > 0 && !do_watch(st, p, wait, &werr)) {
        return SLB_DISC_UNCHANGED;
    }
    /* the range gets at least the timeout, whatever the watch took */
    if (deadline - apr_time_now() < st->timeout) {
        deadline = apr_time_now() + st->timeout;
    }
    if ((rerr = do_range(st, p, deadline, &r))) {
        *err = werr ? apr_pstrcat(p, werr, "; then ", rerr, NULL) : rerr;
        return SLB_DISC_FAILED;
    }
    st->revision = r.revision;
    if (r.why) {
        apr_cpystrn(st->why, r.why, sizeof(st->why));
    }
    else {
        st->why[0] = '\0';
    }
    if (st->have_set && memcmp(st->digest, r.digest, sizeof(r.digest)) == 0) {
        return SLB_DISC_UNCHANGED;
    }
    memcpy(st->digest, r.digest, sizeof(r.digest));
    st->have_set = 1;
    *entries = r.entries;
    if (malformed) {
        *malformed = r.malformed;
    }
    return SLB_DISC_OK;
}

const slb_disc_source_ops slb_disc_etcd_ops = {
    "etcd",
    etcd_create,
    etcd_fetch
};
