/*
 * stickylb_probe.c - active health probes (see stickylb_probe.h).
 */
#include <string.h>
#include <stdlib.h>
#include <errno.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_file_io.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "stickylb_probe.h"
#include "stickylb_codec.h"
#include "stickylb_conf.h"

void slb_probe_conf_init(slb_probe_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->kind = SLB_PROBE_NONE;
    c->method = "GET";
    c->path = "/";
    c->nranges = 1;
    c->lo[0] = 200;
    c->hi[0] = 399;
    c->interval = apr_time_from_sec(5);
    c->timeout = apr_time_from_sec(2);
    c->rise = 2;
    c->fall = 3;
    c->verify = 1;
    c->resolve = SLB_PROBE_RESOLVE_DEFAULT;
}

/* a whole number from lo to hi (slb_parse_int): 1 and *out */
static int parse_int(apr_pool_t *p, const char *v, int lo, int hi, int *out)
{
    apr_int64_t n;

    if (slb_parse_int(p, v, lo, hi, &n) != NULL) {
        return 0;
    }
    *out = (int)n;
    return 1;
}

static const char *parse_expect(apr_pool_t *p, slb_probe_conf *c,
                                const char *v)
{
    char *copy = apr_pstrdup(p, v), *tok, *last;

    c->nranges = 0;
    for (tok = apr_strtok(copy, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last)) {
        char *dash = strchr(tok, '-');
        int lo, hi;

        if (c->nranges >= SLB_PROBE_MAX_RANGES) {
            return "expect= takes at most 8 statuses or ranges";
        }
        if (dash) {
            *dash = '\0';
            if (!parse_int(p, tok, 100, 599, &lo)
                || !parse_int(p, dash + 1, 100, 599, &hi) || hi < lo) {
                return apr_psprintf(p, "expect='%s' is not a status range "
                                    "like 200-399", v);
            }
        }
        else {
            if (!parse_int(p, tok, 100, 599, &lo)) {
                return apr_psprintf(p, "expect='%s' is not a status list "
                                    "like 200,204", v);
            }
            hi = lo;
        }
        c->lo[c->nranges] = lo;
        c->hi[c->nranges] = hi;
        c->nranges++;
    }
    if (c->nranges == 0) {
        return "expect= is empty";
    }
    return NULL;
}

/* what StickyLBProbe takes after tcp or http (README's order) */
static const char *const probe_options[] = {
    "method=", "path=", "host=", "expect=", "body=", "interval=", "timeout=",
    "rise=", "fall=", "route=", "verify=", "ca=", "resolve=", NULL
};

