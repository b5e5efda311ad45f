//! The write side obeys the signature (items 1 to 5 and 12 of the trust
//! review): what sync takes as its index, what "latest", `snapshots`,
//! `ls` and `forget` count, each played against moto by a principal that
//! may only put objects into the prefix, writing straight to S3.

mod support;

use s3_kms_sync::commands::forget::{self, ForgetArgs, ForgetReport};
use s3_kms_sync::commands::snapshots;
use s3_kms_sync::config::Options;
use s3_kms_sync::local::filter::Filter;
use s3_kms_sync::manifest::{FileStatus, RunStatus, Summary};
use s3_kms_sync::run::Mode;
use support::trust::*;
use support::*;

/// Ten bytes, as long as `top.txt`'s "top level\n".
const EVIL: &[u8] = b"EVIL CONT\n";

async fn forget_dry(backup: &Backup, keep_last: &str) -> ForgetReport {
    let args = ForgetArgs {
        keep_last: Some(keep_last.parse().unwrap()),
        dry_run: true,
        ..ForgetArgs::default()
    };
    forget_with(backup, args).await
}

/// Overwrites `top.txt`'s object with `EVIL`, as a put-only principal
/// would, with `md5checksum` metadata of `claimed`; its version and ETag.
async fn rewrite_top(backup: &Backup, claimed: &[u8]) -> (Option<String>, Option<String>) {
    let key = format!("{PREFIX}/top.txt");
    let md5 = md5_hex(claimed);
    plant(backup, &key, EVIL, &[("md5checksum", &md5)]).await;
    let head = backup
        .moto
        .s3()
        .head_object()
        .bucket(backup.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    (
        head.version_id().map(str::to_owned),
        head.e_tag().map(str::to_owned),
    )
}

fn forget_local_copies(backup: &Backup) {
    for entry in std::fs::read_dir(backup.manifests.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::remove_file(path).unwrap();
        } else {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
}

/// Plants `body` at `key` with the signature and SHA-256 kept with the
/// backup's own manifest at `real_key`, copied as metadata.
async fn plant_with_copied_signature(backup: &Backup, real_key: &str, key: &str, body: &[u8]) {
    let stored = backup.engine.store.head(real_key).await.unwrap().unwrap();
    let signature = stored.signature.unwrap();
    let copied = [
        ("sha256", stored.sha256.as_deref().unwrap()),
        ("signature", signature.signature.as_str()),
        ("signing-key", signature.key_arn.as_str()),
    ];
    plant(backup, key, body, &copied).await;
}

async fn restores_the_source(backup: &Backup) {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("r");
    let restored = restore_with(&backup.engine.store, None, &target)
        .await
        .unwrap();
    assert_eq!(restored.status, RunStatus::Succeeded, "{restored:?}");
    assert_eq!(tree(&target), tree(backup.source.path()));
}

/// Item 1: a planted manifest named to sort last, its record of `top.txt`
/// pointing at the attacker's version, is read, refused and named by a
/// cold run (no local copy); the run takes the backup's own manifest, sends
/// `top.txt` again, and signs only what it stored.
#[tokio::test]
async fn item1_a_planted_manifest_is_not_the_next_syncs_index() {
    let (backup, _) = signed_backup("trust-index", true).await;
    let first = backup.sync().await;
    let real = manifest_of(&first);
    let (version, etag) = rewrite_top(&backup, EVIL).await;
    let (mut planted, planted_key) = as_run(&real, "planted", "2999-12-31T00:00:00.000Z");
    let index = planted
        .files
        .iter()
        .position(|f| f.local_path.ends_with("/top.txt"))
        .unwrap();
    let top = &mut planted.files[index];
    top.md5 = Some(md5_hex(EVIL));
    top.version_id = version.clone();
    top.etag = etag;
    plant_unsigned(&backup, &planted_key, &planted).await;
    forget_local_copies(&backup);

    let second = backup.sync().await;
    let passed = &second.index_passed_over;
    assert_eq!(passed.len(), 1, "{passed:?}");
    assert_eq!(
        passed[0].manifest_s3_uri,
        format!("s3://{}/{planted_key}", backup.bucket)
    );
    assert!(passed[0].reason.contains("unsigned"), "{passed:?}");
    let signed = manifest_of(&second);
    let link = signed.previous_manifest.clone().expect("a chain link");
    assert_eq!(
        link.key,
        manifest_key(&first, backup.bucket),
        "the chain links the backup's own manifest, not the planted one"
    );
    let top = record(&signed, "top.txt");
    assert_eq!(top.status, FileStatus::Uploaded, "{top:?}");
    assert_ne!(
        top.version_id, version,
        "the attacker's version is not signed"
    );
    assert_eq!(top.md5.as_deref(), Some(md5_hex(b"top level\n").as_str()));
    restores_the_source(&backup).await;
}

/// Item 2: an object overwritten with other bytes of the same size and
/// the recorded `md5checksum` copied is sent again, not kept on the
/// strength of its metadata.
#[tokio::test]
async fn item2_an_object_rewritten_with_copied_metadata_is_sent_again() {
    let (backup, _) = signed_backup("trust-rewrite", true).await;
    backup.sync().await;
    let (version, _) = rewrite_top(&backup, b"top level\n").await;
    let second = backup.sync().await;
    let top = record(&manifest_of(&second), "top.txt");
    assert_eq!(top.status, FileStatus::Uploaded, "{top:?}");
    assert!(
        top.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("rewritten")),
        "{top:?}"
    );
    assert_ne!(top.version_id, version);
    assert_eq!(second.uploaded, 1, "only the rewritten file: {second:?}");
    restores_the_source(&backup).await;
}

/// Item 3: the scope is signed. A signed snapshot of `*.log` only, copied
/// under the whole-source name with its metadata, is not "latest": its
/// signed header gives another scope than its name.
#[tokio::test]
async fn item3_a_scoped_snapshot_renamed_to_the_whole_source_is_refused() {
    let (mut backup, _) = signed_backup("trust-scope", true).await;
    write_tree(backup.source.path(), &[("logs/app.log", b"log\n".to_vec())]);
    let whole = backup.sync().await;
    backup.engine.config.command.filter = Filter::new(&["*.log".into()], &[]).unwrap();
    let logs = backup.sync().await;
    let scoped_key = manifest_key(&logs, backup.bucket);
    assert!(scoped_key.contains(".scope-"), "{scoped_key}");
    let renamed = format!("{}.json", scoped_key.split(".scope-").next().unwrap());
    backup
        .moto
        .s3()
        .copy_object()
        .bucket(backup.bucket)
        .key(&renamed)
        .copy_source(format!("{}/{scoped_key}", backup.bucket))
        .send()
        .await
        .unwrap();

    let report = verify_with(&backup.engine.store, None).await;
    assert_eq!(report.manifest_s3_uri, whole.manifest_s3_uri.unwrap());
    let passed = &report.passed_over;
    assert!(
        passed
            .iter()
            .any(|p| p.manifest_s3_uri.ends_with(&renamed) && p.reason.contains("scope")),
        "{passed:?}"
    );
    backup.engine.config.command.filter = Filter::new(&[], &[]).unwrap();
    restores_the_source(&backup).await;
}

/// Item 4: a body with no files carrying the real manifest's signature
/// and SHA-256 is judged over its bytes: not "latest", untrusted in
/// `snapshots`, and no denial of restore.
#[tokio::test]
async fn item4_a_copied_signature_on_other_bytes_stands_for_nothing() {
    let (backup, _) = signed_backup("trust-copied", true).await;
    let first = backup.sync().await;
    let real = manifest_of(&first);
    let real_key = manifest_key(&first, backup.bucket);
    let (mut empty, empty_key) = as_run(&real, "empty", "2999-01-01T00:00:00.000Z");
    empty.files.clear();
    let body = serde_json::to_vec(&empty).unwrap();
    plant_with_copied_signature(&backup, &real_key, &empty_key, &body).await;

    let report = verify_with(&backup.engine.store, None).await;
    assert_eq!(
        report.manifest_s3_uri,
        first.manifest_s3_uri.clone().unwrap()
    );
    assert!(
        report.passed_over[0].reason.contains("does not verify"),
        "{report:?}"
    );
    let lines = snapshots::run(&backup.engine.store, PREFIX).await.unwrap();
    let planted = lines.iter().find(|l| l.key == empty_key).unwrap();
    assert_eq!(planted.restorable, "untrusted");
    assert!(!planted.trusted(), "{planted:?}");
    restores_the_source(&backup).await;
}

/// Item 5: three real snapshots and two planted ones (one unsigned, one
/// with copied metadata); `--keep-last 3` keeps the three real ones and
/// lists the planted apart, counting them for nothing.
#[tokio::test]
async fn item5_forget_counts_only_trusted_snapshots() {
    let (backup, _) = signed_backup("trust-forget", true).await;
    let mut real: Vec<Summary> = Vec::new();
    for _ in 0..3 {
        real.push(backup.sync().await);
    }
    let newest = manifest_of(&real[2]);
    let (unsigned, unsigned_key) = as_run(&newest, "unsigned", "2999-01-01T00:00:00.000Z");
    plant_unsigned(&backup, &unsigned_key, &unsigned).await;
    let newest_key = manifest_key(&real[2], backup.bucket);
    let (copied, copied_key) = as_run(&newest, "copied", "2999-01-02T00:00:00.000Z");
    let body = serde_json::to_vec(&copied).unwrap();
    plant_with_copied_signature(&backup, &newest_key, &copied_key, &body).await;

    let report = forget_dry(&backup, "3").await;
    let kept: Vec<&str> = report
        .snapshots
        .iter()
        .filter(|f| f.kept)
        .map(|f| f.line.run_id.as_str())
        .collect();
    let real_ids: Vec<&str> = real.iter().map(|s| s.run_id.as_str()).collect();
    assert_eq!(kept, real_ids, "{report:#?}");
    assert_eq!(report.forgotten, 0);
    let untrusted: Vec<&str> = report.untrusted.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(untrusted, [unsigned_key.as_str(), copied_key.as_str()]);
    assert!(forget::table(&report).contains("ignored 2 untrusted"));
}

/// Item 12: a manifest the trusted key signed, whose writer's clock ran
/// years fast, is suspect: not "latest", and it counts for nothing in
/// `forget`.
#[tokio::test]
async fn item12_a_snapshot_from_a_fast_clock_is_suspect() {
    let (backup, signing) = signed_backup("trust-clock", true).await;
    let first = backup.sync().await;
    let (fast, fast_key) = as_run(&manifest_of(&first), "fast", "2999-01-01T00:00:00.000Z");
    let body = serde_json::to_vec(&fast).unwrap();
    let signature = kms_sign(&backup, &signing, &body).await;
    plant_signed(&backup, &fast_key, &body, &signature, &signing).await;

    let report = verify_with(&backup.engine.store, None).await;
    assert_eq!(
        report.manifest_s3_uri,
        first.manifest_s3_uri.clone().unwrap()
    );
    assert!(
        report.passed_over[0].reason.contains("suspect"),
        "{report:?}"
    );
    let forgot = forget_dry(&backup, "1").await;
    assert_eq!(forgot.untrusted.len(), 1, "{forgot:#?}");
    assert!(
        forgot.snapshots[0].kept,
        "the real snapshot stays the newest"
    );
}

/// Item 6: `ls` prints nothing from a manifest that fails judgement.
#[tokio::test]
async fn item6_ls_prints_nothing_from_an_untrusted_manifest() {
    use s3_kms_sync::commands::ls::{self, LsArgs, LsOptions};
    let (backup, _) = signed_backup("trust-ls", true).await;
    let first = backup.sync().await;
    let (planted, planted_key) =
        as_run(&manifest_of(&first), "planted", "2999-01-01T00:00:00.000Z");
    plant_unsigned(&backup, &planted_key, &planted).await;
    let out = tempfile::NamedTempFile::new().unwrap();
    let args = LsArgs {
        snapshot: planted_key.clone(),
        glob: None,
    };
    let options = LsOptions::from_args(args, Mode::Cli).unwrap();
    let writer = Box::new(out.reopen().unwrap());
    let result = ls::run(&backup.engine.store, PREFIX, &options, writer).await;
    let err = result.expect_err("an unsigned manifest is refused");
    assert!(err.to_string().contains("unsigned"), "{err}");
    assert_eq!(
        std::fs::read(out.path()).unwrap(),
        b"",
        "nothing was printed"
    );
    // The backup's own snapshot lists as ever.
    let args = LsArgs {
        snapshot: "latest".into(),
        glob: None,
    };
    let options = LsOptions::from_args(args, Mode::Cli).unwrap();
    let writer = Box::new(out.reopen().unwrap());
    let listed = ls::run(&backup.engine.store, PREFIX, &options, writer)
        .await
        .unwrap();
    assert_eq!(listed.files, sample_files().len() as u64);
}
