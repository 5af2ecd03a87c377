#!/usr/bin/env bash
# docker/peers-local.sh - the peers scenario of docker/docker-compose.yml,
# without Docker: the same docker/lb.conf (for lb1 and lb2, with their
# environment), two memcached, three t/backend.pl backends
# (--no-route-suffix) and docker/client.sh, all on loopback ports of this
# machine.  It checks the files the containers use where Docker is not
# available; everything it starts is stopped at the end.
#
#   bash docker/peers-local.sh
#
# The module: $SLB_MODULE, else the installed one
# (/usr/lib/apache2/modules/mod_stickylb.so), else <repo>/_build's
# (scripts/build.sh).  Needs apache2, memcached, perl, curl (scripts/deps.sh).
# The last line is client.sh's "peers: N passed, M failed".
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HTTPD=${HTTPD:-/usr/sbin/apache2}
LIBEXEC=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)
MODULE=${SLB_MODULE:-}
if [ -z "$MODULE" ]; then
    if [ -f "$LIBEXEC/mod_stickylb.so" ]; then
        MODULE=$LIBEXEC/mod_stickylb.so
    else
        MODULE=${SLB_BUILD_DIR:-$TOP/_build}/.libs/mod_stickylb.so
        [ -f "$MODULE" ] || bash "$TOP/scripts/build.sh" > /dev/null
    fi
fi
[ -f "$MODULE" ] || { echo "peers-local: no module at $MODULE" >&2; exit 1; }

RUN=$(mktemp -d /tmp/stickylb-peers-XXXXXX)
chmod 755 "$RUN"
RUN_USER=$(id -un); RUN_GROUP=$(id -gn)
if [ "$(id -u)" = 0 ]; then RUN_USER=nobody; RUN_GROUP=nogroup; fi

free_port() {
    perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die; print $s->sockport'
}

# shellcheck disable=SC2317  # (called from the EXIT trap)
stop_pid() {  # stop_pid PID
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

MC_PIDS=()
LB_PIDS=()
# shellcheck disable=SC2317
cleanup() {
    local pid
    # (apache2 -k stop would need each one's environment to read lb.conf:
    # the parent processes, started in the foreground, get SIGTERM instead)
    for pid in "${LB_PIDS[@]}"; do stop_pid "$pid"; done
    for r in t1 t2 t3; do
        if [ -s "$RUN/$r.pid" ]; then stop_pid "$(cat "$RUN/$r.pid")"; fi
    done
    for pid in "${MC_PIDS[@]}"; do stop_pid "$pid"; done
    if [ -n "${SLB_KEEP_RUN:-}" ]; then echo "peers-local: kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT

# ---- memcached x2 (mc1, mc2)
MC_SERVERS=""
for mc in mc1 mc2; do
    port=$(free_port)
    args=(-l 127.0.0.1 -p "$port" -U 0 -m 16)
    [ "$(id -u)" = 0 ] && args+=(-u nobody)
    /usr/bin/memcached "${args[@]}" > "$RUN/$mc.log" 2>&1 &
    MC_PIDS+=($!)
    MC_SERVERS="$MC_SERVERS${MC_SERVERS:+ }--SERVER=127.0.0.1:$port"
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
done

# ---- backends t1..t3, ids without a route suffix (as in the compose file)
declare -A BACKEND
for r in t1 t2 t3; do
    port=$(free_port)
    perl "$TOP/t/backend.pl" --host 127.0.0.1 --port "$port" --route "$r" \
        --no-route-suffix --pidfile "$RUN/$r.pid" > "$RUN/$r.log" 2>&1 &
    BACKEND[$r]=127.0.0.1:$port
    for _ in $(seq 1 50); do
        [ -s "$RUN/$r.pid" ] && break
        sleep 0.1
    done
    [ -s "$RUN/$r.pid" ] || { echo "peers-local: backend $r did not start" >&2; cat "$RUN/$r.log" >&2; exit 1; }
done

# ---- lb1, lb2: docker/lb.conf with each one's environment
declare -A LBPORT
for lb in lb1 lb2; do
    port=$(free_port)
    LBPORT[$lb]=$port
    mkdir -p "$RUN/$lb"
    cat > "$RUN/$lb/httpd.conf" <<CONF
# what Debian's apache2.conf and the image's enabled modules give lb.conf
ServerRoot "$RUN/$lb"
Listen 127.0.0.1:\${LB_PORT}
PidFile "$RUN/$lb/httpd.pid"
DefaultRuntimeDir "$RUN/$lb"
Mutex file:$RUN/$lb default
LogLevel warn
User $RUN_USER
Group $RUN_GROUP
LoadModule mpm_event_module $LIBEXEC/mod_mpm_event.so
LoadModule authz_core_module $LIBEXEC/mod_authz_core.so
LoadModule authz_host_module $LIBEXEC/mod_authz_host.so
LoadModule headers_module $LIBEXEC/mod_headers.so
LoadModule slotmem_shm_module $LIBEXEC/mod_slotmem_shm.so
LoadModule proxy_module $LIBEXEC/mod_proxy.so
LoadModule proxy_http_module $LIBEXEC/mod_proxy_http.so
LoadModule proxy_balancer_module $LIBEXEC/mod_proxy_balancer.so
LoadModule stickylb_module $MODULE
Include "$TOP/docker/lb.conf"
CONF
    env LB_NAME="$lb" LB_PORT="$port" MEMCACHED_SERVERS="$MC_SERVERS" \
        STICKYLB_NAMESPACE=app BACKEND_T1="${BACKEND[t1]}" \
        BACKEND_T2="${BACKEND[t2]}" BACKEND_T3="${BACKEND[t3]}" \
        "$HTTPD" -f "$RUN/$lb/httpd.conf" -D FOREGROUND \
        > "$RUN/$lb/access.log" 2> "$RUN/$lb/error.log" &
    LB_PIDS+=($!)
    # (in the foreground, as in the container: lb.conf logs to its stdout/stderr)
    for _ in $(seq 1 50); do
        [ -s "$RUN/$lb/httpd.pid" ] && break
        kill -0 $! 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$RUN/$lb/httpd.pid" ]; then
        echo "peers-local: $lb did not start" >&2; cat "$RUN/$lb/error.log" >&2; exit 1
    fi
done
echo "peers-local: lb1 127.0.0.1:${LBPORT[lb1]}, lb2 127.0.0.1:${LBPORT[lb2]};" \
     "memcached $MC_SERVERS; t1 ${BACKEND[t1]}, t2 ${BACKEND[t2]}, t3 ${BACKEND[t3]}"
echo

rc=0
LB1_URL="http://127.0.0.1:${LBPORT[lb1]}" LB2_URL="http://127.0.0.1:${LBPORT[lb2]}" \
    WAIT=${WAIT:-15} bash "$TOP/docker/client.sh" || rc=$?
if [ "$rc" != 0 ]; then
    for lb in lb1 lb2; do
        echo "--- $lb error log"; tail -n 20 "$RUN/$lb/error.log"
        echo "--- $lb access log"; tail -n 20 "$RUN/$lb/access.log"
    done
fi
exit "$rc"
