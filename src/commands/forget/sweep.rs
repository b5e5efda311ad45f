//! Which object versions prune deletes: one pass over every version under
//! the prefix, a key's history at a time (newest first), each version
//! judged against what the kept snapshots reference.
//!
//! - A referenced version stays.
//! - A version written after the newest snapshot started stays: a run that
//!   crashed, or one still writing, may need it.
//! - A current object that no kept snapshot references, written before
//!   every line's newest complete snapshot started, has left the source:
//!   it is hidden behind a delete marker, so it becomes noncurrent now and
//!   its grace period starts. A key with a version without a version id
//!   (`null`) anywhere in its history is never hidden: on an unversioned
//!   bucket the marker would delete the current object for good, and on a
//!   suspended one it replaces the null version wherever that sits in the
//!   stack (S3 User Guide, "Deleting objects from versioning-suspended
//!   buckets"). Such keys are counted in `unversioned_kept`.
//! - A noncurrent version that no kept snapshot references is deleted once
//!   it has been noncurrent for the grace period (measured, as S3 Lifecycle
//!   measures `NoncurrentDays`, from when the next version was written).
//! - A delete marker goes once nothing is left behind it, or once it is
//!   itself noncurrent past the grace period.
//!
//! - A page of a paged snapshot (under `_manifests/pages/`) is judged as
//!   a data object is, against the nodes of the kept snapshots' trees: an
//!   unreferenced one is hidden, then deleted once past the grace period.
//!   On a bucket without versions, where hiding would delete it at once, it
//!   is deleted once it was written longer ago than the grace period: the
//!   snapshots that named it are gone for good, so it serves nothing.
//!
//! Keys under the manifest and audit folders are never touched (pages
//! aside), nor any under a nested prefix (a folder that holds its own
//! `_manifests/`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::references::References;
use crate::error::Result;
use crate::manifest::paged::PAGES_FOLDER;
use crate::store::keys::{AUDIT_FOLDER, MANIFEST_FOLDER, folder_of};
use crate::store::{NULL_VERSION, Store, Version};

/// The moments that decide a version's fate.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// When the newest snapshot started: nothing written since is touched.
    pub untouched_after: DateTime<Utc>,
    /// When the oldest of the lines' newest complete snapshots started; an
    /// unreferenced current object older than this is hidden. `None`: no
    /// line has a complete snapshot, so nothing is known to have left.
    pub hide_before: Option<DateTime<Utc>>,
    /// Now less the grace period.
    pub delete_before: DateTime<Utc>,
}

/// What one pass found to do, with counts for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sweep {
    #[serde(skip)]
    pub deletions: Vec<(String, String)>,
    #[serde(skip)]
    pub hide: Vec<String>,
    /// Object versions listed (delete markers not counted).
    pub versions_listed: u64,
    pub referenced: u64,
    /// Written after the newest snapshot started.
    pub recent: u64,
    /// Unreferenced, noncurrent for less than the grace period.
    pub in_grace: u64,
    /// Object versions (not delete markers) to delete, and their bytes.
    pub versions_to_delete: u64,
    pub bytes_to_delete: u64,
    /// Objects no kept snapshot references, not hidden because they have
    /// no version id (an unversioned bucket, or written before versioning
    /// was enabled): hiding them would delete them at once.
    pub unversioned_kept: u64,
    /// Nested prefixes left alone.
    pub nested_prefixes: BTreeSet<String>,
    /// Versions left alone because they do not carry this tool's mark (its
    /// `md5checksum` metadata): another application's objects.
    pub foreign_kept: u64,
    /// Of the versions to delete and the keys to hide, pages of paged
    /// snapshots no kept snapshot's tree holds.
    pub pages_to_delete: u64,
    pub pages_to_hide: u64,
}

