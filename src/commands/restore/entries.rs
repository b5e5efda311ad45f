//! Directories and symbolic links back, with their attributes. Directories
//! are made first (so empty ones come back, and files have somewhere to
//! go); links after the files; directories' modes, owners and mtimes last,
//! deepest first, because writing into a directory moves its mtime and a
//! read-only mode would stop the writes. Links are made, never followed.

use std::path::PathBuf;

use super::file::{MISSING, REPLACES, Restored};
use super::options::RestoreOptions;
use crate::error::{Error, Result};
use crate::local::attributes::{self, PRIVATE_DIR_MODE};
use crate::local::restore_dir::{Existing, RestoreDir};
use crate::manifest::FileRecord;

/// A record chosen for the restore, with its path relative to the target.
pub type Chosen<'a> = (&'a FileRecord, PathBuf);

/// Each recorded directory, made if it is missing.
pub fn make_directories(
    dir: &RestoreDir,
    dirs: &[Chosen<'_>],
    dry_run: bool,
) -> Vec<(PathBuf, Result<Restored>)> {
    dirs.iter()
        .map(|(_, relative)| {
            let made = match dir.slot(relative, dry_run) {
                Ok(Some(slot)) if dry_run => match slot.existing() {
                    Ok(Existing::Nothing) => Ok(Restored::WouldRestore(MISSING)),
                    Ok(_) => Ok(Restored::WouldRestore("there; its attributes would be set")),
                    Err(err) => Err(err),
                },
                Ok(None) => Ok(Restored::WouldRestore(MISSING)),
                Ok(Some(slot)) => slot.make_dir().map(|_| Restored::Directory),
                Err(err) => Err(err),
            };
            (relative.clone(), made)
        })
        .collect()
}

/// Each recorded link, made with its recorded target and owner.
pub fn make_links(
    dir: &RestoreDir,
    links: &[Chosen<'_>],
    options: &RestoreOptions,
    owners: bool,
) -> Vec<(PathBuf, Result<Restored>)> {
    links
        .iter()
        .map(|(record, relative)| {
            let made = make_link(dir, record, relative, options, owners);
            (relative.clone(), made)
        })
        .collect()
}

fn make_link(
    dir: &RestoreDir,
    record: &FileRecord,
    relative: &std::path::Path,
    options: &RestoreOptions,
    owners: bool,
) -> Result<Restored> {
    let Some(slot) = dir.slot(relative, options.dry_run)? else {
        return Ok(Restored::WouldRestore(MISSING));
    };
    let target = record.link_target.as_deref().unwrap_or_default();
    let existing = slot.link_target()?;
    if existing.as_deref().is_some_and(|t| t == target) {
        return Ok(Restored::AlreadyThere);
    }
    let occupied = slot.existing()? != Existing::Nothing;
    if options.dry_run {
        return Ok(Restored::WouldRestore(if occupied {
            REPLACES
        } else {
            MISSING
        }));
    }
    if occupied && !options.overwrite {
        return Err(Error::Refused {
            path: slot.path().to_path_buf(),
            detail: "something else is there; left alone (--overwrite replaces it)".into(),
        });
    }
    slot.make_symlink(target, occupied)?;
    slot.set_link_attributes(record.attributes(), record.mtime_ns, owners)?;
    Ok(Restored::Symlink)
}

/// Each recorded directory's mode (private where none was recorded),
/// owner and mtime, deepest first; returns the failures.
pub fn set_directory_attributes(
    dir: &RestoreDir,
    dirs: &[Chosen<'_>],
    owners: bool,
) -> Vec<(PathBuf, Error)> {
    let mut deepest_first: Vec<&Chosen<'_>> = dirs.iter().collect();
    deepest_first.sort_by_key(|(_, relative)| std::cmp::Reverse(relative.components().count()));
    deepest_first
        .into_iter()
        .filter_map(|(record, relative)| {
            let set = (|| {
                let Some(slot) = dir.slot(relative, false)? else {
                    return Ok(());
                };
                let fd = slot.make_dir()?;
                let recorded = record.attributes();
                attributes::apply(&fd, slot.path(), recorded, PRIVATE_DIR_MODE, owners)?;
                match record.mtime_ns {
                    Some(mtime_ns) => slot.set_mtime(&fd, mtime_ns),
                    None => Ok(()),
                }
            })();
            set.err().map(|err| (relative.clone(), err))
        })
        .collect()
}
