//! The manifest chain: each manifest names the one before it by key and
//! SHA-256, so a rewritten or deleted older manifest shows from a newer one.

use serde::de::IgnoredAny;

use super::report::{Problem, ProblemKind};
use crate::manifest::ManifestLink;
use crate::manifest::read::read_fetched;
use crate::store::Store;

/// Follows `link` back, at most `limit` links (all when `None`). Returns
/// the manifests checked and the broken links, each named by its manifest.
pub async fn walk_back(
    store: &Store,
    mut link: Option<ManifestLink>,
    limit: Option<u32>,
) -> (u64, Vec<Problem>) {
    let mut checked = 0;
    let mut problems = Vec::new();
    while let Some(current) = link.take() {
        if limit.is_some_and(|limit| checked >= u64::from(limit)) {
            break;
        }
        checked += 1;
        let broken = |detail: String| Problem {
            kind: ProblemKind::ChainBroken,
            key: current.key.clone(),
            detail,
        };
        let fetched = match store.get(&current.key).await {
            Ok(Some(fetched)) => fetched,
            Ok(None) => {
                problems.push(broken("deleted: a newer manifest links to it".into()));
                break;
            }
            Err(err) => {
                problems.push(broken(err.to_string()));
                break;
            }
        };
        let etag = fetched.etag.clone();
        let parsed = match read_fetched(fetched, (), |_, _: IgnoredAny| {}).await {
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
