/*
 * stickylb_codec.h - cookie, route and path-parameter codec of mod_stickylb.
 *
 * Everything here depends on APR alone (no httpd): the Check unit tests and
 * the fuzz targets drive it directly.  Every function treats its input as
 * hostile: it never reads past a terminating NUL, never writes into the
 * input, and answers "nothing found" for anything malformed.
 */
#ifndef STICKYLB_CODEC_H
#define STICKYLB_CODEC_H

#include <apr_pools.h>
#include <apr_tables.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest cookie or path-parameter value looked at (bytes).  A longer value
 * is ignored as a whole: the request is treated as carrying no session. */
#define SLB_MAX_VALUE_LEN 4096

/* Longest route accepted (mod_proxy's PROXY_WORKER_MAX_ROUTE_SIZE - 1). */
#define SLB_MAX_ROUTE_LEN 63

/* Copy the route src (a NUL-terminated string) to dst of size bytes
 * (at least 1), cut to size - 1 bytes, always terminated: apr_cpystrn
 * without the call, for the short strings routes are. */
static APR_INLINE void slb_route_copy(char *dst, const char *src,
                                      apr_size_t size)
{
    char *end = dst + size - 1;

    while (dst < end && *src) {
        *dst++ = *src++;
    }
    *dst = '\0';
}

/* Whether the eight bytes of w hold a zero byte (the word-at-a-time
 * scans of routes in their fixed arrays). */
static APR_INLINE int slb_word_has_zero(apr_uint64_t w)
{
    return ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0;
}

/* Most values of one cookie name considered in one request. */
#define SLB_MAX_SAME_NAME 8
/* Most session (or learned) cookie names a balancer reads. */
#define SLB_MAX_COOKIE_NAMES 8

/* A slice of a longer string (not NUL terminated). */
typedef struct {
    const char *ptr;
    apr_size_t len;
} slb_span;

/* Where a sticky route came from. */
typedef enum {
    SLB_SRC_NONE = 0,
    SLB_SRC_ROUTE_COOKIE,   /* the balancer's own route cookie (ROUTEID)   */
    SLB_SRC_URL,            /* ;jsessionid=<id>.<route> path parameter     */
    SLB_SRC_SESSION_COOKIE, /* JSESSIONID=<id>.<route> cookie              */
    SLB_SRC_LEARNED,        /* a session id bound in the stick table       */
    SLB_SRC_HEADER,         /* a request header bound in the stick table   */
    SLB_SRC_QUERY,          /* a query parameter bound in the stick table  */
    SLB_SRC_ADDRESS,        /* the client address bound in the stick table */
    SLB_SRC_COOKIE          /* a request cookie bound in the stick table   */
} slb_source;

const char *slb_source_name(slb_source src);

/* One candidate route found in a request, in order of precedence. */
typedef struct {
    slb_source src;
    const char *name;   /* cookie or parameter name it came from */
    const char *id;     /* session id part ("" for the route cookie) */
    const char *route;  /* route, 1..SLB_MAX_ROUTE_LEN valid bytes */
} slb_candidate;

/* What to look for in a request. */
typedef struct {
    const char *route_cookie;            /* NULL: no route cookie        */
    const apr_array_header_t *session_cookies; /* of const char *; may be NULL;
                                            * the first SLB_MAX_COOKIE_NAMES
                                            * are read */
    const char *path_param;              /* NULL: no path parameter      */
    char separator;                      /* between id and route         */
} slb_key_spec;

/* 1 when c may appear in a cookie name (RFC 6265 token). */
int slb_is_token_char(unsigned char c);
/*
 * Value of query parameter `name` in a raw query string (r->args, not
 * decoded): the first "name=value" pair (separated by '&' or ';') whose
 * value passes slb_value_ok().  Returns 1 when found.
 */
int slb_query_param(const char *args, const char *name, slb_span *out);

/*
 * The value a Set-Cookie header sets for cookie `name`: 1 and *value when
 * the header sets that cookie with a value passing slb_value_ok(); 2 when
 * it deletes it (an empty value, or a last valid Max-Age of 0 or less as
 * RFC 6265 5.2.2 reads it: invalid Max-Age values are ignored; Expires is
 * not checked); 0 otherwise.
 */
int slb_set_cookie_value(const char *hdr, const char *name, slb_span *value);

/* 1 when the whole string is a non-empty token of at most maxlen bytes. */
int slb_is_token(const char *s, apr_size_t maxlen);

/* 1 when the bytes are acceptable as a session value: 1..SLB_MAX_VALUE_LEN
 * bytes, printable US-ASCII only (no controls, no bytes >= 0x80, no space,
 * no '"', ',', ';' or '\\'). */
