//! What is already known before a run looks at any file: the last run's
//! manifest (local size, times, inode and MD5 of every file, and the ETag S3
//! gave each upload) and one listing of the prefix (the ETag and size S3 has
//! now). Together they let an unchanged file be skipped without reading it
//! and without a HeadObject.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use crate::hash::Md5Digest;
use crate::manifest::{FileStatus, is_full_manifest_name};
use crate::remote::{KeyRange, Listed};
use crate::walk::Stamp;

/// What the last manifest recorded of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub stamp: Stamp,
    /// Whether the stamp had settled when it was taken, so that an equal
    /// stamp now proves the content unchanged (see [`Stamp::settled_before`]).
    pub settled: bool,
    pub md5: Md5Digest,
    /// The ETag S3 answered when this tool wrote the object.
    pub etag: Option<Box<str>>,
    /// The version that holds the content, on a versioned bucket.
    pub version_id: Option<Box<str>>,
}

/// The last manifest, by key. It is read straight from the manifest's JSON
/// into this map, record by record, so a run never holds the old records.
#[derive(Debug, Default, Deserialize)]
pub struct StateIndex {
    /// Which run wrote the manifest: an index only serves the same bucket
    /// and prefix, and a dry run's manifest describes nothing stored.
    pub bucket: String,
    pub prefix: String,
    #[serde(default)]
    pub dry_run: bool,
    /// Runs since every file was last read and hashed.
    #[serde(default)]
    pub runs_since_full_verify: u32,
    /// When the run began: every stamp in the manifest was taken after it.
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    #[serde(rename = "files", deserialize_with = "stored_entries")]
    entries: HashMap<Box<str>, Known>,
}

impl StateIndex {
    /// Reads a manifest from JSON, keeping only what an index needs.
    pub fn read(reader: impl std::io::Read) -> serde_json::Result<Self> {
        let mut index: Self = serde_json::from_reader(std::io::BufReader::new(reader))?;
        // Without a start time no stamp can be shown to have settled.
        let taken_ns = index
            .started_at
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(i64::MIN);
        for known in index.entries.values_mut() {
            known.settled = known.stamp.settled_before(taken_ns);
        }
        Ok(index)
    }

    /// Sorted keys: where to cut the listing.
    fn sorted_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.entries.keys().map(|k| &**k).collect();
        keys.sort_unstable();
        keys
    }

    pub fn get(&self, key: &str) -> Option<&Known> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How to list the prefix when this machine has the newest manifest: ranges
/// of 990 of the keys it recorded (room for a few new keys before a range
/// needs a second page), listed at once, and of the manifest folder only
/// what comes after that manifest (newer manifests and the lock).
pub fn plan_listing(
    index: &StateIndex,
    manifest_folder: &str,
    newest_manifest: &str,
) -> Vec<KeyRange> {
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
            // Skip the manifests already known: list the keys before the folder
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

/// The fields of a manifest record that an index keeps.
#[derive(Deserialize)]
struct StoredRecord {
    s3_key: Option<String>,
    size_bytes: u64,
    status: FileStatus,
    md5: Option<String>,
    etag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
    mtime_ns: Option<i64>,
    ctime_ns: Option<i64>,
    inode: Option<u64>,
}

impl StoredRecord {
    /// Only records of stored files with an MD5, a stamp and an ETag.
    fn into_entry(self) -> Option<(Box<str>, Known)> {
        if !matches!(self.status, FileStatus::Uploaded | FileStatus::Skipped) {
            return None;
        }
        let known = Known {
            stamp: Stamp {
                size: self.size_bytes,
                mtime_ns: self.mtime_ns?,
                ctime_ns: self.ctime_ns?,
                inode: self.inode?,
            },
            // Decided once the header's start time is known.
            settled: false,
            md5: Md5Digest::from_hex(self.md5.as_deref()?)?,
            etag: Some(self.etag?.into()),
            version_id: self.version_id.map(Into::into),
        };
        Some((self.s3_key?.into(), known))
    }
}

fn stored_entries<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<HashMap<Box<str>, Known>, D::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = HashMap<Box<str>, Known>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of file records")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut records: A) -> Result<Self::Value, A::Error> {
            let mut entries = HashMap::new();
            while let Some(record) = records.next_element::<StoredRecord>()? {
                entries.extend(record.into_entry());
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_seq(Entries)
}

/// Whether a key is in the bucket, as the listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence<'a> {
    Absent,
    Present {
        etag: Option<&'a str>,
        size: Option<u64>,
    },
}

/// A listed object's ETag and size.
type ListedObject = (Option<Box<str>>, Option<u64>);

