//! Subword tokenizer (WordPiece, `tokenizers` crate) trained on a cell's training text, and
//! conversion of texts into padded id/mask batches for the encoder.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::Tokenizer as HfTokenizer;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::{Lowercase, NFKC, Sequence};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

/// Which side of retrieval a text is on: E5 models are trained with a prefix per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The searcher's query.
    Query,
    /// A document passage being searched.
    Passage,
}

impl Side {
    /// The text prefix E5 models expect for this side.
    pub fn prefix(self) -> &'static str {
        match self {
            Side::Query => "query: ",
            Side::Passage => "passage: ",
        }
    }
}

/// A pretrained model's `tokenizer.json` with padding and truncation off (lengths are the
/// caller's business: batches are padded to their longest text), checked against the `vocab`
/// rows of the model's word-embedding table.
pub fn load_pretrained(path: &Path, vocab: usize) -> Result<HfTokenizer> {
    let mut tokenizer = HfTokenizer::from_file(path)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("loading tokenizer {}", path.display()))?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(anyhow::Error::msg)?;
    let size = tokenizer
        .get_vocab(true)
        .values()
        .map(|&id| id as usize + 1)
        .max()
        .unwrap_or(0);
    anyhow::ensure!(
        size <= vocab,
        "{}: token ids reach {}, but the model's word-embedding table has {vocab} rows (config.json `vocab_size`)",
        path.display(),
        size - 1
    );
    Ok(tokenizer)
}

/// The padding token (mask 0).
pub const PAD: &str = "[PAD]";
/// The token of words the vocabulary cannot spell.
pub const UNK: &str = "[UNK]";

/// A trained tokenizer plus the padding id, or a pretrained backbone's own tokenizer (its
/// special tokens added, and the side prefixes the experiment's model asks for).
pub struct Tokenizer {
    tokenizer: HfTokenizer,
    pad_id: u32,
    /// A backbone's tokenizer: `<s> … </s>` added, truncation keeps the last token.
    backbone: bool,
    /// The prefixes of the query and the passage side.
    prefixes: [String; 2],
}

/// Token ids of several texts, padded to the longest, row-major, with a 0/1 mask.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids, `rows × len`, row-major; padding is the [`PAD`] id.
    pub ids: Vec<usize>,
    /// 1 for a token, 0 for padding, like `ids`.
    pub mask: Vec<f32>,
    /// Texts in the batch.
    pub rows: usize,
    /// Tokens per row (the longest text's, after truncation).
    pub len: usize,
}

impl Tokenizer {
    /// Version of the vocabulary selection; part of the key of stored tokenizers.
    pub const VERSION: u32 = 1;

