//! The prefix as this run's listing saw it, and how to list it.

use std::sync::Arc;

use super::sorted::SortedMap;

use super::prior::{Index, Recorded};
use crate::manifest::{is_full_manifest_name, is_manifest_name};
use crate::store::{KeyRange, Listed};

/// How to list the prefix when this machine has the newest manifest: ranges
/// of 990 of the keys it recorded (room for a few new keys before a range
/// needs a second page), listed at once, and of the manifest folder only
/// what comes after that manifest (newer manifests and the lock).
pub fn plan_listing(index: &Index, manifest_folder: &str, newest_manifest: &str) -> Vec<KeyRange> {
    let keys = index.sorted_keys();
    let splits: Vec<&str> = keys
        .iter()
        .copied()
        .skip(RANGE_KEYS - 1)
        .step_by(RANGE_KEYS)
        .collect();
    let mut ranges = Vec::with_capacity(splits.len() + 2);
    let mut after: Option<&str> = None;
    for until in splits.into_iter().map(Some).chain(std::iter::once(None)) {
        let holds_folder =
            after.is_none_or(|a| a < manifest_folder) && until.is_none_or(|u| u >= manifest_folder);
        if holds_folder {
            // Skip the manifests already recorded: list the keys before the folder
            // (if the last run had any there), then from after the newest manifest.
            // A new key before the folder in a range that had none is listed by
            // the next run; until then it only costs one needless upload.
            let before_folder = keys.partition_point(|k| *k < manifest_folder)
                > after.map_or(0, |a| keys.partition_point(|k| *k <= a));
            if before_folder {
                ranges.push(range(after, Some(manifest_folder)));
            }
            ranges.push(range(Some(newest_manifest), until));
        } else {
            ranges.push(range(after, until));
        }
        after = until;
    }
    ranges
}

fn range(after: Option<&str>, until: Option<&str>) -> KeyRange {
    KeyRange {
        after: after.map(str::to_owned),
        until: until.map(str::to_owned),
    }
}

/// Keys per listing range, a little under the 1,000 of a page.
const RANGE_KEYS: usize = 990;

/// Whether a key is in the bucket, as the listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence<'a> {
    Absent,
    Present {
        etag: Option<&'a str>,
        size: Option<u64>,
        /// `None` for STANDARD; a re-encrypting copy keeps it.
        storage_class: Option<&'a str>,
    },
}

/// A listed object's ETag, size and storage class.
type ListedObject = (Option<Box<str>>, Option<u64>, Option<Arc<str>>);

/// The prefix as one ListObjectsV2 pass saw it.
#[derive(Debug, Default)]
pub struct Listing {
    objects: SortedMap<ListedObject>,
    classes: Vec<Arc<str>>,
    /// The newest manifest of a full run under the manifest folder, if the
    /// listing covered it.
    pub latest_manifest: Option<String>,
    /// The newest manifest of any run, full or narrowed, with its ETag.
    pub newest_manifest: Option<(String, Option<String>)>,
}

impl Listing {
    #[cfg(test)]
    pub fn from_listing(listed: Vec<Listed>, manifest_folder: &str) -> Self {
        let mut view = Listing::default();
        for object in listed {
            view.add(object, manifest_folder);
        }
        view.seal();
        view
    }

    /// Readies the objects taken in for lookups.
    pub fn seal(&mut self) {
        self.objects.seal();
    }

    /// Takes in one listed object (objects may come in any order).
    /// `manifest_folder` is `<prefix>/_manifests/`; manifest names sort by start time.
    pub fn add(&mut self, object: Listed, manifest_folder: &str) {
        if let Some(name) = object.key.strip_prefix(manifest_folder) {
            let newer = |than: Option<&str>| than < Some(object.key.as_str());
            let newest = self.newest_manifest.as_ref().map(|(key, _)| key.as_str());
            if is_manifest_name(name) && newer(newest) {
                self.newest_manifest = Some((object.key.clone(), object.etag.clone()));
            }
            if is_full_manifest_name(name) && newer(self.latest_manifest.as_deref()) {
                self.latest_manifest = Some(object.key);
            }
            return;
        }
        let storage_class = object
            .storage_class
            .map(|class| super::prior::shared(&mut self.classes, class));
        self.objects.push(
            object.key.into(),
            (object.etag.map(Into::into), object.size, storage_class),
        );
    }

