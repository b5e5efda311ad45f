//! `verify: ok` means a restore will succeed: each way a backup can look
//! perfect to HEAD and List while GetObject would fail (the version "null",
//! archived classes, a KMS key that can no longer decrypt, a snapshot that
//! does not stand for the source) is reported by verify, and handled by
//! restore, against moto.

mod support;

use std::path::Path;

use aws_sdk_s3::types::{
    BucketVersioningStatus, MetadataDirective, ServerSideEncryption, StorageClass,
    VersioningConfiguration,
};
use s3_kms_sync::Error;
use s3_kms_sync::commands::restore::{self, RestoreOptions, RestoreReport, ThawOptions};
use s3_kms_sync::commands::verify::{
    self, ProblemKind, VerifyOptions, VerifyReport, VerifyRequest,
};
use s3_kms_sync::local::filter::Filter;
use s3_kms_sync::manifest::RunStatus;
use support::*;

const BUCKET: &str = "restorable";
const PREFIX: &str = "p";

async fn verify(backup: &Backup, manifest: Option<&str>) -> VerifyReport {
    let request = VerifyRequest {
        manifest: manifest.map(str::to_owned),
        ..VerifyRequest::default()
    };
    let options = VerifyOptions { concurrency: 4 };
    verify::run(&backup.engine.store, PREFIX, &options, &request)
        .await
        .expect("verify starts")
}

fn options(target: &Path, manifest: Option<&str>) -> RestoreOptions {
    RestoreOptions {
        manifest: manifest.map(str::to_owned),
        ..restore_options(target)
    }
}

async fn restore(backup: &Backup, options: &RestoreOptions) -> s3_kms_sync::Result<RestoreReport> {
    restore::run(&backup.engine.store, PREFIX, options).await
}

async fn enable_versioning(backup: &Backup) {
    let enabled = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .build();
    backup
        .moto
        .s3()
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(enabled)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn objects_written_before_versioning_restore_by_the_version_null() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let src = backup.source.path();
    let then = tree(src);
    let first = backup.sync().await;
    let recorded = manifest_of(&first);
    assert!(
        recorded
            .file_records()
            .all(|f| f.version_id.as_deref() == Some("null")),
        "an unversioned bucket's objects are the version \"null\""
    );

    enable_versioning(&backup).await;
    std::fs::write(src.join("top.txt"), b"top level, changed\n").unwrap();
    std::fs::write(src.join("reports/2026/q1.csv"), b"a,b\n3,4\n").unwrap();
    settle();
    backup.sync().await;
    let now = tree(src);

    let latest = verify(&backup, None).await;
    assert_eq!(
        latest.status,
        verify::VerifyStatus::Ok,
        "{:?}",
        latest.problems
    );
    let older = verify(&backup, first.manifest_s3_uri.as_deref()).await;
    assert_eq!(
        older.status,
        verify::VerifyStatus::Ok,
        "{:?}",
        older.problems
    );

    let present = tempfile::tempdir().unwrap();
    let report = restore(&backup, &options(present.path(), None))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failures);
    assert_eq!(tree(present.path()), now);

    let past = tempfile::tempdir().unwrap();
    let first_uri = first.manifest_s3_uri.as_deref();
    let report = restore(&backup, &options(past.path(), first_uri))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failures);
    assert_eq!(
        tree(past.path()),
        then,
        "GetObject versionId=null gives the first bytes"
    );
}

/// Moves an object to `class` in place, as a lifecycle transition does:
/// same key, same bytes, same metadata.
async fn transition(backup: &Backup, key: &str, class: StorageClass) {
    backup
        .moto
        .s3()
        .copy_object()
        .bucket(BUCKET)
        .key(key)
        .copy_source(format!("{BUCKET}/{key}"))
        .metadata_directive(MetadataDirective::Copy)
        .storage_class(class)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&backup.key_arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_archived_object_is_reported_and_thawed_on_request() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let src = backup.source.path();
    let whole = tree(src);
    backup.sync().await;
    let key = format!("{PREFIX}/top.txt");
    transition(&backup, &key, StorageClass::Glacier).await;

    let report = verify(&backup, None).await;
    let archived: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Archived)
        .collect();
    assert_eq!(archived.len(), 1, "{:?}", report.problems);
    assert_eq!(archived[0].key, key);
    assert!(
        archived[0].detail.contains("GLACIER"),
        "{}",
        archived[0].detail
    );
    assert_eq!(report.archived, 1);

    // Without the flag: the file fails, and the failure names the flag.
    let target = tempfile::tempdir().unwrap();
    let plain = restore(&backup, &options(target.path(), None))
        .await
        .unwrap();
    assert_eq!(plain.status, RunStatus::Partial);
    assert_eq!(plain.failed, 1);
    assert_eq!(plain.failures[0].path, "top.txt");
    assert!(
        plain.failures[0].error.contains("--restore-archived"),
        "{}",
        plain.failures[0].error
    );

    // With it: a thaw is asked for, and the file is pending.
    let mut thawing = options(target.path(), None);
    thawing.thaw = Some(ThawOptions {
        tier: "Bulk".into(),
        days: 2,
    });
    let asked = restore(&backup, &thawing).await.unwrap();
    assert_eq!(asked.status, RunStatus::Partial);
    assert_eq!((asked.pending, asked.failed), (1, 0));
    assert_eq!(asked.requests.get("RestoreObject"), Some(&1));
    assert!(asked.pending_files[0].detail.contains("Bulk"));

    // moto thaws at once: the same restore run again brings it back.
    let again = restore(&backup, &thawing).await.unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.failures);
    assert_eq!((again.restored, again.pending), (1, 0));
    assert_eq!(tree(target.path()), whole);
    let thawed = verify(&backup, None).await;
    assert_eq!(
        thawed.archived, 0,
        "a thawed copy reads: {:?}",
        thawed.problems
    );
}

