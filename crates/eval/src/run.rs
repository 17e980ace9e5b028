//! Retrieval runs in TREC format (`qid Q0 docno rank score runid`), from files or built in memory.

use std::cmp::Ordering;
use std::io::{self, Write};
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use rayon::prelude::*;

use super::ids::{Arena, IdIndex, MAX_ID_LEN, Span, TopicGroup, TopicGroups, append_id, hash_bytes, same_bytes};
use super::scan::{check_id, parse_f64};
use super::source::{
    ScanError, Source, last_line_field, parse_nonempty_file, parse_pieces, repeated_document, scan_lines, scan_result,
    topic_text,
};

/// A retrieval run: for each topic, scored documents.
///
/// Documents are ranked as trec_eval ranks them: score descending, ties broken by document id
/// descending (byte order); the rank column of a file is ignored. A document appears at most once
/// per topic: parsing and [`Run::push`] reject duplicates.
#[derive(Clone)]
pub struct Run {
    name: String,
    arena: Arena,
    topics: Vec<RunTopic>,
    /// Topic id -> position in `topics`.
    index: IdIndex,
    /// (topic, document) -> position in the topic's docs; built on the first [`Run::push`], so
    /// that parsing pays nothing for it.
    seen: Option<IdIndex>,
}

#[derive(Clone)]
pub(crate) struct RunTopic {
    id: Box<str>,
    docs: Vec<RunDoc>,
    /// Whether `docs` is in rank order (parsing sorts; pushes in rank order keep it sorted).
    ranked: bool,
}

#[derive(Clone, Copy)]
pub(crate) struct RunDoc {
    score: f64,
    /// [`hash_bytes`] of the id, kept so that lookups rarely need the bytes.
    pub hash: u64,
    pub id: Span,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("name", &self.name)
            .field("topics", &self.num_topics())
            .field("documents", &self.len())
            .finish()
    }
}

/// trec_eval's ranking: score descending, then document id descending (`id` gives the bytes).
fn rank_order<'a>(id: impl Fn(Span) -> &'a [u8], a: &RunDoc, b: &RunDoc) -> Ordering {
    // Scores are never NaN (rejected on input), so partial_cmp is total here; -0.0 ties with 0.0
    // as in C.
    b.score
        .partial_cmp(&a.score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| id(b.id).cmp(id(a.id)))
}

/// Checks `docs` for a repeated document (returning its span), then sorts them in rank order.
fn check_and_rank<'a>(docs: &mut [RunDoc], id: impl Fn(Span) -> &'a [u8] + Copy, seen: &mut Seen) -> Option<Span> {
    let repeated = seen.repeated(docs, id);
    docs.sort_unstable_by(|a, b| rank_order(id, a, b));
    repeated
}

/// Scratch space for finding a repeated document in a topic.
#[derive(Default)]
struct Seen {
    /// A 65,536-bit filter on document hashes, all clear between uses.
    bits: Vec<u64>,
    index: IdIndex,
}

impl Seen {
    fn repeated<'a>(&mut self, docs: &[RunDoc], id: impl Fn(Span) -> &'a [u8]) -> Option<Span> {
        // Cheap pass: documents that share no filter bit are all distinct (equal documents have
        // equal hashes, hence equal bits). Only a clash calls for the exact check.
        self.bits.resize(1 << 10, 0);
        let bit = |doc: &RunDoc| ((doc.hash >> 54) as usize, 1u64 << ((doc.hash >> 48) & 63));
        let mut clash = false;
        for doc in docs {
            let (word, mask) = bit(doc);
            clash |= self.bits[word] & mask != 0;
            self.bits[word] |= mask;
        }
        for doc in docs {
            self.bits[bit(doc).0] = 0;
        }
        if !clash {
            return None;
        }
        self.index.reset(docs.len());
        docs.iter().enumerate().find_map(|(i, doc)| {
            let same = |j: u32| same_bytes(id(docs[j as usize].id), id(doc.id));
            self.index.insert(doc.hash, 0, i as u32, same).map(|_| doc.id)
        })
    }
}

impl RunTopic {
    /// The documents in rank order: borrowed when already sorted, else sorted into `scratch`.
    pub fn ranked<'a>(&'a self, arena: &Arena, scratch: &'a mut Vec<RunDoc>) -> &'a [RunDoc] {
        if self.ranked {
            return &self.docs;
        }
        scratch.clear();
        scratch.extend_from_slice(&self.docs);
        scratch.sort_unstable_by(|a, b| rank_order(|s| arena.get(s), a, b));
        scratch
    }
}

/// Documents of one topic as parsed by one task.
struct Group {
    /// The topic id, in the piece's `topic_bytes`.
    topic: Range<usize>,
    first_line: u64,
    docs: Vec<RunDoc>,
    /// Checked for duplicates and in rank order (done when the group ends, while it is in cache).
    ranked: bool,
    /// The topic came back after other topics; the group is ranked once, at the end of the piece.
    interleaved: bool,
}

