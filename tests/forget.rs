//! `forget` and `forget --prune` on moto, in a versioned bucket: every keep
//! option on planted snapshots, prune checked against the bucket's full
//! version list, a prune killed and rerun, and Object Lock's refusal.

mod support;

use std::collections::BTreeSet;

use aws_sdk_s3::Client;
use s3_kms_sync::commands::forget::{ForgetArgs, ForgetReport, ForgetStatus};
use s3_kms_sync::manifest::Summary;
use support::*;

const BUCKET: &str = "kept";
const PREFIX: &str = "p";

async fn forget(backup: &Backup, args: ForgetArgs) -> ForgetReport {
    forget_with(backup, args).await
}

/// Every version in the bucket outside the manifest folder, and whether
/// each is a delete marker.
async fn data_versions(s3: &Client) -> BTreeSet<(String, String, bool)> {
    let mut all = BTreeSet::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(BUCKET)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap();
        for v in page.versions() {
            all.insert((
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
                false,
            ));
        }
        for m in page.delete_markers() {
            all.insert((
                m.key().unwrap().to_owned(),
                m.version_id().unwrap().to_owned(),
                true,
            ));
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    all.retain(|(key, _, _)| !key.starts_with("p/_manifests/"));
    all
}

/// The (key, version) pairs the runs' manifests reference.
fn referenced(runs: &[&Summary]) -> BTreeSet<(String, String, bool)> {
    runs.iter()
        .flat_map(|summary| manifest_of(summary).files)
        .filter(|f| f.is_stored_file())
        .map(|f| (f.s3_key.unwrap(), f.version_id.unwrap(), false))
        .collect()
}

/// Plants a copy of the manifest of `summary` under a name of `stamp`, as
/// a run started then would have named it (its metadata copied too).
async fn plant(backup: &Backup, summary: &Summary, stamp: &str, n: usize) -> String {
    let source = manifest_key(summary, BUCKET);
    let key = format!("{PREFIX}/_manifests/{stamp}-planted-{n}.json");
    backup
        .moto
        .s3()
        .copy_object()
        .bucket(BUCKET)
        .key(&key)
        .copy_source(format!("{BUCKET}/{source}"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(&backup.key_arn)
        .send()
        .await
        .unwrap();
    key
}

/// Each `--keep-*` option, in a dry run, over 42 planted snapshots: daily
/// at 02:00 from 22 October to 30 November 2026, and two more on the last
/// day at 03:00 and 04:00. The dry runs change nothing; a real forget then
/// removes every version of each forgotten manifest.
#[tokio::test]
async fn each_keep_option_keeps_what_restic_would() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let real = backup.sync().await;
    let s3 = backup.moto.s3();
    let mut n = 0;
    let mut stamp_of = |day: &str, hour: u32| {
        n += 1;
        (format!("2026{day}T{hour:02}0000.000Z"), n)
    };
    let mut planted = Vec::new();
    for day in (22..=31)
        .map(|d| format!("10{d}"))
        .chain((1..=30).map(|d| format!("11{d:02}")))
    {
        planted.push(stamp_of(&day, 2));
    }
    planted.push(stamp_of("1130", 3));
    planted.push(stamp_of("1130", 4));
    for (stamp, n) in &planted {
        plant(&backup, &real, stamp, *n).await;
    }
    // Only the planted ones stay, so "now" and the real run's time play no part.
    let real_key = manifest_key(&real, BUCKET);
    let version = head(&s3, BUCKET, &real_key)
        .await
        .version_id()
        .unwrap()
        .to_owned();
    s3.delete_object()
        .bucket(BUCKET)
        .key(&real_key)
        .version_id(version)
        .send()
        .await
        .unwrap();

    let cases: [(&str, ForgetArgs, &[&str]); 8] = [
        (
            "last 3",
            ForgetArgs {
                keep_last: Some("3".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1130T03", "1130T02"],
        ),
        (
            "hourly 2",
            ForgetArgs {
                keep_hourly: Some("2".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1130T03"],
        ),
        (
            "daily 3",
            ForgetArgs {
                keep_daily: Some("3".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1129T02", "1128T02"],
        ),
        // 30 November is a Monday: ISO week 49 holds it alone, week 48 ends on the 29th.
        (
            "weekly 2",
            ForgetArgs {
                keep_weekly: Some("2".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1129T02"],
        ),
        (
            "monthly 2",
            ForgetArgs {
                keep_monthly: Some("2".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1031T02"],
        ),
        // One year holds snapshots, three are asked for: the oldest is kept too.
        (
            "yearly 3",
            ForgetArgs {
                keep_yearly: Some("3".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1022T02"],
        ),
        (
            "within 2d",
            ForgetArgs {
                keep_within: Some("2d".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1130T03", "1130T02", "1129T02"],
        ),
        (
            "unlimited monthly",
            ForgetArgs {
                keep_monthly: Some("unlimited".parse().unwrap()),
                ..ForgetArgs::default()
            },
            &["1130T04", "1031T02"],
        ),
    ];
    let before = data_versions(&s3).await;
    for (name, mut args, expected) in cases {
        args.dry_run = true;
        let report = forget(&backup, args).await;
        let mut kept: Vec<String> = report
            .snapshots
            .iter()
            .filter(|f| f.kept)
            .map(|f| f.line.time.format("%m%dT%H").to_string())
            .collect();
        kept.sort_unstable();
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        expected.sort_unstable();
        assert_eq!(kept, expected, "{name}");
        assert_eq!(report.forgotten, 42 - expected.len() as u64, "{name}");
        assert!(report.dry_run && report.status == ForgetStatus::Succeeded);
    }
    let lines = s3_kms_sync::commands::snapshots::run(&backup.engine.store, PREFIX)
        .await
        .unwrap();
    assert_eq!(lines.len(), 42, "a dry run forgets nothing");
    assert_eq!(data_versions(&s3).await, before);

    let report = forget(
        &backup,
        ForgetArgs {
            keep_daily: Some("3".parse().unwrap()),
            ..ForgetArgs::default()
        },
    )
    .await;
    assert_eq!((report.kept, report.forgotten), (3, 39));
    let manifests = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix("p/_manifests/2026")
        .send()
        .await
        .unwrap();
    let left: BTreeSet<&str> = manifests
        .versions()
        .iter()
        .map(|v| v.key().unwrap())
        .chain(manifests.delete_markers().iter().map(|m| m.key().unwrap()))
        .collect();
    assert_eq!(
        left.len(),
        3,
        "every version of a forgotten manifest is gone: {left:?}"
    );
    assert!(
        left.iter()
            .all(|k| k.contains("1130T04") || k.contains("1129T02") || k.contains("1128T02"))
    );
}

/// Prune deletes exactly what no kept snapshot references (after the grace
/// period, here none), checked against the bucket's full version list; a
/// file that left the source is hidden first and deleted by the next
/// prune; the oldest kept snapshot still restores byte for byte.
#[tokio::test]
async fn prune_deletes_exactly_the_unreferenced_versions() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let s3 = backup.moto.s3();
    let root = backup.source.path();
    // A run's local manifest copy goes when the next run writes its own.
    let first = referenced(&[&backup.sync().await]);
    write_tree(root, &[("top.txt", b"second top\n".to_vec())]);
    std::fs::remove_file(root.join("with space/file name.txt")).unwrap();
    next_second();
    let second = backup.sync().await;
    let second_uri = second.manifest_s3_uri.clone();
    let second = referenced(&[&second]);
    let tree_at_second = tree(root);
    write_tree(root, &[("top.txt", b"third top\n".to_vec())]);
    next_second();
    let third = referenced(&[&backup.sync().await]);
    assert_eq!(data_versions(&s3).await.len(), sample_files().len() + 2);

    let no_grace = |last: &str| ForgetArgs {
        keep_last: Some(last.parse().unwrap()),
        prune: true,
        keep_deleted_within: Some("0h".parse().unwrap()),
        ..ForgetArgs::default()
    };
    next_second();
    let report = forget(&backup, no_grace("2")).await;
    assert_eq!(report.status, ForgetStatus::Succeeded, "{report:#?}");
    assert_eq!((report.kept, report.forgotten), (2, 1));
    let prune = report.prune.as_ref().unwrap();
    assert_eq!(prune.manifests_read, 2);
    assert_eq!(
        prune.sweep.versions_to_delete, 1,
        "top.txt's first version: {prune:#?}"
    );
    // The file removed before the second run is in no kept snapshot: its
    // object is hidden behind a marker, and its grace period starts.
    assert_eq!(
        prune.hidden - prune.sweep.pages_to_hide,
        1,
        "besides the pages only the forgotten snapshot named: {prune:#?}"
    );
    let removed = |(key, _, _): &(String, String, bool)| key.ends_with("file name.txt");
    let mut kept: BTreeSet<_> = second.union(&third).cloned().collect();
    kept.extend(first.iter().filter(|v| removed(v)).cloned());
    let now = data_versions(&s3).await;
    let (markers, versions): (BTreeSet<_>, BTreeSet<_>) = now.into_iter().partition(|v| v.2);
    assert_eq!(versions, kept);
    assert!(
        markers.len() == 1 && markers.iter().all(removed),
        "{markers:?}"
    );
    assert!(
        !first.is_subset(&versions),
        "top.txt's first version is gone"
    );

    // The oldest kept snapshot restores whole.
    let target = tempfile::tempdir().unwrap();
    let mut restore = restore_options(target.path());
    restore.manifest = second_uri;
    let restored = s3_kms_sync::commands::restore::run(&backup.engine.store, PREFIX, &restore)
        .await
        .unwrap();
    assert_eq!(
        restored.status,
        s3_kms_sync::manifest::RunStatus::Succeeded,
        "{restored:#?}"
    );
    assert_eq!(tree(target.path()), tree_at_second);

    // A second later (the marker's time is past the grace of none), the
    // next prune deletes the hidden version and its marker, and what the
    // forgotten second run alone referenced.
    next_second();
    let report = forget(&backup, no_grace("1")).await;
    assert_eq!(report.status, ForgetStatus::Succeeded);
    assert_eq!(data_versions(&s3).await, third, "{report:#?}");
    assert!(report.prune.as_ref().unwrap().record.is_some());

    // Nothing is left to do: a fourth prune changes nothing.
    let report = forget(&backup, no_grace("1")).await;
    let prune = report.prune.unwrap();
    assert_eq!((prune.deleted, prune.hidden, prune.record), (0, 0, None));
}

/// The grace period keeps an unreferenced version until it has been
/// noncurrent that long.
#[tokio::test]
async fn a_version_within_the_grace_period_stays() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let s3 = backup.moto.s3();
    backup.sync().await;
    write_tree(backup.source.path(), &[("top.txt", b"changed\n".to_vec())]);
    // Else the first version may share the newest run's second, and count
    // as written after that run started (which prune never touches).
    next_second();
    backup.sync().await;
    let before = data_versions(&s3).await;
    let report = forget(
        &backup,
        ForgetArgs {
            keep_last: Some("1".parse().unwrap()),
            prune: true,
            ..ForgetArgs::default()
        },
    )
    .await;
    let prune = report.prune.unwrap();
    assert_eq!((prune.sweep.in_grace, prune.deleted), (1, 0), "{prune:#?}");
    assert_eq!(data_versions(&s3).await, before);
}

/// A prune killed after its record is written leaves the record pending;
/// the next prune finishes it, and the bucket ends as an uninterrupted
/// prune leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_prune_is_finished_by_the_next() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let s3 = backup.moto.s3();
    let root = backup.source.path();
    backup.sync().await;
    write_tree(
        root,
        &[
            ("top.txt", b"second\n".to_vec()),
            ("empty.dat", b"x".to_vec()),
        ],
    );
    next_second();
    let second = referenced(&[&backup.sync().await]);

    let proxy = proxy::Proxy::start(&backup.moto.endpoint, 7).await;
    let deletes = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&deletes);
    proxy.on_request(move |op, _| {
        // The first DeleteObjects forgets the manifest; the second is the
        // prune's: it is held until the process is killed.
        if op == "DeleteObjects" && seen.fetch_add(1, Ordering::SeqCst) == 1 {
            std::thread::sleep(std::time::Duration::from_secs(3));
        }
    });
    next_second();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_s3-kms-sync"))
        .args([
            "forget",
            "--bucket",
            BUCKET,
            "--prefix",
            PREFIX,
            "--kms-key-id",
            &backup.key_arn,
            "--keep-last",
            "1",
            "--prune",
            "--keep-deleted-within",
            "0h",
            "--lock-ttl-secs",
            "3",
        ])
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("SYNC_SIGNING_KEY_ID")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(backup.manifests.path().join("forget.log")).unwrap())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while deletes.load(Ordering::SeqCst) < 2 {
        assert!(
            waited.elapsed().as_secs() < 60,
            "the prune never reached its deletions"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the prune ended before its deletions: {}",
            std::fs::read_to_string(backup.manifests.path().join("forget.log")).unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let pending: Vec<String> = list_keys(&s3, BUCKET)
        .await
        .into_iter()
        .filter(|k| k.ends_with(".pending.json"))
        .collect();
    assert_eq!(pending.len(), 1, "the killed prune left its record");

    // The killed run's lock expires (3 s), then a rerun finishes the job.
    // S3's whole-second clock plus the lease's second of margin: 3 s of
    // lease is over by S3's reckoning within 5 s.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let report = forget(
        &backup,
        ForgetArgs {
            keep_last: Some("1".parse().unwrap()),
            prune: true,
            keep_deleted_within: Some("0h".parse().unwrap()),
            ..ForgetArgs::default()
        },
    )
    .await;
    assert_eq!(report.status, ForgetStatus::Succeeded, "{report:#?}");
    let prune = report.prune.unwrap();
    assert_eq!(prune.resumed.len(), 1, "{prune:#?}");
    assert_eq!(data_versions(&s3).await, second);
    let keys = list_keys(&s3, BUCKET).await;
    assert!(
        !keys.iter().any(|k| k.ends_with(".pending.json")),
        "{keys:?}"
    );
    let finished = pending[0].replace(".pending.json", ".json");
    assert!(
        keys.contains(&finished),
        "the finished record stays: {keys:?}"
    );
}
