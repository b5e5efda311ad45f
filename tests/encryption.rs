//! The encryption promise over time, on moto behind the proxy: a key change
//! re-encrypts every object in place by server-side copy, objects another
//! writer stored otherwise are brought under the key, and a copy never
//! overwrites a version it did not check.

mod support;

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::{FileStatus, RunStatus, Summary};
use s3_kms_sync::store::multipart::MIB;
use s3_kms_sync::store::{CopySource, Store};
use s3_kms_sync::{Error, store};
use support::*;

const BUCKET: &str = "rotate";
const PREFIX: &str = "backups";

/// Requests of one operation in a count, 0 when absent.
fn sent(counts: &BTreeMap<String, u64>, op: &str) -> u64 {
    counts.get(op).copied().unwrap_or(0)
}

async fn sync(engine: &Engine) -> Summary {
    let summary = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    summary
}

#[tokio::test]
async fn a_key_change_reencrypts_every_object_in_place_without_sending_data() {
    let stack = Stack::start(BUCKET, PREFIX, 11).await;
    stack.proxy.configure(|f| f.opaque_etags = true);
    let files = sample_files();
    write_tree(stack.source.path(), &files);
    let old_key = stack.engine();
    sync(&old_key).await;
    stack.proxy.reset_counts();
    let unchanged = sync(&old_key).await;
    assert_eq!(unchanged.skipped, files.len() as u64);
    let baseline = stack.proxy.counts();

    let new_key_arn = stack.moto.kms_key().await;
    let new_key = stack.engine_with(&new_key_arn, 8);
    stack.proxy.reset_counts();
    let rotated = sync(&new_key).await;
    let counts = stack.proxy.counts();
    assert_eq!(rotated.reencrypted, files.len() as u64, "{rotated:?}");
    assert_eq!((rotated.uploaded, rotated.skipped), (0, 0));
    assert_eq!(rotated.bytes_read, 0, "no file was read");
    // Each file, and the two older snapshots (objects and pages), copied in place.
    assert!(rotated.manifests_reencrypted >= 3, "{rotated:?}");
    assert_eq!(
        sent(&counts, "CopyObject"),
        files.len() as u64 + rotated.manifests_reencrypted
    );
    for op in ["UploadPart", "CreateMultipartUpload", "UploadPartCopy"] {
        assert_eq!(sent(&counts, op), 0, "{op}: {counts:?}");
    }
    // Only the lock, the snapshot and the pages of the records that name
    // the new key are written; no data.
    assert_eq!(
        sent(&counts, "PutObject"),
        sent(&baseline, "PutObject") + rotated.pages.unwrap().sent,
        "{counts:?}"
    );

    let s3 = stack.moto.s3();
    for (relative, content) in &files {
        let key = format!("{PREFIX}/{relative}");
        assert_stored(&s3, BUCKET, &key, &new_key_arn, content, true).await;
        let object = head(&s3, BUCKET, &key).await;
        assert_eq!(object.bucket_key_enabled(), Some(true), "{key}");
    }
    let manifest = manifest_of(&rotated);
    for file in manifest.file_records() {
        assert_eq!(file.status, FileStatus::Reencrypted, "{file:?}");
        assert_eq!(file.kms_key_id.as_deref(), Some(new_key_arn.as_str()));
        assert!(file.reason.as_deref().unwrap().contains("another KMS key"));
    }

    // The next run finds everything under the new key.
    stack.proxy.reset_counts();
    let settled = sync(&new_key).await;
    assert_eq!(settled.skipped, files.len() as u64);
    assert_eq!(settled.reencrypted, 0);
    assert_eq!(sent(&stack.proxy.counts(), "CopyObject"), 0);
}

#[tokio::test]
async fn objects_stored_by_another_writer_without_sse_kms_are_brought_under_the_key() {
    let stack = Stack::start(BUCKET, PREFIX, 12).await;
    let files = sample_files();
    write_tree(stack.source.path(), &files);
    // Another tool stored the same content with SSE-S3 and the MD5 metadata,
    // as a migration from an older backup would.
    let s3 = stack.moto.s3();
    for (relative, content) in &files {
        s3.put_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/{relative}"))
            .body(ByteStream::from(content.clone()))
            .metadata(store::MD5_METADATA, md5_hex(content))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap();
    }
    stack.proxy.reset_counts();
    let summary = sync(&stack.engine()).await;
    assert_eq!(summary.reencrypted, files.len() as u64, "{summary:?}");
    assert_eq!(summary.uploaded, 0);
    let counts = stack.proxy.counts();
    assert_eq!(sent(&counts, "UploadPart"), 0, "{counts:?}");
    for (relative, content) in &files {
        let key = format!("{PREFIX}/{relative}");
        assert_stored(&s3, BUCKET, &key, &stack.key_arn, content, true).await;
    }
    let reasons: Vec<_> = manifest_of(&summary)
        .files
        .into_iter()
        .filter_map(|f| f.reason)
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("not under SSE-KMS")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_copy_never_overwrites_a_version_it_did_not_check() {
    let stack = Stack::start(BUCKET, PREFIX, 13).await;
    stack.proxy.configure(|f| f.opaque_etags = true);
    let store = Store::new(client_for(&stack.proxy.endpoint), BUCKET, &stack.key_arn);
    let put = |body: &'static [u8]| {
        let s3 = stack.moto.s3();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key("k")
                .body(ByteStream::from_static(body))
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await
                .unwrap();
        }
    };
    put(b"checked").await;
    let checked = store.head("k").await.unwrap().unwrap();
    put(b"written meanwhile").await;
    let source = CopySource {
        key: "k",
        etag: checked.etag.as_deref().unwrap(),
        size: 7,
        storage_class: None,
    };
    let err = store.reencrypt(source).await.unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err}");
    let s3 = stack.moto.s3();
    assert_eq!(get_bytes(&s3, BUCKET, "k").await, b"written meanwhile");
    let object = head(&s3, BUCKET, "k").await;
    assert_eq!(
        object.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256),
        "left as the other writer stored it"
    );
}

