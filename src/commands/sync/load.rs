//! Before a run looks at any file: which manifests the prefix holds, the
//! index of the newest full one (this machine's copy standing in for the
//! download when S3 vouches for its SHA-256), and a listing of the prefix
//! cut into ranges by that index and joined into it.

use std::path::Path;

use tracing::{info, warn};

use super::fetch::{fetch_index, newest_link};
use super::index::{Entries, Index};
use super::listing::{Listing, Manifests, plan_listing};
use super::prior::PriorState;
use super::scope::Scope;
use crate::error::Result;
use crate::manifest::read::Header;
use crate::manifest::trusted::names_its_run;
use crate::manifest::{PassedOver, local_dir};
use crate::run::shard::Plan;
use crate::store::{KeyRange, Store, keys};
use crate::trust::Signature;

/// The manifest folder, the index of the newest full manifest it shows,
/// and the listing. Any may be missing; the run then asks S3 key by key.
/// `index_known` sees the first index the run takes up, before the listing
/// (the walk is cut by it); a copy S3 later disowns may have been that one.
pub async fn load(
    store: &Store,
    prefix: &str,
    manifest_dir: &Path,
    rehash_every: u32,
    scope: &Scope,
    index_known: impl FnOnce(Option<&Index>),
) -> PriorState {
    let mut index_known = Some(index_known);
    let mut tell = |index: Option<&Index>| {
        if let Some(index_known) = index_known.take() {
            index_known(index);
        }
    };
    let folder = keys::manifest_key(prefix, "");
    let list_prefix = keys::folder_of(&scope.key_prefix);
    let tag = scope.filter.scope_tag();
    let local = local_dir::newest(
        manifest_dir,
        store.bucket(),
        &scope.key_prefix,
        tag.as_deref(),
        Index::add,
    )
    .map(|copy| LocalCopy {
        key: format!("{folder}{}", copy.name),
        signed: signed_by_trusted_key(&copy.name, &copy.header, copy.signature.as_ref()),
        index: Index::new(copy.header, copy.content),
        sha256: copy.sha256,
    });
    // The digests of manifests this run has read or proven: the chain link
    // to the newest manifest usually needs no request of its own.
    let mut digests: Vec<(String, String)> = Vec::new();
    let known = match local {
        Some(copy) => {
            tell(Some(&copy.index));
            warm(store, &list_prefix, &folder, tag.clone(), copy).await
        }
        None => Warm::NoCopy,
    };
    let loaded = match known {
        Warm::Newest { copy, listing } => {
            let mut newest = listing.manifests.newest_first();
            if !newest.iter().any(|(key, _)| *key == copy.key) {
                newest.push((copy.key.clone(), None));
            }
            let LocalCopy {
                key, index, sha256, ..
            } = *copy;
            digests.push((key, sha256));
            Loaded {
                index: Some(index),
                listing: Some(*listing),
                newest,
                passed_over: Vec::new(),
            }
        }
        Warm::ListingFailed => Loaded::default(),
        Warm::Superseded(manifests) => {
            cold(
                store,
                scope,
                &list_prefix,
                &folder,
                Some(manifests),
                &mut digests,
                &mut tell,
            )
            .await
        }
        Warm::NoCopy => {
            cold(
                store,
                scope,
                &list_prefix,
                &folder,
                None,
                &mut digests,
                &mut tell,
            )
            .await
        }
    };
    tell(loaded.index.as_ref());
    let Loaded {
        index,
        listing,
        newest,
        passed_over,
    } = loaded;
    let previous = newest_link(store, prefix, newest, &digests).await;
    let (full_rehash, runs_since_full_rehash) = rehash_due(
        rehash_every,
        index.as_ref().map(|i| &i.header),
        scope.rehash,
    );
    info!(
        listed_unrecorded = listing.as_ref().map(Listing::others),
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
        passed_over,
    }
}

/// This machine's newest manifest copy, and where it would be in S3.
struct LocalCopy {
    key: String,
    index: Index,
    sha256: String,
    /// Its kept signature, for the trusted key to judge in [`warm`] (which
    /// may fetch the public key).
    signed: Option<Signature>,
}

/// What the trusted key must judge to prove a copy on its own: its kept
/// signature, if the copy is named as its run names its manifest.
fn signed_by_trusted_key(
    name: &str,
    header: &Header,
    signature: Option<&Signature>,
) -> Option<Signature> {
    signature.filter(|_| names_its_run(name, header)).cloned()
}

