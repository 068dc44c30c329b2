#!/usr/bin/env bash
# Where a kernel's time goes on llvmpipe, by instruction kind. llvmpipe's JIT code has no
# symbols, so this samples the running workload with perf's cpu-clock event (works without
# hardware counters), disassembles the hottest code from the live process with gdb, and credits
# each sample to the instruction before it (the one that was executing).
#
#   benches/llvmpipe_profile.sh [KILN_MATMUL value]      (default: the default kernels)
#
# Needs perf (Debian: linux-perf) and gdb. Profiles `workloads matmul` at n=1024 repeated;
# writes /tmp/kiln_prof.{data,hot,dis} and prints the sample share per instruction kind, then
# the instruction counts of the disassembled range.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kiln-benches --bin workloads
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
sizes=$(python3 -c "print(','.join(['1024'] * 40))")
KILN_MATMUL="${1:-}" ./target/release/workloads matmul --sizes "$sizes" > /dev/null 2>&1 &
pid=$!
sleep 2
perf record -e cpu-clock -F 4000 -p "$pid" -o /tmp/kiln_prof.data -- sleep 3 > /dev/null 2>&1
perf report -i /tmp/kiln_prof.data --no-children --sort sym 2>/dev/null | grep -v '^#' | grep 0x > /tmp/kiln_prof.hot
start=$(python3 -c "
import re
h = [int(re.search(r'(0x[0-9a-f]+)', l).group(1), 16) for l in open('/tmp/kiln_prof.hot')]
near = [x for x in h if abs(x - h[0]) < 0x40000]
print(hex(min(near) & ~0xfff))")
gdb -p "$pid" -batch -ex "x/40000i $start" 2> /dev/null > /tmp/kiln_prof.dis
kill "$pid"
python3 - << 'PY'
import bisect, re
ins = []
for l in open('/tmp/kiln_prof.dis'):
    m = re.match(r'\s*(0x[0-9a-f]+)(?: <[^>]*>)?:\s*(.*)', l)
    if m:
        ins.append((int(m.group(1), 16), m.group(2)))
keys = [a for a, _ in ins]
kind = lambda t: (t.split()[0] if t else '?') + (' mem' if '(' in t and t.startswith('v') else '')
shares = {}
inside = 0.0
for l in open('/tmp/kiln_prof.hot'):
    m = re.match(r'\s*([\d.]+)%.*(0x[0-9a-f]+)', l)
    if not m:
        continue
    p, a = float(m.group(1)), int(m.group(2), 16)
    if keys and keys[0] <= a <= keys[-1]:
        i = bisect.bisect_left(keys, a)
        k = kind(ins[i - 1][1]) if i > 0 else '?'
        shares[k] = shares.get(k, 0) + p
        inside += p
print(f'{inside:.1f}% of samples in the disassembled range; share by the instruction before the sample:')
print('  ' + '  '.join(f'{k}: {v:.1f}' for k, v in sorted(shares.items(), key=lambda x: -x[1])[:16]))
counts = {}
for _, t in ins:
    counts[kind(t)] = counts.get(kind(t), 0) + 1
print('instruction counts in the range:', sorted(counts.items(), key=lambda x: -x[1])[:16])
PY
