//! The manifest chain: each manifest names the one before it by key and
//! SHA-256, so a rewritten or deleted older manifest shows from a newer one.

use super::forgotten::forgotten_by;
use super::paged::Reading;
use super::read::{Parsed, read_fetched_narrowed, read_header_fetched};
use super::{FileRecord, FileStatus, ManifestLink};
use crate::error::{Error, Result};
use crate::store::{Kept, Store};

/// A manifest of the chain that is missing, unreadable or rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The manifest's key.
    pub key: String,
    pub detail: String,
    /// The manifest is gone, not rewritten: a gap that removing old
    /// snapshots on purpose also leaves.
    pub gap: bool,
}

/// Follows `link` back, at most `limit` links (all when `None`), and no
/// further than a manifest that forget removed. Returns the manifests
/// checked and the broken links, each named by its manifest.
pub async fn walk_back(
    store: &Store,
    mut link: Option<ManifestLink>,
    limit: Option<u32>,
) -> (u64, Vec<BrokenLink>) {
    let mut checked = 0;
    let mut problems = Vec::new();
    while let Some(current) = link.take() {
        if limit.is_some_and(|limit| checked >= u64::from(limit)) {
            break;
        }
        checked += 1;
        let broken = |detail: String| BrokenLink {
            key: current.key.clone(),
            detail,
            gap: false,
        };
        let fetched = match store.get(&current.key).await {
            Ok(Some(fetched)) => fetched,
            // Removed by forget, which left a mark for these bytes: the
            // chain ends here on purpose.
            Ok(None) if matches!(forgotten_by(store, &current).await, Ok(Some(_))) => break,
            Ok(None) => {
                problems.push(BrokenLink {
                    gap: true,
                    ..broken(
                        "deleted: a newer manifest links to it; the chain is not followed further"
                            .into(),
                    )
                });
                break;
            }
            Err(err) => {
                problems.push(broken(err.to_string()));
                break;
            }
        };
        let etag = fetched.etag.clone();
        let parsed = match read_header_fetched(fetched).await {
            Ok(parsed) => parsed,
            Err(err) => {
                problems.push(broken(format!("unreadable: {err}")));
                break;
            }
        };
        let rewritten = match (&current.sha256, &current.etag) {
            (Some(sha256), _) if *sha256 != parsed.sha256 => Some(format!(
                "rewritten: its SHA-256 is {}, the next manifest recorded {sha256}",
                parsed.sha256
            )),
            (None, Some(listed)) if etag.as_ref() != Some(listed) => Some(format!(
                "rewritten: its ETag is {}, the next manifest recorded {listed}",
                etag.as_deref().unwrap_or("(none)")
            )),
            (None, None) => Some("the next manifest records no digest of it".into()),
            _ => None,
        };
        problems.extend(rewritten.map(broken));
        link = parsed.header.previous_manifest;
    }
    (checked, problems)
}

/// The records of a snapshot in the manifest at `key`: stored files
/// (uploaded or skipped, with a key), directories and links; and a broken
/// link if its bytes are not those whose SHA-256 was stored with it: a
/// command trusts a manifest only as far as the chain vouches for it.
///
/// Of a paged snapshot, only the nodes `reading` needs are read (the caller
/// filters the records further).
pub async fn read_stored_files(
    store: &Store,
    (key, kept): (&str, Option<&Kept>),
    reading: &Reading,
) -> Result<(Parsed<Vec<FileRecord>>, Option<BrokenLink>)> {
    let fetched = match kept.filter(|kept| kept.is_of(key)) {
        Some(kept) => kept.fetched(),
        None => store.get(key).await?.ok_or_else(|| {
            Error::Config(format!(
                "manifest {} does not exist: pass a manifest_s3_uri a run printed, or \"latest\", to --manifest",
                store.uri(key)
            ))
        })?,
    };
    let recorded = fetched.sha256.clone();
    let keep_stored = |files: &mut Vec<FileRecord>, file: FileRecord| {
        let stored = file.status.is_stored() && file.s3_key.is_some();
        if stored || file.status == FileStatus::Recorded {
            files.push(file);
        }
    };
    let parsed =
        read_fetched_narrowed(store, (key, fetched), reading, Vec::new(), keep_stored).await?;
    let broken = (recorded.as_deref() != Some(parsed.sha256.as_str())).then(|| BrokenLink {
        key: key.to_owned(),
        detail: format!(
            "rewritten: its SHA-256 is {}, its object records {}",
            parsed.sha256,
            recorded.as_deref().unwrap_or("(none)")
        ),
        gap: false,
    });
    Ok((parsed, broken))
}
