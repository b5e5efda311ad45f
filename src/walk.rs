//! The local side: a recursive walk that yields every regular file and a
//! reason for everything else it meets.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use crate::filter::Filter;
use crate::source::{SourceDir, describe, open_child_dir, stat_child};

/// What `lstat` says of a file that shows whether it changed. A content
/// change always moves the ctime, which user space cannot set back, so equal
/// stamps mean the bytes are the ones hashed when the stamp was taken, as
/// long as the stamp was taken safely after the last write (see
/// [`Stamp::settled_before`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

impl Stamp {
    // The `stat` field types differ between targets; the casts are needed on some.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_stat(stat: &rustix::fs::Stat) -> Self {
        let ns = |secs: i64, nanos: i64| secs * 1_000_000_000 + nanos;
        Stamp {
            size: stat.st_size as u64,
            mtime_ns: ns(stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            ctime_ns: ns(stat.st_ctime as i64, stat.st_ctime_nsec as i64),
            inode: stat.st_ino as u64,
        }
    }
}

/// How long after a write its stamp may still be shared by a later write:
/// the file system's timestamp granularity, with room to spare. Whole-second
/// stamps come from 1- or 2-second file systems (ext4 with 128-byte inodes,
/// FAT, many FUSE and NFS mounts); finer ones from the kernel's coarse clock,
/// which ticks every few milliseconds.
pub const COARSE_STAMP_WINDOW_NS: i64 = 2_000_000_000;
pub const FINE_STAMP_WINDOW_NS: i64 = 100_000_000;

impl Stamp {
    /// Whether this stamp, taken at or after `taken_ns` (ns since the epoch),
    /// vouches for the content read then. A write after `taken_ns` moves the
    /// mtime and ctime past what they were; but within the file system's
    /// granularity it may leave them exactly as they are (git's "racy"
    /// index entry), so a stamp that close to the moment it was taken is
    /// not trusted, and the next run reads the file again.
    pub fn settled_before(&self, taken_ns: i64) -> bool {
        let whole_seconds = |ns: i64| ns % 1_000_000_000 == 0;
        let window = if whole_seconds(self.mtime_ns) && whole_seconds(self.ctime_ns) {
            COARSE_STAMP_WINDOW_NS
        } else {
            FINE_STAMP_WINDOW_NS
        };
        self.mtime_ns.max(self.ctime_ns).saturating_add(window) <= taken_ns
    }
}

/// A regular file found by the walk, with what `lstat` said of it then.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: PathBuf,
    /// Path relative to the source directory.
    pub relative: PathBuf,
    pub size: u64,
    pub stamp: Stamp,
}

/// One thing the walk found.
#[derive(Debug, Clone)]
pub enum Found {
    File(LocalFile),
    /// Not a regular file (symlink, FIFO, socket, device); left alone.
    Ignored {
        path: PathBuf,
        relative: PathBuf,
        reason: String,
    },
    /// Could not be read (a directory without permission, a vanished entry).
    Unreadable {
        path: PathBuf,
        relative: PathBuf,
        error: String,
    },
}

/// Directories open at once on the way down: one per level. Deeper ones are
/// recorded as unreadable rather than reopened by path, which a rename could
/// redirect.
pub const MAX_DEPTH: usize = 256;

/// Walks `start` (a directory relative to the source) in file-name order,
/// by directory descriptors and without following symlinks. Filters apply
/// to files; a directory that cannot be read is always recorded, since the
/// files it hides may be ones the filters want.
pub fn walk(source: &SourceDir, start: &Path, filter: &Filter) -> Vec<Found> {
    let mut walk = Walk {
        source,
        filter,
        found: Vec::new(),
    };
    match source.open_dir(start) {
        Ok(dir) => walk.directory(dir, start.to_path_buf(), 0),
        Err(err) => walk.unreadable(start.to_path_buf(), err.to_string()),
    }
    walk.found
}

struct Walk<'a> {
    source: &'a SourceDir,
    filter: &'a Filter,
    found: Vec<Found>,
}

impl Walk<'_> {
    fn directory(&mut self, dir: OwnedFd, relative: PathBuf, depth: usize) {
        let names = match read_names(&dir) {
            Ok(names) => names,
            Err(err) => return self.unreadable(relative, err.to_string()),
        };
        for name in names {
            let child = relative.join(&name);
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
            if kind == FileType::Directory {
                if depth + 1 >= MAX_DEPTH {
                    let error = format!("nested deeper than {MAX_DEPTH} directories; not walked");
                    self.unreadable(child, error);
                    continue;
                }
                // Opened by name from its parent's descriptor, without
                // following: a symlink swapped in since the stat is refused.
                match open_child_dir(dir.as_fd(), &name) {
                    Ok(sub) => self.directory(sub, child, depth + 1),
                    Err(err) => self.unreadable(child, err.to_string()),
                }
                continue;
            }
            if !self.accepts(&child) {
                continue;
            }
            let path = self.source.path().join(&child);
            self.found.push(if kind == FileType::RegularFile {
                let stamp = Stamp::of_stat(&stat);
                Found::File(LocalFile {
                    path,
                    relative: child,
                    size: stamp.size,
                    stamp,
                })
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
        self.filter.accepts(&relative.to_string_lossy())
    }

    fn unreadable(&mut self, relative: PathBuf, error: String) {
        self.found.push(Found::Unreadable {
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
                ("a/b/deep.txt".into(), "file"),
                ("dangling".into(), "ignored"),
                ("fifo".into(), "ignored"),
                ("link".into(), "ignored"),
                ("top.txt".into(), "file"),
            ]
        );
        let Found::File(deep) = &found[0] else {
            panic!()
        };
        assert_eq!(deep.size, 4);
    }

    #[test]
    fn a_stamp_is_trusted_only_once_settled_past_the_granularity() {
        let second = 1_000_000_000;
        let stamp = |mtime_ns, ctime_ns| Stamp {
            size: 1,
            mtime_ns,
            ctime_ns,
            inode: 1,
        };
        let taken = 1_700_000_000 * second;
        // Last changed long before: trusted.
        assert!(stamp(taken - 3600 * second, taken - 3600 * second + 7).settled_before(taken));
        // Fine timestamps: a tenth of a second is enough.
        assert!(stamp(taken - 150_000_000, taken - 150_000_001).settled_before(taken));
        assert!(!stamp(taken - 50_000_000, taken - 50_000_001).settled_before(taken));
        // Whole seconds: the same second, or the one before, is not.
        assert!(!stamp(taken, taken).settled_before(taken + 900_000_000));
        assert!(!stamp(taken - second, taken - second).settled_before(taken));
        assert!(stamp(taken - 2 * second, taken - 2 * second).settled_before(taken));
        // The ctime counts too: a chmod or a rename after the write.
        assert!(!stamp(taken - 3600 * second, taken - 1).settled_before(taken));
        // A stamp from the future (a clock behind the file system's) is not.
        assert!(!stamp(taken + second, taken + second).settled_before(taken));
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
