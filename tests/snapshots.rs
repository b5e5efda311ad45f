//! `snapshots` on moto: every manifest of the prefix, oldest first, with
//! its kind, status, files, bytes and signature, from one listing and one
//! HEAD per manifest, never a manifest body.

mod support;

use s3_kms_sync::commands::snapshots;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::{Kind, RunStatus};
use s3_kms_sync::trust::Verdict;
use support::*;

const BUCKET: &str = "listed";
const PREFIX: &str = "p";

#[tokio::test]
async fn snapshots_are_listed_oldest_first_from_their_metadata() {
    let mut backup = Backup::new(BUCKET, PREFIX, true).await;
    let signing = backup.moto.signing_key().await;
    let trust = backup.moto.trust(&signing);
    backup.engine.store = backup.engine.store.clone().with_trust(trust);
    let first = backup.sync().await;
    let narrowed = SyncRequest {
        subdir: Some("reports".into()),
        ..SyncRequest::default()
    };
    let second = backup.engine.run(&narrowed).await.unwrap();
    let store = &backup.engine.store;

    let before = store.requests();
    let lines = snapshots::run(store, PREFIX).await.unwrap();
    let sent = store.requests_since(&before);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        sent.get("ListObjectsV2").copied().unwrap_or(0)
            + sent.get("HeadObject").copied().unwrap_or(0),
        1 + 2,
        "one listing and a HEAD each: {sent:?}"
    );
    assert_eq!(sent.get("GetObject"), None, "no manifest body is read");

    let (full, part) = (&lines[0], &lines[1]);
    assert_eq!(full.run_id, first.run_id);
    assert_eq!(part.run_id, second.run_id);
    assert!(full.time <= part.time);
    assert_eq!((full.kind, part.kind), (Kind::Full, Kind::Narrowed));
    assert_eq!(full.status, Some(RunStatus::Succeeded));
    let files = sample_files();
    assert_eq!(full.files, Some(files.len() as u64));
    let bytes: u64 = files.iter().map(|(_, c)| c.len() as u64).sum();
    assert_eq!(full.bytes, Some(bytes));
    assert!(
        matches!(full.signature, Verdict::Valid { .. }),
        "{:?}",
        full.signature
    );
    assert_eq!(full.restorable, "yes");
    assert!(full.complete);

    let table = snapshots::table(&lines);
    assert!(
        table.contains(&first.run_id) && table.ends_with("2 snapshots\n"),
        "{table}"
    );
}

/// `ls` streams a snapshot's files, a glob narrowing them.
#[tokio::test]
async fn ls_streams_the_files_of_a_snapshot() {
    use s3_kms_sync::commands::ls::{self, LsArgs, LsOptions};
    use s3_kms_sync::config::Options;
    use s3_kms_sync::run::Mode;
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let summary = backup.sync().await;
    let out = tempfile::NamedTempFile::new().unwrap();
    let args = LsArgs {
        snapshot: "latest".into(),
        glob: Some("reports/**".into()),
        json: true,
    };
    let options = LsOptions::from_args(args, Mode::Cli).unwrap();
    let file = Box::new(out.reopen().unwrap());
    let listed = ls::run(&backup.engine.store, PREFIX, &options, file)
        .await
        .unwrap();
    assert_eq!(listed.manifest_s3_uri, summary.manifest_s3_uri.unwrap());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<&str> = sample_files()
        .iter()
        .map(|(path, _)| *path)
        .filter(|path| path.starts_with("reports/"))
        .collect();
    let mut paths: Vec<&str> = lines.iter().map(|l| l["path"].as_str().unwrap()).collect();
    paths.sort_unstable();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(paths, expected_sorted);
    assert_eq!(listed.files, expected.len() as u64);
    assert!(
        lines
            .iter()
            .all(|l| l["md5"].as_str().is_some_and(|m| m.len() == 32))
    );
}
