/*
 * fuzz_key.c - stick-table keys from client bytes: slb_key_make (shared,
 * SHA-1) and slb_table_key (the shm store's, SipHash-1-3 (64 bits) keyed with
 * the namespace's key, SipHash-2-4-128 of the namespace under the table's
 * secret).
 *
 * Input: the namespace (up to the first NUL), then the session id (the
 * rest: any bytes, NUL included).  Checks the memcached key text
 * ("slb1:" + 40 lowercase hex digits, the digest's), that the digest is
 * SHA-1 of "<namespace>\0<id>", and that the table key is what the
 * reference below computes (SipHash-c-d of 128 or 64 bits, one byte at a time, the
 * rounds as parameters): 1-3 of the id under 2-4 of "<namespace>\0".
 */
#include "fuzz_common.h"

#include <apr_sha1.h>

#include "stickylb_store.h"
#include "stickylb_table.h"

/* SipHash-c-d with 128 bits of output, the reference algorithm, one
 * byte at a time */
#define RL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SR do { v0 += v1; v1 = RL(v1, 13); v1 ^= v0; v0 = RL(v0, 32); \
                v2 += v3; v3 = RL(v3, 16); v3 ^= v2;                    \
                v0 += v3; v3 = RL(v3, 21); v3 ^= v0;                    \
                v2 += v1; v1 = RL(v1, 17); v1 ^= v2; v2 = RL(v2, 32); } while (0)
/* SipHash-c-d of 128 bits (out[16]), or of 64 bits when half (out[8]) */
static void ref_sip(const unsigned char k[16], const unsigned char *in,
                    size_t len, int c, int d, int half, unsigned char *out)
{
    uint64_t k0 = 0, k1 = 0, v0, v1, v2, v3, m, b;
    size_t i, j;
    int r;

    for (i = 0; i < 8; i++) {
        k0 |= (uint64_t)k[i] << (8 * i);
        k1 |= (uint64_t)k[8 + i] << (8 * i);
    }
    v0 = 0x736f6d6570736575ULL ^ k0;
    v1 = 0x646f72616e646f6dULL ^ k1 ^ (half ? 0 : 0xee);
    v2 = 0x6c7967656e657261ULL ^ k0;
    v3 = 0x7465646279746573ULL ^ k1;
    for (i = 0; i + 8 <= len; i += 8) {
        for (m = 0, j = 0; j < 8; j++) {
            m |= (uint64_t)in[i + j] << (8 * j);
        }
        v3 ^= m;
        for (r = 0; r < c; r++) {
            SR;
        }
        v0 ^= m;
    }
    for (b = (uint64_t)len << 56, j = 0; i + j < len; j++) {
        b |= (uint64_t)in[i + j] << (8 * j);
    }
    v3 ^= b;
    for (r = 0; r < c; r++) {
        SR;
    }
    v0 ^= b;
    v2 ^= half ? 0xff : 0xee;
    for (r = 0; r < d; r++) {
        SR;
    }
    m = v0 ^ v1 ^ v2 ^ v3;
    for (j = 0; j < 8; j++) {
        out[j] = (unsigned char)(m >> (8 * j));
    }
    if (half) {
        return;
    }
    v1 ^= 0xdd;
    for (r = 0; r < d; r++) {
        SR;
    }
    m = v0 ^ v1 ^ v2 ^ v3;
    for (j = 0; j < 8; j++) {
        out[8 + j] = (unsigned char)(m >> (8 * j));
    }
}

static const unsigned char secret[16] = {
    0x9a, 0x11, 0x42, 0x07, 0xc3, 0x5e, 0x80, 0x2d,
    0x64, 0xf1, 0x0b, 0x3a, 0xe7, 0x19, 0xb5, 0x4c
};

/* one small table for every input (the key does not depend on its
 * contents, only on its secret) */
static slb_table *table(void)
{
    static slb_table *t;
    static void *mem;

    if (t == NULL) {
        apr_size_t bytes = slb_table_bytes(64);
        mem = aligned_alloc(64, (bytes + 63) & ~(apr_size_t)63);
        t = slb_table_format(mem, bytes, secret, 0);
    }
    return t;
}

