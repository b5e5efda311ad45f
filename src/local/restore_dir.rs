//! The directory a restore writes into, held open. Every file is reached
//! from that descriptor one component at a time without following a link,
//! written under a temporary name beside its place, synced, and moved into
//! place only once its content is proven: nothing lands outside the
//! directory, and no wrong or empty file is ever left under a real name.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use std::os::unix::ffi::OsStringExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

use super::attributes::{self, Attributes, timestamps};
use super::flush::Flush;
use super::source::{
    SAFE, components, describe, dir_flags, open_child_dir, open_dir_under, refused_link,
};
use crate::error::{Error, Result};

/// The directory restored into.
#[derive(Debug)]
pub struct RestoreDir {
    path: PathBuf,
    /// `None` for a dry run into a directory that does not exist: it is
    /// not made, and every slot in it is missing.
    fd: Option<OwnedFd>,
}

/// Where one file goes: its directory (opened) and its name there.
#[derive(Debug)]
pub struct Slot {
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
}

/// What is at a slot already.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    RegularFile {
        size: u64,
    },
    /// Anything else is in the way: a directory, a link, a device.
    Other(&'static str),
}

impl RestoreDir {
    /// Opens `path`, creating it (and its parents) if it does not exist;
    /// a dry run creates nothing.
    pub fn open(path: &Path, dry_run: bool) -> Result<Self> {
        if dry_run && !path.exists() {
            return Ok(RestoreDir {
                path: path.to_path_buf(),
                fd: None,
            });
        }
        std::fs::create_dir_all(path).map_err(|err| Error::io("create", path, err))?;
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())
            .map_err(|err| Error::io("open", path, err.into()))?;
        Ok(RestoreDir {
            path: path.to_path_buf(),
            fd: Some(fd),
        })
    }

    /// The directory, held open; an error for one a dry run did not make.
    fn root(&self) -> Result<&OwnedFd> {
        self.fd.as_ref().ok_or_else(|| {
            let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
            Error::io("open", &self.path, missing)
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How files written here are made durable.
    pub fn flush(&self) -> Result<Flush> {
        // Nothing is written into a directory a dry run did not make.
        let Some(root) = &self.fd else {
            return Ok(Flush::EachFile);
        };
        let fd = rustix::fs::openat(root, ".", dir_flags(), Mode::empty())
            .map_err(|err| Error::io("open", &self.path, err.into()))?;
        Ok(Flush::for_dir(fd))
    }

    /// Syncs the directory at `relative` (empty: this one), so the names
    /// moved into it survive a crash; reached as every slot is.
    pub fn sync(&self, relative: &Path) -> Result<()> {
        let dir = open_dir_under(self.root()?.as_fd(), &self.path, relative)?;
        rustix::fs::fsync(&dir)
            .map_err(|err| Error::io("sync", self.path.join(relative), err.into()))
    }

    /// The slot of `relative`, creating missing directories on the way
    /// unless `dry_run`; `None` in a dry run where a directory on the way is
    /// missing. A path that is not plainly relative, or that meets a symlink
    /// or a non-directory on the way, is refused.
    pub fn slot(&self, relative: &Path, dry_run: bool) -> Result<Option<Slot>> {
        let path = self.path.join(relative);
        let names = components(relative).map_err(|err| Error::io("restore", &path, err))?;
        let Some((last, parents)) = names.split_last() else {
            let empty = std::io::Error::other("the path is empty");
            return Err(Error::io("restore", &path, empty));
        };
        let root = match &self.fd {
            Some(root) => root,
            None if dry_run => return Ok(None),
            None => self.root()?,
        };
        let mut dir = rustix::fs::openat(root, ".", dir_flags(), Mode::empty())
            .map_err(|err| Error::io("open", &self.path, err.into()))?;
        for name in parents {
            dir = match open_child_dir(dir.as_fd(), name) {
                Ok(child) => child,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && dry_run => {
                    return Ok(None);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // Private until the snapshot's record of it (if any) says otherwise.
                    rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o700))
                        .or_else(|e| {
                            if e == rustix::io::Errno::EXIST {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .map_err(|err| Error::io("create", &path, err.into()))?;
                    open_child_dir(dir.as_fd(), name)
                        .map_err(|err| Error::io("open", &path, err))?
                }
                Err(err) => return Err(Error::io("open", &path, err)),
            };
        }
        Ok(Some(Slot {
            dir,
            name: last.to_os_string(),
            path,
        }))
    }
}

impl Slot {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn existing(&self) -> Result<Existing> {
        let stat = match rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => return Ok(Existing::Nothing),
            Err(err) => return Err(Error::io("stat", &self.path, err.into())),
        };
        Ok(match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Existing::RegularFile {
                size: stat.st_size as u64,
            },
            other => Existing::Other(describe(other)),
        })
    }

    /// Opens the regular file at the slot for reading, without following a link.
    pub fn open_existing(&self) -> Result<File> {
        rustix::fs::openat(&self.dir, &self.name, SAFE, Mode::empty())
            .map(File::from)
            .map_err(|err| Error::io("open", &self.path, refused_link(err)))
    }

    /// A new temporary file beside the slot, readable by its owner only
    /// until its mode is set; open for reading too, so that what was
    /// written at offsets can be hashed. Its name has a fixed length whatever the
    /// slot's, so a file whose name is as long as the file system allows
    /// can be restored too.
    pub fn create_temp(&self) -> Result<(File, OsString)> {
        let temp = OsString::from(format!(".s3ks-{}.partial", uuid::Uuid::new_v4().simple()));
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.dir, &temp, flags, Mode::from_raw_mode(0o600))
            .map_err(|err| Error::io("create", self.path.with_file_name(&temp), err.into()))?;
        Ok((File::from(fd), temp))
    }

    /// Sets an open file's or directory's modification time (ns since the epoch).
    pub fn set_mtime(&self, fd: impl AsFd, mtime_ns: i64) -> Result<()> {
        rustix::fs::futimens(fd, &timestamps(mtime_ns))
            .map_err(|err| Error::io("set the time of", &self.path, err.into()))
    }

    /// The directory at the slot, opened without following a link; made,
    /// private until its recorded mode is set, if it is missing. Anything
    /// else in the way is refused.
    pub fn make_dir(&self) -> Result<OwnedFd> {
        let made = rustix::fs::mkdirat(&self.dir, &self.name, Mode::from_raw_mode(0o700));
        match made {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(err) => return Err(Error::io("create", &self.path, err.into())),
        }
        open_child_dir(self.dir.as_fd(), &self.name).map_err(|err| match self.existing() {
            Ok(Existing::Other(what)) if what != describe(FileType::Directory) => Error::Refused {
                path: self.path.clone(),
                detail: format!("{what} is in the way of a directory; refused"),
            },
            _ => Error::io("open", &self.path, err),
        })
    }

    /// The target of the link at the slot, if a link is there.
    pub fn link_target(&self) -> Result<Option<OsString>> {
        match rustix::fs::readlinkat(&self.dir, &self.name, Vec::new()) {
            Ok(target) => Ok(Some(OsString::from_vec(target.into_bytes()))),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(None),
            Err(err) => Err(Error::io("read the link", &self.path, err.into())),
        }
    }

    /// Makes a symbolic link to `target` at the slot; over whatever file or
    /// link is there only when `replace` (through a temporary name, so the
    /// slot never goes missing). The link is created, never followed.
    pub fn make_symlink(&self, target: &str, replace: bool) -> Result<()> {
        if !replace {
            return rustix::fs::symlinkat(target, &self.dir, &self.name)
                .map_err(|err| Error::io("create the link", &self.path, err.into()));
        }
        let temp = OsString::from(format!(".s3ks-{}.link", uuid::Uuid::new_v4().simple()));
        rustix::fs::symlinkat(target, &self.dir, &temp)
            .map_err(|err| Error::io("create the link", &self.path, err.into()))?;
        let moved = rustix::fs::renameat(&self.dir, &temp, &self.dir, &self.name);
        if moved.is_err() {
            self.discard(&temp);
        }
        moved.map_err(|err| Error::io("move into", &self.path, err.into()))
    }

    /// Gives the link at the slot its recorded owner and mtime, never
    /// following it.
    pub fn set_link_attributes(
        &self,
        recorded: Option<Attributes>,
        mtime_ns: Option<i64>,
        owners: bool,
    ) -> Result<()> {
        attributes::apply_to_link(&self.dir, &self.name, &self.path, recorded, owners)?;
        let Some(mtime_ns) = mtime_ns else {
            return Ok(());
        };
        rustix::fs::utimensat(
            &self.dir,
            &self.name,
            &timestamps(mtime_ns),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| Error::io("set the time of", &self.path, err.into()))
    }

    /// Moves the temporary file into place; over an existing file only
    /// when `replace`. The caller has synced the file: a rename that
    /// reaches the disk before the data leaves an empty file after a crash.
    pub fn commit(&self, temp: &OsStr, replace: bool) -> Result<()> {
        let moved = if replace {
            rustix::fs::renameat(&self.dir, temp, &self.dir, &self.name)
        } else {
            self.move_without_replacing(temp)
        };
        moved.map_err(|err| Error::io("move into", &self.path, err.into()))
    }

    /// `renameat2(RENAME_NOREPLACE)`, or where the file system refuses rename
    /// flags, a hard link to the final name and the temporary name removed:
    /// the Linux NFS client (so EFS) answers EINVAL to every flag, and a
    /// link never replaces an existing name on any file system.
    fn move_without_replacing(&self, temp: &OsStr) -> rustix::io::Result<()> {
        use rustix::io::Errno;
        let renamed = rustix::fs::renameat_with(
            &self.dir,
            temp,
            &self.dir,
            &self.name,
            RenameFlags::NOREPLACE,
        );
        match renamed {
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                rustix::fs::linkat(&self.dir, temp, &self.dir, &self.name, AtFlags::empty())?;
                rustix::fs::unlinkat(&self.dir, temp, AtFlags::empty())
            }
            other => other,
        }
    }

    /// Removes a temporary file whose content was not proven.
    pub fn discard(&self, temp: &OsStr) {
        let _ = rustix::fs::unlinkat(&self.dir, temp, AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn files_land_only_inside_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let restore = RestoreDir::open(dir.path(), false).unwrap();
        for refused in ["../x", "/etc/passwd", "escape/x", "a/../../x", ""] {
            assert!(
                restore.slot(Path::new(refused), false).is_err(),
                "{refused} was accepted"
            );
        }
        let slot = restore
            .slot(Path::new("a/b/c.txt"), false)
            .unwrap()
            .unwrap();
        assert_eq!(slot.existing().unwrap(), Existing::Nothing);
        let (mut file, temp) = slot.create_temp().unwrap();
        file.write_all(b"abc").unwrap();
        slot.set_mtime(&file, 1_600_000_000_123_456_789).unwrap();
        slot.commit(&temp, false).unwrap();
        let written = dir.path().join("a/b/c.txt");
        assert_eq!(std::fs::read(&written).unwrap(), b"abc");
        let mtime = std::fs::metadata(&written).unwrap().modified().unwrap();
        let since = mtime.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(since.as_nanos(), 1_600_000_000_123_456_789);
        assert_eq!(slot.existing().unwrap(), Existing::RegularFile { size: 3 });

        // Not over an existing file unless asked.
        let (_, temp) = slot.create_temp().unwrap();
        assert!(slot.commit(&temp, false).is_err());
        slot.commit(&temp, true).unwrap();
        assert_eq!(std::fs::read(&written).unwrap(), b"");
        assert!(outside.path().read_dir().unwrap().next().is_none());
        assert!(
            restore.slot(Path::new("new/x"), true).unwrap().is_none(),
            "a dry run creates nothing"
        );
        assert!(!dir.path().join("new").exists());
    }
}
