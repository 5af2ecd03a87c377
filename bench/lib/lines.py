#!/usr/bin/env python3
"""bench/lib/lines.py CALLGRIND_OUT MODULE_SO REQUESTS [TOP]

Exclusive instructions per request of a module's source lines, from a
callgrind file written with --dump-instr=yes (SLB_PROFILE_DUMP_INSTR=yes
bench/run.sh --profile ...).  valgrind 3.19 reads no line table of the
module here (callgrind_annotate reports "unidentified lines"), so the
instruction addresses are mapped with addr2line: the module's load base is
found from its functions' entry addresses and the offsets of their symbols
(nm).  Inlined code is reported at the line it was written on (addr2line
without -i: the innermost frame).  Prints the TOP (default 60) costliest lines and the
total of each function.
"""
import collections
import re
import subprocess
import sys


def parse(path, module):
    """{absolute address: exclusive cost} of the module's instructions,
    {function name: lowest address seen} (its entry, for the load base)."""
    names = {"ob": {}, "fn": {}, "fl": {}}
    cost = collections.Counter()
    low = {}
    ob = fn = ""
    last = 0
    skip_next = False          # the cost line after calls= is inclusive
    pos_re = re.compile(r"^(0x[0-9a-fA-F]+|[+-]\d+|\*)\s+(.*)$")

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                ob = name("ob", line[3:])
                continue
            if line.startswith(("cob=", "cfi=", "cfl=")):
                name("ob" if line.startswith("cob") else "fl",
                     line.split("=", 1)[1])
                continue
            if line.startswith("cfn="):
                name("fn", line[4:])
                continue
            if line.startswith("fn="):
                fn = name("fn", line[3:])
                continue
            if line.startswith(("fl=", "fi=", "fe=")):
                name("fl", line[3:])
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = pos_re.match(line)
            if not m:
                continue
            p = m.group(1)
            if p.startswith("0x"):
                addr = int(p, 16)
            elif p == "*":
                addr = last
            else:
                addr = last + int(p)
            last = addr
            if skip_next:
                skip_next = False
                continue
            if not ob.endswith(module):
                continue
            rest = m.group(2).split()
            # positions: instr line -> the line field may be compressed too
            c = int(rest[-1]) if rest else 0
            cost[addr] += c
            if fn not in low or addr < low[fn]:
                low[fn] = addr
    return cost, low


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, so, nreq = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    cost, low = parse(out, so.split("/")[-1])
    syms = {}
    for l in subprocess.run(["nm", "--defined-only", so], capture_output=True,
                            text=True).stdout.splitlines():
        a = l.split()
        if len(a) == 3 and a[1] in "tT":
            syms[a[2]] = int(a[0], 16)
    bases = collections.Counter(low[f] - syms[f] for f in low if f in syms)
    if not bases:
        sys.exit("lines.py: no function of %s found in %s" % (so, out))
    base = bases.most_common(1)[0][0]
    addrs = sorted(cost)
    res = subprocess.run(["addr2line", "-f", "-e", so] +
                         ["0x%x" % (a - base) for a in addrs],
                         capture_output=True, text=True).stdout.splitlines()
    by_line = collections.Counter()
    by_fn = collections.Counter()
    for i, a in enumerate(addrs):
        fname, where = res[2 * i], res[2 * i + 1]
        where = re.sub(r" \(discriminator \d+\)", "", where).split("/")[-1]
        by_line[(where, fname)] += cost[a]
        by_fn[fname] += cost[a]
    total = sum(cost.values())
    print("module %s: %.0f instructions per request (exclusive, %d requests)"
          % (so, total / nreq, nreq))
    print("by function:")
    for f, c in by_fn.most_common():
        if c / nreq >= 1:
            print("  %7.1f  %s" % (c / nreq, f))
    print("by source line (the innermost inlined frame):")
    for (w, f), c in by_line.most_common(top):
        print("  %7.1f  %-28s %s" % (c / nreq, w, f))


if __name__ == "__main__":
    main()
