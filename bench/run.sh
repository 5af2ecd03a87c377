#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2154,SC2015  # T_* are read by fill_template (compgen); W_* come from eval; env from run.sh
# bench/run.sh - mod_stickylb against stock Apache and HAProxy, side by side,
# in one run, on loopback.  See docs/benchmarks.md for what it measures and
# the last results.
#
#   bash bench/run.sh                 # full run: 3 rounds of 5 s runs (7 to 13 min
#                                     # with the profile and the waits for quiet)
#   bash bench/run.sh --quick         # 1 round of 1 s runs (~1 min)
#
# Options:
#   --quick              1 s runs, 1 round (a smoke test of the whole chain)
#   --rounds N           rounds (default 3); each round runs every variant
#                        and workload once, interleaved, never back to back
#   --duration S         seconds per wrk run (default 5)
#   --connections C      wrk connections (default 32)
#   --threads T          wrk threads (default 2)
#   --sessions N         established sessions the client cycles through
#                        (default 24)
#   --pin split|none     split (default on 2+ CPUs): the load balancers on
#                        CPU 0; wrk, the nginx backends and memcached on CPU 1.
#                        none: no pinning.
#   --only LIST          comma-separated variant ids (default: all)
#   --profile | --no-profile
#                        profile the mod_stickylb Apache with callgrind
#                        (default: only when a mod_stickylb target is missed)
#   --markdown FILE      also write the results as Markdown to FILE
#   --keep-dir           keep the work directory (configs, logs, raw data)
#
# As root it installs what is missing with apt-get (nginx, haproxy, wrk,
# apache2, memcached and the module's build dependencies) and runs the
# servers as nobody; as another user it needs them installed.  The module is
# built with scripts/build.sh (SLB_BUILD_DIR is honoured), or taken from
# SLB_MODULE=/path/mod_stickylb.so (SLB_MODULE_DESC: how to name it in the
# report).  Everything it starts listens on
# 127.0.0.1 only, on free ports, and is stopped by PID on exit.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$BENCH/.." && pwd)
# shellcheck source=lib/common.sh
. "$BENCH/lib/common.sh"

ROUNDS=3
DURATION=5
CONNS=32
THREADS=2
SESSIONS=24
PIN="split"
PROFILE=auto
MARKDOWN=""
KEEP_DIR=0
ONLY=""
CMDLINE="bash bench/run.sh${*:+ $*}"
[ -n "${SLB_BUILD_DIR:-}" ] && CMDLINE="SLB_BUILD_DIR=$SLB_BUILD_DIR $CMDLINE"
[ -n "${SLB_MODULE:-}" ] && CMDLINE="SLB_MODULE=$SLB_MODULE $CMDLINE"

while [ $# -gt 0 ]; do
    case $1 in
        --quick) DURATION=1; ROUNDS=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --threads) THREADS=$2; shift ;;
        --sessions) SESSIONS=$2; shift ;;
        --pin) PIN=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --profile) PROFILE=yes ;;
        --no-profile) PROFILE=no ;;
        --markdown) MARKDOWN=$2; shift ;;
        --keep-dir) KEEP_DIR=1 ;;
        -h|--help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (--help)" ;;
    esac
    shift
done
case $PIN in split|none) ;; *) die "--pin split|none" ;; esac
for n in "$ROUNDS" "$DURATION" "$CONNS" "$THREADS" "$SESSIONS"; do
    case $n in ''|*[!0-9]*) die "'$n' is not a number" ;; esac
done

# ---------------------------------------------------------------- variants
# id | kind | label (the table's first column)
VARIANT_TABLE="
apache-routeid|apache|Apache ROUTEID (stock)
apache-jsessionid|apache|Apache JSESSIONID (stock)
apache-rr|apache|Apache round robin (stock)
stickylb-route|stickylb|stickylb route cookie
stickylb-jvmroute|stickylb|stickylb jvmRoute
stickylb-learn-shm|stickylb|stickylb learn, shm
stickylb-learn-mc|stickylb|stickylb learn, memcached
stickylb-learn-mc-quiet|stickylb|stickylb learn, mc quiet
stickylb-learn-mc-async|stickylb|stickylb learn, mc async
haproxy-cookie|haproxy|HAProxy cookie insert
haproxy-stick|haproxy|HAProxy stick table
direct|direct|backend direct (nginx)
"
VARIANTS=()
declare -A KIND LABEL PORT PIDFILE STICKY
while IFS='|' read -r id kind label; do
    [ -n "$id" ] || continue
    if [ -n "$ONLY" ] && [[ ",$ONLY,apache-rr,apache-routeid," != *",$id,"* ]]; then
        continue   # the two references of the ratios always run
    fi
    VARIANTS+=("$id"); KIND[$id]=$kind; LABEL[$id]=$label
    case $id in apache-rr|direct) STICKY[$id]=0 ;; *) STICKY[$id]=1 ;; esac
