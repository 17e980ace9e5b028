#!/usr/bin/env bash
# Training throughput of every preset: dfdx (this crate) next to the same models in PyTorch,
# both on the CPU, in one run. Usage: benchmarks/throughput.sh [STEPS] [PYTHON]
# PYTHON must have torch installed (pip install torch). Threads: the Rust side uses what
# dfdx uses; PyTorch is pinned to the machine's core count.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
python=${2:-python3}
echo "machine: $(nproc) cores, $(uname -m); $(rustc --version); torch $("$python" -c 'import torch; print(torch.__version__)')"
cargo run --quiet --release --example throughput -- "$steps"
"$python" benchmarks/torch_throughput.py "$steps" "$(nproc)"
