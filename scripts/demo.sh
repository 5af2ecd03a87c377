#!/usr/bin/env bash
# The local demo: Apache httpd with mod_stickylb in front of three Tomcat-like
# backends on loopback, showing stickiness (a route cookie, and sessions
# learned into the embedded store), a failover seen by the module's health
# probes, no bounce-back, and the module's status page (and
# balancer-manager).  SLB_DEMO_SCREENSHOT=file.png saves the status page
# as rendered by headless Chromium, when installed.  Run as root on a fresh
# Debian 12 / Ubuntu machine (installs what is missing), or as a user who
# already has the build dependencies.
#
#   bash scripts/demo.sh          # run the demo, stop everything at the end
#   bash scripts/demo.sh --keep   # leave it running until Enter is pressed
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

if [ "$(id -u)" = 0 ]; then
    bash "$TOP/scripts/deps.sh"
fi
bash "$TOP/scripts/build.sh" >/dev/null
BUILD=${SLB_BUILD_DIR:-$TOP/_build}
MODULE=$BUILD/.libs/mod_stickylb.so
[ -f "$MODULE" ] || { echo "demo: $MODULE was not built" >&2; exit 1; }

HTTPD=${HTTPD:-/usr/sbin/apache2}
LIBEXEC=$(apxs -q LIBEXECDIR)
DEMO=$(mktemp -d /tmp/stickylb-demo.XXXXXX)
chmod 755 "$DEMO"
PIDS=()

free_port() {
    perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die; print $s->sockport'
}

