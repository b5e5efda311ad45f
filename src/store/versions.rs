//! Every version of every key under a prefix, delete markers included,
//! and the deletions that retention makes: by version, in batches.

use aws_sdk_s3::types::{Delete, EncodingType, ObjectIdentifier};
use chrono::{DateTime, Utc};

use super::listing::{Listed, decode_listed_key, non_standard};
use super::{NULL_VERSION, Store};
use crate::error::{Error, Result};

/// DeleteObjects takes at most this many keys per request.
const DELETE_BATCH: usize = 1000;

/// One version as ListObjectVersions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    /// `"null"` for an object written before versioning was enabled.
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub last_modified: DateTime<Utc>,
    pub size: u64,
    pub etag: Option<String>,
    /// `None` for STANDARD.
    pub storage_class: Option<String>,
}

/// A version S3 would not delete, and why (Object Lock retention or a
/// legal hold answers AccessDenied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub key: String,
    pub version_id: String,
    pub code: String,
    pub message: String,
}

fn time_of(stamp: Option<&aws_smithy_types::DateTime>) -> DateTime<Utc> {
    stamp
        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

impl Store {
    /// Every version under `prefix`, key by key in key order and newest
    /// first within a key, handed to `each` a page (1,000) at a time, so
    /// a bucket of millions of versions is never held.
    pub async fn list_versions_each(
        &self,
        prefix: &str,
        each: &mut (dyn FnMut(Version) -> Result<()> + Send),
    ) -> Result<()> {
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .encoding_type(EncodingType::Url)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|err| Error::s3("ListObjectVersions", &self.bucket, prefix, err))?;
            self.count("ListObjectVersions");
            let encoded = page.encoding_type() == Some(&EncodingType::Url);
            let key_of = |key: &str| match encoded {
                true => decode_listed_key(key),
                false => key.to_owned(),
            };
            let versions = page.versions().iter().filter_map(|v| {
                Some(Version {
                    key: key_of(v.key()?),
                    version_id: v.version_id().unwrap_or(NULL_VERSION).to_owned(),
                    is_latest: v.is_latest() == Some(true),
                    delete_marker: false,
                    last_modified: time_of(v.last_modified()),
                    size: v.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: v.e_tag().map(str::to_owned),
                    storage_class: non_standard(v.storage_class().map(|c| c.as_str())),
                })
            });
            let markers = page.delete_markers().iter().filter_map(|m| {
                Some(Version {
                    key: key_of(m.key()?),
                    version_id: m.version_id().unwrap_or(NULL_VERSION).to_owned(),
                    is_latest: m.is_latest() == Some(true),
                    delete_marker: true,
                    last_modified: time_of(m.last_modified()),
                    size: 0,
                    etag: None,
                    storage_class: None,
                })
            });
            // S3 sends versions and delete markers in two lists; together
            // they are a key's history, the latest first.
            let mut entries: Vec<Version> = versions.chain(markers).collect();
            entries.sort_by(|a, b| {
                (
                    a.key.as_str(),
                    !a.is_latest,
                    std::cmp::Reverse(a.last_modified),
                )
                    .cmp(&(
                        b.key.as_str(),
                        !b.is_latest,
                        std::cmp::Reverse(b.last_modified),
                    ))
            });
            for entry in entries {
                each(entry)?;
            }
            if page.is_truncated() != Some(true) {
                return Ok(());
            }
            // S3 encodes the marker as it encodes the keys; it wants it back
            // decoded, or a page that ends on a key with a space, '+' or a
            // non-ASCII character skips keys or fails.
            key_marker = page.next_key_marker().map(key_of);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(());
            }
        }
    }

    /// Every version under `prefix` (delete markers left out): what a
    /// pinned manifest needs to be checked without a HEAD.
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut listed = Vec::new();
        self.list_versions_each(prefix, &mut |version| {
            if !version.delete_marker {
                listed.push(Listed {
                    key: version.key,
                    etag: version.etag,
                    size: Some(version.size),
                    version_id: Some(version.version_id),
                    storage_class: version.storage_class,
                });
            }
            Ok(())
        })
        .await?;
        Ok(listed)
    }

    /// Deletes each `(key, version id)` for good, 1,000 per request; what
    /// S3 refused comes back (a version under Object Lock, say). A version
    /// that is already gone counts as deleted.
    pub async fn delete_versions(&self, versions: &[(String, String)]) -> Result<Vec<Refused>> {
        let mut refused = Vec::new();
        for batch in versions.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|(key, version)| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .version_id(version)
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|err| Error::Config(format!("a version to delete: {err}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|err| Error::Config(format!("a batch to delete: {err}")))?;
            let first = batch.first().map_or("", |(key, _)| key.as_str());
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|err| Error::s3("DeleteObjects", &self.bucket, first, err))?;
            self.count("DeleteObjects");
            refused.extend(out.errors().iter().map(|e| Refused {
                key: e.key().unwrap_or_default().to_owned(),
                version_id: e.version_id().unwrap_or_default().to_owned(),
                code: e.code().unwrap_or_default().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            }));
        }
        Ok(refused)
    }

    /// Hides `key` behind a delete marker: its versions stay, and a
    /// restore by version id still reads them.
    pub async fn hide(&self, key: &str) -> Result<()> {
        self.count("DeleteObject");
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| Error::s3("DeleteObject", &self.bucket, key, err))?;
        Ok(())
    }
}
