/*
 * fuzz_key.c - stick-table keys from client bytes: slb_key_make.
 *
 * Input: the namespace (up to the first NUL), then the session id (the
 * rest: any bytes, NUL included).  Checks the memcached key text
 * ("slb1:" + 40 lowercase hex digits, the digest's), and that the digest
 * is SHA-1 of "<namespace>\0<id>".
 */
#include "fuzz_common.h"

#include <apr_sha1.h>

#include "stickylb_store.h"

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
    fz_end();
    return 0;
}
