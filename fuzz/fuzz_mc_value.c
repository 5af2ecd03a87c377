/*
 * fuzz_mc_value.c - values read back from memcached (a shared service:
 * untrusted bytes): slb_mc_value_parse.
 *
 * Input: the value, as libmemcached returns it (a length, no NUL).
 */
#include "fuzz_common.h"

#include <inttypes.h>

#include <apr_time.h>

#include "stickylb_codec.h"
#include "stickylb_store.h"
#include "stickylb_mc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v;
    slb_binding b, b2;
    int ok;
    size_t rlen, i;

    fz_begin();
    v = fz_mem(data, size);
    memset(&b, 0x5a, sizeof(b));
    ok = slb_mc_value_parse(v, size, &b);
    FZ_CHECK(ok == 0 || ok == 1);
    FZ_CHECK(slb_mc_value_parse(v, size, NULL) == ok);
    if (ok) {
        char buf[128];
        apr_int64_t secs;
        int n;

        FZ_CHECK(size >= 5 && size <= SLB_MC_MAX_VALUE_LEN);
        FZ_CHECK(v[0] == '1' && v[1] == ' ');
        rlen = strnlen(b.route, sizeof(b.route));
        FZ_CHECK(rlen < sizeof(b.route));          /* NUL terminated */
        FZ_CHECK(slb_route_ok(b.route, rlen));
        FZ_CHECK(rlen < size && memcmp(v + size - rlen, b.route, rlen) == 0);
        FZ_CHECK(v[size - rlen - 1] == ' ');
        /* "1 " digits " " route: the digits are the creation time */
        for (i = 2; i < size - rlen - 1; i++) {
            FZ_CHECK(v[i] >= '0' && v[i] <= '9');
        }
        FZ_CHECK(size - rlen - 3 >= 1 && size - rlen - 3 <= 13);
        FZ_CHECK(b.created >= 0 && b.created % APR_USEC_PER_SEC == 0);
        secs = apr_time_sec(b.created);
        /* the canonical form parses to the same binding */
        n = snprintf(buf, sizeof(buf), "1 %" PRId64 " %s", (int64_t)secs,
                     b.route);
        FZ_CHECK(n > 0 && (size_t)n < sizeof(buf));
        FZ_CHECK(slb_mc_value_parse(buf, (size_t)n, &b2) == 1);
        FZ_CHECK(b2.created == b.created && strcmp(b2.route, b.route) == 0);
        /* one byte less is still a value only when the route was longer */
        if (rlen == 1) {
            FZ_CHECK(slb_mc_value_parse(v, size - 1, NULL) == 0);
        }
    }
    else if (size >= 2 && size <= SLB_MC_MAX_VALUE_LEN && v[0] == '1'
             && v[1] == ' ') {
        /* a rejected value has no valid "digits route" tail */
        size_t d = 2;
        while (d < size && v[d] >= '0' && v[d] <= '9') {
            d++;
        }
        FZ_CHECK(d == 2 || d - 2 > 13 || d >= size || v[d] != ' '
                 || !slb_route_ok(v + d + 1, size - d - 1)
                 || (d - 2 == 13 && memcmp(v + 2, "9223372036854", 13) > 0));
    }
    fz_end();
    return 0;
}
