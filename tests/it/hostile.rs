//! Hostile and careless inputs, one test per class: schedules whose parameters overflow,
//! names read back from disk that would leave the results folder, links and folders that are
//! not clirlab's, locks that are not locks, plans that collide, records edited by hand,
//! spreadsheet formulas, rules that match nothing, variables and values that cannot be used,
//! paths that are not files. Each ends in a clear error naming the file, flag or variable
//! and the key or line, or is handled as documented; nothing is written outside the results
//! root; nothing hangs.

use crate::common::cli::{command, root, run_quickstart, text};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// A small quickstart, one seed.
const SMALL: &[&str] = &["train.steps=30", "data.synthetic.topics=8", "seeds=[1]"];

fn sets(extra: &[&str]) -> Vec<String> {
    SMALL
        .iter()
        .chain(extra)
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

/// `run` of the small quickstart into `results`, with more `--set` flags.
fn run_small(results: &Path, extra: &[&str]) -> Output {
    let args = sets(extra);
    run_quickstart(results, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `plan` of `file` with the small settings and more `--set` flags (it writes nothing: the
/// folder is for the reader); its output.
fn plan(file: &str, _results: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["plan".to_string(), file.to_string()];
    args.extend(sets(extra));
    command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap()
}

fn fails(out: &Output) -> String {
    let said = text(out);
    assert!(!out.status.success(), "expected a failure: {said}");
    said
}

fn succeeds(out: &Output) -> String {
    let said = text(out);
    assert!(out.status.success(), "expected success: {said}");
    said
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A finished one-cell quickstart in `tmp/results`; its results folder and the cell id.
fn finished_sweep(tmp: &Path) -> (PathBuf, String) {
    succeeds(&run_small(&tmp.join("results"), &["ablations.schedule=[constant]"]));
    let dir = tmp.join("results/quickstart");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let id = record["cells"][0]["id"].as_str().unwrap().to_string();
    (dir, id)
}

#[test]
fn steep_exponential_schedules_stay_shares() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("steep.yaml");
    std::fs::write(&file, "kind: exponential\nstart: 0\nend: 1\nrate: 1000\n").unwrap();
    let said = succeeds(&command(&["schedule", file.to_str().unwrap()]).output().unwrap());
    assert!(!said.contains("NaN") && said.contains("1.000"), "{said}");
    // It trains, where the sampler once panicked on the NaN share.
    let out = run_small(
        tmp.path(),
        &["ablations.schedule=[{kind: exponential, start: 0, end: 1, rate: 1000}, constant]"],
    );
    let said = succeeds(&out);
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn names_read_from_disk_never_leave_the_results_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = finished_sweep(tmp.path());
    let sweep = dir.join("sweep.json");
    let original = std::fs::read_to_string(&sweep).unwrap();
    let dir_arg = dir.to_str().unwrap();
    for hostile in ["../../../../x", "../escape", "/tmp/abs", ".hidden", "a/b"] {
        let bad = original.replace(&format!("\"id\": \"{id}\""), &format!("\"id\": {hostile:?}"));
        assert_ne!(bad, original);
        std::fs::write(&sweep, &bad).unwrap();
        let before = tree(tmp.path());
        for args in [
            vec!["run-cell", "--quiet", dir_arg, hostile],
            vec!["status", dir_arg],
            vec!["report", dir_arg],
        ] {
            let said = fails(&command(&args).output().unwrap());
            assert!(
                said.contains("sweep.json: key `cells[].id`") && said.contains("plain folder name"),
                "{args:?}: {said}"
            );
        }
        assert_eq!(tree(tmp.path()), before, "{hostile}: something was written");
    }
    std::fs::write(&sweep, original).unwrap();
    succeeds(&command(&["status", dir_arg]).output().unwrap());
}

#[test]
fn reports_delete_only_their_own_plots_and_write_through_no_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = finished_sweep(tmp.path());
    let dir_arg = dir.to_str().unwrap();
    // A folder the user names: their own SVG files stay, twice over.
    let user = tmp.path().join("mine");
    std::fs::create_dir_all(user.join("plots")).unwrap();
    std::fs::write(user.join("plots/holiday.svg"), "<svg/>").unwrap();
    for _ in 0..2 {
        succeeds(
            &command(&["report", dir_arg, "--out", user.to_str().unwrap()])
                .output()
                .unwrap(),
        );
        assert!(user.join("plots/holiday.svg").is_file());
        assert!(user.join("plots/loss.svg").is_file());
    }
    // The leftovers of a report killed mid-write are cleaned by the next one.
    let plots = dir.join("report/plots");
    std::fs::write(plots.join(".tmp-Ab12Cd"), "half a plot").unwrap();
    succeeds(&command(&["report", dir_arg]).output().unwrap());
    assert!(!plots.join(".tmp-Ab12Cd").exists());
    // A report folder that links elsewhere is not written through.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("plots")).unwrap();
    std::fs::write(elsewhere.join("plots/other.svg"), "<svg/>").unwrap();
    std::fs::remove_dir_all(dir.join("report")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("report")).unwrap();
    let said = fails(&command(&["report", dir_arg]).output().unwrap());
    assert!(said.contains("report is a symbolic link"), "{said}");
    assert_eq!(tree(&elsewhere), ["plots", "plots/other.svg"]);
}

#[test]
fn cell_folders_that_link_elsewhere_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = finished_sweep(tmp.path());
    let cell = dir.join("cells").join(&id);
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::rename(&cell, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &cell).unwrap();
    let before = tree(&elsewhere);
    let said = fails(&run_small(
        &tmp.path().join("results"),
        &["ablations.schedule=[constant]"],
    ));
    assert!(said.contains(&format!("{id} is a symbolic link")), "{said}");
    let said = text(&command(&["status", dir.to_str().unwrap()]).output().unwrap());
    assert!(said.contains("symbolic link"), "{said}");
    assert_eq!(tree(&elsewhere), before);
}

#[test]
fn data_set_names_are_names() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["../outside/evil", "/etc", "a/b", ".."] {
        let said = fails(&plan(
            "experiments/quickstart.yaml",
            tmp.path(),
            &[&format!("data.dataset={bad}")],
        ));
        assert!(
            said.contains(&format!("--set data.dataset={bad}: key `data.dataset`")) && said.contains("not a path"),
            "{said}"
        );
    }
}

#[test]
fn locks_that_are_not_locks_are_errors_and_waits_say_who() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let (dir, id) = finished_sweep(tmp.path());
    std::fs::remove_file(dir.join("cells").join(&id).join("result.json")).unwrap();
    let lock = dir.join("cells").join(format!("{id}.lock"));
    // A folder, and a malformed owner: errors naming the lock, at once.
    std::fs::create_dir(&lock).unwrap();
    let started = Instant::now();
    let said = fails(&run_small(&results, &["ablations.schedule=[constant]"]));
    assert!(said.contains(&format!("{id}.lock: a folder")), "{said}");
    assert!(started.elapsed() < Duration::from_secs(60));
    std::fs::remove_dir(&lock).unwrap();
    std::fs::write(&lock, "owner=me").unwrap();
    let said = fails(&run_small(&results, &["ablations.schedule=[constant]"]));
    assert!(
        said.contains(&format!("{id}.lock: found \"owner=me\", expected a lock file")),
        "{said}"
    );
    // A live holder on another host: `run` waits, and says for whom and since when, also
    // under `--quiet` (a silent wait would look like a hang).
    std::fs::write(&lock, "4242 some-other-node").unwrap();
    let args = sets(&["ablations.schedule=[constant]"]);
    let mut child = command(
        &[
            &[
                "run",
                "experiments/quickstart.yaml",
                "--quiet",
                "--results",
                results.to_str().unwrap(),
            ][..],
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    child.kill().unwrap();
    let said = text(&child.wait_with_output().unwrap());
    assert!(
        said.contains("waiting for the cell, run by pid 4242 on some-other-node, since 20"),
        "{said}"
    );
    assert_eq!(
        said.matches("waiting for the cell").count(),
        1,
        "said once a minute, not in a loop: {said}"
    );
}

#[test]
fn two_experiments_with_one_name_do_not_share_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    finished_sweep(tmp.path());
    let other = tmp.path().join("other.yaml");
    let text = std::fs::read_to_string(root().join("experiments/quickstart.yaml")).unwrap();
    std::fs::write(&other, text).unwrap();
    let mut args = vec![
        "run".to_string(),
        other.to_str().unwrap().into(),
        "--quiet".into(),
        "--results".into(),
    ];
    args.push(results.to_str().unwrap().into());
    args.extend(sets(&["seeds=[7]", "name=quickstart"]));
    let said = fails(
        &command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .unwrap(),
    );
    assert!(
        said.contains("holds the plan of experiments/quickstart.yaml")
            && said.contains("other.yaml names the same experiment"),
        "{said}"
    );
    // The same file again, with another plan, is the same experiment growing.
    succeeds(&run_small(&results, &["ablations.schedule=[constant]", "seeds=[1, 2]"]));
}

#[test]
fn edited_and_damaged_records_are_said_and_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = finished_sweep(tmp.path());
    let result = dir.join("cells").join(&id).join("result.json");
    let original = std::fs::read_to_string(&result).unwrap();
    assert!(original.contains("\"record_sha256\""), "{original}");
    let dir_arg = dir.to_str().unwrap();
    // Edited means, truncated, empty, another cell's.
    let edited = {
        let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
        let means = v["means"].as_object_mut().unwrap();
        for (_, metrics) in means.iter_mut() {
            for (_, x) in metrics.as_object_mut().unwrap().iter_mut() {
                *x = serde_json::json!(0.999);
            }
        }
        serde_json::to_string_pretty(&v).unwrap()
    };
    for (damage, text_now, why) in [
        ("edited", edited, "differs from its recorded SHA-256"),
        (
            "truncated",
            original[..original.len() / 2].to_string(),
            "not a cell record",
        ),
        ("empty", "{}".to_string(), "not a cell record"),
        (
            "foreign",
            original.replace(&id, "another_s1_00000000"),
            "the record of cell",
        ),
    ] {
        std::fs::write(&result, text_now).unwrap();
        let said = succeeds(&command(&["status", dir_arg]).output().unwrap());
        assert!(
            said.contains("1 damaged") && said.contains(why) && said.contains("result.json"),
            "{damage}: {said}"
        );
    }
    let said = succeeds(&run_small(
        &tmp.path().join("results"),
        &["ablations.schedule=[constant]"],
    ));
    assert!(said.contains("damaged") && said.contains(&id), "{said}");
    succeeds(&command(&["status", dir_arg]).output().unwrap());
    let summary = std::fs::read_to_string(dir.join("report/cells.csv")).unwrap();
    assert!(!summary.contains("0.999"), "{summary}");
}

