//! What a restore gives back besides a file's bytes: its permission bits,
//! owner and group (and, for directories and links, their mtime).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Permission bits (with setuid, setgid and sticky), owner and group, as
/// `lstat` gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Modes restored where a snapshot recorded none: private, since nothing
/// says the owner meant to share them.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
pub const PRIVATE_DIR_MODE: u32 = 0o700;

impl Attributes {
    // The `stat` field types differ between targets; the casts are needed on some.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_stat(stat: &rustix::fs::Stat) -> Self {
        Attributes {
            mode: stat.st_mode as u32 & 0o7777,
            uid: stat.st_uid as u32,
            gid: stat.st_gid as u32,
        }
    }
}

/// Whether owners are given back: only root may give a file away.
pub fn may_set_owners() -> bool {
    rustix::process::geteuid().is_root()
}

/// Gives an open file or directory its recorded owner (when `owners`) and
/// mode, or `default_mode` where none was recorded. The owner goes first:
/// `chown` clears the setuid and setgid bits that `chmod` then sets.
pub fn apply(
    fd: impl std::os::fd::AsFd,
    path: &Path,
    recorded: Option<Attributes>,
    default_mode: u32,
    owners: bool,
) -> Result<()> {
    if let Some(attributes) = recorded.filter(|_| owners) {
        let (uid, gid) = ids(attributes);
        rustix::fs::fchown(&fd, Some(uid), Some(gid))
            .map_err(|err| Error::io("set the owner of", path, err.into()))?;
    }
    let mode = recorded.map_or(default_mode, |a| a.mode);
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode as _))
        .map_err(|err| Error::io("set the mode of", path, err.into()))
}

/// Gives the link `name` in `dir` its recorded owner, never following it
/// (a link's own mode means nothing on Linux).
pub fn apply_to_link(
    dir: impl std::os::fd::AsFd,
    name: &std::ffi::OsStr,
    path: &Path,
    recorded: Option<Attributes>,
    owners: bool,
) -> Result<()> {
    let Some(attributes) = recorded.filter(|_| owners) else {
        return Ok(());
    };
    let (uid, gid) = ids(attributes);
    rustix::fs::chownat(
        &dir,
        name,
        Some(uid),
        Some(gid),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|err| Error::io("set the owner of", path, err.into()))
}

fn ids(attributes: Attributes) -> (rustix::fs::Uid, rustix::fs::Gid) {
    (
        rustix::fs::Uid::from_raw(attributes.uid),
        rustix::fs::Gid::from_raw(attributes.gid),
    )
}

/// The access and modification times a restore sets, from a recorded mtime.
pub fn timestamps(mtime_ns: i64) -> rustix::fs::Timestamps {
    let at = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    rustix::fs::Timestamps {
        last_access: at,
        last_modification: at,
    }
}
