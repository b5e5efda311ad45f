//! The local manifest directory. Its copies only save a run the download of
//! the last manifest; they are never trusted for more than S3 vouches for:
//! - the default directory is private to the user (0700), and copies are
//!   written readable by their owner only (0600);
//! - a copy is opened without following links or blocking, and only if it is
//!   a regular file;
//! - a copy stands in for the S3 manifest only when its SHA-256 equals the
//!   one stored with that object, or when the trusted key signed it (its
//!   signature is kept beside it, `<name>.sig`) and S3 lists it as the
//!   newest (the caller checks either).

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::read::{HEADER_LIMIT, Header, read, read_header};
use super::{is_full_manifest_name, is_index_for, is_manifest_name, scope_tag_of};
use crate::error::{Error, Result};
use crate::local::hash::{Sha256Reader, Sha256Stream};
use crate::trust::Signature;

/// The CLI's default: `$XDG_STATE_HOME/s3-kms-sync`, else
/// `~/.local/state/s3-kms-sync`, else a per-user folder in the temporary
/// directory. Created private; refused if anyone else could write to it.
pub fn private_default() -> Result<PathBuf> {
    let env_dir = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = match (env_dir("XDG_STATE_HOME"), env_dir("HOME")) {
        (Some(state), _) => state.join("s3-kms-sync"),
        (None, Some(home)) => home.join(".local/state/s3-kms-sync"),
        (None, None) => {
            let uid = rustix::process::geteuid().as_raw();
            std::env::temp_dir().join(format!("s3-kms-sync-{uid}"))
        }
    };
    prepare(&dir)?;
    let meta = std::fs::symlink_metadata(&dir).map_err(|err| not_usable(&dir, &err.to_string()))?;
    let uid = rustix::process::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(not_usable(
            &dir,
            &format!(
                "it must be a directory owned by uid {uid} with mode 0700 (it is owned by {} with mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(dir)
}

/// Creates `dir` (and its parents) private to the user if it is absent.
pub fn prepare(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| not_usable(dir, &err.to_string()))
}

fn not_usable(dir: &Path, why: &str) -> Error {
    Error::Config(format!(
        "cannot use the manifest directory {} ({why}): set SYNC_MANIFEST_DIR or pass --manifest-dir",
        dir.display()
    ))
}

/// A new file readable by its owner only. Whatever had the name before (a
/// partial copy left by a crash, a planted FIFO or link) is removed first,
/// and the file is created exclusively, so nothing but a new file is opened.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Opens a regular file for reading, refusing links and never blocking on a
/// FIFO or device.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// A local copy of a manifest: what a reader took from it, the SHA-256 of
/// its bytes, and the signature uploaded with it, if any.
#[derive(Debug)]
pub struct LocalCopy<T> {
    pub name: String,
    pub header: Header,
    pub content: T,
    pub sha256: String,
    pub signature: Option<Signature>,
}

/// Where the signature of the local copy `manifest` is kept.
fn signature_path(manifest: &Path) -> PathBuf {
    let mut path = manifest.as_os_str().to_owned();
    path.push(".sig");
    PathBuf::from(path)
}

/// Keeps the signature uploaded with the manifest whose local copy is
/// `manifest`, so a later run can prove the copy without asking S3.
pub fn write_signature(manifest: &Path, signature: &Signature) -> std::io::Result<()> {
    let mut file = create_private(&signature_path(manifest))?;
    serde_json::to_writer(&mut file, signature)?;
    file.sync_all()
}

/// The signature kept beside the local copy `manifest`, if any.
fn read_signature(manifest: &Path) -> Option<Signature> {
    let file = open_regular(&signature_path(manifest)).ok()?;
    // A signature is under 200 bytes; anything larger is not one.
    serde_json::from_reader(std::io::Read::take(file, 4096)).ok()
}

/// The newest local copy of a full manifest of this bucket, prefix and
/// scope (not a dry run's), read record by record into `content` with `each`.
pub fn newest<T, R>(
    dir: &Path,
    bucket: &str,
    key_prefix: &str,
    scope_tag: Option<&str>,
    each: fn(&mut T, R),
) -> Option<LocalCopy<T>>
where
    T: Default,
    R: DeserializeOwned,
{
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| is_index_for(name, scope_tag))
        .collect();
    names.sort_unstable();
    // Only the newest few: the directory may hold other buckets' manifests.
    names.into_iter().rev().take(5).find_map(|name| {
        let copy = read_copy(&dir.join(&name), name, each)
            .inspect_err(|err| warn!(error = %err, "local manifest copy not used"))
            .ok()?;
        let header = &copy.header;
        // A paged snapshot's local copy is not the object S3 holds: the
        // next run reads its pages, from the page cache.
        let ours = header.describes(bucket, key_prefix) && !header.dry_run && header.root.is_none();
        if !ours {
            debug!(
                name = copy.name,
                "local manifest of another bucket or prefix"
            );
        }
        ours.then_some(copy)
    })
}

/// What ends the name of a compressed local copy (a paged snapshot's).
pub const COMPRESSED: &str = ".gz";

/// Removes the local copies of this bucket and prefix that `kept` (the copy
/// just written, and stored in S3) supersedes: every older one when `kept`
/// is a full manifest, the older narrowed ones when it is narrowed (the
/// newest full copy is still the next run's index then). At a million files
/// a copy is hundreds of megabytes, and `/tmp` under Lambda is 512 MB by
/// default. Returns how many were removed.
pub fn prune_superseded(dir: &Path, bucket: &str, key_prefix: &str, kept: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // A full copy supersedes the older ones of its own scope only: each
    // scope's newest copy is its next run's index.
    let kept_full = is_full_manifest_name(kept);
    let kept_scope = scope_tag_of(kept);
    // A compressed copy is judged by its name without the suffix.
    let plain = |name: &String| name.strip_suffix(COMPRESSED).unwrap_or(name).to_owned();
    let superseded = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .map(|name| (plain(&name), name))
        .filter(|(plain, _)| is_manifest_name(plain) && plain.as_str() < kept)
        .filter(|(plain, _)| {
            !is_full_manifest_name(plain) || (kept_full && scope_tag_of(plain) == kept_scope)
        });
    let mut removed = 0;
    for (_, name) in superseded {
        let path = dir.join(&name);
        // The header alone: the records may be hundreds of megabytes.
        let ours = open_regular(&path)
            .ok()
            .and_then(|file| match name.ends_with(COMPRESSED) {
                true => read_header(flate2::read::GzDecoder::new(file), HEADER_LIMIT),
                false => read_header(file, HEADER_LIMIT),
            })
            .map(|h| h.describes(bucket, key_prefix));
        if ours == Some(true) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(err) => {
                    warn!(path = %path.display(), error = %err, "superseded local manifest not removed")
                }
            }
            let _ = std::fs::remove_file(signature_path(&path));
        }
    }
    removed
}

