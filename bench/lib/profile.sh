#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2153  # T_* are read by fill_template (compgen); W_* come from eval; env from run.sh
# bench/lib/profile.sh MISSES - where the CPU of a mod_stickylb Apache goes,
# called by bench/run.sh (its backends and memcached still running) when a
# target is missed, or with --profile.
#
# perf is used when `perf stat -e instructions true` counts instructions on
# this machine; otherwise (virtual machines without PMU) valgrind's callgrind
# runs a single-process Apache (-X) of the variant, with the same
# configuration, and a bounded number of requests (ab -n, keep-alive).
# Collection is limited to ap_process_async_request (--toggle-collect): the
# request's processing from the first hook to the last byte handed to the
# connection (proxying, every module's hooks and filters), not the reading
# of the request or the connection's I/O; plus the memcached writer thread
# of write=async (writer_main), whose work is the requests'.  Stock Apache
# round robin is profiled the same way as the reference.  Instruction counts are user-space
# instructions (the kernel's share of the CPU is not in them).
#
# MISSES: lines "variant workload what" (run.sh's missed targets); with
# --profile every mod_stickylb variant and workload is profiled.
# Environment (from run.sh): HTTPD LIBEXEC MODULE WORK BENCH MCPORT P1 P2 P3
# IS_ROOT RUN_USER RUN_GROUP; PROFILE_ALL=1 for every variant;
# BENCH_PROFILE_REQUESTS (default 3000).
# SLB_PROFILE_DUMP_INSTR=yes keeps instruction addresses in callgrind.out
# (for bench/lib/lines.py: valgrind reads no line table of the module).
set -euo pipefail
# shellcheck source=common.sh
. "$BENCH/lib/common.sh"

MISSES=$1
NREQ=${BENCH_PROFILE_REQUESTS:-3000}
OUT=$WORK/profile
mkdir -p "$OUT"
chmod 777 "$OUT"   # the Apache child writes its callgrind file as $RUN_USER

if perf stat -e instructions true 2>&1 | grep -q 'not supported' \
   || ! perf stat -e instructions true >/dev/null 2>&1; then
    TOOL=callgrind
else
    TOOL=perf
fi
command -v valgrind >/dev/null || { log "profile: valgrind is not installed"; exit 1; }
command -v ab >/dev/null || { log "profile: ab (apache2-utils) is not installed"; exit 1; }
if [ "$TOOL" = perf ]; then
    # perf would do; callgrind's exact counts are still what this script
    # reports (comparable between runs and machines)
    log "profile: perf counts instructions here, callgrind is used all the same for exact counts"
fi

# what to profile: the missed (variant, workload) pairs, plus stock Apache
# round robin for each workload concerned
TARGETS=()
if [ "${PROFILE_ALL:-0}" = 1 ]; then
    # stock Apache's sticky variants too: each mod_stickylb mode is judged
    # against the stock variant that does the same job
    for v in apache-routeid apache-jsessionid stickylb-route stickylb-jvmroute stickylb-learn-shm stickylb-learn-mc stickylb-learn-mc-quiet stickylb-learn-mc-async; do
        [ -s "$WORK/$v/cookies.txt" ] || continue   # not in this run
        for w in established new; do TARGETS+=("$v $w"); done
    done
else
    while read -r v w _; do
        [ -n "$v" ] && TARGETS+=("$v $w")
    done < <(sort -u -k1,2 "$MISSES" | awk '{ print $1, $2 }' | sort -u)
fi
[ "${#TARGETS[@]}" -gt 0 ] || { log "profile: nothing to profile"; exit 0; }
WLS=$(printf '%s\n' "${TARGETS[@]}" | awk '{ print $2 }' | sort -u)
for w in $WLS; do TARGETS=("apache-rr $w" "${TARGETS[@]}"); done

VG_PID=""
stop_vg() { [ -n "$VG_PID" ] && stop_pid "$VG_PID" "valgrind Apache"; VG_PID=""; }
trap stop_vg EXIT

