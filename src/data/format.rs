//! In-memory dataset (interim: the on-disk reader/writer lands with registry data).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub name: String,
    pub synthetic: bool,
    pub zero_shot: bool,
    pub description: String,
    pub languages: Vec<String>,
    pub pivot: String,
    pub tasks: Vec<String>,
    pub counts: BTreeMap<String, u64>,
    pub format_version: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub id: String,
    pub query: String,
    pub passage: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Judgment {
    pub query_id: String,
    pub doc_id: String,
    pub relevance: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub card: Card,
    pub corpus: BTreeMap<String, Vec<Doc>>,
    pub queries: BTreeMap<(String, String), Vec<Doc>>,
    pub qrels: BTreeMap<(String, String, String), Vec<Judgment>>,
    pub mono: Vec<Pair>,
    pub cross: BTreeMap<String, Vec<Pair>>,
    pub bitext: BTreeMap<String, Vec<Pair>>,
}
