//! Relevance judgments in TREC qrels format (`qid iter docno rel`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use rayon::prelude::*;

use super::ids::{Arena, IdIndex, MAX_ID_LEN, Span, TopicGroup, TopicGroups, append_id, hash_bytes};
use super::scan::{check_id, parse_i32};
use super::source::{
    ScanError, Source, parse_nonempty_file, parse_pieces, repeated_document, scan_lines, scan_result, topic_text,
};

/// Relevance judgments: for each topic, the grade of every judged document.
///
/// Grades are integers; a document is relevant when its grade reaches
/// [`EvalOptions::rel_level`](super::EvalOptions::rel_level). A negative grade marks a pooled but
/// unjudged document (trec_eval's convention): it is neither relevant nor judged non-relevant.
/// Topics iterate in byte order of their ids, which is trec_eval's output order.
#[derive(Clone, Default)]
pub struct Qrels {
    arena: Arena,
    /// Per topic, judgments sorted by (hash, doc id), so lookups are a binary search on hashes.
    topics: BTreeMap<Box<str>, Vec<Judgment>>,
}

impl std::fmt::Debug for Qrels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qrels")
            .field("topics", &self.num_topics())
            .field("judgments", &self.num_judgments())
            .finish()
    }
}

#[derive(Clone, Copy)]
struct Judgment {
    hash: u64,
    doc: Span,
    rel: i32,
}

/// The judgments of one topic, as the evaluator sees them.
#[derive(Clone, Copy)]
pub(crate) struct TopicQrels<'a> {
    arena: &'a Arena,
    judgments: &'a [Judgment],
}

impl<'a> TopicQrels<'a> {
    /// Grade of the document whose [`hash_bytes`] is `hash`, if judged; its bytes (`doc`) are
    /// only looked at when a judged document has the same hash.
    pub fn grade<'d>(&self, hash: u64, doc: impl Fn() -> &'d [u8]) -> Option<i32> {
        // Topics usually have few judgments: a linear scan beats a binary search there.
        let first = match self.judgments.len() {
            0..=16 => self
                .judgments
                .iter()
                .position(|j| j.hash >= hash)
                .unwrap_or(self.judgments.len()),
            _ => self.judgments.partition_point(|j| j.hash < hash),
        };
        let mut candidates = self.judgments[first..].iter().take_while(|j| j.hash == hash);
        candidates.find(|j| self.arena.get(j.doc) == doc()).map(|j| j.rel)
    }

    /// A 64-bit Bloom filter of the judged documents' hashes (see [`filter_bit`]): a document
    /// whose bit is clear is not judged, which spares most lookups.
    pub fn hash_filter(&self) -> u64 {
        self.judgments.iter().fold(0, |f, j| f | filter_bit(j.hash))
    }

    pub fn grades(&self) -> impl Iterator<Item = i32> + 'a {
        self.judgments.iter().map(|j| j.rel)
    }
}

/// The bit of a hash in [`TopicQrels::hash_filter`].
pub(crate) fn filter_bit(hash: u64) -> u64 {
    1 << (hash >> 58)
}

/// Judgments of one topic as parsed by one task, in file order.
struct Group {
    /// The topic id, in the piece's `topic_bytes`.
    topic: Range<usize>,
    first_line: u64,
    judgments: Vec<Judgment>,
}

/// What one parse task found in its piece of the file.
struct Piece {
    scanned: Result<(), ScanError>,
    groups: Vec<Group>,
    topic_bytes: Vec<u8>,
    block: Vec<u8>,
}

impl Qrels {
    /// Empty judgments, to be filled with [`Qrels::insert`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a qrels file; errors name `path:line`.
    pub fn from_path(path: &Path) -> Result<Self> {
        // (Otherwise every run would be blamed for finding nothing.)
        parse_nonempty_file(
            path,
            "qrels",
            Self::parse_source,
            |q| q.num_topics() == 0,
            "judgments (`topic iteration document relevance`)",
        )
    }

