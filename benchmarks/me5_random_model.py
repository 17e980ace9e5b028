"""A model folder of multilingual-E5-small's shape with seeded random weights (BERT's own
initialisation: normal(0, 0.02) matrices and tables, zero biases, LayerNorm 1 and 0), for
timing me5-small's steps where the real weights cannot be had (a GPU machine without network)
on both sides of a comparison: clirlab loads it as a model folder (`benchmarks/programs/me5_speed.rs` with
ME5_SPEED_MODEL=DIR), transformers' BertModel.from_pretrained(DIR) too, so both train the same
weights. Needs numpy only; writes DIR/config.json and DIR/model.safetensors (about 470 MB).

    python benchmarks/me5_random_model.py DIR [SEED]
"""
import json, os, struct, sys
import numpy as np

VOCAB, POSITIONS, TYPES, HIDDEN, LAYERS, HEADS, FFN = 250_037, 512, 2, 384, 12, 12, 1536

if len(sys.argv) not in (2, 3):
    sys.exit("usage: me5_random_model.py DIR [SEED]")
out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) == 3 else 1
rng = np.random.default_rng(seed)
tensors = {}

def normal(name, *shape):
    tensors[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

def linear(name, rows, cols):
    normal(f"{name}.weight", rows, cols)
    tensors[f"{name}.bias"] = np.zeros(rows, np.float32)

def norm(name):
    tensors[f"{name}.weight"] = np.ones(HIDDEN, np.float32)
    tensors[f"{name}.bias"] = np.zeros(HIDDEN, np.float32)

normal("embeddings.word_embeddings.weight", VOCAB, HIDDEN)
normal("embeddings.position_embeddings.weight", POSITIONS, HIDDEN)
normal("embeddings.token_type_embeddings.weight", TYPES, HIDDEN)
norm("embeddings.LayerNorm")
for l in range(LAYERS):
    p = f"encoder.layer.{l}"
    for part in ("query", "key", "value"):
        linear(f"{p}.attention.self.{part}", HIDDEN, HIDDEN)
    linear(f"{p}.attention.output.dense", HIDDEN, HIDDEN)
    norm(f"{p}.attention.output.LayerNorm")
    linear(f"{p}.intermediate.dense", FFN, HIDDEN)
    linear(f"{p}.output.dense", HIDDEN, FFN)
    norm(f"{p}.output.LayerNorm")

os.makedirs(out, exist_ok=True)
config = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "intermediate_size": FFN,
    "hidden_act": "gelu",
    "max_position_embeddings": POSITIONS,
    "type_vocab_size": TYPES,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
# safetensors: an 8-byte little-endian header length, the JSON header, then the raw data.
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, t in tensors.items():
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
    offset += t.nbytes
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for t in tensors.values():
        f.write(np.ascontiguousarray(t, dtype="<f4").tobytes())
print(f"me5-small shape, random weights (seed {seed}): {offset / 1e6:.0f} MB in {out}")
