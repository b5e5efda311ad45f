//! The paged snapshot format (format 2): a snapshot costs what changed, not
//! what exists.
//!
//! - Records describe content only (path, kind, attributes, MD5, object key
//!   and version); what a run did to a file is in its summary. An unchanged
//!   file yields the same record bytes run after run.
//! - The records, in path order, are cut into pages where a record's path
//!   hash says so ([`cut`]), so an edit changes only the pages around it.
//! - Each page is stored once, compressed and KMS-encrypted, under
//!   `_manifests/pages/<SHA-256 of its plain bytes>`; a page that exists is
//!   never sent again.
//! - Index nodes list pages (first path, count, bytes, hash), and are paged
//!   the same way until one node is left: the root.
//! - The snapshot object is the manifest's header with the root's hash in
//!   place of its records. Its signature covers the root, and every node is
//!   checked against its hash when read: a Merkle tree.

mod cut;
mod node;
mod reader;
mod reading;
mod writer;

use serde::{Deserialize, Serialize};

use crate::store::keys::MANIFEST_FOLDER;

pub use reader::{Listed, coarse_index, leaves_of, page_records, pages_of, read_pages};
pub use reading::{Narrow, Reading};
pub use writer::{PageWriter, Tree};

/// The format a snapshot object of this kind says it is.
pub const FORMAT: u32 = 2;

/// Where pages live, inside the manifest folder.
pub const PAGES_FOLDER: &str = "pages";

/// The top of a snapshot's tree, as its signed object names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// SHA-256 of the root node's plain bytes.
    pub sha256: String,
    /// 0: the root is a page of records; n: an index over level n-1.
    pub level: u32,
    /// Records under the root.
    pub records: u64,
    /// Where the tree starts and ends, and what it stores: what a merge
    /// joins shards' trees by without reading them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// The first and last paths under a root, and the stored files and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub first: String,
    pub last: String,
    pub files: u64,
    pub bytes: u64,
}

/// The key of the page of `sha256` of the snapshot object at
/// `snapshot_key`: in the manifest folder it lies in, however deep (a
/// shard's manifest writes the pages its run's snapshot then names).
pub fn page_key(snapshot_key: &str, sha256: &str) -> String {
    let marker = format!("{MANIFEST_FOLDER}/");
    let in_folder = snapshot_key
        .rmatch_indices(&marker)
        .find(|(at, _)| *at == 0 || snapshot_key[..*at].ends_with('/'))
        .map(|(at, _)| &snapshot_key[..at + marker.len() - 1]);
    let folder = in_folder.unwrap_or_else(|| {
        snapshot_key
            .rsplit_once('/')
            .map_or("", |(folder, _)| folder)
    });
    match folder.is_empty() {
        true => format!("{PAGES_FOLDER}/{sha256}"),
        false => format!("{folder}/{PAGES_FOLDER}/{sha256}"),
    }
}

/// Whether `key` (under a manifest folder) is a page, not a snapshot.
pub fn is_page_key(key: &str) -> bool {
    key.rsplit('/')
        .nth(1)
        .is_some_and(|folder| folder == PAGES_FOLDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_live_in_the_manifest_folder_whatever_the_depth() {
        assert_eq!(page_key("p/_manifests/a.json", "h"), "p/_manifests/pages/h");
        assert_eq!(
            page_key("p/_manifests/shards/r/shard-00001.json", "h"),
            "p/_manifests/pages/h"
        );
        assert_eq!(page_key("_manifests/a.json", "h"), "_manifests/pages/h");
        assert_eq!(page_key("x_manifests/a.json", "h"), "x_manifests/pages/h");
        assert_eq!(page_key("a.json", "h"), "pages/h");
        assert!(is_page_key(&page_key("p/_manifests/shards/r/s.json", "h")));
    }
}
