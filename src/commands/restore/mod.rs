//! `restore`: bring any manifest's tree back into a directory, each file by
//! the version the manifest recorded, its MD5 checked while it streams. The
//! manifest is trusted only once its own digest and its link to the one
//! before hold, and the KMS keys it names can still decrypt. A file counts
//! as restored once it and its directory are synced. Nothing is written to
//! S3 but the thaw requests of `--restore-archived`.

mod durable;
mod entries;
mod file;
pub mod options;
mod ranged;
pub mod report;

pub use crate::store::Ranges;

use std::path::PathBuf;

use futures::StreamExt;
use tracing::{Instrument, info, info_span, warn};

use crate::error::{Error, Result};
use crate::local::attributes;
use crate::local::restore_dir::RestoreDir;
use crate::manifest::paged::{Narrow, Reading};
use crate::manifest::read::{Header, Parsed};
use crate::manifest::{EntryKind, FileRecord, RunStatus, chain, locate, trusted};
use crate::run::progress::Progress;
use crate::run::{RunContext, interrupt};
use crate::store::{Kept, Store};
use crate::trust::Verdict;
use entries::Chosen;
use file::{Restored, Worker};
pub use options::{RestoreArgs, RestoreOptions, ThawOptions};
pub use report::{Failure, Pending, RestoreReport};

