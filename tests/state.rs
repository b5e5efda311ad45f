//! Unchanged runs cost almost nothing: the last manifest and one listing
//! stand in for reading files and for a HeadObject per file, and every way
//! they can be wrong falls back to the per-key check.
//!
//! These runs write the first snapshot format, whose local copy is the very
//! object S3 holds: the copy's proofs are what is tested here. A paged
//! snapshot's run reads its pages through the page cache instead
//! (`tests/paged.rs` counts its requests).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::Summary;
use support::*;

const BUCKET: &str = "state";

/// The stack with the sample tree, optionally with real-S3 opaque ETags.
async fn stack(opaque_etags: bool) -> Stack {
    let stack = Stack::start(BUCKET, "s", 0).await;
    stack.proxy.configure(|f| f.opaque_etags = opaque_etags);
    write_tree(stack.source.path(), &sample_files());
    stack
}

/// `engine`, writing the first snapshot format.
fn first_format(mut engine: Engine) -> Engine {
    engine.config.command.snapshot_format = 1;
    engine
}

/// Runs once and returns the summary with the requests it made.
async fn run(
    bench: &Stack,
    engine: &Engine,
    request: SyncRequest,
) -> (Summary, BTreeMap<String, u64>) {
    bench.proxy.reset_counts();
    let summary = engine.run(&request).await.expect("run");
    (summary, bench.proxy.counts())
}

fn count(counts: &BTreeMap<String, u64>, op: &str) -> u64 {
    counts.get(op).copied().unwrap_or(0)
}

/// The HeadObject on the last manifest that proves this machine's copy of it
/// (its SHA-256 against S3's) before the copy stands in for a download.
const COPY_PROOF: u64 = 1;

/// The HeadObject on a newest manifest the run did not read (a narrowed or a
/// corrupt one), for the SHA-256 stored with it that the chain links to.
const UNREAD_LINK: u64 = 1;

/// HeadObject requests for file keys: all of them but the copy's proof.
fn file_heads(counts: &BTreeMap<String, u64>) -> u64 {
    count(counts, "HeadObject") - COPY_PROOF
}

/// The engine of another machine: the same source and bucket, through the
/// proxy, with a manifest directory of its own.
fn elsewhere_engine(bench: &Stack, manifests: &std::path::Path) -> Engine {
    let config = settings(bench.source.path(), manifests, BUCKET, &bench.key_arn, "s");
    first_format(engine(client_for(&bench.proxy.endpoint), config))
}

fn total_bytes() -> u64 {
    sample_files().iter().map(|(_, c)| c.len() as u64).sum()
}

#[tokio::test]
async fn an_unchanged_rerun_lists_once_and_reads_nothing() {
    for opaque_etags in [false, true] {
        let bench = stack(opaque_etags).await;
        let engine = first_format(bench.engine());
        let (first, _) = run(&bench, &engine, SyncRequest::default()).await;
        let big = sample_files()
            .iter()
            .map(|(_, c)| c.len() as u64)
            .max()
            .unwrap();
        assert_eq!(
            first.bytes_read,
            total_bytes() + big,
            "small files read once; the multipart one hashed, then sent"
        );

        let (second, counts) = run(&bench, &engine, SyncRequest::default()).await;
        assert_eq!(
            (second.uploaded, second.skipped),
            (0, sample_files().len() as u64)
        );
        assert_eq!(second.bytes_read, 0, "no file content is read");
        assert_eq!(count(&counts, "ListObjectsV2"), 1, "{counts:?}");
        assert_eq!(file_heads(&counts), 0, "{counts:?}");
        // The lock (create, delete), the manifest and the proof of the local
        // copy of the last one: four requests besides the listing.
        let others: u64 = counts
            .iter()
            .filter(|(op, _)| *op != "ListObjectsV2")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            others,
            3 + COPY_PROOF,
            "opaque ETags: {opaque_etags}: {counts:?}"
        );
    }
}

#[tokio::test]
async fn a_signed_local_copy_is_proven_without_a_request() {
    let bench = stack(true).await;
    let mut engine = first_format(bench.engine());
    let signing = bench.moto.signing_key().await;
    engine.store = engine.store.clone().with_trust(bench.moto.trust(&signing));
    let (first, _) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(first.signed_by.as_deref(), Some(signing.as_str()));

    // The listing, the lock (create, delete) and the manifest: the floor.
    let (second, counts) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(second.skipped, sample_files().len() as u64);
    assert_eq!(count(&counts, "HeadObject"), 0, "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 1 + 3, "{counts:?}");

    // A copy whose kept signature is another's: S3 is asked, as for an
    // unsigned copy, and the run still skips everything.
    let local = second.manifest_local_path.as_deref().unwrap();
    let signature = std::path::PathBuf::from(format!("{local}.sig"));
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&signature).unwrap()).unwrap();
    let mut forged = kept.clone();
    forged["signature"] = serde_json::json!("MEUCIQ".to_owned() + &"A".repeat(90));
    std::fs::write(&signature, forged.to_string()).unwrap();
    let (third, counts) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(third.skipped, sample_files().len() as u64);
    assert_eq!(count(&counts, "HeadObject"), COPY_PROOF, "{counts:?}");
    assert_eq!(
        count(&counts, "GetObject"),
        0,
        "the copy S3 vouched for is used: {counts:?}"
    );
}

