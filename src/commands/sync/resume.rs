//! A walk that outlasts one invocation. A full run walks the tree slice by
//! slice, starting after where the last run stopped (its manifest's
//! `resume_after`) and wrapping round to the beginning. Stopped by the time
//! limit, it records the end of the last slice it finished, and carries the
//! last manifest's records of the slices it did not finish, so that its
//! manifest is still a whole snapshot and the next run's index still knows
//! every file. Each run then moves the walk on, however big the tree.

use std::path::Path;

use super::index::{Index, Recorded};
use crate::error::Result;
use crate::local::filter::Filter;
use crate::local::range::PathRange;
use crate::local::source::SourceDir;
use crate::local::walk::{Found, walk_into};
use crate::manifest::spool::RecordSpool;
use crate::manifest::{FileRecord, FileStatus, timestamp};
use crate::store::Store;

/// Files of the last manifest per slice, by default: a slice boundary costs re-reading
/// the directories above it, and a run stopped inside a slice walks that
/// slice again.
pub const SLICE_FILES: usize = 10_000;

/// The slices of one run's walk, in the order it walks them. Consecutive
/// slices meet, and together they cover every path exactly once.
#[derive(Debug, Clone)]
pub struct Rotation {
    slices: Vec<PathRange>,
    /// Where the walk wraps round to the first path (`slices.len()` if it
    /// starts there).
    wrap: usize,
}

impl Rotation {
    /// One slice: `range` walked at once (a shard, a narrowed or dry run).
    pub fn single(range: PathRange) -> Self {
        Rotation {
            slices: vec![range],
            wrap: 1,
        }
    }

    /// Slices cut at every `slice_files`-th path of `index` (relative to
    /// `folder`), walked from `resume_after` on.
    pub fn of_index(index: &Index, folder: &str, slice_files: usize) -> Self {
        let cuts = index
            .iter()
            .step_by(slice_files.max(1))
            .skip(1)
            .filter_map(|(key, _)| key.strip_prefix(folder))
            .map(str::to_owned);
        Rotation::cut(cuts, index.header.resume_after.as_deref())
    }

    /// Slices between sorted `cuts`, walked from `resume_after` on.
    pub fn cut(cuts: impl IntoIterator<Item = String>, resume_after: Option<&str>) -> Self {
        let mut bounds: Vec<String> = cuts.into_iter().collect();
        bounds.extend(resume_after.map(str::to_owned));
        bounds.sort();
        bounds.dedup();
        let mut sorted = Vec::with_capacity(bounds.len() + 1);
        let mut after = None;
        for until in bounds {
            let next = Some(until.clone());
            sorted.push(PathRange {
                after,
                until: Some(until),
            });
            after = next;
        }
        sorted.push(PathRange { after, until: None });
        let start = sorted
            .iter()
            .position(|slice| slice.after.as_deref() == resume_after)
            .unwrap_or(0);
        sorted.rotate_left(start);
        let wrap = if start == 0 {
            sorted.len()
        } else {
            sorted.len() - start
        };
        Rotation {
            slices: sorted,
            wrap,
        }
    }

    pub fn slices(&self) -> &[PathRange] {
        &self.slices
    }

    /// Walks the slices one after another, handing each entry to `sink`
    /// with its slice's place in the rotation; returns how many slices were
    /// walked to the end (all of them unless `sink` refused an entry).
    pub fn walk(
        &self,
        source: &SourceDir,
        start: &Path,
        filter: &Filter,
        threads: usize,
        sink: impl Fn(usize, Found) -> bool + Sync,
    ) -> usize {
        for (at, slice) in self.slices.iter().enumerate() {
            if !walk_into(source, start, filter, slice, threads, |found| {
                sink(at, found)
            }) {
                return at;
            }
        }
        self.slices.len()
    }

    /// Where the next run starts when the slices before `first_unfinished`
    /// are done; `None` from the beginning (everything was done).
    pub fn resume_point(&self, first_unfinished: usize) -> Option<String> {
        self.slices.get(first_unfinished)?.after.clone()
    }

    /// The paths of the slices from `first_unfinished` on, as at most two
    /// ranges in path order.
    pub fn unfinished(&self, first_unfinished: usize) -> Vec<PathRange> {
        let Some(first) = self.slices.get(first_unfinished) else {
            return Vec::new();
        };
        let last = self.slices.last().map(|s| s.until.clone()).unwrap_or(None);
        if first_unfinished < self.wrap && self.wrap < self.slices.len() {
            vec![
                PathRange {
                    after: first.after.clone(),
                    until: None,
                },
                PathRange {
                    after: None,
                    until: last,
                },
            ]
        } else {
            vec![PathRange {
                after: first.after.clone(),
                until: last,
            }]
        }
    }
}

