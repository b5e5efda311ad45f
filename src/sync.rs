//! One run: take the lease, walk, decide and upload with bounded
//! concurrency, then write the manifest locally and to S3.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::{Scope, Settings};
use crate::error::{Error, Result};
use crate::keys;
use crate::lease::{self, Acquired, Lease, Renewal, Standing};
use crate::manifest::{self, FileRecord, FileStatus, Manifest, Summary, Written};
use crate::manifest_dir;
use crate::remote::KeyRange;
use crate::remote::{self, PutExtras, Remote, WriteIf};
use crate::request::RunRequest;
use crate::source::SourceDir;
use crate::state::{RemoteView, StateIndex, plan_listing};
use crate::transfer::{Outcome, Prior, TransferSettings, sync_file};
use crate::walk::{Found, walk};
use aws_sdk_s3::primitives::ByteStream;

/// How often a long run logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The sync engine: settings fixed at start-up and an S3 client built once.
#[derive(Debug, Clone)]
pub struct Engine {
    remote: Remote,
    settings: Settings,
}

/// One run's identity and clock.
struct Run {
    id: String,
    started: DateTime<Utc>,
    clock: Instant,
    /// No file is started after this instant (the Lambda time limit less a margin).
    stop_at: Option<Instant>,
    /// No file is started once the lease is lost.
    standing: Arc<Standing>,
}

impl Run {
    /// Whether a file may still be started.
    fn may_start(&self) -> bool {
        self.stop_at.is_none_or(|at| Instant::now() < at) && !self.standing.is_lost()
    }
}

impl Engine {
    pub fn new(client: aws_sdk_s3::Client, settings: Settings) -> Self {
        let remote = Remote::new(client, &settings.bucket, &settings.kms_key_id);
        Engine { remote, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs one sync to the end. Per-file failures are in the summary and the
    /// manifest; `Err` means the run could not start.
    pub async fn run(&self, request: &RunRequest) -> Result<Summary> {
        self.run_until(request, None).await
    }

    /// Runs one sync, starting no file after `stop_at`; files not reached by
    /// then are counted, and the manifest says the run is incomplete.
    pub async fn run_until(
        &self,
        request: &RunRequest,
        stop_at: Option<Instant>,
    ) -> Result<Summary> {
        let scope = self.settings.scope(request)?;
        let run = Run {
            id: uuid::Uuid::new_v4().to_string(),
            started: Utc::now(),
            clock: Instant::now(),
            stop_at,
            standing: Arc::default(),
        };
        let span = info_span!("run", run_id = %run.id, bucket = %self.settings.bucket, prefix = %scope.key_prefix);
        async {
            if scope.dry_run {
                // A dry run writes nothing to S3, so it needs no lease.
                return self.sync(&run, &scope).await;
            }
            let taking = Instant::now();
            let lease = match self.take_lease(&run.id).await? {
                Acquired::Held(lease) => lease,
                Acquired::Busy(holder) => {
                    let summary = Summary::lock_held(&run.id, &holder, run.clock.elapsed());
                    info!(holder = %holder.run_id, until = %holder.expires_at, "another run holds the lock; skipping");
                    return Ok(summary);
                }
            };
            let lease = Arc::new(Mutex::new(lease));
            let renewer =
                self.renew_lease_in_background(Arc::clone(&lease), Arc::clone(&run.standing), taking);
            let summary = self.sync(&run, &scope).await;
            renewer.abort();
            let held = lease.lock().map(|l| l.clone());
            if let Ok(held) = held
                && !run.standing.is_lost()
                && let Err(err) = lease::release(&self.remote, &held).await
            {
                warn!(error = %err, "could not release the lock; it expires by itself");
            }
            summary
        }
        .instrument(span)
        .await
    }

    /// Takes the lease; its PUT is also the preflight of the KMS key.
    async fn take_lease(&self, run_id: &str) -> Result<Acquired> {
        lease::acquire(&self.remote, &self.settings.prefix, run_id, self.settings.lock_ttl)
            .await
            .map_err(|err| match err {
                Error::S3 { detail, .. } => Error::Config(format!(
                    "cannot write to s3://{}/{} with SSE-KMS key {}: {detail}; check SYNC_KMS_KEY_ID (--kms-key-id): \
                     the key must exist, be enabled and let this role use it through S3",
                    self.settings.bucket,
                    lease::lock_key(&self.settings.prefix),
                    self.settings.kms_key_id
                )),
                other => other,
            })
    }

    /// Renews the lease every third of its lifetime. The lease counts as lost
    /// when another run holds the lock, or when no renewal has gone through
    /// for a whole lifetime (measured from when the last good write was
    /// sent, so never later than S3 would let another run take over).
    fn renew_lease_in_background(
        &self,
        lease: Arc<Mutex<Lease>>,
        standing: Arc<Standing>,
        mut confirmed: Instant,
    ) -> tokio::task::JoinHandle<()> {
        let (remote, ttl) = (self.remote.clone(), self.settings.lock_ttl);
        tokio::spawn(
            async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + ttl / 3, ttl / 3);
                loop {
                    ticks.tick().await;
                    let Ok(mut current) = lease.lock().map(|l| l.clone()) else {
                        return;
                    };
                    let sent = Instant::now();
                    let why = match lease::renew(&remote, &mut current, ttl).await {
                        Ok(Renewal::Renewed) => {
                            confirmed = sent;
                            if let Ok(mut slot) = lease.lock() {
                                *slot = current;
                            }
                            continue;
                        }
                        Ok(Renewal::Lost(why)) => why,
                        Err(err) if confirmed.elapsed() >= ttl => {
                            format!("it could not be renewed within its lifetime ({err})")
                        }
                        Err(err) => {
                            error!(error = %err, "could not renew the lock; retrying");
                            continue;
                        }
                    };
                    error!(reason = %why, "lost the lock; no more files are started");
                    standing.lose(why);
                    return;
                }
            }
            .in_current_span(),
        )
    }

