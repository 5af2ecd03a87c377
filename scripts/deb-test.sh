#!/usr/bin/env bash
# scripts/deb-test.sh - system test of the Debian package, as root, on the
# machine's own Apache (prints TAP: run it with prove).
#
#   prove -v scripts/deb-test.sh
#
# Builds libapache2-mod-stickylb with scripts/build-deb.sh --source (into a
# temporary directory): the source package (3.0 (quilt), the upstream
# tarball made from the tree without debian/) and the .deb; checks that the
# source package unpacks, that the versions agree, and that lintian
# --pedantic reports no error, warning or pedantic tag on either that is
# not overridden, with a comment saying why, in debian/*lintian-overrides;
# installs it with `apt-get install ./libapache2-mod-stickylb_*.deb`,
# checks the files, that the package's postinst enabled the module and the
# modules its .load depends on, that Apache loads it and that configtest
# passes with a site using lbmethod=stickylb; then purges the package and
# checks that nothing of it is left and configtest still passes.
#
# The machine is left as it was found: the state of every module the
# package enabled (stickylb and its Depends, recursively), the test site,
# apache2's state markers for them (/var/lib/apache2) and
# /usr/sbin/policy-rc.d (a policy-rc.d that says `exit 101` is in place
# during the test, so no service is started or restarted by the package's
# maintainer scripts).  The last checks compare /etc/apache2 and
# /var/lib/apache2 with how they were before.
#
# Preconditions (otherwise "Bail out!"): root, apache2 installed
# (scripts/deps.sh), `apache2ctl configtest` passing, the package not
# installed, and no mod_stickylb.so / stickylb.load / stickylb.conf left in
# place by `make install` (the package would take them over and its purge
# would delete them).
#
# Environment:
#   SLB_DEB_NOCHECK=1   build without running `make check` (passed on)
#   SLB_DEB_KEEP=1      keep the temporary directory (build log, .deb)
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=libapache2-mod-stickylb
MODDIR=/usr/lib/apache2/modules
AVAIL=/etc/apache2/mods-available
ENABLED=/etc/apache2/mods-enabled
STATE=/var/lib/apache2
SITE_NAME=stickylb-deb-test
SITE=/etc/apache2/sites-available/$SITE_NAME.conf
POLICY_RC=/usr/sbin/policy-rc.d
PLAN=26

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C   # sort and comm of the snapshots
APT=(apt-get -y -o DPkg::Lock::Timeout=300
     -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

n=0
fails=0
ok() {  # ok STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        fails=$((fails + 1))
    fi
}
diag() { sed 's/^/# /'; }
bail() { echo "Bail out! $*"; exit 255; }

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP needs root (installs the package into the system)"
    exit 0
fi
if ! command -v apache2ctl > /dev/null || ! command -v a2enmod > /dev/null ||
   [ ! -e /usr/share/apache2/apache2-maintscript-helper ]; then
    bail "apache2 is not installed (scripts/deps.sh installs it)"
fi
status=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)
case "$status" in
    ""|not-installed) ;;
    *) bail "$PKG is already on this machine (status $status): apt-get remove --purge $PKG first" ;;
esac
for f in "$MODDIR/mod_stickylb.so" "$AVAIL/stickylb.load" "$AVAIL/stickylb.conf" \
         "$ENABLED/stickylb.load" "$ENABLED/stickylb.conf" "$SITE"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        bail "$f exists (make install? run 'make uninstall' and 'a2dismod stickylb' first)"
    fi
done
out=$(apache2ctl configtest 2>&1) || { echo "$out" | diag; bail "apache2ctl configtest fails before the test"; }

TMP=$(mktemp -d /tmp/stickylb-debtest-XXXXXX)
chmod 755 "$TMP"   # apt's _apt user reads the .deb

# ---------------------------------------------------------------- the state to restore
snapshot() {  # every path of /etc/apache2 and /var/lib/apache2, with type and link target
    find /etc/apache2 "$STATE" -printf '%p|%y|%l\n' 2>/dev/null | LC_ALL=C sort
}
snapshot > "$TMP/before.lst"

# the modules the package enables: stickylb and its Depends, recursively
load_deps() {  # the "# Depends:" of a .load file
    sed -nE '/^[^#[:space:]]/q; s/^# Depends:[[:space:]]*//p' "$1" 2>/dev/null | head -n1
}
SCOPE="stickylb"
queue=$(load_deps "$TOP/conf.d/stickylb.load.in")
while [ -n "${queue// /}" ]; do
    # shellcheck disable=SC2086  # (a list of names)
    set -- $queue
    m=$1; shift; queue="$*"
    case " $SCOPE " in *" $m "*) continue ;; esac
    SCOPE="$SCOPE $m"
    queue="$queue $(load_deps "$AVAIL/$m.load")"
