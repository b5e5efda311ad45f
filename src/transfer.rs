//! One file from disk to S3: hash, look up, decide, upload.
//!
//! Files up to the multipart threshold are read once into memory and sent
//! from that buffer. Larger files are hashed by streaming, then sent part by
//! part, so one file in flight holds at most one part in memory.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::hash::{Md5Digest, Md5Stream, md5_read};
use crate::plan::{Action, decide, part_size_for};
use crate::remote::{PutExtras, Remote, RemoteObject, Stored, WriteIf};
use crate::source::{SourceDir, stamp_of};
use crate::state::{Known, Presence, unchanged_remotely};
use crate::walk::LocalFile;

/// How files are sent.
#[derive(Debug, Clone, Copy)]
pub struct TransferSettings {
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub dry_run: bool,
    /// A multipart upload still running at this instant is aborted between parts.
    pub stop_at: Option<Instant>,
}

/// What happened to one file.
#[derive(Debug)]
pub enum Outcome {
    Uploaded {
        stored: Stored,
        reason: &'static str,
    },
    Skipped {
        /// The stored object's ETag, kept for the next run's check, and its
        /// version id: the version that holds this file's content.
        stored: Stored,
        reason: &'static str,
    },
    WouldUpload {
        reason: &'static str,
    },
}

/// The result for one file. `md5` is known as soon as the file was hashed
/// (or trusted from the last manifest), even if the file then failed.
#[derive(Debug)]
pub struct FileResult {
    pub md5: Option<Md5Digest>,
    /// Bytes of the file read from disk.
    pub bytes_read: u64,
    pub outcome: Result<Outcome>,
}

/// What the run already knows of this file's key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prior<'a> {
    /// The last manifest's entry for the key.
    pub known: Option<&'a Known>,
    /// The key in this run's listing; `None` when the run has no listing.
    pub presence: Option<Presence<'a>>,
    /// Whether an entry whose stamp matches may stand in for reading the file.
    pub trust_stamp: bool,
}

pub async fn sync_file(
    remote: &Remote,
    source: &SourceDir,
    settings: TransferSettings,
    file: &LocalFile,
    key: &str,
    prior: Prior<'_>,
) -> FileResult {
    let mut result = FileResult {
        md5: None,
        bytes_read: 0,
        outcome: Ok(Outcome::WouldUpload { reason: "" }),
    };
    result.outcome = send_if_changed(remote, source, settings, file, key, prior, &mut result).await;
    result
}

async fn send_if_changed(
    remote: &Remote,
    source: &SourceDir,
    settings: TransferSettings,
    file: &LocalFile,
    key: &str,
    prior: Prior<'_>,
    result: &mut FileResult,
) -> Result<Outcome> {
    // An unchanged stamp that had settled vouches for the MD5 the last run computed.
    let trusted = prior
        .known
        .filter(|known| prior.trust_stamp && known.settled && known.stamp == file.stamp)
        .map(|known| known.md5);
    let (mut content, mut md5) = match trusted {
        Some(md5) => (None, md5),
        None => read_and_hash(source, file, settings.multipart_threshold, result).await?,
    };
    result.md5 = Some(md5);

    let existing = match (prior.presence, prior.known) {
        (None, _) => remote.head(key).await?,
        (Some(Presence::Absent), _) => None,
        // Same ETag and size as this tool's own upload: the recorded MD5 still holds.
        (Some(presence @ Presence::Present { etag, size }), Some(known))
            if unchanged_remotely(known, presence) =>
        {
            Some(RemoteObject {
                md5: Some(known.md5.hex()),
                etag: etag.map(str::to_owned),
                size: size.and_then(|s| i64::try_from(s).ok()),
                version_id: known.version_id.as_deref().map(str::to_owned),
                ..RemoteObject::default()
            })
        }
        (Some(Presence::Present { .. }), _) => remote.head(key).await?,
    };
    let action = decide(&md5.hex(), existing.as_ref());
    debug!(key, ?action, md5 = %md5.hex(), trusted = trusted.is_some(), "decided");
    let reason = match action {
        Action::Skip(reason) => {
            let stored = existing.map(Stored::from).unwrap_or_default();
            return Ok(Outcome::Skipped { stored, reason });
        }
        Action::Upload(reason) if settings.dry_run => return Ok(Outcome::WouldUpload { reason }),
        Action::Upload(reason) => reason,
    };
    if trusted.is_some() {
        // The upload needs the bytes, and their MD5 as they are now.
        (content, md5) = read_and_hash(source, file, settings.multipart_threshold, result).await?;
        result.md5 = Some(md5);
    }
    let stored = match content {
        Some(bytes) => {
            remote
                .put(key, bytes, md5, PutExtras::default(), WriteIf::Always)
                .await?
        }
        None => upload_multipart(remote, source, settings, file, key, md5, result).await?,
    };
    Ok(Outcome::Uploaded { stored, reason })
}