static void check_text(const slb_key *k)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    FZ_CHECK(strlen(k->text) == SLB_KEY_TEXT_LEN - 1);
    FZ_CHECK(memcmp(k->text, "slb1:", 5) == 0);
    for (i = 0; i < SLB_KEY_DIGEST_LEN; i++) {
        FZ_CHECK(k->text[5 + 2 * i] == hex[k->digest[i] >> 4]);
        FZ_CHECK(k->text[6 + 2 * i] == hex[k->digest[i] & 15]);
    }
    /* a memcached key: no space or control byte, at most 250 bytes */
    for (i = 0; k->text[i]; i++) {
        FZ_CHECK((unsigned char)k->text[i] > 0x20
                 && (unsigned char)k->text[i] < 0x7f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *z = memchr(data, 0, size);
    size_t nslen = z ? (size_t)(z - data) : size;
    size_t idlen = z ? size - nslen - 1 : 0;
    char *ns, *id, *cat;
    slb_key k, k2;
    unsigned char want[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;

    fz_begin();
    ns = fz_str(data, nslen);
    id = fz_mem(z ? z + 1 : data + size, idlen);
    memset(&k, 0xa5, sizeof(k));
    slb_key_make(&k, ns, id, idlen);
    check_text(&k);

    /* the digest of "<ns>\0<id>" in one piece */
    cat = fz_alloc(nslen + 1 + idlen);
    memcpy(cat, data, nslen);
    cat[nslen] = '\0';
    if (idlen) {
        memcpy(cat + nslen + 1, z + 1, idlen);
    }
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, (const unsigned char *)cat,
                           (unsigned int)(nslen + 1 + idlen));
    apr_sha1_final(want, &ctx);
    FZ_CHECK(memcmp(k.digest, want, SLB_KEY_DIGEST_LEN) == 0);

    /* deterministic, and a key of nothing does not depend on the pointer */
    memset(&k2, 0x3c, sizeof(k2));
    slb_key_make(&k2, ns, id, idlen);
    FZ_CHECK(memcmp(&k, &k2, sizeof(k)) == 0);
    if (nslen == 0) {
        slb_key_make(&k2, NULL, id, idlen);
        FZ_CHECK(memcmp(&k, &k2, sizeof(k)) == 0);
    }
    if (idlen == 0) {
        slb_key_make(&k2, ns, NULL, 0);
        FZ_CHECK(memcmp(&k, &k2, sizeof(k)) == 0);
    }
    /* the id alone in the default namespace: a different key unless the
     * input is exactly that */
    slb_key_make(&k2, "", (const char *)data, size);
    check_text(&k2);
    if (nslen > 0) {
        FZ_CHECK(memcmp(k.digest, k2.digest, SLB_KEY_DIGEST_LEN) != 0);
    }

    /* the shm store's key: the reference over the same bytes */
    {
        unsigned char ref[16], kns[16];
        static const unsigned char zero[SLB_KEY_DIGEST_LEN - 16];

        memset(&k2, 0x5a, sizeof(k2));
        slb_table_key(table(), &k2, ns, id, idlen);
        ref_sip(secret, (const unsigned char *)cat, nslen + 1, 2, 4, 0, kns);
        ref_sip(kns, (const unsigned char *)cat + nslen + 1, idlen, 1, 3, 1,
                ref);
        /* the 64 bits in both halves */
        FZ_CHECK(memcmp(k2.digest, ref, 8) == 0);
        FZ_CHECK(memcmp(k2.digest + 8, ref, 8) == 0);
        FZ_CHECK(memcmp(k2.digest + 16, zero, sizeof(zero)) == 0);
        FZ_CHECK(k2.keyed == 1);
        FZ_CHECK(k2.text[0] == '\0');
        if (nslen == 0) {
            slb_key k3;
            slb_table_key(table(), &k3, NULL, id, idlen);
            FZ_CHECK(memcmp(k3.digest, k2.digest, SLB_KEY_DIGEST_LEN) == 0);
        }
        /* in two steps (the namespace's prefix computed once): the same */
        {
            slb_key_prefix pre;
            slb_key k4;
            memset(&k4, 0xa5, sizeof(k4));
            slb_table_key_prefix(table(), ns, &pre);
            slb_table_key_from(&pre, &k4, id, idlen);
            FZ_CHECK(memcmp(k4.digest, k2.digest, SLB_KEY_DIGEST_LEN) == 0);
            FZ_CHECK(k4.keyed == 1 && k4.text[0] == '\0');
            FZ_CHECK(pre.table == table());
        }
    }
    fz_end();
    return 0;
}
