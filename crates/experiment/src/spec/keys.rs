//! The experiment-key reference (`clirlab schema --markdown`, kept as `docs/keys.md`): every
//! key of an experiment file with its type, default and meaning, generated from the schema
//! itself. The meanings are the doc comments of the schema's types, read from their source
//! (compiled into the binary) with `syn`; the defaults are `Experiment::default()` serialised.
//! So a key added to the schema is a new row here, and a test keeps `docs/keys.md` equal to it.

use super::schema::Experiment;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use syn::{Attribute, Expr, Fields, Item, Lit, Meta, Type};

/// The source files holding the types of the schema, as compiled.
const SOURCES: [(&str, &str); 10] = [
    ("crates/experiment/src/spec/schema.rs", include_str!("schema.rs")),
    ("crates/data/src/config.rs", include_str!("../../../data/src/config.rs")),
    (
        "crates/data/src/synthetic.rs",
        include_str!("../../../data/src/synthetic.rs"),
    ),
    ("crates/model/src/lib.rs", include_str!("../../../model/src/lib.rs")),
    (
        "crates/model/src/device.rs",
        include_str!("../../../model/src/device.rs"),
    ),
    ("crates/experiment/src/sampler.rs", include_str!("../sampler.rs")),
    ("crates/experiment/src/schedule.rs", include_str!("../schedule.rs")),
    (
        "crates/stats/src/compare.rs",
        include_str!("../../../stats/src/compare.rs"),
    ),
    (
        "crates/stats/src/correction.rs",
        include_str!("../../../stats/src/correction.rs"),
    ),
    ("crates/stats/src/seeds.rs", include_str!("../../../stats/src/seeds.rs")),
];

/// Keys whose value is a whole sub-grid or schedule: listed as one key, not walked into.
const OPAQUE: [&str; 2] = ["GridSpec", "ConditionalAxes"];

/// One field of a struct of the schema.
struct Field {
    key: String,
    ty: Type,
    doc: String,
}

/// What the schema's sources declare: structs by their fields, enums by their written values.
#[derive(Default)]
struct Types {
    structs: BTreeMap<String, (String, Vec<Field>)>,
    enums: BTreeMap<String, Vec<String>>,
}

/// One row of the reference.
struct Row {
    key: String,
    ty: String,
    default: String,
    doc: String,
}

/// The reference as Markdown: one table per section of an experiment file.
pub fn markdown() -> Result<String> {
    let types = parse_sources()?;
    let defaults = serde_json::to_value(Experiment::default()).context("serialising the default experiment")?;
    let mut sections: Vec<(String, String, Vec<Row>)> = vec![(
        "Top level".into(),
        "The experiment's name, its schedule, device, seeds and grid.".into(),
        Vec::new(),
    )];
    walk(&types, "Experiment", "", &defaults, &mut sections)?;
    let mut out = String::from(
        "# Experiment keys\n\n\
         Generated from the schema by `clirlab schema --markdown > docs/keys.md`; a test fails when\n\
         this file and the schema differ. Every key has a default; \"absent\" means the key is left\n\
         out unless given. How keys combine into grids, and the layers (file < environment <\n\
         `--set`), are in [experiments.md](experiments.md).\n",
    );
    for (title, doc, rows) in sections.iter().filter(|(_, _, rows)| !rows.is_empty()) {
        write!(out, "\n## {title}\n\n")?;
        if !doc.is_empty() {
            write!(out, "{doc}\n\n")?;
        }
        out.push_str("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
        for row in rows {
            writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                row.key,
                cell(&row.ty),
                cell(&row.default),
                cell(&row.doc)
            )?;
        }
    }
    Ok(out)
}

/// Every key path of the schema (dotted), in reference order.
pub fn key_paths() -> Result<Vec<String>> {
    let types = parse_sources()?;
    let defaults = serde_json::to_value(Experiment::default())?;
    let mut sections = vec![(String::new(), String::new(), Vec::new())];
    walk(&types, "Experiment", "", &defaults, &mut sections)?;
    Ok(sections
        .into_iter()
        .flat_map(|(_, _, rows)| rows.into_iter().map(|r| r.key))
        .collect())
}

