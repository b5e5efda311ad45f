//! `merge`: the last step of a sharded run. It reads the plan and each
//! shard's manifest, writes the run's manifest from them (a full manifest,
//! the next run's index, linked to the manifest before the plan), removes
//! the shard documents once that manifest is stored, and releases the lock.
//! A shard that stored no manifest leaves the run incomplete, never failed
//! silently: its files are simply not in this snapshot.

use chrono::Utc;
use serde::Deserialize;
use tracing::{info, warn};

use super::read_document;
use crate::commands::sync::SyncOptions;
use crate::error::Result;
use crate::local::range::PathRange;
use crate::manifest::publish::publish;
use crate::manifest::read::read_fetched;
use crate::manifest::spool::RecordSpool;
use crate::manifest::stream::Pinned;
use crate::manifest::{self, FileRecord, Manifest, SourceShrunk, Summary};
use crate::run::shard::{self, Plan, Shard};
use crate::run::{RunOptions, lease};
use crate::store::{KeyRange, Store};

/// What an invocation asks of `merge`: which run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub run_id: String,
}

/// What the shards' manifests add up to.
#[derive(Default)]
struct Shards {
    missing: Vec<u32>,
    /// Shard manifests not taken, and why.
    refused: Vec<String>,
    incomplete: Vec<u32>,
    found: u64,
    not_reached: u64,
    bytes_read: u64,
}

pub async fn run(
    store: &Store,
    prefix: &str,
    options: &RunOptions,
    sync: &SyncOptions,
    request: &MergeRequest,
) -> Result<Summary> {
    shard::check_run_id(&request.run_id)?;
    let store = &store.caching_pages(&options.manifest_dir, prefix);
    let run_id = &request.run_id;
    let plan: Plan = read_document(store, &shard::plan_key(prefix, run_id), "plan").await?;
    let listed: Vec<Shard> =
        read_document(store, &shard::list_key(prefix, run_id), "shard list").await?;
    let mut spool = RecordSpool::new(&options.manifest_dir)?;
    let mut shards = Shards::default();
    for index in 0..plan.shards {
        let key = shard::manifest_key(prefix, run_id, index);
        let Some(slice) = listed.get(index as usize) else {
            shards.missing.push(index);
            continue;
        };
        let source_dir = sync.source_dir.display().to_string();
        let pinned = match judge_shard(store, prefix, &key, slice, source_dir).await? {
            Judged::Missing => {
                shards.missing.push(index);
                continue;
            }
            Judged::Refused(reason) => {
                warn!(
                    key,
                    reason, "shard manifest refused; its slice is left for the next run"
                );
                shards.missing.push(index);
                shards.refused.push(format!("shard {index}: {reason}"));
                continue;
            }
            Judged::Sound(pinned) => pinned,
        };
        let Some(fetched) = store.get_at(&key, pinned.version_id.as_deref()).await? else {
            shards.missing.push(index);
            continue;
        };
        let parsed = read_fetched(store, &key, fetched, (spool, Ok(())), spool_record).await?;
        let (back, spooled) = parsed.state;
        spool = back;
        spooled?;
        pinned.check(&store.uri(&key), &parsed.sha256)?;
        let header = parsed.header;
        if !header.complete {
            shards.incomplete.push(index);
        }
        shards.found += header.expected_files.unwrap_or_default();
        if let Some(summary) = header.summary {
            shards.not_reached += summary.not_reached;
            shards.bytes_read += summary.bytes_read;
        }
    }
    let tally = spool.tally();
    let records = spool.sort()?;
    let duration = (Utc::now() - plan.started_at).to_std().unwrap_or_default();
    let mut summary = Summary::of(
        run_id,
        false,
        tally,
        shards.not_reached,
        duration.as_millis() as u64,
    );
    summary.bytes_read = shards.bytes_read;
    if !shards.missing.is_empty() || !shards.incomplete.is_empty() {
        summary.record_missing_shards(&shards.missing, &shards.incomplete);
    }
    if !shards.refused.is_empty() {
        summary.record_refused_shards(&shards.refused);
    }
    let held = lease::held_by(store, prefix, run_id).await?;
    if !held {
        summary.record_lost_lease("the lock expired or was taken over before the merge");
    }
    let shrunk = SourceShrunk::check(sync.min_source_ratio, plan.expected_files, shards.found)
        .filter(|_| summary.complete);
    if let Some(shrunk) = shrunk {
        summary.record_shrunk_source(shrunk);
    }
    let source_dir = sync.source_dir.display().to_string();
    let manifest = Manifest {
        run_id: run_id.clone(),
        started_at: manifest::timestamp(plan.started_at),
        finished_at: manifest::timestamp(Utc::now()),
        walked_dir: source_dir.clone(),
        source_dir,
        bucket: store.bucket().to_owned(),
        prefix: prefix.to_owned(),
        kms_key_id: store.kms_key_id().to_owned(),
        include: sync.filter.configured().0.to_vec(),
        exclude: sync.filter.configured().1.to_vec(),
        dry_run: false,
        narrowed: false,
        event_include: Vec::new(),
        event_exclude: Vec::new(),
        complete: summary.complete,
        expected_files: Some(shrunk.map_or(shards.found, |s| s.recorded)),
        previous_manifest: plan.previous_manifest.clone(),
        resume_after: None,
        full_rehash: plan.full_rehash,
        runs_since_full_rehash: plan.runs_since_full_rehash,
        // Set as it is published, by the key that signs it.
        signing_key_id: None,
        format: sync.snapshot_format,
        root: None,
        summary,
        files: Vec::new(),
    };
    let name = manifest.scope_fields().name(plan.started_at, run_id, false);
    let summary = publish(
        store,
        prefix,
        &options.manifest_dir,
        manifest,
        &records,
        &name,
        manifest::Kind::Sharded,
    )
    .await;
    store.page_cache_trim();
    if summary.manifest_s3_uri.is_some() {
        remove_shard_documents(store, prefix, run_id).await;
    }
    if held && let Err(err) = lease::release(store, &plan.lease).await {
        warn!(error = %err, "could not release the lock; it expires by itself");
    }
    info!(%run_id, status = ?summary.status, shards = plan.shards, files = tally.files(), "merged");
    Ok(summary)
}