const char *slb_probe_conf_parse(apr_pool_t *p, slb_probe_conf *c,
                                 int argc, const char *const *argv)
{
    int i;

    slb_probe_conf_init(c);
    if (argc < 1) {
        return "needs tcp, http or none";
    }
    if (!strcasecmp(argv[0], "tcp")) {
        c->kind = SLB_PROBE_TCP;
    }
    else if (!strcasecmp(argv[0], "http")) {
        c->kind = SLB_PROBE_HTTP;
    }
    else if (!strcasecmp(argv[0], "none") && argc == 1) {
        c->kind = SLB_PROBE_NONE;
        return NULL;
    }
    else {
        return apr_psprintf(p, "'%s': the first word must be tcp, http or "
                            "none", argv[0]);
    }
    for (i = 1; i < argc; i++) {
        const char *w = argv[i], *eq = strchr(w, '=');
        const char *k, *v;

        if (eq == NULL) {
            return slb_unknown_option(p, w, probe_options);
        }
        k = apr_pstrmemdup(p, w, (apr_size_t)(eq - w));
        v = eq + 1;
        if (!strcasecmp(k, "method")) {
            if (!slb_is_token(v, 20)) {
                return apr_psprintf(p, "method='%s' is not an HTTP method",
                                    v);
            }
            c->method = v;
        }
        else if (!strcasecmp(k, "path")) {
            const char *s;
            if (*v != '/') {
                return apr_psprintf(p, "path='%s' must start with '/'", v);
            }
            for (s = v; *s; s++) {
                if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
                    return apr_psprintf(p, "path='%s' holds spaces or "
                                        "control bytes", v);
                }
            }
            c->path = v;
        }
        else if (!strcasecmp(k, "host")) {
            const char *s;
            if (*v == '\0') {
                return "host= is empty";
            }
            for (s = v; *s; s++) {
                if (!apr_isalnum(*s) && !strchr(".-:[]", *s)) {
                    return apr_psprintf(p, "host='%s' is not a host name",
                                        v);
                }
            }
            c->host = v;
        }
        else if (!strcasecmp(k, "expect")) {
            const char *err = parse_expect(p, c, v);
            if (err) {
                return err;
            }
        }
        else if (!strcasecmp(k, "body")) {
            if (*v == '\0' || strlen(v) > 256) {
                return "body= must be 1 to 256 characters";
            }
            c->body = v;
        }
        else if (!strcasecmp(k, "interval")) {
            const char *err = slb_parse_duration(
                p, v, SLB_UNIT_S, apr_time_from_msec(100),
                apr_time_from_sec(3600), &c->interval);
            if (err) {
                return apr_pstrcat(p, "interval=: ", err, NULL);
            }
        }
        else if (!strcasecmp(k, "timeout")) {
            const char *err = slb_parse_duration(
                p, v, SLB_UNIT_S, apr_time_from_msec(10),
                apr_time_from_sec(3600), &c->timeout);
            if (err) {
                return apr_pstrcat(p, "timeout=: ", err, NULL);
            }
        }
        else if (!strcasecmp(k, "rise")) {
            if (!parse_int(p, v, 1, 100, &c->rise)) {
                return apr_psprintf(p, "rise='%s' must be 1 to 100", v);
            }
        }
        else if (!strcasecmp(k, "fall")) {
            if (!parse_int(p, v, 1, 100, &c->fall)) {
                return apr_psprintf(p, "fall='%s' must be 1 to 100", v);
            }
        }
        else if (!strcasecmp(k, "route")) {
            if (!slb_route_ok(v, strlen(v))) {
                return apr_psprintf(p, "route='%s' is not a route", v);
            }
            c->route = v;
        }
        else if (!strcasecmp(k, "verify")) {
            if (!strcasecmp(v, "on")) {
                c->verify = 1;
            }
            else if (!strcasecmp(v, "off")) {
                c->verify = 0;
            }
            else {
                return apr_psprintf(p, "verify='%s' must be on or off", v);
            }
            c->verify_set = 1;
        }
        else if (!strcasecmp(k, "ca")) {
            if (*v == '\0') {
                return "ca= is empty (a file of CA certificates, PEM)";
            }
            c->ca_file = v;
        }
        else if (!strcasecmp(k, "resolve")) {
            const char *err = slb_parse_duration(
                p, v, SLB_UNIT_S, 0, apr_time_from_sec(86400), &c->resolve);
            if (err) {
                return apr_pstrcat(p, "resolve=: ", err, NULL);
            }
        }
        else {
            return slb_unknown_option(p, w, probe_options);
        }
    }
    if (c->timeout > c->interval) {
        return "timeout= must not exceed interval=";
    }
    if (c->kind == SLB_PROBE_TCP && (c->body || c->host)) {
        return "body= and host= need an http probe";
    }
    if (c->kind == SLB_PROBE_TCP && (c->verify_set || c->ca_file)) {
        return "verify= and ca= need an http probe (a tcp probe only "
               "connects, also to an https:// member)";
    }
    if (c->ca_file && !c->verify) {
        return "ca= has no effect with verify=off";
    }
    return NULL;
}

int slb_probe_status_ok(const slb_probe_conf *c, int status)
{
    int i;

    for (i = 0; i < c->nranges; i++) {
        if (status >= c->lo[i] && status <= c->hi[i]) {
            return 1;
        }
    }
    return 0;
}

