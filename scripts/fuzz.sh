#!/usr/bin/env bash
# scripts/fuzz.sh - build and run the libFuzzer targets of mod_stickylb.
#
#   scripts/fuzz.sh [--long] [--build-only] [TARGET...]
#
# Builds fuzz/fuzz_<target>.c with clang -fsanitize=fuzzer,address,undefined
# (-fno-sanitize-recover=undefined) against the httpd-free core sources
# (stickylb_*.c, compiled with the same sanitizers and libFuzzer's coverage
# instrumentation), then runs every target (or the ones named) on a copy of
# its seed corpus fuzz/corpus/<target>/: the checked-in corpus is never
# written to.  Prints one TAP line per target,
#   ok N - fuzz <target>: <executions> executions
# with libFuzzer's final statistics (exec/s, new units, peak RSS) as a
# comment, and last "fuzz: P passed, F failed".  Exit status 0 only when
# every target ran clean: any crash, leak, sanitizer report, timeout, OOM or
# violated invariant fails its target; the input that did it is kept in
# $FUZZ_BUILD_DIR/artifacts/<target>/ and the end of the log is printed.
#
# Options:
#   --long        each target runs until 10,000,000 executions (-runs), the
#                 documented long run (about 20 minutes to 6 hours per target
#                 on 2 cores, see fuzz/README.md); FUZZ_RUNS overrides the count
#   --build-only  build, do not run
#
# Environment:
#   FUZZ_SECONDS    seconds per target for the bounded run (default 7: the
#                   eleven targets take about 80 s)
#   FUZZ_BUILD_DIR  build directory (default <repo>/_build/fuzz)
#   FUZZ_CC         compiler (default clang)
#   FUZZ_JOBS       parallel compiler jobs (default 2)
#   FUZZ_KEEP=1     keep the working corpora (new inputs found) in
#                   $FUZZ_BUILD_DIR/work/<target>/
#
# Needs clang with its libFuzzer runtime (Debian: clang, libclang-rt-N-dev)
# and the -dev packages of APR, APR-util and libmemcached.  When they are
# missing and the script runs as root it installs clang and the runtime
# with apt-get; it never needs root otherwise.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
CC=${FUZZ_CC:-clang}
SECS=${FUZZ_SECONDS:-7}
RUNS=${FUZZ_RUNS:-10000000}
JOBS=${FUZZ_JOBS:-2}
BUILD_DIR=${FUZZ_BUILD_DIR:-$REPO/_build/fuzz}

ALL_TARGETS=(cookie param set_cookie cookie_conf probe mc_value key table conf sign select discover etcd)
CORE_SRCS=(stickylb_codec.c stickylb_store_key.c stickylb_table.c
           stickylb_mc.c stickylb_probe.c stickylb_passive.c stickylb_select.c
           stickylb_conf.c
           stickylb_tier.c stickylb_sign.c
           stickylb_discover.c stickylb_dns.c stickylb_etcd.c)

LONG=0
BUILD_ONLY=0
TARGETS=()
for a in "$@"; do
    case "$a" in
        --long) LONG=1 ;;
        --build-only) BUILD_ONLY=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $a" >&2; exit 2 ;;
        *)
            if [ ! -f "$REPO/fuzz/fuzz_$a.c" ]; then
                echo "fuzz.sh: no target '$a' (have: ${ALL_TARGETS[*]})" >&2
                exit 2
            fi
            TARGETS+=("$a") ;;
    esac
done
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
case "$SECS" in ''|*[!0-9]*) echo "fuzz.sh: FUZZ_SECONDS must be a number" >&2; exit 2 ;; esac
case "$RUNS" in ''|*[!0-9]*) echo "fuzz.sh: FUZZ_RUNS must be a number" >&2; exit 2 ;; esac

is_root() { [ "$(id -u)" -eq 0 ]; }

# ------------------------------------------------------------ toolchain
probe_fuzzer() {
    local d
    d=$(mktemp -d /tmp/slb-fuzz-probe-XXXXXX)
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' > "$d/p.c"
    if "$CC" -fsanitize=fuzzer,address,undefined "$d/p.c" -o "$d/p" > "$d/log" 2>&1; then
        rm -rf "$d"
        return 0
    fi
    sed 's/^/fuzz.sh:   /' "$d/log" | tail -n 5 >&2
    rm -rf "$d"
    return 1
}

install_clang() {
    local major pkgs
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    command -v "$CC" > /dev/null 2>&1 ||
        apt-get install -y -qq --no-install-recommends clang
    major=$("$CC" --version | sed -nE 's/.*clang version ([0-9]+).*/\1/p' | head -n1)
    # the libFuzzer/ASan runtimes: libclang-rt-N-dev (Debian 12, Ubuntu
    # 23.04+), part of libclang-common-N-dev before
    for pkgs in "libclang-rt-$major-dev" "libclang-common-$major-dev"; do
        if apt-get install -y -qq --no-install-recommends "$pkgs"; then
            break
        fi
    done
}

