/*
 * stickylb_store_key.c - keys of the stick table (APR only).
 *
 * SHA-1 of "<namespace>\0<id>": the shm table indexes the digest, memcached
 * sees "slb1:" + 40 lowercase hex digits.  Raw client bytes never reach a
 * store.
 */
#include <string.h>

#include <apr_sha1.h>

#include "stickylb_store.h"

void slb_key_make(slb_key *key, const char *ns, const char *id,
                  apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    apr_sha1_ctx_t ctx;
    int i;

    apr_sha1_init(&ctx);
    if (ns) {
        apr_sha1_update_binary(&ctx, (const unsigned char *)ns,
                               (unsigned int)strlen(ns));
    }
    apr_sha1_update_binary(&ctx, (const unsigned char *)"", 1);
    if (id && len) {
        apr_sha1_update_binary(&ctx, (const unsigned char *)id,
                               (unsigned int)len);
    }
    apr_sha1_final(key->digest, &ctx);
    memcpy(key->text, "slb1:", 5);
    for (i = 0; i < SLB_KEY_DIGEST_LEN; i++) {
        key->text[5 + 2 * i] = hex[key->digest[i] >> 4];
        key->text[5 + 2 * i + 1] = hex[key->digest[i] & 15];
    }
    key->text[SLB_KEY_TEXT_LEN - 1] = '\0';
    key->keyed = 0;
}

void slb_skey_init(slb_skey *k, const char *ns, const char *id,
                   apr_size_t len)
{
    k->ns = ns;
    k->id = id;
    k->len = len;
    k->local_prefix = NULL;
    k->scope = NULL;
    k->have_local = 0;
    k->have_shared = 0;
}

const slb_key *slb_skey_shared(slb_skey *k)
{
    if (!k->have_shared) {
        slb_key_make(&k->shared, k->ns, k->id, k->len);
        k->have_shared = 1;
    }
    return &k->shared;
}

apr_uint32_t slb_lifetime_ttl(const slb_lifetime *lt)
{
    if (lt->idle) {
        return lt->max && lt->max < lt->idle ? lt->max : lt->idle;
    }
    return lt->max;
}