done <<<"$VARIANT_TABLE"
WORKLOADS=(established new)

# ---------------------------------------------------------------- install
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
BENCH_PKGS=(nginx haproxy wrk apache2 apache2-utils memcached curl perl procps util-linux valgrind)
if [ "$IS_ROOT" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${SLB_MODULE:-}" ]; then
        bash "$TOP/scripts/deps.sh" >&2 || die "scripts/deps.sh failed"
    fi
    missing=()
    for p in "${BENCH_PKGS[@]}"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = installed ] || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        apt-get -o Acquire::Retries=3 update -qq >&2 || die "apt-get update failed"
        apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            install -y -qq --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install failed"
    fi
fi
export PATH="$PATH:/usr/sbin:/sbin"
for t in nginx haproxy wrk apache2 memcached curl perl taskset; do
    command -v "$t" >/dev/null || die "$t is not installed (run as root to install it)"
done
HTTPD=$(command -v apache2)
LIBEXEC=/usr/lib/apache2/modules
[ -f "$LIBEXEC/mod_proxy_balancer.so" ] || die "no $LIBEXEC/mod_proxy_balancer.so"

# ---------------------------------------------------------------- build
if [ -n "${SLB_MODULE:-}" ]; then
    MODULE=$SLB_MODULE
    MODULE_DESC=${SLB_MODULE_DESC:-$SLB_MODULE}
else
    BUILD_DIR=${SLB_BUILD_DIR:-$TOP/_build}
    log "building the module (scripts/build.sh, $BUILD_DIR)"
    bash "$TOP/scripts/build.sh" >"/tmp/stickylb-bench-build.$$.log" 2>&1 \
        || { tail -30 "/tmp/stickylb-bench-build.$$.log" >&2; die "build failed"; }
    rm -f "/tmp/stickylb-bench-build.$$.log"
    MODULE=$BUILD_DIR/.libs/mod_stickylb.so
    MODULE_DESC="built from $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')"
    git -C "$TOP" diff --quiet HEAD -- 2>/dev/null || MODULE_DESC="$MODULE_DESC with uncommitted changes"
fi
[ -f "$MODULE" ] || die "no module at $MODULE"

# ---------------------------------------------------------------- pinning
NCPU=$(nproc)
LB_PIN=(); CLIENT_PIN=()
if [ "$PIN" = split ] && [ "$NCPU" -ge 2 ]; then
    LB_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 1)
    PIN_TEXT="pinned: load balancers on CPU 0; wrk, nginx backends and memcached on CPU 1 (taskset)"
else
    PIN=none
    PIN_TEXT="not pinned: wrk, load balancers, backends and memcached share all $NCPU CPUs"
fi

# ---------------------------------------------------------------- start
WORK=$(mktemp -d /tmp/stickylb-bench.XXXXXX)
chmod 755 "$WORK"
RESULTS=$WORK/results.tsv
STARTED=()          # "pid name" of every process started, stopped on exit
declare -A LBPID    # variant -> main PID (Apache parent, HAProxy)
MC_PID=""; NGINX_PID=""

