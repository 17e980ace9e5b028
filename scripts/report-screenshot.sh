#!/usr/bin/env bash
# A PNG of a report's report.html, taken by headless Chromium with the flags of the report
# test (tests/it/report.rs): a fresh profile, no network, no GPU, no sandbox.
# Usage: scripts/report-screenshot.sh RESULTS_DIR OUT.png [WIDTH,HEIGHT]
# (default 1200,1600: the top of the page, the grid and the first tables, as in the README).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RESULTS_DIR OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
page=$(realpath "$1")/report/report.html
out=$(realpath -m "$2")
size=${3:-1200,1600}
if [ ! -f "$page" ]; then
  echo "$0: no report at $page (run \`clirlab report $1\` first)" >&2
  exit 1
fi
browser=$(command -v chromium || true)
if [ -z "$browser" ]; then
  echo "$0: no \`chromium\` on PATH (Debian: apt-get install chromium)" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
  --window-size="$size" --screenshot="$out" "file://$page" 2>/dev/null
[ -s "$out" ] || { echo "$0: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
