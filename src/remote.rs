//! The only module that talks to S3.
//!
//! Every write carries the same SSE-KMS settings, and every response that
//! echoes encryption is checked against them: a bucket or proxy that stores an
//! object differently makes that upload fail instead of passing silently.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, retry::RetryConfig};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, EncodingType, ServerSideEncryption,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::hash::Md5Digest;

/// The condition of a write.
#[derive(Debug, Clone, Copy)]
pub enum WriteIf<'a> {
    Always,
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if the object's ETag is still this one (`If-Match`).
    Matches(&'a str),
}

/// A file's bytes as a request body, read from disk as they are sent.
pub async fn file_body(path: &std::path::Path) -> Result<ByteStream> {
    ByteStream::from_path(path).await.map_err(|err| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source: std::io::Error::other(err),
    })
}

/// User metadata key holding the hex MD5 of the content (`x-amz-meta-md5checksum`).
pub const MD5_METADATA: &str = "md5checksum";
/// User metadata key holding a manifest's hex SHA-256 (`x-amz-meta-sha256`):
/// what a local copy must match to be trusted.
pub const SHA256_METADATA: &str = "sha256";

/// What a PUT carries besides the body and its MD5.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutExtras<'a> {
    pub content_type: Option<&'a str>,
    /// The body's hex SHA-256, kept as [`SHA256_METADATA`].
    pub sha256: Option<&'a str>,
}

impl PutExtras<'_> {
    pub const JSON: PutExtras<'static> = PutExtras {
        content_type: Some("application/json"),
        sha256: None,
    };
}