/// Small files come back in memory with their MD5; large ones only hashed.
async fn read_and_hash(
    source: &SourceDir,
    file: &LocalFile,
    threshold: u64,
    result: &mut FileResult,
) -> Result<(Option<Vec<u8>>, Md5Digest)> {
    result.bytes_read += file.size;
    let (source, file) = (source.clone(), file.clone());
    tokio::task::spawn_blocking(move || {
        let mut handle = source.open_file(&file.relative)?;
        if file.size <= threshold {
            let mut bytes = Vec::with_capacity(file.size as usize);
            handle
                .read_to_end(&mut bytes)
                .map_err(|err| Error::io("read", &file.path, err))?;
            ensure_unchanged(&file, &handle, bytes.len() as u64)?;
            let md5 = Md5Digest::of(&bytes);
            Ok((Some(bytes), md5))
        } else {
            let (md5, read) = md5_read(&handle, &file.path)?;
            ensure_unchanged(&file, &handle, read)?;
            Ok((None, md5))
        }
    })
    .await?
}

/// Fails when the open file is not the one the walk saw (another inode), or
/// its size or times moved since, or the bytes read disagree with its size:
/// such a read may be torn.
fn ensure_unchanged(file: &LocalFile, handle: &File, bytes_read: u64) -> Result<()> {
    let now = stamp_of(handle, &file.path)?;
    let detail = if now.inode != file.stamp.inode {
        "it was replaced by another file".to_owned()
    } else if bytes_read != file.size {
        format!("{bytes_read} bytes read, {} expected", file.size)
    } else if now.size != file.size {
        format!("size went from {} to {}", file.size, now.size)
    } else if now != file.stamp {
        "modification or change time moved".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::Changed {
        path: file.path.clone(),
        detail,
    })
}

async fn upload_multipart(
    remote: &Remote,
    source: &SourceDir,
    settings: TransferSettings,
    file: &LocalFile,
    key: &str,
    md5: Md5Digest,
    result: &mut FileResult,
) -> Result<Stored> {
    result.bytes_read += file.size;
    let upload_id = remote.create_multipart(key, md5).await?;
    let sent = send_parts(remote, source, settings, file, key, &upload_id, md5).await;
    let mut completion_failed = false;
    let completed = match sent {
        Ok(parts) => match remote.complete_multipart(key, &upload_id, parts).await {
            // A retried completion whose first attempt went through finds no
            // upload any more; the object itself says whether it is ours.
            Err(err @ Error::S3 { .. }) => {
                completion_failed = true;
                stored_instead(remote, key, md5).await.unwrap_or(Err(err))
            }
            done => done,
        },
        Err(err) => Err(err),
    };
    // After a failed completion the object found may be an older copy, and
    // the upload still open: its parts would stay, billed and invisible.
    // Aborting an upload that did complete only answers NoSuchUpload.
    if (completed.is_err() || completion_failed)
        && let Err(abort) = remote.abort_multipart(key, &upload_id).await
    {
        warn!(key, upload_id, error = %abort, "could not abort multipart upload");
    }
    completed
}

/// After a failed completion: the stored object if it holds the file's MD5,
/// provided it is under the configured key.
async fn stored_instead(remote: &Remote, key: &str, md5: Md5Digest) -> Option<Result<Stored>> {
    match remote.head(key).await {
        Ok(Some(found)) if found.md5.as_deref() == Some(md5.hex().as_str()) => Some(
            remote
                .check_stored_encryption(key, &found)
                .map(|()| Stored::from(found)),
        ),
        _ => None,
    }
}

async fn send_parts(
    remote: &Remote,
    source: &SourceDir,
    settings: TransferSettings,
    file: &LocalFile,
    key: &str,
    upload_id: &str,
    md5: Md5Digest,
) -> Result<Vec<aws_sdk_s3::types::CompletedPart>> {
    let part_size = part_size_for(file.size, settings.part_size);
    let handle = Arc::new(source.open_file(&file.relative)?);
    let mut whole = Md5Stream::default();
    let mut parts = Vec::new();
    let mut offset = 0u64;
    let mut number = 1i32;
    while offset < file.size {
        if settings.stop_at.is_some_and(|at| Instant::now() >= at) {
            return Err(Error::Stopped {
                path: file.path.clone(),
            });
        }
        let length = part_size.min(file.size - offset);
        let (bytes, hasher) = read_part(&handle, &file.path, offset, length, whole).await?;
        whole = hasher;
        parts.push(remote.upload_part(key, upload_id, number, bytes).await?);
        offset += length;
        number += 1;
    }
    // The parts must add up to the content whose MD5 went into the metadata.
    ensure_unchanged(file, &handle, offset)?;
    let sent = whole.finish();
    if sent != md5 {
        return Err(Error::Changed {
            path: file.path.clone(),
            detail: format!("content MD5 went from {} to {}", md5.hex(), sent.hex()),
        });
    }
    Ok(parts)
}

async fn read_part(
    handle: &Arc<File>,
    path: &Path,
    offset: u64,
    length: u64,
    mut hasher: Md5Stream,
) -> Result<(Vec<u8>, Md5Stream)> {
    let handle = Arc::clone(handle);
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut bytes = vec![0u8; length as usize];
        handle
            .read_exact_at(&mut bytes, offset)
            .map_err(|err| Error::io("read", &path, err))?;
        hasher.update(&bytes);
        Ok((bytes, hasher))
    })
    .await?
}
