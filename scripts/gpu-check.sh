#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (issue: "GPU: train on the lent H200").
# Run it there from the repository root, with the CUDA binary built here by
# `CLIRLAB_CUDA_ENV=/tmp/clirlab-cuda scripts/build-cuda.sh --examples` and carried along
# (`target/cuda/release/clirlab`, `target/cuda/release/examples/throughput`). It
#   0. finds the CUDA libraries that machine has (PyTorch's nvidia/*/lib, else the system's),
#      checks their major version against the build's, and points NVRTC at their headers;
#   a. trains the quickstart on the GPU and on the CPU with the same seeds and compares the
#      summary metrics within GPU_CHECK_TOLERANCE (absolute, default 0.02);
#   b. measures steps/s and peak GPU memory of every preset in dfdx and in PyTorch on the GPU;
#   c. writes everything under $OUT (default ./gpu-check-out).
# Each phase has its own time limit, so the whole script stays inside 8 minutes.
#
#   scripts/gpu-check.sh            # on the device machine
#   GPU_CHECK_DRY=1 scripts/gpu-check.sh target/release/clirlab target/release/examples/throughput
#                                   # here: the same steps with device=cpu twice (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/cuda/release/clirlab}
THROUGHPUT=${2:-target/cuda/release/examples/throughput}
OUT=${OUT:-$PWD/gpu-check-out}
TOL=${GPU_CHECK_TOLERANCE:-0.02}
BUILD_MAJOR=${GPU_CHECK_CUDA_MAJOR:-13}
# Where the build baked the NVRTC include path (CLIRLAB_CUDA_ENV at build time).
CUDA_ENV=${CLIRLAB_CUDA_ENV:-/tmp/clirlab-cuda}
DRY=${GPU_CHECK_DRY:-0}
# Every CLIRLAB_* variable is a layer of the experiment configuration: keep the build's out.
unset CLIRLAB_CUDA_ENV CLIRLAB_CUDA_ARCH CLIRLAB_CUDA_SPEC
mkdir -p "$OUT"
log() { echo "gpu-check: $*" | tee -a "$OUT/gpu-check.log"; }
fail() {
  log "FAILED: $*"
  exit 1
}
[ -x "$BIN" ] || fail "no binary at $BIN (build it with scripts/build-cuda.sh and carry target/cuda/release)"
[ -x "$THROUGHPUT" ] || fail "no throughput example at $THROUGHPUT (scripts/build-cuda.sh --examples)"
log "started $(date -u +%FT%TZ) on $(hostname), $(nproc) cores"

GPU_DEVICE=cuda
if [ "$DRY" = 1 ]; then
  GPU_DEVICE=cpu
  log "dry run: device=cpu stands in for the GPU"
