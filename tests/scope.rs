//! A run under other include/exclude globs covers other files: its manifest
//! is its own line of snapshots. It is never the index of a run over the
//! whole source, nor the snapshot its emptied-source guard is judged
//! against, nor what "latest" restores.

mod support;

use s3_kms_sync::commands::restore;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::local::filter::Filter;
use s3_kms_sync::manifest::{RunStatus, scope_tag_of};
use support::*;

const BUCKET: &str = "scopes";
const PREFIX: &str = "s";

fn tree_of(dirs: usize, files: usize) -> Vec<(String, Vec<u8>)> {
    (0..dirs)
        .flat_map(|d| {
            (0..files).map(move |f| {
                let body = format!("dir {d:02} file {f:02} ").repeat(200).into_bytes();
                (format!("dir {d:02}/file {f:02}.txt"), body)
            })
        })
        .collect()
}

#[tokio::test]
async fn a_run_under_other_globs_is_no_index_and_no_latest() {
    let mut backup = Backup::new(BUCKET, PREFIX, true).await;
    let files = tree_of(6, 8);
    write_owned(backup.source.path(), &files);
    backup.engine.config.command.min_source_ratio = 0.5;
    let whole = backup.sync().await;
    let all = tree(backup.source.path()).len() as u64;

    let mut narrow = backup.engine.clone();
    narrow.config.command.filter = Filter::new(&["dir 01/**".to_owned()], &[]).unwrap();
    let filtered = narrow.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(filtered.status, RunStatus::Succeeded, "{filtered:?}");
    assert_eq!(filtered.source_shrunk, None, "judged against its own scope");
    assert_eq!(filtered.skipped, 8);
    let name = filtered.manifest_s3_uri.as_deref().unwrap();
    let tag = scope_tag_of(name.rsplit('/').next().unwrap());
    assert!(tag.is_some(), "{name} names its scope");
    let recorded = manifest_of(&filtered);
    assert_eq!(recorded.include, ["dir 01/**"]);

    // The next run over everything takes the last such run as its index:
    // nothing is read again.
    let again = backup.engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{again:?}");
    assert_eq!(again.skipped, all);
    assert_eq!(again.bytes_read, 0, "{again:?}");

    // A filtered run again finds its own line.
    let second = narrow.run(&SyncRequest::default()).await.unwrap();
    assert_eq!((second.skipped, second.bytes_read), (8, 0), "{second:?}");

    // "latest" is a snapshot of the whole source.
    let target = tempfile::tempdir().unwrap();
    let options = restore_options(target.path());
    let report = restore::run(&backup.engine.store, PREFIX, &options)
        .await
        .unwrap();
    assert_eq!(report.manifest_s3_uri, again.manifest_s3_uri.unwrap());
    assert_eq!(report.restored, all);
    assert_eq!(report.passed_over.len(), 1, "{report:?}");
    assert!(report.passed_over[0].reason.contains("--include"));
    assert_ne!(whole.manifest_s3_uri, None);
}
