#!/usr/bin/env bash
# scripts/sanitizers.sh - the Check unit tests under AddressSanitizer,
# LeakSanitizer and UndefinedBehaviorSanitizer.
#
#   scripts/sanitizers.sh
#
# Configures a separate build (default <repo>/_build/asan) with the
# project's configure and
#   CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined
#           -fno-omit-frame-pointer -g -O1"
# builds only the test program (make tests/unit/check_stickylb: the core
# library and the tests, not the Apache module) and runs it in one process
# (CK_FORK=no, so that LeakSanitizer sees every test) with
#   ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
#   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The test_table/test_mc suites start their own memcached processes, as in
# `make check`.
#
# First a probe checks that LeakSanitizer can run here (it needs ptrace-like
# access to the process; some containers forbid it).  When it cannot, the
# tests still run under ASan+UBSan with detect_leaks=0, and the leak check
# is done by valgrind --leak-check=full --errors-for-leak-kinds=definite
# --error-exitcode=1 on a build without sanitizers (<build>-valgrind).
#
# Output: Check's TAP log (one "ok N - ..." line per test), Check's summary
# line, then "sanitizers: P passed, F failed" (F also counts a sanitizer
# report or a crash that no test failure accounts for).  Exit status 0 only
# when every test passed and no sanitizer or valgrind error was reported.
#
# Environment:
#   SAN_BUILD_DIR      build dir (default <repo>/_build/asan)
#   SAN_CC             compiler (default: configure's choice, gcc here)
#   SAN_FORCE_VALGRIND=1  use the valgrind leak check even when LSan works
#   SLB_TEST_SLACK_MS  timing slack of the memcached tests (default here
#                      1000: sanitizers slow the tests down)
#   MAKE_JOBS          parallel make jobs (default 2)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${SAN_BUILD_DIR:-$REPO/_build/asan}
JOBS=${MAKE_JOBS:-2}
SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS_SAN="$SANFLAGS -g -O1"
PROG=tests/unit/check_stickylb

export SLB_TEST_SLACK_MS=${SLB_TEST_SLACK_MS:-1000}
export CK_FORK=no
unset CK_RUN_SUITE CK_RUN_CASE CK_INCLUDE_TAGS CK_EXCLUDE_TAGS 2>/dev/null || true

LOGDIR=$(mktemp -d /tmp/slb-san-XXXXXX)
trap 'rm -rf "$LOGDIR"' EXIT

PASSED=0
FAILED=0
PROBLEMS=()
problem() { PROBLEMS+=("$1"); echo "sanitizers.sh: PROBLEM: $1" >&2; }