fn read_copy<T: Default, R: DeserializeOwned>(
    path: &Path,
    name: String,
    each: fn(&mut T, R),
) -> Result<LocalCopy<T>> {
    let file = open_regular(path).map_err(|err| Error::io("open", path, err))?;
    let mut reader = Sha256Reader {
        inner: std::io::BufReader::new(file),
        hash: Sha256Stream::default(),
    };
    let mut content = T::default();
    let header = read(&mut reader, |record| each(&mut content, record))?;
    // Trailing bytes after the document count towards the digest too.
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|err| Error::io("read", path, err))?;
    Ok(LocalCopy {
        name,
        header,
        content,
        sha256: reader.hash.finish_hex(),
        signature: read_signature(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_new_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let file = create_private(&path).unwrap();
        let mode = file.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        assert!(open_regular(&dir.path().join("link")).is_err());
        assert!(open_regular(dir.path()).is_err());
        std::fs::write(dir.path().join("ok"), b"{}").unwrap();
        assert!(open_regular(&dir.path().join("ok")).is_ok());
    }

    #[test]
    fn only_superseded_copies_of_the_same_prefix_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let copy = |name: &str, bucket: &str, prefix: &str| {
            let header = format!(
                r#"{{"run_id":"r","source_dir":"","walked_dir":"","bucket":"{bucket}","prefix":"{prefix}","kms_key_id":"k","dry_run":false,"complete":true,"files":[]}}"#
            );
            std::fs::write(dir.path().join(name), header).unwrap();
        };
        copy("20260101T000000.000Z-a.json", "b", "p/");
        copy("20260102T000000.000Z-b.narrowed.json", "b", "p/");
        copy("20260103T000000.000Z-c.json", "other", "p/");
        copy("20260104T000000.000Z-d.json", "b", "p/");
        copy("20260105T000000.000Z-e.narrowed.json", "b", "p/");
        // A narrowed run keeps the full copy before it, the next run's index.
        assert_eq!(
            prune_superseded(
                dir.path(),
                "b",
                "p/",
                "20260105T000000.000Z-e.narrowed.json"
            ),
            1
        );
        assert!(dir.path().join("20260104T000000.000Z-d.json").exists());
        copy("20260106T000000.000Z-f.json", "b", "p/");
        assert_eq!(
            prune_superseded(dir.path(), "b", "p/", "20260106T000000.000Z-f.json"),
            3
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["20260103T000000.000Z-c.json", "20260106T000000.000Z-f.json"],
            "another bucket's copy stays"
        );
    }

    #[test]
    fn a_new_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b");
        prepare(&made).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