done
echo "# modules in scope (stickylb and its Depends): $SCOPE"
was_enabled=""
for m in $SCOPE; do
    if [ -e "$ENABLED/$m.load" ]; then was_enabled="$was_enabled $m"; fi
done
echo "# enabled before the test:${was_enabled:- none}"

# apache2's state markers for stickylb are stale when nothing of it is
# installed (e.g. disabled_by_admin/stickylb left by `a2dismod stickylb`
# after a `make install` test); the maintainer script honours them and
# would not enable the module, so they are put aside for the test and
# restored at the end
mapfile -t stale < <(find "$STATE" -type f -name stickylb 2>/dev/null)
if [ "${#stale[@]}" -gt 0 ]; then
    echo "# stale apache2 state marker(s), removed for the test, restored at the end: ${stale[*]}"
    rm -f "${stale[@]}"
fi

policy_had=0
if [ -e "$POLICY_RC" ] || [ -L "$POLICY_RC" ]; then
    policy_had=1
    cp -a "$POLICY_RC" "$TMP/policy-rc.d.orig"
fi

svc_pids() {  # processes of the system's apache2 and memcached services
    ps -eo pid=,args= | awk '$2 ~ /(^|\/)apache2$/ && $3 == "-k" {print $1}
                             $2 ~ /(^|\/)memcached$/ && /\/etc\/memcached.conf|-u memcache / {print $1}' |
        sort -n | tr '\n' ' '
}
pids_before=$(svc_pids)

INSTALLED_BY_US=0
RESTORED=0
# shellcheck disable=SC2317  # (called from the EXIT trap)
restore_state() {
    [ "$RESTORED" = 1 ] && return 0
    RESTORED=1
    # the test site
    if [ -L "/etc/apache2/sites-enabled/$SITE_NAME.conf" ]; then
        a2dissite -q -p "$SITE_NAME" > /dev/null 2>&1 || rm -f "/etc/apache2/sites-enabled/$SITE_NAME.conf"
    fi
    rm -f "$SITE"
    # the package, if a failure left it installed
    if [ "$INSTALLED_BY_US" = 1 ] &&
       [ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null)" != not-installed ] &&
       dpkg-query -W "$PKG" > /dev/null 2>&1; then
        "${APT[@]}" remove --purge "$PKG" > "$TMP/cleanup-remove.log" 2>&1 || true
    fi
    snapshot > "$TMP/now.lst"
    local path type target name
    # links and markers of the modules in scope that the test added
    comm -13 "$TMP/before.lst" "$TMP/now.lst" | while IFS='|' read -r path type target; do
        name=$(basename "$path"); name=${name%.load}; name=${name%.conf}
        case " $SCOPE $SITE_NAME " in *" $name "*) ;; *) continue ;; esac
        case "$path" in
            /etc/apache2/mods-enabled/*|/etc/apache2/sites-enabled/*) [ "$type" = l ] && rm -f "$path" ;;
            "$STATE"/*) [ "$type" = f ] && rm -f "$path" ;;
        esac
    done
    # ... and those it removed
    comm -23 "$TMP/before.lst" "$TMP/now.lst" | while IFS='|' read -r path type target; do
        name=$(basename "$path"); name=${name%.load}; name=${name%.conf}
        case " $SCOPE $SITE_NAME " in *" $name "*) ;; *) continue ;; esac
        case "$path" in
            /etc/apache2/mods-enabled/*|/etc/apache2/sites-enabled/*)
                [ "$type" = l ] && ln -sfn "$target" "$path" ;;
            "$STATE"/*)
                [ "$type" = f ] && mkdir -p "$(dirname "$path")" && : > "$path" ;;
        esac
    done
    # marker directories a2enmod created
    comm -13 "$TMP/before.lst" <(snapshot) | awk -F'|' -v s="$STATE/" '$2 == "d" && index($1, s) == 1 {print $1}' |
        sort -r | while read -r path; do rmdir "$path" 2>/dev/null || true; done
    # policy-rc.d as it was
    if [ "$policy_had" = 1 ]; then
        cp -a "$TMP/policy-rc.d.orig" "$POLICY_RC"
    else
        rm -f "$POLICY_RC"
    fi
}
# shellcheck disable=SC2317
cleanup() {
    restore_state
    if [ -n "${SLB_DEB_KEEP:-}" ]; then
        echo "# kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "1..$PLAN"

# ---------------------------------------------------------------- build
rc=0
t0=$SECONDS
SLB_DEB_DIR="$TMP/deb" SLB_LINTIAN=0 bash "$TOP/scripts/build-deb.sh" --source \
    > "$TMP/build.log" 2>&1 < /dev/null || rc=$?
debs=("$TMP"/deb/"${PKG}"_*.deb)
[ "$rc" = 0 ] && [ "${#debs[@]}" = 1 ] && [ -f "${debs[0]}" ]
built=$?
echo "# build: $((SECONDS - t0)) s (log: build.log in the temporary directory, SLB_DEB_KEEP=1 keeps it)"
ok $built "scripts/build-deb.sh builds $(basename "${debs[0]}")"
if [ "$built" != 0 ]; then tail -n 40 "$TMP/build.log" | diag; bail "no package to test"; fi
DEB=${debs[0]}
chmod 644 "$DEB"

# ---------------------------------------------------------------- source package
dscs=("$TMP"/deb/"${PKG}"_*.dsc)
DSC=${dscs[0]}
debver=$(dpkg-deb -f "$DEB" Version)
upver=${debver%-*}
dscver=$(sed -n 's/^Version: //p' "$DSC" 2>/dev/null)
acver=$(sed -nE 's/^AC_INIT\(\[[^]]*\], *\[([^]]*)\].*/\1/p' "$TOP/configure.ac")
ORIGTAR="$TMP/deb/${PKG}_${upver}.orig.tar.xz"
rm -rf "$TMP/unpacked"
[ "${#dscs[@]}" = 1 ] && [ -f "$DSC" ] && [ "$dscver" = "$debver" ] && [ "$upver" = "$acver" ] &&
    [ -f "$ORIGTAR" ] && [ -f "$TMP/deb/${PKG}_${debver}.debian.tar.xz" ] &&
    ! tar -tJf "$ORIGTAR" | grep -q '^[^/]*/debian/' &&
    (cd "$TMP" && dpkg-source -x "$DSC" unpacked > "$TMP/unpack.log" 2>&1) &&
    [ -f "$TMP/unpacked/debian/rules" ] && [ -f "$TMP/unpacked/configure.ac" ]
