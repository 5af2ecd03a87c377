#!/usr/bin/env bash
# scripts/build-deb.sh - build the Debian package libapache2-mod-stickylb
# (`dpkg-buildpackage -us -uc -b`, and with --source the source package,
# `dpkg-buildpackage -us -uc -S`) from a clean copy of the tree.
#
#   bash scripts/build-deb.sh [--source] [--out DIR]
#
# - The source format is 3.0 (quilt): the upstream tarball
#   libapache2-mod-stickylb_<version>.orig.tar.xz is made from the copy,
#   without debian/, next to it (so `dpkg-buildpackage -S` works there);
#   <version> is the changelog's without its Debian revision, and must be
#   configure.ac's AC_INIT version (the build stops otherwise).
# - As root, installs the build dependencies of debian/control when some are
#   missing (apt-get build-dep on the copy; services are kept from starting
#   with a temporary policy-rc.d when the machine has none).  As another
#   user, missing build dependencies are an error (the list is printed).
# - The copy holds the files git knows (tracked, plus untracked ones that
#   are not ignored), so the checkout's _build/, autotools outputs and test
#   leftovers cannot leak into the package; without git (e.g. in a Docker
#   build context) a tar copy that leaves out the same generated files.
# - The .deb files (the package and its -dbgsym), .buildinfo and .changes
#   (with --source also the .dsc, .orig.tar.xz, .debian.tar.xz and the
#   source .changes) end up in DIR (default: $SLB_DEB_DIR, else <repo>/_deb), older
#   libapache2-mod-stickylb files there are removed first.
# - lintian runs on the result when it is installed (its output is shown;
#   it fails the build only with SLB_LINTIAN_STRICT=1).
#
# Environment:
#   SLB_DEB_DIR           output directory (default <repo>/_deb)
#   SLB_DEB_NOCHECK=1     do not run `make check` during the build
#                         (DEB_BUILD_OPTIONS=nocheck)
#   SLB_KEEP_DEB_BUILD=1  keep the temporary build directory
#   SLB_LINTIAN=0         do not run lintian
#   SLB_LINTIAN_STRICT=1  fail when lintian reports errors or warnings
#   MAKE_JOBS             parallel jobs (default 2)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${SLB_DEB_DIR:-$REPO/_deb}
JOBS=${MAKE_JOBS:-2}
PKG=libapache2-mod-stickylb
SOURCE=0

