//! What the kept snapshots still need: every (key, version) their records
//! name, read by streaming each manifest. Kept as 64-bit hashes, 8 bytes
//! each rather than a key and a version id: at a million files and thirty
//! snapshots a set of strings would take hundreds of megabytes. A
//! collision can only make an unreferenced version look referenced, so
//! it is kept: never a wrong deletion.
//!
//! A paged snapshot also references the nodes of its tree: each one read
//! (index nodes, and the pages below them) is held as a whole key, so no
//! version of a page a kept snapshot needs is swept.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::manifest::catalog::SnapshotLine;
use crate::manifest::paged::{Reading, page_key};
use crate::manifest::read::read_fetched_narrowed;
use crate::manifest::{EntryKind, FileStatus};
use crate::store::Store;

/// The fields of a record that say what it references.
#[derive(Deserialize)]
struct Reference {
    #[serde(default)]
    kind: EntryKind,
    s3_key: Option<String>,
    status: FileStatus,
    #[serde(default)]
    version_id: Option<String>,
}

/// The versions the kept snapshots reference.
#[derive(Debug, Default)]
pub struct References {
    versions: HashSet<u64>,
    /// Keys of which every version is kept: named by a record without a
    /// version id (an unversioned bucket, an older manifest), or by a
    /// failed upload (its last good object may be what S3 still serves).
    whole_keys: HashSet<u64>,
    pub manifests: u64,
    pub records: u64,
    /// Nodes of paged snapshots held.
    pub nodes: u64,
}

impl References {
    /// Reads the kept snapshots' manifests, one after another. Each must
    /// be the very bytes the catalog judged (its SHA-256), or prune stops:
    /// a manifest rewritten since would choose what is deleted.
    pub async fn of(store: &Store, kept: &[SnapshotLine]) -> Result<References> {
        let mut references = References::default();
        // Pages that snapshots share are read once: their references are in.
        let reading = Reading::distinct();
        for line in kept {
            let key = &line.key;
            let pinned = line.pinned();
            let fetched = store
                .get_at(key, pinned.version_id.as_deref())
                .await?
                .ok_or_else(|| {
                    Error::Config(format!(
                        "manifest {} vanished while prune read it; run forget --prune again",
                        store.uri(key)
                    ))
                })?;
            let read =
                read_fetched_narrowed(store, (key, fetched), &reading, references, References::add)
                    .await?;
            pinned.check(&store.uri(key), &read.sha256)?;
            references = read.state;
            references.manifests += 1;
        }
        if let Some(line) = kept.first() {
            references.hold_nodes(&line.key, &reading);
        }
        Ok(references)
    }

    /// Holds every node `reading` read, in the manifest folder of the
    /// snapshot at `snapshot_key`: with a distinct reading of every kept
    /// snapshot, the whole of each one's tree.
    fn hold_nodes(&mut self, snapshot_key: &str, reading: &Reading) {
        for sha256 in reading.read_nodes() {
            let key = page_key(snapshot_key, &sha256);
            self.whole_keys.insert(hash_of(&key, None));
            self.nodes += 1;
        }
    }

    /// Adds the references of a manifest read from `reader` (a local copy).
    pub fn read_local(&mut self, reader: impl std::io::Read) -> Result<()> {
        crate::manifest::read::read(reader, |record| self.add(record))?;
        self.manifests += 1;
        Ok(())
    }

    fn add(&mut self, record: Reference) {
        self.records += 1;
        let Some(key) = record.s3_key.filter(|_| record.kind == EntryKind::File) else {
            return;
        };
        match (record.status.is_stored(), record.version_id) {
            (true, Some(version)) => {
                self.versions.insert(hash_of(&key, Some(&version)));
            }
            _ => {
                self.whole_keys.insert(hash_of(&key, None));
            }
        }
    }

    /// Whether a kept snapshot needs this version of `key`.
    pub fn holds(&self, key: &str, version: &str) -> bool {
        self.versions.contains(&hash_of(key, Some(version)))
            || self.whole_keys.contains(&hash_of(key, None))
    }

    /// Distinct versions referenced (whole keys not counted).
    pub fn versions(&self) -> usize {
        self.versions.len()
    }
}

fn hash_of(key: &str, version: Option<&str>) -> u64 {
    // SipHash with fixed keys: the same value for the same pair in any run.
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    version.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: &str, status: FileStatus, version: Option<&str>) -> Reference {
        Reference {
            kind: EntryKind::File,
            s3_key: Some(key.into()),
            status,
            version_id: version.map(str::to_owned),
        }
    }

    #[test]
    fn a_version_is_held_by_its_record_and_a_key_without_one_wholly() {
        let mut refs = References::default();
        refs.add(reference("p/a", FileStatus::Uploaded, Some("v1")));
        refs.add(reference("p/b", FileStatus::Skipped, None));
        refs.add(reference("p/c", FileStatus::Failed, Some("v9")));
        assert!(refs.holds("p/a", "v1"));
        assert!(!refs.holds("p/a", "v2"), "another version of a is not held");
        assert!(
            refs.holds("p/b", "anything"),
            "no version id: every version"
        );
        assert!(refs.holds("p/c", "v0"), "a failed upload keeps the key");
        assert_eq!(refs.records, 3);
        assert_eq!(refs.versions(), 1);
    }
}
