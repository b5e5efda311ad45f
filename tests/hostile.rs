//! Hostile file trees: every entry gets a clear manifest record, the run
//! carries on, and nothing is stored corrupt or half-written.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::local::source::SourceDir;
use s3_kms_sync::local::walk::{Found, walk};
use s3_kms_sync::manifest::{EntryKind, FileRecord, FileStatus, Manifest};
use s3_kms_sync::store::multipart::{MAX_PARTS, part_size_for};
use support::proxy::Proxy;
use support::*;

const BUCKET: &str = "hostile";

/// Names that are legal on Linux and awkward for S3 clients; all must round-trip.
/// (A newline in a name is covered in mocked_s3.rs: moto's HTTP router answers
/// 404 for keys containing one, where real S3 stores them.)
const ODD_NAMES: &[&str] = &[
    "tab\tname.txt",
    "bell\u{7}.txt",
    "carriage\rreturn.txt",
    " leading space.txt",
    "trailing space.txt ",
    "trailing dot.",
    "..starts with dots",
    "...",
    "100%.txt",
    "%2F encoded slash.txt",
    "a+b=c&d.txt",
    "q?x#y.txt",
    "café.txt",        // NFC
    "cafe\u{301}.txt", // NFD: looks the same, is another file
    "empty",
];

