//! `sync`: back the source directory up. Walk it, load what is already
//! known, decide and upload each file with bounded concurrency, then write
//! the manifest locally and to S3, all under the prefix's lease.

mod budget;
mod decide;
mod fetch;
mod index;
mod file;
mod listing;
mod load;
pub mod options;
mod prior;
mod rekey;
pub mod request;
pub(crate) mod resume;
mod scope;
pub mod sharded;
mod sorted;
mod upload;

use std::task::Poll;
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use tracing::{Instrument, info, info_span, warn};

use crate::error::Result;
use crate::local::source::SourceDir;
use crate::local::walk::Found;
use crate::manifest::spool::{RecordSpool, SortedRecords};
use crate::manifest::{self, Manifest, SourceShrunk, Summary, publish::publish};
use crate::run::progress::Progress;
use crate::run::shard::Plan;
use crate::run::{self, RunContext, RunOptions};
use crate::store::{Store, keys};
use file::Worker;
pub use options::{SyncArgs, SyncOptions};
pub use request::SyncRequest;
use resume::Rotation;
pub use scope::Scope;

/// Entries the walk may find ahead of the transfers (a few hundred bytes each).
const WALK_AHEAD: usize = 16_384;

/// Runs one sync to the end, starting no file after `stop_at`; files not
/// reached by then are counted, and the manifest says the run is
/// incomplete. Per-file failures are in the summary and the manifest; `Err`
/// means the run could not start.
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &RunOptions,
    sync: &SyncOptions,
    request: &SyncRequest,
    stop_at: Option<Instant>,
) -> Result<Summary> {
    let scope = sync.scope(prefix, request)?;
    if let Some(shard) = &scope.shard {
        return sharded::shard::run(store, prefix, options, sync, &scope, shard, stop_at).await;
    }
    let run = RunContext::start(stop_at);
    let span =
        info_span!("run", run_id = %run.id, bucket = %store.bucket(), prefix = %scope.key_prefix);
    let work = async {
        let (manifest, records) = back_up(store, prefix, options, sync, &scope, &run, None).await?;
        let tag = scope.filter.scope_tag();
        let name = manifest::file_name(run.started, &run.id, scope.narrowed, tag.as_deref());
        let mut summary = publish(
            store,
            prefix,
            &options.manifest_dir,
            manifest,
            &records,
            &name,
            match scope.narrowed {
                true => manifest::Kind::Narrowed,
                false => manifest::Kind::Full,
            },
        )
        .await;
        if summary.reencrypted > 0 && !summary.dry_run {
            rekey_manifests(store, &scope.key_prefix, &mut summary).await;
        }
        log_summary(&summary);
        Ok(summary)
    };
    if scope.dry_run {
        // A dry run writes nothing to S3, so it needs no lease.
        return work.instrument(span).await;
    }
    run::exclusively(store, prefix, options.lock_ttl, &run, work)
        .instrument(span)
        .await
}

