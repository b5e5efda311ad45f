//! Nothing from outside the source gets in, nothing from the source lands in
//! the reserved manifest folder, and nothing swapped in can hang the run.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::local::filter::Filter;
use s3_kms_sync::local::source::SourceDir;
use s3_kms_sync::local::walk::{Found, walk};
use s3_kms_sync::manifest::{FileRecord, FileStatus, Manifest};
use support::*;

fn records_by_relative(manifest: &Manifest, root: &Path) -> BTreeMap<String, FileRecord> {
    manifest
        .files
        .iter()
        .map(|f| {
            let relative = Path::new(&f.local_path).strip_prefix(root).unwrap();
            (relative.display().to_string(), f.clone())
        })
        .collect()
}

fn said(record: &FileRecord) -> &str {
    record
        .error
        .as_deref()
        .or(record.reason.as_deref())
        .unwrap_or_default()
}

/// A directory is swapped for a symlink to outside the source, and back,
/// again and again while the tree is walked. Many siblings sort before it,
/// so the time between reading its parent and opening it is long.
#[test]
fn a_directory_swapped_for_a_symlink_during_the_walk_is_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), b"outside").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for i in 0..5_000 {
        std::fs::File::create(root.join(format!("a{i:05}"))).unwrap();
    }
    std::fs::create_dir(root.join("b")).unwrap();
    std::fs::write(root.join("b/inside.txt"), b"inside").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (root, target, stop, swaps) = (
            root.clone(),
            outside.path().to_path_buf(),
            Arc::clone(&stop),
            Arc::clone(&swaps),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(root.join("b"), root.join("b.real")).unwrap();
                symlink(&target, root.join("b")).unwrap();
                std::thread::sleep(Duration::from_micros(200));
                std::fs::remove_file(root.join("b")).unwrap();
                std::fs::rename(root.join("b.real"), root.join("b")).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };

    let source = SourceDir::open(&root).unwrap();
    let filter = Filter::new(&[], &[]).unwrap();
    let (mut as_link, mut as_dir) = (0, 0);
    for _ in 0..40 {
        for found in walk(&source, Path::new(""), &filter) {
            match found {
                Found::File(file) => {
                    assert_ne!(
                        file.relative.file_name().unwrap(),
                        "secret.txt",
                        "{} was reached through a swapped-in symlink",
                        file.relative.display()
                    );
                    as_dir += usize::from(file.relative.starts_with("b"));
                }
                Found::Symlink { relative, .. } if relative == Path::new("b") => as_link += 1,
                _ => {}
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 40, "the swap kept going");
    assert!(
        as_link > 0 && as_dir > 0,
        "the walks met b as a link {as_link} times and as a directory {as_dir} times: \
         the race was not exercised"
    );
}

/// After the walk, a file becomes a FIFO (or a symlink to outside): it is
/// refused at open, without blocking, and the run carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_symlink_swapped_in_after_the_walk_is_refused() {
    let stack = Stack::start("swapped", "w", 0).await;
    let root = stack.source.path().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), b"outside").unwrap();
    for name in ["a.txt", "b_fifo.txt", "c_link.txt"] {
        std::fs::write(root.join(name), name).unwrap();
    }
    let (tree, secret) = (root.clone(), outside.path().join("secret.txt"));
    stack.proxy.on_request(move |op, path| {
        if op == "PutObject" && path.ends_with("a.txt") {
            std::fs::remove_file(tree.join("b_fifo.txt")).unwrap();
            let made = std::process::Command::new("mkfifo")
                .arg(tree.join("b_fifo.txt"))
                .status()
                .unwrap();
            assert!(made.success());
            std::fs::remove_file(tree.join("c_link.txt")).unwrap();
            symlink(&secret, tree.join("c_link.txt")).unwrap();
        }
    });
    let engine = stack.engine_with(&stack.key_arn, 1);
    let summary =
        tokio::time::timeout(Duration::from_secs(60), engine.run(&SyncRequest::default()))
            .await
            .expect("a FIFO swapped in after the walk must not hang the run")
            .unwrap();
    let records = records_by_relative(&manifest_of(&summary), &root);
    assert_eq!(records["a.txt"].status, FileStatus::Uploaded);
    for (name, text) in [("b_fifo.txt", "FIFO"), ("c_link.txt", "symbolic link")] {
        assert_eq!(records[name].status, FileStatus::Failed, "{name}");
        assert!(
            said(&records[name]).contains(text),
            "{name}: {}",
            said(&records[name])
        );
    }
    let keys = list_keys(&stack.moto.s3(), stack.bucket).await;
    assert!(
        !keys
            .iter()
            .any(|k| k.ends_with("b_fifo.txt") || k.ends_with("c_link.txt")),
        "{keys:?}"
    );
}

/// A source folder named `_manifests` would map onto the lock and the
/// manifests; its files fail with a reason and are never uploaded there.
#[tokio::test]
async fn source_files_never_reach_the_reserved_manifest_folder() {
    let stack = Stack::start("reserved", "r", 0).await;
    let root = stack.source.path();
    let planted = "_manifests/99999999T000000.000Z-planted.json";
    write_tree(
        root,
        &[
            ("ok.txt", b"ok".to_vec()),
            ("_manifests/lock.json", b"{\"run_id\": \"mine\"}".to_vec()),
            (planted, b"{}".to_vec()),
        ],
    );
    let engine = stack.engine();
    let summary = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!((summary.uploaded, summary.failed), (1, 2), "{summary:?}");
    let records = records_by_relative(&manifest_of(&summary), root);
    for name in ["_manifests/lock.json", planted] {
        assert_eq!(records[name].status, FileStatus::Failed);
        assert!(said(&records[name]).contains("reserved"), "{name}");
    }
    let keys = list_keys(&stack.moto.s3(), stack.bucket).await;
    assert!(!keys.contains(&format!("r/{planted}")), "{keys:?}");
    assert!(
        !keys.contains(&"r/_manifests/lock.json".to_owned()),
        "the lock was released: {keys:?}"
    );

    // The next run takes the lock and skips the stored file as usual.
    let again = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(
        (again.uploaded, again.skipped, again.failed),
        (0, 1, 2),
        "{again:?}"
    );
}