/// What a run learns from its own copy of the last manifest.
enum Warm {
    /// S3 vouches for the copy and lists no newer full manifest: it is the
    /// index, and the listing cut by it is joined into it.
    Newest {
        copy: Box<LocalCopy>,
        listing: Box<Listing>,
    },
    /// A newer full manifest was written elsewhere (these are the folder's
    /// manifests from the copy on).
    Superseded(Manifests),
    ListingFailed,
    /// No copy, or one S3 does not vouch for.
    NoCopy,
}

#[derive(Default)]
struct Loaded {
    index: Option<Index>,
    listing: Option<Listing>,
    /// The manifests of every run, newest first, with their ETags: the
    /// newest one that passes judgement is the chain's next link.
    newest: Vec<(String, Option<String>)>,
    /// Newer manifests of the scope not taken as the index, and why.
    passed_over: Vec<PassedOver>,
}

/// The listing cut by this machine's copy and joined into it, while S3 is
/// asked whether the copy is what it holds: one round trip. Of the
/// manifest folder only what sorts after the copy is listed: any newer
/// manifest, and the lock. A copy the trusted key signed needs no asking:
/// the folder is listed from the copy itself on, and it is proven when it
/// is the newest full manifest there.
async fn warm(
    store: &Store,
    list_prefix: &str,
    folder: &str,
    scope_tag: Option<String>,
    mut copy: LocalCopy,
) -> Warm {
    let signed = proven_by_signature(store, &copy).await;
    // Listed from just before the copy's key, so that key is listed too.
    let resume = match signed {
        true => &copy.key[..copy.key.len() - 1],
        false => copy.key.as_str(),
    };
    let ranges = plan_listing(&copy.index, folder, Some(resume));
    let (proven, listing) = tokio::join!(
        async { signed || proven_copy(store, &copy.key, &copy.sha256).await },
        list(
            store,
            list_prefix,
            &ranges,
            folder,
            scope_tag,
            Some(&mut copy.index)
        ),
    );
    if !proven {
        // A planted name could have hidden newer manifests from the cut
        // listing: start again from the folder.
        warn!(
            key = copy.key,
            "local manifest copy does not match S3; not used"
        );
        return Warm::NoCopy;
    }
    let Some(listing) = listing else {
        return Warm::ListingFailed;
    };
    let newest_full = listing.manifests.latest_full();
    match (newest_full, signed) {
        (None, false) => Warm::Newest {
            copy: Box::new(copy),
            listing: Box::new(listing),
        },
        (Some(newest), true) if newest == copy.key => Warm::Newest {
            copy: Box::new(copy),
            listing: Box::new(listing),
        },
        // A signed copy S3 no longer lists stands for nothing there.
        (None, true) => Warm::NoCopy,
        _ => Warm::Superseded(listing.manifests),
    }
}

/// Whether the trusted key signed the copy's very bytes.
async fn proven_by_signature(store: &Store, copy: &LocalCopy) -> bool {
    let Some(signature) = &copy.signed else {
        return false;
    };
    match store.trust().judge(Some(signature), &copy.sha256).await {
        Ok(verdict) => verdict.is_valid(),
        Err(err) => {
            warn!(error = %err, "cannot check the local manifest copy's signature; S3 is asked instead");
            false
        }
    }
}

/// Without a usable copy: the manifest folder (unless already listed), the
/// newest full manifest fetched from S3, then the listing cut by it.
async fn cold(
    store: &Store,
    scope: &Scope,
    list_prefix: &str,
    folder: &str,
    manifests: Option<Manifests>,
    digests: &mut Vec<(String, String)>,
    index_known: &mut dyn FnMut(Option<&Index>),
) -> Loaded {
    let manifests = match manifests {
        Some(manifests) => manifests,
        // Without the folder the newest manifest is unknown: no index, no
        // link, and no listing, which could not tell manifests apart.
        None => match list_manifests(store, folder, scope.filter.scope_tag()).await {
            Ok(manifests) => manifests,
            Err(err) => {
                warn!(error = %err, "listing the manifests failed; each file is looked up on its own");
                return Loaded::default();
            }
        },
    };
    let (mut index, passed_over) = newest_judged(store, scope, &manifests, digests).await;
    index_known(index.as_ref());
    let ranges = match &index {
        Some(index) => plan_listing(index, folder, None),
        None => vec![KeyRange::default()],
    };
    let tag = manifests.scope_tag.clone();
    let listing = list(store, list_prefix, &ranges, folder, tag, index.as_mut()).await;
    Loaded {
        index,
        listing,
        newest: manifests.newest_first(),
        passed_over,
    }
}