profile_one() {   # variant workload -> $OUT/<v>-<w>.summary
    local v=$1 w=$2 d=$OUT/$1-$2 port cookie=() ab_out
    mkdir -p "$d"; chmod 777 "$d"
    port=$(free_port)
    T_DIR=$d T_PORT=$port T_LIBEXEC=$LIBEXEC T_MCPORT=$MCPORT T_P1=$P1 T_P2=$P2 T_P3=$P3
    # as root, valgrind and Apache run as $RUN_USER from the start (an Apache
    # that switches user could not write its callgrind file at exit)
    T_USERLINE=""
    local asuser=()
    if [ "$IS_ROOT" = 1 ]; then
        asuser=(setpriv --reuid="$RUN_USER" --regid="$RUN_GROUP" --clear-groups --)
    fi
    T_STICKYLB_LOAD=""
    case $v in stickylb-*) T_STICKYLB_LOAD="LoadModule stickylb_module $MODULE" ;; esac
    cat "$BENCH/conf/apache-common.conf.in" "$BENCH/conf/$v.conf.in" >"$d/httpd.conf.in"
    fill_template "$d/httpd.conf.in" "$d/httpd.conf"
    "${asuser[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.out" \
        --toggle-collect=ap_process_async_request --toggle-collect=writer_main \
        --dump-instr="${SLB_PROFILE_DUMP_INSTR:-no}" \
        "$HTTPD" -X -f "$d/httpd.conf" >"$d/valgrind.log" 2>&1 &
    VG_PID=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && break
        kill -0 "$VG_PID" 2>/dev/null || { tail -5 "$d/valgrind.log" >&2; return 1; }
        sleep 0.2
    done
    if [ "$w" = established ]; then
        # the session is made by the profiled Apache itself (its first
        # answer's cookies): a learned id must be in this instance's
        # table, which the measured run's is not
        local ck
        curl -s --max-time 30 -D "$d/first.headers" -o /dev/null "http://127.0.0.1:$port/" || true
        ck=$(parse_headers "$d/first.headers" | head -1 | cut -f2)
        [ -n "$ck" ] || ck=$(head -1 "$WORK/$v/cookies.txt")
        echo "$ck" >"$d/cookie"
        cookie=(-H "Cookie: $ck")
    fi
    ab_out=$(ab -q -k -c 4 -n "$NREQ" "${cookie[@]}" "http://127.0.0.1:$port/" 2>&1) \
        || { printf '%s\n' "$ab_out" >&2; return 1; }
    printf '%s\n' "$ab_out" >"$d/ab.out"
    local done_n failed
    done_n=$(awk '/^Complete requests:/ { print $3 }' "$d/ab.out")
    failed=$(awk '/^Failed requests:/ { print $3 }' "$d/ab.out")
    stop_vg   # the readiness probe's request counts as well: done_n + 1
    # (and the one that made the session, for established)
    if [ "$w" = established ]; then done_n=$((done_n + 1)); fi
    [ -s "$d/callgrind.out" ] || { log "profile: no callgrind output for $v"; return 1; }
    callgrind_annotate --inclusive=yes --tree=calling --threshold=100 --auto=no \
        "$d/callgrind.out" >"$d/tree.txt"
    callgrind_annotate --inclusive=no --threshold=100 --auto=no "$d/callgrind.out" >"$d/exclusive.txt"
    echo "$((done_n + 1)) ${failed:-?}" >"$d/requests"
}

log "profile: callgrind, $NREQ requests (ab -k -c 4) per variant and workload: ${TARGETS[*]/%/,}"
for t in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086
    set -- $t
    log "profile: $1 / $2"
    profile_one "$1" "$2" || log "profile: $1 / $2 failed"
done

echo
echo "Profile (callgrind: user-space instructions inside ap_process_async_request, per request;"
echo "$NREQ keep-alive requests by ab -c 4 to a single-process Apache, same configuration):"
for w in $WLS; do
    ref=$OUT/apache-rr-$w
    for t in "${TARGETS[@]}"; do
        # shellcheck disable=SC2086
        set -- $t
        [ "$2" = "$w" ] || continue
        d=$OUT/$1-$2
        [ -s "$d/requests" ] || continue
        read -r nreq failed <"$d/requests"
        refarg=()
        if [ "$1" != apache-rr ] && [ -s "$ref/requests" ]; then
            refarg=("$ref")
            REF_NREQ=$(awk '{ print $1 }' "$ref/requests")
            export REF_NREQ
        fi
        perl "$BENCH/lib/profile-summary.pl" summary "$1 / $2" "$nreq" "$failed" "$d" "${refarg[@]}" \
            >"$d/summary.txt"
        grep -v '^TOTAL ' "$d/summary.txt"
        awk '/^TOTAL / { print $2 }' "$d/summary.txt" >"$d/total"
        echo
    done
done

# Each mode's extra instructions over stock round robin, next to the stock
# variant doing the same job, and the budget (docs/benchmarks.md): mode
# workload stock-variant budget-kind budget-value
#   le   at most the stock variant's extra
#   x    at most value times the stock variant's extra
#   abs  at most value instructions
extra() {   # variant workload -> extra over apache-rr (empty if missing)
    local t=$OUT/$1-$2/total r=$OUT/apache-rr-$2/total
    [ -s "$t" ] && [ -s "$r" ] || return 0
    echo $(( $(cat "$t") - $(cat "$r") ))
}
echo "Extra instructions per request over stock Apache round robin (same run):"
printf '  %-26s %-12s %10s   %-26s %10s   %s\n' mode workload extra "stock doing the same" extra "budget: verdict"
while read -r v w ref kind val; do
    [ -n "$v" ] || continue
    e=$(extra "$v" "$w"); [ -n "$e" ] || continue
    re=""; [ "$ref" != - ] && re=$(extra "$ref" "$w")
    case $kind in
        le)  lim=$re ;;
        x)   lim=$(awk -v a="$re" -v m="$val" 'BEGIN { printf "%d", a * m }') ;;
        abs) lim=$val ;;
    esac
    if [ -z "$lim" ]; then verdict="no reference"
    elif [ "$e" -le "$lim" ]; then verdict="<= $lim: met"
    else verdict="> $lim: MISSED"; fi
    printf '  %-26s %-12s %+10d   %-26s %10s   %s\n' "$v" "$w" "$e" "$ref" "${re:+$(printf '%+d' "$re")}" "$verdict"
done <<'EOT'
stickylb-route established apache-routeid le -
stickylb-route new apache-routeid le -
stickylb-jvmroute established apache-jsessionid x 1.5
stickylb-jvmroute new apache-jsessionid x 1.5
stickylb-learn-shm established apache-routeid le -
stickylb-learn-mc established - abs 2000
stickylb-learn-mc-quiet established - abs 2000
stickylb-learn-mc-async established - abs 2000
EOT

