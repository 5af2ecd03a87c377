# shellcheck shell=bash disable=SC2034
# bench/lib/common.sh - helpers of bench/run.sh (sourced, not run).
# Process accounting reads /proc only; processes are found and stopped by
# PID, never by name.

log() { printf '%s\n' "bench: $*" >&2; }
die() { printf '%s\n' "bench: ERROR: $*" >&2; exit 1; }

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# free_port: a loopback port nobody listens on, never one handed out before
# in this run (the kernel picks it; we close it again at once)
BENCH_PORTS=" "
free_port() {
    local p
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$(perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die; print $s->sockport')
        case $BENCH_PORTS in
            *" $p "*) continue ;;
        esac
        BENCH_PORTS="$BENCH_PORTS$p "
        echo "$p"
        return 0
    done
    die "no free port"
}

# fill_template IN OUT: replaces @NAME@ by the value of the shell variable
# T_NAME for every T_* variable set
fill_template() {
    local in=$1 out=$2 v pairs=()
    for v in $(compgen -v T_); do
        pairs+=("${v#T_}=${!v}")
    done
    perl -e 'my ($in, $out, @kv) = @ARGV; my %v;
        for (@kv) { my ($k, $x) = split /=/, $_, 2; $v{$k} = $x }
        open my $i, "<", $in or die "$in: $!\n"; local $/; my $t = <$i>;
        $t =~ s/\@([A-Z_0-9]+)\@/exists $v{$1} ? $v{$1} : die "$in: \@$1\@ not set\n"/ge;
        open my $o, ">", $out or die "$out: $!\n"; print $o $t;' "$in" "$out" "${pairs[@]}" \
        || die "cannot fill $in"
}

# children PIDs of a PID (from /proc, so no dependency on ps options)
children_of() {
    # one read of every /proc/<pid>/stat: field 1 pid, field 4 (ppid) after
    # the ")" closing the command name
    # (a process may end between the glob and the read: not an error)
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v want="$1" '
        { pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, a, " ");
          if (a[2] == want) print pid }'
}

# proc_ticks PARENT [PID ...]: "TOTAL USER": utime+stime, and utime alone,
# of every PID of the list (which includes PARENT when it is to count), plus
# cutime+cstime (cutime) of PARENT: the children it reaped, so a process that
# exited during a run still counts.  Clock ticks (CLK_TCK a second).
proc_ticks() {
    local parent=$1 files=() p
    shift
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && files+=("/proc/$p/stat")
    done
    [ "${#files[@]}" -gt 0 ] || { echo "0 0"; return 0; }
    awk -v parent="/proc/$parent/stat" '
        { s = $0; sub(/^.*\) /, "", s); split(s, a, " ");
          t += a[12] + a[13]; u += a[12];
          if (FILENAME == parent) { t += a[14] + a[15]; u += a[14] } }
        END { printf "%d %d\n", t, u }' "${files[@]}" 2>/dev/null || echo "0 0"
}

# tree_ticks PID: proc_ticks of PID and all its children
tree_ticks() {
    local pid=$1
    [ -n "$pid" ] || { echo "0 0"; return 0; }
    # shellcheck disable=SC2046
    proc_ticks "$pid" "$pid" $(children_of "$pid")
}

# sys_ticks: "busy steal" of the whole machine from /proc/stat (busy = user
# + nice + system, the time processes ran; irq/softirq and steal apart)
sys_ticks() {
    awk '$1 == "cpu" { printf "%d %d\n", $2 + $3 + $4, $9; exit }' /proc/stat
}

# wait_http URL: until something answers there (5 s)
wait_http() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.05
    done
    return 1
}

# stop_pid PID [NAME]: TERM, wait up to 10 s, then KILL
stop_pid() {
    local pid=$1 name=${2:-process}
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "$name (pid $pid) did not stop on TERM: KILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# parse_headers FILE: one line per response in a curl -D dump:
#   <X-Backend value> TAB <Cookie header a browser would send back>
parse_headers() {
    awk '
        function flush() { if (started) { print be "\t" ck } }
        { sub(/\r$/, "") }
        /^HTTP\// { flush(); started = 1; be = "-"; ck = ""; next }
        tolower($0) ~ /^x-backend:/ { v = $0; sub(/^[^:]*:[ \t]*/, "", v); be = v; next }
        tolower($0) ~ /^set-cookie:/ {
            v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/;.*/, "", v);
            ck = (ck == "") ? v : ck "; " v; next }
        END { flush() }' "$1"
}

# median of the numbers on stdin
median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "";
        else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
