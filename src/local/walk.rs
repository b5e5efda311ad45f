//! The local side: a recursive walk that yields every regular file and a
//! reason for everything else it meets.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::FileType;

use super::attributes::Attributes;
use super::filter::Filter;
pub use super::found::{Found, LocalFile};
use super::range::PathRange;
use super::source::{SourceDir, describe, open_child_dir, stat_child};
use super::stamp::{Stamp, mtime_ns};

/// Directories open at once on the way down: one per level. Deeper ones are
/// recorded as unreadable rather than reopened by path, which a rename could
/// redirect.
pub const MAX_DEPTH: usize = 256;

/// Walks `start` (a directory relative to the source) in path order, by
/// directory descriptors and without following symlinks. Filters apply to
/// files; a directory that cannot be read is always recorded, since the
/// files it hides may be ones the filters want.
pub fn walk(source: &SourceDir, start: &Path, filter: &Filter) -> Vec<Found> {
    let found = Mutex::new(Vec::new());
    let everything = PathRange::default();
    walk_into(
        source,
        start,
        filter,
        &everything,
        DEFAULT_THREADS,
        |entry| found.lock().map(|mut f| f.push(entry)).is_ok(),
    );
    let mut found = found.into_inner().unwrap_or_default();
    // Path order compares component by component: a directory's entries
    // follow it, as a depth-first walk in name order would give them.
    found.sort_by(|a, b| a.relative().cmp(b.relative()));
    found
}

/// Directories read at once by default: on a network file system every
/// metadata call waits a round trip, so calls in flight set the pace.
pub const DEFAULT_THREADS: usize = 16;

/// [`walk`] from `threads` threads, handing each entry to `sink` as it is
/// found (in no particular order) instead of collecting them; the walk
/// stops when `sink` returns false. Returns whether it walked everything
/// (`sink` never refused an entry). Only entries in `range` are handed on,
/// and directories that can hold none are not read.
///
/// Each directory is opened by name from its parent's descriptor, without
/// following links, so a directory swapped for a symlink is refused. A
/// directory waiting to be read holds its parent's descriptor open, not its
/// own: descriptors stay few however wide the tree.
pub fn walk_into(
    source: &SourceDir,
    start: &Path,
    filter: &Filter,
    range: &PathRange,
    threads: usize,
    sink: impl Fn(Found) -> bool + Sync,
) -> bool {
    let walk = Walk {
        source,
        filter,
        range,
        sink,
        open: AtomicBool::new(true),
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
    };
    match source.open_dir(start) {
        Ok(dir) => walk.push(Job {
            parent: None,
            dir: Some(dir),
            name: OsString::new(),
            relative: start.to_path_buf(),
            depth: 0,
        }),
        Err(err) => walk.unreadable(start.to_path_buf(), err.to_string()),
    }
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| walk.work());
        }
    });
    walk.open.into_inner()
}

/// A directory to read: open already (the start), or to be opened by name
/// from its parent.
struct Job {
    parent: Option<Arc<OwnedFd>>,
    dir: Option<OwnedFd>,
    name: OsString,
    relative: PathBuf,
    depth: usize,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Directories queued or being read: the walk ends when none are left.
    pending: usize,
}