cleanup() {
    local rc=$? entry pid name left=""
    trap - EXIT INT TERM
    # in reverse order of start; an Apache parent takes its children along
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        entry=${STARTED[$i]}; pid=${entry%% *}; name=${entry#* }
        stop_pid "$pid" "$name"
    done
    # the children recorded at start (Apache and nginx workers) must be gone
    for pid in ${ALL_CHILDREN:-}; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            left="$left $pid"
        fi
    done
    [ -z "$left" ] || log "children still there after their parent stopped, KILLed:$left"
    if [ "$KEEP_DIR" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ALL_CHILDREN=""

RUN_USER=""; RUN_GROUP=""
if [ "$IS_ROOT" = 1 ]; then
    RUN_USER=nobody; RUN_GROUP=$(id -gn nobody 2>/dev/null || echo nogroup)
fi

P1=$(free_port); P2=$(free_port); P3=$(free_port)

# nginx: the three backends
mkdir -p "$WORK/nginx/nginx-tmp"
T_DIR=$WORK/nginx T_P1=$P1 T_P2=$P2 T_P3=$P3
T_USERLINE=""; [ "$IS_ROOT" = 1 ] && T_USERLINE="user $RUN_USER $RUN_GROUP;"
fill_template "$BENCH/conf/nginx.conf.in" "$WORK/nginx/nginx.conf"
[ "$IS_ROOT" = 1 ] && chown "$RUN_USER" "$WORK/nginx/nginx-tmp"
nginx -t -q -p "$WORK/nginx" -e "$WORK/nginx/nginx-error.log" -c "$WORK/nginx/nginx.conf" \
    || die "nginx configuration rejected"
"${CLIENT_PIN[@]}" nginx -p "$WORK/nginx" -e "$WORK/nginx/nginx-error.log" \
    -c "$WORK/nginx/nginx.conf" || die "nginx did not start"
for _ in $(seq 1 50); do [ -s "$WORK/nginx/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$WORK/nginx/nginx.pid")
STARTED+=("$NGINX_PID nginx")
for p in $P1 $P2 $P3; do wait_http "http://127.0.0.1:$p/" || die "backend on $p does not answer"; done
log "backends t1 t2 t3: nginx pid $NGINX_PID on ports $P1 $P2 $P3"

# memcached, for stickylb-learn-mc
MCPORT=$(free_port)
MC_ARGS=(-l 127.0.0.1 -p "$MCPORT" -U 0 -m 256 -t 1 -c 4096)
[ "$IS_ROOT" = 1 ] && MC_ARGS+=(-u "$RUN_USER")
"${CLIENT_PIN[@]}" memcached "${MC_ARGS[@]}" >"$WORK/memcached.log" 2>&1 &
MC_PID=$!
STARTED+=("$MC_PID memcached")
mc_stats() {   # "cmd_get get_hits get_misses cmd_set curr_items cmd_touch"
    local out
    out=$(exec 3<>"/dev/tcp/127.0.0.1/$MCPORT" && printf 'stats\r\nquit\r\n' >&3 && timeout 2 cat <&3) 2>/dev/null || true
    printf '%s\n' "$out" | tr -d '\r' | awk '$1 == "STAT" { s[$2] = $3 }
        END { printf "%d %d %d %d %d %d\n", s["cmd_get"], s["get_hits"], s["get_misses"],
              s["cmd_set"], s["curr_items"], s["cmd_touch"] }'
}
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MCPORT") 2>/dev/null && break
    sleep 0.1
done
kill -0 "$MC_PID" 2>/dev/null || die "memcached did not start: $(cat "$WORK/memcached.log")"
log "memcached pid $MC_PID on port $MCPORT"

start_apache() {   # variant
    local v=$1 d=$WORK/$1 pid
    mkdir -p "$d"
    T_DIR=$d T_PORT=${PORT[$v]} T_LIBEXEC=$LIBEXEC T_MCPORT=$MCPORT
    T_USERLINE=""
    [ "$IS_ROOT" = 1 ] && T_USERLINE="User $RUN_USER
Group $RUN_GROUP"
    T_STICKYLB_LOAD=""
    [ "${KIND[$v]}" = stickylb ] && T_STICKYLB_LOAD="LoadModule stickylb_module $MODULE"
    cat "$BENCH/conf/apache-common.conf.in" "$BENCH/conf/$v.conf.in" >"$d/httpd.conf.in"
    fill_template "$d/httpd.conf.in" "$d/httpd.conf"
    "$HTTPD" -t -f "$d/httpd.conf" >"$d/configtest.log" 2>&1 \
        || { cat "$d/configtest.log" >&2; die "$v: Apache configuration rejected"; }
    "${LB_PIN[@]}" "$HTTPD" -f "$d/httpd.conf" -k start || die "$v: Apache did not start"
    for _ in $(seq 1 50); do [ -s "$d/httpd.pid" ] && break; sleep 0.1; done
    [ -s "$d/httpd.pid" ] || die "$v: no pid file ($(tail -3 "$d/error.log"))"
    pid=$(cat "$d/httpd.pid")
    LBPID[$v]=$pid; PIDFILE[$v]=$d/httpd.pid
    STARTED+=("$pid Apache-$v")
}

start_haproxy() {  # variant
    local v=$1 d=$WORK/$1 pid
    mkdir -p "$d"
    T_DIR=$d T_PORT=${PORT[$v]}
    T_USERLINE=""
    [ "$IS_ROOT" = 1 ] && T_USERLINE="    user $RUN_USER
    group $RUN_GROUP"
    cat "$BENCH/conf/haproxy-common.cfg.in" "$BENCH/conf/$v.cfg.in" >"$d/haproxy.cfg.in"
    fill_template "$d/haproxy.cfg.in" "$d/haproxy.cfg"
    haproxy -c -q -f "$d/haproxy.cfg" >"$d/configcheck.log" 2>&1 \
        || { cat "$d/configcheck.log" >&2; die "$v: HAProxy configuration rejected"; }
    "${LB_PIN[@]}" haproxy -f "$d/haproxy.cfg" >"$d/haproxy.log" 2>&1 || die "$v: HAProxy did not start"
    for _ in $(seq 1 50); do [ -s "$d/haproxy.pid" ] && break; sleep 0.1; done
    [ -s "$d/haproxy.pid" ] || die "$v: no HAProxy pid file"
    pid=$(head -1 "$d/haproxy.pid")
    LBPID[$v]=$pid; PIDFILE[$v]=$d/haproxy.pid
    STARTED+=("$pid HAProxy-$v")
}

for v in "${VARIANTS[@]}"; do
    case ${KIND[$v]} in
        apache|stickylb) PORT[$v]=$(free_port); start_apache "$v" ;;
        haproxy) PORT[$v]=$(free_port); start_haproxy "$v" ;;
        direct) PORT[$v]=$P1; LBPID[$v]="" ;;
    esac
    wait_http "http://127.0.0.1:${PORT[$v]}/" || die "$v does not answer on port ${PORT[$v]}"
    log "$v: port ${PORT[$v]}${LBPID[$v]:+, pid ${LBPID[$v]}}"