fn walk(
    types: &Types,
    name: &str,
    prefix: &str,
    defaults: &serde_json::Value,
    sections: &mut Vec<(String, String, Vec<Row>)>,
) -> Result<()> {
    let Some((_, fields)) = types.structs.get(name) else {
        bail!("the schema's type `{name}` is not declared in any of its source files")
    };
    for field in fields {
        let key = format!("{prefix}{}", field.key);
        let default = defaults.get(&field.key);
        let inner = struct_name(types, &field.ty);
        match inner {
            Some(inner) => {
                if prefix.is_empty() {
                    // A top-level section (`data`, `model`, ...): a table of its own.
                    let doc = if field.doc.is_empty() {
                        types.structs[&inner].0.clone()
                    } else {
                        field.doc.clone()
                    };
                    sections.push((format!("`{key}`"), doc, Vec::new()));
                } else {
                    sections.last_mut().expect("a section").2.push(Row {
                        key: key.clone(),
                        ty: "map".into(),
                        default: "see below".into(),
                        doc: field.doc.clone(),
                    });
                }
                let inner_defaults = default.unwrap_or(&serde_json::Value::Null);
                walk(types, &inner, &format!("{key}."), inner_defaults, sections)?;
            }
            // Top-level keys (`schedule`, `seeds`, the grid) stay in the first table.
            None => {
                let at = if prefix.is_empty() { 0 } else { sections.len() - 1 };
                sections[at].2.push(Row {
                    key,
                    ty: type_text(types, &field.ty),
                    default: match default {
                        None => "absent".into(),
                        Some(v) => format!("`{}`", serde_json::to_string(v)?),
                    },
                    doc: field.doc.clone(),
                })
            }
        }
    }
    Ok(())
}

/// The struct of the schema that a field holds (through `Option`), to be walked into.
fn struct_name(types: &Types, ty: &Type) -> Option<String> {
    let (name, args) = path_parts(ty)?;
    if name == "Option" {
        return args.first().and_then(|t| struct_name(types, t));
    }
    (types.structs.contains_key(&name) && !OPAQUE.contains(&name.as_str())).then_some(name)
}

/// The last segment of a type path and its generic arguments.
fn path_parts(ty: &Type) -> Option<(String, Vec<Type>)> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    let args = match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((seg.ident.to_string(), args))
}

/// A type as a reader of the YAML file sees it.
fn type_text(types: &Types, ty: &Type) -> String {
    let Some((name, args)) = path_parts(ty) else {
        return "value".into();
    };
    let arg = |i: usize| {
        args.get(i)
            .map(|t| type_text(types, t))
            .unwrap_or_else(|| "value".into())
    };
    match name.as_str() {
        "Option" => format!("{} or null", arg(0)),
        "Vec" => format!("list of {}", arg(0)),
        "BTreeMap" | "HashMap" => format!("map of {} to {}", arg(0), arg(1)),
        "String" | "PathBuf" => "string".into(),
        "bool" => "bool".into(),
        "f32" | "f64" => "number".into(),
        "usize" | "u64" | "u32" | "i64" | "i32" => "integer".into(),
        "Value" => "value".into(),
        "ScheduleSpec" => "schedule name or inline schedule".into(),
        "Schedule" => "inline schedule".into(),
        "Reference" => "`bm25`, `{bm25: {k1, b}}` or `zero_shot`".into(),
        "DeviceSpec" => "`auto`, `cpu`, `cuda` or `cuda:N`".into(),
        "GridSpec" => "sub-grid".into(),
        "ConditionalAxes" => "`{when, ablations, zipped}`".into(),
        other => match types.enums.get(other) {
            Some(values) => values
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(" \\| "),
            None => other.to_string(),
        },
    }
}

fn parse_sources() -> Result<Types> {
    let mut types = Types::default();
    for (path, text) in SOURCES {
        let file = syn::parse_file(text).with_context(|| format!("parsing {path}"))?;
        for item in file.items {
            match item {
                Item::Struct(s) if matches!(s.vis, syn::Visibility::Public(_)) && derives_deserialize(&s.attrs) => {
                    let Fields::Named(named) = &s.fields else { continue };
                    let fields = named
                        .named
                        .iter()
                        .filter(|f| !serde_flag(&f.attrs, "skip") && !serde_flag(&f.attrs, "skip_deserializing"))
                        .map(|f| Field {
                            key: serde_rename(&f.attrs).unwrap_or_else(|| f.ident.as_ref().expect("named").to_string()),
                            ty: f.ty.clone(),
                            doc: doc(&f.attrs),
                        })
                        .collect();
                    types.structs.insert(s.ident.to_string(), (doc(&s.attrs), fields));
                }
                Item::Enum(e) if matches!(e.vis, syn::Visibility::Public(_)) && derives_deserialize(&e.attrs) => {
                    let rename_all = serde_value(&e.attrs, "rename_all");
                    let values = e
                        .variants
                        .iter()
                        .filter(|v| !serde_flag(&v.attrs, "skip") && !serde_flag(&v.attrs, "skip_deserializing"))
                        .map(|v| {
                            serde_rename(&v.attrs)
                                .unwrap_or_else(|| renamed(&v.ident.to_string(), rename_all.as_deref()))
                        })
                        .collect();
                    types.enums.insert(e.ident.to_string(), values);
                }
                _ => {}
            }
        }
    }
    Ok(types)
}

