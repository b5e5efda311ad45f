//! What the last full manifest recorded, by key: the local size, times,
//! inode and MD5 of every file, and the ETag and version S3 gave each
//! upload. With the listing (see [`super::listing`]) it lets an unchanged
//! file be skipped without reading it and without a HeadObject.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::sorted::SortedMap;
use crate::local::hash::Md5Digest;
use crate::local::range::PathRange;
use crate::local::stamp::Stamp;
use crate::manifest::FileStatus;
use crate::manifest::read::Header;
use crate::store::{Etag, keys};

/// What the last manifest recorded of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub stamp: Stamp,
    /// Whether the stamp had settled when it was taken, so that an equal
    /// stamp now proves the content unchanged (see [`Stamp::settled_before`]).
    pub settled: bool,
    pub md5: Md5Digest,
    /// The ETag S3 answered when this tool wrote the object.
    pub etag: Option<Etag>,
    /// The version that holds the content, on a versioned bucket.
    pub version_id: Option<Box<str>>,
    /// The key and Bucket Key status S3 reported when the object was stored
    /// (one shared copy of each key ARN: nearly every record names the same).
    pub kms_key_id: Option<Arc<str>>,
    pub bucket_key: Option<bool>,
    /// When the record's run processed the file (ms since the epoch): what
    /// a record carried to a later manifest keeps as its `timestamp`.
    pub recorded_at_ms: i64,
    /// What this run's listing showed of the key.
    pub seen: Seen,
}

impl Recorded {
    /// Whether a listed ETag and size are those this tool recorded: nobody
    /// has written the object since this tool did.
    pub fn is_listed_as(&self, etag: Option<&Etag>, size: Option<u64>) -> bool {
        etag.is_some() && self.etag.as_ref() == etag && size == Some(self.stamp.size)
    }
}

/// What this run's listing showed of a recorded key: kept in the record,
/// so that a key is held once however many structures speak of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seen {
    /// Not in the listing (or no listing yet).
    #[default]
    NotListed,
    /// Listed with another ETag or size: someone wrote it since.
    Rewritten,
    /// Listed with the recorded ETag and size, in this storage class.
    Unchanged { class: Option<u8> },
}

/// The last full manifest's records by key. It is filled record by record
/// from the streamed manifest, so a run never holds the old records.
#[derive(Debug, Default)]
pub struct Index {
    /// Which run wrote the manifest: an index only serves the same bucket
    /// and prefix, and a dry run's manifest describes nothing stored.
    pub header: Header,
    entries: SortedMap<Recorded>,
    /// One bit per record, in key order: whether this run reached its key.
    reached: Vec<AtomicU64>,
}

/// Records on their way into an [`Index`], and the key ARNs they share.
#[derive(Debug, Default)]
pub struct Entries {
    map: SortedMap<Recorded>,
    kms_keys: Vec<Arc<str>>,
    /// A shard keeps only the records of its slice: `<key prefix>/` and the range.
    slice: Option<(String, PathRange)>,
}

impl Entries {
    /// Entries that keep only the records of `range` under `key_prefix`.
    pub fn in_slice(key_prefix: &str, range: &PathRange) -> Self {
        Entries {
            slice: Some((keys::folder_of(key_prefix), range.clone())),
            ..Entries::default()
        }
    }

    fn keeps(&self, key: Option<&str>) -> bool {
        match (&self.slice, key) {
            (None, _) => true,
            (Some((folder, range)), Some(key)) => key
                .strip_prefix(folder.as_str())
                .is_some_and(|relative| range.holds_slashed(relative)),
            (Some(_), None) => false,
        }
    }
}

impl Index {
    /// Keeps one record, if it describes a stored file completely.
    pub fn add(entries: &mut Entries, record: IndexedRecord) {
        if !entries.keeps(record.s3_key.as_deref()) {
            return;
        }
        if let Some((key, recorded)) = record.into_entry(&mut entries.kms_keys) {
            entries.map.push(key, recorded);
        }
    }

