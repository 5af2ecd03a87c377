#!/usr/bin/env bash
# scripts/test.sh - the full mod_stickylb test run (what CI runs via .ci/run).
#
#   1. deps     scripts/deps.sh            (only when run as root)
#   2. build    scripts/build.sh           (skip with SLB_SKIP_BUILD=1)
#   3. unit     `make check` in the build dir: the Check unit tests;
#               scripts/sanitizers.sh: the same tests under ASan, UBSan and
#               LSan; scripts/fuzz.sh: every libFuzzer target for
#               SLB_FUZZ_SECONDS (default 7) seconds
#   4. system   root only: scripts/install-test.sh (make install, a2enmod
#               stickylb, configtest with README's examples, removal),
#               scripts/deb-test.sh (the source package and the .deb
#               built, lintian --pedantic clean, installed, enabled,
#               configtested, purged) and tests/system/*.t (faults under
#               load, memcached black-holed with iptables, the peers
#               scenario on network namespaces)
#   5. apache   Apache::Test: perl t/TEST.PL (t/*.t)
#   6. summary  prove reads the TAP every phase left (one stream per test
#               program): the output ends with prove's "Files=N, Tests=M"
#               and "Result: PASS" (or FAIL)
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
#   SLB_FUZZ_SECONDS     seconds per libFuzzer target (default 7)
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
        kill_pidfile "$tdir/t/logs/tls/httpd.pid" "tls/httpd.conf"
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

# ---------------------------------------------------------------- TAP
# Every phase leaves its TAP stream in $TAPDIR (one file per test program,
# named in run order); the last step has prove read them all, so the run
# ends with prove's summary ("Files=..., Tests=...", "Result: PASS|FAIL").
TAPDIR=$LOGDIR/tap
mkdir -p "$TAPDIR"
TAPSEQ=0

# tap_save NAME RC LABEL FILTER < output: the TAP of one test program; when
# it exited non-zero a "not ok" line is appended (after a complete plan
# that is an extra test: prove fails it either way); an empty stream
# becomes a failure too.  FILTER=1 keeps only TAP lines (for wrappers
# whose output mixes TAP with build logs).
tap_save() {
    local name=$1 rc=$2 label=$3 filter=${4:-0} f
    TAPSEQ=$((TAPSEQ + 1))
    f=$TAPDIR/$(printf '%02d' "$TAPSEQ")-$name.tap
    if [ "$filter" = 1 ]; then
        grep -E '^((not )?ok([ 	]|$)|1\.\.[0-9]|#|Bail out!)' > "$f" || true
    else
        cat > "$f"
    fi
    if ! grep -qE '^(not )?ok([ 	]|$)' "$f"; then
        echo "not ok - $label: no test ran (exit $rc)" >> "$f"
    elif [ "$rc" -ne 0 ]; then
        echo "not ok - $label exited with status $rc" >> "$f"
    fi
}

# phase FILE LABEL TIMEOUT CMD...: run a TAP-producing command, show its
# output, keep its TAP
phase() {
    local name=$1 label=$2 limit=$3 rc=0 out
    shift 3
    out=$LOGDIR/$name.out
    timeout -k 10 "$limit" "$@" > "$out" 2>&1 < /dev/null || rc=$?
    cat "$out"
    tap_save "$name" "$rc" "$label" 1 < "$out"
    [ "$rc" -eq 0 ] || problem "$label failed (exit $rc)"
}

# ---------------------------------------------------------------- 3. unit tests
note "unit tests (make check: Check)"
if [ "$BUILD_OK" -eq 1 ] && [ -f "$SLB_BUILD_DIR/Makefile" ]; then
    rm -f "$LOGDIR/unit.tap"
    rc=0
    CK_TAP_LOG_FILE_NAME=$LOGDIR/unit.tap \
        timeout -k 10 "$T_UNIT" make -C "$SLB_BUILD_DIR" -j2 check \
        > "$LOGDIR/make-check.out" 2>&1 < /dev/null || rc=$?
    cat "$LOGDIR/make-check.out"
    find "$SLB_BUILD_DIR/tests" -name '*.log' ! -name 'test-suite.log' \
         -exec sh -c 'echo "--- $1"; cat "$1"' sh {} \; 2>/dev/null || true
    [ -f "$LOGDIR/unit.tap" ] || : > "$LOGDIR/unit.tap"
    tap_save unit "$rc" "Check unit tests (make check)" 1 < "$LOGDIR/unit.tap"
    [ "$rc" -eq 0 ] || problem "make check failed (exit $rc)"