/// The prefix as one ListObjectsV2 pass saw it.
#[derive(Debug, Default)]
pub struct RemoteView {
    objects: HashMap<Box<str>, ListedObject>,
    /// The newest manifest of a full run under the manifest folder, if the
    /// listing covered it.
    pub latest_manifest: Option<String>,
}

impl RemoteView {
    /// `manifest_folder` is `<prefix>/_manifests/`; manifest names sort by start time.
    pub fn from_listing(listed: Vec<Listed>, manifest_folder: &str) -> Self {
        let mut view = RemoteView::default();
        for object in listed {
            if let Some(name) = object.key.strip_prefix(manifest_folder) {
                let is_manifest = is_full_manifest_name(name);
                if is_manifest && view.latest_manifest.as_deref() < Some(object.key.as_str()) {
                    view.latest_manifest = Some(object.key);
                }
                continue;
            }
            view.objects.insert(
                object.key.into(),
                (object.etag.map(Into::into), object.size),
            );
        }
        view
    }

    pub fn presence(&self, key: &str) -> Presence<'_> {
        match self.objects.get(key) {
            None => Presence::Absent,
            Some((etag, size)) => Presence::Present {
                etag: etag.as_deref(),
                size: *size,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Whether `known` still describes what the listing shows: same ETag and
/// size means nobody has written the object since this tool did.
pub fn unchanged_remotely(known: &Known, presence: Presence<'_>) -> bool {
    match presence {
        Presence::Present {
            etag: Some(etag),
            size,
        } => known.etag.as_deref() == Some(etag) && size == Some(known.stamp.size),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, etag: &str, size: u64) -> Listed {
        Listed {
            key: key.into(),
            etag: Some(etag.into()),
            size: Some(size),
        }
    }

    #[test]
    fn listing_separates_files_from_manifests() {
        let view = RemoteView::from_listing(
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
        assert_eq!(view.len(), 1);
        assert_eq!(
            view.presence("p/a.txt"),
            Presence::Present {
                etag: Some("\"e1\""),
                size: Some(3)
            }
        );
        assert_eq!(view.presence("p/b.txt"), Presence::Absent);
    }

    fn index_of(keys: impl Iterator<Item = String>) -> StateIndex {
        let files: Vec<_> = keys
            .map(|key| {
                serde_json::json!({
                    "s3_key": key, "size_bytes": 1, "status": "uploaded", "md5": "d41d8cd98f00b204e9800998ecf8427e",
                    "etag": "\"e\"", "mtime_ns": 1, "ctime_ns": 1, "inode": 1, "local_path": "/x", "s3_uri": "s3://b/k",
                    "timestamp": ""
                })
            })
            .collect();
        let manifest =
            serde_json::json!({"bucket": "b", "prefix": "p", "summary": {}, "files": files});
        StateIndex::read(manifest.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn an_index_keeps_only_complete_records_of_stored_files() {
        let manifest = serde_json::json!({"bucket": "b", "prefix": "p", "runs_since_full_verify": 3, "files": [
            {"s3_key": "p/ok", "size_bytes": 3, "status": "skipped", "md5": "900150983cd24fb0d6963f7d28e17f72",
             "etag": "\"e\"", "mtime_ns": 1, "ctime_ns": 2, "inode": 3},
            {"s3_key": "p/failed", "size_bytes": 3, "status": "failed", "md5": "900150983cd24fb0d6963f7d28e17f72",
             "etag": "\"e\"", "mtime_ns": 1, "ctime_ns": 2, "inode": 3},
            {"s3_key": "p/no-stamp", "size_bytes": 3, "status": "uploaded", "md5": "900150983cd24fb0d6963f7d28e17f72",
             "etag": "\"e\""}
        ]});
        let index = StateIndex::read(manifest.to_string().as_bytes()).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index.runs_since_full_verify, 3);
        let known = index.get("p/ok").unwrap();
        assert_eq!(
            known.stamp,
            Stamp {
                size: 3,
                mtime_ns: 1,
                ctime_ns: 2,
                inode: 3
            }
        );
        assert_eq!(known.md5, Md5Digest::of(b"abc"));
        assert!(StateIndex::read(&b"{not json"[..]).is_err());
    }

    #[test]
    fn the_listing_plan_covers_every_key_but_known_manifests() {
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
        let known = Known {
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
        };
        assert!(unchanged_remotely(
            &known,
            Presence::Present {
                etag: Some("\"e1\""),
                size: Some(3)
            }
        ));
        assert!(!unchanged_remotely(
            &known,
            Presence::Present {
                etag: Some("\"e2\""),
                size: Some(3)
            }
        ));
        assert!(!unchanged_remotely(
            &known,
            Presence::Present {
                etag: Some("\"e1\""),
                size: Some(4)
            }
        ));
        assert!(!unchanged_remotely(&known, Presence::Absent));
    }
}
