"""Tiny random BERT and XLM-R checkpoints made with HuggingFace `transformers` (fixed seeds,
tokenizers trained here on a few sentences; nothing is downloaded), and their pooled
embeddings as `transformers` computes them: the reference for `clirlab encode` on a
researcher's own model folder.

Usage:
  python tiny_encoders.py make OUT_DIR
      writes OUT_DIR/bert (BertModel, WordPiece, no sentence-transformers files: mean pooling,
      no prefix), OUT_DIR/xlmr (XLMRobertaModel, Unigram, sentence-transformers files: CLS
      pooling, prompts "query: " / "passage: "), OUT_DIR/labse (the BERT with LaBSE's
      sentence-transformers modules: CLS pooling, a Dense tanh projection, normalisation), and
      OUT_DIR/texts.tsv.
  python tiny_encoders.py embed FOLDER mean|cls|cls_dense PREFIX FILE.tsv
      prints {"id": ..., "embedding": [...]} per row: the pooled (cls_dense: then the folder's
      2_Dense projection and tanh), L2-normalised embedding of PREFIX + text.
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaModel,
    XLMRobertaTokenizerFast,
)

CORPUS = [
    "In the beginning God created the heaven and the earth.",
    "Hapo mwanzo Mungu aliziumba mbingu na nchi.",
    "Nang pasimula ay nilikha ng Dios ang langit at ang lupa.",
    "Blessed are the meek: for they shall inherit the earth.",
    "Heri wenye upole, maana hao watairithi nchi.",
    "Mapapalad ang maaamo: sapagka't mamanahin nila ang lupa.",
    "All human beings are born free and equal in dignity and rights.",
    "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.",
    "query: passage: the light shines in the darkness",
]

TEXTS = [
    ("t1", "In the beginning God created the heaven and the earth."),
    ("t2", "Mungu aliziumba mbingu na nchi."),
    ("t3", "Mapapalad ang maaamo"),
    ("t4", "All human beings are born free, and the light shines."),
    ("t5", "zzz unseen wordsxyz"),
]

HIDDEN, HEADS, FEED_FORWARD, LAYERS, POSITIONS = 32, 4, 64, 2, 64


def randomise_norms(model):
    """LayerNorm weights and biases away from 1 and 0, so that the test sees them."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)


def bert_tokenizer():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]")


def xlmr_tokenizer():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(
        CORPUS, trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>")
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)


def make(out):
    torch.manual_seed(0)
    shape = dict(hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=FEED_FORWARD,
                 num_hidden_layers=LAYERS, max_position_embeddings=POSITIONS, hidden_act="gelu",
                 initializer_range=0.2)

    tokenizer = bert_tokenizer()
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), type_vocab_size=2, pad_token_id=0, **shape))
    randomise_norms(bert)
    bert.save_pretrained(os.path.join(out, "bert"))
    tokenizer.save_pretrained(os.path.join(out, "bert"))

    torch.manual_seed(1)
    tokenizer = xlmr_tokenizer()
    xlmr = XLMRobertaModel(
        XLMRobertaConfig(vocab_size=len(tokenizer), type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                         eos_token_id=2, layer_norm_eps=1e-5, **shape),
        add_pooling_layer=False,
    )
    randomise_norms(xlmr)
    folder = os.path.join(out, "xlmr")
    xlmr.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(os.path.join(folder, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write_json(os.path.join(folder, "1_Pooling", "config.json"), {
        "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
    })
    write_json(os.path.join(folder, "config_sentence_transformers.json"),
               {"prompts": {"query": "query: ", "passage": "passage: "}})

    # LaBSE's layout: the BERT above with CLS pooling and a square tanh projection after it.
    torch.manual_seed(2)
    labse = os.path.join(out, "labse")
    shutil.copytree(os.path.join(out, "bert"), labse)
    write_json(os.path.join(labse, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write_json(os.path.join(labse, "1_Pooling", "config.json"), {
        "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
    })
    write_json(os.path.join(labse, "2_Dense", "config.json"), {
        "in_features": HIDDEN, "out_features": HIDDEN, "bias": True,
        "activation_function": "torch.nn.modules.activation.Tanh",
    })
    save_file({"linear.weight": torch.randn(HIDDEN, HIDDEN) * 0.3, "linear.bias": torch.randn(HIDDEN) * 0.1},
              os.path.join(labse, "2_Dense", "model.safetensors"))

    with open(os.path.join(out, "texts.tsv"), "w", encoding="utf-8") as f:
        for ident, text in TEXTS:
            f.write(f"{ident}\t{text}\n")


def embed(folder, pooling, prefix, path):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    model.eval()
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    with torch.no_grad():
        for ident, text in rows:
            enc = tokenizer(prefix + text, return_tensors="pt")
            states = model(**enc).last_hidden_state
            if pooling in ("cls", "cls_dense"):
                pooled = states[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (states * mask).sum(1) / mask.sum(1)
            if pooling == "cls_dense":
                dense = load_file(os.path.join(folder, "2_Dense", "model.safetensors"))
                pooled = torch.tanh(torch.nn.functional.linear(pooled, dense["linear.weight"], dense["linear.bias"]))
            emb = torch.nn.functional.normalize(pooled, dim=-1)[0]
            print(json.dumps({"id": ident, "embedding": emb.tolist()}))


def main():
    if sys.argv[1:2] == ["make"] and len(sys.argv) == 3:
        make(sys.argv[2])
    elif sys.argv[1:2] == ["embed"] and len(sys.argv) == 6:
        embed(*sys.argv[2:6])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
