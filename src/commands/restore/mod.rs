//! `restore`: bring any manifest's tree back into a directory, each file by
//! the version the manifest recorded, its MD5 checked while it streams. The
//! manifest is trusted only once its own digest and its link to the one
//! before hold. Nothing is written to S3.

mod file;
pub mod options;
pub mod report;

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use tracing::{Instrument, info, info_span, warn};

use crate::error::{Error, Result};
use crate::local::restore_dir::RestoreDir;
use crate::manifest::{FileRecord, chain, locate};
use crate::run::RunContext;
use crate::run::progress::{PROGRESS_EVERY, Progress};
use crate::store::Store;
use file::{Restored, Worker};
pub use options::{RestoreArgs, RestoreOptions};
pub use report::{Failure, RestoreReport};

/// Restores the manifest the options name into their target directory.
/// Per-file failures are in the report; `Err` means the restore could not
/// start (no manifest, a manifest the chain does not vouch for).
pub async fn run(store: &Store, prefix: &str, options: &RestoreOptions) -> Result<RestoreReport> {
    let run = RunContext::start(None);
    let span = info_span!("restore", run_id = %run.id, bucket = %store.bucket(), prefix);
    async {
        let before = store.requests();
        let key = locate(store, prefix, options.manifest.as_deref()).await?;
        let (parsed, broken) = chain::read_stored_files(store, &key).await?;
        let (_, mut broken_links) =
            chain::walk_back(store, parsed.header.previous_manifest.clone(), Some(1)).await;
        if let Some(link) = broken.or_else(|| broken_links.pop()) {
            return Err(Error::ChainBroken {
                key: link.key,
                detail: format!("{}; nothing was restored", link.detail),
            });
        }
        let dir = RestoreDir::open(&options.target_dir)?;
        let worker = Worker {
            store,
            dir: &dir,
            options,
            source_dir: Path::new(&parsed.header.source_dir),
            run_id: &run.id,
        };
        let mut report = RestoreReport {
            run_id: run.id.clone(),
            status: crate::manifest::RunStatus::Succeeded,
            manifest_s3_uri: store.uri(&key),
            target_dir: options.target_dir.display().to_string(),
            restored: 0,
            skipped: 0,
            failed: 0,
            would_restore: 0,
            bytes_restored: 0,
            dry_run: options.dry_run,
            requests: Default::default(),
            duration_ms: 0,
            failures: Vec::new(),
        };
        let chosen: Vec<_> = parsed
            .state
            .iter()
            .filter_map(|file| chosen(&worker, file))
            .collect();
        // Progress goes to the log, which the CLI writes to stderr.
        let progress = Arc::new(Progress::default());
        let reporter = progress.report_every(PROGRESS_EVERY, chosen.len(), "restored");
        let results: Vec<(String, Result<Restored>)> = futures::stream::iter(chosen)
            .map(|(file, relative)| {
                let (worker, progress) = (&worker, &progress);
                async move {
                    let result = worker.restore(file, &relative).await;
                    match &result {
                        Ok(Restored::Written { bytes }) => progress.count_moved(*bytes),
                        Ok(_) => progress.count_done(),
                        Err(_) => progress.count_failed(),
                    }
                    (relative.display().to_string(), result)
                }
            })
            .buffer_unordered(options.concurrency)
            .collect()
            .await;
        reporter.abort();
        for (path, result) in results {
            match result {
                Ok(Restored::Written { bytes }) => {
                    report.restored += 1;
                    report.bytes_restored += bytes;
                }
                Ok(Restored::AlreadyThere) => report.skipped += 1,
                Ok(Restored::WouldRestore) => report.would_restore += 1,
                Err(err) => {
                    warn!(path, error = %err, "file not restored");
                    report.failed += 1;
                    report.failures.push(Failure {
                        path,
                        error: err.to_string(),
                    });
                }
            }
        }
        report.failures.sort_by(|a, b| a.path.cmp(&b.path));
        report.derive_status();
        report.requests = store.requests_since(&before);
        report.duration_ms = run.clock.elapsed().as_millis() as u64;
        info!(
            restored = report.restored,
            skipped = report.skipped,
            failed = report.failed,
            "restore finished"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

/// A record with its relative path, if the filter takes it. A record whose
/// path cannot be made relative is kept: it fails, and says why.
fn chosen<'a>(
    worker: &Worker<'_>,
    file: &'a FileRecord,
) -> Option<(&'a FileRecord, std::path::PathBuf)> {
    match worker.relative(file) {
        Ok(relative) => {
            let text = relative.to_string_lossy();
            worker
                .options
                .filter
                .accepts(&text)
                .then_some((file, relative))
        }
        Err(_) => Some((file, Path::new(&file.local_path).to_path_buf())),
    }
}
