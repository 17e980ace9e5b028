"""Training steps per second of clirlab's presets re-written in PyTorch (CPU), for the
side-by-side comparison in BENCHMARKS.md. Same batch and recipe as
`cargo run --release --example throughput`: 32 query/passage pairs of 32 tokens, InfoNCE
(temperature 0.05) over in-batch negatives, AdamW (lr 1e-3, weight decay 0.01), gradient
clipping at 5.

The workload `me5_small_shape` is multilingual-E5-small's encoder shape (as
`clirlab::model::build_me5_shape`): a post-LN BERT encoder of 12 layers, 384 wide, 12 heads,
feed-forward 1536 with erf GELU, LayerNorm eps 1e-12, learned positions and token type 0, the
key-padding mask, a 16,384-token table, the same projection head; 32 pairs of 64 tokens. Its attention is
PyTorch's fused `scaled_dot_product_attention` (what Hugging Face's BERT runs by default).

Usage: python3 benchmarks/torch_throughput.py [STEPS] [THREADS] [WORKLOAD...]
Needs: pip install torch (CPU is enough).
"""

import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # name: (kind, vocab, dim, out, heads, ff, layers, max_positions)
    "tiny": ("mean", 4096, 64, 64, 0, 0, 0, 0),
    "small": ("mean", 16384, 128, 128, 0, 0, 0, 0),
    "base": ("mean", 32768, 256, 256, 0, 0, 0, 0),
    "transformer_tiny": ("transformer", 4096, 64, 64, 4, 128, 2, 128),
    "transformer_small": ("transformer", 16384, 128, 128, 4, 256, 2, 128),
}


class Layer(nn.Module):
    """Pre-norm layer: masked multi-head self-attention, then a GELU feed-forward."""

    def __init__(self, dim, heads, ff):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm2 = nn.LayerNorm(dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)

    def forward(self, x, key_bias):
        b, s, d = x.shape
        h = self.norm1(x)
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + key_bias[:, None, None, :]
        mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        x = self.o(mixed) + x
        return self.ff2(F.gelu(self.ff1(self.norm2(x)), approximate="tanh")) + x


class PostLnLayer(nn.Module):
    """BERT's layer: attention, add & norm, erf-GELU feed-forward, add & norm."""

    def __init__(self, dim, heads, ff, eps):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, key_bias):
        b, s, d = x.shape
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias[:, None, None, :])
        x = self.norm1(self.o(mixed.transpose(1, 2).reshape(b, s, d)) + x)
        return self.norm2(self.ff2(F.gelu(self.ff1(x))) + x)


class Me5Shape(nn.Module):
    def __init__(self, vocab=16384, dim=384, heads=12, ff=1536, layers=12, positions=512, eps=1e-12):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(positions, dim)
        self.types = nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(PostLnLayer(dim, heads, ff, eps) for _ in range(layers))
        self.project = nn.Linear(dim, dim)

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        x = self.norm(self.tokens(ids) + self.positions(pos) + self.types(torch.zeros_like(ids)))
        bias = (mask - 1.0) * 1e9
        for layer in self.layers:
            x = layer(x, bias)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return F.normalize(self.project(pooled), dim=-1)


class Encoder(nn.Module):
    def __init__(self, kind, vocab, dim, out, heads, ff, layers, positions):
        super().__init__()
        self.kind = kind
        self.tokens = nn.Embedding(vocab, dim)
        if kind == "transformer":
            self.positions = nn.Embedding(positions, dim)
            self.layers = nn.ModuleList(Layer(dim, heads, ff) for _ in range(layers))
            self.norm = nn.LayerNorm(dim)
        self.project = nn.Linear(dim, out)

    def forward(self, ids, mask):
        x = self.tokens(ids)
        if self.kind == "transformer":
            pos = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
            x = x + self.positions(pos)
            bias = (mask - 1.0) * 1e9
            for layer in self.layers:
                x = layer(x, bias)
            x = self.norm(x)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return F.normalize(self.project(pooled), dim=-1)


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    only = sys.argv[3:]
    # TORCH_THROUGHPUT_DEVICE=cuda runs the same workloads on the GPU (scripts/gpu-check.sh).
    device = torch.device(os.environ.get("TORCH_THROUGHPUT_DEVICE", "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    print("| preset | PyTorch steps/s |")
    print("|---|---|")
    workloads = [(name, lambda spec=spec: Encoder(*spec), spec[1], 32) for name, spec in PRESETS.items()]
    workloads.append(("me5_small_shape", Me5Shape, 16384, 64))
    for name, build, vocab, length in workloads:
        if only and name not in only:
            continue
        model = build().to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        ids = torch.randint(2, vocab, (64, length)).to(device)
        mask = torch.ones(64, length, device=device)
        targets = torch.arange(32, device=device)

        def step():
            emb = model(ids, mask)
            logits = emb[:32] @ emb[32:].T / 0.05
            loss = F.cross_entropy(logits, targets)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()

        for _ in range(1 if name == "me5_small_shape" else 3):
            step()
        sync()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        print(f"| {name} | {steps / (time.perf_counter() - started):.3f} |", flush=True)


if __name__ == "__main__":
    main()
