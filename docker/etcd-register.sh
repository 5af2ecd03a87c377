#!/usr/bin/env bash
# docker/etcd-register.sh - runs a backend and keeps it registered in etcd
# while it runs, for mod_stickylb's discovery (StickyLBDiscover etcd ...).
#
#   etcd-register.sh [--] COMMAND [ARGS...]
#
# Starts COMMAND, waits until the member's port accepts connections, then
# puts one key under the prefix, attached to a lease that this script keeps
# alive:
#
#   ${ETCD_PREFIX}${MEMBER_NAME}  =  {"url": "...", "route": "...", "loadfactor": N}
#
# On SIGTERM or SIGINT (docker stop, Ctrl-C) the key is deleted and the
# lease revoked before COMMAND is stopped (DRAIN_WAIT seconds later), so
# the load balancer drains the member first while it still serves the
# sessions bound to it; when COMMAND exits by itself the key goes too.  When this
# script dies without a word (kill -9, the container or the host lost), the
# lease expires after ETCD_TTL seconds and etcd deletes the key.  etcd down
# or restarted: the registration is retried every second until it holds
# again (a lease etcd no longer knows is replaced by a new one).
#
# Environment (the docker-compose files set it):
#   ETCD_ENDPOINTS  etcd's client URLs, comma-separated, tried in turn
#                   (default http://etcd:2379)
#   ETCD_PREFIX     the prefix the balancer watches (default /services/web/)
#   MEMBER_URL      the member as the balancer reaches it (default
#                   http://<first address of `hostname -i`>:${PORT:-8080})
#   MEMBER_NAME     the key's last part (default host:port of MEMBER_URL,
#                   the form the seed's containers use)
#   ROUTE           the member's route (default: none, the balancer
#                   derives one); letters, digits, '.', '_', '-'
#   LOADFACTOR      1..100 (default: none)
#   ETCD_TTL        lease TTL in seconds (default 10, at least 2)
#   READY_TIMEOUT   seconds to wait for the member's port (default 30)
#   DRAIN_WAIT      seconds between the key deleted and COMMAND stopped
#                   (default 0; match the balancer's grace= and give
#                   `docker stop -t` more)
#
# Needs bash, curl and base64 (coreutils); speaks to etcd's JSON gateway
# (/v3/lease/grant, /v3/kv/put, /v3/lease/keepalive, /v3/kv/deleterange,
# /v3/lease/revoke), so no etcdctl in the backend's image.
set -u

ETCD_ENDPOINTS=${ETCD_ENDPOINTS:-http://etcd:2379}
ETCD_PREFIX=${ETCD_PREFIX:-/services/web/}
ETCD_TTL=${ETCD_TTL:-10}
READY_TIMEOUT=${READY_TIMEOUT:-30}
DRAIN_WAIT=${DRAIN_WAIT:-0}
ROUTE=${ROUTE:-}
LOADFACTOR=${LOADFACTOR:-}

log() { echo "etcd-register: $*" >&2; }
die() { log "$*"; exit 2; }

[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || die "usage: etcd-register.sh [--] COMMAND [ARGS...]"
command -v curl > /dev/null || die "curl is needed"
command -v base64 > /dev/null || die "base64 is needed"
case "$ETCD_TTL" in ''|*[!0-9]*) die "ETCD_TTL must be a number of seconds" ;; esac
[ "$ETCD_TTL" -ge 2 ] || die "ETCD_TTL must be at least 2"
case "$READY_TIMEOUT" in ''|*[!0-9]*) die "READY_TIMEOUT must be a number of seconds" ;; esac
case "$DRAIN_WAIT" in ''|*[!0-9]*) die "DRAIN_WAIT must be a number of seconds" ;; esac

if [ -z "${MEMBER_URL:-}" ]; then
    addr=$(hostname -i 2> /dev/null | awk '{print $1}')
    [ -n "$addr" ] || die "MEMBER_URL not set and hostname -i gives no address"
    case "$addr" in *:*) addr="[$addr]" ;; esac
    MEMBER_URL="http://$addr:${PORT:-8080}"
fi
# scheme://host:port (what the balancer takes)
hostport=${MEMBER_URL#*://}
hostport=${hostport%/}
case "$MEMBER_URL" in
    http://*|https://*|ajp://*) ;;
    *) die "MEMBER_URL '$MEMBER_URL' is not http://host:port" ;;