/// The record of a file the run did not reach, as the last manifest had it.
/// Its stamp goes with it only if it had settled then: a later run would
/// judge an unsettled one against a later start and trust it too soon.
fn carried(
    store: &Store,
    source_dir: &Path,
    key: &str,
    relative: &str,
    recorded: &Recorded,
) -> FileRecord {
    let mut record = FileRecord::new(&source_dir.join(relative), recorded.stamp.size);
    if recorded.settled {
        record.set_stamp(recorded.stamp);
    }
    record.status = FileStatus::Carried;
    record.reason =
        Some("not walked before the time limit; as the last manifest recorded it".into());
    record.s3_uri = Some(store.uri(key));
    record.s3_key = Some(key.to_owned());
    record.md5 = Some(recorded.md5.hex());
    record.etag = recorded.etag.as_ref().map(ToString::to_string);
    record.version_id = recorded.version_id.as_deref().map(str::to_owned);
    record.kms_key_id = recorded.kms_key_id.as_deref().map(str::to_owned);
    record.bucket_key = recorded.bucket_key;
    if let Some(at) = chrono::DateTime::from_timestamp_millis(recorded.recorded_at_ms) {
        record.timestamp = timestamp(at);
    }
    record
}

/// Spools the record of every file of `index` under `folder` that lies in
/// `left` and that this run never reached, as carried.
pub fn carry(
    spool: &mut RecordSpool,
    store: &Store,
    source_dir: &Path,
    index: &Index,
    folder: &str,
    left: &[PathRange],
) -> Result<()> {
    for (key, recorded) in index.unreached() {
        let Some(relative) = key.strip_prefix(folder) else {
            continue;
        };
        if left.iter().any(|range| range.holds_slashed(relative)) {
            spool.push(&carried(store, source_dir, key, relative, recorded))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(rotation: &Rotation) -> Vec<(Option<&str>, Option<&str>)> {
        rotation
            .slices()
            .iter()
            .map(|s| (s.after.as_deref(), s.until.as_deref()))
            .collect()
    }

    fn cuts() -> Vec<String> {
        ["b", "d"].map(String::from).to_vec()
    }

    #[test]
    fn a_rotation_starts_after_the_resume_point_and_covers_every_path_once() {
        let fresh = Rotation::cut(cuts(), None);
        assert_eq!(
            paths(&fresh),
            [(None, Some("b")), (Some("b"), Some("d")), (Some("d"), None)]
        );
        let resumed = Rotation::cut(cuts(), Some("c/x"));
        assert_eq!(
            paths(&resumed),
            [
                (Some("c/x"), Some("d")),
                (Some("d"), None),
                (None, Some("b")),
                (Some("b"), Some("c/x")),
            ]
        );
        for path in ["a", "b", "b/1", "c/x", "c/y", "d", "z"] {
            let holding = resumed
                .slices()
                .iter()
                .filter(|s| s.holds_slashed(path))
                .count();
            assert_eq!(holding, 1, "{path}");
        }
    }

    #[test]
    fn the_unfinished_part_is_what_the_rotation_had_left() {
        let resumed = Rotation::cut(cuts(), Some("c/x"));
        // Stopped in the third slice: the walk wrapped, so one range is left.
        assert_eq!(resumed.resume_point(2), None);
        let left = resumed.unfinished(2);
        assert_eq!(left.len(), 1);
        assert!(left[0].holds_slashed("a") && left[0].holds_slashed("c/x"));
        assert!(!left[0].holds_slashed("c/y") && !left[0].holds_slashed("z"));
        // Stopped in the first slice: everything is left, in two ranges.
        assert_eq!(resumed.resume_point(0).as_deref(), Some("c/x"));
        let left = resumed.unfinished(0);
        assert_eq!(left.len(), 2);
        for path in ["a", "c/x", "c/y", "z"] {
            assert!(left.iter().any(|r| r.holds_slashed(path)), "{path}");
        }
        // Stopped in the second: from "d" on, and round to "c/x".
        assert_eq!(resumed.resume_point(1).as_deref(), Some("d"));
        let left = resumed.unfinished(1);
        assert!(
            !left
                .iter()
                .any(|r| r.holds_slashed("c/y") || r.holds_slashed("d"))
        );
        assert!(
            left.iter().any(|r| r.holds_slashed("d/1"))
                && left.iter().any(|r| r.holds_slashed("a"))
        );
        // Done: nothing left, and the next run starts from the beginning.
        assert!(resumed.unfinished(4).is_empty());
        assert_eq!(resumed.resume_point(4), None);
    }

    #[test]
    fn a_single_slice_leaves_all_of_itself_when_cut_short() {
        let whole = Rotation::single(PathRange::default());
        assert_eq!(whole.resume_point(0), None);
        assert_eq!(whole.unfinished(0), vec![PathRange::default()]);
    }
}
