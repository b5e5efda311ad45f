//! Runs against a bucket with S3 Object Lock and a default retention, as the
//! template creates it with `ObjectLockMode`: every write is a new version
//! that cannot be deleted within retention, the lock's renewal writes new
//! versions, and its release is a delete marker.

mod support;

use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule,
};
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::RunStatus;
use support::*;

const BUCKET: &str = "worm-backups";
const LOCK_KEY: &str = "p/_manifests/lock.json";

async fn worm_bucket(moto: &Moto) -> String {
    let s3 = moto.s3();
    s3.create_bucket()
        .bucket(BUCKET)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create bucket with Object Lock");
    let retention = DefaultRetention::builder()
        .mode(ObjectLockRetentionMode::Governance)
        .days(1)
        .build();
    s3.put_object_lock_configuration()
        .bucket(BUCKET)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(retention)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("default retention");
    let key = moto.kms_key().await;
    moto.encrypt_by_default(BUCKET, &key).await;
    key
}

#[tokio::test]
async fn runs_work_under_object_lock_and_what_they_wrote_cannot_be_deleted() {
    let moto = Moto::start();
    let key_arn = worm_bucket(&moto).await;
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), &sample_files());
    let manifests = tempfile::tempdir().unwrap();
    let engine = moto.engine(settings(
        source.path(),
        manifests.path(),
        BUCKET,
        &key_arn,
        "p",
    ));
    let s3 = moto.s3();

    let first = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(
        (first.status, first.uploaded),
        (RunStatus::Succeeded, sample_files().len() as u64)
    );
    let second = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(
        (second.status, second.skipped),
        (RunStatus::Succeeded, sample_files().len() as u64),
        "{second:?}"
    );
    write_tree(
        source.path(),
        &[("top.txt", b"rewritten under retention".to_vec())],
    );
    settle();
    let third = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!((third.status, third.uploaded), (RunStatus::Succeeded, 1));

    // Each run took and released the lock: its newest version is a delete
    // marker, over one version per acquisition and renewal.
    let versions = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(LOCK_KEY)
        .send()
        .await
        .unwrap();
    let latest_marker = versions
        .delete_markers()
        .iter()
        .any(|m| m.is_latest() == Some(true));
    assert!(latest_marker, "the lock is released by a delete marker");
    assert!(versions.versions().len() >= 3, "{versions:?}");

    // What the runs wrote is under retention: a manifest's version cannot
    // be deleted, not even by the writer that stored it.
    let manifest_key = third
        .manifest_s3_uri
        .as_deref()
        .and_then(|uri| uri.strip_prefix(&format!("s3://{BUCKET}/")))
        .unwrap()
        .to_owned();
    let head = head(&s3, BUCKET, &manifest_key).await;
    assert_eq!(
        head.object_lock_mode(),
        Some(&aws_sdk_s3::types::ObjectLockMode::Governance)
    );
    let deleted = s3
        .delete_object()
        .bucket(BUCKET)
        .key(&manifest_key)
        .version_id(head.version_id().unwrap())
        .send()
        .await;
    assert!(deleted.is_err(), "a retained version was deleted");
    assert_eq!(
        get_bytes(&s3, BUCKET, "p/top.txt").await,
        b"rewritten under retention"
    );
}
