//! Lock files naming their owner (`<pid> <host>[ slurm:<job id>][ start:<ticks>]`), removed when dropped. Plain
//! data: whether the owner of another host's lock is alive is a policy of the caller, handed
//! in as a [`JobAlive`] (the run layer asks the batch scheduler).

use crate::util::host::{host_name, process_alive, process_start_time};
use anyhow::{Context, Result};
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

impl LockFile {
    /// Takes the lock, or returns `None` while a live process holds it.
    pub fn try_acquire(path: &Path, job_alive: JobAlive) -> Result<Option<LockFile>> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // The pid is written before the lock appears (hard link of a filled temporary file),
        // so a lock file is never seen empty, even if its owner is killed at once.
        let mut tmp = tempfile::Builder::new().prefix(".lock-").tempfile_in(dir)?;
        write!(tmp, "{}", Owner::me().text())?;
        tmp.flush()?;
        loop {
            match std::fs::hard_link(tmp.path(), path) {
                Ok(()) => return Ok(Some(LockFile(path.to_path_buf()))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match lock_owner(path) {
                    Some(owner) if owner.alive(job_alive) => return Ok(None),
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
    pub fn acquire(path: &Path, job_alive: JobAlive) -> Result<LockFile> {
        loop {
            if let Some(lock) = Self::try_acquire(path, job_alive)? {
                return Ok(lock);
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
