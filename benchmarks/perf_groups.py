"""Groups a `perf report` flat profile (self time per symbol) into the cost classes of
BENCHMARKS.md. Usage: python3 benchmarks/perf_groups.py perf.data [TOP]"""

import re
import subprocess
import sys

GROUPS = [
    ("gemm (matrix products)", r"gemm"),
    ("fused attention (ours)", r"kernels::attention"),
    ("fused LayerNorm (ours)", r"kernels::layer_norm"),
    ("fused GELU (ours)", r"kernels::gelu"),
    ("libm exp/tanh/erf (softmax, GELU)", r"expm1f|tanhf|erff|__expf|__exp\b|expf"),
    ("Adam update", r"adam"),
    ("dfdx reductions (sum/max: softmax, LayerNorm, bias grads)", r"Reduce|reduce|sum_to|max_to|Sum|Max"),
    ("dfdx elementwise binary (broadcast add/mul/sub/div)", r"BinaryKernel|binary"),
    ("dfdx elementwise unary (exp, scale, gelu, sqrt)", r"UnaryKernel|unary"),
    ("permute/reshape/copies", r"memmove|memcpy|Reshape|reshape|permute|Permute|to_vec|clone|Clone|as_vec|copy"),
    ("allocation, zeroing, page faults", r"memset|malloc|free|page|alloc|brk|mmap|munmap|clear_page|_int_|fault|folio|lru|mm_"),
    ("threads (rayon, futex, scheduling)", r"rayon|futex|Condvar|Mutex|sched|task_switch|wake|spin|crossbeam|LocalKey|yield"),
]


def main():
    data = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    out = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "-g", "none",
         "--percent-limit", "0", "--stdio"],
        capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(.*\S)", line)
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    totals = {}
    for pct, sym in rows:
        group = next((g for g, pat in GROUPS if re.search(pat, sym)), "other")
        totals[group] = totals.get(group, 0.0) + pct
    print("| group | % of samples |")
    print("|---|---|")
    for g, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {pct:.1f} |")
    print()
    print("| top symbols | % |")
    print("|---|---|")
    for pct, sym in sorted(rows, reverse=True)[:top]:
        short = re.sub(r"<impl ([^>]*?) for [^>]*>", r"\1", sym)[:110]
        print(f"| `{short}` | {pct:.1f} |")


if __name__ == "__main__":
    main()
