/*
 * stickylb_conf.h - the configuration model of mod_stickylb (APR only).
 *
 * Two layers, as httpd modules with a lot of settings keep them:
 *
 *   slb_dir_conf   what the directives of one scope (server config,
 *                  virtual host, <Proxy balancer://...>) said.  A field
 *                  counts only when its SLB_SET_* bit is in `set`: one
 *                  convention for "unset", no sentinel values.
 *   slb_balancer   one balancer resolved once, at startup: the scopes
 *                  merged (slb_dir_conf_merge), every default applied
 *                  (slb_balancer_resolve), enums instead of flags, and
 *                  what the request path needs precomputed.  Immutable
 *                  after post_config; the request path reads only this.
 *
 * The parsers of directive arguments live here too, so that every one of
 * them is unit-tested: one for whole numbers, one for durations (a bare
 * number in the directive's unit, or with "ms" or "s"), and the small
 * grammars of the list directives.  They return NULL or an error message
 * (allocated from p) without the directive name: the glue prefixes it.
 */
#ifndef STICKYLB_CONF_H
#define STICKYLB_CONF_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "stickylb_codec.h"
#include "stickylb_store.h"
#include "stickylb_probe.h"
#include "stickylb_passive.h"
#include "stickylb_sign.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* argument parsers                                                      */

/* A whole number from lo to hi (decimal digits only). */
const char *slb_parse_int(apr_pool_t *p, const char *arg, apr_int64_t lo,
                          apr_int64_t hi, apr_int64_t *out);

/* The unit of a bare number in a duration. */
typedef enum {
    SLB_UNIT_MS,
    SLB_UNIT_S
} slb_unit;

/*
 * A duration from lo to hi: a whole number in `unit`, or a whole number
 * followed by "ms" or "s" (no space).  "10m" is refused rather than read
 * as minutes or milliseconds.  *out in microseconds.
 */
const char *slb_parse_duration(apr_pool_t *p, const char *arg, slb_unit unit,
                               apr_interval_time_t lo, apr_interval_time_t hi,
                               apr_interval_time_t *out);

/* One word of a list of choices (NULL name ends the list). */
typedef struct {
    const char *name;
    int value;
} slb_keyword;

/* One of the words (case-insensitive): NULL and *out, or "'x' must be a,
 * b or c", followed by " (did you mean b?)" when x is a near miss of b
 * (slb_near_word; the first 15 words are compared). */
const char *slb_parse_keyword(apr_pool_t *p, const char *arg,
                              const slb_keyword *words, int *out);

/*
 * The word of `words` (NULL-terminated) that w is a near miss of, compared
 * without case: at most 2 edits (a byte inserted, deleted or replaced, or
 * two neighbours swapped), and fewer edits than w has bytes, so that "x"
 * is near nothing.  The first of the closest wins a tie.  NULL when no
 * word is near, and for w or a word longer than 64 bytes.  A word equal
 * to w (0 edits) is returned too: callers ask only about unknown words.
 */
const char *slb_near_word(const char *w, const char *const *words);

/*
 * The message for an unknown option w of a directive whose options are
 * `valid` (NULL-terminated, as README shows them: "insert", "path="):
 * "unknown option 'w' (expected a, b, c)", or "unknown option 'w': did
 * you mean X? (expected a, b, c)" when w is a near miss of X.  A key=value w is compared by
 * "key=", so "samesit=lax" is a near miss of "samesite=" and "insert=on"
 * of "insert".
 */
const char *slb_unknown_option(apr_pool_t *p, const char *w,
                               const char *const *valid);

/* A duration as operators write it: "1800 s", "250 ms" (for messages). */
const char *slb_duration_str(apr_pool_t *p, apr_interval_time_t t);

/* Whole seconds of t, rounded up (what the stick table keeps). */
apr_uint32_t slb_duration_secs(apr_interval_time_t t);

/* ------------------------------------------------------------------ */
/* the directives of one scope                                          */

/* Additional sticky keys held in the stick table (StickyLBKey). */
typedef enum {
    SLB_KEY_HEADER = 1,
    SLB_KEY_QUERY,
    SLB_KEY_ADDRESS,
    SLB_KEY_COOKIE
} slb_key_kind;

