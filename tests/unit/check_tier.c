/*
 * check_tier.c - Check tests of the tiered store (stickylb_tier.c): the
 * real embedded table (stickylb_table.c, in memory of its own) in front of
 * a fake remote store that keeps bindings in memory, counts its calls and
 * fails on demand (errors and timeouts injected per operation).  What is
 * tested is the policy the memcached store relies on: the validity window,
 * re-validation with touch, re-publishing a binding the remote store lost,
 * the local copy used while the remote store fails, agreement by add, the
 * adoption of another balancer's re-pin, learned ids written once and
 * without waiting, the maximum lifetime, and the table alone without a
 * remote store.  Times are explicit; no test sleeps.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "check_stickylb.h"
#include "stickylb_store.h"
#include "stickylb_table.h"

#define T0 apr_time_from_sec((apr_time_t)1700000000)
#define AT(s) (T0 + apr_time_from_sec(s))

/* ------------------------------------------------------------------ */
/* the fake remote store                                                */

enum { OP_GET, OP_ADD, OP_SET, OP_NOWAIT, OP_DEL, OP_TOUCH, OP_N };

#define FAKE_MAX 64

typedef struct {
    char key[SLB_KEY_TEXT_LEN];
    slb_binding b;
    int used;
} fake_entry;

typedef struct {
    fake_entry e[FAKE_MAX];
    int calls[OP_N];
    apr_status_t fail[OP_N];   /* what the next calls of an op return */
    int fail_count[OP_N];      /* how many more calls fail */
} fake_remote;

static fake_entry *fake_find(fake_remote *f, slb_skey *k, int make)
{
    const char *text = slb_skey_shared(k)->text;
    int i, free_at = -1;

    for (i = 0; i < FAKE_MAX; i++) {
        if (f->e[i].used && !strcmp(f->e[i].key, text)) {
            return &f->e[i];
        }
        if (!f->e[i].used && free_at < 0) {
            free_at = i;
        }
    }
    if (!make || free_at < 0) {
        return NULL;
    }
    f->e[free_at].used = 1;
    apr_cpystrn(f->e[free_at].key, text, sizeof(f->e[free_at].key));
    return &f->e[free_at];
}

/* 1 and *rv when this call of op is to fail */
static int fake_fails(fake_remote *f, int op, apr_status_t *rv)
{
    f->calls[op]++;
    if (f->fail_count[op] > 0) {
        f->fail_count[op]--;
        *rv = f->fail[op];
        return 1;
    }
    return 0;
}

static apr_status_t f_get(void *ctx, slb_skey *k, const slb_lifetime *lt,
                          apr_time_t now, slb_binding *out,
                          apr_uint32_t *age_s)
{
    fake_remote *f = ctx;
    fake_entry *e;
    apr_status_t rv;

    (void)lt;
    (void)now;
    *age_s = 0;
    if (fake_fails(f, OP_GET, &rv)) {
        return rv;
    }
    e = fake_find(f, k, 0);
    if (e == NULL) {
        return APR_NOTFOUND;
    }
    *out = e->b;
    return APR_SUCCESS;
}

static apr_status_t f_add(void *ctx, slb_skey *k, const slb_binding *b,
                          const slb_lifetime *lt, apr_time_t now,
                          slb_binding *existing)
{
    fake_remote *f = ctx;
    fake_entry *e;
    apr_status_t rv;

    (void)lt;
    if (fake_fails(f, OP_ADD, &rv)) {
        return rv;
    }
    e = fake_find(f, k, 0);
    if (e) {
        if (existing) {
            *existing = e->b;
        }
        return APR_EEXIST;
    }
    e = fake_find(f, k, 1);
    e->b = *b;
    if (e->b.created <= 0) {
        e->b.created = now;
    }
    return APR_SUCCESS;
}