#[tokio::test]
async fn an_object_above_the_copy_limit_is_copied_part_by_part_with_its_metadata() {
    let stack = Stack::start(BUCKET, PREFIX, 14).await;
    let store = Store::new(client_for(&stack.proxy.endpoint), BUCKET, &stack.key_arn)
        .with_max_single_copy(5 * MIB);
    let body: Vec<u8> = (0..11 * MIB as usize).map(|i| (i % 251) as u8).collect();
    let s3 = stack.moto.s3();
    s3.put_object()
        .bucket(BUCKET)
        .key("large.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-test")
        .metadata(store::MD5_METADATA, md5_hex(&body))
        .metadata("owner", "someone else")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    let checked = store.head("large.bin").await.unwrap().unwrap();
    stack.proxy.reset_counts();
    let stored = store
        .reencrypt(CopySource {
            key: "large.bin",
            etag: checked.etag.as_deref().unwrap(),
            size: body.len() as u64,
            storage_class: None,
        })
        .await
        .unwrap();
    assert_eq!(stored.encryption.bucket_key_enabled, Some(true));
    let counts = stack.proxy.counts();
    assert_eq!(sent(&counts, "UploadPartCopy"), 3, "{counts:?}");
    assert_eq!(sent(&counts, "CopyObject") + sent(&counts, "UploadPart"), 0);
    assert_stored(&s3, BUCKET, "large.bin", &stack.key_arn, &body, true).await;
    let after = head(&s3, BUCKET, "large.bin").await;
    assert_eq!(after.content_type(), Some("application/x-test"));
    assert_eq!(
        after
            .metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("someone else")
    );
}

/// After a key change one sync leaves the prefix compliant by its own
/// audit: the older manifests are re-encrypted too, byte for byte, so the
/// chain holds and the old snapshots still verify and restore.
#[tokio::test]
async fn a_key_change_brings_the_older_manifests_under_the_new_key() {
    use s3_kms_sync::commands::audit::{self, AuditOptions, AuditRequest, AuditStatus};
    use s3_kms_sync::commands::restore;
    use s3_kms_sync::commands::verify::{self, VerifyOptions, VerifyRequest, VerifyStatus};
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let first = backup.sync().await;
    std::fs::write(backup.source.path().join("top.txt"), b"second\n").unwrap();
    let second = backup.sync().await;
    let old_tree = tree(backup.source.path());

    let new_key = backup.moto.kms_key().await;
    let config = settings(
        backup.source.path(),
        backup.manifests.path(),
        BUCKET,
        &new_key,
        PREFIX,
    );
    let rotated_engine = backup.moto.engine(config);
    let rotated = rotated_engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(rotated.status, RunStatus::Succeeded, "{rotated:?}");
    assert!(rotated.reencrypted > 0);
    assert!(rotated.manifests_reencrypted >= 3, "{rotated:?}");

    let s3 = backup.moto.s3();
    let store = &rotated_engine.store;
    for summary in [&first, &second, &rotated] {
        let key = manifest_key(summary, BUCKET);
        let object = head(&s3, BUCKET, &key).await;
        assert_eq!(object.ssekms_key_id(), Some(new_key.as_str()), "{key}");
        assert_eq!(object.bucket_key_enabled(), Some(true), "{key}");
    }
    let report = audit::run(
        store,
        PREFIX,
        &AuditOptions {
            concurrency: 4,
            ..AuditOptions::default()
        },
        &AuditRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.status, AuditStatus::Compliant, "{report:#?}");

    // The second snapshot, now under the new key: its chain and its files.
    let request = VerifyRequest {
        manifest: second.manifest_s3_uri.clone(),
        ..VerifyRequest::default()
    };
    let verified = verify::run(store, PREFIX, &VerifyOptions { concurrency: 4 }, &request)
        .await
        .unwrap();
    assert_eq!(verified.status, VerifyStatus::Ok, "{verified:#?}");
    assert_eq!(verified.chain_checked, 2);
    let target = tempfile::tempdir().unwrap();
    let options = restore::RestoreOptions {
        manifest: second.manifest_s3_uri.clone(),
        ..restore_options(target.path())
    };
    let restored = restore::run(store, PREFIX, &options).await.unwrap();
    assert_eq!(restored.status, RunStatus::Succeeded, "{restored:?}");
    assert_eq!(tree(target.path()), old_tree);
}