if ! command -v "$CC" > /dev/null 2>&1 || ! probe_fuzzer; then
    if is_root && [ "$CC" = clang ]; then
        echo "fuzz.sh: clang or its libFuzzer runtime missing: installing (apt-get)"
        install_clang
    fi
    if ! command -v "$CC" > /dev/null 2>&1 || ! probe_fuzzer; then
        echo "fuzz.sh: $CC cannot build a libFuzzer target with ASan and UBSan;" \
             "install clang and libclang-rt-<version>-dev (as root: apt-get)" >&2
        echo "Bail out! no libFuzzer toolchain"
        echo "fuzz: 0 passed, 1 failed"
        exit 1
    fi
fi
for pc in apr-1 apr-util-1 libmemcached libssl libcrypto; do
    if ! pkg-config --exists "$pc"; then
        echo "fuzz.sh: pkg-config cannot find $pc (run scripts/deps.sh as root)" >&2
        echo "Bail out! missing $pc"
        echo "fuzz: 0 passed, 1 failed"
        exit 1
    fi
done

# ------------------------------------------------------------ build
# shellcheck disable=SC2054
CFL=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
     -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter)
# shellcheck disable=SC2207
CPPFLAGS_ALL=(-I"$REPO/include" $(pkg-config --cflags apr-1 apr-util-1 libmemcached libssl libcrypto libcares libcurl jansson))
# shellcheck disable=SC2207
LIBS=($(pkg-config --libs apr-1 apr-util-1 libmemcached libssl libcrypto libcares libcurl jansson) -lmemcachedutil -ldl -lm)

mkdir -p "$BUILD_DIR/obj" "$BUILD_DIR/logs" "$BUILD_DIR/artifacts"
# everything is rebuilt when a source, a header, this script or the
# compiler flags changed since the last build
FLAGS_ID="$($CC --version | head -n1) ${CFL[*]} ${CPPFLAGS_ALL[*]} ${LIBS[*]}"
STAMP=$BUILD_DIR/.stamp
need_build=0
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$FLAGS_ID" ]; then
    need_build=1
else
    for f in "${CORE_SRCS[@]}" include/*.h fuzz/*.c fuzz/*.h scripts/fuzz.sh; do
        if [ "$REPO/$f" -nt "$STAMP" ]; then
            need_build=1
            break
        fi
    done
    for t in "${ALL_TARGETS[@]}"; do
        [ -x "$BUILD_DIR/fuzz_$t" ] || need_build=1
    done
fi

if [ "$need_build" -eq 1 ]; then
    echo "fuzz.sh: building ${#ALL_TARGETS[@]} targets in $BUILD_DIR ($CC, ASan+UBSan)"
    rm -f "$STAMP"
    pids=()
    compile() {   # compile <out> <src> <extra flags...>
        local out=$1 src=$2
        shift 2
        "$CC" "${CFL[@]}" "$@" "${CPPFLAGS_ALL[@]}" -c "$src" -o "$out" \
            > "$out.log" 2>&1 || { cat "$out.log" >&2; return 1; }
    }
    # the core: coverage-instrumented (fuzzer-no-link) and sanitized
    objs=()
    n=0
    for s in "${CORE_SRCS[@]}"; do
        o=$BUILD_DIR/obj/${s%.c}.o
        objs+=("$o")
        compile "$o" "$REPO/$s" -fsanitize=fuzzer-no-link &
        pids+=($!)
        n=$((n + 1))
        if [ $((n % JOBS)) -eq 0 ]; then
            for p in "${pids[@]}"; do wait "$p" || { echo "fuzz.sh: build failed" >&2; exit 1; }; done
            pids=()
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || { echo "fuzz.sh: build failed" >&2; exit 1; }; done
    pids=()
    n=0
    for t in "${ALL_TARGETS[@]}"; do
        (
            compile "$BUILD_DIR/obj/fuzz_$t.o" "$REPO/fuzz/fuzz_$t.c" \
                    -fsanitize=fuzzer-no-link -I"$REPO/fuzz" || exit 1
            if ! "$CC" "${CFL[@]}" -fsanitize=fuzzer "$BUILD_DIR/obj/fuzz_$t.o" \
                       "${objs[@]}" "${LIBS[@]}" -o "$BUILD_DIR/fuzz_$t" \
                       > "$BUILD_DIR/obj/fuzz_$t.link.log" 2>&1; then
                cat "$BUILD_DIR/obj/fuzz_$t.link.log" >&2
                exit 1
            fi
        ) &
        pids+=($!)
        n=$((n + 1))
        if [ $((n % JOBS)) -eq 0 ]; then
            for p in "${pids[@]}"; do wait "$p" || { echo "fuzz.sh: build failed" >&2; exit 1; }; done
            pids=()
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || { echo "fuzz.sh: build failed" >&2; exit 1; }; done
    printf '%s' "$FLAGS_ID" > "$STAMP"
else
    echo "fuzz.sh: targets in $BUILD_DIR are up to date"
fi

if [ "$BUILD_ONLY" -eq 1 ]; then
    echo "fuzz.sh: built ${ALL_TARGETS[*]} in $BUILD_DIR"
    exit 0
fi

# ------------------------------------------------------------ run
dict_of() {
    case "$1" in
        cookie|param|set_cookie) echo "$REPO/fuzz/dict/http.dict" ;;
        cookie_conf|probe|etcd) echo "$REPO/fuzz/dict/$1.dict" ;;
        *) echo "" ;;
    esac
}

WORK_ROOT=$(mktemp -d /tmp/slb-fuzz-XXXXXX)
cleanup() { rm -rf "$WORK_ROOT"; }
trap cleanup EXIT

# ASan/UBSan/LSan settings (the caller's own options come last and win)
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:allocator_may_return_null=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}"
# an unsymbolized stack is still a failure, but a symbolized one helps
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    for s in llvm-symbolizer "llvm-symbolizer-$("$CC" --version | sed -nE 's/.*clang version ([0-9]+).*/\1/p' | head -n1)"; do
        if command -v "$s" > /dev/null 2>&1; then
            export ASAN_SYMBOLIZER_PATH
            ASAN_SYMBOLIZER_PATH=$(command -v "$s")
            break
        fi
    done
