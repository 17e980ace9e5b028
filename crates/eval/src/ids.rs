//! Document and topic ids: compact storage, hashing, and an index that interns them.

use std::ops::Range;

/// Appends the id `buf[start..end]` to `bytes`. Short ids are copied as a fixed 16 bytes and
/// trimmed, which compiles to two moves instead of a call into memcpy.
#[inline]
pub(crate) fn append_id(bytes: &mut Vec<u8>, buf: &[u8], start: usize, end: usize) {
    let len = bytes.len();
    match buf.get(start..start + 16) {
        Some(wide) if end - start <= 16 => {
            bytes.extend_from_slice(wide);
            bytes.truncate(len + end - start);
        }
        _ => bytes.extend_from_slice(&buf[start..end]),
    }
}

/// Byte equality for short ids, without a call into libc's memcmp.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut wa = a.chunks_exact(8);
    let mut wb = b.chunks_exact(8);
    for (x, y) in (&mut wa).zip(&mut wb) {
        if x != y {
            return false;
        }
    }
    wa.remainder().iter().zip(wb.remainder()).all(|(x, y)| x == y)
}

/// Storage for id bytes: blocks (one per parse task, the last one also taking inserted ids),
/// addressed by packed [`Span`]s.
#[derive(Clone, Default)]
pub(crate) struct Arena {
    blocks: Vec<Vec<u8>>,
}

/// Where an id lies in an [`Arena`]: block (16 bits), offset (32 bits), length (16 bits).
#[derive(Clone, Copy)]
pub(crate) struct Span(u64);

/// Longest id a [`Span`] can address.
pub(crate) const MAX_ID_LEN: usize = u16::MAX as usize;

impl Span {
    /// The span of `len` bytes at `off` in block `block`; ids longer than [`MAX_ID_LEN`] are
    /// rejected by the parsers before this.
    pub fn new(block: usize, off: usize, len: usize) -> Span {
        debug_assert!(block <= u16::MAX as usize && off <= u32::MAX as usize && len <= MAX_ID_LEN);
        Span(((block as u64) << 48) | ((off as u64) << 16) | len as u64)
    }

    /// Byte range within the span's block.
    pub fn range(self) -> Range<usize> {
        let off = ((self.0 >> 16) & 0xffff_ffff) as usize;
        off..off + (self.0 & 0xffff) as usize
    }
}

impl Arena {
    pub fn from_blocks(blocks: Vec<Vec<u8>>) -> Arena {
        Arena { blocks }
    }

    pub fn get(&self, span: Span) -> &[u8] {
        &self.blocks[(span.0 >> 48) as usize][span.range()]
    }

    /// Stores `bytes` (at most [`MAX_ID_LEN`] long) and returns where.
    pub fn push(&mut self, bytes: &[u8]) -> Span {
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.len() + bytes.len() <= u32::MAX as usize);
        if !fits {
            self.blocks.push(Vec::new());
        }
        let block = self.blocks.len() - 1;
        let data = &mut self.blocks[block];
        let off = data.len();
        data.extend_from_slice(bytes);
        Span::new(block, off, bytes.len())
    }
}

/// 64-bit hash of an id. Only used to spread keys; every lookup confirms
/// equality on the bytes themselves, so collisions cost time, never correctness.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h ^ v).wrapping_mul(K).rotate_left(31);
    }
    // The last len % 8 bytes, as the low bytes of a word; without a call into memcpy.
    let rest = words.remainder().len();
    let tail = match bytes.len() {
        0 => 0,
        n if n >= 8 => {
            let w = &bytes[n - 8..];
            let last = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            last.checked_shr(8 * (8 - rest) as u32).unwrap_or(0)
        }
        _ => bytes.iter().rev().fold(0, |t, &b| (t << 8) | u64::from(b)),
    };
    h = (h ^ tail).wrapping_mul(K);
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    h ^ (h >> 29)
}

