#!/usr/bin/env bash
# scripts/test.sh - the full mod_stickylb test run (what CI runs via .ci/run).
#
#   1. deps     scripts/deps.sh            (only when run as root)
#   2. build    scripts/build.sh           (skip with SLB_SKIP_BUILD=1)
#   3. unit     `make check` in the build dir: the Check unit tests
#   4. system   root only, under prove: scripts/install-test.sh (make install,
#               a2enmod stickylb, configtest with README's examples, removal)
#               scripts/deb-test.sh (the .deb built, installed, enabled,
#               configtested, purged) and tests/system/*.t (faults under
#               load, memcached black-holed with iptables)
#   5. apache   Apache::Test: perl t/TEST.PL (t/*.t)
#   6. summary  last line: "stickylb: P passed, F failed"
#
# Apache::Test refuses to run as root.  When this script runs as root, the
# suite runs as the unprivileged user $SLB_TEST_USER (default stickylb-test,
# created if missing) in a copy of the repository (and build dir) under
# /tmp/stickylb-test-XXXXXX owned by that user: the checkout itself may live
# in a directory that user cannot traverse (/root, /work, ...).  As a normal
# user the suite runs in place.
#
# Environment:
#   SLB_BUILD_DIR        build dir (default <repo>/_build)
#   SLB_SKIP_BUILD=1     do not run scripts/build.sh (use an existing build)
#   SLB_SKIP_DEPS=1      do not run scripts/deps.sh even as root
#   SLB_TEST_USER        unprivileged user for Apache::Test (root only)
#   SLB_KEEP_WORKDIR=1   keep the /tmp copy used for Apache::Test
#   SLB_TEST_ARGS        extra arguments for t/TEST.PL (e.g. "-verbose t/01_x.t")
#   SLB_TIMEOUT_{DEPS,BUILD,UNIT,APACHE}  per-phase limits in seconds
#
# Exit status: 0 only when every phase ran and nothing failed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

export SLB_BUILD_DIR=${SLB_BUILD_DIR:-$REPO/_build}
TEST_USER=${SLB_TEST_USER:-stickylb-test}
T_DEPS=${SLB_TIMEOUT_DEPS:-1500}
T_BUILD=${SLB_TIMEOUT_BUILD:-900}
T_UNIT=${SLB_TIMEOUT_UNIT:-600}
T_APACHE=${SLB_TIMEOUT_APACHE:-1800}

LOGDIR=$(mktemp -d /tmp/stickylb-logs-XXXXXX)
WORKDIR=""

PASSED=0
FAILED=0
PROBLEMS=()     # phases that failed or did not run at all