/* memmem for a possibly binary buffer */
static int contains(const char *buf, apr_size_t len, const char *needle)
{
    apr_size_t n = strlen(needle), i;

    if (n == 0 || n > len) {
        return n == 0;
    }
    for (i = 0; i + n <= len; i++) {
        if (buf[i] == needle[0] && memcmp(buf + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

int slb_probe_judge_http(const slb_probe_conf *c, const char *buf,
                         apr_size_t len, int eof, const char **why)
{
    const char *eol, *body;
    int status = 0, i;

    eol = memchr(buf, '\n', len);
    if (eol == NULL) {
        if (eof || len >= SLB_PROBE_READ_MAX) {
            *why = "no HTTP status line";
            return 0;
        }
        return -1;
    }
    /* "HTTP/1.x NNN ..." */
    if (len < 12 || memcmp(buf, "HTTP/", 5) != 0) {
        *why = "not an HTTP response";
        return 0;
    }
    for (i = 0; i < (int)len && buf[i] != ' '; i++) {
    }
    if (i + 4 > (int)len || !apr_isdigit(buf[i + 1])
        || !apr_isdigit(buf[i + 2]) || !apr_isdigit(buf[i + 3])) {
        *why = "bad HTTP status line";
        return 0;
    }
    status = (buf[i + 1] - '0') * 100 + (buf[i + 2] - '0') * 10
             + (buf[i + 3] - '0');
    if (!slb_probe_status_ok(c, status)) {
        *why = "unexpected status";
        return 0;
    }
    if (c->body == NULL) {
        return 1;
    }
    body = NULL;
    for (i = 0; i + 3 < (int)len; i++) {
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            body = buf + i + 4;
            break;
        }
    }
    if (body && contains(body, len - (apr_size_t)(body - buf), c->body)) {
        return 1;
    }
    if (eof || len >= SLB_PROBE_READ_MAX) {
        *why = "body does not match";
        return 0;
    }
    return -1;
}

const char *slb_probe_request(apr_pool_t *p, const slb_probe_conf *c,
                              const char *default_host)
{
    return apr_pstrcat(p, c->method, " ", c->path, " HTTP/1.0\r\nHost: ",
                       c->host ? c->host : default_host,
                       "\r\nUser-Agent: mod_stickylb-probe\r\n"
                       "Connection: close\r\n\r\n", NULL);
}


/* ------------------------------------------------------------------ */
/* TLS                                                                  */

int slb_probe_scheme_tls(const char *scheme)
{
    return scheme && (!strcasecmp(scheme, "https")
                      || !strcasecmp(scheme, "wss")
                      || !strcasecmp(scheme, "h2"));
}

/* a host without its port and brackets ("" for none) */
static const char *host_only(apr_pool_t *p, const char *h)
{
    const char *colon;

    if (h == NULL) {
        return "";
    }
    if (*h == '[') {
        /* [v6] or [v6]:port */
        const char *end = strchr(h, ']');
        return end ? apr_pstrmemdup(p, h + 1, (apr_size_t)(end - h - 1))
                   : h + 1;
    }
    colon = strchr(h, ':');
    if (colon && strchr(colon + 1, ':') == NULL) {
        /* name:port (a bare IPv6 literal has several colons) */
        return apr_pstrmemdup(p, h, (apr_size_t)(colon - h));
    }
    return h;
}

const char *slb_probe_tls_name(apr_pool_t *p, const slb_probe_conf *c,
                               const char *member_host)
{
    const char *out = c->host ? host_only(p, c->host) : "";

    if (*out == '\0') {
        out = host_only(p, member_host);
    }
    return *out ? out : NULL;
}

int slb_probe_is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return name && (inet_pton(AF_INET, name, buf) == 1
                    || inet_pton(AF_INET6, name, buf) == 1);
}

static apr_status_t ctx_cleanup(void *data)
{
    SSL_CTX_free(data);
    return APR_SUCCESS;
}

/* the reason of the last OpenSSL error, "" when none (clears the queue) */
static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "";
}

SSL_CTX *slb_probe_tls_ctx(apr_pool_t *p, const slb_probe_conf *c,
                           const char **err)
{
    SSL_CTX *ctx;

    *err = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        *err = apr_pstrcat(p, "cannot create a TLS context: ",
                           openssl_reason(), NULL);
        return NULL;
    }
    apr_pool_cleanup_register(p, ctx, ctx_cleanup, apr_pool_cleanup_null);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* a member that closes without close_notify after its answer: the
     * answer is judged as read (the plain probe does the same) */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* no session cache: every probe is a full handshake, so every probe
     * verifies the member's certificate */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (!c->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (c->ca_file) {
        apr_file_t *f;
        apr_status_t rv = apr_file_open(&f, c->ca_file, APR_FOPEN_READ,
                                        APR_OS_DEFAULT, p);
        if (rv != APR_SUCCESS) {
            char buf[120];
            *err = apr_psprintf(p, "ca=%s: cannot read it (%s)", c->ca_file,
                                apr_strerror(rv, buf, sizeof(buf)));
            return NULL;
        }
        apr_file_close(f);
        if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
            const char *r = openssl_reason();
            *err = apr_psprintf(p, "ca=%s: no CA certificate could be read "
                                "from it (a PEM file of certificates%s%s)",
                                c->ca_file, *r ? ": " : "", r);
            return NULL;
        }
    }
    else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        *err = apr_pstrcat(p, "cannot load the system's CA store: ",
                           openssl_reason(), NULL);
        return NULL;
    }
    ERR_clear_error();
    return ctx;
}