else
    tap_save unit 1 "Check unit tests (make check)" < /dev/null
    problem "Check unit tests not run: no successful build"
fi

# ---------------------------------------------------------------- 3b. sanitizers
note "unit tests under ASan+UBSan+LSan (scripts/sanitizers.sh)"
phase sanitizers "Check unit tests under sanitizers" "$T_UNIT" \
      env SAN_BUILD_DIR="$SLB_BUILD_DIR/asan" bash scripts/sanitizers.sh

# ---------------------------------------------------------------- 3c. fuzzing
note "libFuzzer targets, bounded run (scripts/fuzz.sh, ${SLB_FUZZ_SECONDS:-7} s each)"
phase fuzz "libFuzzer bounded run" 900 \
      env FUZZ_SECONDS="${SLB_FUZZ_SECONDS:-7}" FUZZ_BUILD_DIR="$SLB_BUILD_DIR/fuzz" \
      bash scripts/fuzz.sh

# ---------------------------------------------------------------- 4. system
if is_root; then
    note "system tests (scripts/install-test.sh scripts/deb-test.sh tests/system/*.t)"
    for t in scripts/install-test.sh scripts/deb-test.sh tests/system/*.t; do
        [ -f "$t" ] || continue
        name=system-$(basename "$t" | sed 's/\.[a-z]*$//')
        echo "--- $t"
        rc=0
        case "$t" in
            *.sh) runner=(bash) ;;
            *)    runner=(perl) ;;
        esac
        timeout -k 10 600 env SLB_DEB_NOCHECK=1 "${runner[@]}" "$t" \
            > "$LOGDIR/$name.tap" 2> "$LOGDIR/$name.err" < /dev/null || rc=$?
        cat "$LOGDIR/$name.tap" "$LOGDIR/$name.err"
        tap_save "$name" "$rc" "$t" < "$LOGDIR/$name.tap"
        [ "$rc" -eq 0 ] || problem "$t failed (exit $rc)"
    done
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
# the harness (TAP::Harness) keeps a copy of the raw TAP of every t/*.t
# there, for the final prove
if [ -n "$WORKDIR" ]; then AT_TAP=$WORKDIR/.tap-dump
else AT_TAP=$LOGDIR/tap-dump; fi
rm -rf "$AT_TAP"
RUN_ENV+=(PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
          APACHE_TEST_NO_STICKY_PREFERENCES=1 PERL_TEST_HARNESS_DUMP_TAP="$AT_TAP")
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
for f in "$AT_TAP"/t/*.t; do
    [ -f "$f" ] || continue
    # shellcheck disable=SC2094  # (only its name is used besides the read)
    tap_save "apache-$(basename "$f" .t)" 0 "t/$(basename "$f")" < "$f"
done
# the exit status of each file is in the harness' summary table
#   t/01_x.t (Wstat: 256 (exited 1) Tests: 12 Failed: 2)
while read -r tf; do
    tap_save "apache-exit-$(basename "$tf" .t)" 1 "$tf" < /dev/null
done < <(sed -nE 's/^(t\/[^ ]+\.t) +\(Wstat: [1-9].*/\1/p' "$AT_OUT")
if [ -z "$at_result" ] || ! ls "$AT_TAP"/t/*.t > /dev/null 2>&1; then
    tap_save apache-test 1 "Apache::Test (perl t/TEST.PL) did not run to completion" < /dev/null
    problem "Apache::Test did not run to completion (exit $rc)"
else
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
note "summary (prove over the TAP of every phase)"
for p in "${PROBLEMS[@]}"; do
    echo "test.sh: - $p"
done
rc=0
( cd "$TAPDIR" && prove --exec cat ./*.tap ) || rc=$?
STATUS=0
if [ "$rc" -ne 0 ] || [ "${#PROBLEMS[@]}" -ne 0 ]; then
    STATUS=1
fi
cleanup
trap - EXIT
exit "$STATUS"
