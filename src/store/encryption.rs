//! The encryption S3 reports for an object, and whether it is the configured key.

use aws_sdk_s3::types::ServerSideEncryption;

use super::{Object, Store};
use crate::error::{Error, Result};

/// Server-side encryption as S3 reports it for an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encryption {
    pub algorithm: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    /// Whether the object is under the bucket's S3 Bucket Key.
    pub bucket_key_enabled: Option<bool>,
}

impl Encryption {
    pub(super) fn reported(
        algorithm: Option<&ServerSideEncryption>,
        kms_key_id: Option<&str>,
        bucket_key_enabled: Option<bool>,
    ) -> Self {
        Encryption {
            algorithm: algorithm.cloned(),
            kms_key_id: kms_key_id.map(str::to_owned),
            bucket_key_enabled,
        }
    }
}

impl Store {
    /// Fails unless `object` is reported stored under the configured key.
    pub fn check_stored_encryption(&self, key: &str, object: &Object) -> Result<()> {
        self.check_encryption(key, &object.encryption.clone().unwrap_or_default())
    }

    pub(super) fn check_encryption(&self, key: &str, reported: &Encryption) -> Result<()> {
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
}
