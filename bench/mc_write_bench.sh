#!/usr/bin/env bash
# bench/mc_write_bench.sh - what one memcached write of a new binding costs
# the balancer, by write mode (bench/mc_write_bench.c): builds the program
# (make -C bench mc_write_bench), starts a memcached of its own on a free
# loopback port (pinned to CPU 1), runs the program pinned to CPU 0 and
# stops memcached by its PID.  Prints the program's table: CPU time of the
# process (every thread) and wall time per binding, for add (write=sync),
# set, quiet set (write=quiet) and the writer thread (write=async).
#
#   bash bench/mc_write_bench.sh [N]      (default 20000 bindings a method)
#
# Needs memcached, libmemcached-dev, APR (scripts/deps.sh) and taskset.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${1:-20000}
make -s -C "$BENCH" mc_write_bench
PORT=$(perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0) or die; print $s->sockport')
USER_OPT=()
[ "$(id -u)" -ne 0 ] || USER_OPT=(-u nobody)
taskset -c 1 memcached -l 127.0.0.1 -p "$PORT" -U 0 -t 1 -m 256 "${USER_OPT[@]}" &
MC=$!
trap 'kill "$MC" 2>/dev/null || true; wait "$MC" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    perl -MIO::Socket::INET -e "exit !IO::Socket::INET->new('127.0.0.1:$PORT')" && break
    sleep 0.1
done
echo "mc_write_bench: $N bindings per method, memcached $(memcached -V | cut -d' ' -f2) on 127.0.0.1:$PORT (CPU 1), program on CPU 0, $(date -u '+%Y-%m-%d %H:%M UTC')"
taskset -c 0 "$BENCH/mc_write_bench" "$PORT" "$N"
