/*
 * fuzz_probe.c - StickyLBProbe arguments (slb_probe_conf_parse, the
 * request built from them by slb_probe_request, the TLS name from host=
 * by slb_probe_tls_name) and backend responses to HTTP probes
 * (slb_probe_judge_http); StickyLBAgent arguments
 * (slb_agent_conf_parse), the answer read from a response
 * (slb_agent_judge, body line and header), its words (slb_agent_parse)
 * and the rules that apply them (slb_agent_merge, slb_agent_apply).
 *
 * Input: byte 0: bits 0-3 the number of words (0..15), bit 4 "eof";
 * then that many NUL-terminated words (argv), then the response bytes
 * (any bytes, NUL included), judged as read so far.
 */
#include "fuzz_common.h"

#include <apr_strings.h>

#include "stickylb_codec.h"
#include "stickylb_probe.h"

static void check_conf(apr_pool_t *p, const slb_probe_conf *c)
{
    const char *req, *s;
    int i, crlf = 0;

    FZ_CHECK(c->kind == SLB_PROBE_NONE || c->kind == SLB_PROBE_TCP
             || c->kind == SLB_PROBE_HTTP);
    FZ_CHECK(c->nranges >= 1 && c->nranges <= SLB_PROBE_MAX_RANGES);
    for (i = 0; i < c->nranges; i++) {
        FZ_CHECK(c->lo[i] >= 100 && c->hi[i] <= 599 && c->lo[i] <= c->hi[i]);
        FZ_CHECK(slb_probe_status_ok(c, c->lo[i]));
        FZ_CHECK(slb_probe_status_ok(c, c->hi[i]));
    }
    FZ_CHECK(!slb_probe_status_ok(c, 99) && !slb_probe_status_ok(c, 600));
    FZ_CHECK(c->interval >= apr_time_from_msec(100)
             && c->interval <= apr_time_from_sec(3600));
    FZ_CHECK(c->timeout >= apr_time_from_msec(10)
             && c->timeout <= c->interval);
    FZ_CHECK(c->rise >= 1 && c->rise <= 100);
    FZ_CHECK(c->fall >= 1 && c->fall <= 100);
    FZ_CHECK(c->route == NULL || slb_route_ok(c->route, strlen(c->route)));
    FZ_CHECK(c->body == NULL
             || (strlen(c->body) >= 1 && strlen(c->body) <= 256));
    FZ_CHECK(c->kind != SLB_PROBE_TCP || (c->body == NULL && c->host == NULL));
    /* TLS options: http probes only; ca= only while verifying */
    FZ_CHECK(c->verify == 0 || c->verify == 1);
    FZ_CHECK(c->kind != SLB_PROBE_TCP || (!c->verify_set && !c->ca_file));
    FZ_CHECK(c->ca_file == NULL || (c->verify && *c->ca_file != '\0'));
    FZ_CHECK(c->tls == NULL);
    FZ_CHECK(c->resolve >= 0 && c->resolve <= apr_time_from_sec(86400));
    if (c->kind == SLB_PROBE_HTTP) {
        const char *name = slb_probe_tls_name(p, c, "member.example");
        FZ_CHECK(name != NULL && *name != '\0');
    }
    FZ_CHECK(slb_is_token(c->method, 20));
    FZ_CHECK(c->path[0] == '/');
    for (s = c->path; *s; s++) {
        FZ_CHECK((unsigned char)*s > 0x20 && *s != 0x7f);
    }
    if (c->host) {
        FZ_CHECK(*c->host != '\0');
        for (s = c->host; *s; s++) {
            FZ_CHECK(((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
                      || (*s >= '0' && *s <= '9') || strchr(".-:[]", *s))
                     && *s != '\0');
        }
    }
    /* the request: four header lines and a blank one, nothing injected */
    req = slb_probe_request(p, c, "member.example:8080");
    FZ_CHECK(req != NULL);
    FZ_CHECK(strncmp(req, c->method, strlen(c->method)) == 0
             && req[strlen(c->method)] == ' ');
    for (s = req; *s; s++) {
        if (*s == '\n') {
            FZ_CHECK(s > req && s[-1] == '\r');
            crlf++;
        }
        else if (*s == '\r') {
            FZ_CHECK(s[1] == '\n');
        }
        else {
            FZ_CHECK((unsigned char)*s >= 0x20);
        }
    }
    FZ_CHECK(crlf == 5);
    FZ_CHECK(strlen(req) >= 4
             && strcmp(req + strlen(req) - 4, "\r\n\r\n") == 0);
}

static void check_judge(const slb_probe_conf *c, const char *buf, size_t len,
                        int eof)
{
    const char *why = NULL, *why2 = NULL, *nl;
    int r = slb_probe_judge_http(c, buf, len, eof, &why), r2;

    FZ_CHECK(r == -1 || r == 0 || r == 1);
    if (r == 0) {
        FZ_CHECK(why != NULL && *why != '\0');
    }
    if (r == -1) {
        FZ_CHECK(!eof && len < SLB_PROBE_READ_MAX);
    }
    if (r == 1) {
        size_t i;
        int status;
        FZ_CHECK(len >= 12 && memcmp(buf, "HTTP/", 5) == 0);
        nl = memchr(buf, '\n', len);
        FZ_CHECK(nl != NULL);
        for (i = 0; i < len && buf[i] != ' '; i++) {
        }
        FZ_CHECK(i + 3 < len);
        status = (buf[i + 1] - '0') * 100 + (buf[i + 2] - '0') * 10
                 + (buf[i + 3] - '0');
        FZ_CHECK(status >= 0 && status <= 999);
        FZ_CHECK(slb_probe_status_ok(c, status));
        if (c->body) {
            const char *h = fz_find(buf, len, "\r\n\r\n", 4);
            FZ_CHECK(h != NULL);
            h += 4;
            FZ_CHECK(fz_find(h, len - (size_t)(h - buf), c->body,
                             strlen(c->body)) != NULL);
        }
    }
    /* a verdict reached early does not change at the end of the stream */
    if (!eof && r != -1) {
        r2 = slb_probe_judge_http(c, buf, len, 1, &why2);
        FZ_CHECK(r2 == r);
    }
}

static void check_answer_text(apr_pool_t *p, const char *text,
                              unsigned bits)
{
    slb_agent_answer a, cur = { SLB_AGENT_UP, 100 };
    const char *err = slb_agent_parse(p, text, &a);
    unsigned want, owned = bits & 7, current = (bits >> 3) & 7, next;

    if (err) {
        FZ_CHECK(*err != '\0');
        return;
    }
    FZ_CHECK(a.state >= SLB_AGENT_NONE && a.state <= SLB_AGENT_DOWN);
    FZ_CHECK(a.weight >= -1 && a.weight <= 100);
    FZ_CHECK(a.state != SLB_AGENT_NONE || a.weight >= 0);
    slb_agent_merge(&cur, &a);
    FZ_CHECK(cur.state != SLB_AGENT_NONE);
    FZ_CHECK(cur.weight >= 0 && cur.weight <= 100);
    want = slb_agent_want(&cur);
    FZ_CHECK((want & ~SLB_AGENT_F_ALL) == 0);
    /* the agent's own flags only: what someone else set stays */
    owned &= current;
    next = slb_agent_apply(want, current, &owned);
    FZ_CHECK((next & want) == want);
    FZ_CHECK((owned & ~next) == 0);
    FZ_CHECK(((current & ~((bits & 7) & current)) & ~next) == 0);
    FZ_CHECK((next & ~current & ~want) == 0);
}

static void check_agent(apr_pool_t *p, const slb_probe_conf *c,
                        const char *buf, size_t len, int eof, unsigned bits)
{
    char answer[SLB_AGENT_ANSWER_MAX];
    const char *why = NULL;
    int r;

    FZ_CHECK(c->agent == 1 && c->body == NULL);
    FZ_CHECK(c->header == NULL || slb_is_token(c->header, 64));
    r = slb_agent_judge(c, buf, len, eof, &why, answer);
    FZ_CHECK(r == -1 || r == 0 || r == 1);
    if (r == 0) {
        FZ_CHECK(why != NULL && *why != '\0');
    }
    if (r == -1) {
        FZ_CHECK(!eof && len < SLB_PROBE_READ_MAX);
    }
    if (r == 1) {
        size_t n = strlen(answer);
        FZ_CHECK(n >= 1 && n < SLB_AGENT_ANSWER_MAX);
        FZ_CHECK(!strchr(answer, '\n'));
        FZ_CHECK(answer[0] != ' ' && answer[0] != '\t');
        FZ_CHECK(answer[n - 1] != ' ' && answer[n - 1] != '\t'
                 && answer[n - 1] != '\r');
        check_answer_text(p, answer, bits);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_begin();
    char *argv[16];
    int argc = 0, want, eof, i;
    size_t pos = 1;
    slb_probe_conf c, d;
    const char *err;
    const char *defargs[] = { "http", "expect=200,204,300-399", "body=OK" };
    char *resp;

    if (size < 1) {
        fz_end();
        return 0;
    }
    want = data[0] & 15;
    eof = (data[0] >> 4) & 1;
    while (argc < want && pos < size) {
        const uint8_t *z = memchr(data + pos, 0, size - pos);
        size_t n = z ? (size_t)(z - (data + pos)) : size - pos;
        argv[argc++] = fz_str(data + pos, n);
        pos += n + (z != NULL);
    }
    resp = fz_mem(data + pos, size - pos);

    err = slb_probe_conf_parse(p, &c, argc, (const char *const *)argv);
    if (err == NULL) {
        check_conf(p, &c);
        check_judge(&c, resp, size - pos, eof);
    }
    else {
        FZ_CHECK(*err != '\0');
    }
    err = slb_agent_conf_parse(p, &c, argc, (const char *const *)argv);
    if (err == NULL) {
        if (c.kind == SLB_PROBE_HTTP) {
            check_conf(p, &c);
            check_agent(p, &c, resp, size - pos, eof, data[0]);
        }
    }
    else {
        FZ_CHECK(*err != '\0');
    }
    {
        const char *body_args[] = { "http", "path=/agent" };
        const char *hdr_args[] = { "http", "header=X-Agent-State" };
        FZ_CHECK(slb_agent_conf_parse(p, &d, 2, body_args) == NULL);
        check_agent(p, &d, resp, size - pos, eof, data[0]);
        FZ_CHECK(slb_agent_conf_parse(p, &d, 2, hdr_args) == NULL);
        check_agent(p, &d, resp, size - pos, eof, data[0]);
        check_answer_text(p, fz_str(data + pos, size - pos), data[0]);
    }
    FZ_CHECK(slb_probe_conf_parse(p, &d, 3, defargs) == NULL);
    check_conf(p, &d);
    check_judge(&d, resp, size - pos, eof);
    /* every prefix of the response, as a probe reads it */
    for (i = 1; i < 4 && (size_t)i * 7 < size - pos; i++) {
        check_judge(&d, resp, (size_t)i * 7, 0);
    }
    /* the whole input as a response */
    check_judge(&d, fz_mem(data, size), size, eof);
    fz_end();
    return 0;
}