while [ $# -gt 0 ]; do
    case "$1" in
        -o|--out) OUT=$2; shift 2 ;;
        --out=*)  OUT=${1#--out=}; shift ;;
        --source) SOURCE=1; shift ;;
        -h|--help) sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { echo "build-deb.sh: $*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

[ -f "$REPO/debian/control" ] || { say "no debian/control in $REPO" >&2; exit 1; }

WORK=$(mktemp -d /tmp/stickylb-deb-XXXXXX)
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0
cleanup() {
    if [ "$POLICY_RC_OURS" = 1 ]; then rm -f "$POLICY_RC"; fi
    if [ -n "${SLB_KEEP_DEB_BUILD:-}" ]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
          -o Acquire::Retries=3)

# apt-get with services kept from starting (no policy-rc.d of our own when
# the machine already has one: it is the machine's to decide)
apt_quiet_services() {
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\n# build-deb.sh: no service starts during apt-get\nexit 101\n' > "$POLICY_RC"
        chmod 755 "$POLICY_RC"
        POLICY_RC_OURS=1
    fi
    local rc=0
    "$@" || rc=$?
    if [ "$POLICY_RC_OURS" = 1 ]; then rm -f "$POLICY_RC"; POLICY_RC_OURS=0; fi
    return "$rc"
}

apt_install() {  # apt_install ARGS... (update once, retry twice)
    local try
    for try in 1 2 3; do
        if apt-get "${apt_opts[@]}" update -qq &&
           apt_quiet_services apt-get "${apt_opts[@]}" -y -qq --no-install-recommends "$@"; then
            return 0
        fi
        [ "$try" -eq 3 ] && return 1
        say "apt-get failed, retrying ($try)" >&2
        sleep 5
    done
}

# ---------------------------------------------------------------- tools
# dpkg-checkbuilddeps (dpkg-dev) is needed to know what else is missing
if ! command -v dpkg-checkbuilddeps > /dev/null || ! command -v dpkg-buildpackage > /dev/null; then
    if is_root; then
        say "installing dpkg-dev"
        apt_install install dpkg-dev
    else
        say "dpkg-dev is missing (run as root to install it)" >&2
        exit 1
    fi
fi

# ---------------------------------------------------------------- clean copy
SRC=$WORK/$PKG
mkdir -p "$SRC"
if git -C "$REPO" rev-parse --is-inside-work-tree > /dev/null 2>&1 &&
   [ "$(git -C "$REPO" rev-parse --show-toplevel)" = "$REPO" ]; then
    say "copying the files git knows (tracked and untracked, not ignored) to $SRC"
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            # (a file deleted in the work tree is still in the index)
            if [ -e "$REPO/$f" ] || [ -L "$REPO/$f" ]; then printf '%s\0' "$f"; fi
        done |
        tar -C "$REPO" --null --no-recursion -T - -cf - | tar -C "$SRC" -xf -
else
    say "no git checkout: copying $REPO without generated files to $SRC"
    tar -C "$REPO" \
        --exclude=./.git --exclude=./_build --exclude=./_deb \
        --exclude=./autom4te.cache --exclude=./build-aux --exclude=./m4 \
        --exclude=./configure --exclude='./configure~' --exclude=./aclocal.m4 \
        --exclude=./Makefile.in --exclude=./Makefile --exclude=./config.log \
        --exclude=./config.status --exclude=./libtool --exclude=./stamp-h1 \
        --exclude=./stickylb_build.h --exclude=./stickylb_build.h.in \
        --exclude=./conf.d/stickylb.load --exclude='*.o' --exclude='*.lo' \
        --exclude='*.la' --exclude=.libs --exclude=.deps --exclude=.dirstamp \
        --exclude=./t/logs --exclude=./t/TEST --exclude=./t/SMOKE \
        --exclude='./t/conf/*.conf' --exclude=./t/conf/apache_test_config.pm \
        --exclude=./debian/.debhelper --exclude=./debian/$PKG \
        --exclude=./debian/tmp --exclude=./debian/files \
        --exclude='./debian/*.substvars' --exclude='./debian/*.debhelper.log' \
        -cf - . | tar -C "$SRC" -xf -
fi
[ -f "$SRC/debian/rules" ] || { say "the copy has no debian/rules" >&2; exit 1; }

# ---------------------------------------------------------------- upstream tarball
# the changelog's version without epoch and Debian revision is the upstream
# version, which configure.ac (AC_INIT) must state too
DEBVER=$(cd "$SRC" && dpkg-parsechangelog -S Version)
UPVER=${DEBVER#*:}
UPVER=${UPVER%-*}
ACVER=$(sed -nE 's/^AC_INIT\(\[[^]]*\], *\[([^]]*)\].*/\1/p' "$SRC/configure.ac")
if [ "$UPVER" != "$ACVER" ]; then
    say "debian/changelog says $DEBVER (upstream $UPVER), configure.ac AC_INIT says ${ACVER:-nothing}" >&2
    exit 1
fi
ORIG=$WORK/${PKG}_${UPVER}.orig.tar.xz
say "upstream tarball $(basename "$ORIG") (the copy without debian/)"
# reproducible: sorted names, one owner, the changelog's date as mtime
(cd "$WORK" && tar --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$(cd "$SRC" && dpkg-parsechangelog -S Timestamp)" \
    --exclude="$PKG/debian" --transform="s,^$PKG,$PKG-$UPVER," \
    -cJf "$ORIG" "$PKG")

# ---------------------------------------------------------------- build deps
deps_out=$(cd "$SRC" && dpkg-checkbuilddeps 2>&1) && deps_rc=0 || deps_rc=$?
if [ "$deps_rc" -ne 0 ]; then
    echo "$deps_out" >&2
    if is_root; then
        say "installing the build dependencies (apt-get build-dep)"
        apt_install build-dep "$SRC"
        (cd "$SRC" && dpkg-checkbuilddeps)
    else
        say "build dependencies are missing: run as root, or install them" >&2
        exit 1
    fi
else
    say "build dependencies: all installed"
fi

# ---------------------------------------------------------------- build
opts="parallel=$JOBS"
if [ -n "${SLB_DEB_NOCHECK:-}" ]; then opts="$opts nocheck"; fi
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }$opts"
if [ "$SOURCE" = 1 ]; then
    # first, while the copy is as clean as the tarball
    say "dpkg-buildpackage -us -uc -S"
    (cd "$SRC" && dpkg-buildpackage -us -uc -S)
fi
say "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
(cd "$SRC" && dpkg-buildpackage -us -uc -b)

mapfile -t built < <(find "$WORK" -maxdepth 1 -type f \
    \( -name "${PKG}_*.deb" -o -name "${PKG}-dbgsym_*.deb" -o -name "${PKG}-dbgsym_*.ddeb" \
       -o -name "${PKG}_*.buildinfo" -o -name "${PKG}_*.changes" \
       -o -name "${PKG}_*.dsc" -o -name "${PKG}_*.orig.tar.*" \
       -o -name "${PKG}_*.debian.tar.*" \) | sort)
if [ "$SOURCE" = 1 ] && ! ls "$WORK/${PKG}"_*.dsc > /dev/null 2>&1; then
    say "no ${PKG}_*.dsc was built" >&2
    exit 1
fi
if ! ls "$WORK/${PKG}"_*.deb > /dev/null 2>&1; then
    say "no ${PKG}_*.deb was built" >&2
    exit 1
fi

mkdir -p "$OUT"
rm -f "$OUT/${PKG}"_*.deb "$OUT/${PKG}"-dbgsym_*.deb "$OUT/${PKG}"-dbgsym_*.ddeb \
      "$OUT/${PKG}"_*.buildinfo "$OUT/${PKG}"_*.changes "$OUT/${PKG}"_*.dsc \
      "$OUT/${PKG}"_*.orig.tar.* "$OUT/${PKG}"_*.debian.tar.*
cp "${built[@]}" "$OUT/"
for f in "${built[@]}"; do say "built $OUT/$(basename "$f")"; done

# ---------------------------------------------------------------- lintian
if [ "${SLB_LINTIAN:-1}" != 0 ]; then
    if command -v lintian > /dev/null; then
        mapfile -t changes < <(find "$OUT" -maxdepth 1 -name "${PKG}_*.changes" | sort)
        largs=(--info --display-info)
        if [ -n "${SLB_LINTIAN_STRICT:-}" ]; then largs+=("--fail-on=error,warning"); fi
        say "lintian ${largs[*]} ${changes[*]##*/}"
        lrc=0
        lintian "${largs[@]}" "${changes[@]}" || lrc=$?
        say "lintian exit status $lrc"
        if [ "$lrc" -ne 0 ] && [ -n "${SLB_LINTIAN_STRICT:-}" ]; then
            say "lintian reported errors or warnings (SLB_LINTIAN_STRICT)" >&2
            exit 1
        fi
    else
        say "lintian not installed: skipped (apt-get install lintian)"
    fi
fi
