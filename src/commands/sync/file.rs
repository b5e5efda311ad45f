//! One entry of the walk to one manifest record: hash, look up, decide,
//! upload. Files up to the multipart threshold are read once into memory and
//! sent from that buffer; larger ones are hashed by streaming, then sent part
//! by part (see [`super::upload`]).

use chrono::Utc;
use tracing::{debug, info, warn};

use super::budget::{Held, MemoryBudget};
use super::decide::{Action, decide};
use super::listing::{Presence, unchanged_remotely};
use super::options::SyncOptions;
use super::prior::{Prior, PriorState};
use super::scope::Scope;
use crate::error::Result;
use crate::local::hash::Md5Digest;
use crate::local::source::SourceDir;
use crate::local::walk::{Found, LocalFile};
use crate::manifest::{self, EntryKind, FileRecord, FileStatus};
use crate::run::RunContext;
use crate::run::progress::Progress;
use crate::store::{
    CopySource, Encryption, NULL_VERSION, Object, PutExtras, Store, Stored, WriteIf, keys,
};

/// What one file's transfer needs from its run.
pub struct Worker<'a> {
    pub store: &'a Store,
    /// The configured key prefix (the manifest folder is under it).
    pub prefix: &'a str,
    pub source: &'a SourceDir,
    pub options: &'a SyncOptions,
    pub scope: &'a Scope,
    pub run: &'a RunContext,
    pub prior: &'a PriorState,
    pub progress: &'a Progress,
    pub budget: &'a MemoryBudget,
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
    /// Unchanged, but copied in place under the configured key.
    Reencrypted {
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

impl Worker<'_> {
    /// One entry of the walk to one manifest record; `None` when the run's
    /// time was up (or its lease lost) before the entry was reached.
    pub async fn process(&self, item: Found) -> Option<FileRecord> {
        if !self.run.may_start() {
            return None;
        }
        let mut record = match item {
            Found::File(file) => self.process_file(&file).await,
            Found::Directory {
                path,
                attributes,
                mtime_ns,
                ..
            } => FileRecord::entry(&path, EntryKind::Directory, attributes, mtime_ns),
            Found::Symlink {
                path,
                target,
                attributes,
                mtime_ns,
                ..
            } => {
                let mut record = FileRecord::entry(&path, EntryKind::Symlink, attributes, mtime_ns);
                match target.into_string() {
                    Ok(target) => record.link_target = Some(target),
                    Err(_) => record.fail("its target is not valid UTF-8; not recorded".into()),
                }
                record
            }
            Found::Ignored { path, reason, .. } => {
                let mut record = FileRecord::new(&path, 0);
                record.status = FileStatus::Skipped;
                record.reason = Some(reason.into());
                record
            }
            Found::Unreadable { path, error, .. } => {
                let mut record = FileRecord::new(&path, 0);
                record.fail(error);
                record
            }
        };
        record.timestamp = manifest::timestamp(Utc::now());
        if let Some(error) = &record.error {
            warn!(path = %record.local_path, error, "file failed");
        }
        debug!(path = %record.local_path, status = ?record.status, reason = ?record.reason, "file done");
        self.progress.count(&record);
        Some(record)
    }

    async fn process_file(&self, file: &LocalFile) -> FileRecord {
        let mut record = FileRecord::new(&file.path, file.size);
        record.set_stamp(file.stamp);
        record.set_attributes(file.attributes);
        let key = match keys::file_key(self.prefix, &self.scope.key_prefix, &file.relative) {
            Ok(key) => key,
            Err(err) => {
                record.fail(err.to_string());
                return record;
            }
        };
        record.s3_uri = Some(self.store.uri(&key));
        let result = self.sync_file(file, &key, self.prior.prior(&key)).await;
        self.progress.read(result.bytes_read);
        record.s3_key = Some(key);
        record.md5 = result.md5.map(|m| m.hex());
        record.set_outcome(result.outcome);
        record
    }

    pub async fn sync_file(&self, file: &LocalFile, key: &str, prior: Prior<'_>) -> FileResult {
        let mut result = FileResult {
            md5: None,
            bytes_read: 0,
            outcome: Ok(Outcome::WouldUpload { reason: "" }),
        };
        result.outcome = self.send_if_changed(file, key, prior, &mut result).await;
        result
    }

    async fn send_if_changed(
        &self,
        file: &LocalFile,
        key: &str,
        prior: Prior<'_>,
        result: &mut FileResult,
    ) -> Result<Outcome> {
        // An unchanged stamp that had settled vouches for the MD5 the last run computed.
        let trusted = prior
            .recorded
            .filter(|rec| prior.trust_stamp && rec.settled && rec.stamp == file.stamp)
            .map(|rec| rec.md5);
        let (mut content, mut md5) = match trusted {
            Some(md5) => (None, md5),
            None => self.read_and_hash(file, result).await?,
        };
        result.md5 = Some(md5);

        let existing = match (&prior.presence, prior.recorded) {
            (None, _) => self.store.head(key).await?,
            (Some(Presence::Absent), _) => None,
            // Same ETag and size as this tool's own upload: the recorded MD5
            // and encryption still hold. A record that names no key (from an
            // older manifest) is checked by a HEAD once.
            (
                Some(
                    presence @ Presence::Present {
                        etag,
                        size,
                        storage_class,
                    },
                ),
                Some(recorded),
            ) if unchanged_remotely(recorded, presence) => match recorded.kms_key_id.as_deref() {
                Some(kms_key) => Some(Object {
                    md5: Some(recorded.md5.hex()),
                    etag: etag.as_ref().map(ToString::to_string),
                    size: size.and_then(|s| i64::try_from(s).ok()),
                    version_id: recorded.version_id.as_deref().map(str::to_owned),
                    encryption: Some(Encryption::kms(kms_key, recorded.bucket_key)),
                    storage_class: storage_class.map(str::to_owned),
                    ..Object::default()
                }),
                None => self.store.head(key).await?,
            },
            (Some(Presence::Present { .. }), _) => self.store.head(key).await?,
        };
        let action = decide(&md5.hex(), existing.as_ref(), prior.recorded);
        debug!(key, ?action, md5 = %md5.hex(), trusted = trusted.is_some(), "decided");
        let reason = match action {
            Action::Skip(reason) => {
                let object = existing.unwrap_or_default();
                return self.keep_under_configured_key(key, object, reason).await;
            }
            Action::Upload(reason) if self.scope.dry_run => {
                info!(path = %file.relative.display(), reason, "would upload");
                return Ok(Outcome::WouldUpload { reason });
            }
            Action::Upload(reason) => reason,
        };
        if trusted.is_some() {
            // The upload needs the bytes, and their MD5 as they are now.
            (content, md5) = self.read_and_hash(file, result).await?;
            result.md5 = Some(md5);
        }
        let stored = match content {
            // The share of the budget is held until the bytes are sent.
            Some(Held {
                bytes,
                share: _share,
            }) => {
                self.store
                    .put(key, bytes, md5, PutExtras::default(), WriteIf::Always)
                    .await?
            }
            None => self.upload_multipart(file, key, md5, result).await?,
        };
        Ok(Outcome::Uploaded { stored, reason })
    }
}

