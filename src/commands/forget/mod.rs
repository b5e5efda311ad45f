//! `forget [--prune]`: retention by snapshot. A policy decides which
//! snapshots (manifests) are kept; the others are forgotten (their
//! manifests deleted, every version). With `--prune`, the object versions
//! that no kept snapshot references are then deleted, after a grace
//! period, with a record written first so a killed prune is finished by
//! the next. All of it runs under the prefix's lock; `--dry-run` changes
//! nothing and needs no lock.

mod choose;
pub mod options;
mod record;
pub mod references;
mod sweep;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
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
use record::{Deletion, PruneRecord, Retained};
pub use references::References;
use sweep::{Cutoffs, Sweep};

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

/// The steps: choose, forget, prune.
async fn forget(
    store: &Store,
    prefix: &str,
    run: &RunContext,
    options: &ForgetOptions,
) -> Result<ForgetReport> {
    let mut report = ForgetReport::new(run, options.dry_run, ForgetStatus::Succeeded);
    let lines = catalog::snapshots(store, prefix).await?;
    let trust = store.trust();
    let fates = choose::choose(lines, &options.policy, run.started, |line| {
        !trust.enforced() || line.signature.is_valid()
    })?;
    report.kept = fates.iter().filter(|f| f.kept).count() as u64;
    report.forgotten = fates.len() as u64 - report.kept;
    if !options.dry_run {
        let forgotten: BTreeSet<&str> = fates
            .iter()
            .filter(|f| !f.kept)
            .map(|f| f.line.key.as_str())
            .collect();
        report.retained = forget_manifests(store, prefix, &run.id, &forgotten).await?;
    }
    if options.prune {
        let kept = still_present(&fates, &report.retained);
        report.prune = Some(prune(store, prefix, run, options, &fates, &kept, &mut report).await?);
    }
    if !report.retained.is_empty() {
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
/// still verifies and restores), then deletes every version of it.
async fn forget_manifests(
    store: &Store,
    prefix: &str,
    run_id: &str,
    forgotten: &BTreeSet<&str>,
) -> Result<Vec<Retained>> {
    for key in forgotten {
        let Some(object) = store.head(key).await? else {
            continue;
        };
        let mark = forgotten::Mark {
            key: (*key).to_owned(),
            sha256: object.sha256,
            etag: object.etag,
            forgotten_by: run_id.to_owned(),
            forgotten_at: Utc::now(),
        };
        forgotten::mark(store, &mark).await?;
    }
    if forgotten.is_empty() {
        return Ok(Vec::new());
    }
    let folder = keys::manifest_key(prefix, "");
    let mut versions = Vec::new();
    store
        .list_versions_each(&folder, &mut |version| {
            if forgotten.contains(version.key.as_str()) {
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

/// Reads what the kept snapshots reference, finishes any prune a crash
/// left, then sweeps the prefix's versions and deletes what may go.
async fn prune(
    store: &Store,
    prefix: &str,
    run: &RunContext,
    options: &ForgetOptions,
    fates: &[Fate],
    kept: &[SnapshotLine],
    report: &mut ForgetReport,
) -> Result<PruneReport> {
    let keys: Vec<String> = kept.iter().map(|l| l.key.clone()).collect();
    let references = References::of(store, &keys).await?;
    let mut pruned = PruneReport {
        manifests_read: references.manifests,
        manifest_bytes_read: manifest_bytes(store, prefix, &keys).await?,
        records_read: references.records,
        referenced_versions: references.versions() as u64,
        ..PruneReport::default()
    };
    if !options.dry_run {
        for mut pending in record::unfinished(store, prefix).await? {
            // Made before this run's snapshots were known: judged again.
            pending
                .record
                .deletions
                .retain(|d| !references.holds(&d.key, &d.version_id));
            execute(store, run, &mut pending, &mut pruned, report).await?;
            pruned.resumed.push(store.uri(&pending.key));
        }
    }
    let cutoffs = cutoffs_of(fates, kept, run.started, options);
    let Some(cutoffs) = cutoffs else {
        return Ok(pruned);
    };
    pruned.sweep = sweep::sweep(store, prefix, &references, cutoffs).await?;
    let sweep = &pruned.sweep;
    if options.dry_run || (sweep.deletions.is_empty() && sweep.hide.is_empty()) {
        return Ok(pruned);
    }
    let mut pending = record::Stored {
        key: record::pending_key(prefix, run.started, &run.id),
        version_id: None,
        record: PruneRecord {
            run_id: run.id.clone(),
            written_at: Utc::now(),
            keep_deleted_within: options.grace.to_string(),
            hidden: sweep.hide.clone(),
            deletions: sweep
                .deletions
                .iter()
                .map(|(key, version_id)| Deletion {
                    key: key.clone(),
                    version_id: version_id.clone(),
                })
                .collect(),
            finished_at: None,
            deleted: 0,
            retained: Vec::new(),
        },
    };
    pending.version_id = record::write(store, &pending.key, &pending.record).await?;
    pruned.record = Some(store.uri(&pending.key));
    for key in &pending.record.hidden {
        store.hide(key).await?;
        pruned.hidden += 1;
    }
    execute(store, run, &mut pending, &mut pruned, report).await?;
    Ok(pruned)
}

/// The sweep's moments, from the snapshots that stay. `None` when no
/// snapshot stays: nothing could be judged referenced, so nothing goes.
fn cutoffs_of(
    fates: &[Fate],
    kept: &[SnapshotLine],
    now: DateTime<Utc>,
    options: &ForgetOptions,
) -> Option<Cutoffs> {
    let newest = kept.iter().map(|l| l.time).max()?;
    // Each line's newest complete snapshot is always kept (see choose).
    let mut newest_complete: BTreeMap<(bool, Option<&str>), DateTime<Utc>> = BTreeMap::new();
    for fate in fates.iter().filter(|f| f.kept && choose::is_whole(&f.line)) {
        let line = (
            fate.line.kind == crate::manifest::Kind::Narrowed,
            fate.line.scope.as_deref(),
        );
        let at = newest_complete.entry(line).or_insert(fate.line.time);
        *at = (*at).max(fate.line.time);
    }
    // Narrowed runs cover part of the source: only full lines tell what left it.
    let hide_before = newest_complete
        .iter()
        .filter(|((narrowed, _), _)| !narrowed)
        .map(|(_, at)| *at)
        .min();
    Some(Cutoffs {
        untouched_after: whole_second(newest),
        hide_before: hide_before.map(whole_second),
        delete_before: whole_second(options.grace.before(now)),
    })
}

/// S3 lists Last-Modified in whole seconds, cut down: a version listed
/// at 10:00:00 may have been written at 10:00:00.9. Cut-offs compared with
/// it are cut down the same way, so such a version counts as written at
/// or after a cut-off in that second, never before it.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// The bytes of the manifests at `keys`, from one listing.
async fn manifest_bytes(store: &Store, prefix: &str, keys: &[String]) -> Result<u64> {
    let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let folder = keys::manifest_key(prefix, "");
    let listed = store
        .list(&folder, &[crate::store::KeyRange::default()])
        .await?;
    Ok(listed
        .iter()
        .filter(|o| wanted.contains(o.key.as_str()))
        .filter_map(|o| o.size)
        .sum())
}

/// Deletes a record's versions a batch at a time, stopping at the
/// deadline or when the lock is lost (the record then stays pending);
/// finishes the record when all are done.
async fn execute(
    store: &Store,
    run: &RunContext,
    pending: &mut record::Stored,
    pruned: &mut PruneReport,
    report: &mut ForgetReport,
) -> Result<()> {
    const BATCH: usize = 1000;
    let deletions: Vec<(String, String)> = pending
        .record
        .deletions
        .iter()
        .map(|d| (d.key.clone(), d.version_id.clone()))
        .collect();
    for (done, batch) in deletions.chunks(BATCH).enumerate() {
        if let Some(why) = stop_reason(run) {
            pruned.left_over += (deletions.len() - done * BATCH) as u64;
            report.status = ForgetStatus::Partial;
            report.reason = Some(why);
            return Ok(());
        }
        let refused = store.delete_versions(batch).await?;
        pruned.deleted += (batch.len() - refused.len()) as u64;
        pending.record.deleted += (batch.len() - refused.len()) as u64;
        let refused: Vec<Retained> = refused.into_iter().map(retained).collect();
        pending.record.retained.extend(refused.iter().cloned());
        report.retained.extend(refused);
    }
    record::finish(store, pending).await
}

fn stop_reason(run: &RunContext) -> Option<String> {
    if let Some(why) = run.standing.lost_because() {
        return Some(format!("the lock was lost: {why}"));
    }
    run.stop_at
        .is_some_and(|at| std::time::Instant::now() >= at)
        .then(|| "the invocation's time limit came".to_owned())
}

/// The report as lines for a person.
pub fn table(report: &ForgetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for fate in &report.snapshots {
        let verb = if fate.kept { "keep  " } else { "forget" };
        let _ = writeln!(
            out,
            "{verb} {}  {}  {}",
            fate.line.time.format("%Y-%m-%d %H:%M:%S"),
            fate.line.run_id,
            fate.reasons.join(", ")
        );
    }
    let verb = if report.dry_run {
        "would forget"
    } else {
        "forgot"
    };
    let _ = writeln!(
        out,
        "kept {} snapshots, {verb} {}",
        report.kept, report.forgotten
    );
    if let Some(prune) = &report.prune {
        let _ = writeln!(
            out,
            "prune: {} versions listed, {} referenced, {} in grace, {} to delete ({}), {} hidden, {} deleted, {} left over",
            prune.sweep.versions_listed,
            prune.sweep.referenced,
            prune.sweep.in_grace,
            prune.sweep.versions_to_delete,
            super::listing::human_bytes(prune.sweep.bytes_to_delete),
            prune.hidden,
            prune.deleted,
            prune.left_over
        );
    }
    for r in &report.retained {
        let _ = writeln!(out, "retained {} ({}): {}", r.key, r.version_id, r.why);
    }
    out
}
