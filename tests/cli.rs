//! The command-line front end: exit status, stdout summary, fail-fast config.

mod support;

use support::cli::{cli, moto_env, signal_after, spawn};
use support::*;

#[test]
fn missing_settings_fail_before_any_request_and_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["sync", "--source-dir", source, "--kms-key-id", "k"],
            "SYNC_BUCKET",
        ),
        (
            &["sync", "--source-dir", source, "--bucket", "b"],
            "--kms-key-id",
        ),
        (
            &[
                "sync",
                "--source-dir",
                "/no/such/dir",
                "--bucket",
                "b",
                "--kms-key-id",
                "k",
            ],
            "--source-dir",
        ),
    ];
    for (args, fix) in cases {
        let out = cli(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(fix), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn sync_prints_the_summary_and_exits_by_outcome() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("cli").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let env = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "cli"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
        ],
    );
    let args = [
        "sync",
        "--source-dir",
        source.path().to_str().unwrap(),
        "--prefix",
        "c",
    ];

    let out = cli(&args, &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON summary on stdout");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["uploaded"], 1);
    assert!(
        summary["manifest_s3_uri"]
            .as_str()
            .unwrap()
            .starts_with("s3://cli/c/_manifests/")
    );

    let long: std::path::PathBuf = (0..5).map(|i| format!("{i}{}", "x".repeat(249))).collect();
    write_tree(
        source.path(),
        &[(long.join("f").to_str().unwrap(), b"f".to_vec())],
    );
    let out = cli(&args, &env);
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["status"].as_str(), summary["failed"].as_u64()),
        (Some("partial"), Some(1))
    );
}

/// Without --manifest-dir the copies go to a private per-user directory,
/// readable by their owner only, not to the shared temporary directory.
#[tokio::test]
async fn manifests_are_private_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let moto = Moto::start();
    let key = moto.bucket_and_key("private").await;
    let (source, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let env = moto_env(&moto.endpoint, &[("HOME", home.path().to_str().unwrap())]);
    let args = [
        "sync",
        "--source-dir",
        source.path().to_str().unwrap(),
        "--bucket",
        "private",
        "--kms-key-id",
        &key,
    ];
    let out = cli(&args, &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let local = std::path::PathBuf::from(summary["manifest_local_path"].as_str().unwrap());
    let dir = home.path().join(".local/state/s3-kms-sync");
    assert_eq!(local.parent(), Some(dir.as_path()));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&local), 0o600);

    // A default directory others can write to is refused, naming the fix.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = cli(&args, &env);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SYNC_MANIFEST_DIR") && stderr.contains("0700"),
        "{stderr}"
    );
}

