#!/usr/bin/env bash
# bench/probe_bench.sh - CPU cost of the health prober (StickyLBProbe) with
# many members: a benchmark to run by hand, not a timed test.
#
#   bash bench/probe_bench.sh                       # 1000 members, http, 30 s
#   bash bench/probe_bench.sh --members 2000 --kind tcp
#
# Options:
#   --members N      balancer members to probe (default 1000), all on
#                    127.0.0.1, served by one bench/probe_listeners.pl
#                    process listening on N ports
#   --seconds S      measurement window (default 30), made of whole probe
#                    batches: ceil(S / interval) of them, from just after
#                    one batch to just after the last
#   --kind K         http (default) or tcp: the StickyLBProbe kind
#   --interval I     probe interval in seconds (default 2; timeout=1)
#   --per-balancer M members per balancer (default 0: all in one balancer);
#                    the members are split over ceil(N/M) balancers
#   --settle S       seconds between the start and the measurement (default 5)
#   --profile        after the measurement, sample the prober thread with
#                    `perf record -e cpu-clock` for S seconds and print its
#                    hottest functions (needs perf; not part of the figure)
#   --callgrind      after the measurement, stop Apache and run it as one
#                    process (apache2 -X, same configuration and members)
#                    under valgrind's callgrind for S seconds, collecting
#                    inside probe_tick only; prints exact user-space
#                    instruction counts by function (the kernel's share of
#                    the CPU is not in them: see --profile)
#   --keep-dir       keep the work directory (config, logs)
#
# What it does: starts the listeners, writes a private Apache configuration
# (own ServerRoot, PidFile, DefaultRuntimeDir, Mutex, ErrorLog; mpm_event
# with one child process of 25 threads, so the watchdog singleton that
# probes is in that child; `WatchdogInterval 200ms`) with the N members,
# `ProxySet lbmethod=stickylb` and
# `StickyLBProbe <kind> path=/health interval=2 timeout=1 rise=2 fall=3`
# (path= for http only),
# starts Apache, waits --settle seconds and checks that no member was marked
# down (SLB0305) and that probes arrive.  Then, with no client traffic, it
# reads the CPU time (utime+stime, /proc/<pid>/stat, and per thread from
# /proc/<pid>/task/*/stat and schedstat) of the Apache child over the
# window, and the probes the listeners saw (their counters, dumped on
# SIGUSR1; the window starts and ends at a quiet moment 400 ms after a
# batch, so it holds whole batches), and prints:
#   members, interval, probes expected per second (N / interval), probes
#   done, CPU seconds of the child and of its busiest thread (the prober:
#   with no traffic it is the only thread that works), CPU share of one core
#   in %, and PASS/MISS against the target: the child's share (an upper bound
#   of the prober's) at most 5% of one core.
# Exit status: 0 PASS, 1 MISS or error.
#
# As root it installs what is missing (scripts/deps.sh, else apt-get) and
# runs Apache as nobody.  The module is built with scripts/build.sh
# (SLB_BUILD_DIR is honoured), or taken from SLB_MODULE=/path/mod_stickylb.so.
# Everything it starts listens on 127.0.0.1 only and is stopped by PID on
# exit; nothing is left running.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$BENCH/.." && pwd)

MEMBERS=1000
SECS=30
KIND=http
INTERVAL=2
PER_BAL=0
SETTLE=5
PROFILE=0
CALLGRIND=0
KEEP_DIR=0
TARGET_PCT=5
TICK=200ms

log() { printf '%s\n' "probe_bench: $*" >&2; }
die() { printf '%s\n' "probe_bench: ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
isint() { case $1 in ''|*[!0-9]*) return 1 ;; esac; [ "$1" -gt 0 ]; }

while [ $# -gt 0 ]; do
    case $1 in
        --members) MEMBERS=${2:-}; shift ;;
        --seconds) SECS=${2:-}; shift ;;
        --kind) KIND=${2:-}; shift ;;
        --interval) INTERVAL=${2:-}; shift ;;
        --per-balancer) PER_BAL=${2:-}; shift ;;
        --settle) SETTLE=${2:-}; shift ;;
        --profile) PROFILE=1 ;;
        --callgrind) CALLGRIND=1 ;;
        --keep-dir) KEEP_DIR=1 ;;
        -h|--help) usage 0 ;;
        *) log "unknown option: $1"; usage 2 ;;
    esac
    shift
