/*
 * check_stickylb.h - Check (libcheck) suites of the mod_stickylb core.
 *
 * The code under test (stickylb_codec.c, stickylb_select.c) depends on APR
 * alone, so these tests need neither httpd nor a running balancer.
 */
#ifndef CHECK_STICKYLB_H
#define CHECK_STICKYLB_H

#include <check.h>

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

#endif /* CHECK_STICKYLB_H */
