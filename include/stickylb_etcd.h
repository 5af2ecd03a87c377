/*
 * stickylb_etcd.h - the etcd v3 source of member discovery (APR, libcurl
 * and jansson; no httpd).
 *
 *     StickyLBDiscover etcd http://127.0.0.1:2379 prefix=/services/web/
 *         [timeout=2] [ca=FILE] [cert=FILE key=FILE]
 *
 * The members are the keys under a prefix, read through etcd's JSON
 * gateway (POST /v3/kv/range, then /v3/watch from the revision it
 * returned).  A key names one member in either of two forms:
 *
 *   - its value is a JSON object:
 *         {"url": "http://10.0.0.5:8080", "route": "t5", "loadfactor": 1}
 *     ("route" and "loadfactor" optional; other fields are ignored);
 *   - its last path segment is host:port, any value that is not a JSON
 *     object (the form of containers registering themselves):
 *         /services/web/10.0.0.5:8080  ->  http://10.0.0.5:8080
 *     A JSON object without "url" takes its url from such a key.
 *
 * Everything else under the prefix (a value that does not parse, a URL
 * with a path, user or query, a loadfactor out of 1..100, a route that is
 * not a route, an oversize key or value, a second key for a URL or route
 * already named) is malformed: counted and skipped.
 *
 * libcurl's global initialisation (slb_etcd_global_init) is done by
 * create(), which runs while the configuration is read, in the parent,
 * before any child or thread exists: the glue has nothing to call.
 * fetch() calls it too when a caller created the state otherwise.
 */
#ifndef STICKYLB_ETCD_H
#define STICKYLB_ETCD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "stickylb_discover.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the source of kind "etcd" */
extern const slb_disc_source_ops slb_disc_etcd_ops;

/* timeout=: each request to etcd, and the bound of fetch() with wait */
#define SLB_ETCD_DEFAULT_TIMEOUT   apr_time_from_sec(2)
#define SLB_ETCD_MIN_TIMEOUT       apr_time_from_msec(100)
#define SLB_ETCD_MAX_TIMEOUT       apr_time_from_sec(60)
/* endpoints of the target, comma-separated, tried in turn */
#define SLB_ETCD_MAX_ENDPOINTS     8
/* keys under the prefix: more is an error (the set is kept), not a
 * truncated set that would drain the members left out */
#define SLB_ETCD_MAX_KEYS          1024
/* a key or a value longer than this is malformed */
#define SLB_ETCD_MAX_KEY_LEN       1024
#define SLB_ETCD_MAX_VALUE_LEN     4096
#define SLB_ETCD_MAX_PREFIX_LEN    512
/* an answer of etcd longer than this is refused (garbage) */
#define SLB_ETCD_MAX_BODY          (4 * 1024 * 1024)
/* a member's URL as httpd keeps a worker's name (PROXY_WORKER_MAX_NAME_SIZE
 * 96 with its NUL) and its host name (PROXY_WORKER_MAX_HOSTNAME_SIZE 64) */
#define SLB_ETCD_MAX_URL_LEN       95
#define SLB_ETCD_MAX_HOST_LEN      63
/* origin of an entry: its key, printable, at most this long */
#define SLB_ETCD_MAX_ORIGIN_LEN    (SLB_DISC_ORIGIN_MAX - 1)

/* Initialises libcurl once in this process (curl_global_init); APR_SUCCESS
 * or APR_EGENERAL.  Never undone: libcurl counts its users itself. */
apr_status_t slb_etcd_global_init(void);

/* What one /v3/kv/range answer holds. */
typedef struct {
    apr_array_header_t *entries;    /* slb_disc_entry: the members */
    apr_int64_t revision;           /* header.revision of the store */
    int kvs;                        /* keys in the answer, parsed or not */
    int malformed;                  /* keys skipped (counted in kvs) */
    int more;                       /* etcd holds more keys than given */
    unsigned char digest[16];       /* MD5 of every key and value, in
                                     * order: equal digests, same set */
    const char *why;                /* the first malformed key and why */
} slb_etcd_range;

/*
 * Parses the body of a /v3/kv/range answer (len bytes, no NUL needed) for
 * the keys under prefix.  NULL and *out filled, or why the body is not an
 * answer (not JSON, an etcd error, no header revision, kvs not a list);
 * malformed keys are not an error.  Allocates from p.
 */
const char *slb_etcd_parse_range(apr_pool_t *p, const char *body,
                                 apr_size_t len, const char *prefix,
                                 slb_etcd_range *out);

/*
 * One key and its value (neither NUL-terminated) as a member: NULL and *e
 * filled, or why it is malformed.  The key must start with prefix.
 */
const char *slb_etcd_parse_member(apr_pool_t *p, const char *prefix,
                                  const char *key, apr_size_t klen,
                                  const char *val, apr_size_t vlen,
                                  slb_disc_entry *e);

/*
 * A member's URL (len bytes) in the form the balancer compares:
 * "scheme://host:port", scheme and host in lower case, the scheme's port
 * when none is given, IPv6 in brackets.  Schemes: http, https, ajp, h2c,
 * h2, ws, wss.  NULL and *out, or why not.
 */
const char *slb_etcd_member_url(apr_pool_t *p, const char *url,
                                apr_size_t len, const char **out);

/* One line of a /v3/watch stream. */
typedef enum {
    SLB_ETCD_WATCH_OTHER = 0,       /* nothing to act on (progress) */
    SLB_ETCD_WATCH_CREATED,         /* the watch is in place */
    SLB_ETCD_WATCH_EVENTS,          /* a key under the prefix changed */
    SLB_ETCD_WATCH_COMPACTED,       /* the revision was compacted away */
    SLB_ETCD_WATCH_CANCELED,        /* etcd ended the watch */
    SLB_ETCD_WATCH_ERROR,           /* the gateway answered an error */
    SLB_ETCD_WATCH_GARBAGE          /* not a watch answer */
} slb_etcd_watch_msg;

/* Classifies one line (len bytes) of a watch stream; *revision: its
 * header.revision when it has one, else left alone. */
slb_etcd_watch_msg slb_etcd_parse_watch(const char *line, apr_size_t len,
                                        apr_int64_t *revision);

/* The end of the range of keys starting with prefix (len bytes): prefix
 * with its last byte below 0xff incremented and what follows cut; "\0"
 * (1 byte: every key from prefix on) when every byte is 0xff. */
const char *slb_etcd_range_end(apr_pool_t *p, const char *prefix,
                               apr_size_t len, apr_size_t *outlen);

/* The first malformed key of the last answer fetch() read and why (NULL
 * when none): for the glue's log, the source does not log itself. */
const char *slb_etcd_malformed_why(void *state);

#ifdef __cplusplus
}
#endif

#endif /* STICKYLB_ETCD_H */
