#!/usr/bin/env bash
# Runs kiln's workloads next to the peers, one after the other on this machine, and prints the
# common `workload=... impl=...` lines. Usage:
#   benches/compare.sh [BURN_REF_DIR] [TORCH_PYTHON]
# BURN_REF_DIR: a writable copy of the Burn reference program (../shared/bench/burn-ref in the
# project's workspace), built here with `cargo build --release` if needed.
# TORCH_PYTHON: a python with torch installed, to run torch_ref.py (next to burn-ref's folder).
set -euo pipefail
cd "$(dirname "$0")/.."
burn="${1:-}"
py="${2:-}"
cargo build --release -q -p kiln-benches --bin workloads
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
./target/release/workloads all --device gpu
./target/release/workloads all --device cpu
if [ -n "$burn" ]; then
    (cd "$burn" && cargo build --release -q && ./target/release/burn-ref matmul && ./target/release/burn-ref ops)
fi
if [ -n "$py" ] && [ -n "$burn" ] && [ -f "$burn/../torch_ref.py" ]; then
    "$py" "$burn/../torch_ref.py" matmul
    "$py" "$burn/../torch_ref.py" ops
fi
