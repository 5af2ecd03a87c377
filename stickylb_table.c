/*
 * stickylb_table.c - the embedded stick table (see stickylb_table.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

#include <apr_strings.h>

#include "stickylb_table.h"

#define TABLE_MAGIC   0x534c4254u   /* "SLBT" */
#define TABLE_VERSION 7u   /* 3: the owner pid in bucket lock words;
                            * 4: the protected bit in the route word,
                            * route entries reclaimed (generation);
                            * 5: both at once (3 generation bits);
                            * 6: keys by SipHash-1-3 under a namespace
                            * key (the bindings of 5 are not found);
                            * 7: SipHash-1-3 of 64 bits, the slot's id
                            * and the buckets from the same bits */
#define NO_DEADLINE   0xffffffffu
/* idle word of a binding without idle lifetime: this bit + the time of its
 * last use, so such bindings stay ordered by recency for eviction */
#define UNLIMITED_BIT 0x80000000u
/* route word of a slot: the route number, and this bit once the binding
 * was used again after it was written (segmented LRU: see free_slot) */
#define PROTECTED_BIT 0x8000u
#define ROUTE_MASK    0x7fffu
/* more protected slots than this in a full pair (of 6) and an eviction
 * first demotes the least recently used of them */
#define PROTECTED_MAX 4
#define STAT_SHARDS   16
#define READ_TRIES    64
#define LOCK_SPINS    (1u << 20)
/* after this many spins on a taken bucket lock, and every LOCK_CHECK_EVERY
 * spins after, the holder is looked at (kill(pid, 0)): about 1 ms */
#define LOCK_CHECK_AFTER (1u << 14)
#define LOCK_CHECK_EVERY (1u << 12)

/*
 * A bucket's lock word (bucket_t.seq).  Free: an even sequence number,
 * advanced by 2 by each writer (the seqlock the lock-free readers check).
 * Taken: bit 0 set, bits 1-22 the holder's pid (0 when it does not fit),
 * bits 23-31 the generation: those bits of the sequence number before.
 * A writer that dies holding a lock (SIGKILL, a crash) would leave it
 * taken for good; the next writer that finds it taken for
 * LOCK_CHECK_AFTER spins and sees the holder gone (ESRCH) takes it over,
 * clears the bucket (the dead writer may have left a slot half written)
 * and frees it one generation on, so readers that copied the bucket before
 * see the change.
 */
#define LOCK_PID_BITS  22
#define LOCK_PID_MASK  ((1u << LOCK_PID_BITS) - 1)
#define LOCK_GEN_SHIFT (LOCK_PID_BITS + 1)
#define LOCK_GEN_MASK  (~0u << LOCK_GEN_SHIFT)

typedef struct {
    apr_uint32_t id_lo;
    apr_uint32_t id_hi;
    apr_uint32_t idle_dl;    /* 0: empty slot */
    apr_uint32_t hard_dl;
    apr_uint16_t route;      /* route number | PROTECTED_BIT */
    apr_uint16_t written;    /* low 16 bits of the table time of the write */
} slot_t;

typedef struct {
    apr_uint32_t seq;        /* odd while a writer holds the bucket */
    slot_t s[SLB_TABLE_SLOTS_PER_BUCKET];
} bucket_t;

/* A route entry's states: reusable, in use, its bindings being removed */
enum { ROUTE_FREE = 0, ROUTE_LIVE = 1, ROUTE_RETIRING = 2 };

typedef struct {
    apr_uint64_t ns_hash;      /* 64-bit FNV-1a of the namespace */
    apr_uint32_t sessions;
    apr_uint16_t gen;          /* bumped when the entry is retired */
    apr_uint16_t state;        /* ROUTE_* */
    char route[SLB_MAX_ROUTE_LEN + 1];
} route_t;

/* A route number, as bindings store it: the entry's index in the low
 * ROUTE_INDEX_BITS, its generation (ROUTE_GEN_BITS) above, under the
 * protected bit, so that a binding made before
 * the entry was retired never names the route that reuses the entry. */
#define ROUTE_INDEX_BITS 12
#define ROUTE_INDEX(id) ((apr_uint32_t)(id) & (SLB_TABLE_MAX_ROUTES - 1))
#define ROUTE_GEN_BITS 3        /* under PROTECTED_BIT (ROUTE_MASK) */
#define ROUTE_GENS (1u << ROUTE_GEN_BITS)
#define ROUTE_GEN(id) ((apr_uint16_t)(((apr_uint32_t)(id) >> ROUTE_INDEX_BITS) \
                                      & (ROUTE_GENS - 1)))
typedef char routes_fit_index[(1u << ROUTE_INDEX_BITS)
                              == SLB_TABLE_MAX_ROUTES ? 1 : -1];
typedef char route_number_fits[((1u << (ROUTE_INDEX_BITS + ROUTE_GEN_BITS))
                                - 1) == ROUTE_MASK ? 1 : -1];

/* hits and misses are counted per shard, each on its own cache line */
typedef struct {
    apr_uint64_t hits;
    apr_uint64_t misses;
    char pad[64 - 2 * sizeof(apr_uint64_t)];
} shard_t;

struct slb_table {
    apr_uint32_t magic;
    apr_uint32_t version;
    apr_uint64_t bytes;
    apr_uint32_t nbuckets;
    apr_uint32_t nroutes;
    apr_uint32_t reg_lock;
    apr_uint32_t sweep_pos;
    apr_int64_t epoch;          /* seconds */
    unsigned char secret[16];
    apr_uint64_t inserts, replaces, evictions, expired, lock_timeouts;
    apr_uint64_t lock_repairs;
    apr_uint64_t demotions;
    shard_t shards[STAT_SHARDS];
    route_t routes[SLB_TABLE_MAX_ROUTES];
};

typedef char slot_is_20_bytes[sizeof(slot_t) == 20 ? 1 : -1];
typedef char bucket_is_64_bytes[sizeof(bucket_t) == 64 ? 1 : -1];
typedef char routes_leave_protected_bit[SLB_TABLE_MAX_ROUTES <= ROUTE_MASK + 1
                                        ? 1 : -1];

#define HDR_BYTES (((sizeof(struct slb_table)) + 63) & ~(apr_size_t)63)

static bucket_t *buckets(const slb_table *t)
{
    return (bucket_t *)((char *)t + HDR_BYTES);
}

/* ------------------------------------------------------------------ */
/* SipHash-2-4 (Aumasson and Bernstein), 64-bit output                  */

#define ROTL(x, b) (apr_uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                          \
    do {                                                                  \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);          \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                             \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                             \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);          \
    } while (0)

