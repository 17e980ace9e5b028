"""PyTorch side of examples/me5_grad_check.rs: the same 32 pairs, the same steps (no dropout).

    python benchmarks/torch_grad_check.py DATA_DIR PAIRS.tsv [TOP_LAYERS] [STEPS]
"""
import sys
import torch
from transformers import BertModel, PreTrainedTokenizerFast

data, pairs_file = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 2
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
torch.set_num_threads(2)
model_dir = f"{data}/models/me5-small"
tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json", pad_token="<pad>")
model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager")
model.eval()
rows = [l.rstrip("\n").split("\t") for l in open(pairs_file, encoding="utf-8") if l.strip()][:32]
texts = ["query: " + r[1] for r in rows] + ["passage: " + r[2] for r in rows]
b = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
for p in model.parameters():
    p.requires_grad = False
layers = model.encoder.layer[len(model.encoder.layer) - top:]
params = [p for l in layers for p in l.parameters()]
for p in params:
    p.requires_grad = True
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
n = len(rows)
for step in range(steps):
    x = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1).float()
    e = torch.nn.functional.normalize((x * m).sum(1) / m.sum(1), dim=-1)
    loss = torch.nn.functional.cross_entropy(e[:n] @ e[n:].T / 0.05, torch.arange(n))
    opt.zero_grad()
    loss.backward()
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params))
    print(f"step {step} loss {loss.item():.6f} grad_norm {norm.item():.6f}")
    opt.step()
