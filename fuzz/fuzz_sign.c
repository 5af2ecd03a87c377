/*
 * fuzz_sign.c - stickylb_sign.c: key files (slb_keyring_parse), route
 * tokens, signing and verifying route cookie values (v2, bound to a
 * namespace and a cookie name, and the v1 format of the migration window).
 *
 * Input: NUL-separated fields: 0 the key file's text, 1 a route (or
 * token), 2 a cookie value a client sends, 3 the namespace (default
 * "balancer://app"), 4 the cookie name (default "ROUTEID").  Checked:
 *  - key file round trip: a file that parses has 1..8 keys of at least 16
 *    bytes, each one a line of the file with its outer blanks removed, not
 *    starting with '#'; the keys written back one a line parse to the same
 *    ring; a file that does not parse gives a message;
 *  - value round trip: what is signed (v2) verifies with the ring (any
 *    key) under its scope, giving back the route and the times, and with
 *    the ring of its first key alone; it does not verify under another
 *    namespace or cookie name (one byte added), nor without a scope;
 *    a single bit flipped anywhere in the value makes it fail to
 *    verify (or it is no longer of a signed form): every 7th bit from an
 *    offset the input picks, so every bit across inputs;
 *  - the same for the v1 format: verifies as SLB_SIGNED_V1 under any
 *    scope, and not once a bit is flipped (the same way);
 *  - a token is 16 lowercase hex digits, the same for the same key, scope
 *    and route;
 *  - whatever a client sends, verification answers -1, 0, 1 or 2 and a
 *    positive answer gives back a route or token of valid cookie octets.
 */
#include "fuzz_common.h"

#include <apr_strings.h>

#include "stickylb_sign.h"
#include "stickylb_codec.h"