fn derives_deserialize(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("derive")
            && a.parse_args_with(syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
                .is_ok_and(|paths| paths.iter().any(|p| p.is_ident("Deserialize")))
    })
}

/// The `serde(...)` items of the attributes.
fn serde_items(attrs: &[Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| {
            a.parse_args_with(syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

fn serde_flag(attrs: &[Attribute], name: &str) -> bool {
    serde_items(attrs)
        .iter()
        .any(|m| matches!(m, Meta::Path(p) if p.is_ident(name)))
}

fn serde_value(attrs: &[Attribute], name: &str) -> Option<String> {
    serde_items(attrs).into_iter().find_map(|m| match m {
        Meta::NameValue(nv) if nv.path.is_ident(name) => match nv.value {
            Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

fn serde_rename(attrs: &[Attribute]) -> Option<String> {
    serde_value(attrs, "rename")
}

/// A variant's name under serde's `rename_all` (the two spellings the schema uses).
fn renamed(ident: &str, rule: Option<&str>) -> String {
    match rule {
        Some("lowercase") => ident.to_lowercase(),
        Some("snake_case") => {
            let mut out = String::new();
            for (i, c) in ident.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    out.push('_');
                }
                out.extend(c.to_lowercase());
            }
            out
        }
        _ => ident.to_string(),
    }
}

/// The doc comment, its lines joined into one paragraph.
fn doc(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    // Rustdoc links (`[`x`](path)`, `[`x`]`) read as plain code here.
    let text = lines.join(" ");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("[`") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find("`]") {
            Some(end) => {
                out.push_str(&after[..end + 1]);
                rest = &after[end + 2..];
                if rest.starts_with('(')
                    && let Some(close) = rest.find(')')
                {
                    rest = &rest[close + 1..];
                }
            }
            None => {
                out.push_str("[`");
                rest = after.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// A table cell: no line breaks, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|").replace("\\\\|", "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/keys.md");

    #[test]
    fn docs_keys_md_is_the_schema() {
        let generated = markdown().expect("the reference is generated");
        let written = std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("reading {DOC}: {e}"));
        assert!(
            written == generated,
            "docs/keys.md differs from the experiment schema: regenerate it with \
             `cargo run -- schema --markdown > docs/keys.md`"
        );
    }

    #[test]
    fn every_section_and_nested_key_is_listed() {
        let keys = key_paths().expect("keys");
        for key in [
            "name",
            "data.dataset",
            "data.synthetic.seed",
            "data.train_pairs.design",
            "data.max_test_queries",
            "model.backbone",
            "train.steps",
            "ot.teacher.steps",
            "retrieval.settings",
            "stats.unit",
            "references",
            "grids",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "a key listed twice: {keys:?}");
    }

    #[test]
    fn a_new_schema_field_is_a_new_row() {
        // The same walk over a schema with one more field finds it.
        let mut types = parse_sources().unwrap();
        let train = &mut types.structs.get_mut("TrainConfig").unwrap().1;
        train.push(Field {
            key: "new_key".into(),
            ty: syn::parse_str("usize").unwrap(),
            doc: "Added.".into(),
        });
        let defaults = serde_json::to_value(Experiment::default()).unwrap();
        let mut sections = vec![(String::new(), String::new(), Vec::new())];
        walk(&types, "Experiment", "", &defaults, &mut sections).unwrap();
        let row = sections
            .iter()
            .flat_map(|s| &s.2)
            .find(|r| r.key == "train.new_key")
            .expect("the new key");
        assert_eq!((row.ty.as_str(), row.default.as_str()), ("integer", "absent"));
    }

    #[test]
    fn enum_values_are_written_as_in_yaml() {
        assert_eq!(renamed("TransformerTiny", Some("snake_case")), "transformer_tiny");
        assert_eq!(renamed("Bh", Some("lowercase")), "bh");
        let types = parse_sources().unwrap();
        assert_eq!(types.enums["Correction"], ["none", "bonferroni", "holm", "bh", "by"]);
        assert!(
            !types.enums["TestKind"].contains(&"seeds".to_string()),
            "not configurable"
        );
    }
}
