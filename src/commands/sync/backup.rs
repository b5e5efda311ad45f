//! The walk and the transfers of one run, as steps: start the walk, load
//! what is known, move each file, finish the walk (carrying what it did
//! not reach), judge the source, then the summary and the manifest.

use std::path::PathBuf;
use std::task::Poll;

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::budget::MemoryBudget;
use super::file::Worker;
use super::prior::PriorState;
use super::resume::{self, Rotation};
use super::{Scope, SyncOptions, load};
use crate::error::Result;
use crate::local::room;
use crate::local::source::SourceDir;
use crate::local::walk::Found;
use crate::manifest::spool::{RecordSpool, SortedRecords};
use crate::manifest::{self, Manifest, ManifestLink, SourceShrunk, Summary};
use crate::run::RunContext;
use crate::run::RunOptions;
use crate::run::progress::Progress;
use crate::run::shard::Plan;
use crate::store::{Store, keys};

/// Entries the walk may find ahead of the transfers (a few hundred bytes each).
const WALK_AHEAD: usize = 16_384;

/// What every step of a run reads.
pub struct Backup<'a> {
    pub store: &'a Store,
    pub prefix: &'a str,
    pub options: &'a RunOptions,
    pub sync: &'a SyncOptions,
    pub scope: &'a Scope,
    pub run: &'a RunContext,
}

/// The walk, running on its own thread ahead of the transfers.
struct Walk {
    found: mpsc::Receiver<(usize, Found)>,
    /// Where the walk's slices are cut, once the index is known; `None`
    /// when the run walks its range at once.
    slicing: Option<oneshot::Sender<Rotation>>,
    done: tokio::task::JoinHandle<(usize, Rotation)>,
    /// Whether a run stopped early can resume where it stopped.
    resumable: bool,
}

/// What the transfers did, besides the records they spooled.
struct Transferred {
    /// Entries the walk handed over, and how many were files.
    entries: u64,
    files: u64,
    /// The first slice (in walking order) with a file left unstarted.
    unstarted: usize,
    /// Whether every record reached the spool.
    spooled: Result<()>,
    bytes_read: u64,
}

/// How the walk ended.
struct Walked {
    finished: bool,
    resume_after: Option<String>,
}

/// What the manifest keeps of the state the run started from.
struct Lineage {
    previous: Option<ManifestLink>,
    full_rehash: bool,
    runs_since_full_rehash: u32,
}

