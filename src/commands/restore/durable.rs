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
        for ancestor in holding(path, result) {
            if synced.contains_key(ancestor) {
                break;
            }
            let outcome = dir.sync(ancestor).map_err(|err| err.to_string());
            synced.insert(ancestor.to_path_buf(), outcome);
        }
    }
    for (path, result) in results.iter_mut().filter(|(_, r)| is_written(r)) {
        let unsynced = holding(path, result)
            .find_map(|a| synced.get(a).and_then(|r| r.as_ref().err()))
            .cloned();
        if let Some(detail) = unsynced {
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

/// The directories whose sync makes an entry durable: those above it, and
/// a directory itself, whose attributes live in its own inode.
fn holding<'a>(path: &'a Path, result: &Result<Restored>) -> impl Iterator<Item = &'a Path> {
    let own = usize::from(!matches!(result, Ok(Restored::Directory)));
    path.ancestors().skip(own)
}