#[tokio::test]
async fn a_key_that_cannot_decrypt_fails_verify_and_stops_restore() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    backup.sync().await;
    let kms = backup.moto.kms();
    // moto finds a key to change by its id only, not by its ARN.
    let key_id = backup.key_arn.rsplit('/').next().unwrap();
    kms.disable_key().key_id(key_id).send().await.unwrap();

    let disabled = verify(&backup, None).await;
    assert_eq!(disabled.key_unusable, 1, "{:?}", disabled.problems);
    let problem = &disabled.problems[0];
    assert_eq!(problem.key, backup.key_arn);
    assert!(problem.detail.contains("Disabled"), "{}", problem.detail);
    assert!(
        problem.detail.contains("the manifest itself"),
        "{}",
        problem.detail
    );

    let target = tempfile::tempdir().unwrap();
    let refused = restore(&backup, &options(target.path(), None)).await;
    match refused {
        Err(Error::KeyUnusable { key, detail }) => {
            assert_eq!(key, backup.key_arn);
            assert!(detail.contains("enable"), "{detail}");
        }
        other => panic!("expected KeyUnusable, got {other:?}"),
    }
    assert!(
        std::fs::read_dir(target.path()).unwrap().next().is_none(),
        "nothing was written"
    );

    kms.enable_key().key_id(key_id).send().await.unwrap();
    kms.schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let pending = verify(&backup, None).await;
    assert_eq!(pending.key_unusable, 1);
    let detail = &pending.problems[0].detail;
    assert!(
        detail.contains("PendingDeletion") && detail.contains("deleted on"),
        "{detail}"
    );
}

#[tokio::test]
async fn latest_passes_over_a_snapshot_the_emptied_source_guard_stopped() {
    let mut backup = Backup::new(BUCKET, PREFIX, true).await;
    backup.engine.config.command.min_source_ratio = 0.5;
    let src = backup.source.path();
    let whole = tree(src);
    let first = backup.sync().await;
    // The file system is not mounted: the source is empty.
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    let guarded = backup
        .engine
        .run(&s3_kms_sync::commands::sync::SyncRequest::default())
        .await
        .unwrap();
    assert!(guarded.source_shrunk.is_some(), "{guarded:?}");
    // As a manifest written before its state was kept with its object: the
    // same bytes and SHA-256, no `snapshot` metadata. Its header tells.
    let guarded_key = guarded
        .manifest_s3_uri
        .as_deref()
        .unwrap()
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap()
        .to_owned();
    let s3 = backup.moto.s3();
    let sha256 = s3
        .head_object()
        .bucket(BUCKET)
        .key(&guarded_key)
        .send()
        .await
        .unwrap()
        .metadata()
        .unwrap()["sha256"]
        .clone();
    let bytes = get_bytes(&s3, BUCKET, &guarded_key).await;
    backup.put(&guarded_key, bytes, ("sha256", &sha256)).await;

    let report = verify(&backup, None).await;
    assert_eq!(
        report.status,
        verify::VerifyStatus::Ok,
        "{:?}",
        report.problems
    );
    assert_eq!(
        report.manifest_s3_uri,
        first.manifest_s3_uri.clone().unwrap()
    );
    assert_eq!(report.passed_over.len(), 1);
    assert_eq!(
        Some(&report.passed_over[0].manifest_s3_uri),
        guarded.manifest_s3_uri.as_ref()
    );
    assert!(
        report.passed_over[0]
            .reason
            .contains("emptied-source guard")
    );

    let target = tempfile::tempdir().unwrap();
    let restored = restore(&backup, &options(target.path(), None))
        .await
        .unwrap();
    assert_eq!(restored.status, RunStatus::Succeeded);
    assert_eq!(
        tree(target.path()),
        whole,
        "the whole tree, not the empty one"
    );
    assert_eq!(restored.passed_over.len(), 1);

    // An --include that matches nothing restores nothing, and says so.
    let mut narrow = options(target.path(), None);
    narrow.filter = Filter::new(&["no-such-dir/**".to_owned()], &[]).unwrap();
    let nothing = restore(&backup, &narrow).await.unwrap();
    assert_eq!(nothing.status, RunStatus::Failed);
    assert!(nothing.message.as_deref().unwrap().contains("--include"));
}
