//! KMS, asked about the state of the keys that encrypt the objects. HEAD
//! and List need no KMS permission, so an object can look perfect while its
//! key is disabled or pending deletion and no one can read it; DescribeKey
//! tells. Reads through S3 ask KMS themselves, so only this asks directly.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::types::KeyState;

use super::Store;

/// A key that cannot decrypt now, and why, in words that name the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableKey {
    pub key: String,
    pub detail: String,
}

impl Store {
    /// Each key that encrypts a snapshot (its manifest object, and the
    /// objects of its records) and cannot decrypt now: one DescribeKey per
    /// distinct key.
    pub async fn unusable_keys<'a>(
        &self,
        manifest_key: Option<&str>,
        record_keys: impl Iterator<Item = &'a str>,
    ) -> Vec<UnusableKey> {
        let mut files: BTreeMap<&str, u64> = BTreeMap::new();
        for key in record_keys {
            *files.entry(key).or_default() += 1;
        }
        let keys: BTreeSet<&str> = files.keys().copied().chain(manifest_key).collect();
        let files = &files;
        let checks = keys.into_iter().map(|key| async move {
            let why = self.why_unusable(key).await?;
            let count = files.get(key).copied().unwrap_or_default();
            let manifest = if manifest_key == Some(key) {
                " and the manifest itself"
            } else {
                ""
            };
            Some(UnusableKey {
                key: key.to_owned(),
                detail: format!("{why}; it encrypts {count} files{manifest}"),
            })
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn why_unusable(&self, key: &str) -> Option<String> {
        let Some(kms) = &self.kms else {
            return Some("its state was not checked: no KMS client was configured".into());
        };
        self.count("DescribeKey");
        let described = kms.describe_key().key_id(key).send().await;
        let metadata = match described {
            Ok(out) => out.key_metadata?,
            Err(err) => {
                let code = err.code().unwrap_or("no answer").to_owned();
                return Some(format!(
                    "DescribeKey failed ({code}): a restore needs kms:Decrypt on it, and verify kms:DescribeKey"
                ));
            }
        };
        let state = metadata.key_state()?;
        if matches!(state, KeyState::Enabled | KeyState::Updating) {
            return None;
        }
        let mut detail = format!("its state is {}", state.as_str());
        if let Some(date) = metadata.deletion_date() {
            detail.push_str(&format!(", deleted on {date}"));
        }
        detail.push_str(match state {
            KeyState::Disabled => "; enable it (kms enable-key) before restoring",
            KeyState::PendingDeletion => {
                "; cancel the deletion (kms cancel-key-deletion) and enable it before restoring"
            }
            _ => "; objects under it cannot be read until it is enabled",
        });
        Some(detail)
    }
}
