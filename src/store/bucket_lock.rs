//! A bucket's Object Lock, for `replication`: a source with Object Lock
//! replicates only to a destination with Object Lock
//! (`DstBucketObjectLockConfigMissing` otherwise), so the destination is
//! made to match.

use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule,
};
use serde::Serialize;

use super::bucket::BucketAdmin;
use crate::error::Result;

/// Object Lock on a bucket, and its default retention if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectLock {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub years: Option<i32>,
}

impl BucketAdmin {
    /// The bucket's Object Lock; `None` when it has none.
    pub async fn object_lock(&self) -> Result<Option<ObjectLock>> {
        let answer = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await;
        let out = self.setting(
            "GetObjectLockConfiguration",
            answer,
            "ObjectLockConfigurationNotFoundError",
        )?;
        let Some(configuration) = out.as_ref().and_then(|o| o.object_lock_configuration()) else {
            return Ok(None);
        };
        if configuration.object_lock_enabled() != Some(&ObjectLockEnabled::Enabled) {
            return Ok(None);
        }
        let retention = configuration.rule().and_then(|r| r.default_retention());
        Ok(Some(ObjectLock {
            mode: retention
                .and_then(|r| r.mode())
                .map(|m| m.as_str().to_owned()),
            days: retention.and_then(|r| r.days()),
            years: retention.and_then(|r| r.years()),
        }))
    }

    /// Turns Object Lock on (a versioned bucket may have it turned on
    /// later), with `lock`'s default retention.
    pub async fn lock_objects(&self, lock: &ObjectLock) -> Result<()> {
        let rule = lock.mode.as_deref().map(|mode| {
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder()
                        .mode(ObjectLockRetentionMode::from(mode))
                        .set_days(lock.days)
                        .set_years(lock.years)
                        .build(),
                )
                .build()
        });
        let configuration = ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .set_rule(rule)
            .build();
        self.client
            .put_object_lock_configuration()
            .bucket(&self.bucket)
            .object_lock_configuration(configuration)
            .send()
            .await
            .map_err(|e| self.error("PutObjectLockConfiguration", e))?;
        Ok(())
    }
}
