//! `snapshots` on moto: every manifest of the prefix, oldest first, with
//! its kind, status, files, bytes and signature, from one listing and,
//! where a key is trusted, one GET per manifest whose bytes are judged
//! (metadata is anyone's to copy); its records are never parsed.

mod support;

use s3_kms_sync::commands::snapshots;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::{Kind, RunStatus};
use s3_kms_sync::trust::Verdict;
use support::*;

const BUCKET: &str = "listed";
const PREFIX: &str = "p";

#[tokio::test]
async fn snapshots_are_listed_oldest_first_and_judged_by_their_bytes() {
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
    assert_eq!(sent.get("ListObjectsV2"), Some(&1), "{sent:?}");
    assert_eq!(
        sent.get("GetObject"),
        Some(&2),
        "one read of each: {sent:?}"
    );
    assert_eq!(sent.get("HeadObject"), None, "metadata proves nothing");

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
    };
    let mut options = LsOptions::from_args(args, Mode::Cli).unwrap();
    options.json = true;
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

/// Two JSON-lines outputs of a command that writes to a file.
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `diff` walks two snapshots side by side: a file added, one removed,
/// one changed (same size, other bytes: found by MD5), the rest unchanged.
#[tokio::test]
async fn diff_names_what_was_added_removed_and_changed() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let first = backup.sync().await;
    let root = backup.source.path();
    std::fs::write(root.join("added.txt"), b"new file\n").unwrap();
    std::fs::remove_file(root.join("top.txt")).unwrap();
    let changed = std::fs::read(root.join("empty.dat")).unwrap();
    assert!(changed.is_empty());
    std::fs::write(root.join("empty.dat"), b"now full").unwrap();
    let second = backup.sync().await;

    let first_uri = first.manifest_s3_uri.clone().unwrap();
    let (summary, out) = diff_json(&backup, &first_uri, "latest").await;
    assert_eq!(summary.to, second.manifest_s3_uri.unwrap());
    assert_eq!(
        (summary.added, summary.removed, summary.changed),
        (1, 1, 1),
        "{summary:?}"
    );
    assert_eq!(summary.unchanged, sample_files().len() as u64 - 2);
    assert_eq!(summary.bytes_added, 9);
    assert_eq!(summary.bytes_removed, b"top level\n".len() as u64);
    assert_eq!(
        (summary.bytes_changed_from, summary.bytes_changed_to),
        (0, 8)
    );
    let lines = json_lines(out.path());
    let changes: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| Some((l["change"].as_str()?, l["path"].as_str()?)))
        .collect();
    assert_eq!(
        changes,
        [
            ("added", "added.txt"),
            ("changed", "empty.dat"),
            ("removed", "top.txt")
        ]
    );
    assert_eq!(lines.last().unwrap()["summary"]["added"], 1);

    // The same snapshot twice differs in nothing.
    let (none, _) = diff_json(&backup, "latest", "latest").await;
    assert_eq!((none.added, none.removed, none.changed), (0, 0, 0));
}

/// `find` gives each content of a path once, with the first and last
/// snapshots that hold it, across snapshots.
#[tokio::test]
async fn find_gives_each_content_of_a_path_and_where_it_lives() {
    use s3_kms_sync::commands::find::{self, FindArgs, FindOptions};
    use s3_kms_sync::config::Options;
    use s3_kms_sync::run::Mode;
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let root = backup.source.path();
    let first = backup.sync().await;
    let second = backup.sync().await;
    std::fs::write(root.join("top.txt"), b"top level, edited\n").unwrap();
    let third = backup.sync().await;

    let options = FindOptions::from_args(
        FindArgs {
            glob: "top.*".into(),
        },
        Mode::Cli,
    )
    .unwrap();
    let report = find::run(&backup.engine.store, PREFIX, &options)
        .await
        .unwrap();
    assert_eq!(report.snapshots_read, 3);
    assert_eq!(report.found.len(), 2, "{report:#?}");
    let (old, new) = (&report.found[0], &report.found[1]);
    assert_eq!(old.path, "top.txt");
    assert_eq!(old.size, b"top level\n".len() as u64);
    assert_eq!(old.first.run_id, first.run_id);
    assert_eq!(old.last.run_id, second.run_id);
    assert_eq!(old.snapshots, 2);
    assert_eq!(
        (new.first.run_id.as_str(), new.snapshots),
        (third.run_id.as_str(), 1)
    );
    assert_ne!(old.md5, new.md5);
    assert!(
        old.restore
            .contains(second.manifest_s3_uri.as_deref().unwrap()),
        "{}",
        old.restore
    );
}