/// What one parse task found in its piece of the file.
struct Piece {
    scanned: Result<(), ScanError>,
    groups: Vec<Group>,
    topic_bytes: Vec<u8>,
    block: Vec<u8>,
    /// The first (topic, document) found twice in a group.
    repeated: Option<(Vec<u8>, Vec<u8>)>,
}

impl Run {
    /// An empty run named `name` (the runid written by [`Run::write_trec`] and reported by
    /// `runid`).
    pub fn new(name: impl Into<String>) -> Self {
        Run {
            name: name.into(),
            arena: Arena::default(),
            topics: Vec::new(),
            index: IdIndex::default(),
            seen: None,
        }
    }

    /// Reads a run file; errors name `path:line`.
    pub fn from_path(path: &Path) -> Result<Self> {
        // (An empty run has no runid either: the file is named.)
        parse_nonempty_file(
            path,
            "run",
            Self::parse_source,
            Run::is_empty,
            "ranked results (`topic Q0 document rank score runid`)",
        )
    }

    /// Parses run text; `name` stands for the file in error messages (`name:line: ...`).
    /// The run's name is the runid of the last line, as trec_eval reports it.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        Self::parse_source(name, &text.as_bytes())
    }

    fn parse_source(name: &str, src: &dyn Source) -> Result<Self> {
        let pieces: Vec<Piece> = parse_pieces(src, parse_piece);
        let mut run = Run::new(String::new());
        run.index.reset(pieces.iter().map(|p| p.groups.len()).sum());
        let mut repeated = None;
        let mut blocks = Vec::with_capacity(pieces.len());
        for piece in pieces {
            scan_result(name, src, piece.scanned)?;
            repeated = repeated.or(piece.repeated);
            for group in piece.groups {
                let topic = topic_text(name, src, &piece.topic_bytes[group.topic], group.first_line)?;
                let topics = &mut run.topics;
                let position = topics.len() as u32;
                let same = |t: u32| *topics[t as usize].id == *topic;
                match run.index.insert(hash_bytes(topic.as_bytes()), 0, position, same) {
                    Some(t) => {
                        // Continued from an earlier piece: checked and ranked again below.
                        let topic = &mut topics[t as usize];
                        topic.docs.extend(group.docs);
                        topic.ranked = false;
                    }
                    None => topics.push(RunTopic {
                        id: topic.into(),
                        docs: group.docs,
                        ranked: group.ranked,
                    }),
                }
            }
            blocks.push(piece.block);
        }
        run.arena = Arena::from_blocks(blocks);
        let arena = &run.arena;
        let repeated = repeated.or_else(|| {
            run.topics
                .par_iter_mut()
                .filter(|topic| !topic.ranked)
                .map_init(Seen::default, |seen, topic| {
                    topic.ranked = true;
                    let doc = check_and_rank(&mut topic.docs, |s| arena.get(s), seen)?;
                    Some((topic.id.as_bytes().to_vec(), arena.get(doc).to_vec()))
                })
                .flatten()
                .min()
        });
        if let Some((topic, doc)) = repeated {
            return Err(repeated_document(src, name, 6, (&topic, &doc), "retrieved"));
        }
        // trec_eval reports the runid of the last line.
        let runid = last_line_field(src, 5).map_err(Error::read(name))?;
        run.name = runid
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .unwrap_or_default();
        Ok(run)
    }

    /// Adds `doc` with `score` to the ranking of `topic`. Errors on a NaN score, on ids that are
    /// empty or contain whitespace, and on a document already in the topic's ranking.
    pub fn push(&mut self, topic: &str, doc: &str, score: f64) -> Result<()> {
        check_id("topic id", topic)?;
        check_id("document id", doc)?;
        if score.is_nan() {
            return Err(Error::Invalid(format!(
                "score of document {doc:?} for topic {topic:?} is NaN"
            )));
        }
        let Run {
            arena,
            topics,
            index,
            seen,
            ..
        } = self;
        let seen = seen.get_or_insert_with(|| {
            let mut seen = IdIndex::default();
            seen.reset(topics.iter().map(|t| t.docs.len()).sum());
            for (t, topic) in topics.iter().enumerate() {
                for (i, doc) in topic.docs.iter().enumerate() {
                    // Entries of a run are distinct already; no comparison needed.
                    seen.insert(doc.hash, t as u32, i as u32, |_| false);
                }
            }
            seen
        });
        let position = topics.len() as u32;
        let t = match index.insert(hash_bytes(topic.as_bytes()), 0, position, |t| {
            *topics[t as usize].id == *topic
        }) {
            Some(t) => t as usize,
            None => {
                topics.push(RunTopic {
                    id: topic.into(),
                    docs: Vec::new(),
                    ranked: true,
                });
                topics.len() - 1
            }
        };
        let hash = hash_bytes(doc.as_bytes());
        let docs = &topics[t].docs;
        let same = |j: u32| arena.get(docs[j as usize].id) == doc.as_bytes();
        if seen.insert(hash, t as u32, docs.len() as u32, same).is_some() {
            return Err(Error::Invalid(format!(
                "document {doc:?} is already in the ranking of topic {topic:?}"
            )));
        }
        let new = RunDoc {
            score,
            hash,
            id: arena.push(doc.as_bytes()),
        };
        let topic = &mut topics[t];
        let after_last = |last: &RunDoc| rank_order(|s| arena.get(s), last, &new).is_lt();
        topic.ranked = topic.ranked && topic.docs.last().is_none_or(after_last);
        topic.docs.push(new);
        Ok(())
    }

    /// The run's name (its runid).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of topics with at least one document.
    pub fn num_topics(&self) -> usize {
        self.topics.len()
    }

    /// Number of (topic, document) entries.
    pub fn len(&self) -> usize {
        self.topics.iter().map(|t| t.docs.len()).sum()
    }

    /// Whether the run retrieved nothing.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Writes the run as TREC run lines `qid Q0 docno rank score runid`: topics in byte order of
    /// their ids, documents in trec_eval's rank order with ranks 1..n, scores in the shortest form
    /// that reads back to the same value. Pass a buffered writer.
    pub fn write_trec<W: Write>(&self, w: &mut W) -> io::Result<()> {
        if check_id("run name", &self.name).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("run name {:?} must be non-empty and contain no whitespace", self.name),
            ));
        }
        let mut topics: Vec<&RunTopic> = self.topics.iter().collect();
        topics.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut scratch = Vec::new();
        for topic in topics {
            for (rank, doc) in topic.ranked(&self.arena, &mut scratch).iter().enumerate() {
                write!(w, "{} Q0 ", topic.id)?;
                w.write_all(self.arena.get(doc.id))?;
                writeln!(w, " {} {} {}", rank + 1, doc.score, self.name)?;
            }
        }
        Ok(())
    }

    pub(crate) fn topic(&self, id: &str) -> Option<&RunTopic> {
        let same = |t: u32| *self.topics[t as usize].id == *id;
        self.index
            .find(hash_bytes(id.as_bytes()), 0, same)
            .map(|t| &self.topics[t as usize])
    }

    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }
}