struct Walk<'a, S> {
    source: &'a SourceDir,
    filter: &'a Filter,
    range: &'a PathRange,
    sink: S,
    /// False once the sink refused an entry: nothing more is walked.
    open: AtomicBool,
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl<S: Fn(Found) -> bool + Sync> Walk<'_, S> {
    fn emit(&self, found: Found) {
        if self.open.load(Ordering::Relaxed) && !(self.sink)(found) {
            self.open.store(false, Ordering::Relaxed);
        }
    }

    fn push(&self, job: Job) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.jobs.push(job);
            queue.pending += 1;
        }
        self.ready.notify_one();
    }

    /// Takes directories off the queue until none are queued or being read.
    fn work(&self) {
        loop {
            let job = {
                let Ok(mut queue) = self.queue.lock() else {
                    return;
                };
                loop {
                    if let Some(job) = queue.jobs.pop() {
                        break job;
                    }
                    if queue.pending == 0 {
                        return;
                    }
                    queue = match self.ready.wait(queue) {
                        Ok(queue) => queue,
                        Err(_) => return,
                    };
                }
            };
            if self.open.load(Ordering::Relaxed) {
                self.read(job);
            }
            if let Ok(mut queue) = self.queue.lock() {
                queue.pending -= 1;
                if queue.pending == 0 {
                    self.ready.notify_all();
                }
            }
        }
    }

    fn read(&self, job: Job) {
        let dir = match (job.dir, &job.parent) {
            (Some(dir), _) => dir,
            // Opened by name from its parent's descriptor, without
            // following: a symlink swapped in since the stat is refused.
            (None, Some(parent)) => match open_child_dir(parent.as_fd(), &job.name) {
                Ok(dir) => dir,
                Err(err) => return self.unreadable(job.relative, err.to_string()),
            },
            (None, None) => return,
        };
        let names = match read_names(&dir) {
            Ok(names) => names,
            Err(err) => return self.unreadable(job.relative, err.to_string()),
        };
        let dir = Arc::new(dir);
        for name in names {
            if !self.open.load(Ordering::Relaxed) {
                return;
            }
            let child = job.relative.join(&name);
            // Outside the range whether it is a file or a directory: no
            // metadata call is needed to leave it (a slice of a wide
            // directory would otherwise stat every sibling).
            if !self.range.holds(&child) && !self.range.may_hold_under(&child) {
                continue;
            }
            let stat = match stat_child(dir.as_fd(), &name) {
                Ok(stat) => stat,
                Err(err) => {
                    if self.accepts(&child) {
                        self.unreadable(child, err.to_string());
                    }
                    continue;
                }
            };
            let kind = FileType::from_raw_mode(stat.st_mode);
            let attributes = Attributes::of_stat(&stat);
            if kind == FileType::Directory {
                if self.accepts_dir(&child) {
                    self.emit(Found::Directory {
                        path: self.source.path().join(&child),
                        relative: child.clone(),
                        attributes,
                        mtime_ns: mtime_ns(&stat),
                    });
                }
                if !self.range.may_hold_under(&child) {
                    continue;
                }
                if job.depth + 1 >= MAX_DEPTH {
                    let error = format!("nested deeper than {MAX_DEPTH} directories; not walked");
                    self.unreadable(child, error);
                    continue;
                }
                self.push(Job {
                    parent: Some(Arc::clone(&dir)),
                    dir: None,
                    name,
                    relative: child,
                    depth: job.depth + 1,
                });
                continue;
            }
            if !self.accepts(&child) {
                continue;
            }
            let path = self.source.path().join(&child);
            self.emit(if kind == FileType::RegularFile {
                let stamp = Stamp::of_stat(&stat);
                Found::File(LocalFile {
                    path,
                    relative: child,
                    size: stamp.size,
                    stamp,
                    attributes,
                })
            } else if kind == FileType::Symlink {
                match rustix::fs::readlinkat(dir.as_fd(), &name, Vec::new()) {
                    Ok(target) => Found::Symlink {
                        path,
                        relative: child,
                        target: OsString::from_vec(target.into_bytes()),
                        attributes,
                        mtime_ns: mtime_ns(&stat),
                    },
                    Err(err) => Found::Unreadable {
                        path,
                        relative: child,
                        error: format!("read the link: {}", std::io::Error::from(err)),
                    },
                }
            } else {
                Found::Ignored {
                    path,
                    relative: child,
                    reason: format!("not a regular file ({}); not backed up", describe(kind)),
                }
            });
        }
    }

    fn accepts(&self, relative: &Path) -> bool {
        self.range.holds(relative) && self.filter.accepts(&relative.to_string_lossy())
    }

    /// A directory is recorded when the filters take its path and what is
    /// inside it: `dir/**` excluded leaves no empty `dir` behind.
    fn accepts_dir(&self, relative: &Path) -> bool {
        self.accepts(relative) && self.filter.accepts(&relative.join(".").to_string_lossy())
    }

    /// Recorded by the one range that holds the path: a directory that
    /// several ranges walk into is reported once across a sharded run.
    fn unreadable(&self, relative: PathBuf, error: String) {
        if !self.range.holds(&relative) {
            return;
        }
        self.emit(Found::Unreadable {
            path: self.source.path().join(&relative),
            relative,
            error,
        });
    }
}

/// The entry names of a directory, sorted by their bytes.
fn read_names(dir: &OwnedFd) -> std::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort_unstable();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(found: &[Found]) -> Vec<(String, &'static str)> {
        found
            .iter()
            .map(|f| match f {
                Found::File(file) => (file.relative.display().to_string(), "file"),
                Found::Directory { relative, .. } => (relative.display().to_string(), "dir"),
                Found::Symlink { relative, .. } => (relative.display().to_string(), "symlink"),
                Found::Ignored { relative, .. } => (relative.display().to_string(), "ignored"),
                Found::Unreadable { relative, .. } => {
                    (relative.display().to_string(), "unreadable")
                }
            })
            .collect()
    }

    #[test]
    fn walk_finds_files_and_explains_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/deep.txt"), b"deep").unwrap();
        std::fs::write(root.join("top.txt"), b"").unwrap();
        symlink(root.join("top.txt"), root.join("link")).unwrap();
        symlink("/nonexistent", root.join("dangling")).unwrap();
        let fifo = root.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());

        let found = walk(
            &SourceDir::open(root).unwrap(),
            Path::new(""),
            &Filter::new(&[], &[]).unwrap(),
        );
        assert_eq!(
            names(&found),
            vec![
                ("a".into(), "dir"),
                ("a/b".into(), "dir"),
                ("a/b/deep.txt".into(), "file"),
                ("dangling".into(), "symlink"),
                ("fifo".into(), "ignored"),
                ("link".into(), "symlink"),
                ("top.txt".into(), "file"),
            ]
        );
        let Found::File(deep) = &found[2] else {
            panic!()
        };
        assert_eq!(deep.size, 4);
        let Found::Symlink { target, .. } = &found[3] else {
            panic!()
        };
        assert_eq!(target, "/nonexistent", "the target text, never followed");
    }

    #[test]
    fn walk_applies_filters_and_sub_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("keep/skip")).unwrap();
        std::fs::write(root.join("keep/a.txt"), b"a").unwrap();
        std::fs::write(root.join("keep/a.tmp"), b"a").unwrap();
        std::fs::write(root.join("keep/skip/b.txt"), b"b").unwrap();
        std::fs::write(root.join("outside.txt"), b"o").unwrap();
        let filter = Filter::new(&[], &["*.tmp".into(), "keep/skip/**".into()]).unwrap();
        let found = walk(&SourceDir::open(root).unwrap(), Path::new("keep"), &filter);
        assert_eq!(names(&found), vec![("keep/a.txt".into(), "file")]);
    }
}