/// The walk and the transfers; returns the manifest of what was done, its
/// records sorted on disk rather than held. A shard knows what its plan
/// decided; any other run loads the newest manifest and the listing.
pub(in crate::commands::sync) async fn back_up(
    store: &Store,
    prefix: &str,
    options: &RunOptions,
    sync: &SyncOptions,
    scope: &Scope,
    run: &RunContext,
    plan: Option<&Plan>,
) -> Result<(Manifest, SortedRecords)> {
    let source = SourceDir::open(&sync.source_dir)?;
    let walker = source.clone();
    let (start, filter) = (scope.start_dir.clone(), scope.filter.clone());
    // The walk streams its entries into the transfers instead of listing
    // them all first; it runs ahead of them by up to WALK_AHEAD entries,
    // which also lets it overlap the listing. It waits only for the index
    // to cut its slices by, which is usually this machine's copy.
    let (entries, mut walked) = tokio::sync::mpsc::channel(WALK_AHEAD);
    let threads = sync.walk_threads;
    // A run over the whole source walks in slices cut by the index, from
    // where the last one stopped; any other walks its range at once.
    let resumable = plan.is_none() && !scope.dry_run && !scope.narrowed && scope.range.is_whole();
    let folder = keys::folder_of(&scope.key_prefix);
    // Its slices come from the index, once load has it; without one (or
    // when not resumable) the sender is gone and the walk takes one slice.
    let (rotation_known, rotation) = tokio::sync::oneshot::channel::<Rotation>();
    let rotation_known = resumable.then_some(rotation_known);
    let single = Rotation::single(scope.range.clone());
    // The walk stops at the time limit too: a tree too big to walk in time
    // must still leave time for its manifest. What it found by then counts.
    let gate = run.gate();
    let walking = tokio::task::spawn_blocking(move || {
        let rotation = rotation.blocking_recv().unwrap_or(single);
        let walked = rotation.walk(&walker, &start, &filter, threads, |slice, found| {
            gate.open() && entries.blocking_send((slice, found)).is_ok()
        });
        (walked, rotation)
    });
    let prior = match plan {
        Some(plan) => load::planned(store, scope, plan).await,
        None => {
            load::load(
                store,
                prefix,
                &options.manifest_dir,
                sync.rehash_every,
                scope,
                |index| {
                    if let (Some(known), Some(index)) = (rotation_known, index) {
                        let _ = known.send(Rotation::of_index(index, &folder, sync.slice_files));
                    }
                },
            )
            .await
        }
    };
    let walked_dir = sync.source_dir.join(&scope.start_dir);

    let progress = Progress::counting();
    if let Some(index) = &prior.index {
        progress.expect(index.len() as u64);
    }
    let shown = progress.show("uploaded");
    let budget = budget::MemoryBudget::new(sync.memory_budget);
    let worker = Worker {
        store,
        prefix,
        source: &source,
        options: sync,
        scope,
        run,
        prior: &prior,
        progress: &progress,
        budget: &budget,
    };
    // Each record goes to disk as its file finishes; only counts stay.
    let mut spool = RecordSpool::new(&options.manifest_dir)?;
    let (mut total, mut files_found) = (0u64, 0u64);
    let found = futures::stream::poll_fn(|cx| {
        let next = walked.poll_recv(cx);
        if matches!(next, Poll::Ready(None)) {
            progress.all_found();
        }
        next
    })
    .inspect(|(_, item)| {
        total += 1;
        files_found += u64::from(matches!(item, Found::File(_)));
        progress.found(1, item.size());
    });
    let worker = &worker;
    let mut records = found
        .map(|(slice, item)| async move { (slice, worker.process(item).await) })
        .buffer_unordered(sync.concurrency);
    let mut spooled = Ok(());
    // The first slice (in walking order) with a file left unstarted.
    let mut unstarted = usize::MAX;
    while let Some((slice, record)) = records.next().await {
        match record {
            // After a spool failure the files still finish; the run then fails.
            Some(record) if spooled.is_ok() => spooled = spool.push(&record),
            Some(_) => {}
            None => unstarted = unstarted.min(slice),
        }
    }
    drop(records);
    let (slices_walked, rotation) = walking.await?;
    drop(shown);
    let walk_finished = slices_walked == rotation.slices().len();
    let first_unfinished = unstarted.min(slices_walked);
    let mut resume_after = None;
    if resumable && first_unfinished < rotation.slices().len() {
        resume_after = rotation.resume_point(first_unfinished);
        // The files not reached keep their last records: the manifest stays
        // a whole snapshot, and the next run's index still knows them.
        if let (Some(index), Ok(())) = (&prior.index, &spooled) {
            let left = rotation.unfinished(first_unfinished);
            resume::carry(&mut spool, store, source.path(), index, &folder, &left)?;
        }
    }
    spooled?;
    info!(entries = total, dir = %walked_dir.display(), dry_run = scope.dry_run, "walked source");
    // A walk cut short found fewer files than there are: no sign of a shrunk source.
    let recorded =
        (prior.index.as_ref()).and_then(|i| i.header.expected_if_complete(i.len() as u64));
    let shrunk = SourceShrunk::check(sync.min_source_ratio, recorded, files_found)
        .filter(|_| walk_finished && !scope.narrowed);
    let (full_rehash, runs_since_full_rehash) = (prior.full_rehash, prior.runs_since_full_rehash);
    let previous_manifest = prior.previous.clone();
    // The index and the listing are done with; free them before the manifest is written.
    drop(prior);

    let tally = spool.tally();
    let records = spool.sort()?;
    let not_reached = total - tally.files();
    if not_reached > 0 {
        warn!(
            not_reached,
            "stopped before the time limit; the next run picks up the rest"
        );
    }
    let duration_ms = run.clock.elapsed().as_millis() as u64;
    let mut summary = Summary::of(&run.id, scope.dry_run, tally, not_reached, duration_ms);
    summary.bytes_read = progress
        .bytes_read
        .load(std::sync::atomic::Ordering::Relaxed);
    if let Some(why) = run.standing.lost_because() {
        summary.record_lost_lease(why);
    }
    if let Some(signal) = crate::run::interrupt::received() {
        summary.record_interrupted(signal);
    }
    if !walk_finished {
        warn!(
            walked = total,
            carried = summary.carried,
            resume_after,
            "the time limit came before the walk ended; the next run walks on from here"
        );
        summary.record_walk_cut_short();
    }
    if let Some(shrunk) = shrunk {
        warn!(
            found = shrunk.found,
            recorded = shrunk.recorded,
            "the source shrank"
        );
        summary.record_shrunk_source(shrunk);
    }
    let manifest = Manifest {
        run_id: run.id.clone(),
        started_at: manifest::timestamp(run.started),
        finished_at: manifest::timestamp(Utc::now()),
        source_dir: sync.source_dir.display().to_string(),
        walked_dir: walked_dir.display().to_string(),
        bucket: store.bucket().to_owned(),
        prefix: scope.key_prefix.clone(),
        kms_key_id: store.kms_key_id().to_owned(),
        include: scope.filter.configured().0.to_vec(),
        exclude: scope.filter.configured().1.to_vec(),
        dry_run: scope.dry_run,
        complete: summary.complete,
        expected_files: Some(shrunk.map_or(files_found, |s| s.recorded)),
        previous_manifest,
        full_rehash,
        runs_since_full_rehash,
        resume_after,
        // Set as it is published, by the key that signs it.
        signing_key_id: None,
        summary,
        files: Vec::new(),
    };
    Ok((manifest, records))
}

