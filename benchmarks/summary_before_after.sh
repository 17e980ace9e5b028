#!/usr/bin/env bash
# The quickstart and bible_quickstart summary.csv of two binaries, compared byte
# for byte. Usage: OLD=path/to/old/clirlab benchmarks/summary_before_after.sh (new: target/release).
# Exits non-zero when a run fails or a summary differs (cmp prints the first difference).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${OLD:?OLD=path to the binary before the change}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for exp in quickstart bible_quickstart; do
  "$old" run "experiments/$exp.yaml" --results "$tmp/old" --quiet
  target/release/clirlab run "experiments/$exp.yaml" --results "$tmp/new" --quiet
  cmp "$tmp/old/$exp/report/summary.csv" "$tmp/new/$exp/report/summary.csv"
  echo "$exp summary.csv identical"
done
