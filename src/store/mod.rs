//! The only code that talks to S3.
//!
//! Every write carries the same SSE-KMS settings, and every response that
//! echoes encryption is checked against them: a bucket or proxy that stores an
//! object differently makes that write fail instead of passing silently.
//! Results are typed: each says the version id and the encryption S3 reported.

pub mod bucket;
mod bucket_lock;
mod client;
mod copy;
pub mod encryption;
mod etag;
mod key_state;
pub mod keys;
mod listing;
pub mod multipart;
mod object;
mod pages;
mod ranges;
mod replication_rules;
mod thaw;
mod versions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::{Error, Result};
use crate::local::hash::Md5Digest;
use crate::local::page_cache::PageCache;
use crate::trust::{SIGNATURE_METADATA, SIGNING_KEY_METADATA, Signature, Trust};

pub use bucket_lock::ObjectLock;
pub use client::{
    custom_endpoint, endpoint_url, kms_client_from, s3_and_kms_clients, s3_client_from,
    s3_client_in, shared_config,
};
pub use copy::CopySource;
pub use encryption::{Encryption, Finding};
pub use etag::Etag;
pub use key_state::UnusableKey;
pub use listing::{KeyRange, Listed, decode_listed_key};
use object::stored_by;
pub use object::{Fetched, Kept, NULL_VERSION, Object, Stored, may_be_archived};
pub use ranges::Ranges;
pub use thaw::Thaw;
pub use versions::{Refused, Version};

/// The condition of a write.
#[derive(Debug, Clone, Copy)]
pub enum WriteIf<'a> {
    Always,
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if the object's ETag is still this one (`If-Match`).
    Matches(&'a str),
}

/// Runs one request on its own task. Hundreds of files are in flight from
/// one stream, which a single task polls; signing and sending each request
/// on a task of its own lets every runtime thread share that work. Dropping
/// the returned future aborts the request, as dropping the request would.
async fn on_own_task<F>(request: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(request)).await?)
}

/// A file's bytes as a request body, read from disk as they are sent.
pub async fn file_body(path: &std::path::Path) -> Result<ByteStream> {
    ByteStream::from_path(path)
        .await
        .map_err(|err| Error::io("read", path, std::io::Error::other(err)))
}

/// User metadata key holding the hex MD5 of the content (`x-amz-meta-md5checksum`).
pub const MD5_METADATA: &str = "md5checksum";
/// User metadata key holding a manifest's hex SHA-256 (`x-amz-meta-sha256`):
/// what a local copy must match to be trusted.
pub const SHA256_METADATA: &str = "sha256";

/// User metadata key holding what a manifest's header says of its snapshot
/// (`x-amz-meta-snapshot`): whether it may stand for "latest", found by a
/// HEAD instead of reading a document of hundreds of megabytes.
pub const SNAPSHOT_METADATA: &str = "snapshot";

/// User metadata key holding a manifest's kind, status, files and bytes
/// (`x-amz-meta-facts`): what `snapshots` lists without reading a body.
pub const FACTS_METADATA: &str = "facts";

/// What a PUT carries besides the body and its MD5.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutExtras<'a> {
    pub content_type: Option<&'a str>,
    /// The body's hex SHA-256, kept as [`SHA256_METADATA`].
    pub sha256: Option<&'a str>,
    /// A manifest's state, kept as [`SNAPSHOT_METADATA`].
    pub snapshot: Option<&'a str>,
    /// A manifest's signature, kept as [`SIGNATURE_METADATA`] and
    /// [`SIGNING_KEY_METADATA`].
    pub signature: Option<&'a Signature>,
    /// What a snapshot listing shows of a manifest, kept as [`FACTS_METADATA`].
    pub facts: Option<&'a str>,
}

impl PutExtras<'_> {
    pub const JSON: PutExtras<'static> = PutExtras {
        content_type: Some("application/json"),
        sha256: None,
        snapshot: None,
        signature: None,
        facts: None,
    };
}

/// The bucket and the KMS key every request uses, over one SDK client.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    bucket: String,
    kms_key_id: String,
    /// Requests sent, by operation (a retried request counts once): what a
    /// command reports of its cost.
    requests: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    /// The key ARN S3 named for a write under a configured alias.
    learned_key: Arc<OnceLock<String>>,
    /// Objects above this size are copied part by part (S3's CopyObject limit).
    max_single_copy: u64,
    /// Asked only for keys' state ([`Store::unusable_keys`]).
    kms: Option<aws_sdk_kms::Client>,
    /// How manifests written here are signed, and checked when read.
    trust: Trust,
    /// The S3 endpoint given on the command line, if any: named when it
    /// cannot be reached.
    endpoint: Option<String>,
    /// Snapshot pages kept on local disk for this bucket and prefix.
    page_cache: Option<Arc<PageCache>>,
}

impl Store {
    pub fn new(client: Client, bucket: impl Into<String>, kms_key_id: impl Into<String>) -> Self {
        Store {
            client,
            bucket: bucket.into(),
            kms_key_id: kms_key_id.into(),
            requests: Arc::default(),
            learned_key: Arc::default(),
            max_single_copy: multipart::MAX_SINGLE_PUT,
            kms: None,
            trust: Trust::default(),
            endpoint: None,
            page_cache: None,
        }
    }

    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Whether the bucket keeps older versions (GetBucketVersioning).
    pub async fn versioning_enabled(&self) -> Result<bool> {
        bucket::BucketAdmin::new(self.client.clone(), &self.bucket)
            .versioning_enabled()
            .await
    }

