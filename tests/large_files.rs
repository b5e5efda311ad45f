//! Large files at full bandwidth: a file's parts go to S3 at once, within
//! the memory budget, each retried alone, and a file that changes while its
//! parts are sent is caught; restore and verify's read-back fetch a large
//! object in ranges at once, and a damaged range is refused. The fault proxy in front of moto counts the
//! requests under way, so overlap is seen, not timed.

mod support;

use std::time::Duration;

use s3_kms_sync::commands::restore::{self, Ranges, RestoreOptions, RestoreReport};
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::commands::verify::{
    self, ReadShare, VerifyOptions, VerifyReport, VerifyRequest, VerifyStatus,
};
use s3_kms_sync::manifest::FileStatus;
use s3_kms_sync::store::Store;
use support::*;

const BUCKET: &str = "large";
const MIB: usize = 1024 * 1024;

/// A file of six 5 MiB parts (the last one short), with distinct bytes.
fn large() -> Vec<u8> {
    (0..26 * MIB).map(|i| (i % 251) as u8).collect()
}

async fn stack_with(content: &[u8]) -> Stack {
    let stack = Stack::start(BUCKET, "data", 7).await;
    write_tree(stack.source.path(), &[("big.bin", content.to_vec())]);
    // Long enough that every part started is still under way when the next starts.
    stack
        .proxy
        .configure(|f| f.delay = Duration::from_millis(300));
    stack
}

/// Runs a sync with `parts` parts of a file at once and `budget` bytes of
/// memory; the most UploadParts under way at once.
async fn peak_parts(stack: &Stack, parts: usize, budget: u64) -> u64 {
    let engine = stack.engine_tuned(&stack.key_arn, |s| {
        s.command.part_concurrency = parts;
        s.command.memory_budget = budget;
    });
    let summary = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(summary.uploaded, 1, "{summary:?}");
    peak(stack, "UploadPart")
}

/// The most requests of `op` the proxy saw under way at once.
fn peak(stack: &Stack, op: &str) -> u64 {
    stack.proxy.peaks().get(op).copied().unwrap_or(0)
}

/// Backs the large file up with the function's defaults.
async fn back_up(stack: &Stack) {
    let summary = stack.engine().run(&SyncRequest::default()).await.unwrap();
    assert_eq!(summary.uploaded, 1, "{summary:?}");
}

/// The large file is stored under SSE-KMS with its MD5, byte for byte.
async fn assert_big_stored(stack: &Stack, content: &[u8]) {
    let key = format!("{}/big.bin", stack.prefix);
    let s3 = stack.moto.s3();
    assert_stored(&s3, BUCKET, &key, &stack.key_arn, content, true).await;
}

/// A restore into `target` in ranges of 5 MiB, `at_once` at a time.
fn ranged(target: &std::path::Path, at_once: usize) -> RestoreOptions {
    RestoreOptions {
        ranges: Ranges {
            part_size: 5 * MIB as u64,
            at_once,
        },
        ..restore_options(target)
    }
}

/// Every ranged GET answer damaged on the way, without delay.
fn corrupting(stack: &Stack) {
    stack.proxy.configure(|f| {
        f.delay = Duration::ZERO;
        f.corrupt_ranges = true;
    });
}

#[tokio::test]
async fn the_parts_of_one_file_are_sent_at_once() {
    let content = large();
    let stack = stack_with(&content).await;
    let peak = peak_parts(&stack, 4, 64 * MIB as u64).await;
    assert_eq!(peak, 4, "parts under way at once");
    assert_big_stored(&stack, &content).await;

    // One at a time when asked: the same file, sent again.
    std::fs::write(
        stack.source.path().join("big.bin"),
        [&content[1..], &[0]].concat(),
    )
    .unwrap();
    stack.proxy.reset_counts();
    assert_eq!(peak_parts(&stack, 1, 64 * MIB as u64).await, 1);
}

#[tokio::test]
async fn the_memory_budget_bounds_the_parts_in_flight() {
    let stack = stack_with(&large()).await;
    // Two 5 MiB parts fit in 10 MiB, whatever the concurrency asked.
    let peak = peak_parts(&stack, 8, 10 * MIB as u64).await;
    assert!(
        (1..=2).contains(&peak),
        "{peak} parts of 5 MiB held in 10 MiB"
    );
}

#[tokio::test]
async fn a_part_whose_answer_is_lost_is_sent_again_alone() {
    let content = large();
    let stack = stack_with(&content).await;
    stack.proxy.configure(|f| f.delay = Duration::ZERO);
    stack.proxy.lose_answer("UploadPart", "big.bin", 3);
    back_up(&stack).await;
    let counts = stack.proxy.counts();
    assert_eq!(counts.get("CreateMultipartUpload"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("UploadPart"),
        Some(&7),
        "six parts, one twice: {counts:?}"
    );
    assert_big_stored(&stack, &content).await;
}

#[tokio::test]
async fn a_file_rewritten_while_its_parts_are_sent_is_caught() {
    let content = large();
    let stack = stack_with(&content).await;
    let rewrite = stack.source.path().join("big.bin");
    stack.proxy.on_request(move |op, request_path| {
        if op == "UploadPart" && request_path.ends_with("big.bin") {
            // Same size, other bytes: only the content and the times differ.
            let _ = std::fs::write(&rewrite, vec![b'x'; 26 * MIB]);
        }
    });
    let summary = stack.engine().run(&SyncRequest::default()).await.unwrap();
    let manifest = manifest_of(&summary);
    let record = manifest.file_records().next().unwrap();
    assert_eq!(record.status, FileStatus::Failed, "{record:?}");
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("changed"),
        "{record:?}"
    );
    assert_eq!(stack.open_uploads().await, 0, "the upload was aborted");
    let head = stack
        .moto
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key(format!("{}/big.bin", stack.prefix))
        .send()
        .await;
    assert!(head.is_err(), "nothing stored under the key");
}

