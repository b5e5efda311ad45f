//! A run's manifest written locally, then uploaded (not in a dry run).

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use tracing::{debug, warn};

use super::local_dir::{self, COMPRESSED};
use super::paged::{self, PageWriter, Tree};
use super::spool::SortedRecords;
use super::{Facts, Kind, Manifest, PagesSent, Snapshot, Summary, Written};
use crate::error::{Error, Result};
use crate::local::hash::{Md5Digest, Sha256Stream};
use crate::store::{PutExtras, Store, WriteIf, file_body, keys};
use crate::trust::{Signature, Signer};

/// Writes the local copy, then uploads that file (not in a dry run).
/// Either failing is recorded in the summary; the run's results stand,
/// so nothing here is an `Err`. At a million files the manifest is large,
/// so it is streamed to disk and from disk, never held whole in memory.
pub async fn publish(
    store: &Store,
    prefix: &str,
    manifest_dir: &Path,
    mut manifest: Manifest,
    contents: Contents<'_>,
    name: &str,
    kind: Kind,
) -> Summary {
    let key = keys::manifest_key(prefix, name);
    let (bucket, key_prefix) = (manifest.bucket.clone(), manifest.prefix.clone());
    let signer = store.trust().signer();
    manifest.signing_key_id = signer.map(|s| s.key_id().to_owned());
    let destination = Destination {
        key: &key,
        local_name: name,
        signer,
        kind: Some(kind),
    };
    let summary = send(store, manifest_dir, manifest, contents, destination).await;
    if summary.manifest_s3_uri.is_some() && summary.manifest_local_path.is_some() {
        let removed = super::local_dir::prune_superseded(manifest_dir, &bucket, &key_prefix, name);
        if removed > 0 {
            debug!(removed, "superseded local manifests removed");
        }
    }
    summary
}

/// [`publish`] to any key (a shard's manifest, which the run's merge reads),
/// with the local copy named `local_name`; supersedes no other copy. Signed
/// like a snapshot, so that the merge takes only what the backup wrote.
pub async fn publish_as(
    store: &Store,
    manifest_dir: &Path,
    mut manifest: Manifest,
    records: &SortedRecords,
    key: &str,
    local_name: &str,
) -> Summary {
    let signer = store.trust().signer();
    manifest.signing_key_id = signer.map(|s| s.key_id().to_owned());
    let destination = Destination {
        key,
        local_name,
        signer,
        kind: None,
    };
    send(
        store,
        manifest_dir,
        manifest,
        Contents::Records(records),
        destination,
    )
    .await
}

/// What a manifest holds: its records, or the tree a merge joined from its
/// shards' trees (a paged snapshot whose records it never read).
pub enum Contents<'a> {
    Records(&'a SortedRecords),
    Joined(Tree),
}

impl Contents<'_> {
    /// Writes the local copy: the whole document (compressed, for a paged
    /// snapshot), or for a joined tree the snapshot object (its records are
    /// in S3 only).
    fn write_local(&self, manifest: &Manifest, local: &Path) -> Result<Written> {
        match self {
            Contents::Records(records) if self.compressed(manifest) => {
                manifest.write_local_compressed(local, records)
            }
            Contents::Records(records) => manifest.write_local(local, records),
            Contents::Joined(tree) => manifest.write_object_local(local, tree.files, tree.bytes),
        }
    }

    /// Whether the local copy is compressed: a paged snapshot's records.
    fn compressed(&self, manifest: &Manifest) -> bool {
        matches!(self, Contents::Records(_)) && manifest.root.is_some()
    }

    /// The local copy's path: `<name>`, or `<name>.gz` when compressed.
    fn local_path(&self, manifest_dir: &Path, name: &str, manifest: &Manifest) -> PathBuf {
        match self.compressed(manifest) {
            true => manifest_dir.join(format!("{name}{COMPRESSED}")),
            false => manifest_dir.join(name),
        }
    }
}

/// Where a manifest goes, the key that signs it there, and the kind of
/// snapshot it is (a shard's manifest is none).
struct Destination<'a> {
    key: &'a str,
    local_name: &'a str,
    signer: Option<&'a Signer>,
    kind: Option<Kind>,
}