fn by_name(manifest: &Manifest) -> BTreeMap<String, FileRecord> {
    manifest
        .files
        .iter()
        .map(|f| {
            let name = Path::new(&f.local_path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, f.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_special_files_each_get_a_record() {
    let moto = Moto::start();
    let key = moto.bucket_and_key(BUCKET).await;
    let proxy = Proxy::start(&moto.endpoint, 11).await;
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let root = source.path();

    for (i, name) in ODD_NAMES.iter().enumerate() {
        let content = if *name == "empty" {
            Vec::new()
        } else {
            format!("content {i}").into_bytes()
        };
        std::fs::write(root.join(name), content).unwrap();
    }
    std::fs::write(
        root.join(OsStr::from_bytes(b"not utf8 \xff\xfe.txt")),
        b"bytes",
    )
    .unwrap();
    symlink("loop_b", root.join("loop_a")).unwrap();
    symlink("loop_a", root.join("loop_b")).unwrap();
    symlink(".", root.join("dir_loop")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    symlink("/etc", root.join("outside")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let _socket = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    std::fs::write(root.join("a_first.txt"), b"first").unwrap();
    std::fs::write(root.join("zz_vanishes.txt"), b"gone soon").unwrap();
    std::fs::write(root.join("zz_grows.bin"), vec![1u8; 6 * 1024 * 1024]).unwrap();
    std::fs::write(root.join("zz_rewritten.bin"), vec![2u8; 6 * 1024 * 1024]).unwrap();

    // Change the tree while the run is under way, at known points of it.
    let tree = root.to_path_buf();
    proxy.on_request(move |op, path| {
        if op == "PutObject" && path.ends_with("a_first.txt") {
            let _ = std::fs::remove_file(tree.join("zz_vanishes.txt"));
        }
        if op == "UploadPart" && path.ends_with("zz_grows.bin") {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(tree.join("zz_grows.bin"))
                .unwrap();
            file.write_all(b"appended while uploading").unwrap();
        }
        if op == "UploadPart" && path.ends_with("zz_rewritten.bin") {
            std::fs::write(tree.join("zz_rewritten.bin"), vec![3u8; 6 * 1024 * 1024]).unwrap();
        }
    });

    let mut settings = settings(root, manifests.path(), BUCKET, &key, "h");
    settings.command.concurrency = 1; // in walk order, so the hooks fire before the files they change are read
    let engine = engine(client_for(&proxy.endpoint), settings);
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        engine.run(&SyncRequest::default()),
    )
    .await
    .expect("the run never blocks (FIFO)")
    .unwrap();
    let manifest: Manifest = serde_json::from_slice(
        &local_copy(summary.manifest_local_path.as_deref().unwrap()).unwrap(),
    )
    .unwrap();
    let records = by_name(&manifest);

    let s3 = moto.s3();
    for name in ODD_NAMES {
        let record = &records[*name];
        assert_eq!(record.status, FileStatus::Uploaded, "{name:?}: {record:?}");
        let key = format!("h/{name}");
        assert_eq!(record.s3_key.as_deref(), Some(key.as_str()));
        let stored = get_bytes(&s3, BUCKET, &key).await;
        assert_eq!(stored, std::fs::read(root.join(name)).unwrap(), "{name:?}");
    }
    assert_ne!(
        get_bytes(&s3, BUCKET, "h/café.txt").await,
        get_bytes(&s3, BUCKET, "h/cafe\u{301}.txt").await,
        "normalisation look-alikes stay distinct objects"
    );

    let expect = |name: &str, status: FileStatus, text: &str| {
        let record = records
            .get(name)
            .unwrap_or_else(|| panic!("{name:?} has no record"));
        assert_eq!(record.status, status, "{name:?}: {record:?}");
        let said = record
            .error
            .as_deref()
            .or(record.reason.as_deref())
            .unwrap_or_default();
        assert!(said.contains(text), "{name:?}: {said:?} lacks {text:?}");
    };
    expect("not utf8 \u{fffd}\u{fffd}.txt", FileStatus::Failed, "UTF-8");
    // A link is recorded with its target text, never followed.
    let targets = [
        ("loop_a", "loop_b"),
        ("loop_b", "loop_a"),
        ("dir_loop", "."),
        ("dangling", "/nonexistent/target"),
        ("outside", "/etc"),
    ];
    for (link, target) in targets {
        let record = &records[link];
        assert_eq!(record.status, FileStatus::Recorded, "{link}: {record:?}");
        assert_eq!(record.kind, EntryKind::Symlink);
        assert_eq!(record.link_target.as_deref(), Some(target));
        assert_eq!(record.s3_key, None, "nothing is stored for a link");
    }
    expect("fifo", FileStatus::Skipped, "FIFO");
    expect("socket", FileStatus::Skipped, "socket");
    expect("zz_vanishes.txt", FileStatus::Failed, "No such file");
    expect(
        "zz_grows.bin",
        FileStatus::Failed,
        "changed while it was being read",
    );
    expect(
        "zz_rewritten.bin",
        FileStatus::Failed,
        "changed while it was being read",
    );
    assert_eq!(
        records.len(),
        ODD_NAMES.len() + 12,
        "one record per entry: {:?}",
        records.keys()
    );

    // Nothing from outside the source, and no object from a file that changed under the upload.
    for absent in [
        "h/outside/passwd",
        "h/outside",
        "h/zz_grows.bin",
        "h/zz_rewritten.bin",
        "h/zz_vanishes.txt",
    ] {
        let head = s3.head_object().bucket(BUCKET).key(absent).send().await;
        assert!(
            head.is_err_and(|e| e.as_service_error().is_some_and(|e| e.is_not_found())),
            "{absent} exists"
        );
    }
    let open = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "aborted uploads leave no parts");
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

/// A source with a readable file, an unreadable file and an unreadable
/// directory, and the CLI's output on it, run as `nobody` (root reads
/// everything, so only another user meets real permission errors).
async fn sync_as_nobody(extra: &[&str]) -> (std::process::Output, BTreeMap<String, FileRecord>) {
    let moto = Moto::start();
    let key = moto.bucket_and_key(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let (source, manifests) = (dir.path().join("src"), dir.path().join("manifests"));
    std::fs::create_dir_all(source.join("locked")).unwrap();
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(source.join("ok.txt"), b"ok").unwrap();
    std::fs::write(source.join("secret.txt"), b"secret").unwrap();
    std::fs::write(source.join("locked/inner.txt"), b"inner").unwrap();
    for (path, mode) in [
        (dir.path(), 0o755),
        (source.as_path(), 0o755),
        (manifests.as_path(), 0o777),
        (&source.join("ok.txt"), 0o644),
        (&source.join("secret.txt"), 0o000),
        (&source.join("locked"), 0o000),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let binary = env!("CARGO_BIN_EXE_s3-kms-sync");
    let mut command = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        c
    } else {
        Command::new(binary)
    };
    let output = command
        .args([
            "sync",
            "--source-dir",
            source.to_str().unwrap(),
            "--bucket",
            BUCKET,
            "--prefix",
            "u",
        ])
        .args([
            "--kms-key-id",
            &key,
            "--manifest-dir",
            manifests.to_str().unwrap(),
        ])
        .args(extra)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("HOME", dir.path())
        .output()
        .expect("run the CLI");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest: Manifest = serde_json::from_slice(
        &local_copy(summary["manifest_local_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    (output, by_name(&manifest))
}

fn summary_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn unreadable_files_and_directories_fail_alone() {
    let (output, records) = sync_as_nobody(&[]).await;
    let summary = summary_of(&output);
    assert_eq!(
        (summary["uploaded"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(2)),
        "{summary}"
    );
    assert!(
        records["secret.txt"]
            .error
            .as_deref()
            .unwrap()
            .contains("Permission denied")
    );
    assert!(
        records["locked"]
            .error
            .as_deref()
            .unwrap()
            .contains("Permission denied")
    );
    assert_eq!(records["ok.txt"].status, FileStatus::Uploaded);
}

/// The include filter matches files, not the directory that hides them: an
/// unreadable directory is a failure whatever the filters say of its path.
#[tokio::test]
async fn an_unreadable_directory_fails_under_an_include_filter() {
    let (output, records) = sync_as_nobody(&["--include", "**/*.txt"]).await;
    let summary = summary_of(&output);
    assert_eq!(summary["status"], "partial", "{summary}");
    let locked = records
        .get("locked")
        .expect("the unreadable directory has a record");
    assert_eq!(locked.status, FileStatus::Failed);
    assert!(
        locked
            .error
            .as_deref()
            .unwrap()
            .contains("Permission denied")
    );
    assert_eq!(records["ok.txt"].status, FileStatus::Uploaded);
}

#[test]
fn a_sparse_file_beyond_ten_thousand_default_parts_gets_bigger_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.img");
    // 100 GiB logical, no blocks written: at 8 MiB it would need 12,800 parts.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(100 << 30)
        .unwrap();
    let filter = s3_kms_sync::local::filter::Filter::new(&[], &[]).unwrap();
    let found = walk(
        &SourceDir::open(dir.path()).unwrap(),
        Path::new(""),
        &filter,
    );
    let Found::File(file) = &found[0] else {
        panic!("{found:?}")
    };
    assert_eq!(file.size, 100 << 30);
    let default_part = 8 << 20;
    assert!(file.size.div_ceil(default_part) > MAX_PARTS);
    let part = part_size_for(file.size, default_part);
    assert!(file.size.div_ceil(part) <= MAX_PARTS, "{part}");
}

#[test]
fn a_directory_of_100000_empty_files_walks_in_full() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100_000 {
        std::fs::File::create(dir.path().join(format!("{i:06}"))).unwrap();
    }
    let filter = s3_kms_sync::local::filter::Filter::new(&[], &[]).unwrap();
    let found = walk(
        &SourceDir::open(dir.path()).unwrap(),
        Path::new(""),
        &filter,
    );
    assert_eq!(found.len(), 100_000);
    assert!(
        found
            .iter()
            .all(|f| matches!(f, Found::File(file) if file.size == 0))
    );
}
