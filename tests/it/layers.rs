//! The house's structure. Between crates, Cargo keeps the layers (a crate cannot name one it
//! does not depend on); these tests keep the rest:
//!
//! * the crates depend only on crates below them in [`CRATES`], and the statistics and
//!   evaluation crates stay free of the model, the command line and the heavy formats;
//! * inside every crate, no import cycle between modules: at every level of the module tree,
//!   the sibling modules import each other one way only (read from `crate::…`, `super::…` and
//!   `self::…` paths of every `.rs` file, test modules included);
//! * inside the experiment crate, its modules import down its layer table (its `lib.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's crates from the bottom up, by folder: a crate may depend only on crates
/// before it.
const CRATES: [&str; 8] = [
    "crates/util",
    "crates/eval",
    "crates/stats",
    "crates/data",
    "crates/model",
    "crates/experiment",
    "crates/report",
    ".",
];

/// What the evaluation and statistics crates must never pull in, directly or through another
/// crate of the workspace.
const HEAVY: [&str; 5] = ["dfdx", "clap", "tokenizers", "rusqlite", "plotters"];

/// The experiment crate's top-level modules → layer: a module imports only its own layer's
/// modules or lower ones.
const EXPERIMENT_LAYERS: &[(&str, usize)] = &[
    ("schedule", 0),
    ("sampler", 1),
    ("grid", 2),
    ("spec", 2),
    ("train", 3),
    ("retrieval", 3),
    ("run", 4),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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

/// The names in the `[dependencies]` table of a manifest.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['.', '=', ' ']).next().unwrap();
            out.insert(name.to_string());
        }
    }
    out
}

/// The crate name → its folder, for every crate of [`CRATES`].
fn crate_folders() -> BTreeMap<String, &'static str> {
    CRATES
        .iter()
        .map(|folder| {
            let manifest = std::fs::read_to_string(root().join(folder).join("Cargo.toml")).unwrap();
            let name = manifest
                .lines()
                .skip_while(|l| l.trim() != "[package]")
                .find_map(|l| l.trim().strip_prefix("name = "))
                .unwrap()
                .trim_matches('"')
                .to_string();
            (name, *folder)
        })
        .collect()
}

fn manifest_dependencies(folder: &str) -> BTreeSet<String> {
    dependencies(&std::fs::read_to_string(root().join(folder).join("Cargo.toml")).unwrap())
}

/// Every dependency of `folder`'s crate, through the workspace's own crates.
fn closure(folder: &str, folders: &BTreeMap<String, &'static str>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![folder.to_string()];
    while let Some(f) = todo.pop() {
        for dep in manifest_dependencies(&f) {
            if let Some(inner) = folders.get(&dep) {
                todo.push(inner.to_string());
            }
            seen.insert(dep);
        }
    }
    seen
}

#[test]
fn crates_depend_only_on_crates_below_them() {
    let folders = crate_folders();
    for (rank, folder) in CRATES.iter().enumerate() {
        for dep in manifest_dependencies(folder) {
            if let Some(theirs) = folders.get(&dep) {
                let their_rank = CRATES.iter().position(|f| f == theirs).unwrap();
                assert!(their_rank < rank, "{folder} depends on {dep}, which is not below it");
            }
        }
    }
}

#[test]
fn evaluation_and_statistics_stay_light() {
    let folders = crate_folders();
    for folder in ["crates/eval", "crates/stats"] {
        let all = closure(folder, &folders);
        for heavy in HEAVY {
            assert!(!all.contains(heavy), "{folder} depends on {heavy}");
        }
    }
    // The check reads what it should: the model crate does depend on dfdx.
    assert!(closure("crates/model", &folders).contains("dfdx"));
}

