//! The report's plots as SVG (plotters' SVG backend: text stays `<text>` elements, so no font
//! files are needed): p(t) of each schedule, training loss per cell, each metric per grid point
//! with its interval, per-language bars and the pairwise significance matrix.

use super::model::{ALPHA, ALPHA_STRICT, CONFIDENCE, Report, Task};
use super::slug;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Which part of the report a plot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Schedules,
    Loss,
    /// Index into [`Report::tasks`].
    Metrics(usize),
    Languages(usize),
    Pairwise(usize),
}

pub struct Plot {
    /// File name under `plots/`.
    pub file: String,
    pub section: Section,
    pub title: String,
    /// What the reader needs to read it.
    pub caption: String,
    pub svg: String,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";
/// Characters of a label shown on an axis (the tables have them in full).
const LABEL_CHARS: usize = 36;
const LEGEND_COLUMN: u32 = 310;
const LEGEND_ROW: u32 = 18;
const GRID: RGBColor = RGBColor(232, 232, 232);
const GREY: RGBColor = RGBColor(120, 120, 120);

/// A categorical palette (that of matplotlib's "tab10"), one colour per grid point.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of grid point (or schedule) `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Every plot of the report, in the order the HTML shows them.
pub fn render(r: &Report) -> Result<Vec<Plot>> {
    let mut plots = Vec::new();
    if !r.schedules.is_empty() {
        plots.push(Plot {
            file: "schedules.svg".into(),
            section: Section::Schedules,
            title: "Curriculum schedules".into(),
            caption: "Share p(t) of cross-lingual pairs in a training batch over training progress t, for each \
                      schedule of the grid."
                .into(),
            svg: schedules(r)?,
        });
    }
    if r.variants.iter().any(|v| v.cells.iter().any(|c| !c.loss.is_empty())) {
        let (svg, window) = loss(r)?;
        plots.push(Plot {
            file: "loss.svg".into(),
            section: Section::Loss,
            title: "Training loss".into(),
            caption: format!(
                "Training loss of every finished cell (one line per seed, coloured by grid point), as a running \
                 mean over {window} step{}.",
                if window == 1 { "" } else { "s" }
            ),
            svg,
        });
    }
    let mut used = Vec::new();
    for (t, task) in r.tasks.iter().enumerate() {
        // Distinct file names even where two task names have the same slug.
        let mut name = slug(&task.name);
        if used.contains(&name) {
            name = format!("{name}-{t}");
        }
        used.push(name.clone());
        if task.rows.is_empty() {
            continue;
        }
        plots.push(Plot {
            file: format!("metrics-{name}.svg"),
            section: Section::Metrics(t),
            title: format!("Metrics on task {}", task.name),
            caption: format!(
                "Mean over {} queries with its {:.0}% interval, per grid point. The vertical grey line is the \
                 baseline's mean; a filled dot differs from the baseline at corrected p < {ALPHA}, a hollow one does \
                 not (or was not tested).",
                task.queries,
                CONFIDENCE * 100.0
            ),
            svg: metrics(r, task)?,
        });
        if !task.languages.is_empty() {
            plots.push(Plot {
                file: format!("languages-{name}.svg"),
                section: Section::Languages(t),
                title: format!("Per language on task {}", task.name),
                caption: format!(
                    "Mean of each metric per query language, one bar per grid point, with its {:.0}% interval.",
                    CONFIDENCE * 100.0
                ),
                svg: languages(r, task)?,
            });
        }
        if !task.pairwise.is_empty() {
            plots.push(Plot {
                file: format!("pairwise-{name}.svg"),
                section: Section::Pairwise(t),
                title: format!("Pairwise significance on task {}", task.name),
                caption: format!(
                    "Every pair of grid points (row against column), {} test, {} correction over all pairs of one \
                     metric. Green: the row scores higher, red: lower, at corrected p < {ALPHA} (dark: p < \
                     {ALPHA_STRICT}); grey: no significant difference. Each square shows the corrected p-value.",
                    r.test().name(),
                    r.correction().name()
                ),
                svg: pairwise(r, task)?,
            });
        }
    }
    Ok(plots)
}

/// Draws into a fresh white SVG of `width` × `height` pixels.
fn svg(width: u32, height: u32, draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn legend_height(entries: usize) -> u32 {
    let columns = (WIDTH / LEGEND_COLUMN).max(1) as usize;
    entries.div_ceil(columns) as u32 * LEGEND_ROW + 12
}

/// A colour key: a square and a label per entry, in columns.
fn legend(area: &Area, entries: &[(String, RGBColor)]) -> Result<()> {
    let columns = (area.dim_in_pixel().0 / LEGEND_COLUMN).max(1) as usize;
    for (i, (label, c)) in entries.iter().enumerate() {
        let x = 16 + (i % columns) as i32 * LEGEND_COLUMN as i32;
        let y = 4 + (i / columns) as i32 * LEGEND_ROW as i32;
        area.draw(&Rectangle::new([(x, y + 3), (x + 12, y + 15)], c.filled()))?;
        area.draw(&Text::new(truncate(label, 46), (x + 18, y + 3), font(13)))?;
    }
    Ok(())
}

/// The grid points of `task` as legend entries, in table order.
fn variant_entries(r: &Report, task: &Task) -> Vec<(String, RGBColor)> {
    task.rows
        .iter()
        .map(|row| (r.variants[row.variant].label.clone(), colour(row.variant)))
        .collect()
}

fn schedules(r: &Report) -> Result<String> {
    let entries: Vec<(String, RGBColor)> = r
        .schedules
        .iter()
        .enumerate()
        .map(|(i, s)| (s.label.clone(), colour(i)))
        .collect();
    let key = legend_height(entries.len());
    let height = 380 + key;
    svg(WIDTH, height, |root| {
        let (plot, below) = root.split_vertically(height - key);
        let mut chart = ChartBuilder::on(&plot)
            .caption("Curriculum schedules p(t)", font(16))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .x_desc("training progress t")
            .y_desc("cross-lingual share p(t)")
            .label_style(font(12))
            .draw()?;
        for (i, s) in r.schedules.iter().enumerate() {
            let points = (0..=400).map(|k| {
                let t = k as f64 / 400.0;
                (t, s.schedule.share(t))
            });
            chart.draw_series(LineSeries::new(points, colour(i).stroke_width(2)))?;
        }
        legend(&below, &entries)
    })
}

/// Centred running mean over `window` points (shorter at the ends).
fn running_mean(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    (0..points.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(points.len()));
            let m = points[a..b].iter().map(|p| p.1).sum::<f64>() / (b - a) as f64;
            (points[i].0, m)
        })
        .collect()
}

