//! The last manifest from S3, as an index or record by record, and the
//! chain's link to the newest manifest.

use super::index::{Entries, Index};
use crate::error::Result;
use crate::manifest::ManifestLink;
use crate::manifest::paged::Reading;
use crate::manifest::read::{Parsed, read_fetched_narrowed};
use crate::manifest::trusted::{HeaderRead, read_header_judged, refusal};
use crate::store::Store;
use tracing::warn;

/// The manifest at `key` from S3 as an index, with the SHA-256 of its
/// bytes, once judged as restore judges it (see [`refusal`]) and found to
/// describe this bucket and `key_prefix`; else why it is no index.
pub(super) async fn fetch_index(
    store: &Store,
    key: &str,
    key_prefix: &str,
    entries: Entries,
) -> std::result::Result<(Index, String), String> {
    let whole = Reading::default();
    let read = match fetch_manifest(store, key, &whole, (entries, Index::add)).await {
        Ok(Some(read)) => read,
        Ok(None) => return Err("it was removed while the run began".into()),
        Err(err) => return Err(format!("unreadable or corrupt: {err}")),
    };
    match refusal(store, key_prefix, key, &read).await {
        Ok(None) if read.header.describes(store.bucket(), key_prefix) => {
            Ok((Index::new(read.header, read.state), read.sha256))
        }
        Ok(None) => Err(format!(
            "it describes s3://{}/{}, not this run's prefix",
            read.header.bucket, read.header.prefix
        )),
        Ok(Some(why)) => Err(why),
        Err(err) => Err(format!("its signature could not be checked: {err}")),
    }
}

/// The manifest at `key` from S3, each record handed to `each` as it
/// streams in (of a paged snapshot, those of the nodes `reading` needs);
/// `None` when there is none.
pub(super) async fn fetch_manifest<T, S>(
    store: &Store,
    key: &str,
    reading: &Reading,
    (state, each): (S, fn(&mut S, T)),
) -> Result<Option<Parsed<S>>>
where
    T: serde::de::DeserializeOwned + 'static,
    S: Send + 'static,
{
    match store.get(key).await? {
        Some(fetched) => read_fetched_narrowed(store, (key, fetched), reading, state, each)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// The chain's next link: the newest manifest (`newest_first`, as listed)
/// that the backup wrote. Where a key is trusted, one this run has not
/// judged already is read and judged (one GET), and a planted one named to
/// sort last is passed over: the signed chain would otherwise link to it,
/// and a real manifest deleted behind it would go unseen.
pub(super) async fn newest_link(
    store: &Store,
    prefix: &str,
    newest_first: Vec<(String, Option<String>)>,
    digests: &[(String, String)],
) -> Option<ManifestLink> {
    for (key, etag) in newest_first {
        let known = digests.iter().any(|(judged, _)| *judged == key);
        if known || !store.trust().enforced() {
            return Some(link_to(store, key, etag, digests).await);
        }
        match judged_digest(store, prefix, &key).await {
            Ok(Some(sha256)) => {
                return Some(ManifestLink {
                    key,
                    sha256: Some(sha256),
                    etag,
                });
            }
            Ok(None) => {}
            Err(err) => {
                warn!(key, error = %err, "a newer manifest could not be judged; not linked")
            }
        }
    }
    None
}

/// The SHA-256 of the manifest at `key` if it passes judgement.
async fn judged_digest(store: &Store, prefix: &str, key: &str) -> Result<Option<String>> {
    let reason = match read_header_judged(store, prefix, key).await? {
        HeaderRead::Gone => return Ok(None),
        HeaderRead::Unreadable(reason) => reason,
        HeaderRead::Read(judged) => match judged.refused {
            None => return Ok(Some(judged.read.sha256)),
            Some(reason) => reason,
        },
    };
    warn!(key, reason, "manifest not linked");
    Ok(None)
}

/// The link to the newest manifest: the SHA-256 this run proved, else the
/// one stored with it (a HEAD: only after a narrowed run), else its ETag. A
/// SHA-256 survives the manifest being re-encrypted in place; an ETag does not.
async fn link_to(
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
