"""A PyTorch reference fine-tuning of me5-small, run beside clirlab (a side-by-side check, not a test).

Fine-tunes the prepared me5-small (HF BertModel, data/models/me5-small) on Swahili -> English
training pairs: batch 32, temperature 0.05, AdamW (wd 0.01), 10% warm-up then linear decay,
max_len 64, 100 steps. Setting 1 (the default): the top 2 layers at lr 1e-4, the lower layers'
token states computed without gradients. Setting 2: `--frozen 0 --train-embeddings 1 --lr 5e-5`,
every layer and the position/type embeddings and their LayerNorm (not the word table). Evaluates
nDCG@10 of the translation task on the queries of a clirlab run file (the same seeded sample)
against every English test verse.

    python benchmarks/torch_finetune_reference.py DATA_DIR RUN.trec [--dropout 0|1] [--seed N]
        [--frozen N] [--train-embeddings 0|1] [--lr LR]
"""
import argparse, math, random, sys, time
import torch
from transformers import BertModel, PreTrainedTokenizerFast

p = argparse.ArgumentParser()
p.add_argument("data"); p.add_argument("run")
p.add_argument("--dropout", type=int, default=1); p.add_argument("--seed", type=int, default=1)
p.add_argument("--steps", type=int, default=100); p.add_argument("--symmetric", type=int, default=0)
p.add_argument("--frozen", type=int, default=10); p.add_argument("--train-embeddings", type=int, default=0)
p.add_argument("--lr", type=float, default=1e-4)
a = p.parse_args()
torch.manual_seed(a.seed); random.seed(a.seed)
torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
model_dir = f"{a.data}/models/me5-small"
tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json", pad_token="<pad>")
model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager")
FROZEN = a.frozen

def tsv(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n").split("\t") for l in f if l.strip()]

pairs = [(r[1], r[2]) for r in tsv(f"{a.data}/bible-sw/train/cross.sw.tsv")]
docs = tsv(f"{a.data}/bible-sw/corpus/test.tsv")
queries = dict((r[0], r[1]) for r in tsv(f"{a.data}/bible-sw/queries/sw/test.tsv"))
qids = sorted({l.split()[0] for l in open(a.run)})
rel = {}
for l in open(f"{a.data}/bible-sw/qrels/sw/translation.test.qrels"):
    q, _, d, r = l.split()
    if int(r) > 0: rel.setdefault(q, set()).add(d)

def enc(texts):
    b = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    return b["input_ids"], b["attention_mask"]

def extended(mask):
    # Additive key-padding mask, (rows, 1, 1, len).
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min

def first(out):
    return out[0] if isinstance(out, tuple) else out

def lower(ids, mask, grad=False):
    # With trainable embeddings they run with gradients (and in train mode), the frozen
    # layers never do.
    trainable = grad and bool(a.train_embeddings)
    model.embeddings.train(trainable and bool(a.dropout))
    with torch.set_grad_enabled(trainable):
        x = model.embeddings(input_ids=ids)
    with torch.no_grad():
        for layer in model.encoder.layer[:FROZEN]:
            layer.eval()
        ext = extended(mask)
        for layer in model.encoder.layer[:FROZEN]:
            x = first(layer(x, attention_mask=ext))
    return x

def upper(x, mask, ids):
    ext = extended(mask)
    for layer in model.encoder.layer[FROZEN:]:
        x = first(layer(x, attention_mask=ext))
    m = mask.unsqueeze(-1).float()
    e = (x * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(e, dim=-1)

def embed(texts, bs=64):
    out = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    res = [None] * len(texts)
    model.eval()
    with torch.no_grad():
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            ids, mask = enc([texts[i] for i in idx])
            e = upper(lower(ids, mask), mask, ids)
            for k, i in enumerate(idx): res[i] = e[k]
    return torch.stack(res)

for p_ in model.parameters(): p_.requires_grad = False
params = [p_ for l in model.encoder.layer[FROZEN:] for p_ in l.parameters()]
if a.train_embeddings:
    emb = model.embeddings
    params += list(emb.position_embeddings.parameters()) + list(emb.token_type_embeddings.parameters())
    params += list(emb.LayerNorm.parameters())
for p_ in params: p_.requires_grad = True
print(f"trainable parameters: {sum(p_.numel() for p_ in params):,}", flush=True)
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
warm = max(1, a.steps // 10)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (a.steps - s) / (a.steps - warm)))
t0 = time.time()
for step in range(a.steps):
    batch = random.sample(pairs, 32)
    ids, mask = enc(["query: " + q for q, _ in batch] + ["passage: " + d for _, d in batch])
    model.train(bool(a.dropout))
    x = lower(ids, mask, grad=True)
    e = upper(x, mask, ids)
    q, d = e[:32], e[32:]
    logits = q @ d.T / 0.05
    target = torch.arange(32)
    loss = torch.nn.functional.cross_entropy(logits, target)
    if a.symmetric: loss = (loss + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if step % 10 == 0: print(f"step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e}", flush=True)
print(f"train {time.time() - t0:.1f} s", flush=True)
de = embed(["passage: " + r[1] for r in docs])
qe = embed(["query: " + queries[q] for q in qids])
scores = qe @ de.T
top = scores.topk(10, dim=1).indices
total = 0.0
for i, q in enumerate(qids):
    for r, j in enumerate(top[i].tolist()):
        if docs[j][0] in rel.get(q, ()):
            total += 1 / math.log2(r + 2)
            break
print(f"nDCG@10 translation over {len(qids)} queries: {total / len(qids):.4f}  (dropout {a.dropout}, seed {a.seed}, symmetric {a.symmetric})")