/// Parses the lines starting in `range` of `src`; document ids go to a new arena block `block`.
fn parse_piece(src: &dyn Source, block: usize, range: Range<u64>) -> Piece {
    let mut bytes = Vec::new();
    let mut topics = TopicGroups::default();
    let mut groups: Vec<Group> = Vec::new();
    let mut seen = Seen::default();
    let mut repeated = None;
    // Ranks a group that has ended; records the first duplicate.
    let mut finish = |group: &mut Group, bytes: &[u8], topic_bytes: &[u8], seen: &mut Seen| {
        if let Some(doc) = check_and_rank(&mut group.docs, |s| &bytes[s.range()], seen) {
            repeated.get_or_insert_with(|| (topic_bytes[group.topic.clone()].to_vec(), bytes[doc.range()].to_vec()));
        }
        group.ranked = true;
    };
    let scanned = scan_lines(src, range, |buf, line, offset| {
        if line.count < 6 {
            let found = line.count;
            return Err(format!(
                "expected 6 whitespace-separated fields (qid Q0 docno rank score runid), found {found}"
            ));
        }
        let [(q0, q1), _, (d0, d1), _, (s0, s1), _] = line.fields;
        let Some(score) = parse_f64(buf, s0, s1).filter(|s| !s.is_nan()) else {
            return Err(format!(
                "score {:?} is not a number",
                String::from_utf8_lossy(&buf[s0..s1])
            ));
        };
        let (topic, doc) = (&buf[q0..q1], &buf[d0..d1]);
        if doc.len() > MAX_ID_LEN {
            return Err(format!("document id is longer than {MAX_ID_LEN} bytes"));
        }
        let before = topics.current();
        let found = topics.lookup(topic, groups.len(), |g| groups[g].topic.clone());
        if !matches!(found, TopicGroup::Current(_)) {
            // The group before has ended (unless its topic came back before).
            if let Some(ended) = before.and_then(|g| groups.get_mut(g)).filter(|g| !g.interleaved) {
                finish(ended, &bytes, &topics.bytes, &mut seen);
            }
        }
        let current = match found {
            TopicGroup::Current(g) => g,
            TopicGroup::Earlier(g) => {
                let group = &mut groups[g];
                group.interleaved = true;
                group.ranked = false;
                g
            }
            TopicGroup::New(topic) => {
                // Expect as many documents as the previous topic had.
                let docs = Vec::with_capacity(groups.last().map_or(0, |g| g.docs.len()));
                groups.push(Group {
                    topic,
                    first_line: offset,
                    docs,
                    ranked: false,
                    interleaved: false,
                });
                groups.len() - 1
            }
        };
        let id = Span::new(block, bytes.len(), doc.len());
        append_id(&mut bytes, buf, d0, d1);
        groups[current].docs.push(RunDoc {
            score,
            hash: hash_bytes(doc),
            id,
        });
        Ok(())
    });
    for group in groups.iter_mut().filter(|g| !g.ranked) {
        finish(group, &bytes, &topics.bytes, &mut seen);
    }
    Piece {
        scanned,
        groups,
        topic_bytes: topics.bytes,
        block: bytes,
        repeated,
    }
}
