//! The last manifest from S3, as an index or record by record, and the
//! chain's link to the newest manifest.

use tracing::warn;

use super::index::{Entries, Index};
use crate::error::Result;
use crate::manifest::ManifestLink;
use crate::manifest::read::{Parsed, read_fetched};
use crate::store::Store;

/// The manifest at `key` from S3, and the SHA-256 of its bytes; a missing
/// or unreadable one, or one of another bucket or prefix, is no index.
pub(super) async fn fetch_index(
    store: &Store,
    key: &str,
    key_prefix: &str,
    entries: Entries,
) -> (Option<Index>, Option<String>) {
    match fetch_manifest(store, key, entries, Index::add).await {
        Ok(Some(read)) => {
            let index = Index::new(read.header, read.state);
            let ours = index.header.describes(store.bucket(), key_prefix);
            (ours.then_some(index), Some(read.sha256))
        }
        Ok(None) => (None, None),
        Err(err) => {
            warn!(key, error = %err, "last manifest unreadable or corrupt; files are checked one by one");
            (None, None)
        }
    }
}

/// The manifest at `key` from S3, each record handed to `each` as it
/// streams in; `None` when there is none.
pub(super) async fn fetch_manifest<T, S>(
    store: &Store,
    key: &str,
    state: S,
    each: fn(&mut S, T),
) -> Result<Option<Parsed<S>>>
where
    T: serde::de::DeserializeOwned + 'static,
    S: Send + 'static,
{
    match store.get(key).await? {
        Some(fetched) => read_fetched(fetched, state, each).await.map(Some),
        None => Ok(None),
    }
}

/// The link to the newest manifest: the SHA-256 this run proved, else the
/// one stored with it (a HEAD: only after a narrowed run), else its ETag. A
/// SHA-256 survives the manifest being re-encrypted in place; an ETag does not.
pub(super) async fn link_to(
    store: &Store,
    key: String,
    etag: Option<String>,
    digests: &[(String, String)],
) -> ManifestLink {
    let proven = digests
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, sha256)| sha256.clone());
    let sha256 = match proven {
        Some(sha256) => Some(sha256),
        None => match store.head(&key).await {
            Ok(Some(object)) if object.etag == etag => object.sha256,
            _ => None,
        },
    };
    ManifestLink { key, sha256, etag }
}