/// Restores the manifest the options name into their target directory.
/// Per-file failures are in the report; `Err` means the restore could not
/// start (no manifest, a manifest the chain does not vouch for, a key that
/// cannot decrypt it).
pub async fn run(store: &Store, prefix: &str, options: &RestoreOptions) -> Result<RestoreReport> {
    let run = RunContext::start(None);
    let span = info_span!("restore", run_id = %run.id, bucket = %store.bucket(), prefix);
    async {
        let before = store.requests();
        let which = options.manifest.as_deref();
        let located = locate(store, prefix, which, !options.allow_unsigned).await?;
        let manifest = (located.key.as_str(), located.kept.as_ref());
        let (parsed, verdict) = trusted_manifest(store, prefix, manifest, options).await?;
        let mut report = RestoreReport::new(&run.id, store.uri(&located.key), options);
        report.passed_over = located.passed_over;
        report.signature = verdict;
        let chosen = choose(&parsed.state, &parsed.header, options);
        if chosen.is_empty() && !parsed.state.is_empty() {
            report.message = Some(format!(
                "no file of the snapshot matches --include/--exclude ({} files in it); nothing was restored",
                parsed.state.len()
            ));
        }
        let (files, dirs, links) = by_kind(chosen);
        refuse_unusable_keys(store, parsed.kms_key_id.as_deref(), &files).await?;
        let key_prefix = parsed.header.prefix.as_str();
        let results = restore_tree(store, options, key_prefix, files, dirs, links).await?;
        report.add_all(results);
        report.derive_status();
        report.requests = store.requests_since(&before);
        report.duration_ms = run.clock.elapsed().as_millis() as u64;
        info!(
            restored = report.restored,
            skipped = report.skipped,
            pending = report.pending,
            failed = report.failed,
            "restore finished"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Writes the chosen entries under the target: directories first, then the
/// files, then the links, then the directories' attributes; then syncs the
/// directories, so each entry's outcome says whether it is durable.
async fn restore_tree(
    store: &Store,
    options: &RestoreOptions,
    key_prefix: &str,
    files: Vec<Chosen<'_>>,
    dirs: Vec<Chosen<'_>>,
    links: Vec<Chosen<'_>>,
) -> Result<Vec<(PathBuf, Result<Restored>)>> {
    let dir = RestoreDir::open(&options.target_dir, options.dry_run)?;
    let owners = !options.no_owner && attributes::may_set_owners();
    let flush = dir.flush()?;
    let worker = Worker {
        store,
        dir: &dir,
        options,
        owners,
        flush: &flush,
        key_prefix,
    };
    let mut results = entries::make_directories(&dir, &dirs, options.dry_run);
    results.extend(restore_all(&worker, files).await);
    results.extend(entries::make_links(&dir, &links, options, owners));
    if !options.dry_run {
        let unset = entries::set_directory_attributes(&dir, &dirs, owners);
        results.extend(unset.into_iter().map(|(path, err)| (path, Err(err))));
    }
    Ok(durable::sync_directories(&dir, results))
}

/// The stored records of the manifest at `key`, and what its signature
/// proves. Where a key is trusted, its signature is what makes it trusted,
/// and a manifest it did not sign is refused unless `--allow-unsigned`;
/// an unsigned manifest is taken once its own digest and its link to the
/// manifest before it hold.
async fn trusted_manifest(
    store: &Store,
    prefix: &str,
    (key, kept): (&str, Option<&Kept>),
    options: &RestoreOptions,
) -> Result<(Parsed<Vec<FileRecord>>, Verdict)> {
    // Only the pages that may hold the included paths are read.
    let narrow = options.filter.starts().map(|starts| Narrow {
        prefixes: starts.to_vec(),
    });
    let reading = Reading::narrowed(narrow);
    let judged = trusted::read_judged(store, prefix, (key, kept), &reading).await?;
    if judged.verdict.is_valid() {
        return Ok((judged.parsed, judged.verdict));
    }
    if let Some(why) = judged
        .verdict
        .refusal()
        .filter(|_| store.trust().enforced())
    {
        if !options.allow_unsigned {
            return Err(Error::Untrusted {
                key: store.uri(key),
                detail: format!(
                    "{why}; nothing was restored (pass --allow-unsigned to restore it anyway)"
                ),
            });
        }
        warn!(
            manifest = key,
            why, "restoring a manifest the trusted key did not sign"
        );
    }
    let previous = judged.parsed.header.previous_manifest.clone();
    let (_, mut broken_links) = chain::walk_back(store, previous, Some(1)).await;
    if let Some(link) = judged.broken.or_else(|| broken_links.pop()) {
        return Err(Error::ChainBroken {
            key: link.key,
            detail: format!("{}; nothing was restored", link.detail),
        });
    }
    Ok((judged.parsed, judged.verdict))
}

/// Stops before anything is written when a key that encrypts the manifest
/// or a chosen file cannot decrypt now: every read under it would fail.
async fn refuse_unusable_keys(
    store: &Store,
    manifest_key: Option<&str>,
    chosen: &[Chosen<'_>],
) -> Result<()> {
    let keys = chosen.iter().filter_map(|(f, _)| f.kms_key_id.as_deref());
    match store.unusable_keys(manifest_key, keys).await.pop() {
        Some(unusable) => Err(Error::KeyUnusable {
            key: unusable.key,
            detail: unusable.detail,
        }),
        None => Ok(()),
    }
}

/// The records the filter takes, each with its relative path. A record
/// whose path is not under the source is kept as it is: the restore
/// directory refuses any path that is not plainly relative, and says why.
fn choose<'a>(
    files: &'a [FileRecord],
    header: &Header,
    options: &RestoreOptions,
) -> Vec<Chosen<'a>> {
    files
        .iter()
        .filter_map(|file| match trusted::relative_path(header, file) {
            Some(relative) => options
                .filter
                .accepts(&relative.to_string_lossy())
                .then_some((file, relative)),
            None => Some((file, PathBuf::from(&file.local_path))),
        })
        .collect()
}

/// The chosen records split into files, directories and links.
fn by_kind(chosen: Vec<Chosen<'_>>) -> (Vec<Chosen<'_>>, Vec<Chosen<'_>>, Vec<Chosen<'_>>) {
    let (mut files, mut dirs, mut links) = (Vec::new(), Vec::new(), Vec::new());
    for entry in chosen {
        match entry.0.kind {
            EntryKind::File => files.push(entry),
            EntryKind::Directory => dirs.push(entry),
            EntryKind::Symlink => links.push(entry),
        }
    }
    (files, dirs, links)
}

/// Each chosen file's outcome, by relative path; progress goes to stderr.
async fn restore_all(
    worker: &Worker<'_>,
    chosen: Vec<Chosen<'_>>,
) -> Vec<(PathBuf, Result<Restored>)> {
    let bytes = chosen.iter().map(|(file, _)| file.size_bytes).sum();
    let progress = Progress::of(chosen.len() as u64, bytes);
    let shown = progress.show("restored");
    let results = futures::stream::iter(chosen)
        .map(|(file, relative)| {
            let progress = &progress;
            async move {
                // After SIGINT or SIGTERM no file is started; those in
                // flight finish, and the report says what was left.
                if interrupt::received().is_some() {
                    return (relative, Ok(Restored::NotStarted));
                }
                let result = worker.restore(file, &relative).await;
                match &result {
                    Ok(Restored::Written { bytes }) => progress.count_moved(*bytes),
                    Ok(_) => progress.count_done(),
                    Err(_) => progress.count_failed(),
                }
                (relative, result)
            }
        })
        .buffer_unordered(worker.options.concurrency)
        .collect()
        .await;
    drop(shown);
    results
}

impl RestoreReport {
    fn new(run_id: &str, manifest_s3_uri: String, options: &RestoreOptions) -> Self {
        RestoreReport {
            run_id: run_id.to_owned(),
            status: RunStatus::Succeeded,
            message: None,
            manifest_s3_uri,
            passed_over: Vec::new(),
            signature: Verdict::Unsigned,
            target_dir: options.target_dir.display().to_string(),
            restored: 0,
            skipped: 0,
            directories: 0,
            symlinks: 0,
            failed: 0,
            pending: 0,
            not_started: 0,
            would_restore: 0,
            bytes_restored: 0,
            dry_run: options.dry_run,
            requests: Default::default(),
            duration_ms: 0,
            failures: Vec::new(),
            pending_files: Vec::new(),
        }
    }

    fn add_all(&mut self, results: Vec<(PathBuf, Result<Restored>)>) {
        for (path, result) in results {
            let path = path.display().to_string();
            match result {
                Ok(Restored::Written { bytes }) => {
                    self.restored += 1;
                    self.bytes_restored += bytes;
                }
                Ok(Restored::AlreadyThere) => self.skipped += 1,
                Ok(Restored::Directory) => self.directories += 1,
                Ok(Restored::Symlink) => self.symlinks += 1,
                Ok(Restored::WouldRestore(reason)) => {
                    info!(path, reason, "would restore");
                    self.would_restore += 1;
                }
                Ok(Restored::Pending { detail }) => {
                    self.pending += 1;
                    self.pending_files.push(Pending { path, detail });
                }
                Ok(Restored::NotStarted) => self.not_started += 1,
                Err(err) => {
                    warn!(path, error = %err, "file not restored");
                    self.failed += 1;
                    self.failures.push(Failure {
                        path,
                        error: err.to_string(),
                    });
                }
            }
        }
        self.failures.sort_by(|a, b| a.path.cmp(&b.path));
        self.pending_files.sort_by(|a, b| a.path.cmp(&b.path));
    }
}