const char *slb_probe_tls_reason(apr_pool_t *p, const char *what,
                                 int ssl_error, unsigned long err_code,
                                 long verify_result, int sys_errno)
{
    const char *r;

    /* the error strings (loaded once; done already by any SSL_CTX_new) */
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS
                     | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
    if (verify_result != X509_V_OK) {
        return apr_psprintf(p, "%s: certificate verify failed (%s)", what,
                            X509_verify_cert_error_string(verify_result));
    }
    switch (ssl_error) {
    case SSL_ERROR_SSL:
        r = err_code ? ERR_reason_error_string(err_code) : NULL;
        return r ? apr_pstrcat(p, what, ": ", r, NULL)
                 : apr_psprintf(p, "%s: error %lx", what, err_code);
    case SSL_ERROR_SYSCALL:
    case SSL_ERROR_ZERO_RETURN:
        if (ssl_error == SSL_ERROR_SYSCALL && sys_errno != 0) {
            char buf[120];
            return apr_pstrcat(p, what, ": ",
                               apr_strerror(sys_errno, buf, sizeof(buf)),
                               NULL);
        }
        return apr_pstrcat(p, what, ": connection closed by the member",
                           NULL);
    default:
        return apr_psprintf(p, "%s: error %d", what, ssl_error);
    }
}

/* ------------------------------------------------------------------ */
/* name resolution                                                      */

int slb_probe_resolve_due(apr_time_t last, apr_interval_time_t every,
                          apr_time_t now)
{
    if (last == 0) {
        return 1;
    }
    if (every <= 0) {
        return 0;
    }
    /* a clock stepped back: due, and counted from now on */
    return now - last >= every || now < last;
}

/* ------------------------------------------------------------------ */
/* agent checks                                                         */

/* what StickyLBAgent takes after http (README's order) */
static const char *const agent_options[] = {
    "path=", "host=", "header=", "interval=", "timeout=", "route=",
    "verify=", "ca=", "resolve=", NULL
};

const char *slb_agent_conf_parse(apr_pool_t *p, slb_probe_conf *c,
                                 int argc, const char *const *argv)
{
    const char **pass;
    const char *header = NULL, *err;
    int i, n = 0;

    if (argc < 1) {
        return "needs http or none";
    }
    if (!strcasecmp(argv[0], "none") && argc > 1) {
        return "none takes no option";
    }
    if (strcasecmp(argv[0], "http") && strcasecmp(argv[0], "none")) {
        return apr_psprintf(p, "'%s': the first word must be http or none "
                            "(an agent is asked over HTTP)", argv[0]);
    }
    pass = apr_pcalloc(p, sizeof(*pass) * (apr_size_t)(argc + 1));
    for (i = 0; i < argc; i++) {
        const char *w = argv[i], *eq = strchr(w, '=');
        int j, known = 0;

        if (i == 0) {
            pass[n++] = w;
            continue;
        }
        if (eq == NULL) {
            return slb_unknown_option(p, w, agent_options);
        }
        if (!strncasecmp(w, "header=", 7)) {
            const char *v = w + 7;
            if (!slb_is_token(v, 64)) {
                return apr_psprintf(p, "header='%s' is not a header name",
                                    v);
            }
            header = v;
            continue;
        }
        for (j = 0; agent_options[j]; j++) {
            known |= !strncasecmp(w, agent_options[j],
                                  strlen(agent_options[j]));
        }
        if (!known) {
            return slb_unknown_option(p, w, agent_options);
        }
        pass[n++] = w;
    }
    err = slb_probe_conf_parse(p, c, n, pass);
    if (err) {
        return err;
    }
    c->agent = 1;
    c->header = header;
    return NULL;
}

/* [s, s + n) up to a NUL, its blanks at both ends trimmed, into out (at
 * most max - 1 bytes: cut before trimming) */
