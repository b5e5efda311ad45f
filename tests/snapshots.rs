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
