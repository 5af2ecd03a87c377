#!/usr/bin/env bash
# System test of the installation, as root, on the machine's own Apache:
# `make install` puts the module and the conf.d files in place, `a2enmod
# stickylb` enables it and its dependencies, `apache2ctl configtest` passes
# with the example virtual hosts of README, and everything is removed again
# (the modules and sites that were enabled before are left as they were).
# Prints TAP (run it with prove).
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${SLB_BUILD_DIR:-$TOP/_build}
MODDIR=$(apxs -q LIBEXECDIR)
AVAIL=/etc/apache2/mods-available
ENABLED=/etc/apache2/mods-enabled
SITE=/etc/apache2/sites-available/stickylb-readme-example.conf

n=0
fails=0
ok() {  # ok CONDITION-STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP needs root (installs into the system Apache)"
    exit 0
fi
echo "1..14"

# What was enabled before, to restore it.
was_enabled=""
for m in proxy proxy_http proxy_balancer headers stickylb; do
    [ -e "$ENABLED/$m.load" ] && was_enabled="$was_enabled $m"
done

make -C "$BUILD" install >/tmp/stickylb-install.log 2>&1
ok $? "make install"
test -f "$MODDIR/mod_stickylb.so"
ok $? "mod_stickylb.so installed in $MODDIR"
test ! -e "$MODDIR/mod_stickylb.la"
ok $? "no libtool .la left in $MODDIR"
grep -q "^LoadModule stickylb_module $MODDIR/mod_stickylb.so" "$AVAIL/stickylb.load" \
    && grep -q '^# Depends: proxy proxy_http proxy_balancer' "$AVAIL/stickylb.load" \
    && test -f "$AVAIL/stickylb.conf"
ok $? "stickylb.load (with Depends) and stickylb.conf in mods-available"

a2enmod -q stickylb >/dev/null 2>&1
ok $? "a2enmod stickylb"
test -e "$ENABLED/stickylb.load" && test -e "$ENABLED/proxy.load" \
    && test -e "$ENABLED/proxy_http.load" && test -e "$ENABLED/proxy_balancer.load"
ok $? "a2enmod enabled stickylb, proxy, proxy_http and proxy_balancer"
a2enmod -q headers >/dev/null 2>&1

# The example virtual hosts of README, verbatim.
awk '/^    <VirtualHost/{on=1} on{end=/^    <\/VirtualHost>/; sub(/^    /,""); print; if (end) on=0}' \
    "$TOP/README" >"$SITE"
test "$(grep -c '<VirtualHost' "$SITE")" -ge 3
ok $? "README holds the example virtual hosts ($(grep -c '<VirtualHost' "$SITE") found)"
a2ensite -q stickylb-readme-example >/dev/null 2>&1
out=$(apache2ctl configtest 2>&1)
echo "$out" | grep -q 'Syntax OK'
ok $? "apache2ctl configtest passes with README's examples"
[ "$fails" = 0 ] || echo "$out" | sed 's/^/# /'

# A bad value is reported by configtest, naming the directive.
printf '<Proxy "balancer://bad">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBRouteCookie ROUTEID samesite=sometimes\n</Proxy>\n' \
    >/etc/apache2/sites-available/stickylb-bad.conf
a2ensite -q stickylb-bad >/dev/null 2>&1
out=$(apache2ctl configtest 2>&1)
! echo "$out" | grep -q 'Syntax OK' && echo "$out" | grep -q 'StickyLBRouteCookie: samesite'
ok $? "configtest fails on a bad value and names the directive"
a2dissite -q stickylb-bad >/dev/null 2>&1
rm -f /etc/apache2/sites-available/stickylb-bad.conf

# Remove everything again.
a2dissite -q stickylb-readme-example >/dev/null 2>&1
rm -f "$SITE"
a2dismod -q -f -p stickylb >/dev/null 2>&1
ok $? "a2dismod stickylb"
for m in headers proxy_balancer proxy_http proxy; do
    case " $was_enabled " in *" $m "*) ;; *) a2dismod -q -f -p "$m" >/dev/null 2>&1 ;; esac
done
test ! -e "$ENABLED/stickylb.load"
ok $? "stickylb no longer enabled"
out=$(apache2ctl configtest 2>&1)
echo "$out" | grep -q 'Syntax OK'
ok $? "configtest passes again without the module"
make -C "$BUILD" uninstall >>/tmp/stickylb-install.log 2>&1
ok $? "make uninstall"
test ! -e "$MODDIR/mod_stickylb.so" && test ! -e "$AVAIL/stickylb.load" && test ! -e "$AVAIL/stickylb.conf"
ok $? "nothing of the module left behind"

exit $((fails > 0))