static void copy_trimmed(char *out, apr_size_t max, const char *s,
                         apr_size_t n)
{
    const char *nul = memchr(s, '\0', n);

    if (nul) {
        n = (apr_size_t)(nul - s);
    }
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (n > max - 1) {
        n = max - 1;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'
                     || s[n - 1] == '\r')) {
        n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

int slb_agent_judge(const slb_probe_conf *c, const char *buf,
                    apr_size_t len, int eof, const char **why,
                    char *answer)
{
    slb_probe_conf status_only = *c;
    const char *end = NULL, *body, *eol;
    apr_size_t i, hlen = c->header ? strlen(c->header) : 0;
    int v;

    status_only.body = NULL;
    v = slb_probe_judge_http(&status_only, buf, len, eof, why);
    if (v != 1) {
        return v;
    }
    for (i = 0; i + 3 < len; i++) {
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i + 2;  /* the headers' last CRLF */
            break;
        }
    }
    if (end == NULL) {
        if (eof || len >= SLB_PROBE_READ_MAX) {
            *why = "truncated response headers";
            return 0;
        }
        return -1;
    }
    if (c->header) {
        const char *h = memchr(buf, '\n', (apr_size_t)(end - buf));
        /* each header line after the status line */
        while (h && h + 1 < end) {
            const char *line = h + 1;
            const char *nl = memchr(line, '\n', (apr_size_t)(end - line));
            if (nl == NULL) {
                break;
            }
            if ((apr_size_t)(nl - line) > hlen && line[hlen] == ':'
                && !strncasecmp(line, c->header, hlen)) {
                copy_trimmed(answer, SLB_AGENT_ANSWER_MAX, line + hlen + 1,
                             (apr_size_t)(nl - line) - hlen - 1);
                if (*answer == '\0') {
                    *why = "empty agent header";
                    return 0;
                }
                return 1;
            }
            h = nl;
        }
        *why = "no agent header in the response";
        return 0;
    }
    body = end + 2;
    eol = memchr(body, '\n', len - (apr_size_t)(body - buf));
    if (eol == NULL && !eof && len < SLB_PROBE_READ_MAX) {
        return -1;
    }
    copy_trimmed(answer, SLB_AGENT_ANSWER_MAX, body,
                 eol ? (apr_size_t)(eol - body)
                     : len - (apr_size_t)(body - buf));
    if (*answer == '\0') {
        *why = "empty agent answer";
        return 0;
    }
    return 1;
}

const char *slb_agent_parse(apr_pool_t *p, const char *text,
                            slb_agent_answer *a)
{
    char *copy = apr_pstrdup(p, text), *hash, *tok, *last;
    int known = 0;

    a->state = SLB_AGENT_NONE;
    a->weight = -1;
    hash = strchr(copy, '#');
    if (hash) {
        *hash = '\0';
    }
    for (tok = apr_strtok(copy, ", \t\r\n", &last); tok;
         tok = apr_strtok(NULL, ", \t\r\n", &last)) {
        apr_size_t n = strlen(tok);

        if (!strcasecmp(tok, "up") || !strcasecmp(tok, "ready")) {
            a->state = SLB_AGENT_UP;
        }
        else if (!strcasecmp(tok, "drain")) {
            a->state = SLB_AGENT_DRAIN;
        }
        else if (!strcasecmp(tok, "maint")) {
            a->state = SLB_AGENT_MAINT;
        }
        else if (!strcasecmp(tok, "down") || !strcasecmp(tok, "failed")
                 || !strcasecmp(tok, "stopped")) {
            a->state = SLB_AGENT_DOWN;
        }
        else if (n >= 2 && n <= 8 && tok[n - 1] == '%') {
            apr_size_t i;
            int w = 0;
            for (i = 0; i + 1 < n && apr_isdigit(tok[i]); i++) {
                w = w * 10 + (tok[i] - '0');
            }
            if (i + 1 != n) {
                continue;       /* "x%": not a weight */
            }
            a->weight = w > 100 ? 100 : w;
        }
        else {
            continue;
        }
        known = 1;
    }
    if (!known) {
        return apr_psprintf(p, "no state or weight in the answer '%s' "
                            "(up, ready, drain, maint, down, stopped, N%%)",
                            text);
    }
    return NULL;
}

void slb_agent_merge(slb_agent_answer *cur, const slb_agent_answer *a)
{
    if (a->state != SLB_AGENT_NONE) {
        cur->state = a->state;
    }
    if (a->weight >= 0) {
        cur->weight = a->weight;
    }
    else if (a->state == SLB_AGENT_UP) {
        cur->weight = 100;
    }
}

const char *slb_agent_state_name(slb_agent_state st)
{
    switch (st) {
    case SLB_AGENT_UP:
        return "up";
    case SLB_AGENT_DRAIN:
        return "drain";
    case SLB_AGENT_MAINT:
        return "maint";
    case SLB_AGENT_DOWN:
        return "down";
    default:
        return "none";
    }
}

