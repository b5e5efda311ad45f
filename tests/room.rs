//! A run whose manifest directory cannot hold what it keeps there is
//! refused before its first upload (item 2 of the deployed-function
//! review): the directory is a small tmpfs, as a Lambda's default /tmp is
//! small beside a large tree.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use s3_kms_sync::commands::sync::SyncRequest;
use support::*;

/// A tmpfs of `size` mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (make test runs as root here)"
        );
        Tmpfs { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

async fn object(backup: &Backup, key: &str) -> Vec<u8> {
    get_bytes(&backup.moto.s3(), backup.bucket, key).await
}

fn many(root: &Path, n: usize) {
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("many/{i:03}.txt"), format!("{i}\n").into_bytes()))
        .collect();
    write_owned(root, &files);
}

#[tokio::test]
async fn a_run_that_would_fill_its_manifest_directory_is_refused_before_any_upload() {
    let backup = Backup::new("room", "p", true).await;
    many(backup.source.path(), 200);
    backup.sync().await;
    write_tree(backup.source.path(), &[("top.txt", b"changed\n".to_vec())]);

    // Another machine whose manifest directory holds 128 KiB: the last
    // snapshot's 207 files need about 233 KiB.
    let small = Tmpfs::mount("128k");
    let engine = backup.moto.engine(settings(
        backup.source.path(),
        &small.path,
        backup.bucket,
        &backup.key_arn,
        "p",
    ));
    let refused = engine.run(&SyncRequest::default()).await;
    let err = refused.expect_err("the run is refused").to_string();
    assert!(
        err.contains("nothing was uploaded") && err.contains("--manifest-dir"),
        "{err}"
    );
    assert_eq!(object(&backup, "p/top.txt").await, b"top level\n");

    // With room, the same run goes through.
    let roomy = tempfile::tempdir().unwrap();
    let engine = backup.moto.engine(settings(
        backup.source.path(),
        roomy.path(),
        backup.bucket,
        &backup.key_arn,
        "p",
    ));
    let summary = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(summary.uploaded, 1, "{summary:?}");
    assert_eq!(object(&backup, "p/top.txt").await, b"changed\n");
}
