#!/usr/bin/env bash
# scripts/deps.sh - install everything needed to build and test mod_stickylb.
# Run as root on Debian 12 or Ubuntu 22.04/24.04.  Skips apt entirely when all
# packages are already installed.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

PKGS=(
    gcc make libc6-dev
    autoconf automake libtool pkg-config
    apache2 apache2-dev libapr1-dev libaprutil1-dev
    libmemcached-dev memcached libssl-dev openssl iptables prometheus chromium fonts-dejavu-core
    check
    libc-ares-dev libcurl4-openssl-dev libjansson-dev   # discovery (DNS, etcd)
    dnsmasq-base etcd-server etcd-client                 # discovery tests: real servers (dnsmasq-base: the binary, no service)
    libapache2-mod-perl2 libwww-perl perl
    curl procps iproute2 valgrind passwd
    lintian    # scripts/deb-test.sh: lintian --pedantic on the source and binary packages
)

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps.sh: all ${#PKGS[@]} packages already installed"
    exit 0
fi

echo "deps.sh: installing: ${missing[*]}"
apt_opts=(-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
          -o Acquire::Retries=3)
for try in 1 2 3; do
    if apt-get "${apt_opts[@]}" update -qq &&
       apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"; then
        break
    fi
    if [ "$try" -eq 3 ]; then
        echo "deps.sh: apt-get failed" >&2
        exit 1
    fi
    echo "deps.sh: apt-get failed, retrying ($try)" >&2
    sleep 5
done

# the Debian package starts apache2/memcached services where it can; the tests
# run their own instances on other ports, so that does no harm
echo "deps.sh: done"
