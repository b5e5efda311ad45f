//! What the walk finds: each entry, with what `lstat` said of it then.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::attributes::Attributes;
use super::stamp::Stamp;

/// A regular file found by the walk, with what `lstat` said of it then.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: PathBuf,
    /// Path relative to the source directory.
    pub relative: PathBuf,
    pub size: u64,
    pub stamp: Stamp,
    pub attributes: Attributes,
}

/// One thing the walk found.
#[derive(Debug, Clone)]
pub enum Found {
    File(LocalFile),
    /// A directory below the walk's start: recorded so that a restore
    /// gives back empty ones, and every one's mode, owner and mtime.
    Directory {
        path: PathBuf,
        relative: PathBuf,
        attributes: Attributes,
        mtime_ns: i64,
    },
    /// A symbolic link: its target text is recorded, never followed.
    Symlink {
        path: PathBuf,
        relative: PathBuf,
        target: OsString,
        attributes: Attributes,
        mtime_ns: i64,
    },
    /// Not a regular file, directory or link (FIFO, socket, device); left alone.
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

impl Found {
    /// The entry's path relative to the source directory.
    pub fn relative(&self) -> &Path {
        match self {
            Found::File(file) => &file.relative,
            Found::Directory { relative, .. }
            | Found::Symlink { relative, .. }
            | Found::Ignored { relative, .. }
            | Found::Unreadable { relative, .. } => relative,
        }
    }

    /// The bytes of content a sync may read: a file's size, else nothing.
    pub fn size(&self) -> u64 {
        match self {
            Found::File(file) => file.size,
            _ => 0,
        }
    }
}
