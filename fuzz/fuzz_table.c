/*
 * fuzz_table.c - the embedded stick table (stickylb_table.c) driven by
 * fuzzer-chosen sequences of operations on a small table, checked against
 * a model.
 *
 * Input:
 *   byte 0      table size: 1 + b % 48 bindings (slb_table_bytes)
 *   byte 1      slack bytes after the table (b % 64)
 *   bytes 2, 3  idle and maximum lifetimes (one of ten choices each)
 *   bytes 4-19  the table secret
 *   bytes 20-23 salt of the 24 session ids used as keys
 *   then operations of 4 bytes: op, a, b, dt (at most 1024): time moves
 *   forward by dt (dt < 128: seconds; else (dt - 128) hours), then
 *   op % 10 runs: get, add, set, del, sweep, del_route, route_id
 *   (registration), get (without age), add, set; a is the key (of 24),
 *   b picks the route (one registered, or an invalid number) or the
 *   sweep's bucket count.  Two routes are registered before the first
 *   operation.  SLB_FUZZ_TRACE=1 in the environment prints each one.
 *
 * The model knows, for each key, whether a binding may be in the table,
 * its route and its deadlines (written exactly as the table documents
 * them); an eviction (seen in the statistics) marks every binding as
 * "maybe gone", since the model does not know which slot was evicted.
 * Invariants checked after every operation:
 *   - a get finds a live binding with its route and age unless it may have
 *     been evicted, and never finds an expired, deleted or unknown key;
 *   - add answers EEXIST with the bound route while the binding lives;
 *     set and add never fail on a valid route, reject invalid route ids;
 *   - del finds a live binding, never an unknown key;
 *   - count_live <= capacity, and lies between the live bindings surely
 *     there and those maybe there;
 *   - per route, the session count never underflows (< 2^31), is at least
 *     its sure live bindings and at most its bindings maybe there; their
 *     sum is at most the capacity;
 *   - route registration is stable (same namespace and route, same id;
 *     NULL namespace is ""), route_name returns the route;
 *   - at the end, deleting every key leaves no live binding and no session.
 * Memory past the table (its slack and beyond) is poisoned for ASan.
 * Lifetimes stay below 10 years and the clock below 2^31 s after the
 * epoch (the table's documented range), so no deadline saturates.
 */
#include "fuzz_common.h"

#include <apr_time.h>

#include "stickylb_codec.h"
#include "stickylb_store.h"
#include "stickylb_table.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define FZ_POISON(a, n) ASAN_POISON_MEMORY_REGION((a), (n))
#define FZ_UNPOISON(a, n) ASAN_UNPOISON_MEMORY_REGION((a), (n))
#endif
#endif
#ifndef FZ_POISON
#define FZ_POISON(a, n) ((void)(a), (void)(n))
#define FZ_UNPOISON(a, n) ((void)(a), (void)(n))
#endif

#define MAX_ENTRIES 48
#define NKEYS 24
#define MAX_OPS 1024
#define MAX_REG 256
#define INF UINT64_MAX
#define T0 ((apr_time_t)1700000000)

typedef struct {
    int present;        /* a slot may hold it */
    int maybe_gone;     /* an eviction happened since it was last seen */
    int route;
    uint64_t idle_dl, hard_dl;
    uint32_t written;
} model_t;

typedef struct {
    const char *ns;     /* "" for NULL */
    char route[80];
    int id;
} reg_t;

static const uint32_t lifetimes[10] = {
    0, 1, 2, 5, 7, 30, 300, 3600, 86400, 315360000
};

static const char *const route_names[] = {
    "web-1", "web-2", "node.a", "jvm3", "x", "", "a b", "bad;route",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-",
    "caf\xc3\xa9", "q\"uote"
};
#define NROUTE_NAMES (sizeof(route_names) / sizeof(route_names[0]))

static const char *const namespaces[] = { "ns-a", "ns-b", NULL, "" };

static int trace;       /* SLB_FUZZ_TRACE=1: print every operation */
static unsigned char *mem;
static size_t mem_max;

static model_t m[NKEYS];
static slb_key keys[NKEYS];
static reg_t reg[MAX_REG];
static int nreg;
static int used[SLB_TABLE_MAX_ROUTES];   /* route ids written to */
static int used_list[MAX_OPS + 16], nused;