#[tokio::test]
async fn a_content_change_behind_a_restored_mtime_is_still_seen() {
    let bench = stack(true).await;
    let engine = first_format(bench.engine());
    run(&bench, &engine, SyncRequest::default()).await;

    let path = bench.source.path().join("top.txt");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, b"TOP LEVEL\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    let (summary, counts) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(summary.uploaded, 1, "{counts:?}");
    assert_eq!(summary.bytes_read, 10, "only the changed file is read");
    assert_eq!(
        get_bytes(&bench.moto.s3(), BUCKET, "s/top.txt").await,
        b"TOP LEVEL\n"
    );
}

#[tokio::test]
async fn a_lost_local_copy_is_fetched_and_a_corrupt_manifest_falls_back_to_head() {
    let bench = stack(true).await;
    let (first, _) = run(
        &bench,
        &first_format(bench.engine()),
        SyncRequest::default(),
    )
    .await;

    // Another machine (no local copy): the manifest comes from S3, one GET.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere_engine(&bench, elsewhere.path());
    let (second, counts) = run(&bench, &other, SyncRequest::default()).await;
    assert_eq!(second.skipped, sample_files().len() as u64);
    assert_eq!(
        (count(&counts, "GetObject"), count(&counts, "HeadObject")),
        (1, 0),
        "{counts:?}"
    );

    // Every manifest is garbage: each is passed over with its reason, and
    // every file is checked with HEAD, and still skipped.
    for summary in [&first, &second] {
        let key = summary
            .manifest_s3_uri
            .as_deref()
            .unwrap()
            .trim_start_matches("s3://state/")
            .to_owned();
        bench
            .moto
            .s3()
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(b"{not json".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let fresh = tempfile::tempdir().unwrap();
    let third_engine = elsewhere_engine(&bench, fresh.path());
    let (third, counts) = run(&bench, &third_engine, SyncRequest::default()).await;
    assert_eq!(
        (third.uploaded, third.skipped),
        (0, sample_files().len() as u64)
    );
    assert_eq!(
        count(&counts, "HeadObject"),
        sample_files().len() as u64 + UNREAD_LINK,
        "{counts:?}"
    );
    assert_eq!(
        third.bytes_read,
        total_bytes(),
        "without an index every file is hashed"
    );
    let reasons: Vec<&str> = third
        .index_passed_over
        .iter()
        .map(|p| p.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("unreadable")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn objects_changed_or_deleted_by_others_are_checked_and_restored() {
    let bench = stack(true).await;
    let engine = first_format(bench.engine());
    run(&bench, &engine, SyncRequest::default()).await;
    let s3 = bench.moto.s3();
    // Someone else overwrites one object (no md5checksum) and deletes another.
    s3.put_object()
        .bucket(BUCKET)
        .key("s/top.txt")
        .body(b"foreign".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(BUCKET)
        .key("s/empty.dat")
        .send()
        .await
        .unwrap();

    let (summary, counts) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(summary.uploaded, 2, "{counts:?}");
    assert_eq!(
        file_heads(&counts),
        1,
        "only the object whose ETag moved: {counts:?}"
    );
    assert_eq!(get_bytes(&s3, BUCKET, "s/top.txt").await, b"top level\n");
    assert!(get_bytes(&s3, BUCKET, "s/empty.dat").await.is_empty());
}

#[tokio::test]
async fn verification_reads_every_file_when_asked_and_every_nth_run() {
    let bench = stack(false).await;
    let engine = first_format(bench.engine());
    run(&bench, &engine, SyncRequest::default()).await;
    let verify = SyncRequest {
        rehash: Some(true),
        ..SyncRequest::default()
    };
    let (asked, counts) = run(&bench, &engine, verify).await;
    assert_eq!((asked.bytes_read, asked.uploaded), (total_bytes(), 0));
    assert_eq!(
        file_heads(&counts),
        0,
        "the listing still vouches for S3's side"
    );

    let mut every_second = settings(
        bench.source.path(),
        bench.manifests.path(),
        BUCKET,
        &bench.key_arn,
        "s",
    );
    every_second.command.rehash_every = 2;
    let periodic = support::engine(client_for(&bench.proxy.endpoint), every_second);
    let mut read = Vec::new();
    for _ in 0..4 {
        read.push(
            run(&bench, &periodic, SyncRequest::default())
                .await
                .0
                .bytes_read,
        );
    }
    assert_eq!(
        read,
        [0, total_bytes(), 0, total_bytes()],
        "a full read every second run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_cut_into_ranges_still_sees_every_key() {
    let bench = stack(true).await;
    let files: Vec<(String, Vec<u8>)> = (0..2500)
        .map(|i| (format!("many/{i:05}"), format!("{i}").into_bytes()))
        .collect();
    write_owned(bench.source.path(), &files);
    let engine = first_format(bench.engine());
    run(&bench, &engine, SyncRequest::default()).await;

    // New keys inside and after the ranges the last manifest suggests.
    write_tree(
        bench.source.path(),
        &[
            ("many/00999a", b"new".to_vec()),
            ("many/zzz", b"new".to_vec()),
        ],
    );
    let (summary, counts) = run(&bench, &engine, SyncRequest::default()).await;
    let total = (files.len() + sample_files().len()) as u64;
    assert_eq!(
        (summary.uploaded, summary.skipped),
        (2, total),
        "{counts:?}"
    );
    assert_eq!(file_heads(&counts), 0, "{counts:?}");
    // Three ranges of 990 recorded keys each at most: the new keys fit in the
    // room each range leaves, so every range is one page.
    assert_eq!(count(&counts, "ListObjectsV2"), 3, "{counts:?}");

    // A cold container (no local copy) cuts its listing by the manifest it
    // fetches: the folder, then the same three ranges at once.
    let elsewhere = tempfile::tempdir().unwrap();
    let cold = elsewhere_engine(&bench, elsewhere.path());
    let (summary, counts) = run(&bench, &cold, SyncRequest::default()).await;
    assert_eq!((summary.uploaded, summary.skipped), (0, total + 2));
    assert_eq!(
        count(&counts, "HeadObject"),
        0,
        "no copy to prove, no file to look up"
    );
    assert_eq!(count(&counts, "GetObject"), 1, "{counts:?}");
    assert_eq!(count(&counts, "ListObjectsV2"), 1 + 3, "{counts:?}");
}

/// A file system image made with `mkfs.ext4 -I 128` (1-second timestamps),
/// loop-mounted for as long as this value lives.
struct CoarseMount {
    _dir: tempfile::TempDir,
    mount: std::path::PathBuf,
}

impl CoarseMount {
    fn new() -> CoarseMount {
        use std::process::Command;
        let root = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&root.stdout).trim(),
            "0",
            "this test loop-mounts an ext4 image and needs root, as `make test` runs in CI"
        );
        let dir = tempfile::tempdir().unwrap();
        let (image, mount) = (dir.path().join("fs.img"), dir.path().join("mnt"));
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let run = |command: &mut Command| {
            let out = command.output().unwrap();
            assert!(out.status.success(), "{command:?}: {out:?}");
        };
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(&image));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount));
        CoarseMount { _dir: dir, mount }
    }
}

impl Drop for CoarseMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
    }
}