rc=$?
ok $rc "source package $(basename "$DSC"): upstream tarball without debian/, versions agree (deb $debver, dsc ${dscver:-none}, configure.ac ${acver:-none}), dpkg-source -x unpacks it"
[ "$rc" = 0 ] || { find "$TMP/deb" -maxdepth 1 -type f -printf '%f\n' | diag; [ ! -f "$TMP/unpack.log" ] || diag < "$TMP/unpack.log"; }

# lintian --pedantic: an E:, W: or P: tag fails unless debian/*lintian-overrides
# overrides it (overridden tags are not reported)
lint() {  # lint FILE: 0 when lintian ran and reported no E/W/P tag
    local out rc=0
    out=$(lintian --pedantic --fail-on=error,warning,pedantic "$1" 2>&1) || rc=$?
    echo "$out" | grep -v 'running with root privileges' | diag
    [ "$rc" = 0 ] && ! echo "$out" | grep -qE '^[EWP]: '
}
if command -v lintian > /dev/null; then
    lint "$DSC"
    ok $? "lintian --pedantic $(basename "$DSC"): no error, warning or pedantic tag left"
    lint "$DEB"
    ok $? "lintian --pedantic $(basename "$DEB"): no error, warning or pedantic tag left"
else
    ok 1 "lintian --pedantic on the source package (lintian is not installed: scripts/deps.sh)"
    ok 1 "lintian --pedantic on the binary package (lintian is not installed)"
