//! What a restore gives back besides a file's bytes: its permission bits,
//! owner and group (and, for directories and links, their mtime).

use serde::{Deserialize, Serialize};

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

/// A stat's mtime in nanoseconds since the epoch.
#[allow(clippy::unnecessary_cast)]
pub fn mtime_ns(stat: &rustix::fs::Stat) -> i64 {
    stat.st_mtime as i64 * 1_000_000_000 + stat.st_mtime_nsec as i64
}