static apr_status_t f_set(void *ctx, slb_skey *k, const slb_binding *b,
                          const slb_lifetime *lt, apr_time_t now)
{
    fake_remote *f = ctx;
    apr_status_t rv;

    (void)lt;
    (void)now;
    if (fake_fails(f, OP_SET, &rv)) {
        return rv;
    }
    fake_find(f, k, 1)->b = *b;
    return APR_SUCCESS;
}

static apr_status_t f_nowait(void *ctx, slb_skey *k, const slb_binding *b,
                             const slb_lifetime *lt, apr_time_t now)
{
    fake_remote *f = ctx;
    apr_status_t rv;

    (void)lt;
    (void)now;
    if (fake_fails(f, OP_NOWAIT, &rv)) {
        return rv;
    }
    fake_find(f, k, 1)->b = *b;
    return APR_SUCCESS;
}

static apr_status_t f_del(void *ctx, slb_skey *k)
{
    fake_remote *f = ctx;
    fake_entry *e;
    apr_status_t rv;

    if (fake_fails(f, OP_DEL, &rv)) {
        return rv;
    }
    e = fake_find(f, k, 0);
    if (e == NULL) {
        return APR_NOTFOUND;
    }
    e->used = 0;
    return APR_SUCCESS;
}

static apr_status_t f_touch(void *ctx, slb_skey *k, const slb_lifetime *lt)
{
    fake_remote *f = ctx;
    apr_status_t rv;

    (void)lt;
    if (fake_fails(f, OP_TOUCH, &rv)) {
        return rv;
    }
    return fake_find(f, k, 0) ? APR_SUCCESS : APR_NOTFOUND;
}

static void f_stats(void *ctx, slb_store_stats *out)
{
    fake_remote *f = ctx;

    memset(out, 0, sizeof(*out));
    out->hits = (apr_uint64_t)f->calls[OP_GET];
}

static const slb_store_ops fake_ops = {
    "fake", f_get, f_add, f_set, f_nowait, f_del, f_touch, f_stats
};

/* ------------------------------------------------------------------ */
/* fixture: a table, the fake, two tiers sharing them as two balancers   */

static apr_pool_t *pool;
static void *mem;
static slb_table *table;
static fake_remote *fake;
static slb_tier tier;          /* this balancer: table + fake */
static slb_tier_counters ctr;
static int errors;
static const char *last_error_op;
static const slb_lifetime lt = { 1800, 0 };

static const unsigned char secret[16] = "0123456789abcdef";

static void on_error(void *baton, apr_status_t rv, const char *op)
{
    (void)baton;
    (void)rv;
    errors++;
    last_error_op = op;
}

static void setup(void)
{
    apr_size_t bytes = slb_table_bytes(1024);

    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    ck_assert_int_eq(posix_memalign(&mem, 64, bytes), 0);
    table = slb_table_format(mem, bytes, secret, T0);
    ck_assert_ptr_nonnull(table);
    fake = calloc(1, sizeof(*fake));
    memset(&tier, 0, sizeof(tier));
    memset(&ctr, 0, sizeof(ctr));
    tier.local.ops = &slb_table_store_ops;
    tier.local.ctx = table;
    tier.remote.ops = &fake_ops;
    tier.remote.ctx = fake;
    tier.validity_s = 2;
    tier.ctr = &ctr;
    tier.error = on_error;
    errors = 0;
    last_error_op = NULL;
}

static void teardown(void)
{
    free(fake);
    free(mem);
    apr_pool_destroy(pool);
}

/* a fresh key of session id `id` in namespace "ns" */
static slb_skey *key(const char *id)
{
    slb_skey *k = apr_palloc(pool, sizeof(*k));
    slb_skey_init(k, "ns", id, strlen(id));
    return k;
}

static const char *get(const char *id, apr_time_t now)
{
    char *route = apr_pcalloc(pool, SLB_MAX_ROUTE_LEN + 1);
    return slb_tier_get(&tier, key(id), &lt, now, route) == APR_SUCCESS
               ? route : NULL;
}

