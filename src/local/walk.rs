//! The local side: a recursive walk that yields every regular file and a
//! reason for everything else it meets.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::filter::Filter;
use super::source::{SourceDir, describe, open_child_dir, stat_child};
use super::stamp::Stamp;

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
    let mut found = Vec::new();
    walk_into(source, start, filter, |entry| {
        found.push(entry);
        true
    });
    found
}

/// [`walk`], handing each entry to `sink` as it is found instead of
/// collecting them; the walk stops when `sink` returns false.
pub fn walk_into(
    source: &SourceDir,
    start: &Path,
    filter: &Filter,
    sink: impl FnMut(Found) -> bool,
) {
    let mut walk = Walk {
        source,
        filter,
        sink,
        open: true,
    };
    match source.open_dir(start) {
        Ok(dir) => walk.directory(dir, start.to_path_buf(), 0),
        Err(err) => walk.unreadable(start.to_path_buf(), err.to_string()),
    }
}

struct Walk<'a, S> {
    source: &'a SourceDir,
    filter: &'a Filter,
    sink: S,
    /// False once the sink refused an entry: nothing more is walked.
    open: bool,
}

impl<S: FnMut(Found) -> bool> Walk<'_, S> {
    fn emit(&mut self, found: Found) {
        self.open = self.open && (self.sink)(found);
    }

    fn directory(&mut self, dir: OwnedFd, relative: PathBuf, depth: usize) {
        let names = match read_names(&dir) {
            Ok(names) => names,
            Err(err) => return self.unreadable(relative, err.to_string()),
        };
        for name in names {
            if !self.open {
                return;
            }
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
            self.emit(if kind == FileType::RegularFile {
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
