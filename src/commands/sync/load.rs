//! Before a run looks at any file: one listing of the prefix and the index
//! of the newest full manifest it shows, this machine's copy standing in
//! for the download when S3 vouches for its SHA-256.

use std::path::Path;

use tracing::{info, warn};

use super::listing::{Listing, plan_listing};
use super::options::Scope;
use super::prior::{Entries, Index, PriorState};
use crate::manifest::read::{Header, read_fetched};
use crate::manifest::{ManifestLink, local_dir};
use crate::run::shard::Plan;
use crate::store::{KeyRange, Store, keys};

/// One listing of the prefix, and the index of the newest full manifest
/// it shows. Either may be missing; the run then asks S3 key by key.
pub async fn load(
    store: &Store,
    prefix: &str,
    manifest_dir: &Path,
    rehash_every: u32,
    scope: &Scope,
) -> PriorState {
    let list_prefix = keys::folder_of(&scope.key_prefix);
    // This machine's newest copy, if any, tells where to cut the listing.
    // It stands in for the S3 manifest only if S3 vouches for its SHA-256.
    let folder = keys::manifest_key(prefix, "");
    let local = local_dir::newest(manifest_dir, store.bucket(), &scope.key_prefix, Index::add).map(
        |copy| {
            (
                copy.name,
                Index::new(copy.header, copy.content),
                copy.sha256,
            )
        },
    );
    let local_key = local.as_ref().map(|(name, ..)| format!("{folder}{name}"));
    let ranges = match (&local, &local_key) {
        (Some((_, index, _)), Some(key)) => plan_listing(index, &folder, key),
        _ => vec![KeyRange::default()],
    };
    let (mut listing, proven) = tokio::join!(
        list(store, &list_prefix, &ranges, &folder),
        proven_copy(
            store,
            local_key.as_deref(),
            local.as_ref().map(|(.., sha256)| sha256.as_str())
        ),
    );
    let local = local.filter(|_| proven);
    if local_key.is_some() && local.is_none() && ranges != [KeyRange::default()] {
        // The unproven copy cut the listing; a planted name could have
        // hidden newer manifests from it. List everything instead.
        warn!(
            key = local_key,
            "local manifest copy does not match S3; not used"
        );
        listing = list(store, &list_prefix, &[KeyRange::default()], &folder).await;
    }
    let local_key = local_key.filter(|_| local.is_some());
    // A newer manifest in the listing was written elsewhere; else ours is the newest.
    let latest = listing
        .as_ref()
        .and_then(|v| v.latest_manifest.clone())
        .or(local_key.clone());
    // The digests of manifests this run has read or proven: the chain link
    // to the newest manifest usually needs no request of its own.
    let mut digests: Vec<(String, String)> = Vec::new();
    let index = match (listing.as_ref().and(latest), local) {
        (Some(latest), Some((_, index, sha256))) if Some(&latest) == local_key.as_ref() => {
            digests.push((latest, sha256));
            Some(index)
        }
        (Some(latest), _) => {
            let (index, sha256) =
                fetch_index(store, &latest, &scope.key_prefix, Entries::default()).await;
            digests.extend(sha256.map(|sha256| (latest, sha256)));
            index
        }
        (None, _) => None,
    };
    let newest_manifest = listing
        .as_ref()
        .and_then(|l| l.newest_manifest.clone())
        .or(local_key.map(|key| (key, None)));
    // Without a listing the newest manifest is unknown: no link.
    let previous = match listing.as_ref().and(newest_manifest) {
        Some((key, etag)) => Some(link_to(store, key, etag, &digests).await),
        None => None,
    };
    let (full_rehash, runs_since_full_rehash) = rehash_due(
        rehash_every,
        index.as_ref().map(|i| &i.header),
        scope.rehash,
    );
    info!(
        listed = listing.as_ref().map(Listing::len),
        indexed = index.as_ref().map(Index::len),
        full_rehash,
        "state loaded"
    );
    PriorState {
        listing,
        index,
        previous,
        full_rehash,
        runs_since_full_rehash,
    }
}