#[test]
fn spreadsheet_formulas_in_csv_files_are_text() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("experiments");
    std::fs::create_dir_all(tmp.path().join("schedules")).unwrap();
    std::fs::create_dir_all(&exp).unwrap();
    let formula = "=HYPERLINK(1)";
    std::fs::write(
        tmp.path().join(format!("schedules/{formula}.yaml")),
        "kind: linear\nstart: 0\nend: 1\n",
    )
    .unwrap();
    let file = exp.join("f.yaml");
    std::fs::write(
        &file,
        std::fs::read_to_string(root().join("experiments/quickstart.yaml")).unwrap(),
    )
    .unwrap();
    let results = tmp.path().join("results");
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--results",
        results.to_str().unwrap(),
    ];
    let extra = sets(&["name=f", &format!("ablations.schedule=[constant, {formula:?}]")]);
    args.extend(extra.iter().map(String::as_str));
    succeeds(&command(&args).output().unwrap());
    let cells = std::fs::read_to_string(results.join("f/report/cells.csv")).unwrap();
    assert!(cells.contains(&format!("'{formula}")), "{cells}");
    assert!(!cells.contains(&format!(",{formula}")), "{cells}");
    // Every CSV file the run wrote, the cells' own included.
    let csvs: Vec<String> = tree(&results).into_iter().filter(|p| p.ends_with(".csv")).collect();
    assert!(csvs.iter().any(|p| p.ends_with("metrics.csv")), "{csvs:?}");
    assert!(csvs.iter().any(|p| p.ends_with("summary.csv")), "{csvs:?}");
    for csv in csvs {
        for line in std::fs::read_to_string(results.join(&csv)).unwrap().lines() {
            for field in line.split(',') {
                assert!(!field.trim_matches('"').starts_with(['=', '@']), "{csv}: {line}");
            }
        }
    }
}

