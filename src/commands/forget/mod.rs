//! `forget [--prune]`: retention by snapshot. A policy decides which
//! snapshots (manifests) are kept; the others are forgotten (their
//! manifests deleted, every version). With `--prune`, the object versions
//! that no kept snapshot references are then deleted, after a grace
//! period, with a record written first so a killed prune is finished by
//! the next. All of it runs under the prefix's lock; `--dry-run` changes
//! nothing and needs no lock.

mod choose;
pub mod options;
mod prune;
mod record;
pub mod references;
mod sweep;
mod table;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use serde::Serialize;
use tracing::{info, warn};

use crate::error::Result;
use crate::manifest::catalog::{self, SnapshotLine};
use crate::manifest::forgotten;
use crate::run::hold::Skipped;
use crate::run::{RunContext, RunOptions};
use crate::store::{Refused, Store, keys};
pub use choose::Fate;
pub use options::{ForgetArgs, ForgetOptions};
use prune::Prune;
use record::Retained;
pub use references::References;
use sweep::Sweep;
pub use table::table;

/// How a forget ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgetStatus {
    /// Everything asked was done.
    Succeeded,
    /// Something is left for a later run: a version under Object Lock, a
    /// deadline reached, a lost lock.
    Partial,
    /// Another run held the lock; nothing was done.
    Skipped,
}

/// What `forget` did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    pub run_id: String,
    pub status: ForgetStatus,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub snapshots: Vec<Fate>,
    /// Manifests the trusted key does not vouch for (unsigned, misnamed,
    /// copied signatures, a writer's clock ahead of S3's): listed apart,
    /// they count toward no policy, protect nothing and are left in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untrusted: Vec<SnapshotLine>,
    pub kept: u64,
    pub forgotten: u64,
    /// Versions S3 would not delete (Object Lock): retried by a later run.
    pub retained: Vec<Retained>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
    pub requests: BTreeMap<String, u64>,
    pub duration_ms: u64,
}

/// What the prune part did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Records of earlier prunes that this one finished.
    pub resumed: Vec<String>,
    /// This prune's record, if it had anything to do.
    pub record: Option<String>,
    pub manifests_read: u64,
    pub manifest_bytes_read: u64,
    pub records_read: u64,
    pub referenced_versions: u64,
    #[serde(flatten)]
    pub sweep: Sweep,
    pub hidden: u64,
    /// Versions and delete markers deleted.
    pub deleted: u64,
    /// Deletions not made because the deadline came or the lock was lost;
    /// the record stays pending and the next prune makes them.
    pub left_over: u64,
}

impl Skipped for ForgetReport {
    fn skipped(run: &RunContext, why: String) -> Self {
        ForgetReport {
            reason: Some(why),
            ..ForgetReport::new(run, false, ForgetStatus::Skipped)
        }
    }
}

impl ForgetReport {
    fn new(run: &RunContext, dry_run: bool, status: ForgetStatus) -> Self {
        ForgetReport {
            run_id: run.id.clone(),
            status,
            dry_run,
            reason: None,
            snapshots: Vec::new(),
            untrusted: Vec::new(),
            kept: 0,
            forgotten: 0,
            retained: Vec::new(),
            prune: None,
            requests: BTreeMap::new(),
            duration_ms: 0,
        }
    }

    /// The report as an EMF document: `ForgetLeftOver` is 1 when a later
    /// run has work left (what the alarm watches, with the function's errors).
    pub fn emf(&self, function_name: &str, timestamp_ms: i64) -> serde_json::Value {
        let prune = self.prune.clone().unwrap_or_default();
        let left_over = u64::from(self.status != ForgetStatus::Succeeded);
        let metrics = [
            ("ForgetLeftOver", "Count", left_over),
            ("SnapshotsForgotten", "Count", self.forgotten),
            ("VersionsPruned", "Count", prune.deleted),
        ];
        let properties = serde_json::json!({"RunId": self.run_id, "Status": self.status});
        crate::run::metrics::document(function_name, timestamp_ms, &metrics, properties)
    }
}

