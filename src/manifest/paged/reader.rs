//! The one verified reader of a paged snapshot: from the root its signed
//! object names, every node is checked against the hash it is named by
//! before anything in it is used.

use futures::{StreamExt, TryStreamExt, stream};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::node::Node;
use super::{Root, page_key};
use crate::error::{Error, Result};
use crate::manifest::FileStatus;
use crate::store::Store;

/// Nodes fetched ahead of the one being read.
const AHEAD: usize = 16;

/// Hands every record under `root` to `each`, in path order, each node read
/// (from the page cache, else from S3) and checked against its hash first.
/// `bucket` is the snapshot's, which the records' URIs name.
pub async fn read_pages<T, S>(
    store: &Store,
    snapshot_key: &str,
    root: &Root,
    bucket: &str,
    mut state: S,
    each: fn(&mut S, T),
) -> Result<S>
where
    T: DeserializeOwned + 'static,
    S: Send + 'static,
{
    let pages = leaves(store, snapshot_key, root).await?;
    let mut nodes = stream::iter(pages)
        .map(|sha256| fetch(store, snapshot_key, sha256))
        .buffered(AHEAD);
    let mut records = 0;
    while let Some(node) = nodes.try_next().await? {
        let (page, uri) = node;
        let Node::Records { records: page } = page else {
            return Err(refused(
                &uri,
                "an index stands where a page of records should",
            ));
        };
        records += page.len() as u64;
        let bucket = bucket.to_owned();
        state = tokio::task::spawn_blocking(move || -> Result<S> {
            for fields in page {
                each(&mut state, T::deserialize(as_record(fields, &bucket))?);
            }
            Ok(state)
        })
        .await??;
    }
    if records != root.records {
        return Err(refused(
            &store.uri(snapshot_key),
            &format!(
                "its tree holds {records} records, its root says {}",
                root.records
            ),
        ));
    }
    Ok(state)
}

/// The hashes of the pages of records under `root`, in path order: each
/// level of index nodes read in turn.
async fn leaves(store: &Store, snapshot_key: &str, root: &Root) -> Result<Vec<String>> {
    let mut level = root.level;
    let mut hashes = vec![root.sha256.clone()];
    while level > 0 {
        let nodes: Vec<(Node, String)> = stream::iter(hashes)
            .map(|sha256| fetch(store, snapshot_key, sha256))
            .buffered(AHEAD)
            .try_collect()
            .await?;
        hashes = Vec::new();
        for (node, uri) in nodes {
            match node {
                Node::Index { level: at, entries } if at == level => {
                    hashes.extend(entries.into_iter().map(|entry| entry.sha256));
                }
                other => {
                    return Err(refused(
                        &uri,
                        &format!("a node of level {} stands at level {level}", other.level()),
                    ));
                }
            }
        }
        level -= 1;
    }
    Ok(hashes)
}

/// The node named `sha256`, checked, with its URI; a cached copy that fails
/// the check is fetched again from S3.
async fn fetch(store: &Store, snapshot_key: &str, sha256: String) -> Result<(Node, String)> {
    let key = page_key(snapshot_key, &sha256);
    let uri = store.uri(&key);
    if let Some(cached) = store.page_cache_get(&sha256)
        && let Ok(node) = Node::decode(&cached, &sha256, &uri)
    {
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
