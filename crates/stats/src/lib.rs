//! Paired significance tests over per-query values, effect sizes, multiple-comparison
//! corrections, two-way ANOVA with Tukey HSD, and the comparison layer behind
//! `clirlab compare` and the experiment report.
//!
//! Conventions shared by every test here:
//!
//! * Inputs are paired per-query values in the same query order: `x` is the baseline, `y` the
//!   system. Differences are `d = y − x`, so a positive mean difference means the system scores
//!   higher than the baseline.
//! * Every test is two-sided.
//! * Definitions follow scipy where scipy has the test (`ttest_rel`, `wilcoxon`, `bootstrap`,
//!   `studentized_range`), statsmodels `multipletests` for the corrections and `anova_lm` for
//!   the two-way ANOVA, and Sakai (2018, "Laboratory Experiments in IR") for the randomization test and for Tukey's
//!   HSD on the two-way residual; each item documents where it deviates.
//! * Degenerate inputs never produce NaN p-values: when every difference is zero each test
//!   reports p = 1, statistic 0, effect size 0 and the interval [0, 0]. Quantities that are
//!   undefined (e.g. a standard deviation from one query) are NaN, which JSON shows as `null`.

#[macro_use]
mod error;

mod anova;
mod bootstrap;
pub mod calibration;
mod compare;
mod correction;
mod descriptive;
mod format;
mod ptukey;
mod randomization;
mod rng;
mod seeds;
mod ttest;
mod wilcoxon;

pub use anova::{TukeyPair, TwoWayAnova, tukey_hsd, two_way_anova};
pub use bootstrap::{Bootstrap, BootstrapMethod, BootstrapOptions, bootstrap_test};
pub use compare::{CompareOptions, Comparison, MetricTable, MissingPolicy, TestKind, compare, compare_table};
pub use correction::{Correction, Family, adjust};
pub use descriptive::{EffectSize, MeanCi, effect_sizes, hedges_correction, mean_ci, t_quantile};
pub use error::{Error, Result};
pub use format::tex_escape;
pub use format::{Format, format_comparisons};
pub use ptukey::{ptukey, qtukey};
pub use randomization::{Randomization, RandomizationOptions, randomization_test};
pub use seeds::{
    MAX_QUERIES, MAX_SEEDS, PlanComponents, PowerRow, QuerySearch, Runs, SeedComponents, SeedSource, SeedTest, Unit,
    Verdict, min_detectable_difference, noncentral_t_power, per_comparison_alpha, pooled_components, power_table,
    satterthwaite, seed_components, seed_test, seed_test_with, tost_p,
};
pub use ttest::{PairedT, paired_t};
pub use wilcoxon::{Wilcoxon, WilcoxonOptions, ZeroMethod, wilcoxon};