/// The index: the newest full manifest of the scope that passes the
/// judgement restore applies (its signature over the bytes read, its name,
/// its place), one GET each, newest first; and the newer ones passed over.
/// A planted manifest named to sort last is read, refused and named, never
/// taken: were it, this run would sign the attacker's records as its own.
async fn newest_judged(
    store: &Store,
    scope: &Scope,
    manifests: &Manifests,
    digests: &mut Vec<(String, String)>,
) -> (Option<Index>, Vec<PassedOver>) {
    let mut passed_over = Vec::new();
    for key in manifests.full_newest_first() {
        match fetch_index(store, key, &scope.key_prefix, Entries::default()).await {
            Ok((index, sha256)) => {
                // Judged: the chain may link to it with no request more.
                digests.push((key.to_owned(), sha256));
                return (Some(index), passed_over);
            }
            Err(reason) => {
                warn!(key, reason, "manifest not taken as the index");
                passed_over.push(PassedOver {
                    manifest_s3_uri: store.uri(key),
                    reason,
                });
            }
        }
    }
    if !passed_over.is_empty() {
        warn!(
            passed_over = passed_over.len(),
            "no manifest of this scope passes judgement: every file is read and hashed"
        );
    }
    (None, passed_over)
}

/// The manifest folder's listing: which manifests it holds, as a run of
/// the scope `scope_tag` names sees them.
pub(super) async fn list_manifests(
    store: &Store,
    folder: &str,
    scope_tag: Option<String>,
) -> Result<Manifests> {
    let found = std::sync::Mutex::new(Manifests::of_scope(scope_tag));
    store
        .list_each(folder, &[KeyRange::default()], &|object| {
            if let Ok(mut found) = found.lock() {
                found.add(object, folder);
            }
        })
        .await?;
    Ok(found.into_inner().unwrap_or_default())
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

/// What a shard of a sharded run knows before it reads a file: the records
/// of its slice in the manifest its plan chose, and a listing of its slice
/// joined into them.
pub async fn planned(store: &Store, scope: &Scope, plan: &Plan) -> PriorState {
    let list_prefix = keys::folder_of(&scope.key_prefix);
    let bound = |path: &Option<String>| path.as_deref().map(|p| keys::join(&scope.key_prefix, p));
    let range = KeyRange {
        after: bound(&scope.range.after),
        until: bound(&scope.range.until),
    };
    let folder = keys::manifest_key(&scope.key_prefix, "");
    let slice = Entries::in_slice(&scope.key_prefix, &scope.range);
    let mut index = match &plan.index_manifest {
        Some(key) => match fetch_index(store, key, &scope.key_prefix, slice).await {
            Ok((index, _)) => Some(index),
            Err(reason) => {
                warn!(
                    key,
                    reason, "the plan's index is not taken; this shard reads and hashes every file"
                );
                None
            }
        },
        None => None,
    };
    let ranges = std::slice::from_ref(&range);
    let tag = scope.filter.scope_tag();
    let listing = list(store, &list_prefix, ranges, &folder, tag, index.as_mut()).await;
    info!(
        listed_unrecorded = listing.as_ref().map(Listing::others),
        indexed = index.as_ref().map(Index::len),
        "shard state loaded"
    );
    // A shard whose plan named an index it could not take hashes all.
    let full_rehash = plan.full_rehash || scope.rehash || index.is_none();
    PriorState {
        listing,
        index,
        previous: plan.previous_manifest.clone(),
        full_rehash,
        runs_since_full_rehash: plan.runs_since_full_rehash,
        passed_over: Vec::new(),
    }
}

/// The listing of `ranges`, each object marking its record in `index`.
async fn list(
    store: &Store,
    prefix: &str,
    ranges: &[KeyRange],
    folder: &str,
    scope_tag: Option<String>,
    index: Option<&mut Index>,
) -> Option<Listing> {
    let joined = std::sync::Mutex::new((Listing::of_scope(scope_tag), index));
    let added = store
        .list_each(prefix, ranges, &|object| {
            if let Ok(mut joined) = joined.lock() {
                let (listing, index) = &mut *joined;
                listing.add(object, folder, index.as_deref_mut());
            }
        })
        .await;
    match added {
        // A listing cut short says nothing of what it missed; the marks it
        // left go unread without it.
        Ok(()) => joined.into_inner().ok().map(|(mut listing, _)| {
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
async fn proven_copy(store: &Store, key: &str, sha256: &str) -> bool {
    match store.head(key).await {
        Ok(Some(stored)) => stored.sha256.as_deref() == Some(sha256),
        Ok(None) => false,
        Err(err) => {
            warn!(key, error = %err, "cannot check the local manifest copy against S3");
            false
        }
    }
}