/// Applies the policy to the snapshots of `prefix`, and prunes if asked.
pub async fn run(
    store: &Store,
    prefix: &str,
    run_options: &RunOptions,
    options: &ForgetOptions,
    stop_at: Option<std::time::Instant>,
) -> Result<ForgetReport> {
    let run = RunContext::start(stop_at);
    let before = store.requests();
    // Boxed: the future is large, and a debug build's stack holds it.
    let work = Box::pin(forget(store, prefix, &run, options));
    let mut report = if options.dry_run {
        work.await?
    } else {
        crate::run::exclusively(store, prefix, run_options.lock_ttl, &run, work).await?
    };
    report.requests = store.requests_since(&before);
    report.duration_ms = u64::try_from(run.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    info!(status = ?report.status, kept = report.kept, forgotten = report.forgotten, "forget finished");
    Ok(report)
}

/// The steps: judge, choose, forget, prune.
async fn forget(
    store: &Store,
    prefix: &str,
    run: &RunContext,
    options: &ForgetOptions,
) -> Result<ForgetReport> {
    let mut report = ForgetReport::new(run, options.dry_run, ForgetStatus::Succeeded);
    let (trusted, untrusted) = catalog::snapshots(store, prefix)
        .await?
        .into_iter()
        .partition(SnapshotLine::trusted);
    report.untrusted = untrusted;
    for line in &report.untrusted {
        warn!(manifest = %line.manifest_s3_uri, why = line.untrusted.as_deref(), "untrusted manifest: it counts for nothing");
    }
    let fates = choose::choose(trusted, &options.policy, run.started)?;
    report.kept = fates.iter().filter(|f| f.kept).count() as u64;
    report.forgotten = fates.len() as u64 - report.kept;
    if !options.dry_run {
        let forgotten: Vec<&SnapshotLine> =
            fates.iter().filter(|f| !f.kept).map(|f| &f.line).collect();
        report.retained = forget_manifests(store, prefix, &run.id, &forgotten).await?;
    }
    if options.prune {
        let kept = still_present(&fates, &report.retained);
        let prune = Prune {
            store,
            prefix,
            run,
            options,
        };
        let pruned = prune.run(&fates, &kept).await?;
        report.retained.extend(pruned.retained);
        report.reason = pruned.stopped;
        report.prune = Some(pruned.report);
    }
    if !report.retained.is_empty() || report.reason.is_some() {
        report.status = ForgetStatus::Partial;
    }
    report.snapshots = fates;
    Ok(report)
}

/// The manifests that stay: kept, or refused deletion.
fn still_present(fates: &[Fate], retained: &[Retained]) -> Vec<SnapshotLine> {
    let refused: BTreeSet<&str> = retained.iter().map(|r| r.key.as_str()).collect();
    fates
        .iter()
        .filter(|f| f.kept || refused.contains(f.line.key.as_str()))
        .map(|f| f.line.clone())
        .collect()
}

/// Marks each forgotten manifest (so the newer one that links to it
/// still verifies and restores) with the digest its line was judged by,
/// then deletes every version of it.
async fn forget_manifests(
    store: &Store,
    prefix: &str,
    run_id: &str,
    forgotten: &[&SnapshotLine],
) -> Result<Vec<Retained>> {
    if forgotten.is_empty() {
        return Ok(Vec::new());
    }
    for line in forgotten {
        let mark = forgotten::Mark {
            key: line.key.clone(),
            sha256: line.sha256.clone(),
            etag: line.etag.clone(),
            forgotten_by: run_id.to_owned(),
            forgotten_at: Utc::now(),
        };
        forgotten::mark(store, &mark).await?;
    }
    let keys: BTreeSet<&str> = forgotten.iter().map(|l| l.key.as_str()).collect();
    let folder = keys::manifest_key(prefix, "");
    let mut versions = Vec::new();
    store
        .list_versions_each(&folder, &mut |version| {
            if keys.contains(version.key.as_str()) {
                versions.push((version.key, version.version_id));
            }
            Ok(())
        })
        .await?;
    let refused = store.delete_versions(&versions).await?;
    for r in &refused {
        warn!(key = %r.key, code = %r.code, "a forgotten manifest could not be deleted; a later run retries");
    }
    Ok(refused.into_iter().map(retained).collect())
}

fn retained(refused: Refused) -> Retained {
    Retained {
        key: refused.key,
        version_id: refused.version_id,
        why: format!("{}: {}", refused.code, refused.message),
    }
}
