//! Atomic file output: files are written to a temporary file beside the target, synced, and
//! renamed into place, so a reader never sees a half-written file and an interrupted run
//! leaves none.

use crate::error::{Doing, Error, Result};
use std::io::Write;
use std::path::Path;

/// Whether `name` is one plain path component that stays inside the folder it is joined to:
/// not empty, `.` or `..`, no separator, no leading dot (hidden, and the namespace of this
/// program's own folders and temporaries), no NUL or other control character.
pub fn plain_component(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(std::path::Component::Normal(_)))
        && parts.next().is_none()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Refuses to write through a symbolic link below `root`: each existing folder from `root`
/// (not included) down to `path` must be a real folder, or what is written would land
/// wherever the link points.
pub fn refuse_links_below(root: &Path, path: &Path) -> Result<()> {
    let Ok(below) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    for part in below.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Refused(format!(
                "{} is a symbolic link; expected a folder of {} (remove the link: nothing is written through it)",
                at.display(),
                root.display()
            )));
        }
    }
    Ok(())
}

/// Whether `name` is one of [`write_atomic`]'s temporary files (`.tmp-` and six letters or
/// digits): one left by a process that was killed before it could rename it.
fn is_temporary(name: &str) -> bool {
    name.strip_prefix(".tmp-")
        .is_some_and(|rest| rest.len() == 6 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Removes the temporary files that a killed writer left in `folder`. Only for a folder whose
/// writer holds a lock: a live writer's temporary file would go too.
pub fn remove_temporaries(folder: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        if entry.file_type().is_ok_and(|t| t.is_file()) && is_temporary(&name.to_string_lossy()) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).doing(|| format!("removing {}", path.display()));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

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
    std::fs::create_dir_all(dir).doing(|| format!("creating directory {}", dir.display()))?;
    Ok(dir)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(result_file_permissions())
        .tempfile_in(dir)
        .doing(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes).doing(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .doing(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .doing(|| format!("renaming into place: {}", path.display()))?;
    Ok(())
}

/// Writes `path` atomically through a writer that wants a path of its own (a library that
/// saves to a file name): `write` fills the temporary file at the path it is given, which is
/// then synced and renamed into place. `suffix` is the temporary file's extension, for
/// writers that look at it.
///
/// `write`'s error type is the caller's, so long as this crate's errors convert into it.
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = parent_dir(path)?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(suffix)
        .permissions(result_file_permissions())
        .tempfile_in(dir)
        .doing(|| format!("creating a temporary file in {}", dir.display()))?;
    write(tmp.path())?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .doing(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .doing(|| format!("renaming into place: {}", path.display()))?;
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
    fn plain_components_stay_in_their_folder() {
        for ok in ["quickstart", "a.b", "lr0.1_s1_ab12cd34", "x..y", "界"] {
            assert!(plain_component(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/abs",
            "a\\b",
            ".hidden",
            "../../../../x",
            "a\0b",
            "a\nb",
            "./a",
        ] {
            assert!(!plain_component(bad), "{bad:?}");
        }
    }

    #[test]
    fn links_and_leftover_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("results");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(root.join("report")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        refuse_links_below(&root, &root.join("report/plots")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("report/plots")).unwrap();
        let err = refuse_links_below(&root, &root.join("report/plots"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("report/plots is a symbolic link"), "{err}");
        // Only the writer's own temporaries go; a user's files stay.
        for name in [".tmp-a1B2c3", ".tmp-x", ".tmp-notours1", "keep.svg", "tmp-abcdef"] {
            std::fs::write(elsewhere.join(name), "x").unwrap();
        }
        remove_temporaries(&elsewhere).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&elsewhere)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".tmp-notours1", ".tmp-x", "keep.svg", "tmp-abcdef"]);
    }

    #[test]
    fn written_files_are_readable_like_ordinary_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // An ordinary new file gets 0666 under the umask; ours 0644 under the same umask.
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        write_atomic(&dir.path().join("ours"), b"x").unwrap();
        assert_eq!(mode(&dir.path().join("ours")), mode(&dir.path().join("plain")) & 0o644);
        write_atomic_with(&dir.path().join("theirs"), ".bin", |p| {
            std::fs::write(p, b"y").doing(|| "writing".into())
        })
        .unwrap();
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
        write_atomic_with(&path, ".txt", |p| {
            std::fs::write(p, b"third").doing(|| "writing".into())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
        assert!(write_atomic_with(&path, ".txt", |_| Err(Error::Refused("no".into()))).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["out.txt"]);
    }
}