/// On 1-second timestamps a same-size rewrite within the second of the last
/// hash leaves size, mtime, ctime and inode as they were. That stamp had not
/// settled when it was taken, so the next run reads the file again.
#[tokio::test]
async fn a_same_second_rewrite_on_a_coarse_file_system_is_uploaded() {
    let mount = CoarseMount::new();
    let bench = Stack::start(BUCKET, "c", 0).await;
    let source = mount.mount.join("data");
    std::fs::create_dir(&source).unwrap();
    let engine = engine(
        client_for(&bench.proxy.endpoint),
        settings(&source, bench.manifests.path(), BUCKET, &bench.key_arn, "c"),
    );
    let path = source.join("f.txt");
    let stamp = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ino())
    };
    // The first run and the rewrite must fall within one second; retry if not.
    let mut attempts = 0;
    let (old, new) = loop {
        attempts += 1;
        assert!(attempts <= 5, "never fitted a run into one second");
        let (old, new) = (format!("old {attempts}"), format!("new {attempts}"));
        while chrono::Utc::now().timestamp_subsec_millis() > 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(&path, &old).unwrap();
        let before = stamp(&path);
        let first = engine.run(&SyncRequest::default()).await.unwrap();
        assert_eq!(first.failed, 0, "{first:?}");
        std::fs::write(&path, &new).unwrap();
        if stamp(&path) == before {
            break (old, new);
        }
    };
    assert_ne!(old, new);
    let (second, _) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(second.uploaded, 1, "the racy stamp was trusted: {second:?}");
    assert_eq!(
        get_bytes(&bench.moto.s3(), BUCKET, "c/f.txt").await,
        new.as_bytes()
    );

    // Once settled, the same stamp is trusted again: nothing is read.
    std::thread::sleep(Duration::from_millis(2100));
    let (third, _) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!((third.uploaded, third.skipped), (0, 1));
    let (fourth, _) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(fourth.bytes_read, 0, "{fourth:?}");
}

