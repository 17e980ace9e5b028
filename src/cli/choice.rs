//! Library enums as flag values: [`Flag`] gives clap's `ValueEnum` to any enum that lists its
//! command-line names here ([`Choice`]), so the library itself never depends on clap.

use crate::model::tokenizer::Side;
use crate::run::launcher::slurm::Backend;
use crate::stats::{Correction, Format, MissingPolicy, TestKind};
use clap::ValueEnum;
use clap::builder::PossibleValue;

/// An enum a flag takes: every value, and each value's name and aliases on the command line.
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    const VALUES: &'static [Flag<Self>];
    /// The value's name on the command line.
    fn flag_name(self) -> &'static str;
    /// Further names that mean the same value.
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }
    /// What the value means, where `--help` should say it.
    fn help(self) -> Option<&'static str> {
        None
    }
}

/// A flag's value: a library enum that is a [`Choice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag<T>(pub T);

impl<T: Choice> ValueEnum for Flag<T> {
    fn value_variants<'a>() -> &'a [Self] {
        T::VALUES
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        let value = PossibleValue::new(self.0.flag_name()).aliases(self.0.aliases().iter().copied());
        Some(match self.0.help() {
            Some(help) => value.help(help),
            None => value,
        })
    }
}

impl Choice for TestKind {
    const VALUES: &'static [Flag<Self>] = &[
        Flag(TestKind::T),
        Flag(TestKind::Wilcoxon),
        Flag(TestKind::Randomization),
        Flag(TestKind::Bootstrap),
        Flag(TestKind::Tukey),
    ];
    fn flag_name(self) -> &'static str {
        self.name()
    }
}

impl Choice for Correction {
    const VALUES: &'static [Flag<Self>] = &[
        Flag(Correction::None),
        Flag(Correction::Bonferroni),
        Flag(Correction::Holm),
        Flag(Correction::Bh),
        Flag(Correction::By),
    ];
    fn flag_name(self) -> &'static str {
        self.name()
    }
}

impl Choice for MissingPolicy {
    const VALUES: &'static [Flag<Self>] = &[Flag(MissingPolicy::Error), Flag(MissingPolicy::Zero)];
    fn flag_name(self) -> &'static str {
        self.name()
    }
}

impl Choice for Format {
    const VALUES: &'static [Flag<Self>] = &[
        Flag(Format::Md),
        Flag(Format::Csv),
        Flag(Format::Json),
        Flag(Format::Tex),
    ];
    fn flag_name(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Tex => "tex",
        }
    }
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Format::Md => &["markdown"],
            Format::Tex => &["latex"],
            Format::Csv | Format::Json => &[],
        }
    }
}

impl Choice for Side {
    const VALUES: &'static [Flag<Self>] = &[Flag(Side::Query), Flag(Side::Passage)];
    fn flag_name(self) -> &'static str {
        match self {
            Side::Query => "query",
            Side::Passage => "passage",
        }
    }
    fn help(self) -> Option<&'static str> {
        Some(match self {
            Side::Query => "The searcher's query",
            Side::Passage => "A document passage being searched",
        })
    }
}

impl Choice for Backend {
    const VALUES: &'static [Flag<Self>] = &[Flag(Backend::Slurm)];
    fn flag_name(self) -> &'static str {
        self.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag name (and alias) means, to the library, the value it stands for.
    #[test]
    fn flag_names_are_the_library_names() {
        for Flag(kind) in TestKind::VALUES {
            assert_eq!(kind.flag_name(), kind.name());
        }
        for Flag(c) in Correction::VALUES {
            let yaml: Correction = serde_json::from_value(serde_json::json!(c.flag_name())).unwrap();
            assert_eq!(yaml, *c);
        }
        for Flag(m) in MissingPolicy::VALUES {
            assert_eq!(m.flag_name(), m.name());
        }
        for Flag(f) in Format::VALUES {
            for name in std::iter::once(f.flag_name()).chain(f.aliases().iter().copied()) {
                assert_eq!(name.parse::<Format>().ok(), Some(*f), "{name}");
            }
        }
        for Flag(side) in Side::VALUES {
            let yaml: Side = serde_json::from_value(serde_json::json!(side.flag_name())).unwrap();
            assert_eq!(yaml, *side);
        }
    }
}
