#!/usr/bin/env bash
# Everything the first hardware GPU should measure, in one run, into one results file:
# `devices`; `bench --profile` of both kernel families at batch 16, 256 and 1024; the
# PyTorch version of the network on CUDA at the same batches; a full default `train` (20
# passes) with its wall time. On the GPU machine of ../shared/gpu/README.md, from the
# repository root with `.gpu/` (the binary, the Vulkan loader packages, MNIST) beside it:
#
#   bench/gpu-run.sh [RESULTS]          (default $OUT/gpu-run.txt, else ./gpu-run.txt)
#
# Every step has a time limit, so the whole run stays under 8 minutes; a step that fails
# or runs out of time is recorded as such and the run goes on.
#
#   bench/gpu-run.sh --short [RESULTS]  a few steps of each, on whatever adapter is here
#                                       (a software one: lavapipe), for tests/gpu_run.rs
set -uo pipefail
cd "$(dirname "$0")/.."
short=0
if [ "${1:-}" = "--short" ]; then short=1; shift; fi
out="${1:-${OUT:-.}/gpu-run.txt}"
bin="${LENET_BIN:-.gpu/lenet-gpu}"
[ -x "$bin" ] || bin=target/release/lenet-gpu
data="${LENET_DATA:-.gpu/mnist}"
[ -d "$data" ] || data=data/mnist

# The Vulkan loader, where the machine lacks it (root only: it unpacks into /).
if [ "$(id -u)" = 0 ] && ls .gpu/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gpu/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then export VK_DRIVER_FILES="$icd"; fi
done

if [ $short = 1 ]; then
    batches=16; steps=3; bench_limit=(--train-limit 2000 --test-limit 200); adapter=(--cpu-adapter)
    train=(--epochs 1 --train-limit 2000 --test-limit 200); limit_bench=120; limit_train=120
else
    batches=16,256,1024; steps=200; bench_limit=(); adapter=()
    train=(); limit_bench=100; limit_train=150
fi

: >"$out"
log() { printf '%s\n' "$@" >>"$out"; }
# step NAME SECONDS COMMAND...: runs it with a limit, its output and exit status into $out.
step() {
    local name="$1" secs="$2"
    shift 2
    log "" "== $name" "\$ $*"
    local start end status
    start=$(date +%s.%N)
    timeout "$secs" "$@" >>"$out" 2>&1
    status=$?
    end=$(date +%s.%N)
    log "-- $name: exit $status$( [ $status = 124 ] && echo " (out of time after ${secs}s)"), $(echo "$end - $start" | bc) s wall"
}

log "lenet-gpu GPU run, $(date -u +%Y-%m-%dT%H:%M:%SZ), $( [ $short = 1 ] && echo short || echo full )"
log "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(uname -srm); $(nproc) CPUs"
if command -v nvidia-smi >/dev/null; then
    log "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
fi
step devices 30 "$bin" devices
for kernels in fused simple; do
    step "bench, $kernels kernels" "$limit_bench" "$bin" bench --backend vulkan "${adapter[@]}" \
        --kernels "$kernels" --batch "$batches" --steps "$steps" --profile --data "$data" "${bench_limit[@]}"
done
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    step "PyTorch on CUDA" 90 python3 bench/pytorch_lenet5.py --device cuda --data "$data" \
        --batch "$batches" --steps "$steps"
else
    log "" "== PyTorch on CUDA" "-- skipped: no PyTorch with CUDA here"
fi
step "train, defaults" "$limit_train" "$bin" train --backend vulkan "${adapter[@]}" --data "$data" "${train[@]}"
log "" "end of run"
echo "results in $out"
