//! End-to-end runs of the engine against a moto server over HTTP.

mod support;

use std::collections::BTreeMap;

use aws_sdk_s3::types::ServerSideEncryption;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::{FileStatus, Manifest, RunStatus, SourceShrunk};
use support::*;

const BUCKET: &str = "backups";

struct Fixture {
    moto: Moto,
    key_arn: String,
    source: tempfile::TempDir,
    manifests: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let moto = Moto::start();
        let key_arn = moto.bucket_and_key(BUCKET).await;
        let source = tempfile::tempdir().unwrap();
        write_tree(source.path(), &sample_files());
        Fixture {
            moto,
            key_arn,
            source,
            manifests: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, prefix: &str) -> Settings {
        settings(
            self.source.path(),
            self.manifests.path(),
            BUCKET,
            &self.key_arn,
            prefix,
        )
    }

    fn engine(&self) -> Engine {
        self.moto.engine(self.config("/nightly/"))
    }

    async fn run(&self, request: SyncRequest) -> (s3_kms_sync::manifest::Summary, Manifest) {
        let summary = self.engine().run(&request).await.expect("run starts");
        let local = summary
            .manifest_local_path
            .as_deref()
            .expect("local manifest");
        let manifest: Manifest = serde_json::from_slice(&local_copy(local).unwrap()).unwrap();
        (summary, manifest)
    }

    fn statuses(manifest: &Manifest) -> BTreeMap<String, FileStatus> {
        manifest
            .file_records()
            .map(|f| (f.s3_key.clone().unwrap(), f.status))
            .collect()
    }
}

#[tokio::test]
async fn first_run_uploads_everything_encrypted_with_recorded_md5() {
    let fx = Fixture::new().await;
    let (summary, manifest) = fx.run(SyncRequest::default()).await;
    let files = sample_files();
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.uploaded, files.len() as u64);
    assert_eq!(summary.failed, 0);
    assert_eq!(
        summary.bytes_uploaded,
        files.iter().map(|(_, c)| c.len() as u64).sum::<u64>()
    );
    assert!(manifest.complete);

    let s3 = fx.moto.s3();
    for (relative, content) in &files {
        assert_stored(
            &s3,
            BUCKET,
            &format!("nightly/{relative}"),
            &fx.key_arn,
            content,
            true,
        )
        .await;
    }
    // The large file went up in parts, so its ETag is not its MD5.
    let big = s3
        .head_object()
        .bucket(BUCKET)
        .key("nightly/reports/big.bin")
        .send()
        .await
        .unwrap();
    assert!(
        big.e_tag().unwrap().contains('-'),
        "expected a multipart ETag"
    );
}

#[tokio::test]
async fn second_run_skips_every_file_and_writes_only_a_manifest() {
    let fx = Fixture::new().await;
    fx.run(SyncRequest::default()).await;
    let before = list_keys(&fx.moto.s3(), BUCKET).await;
    let (summary, manifest) = fx.run(SyncRequest::default()).await;
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(
        (summary.uploaded, summary.skipped),
        (0, sample_files().len() as u64)
    );
    assert!(
        Fixture::statuses(&manifest)
            .values()
            .all(|s| *s == FileStatus::Skipped)
    );

    let after = list_keys(&fx.moto.s3(), BUCKET).await;
    let added: Vec<_> = after.iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(added.len(), 1, "only the manifest is new: {added:?}");
    assert!(added[0].starts_with("nightly/_manifests/"));
}

#[tokio::test]
async fn changed_and_new_files_are_uploaded_again() {
    let fx = Fixture::new().await;
    fx.run(SyncRequest::default()).await;
    // Same size, new content: only a content hash can tell.
    std::fs::write(fx.source.path().join("top.txt"), b"TOP LEVEL\n").unwrap();
    std::fs::write(fx.source.path().join("new.txt"), b"new").unwrap();

    let (summary, manifest) = fx.run(SyncRequest::default()).await;
    assert_eq!(summary.uploaded, 2);
    assert_eq!(summary.skipped, sample_files().len() as u64 - 1);
    let statuses = Fixture::statuses(&manifest);
    assert_eq!(statuses["nightly/top.txt"], FileStatus::Uploaded);
    assert_eq!(statuses["nightly/new.txt"], FileStatus::Uploaded);
    assert_eq!(statuses["nightly/reports/big.bin"], FileStatus::Skipped);
    let top = manifest
        .files
        .iter()
        .find(|f| f.s3_key.as_deref() == Some("nightly/top.txt"))
        .unwrap();
    assert_eq!(top.md5.as_deref(), Some(md5_hex(b"TOP LEVEL\n").as_str()));
    assert_eq!(
        get_bytes(&fx.moto.s3(), BUCKET, "nightly/top.txt").await,
        b"TOP LEVEL\n"
    );
}

#[tokio::test]
async fn dry_run_uploads_nothing() {
    let fx = Fixture::new().await;
    let request = SyncRequest {
        dry_run: Some(true),
        ..SyncRequest::default()
    };
    let (summary, manifest) = fx.run(request).await;
    assert_eq!(summary.uploaded, 0);
    assert_eq!(summary.would_upload, sample_files().len() as u64);
    assert_eq!(summary.manifest_s3_uri, None);
    assert!(manifest.dry_run);
    assert!(list_keys(&fx.moto.s3(), BUCKET).await.is_empty());
}

