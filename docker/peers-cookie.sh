#!/usr/bin/env bash
# docker/peers-cookie.sh - the haproxy-peers demo's steps (HAProxy
# "stick on req.cook(JSESSIONID)", two peers), against two mod_stickylb
# balancers that stick on the JSESSIONID cookie the client sends
# (StickyLBKey cookie JSESSIONID: balancer://peers at /peers/ in
# docker/lb.conf) and share the bindings through memcached.
#
# The client sends what the demo's access-1.sh / access-2.sh send:
#   Cookie: c1=1; c2=2; JSESSIONID=<md5 hex of "_<x>">
# and prints, like them, "<x, 5 digits> - <backend>" per request.  Steps:
#   1. sessions 1-5 through lb1, twice: the same backends again
#   2. sessions 101-105 through lb2, then through lb1: the backends lb2 chose
#   3. sessions 21-25 through lb1, then through lb2: the backends lb1 chose
#   4. lb2 stopped ($STOP_LB2), lb1 reloaded ($RELOAD_LB1, a graceful
#      restart): sessions 21-25 (and 1-5, 101-105) through lb1 still on
#      the same backends
# The last line is "peers-cookie: N passed, M failed"; the exit status is 0
# only when every step passed.
#
# Environment:
#   LB1_URL     (default http://localhost:8081)  the first balancer
#   LB2_URL     (default http://localhost:8082)  the second balancer
#   PEERS_PATH  (default /peers/)                the path of the balancer
#   STOP_LB2    (default: docker compose ... stop lb2)      shell command
#   RELOAD_LB1  (default: docker compose ... exec -T lb1 apache2ctl -k graceful)
#   WAIT        (default 60)  seconds to wait for a balancer to answer
#
# With the compose project up (docker compose -f docker/docker-compose.yml
# up -d --build), from the repository root:  bash docker/peers-cookie.sh
# (it stops lb2: docker compose -f docker/docker-compose.yml start lb2).
# tests/system/peers_cookie.t runs it against two local Apaches.
set -euo pipefail

LB1=${LB1_URL:-http://localhost:8081}
LB2=${LB2_URL:-http://localhost:8082}
PEERS_PATH=${PEERS_PATH:-/peers/}
WAIT=${WAIT:-60}
COMPOSE="docker compose -f $(dirname "${BASH_SOURCE[0]}")/docker-compose.yml"
STOP_LB2=${STOP_LB2:-$COMPOSE stop lb2}
RELOAD_LB1=${RELOAD_LB1:-$COMPOSE exec -T lb1 apache2ctl -k graceful}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stickylb-peers-cookie-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

md5() { printf '%s' "$1" | md5sum | cut -d' ' -f1; }

# the backend that answers one request of session x through URL, or "-"
backend_of() {  # backend_of URL X
    local body
    body=$(curl -sS --max-time 10 \
                -H "Cookie: c1=1; c2=2; JSESSIONID=$(md5 "_$2")" \
                "$1$PEERS_PATH" 2>/dev/null) || { echo -; return; }
    body=$(sed -n 's/^backend: //p' <<< "$body")
    echo "${body:--}"
}

# access NAME URL FROM TO: the demo's access-N.sh; the answers are kept in
# $WORK/NAME-FROM-TO ("x backend" lines)
access() {
    local name=$1 url=$2 x b out=$WORK/$1-$3-$4
    : > "$out"
    echo "\$ ./access-${name#lb}.sh $3 $4    # $url"
    for x in $(seq "$3" "$4"); do
        b=$(backend_of "$url" "$x")
        printf '%05d - %s\n' "$x" "$b"
        echo "$x $b" >> "$out"
    done
}

passed=0
failed=0
# same WHAT FILE1 FILE2: both runs answered by the same backends (none "-")
same() {
    if ! grep -q ' -$' "$2" "$3" && cmp -s "$2" "$3"; then
        echo "ok: $1"
        passed=$((passed + 1))
    else
        echo "FAILED: $1"
        paste -d' ' "$2" "$3" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

wait_up() {  # wait_up URL
    local _
    for _ in $(seq 1 $((WAIT * 2))); do
        if [ "$(backend_of "$1" 0)" != - ]; then return 0; fi
        sleep 0.5
    done
    echo "peers-cookie: $1 does not answer after ${WAIT}s" >&2
    return 1
}

wait_up "$LB1"
wait_up "$LB2"

echo "## 1. sessions 1-5 through lb1, twice"
access lb1 "$LB1" 1 5
cp "$WORK/lb1-1-5" "$WORK/first-1-5"
access lb1 "$LB1" 1 5
same "sessions 1-5 stay on their backends" "$WORK/first-1-5" "$WORK/lb1-1-5"

echo "## 2. sessions 101-105 through lb2, then lb1"
access lb2 "$LB2" 101 105
access lb1 "$LB1" 101 105
same "lb1 sends sessions 101-105 to the backends lb2 chose" \
     "$WORK/lb2-101-105" "$WORK/lb1-101-105"

echo "## 3. sessions 21-25 through lb1, then lb2"
access lb1 "$LB1" 21 25
cp "$WORK/lb1-21-25" "$WORK/first-21-25"
access lb2 "$LB2" 21 25
same "lb2 sends sessions 21-25 to the backends lb1 chose" \
     "$WORK/first-21-25" "$WORK/lb2-21-25"

echo "## 4. lb2 stopped, lb1 reloaded"
echo "\$ $STOP_LB2"
bash -c "$STOP_LB2"
echo "\$ $RELOAD_LB1"
bash -c "$RELOAD_LB1"
sleep 1
if [ "$(backend_of "$LB2" 0)" = - ]; then
    echo "ok: lb2 is stopped"
    passed=$((passed + 1))
else
    echo "FAILED: lb2 still answers"
    failed=$((failed + 1))
fi
wait_up "$LB1"
access lb1 "$LB1" 21 25
same "after the reload lb1 keeps sessions 21-25 on their backends" \
     "$WORK/first-21-25" "$WORK/lb1-21-25"
cp "$WORK/lb1-1-5" "$WORK/before-1-5"
access lb1 "$LB1" 1 5
same "... and sessions 1-5" "$WORK/before-1-5" "$WORK/lb1-1-5"
cp "$WORK/lb2-101-105" "$WORK/lb2first-101-105"
access lb1 "$LB1" 101 105
same "... and sessions 101-105 (made through lb2)" \
     "$WORK/lb2first-101-105" "$WORK/lb1-101-105"

echo
echo "peers-cookie: $passed passed, $failed failed"
[ "$failed" = 0 ]