/* the remote store's binding of id, or NULL */
static const char *remote_route(const char *id)
{
    fake_entry *e = fake_find(fake, key(id), 0);
    return e ? e->b.route : NULL;
}

static void fail_next(int op, apr_status_t rv, int n)
{
    fake->fail[op] = rv;
    fake->fail_count[op] = n;
}

/* ------------------------------------------------------------------ */

START_TEST(test_miss_then_first_binding)
{
    ck_assert_ptr_null(get("s1", AT(0)));
    ck_assert_int_eq(fake->calls[OP_GET], 1);
    ck_assert_int_eq(ctr.remote_misses, 1);
    {
        slb_tier_counters copy;
        slb_tier_counters_read(&ctr, &copy);
        ck_assert_int_eq(memcmp(&copy, &ctr, sizeof(ctr)), 0);
        ck_assert_int_eq(copy.remote_gets, 1);
    }
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(fake->calls[OP_ADD], 1);
    ck_assert_str_eq(remote_route("s1"), "t1");
    ck_assert(fake_find(fake, key("s1"), 0)->b.created == AT(0));
    /* within the validity window the local copy answers alone */
    ck_assert_str_eq(get("s1", AT(1)), "t1");
    ck_assert_int_eq(fake->calls[OP_GET], 1);
    ck_assert_int_eq(ctr.local_hits, 1);
    ck_assert_int_eq(errors, 0);
}
END_TEST

START_TEST(test_revalidation_and_touch)
{
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    /* another balancer re-pinned it: seen after the window */
    fake_find(fake, key("s1"), 0)->b.route[1] = '2';
    ck_assert_str_eq(get("s1", AT(1)), "t1");
    ck_assert_str_eq(get("s1", AT(3)), "t2");
    ck_assert_int_eq(fake->calls[OP_GET], 1);
    ck_assert_int_eq(fake->calls[OP_TOUCH], 1);
    ck_assert_int_eq(ctr.remote_hits, 1);
    /* the re-validated copy is fresh again */
    ck_assert_str_eq(get("s1", AT(4)), "t2");
    ck_assert_int_eq(fake->calls[OP_GET], 1);
    /* a touch that fails is an error, the answer stands */
    fail_next(OP_TOUCH, APR_TIMEUP, 1);
    ck_assert_str_eq(get("s1", AT(7)), "t2");
    ck_assert_int_eq(errors, 1);
    ck_assert_str_eq(last_error_op, "touch");
}
END_TEST

START_TEST(test_republish_when_remote_lost_it)
{
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    memset(fake->e, 0, sizeof(fake->e));      /* memcached restarted */
    ck_assert_str_eq(get("s1", AT(3)), "t1");
    ck_assert_str_eq(remote_route("s1"), "t1");
    ck_assert_int_eq(ctr.republished, 1);
    /* lost again, and while this balancer re-publishes, another one has
     * added its own binding: the other's wins, here too */
    {
        slb_binding other;
        memset(&other, 0, sizeof(other));
        apr_cpystrn(other.route, "t3", sizeof(other.route));
        other.created = AT(5);
        fake_find(fake, key("s1"), 0)->b = other;
    }
    fail_next(OP_GET, APR_NOTFOUND, 1);     /* its get came first */
    ck_assert_str_eq(get("s1", AT(6)), "t3");
    ck_assert_int_eq(ctr.republished, 2);
    ck_assert_str_eq(get("s1", AT(7)), "t3");  /* cached: the winner */
    ck_assert_int_eq(errors, 0);
}
END_TEST

