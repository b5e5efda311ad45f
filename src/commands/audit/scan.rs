//! What the audit judges: each current object of the prefix, from a listing
//! or an inventory report, its encryption read by a HEAD wherever the source
//! does not say it, and how it falls short of the configured key.

use aws_sdk_s3::types::ServerSideEncryption;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::run::lease::lock_key;
use crate::store::{Encryption, Finding, KeyRange, Store, keys};

/// The keys an audit covers: the prefix, less the audit's own folder (a
/// Batch Operations job reads its manifest from there by ETag) and the lock
/// (which a running sync rewrites under the configured key anyway).
#[derive(Debug, Clone)]
pub struct Scope {
    pub bucket: String,
    /// `<prefix>/`, or empty for the whole bucket.
    pub prefix: String,
    audit_folder: String,
    lock_key: String,
}

impl Scope {
    pub fn new(bucket: &str, prefix: &str) -> Self {
        Scope {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            audit_folder: keys::audit_key(prefix, ""),
            lock_key: lock_key(prefix),
        }
    }

    pub fn covers(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && !key.starts_with(&self.audit_folder)
            && key != self.lock_key
    }
}

/// An object to judge, as its source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub version_id: Option<String>,
    pub size: Option<u64>,
    pub etag: Option<String>,
    /// `None` for STANDARD.
    pub storage_class: Option<String>,
    /// What the source says of its encryption; `None`: a HEAD reads it.
    pub encryption: Option<Encryption>,
}

/// One object judged.
#[derive(Debug, Clone)]
pub struct Judged {
    pub candidate: Candidate,
    pub finding: Option<Finding>,
    /// The encryption found, in words.
    pub detail: String,
}

/// Lists the scope and sends each object as a candidate whose encryption a
/// HEAD reads.
pub async fn listed(
    store: &Store,
    scope: &Scope,
    sender: mpsc::Sender<Result<Candidate>>,
) -> Result<()> {
    for object in store.list(&scope.prefix, &[KeyRange::default()]).await? {
        if !scope.covers(&object.key) {
            continue;
        }
        let candidate = Candidate {
            key: object.key,
            version_id: None,
            size: object.size,
            etag: object.etag,
            storage_class: object.storage_class,
            encryption: None,
        };
        if sender.send(Ok(candidate)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Judges one candidate, with a HEAD where its encryption is not known
/// well enough: always after a listing; after an inventory, for SSE-KMS
/// objects, whose key an inventory does not name (unless `trust_kms`).
/// `None`: the object is gone since the source was taken.
pub async fn judge(
    store: &Store,
    mut candidate: Candidate,
    trust_kms: bool,
) -> Result<Option<Judged>> {
    let needs_head = match &candidate.encryption {
        None => true,
        Some(e) => {
            e.algorithm == Some(ServerSideEncryption::AwsKms)
                && e.kms_key_id.is_none()
                && !(trust_kms && e.bucket_key_enabled.is_some())
        }
    };
    if needs_head {
        match store.head(&candidate.key).await {
            Ok(None) => return Ok(None),
            Ok(Some(object)) => {
                candidate.etag = object.etag;
                candidate.size = object.size.and_then(|s| u64::try_from(s).ok());
                candidate.version_id = object.version_id;
                candidate.storage_class = object.storage_class;
                candidate.encryption = object.encryption;
            }
            // S3 refuses to HEAD an SSE-C object without its customer key.
            Err(err) if err.s3_status() == Some(400) => {
                candidate.encryption = Some(Encryption {
                    customer_key: true,
                    ..Encryption::default()
                });
            }
            Err(err) => return Err(err),
        }
    }
    let mut encryption = candidate.encryption.clone().unwrap_or_default();
    if encryption.algorithm == Some(ServerSideEncryption::AwsKms) && encryption.kms_key_id.is_none()
    {
        // Trusted from the inventory: the key is taken to be the configured one.
        encryption.kms_key_id = Some(store.kms_key_id().to_owned());
    }
    let finding = store.noncompliance(&encryption);
    Ok(Some(Judged {
        detail: describe(&encryption),
        candidate,
        finding,
    }))
}

/// The encryption of an object, as a finding states it.
pub fn describe(encryption: &Encryption) -> String {
    if encryption.customer_key {
        return "SSE-C: encrypted with a key the writer supplied; only its holder can copy it"
            .into();
    }
    let bucket_key = match encryption.bucket_key_enabled {
        Some(true) => "with",
        _ => "without",
    };
    match &encryption.algorithm {
        Some(ServerSideEncryption::AwsKms) => format!(
            "SSE-KMS under {}, {bucket_key} an S3 Bucket Key",
            encryption.kms_key_id.as_deref().unwrap_or("an unnamed key")
        ),
        Some(other) => format!("{} instead of SSE-KMS", other.as_str()),
        None => "no server-side encryption reported".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_leaves_out_the_audit_folder_and_the_lock() {
        let scope = Scope::new("b", "backups");
        assert!(scope.covers("backups/a.txt"));
        assert!(scope.covers("backups/_manifests/20260101T000000.000Z-x.json"));
        assert!(!scope.covers("backups/_manifests/lock.json"));
        assert!(!scope.covers("backups/_audit/x-batch-manifest.csv"));
        assert!(!scope.covers("other/a.txt"));
        assert!(!scope.covers("backupsX/a.txt"));
        let whole = Scope::new("b", "");
        assert!(whole.covers("a.txt"));
        assert!(!whole.covers("_audit/x"));
    }
}
