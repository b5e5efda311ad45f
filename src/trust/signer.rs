//! Signing a manifest: KMS signs its SHA-256 (`MessageType: DIGEST`,
//! `ECDSA_SHA_256`), one call per manifest however large it is.

use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

use super::Signature;
use crate::error::{Error, Result};

/// The KMS key that signs manifests, and the client that asks it.
#[derive(Debug, Clone)]
pub struct Signer {
    pub(super) kms: aws_sdk_kms::Client,
    pub(super) key_id: String,
}

impl Signer {
    /// The key as configured (an ARN, key id or alias).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The signature of the manifest whose bytes have the hex SHA-256
    /// `sha256`, with the ARN KMS names for the key (the configured id may
    /// be an alias).
    pub async fn sign(&self, sha256: &str) -> Result<Signature> {
        let digest = hex::decode(sha256)
            .map_err(|_| Error::Kms(format!("cannot sign {sha256:?}: not a SHA-256")))?;
        let out = self
            .kms
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|err| {
                Error::Kms(format!(
                    "Sign with {} failed: {}; the function's role needs kms:Sign on it (SYNC_SIGNING_KEY_ID names it)",
                    self.key_id,
                    DisplayErrorContext(&err)
                ))
            })?;
        let der = out
            .signature()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let key_arn = out.key_id().unwrap_or(&self.key_id).to_owned();
        Ok(Signature::new(key_arn, &der))
    }
}