esac
case "$hostport" in
    */*|*@*|*\?*|"") die "MEMBER_URL '$MEMBER_URL' must be scheme://host:port, no path" ;;
    \[*\]:[0-9]*|[!\[]*:[0-9]*) ;;
    *) die "MEMBER_URL '$MEMBER_URL' has no port" ;;
esac
member_host=${hostport%:*}
member_port=${hostport##*:}
MEMBER_NAME=${MEMBER_NAME:-$hostport}
if [ -n "$ROUTE" ] && ! [[ "$ROUTE" =~ ^[A-Za-z0-9._-]{1,63}$ ]]; then
    die "ROUTE '$ROUTE' is not a route (letters, digits, '.', '_', '-')"
fi
if [ -n "$LOADFACTOR" ] && ! { [[ "$LOADFACTOR" =~ ^[0-9]{1,3}$ ]] \
        && [ "$LOADFACTOR" -ge 1 ] && [ "$LOADFACTOR" -le 100 ]; }; then
    die "LOADFACTOR '$LOADFACTOR' is not 1 to 100"
fi

KEY="${ETCD_PREFIX}${MEMBER_NAME}"
VALUE="{\"url\": \"${MEMBER_URL%/}\""
[ -n "$ROUTE" ] && VALUE="$VALUE, \"route\": \"$ROUTE\""
[ -n "$LOADFACTOR" ] && VALUE="$VALUE, \"loadfactor\": $LOADFACTOR"
VALUE="$VALUE}"
KEY64=$(printf '%s' "$KEY" | base64 -w0)
VALUE64=$(printf '%s' "$VALUE" | base64 -w0)

# POST path body: the first endpoint's answer that is HTTP 200, on stdout
etcd_post() {
    local ep out
    IFS=',' read -r -a eps <<< "$ETCD_ENDPOINTS"
    for ep in "${eps[@]}"; do
        if out=$(curl -sS --fail --noproxy '*' --connect-timeout 1 --max-time 3 \
                      -H 'Content-Type: application/json' \
                      -X POST "${ep%/}$1" -d "$2" 2> /dev/null); then
            printf '%s' "$out"
            return 0
        fi
    done
    return 1
}

LEASE=""
REGISTERED=0

register() {
    local out id
    out=$(etcd_post /v3/lease/grant "{\"TTL\": \"$ETCD_TTL\"}") || return 1
    id=$(printf '%s' "$out" | sed -n 's/.*"ID":"\{0,1\}\([0-9][0-9]*\).*/\1/p')
    [ -n "$id" ] || { log "no lease id in etcd's answer: $out"; return 1; }
    etcd_post /v3/kv/put "{\"key\": \"$KEY64\", \"value\": \"$VALUE64\", \"lease\": \"$id\"}" \
        > /dev/null || return 1
    LEASE=$id
    REGISTERED=1
    log "registered $KEY = $VALUE (lease $id, ttl ${ETCD_TTL} s)"
}

# 0: the lease holds; 1: etcd unreachable; 2: etcd forgot the lease
keepalive() {
    local out ttl
    out=$(etcd_post /v3/lease/keepalive "{\"ID\": \"$LEASE\"}") || return 1
    ttl=$(printf '%s' "$out" | sed -n 's/.*"TTL":"\{0,1\}\([0-9][0-9]*\).*/\1/p')
    if [ -z "$ttl" ] || [ "$ttl" -le 0 ]; then
        return 2
    fi
    return 0
}

unregister() {
    [ "$REGISTERED" = 1 ] || return 0
    if etcd_post /v3/kv/deleterange "{\"key\": \"$KEY64\"}" > /dev/null; then
        log "unregistered $KEY"
    else
        log "could not delete $KEY (the lease expires in ${ETCD_TTL} s)"
    fi
    [ -n "$LEASE" ] && etcd_post /v3/lease/revoke "{\"ID\": \"$LEASE\"}" > /dev/null
    REGISTERED=0
}

CHILD=""
STOPPING=0
# shellcheck disable=SC2317  # run by the trap
on_signal() {
    [ "$STOPPING" = 1 ] && return
    STOPPING=1
    unregister
    if [ -n "$CHILD" ] && [ "$DRAIN_WAIT" -gt 0 ]; then
        log "stopping the member in ${DRAIN_WAIT} s (DRAIN_WAIT)"
        for _ in $(seq 1 $((DRAIN_WAIT * 10))); do
            kill -0 "$CHILD" 2> /dev/null || break
            sleep 0.1
        done
    fi
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2> /dev/null
    fi
}
trap on_signal TERM INT

"$@" &
CHILD=$!

# wait until the member accepts connections (bash's /dev/tcp)
up=0
for _ in $(seq 1 $((READY_TIMEOUT * 10))); do
    kill -0 "$CHILD" 2> /dev/null || break
    [ "$STOPPING" = 1 ] && break
    if (exec 3<> "/dev/tcp/${member_host#[}/$member_port") 2> /dev/null; then
        up=1
        break
    fi
    sleep 0.1
done
[ "$up" = 1 ] || [ "$STOPPING" = 1 ] || log "$MEMBER_URL not accepting connections after ${READY_TIMEOUT} s; registering anyway"
# the address as the container knows it may be outside (0.0.0.0 binds):
# a failed check is logged, not fatal; a dead child ends everything below

period=$((ETCD_TTL / 3))
[ "$period" -ge 1 ] || period=1
while [ "$STOPPING" = 0 ] && kill -0 "$CHILD" 2> /dev/null; do
    if [ "$REGISTERED" = 0 ]; then
        register || log "etcd ($ETCD_ENDPOINTS) not reachable; retrying"
        wait_s=1
    else
        keepalive
        case $? in
            0) wait_s=$period ;;
            1) log "etcd ($ETCD_ENDPOINTS) not reachable for the keepalive"; wait_s=1 ;;
            2) log "etcd forgot lease $LEASE; registering again"; REGISTERED=0; wait_s=0 ;;
        esac
    fi
    [ "$wait_s" -gt 0 ] && { sleep "$wait_s" & wait $! 2> /dev/null; }
done

[ "$STOPPING" = 1 ] || unregister
wait "$CHILD" 2> /dev/null
rc=$?
exit "$rc"
