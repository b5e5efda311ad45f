//! Runs under injected faults and real-S3 behaviour, through the fault proxy
//! in front of moto: every file ends uploaded or failed with a reason, a rerun
//! converges, and nothing is stored unencrypted, half-written or orphaned.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use s3_kms_sync::Error;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::{FileStatus, RunStatus};
use s3_kms_sync::run::lease::{self, Acquired};
use s3_kms_sync::store::Store;
use support::*;

const BUCKET: &str = "faults";

/// The stack, with the proxy refusing any KMS key but the bucket's own.
async fn stack(seed: u64) -> Stack {
    let stack = Stack::start(BUCKET, "data", seed).await;
    let arn = stack.key_arn.clone();
    stack.proxy.configure(|f| f.kms_keys = Some(vec![arn]));
    stack
}

/// 500 small files and three multipart files, each with distinct content.
fn many_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| {
            (
                format!("d{}/f{i:03}.txt", i % 17),
                format!("file {i} ").repeat(i % 50 + 1).into_bytes(),
            )
        })
        .collect();
    for i in 0..3u8 {
        files.push((
            format!("big/{i}.bin"),
            vec![i; 6 * 1024 * 1024 + usize::from(i)],
        ));
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_and_dropped_connections_converge() {
    let bench = stack(7).await;
    let files = many_files();
    write_owned(bench.source.path(), &files);
    bench.proxy.configure(|f| {
        f.error_rate = 0.05;
        f.drop_rate = 0.01;
    });

    let first = bench
        .engine()
        .run(&SyncRequest::default())
        .await
        .expect("first run");
    let manifest = manifest_of(&first);
    assert_eq!(manifest.file_records().count(), files.len());
    for record in manifest.file_records() {
        match record.status {
            FileStatus::Uploaded => {}
            FileStatus::Failed => assert!(record.error.is_some(), "{record:?}"),
            other => panic!("unexpected {other:?} for {}", record.local_path),
        }
    }
    let first_counts = bench.proxy.counts();
    let injected = bench.proxy.injected();
    bench.proxy.reset_counts();

    let second = bench
        .engine()
        .run(&SyncRequest::default())
        .await
        .expect("second run");
    assert_eq!(
        second.failed,
        0,
        "{:?}",
        manifest_of(&second)
            .files
            .iter()
            .filter(|f| f.error.is_some())
            .collect::<Vec<_>>()
    );
    assert_eq!(second.uploaded + second.skipped, files.len() as u64);
    assert_eq!(
        second.uploaded, first.failed,
        "the rerun uploads exactly what failed"
    );

    let s3 = bench.moto.s3();
    for (relative, content) in &files {
        let key = format!("data/{relative}");
        // Reading back every small object would only slow the test; the large ones are compared.
        assert_stored(
            &s3,
            BUCKET,
            &key,
            &bench.key_arn,
            content,
            content.len() > 1024 * 1024,
        )
        .await;
    }
    assert_eq!(
        bench.open_uploads().await,
        0,
        "no multipart upload is left open"
    );
    assert_eq!(
        injected.get("bad-digest"),
        None,
        "every Content-MD5 matched its body"
    );
    eprintln!(
        "fault run: {} files; injected {injected:?}; first run {} uploaded, {} failed, requests {first_counts:?}; \
         second run {} uploaded, {} skipped, requests {:?}",
        files.len(),
        first.uploaded,
        first.failed,
        second.uploaded,
        second.skipped,
        bench.proxy.counts()
    );
}

#[tokio::test]
async fn opaque_etags_do_not_defeat_the_skip() {
    let bench = stack(1).await;
    bench.proxy.configure(|f| f.opaque_etags = true);
    write_tree(bench.source.path(), &sample_files());

    let first = bench.engine().run(&SyncRequest::default()).await.unwrap();
    assert_eq!(first.uploaded, sample_files().len() as u64);
    // The ETags this run saw are not MD5s, as on real S3 under SSE-KMS.
    let manifest = manifest_of(&first);
    for record in manifest.file_records() {
        let etag = record.etag.as_deref().unwrap();
        assert_ne!(
            etag.trim_matches('"'),
            record.md5.as_deref().unwrap(),
            "{}",
            record.local_path
        );
    }
    let second = bench.engine().run(&SyncRequest::default()).await.unwrap();
    assert_eq!(
        (second.uploaded, second.skipped),
        (0, sample_files().len() as u64)
    );
    let counts = bench.proxy.counts();
    assert_eq!(
        counts.get("CompleteMultipartUpload"),
        Some(&1),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_wrong_kms_key_stops_the_run_before_any_upload() {
    let bench = stack(2).await;
    write_tree(bench.source.path(), &sample_files());
    let wrong = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";

    let err = bench
        .engine_with(wrong, 8)
        .run(&SyncRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(wrong) && message.contains("SYNC_KMS_KEY_ID"),
        "{message}"
    );
    let counts = bench.proxy.counts();
    assert_eq!(
        counts.get("PutObject"),
        Some(&1),
        "only the lock was attempted: {counts:?}"
    );
    assert_eq!(counts.get("UploadPart"), None);
    assert!(list_keys(&bench.moto.s3(), BUCKET).await.is_empty());
}

#[tokio::test]
async fn content_md5_mismatches_are_refused_like_s3_does() {
    let bench = stack(3).await;
    let client = client_for(&bench.proxy.endpoint);
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .content_md5(s3_kms_sync::local::hash::Md5Digest::of(b"other").base64())
        .body(b"body".to_vec().into())
        .send()
        .await
        .unwrap_err();
    let text = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err));
    assert!(text.contains("BadDigest"), "{text}");
    assert_eq!(bench.proxy.injected().get("bad-digest"), Some(&1));
}

#[tokio::test]
async fn the_time_limit_leaves_a_manifest_and_the_next_run_finishes() {
    let bench = stack(4).await;
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("f{i:02}"), vec![b'x'; i + 1]))
        .collect();
    write_owned(bench.source.path(), &files);
    bench
        .proxy
        .configure(|f| f.delay = Duration::from_millis(100));

    let engine = bench.engine_with(&bench.key_arn, 2);
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let first = engine
        .run_until(&SyncRequest::default(), Some(stop_at))
        .await
        .unwrap();
    assert!(!first.complete);
    assert!(first.not_reached > 0 && first.uploaded > 0, "{first:?}");
    assert_eq!(first.uploaded + first.not_reached, files.len() as u64);
    assert_eq!(first.status, RunStatus::Partial);
    let manifest = manifest_of(&first);
    assert!(!manifest.complete);
    assert!(
        manifest.summary.manifest_s3_uri.is_some(),
        "the manifest is stored even when time runs out"
    );

    bench.proxy.configure(|f| f.delay = Duration::ZERO);
    let second = engine.run(&SyncRequest::default()).await.unwrap();
    assert!(second.complete);
    assert_eq!(
        (second.uploaded, second.skipped),
        (first.not_reached, first.uploaded)
    );
}