START_TEST(test_remote_failure_uses_local_copy)
{
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    fail_next(OP_GET, APR_TIMEUP, 3);
    ck_assert_str_eq(get("s1", AT(3)), "t1");      /* stale, but here */
    ck_assert_int_eq(ctr.stale_served, 1);
    ck_assert_int_eq(ctr.remote_errors, 1);
    ck_assert_int_eq(errors, 1);
    ck_assert_str_eq(last_error_op, "remote lookup");
    /* without a local copy a failure is a miss, never an error answer */
    ck_assert_ptr_null(get("nobody", AT(3)));
    ck_assert_int_eq(errors, 2);
    /* a write that fails keeps the local copy: the session sticks here */
    fail_next(OP_ADD, APR_TIMEUP, 1);
    ck_assert_int_eq(slb_tier_put(&tier, key("s2"), "t2", &lt,
                                  SLB_PUT_FIRST, NULL, AT(3), NULL),
                     APR_SUCCESS);
    ck_assert_ptr_null(remote_route("s2"));
    ck_assert_str_eq(get("s2", AT(4)), "t2");
    ck_assert_int_eq(errors, 3);
    ck_assert_str_eq(last_error_op, "remote write");
}
END_TEST

START_TEST(test_first_binding_agreement)
{
    char existing[SLB_MAX_ROUTE_LEN + 1] = "";

    /* the other balancer bound s1 to t2 first */
    ck_assert_int_eq(f_add(fake, key("s1"), &(slb_binding){ "t2", AT(0) },
                           &lt, AT(0), NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(1), existing),
                     APR_EEXIST);
    ck_assert_str_eq(existing, "t2");
    ck_assert_str_eq(remote_route("s1"), "t2");
    ck_assert_str_eq(get("s1", AT(1)), "t2");      /* cached: the winner */
    ck_assert_int_eq(ctr.adopted, 1);
}
END_TEST

START_TEST(test_repin_adopts_or_overwrites)
{
    char existing[SLB_MAX_ROUTE_LEN + 1] = "";

    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    /* t1 failed; another balancer re-pinned s1 to t3 already */
    fake_find(fake, key("s1"), 0)->b.route[1] = '3';
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t2", &lt,
                                  SLB_PUT_REPIN, "t1", AT(1), existing),
                     APR_EEXIST);
    ck_assert_str_eq(existing, "t3");
    ck_assert_str_eq(remote_route("s1"), "t3");
    ck_assert_str_eq(get("s1", AT(1)), "t3");
    /* nobody re-pinned it: the re-pin is written */
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t2", &lt,
                                  SLB_PUT_REPIN, "t3", AT(2), NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(remote_route("s1"), "t2");
    ck_assert_int_eq(fake->calls[OP_SET], 1);
    ck_assert_str_eq(get("s1", AT(2)), "t2");
}
END_TEST

