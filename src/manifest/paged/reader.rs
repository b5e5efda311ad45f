//! The one verified reader of a paged snapshot: from the root its signed
//! object names, every node is checked against the hash it is named by
//! before anything in it is used.

use futures::{StreamExt, TryStreamExt, stream};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::node::{Entry, Node};
use super::reading::Reading;
use super::{Root, page_key};
use crate::error::{Error, Result};
use crate::manifest::FileStatus;
use crate::store::Store;

/// Nodes fetched ahead of the one being read.
const AHEAD: usize = 16;

/// Hands every record under `root` to `each`, in path order, each node read
/// (from the page cache, else from S3) and checked against its hash first.
/// `bucket` is the snapshot's, which the records' URIs name. `reading`
/// (whose paths are local paths) says which nodes are read.
pub async fn read_pages<T, S>(
    store: &Store,
    snapshot_key: &str,
    (root, reading): (&Root, &Reading),
    bucket: &str,
    mut state: S,
    each: fn(&mut S, T),
) -> Result<S>
where
    T: DeserializeOwned + 'static,
    S: Send + 'static,
{
    let pages = leaves(store, snapshot_key, root, reading).await?;
    let mut nodes = stream::iter(pages)
        .map(|sha256| fetch(store, snapshot_key, sha256))
        .buffered(AHEAD);
    let mut records = 0;
    let mut ends = Ends::default();
    while let Some(node) = nodes.try_next().await? {
        let (page, uri) = node;
        let Node::Records { records: page } = page else {
            return Err(refused(
                &uri,
                "an index stands where a page of records should",
            ));
        };
        records += page.len() as u64;
        ends.see(&page);
        let bucket = bucket.to_owned();
        state = tokio::task::spawn_blocking(move || -> Result<S> {
            for fields in page {
                each(&mut state, T::deserialize(as_record(fields, &bucket))?);
            }
            Ok(state)
        })
        .await??;
    }
    if reading.whole() {
        check_whole(root, records, &ends).map_err(|why| refused(&store.uri(snapshot_key), &why))?;
    }
    Ok(state)
}

/// The first and last paths of the records read.
#[derive(Default)]
struct Ends {
    first: Option<String>,
    last: Option<String>,
}