/// Builds the S3 client once per process from the standard AWS configuration.
///
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` select another endpoint; with one
/// set, requests use path-style addressing so local emulators work.
pub async fn s3_client(max_attempts: u32) -> Client {
    let shared = aws_config::load_from_env().await;
    let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let retry = RetryConfig::standard().with_max_attempts(max_attempts);
    s3_client_from(&shared, custom_endpoint, retry)
}

/// The S3 client for a given shared configuration. Retries use the SDK's
/// standard mode: exponential backoff with jitter on throttling, 5xx and
/// connection errors. Bodies are in memory, so a retry never re-reads a file.
pub fn s3_client_from(
    shared: &aws_config::SdkConfig,
    path_style: bool,
    retry: RetryConfig,
) -> Client {
    let config = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(path_style)
        .retry_config(retry)
        // Every upload already carries a Content-MD5 computed here.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// What S3 holds for a key, as far as the skip decision needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteObject {
    /// The MD5 this tool recorded at upload time, if any.
    pub md5: Option<String>,
    /// Opaque version token; not an MD5 under SSE-KMS or multipart.
    pub etag: Option<String>,
    pub size: Option<i64>,
    /// The SHA-256 this tool recorded for a manifest.
    pub sha256: Option<String>,
    /// The current version's id, on a versioned bucket.
    pub version_id: Option<String>,
    /// The encryption S3 reports; `None` where it was not asked (a listing).
    pub encryption: Option<Encryption>,
}

/// What S3 answered for a write: the new object's ETag (an opaque version
/// token) and, on a versioned bucket, its version id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

impl From<RemoteObject> for Stored {
    fn from(object: RemoteObject) -> Self {
        Stored {
            etag: object.etag,
            version_id: object.version_id,
        }
    }
}

/// Server-side encryption as S3 reports it for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    pub algorithm: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
}

/// Listing requests in flight at once.
const LIST_CONCURRENCY: usize = 8;

/// S3 encodes listed keys like a form: a space is '+', a '+' is "%2B".
fn decode_listed_key(key: &str) -> String {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .unwrap_or_else(|_| key.to_owned())
}

/// A slice of the key space: the keys after `after` (if any), up to and
/// including `until` (if any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub after: Option<String>,
    pub until: Option<String>,
}

/// One object as ListObjectsV2 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: Option<String>,
    pub size: Option<u64>,
}

/// A whole object as GetObject returned it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub etag: Option<String>,
    /// When S3 stored the object, by S3's clock (whole seconds).
    pub last_modified: Option<DateTime<Utc>>,
}

fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// An HTTP `Date` header's time.
fn http_date(value: &str) -> Option<DateTime<Utc>> {
    let parsed =
        aws_smithy_types::DateTime::from_str(value, aws_smithy_types::date_time::Format::HttpDate)
            .ok()?;
    to_chrono(&parsed)
}

/// The bucket and encryption every request of a run uses.
#[derive(Debug, Clone)]
pub struct Remote {
    client: Client,
    bucket: String,
    kms_key_id: String,
}

impl Remote {
    pub fn new(client: Client, bucket: impl Into<String>, kms_key_id: impl Into<String>) -> Self {
        Remote {
            client,
            bucket: bucket.into(),
            kms_key_id: kms_key_id.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn kms_key_id(&self) -> &str {
        &self.kms_key_id
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// `None` when the key does not exist; any other failure is an error.
    pub async fn head(&self, key: &str) -> Result<Option<RemoteObject>> {
        let response = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match response {
            Ok(out) => {
                let meta = |name| {
                    out.metadata()
                        .and_then(|m| m.get(name))
                        .map(|v| v.to_ascii_lowercase())
                };
                Ok(Some(RemoteObject {
                    md5: meta(MD5_METADATA),
                    sha256: meta(SHA256_METADATA),
                    etag: out.e_tag().map(str::to_owned),
                    size: out.content_length(),
                    version_id: out.version_id().map(str::to_owned),
                    encryption: Some(Encryption {
                        algorithm: out.server_side_encryption().cloned(),
                        kms_key_id: out.ssekms_key_id().map(str::to_owned),
                    }),
                }))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(Error::s3("HeadObject", &self.bucket, key, err)),
        }
    }

    /// A single PUT of `body`; returns what S3 answered. A write whose
    /// condition does not hold fails with [`Error::PreconditionFailed`].
    pub async fn put(
        &self,
        key: &str,
        body: impl Into<ByteStream>,
        md5: Md5Digest,
        extras: PutExtras<'_>,
        condition: WriteIf<'_>,
    ) -> Result<Stored> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .content_md5(md5.base64())
            .metadata(MD5_METADATA, md5.hex())
            .set_content_type(extras.content_type.map(str::to_owned))
            .body(body.into());
        if let Some(sha256) = extras.sha256 {
            request = request.metadata(SHA256_METADATA, sha256);
        }
        request = match condition {
            WriteIf::Always => request,
            WriteIf::Absent => request.if_none_match("*"),
            WriteIf::Matches(etag) => request.if_match(etag),
        };
        let out = request
            .send()
            .await
            .map_err(|err| self.conditional_error("PutObject", key, err))?;
        self.check_encryption(key, out.server_side_encryption(), out.ssekms_key_id())?;
        Ok(Stored {
            etag: out.e_tag().map(str::to_owned),
            version_id: out.version_id().map(str::to_owned),
        })
    }

    /// Starts a multipart upload; the whole-file MD5 goes into the metadata.
    pub async fn create_multipart(&self, key: &str, md5: Md5Digest) -> Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .metadata(MD5_METADATA, md5.hex())
            .send()
            .await
            .map_err(|err| Error::s3("CreateMultipartUpload", &self.bucket, key, err))?;
        self.check_encryption(key, out.server_side_encryption(), out.ssekms_key_id())?;
        out.upload_id().map(str::to_owned).ok_or_else(|| Error::S3 {
            operation: "CreateMultipartUpload",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            detail: "the response has no upload id".into(),
        })
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<CompletedPart> {
        let md5 = Md5Digest::of(&body);
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_md5(md5.base64())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| Error::s3("UploadPart", &self.bucket, key, err))?;
        Ok(CompletedPart::builder()
            .part_number(part_number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .build())
    }

    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Stored> {
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| Error::s3("CompleteMultipartUpload", &self.bucket, key, err))?;
        self.check_encryption(key, out.server_side_encryption(), out.ssekms_key_id())?;
        Ok(Stored {
            etag: out.e_tag().map(str::to_owned),
            version_id: out.version_id().map(str::to_owned),
        })
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|err| Error::s3("AbortMultipartUpload", &self.bucket, key, err))?;
        Ok(())
    }

    /// The objects under `prefix` in `ranges`, 1,000 per request; the ranges
    /// are listed at the same time.
    pub async fn list(&self, prefix: &str, ranges: &[KeyRange]) -> Result<Vec<Listed>> {
        let pages = ranges
            .iter()
            .map(|range| self.list_range(prefix, range.after.as_deref(), range.until.as_deref()));
        let listed: Vec<Vec<Listed>> = futures::stream::iter(pages)
            .buffered(LIST_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(listed.into_iter().flatten().collect())
    }

    /// The keys after `after` up to and including `until`. Keys are asked for
    /// URL-encoded, because XML cannot carry some characters a key may hold.
    async fn list_range(
        &self,
        prefix: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<Listed>> {
        let mut listed = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .encoding_type(EncodingType::Url)
                .set_start_after(after.map(str::to_owned))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|err| Error::s3("ListObjectsV2", &self.bucket, prefix, err))?;
            // Servers that ignore the request for encoding say so by not echoing it.
            let encoded = page.encoding_type() == Some(&EncodingType::Url);
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let key = if encoded {
                    decode_listed_key(key)
                } else {
                    key.to_owned()
                };
                if until.is_some_and(|end| key.as_str() > end) {
                    return Ok(listed);
                }
                listed.push(Listed {
                    key,
                    etag: object.e_tag().map(str::to_owned),
                    size: object.size().and_then(|s| u64::try_from(s).ok()),
                });
            }
            let reached_end =
                until.is_some_and(|end| listed.last().is_some_and(|l| l.key.as_str() >= end));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) && !reached_end => {
                    token = Some(next.to_owned())
                }
                _ => return Ok(listed),
            }
        }
    }

    /// The object's bytes, ETag and Last-Modified; `None` when the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match response {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => return Err(Error::s3("GetObject", &self.bucket, key, err)),
        };
        let etag = out.e_tag().map(str::to_owned);
        let last_modified = out.last_modified().and_then(to_chrono);
        let bytes = out.body.collect().await.map_err(|err| Error::S3 {
            operation: "GetObject",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            detail: err.to_string(),
        })?;
        Ok(Some(Fetched {
            body: bytes.to_vec(),
            etag,
            last_modified,
        }))
    }

    /// Deletes `key` only while its ETag is still `etag`.
    pub async fn delete_if_matches(&self, key: &str, etag: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await
            .map_err(|err| self.conditional_error("DeleteObject", key, err))?;
        Ok(())
    }

    /// 412 Precondition Failed and 409 ConditionalRequestConflict both mean
    /// another writer got there first.
    fn conditional_error<E>(
        &self,
        operation: &'static str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Error
    where
        E: std::error::Error + 'static,
    {
        match err.raw_response().map(|r| r.status().as_u16()) {
            Some(412 | 409) => Error::PreconditionFailed {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                server_time: err
                    .raw_response()
                    .and_then(|r| r.headers().get("date"))
                    .and_then(http_date),
            },
            _ => Error::s3(operation, &self.bucket, key, err),
        }
    }

    /// Fails unless `object` is reported stored under the configured key.
    pub fn check_stored_encryption(&self, key: &str, object: &RemoteObject) -> Result<()> {
        let encryption = object.encryption.as_ref();
        self.check_encryption(
            key,
            encryption.and_then(|e| e.algorithm.as_ref()),
            encryption.and_then(|e| e.kms_key_id.as_deref()),
        )
    }

    fn check_encryption(
        &self,
        key: &str,
        sse: Option<&ServerSideEncryption>,
        kms_key: Option<&str>,
    ) -> Result<()> {
        encryption_mismatch(&self.kms_key_id, sse, kms_key).map_or(Ok(()), |detail| {
            Err(Error::Encryption {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                detail,
            })
        })
    }
}

/// Describes how S3's echo differs from the configured SSE-KMS key, if it does.
pub fn encryption_mismatch(
    configured: &str,
    sse: Option<&ServerSideEncryption>,
    echoed_key: Option<&str>,
) -> Option<String> {
    match sse {
        Some(ServerSideEncryption::AwsKms) => {}
        Some(other) => {
            return Some(format!("stored with {} instead of aws:kms", other.as_str()));
        }
        None => return Some("S3 reported no server-side encryption".into()),
    }
    match echoed_key {
        Some(echoed) if same_key(configured, echoed) => None,
        // S3 echoes key ARNs; an alias cannot be resolved without KMS, so only
        // the encryption mode is verified for it.
        Some(_) if is_alias(configured) => None,
        Some(echoed) => Some(format!(
            "stored with KMS key {echoed} instead of {configured}"
        )),
        None => Some("S3 did not report which KMS key encrypted the object".into()),
    }
}

fn is_alias(id: &str) -> bool {
    id.starts_with("alias/") || id.contains(":alias/")
}

/// Key ids and key ARNs name the same key when the id is the ARN's last segment.
fn same_key(configured: &str, echoed: &str) -> bool {
    let id_of = |k: &str| k.rsplit_once(":key/").map_or(k, |(_, id)| id).to_owned();
    configured == echoed || id_of(configured) == id_of(echoed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn http_dates_parse() {
        let time = http_date("Sun, 22 Nov 2026 23:40:05 GMT").unwrap();
        assert_eq!(time.to_rfc3339(), "2026-11-22T23:40:05+00:00");
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn same_key_by_id_or_arn() {
        let kms = Some(&ServerSideEncryption::AwsKms);
        assert_eq!(encryption_mismatch(ARN, kms, Some(ARN)), None);
        assert_eq!(encryption_mismatch(ID, kms, Some(ARN)), None);
        assert_eq!(encryption_mismatch(ARN, kms, Some(ID)), None);
        assert_eq!(encryption_mismatch("alias/backup", kms, Some(ARN)), None);
    }

    #[test]
    fn other_key_or_encryption_is_a_mismatch() {
        let kms = Some(&ServerSideEncryption::AwsKms);
        let other = "arn:aws:kms:eu-west-1:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab";
        assert!(
            encryption_mismatch(ARN, kms, Some(other))
                .unwrap()
                .contains("instead of")
        );
        assert!(
            encryption_mismatch(ARN, Some(&ServerSideEncryption::Aes256), Some(ARN))
                .unwrap()
                .contains("AES256")
        );
        assert!(encryption_mismatch(ARN, None, None).is_some());
        assert!(encryption_mismatch(ARN, kms, None).is_some());
    }
}
