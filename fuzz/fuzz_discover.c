/*
 * fuzz_discover.c - discovery's parsers and decisions (stickylb_discover.c,
 * and the DNS kinds' create() of stickylb_dns.c): StickyLBDiscover's
 * options (slb_disc_conf_parse, then dns/srv create() with the rest),
 * member URLs (slb_disc_url_norm), routes derived from addresses and SRV
 * targets (slb_disc_route_of, slb_disc_first_label), and rounds of
 * slb_disc_plan over answers made of the input's words, against the
 * invariants of the discovered set.
 *
 * Input: byte 0: bits 0-3 the number of option words (0..15), bit 4:
 * the srv kind (else dns), bit 5: members may be the operator's (byte 1's
 * bits say which); byte 1: the operator bits; then NUL-separated words:
 * the target, the option words, then entries as triples (url, route or
 * "-" to derive one, loadfactor as its first byte), an empty word ending
 * one answer (a round, each 7 s later than the last; up to 6 rounds).
 */
#include "fuzz_common.h"

#include <apr_strings.h>

#include "stickylb_codec.h"
#include "stickylb_discover.h"

#define MAXW 96
#define CAP 6

static int lower_ok(const char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            return 0;
        }
    }
    return 1;
}

static void check_url(apr_pool_t *p, const char *w)
{
    const char *why = NULL, *host = NULL, *u, *again, *r;
    int port = 0;

    u = slb_disc_url_norm(p, w, &why, &host, &port);
    if (u == NULL) {
        FZ_CHECK(why != NULL);
        return;
    }
    FZ_CHECK(strlen(u) < SLB_DISC_URL_MAX);
    FZ_CHECK(port >= 1 && port <= 65535);
    FZ_CHECK(host != NULL && *host != '\0' && lower_ok(host));
    FZ_CHECK(strstr(u, "://") != NULL && strchr(u, '?') == NULL
             && strchr(u, '@') == NULL);
    FZ_CHECK(u[strlen(u) - 1] != '/');
    /* normalised once is normalised */
    again = slb_disc_url_norm(p, u, &why, NULL, NULL);
    FZ_CHECK(again != NULL && !strcmp(again, u));
    r = slb_disc_route_of(p, "p-", host);
    FZ_CHECK(r == NULL || (slb_route_ok(r, strlen(r)) && !strchr(r, '.')
                           && !strchr(r, ':') && !strncmp(r, "p-", 2)));
}

