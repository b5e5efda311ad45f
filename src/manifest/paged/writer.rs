//! Writes a snapshot's tree: records cut into pages, pages sent once, index
//! nodes over them up to one root.

use std::collections::HashSet;

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::cut::{self, Cut};
use super::node::{Entry, Node};
use super::{Root, Span, page_key};
use crate::error::{Error, Result};
use crate::local::hash::Md5Digest;
use crate::manifest::{EntryKind, FileRecord, FileStatus};
use crate::store::{PutExtras, Store, WriteIf};

/// Pages sent at once: a first run at a million files writes tens of
/// thousands, and one PUT at a time would take longer than the run.
const SENDING: usize = 16;

/// What was written for a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub root: Root,
    /// Stored files under the root, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Nodes the tree has, and those this run sent (the rest were stored
    /// already), with their compressed bytes.
    pub nodes: u64,
    pub nodes_sent: u64,
    pub bytes_sent: u64,
}

/// Sends the nodes of one snapshot beside the snapshot object's key.
pub struct PageWriter {
    store: Store,
    snapshot_key: String,
    /// Nodes that exist already (the last snapshot's, or sent by this run).
    known: HashSet<String>,
    sending: JoinSet<Result<Option<u64>>>,
    tree: Tree,
}

impl PageWriter {
    pub fn new(store: &Store, snapshot_key: &str) -> Self {
        PageWriter {
            store: store.clone(),
            snapshot_key: snapshot_key.to_owned(),
            known: HashSet::new(),
            sending: JoinSet::new(),
            tree: Tree {
                root: Root {
                    sha256: String::new(),
                    level: 0,
                    records: 0,
                    span: None,
                },
                files: 0,
                bytes: 0,
                nodes: 0,
                nodes_sent: 0,
                bytes_sent: 0,
            },
        }
    }

    /// Writes every node of the tree of `records` (in path order) that is
    /// not stored yet, and returns its root once all are stored.
    pub async fn write(
        mut self,
        records: impl Iterator<Item = Result<FileRecord>>,
    ) -> Result<Tree> {
        let mut last = String::new();
        let entries = self.pages(records, &mut last).await?;
        self.up_from(entries, 0, last).await
    }

