/*
 * stickylb_sign.h - signed, expiring and opaque route cookies (APR +
 * OpenSSL's HMAC-SHA256, no httpd).
 *
 * A route cookie in the signed form is
 *
 *     v1~<route or token>~<issued>~<refreshed>~<mac>
 *
 * issued and refreshed are seconds since the epoch in lowercase hex, mac is
 * the first 16 bytes of HMAC-SHA256(key, everything before "~<mac>") in
 * lowercase hex.  The first key of a key ring signs, every key verifies
 * (rotation).  With opaque names the route is replaced by a token,
 * the first 8 bytes of HMAC-SHA256(key, "route\0" + route) in hex, so the
 * cookie does not reveal member names.
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

/* Token standing for `route` under the ring's first key (16 hex chars). */
const char *slb_route_token(apr_pool_t *p, const slb_keyring *ring,
                            const char *route);
/* The same under key k of the ring (0 <= k < nkeys): a cookie issued
 * before a rotation names its member by an older key's token. */
const char *slb_route_token_k(apr_pool_t *p, const slb_keyring *ring,
                              int k, const char *route);

/* The signed cookie value. */
const char *slb_sign_value(apr_pool_t *p, const slb_keyring *ring,
                           const char *route_or_token, apr_time_t issued,
                           apr_time_t refreshed);

/*
 * Parse and verify a signed value (any key of the ring).  Returns 1 and
 * fills *route_or_token (from p), *issued and *refreshed when the value is
 * of the signed form and its mac verifies; 0 when it is of the signed form
 * but does not verify or is malformed; -1 when it is not of the signed
 * form at all (a plain route).
 */
int slb_verify_value(apr_pool_t *p, const slb_keyring *ring, const char *v,
                     const char **route_or_token, apr_time_t *issued,
                     apr_time_t *refreshed);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_SIGN_H */
