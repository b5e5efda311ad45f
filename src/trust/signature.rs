//! A manifest's signature as kept with its object, and what checking it
//! against the trusted key found.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::PublicKey;

/// User metadata key holding the base64 DER ECDSA signature of the
/// manifest's SHA-256 (`x-amz-meta-signature`).
pub const SIGNATURE_METADATA: &str = "signature";
/// User metadata key holding the ARN of the KMS key that signed it
/// (`x-amz-meta-signing-key`).
pub const SIGNING_KEY_METADATA: &str = "signing-key";

/// A signature of a manifest's SHA-256, and the key it says made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub key_arn: String,
    /// Base64 of the DER ECDSA signature, as stored.
    pub signature: String,
}

impl Signature {
    pub fn new(key_arn: String, der: &[u8]) -> Self {
        Signature {
            key_arn,
            signature: STANDARD.encode(der),
        }
    }

    /// The signature in an object's metadata; `None` when it has none. A
    /// signature without its key, or the reverse, is kept, to fail the check.
    pub fn from_metadata(signature: Option<&str>, key_arn: Option<&str>) -> Option<Self> {
        if signature.is_none() && key_arn.is_none() {
            return None;
        }
        Some(Signature {
            key_arn: key_arn.unwrap_or_default().to_owned(),
            signature: signature.unwrap_or_default().to_owned(),
        })
    }

    /// How `trusted` judges this signature (or its absence) of the manifest
    /// whose bytes have the hex SHA-256 `sha256`.
    pub fn judge(this: Option<&Self>, trusted: Option<&PublicKey>, sha256: &str) -> Verdict {
        let Some(signature) = this else {
            return Verdict::Unsigned;
        };
        let key_arn = signature.key_arn.clone();
        let Some(trusted) = trusted else {
            return Verdict::NotChecked { key_arn };
        };
        if key_arn.is_empty() {
            return Verdict::BadSignature {
                key_arn,
                detail: "it names no signing key".into(),
            };
        }
        if trusted.is_other_than(&key_arn) {
            return Verdict::ForeignKey { key_arn };
        }
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(sha256, &mut digest).is_err() {
            return Verdict::BadSignature {
                key_arn,
                detail: format!("{sha256:?} is not a SHA-256"),
            };
        }
        let der = STANDARD.decode(&signature.signature).unwrap_or_default();
        if trusted.verifies(&digest, &der) {
            Verdict::Valid { key_arn }
        } else {
            Verdict::BadSignature {
                key_arn,
                detail: "the signature is not the trusted key's signature of these bytes".into(),
            }
        }
    }
}

/// What a manifest's signature proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// The trusted key signed these very bytes.
    Valid { key_arn: String },
    /// No signature is kept with the manifest.
    Unsigned,
    /// A signature that the trusted key did not make of these bytes: other
    /// bytes, another key under the same name, or garbage.
    BadSignature { key_arn: String, detail: String },
    /// Signed by a KMS key other than the trusted one.
    ForeignKey { key_arn: String },
    /// Signed, but no trusted key is configured to check it.
    NotChecked { key_arn: String },
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid { .. })
    }

    /// Why a manifest with this verdict is not trusted, in words that name
    /// the fix; `None` when it is.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Verdict::Valid { .. } => None,
            Verdict::Unsigned => Some("it is unsigned".into()),
            Verdict::BadSignature { key_arn, detail } => Some(format!(
                "its signature (by {key_arn:?}) does not verify: {detail}"
            )),
            Verdict::ForeignKey { key_arn } => Some(format!(
                "it is signed by {key_arn}, not by the trusted signing key"
            )),
            Verdict::NotChecked { .. } => Some("no trusted key is configured to check it".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::public_key::tests::{key_pair, sign};
    use super::*;

    const SHA256: &str = "0707070707070707070707070707070707070707070707070707070707070707";

    #[test]
    fn each_way_a_signature_fails_has_its_own_verdict() {
        let (private, pem) = key_pair();
        let mut trusted = PublicKey::from_pem(&pem).unwrap();
        let good = Signature::new("arn:k1".into(), &sign(&private, &[7u8; 32]));
        assert_eq!(
            Signature::judge(None, Some(&trusted), SHA256),
            Verdict::Unsigned
        );
        assert!(Signature::judge(Some(&good), Some(&trusted), SHA256).is_valid());
        let other_bytes = SHA256.replace("07", "08");
        assert!(matches!(
            Signature::judge(Some(&good), Some(&trusted), &other_bytes),
            Verdict::BadSignature { .. }
        ));
        assert_eq!(
            Signature::judge(Some(&good), None, SHA256),
            Verdict::NotChecked {
                key_arn: "arn:k1".into()
            }
        );
        trusted.key_arn = Some("arn:k2".into());
        assert_eq!(
            Signature::judge(Some(&good), Some(&trusted), SHA256),
            Verdict::ForeignKey {
                key_arn: "arn:k1".into()
            }
        );
        let torn = Signature::from_metadata(Some("AAAA"), None).unwrap();
        assert!(matches!(
            Signature::judge(Some(&torn), Some(&trusted), SHA256),
            Verdict::BadSignature { .. }
        ));
        assert_eq!(Signature::from_metadata(None, None), None);
    }
}
