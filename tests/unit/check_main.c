/*
 * check_main.c - runs every Check suite of mod_stickylb.
 *
 * The fork mode follows CK_FORK from the environment (Check's default is to
 * fork one process per test); CK_FORK=no is convenient under valgrind or a
 * debugger.  Exits non-zero when any test fails.
 */
#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>

#include "check_stickylb.h"

int main(void)
{
    SRunner *sr;
    int failed;
    apr_status_t rv;

    rv = apr_initialize();
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "apr_initialize failed (%d)\n", (int)rv);
        return EXIT_FAILURE;
    }

    sr = srunner_create(codec_suite());
    srunner_add_suite(sr, select_suite());
    srunner_add_suite(sr, table_suite());
    srunner_add_suite(sr, key_suite());
    srunner_add_suite(sr, mc_suite());
    srunner_add_suite(sr, sign_suite());
    srunner_add_suite(sr, conf_suite());
    srunner_add_suite(sr, tier_suite());
    srunner_add_suite(sr, probe_suite());
    srunner_add_suite(sr, passive_suite());
    srunner_add_suite(sr, discover_suite());
    srunner_add_suite(sr, etcd_suite());
    /* no srunner_set_fork_status(): CK_FORK from the environment decides */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
