/*
 * check_key.c - Check tests of slb_key_make() (stickylb_store_key.c): the
 * SHA-1 of "<namespace>\0<id>" and its memcached text "slb1:" + 40
 * lowercase hex digits.
 *
 * Expected digests were computed independently (Python hashlib):
 *   sha1(ns + b"\0" + id).hexdigest()
 */
#include <stdlib.h>
#include <string.h>

#include "check_stickylb.h"
#include "stickylb_store.h"

static void hex_of(const unsigned char *d, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 0; i < SLB_KEY_DIGEST_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * SLB_KEY_DIGEST_LEN] = '\0';
}

/* text is exactly "slb1:" + 40 lowercase hex digits matching digest */
static void assert_well_formed(const slb_key *k)
{
    char hex[2 * SLB_KEY_DIGEST_LEN + 1];
    size_t i;

    ck_assert_uint_eq(strlen(k->text), 45);
    ck_assert_uint_eq(SLB_KEY_TEXT_LEN, 46);
    ck_assert(memcmp(k->text, "slb1:", 5) == 0);
    for (i = 5; i < 45; i++) {
        ck_assert_msg((k->text[i] >= '0' && k->text[i] <= '9')
                      || (k->text[i] >= 'a' && k->text[i] <= 'f'),
                      "byte %u of the key text is '%c'", (unsigned)i,
                      k->text[i]);
    }
    hex_of(k->digest, hex);
    ck_assert_str_eq(k->text + 5, hex);
}

static void assert_key(const char *ns, const char *id, size_t len,
                       const char *sha1_hex)
{
    slb_key k;
    char want[64];

    memset(&k, 0x5a, sizeof(k));        /* no reliance on zeroed memory */
    slb_key_make(&k, ns, id, len);
    assert_well_formed(&k);
    strcpy(want, "slb1:");
    strcat(want, sha1_hex);
    ck_assert_str_eq(k.text, want);
}

START_TEST(test_key_vectors)
{
    assert_key("b", "x", 1, "6cd3abc48c286ca13926872bcdd95becbbfa7456");
    assert_key("", "", 0, "5ba93c9db0cff93f52b521d7420e43f6eda2784f");
    assert_key("app", "ABC123", 6, "27347fdd73b70c9452618593299c93e7e52db733");
}
END_TEST

START_TEST(test_key_binary_id)
{
    /* an id with a NUL and bytes >= 0x80, passed with its length; the
     * buffer is exactly sized so that valgrind sees any over-read */
    static const char bytes[] = { '\0', '\xff', '\x80', 'x' };
    char *id = malloc(sizeof(bytes));

    ck_assert_ptr_nonnull(id);
    memcpy(id, bytes, sizeof(bytes));
    assert_key("b", id, sizeof(bytes),
               "098cd18a84272a8903a0e1127b04af283146f75f");
    /* only len bytes count: the same id cut at its NUL is another key */
    {
        slb_key a, b;

        slb_key_make(&a, "b", id, sizeof(bytes));
        slb_key_make(&b, "b", id, 0);
        ck_assert_str_ne(a.text, b.text);
    }
    free(id);
}
END_TEST

START_TEST(test_key_namespaces)
{
    slb_key a, b, c, d;

    slb_key_make(&a, "balancer1", "SESSION", 7);
    slb_key_make(&b, "balancer2", "SESSION", 7);
    slb_key_make(&c, "balancer1", "SESSION", 7);
    ck_assert_str_ne(a.text, b.text);
    ck_assert(memcmp(a.digest, b.digest, SLB_KEY_DIGEST_LEN) != 0);
    ck_assert_str_eq(a.text, c.text);
    ck_assert(memcmp(a.digest, c.digest, SLB_KEY_DIGEST_LEN) == 0);

    /* the NUL separator keeps ("a", "bx") apart from ("ab", "x") */
    assert_key("a", "bx", 2, "1a03d4eaaea803f30c028b198844d5ed1e1d34d8");
    assert_key("ab", "x", 1, "6e8de324e1b0f21e50e9ed1acfefad6aad395623");
    slb_key_make(&a, "a", "bx", 2);
    slb_key_make(&d, "ab", "x", 1);
    ck_assert_str_ne(a.text, d.text);
}
END_TEST

START_TEST(test_key_long_id)
{
    /* a long id (bigger than one SHA-1 block, and than any header) */
    size_t len = 100000;
    char *id = malloc(len);
    slb_key a, b;

    ck_assert_ptr_nonnull(id);
    memset(id, 'q', len);
    slb_key_make(&a, "ns", id, len);
    assert_well_formed(&a);
    id[len - 1] = 'r';
    slb_key_make(&b, "ns", id, len);
    assert_well_formed(&b);
    ck_assert_str_ne(a.text, b.text);
    free(id);
}
END_TEST

Suite *key_suite(void)
{
    Suite *s = suite_create("key");
    TCase *tc = tcase_create("slb_key_make");

    tcase_add_test(tc, test_key_vectors);
    tcase_add_test(tc, test_key_binary_id);
    tcase_add_test(tc, test_key_namespaces);
    tcase_add_test(tc, test_key_long_id);
    suite_add_tcase(s, tc);
    return s;
}