    /// The index of a manifest whose records `entries` holds. Each stamp is
    /// judged against the run's start: without one, none can be shown to
    /// have settled.
    pub fn new(header: Header, entries: Entries) -> Self {
        let taken_ns = header
            .started_at
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(i64::MIN);
        let mut entries = entries.map;
        entries.seal();
        for recorded in entries.values_mut() {
            recorded.settled = recorded.stamp.settled_before(taken_ns);
        }
        let reached = (0..entries.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Index {
            header,
            entries,
            reached,
        }
    }

    /// Reads a manifest from JSON, keeping only what an index needs.
    #[cfg(test)]
    pub fn read(reader: impl std::io::Read) -> serde_json::Result<Self> {
        let mut entries = Entries::default();
        let header =
            crate::manifest::read::read(reader, |record| Index::add(&mut entries, record))?;
        Ok(Index::new(header, entries))
    }

    /// Sorted keys: where to cut the listing.
    pub fn sorted_keys(&self) -> Vec<&str> {
        self.entries.keys().collect()
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Recorded> {
        self.entries.get(key)
    }

    /// Every record, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Recorded)> {
        self.entries.iter()
    }

    /// The record of `key`, noting that this run reached the key.
    pub fn reach(&self, key: &str) -> Option<&Recorded> {
        let at = self.entries.find(key)?;
        self.reached[at / 64].fetch_or(1 << (at % 64), Ordering::Relaxed);
        Some(self.entries.value_at(at))
    }

    /// The records whose keys this run never reached, in key order.
    pub fn unreached(&self) -> impl Iterator<Item = (&str, &Recorded)> {
        self.entries.iter().enumerate().filter_map(|(at, entry)| {
            let reached = self.reached[at / 64].load(Ordering::Relaxed) & (1 << (at % 64)) != 0;
            (!reached).then_some(entry)
        })
    }

    /// Marks the record of a listed key; false when there is none.
    pub fn mark_listed(
        &mut self,
        key: &str,
        etag: Option<&Etag>,
        size: Option<u64>,
        class: Option<u8>,
    ) -> bool {
        let Some(recorded) = self.entries.get_mut(key) else {
            return false;
        };
        recorded.seen = if recorded.is_listed_as(etag, size) {
            Seen::Unchanged { class }
        } else {
            Seen::Rewritten
        };
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The fields of a manifest record that an index keeps.
#[derive(Deserialize)]
pub struct IndexedRecord {
    s3_key: Option<String>,
    size_bytes: u64,
    status: FileStatus,
    #[serde(default)]
    timestamp: String,
    md5: Option<String>,
    etag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    kms_key_id: Option<String>,
    #[serde(default)]
    bucket_key: Option<bool>,
    mtime_ns: Option<i64>,
    ctime_ns: Option<i64>,
    inode: Option<u64>,
}

impl IndexedRecord {
    /// Only records of stored files with an MD5, a stamp and an ETag.
    fn into_entry(self, kms_keys: &mut Vec<Arc<str>>) -> Option<(Box<str>, Recorded)> {
        if !self.status.is_stored() {
            return None;
        }
        let recorded = Recorded {
            stamp: Stamp {
                size: self.size_bytes,
                mtime_ns: self.mtime_ns?,
                ctime_ns: self.ctime_ns?,
                inode: self.inode?,
            },
            // Decided once the header's start time is recorded.
            settled: false,
            md5: Md5Digest::from_hex(self.md5.as_deref()?)?,
            etag: Some(Etag::new(&self.etag?)),
            version_id: self.version_id.map(Into::into),
            kms_key_id: self.kms_key_id.map(|key| shared(kms_keys, key)),
            bucket_key: self.bucket_key,
            recorded_at_ms: chrono::DateTime::parse_from_rfc3339(&self.timestamp)
                .map_or(0, |at| at.timestamp_millis()),
            seen: Seen::NotListed,
        };
        Some((self.s3_key?.into(), recorded))
    }
}

/// The one copy of `key` in `keys`, added if new: for values that repeat
/// across records (key ARNs, storage classes), so the list stays short.
pub(super) fn shared(keys: &mut Vec<Arc<str>>, key: String) -> Arc<str> {
    if let Some(found) = keys.iter().find(|k| ***k == *key) {
        return Arc::clone(found);
    }
    let key: Arc<str> = key.into();
    keys.push(Arc::clone(&key));
    key
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A record of "abc" (3 bytes) stored with ETag `etag` as `version`.
    pub(in crate::commands::sync) fn recorded(etag: &str, version: Option<&str>) -> Recorded {
        Recorded {
            stamp: Stamp {
                size: 3,
                mtime_ns: 1,
                ctime_ns: 2,
                inode: 3,
            },
            settled: true,
            md5: Md5Digest::of(b"abc"),
            etag: Some(Etag::new(etag)),
            version_id: version.map(Into::into),
            kms_key_id: None,
            bucket_key: None,
            recorded_at_ms: 0,
            seen: Seen::NotListed,
        }
    }

    pub(in crate::commands::sync) fn index_of(keys: impl Iterator<Item = String>) -> Index {
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
        Index::read(manifest.to_string().as_bytes()).unwrap()
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
        let index = Index::read(manifest.to_string().as_bytes()).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index.header.runs_since_full_rehash, 3);
        let recorded = index.get("p/ok").unwrap();
        assert_eq!(
            recorded.stamp,
            Stamp {
                size: 3,
                mtime_ns: 1,
                ctime_ns: 2,
                inode: 3
            }
        );
        assert_eq!(recorded.md5, Md5Digest::of(b"abc"));
        assert!(Index::read(&b"{not json"[..]).is_err());
    }
}