impl Ends {
    fn see(&mut self, page: &[Map<String, Value>]) {
        let path = |fields: Option<&Map<String, Value>>| {
            fields
                .and_then(|f| f.get("local_path"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if self.first.is_none() {
            self.first = path(page.first());
        }
        if let Some(last) = path(page.last()) {
            self.last = Some(last);
        }
    }
}

/// Whether a whole tree read holds what its signed root says of it.
fn check_whole(root: &Root, records: u64, ends: &Ends) -> std::result::Result<(), String> {
    if records != root.records {
        return Err(format!(
            "its tree holds {records} records, its root says {}",
            root.records
        ));
    }
    let Some(span) = root.span.as_ref().filter(|_| records > 0) else {
        return Ok(());
    };
    let read = (ends.first.as_deref(), ends.last.as_deref());
    if read != (Some(span.first.as_str()), Some(span.last.as_str())) {
        return Err(format!(
            "its tree runs from {:?} to {:?}, its root says {:?} to {:?}",
            read.0, read.1, span.first, span.last
        ));
    }
    Ok(())
}

/// The hashes of the pages of records under `root`, in path order, that
/// `reading` needs.
async fn leaves(
    store: &Store,
    snapshot_key: &str,
    root: &Root,
    reading: &Reading,
) -> Result<Vec<String>> {
    if root.level == 0 {
        let wanted = !reading.skips(&root.sha256) && reading.first_sight(&root.sha256);
        return Ok(wanted.then(|| root.sha256.clone()).into_iter().collect());
    }
    let entries = page_entries(store, snapshot_key, root, reading).await?;
    Ok(entries.into_iter().map(|entry| entry.sha256).collect())
}

/// The hashes of every page of records under `root`, in path order.
pub async fn leaves_of(store: &Store, snapshot_key: &str, root: &Root) -> Result<Vec<String>> {
    leaves(store, snapshot_key, root, &Reading::default()).await
}

/// The records of the page `sha256` of the snapshot at `snapshot_key` (of
/// `bucket`), the page checked against its hash.
pub async fn page_records<T: DeserializeOwned>(
    store: &Store,
    snapshot_key: &str,
    sha256: &str,
    bucket: &str,
) -> Result<Vec<T>> {
    let (node, uri) = fetch(store, snapshot_key, sha256.to_owned()).await?;
    let Node::Records { records } = node else {
        return Err(refused(
            &uri,
            "an index stands where a page of records should",
        ));
    };
    let records = records
        .into_iter()
        .map(|fields| T::deserialize(as_record(fields, bucket)));
    Ok(records.collect::<std::result::Result<_, _>>()?)
}

/// What the index says of each page of records under `root` (files and
/// bytes, besides its hash), in path order; none when the root is itself
/// the one page. What comparing two snapshots page by page starts from.
pub async fn pages_of(
    store: &Store,
    snapshot_key: &str,
    root: &Root,
) -> Result<Vec<(String, u64)>> {
    if root.level == 0 {
        return Ok(Vec::new());
    }
    let entries = page_entries(store, snapshot_key, root, &Reading::default()).await?;
    Ok(entries.into_iter().map(|e| (e.sha256, e.files)).collect())
}

/// The entries of the pages under `root` (a root above level 0) that
/// `reading` needs: each level of index nodes read in turn, keeping only
/// the nodes it needs.
async fn page_entries(
    store: &Store,
    snapshot_key: &str,
    root: &Root,
    reading: &Reading,
) -> Result<Vec<Entry>> {
    let mut level = root.level;
    let mut hashes: Vec<String> = Some(root.sha256.clone())
        .filter(|root| reading.first_sight(root))
        .into_iter()
        .collect();
    let mut kept = Vec::new();
    while level > 0 {
        let entries = index_level(store, snapshot_key, hashes, level).await?;
        let needed: Vec<bool> = (0..entries.len())
            .map(|i| {
                let next = entries.get(i + 1).map(|e| e.first.as_str());
                let narrow = reading.narrow.as_ref();
                narrow.is_none_or(|narrow| narrow.meets(&entries[i].first, next))
            })
            .collect();
        kept = entries
            .into_iter()
            .zip(needed)
            .filter(|(entry, needed)| {
                *needed && !reading.skips(&entry.sha256) && reading.first_sight(&entry.sha256)
            })
            .map(|(entry, _)| entry)
            .collect();
        hashes = kept.iter().map(|entry| entry.sha256.clone()).collect();
        level -= 1;
    }
    Ok(kept)
}

/// The entries of the index nodes `hashes`, all at `level`, in order.
async fn index_level(
    store: &Store,
    snapshot_key: &str,
    hashes: Vec<String>,
    level: u32,
) -> Result<Vec<Entry>> {
    let nodes: Vec<(Node, String)> = stream::iter(hashes)
        .map(|sha256| fetch(store, snapshot_key, sha256))
        .buffered(AHEAD)
        .try_collect()
        .await?;
    let mut entries = Vec::new();
    for (node, uri) in nodes {
        match node {
            Node::Index {
                level: at,
                entries: below,
            } if at == level => entries.extend(below),
            other => {
                return Err(refused(
                    &uri,
                    &format!("a node of level {} stands at level {level}", other.level()),
                ));
            }
        }
    }
    Ok(entries)
}

/// A node of a tree as its index lists it: where it starts, the stored
/// files under it, and its hash if it is a page of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub first: String,
    pub files: u64,
    pub page: Option<String>,
}

/// The nodes of the tree under `root`, in path order, read down only until
/// a node holds about `files_each` / 8 files on average (or to the pages):
/// what a plan cuts the tree by, without reading a record. Empty when the
/// root is the one page.
pub async fn coarse_index(
    store: &Store,
    snapshot_key: &str,
    root: &Root,
    files_each: u64,
) -> Result<Vec<Listed>> {
    let mut entries = Vec::new();
    let mut hashes = vec![root.sha256.clone()];
    let mut pages = false;
    for level in (1..=root.level).rev() {
        entries = index_level(store, snapshot_key, hashes, level).await?;
        pages = level == 1;
        let files: u64 = entries.iter().map(|e| e.files).sum();
        if files / (entries.len() as u64).max(1) <= files_each / 8 {
            break;
        }
        hashes = entries.iter().map(|e| e.sha256.clone()).collect();
    }
    let listed = entries.into_iter().map(|e| Listed {
        page: pages.then_some(e.sha256),
        first: e.first,
        files: e.files,
    });
    Ok(listed.collect())
}

/// The node named `sha256`, checked, with its URI; a cached copy that fails
/// the check is fetched again from S3.
async fn fetch(store: &Store, snapshot_key: &str, sha256: String) -> Result<(Node, String)> {
    let key = page_key(snapshot_key, &sha256);
    let uri = store.uri(&key);
    // Read for a snapshot fetched from S3, so stored there.
    if let Some(cached) = store.page_cache_get(&sha256)
        && let Ok(node) = Node::decode(&cached, &sha256, &uri)
    {
        store.page_vouch(&sha256);
        return Ok((node, uri));
    }
    let fetched = store
        .get(&key)
        .await?
        .ok_or_else(|| refused(&uri, "its page is missing"))?;
    let compressed = fetched
        .body
        .collect()
        .await
        .map_err(|err| Error::Config(format!("reading {uri}: {err}")))?
        .into_bytes();
    let node = Node::decode(&compressed, &sha256, &uri)?;
    store.page_cache_put(&sha256, &compressed);
    store.page_vouch(&sha256);
    Ok((node, uri))
}

/// A page's record as every reader knows records: the status it implies
/// (stored, for a file; recorded, for a directory or a link) and its URI.
fn as_record(mut fields: Map<String, Value>, bucket: &str) -> Value {
    if !fields.contains_key("status") {
        let file = fields.get("kind").is_none_or(|kind| kind == "file");
        let status = match file {
            true => FileStatus::Stored,
            false => FileStatus::Recorded,
        };
        fields.insert("status".into(), serde_json::json!(status));
    }
    if let Some(Value::String(key)) = fields.get("s3_key") {
        let uri = format!("s3://{bucket}/{key}");
        fields.insert("s3_uri".into(), Value::String(uri));
    }
    Value::Object(fields)
}

fn refused(uri: &str, detail: &str) -> Error {
    Error::Untrusted {
        key: uri.to_owned(),
        detail: detail.to_owned(),
    }
}
