#!/bin/bash
# bench/placement_profile.sh - instructions per request of the placements
# of new sessions (StickyLBNewSessions), counted by callgrind the way
# bench/lib/profile.sh counts them: a single-process Apache (-X) under
# valgrind, NREQ keep-alive requests by ab -c 4, user-space instructions
# inside ap_process_async_request per request.  Every request is a new
# session placed anew (no cookie is sent), so the placement runs on each:
#
#   apache-rr                 stock round robin (the reference)
#   stickylb-place-requests   weighted round robin, no key read
#   stickylb-place-hash       consistent hash of the client address,
#                             StickyLBStore none
#   stickylb-place-busyness   fewest requests in flight
#
# Usage: bash bench/placement_profile.sh        (SLB_MODULE=path, NREQ=3000)
# Needs nginx (the three backends of bench/conf/nginx.conf.in), valgrind,
# ab; as root Apache and nginx run as nobody.  About 2 minutes.
# SLB_PROFILE_DUMP_INSTR=yes keeps instruction addresses (bench/lib/lines.py).
# Processes are stopped by PID.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$BENCH")
# shellcheck source=bench/lib/common.sh
. "$BENCH/lib/common.sh"

MODULE=${SLB_MODULE:-$REPO/_build/.libs/mod_stickylb.so}
NREQ=${NREQ:-3000}
HTTPD=$(command -v apache2 || true)
LIBEXEC=/usr/lib/apache2/modules
for t in nginx valgrind callgrind_annotate ab curl perl; do
    command -v "$t" >/dev/null || die "$t is not installed"
done
[ -n "$HTTPD" ] || die "apache2 is not installed"
[ -f "$MODULE" ] || die "no module at $MODULE (build it first: scripts/build.sh)"

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
RUN_USER=""; RUN_GROUP=""
if [ "$IS_ROOT" = 1 ]; then
    RUN_USER=nobody; RUN_GROUP=$(id -gn nobody 2>/dev/null || echo nogroup)
fi

WORK=$(mktemp -d /tmp/slb-placement.XXXXXX)
chmod 755 "$WORK"
NGINX_PID=""; VG_PID=""
cleanup() {
    [ -n "$VG_PID" ] && stop_pid "$VG_PID" "valgrind Apache"
    [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" nginx
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

P1=$(free_port); P2=$(free_port); P3=$(free_port)
mkdir -p "$WORK/nginx/nginx-tmp"
T_DIR=$WORK/nginx T_P1=$P1 T_P2=$P2 T_P3=$P3
T_USERLINE=""; [ "$IS_ROOT" = 1 ] && T_USERLINE="user $RUN_USER $RUN_GROUP;"
fill_template "$BENCH/conf/nginx.conf.in" "$WORK/nginx/nginx.conf"
[ "$IS_ROOT" = 1 ] && chown "$RUN_USER" "$WORK/nginx/nginx-tmp"
nginx -p "$WORK/nginx" -e "$WORK/nginx/nginx-error.log" -c "$WORK/nginx/nginx.conf" \
    || die "nginx did not start"
for _ in $(seq 1 50); do [ -s "$WORK/nginx/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$WORK/nginx/nginx.pid")
wait_http "http://127.0.0.1:$P1/" || die "the nginx backends do not answer"

asuser=()
[ "$IS_ROOT" = 1 ] && asuser=(setpriv --reuid="$RUN_USER" --regid="$RUN_GROUP" --clear-groups --)

profile_one() {   # variant -> $WORK/<v>/total (instructions per request)
    local v=$1 d=$WORK/$1 port ab_out done_n failed
    mkdir -p "$d"; chmod 777 "$d"
    port=$(free_port)
    T_DIR=$d T_PORT=$port T_LIBEXEC=$LIBEXEC T_P1=$P1 T_P2=$P2 T_P3=$P3 T_USERLINE=""
    T_STICKYLB_LOAD=""
    case $v in stickylb-*) T_STICKYLB_LOAD="LoadModule stickylb_module $MODULE" ;; esac
    cat "$BENCH/conf/apache-common.conf.in" "$BENCH/conf/$v.conf.in" >"$d/httpd.conf.in"
    fill_template "$d/httpd.conf.in" "$d/httpd.conf"
    "$HTTPD" -t -f "$d/httpd.conf" >"$d/configtest.log" 2>&1 \
        || { cat "$d/configtest.log" >&2; die "$v: configuration rejected"; }
    "${asuser[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.out" \
        --toggle-collect=ap_process_async_request --dump-instr="${SLB_PROFILE_DUMP_INSTR:-no}" \
        "$HTTPD" -X -f "$d/httpd.conf" >"$d/valgrind.log" 2>&1 &
    VG_PID=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && break
        kill -0 "$VG_PID" 2>/dev/null || { tail -5 "$d/valgrind.log" >&2; die "$v: Apache exited"; }
        sleep 0.2
    done
    ab_out=$(ab -q -k -c 4 -n "$NREQ" "http://127.0.0.1:$port/" 2>&1) \
        || { printf '%s\n' "$ab_out" >&2; die "$v: ab failed"; }
    printf '%s\n' "$ab_out" >"$d/ab.out"
    done_n=$(awk '/^Complete requests:/ { print $3 }' "$d/ab.out")
    failed=$(awk '/^Failed requests:/ { print $3 }' "$d/ab.out")
    stop_pid "$VG_PID" "valgrind Apache"; VG_PID=""
    [ -s "$d/callgrind.out" ] || die "$v: no callgrind output"
    callgrind_annotate --inclusive=yes --tree=calling --threshold=100 --auto=no \
        "$d/callgrind.out" >"$d/tree.txt"
    callgrind_annotate --inclusive=no --threshold=100 --auto=no "$d/callgrind.out" >"$d/exclusive.txt"
    # the readiness probe's request counts too
    perl "$BENCH/lib/profile-summary.pl" summary "$v" "$((done_n + 1))" "${failed:-?}" "$d" \
        >"$d/summary.txt"
    awk '/^TOTAL / { print $2 }' "$d/summary.txt" >"$d/total"
}

VARIANTS=(apache-rr stickylb-place-requests stickylb-place-hash stickylb-place-busyness)
for v in "${VARIANTS[@]}"; do
    log "profile: $v ($NREQ requests)"
    profile_one "$v"
done

rr=$(cat "$WORK/apache-rr/total")
req=$(cat "$WORK/stickylb-place-requests/total")
echo "Instructions per request inside ap_process_async_request (callgrind, $NREQ requests, ab -k -c 4,"
echo "every request a new session):"
printf '  %-26s %10s %12s %14s\n' variant total "over stock" "over requests"
for v in "${VARIANTS[@]}"; do
    t=$(cat "$WORK/$v/total")
    printf '  %-26s %10d %+12d %+14d\n' "$v" "$t" $((t - rr)) $((t - req))
done
echo "(work directory: $WORK)"
