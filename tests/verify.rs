//! `verify` against a moto server: an intact backup passes; a deleted
//! object, a rewrite that kept the md5checksum metadata (caught by reading
//! the data), a rewritten older manifest and a deleted pinned version are
//! each named.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ServerSideEncryption, VersioningConfiguration};
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::commands::verify::{
    self, ProblemKind, ReadShare, VerifyOptions, VerifyReport, VerifyRequest, VerifyStatus,
};
use s3_kms_sync::manifest::{FileStatus, RunStatus};
use support::*;

const BUCKET: &str = "proofs";
const PREFIX: &str = "v";

struct Backup {
    moto: Moto,
    key_arn: String,
    source: tempfile::TempDir,
    engine: Engine,
    _manifests: tempfile::TempDir,
}

impl Backup {
    async fn new(versioned: bool) -> Backup {
        let moto = Moto::start();
        let key_arn = moto.bucket_and_key(BUCKET).await;
        if versioned {
            let enabled = VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build();
            moto.s3()
                .put_bucket_versioning()
                .bucket(BUCKET)
                .versioning_configuration(enabled)
                .send()
                .await
                .unwrap();
        }
        let source = tempfile::tempdir().unwrap();
        write_tree(source.path(), &sample_files());
        let manifests = tempfile::tempdir().unwrap();
        let config = settings(source.path(), manifests.path(), BUCKET, &key_arn, PREFIX);
        let engine = engine(moto.s3(), config);
        Backup {
            moto,
            key_arn,
            source,
            engine,
            _manifests: manifests,
        }
    }

    async fn sync(&self) -> s3_kms_sync::manifest::Summary {
        let summary = self.engine.run(&SyncRequest::default()).await.unwrap();
        assert_eq!(summary.status, RunStatus::Succeeded);
        summary
    }

    async fn verify(&self, request: VerifyRequest) -> VerifyReport {
        let options = VerifyOptions { concurrency: 4 };
        verify::run(&self.engine.store, PREFIX, &options, &request)
            .await
            .expect("verify starts")
    }

    /// Another writer puts `body` at `key` under the same key and metadata.
    async fn overwrite(&self, key: &str, body: Vec<u8>, md5checksum: &str) {
        self.moto
            .s3()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .metadata("md5checksum", md5checksum)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.key_arn)
            .send()
            .await
            .unwrap();
    }
}

fn kinds(report: &VerifyReport) -> Vec<(ProblemKind, String)> {
    let mut kinds: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.key.clone()))
        .collect();
    kinds.sort_by(|a, b| a.1.cmp(&b.1));
    kinds
}

#[tokio::test]
async fn verify_passes_on_an_intact_backup_and_names_each_problem() {
    let backup = Backup::new(false).await;
    let first = backup.sync().await;
    // One more file, so the newest manifest links to the first.
    std::fs::write(backup.source.path().join("later.txt"), b"later\n").unwrap();
    settle();
    let second = backup.sync().await;

    let intact = backup.verify(VerifyRequest::default()).await;
    assert_eq!(intact.status, VerifyStatus::Ok, "{:?}", intact.problems);
    assert_eq!(intact.checked, sample_files().len() as u64 + 1);
    assert_eq!(
        intact.manifest_s3_uri,
        second.manifest_s3_uri.clone().unwrap()
    );
    assert_eq!(intact.chain_checked, 2);
    // One listing answers for every object: no HeadObject.
    assert_eq!(
        intact.requests.get("HeadObject"),
        None,
        "{:?}",
        intact.requests
    );
    assert_eq!(
        intact.requests.get("ListObjectsV2"),
        Some(&2),
        "{:?}",
        intact.requests
    );

    let all = VerifyRequest {
        read_data: Some(ReadShare::All),
        ..VerifyRequest::default()
    };
    let read = backup.verify(all.clone()).await;
    assert_eq!(read.status, VerifyStatus::Ok, "{:?}", read.problems);
    assert_eq!(read.read_data.as_ref().unwrap().objects_read, read.checked);

    let manifest = manifest_of(&second);
    let key_of = |path: &str| {
        let file = manifest
            .files
            .iter()
            .find(|f| f.local_path.ends_with(path))
            .unwrap();
        assert_ne!(file.status, FileStatus::Failed);
        (file.s3_key.clone().unwrap(), file.md5.clone().unwrap())
    };
    let (deleted, _) = key_of("top.txt");
    backup
        .moto
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(&deleted)
        .send()
        .await
        .unwrap();
    // Same size, same md5checksum metadata, other bytes: only reading tells.
    let (rewritten, md5) = key_of("q1.csv");
    backup
        .overwrite(&rewritten, b"a,b\n9,9\n".to_vec(), &md5)
        .await;
    // An older manifest rewritten, its stored SHA-256 kept.
    let first_key = first
        .manifest_s3_uri
        .unwrap()
        .replace(&format!("s3://{BUCKET}/"), "");
    let old = get_bytes(&backup.moto.s3(), BUCKET, &first_key).await;
    let head = backup
        .moto
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key(&first_key)
        .send()
        .await
        .unwrap();
    let sha256 = head.metadata().unwrap()["sha256"].clone();
    let mut forged = old.clone();
    forged.extend_from_slice(b"\n");
    backup
        .moto
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key(&first_key)
        .body(ByteStream::from(forged))
        .metadata("sha256", sha256)
        .send()
        .await
        .unwrap();

    let metadata_only = backup.verify(VerifyRequest::default()).await;
    assert_eq!(metadata_only.status, VerifyStatus::Problems);
    assert_eq!(
        kinds(&metadata_only),
        [
            (ProblemKind::ChainBroken, first_key.clone()),
            (ProblemKind::Missing, deleted.clone())
        ]
    );
    assert_eq!(
        metadata_only.requests.get("HeadObject"),
        Some(&2),
        "only where the listing cannot vouch"
    );

    let read = backup.verify(all).await;
    assert_eq!(
        kinds(&read),
        [
            (ProblemKind::ChainBroken, first_key),
            (ProblemKind::ContentMismatch, rewritten),
            (ProblemKind::Missing, deleted),
        ]
    );
    assert_eq!(
        (read.missing, read.content_mismatch, read.chain_broken),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_pinned_version_is_verified_after_the_file_changed() {
    let backup = Backup::new(true).await;
    let first = backup.sync().await;
    std::fs::write(
        backup.source.path().join("top.txt"),
        b"top level, changed\n",
    )
    .unwrap();
    settle();
    backup.sync().await;

    let pinned = VerifyRequest {
        manifest: first.manifest_s3_uri.clone(),
        read_data: Some(ReadShare::All),
        ..VerifyRequest::default()
    };
    let report = backup.verify(pinned.clone()).await;
    assert_eq!(report.status, VerifyStatus::Ok, "{:?}", report.problems);
    assert_eq!(
        report.requests.get("ListObjectVersions"),
        Some(&1),
        "{:?}",
        report.requests
    );
    assert_eq!(
        report.requests.get("HeadObject"),
        None,
        "{:?}",
        report.requests
    );

    // Deleting the pinned version itself is a loss.
    let file = manifest_of(&first)
        .files
        .into_iter()
        .find(|f| f.local_path.ends_with("top.txt"))
        .unwrap();
    backup
        .moto
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(file.s3_key.clone().unwrap())
        .version_id(
            file.version_id
                .clone()
                .expect("a version id on a versioned bucket"),
        )
        .send()
        .await
        .unwrap();
    let report = backup.verify(pinned).await;
    assert_eq!(
        kinds(&report),
        [(ProblemKind::Missing, file.s3_key.unwrap())]
    );
}
