//! The source directory, opened once. Everything under it is reached from
//! that descriptor, one path component at a time, never following a
//! symlink: whatever is renamed or swapped during a run, nothing outside the
//! source can be read.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags, Stat};

use super::stamp::Stamp;
use crate::error::{Error, Result};

/// Flags of every open: close on exec, never follow the last component
/// either, and never block (a FIFO swapped in would hang a plain open).
pub(crate) const SAFE: OFlags = OFlags::CLOEXEC
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::RDONLY);

/// The directory being backed up, held open by descriptor.
#[derive(Debug, Clone)]
pub struct SourceDir {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

impl SourceDir {
    /// Opens `path` (the configured directory; a symlink to it is fine).
    pub fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| Error::io("open", path, err.into()))?;
        Ok(SourceDir {
            path: path.to_path_buf(),
            fd: Arc::new(fd),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory at `relative` (empty: the source itself), reached
    /// without following any symlink.
    pub fn open_dir(&self, relative: &Path) -> Result<OwnedFd> {
        open_dir_under(self.fd(), &self.path, relative)
    }

    /// Opens the regular file at `relative` for reading. A symlink anywhere
    /// on the path, or anything but a regular file at its end (a FIFO, a
    /// device, a directory swapped in after the walk), is refused.
    pub fn open_file(&self, relative: &Path) -> Result<File> {
        let path = self.path.join(relative);
        let names = components(relative).map_err(|err| Error::io("open", &path, err))?;
        let Some((last, parents)) = names.split_last() else {
            return Err(Error::io(
                "open",
                &path,
                std::io::ErrorKind::InvalidInput.into(),
            ));
        };
        let mut dir = None::<OwnedFd>;
        for name in parents {
            let parent = dir.as_ref().map_or(self.fd(), |d| d.as_fd());
            dir = Some(open_child_dir(parent, name).map_err(|err| Error::io("open", &path, err))?);
        }
        let parent = dir.as_ref().map_or(self.fd(), |d| d.as_fd());
        let fd = rustix::fs::openat(parent, *last, SAFE, Mode::empty())
            .map_err(|err| Error::io("open", &path, refused_link(err)))?;
        let stat = rustix::fs::fstat(&fd).map_err(|err| Error::io("stat", &path, err.into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            return Err(Error::Changed {
                path,
                detail: format!("it is now {}, not a regular file; not read", describe(kind)),
            });
        }
        Ok(File::from(fd))
    }
}

/// The stamp of an open file, as `fstat` gives it now.
pub fn stamp_of(file: &File, path: &Path) -> Result<Stamp> {
    let stat = rustix::fs::fstat(file).map_err(|err| Error::io("stat", path, err.into()))?;
    Ok(Stamp::of_stat(&stat))
}

/// The directory at `relative` under the open directory `base` (at
/// `base_path`), reached one component at a time without following links.
pub(crate) fn open_dir_under(
    base: BorrowedFd<'_>,
    base_path: &Path,
    relative: &Path,
) -> Result<OwnedFd> {
    let mut dir = rustix::fs::openat(base, ".", dir_flags(), Mode::empty())
        .map_err(|err| Error::io("open", base_path, err.into()))?;
    for name in components(relative).map_err(|err| Error::io("open", relative, err))? {
        dir = open_child_dir(dir.as_fd(), name)
            .map_err(|err| Error::io("open", base_path.join(relative), err))?;
    }
    Ok(dir)
}

pub(crate) fn dir_flags() -> OFlags {
    SAFE | OFlags::DIRECTORY
}

/// Opens a sub-directory by name; a symlink put in its place fails (ELOOP or ENOTDIR).
pub(crate) fn open_child_dir(parent: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OwnedFd> {
    rustix::fs::openat(parent, name, dir_flags(), Mode::empty()).map_err(refused_link)
}

/// `lstat` of a name in a directory.
pub(crate) fn stat_child(parent: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<Stat> {
    rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// ELOOP from `O_NOFOLLOW` means a symlink was found where a file or
/// directory was expected; say so.
pub(crate) fn refused_link(err: rustix::io::Errno) -> std::io::Error {
    if err == rustix::io::Errno::LOOP {
        std::io::Error::other("a symbolic link is in the way; links are not followed")
    } else {
        err.into()
    }
}

/// The plain names of a relative path; anything else cannot be inside the directory.
pub(crate) fn components(relative: &Path) -> std::io::Result<Vec<&OsStr>> {
    relative
        .components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(std::io::Error::other(
                "path is not a plain relative path inside the directory",
            )),
        })
        .collect()
}

pub fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Symlink => "a symbolic link, not followed",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::BlockDevice | FileType::CharacterDevice => "a device",
        FileType::Directory => "a directory",
        FileType::RegularFile => "a regular file",
        FileType::Unknown => "of an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    #[test]
    fn files_open_beneath_the_source_only() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/ok"), b"ok").unwrap();
        symlink(outside.path(), root.join("escape")).unwrap();
        symlink(outside.path().join("secret"), root.join("link")).unwrap();
        let source = SourceDir::open(root).unwrap();

        let mut file = source.open_file(Path::new("sub/ok")).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!((text.as_str(), file.metadata().unwrap().len()), ("ok", 2));

        for refused in ["escape/secret", "link", "../x", "/etc/passwd", "", "sub"] {
            assert!(
                source.open_file(Path::new(refused)).is_err(),
                "{refused} was opened"
            );
        }
        let err = source.open_file(Path::new("link")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(source.open_dir(Path::new("escape")).is_err());
        assert!(source.open_dir(Path::new("sub")).is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let source = SourceDir::open(dir.path()).unwrap();
        let err = source.open_file(Path::new("fifo")).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
