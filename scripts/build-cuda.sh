#!/usr/bin/env bash
# Builds clirlab with `--features cuda` against CUDA from NVIDIA's PyPI packages, so no system
# CUDA toolkit is needed (and no GPU: the kernels are compiled for a chosen architecture).
#
#   scripts/build-cuda.sh [extra cargo build arguments, e.g. --examples]
#       the release binary, for a GPU machine;
#   scripts/build-cuda.sh --ci
#       what .ci/run checks: the tests, examples and binary compiled and linked (debug profile,
#       `cargo test --no-run`), so that a change that breaks the GPU path fails CI.
#
# Settings (environment):
#   CLIRLAB_CUDA_ENV   folder for the toolkit (default: .cuda, git-ignored). dfdx bakes
#                      <env>/root/include into the binary for kernels it compiles at run time
#                      (NVRTC), so a machine that runs the binary needs the toolkit at the same
#                      path (or a link there): build with a path both machines have, e.g.
#                      CLIRLAB_CUDA_ENV=/tmp/clirlab-cuda.
#   CLIRLAB_CUDA_ARCH  compute capability without the dot (default 90: Hopper, H100/H200).
#   CLIRLAB_CUDA_SPEC  pip version range of the CUDA packages (default ">=13.0,<13.1"; CUDA 13.0
#                      runs on drivers from 580 on).
# The binary lands in target/cuda/release/clirlab; run it with LD_LIBRARY_PATH=<env>/root/lib.
set -euo pipefail
cd "$(dirname "$0")/.."
CI_BUILD=0
if [ "${1:-}" = --ci ]; then
  CI_BUILD=1
  shift
fi

ENV_DIR=${CLIRLAB_CUDA_ENV:-$PWD/.cuda}
ARCH=${CLIRLAB_CUDA_ARCH:-90}
SPEC=${CLIRLAB_CUDA_SPEC:->=13.0,<13.1}
PACKAGES=(nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt nvidia-nvvm nvidia-cuda-nvrtc nvidia-cuda-cccl nvidia-cublas)
ROOT=$ENV_DIR/root

fail() {
  echo "build-cuda: $*" >&2
  exit 1
}

