//! The encryption S3 reports for an object, and whether it is the configured key.

use aws_sdk_s3::types::ServerSideEncryption;
use serde::{Deserialize, Serialize};

use super::{Object, Store};
use crate::error::{Error, Result};

/// Server-side encryption as S3 reports it for an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encryption {
    pub algorithm: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    /// Whether the object is under the bucket's S3 Bucket Key.
    pub bucket_key_enabled: Option<bool>,
    /// Encrypted with a key the writer supplied (SSE-C).
    pub customer_key: bool,
}

/// How an object falls short of SSE-KMS under the configured key with an
/// S3 Bucket Key: what `audit` reports and what sync and `audit --fix copy`
/// repair, all but `SseC`, which only the holder of the customer key can copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    NotKms,
    WrongKey,
    NoBucketKey,
    SseC,
}

impl Finding {
    pub const ALL: [Finding; 4] = [
        Finding::NotKms,
        Finding::WrongKey,
        Finding::NoBucketKey,
        Finding::SseC,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Finding::NotKms => "not_kms",
            Finding::WrongKey => "wrong_key",
            Finding::NoBucketKey => "no_bucket_key",
            Finding::SseC => "sse_c",
        }
    }

    /// Whether a server-side copy can fix it.
    pub fn copyable(self) -> bool {
        self != Finding::SseC
    }

    /// The manifest's reason for a file sync re-encrypted.
    pub fn reencrypted_reason(self) -> &'static str {
        match self {
            Finding::NotKms => "re-encrypted: it was not under SSE-KMS",
            Finding::WrongKey => "re-encrypted: it was under another KMS key",
            Finding::NoBucketKey => "re-encrypted: it had no S3 Bucket Key",
            Finding::SseC => "encrypted with a customer-provided key (SSE-C): left alone",
        }
    }
}

impl Encryption {
    pub(super) fn reported(
        algorithm: Option<&ServerSideEncryption>,
        kms_key_id: Option<&str>,
        bucket_key_enabled: Option<bool>,
        customer_algorithm: Option<&str>,
    ) -> Self {
        Encryption {
            algorithm: algorithm.cloned(),
            kms_key_id: kms_key_id.map(str::to_owned),
            bucket_key_enabled,
            customer_key: customer_algorithm.is_some(),
        }
    }

    /// SSE-KMS under `key` with a Bucket Key: what this tool writes.
    pub fn kms(key: &str, bucket_key: Option<bool>) -> Self {
        Encryption {
            algorithm: Some(ServerSideEncryption::AwsKms),
            kms_key_id: Some(key.to_owned()),
            bucket_key_enabled: bucket_key,
            customer_key: false,
        }
    }

    /// How this falls short of SSE-KMS under `configured` with a Bucket
    /// Key; `None` when it does not. An alias only compares as a key once
    /// resolved (see [`Store::noncompliance`]).
    pub fn noncompliance(&self, configured: &str) -> Option<Finding> {
        if self.customer_key {
            return Some(Finding::SseC);
        }
        if self.algorithm != Some(ServerSideEncryption::AwsKms) {
            return Some(Finding::NotKms);
        }
        match self.kms_key_id.as_deref() {
            Some(echoed) if same_key(configured, echoed) || is_alias(configured) => {}
            _ => return Some(Finding::WrongKey),
        }
        // S3 sends the Bucket Key header only when the object has one.
        (self.bucket_key_enabled != Some(true)).then_some(Finding::NoBucketKey)
    }
}

impl Store {
    /// Fails unless `object` is reported stored under the configured key.
    pub fn check_stored_encryption(&self, key: &str, object: &Object) -> Result<()> {
        self.check_encryption(key, &object.encryption.clone().unwrap_or_default())
    }

    /// How an object's encryption falls short of the configured key. A
    /// configured alias compares as the key S3 named for this store's own
    /// writes (the lease is written first), as a mode check before that.
    pub fn noncompliance(&self, reported: &Encryption) -> Option<Finding> {
        reported.noncompliance(self.key_arn())
    }

    pub(super) fn check_encryption(&self, key: &str, reported: &Encryption) -> Result<()> {
        if is_alias(&self.kms_key_id)
            && reported.algorithm == Some(ServerSideEncryption::AwsKms)
            && let Some(arn) = &reported.kms_key_id
        {
            let _ = self.learned_key.set(arn.clone());
        }
        let mismatch = encryption_mismatch(
            &self.kms_key_id,
            reported.algorithm.as_ref(),
            reported.kms_key_id.as_deref(),
        );
        mismatch.map_or(Ok(()), |detail| {
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

    #[test]
    fn findings_by_kind() {
        let compliant = Encryption::kms(ARN, Some(true));
        assert_eq!(compliant.noncompliance(ID), None);
        assert_eq!(
            Encryption::kms(ARN, None).noncompliance(ARN),
            Some(Finding::NoBucketKey)
        );
        let other = "arn:aws:kms:eu-west-1:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            Encryption::kms(other, Some(true)).noncompliance(ARN),
            Some(Finding::WrongKey)
        );
        let sse_s3 = Encryption {
            algorithm: Some(ServerSideEncryption::Aes256),
            ..Encryption::default()
        };
        assert_eq!(sse_s3.noncompliance(ARN), Some(Finding::NotKms));
        assert_eq!(
            Encryption::default().noncompliance(ARN),
            Some(Finding::NotKms)
        );
        let sse_c = Encryption {
            customer_key: true,
            ..Encryption::default()
        };
        assert_eq!(sse_c.noncompliance(ARN), Some(Finding::SseC));
        assert!(!Finding::SseC.copyable());
    }
}