/// A run that re-encrypted files found a key change: the older manifests
/// follow, so the prefix is compliant by its own audit once the run ends.
async fn rekey_manifests(store: &Store, key_prefix: &str, summary: &mut Summary) {
    match rekey::manifests(store, key_prefix).await {
        Ok(rekeyed) => {
            summary.manifests_reencrypted = rekeyed.reencrypted;
            if rekeyed.failed > 0 {
                summary.message = Some(format!(
                    "{} older manifests are still under another key: the next run after a key change, or `audit --fix copy`, re-encrypts them",
                    rekeyed.failed
                ));
            }
        }
        Err(err) => {
            warn!(error = %err, "older manifests not re-encrypted");
            summary.message = Some(format!(
                "older manifests were not re-encrypted ({err}): run `audit --fix copy` to bring them under the key"
            ));
        }
    }
}

fn log_summary(summary: &Summary) {
    info!(
        status = ?summary.status,
        uploaded = summary.uploaded,
        skipped = summary.skipped,
        failed = summary.failed,
        not_reached = summary.not_reached,
        would_upload = summary.would_upload,
        bytes_uploaded = summary.bytes_uploaded,
        duration_ms = summary.duration_ms,
        manifest = summary.manifest_s3_uri.as_deref().or(summary.manifest_local_path.as_deref()),
        "run finished"
    );
}