async fn send(
    store: &Store,
    manifest_dir: &Path,
    mut manifest: Manifest,
    contents: Contents<'_>,
    destination: Destination<'_>,
) -> Summary {
    let key = destination.key;
    if !manifest.dry_run {
        manifest.summary.manifest_s3_uri = Some(store.uri(key));
    }
    // A paged snapshot's tree goes first, so the local copy names its root.
    let tree = match paged_tree(store, &mut manifest, &contents, &destination).await {
        Ok(tree) => tree,
        Err(err) => {
            warn!(key, error = %err, "snapshot pages not sent");
            manifest.summary.manifest_s3_uri = None;
            manifest.summary.record_manifest_error(&err);
            None
        }
    };
    let local = contents.local_path(manifest_dir, destination.local_name, &manifest);
    manifest.summary.manifest_local_path = Some(local.display().to_string());
    let written = match contents.write_local(&manifest, &local) {
        Ok(written) => Some(written),
        Err(err) => {
            warn!(path = %local.display(), error = %err, "local manifest write failed");
            manifest.summary.manifest_local_path = None;
            manifest.summary.record_manifest_error(&err);
            None
        }
    };
    if manifest.dry_run || (manifest.root.is_some() != tree.is_some()) {
        return manifest.summary;
    }
    let sent = match (&tree, &contents) {
        (Some(tree), _) => upload_snapshot(store, &manifest, &destination, tree).await,
        (None, Contents::Records(records)) => {
            upload(store, &manifest, records, &destination, &local, written).await
        }
        (None, Contents::Joined(_)) => unreachable!("a joined tree is always paged"),
    };
    match sent {
        Ok(signed) => {
            // A paged snapshot's signature covers its object, not the copy.
            if let Some(signature) = &signed.signature
                && manifest.summary.manifest_local_path.is_some()
                && tree.is_none()
                && let Err(err) = local_dir::write_signature(&local, signature)
            {
                warn!(path = %local.display(), error = %err, "local manifest signature not kept; the next run asks S3 instead");
            }
            manifest.summary.signed_by = signed.signature.map(|s| s.key_arn);
            // Sent, unsigned: the run failed, but its records are kept.
            if let Some(err) = signed.signing_error {
                manifest.summary.record_manifest_error(&err);
            }
        }
        Err(err) => {
            warn!(key, error = %err, "manifest upload failed");
            manifest.summary.manifest_s3_uri = None;
            manifest.summary.record_manifest_error(&err);
            // The local copy must not claim an upload that did not happen.
            if manifest.summary.manifest_local_path.is_some()
                && let Err(err) = contents.write_local(&manifest, &local)
            {
                warn!(path = %local.display(), error = %err, "local manifest rewrite failed");
            }
        }
    }
    manifest.summary
}

/// How an uploaded manifest was signed.
struct Signed {
    signature: Option<Signature>,
    /// Why a manifest that should have been signed was sent unsigned.
    signing_error: Option<Error>,
}

/// Sends the local copy if there is one, else the document from memory,
/// with its SHA-256 so a later run can prove a local copy, and its
/// signature. A local copy that vanishes while it is sent (a cleaner
/// sweeping the directory) is replaced by the document from memory. A
/// manifest KMS cannot sign is still sent, unsigned: its records are
/// not lost, and readers that require a signature refuse it.
async fn upload(
    store: &Store,
    manifest: &Manifest,
    records: &SortedRecords,
    destination: &Destination<'_>,
    local: &Path,
    written: Option<Written>,
) -> Result<Signed> {
    if let Some(written) = written
        && let Ok(body) = file_body(local).await
    {
        match signed_put(store, manifest, destination, body, &written).await {
            Err(err) if std::fs::symlink_metadata(local).is_err() => {
                let key = destination.key;
                warn!(key, error = %err, "local manifest copy vanished while it was sent; sending it from memory");
            }
            sent => return sent,
        }
    }
    let (bytes, written) = manifest.to_json_with_digests(records)?;
    signed_put(store, manifest, destination, bytes.into(), &written).await
}

