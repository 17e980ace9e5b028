//! Lock files naming their owner (`<pid> <host>[ slurm:<job id>][ start:<ticks>]`), removed when dropped. Plain
//! data: whether the owner of another host's lock is alive is a policy of the caller, handed
//! in as a [`JobAlive`] (the run layer asks the batch scheduler).

use crate::error::{Doing, Error, Result};
use crate::host::{host_name, process_alive, process_start_time, utc};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Asks a batch scheduler whether job `id` is still queued or running; `None` when it cannot
/// be asked. Handed to the lock operations by the layer that knows the scheduler.
pub type JobAlive = fn(&str) -> Option<bool>;

/// A [`JobAlive`] for callers without a batch scheduler: no job can be asked about, so the
/// lock of another host's process counts as live.
pub fn no_scheduler(_job: &str) -> Option<bool> {
    None
}

/// A lock file naming its owner, removed when dropped. The lock of a process that is gone
/// (killed, crashed) is stale and taken over.
///
/// The owner is written `<pid> <host>`, plus ` slurm:<job id>` inside a Slurm job: on a shared
/// filesystem a pid only means something on its own host, so the lock of another host's
/// process counts as live unless Slurm says its job has ended. A bare pid (older locks) is
/// this host's. ` start:<ticks>` is the owner's start time (`/proc/<pid>/stat`): a live process
/// with the pid but another start time is not the owner (the pid was reused), so the lock is
/// stale; a lock without it (older versions) is judged by the pid alone.
#[derive(Debug)]
pub struct LockFile(PathBuf);

#[derive(Debug, PartialEq)]
struct Owner {
    pid: u32,
    host: Option<String>,
    slurm_job: Option<String>,
    start: Option<u64>,
}

impl Owner {
    fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            host: Some(host_name()),
            slurm_job: std::env::var("SLURM_JOB_ID").ok().filter(|j| !j.is_empty()),
            start: process_start_time(pid),
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let host = words.next().map(str::to_string);
        let rest: Vec<&str> = words.collect();
        let tagged = |tag: &str| rest.iter().find_map(|w| w.strip_prefix(tag));
        let slurm_job = tagged("slurm:").map(str::to_string);
        let start = tagged("start:").and_then(|t| t.parse().ok());
        Some(Owner {
            pid,
            host,
            slurm_job,
            start,
        })
    }

    fn text(&self) -> String {
        let mut text = format!("{} {}", self.pid, self.host.as_deref().unwrap_or_default());
        if let Some(job) = &self.slurm_job {
            text.push_str(&format!(" slurm:{job}"));
        }
        if let Some(start) = self.start {
            text.push_str(&format!(" start:{start}"));
        }
        text
    }

    fn on_this_host(&self) -> bool {
        self.host.as_ref().is_none_or(|h| *h == host_name())
    }

    fn alive(&self, job_alive: JobAlive) -> bool {
        if self.on_this_host() {
            // A recorded start time that differs from the live process's: the pid was reused.
            let same_process = match (self.start, process_start_time(self.pid)) {
                (Some(recorded), Some(now)) => recorded == now,
                _ => true,
            };
            return process_alive(self.pid) && same_process;
        }
        // Another host's process: only its Slurm job, if any, can tell that it is gone.
        self.slurm_job.as_deref().and_then(job_alive).unwrap_or(true)
    }
}

fn lock_owner(path: &Path) -> Option<Owner> {
    std::fs::read_to_string(path).ok().and_then(|s| Owner::parse(&s))
}

/// What the lock file at `path` that already exists says: its owner, or an error naming the
/// file where it is not a lock this program writes (a folder, a link, a malformed owner), so
/// that nobody waits on it for ever or takes it over in a loop. `None`: it is gone.
fn existing_owner(path: &Path) -> Result<Option<Owner>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).doing(|| format!("reading lock {}", path.display())),
    };
    let expected = "a lock file holding `<pid> <host>` (remove it if no clirlab process runs there)";
    if !meta.file_type().is_file() {
        let found = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(Error::Refused(format!(
            "lock {}: {found}, expected {expected}",
            path.display()
        )));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).doing(|| format!("reading lock {}", path.display())),
    };
    match Owner::parse(&text) {
        Some(owner) => Ok(Some(owner)),
        None => Err(Error::Refused(format!(
            "lock {}: found {:?}, expected {expected}",
            path.display(),
            text.chars().take(80).collect::<String>()
        ))),
    }
}

