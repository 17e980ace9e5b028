#!/usr/bin/env bash
# The one prepared script for a machine with an NVIDIA GPU (docs/gpu.md).
# Run it there from the repository root, with the CUDA binaries built here by
# `CLIRLAB_CUDA_ENV=/tmp/clirlab-cuda scripts/build-cuda.sh --examples` and carried along
# (`target/cuda/release/clirlab`, `target/cuda/release/examples/throughput` and
# `target/cuda/release/examples/me5_speed`; strip them if the three pass the carry limit). It
#   0. finds the CUDA libraries that machine has (PyTorch's nvidia/*/lib, else the system's),
#      checks their major version against the build's, and points NVRTC at their headers;
#   a. trains the quickstart on the GPU and on the CPU with the same seeds and compares the
#      summary metrics within GPU_CHECK_TOLERANCE (absolute, default 0.02);
#   b. measures steps/s and peak GPU memory of every preset in dfdx and in PyTorch on the GPU;
#   c. measures a me5-small fine-tuning step (the top 2 layers; every layer and embedding but
#      the word table: 32 pairs of 64 tokens, AdamW) in dfdx and in PyTorch on the GPU, both
#      from one folder of seeded random weights of me5-small's shape (that machine cannot
#      fetch the real ones; the speed does not depend on the values), with peak GPU memory;
#   d. writes its log, every number in it, to $OUT/gpu-check.log as it goes (default $OUT:
#      ./gpu-check-out), and the outputs behind it to $OUT/details.tar.gz at the end.
# Each phase has its own time limit (about 3 minutes in all when nothing hangs); the log is
# written as it goes, so a run cut off at the machine's 10-minute limit still reports what it
# reached. A failed phase is logged and the others still run; the exit status is 1 if any failed.
#
#   scripts/gpu-check.sh            # on the device machine
#   GPU_CHECK_DRY=1 scripts/gpu-check.sh target/release/clirlab target/release/examples/throughput \
#     target/release/examples/me5_speed
#                                   # here: the same steps with device=cpu (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/cuda/release/clirlab}
THROUGHPUT=${2:-target/cuda/release/examples/throughput}
ME5_SPEED=${3:-target/cuda/release/examples/me5_speed}
OUT=${OUT:-$PWD/gpu-check-out}
# Step repetitions timed for me5-small (after one untimed step).
ME5_REPEATS=${GPU_CHECK_ME5_REPEATS:-5}
failed=0
TOL=${GPU_CHECK_TOLERANCE:-0.02}
BUILD_MAJOR=${GPU_CHECK_CUDA_MAJOR:-13}
# Where the build baked the NVRTC include path (CLIRLAB_CUDA_ENV at build time).
CUDA_ENV=${CLIRLAB_CUDA_ENV:-/tmp/clirlab-cuda}
DRY=${GPU_CHECK_DRY:-0}
# Every CLIRLAB_* variable is a layer of the experiment configuration: keep the build's out.
unset CLIRLAB_CUDA_ENV CLIRLAB_CUDA_ARCH CLIRLAB_CUDA_SPEC
mkdir -p "$OUT"
# The outputs behind the log, packed into $OUT at the end: only a few files come back from
# the device machine. The random model stays outside $OUT (470 MB).
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log() { echo "gpu-check: $*" | tee -a "$OUT/gpu-check.log"; }
fail() {
  log "FAILED: $*"
  exit 1
}
[ -x "$BIN" ] || fail "no binary at $BIN (build it with scripts/build-cuda.sh and carry target/cuda/release)"
[ -x "$THROUGHPUT" ] || fail "no throughput example at $THROUGHPUT (scripts/build-cuda.sh --examples)"
[ -x "$ME5_SPEED" ] || fail "no me5_speed example at $ME5_SPEED (scripts/build-cuda.sh --examples)"
log "started $(date -u +%FT%TZ) on $(hostname), $(nproc) cores"

GPU_DEVICE=cuda
if [ "$DRY" = 1 ]; then
  GPU_DEVICE=cpu
  ME5_REPEATS=${GPU_CHECK_ME5_REPEATS:-1}
  log "dry run: device=cpu stands in for the GPU"
else
  # 0. Driver and libraries.
  command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no NVIDIA driver on this machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee -a "$OUT/gpu-check.log"
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

# A peak written by peak_gpu_mem, or "not run".
peak() { cat "$1" 2>/dev/null || echo "not run"; }