/// The topics of one parsed piece, in order of first appearance: their ids stored once in
/// `bytes`, looked up by hash. Judgments and run lines usually come grouped by topic, so the
/// current group is checked first; any other topic is found (or added) through the index.
#[derive(Default)]
pub(crate) struct TopicGroups {
    /// The topic ids of every group, back to back.
    pub bytes: Vec<u8>,
    index: IdIndex,
    current: Option<usize>,
}

/// Where [`TopicGroups::lookup`] found a line's topic.
pub(crate) enum TopicGroup {
    /// The group of the line before.
    Current(usize),
    /// An earlier group (the piece's lines interleave topics).
    Earlier(usize),
    /// A topic not seen before: the caller pushes its group, with this range of `bytes`.
    New(Range<usize>),
}

impl TopicGroups {
    /// The group of `topic` among `count` groups whose topic ranges `topic_of` gives; a new
    /// topic becomes group `count`.
    pub fn lookup(&mut self, topic: &[u8], count: usize, topic_of: impl Fn(usize) -> Range<usize>) -> TopicGroup {
        if let Some(g) = self.current.filter(|&g| same_bytes(&self.bytes[topic_of(g)], topic)) {
            return TopicGroup::Current(g);
        }
        let bytes = &self.bytes;
        let same = |g: u32| same_bytes(&bytes[topic_of(g as usize)], topic);
        match self.index.insert(hash_bytes(topic), 0, count as u32, same) {
            Some(g) => {
                self.current = Some(g as usize);
                TopicGroup::Earlier(g as usize)
            }
            None => {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(topic);
                self.current = Some(count);
                TopicGroup::New(start..self.bytes.len())
            }
        }
    }

    /// The group of the line before, if any.
    pub fn current(&self) -> Option<usize> {
        self.current
    }
}

/// Open-addressing hash index from ids to positions (`u32`) in some table kept by the caller.
/// Keys are (hash of the id, namespace); a slot holds them with the position, and equality is
/// always confirmed on the ids themselves through a `same(position)` callback, so hash
/// collisions cost time, never correctness. Used to intern topic ids and to reject duplicate
/// documents (namespace = topic).
#[derive(Clone, Default)]
pub(crate) struct IdIndex {
    slots: Vec<Slot>,
    len: usize,
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    namespace: u32,
    position: u32,
}

const EMPTY: Slot = Slot {
    hash: 0,
    namespace: u32::MAX,
    position: 0,
};

impl IdIndex {
    /// Empties the index, sized for `expected` entries.
    pub fn reset(&mut self, expected: usize) {
        let capacity = (expected + expected / 4 + 1).next_power_of_two().max(8);
        self.slots.clear();
        self.slots.resize(capacity, EMPTY);
        self.len = 0;
    }

    #[inline]
    fn home(&self, hash: u64, namespace: u32) -> usize {
        (hash ^ u64::from(namespace).wrapping_mul(0x9e37_79b9_7f4a_7c15)) as usize & (self.slots.len() - 1)
    }