note()    { printf '\n=== %s ===\n' "$*"; }
problem() { PROBLEMS+=("$1"); echo "test.sh: PROBLEM: $1" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# kill a process by the PID in a pid file, if it is still alive and its
# command line matches $2 (guards against a recycled PID)
kill_pidfile() {
    local f=$1 want=$2 pid
    [ -f "$f" ] || return 0
    pid=$(tr -dc '0-9' < "$f" || true)
    [ -n "$pid" ] && [ "$pid" -gt 1 ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$want" || return 0
    echo "test.sh: stopping leftover pid $pid ($f)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local tdir=${APACHE_TOP:-}
    if [ -n "$tdir" ] && [ -d "$tdir/t/logs" ]; then
        kill_pidfile "$tdir/t/logs/httpd.pid" "$tdir/t/conf/httpd.conf"
        kill_pidfile "$tdir/t/logs/lb2/httpd.pid" "lb2/httpd.conf"
        kill_pidfile "$tdir/t/logs/memcached.pid" "memcached"
        for f in "$tdir"/t/logs/backend-*.pid; do
            if [ -e "$f" ]; then kill_pidfile "$f" "t/backend.pl"; fi
        done
    fi
    if [ -n "$WORKDIR" ] && [ -d "$WORKDIR" ] && [ -z "${SLB_KEEP_WORKDIR:-}" ]; then
        rm -rf "$WORKDIR"
    fi
    rm -rf "$LOGDIR"
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. deps
if is_root && [ -z "${SLB_SKIP_DEPS:-}" ]; then
    note "deps (scripts/deps.sh)"
    rc=0
    timeout -k 30 "$T_DEPS" bash scripts/deps.sh < /dev/null || rc=$?
    [ "$rc" -eq 0 ] || problem "deps.sh failed (exit $rc)"
else
    note "deps: skipped ($(is_root && echo SLB_SKIP_DEPS set || echo not root))"
fi

# ---------------------------------------------------------------- 2. build
BUILD_OK=1
if [ -z "${SLB_SKIP_BUILD:-}" ]; then
    note "build (scripts/build.sh, $SLB_BUILD_DIR)"
    rc=0
    timeout -k 30 "$T_BUILD" bash scripts/build.sh < /dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
        BUILD_OK=0
        problem "build failed (exit $rc)"
    fi
else
    note "build: skipped (SLB_SKIP_BUILD set)"
fi

# ---------------------------------------------------------------- 3. unit tests
note "unit tests (make check: Check)"
UNIT_RAN=0
if [ "$BUILD_OK" -eq 1 ] && [ -f "$SLB_BUILD_DIR/Makefile" ]; then
    # stale per-test logs would be counted again
    find "$SLB_BUILD_DIR/tests" -name '*.log' -exec rm -f {} + 2>/dev/null || true
    rc=0
    timeout -k 10 "$T_UNIT" make -C "$SLB_BUILD_DIR" -j2 check \
        > "$LOGDIR/make-check.out" 2>&1 < /dev/null || rc=$?
    cat "$LOGDIR/make-check.out"
    # automake's test driver keeps the Check output in <test>.log
    mapfile -t unit_logs < <(find "$SLB_BUILD_DIR/tests" -name '*.log' \
                                  ! -name 'test-suite.log' 2>/dev/null | sort)
    for log in "${unit_logs[@]}"; do
        echo "--- ${log#"$SLB_BUILD_DIR"/}"
        cat "$log"
        while read -r n f e; do
            UNIT_RAN=1
            PASSED=$((PASSED + n - f - e))
            FAILED=$((FAILED + f + e))
        done < <(sed -nE 's/.*[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log")
    done
    if [ "$UNIT_RAN" -eq 0 ]; then
        FAILED=$((FAILED + 1))
        problem "Check unit tests did not run (make check exit $rc)"
    elif [ "$rc" -ne 0 ]; then
        # e.g. a crash after the summary line, or a timeout
        grep -q 'Failures: [1-9]\|Errors: [1-9]' "${unit_logs[@]}" 2>/dev/null ||
            FAILED=$((FAILED + 1))
        problem "make check failed (exit $rc)"
    fi
else
    FAILED=$((FAILED + 1))
    problem "Check unit tests not run: no successful build"
fi

# ---------------------------------------------------------------- 4. install
if is_root; then
    note "system tests (prove scripts/install-test.sh scripts/deb-test.sh tests/system/*.t)"
    rc=0
    timeout -k 10 900 env SLB_DEB_NOCHECK=1 prove -v scripts/install-test.sh scripts/deb-test.sh tests/system/*.t \
        > "$LOGDIR/install.out" 2>&1 < /dev/null || rc=$?
    cat "$LOGDIR/install.out"
    in_tests=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$LOGDIR/install.out" | tail -n1)
    in_failed=$(grep -c '^not ok' "$LOGDIR/install.out" || true)
    if [ -z "$in_tests" ]; then
        FAILED=$((FAILED + 1))
        problem "system tests did not run (exit $rc)"
    else
        PASSED=$((PASSED + in_tests - in_failed))
        FAILED=$((FAILED + in_failed))
        [ "$rc" -eq 0 ] || problem "system tests failed (exit $rc)"
    fi
else
    note "system tests: skipped (need root)"
fi

# ---------------------------------------------------------------- 5. Apache::Test
note "Apache::Test (perl t/TEST.PL)"
APACHE_TOP=""
RUN_AS=()
if is_root; then
    if ! id -u "$TEST_USER" > /dev/null 2>&1; then
        echo "test.sh: creating user $TEST_USER"
        useradd --system --create-home --home-dir "/home/$TEST_USER" \
                --shell /bin/sh "$TEST_USER"
    fi
    TEST_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
    if [ -z "$TEST_HOME" ] || [ ! -d "$TEST_HOME" ]; then
        TEST_HOME=$(mktemp -d /tmp/stickylb-home-XXXXXX)
        chown "$TEST_USER:" "$TEST_HOME"
    fi
    # always a copy: robust whatever the permissions of the checkout's parents
    WORKDIR=$(mktemp -d /tmp/stickylb-test-XXXXXX)
    # (without generated Apache::Test files: they hold the checkout's paths)
    tar -C "$REPO" --exclude=./.git --exclude=./_build --exclude=./autom4te.cache \
        --exclude=./t/logs --exclude=./t/TEST --exclude=./t/SMOKE \
        --exclude='./t/conf/*.conf' --exclude=./t/conf/apache_test_config.pm \
        --exclude=./t/conf/mime.types --exclude=./t/htdocs/index.html \
        -cf - . | tar -C "$WORKDIR" -xf -
    if [ -d "$SLB_BUILD_DIR" ]; then
        mkdir -p "$WORKDIR/_build"
        cp -a "$SLB_BUILD_DIR/." "$WORKDIR/_build/"
    fi
    chown -R "$TEST_USER:" "$WORKDIR"
    chmod 0755 "$WORKDIR"
    APACHE_TOP=$WORKDIR
    RUN_AS=(runuser -u "$TEST_USER" --)
    RUN_ENV=(HOME="$TEST_HOME" USER="$TEST_USER" LOGNAME="$TEST_USER"
             SLB_BUILD_DIR="$WORKDIR/_build"
             SLB_MODULE="$WORKDIR/_build/.libs/mod_stickylb.so"
             SLB_TOP="$WORKDIR")
    echo "test.sh: running as user $TEST_USER (uid $(id -u "$TEST_USER")) in $WORKDIR"
else
    APACHE_TOP=$REPO
    RUN_ENV=(SLB_BUILD_DIR="$SLB_BUILD_DIR"
             SLB_MODULE="${SLB_MODULE:-$SLB_BUILD_DIR/.libs/mod_stickylb.so}"
             SLB_TOP="$REPO")
    echo "test.sh: running as $(id -un) in $REPO"
fi
RUN_ENV+=(PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
          APACHE_TEST_NO_STICKY_PREFERENCES=1)
[ -n "${CI:-}" ] && RUN_ENV+=(CI="$CI")
for v in SLB_T1_PORT SLB_T2_PORT SLB_T3_PORT SLB_T4_PORT APACHE_TEST_PORT \
         APACHE_TEST_STARTUP_TIMEOUT; do
    [ -n "${!v:-}" ] && RUN_ENV+=("$v=${!v}")
done

# shellcheck disable=SC2206
EXTRA_ARGS=(${SLB_TEST_ARGS:-})
rc=0
( cd "$APACHE_TOP" &&
  timeout -k 30 "$T_APACHE" "${RUN_AS[@]}" env "${RUN_ENV[@]}" \
      perl t/TEST.PL -verbose=0 "${EXTRA_ARGS[@]}" < /dev/null
) 2>&1 | tee "$LOGDIR/apache-test.out" || rc=$?

AT_OUT=$LOGDIR/apache-test.out
at_result=$(sed -nE 's/^Result: (PASS|FAIL).*/\1/p' "$AT_OUT" | tail -n1)
at_tests=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$AT_OUT" | tail -n1)
if [ -z "$at_result" ] || [ -z "$at_tests" ]; then
    FAILED=$((FAILED + 1))
    problem "Apache::Test did not run to completion (exit $rc)"
else
    # failed subtests from Test::Harness' summary table, e.g.
    #   t/01_x.t (Wstat: 256 (exited 1) Tests: 12 Failed: 2)
    at_failed=$(sed -nE 's/.*\(Wstat: .* Failed: ([0-9]+)\).*/\1/p' "$AT_OUT" |
                awk '{s += $1} END {print s + 0}')
    PASSED=$((PASSED + at_tests - at_failed))
    FAILED=$((FAILED + at_failed))
    if [ "$at_result" != PASS ] && [ "$at_failed" -eq 0 ]; then
        FAILED=$((FAILED + 1))    # a .t file died, bad plan, ...
    fi
    [ "$at_result" = PASS ] || problem "Apache::Test result: $at_result"
    [ "$rc" -eq 0 ] || [ "$at_result" != PASS ] ||
        problem "Apache::Test exited $rc after Result: PASS"
fi
if [ "$at_result" != PASS ] && [ -f "$APACHE_TOP/t/logs/error_log" ]; then
    echo "--- t/logs/error_log: last 40 lines of level warn or worse"
    grep -E '\[([a-z_]+:)?(emerg|alert|crit|error|warn)\]' "$APACHE_TOP/t/logs/error_log" |
        tail -n 40 || true
    if [ -n "$WORKDIR" ] && [ -z "${CI:-}" ]; then
        SLB_KEEP_WORKDIR=1
        echo "test.sh: kept $WORKDIR for inspection (t/logs/error_log, t/logs/backend-*.log)"
    fi
fi

# ---------------------------------------------------------------- 6. summary
note "summary"
for p in "${PROBLEMS[@]}"; do
    echo "test.sh: - $p"
done
STATUS=0
if [ "$FAILED" -ne 0 ] || [ "${#PROBLEMS[@]}" -ne 0 ]; then
    STATUS=1
    # a phase that failed without a countable test failure still fails the run
    [ "$FAILED" -ne 0 ] || FAILED=1
fi
cleanup
trap - EXIT
echo "stickylb: $PASSED passed, $FAILED failed"
exit "$STATUS"
