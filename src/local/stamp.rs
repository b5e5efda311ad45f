//! A file's stamp (size, times, inode) and when it may stand in for the
//! content it was taken with.

use serde::{Deserialize, Serialize};

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
        Stamp {
            size: stat.st_size as u64,
            mtime_ns: mtime_ns(stat),
            ctime_ns: ns(stat.st_ctime as i64, stat.st_ctime_nsec as i64),
            inode: stat.st_ino as u64,
        }
    }
}

/// A stat's mtime in nanoseconds since the epoch.
#[allow(clippy::unnecessary_cast)]
pub fn mtime_ns(stat: &rustix::fs::Stat) -> i64 {
    ns(stat.st_mtime as i64, stat.st_mtime_nsec as i64)
}

fn ns(secs: i64, nanos: i64) -> i64 {
    secs * 1_000_000_000 + nanos
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
