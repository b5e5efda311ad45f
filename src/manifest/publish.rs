//! A run's manifest written locally, then uploaded (not in a dry run).

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use tracing::{debug, warn};

use super::spool::SortedRecords;
use super::{Manifest, Snapshot, Summary, Written};
use crate::error::{Error, Result};
use crate::store::{PutExtras, Store, WriteIf, file_body, keys};

/// Writes the local copy, then uploads that file (not in a dry run).
/// Either failing is recorded in the summary; the run's results stand,
/// so nothing here is an `Err`. At a million files the manifest is large,
/// so it is streamed to disk and from disk, never held whole in memory.
pub async fn publish(
    store: &Store,
    prefix: &str,
    manifest_dir: &Path,
    manifest: Manifest,
    records: &SortedRecords,
    name: &str,
) -> Summary {
    let key = keys::manifest_key(prefix, name);
    let (bucket, key_prefix) = (manifest.bucket.clone(), manifest.prefix.clone());
    let summary = publish_as(store, manifest_dir, manifest, records, &key, name).await;
    if summary.manifest_s3_uri.is_some() && summary.manifest_local_path.is_some() {
        let removed = super::local_dir::prune_superseded(manifest_dir, &bucket, &key_prefix, name);
        if removed > 0 {
            debug!(removed, "superseded local manifests removed");
        }
    }
    summary
}

/// [`publish`] to any key (a shard's manifest), with the local copy named
/// `local_name`; supersedes no other copy.
pub async fn publish_as(
    store: &Store,
    manifest_dir: &Path,
    mut manifest: Manifest,
    records: &SortedRecords,
    key: &str,
    local_name: &str,
) -> Summary {
    let local = manifest_dir.join(local_name);
    manifest.summary.manifest_local_path = Some(local.display().to_string());
    if !manifest.dry_run {
        manifest.summary.manifest_s3_uri = Some(store.uri(key));
    }
    let written = match manifest.write_local(&local, records) {
        Ok(written) => Some(written),
        Err(err) => {
            warn!(path = %local.display(), error = %err, "local manifest write failed");
            manifest.summary.manifest_local_path = None;
            manifest.summary.record_manifest_error(&err);
            None
        }
    };
    if manifest.dry_run {
        return manifest.summary;
    }
    let uploaded = upload(store, &manifest, records, key, &local, written).await;
    if let Err(err) = uploaded {
        warn!(key, error = %err, "manifest upload failed");
        manifest.summary.manifest_s3_uri = None;
        manifest.summary.record_manifest_error(&err);
        // The local copy must not claim an upload that did not happen.
        if manifest.summary.manifest_local_path.is_some()
            && let Err(err) = manifest.write_local(&local, records)
        {
            warn!(path = %local.display(), error = %err, "local manifest rewrite failed");
        }
    }
    manifest.summary
}

/// Sends the local copy if there is one, else the document from memory,
/// with its SHA-256 so a later run can prove a local copy. A local copy
/// that vanishes while it is sent (a cleaner sweeping the directory) is
/// replaced by the document from memory.
async fn upload(
    store: &Store,
    manifest: &Manifest,
    records: &SortedRecords,
    key: &str,
    local: &Path,
    written: Option<Written>,
) -> Result<()> {
    let snapshot = Snapshot::of(manifest.complete, &manifest.summary);
    if let Some(written) = written
        && let Ok(body) = file_body(local).await
    {
        match put(store, key, body, &written, snapshot).await {
            Err(err) if std::fs::symlink_metadata(local).is_err() => {
                warn!(key, error = %err, "local manifest copy vanished while it was sent; sending it from memory");
            }
            sent => return sent,
        }
    }
    let (bytes, written) = manifest.to_json_with_digests(records)?;
    put(store, key, bytes.into(), &written, snapshot).await
}

async fn put(
    store: &Store,
    key: &str,
    body: ByteStream,
    written: &Written,
    snapshot: Snapshot,
) -> Result<()> {
    let extras = PutExtras {
        sha256: Some(&written.sha256),
        snapshot: Some(snapshot.as_str()),
        ..PutExtras::JSON
    };
    match store
        .put(key, body, written.md5, extras, WriteIf::Absent)
        .await
    {
        Ok(_) => Ok(()),
        // A retried PUT whose first attempt went through finds its own manifest.
        Err(err @ Error::PreconditionFailed { .. }) => match store.head(key).await {
            Ok(Some(stored)) if stored.sha256.as_deref() == Some(written.sha256.as_str()) => Ok(()),
            _ => Err(err),
        },
        Err(err) => Err(err),
    }
}