impl Worker<'_> {
    /// An unchanged object stays as it is only under the configured key
    /// with a Bucket Key; otherwise it is re-encrypted in place, without
    /// reading the file or sending its bytes.
    async fn keep_under_configured_key(
        &self,
        key: &str,
        object: Object,
        reason: &'static str,
    ) -> Result<Outcome> {
        let finding = object
            .encryption
            .as_ref()
            .and_then(|e| self.store.noncompliance(e))
            .filter(|f| f.copyable());
        let (Some(finding), Some(etag)) = (finding, object.etag.as_deref()) else {
            return Ok(Outcome::Skipped {
                stored: object.into(),
                reason,
            });
        };
        if self.scope.dry_run {
            return Ok(Outcome::Skipped {
                stored: object.clone().into(),
                reason: "unchanged; a run that is not dry re-encrypts it",
            });
        }
        let source = CopySource {
            key,
            etag,
            size: object.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            storage_class: object.storage_class.as_deref(),
        };
        let stored = self.store.reencrypt(source).await?;
        Ok(Outcome::Reencrypted {
            stored,
            reason: finding.reencrypted_reason(),
        })
    }
}

impl FileRecord {
    fn set_outcome(&mut self, outcome: Result<Outcome>) {
        let (status, reason, stored) = match outcome {
            Ok(Outcome::Uploaded { stored, reason }) => {
                (FileStatus::Uploaded, reason, Some(stored))
            }
            Ok(Outcome::Skipped { stored, reason }) => (FileStatus::Skipped, reason, Some(stored)),
            Ok(Outcome::Reencrypted { stored, reason }) => {
                (FileStatus::Reencrypted, reason, Some(stored))
            }
            Ok(Outcome::WouldUpload { reason }) => (FileStatus::WouldUpload, reason, None),
            Err(err) => return self.fail(err.to_string()),
        };
        self.status = status;
        self.reason = Some(reason.into());
        if let Some(stored) = stored {
            self.etag = stored.etag;
            self.version_id = Some(stored.version_id.unwrap_or_else(|| NULL_VERSION.into()));
            self.kms_key_id = stored.encryption.kms_key_id;
            self.bucket_key = stored.encryption.bucket_key_enabled;
        }
    }
}
