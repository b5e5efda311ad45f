//! Every sample payload in events/ runs through the Lambda handler against
//! moto, so the samples cannot rot.

mod support;

use std::path::Path;

use lambda_runtime::{Context, LambdaEvent};
use s3_kms_sync::commands::audit::AuditStatus;
use s3_kms_sync::commands::verify::VerifyStatus;
use s3_kms_sync::lambda::handle;
use s3_kms_sync::lambda::handler::Output;
use s3_kms_sync::manifest::{RunStatus, Summary};
use support::*;

const BUCKET: &str = "lambda-backups";

fn load(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn invoke_any(engine: &Engine, name: &str) -> Output {
    handle(engine, LambdaEvent::new(load(name), Context::default()))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn invoke(engine: &Engine, name: &str) -> Summary {
    let output = invoke_any(engine, name).await;
    output
        .summary()
        .unwrap_or_else(|| panic!("{name} is not a sync"))
}

#[tokio::test]
async fn every_sample_event_runs_through_the_handler() {
    let moto = Moto::start();
    let key = moto.bucket_and_key(BUCKET).await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let files = sample_files();
    write_tree(source.path(), &files);
    write_tree(source.path(), &[("reports/scratch.tmp", b"t".to_vec())]);
    let total = files.len() as u64 + 1;
    let in_reports = files
        .iter()
        .filter(|(p, _)| p.starts_with("reports/"))
        .count() as u64;
    let engine = moto.engine(settings(
        source.path(),
        manifests.path(),
        BUCKET,
        &key,
        "lambda",
    ));

    let mut names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("events"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit.json",
            "dry-run.json",
            "forget.json",
            "manual.json",
            "scheduled.json",
            "verify.json"
        ],
        "give each new event an expectation here"
    );

    let dry = invoke(&engine, "dry-run.json").await;
    assert_eq!((dry.would_upload, dry.uploaded), (total, 0));
    assert!(
        list_keys(&moto.s3(), BUCKET).await.is_empty(),
        "dry run wrote to S3"
    );

    // The manual run narrows to reports/ and leaves out *.tmp.
    let manual = invoke(&engine, "manual.json").await;
    assert_eq!(
        (manual.uploaded, manual.skipped, manual.failed),
        (in_reports, 0, 0)
    );
    let stored = list_keys(&moto.s3(), BUCKET).await;
    assert!(
        stored
            .iter()
            .filter(|k| !k.contains("/_manifests/"))
            .all(|k| k.starts_with("lambda/reports/"))
    );
    assert!(!stored.iter().any(|k| k.ends_with(".tmp")));

    let scheduled = invoke(&engine, "scheduled.json").await;
    assert_eq!(scheduled.status, RunStatus::Succeeded);
    assert_eq!(
        (scheduled.uploaded, scheduled.skipped),
        (total - in_reports, in_reports)
    );

    // The weekly check proves the newest backup and reads a tenth back.
    let Output::Verify(verified) = invoke_any(&engine, "verify.json").await else {
        panic!("verify.json did not verify")
    };
    assert_eq!(verified.status, VerifyStatus::Ok, "{:?}", verified.problems);
    assert_eq!(verified.checked, total);
    assert_eq!(verified.manifest_s3_uri, scheduled.manifest_s3_uri.unwrap());
    assert_eq!(verified.read_data.unwrap().slots, 1000);

    // The scheduled audit re-encrypts what another writer stored otherwise.
    moto.s3()
        .put_object()
        .bucket(BUCKET)
        .key("lambda/foreign.txt")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"sse-s3"))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    let Output::Audit(audited) = invoke_any(&engine, "audit.json").await else {
        panic!("audit.json did not audit")
    };
    assert_eq!((audited.findings, audited.fixed), (1, 1), "{audited:?}");
    assert_eq!(audited.status, AuditStatus::Compliant);
    assert_eq!(audited.listed[0].key, "lambda/foreign.txt");

    // The scheduled retention keeps both lines' newest snapshots; in this
    // unversioned bucket nothing may be deleted, the foreign object is newer
    // than the newest snapshot, and no version is pruned.
    let before = list_keys(&moto.s3(), BUCKET).await;
    let Output::Forget(forgot) = invoke_any(&engine, "forget.json").await else {
        panic!("forget.json did not forget")
    };
    assert_eq!((forgot.kept, forgot.forgotten), (2, 0), "{forgot:#?}");
    let prune = forgot.prune.unwrap();
    assert_eq!(
        (prune.manifests_read, prune.deleted, prune.hidden),
        (2, 0, 0)
    );
    assert_eq!(list_keys(&moto.s3(), BUCKET).await, before);
}

#[tokio::test]
async fn events_cannot_escape_or_retarget() {
    let moto = Moto::start();
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let engine = moto.engine(settings(source.path(), manifests.path(), BUCKET, "k", ""));
    for payload in [
        serde_json::json!({"subdir": "../"}),
        serde_json::json!({"subdir": "/etc"}),
        serde_json::json!({"bucket": "elsewhere"}),
        serde_json::json!({"kms_key_id": "alias/other"}),
    ] {
        let result = handle(
            &engine,
            LambdaEvent::new(payload.clone(), Context::default()),
        )
        .await;
        let err = result.expect_err(&payload.to_string());
        assert_eq!(err.kind(), "EventError", "{payload}: {err}");
    }
}