    /// The S3 endpoint requests go to, where it is not AWS's own.
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint.clone().or_else(client::endpoint_url)
    }

    /// Signs the manifests it writes, and checks those it reads, as `trust` says.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The KMS client that tells whether the keys of the objects can still
    /// decrypt them.
    pub fn with_kms(mut self, kms: aws_sdk_kms::Client) -> Self {
        self.kms = Some(kms);
        self
    }

    /// Copies objects above `bytes` part by part: lets a test show the
    /// multipart copy without a 5 GiB object.
    #[doc(hidden)]
    pub fn with_max_single_copy(mut self, bytes: u64) -> Self {
        self.max_single_copy = bytes;
        self
    }

    /// The same client, key and request counts over another bucket (an
    /// inventory report's destination).
    pub fn for_bucket(&self, bucket: &str) -> Store {
        Store {
            bucket: bucket.to_owned(),
            page_cache: None,
            ..self.clone()
        }
    }

    /// Requests sent so far through this store and its clones, by operation.
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests sent since `before` (an earlier [`Store::requests`]), by operation.
    pub fn requests_since(&self, before: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
        self.requests()
            .into_iter()
            .map(|(op, n)| (op.to_owned(), n - before.get(op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn count(&self, operation: &'static str) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(operation).or_default() += 1;
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn kms_key_id(&self) -> &str {
        &self.kms_key_id
    }

    /// The configured key, as the ARN S3 named for it once a write under a
    /// configured alias has told.
    pub fn key_arn(&self) -> &str {
        self.learned_key.get().map_or(&self.kms_key_id, |k| k)
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// `None` when the key does not exist; any other failure is an error.
    pub async fn head(&self, key: &str) -> Result<Option<Object>> {
        self.head_at(key, None).await
    }

    /// [`Store::head`] of one version (`None`: the current one). A missing
    /// version is `None` too.
    pub async fn head_at(&self, key: &str, version: Option<&str>) -> Result<Option<Object>> {
        let object = self.head_once(key, version).await?;
        if object.is_some() || version != Some(NULL_VERSION) {
            return Ok(object);
        }
        // Some servers (moto) refuse versionId=null on an unversioned
        // bucket, where GetObject takes it. The current object is the
        // "null" version when it reports no other.
        let current = self.head_once(key, None).await?;
        Ok(current.filter(|o| o.version_id.as_deref().is_none_or(|v| v == NULL_VERSION)))
    }

    async fn head_once(&self, key: &str, version: Option<&str>) -> Result<Option<Object>> {
        self.count("HeadObject");
        let response = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        match response {
            Ok(out) => Ok(Some(Object::from_head(&out))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            // A version id that names no version: 400 on HEAD, which has no
            // body; one that names a delete marker: 405 (S3 API reference,
            // HeadObject). Neither holds an object.
            Err(err)
                if version.is_some()
                    && err
                        .raw_response()
                        .is_some_and(|r| matches!(r.status().as_u16(), 400 | 405)) =>
            {
                Ok(None)
            }
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
        self.count("PutObject");
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
        if let Some(snapshot) = extras.snapshot {
            request = request.metadata(SNAPSHOT_METADATA, snapshot);
        }
        if let Some(facts) = extras.facts {
            request = request.metadata(FACTS_METADATA, facts);
        }
        if let Some(signature) = extras.signature {
            request = request
                .metadata(SIGNATURE_METADATA, &signature.signature)
                .metadata(SIGNING_KEY_METADATA, &signature.key_arn);
        }
        request = match condition {
            WriteIf::Always => request,
            WriteIf::Absent => request.if_none_match("*"),
            WriteIf::Matches(etag) => request.if_match(etag),
        };
        let out = on_own_task(request.send())
            .await?
            .map_err(|err| self.conditional_error("PutObject", key, err))?;
        let stored = stored_by!(out);
        self.check_encryption(key, &stored.encryption)?;
        Ok(stored)
    }

    /// Streams the object's body; `None` when the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        self.get_at(key, None).await
    }

    /// [`Store::get`] of one version (`None`: the current one); a missing
    /// version is `None` too.
    pub async fn get_at(&self, key: &str, version: Option<&str>) -> Result<Option<Fetched>> {
        self.get_object(key, version, None).await
    }

    /// Bytes `range` (first to last, inclusive) of one version of `key`.
    pub async fn get_range(
        &self,
        key: &str,
        version: Option<&str>,
        range: (u64, u64),
    ) -> Result<Option<Fetched>> {
        let (first, last) = range;
        self.get_object(key, version, Some(format!("bytes={first}-{last}")))
            .await
    }

    async fn get_object(
        &self,
        key: &str,
        version: Option<&str>,
        range: Option<String>,
    ) -> Result<Option<Fetched>> {
        self.count("GetObject");
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .set_range(range)
            .send()
            .await;
        match response {
            Ok(out) => Ok(Some(Fetched::from_get(&self.bucket, key, out))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err)
                if version.is_some()
                    && err.as_service_error().and_then(|e| e.code()) == Some("NoSuchVersion") =>
            {
                Ok(None)
            }
            Err(err) => Err(Error::s3("GetObject", &self.bucket, key, err)),
        }
    }

    /// Deletes `key` only while its ETag is still `etag`.
    pub async fn delete_if_matches(&self, key: &str, etag: &str) -> Result<()> {
        self.count("DeleteObject");
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
        E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    {
        match err.raw_response().map(|r| r.status().as_u16()) {
            Some(412 | 409) => Error::PreconditionFailed {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                server_time: err
                    .raw_response()
                    .and_then(|r| r.headers().get("date"))
                    .and_then(object::http_date),
            },
            _ => Error::s3(operation, &self.bucket, key, err),
        }
    }
}