    #[cold]
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![EMPTY; (old.len() * 2).max(8)];
        for slot in old.into_iter().filter(|s| s.namespace != u32::MAX) {
            let mut i = self.home(slot.hash, slot.namespace);
            while self.slots[i].namespace != u32::MAX {
                i = (i + 1) & (self.slots.len() - 1);
            }
            self.slots[i] = slot;
        }
    }

    /// Position of the id with `hash` in `namespace` for which `same` holds.
    pub fn find(&self, hash: u64, namespace: u32, same: impl Fn(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(hash, namespace);
        loop {
            let slot = self.slots[i];
            if slot.namespace == u32::MAX {
                return None;
            }
            if slot.hash == hash && slot.namespace == namespace && same(slot.position) {
                return Some(slot.position);
            }
            i = (i + 1) & (self.slots.len() - 1);
        }
    }

    /// Adds `position` for an id unless an equal one (per `same`) is present: then returns that
    /// one's position and adds nothing.
    #[inline]
    pub fn insert(&mut self, hash: u64, namespace: u32, position: u32, same: impl Fn(u32) -> bool) -> Option<u32> {
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.grow();
        }
        let mut i = self.home(hash, namespace);
        loop {
            let slot = self.slots[i];
            if slot.namespace == u32::MAX {
                self.slots[i] = Slot {
                    hash,
                    namespace,
                    position,
                };
                self.len += 1;
                return None;
            }
            if slot.hash == hash && slot.namespace == namespace && same(slot.position) {
                return Some(slot.position);
            }
            i = (i + 1) & (self.slots.len() - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_id_copies_exactly_the_id() {
        let buf = b"abc 0123456789abcdefXYZ tail";
        let mut bytes = b">".to_vec();
        append_id(&mut bytes, buf, 0, 3);
        append_id(&mut bytes, buf, 4, 20);
        append_id(&mut bytes, buf, 4, 23);
        append_id(&mut bytes, buf, 24, 28);
        assert_eq!(bytes, b">abc0123456789abcdef0123456789abcdefXYZtail");
    }

    #[test]
    fn hash_tail_handling_matches_a_byte_wise_definition() {
        // Reference: the full 8-byte words, then the rest zero-padded to a word.
        let reference = |bytes: &[u8]| {
            const K: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut h = (bytes.len() as u64).wrapping_mul(K);
            let full = bytes.len() / 8 * 8;
            for c in bytes[..full].chunks(8) {
                let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                h = (h ^ v).wrapping_mul(K).rotate_left(31);
            }
            let mut tail = [0u8; 8];
            tail[..bytes.len() - full].copy_from_slice(&bytes[full..]);
            h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
            h ^= h >> 32;
            h = h.wrapping_mul(K);
            h ^ (h >> 29)
        };
        let text = b"0123456789abcdefghijklmnopqrstuv";
        for len in 0..text.len() {
            assert_eq!(hash_bytes(&text[..len]), reference(&text[..len]), "length {len}");
        }
    }

    #[test]
    fn same_bytes_compares_lengths_and_every_byte() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"0123456789", b"0123456789"));
        assert!(!same_bytes(b"0123456789", b"012345678"));
        assert!(!same_bytes(b"0123456789", b"0123456788"));
        assert!(!same_bytes(b"x123456789", b"0123456789"));
    }

    #[test]
    fn arena_spans_address_stored_bytes() {
        let mut arena = Arena::from_blocks(vec![b"xyz".to_vec()]);
        let a = arena.push(b"doc-1");
        let b = arena.push(b"");
        assert_eq!(arena.get(a), b"doc-1");
        assert_eq!(arena.get(b), b"");
        assert_eq!(arena.get(Span::new(0, 1, 2)), b"yz");
    }

    #[test]
    fn id_index_confirms_equality_on_ids_not_hashes() {
        // Every id gets the same hash: only `same` can tell them apart. Starting unsized also
        // makes the index grow midway.
        let ids = ["a", "b", "c", "a", "d", "b", "e", "f", "g", "a"];
        let mut index = IdIndex::default();
        let mut found = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            found.push(index.insert(7, 0, i as u32, |j| ids[j as usize] == *id));
        }
        assert_eq!(
            found,
            [None, None, None, Some(0), None, Some(1), None, None, None, Some(0)]
        );
        assert!(index.slots.len() > 8);
        assert_eq!(index.find(7, 0, |j| ids[j as usize] == "e"), Some(6));
        assert_eq!(index.find(7, 0, |j| ids[j as usize] == "z"), None);
        // The same id in another namespace is another key.
        assert_eq!(index.find(7, 1, |j| ids[j as usize] == "a"), None);
        assert_eq!(index.insert(7, 1, 10, |j| ids[j as usize] == "a"), None);
        assert_eq!(index.len, 8);
        index.reset(3);
        assert_eq!((index.len, index.slots.len()), (0, 8));
        assert_eq!(IdIndex::default().find(7, 0, |_| true), None);
    }

    #[test]
    fn hash_depends_on_every_byte() {
        let base = b"FBIS3-10082-extra".to_vec();
        let h = hash_bytes(&base);
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] ^= 1;
            assert_ne!(hash_bytes(&v), h);
        }
        assert_ne!(hash_bytes(b"ab"), hash_bytes(b"ab\0"));
    }
}
