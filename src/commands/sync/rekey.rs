//! After a key change: the older manifests (and snapshot pages) brought under the configured
//! key too, so that the prefix is compliant by its own audit and every
//! snapshot stays readable once the old key is retired. A manifest is
//! copied in place (the same conditional copy as a file's), so its bytes,
//! its SHA-256 and its signature, and with them the chain, do not change.

use futures::StreamExt;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::manifest::{is_manifest_name, paged};
use crate::store::{CopySource, Finding, KeyRange, Store, keys};

/// Manifests copied at once.
const IN_FLIGHT: usize = 8;

/// What bringing the manifests under the key did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    pub reencrypted: u64,
    pub failed: u64,
}

/// Re-encrypts each manifest of `prefix` that is not under the configured
/// key with a Bucket Key: one listing of the folder, a HEAD per manifest,
/// and a copy per manifest found wanting.
pub async fn manifests(store: &Store, prefix: &str) -> Result<Rekeyed> {
    let folder = keys::manifest_key(prefix, "");
    let listed = store.list(&folder, &[KeyRange::default()]).await?;
    let manifests = listed.into_iter().filter(|object| {
        object
            .key
            .strip_prefix(&folder)
            .is_some_and(|name| is_manifest_name(name) || paged::is_page_key(name))
    });
    let outcomes: Vec<Result<bool>> = futures::stream::iter(manifests)
        .map(|object| async move {
            let Some(head) = store.head(&object.key).await? else {
                return Ok(false);
            };
            let encryption = head.encryption.clone().unwrap_or_default();
            match store.noncompliance(&encryption) {
                None | Some(Finding::SseC) => return Ok(false),
                Some(_) => {}
            }
            let etag = head.etag.as_deref().unwrap_or_default();
            let source = CopySource {
                key: &object.key,
                etag,
                size: head.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                storage_class: head.storage_class.as_deref(),
            };
            store.reencrypt(source).await?;
            Ok(true)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut rekeyed = Rekeyed::default();
    for outcome in outcomes {
        match outcome {
            Ok(true) => rekeyed.reencrypted += 1,
            Ok(false) => {}
            // Written meanwhile: the next key-change run looks again.
            Err(Error::PreconditionFailed { key, .. }) => {
                warn!(
                    key,
                    "manifest changed while it was re-encrypted; left for the next run"
                );
                rekeyed.failed += 1;
            }
            Err(err) => {
                warn!(error = %err, "manifest not re-encrypted");
                rekeyed.failed += 1;
            }
        }
    }
    info!(
        reencrypted = rekeyed.reencrypted,
        failed = rekeyed.failed,
        "older manifests brought under the key"
    );
    Ok(rekeyed)
}
