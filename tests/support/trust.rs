//! The trust tests' parts: a signed backup and its readers, and what a
//! principal that may only put objects into the prefix can do: plant
//! objects and manifests and copy metadata (and, for a host whose clock
//! runs fast, sign with the backup's own key).

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use base64::Engine as _;
use s3_kms_sync::local::hash::Sha256Stream;
use std::path::Path;

use s3_kms_sync::commands::restore::{self, RestoreOptions, RestoreReport};
use s3_kms_sync::commands::verify::{self, VerifyOptions, VerifyReport, VerifyRequest};
use s3_kms_sync::manifest::{FileRecord, Manifest};
use s3_kms_sync::store::Store;

use super::{Backup, restore_options};

pub const PREFIX: &str = "p";

/// A backup whose runs sign their manifests with a fresh key, which its
/// readers trust through GetPublicKey; and that key's ARN.
pub async fn signed_backup(bucket: &'static str, versioned: bool) -> (Backup, String) {
    let mut backup = Backup::new(bucket, PREFIX, versioned).await;
    let signing = backup.moto.signing_key().await;
    let trust = backup.moto.trust(&signing);
    backup.engine.store = backup.engine.store.clone().with_trust(trust);
    (backup, signing)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut digest = Sha256Stream::default();
    digest.update(bytes);
    digest.finish_hex()
}

/// `manifest` as another run would have written it: its own run id and
/// start, named as that run names its manifest, with no chain link.
pub fn as_run(manifest: &Manifest, run_id: &str, started_at: &str) -> (Manifest, String) {
    let mut forged = manifest.clone();
    forged.run_id = run_id.into();
    forged.started_at = started_at.into();
    forged.previous_manifest = None;
    let stamp = started_at.replace(['-', ':'], "");
    (forged, format!("{PREFIX}/_manifests/{stamp}-{run_id}.json"))
}

/// Writes `body` at `key` with plain PutObject and the given user
/// metadata: what a principal with s3:PutObject on the prefix can do.
pub async fn plant(backup: &Backup, key: &str, body: &[u8], metadata: &[(&str, &str)]) {
    let mut put = backup
        .moto
        .s3()
        .put_object()
        .bucket(backup.bucket)
        .key(key)
        .body(body.to_vec().into());
    for (name, value) in metadata {
        put = put.metadata(*name, *value);
    }
    put.send().await.expect("planted");
}

/// `body` planted at `key` with its SHA-256 and a signature by `key_arn`
/// as metadata, the way the backup keeps them.
pub async fn plant_signed(backup: &Backup, key: &str, body: &[u8], signature: &str, key_arn: &str) {
    let sha256 = sha256_hex(body);
    let metadata = [
        ("sha256", sha256.as_str()),
        ("signature", signature),
        ("signing-key", key_arn),
    ];
    plant(backup, key, body, &metadata).await;
}

/// KMS's DIGEST signature of `body` by `key`, base64, as the backup
/// stores it.
pub async fn kms_sign(backup: &Backup, key: &str, body: &[u8]) -> String {
    let digest = hex::decode(sha256_hex(body)).unwrap();
    let signed = backup
        .moto
        .kms()
        .sign()
        .key_id(key)
        .message(Blob::new(digest))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .expect("sign");
    base64::engine::general_purpose::STANDARD.encode(signed.signature().unwrap().as_ref())
}

pub async fn verify_with(store: &Store, manifest: Option<&str>) -> VerifyReport {
    let request = VerifyRequest {
        manifest: manifest.map(str::to_owned),
        ..VerifyRequest::default()
    };
    verify::run(store, PREFIX, &VerifyOptions { concurrency: 4 }, &request)
        .await
        .expect("verify starts")
}

pub async fn restore_with(
    store: &Store,
    manifest: Option<&str>,
    target: &Path,
) -> s3_kms_sync::Result<RestoreReport> {
    let options = RestoreOptions {
        manifest: manifest.map(str::to_owned),
        ..restore_options(target)
    };
    restore::run(store, PREFIX, &options).await
}

pub fn record(manifest: &Manifest, relative: &str) -> FileRecord {
    let path = format!("{}/{relative}", manifest.source_dir);
    manifest
        .files
        .iter()
        .find(|f| f.local_path == path)
        .unwrap_or_else(|| panic!("no record of {relative}"))
        .clone()
}

/// `manifest` planted unsigned at `key`, with the SHA-256 of its bytes as
/// metadata (all a reader that checks no signature would ask for).
pub async fn plant_unsigned(backup: &Backup, key: &str, manifest: &Manifest) {
    let body = serde_json::to_vec(manifest).unwrap();
    let digest = sha256_hex(&body);
    plant(backup, key, &body, &[("sha256", &digest)]).await;
}