typedef struct {
    slb_key_kind kind;
    const char *name;        /* header, parameter or cookie name; NULL for
                              * address */
    int slot;                /* cookie: its index in the resolved
                              * balancer's read_cookies (resolve) */
} slb_key_source;

/* A status or a range of statuses (StickyLBPassive). */
typedef struct {
    int lo, hi;
} slb_range;

/* How the member of a new session is chosen (StickyLBNewSessions). */
typedef enum {
    SLB_PLACE_REQUESTS = 0,  /* weighted round robin (default) */
    SLB_PLACE_SESSIONS,      /* fewest live bindings per loadfactor */
    SLB_PLACE_HASH,          /* rendezvous hashing of the request's key */
    SLB_PLACE_BUSYNESS       /* fewest busy connections per loadfactor */
} slb_placement;

/* Where a balancer's stick table lives (StickyLBStore). */
typedef enum {
    SLB_STORE_SHM = 0,       /* the embedded table (default) */
    SLB_STORE_MEMCACHED,     /* memcached, the embedded table in front */
    SLB_STORE_NONE           /* nothing remembered (keys: hash placement) */
} slb_store_kind;

/* Bits of slb_dir_conf.set: which fields a scope's directives set. */
enum {
    SLB_SET_SESSION_COOKIES = 1u << 0,
    SLB_SET_PATH_PARAM      = 1u << 1,
    SLB_SET_SEPARATOR       = 1u << 2,
    SLB_SET_ROUTE_COOKIE    = 1u << 3,
    SLB_SET_LEARN_COOKIES   = 1u << 4,
    SLB_SET_KEYS            = 1u << 5,
    SLB_SET_IDLE_TIMEOUT    = 1u << 6,
    SLB_SET_MAX_LIFETIME    = 1u << 7,
    SLB_SET_NAMESPACE       = 1u << 8,
    SLB_SET_PLACEMENT       = 1u << 9,
    SLB_SET_STORE           = 1u << 10,
    SLB_SET_PROBES          = 1u << 11,
    SLB_SET_PASSIVE         = 1u << 12,
    SLB_SET_SLOW_START      = 1u << 13,
    SLB_SET_VARIABLES       = 1u << 14,
    SLB_SET_AGENTS          = 1u << 15
};

/* Whether the STICKYLB_* variables are set (StickyLBVariables). */
typedef enum {
    SLB_VARS_AUTO = 0,       /* when the configuration names one (default) */
    SLB_VARS_ON,
    SLB_VARS_OFF
} slb_vars_mode;

typedef struct {
    unsigned set;                        /* SLB_SET_* */
    apr_array_header_t *session_cookies; /* const char *; empty: none */
    const char *path_param;              /* NULL: none */
    char separator;
    slb_cookie_conf route_cookie;        /* name NULL: none */
    slb_keyring *ring;                   /* route_cookie.sign_file loaded */
    apr_array_header_t *learn_cookies;   /* const char * */
    apr_array_header_t *keys;            /* slb_key_source */
    apr_interval_time_t idle_timeout;    /* 0: unlimited */
    apr_interval_time_t max_lifetime;    /* 0: unlimited */
    const char *ns;
    slb_placement placement;
    slb_store_kind store;
    apr_array_header_t *probes;          /* slb_probe_conf */
    apr_array_header_t *agents;          /* slb_probe_conf (agent set) */
    apr_array_header_t *passive;         /* slb_range */
    slb_passive_conf passive_opts;
    apr_interval_time_t slow_start;      /* 0: off */
    slb_vars_mode variables;
} slb_dir_conf;

/* An empty scope (nothing set). */
void slb_dir_conf_init(slb_dir_conf *c);

/* out = add over base: what add set wins, the rest comes from base
 * (arrays are shared, not copied). */
void slb_dir_conf_merge(slb_dir_conf *out, const slb_dir_conf *base,
                        const slb_dir_conf *add);

/* The defaults (applied by slb_balancer_resolve, nowhere else). */
#define SLB_DEFAULT_SESSION_COOKIE "JSESSIONID"
#define SLB_DEFAULT_PATH_PARAM     "jsessionid"
#define SLB_DEFAULT_SEPARATOR      '.'
#define SLB_DEFAULT_IDLE_TIMEOUT   apr_time_from_sec(1800)
#define SLB_MAX_DURATION_S         315360000   /* ten years */

