//! What the CLI says to a person and to a script: text and a progress bar
//! at a terminal, JSON and plain log lines in a pipe; and the flags and
//! variables every command shares.

mod support;

use support::cli::{cli, in_terminal, moto_env};
use support::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn numbered_files(count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            (
                format!("d{}/f{i}.txt", i % 4),
                format!("file {i}").into_bytes(),
            )
        })
        .collect()
}

fn write_numbered(root: &std::path::Path, count: usize) {
    let files = numbered_files(count);
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    write_tree(root, &files);
}

/// In a pipe: JSON on stdout, and on stderr plain log lines (no colour, no
/// module paths) with a progress line that gives the share done and the
/// rate. At a terminal: a few lines of text, and a progress bar.
// The proxy serves from this runtime while the CLI runs: more than one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_log_lines_in_a_pipe_text_and_a_bar_at_a_terminal() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("shown").await;
    // Slowed, so that the run lasts past the first progress line (2 s):
    // 80 uploads, 2 at a time, 100 ms each, take 4 s at the least.
    let proxy = proxy::Proxy::start(&moto.endpoint, 5).await;
    proxy.configure(|f| f.delay = std::time::Duration::from_millis(100));
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_numbered(source.path(), 80);
    let env = moto_env(
        &proxy.endpoint,
        &[
            ("SYNC_BUCKET", "shown"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
            ("SYNC_SOURCE_DIR", source.path().to_str().unwrap()),
            ("SYNC_CONCURRENCY", "2"),
        ],
    );

    let piped = cli(&["sync"], &env);
    let log = stderr(&piped);
    assert_eq!(piped.status.code(), Some(0), "{log}");
    let summary: serde_json::Value = serde_json::from_slice(&piped.stdout).expect("JSON");
    assert_eq!(summary["uploaded"], 80);
    assert!(!log.contains('\u{1b}'), "ANSI codes in a pipe: {log}");
    assert!(!log.contains("s3_kms_sync::"), "module paths: {log}");
    let progress = log
        .lines()
        .find(|l| l.contains("progress: "))
        .unwrap_or_else(|| panic!("no progress line: {log}"));
    // The first run has no snapshot to estimate the total from.
    assert!(progress.contains(" files ("), "{progress}");
    assert!(progress.contains(" uploaded ("), "{progress}");
    assert!(progress.contains("/s"), "{progress}");

    std::fs::write(source.path().join("d0/f0.txt"), b"changed").unwrap();
    let shown = in_terminal(&["sync"], &env);
    let screen = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert_eq!(shown.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("sync succeeded")
            && screen.contains("1 uploaded")
            && screen.contains("79 unchanged"),
        "{screen}"
    );
    assert!(
        screen.contains("snapshot: s3://shown/_manifests/"),
        "{screen}"
    );
    assert!(
        !screen.contains("\"status\""),
        "JSON at a terminal: {screen}"
    );
    // The bar: drawn in place with a carriage return, counting files out
    // of the last snapshot's (~80) while the walk goes on, or out of the
    // walk's own count (84) once it is done: a walk this small may end
    // before the bar first draws its counts.
    assert!(
        screen.contains("/~8") || screen.contains("/84 files"),
        "no progress bar: {screen}"
    );
    assert!(screen.contains(" files, "), "no progress bar: {screen}");
    assert!(screen.contains('\r'), "{screen}");

    let forced = in_terminal(&["--json", "-q", "sync"], &env);
    let screen = String::from_utf8_lossy(&forced.stdout).into_owned();
    assert!(screen.contains("\"status\": \"succeeded\""), "{screen}");
    assert!(!screen.contains(" INFO "), "-q still logs INFO: {screen}");
    assert!(
        !screen.contains("files ("),
        "-q still shows progress: {screen}"
    );
}

