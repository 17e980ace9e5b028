//! The report of a small real sweep: every file is there, text from data is escaped, the same
//! results give the same bytes, a partly finished sweep is marked, two folders compare over
//! their common queries, the notebook reads only columns clirlab writes, and report.html
//! loads in headless Chromium with its plots drawn.

use crate::common::cli;

use cli::{clirlab, text};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A grid point label no HTML or LaTeX writer may pass through as is.
const HOSTILE: &str = "<script>alert('x')</script> & 50%_{y}";

/// Runs the quickstart, reduced, into `root` with the extra `--set` values.
fn run_small(root: &Path, sets: &[&str]) {
    let mut args = vec![
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        root.to_str().unwrap(),
    ];
    let small = [
        "train.steps=30",
        "train.batch_size=16",
        "data.synthetic.docs_per_topic=12",
        "seeds=[1]",
    ];
    for s in small.iter().chain(sets) {
        args.extend(["--set", s]);
    }
    let out = clirlab(&args);
    assert!(out.status.success(), "{}", text(&out));
}

fn report(args: &[&str]) {
    let mut all = vec!["report", "--quiet"];
    all.extend_from_slice(args);
    let out = clirlab(&all);
    assert!(out.status.success(), "{}", text(&out));
}

/// The shared sweep (3 schedules × 1 seed, 8 topics), its `exponential` grid point relabelled
/// with [`HOSTILE`] in `sweep.json`, and its report written.
fn sweep() -> &'static Path {
    static SWEEP: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, dir) = SWEEP.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("first");
        run_small(&root, &["data.synthetic.topics=8"]);
        let dir = root.join("quickstart");
        let path = dir.join("sweep.json");
        let mut record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for cell in record["cells"].as_array_mut().unwrap() {
            if cell["assignment"]["schedule"] == "exponential" {
                cell["assignment"]["schedule"] = HOSTILE.into();
            }
        }
        std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()).unwrap();
        report(&[dir.to_str().unwrap()]);
        (tmp, dir)
    });
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files of a report folder (plots included), relative names → bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["", "plots"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = format!("{sub}/{}", path.file_name().unwrap().to_string_lossy());
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn report_files_are_complete_escaped_and_deterministic() {
    let dir = sweep().join("report");
    let names: Vec<String> = files(&dir).into_iter().map(|(n, _)| n).collect();
    for expected in [
        "/report.html",
        "/tables.tex",
        "/report.md",
        "/summary.csv",
        "/cells.csv",
        "/comparisons.csv",
        "/pairwise.csv",
        "plots/schedules.svg",
        "plots/loss.svg",
        "plots/metrics-related.svg",
        "plots/languages-related.svg",
        "plots/pairwise-related.svg",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    // Self-contained: no script, no stylesheet or image from elsewhere, links only within the page.
    let html = read(&dir.join("report.html"));
    assert!(!html.contains("<script"), "a script in report.html");
    assert!(!html.contains("<link") && !html.contains("src=") && !html.contains("url("));
    for (i, _) in html.match_indices("href=") {
        assert!(html[i..].starts_with("href=\"#"), "external link: {}", &html[i..i + 40]);
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; 50%_{y}"));
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(html.contains("SYNTHETIC") && html.contains("(baseline)") && html.contains("p<sub>adj</sub>"));
    // The SVG text plotters writes is escaped too.
    let legend = read(&dir.join("plots/loss.svg"));
    assert!(!legend.contains("<script") && legend.contains("&lt;script&gt;"));

    let tex = read(&dir.join("tables.tex"));
    for needle in [
        "\\usepackage{booktabs}",
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
        "\\textbf{",
        "\\textless{}script\\textgreater{}",
        "\\& 50\\%\\_\\{y\\}",
    ] {
        assert!(tex.contains(needle), "{needle} missing from tables.tex:\n{tex}");
    }
    assert_eq!(
        tex.matches("\\begin{table}").count(),
        tex.matches("\\end{table}").count()
    );

    // The same results give the same bytes, wherever the report goes.
    let again = tempfile::tempdir().unwrap();
    report(&[sweep().to_str().unwrap(), "--out", again.path().to_str().unwrap()]);
    assert_eq!(files(&dir), files(again.path()));
}

/// Copies the plan and the cells of a results folder (not its reports, which other tests
/// write meanwhile, nor the model weights, which the report does not read).
fn copy_results(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("cells")).unwrap();
    std::fs::copy(from.join("sweep.json"), to.join("sweep.json")).unwrap();
    for cell in std::fs::read_dir(from.join("cells")).unwrap() {
        let cell = cell.unwrap().path();
        if !cell.is_dir() {
            continue;
        }
        let target = to.join("cells").join(cell.file_name().unwrap());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(&cell).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_none_or(|e| e != "safetensors") {
                std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn a_partly_finished_sweep_is_reported_with_its_missing_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quickstart");
    copy_results(sweep(), &dir);
    let record: serde_json::Value = serde_json::from_str(&read(&dir.join("sweep.json"))).unwrap();
    let linear = record["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["assignment"]["schedule"] == "linear")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(dir.join("cells").join(&linear).join("result.json")).unwrap();
    report(&[dir.to_str().unwrap()]);
    let html = read(&dir.join("report/report.html"));
    assert!(
        html.contains("Cells without results (1)") && html.contains(&linear) && html.contains("no finished cell"),
        "missing cell not marked"
    );
    assert_eq!(html.matches("<svg").count(), 5, "two grid points still have every plot");
    let md = read(&dir.join("report/report.md"));
    assert!(md.contains("Cells without results") && md.contains("not run"), "{md}");
    let summary = read(&dir.join("report/summary.csv"));
    assert_eq!(
        summary.lines().count(),
        3,
        "header and the two finished grid points:\n{summary}"
    );
}

#[test]
fn two_folders_are_compared_over_their_common_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("second");
    // Fewer topics: a subset of the first folder's queries.
    run_small(
        &root,
        &[
            "data.synthetic.topics=6",
            "ablations.schedule=[cosine]",
            "stats.baseline.schedule=cosine",
        ],
    );
    let other = root.join("quickstart");
    report(&[sweep().to_str().unwrap(), "--against", other.to_str().unwrap()]);
    let out = sweep().join("report-vs-quickstart");
    let md = read(&out.join("report.md"));
    assert!(
        md.contains("first/quickstart vs second/quickstart") && md.contains("queries left out"),
        "{md}"
    );
    let mut reader = csv::Reader::from_path(out.join("summary.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let labels: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(rows.len(), 4, "{labels:?}");
    assert!(labels.contains(&"second/quickstart: schedule=cosine"), "{labels:?}");
    assert!(labels.contains(&"first/quickstart: schedule=constant"), "{labels:?}");
    let queries: BTreeSet<&str> = rows.iter().map(|r| &r[5]).collect();
    assert_eq!(queries.len(), 1, "every system over the same queries: {queries:?}");
    let baseline: Vec<&str> = rows.iter().filter(|r| &r[3] == "true").map(|r| &r[1]).collect();
    assert_eq!(baseline, ["first/quickstart: schedule=constant"]);
    let pairs = read(&out.join("pairwise.csv"));
    assert_eq!(pairs.lines().count(), 1 + 4 * 6, "6 pairs of 4 systems, 4 metrics");
    // The single-folder report is left alone.
    assert!(!read(&sweep().join("report/report.md")).contains("second/quickstart"));
}

/// The string literals of the Python list assigned to `name` in `code`.
fn python_list(code: &str, name: &str) -> Vec<String> {
    let start = code
        .find(&format!("{name} = ["))
        .unwrap_or_else(|| panic!("the notebook defines no {name}"));
    let end = start + code[start..].find(']').unwrap();
    code[start..end]
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(|l| l.split('"').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>())
        .collect()
}

fn csv_header(path: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader.headers().unwrap().iter().map(str::to_string).collect()
}

#[test]
fn notebook_reads_only_columns_clirlab_writes() {
    let path = cli::root().join("notebooks/analysis.ipynb");
    let nb: serde_json::Value = serde_json::from_str(&read(&path)).expect("the notebook is valid JSON");
    assert_eq!(nb["nbformat"], 4);
    let cells = nb["cells"].as_array().expect("cells");
    let source = |c: &serde_json::Value| -> String {
        c["source"]
            .as_array()
            .expect("source as a list of lines")
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect()
    };
    for c in cells {
        assert!(
            c["metadata"].is_object() && c["id"].is_string(),
            "nbformat 4.5 cell: {c}"
        );
        if c["cell_type"] == "code" {
            assert!(c["outputs"].is_array(), "{c}");
        }
    }
    assert_eq!(cells[0]["cell_type"], "markdown");
    let first = source(&cells[0]);
    assert!(first.contains("pip install") && first.contains("jupyter notebook notebooks/analysis.ipynb"));

    let code: String = cells
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| source(c) + "\n")
        .collect();
    // Every read goes through one of the declared column lists.
    let reads = code.matches("read_csv(").count();
    let checked = code.matches("usecols=METRICS_COLUMNS").count()
        + code.matches("usecols=CELLS_COLUMNS").count()
        + code.matches("usecols=SUMMARY_COLUMNS").count();
    assert!(
        reads == 3 && checked == reads,
        "{reads} read_csv calls, {checked} with a checked column list"
    );

    let dir = sweep();
    let cell = std::fs::read_dir(dir.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("metrics.csv").is_file())
        .unwrap();
    for (list, file) in [
        ("METRICS_COLUMNS", cell.join("metrics.csv")),
        ("CELLS_COLUMNS", dir.join("report/cells.csv")),
        ("SUMMARY_COLUMNS", dir.join("report/summary.csv")),
    ] {
        let header = csv_header(&file);
        let wanted = python_list(&code, list);
        assert!(!wanted.is_empty(), "{list} is empty");
        for col in &wanted {
            assert!(
                header.contains(col),
                "{list}: {} has no column {col} ({header:?})",
                file.display()
            );
        }
    }
}

/// Runs `cmd`, killing it after `limit`; stdout and stderr.
fn run_with_limit(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read_lossy = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (status.success(), read_lossy(&out), read_lossy(&err))
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Headless Chromium on `url` with a fresh profile, plus `extra` flags.
fn headless(browser: &Path, url: &str, extra: &[&str]) -> (bool, String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url);
    run_with_limit(&mut cmd, Duration::from_secs(120))
}

/// Log lines about the page itself. Chromium also logs, at ERROR level, that it finds no D-Bus,
/// no GPU or no sandbox in a container: that is the machine, not the page, so only console
/// messages (the page has no script, so any is a fault), uncaught errors, blocked or failed
/// loads, and lines naming the page count.
fn page_problems(stderr: &str, page: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Not allowed to load")
                || l.contains("Failed to load")
                || l.contains("net::ERR_")
                || l.contains(page)
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn report_html_loads_in_headless_chromium_and_its_plots_render() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CLIRLAB_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "CLIRLAB_REQUIRE_CHROMIUM=1 but no `chromium` on PATH (Debian: apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED report_html_loads_in_headless_chromium: no `chromium` on PATH (Debian: apt-get install chromium)"
        );
        return;
    };
    let page = sweep().join("report/report.html");
    let url = format!("file://{}", page.display());

    let (ok, dom, stderr) = headless(&browser, &url, &["--dump-dom"]);
    assert!(ok, "chromium --dump-dom failed:\n{stderr}");
    assert!(
        dom.contains("clirlab report"),
        "no page in the DOM:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert_eq!(dom.matches("<svg").count(), 5, "inline plots in the DOM");
    assert!(!dom.contains("<script"), "a script element in the DOM");
    let problems = page_problems(&stderr, "report.html");
    assert!(
        problems.is_empty(),
        "the page logged problems:\n{}",
        problems.join("\n")
    );

    // Tall enough for the whole page, so that every plot is in the picture.
    let shots = tempfile::tempdir().unwrap();
    let png_path = shots.path().join("report.png");
    let (ok, _, stderr) = headless(
        &browser,
        &url,
        &[
            &format!("--screenshot={}", png_path.display()),
            "--window-size=1280,7000",
        ],
    );
    assert!(ok && png_path.is_file(), "chromium --screenshot failed:\n{stderr}");
    let problems = page_problems(&stderr, "report.html");
    assert!(
        problems.is_empty(),
        "the page logged problems:\n{}",
        problems.join("\n")
    );

    let mut decoder = png::Decoder::new(std::fs::File::open(&png_path).unwrap());
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour screenshot expected, got {:?}", info.color_type);
    let pixels: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let distinct: BTreeSet<[u8; 3]> = pixels.iter().copied().collect();
    let non_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    // The plots' first three colours (bars, lines, dots); the table swatches alone are a few
    // hundred pixels, the bar charts tens of thousands.
    let palette = [[31, 119, 180], [255, 127, 14], [44, 160, 44]];
    let painted = pixels.iter().filter(|p| palette.contains(p)).count();
    assert!(
        distinct.len() > 100 && non_white > pixels.len() / 50 && painted > 20_000,
        "the screenshot looks blank or plotless: {} colours, {non_white} non-white and {painted} plot-coloured \
         pixels of {}",
        distinct.len(),
        pixels.len()
    );
    // To look at it: KEEP_REPORT_SCREENSHOT=/tmp/report.png cargo test --test it report::chromium
    if let Some(keep) = std::env::var_os("KEEP_REPORT_SCREENSHOT") {
        std::fs::copy(&png_path, keep).unwrap();
    }
}