int slb_value_ok(const char *v, apr_size_t len);

/* 1 when the bytes are acceptable as the value of a request header key
 * (StickyLBKey header): 1..SLB_MAX_VALUE_LEN bytes of printable US-ASCII,
 * space and tab (an HTTP field value: "Bearer x", "a, b" of a repeated
 * header), no control bytes, no bytes >= 0x80.  The value is only hashed
 * into a key, never copied into a cookie, a log line or memcached. */
int slb_header_value_ok(const char *v, apr_size_t len);

/* 1 when the bytes are an acceptable route: 1..SLB_MAX_ROUTE_LEN bytes that
 * also pass slb_value_ok(). */
int slb_route_ok(const char *v, apr_size_t len);

/*
 * Find the values of cookie `name` in one Cookie request header.  Values
 * are stored in order of appearance into out[0..max-1]; returns how many.
 * Pairs are separated by ';' or ',' (httpd joins repeated Cookie headers
 * with ", "; a cookie-octet never holds ',').
 * Surrounding double quotes are removed.  Pairs without '=' are skipped,
 * names are compared case-sensitively (RFC 6265).  Values that fail
 * slb_value_ok() are skipped.
 */
int slb_cookie_values(const char *hdr, const char *name,
                      slb_span *out, int max);

/*
 * Split "<id><sep><route>" at the first separator (Tomcat's jvmRoute form).
 * Returns 1 and fills id and route when a separator is present and the
 * route side passes slb_route_ok().  The id side may be empty only when
 * allow_empty_id is set (route cookies of the classic ".route" form).
 */
int slb_split_route(const char *v, apr_size_t len, char sep,
                    int allow_empty_id, slb_span *id, slb_span *route);

/*
 * Find the path parameter ";name=value" in the path part of a raw request
 * URI (the bytes before '?' or '#').  The parameter name is compared
 * case-insensitively; the value ends at ';', '/', '?', '#' or the end.
 * A parameter that only appears in the query string is not a path parameter
 * and is ignored.  Returns 1 for the first occurrence whose value passes
 * slb_value_ok() (an invalid one is skipped).
 */
int slb_path_param(const char *uri, const char *name, slb_span *out);

/*
 * Collect candidate routes from the request: cookie_hdrs holds every Cookie
 * header of the request (NULL entries allowed).  Order of precedence:
 * 1. the route cookie (the balancer's latest decision),
 * 2. the path parameter (the URL wins over the session cookie),
 * 3. the session cookies, in configured order.
 * Returns an array of slb_candidate (possibly empty), allocated from p.
 */
apr_array_header_t *slb_collect_candidates(apr_pool_t *p,
                                           const slb_key_spec *spec,
                                           const char *const *cookie_hdrs,
                                           int n_hdrs, const char *raw_uri);
/*
 * As slb_collect_candidates_into, and in the same pass over the Cookie
 * headers the values of the cookies named in `extra` (const char *, the
 * first SLB_MAX_COOKIE_NAMES): extra_n[k] values of extra name k at
 * extra_out[k * SLB_MAX_SAME_NAME], as slb_cookie_values gives them
 * (unquoted, slb_value_ok), at most SLB_MAX_SAME_NAME of each across the
 * headers.  extra may be NULL.
 */
void slb_collect_candidates_ex(apr_pool_t *p, apr_array_header_t *arr,
                               const slb_key_spec *spec,
                               const char *const *cookie_hdrs, int n_hdrs,
                               const char *raw_uri,
                               const apr_array_header_t *extra,
                               slb_span *extra_out, int *extra_n);

/*
 * The names slb_collect_candidates_ex looks for and their lengths, worked
 * out once for a balancer (slb_cookie_plan_make) instead of on every
 * request: the route cookie, the session cookies (the first
 * SLB_MAX_COOKIE_NAMES), then the extra names (as many).
 */
#define SLB_PLAN_NAMES (2 * SLB_MAX_COOKIE_NAMES + 1)
typedef struct {
    const slb_key_spec *spec;
    int nnames, first_session, nsessions, first_extra;
    const char *names[SLB_PLAN_NAMES];
    apr_size_t nlen[SLB_PLAN_NAMES];
} slb_cookie_plan;

/* spec must outlive the plan; extra may be NULL */
void slb_cookie_plan_make(slb_cookie_plan *pl, const slb_key_spec *spec,
                          const apr_array_header_t *extra);

/*
 * What the walk of one Cookie header found under a plan, kept for the
 * next request of the same client (the module keeps one per
 * connection): a keep-alive client sends the same Cookie header again
 * and again, and a header equal to the one remembered gives the same
 * values (at the same offsets) without the walk.  Only a request with
 * one Cookie header of at most SLB_MEMO_HDR_MAX bytes, whose values fit
 * in SLB_MEMO_VALUES, is remembered.  Zero it before the first use.
 */