/// The loss plot and its smoothing window.
fn loss(r: &Report) -> Result<(String, usize)> {
    let longest = r
        .variants
        .iter()
        .flat_map(|v| v.cells.iter().map(|c| c.loss.len()))
        .max()
        .unwrap_or(0);
    // Raw per-step losses are noisy; about 50 windows over the run keep the trend readable.
    let window = (longest / 50).max(1) | 1;
    let curves: Vec<(usize, Vec<(f64, f64)>)> = r
        .variants
        .iter()
        .enumerate()
        .flat_map(|(i, v)| v.cells.iter().map(move |c| (i, running_mean(&c.loss, window))))
        .map(|(i, points)| {
            (
                i,
                points
                    .into_iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect(),
            )
        })
        .collect();
    let finite = curves.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_lo, mut y_hi) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in finite {
        x_max = x_max.max(*x);
        y_lo = y_lo.min(*y);
        y_hi = y_hi.max(*y);
    }
    if !(y_lo.is_finite() && y_hi.is_finite()) {
        (y_lo, y_hi) = (0.0, 1.0);
    }
    let pad = ((y_hi - y_lo) * 0.05).max(1e-3);
    let entries: Vec<(String, RGBColor)> = r
        .variants
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.cells.is_empty())
        .map(|(i, v)| (v.label.clone(), colour(i)))
        .collect();
    let key = legend_height(entries.len());
    let height = 420 + key;
    let svg = svg(WIDTH, height, |root| {
        let (plot, below) = root.split_vertically(height - key);
        let mut chart = ChartBuilder::on(&plot)
            .caption("Training loss per cell", font(16))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, (y_lo - pad)..(y_hi + pad))?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .x_desc("step")
            .y_desc(format!("loss (running mean over {window})"))
            .label_style(font(12))
            .draw()?;
        for (i, points) in &curves {
            chart.draw_series(LineSeries::new(points.iter().copied(), colour(*i).stroke_width(1)))?;
        }
        legend(&below, &entries)
    })?;
    Ok((svg, window))
}

/// The lowest and highest finite value of `values`, padded; `fallback` when there is none.
fn padded_range(values: impl Iterator<Item = f64>, fallback: (f64, f64)) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return fallback;
    }
    let pad = ((hi - lo) * 0.08).max(0.005);
    (lo - pad, hi + pad)
}