/// Who holds the lock at `path` and since when, for people: `pid 12 on node-3 (slurm job 7),
/// since 2026-01-02 10:11:12 UTC`. `None` when there is no lock there.
pub fn describe_holder(path: &Path) -> Result<Option<String>> {
    let Some(owner) = existing_owner(path)? else {
        return Ok(None);
    };
    let mut who = format!("pid {} on {}", owner.pid, owner.host.as_deref().unwrap_or("this host"));
    if let Some(job) = &owner.slurm_job {
        who.push_str(&format!(" (slurm job {job})"));
    }
    if let Some(since) = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        who.push_str(&format!(", since {} UTC", utc(since.as_secs())));
    }
    Ok(Some(who))
}

/// How often a wait on a lock says again who holds it.
pub const WAIT_REMINDER: std::time::Duration = std::time::Duration::from_secs(60);

impl LockFile {
    /// Takes the lock, or returns `None` while a live process holds it.
    pub fn try_acquire(path: &Path, job_alive: JobAlive) -> Result<Option<LockFile>> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).doing(|| format!("creating {}", dir.display()))?;
        // The pid is written before the lock appears (hard link of a filled temporary file),
        // so a lock file is never seen empty, even if its owner is killed at once.
        let mut tmp = tempfile::Builder::new()
            .prefix(".lock-")
            .tempfile_in(dir)
            .doing(|| format!("creating a temporary file in {}", dir.display()))?;
        write!(tmp, "{}", Owner::me().text())
            .and_then(|()| tmp.flush())
            .doing(|| format!("writing {}", tmp.path().display()))?;
        loop {
            match std::fs::hard_link(tmp.path(), path) {
                Ok(()) => return Ok(Some(LockFile(path.to_path_buf()))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match existing_owner(path)? {
                    Some(owner) if owner.alive(job_alive) => return Ok(None),
                    // Gone between the link and the read: try again.
                    None => {}
                    Some(owner) => {
                        tracing::warn!(lock = %path.display(), owner = %owner.text(), "taking over the stale lock of a process that is gone");
                        std::fs::remove_file(path)
                            .or_else(|e| {
                                if e.kind() == std::io::ErrorKind::NotFound {
                                    Ok(())
                                } else {
                                    Err(e)
                                }
                            })
                            .doing(|| format!("removing the stale lock {}", path.display()))?;
                    }
                },
                Err(e) => return Err(e).doing(|| format!("creating lock {}", path.display())),
            }
        }
    }

    /// Waits until the lock is free, then takes it; while it waits, it says who holds the
    /// lock and since when, at once and every [`WAIT_REMINDER`].
    pub fn acquire(path: &Path, job_alive: JobAlive) -> Result<LockFile> {
        let mut said: Option<std::time::Instant> = None;
        loop {
            if let Some(lock) = Self::try_acquire(path, job_alive)? {
                return Ok(lock);
            }
            if said.is_none_or(|t| t.elapsed() >= WAIT_REMINDER)
                && let Some(holder) = describe_holder(path)?
            {
                // Straight to stderr, also under `--quiet`: a silent wait would look like a hang.
                eprintln!("clirlab: waiting for the lock {}, held by {holder}", path.display());
                said = Some(std::time::Instant::now());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Whether a live process other than this one holds the lock at `path`.
    pub fn held_by_live_process(path: &Path, job_alive: JobAlive) -> bool {
        lock_owner(path).is_some_and(|o| !(o.pid == std::process::id() && o.on_this_host()) && o.alive(job_alive))
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
    fn locks_exclude_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.lock");
        let held = LockFile::try_acquire(&path, no_scheduler).unwrap().unwrap();
        // The same process sees its own lock as held by no *other* live process.
        assert!(!LockFile::held_by_live_process(&path, no_scheduler));
        drop(held);
        assert!(!path.exists());
        // A lock left by a process that is gone (pid 2^31 − 1 does not exist here).
        std::fs::write(&path, "2147483646").unwrap();
        assert!(!LockFile::held_by_live_process(&path, no_scheduler));
        let taken = LockFile::try_acquire(&path, no_scheduler).unwrap();
        assert!(taken.is_some());
        let owner = Owner::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!((owner.pid, owner.host), (std::process::id(), Some(host_name())));
        // A live owner (pid 1 always exists) keeps it.
        drop(taken);
        std::fs::write(&path, "1").unwrap();
        assert!(LockFile::held_by_live_process(&path, no_scheduler));
        assert!(LockFile::try_acquire(&path, no_scheduler).unwrap().is_none());
        // So does a process of another host sharing the filesystem, whose pid means nothing here.
        std::fs::write(&path, "2147483646 some-other-node").unwrap();
        assert!(LockFile::held_by_live_process(&path, no_scheduler));
        assert!(LockFile::try_acquire(&path, no_scheduler).unwrap().is_none());
        // A live pid with another start time is a reused pid: stale. Without one, as before.
        let start = process_start_time(1).expect("pid 1 has a start time");
        std::fs::write(&path, format!("1 {} start:{}", host_name(), start + 1)).unwrap();
        assert!(!LockFile::held_by_live_process(&path, no_scheduler));
        std::fs::write(&path, format!("1 {} start:{start}", host_name())).unwrap();
        assert!(LockFile::held_by_live_process(&path, no_scheduler));
        // This host's name is the same as no name (a bare pid).
        std::fs::write(&path, format!("2147483646 {}", host_name())).unwrap();
        assert!(!LockFile::held_by_live_process(&path, no_scheduler));
    }

    #[test]
    fn foreign_locks_are_errors_naming_the_file_not_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.lock");
        // A folder where the lock goes once made every attempt "take it over" in a busy loop.
        std::fs::create_dir(&path).unwrap();
        let err = LockFile::try_acquire(&path, no_scheduler).unwrap_err().to_string();
        assert!(err.contains("cell.lock") && err.contains("a folder"), "{err}");
        assert!(LockFile::acquire(&path, no_scheduler).is_err());
        std::fs::remove_dir(&path).unwrap();
        for text in ["", "\n", "abc", "-1 host", "owner: 12", "\u{feff}12"] {
            std::fs::write(&path, text).unwrap();
            let err = LockFile::try_acquire(&path, no_scheduler).unwrap_err().to_string();
            assert!(
                err.contains("cell.lock") && err.contains("expected a lock file"),
                "{text:?}: {err}"
            );
        }
        // A live owner's lock is described with who and since when.
        std::fs::write(&path, "1 some-other-node slurm:77").unwrap();
        let said = describe_holder(&path).unwrap().unwrap();
        assert!(
            said.starts_with("pid 1 on some-other-node (slurm job 77), since 20"),
            "{said}"
        );
        assert_eq!(describe_holder(&dir.path().join("none.lock")).unwrap(), None);
    }

    #[test]
    fn generated_lock_files_never_hang_or_panic() {
        // Whatever a lock file holds, taking it answers at once: taken, held, or an error
        // naming the file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.lock");
        let words = [
            "1",
            "2147483646",
            "0",
            "-3",
            " ",
            "\n",
            "host",
            "slurm:",
            "slurm:9",
            "start:",
            "start:x",
            "start:5",
            "99999999999",
        ];
        let mut fuzz = crate::fuzz::Fuzz::new(3);
        for _ in 0..2_000 {
            let text = fuzz.text(&words, 6);
            std::fs::write(&path, &text).unwrap();
            match LockFile::try_acquire(&path, no_scheduler) {
                Ok(Some(lock)) => drop(lock),
                Ok(None) => assert!(describe_holder(&path).unwrap().is_some(), "{text:?}"),
                Err(e) => assert!(e.to_string().contains("g.lock"), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn lock_owners_read_back() {
        let owner = Owner {
            pid: 7,
            host: Some("node-3".into()),
            slurm_job: Some("4242".into()),
            start: None,
        };
        assert_eq!(owner.text(), "7 node-3 slurm:4242");
        assert_eq!(Owner::parse(&owner.text()), Some(owner));
        let owner = Owner {
            pid: 7,
            host: Some("node-3".into()),
            slurm_job: None,
            start: Some(123),
        };
        assert_eq!(owner.text(), "7 node-3 start:123");
        assert_eq!(Owner::parse(&owner.text()), Some(owner));
        assert_eq!(
            Owner::parse("12\n"),
            Some(Owner {
                pid: 12,
                host: None,
                slurm_job: None,
                start: None
            })
        );
        assert_eq!(Owner::parse(""), None);
    }
}