/// The walk stops at the time limit too, so a tree too big to walk in time
/// still leaves a manifest; the run says it is incomplete.
#[tokio::test]
async fn the_walk_stops_at_the_time_limit() {
    let bench = stack(6).await;
    write_tree(bench.source.path(), &sample_files());
    let engine = bench.engine_with(&bench.key_arn, 2);
    let first = engine.run(&SyncRequest::default()).await.unwrap();
    let before = manifest_of(&first);
    let summary = engine
        .run_until(&SyncRequest::default(), Some(Instant::now()))
        .await
        .unwrap();
    assert_eq!(
        (
            summary.status,
            summary.complete,
            summary.skipped,
            summary.not_reached
        ),
        (RunStatus::Partial, false, 0, 0),
        "nothing walked after the limit: {summary:?}"
    );
    assert!(summary.manifest_s3_uri.is_some(), "{summary:?}");
    // Nothing was walked, so every record is the last manifest's, carried.
    assert_eq!(summary.carried, first.uploaded, "{summary:?}");
    let carried = manifest_of(&summary);
    assert!(
        carried
            .files
            .iter()
            .all(|r| r.status == FileStatus::Carried)
    );
    let versions = |m: &s3_kms_sync::manifest::Manifest| -> Vec<_> {
        let mut v: Vec<_> = m
            .files
            .iter()
            .filter(|r| r.status.is_stored())
            .map(|r| (r.s3_key.clone(), r.md5.clone(), r.version_id.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(versions(&carried), versions(&before));
    let next = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(next.skipped, first.uploaded);
}

/// A run stopped by the time limit records how far its walk got; the next
/// walks on from there instead of from the beginning, and the records of
/// what a run did not reach are carried, so every manifest is whole.
#[tokio::test]
async fn each_run_stopped_by_the_time_limit_walks_on_from_where_the_last_stopped() {
    // Enough that two runs cut short at 2.5 s (about 20 uploads a second)
    // leave files for a third, and slices small enough that each finishes some.
    const FILES: usize = 150;
    let bench = stack(8).await;
    let content = |i: usize, round: &str| format!("{round} {i}").into_bytes();
    let files = |round: &str| -> Vec<(String, Vec<u8>)> {
        (0..FILES)
            .map(|i| (format!("d{}/f{i:02}", i / 15), content(i, round)))
            .collect()
    };
    write_owned(bench.source.path(), &files("old"));
    let engine = bench.engine_tuned(&bench.key_arn, |settings| {
        settings.command.concurrency = 2;
        settings.command.slice_files = 10;
    });
    let first = manifest_of(&engine.run(&SyncRequest::default()).await.unwrap());
    assert_eq!(
        (first.resume_after.as_deref(), first.file_records().count()),
        (None, FILES)
    );

    // Every file changes, and uploads are slow: no run gets through them all.
    write_owned(bench.source.path(), &files("new"));
    bench
        .proxy
        .configure(|f| f.delay = Duration::from_millis(100));
    let new = files("new");
    let md5_of = |path: &str| {
        let (_, content) = new.iter().find(|(p, _)| p == path).unwrap();
        s3_kms_sync::local::hash::Md5Digest::of(content).hex()
    };
    let relative = |r: &s3_kms_sync::manifest::FileRecord| {
        r.s3_key
            .as_deref()
            .unwrap()
            .strip_prefix("data/")
            .unwrap()
            .to_owned()
    };
    let cut_short = || async {
        let stop_at = Instant::now() + Duration::from_millis(2500);
        let summary = engine
            .run_until(&SyncRequest::default(), Some(stop_at))
            .await
            .unwrap();
        assert_eq!(
            (summary.status, summary.complete),
            (RunStatus::Partial, false),
            "{summary:?}"
        );
        let manifest = manifest_of(&summary);
        assert_eq!(
            manifest.file_records().count(),
            FILES,
            "a whole snapshot: {summary:?}"
        );
        // Walked: uploaded, or found already stored when a PUT cut short
        // by the limit had gone through.
        let uploaded = manifest
            .file_records()
            .filter(|r| matches!(r.status, FileStatus::Uploaded | FileStatus::Skipped))
            .count();
        let carried = manifest
            .file_records()
            .filter(|r| r.status == FileStatus::Carried)
            .count();
        assert_eq!(
            (uploaded + carried, summary.carried),
            (FILES, carried as u64),
            "{summary:?}"
        );
        assert!(uploaded > 0 && carried > 0, "{summary:?}");
        (summary, manifest)
    };

    let (_, second) = cut_short().await;
    let stopped = second.resume_after.clone().expect("a resume point");
    for record in second.file_records() {
        let path = relative(record);
        if path <= stopped {
            // Walked from the beginning up to the resume point: all done.
            assert_ne!(record.status, FileStatus::Carried, "{path}");
            assert_eq!(record.md5, Some(md5_of(&path)), "{path}");
        }
        if record.status == FileStatus::Carried {
            // The last manifest's record, unchanged: old content, same version.
            let old = first
                .file_records()
                .find(|r| r.s3_key == record.s3_key)
                .unwrap();
            assert_eq!(
                (&record.md5, &record.version_id),
                (&old.md5, &old.version_id)
            );
        }
    }

    // The next run starts after the resume point: what the last one
    // uploaded is carried, not walked again, and the resume point moves on.
    let (_, third) = cut_short().await;
    let moved = third.resume_after.clone().expect("a resume point");
    assert!(moved > stopped, "{moved} after {stopped}");
    for record in third.file_records() {
        let path = relative(record);
        if path <= stopped {
            assert_eq!(
                record.status,
                FileStatus::Carried,
                "{path} was not walked again"
            );
            let done = second
                .file_records()
                .find(|r| r.s3_key == record.s3_key)
                .unwrap();
            assert_ne!(done.status, FileStatus::Carried, "{path}");
            assert_eq!(record.md5, Some(md5_of(&path)), "{path}");
        } else if path <= moved {
            assert_ne!(record.status, FileStatus::Carried, "{path}");
        }
    }

    // Without the limit the rotation ends: every file is stored once, with
    // its new content, and nothing is left to resume.
    bench.proxy.configure(|f| f.delay = Duration::ZERO);
    let last = engine.run(&SyncRequest::default()).await.unwrap();
    let fourth = manifest_of(&last);
    assert!(last.complete && fourth.resume_after.is_none(), "{last:?}");
    for record in fourth.file_records() {
        assert_eq!(record.md5, Some(md5_of(&relative(record))), "{record:?}");
        assert!(matches!(
            record.status,
            FileStatus::Uploaded | FileStatus::Skipped
        ));
    }
    let done_before = [&second, &third]
        .iter()
        .flat_map(|m| m.file_records())
        .filter(|r| r.status != FileStatus::Carried)
        .map(|r| r.s3_key.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    assert_eq!(
        (last.skipped, last.uploaded),
        (done_before, FILES as u64 - done_before)
    );
}

#[tokio::test]
async fn the_time_limit_aborts_a_multipart_upload_between_parts() {
    let bench = stack(5).await;
    write_tree(
        bench.source.path(),
        &[("big.bin", vec![9u8; 12 * 1024 * 1024])],
    );
    bench
        .proxy
        .configure(|f| f.delay = Duration::from_millis(400));

    // The lock, the manifest folder and the listing take 1.2 s at 400 ms a
    // request; the file starts after them and meets the limit between parts.
    let stop_at = Instant::now() + Duration::from_millis(1400);
    let summary = bench
        .engine()
        .run_until(&SyncRequest::default(), Some(stop_at))
        .await
        .unwrap();
    let record = &manifest_of(&summary).files[0];
    assert_eq!(record.status, FileStatus::Failed, "{record:?}");
    assert!(
        record.error.as_deref().unwrap().contains("time limit"),
        "{record:?}"
    );
    assert_eq!(bench.proxy.counts().get("AbortMultipartUpload"), Some(&1));
    assert_eq!(bench.open_uploads().await, 0);
    let keys = list_keys(&bench.moto.s3(), BUCKET).await;
    assert!(!keys.iter().any(|k| k.ends_with("big.bin")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_leave_one_to_work() {
    let bench = stack(6).await;
    write_tree(bench.source.path(), &sample_files());
    // Slow enough that the first run still holds the lock (listing, manifest,
    // release: three requests) while the second one tries it (create, read).
    bench
        .proxy
        .configure(|f| f.delay = Duration::from_millis(300));
    let (a, b) = (bench.engine(), bench.engine());
    let s3 = bench.moto.s3();
    let lock_taken = || async {
        while s3
            .head_object()
            .bucket(BUCKET)
            .key("data/_manifests/lock.json")
            .send()
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    // Either order: whichever starts first works, the other skips.
    for first_is_a in [true, false] {
        let (first, second) = if first_is_a { (&a, &b) } else { (&b, &a) };
        let request = SyncRequest::default();
        let (winner, loser) = tokio::join!(first.run(&request), async {
            lock_taken().await;
            second.run(&request).await
        });
        let (winner, loser) = (winner.unwrap(), loser.unwrap());
        assert_ne!(winner.status, RunStatus::Skipped);
        assert_eq!(loser.status, RunStatus::Skipped, "{loser:?}");
        assert!(
            loser
                .message
                .as_deref()
                .unwrap()
                .contains("another run holds the lock")
        );
        assert_eq!(loser.uploaded + loser.skipped + loser.failed, 0);
        assert_eq!(loser.manifest_s3_uri, None);
    }
    // Both runs released the lock: a third run works.
    let third = a.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(third.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_and_a_live_one_is_respected() {
    let bench = stack(8).await;
    write_tree(bench.source.path(), &[("a.txt", b"a".to_vec())]);
    let remote = Store::new(
        client_for(&bench.proxy.endpoint),
        BUCKET,
        bench.key_arn.clone(),
    );

    let Acquired::Held(live) =
        lease::acquire(&remote, "data", "crashed-run", Duration::from_secs(600))
            .await
            .unwrap()
    else {
        panic!("lock not taken")
    };
    let blocked = bench.engine().run(&SyncRequest::default()).await.unwrap();
    assert_eq!(blocked.status, RunStatus::Skipped);
    assert!(blocked.message.unwrap().contains("crashed-run"));
    lease::release(&remote, &live).await.unwrap();

    // A lock whose holder died long ago expires. Last-Modified has whole
    // seconds, so a zero lifetime is over two seconds later.
    let Acquired::Held(_) = lease::acquire(&remote, "data", "crashed-run", Duration::ZERO)
        .await
        .unwrap()
    else {
        panic!("lock not taken")
    };
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let resumed = bench.engine().run(&SyncRequest::default()).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded);
    let keys: BTreeMap<_, _> = list_keys(&bench.moto.s3(), BUCKET)
        .await
        .into_iter()
        .map(|k| (k, ()))
        .collect();
    assert!(
        !keys.contains_key("data/_manifests/lock.json"),
        "the lock is released: {keys:?}"
    );
}

#[tokio::test]
async fn the_handler_takes_its_time_limit_from_the_invocation() {
    let bench = stack(9).await;
    let files: Vec<(String, Vec<u8>)> = (0..80)
        .map(|i| (format!("f{i:02}"), vec![b'y'; i + 1]))
        .collect();
    write_owned(bench.source.path(), &files);
    bench
        .proxy
        .configure(|f| f.delay = Duration::from_millis(100));

    let mut context = lambda_runtime::Context::default();
    context.deadline = (chrono::Utc::now().timestamp_millis() + 2_000) as u64;
    let engine = bench.engine_with(&bench.key_arn, 2);
    let event = lambda_runtime::LambdaEvent::new(serde_json::json!({}), context);
    let summary = s3_kms_sync::lambda::handle(&engine, event)
        .await
        .unwrap()
        .summary()
        .unwrap();
    assert!(!summary.complete && summary.not_reached > 0, "{summary:?}");
    assert!(summary.manifest_s3_uri.is_some());
}

/// The local copy of the manifest vanishes as soon as it is written (a
/// cleaner sweeping the directory). Files were uploaded by then, so the run
/// still ends with its summary and its manifest in S3, never as an error
/// that would make the CLI say the run could not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_manifest_that_vanishes_after_writing_does_not_fail_the_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let bench = stack(12).await;
    write_tree(bench.source.path(), &[("a.txt", b"a".to_vec())]);
    let (stop, swept) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let sweeper = {
        let (dir, stop, swept) = (
            bench.manifests.path().to_path_buf(),
            Arc::clone(&stop),
            Arc::clone(&swept),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if (name.ends_with(".json") || name.ends_with(".json.gz"))
                        && std::fs::remove_file(entry.path()).is_ok()
                    {
                        swept.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let mut engine = bench.engine();
    for round in 0..10 {
        // The first format uploads its local copy; the paged one does not.
        engine.config.command.snapshot_format = 1 + round % 2;
        std::fs::write(bench.source.path().join("a.txt"), format!("round {round}")).unwrap();
        let summary = engine
            .run(&SyncRequest::default())
            .await
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
        assert_eq!(summary.uploaded, 1, "round {round}: {summary:?}");
        assert!(summary.manifest_s3_uri.is_some(), "{summary:?}");
    }
    stop.store(true, Ordering::Relaxed);
    sweeper.join().unwrap();
    assert!(swept.load(Ordering::Relaxed) > 0, "the sweeper never ran");
}
