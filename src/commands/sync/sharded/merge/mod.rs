//! `merge`: the last step of a sharded run. It reads the plan and judges
//! each shard's manifest, writes the run's snapshot from them (a full one,
//! the next run's index, linked to the manifest before the plan; paged
//! shards' trees joined unread, else their records merged), removes
//! the shard documents once that manifest is stored, and releases the lock.
//! A shard that stored no manifest leaves the run incomplete, never failed
//! silently: its files are simply not in this snapshot.

mod gather;
mod judge;

use chrono::Utc;
use serde::Deserialize;
use tracing::{info, warn};

use self::gather::{SoundShards, gather};
use self::judge::{Judged, judge_shard};
use super::read_document;
use crate::commands::sync::SyncOptions;
use crate::error::Result;
use crate::manifest::publish::publish;
use crate::manifest::{self, Manifest, SourceShrunk, Summary, Tally};
use crate::run::shard::{self, Plan, Shard};
use crate::run::{RunOptions, lease};
use crate::store::{KeyRange, Store};

/// What an invocation asks of `merge`: which run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub run_id: String,
}

/// What the judging of the shards' manifests found.
#[derive(Default)]
struct Shards {
    missing: Vec<u32>,
    /// Shard manifests not taken, and why.
    refused: Vec<String>,
    incomplete: Vec<u32>,
    found: u64,
    not_reached: u64,
    bytes_read: u64,
    sound: SoundShards,
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
    let mut shards = judge_all(store, prefix, sync, &plan, &listed).await?;
    let gathering = gather(store, prefix, options, &shards.sound).await?;
    shards.missing.extend(&gathering.vanished);
    let held = lease::held_by(store, prefix, run_id).await?;
    let tally = gathering.tally;
    let (summary, expected) = summarize(&plan, &shards, tally, held, sync.min_source_ratio);
    let manifest = run_manifest(store, prefix, sync, &plan, (summary, expected));
    let name = manifest.scope_fields().name(plan.started_at, run_id, false);
    let contents = gathering.gathered.contents();
    let dir = &options.manifest_dir;
    let kind = manifest::Kind::Sharded;
    // Boxed: the future is large, and a debug build's stack holds it.
    let summary = Box::pin(publish(store, prefix, dir, manifest, contents, &name, kind)).await;
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

/// The run's summary from what the shards said, and the files the run's
/// manifest expects the source to hold.
fn summarize(
    plan: &Plan,
    shards: &Shards,
    tally: Tally,
    held: bool,
    min_source_ratio: f64,
) -> (Summary, u64) {
    let duration = (Utc::now() - plan.started_at).to_std().unwrap_or_default();
    let elapsed = duration.as_millis() as u64;
    let mut summary = Summary::of(&plan.run_id, false, tally, shards.not_reached, elapsed);
    summary.bytes_read = shards.bytes_read;
    if !shards.missing.is_empty() || !shards.incomplete.is_empty() {
        summary.record_missing_shards(&shards.missing, &shards.incomplete);
    }
    if !shards.refused.is_empty() {
        summary.record_refused_shards(&shards.refused);
    }
    if !held {
        summary.record_lost_lease("the lock expired or was taken over before the merge");
    }
    let shrunk = SourceShrunk::check(min_source_ratio, plan.expected_files, shards.found)
        .filter(|_| summary.complete);
    if let Some(shrunk) = shrunk {
        summary.record_shrunk_source(shrunk);
    }
    (summary, shrunk.map_or(shards.found, |s| s.recorded))
}

/// The run's manifest: a full one under the plan's start, linked to the
/// manifest that was newest when the run was planned.
fn run_manifest(
    store: &Store,
    prefix: &str,
    sync: &SyncOptions,
    plan: &Plan,
    (summary, expected_files): (Summary, u64),
) -> Manifest {
    let source_dir = sync.source_dir.display().to_string();
    Manifest {
        run_id: plan.run_id.clone(),
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
        expected_files: Some(expected_files),
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
    }
}

/// Judges each shard's manifest the plan listed, in slice order.
async fn judge_all(
    store: &Store,
    prefix: &str,
    sync: &SyncOptions,
    plan: &Plan,
    listed: &[Shard],
) -> Result<Shards> {
    let source_dir = sync.source_dir.display().to_string();
    let mut shards = Shards::default();
    for index in 0..plan.shards {
        let key = shard::manifest_key(prefix, &plan.run_id, index);
        let Some(slice) = listed.get(index as usize) else {
            shards.missing.push(index);
            continue;
        };
        match judge_shard(store, prefix, &key, slice, &source_dir).await? {
            Judged::Missing => shards.missing.push(index),
            Judged::Refused(reason) => {
                warn!(
                    key,
                    reason, "shard manifest refused; its slice is left for the next run"
                );
                shards.missing.push(index);
                shards.refused.push(format!("shard {index}: {reason}"));
            }
            Judged::Sound(sound) => {
                let header = &sound.header;
                if !header.complete {
                    shards.incomplete.push(index);
                }
                shards.found += header.expected_files.unwrap_or_default();
                if let Some(summary) = &header.summary {
                    shards.not_reached += summary.not_reached;
                    shards.bytes_read += summary.bytes_read;
                }
                shards.sound.push((index, key, *sound));
            }
        }
    }
    Ok(shards)
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
