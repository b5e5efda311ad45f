//! What S3 answers about one object: a HEAD, a write, a GET.

use std::collections::HashMap;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};

use super::encryption::Encryption;
use super::{FACTS_METADATA, MD5_METADATA, SHA256_METADATA, SNAPSHOT_METADATA};
use crate::error::{Error, Result};
use crate::trust::{SIGNATURE_METADATA, SIGNING_KEY_METADATA, Signature};

/// The encryption an S3 answer reports. S3's output types share these
/// accessors but no trait, hence a macro; `no_sse_c` is for the answers that
/// cannot name a customer key (CompleteMultipartUpload).
macro_rules! reported_encryption {
    ($out:expr) => {
        $crate::store::object::reported_encryption!(@ $out, $out.sse_customer_algorithm())
    };
    ($out:expr, no_sse_c) => {
        $crate::store::object::reported_encryption!(@ $out, None)
    };
    (@ $out:expr, $customer:expr) => {
        $crate::store::Encryption::reported(
            $out.server_side_encryption(),
            $out.ssekms_key_id(),
            $out.bucket_key_enabled(),
            $customer,
        )
    };
}

/// What a write's answer says was stored (see [`reported_encryption`]).
macro_rules! stored_by {
    ($out:expr $(, $no_sse_c:ident)?) => {
        $crate::store::Stored {
            etag: $out.e_tag().map(str::to_owned),
            version_id: $crate::store::object::version_of($out.version_id()),
            encryption: $crate::store::object::reported_encryption!($out $(, $no_sse_c)?),
        }
    };
}

pub(super) use {reported_encryption, stored_by};

/// The version id of an object written while its bucket was unversioned.
pub const NULL_VERSION: &str = "null";

/// A version id as S3 reports it. "null" is a real version: an object
/// written while the bucket was unversioned, which GetObject still returns
/// by that id once newer versions exist.
pub(super) fn version_of(reported: Option<&str>) -> Option<String> {
    reported.map(str::to_owned)
}

/// An object as HeadObject describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Object {
    /// The MD5 this tool recorded at upload time, if any.
    pub md5: Option<String>,
    /// Opaque version token; not an MD5 under SSE-KMS or multipart.
    pub etag: Option<String>,
    pub size: Option<i64>,
    /// The SHA-256 this tool recorded for a manifest.
    pub sha256: Option<String>,
    /// What a manifest's header says of its snapshot ([`SNAPSHOT_METADATA`]).
    pub snapshot: Option<String>,
    /// A manifest's signature, if one is kept with it.
    pub signature: Option<Signature>,
    /// What a snapshot listing shows of a manifest ([`FACTS_METADATA`]).
    pub facts: Option<String>,
    /// The current version's id, on a versioned bucket.
    pub version_id: Option<String>,
    /// The encryption S3 reports; `None` where it was not asked (a listing).
    pub encryption: Option<Encryption>,
    /// `None` for STANDARD (S3 names no other class in a HEAD).
    pub storage_class: Option<String>,
    /// Intelligent-Tiering's archive tier (`x-amz-archive-status`), if any.
    pub archive_status: Option<String>,
    /// Whether a RestoreObject has made an archived object readable
    /// (`x-amz-restore: ongoing-request="false", ...`).
    pub thawed: bool,
}

/// Classes whose objects GetObject refuses (`InvalidObjectState`) until a
/// RestoreObject has thawed them (S3 User Guide, "Restoring an archived
/// object"). GLACIER_IR is read directly, so it is not one of them.
const ARCHIVED_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// Whether a listed class may hold an object GetObject refuses: the archive
/// classes, and Intelligent-Tiering, whose archive tiers only a HEAD shows.
pub fn may_be_archived(storage_class: Option<&str>) -> bool {
    storage_class.is_some_and(|c| ARCHIVED_CLASSES.contains(&c) || c == "INTELLIGENT_TIERING")
}

impl Object {
    pub(super) fn from_head(out: &HeadObjectOutput) -> Self {
        let meta = |name| {
            out.metadata()
                .and_then(|m| m.get(name))
                .map(|v| v.to_ascii_lowercase())
        };
        Object {
            md5: meta(MD5_METADATA),
            sha256: meta(SHA256_METADATA),
            snapshot: meta(SNAPSHOT_METADATA),
            signature: signature_of(out.metadata()),
            facts: meta(FACTS_METADATA),
            etag: out.e_tag().map(str::to_owned),
            size: out.content_length(),
            version_id: version_of(out.version_id()),
            encryption: Some(reported_encryption!(out)),
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
            archive_status: out.archive_status().map(|s| s.as_str().to_owned()),
            thawed: out
                .restore()
                .is_some_and(|r| r.contains("ongoing-request=\"false\"")),
        }
    }

    /// Where the object is archived when GetObject would refuse it now: its
    /// class, or Intelligent-Tiering's archive tier. `None` when it is
    /// readable, a thawed copy included.
    pub fn archived(&self) -> Option<String> {
        if self.thawed {
            return None;
        }
        let class = self.storage_class.as_deref()?;
        if ARCHIVED_CLASSES.contains(&class) {
            return Some(class.to_owned());
        }
        self.archive_status
            .as_deref()
            .map(|tier| format!("{class} {tier}"))
    }
}

/// What S3 answered for a write: the new object's ETag (an opaque version
/// token), on a versioned bucket its version id, and its encryption.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub encryption: Encryption,
}

impl From<Object> for Stored {
    fn from(object: Object) -> Self {
        Stored {
            etag: object.etag,
            version_id: object.version_id,
            encryption: object.encryption.unwrap_or_default(),
        }
    }
}