/// With sub-second timestamps the window is short: a file written just
/// before a run is read once more by the next run, and then never again.
#[tokio::test]
async fn a_file_written_just_before_a_run_is_read_once_more() {
    let bench = stack(false).await;
    let engine = first_format(bench.engine());
    std::fs::write(bench.source.path().join("fresh.txt"), b"fresh").unwrap();
    run(&bench, &engine, SyncRequest::default()).await;
    let (second, _) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!((second.bytes_read, second.uploaded), (5, 0), "{second:?}");
    let (third, _) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(third.bytes_read, 0, "{third:?}");
}

/// Narrowed runs (a sub-directory, a sub-prefix, an event's filter) write
/// manifests of part of the source; the next full run still takes its index
/// from the last full manifest, and reads nothing.
#[tokio::test]
async fn a_narrowed_run_does_not_become_the_next_full_runs_index() {
    let bench = stack(true).await;
    let engine = first_format(bench.engine());
    run(&bench, &engine, SyncRequest::default()).await;
    let narrowings = [
        SyncRequest {
            subdir: Some("reports".into()),
            ..SyncRequest::default()
        },
        SyncRequest {
            sub_prefix: Some("elsewhere".into()),
            ..SyncRequest::default()
        },
        SyncRequest {
            include: vec!["deep/**".into()],
            ..SyncRequest::default()
        },
    ];
    for narrowed in narrowings {
        let (part, _) = run(&bench, &engine, narrowed.clone()).await;
        assert!(
            part.manifest_s3_uri
                .as_deref()
                .unwrap()
                .contains(".narrowed-")
        );
        let (full, counts) = run(&bench, &engine, SyncRequest::default()).await;
        assert_eq!(
            (full.skipped, full.bytes_read, file_heads(&counts)),
            (sample_files().len() as u64, 0, UNREAD_LINK),
            "after {narrowed:?}: {counts:?}"
        );
    }
}

/// A file planted in the manifest directory, named newer than any manifest
/// and claiming a changed file is unchanged, is not believed: S3 does not
/// vouch for it, so the changed file is uploaded.
#[tokio::test]
async fn a_planted_local_manifest_cannot_make_a_changed_file_be_skipped() {
    use std::os::unix::fs::MetadataExt;
    let bench = stack(true).await;
    let engine = first_format(bench.engine());
    let (first, _) = run(&bench, &engine, SyncRequest::default()).await;
    let path = bench.source.path().join("top.txt");
    std::fs::write(&path, b"TOP LEVEL\n").unwrap();
    support::settle();

    let mut forged: serde_json::Value =
        serde_json::from_slice(&local_copy(first.manifest_local_path.as_deref().unwrap()).unwrap())
            .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    for record in forged["files"].as_array_mut().unwrap() {
        if record["s3_key"] == "s/top.txt" {
            record["mtime_ns"] = (meta.mtime() * 1_000_000_000 + meta.mtime_nsec()).into();
            record["ctime_ns"] = (meta.ctime() * 1_000_000_000 + meta.ctime_nsec()).into();
            record["inode"] = meta.ino().into();
        }
    }
    let planted = bench
        .manifests
        .path()
        .join("99991231T235959.999Z-planted.json");
    std::fs::write(&planted, forged.to_string()).unwrap();

    let (second, counts) = run(&bench, &engine, SyncRequest::default()).await;
    assert_eq!(second.uploaded, 1, "{second:?}");
    // The real last manifest is found and fetched; no file needs a HeadObject.
    assert_eq!(
        (count(&counts, "GetObject"), file_heads(&counts)),
        (1, 0),
        "{counts:?}"
    );
    assert_eq!(
        get_bytes(&bench.moto.s3(), BUCKET, "s/top.txt").await,
        b"TOP LEVEL\n"
    );
}

/// A FIFO named like the newest manifest would block a plain open forever,
/// with the lock held.
#[tokio::test]
async fn a_fifo_in_the_manifest_directory_does_not_block_the_run() {
    let bench = stack(false).await;
    let engine = first_format(bench.engine());
    run(&bench, &engine, SyncRequest::default()).await;
    let fifo = bench
        .manifests
        .path()
        .join("99991231T235959.999Z-fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let summary =
        tokio::time::timeout(Duration::from_secs(60), engine.run(&SyncRequest::default()))
            .await
            .expect("the run must not block on a FIFO")
            .unwrap();
    assert_eq!(summary.skipped, sample_files().len() as u64);
}
