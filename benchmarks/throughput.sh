#!/usr/bin/env bash
# Training throughput, dfdx (this crate) next to the same models in PyTorch, both on the CPU,
# interleaved workload by workload and repeated, so that both sides see the same machine load.
# Usage: benchmarks/throughput.sh [STEPS] [PYTHON] [ROUNDS] [WORKLOAD...]
# PYTHON must have torch installed (pip install torch). Threads: the Rust side uses rayon's
# pool (RAYON_NUM_THREADS, default the core count); PyTorch is pinned to the same count.
# The me5_small_shape workload runs STEPS/10 steps (at least 2), the others STEPS.
# Prints the raw rates of every round, then one line per workload:
#   PRESET DFDX_STEPS_PER_S TORCH_STEPS_PER_S RATIO     (medians over the rounds)
# CLIRLAB_KERNELS=reference measures dfdx without the fused CPU kernels (the "before").
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
python=${2:-python3}
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(tiny small base transformer_tiny transformer_small me5_small_shape)
threads=${RAYON_NUM_THREADS:-$(nproc)}
echo "machine: $(nproc) cores, $(uname -m); $(rustc --version); torch $("$python" -c 'import torch; print(torch.__version__)'); threads $threads; kernels ${CLIRLAB_KERNELS:-fused}"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# THROUGHPUT_BIN=path uses an already built example binary instead of building it.
bin=${THROUGHPUT_BIN:-target/release/examples/throughput}
[ -n "${THROUGHPUT_BIN:-}" ] || cargo build --quiet --release --example throughput
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for round in $(seq "$rounds"); do
  for w in "${workloads[@]}"; do
    n=$steps
    [ "$w" = me5_small_shape ] && n=$(( steps / 10 > 2 ? steps / 10 : 2 ))
    d=$("$bin" "$n" "$w" | awk -F'|' -v w="$w" '$2 ~ " "w" " {gsub(/ /, "", $3); print $3}')
    t=$("$python" benchmarks/torch_throughput.py "$n" "$threads" "$w" | awk -F'|' -v w="$w" '$2 ~ " "w" " {gsub(/ /, "", $3); print $3}')
    echo "round $round $w dfdx $d torch $t (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$w $d $t" >> "$raw"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PRESET DFDX_STEPS_PER_S TORCH_STEPS_PER_S RATIO"
for w in "${workloads[@]}"; do
  awk -v w="$w" '$1 == w {print $2, $3, $2 / $3}' "$raw" | sort -g -k3 | awk -v w="$w" '
    {d[NR] = $1; t[NR] = $2; r[NR] = $3}
    END {m = int((NR + 1) / 2); printf "%s %s %s %.2f\n", w, d[m], t[m], r[m]}'
done
