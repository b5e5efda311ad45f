//! The prune record: what a prune will delete, written under
//! `<prefix>/_manifests/prune/` before the first deletion. A prune that
//! is killed leaves its record unfinished, and the next one finishes it
//! (deleting a version that is already gone succeeds), so a prune is
//! crash-safe and idempotent. An unfinished record is named `.pending.json`,
//! so a listing finds it without reading any record. Once finished, it is
//! written again under its plain name with only its counts, and the
//! pending one is deleted: records stay small.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::local::hash::Md5Digest;
use crate::manifest::stamp;
use crate::store::{KeyRange, PutExtras, Store, WriteIf, keys};

/// The folder of the records, under the manifest folder.
const FOLDER: &str = "prune";

/// One version to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub key: String,
    pub version_id: String,
}

/// A version S3 would not delete, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    pub key: String,
    pub version_id: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneRecord {
    pub run_id: String,
    pub written_at: DateTime<Utc>,
    /// The grace period the deletions were judged with.
    pub keep_deleted_within: String,
    /// Keys hidden behind a delete marker by this prune.
    #[serde(default)]
    pub hidden: Vec<String>,
    /// What is to be deleted; emptied once the record is finished.
    #[serde(default)]
    pub deletions: Vec<Deletion>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deleted: u64,
    #[serde(default)]
    pub retained: Vec<Retained>,
}

/// A record as stored: its key, and the version that holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub version_id: Option<String>,
    pub record: PruneRecord,
}

/// What ends the name of an unfinished record.
const PENDING: &str = ".pending.json";

/// The key of the unfinished record of the prune `run_id`, started at `started`.
pub fn pending_key(prefix: &str, started: DateTime<Utc>, run_id: &str) -> String {
    keys::manifest_key(
        prefix,
        &format!("{FOLDER}/{}-{run_id}{PENDING}", stamp(started)),
    )
}

/// The key a record is finished under: its plain name.
fn done_key(pending_key: &str) -> String {
    pending_key
        .strip_suffix(PENDING)
        .map(|stem| format!("{stem}.json"))
        .unwrap_or_else(|| format!("{pending_key}.done.json"))
}

/// Writes the finished `record` under its plain name, then deletes the
/// pending one. A pending record that S3 keeps (Object Lock retains it
/// too) is finished all the same: the plain record beside it says so, the
/// next prune passes it by, and it comes back as retained for the report.
pub async fn finish(store: &Store, pending: &Stored) -> Result<Option<Retained>> {
    let mut record = pending.record.clone();
    record.deletions.clear();
    record.finished_at = Some(Utc::now());
    write(store, &done_key(&pending.key), &record).await?;
    let version = pending
        .version_id
        .clone()
        .unwrap_or_else(|| crate::store::NULL_VERSION.to_owned());
    let refused = store
        .delete_versions(&[(pending.key.clone(), version)])
        .await?;
    Ok(refused.into_iter().next().map(|r| Retained {
        key: r.key,
        version_id: r.version_id,
        why: format!(
            "{}: {} (the prune record is finished; its pending copy stays until its retention ends)",
            r.code, r.message
        ),
    }))
}

/// Writes `record` at `key` (SSE-KMS under the configured key, as every
/// object); returns the version S3 gave it.
pub async fn write(store: &Store, key: &str, record: &PruneRecord) -> Result<Option<String>> {
    let body = serde_json::to_vec(record)?;
    let md5 = Md5Digest::of(&body);
    let stored = store
        .put(key, body, md5, PutExtras::JSON, WriteIf::Always)
        .await?;
    Ok(stored.version_id)
}

/// The records a prune left unfinished, oldest first.
pub async fn unfinished(store: &Store, prefix: &str) -> Result<Vec<Stored>> {
    let folder = keys::manifest_key(prefix, &format!("{FOLDER}/"));
    let all: BTreeSet<String> = store
        .list(&folder, &[KeyRange::default()])
        .await?
        .into_iter()
        .map(|object| object.key)
        .collect();
    // A pending record beside its finished one was kept by retention.
    let listed = all
        .iter()
        .filter(|key| key.ends_with(PENDING) && !all.contains(&done_key(key)))
        .cloned();
    let mut open = Vec::new();
    for key in listed {
        let Some(fetched) = store.get(&key).await? else {
            continue;
        };
        let version_id = fetched.version_id.clone();
        let body = fetched.bytes().await?;
        let record: PruneRecord = serde_json::from_slice(&body).map_err(|err| {
            Error::Config(format!(
                "prune record {} does not parse ({err}); remove it once its deletions are checked",
                store.uri(&key)
            ))
        })?;
        open.push(Stored {
            key,
            version_id,
            record,
        });
    }
    Ok(open)
}