start_backend() {  # route port
    perl "$TOP/t/backend.pl" --host 127.0.0.1 --port "$2" --route "$1" \
        --pidfile "$DEMO/$1.pid" >"$DEMO/$1.log" 2>&1 &
    for _ in $(seq 1 50); do
        [ -s "$DEMO/$1.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$2/" && return 0
        sleep 0.1
    done
    echo "demo: backend $1 did not start" >&2
    return 1
}

stop_pidfile() {
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
}

cleanup() {
    [ -s "$DEMO/httpd.pid" ] && "$HTTPD" -f "$DEMO/httpd.conf" -k stop 2>/dev/null || true
    for _ in $(seq 1 50); do [ -s "$DEMO/httpd.pid" ] || break; sleep 0.1; done
    for r in t1 t2 t3; do stop_pidfile "$DEMO/$r.pid"; done
    rm -rf "$DEMO"
}
trap cleanup EXIT

LB=$(free_port); P1=$(free_port); P2=$(free_port); P3=$(free_port)
RUN_USER=$(id -un); RUN_GROUP=$(id -gn)
if [ "$(id -u)" = 0 ]; then RUN_USER=nobody; RUN_GROUP=nogroup; fi

cat >"$DEMO/httpd.conf" <<CONF
ServerRoot "$DEMO"
ServerName 127.0.0.1
Listen 127.0.0.1:$LB
PidFile "$DEMO/httpd.pid"
DefaultRuntimeDir "$DEMO"
Mutex file:$DEMO default
ErrorLog "$DEMO/error.log"
LogLevel warn
User $RUN_USER
Group $RUN_GROUP
LoadModule mpm_event_module $LIBEXEC/mod_mpm_event.so
LoadModule authz_core_module $LIBEXEC/mod_authz_core.so
LoadModule authz_host_module $LIBEXEC/mod_authz_host.so
LoadModule slotmem_shm_module $LIBEXEC/mod_slotmem_shm.so
LoadModule proxy_module $LIBEXEC/mod_proxy.so
LoadModule proxy_http_module $LIBEXEC/mod_proxy_http.so
LoadModule proxy_balancer_module $LIBEXEC/mod_proxy_balancer.so
LoadModule stickylb_module $MODULE

<Proxy "balancer://app">
    BalancerMember "http://127.0.0.1:$P1" route=t1 retry=5
    BalancerMember "http://127.0.0.1:$P2" route=t2 retry=5
    BalancerMember "http://127.0.0.1:$P3" route=t3 retry=5
    ProxySet lbmethod=stickylb
    StickyLBSessionCookie JSESSIONID
    StickyLBRouteCookie ROUTEID insert indirect nocache httponly=on samesite=lax
    StickyLBProbe http path=/health interval=1 timeout=1 rise=2 fall=1
</Proxy>
# the same members, sessions learned from their Set-Cookie into the
# embedded stick table (shared memory): no route in the client's cookie
<Proxy "balancer://shop">
    BalancerMember "http://127.0.0.1:$P1" route=t1 retry=5
    BalancerMember "http://127.0.0.1:$P2" route=t2 retry=5
    BalancerMember "http://127.0.0.1:$P3" route=t3 retry=5
    ProxySet lbmethod=stickylb
    StickyLBSessionCookie none
    StickyLBLearnCookie JSESSIONID
    StickyLBStore shm
    StickyLBProbe http path=/health interval=1 timeout=1 rise=2 fall=1
</Proxy>
ProxyPass "/balancer-manager" "!"
ProxyPass "/stickylb-status" "!"
ProxyPass "/app" "balancer://app"
ProxyPass "/shop" "balancer://shop"
<Location "/app">
    Require all granted
</Location>
<Location "/shop">
    Require all granted
</Location>
<Location "/stickylb-status">
    SetHandler stickylb-status
    Require ip 127.0.0.1
</Location>
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
CONF

start_backend t1 "$P1"; start_backend t2 "$P2"; start_backend t3 "$P3"
"$HTTPD" -f "$DEMO/httpd.conf" -k start
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$LB/app/" && break; sleep 0.1; done

JAR=$DEMO/client.cookies
hit() {  # one request as the demo client (cookie jar), prints the backend
    curl -s -b "$JAR" -c "$JAR" -D "$DEMO/last.headers" -o "$DEMO/last.body" \
        "http://127.0.0.1:$LB/app/$1"
    awk -F': ' 'tolower($1)=="x-backend"{gsub("\r","",$2); print $2}' "$DEMO/last.headers"
}
setcookies() {
    grep -i '^set-cookie:' "$DEMO/last.headers" | sed 's/\r$//; s/^/      /' || true
}

echo "== mod_stickylb demo: Apache on http://127.0.0.1:$LB/app/ in front of"
echo "   t1 (port $P1), t2 (port $P2), t3 (port $P3); store: embedded (shm)"
echo
echo "-- 1. a new client: the module picks a member and pins the session"
FIRST=$(hit "")
echo "   answered by $FIRST, response sets:"
setcookies
echo
echo "-- 2. the same client, 6 more requests (cookies sent back)"
SEQ=""
for _ in 1 2 3 4 5 6; do SEQ="$SEQ $(hit page)"; done
echo "   answered by:$SEQ"
for b in $SEQ; do [ "$b" = "$FIRST" ] || { echo "demo: NOT sticky ($b != $FIRST)" >&2; exit 1; }; done
echo "   sticky: every request reached $FIRST"
echo
echo "-- 3. other clients are spread over the members"
OTHERS=""
for _ in 1 2 3 4 5 6; do
    OTHERS="$OTHERS $(curl -s -D - -o /dev/null "http://127.0.0.1:$LB/app/" | awk -F': ' 'tolower($1)=="x-backend"{gsub("\r","",$2); print $2}')"
done
echo "   6 new clients went to:$OTHERS"
echo
echo "-- 4. failover: backend $FIRST is stopped"
stop_pidfile "$DEMO/$FIRST.pid"
state_of() {  # route: the member's state on the module's status page (app)
    curl -s "http://127.0.0.1:$LB/stickylb-status?format=json" | perl -MJSON::PP -e '
        my $j = decode_json(join "", <STDIN>);
        for my $b (@{ $j->{balancers} }) {
            next unless $b->{name} =~ m{/app$};
            for my $m (@{ $b->{members} }) { print $m->{state} if $m->{route} eq $ARGV[0] }
        }' "$1"
}
for _ in $(seq 1 40); do [ "$(state_of "$FIRST")" = down-by-probe ] && break; sleep 0.1; done
echo "   the module's probe sees it: $FIRST is $(state_of "$FIRST")"
NEXT=$(hit page)
echo "   the client's next request was answered by $NEXT (no error), which sets:"
setcookies
[ -n "$NEXT" ] && [ "$NEXT" != "$FIRST" ] || { echo "demo: failover failed" >&2; exit 1; }
SEQ=""
for _ in 1 2 3; do SEQ="$SEQ $(hit page)"; done
echo "   and it stays there:$SEQ"
echo
echo "-- 5. $FIRST comes back: the session does not bounce back"
case $FIRST in t1) P=$P1;; t2) P=$P2;; *) P=$P3;; esac
start_backend "$FIRST" "$P"
for _ in $(seq 1 60); do [ "$(state_of "$FIRST")" = up ] && break; sleep 0.1; done
echo "   the probe sees it again: $FIRST is $(state_of "$FIRST")"
sleep 5.2   # retry=5: Apache tries the member again
SEQ=""
for _ in 1 2 3; do SEQ="$SEQ $(hit page)"; done
echo "   the client is still answered by:$SEQ"
for b in $SEQ; do [ "$b" = "$NEXT" ] || { echo "demo: bounced back ($b != $NEXT)" >&2; exit 1; }; done
echo
echo "-- 6. the embedded store: /shop learns each session id from its member's"
echo "   Set-Cookie; the client sends only that id (no route in it is used)"
SHOPJAR=$DEMO/shop.cookies
shop() {
    curl -s -b "$SHOPJAR" -c "$SHOPJAR" -D "$DEMO/shop.headers" -o /dev/null \
        "http://127.0.0.1:$LB/shop/"
    awk -F': ' 'tolower($1)=="x-backend"{gsub("\r","",$2); print $2}' "$DEMO/shop.headers"
}
SFIRST=$(shop)
SEQ=""
for _ in 1 2 3 4 5; do SEQ="$SEQ $(shop)"; done
echo "   first answered by $SFIRST, then by:$SEQ"
for b in $SEQ; do [ "$b" = "$SFIRST" ] || { echo "demo: /shop NOT sticky ($b != $SFIRST)" >&2; exit 1; }; done
echo
echo "-- 7. the module's status page: http://127.0.0.1:$LB/stickylb-status"
echo "   (HTML; ?format=json and ?format=prometheus for machines)"
curl -s "http://127.0.0.1:$LB/stickylb-status?format=json" | perl -MJSON::PP -e '
    my $j = decode_json(join "", <STDIN>);
    for my $b (@{ $j->{balancers} }) {
        my $learns = $b->{name} =~ m{/shop$};
        printf "   %s (%s):\n", $b->{name},
            $learns ? "sessions learned into the embedded store" : "route cookie";
        for my $m (@{ $b->{members} }) {
            printf "     %-3s %-14s requests %-3s new sessions %-3s failovers %s%s\n",
                $m->{route}, $m->{state}, $m->{requests} // 0,
                $m->{new_sessions} // 0, $m->{failovers} // 0,
                $learns ? "  sessions bound " . ($m->{sessions} // 0) : "";
        }
    }'
if [ -n "${SLB_DEMO_SCREENSHOT:-}" ]; then
    CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
    if [ -n "$CHROMIUM" ]; then
        timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync \
            --user-data-dir="$DEMO/chromium" --window-size=1500,1000 \
            --screenshot="$SLB_DEMO_SCREENSHOT" "http://127.0.0.1:$LB/stickylb-status" \
            >"$DEMO/chromium.log" 2>&1 || true
        echo "   screenshot: $SLB_DEMO_SCREENSHOT"
    fi
fi
echo "   (balancer-manager is at http://127.0.0.1:$LB/balancer-manager too)"
echo
echo "== demo done: stickiness (route cookie, learned sessions in the embedded"
echo "   store), failover seen by the probes, no bounce-back, the status page."
if [ "$KEEP" = 1 ]; then
    echo "   still running: http://127.0.0.1:$LB/app/, /shop/, /stickylb-status; press Enter to stop"
    read -r _
fi