/// `restore --dry-run` lists each entry it would restore with its reason,
/// and creates nothing: not the target, not a directory in it. It reads
/// with no KMS key id, and takes its filters and dry run from the
/// environment too.
#[tokio::test]
async fn restore_dry_run_creates_nothing_and_says_why() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("dry").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(
        source.path(),
        &[("a.txt", b"a".to_vec()), ("sub/b.txt", b"b".to_vec())],
    );
    let reader = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "dry"),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
        ],
    );
    let mut writer = reader.clone();
    writer.push(("SYNC_KMS_KEY_ID", key.as_str()));
    let synced = cli(
        &["sync", "--source-dir", source.path().to_str().unwrap()],
        &writer,
    );
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));

    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("not/yet");
    let target_arg = target.to_str().unwrap();
    let out = cli(&["restore", "--dry-run", "--target", target_arg], &reader);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            report["dry_run"].as_bool(),
            report["would_restore"].as_u64()
        ),
        (Some(true), Some(3))
    );
    assert!(
        !out_dir.path().join("not").exists(),
        "a dry run created the target"
    );
    for path in ["a.txt", "sub/b.txt"] {
        assert!(
            log.lines()
                .any(|l| l.contains("would restore") && l.contains(path) && l.contains("missing")),
            "{path} not listed: {log}"
        );
    }

    // Into an existing target: a file that differs is named as such, and
    // the missing directory is still not made.
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("a.txt"), b"other").unwrap();
    let out = cli(
        &[
            "restore",
            "--dry-run",
            "--overwrite",
            "--target",
            target_arg,
        ],
        &reader,
    );
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("a.txt") && l.contains("differs")),
        "{log}"
    );
    assert!(!target.join("sub").exists(), "a dry run made a directory");
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"other");

    // The same from the environment, narrowed by an include.
    let mut env = reader.clone();
    env.extend([
        ("SYNC_RESTORE_TARGET", target_arg),
        ("SYNC_RESTORE_DRY_RUN", "1"),
        ("SYNC_RESTORE_INCLUDE", "sub/**"),
    ]);
    let out = cli(&["restore"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["would_restore"], 1, "{report}");
    assert!(!target.join("sub").exists());

    // A target that is a file is named by its flag, before any request.
    let file = out_dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = cli(&["restore", "--target", file.to_str().unwrap()], &reader);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a directory: set SYNC_RESTORE_TARGET or pass --target"),
        "{}",
        stderr(&out)
    );
}

/// Readers need no key id and offer no lock flags; writers still need the
/// key. Booleans read as people write them; a bad value from the
/// environment is reported by the variable's name.
#[tokio::test]
async fn flags_and_variables_read_as_documented() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("flags").await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let reader = moto_env(
        &moto.endpoint,
        &[
            ("SYNC_BUCKET", "flags"),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
            ("SYNC_SOURCE_DIR", source.path().to_str().unwrap()),
        ],
    );
    let mut writer = reader.clone();
    writer.push(("SYNC_KMS_KEY_ID", key.as_str()));

    let mut dry = writer.clone();
    dry.push(("SYNC_DRY_RUN", "1"));
    let out = cli(&["sync"], &dry);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            summary["dry_run"].as_bool(),
            summary["would_upload"].as_u64()
        ),
        (Some(true), Some(1))
    );
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.contains("would upload") && l.contains("a.txt")),
        "{}",
        stderr(&out)
    );

    let out = cli(&["sync"], &writer);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&["verify"], &reader);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify asked for a key: {}",
        stderr(&out)
    );
    let out = cli(&["verify", "--lock-ttl-secs", "60"], &reader);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unexpected argument '--lock-ttl-secs'"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["sync"], &reader);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SYNC_KMS_KEY_ID"), "{}", stderr(&out));

    let mut bad = writer.clone();
    bad.push(("SYNC_CONCURRENCY", "lots"));
    let out = cli(&["sync"], &bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'lots' for SYNC_CONCURRENCY (an environment variable; the flag is --concurrency)"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["sync", "--concurrency", "lots"], &writer);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out).contains("SYNC_CONCURRENCY"),
        "{}",
        stderr(&out)
    );
    let mut bad = writer.clone();
    bad.push(("SYNC_DRY_RUN", "maybe"));
    let out = cli(&["sync"], &bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SYNC_DRY_RUN"), "{}", stderr(&out));
}