    /// Builds a WordPiece tokenizer whose vocabulary (at most `vocab_size` entries) is chosen
    /// from the training text by [`select_vocabulary`]. Normalisation is NFKC + lower-casing
    /// only: accent stripping would delete the vowel signs of Indic scripts.
    pub fn train<'a>(texts: impl Iterator<Item = &'a str>, vocab_size: usize) -> Result<Self> {
        let normalizer = Sequence::new(vec![NFKC.into(), Lowercase.into()]);
        let mut words: HashMap<String, u64> = HashMap::new();
        for text in texts {
            let mut pre = PreTokenizedString::from(text);
            pre.normalize(|s| normalizer.normalize(s)).map_err(anyhow::Error::msg)?;
            BertPreTokenizer.pre_tokenize(&mut pre).map_err(anyhow::Error::msg)?;
            for (word, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Char) {
                *words.entry(word.to_string()).or_default() += 1;
            }
        }
        let vocab = select_vocabulary(&words, vocab_size)?;
        let model = WordPiece::builder()
            .vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>())
            .unk_token(UNK.into())
            .build()
            .map_err(anyhow::Error::msg)?;
        let mut tokenizer = HfTokenizer::new(model);
        tokenizer
            .with_normalizer(Some(normalizer))
            .map_err(anyhow::Error::msg)?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        tokenizer.with_decoder(Some(WordPieceDecoder::default()));
        tokenizer
            .add_special_tokens([AddedToken::from(PAD, true), AddedToken::from(UNK, true)])
            .map_err(anyhow::Error::msg)?;
        Self::from_tokenizer(tokenizer)
    }

    /// Reads a tokenizer saved by [`Tokenizer::save`] (`tokenizer.json`).
    pub fn load(path: &Path) -> Result<Self> {
        let tokenizer = HfTokenizer::from_file(path)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("loading tokenizer {}", path.display()))?;
        Self::from_tokenizer(tokenizer)
    }

    fn from_tokenizer(tokenizer: HfTokenizer) -> Result<Self> {
        let pad_id = tokenizer.token_to_id(PAD).context("tokenizer has no [PAD] token")?;
        Ok(Self {
            tokenizer,
            pad_id,
            backbone: false,
            prefixes: Default::default(),
        })
    }

    /// A pretrained backbone's `tokenizer.json`, which adds its special tokens, with the
    /// prefixes put before queries and passages (in that order), the model's padding id and
    /// the rows of its word-embedding table (every token id must have one).
    pub fn load_backbone(path: &Path, prefixes: [String; 2], pad_id: u32, vocab: usize) -> Result<Self> {
        let tokenizer = load_pretrained(path, vocab)?;
        Ok(Self {
            tokenizer,
            pad_id,
            backbone: true,
            prefixes,
        })
    }

    /// The prefix put before texts of `side`.
    pub fn prefix(&self, side: Side) -> &str {
        match side {
            Side::Query => &self.prefixes[0],
            Side::Passage => &self.prefixes[1],
        }
    }

    /// Whether this is a pretrained backbone's tokenizer.
    pub fn is_backbone(&self) -> bool {
        self.backbone
    }

    /// The token ids of one text of `side` (prefixed), at most `max_len` of them (at least one).
    /// A backbone's text keeps `<s>`, its first `max_len − 2` tokens and `</s>`.
    pub fn ids(&self, text: &str, side: Side, max_len: usize) -> Result<Vec<u32>> {
        let prefixed;
        let text = match self.prefix(side) {
            "" => text,
            p => {
                prefixed = format!("{p}{text}");
                prefixed.as_str()
            }
        };
        let encoding = self.tokenizer.encode(text, self.backbone).map_err(anyhow::Error::msg)?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.is_empty() {
            ids.push(self.tokenizer.token_to_id(UNK).unwrap_or(self.pad_id));
        }
        let max_len = max_len.max(1);
        if ids.len() > max_len {
            if self.backbone && max_len >= 2 {
                let last = ids[ids.len() - 1];
                ids.truncate(max_len - 1);
                ids.push(last);
            } else {
                ids.truncate(max_len);
            }
        }
        Ok(ids)
    }

    /// Pads token id rows to the longest, as a batch with its mask.
    pub fn pad(&self, rows: &[&[u32]]) -> TokenBatch {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![self.pad_id as usize; rows.len() * len];
        let mut mask = vec![0.0f32; rows.len() * len];
        for (row, tokens) in rows.iter().enumerate() {
            for (pos, id) in tokens.iter().enumerate() {
                ids[row * len + pos] = *id as usize;
                mask[row * len + pos] = 1.0;
            }
        }
        TokenBatch {
            ids,
            mask,
            rows: rows.len(),
            len,
        }
    }

    /// Tokenizes texts, each of its side (prefixed as the model wants), padded to the longest.
    pub fn batch_sides(&self, texts: &[(&str, Side)], max_len: usize) -> Result<TokenBatch> {
        if !self.backbone && self.prefixes.iter().all(String::is_empty) {
            let plain: Vec<&str> = texts.iter().map(|(t, _)| *t).collect();
            return self.batch(&plain, max_len);
        }
        let rows = texts
            .iter()
            .map(|(t, side)| self.ids(t, *side, max_len))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        Ok(self.pad(&refs))
    }

    /// Tokenizes texts all of one side.
    pub fn batch_side(&self, texts: &[&str], side: Side, max_len: usize) -> Result<TokenBatch> {
        let sided: Vec<(&str, Side)> = texts.iter().map(|t| (*t, side)).collect();
        self.batch_sides(&sided, max_len)
    }

    /// Writes the tokenizer as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(clirlab_util::fs::write_atomic(path, self.to_json()?.as_bytes())?)
    }

    /// The tokenizer in the `tokenizers` crate's JSON form (what `tokenizer.json` holds).
    pub fn to_json(&self) -> Result<String> {
        self.tokenizer.to_string(false).map_err(anyhow::Error::msg)
    }

    /// Tokens in the vocabulary, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Tokenizes `texts` as a preset's tokenizer does (no prefixes, no special tokens),
    /// truncating each to `max_len` tokens (at least one token per text, so
    /// an empty text still has a defined mean).
    pub fn batch(&self, texts: &[&str], max_len: usize) -> Result<TokenBatch> {
        let encodings = texts
            .iter()
            .map(|t| self.tokenizer.encode(*t, false).map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()?;
        let len = encodings
            .iter()
            .map(|e| e.get_ids().len().clamp(1, max_len))
            .max()
            .unwrap_or(1);
        let mut ids = vec![self.pad_id as usize; texts.len() * len];
        let mut mask = vec![0.0f32; texts.len() * len];
        for (row, enc) in encodings.iter().enumerate() {
            let tokens = enc.get_ids();
            let unk = self.tokenizer.token_to_id(UNK).unwrap_or(self.pad_id);
            let tokens: &[u32] = if tokens.is_empty() {
                std::slice::from_ref(&unk)
            } else {
                tokens
            };
            for (pos, id) in tokens.iter().take(len).enumerate() {
                ids[row * len + pos] = *id as usize;
                mask[row * len + pos] = 1.0;
            }
        }
        Ok(TokenBatch {
            ids,
            mask,
            rows: texts.len(),
            len,
        })
    }
}

