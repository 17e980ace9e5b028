//! The module graph: no import cycle between the top-level modules of `src/`, and every import
//! points down the layer table (the README's architecture section). Reads `use crate::…` and
//! `crate::…` paths of every `src/**/*.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → layer; a module may import only its own layer's modules or lower ones.
const LAYERS: &[(&str, usize)] = &[
    ("util", 0),
    ("eval", 0),
    ("stats", 0),
    ("schedule", 0),
    ("ot", 0),
    ("data", 1),
    ("tokenizer", 1),
    ("sampler", 1),
    ("model", 2),
    ("grid", 2),
    ("spec", 2),
    ("train", 3),
    ("retrieval", 3),
    ("run", 4),
    ("report", 5),
    ("cli", 6),
];

/// Layer 0 is pure: it imports nothing outside layer 0.
const BOTTOM: usize = 0;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules named by `crate::x` paths in `text`, also inside `use crate::{x, y::z}`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each item at depth 0.
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(String::new()),
                    c if depth == 0 => items.last_mut().expect("one item").push(c),
                    _ => {}
                }
            }
            for item in items {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module → the other top-level modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

/// A cycle of the graph, if it has one (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn import_paths_are_read() {
    let found = imports(
        "use crate::util::fs::write_atomic;\nuse crate::{eval, stats::{compare, Format}, run::paths};\n\
         let x = crate::grid::content_hash(&y, 8); // crate::cli in a comment\n",
    );
    let want: BTreeSet<String> = ["util", "eval", "stats", "run", "grid"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
}

#[test]
fn every_module_has_a_layer() {
    let layers: BTreeMap<&str, usize> = LAYERS.iter().copied().collect();
    for module in graph().keys() {
        assert!(
            layers.contains_key(module.as_str()),
            "module `{module}` is missing from the layer table (tests/it/layers.rs and the README)"
        );
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    if let Some(c) = cycle(&graph()) {
        panic!("import cycle between top-level modules: {}", c.join(" → "));
    }
}

#[test]
fn imports_point_down_the_layers() {
    let layers: BTreeMap<&str, usize> = LAYERS.iter().copied().collect();
    let mut upward = Vec::new();
    for (module, deps) in graph() {
        let Some(&own) = layers.get(module.as_str()) else {
            continue;
        };
        for dep in deps {
            let Some(&theirs) = layers.get(dep.as_str()) else {
                continue;
            };
            if theirs > own || (own == BOTTOM && theirs != BOTTOM) {
                upward.push(format!("{module} (layer {own}) imports {dep} (layer {theirs})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up the layers:\n  {}",
        upward.join("\n  ")
    );
}
