//! The run lock under lost answers, takeovers and disagreeing clocks.

mod support;

use std::time::Duration;

use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::RunStatus;
use s3_kms_sync::run::lease::{self, Acquired};
use s3_kms_sync::store::Store;
use support::*;

const LOCK: &str = "data/_manifests/lock.json";

/// The stack with 30 small files, and an engine that renews a 3-second lock
/// every second while it sends one file at a time, slowly.
async fn slow_run_stack(bucket: &'static str) -> (Stack, Engine) {
    let stack = Stack::start(bucket, "data", 0).await;
    let files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("f{i:02}.txt"), format!("file {i}").into_bytes()))
        .collect();
    write_owned(stack.source.path(), &files);
    stack
        .proxy
        .configure(|f| f.delay = Duration::from_millis(120));
    let mut settings = settings(
        stack.source.path(),
        stack.manifests.path(),
        stack.bucket,
        &stack.key_arn,
        stack.prefix,
    );
    settings.run.lock_ttl = Duration::from_secs(3);
    settings.command.concurrency = 1;
    let engine = engine(client_for(&stack.proxy.endpoint), settings);
    (stack, engine)
}

/// Writes the lock object as another run (or another clock) would.
async fn plant_lock(
    s3: aws_sdk_s3::Client,
    bucket: &str,
    kms_key: String,
    holder: serde_json::Value,
) {
    s3.put_object()
        .bucket(bucket)
        .key(LOCK)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(kms_key)
        .body(holder.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
}

async fn lock_exists(stack: &Stack) -> bool {
    list_keys(&stack.moto.s3(), stack.bucket)
        .await
        .contains(&LOCK.to_owned())
}

/// The first renewal reaches S3 but its answer is lost; the SDK's retry is
/// refused (the ETag moved). The run knows the lock shows its own renewal,
/// keeps it, and releases it at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_whose_answer_is_lost_keeps_the_lock() {
    let (stack, engine) = slow_run_stack("renewal").await;
    // The first PutObject on the lock takes it; the second is the first renewal.
    stack
        .proxy
        .lose_answer("PutObject", "_manifests/lock.json", 2);
    let summary = engine.run(&SyncRequest::default()).await.unwrap();
    assert!(
        summary.duration_ms > 2_000,
        "the run outlived a renewal: {summary:?}"
    );
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    assert_eq!(stack.proxy.injected().get("drop"), Some(&1));
    assert!(
        !lock_exists(&stack).await,
        "the lock was released with its current ETag"
    );
    let next = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
}

/// Another run takes the lock over mid-run. The next renewal finds it: no
/// more files are started, the manifest says the run is incomplete, the
/// summary is partial with the reason, and the new holder's lock is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lock_stops_and_reports_partial() {
    let (stack, engine) = slow_run_stack("takeover").await;
    let s3 = stack.moto.s3();
    let (bucket, key) = (stack.bucket, stack.key_arn.clone());
    stack.proxy.on_request(move |op, path| {
        if op == "PutObject" && path.ends_with("f03.txt") {
            let (s3, key) = (s3.clone(), key.clone());
            let intruder = serde_json::json!({
                "run_id": "intruder", "acquired_at": chrono::Utc::now(),
                "expires_at": chrono::Utc::now(), "ttl_secs": 600
            });
            tokio::spawn(plant_lock(s3, bucket, key, intruder));
        }
    });
    let summary = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Partial, "{summary:?}");
    assert!(!summary.complete && summary.not_reached > 0, "{summary:?}");
    let message = summary.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("lost the lock") && message.contains("intruder"),
        "{message}"
    );
    assert!(!manifest_of(&summary).complete);
    assert!(summary.manifest_s3_uri.is_some());
    let held = get_bytes(&stack.moto.s3(), stack.bucket, LOCK).await;
    assert!(String::from_utf8_lossy(&held).contains("intruder"));
}

/// Expiry follows S3's clock (the lock's Last-Modified against S3's Date),
/// never the expiry the holder computed with its own clock.
#[tokio::test]
async fn lock_expiry_follows_s3s_clock_not_the_holders() {
    let stack = Stack::start("clocks", "data", 0).await;
    let remote = Store::new(
        client_for(&stack.proxy.endpoint),
        stack.bucket,
        stack.key_arn.clone(),
    );
    let now = chrono::Utc::now();
    let plant = |run_id: &str, expires_at: chrono::DateTime<chrono::Utc>, ttl_secs: u64| {
        let body = serde_json::json!({
            "run_id": run_id, "acquired_at": now, "expires_at": expires_at, "ttl_secs": ttl_secs
        });
        plant_lock(stack.moto.s3(), stack.bucket, stack.key_arn.clone(), body)
    };

    // Written just now by a holder whose clock runs an hour behind.
    plant("behind", now - chrono::Duration::hours(1), 600).await;
    let taken = lease::acquire(&remote, "data", "me", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(&taken, Acquired::Busy(h) if h.run_id == "behind"),
        "{taken:?}"
    );

    // A one-second lease by a holder whose clock runs an hour ahead.
    plant("ahead", now + chrono::Duration::hours(1), 1).await;
    // Both S3 times have whole seconds: over three seconds is surely over 1 + 1.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let taken = lease::acquire(&remote, "data", "me", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(taken, Acquired::Held(_)), "{taken:?}");
}

/// `unlock` leaves a live lock alone and names its holder, removes it with
/// `--force`, and removes an expired one (by S3's clock) without.
#[tokio::test]
async fn unlock_removes_a_lock_whose_run_is_gone_and_names_a_live_one() {
    use s3_kms_sync::commands::unlock::{self, UnlockOptions, Unlocked};
    let backup = Backup::new("unlocked", "p", false).await;
    let store = &backup.engine.store;
    let run_options = &backup.engine.config.run;
    let options = |force| UnlockOptions { force };

    let free = unlock::run(store, "p", run_options, &options(false))
        .await
        .unwrap();
    assert_eq!(free, Unlocked::Free);

    let Acquired::Held(_) = lease::acquire(store, "p", "gone-run", Duration::from_secs(600))
        .await
        .unwrap()
    else {
        panic!("the lock was free")
    };
    let held = unlock::run(store, "p", run_options, &options(false))
        .await
        .unwrap();
    let Unlocked::Held { holder } = held else {
        panic!("a live lock was removed: {held:?}")
    };
    assert_eq!(holder.run_id, "gone-run");
    assert!(lease::holder(store, "p").await.unwrap().is_some());
    let forced = unlock::run(store, "p", run_options, &options(true))
        .await
        .unwrap();
    assert!(
        matches!(&forced, Unlocked::Forced { holder: Some(h) } if h.run_id == "gone-run"),
        "{forced:?}"
    );
    assert_eq!(lease::holder(store, "p").await.unwrap(), None);

    // A lease of 3 s, expired by S3's clock, goes without --force.
    lease::acquire(store, "p", "crashed-run", Duration::from_secs(3))
        .await
        .unwrap();
    // Expiry is judged by S3's whole-second clock with a second's margin
    // (see lease.rs): 3 s of lease is over by S3's reckoning within 5 s.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let removed = unlock::run(store, "p", run_options, &options(false))
        .await
        .unwrap();
    assert!(
        matches!(&removed, Unlocked::Removed { holder: Some(h) } if h.run_id == "crashed-run"),
        "{removed:?}"
    );
    assert_eq!(lease::holder(store, "p").await.unwrap(), None);
}