/// Longest word-initial piece (whole words included) and longest word-internal `##` piece.
const MAX_PREFIX_CHARS: usize = 12;
const MAX_INNER_CHARS: usize = 8;

/// Chooses a WordPiece vocabulary: the special tokens, every character seen (word-initial
/// and `##` forms, most frequent first), then the substrings that save the most tokens
/// (count × (length − 1)): word-initial pieces up to whole words and word-internal `##` pieces.
/// Ties are broken by the piece itself, so the same text always gives the same vocabulary;
/// the `tokenizers` crate's own trainers break ties in hash order and are not reproducible.
pub fn select_vocabulary(words: &HashMap<String, u64>, vocab_size: usize) -> Result<HashMap<String, u32>> {
    anyhow::ensure!(
        vocab_size >= 16,
        "vocabulary size must be at least 16, found {vocab_size}"
    );
    let mut chars: HashMap<String, u64> = HashMap::new();
    let mut pieces: HashMap<String, u64> = HashMap::new();
    for (word, count) in words {
        let cs: Vec<char> = word.chars().collect();
        for (i, c) in cs.iter().enumerate() {
            let key = if i == 0 { c.to_string() } else { format!("##{c}") };
            *chars.entry(key).or_default() += count;
        }
        for end in 2..=cs.len().min(MAX_PREFIX_CHARS) {
            let piece: String = cs[..end].iter().collect();
            *pieces.entry(piece).or_default() += count * (end as u64 - 1);
        }
        for start in 1..cs.len() {
            for end in start + 2..=cs.len().min(start + MAX_INNER_CHARS) {
                let piece: String = std::iter::once("##".to_string())
                    .chain(cs[start..end].iter().map(char::to_string))
                    .collect();
                *pieces.entry(piece).or_default() += count * (end - start) as u64;
            }
        }
    }
    let ranked = |m: HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter().map(|(piece, _)| piece)
    };
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for piece in [PAD.to_string(), UNK.to_string()]
        .into_iter()
        .chain(ranked(chars))
        .chain(ranked(pieces))
    {
        if vocab.len() == vocab_size {
            break;
        }
        let id = vocab.len() as u32;
        vocab.entry(piece).or_insert(id);
    }
    Ok(vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        (0..200)
            .map(|i| format!("alpha beta{} gamma delta{} epsilon zeta", i % 7, i % 11))
            .collect()
    }

    #[test]
    fn training_is_deterministic_and_round_trips() {
        let texts = corpus();
        let a = Tokenizer::train(texts.iter().map(String::as_str), 200).unwrap();
        let b = Tokenizer::train(texts.iter().map(String::as_str), 200).unwrap();
        assert_eq!(
            a.tokenizer.to_string(false).unwrap(),
            b.tokenizer.to_string(false).unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        a.save(&path).unwrap();
        let c = Tokenizer::load(&path).unwrap();
        let batch = ["alpha beta3 gamma", "zeta"];
        assert_eq!(a.batch(&batch, 16).unwrap(), c.batch(&batch, 16).unwrap());
        assert!(a.vocab_size() <= 200);
    }

    #[test]
    fn batches_are_padded_masked_and_truncated() {
        let texts = corpus();
        let enc = Tokenizer::train(texts.iter().map(String::as_str), 200).unwrap();
        let b = enc
            .batch(&["alpha beta1 gamma delta2 epsilon zeta", "zeta", ""], 4)
            .unwrap();
        assert_eq!((b.rows, b.len), (3, 4));
        assert_eq!(&b.mask[0..4], &[1.0; 4]);
        assert_eq!(&b.mask[4..8], &[1.0, 0.0, 0.0, 0.0]);
        // An empty text becomes a single [UNK] so that its mean embedding is defined.
        assert_eq!(&b.mask[8..12], &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(b.ids[5], enc.pad_id as usize);
    }
}
