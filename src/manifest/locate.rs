//! Which manifest a command reads: the newest full one of the prefix that
//! stands for a whole source, or one the user names.

use serde::{Deserialize, Serialize};

use super::read::{HEADER_LIMIT, Header, read_header};
use super::trusted::{HeaderRead, read_header_judged};
use super::{Snapshot, is_full_manifest_name, scope_tag_of};
use crate::error::{Error, Result};
use crate::store::{Kept, KeyRange, Store, keys};

/// The manifest a command reads, and the newer ones "latest" passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub key: String,
    pub passed_over: Vec<PassedOver>,
    /// Its object, where "latest" read it whole to judge it: read again
    /// from here, not from S3.
    pub kept: Option<Kept>,
}

/// A newer manifest that "latest" did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    pub manifest_s3_uri: String,
    pub reason: String,
}

/// The manifest `which` names: `None` or `"latest"` for the newest full
/// manifest of `prefix` whose run covered the whole source, completed, and
/// that no guard stopped;
/// else the `manifest_s3_uri` a run printed, a key, or a file name in the
/// prefix's manifest folder, taken as it is.
///
/// Where a key is trusted and `signed_only`, "latest" is the newest such
/// manifest that the trusted key signed.
pub async fn locate(
    store: &Store,
    prefix: &str,
    which: Option<&str>,
    signed_only: bool,
) -> Result<Located> {
    let folder = keys::manifest_key(prefix, "");
    let which = which
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "latest");
    match which {
        None => {
            latest(
                store,
                prefix,
                &folder,
                signed_only && store.trust().enforced(),
            )
            .await
        }
        Some(which) => Ok(Located {
            key: named(store, &folder, which)?,
            passed_over: Vec::new(),
            kept: None,
        }),
    }
}

/// The newest full manifest that stands for a whole source: one HEAD per
/// manifest, newest first, until one does (usually the first).
async fn latest(store: &Store, prefix: &str, folder: &str, signed_only: bool) -> Result<Located> {
    let mut full: Vec<String> = store
        .list(folder, &[KeyRange::default()])
        .await?
        .into_iter()
        .map(|object| object.key)
        .filter(|key| key.strip_prefix(folder).is_some_and(is_full_manifest_name))
        .collect();
    if full.is_empty() {
        return Err(Error::Config(format!(
            "no manifest under {}: run sync first, or check SYNC_PREFIX (--prefix)",
            store.uri(folder)
        )));
    }
    full.sort_unstable_by(|a, b| b.cmp(a));
    // Runs under configured globs back up part of the source; they stand
    // for it only where no run ever covered all of it.
    let whole_source_runs = full.iter().any(|key| scope_of(key, folder).is_none());
    let mut passed_over = Vec::new();
    for key in full {
        if whole_source_runs && scope_of(&key, folder).is_some() {
            passed_over.push(PassedOver {
                manifest_s3_uri: store.uri(&key),
                reason: "its run backed up only what its --include/--exclude globs took".into(),
            });
            continue;
        }
        match passed_over_because(store, prefix, &key, signed_only).await? {
            Ok(kept) => {
                return Ok(Located {
                    key,
                    passed_over,
                    kept,
                });
            }
            Err(reason) => passed_over.push(PassedOver {
                manifest_s3_uri: store.uri(&key),
                reason,
            }),
        }
    }
    let names: Vec<String> = passed_over
        .iter()
        .map(|p| format!("{} ({})", p.manifest_s3_uri, p.reason))
        .collect();
    Err(Error::Config(format!(
        "no manifest under {} stands for a whole source: {}; pass one of them to --manifest to use it anyway (an unsigned one with --allow-unsigned)",
        store.uri(folder),
        names.join("; ")
    )))
}

fn scope_of<'a>(key: &'a str, folder: &str) -> Option<&'a str> {
    key.strip_prefix(folder).and_then(scope_tag_of)
}

/// Why the manifest at `key` may not be "latest" (`Err`), else its object
/// where it was read whole. Where signatures count, its bytes are read (one
/// GET, its records unparsed) and judged as restore judges them; metadata
/// alone proves nothing, since whoever can put an object can copy a real
/// manifest's signature onto it. Then what it says of its snapshot.
async fn passed_over_because(
    store: &Store,
    prefix: &str,
    key: &str,
    signed_only: bool,
) -> Result<std::result::Result<Option<Kept>, String>> {
    let removed = || Err("it was removed while the manifests were listed".to_owned());
    let passed = |snapshot: Snapshot| snapshot.passed_over_because().map(str::to_owned);
    if !signed_only {
        let Some(object) = store.head(key).await? else {
            return Ok(removed());
        };
        let snapshot = match object.snapshot.as_deref().and_then(Snapshot::parse) {
            Some(snapshot) => snapshot,
            None => Snapshot::of_header(&header_of(store, key).await?),
        };
        return Ok(passed(snapshot).map_or(Ok(None), Err));
    }
    let judged = match read_header_judged(store, prefix, key).await? {
        HeaderRead::Gone => return Ok(removed()),
        HeaderRead::Unreadable(why) => return Ok(Err(why)),
        HeaderRead::Read(judged) => judged,
    };
    if let Some(why) = judged.refused {
        return Ok(Err(why));
    }
    let snapshot = Snapshot::of_header(&judged.read.header);
    Ok(passed(snapshot).map_or(Ok(judged.kept), Err))
}

/// The header of the manifest at `key`. It precedes the records: a
/// manifest of a million files is not downloaded to read it.
pub async fn header_of(store: &Store, key: &str) -> Result<Header> {
    let fetched = store.get(key).await?.ok_or_else(|| {
        Error::Config(format!(
            "manifest {} vanished while it was read",
            store.uri(key)
        ))
    })?;
    let body = fetched.into_blocking_read();
    let header = tokio::task::spawn_blocking(move || read_header(body, HEADER_LIMIT)).await?;
    header.ok_or_else(|| {
        Error::Config(format!(
            "manifest {} has no header this tool can read: pass another to --manifest",
            store.uri(key)
        ))
    })
}

/// The key of a manifest the user named.
fn named(store: &Store, folder: &str, which: &str) -> Result<String> {
    let key = match keys::parse_s3_uri(which) {
        Ok((bucket, key)) => {
            if bucket != store.bucket() {
                return Err(Error::Config(format!(
                    "manifest {which} is not in the configured bucket {}: pass one of its manifests to --manifest",
                    store.bucket()
                )));
            }
            key.to_owned()
        }
        Err(_) if which.contains('/') => which.to_owned(),
        Err(_) => format!("{folder}{which}"),
    };
    match key.strip_prefix(folder) {
        Some(name) if super::is_manifest_name(name) => Ok(key),
        _ => Err(Error::Config(format!(
            "{which} is not a manifest under {}: pass a manifest_s3_uri a run printed, or \"latest\", to --manifest",
            store.uri(folder)
        ))),
    }
}