/// One panel per metric: a dot at each grid point's mean, a bar over its interval.
fn metrics(r: &Report, task: &Task) -> Result<String> {
    let k = task.rows.len();
    let labels: Vec<String> = task
        .rows
        .iter()
        .map(|row| truncate(&r.variants[row.variant].label, LABEL_CHARS))
        .collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32 * 6 + 24;
    let panel = 90 + 26 * k as u32;
    svg(WIDTH, 2 * panel, |root| {
        let panels = root.split_evenly((2, 2));
        for (m, area) in panels.iter().enumerate().take(r.metrics.len()) {
            let values = task
                .rows
                .iter()
                .flat_map(|row| [row.stats[m].ci.low, row.stats[m].ci.high, row.stats[m].ci.mean]);
            let (lo, hi) = padded_range(values, (0.0, 1.0));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{} (task {})", r.metrics[m], task.name), font(15))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(label_width)
                .build_cartesian_2d(lo..hi, 0f64..k as f64)?;
            chart
                .configure_mesh()
                .light_line_style(GRID)
                .disable_y_mesh()
                .y_labels(0)
                .x_labels(6)
                .x_desc(format!("mean, {:.0}% CI", CONFIDENCE * 100.0))
                .label_style(font(12))
                .draw()?;
            if let Some(base) = r.baseline.and_then(|b| task.row(b)) {
                let x = base.stats[m].ci.mean;
                if x.is_finite() {
                    let line = vec![(x, 0.0), (x, k as f64)];
                    chart.draw_series(std::iter::once(PathElement::new(line, GREY.stroke_width(1))))?;
                }
            }
            for (idx, row) in task.rows.iter().enumerate() {
                let s = &row.stats[m];
                // The first row on top.
                let y = (k - idx) as f64 - 0.5;
                let c = colour(row.variant);
                if s.ci.low.is_finite() && s.ci.high.is_finite() {
                    let bar = vec![(s.ci.low, y), (s.ci.high, y)];
                    chart.draw_series(std::iter::once(PathElement::new(bar, c.stroke_width(3))))?;
                }
                if s.ci.mean.is_finite() {
                    let significant = s.vs_baseline.as_ref().is_some_and(|c| c.p_adjusted < ALPHA);
                    let style = if significant { c.filled() } else { WHITE.filled() };
                    chart.draw_series([
                        Circle::new((s.ci.mean, y), 6, style),
                        Circle::new((s.ci.mean, y), 6, c.stroke_width(2)),
                    ])?;
                }
                // Row names left of the axis, placed in pixels (the axis is numeric).
                let (x, y) = chart.backend_coord(&(lo, y));
                let style = font(12).pos(Pos::new(HPos::Right, VPos::Center));
                root.draw(&Text::new(labels[idx].clone(), (x - 8, y), style))?;
            }
        }
        Ok(())
    })
}

/// One panel per metric: per query language, a bar per grid point with its interval.
fn languages(r: &Report, task: &Task) -> Result<String> {
    let langs: Vec<&str> = {
        let mut l: Vec<&str> = task.languages.iter().map(|l| l.lang.as_str()).collect();
        l.dedup();
        l
    };
    let k = task.rows.len();
    let entries = variant_entries(r, task);
    let key = legend_height(entries.len());
    let panel = 300;
    let height = 2 * panel + key;
    svg(WIDTH, height, |root| {
        let (top, below) = root.split_vertically(2 * panel);
        for (m, area) in top.split_evenly((2, 2)).iter().enumerate().take(r.metrics.len()) {
            let rows = task.languages.iter().map(|l| &l.metrics[m]);
            let (_, hi) = padded_range(rows.flat_map(|ci| [ci.mean, ci.high]), (0.0, 1.0));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{} per language (task {})", r.metrics[m], task.name), font(15))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0f64..langs.len() as f64, 0f64..hi.max(0.01))?;
            chart
                .configure_mesh()
                .light_line_style(GRID)
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(6)
                .label_style(font(12))
                .draw()?;
            let slot = 0.8 / k as f64;
            for (g, lang) in langs.iter().enumerate() {
                for (idx, row) in task.rows.iter().enumerate() {
                    let Some(l) = task
                        .languages
                        .iter()
                        .find(|l| l.lang == *lang && l.variant == row.variant)
                    else {
                        continue;
                    };
                    let ci = &l.metrics[m];
                    let x0 = g as f64 + 0.1 + idx as f64 * slot;
                    let (x1, xc) = (x0 + slot * 0.85, x0 + slot * 0.425);
                    if ci.mean.is_finite() {
                        let bar = Rectangle::new([(x0, 0.0), (x1, ci.mean)], colour(row.variant).filled());
                        chart.draw_series(std::iter::once(bar))?;
                    }
                    if ci.low.is_finite() && ci.high.is_finite() {
                        let whisker = vec![(xc, ci.low.max(0.0)), (xc, ci.high)];
                        chart.draw_series(std::iter::once(PathElement::new(whisker, BLACK.stroke_width(1))))?;
                    }
                }
                // Language names under their groups, placed in pixels (the axis is numeric).
                let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
                let style = font(13).pos(Pos::new(HPos::Center, VPos::Top));
                root.draw(&Text::new(lang.to_string(), (x, y + 8), style))?;
            }
        }
        legend(&below, &entries)
    })
}

