#!/usr/bin/env bash
# scripts/build.sh - autotools build of mod_stickylb, out of tree.
#   SLB_BUILD_DIR  build directory (default: <repo>/_build)
#   SLB_CONFIGURE_FLAGS  extra ./configure flags
#   MAKE_JOBS      parallel make jobs (default 2)
# Idempotent: re-running only rebuilds what changed (configure is re-run when
# configure.ac/Makefile.am changed, through automake's rebuild rules).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${SLB_BUILD_DIR:-$REPO/_build}
JOBS=${MAKE_JOBS:-2}

cd "$REPO"
# regenerate the autotools files when missing or older than their sources
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ] \
   || [ -n "${SLB_AUTORECONF:-}" ] || [ ! -f build-aux/ltmain.sh ]; then
    echo "build.sh: autoreconf -fi"
    autoreconf -fi
fi

mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
if [ ! -f Makefile ] || [ ! -f config.status ] || [ "$REPO/configure" -nt config.status ]; then
    echo "build.sh: configure in $BUILD_DIR"
    # shellcheck disable=SC2086
    "$REPO/configure" --enable-werror ${SLB_CONFIGURE_FLAGS:-}
fi

echo "build.sh: make -j$JOBS"
make -j"$JOBS"

if [ -f .libs/mod_stickylb.so ]; then
    echo "build.sh: built $BUILD_DIR/.libs/mod_stickylb.so"
else
    echo "build.sh: .libs/mod_stickylb.so missing after make" >&2
    exit 1
fi
