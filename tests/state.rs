//! Unchanged runs cost almost nothing: the last manifest and one listing
//! stand in for reading files and for a HeadObject per file, and every way
//! they can be wrong falls back to the per-key check.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use s3_kms_sync::Engine;
use s3_kms_sync::manifest::Summary;
use s3_kms_sync::request::RunRequest;
use support::*;

const BUCKET: &str = "state";

/// The stack with the sample tree, optionally with real-S3 opaque ETags.
async fn stack(opaque_etags: bool) -> Stack {
    let stack = Stack::start(BUCKET, "s", 0).await;
    stack.proxy.configure(|f| f.opaque_etags = opaque_etags);
    write_tree(stack.source.path(), &sample_files());
    stack
}

/// Runs once and returns the summary with the requests it made.
async fn run(
    bench: &Stack,
    engine: &Engine,
    request: RunRequest,
) -> (Summary, BTreeMap<String, u64>) {
    bench.proxy.reset_counts();
    let summary = engine.run(&request).await.expect("run");
    (summary, bench.proxy.counts())
}

fn count(counts: &BTreeMap<String, u64>, op: &str) -> u64 {
    counts.get(op).copied().unwrap_or(0)
}

fn total_bytes() -> u64 {
    sample_files().iter().map(|(_, c)| c.len() as u64).sum()
}

#[tokio::test]
async fn an_unchanged_rerun_lists_once_and_reads_nothing() {
    for opaque_etags in [false, true] {
        let bench = stack(opaque_etags).await;
        let engine = bench.engine();
        let (first, _) = run(&bench, &engine, RunRequest::default()).await;
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

        let (second, counts) = run(&bench, &engine, RunRequest::default()).await;
        assert_eq!(
            (second.uploaded, second.skipped),
            (0, sample_files().len() as u64)
        );
        assert_eq!(second.bytes_read, 0, "no file content is read");
        assert_eq!(count(&counts, "ListObjectsV2"), 1, "{counts:?}");
        assert_eq!(count(&counts, "HeadObject"), 0, "{counts:?}");
        // The lock (create, delete) and the manifest: three requests besides the listing.
        let others: u64 = counts
            .iter()
            .filter(|(op, _)| *op != "ListObjectsV2")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(others, 3, "opaque ETags: {opaque_etags}: {counts:?}");
    }
}

#[tokio::test]
async fn a_content_change_behind_a_restored_mtime_is_still_seen() {
    let bench = stack(true).await;
    let engine = bench.engine();
    run(&bench, &engine, RunRequest::default()).await;

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

    let (summary, counts) = run(&bench, &engine, RunRequest::default()).await;
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
    let (first, _) = run(&bench, &bench.engine(), RunRequest::default()).await;

    // Another machine (no local copy): the manifest comes from S3, one GET.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = engine(
        client_for(&bench.proxy.endpoint),
        settings(
            bench.source.path(),
            elsewhere.path(),
            BUCKET,
            &bench.key_arn,
            "s",
        ),
    );
    let (second, counts) = run(&bench, &other, RunRequest::default()).await;
    assert_eq!(second.skipped, sample_files().len() as u64);
    assert_eq!(
        (count(&counts, "GetObject"), count(&counts, "HeadObject")),
        (1, 0),
        "{counts:?}"
    );

    // The newest manifest is garbage: every file is checked with HEAD, and still skipped.
    let latest = second
        .manifest_s3_uri
        .unwrap()
        .trim_start_matches("s3://state/")
        .to_owned();
    bench
        .moto
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key(&latest)
        .body(b"{not json".to_vec().into())
        .send()
        .await
        .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let third_engine = engine(
        client_for(&bench.proxy.endpoint),
        settings(
            bench.source.path(),
            fresh.path(),
            BUCKET,
            &bench.key_arn,
            "s",
        ),
    );
    let (third, counts) = run(&bench, &third_engine, RunRequest::default()).await;
    assert_eq!(
        (third.uploaded, third.skipped),
        (0, sample_files().len() as u64)
    );
    assert_eq!(
        count(&counts, "HeadObject"),
        sample_files().len() as u64,
        "{counts:?}"
    );
    assert_eq!(
        third.bytes_read,
        total_bytes(),
        "without an index every file is hashed"
    );
    assert!(first.manifest_s3_uri.is_some());
}

#[tokio::test]
async fn objects_changed_or_deleted_by_others_are_checked_and_restored() {
    let bench = stack(true).await;
    let engine = bench.engine();
    run(&bench, &engine, RunRequest::default()).await;
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

    let (summary, counts) = run(&bench, &engine, RunRequest::default()).await;
    assert_eq!(summary.uploaded, 2, "{counts:?}");
    assert_eq!(
        count(&counts, "HeadObject"),
        1,
        "only the object whose ETag moved: {counts:?}"
    );
    assert_eq!(get_bytes(&s3, BUCKET, "s/top.txt").await, b"top level\n");
    assert!(get_bytes(&s3, BUCKET, "s/empty.dat").await.is_empty());
}

#[tokio::test]
async fn verification_reads_every_file_when_asked_and_every_nth_run() {
    let bench = stack(false).await;
    let engine = bench.engine();
    run(&bench, &engine, RunRequest::default()).await;
    let verify = RunRequest {
        verify: Some(true),
        ..RunRequest::default()
    };
    let (asked, counts) = run(&bench, &engine, verify).await;
    assert_eq!((asked.bytes_read, asked.uploaded), (total_bytes(), 0));
    assert_eq!(
        count(&counts, "HeadObject"),
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
    every_second.verify_every = 2;
    let periodic = support::engine(client_for(&bench.proxy.endpoint), every_second);
    let mut read = Vec::new();
    for _ in 0..4 {
        read.push(
            run(&bench, &periodic, RunRequest::default())
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
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    write_tree(bench.source.path(), &borrowed);
    let engine = bench.engine();
    run(&bench, &engine, RunRequest::default()).await;

    // New keys inside and after the ranges the last manifest suggests.
    write_tree(
        bench.source.path(),
        &[
            ("many/00999a", b"new".to_vec()),
            ("many/zzz", b"new".to_vec()),
        ],
    );
    let (summary, counts) = run(&bench, &engine, RunRequest::default()).await;
    let total = (files.len() + sample_files().len()) as u64;
    assert_eq!(
        (summary.uploaded, summary.skipped),
        (2, total),
        "{counts:?}"
    );
    assert_eq!(count(&counts, "HeadObject"), 0, "{counts:?}");
    // Three ranges of 990 recorded keys each at most: the new keys fit in the
    // room each range leaves, so every range is one page.
    assert_eq!(count(&counts, "ListObjectsV2"), 3, "{counts:?}");
}
