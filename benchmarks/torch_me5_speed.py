"""me5-small in PyTorch (transformers' BertModel from a model folder: data/models/me5-small or a
`clirlab export`), the counterpart of `benchmarks/programs/me5_speed.rs` and `clirlab encode` in
benchmarks/me5_side_by_side.sh. CPU, THREADS threads.

    python benchmarks/torch_me5_speed.py MODEL_DIR THREADS encode TEXTS.tsv
    python benchmarks/torch_me5_speed.py MODEL_DIR THREADS step top2|top2-cached|no-words REPEATS

top2-cached: the top 2 layers from given layer-10 token states, as clirlab's cells train them
(their frozen-state store), timed from the states to the optimizer step.
TORCH_ME5_DEVICE=cuda runs the step on the GPU (default cpu) and also prints the peak memory
PyTorch allocated there.
"""
import os, sys, time
import torch
from transformers import BertModel, PreTrainedTokenizerFast

model_dir, threads, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
device = torch.device(os.environ.get("TORCH_ME5_DEVICE", "cpu"))
torch.set_num_threads(threads)
torch.manual_seed(1)
t0 = time.time()
model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager").to(device)
load = time.time() - t0

def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()

def pool(x, mask):
    m = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((x * m).sum(1) / m.sum(1), dim=-1)

if mode == "encode":
    # As `clirlab encode`: the prefix, texts sorted by length, batches of 32 padded to the longest.
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json", pad_token="<pad>")
    texts = ["passage: " + l.rstrip("\n").split("\t", 1)[1] for l in open(sys.argv[4], encoding="utf-8") if l.strip()]
    t0 = time.time()
    ids = [tok(t, truncation=True, max_length=512)["input_ids"] for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    model.eval()
    with torch.no_grad():
        for s in range(0, len(order), 32):
            rows = [ids[i] for i in order[s:s + 32]]
            n = max(len(r) for r in rows)
            x = torch.tensor([r + [1] * (n - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
            pool(model(input_ids=x, attention_mask=mask).last_hidden_state, mask)
    s = time.time() - t0
    print(f"torch encode {len(texts)} texts: {len(texts) / s:.1f} texts/s (load {load:.1f} s)")
    sys.exit(0)

# A training step as benchmarks/programs/me5_speed.rs times it: 32 pairs x 64 tokens of random ids, InfoNCE
# at temperature 0.05, AdamW (lr 5e-5, wd 0.01), clipping at 1.0.
kind, repeats = sys.argv[4], int(sys.argv[5])
for p in model.parameters():
    p.requires_grad = False
if kind in ("top2", "top2-cached"):
    params = [p for l in model.encoder.layer[10:] for p in l.parameters()]
elif kind == "no-words":
    params = [p for l in model.encoder.layer for p in l.parameters()]
    e = model.embeddings
    params += list(e.position_embeddings.parameters()) + list(e.token_type_embeddings.parameters())
    params += list(e.LayerNorm.parameters())
else:
    sys.exit(f"unknown step kind {kind}: top2 | top2-cached | no-words")
for p in params:
    p.requires_grad = True
opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
g = torch.Generator().manual_seed(1)
ids = torch.randint(5, 250_000, (64, 64), generator=g)
ids[:, 0], ids[:, -1] = 0, 2
ids = ids.to(device)
mask = torch.ones(64, 64, dtype=torch.long, device=device)
model.train(False)  # clirlab has no dropout

if kind == "top2-cached":
    with torch.no_grad():
        cached = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[10]
        # The additive mask BertModel hands its layers (the same code path as a full forward).
        extended = model._create_attention_masks(
            attention_mask=mask, encoder_attention_mask=None, embedding_output=cached,
            encoder_hidden_states=None, cache=None)
        extended = extended[0] if isinstance(extended, tuple) else extended

def encode():
    if kind != "top2-cached":
        return model(input_ids=ids, attention_mask=mask).last_hidden_state
    x = cached
    for layer in model.encoder.layer[10:]:
        x = layer(x, attention_mask=extended)
        x = x[0] if isinstance(x, tuple) else x
    return x

def one():
    e = pool(encode(), mask)
    loss = torch.nn.functional.cross_entropy(e[:32] @ e[32:].T / 0.05, torch.arange(32, device=device))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()

one()
sync()
t0 = time.time()
for _ in range(repeats):
    one()
sync()
print(f"torch train step {kind}, 32 pairs x 64 tokens: {(time.time() - t0) / repeats:.3f} s/step")
if device.type == "cuda":
    print(f"torch peak memory allocated on {device}: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
