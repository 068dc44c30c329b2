#!/usr/bin/env bash
# Issue 6 part 4: kiln through Vulkan on a GPU machine, next to PyTorch CUDA (TF32 off), in one
# run of the `device` tool. Prepare here (the GPU machine has no Rust and no network):
#   cargo build --release -p kiln-benches --bin workloads
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu; cp target/release/workloads .gpu/
#   (and the Vulkan loader packages in .gl, as the device tool's README says)
# then run on the machine, carrying .gl and .gpu:
#   bash benches/gpu/run.sh
# Every line goes to stdout and to $OUT/gpu.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp}/gpu.txt"
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
{
    nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader || true
    ./.gpu/workloads matmul --sizes 256,512,1024,2048,4096 --device gpu
    ./.gpu/workloads mlp_step --batch 4096 --device gpu
    ./.gpu/workloads small_ops --device gpu
    python3 benches/gpu/torch_cuda.py
} 2>&1 | tee "$out"