# a. Quickstart on both devices, same seeds.
quickstarts=0
for role in gpu cpu; do
  dev=cpu
  [ "$role" = gpu ] && dev=$GPU_DEVICE
  log "quickstart on $dev ($role side)"
  started=$(date +%s)
  peak_gpu_mem "$WORK/quickstart-$role.peak-mib" timeout 100 "$BIN" --quiet run experiments/quickstart.yaml \
    --results "$WORK/quickstart-$role" --set "device=$dev" >"$WORK/quickstart-$role.log" 2>&1 ||
    {
      log "FAILED: quickstart on $dev: $(tail -n 5 "$WORK/quickstart-$role.log")"
      failed=1
      continue
    }
  log "quickstart on $dev took $(($(date +%s) - started)) s"
  quickstarts=$((quickstarts + 1))
done
if [ "$quickstarts" = 2 ] && ! python3 - "$WORK/quickstart-gpu/quickstart/report/summary.csv" \
  "$WORK/quickstart-cpu/quickstart/report/summary.csv" "$TOL" <<'EOF' | tee -a "$OUT/gpu-check.log"; then
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
  log "FAILED: the GPU's and the CPU's quickstart metrics differ by more than $TOL (or a summary is missing)"
  failed=1
fi

# b. Steps/s and peak memory per preset, dfdx then PyTorch on the same device.
# The presets only: the example's me5_small_shape workload is CPU-only (part c is me5-small).
PRESETS="tiny small base transformer_tiny transformer_small"
log "dfdx throughput on $GPU_DEVICE"
CLIRLAB_DEVICE=$GPU_DEVICE peak_gpu_mem "$WORK/throughput-dfdx.peak-mib" timeout 90 "$THROUGHPUT" 30 $PRESETS \
  | tee -a "$OUT/gpu-check.log" || { log "FAILED: dfdx throughput (rc $?)"; failed=1; }
if python3 -c 'import torch' 2>/dev/null; then
  log "PyTorch throughput on $GPU_DEVICE ($(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)'))"
  TORCH_THROUGHPUT_DEVICE=$GPU_DEVICE peak_gpu_mem "$WORK/throughput-torch.peak-mib" timeout 90 \
    python3 benchmarks/torch_throughput.py 30 "$(nproc)" | tee -a "$OUT/gpu-check.log" ||
    { log "FAILED: PyTorch throughput (rc $?)"; failed=1; }
else
  log "no torch on this machine: PyTorch side skipped"
fi
log "peak GPU memory (MiB): dfdx $(peak "$WORK/throughput-dfdx.peak-mib"), torch $(peak "$WORK/throughput-torch.peak-mib")"

# c. me5-small fine-tuning steps, dfdx then PyTorch, from the same random weights.
me5_dir=$WORK/me5-random
timeout 40 python3 benchmarks/me5_random_model.py "$me5_dir" 1 | tee -a "$OUT/gpu-check.log" ||
  fail "could not write the random me5-small folder (needs python3 with numpy)"
have_torch=0
python3 -c 'import torch, transformers' 2>/dev/null && have_torch=1
for kind in top2 no-words; do
  log "me5-small step $kind, dfdx on $GPU_DEVICE"
  CLIRLAB_DEVICE=$GPU_DEVICE ME5_SPEED_MODEL=$me5_dir peak_gpu_mem "$WORK/me5-$kind-dfdx.peak-mib" \
    timeout 60 "$ME5_SPEED" "$kind" "$ME5_REPEATS" 2>&1 | tee -a "$OUT/gpu-check.log" ||
    { log "FAILED: dfdx me5-small $kind (rc $?)"; failed=1; }
  if [ "$have_torch" = 1 ]; then
    log "me5-small step $kind, PyTorch on $GPU_DEVICE"
    TORCH_ME5_DEVICE=$GPU_DEVICE HF_HUB_OFFLINE=1 peak_gpu_mem "$WORK/me5-$kind-torch.peak-mib" timeout 45 \
      python3 benchmarks/torch_me5_speed.py "$me5_dir" "$(nproc)" step "$kind" "$ME5_REPEATS" 2>&1 |
      tee -a "$OUT/gpu-check.log" || { log "FAILED: PyTorch me5-small $kind (rc $?)"; failed=1; }
  else
    log "no torch and transformers on this machine: PyTorch side of me5-small skipped"
  fi
  log "me5-small $kind peak GPU memory (MiB, nvidia-smi): dfdx $(peak "$WORK/me5-$kind-dfdx.peak-mib"), torch $(peak "$WORK/me5-$kind-torch.peak-mib")"
done
rm -rf "$me5_dir"
# Without the cells' models and tokenizers (each file that comes back is at most 16 MiB).
tar -czf "$OUT/details.tar.gz" --exclude='*.safetensors' --exclude=tokenizer.json -C "$WORK" . ||
  log "could not pack the details"
log "details: $(du -h "$OUT/details.tar.gz" | cut -f1)"
log "done $(date -u +%FT%TZ)$([ "$failed" = 0 ] || echo ', with failures (see FAILED above)')"
exit "$failed"