    pub fn presence(&self, key: &str) -> Presence<'_> {
        match self.objects.get(key) {
            None => Presence::Absent,
            Some((etag, size, storage_class)) => Presence::Present {
                etag: etag.as_deref(),
                size: *size,
                storage_class: storage_class.as_deref(),
            },
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }
}

/// Whether `recorded` still describes what the listing shows: same ETag and
/// size means nobody has written the object since this tool did.
pub fn unchanged_remotely(recorded: &Recorded, presence: Presence<'_>) -> bool {
    match presence {
        Presence::Present {
            etag: Some(etag),
            size,
            ..
        } => recorded.etag.as_deref() == Some(etag) && size == Some(recorded.stamp.size),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sync::prior::tests::index_of;
    use crate::local::hash::Md5Digest;
    use crate::local::stamp::Stamp;

    fn listed(key: &str, etag: &str, size: u64) -> Listed {
        Listed {
            key: key.into(),
            etag: Some(etag.into()),
            size: Some(size),
            version_id: None,
            storage_class: None,
        }
    }

    #[test]
    fn listing_separates_files_from_manifests() {
        let view = Listing::from_listing(
            vec![
                listed("p/a.txt", "\"e1\"", 3),
                listed("p/_manifests/20260101T000000.000Z-x.json", "\"m\"", 9),
                listed("p/_manifests/20261231T235959.999Z-y.json", "\"m\"", 9),
                listed(
                    "p/_manifests/20261231T235959.999Z-z.narrowed.json",
                    "\"m\"",
                    9,
                ),
                listed("p/_manifests/lock.json", "\"l\"", 9),
            ],
            "p/_manifests/",
        );
        assert_eq!(
            view.latest_manifest.as_deref(),
            Some("p/_manifests/20261231T235959.999Z-y.json")
        );
        assert_eq!(
            view.newest_manifest,
            Some((
                "p/_manifests/20261231T235959.999Z-z.narrowed.json".into(),
                Some("\"m\"".into())
            ))
        );
        assert_eq!(view.len(), 1);
        assert_eq!(
            view.presence("p/a.txt"),
            Presence::Present {
                etag: Some("\"e1\""),
                size: Some(3),
                storage_class: None
            }
        );
        assert_eq!(view.presence("p/b.txt"), Presence::Absent);
    }

    #[test]
    fn the_listing_plan_covers_every_key_but_recorded_manifests() {
        let index = index_of((0..2000).rev().map(|i| format!("p/k{i:05}")));
        let newest = "p/_manifests/20260101T000000.000Z-r.json";
        let plan = plan_listing(&index, "p/_manifests/", newest);
        let bounds: Vec<(Option<&str>, Option<&str>)> = plan
            .iter()
            .map(|r| (r.after.as_deref(), r.until.as_deref()))
            .collect();
        assert_eq!(
            bounds,
            [
                (Some(newest), Some("p/k00989")),
                (Some("p/k00989"), Some("p/k01979")),
                (Some("p/k01979"), None),
            ]
        );

        // A key that sorts before the manifest folder gets its own range.
        let index = index_of(
            (0..2000)
                .map(|i| format!("p/k{i:05}"))
                .chain(["p/A.txt".to_owned()]),
        );
        let plan = plan_listing(&index, "p/_manifests/", newest);
        assert_eq!(plan[0].until.as_deref(), Some("p/_manifests/"));
        assert_eq!(plan[1].after.as_deref(), Some(newest));
        assert_eq!(plan.len(), 4);
    }

    #[test]
    fn only_the_same_etag_and_size_prove_an_object_unchanged() {
        let recorded = Recorded {
            stamp: Stamp {
                size: 3,
                mtime_ns: 1,
                ctime_ns: 2,
                inode: 3,
            },
            settled: true,
            md5: Md5Digest::of(b"abc"),
            etag: Some("\"e1\"".into()),
            version_id: None,
            kms_key_id: None,
            bucket_key: None,
        };
        assert!(unchanged_remotely(
            &recorded,
            Presence::Present {
                etag: Some("\"e1\""),
                size: Some(3),
                storage_class: None
            }
        ));
        assert!(!unchanged_remotely(
            &recorded,
            Presence::Present {
                etag: Some("\"e2\""),
                size: Some(3),
                storage_class: None
            }
        ));
        assert!(!unchanged_remotely(
            &recorded,
            Presence::Present {
                etag: Some("\"e1\""),
                size: Some(4),
                storage_class: None
            }
        ));
        assert!(!unchanged_remotely(&recorded, Presence::Absent));
    }
}
