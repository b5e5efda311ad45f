//! `restore` against a moto server: any manifest's tree comes back byte for
//! byte, by version; a second run fetches nothing; an interrupted one
//! resumes; a wrong download, a path out of the directory and a rewritten
//! manifest chain are each refused without leaving a wrong file behind.

mod support;

use std::path::Path;

use s3_kms_sync::Error;
use s3_kms_sync::commands::restore::{self, RestoreOptions, RestoreReport};
use s3_kms_sync::manifest::{RunStatus, Summary};
use support::*;

const BUCKET: &str = "restores";
const PREFIX: &str = "r";

async fn restore_with(
    backup: &Backup,
    manifest: Option<&str>,
    target: &Path,
    overwrite: bool,
) -> s3_kms_sync::Result<RestoreReport> {
    let options = RestoreOptions {
        manifest: manifest.map(str::to_owned),
        overwrite,
        ..restore_options(target)
    };
    restore::run(&backup.engine.store, PREFIX, &options).await
}

fn key_of(summary: &Summary) -> String {
    manifest_key(summary, BUCKET)
}

#[tokio::test]
async fn any_manifest_restores_its_tree_byte_for_byte() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let then = tree(backup.source.path());
    let first = backup.sync().await;

    let src = backup.source.path();
    std::fs::write(src.join("top.txt"), b"top level, rewritten\n").unwrap();
    std::fs::remove_file(src.join("with space/file name.txt")).unwrap();
    std::fs::write(src.join("new.txt"), b"new\n").unwrap();
    settle();
    backup.sync().await;
    let now = tree(src);
    assert_ne!(then, now);

    let past = tempfile::tempdir().unwrap();
    let report = restore_with(
        &backup,
        first.manifest_s3_uri.as_deref(),
        past.path(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failures);
    assert_eq!((report.restored, report.failed), (then.len() as u64, 0));
    assert_eq!(
        tree(past.path()),
        then,
        "the first manifest gives back the first tree"
    );
    let leaf = "deep/a/b/c/leaf.json";
    let mtime = |root: &Path| {
        std::fs::metadata(root.join(leaf))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert_eq!(
        mtime(past.path()),
        mtime(src),
        "the recorded mtime is restored"
    );

    let present = tempfile::tempdir().unwrap();
    let latest = restore_with(&backup, None, present.path(), false)
        .await
        .unwrap();
    assert_eq!(latest.status, RunStatus::Succeeded, "{:?}", latest.failures);
    assert_eq!(
        tree(present.path()),
        now,
        "the newest manifest gives back the current tree"
    );

    let again = restore_with(
        &backup,
        first.manifest_s3_uri.as_deref(),
        past.path(),
        false,
    )
    .await
    .unwrap();
    assert_eq!((again.restored, again.skipped), (0, then.len() as u64));
    assert_eq!(
        again.requests.get("GetObject"),
        Some(&(1 + first.pages.as_ref().unwrap().nodes)),
        "only the snapshot object and its pages (the first has no predecessor): {:?}",
        again.requests
    );
}

#[tokio::test]
async fn a_restore_refuses_what_it_cannot_prove_and_resumes() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let first = backup.sync().await;
    let manifest = manifest_of(&first);
    let record = |path: &str| {
        manifest
            .files
            .iter()
            .find(|f| f.local_path.ends_with(path))
            .unwrap()
            .clone()
    };

    // Interrupted: one object cannot be fetched; the rest is restored.
    let csv = record("q1.csv");
    let csv_key = csv.s3_key.clone().unwrap();
    let csv_bytes = get_bytes(&backup.moto.s3(), BUCKET, &csv_key).await;
    backup
        .moto
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(&csv_key)
        .send()
        .await
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let uri = first.manifest_s3_uri.clone();
    let interrupted = restore_with(&backup, uri.as_deref(), target.path(), false)
        .await
        .unwrap();
    assert_eq!(interrupted.status, RunStatus::Partial);
    assert_eq!(interrupted.failed, 1);
    assert!(interrupted.failures[0].path.ends_with("q1.csv"));
    assert!(!target.path().join("reports/2026/q1.csv").exists());

    // Back again: the second run fetches only what is missing.
    let md5 = csv.md5.clone().unwrap();
    backup
        .put(&csv_key, csv_bytes.clone(), ("md5checksum", &md5))
        .await;
    let resumed = restore_with(&backup, uri.as_deref(), target.path(), false)
        .await
        .unwrap();
    assert_eq!(
        (resumed.restored, resumed.skipped, resumed.failed),
        (1, sample_files().len() as u64 - 1, 0)
    );

    // Other bytes under the same key and metadata: no file under the real name.
    let top = record("top.txt");
    let top_key = top.s3_key.clone().unwrap();
    backup
        .put(
            &top_key,
            b"TOP LEVEL\n".to_vec(),
            ("md5checksum", top.md5.as_deref().unwrap()),
        )
        .await;
    let fresh = tempfile::tempdir().unwrap();
    let wrong = restore_with(&backup, uri.as_deref(), fresh.path(), false)
        .await
        .unwrap();
    assert_eq!(wrong.failed, 1);
    assert!(
        wrong.failures[0].error.contains("MD5"),
        "{:?}",
        wrong.failures
    );
    assert!(!fresh.path().join("top.txt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(fresh.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An existing file with other content is left alone, unless asked.
    std::fs::write(target.path().join("empty.dat"), b"mine").unwrap();
    let kept = restore_with(&backup, uri.as_deref(), target.path(), false)
        .await
        .unwrap();
    assert!(
        kept.failures
            .iter()
            .any(|f| f.path == "empty.dat" && f.error.contains("--overwrite")),
        "{:?}",
        kept.failures
    );
    assert_eq!(
        std::fs::read(target.path().join("empty.dat")).unwrap(),
        b"mine"
    );
    restore_with(&backup, uri.as_deref(), target.path(), true)
        .await
        .unwrap();
    assert_eq!(std::fs::read(target.path().join("empty.dat")).unwrap(), b"");

    // A forged manifest whose entry climbs out of the directory, and whose
    // record of top.txt names leaf.json's object (with its size and MD5, so
    // the download would check out): the object a path gets must be the
    // one its path maps to under the run's prefix.
    let mut forged = manifest.clone();
    forged.run_id = "forged".into();
    // Named as its header says: only the records are at fault.
    forged.started_at = "2999-12-31T00:00:00.000Z".into();
    let mut escape = record("leaf.json");
    escape.local_path = format!("{}/../escape.txt", manifest.source_dir);
    let mut swapped = record("leaf.json");
    swapped.local_path = record("top.txt").local_path;
    forged.files = vec![escape, record("leaf.json"), swapped];
    let body = serde_json::to_vec(&forged).unwrap();
    let forged_key = format!("{PREFIX}/_manifests/29991231T000000.000Z-forged.json");
    let mut digest = s3_kms_sync::local::hash::Sha256Stream::default();
    digest.update(&body);
    backup
        .put(&forged_key, body, ("sha256", &digest.finish_hex()))
        .await;
    let outside = tempfile::tempdir().unwrap();
    let inner = outside.path().join("inner");
    let refused = restore_with(&backup, Some(&forged_key), &inner, false)
        .await
        .unwrap();
    assert_eq!(
        (refused.restored, refused.failed),
        (1, 2),
        "{:?}",
        refused.failures
    );
    assert!(
        refused.failures.iter().all(|f| f.error.contains("refused")),
        "{:?}",
        refused.failures
    );
    assert!(refused.failures.iter().any(|f| f.path == "top.txt"));
    assert!(
        !inner.join("top.txt").exists(),
        "no other object under its name"
    );
    assert!(!outside.path().join("escape.txt").exists());
    assert!(inner.join("deep/a/b/c/leaf.json").exists());
}

#[tokio::test]
async fn a_manifest_the_chain_does_not_vouch_for_restores_nothing() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let first = backup.sync().await;
    std::fs::write(backup.source.path().join("later.txt"), b"later\n").unwrap();
    settle();
    backup.sync().await;

    // The older manifest rewritten, its stored SHA-256 kept.
    let first_key = key_of(&first);
    let s3 = backup.moto.s3();
    let sha256 = s3
        .head_object()
        .bucket(BUCKET)
        .key(&first_key)
        .send()
        .await
        .unwrap()
        .metadata()
        .unwrap()["sha256"]
        .clone();
    let mut bytes = get_bytes(&s3, BUCKET, &first_key).await;
    bytes.push(b'\n');
    backup.put(&first_key, bytes, ("sha256", &sha256)).await;

    let target = tempfile::tempdir().unwrap();
    let err = restore_with(&backup, None, &target.path().join("out"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ChainBroken { key, .. } if *key == first_key),
        "{err}"
    );
    assert!(!target.path().join("out").exists(), "nothing was restored");
}

/// A run stopped by the time limit before its walk reached anything carries
/// the last manifest's records: its manifest is still a whole snapshot, and
/// restores the tree that manifest recorded, by version.
#[tokio::test]
async fn a_manifest_of_carried_records_restores_the_tree_they_recorded() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let then = tree(backup.source.path());
    let first = backup.sync().await;
    std::fs::write(backup.source.path().join("top.txt"), b"rewritten\n").unwrap();
    settle();

    let cut = backup
        .engine
        .run_until(
            &s3_kms_sync::commands::sync::SyncRequest::default(),
            Some(std::time::Instant::now()),
        )
        .await
        .unwrap();
    assert_eq!(
        (cut.status, cut.uploaded, cut.carried),
        (RunStatus::Partial, 0, first.uploaded),
        "{cut:?}"
    );
    let target = tempfile::tempdir().unwrap();
    let report = restore_with(
        &backup,
        cut.manifest_s3_uri.as_deref(),
        target.path(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failures);
    assert_eq!(
        tree(target.path()),
        then,
        "the carried records name the versions the first run stored"
    );
}