done

# every child process at this point, for the check at exit
for v in "${VARIANTS[@]}"; do
    [ -n "${LBPID[$v]}" ] && ALL_CHILDREN="$ALL_CHILDREN $(children_of "${LBPID[$v]}" | tr '\n' ' ')"
done
ALL_CHILDREN="$ALL_CHILDREN $(children_of "$NGINX_PID" | tr '\n' ' ')"

# ---------------------------------------------------------------- sessions
# SESSIONS new-session requests per variant (one curl, one connection):
# their Set-Cookie headers are the cookies of the established sessions.
# Then every session is checked: 20 requests with its cookies must land on
# the member that started it (X-Backend).
# curl writes only the first body to -o; the others go to stdout: keep the
# headers apart by dumping them to a file instead
curl_headers() {   # FILE N URL [curl args...]
    local f=$1 n=$2 url=$3 urls=()
    shift 3
    for _ in $(seq 1 "$n"); do urls+=("$url"); done
    curl -s --max-time 30 -D "$f" "$@" "${urls[@]}" >/dev/null 2>&1 || true
}

log "sessions and stickiness checks ($SESSIONS sessions a variant, 20 requests each)"
MC_BEFORE=$(mc_stats)
MC_START=$MC_BEFORE
for v in "${VARIANTS[@]}"; do
    url="http://127.0.0.1:${PORT[$v]}/"
    d=$WORK/$v; mkdir -p "$d"
    curl_headers "$d/new.headers" "$SESSIONS" "$url"
    parse_headers "$d/new.headers" >"$d/sessions.tsv"
    got=$(wc -l <"$d/sessions.tsv")
    [ "$got" = "$SESSIONS" ] || die "$v: $got responses to $SESSIONS new-session requests"
    awk -F'\t' '$2 == "" || $1 == "-" { bad = 1 } END { exit bad }' "$d/sessions.tsv" \
        || die "$v: a new-session response without X-Backend or Set-Cookie: $(head -3 "$d/sessions.tsv")"
    cut -f2 "$d/sessions.tsv" >"$d/cookies.txt"
    spread=$(cut -f1 "$d/sessions.tsv" | sort -u | tr '\n' ' ')
    nspread=$(cut -f1 "$d/sessions.tsv" | sort -u | wc -l)
    if [ "$v" != direct ] && [ "$nspread" -lt 3 ]; then
        die "$v: $SESSIONS new sessions reached only: $spread"
    fi
    bad=0
    while IFS=$'\t' read -r be ck; do
        curl_headers "$d/check.headers" 20 "$url" -H "Cookie: $ck"
        seen=$(parse_headers "$d/check.headers" | cut -f1 | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
        n=$(parse_headers "$d/check.headers" | awk -F'\t' -v be="$be" '$1 == be { n++ } END { print n + 0 }')
        if [ "${STICKY[$v]}" = 1 ] || [ "$v" = direct ]; then
            if [ "$n" != 20 ]; then
                log "$v: NOT STICKY: session of $be ($ck) went to: $seen"
                bad=1
            fi
        else
            # round robin: the same cookies must be spread (proves the check
            # can fail)
            [ "$n" != 20 ] || { log "$v: 20 requests of one session all on $be: round robin?"; bad=1; }
        fi
    done <"$d/sessions.tsv"
    [ "$bad" = 0 ] || die "$v: stickiness check failed (see above)"
    if [ "${STICKY[$v]}" = 1 ]; then
        log "$v: sticky: $SESSIONS sessions x 20 requests each on their member; new sessions on: $spread"
    else
        log "$v: not sticky by design; new sessions on: $spread"
    fi
    case $v in stickylb-learn-mc*)
        # (each memcached variant's writes, counted from the previous one)
        MC_AFTER=$(mc_stats)
        read -r _ _ _ set0 _ _ <<<"$MC_BEFORE"
        read -r _ _ _ set1 items _ <<<"$MC_AFTER"
        [ $((set1 - set0)) -ge "$SESSIONS" ] \
            || die "$v: memcached received $((set1 - set0)) writes for $SESSIONS new sessions: the memcached store is not used"
        log "$v: memcached got $((set1 - set0)) writes, holds $items items"
        MC_BEFORE=$MC_AFTER
        ;;
    esac
