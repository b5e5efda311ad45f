//! Reading a file safely, and sending a large one part by part, so one file
//! in flight holds at most one part in memory.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_s3::types::CompletedPart;
use futures::{StreamExt, TryStreamExt, stream};

use tracing::warn;

use super::budget::Held;
use super::file::{FileResult, Worker};
use crate::error::{Error, Result};
use crate::local::hash::{Md5Digest, Md5Stream, READ_BUFFER, md5_read};
use crate::local::source::stamp_of;
use crate::local::walk::LocalFile;
use crate::store::multipart::part_size_for;
use crate::store::{Ranges, Stored, WriteIf};

impl<'a> Worker<'a> {
    /// Small files come back in memory with their MD5, holding their share
    /// of the memory budget; large ones are only hashed, holding a read
    /// buffer's share while they are.
    pub(super) async fn read_and_hash(
        &self,
        file: &LocalFile,
        result: &mut FileResult,
    ) -> Result<(Option<Held<'a>>, Md5Digest)> {
        result.bytes_read += file.size;
        let threshold = self.options.multipart_threshold;
        // A large file is only hashed, but its read buffer counts too:
        // hundreds of them at once would hold hundreds of buffers.
        let share = match file.size <= threshold {
            true => self.budget.reserve(file.size).await,
            false => self.budget.reserve(READ_BUFFER as u64).await,
        };
        let (source, file) = (self.source.clone(), file.clone());
        let (bytes, md5) = tokio::task::spawn_blocking(move || -> Result<_> {
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
        .await??;
        let held = bytes.map(|bytes| Held { bytes, share });
        Ok((held, md5))
    }

    pub(super) async fn upload_multipart(
        &self,
        file: &LocalFile,
        key: &str,
        md5: Md5Digest,
        result: &mut FileResult,
    ) -> Result<Stored> {
        result.bytes_read += file.size;
        let upload_id = self.store.create_multipart(key, md5).await?;
        let sent = self.send_parts(file, key, &upload_id, md5).await;
        let mut completion_failed = false;
        let completed = match sent {
            Ok(parts) => match self
                .store
                .complete_multipart(key, &upload_id, parts, WriteIf::Always)
                .await
            {
                // A retried completion whose first attempt went through finds no
                // upload any more; the object itself says whether it is ours.
                Err(err @ Error::S3 { .. }) => {
                    completion_failed = true;
                    self.stored_instead(key, md5).await.unwrap_or(Err(err))
                }
                done => done,
            },
            Err(err) => Err(err),
        };
        // After a failed completion the object found may be an older copy, and
        // the upload still open: its parts would stay, billed and invisible.
        // Aborting an upload that did complete only answers NoSuchUpload.
        if (completed.is_err() || completion_failed)
            && let Err(abort) = self.store.abort_multipart(key, &upload_id).await
        {
            warn!(key, upload_id, error = %abort, "could not abort multipart upload");
        }
        completed
    }

    /// After a failed completion: the stored object if it holds the file's MD5,
    /// provided it is under the configured key.
    async fn stored_instead(&self, key: &str, md5: Md5Digest) -> Option<Result<Stored>> {
        match self.store.head(key).await {
            Ok(Some(found)) if found.md5.as_deref() == Some(md5.hex().as_str()) => Some(
                self.store
                    .check_stored_encryption(key, &found)
                    .map(|()| Stored::from(found)),
            ),
            _ => None,
        }
    }

    /// Sends the file's parts, `part_concurrency` at once. Parts are read
    /// one after another, in order, so the whole file's MD5 is taken on the
    /// way; each holds its share of the memory budget until it is sent.
    async fn send_parts(
        &self,
        file: &LocalFile,
        key: &str,
        upload_id: &str,
        md5: Md5Digest,
    ) -> Result<Vec<CompletedPart>> {
        let cut = Ranges {
            part_size: part_size_for(file.size, self.options.part_size),
            at_once: self.options.part_concurrency,
        };
        let handle = Arc::new(self.source.open_file(&file.relative)?);
        let whole = Mutex::new(Md5Stream::default());
        let read =
            stream::iter((1..).zip(cut.spans(file.size))).then(|(number, (offset, last))| {
                let (handle, whole) = (&handle, &whole);
                async move {
                    let length = last + 1 - offset;
                    self.check_time(file)?;
                    let share = self.budget.reserve(length).await;
                    let hasher = std::mem::take(&mut *whole.lock().expect("not poisoned"));
                    let (bytes, hasher) =
                        read_part(handle, &file.path, offset, length, hasher).await?;
                    *whole.lock().expect("not poisoned") = hasher;
                    Ok::<_, Error>((number, bytes, share))
                }
            });
        let sending = self.progress.sending();
        // Buffered, the reads go on while parts are in flight.
        let mut parts: Vec<CompletedPart> = read
            .map_ok(|(number, bytes, share)| {
                let sending = &sending;
                async move {
                    let length = bytes.len() as u64;
                    let part = self
                        .store
                        .upload_part(key, upload_id, number, bytes)
                        .await?;
                    drop(share);
                    sending.sent(length);
                    Ok(part)
                }
            })
            .try_buffer_unordered(cut.at_once)
            .try_collect()
            .await?;
        parts.sort_by_key(|part| part.part_number());
        // The parts must add up to the content whose MD5 went into the metadata.
        ensure_unchanged(file, &handle, file.size)?;
        let sent = whole.into_inner().expect("not poisoned").finish()?;
        if sent != md5 {
            return Err(Error::Changed {
                path: file.path.clone(),
                detail: format!("content MD5 went from {} to {}", md5.hex(), sent.hex()),
            });
        }
        Ok(parts)
    }

    fn check_time(&self, file: &LocalFile) -> Result<()> {
        match self.run.stop_at.is_some_and(|at| Instant::now() >= at) {
            true => Err(Error::Stopped {
                path: file.path.clone(),
            }),
            false => Ok(()),
        }
    }
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