/// Fill of a pairwise square: the row against the column.
fn pair_colour(diff: f64, p_adjusted: f64) -> RGBColor {
    match (diff > 0.0, p_adjusted) {
        (true, p) if p < ALPHA_STRICT => RGBColor(26, 130, 60),
        (true, p) if p < ALPHA => RGBColor(140, 205, 150),
        (false, p) if p < ALPHA_STRICT => RGBColor(190, 40, 40),
        (false, p) if p < ALPHA => RGBColor(240, 150, 140),
        _ => RGBColor(225, 225, 225),
    }
}

/// One matrix per metric: the corrected p-value of every pair, coloured by its direction.
fn pairwise(r: &Report, task: &Task) -> Result<String> {
    let k = task.rows.len();
    let cell = (360 / k as i32).clamp(18, 48);
    let matrix = cell * k as i32;
    let panel = (matrix + 80) as u32;
    let entries: Vec<(String, RGBColor)> = task
        .rows
        .iter()
        .map(|row| {
            (
                format!("#{} {}", row.variant + 1, r.variants[row.variant].label),
                colour(row.variant),
            )
        })
        .collect();
    let key = legend_height(entries.len());
    let height = 2 * panel + key;
    svg(WIDTH, height, |root| {
        let (top, below) = root.split_vertically(2 * panel);
        for (m, area) in top.split_evenly((2, 2)).iter().enumerate().take(r.metrics.len()) {
            let (w, _) = area.dim_in_pixel();
            let x0 = (w as i32 - matrix) / 2 + 12;
            let y0 = 52;
            let title = font(15).pos(Pos::new(HPos::Center, VPos::Top));
            area.draw(&Text::new(
                format!("{} (task {})", r.metrics[m], task.name),
                (w as i32 / 2, 8),
                title,
            ))?;
            let small = |size| font(size).pos(Pos::new(HPos::Center, VPos::Center));
            for i in 0..k {
                // Numbered as in the tables: the grid point's place in the grid.
                let name = format!("#{}", task.rows[i].variant + 1);
                let (cx, cy) = (x0 + i as i32 * cell + cell / 2, y0 + i as i32 * cell + cell / 2);
                area.draw(&Text::new(name.clone(), (cx, y0 - 12), small(12)))?;
                area.draw(&Text::new(name, (x0 - 16, cy), small(12)))?;
                for j in 0..k {
                    let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                    let square = [(x + 1, y + 1), (x + cell - 1, y + cell - 1)];
                    let centre = (x + cell / 2, y + cell / 2);
                    let Some(c) = task.pair(m, i, j) else {
                        area.draw(&Rectangle::new(square, WHITE.filled()))?;
                        area.draw(&Text::new("—", centre, small(11)))?;
                        continue;
                    };
                    // Stored pairs hold (lower row, higher row): flip for the other half.
                    let diff = if i < j { -c.mean_diff } else { c.mean_diff };
                    area.draw(&Rectangle::new(square, pair_colour(diff, c.p_adjusted).filled()))?;
                    if cell >= 30 {
                        // Light text on the dark squares.
                        let ink = if c.p_adjusted < ALPHA_STRICT { WHITE } else { BLACK };
                        let style = small(12).color(&ink);
                        area.draw(&Text::new(short_p(c.p_adjusted), centre, style))?;
                    }
                }
            }
        }
        legend(&below, &entries)
    })
}

/// A p-value in at most five characters, for a square of the matrix.
fn short_p(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else if p < 0.001 {
        "<.001".into()
    } else {
        format!("{p:.3}").trim_start_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_keeps_length_and_smooths() {
        let p: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { 0.0 })).collect();
        let m = running_mean(&p, 3);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0], (0.0, 0.5));
        assert!((m[2].1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(running_mean(&p, 1), p);
    }

    #[test]
    fn short_p_fits_a_square() {
        assert_eq!(short_p(0.0421), ".042");
        assert_eq!(short_p(1.0), "1.000");
        assert_eq!(short_p(1e-9), "<.001");
    }

    #[test]
    fn labels_are_truncated_by_characters() {
        assert_eq!(truncate("αβγδε", 3), "αβ…");
        assert_eq!(truncate("ab", 3), "ab");
    }
}
