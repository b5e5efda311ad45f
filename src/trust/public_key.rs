//! The public half of the signing key: pinned from a PEM file, or fetched
//! once from KMS with GetPublicKey. Signatures are checked here, locally,
//! by OpenSSL's ECDSA; no KMS call vouches for a manifest.

use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};

/// An ECDSA P-256 public key (KMS's `ECC_NIST_P256`), with the ARN of its
/// KMS key when that is known (fetched, or given beside a pinned key).
#[derive(Clone)]
pub struct PublicKey {
    key: EcKey<Public>,
    pub key_arn: Option<String>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// From PEM (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
    /// writes it).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let key = PKey::public_key_from_pem(pem)
            .map_err(|err| format!("not a PEM public key ({err})"))?;
        Self::from_pkey(key, None)
    }

    /// From DER SubjectPublicKeyInfo, as GetPublicKey returns it.
    pub fn from_der(der: &[u8], key_arn: Option<String>) -> Result<Self, String> {
        let key = PKey::public_key_from_der(der)
            .map_err(|err| format!("not a DER public key ({err})"))?;
        Self::from_pkey(key, key_arn)
    }

    fn from_pkey(key: PKey<Public>, key_arn: Option<String>) -> Result<Self, String> {
        let key = key.ec_key().map_err(|_| {
            "not an elliptic-curve key: the signing key must be ECC_NIST_P256".to_owned()
        })?;
        if key.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
            return Err("not a P-256 key: the signing key must be ECC_NIST_P256".into());
        }
        Ok(PublicKey { key, key_arn })
    }

    /// Whether `der` is an ECDSA signature by this key of `digest` (the
    /// SHA-256 itself, as KMS signs with `MessageType: DIGEST`).
    pub fn verifies(&self, digest: &[u8; 32], der: &[u8]) -> bool {
        EcdsaSig::from_der(der)
            .and_then(|signature| signature.verify(digest, &self.key))
            .unwrap_or(false)
    }

    /// Whether a signature naming `key_arn` claims another KMS key than
    /// this one (known only when this key's identity is). Keys compare by
    /// their id, so an ARN and a bare key id of one key agree.
    pub fn is_other_than(&self, key_arn: &str) -> bool {
        let id = |key: &str| {
            key.rsplit_once(":key/")
                .map_or(key, |(_, id)| id)
                .to_owned()
        };
        self.key_arn
            .as_deref()
            .is_some_and(|own| id(own) != id(key_arn))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openssl::ec::EcGroup;
    use openssl::pkey::Private;

    /// A fresh P-256 key pair, and its public half as PEM.
    pub fn key_pair() -> (EcKey<Private>, Vec<u8>) {
        key_pair_on(Nid::X9_62_PRIME256V1)
    }

    /// A fresh key pair on `curve`, and its public half as PEM.
    fn key_pair_on(curve: Nid) -> (EcKey<Private>, Vec<u8>) {
        let group = EcGroup::from_curve_name(curve).unwrap();
        let private = EcKey::generate(&group).unwrap();
        let public = EcKey::from_public_key(&group, private.public_key()).unwrap();
        let pem = PKey::from_ec_key(public)
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        (private, pem)
    }

    pub fn sign(private: &EcKey<Private>, digest: &[u8; 32]) -> Vec<u8> {
        EcdsaSig::sign(digest, private).unwrap().to_der().unwrap()
    }

    #[test]
    fn a_signature_verifies_only_for_its_digest_and_key() {
        let (private, pem) = key_pair();
        let key = PublicKey::from_pem(&pem).unwrap();
        let digest = [7u8; 32];
        let signature = sign(&private, &digest);
        assert!(key.verifies(&digest, &signature));
        assert!(!key.verifies(&[8u8; 32], &signature));
        let mut named = key.clone();
        named.key_arn = Some("1234abcd".into());
        assert!(!named.is_other_than("arn:aws:kms:eu-west-1:111122223333:key/1234abcd"));
        assert!(named.is_other_than("arn:aws:kms:eu-west-1:111122223333:key/9999"));
        let (other, _) = key_pair();
        assert!(!key.verifies(&digest, &sign(&other, &digest)));
        assert!(!key.verifies(&digest, b"not DER"));
    }

    #[test]
    fn only_p256_keys_are_taken() {
        let (_, pem) = key_pair_on(Nid::SECP384R1);
        let err = PublicKey::from_pem(&pem).unwrap_err();
        assert!(err.contains("ECC_NIST_P256"), "{err}");
        assert!(PublicKey::from_pem(b"hello").is_err());
    }
}