static void check_label(apr_pool_t *p, const char *w)
{
    const char *l = slb_disc_first_label(p, w), *s;

    if (l == NULL) {
        return;
    }
    FZ_CHECK(*l != '\0' && strlen(l) <= SLB_MAX_ROUTE_LEN);
    FZ_CHECK(strlen(l) <= strlen(w) && !strncasecmp(l, w, strlen(l)));
    for (s = l; *s; s++) {
        FZ_CHECK((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')
                 || *s == '-' || *s == '_');
    }
    FZ_CHECK(slb_route_ok(l, strlen(l)));
}

static void check_conf(const slb_disc_conf *c, apr_table_t *rest)
{
    const apr_array_header_t *arr = apr_table_elts(rest);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;

    FZ_CHECK(c->min_interval <= c->interval
             && c->interval <= c->max_interval);
    FZ_CHECK(c->min_interval >= apr_time_from_msec(100));
    FZ_CHECK(c->backoff_max >= c->min_interval);
    FZ_CHECK(c->grace >= 0 && c->wait >= 0 && c->flap_hold >= 0);
    FZ_CHECK(c->flap_limit >= 0 && c->flap_limit <= 1000);
    FZ_CHECK(c->loadfactor >= 1 && c->loadfactor <= 100);
    FZ_CHECK(c->route_prefix != NULL && strlen(c->route_prefix) <= 32);
    for (i = 0; i < arr->nelts; i++) {
        FZ_CHECK(*e[i].key != '\0' && lower_ok(e[i].key)
                 && strchr(e[i].key, '=') == NULL);
    }
    /* the next fetch stays within the bounds, whatever the TTL */
    for (i = 0; i < 40; i += 7) {
        apr_interval_time_t n = slb_disc_next(c, SLB_DISC_FAILED, 0, i + 1);
        FZ_CHECK(n >= c->min_interval && n <= c->backoff_max);
        n = slb_disc_next(c, SLB_DISC_OK, apr_time_from_sec(i * 1000), 0);
        FZ_CHECK(i == 0 ? n == c->interval
                        : n >= c->min_interval && n <= c->max_interval);
    }
}

/* the discovered set after a round (the glue's part done) */
static void check_set(apr_pool_t *p, const slb_disc_member *set,
                      int strict)
{
    int i, j;

    for (i = 0; i < CAP; i++) {
        const slb_disc_member *m = &set[i];
        const char *why, *u;

        if (m->state == SLB_DM_FREE) {
            continue;
        }
        FZ_CHECK(m->state <= SLB_DM_GONE);
        FZ_CHECK((m->owned & ~(SLB_DISC_F_DRAIN | SLB_DISC_F_DISABLE)) == 0);
        FZ_CHECK(m->loadfactor >= 1 && m->loadfactor <= 100);
        u = slb_disc_url_norm(p, m->url, &why, NULL, NULL);
        FZ_CHECK(u != NULL && !strcmp(u, m->url));
        FZ_CHECK(m->route[0] == '\0'
                 || slb_route_ok(m->route, strlen(m->route)));
        FZ_CHECK(m->route[0] != '\0' || m->state == SLB_DM_GONE);
        if (strict) {
            FZ_CHECK(m->state != SLB_DM_ACTIVE || m->owned == 0);
            FZ_CHECK(m->state != SLB_DM_LEAVING
                     || (m->owned & SLB_DISC_F_DRAIN));
            FZ_CHECK(m->state != SLB_DM_HELD
                     || (m->owned & SLB_DISC_F_DRAIN));
            FZ_CHECK(m->state != SLB_DM_GONE
                     || (m->owned & SLB_DISC_F_DISABLE));
        }
        for (j = i + 1; j < CAP; j++) {
            if (set[j].state == SLB_DM_FREE) {
                continue;
            }
            FZ_CHECK(strcmp(set[j].url, m->url) != 0);
            FZ_CHECK(m->route[0] == '\0'
                     || strcmp(set[j].route, m->route) != 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *w[MAXW];
    int nw, nopt, i, k, round, strict;
    unsigned flags, opbits;
    slb_disc_conf c;
    apr_table_t *rest;
    const char *err;
    slb_disc_member set[CAP];
    apr_array_header_t *fixed;
    int free_slots = 4;
    apr_time_t now = apr_time_from_sec(1700000000);

    if (size < 2) {
        return 0;
    }
    flags = data[0];
    opbits = data[1];
    nw = fz_split(data + 2, size - 2, w, MAXW);
    nopt = (int)(flags & 15);
    if (nopt > nw - 1) {
        nopt = nw - 1;
    }
    strict = !(flags & 32);

    /* the directive's options, then the kind's create() */
    rest = apr_table_make(p, 4);
    err = slb_disc_conf_parse(p, &c, nopt, (const char *const *)w + 1, rest);
    if (err == NULL) {
        void *st = NULL;
        const slb_disc_source_ops *ops = (flags & 16) ? &slb_srv_ops
                                                      : &slb_dns_ops;
        check_conf(&c, rest);
        err = ops->create(p, w[0], rest, &st);
        FZ_CHECK(err != NULL || st != NULL);
        FZ_CHECK(err == NULL || *err != '\0');
    }
    else {
        FZ_CHECK(*err != '\0');
        slb_disc_conf_init(&c);
    }
    c.grace = apr_time_from_sec(10);
    c.flap_hold = apr_time_from_sec(10);

    for (i = 0; i < nw; i++) {
        check_url(p, w[i]);
        check_label(p, w[i]);
    }

    /* rounds of answers */
    memset(set, 0, sizeof(set));
    fixed = apr_array_make(p, 1, sizeof(slb_disc_entry));
    {
        slb_disc_entry *f = apr_array_push(fixed);
        f->url = "http://192.0.2.1:80";
        f->route = "fixed";
    }
    i = 1 + nopt;
    for (round = 0; round < 6 && i <= nw; round++) {
        apr_array_header_t *entries = NULL, *actions, *notes;
        slb_disc_counts n;
        int adds = 0;

        if (i < nw) {
            entries = apr_array_make(p, 4, sizeof(slb_disc_entry));
            while (i + 2 < nw && *w[i]) {
                slb_disc_entry *e = apr_array_push(entries);
                e->url = w[i];
                e->route = strcmp(w[i + 1], "-") ? w[i + 1] : NULL;
                e->loadfactor = (unsigned char)w[i + 2][0] % 110;
                e->origin = "fuzz";
                i += 3;
            }
            i++;         /* the empty word ending the answer */
        }
        else {
            i++;         /* a round without news */
        }
        for (k = 0; k < CAP; k++) {
            set[k].operator_off = !strict && (opbits >> k & 1);
        }
        actions = apr_array_make(p, 8, sizeof(slb_disc_action));
        notes = apr_array_make(p, 4, sizeof(const char *));
        slb_disc_plan(p, &c, set, CAP, entries, fixed, free_slots, now,
                      actions, &n, notes);
        FZ_CHECK(n.malformed == notes->nelts);
        for (k = 0; k < actions->nelts; k++) {
            const slb_disc_action *a = &APR_ARRAY_IDX(actions, k,
                                                      slb_disc_action);
            FZ_CHECK(a->member >= 0 && a->member < CAP);
            FZ_CHECK(a->kind >= SLB_DA_ADD && a->kind <= SLB_DA_DISABLE);
            FZ_CHECK(set[a->member].state != SLB_DM_FREE);
            if (a->kind == SLB_DA_ADD) {
                adds++;
                FZ_CHECK(strcmp(set[a->member].route, "fixed") != 0);
            }
            else if (a->kind == SLB_DA_ENABLE) {
                FZ_CHECK(a->flags != 0
                         && (a->flags & ~(SLB_DISC_F_DRAIN
                                          | SLB_DISC_F_DISABLE)) == 0);
            }
        }
        FZ_CHECK(adds == n.added && adds <= free_slots);
        free_slots -= adds;
        check_set(p, set, strict);
        now += apr_time_from_sec(7);
    }
    fz_end();
    return 0;
}