    /// Parses qrels text; `name` stands for the file in error messages (`name:line: ...`).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        Self::parse_source(name, &text.as_bytes())
    }

    fn parse_source(name: &str, src: &dyn Source) -> Result<Self> {
        let pieces: Vec<Piece> = parse_pieces(src, parse_piece);
        let mut topics: Vec<(Box<str>, Vec<Judgment>)> = Vec::new();
        let mut index = IdIndex::default();
        index.reset(pieces.iter().map(|p| p.groups.len()).sum());
        let mut blocks = Vec::with_capacity(pieces.len());
        for piece in pieces {
            scan_result(name, src, piece.scanned)?;
            for group in piece.groups {
                let topic = topic_text(name, src, &piece.topic_bytes[group.topic], group.first_line)?;
                let position = topics.len() as u32;
                match index.insert(hash_bytes(topic.as_bytes()), 0, position, |t| {
                    *topics[t as usize].0 == *topic
                }) {
                    Some(t) => topics[t as usize].1.extend(group.judgments),
                    None => topics.push((topic.into(), group.judgments)),
                }
            }
            blocks.push(piece.block);
        }
        let arena = Arena::from_blocks(blocks);
        // Sort each topic for lookups; equal documents become adjacent, which exposes duplicates.
        let by_key =
            |a: &Judgment, b: &Judgment| a.hash.cmp(&b.hash).then_with(|| arena.get(a.doc).cmp(arena.get(b.doc)));
        let duplicate = topics
            .par_iter_mut()
            .filter_map(|(topic, judgments)| {
                judgments.sort_unstable_by(by_key);
                let twice = judgments.windows(2).find(|w| by_key(&w[0], &w[1]).is_eq());
                twice.map(|w| (topic.clone(), arena.get(w[0].doc).to_vec()))
            })
            .min();
        if let Some((topic, doc)) = duplicate {
            return Err(repeated_document(src, name, 4, (topic.as_bytes(), &doc), "judged"));
        }
        // Sorted by id, the map is built in bulk.
        topics.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Qrels {
            arena,
            topics: topics.into_iter().collect(),
        })
    }

    /// Adds the judgment `rel` of `doc` for `topic`. Judging a document twice for one topic is an
    /// error, as in trec_eval; ids must be non-empty and free of whitespace.
    pub fn insert(&mut self, topic: &str, doc: &str, rel: i32) -> Result<()> {
        check_id("topic id", topic)?;
        check_id("document id", doc)?;
        let hash = hash_bytes(doc.as_bytes());
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.into(), Vec::new());
        }
        let arena = &mut self.arena;
        let judgments = self.topics.get_mut(topic).expect("inserted above");
        let pos = match judgments
            .binary_search_by(|j| j.hash.cmp(&hash).then_with(|| arena.get(j.doc).cmp(doc.as_bytes())))
        {
            Ok(_) => {
                return Err(Error::Invalid(format!(
                    "document {doc:?} is already judged for topic {topic:?}"
                )));
            }
            Err(pos) => pos,
        };
        let span = arena.push(doc.as_bytes());
        judgments.insert(pos, Judgment { hash, doc: span, rel });
        Ok(())
    }

    /// Grade of `doc` for `topic`, if judged.
    pub fn get(&self, topic: &str, doc: &str) -> Option<i32> {
        let judgments = self.topics.get(topic)?;
        TopicQrels {
            arena: &self.arena,
            judgments,
        }
        .grade(hash_bytes(doc.as_bytes()), || doc.as_bytes())
    }

    /// Number of topics with at least one judgment.
    pub fn num_topics(&self) -> usize {
        self.topics.len()
    }

    /// Number of judgments over all topics.
    pub fn num_judgments(&self) -> usize {
        self.topics.values().map(Vec::len).sum()
    }

    /// Topic ids in byte order (trec_eval's order).
    pub fn topic_ids(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(|k| &**k)
    }

    pub(crate) fn topics(&self) -> impl Iterator<Item = (&str, TopicQrels<'_>)> {
        self.topics.iter().map(|(id, judgments)| {
            (
                &**id,
                TopicQrels {
                    arena: &self.arena,
                    judgments,
                },
            )
        })
    }
}

/// Parses the lines starting in `range` of `src`; document ids go to a new arena block `block`.
fn parse_piece(src: &dyn Source, block: usize, range: Range<u64>) -> Piece {
    let mut bytes = Vec::new();
    let mut topics = TopicGroups::default();
    let mut groups: Vec<Group> = Vec::new();
    let scanned = scan_lines(src, range, |buf, line, offset| {
        if line.count != 4 {
            let found = line.count;
            return Err(format!(
                "expected 4 whitespace-separated fields (qid iter docno rel), found {found}"
            ));
        }
        let [(q0, q1), _, (d0, d1), (r0, r1), ..] = line.fields;
        let Some(rel) = parse_i32(&buf[r0..r1]) else {
            return Err(format!(
                "relevance {:?} is not an integer",
                String::from_utf8_lossy(&buf[r0..r1])
            ));
        };
        let (topic, doc) = (&buf[q0..q1], &buf[d0..d1]);
        if doc.len() > MAX_ID_LEN {
            return Err(format!("document id is longer than {MAX_ID_LEN} bytes"));
        }
        let current = match topics.lookup(topic, groups.len(), |g| groups[g].topic.clone()) {
            TopicGroup::Current(g) | TopicGroup::Earlier(g) => g,
            TopicGroup::New(topic) => {
                groups.push(Group {
                    topic,
                    first_line: offset,
                    judgments: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let span = Span::new(block, bytes.len(), doc.len());
        append_id(&mut bytes, buf, d0, d1);
        groups[current].judgments.push(Judgment {
            hash: hash_bytes(doc),
            doc: span,
            rel,
        });
        Ok(())
    });
    Piece {
        scanned,
        groups,
        topic_bytes: topics.bytes,
        block: bytes,
    }
}