unsigned slb_agent_want(const slb_agent_answer *cur)
{
    unsigned f = 0;

    switch (cur->state) {
    case SLB_AGENT_DRAIN:
        f |= SLB_AGENT_F_DRAIN;
        break;
    case SLB_AGENT_MAINT:
        f |= SLB_AGENT_F_MAINT;
        break;
    case SLB_AGENT_DOWN:
        f |= SLB_AGENT_F_DOWN;
        break;
    default:
        break;
    }
    if (cur->weight == 0) {
        f |= SLB_AGENT_F_DRAIN;
    }
    return f;
}

unsigned slb_agent_apply(unsigned want, unsigned current, unsigned *owned)
{
    unsigned bit;

    for (bit = 1; bit & SLB_AGENT_F_ALL; bit <<= 1) {
        if (want & bit) {
            if (!(current & bit)) {
                current |= bit;
                *owned |= bit;
            }
        }
        else if (*owned & bit) {
            if (current & bit) {
                current &= ~bit;
            }
            *owned &= ~bit;
        }
    }
    return current;
}

/* ------------------------------------------------------------------ */
/* the batch runner                                                     */

typedef enum { ST_CONNECT, ST_HANDSHAKE, ST_SEND, ST_READ, ST_DONE }
    probe_state;

typedef struct {
    slb_probe *pr;
    apr_pool_t *p;               /* the batch's: failure reasons */
    apr_pool_t *sp;              /* the socket's own pool: closing it costs
                                  * O(1), not a walk of the batch pool */
    apr_socket_t *sock;
    SSL *ssl;                    /* TLS probes, once connected */
    apr_pollfd_t pfd;
    probe_state st;
    apr_time_t start, deadline;
    apr_size_t sent, got;
    char buf[SLB_PROBE_READ_MAX];
} run_t;

static void finish(apr_pollset_t *ps, run_t *r, int ok, const char *why)
{
    if (r->st == ST_DONE) {
        return;
    }
    if (r->ssl) {
        /* no close_notify: the connection is dropped either way */
        SSL_free(r->ssl);
        r->ssl = NULL;
    }
    if (r->sock) {
        apr_pollset_remove(ps, &r->pfd);
        apr_socket_close(r->sock);
        r->sock = NULL;
    }
    if (r->sp) {
        apr_pool_destroy(r->sp);
        r->sp = NULL;
    }
    r->st = ST_DONE;
    r->pr->ok = ok;
    r->pr->why = ok ? NULL : why;
    r->pr->latency = apr_time_now() - r->start;
}

static void want(apr_pollset_t *ps, run_t *r, apr_int16_t events)
{
    if (r->pfd.reqevents == events) {
        return;
    }
    apr_pollset_remove(ps, &r->pfd);
    r->pfd.reqevents = events;
    apr_pollset_add(ps, &r->pfd);
}

static int connect_error(apr_socket_t *s)
{
    apr_os_sock_t fd;
    int err = 0;
    socklen_t len = sizeof(err);

    if (apr_os_sock_get(&fd, s) != APR_SUCCESS
        || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return -1;
    }
    return err;
}

/* The SSL of a connected TLS probe: SNI, the name to verify.  NULL and
 * *why when OpenSSL refuses. */
