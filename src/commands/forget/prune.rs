//! The prune of `forget --prune`: reads what the kept snapshots reference,
//! finishes any prune a crash left, then sweeps the prefix's versions and
//! deletes what may go, after a record of it is written.
//!
//! It touches only what is this backup's to touch:
//! - never a prefix inside another backup (whose snapshots it cannot see),
//!   nor the whole bucket unless `--prefix ''` says so;
//! - only versions that carry this tool's mark (its `md5checksum`
//!   metadata), checked by a HEAD of each candidate;
//! - nothing at all while no kept snapshot of a whole source completed:
//!   then nothing is known to have left the source.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::choose::{self, Fate};
use super::record::{self, Deletion, PruneRecord, Retained};
use super::references::References;
use super::sweep::{self, Cutoffs, Sweep};
use super::{ForgetOptions, PruneReport, retained};
use crate::error::{Error, Result};
use crate::manifest::catalog::SnapshotLine;
use crate::manifest::paged::PAGES_FOLDER;
use crate::manifest::{Kind, is_manifest_name};
use crate::run::RunContext;
use crate::store::{KeyRange, Store, keys};

/// HEADs in flight at once while candidates are checked for the mark.
const IN_FLIGHT: usize = 16;

/// Deletions per DeleteObjects request.
const BATCH: usize = 1000;

/// One prune of one prefix.
pub(super) struct Prune<'a> {
    pub store: &'a Store,
    pub prefix: &'a str,
    pub run: &'a RunContext,
    pub options: &'a ForgetOptions,
}

/// What a prune did, and what it leaves.
#[derive(Default)]
pub(super) struct Pruned {
    pub report: PruneReport,
    /// Versions S3 would not delete (Object Lock).
    pub retained: Vec<Retained>,
    /// Why it stopped short: the deadline, a lost lock, no anchor.
    pub stopped: Option<String>,
}