    /// Writes a tree that holds the trees of `roots` in turn (each written
    /// already, the first paths of each after the last of the one before),
    /// reading none of them: each root is raised to the highest level among
    /// them by one-entry index nodes, and index levels are built over them.
    /// O(roots) nodes, whatever they hold.
    pub async fn join(mut self, roots: &[Root]) -> Result<Tree> {
        let spans: Vec<(&Root, &Span)> = roots
            .iter()
            .filter(|root| root.records > 0)
            .map(|root| root.span.as_ref().map(|span| (root, span)))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Config("a tree to join names no span".into()))?;
        let Some(&(_, last)) = spans.last() else {
            return self.write(std::iter::empty()).await;
        };
        let last = last.last.clone();
        let level = spans.iter().map(|(root, _)| root.level).max().unwrap_or(0);
        let mut entries = Vec::with_capacity(spans.len());
        for (root, span) in spans {
            let mut entry = Entry {
                first: span.first.clone(),
                records: root.records,
                files: span.files,
                bytes: span.bytes,
                sha256: root.sha256.clone(),
            };
            for above in root.level + 1..=level {
                entry = self.close_index(vec![entry], above).await?;
            }
            self.tree.files += span.files;
            self.tree.bytes += span.bytes;
            entries.push(entry);
        }
        self.up_from(entries, level, last).await
    }

    /// Index levels over `entries` (of nodes at `level`) up to one root,
    /// once every node is stored.
    async fn up_from(
        mut self,
        mut entries: Vec<Entry>,
        mut level: u32,
        last: String,
    ) -> Result<Tree> {
        while entries.len() > 1 {
            level += 1;
            entries = self.index(entries, level).await?;
        }
        self.drain().await?;
        let top = entries
            .pop()
            .ok_or_else(|| Error::Config("a snapshot tree without a root".into()))?;
        self.tree.root = Root {
            sha256: top.sha256,
            level,
            records: top.records,
            span: Some(Span {
                first: top.first,
                last,
                files: self.tree.files,
                bytes: self.tree.bytes,
            }),
        };
        Ok(self.tree)
    }

    /// Level 0: the records cut into pages. An empty snapshot is one empty page.
    async fn pages(
        &mut self,
        records: impl Iterator<Item = Result<FileRecord>>,
        last: &mut String,
    ) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let mut page = Open::default();
        for record in records {
            let record = record?;
            if record.kind == EntryKind::File && record.status.is_stored() {
                self.tree.files += 1;
                self.tree.bytes += record.size_bytes;
                page.files += 1;
                page.bytes += record.size_bytes;
            }
            let path = record.local_path.clone();
            page.first.get_or_insert_with(|| path.clone());
            page.records.push(content_of(&record)?);
            if cut::RECORDS.ends_after(&path, page.records.len()) {
                entries.push(self.close(std::mem::take(&mut page)).await?);
            }
            *last = path;
        }
        if !page.records.is_empty() || entries.is_empty() {
            entries.push(self.close(page).await?);
        }
        Ok(entries)
    }

    /// One level up: `below` cut into index nodes.
    async fn index(&mut self, below: Vec<Entry>, level: u32) -> Result<Vec<Entry>> {
        let cut: Cut = cut::INDEX;
        let mut entries = Vec::new();
        let mut node: Vec<Entry> = Vec::new();
        for entry in below {
            let first = entry.first.clone();
            node.push(entry);
            if cut.ends_after(&first, node.len()) {
                entries.push(self.close_index(std::mem::take(&mut node), level).await?);
            }
        }
        if !node.is_empty() {
            entries.push(self.close_index(node, level).await?);
        }
        Ok(entries)
    }

    async fn close(&mut self, page: Open) -> Result<Entry> {
        let records = page.records.len() as u64;
        let sha256 = self
            .send(Node::Records {
                records: page.records,
            })
            .await?;
        Ok(Entry {
            first: page.first.unwrap_or_default(),
            records,
            files: page.files,
            bytes: page.bytes,
            sha256,
        })
    }

    async fn close_index(&mut self, entries: Vec<Entry>, level: u32) -> Result<Entry> {
        let first = entries.first().map(|e| e.first.clone()).unwrap_or_default();
        let records = entries.iter().map(|e| e.records).sum();
        let files = entries.iter().map(|e| e.files).sum();
        let bytes = entries.iter().map(|e| e.bytes).sum();
        let sha256 = self.send(Node::Index { level, entries }).await?;
        Ok(Entry {
            first,
            records,
            files,
            bytes,
            sha256,
        })
    }

    /// Sends `node` unless it is known to be stored; returns its hash.
    async fn send(&mut self, node: Node) -> Result<String> {
        let encoded = node.encode()?;
        self.tree.nodes += 1;
        let sha256 = encoded.sha256;
        if !self.known.insert(sha256.clone()) || self.store.page_vouched(&sha256) {
            return Ok(sha256);
        }
        while self.sending.len() >= SENDING {
            self.sent_one().await?;
        }
        let store = self.store.clone();
        let key = page_key(&self.snapshot_key, &sha256);
        let name = sha256.clone();
        self.sending.spawn(async move {
            let md5 = Md5Digest::of(&encoded.compressed);
            let size = encoded.compressed.len() as u64;
            let extras = PutExtras {
                content_type: Some("application/zlib"),
                ..PutExtras::default()
            };
            let body = encoded.compressed.clone();
            match store.put(&key, body, md5, extras, WriteIf::Absent).await {
                Ok(_) => {
                    store.page_cache_put(&name, &encoded.compressed);
                    store.page_vouch(&name);
                    Ok(Some(size))
                }
                // Stored already (by an earlier run): pages are named by
                // their content, and every reader checks it.
                Err(Error::PreconditionFailed { .. }) => Ok(None),
                Err(err) => Err(err),
            }
        });
        Ok(sha256)
    }

    async fn sent_one(&mut self) -> Result<()> {
        if let Some(sent) = self.sending.join_next().await
            && let Some(size) = sent??
        {
            self.tree.nodes_sent += 1;
            self.tree.bytes_sent += size;
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<()> {
        while !self.sending.is_empty() {
            self.sent_one().await?;
        }
        Ok(())
    }
}

/// A page being filled.
#[derive(Default)]
struct Open {
    first: Option<String>,
    records: Vec<Map<String, Value>>,
    files: u64,
    bytes: u64,
}

/// A record as a page holds it: what describes the content only. What the
/// run did (uploaded, skipped, re-encrypted), when and why, is in the
/// summary; a record that is neither stored nor a directory or link keeps
/// its status, since it has no object.
fn content_of(record: &FileRecord) -> Result<Map<String, Value>> {
    let Value::Object(mut fields) = serde_json::to_value(record)? else {
        return Err(Error::Config("a record is not an object".into()));
    };
    for run_field in ["timestamp", "reason", "error", "s3_uri"] {
        fields.remove(run_field);
    }
    let implied = match record.kind {
        EntryKind::File => record.status.is_stored(),
        _ => record.status == FileStatus::Recorded,
    };
    if implied {
        fields.remove("status");
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_record_keeps_no_trace_of_the_run() {
        let mut uploaded = FileRecord::new(Path::new("/d/a"), 3);
        uploaded.status = FileStatus::Uploaded;
        uploaded.s3_key = Some("p/a".into());
        uploaded.s3_uri = Some("s3://b/p/a".into());
        uploaded.md5 = Some("00".repeat(16));
        uploaded.reason = Some("changed".into());
        let mut skipped = uploaded.clone();
        skipped.status = FileStatus::Skipped;
        skipped.reason = Some("unchanged".into());
        skipped.timestamp = "2030-01-01T00:00:00Z".into();
        assert_eq!(
            content_of(&uploaded).unwrap(),
            content_of(&skipped).unwrap()
        );
        let mut failed = uploaded.clone();
        failed.status = FileStatus::Failed;
        assert_eq!(content_of(&failed).unwrap()["status"], "failed");
    }
}