static void check_token(const char *t)
{
    int i;

    FZ_CHECK(strlen(t) == 16);
    for (i = 0; i < 16; i++) {
        FZ_CHECK((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'));
    }
}

/* key k of the ring is a line of text (blanks around it removed) */
static int is_line_of(const char *text, const unsigned char *key,
                      apr_size_t len)
{
    const char *s = text;

    while (*s) {
        const char *e = strchr(s, '\n');
        const char *le = e ? e : s + strlen(s);
        while (le > s && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t')) {
            le--;
        }
        while (s < le && (*s == ' ' || *s == '\t')) {
            s++;
        }
        if ((apr_size_t)(le - s) == len && memcmp(s, key, len) == 0) {
            return 1;
        }
        if (!e) {
            break;
        }
        s = e + 1;
    }
    return 0;
}

/* bits of v flipped one at a time, every 7th from `start` (0..6, from the
 * input: across inputs every bit): none verifies */
static void check_flips(apr_pool_t *p, const slb_keyring *ring,
                        const slb_sign_scope *scope, const char *v,
                        size_t start)
{
    size_t n = strlen(v), bit;
    const char *got = NULL;
    apr_time_t is = 0, rf = 0;
    char *x = apr_pstrdup(p, v);

    for (bit = start % 7; bit < n * 8; bit += 7) {
        x[bit / 8] ^= (char)(1 << (bit % 8));
        if (x[bit / 8] != '\0') {
            FZ_CHECK(slb_verify_value(p, ring, scope, x, &got, &is, &rf) <= 0);
        }
        x[bit / 8] ^= (char)(1 << (bit % 8));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *f[5] = { "", "", "", "", "" };
    int nf = fz_split(data, size, f, 5), k;
    slb_keyring ring, first, again;
    const char *route = nf > 1 ? f[1] : "t1";
    const char *err = slb_keyring_parse(p, f[0], strlen(f[0]), &ring);
    const char *got = NULL;
    apr_time_t is = 0, rf = 0;
    slb_sign_scope scope, other;

    scope.ns = nf > 3 ? f[3] : "balancer://app";
    scope.name = nf > 4 ? f[4] : "ROUTEID";
    if (err != NULL) {
        FZ_CHECK(*err != '\0');
        fz_end();
        return 0;
    }

    /* --- the key file */
    FZ_CHECK(ring.nkeys >= 1 && ring.nkeys <= SLB_SIGN_MAX_KEYS);
    {
        apr_size_t total = 0;
        char *text, *w;

        for (k = 0; k < ring.nkeys; k++) {
            FZ_CHECK(ring.len[k] >= SLB_SIGN_MIN_KEY);
            FZ_CHECK(ring.key[k][0] != '#');
            FZ_CHECK(memchr(ring.key[k], '\n', ring.len[k]) == NULL);
            FZ_CHECK(is_line_of(f[0], ring.key[k], ring.len[k]));
            total += ring.len[k] + 1;
        }
        w = text = apr_palloc(p, total + 1);
        for (k = 0; k < ring.nkeys; k++) {
            memcpy(w, ring.key[k], ring.len[k]);
            w += ring.len[k];
            *w++ = '\n';
        }
        *w = '\0';
        FZ_CHECK(slb_keyring_parse(p, text, total, &again) == NULL);
        FZ_CHECK(again.nkeys == ring.nkeys);
        for (k = 0; k < ring.nkeys; k++) {
            FZ_CHECK(again.len[k] == ring.len[k]
                     && memcmp(again.key[k], ring.key[k], ring.len[k]) == 0);
        }
    }
    first = ring;
    first.nkeys = 1;

    /* --- tokens */
    for (k = 0; k < ring.nkeys; k++) {
        const char *t = slb_route_token_k(p, &ring, k, &scope, route);
        check_token(t);
        FZ_CHECK(strcmp(t, slb_route_token_k(p, &ring, k, &scope, route)) == 0);
        check_token(slb_route_token_k(p, &ring, k, NULL, route));
    }
    FZ_CHECK(strcmp(slb_route_token(p, &ring, &scope, route),
                    slb_route_token_k(p, &ring, 0, &scope, route)) == 0);

    /* --- values */
    if (slb_route_ok(route, strlen(route))) {
        apr_time_t t0 = apr_time_from_sec(1700000000);
        const char *v = slb_sign_value(p, &ring, &scope, route, t0,
                                       t0 + apr_time_from_sec(5));
        const char *v1 = slb_sign_value_v1(p, &ring, route, t0, t0);

        FZ_CHECK(slb_value_ok(v, strlen(v)));
        FZ_CHECK(strncmp(v, "v2~", 3) == 0);
        FZ_CHECK(slb_verify_value(p, &ring, &scope, v, &got, &is, &rf)
                 == SLB_SIGNED_V2);
        FZ_CHECK(strcmp(got, route) == 0);
        FZ_CHECK(is == t0 && rf == t0 + apr_time_from_sec(5));
        FZ_CHECK(slb_verify_value(p, &first, &scope, v, &got, &is, &rf)
                 == SLB_SIGNED_V2);
        FZ_CHECK(slb_verify_value(p, &ring, NULL, v, &got, &is, &rf) == 0);
        /* another namespace, another cookie name: one byte more */
        other.ns = apr_pstrcat(p, scope.ns, "x", NULL);
        other.name = scope.name;
        FZ_CHECK(slb_verify_value(p, &ring, &other, v, &got, &is, &rf) == 0);
        other.ns = scope.ns;
        other.name = apr_pstrcat(p, scope.name, "x", NULL);
        FZ_CHECK(slb_verify_value(p, &ring, &other, v, &got, &is, &rf) == 0);
        check_flips(p, &ring, &scope, v, size);

        FZ_CHECK(strncmp(v1, "v1~", 3) == 0);
        FZ_CHECK(slb_verify_value(p, &ring, &scope, v1, &got, &is, &rf)
                 == SLB_SIGNED_V1);
        FZ_CHECK(strcmp(got, route) == 0 && is == t0 && rf == t0);
        FZ_CHECK(slb_verify_value(p, &ring, &other, v1, &got, &is, &rf)
                 == SLB_SIGNED_V1);
        check_flips(p, &ring, &scope, v1, size + 3);
    }

    /* --- what a client sends */
    if (nf > 2) {
        int rc = slb_verify_value(p, &ring, &scope, f[2], &got, &is, &rf);
        FZ_CHECK(rc == -1 || rc == 0 || rc == SLB_SIGNED_V1
                 || rc == SLB_SIGNED_V2);
        if (rc > 0) {
            FZ_CHECK(got != NULL && slb_value_ok(got, strlen(got)));
        }
    }
    fz_end();
    return 0;
}
