//! Who may write a snapshot: the backup signs each manifest with an
//! asymmetric KMS key that nobody else may sign with, and every reader
//! checks the signature locally against the public key, pinned or fetched
//! once. A checksum stored with a manifest only says its bytes are intact;
//! the signature says who wrote them.

mod public_key;
mod signature;
mod signer;

use std::sync::Arc;

use aws_sdk_kms::error::DisplayErrorContext;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
pub use public_key::PublicKey;
pub use signature::{SIGNATURE_METADATA, SIGNING_KEY_METADATA, Signature, Verdict};
pub use signer::Signer;

/// How manifests are signed and which key they are checked against.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    signer: Option<Signer>,
    trusted: Arc<Trusted>,
}

#[derive(Debug, Default)]
enum Trusted {
    /// Signatures are reported, never checked.
    #[default]
    Nobody,
    /// `--trusted-public-key`: no KMS access is needed to trust a snapshot.
    Pinned(PublicKey),
    /// The signing key's public half, fetched with GetPublicKey once.
    SigningKey {
        kms: aws_sdk_kms::Client,
        key_id: String,
        fetched: OnceCell<std::result::Result<PublicKey, String>>,
    },
}

impl Trust {
    /// `signing_key_id` signs what this process writes; the pinned key, or
    /// else the signing key's public half, is what it trusts.
    pub fn new(
        kms: &aws_sdk_kms::Client,
        signing_key_id: Option<&str>,
        pinned: Option<PublicKey>,
    ) -> Self {
        let signer = signing_key_id.map(|key_id| Signer {
            kms: kms.clone(),
            key_id: key_id.to_owned(),
        });
        let trusted = match (pinned, &signer) {
            (Some(key), _) => Trusted::Pinned(key),
            (None, Some(signer)) => Trusted::SigningKey {
                kms: kms.clone(),
                key_id: signer.key_id.clone(),
                fetched: OnceCell::new(),
            },
            (None, None) => Trusted::Nobody,
        };
        Trust {
            signer,
            trusted: Arc::new(trusted),
        }
    }

    /// The key that signs manifests, if one is configured.
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    pub fn signing_key_id(&self) -> Option<&str> {
        self.signer.as_ref().map(|s| s.key_id.as_str())
    }

    /// Whether a trusted key is configured: then an unsigned or badly
    /// signed manifest is refused.
    pub fn enforced(&self) -> bool {
        !matches!(*self.trusted, Trusted::Nobody)
    }

    /// The key signatures are checked against; an error when it must be
    /// fetched and cannot be.
    pub async fn trusted_key(&self) -> Result<Option<PublicKey>> {
        match &*self.trusted {
            Trusted::Nobody => Ok(None),
            Trusted::Pinned(key) => Ok(Some(key.clone())),
            Trusted::SigningKey {
                kms,
                key_id,
                fetched,
            } => fetched
                .get_or_init(|| fetch_public_key(kms, key_id))
                .await
                .clone()
                .map(Some)
                .map_err(Error::Kms),
        }
    }

    /// Why the trusted key does not vouch for the bytes of hex SHA-256
    /// `sha256`; `None` when it signed them, or when no key is trusted.
    pub async fn refusal(
        &self,
        signature: Option<&Signature>,
        sha256: &str,
    ) -> Result<Option<String>> {
        if !self.enforced() {
            return Ok(None);
        }
        let verdict = self.judge(signature, sha256).await?;
        Ok(self.refusal_of(&verdict))
    }

    /// Why `verdict` refuses what it judged; `None` when it is valid, or
    /// when no key is trusted (then nothing is refused for its signature).
    pub fn refusal_of(&self, verdict: &Verdict) -> Option<String> {
        let why = verdict.refusal().filter(|_| self.enforced())?;
        Some(format!("not signed by the trusted key: {why}"))
    }

    /// What the signature kept with a manifest proves of the manifest whose
    /// bytes have the hex SHA-256 `sha256`.
    pub async fn judge(&self, signature: Option<&Signature>, sha256: &str) -> Result<Verdict> {
        let trusted = self.trusted_key().await?;
        Ok(Signature::judge(signature, trusted.as_ref(), sha256))
    }
}

async fn fetch_public_key(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
) -> std::result::Result<PublicKey, String> {
    let out = kms
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|err| {
            format!(
                "GetPublicKey of {key_id} failed: {}; grant kms:GetPublicKey on it, or pin its public key with --trusted-public-key (SYNC_TRUSTED_PUBLIC_KEY)",
                DisplayErrorContext(&err)
            )
        })?;
    let der = out.public_key().map(|b| b.as_ref()).unwrap_or_default();
    let arn = out.key_id().map(str::to_owned);
    PublicKey::from_der(der, arn).map_err(|why| format!("the public key of {key_id} is {why}"))
}