/// Lists every version under `prefix` and decides each one's fate.
pub async fn sweep(
    store: &Store,
    prefix: &str,
    references: &References,
    cutoffs: Cutoffs,
) -> Result<Sweep> {
    let folder = folder_of(prefix);
    let own = [
        format!("{folder}{MANIFEST_FOLDER}/"),
        format!("{folder}{AUDIT_FOLDER}/"),
    ];
    let pages = format!("{folder}{MANIFEST_FOLDER}/{PAGES_FOLDER}/");
    let nested_mark = format!("/{MANIFEST_FOLDER}/");
    let mut sweep = Sweep::default();
    let mut history: Vec<Version> = Vec::new();
    let of = Judging {
        references,
        cutoffs,
        pages: &pages,
    };
    store
        .list_versions_each(&folder, &mut |version| {
            let page = version.key.starts_with(&pages);
            if !page && own.iter().any(|o| version.key.starts_with(o.as_str())) {
                return Ok(());
            }
            if let Some(at) = version.key[folder.len()..].find(&nested_mark) {
                sweep
                    .nested_prefixes
                    .insert(version.key[..folder.len() + at + 1].to_owned());
                return Ok(());
            }
            if history.first().is_some_and(|h| h.key != version.key) {
                of.judge(&std::mem::take(&mut history), &mut sweep);
            }
            history.push(version);
            Ok(())
        })
        .await?;
    of.judge(&history, &mut sweep);
    if !sweep.nested_prefixes.is_empty() {
        let nested = sweep.nested_prefixes.clone();
        let outside = |key: &str| !nested.iter().any(|n| key.starts_with(n.as_str()));
        sweep.deletions.retain(|(key, _)| outside(key));
        sweep.hide.retain(|key| outside(key));
    }
    Ok(sweep)
}

/// What a key's history is judged by.
struct Judging<'a> {
    references: &'a References,
    cutoffs: Cutoffs,
    /// The folder of this prefix's snapshot pages.
    pages: &'a str,
}

impl Judging<'_> {
    /// Judges one key's history, newest first.
    fn judge(&self, history: &[Version], sweep: &mut Sweep) {
        let (references, cutoffs) = (self.references, self.cutoffs);
        let Some(latest) = history.first() else {
            return;
        };
        let page = latest.key.starts_with(self.pages);
        // When each version stopped being current: when the one above it was written.
        let mut noncurrent_since: Option<DateTime<Utc>> = None;
        let mut left_behind = 0;
        // A current object without a version id: any "null" listed under it is
        // that same object (an unversioned bucket), and deleting it by version
        // id would delete the current object.
        let unversioned = !latest.delete_marker && latest.version_id == NULL_VERSION;
        let holds_null = history
            .iter()
            .any(|v| !v.delete_marker && v.version_id == NULL_VERSION);
        for version in history {
            let since = noncurrent_since.replace(version.last_modified);
            let expired = since.is_some_and(|t| t < cutoffs.delete_before);
            if version.delete_marker {
                if since.is_some() && expired {
                    delete(sweep, version);
                }
                continue;
            }
            sweep.versions_listed += 1;
            if references.holds(&version.key, &version.version_id) {
                sweep.referenced += 1;
                left_behind += 1;
            } else if version.last_modified >= cutoffs.untouched_after {
                sweep.recent += 1;
                left_behind += 1;
            } else if since.is_none() {
                let left = cutoffs
                    .hide_before
                    .is_some_and(|t| version.last_modified < t);
                match (left, holds_null) {
                    (true, false) => {
                        sweep.pages_to_hide += u64::from(page);
                        sweep.hide.push(version.key.clone());
                    }
                    (true, true) if page && version.last_modified < cutoffs.delete_before => {
                        delete_version(sweep, version, page);
                        continue;
                    }
                    (true, true) if page => sweep.in_grace += 1,
                    (true, true) => sweep.unversioned_kept += 1,
                    (false, _) => {}
                }
                left_behind += 1;
            } else if expired && !(version.version_id == NULL_VERSION && unversioned) {
                delete_version(sweep, version, page);
            } else {
                sweep.in_grace += 1;
                left_behind += 1;
            }
        }
        // A marker with nothing behind it hides nothing.
        if latest.delete_marker && left_behind == 0 {
            delete(sweep, latest);
        }
    }
}

/// Deletes an object version (a page's, if `page`), counted with its bytes.
fn delete_version(sweep: &mut Sweep, version: &Version, page: bool) {
    sweep.pages_to_delete += u64::from(page);
    sweep.versions_to_delete += 1;
    sweep.bytes_to_delete += version.size;
    delete(sweep, version);
}