#[test]
fn rules_that_match_nothing_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let said = fails(&plan(
        "experiments/quickstart.yaml",
        tmp.path(),
        &["ablations={train.lr: [0.1, 0.2]}", "exclude=[{train.lr: 0.3}]"],
    ));
    assert!(
        said.contains("key `exclude[0]`: the rule {\"train.lr\":0.3} matches no point"),
        "{said}"
    );
    let said = fails(&plan(
        "experiments/quickstart.yaml",
        tmp.path(),
        &[
            "ablations={train.lr: [0.1, 0.2]}",
            "conditional=[{when: {train.lr: 0.5}, ablations: {train.steps: [10, 20]}}]",
        ],
    ));
    assert!(
        said.contains("key `conditional[0].when`: no point of the grid passes"),
        "{said}"
    );
}

#[test]
fn variables_are_named_and_every_documented_one_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["CLIRLAB_TRAIN__", "CLIRLAB___", "CLIRLAB_TRAIN___STEPS"] {
        let out = command(&["plan", "experiments/quickstart.yaml"])
            .env(bad, "1")
            .output()
            .unwrap();
        let said = fails(&out);
        assert!(said.contains(&format!("environment variable {bad}:")), "{said}");
    }
    // The variables the README, the guides in docs/ and every `--help` name, with their
    // example values.
    let mut docs = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut guides: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    guides.sort();
    assert!(guides.len() > 3, "{guides:?}");
    for guide in guides {
        docs.push_str(&std::fs::read_to_string(guide).unwrap());
    }
    let help = text(&command(&["help"]).output().unwrap());
    let subcommands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.len() > 5, "{help}");
    docs.push_str(&help);
    for sub in &subcommands {
        docs.push_str(&text(&command(&[sub, "--help"]).output().unwrap()));
    }
    docs.push_str(&text(&command(&["data", "prepare", "--help"]).output().unwrap()));
    let mut names: Vec<(String, String)> = Vec::new();
    for (at, _) in docs.match_indices("CLIRLAB_") {
        let name: String = docs[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let rest = &docs[at + name.len()..];
        let example = rest
            .strip_prefix('=')
            .map(|v| {
                v.split(|c: char| c.is_whitespace() || "`);".contains(c))
                    .next()
                    .unwrap_or("")
            })
            .filter(|v| !v.is_empty() && !v.starts_with('<') && !v.starts_with('/') && !v.starts_with('$'))
            .map(|v| v.trim_matches('\'').to_string());
        // `<SECTION>__<KEY>` and `<KEY>` spell patterns, not variables.
        if name.ends_with('_') || name == "CLIRLAB_" {
            continue;
        }
        let value = example.unwrap_or_else(|| {
            if name == "CLIRLAB_LOG" {
                "warn".into()
            } else {
                "1".into()
            }
        });
        if let Some(known) = names.iter_mut().find(|(n, _)| *n == name) {
            if known.1 == "1" {
                known.1 = value;
            }
        } else {
            names.push((name, value));
        }
    }
    assert!(
        names.iter().any(|(n, v)| n == "CLIRLAB_BLAS" && v == "off"),
        "{names:?}"
    );
    for (name, value) in &names {
        let value = if name == "CLIRLAB_DATA_DIR" {
            tmp.path().to_str().unwrap()
        } else {
            value
        };
        let out = command(&["plan", "experiments/quickstart.yaml"])
            .env(name, value)
            .output()
            .unwrap();
        // A GPU device is a known value that a build without CUDA refuses by saying so.
        let said = text(&out);
        let no_cuda = value.starts_with("cuda") && said.contains("built without CUDA");
        assert!(out.status.success() || no_cuda, "{name}={value}: {said}");
    }
}