/// An object as GetObject returned it; the body is still streaming.
#[derive(Debug)]
pub struct Fetched {
    pub body: ByteStream,
    /// The SHA-256 this tool recorded for a manifest (`x-amz-meta-sha256`).
    pub sha256: Option<String>,
    /// A manifest's signature, if one is kept with it.
    pub signature: Option<Signature>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// The KMS key S3 named for the object, if it is SSE-KMS.
    pub kms_key_id: Option<String>,
    /// When S3 stored the object, by S3's clock (whole seconds).
    pub last_modified: Option<DateTime<Utc>>,
    /// What a snapshot listing shows of a manifest ([`FACTS_METADATA`]).
    pub facts: Option<String>,
    /// The body's length, as S3 gave it.
    pub size: Option<u64>,
    /// The whole object's length: the body's, or for a ranged GET what its
    /// Content-Range says.
    pub whole: Option<u64>,
    bucket: String,
    key: String,
}

/// A small object read whole: what it was read as, readable again without
/// another request (a paged snapshot's object, judged, then read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    bytes: Vec<u8>,
    sha256: Option<String>,
    signature: Option<Signature>,
    etag: Option<String>,
    version_id: Option<String>,
    kms_key_id: Option<String>,
    last_modified: Option<DateTime<Utc>>,
    facts: Option<String>,
    bucket: String,
    key: String,
}

impl Kept {
    /// The object again, as it was fetched.
    pub fn fetched(&self) -> Fetched {
        Fetched {
            body: ByteStream::from(self.bytes.clone()),
            sha256: self.sha256.clone(),
            signature: self.signature.clone(),
            etag: self.etag.clone(),
            version_id: self.version_id.clone(),
            kms_key_id: self.kms_key_id.clone(),
            last_modified: self.last_modified,
            facts: self.facts.clone(),
            size: Some(self.bytes.len() as u64),
            whole: Some(self.bytes.len() as u64),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
        }
    }

    /// Whether this is what is stored at `key`.
    pub fn is_of(&self, key: &str) -> bool {
        self.key == key
    }
}

impl Fetched {
    pub(super) fn from_get(bucket: &str, key: &str, out: GetObjectOutput) -> Self {
        Fetched {
            sha256: out
                .metadata()
                .and_then(|m| m.get(SHA256_METADATA))
                .map(|v| v.to_ascii_lowercase()),
            signature: signature_of(out.metadata()),
            etag: out.e_tag().map(str::to_owned),
            version_id: version_of(out.version_id()),
            kms_key_id: out.ssekms_key_id().map(str::to_owned),
            last_modified: out.last_modified().and_then(to_chrono),
            facts: out
                .metadata()
                .and_then(|m| m.get(FACTS_METADATA))
                .map(|v| v.to_ascii_lowercase()),
            size: out.content_length().and_then(|n| u64::try_from(n).ok()),
            whole: match out.content_range() {
                // `bytes <first>-<last>/<length>`
                Some(range) => range.rsplit_once('/').and_then(|(_, n)| n.parse().ok()),
                None => out.content_length().and_then(|n| u64::try_from(n).ok()),
            },
            body: out.body,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }

    /// Why the object is not `size` bytes long, as its answer says; `None`
    /// when it is. A range of an object that grew or shrank must not pass
    /// for the recorded content.
    pub fn length_differs(&self, size: u64) -> Option<String> {
        match self.whole {
            Some(whole) if whole == size => None,
            Some(whole) => Some(format!(
                "the object has {whole} bytes; the manifest says {size}"
            )),
            None => Some(format!(
                "S3 did not say the object's length; the manifest says {size}"
            )),
        }
    }

    /// The object read whole and kept, when S3 says it is at most `limit`
    /// bytes; else the object itself, unread.
    pub async fn keep_within(self, limit: u64) -> Result<std::result::Result<Kept, Fetched>> {
        if self.size.is_none_or(|size| size > limit) {
            return Ok(Err(self));
        }
        let bytes = collect(self.body, &self.bucket, &self.key).await?;
        Ok(Ok(Kept {
            bytes,
            sha256: self.sha256,
            signature: self.signature,
            etag: self.etag,
            version_id: self.version_id,
            kms_key_id: self.kms_key_id,
            last_modified: self.last_modified,
            facts: self.facts,
            bucket: self.bucket,
            key: self.key,
        }))
    }

    /// The whole body in memory: for small objects only (the lock).
    pub async fn bytes(self) -> Result<Vec<u8>> {
        collect(self.body, &self.bucket, &self.key).await
    }

    /// The body as a blocking reader, for a parser on a blocking thread.
    pub fn into_blocking_read(self) -> impl std::io::Read + Send {
        tokio_util::io::SyncIoBridge::new(self.body.into_async_read())
    }
}

/// A GetObject body, whole.
async fn collect(body: ByteStream, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let collected = body
        .collect()
        .await
        .map_err(|err| Error::s3_detail("GetObject", bucket, key, err))?;
    Ok(collected.to_vec())
}

/// The signature in an object's user metadata, as stored (base64 is
/// case-sensitive).
fn signature_of(metadata: Option<&HashMap<String, String>>) -> Option<Signature> {
    let get = |name| metadata.and_then(|m| m.get(name)).map(String::as_str);
    Signature::from_metadata(get(SIGNATURE_METADATA), get(SIGNING_KEY_METADATA))
}

fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// An HTTP `Date` header's time.
pub(super) fn http_date(value: &str) -> Option<DateTime<Utc>> {
    let parsed =
        aws_smithy_types::DateTime::from_str(value, aws_smithy_types::date_time::Format::HttpDate)
            .ok()?;
    to_chrono(&parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let time = http_date("Sun, 22 Nov 2026 23:40:05 GMT").unwrap();
        assert_eq!(time.to_rfc3339(), "2026-11-22T23:40:05+00:00");
        assert_eq!(http_date("yesterday"), None);
    }
}
