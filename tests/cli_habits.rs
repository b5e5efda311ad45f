//! What a user of the aws CLI, restic or coreutils expects of a command
//! line: a flag wins over the environment (the endpoint named on the
//! command line is the one a backup goes to, whatever `AWS_ENDPOINT_URL`
//! says), and a reader that goes away (`| head`) ends a command quietly,
//! with status 0, never a panic; Ctrl-C stops a restore as it stops a
//! sync; a bare 0 is a span of none.

mod support;

use support::cli::{cli, moto_env, signal_after, spawn};
use support::*;

#[tokio::test]
async fn the_endpoint_flag_wins_over_the_environment() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("flags").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let sync = |endpoint: &str, env: &[(&str, &str)]| {
        let args = [
            "sync",
            "--source-dir",
            source.path().to_str().unwrap(),
            "--bucket",
            "flags",
            "--kms-key-id",
            key.as_str(),
            "--manifest-dir",
            manifests.path().to_str().unwrap(),
            "--endpoint-url",
            endpoint,
        ];
        cli(&args, env)
    };

    // The environment names moto, the flag an endpoint nobody listens on:
    // the run goes to the flag's, and fails there.
    let out = sync(&nobody, &moto_env(&moto.endpoint, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach S3 at {nobody}")),
        "{stderr}"
    );

    // The other way round (KMS keeps its own endpoint, here moto's).
    let env = moto_env(&nobody, &[("AWS_ENDPOINT_URL_KMS", moto.endpoint.as_str())]);
    let out = sync(&moto.endpoint, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["uploaded"], 1, "{summary}");
}

/// The CLI with its standard output's reader gone before it writes.
fn with_closed_stdout(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut child = spawn(args, env);
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_closed_pipe_ends_a_command_quietly() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("pipes").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("f{i:03}.txt"), vec![b'x'; i]))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    write_tree(source.path(), &files);
    let env = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "pipes"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
        ],
    );
    let source_dir = source.path().to_str().unwrap();
    let synced = cli(&["sync", "--source-dir", source_dir], &env);
    assert_eq!(
        synced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );

    let one = source.path().join("f001.txt");
    for args in [
        vec!["snapshots"],
        vec!["snapshots", "--json"],
        vec!["ls", "latest"],
        vec!["find", "*.txt"],
        vec!["md5", one.to_str().unwrap()],
    ] {
        let out = with_closed_stdout(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

/// SIGINT in the middle of a restore: no more files are started, those in
/// flight finish, the report says how many were left, and the process
/// exits 130 (128 + SIGINT) with no partial file left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_restore_and_reports_what_was_left() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let moto = Moto::start();
    let key = moto.bucket_and_key("stopped").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("f{i:02}.txt"), format!("file {i}\n").into_bytes()))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    write_tree(source.path(), &files);
    let settings = [
        ("SYNC_BUCKET", "stopped"),
        ("SYNC_KMS_KEY_ID", key.as_str()),
        ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
        ("SYNC_CONCURRENCY", "2"),
    ];
    let source_dir = source.path().to_str().unwrap();
    let synced = cli(
        &["sync", "--source-dir", source_dir],
        &moto_env(&moto.endpoint, &settings),
    );
    assert_eq!(
        synced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );

    let proxy = proxy::Proxy::start(&moto.endpoint, 5).await;
    proxy.configure(|f| f.delay = std::time::Duration::from_millis(150));
    let fetched = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&fetched);
    proxy.on_request(move |op, path| {
        if op == "GetObject" && !path.contains("_manifests") {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let env = moto_env(&proxy.endpoint, &settings);
    let target_dir = target.path().to_str().unwrap();
    let child = spawn(&["restore", "--json", "--target", target_dir], &env);
    let out = signal_after(child, &fetched, 3, "INT", "the restore's fetching").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (restored, left) = (
        report["restored"].as_u64().unwrap(),
        report["not_started"].as_u64().unwrap(),
    );
    assert!(restored >= 1 && left >= 1, "{report}");
    assert_eq!(restored + left, 60, "{report}");
    assert_eq!(report["status"], "partial", "{report}");
    let partial: Vec<_> = std::fs::read_dir(target.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
}

#[tokio::test]
async fn a_bare_zero_keeps_deleted_versions_for_no_time() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("zero").await;
    let manifests = tempfile::tempdir().unwrap();
    let env = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "zero"),
            ("SYNC_PREFIX", "backups"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
        ],
    );
    let forget = |span: &str| {
        let args = [
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--dry-run",
            "--keep-deleted-within",
            span,
        ];
        cli(&args, &env)
    };
    let (zero, zero_h, seven) = (forget("0"), forget("0h"), forget("7"));
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(!stderr.contains("is not a span"), "{stderr}");
    // A report, whatever it says of a prefix with no snapshot, as for 0h.
    assert_ne!(zero.status.code(), Some(2), "{stderr}");
    assert_eq!(zero.status.code(), zero_h.status.code(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&zero.stdout).unwrap();
    assert_eq!(report["dry_run"], true, "{report}");
    // A bare number other than 0 still names its missing unit.
    assert_eq!(seven.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&seven.stderr).contains("is not a span"));
}
