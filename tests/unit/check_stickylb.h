/*
 * check_stickylb.h - Check (libcheck) suites of the mod_stickylb core.
 *
 * The code under test (stickylb_codec.c, stickylb_select.c) depends on APR
 * alone, so these tests need neither httpd nor a running balancer.
 */
#ifndef CHECK_STICKYLB_H
#define CHECK_STICKYLB_H

#include <check.h>
#include <sys/types.h>

Suite *codec_suite(void);
Suite *select_suite(void);
Suite *table_suite(void);
Suite *key_suite(void);
Suite *mc_suite(void);
Suite *sign_suite(void);
Suite *conf_suite(void);
Suite *tier_suite(void);
Suite *probe_suite(void);
Suite *passive_suite(void);
Suite *discover_suite(void);
Suite *etcd_suite(void);

/* check_util.c: for the suites that run real servers.  A port nobody
 * listens on right now on 127.0.0.1 (bind to 0, read it, close). */
int ck_free_port(void);
/* fork() after flushing stdio (asserted): in the child, which gets 0, the
 * child is killed with the test process (Linux: PR_SET_PDEATHSIG) and
 * exits at once when the test process already ended. */
pid_t ck_fork_server(void);

#endif /* CHECK_STICKYLB_H */