#[test]
fn values_that_cannot_be_used_name_their_key_and_source() {
    let tmp = tempfile::tempdir().unwrap();
    for value in [".nan", ".inf", "-.inf"] {
        let said = fails(&plan(
            "experiments/quickstart.yaml",
            tmp.path(),
            &[&format!("train.weight_decay={value}")],
        ));
        assert!(
            said.contains(&format!(
                "--set train.weight_decay={value}: key `train.weight_decay`: expected a finite number"
            )),
            "{said}"
        );
    }
    let file = tmp.path().join("wd.yaml");
    std::fs::write(&file, "train:\n  weight_decay: .nan\n").unwrap();
    let said = fails(&plan(file.to_str().unwrap(), tmp.path(), &[]));
    assert!(
        said.contains("wd.yaml: key `train.weight_decay`: expected a finite number, found NaN"),
        "{said}"
    );
    let said = fails(&plan(
        "experiments/quickstart.yaml",
        tmp.path(),
        &["ot.weight_schedule={kind: constant, value: .nan}"],
    ));
    assert!(said.contains("key `ot.weight_schedule.value`"), "{said}");
    let said = fails(&plan(
        "experiments/quickstart.yaml",
        tmp.path(),
        &["data.languages=[sx, sx]"],
    ));
    assert!(
        said.contains("key `data.languages[1]`: expected each language once"),
        "{said}"
    );
    let said = fails(&plan(
        "experiments/quickstart.yaml",
        tmp.path(),
        &[
            "data.languages=[en]",
            "retrieval.settings=[cross_lingual, multilingual]",
        ],
    ));
    assert!(
        said.contains("key `data.languages[0]`") && said.contains("multilingual"),
        "{said}"
    );
}