#[tokio::test]
async fn manifests_are_encrypted_and_never_overwritten() {
    let fx = Fixture::new().await;
    let (first, _) = fx.run(SyncRequest::default()).await;
    let (second, _) = fx.run(SyncRequest::default()).await;
    let s3 = fx.moto.s3();
    let manifests: Vec<_> = list_keys(&s3, BUCKET)
        .await
        .into_iter()
        .filter(|k| k.starts_with("nightly/_manifests/") && !k.contains("/pages/"))
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    assert_ne!(first.manifest_s3_uri, second.manifest_s3_uri);
    for (key, summary) in manifests.iter().zip([&first, &second]) {
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(head.ssekms_key_id(), Some(fx.key_arn.as_str()));
        // The S3 object is the newest local copy's header, which names the
        // root of its pages; the older local copy was superseded and removed.
        let local = local_copy(summary.manifest_local_path.as_deref().unwrap());
        if std::ptr::eq(summary, &second) {
            let mut local: serde_json::Value = serde_json::from_slice(&local.unwrap()).unwrap();
            let records = local.as_object_mut().unwrap().remove("files").unwrap();
            assert_eq!(
                records.as_array().unwrap().len(),
                15,
                "the local copy holds every record"
            );
            let stored: serde_json::Value =
                serde_json::from_slice(&get_bytes(&s3, BUCKET, key).await).unwrap();
            assert_eq!(stored, local);
            assert!(stored["root"]["sha256"].is_string());
        } else {
            assert!(local.is_err(), "the superseded local copy is still there");
        }
    }
}

#[tokio::test]
async fn a_file_without_a_valid_key_fails_alone() {
    let fx = Fixture::new().await;
    // Five 250-byte directory names make a key above S3's 1,024-byte limit.
    let long: std::path::PathBuf = (0..5).map(|i| format!("{i}{}", "d".repeat(249))).collect();
    write_tree(
        fx.source.path(),
        &[(long.join("f.txt").to_str().unwrap(), b"x".to_vec())],
    );
    let (summary, manifest) = fx.run(SyncRequest::default()).await;
    assert_eq!(summary.status, RunStatus::Partial);
    assert_eq!(
        (summary.failed, summary.uploaded),
        (1, sample_files().len() as u64)
    );
    let failed = manifest
        .files
        .iter()
        .find(|f| f.status == FileStatus::Failed)
        .unwrap();
    assert!(
        failed.error.as_deref().unwrap().contains("1024"),
        "{failed:?}"
    );
    assert!(failed.local_path.ends_with("f.txt"));
}

/// On a versioned bucket every stored file's record names the version that
/// holds its content: taken from the upload, carried over while the object
/// is unchanged, and still readable after the file changes.
#[tokio::test]
async fn records_name_the_version_that_holds_each_file() {
    let fx = Fixture::new().await;
    let s3 = fx.moto.s3();
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let versions = |manifest: &Manifest| -> BTreeMap<String, String> {
        manifest
            .file_records()
            .map(|f| {
                let key = f.s3_key.clone().unwrap();
                let version = f
                    .version_id
                    .clone()
                    .unwrap_or_else(|| panic!("{key} has no version"));
                (key, version)
            })
            .collect()
    };

    let (_, first) = fx.run(SyncRequest::default()).await;
    let uploaded = versions(&first);
    assert_eq!(uploaded.len(), sample_files().len());
    for (key, version) in &uploaded {
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.version_id(), Some(version.as_str()), "{key}");
    }

    let (_, second) = fx.run(SyncRequest::default()).await;
    assert_eq!(
        versions(&second),
        uploaded,
        "skipped files keep their versions"
    );

    std::fs::write(fx.source.path().join("top.txt"), b"changed\n").unwrap();
    let (_, third) = fx.run(SyncRequest::default()).await;
    let now = versions(&third);
    assert_ne!(now["nightly/top.txt"], uploaded["nightly/top.txt"]);
    let old = get_version_bytes(
        &s3,
        BUCKET,
        "nightly/top.txt",
        Some(&uploaded["nightly/top.txt"]),
    )
    .await;
    assert_eq!(
        &old[..],
        b"top level\n",
        "the first manifest still restores"
    );
}

