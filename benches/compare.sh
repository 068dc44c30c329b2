#!/usr/bin/env bash
# Runs kiln's workloads next to the peers, one after the other on this machine, prints every
# `workload=... impl=...` line and then a table with the ratios. Usage:
#   benches/compare.sh [BURN_REF_DIR] [TORCH_PYTHON]
# BURN_REF_DIR: a writable copy of the Burn reference program (the project's bench/burn-ref),
#   built here with `cargo build --release` if needed.
# TORCH_PYTHON: a python with torch installed; runs torch_ref.py from next to BURN_REF_DIR (or
#   $TORCH_REF) and benches/torch_digits.py.
set -euo pipefail
cd "$(dirname "$0")/.."
burn="${1:-}"
py="${2:-}"
out="$(mktemp)"
cargo build --release -q -p kiln-benches --bin workloads
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
{
    ./target/release/workloads all --device gpu
    ./target/release/workloads all --device cpu
    if [ -n "$burn" ]; then
        (cd "$burn" && cargo build --release -q && ./target/release/burn-ref all)
    fi
    if [ -n "$py" ]; then
        ref="${TORCH_REF:-${burn:+$burn/../torch_ref.py}}"
        [ -n "$ref" ] && [ -f "$ref" ] && "$py" "$ref" all
        "$py" benches/torch_digits.py 0
    fi
} 2>/dev/null | tee "$out"
echo
awk '
function key(line,   k) {
    k = line; sub(/ .*/, "", k); sub(/workload=/, "", k)
    if (match(line, / n=[0-9]+/)) k = k substr(line, RSTART, RLENGTH)
    return k
}
function val(line, name,   v) {
    if (!match(line, " " name "=[^ ]+")) return ""
    v = substr(line, RSTART + length(name) + 2, RLENGTH - length(name) - 2)
    return v
}
/^workload=/ {
    impl = val($0, "impl"); k = key($0)
    if (k ~ /^matmul/) v = val($0, "gflops")
    else if (k ~ /^mlp_step/ || k ~ /^cnn_step/ || k ~ /^gpt_step/ || k ~ /^lstm_step/) v = val($0, "ms")
    else if (k ~ /^small_ops/) v = val($0, "us_per_op")
    else if (k ~ /^digits/) v = val($0, "seconds")
    else next
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    r[k, impl] = v
}
END {
    printf "%-14s %12s %12s %12s %12s %16s\n", "workload", "kiln-gpu", "burn-wgpu", "kiln-cpu", "torch-cpu", "kiln-gpu/burn"
    for (i = 1; i <= n; i++) {
        k = order[i]; g = r[k, "kiln-gpu"]; b = r[k, "burn-wgpu"]
        ratio = "-"
        if (g != "" && b != "" && g + 0 > 0 && b + 0 > 0) {
            # GFLOP/s: higher is better; times: lower is better. Print the speed-up of kiln.
            ratio = (k ~ /^matmul/) ? sprintf("%.2fx", g / b) : sprintf("%.2fx", b / g)
        }
        printf "%-14s %12s %12s %12s %12s %16s\n", k, g, b, r[k, "kiln-cpu"], r[k, "torch-cpu"], ratio
    }
    print "(matmul: GFLOP/s; mlp_step: ms; small_ops: us/op; digits: seconds)"
}' "$out"
rm -f "$out"