finish() {
    for p in "${PROBLEMS[@]}"; do
        echo "sanitizers.sh: - $p"
    done
    if [ "${#PROBLEMS[@]}" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
        FAILED=1
    fi
    echo "sanitizers: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] && [ "${#PROBLEMS[@]}" -eq 0 ]
    exit $?
}

# configure + build the test program in $1 with CFLAGS $2 / LDFLAGS $3
build() {
    local dir=$1 cflags=$2 ldflags=$3 cc_args=()
    mkdir -p "$dir"
    [ -z "${SAN_CC:-}" ] || cc_args=(CC="$SAN_CC")
    if [ ! -f "$dir/Makefile" ] || [ ! -f "$dir/config.status" ] \
       || [ "$REPO/configure" -nt "$dir/config.status" ] \
       || [ "$(cat "$dir/.flags" 2>/dev/null)" != "${SAN_CC:-} $cflags $ldflags" ]; then
        echo "sanitizers.sh: configure in $dir"
        rm -f "$dir/.flags"
        ( cd "$dir" && "$REPO/configure" --enable-werror "${cc_args[@]}" \
              CFLAGS="$cflags" LDFLAGS="$ldflags" ) > "$dir/configure.out" 2>&1 || {
            tail -n 30 "$dir/configure.out"
            return 1
        }
        printf '%s' "${SAN_CC:-} $cflags $ldflags" > "$dir/.flags"
    fi
    echo "sanitizers.sh: make $PROG in $dir"
    make -C "$dir" -j"$JOBS" "$PROG" > "$dir/make.out" 2>&1 || {
        tail -n 40 "$dir/make.out"
        return 1
    }
}

# run the tests; $1 log file, the rest a command prefix (valgrind ...)
run_tests() {
    local log=$1 dir=$2 tap=$LOGDIR/tap.$$ rc=0
    shift 2
    rm -f "$tap"
    ( cd "$dir" && CK_TAP_LOG_FILE_NAME="$tap" "$@" ./$PROG ) \
        > "$log" 2>&1 < /dev/null || rc=$?
    [ -f "$tap" ] && cat "$tap"
    # Check's own output (failures, summary) and any sanitizer report
    grep -vE '^(ok|not ok) [0-9]+ ' "$log" | grep -v '^1\.\.' || true
    return "$rc"
}

count_checks() {   # adds Check's summary of log $1 to PASSED/FAILED
    local n f e line
    line=$(sed -nE 's/.*[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$1" | tail -n1)
    [ -n "$line" ] || return 1
    read -r n f e <<< "$line"
    PASSED=$((PASSED + n - f - e))
    FAILED=$((FAILED + f + e))
}

cd "$REPO"
if [ ! -x configure ] || [ ! -f build-aux/ltmain.sh ]; then
    echo "sanitizers.sh: autoreconf -fi (as scripts/build.sh does)"
    autoreconf -fi > "$LOGDIR/autoreconf.out" 2>&1 || {
        cat "$LOGDIR/autoreconf.out"
        problem "autoreconf failed"
        finish
    }
fi

# ------------------------------------------------------------ LSan probe
LSAN_OK=1
if [ -n "${SAN_FORCE_VALGRIND:-}" ]; then
    LSAN_OK=0
    echo "sanitizers.sh: SAN_FORCE_VALGRIND set: leaks checked with valgrind"
else
    cat > "$LOGDIR/leak.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
void *volatile sink;
int main(void) { char *p = malloc(33); memset(p, 1, 33); sink = p; sink = 0; return 0; }
EOF
    cc=${SAN_CC:-cc}
    # shellcheck disable=SC2086
    if ! $cc $SANFLAGS -g "$LOGDIR/leak.c" -o "$LOGDIR/leak" > "$LOGDIR/leak.build" 2>&1; then
        cat "$LOGDIR/leak.build"
        problem "$cc cannot build with -fsanitize=address,undefined"
        finish
    fi
    ASAN_OPTIONS=detect_leaks=1 "$LOGDIR/leak" > "$LOGDIR/leak.out" 2>&1 || true
    if ! grep -q 'ERROR: LeakSanitizer: detected memory leaks' "$LOGDIR/leak.out"; then
        LSAN_OK=0
        echo "sanitizers.sh: LeakSanitizer cannot run here ($(grep -m1 -E 'LeakSanitizer|ptrace' "$LOGDIR/leak.out" || echo 'no report'));" \
             "leaks are checked with valgrind instead"
    else
        echo "sanitizers.sh: LeakSanitizer works here"
    fi
fi

# ------------------------------------------------------------ ASan + UBSan
if ! build "$BUILD_DIR" "$CFLAGS_SAN" "$SANFLAGS"; then
    problem "sanitizer build failed"
    finish
fi
export ASAN_OPTIONS="detect_leaks=$LSAN_OK:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
echo "sanitizers.sh: running $PROG (ASan+UBSan$([ "$LSAN_OK" = 1 ] && echo '+LSan'), CK_FORK=no)"
echo "# ASAN_OPTIONS=$ASAN_OPTIONS"
echo "# UBSAN_OPTIONS=$UBSAN_OPTIONS"
rc=0
run_tests "$LOGDIR/asan.log" "$BUILD_DIR" || rc=$?
count_checks "$LOGDIR/asan.log" || problem "no Check summary from the sanitizer run (exit $rc)"
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer' "$LOGDIR/asan.log"; then
    problem "sanitizer report in the unit tests (see above)"
elif [ "$rc" -ne 0 ]; then
    grep -qE 'Failures: [1-9]|Errors: [1-9]' "$LOGDIR/asan.log" ||
        problem "the sanitizer run exited $rc"
fi

# ------------------------------------------------------------ valgrind leaks
if [ "$LSAN_OK" -eq 0 ]; then
    if ! command -v valgrind > /dev/null 2>&1; then
        problem "LeakSanitizer unavailable and valgrind not installed: no leak check"
        finish
    fi
    if ! build "$BUILD_DIR-valgrind" "-g -O1" ""; then
        problem "valgrind build failed"
        finish
    fi
    echo "sanitizers.sh: running $PROG under valgrind --leak-check=full"
    export SLB_TEST_SLACK_MS=${SLB_TEST_SLACK_MS_VALGRIND:-3000}
    rc=0
    run_tests "$LOGDIR/valgrind.log" "$BUILD_DIR-valgrind" \
        valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite \
                 --error-exitcode=99 --trace-children=no || rc=$?
    if [ "$rc" -eq 99 ] || grep -qE '==[0-9]+== (Invalid|Conditional|.*definitely lost)' "$LOGDIR/valgrind.log"; then
        problem "valgrind reported errors or leaks in the unit tests (see above)"
    elif grep -qE 'Failures: [1-9]|Errors: [1-9]' "$LOGDIR/valgrind.log"; then
        problem "unit tests failed under valgrind"
    elif [ "$rc" -ne 0 ]; then
        problem "the valgrind run exited $rc"
    fi
    # the tests are counted once (from the ASan run)
fi

finish