    async fn sync(&self, run: &Run, scope: &Scope) -> Result<Summary> {
        let source = SourceDir::open(&self.settings.source_dir)?;
        let walker = source.clone();
        let (start, filter) = (scope.start_dir.clone(), scope.filter.clone());
        // The walk and the listing take similar time and need nothing from each other.
        let walking = tokio::task::spawn_blocking(move || walk(&walker, &start, &filter));
        let (found, known) = tokio::join!(walking, self.load_state(scope));
        let found = found?;
        let total = found.len();
        let walked_dir = self.settings.source_dir.join(&scope.start_dir);
        info!(entries = total, dir = %walked_dir.display(), dry_run = scope.dry_run, "walked source");

        let progress = Arc::new(Progress::default());
        let reporter = progress.report_every(PROGRESS_EVERY, total);
        let mut files: Vec<FileRecord> = futures::stream::iter(found)
            .map(|item| self.process(item, &source, scope, run, &known, &progress))
            .buffer_unordered(self.settings.concurrency)
            .filter_map(std::future::ready)
            .collect()
            .await;
        reporter.abort();
        let (full_verify, runs_since_full_verify) =
            (known.full_verify, known.runs_since_full_verify);
        // The index and the listing are done with; free them before the manifest is written.
        drop(known);
        files.sort_by(|a, b| a.local_path.cmp(&b.local_path));

        let not_reached = (total - files.len()) as u64;
        if not_reached > 0 {
            warn!(
                not_reached,
                "stopped before the time limit; the next run picks up the rest"
            );
        }
        let duration_ms = run.clock.elapsed().as_millis() as u64;
        let mut summary = Summary::tally(&run.id, scope.dry_run, &files, not_reached, duration_ms);
        summary.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
        if let Some(why) = run.standing.lost_because() {
            summary.record_lost_lease(why);
        }
        let manifest = Manifest {
            run_id: run.id.clone(),
            started_at: manifest::timestamp(run.started),
            finished_at: manifest::timestamp(Utc::now()),
            source_dir: self.settings.source_dir.display().to_string(),
            walked_dir: walked_dir.display().to_string(),
            bucket: self.settings.bucket.clone(),
            prefix: scope.key_prefix.clone(),
            kms_key_id: self.settings.kms_key_id.clone(),
            dry_run: scope.dry_run,
            complete: summary.complete,
            full_verify,
            runs_since_full_verify,
            summary,
            files,
        };
        let name = manifest::file_name(run.started, &run.id, scope.narrowed);
        let summary = self.store_manifest(manifest, &name).await;
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
        Ok(summary)
    }