missing=()
for tool in cargo gcc python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=("pip (Debian: apt-get install python3-pip)")
[ ${#missing[@]} -eq 0 ] || fail "missing on PATH: ${missing[*]}"
[[ $ARCH =~ ^[0-9]+$ ]] || fail "CLIRLAB_CUDA_ARCH must be digits like 90 (compute capability 9.0), got '$ARCH'"

# 1. The toolkit, installed once per package spec into ENV_DIR/site.
stamp="$ENV_DIR/site/.clirlab-spec"
wanted="${PACKAGES[*]} $SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "build-cuda: installing ${PACKAGES[*]} ($SPEC) into $ENV_DIR/site"
  rm -rf "$ENV_DIR/site"
  requirements=()
  for p in "${PACKAGES[@]}"; do requirements+=("$p$SPEC"); done
  python3 -m pip install --quiet --no-cache-dir --no-deps --root-user-action=ignore --target "$ENV_DIR/site" "${requirements[@]}" ||
    fail "pip could not install ${requirements[*]} (is PyPI reachable?)"
  echo "$wanted" >"$stamp"
fi

# CUDA 13 wheels share one tree, nvidia/cu13: bin/, include/, lib/, nvvm/.
tree=$(find "$ENV_DIR/site/nvidia" -maxdepth 3 -name nvcc -path '*/bin/*' -printf '%h\n' 2>/dev/null | head -n1)
tree=${tree%/bin}
[ -n "$tree" ] || fail "no bin/nvcc under $ENV_DIR/site/nvidia: the nvidia-cuda-nvcc package did not install a compiler"
ln -sfn "$tree" "$ROOT"

absent=()
for f in include/cuda.h include/cuda_fp16.h include/nvrtc.h include/cublas_v2.h bin/nvcc bin/ptxas nvvm/bin/cicc \
  lib/libcublas.so.13 lib/libcublasLt.so.13 lib/libnvrtc.so.13; do
  [ -e "$ROOT/$f" ] || absent+=("$f")
done
[ ${#absent[@]} -eq 0 ] || fail "the packages lack: ${absent[*]} (under $ROOT); check CLIRLAB_CUDA_SPEC"

# The linker looks for unversioned names; the wheels ship only the sonames.
for lib in cublas cublasLt nvrtc; do
  ln -sfn "lib$lib.so.13" "$ROOT/lib/lib$lib.so"
done

# 2. libcuda belongs to the driver, not the toolkit. Linking needs its symbols, so build a stub
# with the soname libcuda.so.1 (as NVIDIA's own stubs do); at run time the driver's library is
# loaded instead. The symbol list comes from the cudarc bindings this build uses.
cudarc_dir=$(cargo metadata --format-version 1 --features cuda 2>/dev/null |
  python3 -c 'import json,sys,os; m=json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"]=="cudarc"))') ||
  fail "cargo metadata could not resolve the cudarc crate (run cargo fetch with network access once)"
bindings="$cudarc_dir/src/driver/sys.rs"
[ -f "$bindings" ] || fail "cudarc driver bindings not found at $bindings"
mkdir -p "$ROOT/lib64/stubs"
# Loaded by mistake in place of a driver, it behaves like a machine without a GPU: every call
# fails with CUDA_ERROR_NO_DEVICE (100) and errors have a readable name.
{
  echo 'int cuGetErrorString(int error, const char **text) { *text = "no CUDA driver (clirlab link stub)"; return 0; }'
  echo 'int cuGetErrorName(int error, const char **text) { *text = "CUDA_ERROR_NO_DEVICE"; return 0; }'
  grep -oE 'pub fn cu[A-Za-z0-9_]+' "$bindings" | sort -u | grep -vxE 'pub fn cuGetError(String|Name)' |
    sed -E 's/pub fn (.*)/int \1(void) { return 100; }/'
} >"$ENV_DIR/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib64/stubs/libcuda.so" "$ENV_DIR/libcuda_stub.c" ||
  fail "gcc could not build the libcuda link stub"

# 3. dfdx's build script asks nvidia-smi for the compute capability; a stand-in answers with
# CLIRLAB_CUDA_ARCH, so the build is the same with or without a GPU on the building machine.
mkdir -p "$ENV_DIR/bin"
cat >"$ENV_DIR/bin/nvidia-smi" <<EOF
#!/bin/sh
# Stand-in for dfdx's build script: the GPU this build targets (compute capability ${ARCH:0:-1}.${ARCH: -1}).
printf 'compute_cap\\n%s\\n' "${ARCH:0:-1}.${ARCH: -1}"
EOF
chmod +x "$ENV_DIR/bin/nvidia-smi"

# 4. The build, in its own target folder so the CPU build's cache stays warm.
export CUDA_ROOT=$ROOT
export PATH="$ENV_DIR/bin:$ROOT/bin:$PATH"
export LD_LIBRARY_PATH="$ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvcc --list-gpu-code | grep -qx "sm_$ARCH" || fail "this nvcc cannot target sm_$ARCH ($(nvcc --list-gpu-code | tr '\n' ' '))"
if [ "$CI_BUILD" = 1 ]; then
  echo "build-cuda: cargo test --no-run --features cuda (sm_$ARCH, CUDA_ROOT=$CUDA_ROOT)"
  # Without debug info: nothing is run or debugged, and it makes the build slower.
  CARGO_PROFILE_DEV_DEBUG=0 cargo test --no-run --features cuda --target-dir target/cuda "$@"
  echo "build-cuda: the tests, examples and binary compile and link with --features cuda"
  exit 0
fi
echo "build-cuda: cargo build --release --features cuda (sm_$ARCH, CUDA_ROOT=$CUDA_ROOT)"
cargo build --release --features cuda --target-dir target/cuda "$@"
echo "build-cuda: built target/cuda/release/clirlab"
echo "build-cuda: run it with LD_LIBRARY_PATH=$ROOT/lib and the toolkit at $ROOT (NVRTC includes)"
