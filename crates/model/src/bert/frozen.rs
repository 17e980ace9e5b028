//! The frozen-layer state store: token states of texts after a backbone's frozen lower
//! layers, keyed by the texts' token ids, so that the frozen part of the forward pass runs
//! once per text instead of once per step, per evaluation and per cell.
//!
//! A store is a folder of immutable shard files, one per flush, named by the hash of what they
//! hold; a process reads every shard's index when it opens the store and the states of a text
//! when it needs them, and adds what it computed as a new shard (temp file, then rename).
//! Several processes may share a folder: a text two of them computed is stored twice, with the
//! same values (states do not depend on the batch a text was computed in, see
//! `frozen_states_do_not_depend_on_the_batch` in the tests), and either copy serves. A
//! damaged shard (wrong size or header) is left out with a warning, and its texts recomputed.

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The first bytes of a shard file (the format's version is its last digit).
const MAGIC: &[u8; 8] = b"CLIRST01";
/// Bytes of one index entry: the key, then the token count (u32).
const ENTRY: usize = 32 + 4;
/// New texts kept in memory before they are written as a shard.
const FLUSH_ROWS: usize = 2048;

/// What identifies a text's states within a store: SHA-256 of its token ids.
pub type Key = [u8; 32];

/// The key of a text tokenized to `ids` (unpadded, prefix included).
pub fn key(ids: &[usize]) -> Key {
    let mut hash = Sha256::new();
    for id in ids {
        hash.update((*id as u32).to_le_bytes());
    }
    hash.finalize().into()
}

/// Where a stored text's states are: shard, byte offset, tokens.
#[derive(Debug, Clone, Copy)]
struct Location {
    shard: usize,
    offset: u64,
    tokens: usize,
}

/// A store of token states (`dim` values per token) in one folder.
pub struct StateStore {
    dir: PathBuf,
    dim: usize,
    shards: Vec<File>,
    index: HashMap<Key, Location>,
    /// Computed here and not yet written: key → (tokens, states).
    pending: HashMap<Key, (usize, Vec<f32>)>,
}

impl StateStore {
    /// Opens (creating it if needed) the store in `dir`, reading every shard's index.
    pub fn open(dir: &Path, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the state store {}", dir.display()))?;
        let mut store = Self {
            dir: dir.to_path_buf(),
            dim,
            shards: Vec::new(),
            index: HashMap::new(),
            pending: HashMap::new(),
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the state store {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "states"))
            .collect();
        names.sort();
        for path in names {
            if let Err(e) = store.add_shard(&path) {
                tracing::warn!(shard = %path.display(), "left out a damaged state shard: {e:#}");
            }
        }
        Ok(store)
    }

    fn add_shard(&mut self, path: &Path) -> Result<()> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut head = [0u8; 16];
        file.read_exact_at(&mut head, 0).context("no header")?;
        ensure!(&head[..8] == MAGIC, "not a state shard");
        let dim = u32::from_le_bytes(head[8..12].try_into()?) as usize;
        ensure!(
            dim == self.dim,
            "states of dimension {dim}, the store holds {}",
            self.dim
        );
        let count = u32::from_le_bytes(head[12..16].try_into()?) as usize;
        let mut entries = vec![0u8; count * ENTRY];
        file.read_exact_at(&mut entries, 16).context("a short index")?;
        let shard = self.shards.len();
        let mut offset = (16 + entries.len()) as u64;
        let mut found = Vec::with_capacity(count);
        for entry in entries.chunks(ENTRY) {
            let key: Key = entry[..32].try_into()?;
            let tokens = u32::from_le_bytes(entry[32..].try_into()?) as usize;
            found.push((key, Location { shard, offset, tokens }));
            offset += (tokens * dim * 4) as u64;
        }
        ensure!(offset == size, "{size} bytes where the index describes {offset}");
        for (key, location) in found {
            self.index.entry(key).or_insert(location);
        }
        self.shards.push(file);
        Ok(())
    }

    /// The folder of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Texts the store holds (written or not).
    pub fn len(&self) -> usize {
        self.index.len() + self.pending.len()
    }

    /// Whether the store holds no text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the states of `key` are stored.
    pub fn contains(&self, key: &Key) -> bool {
        self.pending.contains_key(key) || self.index.contains_key(key)
    }

    /// Copies the states of `key` (`tokens × dim` values) into `out`; `false` if not stored.
    pub fn read_into(&self, key: &Key, tokens: usize, out: &mut [f32]) -> Result<bool> {
        let want = tokens * self.dim;
        ensure!(out.len() == want, "a state buffer of {} values for {want}", out.len());
        if let Some((n, states)) = self.pending.get(key) {
            ensure!(*n == tokens, "stored states of {n} tokens, asked for {tokens}");
            out.copy_from_slice(states);
            return Ok(true);
        }
        let Some(at) = self.index.get(key) else {
            return Ok(false);
        };
        ensure!(
            at.tokens == tokens,
            "stored states of {} tokens, asked for {tokens}",
            at.tokens
        );
        let mut bytes = vec![0u8; want * 4];
        self.shards[at.shard]
            .read_exact_at(&mut bytes, at.offset)
            .with_context(|| format!("reading states from the store {}", self.dir.display()))?;
        for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(true)
    }

    /// Adds the states of a text (`tokens × dim` values); written with the next flush, which
    /// happens by itself once enough texts are waiting.
    pub fn insert(&mut self, key: Key, tokens: usize, states: Vec<f32>) -> Result<()> {
        ensure!(states.len() == tokens * self.dim, "states of the wrong size");
        if !self.contains(&key) {
            self.pending.insert(key, (tokens, states));
        }
        if self.pending.len() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the waiting texts as one shard, and reads it back as part of the store.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<Key> = self.pending.keys().copied().collect();
        keys.sort();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.dim as u32).to_le_bytes());
        bytes.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        let mut name = Sha256::new();
        for key in &keys {
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(&(self.pending[key].0 as u32).to_le_bytes());
            name.update(key);
        }
        for key in &keys {
            for v in &self.pending[key].1 {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        let digest = format!("{:x}", name.finalize());
        let path = self.dir.join(format!("shard-{}.states", &digest[..16]));
        clirlab_util::fs::write_atomic(&path, &bytes)?;
        self.add_shard(&path)
            .with_context(|| format!("reading back {}", path.display()))?;
        self.pending.clear();
        Ok(())
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            // A cache: what is lost is recomputed next time, but say so.
            tracing::warn!(store = %self.dir.display(), "could not write frozen-layer states: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_survive_a_reopen_and_damage_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let a = key(&[0, 5, 9, 2]);
        let b = key(&[0, 7, 2]);
        {
            let mut store = StateStore::open(dir.path(), 2).unwrap();
            store.insert(a, 4, (0..8).map(|v| v as f32).collect()).unwrap();
            let mut out = vec![0.0; 8];
            assert!(store.read_into(&a, 4, &mut out).unwrap(), "pending states are served");
            assert!(!store.read_into(&b, 3, &mut [0.0; 6]).unwrap());
        }
        let mut store = StateStore::open(dir.path(), 2).unwrap();
        assert_eq!(store.len(), 1);
        let mut out = vec![0.0; 8];
        assert!(store.read_into(&a, 4, &mut out).unwrap());
        assert_eq!(out, (0..8).map(|v| v as f32).collect::<Vec<_>>());
        assert!(
            store.read_into(&a, 3, &mut [0.0; 6]).is_err(),
            "a token count that disagrees"
        );
        store.insert(b, 3, vec![1.5; 6]).unwrap();
        store.flush().unwrap();
        drop(store);

        // Truncate one shard: its texts are gone, the other shard still serves.
        let mut shards: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        shards.sort();
        assert_eq!(shards.len(), 2);
        let holding_b = shards
            .iter()
            .find(|p| std::fs::metadata(p).unwrap().len() == 16 + 36 + 3 * 2 * 4)
            .unwrap();
        let len = std::fs::metadata(holding_b).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(holding_b)
            .unwrap()
            .set_len(len - 4)
            .unwrap();
        let store = StateStore::open(dir.path(), 2).unwrap();
        assert!(store.contains(&a) && !store.contains(&b));
    }

    #[test]
    fn a_store_of_another_dimension_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        StateStore::open(dir.path(), 3)
            .unwrap()
            .insert(key(&[1]), 1, vec![0.0; 3])
            .unwrap();
        assert!(StateStore::open(dir.path(), 4).unwrap().is_empty());
    }
}