    /// One listing of the prefix, and the index of the newest full manifest
    /// it shows. Either may be missing; the run then asks S3 key by key.
    async fn load_state(&self, scope: &Scope) -> RunState {
        let list_prefix = if scope.key_prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", scope.key_prefix)
        };
        // This machine's newest copy, if any, tells where to cut the listing.
        // It stands in for the S3 manifest only if S3 vouches for its SHA-256.
        let folder = keys::manifest_key(&self.settings.prefix, "");
        let local = manifest_dir::newest(
            &self.settings.manifest_dir,
            &self.settings.bucket,
            &scope.key_prefix,
        );
        let local_key = local.as_ref().map(|copy| format!("{folder}{}", copy.name));
        let ranges = match (&local, &local_key) {
            (Some(copy), Some(key)) => plan_listing(&copy.index, &folder, key),
            _ => vec![KeyRange::default()],
        };
        let (mut view, proven) = tokio::join!(
            self.list_view(&list_prefix, &ranges, &folder),
            self.proven_copy(
                local_key.as_deref(),
                local.as_ref().map(|c| c.sha256.as_str())
            ),
        );
        let local = local.filter(|_| proven);
        if local_key.is_some() && local.is_none() && ranges != [KeyRange::default()] {
            // The unproven copy cut the listing; a planted name could have
            // hidden newer manifests from it. List everything instead.
            warn!(
                key = local_key,
                "local manifest copy does not match S3; not used"
            );
            view = self
                .list_view(&list_prefix, &[KeyRange::default()], &folder)
                .await;
        }
        let local_key = local_key.filter(|_| local.is_some());
        // A newer manifest in the listing was written elsewhere; else ours is the newest.
        let latest = view
            .as_ref()
            .and_then(|v| v.latest_manifest.clone())
            .or(local_key.clone());
        let index = match (view.as_ref().and(latest), local) {
            (Some(latest), Some(copy)) if Some(&latest) == local_key.as_ref() => Some(copy.index),
            (Some(latest), _) => self.fetch_index(&latest, &scope.key_prefix).await,
            (None, _) => None,
        };
        let due = |i: &StateIndex| {
            self.settings.verify_every > 0
                && i.runs_since_full_verify + 1 >= self.settings.verify_every
        };
        let full_verify = scope.verify || index.as_ref().is_none_or(due);
        let runs_since_full_verify = match &index {
            Some(i) if !full_verify => i.runs_since_full_verify + 1,
            _ => 0,
        };
        info!(
            listed = view.as_ref().map(RemoteView::len),
            indexed = index.as_ref().map(StateIndex::len),
            full_verify,
            "state loaded"
        );
        RunState {
            view,
            index,
            full_verify,
            runs_since_full_verify,
        }
    }

    async fn list_view(
        &self,
        prefix: &str,
        ranges: &[KeyRange],
        folder: &str,
    ) -> Option<RemoteView> {
        match self.remote.list(prefix, ranges).await {
            Ok(listed) => Some(RemoteView::from_listing(listed, folder)),
            Err(err) => {
                warn!(error = %err, "listing failed; each file is looked up on its own");
                None
            }
        }
    }

    /// Whether the S3 manifest at `key` has the SHA-256 of the local copy.
    async fn proven_copy(&self, key: Option<&str>, sha256: Option<&str>) -> bool {
        let (Some(key), Some(sha256)) = (key, sha256) else {
            return false;
        };
        match self.remote.head(key).await {
            Ok(Some(stored)) => stored.sha256.as_deref() == Some(sha256),
            Ok(None) => false,
            Err(err) => {
                warn!(key, error = %err, "cannot check the local manifest copy against S3");
                false
            }
        }
    }

    /// The manifest at `key` from S3; a missing or unreadable one, or one of
    /// another bucket or prefix, is no index.
    async fn fetch_index(&self, key: &str, key_prefix: &str) -> Option<StateIndex> {
        let bytes = match self.remote.get(key).await {
            Ok(Some(fetched)) => fetched.body,
            Ok(None) => return None,
            Err(err) => {
                warn!(key, error = %err, "last manifest unreadable; files are checked one by one");
                return None;
            }
        };
        match StateIndex::read(bytes.as_slice()) {
            Ok(index) if index.bucket == self.settings.bucket && index.prefix == key_prefix => {
                Some(index)
            }
            Ok(_) => None,
            Err(err) => {
                warn!(key, error = %err, "last manifest is corrupt; files are checked one by one");
                None
            }
        }
    }

    /// Writes the local copy, then uploads that file (not in a dry run).
    /// Either failing is recorded in the summary; the run's results stand,
    /// so nothing here is an `Err`. At a million files the manifest is large,
    /// so it is streamed to disk and from disk, never held whole in memory.
    async fn store_manifest(&self, mut manifest: Manifest, name: &str) -> Summary {
        let key = keys::manifest_key(&self.settings.prefix, name);
        let local = self.settings.manifest_dir.join(name);
        manifest.summary.manifest_local_path = Some(local.display().to_string());
        if !manifest.dry_run {
            manifest.summary.manifest_s3_uri = Some(self.remote.uri(&key));
        }
        let written = match manifest.write_local(&local) {
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
        let uploaded = self.upload_manifest(&manifest, &key, &local, written).await;
        if let Err(err) = uploaded {
            warn!(key, error = %err, "manifest upload failed");
            manifest.summary.manifest_s3_uri = None;
            manifest.summary.record_manifest_error(&err);
            // The local copy must not claim an upload that did not happen.
            if manifest.summary.manifest_local_path.is_some()
                && let Err(err) = manifest.write_local(&local)
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
    async fn upload_manifest(
        &self,
        manifest: &Manifest,
        key: &str,
        local: &std::path::Path,
        written: Option<Written>,
    ) -> Result<()> {
        if let Some(written) = written
            && let Ok(body) = remote::file_body(local).await
        {
            match self.put_manifest(key, body, &written).await {
                Err(err) if std::fs::symlink_metadata(local).is_err() => {
                    warn!(key, error = %err, "local manifest copy vanished while it was sent; sending it from memory");
                }
                sent => return sent,
            }
        }
        let (bytes, written) = manifest.to_json_with_digests()?;
        self.put_manifest(key, bytes.into(), &written).await
    }

    async fn put_manifest(&self, key: &str, body: ByteStream, written: &Written) -> Result<()> {
        let extras = PutExtras {
            sha256: Some(&written.sha256),
            ..PutExtras::JSON
        };
        match self
            .remote
            .put(key, body, written.md5, extras, WriteIf::Absent)
            .await
        {
            Ok(_) => Ok(()),
            // A retried PUT whose first attempt went through finds its own manifest.
            Err(err @ Error::PreconditionFailed { .. }) => match self.remote.head(key).await {
                Ok(Some(stored)) if stored.sha256.as_deref() == Some(written.sha256.as_str()) => {
                    Ok(())
                }
                _ => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// One entry of the walk to one manifest record; `None` when the run's
    /// time was up before the entry was reached.
    async fn process(
        &self,
        item: Found,
        source: &SourceDir,
        scope: &Scope,
        run: &Run,
        known: &RunState,
        progress: &Progress,
    ) -> Option<FileRecord> {
        if !run.may_start() {
            return None;
        }
        let mut record = match item {
            Found::File(file) => {
                let mut record = FileRecord::new(&file.path, file.size);
                record.set_stamp(file.stamp);
                match keys::file_key(&self.settings.prefix, &scope.key_prefix, &file.relative) {
                    Err(err) => record.fail(err.to_string()),
                    Ok(key) => {
                        record.s3_uri = Some(self.remote.uri(&key));
                        let settings = self.transfer_settings(scope, run.stop_at);
                        let prior = known.prior(&key);
                        let result =
                            sync_file(&self.remote, source, settings, &file, &key, prior).await;
                        progress
                            .bytes_read
                            .fetch_add(result.bytes_read, Ordering::Relaxed);
                        record.s3_key = Some(key);
                        record.md5 = result.md5.map(|m| m.hex());
                        record.set_outcome(result.outcome);
                    }
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
        tracing::debug!(path = %record.local_path, status = ?record.status, reason = ?record.reason, "file done");
        progress.count(&record);
        Some(record)
    }

    fn transfer_settings(&self, scope: &Scope, stop_at: Option<Instant>) -> TransferSettings {
        TransferSettings {
            multipart_threshold: self.settings.multipart_threshold,
            part_size: self.settings.part_size,
            dry_run: scope.dry_run,
            stop_at,
        }
    }
}

impl FileRecord {
    fn set_outcome(&mut self, outcome: Result<Outcome>) {
        match outcome {
            Ok(Outcome::Uploaded { stored, reason }) => {
                self.status = FileStatus::Uploaded;
                self.reason = Some(reason.into());
                (self.etag, self.version_id) = (stored.etag, stored.version_id);
            }
            Ok(Outcome::Skipped { stored, reason }) => {
                self.status = FileStatus::Skipped;
                self.reason = Some(reason.into());
                (self.etag, self.version_id) = (stored.etag, stored.version_id);
            }
            Ok(Outcome::WouldUpload { reason }) => {
                self.status = FileStatus::WouldUpload;
                self.reason = Some(reason.into());
            }
            Err(err) => self.fail(err.to_string()),
        }
    }
}

/// What a run knows before it looks at any file.
struct RunState {
    view: Option<RemoteView>,
    index: Option<StateIndex>,
    full_verify: bool,
    runs_since_full_verify: u32,
}

impl RunState {
    fn prior(&self, key: &str) -> Prior<'_> {
        Prior {
            known: self.index.as_ref().and_then(|i| i.get(key)),
            presence: self.view.as_ref().map(|v| v.presence(key)),
            trust_stamp: !self.full_verify,
        }
    }
}

/// Counters shared by the workers and the progress reporter.
#[derive(Debug, Default)]
struct Progress {
    bytes_read: AtomicU64,
    done: AtomicU64,
    uploaded: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    fn count(&self, record: &FileRecord) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match record.status {
            FileStatus::Uploaded => {
                self.uploaded.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(record.size_bytes, Ordering::Relaxed);
            }
            FileStatus::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            FileStatus::Skipped | FileStatus::WouldUpload => {}
        }
    }

    fn report_every(
        self: &Arc<Self>,
        period: Duration,
        total: usize,
    ) -> tokio::task::JoinHandle<()> {
        let progress = Arc::clone(self);
        tokio::spawn(
            async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    ticks.tick().await;
                    info!(
                        done = progress.done.load(Ordering::Relaxed),
                        total,
                        uploaded = progress.uploaded.load(Ordering::Relaxed),
                        failed = progress.failed.load(Ordering::Relaxed),
                        bytes_uploaded = progress.bytes.load(Ordering::Relaxed),
                        "progress"
                    );
                }
            }
            .in_current_span(),
        )
    }
}
