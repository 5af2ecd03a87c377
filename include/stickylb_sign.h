/*
 * stickylb_sign.h - signed, expiring and opaque route cookies (APR +
 * OpenSSL's HMAC-SHA256, no httpd).
 *
 * A route cookie in the signed form is
 *
 *     v2~<route or token>~<issued>~<refreshed>~<mac>
 *
 * issued and refreshed are seconds since the epoch in lowercase hex, mac is
 * the first 16 bytes in lowercase hex of
 *
 *     HMAC-SHA256(key, "v2" NUL <namespace> NUL <cookie name> NUL
 *                      <everything before "~<mac>">)
 *
 * so a value is bound to the balancer that issued it (its resolved
 * StickyLBNamespace) and to the cookie's name: another balancer or cookie
 * sharing the key file does not accept it.  The first key of a key ring
 * signs, every key verifies (rotation).  With opaque names the route is
 * replaced by a token, the first 8 bytes in hex of
 * HMAC-SHA256(key, "token2" NUL <namespace> NUL <cookie name> NUL <route>),
 * so the cookie does not reveal member names.
 *
 * The format before (v1: the mac over "v1~<route or token>~
 * <issued>~<refreshed>" alone, tokens of "route" NUL <route>) is still
 * recognised during a migration window: slb_verify_value says which
 * version verified, the glue accepts a v1 value only without strict and
 * re-issues it as v2.
 */
#ifndef STICKYLB_SIGN_H
#define STICKYLB_SIGN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLB_SIGN_MIN_KEY 16
#define SLB_SIGN_MAX_KEYS 8

/* slb_verify_value: the format version of a value that verified */
#define SLB_SIGNED_V1 1     /* legacy: bound to no balancer or cookie */
#define SLB_SIGNED_V2 2

/* What a v2 value and token are bound to. */
typedef struct {
    const char *ns;         /* the balancer's namespace (never NULL) */
    const char *name;       /* the route cookie's name (never NULL) */
} slb_sign_scope;

typedef struct {
    int nkeys;
    const unsigned char *key[SLB_SIGN_MAX_KEYS];
    apr_size_t len[SLB_SIGN_MAX_KEYS];
} slb_keyring;

/*
 * Read a key file: one secret per line (at least 16 bytes each, blank
 * lines and lines starting with '#' skipped, at most 8 keys); the first
 * signs.  NULL or an error message.
 */
const char *slb_keyring_load(apr_pool_t *p, const char *path,
                             slb_keyring *ring);

/* The same from a buffer (tests, fuzzing). */
const char *slb_keyring_parse(apr_pool_t *p, const char *text,
                              apr_size_t len, slb_keyring *ring);

/* Token standing for `route` under the ring's first key (16 hex chars),
 * bound to `scope` (v2); scope NULL: the legacy v1 token, bound to
 * nothing (only to recognise v1 values). */
const char *slb_route_token(apr_pool_t *p, const slb_keyring *ring,
                            const slb_sign_scope *scope, const char *route);
/* The same under key k of the ring (0 <= k < nkeys): a cookie issued
 * before a rotation names its member by an older key's token. */
const char *slb_route_token_k(apr_pool_t *p, const slb_keyring *ring,
                              int k, const slb_sign_scope *scope,
                              const char *route);

/* The signed cookie value (always v2), bound to scope. */
const char *slb_sign_value(apr_pool_t *p, const slb_keyring *ring,
                           const slb_sign_scope *scope,
                           const char *route_or_token, apr_time_t issued,
                           apr_time_t refreshed);

/* A v1 value (tests and the migration window's checks only: the module
 * never issues one). */
const char *slb_sign_value_v1(apr_pool_t *p, const slb_keyring *ring,
                              const char *route_or_token, apr_time_t issued,
                              apr_time_t refreshed);

/*
 * Parse and verify a signed value (any key of the ring).  Returns
 * SLB_SIGNED_V2 when it is a v2 value whose mac verifies under `scope`,
 * SLB_SIGNED_V1 when it is a v1 value whose mac verifies (bound to no
 * scope: the caller decides whether to accept it), and then fills
 * *route_or_token (from p), *issued and *refreshed; 0 when it is of a
 * signed form but does not verify (another key, namespace or cookie name,
 * or tampered) or is malformed; -1 when it is not of a signed form at all
 * (a plain route).
 */
int slb_verify_value(apr_pool_t *p, const slb_keyring *ring,
                     const slb_sign_scope *scope, const char *v,
                     const char **route_or_token, apr_time_t *issued,
                     apr_time_t *refreshed);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_SIGN_H */