else
  # 0. Driver and libraries.
  command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no NVIDIA driver on this machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee "$OUT/gpu.csv"
  python=$(command -v python3 || true)
  lib_dir=""
  if [ -n "$python" ]; then
    # PyTorch's wheels bring CUDA as nvidia/<cuXX or component>/lib inside site-packages.
    for d in $("$python" - <<'EOF' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for lib in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        print(lib)
EOF
    ); do
      if ls "$d"/libcublas.so."$BUILD_MAJOR"* >/dev/null 2>&1; then lib_dir=$d; fi
    done
  fi
  if [ -z "$lib_dir" ]; then
    for d in /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
      if ls "$d"/libcublas.so."$BUILD_MAJOR"* >/dev/null 2>&1; then lib_dir=$d; fi
    done
  fi
  [ -n "$lib_dir" ] || fail "no libcublas.so.$BUILD_MAJOR (PyTorch nvidia/*/lib or system); found: $(find / -name 'libcublas.so*' 2>/dev/null | head -5 | tr '\n' ' ')"
  tree=$(dirname "$lib_dir")
  log "CUDA libraries: $lib_dir"
  ls "$lib_dir" | grep -E 'libcublas|libcudart|libnvrtc' | tee -a "$OUT/gpu-check.log"
  [ -f "$tree/include/cuda.h" ] || log "warning: no $tree/include/cuda.h: NVRTC kernels may fail to compile"
  # dfdx compiles some kernels with NVRTC at run time and looks for headers where the build's
  # toolkit was: link that path to the headers here.
  mkdir -p "$CUDA_ENV"
  ln -sfn "$tree" "$CUDA_ENV/root"
  export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Other nvidia/* component folders (nvrtc, cuda_runtime) of older wheel layouts.
  for extra in "$(dirname "$tree")"/*/lib; do
    [ -d "$extra" ] && [ "$extra" != "$lib_dir" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$extra"
  done
  ldd "$BIN" | grep -E 'cuda|cublas|nvrtc' | tee -a "$OUT/gpu-check.log" || true
fi

# Samples used GPU memory every 0.2 s while a command runs; prints the peak in MiB.
peak_gpu_mem() {
  local file=$1
  shift
  if [ "$DRY" = 1 ]; then
    echo "n/a" >"$file"
    "$@"
    return
  fi
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$file.samples" &
  local sampler=$!
  local rc=0
  "$@" || rc=$?
  kill "$sampler" 2>/dev/null || true
  sort -n "$file.samples" | tail -n1 >"$file"
  return $rc
}

# a. Quickstart on both devices, same seeds.
for role in gpu cpu; do
  dev=cpu
  [ "$role" = gpu ] && dev=$GPU_DEVICE
  log "quickstart on $dev ($role side)"
  started=$(date +%s)
  peak_gpu_mem "$OUT/quickstart-$role.peak-mib" timeout 150 "$BIN" --quiet run experiments/quickstart.yaml \
    --results "$OUT/quickstart-$role" --set "device=$dev" >"$OUT/quickstart-$role.log" 2>&1 ||
    fail "quickstart on $dev (see $OUT/quickstart-$role.log): $(tail -n 5 "$OUT/quickstart-$role.log")"
  log "quickstart on $dev took $(($(date +%s) - started)) s"
done
python3 - "$OUT/quickstart-gpu/quickstart/report/summary.csv" "$OUT/quickstart-cpu/quickstart/report/summary.csv" "$TOL" <<'EOF' | tee "$OUT/cpu-vs-gpu.txt"
import csv, sys
gpu, cpu, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
a, b = rows(gpu), rows(cpu)
assert len(a) == len(b), f"{len(a)} rows on the GPU, {len(b)} on the CPU"
worst = (0.0, "")
for ra, rb in zip(a, b):
    for k, va in ra.items():
        try:
            x, y = float(va), float(rb[k])
        except (TypeError, ValueError):
            continue
        if abs(x - y) > worst[0]:
            worst = (abs(x - y), f"{k} of row {ra.get('grid_point', ra)}")
print(f"largest |GPU - CPU| difference: {worst[0]:.6g} ({worst[1] or 'all equal'}); tolerance {tol}")
sys.exit(0 if worst[0] <= tol else 1)
EOF

# b. Steps/s and peak memory per preset, dfdx then PyTorch on the same device.
log "dfdx throughput on $GPU_DEVICE"
CLIRLAB_DEVICE=$GPU_DEVICE peak_gpu_mem "$OUT/throughput-dfdx.peak-mib" timeout 150 "$THROUGHPUT" 30 \
  | tee "$OUT/throughput-dfdx.md" || log "dfdx throughput failed (rc $?)"
if python3 -c 'import torch' 2>/dev/null; then
  log "PyTorch throughput on $GPU_DEVICE ($(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)'))"
  TORCH_THROUGHPUT_DEVICE=$GPU_DEVICE peak_gpu_mem "$OUT/throughput-torch.peak-mib" timeout 150 \
    python3 benchmarks/torch_throughput.py 30 "$(nproc)" | tee "$OUT/throughput-torch.md" ||
    log "PyTorch throughput failed (rc $?)"
else
  log "no torch on this machine: PyTorch side skipped"
fi
log "peak GPU memory (MiB): dfdx $(cat "$OUT/throughput-dfdx.peak-mib" 2>/dev/null), torch $(cat "$OUT/throughput-torch.peak-mib" 2>/dev/null)"
log "done $(date -u +%FT%TZ)"