static SSL *tls_start(run_t *r, const char **why)
{
    const slb_probe *pr = r->pr;
    const char *name = pr->tls_name;
    apr_os_sock_t fd;
    SSL *ssl;

    ERR_clear_error();
    if (apr_os_sock_get(&fd, r->sock) != APR_SUCCESS
        || (ssl = SSL_new(pr->tls)) == NULL) {
        *why = "TLS setup failed";
        return NULL;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        *why = "TLS setup failed";
        return NULL;
    }
    if (name) {
        int ip = slb_probe_is_ip_literal(name), ok = 1;

        if (!ip) {
            ok = SSL_set_tlsext_host_name(ssl, name) == 1;
        }
        if (ok && (SSL_CTX_get_verify_mode(pr->tls) & SSL_VERIFY_PEER)) {
            if (ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                                   name) == 1;
            }
            else {
                SSL_set_hostflags(ssl,
                                  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(ssl, name) == 1;
            }
        }
        if (!ok) {
            SSL_free(ssl);
            ERR_clear_error();
            *why = "TLS setup failed: the name to verify is refused";
            return NULL;
        }
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* After an SSL call returned rc: 1 when it is to be retried once the
 * socket is ready (the pollset set for it), else 0 and *e its error. */
static int tls_retry(apr_pollset_t *ps, run_t *r, int rc, int *e)
{
    *e = SSL_get_error(r->ssl, rc);
    if (*e == SSL_ERROR_WANT_READ) {
        want(ps, r, APR_POLLIN);
        return 1;
    }
    if (*e == SSL_ERROR_WANT_WRITE) {
        want(ps, r, APR_POLLOUT);
        return 1;
    }
    return 0;
}

static void tls_fail(apr_pollset_t *ps, run_t *r, const char *what, int e,
                     int sys_errno, int handshake)
{
    long vr = handshake ? SSL_get_verify_result(r->ssl) : X509_V_OK;
    const char *why = slb_probe_tls_reason(r->p, what, e,
                                           ERR_peek_last_error(), vr,
                                           sys_errno);
    ERR_clear_error();
    finish(ps, r, 0, why);
}

/* One read into the buffer: 1 (bytes read, or eof set), 0 (wait for the
 * socket), -1 (failed: finished). */
static int read_some(apr_pollset_t *ps, run_t *r, apr_size_t *n, int *eof)
{
    apr_status_t rv;

    if (r->ssl) {
        int rc, e, sys;

        ERR_clear_error();
        errno = 0;
        rc = SSL_read(r->ssl, r->buf + r->got, (int)*n);
        sys = errno;
        if (rc > 0) {
            *n = (apr_size_t)rc;
            return 1;
        }
        *n = 0;
        if (tls_retry(ps, r, rc, &e)) {
            return 0;
        }
        if (e == SSL_ERROR_ZERO_RETURN
            || (e == SSL_ERROR_SYSCALL && sys == 0)) {
            *eof = 1;
            return 1;
        }
        tls_fail(ps, r, "TLS receive failed", e, sys, 0);
        return -1;
    }
    rv = apr_socket_recv(r->sock, r->buf + r->got, n);
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return 0;
    }
    if (rv == APR_EOF || *n == 0) {
        *eof = 1;
    }
    else if (rv != APR_SUCCESS) {
        finish(ps, r, 0, "receive failed");
        return -1;
    }
    return 1;
}

static void step(apr_pollset_t *ps, run_t *r, apr_int16_t rtn)
{
    const slb_probe_conf *c = r->pr->conf;
    apr_status_t rv;

    if (r->st == ST_CONNECT) {
        if (connect_error(r->sock) != 0) {
            finish(ps, r, 0, "connect failed");
            return;
        }
        if (c->kind == SLB_PROBE_TCP) {
            finish(ps, r, 1, NULL);
            return;
        }
        if (r->pr->tls) {
            const char *why = NULL;
            r->ssl = tls_start(r, &why);
            if (r->ssl == NULL) {
                finish(ps, r, 0, why);
                return;
            }
            r->st = ST_HANDSHAKE;
        }
        else {
            r->st = ST_SEND;
        }
    }
    if (r->st == ST_HANDSHAKE) {
        int rc, e, sys;

        ERR_clear_error();
        errno = 0;
        rc = SSL_do_handshake(r->ssl);
        sys = errno;
        if (rc != 1) {
            if (!tls_retry(ps, r, rc, &e)) {
                tls_fail(ps, r, "TLS handshake failed", e, sys, 1);
            }
            return;
        }
        r->st = ST_SEND;
    }
    if (r->st == ST_SEND) {
        apr_size_t total = strlen(r->pr->request);
        apr_size_t n = total - r->sent;

        if (r->ssl) {
            int rc, e, sys;

            ERR_clear_error();
            errno = 0;
            rc = SSL_write(r->ssl, r->pr->request + r->sent, (int)n);
            sys = errno;
            if (rc <= 0) {
                if (!tls_retry(ps, r, rc, &e)) {
                    tls_fail(ps, r, "TLS send failed", e, sys, 0);
                }
                return;
            }
            n = (apr_size_t)rc;
        }
        else {
            rv = apr_socket_send(r->sock, r->pr->request + r->sent, &n);
            if (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) {
                finish(ps, r, 0, "send failed");
                return;
            }
        }
        r->sent += n;
        if (r->sent < total) {
            want(ps, r, APR_POLLOUT);
            return;
        }
        r->st = ST_READ;
        want(ps, r, APR_POLLIN);
        if (r->ssl == NULL) {
            return;
        }
        /* TLS: the answer may be buffered already; else SSL_read says
         * what to wait for */
        rtn = APR_POLLIN;
    }
    /* TLS: a read may wait for the socket to be writable (renegotiation) */
    if (r->st == ST_READ
        && (r->ssl || (rtn & (APR_POLLIN | APR_POLLHUP | APR_POLLERR)))) {
        for (;;) {
            apr_size_t n = sizeof(r->buf) - r->got;
            const char *why = NULL;
            int verdict, eof = 0;

            if (n == 0) {
                eof = 1;
            }
            else {
                int got = read_some(ps, r, &n, &eof);
                if (got <= 0) {
                    return;
                }
                r->got += n;
            }
            verdict = c->agent
                          ? slb_agent_judge(c, r->buf, r->got, eof, &why,
                                            r->pr->answer)
                          : slb_probe_judge_http(c, r->buf, r->got, eof,
                                                 &why);
            if (verdict >= 0) {
                finish(ps, r, verdict, why);
                return;
            }
            if (eof) {
                finish(ps, r, 0, "truncated response");
                return;
            }
            if (r->ssl) {
                /* back to reading: after a WANT_WRITE, poll for input */
                want(ps, r, APR_POLLIN);
            }
        }
    }
}

apr_status_t slb_probe_run(apr_pool_t *p, slb_probe *probes, int n)
{
    apr_pollset_t *ps;
    run_t *runs;
    int i, left = 0;
    apr_status_t rv;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    rv = apr_pollset_create(&ps, (apr_uint32_t)n, p, 0);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    runs = apr_pcalloc(p, sizeof(run_t) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        run_t *r = &runs[i];

        r->pr = &probes[i];
        r->p = p;
        r->start = apr_time_now();
        r->deadline = r->start + probes[i].conf->timeout;
        r->st = ST_CONNECT;
        apr_pool_create(&r->sp, p);
        rv = apr_socket_create(&r->sock, probes[i].addr->family, SOCK_STREAM,
                               APR_PROTO_TCP, r->sp);
        if (rv != APR_SUCCESS) {
            apr_pool_destroy(r->sp);
            r->sp = NULL;
            r->sock = NULL;
            r->st = ST_DONE;
            probes[i].ok = 0;
            probes[i].why = "no socket";
            continue;
        }
        apr_socket_opt_set(r->sock, APR_SO_NONBLOCK, 1);
        apr_socket_timeout_set(r->sock, 0);
        r->pfd.p = p;
        r->pfd.desc_type = APR_POLL_SOCKET;
        r->pfd.desc.s = r->sock;
        r->pfd.client_data = r;
        rv = apr_socket_connect(r->sock, probes[i].addr);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EINPROGRESS(rv)) {
            apr_socket_close(r->sock);
            r->sock = NULL;
            apr_pool_destroy(r->sp);
            r->sp = NULL;
            r->st = ST_DONE;
            probes[i].ok = 0;
            probes[i].why = "connect failed";
            probes[i].latency = apr_time_now() - r->start;
            continue;
        }
        r->pfd.reqevents = APR_POLLOUT;
        apr_pollset_add(ps, &r->pfd);
        left++;
    }
    while (left > 0) {
        apr_time_t now = apr_time_now(), next = 0;
        const apr_pollfd_t *out;
        apr_int32_t num = 0;

        for (i = 0; i < n; i++) {
            if (runs[i].st == ST_DONE) {
                continue;
            }
            if (runs[i].deadline <= now) {
                finish(ps, &runs[i], 0,
                       runs[i].st == ST_HANDSHAKE ? "timeout (TLS handshake)"
                                                  : "timeout");
                left--;
                continue;
            }
            if (next == 0 || runs[i].deadline < next) {
                next = runs[i].deadline;
            }
        }
        if (left <= 0) {
            break;
        }
        rv = apr_pollset_poll(ps, next - now, &num, &out);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_TIMEUP(rv)
            && !APR_STATUS_IS_EINTR(rv)) {
            break;
        }
        for (i = 0; i < num; i++) {
            run_t *r = out[i].client_data;
            if (r->st != ST_DONE) {
                step(ps, r, out[i].rtnevents);
                if (r->st == ST_DONE) {
                    left--;
                }
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (runs[i].st != ST_DONE) {
            finish(ps, &runs[i], 0, "poll failed");
        }
    }
    return APR_SUCCESS;
}
