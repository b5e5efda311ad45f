//! A restored file survives a crash only once the directory that names it
//! is synced too, and each new directory once its parent is. Each directory
//! is synced once, after all its files were moved in; a file counts as
//! restored only when every directory above it was synced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::Restored;
use crate::error::{Error, Result};
use crate::local::restore_dir::RestoreDir;

/// `results`, with each written file whose directory could not be synced
/// turned into that failure.
pub fn sync_directories(
    dir: &RestoreDir,
    mut results: Vec<(PathBuf, Result<Restored>)>,
) -> Vec<(PathBuf, Result<Restored>)> {
    let mut synced: BTreeMap<PathBuf, std::result::Result<(), String>> = BTreeMap::new();
    for (path, result) in results.iter().filter(|(_, r)| is_written(r)) {
        // A directory's own attributes live in its own inode.
        let own = usize::from(!matches!(result, Ok(Restored::Directory)));
        for ancestor in path.ancestors().skip(own) {
            if synced.contains_key(ancestor) {
                break;
            }
            let outcome = dir.sync(ancestor).map_err(|err| err.to_string());
            synced.insert(ancestor.to_path_buf(), outcome);
        }
    }
    for (path, result) in results.iter_mut().filter(|(_, r)| is_written(r)) {
        if let Some(detail) = first_unsynced(path, &synced) {
            *result = Err(Error::Refused {
                path: dir.path().join(&*path),
                detail: format!("written, but not durable: {detail}"),
            });
        }
    }
    results
}

fn is_written(result: &Result<Restored>) -> bool {
    matches!(
        result,
        Ok(Restored::Written { .. } | Restored::Directory | Restored::Symlink)
    )
}

fn first_unsynced<'a>(
    path: &Path,
    synced: &'a BTreeMap<PathBuf, std::result::Result<(), String>>,
) -> Option<&'a str> {
    path.ancestors()
        .skip(1)
        .find_map(|a| synced.get(a).and_then(|r| r.as_ref().err()))
        .map(String::as_str)
}