/// `--profile`, `--region` and `--endpoint-url` stand in for the
/// environment, as the aws CLI's do: credentials from a named profile of
/// the shared files, S3 at the given URL.
#[tokio::test]
async fn profile_region_and_endpoint_come_from_flags() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("flagged").await;
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[backup]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let manifests = tempfile::tempdir().unwrap();
    let env = [
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        // KMS keeps its own endpoint: --endpoint-url is S3's alone.
        ("AWS_ENDPOINT_URL_KMS", moto.endpoint.as_str()),
    ];
    let args = [
        "sync",
        "--profile",
        "backup",
        "--region",
        "us-east-1",
        "--endpoint-url",
        &moto.endpoint,
        "--bucket",
        "flagged",
        "--kms-key-id",
        &key,
        "--source-dir",
        source.path().to_str().unwrap(),
        "--manifest-dir",
        manifests.path().to_str().unwrap(),
    ];
    let out = cli(&args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        list_keys(&moto.s3(), "flagged")
            .await
            .contains(&"a.txt".to_owned())
    );

    let mut elsewhere = args.to_vec();
    elsewhere[2] = "nobody";
    let out = cli(&elsewhere, &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--profile"), "{}", stderr(&out));
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let mut unreachable = args.to_vec();
    unreachable[6] = &nobody;
    let out = cli(&unreachable, &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("cannot reach S3 at {nobody}")),
        "{}",
        stderr(&out)
    );
}

/// An unversioned bucket is named, with the fix, by sync (a warning) and
/// by verify (in its report); a versioned one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_bucket_is_warned_of() {
    let moto = Moto::start();
    let key = moto.bucket_and_key("flat").await;
    // S3's answer for a bucket never versioned: moto's fails the SDK's parser.
    let proxy = proxy::Proxy::start(&moto.endpoint, 9).await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", b"a".to_vec())]);
    let env = moto_env(
        &proxy.endpoint,
        &[
            ("SYNC_BUCKET", "flat"),
            ("SYNC_KMS_KEY_ID", key.as_str()),
            ("SYNC_MANIFEST_DIR", manifests.path().to_str().unwrap()),
            ("SYNC_SOURCE_DIR", source.path().to_str().unwrap()),
        ],
    );
    let warning = "bucket flat is not versioned";
    let out = cli(&["sync"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(warning), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("put-bucket-versioning"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["verify"], &env);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warned = report["warnings"].as_array().unwrap();
    assert!(
        warned
            .iter()
            .any(|w| w["detail"].as_str().unwrap().contains(warning)),
        "{report}"
    );

    s3_kms_sync::store::bucket::BucketAdmin::new(moto.s3(), "flat")
        .enable_versioning()
        .await
        .unwrap();
    let out = cli(&["sync"], &env);
    assert!(!stderr(&out).contains(warning), "{}", stderr(&out));
}

/// Completion scripts for the usual shells name the subcommands.
#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = cli(&["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("restore") && script.contains("keep-daily"),
            "{shell}: {script}"
        );
    }
    let out = cli(&["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// A file named .xlsx that is not a workbook gets a sentence and the fix.
#[test]
fn a_sheet_that_is_not_a_workbook_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("buckets.xlsx");
    std::fs::write(&sheet, "source,destination\na,b\n").unwrap();
    let args = [
        "replication",
        "plan",
        "--sheet",
        sheet.to_str().unwrap(),
        "--role-arn",
        "arn:aws:iam::123456789012:role/replication",
    ];
    let out = cli(&args, &[("AWS_REGION", "us-east-1")]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("is not an Excel workbook"), "{text}");
    assert!(text.contains("export it as .csv"), "{text}");
}