START_TEST(test_learned_once_and_without_waiting)
{
    char existing[SLB_MAX_ROUTE_LEN + 1] = "";

    ck_assert_int_eq(slb_tier_put(&tier, key("id1"), "t1", &lt,
                                  SLB_PUT_LEARN, NULL, AT(0), existing),
                     APR_SUCCESS);
    ck_assert_int_eq(fake->calls[OP_ADD], 1);      /* write=sync: add */
    /* the same id learned again: no write at all */
    ck_assert_int_eq(slb_tier_put(&tier, key("id1"), "t2", &lt,
                                  SLB_PUT_LEARN, NULL, AT(1), existing),
                     APR_EEXIST);
    ck_assert_str_eq(existing, "t1");
    ck_assert_int_eq(fake->calls[OP_ADD] + fake->calls[OP_SET]
                     + fake->calls[OP_NOWAIT], 1);
    /* write=quiet|async: set without waiting, bound here at once */
    tier.learn_nowait = 1;
    ck_assert_int_eq(slb_tier_put(&tier, key("id2"), "t2", &lt,
                                  SLB_PUT_LEARN, NULL, AT(2), NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(fake->calls[OP_NOWAIT], 1);
    ck_assert_str_eq(remote_route("id2"), "t2");
    ck_assert_str_eq(get("id2", AT(2)), "t2");
    /* a full writer queue: counted and logged, bound here all the same */
    fail_next(OP_NOWAIT, APR_ENOSPC, 1);
    ck_assert_int_eq(slb_tier_put(&tier, key("id3"), "t3", &lt,
                                  SLB_PUT_LEARN, NULL, AT(2), NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(last_error_op, "remote write (queue full)");
    ck_assert_str_eq(get("id3", AT(2)), "t3");
}
END_TEST

START_TEST(test_max_lifetime_of_remote_binding)
{
    const slb_lifetime short_max = { 1800, 60 };
    char route[SLB_MAX_ROUTE_LEN + 1];

    ck_assert_int_eq(f_add(fake, key("old"), &(slb_binding){ "t1", AT(0) },
                           &short_max, AT(0), NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_tier_get(&tier, key("old"), &short_max, AT(30),
                                  route), APR_SUCCESS);
    ck_assert_str_eq(route, "t1");
    /* past 60 s since created: deleted from both, a miss */
    ck_assert_int_eq(slb_tier_get(&tier, key("old"), &short_max, AT(61),
                                  route), APR_NOTFOUND);
    ck_assert_ptr_null(remote_route("old"));
    ck_assert_int_eq(ctr.expired, 1);
    ck_assert_int_eq(slb_tier_get(&tier, key("old"), &short_max, AT(62),
                                  route), APR_NOTFOUND);
}
END_TEST

START_TEST(test_delete_both)
{
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(slb_tier_del(&tier, key("s1")), APR_SUCCESS);
    ck_assert_ptr_null(remote_route("s1"));
    ck_assert_ptr_null(get("s1", AT(0)));
    ck_assert_int_eq(slb_tier_del(&tier, key("s1")), APR_NOTFOUND);
}
END_TEST

/* Without a remote store the table is the stick table: add semantics. */
START_TEST(test_table_alone)
{
    char existing[SLB_MAX_ROUTE_LEN + 1] = "";

    tier.remote.ops = NULL;
    ck_assert_ptr_null(get("s1", AT(0)));
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t2", &lt,
                                  SLB_PUT_LEARN, NULL, AT(1), existing),
                     APR_EEXIST);
    ck_assert_str_eq(existing, "t1");
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t2", &lt,
                                  SLB_PUT_REPIN, "t1", AT(2), NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(get("s1", AT(100)), "t2");   /* no validity window */
    ck_assert_int_eq(fake->calls[OP_GET] + fake->calls[OP_ADD], 0);
    /* the idle lifetime is the table's: gone after 1800 s unused */
    ck_assert_ptr_null(get("s1", AT(100 + 1801)));
    /* another namespace is another key */
    {
        slb_skey k;
        char route[SLB_MAX_ROUTE_LEN + 1];
        ck_assert_int_eq(slb_tier_put(&tier, key("s9"), "t1", &lt,
                                      SLB_PUT_FIRST, NULL, AT(0), NULL),
                         APR_SUCCESS);
        slb_skey_init(&k, "other", "s9", 2);
        ck_assert_int_eq(slb_tier_get(&tier, &k, &lt, AT(1), route),
                         APR_NOTFOUND);
    }
    ck_assert_int_eq(errors, 0);
    /* what the table says of itself through the interface */
    {
        slb_store_stats st;
        slb_table_store_ops.stats(table, &st);
        ck_assert_uint_eq(st.capacity, slb_table_capacity(
                                           slb_table_bytes(1024)));
        ck_assert_uint_ge(st.writes, 3);     /* add, set, add */
        ck_assert_uint_ge(st.hits, 1);
        ck_assert_uint_ge(st.misses, 2);
    }
}
END_TEST

/* this balancer's members are t1 and t2 (the scope is unused here) */
static int t1_t2(const void *scope, const char *route)
{
    (void)scope;
    return !strcmp(route, "t1") || !strcmp(route, "t2");
}

/* A remote binding that names no member is never cached (the table's
 * route registry is not filled by what memcached holds) */
START_TEST(test_unknown_routes)
{
    static const int scope = 1;
    slb_table_stats before, after;
    char existing[SLB_MAX_ROUTE_LEN + 1] = "";
    slb_skey *k;
    int i;

    tier.route_known = t1_t2;
    slb_table_stats_get(table, &before);
    for (i = 0; i < 50; i++) {
        char id[16], route[24];
        apr_snprintf(id, sizeof(id), "x%d", i);
        apr_snprintf(route, sizeof(route), "crafted-%d", i);
        ck_assert_int_eq(f_add(fake, key(id), &(slb_binding){ "", AT(0) },
                               &lt, AT(0), NULL), APR_SUCCESS);
        apr_cpystrn(fake_find(fake, key(id), 0)->b.route, route,
                    sizeof(route));
        k = key(id);
        k->scope = &scope;
        ck_assert_int_eq(slb_tier_get(&tier, k, &lt, AT(1), existing),
                         APR_NOTFOUND);
    }
    slb_table_stats_get(table, &after);
    ck_assert_uint_eq(after.routes, before.routes);   /* none registered */
    ck_assert_uint_eq(ctr.unknown_routes, 50);
    /* a key without scope is not checked */
    ck_assert_int_eq(slb_tier_get(&tier, key("x1"), &lt, AT(1), existing),
                     APR_SUCCESS);
    ck_assert_str_eq(existing, "crafted-1");
    /* an add that meets a binding naming no member: ours stays here */
    ck_assert_int_eq(f_add(fake, key("y"), &(slb_binding){ "zz", AT(0) },
                           &lt, AT(0), NULL), APR_SUCCESS);
    k = key("y");
    k->scope = &scope;
    ck_assert_int_eq(slb_tier_put(&tier, k, "t2", &lt, SLB_PUT_FIRST, NULL,
                                  AT(2), existing), APR_SUCCESS);
    k = key("y");
    k->scope = &scope;
    ck_assert_int_eq(slb_tier_get(&tier, k, &lt, AT(2), existing),
                     APR_SUCCESS);
    ck_assert_str_eq(existing, "t2");
    /* a member's route from the remote store is cached as before */
    ck_assert_int_eq(f_add(fake, key("z"), &(slb_binding){ "t1", AT(0) },
                           &lt, AT(0), NULL), APR_SUCCESS);
    k = key("z");
    k->scope = &scope;
    ck_assert_int_eq(slb_tier_get(&tier, k, &lt, AT(3), existing),
                     APR_SUCCESS);
    ck_assert_str_eq(existing, "t1");
}
END_TEST

/* A key made from the namespace's precomputed prefix is the same key;
 * another table's prefix is not used. */
START_TEST(test_key_prefix)
{
    static const char *const ids[] = { "", "a", "0123456",
                                       "01234567", "0123456789abcdef0",
                                       "c6910bbbee37af998611d438999d4bd9" };
    static const char *const nss[] = { "", "ns", "balancer://bench",
                                       "a-namespace-of-23-bytes" };
    slb_key_prefix pre, other;
    void *mem2;
    slb_table *t2;
    apr_size_t i, j, bytes = slb_table_bytes(64);
    char route[SLB_MAX_ROUTE_LEN + 1];

    for (i = 0; i < sizeof(nss) / sizeof(nss[0]); i++) {
        slb_table_key_prefix(table, nss[i], &pre);
        for (j = 0; j < sizeof(ids) / sizeof(ids[0]); j++) {
            slb_key a, b;
            slb_table_key(table, &a, nss[i], ids[j], strlen(ids[j]));
            slb_table_key_from(&pre, &b, ids[j], strlen(ids[j]));
            ck_assert_int_eq(memcmp(a.digest, b.digest, sizeof(a.digest)),
                             0);
        }
    }
    /* through the store: the prefix of the table is used, another's not */
    ck_assert_int_eq(posix_memalign(&mem2, 64, bytes), 0);
    t2 = slb_table_format(mem2, bytes, (const unsigned char *)
                          "fedcba9876543210", T0);
    ck_assert_ptr_nonnull(t2);
    slb_table_key_prefix(table, "ns", &pre);
    slb_table_key_prefix(t2, "ns", &other);
    tier.remote.ops = NULL;
    ck_assert_int_eq(slb_tier_put(&tier, key("s1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, AT(0), NULL),
                     APR_SUCCESS);
    {
        slb_skey k;
        slb_skey_init(&k, "ns", "s1", 2);
        k.local_prefix = &pre;
        ck_assert_int_eq(slb_tier_get(&tier, &k, &lt, AT(1), route),
                         APR_SUCCESS);
        ck_assert_str_eq(route, "t1");
        slb_skey_init(&k, "ns", "s1", 2);
        k.local_prefix = &other;        /* made by t2: not this table's */
        ck_assert_int_eq(slb_tier_get(&tier, &k, &lt, AT(1), route),
                         APR_SUCCESS);
    }
    free(mem2);
}
END_TEST

/* The shared key is made only when the remote store is asked. */
START_TEST(test_shared_key_on_demand)
{
    slb_skey k;
    char route[SLB_MAX_ROUTE_LEN + 1];

    tier.remote.ops = NULL;
    slb_skey_init(&k, "ns", "s1", 2);
    ck_assert_int_eq(slb_tier_put(&tier, &k, "t1", &lt, SLB_PUT_FIRST, NULL,
                                  AT(0), NULL), APR_SUCCESS);
    ck_assert_int_eq(slb_tier_get(&tier, &k, &lt, AT(1), route),
                     APR_SUCCESS);
    ck_assert(k.have_local && !k.have_shared);
    tier.remote.ops = &fake_ops;
    slb_skey_init(&k, "ns", "s1", 2);
    ck_assert_int_eq(slb_tier_get(&tier, &k, &lt, AT(1), route),
                     APR_SUCCESS);              /* fresh local copy */
    ck_assert(!k.have_shared);
    ck_assert_int_eq(slb_tier_get(&tier, &k, &lt, AT(5), route),
                     APR_SUCCESS);              /* re-validated */
    ck_assert(k.have_shared);
    ck_assert_int_eq(strncmp(k.shared.text, "slb1:", 5), 0);
}
END_TEST

/* A binding the remote store failed to take is written again by a later
 * call once the retry is due (100 ms), not left until this balancer
 * re-validates it; a round that fails waits again; the oldest is dropped
 * when full; a re-pin is written with set (never adopting the binding it
 * replaced). */
START_TEST(test_deferred_writes)
{
    apr_time_t now = AT(0);
    slb_binding old;
    int i;

    tier.pending = slb_tier_pending_make(pool, 4);
    ck_assert_ptr_nonnull(tier.pending);

    fail_next(OP_ADD, APR_EGENERAL, 1);
    ck_assert_int_eq(slb_tier_put(&tier, key("d1"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, now, NULL),
                     APR_SUCCESS);
    ck_assert_ptr_null(remote_route("d1"));
    ck_assert_int_eq(slb_tier_pending_count(tier.pending), 1);
    ck_assert_int_eq(ctr.deferred, 1);
    /* not yet due: nothing written */
    ck_assert_str_eq(get("d1", now + apr_time_from_msec(50)), "t1");
    ck_assert_ptr_null(remote_route("d1"));
    /* due: the next call writes it */
    (void)get("other", now + apr_time_from_msec(300));
    ck_assert_str_eq(remote_route("d1"), "t1");
    ck_assert_int_eq(slb_tier_pending_count(tier.pending), 0);
    ck_assert_int_eq(ctr.deferred_written, 1);

    /* a round that fails keeps it and waits again */
    now = AT(10);
    fail_next(OP_ADD, APR_TIMEUP, 2);
    ck_assert_int_eq(slb_tier_put(&tier, key("d2"), "t2", &lt,
                                  SLB_PUT_FIRST, NULL, now, NULL),
                     APR_SUCCESS);
    (void)get("other", now + apr_time_from_msec(300));   /* fails */
    ck_assert_ptr_null(remote_route("d2"));
    ck_assert_int_eq(slb_tier_pending_count(tier.pending), 1);
    (void)get("other", now + apr_time_from_msec(350));   /* not due */
    ck_assert_ptr_null(remote_route("d2"));
    (void)get("other", now + apr_time_from_msec(450));
    ck_assert_str_eq(remote_route("d2"), "t2");

    /* another balancer bound the key meanwhile: its binding wins here */
    now = AT(20);
    fail_next(OP_ADD, APR_EGENERAL, 1);
    ck_assert_int_eq(slb_tier_put(&tier, key("d3"), "t1", &lt,
                                  SLB_PUT_FIRST, NULL, now, NULL),
                     APR_SUCCESS);
    memset(&old, 0, sizeof(old));
    apr_cpystrn(old.route, "t3", sizeof(old.route));
    old.created = now;
    fake_find(fake, key("d3"), 1)->b = old;
    (void)get("other", now + apr_time_from_msec(300));
    ck_assert_str_eq(remote_route("d3"), "t3");
    ck_assert_str_eq(get("d3", now + apr_time_from_msec(400)), "t3");

    /* a re-pin whose set failed is set again, over the old binding */
    now = AT(30);
    fail_next(OP_SET, APR_EGENERAL, 1);
    ck_assert_int_eq(slb_tier_put(&tier, key("d3"), "t2", &lt,
                                  SLB_PUT_REPIN, "t3", now, NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(remote_route("d3"), "t3");
    (void)get("other", now + apr_time_from_msec(300));
    ck_assert_str_eq(remote_route("d3"), "t2");

    /* full: the oldest is dropped */
    now = AT(40);
    for (i = 0; i < 6; i++) {
        char id[16];

        apr_snprintf(id, sizeof(id), "f%d", i);
        fail_next(OP_ADD, APR_EGENERAL, 1);
        ck_assert_int_eq(slb_tier_put(&tier, key(apr_pstrdup(pool, id)),
                                      "t1", &lt, SLB_PUT_FIRST, NULL, now,
                                      NULL), APR_SUCCESS);
    }
    ck_assert_int_eq(slb_tier_pending_count(tier.pending), 4);
    ck_assert_int_eq(ctr.deferred_dropped, 2);
    (void)get("other", now + apr_time_from_msec(300));
    ck_assert_ptr_null(remote_route("f0"));
    ck_assert_ptr_null(remote_route("f1"));
    ck_assert_str_eq(remote_route("f2"), "t1");
    ck_assert_str_eq(remote_route("f5"), "t1");
}
END_TEST

Suite *tier_suite(void)
{
    Suite *s = suite_create("tier");
    TCase *tc = tcase_create("tier");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_miss_then_first_binding);
    tcase_add_test(tc, test_revalidation_and_touch);
    tcase_add_test(tc, test_republish_when_remote_lost_it);
    tcase_add_test(tc, test_remote_failure_uses_local_copy);
    tcase_add_test(tc, test_first_binding_agreement);
    tcase_add_test(tc, test_repin_adopts_or_overwrites);
    tcase_add_test(tc, test_learned_once_and_without_waiting);
    tcase_add_test(tc, test_max_lifetime_of_remote_binding);
    tcase_add_test(tc, test_delete_both);
    tcase_add_test(tc, test_table_alone);
    tcase_add_test(tc, test_shared_key_on_demand);
    tcase_add_test(tc, test_key_prefix);
    tcase_add_test(tc, test_unknown_routes);
    tcase_add_test(tc, test_deferred_writes);
    suite_add_tcase(s, tc);
    return s;
}