done

# ---------------------------------------------------------------- runs
lb_pids() {   # variant: the PIDs whose CPU is the load balancer's
    local v=$1
    [ -n "${LBPID[$v]}" ] || return 0
    echo "${LBPID[$v]}"
    children_of "${LBPID[$v]}"
}

lb_ticks() {   # variant [PID ...]: CPU ticks of those PIDs (0 without any)
    local v=$1
    shift
    [ $# -gt 0 ] || { echo "0 0"; return 0; }
    proc_ticks "${LBPID[$v]}" "$@"
}

printf 'round\tvariant\tworkload\trequests\tduration_us\terrors\tp50_us\tp99_us\tlb_ticks\tbackend_ticks\tmc_ticks\twrk_ms\tsys_busy\tsys_steal\tlb_procs\tforeign_pct\tlb_user_ticks\n' >"$RESULTS"

run_one() {   # round variant workload seconds
    local round=$1 v=$2 w=$3 secs=$4 d=$WORK/$2 out args=() pids lb0 lb1 be0 be1 mc0 mc1 s0 s1 wrkms line
    out=$d/wrk-$w-r$round.out
    args=(-t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$BENCH/lib/wrk.lua"
          "http://127.0.0.1:${PORT[$v]}/")
    [ "$w" = established ] && args+=(-- "$d/cookies.txt")
    pids=$(lb_pids "$v")
    # shellcheck disable=SC2086
    lb0=$(lb_ticks "$v" $pids)
    be0=$(tree_ticks "$NGINX_PID"); mc0=$(proc_ticks "$MC_PID" "$MC_PID")
    s0=$(sys_ticks)
    # wrk in a subshell: `times` gives the CPU of wrk (its child)
    ( "${CLIENT_PIN[@]}" wrk "${args[@]}" >"$out" 2>&1; times >"$out.times" ) \
        || die "$v/$w: wrk failed: $(tail -5 "$out")"
    s1=$(sys_ticks)
    be1=$(tree_ticks "$NGINX_PID"); mc1=$(proc_ticks "$MC_PID" "$MC_PID")
    # PIDs at the end too: a process started during the run counts
    # shellcheck disable=SC2046,SC2086
    pids=$(printf '%s\n' $pids $(lb_pids "$v") | sort -u)
    # shellcheck disable=SC2086
    lb1=$(lb_ticks "$v" $pids)
    wrkms=$(sed -n 2p "$out.times" | awk '{ t = 0; for (i = 1; i <= 2; i++) {
            s = $i; m = s; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", s); sub(/s$/, "", s);
            t += m * 60 + s } printf "%d\n", t * 1000 }')
    line=$(grep '^BENCH ' "$out" || true)
    [ -n "$line" ] || die "$v/$w: no result from wrk: $(tail -5 "$out")"
    eval "$(printf '%s\n' "${line#BENCH }" | tr ' ' '\n' | sed 's/^/local W_/')"
    # shellcheck disable=SC2154
    local errs=$((W_err_connect + W_err_read + W_err_write + W_err_status + W_err_timeout))
    [ "$W_requests" -gt 0 ] || die "$v/$w: no request completed"
    # proc_ticks gives "total user"
    local lbt=$(( ${lb1% *} - ${lb0% *} )) lbu=$(( ${lb1#* } - ${lb0#* } ))
    local bet=$(( ${be1% *} - ${be0% *} )) mct=$(( ${mc1% *} - ${mc0% *} ))
    local busy=$(( ${s1% *} - ${s0% *} )) steal=$(( ${s1#* } - ${s0#* } ))
    # CPU of processes other than ours during the run, % of the machine
    RUN_FOREIGN=$(awk -v b="$busy" -v o=$((lbt + bet + mct)) -v w="$wrkms" -v hz="$CLK_TCK" \
        -v d="$W_duration_us" -v n="$NCPU" 'BEGIN { f = 100 * (b - o - w * hz / 1000) / (d / 1e6 * n * hz);
        printf "%.1f\n", (f < 0 ? 0 : f) }')
    # shellcheck disable=SC2086
    RUN_LINE=$(printf '%s\t' "$round" "$v" "$w" "$W_requests" "$W_duration_us" "$errs" "$W_p50_us" \
        "$W_p99_us" "$lbt" "$bet" "$mct" "$wrkms" "$busy" "$steal" "$(echo $pids | wc -w)" "$RUN_FOREIGN" "$lbu")
    RUN_LINE=${RUN_LINE%$'\t'}
    if [ "$errs" -gt 0 ]; then
        log "$v/$w round $round: $errs errors (connect $W_err_connect read $W_err_read write $W_err_write status $W_err_status timeout $W_err_timeout)"
    fi
    RUN_SUMMARY=$(awk -v r="$W_requests" -v d="$W_duration_us" -v lb="$lbt" -v hz="$CLK_TCK" \
        -v v="$v" -v w="$w" -v rd="$round" -v f="$RUN_FOREIGN" 'BEGIN {
        printf "round %s %-20s %-11s %8.0f req/s  LB %6.1f us/req  other processes %4.1f%%",
        rd, v, w, r / (d / 1e6), lb * 1e6 / hz / r, f }')
}

# measure: run_one, again when other processes took more than FOREIGN_MAX %
# of the machine during the run (at most 2 attempts a run, at most
# RETRY_BUDGET retries in all); the attempt least disturbed is kept
FOREIGN_MAX=${BENCH_FOREIGN_MAX:-10}
RETRY_BUDGET=0
RETRIES=0
# wait_quiet: before a run, wait (at most QUIET_MAX_WAIT s a run, and
# QUIET_BUDGET s in all) until the machine is quiet: busy less than
# FOREIGN_MAX % over half a second, while none of our processes is loaded
QUIET_MAX_WAIT=${BENCH_QUIET_MAX_WAIT:-20}
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-180}
QUIET_WAITED=0
wait_quiet() {
    local t0 t1 busy waited=0
    while :; do
        t0=$(sys_ticks); sleep 0.5; t1=$(sys_ticks)
        busy=$(( ${t1% *} - ${t0% *} ))
        # busy ticks in 0.5 s against FOREIGN_MAX % of NCPU CPUs
        [ $((busy * 100 * 2)) -le $((FOREIGN_MAX * NCPU * CLK_TCK)) ] && break
        [ "$waited" -lt "$QUIET_MAX_WAIT" ] && [ "$QUIET_WAITED" -lt "$QUIET_BUDGET" ] || break
        sleep 1
        waited=$((waited + 2)); QUIET_WAITED=$((QUIET_WAITED + 2))
    done
    return 0
}

measure() {   # round variant workload seconds
    local best_line="" best_f="" best_sum="" attempt
    for attempt in 1 2; do
        wait_quiet
        run_one "$@"
        if [ -z "$best_f" ] || awk -v a="$RUN_FOREIGN" -v b="$best_f" 'BEGIN { exit !(a < b) }'; then
            best_line=$RUN_LINE; best_f=$RUN_FOREIGN; best_sum=$RUN_SUMMARY
        fi
        awk -v a="$RUN_FOREIGN" -v m="$FOREIGN_MAX" 'BEGIN { exit !(a > m) }' || break
        [ "$attempt" = 1 ] && [ "$RETRIES" -lt "$RETRY_BUDGET" ] || break
        RETRIES=$((RETRIES + 1))
        log "  ($2/$3: other processes took ${RUN_FOREIGN}% of the machine: run again, retry $RETRIES of at most $RETRY_BUDGET)"
    done
    printf '%s\n' "$best_line" >>"$RESULTS"
    log "  $best_sum"
}

NRUNS=$(( ${#VARIANTS[@]} * ${#WORKLOADS[@]} ))
EST=$(( (NRUNS * ROUNDS * (DURATION + 1)) + ${#VARIANTS[@]} * 2 ))
log "$PIN_TEXT"
log "warm-up: 1 s of each variant and workload, not measured"
for v in "${VARIANTS[@]}"; do
    for w in "${WORKLOADS[@]}"; do
        run_one 0 "$v" "$w" 1
    done
done
RETRY_BUDGET=$(( (NRUNS * ROUNDS + 3) / 4 ))

log "$ROUNDS rounds x $NRUNS runs of ${DURATION}s (wrk -t$THREADS -c$CONNS), about $((EST / 60)) min $((EST % 60)) s"
NV=${#VARIANTS[@]}
for round in $(seq 1 "$ROUNDS"); do
    # each round: every variant with one workload, then every variant with
    # the other; the starting variant rotates from round to round
    for w in "${WORKLOADS[@]}"; do
        for k in $(seq 0 $((NV - 1))); do
            v=${VARIANTS[$(( (k + round - 1) % NV ))]}
            measure "$round" "$v" "$w" "$DURATION"
        done
    done
done
MC_END=$(mc_stats)

# ---------------------------------------------------------------- report
LABELS=""
for v in "${VARIANTS[@]}"; do LABELS="$LABELS$v|${LABEL[$v]}
"; done
MACHINE="$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
VERSIONS="$("$HTTPD" -v | awk -F': ' '/version/ { print $2 }'); $(haproxy -v 2>/dev/null | head -1 | awk '{ print "HAProxy " $3 }'); $(nginx -v 2>&1 | sed 's/.*: //'); $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }'); memcached $(memcached -V 2>/dev/null | awk '{ print $2 }'); mod_stickylb $MODULE_DESC"
export BENCH_LABELS=$LABELS BENCH_CLK_TCK=$CLK_TCK BENCH_NCPU=$NCPU BENCH_PIN_TEXT=$PIN_TEXT \
    BENCH_CMD=$CMDLINE BENCH_MACHINE=$MACHINE BENCH_VERSIONS=$VERSIONS \
    BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_CONNS=$CONNS BENCH_THREADS=$THREADS \
    BENCH_SESSIONS=$SESSIONS BENCH_MC="$MC_START|$MC_END" \
    BENCH_RETRIES="$RETRIES of at most $RETRY_BUDGET" BENCH_FOREIGN_MAX=$FOREIGN_MAX \
    BENCH_QUIET="$QUIET_WAITED s (at most $QUIET_MAX_WAIT s a run, $QUIET_BUDGET s in all)"
perl "$BENCH/lib/report.pl" "$RESULTS" "$WORK/report.md" "$WORK/misses"
if [ -n "$MARKDOWN" ]; then
    cp "$WORK/report.md" "$MARKDOWN"
    log "Markdown written to $MARKDOWN"
fi

# ---------------------------------------------------------------- profile
if { [ "$PROFILE" = auto ] && [ -s "$WORK/misses" ]; } || [ "$PROFILE" = yes ]; then
    PROFILE_ALL=0
    [ "$PROFILE" = yes ] && PROFILE_ALL=1
    export HTTPD LIBEXEC MODULE WORK BENCH MCPORT P1 P2 P3 IS_ROOT RUN_USER RUN_GROUP PROFILE_ALL
    bash "$BENCH/lib/profile.sh" "$WORK/misses" | tee "$WORK/profile.txt" || log "profiling failed"
    if [ -n "$MARKDOWN" ] && [ -s "$WORK/profile.txt" ]; then
        { echo; echo '```'; cat "$WORK/profile.txt"; echo '```'; } >>"$MARKDOWN"
    fi
fi
