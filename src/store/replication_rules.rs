//! A bucket's replication configuration, as `replication` reads and
//! writes it: SSE-KMS objects opted in, replicas under the named key.

use aws_sdk_s3::types::{
    AccessControlTranslation, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination,
    EncryptionConfiguration, OwnerOverride, ReplicationConfiguration, ReplicationRule as SdkRule,
    ReplicationRuleFilter, ReplicationRuleStatus, SourceSelectionCriteria, SseKmsEncryptedObjects,
    SseKmsEncryptedObjectsStatus, StorageClass,
};
use serde::Serialize;

use super::bucket::BucketAdmin;
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
    /// The replica's key; `None` for a source whose objects are not
    /// SSE-KMS (an SSE-KMS object replicates only when a rule names one).
    pub replica_kms_key_arn: Option<String>,
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

impl BucketAdmin {
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
        .set_encryption_configuration(rule.replica_kms_key_arn.as_ref().map(|key| {
            EncryptionConfiguration::builder()
                .replica_kms_key_id(key)
                .build()
        }))
        .build()?;
    let kms_objects = SseKmsEncryptedObjects::builder()
        .status(SseKmsEncryptedObjectsStatus::Enabled)
        .build()?;
    let criteria = rule.replica_kms_key_arn.as_ref().map(|_| {
        SourceSelectionCriteria::builder()
            .sse_kms_encrypted_objects(kms_objects)
            .build()
    });
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
        .set_source_selection_criteria(criteria)
        .destination(destination)
        .build()
}
