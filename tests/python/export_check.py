"""Embeds texts with HuggingFace `transformers` from a folder written by `clirlab export`, the
way multilingual-E5 is used (mean over the attention mask, L2 normalisation), and prints one
JSON line per text: {"id": ..., "embedding": [...]}. Used by the export test, which compares
these with `clirlab encode`.

Usage: python export_check.py EXPORT_DIR query|passage FILE.tsv
"""

import json
import sys

import torch
from transformers import AutoModel, AutoTokenizer


def main():
    folder, side, path = sys.argv[1], sys.argv[2], sys.argv[3]
    prefix = {"query": "query: ", "passage": "passage: "}[side]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    model.eval()
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                ident, text = line.split("\t", 1)
                rows.append((ident, prefix + text))
    with torch.no_grad():
        for ident, text in rows:
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=512)
            out = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (out * mask).sum(1) / mask.sum(1)
            emb = torch.nn.functional.normalize(pooled, dim=-1)[0]
            print(json.dumps({"id": ident, "embedding": emb.tolist()}))


if __name__ == "__main__":
    main()
