//! Atomic file output: files are written to a temporary file beside the target, synced, and
//! renamed into place, so a reader never sees a half-written file and an interrupted run
//! leaves none.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Results are shared: readable like any file the user creates (0644 under the umask), not
/// tempfile's private 0600.
pub fn result_file_permissions() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o644)
}

/// The folder `path` is written into (`.` for a bare file name), created if missing.
fn parent_dir(path: &Path) -> Result<&Path> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    Ok(dir)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(result_file_permissions())
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into place: {}", path.display()))?;
    Ok(())
}

/// Writes `path` atomically through a writer that wants a path of its own (a library that
/// saves to a file name): `write` fills the temporary file at the path it is given, which is
/// then synced and renamed into place. `suffix` is the temporary file's extension, for
/// writers that look at it.
pub fn write_atomic_with(path: &Path, suffix: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = parent_dir(path)?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(suffix)
        .permissions(result_file_permissions())
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    write(tmp.path())?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into place: {}", path.display()))?;
    Ok(())
}

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(value)?;
    json.push(b'\n');
    write_atomic(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_readable_like_ordinary_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // An ordinary new file gets 0666 under the umask; ours 0644 under the same umask.
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        write_atomic(&dir.path().join("ours"), b"x").unwrap();
        assert_eq!(mode(&dir.path().join("ours")), mode(&dir.path().join("plain")) & 0o644);
        write_atomic_with(&dir.path().join("theirs"), ".bin", |p| Ok(std::fs::write(p, b"y")?)).unwrap();
        assert_eq!(
            mode(&dir.path().join("theirs")),
            mode(&dir.path().join("plain")) & 0o644
        );
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        write_atomic_with(&path, ".txt", |p| Ok(std::fs::write(p, b"third")?)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
        assert!(write_atomic_with(&path, ".txt", |_| anyhow::bail!("no")).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["out.txt"]);
    }
}
