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

/// A backup of the sample tree into the Object Lock bucket, prefix `p`.
struct Worm {
    moto: Moto,
    engine: Engine,
    source: tempfile::TempDir,
    _manifests: tempfile::TempDir,
}

impl Worm {
    async fn start() -> Worm {
        let moto = Moto::start();
        let key_arn = worm_bucket(&moto).await;
        let source = tempfile::tempdir().unwrap();
        write_tree(source.path(), &sample_files());
        let manifests = tempfile::tempdir().unwrap();
        let config = settings(source.path(), manifests.path(), BUCKET, &key_arn, "p");
        Worm {
            engine: moto.engine(config),
            moto,
            source,
            _manifests: manifests,
        }
    }
}

/// `forget --keep-last 1 --prune` with no grace.
fn prune_at_once() -> s3_kms_sync::commands::forget::ForgetOptions {
    use s3_kms_sync::commands::forget::{ForgetArgs, ForgetOptions};
    use s3_kms_sync::config::Options;
    ForgetOptions::from_args(
        ForgetArgs {
            keep_last: Some("1".parse().unwrap()),
            prune: true,
            keep_deleted_within: Some("0h".parse().unwrap()),
            ..ForgetArgs::default()
        },
        s3_kms_sync::run::Mode::Cli,
    )
    .unwrap()
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

/// `forget` under Object Lock: a manifest still in retention is refused by
/// S3; forget reports it, keeps it listed, says a later run has work left,
/// and prune still reads it as a kept snapshot.
#[tokio::test]
async fn forget_reports_what_retention_refuses_and_keeps_it() {
    use s3_kms_sync::commands::forget::{self, ForgetStatus};
    let worm = Worm::start().await;
    let (engine, source) = (&worm.engine, worm.source.path());
    engine.run(&SyncRequest::default()).await.unwrap();
    write_tree(source, &[("top.txt", b"again".to_vec())]);
    engine.run(&SyncRequest::default()).await.unwrap();

    let options = prune_at_once();
    let report = Box::pin(forget::run(
        &engine.store,
        "p",
        &engine.config.run,
        &options,
        None,
    ))
    .await
    .unwrap();
    assert_eq!(report.status, ForgetStatus::Partial, "{report:#?}");
    assert_eq!(report.forgotten, 1);
    assert!(
        report
            .retained
            .iter()
            .any(|r| r.key.contains("/_manifests/2")),
        "{:?}",
        report.retained
    );
    let prune = report.prune.as_ref().unwrap();
    assert_eq!(
        prune.manifests_read, 2,
        "the retained manifest still counts"
    );
    let emf = report.emf("f", 0);
    assert_eq!(emf["ForgetLeftOver"], 1);
    let lines = s3_kms_sync::commands::snapshots::run(&engine.store, "p")
        .await
        .unwrap();
    assert_eq!(lines.len(), 2, "the refused snapshot is still listed");
}

/// Item 11 of the prune review: retention keeps the pending prune record
/// as well. The prune finishes the record beside it, reports partial, and
/// the next prune is not stalled by it.
#[tokio::test]
async fn item11_a_prune_record_that_retention_keeps_does_not_stall_the_next() {
    use s3_kms_sync::commands::forget::{self, ForgetStatus};
    let worm = Worm::start().await;
    let (moto, engine) = (&worm.moto, &worm.engine);
    // An upload of a run that died before its manifest: no snapshot
    // references it, so prune hides it.
    moto.s3()
        .put_object()
        .bucket(BUCKET)
        .key("p/stray.bin")
        .metadata("md5checksum", md5_hex(b"stray"))
        .body(b"stray".to_vec().into())
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    next_second();
    engine.run(&SyncRequest::default()).await.unwrap();
    next_second();

    let options = prune_at_once();
    let forget_once = || {
        Box::pin(forget::run(
            &engine.store,
            "p",
            &engine.config.run,
            &options,
            None,
        ))
    };
    let first = forget_once().await.expect("a kept record is no failure");
    assert_eq!(first.status, ForgetStatus::Partial, "{first:#?}");
    let pruned = first.prune.as_ref().unwrap();
    assert_eq!(pruned.hidden, 1, "the stray upload: {first:#?}");
    assert!(
        first
            .retained
            .iter()
            .any(|r| r.key.contains("/_manifests/prune/") && r.key.ends_with(".pending.json")),
        "{:?}",
        first.retained
    );

    let second = forget_once().await.expect("the next prune runs");
    let pruned = second.prune.as_ref().unwrap();
    assert!(pruned.resumed.is_empty(), "{second:#?}");
}