static int live(const model_t *e, uint32_t now_s)
{
    return e->present && now_s < e->idle_dl && now_s < e->hard_dl;
}

static void model_write(model_t *e, int route, const slb_lifetime *lt,
                        uint32_t now_s)
{
    e->present = 1;
    e->maybe_gone = 0;
    e->route = route;
    e->written = now_s;
    e->idle_dl = lt->idle ? (uint64_t)now_s + lt->idle : INF;
    e->hard_dl = lt->max ? (uint64_t)now_s + lt->max : INF;
}

static void use_route(int id)
{
    if (id >= 0 && id < SLB_TABLE_MAX_ROUTES && !used[id]) {
        used[id] = 1;
        used_list[nused++] = id;
    }
}

/*
 * Route number for a write: a registered one, or an invalid one (which
 * set/add must reject): negative, beyond the registry, or a number not
 * registered yet.
 */
static int route_sel(unsigned b)
{
    unsigned s = b % 16;

    switch (s) {
    case 13: return -1;
    case 14: return SLB_TABLE_MAX_ROUTES;
    case 15: return (b / 16) % 2 ? 65535 : nreg + (int)(b / 32) % 4;
    default: return reg[(b / 16 + s) % (unsigned)nreg].id;
    }
}

static apr_uint64_t evictions(const slb_table *t)
{
    slb_table_stats st;

    slb_table_stats_get(t, &st);
    return st.evictions;
}