#define SLB_MEMO_HDR_MAX 512
#define SLB_MEMO_VALUES 16
typedef struct {
    const slb_cookie_plan *plan;       /* NULL: nothing remembered */
    apr_size_t len;
    char hdr[SLB_MEMO_HDR_MAX];
    int nvalues;
    struct {
        unsigned char k, i;            /* the plan's name, its value's rank */
        apr_uint16_t off, len;         /* where in the header */
    } v[SLB_MEMO_VALUES];
} slb_cookie_memo;

/*
 * slb_collect_candidates_ex by a plan: the values of every name read go
 * to values[k * SLB_MAX_SAME_NAME], counts[k] of them, for the plan's
 * names k (values of SLB_PLAN_NAMES * SLB_MAX_SAME_NAME spans, counts of
 * SLB_PLAN_NAMES); the extra names' are at k = pl->first_extra + e.
 * memo (may be NULL): read and updated as described above; the values
 * always point into cookie_hdrs, never into the memo.
 */
void slb_collect_candidates_plan(apr_pool_t *p, apr_array_header_t *arr,
                                 const slb_cookie_plan *pl,
                                 slb_cookie_memo *memo,
                                 const char *const *cookie_hdrs, int n_hdrs,
                                 const char *raw_uri, slb_span *values,
                                 int *counts);

/* The same, pushed onto arr (an array of slb_candidate the caller owns,
 * e.g. with storage of its own: it grows from p when full). */
void slb_collect_candidates_into(apr_pool_t *p, apr_array_header_t *arr,
                                 const slb_key_spec *spec,
                                 const char *const *cookie_hdrs, int n_hdrs,
                                 const char *raw_uri);

/*
 * Return a copy of one Cookie header with every pair named `name` removed,
 * or NULL when nothing is left.  *removed is set to the number of pairs
 * removed.  Only those pairs go, each with the separator (';' or ',', and
 * the whitespace around it) before it, or after it when it comes before
 * every pair kept; every other byte of the header is kept as it was
 * (quotes, commas inside quoted values, spacing).
 */
const char *slb_cookie_strip(apr_pool_t *p, const char *hdr,
                             const char *name, int *removed);

/* SameSite attribute of the inserted cookie. */
typedef enum {
    SLB_SAMESITE_UNSET = -1,
    SLB_SAMESITE_OFF = 0,
    SLB_SAMESITE_LAX,
    SLB_SAMESITE_STRICT,
    SLB_SAMESITE_NONE
} slb_samesite;

/* The route cookie and its attributes (from StickyLBRouteCookie). */
typedef struct {
    const char *name;        /* NULL when not configured */
    int insert;              /* set it in responses */
    int indirect;            /* hide it from the backend */
    int nocache;             /* mark responses that set it private */
    const char *path;        /* default "/" */
    const char *domain;      /* default none */
    int secure;              /* default off */
    int httponly;            /* default on */
    slb_samesite samesite;   /* default Lax */
    long max_age;            /* -1: session cookie (default) */
    const char *sign_file;   /* sign=: HMAC key file; NULL = unsigned */
    int strict;              /* unsigned or forged values ignored */
    int opaque;              /* a token instead of the route name */
    long maxidle;            /* seconds; -1 = none */
    long maxlife;            /* seconds; -1 = none */
} slb_cookie_conf;

/* Fill with the defaults above (name NULL). */
void slb_cookie_conf_init(slb_cookie_conf *c);

/*
 * Parse the arguments of StickyLBRouteCookie: the cookie name first, then
 * flags (insert, indirect, nocache) and attributes (path=, domain=,
 * secure=on|off, httponly=on|off, samesite=lax|strict|none|off,
 * max-age=N, sign=KEYFILE, strict, opaque, maxidle=N, maxlife=N; the last
 * four need sign=).  Returns NULL on success or an error message (from p) that
 * names the offending word.
 */
const char *slb_cookie_conf_parse(apr_pool_t *p, slb_cookie_conf *c,
                                  int argc, const char *const *argv);

/* The Set-Cookie header value for route `route`. */
const char *slb_cookie_build(apr_pool_t *p, const slb_cookie_conf *c,
                             const char *route);

/*
 * Cache-Control for a response that sets the route cookie: the existing
 * value (may be NULL) with "public" and "s-maxage" removed and "private"
 * added unless already private/no-store; a value with an unclosed quoted
 * string becomes "private".
 */
const char *slb_cache_control_private(apr_pool_t *p, const char *existing);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_CODEC_H */