#[test]
fn paths_that_are_not_files_say_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let looped = tmp.path().join("loop.yaml");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let results = tmp.path().join("r");
    for (path, what) in [
        (
            fifo.to_str().unwrap(),
            "a FIFO (named pipe), expected an experiment file",
        ),
        ("/dev/null", "a device, expected an experiment file"),
        (
            looped.to_str().unwrap(),
            "a loop of symbolic links, expected an experiment file",
        ),
    ] {
        let started = Instant::now();
        let said = fails(&plan(path, &results, &[]));
        assert!(said.contains(what), "{path}: {said}");
        assert!(started.elapsed() < Duration::from_secs(30), "{path}");
    }
    let said = fails(&command(&["schedule", fifo.to_str().unwrap()]).output().unwrap());
    assert!(said.contains("a FIFO (named pipe), expected a schedule file"), "{said}");
    let empty = tmp.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let said = fails(&command(&["schedule", empty.to_str().unwrap()]).output().unwrap());
    assert!(
        said.contains("empty.yaml: expected a schedule") && said.contains("empty document"),
        "{said}"
    );
    let bom = tmp.path().join("bom.yaml");
    std::fs::write(&bom, "\u{feff}seeds: [1]\n").unwrap();
    let said = fails(&plan(bom.to_str().unwrap(), &results, &[]));
    assert!(said.contains("bom.yaml: line 1, column 1: a byte order mark"), "{said}");
}

#[test]
fn preset_cells_cannot_be_encoded_or_exported_and_nothing_is_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = finished_sweep(tmp.path());
    let cell = dir.join("cells").join(&id);
    let data = tmp.path().join("data");
    let queries = tmp.path().join("q.tsv");
    std::fs::write(&queries, "q1\thello\n").unwrap();
    for args in [
        vec![
            "encode",
            cell.to_str().unwrap(),
            "--as",
            "query",
            queries.to_str().unwrap(),
        ],
        vec![
            "export",
            cell.to_str().unwrap(),
            tmp.path().join("out").to_str().unwrap(),
        ],
    ] {
        let out = command(&args).env("CLIRLAB_DATA_DIR", &data).output().unwrap();
        let said = fails(&out);
        assert!(said.contains("only backbone cells"), "{args:?}: {said}");
        assert!(!data.exists(), "{args:?} fetched something");
    }
}

#[test]
fn folders_on_other_data_sets_that_share_no_query_are_not_compared() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = finished_sweep(tmp.path());
    let other = tmp.path().join("other");
    succeeds(&run_small(
        &other,
        &["ablations.schedule=[constant]", "data.languages=[sy]"],
    ));
    let b = other.join("quickstart");
    // Another data set by name (as a prepared one would be), with none of the first's queries.
    let sweep = b.join("sweep.json");
    let text = std::fs::read_to_string(&sweep).unwrap();
    std::fs::write(
        &sweep,
        text.replace("\"dataset\": \"synthetic\"", "\"dataset\": \"elsewhere\""),
    )
    .unwrap();
    let said = fails(
        &command(&["report", a.to_str().unwrap(), "--against", b.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert!(
        said.contains("(data set `synthetic`) and")
            && said.contains("(data set `elsewhere`): no query is scored in both"),
        "{said}"
    );
}
