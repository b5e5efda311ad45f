//! The local side: a recursive walk that yields every regular file and a
//! reason for everything else it meets.

use std::fs::FileType;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use walkdir::WalkDir;

use crate::filter::Filter;

/// What `lstat` says of a file that shows whether it changed. A content
/// change always moves the ctime, which user space cannot set back, so equal
/// stamps mean the bytes are the ones hashed when the stamp was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
        }
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

/// Walks `start` (inside `root`) without following symlinks, in file-name order.
pub fn walk(root: &Path, start: &Path, filter: &Filter) -> Vec<Found> {
    let mut found = Vec::new();
    for entry in WalkDir::new(start).follow_links(false).sort_by_file_name() {
        match entry {
            Ok(entry) => {
                let file_type = entry.file_type();
                if file_type.is_dir() {
                    continue;
                }
                let path = entry.into_path();
                let relative = relative_to(root, &path);
                if !filter.accepts(&relative.to_string_lossy()) {
                    continue;
                }
                found.push(classify(path, relative, file_type));
            }
            Err(err) => {
                let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                let relative = relative_to(root, &path);
                if filter.accepts(&relative.to_string_lossy()) {
                    found.push(Found::Unreadable {
                        path,
                        relative,
                        error: err.to_string(),
                    });
                }
            }
        }
    }
    found
}

fn relative_to(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

fn classify(path: PathBuf, relative: PathBuf, file_type: FileType) -> Found {
    if file_type.is_file() {
        return match std::fs::symlink_metadata(&path) {
            Ok(meta) => Found::File(LocalFile {
                path,
                relative,
                size: meta.len(),
                stamp: Stamp::of(&meta),
            }),
            Err(err) => Found::Unreadable {
                path,
                relative,
                error: err.to_string(),
            },
        };
    }
    Found::Ignored {
        path,
        relative,
        reason: format!(
            "not a regular file ({}); not backed up",
            describe(file_type)
        ),
    }
}

fn describe(file_type: FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_symlink() {
        "symbolic link, not followed"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "unknown type"
    }
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

        let found = walk(root, root, &Filter::new(&[], &[]).unwrap());
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
        let found = walk(root, &root.join("keep"), &filter);
        assert_eq!(names(&found), vec![("keep/a.txt".into(), "file")]);
    }
}