/// The function's store, with KMS to judge the key that restores need.
fn restoring(stack: &Stack) -> Store {
    stack.engine().store.with_kms(stack.moto.kms())
}

/// Backs the large file up, then restores it with `at_once` ranges of
/// 5 MiB at a time; the report, and the most GetObjects under way at once.
async fn restore_large(stack: &Stack, at_once: usize) -> (RestoreReport, tempfile::TempDir, u64) {
    back_up(stack).await;
    stack.proxy.reset_counts();
    let target = tempfile::tempdir().unwrap();
    let options = ranged(target.path(), at_once);
    let report = restore::run(&restoring(stack), stack.prefix, &options)
        .await
        .unwrap();
    (report, target, peak(stack, "GetObject"))
}

#[tokio::test]
async fn a_large_object_is_restored_in_ranges_at_once() {
    let content = large();
    let stack = stack_with(&content).await;
    let (report, target, peak) = restore_large(&stack, 4).await;
    assert_eq!((report.restored, report.failed), (1, 0), "{report:?}");
    assert_eq!(
        std::fs::read(target.path().join("big.bin")).unwrap(),
        content
    );
    // The first range, then three more at once while it is written.
    assert!(peak >= 3, "{peak} ranges under way at once");
    let counts = stack.proxy.counts();
    // Six ranges of the object, and the snapshot read before them.
    assert!(
        counts.get("GetObject").is_some_and(|n| *n >= 6),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_range_whose_answer_is_lost_is_fetched_again_alone() {
    let content = large();
    let stack = stack_with(&content).await;
    stack.proxy.configure(|f| f.delay = Duration::ZERO);
    back_up(&stack).await;
    let target = tempfile::tempdir().unwrap();
    let options = ranged(target.path(), 4);
    stack.proxy.reset_counts();
    let whole = restore::run(&restoring(&stack), stack.prefix, &options)
        .await
        .unwrap();
    let gets = stack.proxy.counts()["GetObject"];
    std::fs::remove_file(target.path().join("big.bin")).unwrap();

    stack.proxy.reset_counts();
    stack.proxy.lose_answer("GetObject", "big.bin", 3);
    let report = restore::run(&restoring(&stack), stack.prefix, &options)
        .await
        .unwrap();
    assert_eq!(
        (whole.restored, report.restored, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        std::fs::read(target.path().join("big.bin")).unwrap(),
        content
    );
    let counts = stack.proxy.counts();
    assert_eq!(
        counts["GetObject"],
        gets + 1,
        "one range again, not the file: {counts:?}"
    );
}

#[tokio::test]
async fn a_corrupted_range_is_refused() {
    let stack = stack_with(&large()).await;
    corrupting(&stack);
    let (report, target, _) = restore_large(&stack, 4).await;
    assert_eq!((report.restored, report.failed), (0, 1), "{report:?}");
    assert!(stack.proxy.injected().contains_key("corrupt-range"));
    let left: Vec<_> = std::fs::read_dir(target.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "nothing restored, no partial file: {left:?}"
    );
}

/// Verifies the large file's object with `--read-data all`; the report and
/// the most GetObjects under way at once.
async fn read_back(stack: &Stack) -> (VerifyReport, u64) {
    back_up(stack).await;
    stack.proxy.reset_counts();
    let request = VerifyRequest {
        read_data: Some(ReadShare::All),
        ..VerifyRequest::default()
    };
    let options = VerifyOptions { concurrency: 4 };
    let report = verify::run(&restoring(stack), stack.prefix, &options, &request)
        .await
        .unwrap();
    (report, peak(stack, "GetObject"))
}

#[tokio::test]
async fn read_data_reads_a_large_object_in_ranges_at_once() {
    let stack = stack_with(&large()).await;
    let (report, peak) = read_back(&stack).await;
    assert_eq!(report.status, VerifyStatus::Ok, "{:?}", report.problems);
    let read = report.read_data.as_ref().unwrap();
    assert_eq!((read.objects_read, read.bytes_read), (1, 26 * MIB as u64));
    assert!(peak >= 3, "{peak} ranges under way at once");
}

#[tokio::test]
async fn read_data_catches_a_corrupted_range() {
    let stack = stack_with(&large()).await;
    corrupting(&stack);
    let (report, _) = read_back(&stack).await;
    assert_ne!(report.status, VerifyStatus::Ok);
    assert_eq!(report.content_mismatch, 1, "{:?}", report.problems);
}