fi
# every override says why: a comment right above each tag line
unjustified=$(for f in "$TOP"/debian/*lintian-overrides "$TOP"/debian/source/lintian-overrides; do
    [ -f "$f" ] || continue
    awk -v f="${f#"$TOP"/}" '/^[[:space:]]*#/ {c = 1; next}
        /^[[:space:]]*$/ {c = 0; next}
        {if (!c) print f ": " $0; c = 1}' "$f"
done)
[ -z "$unjustified" ]
ok $? "every lintian override in debian/ has a comment saying why"
[ -z "$unjustified" ] || echo "$unjustified" | diag

deps=$(dpkg-deb -f "$DEB" Depends)
contents=$(dpkg-deb -c "$DEB" | awk '{print $NF}')
echo "$deps" | grep -q 'apache2-api-[0-9]' && echo "$deps" | grep -q 'libmemcached' &&
    echo "$contents" | grep -qx "\./usr/lib/apache2/modules/mod_stickylb.so" &&
    echo "$contents" | grep -qx "\./etc/apache2/mods-available/stickylb.load" &&
    echo "$contents" | grep -qx "\./etc/apache2/mods-available/stickylb.conf" &&
    ! echo "$contents" | grep -q '\.la$'
ok $? "the package holds the module and the conf.d files (no .la), depends on apache2-api and libmemcached"
echo "# Depends: $deps"

# ---------------------------------------------------------------- install
printf '#!/bin/sh\n# scripts/deb-test.sh: no service starts during the test\nexit 101\n' > "$POLICY_RC"
chmod 755 "$POLICY_RC"

INSTALLED_BY_US=1
t0=$SECONDS
(cd "$TMP/deb" && "${APT[@]}" install "./$(basename "$DEB")") > "$TMP/install.log" 2>&1 < /dev/null
rc=$?
echo "# install: $((SECONDS - t0)) s"
ok $rc "apt-get install -y ./$(basename "$DEB")"
[ "$rc" = 0 ] || tail -n 30 "$TMP/install.log" | diag
grep -E 'apache2_invoke|Enabling|enmod' "$TMP/install.log" | diag

st=$(dpkg-query -W -f='${Status} ${Version}' "$PKG" 2>/dev/null)
[ "$st" = "install ok installed 0.1.0-1" ]
ok $? "dpkg: $PKG installed ($st)"

test -f "$MODDIR/mod_stickylb.so" && dpkg -S "$MODDIR/mod_stickylb.so" 2>/dev/null | grep -q "^$PKG:" &&
    test ! -e "$MODDIR/mod_stickylb.la"
ok $? "mod_stickylb.so in $MODDIR, owned by the package"

grep -q "^LoadModule stickylb_module $MODDIR/mod_stickylb.so" "$AVAIL/stickylb.load" &&
    grep -q '^# Depends: proxy proxy_http proxy_balancer' "$AVAIL/stickylb.load" &&
    test -f "$AVAIL/stickylb.conf" &&
    dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q "$AVAIL/stickylb.load" &&
    dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q "$AVAIL/stickylb.conf"
ok $? "stickylb.load (LoadModule, Depends) and stickylb.conf in mods-available, as conffiles"

test -L "$ENABLED/stickylb.load" && test -e "$ENABLED/stickylb.load" &&
    test -L "$ENABLED/stickylb.conf" && a2query -q -m stickylb
ok $? "the postinst enabled stickylb (mods-enabled/stickylb.load and .conf)"

DOC=/usr/share/doc/$PKG
readme=$( (zcat "$DOC/README.gz" 2>/dev/null || cat "$DOC/README" 2>/dev/null) | head -n 20)
debreadme=$( (zcat "$DOC/README.Debian.gz" 2>/dev/null || cat "$DOC/README.Debian" 2>/dev/null) | head -n 12)
[ "$(echo "$readme" | head -n 1)" = mod_stickylb ] && ! echo "$readme" | grep -q 'scripts/' &&
    echo "$debreadme" | grep -q 'a2enmod stickylb' && ! echo "$debreadme" | grep -q 'scripts/'
ok $? "$DOC: README starts with the module (no commands of scripts the package does not ship), README.Debian with a2enmod stickylb"
[ "$(echo "$readme" | head -n 1)" = mod_stickylb ] || echo "$readme" | head -n 5 | diag

missing=""
for m in proxy proxy_http proxy_balancer; do
    [ -e "$ENABLED/$m.load" ] || missing="$missing $m"
done
[ -z "$missing" ]
ok $? "its Depends are enabled: proxy proxy_http proxy_balancer${missing:+ (missing:$missing)}"

out=$(apache2ctl -M 2>&1)
echo "$out" | grep -q '^ stickylb_module (shared)'
rc=$?
ok $rc "Apache loads the module (apache2ctl -M lists stickylb_module)"
[ "$rc" = 0 ] || echo "$out" | tail -n 5 | diag

# ---------------------------------------------------------------- a site using it
cat > "$SITE" <<'EOF'
# written by scripts/deb-test.sh, removed at its end
StickyLBMemcached "--SERVER=127.0.0.1:11211" connect-timeout=50 timeout=50 replicas=0
<VirtualHost *:80>
    ServerName stickylb-deb-test.invalid
    <Proxy "balancer://debtest">
        BalancerMember "http://127.0.0.1:18081" route=t1
        BalancerMember "http://127.0.0.1:18082" route=t2
        ProxySet lbmethod=stickylb
        StickyLBSessionCookie JSESSIONID
        StickyLBRouteCookie ROUTEID insert indirect nocache httponly=on samesite=lax
    </Proxy>
    <Proxy "balancer://debtest-shared">
        BalancerMember "http://127.0.0.1:18083" route=t3
        BalancerMember "http://127.0.0.1:18084" route=t4
        ProxySet lbmethod=stickylb
        StickyLBStore memcached
        StickyLBNamespace debtest
        StickyLBLearnCookie JSESSIONID
    </Proxy>
    ProxyPass "/stickylb-status" "!"
    ProxyPass "/shared" "balancer://debtest-shared"
    ProxyPass "/" "balancer://debtest/"
    <Location "/stickylb-status">
        SetHandler stickylb-status
        Require local
    </Location>
</VirtualHost>
EOF
a2ensite -q "$SITE_NAME" > /dev/null 2>&1
out=$(apache2ctl configtest 2>&1)
[ -L "/etc/apache2/sites-enabled/$SITE_NAME.conf" ] && echo "$out" | grep -q 'Syntax OK'
rc=$?
ok $rc "apache2ctl configtest passes with a site using lbmethod=stickylb (shm and memcached stores)"
[ "$rc" = 0 ] || echo "$out" | diag

a2dissite -q -p "$SITE_NAME" > /dev/null 2>&1
rm -f "$SITE"
out=$(apache2ctl configtest 2>&1)
[ ! -e "/etc/apache2/sites-enabled/$SITE_NAME.conf" ] && [ ! -e "$SITE" ] &&
    echo "$out" | grep -q 'Syntax OK'
ok $? "the test site is removed again; configtest passes"

pids_now=$(svc_pids)
[ "$pids_now" = "$pids_before" ]
ok $? "no apache2 or memcached service was started by the install (policy-rc.d)"

# ---------------------------------------------------------------- remove
t0=$SECONDS
"${APT[@]}" remove --purge "$PKG" > "$TMP/remove.log" 2>&1 < /dev/null
rc=$?
echo "# remove: $((SECONDS - t0)) s"
ok $rc "apt-get remove --purge -y $PKG"
[ "$rc" = 0 ] || tail -n 30 "$TMP/remove.log" | diag

st=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null)
files=$(dpkg -L "$PKG" 2>/dev/null)
{ [ -z "$st" ] || [ "$st" = not-installed ]; } && [ -z "$files" ] && ! dpkg -s "$PKG" > /dev/null 2>&1
ok $? "dpkg: $PKG not installed, dpkg -L lists nothing"

test ! -e "$MODDIR/mod_stickylb.so"
ok $? "mod_stickylb.so removed from $MODDIR"

left=$(find "$AVAIL" "$ENABLED" -name 'stickylb*' 2>/dev/null; find "$STATE" -name stickylb 2>/dev/null)
[ -z "$left" ]
ok $? "no stickylb file, link or state marker left in mods-available, mods-enabled, $STATE"
[ -z "$left" ] || echo "$left" | diag

out=$(apache2ctl configtest 2>&1)
echo "$out" | grep -q 'Syntax OK'
rc=$?
ok $rc "apache2ctl configtest passes after the removal"
[ "$rc" = 0 ] || echo "$out" | diag

# ---------------------------------------------------------------- restore
restore_state
now_enabled=""
for m in $SCOPE; do
    if [ -e "$ENABLED/$m.load" ]; then now_enabled="$now_enabled $m"; fi
done
[ "$now_enabled" = "$was_enabled" ]
ok $? "modules enabled for the test are disabled again (enabled now:${now_enabled:- none})"

snapshot > "$TMP/after.lst"
difference=$(diff "$TMP/before.lst" "$TMP/after.lst")
[ -z "$difference" ]
ok $? "/etc/apache2 and $STATE are as before the test"
[ -z "$difference" ] || echo "$difference" | head -n 20 | diag

if [ "$policy_had" = 1 ]; then
    cmp -s "$TMP/policy-rc.d.orig" "$POLICY_RC"
else
    test ! -e "$POLICY_RC"
fi
ok $? "$POLICY_RC restored ($([ "$policy_had" = 1 ] && echo "the machine's own" || echo removed))"

pids_now=$(svc_pids)
[ "$pids_now" = "$pids_before" ]
ok $? "no service left running by the test"

[ "$n" = "$PLAN" ] || echo "# ran $n tests, planned $PLAN"
exit $((fails > 0 ? 1 : 0))