fi

if [ "$LONG" -eq 1 ]; then
    LIMIT=(-runs="$RUNS")
    echo "fuzz.sh: long run: $RUNS executions per target"
else
    LIMIT=(-max_total_time="$SECS")
    echo "fuzz.sh: bounded run: $SECS s per target"
fi

echo "1..${#TARGETS[@]}"
PASSED=0
FAILED=0
i=0
for t in "${TARGETS[@]}"; do
    i=$((i + 1))
    work=$WORK_ROOT/$t
    art=$BUILD_DIR/artifacts/$t
    log=$BUILD_DIR/logs/$t.log
    rm -rf "$work" "$art"
    mkdir -p "$work" "$art"
    if [ -d "$REPO/fuzz/corpus/$t" ]; then
        cp -pR "$REPO/fuzz/corpus/$t/." "$work/"
    fi
    args=("${LIMIT[@]}" -rss_limit_mb=2048 -timeout=10 -detect_leaks=1
          -print_final_stats=1 -artifact_prefix="$art/")
    d=$(dict_of "$t")
    [ -z "$d" ] || [ ! -f "$d" ] || args+=(-dict="$d")
    start=$(date +%s)
    rc=0
    "$BUILD_DIR/fuzz_$t" "${args[@]}" "$work" > "$log" 2>&1 < /dev/null || rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n1)
    newu=$(sed -nE 's/^stat::new_units_added: *([0-9]+).*/\1/p' "$log" | tail -n1)
    rss=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+).*/\1/p' "$log" | tail -n1)
    bad=""
    [ "$rc" -eq 0 ] || bad="exit $rc"
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|invariant violated|==[0-9]+==ERROR' "$log"; then
        bad="${bad:+$bad, }sanitizer or libFuzzer report"
    fi
    if [ -n "$(ls -A "$art" 2>/dev/null)" ]; then
        bad="${bad:+$bad, }artifacts: $(find "$art" -mindepth 1 -printf '%f ')"
    fi
    [ -n "$execs" ] || bad="${bad:+$bad, }no final statistics"
    if [ -z "$bad" ]; then
        PASSED=$((PASSED + 1))
        echo "ok $i - fuzz $t: $execs executions"
    else
        FAILED=$((FAILED + 1))
        echo "not ok $i - fuzz $t: ${execs:-0} executions ($bad)"
        echo "# --- end of $log:"
        grep -vE '^(#[0-9]+\s+(NEW|REDUCE|pulse|INITED|RELOAD)|INFO:)' "$log" | tail -n 60 | sed 's/^/#   /'
        for f in "$art"/*; do
            [ -e "$f" ] || continue
            echo "#   reproducer: $f ($(stat -c %s "$f") bytes): $BUILD_DIR/fuzz_$t $f"
            echo "#   bytes: $(head -c 256 "$f" | od -An -c | tr -s ' ' | tr -d '\n' | cut -c1-400)"
        done
    fi
    echo "# fuzz $t: ${took} s, ${rate:-?} exec/s, ${newu:-?} new units, peak RSS ${rss:-?} MB, log $log"
    if [ -n "${FUZZ_KEEP:-}" ]; then
        mkdir -p "$BUILD_DIR/work"
        rm -rf "$BUILD_DIR/work/$t"
        cp -pR "$work" "$BUILD_DIR/work/$t"
    fi
    rm -rf "$work"
done

echo "fuzz: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