impl Prune<'_> {
    /// The steps: where it may run, what is referenced, what a crash
    /// left, the sweep, the mark, then the record and the deletions.
    pub async fn run(&self, fates: &[Fate], kept: &[SnapshotLine]) -> Result<Pruned> {
        self.check_place().await?;
        let references = References::of(self.store, kept).await?;
        let mut pruned = Pruned::default();
        pruned.report.manifests_read = references.manifests;
        pruned.report.manifest_bytes_read = kept.iter().filter_map(|l| l.size).sum();
        pruned.report.records_read = references.records;
        pruned.report.referenced_versions = references.versions() as u64;
        if !self.options.dry_run {
            self.finish_unfinished(&references, &mut pruned).await?;
        }
        let Some(cutoffs) = cutoffs_of(fates, kept, self.run.started, self.options) else {
            pruned.stopped = Some(
                "prune did not run: no kept snapshot of the whole source completed (under the trusted key, where one is set), so nothing is known to have left the source".into(),
            );
            return Ok(pruned);
        };
        let mut sweep = sweep::sweep(self.store, self.prefix, &references, cutoffs).await?;
        self.keep_foreign(&mut sweep).await?;
        pruned.report.sweep = sweep;
        let sweep = &pruned.report.sweep;
        if self.options.dry_run || (sweep.deletions.is_empty() && sweep.hide.is_empty()) {
            return Ok(pruned);
        }
        let mut pending = self.record_of(sweep);
        pending.version_id = record::write(self.store, &pending.key, &pending.record).await?;
        pruned.report.record = Some(self.store.uri(&pending.key));
        for key in &pending.record.hidden {
            self.store.hide(key).await?;
            pruned.report.hidden += 1;
        }
        self.execute(&mut pending, &mut pruned).await?;
        Ok(pruned)
    }

    /// Refuses a prefix whose sweep could reach another backup's objects:
    /// the whole bucket unless asked for by name, or a prefix inside
    /// another backup. Backups nested inside this prefix are left alone by
    /// the sweep itself.
    async fn check_place(&self) -> Result<()> {
        if self.prefix.is_empty() && !self.options.whole_bucket {
            return Err(Error::Config(
                "forget --prune with an empty prefix would sweep the whole bucket, other applications' objects included: set --prefix (SYNC_PREFIX) to the backup's prefix, or pass --prefix '' to prune the whole bucket".into(),
            ));
        }
        for outer in ancestors(self.prefix) {
            let folder = keys::manifest_key(outer, "");
            let listed = self.store.list(&folder, &[KeyRange::default()]).await?;
            let holds_manifests = listed
                .iter()
                .any(|o| o.key.strip_prefix(&folder).is_some_and(is_manifest_name));
            if holds_manifests {
                return Err(Error::Config(format!(
                    "prefix {:?} lies inside the backup whose snapshots are in {}: a prune from here cannot see what they reference; prune from {outer:?} instead, which judges both and leaves this prefix's keys alone",
                    self.prefix,
                    self.store.uri(&folder)
                )));
            }
        }
        Ok(())
    }

    /// Finishes the records earlier prunes left, judged again against
    /// this run's references, bounded to this prefix and to marked versions.
    async fn finish_unfinished(&self, references: &References, pruned: &mut Pruned) -> Result<()> {
        let folder = keys::folder_of(self.prefix);
        let manifests = keys::manifest_key(self.prefix, "");
        // Of the manifest folder, only pages are ever swept.
        let pages = format!("{manifests}{PAGES_FOLDER}/");
        let sweepable = |key: &str| !key.starts_with(&manifests) || key.starts_with(&pages);
        for mut pending in record::unfinished(self.store, self.prefix).await? {
            let doomed: Vec<(String, String)> = pending
                .record
                .deletions
                .drain(..)
                .filter(|d| d.key.starts_with(&folder) && sweepable(&d.key))
                .filter(|d| !references.holds(&d.key, &d.version_id))
                .map(|d| (d.key, d.version_id))
                .collect();
            let (ours, _) = self.marked(doomed).await?;
            pending.record.deletions = ours.into_iter().map(deletion).collect();
            self.execute(&mut pending, pruned).await?;
            pruned.report.resumed.push(self.store.uri(&pending.key));
        }
        Ok(())
    }

    /// Drops from the sweep every version without this tool's mark.
    async fn keep_foreign(&self, sweep: &mut Sweep) -> Result<()> {
        let hide: Vec<(String, String)> = std::mem::take(&mut sweep.hide)
            .into_iter()
            .map(|key| (key, String::new()))
            .collect();
        let (hide, foreign_hidden) = self.marked(hide).await?;
        sweep.hide = hide.into_iter().map(|(key, _)| key).collect();
        let doomed = std::mem::take(&mut sweep.deletions);
        let (deletions, foreign) = self.marked(doomed).await?;
        sweep.deletions = deletions;
        sweep.versions_to_delete -= foreign.len() as u64;
        sweep.bytes_to_delete -= foreign.iter().sum::<u64>();
        sweep.foreign_kept += (foreign_hidden.len() + foreign.len()) as u64;
        Ok(())
    }

    /// Of `candidates` (key and version; an empty version for the current
    /// one), those whose object carries this tool's mark, and the sizes of
    /// those that do not. A delete marker holds no object (its HEAD finds
    /// none) and passes: it hides data, holds none.
    async fn marked(
        &self,
        candidates: Vec<(String, String)>,
    ) -> Result<(Vec<(String, String)>, Vec<u64>)> {
        let store = self.store;
        let checked: Vec<((String, String), Option<u64>)> = futures::stream::iter(candidates)
            .map(|doomed| async move {
                let version = Some(doomed.1.as_str()).filter(|v| !v.is_empty());
                let object = store.head_at(&doomed.0, version).await?;
                let foreign = match object {
                    Some(object) if object.md5.is_none() => {
                        Some(object.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
                    }
                    _ => None,
                };
                Ok::<_, Error>((doomed, foreign))
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut ours = Vec::new();
        let mut foreign = Vec::new();
        for (doomed, size) in checked {
            match size {
                None => ours.push(doomed),
                Some(size) => foreign.push(size),
            }
        }
        Ok((ours, foreign))
    }

    /// The record written before the first deletion.
    fn record_of(&self, sweep: &Sweep) -> record::Stored {
        let run = self.run;
        record::Stored {
            key: record::pending_key(self.prefix, run.started, &run.id),
            version_id: None,
            record: PruneRecord {
                run_id: run.id.clone(),
                written_at: Utc::now(),
                keep_deleted_within: self.options.grace.to_string(),
                hidden: sweep.hide.clone(),
                deletions: sweep.deletions.iter().cloned().map(deletion).collect(),
                finished_at: None,
                deleted: 0,
                retained: Vec::new(),
            },
        }
    }

    /// Deletes a record's versions a batch at a time, stopping at the
    /// deadline or when the lock is lost (the record then stays pending);
    /// finishes the record when all are done.
    async fn execute(&self, pending: &mut record::Stored, pruned: &mut Pruned) -> Result<()> {
        let deletions: Vec<(String, String)> = pending
            .record
            .deletions
            .iter()
            .map(|d| (d.key.clone(), d.version_id.clone()))
            .collect();
        for (done, batch) in deletions.chunks(BATCH).enumerate() {
            if let Some(why) = stop_reason(self.run) {
                pruned.report.left_over += (deletions.len() - done * BATCH) as u64;
                pruned.stopped = Some(why);
                return Ok(());
            }
            let refused = self.store.delete_versions(batch).await?;
            let deleted = (batch.len() - refused.len()) as u64;
            pruned.report.deleted += deleted;
            pending.record.deleted += deleted;
            let refused: Vec<Retained> = refused.into_iter().map(retained).collect();
            pending.record.retained.extend(refused.iter().cloned());
            pruned.retained.extend(refused);
        }
        pruned
            .retained
            .extend(record::finish(self.store, pending).await?);
        Ok(())
    }
}

fn deletion((key, version_id): (String, String)) -> Deletion {
    Deletion { key, version_id }
}

/// The prefixes that hold `prefix`, nearest first, the bucket's root last.
fn ancestors(prefix: &str) -> Vec<&str> {
    let mut outer = Vec::new();
    let mut rest = prefix;
    while !rest.is_empty() {
        rest = rest.rsplit_once('/').map_or("", |(head, _)| head);
        outer.push(rest);
    }
    outer
}

/// The sweep's moments, from the snapshots that stay. `None` when no kept
/// snapshot of a whole source completed: nothing could be judged to have
/// left the source, so nothing goes.
fn cutoffs_of(
    fates: &[Fate],
    kept: &[SnapshotLine],
    now: DateTime<Utc>,
    options: &ForgetOptions,
) -> Option<Cutoffs> {
    let newest = kept.iter().map(|l| l.time).max()?;
    // Each line's newest complete snapshot is always kept (see choose).
    let mut newest_complete: std::collections::BTreeMap<Option<&str>, DateTime<Utc>> =
        Default::default();
    let whole_source = |f: &&Fate| f.kept && f.line.kind != Kind::Narrowed;
    for fate in fates.iter().filter(whole_source) {
        if choose::is_whole(&fate.line) {
            let at = newest_complete
                .entry(fate.line.scope.as_deref())
                .or_insert(fate.line.time);
            *at = (*at).max(fate.line.time);
        }
    }
    // Narrowed runs cover part of the source: only full lines tell what left it.
    let hide_before = newest_complete.values().min()?;
    Some(Cutoffs {
        untouched_after: whole_second(newest),
        hide_before: Some(whole_second(*hide_before)),
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

fn stop_reason(run: &RunContext) -> Option<String> {
    if let Some(why) = run.standing.lost_because() {
        return Some(format!("the lock was lost: {why}"));
    }
    run.stop_at
        .is_some_and(|at| std::time::Instant::now() >= at)
        .then(|| "the invocation's time limit came".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_held_by_each_prefix_above_it() {
        assert_eq!(ancestors("a/b/c"), ["a/b", "a", ""]);
        assert_eq!(ancestors("a"), [""]);
        assert!(ancestors("").is_empty());
    }
}