/// What a shard manifest proved, before any of its records is spooled.
enum Judged {
    Missing,
    Refused(String),
    Sound(Pinned),
}

/// Reads the shard manifest at `key` once, unspooled, and judges it: signed
/// by the trusted key over the bytes read (where a key is trusted), of this
/// run, bucket and prefix, and with every record inside the slice the
/// signed shard list gave it. A shard manifest that another principal put
/// there, or one whose records reach into another slice, would otherwise
/// become the signed run's.
async fn judge_shard(
    store: &Store,
    prefix: &str,
    key: &str,
    slice: &Shard,
    source_dir: String,
) -> Result<Judged> {
    let Some(fetched) = store.get(key).await? else {
        return Ok(Judged::Missing);
    };
    let outside = OutsideSlice {
        source_dir,
        range: slice.range.clone(),
        first: None,
    };
    let read = match read_fetched(store, key, fetched, outside, OutsideSlice::check).await {
        Ok(read) => read,
        Err(err) => return Ok(Judged::Refused(format!("unreadable: {err}"))),
    };
    let header = &read.header;
    if header.run_id != slice.run_id || !header.describes(store.bucket(), prefix) {
        return Ok(Judged::Refused(format!(
            "it is of run {} on s3://{}/{}, not of this run",
            header.run_id, header.bucket, header.prefix
        )));
    }
    if let Some(path) = &read.state.first {
        return Ok(Judged::Refused(format!(
            "its record of {path} lies outside the shard's slice"
        )));
    }
    let trust = store.trust();
    if let Some(why) = trust.refusal(read.signature.as_ref(), &read.sha256).await? {
        return Ok(Judged::Refused(why));
    }
    Ok(Judged::Sound(Pinned {
        version_id: read.version_id,
        sha256: Some(read.sha256),
    }))
}

/// The first record of a shard manifest outside its slice, if any.
struct OutsideSlice {
    /// The configured source: every shard backs up under it.
    source_dir: String,
    range: PathRange,
    first: Option<String>,
}

/// The field of a record that says where it lies.
#[derive(Deserialize)]
struct SliceRecord {
    local_path: String,
}

impl OutsideSlice {
    fn check(&mut self, record: SliceRecord) {
        if self.first.is_some() {
            return;
        }
        let relative = record
            .local_path
            .strip_prefix(self.source_dir.trim_end_matches('/'))
            .and_then(|rest| rest.strip_prefix('/'));
        if !relative.is_some_and(|path| self.range.holds_slashed(path)) {
            self.first = Some(record.local_path);
        }
    }
}

/// Sends each record of a shard manifest to the spool; the first failure stays.
fn spool_record(state: &mut (RecordSpool, Result<()>), record: FileRecord) {
    if state.1.is_ok() {
        state.1 = state.0.push(&record);
    }
}

/// The plan, the list and the shard manifests, once the run's manifest
/// holds everything they said. Each is removed only as it was listed.
async fn remove_shard_documents(store: &Store, prefix: &str, run_id: &str) {
    let folder = shard::folder(prefix, run_id);
    let listed = match store.list(&folder, &[KeyRange::default()]).await {
        Ok(listed) => listed,
        Err(err) => {
            warn!(error = %err, "could not list the shard documents; they stay");
            return;
        }
    };
    for object in listed {
        let Some(etag) = object.etag.as_deref() else {
            continue;
        };
        if let Err(err) = store.delete_if_matches(&object.key, etag).await {
            warn!(key = object.key, error = %err, "could not remove a shard document");
        }
    }
}