/// Whether this run reads and hashes every file (asked, or due every
/// `rehash_every` runs, or no index to trust), and the runs since the last
/// one that did.
pub fn rehash_due(rehash_every: u32, index: Option<&Header>, asked: bool) -> (bool, u32) {
    let due = |h: &Header| rehash_every > 0 && h.runs_since_full_rehash + 1 >= rehash_every;
    let full_rehash = asked || index.is_none_or(due);
    match index {
        Some(h) if !full_rehash => (false, h.runs_since_full_rehash + 1),
        _ => (full_rehash, 0),
    }
}

/// What a shard of a sharded run knows before it reads a file: a listing of
/// its slice, and the records of its slice in the manifest its plan chose.
pub async fn planned(store: &Store, scope: &Scope, plan: &Plan) -> PriorState {
    let list_prefix = keys::folder_of(&scope.key_prefix);
    let bound = |path: &Option<String>| path.as_deref().map(|p| keys::join(&scope.key_prefix, p));
    let range = KeyRange {
        after: bound(&scope.range.after),
        until: bound(&scope.range.until),
    };
    let folder = keys::manifest_key(&scope.key_prefix, "");
    let slice = Entries::in_slice(&scope.key_prefix, &scope.range);
    let (listing, index) = tokio::join!(
        list(store, &list_prefix, std::slice::from_ref(&range), &folder),
        async {
            match &plan.index_manifest {
                Some(key) => fetch_index(store, key, &scope.key_prefix, slice).await.0,
                None => None,
            }
        }
    );
    info!(
        listed = listing.as_ref().map(Listing::len),
        indexed = index.as_ref().map(Index::len),
        "shard state loaded"
    );
    PriorState {
        listing,
        index,
        previous: plan.previous_manifest.clone(),
        full_rehash: plan.full_rehash || scope.rehash,
        runs_since_full_rehash: plan.runs_since_full_rehash,
    }
}

pub(super) async fn list(
    store: &Store,
    prefix: &str,
    ranges: &[KeyRange],
    folder: &str,
) -> Option<Listing> {
    let listing = std::sync::Mutex::new(Listing::default());
    let added = store
        .list_each(prefix, ranges, &|object| {
            if let Ok(mut listing) = listing.lock() {
                listing.add(object, folder);
            }
        })
        .await;
    match added {
        Ok(()) => listing.into_inner().ok().map(|mut listing| {
            listing.seal();
            listing
        }),
        Err(err) => {
            warn!(error = %err, "listing failed; each file is looked up on its own");
            None
        }
    }
}

/// Whether the S3 manifest at `key` has the SHA-256 of the local copy.
async fn proven_copy(store: &Store, key: Option<&str>, sha256: Option<&str>) -> bool {
    let (Some(key), Some(sha256)) = (key, sha256) else {
        return false;
    };
    match store.head(key).await {
        Ok(Some(stored)) => stored.sha256.as_deref() == Some(sha256),
        Ok(None) => false,
        Err(err) => {
            warn!(key, error = %err, "cannot check the local manifest copy against S3");
            false
        }
    }
}

/// The manifest at `key` from S3, and the SHA-256 of its bytes; a missing
/// or unreadable one, or one of another bucket or prefix, is no index.
pub(super) async fn fetch_index(
    store: &Store,
    key: &str,
    key_prefix: &str,
    entries: Entries,
) -> (Option<Index>, Option<String>) {
    let fetched = match store.get(key).await {
        Ok(Some(fetched)) => fetched,
        Ok(None) => return (None, None),
        Err(err) => {
            warn!(key, error = %err, "last manifest unreadable; files are checked one by one");
            return (None, None);
        }
    };
    match read_fetched(fetched, entries, Index::add).await {
        Ok(read) => {
            let index = Index::new(read.header, read.state);
            let ours = index.header.bucket == store.bucket() && index.header.prefix == key_prefix;
            (ours.then_some(index), Some(read.sha256))
        }
        Err(err) => {
            warn!(key, error = %err, "last manifest is corrupt; files are checked one by one");
            (None, None)
        }
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
