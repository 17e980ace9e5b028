//! Atomic file output: results are written to a temporary file beside the target and renamed
//! into place, so a reader never sees a half-written file and an interrupted run leaves none.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
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

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(value)?;
    json.push(b'\n');
    write_atomic(path, &json)
}

/// A lock file holding its owner's pid, removed when dropped. The lock of a process that is
/// gone (killed, crashed) is stale and taken over.
#[derive(Debug)]
pub struct LockFile(PathBuf);

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn lock_owner(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok())
}

impl LockFile {
    /// Takes the lock, or returns `None` while a live process holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<LockFile>> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // The pid is written before the lock appears (hard link of a filled temporary file),
        // so a lock file is never seen empty, even if its owner is killed at once.
        let mut tmp = tempfile::Builder::new().prefix(".lock-").tempfile_in(dir)?;
        write!(tmp, "{}", std::process::id())?;
        tmp.flush()?;
        loop {
            match std::fs::hard_link(tmp.path(), path) {
                Ok(()) => return Ok(Some(LockFile(path.to_path_buf()))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match lock_owner(path) {
                    Some(pid) if process_alive(pid) => return Ok(None),
                    _ => {
                        tracing::warn!(lock = %path.display(), "taking over the stale lock of a process that is gone");
                        let _ = std::fs::remove_file(path);
                    }
                },
                Err(e) => return Err(e).with_context(|| format!("creating lock {}", path.display())),
            }
        }
    }

    /// Waits until the lock is free, then takes it.
    pub fn acquire(path: &Path) -> Result<LockFile> {
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(lock);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Whether a live process other than this one holds the lock at `path`.
    pub fn held_by_live_process(path: &Path) -> bool {
        lock_owner(path).is_some_and(|pid| pid != std::process::id() && process_alive(pid))
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["out.txt"]);
    }

    #[test]
    fn locks_exclude_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.lock");
        let held = LockFile::try_acquire(&path).unwrap().unwrap();
        // The same process sees its own lock as held by no *other* live process.
        assert!(!LockFile::held_by_live_process(&path));
        drop(held);
        assert!(!path.exists());
        // A lock left by a process that is gone (pid 2^31 − 1 does not exist here).
        std::fs::write(&path, "2147483646").unwrap();
        assert!(!LockFile::held_by_live_process(&path));
        let taken = LockFile::try_acquire(&path).unwrap();
        assert!(taken.is_some());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), std::process::id().to_string());
        // A live owner (pid 1 always exists) keeps it.
        drop(taken);
        std::fs::write(&path, "1").unwrap();
        assert!(LockFile::held_by_live_process(&path));
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
    }
}