static apr_uint64_t le64(const unsigned char *p)
{
    apr_uint64_t v;

    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/*
 * The finalizations of SipHash-c-d: the last block b with c rounds, then
 * d rounds (64 bits of output; sip_finish128 below for 128).  c and d are
 * constants (1..4) at each call, and the functions are always inlined, so
 * the SIPROUNDS fold to exactly c or d rounds, as with the rounds written
 * out (the request path's key hash, sip13_64, must not pay for the
 * sharing).
 */
#define SIPROUNDS(n)                                                      \
    do {                                                                  \
        SIPROUND;                                                         \
        if ((n) > 1) SIPROUND;                                            \
        if ((n) > 2) SIPROUND;                                            \
        if ((n) > 3) SIPROUND;                                            \
    } while (0)

#if defined(__GNUC__)
#define SIP_INLINE inline __attribute__((always_inline))
#else
#define SIP_INLINE inline
#endif
static SIP_INLINE apr_uint64_t sip_finish64(apr_uint64_t v0, apr_uint64_t v1,
                                            apr_uint64_t v2, apr_uint64_t v3,
                                            apr_uint64_t b, int c, int d)
{
    v3 ^= b;
    SIPROUNDS(c);
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUNDS(d);
    return v0 ^ v1 ^ v2 ^ v3;
}

static apr_uint64_t siphash24(const unsigned char key[16],
                              const unsigned char *in, apr_size_t len)
{
    apr_uint64_t k0 = le64(key), k1 = le64(key + 8);
    apr_uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    apr_uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    apr_uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    apr_uint64_t v3 = 0x7465646279746573ULL ^ k1;
    apr_uint64_t b = ((apr_uint64_t)len) << 56;
    const unsigned char *end = in + (len - (len % 8));
    unsigned char tail[8] = { 0 };

    for (; in != end; in += 8) {
        apr_uint64_t m = le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    memcpy(tail, in, len % 8);
    b |= le64(tail);
    return sip_finish64(v0, v1, v2, v3, b, 2, 4);
}

/*
 * SipHash-2-4 with 128 bits of output, incremental: the namespace's key
 * (ns_key) from the table's secret.
 */
typedef struct {
    apr_uint64_t v0, v1, v2, v3;
    unsigned char buf[8];
    apr_size_t nbuf, total;
} sip_state;

/* slb_key_prefix (stickylb_table.h) holds a sip_state */
typedef char sip_state_fits_prefix[sizeof(((slb_key_prefix *)0)->state)
                                   >= sizeof(sip_state) ? 1 : -1];

static void sip_init(sip_state *st, const unsigned char key[16])
{
    apr_uint64_t k0 = le64(key), k1 = le64(key + 8);

    st->v0 = 0x736f6d6570736575ULL ^ k0;
    st->v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;
    st->v2 = 0x6c7967656e657261ULL ^ k0;
    st->v3 = 0x7465646279746573ULL ^ k1;
    st->nbuf = 0;
    st->total = 0;
}

static void sip_update(sip_state *st, const unsigned char *in, apr_size_t len)
{
    apr_uint64_t v0 = st->v0, v1 = st->v1, v2 = st->v2, v3 = st->v3, m;

    st->total += len;
    if (st->nbuf) {
        while (st->nbuf < 8 && len) {
            st->buf[st->nbuf++] = *in++;
            len--;
        }
        if (st->nbuf < 8) {
            return;
        }
        m = le64(st->buf);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
        st->nbuf = 0;
    }
    for (; len >= 8; in += 8, len -= 8) {
        m = le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    memcpy(st->buf, in, len);
    st->nbuf = len;
    st->v0 = v0;
    st->v1 = v1;
    st->v2 = v2;
    st->v3 = v3;
}

/*
 * The 128-bit finalization of SipHash-c-d: the last block b with c rounds,
 * then d rounds for each half of out (as sip_finish64 above).  The
 * namespace's key (SipHash-2-4-128) uses it.
 */
static SIP_INLINE void sip_finish128(apr_uint64_t v0, apr_uint64_t v1,
                                     apr_uint64_t v2, apr_uint64_t v3,
                                     apr_uint64_t b, int c, int d,
                                     apr_uint64_t out[2])
{
    v3 ^= b;
    SIPROUNDS(c);
    v0 ^= b;
    v2 ^= 0xee;
    SIPROUNDS(d);
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    SIPROUNDS(d);
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}
#undef SIPROUNDS
#undef SIP_INLINE

static void sip_final128(sip_state *st, apr_uint64_t out[2])
{
    apr_uint64_t v0 = st->v0, v1 = st->v1, v2 = st->v2, v3 = st->v3;
    unsigned char tail[8] = { 0 };
    apr_uint64_t b;

    memcpy(tail, st->buf, st->nbuf);
    b = (((apr_uint64_t)st->total) << 56) | le64(tail);
    sip_finish128(v0, v1, v2, v3, b, 2, 4, out);
}

/*
 * SipHash-1-3 (64 bits) over in[len], keyed by k0, k1: one compression
 * round per 8 bytes and three finalization rounds, as the hash tables of
 * Rust and CPython use it against flooding.
 */
static apr_uint64_t sip13_64(apr_uint64_t k0, apr_uint64_t k1,
                             const unsigned char *in, apr_size_t len)
{
    apr_uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    apr_uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    apr_uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    apr_uint64_t v3 = 0x7465646279746573ULL ^ k1;
    apr_uint64_t b = ((apr_uint64_t)len) << 56, m;
    const unsigned char *end = in + (len - (len % 8));

    for (; in != end; in += 8) {
        m = le64(in);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    /* the last len % 8 bytes, little-endian (the reference's switch) */
    switch (len % 8) {
    case 7: b |= (apr_uint64_t)in[6] << 48; /* fall through */
    case 6: b |= (apr_uint64_t)in[5] << 40; /* fall through */
    case 5: b |= (apr_uint64_t)in[4] << 32; /* fall through */
    case 4: b |= (apr_uint64_t)in[3] << 24; /* fall through */
    case 3: b |= (apr_uint64_t)in[2] << 16; /* fall through */
    case 2: b |= (apr_uint64_t)in[1] << 8;  /* fall through */
    case 1: b |= (apr_uint64_t)in[0];       break;
    default: break;
    }
    return sip_finish64(v0, v1, v2, v3, b, 1, 3);
}

/* The namespace's key: SipHash-2-4-128 of "<namespace>\0" keyed with the
 * table's secret (as secret as it, and another for every namespace). */
static void ns_key(const slb_table *t, const char *ns, apr_uint64_t k[2])
{
    sip_state st;

    sip_init(&st, t->secret);
    if (ns) {
        sip_update(&st, (const unsigned char *)ns, strlen(ns));
    }
    sip_update(&st, (const unsigned char *)"", 1);
    sip_final128(&st, k);
}

void slb_table_key_prefix(const slb_table *t, const char *ns,
                          slb_key_prefix *out)
{
    memset(out->state, 0, sizeof(out->state));
    ns_key(t, ns, out->state);
    out->table = t;
}

static void finish_key(const apr_uint64_t k[2], slb_key *key, const char *id,
                       apr_size_t len)
{
    apr_uint64_t h = sip13_64(k[0], k[1],
                              (const unsigned char *)(id ? id : ""),
                              id ? len : 0);

    /* the id the slot keeps, and the same 64 bits choose the buckets:
     * keys are told apart by all 64, which no client can aim at */
    memcpy(key->digest, &h, 8);
    memcpy(key->digest + 8, &h, 8);
    memset(key->digest + 16, 0, SLB_KEY_DIGEST_LEN - 16);
    key->keyed = 1;
    key->text[0] = '\0';                 /* never a memcached key */
}

void slb_table_key(const slb_table *t, slb_key *key, const char *ns,
                   const char *id, apr_size_t len)
{
    apr_uint64_t k[2];

    ns_key(t, ns, k);
    finish_key(k, key, id, len);
}

void slb_table_key_from(const slb_key_prefix *pre, slb_key *key,
                        const char *id, apr_size_t len)
{
    finish_key(pre->state, key, id, len);
}

/* ------------------------------------------------------------------ */
/* sizes                                                                */

apr_size_t slb_table_bytes(apr_uint32_t entries)
{
    /* 45% of the slots kept free: with two choices of bucket (the emptier
     * one taken) a table holding `entries` bindings evicts almost none */
    apr_uint64_t slots = ((apr_uint64_t)entries * 100 + 54) / 55;
    apr_uint64_t nb = (slots + SLB_TABLE_SLOTS_PER_BUCKET - 1)
                      / SLB_TABLE_SLOTS_PER_BUCKET;

    if (nb < 2) {
        nb = 2;
    }
    return HDR_BYTES + (apr_size_t)nb * SLB_TABLE_BUCKET_BYTES;
}

apr_uint32_t slb_table_capacity(apr_size_t bytes)
{
    if (bytes < HDR_BYTES + 2 * SLB_TABLE_BUCKET_BYTES) {
        return 0;
    }
    return (apr_uint32_t)((bytes - HDR_BYTES) / SLB_TABLE_BUCKET_BYTES)
           * SLB_TABLE_SLOTS_PER_BUCKET;
}

slb_table *slb_table_format(void *mem, apr_size_t bytes,
                            const unsigned char secret[16], apr_time_t now)
{
    slb_table *t = mem;
    apr_uint64_t nb;

    if (mem == NULL || bytes < HDR_BYTES + 2 * SLB_TABLE_BUCKET_BYTES
        || ((apr_uintptr_t)mem & 63) != 0) {
        return NULL;
    }
    nb = (bytes - HDR_BYTES) / SLB_TABLE_BUCKET_BYTES;
    if (nb > 0xffffffffu) {
        return NULL;
    }
    memset(mem, 0, HDR_BYTES + nb * SLB_TABLE_BUCKET_BYTES);
    t->version = TABLE_VERSION;
    t->bytes = bytes;
    t->nbuckets = (apr_uint32_t)nb;
    t->epoch = apr_time_sec(now) - 1;
    memcpy(t->secret, secret, 16);
    __atomic_store_n(&t->magic, TABLE_MAGIC, __ATOMIC_RELEASE);
    return t;
}

slb_table *slb_table_attach(void *mem, apr_size_t bytes)
{
    slb_table *t = mem;

    if (mem == NULL || bytes < HDR_BYTES
        || __atomic_load_n(&t->magic, __ATOMIC_ACQUIRE) != TABLE_MAGIC
        || t->version != TABLE_VERSION || t->bytes != bytes) {
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ */
/* time, hashing, locks                                                 */

static apr_uint32_t table_now(const slb_table *t, apr_time_t now)
{
    apr_int64_t s = apr_time_sec(now) - t->epoch;

    if (s < 1) {
        return 1;
    }
    if (s >= (apr_int64_t)UNLIMITED_BIT - 1) {
        return UNLIMITED_BIT - 1;
    }
    return (apr_uint32_t)s;
}

static apr_uint32_t deadline(apr_uint32_t now_s, apr_uint32_t secs)
{
    apr_uint64_t d;

    if (secs == 0) {
        return NO_DEADLINE;
    }
    d = (apr_uint64_t)now_s + secs;
    return d >= UNLIMITED_BIT ? UNLIMITED_BIT - 1 : (apr_uint32_t)d;
}

typedef struct {
    apr_uint32_t b[2];
    apr_uint32_t id_lo, id_hi;
} place_t;

static void place_of(const slb_table *t, const slb_key *key, place_t *pl)
{
    /* a keyed key (slb_table_key) is random to clients already; a SHA-1
     * digest (memcached keys) is hashed with the secret first */
    apr_uint64_t h = key->keyed ? le64(key->digest + 8)
                                : siphash24(t->secret, key->digest,
                                            SLB_KEY_DIGEST_LEN);
    apr_uint32_t n = t->nbuckets;

    /* multiply-shift maps 32 random bits onto 0..n-1 without a division */
    pl->b[0] = (apr_uint32_t)(((h & 0xffffffffu) * (apr_uint64_t)n) >> 32);
    pl->b[1] = (apr_uint32_t)(((h >> 32) * (apr_uint64_t)n) >> 32);
    if (pl->b[1] == pl->b[0]) {
        pl->b[1] = (pl->b[0] + 1) % n;
    }
    memcpy(&pl->id_lo, key->digest, 4);
    memcpy(&pl->id_hi, key->digest + 4, 4);
}

static unsigned shard_of(void)
{
    int local;
    /* threads have distinct stacks: spread them over the shards */
    return (unsigned)(((apr_uintptr_t)&local) >> 12) % STAT_SHARDS;
}

static void cpu_relax(apr_uint32_t i)
{
    if ((i & 1023) == 1023) {
        sched_yield();
    }
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#endif
}

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* this process's pid as lock words hold it (0: does not fit); cached, and
 * forgotten in a child after fork() */
static apr_uint32_t self_pid_cache;
static pthread_once_t self_pid_once = PTHREAD_ONCE_INIT;

static void self_pid_forget(void)
{
    __atomic_store_n(&self_pid_cache, 0, __ATOMIC_RELAXED);
}

static void self_pid_init(void)
{
    pthread_atfork(NULL, NULL, self_pid_forget);
}

static apr_uint32_t self_pid(void)
{
    apr_uint32_t v;

    pthread_once(&self_pid_once, self_pid_init);
    v = __atomic_load_n(&self_pid_cache, __ATOMIC_RELAXED);
    if (v == 0) {
        pid_t pid = getpid();
        /* bit 31 marks "known" so that a pid that does not fit is cached
         * too */
        v = 0x80000000u
            | ((apr_uint32_t)pid <= LOCK_PID_MASK ? (apr_uint32_t)pid : 0);
        __atomic_store_n(&self_pid_cache, v, __ATOMIC_RELAXED);
    }
    return v & LOCK_PID_MASK;
}

static apr_uint32_t lock_word(apr_uint32_t seq)
{
    return (seq & LOCK_GEN_MASK) | (self_pid() << 1) | 1;
}

/* The holder of taken lock word w is a process that no longer exists. */
static int holder_gone(apr_uint32_t w)
{
    apr_uint32_t pid = (w >> 1) & LOCK_PID_MASK;

    if (pid == 0 || pid == self_pid()) {
        return 0;   /* unknown, or a thread of ours: alive */
    }
    return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* 1 when bindings of route number id count in its entry's sessions: the
 * entry's generation (a binding of a retired generation counts nowhere) */
static int route_counted(const slb_table *t, apr_uint16_t id)
{
    return ROUTE_INDEX(id) < SLB_TABLE_MAX_ROUTES
           && __atomic_load_n(&t->routes[ROUTE_INDEX(id)].gen,
                              __ATOMIC_ACQUIRE) == ROUTE_GEN(id);
}

/* 1 when id is the number of a route in use now */
static int route_current(const slb_table *t, int id)
{
    const route_t *e;

    if (id < 0 || id > 0xffff
        || ROUTE_INDEX(id) >= __atomic_load_n(&t->nroutes, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    e = &t->routes[ROUTE_INDEX(id)];
    return __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == ROUTE_LIVE
           && __atomic_load_n(&e->gen, __ATOMIC_ACQUIRE) == ROUTE_GEN(id);
}

/* Taken over from a dead writer: nothing it left is trusted.  The route
 * session counts go down for the live slots, never below 0 (the writer may
 * have died between a count and its slot). */
static void repair_bucket(slb_table *t, bucket_t *b)
{
    int k;

    for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
        slot_t *s = &b->s[k];
        apr_uint16_t id = LOAD(s->route) & ROUTE_MASK;

        if (LOAD(s->idle_dl) != 0 && route_counted(t, id)) {
            apr_uint32_t *c = &t->routes[ROUTE_INDEX(id)].sessions;
            apr_uint32_t n = __atomic_load_n(c, __ATOMIC_RELAXED);
            while (n > 0 && n < 0x80000000u
                   && !__atomic_compare_exchange_n(c, &n, n - 1, 0,
                                                   __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
            }
        }
        STORE(s->idle_dl, 0);
        STORE(s->id_lo, 0);
        STORE(s->id_hi, 0);
        STORE(s->hard_dl, 0);
        STORE(s->route, 0);
        STORE(s->written, 0);
    }
    __atomic_fetch_add(&t->lock_repairs, 1, __ATOMIC_RELAXED);
}

/* Take a bucket's lock; *seq gets the sequence number to free it with.
 * 0 on timeout (the holder alive all the while). */
static int lock_bucket(slb_table *t, bucket_t *b, apr_uint32_t *seq)
{
    apr_uint32_t i;

    for (i = 0; i < LOCK_SPINS; i++) {
        apr_uint32_t s = __atomic_load_n(&b->seq, __ATOMIC_RELAXED);
        if (!(s & 1)) {
            if (__atomic_compare_exchange_n(&b->seq, &s, lock_word(s), 0,
                                            __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                *seq = s;
                return 1;
            }
        }
        else if (i >= LOCK_CHECK_AFTER && (i & (LOCK_CHECK_EVERY - 1)) == 0
                 && holder_gone(s)) {
            /* one generation on: differs from the number readers saw
             * before the dead writer took the lock */
            apr_uint32_t next = ((s >> LOCK_GEN_SHIFT) + 1) << LOCK_GEN_SHIFT;
            if (__atomic_compare_exchange_n(&b->seq, &s, lock_word(next), 0,
                                            __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                repair_bucket(t, b);
                *seq = next;
                return 1;
            }
        }
        cpu_relax(i);
    }
    __atomic_fetch_add(&t->lock_timeouts, 1, __ATOMIC_RELAXED);
    return 0;
}

static void unlock_bucket(bucket_t *b, apr_uint32_t seq)
{
    __atomic_store_n(&b->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Lock both buckets of a place in index order; 0 on timeout. */
static int lock_place(slb_table *t, const place_t *pl, apr_uint32_t seq[2])
{
    bucket_t *bs = buckets(t);
    int lo = pl->b[0] < pl->b[1] ? 0 : 1;

    if (!lock_bucket(t, &bs[pl->b[lo]], &seq[lo])) {
        return 0;
    }
    if (!lock_bucket(t, &bs[pl->b[1 - lo]], &seq[1 - lo])) {
        unlock_bucket(&bs[pl->b[lo]], seq[lo]);
        return 0;
    }
    return 1;
}

static void unlock_place(slb_table *t, const place_t *pl,
                         const apr_uint32_t seq[2])
{
    bucket_t *bs = buckets(t);

    unlock_bucket(&bs[pl->b[0]], seq[0]);
    unlock_bucket(&bs[pl->b[1]], seq[1]);
}



static apr_uint32_t idle_word(apr_uint32_t now_s, const slb_lifetime *lt)
{
    if (lt == NULL || lt->idle == 0) {
        return UNLIMITED_BIT | (now_s & ~UNLIMITED_BIT);
    }
    return deadline(now_s, lt->idle);
}

static int slot_live(const slot_t *s, apr_uint32_t now_s)
{
    apr_uint32_t idle = LOAD(s->idle_dl);

    /* now_s < 2^31: an UNLIMITED_BIT word is always ahead of it */
    return idle != 0 && now_s < idle && now_s < LOAD(s->hard_dl);
}

static void route_sessions_add(slb_table *t, apr_uint16_t id, int delta)
{
    if (route_counted(t, id)) {
        __atomic_fetch_add(&t->routes[ROUTE_INDEX(id)].sessions,
                           (apr_uint32_t)delta, __ATOMIC_RELAXED);
    }
}

/* ------------------------------------------------------------------ */
/* routes                                                               */

static apr_uint64_t fnv1a(const char *s)
{
    apr_uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int find_route(const slb_table *t, apr_uint32_t n, apr_uint64_t nsh,
                      const char *route)
{
    apr_uint32_t i;

    for (i = 0; i < n; i++) {
        const route_t *e = &t->routes[i];
        if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == ROUTE_LIVE
            && e->ns_hash == nsh && strcmp(e->route, route) == 0) {
            return (int)(i | ((apr_uint32_t)e->gen << ROUTE_INDEX_BITS));
        }
    }
    return -1;
}

/* a free entry below n (retired, its bindings gone), or n */
static apr_uint32_t free_route(const slb_table *t, apr_uint32_t n)
{
    apr_uint32_t i;

    for (i = 0; i < n; i++) {
        if (__atomic_load_n(&t->routes[i].state, __ATOMIC_ACQUIRE)
                == ROUTE_FREE) {
            return i;
        }
    }
    return n;
}


/* Take the route registry's lock (a bounded spin): 1, or 0 when it stayed
 * taken. */
static int reg_lock(slb_table *t)
{
    apr_uint32_t i;

    for (i = 0; i < LOCK_SPINS; i++) {
        apr_uint32_t z = 0;
        if (__atomic_compare_exchange_n(&t->reg_lock, &z, 1, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            return 1;
        }
        cpu_relax(i);
    }
    return 0;
}

int slb_table_route_id(slb_table *t, const char *ns, const char *route)
{
    apr_uint64_t nsh;
    apr_uint32_t n;
    int id;

    if (route == NULL || !slb_route_ok(route, strlen(route))) {
        return -1;
    }
    nsh = fnv1a(ns ? ns : "");
    n = __atomic_load_n(&t->nroutes, __ATOMIC_ACQUIRE);
    id = find_route(t, n, nsh, route);
    if (id >= 0) {
        return id;
    }
    if (!reg_lock(t)) {
        return -1;
    }
    n = __atomic_load_n(&t->nroutes, __ATOMIC_ACQUIRE);
    id = find_route(t, n, nsh, route);
    if (id < 0) {
        apr_uint32_t f = free_route(t, n);
        if (f < SLB_TABLE_MAX_ROUTES) {
            route_t *e = &t->routes[f];
            e->ns_hash = nsh;
            __atomic_store_n(&e->sessions, 0, __ATOMIC_RELAXED);
            apr_cpystrn(e->route, route, sizeof(e->route));
            __atomic_store_n(&e->state, ROUTE_LIVE, __ATOMIC_RELEASE);
            if (f == n) {
                __atomic_store_n(&t->nroutes, n + 1, __ATOMIC_RELEASE);
            }
            id = (int)(f | ((apr_uint32_t)e->gen << ROUTE_INDEX_BITS));
        }
    }
    __atomic_store_n(&t->reg_lock, 0, __ATOMIC_RELEASE);
    return id;
}

const char *slb_table_route_name(const slb_table *t, int id)
{
    if (!route_current(t, id)) {
        return "";
    }
    return t->routes[ROUTE_INDEX(id)].route;
}

apr_uint32_t slb_table_route_sessions(const slb_table *t, int id)
{
    if (!route_current(t, id)) {
        return 0;
    }
    return __atomic_load_n(&t->routes[ROUTE_INDEX(id)].sessions,
                           __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* lookups                                                              */

/*
 * The live slot of pl's id in bucket b, from a consistent view of the
 * bucket: lock-free while no writer is there; after READ_TRIES attempts
 * the reader takes the bucket's lock like a writer (a live binding must
 * never read as a miss).  Only the slots' ids are read, and the rest of
 * the one that matches.  1 and *out, *kout; 0 when the bucket does not
 * hold it; -1 when the lock stayed taken for the whole bounded wait.
 */
static int find_in_bucket(slb_table *t, bucket_t *b, const place_t *pl,
                          apr_uint32_t now_s, slot_t *out, int *kout)
{
    int tries, k, found;
    apr_uint32_t seq;

    for (tries = 0; tries < READ_TRIES; tries++) {
        apr_uint32_t s1 = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
            cpu_relax((apr_uint32_t)tries);
            continue;
        }
        found = -1;
        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            if (LOAD(b->s[k].id_lo) != pl->id_lo
                || LOAD(b->s[k].id_hi) != pl->id_hi) {
                continue;
            }
            out->id_lo = pl->id_lo;
            out->id_hi = pl->id_hi;
            out->idle_dl = LOAD(b->s[k].idle_dl);
            out->hard_dl = LOAD(b->s[k].hard_dl);
            out->route = LOAD(b->s[k].route);
            out->written = LOAD(b->s[k].written);
            if (slot_live(out, now_s)) {
                found = k;
                break;
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&b->seq, __ATOMIC_RELAXED) == s1) {
            *kout = found;
            return found >= 0;
        }
    }
    if (!lock_bucket(t, b, &seq)) {
        return -1;
    }
    found = -1;
    for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
        if (b->s[k].id_lo == pl->id_lo && b->s[k].id_hi == pl->id_hi
            && slot_live(&b->s[k], now_s)) {
            *out = b->s[k];
            found = k;
            break;
        }
    }
    unlock_bucket(b, seq);
    *kout = found;
    return found >= 0;
}

apr_status_t slb_table_get(slb_table *t, const slb_key *key,
                           const slb_lifetime *lt, apr_time_t now,
                           int *route_id)
{
    apr_uint32_t age;

    return slb_table_get_age(t, key, lt, now, route_id, &age);
}

apr_status_t slb_table_get_age(slb_table *t, const slb_key *key,
                               const slb_lifetime *lt, apr_time_t now,
                               int *route_id, apr_uint32_t *age_s)
{
    bucket_t *bs = buckets(t);
    apr_uint32_t now_s = table_now(t, now);
    shard_t *sh = &t->shards[shard_of()];
    place_t pl;
    int i, k;

    place_of(t, key, &pl);
    __builtin_prefetch(&bs[pl.b[1]]);
    for (i = 0; i < 2; i++) {
        slot_t copy;
        bucket_t *b = &bs[pl.b[i]];

        if (find_in_bucket(t, b, &pl, now_s, &copy, &k) == 1) {
            const slot_t *s = &copy;
            {
                apr_uint32_t want = idle_word(now_s, lt);
                apr_uint32_t seen = s->idle_dl;
                /* an unlimited binding keeps its word's kind */
                if ((seen & UNLIMITED_BIT) != (want & UNLIMITED_BIT)
                    && seen != NO_DEADLINE) {
                    want = seen;
                }
                if (want > seen) {
                    /* fails harmlessly when a writer changed the slot */
                    __atomic_compare_exchange_n(&b->s[k].idle_dl, &seen,
                                                want, 0, __ATOMIC_RELAXED,
                                                __ATOMIC_RELAXED);
                }
            }
            if (!(s->route & PROTECTED_BIT)) {
                /* used again since it was written: protected from
                 * eviction by bindings used once (free_slot); once per
                 * binding, and as harmless as the CAS above when a writer
                 * changed the slot meanwhile */
                apr_uint16_t seen = s->route;
                __atomic_compare_exchange_n(&b->s[k].route, &seen,
                                            (apr_uint16_t)(seen
                                                           | PROTECTED_BIT),
                                            0, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED);
            }
            *route_id = s->route & ROUTE_MASK;
            *age_s = (apr_uint16_t)((apr_uint16_t)now_s - s->written);
            __atomic_fetch_add(&sh->hits, 1, __ATOMIC_RELAXED);
            return APR_SUCCESS;
        }
    }
    __atomic_fetch_add(&sh->misses, 1, __ATOMIC_RELAXED);
    return APR_NOTFOUND;
}

/* ------------------------------------------------------------------ */
/* writes (both buckets locked)                                         */

typedef struct {
    bucket_t *b;
    int k;
} slot_ref;

static slot_t *ref(slot_ref r)
{
    return &r.b->s[r.k];
}

static void clear_slot(slb_table *t, slot_t *s)
{
    route_sessions_add(t, LOAD(s->route) & ROUTE_MASK, -1);
    STORE(s->idle_dl, 0);
}

/* prot: PROTECTED_BIT or 0 */
static void write_slot(slb_table *t, slot_t *s, const place_t *pl,
                       int route_id, apr_uint16_t prot,
                       const slb_lifetime *lt, apr_uint32_t now_s)
{
    STORE(s->id_lo, pl->id_lo);
    STORE(s->id_hi, pl->id_hi);
    STORE(s->route, (apr_uint16_t)(route_id | prot));
    STORE(s->written, (apr_uint16_t)now_s);
    STORE(s->hard_dl, deadline(now_s, lt ? lt->max : 0));
    STORE(s->idle_dl, idle_word(now_s, lt));
    route_sessions_add(t, (apr_uint16_t)route_id, 1);
}

/* The slot holding the key (live or not), or b == NULL. */
static slot_ref find_slot(slb_table *t, const place_t *pl)
{
    bucket_t *bs = buckets(t);
    slot_ref r = { NULL, 0 };
    int i, k;

    for (i = 0; i < 2; i++) {
        bucket_t *b = &bs[pl->b[i]];
        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            slot_t *s = &b->s[k];
            if (LOAD(s->idle_dl) != 0 && s->id_lo == pl->id_lo
                && s->id_hi == pl->id_hi) {
                r.b = b;
                r.k = k;
                return r;
            }
        }
    }
    return r;
}

/* A slot for a new binding: empty, else expired (reclaimed), else the
 * least recently used of the unprotected ones (evicted): segmented LRU,
 * so that a flood of bindings used once cannot push out the sessions that
 * came back.  A binding is protected from its first hit after it was
 * written (slb_table_get); more than PROTECTED_MAX protected slots in the
 * pair and the least recently used of them is demoted first, so that the
 * sessions of yesterday cannot hold a pair against the new ones of today,
 * and a pair all protected evicts that demoted one. */
static slot_ref free_slot(slb_table *t, const place_t *pl, apr_uint32_t now_s)
{
    bucket_t *bs = buckets(t);
    slot_ref best = { NULL, 0 };
    apr_uint32_t best_dl = NO_DEADLINE;
    int i, k, pass;

    /* an empty slot, in the bucket with more of them (keeps the pairs
     * balanced, so eviction starts only when the table is nearly full) */
    {
        int empty[2] = { 0, 0 }, first[2] = { -1, -1 };
        for (i = 0; i < 2; i++) {
            bucket_t *b = &bs[pl->b[i]];
            for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
                if (LOAD(b->s[k].idle_dl) == 0) {
                    if (first[i] < 0) {
                        first[i] = k;
                    }
                    empty[i]++;
                }
            }
        }
        if (empty[0] || empty[1]) {
            i = empty[1] > empty[0] ? 1 : 0;
            best.b = &bs[pl->b[i]];
            best.k = first[i];
            return best;
        }
    }
    /* else an expired slot */
    for (pass = 1; pass < 2; pass++) {
        for (i = 0; i < 2; i++) {
            bucket_t *b = &bs[pl->b[i]];
            for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
                slot_t *s = &b->s[k];
                if (!slot_live(s, now_s)) {
                    clear_slot(t, s);
                    __atomic_fetch_add(&t->expired, 1, __ATOMIC_RELAXED);
                    best.b = b;
                    best.k = k;
                    return best;
                }
            }
        }
    }
    /* everything live: evict the unprotected slot whose idle deadline
     * comes first, after demoting the protected one whose comes first when
     * too many are protected */
    {
        slot_ref old = { NULL, 0 };
        apr_uint32_t old_dl = NO_DEADLINE;
        int nprot = 0;

        for (i = 0; i < 2; i++) {
            bucket_t *b = &bs[pl->b[i]];
            for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
                apr_uint32_t dl = LOAD(b->s[k].idle_dl);
                if (LOAD(b->s[k].route) & PROTECTED_BIT) {
                    nprot++;
                    if (old.b == NULL || dl < old_dl) {
                        old.b = b;
                        old.k = k;
                        old_dl = dl;
                    }
                }
                else if (best.b == NULL || dl < best_dl) {
                    best.b = b;
                    best.k = k;
                    best_dl = dl;
                }
            }
        }
        if (nprot > PROTECTED_MAX) {
            slot_t *s = ref(old);
            STORE(s->route, (apr_uint16_t)(LOAD(s->route) & ROUTE_MASK));
            __atomic_fetch_add(&t->demotions, 1, __ATOMIC_RELAXED);
            if (best.b == NULL || old_dl < best_dl) {
                best = old;
            }
        }
    }
    clear_slot(t, ref(best));
    __atomic_fetch_add(&t->evictions, 1, __ATOMIC_RELAXED);
    return best;
}

static apr_status_t put(slb_table *t, const slb_key *key, int route_id,
                        const slb_lifetime *lt, apr_time_t now,
                        int only_if_absent, int *existing)
{
    apr_uint32_t now_s = table_now(t, now);
    place_t pl;
    slot_ref r;
    apr_status_t rv = APR_SUCCESS;
    apr_uint32_t seq[2];

    /* only registered numbers: a binding to a number registered later
     * would be counted against a session count that registration resets */
    if (!route_current(t, route_id)) {
        return APR_EINVAL;
    }
    place_of(t, key, &pl);
    if (!lock_place(t, &pl, seq)) {
        return APR_TIMEUP;
    }
    r = find_slot(t, &pl);
    /* a binding to a retired route number names no route: absent */
    if (r.b != NULL && slot_live(ref(r), now_s)
        && route_current(t, LOAD(ref(r)->route))) {
        slot_t *s = ref(r);
        if (only_if_absent) {
            if (existing) {
                *existing = s->route & ROUTE_MASK;
            }
            rv = APR_EEXIST;
        }
        else {
            /* a replaced binding keeps its protection (re-pinned after a
             * failover, refreshed from memcached: the same session) */
            apr_uint16_t prot = LOAD(s->route) & PROTECTED_BIT;
            clear_slot(t, s);
            write_slot(t, s, &pl, route_id, prot, lt, now_s);
            __atomic_fetch_add(&t->replaces, 1, __ATOMIC_RELAXED);
        }
    }
    else {
        if (r.b != NULL) {
            clear_slot(t, ref(r));      /* the key's own expired slot */
            __atomic_fetch_add(&t->expired, 1, __ATOMIC_RELAXED);
        }
        else {
            r = free_slot(t, &pl, now_s);
        }
        write_slot(t, ref(r), &pl, route_id, 0, lt, now_s);
        __atomic_fetch_add(&t->inserts, 1, __ATOMIC_RELAXED);
    }
    unlock_place(t, &pl, seq);
    return rv;
}

#ifdef SLB_TABLE_FAULTS
/* Test builds only (tests/unit, -DSLB_TABLE_FAULTS): take the locks of
 * key's place as a writer does, start an insert of key (the slot a real
 * one would take, half written: no route count yet) and return holding
 * the locks (the caller then dies). */
void slb_table_fault_hold(slb_table *t, const slb_key *key, int route_id);
void slb_table_fault_hold(slb_table *t, const slb_key *key, int route_id)
{
    apr_uint32_t seq[2];
    place_t pl;
    slot_t *s;

    place_of(t, key, &pl);
    if (!lock_place(t, &pl, seq)) {
        return;
    }
    s = ref(free_slot(t, &pl, 1));
    STORE(s->id_lo, pl.id_lo);
    STORE(s->id_hi, pl.id_hi);
    STORE(s->route, (apr_uint16_t)route_id);
    STORE(s->idle_dl, NO_DEADLINE);
}
#endif

apr_status_t slb_table_add(slb_table *t, const slb_key *key, int route_id,
                           const slb_lifetime *lt, apr_time_t now,
                           int *existing)
{
    return put(t, key, route_id, lt, now, 1, existing);
}

apr_status_t slb_table_set(slb_table *t, const slb_key *key, int route_id,
                           const slb_lifetime *lt, apr_time_t now)
{
    return put(t, key, route_id, lt, now, 0, NULL);
}

apr_status_t slb_table_del(slb_table *t, const slb_key *key)
{
    place_t pl;
    slot_ref r;
    apr_uint32_t seq[2];

    place_of(t, key, &pl);
    if (!lock_place(t, &pl, seq)) {
        return APR_TIMEUP;
    }
    r = find_slot(t, &pl);
    if (r.b != NULL) {
        clear_slot(t, ref(r));
    }
    unlock_place(t, &pl, seq);
    return r.b != NULL ? APR_SUCCESS : APR_NOTFOUND;
}

apr_uint32_t slb_table_sweep(slb_table *t, apr_time_t now,
                             apr_uint32_t max_buckets)
{
    bucket_t *bs = buckets(t);
    apr_uint32_t now_s = table_now(t, now);
    apr_uint32_t start, i, reclaimed = 0;

    if (max_buckets > t->nbuckets) {
        max_buckets = t->nbuckets;
    }
    start = __atomic_fetch_add(&t->sweep_pos, max_buckets, __ATOMIC_RELAXED);
    for (i = 0; i < max_buckets; i++) {
        bucket_t *b = &bs[(apr_uint32_t)((start + (apr_uint64_t)i)
                                         % t->nbuckets)];
        int k;
        apr_uint32_t seq;

        if (!lock_bucket(t, b, &seq)) {
            continue;
        }
        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            slot_t *s = &b->s[k];
            if (s->idle_dl != 0 && !slot_live(s, now_s)) {
                clear_slot(t, s);
                reclaimed++;
            }
        }
        unlock_bucket(b, seq);
    }
    __atomic_fetch_add(&t->expired, reclaimed, __ATOMIC_RELAXED);
    return reclaimed;
}

apr_uint32_t slb_table_del_route(slb_table *t, int id)
{
    bucket_t *bs = buckets(t);
    apr_uint32_t i, n = 0;
    int k;

    if (id < 0 || id > 0xffff) {
        return 0;
    }
    for (i = 0; i < t->nbuckets; i++) {
        bucket_t *b = &bs[i];
        int hit = 0;
        apr_uint32_t seq;

        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            hit |= LOAD(b->s[k].idle_dl) != 0
                   && (LOAD(b->s[k].route) & ROUTE_MASK) == (apr_uint16_t)id;
        }
        if (!hit || !lock_bucket(t, b, &seq)) {
            continue;
        }
        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            slot_t *s = &b->s[k];
            if (LOAD(s->idle_dl) != 0
                && (s->route & ROUTE_MASK) == (apr_uint16_t)id) {
                clear_slot(t, s);
                n++;
            }
        }
        unlock_bucket(b, seq);
    }
    return n;
}

void slb_table_stats_get(const slb_table *t, slb_table_stats *st)
{
    int i;
    apr_uint32_t n;

    memset(st, 0, sizeof(*st));
    st->buckets = t->nbuckets;
    st->capacity = t->nbuckets * SLB_TABLE_SLOTS_PER_BUCKET;
    st->bytes = t->bytes;
    for (i = 0; i < STAT_SHARDS; i++) {
        st->hits += LOAD(t->shards[i].hits);
        st->misses += LOAD(t->shards[i].misses);
    }
    st->inserts = LOAD(t->inserts);
    st->replaces = LOAD(t->replaces);
    st->evictions = LOAD(t->evictions);
    st->expired = LOAD(t->expired);
    st->lock_timeouts = LOAD(t->lock_timeouts);
    st->lock_repairs = LOAD(t->lock_repairs);
    st->demotions = LOAD(t->demotions);
    n = __atomic_load_n(&t->nroutes, __ATOMIC_ACQUIRE);
    for (i = 0; i < (int)n; i++) {
        st->routes += __atomic_load_n(&t->routes[i].state, __ATOMIC_ACQUIRE)
                      == ROUTE_LIVE;
    }
}

/* 1 when (nsh, route) is one of the n pairs */
static int kept(apr_uint64_t nsh, const char *route, int n,
                const char *const *ns, const char *const *routes)
{
    int i;

    for (i = 0; i < n; i++) {
        if (routes[i] && strcmp(routes[i], route) == 0
            && fnv1a(ns[i] ? ns[i] : "") == nsh) {
            return 1;
        }
    }
    return 0;
}

apr_uint32_t slb_table_routes_keep(slb_table *t, int n,
                                   const char *const *ns,
                                   const char *const *routes)
{
    apr_uint16_t old[SLB_TABLE_MAX_ROUTES];
    apr_uint32_t i, nr, retired = 0;
    bucket_t *bs = buckets(t);

    if (!reg_lock(t)) {
        return 0;                /* tried again at the next restart */
    }
    /* retire: no longer found, a new generation (writes with the old
     * number are refused, its bindings read as unknown) */
    nr = __atomic_load_n(&t->nroutes, __ATOMIC_ACQUIRE);
    for (i = 0; i < nr; i++) {
        route_t *e = &t->routes[i];
        apr_uint16_t st = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
        old[i] = 0xffff;
        if (st == ROUTE_FREE
            || (st == ROUTE_LIVE && kept(e->ns_hash, e->route, n, ns,
                                         routes))) {
            continue;
        }
        old[i] = (apr_uint16_t)(i | ((apr_uint32_t)e->gen
                                     << ROUTE_INDEX_BITS));
        __atomic_store_n(&e->state, ROUTE_RETIRING, __ATOMIC_RELEASE);
        __atomic_store_n(&e->gen, (apr_uint16_t)((e->gen + 1) % ROUTE_GENS),
                         __ATOMIC_RELEASE);
        retired++;
    }
    __atomic_store_n(&t->reg_lock, 0, __ATOMIC_RELEASE);
    if (retired == 0) {
        return 0;
    }
    /* one pass over the table: the retired routes' bindings go */
    for (i = 0; i < t->nbuckets; i++) {
        bucket_t *b = &bs[i];
        int hit = 0, k;
        apr_uint32_t seq;

        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            apr_uint16_t r = LOAD(b->s[k].route) & ROUTE_MASK;
            hit |= LOAD(b->s[k].idle_dl) != 0 && ROUTE_INDEX(r) < nr
                   && old[ROUTE_INDEX(r)] == r;
        }
        if (!hit || !lock_bucket(t, b, &seq)) {
            continue;
        }
        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            slot_t *s = &b->s[k];
            if (LOAD(s->idle_dl) != 0 && ROUTE_INDEX(s->route) < nr
                && old[ROUTE_INDEX(s->route)]
                   == (apr_uint16_t)(s->route & ROUTE_MASK)) {
                clear_slot(t, s);
            }
        }
        unlock_bucket(b, seq);
    }
    /* reusable now */
    for (i = 0; i < nr; i++) {
        if (old[i] != 0xffff) {
            route_t *e = &t->routes[i];
            __atomic_store_n(&e->sessions, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&e->state, ROUTE_FREE, __ATOMIC_RELEASE);
        }
    }
    return retired;
}

apr_uint32_t slb_table_count_live(const slb_table *t, apr_time_t now)
{
    const bucket_t *bs = buckets(t);
    apr_uint32_t now_s = table_now(t, now);
    apr_uint32_t i, n = 0;
    int k;

    for (i = 0; i < t->nbuckets; i++) {
        for (k = 0; k < SLB_TABLE_SLOTS_PER_BUCKET; k++) {
            slot_t s;
            s.idle_dl = LOAD(bs[i].s[k].idle_dl);
            s.hard_dl = LOAD(bs[i].s[k].hard_dl);
            n += slot_live(&s, now_s);
        }
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* the table as a store (slb_store_ops, see stickylb_store.h)           */

static const slb_key *local_key(slb_table *t, slb_skey *k)
{
    if (!k->have_local) {
        const slb_key_prefix *pre = k->local_prefix;
        if (pre && pre->table == t) {
            slb_table_key_from(pre, &k->local, k->id, k->len);
        }
        else {
            slb_table_key(t, &k->local, k->ns, k->id, k->len);
        }
        k->have_local = 1;
    }
    return &k->local;
}

/* A route entry's name into a binding: both arrays of SLB_MAX_ROUTE_LEN +
 * 1 bytes, the entry's written whole when the segment was made (no byte
 * of it is uninitialised), copied eight bytes at a time up to the word
 * with the terminating NUL. */
static void entry_route_copy(char *dst, const char *src)
{
    int i;

    for (i = 0; i < (SLB_MAX_ROUTE_LEN + 1) / 8; i++) {
        apr_uint64_t w;
        memcpy(&w, src + 8 * i, 8);
        memcpy(dst + 8 * i, &w, 8);
        if (slb_word_has_zero(w)) {
            return;   /* the word has a zero byte */
        }
    }
    dst[SLB_MAX_ROUTE_LEN] = '\0';
}

typedef char route_copy_fits[(SLB_MAX_ROUTE_LEN + 1) % 8 == 0
                             && sizeof(((slb_binding *)0)->route)
                                    == SLB_MAX_ROUTE_LEN + 1
                             && sizeof(((route_t *)0)->route)
                                    == SLB_MAX_ROUTE_LEN + 1 ? 1 : -1];

static apr_status_t tbl_get(void *ctx, slb_skey *k, const slb_lifetime *lt,
                            apr_time_t now, slb_binding *out,
                            apr_uint32_t *age_s)
{
    slb_table *t = ctx;
    int id = -1;
    apr_uint32_t age = 0;
    const char *name;
    apr_status_t rv = slb_table_get_age(t, local_key(t, k), lt, now, &id,
                                        &age);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    name = slb_table_route_name(t, id);
    if (*name == '\0') {
        return APR_NOTFOUND;
    }
    entry_route_copy(out->route, name);
    out->created = 0;          /* the table enforces the lifetimes itself */
    *age_s = age;
    return APR_SUCCESS;
}

/* every write reclaims the expired bindings of a few buckets, so the
 * per-member session counts stay exact without a sweeper thread */
#define WRITE_SWEEP_BUCKETS 8

static apr_status_t tbl_add(void *ctx, slb_skey *k, const slb_binding *b,
                            const slb_lifetime *lt, apr_time_t now,
                            slb_binding *existing)
{
    slb_table *t = ctx;
    int id = slb_table_route_id(t, k->ns, b->route), ex = -1;
    apr_status_t rv;

    if (id < 0) {
        return APR_ENOSPC;     /* the route registry is full */
    }
    rv = slb_table_add(t, local_key(t, k), id, lt, now, &ex);
    if (rv == APR_EEXIST && existing) {
        apr_cpystrn(existing->route, slb_table_route_name(t, ex),
                    sizeof(existing->route));
        existing->created = 0;
    }
    if (rv == APR_SUCCESS) {
        slb_table_sweep(t, now, WRITE_SWEEP_BUCKETS);
    }
    return rv;
}

static apr_status_t tbl_set(void *ctx, slb_skey *k, const slb_binding *b,
                            const slb_lifetime *lt, apr_time_t now)
{
    slb_table *t = ctx;
    int id = slb_table_route_id(t, k->ns, b->route);
    apr_status_t rv;

    if (id < 0) {
        return APR_ENOSPC;
    }
    rv = slb_table_set(t, local_key(t, k), id, lt, now);
    if (rv == APR_SUCCESS) {
        slb_table_sweep(t, now, WRITE_SWEEP_BUCKETS);
    }
    return rv;
}

static apr_status_t tbl_del(void *ctx, slb_skey *k)
{
    slb_table *t = ctx;

    return slb_table_del(t, local_key(t, k));
}

static void tbl_stats(void *ctx, slb_store_stats *out)
{
    slb_table_stats st;

    slb_table_stats_get(ctx, &st);
    out->capacity = st.capacity;
    out->hits = st.hits;
    out->misses = st.misses;
    out->writes = st.inserts + st.replaces;
    out->errors = st.lock_timeouts;
}

const slb_store_ops slb_table_store_ops = {
    "shm", tbl_get, tbl_add, tbl_set, NULL, tbl_del, NULL, tbl_stats
};