/// Rust source without its comments and the contents of its string and character literals,
/// so that a path in prose or in a literal is not read as an import, and a quote inside a
/// literal (`'"'`, `r#"…"…"#`) does not hide the code after it.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev = ' ';
    while let Some(c) = rest.chars().next() {
        let word_before = prev.is_alphanumeric() || prev == '_';
        let raw_hashes = rest
            .strip_prefix('r')
            .filter(|_| !word_before || prev == 'b')
            .map(|r| r.len() - r.trim_start_matches('#').len())
            .filter(|&n| rest[1 + n..].starts_with('"'));
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else if let Some(hashes) = raw_hashes {
            // A raw string ends at its first quote followed by as many `#`.
            let body = &rest[2 + hashes..];
            let close = format!("\"{}", "#".repeat(hashes));
            out.push_str("\"\"");
            rest = body.find(&close).map_or("", |i| &body[i + close.len()..]);
        } else if c == '"' {
            let body = &rest[1..];
            let mut end = body.len();
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = i;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            out.push_str("\"\"");
            rest = body.get(end + 1..).unwrap_or("");
        } else if c == '\'' && !word_before {
            // A character literal (`'x'`, `'\\''`, `'\\u{301}'`); otherwise a lifetime or label.
            let body = &rest[1..];
            let end = if body.starts_with('\\') {
                body.char_indices().skip(2).find(|&(_, c)| c == '\'').map(|(i, _)| i)
            } else {
                let mut chars = body.char_indices();
                match (chars.next(), chars.next()) {
                    (Some(_), Some((i, '\''))) => Some(i),
                    _ => None,
                }
            };
            match end {
                Some(i) => {
                    out.push_str("' '");
                    rest = &body[i + 1..];
                }
                None => {
                    out.push(c);
                    rest = body;
                }
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        prev = out.chars().last().unwrap_or(' ');
    }
    out
}

/// The paths a module's code names from `crate`, `super` or `self`, made absolute (segments
/// from the crate root) for a file whose module is `module`; the items of a `{…}` group are
/// paths of their own (a nested group stops at its first segment, which names the module).
/// Inside the file's test module (`#[cfg(test)] mod …`), `super` is the file's module.
fn imports(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code = code_of(text);
    let tests_at = code.find("#[cfg(test)]\nmod ").unwrap_or(code.len());
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| code[i..].starts_with(h));
        let (Some(head), true) = (head, word_start) else {
            i += code[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut base: Vec<String> = match head {
            "crate::" => Vec::new(),
            _ if i >= tests_at => module.to_vec(),
            "super::" => module[..module.len().saturating_sub(1)].to_vec(),
            _ => module.to_vec(),
        };
        i += head.len();
        let mut path = base.clone();
        loop {
            let rest = &code[i..];
            if rest.starts_with("super::") {
                base.pop();
                path = base.clone();
                i += "super::".len();
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                path.push(name.clone());
                i += name.len();
                if code[i..].starts_with("::") {
                    i += 2;
                    continue;
                }
                out.push(path.clone());
            } else if let Some(group) = rest.strip_prefix('{') {
                // A group: each item at depth 0 is a path below `path`.
                let mut depth = 0;
                let mut item = String::new();
                let mut items = Vec::new();
                for c in group.chars() {
                    i += c.len_utf8();
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                        c if depth == 0 => item.push(c),
                        _ => {}
                    }
                }
                items.push(item);
                for item in items {
                    let mut p = path.clone();
                    p.extend(
                        item.trim()
                            .split("::")
                            .map(|s| {
                                s.chars()
                                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                                    .collect::<String>()
                            })
                            .filter(|s| !s.is_empty() && s != "self"),
                    );
                    out.push(p);
                }
            } else {
                out.push(path.clone());
            }
            break;
        }
    }
    out
}

/// The module of a file of a crate's `src/` (`a/b.rs` is `[a, b]`; `lib.rs` and `main.rs` are
/// the root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        Vec::new()
    } else {
        parts
    }
}

/// The edges between sibling modules of one crate: module `a::b` naming `a::c::d` is the edge
/// `a::b → a::c`; at the top level, `b → c` for `b::x` naming `c::y`.
fn sibling_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        for path in imports(&std::fs::read_to_string(file).unwrap(), &from) {
            // The module named: the longest prefix of the path that is a module (file).
            let Some(to) = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
            else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                graph
                    .entry(from[..=common].join("::"))
                    .or_default()
                    .insert(to[..=common].join("::"));
            }
        }
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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn import_paths_are_read() {
    let text = "use crate::util::fs::write_atomic;\nuse super::{paths::{self, CellFile}, state};\n\
                let x = crate::grid::hash(&y); // crate::cli in a comment\n\
                let s = \"crate::in_a_string\";\n\
                let q = '\"'; let r = r#\"crate::raw \" quote\"#; fn f<'a>(x: &'a str) {}\n\
                let e = '\\''; use crate::after_literals::Item;\n\
                use super::super::queue;\n\
                #[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::cell::run;\n}\n";
    let found = imports(text, &strings(&["run", "launcher", "slurm"]));
    let want: Vec<Vec<String>> = [
        &["util", "fs", "write_atomic"][..],
        &["run", "launcher", "paths"],
        &["run", "launcher", "state"],
        &["grid", "hash"],
        &["after_literals", "Item"],
        &["run", "queue"],
        &["run", "launcher", "slurm"],
        &["run", "launcher", "cell", "run"],
    ]
    .iter()
    .map(|p| strings(p))
    .collect();
    assert_eq!(found, want);
}

#[test]
fn a_cycle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", &["b"][..]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(cycle(&graph), Some(strings(&["a", "b", "c", "a"])));
    let mut acyclic = graph.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(cycle(&acyclic), None);
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    for folder in CRATES {
        let graph = sibling_graph(&root().join(folder).join("src"));
        assert!(!graph.is_empty() || folder == ".", "{folder}: no imports read");
        if let Some(c) = cycle(&graph) {
            panic!("{folder}: import cycle between modules: {}", c.join(" → "));
        }
    }
}

#[test]
fn experiment_modules_import_down_their_layers() {
    let layers: BTreeMap<&str, usize> = EXPERIMENT_LAYERS.iter().copied().collect();
    let graph = sibling_graph(&root().join("crates/experiment/src"));
    let mut upward = Vec::new();
    for (module, deps) in &graph {
        if module.contains("::") {
            continue;
        }
        let own = *layers
            .get(module.as_str())
            .unwrap_or_else(|| panic!("module `{module}` is missing from the experiment crate's layer table"));
        for dep in deps {
            let theirs = layers[dep.as_str()];
            if theirs > own {
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