/* Directive grammars (the argument lists of one directive each). */
const char *slb_parse_cookie_names(apr_pool_t *p, int argc,
                                   const char *const *argv,
                                   apr_array_header_t **out);
const char *slb_parse_key(apr_pool_t *p, const char *kind, const char *name,
                          slb_key_source *out);
const char *slb_parse_passive(apr_pool_t *p, int argc,
                              const char *const *argv,
                              apr_array_header_t **ranges,
                              slb_passive_conf *opts);

/*
 * What an effective (merged) configuration c says that cannot work
 * together, as a message naming the directives, or NULL: a cookie both
 * learned (StickyLBLearnCookie) and a key (StickyLBKey cookie); more than
 * SLB_MAX_COOKIE_NAMES learned and key cookies together.
 */
const char *slb_dir_conf_check_cookies(apr_pool_t *p,
                                       const slb_dir_conf *c);

/* ------------------------------------------------------------------ */
/* a resolved balancer                                                  */

typedef struct {
    const char *name;              /* "balancer://app", as mod_proxy has it */
    const char *ns;                /* store namespace (default: name) */
    slb_key_spec spec;             /* what the codec looks for */
    const slb_cookie_conf *route_cookie; /* name NULL: none */
    const char *cookie_attrs;      /* "; Path=/; HttpOnly; ..." */
    const slb_keyring *ring;       /* signed route cookies; NULL: unsigned */
    const apr_array_header_t *learn_cookies;  /* const char *, never NULL */
    const apr_array_header_t *keys;           /* slb_key_source, never NULL */
    /* the cookies whose values the store looks up, read in the pass over
     * the Cookie headers: the learned ones, then the key cookies
     * (StickyLBKey cookie; their slb_key_source.slot); NULL: none */
    const apr_array_header_t *read_cookies;   /* const char * */
    /* the cookie names of spec and read_cookies with their lengths, for
     * the request's pass over its Cookie headers (plan.spec is &spec:
     * the balancer is not copied once resolved) */
    slb_cookie_plan plan;
    slb_lifetime lifetime;         /* of bindings, whole seconds */
    slb_placement placement;
    slb_store_kind store;
    const slb_tier *tier;          /* the store (set by the glue) */
    const void *key_prefix;        /* the table's key prefix of ns (glue) */
    const apr_array_header_t *probes;   /* slb_probe_conf, never NULL */
    const apr_array_header_t *agents;   /* agent checks (slb_probe_conf,
                                         * agent set), never NULL */
    const apr_array_header_t *passive;  /* slb_range, never NULL */
    slb_passive_conf passive_opts;      /* how failures count */
    apr_interval_time_t slow_start;     /* 0: off */
    slb_vars_mode variables;            /* as configured */

    /* derived: what a request of this balancer may need */
    unsigned uses_store:1;         /* learned cookies or keys, a store */
    unsigned learns:1;             /* learned cookies */
    unsigned weights_vary:1;       /* slow start or agent weights: the
                                      members' weights change with time */
    unsigned inserts_cookie:1;     /* route cookie with insert */
    unsigned strips_cookie:1;      /* route cookie with indirect */
    unsigned sets_vars:1;          /* STICKYLB_* variables (glue: auto) */
} slb_balancer;

/*
 * Resolve the effective configuration c (already merged) of the balancer
 * `name` into *out, allocated from p: every default applied.
 */
void slb_balancer_resolve(apr_pool_t *p, const slb_dir_conf *c,
                          const char *name, slb_balancer *out);

/*
 * What configtest refuses in an effective (merged) configuration of the
 * balancer `name`: an error message naming the directives and the fix, or
 * NULL.  *warning (may be NULL) is set to a message about a setting with
 * no effect, or NULL.
 */
const char *slb_dir_conf_check(apr_pool_t *p, const slb_dir_conf *c,
                               const char *name, const char **warning);

/* Set-Cookie value of the route cookie for `value` (route or signed). */
const char *slb_balancer_cookie(apr_pool_t *p, const slb_balancer *b,
                                const char *value);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_CONF_H */
