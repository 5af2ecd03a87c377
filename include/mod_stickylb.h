/*
 * mod_stickylb.h - private header of the httpd glue.
 */
#ifndef MOD_STICKYLB_H
#define MOD_STICKYLB_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include "stickylb_codec.h"
#include "stickylb_select.h"

/* LogLevel stickylb:trace3 works for every file of the glue */
APLOG_USE_MODULE(stickylb);

/* Tag of this module's log messages: grep for it. */
#define SLB_LOG_TAG "stickylb: "

#define SLB_UNSET (-1)

/* Per-<Proxy balancer://...> (directory-style) configuration. */
typedef struct {
    apr_array_header_t *session_cookies; /* const char *; NULL = unset */
    int session_cookies_set;
    const char *path_param;              /* "" = none */
    int path_param_set;
    int separator;                       /* SLB_UNSET or a char */
    slb_cookie_conf route_cookie;        /* name NULL = none */
    int route_cookie_set;
} slb_dir_conf;

#endif /* MOD_STICKYLB_H */
