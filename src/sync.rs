//! One run: walk, decide and upload with bounded concurrency, then write the
//! manifest locally and to S3.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{Scope, Settings};
use crate::error::Result;
use crate::keys;
use crate::manifest::{self, FileRecord, FileStatus, Manifest, Summary};
use crate::remote::Remote;
use crate::request::RunRequest;
use crate::transfer::{Outcome, TransferSettings, sync_file};
use crate::walk::{Found, walk};

/// How often a long run logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The sync engine: settings fixed at start-up and an S3 client built once.
#[derive(Debug, Clone)]
pub struct Engine {
    remote: Remote,
    settings: Settings,
}

impl Engine {
    pub fn new(client: aws_sdk_s3::Client, settings: Settings) -> Self {
        let remote = Remote::new(client, &settings.bucket, &settings.kms_key_id);
        Engine { remote, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs one sync. Per-file failures are in the summary and the manifest;
    /// `Err` means the run could not start.
    pub async fn run(&self, request: &RunRequest) -> Result<Summary> {
        let scope = self.settings.scope(request)?;
        let started = Utc::now();
        let clock = Instant::now();
        let run_id = uuid::Uuid::new_v4().to_string();
        let span =
            info_span!("run", run_id, bucket = %self.settings.bucket, prefix = %scope.key_prefix);
        async {
            let root = self.settings.source_dir.clone();
            let (start, filter) = (scope.start_dir.clone(), scope.filter.clone());
            let found = tokio::task::spawn_blocking(move || walk(&root, &start, &filter)).await?;
            info!(entries = found.len(), dir = %scope.start_dir.display(), dry_run = scope.dry_run, "walked source");

            let progress = Arc::new(Progress::default());
            let reporter = progress.report_every(PROGRESS_EVERY, found.len());
            let mut files: Vec<FileRecord> = futures::stream::iter(found)
                .map(|item| self.process(item, &scope, &progress))
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
            reporter.abort();
            files.sort_by(|a, b| a.local_path.cmp(&b.local_path));

            let duration_ms = clock.elapsed().as_millis() as u64;
            let summary = Summary::tally(&run_id, scope.dry_run, &files, duration_ms);
            let manifest = Manifest {
                run_id: run_id.clone(),
                started_at: manifest::timestamp(started),
                finished_at: manifest::timestamp(Utc::now()),
                source_dir: self.settings.source_dir.display().to_string(),
                walked_dir: scope.start_dir.display().to_string(),
                bucket: self.settings.bucket.clone(),
                prefix: scope.key_prefix.clone(),
                kms_key_id: self.settings.kms_key_id.clone(),
                dry_run: scope.dry_run,
                complete: true,
                summary,
                files,
            };
            let summary = self.store_manifest(manifest, &manifest::file_name(started, &run_id)).await?;
            info!(
                status = ?summary.status,
                uploaded = summary.uploaded,
                skipped = summary.skipped,
                failed = summary.failed,
                would_upload = summary.would_upload,
                bytes_uploaded = summary.bytes_uploaded,
                duration_ms = summary.duration_ms,
                manifest = summary.manifest_s3_uri.as_deref().or(summary.manifest_local_path.as_deref()),
                "run finished"
            );
            Ok(summary)
        }
        .instrument(span)
        .await
    }

    /// Uploads the manifest (not in a dry run), then writes the local copy.
    /// Either failing is recorded in the summary; the run's results stand.
    async fn store_manifest(&self, mut manifest: Manifest, name: &str) -> Result<Summary> {
        let key = keys::manifest_key(&self.settings.prefix, name);
        let local = self.settings.manifest_dir.join(name);
        manifest.summary.manifest_local_path = Some(local.display().to_string());
        if !manifest.dry_run {
            manifest.summary.manifest_s3_uri = Some(self.remote.uri(&key));
            let body = manifest.to_json()?;
            let md5 = crate::hash::Md5Digest::of(&body);
            let uploaded = self
                .remote
                .put(&key, body, md5, Some("application/json"), true)
                .await;
            if let Err(err) = uploaded {
                warn!(key, error = %err, "manifest upload failed");
                manifest.summary.manifest_s3_uri = None;
                manifest.summary.record_manifest_error(&err);
            }
        }
        let body = manifest.to_json()?;
        if let Err(err) = Manifest::write_local(&body, &local) {
            warn!(path = %local.display(), error = %err, "local manifest write failed");
            manifest.summary.manifest_local_path = None;
            manifest.summary.record_manifest_error(&err);
        }
        Ok(manifest.summary)
    }

    async fn process(&self, item: Found, scope: &Scope, progress: &Progress) -> FileRecord {
        let mut record = match item {
            Found::File(file) => {
                let mut record = FileRecord::new(&file.path, file.size);
                match keys::object_key(&scope.key_prefix, &file.relative) {
                    Err(err) => record.fail(err.to_string()),
                    Ok(key) => {
                        record.s3_uri = Some(self.remote.uri(&key));
                        let result =
                            sync_file(&self.remote, self.transfer_settings(scope), &file, &key)
                                .await;
                        record.s3_key = Some(key);
                        record.md5 = result.md5.map(|m| m.hex());
                        match result.outcome {
                            Ok(Outcome::Uploaded { etag, reason }) => {
                                record.status = FileStatus::Uploaded;
                                record.reason = Some(reason.into());
                                record.etag = etag;
                            }
                            Ok(Outcome::Skipped { reason }) => {
                                record.status = FileStatus::Skipped;
                                record.reason = Some(reason.into());
                            }
                            Ok(Outcome::WouldUpload { reason }) => {
                                record.status = FileStatus::WouldUpload;
                                record.reason = Some(reason.into());
                            }
                            Err(err) => {
                                warn!(path = %file.path.display(), error = %err, "file failed");
                                record.fail(err.to_string());
                            }
                        }
                    }
                }
                record
            }
            Found::Ignored { path, reason, .. } => {
                let mut record = FileRecord::new(&path, 0);
                record.status = FileStatus::Skipped;
                record.reason = Some(reason);
                record
            }
            Found::Unreadable { path, error, .. } => {
                let mut record = FileRecord::new(&path, 0);
                record.fail(error);
                record
            }
        };
        record.timestamp = manifest::timestamp(Utc::now());
        tracing::debug!(path = %record.local_path, status = ?record.status, reason = ?record.reason, error = ?record.error, "file done");
        progress.count(&record);
        record
    }

    fn transfer_settings(&self, scope: &Scope) -> TransferSettings {
        TransferSettings {
            multipart_threshold: self.settings.multipart_threshold,
            part_size: self.settings.part_size,
            dry_run: scope.dry_run,
        }
    }
}

/// Counters shared by the workers and the progress reporter.
#[derive(Debug, Default)]
struct Progress {
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