/// Signs what was written (see [`sign`]) and stores `body` at the
/// destination, with its digests, signature and what a listing shows of it.
async fn signed_put(
    store: &Store,
    manifest: &Manifest,
    destination: &Destination<'_>,
    body: ByteStream,
    written: &Written,
) -> Result<Signed> {
    let signed = sign(destination.signer, written).await;
    let snapshot = Snapshot::of(manifest.complete, &manifest.summary);
    let facts = facts_of(destination.kind, manifest, written);
    put(
        store,
        destination.key,
        body,
        written,
        (snapshot, facts.as_deref()),
        &signed,
    )
    .await?;
    Ok(signed)
}

/// What a snapshot listing shows of the manifest, kept in its metadata.
fn facts_of(kind: Option<Kind>, manifest: &Manifest, written: &Written) -> Option<String> {
    kind.map(|kind| {
        Facts {
            kind,
            status: manifest.summary.status,
            files: written.files,
            bytes: written.bytes,
        }
        .to_metadata()
    })
}

/// Sends the pages of a paged snapshot not stored yet, and sets its root.
/// `None` for a manifest of the first format, or one not sent (a dry run).
/// A shard's pages go where its run's snapshot names them, so the merge
/// joins its tree unread.
async fn paged_tree(
    store: &Store,
    manifest: &mut Manifest,
    contents: &Contents<'_>,
    destination: &Destination<'_>,
) -> Result<Option<Tree>> {
    let tree = match contents {
        Contents::Joined(tree) => tree.clone(),
        Contents::Records(_) if manifest.format != paged::FORMAT || manifest.dry_run => {
            manifest.format = 1;
            return Ok(None);
        }
        Contents::Records(records) => {
            PageWriter::new(store, destination.key)
                .write(records.iter()?)
                .await?
        }
    };
    manifest.format = paged::FORMAT;
    manifest.root = Some(tree.root.clone());
    manifest.summary.pages = Some(PagesSent {
        nodes: tree.nodes,
        sent: tree.nodes_sent,
        bytes_sent: tree.bytes_sent,
    });
    Ok(Some(tree))
}

/// Sends a paged snapshot's object: the header, naming the root its
/// signature then covers.
async fn upload_snapshot(
    store: &Store,
    manifest: &Manifest,
    destination: &Destination<'_>,
    tree: &Tree,
) -> Result<Signed> {
    let bytes = manifest.snapshot_object()?;
    let written = Written {
        md5: Md5Digest::of(&bytes),
        sha256: Sha256Stream::of(&bytes),
        files: tree.files,
        bytes: tree.bytes,
    };
    signed_put(store, manifest, destination, bytes.into(), &written).await
}

async fn sign(signer: Option<&Signer>, written: &Written) -> Signed {
    let Some(signer) = signer else {
        return Signed {
            signature: None,
            signing_error: None,
        };
    };
    match signer.sign(&written.sha256).await {
        Ok(signature) => Signed {
            signature: Some(signature),
            signing_error: None,
        },
        Err(err) => {
            warn!(error = %err, "manifest not signed; it is uploaded unsigned");
            Signed {
                signature: None,
                signing_error: Some(err),
            }
        }
    }
}

async fn put(
    store: &Store,
    key: &str,
    body: ByteStream,
    written: &Written,
    (snapshot, facts): (Snapshot, Option<&str>),
    signed: &Signed,
) -> Result<()> {
    let extras = PutExtras {
        sha256: Some(&written.sha256),
        snapshot: Some(snapshot.as_str()),
        signature: signed.signature.as_ref(),
        facts,
        ..PutExtras::JSON
    };
    match store
        .put(key, body, written.md5, extras, WriteIf::Absent)
        .await
    {
        Ok(_) => Ok(()),
        // A retried PUT whose first attempt went through finds its own manifest.
        Err(err @ Error::PreconditionFailed { .. }) => match store.head(key).await {
            Ok(Some(stored)) if stored.sha256.as_deref() == Some(written.sha256.as_str()) => Ok(()),
            _ => Err(err),
        },
        Err(err) => Err(err),
    }
}