#[test]
fn md5_prints_what_md5sum_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"The quick brown fox jumps over the lazy dog").unwrap();
    let out = cli(&["md5", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let expected = format!("9e107d9d372bb6826bd81d3542a419d6  {}\n", file.display());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert_eq!(cli(&["md5", "/no/such/file"], &[]).status.code(), Some(1));
}

#[tokio::test]
async fn verify_prints_its_report_and_exits_by_what_it_found() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("proof").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(
        source.path(),
        &[("a.txt", b"a".to_vec()), ("b.txt", b"b".to_vec())],
    );
    let env = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "proof"),
            ("SYNC_PREFIX", "p"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
        ],
    );
    let synced = cli(
        &["sync", "--source-dir", source.path().to_str().unwrap()],
        &env,
    );
    assert_eq!(synced.status.code(), Some(0));

    let out = cli(&["verify", "--read-data", "all"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["status"].as_str(), report["checked"].as_u64()),
        (Some("ok"), Some(2))
    );
    assert_eq!(report["read_data"]["objects_read"], 2);

    moto.s3()
        .delete_object()
        .bucket("proof")
        .key("p/b.txt")
        .send()
        .await
        .unwrap();
    let out = cli(&["verify"], &env);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["missing"], 1);
    assert_eq!(report["problems"][0]["key"], "p/b.txt");

    let out = cli(
        &["verify", "--manifest", "s3://elsewhere/p/_manifests/x.json"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--manifest"));
}

/// A backup signed through the CLI; a restore that pins another public key
/// exits 2 and writes nothing, one that pins the signing key's restores.
#[tokio::test]
async fn restore_exits_2_on_a_snapshot_the_pinned_key_did_not_sign() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("pinned").await;
    let signing = moto.signing_key().await;
    let (source, manifests, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let common = [
        ("SYNC_BUCKET", "pinned"),
        ("SYNC_KMS_KEY_ID", key.as_str()),
        ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
    ];
    let mut signed = common.to_vec();
    signed.push(("SYNC_SIGNING_KEY_ID", signing.as_str()));
    let args = ["sync", "--source-dir", source.path().to_str().unwrap()];
    let sync = cli(&args, &moto_env(&moto.endpoint, &signed));
    assert_eq!(
        sync.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&sync.stdout).unwrap();
    assert_eq!(summary["signed_by"].as_str(), Some(signing.as_str()));

    let pem_of = |key_id: String| {
        let moto = &moto;
        async move {
            let der = moto
                .kms()
                .get_public_key()
                .key_id(key_id)
                .send()
                .await
                .unwrap();
            let der = der.public_key().unwrap().as_ref().to_vec();
            let pem = openssl::pkey::PKey::public_key_from_der(&der).unwrap();
            String::from_utf8(pem.public_key_to_pem().unwrap()).unwrap()
        }
    };
    let other = pem_of(moto.signing_key().await).await;
    let own = pem_of(signing.clone()).await;
    let target = out.path().join("restored");
    let restore = |pem: &str| {
        let mut env = common.to_vec();
        env.push(("SYNC_TRUSTED_PUBLIC_KEY", pem));
        cli(
            &["restore", "--target", target.to_str().unwrap()],
            &moto_env(&moto.endpoint, &env),
        )
    };
    let refused = restore(&other);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not signed by the trusted key"), "{stderr}");
    assert!(!target.exists(), "nothing was written");
    let restored = restore(&own);
    assert_eq!(
        restored.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"a");
}

/// Each reason the first request fails gets its own one-line message with
/// its own fix, exit status 2, and no SDK dump: a missing bucket, no
/// credentials, no region, an endpoint nobody listens on.
#[test]
fn each_cause_of_a_failed_start_is_named_with_its_fix() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().to_str().unwrap();
    let args = [
        "sync",
        "--source-dir",
        source,
        "--bucket",
        "no-such-bucket",
        "--kms-key-id",
        "k",
    ];
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.to_str().unwrap();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    type Env<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Env, &str)> = vec![
        (
            "missing bucket",
            moto_env(&moto.endpoint, &[]),
            "bucket no-such-bucket does not exist: check SYNC_BUCKET (--bucket)",
        ),
        (
            "unreachable endpoint",
            moto_env(&nobody, &[]),
            "cannot reach S3 at http://127.0.0.1:",
        ),
        (
            "no credentials",
            vec![
                ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("HOME", home),
            ],
            "no AWS credentials were found",
        ),
        (
            "no region",
            [
                vec![
                    ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
                    ("AWS_EC2_METADATA_DISABLED", "true"),
                    ("HOME", home),
                ],
                creds.to_vec(),
            ]
            .concat(),
            "no AWS region is set: pass --region or set AWS_REGION",
        ),
    ];
    for (name, env, expected) in cases {
        let out = cli(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(
            !stderr.contains("SSE-KMS key")
                && !stderr.contains("DispatchFailure")
                && !stderr.contains("ServiceError"),
            "{name}: blames the key or dumps the SDK's error: {stderr}"
        );
        assert!(
            stderr.len() < 400,
            "{name}: {} bytes: {stderr}",
            stderr.len()
        );
    }
}

/// `unlock` on a live lock exits 3 and names who holds it and until when.
#[tokio::test]
async fn unlock_refuses_a_live_lock_and_names_its_holder() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("locked").await;
    let store = s3_kms_sync::store::Store::new(moto.s3(), "locked", key.as_str());
    s3_kms_sync::run::lease::acquire(
        &store,
        "p",
        "the-live-run",
        std::time::Duration::from_secs(600),
    )
    .await
    .unwrap();
    let env = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "locked"),
            ("SYNC_PREFIX", "p"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
        ],
    );
    let out = cli(&["unlock"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("held by run the-live-run") && stderr.contains("--force"),
        "{stderr}"
    );
    let out = cli(&["unlock", "--force"], &env);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "forced");
}

/// SIGTERM in the middle of a sync: no more files are started, those in
/// flight finish, the manifest says the run is incomplete, the lock is
/// released (the next run need not wait out its lifetime), and the process
/// exits 143 (128 + SIGTERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_sync_cleanly_and_releases_the_lock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let moto = Moto::start();
    let key = moto.bucket_and_key("stopped").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("f{i:02}.txt"), format!("file {i}\n").into_bytes()))
        .collect();
    write_owned(source.path(), &files);
    settle();
    let proxy = proxy::Proxy::start(&moto.endpoint, 3).await;
    proxy.configure(|f| f.delay = std::time::Duration::from_millis(150));
    let uploads = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&uploads);
    proxy.on_request(move |op, path| {
        if op == "PutObject" && !path.contains("_manifests") {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let env = moto_env(
        &proxy.endpoint,
        &[
            ("SYNC_BUCKET", "stopped"),
            ("SYNC_PREFIX", "p"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
            ("SYNC_SOURCE_DIR", source.path().to_str().unwrap()),
            ("SYNC_CONCURRENCY", "2"),
        ],
    );
    let child = spawn(&["sync"], &env);
    let out = signal_after(child, &uploads, 3, "TERM", "the sync's uploading").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uploaded = summary["uploaded"].as_u64().unwrap();
    assert!((1..60).contains(&uploaded), "{summary}");
    let manifest_path = summary["manifest_local_path"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&local_copy(manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["complete"], false);
    let keys = list_keys(&moto.s3(), "stopped").await;
    assert!(
        !keys.contains(&"p/_manifests/lock.json".to_owned()),
        "the lock was not released: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("p/_manifests/2")),
        "{keys:?}"
    );
}