impl Backup<'_> {
    /// The walk and the transfers; returns the manifest of what was done,
    /// its records sorted on disk rather than held. A shard knows what its
    /// plan decided; any other run loads the newest manifest and the listing.
    pub async fn run(&self, plan: Option<&Plan>) -> Result<(Manifest, SortedRecords)> {
        let source = SourceDir::open(&self.sync.source_dir)?;
        let mut walk = self.start_walk(&source, plan.is_none());
        let mut prior = self.load(plan, walk.slicing.take()).await;
        self.check_room(&prior)?;
        // Each record goes to disk as its file finishes; only counts stay.
        let mut spool = RecordSpool::new(&self.options.manifest_dir)?;
        let transferred = self
            .transfer(&source, &prior, &mut walk.found, &mut spool)
            .await;
        let walked = self
            .finish_walk(walk, &transferred, &prior, &source, &mut spool)
            .await?;
        transferred.spooled?;
        let shrunk = self.shrunk(&prior, transferred.files, walked.finished);
        let lineage = Lineage {
            previous: prior.previous.clone(),
            full_rehash: prior.full_rehash,
            runs_since_full_rehash: prior.runs_since_full_rehash,
        };
        let passed_over = std::mem::take(&mut prior.passed_over);
        // The index and the listing are done with; free them before the manifest is written.
        drop(prior);
        let tally = spool.tally();
        let records = spool.sort()?;
        let not_reached = transferred.entries - tally.files();
        let duration_ms = self.run.clock.elapsed().as_millis() as u64;
        let mut summary = Summary::of(
            &self.run.id,
            self.scope.dry_run,
            tally,
            not_reached,
            duration_ms,
        );
        summary.bytes_read = transferred.bytes_read;
        summary.index_passed_over = passed_over;
        self.judge(&mut summary, transferred.entries, &walked, shrunk);
        let expected = shrunk.map_or(transferred.files, |s| s.recorded);
        Ok((self.manifest(summary, expected, &walked, lineage), records))
    }

    /// Starts the walk. It streams its entries into the transfers instead
    /// of listing them all first, running ahead by up to WALK_AHEAD, which
    /// also lets it overlap the listing. A run over the whole source walks
    /// in slices cut by the index, from where the last one stopped; any
    /// other walks its range at once.
    fn start_walk(&self, source: &SourceDir, unplanned: bool) -> Walk {
        let scope = self.scope;
        let resumable = unplanned && !scope.dry_run && !scope.narrowed && scope.range.is_whole();
        let (entries, found) = mpsc::channel(WALK_AHEAD);
        let (slicing, slices) = oneshot::channel::<Rotation>();
        let single = Rotation::single(scope.range.clone());
        let (walker, start, filter) = (
            source.clone(),
            scope.start_dir.clone(),
            scope.filter.clone(),
        );
        let threads = self.sync.walk_threads;
        // The walk stops at the time limit too: a tree too big to walk in
        // time must still leave time for its manifest.
        let gate = self.run.gate();
        let done = tokio::task::spawn_blocking(move || {
            // Without slices from the index (the sender dropped), one slice.
            let rotation = slices.blocking_recv().unwrap_or(single);
            let walked = rotation.walk(&walker, &start, &filter, threads, |slice, found| {
                gate.open() && entries.blocking_send((slice, found)).is_ok()
            });
            (walked, rotation)
        });
        Walk {
            found,
            slicing: resumable.then_some(slicing),
            done,
            resumable,
        }
    }

    /// What is known before any file is looked at; the index, once read,
    /// cuts the walk's slices.
    async fn load(
        &self,
        plan: Option<&Plan>,
        slicing: Option<oneshot::Sender<Rotation>>,
    ) -> PriorState {
        let (store, scope) = (self.store, self.scope);
        if let Some(plan) = plan {
            return load::planned(store, scope, plan).await;
        }
        let folder = keys::folder_of(&scope.key_prefix);
        let slice_files = self.sync.slice_files;
        load::load(
            store,
            self.prefix,
            &self.options.manifest_dir,
            self.sync.rehash_every,
            scope,
            |index| {
                if let (Some(slicing), Some(index)) = (slicing, index) {
                    let _ = slicing.send(Rotation::of_index(index, &folder, slice_files));
                }
            },
        )
        .await
    }

    /// Refuses, before the first upload, a run whose manifest directory
    /// cannot hold what it will keep there, by the last snapshot's count.
    /// A first run has no count to go by; its walk is not waited for.
    fn check_room(&self, prior: &PriorState) -> Result<()> {
        let Some(index) = &prior.index else {
            return Ok(());
        };
        let recorded = index.len() as u64;
        let files = index
            .header
            .expected_files
            .map_or(recorded, |e| e.max(recorded));
        room::check(&self.options.manifest_dir, files, self.options.mode)
    }

    /// Decides and moves each entry the walk hands over, `concurrency` at
    /// once, spooling each record as its file finishes.
    async fn transfer(
        &self,
        source: &SourceDir,
        prior: &PriorState,
        found: &mut mpsc::Receiver<(usize, Found)>,
        spool: &mut RecordSpool,
    ) -> Transferred {
        let progress = Progress::counting();
        if let Some(index) = &prior.index {
            progress.expect(index.len() as u64);
        }
        let shown = progress.show("uploaded");
        let budget = MemoryBudget::new(self.sync.memory_budget);
        let worker = Worker {
            store: self.store,
            prefix: self.prefix,
            source,
            options: self.sync,
            scope: self.scope,
            run: self.run,
            prior,
            progress: &progress,
            budget: &budget,
        };
        let (mut entries, mut files) = (0u64, 0u64);
        let found = futures::stream::poll_fn(|cx| {
            let next = found.poll_recv(cx);
            if matches!(next, Poll::Ready(None)) {
                progress.all_found();
            }
            next
        })
        .inspect(|(_, item)| {
            entries += 1;
            files += u64::from(matches!(item, Found::File(_)));
            progress.found(1, item.size());
        });
        let worker = &worker;
        let mut records = found
            .map(|(slice, item)| async move { (slice, worker.process(item).await) })
            .buffer_unordered(self.sync.concurrency);
        let mut spooled = Ok(());
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
        drop(shown);
        Transferred {
            entries,
            files,
            unstarted,
            spooled,
            bytes_read: progress.snapshot().bytes_read,
        }
    }

    /// Waits for the walk; where a resumable run stopped early, the files
    /// it did not reach keep their last records, so the manifest stays a
    /// whole snapshot and the next run's index still knows them.
    async fn finish_walk(
        &self,
        walk: Walk,
        transferred: &Transferred,
        prior: &PriorState,
        source: &SourceDir,
        spool: &mut RecordSpool,
    ) -> Result<Walked> {
        let (slices_walked, rotation) = walk.done.await?;
        let slices = rotation.slices().len();
        let first_unfinished = transferred.unstarted.min(slices_walked);
        let mut resume_after = None;
        if walk.resumable && first_unfinished < slices {
            resume_after = rotation.resume_point(first_unfinished);
            if let (Some(index), Ok(())) = (&prior.index, &transferred.spooled) {
                let left = rotation.unfinished(first_unfinished);
                let folder = keys::folder_of(&self.scope.key_prefix);
                resume::carry(spool, self.store, source.path(), index, &folder, &left)?;
            }
        }
        info!(
            entries = transferred.entries,
            dir = %self.walked_dir().display(),
            dry_run = self.scope.dry_run,
            "walked source"
        );
        Ok(Walked {
            finished: slices_walked == slices,
            resume_after,
        })
    }

    /// Whether the source holds far fewer files than the last complete run
    /// recorded. A walk cut short found fewer files than there are, and a
    /// narrowed run covers part of the source: no sign of either.
    fn shrunk(&self, prior: &PriorState, files: u64, walk_finished: bool) -> Option<SourceShrunk> {
        let recorded =
            (prior.index.as_ref()).and_then(|i| i.header.expected_if_complete(i.len() as u64));
        SourceShrunk::check(self.sync.min_source_ratio, recorded, files)
            .filter(|_| walk_finished && !self.scope.narrowed)
    }

    /// Everything that keeps the run from a plain success, in its summary.
    fn judge(
        &self,
        summary: &mut Summary,
        entries: u64,
        walked: &Walked,
        shrunk: Option<SourceShrunk>,
    ) {
        if summary.not_reached > 0 {
            warn!(
                not_reached = summary.not_reached,
                "stopped before the time limit; the next run picks up the rest"
            );
        }
        if let Some(why) = self.run.standing.lost_because() {
            summary.record_lost_lease(why);
        }
        if let Some(signal) = crate::run::interrupt::received() {
            summary.record_interrupted(signal);
        }
        if !walked.finished {
            warn!(
                walked = entries,
                carried = summary.carried,
                resume_after = walked.resume_after,
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
    }

    fn manifest(
        &self,
        summary: Summary,
        expected_files: u64,
        walked: &Walked,
        lineage: Lineage,
    ) -> Manifest {
        let (scope, run) = (self.scope, self.run);
        Manifest {
            run_id: run.id.clone(),
            started_at: manifest::timestamp(run.started),
            finished_at: manifest::timestamp(Utc::now()),
            source_dir: self.sync.source_dir.display().to_string(),
            walked_dir: self.walked_dir().display().to_string(),
            bucket: self.store.bucket().to_owned(),
            prefix: scope.key_prefix.clone(),
            kms_key_id: self.store.kms_key_id().to_owned(),
            include: scope.filter.configured().0.to_vec(),
            exclude: scope.filter.configured().1.to_vec(),
            dry_run: scope.dry_run,
            narrowed: scope.narrowed,
            event_include: scope.event_globs.0.clone(),
            event_exclude: scope.event_globs.1.clone(),
            complete: summary.complete,
            expected_files: Some(expected_files),
            previous_manifest: lineage.previous,
            full_rehash: lineage.full_rehash,
            runs_since_full_rehash: lineage.runs_since_full_rehash,
            resume_after: walked.resume_after.clone(),
            // Set as it is published, by the key that signs it.
            signing_key_id: None,
            format: self.sync.snapshot_format,
            root: None,
            summary,
            files: Vec::new(),
        }
    }

    fn walked_dir(&self) -> PathBuf {
        self.sync.source_dir.join(&self.scope.start_dir)
    }
}
