//! Whether the manifest directory has room for a run. A run keeps its
//! spool, its sorted records and its new manifest there (beside the last
//! manifest's copy); one that fills it fails after its files were uploaded,
//! so the room is judged before the first upload.

use std::path::Path;

use crate::error::{Error, Result};
use crate::run::Mode;
use crate::units::human_bytes;

/// What a run adds to the manifest directory at its peak, per file:
/// 1,138 B a file was measured at the peak of a first run of 20,000 files
/// (the spool, the sorted runs and the new manifest); a warm run's peak of
/// 1,750 B a file includes the last manifest's copy, already on disk.
pub const BYTES_PER_FILE: u64 = 1_150;

/// The file system holding a directory: bytes free for this process, and
/// bytes in use.
struct Room {
    free: u64,
    used: u64,
}

fn room(dir: &Path) -> Result<Room> {
    let stat = rustix::fs::statvfs(dir).map_err(|err| Error::io("stat", dir, err.into()))?;
    let block = stat.f_frsize;
    Ok(Room {
        free: stat.f_bavail.saturating_mul(block),
        used: stat
            .f_blocks
            .saturating_sub(stat.f_bfree)
            .saturating_mul(block),
    })
}

/// Refuses a run of about `files` files when `dir` has less room than it
/// needs, naming the setting that gives more.
pub fn check(dir: &Path, files: u64, mode: Mode) -> Result<()> {
    let needed = files.saturating_mul(BYTES_PER_FILE);
    let Room { free, used } = room(dir)?;
    if needed <= free {
        return Ok(());
    }
    let fix = match mode {
        // What is already there (the last manifest's copy) stays.
        Mode::Lambda => format!(
            "raise the function's EphemeralStorageSize to at least {} MB (its /tmp) and deploy again",
            used.saturating_add(needed).div_ceil(1 << 20)
        ),
        Mode::Cli => {
            "pass --manifest-dir (SYNC_MANIFEST_DIR) a directory on a file system with that much room"
                .to_owned()
        }
    };
    Err(Error::Config(format!(
        "the manifest directory {} has {} free, and a run of about {files} files keeps up to {} there ({BYTES_PER_FILE} B a file at its peak): nothing was uploaded; {fix}",
        dir.display(),
        human_bytes(free),
        human_bytes(needed),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_fits_passes_and_one_that_does_not_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), 1, Mode::Cli).unwrap();
        let huge = u64::MAX / BYTES_PER_FILE;
        let cli = check(dir.path(), huge, Mode::Cli).unwrap_err().to_string();
        assert!(
            cli.contains("--manifest-dir") && cli.contains("nothing was uploaded"),
            "{cli}"
        );
        let lambda = check(dir.path(), huge, Mode::Lambda)
            .unwrap_err()
            .to_string();
        assert!(lambda.contains("EphemeralStorageSize"), "{lambda}");
    }
}
