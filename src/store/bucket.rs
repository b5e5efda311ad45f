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
    AccessControlTranslation, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination,
    EncryptionConfiguration, OwnerOverride, PublicAccessBlockConfiguration,
    ReplicationConfiguration, ReplicationRule as SdkRule, ReplicationRuleFilter,
    ReplicationRuleStatus, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, SourceSelectionCriteria,
    SseKmsEncryptedObjects, SseKmsEncryptedObjectsStatus, StorageClass, Tag, Tagging,
    VersioningConfiguration,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde::Serialize;

use crate::error::{Error, Result};

/// One replication rule as this tool writes it: SSE-KMS objects opted in,
/// replicas under the named key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationRule {
    pub id: String,
    pub priority: i32,
    pub prefix: String,
    pub delete_markers: bool,
    /// The destination bucket's ARN.
    pub destination: String,
    pub storage_class: Option<String>,
    pub replica_kms_key_arn: String,
    /// The destination's account when it is another one: replicas are then
    /// owned by it.
    pub account: Option<String>,
}

/// What a bucket's replication configuration holds, as far as deciding
/// whose it is and whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRule {
    pub id: String,
    pub destination: String,
    pub enabled: bool,
}

/// The settings of one bucket, over a client in the bucket's region.
#[derive(Debug, Clone)]
pub struct BucketAdmin {
    client: Client,
    bucket: String,
}

impl BucketAdmin {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        BucketAdmin {
            client,
            bucket: bucket.into(),
        }
    }

    fn error<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        Error::s3(operation, &self.bucket, "", err)
    }

    /// The answer of a GET of a setting; `None` when S3 says, by the error
    /// code `absent`, that the setting is not configured.
    fn setting<T, E>(
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
    pub async fn create(&self, region: &str) -> Result<()> {
        let configuration = (region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build()
        });
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .set_create_bucket_configuration(configuration)
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

    /// The bucket's replication role and rules; `None` when it has none.
    pub async fn replication(&self) -> Result<Option<(String, Vec<ExistingRule>)>> {
        let answer = self
            .client
            .get_bucket_replication()
            .bucket(&self.bucket)
            .send()
            .await;
        let out = self.setting(
            "GetBucketReplication",
            answer,
            "ReplicationConfigurationNotFoundError",
        )?;
        let Some(configuration) = out.as_ref().and_then(|o| o.replication_configuration()) else {
            return Ok(None);
        };
        let rules = configuration
            .rules()
            .iter()
            .map(|rule| ExistingRule {
                id: rule.id().unwrap_or_default().to_owned(),
                destination: rule
                    .destination()
                    .map(|d| d.bucket().to_owned())
                    .unwrap_or_default(),
                enabled: rule.status() == &ReplicationRuleStatus::Enabled,
            })
            .collect();
        Ok(Some((configuration.role().to_owned(), rules)))
    }

    pub async fn put_replication(&self, role: &str, rules: &[ReplicationRule]) -> Result<()> {
        let built = |err| Error::s3_detail("PutBucketReplication", &self.bucket, "", err);
        let rules = rules
            .iter()
            .map(|rule| to_sdk(rule).map_err(built))
            .collect::<Result<Vec<_>>>()?;
        let configuration = ReplicationConfiguration::builder()
            .role(role)
            .set_rules(Some(rules))
            .build()
            .map_err(built)?;
        self.client
            .put_bucket_replication()
            .bucket(&self.bucket)
            .replication_configuration(configuration)
            .send()
            .await
            .map_err(|e| self.error("PutBucketReplication", e))?;
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

fn to_sdk(rule: &ReplicationRule) -> Result<SdkRule, aws_sdk_s3::error::BuildError> {
    let status = |on| {
        if on {
            DeleteMarkerReplicationStatus::Enabled
        } else {
            DeleteMarkerReplicationStatus::Disabled
        }
    };
    let owner = rule
        .account
        .as_ref()
        .map(|_| {
            AccessControlTranslation::builder()
                .owner(OwnerOverride::Destination)
                .build()
        })
        .transpose()?;
    let destination = Destination::builder()
        .bucket(&rule.destination)
        .set_account(rule.account.clone())
        .set_access_control_translation(owner)
        .set_storage_class(rule.storage_class.as_deref().map(StorageClass::from))
        .encryption_configuration(
            EncryptionConfiguration::builder()
                .replica_kms_key_id(&rule.replica_kms_key_arn)
                .build(),
        )
        .build()?;
    let kms_objects = SseKmsEncryptedObjects::builder()
        .status(SseKmsEncryptedObjectsStatus::Enabled)
        .build()?;
    SdkRule::builder()
        .id(&rule.id)
        .priority(rule.priority)
        .status(ReplicationRuleStatus::Enabled)
        .filter(
            ReplicationRuleFilter::builder()
                .prefix(&rule.prefix)
                .build(),
        )
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(status(rule.delete_markers))
                .build(),
        )
        .source_selection_criteria(
            SourceSelectionCriteria::builder()
                .sse_kms_encrypted_objects(kms_objects)
                .build(),
        )
        .destination(destination)
        .build()
}