done
isint "$MEMBERS" || die "--members needs a positive integer"
isint "$SECS" || die "--seconds needs a positive integer"
isint "$INTERVAL" || die "--interval needs a positive integer (seconds)"
isint "$SETTLE" || die "--settle needs a positive integer"
case $PER_BAL in ''|*[!0-9]*) die "--per-balancer needs an integer" ;; esac
case $KIND in http|tcp) ;; *) die "--kind is http or tcp" ;; esac
[ "$PER_BAL" -eq 0 ] && PER_BAL=$MEMBERS

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# ---- what is needed
NEED_PKGS=(gcc make libc6-dev autoconf automake libtool pkg-config apache2
           apache2-dev libapr1-dev libaprutil1-dev libmemcached-dev libssl-dev perl
           procps)
[ "$PROFILE" = 1 ] && NEED_PKGS+=(linux-perf)
[ "$CALLGRIND" = 1 ] && NEED_PKGS+=(valgrind util-linux)
missing=()
for p in "${NEED_PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$IS_ROOT" = 1 ] || die "missing packages (run as root to install): ${missing[*]}"
    log "installing what is missing: ${missing[*]}"
    ok=0
    if [ -f "$TOP/scripts/deps.sh" ]; then
        if bash "$TOP/scripts/deps.sh" >&2; then
            ok=1
        else
            log "scripts/deps.sh failed: apt-get for the bench's own list"
        fi
    fi
    if [ "$ok" = 0 ] || [ "$PROFILE" = 1 ] || [ "$CALLGRIND" = 1 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install failed"
    fi
fi
HTTPD=$(command -v apache2 || true)
[ -n "$HTTPD" ] || HTTPD=/usr/sbin/apache2
[ -x "$HTTPD" ] || die "apache2 not found"
LIBEXEC=/usr/lib/apache2/modules
for m in mpm_event authz_core slotmem_shm proxy proxy_http proxy_balancer; do
    [ -f "$LIBEXEC/mod_$m.so" ] || die "$LIBEXEC/mod_$m.so missing"
done
WD_LOAD=""
if ! "$HTTPD" -l 2>/dev/null | grep -q mod_watchdog.c; then
    [ -f "$LIBEXEC/mod_watchdog.so" ] \
        || die "mod_watchdog is neither built into $HTTPD nor in $LIBEXEC"
    WD_LOAD="LoadModule watchdog_module $LIBEXEC/mod_watchdog.so"
fi

# ---- the module
if [ -n "${SLB_MODULE:-}" ]; then
    MODULE=$SLB_MODULE
    [ -f "$MODULE" ] || die "SLB_MODULE=$MODULE does not exist"
else
    BUILD_DIR=${SLB_BUILD_DIR:-$TOP/_build}
    log "building the module (scripts/build.sh, SLB_BUILD_DIR=$BUILD_DIR)"
    SLB_BUILD_DIR=$BUILD_DIR bash "$TOP/scripts/build.sh" >"${TMPDIR:-/tmp}/probe_bench_build.$$.log" 2>&1 \
        || { tail -30 "${TMPDIR:-/tmp}/probe_bench_build.$$.log" >&2; die "build failed"; }
    rm -f "${TMPDIR:-/tmp}/probe_bench_build.$$.log"
    MODULE=$BUILD_DIR/.libs/mod_stickylb.so
fi
[ -f "$MODULE" ] || die "$MODULE missing"

# ---- file descriptors: N listeners + N connections here, N sockets in the
# Apache child at once (one batch), plus the rest
NEED_FD=$((2 * MEMBERS + 512))
soft=$(ulimit -Sn); hard=$(ulimit -Hn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$NEED_FD" ]; then
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$NEED_FD" ]; then
        ulimit -Hn "$NEED_FD" 2>/dev/null || die "fd limit $hard < $NEED_FD and cannot be raised (run as root)"
    fi
    ulimit -Sn "$NEED_FD" || die "cannot raise the fd limit to $NEED_FD"
fi

# ---- work directory, and stopping everything at exit
WORK=$(mktemp -d "${TMPDIR:-/tmp}/probe-bench.XXXXXX")
chmod 755 "$WORK"
LPID=""; APID=""; CPID=""; PERF_PID=""; VG_PID=""

stop_pid() {   # PID NAME [SECONDS]: TERM, up to 10 s (or SECONDS), then KILL
    local pid=$1 name=$2 tenths=$(( ${3:-10} * 10 ))
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "$name (pid $pid) did not stop on TERM: KILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$PERF_PID" perf
    stop_pid "$VG_PID" "callgrind Apache" 60
    stop_pid "$APID" "Apache"
    # the child goes with its parent; by its PID if it outlived it
    if [ -n "$CPID" ] && kill -0 "$CPID" 2>/dev/null; then
        sleep 1
        stop_pid "$CPID" "Apache child"
    fi
    stop_pid "$LPID" "listeners"
    wait 2>/dev/null || true
    if [ "$KEEP_DIR" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the members
log "starting $MEMBERS listeners (bench/probe_listeners.pl)"
perl "$BENCH/probe_listeners.pl" --count "$MEMBERS" --ports-file "$WORK/ports" \
    --stats-file "$WORK/listen.stats" >"$WORK/listeners.log" 2>&1 &
LPID=$!
for _ in $(seq 1 300); do
    [ -s "$WORK/ports" ] && break
    kill -0 "$LPID" 2>/dev/null || { cat "$WORK/listeners.log" >&2; die "the listeners did not start"; }
    sleep 0.1
done
[ -s "$WORK/ports" ] || die "the listeners did not write their ports"
[ "$(wc -l <"$WORK/ports")" -eq "$MEMBERS" ] || die "$(wc -l <"$WORK/ports") ports, not $MEMBERS"

# listener counters: USR1, then wait for the next write of the stats file
stats_seq() { sed -n 's/.*seq=\([0-9]*\).*/\1/p' "$WORK/listen.stats" 2>/dev/null || echo 0; }
stats_now() {   # prints the stats line just dumped
    local before
    before=$(stats_seq)
    kill -USR1 "$LPID"
    for _ in $(seq 1 200); do
        [ "$(stats_seq)" != "$before" ] && break
        sleep 0.01
    done
    cat "$WORK/listen.stats"
}
stat_field() { sed -n "s/.* $1=\\([0-9]*\\).*/\\1/p" <<<"$2"; }

# ---- the Apache configuration
APORT=$(perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die; print $s->sockport')
USERLINE=""
if [ "$IS_ROOT" = 1 ]; then
    RUN_GROUP=$(id -gn nobody 2>/dev/null || echo nogroup)
    USERLINE="User nobody
Group $RUN_GROUP"
fi
PROBE_LINE="StickyLBProbe $KIND"
[ "$KIND" = http ] && PROBE_LINE="$PROBE_LINE path=/health"
PROBE_LINE="$PROBE_LINE interval=$INTERVAL timeout=1 rise=2 fall=3"
NBAL=$(( (MEMBERS + PER_BAL - 1) / PER_BAL ))
write_conf() {   # DIR PORT USERLINE: the configuration, on stdout
    local dir=$1 port=$2 userline=$3 i=0 b=0 mport
    cat <<EOF
# generated by bench/probe_bench.sh: $MEMBERS members, $NBAL balancer(s)
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error.log"
LogLevel warn
$userline
LoadModule mpm_event_module $LIBEXEC/mod_mpm_event.so
LoadModule authz_core_module $LIBEXEC/mod_authz_core.so
LoadModule slotmem_shm_module $LIBEXEC/mod_slotmem_shm.so
$WD_LOAD
LoadModule proxy_module $LIBEXEC/mod_proxy.so
LoadModule proxy_http_module $LIBEXEC/mod_proxy_http.so
LoadModule proxy_balancer_module $LIBEXEC/mod_proxy_balancer.so
LoadModule stickylb_module $MODULE

# one child process, so the watchdog singleton (the prober) is in it
StartServers 1
ServerLimit 1
ThreadsPerChild 25
ThreadLimit 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
MaxConnectionsPerChild 0

# as the README configures the prober (mod_watchdog in httpd 2.4 runs
# registered callbacks on its fixed 100 ms slice; WatchdogInterval paces
# its hook-mode watchdogs)
WatchdogInterval $TICK

<Location "/">
    Require all granted
</Location>
EOF
    while read -r mport; do
        if [ $((i % PER_BAL)) -eq 0 ]; then
            [ "$b" -gt 0 ] && printf '    ProxySet lbmethod=stickylb\n    %s\n</Proxy>\nProxyPass "/p%d" "balancer://probe%d"\n' "$PROBE_LINE" "$b" "$b"
            b=$((b + 1))
            printf '<Proxy "balancer://probe%d">\n' "$b"
        fi
        i=$((i + 1))
        printf '    BalancerMember "http://127.0.0.1:%s" route=m%d\n' "$mport" "$i"
    done <"$WORK/ports"
    printf '    ProxySet lbmethod=stickylb\n    %s\n</Proxy>\nProxyPass "/p%d" "balancer://probe%d"\n' "$PROBE_LINE" "$b" "$b"
}
CONF=$WORK/httpd.conf
write_conf "$WORK" "$APORT" "$USERLINE" >"$CONF"

"$HTTPD" -t -f "$CONF" >"$WORK/configtest.log" 2>&1 \
    || { cat "$WORK/configtest.log" >&2; die "Apache configuration rejected (kept: --keep-dir to see $CONF)"; }

# ---- Apache, in the foreground of a background job: $! is the parent
log "starting Apache (port $APORT, $NBAL balancer(s), $PROBE_LINE)"
"$HTTPD" -f "$CONF" -DFOREGROUND >"$WORK/httpd.out" 2>&1 &
APID=$!
children_of() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v want="$1" '
        { pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, a, " ");
          if (a[2] == want) print pid }'
}
for _ in $(seq 1 100); do
    kill -0 "$APID" 2>/dev/null || { cat "$WORK/httpd.out" "$WORK/error.log" >&2 2>/dev/null; die "Apache exited"; }
    CPID=$(children_of "$APID" | head -1)
    [ -n "$CPID" ] && break
    sleep 0.1
done
[ -n "$CPID" ] || die "no Apache child process"
log "Apache parent $APID, child $CPID; settling ${SETTLE} s"
sleep "$SETTLE"
NCHILD=$(children_of "$APID" | wc -l)
[ "$NCHILD" -eq 1 ] || die "$NCHILD Apache children, expected 1"
[ "$(children_of "$APID")" = "$CPID" ] || die "the Apache child changed"

down_lines() { grep -c 'SLB0305' "$WORK/error.log" 2>/dev/null || true; }
if grep -E 'SLB030[1678]|\[(crit|alert|emerg)\]' "$WORK/error.log" >&2; then
    die "the prober did not start (see above)"
fi
S0=$(stats_now)
ACC0=$(stat_field accepts "$S0")
[ "${ACC0:-0}" -gt 0 ] || die "no probe reached the listeners in $SETTLE s"
DOWN0=$(down_lines)
if [ "$DOWN0" -gt 0 ]; then
    grep SLB0305 "$WORK/error.log" | head -5 >&2
    die "$DOWN0 member(s) marked down before the measurement"
fi
log "$ACC0 probes so far, no member down; measuring ${SECS} s (no client traffic)"

# ---- the measurement
ticks_of() {   # stat file -> utime+stime
    awk '{ s = $0; sub(/^.*\) /, "", s); split(s, a, " "); print a[12] + a[13] }' "$1" 2>/dev/null || echo 0
}
threads_snap() {   # TID utime+stime(ticks) runtime(ns) for every thread of the child
    awk '{ n = split(FILENAME, f, "/"); tid = f[n - 1] }
         FILENAME ~ /schedstat$/ { ns[tid] = $1; next }
         { s = $0; sub(/^.*\) /, "", s); split(s, a, " "); tk[tid] = a[12] + a[13] }
         END { for (t in tk) print t, tk[t], ns[t] + 0 }' \
        /proc/"$CPID"/task/*/stat /proc/"$CPID"/task/*/schedstat 2>/dev/null || true
}
sys_busy() { awk '$1 == "cpu" { print $2 + $3 + $4; exit }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# the window runs from a quiet moment just after a batch (no connection open
# at the listeners, none accepted for 400 ms) to the same moment after the
# K-th batch from there, K = ceil(S / interval): K whole batches, K intervals
quiet_stats() {   # MIN_BURSTS: the listeners' stats at such a moment
    local min=$1 s open idle bursts end=$((SECONDS + INTERVAL + 2))
    while :; do
        s=$(stats_now)
        open=$(stat_field open "$s"); idle=$(stat_field idle_ms "$s")
        bursts=$(stat_field bursts "$s")
        if [ "${open:-1}" -eq 0 ] && [ -n "$idle" ] && [ "$idle" -ge 400 ] \
           && [ "${bursts:-0}" -ge "$min" ]; then
            printf '%s\n' "$s"
            return 0
        fi
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.05
    done
}
K=$(( (SECS + INTERVAL - 1) / INTERVAL ))
# probes spread over the interval leave no quiet moment: then the window is
# a fixed SECS seconds, started anywhere (the load is steady)
CONTINUOUS=0
S1=$(quiet_stats $(( $(stat_field bursts "$(stats_now)") + 1 ))) || {
    CONTINUOUS=1
    S1=$(stats_now)
}
P_T0=$(ticks_of "/proc/$APID/stat")
L_T0=$(ticks_of "/proc/$LPID/stat")
C_T0=$(ticks_of "/proc/$CPID/stat")
SYS0=$(sys_busy)
threads_snap >"$WORK/threads.0"
T0=$(date +%s.%N)
kill -USR2 "$LPID"   # the largest spread of this window only
B1=$(stat_field bursts "$S1")
if [ "$CONTINUOUS" = 1 ]; then
    sleep "$SECS"
    S2=$(stats_now)
else
    [ "$SECS" -gt "$INTERVAL" ] && sleep $((SECS - INTERVAL))
    S2=$(quiet_stats $((B1 + K))) || die "the probe batches stopped or never end (see $WORK/error.log)"
fi
T1=$(date +%s.%N)
threads_snap >"$WORK/threads.1"
C_T1=$(ticks_of "/proc/$CPID/stat")
P_T1=$(ticks_of "/proc/$APID/stat")
L_T1=$(ticks_of "/proc/$LPID/stat")
SYS1=$(sys_busy)
[ "$(children_of "$APID")" = "$CPID" ] || die "the Apache child changed during the measurement"
DOWN1=$(down_lines)
UP1=$(grep -c 'SLB0304' "$WORK/error.log" 2>/dev/null || true)

# busiest thread over the window
sort -k1,1 "$WORK/threads.0" >"$WORK/threads.0s"
sort -k1,1 "$WORK/threads.1" >"$WORK/threads.1s"
read -r BUSY_TID BUSY_TICKS BUSY_NS < <(join "$WORK/threads.0s" "$WORK/threads.1s" \
    | awk '{ print $1, $4 - $2, $5 - $3 }' | sort -k3,3nr -k2,2nr | head -1)
NTHREADS=$(wc -l <"$WORK/threads.1")
THREAD_SUM_NS=$(join "$WORK/threads.0s" "$WORK/threads.1s" | awk '{ s += $5 - $3 } END { printf "%d", s }')

perl -e '
    my ($members, $interval, $secs, $kind, $t0, $t1, $s1, $s2, $ct0, $ct1,
        $pt0, $pt1, $hz, $btid, $bticks, $bns, $sumns, $nthr, $sys0, $sys1,
        $down, $up, $target, $nbal, $lt0, $lt1) = @ARGV;
    my %a = $s1 =~ /(\w+)=([\d.]+)/g;
    my %b = $s2 =~ /(\w+)=([\d.]+)/g;
    my $wall = $t1 - $t0;
    my $batches = $b{bursts} - $a{bursts};
    my $acc = $b{accepts} - $a{accepts};
    my $ans = $b{responses} - $a{responses};
    my $empty = $b{empty} - $a{empty};
    my $err = $b{errors} - $a{errors};
    my $child = ($ct1 - $ct0) / $hz;
    my $parent = ($pt1 - $pt0) / $hz;
    my $busy = $bns > 0 ? $bns / 1e9 : $bticks / $hz;
    my $pct_child = 100 * $child / $wall;
    my $pct_busy = 100 * $busy / $wall;
    my $exp = $members / $interval;
    my $done = $kind eq "http" ? $ans : $acc;
    my $verdict = $pct_child <= $target ? "PASS" : "MISS";
    printf "mod_stickylb prober CPU benchmark (bench/probe_bench.sh)\n";
    printf "%-44s %s\n", "members", "$members ($nbal balancer" . ($nbal > 1 ? "s" : "") . ", one child process)";
    printf "%-44s %s\n", "probe", "$kind, interval ${interval} s, timeout 1 s, WatchdogInterval 200ms";
    printf "%-44s %.1f s (%d whole probe batches, no client traffic)\n", "measured", $wall, $batches;
    printf "%-44s %.1f\n", "probes expected per second (N/interval)", $exp;
    printf "%-44s %d (%.1f/s, %.1f%% of expected)\n", "probes done" . ($kind eq "http" ? " (200 answers)" : " (connections)"),
        $done, $done / $wall, 100 * $done / $wall / $exp;
    printf "%-44s %d accepted, %d answered, %d closed without request, %d errors\n",
        "  at the listeners", $acc, $ans, $empty, $err;
    printf "%-44s %.0f ms (first to last connection of a batch, largest)\n",
        "  batch spread at the listeners", $b{spread_max_ms};
    printf "%-44s %d down (SLB0305), %d up (SLB0304) in the error log\n", "member transitions", $down, $up;
    printf "%-44s %.2f s (%d threads)\n", "CPU of the Apache child", $child, $nthr;
    printf "%-44s %.2f s (thread %d)\n", "CPU of its busiest thread (the prober)", $busy, $btid;
    printf "%-44s %.2f s\n", "CPU of the Apache parent", $parent;
    printf "%-44s %.2f%% of one core\n", "CPU share, Apache child", $pct_child;
    printf "%-44s %.2f%% of one core\n", "CPU share, prober thread", $pct_busy;
    printf "%-44s %.1f us\n", "CPU per probe (child)", $done ? 1e6 * $child / $done : 0;
    printf "%-44s %.2f s (%.1f%% of one core; not part of the figure)\n", "CPU of the listeners (the members)",
        ($lt1 - $lt0) / $hz, 100 * ($lt1 - $lt0) / $hz / $wall;
    printf "%-44s %.1f%% of one core (all processes, for context)\n", "machine busy meanwhile", 100 * ($sys1 - $sys0) / $hz / $wall;
    printf "%-44s %s (child %.2f%% %s %d%% of one core)\n", "target", $verdict, $pct_child,
        $verdict eq "PASS" ? "<=" : ">", $target;
    exit($verdict eq "PASS" ? 0 : 3);
' "$MEMBERS" "$INTERVAL" "$SECS" "$KIND" "$T0" "$T1" "$S1" "$S2" "$C_T0" "$C_T1" \
  "$P_T0" "$P_T1" "$CLK_TCK" "$BUSY_TID" "$BUSY_TICKS" "$BUSY_NS" "$THREAD_SUM_NS" \
  "$NTHREADS" "$SYS0" "$SYS1" "$DOWN1" "$UP1" "$TARGET_PCT" "$NBAL" "$L_T0" "$L_T1" && RC=0 || RC=$?
[ "$RC" -le 3 ] || die "report failed"
if [ "$DOWN1" -gt 0 ]; then
    log "members went down during the measurement:"
    grep SLB0305 "$WORK/error.log" | head -5 >&2
    RC=3
fi

# ---- optional: where the prober's CPU goes (after the window, not in it)
if [ "$PROFILE" = 1 ]; then
    if command -v perf >/dev/null && perf record -e cpu-clock -o "$WORK/perf.test" -- true >/dev/null 2>&1; then
        log "profiling thread $BUSY_TID with perf (cpu-clock, ${SECS} s)"
        perf record -e cpu-clock -F 999 -g -t "$BUSY_TID" -o "$WORK/perf.data" -- sleep "$SECS" \
            >"$WORK/perf.log" 2>&1 &
        PERF_PID=$!
        wait "$PERF_PID" || true
        PERF_PID=""
        top() { grep -E '^ +[0-9.]+%' | awk -v n="$1" 'NR <= n { $NF == "-" && NF -= 2; print }' || true; }
        echo
        echo "perf: prober thread $BUSY_TID, $(perf report -i "$WORK/perf.data" --stdio --sort dso 2>/dev/null | sed -n 's/^# Samples: \([^ ]*\).*/\1/p' | head -1) samples of cpu-clock; share by object:"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | top 10
        echo
        echo "perf: self time by function (top 25)"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null | top 25
        echo
        echo "perf: including callees, user-space functions (top 25)"
        perf report -i "$WORK/perf.data" --stdio --children --sort dso,symbol -g none 2>/dev/null \
            | grep -v '\[k\]' | top 25
    else
        log "perf cannot sample here: no profile"
    fi
fi
# ---- optional: exact user-space instruction counts (callgrind)
if [ "$CALLGRIND" = 1 ]; then
    command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null \
        || die "--callgrind needs valgrind"
    log "callgrind: Apache stopped; apache2 -X under callgrind for ${SECS} s (collecting in probe_tick only)"
    stop_pid "$APID" Apache
    APID=""; CPID=""
    CG=$WORK/callgrind
    mkdir -p "$CG"
    chmod 777 "$CG"   # Apache writes its logs, locks and the profile as nobody
    CGPORT=$(perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die; print $s->sockport')
    write_conf "$CG" "$CGPORT" "" >"$CG/httpd.conf"
    asuser=()
    # as root, valgrind runs as nobody from the start (an Apache that
    # switched user could not write its profile at exit)
    [ "$IS_ROOT" = 1 ] && asuser=(setpriv --reuid=nobody --regid="$RUN_GROUP" --clear-groups --)
    CA0=$(stat_field accepts "$(stats_now)")
    "${asuser[@]}" valgrind --tool=callgrind --callgrind-out-file="$CG/callgrind.out" \
        --toggle-collect=probe_tick "$HTTPD" -X -f "$CG/httpd.conf" >"$CG/valgrind.log" 2>&1 &
    VG_PID=$!
    sleep "$SECS"
    kill -0 "$VG_PID" 2>/dev/null || { tail -20 "$CG/valgrind.log" "$CG/error.log" >&2; die "callgrind Apache exited"; }
    stop_pid "$VG_PID" "callgrind Apache" 60
    VG_PID=""
    CA1=$(stat_field accepts "$(stats_now)")
    [ -s "$CG/callgrind.out" ] || { tail -20 "$CG/valgrind.log" >&2; die "no callgrind output"; }
    CG_PROBES=$((CA1 - CA0))
    CG_DOWN=$(grep -c SLB0305 "$CG/error.log" 2>/dev/null || true)
    CG_TOTAL=$(awk '/^(summary|totals):/ { print $2; exit }' "$CG/callgrind.out")
    echo
    echo "callgrind: apache2 -X, ${SECS} s, collection inside probe_tick; $CG_PROBES probes reached the listeners (${CG_DOWN:-0} members marked down under valgrind's slowdown)"
    printf '%s\n' "callgrind: $CG_TOTAL instructions in probe_tick, $(( CG_PROBES > 0 ? CG_TOTAL / CG_PROBES : 0 )) per probe (user space only)"
    echo
    echo "callgrind: self instructions by function (top 20)"
    callgrind_annotate --inclusive=no "$CG/callgrind.out" 2>/dev/null \
        | awk '/^-+$/ { n++; next } n >= 3 && NF' | head -20 || true
    echo
    echo "callgrind: inclusive instructions by function (top 20)"
    callgrind_annotate --inclusive=yes "$CG/callgrind.out" 2>/dev/null \
        | awk '/^-+$/ { n++; next } n >= 3 && NF' | head -20 || true
fi
[ "$RC" -eq 0 ] && exit 0
exit 1
