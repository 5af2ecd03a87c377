#!/usr/bin/env bash
# docker/client.sh - the client of the peers scenario: creates sessions
# through lb1 and continues each of them through lb2, then prints which
# backend answered each request through which balancer:
#
#   session                               lb1->backend  lb2->backend  lb1->backend
#   t2x1f0c...                            t2            t2            t2          same
#
# Every session must stay on the backend that created it (the two Apaches
# share their stick table through memcached); the last line is the
# summary "peers: N passed, M failed" and the exit status is 0 only when
# every session stayed.
#
# Environment:
#   LB1_URL    (default http://lb1)   base URL of the first balancer
#   LB2_URL    (default http://lb2)   base URL of the second balancer
#   SESSIONS   (default 9)            number of sessions
#   REQUESTS   (default 3)            requests per session through lb2
#   WAIT       (default 60)           seconds to wait for both balancers
#
# In the compose project:  docker compose run --rm client
# From the host:           LB1_URL=http://localhost:8081 LB2_URL=http://localhost:8082 docker/client.sh
set -euo pipefail

LB1=${LB1_URL:-http://lb1}
LB2=${LB2_URL:-http://lb2}
SESSIONS=${SESSIONS:-9}
REQUESTS=${REQUESTS:-3}
WAIT=${WAIT:-60}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stickylb-client-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# one request; prints "<load balancer> <backend> <session> <new-session>".
# The session cookie is sent explicitly (COOKIE: the JSESSIONID value,
# empty for none) rather than from a cookie jar: to curl, lb1 and lb2 are
# two hosts and a jar would not send lb1's cookie to lb2, whereas a
# browser sees one site behind both balancers.
hit() {  # hit URL COOKIE
    local hdr=$WORK/h body=$WORK/b
    local args=(-sS --max-time 10 -D "$hdr" -o "$body")
    if [ -n "$2" ]; then args+=(-b "JSESSIONID=$2"); fi
    if ! curl "${args[@]}" "$1"; then
        echo "- - - -"
        return
    fi
    local lb backend session new
    lb=$(awk -F': ' 'tolower($1)=="x-load-balancer"{gsub("\r","",$2); print $2}' "$hdr")
    backend=$(sed -n 's/^backend: //p' "$body")
    session=$(sed -n 's/^session: //p' "$body")
    new=$(sed -n 's/^new-session: //p' "$body")
    echo "${lb:--} ${backend:--} ${session:--} ${new:--}"
}

# both balancers up (and answering through a backend)
for url in "$LB1" "$LB2"; do
    ok=0
    for _ in $(seq 1 $((WAIT * 2))); do
        if curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$url/" 2>/dev/null | grep -q '^200$'; then
            ok=1; break
        fi
        sleep 0.5
    done
    if [ "$ok" != 1 ]; then
        echo "client: $url does not answer 200 after ${WAIT}s" >&2
        exit 1
    fi
done

echo "sessions created through lb1 ($LB1), continued through lb2 ($LB2):"
echo
fmt='%-38s  %-12s  %-12s  %s\n'
# shellcheck disable=SC2059
printf "$fmt" session lb1-\>backend lb2-\>backend result
passed=0
failed=0
for i in $(seq 1 "$SESSIONS"); do
    read -r lb b1 sid new < <(hit "$LB1/app/session$i" "")
    # the browser's cookie from now on: the id the backend issued
    cookie=$sid
    if [ "$sid" = - ]; then cookie=""; fi
    first="$b1"
    [ "$lb" = lb1 ] || [ "$lb" = - ] || first="$b1(via $lb)"
    seen=""
    result=same
    if [ "$b1" = - ] || [ "$new" != 1 ]; then
        result="FAILED: no new session from lb1"
    fi
    for _ in $(seq 1 "$REQUESTS"); do
        read -r lb b2 sid2 new2 < <(hit "$LB2/app/session$i" "$cookie")
        # (a new id issued meanwhile would replace the browser's cookie)
        if [ "$sid2" != - ]; then cookie=$sid2; fi
        seen="$seen${seen:+,}$b2"
        [ "$lb" = lb2 ] || [ "$lb" = - ] || seen="$seen(via $lb)"
        if [ "$b2" != "$b1" ] || [ "$sid2" != "$sid" ] || [ "$new2" != 0 ]; then
            result="FAILED: moved or lost"
        fi
    done
    # shellcheck disable=SC2059
    printf "$fmt" "$sid" "$first" "$seen" "$result"
    if [ "$result" = same ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo
echo "$passed of $SESSIONS sessions continued through lb2 on the backend that created them through lb1"
echo "peers: $passed passed, $failed failed"
[ "$failed" = 0 ]