/// An unmounted file system leaves an empty directory at the mount point,
/// which looks exactly like a source whose files were all deleted.
#[tokio::test]
async fn an_emptied_source_is_backed_up_but_never_reported_as_succeeded() {
    let fx = Fixture::new().await;
    let mut config = fx.config("shrink");
    config.command.min_source_ratio = 0.5;
    let engine = fx.moto.engine(config.clone());
    let first = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(first.source_shrunk, None);

    let files = sample_files();
    for (relative, _) in &files[1..] {
        std::fs::remove_file(fx.source.path().join(relative)).unwrap();
    }
    let shrunk = SourceShrunk {
        found: 1,
        recorded: files.len() as u64,
    };
    let second = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(second.status, RunStatus::Partial);
    assert_eq!(second.source_shrunk, Some(shrunk));
    assert_eq!(
        (second.skipped, second.failed),
        (1, 0),
        "what is left is still backed up"
    );
    let message = second.message.as_deref().unwrap();
    assert!(
        message.contains("holds 1 files") && message.contains(&format!("recorded {}", files.len())),
        "{message}"
    );

    // Still empty on the next run: still not a success.
    let third = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(third.source_shrunk, Some(shrunk));
    assert_eq!(third.status, RunStatus::Partial);

    // A narrowed run is not measured against the whole source.
    let narrowed = engine
        .run(&SyncRequest {
            include: vec!["top.txt".into()],
            ..SyncRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(narrowed.status, RunStatus::Succeeded);

    // A deliberate deletion is accepted by one run with the check off.
    config.command.min_source_ratio = 0.0;
    let accepted = fx
        .moto
        .engine(config)
        .run(&SyncRequest::default())
        .await
        .unwrap();
    assert_eq!(accepted.status, RunStatus::Succeeded);
    let after = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(
        (after.status, after.source_shrunk),
        (RunStatus::Succeeded, None)
    );
}

/// The key of a manifest from the URI a run reported.
fn key_of(uri: Option<&str>) -> String {
    let uri = uri.expect("manifest uploaded");
    uri.strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap()
        .to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut digest = s3_kms_sync::local::hash::Sha256Stream::default();
    digest.update(bytes);
    digest.finish_hex()
}

#[tokio::test]
async fn each_manifest_links_to_the_one_before_by_key_and_digest() {
    let fx = Fixture::new().await;
    let s3 = fx.moto.s3();
    let (first, m1) = fx.run(SyncRequest::default()).await;
    assert_eq!(
        m1.previous_manifest, None,
        "the first run has no predecessor"
    );

    // The predecessor is proven by this machine's local copy.
    let (second, m2) = fx.run(SyncRequest::default()).await;
    let first_key = key_of(first.manifest_s3_uri.as_deref());
    let link = m2.previous_manifest.expect("linked");
    assert_eq!(link.key, first_key);
    let stored = get_bytes(&s3, BUCKET, &first_key).await;
    assert_eq!(link.sha256, Some(sha256_hex(&stored)));

    // A narrowed run is a link of the chain too.
    let narrowed_request = SyncRequest {
        include: vec!["top.txt".into()],
        ..SyncRequest::default()
    };
    let (narrowed, m3) = fx.run(narrowed_request).await;
    assert_eq!(
        m3.previous_manifest.unwrap().key,
        key_of(second.manifest_s3_uri.as_deref())
    );

    // The next full run has not read the narrowed manifest: the link holds
    // the digest stored with it (which survives a re-encrypting copy) and the
    // ETag the listing showed.
    let (fourth, m4) = fx.run(SyncRequest::default()).await;
    let narrowed_key = key_of(narrowed.manifest_s3_uri.as_deref());
    let link = m4.previous_manifest.expect("linked");
    let stored = get_bytes(&s3, BUCKET, &narrowed_key).await;
    assert_eq!(
        (link.key.as_str(), link.sha256),
        (narrowed_key.as_str(), Some(sha256_hex(&stored)))
    );
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(&narrowed_key)
        .send()
        .await
        .unwrap();
    assert_eq!(link.etag.as_deref(), head.e_tag());

    // Without local copies the next run reads its index, and so the
    // predecessor's digest, from S3.
    for entry in std::fs::read_dir(fx.manifests.path()).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            // The page cache.
            true => std::fs::remove_dir_all(path).unwrap(),
            false => std::fs::remove_file(path).unwrap(),
        }
    }
    let (_, m5) = fx.run(SyncRequest::default()).await;
    let fourth_key = key_of(fourth.manifest_s3_uri.as_deref());
    let link = m5.previous_manifest.expect("linked");
    assert_eq!(link.key, fourth_key);
    let stored = get_bytes(&s3, BUCKET, &fourth_key).await;
    assert_eq!(link.sha256, Some(sha256_hex(&stored)));
}

#[tokio::test]
async fn records_name_the_kms_key_that_encrypts_each_object() {
    let fx = Fixture::new().await;
    let keys = |manifest: &Manifest| -> BTreeMap<String, Option<String>> {
        manifest
            .file_records()
            .map(|f| (f.s3_key.clone().unwrap(), f.kms_key_id.clone()))
            .collect()
    };
    let (_, first) = fx.run(SyncRequest::default()).await;
    let expected: BTreeMap<String, Option<String>> = first
        .file_records()
        .map(|f| (f.s3_key.clone().unwrap(), Some(fx.key_arn.clone())))
        .collect();
    assert_eq!(keys(&first), expected, "from each upload's answer");
    // Skipped on the listing's word alone: carried over from the last manifest.
    let (second, manifest) = fx.run(SyncRequest::default()).await;
    assert_eq!(second.skipped, expected.len() as u64);
    assert_eq!(keys(&manifest), expected, "carried over while unchanged");
}