static void check_invariants(const slb_table *t, apr_time_t now,
                             uint32_t now_s, uint32_t cap)
{
    uint32_t count = slb_table_count_live(t, now), sure = 0, maybe = 0;
    uint64_t sum = 0;
    slb_table_stats st;
    int i, k;

    for (k = 0; k < NKEYS; k++) {
        if (live(&m[k], now_s)) {
            maybe++;
            sure += !m[k].maybe_gone;
        }
    }
    FZ_CHECK(count <= cap);
    FZ_CHECK(sure <= count && count <= maybe);
    for (i = 0; i < nused; i++) {
        int id = used_list[i];
        uint32_t s = slb_table_route_sessions(t, id), lo = 0, hi = 0;
        for (k = 0; k < NKEYS; k++) {
            if (m[k].present && m[k].route == id) {
                hi++;
                lo += live(&m[k], now_s) && !m[k].maybe_gone;
            }
        }
        FZ_CHECK(s < 0x80000000u);
        FZ_CHECK(lo <= s && s <= hi);
        sum += s;
    }
    FZ_CHECK(sum <= cap);
    slb_table_stats_get(t, &st);
    FZ_CHECK(st.capacity == cap);
    FZ_CHECK(st.routes == (uint32_t)nreg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[24] = { 0 };
    unsigned char secret[16];
    apr_size_t bytes;
    slb_table *t;
    slb_lifetime lt;
    apr_time_t cur = T0;
    uint32_t cap, entries;
    size_t pos, nops, op;
    int k, i;

    fz_begin();
    if (mem == NULL) {
        trace = getenv("SLB_FUZZ_TRACE") != NULL;
        mem_max = slb_table_bytes(MAX_ENTRIES) + 64;
        if (posix_memalign((void **)&mem, 64, mem_max) != 0) {
            abort();
        }
    }
    memcpy(hdr, data, size < sizeof(hdr) ? size : sizeof(hdr));
    pos = size < sizeof(hdr) ? size : sizeof(hdr);
    nops = (size - pos) / 4;
    if (nops > MAX_OPS) {
        nops = MAX_OPS;
    }

    entries = 1 + hdr[0] % MAX_ENTRIES;
    bytes = slb_table_bytes(entries) + hdr[1] % 64;
    FZ_CHECK(bytes <= mem_max);
    lt.idle = lifetimes[hdr[2] % 10];
    lt.max = lifetimes[hdr[3] % 10];
    memcpy(secret, hdr + 4, 16);

    FZ_UNPOISON(mem, mem_max);
    memset(mem, 0xa5, mem_max);          /* format must not rely on zeros */
    FZ_POISON(mem + bytes, mem_max - bytes);
    t = slb_table_format(mem, bytes, secret, apr_time_from_sec(cur));
    FZ_CHECK(t != NULL);
    cap = slb_table_capacity(bytes);
    if (trace) {
        fprintf(stderr, "table: %u entries, %zu bytes, capacity %u, "
                "idle %u, max %u, %zu operations\n", entries,
                (size_t)bytes, cap, lt.idle, lt.max, nops);
    }
    FZ_CHECK(cap >= entries && cap % SLB_TABLE_SLOTS_PER_BUCKET == 0);
    FZ_CHECK(slb_table_attach(mem, bytes) == t);
    FZ_CHECK(slb_table_attach(mem, bytes + 1) == NULL);
    FZ_CHECK(slb_table_format(mem + 1, bytes - 1, secret, 0) == NULL);
    FZ_CHECK(slb_table_attach(mem, bytes) == t);

    memset(m, 0, sizeof(m));
    for (i = 0; i < nused; i++) {
        used[used_list[i]] = 0;
    }
    nused = 0;
    for (k = 0; k < NKEYS; k++) {
        unsigned char id[6];
        memcpy(id, hdr + 20, 4);
        id[4] = (unsigned char)k;
        id[5] = 'k';
        slb_key_make(&keys[k], "fuzz", (const char *)id, sizeof(id));
    }
    /* two routes registered up front (ids 0 and 1) */
    for (i = 0; i < 2; i++) {
        reg[i].ns = "fuzz";
        snprintf(reg[i].route, sizeof(reg[i].route), "web-%d", i + 1);
        reg[i].id = i;
        FZ_CHECK(slb_table_route_id(t, "fuzz", reg[i].route) == i);
    }
    nreg = 2;

    for (op = 0; op < nops; op++) {
        const uint8_t *o = data + pos + 4 * op;
        unsigned code = o[0] % 10, a = o[1], b = o[2], dt = o[3];
        model_t *e = &m[a % NKEYS];
        const slb_key *key = &keys[a % NKEYS];
        apr_time_t now;
        uint32_t now_s;
        apr_uint64_t ev0 = evictions(t);
        apr_status_t rv;
        int route, got;

        cur += dt < 128 ? (apr_time_t)dt : (apr_time_t)(dt - 128) * 3600;
        /* sub-second part: the table works in whole seconds */
        now = apr_time_from_sec(cur) + (apr_time_t)(b * 3907 % 1000000);
        now_s = (uint32_t)(cur - T0 + 1);

        switch (code) {
        case 0:
        case 7: {
            apr_uint32_t age = 0xdeadbeef;
            got = -1;
            rv = code == 0 ? slb_table_get_age(t, key, &lt, now, &got, &age)
                           : slb_table_get(t, key, &lt, now, &got);
            FZ_CHECK(rv == APR_SUCCESS || rv == APR_NOTFOUND);
            if (!live(e, now_s)) {
                FZ_CHECK(rv == APR_NOTFOUND);
                break;
            }
            if (rv == APR_NOTFOUND) {
                FZ_CHECK(e->maybe_gone);
                e->present = 0;
                break;
            }
            FZ_CHECK(got == e->route);
            if (code == 0) {
                FZ_CHECK(age == ((now_s - e->written) & 0xffffu));
            }
            e->maybe_gone = 0;
            if (lt.idle && (uint64_t)now_s + lt.idle > e->idle_dl) {
                e->idle_dl = (uint64_t)now_s + lt.idle;
            }
            break;
        }
        case 1:
        case 8: {
            int existing = -1;
            route = route_sel(b);
            rv = slb_table_add(t, key, route, &lt, now, &existing);
            if (route < 0 || route >= nreg) {
                FZ_CHECK(rv == APR_EINVAL);
                break;
            }
            FZ_CHECK(rv == APR_SUCCESS || rv == APR_EEXIST);
            if (live(e, now_s) && !e->maybe_gone) {
                FZ_CHECK(rv == APR_EEXIST);
            }
            if (!live(e, now_s)) {
                FZ_CHECK(rv == APR_SUCCESS);
            }
            if (rv == APR_EEXIST) {
                FZ_CHECK(existing == e->route);
                e->maybe_gone = 0;
            }
            else {
                use_route(route);
                model_write(e, route, &lt, now_s);
            }
            break;
        }
        case 2:
        case 9:
            route = route_sel(b);
            rv = slb_table_set(t, key, route, &lt, now);
            if (route < 0 || route >= nreg) {
                FZ_CHECK(rv == APR_EINVAL);
                break;
            }
            FZ_CHECK(rv == APR_SUCCESS);
            use_route(route);
            model_write(e, route, &lt, now_s);
            break;
        case 3:
            rv = slb_table_del(t, key);
            FZ_CHECK(rv == APR_SUCCESS || rv == APR_NOTFOUND);
            if (!e->present) {
                FZ_CHECK(rv == APR_NOTFOUND);
            }
            if (live(e, now_s) && !e->maybe_gone) {
                FZ_CHECK(rv == APR_SUCCESS);
            }
            e->present = 0;
            break;
        case 4: {
            uint32_t stale = 0, n;
            for (k = 0; k < NKEYS; k++) {
                stale += m[k].present && !live(&m[k], now_s);
            }
            n = slb_table_sweep(t, now, b);
            FZ_CHECK(n <= (uint32_t)b * SLB_TABLE_SLOTS_PER_BUCKET);
            FZ_CHECK(n <= stale);
            break;
        }
        case 5: {
            uint32_t lo = 0, hi = 0, n;
            route = route_sel(b);
            for (k = 0; k < NKEYS; k++) {
                if (m[k].present && m[k].route == route) {
                    hi++;
                    lo += live(&m[k], now_s) && !m[k].maybe_gone;
                }
            }
            n = slb_table_del_route(t, route);
            FZ_CHECK(lo <= n && n <= hi);
            for (k = 0; k < NKEYS; k++) {
                if (m[k].present && m[k].route == route) {
                    m[k].present = 0;
                }
            }
            if (route >= 0 && route < SLB_TABLE_MAX_ROUTES) {
                FZ_CHECK(slb_table_route_sessions(t, route) == 0);
            }
            break;
        }
        case 6: {
            const char *ns = namespaces[a % 4];
            const char *nsk = ns ? ns : "";
            char gen[16];
            const char *rn;
            int id, want = -2, j;
            if (b < 200) {
                rn = route_names[b % NROUTE_NAMES];
            }
            else {
                snprintf(gen, sizeof(gen), "r%u", b - 200);
                rn = gen;
            }
            id = slb_table_route_id(t, ns, rn);
            if (!slb_route_ok(rn, strlen(rn))) {
                FZ_CHECK(id == -1);
                break;
            }
            for (j = 0; j < nreg; j++) {
                if (strcmp(reg[j].ns, nsk) == 0
                    && strcmp(reg[j].route, rn) == 0) {
                    want = reg[j].id;
                }
            }
            if (want == -2) {
                FZ_CHECK(nreg < MAX_REG);
                want = nreg;
                reg[nreg].ns = nsk;
                snprintf(reg[nreg].route, sizeof(reg[nreg].route), "%s", rn);
                reg[nreg].id = nreg;
                nreg++;
            }
            FZ_CHECK(id == want);
            FZ_CHECK(strcmp(slb_table_route_name(t, id), rn) == 0);
            FZ_CHECK(*slb_table_route_name(t, -1) == '\0');
            FZ_CHECK(*slb_table_route_name(t, nreg) == '\0');
            break;
        }
        }
        if (trace) {
            fprintf(stderr, "op %zu: t=%u code=%u key=%u b=%u -> "
                    "present=%d maybe_gone=%d route=%d live=%d\n", op,
                    now_s, code, a % NKEYS, b, e->present, e->maybe_gone,
                    e->route, live(e, now_s));
        }
        if (evictions(t) != ev0) {
            for (k = 0; k < NKEYS; k++) {
                m[k].maybe_gone = 1;
            }
        }
        check_invariants(t, now, now_s, cap);
    }

    /* every slot belongs to one of the keys: deleting them all empties it */
    for (k = 0; k < NKEYS; k++) {
        (void)slb_table_del(t, &keys[k]);
    }
    FZ_CHECK(slb_table_count_live(t, apr_time_from_sec(cur)) == 0);
    for (i = 0; i < SLB_TABLE_MAX_ROUTES; i++) {
        FZ_CHECK(slb_table_route_sessions(t, i) == 0);
    }
    FZ_CHECK(slb_table_route_sessions(t, -1) == 0);
    FZ_CHECK(slb_table_route_sessions(t, SLB_TABLE_MAX_ROUTES) == 0);
    FZ_UNPOISON(mem, mem_max);
    fz_end();
    return 0;
}