fn delete(sweep: &mut Sweep, version: &Version) {
    sweep
        .deletions
        .push((version.key.clone(), version.version_id.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + hour * 3600, 0).unwrap()
    }

    fn version(key: &str, id: &str, hour: i64, marker: bool) -> Version {
        Version {
            key: key.into(),
            version_id: id.into(),
            is_latest: false,
            delete_marker: marker,
            last_modified: at(hour),
            size: 10,
            etag: None,
            storage_class: None,
        }
    }

    fn cutoffs() -> Cutoffs {
        Cutoffs {
            untouched_after: at(100),
            hide_before: Some(at(90)),
            delete_before: at(50),
        }
    }

    fn judged(history: &[Version]) -> Sweep {
        let mut sweep = Sweep::default();
        let of = Judging {
            references: &References::default(),
            cutoffs: cutoffs(),
            pages: "p/_manifests/pages/",
        };
        of.judge(history, &mut sweep);
        sweep
    }

    #[test]
    fn an_unreferenced_page_without_versions_goes_once_past_the_grace() {
        let page = "p/_manifests/pages/ab";
        let sweep = judged(&[version(page, NULL_VERSION, 10, false)]);
        assert_eq!(
            sweep.deletions,
            [(page.to_owned(), NULL_VERSION.to_owned())]
        );
        assert_eq!((sweep.pages_to_delete, sweep.unversioned_kept), (1, 0));
        let sweep = judged(&[version(page, NULL_VERSION, 60, false)]);
        assert!(sweep.deletions.is_empty(), "written within the grace");
        assert_eq!(sweep.in_grace, 1);
        // A data object in a folder that happens to be named "pages" is data.
        let data = "p/docs/pages/ab";
        let sweep = judged(&[version(data, NULL_VERSION, 10, false)]);
        assert!(sweep.deletions.is_empty() && sweep.hide.is_empty());
        assert_eq!(sweep.unversioned_kept, 1);
    }

    #[test]
    fn an_unreferenced_versioned_page_is_hidden_then_deleted_past_the_grace() {
        let page = "p/_manifests/pages/ab";
        let sweep = judged(&[version(page, "v1", 10, false)]);
        assert_eq!(sweep.hide, [page]);
        let sweep = judged(&[version(page, "m", 40, true), version(page, "v1", 10, false)]);
        assert_eq!(
            sweep.deletions,
            [
                (page.to_owned(), "v1".to_owned()),
                (page.to_owned(), "m".to_owned())
            ]
        );
        assert_eq!(sweep.pages_to_delete, 1);
    }

    #[test]
    fn a_version_noncurrent_past_the_grace_goes_one_within_it_stays() {
        let sweep = judged(&[
            version("k", "v3", 60, false),
            version("k", "v2", 40, false),
            version("k", "v1", 10, false),
        ]);
        // v2 is noncurrent since hour 60 (in grace), v1 since hour 40.
        assert_eq!(sweep.deletions, [("k".to_owned(), "v1".to_owned())]);
        assert_eq!(sweep.in_grace, 1);
        assert_eq!(
            sweep.hide,
            ["k"],
            "v3 is unreferenced and older than hide_before"
        );
    }

    #[test]
    fn nothing_written_after_the_newest_snapshot_started_is_touched() {
        let sweep = judged(&[
            version("k", "v2", 120, false),
            version("k", "v1", 10, false),
        ]);
        // v1 stopped being current at hour 120: within the grace.
        assert!(sweep.deletions.is_empty() && sweep.hide.is_empty());
        assert_eq!((sweep.recent, sweep.in_grace), (1, 1));
    }

    #[test]
    fn a_marker_goes_with_the_last_version_behind_it() {
        let sweep = judged(&[version("k", "m", 30, true), version("k", "v1", 10, false)]);
        assert_eq!(
            sweep.deletions,
            [
                ("k".to_owned(), "v1".to_owned()),
                ("k".to_owned(), "m".to_owned())
            ]
        );
        let kept_behind = judged(&[version("k", "m", 70, true), version("k", "v1", 10, false)]);
        assert!(
            kept_behind.deletions.is_empty(),
            "v1 is in grace: the marker stays"
        );
    }

    /// Item 7 of the prune review: a key whose history holds a null
    /// version is never hidden, whether that version is current (an
    /// unversioned bucket: the marker would delete it for good) or below
    /// a newer one (a suspended bucket: the marker replaces it).
    #[test]
    fn a_key_with_a_null_version_is_never_hidden() {
        let unversioned = judged(&[version("k", NULL_VERSION, 10, false)]);
        assert!(unversioned.hide.is_empty() && unversioned.deletions.is_empty());
        assert_eq!(unversioned.unversioned_kept, 1);
        let suspended = judged(&[
            version("k", "v2", 20, false),
            version("k", NULL_VERSION, 10, false),
        ]);
        assert!(suspended.hide.is_empty(), "{:?}", suspended.hide);
        assert_eq!(suspended.unversioned_kept, 1);
        let versioned = judged(&[version("k", "v1", 10, false)]);
        assert_eq!(versioned.hide, ["k"]);
    }
}
