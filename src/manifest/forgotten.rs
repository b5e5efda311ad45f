//! Marks of manifests that `forget` removed on purpose. A newer manifest
//! still links to the one before it; when that one was forgotten, the gap
//! is explained by a mark under `_manifests/forgotten/<name>` that names the
//! manifest's SHA-256 and the run that forgot it. The mark is written
//! before the manifest is deleted, under the same folder (and bucket
//! policy) as the manifests themselves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ManifestLink;
use crate::error::Result;
use crate::local::hash::Md5Digest;
use crate::store::{PutExtras, Store, WriteIf};

/// The folder of the marks, beside the manifests.
const FOLDER: &str = "forgotten";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub key: String,
    pub sha256: Option<String>,
    pub etag: Option<String>,
    pub forgotten_by: String,
    pub forgotten_at: DateTime<Utc>,
}

/// The key of the mark of the manifest at `key`.
fn mark_key(key: &str) -> String {
    match key.rsplit_once('/') {
        Some((folder, name)) => format!("{folder}/{FOLDER}/{name}"),
        None => format!("{FOLDER}/{key}"),
    }
}

/// Writes the mark of `mark.key`, before it is deleted.
pub async fn mark(store: &Store, mark: &Mark) -> Result<()> {
    let body = serde_json::to_vec(mark)?;
    let md5 = Md5Digest::of(&body);
    store
        .put(
            &mark_key(&mark.key),
            body,
            md5,
            PutExtras::JSON,
            WriteIf::Always,
        )
        .await?;
    Ok(())
}

/// The run that forgot the manifest `link` names, if a mark says so for
/// the same bytes (by SHA-256, else by ETag).
pub async fn forgotten_by(store: &Store, link: &ManifestLink) -> Result<Option<String>> {
    let Some(fetched) = store.get(&mark_key(&link.key)).await? else {
        return Ok(None);
    };
    let Ok(mark) = serde_json::from_slice::<Mark>(&fetched.bytes().await?) else {
        return Ok(None);
    };
    let same = match (&link.sha256, &link.etag) {
        (Some(sha256), _) => mark.sha256.as_ref() == Some(sha256),
        (None, Some(etag)) => mark.etag.as_ref() == Some(etag),
        (None, None) => false,
    };
    Ok((same && mark.key == link.key).then_some(mark.forgotten_by))
}
