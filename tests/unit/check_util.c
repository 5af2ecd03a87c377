/*
 * check_util.c - what the suites that run real servers (check_mc.c:
 * memcached, check_etcd.c: etcd) share: a free loopback port, and a child
 * process that dies with the test process.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "check_stickylb.h"

int ck_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(s, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

pid_t ck_fork_server(void)
{
    pid_t parent = getpid(), pid;

    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
#ifdef __linux__
    if (pid == 0) {
        /* dies with the test process, even one killed by a failure */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
    }
#endif
    (void)parent;
    return pid;
}
