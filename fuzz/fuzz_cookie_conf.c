/*
 * fuzz_cookie_conf.c - StickyLBRouteCookie arguments: slb_cookie_conf_parse
 * and the Set-Cookie value built from an accepted configuration
 * (slb_cookie_build).
 *
 * Input: NUL-separated fields, used as argv (at most 16 words).  The route
 * given to slb_cookie_build is "web-1", then the last word when it is a
 * valid route.
 */
#include "fuzz_common.h"

#include <strings.h>

#include <apr_strings.h>

#include "stickylb_codec.h"

#define MAXARGS 16

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s; s++) {
        n += *s == c;
    }
    return n;
}

static void check_build(apr_pool_t *p, const slb_cookie_conf *c,
                        const char *route)
{
    const char *b = slb_cookie_build(p, c, route), *s;
    slb_span v = { NULL, 0 };
    size_t nlen = strlen(c->name), rlen = strlen(route);
    int rc, attrs;

    FZ_CHECK(b != NULL);
    /* a header value: printable US-ASCII, never CR or LF */
    for (s = b; *s; s++) {
        FZ_CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f);
    }
    FZ_CHECK(strncmp(b, c->name, nlen) == 0 && b[nlen] == '=');
    FZ_CHECK(strncmp(b + nlen + 1, route, rlen) == 0);
    FZ_CHECK(b[nlen + 1 + rlen] == ';');
    /* what a backend's Set-Cookie parser makes of it */
    rc = slb_set_cookie_value(b, c->name, &v);
    if (c->max_age == 0) {
        FZ_CHECK(rc == 2);
    }
    else {
        FZ_CHECK(rc == 1);
        FZ_CHECK(v.len == rlen && memcmp(v.ptr, route, rlen) == 0);
    }
    /* one "; " per attribute, and no other ';' */
    attrs = 1 + (c->domain != NULL) + (c->max_age >= 0) + (c->secure != 0)
            + (c->httponly != 0) + (c->samesite > SLB_SAMESITE_OFF);
    FZ_CHECK(count_char(b, ';') == attrs);
    FZ_CHECK(strstr(b, apr_pstrcat(p, "; Path=", c->path, NULL)) != NULL);
    FZ_CHECK((strstr(b, "; Secure") != NULL) == (c->secure != 0));
    FZ_CHECK((strstr(b, "; HttpOnly") != NULL) == (c->httponly != 0));
    FZ_CHECK((strstr(b, "; SameSite=") != NULL)
             == (c->samesite > SLB_SAMESITE_OFF));
    if (c->domain) {
        FZ_CHECK(strstr(b, apr_pstrcat(p, "; Domain=", c->domain, NULL))
                 != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *argv[MAXARGS];
    int argc = fz_split(data, size, argv, MAXARGS);
    slb_cookie_conf c, c2;
    const char *err, *err2, *s;

    /* an empty input is argc 0 */
    if (size == 0) {
        argc = 0;
    }
    err = slb_cookie_conf_parse(p, &c, argc, (const char *const *)argv);
    err2 = slb_cookie_conf_parse(p, &c2, argc, (const char *const *)argv);
    FZ_CHECK((err == NULL) == (err2 == NULL));
    if (err != NULL) {
        FZ_CHECK(*err != '\0');
        FZ_CHECK(strcmp(err, err2) == 0);
        fz_end();
        return 0;
    }
    FZ_CHECK(memcmp(&c, &c2, sizeof(c)) == 0);
    FZ_CHECK(argc >= 1);
    FZ_CHECK(c.name == argv[0]);
    FZ_CHECK(slb_is_token(c.name, 128) && c.name[0] != '$');
    FZ_CHECK(c.insert == 0 || c.insert == 1);
    FZ_CHECK(c.indirect == 0 || c.indirect == 1);
    FZ_CHECK(c.nocache == 0 || c.insert);
    FZ_CHECK(c.secure == 0 || c.secure == 1);
    FZ_CHECK(c.httponly == 0 || c.httponly == 1);
    FZ_CHECK(c.samesite >= SLB_SAMESITE_OFF
             && c.samesite <= SLB_SAMESITE_NONE);
    FZ_CHECK(c.samesite != SLB_SAMESITE_NONE || c.secure);
    FZ_CHECK(c.max_age >= -1 && c.max_age <= 315360000L);
    FZ_CHECK(c.path != NULL && c.path[0] == '/' && strlen(c.path) <= 1024);
    for (s = c.path; *s; s++) {
        FZ_CHECK((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f
                 && *s != ';' && *s != ',');
    }
    if (c.domain) {
        s = c.domain + (c.domain[0] == '.');
        FZ_CHECK(*s != '\0' && strlen(s) <= 253);
        for (; *s; s++) {
            FZ_CHECK((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
                     || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.');
        }
    }
    check_build(p, &c, "web-1");
    if (argc > 1 && slb_route_ok(argv[argc - 1], strlen(argv[argc - 1]))) {
        check_build(p, &c, argv[argc - 1]);
    }
    fz_end();
    return 0;
}
