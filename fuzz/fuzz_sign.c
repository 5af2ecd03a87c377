/*
 * fuzz_sign.c - stickylb_sign.c: key files (slb_keyring_parse), route
 * tokens, signing and verifying route cookie values.
 *
 * Input: NUL-separated fields: 0 the key file's text, 1 a route (or
 * token), 2 a cookie value a client sends.  Checked:
 *  - a key file that parses has 1..8 keys of at least 16 bytes;
 *  - round trip: what is signed verifies with the ring (any key), giving
 *    back the route and the times, and with the ring of its first key
 *    alone; one bit flipped anywhere in the value does not verify;
 *  - a token is 16 lowercase hex digits, the same for the same key and
 *    route, and differs between keys of different bytes (almost always:
 *    not asserted);
 *  - whatever a client sends, verification answers -1, 0 or 1, and a 1
 *    gives back a route or token of valid cookie octets.
 */
#include "fuzz_common.h"

#include <apr_strings.h>

#include "stickylb_sign.h"
#include "stickylb_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *f[3] = { "", "", "" };
    int nf = fz_split(data, size, f, 3), i, k;
    slb_keyring ring, first;
    const char *route = nf > 1 ? f[1] : "t1";
    const char *err = slb_keyring_parse(p, f[0], strlen(f[0]), &ring);
    const char *got = NULL;
    apr_time_t is = 0, rf = 0;
    slb_sign_scope scope = { "balancer://app", "ROUTEID" };

    if (err == NULL) {
        FZ_CHECK(ring.nkeys >= 1 && ring.nkeys <= SLB_SIGN_MAX_KEYS);
        for (k = 0; k < ring.nkeys; k++) {
            FZ_CHECK(ring.len[k] >= SLB_SIGN_MIN_KEY);
        }
        first = ring;
        first.nkeys = 1;
        for (k = 0; k < ring.nkeys; k++) {
            const char *t = slb_route_token_k(p, &ring, k, &scope, route);
            FZ_CHECK(strlen(t) == 16);
            for (i = 0; i < 16; i++) {
                FZ_CHECK((t[i] >= '0' && t[i] <= '9')
                         || (t[i] >= 'a' && t[i] <= 'f'));
            }
            FZ_CHECK(strcmp(t, slb_route_token_k(p, &ring, k, &scope, route)) == 0);
        }
        FZ_CHECK(strcmp(slb_route_token(p, &ring, &scope, route),
                        slb_route_token_k(p, &ring, 0, &scope, route)) == 0);
        if (slb_route_ok(route, strlen(route))) {
            apr_time_t t0 = apr_time_from_sec(1700000000);
            const char *v = slb_sign_value(p, &ring, &scope, route, t0,
                                           t0 + apr_time_from_sec(5));
            size_t n = strlen(v), bit;

            FZ_CHECK(slb_value_ok(v, n));
            FZ_CHECK(slb_verify_value(p, &ring, &scope, v, &got, &is, &rf) == SLB_SIGNED_V2);
            FZ_CHECK(strcmp(got, route) == 0);
            FZ_CHECK(is == t0 && rf == t0 + apr_time_from_sec(5));
            FZ_CHECK(slb_verify_value(p, &first, &scope, v, &got, &is, &rf) == SLB_SIGNED_V2);
            /* one bit flipped: never a valid value of the same body */
            for (bit = 0; bit < n * 8; bit += 7) {
                char *x = apr_pstrdup(p, v);
                x[bit / 8] ^= (char)(1 << (bit % 8));
                if (x[bit / 8] == '\0') {
                    continue;
                }
                FZ_CHECK(slb_verify_value(p, &ring, &scope, x, &got, &is, &rf) <= 0
                         || strcmp(x, v) == 0);
            }
        }
        if (nf > 2) {
            int rc = slb_verify_value(p, &ring, &scope, f[2], &got, &is, &rf);
            FZ_CHECK(rc == -1 || rc == 0 || rc == SLB_SIGNED_V1
                     || rc == SLB_SIGNED_V2);
            if (rc > 0) {
                FZ_CHECK(got != NULL && slb_value_ok(got, strlen(got)));
            }
        }
    }
    fz_end();
    return 0;
}
