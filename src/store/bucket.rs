//! Bucket settings, for `replication`: versioning, default encryption,
//! public access, tags and the replication configuration of one bucket.
//!
//! Only "not configured" answers are absence; every other error, AccessDenied
//! included, is an error, so a setting that could not be read is never taken
//! for one that is not there (and then overwritten).

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

pub use super::replication_rules::{ExistingRule, ReplicationRule};
use crate::error::{Error, Result};

/// The settings of one bucket, over a client in the bucket's region.
#[derive(Debug, Clone)]
pub struct BucketAdmin {
    pub(super) client: Client,
    pub(super) bucket: String,
}

impl BucketAdmin {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        BucketAdmin {
            client,
            bucket: bucket.into(),
        }
    }

    pub(super) fn error<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        Error::s3(operation, &self.bucket, "", err)
    }

    /// The answer of a GET of a setting; `None` when S3 says, by the error
    /// code `absent`, that the setting is not configured.
    pub(super) fn setting<T, E>(
        &self,
        operation: &'static str,
        answer: std::result::Result<T, SdkError<E, HttpResponse>>,
        absent: &str,
    ) -> Result<Option<T>>
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        match answer {
            Ok(out) => Ok(Some(out)),
            Err(err) if err.as_service_error().and_then(|e| e.code()) == Some(absent) => Ok(None),
            Err(err) => Err(self.error(operation, err)),
        }
    }

    /// The bucket's region (S3 answers none for us-east-1, `EU` for eu-west-1).
    pub async fn region(&self) -> Result<String> {
        let out = self
            .client
            .get_bucket_location()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.error("GetBucketLocation", e))?;
        Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(region) => region.to_owned(),
        })
    }

    /// Whether the bucket exists; a bucket someone else owns (403) is an error.
    pub async fn exists(&self) -> Result<bool> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(false)
            }
            Err(err) => Err(self.error("HeadBucket", err)),
        }
    }

    /// Creates the bucket in `region`: us-east-1 takes no location constraint.
    /// Creates the bucket in `region`, with Object Lock when `locked` (it
    /// is then versioned by S3 itself).
    pub async fn create(&self, region: &str, locked: bool) -> Result<()> {
        let configuration = (region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build()
        });
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .set_create_bucket_configuration(configuration)
            .set_object_lock_enabled_for_bucket(locked.then_some(true))
            .send()
            .await
            .map_err(|e| self.error("CreateBucket", e))?;
        Ok(())
    }

    pub async fn versioning_enabled(&self) -> Result<bool> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.error("GetBucketVersioning", e))?;
        Ok(out.status() == Some(&BucketVersioningStatus::Enabled))
    }

    pub async fn enable_versioning(&self) -> Result<()> {
        let enabled = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(enabled)
            .send()
            .await
            .map_err(|e| self.error("PutBucketVersioning", e))?;
        Ok(())
    }

    pub async fn public_access_blocked(&self) -> Result<bool> {
        let answer = self
            .client
            .get_public_access_block()
            .bucket(&self.bucket)
            .send()
            .await;
        let out = self.setting(
            "GetPublicAccessBlock",
            answer,
            "NoSuchPublicAccessBlockConfiguration",
        )?;
        Ok(out
            .as_ref()
            .and_then(|o| o.public_access_block_configuration())
            .is_some_and(|c| {
                [
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                ]
                .iter()
                .all(|flag| *flag == Some(true))
            }))
    }

    pub async fn block_public_access(&self) -> Result<()> {
        let all = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        self.client
            .put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(all)
            .send()
            .await
            .map_err(|e| self.error("PutPublicAccessBlock", e))?;
        Ok(())
    }

    /// The default SSE-KMS key and whether the Bucket Key is on; `None` when
    /// the default encryption is not SSE-KMS.
    pub async fn default_kms_key(&self) -> Result<Option<(String, bool)>> {
        let answer = self
            .client
            .get_bucket_encryption()
            .bucket(&self.bucket)
            .send()
            .await;
        let out = self.setting(
            "GetBucketEncryption",
            answer,
            "ServerSideEncryptionConfigurationNotFoundError",
        )?;
        let rule = out
            .as_ref()
            .and_then(|o| o.server_side_encryption_configuration())
            .and_then(|c| c.rules().first());
        let default = rule.and_then(|r| r.apply_server_side_encryption_by_default());
        Ok(match default {
            Some(d) if d.sse_algorithm() == &ServerSideEncryption::AwsKms => Some((
                d.kms_master_key_id().unwrap_or_default().to_owned(),
                rule.and_then(|r| r.bucket_key_enabled()) == Some(true),
            )),
            _ => None,
        })
    }

    /// Default SSE-KMS under `key`, with a Bucket Key.
    pub async fn encrypt_by_default(&self, key: &str) -> Result<()> {
        let built = |err| Error::s3_detail("PutBucketEncryption", &self.bucket, "", err);
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .kms_master_key_id(key)
            .build()
            .map_err(built)?;
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .bucket_key_enabled(true)
            .build();
        let configuration = ServerSideEncryptionConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(built)?;
        self.client
            .put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(configuration)
            .send()
            .await
            .map_err(|e| self.error("PutBucketEncryption", e))?;
        Ok(())
    }

    pub async fn tags(&self) -> Result<BTreeMap<String, String>> {
        let answer = self
            .client
            .get_bucket_tagging()
            .bucket(&self.bucket)
            .send()
            .await;
        let out = self.setting("GetBucketTagging", answer, "NoSuchTagSet")?;
        Ok(out
            .iter()
            .flat_map(|o| o.tag_set())
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    /// Replaces the bucket's tags (PutBucketTagging sets the whole set).
    pub async fn put_tags(&self, tags: &BTreeMap<String, String>) -> Result<()> {
        let built = |err| Error::s3_detail("PutBucketTagging", &self.bucket, "", err);
        let set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(built))
            .collect::<Result<Vec<_>>>()?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(built)?;
        self.client
            .put_bucket_tagging()
            .bucket(&self.bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.error("PutBucketTagging", e))?;
        Ok(())
    }
}
