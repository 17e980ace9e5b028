"""GFLOP/s of torch.matmul on the shapes of benchmarks/programs/gemm_shapes.rs (me5-small's step), with
the same thread count: python3 benchmarks/gemm_shapes.py [THREADS]."""

import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
SHAPES = [
    ("x·Wᵀ", 4096, 384, 384, False, True),
    ("x·Wᵀ", 4096, 1536, 384, False, True),
    ("x·Wᵀ", 4096, 384, 1536, False, True),
    ("dz·W", 4096, 384, 1536, False, False),
    ("dzᵀ·x", 384, 384, 4096, True, False),
    ("dzᵀ·x", 1536, 384, 4096, True, False),
    ("dzᵀ·x", 384, 1536, 4096, True, False),
]
print(f"| product (m × n × k) | torch {torch.__version__} GFLOP/s |")
print("|---|---|")
for what, m, n, k, lhs_t, rhs_t in SHAPES:
    a = torch.randn(k, m).t() if lhs_t else torch.randn(m, k)
    b = torch.randn(n, k).t() if rhs_t else torch.randn(k, n)
    a @ b
    reps = 10
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    seconds = (time.perf_counter() - started) / reps
    print(f"| {what} {m} × {n} × {k} | {2 * m * n * k / seconds / 1e9:.1f} |")
